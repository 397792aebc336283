//! Starting sends: the bulk campaign (`POST /v1/campaigns`) and the individual invite
//! (`POST /v1/invitations/individual`). Both record a campaign and hand the rest to the bus
//! ([`SendMessage`]); neither sends an email itself, so both answer at once.
//!
//! # Bulk: [`start_campaign`]
//!
//! Checks the request (1 to [`MAX_CAMPAIGN_DIVISIONS`] distinct divisions, filters, the
//! template exists), picks the sender, and records the campaign through
//! [`CampaignStore::create_campaign`](crate::ports::CampaignStore::create_campaign), which
//! takes every division's 24-hour lock in the same conditional write. Then it publishes one
//! [`SendMessage::FanOut`] from the start.
//!
//! - **Sender**: `email_from` when given, else the address of the *first* division named.
//!   Divisions with different addresses and no `email_from` still make one campaign, sent
//!   from the first division's address: name the sender explicitly to choose another.
//! - **Idempotency-Key**: the key is stored with the SHA-256 of a canonical serialization of
//!   the *parsed* request ([`request_hash`]), so whitespace, key order, omitted defaults and
//!   the order of filter values do not make two requests differ; the order of
//!   `division_ids` does (its first division picks the default sender). A replay answers the
//!   campaign the key made; if that campaign is still `queued`, the fan-out message is
//!   published again — harmless (fan-out steps are idempotent), and it recovers a crash
//!   between recording the campaign and publishing.
//! - **Outcomes**: a division bulk-sent less than 24 hours ago → [`CampaignError::DivisionHeld`]
//!   (409, nothing recorded); a division that does not exist → [`CampaignError::NotFound`]
//!   (404, like counts and lists); a key reused with another body →
//!   [`CampaignError::IdempotencyMismatch`] (422).
//!
//! # Hand-picked: [`Recipients::Contacts`]
//!
//! Instead of divisions and filters, a bulk send may name 1 to
//! [`MAX_SELECTED_CONTACTS`](crate::domain::MAX_SELECTED_CONTACTS) contacts (`contact_ids`,
//! repeats dropped: [`PickedContacts`]). They are located first
//! ([`ContactStore::locate_contacts`](crate::ports::ContactStore::locate_contacts), one
//! batched read): ids that are not the tenant's contacts refuse the request
//! ([`CampaignError::UnknownContacts`], 422 naming up to [`MAX_UNKNOWN_NAMED`]), so nothing is
//! recorded that could never be sent, and the divisions they are in — in the order of the
//! first contact picked in each, at most [`MAX_CAMPAIGN_DIVISIONS`] — become the campaign's
//! `division_ids` (it is listed in each one's history). The default sender is the first
//! picked contact's division's address. The campaign is recorded with its ids in one write
//! ([`CampaignStore::create_selection_campaign`](crate::ports::CampaignStore::create_selection_campaign))
//! and fanned out page by page through them, under every rule of a bulk send (accepted never,
//! suppressed and no email skipped, the contacts' 24-hour rule) **except the division lock**:
//! a selection is neither held by a division's recent bulk send nor takes its lock. Its
//! `Idempotency-Key` hash treats the ids as a set; only which one came first matters, and
//! only when it picks the sender.
//!
//! # Individual: [`send_individual`]
//!
//! The contact is classified as a send would ([`classify`], pending contacts included):
//! accepted, suppressed or without email → [`CampaignError::NotSendable`] (422); invited
//! less than 24 hours ago → [`CampaignError::ContactHeld`] (409) — nothing is recorded in
//! either case. Otherwise a campaign of one (`trigger: individual`, no division lock) is
//! recorded, the contact is claimed under its 24-hour rule (a conditional write: a
//! concurrent send that claimed it first makes this campaign `failed` with a reason and the
//! answer a 409), the campaign moves `queued → fanning_out → sending` (there is nothing to
//! fan out) and one [`SendMessage::Deliver`] carries the recipient.
//!
//! # When the bus refuses
//!
//! A bulk campaign whose fan-out message could not be published stays `queued` with its
//! divisions locked: [`CampaignError::NotQueued`]; the same request with the same
//! `Idempotency-Key` publishes it again. An individual invite whose delivery could not be
//! published ends `failed` (campaign and invitation, with the reason): no invitation is left
//! silently in process.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{
    classify, hash_token, Campaign, CampaignEvent, CampaignId, CampaignStatus, CategoryCounts,
    ContactId, ContactRecord, DisplayName, DivisionId, DomainError, Email, Filters, HandPicked,
    InvalidTransition, Invitation, InvitationFact, InvitationState, PickedContacts, SendCounts,
    SendOutcome, SenderCheck, Skipped, TemplateId, TemplateKind, TenantId, Trigger, HOLD_WINDOW,
    MAX_CAMPAIGN_DIVISIONS,
};
use crate::ports::{
    BusError, Claim, ClaimResult, Clock, CreateOutcome, EventBus, Idempotency, Recipient,
    SendMessage, Store, StoreError,
};
use crate::usecases::send::TokenDeriver;

