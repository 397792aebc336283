//! The campaign port: recording campaigns under the divisions' 24-hour lock, and claiming
//! contacts under the contacts' 24-hour rule — both as conditional writes, so concurrent
//! requests and retried runs can never send a division or a contact twice within 24 hours.
//!
//! # The two 24-hour rules
//!
//! - **Division lock** (manual sends over divisions only, see
//!   [`Campaign::locks_divisions`]): [`CampaignStore::create_campaign`] checks, for every
//!   division of the campaign, that its `last_bulk_sent_at` is absent or at least
//!   [`HOLD_WINDOW`](crate::domain::HOLD_WINDOW) old, sets it to `now`, and records the
//!   campaign — all or nothing. A held division writes nothing. A hand-picked campaign
//!   ([`CampaignStore::create_selection_campaign`]) neither checks nor sets it: a later bulk
//!   send of its divisions is not held by it, and it is not held by an earlier one.
//! - **Contact claim** (every path: bulk, individual, recurring): [`CampaignStore::claim_contacts`]
//!   checks, per contact, that it exists, is not accepted and was last invited at least 24
//!   hours ago, then sets `last_invited_at = now`, makes it `pending`, and records its
//!   invitation — atomically per contact. The invitation's key is (campaign, contact), so a
//!   replayed claim of the same campaign (a retried fan-out) answers
//!   [`ClaimResult::AlreadyClaimedByThisCampaign`]: already done, do not send twice.
//! - **Address claim** (in the same atomic write as the contact claim): the tenant's
//!   address, compared case-insensitively ([`Email::normalized`](crate::domain::Email::normalized)),
//!   is claimed for the contact and campaign. An address another contact claimed less than
//!   24 hours ago answers [`ClaimResult::DuplicateAddress`] and writes nothing, so one person
//!   gets one invitation however many contacts carry their address.
//!
//! Held at 23:59:59, free at exactly 24:00:00 — the same boundary as `classify`.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Page, StoreError};
use crate::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DivisionId, Invitation,
    InvitationCategory, InvitationFact, SendCounts, Skipped, TenantId, Transition,
};

/// An `Idempotency-Key` and the hash of the request body it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The header's value as sent (adapters store a hash of it, so any text is safe).
    pub key: String,
    /// SHA-256 of the canonical request body.
    pub body_hash: [u8; 32],
}

/// What [`CampaignStore::create_campaign`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The campaign was recorded (and its divisions locked).
    Created,
    /// The idempotency key was used before with the same body: this is that campaign, and
    /// nothing was written.
    Existing(Box<Campaign>),
    /// The idempotency key was used before with another body; nothing was written.
    IdempotencyMismatch,
    /// A division was bulk-sent less than 24 hours ago; nothing was written. When several
    /// are held, any one of them is named.
    DivisionHeld {
        division_id: DivisionId,
        retry_after: OffsetDateTime,
    },
    /// A division of the campaign does not exist; nothing was written.
    DivisionMissing { division_id: DivisionId },
}

/// One contact to claim for a campaign, with the invitation it gets if claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub contact_id: ContactId,
    /// The contact's division when the caller knows it (fan-out does): saves the store a
    /// lookup. A wrong hint makes the claim answer `Missing`.
    pub division_id: Option<DivisionId>,
    /// `campaign_id` and `contact_id` must match the claim's.
    pub invitation: Invitation,
}

/// What a claim did for one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimResult {
    /// Claimed now: `last_invited_at = now`, status `pending`, invitation recorded, and the
    /// campaign's `targeted`, `in_process` and `pending` counters incremented in the same write.
    /// Send it.
    Claimed,
    /// This campaign already holds an invitation for the contact (a replay): do not send again.
    AlreadyClaimedByThisCampaign,
    /// Invited less than 24 hours ago (by any path); free again at `until`.
    Held { until: OffsetDateTime },
    /// Another contact of the tenant with the same address (compared by
    /// [`Email::normalized`](crate::domain::Email::normalized)) was invited less than 24
    /// hours ago, by this campaign or another; the address is free again at `until`.
    /// Nothing was written.
    DuplicateAddress { until: OffsetDateTime },
    /// Already registered: never invited.
    Accepted,
    /// No such contact in the tenant.
    Missing,
}

/// What [`CampaignStore::apply_facts`] did with one fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactResult {
    /// The campaign has no invitation for the contact.
    Missing,
    /// Nothing changed (a duplicate, or a fact outranked by what was known): nothing written.
    Unchanged,
    /// Written.
    Changed(Transition),
}

/// Which of a campaign's invitations a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvitationFilter {
    pub category: Option<InvitationCategory>,
    /// Lowercased search text over email, contact name and account number; empty = all.
    pub search: String,
    /// Most invitations a page examines past its cursor
    /// ([`MAX_EXAMINED`](crate::ports::MAX_EXAMINED) for the API); `None`: until it is full.
    pub max_examined: Option<u32>,
}

