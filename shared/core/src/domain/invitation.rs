//! Invitations: one email to one contact inside one campaign, and the one state machine of
//! its category.
//!
//! An invitation's fate is learnt from facts that arrive late, duplicated and out of order
//! (SES events through SNS or EventBridge, our own send outcome, the unsubscribe link, the
//! registration). The category is therefore the **highest-ranked** category any fact so far
//! implies ([`InvitationCategory`]'s order): a fact can only raise it, applying a fact twice
//! changes nothing, and any order of the same facts ends in the same state — `max` is
//! commutative, associative and idempotent. [`InvitationState::apply`] is the only place
//! that decides; stores persist its answer with a conditional write on the state they read.
//!
//! The ranking, lowest first: `in_process` (claimed, no outcome yet) < `failed` (never left:
//! send failure, SES reject, rendering failure) < `unopened` (delivered) < `bounced` (a bounce
//! outranks a delivery: mailbox servers bounce after accepting) < `opened` < `clicked` (a
//! click outranks the open it implies) < `unsubscribed` (through our link, an SES
//! subscription event or a complaint) < `registered` (the goal; nothing undoes it).
//!
//! Beside the category an invitation keeps where its send attempt stands ([`SendState`]):
//! `pending` until the delivery step records an outcome or any SES event proves SES took the
//! message. Campaigns complete when nothing is `pending`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::search::SearchText;
use super::{CampaignId, ContactId, Email};

/// Where an invitation stands. Ordered by rank: the category of an invitation is the highest
/// one its facts imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationCategory {
    /// Claimed, and no final outcome yet (queued, sent but not delivered, delayed, or
    /// bounced transiently).
    InProcess,
    /// Never reached the recipient's server: the send failed, SES rejected it, or the
    /// template failed to render.
    Failed,
    /// Delivered, no open seen.
    Unopened,
    /// Bounced (permanent or undetermined).
    Bounced,
    Opened,
    Clicked,
    /// Opted out: our one-click link, an SES subscription event, or a complaint.
    Unsubscribed,
    Registered,
}

impl InvitationCategory {
    /// Every category, lowest rank first.
    pub const ALL: [Self; 8] = [
        Self::InProcess,
        Self::Failed,
        Self::Unopened,
        Self::Bounced,
        Self::Opened,
        Self::Clicked,
        Self::Unsubscribed,
        Self::Registered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in_process",
            Self::Failed => "failed",
            Self::Unopened => "unopened",
            Self::Bounced => "bounced",
            Self::Opened => "opened",
            Self::Clicked => "clicked",
            Self::Unsubscribed => "unsubscribed",
            Self::Registered => "registered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where an invitation's send attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Claimed; no outcome recorded yet. The delivery step may send it.
    Pending,
    /// Accepted by the mail service (our record, or any SES event about the message).
    Sent,
    /// The delivery step gave up on it.
    Failed,
}

impl SendState {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Sent, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One thing learnt about an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum InvitationFact {
    /// The delivery step handed it to the mail service (or SES's Send event said so).
    Sent,
    /// The delivery step gave up (after retries, or a permanent refusal).
    SendFailed {
        reason: String,
    },
    /// SES rejected it after accepting the call (e.g. a virus), or could not render it.
    Rejected {
        reason: String,
    },
    /// The recipient's server accepted it.
    Delivered,
    /// A delivery delay or a transient bounce: still in process.
    Delayed,
    /// A final bounce. `permanent` ones put the address on the suppression list.
    Bounced {
        permanent: bool,
        reason: String,
    },
    /// The recipient marked it as spam: unsubscribed, and the address is suppressed.
    Complained,
    Opened,
    Clicked,
    /// Our one-click link, or an SES subscription event opting out.
    Unsubscribed,
    Registered,
}

impl InvitationFact {
    /// The category this fact alone implies.
    pub fn category(&self) -> InvitationCategory {
        use InvitationCategory as C;
        match self {
            Self::Sent | Self::Delayed => C::InProcess,
            Self::SendFailed { .. } | Self::Rejected { .. } => C::Failed,
            Self::Delivered => C::Unopened,
            Self::Bounced { .. } => C::Bounced,
            Self::Opened => C::Opened,
            Self::Clicked => C::Clicked,
            Self::Unsubscribed | Self::Complained => C::Unsubscribed,
            Self::Registered => C::Registered,
        }
    }

