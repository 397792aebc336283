//! Test data with named fields and defaults: accounts, their contacts, campaigns.
//!
//! Set what a test is about and leave the rest:
//!
//! ```
//! use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
//! use time::macros::datetime;
//!
//! let account = AccountBuilder::new("a1")
//!     .division("d2")
//!     .contact(ContactBuilder::new("c1").email("c1@example.com"))
//!     .contact(ContactBuilder::new("c2").billing(false))
//!     .build();
//! assert_eq!(account.number, "N-a1");
//! assert_eq!(account.contacts[1].email, None);
//!
//! let campaign = CampaignBuilder::new(datetime!(2026-11-02 12:00 UTC)).division("d2").build();
//! assert_eq!(campaign.template_id, "welcome");
//! ```
//!
//! `build` goes through the domain's constructors ([`Account::new`], [`ContactInput::new`])
//! and panics on what they refuse: test data is meant to be valid.

use portal_core::domain::{
    Account, AccountId, Campaign, CampaignId, CampaignStatus, ContactId, ContactInput, DivisionId,
    Email, Filters, Skipped, Trigger,
};
use time::OffsetDateTime;

fn email(s: &str) -> Email {
    Email::parse(s).unwrap_or_else(|e| panic!("test email {s:?}: {e}"))
}

/// A [`ContactInput`]. Defaults: name `Contact {id}`, no address, no phone, a billing
/// contact.
#[derive(Debug, Clone)]
#[must_use]
pub struct ContactBuilder {
    id: String,
    name: String,
    email: Option<String>,
    phone: String,
    billing: bool,
}

impl ContactBuilder {
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            name: format!("Contact {id}"),
            id,
            email: None,
            phone: String::new(),
            billing: true,
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// The address when there is one (`None`: the contact has none, the default).
    pub fn maybe_email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(Into::into);
        self
    }

    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = phone.into();
        self
    }

    pub fn billing(mut self, billing: bool) -> Self {
        self.billing = billing;
        self
    }

    pub fn build(self) -> ContactInput {
        let id = ContactId::parse(&*self.id)
            .unwrap_or_else(|e| panic!("test contact id {:?}: {e}", self.id));
        ContactInput::new(
            id,
            self.name,
            self.email.as_deref().map(email),
            self.phone,
            self.billing,
        )
        .unwrap_or_else(|e| panic!("test contact {:?}: {e}", self.id))
    }
}

impl From<ContactBuilder> for ContactInput {
    fn from(b: ContactBuilder) -> Self {
        b.build()
    }
}

/// An [`Account`]. Defaults: division `d1`, number `N-{id}`, name `Account {id}`, class
/// `Residential`, bill group `A`, source `Web`, site source `North`, active services, nothing
/// due, no autopay, no last login, no contacts.
#[derive(Debug, Clone)]
#[must_use]
pub struct AccountBuilder {
    id: String,
    division: String,
    number: String,
    name: String,
    class: String,
    bill_group: String,
    source: String,
    site_source: String,
    active_services: bool,
    balance_due_cents: i64,
    autopay: bool,
    last_login: Option<OffsetDateTime>,
    contacts: Vec<ContactInput>,
}

impl AccountBuilder {
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            division: "d1".into(),
            number: format!("N-{id}"),
            name: format!("Account {id}"),
            id,
            class: "Residential".into(),
            bill_group: "A".into(),
            source: "Web".into(),
            site_source: "North".into(),
            active_services: true,
            balance_due_cents: 0,
            autopay: false,
            last_login: None,
            contacts: Vec::new(),
        }
    }

    pub fn division(mut self, division: impl Into<String>) -> Self {
        self.division = division.into();
        self
    }

    pub fn number(mut self, number: impl Into<String>) -> Self {
        self.number = number.into();
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn class(mut self, class: impl Into<String>) -> Self {
        self.class = class.into();
        self
    }

    pub fn bill_group(mut self, bill_group: impl Into<String>) -> Self {
        self.bill_group = bill_group.into();
        self
    }

    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    pub fn site_source(mut self, site_source: impl Into<String>) -> Self {
        self.site_source = site_source.into();
        self
    }

    pub fn active_services(mut self, active: bool) -> Self {
        self.active_services = active;
        self
    }

    pub fn balance_due_cents(mut self, cents: i64) -> Self {
        self.balance_due_cents = cents;
        self
    }

    pub fn autopay(mut self, autopay: bool) -> Self {
        self.autopay = autopay;
        self
    }

    pub fn last_login(mut self, at: OffsetDateTime) -> Self {
        self.last_login = Some(at);
        self
    }

    /// Adds a contact (a [`ContactBuilder`] or a built [`ContactInput`]).
    pub fn contact(mut self, contact: impl Into<ContactInput>) -> Self {
        self.contacts.push(contact.into());
        self
    }

    /// Adds contacts.
    pub fn contacts<C: Into<ContactInput>>(
        mut self,
        contacts: impl IntoIterator<Item = C>,
    ) -> Self {
        self.contacts.extend(contacts.into_iter().map(Into::into));
        self
    }

    pub fn build(self) -> Account {
        let id = AccountId::parse(&*self.id)
            .unwrap_or_else(|e| panic!("test account id {:?}: {e}", self.id));
        let division = DivisionId::parse(&*self.division)
            .unwrap_or_else(|e| panic!("test division id {:?}: {e}", self.division));
        Account::new(
            id,
            division,
            self.number,
            self.name,
            self.class,
            self.bill_group,
            self.source,
            self.site_source,
            self.active_services,
            self.balance_due_cents,
            self.autopay,
            self.last_login,
            self.contacts,
        )
        .unwrap_or_else(|e| panic!("test account {:?}: {e}", self.id))
    }
}