/// Longest `Idempotency-Key` accepted, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What starting a send needs besides the store: the bus the fan-out and deliveries go
/// through, and how registration tokens are made (see [`crate::usecases::send`]).
pub struct Sending {
    pub bus: Arc<dyn EventBus>,
    pub tokens: Arc<TokenDeriver>,
    /// How long a registration link stays valid (`SendConfig::token_ttl`).
    pub token_ttl: time::Duration,
}

impl std::fmt::Debug for Sending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sending")
            .field("token_ttl", &self.token_ttl)
            .finish_non_exhaustive()
    }
}

/// A bulk send as the manager asked for it, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCampaign {
    pub recipients: Recipients,
    pub limit_to_uninvited: bool,
    pub template_id: TemplateId,
    /// `None`: the first division's address (of the first picked contact's division, for a
    /// hand-picked campaign).
    pub email_from: Option<Email>,
}

/// Whom a bulk send goes to: one form or the other, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// The contacts of these divisions that pass the filters (`division_ids` + `filters`).
    Divisions {
        division_ids: Vec<DivisionId>,
        filters: Filters,
    },
    /// These contacts, hand-picked (`contact_ids`).
    Contacts(PickedContacts),
}

/// Most unknown contact ids a refusal names (it says how many there were in all).
pub const MAX_UNKNOWN_NAMED: usize = 10;

/// An individual invite, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendIndividual {
    pub contact_id: ContactId,
    pub template_id: TemplateId,
    /// `None`: the contact's division's address.
    pub email_from: Option<Email>,
    /// [`Trigger::Individual`] (an invitation), or [`Trigger::PortalKey`] (a matched sign-up
    /// request's portal key email: the template must be of that kind).
    pub trigger: Trigger,
    /// Where the email goes; `None`: the contact's address. A portal key email goes to the
    /// address the sign-up request came from.
    pub to: Option<Email>,
}

impl SendIndividual {
    /// An individual invitation to the contact's address.
    pub fn invitation(
        contact_id: ContactId,
        template_id: TemplateId,
        email_from: Option<Email>,
    ) -> Self {
        Self {
            contact_id,
            template_id,
            email_from,
            trigger: Trigger::Individual,
            to: None,
        }
    }
}

/// What a started send answers (`202 {campaign_id, status}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub campaign_id: CampaignId,
    pub status: CampaignStatus,
}

/// Why an individual contact is never invited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSendable {
    Accepted,
    Suppressed,
    NoEmail,
}

impl NotSendable {
    fn describe(self) -> &'static str {
        match self {
            Self::Accepted => {
                "has already registered (portal status accepted) and is never invited"
            }
            Self::Suppressed => {
                "has an address on the suppression list (bounced, complained or unsubscribed)"
            }
            Self::NoEmail => "has no email address",
        }
    }
}

