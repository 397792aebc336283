//! Campaigns and invitations: what a send is, the one state machine of its status, and the
//! invitation record each claimed contact gets.
//!
//! A campaign's status moves only through [`CampaignStatus::next`], so every caller (HTTP,
//! fan-out, delivery) agrees on which moves exist; stores persist a move with a conditional
//! write on the expected status (`CampaignStore::update_campaign_status`).
//!
//! A registration token is at least 128 random bits, handed to the recipient once (in the
//! email's portal link) and stored only as its SHA-256 ([`RegistrationToken`]).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{CategoryCounts, ContactId, DivisionId, DomainError, Email, Filters, SendCounts};

/// Most divisions one campaign may touch: a campaign, its division locks and its entries in
/// the divisions' campaign lists are written in one DynamoDB transaction (≤ 100 items: the
/// campaign, its idempotency key, and two per division).
pub const MAX_CAMPAIGN_DIVISIONS: usize = 49;

/// Most contacts one hand-picked campaign may name (`POST /v1/campaigns` with `contact_ids`).
/// Its ids are stored beside the campaign in the same write as it (in chunks on DynamoDB),
/// and the fan-out pages through them like it pages through a division.
pub const MAX_SELECTED_CONTACTS: usize = 10_000;

/// A campaign id: 12 hex digits of the creation time in milliseconds, then 20 hex digits
/// (80 bits) of randomness — 32 lowercase hex characters. Ids made later sort later, so a
/// newest-first listing is a reverse key order, and two ids never collide in practice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CampaignId(String);

impl CampaignId {
    /// A fresh id for a campaign created at `now`.
    pub fn generate(now: OffsetDateTime) -> Self {
        Self(super::ids::sortable_hex_id(now))
    }

    /// Parses an id made by [`CampaignId::generate`]: exactly 32 lowercase hex digits.
    pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
        super::ids::parse_sortable_hex_id("campaign_id", raw.into()).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CampaignId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What started a campaign. Only a manual bulk send over divisions takes the divisions'
/// 24-hour lock ([`Campaign::locks_divisions`]); a hand-picked one is manual too, but does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Individual,
    Recurring,
    /// A matched sign-up request's portal key email (a campaign of one).
    PortalKey,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Individual => "individual",
            Self::Recurring => "recurring",
            Self::PortalKey => "portal_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Individual,
            Self::Recurring,
            Self::PortalKey,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Where a campaign is. Moves only through [`CampaignStatus::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Recorded; the fan-out has not started (or a paused campaign was resumed).
    Queued,
    /// The fan-out is paging through recipients and claiming them.
    FanningOut,
    /// Every recipient is claimed; deliveries are in flight.
    Sending,
    /// Every invitation reached a final category. Terminal.
    Completed,
    /// Stopped by a manager or by the failure threshold; can be resumed.
    Paused,
    /// Could not go on (e.g. its template vanished). Terminal.
    Failed,
}

/// What happened to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignEvent {
    /// A fan-out run picked the campaign up.
    FanOutStarted,
    /// The fan-out claimed every recipient and emitted every send batch.
    FanOutFinished,
    /// Every invitation was delivered or failed.
    DeliveriesFinished,
    /// A manager, or the failure threshold, stopped the campaign.
    Pause,
    /// A paused campaign goes back to the queue; the fan-out is resumable and skips the
    /// contacts it already claimed, so nothing is sent twice.
    Resume,
    /// The campaign cannot go on.
    Fail,
}

/// An event that does not apply to a status (e.g. anything after `completed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("campaign cannot go from {from:?} on {event:?}")]
pub struct InvalidTransition {
    pub from: CampaignStatus,
    pub event: CampaignEvent,
}

impl CampaignStatus {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::FanningOut,
        Self::Sending,
        Self::Completed,
        Self::Paused,
        Self::Failed,
    ];

