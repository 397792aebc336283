//! What a send would do to each contact now, and the counts a manager loads.
//!
//! Every contact matching the filters falls in exactly one portal status
//! (`accepted + pending + not_sent = total`). The contacts a send would target —
//! `not_sent`, plus `pending` when `limit_to_uninvited` is off — each fall in exactly one of
//! `no_email`, `suppressed`, `held_24h`, `eligible`, checked in that order.
//!
//! One address gets at most one invitation per rolling 24 hours, whichever contact it
//! belongs to, so some `eligible` contacts get no email of their own: [`AddressTally`] counts
//! them (`duplicate_address`, a part of `eligible`), beside [`classify`], which judges one
//! contact alone.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{ContactRecord, PortalStatus};

/// The rolling window of the 24-hour rule: a contact invited at `t` is held until `t + 24h`
/// (held at 23:59:59, free at exactly 24:00:00).
pub const HOLD_WINDOW: Duration = Duration::hours(24);

/// What a send started now would do with one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendOutcome {
    /// Already registered: never invited.
    Accepted,
    /// Pending while `limit_to_uninvited` is on: left alone.
    NotTargeted,
    NoEmail,
    Suppressed,
    Held24h,
    Eligible,
}

/// Classifies one contact. `suppressed` says whether its address is on the tenant's
/// suppression list (the caller looks it up; a contact without email is never suppressed).
pub fn classify(
    c: &ContactRecord,
    now: OffsetDateTime,
    suppressed: bool,
    limit_to_uninvited: bool,
) -> SendOutcome {
    match c.portal_status {
        PortalStatus::Accepted => return SendOutcome::Accepted,
        PortalStatus::Pending if limit_to_uninvited => return SendOutcome::NotTargeted,
        _ => {}
    }
    if c.email.is_none() {
        SendOutcome::NoEmail
    } else if suppressed {
        SendOutcome::Suppressed
    } else if c.last_invited_at.is_some_and(|t| now < t + HOLD_WINDOW) {
        SendOutcome::Held24h
    } else {
        SendOutcome::Eligible
    }
}

/// The answer to `POST /v1/invitations/counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub active_services: u64,
    pub accepted: u64,
    pub pending: u64,
    pub not_sent: u64,
    pub eligible: u64,
    pub held_24h: u64,
    pub suppressed: u64,
    pub no_email: u64,
    /// Of `eligible`, the contacts a send would skip because their address (compared
    /// case-insensitively) is another eligible contact's that comes first, or was invited
    /// within the last 24 hours through another contact of the selection. A send emails
    /// `eligible - duplicate_address` contacts. Set from an [`AddressTally`] of the whole
    /// selection ([`Counts::add`] cannot see other contacts).
    #[serde(default)]
    pub duplicate_address: u64,
}

impl Counts {
    /// Adds one contact that passed the filters.
    pub fn add(&mut self, c: &ContactRecord, outcome: SendOutcome) {
        self.total += 1;
        self.active_services += u64::from(c.active_services);
        match c.portal_status {
            PortalStatus::Accepted => self.accepted += 1,
            PortalStatus::Pending => self.pending += 1,
            PortalStatus::NotSent => self.not_sent += 1,
        }
        match outcome {
            SendOutcome::Accepted | SendOutcome::NotTargeted => {}
            SendOutcome::NoEmail => self.no_email += 1,
            SendOutcome::Suppressed => self.suppressed += 1,
            SendOutcome::Held24h => self.held_24h += 1,
            SendOutcome::Eligible => self.eligible += 1,
        }
    }

    /// Sums counts of disjoint sets (e.g. parallel segments of one division).
    pub fn merge(&mut self, o: &Counts) {
        self.total += o.total;
        self.active_services += o.active_services;
        self.accepted += o.accepted;
        self.pending += o.pending;
        self.not_sent += o.not_sent;
        self.eligible += o.eligible;
        self.held_24h += o.held_24h;
        self.suppressed += o.suppressed;
        self.no_email += o.no_email;
        self.duplicate_address += o.duplicate_address;
    }
}