    /// Whether the fact proves the mail service accepted the message.
    fn proves_sent(&self) -> bool {
        !matches!(self, Self::SendFailed { .. })
    }

    /// Why the address must be suppressed, if the fact says so.
    pub fn suppression(&self) -> Option<Suppression> {
        match self {
            Self::Bounced {
                permanent: true, ..
            } => Some(Suppression::Bounced),
            Self::Complained => Some(Suppression::Complained),
            _ => None,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Self::SendFailed { reason } | Self::Rejected { reason } => Some(reason),
            Self::Bounced { reason, .. } => Some(reason),
            Self::Complained => Some("complaint"),
            _ => None,
        }
    }
}

/// Why an event suppresses an address (the store maps it onto its suppression reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suppression {
    Bounced,
    Complained,
}

/// What stores keep of an invitation's progress: the state [`InvitationState::apply`] works on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvitationState {
    pub category: InvitationCategory,
    pub send: SendState,
    /// Why it failed or bounced (set by the fact that raised it there; kept afterwards).
    pub reason: Option<String>,
    /// A fact already put the address on the suppression list.
    pub suppressed: bool,
}

impl InvitationState {
    /// A freshly claimed invitation.
    pub const fn new() -> Self {
        Self {
            category: InvitationCategory::InProcess,
            send: SendState::Pending,
            reason: None,
            suppressed: false,
        }
    }

    /// The state after `fact`, or `None` when the fact changes nothing (a duplicate, or a
    /// fact outranked by what is already known): nothing to write.
    pub fn apply(&self, fact: &InvitationFact) -> Option<Transition> {
        let mut next = self.clone();
        let raised = fact.category() > self.category;
        if raised {
            next.category = fact.category();
            if let Some(r) = fact.reason() {
                next.reason = Some(r.chars().take(MAX_REASON_CHARS).collect());
            }
        }
        if self.send == SendState::Pending {
            if fact.proves_sent() {
                next.send = SendState::Sent;
            } else if matches!(fact, InvitationFact::SendFailed { .. }) {
                next.send = SendState::Failed;
            }
        }
        let suppress = match fact.suppression() {
            Some(s) if !self.suppressed => {
                next.suppressed = true;
                Some(s)
            }
            _ => None,
        };
        (next != *self).then_some(Transition {
            from: self.clone(),
            to: next,
            suppress,
        })
    }
}

impl Default for InvitationState {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest reason kept on an invitation.
pub const MAX_REASON_CHARS: usize = 500;

/// A change [`InvitationState::apply`] decided. Stores write `to` conditionally on `from`,
/// move the campaign's counters by [`Transition::counter_moves`] in the same write, and add
/// the invitation's address to the tenant's suppression list when `suppress` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: InvitationState,
    pub to: InvitationState,
    pub suppress: Option<Suppression>,
}

impl Transition {
    /// The category counter that loses one and the one that gains one, when the category moved.
    pub fn category_move(&self) -> Option<(InvitationCategory, InvitationCategory)> {
        (self.from.category != self.to.category).then_some((self.from.category, self.to.category))
    }

    /// The send counter that loses one and the one that gains one, when the send state moved.
    pub fn send_move(&self) -> Option<(SendState, SendState)> {
        (self.from.send != self.to.send).then_some((self.from.send, self.to.send))
    }
}

/// How many of a campaign's invitations are in each category. Adds up to the campaign's
/// invitations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    pub in_process: u64,
    pub failed: u64,
    pub unopened: u64,
    pub bounced: u64,
    pub opened: u64,
    pub clicked: u64,
    pub unsubscribed: u64,
    pub registered: u64,
}

impl CategoryCounts {
    pub fn get(&self, category: InvitationCategory) -> u64 {
        let mut copy = *self;
        *copy.get_mut(category)
    }

    pub fn get_mut(&mut self, category: InvitationCategory) -> &mut u64 {
        use InvitationCategory as C;
        match category {
            C::InProcess => &mut self.in_process,
            C::Failed => &mut self.failed,
            C::Unopened => &mut self.unopened,
            C::Bounced => &mut self.bounced,
            C::Opened => &mut self.opened,
            C::Clicked => &mut self.clicked,
            C::Unsubscribed => &mut self.unsubscribed,
            C::Registered => &mut self.registered,
        }
    }

    pub fn total(&self) -> u64 {
        InvitationCategory::ALL
            .into_iter()
            .map(|c| self.get(c))
            .sum()
    }