    /// The one transition function.
    pub fn next(self, event: CampaignEvent) -> Result<CampaignStatus, InvalidTransition> {
        use CampaignEvent as E;
        use CampaignStatus as S;
        match (self, event) {
            (S::Queued, E::FanOutStarted) => Ok(S::FanningOut),
            (S::FanningOut, E::FanOutFinished) => Ok(S::Sending),
            (S::Sending, E::DeliveriesFinished) => Ok(S::Completed),
            (S::Queued | S::FanningOut | S::Sending, E::Pause) => Ok(S::Paused),
            (S::Paused, E::Resume) => Ok(S::Queued),
            (S::Queued | S::FanningOut | S::Sending | S::Paused, E::Fail) => Ok(S::Failed),
            (from, event) => Err(InvalidTransition { from, event }),
        }
    }

    /// No event moves a terminal campaign.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::FanningOut => "fanning_out",
            Self::Sending => "sending",
            Self::Completed => "completed",
            Self::Paused => "paused",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Contacts a campaign matched but did not target, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub accepted: u64,
    pub held_24h: u64,
    pub suppressed: u64,
    pub no_email: u64,
    /// Another contact of the tenant with the same address (compared case-insensitively)
    /// was invited within the last 24 hours, by this campaign or another one: one person
    /// gets one invitation.
    #[serde(default)]
    pub duplicate_address: u64,
}

/// A send: to the contacts of `division_ids` passing `filters`, with one template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub campaign_id: CampaignId,
    pub trigger: Trigger,
    pub status: CampaignStatus,
    pub division_ids: Vec<DivisionId>,
    pub filters: Filters,
    pub limit_to_uninvited: bool,
    /// The template's id. A plain string here: the template store (built alongside) owns
    /// the `TemplateId` type; the use case parses it before a campaign is made.
    pub template_id: String,
    pub email_from: Email,
    /// The display name the tenant's sender settings had when the campaign started (see
    /// [`super::display_name_for`]); `None`: each email shows its division's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<super::DisplayName>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who asked for it (the token's subject).
    pub created_by: String,
    /// Contacts claimed for an invitation so far.
    pub targeted: u64,
    pub skipped: Skipped,
    /// The campaign's invitations per category, kept by the store in the same write as each
    /// invitation's change (so they always equal a recount).
    pub categories: CategoryCounts,
    /// The campaign's invitations by where their send attempt stands (same guarantee).
    pub sends: SendCounts,
    pub pause_reason: Option<String>,
    /// A recurring run's campaign: the setting that made it, and which pending contacts its
    /// fan-out reminds ([`super::ReminderRule::targets`]). `None` for every other trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<RecurringRun>,
    /// A hand-picked campaign: the contacts a manager ticked, instead of the contacts of
    /// `division_ids` passing `filters` (then `division_ids` are the divisions the picked
    /// contacts were in, and `filters` are empty). `None` for every other campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<HandPicked>,
}

impl Campaign {
    /// Whether recording this campaign checks and takes its divisions' 24-hour lock: a
    /// manual send over divisions does; a hand-picked selection, an individual invite and a
    /// recurring run do not (the contacts' own 24-hour rule still holds for every one).
    pub fn locks_divisions(&self) -> bool {
        self.trigger == Trigger::Manual && self.selection.is_none()
    }
}

/// What makes a campaign hand-picked: how many distinct contacts were picked. The ids
/// themselves are stored beside the campaign, in the order they were picked
/// (`CampaignStore::selection_ids`); the campaign item stays small whatever their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandPicked {
    /// 1 to [`MAX_SELECTED_CONTACTS`].
    pub contacts: u32,
}

/// What makes a campaign a recurring run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurringRun {
    pub setting_id: super::RecurringId,
    /// The local day the run is for (`YYYY-MM-DD` in the setting's time zone).
    pub local_date: String,
    pub rule: super::ReminderRule,
}

/// The contacts of a hand-picked campaign, parsed: 1 to [`MAX_SELECTED_CONTACTS`] distinct
/// ids, in the order they were first given (a repeated id is dropped, not refused: ticking a
/// row twice in two lists is not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedContacts(Vec<ContactId>);