impl InvitationFilter {
    /// Whether `inv` passes (adapters that cannot filter in the backend use this).
    pub fn matches(&self, inv: &Invitation) -> bool {
        self.category.is_none_or(|c| inv.state.category == c)
            && inv.search_text().matches(&self.search)
    }
}

/// What applying a run of facts did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Facts that changed an invitation (one write each, counters included).
    pub changed: u64,
    /// Duplicates, and facts outranked by what was known: nothing written.
    pub unchanged: u64,
    /// Facts about an invitation the store does not have (another tenant's, a deleted
    /// campaign, forged tags): nothing written.
    pub missing: u64,
}

impl ApplyReport {
    /// Counts one fact's result.
    pub fn add(&mut self, r: &FactResult) {
        match r {
            FactResult::Changed(_) => self.changed += 1,
            FactResult::Unchanged => self.unchanged += 1,
            FactResult::Missing => self.missing += 1,
        }
    }

    pub fn merge(&mut self, other: ApplyReport) {
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.missing += other.missing;
    }
}

/// A campaign's stored counters beside a recount of its invitations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recount {
    pub stored: (CategoryCounts, SendCounts),
    pub counted: (CategoryCounts, SendCounts),
    /// `fix` was asked and the recount was stored.
    pub fixed: bool,
}

impl Recount {
    pub fn drifted(&self) -> bool {
        self.stored != self.counted
    }
}

/// Most claims in one [`CampaignStore::claim_contacts`] call.
pub const MAX_CLAIMS: usize = 500;

/// Longest page key [`CampaignStore::add_campaign_counts`] takes.
pub const MAX_PAGE_KEY_LEN: usize = 64;

/// Most contacts an [`Attempt`] names (what one outcome write holds on DynamoDB).
pub const MAX_ATTEMPT: usize = 98;

/// The send group a lease holder is sending (or about to): recorded before the emails go
/// out, so whoever resumes the batch after a crash knows which of its invitations may have
/// reached the mail service without their outcome being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The group's contacts (at most [`MAX_ATTEMPT`]); each email's `Message-ID` is derived
    /// from its invitation ([`crate::usecases::send::deliver::message_local_id`]).
    pub contacts: Vec<ContactId>,
    /// When the group started.
    pub at: OffsetDateTime,
}

/// The state of a delivery batch's lease.
///
/// A delivery batch (one `Deliver` message) is sent under a lease, so two copies of the
/// message handled at once (EventBridge delivers at least once) cannot both send: the second
/// finds it [`LeaseOutcome::Busy`]. The lease runs out on its own, so a holder that dies
/// leaves the batch to the next copy (or the sweeper's re-publish) once `until` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Yours until the `until` asked. `resumed`: the batch was leased before (a holder died
    /// or gave up); `attempt` is the group it recorded last and never finished.
    Acquired {
        resumed: bool,
        attempt: Option<Attempt>,
    },
    /// Another holder's, until `until`: leave the batch alone.
    Busy { until: OffsetDateTime },
    /// Delivered to its end: nothing left to do.
    Done,
    /// The campaign is paused, failed or gone: nothing leased, nothing to send now.
    Stopped,
}

/// What [`CampaignStore::record_batch_outcomes`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchWritten {
    /// One per outcome, in order.
    pub results: Vec<FactResult>,
    /// The lease step was written too (`false`: the lease was lost to another holder).
    pub kept: bool,
    /// With [`LeaseStep::Done`] and at least one invitation changed: whether this write left
    /// a campaign whose fan-out is over (`sending`) with no invitation `pending` — it is
    /// complete (of the writes that resolve its last pending invitations, the one that brings
    /// the count to zero says so; while the fan-out still runs, the answer is `false`, and
    /// the fan-out's last step completes it). `None`: unknown, read the campaign.
    pub drained: Option<bool>,
}

/// How a lease holder moves its batch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStep {
    /// About to send this group: record it and keep the lease until `until`.
    Attempting {
        attempt: Attempt,
        until: OffsetDateTime,
    },
    /// Every invitation of the batch has its outcome: the batch is done for good.
    Done,
    /// Stopping early (throttled, waiting for the mail service's acknowledgement): the lease
    /// ends now, and the recorded attempt stays for the next holder.
    Release,
}