/// Why a send was refused or failed. Each variant's HTTP status is in its doc.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// 422: a value the domain refuses.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// 422: the template named does not exist.
    #[error("template {0} does not exist; save it with PUT /v1/templates/{0} first")]
    TemplateMissing(TemplateId),
    /// 422: the template is of another kind than the send needs.
    #[error("template {template_id} is a {} template; this send needs a {} template", kind.as_str(), expected.as_str())]
    WrongTemplateKind {
        template_id: TemplateId,
        kind: TemplateKind,
        expected: TemplateKind,
    },
    /// 422: the sender is not one the tenant's sender settings allow (see
    /// [`SenderSettings`](crate::domain::SenderSettings)); nothing was recorded.
    #[error(
        "{sender} is not an allowed sender for this tenant{}; {}",
        match from { Some(d) => format!(" (the default sender of division {d})"), None => String::new() },
        match check {
            SenderCheck::NoSettings => "no sender settings are saved yet: save the domains and addresses this tenant sends from with PUT /v1/settings/senders",
            _ => "send from an address the sender settings allow (GET /v1/settings/senders), or add it there",
        }
    )]
    SenderNotAllowed {
        sender: Email,
        /// The division whose default sender it is, when the request named none.
        from: Option<DivisionId>,
        check: SenderCheck,
    },
    /// 404: a division or contact that does not exist for the tenant.
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },
    /// 422: some picked contact ids are not contacts of the tenant (unknown, deleted, or
    /// another tenant's: the answer is the same); nothing was recorded.
    #[error(
        "{count} of the contact_ids {} not a contact of this tenant ({}{}); remove {} and send again",
        if *count == 1 { "is" } else { "are" },
        named.iter().map(ContactId::as_str).collect::<Vec<_>>().join(", "),
        if *count > named.len() { format!(" and {} more", count - named.len()) } else { String::new() },
        if *count == 1 { "it" } else { "them" }
    )]
    UnknownContacts {
        /// How many ids were unknown.
        count: usize,
        /// The first of them, in the order given (at most [`MAX_UNKNOWN_NAMED`]).
        named: Vec<ContactId>,
    },
    /// 422: the `Idempotency-Key` was used before with another request.
    #[error(
        "this Idempotency-Key was used before with a different request; \
         use a new key for a different campaign"
    )]
    IdempotencyMismatch,
    /// 409: a division was bulk-sent less than 24 hours ago; nothing was recorded.
    #[error(
        "division {division_id} was bulk-sent less than 24 hours ago; it can be sent again at {}",
        rfc3339(*retry_after)
    )]
    DivisionHeld {
        division_id: DivisionId,
        retry_after: OffsetDateTime,
    },
    /// 409: the contact was invited less than 24 hours ago.
    #[error(
        "contact {contact_id} was invited less than 24 hours ago; it can be invited again at {}",
        rfc3339(*retry_after)
    )]
    ContactHeld {
        contact_id: ContactId,
        retry_after: OffsetDateTime,
    },
    /// 409: another contact with the same address was invited less than 24 hours ago (one
    /// person gets one invitation); nothing was sent.
    #[error(
        "contact {contact_id}'s address was invited for another contact less than 24 hours ago; it can be invited again at {}",
        rfc3339(*retry_after)
    )]
    AddressHeld {
        contact_id: ContactId,
        retry_after: OffsetDateTime,
    },
    /// 422: the contact is accepted, suppressed or has no email.
    #[error("contact {contact_id} {}", reason.describe())]
    NotSendable {
        contact_id: ContactId,
        reason: NotSendable,
    },
    /// 503: the bulk campaign is recorded (and its divisions locked) but its fan-out message
    /// was not published; the same request with the same `Idempotency-Key` publishes it.
    #[error("campaign {campaign_id} was recorded but could not be queued for sending")]
    NotQueued {
        campaign_id: CampaignId,
        #[source]
        source: BusError,
    },
    /// 503: the individual invitation could not be queued; campaign and invitation are
    /// `failed` with the reason.
    #[error("the invitation of campaign {campaign_id} could not be queued for delivery")]
    DeliveryNotQueued {
        campaign_id: CampaignId,
        #[source]
        source: BusError,
    },
    /// 500: the store answered something its contract rules out here.
    #[error("unexpected store answer: {0}")]
    Unexpected(String),
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Checks an `Idempotency-Key`: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] characters.
pub fn check_idempotency_key(key: &str) -> Result<(), DomainError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(DomainError::InvalidField {
            field: "Idempotency-Key",
            reason: format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters, got {n}"),
        });
    }
    Ok(())
}

/// The canonical form a request is hashed in. Versioned, so a later change of the form can
/// never make an old key match a different request.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    division_ids: &'a [DivisionId],
    filters: Filters,
    limit_to_uninvited: bool,
    template_id: &'a TemplateId,
    email_from: Option<&'a str>,
}

/// The canonical form of a hand-picked request (version 2: it can never equal a version-1
/// form). The ids are a set, sorted; the first picked matters only when it picks the sender.
#[derive(Serialize)]
struct CanonicalPicked<'a> {
    v: u8,
    contact_ids: Vec<&'a ContactId>,
    sender_contact: Option<&'a ContactId>,
    limit_to_uninvited: bool,
    template_id: &'a TemplateId,
    email_from: Option<&'a str>,
}