impl PickedContacts {
    pub fn parse(ids: Vec<ContactId>) -> Result<Self, DomainError> {
        let invalid = |reason: String| DomainError::InvalidField {
            field: "contact_ids",
            reason,
        };
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let mut distinct = Vec::with_capacity(ids.len().min(MAX_SELECTED_CONTACTS));
        for id in ids {
            if !seen.contains(&id) {
                seen.insert(id.clone());
                distinct.push(id);
            }
        }
        if distinct.is_empty() {
            return Err(invalid("name at least one contact".into()));
        }
        if distinct.len() > MAX_SELECTED_CONTACTS {
            return Err(invalid(format!(
                "at most {MAX_SELECTED_CONTACTS} distinct contacts per campaign, got {}; \
                 split the selection into several campaigns",
                distinct.len()
            )));
        }
        Ok(Self(distinct))
    }

    pub fn as_slice(&self) -> &[ContactId] {
        &self.0
    }

    /// The first contact picked: its division's address is the default sender.
    pub fn first(&self) -> &ContactId {
        // `parse` refuses an empty list.
        &self.0[0]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A registration token: 128 random bits as URL-safe base64 (22 characters). Only its
/// [`hash`](RegistrationToken::hash) is stored; the token travels in the email alone.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationToken(String);

impl RegistrationToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token as it appears in a link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        hash_token(&self.0)
    }
}

impl fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistrationToken(<redacted>)")
    }
}

