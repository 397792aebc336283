//! Divisions, accounts and contacts as the company's systems sync them, and the stored
//! contact record that count loading and recipient lists read.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::search::SearchText;
use super::{AccountId, ContactId, DivisionId, DomainError, Email, PortalKey};

/// Longest free-text field accepted from sync (names, classes, bill groups...).
pub const MAX_TEXT_LEN: usize = 200;

fn text(field: &'static str, value: String, required: bool) -> Result<String, DomainError> {
    let v = value.trim().to_owned();
    if required && v.is_empty() {
        return Err(DomainError::InvalidField {
            field,
            reason: "must not be empty".into(),
        });
    }
    if v.chars().count() > MAX_TEXT_LEN {
        return Err(DomainError::InvalidField {
            field,
            reason: format!("must be at most {MAX_TEXT_LEN} characters"),
        });
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(DomainError::InvalidField {
            field,
            reason: "must not contain control characters".into(),
        });
    }
    Ok(v)
}

/// A division as synced: `PUT /v1/divisions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivisionInput {
    pub division_id: DivisionId,
    pub name: String,
    pub email_from: Email,
    /// When this sync happened ([`Division::first_synced_at`] of a new division); `None`:
    /// the store's own clock.
    pub synced_at: Option<OffsetDateTime>,
}

impl DivisionInput {
    pub fn new(
        division_id: DivisionId,
        name: String,
        email_from: Email,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            division_id,
            name: text("name", name, true)?,
            email_from,
            synced_at: None,
        })
    }
}

impl DivisionInput {
    /// Says when the sync happened (the caller's clock).
    pub fn synced_at(mut self, at: OffsetDateTime) -> Self {
        self.synced_at = Some(at);
        self
    }
}

/// A stored division. `last_bulk_sent_at` is written by the send path, never by sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Division {
    pub division_id: DivisionId,
    pub name: String,
    pub email_from: Email,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_bulk_sent_at: Option<OffsetDateTime>,
    /// When the division was first synced (kept by the store, never changed by a later
    /// sync); `None` for a division stored before this was recorded. Recurring settings
    /// scoped to `new_divisions_only` cover divisions first synced after they were saved.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_synced_at: Option<OffsetDateTime>,
}

/// Where a contact stands with the portal. Kept by the system; sync never overwrites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    /// Never invited.
    #[default]
    NotSent,
    /// Invited, not yet registered.
    Pending,
    /// Registered.
    Accepted,
}

impl PortalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSent => "not_sent",
            Self::Pending => "pending",
            Self::Accepted => "accepted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_sent" => Some(Self::NotSent),
            "pending" => Some(Self::Pending),
            "accepted" => Some(Self::Accepted),
            _ => None,
        }
    }
}

/// A contact as synced, inside its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInput {
    pub contact_id: ContactId,
    pub name: String,
    /// `None`: the contact has no address and is counted under `no_email`.
    pub email: Option<Email>,
    pub phone: String,
    pub billing: bool,
}

impl ContactInput {
    pub fn new(
        contact_id: ContactId,
        name: String,
        email: Option<Email>,
        phone: String,
        billing: bool,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            contact_id,
            name: text("contact name", name, false)?,
            email,
            phone: text("phone", phone, false)?,
            billing,
        })
    }
}

/// An account with its contacts, as synced. A sync replaces the account's contact set:
/// contacts absent from it are removed, the others keep their portal status and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: AccountId,
    pub division_id: DivisionId,
    pub number: String,
    pub name: String,
    pub class: String,
    pub bill_group: String,
    pub source: String,
    pub site_source: String,
    pub active_services: bool,
    pub balance_due_cents: i64,
    pub autopay: bool,
    /// Set by sync only when the portal reports it; `None` leaves the stored value alone.
    pub last_login: Option<OffsetDateTime>,
    pub contacts: Vec<ContactInput>,
    /// The key the company's system sent (`portal_key` in sync). `None`: the store keeps the
    /// account's key, or generates one ([`PortalKey::generate`]) for an account it has not
    /// seen before — every account has a key.
    pub portal_key: Option<PortalKey>,
}

