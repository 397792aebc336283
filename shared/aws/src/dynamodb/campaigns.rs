//! Campaigns, invitations and the two 24-hour rules as DynamoDB conditional writes.
//!
//! # Items
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | campaign | `T#{t}#CMP#{campaign}` | `CMP` | `trigger`, `status`, `divs` (list), `filters` (JSON), `uninv`, `tpl`, `from`, `at`, `by`, `targeted`, `sk_acc`, `sk_held`, `sk_sup`, `sk_noemail`, `n_{category}` (8), `snd_{send state}` (3) (N), `why`?, `rec`? (a recurring run's setting, local date and rule, JSON), `picked`? (N: a hand-picked campaign's number of contacts) |
//! | invitation | `T#{t}#CMP#{campaign}` | `INV#{contact}` | `email`, `name`, `acc_no`, `q` (the three lowercased, for search), `tok` (B, SHA-256 of the token), `exp`, `cat`, `snd`, `sup` (Bool), `why`?, `at`, `token_used_at`? (set by `register`), `gsi1pk` = `TOK#{hex of tok}`, `gsi1sk` = `T#{t}` (the token index, see `registration`) |
//! | division's campaign | `T#{t}#DCMP#{division}` | `{campaign}` | — (lists a division's campaigns; ids begin with their creation time, so sk order is age) |
//! | idempotency key | `T#{t}#IDEM#{hex SHA-256 of the key}` | `IDEM` | `cmp`, `body` (B, SHA-256 of the body) |
//! | selection chunk | `T#{t}#SEL#{campaign}` | `{chunk:04}` | `ids` (list of up to [`SELECTION_CHUNK`] contact ids, in the order picked) |
//!
//! A campaign and its invitations share a partition, so "every invitation of a campaign"
//! (statistics, resuming a delivery) is one Query in contact order, and `INV#` sorts after
//! `CMP`. The idempotency key is hashed into the key, so any header text is safe in it.
//! The division lock is the division item's `last_bulk_sent_at`; the contact claim is the
//! contact state item's `invited_at` (in its sharded division partition, found through the
//! locator). Times are fixed-width RFC 3339 strings, so `<=` on them compares instants.
//!
//! # Creating a campaign
//!
//! One TransactWriteItems: per division (manual sends only) an Update `SET last_bulk_sent_at
//! = now` under `attribute_exists(pk) AND (attribute_not_exists(last_bulk_sent_at) OR
//! last_bulk_sent_at <= now - 24h)`; a Put of the campaign under `attribute_not_exists(pk)`;
//! with an idempotency key a Put of its item under `attribute_not_exists(pk)`; and per
//! division (every trigger) a Put of the division's campaign item. That is at most
//! 2 + 2 × [`MAX_CAMPAIGN_DIVISIONS`] = 100 items, DynamoDB's limit. Every
//! Update/Put asks for `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a
//! `TransactionCanceledException`'s per-item cancellation reasons say what failed: the key
//! (its old item holds the first body's hash: same → `Existing`, other → mismatch), a
//! division (no old item → missing; else its `last_bulk_sent_at` + 24h is `retry_after`).
//! A `TransactionConflict` (a concurrent transaction on the same items) is retried.
//!
//! A hand-picked campaign (`create_selection_campaign`) is the same transaction with no
//! division Update — its divisions are neither checked nor locked — and, after the items
//! above, a Put per chunk of its contact ids: at most 10,000 ids / [`SELECTION_CHUNK`] = 20
//! chunks, so 2 + 49 + 20 = 71 items. The ids do not go in the campaign item, which every
//! fan-out and delivery step reads: 10,000 ids of up to 64 characters would be ~670 KB, over
//! DynamoDB's 400 KB item limit, while a chunk is at most ~35 KB and a fan-out page of up to
//! 500 ids reads one or two chunks. Recorded in the campaign's own transaction, a selection
//! exists exactly when its campaign does: a replay or a killed fan-out always finds it.
//!
//! # Claiming contacts
//!
//! One BatchGetItem of the contacts' locators finds each one's partition (no locator →
//! `Missing`; a fan-out's claims carry their division and skip it). Then, 33 claims per
//! TransactWriteItems (each claim is three items, plus the campaign's counters: the limit is
//! 100): an Update of the contact's state item `SET invited_at = now, status = pending ADD
//! n_inv 1` under `(attribute_not_exists(status) OR status <> accepted) AND
//! (attribute_not_exists(invited_at) OR invited_at <= now - 24h)`, a Put of the invitation
//! under `attribute_not_exists(pk)`, a Put of the **address claim** (`T#{t}#ADDR#{hash of the
//! normalized address}` / `ADDR`: `at`, `cmp`, `contact`, and a `ttl` a day after its 24
//! hours) under `attribute_not_exists(pk) OR at <= now - 24h OR contact = :this contact`, and
//! one Update adding the claims to the campaign's `targeted`, category and send counters.
//! `n_inv` is the contact's `invitations_sent` (what a recurring setting's maximum counts):
//! it is counted in the claim's own write, so a cancelled claim (held, accepted, replayed)
//! counts nothing and no request is added. A transaction names an item once, so contacts of
//! one call sharing an address go in passes: the first of each address, then the next (which
//! finds the address claimed, unless the first was refused for its own reasons).
//!
//! A transaction is all-or-nothing, so one held contact cancels its 32 neighbours. On
//! cancellation the per-item reasons classify each failed claim — its invitation exists →
//! `AlreadyClaimedByThisCampaign`; its state item (the `ALL_OLD` copy) is accepted →
//! `Accepted`, else recently invited → `Held { until }`; its address claim (`ALL_OLD`) is
//! another contact's of the last 24 hours → `DuplicateAddress { until }` — and the rest of the
//! batch, which wrote nothing, is sent again without them. Every condition is evaluated, so
//! one retry per batch suffices unless transactions conflict; rounds are bounded
//! ([`MAX_CLAIM_ROUNDS`]) with back-off. Batches go one after another: a claim call is a
//! fan-out page, and its throughput is one transaction per 33 contacts.
//!
//! The contact's existence is established by the locator read (or the fan-out's listing)
//! just before the transaction, not inside it (a ConditionCheck on the sync item would be a
//! fourth item per claim). A contact deleted in between leaves an orphan state item, which
//! every read ignores (see `items::Merger`).
//!
//! Requests per 1,000 claims: 10 BatchGetItem (none from a fan-out) + 31 TransactWriteItems
//! when nothing is held; at most one more transaction per batch that holds a held, accepted,
//! replayed or duplicate-address contact.
//!
//! Facts about invitations, invitation lists and recounts are in `invitations`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::batch;
use super::items::{
    self, get_hash, get_num, get_str, malformed, num, req_str, req_time, s, signed, time_attr,
    time_value, Item,
};
use super::keys::{
    self, campaign_pk, division_campaigns_pk, idempotency_pk, invitation_sk, INVITATION_SK_PREFIX,
};
use super::ops::{self, cancellation, CONDITION_FAILED};
use super::DynamoStore;
use portal_core::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DisplayName, DivisionId,
    Email, Filters, HandPicked, Invitation, InvitationCategory, InvitationFact, InvitationState,
    PortalStatus, SendCounts, SendState, Skipped, TenantId, Trigger, HOLD_WINDOW,
    MAX_CAMPAIGN_DIVISIONS,
};
use portal_core::ports::{
    check_selection, Attempt, BatchWritten, CampaignStore, Claim, ClaimResult, CreateOutcome,
    FactResult, Idempotency, InvitationFilter, LeaseOutcome, LeaseStep, Page, Recount, StoreError,
    MAX_CLAIMS,
};