/// SHA-256 of the canonical serialization of a parsed request (see the module docs).
pub fn request_hash(request: &StartCampaign) -> [u8; 32] {
    let set = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let email_from = request.email_from.as_ref().map(Email::as_str);
    // Structs of strings, lists and booleans always serialize.
    let bytes = match &request.recipients {
        Recipients::Divisions {
            division_ids,
            filters: f,
        } => serde_json::to_vec(&Canonical {
            v: 1,
            division_ids,
            filters: Filters {
                account_class: set(&f.account_class),
                bill_group: set(&f.bill_group),
                account_source: set(&f.account_source),
                site_source: set(&f.site_source),
                ..f.clone()
            },
            limit_to_uninvited: request.limit_to_uninvited,
            template_id: &request.template_id,
            email_from,
        }),
        Recipients::Contacts(picked) => {
            let mut contact_ids: Vec<&ContactId> = picked.as_slice().iter().collect();
            contact_ids.sort();
            serde_json::to_vec(&CanonicalPicked {
                v: 2,
                contact_ids,
                sender_contact: email_from.is_none().then(|| picked.first()),
                limit_to_uninvited: request.limit_to_uninvited,
                template_id: &request.template_id,
                email_from,
            })
        }
    }
    .unwrap_or_default();
    Sha256::digest(&bytes).into()
}

fn check_divisions(ids: &[DivisionId]) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::InvalidField {
        field: "division_ids",
        reason,
    };
    if ids.is_empty() {
        return Err(invalid("name at least one division".into()));
    }
    if ids.len() > MAX_CAMPAIGN_DIVISIONS {
        return Err(invalid(format!(
            "at most {MAX_CAMPAIGN_DIVISIONS} divisions per campaign, got {}",
            ids.len()
        )));
    }
    let mut sorted: Vec<&DivisionId> = ids.iter().collect();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(format!("division {} is named twice", w[0])));
    }
    Ok(())
}

async fn require_template(
    store: &dyn Store,
    tenant: &TenantId,
    id: &TemplateId,
    kind: TemplateKind,
) -> Result<(), CampaignError> {
    match store.get_template(tenant, id).await? {
        Some(t) if t.kind() == kind => Ok(()),
        Some(t) => Err(CampaignError::WrongTemplateKind {
            template_id: id.clone(),
            kind: t.kind(),
            expected: kind,
        }),
        None => Err(CampaignError::TemplateMissing(id.clone())),
    }
}

/// Refuses a sender the tenant's sender settings do not allow (`from`: the division whose
/// default sender it is, when the request named none). An allowed sender comes with the
/// settings' display name, for the campaign to keep.
pub async fn require_sender(
    store: &dyn Store,
    tenant: &TenantId,
    sender: &Email,
    from: Option<&DivisionId>,
) -> Result<Option<DisplayName>, CampaignError> {
    let settings = store.get_sender_settings(tenant).await?;
    match SenderCheck::of(settings.as_ref(), sender) {
        SenderCheck::Allowed => Ok(settings.and_then(|s| s.display_name)),
        check => Err(CampaignError::SenderNotAllowed {
            sender: sender.clone(),
            from: from.cloned(),
            check,
        }),
    }
}

fn division_missing(id: &DivisionId) -> CampaignError {
    CampaignError::NotFound {
        kind: "division",
        id: id.to_string(),
    }
}