#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Records `campaign` atomically with its divisions' lock (when
    /// [`Campaign::locks_divisions`]) and its idempotency key. See
    /// [`CreateOutcome`]; nothing is written unless the answer is `Created`. A replayed key
    /// is answered before any division is checked (the division is, after all, held by the
    /// campaign the key made). The campaign has at most
    /// [`MAX_CAMPAIGN_DIVISIONS`](crate::domain::MAX_CAMPAIGN_DIVISIONS) distinct divisions.
    async fn create_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError>;

    /// Records a hand-picked campaign (`campaign.selection` is `Some`) with the ids of its
    /// contacts, all in one all-or-nothing write, so no campaign is ever seen without its
    /// selection. Otherwise as [`CampaignStore::create_campaign`], except that no division's
    /// lock is checked or taken ([`Campaign::locks_divisions`] is false) and its divisions
    /// are not checked for existence (the caller located the contacts in them). `contacts`
    /// are distinct, in the order they were picked, as many as `campaign.selection` counts
    /// (at most [`MAX_SELECTED_CONTACTS`](crate::domain::MAX_SELECTED_CONTACTS)); the
    /// campaign has at most
    /// [`MAX_CAMPAIGN_DIVISIONS`](crate::domain::MAX_CAMPAIGN_DIVISIONS) distinct divisions.
    async fn create_selection_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        contacts: &[ContactId],
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError>;

    /// Up to `limit` contact ids of a hand-picked campaign's selection from position `offset`
    /// (0-based), in the order they were recorded; fewer at the end, none past it or for a
    /// campaign without a selection (or another tenant's). `limit` is at most
    /// [`MAX_CLAIMS`].
    async fn selection_ids(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ContactId>, StoreError>;

    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError>;

    /// Moves the campaign from `expected` to `new` (use [`CampaignStatus::next`] to find
    /// `new`) and sets its pause reason (`None` clears it). `false` when the campaign is
    /// missing or not in `expected` — someone else moved it first.
    async fn update_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        expected: CampaignStatus,
        new: CampaignStatus,
        reason: Option<String>,
    ) -> Result<bool, StoreError>;

    /// Adds to the campaign's `targeted` and `skipped` counters (atomic increments). Claims
    /// count `targeted` themselves: fan-out passes 0 and adds only the skips of a page. With
    /// `page` (a key of the fan-out page, at most [`MAX_PAGE_KEY_LEN`] bytes), the counts are
    /// added at most once per campaign and key, in the same write that records the key: a
    /// replayed page adds nothing, so the skips stay exact. `false` when the campaign is
    /// missing or the page was counted before.
    async fn add_campaign_counts(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        targeted: u64,
        skipped: Skipped,
        page: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Takes the lease of one delivery batch of the campaign for `owner` until `until` (see
    /// [`LeaseOutcome`]): granted when the batch was never leased, when the last lease ran out
    /// (`until <= now`) or when it is `owner`'s already. When granted, `first` is recorded as
    /// the group being attempted unless an attempt is recorded already (a dead holder's stays
    /// until the new holder records its own). Never granted while the campaign is paused or
    /// failed (or missing): [`LeaseOutcome::Stopped`], so a delivery that carries the
    /// campaign's template need not read the campaign first. One conditional write when the
    /// batch was never leased (DynamoDB: the lease's Put and a ConditionCheck on the campaign
    /// in one transaction).
    #[allow(clippy::too_many_arguments)]
    async fn lease_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        first: Option<&Attempt>,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Moves `owner`'s lease of the batch on (see [`LeaseStep`]); `false` when the lease is no
    /// longer `owner`'s (it ran out and someone else took it): nothing written.
    async fn step_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<bool, StoreError>;

    /// [`CampaignStore::record_send_outcomes`] and [`CampaignStore::step_batch`] together: an
    /// adapter may write both in one request. The outcomes are recorded even when the lease
    /// is lost (the emails went out); [`BatchWritten::kept`] says whether the step was.
    ///
    /// With [`LeaseStep::Done`] (a batch's last write), [`BatchWritten::drained`] says whether
    /// this write left the campaign `sending` with no invitation `pending`, when the adapter
    /// knows it without a request of its own: the delivery then completes the campaign, or
    /// leaves it to whoever drains it, without reading it. `None`: read the campaign to know.
    async fn record_batch_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationFact)],
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<BatchWritten, StoreError> {
        let results = self
            .record_send_outcomes(tenant, campaign, outcomes)
            .await?;
        let kept = self
            .step_batch(tenant, campaign, batch, owner, step)
            .await?;
        Ok(BatchWritten {
            results,
            kept,
            drained: None,
        })
    }

    /// Claims each contact for the campaign (see the module docs), one result per claim in
    /// order. Contact ids must be distinct within a call (a repeat gets the first one's
    /// result); at most [`MAX_CLAIMS`] per call. Each claim is atomic on its own; the call
    /// is not (a failure midway leaves earlier claims done — replaying the call is safe).
    async fn claim_contacts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<ClaimResult>, StoreError>;

    async fn get_invitation(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<Invitation>, StoreError>;

    /// The campaign's invitations of these contacts that exist, in no particular order
    /// (at most [`MAX_CLAIMS`] ids).
    async fn get_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contacts: &[ContactId],
    ) -> Result<Vec<Invitation>, StoreError>;

    /// Applies what was learnt about invitations — the delivery step's outcomes, SES events,
    /// unsubscribes, registrations — through [`InvitationState::apply`]: each changed
    /// invitation is written conditionally on the state read, with the campaign's category and
    /// send counters moved in the same write (so they always equal a recount), and, when the
    /// transition says so, its address added to the tenant's suppression list in that write
    /// too. A fact that changes nothing writes nothing. A contact may appear more than once:
    /// its facts apply in order. One result per fact, in order; at most [`MAX_CLAIMS`] facts.
    /// Concurrent callers never lose an update (a conflicting write is re-read and retried).
    async fn apply_facts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        facts: &[(ContactId, InvitationFact)],
    ) -> Result<Vec<FactResult>, StoreError>;

    /// The delivery step's outcomes (`Sent` and `SendFailed` facts about invitations it has
    /// just read as freshly claimed): the same effect as [`CampaignStore::apply_facts`], but
    /// an adapter may write them without reading first, conditioned on the fresh state, and
    /// read only those that moved meanwhile.
    async fn record_send_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationFact)],
    ) -> Result<Vec<FactResult>, StoreError> {
        self.apply_facts(tenant, campaign, outcomes).await
    }

    /// The campaign's invitations that pass `filter`, in contact-id order.
    async fn list_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        filter: &InvitationFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError>;

    /// A division's campaigns, newest first (every trigger; a campaign over several
    /// divisions is listed under each).
    async fn list_campaigns(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Campaign>, StoreError>;

    /// Counts the campaign's invitations by category and send state and compares them with
    /// the stored counters; with `fix`, stores the recount (only if the counters did not
    /// move meanwhile). `None` when the campaign does not exist.
    async fn recount_campaign(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        fix: bool,
    ) -> Result<Option<Recount>, StoreError>;
}