    /// `registered / (total − failed)`, `None` while that is 0.
    pub fn success_rate(&self) -> Option<f64> {
        let reached = self.total().saturating_sub(self.failed);
        (reached > 0).then(|| self.registered as f64 / reached as f64)
    }
}

/// How many of a campaign's invitations are in each send state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
}

impl SendCounts {
    pub fn get_mut(&mut self, state: SendState) -> &mut u64 {
        match state {
            SendState::Pending => &mut self.pending,
            SendState::Sent => &mut self.sent,
            SendState::Failed => &mut self.failed,
        }
    }
}

/// One contact's invitation within a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub campaign_id: CampaignId,
    pub contact_id: ContactId,
    pub email: Email,
    /// The contact's name and account number when claimed (shown and searched in the
    /// campaign's recipient lists).
    pub contact_name: String,
    pub account_number: String,
    /// SHA-256 of the registration token; the token itself is never stored.
    pub registration_token_hash: [u8; 32],
    pub expires_at: OffsetDateTime,
    pub state: InvitationState,
    pub created_at: OffsetDateTime,
}

impl Invitation {
    /// What a recipient search looks in: email, contact name and account number.
    pub fn search_text(&self) -> SearchText {
        SearchText::of([
            self.email.as_str(),
            &self.contact_name,
            &self.account_number,
        ])
    }