/// `POST /v1/campaigns`: records a bulk campaign and queues its fan-out (see the module docs).
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn start_campaign(
    store: &dyn Store,
    clock: &dyn Clock,
    sending: &Sending,
    tenant: &TenantId,
    created_by: &str,
    mut request: StartCampaign,
    idempotency_key: Option<String>,
) -> Result<Started, CampaignError> {
    if let Recipients::Divisions {
        division_ids,
        filters,
    } = &mut request.recipients
    {
        check_divisions(division_ids)?;
        *filters = std::mem::take(filters).validate()?;
    }
    let idempotency = match idempotency_key {
        Some(key) => {
            check_idempotency_key(&key)?;
            Some(Idempotency {
                key,
                body_hash: request_hash(&request),
            })
        }
        None => None,
    };
    require_template(
        store,
        tenant,
        &request.template_id,
        TemplateKind::Invitation,
    )
    .await?;
    let StartCampaign {
        recipients,
        limit_to_uninvited,
        template_id,
        email_from,
    } = request;
    // What the campaign records: its divisions and filters, or its picked contacts and the
    // divisions they are in (with no filters).
    let (division_ids, filters, picked) = match recipients {
        Recipients::Divisions {
            division_ids,
            filters,
        } => (division_ids, filters, None),
        Recipients::Contacts(picked) => {
            let divisions = locate_picked(store, tenant, &picked).await?;
            (divisions, Filters::default(), Some(picked))
        }
    };
    let (email_from, display_name) = match email_from {
        Some(e) => {
            let name = require_sender(store, tenant, &e, None).await?;
            (e, name)
        }
        None => {
            let first = division_ids
                .first()
                .ok_or_else(|| CampaignError::Unexpected("a campaign without divisions".into()))?;
            let sender = store
                .get_division(tenant, first)
                .await?
                .ok_or_else(|| division_missing(first))?
                .email_from;
            let name = require_sender(store, tenant, &sender, Some(first)).await?;
            (sender, name)
        }
    };

    let now = clock.now();
    let campaign = Campaign {
        campaign_id: CampaignId::generate(now),
        trigger: Trigger::Manual,
        status: CampaignStatus::Queued,
        division_ids,
        filters,
        limit_to_uninvited,
        template_id: template_id.to_string(),
        email_from,
        display_name,
        created_at: now,
        created_by: created_by.to_owned(),
        targeted: 0,
        skipped: Skipped::default(),
        categories: CategoryCounts::default(),
        sends: SendCounts::default(),
        pause_reason: None,
        recurring: None,
        selection: picked.as_ref().map(|p| HandPicked {
            // At most MAX_SELECTED_CONTACTS: it fits.
            contacts: u32::try_from(p.len()).unwrap_or(u32::MAX),
        }),
    };
    let outcome = match &picked {
        None => {
            store
                .create_campaign(tenant, &campaign, idempotency.as_ref(), now)
                .await?
        }
        Some(picked) => {
            store
                .create_selection_campaign(
                    tenant,
                    &campaign,
                    picked.as_slice(),
                    idempotency.as_ref(),
                    now,
                )
                .await?
        }
    };
    let started = match outcome {
        CreateOutcome::Created => {
            tracing::info!(
                campaign = %campaign.campaign_id,
                divisions = campaign.division_ids.len(),
                picked = campaign.selection.map(|s| s.contacts),
                "campaign recorded"
            );
            Started {
                campaign_id: campaign.campaign_id,
                status: campaign.status,
            }
        }
        CreateOutcome::Existing(existing) => {
            tracing::info!(campaign = %existing.campaign_id, status = existing.status.as_str(), "idempotent replay");
            Started {
                campaign_id: existing.campaign_id,
                status: existing.status,
            }
        }
        CreateOutcome::IdempotencyMismatch => return Err(CampaignError::IdempotencyMismatch),
        CreateOutcome::DivisionHeld {
            division_id,
            retry_after,
        } => {
            return Err(CampaignError::DivisionHeld {
                division_id,
                retry_after,
            })
        }
        CreateOutcome::DivisionMissing { division_id } => {
            return Err(division_missing(&division_id))
        }
    };
    if started.status == CampaignStatus::Queued {
        let message = SendMessage::FanOut {
            tenant: tenant.clone(),
            campaign_id: started.campaign_id.clone(),
            cursor: None,
            spec: None,
        };
        sending
            .bus
            .publish(&[message])
            .await
            .map_err(|source| CampaignError::NotQueued {
                campaign_id: started.campaign_id.clone(),
                source,
            })?;
    }
    Ok(started)
}

/// The divisions the picked contacts are in, in the order of the first contact picked in
/// each (so the first is the first contact's). Unknown ids — and another tenant's, which
/// this tenant's keys cannot reach — refuse the request, naming the first few.
async fn locate_picked(
    store: &dyn Store,
    tenant: &TenantId,
    picked: &PickedContacts,
) -> Result<Vec<DivisionId>, CampaignError> {
    let located = store.locate_contacts(tenant, picked.as_slice()).await?;
    let unknown: Vec<&ContactId> = picked
        .as_slice()
        .iter()
        .filter(|id| !located.contains_key(*id))
        .collect();
    if !unknown.is_empty() {
        return Err(CampaignError::UnknownContacts {
            count: unknown.len(),
            named: unknown
                .into_iter()
                .take(MAX_UNKNOWN_NAMED)
                .cloned()
                .collect(),
        });
    }
    let mut divisions: Vec<DivisionId> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in picked.as_slice() {
        if let Some(d) = located.get(id) {
            if seen.insert(d) {
                divisions.push(d.clone());
            }
        }
    }
    if divisions.len() > MAX_CAMPAIGN_DIVISIONS {
        return Err(DomainError::InvalidField {
            field: "contact_ids",
            reason: format!(
                "the picked contacts are in {} divisions; a hand-picked campaign spans at most \
                 {MAX_CAMPAIGN_DIVISIONS}: split the selection into several campaigns",
                divisions.len()
            ),
        }
        .into());
    }
    if divisions.is_empty() {
        return Err(CampaignError::Unexpected(
            "picked contacts located in no division".into(),
        ));
    }
    Ok(divisions)
}