/// SHA-256 of a token as presented (to look an invitation up by the token in a link).
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const EVENTS: [CampaignEvent; 6] = [
        CampaignEvent::FanOutStarted,
        CampaignEvent::FanOutFinished,
        CampaignEvent::DeliveriesFinished,
        CampaignEvent::Pause,
        CampaignEvent::Resume,
        CampaignEvent::Fail,
    ];

    fn status() -> impl Strategy<Value = CampaignStatus> {
        proptest::sample::select(CampaignStatus::ALL.to_vec())
    }

    fn events() -> impl Strategy<Value = Vec<CampaignEvent>> {
        proptest::collection::vec(proptest::sample::select(EVENTS.to_vec()), 0..40)
    }

    proptest! {
        #[test]
        fn nothing_moves_a_completed_or_failed_campaign(s in status(), evs in events()) {
            prop_assume!(s.is_terminal());
            for e in evs {
                prop_assert!(s.next(e).is_err());
            }
        }

        #[test]
        fn a_paused_campaign_can_always_resume_and_reach_completion(evs in events()) {
            // Wherever a run of events leaves a live campaign, pause → resume → the normal
            // path completes it.
            let mut s = CampaignStatus::Queued;
            for e in evs {
                match s.next(e) {
                    Ok(n) if !n.is_terminal() => s = n,
                    _ => {}
                }
            }
            let mut s = if s == CampaignStatus::Paused { s } else { s.next(CampaignEvent::Pause).unwrap() };
            s = s.next(CampaignEvent::Resume).unwrap();
            prop_assert_eq!(s, CampaignStatus::Queued);
            for e in [CampaignEvent::FanOutStarted, CampaignEvent::FanOutFinished, CampaignEvent::DeliveriesFinished] {
                s = s.next(e).unwrap();
            }
            prop_assert_eq!(s, CampaignStatus::Completed);
        }

        #[test]
        fn every_live_status_can_fail_and_be_paused_unless_paused(s in status()) {
            prop_assume!(!s.is_terminal());
            prop_assert_eq!(s.next(CampaignEvent::Fail), Ok(CampaignStatus::Failed));
            let paused = s.next(CampaignEvent::Pause);
            prop_assert_eq!(paused.is_ok(), s != CampaignStatus::Paused);
        }

        #[test]
        fn any_run_of_events_only_visits_statuses_the_table_allows(evs in events()) {
            let mut s = CampaignStatus::Queued;
            for e in evs {
                match s.next(e) {
                    Ok(n) => {
                        prop_assert!(!s.is_terminal());
                        // Completed is reached only from Sending; Sending only from FanningOut.
                        if n == CampaignStatus::Completed { prop_assert_eq!(s, CampaignStatus::Sending); }
                        if n == CampaignStatus::Sending { prop_assert_eq!(s, CampaignStatus::FanningOut); }
                        s = n;
                    }
                    Err(err) => prop_assert_eq!(err.from, s),
                }
            }
        }

        #[test]
        fn campaign_ids_parse_back_and_sort_by_creation_time(a in 0i64..4_000_000_000, gap in 1i64..1_000_000) {
            let t1 = OffsetDateTime::from_unix_timestamp(a).unwrap();
            let t2 = OffsetDateTime::from_unix_timestamp(a + gap).unwrap();
            let (i1, i2) = (CampaignId::generate(t1), CampaignId::generate(t2));
            prop_assert_eq!(CampaignId::parse(i1.as_str()).unwrap(), i1.clone());
            prop_assert!(i1 < i2);
        }
    }

    #[test]
    fn picked_contacts_drop_repeats_keep_their_order_and_are_one_to_ten_thousand() {
        let ids = |v: &[&str]| -> Vec<ContactId> {
            v.iter().map(|s| ContactId::parse(*s).unwrap()).collect()
        };
        let p = PickedContacts::parse(ids(&["b", "a", "b", "c", "a"])).unwrap();
        assert_eq!(p.as_slice(), ids(&["b", "a", "c"]).as_slice());
        assert_eq!(p.first().as_str(), "b");
        assert!(PickedContacts::parse(vec![]).is_err());
        let many: Vec<ContactId> = (0..=MAX_SELECTED_CONTACTS)
            .map(|i| ContactId::parse(format!("c{i}")).unwrap())
            .collect();
        let err = PickedContacts::parse(many.clone()).unwrap_err().to_string();
        assert!(err.contains("at most 10000"), "{err}");
        assert_eq!(
            PickedContacts::parse(many[..MAX_SELECTED_CONTACTS].to_vec())
                .unwrap()
                .len(),
            MAX_SELECTED_CONTACTS
        );
        // Repeats do not count towards the limit.
        let mut repeated = many[..MAX_SELECTED_CONTACTS].to_vec();
        repeated.push(many[0].clone());
        assert!(PickedContacts::parse(repeated).is_ok());
    }

    #[test]
    fn only_a_manual_send_over_divisions_locks_them() {
        let campaign = |trigger, selection| Campaign {
            campaign_id: CampaignId::generate(datetime!(2026-01-01 0:00 UTC)),
            trigger,
            status: CampaignStatus::Queued,
            division_ids: vec![DivisionId::parse("d1").unwrap()],
            filters: Filters::default(),
            limit_to_uninvited: true,
            template_id: "welcome".into(),
            email_from: Email::parse("hoa@example.org").unwrap(),
            display_name: None,
            created_at: datetime!(2026-01-01 0:00 UTC),
            created_by: "m".into(),
            targeted: 0,
            skipped: Skipped::default(),
            categories: CategoryCounts::default(),
            sends: SendCounts::default(),
            pause_reason: None,
            recurring: None,
            selection,
        };
        let picked = Some(HandPicked { contacts: 3 });
        assert!(campaign(Trigger::Manual, None).locks_divisions());
        assert!(!campaign(Trigger::Manual, picked).locks_divisions());
        for t in [Trigger::Individual, Trigger::Recurring, Trigger::PortalKey] {
            assert!(!campaign(t, None).locks_divisions());
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in CampaignStatus::ALL {
            assert_eq!(CampaignStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(CampaignStatus::parse("bogus"), None);
    }

    #[test]
    fn malformed_campaign_ids_are_rejected() {
        for bad in ["", "ABCDEF", &"g".repeat(32), &"a".repeat(31), "a#b"] {
            assert!(CampaignId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CampaignId::parse(CampaignId::generate(datetime!(2026-01-01 0:00 UTC)).0).is_ok());
    }

    #[test]
    fn a_registration_token_has_128_bits_and_only_its_hash_identifies_it() {
        let t = RegistrationToken::generate();
        assert_eq!(t.expose().len(), 22);
        assert_eq!(t.hash(), hash_token(t.expose()));
        assert_ne!(t.hash(), RegistrationToken::generate().hash());
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