/// A selection that does not agree with its campaign: the caller's bug, which an adapter
/// refuses before writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSelection(&'static str);

/// What every adapter checks before recording a campaign with `selection`: none for a
/// campaign that is not hand-picked, else as many distinct ids as `campaign.selection`
/// counts, 1 to [`MAX_SELECTED_CONTACTS`](crate::domain::MAX_SELECTED_CONTACTS).
pub fn check_selection(campaign: &Campaign, selection: &[ContactId]) -> Result<(), BadSelection> {
    match campaign.selection {
        None if selection.is_empty() => Ok(()),
        None => Err(BadSelection(
            "contact ids given for a campaign that is not hand-picked",
        )),
        Some(p) if p.contacts as usize != selection.len() => Err(BadSelection(
            "the selection's count differs from its contact ids",
        )),
        Some(_)
            if selection.is_empty() || selection.len() > crate::domain::MAX_SELECTED_CONTACTS =>
        {
            Err(BadSelection(
                "a selection has 1 to MAX_SELECTED_CONTACTS contacts",
            ))
        }
        Some(_) => {
            let distinct: std::collections::HashSet<&ContactId> = selection.iter().collect();
            if distinct.len() == selection.len() {
                Ok(())
            } else {
                Err(BadSelection("a selection names a contact twice"))
            }
        }
    }
}

/// Cursor of an invitation list: the last contact id returned, opaque to clients.
pub fn encode_invitation_cursor(after: &ContactId) -> String {
    super::cursor::encode("inv1", after.as_str())
}

/// Parses a cursor made by [`encode_invitation_cursor`]; anything else is invalid.
pub fn decode_invitation_cursor(raw: &str) -> Result<ContactId, StoreError> {
    super::cursor::decode("inv1", raw)
        .and_then(|id| ContactId::parse(id).ok())
        .ok_or_else(|| StoreError::InvalidCursor("cursor is malformed".into()))
}

/// Cursor of a campaign list: the last campaign id returned, opaque to clients.
pub fn encode_campaign_cursor(after: &CampaignId) -> String {
    super::cursor::encode("cmp1", after.as_str())
}

/// Parses a cursor made by [`encode_campaign_cursor`]; anything else is invalid.
pub fn decode_campaign_cursor(raw: &str) -> Result<CampaignId, StoreError> {
    super::cursor::decode("cmp1", raw)
        .and_then(|id| CampaignId::parse(id).ok())
        .ok_or_else(|| StoreError::InvalidCursor("cursor is malformed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_cursors_round_trip_and_reject_forgeries() {
        let c = ContactId::parse("c-1").unwrap();
        assert_eq!(
            decode_invitation_cursor(&encode_invitation_cursor(&c)).unwrap(),
            c
        );
        for bad in [
            "",
            "!!",
            "aW52MjpjLTE",
            &super::super::cursor::encode("inv1", "a#b"),
        ] {
            assert!(decode_invitation_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