/// Most contacts one account may carry.
pub const MAX_CONTACTS_PER_ACCOUNT: usize = 100;

impl Account {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        account_id: AccountId,
        division_id: DivisionId,
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
    ) -> Result<Self, DomainError> {
        if contacts.len() > MAX_CONTACTS_PER_ACCOUNT {
            return Err(DomainError::InvalidField {
                field: "contacts",
                reason: format!("at most {MAX_CONTACTS_PER_ACCOUNT} contacts per account"),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for c in &contacts {
            if !seen.insert(c.contact_id.as_str()) {
                return Err(DomainError::InvalidField {
                    field: "contacts",
                    reason: format!("contact_id {} appears twice", c.contact_id),
                });
            }
        }
        Ok(Self {
            account_id,
            division_id,
            number: text("number", number, true)?,
            name: text("name", name, false)?,
            class: text("class", class, false)?,
            bill_group: text("bill_group", bill_group, false)?,
            source: text("source", source, false)?,
            site_source: text("site_source", site_source, false)?,
            active_services,
            balance_due_cents,
            autopay,
            last_login,
            contacts,
            portal_key: None,
        })
    }

    /// Sets the key the company's system sent.
    pub fn with_portal_key(mut self, key: Option<PortalKey>) -> Self {
        self.portal_key = key;
        self
    }

    /// The stored records this account's contacts become, with fresh system fields.
    /// Stores keep the existing `portal_status`, `last_invited_at` and `last_login` of a
    /// contact that already exists (a sync `last_login` wins when given).
    pub fn contact_records(&self) -> impl Iterator<Item = ContactRecord> + '_ {
        self.contacts.iter().map(move |c| ContactRecord {
            contact_id: c.contact_id.clone(),
            account_id: self.account_id.clone(),
            division_id: self.division_id.clone(),
            contact_name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            billing: c.billing,
            account_number: self.number.clone(),
            account_name: self.name.clone(),
            account_class: self.class.clone(),
            bill_group: self.bill_group.clone(),
            account_source: self.source.clone(),
            site_source: self.site_source.clone(),
            active_services: self.active_services,
            balance_due_cents: self.balance_due_cents,
            autopay: self.autopay,
            portal_status: PortalStatus::NotSent,
            last_invited_at: None,
            last_login: self.last_login,
            portal_key: self.portal_key.clone(),
            invitations_sent: 0,
        })
    }
}

/// A contact as stored and read by counts and lists: the contact, its account's filterable
/// fields (denormalised so a division is read without joins), and the system-kept fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRecord {
    pub contact_id: ContactId,
    pub account_id: AccountId,
    pub division_id: DivisionId,
    pub contact_name: String,
    pub email: Option<Email>,
    pub phone: String,
    pub billing: bool,
    pub account_number: String,
    pub account_name: String,
    pub account_class: String,
    pub bill_group: String,
    pub account_source: String,
    pub site_source: String,
    pub active_services: bool,
    pub balance_due_cents: i64,
    pub autopay: bool,
    pub portal_status: PortalStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_invited_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
    /// The account's portal key (denormalised like the account's other fields, for the
    /// `[PortalKey]` merge tag). Never shown in a recipient list: only staff with
    /// `registrations:manage` read keys, through their own route.
    #[serde(skip)]
    pub portal_key: Option<PortalKey>,
    /// Invitations claimed for this contact so far, by every path (kept by the claim, in
    /// the same write): what a recurring setting's maximum counts.
    #[serde(default)]
    pub invitations_sent: u32,
}

impl ContactRecord {
    /// Case-insensitive substring search over email, contact name, account number and name.
    /// `needle` must already be lowercased.
    pub fn matches_search(&self, needle: &str) -> bool {
        self.search_text().matches(needle)
    }

    /// What a search looks in: email, contact name, account number and account name.
    pub fn search_text(&self) -> SearchText {
        SearchText::of([
            self.email.as_ref().map_or("", |e| e.as_str()),
            &self.contact_name,
            &self.account_number,
            &self.account_name,
        ])
    }
}