impl DynamoStore {
    /// Holds `email` for `contact` from `at` (what `record_invited` adds to a contact's
    /// invitation time), unless a later claim holds it already.
    pub(super) async fn hold_address(
        &self,
        tenant: &TenantId,
        email: &Email,
        contact: &ContactId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let item = address_claim(
            tenant,
            email,
            "",
            contact,
            &time_value(at)?,
            &address_ttl(at),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #at <= :at")
            .expression_attribute_names("#at", ADDRESS_AT)
            .expression_attribute_values(":at", time_value(at)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if ops::condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::backend("PutItem", e)),
        }
    }
}

/// The times a claim's conditions and items carry.
struct ClaimTimes {
    now: AttributeValue,
    /// `now - 24h`: claims at or before it no longer hold.
    cutoff: AttributeValue,
    /// When DynamoDB may drop an address claim (a day after it stops holding).
    ttl: AttributeValue,
}

/// An address claim item's sort key and attributes (see the module docs).
const ADDRESS_SK: &str = "ADDR";
const ADDRESS_AT: &str = "at";
const ADDRESS_CAMPAIGN: &str = "cmp";
const ADDRESS_CONTACT: &str = "contact";

/// The partition of a tenant's address claim: the address, normalized, hashed (so any
/// address text is safe in a key, and keys do not spell addresses out).
fn address_pk(t: &TenantId, email: &Email) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "T#{t}#ADDR#{}",
        keys::hex(&Sha256::digest(email.normalized().as_bytes()))
    )
}

/// An address claim item: `email` held for `contact` (by `campaign`; empty when recorded
/// outside a campaign) from `at`, dropped by DynamoDB at `ttl`.
fn address_claim(
    t: &TenantId,
    email: &Email,
    campaign: &str,
    contact: &ContactId,
    at: &AttributeValue,
    ttl: &AttributeValue,
) -> Item {
    let mut item = items::key(address_pk(t, email), ADDRESS_SK.to_owned());
    item.insert(ADDRESS_AT.to_owned(), at.clone());
    item.insert(ADDRESS_CAMPAIGN.to_owned(), s(campaign));
    item.insert(ADDRESS_CONTACT.to_owned(), s(contact.as_str()));
    item.insert("ttl".to_owned(), ttl.clone());
    item
}

/// The `ttl` of an address claimed at `at`: a day after its 24 hours, DynamoDB drops it.
fn address_ttl(at: OffsetDateTime) -> AttributeValue {
    let expires: OffsetDateTime = at + HOLD_WINDOW * 2;
    num(u64::try_from(expires.unix_timestamp()).unwrap_or(0))
}

/// Contact ids per selection chunk item (see the module docs).
pub(super) const SELECTION_CHUNK: usize = 500;

/// Claims per TransactWriteItems: two items each plus the campaign's counters, 99 items
/// per transaction.
const CLAIMS_PER_TRANSACTION: usize = 33;
/// Rounds of a claim batch (or a campaign creation) before giving up on conflicts.
pub(super) const MAX_CLAIM_ROUNDS: u32 = 8;

pub(super) const CAMPAIGN_SK: &str = "CMP";
const IDEMPOTENCY_SK: &str = "IDEM";

// Campaign item.
const TRIGGER: &str = "trigger";
const STATUS: &str = "status";
const DIVISIONS: &str = "divs";
const FILTERS: &str = "filters";
const UNINVITED: &str = "uninv";
const TEMPLATE: &str = "tpl";
const FROM: &str = "from";
/// The sender display name pattern the campaign started with (absent: the division's name).
const DISPLAY_NAME: &str = "fromname";
pub(super) const CREATED_AT: &str = "at";
const CREATED_BY: &str = "by";
const TARGETED: &str = "targeted";
const SK_ACCEPTED: &str = "sk_acc";
const SK_HELD: &str = "sk_held";
const SK_SUPPRESSED: &str = "sk_sup";
const SK_NO_EMAIL: &str = "sk_noemail";
const SK_DUPLICATE_ADDRESS: &str = "sk_dup";
pub(super) const REASON: &str = "why";
/// A recurring run's campaign: its `RecurringRun` as JSON (setting, local date, rule).
const RECURRING: &str = "rec";
/// A hand-picked campaign: how many contacts it names.
const PICKED: &str = "picked";
// Selection chunk item.
const SELECTION_IDS: &str = "ids";
// Invitation item.
pub(super) const EMAIL: &str = "email";
const CONTACT_NAME: &str = "name";
const ACCOUNT_NUMBER: &str = "acc_no";
pub(super) const SEARCH: &str = "q";
const TOKEN_HASH: &str = "tok";
/// When a registration consumed the invitation's token (absent while unused).
pub(super) const TOKEN_USED_AT: &str = "token_used_at";
const EXPIRES: &str = "exp";
pub(super) const CATEGORY: &str = "cat";
pub(super) const SEND: &str = "snd";
pub(super) const SUPPRESSED: &str = "sup";
// Idempotency item.
const IDEM_CAMPAIGN: &str = "cmp";
const IDEM_BODY: &str = "body";