/// `POST /v1/invitations/individual`: invites one contact now (see the module docs).
#[tracing::instrument(skip_all, fields(tenant = %tenant, contact = %request.contact_id))]
pub async fn send_individual(
    store: &dyn Store,
    clock: &dyn Clock,
    sending: &Sending,
    tenant: &TenantId,
    created_by: &str,
    request: SendIndividual,
) -> Result<Started, CampaignError> {
    let kind = match request.trigger {
        Trigger::PortalKey => TemplateKind::PortalKey,
        _ => TemplateKind::Invitation,
    };
    require_template(store, tenant, &request.template_id, kind).await?;
    let contact_id = request.contact_id;
    let mut contact = store
        .get_contact(tenant, &contact_id)
        .await?
        .ok_or_else(|| CampaignError::NotFound {
            kind: "contact",
            id: contact_id.to_string(),
        })?;
    if let Some(to) = request.to {
        contact.email = Some(to);
    }
    let not_sendable = |reason| CampaignError::NotSendable {
        contact_id: contact_id.clone(),
        reason,
    };
    let suppressed = match &contact.email {
        Some(e) => store.is_suppressed(tenant, e).await?,
        None => false,
    };
    let now = clock.now();
    match classify(&contact, now, suppressed, false) {
        SendOutcome::Accepted => return Err(not_sendable(NotSendable::Accepted)),
        SendOutcome::NoEmail => return Err(not_sendable(NotSendable::NoEmail)),
        SendOutcome::Suppressed => return Err(not_sendable(NotSendable::Suppressed)),
        SendOutcome::Held24h => {
            let last = contact.last_invited_at.unwrap_or(now);
            return Err(CampaignError::ContactHeld {
                contact_id,
                retry_after: last + HOLD_WINDOW,
            });
        }
        // `NotTargeted` needs limit_to_uninvited, which an individual invite never has.
        SendOutcome::Eligible | SendOutcome::NotTargeted => {}
    }
    let Some(email) = contact.email.clone() else {
        return Err(not_sendable(NotSendable::NoEmail));
    };
    let division = store
        .get_division(tenant, &contact.division_id)
        .await?
        .ok_or_else(|| division_missing(&contact.division_id))?;
    let (email_from, display_name) = match request.email_from {
        Some(e) => {
            let name = require_sender(store, tenant, &e, None).await?;
            (e, name)
        }
        None => {
            let name = require_sender(
                store,
                tenant,
                &division.email_from,
                Some(&division.division_id),
            )
            .await?;
            (division.email_from.clone(), name)
        }
    };

    let campaign = Campaign {
        campaign_id: CampaignId::generate(now),
        trigger: request.trigger,
        status: CampaignStatus::Queued,
        division_ids: vec![contact.division_id.clone()],
        filters: Filters::default(),
        limit_to_uninvited: false,
        template_id: request.template_id.to_string(),
        email_from,
        display_name,
        created_at: now,
        created_by: created_by.to_owned(),
        targeted: 0,
        skipped: Skipped::default(),
        categories: CategoryCounts::default(),
        sends: SendCounts::default(),
        pause_reason: None,
        recurring: None,
        selection: None,
    };
    let id = campaign.campaign_id.clone();
    match store.create_campaign(tenant, &campaign, None, now).await? {
        CreateOutcome::Created => {}
        CreateOutcome::DivisionMissing { division_id } => {
            return Err(division_missing(&division_id))
        }
        other => {
            return Err(CampaignError::Unexpected(format!(
                "{other:?} for an individual campaign without idempotency key"
            )))
        }
    }

    let token = sending.tokens.token(tenant, &id, &contact_id);
    let claim = Claim {
        contact_id: contact_id.clone(),
        division_id: Some(contact.division_id.clone()),
        invitation: Invitation {
            campaign_id: id.clone(),
            contact_id: contact_id.clone(),
            email: email.clone(),
            contact_name: contact.contact_name.clone(),
            account_number: contact.account_number.clone(),
            registration_token_hash: hash_token(&token),
            expires_at: now + sending.token_ttl,
            state: InvitationState::new(),
            created_at: now,
        },
    };
    let result = store
        .claim_contacts(tenant, &id, std::slice::from_ref(&claim), now)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CampaignError::Unexpected("no result for one claim".into()))?;
    let refused = match result {
        ClaimResult::Claimed | ClaimResult::AlreadyClaimedByThisCampaign => None,
        ClaimResult::Held { until } => Some((
            format!("contact {contact_id} was invited by another send at the same time"),
            CampaignError::ContactHeld {
                contact_id: contact_id.clone(),
                retry_after: until,
            },
        )),
        ClaimResult::DuplicateAddress { until } => Some((
            format!(
                "contact {contact_id}'s address was invited for another contact within 24 hours"
            ),
            CampaignError::AddressHeld {
                contact_id: contact_id.clone(),
                retry_after: until,
            },
        )),
        ClaimResult::Accepted => Some((
            format!("contact {contact_id} registered before it could be invited"),
            not_sendable(NotSendable::Accepted),
        )),
        ClaimResult::Missing => Some((
            format!("contact {contact_id} was deleted before it could be invited"),
            CampaignError::NotFound {
                kind: "contact",
                id: contact_id.to_string(),
            },
        )),
    };
    if let Some((reason, error)) = refused {
        move_status(
            store,
            tenant,
            &id,
            CampaignStatus::Queued,
            CampaignEvent::Fail,
            Some(reason),
        )
        .await?;
        return Err(error);
    }
    // (The claim counted the campaign's `targeted`, `in_process` and `pending` in the same write.)
    // Nothing to fan out: the campaign goes straight to `sending`.
    let mut status = CampaignStatus::Queued;
    for event in [CampaignEvent::FanOutStarted, CampaignEvent::FanOutFinished] {
        status = move_status(store, tenant, &id, status, event, None).await?;
    }
    let message = SendMessage::Deliver {
        tenant: tenant.clone(),
        campaign_id: id.clone(),
        recipients: vec![Recipient {
            fresh: result == ClaimResult::Claimed,
            ..recipient(&contact, email, division.name)
        }],
        spec: None,
    };
    if let Err(source) = sending.bus.publish(&[message]).await {
        let reason = format!("the delivery could not be queued: {source}");
        let outcome = InvitationFact::SendFailed {
            reason: reason.clone(),
        };
        store
            .record_send_outcomes(tenant, &id, &[(contact_id.clone(), outcome)])
            .await?;
        move_status(
            store,
            tenant,
            &id,
            status,
            CampaignEvent::Fail,
            Some(reason),
        )
        .await?;
        return Err(CampaignError::DeliveryNotQueued {
            campaign_id: id,
            source,
        });
    }
    tracing::info!(campaign = %id, "individual invitation queued");
    Ok(Started {
        campaign_id: id,
        status,
    })
}