    pub fn category(&self) -> InvitationCategory {
        self.state.category
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fact() -> impl Strategy<Value = InvitationFact> {
        prop_oneof![
            Just(InvitationFact::Sent),
            Just(InvitationFact::SendFailed {
                reason: "throttled".into()
            }),
            Just(InvitationFact::Rejected {
                reason: "virus".into()
            }),
            Just(InvitationFact::Delivered),
            Just(InvitationFact::Delayed),
            any::<bool>().prop_map(|permanent| InvitationFact::Bounced {
                permanent,
                reason: if permanent {
                    "Permanent/General"
                } else {
                    "Undetermined"
                }
                .into()
            }),
            Just(InvitationFact::Complained),
            Just(InvitationFact::Opened),
            Just(InvitationFact::Clicked),
            Just(InvitationFact::Unsubscribed),
            Just(InvitationFact::Registered),
        ]
    }

    fn fold(facts: &[InvitationFact]) -> InvitationState {
        let mut s = InvitationState::new();
        for f in facts {
            if let Some(t) = s.apply(f) {
                assert_eq!(t.from, s);
                s = t.to;
            }
        }
        s
    }

    proptest! {
        /// The final category, send state and suppression do not depend on the order or the
        /// duplication of the facts (the reason may: it is the first fact that raised).
        #[test]
        fn any_order_and_duplication_of_the_same_facts_ends_in_the_same_state(
            facts in proptest::collection::vec(fact(), 0..24),
            dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
            seed in any::<u64>(),
        ) {
            let mut stream = facts.clone();
            for d in &dups {
                if !facts.is_empty() {
                    stream.push(d.get(&facts).clone());
                }
            }
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..stream.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                stream.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let (a, b) = (fold(&facts), fold(&stream));
            prop_assert_eq!(a.category, b.category);
            prop_assert_eq!(a.suppressed, b.suppressed);
            // The send state is order-free too, except a send failure recorded before any
            // proof of sending (then SES's later event cannot undo our verdict).
            if !facts.iter().any(|f| matches!(f, InvitationFact::SendFailed { .. })) {
                prop_assert_eq!(a.send, b.send);
            }
            // The category is the highest any fact implies.
            let top = facts.iter().map(InvitationFact::category).max().unwrap_or(InvitationCategory::InProcess);
            prop_assert_eq!(a.category, top);
        }

        #[test]
        fn applying_a_fact_twice_changes_nothing_the_second_time(
            before in proptest::collection::vec(fact(), 0..8),
            f in fact(),
        ) {
            let s = fold(&before);
            let once = s.apply(&f).map(|t| t.to).unwrap_or_else(|| s.clone());
            prop_assert_eq!(once.apply(&f), None);
        }

        #[test]
        fn counters_moved_by_transitions_always_equal_a_recount(
            streams in proptest::collection::vec(proptest::collection::vec(fact(), 0..10), 1..20),
        ) {
            let mut counts = CategoryCounts::default();
            let mut sends = SendCounts::default();
            let mut states = vec![InvitationState::new(); streams.len()];
            counts.in_process = states.len() as u64;
            sends.pending = states.len() as u64;
            for (s, stream) in states.iter_mut().zip(&streams) {
                for f in stream {
                    if let Some(t) = s.apply(f) {
                        if let Some((from, to)) = t.category_move() {
                            *counts.get_mut(from) -= 1;
                            *counts.get_mut(to) += 1;
                        }
                        if let Some((from, to)) = t.send_move() {
                            *sends.get_mut(from) -= 1;
                            *sends.get_mut(to) += 1;
                        }
                        *s = t.to;
                    }
                }
            }
            let mut recount = CategoryCounts::default();
            let mut resend = SendCounts::default();
            for s in &states {
                *recount.get_mut(s.category) += 1;
                *resend.get_mut(s.send) += 1;
            }
            prop_assert_eq!(counts, recount);
            prop_assert_eq!(sends, resend);
            prop_assert_eq!(counts.total(), streams.len() as u64);
        }
    }

    #[test]
    fn a_delivery_after_an_open_keeps_it_opened_and_a_replayed_open_writes_nothing() {
        let opened = InvitationState::new()
            .apply(&InvitationFact::Opened)
            .unwrap()
            .to;
        assert_eq!(opened.category, InvitationCategory::Opened);
        assert_eq!(opened.send, SendState::Sent, "an open proves SES took it");
        assert_eq!(opened.apply(&InvitationFact::Delivered), None);
        assert_eq!(opened.apply(&InvitationFact::Opened), None);
    }

    #[test]
    fn transient_bounces_and_delays_keep_it_in_process_and_permanent_ones_suppress_once() {
        let sent = InvitationState::new()
            .apply(&InvitationFact::Sent)
            .unwrap()
            .to;
        assert_eq!(sent.apply(&InvitationFact::Delayed), None);
        let t = sent
            .apply(&InvitationFact::Bounced {
                permanent: true,
                reason: "Permanent/NoEmail".into(),
            })
            .unwrap();
        assert_eq!(t.to.category, InvitationCategory::Bounced);
        assert_eq!(t.suppress, Some(Suppression::Bounced));
        assert_eq!(t.to.reason.as_deref(), Some("Permanent/NoEmail"));
        let again = t.to.apply(&InvitationFact::Bounced {
            permanent: true,
            reason: "Permanent/General".into(),
        });
        assert_eq!(again, None, "a second bounce changes nothing");
        // A complaint after an open: unsubscribed, and the address suppressed.
        let opened = sent.apply(&InvitationFact::Opened).unwrap().to;
        let t = opened.apply(&InvitationFact::Complained).unwrap();
        assert_eq!(t.to.category, InvitationCategory::Unsubscribed);
        assert_eq!(t.suppress, Some(Suppression::Complained));
    }

    #[test]
    fn a_permanent_bounce_after_an_open_still_suppresses_without_moving_the_category() {
        let opened = InvitationState::new()
            .apply(&InvitationFact::Opened)
            .unwrap()
            .to;
        let t = opened
            .apply(&InvitationFact::Bounced {
                permanent: true,
                reason: "Permanent/General".into(),
            })
            .unwrap();
        assert_eq!(t.category_move(), None);
        assert_eq!(t.suppress, Some(Suppression::Bounced));
    }

    #[test]
    fn a_send_failure_settles_a_pending_send_and_success_rate_leaves_failures_out() {
        let t = InvitationState::new()
            .apply(&InvitationFact::SendFailed {
                reason: "throttled".into(),
            })
            .unwrap();
        assert_eq!(t.send_move(), Some((SendState::Pending, SendState::Failed)));
        assert_eq!(
            t.category_move(),
            Some((InvitationCategory::InProcess, InvitationCategory::Failed))
        );
        let counts = CategoryCounts {
            failed: 2,
            registered: 3,
            unopened: 5,
            ..CategoryCounts::default()
        };
        assert_eq!(counts.success_rate(), Some(3.0 / 8.0));
        assert_eq!(CategoryCounts::default().success_rate(), None);
    }

    #[test]
    fn names_round_trip() {
        for c in InvitationCategory::ALL {
            assert_eq!(InvitationCategory::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for s in SendState::ALL {
            assert_eq!(SendState::parse(s.as_str()), Some(s));
        }
        assert_eq!(InvitationCategory::parse("sent"), None);
    }
}