/// The campaign attribute counting a category's invitations.
pub(super) fn category_attr(c: InvitationCategory) -> &'static str {
    use InvitationCategory as C;
    match c {
        C::InProcess => "n_in_process",
        C::Failed => "n_failed",
        C::Unopened => "n_unopened",
        C::Bounced => "n_bounced",
        C::Opened => "n_opened",
        C::Clicked => "n_clicked",
        C::Unsubscribed => "n_unsubscribed",
        C::Registered => "n_registered",
    }
}

/// The campaign attribute counting the invitations in a send state.
pub(super) fn send_attr(s: SendState) -> &'static str {
    match s {
        SendState::Pending => "snd_pending",
        SendState::Sent => "snd_sent",
        SendState::Failed => "snd_failed",
    }
}

/// Net counter moves of a set of changes: one entry per counter that moves, by attribute.
#[derive(Debug, Default)]
pub(super) struct Deltas(Vec<(&'static str, i64)>);

impl Deltas {
    pub fn add(&mut self, attr: &'static str, by: i64) {
        match self.0.iter_mut().find(|(a, _)| *a == attr) {
            Some((_, d)) => *d += by,
            None => self.0.push((attr, by)),
        }
    }

    /// Moves an invitation from `from` to `to`.
    pub fn moved(&mut self, from: &InvitationState, to: &InvitationState) {
        if from.category != to.category {
            self.add(category_attr(from.category), -1);
            self.add(category_attr(to.category), 1);
        }
        if from.send != to.send {
            self.add(send_attr(from.send), -1);
            self.add(send_attr(to.send), 1);
        }
    }

    /// The moves that are not zero.
    pub fn nonzero(&self) -> Vec<(&'static str, i64)> {
        self.0.iter().copied().filter(|(_, d)| *d != 0).collect()
    }
}

/// The stored counters of a campaign item.
pub(super) fn decode_counters(item: &Item) -> Result<(CategoryCounts, SendCounts), StoreError> {
    let mut categories = CategoryCounts::default();
    for c in InvitationCategory::ALL {
        *categories.get_mut(c) = get_num(item, category_attr(c))?;
    }
    let mut sends = SendCounts::default();
    for st in SendState::ALL {
        *sends.get_mut(st) = get_num(item, send_attr(st))?;
    }
    Ok((categories, sends))
}

fn encode_campaign(t: &TenantId, c: &Campaign) -> Result<Item, StoreError> {
    let filters =
        serde_json::to_string(&c.filters).map_err(|e| StoreError::backend("encode item", e))?;
    let mut item = items::key(campaign_pk(t, &c.campaign_id), CAMPAIGN_SK);
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put(TRIGGER, s(c.trigger.as_str()));
    put(STATUS, s(c.status.as_str()));
    put(
        DIVISIONS,
        AttributeValue::L(c.division_ids.iter().map(|d| s(d.as_str())).collect()),
    );
    put(FILTERS, s(filters));
    put(UNINVITED, AttributeValue::Bool(c.limit_to_uninvited));
    put(TEMPLATE, s(&c.template_id));
    put(FROM, s(c.email_from.as_str()));
    if let Some(name) = &c.display_name {
        put(DISPLAY_NAME, s(name.as_str()));
    }
    put(CREATED_AT, time_value(c.created_at)?);
    put(CREATED_BY, s(&c.created_by));
    put(TARGETED, num(c.targeted));
    put(SK_ACCEPTED, num(c.skipped.accepted));
    put(SK_HELD, num(c.skipped.held_24h));
    put(SK_DUPLICATE_ADDRESS, num(c.skipped.duplicate_address));
    put(SK_SUPPRESSED, num(c.skipped.suppressed));
    put(SK_NO_EMAIL, num(c.skipped.no_email));
    for cat in InvitationCategory::ALL {
        put(category_attr(cat), num(c.categories.get(cat)));
    }
    let mut sends = c.sends;
    for st in SendState::ALL {
        put(send_attr(st), num(*sends.get_mut(st)));
    }
    if let Some(r) = &c.pause_reason {
        put(REASON, s(r));
    }
    if let Some(run) = &c.recurring {
        let run = serde_json::to_string(run).map_err(|e| StoreError::backend("encode item", e))?;
        put(RECURRING, s(run));
    }
    if let Some(picked) = c.selection {
        put(PICKED, num(u64::from(picked.contacts)));
    }
    // The sweeper's index of unfinished campaigns (see `sweep`).
    if let Some((gpk, gsk)) = items::active_campaign_index(t, c)? {
        put(items::GSI1PK, gpk);
        put(items::GSI1SK, gsk);
    }
    Ok(item)
}

pub(super) fn decode_campaign(item: &Item) -> Result<Campaign, StoreError> {
    let pk = req_str(item, items::PK)?;
    let id = pk
        .rsplit_once("#CMP#")
        .map(|(_, id)| id)
        .unwrap_or_default();
    let division_ids = match item.get(DIVISIONS) {
        Some(AttributeValue::L(l)) => l
            .iter()
            .map(|v| match v {
                AttributeValue::S(d) => {
                    DivisionId::parse(d.as_str()).map_err(|_| malformed(DIVISIONS))
                }
                _ => Err(malformed(DIVISIONS)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(malformed(DIVISIONS)),
    };
    let filters: Filters =
        serde_json::from_str(req_str(item, FILTERS)?).map_err(|_| malformed(FILTERS))?;
    let (categories, sends) = decode_counters(item)?;
    Ok(Campaign {
        campaign_id: CampaignId::parse(id).map_err(|_| malformed("campaign id"))?,
        trigger: Trigger::parse(req_str(item, TRIGGER)?).ok_or_else(|| malformed(TRIGGER))?,
        status: CampaignStatus::parse(req_str(item, STATUS)?).ok_or_else(|| malformed(STATUS))?,
        division_ids,
        filters,
        limit_to_uninvited: matches!(item.get(UNINVITED), Some(AttributeValue::Bool(true))),
        template_id: req_str(item, TEMPLATE)?.to_owned(),
        email_from: Email::parse(req_str(item, FROM)?).map_err(|_| malformed(FROM))?,
        display_name: get_str(item, DISPLAY_NAME)
            .map(|n| DisplayName::parse(n).map_err(|_| malformed(DISPLAY_NAME)))
            .transpose()?,
        created_at: req_time(item, CREATED_AT)?,
        created_by: req_str(item, CREATED_BY)?.to_owned(),
        targeted: get_num(item, TARGETED)?,
        skipped: Skipped {
            accepted: get_num(item, SK_ACCEPTED)?,
            held_24h: get_num(item, SK_HELD)?,
            duplicate_address: get_num(item, SK_DUPLICATE_ADDRESS)?,
            suppressed: get_num(item, SK_SUPPRESSED)?,
            no_email: get_num(item, SK_NO_EMAIL)?,
        },
        categories,
        sends,
        pause_reason: get_str(item, REASON).map(str::to_owned),
        recurring: get_str(item, RECURRING)
            .map(|r| serde_json::from_str(r).map_err(|_| malformed(RECURRING)))
            .transpose()?,
        selection: match item.get(PICKED) {
            None => None,
            Some(_) => Some(HandPicked {
                contacts: u32::try_from(get_num(item, PICKED)?).map_err(|_| malformed(PICKED))?,
            }),
        },
    })
}

/// The chunk items of a selection, in order.
fn encode_selection<'a>(
    t: &TenantId,
    campaign: &CampaignId,
    ids: &'a [ContactId],
) -> impl Iterator<Item = Item> + 'a {
    let pk = keys::selection_pk(t, campaign);
    ids.chunks(SELECTION_CHUNK)
        .enumerate()
        .map(move |(n, chunk)| {
            let mut item = items::key(pk.clone(), keys::selection_sk(n));
            item.insert(SELECTION_IDS.into(), items::contact_list(chunk));
            item
        })
}

/// The number of a selection chunk, from its sort key.
fn selection_chunk_no(item: &Item) -> Result<usize, StoreError> {
    req_str(item, items::SK)?
        .parse()
        .map_err(|_| malformed("selection chunk key"))
}

/// The ids of a selection chunk.
fn decode_selection_chunk(item: &Item) -> Result<Vec<ContactId>, StoreError> {
    match item.get(SELECTION_IDS) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(id) => {
                    ContactId::parse(id.as_str()).map_err(|_| malformed(SELECTION_IDS))
                }
                _ => Err(malformed(SELECTION_IDS)),
            })
            .collect(),
        _ => Err(malformed(SELECTION_IDS)),
    }
}