/// The addresses of a selection's contacts, for `duplicate_address`: fed every contact that
/// passed the filters with its [`classify`] outcome, in any order and in any number of parts
/// ([`AddressTally::merge`]).
///
/// Each address is kept as a 64-bit FNV-1a hash of its normalized form (16 bytes an address
/// instead of the text: a million addresses fit in a Lambda's memory). Two addresses of one
/// selection sharing a hash would count as one: for a million addresses the odds are about
/// 3 in 100 million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressTally {
    /// Per address: eligible contacts, and whether a contact with it was invited within
    /// [`HOLD_WINDOW`].
    addresses: HashMap<u64, (u64, bool)>,
}

impl AddressTally {
    /// Adds one contact that passed the filters, classified at `now`.
    pub fn add(&mut self, c: &ContactRecord, outcome: SendOutcome, now: OffsetDateTime) {
        let Some(email) = &c.email else { return };
        let eligible = outcome == SendOutcome::Eligible;
        let recent = c.last_invited_at.is_some_and(|t| now < t + HOLD_WINDOW);
        if !eligible && !recent {
            return;
        }
        let entry = self
            .addresses
            .entry(address_hash(email.as_str()))
            .or_default();
        entry.0 += u64::from(eligible);
        entry.1 |= recent;
    }

    /// Adds another part of the same selection.
    pub fn merge(&mut self, other: AddressTally) {
        for (k, (n, recent)) in other.addresses {
            let entry = self.addresses.entry(k).or_default();
            entry.0 += n;
            entry.1 |= recent;
        }
    }

    /// Eligible contacts a send would skip: all of an address invited within 24 hours, all
    /// but the first of any other address.
    pub fn duplicates(&self) -> u64 {
        self.addresses
            .values()
            .map(|&(n, recent)| if recent { n } else { n.saturating_sub(1) })
            .sum()
    }
}

/// FNV-1a of the address's ASCII-lowercased bytes ([`super::Email::normalized`], unallocated).
fn address_hash(address: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in address.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A recipient list: each count a manager can drill into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    #[default]
    All,
    ActiveServices,
    Accepted,
    Pending,
    NotSent,
    Eligible,
    /// Spelled like the `held_24h` count (snake_case alone would give `held24h`).
    #[serde(rename = "held_24h")]
    Held24h,
    Suppressed,
    NoEmail,
}