fn recipient(contact: &ContactRecord, email: Email, division_name: String) -> Recipient {
    Recipient {
        contact_id: contact.contact_id.clone(),
        email,
        contact_name: contact.contact_name.clone(),
        account_number: contact.account_number.clone(),
        account_name: contact.account_name.clone(),
        division_id: contact.division_id.clone(),
        division_name,
        portal_key: contact
            .portal_key
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default(),
        fresh: false,
    }
}

/// Moves a campaign by `event` from `from`; answers where it is now (when someone moved it
/// first, the status they left it in).
async fn move_status(
    store: &dyn Store,
    tenant: &TenantId,
    id: &CampaignId,
    from: CampaignStatus,
    event: CampaignEvent,
    reason: Option<String>,
) -> Result<CampaignStatus, CampaignError> {
    let to = from.next(event)?;
    if store
        .update_campaign_status(tenant, id, from, to, reason)
        .await?
    {
        return Ok(to);
    }
    let now = store
        .get_campaign(tenant, id)
        .await?
        .map(|c| c.status)
        .ok_or_else(|| CampaignError::Unexpected(format!("campaign {id} vanished")))?;
    tracing::warn!(campaign = %id, expected = from.as_str(), found = now.as_str(), "campaign moved by someone else");
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> StartCampaign {
        StartCampaign {
            recipients: Recipients::Divisions {
                division_ids: vec![
                    DivisionId::parse("d1").unwrap(),
                    DivisionId::parse("d2").unwrap(),
                ],
                filters: Filters {
                    bill_group: vec!["B".into(), "A".into()],
                    ..Filters::default()
                },
            },
            limit_to_uninvited: true,
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
        }
    }

    fn divisions(r: &mut StartCampaign) -> (&mut Vec<DivisionId>, &mut Filters) {
        match &mut r.recipients {
            Recipients::Divisions {
                division_ids,
                filters,
            } => (division_ids, filters),
            Recipients::Contacts(_) => unreachable!("a request over divisions"),
        }
    }

    fn picked(ids: &[&str]) -> StartCampaign {
        StartCampaign {
            recipients: Recipients::Contacts(
                PickedContacts::parse(ids.iter().map(|i| ContactId::parse(*i).unwrap()).collect())
                    .unwrap(),
            ),
            ..request()
        }
    }

    #[test]
    fn the_request_hash_ignores_the_order_of_filter_values_but_not_what_is_sent() {
        let base = request_hash(&request());
        let mut same = request();
        divisions(&mut same).1.bill_group = vec!["A".into(), "B".into(), "A".into()];
        assert_eq!(request_hash(&same), base);

        let mut changes: Vec<StartCampaign> = Vec::new();
        let mut r = request();
        divisions(&mut r).0.reverse();
        changes.push(r);
        let mut r = request();
        r.limit_to_uninvited = false;
        changes.push(r);
        let mut r = request();
        r.template_id = TemplateId::parse("other").unwrap();
        changes.push(r);
        let mut r = request();
        r.email_from = Some(Email::parse("board@example.com").unwrap());
        changes.push(r);
        let mut r = request();
        divisions(&mut r).1.balance_due = true;
        changes.push(r);
        changes.push(picked(&["d1", "d2"]));
        for changed in changes {
            assert_ne!(request_hash(&changed), base, "{changed:?}");
        }
    }

    #[test]
    fn a_picked_request_hashes_its_ids_as_a_set_but_the_first_while_it_picks_the_sender() {
        let base = request_hash(&picked(&["c1", "c2", "c3"]));
        assert_eq!(request_hash(&picked(&["c1", "c3", "c2", "c3"])), base);
        assert_ne!(request_hash(&picked(&["c2", "c1", "c3"])), base);
        assert_ne!(request_hash(&picked(&["c1", "c2"])), base);
        let named = |ids: &[&str]| {
            let mut r = picked(ids);
            r.email_from = Some(Email::parse("board@example.com").unwrap());
            request_hash(&r)
        };
        assert_eq!(named(&["c1", "c2", "c3"]), named(&["c3", "c2", "c1"]));
        assert_ne!(named(&["c1", "c2", "c3"]), base);
    }

    #[test]
    fn unknown_contacts_are_counted_and_the_first_named() {
        let ids = |n: usize| (0..n).map(|i| ContactId::parse(format!("x{i}")).unwrap());
        let one = CampaignError::UnknownContacts {
            count: 1,
            named: ids(1).collect(),
        };
        assert_eq!(
            one.to_string(),
            "1 of the contact_ids is not a contact of this tenant (x0); remove it and send again"
        );
        let many = CampaignError::UnknownContacts {
            count: 12,
            named: ids(MAX_UNKNOWN_NAMED).collect(),
        };
        let text = many.to_string();
        assert!(
            text.starts_with("12 of the contact_ids are not a contact of this tenant (x0, x1,"),
            "{text}"
        );
        assert!(text.contains("x9 and 2 more); remove them"), "{text}");
    }

    #[test]
    fn divisions_must_be_one_to_fifty_and_distinct() {
        let d = |s: &str| DivisionId::parse(s).unwrap();
        assert!(check_divisions(&[]).is_err());
        assert!(check_divisions(&[d("a"), d("b"), d("a")]).is_err());
        let many: Vec<DivisionId> = (0..=MAX_CAMPAIGN_DIVISIONS)
            .map(|i| d(&format!("d{i}")))
            .collect();
        assert!(check_divisions(&many).is_err());
        assert!(check_divisions(&many[..MAX_CAMPAIGN_DIVISIONS]).is_ok());
    }

    #[test]
    fn idempotency_keys_are_one_to_255_characters() {
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key(&"k".repeat(255)).is_ok());
        assert!(check_idempotency_key(&"é".repeat(255)).is_ok());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
    }
}