fn encode_invitation(t: &TenantId, inv: &Invitation) -> Result<Item, StoreError> {
    let mut item = items::key(
        campaign_pk(t, &inv.campaign_id),
        invitation_sk(&inv.contact_id),
    );
    item.insert(EMAIL.into(), s(inv.email.as_str()));
    item.insert(CONTACT_NAME.into(), s(&inv.contact_name));
    item.insert(ACCOUNT_NUMBER.into(), s(&inv.account_number));
    item.insert(SEARCH.into(), s(inv.search_text().into_string()));
    item.insert(
        TOKEN_HASH.into(),
        AttributeValue::B(inv.registration_token_hash.to_vec().into()),
    );
    // The token index: a link names no tenant, the hash finds the invitation.
    item.insert(
        items::GSI1PK.into(),
        s(keys::token_gsi_pk(&inv.registration_token_hash)),
    );
    item.insert(items::GSI1SK.into(), s(keys::tenant_pk(t)));
    item.insert(EXPIRES.into(), time_value(inv.expires_at)?);
    item.insert(CATEGORY.into(), s(inv.state.category.as_str()));
    item.insert(SEND.into(), s(inv.state.send.as_str()));
    item.insert(
        SUPPRESSED.into(),
        AttributeValue::Bool(inv.state.suppressed),
    );
    if let Some(r) = &inv.state.reason {
        item.insert(REASON.into(), s(r));
    }
    item.insert(CREATED_AT.into(), time_value(inv.created_at)?);
    Ok(item)
}

/// The progress an invitation item records.
pub(super) fn decode_state(item: &Item) -> Result<InvitationState, StoreError> {
    Ok(InvitationState {
        category: InvitationCategory::parse(req_str(item, CATEGORY)?)
            .ok_or_else(|| malformed(CATEGORY))?,
        send: SendState::parse(req_str(item, SEND)?).ok_or_else(|| malformed(SEND))?,
        reason: get_str(item, REASON).map(str::to_owned),
        suppressed: matches!(item.get(SUPPRESSED), Some(AttributeValue::Bool(true))),
    })
}

/// The contact an invitation item belongs to (from its sort key).
pub(super) fn invitation_contact(item: &Item) -> Result<ContactId, StoreError> {
    let contact = req_str(item, items::SK)?
        .strip_prefix(INVITATION_SK_PREFIX)
        .ok_or_else(|| malformed("invitation sort key"))?;
    ContactId::parse(contact).map_err(|_| malformed("contact id"))
}

pub(super) fn decode_invitation(
    campaign: &CampaignId,
    item: &Item,
) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        campaign_id: campaign.clone(),
        contact_id: invitation_contact(item)?,
        email: Email::parse(req_str(item, EMAIL)?).map_err(|_| malformed(EMAIL))?,
        contact_name: get_str(item, CONTACT_NAME).unwrap_or_default().to_owned(),
        account_number: get_str(item, ACCOUNT_NUMBER).unwrap_or_default().to_owned(),
        registration_token_hash: get_hash(item, TOKEN_HASH)?,
        expires_at: req_time(item, EXPIRES)?,
        state: decode_state(item)?,
        created_at: req_time(item, CREATED_AT)?,
    })
}

pub(super) fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("TransactWriteItems", e)
}

fn backoff(round: u32) -> Duration {
    Duration::from_millis(20u64 << round.min(6))
}

pub(super) use super::ops::{retryable, Cancelled};

/// Too much input for one call (the caller's bug: the use case bounds it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct TooMany(pub &'static str);