impl Group {
    /// Whether a contact (already past the filters) belongs to this list; mirrors [`Counts::add`].
    pub fn contains(self, c: &ContactRecord, outcome: SendOutcome) -> bool {
        match self {
            Group::All => true,
            Group::ActiveServices => c.active_services,
            Group::Accepted => c.portal_status == PortalStatus::Accepted,
            Group::Pending => c.portal_status == PortalStatus::Pending,
            Group::NotSent => c.portal_status == PortalStatus::NotSent,
            Group::Eligible => outcome == SendOutcome::Eligible,
            Group::Held24h => outcome == SendOutcome::Held24h,
            Group::Suppressed => outcome == SendOutcome::Suppressed,
            Group::NoEmail => outcome == SendOutcome::NoEmail,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::All => "all",
            Group::ActiveServices => "active_services",
            Group::Accepted => "accepted",
            Group::Pending => "pending",
            Group::NotSent => "not_sent",
            Group::Eligible => "eligible",
            Group::Held24h => "held_24h",
            Group::Suppressed => "suppressed",
            Group::NoEmail => "no_email",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, ContactId, DivisionId, Email};
    use time::macros::datetime;

    fn contact(
        status: PortalStatus,
        email: bool,
        invited: Option<OffsetDateTime>,
    ) -> ContactRecord {
        ContactRecord {
            contact_id: ContactId::parse("c1").unwrap(),
            account_id: AccountId::parse("a1").unwrap(),
            division_id: DivisionId::parse("d1").unwrap(),
            contact_name: "Jane".into(),
            email: email.then(|| Email::parse("jane@example.com").unwrap()),
            phone: String::new(),
            billing: true,
            account_number: "1001".into(),
            account_name: "Doe".into(),
            account_class: "Residential".into(),
            bill_group: "A".into(),
            account_source: "Web".into(),
            site_source: "Web".into(),
            active_services: true,
            balance_due_cents: 0,
            autopay: false,
            portal_status: status,
            last_invited_at: invited,
            last_login: None,
            portal_key: None,
            invitations_sent: 0,
        }
    }

    fn with(id: &str, mail: &str, invited: Option<OffsetDateTime>) -> ContactRecord {
        let mut c = contact(PortalStatus::NotSent, true, invited);
        c.contact_id = ContactId::parse(id).unwrap();
        c.email = Some(Email::parse(mail).unwrap());
        c
    }

    #[test]
    fn shared_addresses_leave_one_eligible_contact_or_none_when_recently_invited() {
        let now = datetime!(2026-11-01 10:00:00 UTC);
        let contacts = [
            with("a", "Pat@Example.org", None),
            with("b", "pat@example.ORG", None),
            with("c", "PAT@EXAMPLE.ORG", None),
            with("d", "lee@example.org", None),
            // Lee was invited an hour ago through another contact: Lee's other is skipped.
            with("e", "Lee@example.org", Some(now - Duration::hours(1))),
            // Kim's invitation is 24 hours old: it holds nothing any more.
            with("f", "kim@example.org", Some(now - Duration::hours(24))),
            with("g", "KIM@example.org", None),
            with("h", "solo@example.org", None),
        ];
        let mut whole = AddressTally::default();
        let (mut left, mut right) = (AddressTally::default(), AddressTally::default());
        let mut eligible = 0;
        for (i, c) in contacts.iter().enumerate() {
            let outcome = classify(c, now, false, false);
            eligible += u64::from(outcome == SendOutcome::Eligible);
            whole.add(c, outcome, now);
            if i % 2 == 0 { &mut left } else { &mut right }.add(c, outcome, now);
        }
        assert_eq!(eligible, 7, "e is held");
        // Pat: 2 of 3; Lee: d; Kim: 1 of 2; solo: none.
        assert_eq!(whole.duplicates(), 4);
        left.merge(right);
        assert_eq!(left.duplicates(), 4, "parts merge to the whole");
    }

    #[test]
    fn the_24_hour_hold_ends_exactly_at_24_hours() {
        let sent = datetime!(2026-11-01 10:00:00 UTC);
        let c = contact(PortalStatus::Pending, true, Some(sent));
        let at = |d: Duration| classify(&c, sent + d, false, false);
        assert_eq!(
            at(Duration::hours(24) - Duration::seconds(1)),
            SendOutcome::Held24h
        );
        assert_eq!(at(Duration::hours(24)), SendOutcome::Eligible);
    }

    #[test]
    fn accepted_contacts_are_never_targeted_and_pending_only_when_asked() {
        let now = datetime!(2026-11-01 10:00:00 UTC);
        assert_eq!(
            classify(
                &contact(PortalStatus::Accepted, true, None),
                now,
                false,
                false
            ),
            SendOutcome::Accepted
        );
        assert_eq!(
            classify(
                &contact(PortalStatus::Pending, true, None),
                now,
                false,
                true
            ),
            SendOutcome::NotTargeted
        );
        assert_eq!(
            classify(
                &contact(PortalStatus::Pending, true, None),
                now,
                false,
                false
            ),
            SendOutcome::Eligible
        );
        assert_eq!(
            classify(
                &contact(PortalStatus::NotSent, false, None),
                now,
                true,
                true
            ),
            SendOutcome::NoEmail
        );
        assert_eq!(
            classify(&contact(PortalStatus::NotSent, true, None), now, true, true),
            SendOutcome::Suppressed
        );
    }
}