impl From<AccountBuilder> for Account {
    fn from(b: AccountBuilder) -> Self {
        b.build()
    }
}

/// A queued [`Campaign`] created at a given time, as `POST /v1/campaigns` records one.
/// Defaults: a manual send over division `d1`, no filters,
/// uninvited contacts only, template `welcome`, from `hoa@example.org`, created by
/// `manager-1`, nothing counted yet.
#[derive(Debug, Clone)]
#[must_use]
pub struct CampaignBuilder {
    at: OffsetDateTime,
    trigger: Trigger,
    divisions: Vec<String>,
    filters: Filters,
    limit_to_uninvited: bool,
    template: String,
    email_from: String,
    created_by: String,
    recurring: Option<portal_core::domain::RecurringRun>,
    selection: Option<portal_core::domain::HandPicked>,
}

impl CampaignBuilder {
    /// A campaign created at `at` (its id is generated from that time).
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            at,
            trigger: Trigger::Manual,
            divisions: vec!["d1".into()],
            filters: Filters::default(),
            limit_to_uninvited: true,
            template: "welcome".into(),
            email_from: "hoa@example.org".into(),
            created_by: "manager-1".into(),
            recurring: None,
            selection: None,
        }
    }

    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Over this one division.
    pub fn division(self, division: impl AsRef<str>) -> Self {
        self.divisions([division])
    }

    /// Over these divisions, in this order.
    pub fn divisions<D: AsRef<str>>(mut self, divisions: impl IntoIterator<Item = D>) -> Self {
        self.divisions = divisions
            .into_iter()
            .map(|d| d.as_ref().to_owned())
            .collect();
        self
    }

    pub fn filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }

    pub fn limit_to_uninvited(mut self, limit: bool) -> Self {
        self.limit_to_uninvited = limit;
        self
    }

    pub fn template(mut self, template_id: impl Into<String>) -> Self {
        self.template = template_id.into();
        self
    }

    pub fn email_from(mut self, email: impl AsRef<str>) -> Self {
        self.email_from = email.as_ref().to_owned();
        self
    }

    pub fn created_by(mut self, who: impl Into<String>) -> Self {
        self.created_by = who.into();
        self
    }

    /// Makes it a recurring run's campaign.
    pub fn recurring(mut self, run: portal_core::domain::RecurringRun) -> Self {
        self.trigger = portal_core::domain::Trigger::Recurring;
        self.recurring = Some(run);
        self
    }

    /// Makes it a hand-picked campaign of `contacts` contacts (record it with
    /// `create_selection_campaign` and that many ids); no filters.
    pub fn hand_picked(mut self, contacts: u32) -> Self {
        self.selection = Some(portal_core::domain::HandPicked { contacts });
        self.filters = Filters::default();
        self
    }

    pub fn build(self) -> Campaign {
        Campaign {
            campaign_id: CampaignId::generate(self.at),
            trigger: self.trigger,
            status: CampaignStatus::Queued,
            division_ids: self
                .divisions
                .iter()
                .map(|d| {
                    DivisionId::parse(&**d)
                        .unwrap_or_else(|e| panic!("test division id {d:?}: {e}"))
                })
                .collect(),
            filters: self.filters,
            limit_to_uninvited: self.limit_to_uninvited,
            template_id: self.template,
            email_from: email(&self.email_from),
            display_name: None,
            created_at: self.at,
            created_by: self.created_by,
            targeted: 0,
            skipped: Skipped::default(),
            categories: Default::default(),
            sends: Default::default(),
            pause_reason: None,
            recurring: self.recurring,
            selection: self.selection,
        }
    }
}

impl From<CampaignBuilder> for Campaign {
    fn from(b: CampaignBuilder) -> Self {
        b.build()
    }
}

/// Saves sender settings for `tenant` allowing every address at `domains`: what a tenant
/// whose campaigns a test sends has set up first (without it nothing may be sent).
pub async fn allow_senders(
    store: &dyn portal_core::ports::Store,
    tenant: &portal_core::domain::TenantId,
    domains: &[&str],
) {
    let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    let settings =
        portal_core::domain::SenderSettings::new(&domains, &[], OffsetDateTime::UNIX_EPOCH, "test")
            .expect("test sender domains are valid");
    store
        .put_sender_settings(tenant, &settings)
        .await
        .expect("sender settings are saved");
}