impl DynamoStore {
    /// Held while a transaction is sent, when the handle serialises them (emulators).
    pub(super) async fn transaction_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.transaction_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The transaction item adding `deltas` to the campaign's counters; it requires the
    /// campaign to exist (a claim for a campaign never recorded cancels).
    pub(super) fn counters_item(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        deltas: &[(&'static str, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        self.counters_item_with(tenant, campaign, deltas, None)
    }

    /// [`DynamoStore::counters_item`], with `keep_above`: also on condition that the
    /// campaign is not `sending` or its pending count is above it — the drain check of a
    /// batch's last write, which fails only when the write completes the campaign (the old
    /// item comes back on failure, to tell it from a missing campaign).
    pub(super) fn counters_item_with(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        deltas: &[(&'static str, i64)],
        keep_above: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(campaign_pk(tenant, campaign), CAMPAIGN_SK)));
        update = match keep_above {
            None => update.condition_expression("attribute_exists(pk)"),
            Some(k) => update
                .condition_expression("attribute_exists(pk) AND (#st <> :sending OR #kp > :kp)")
                .expression_attribute_names("#kp", send_attr(SendState::Pending))
                .expression_attribute_names("#st", STATUS)
                .expression_attribute_values(":kp", signed(k))
                .expression_attribute_values(":sending", s(CampaignStatus::Sending.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
        };
        let mut adds = Vec::new();
        for (i, (attr, delta)) in deltas.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), *attr)
                .expression_attribute_values(format!(":c{i}"), signed(*delta));
        }
        let update = update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// What a cancelled creation means, from its reasons (`None`: retry).
    async fn classify_create(
        &self,
        tenant: &TenantId,
        divisions: &[DivisionId],
        idempotency: Option<&Idempotency>,
        reasons: &[CancellationReason],
        now: OffsetDateTime,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        let idem_index = divisions.len() + 1;
        if let Some(idem) = idempotency {
            if code(idem_index) == CONDITION_FAILED {
                let old = match reasons.get(idem_index).and_then(|r| r.item()) {
                    Some(item) => Some(item.clone()),
                    None => {
                        self.get_item(
                            "GetItem",
                            items::key(idempotency_pk(tenant, &idem.key), IDEMPOTENCY_SK),
                        )
                        .await?
                    }
                };
                // Gone again (cannot happen: keys are never deleted) — retry.
                let Some(old) = old else { return Ok(None) };
                if get_hash(&old, IDEM_BODY)? != idem.body_hash {
                    return Ok(Some(CreateOutcome::IdempotencyMismatch));
                }
                let id = CampaignId::parse(req_str(&old, IDEM_CAMPAIGN)?)
                    .map_err(|_| malformed(IDEM_CAMPAIGN))?;
                return match self.get_campaign(tenant, &id).await? {
                    Some(c) => Ok(Some(CreateOutcome::Existing(Box::new(c)))),
                    None => Err(malformed("idempotency key names a missing campaign")),
                };
            }
        }
        for (i, d) in divisions.iter().enumerate() {
            if code(i) != CONDITION_FAILED {
                continue;
            }
            let Some(old) = reasons.get(i).and_then(|r| r.item()) else {
                return Ok(Some(CreateOutcome::DivisionMissing {
                    division_id: d.clone(),
                }));
            };
            let last = time_attr(old, items::DIV_LAST_BULK)?.unwrap_or(now);
            return Ok(Some(CreateOutcome::DivisionHeld {
                division_id: d.clone(),
                retry_after: last + HOLD_WINDOW,
            }));
        }
        if super::ops::all_retryable(reasons) {
            return Ok(None);
        }
        Err(super::ops::unexpected(reasons))
    }

    /// The address claim of `claim`: a Put under "free, stale or this contact's own".
    fn address_item(
        &self,
        tenant: &TenantId,
        claim: &Claim,
        campaign: &CampaignId,
        times: &ClaimTimes,
    ) -> Result<TransactWriteItem, StoreError> {
        let ClaimTimes { now, cutoff, ttl } = times;
        let item = address_claim(
            tenant,
            &claim.invitation.email,
            campaign.as_str(),
            &claim.contact_id,
            now,
            ttl,
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #at <= :cutoff OR #ct = :contact")
            .expression_attribute_names("#at", ADDRESS_AT)
            .expression_attribute_names("#ct", ADDRESS_CONTACT)
            .expression_attribute_values(":cutoff", cutoff.clone())
            .expression_attribute_values(":contact", s(claim.contact_id.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One claim's three transaction items: the state update, the invitation put and the
    /// address claim.
    fn claim_items(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        claim: &Claim,
        campaign: &CampaignId,
        times: &ClaimTimes,
    ) -> Result<[TransactWriteItem; 3], StoreError> {
        let ClaimTimes { now, cutoff, .. } = times;
        let id = &claim.contact_id;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::partition_pk(tenant, division, keys::shard_of(id)),
                keys::state_sk(id),
            )))
            // The claim counts itself in the same write (`ADD` on an absent number starts
            // from 0): a cancelled transaction, such as a replayed claim, counts nothing.
            .update_expression("SET #inv = :now, #st = :pending ADD #n :one")
            .condition_expression(
                "(attribute_not_exists(#st) OR #st <> :accepted) AND \
                 (attribute_not_exists(#inv) OR #inv <= :cutoff)",
            )
            .expression_attribute_names("#inv", items::INVITED_AT)
            .expression_attribute_names("#st", items::STATUS)
            .expression_attribute_names("#n", items::INVITATIONS_SENT)
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":now", now.clone())
            .expression_attribute_values(":cutoff", cutoff.clone())
            .expression_attribute_values(":pending", s(PortalStatus::Pending.as_str()))
            .expression_attribute_values(":accepted", s(PortalStatus::Accepted.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        let mut invitation = claim.invitation.clone();
        invitation.campaign_id = campaign.clone();
        invitation.contact_id = id.clone();
        Ok([
            TransactWriteItem::builder().update(update).build(),
            self.put(encode_invitation(tenant, &invitation)?)?,
            self.address_item(tenant, claim, campaign, times)?,
        ])
    }

    /// Claims one batch (≤ [`CLAIMS_PER_TRANSACTION`] distinct contacts with distinct
    /// addresses), retrying the part a cancellation did not decide. Returns a result per
    /// entry of `batch`.
    async fn claim_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &[(&Claim, &DivisionId)],
        now: OffsetDateTime,
    ) -> Result<Vec<ClaimResult>, StoreError> {
        let times = ClaimTimes {
            now: time_value(now)?,
            cutoff: time_value(now - HOLD_WINDOW)?,
            ttl: address_ttl(now),
        };
        let mut results: Vec<Option<ClaimResult>> = vec![None; batch.len()];
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        for round in 0..MAX_CLAIM_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let mut request = self.client.transact_write_items();
            for &i in &pending {
                let (claim, division) = batch[i];
                for item in self.claim_items(tenant, division, claim, campaign, &times)? {
                    request = request.transact_items(item);
                }
            }
            // Each claim adds one to `targeted` and to its invitation's category and send
            // state (`in_process` and `pending` for a fresh one).
            let mut deltas = Deltas::default();
            for &i in &pending {
                let state = &batch[i].0.invitation.state;
                deltas.add(TARGETED, 1);
                deltas.add(category_attr(state.category), 1);
                deltas.add(send_attr(state.send), 1);
            }
            request =
                request.transact_items(self.counters_item(tenant, campaign, &deltas.nonzero())?);
            let sent = {
                let _one_at_a_time = self.transaction_guard().await;
                request.send().await
            };
            let reasons = match sent {
                Ok(_) => {
                    for &i in &pending {
                        results[i] = Some(ClaimResult::Claimed);
                    }
                    pending.clear();
                    break;
                }
                Err(e) => cancellation(e)?,
            };
            let counters = reasons.get(3 * pending.len()).and_then(|r| r.code());
            if counters == Some(CONDITION_FAILED) {
                return Err(StoreError::backend(
                    "TransactWriteItems",
                    Cancelled(format!("campaign {campaign} does not exist")),
                ));
            }
            let mut retry = Vec::new();
            let mut conflicted = false;
            for (n, &i) in pending.iter().enumerate() {
                let state = reasons.get(3 * n);
                let put = reasons.get(3 * n + 1);
                let address = reasons.get(3 * n + 2);
                let code = |r: Option<&CancellationReason>| {
                    r.and_then(|r| r.code()).unwrap_or("None").to_owned()
                };
                let (state_code, put_code, address_code) = (code(state), code(put), code(address));
                if put_code == CONDITION_FAILED {
                    results[i] = Some(ClaimResult::AlreadyClaimedByThisCampaign);
                } else if state_code == CONDITION_FAILED {
                    match state.and_then(|r| r.item()) {
                        Some(old) => results[i] = Some(classify_held(old, now)?),
                        // The state item vanished since (a delete): try again.
                        None => retry.push(i),
                    }
                } else if address_code == CONDITION_FAILED {
                    match address.and_then(|r| r.item()) {
                        Some(old) => {
                            let at = time_attr(old, ADDRESS_AT)?.unwrap_or(now);
                            results[i] = Some(ClaimResult::DuplicateAddress {
                                until: at + HOLD_WINDOW,
                            });
                        }
                        None => retry.push(i),
                    }
                } else if retryable(&state_code) && retryable(&put_code) && retryable(&address_code)
                {
                    conflicted |=
                        state_code != "None" || put_code != "None" || address_code != "None";
                    retry.push(i);
                } else {
                    return Err(StoreError::backend(
                        "TransactWriteItems",
                        Cancelled(format!("{state_code},{put_code},{address_code}")),
                    ));
                }
            }
            pending = retry;
            if conflicted {
                tokio::time::sleep(backoff(round)).await;
            }
        }
        if !pending.is_empty() {
            return Err(StoreError::backend(
                "TransactWriteItems",
                Cancelled(format!("{} claims still conflicting", pending.len())),
            ));
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(ClaimResult::Missing))
            .collect())
    }
}

/// Why a state item failed the claim condition: accepted, or invited within 24 hours.
fn classify_held(old: &Item, now: OffsetDateTime) -> Result<ClaimResult, StoreError> {
    if get_str(old, items::STATUS) == Some(PortalStatus::Accepted.as_str()) {
        return Ok(ClaimResult::Accepted);
    }
    let at = time_attr(old, items::INVITED_AT)?.unwrap_or(now);
    Ok(ClaimResult::Held {
        until: at + HOLD_WINDOW,
    })
}

impl DynamoStore {
    /// `create_campaign` and `create_selection_campaign` (see the module docs): `selection`
    /// is empty but for a hand-picked campaign.
    async fn create(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        selection: &[ContactId],
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        check_selection(campaign, selection)
            .map_err(|e| StoreError::backend("TransactWriteItems", e))?;
        let mut listed = campaign.division_ids.clone();
        listed.sort();
        listed.dedup();
        if listed.len() > MAX_CAMPAIGN_DIVISIONS {
            return Err(StoreError::backend(
                "TransactWriteItems",
                TooMany("a campaign touches more than MAX_CAMPAIGN_DIVISIONS divisions"),
            ));
        }
        // Only a bulk send over divisions locks them; every campaign is listed under each.
        let divisions = if campaign.locks_divisions() {
            listed.clone()
        } else {
            Vec::new()
        };
        let now_v = time_value(now)?;
        let cutoff_v = time_value(now - HOLD_WINDOW)?;
        for round in 0..MAX_CLAIM_ROUNDS {
            let mut request = self.client.transact_write_items();
            for d in &divisions {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(items::key(
                        keys::tenant_pk(tenant),
                        keys::division_sk(d),
                    )))
                    .update_expression("SET #lb = :now")
                    .condition_expression(
                        "attribute_exists(pk) AND \
                         (attribute_not_exists(#lb) OR #lb <= :cutoff)",
                    )
                    .expression_attribute_names("#lb", items::DIV_LAST_BULK)
                    .expression_attribute_values(":now", now_v.clone())
                    .expression_attribute_values(":cutoff", cutoff_v.clone())
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .map_err(build_err)?;
                request =
                    request.transact_items(TransactWriteItem::builder().update(update).build());
            }
            request = request.transact_items(self.put(encode_campaign(tenant, campaign)?)?);
            if let Some(idem) = idempotency {
                let mut item = items::key(idempotency_pk(tenant, &idem.key), IDEMPOTENCY_SK);
                item.insert(IDEM_CAMPAIGN.into(), s(campaign.campaign_id.as_str()));
                item.insert(
                    IDEM_BODY.into(),
                    AttributeValue::B(idem.body_hash.to_vec().into()),
                );
                request = request.transact_items(self.put(item)?);
            }
            // After the items `classify_create` reads by position.
            for d in &listed {
                request = request.transact_items(self.put(items::key(
                    division_campaigns_pk(tenant, d),
                    campaign.campaign_id.as_str(),
                ))?);
            }
            for chunk in encode_selection(tenant, &campaign.campaign_id, selection) {
                request = request.transact_items(self.put(chunk)?);
            }
            let sent = {
                let _one_at_a_time = self.transaction_guard().await;
                request.send().await
            };
            let reasons = match sent {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(e) => cancellation(e)?,
            };
            if let Some(outcome) = self
                .classify_create(tenant, &divisions, idempotency, &reasons, now)
                .await?
            {
                return Ok(outcome);
            }
            tokio::time::sleep(backoff(round)).await;
        }
        Err(StoreError::backend(
            "TransactWriteItems",
            Cancelled("campaign creation kept conflicting".into()),
        ))
    }
}

#[async_trait]
impl CampaignStore for DynamoStore {
    async fn create_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        self.create(tenant, campaign, &[], idempotency, now).await
    }

    async fn create_selection_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        contacts: &[ContactId],
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        self.create(tenant, campaign, contacts, idempotency, now)
            .await
    }

    async fn selection_ids(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ContactId>, StoreError> {
        let (offset, limit) = (offset as usize, (limit as usize).min(MAX_CLAIMS));
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (first, last) = (
            offset / SELECTION_CHUNK,
            (offset + limit - 1) / SELECTION_CHUNK,
        );
        let pk = keys::selection_pk(tenant, campaign);
        let mut chunks: HashMap<usize, Item> = batch::get_all(
            &self.client,
            &self.table,
            (first..=last)
                .map(|n| items::key(pk.clone(), keys::selection_sk(n)))
                .collect(),
            None,
        )
        .await?
        .into_iter()
        .map(|item| Ok((selection_chunk_no(&item)?, item)))
        .collect::<Result<_, StoreError>>()?;
        let mut ids = Vec::with_capacity(limit + SELECTION_CHUNK);
        // A missing chunk is the end of the selection: never read past one.
        for n in first..=last {
            let Some(item) = chunks.remove(&n) else { break };
            ids.extend(decode_selection_chunk(&item)?);
        }
        Ok(ids
            .into_iter()
            .skip(offset - first * SELECTION_CHUNK)
            .take(limit)
            .collect())
    }

    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        self.get_item("GetItem", items::key(campaign_pk(tenant, id), CAMPAIGN_SK))
            .await?
            .map(|i| decode_campaign(&i))
            .transpose()
    }

    async fn update_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        expected: CampaignStatus,
        new: CampaignStatus,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(campaign_pk(tenant, id), CAMPAIGN_SK)))
            .condition_expression("attribute_exists(pk) AND #st = :expected")
            .expression_attribute_names("#st", STATUS)
            .expression_attribute_names("#why", REASON)
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":new", s(new.as_str()));
        // A completed or failed campaign leaves the sweeper's index (see `sweep`).
        let unindex = if new.is_terminal() {
            request = request
                .expression_attribute_names("#gpk", items::GSI1PK)
                .expression_attribute_names("#gsk", items::GSI1SK);
            ", #gpk, #gsk"
        } else {
            ""
        };
        request = match reason {
            Some(r) if unindex.is_empty() => request
                .update_expression("SET #st = :new, #why = :why")
                .expression_attribute_values(":why", s(r)),
            Some(r) => request
                .update_expression("SET #st = :new, #why = :why REMOVE #gpk, #gsk")
                .expression_attribute_values(":why", s(r)),
            None => request.update_expression(format!("SET #st = :new REMOVE #why{unindex}")),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }

    async fn add_campaign_counts(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        targeted: u64,
        skipped: Skipped,
        page: Option<&str>,
    ) -> Result<bool, StoreError> {
        if let Some(page) = page {
            if page.len() > portal_core::ports::MAX_PAGE_KEY_LEN {
                return Err(StoreError::backend(
                    "TransactWriteItems",
                    TooMany("a page key is at most 64 bytes"),
                ));
            }
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let counters = self.counters_item(
                tenant,
                id,
                &[
                    (TARGETED, n(targeted)),
                    (SK_ACCEPTED, n(skipped.accepted)),
                    (SK_HELD, n(skipped.held_24h)),
                    (SK_SUPPRESSED, n(skipped.suppressed)),
                    (SK_NO_EMAIL, n(skipped.no_email)),
                    (SK_DUPLICATE_ADDRESS, n(skipped.duplicate_address)),
                ],
            )?;
            return self.add_page_counts(tenant, id, page, counters).await;
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(campaign_pk(tenant, id), CAMPAIGN_SK)))
            .condition_expression("attribute_exists(pk)")
            .update_expression("ADD #t :t, #a :a, #h :h, #s :s, #n :n, #d :d")
            .expression_attribute_names("#t", TARGETED)
            .expression_attribute_names("#a", SK_ACCEPTED)
            .expression_attribute_names("#h", SK_HELD)
            .expression_attribute_names("#s", SK_SUPPRESSED)
            .expression_attribute_names("#n", SK_NO_EMAIL)
            .expression_attribute_names("#d", SK_DUPLICATE_ADDRESS)
            .expression_attribute_values(":t", num(targeted))
            .expression_attribute_values(":a", num(skipped.accepted))
            .expression_attribute_values(":h", num(skipped.held_24h))
            .expression_attribute_values(":s", num(skipped.suppressed))
            .expression_attribute_values(":n", num(skipped.no_email))
            .expression_attribute_values(":d", num(skipped.duplicate_address))
            .return_values(ReturnValue::None)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }

    async fn lease_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        first: Option<&Attempt>,
    ) -> Result<LeaseOutcome, StoreError> {
        self.take_lease(tenant, campaign, batch, owner, now, until, first)
            .await
    }

    async fn step_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<bool, StoreError> {
        self.step_lease(tenant, campaign, batch, owner, step).await
    }

    async fn record_batch_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationFact)],
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<BatchWritten, StoreError> {
        let lease = TransactWriteItem::builder()
            .update(self.lease_step_update(tenant, campaign, batch, owner, step)?)
            .build();
        let last = *step == LeaseStep::Done;
        self.apply_invitation_facts_with(tenant, campaign, outcomes, true, Some(lease), last)
            .await
    }

    async fn claim_contacts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<ClaimResult>, StoreError> {
        if claims.len() > MAX_CLAIMS {
            return Err(StoreError::backend(
                "TransactWriteItems",
                TooMany("at most 500 claims per call"),
            ));
        }
        // Distinct contacts, first occurrence wins.
        let mut first: HashMap<&ContactId, usize> = HashMap::new();
        let mut unique: Vec<&Claim> = Vec::new();
        for c in claims {
            first.entry(&c.contact_id).or_insert_with(|| {
                unique.push(c);
                unique.len() - 1
            });
        }
        // Claims that carry their division need no locator read.
        let locators = batch::get_all(
            &self.client,
            &self.table,
            unique
                .iter()
                .filter(|c| c.division_id.is_none())
                .map(|c| items::key(keys::locator_pk(tenant, &c.contact_id), keys::LOCATOR_SK))
                .collect(),
            None,
        )
        .await?;
        let mut division_of: HashMap<String, DivisionId> = unique
            .iter()
            .filter_map(|c| {
                c.division_id
                    .clone()
                    .map(|d| (keys::locator_pk(tenant, &c.contact_id), d))
            })
            .collect();
        for loc in &locators {
            let pk = req_str(loc, items::PK)?.to_owned();
            division_of.insert(pk, items::division_id(loc, items::DIVISION)?);
        }
        let mut results = vec![ClaimResult::Missing; unique.len()];
        let located: Vec<(usize, (&Claim, &DivisionId))> = unique
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                division_of
                    .get(&keys::locator_pk(tenant, &c.contact_id))
                    .map(|d| (i, (*c, d)))
            })
            .collect();
        // A transaction names an item once, so contacts sharing an address go in passes:
        // the first of each address now, the next after it is decided (it then finds the
        // address claimed, unless the first was refused for its own reasons).
        let mut remaining = located;
        // Addresses this call claimed just now: a later contact with one is a duplicate
        // without asking the table (a cancelled transaction would cost a retry).
        let mut claimed_now: std::collections::HashSet<String> = std::collections::HashSet::new();
        while !remaining.is_empty() {
            let mut seen = std::collections::HashSet::new();
            let (decided, undecided): (Vec<_>, Vec<_>) = remaining
                .into_iter()
                .partition(|(_, (c, _))| claimed_now.contains(&c.invitation.email.normalized()));
            for (i, _) in decided {
                results[i] = ClaimResult::DuplicateAddress {
                    until: now + HOLD_WINDOW,
                };
            }
            let (now_pass, later): (Vec<_>, Vec<_>) = undecided
                .into_iter()
                .partition(|(_, (c, _))| seen.insert(c.invitation.email.normalized()));
            for chunk in now_pass.chunks(CLAIMS_PER_TRANSACTION) {
                let batch: Vec<(&Claim, &DivisionId)> = chunk.iter().map(|(_, b)| *b).collect();
                let got = self.claim_batch(tenant, campaign, &batch, now).await?;
                for ((i, (c, _)), r) in chunk.iter().zip(got) {
                    if r == ClaimResult::Claimed {
                        claimed_now.insert(c.invitation.email.normalized());
                    }
                    results[*i] = r;
                }
            }
            remaining = later;
        }
        Ok(claims
            .iter()
            .map(|c| {
                first
                    .get(&c.contact_id)
                    .map_or(ClaimResult::Missing, |&i| results[i])
            })
            .collect())
    }

    async fn get_invitation(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<Invitation>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(campaign_pk(tenant, campaign), invitation_sk(contact)),
        )
        .await?
        .map(|i| decode_invitation(campaign, &i))
        .transpose()
    }

    async fn get_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contacts: &[ContactId],
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let keys = contacts
            .iter()
            .filter(|c| seen.insert(*c))
            .map(|c| items::key(campaign_pk(tenant, campaign), invitation_sk(c)))
            .collect();
        batch::get_all(&self.client, &self.table, keys, None)
            .await?
            .iter()
            .map(|i| decode_invitation(campaign, i))
            .collect()
    }

    async fn apply_facts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        facts: &[(ContactId, InvitationFact)],
    ) -> Result<Vec<FactResult>, StoreError> {
        self.apply_invitation_facts(tenant, campaign, facts, false)
            .await
    }

    async fn record_send_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationFact)],
    ) -> Result<Vec<FactResult>, StoreError> {
        self.apply_invitation_facts(tenant, campaign, outcomes, true)
            .await
    }

    async fn list_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        filter: &InvitationFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError> {
        self.invitation_page(tenant, campaign, filter, cursor, limit)
            .await
    }

    async fn list_campaigns(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Campaign>, StoreError> {
        self.campaign_page(tenant, division, cursor, limit).await
    }

    async fn recount_campaign(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        fix: bool,
    ) -> Result<Option<Recount>, StoreError> {
        self.recount(tenant, campaign, fix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn text(t: OffsetDateTime) -> String {
        match time_value(t).unwrap() {
            AttributeValue::S(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stored_times_sort_as_strings_in_the_order_of_their_instants() {
        let times = [
            datetime!(2026-11-02 11:59:59.999999999 UTC),
            datetime!(2026-11-02 12:00:00 UTC),
            datetime!(2026-11-02 12:00:00.5 UTC),
            datetime!(2026-11-02 12:00:01 UTC),
            datetime!(2026-11-02 14:00:00.25 +02:00) + time::Duration::hours(1),
        ];
        let texts: Vec<String> = times.iter().map(|t| text(*t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert_eq!(texts[1], "2026-11-02T12:00:00.000000000Z");
    }

    #[test]
    fn idempotency_keys_are_hashed_into_the_tenants_key_space() {
        let t = TenantId::parse("t1").unwrap();
        let pk = idempotency_pk(&t, "a#b T#other");
        assert!(pk.starts_with("T#t1#IDEM#"));
        assert_eq!(pk.len(), "T#t1#IDEM#".len() + 64);
        assert_ne!(
            pk,
            idempotency_pk(&TenantId::parse("t2").unwrap(), "a#b T#other")
        );
    }
}
