//! Registration: logins, and the sign-up requests of residents without a portal key.
//!
//! # Logins
//!
//! One [`Login`] per email address per tenant (compared case-insensitively): the store
//! reserves the address with a conditional write before any credential exists, so two
//! registrations racing with one address make one login. A login names the contacts and
//! accounts it covers; registering again through another contact's invitation adds that
//! contact to it instead of making a second login.
//!
//! # Sign-up requests
//!
//! A request moves through one function, [`RequestStatus::apply`]:
//!
//! ```text
//! open ──match──▶ matched ──key sent──▶ key_sent
//!   │               │  ▲                    │
//!   │               └──┴──── match ─────────┘   (staff may re-match before it closes)
//!   └──────── registered | login exists | reject | expire ───────▶ closed(reason)
//! ```
//!
//! `closed` is final: nothing moves a closed request.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::{AccountId, ContactId, DivisionId, DomainError, Email};

/// A sign-up request's id: 12 hex digits of creation time in milliseconds then 20 random hex
/// digits, like a campaign id, so newest-first is reverse key order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    pub fn generate(now: OffsetDateTime) -> Self {
        Self(super::ids::sortable_hex_id(now))
    }

    /// Exactly 32 lowercase hex digits.
    pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
        super::ids::parse_sortable_hex_id("request_id", raw.into()).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why a request closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// A login was made for the request's address after it was filed.
    Registered,
    /// The address already had a login when the request was filed or matched.
    AlreadyRegistered,
    /// Staff rejected it.
    Rejected,
    /// Nobody handled it in time.
    Expired,
}

/// Where a sign-up request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RequestStatus {
    Open,
    Matched,
    KeySent,
    Closed(CloseReason),
}

/// What can happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEvent {
    /// Staff linked it to an account (and contact).
    Match,
    /// The portal key email went out.
    KeySent,
    /// A login was made for its address.
    Registered,
    /// Its address already has a login.
    LoginExists,
    Reject,
    Expire,
}

/// A move the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} request cannot be {}", from.as_str(), event.describe())]
pub struct InvalidRequestTransition {
    pub from: RequestStatus,
    pub event: RequestEvent,
}

impl RequestEvent {
    fn describe(self) -> &'static str {
        match self {
            Self::Match => "matched",
            Self::KeySent => "sent a portal key",
            Self::Registered => "closed as registered",
            Self::LoginExists => "closed as already registered",
            Self::Reject => "rejected",
            Self::Expire => "expired",
        }
    }
}

impl RequestStatus {
    pub const ALL_NAMES: [&'static str; 4] = ["open", "matched", "key_sent", "closed"];

    /// The one transition function.
    pub fn apply(self, event: RequestEvent) -> Result<Self, InvalidRequestTransition> {
        use RequestEvent as E;
        use RequestStatus as S;
        let next = match (self, event) {
            (S::Closed(_), _) => None,
            (_, E::Match) => Some(S::Matched),
            (S::Matched, E::KeySent) => Some(S::KeySent),
            (S::KeySent, E::KeySent) => Some(S::KeySent),
            (S::Open, E::KeySent) => None,
            (_, E::Registered) => Some(S::Closed(CloseReason::Registered)),
            (_, E::LoginExists) => Some(S::Closed(CloseReason::AlreadyRegistered)),
            (_, E::Reject) => Some(S::Closed(CloseReason::Rejected)),
            (_, E::Expire) => Some(S::Closed(CloseReason::Expired)),
        };
        next.ok_or(InvalidRequestTransition { from: self, event })
    }

    pub fn is_closed(self) -> bool {
        matches!(self, Self::Closed(_))
    }

    /// `open`, `matched`, `key_sent` or `closed`: what a list filters on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Matched => "matched",
            Self::KeySent => "key_sent",
            Self::Closed(_) => "closed",
        }
    }

    pub fn close_reason(self) -> Option<CloseReason> {
        match self {
            Self::Closed(r) => Some(r),
            _ => None,
        }
    }
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::AlreadyRegistered => "already_registered",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Registered,
            Self::AlreadyRegistered,
            Self::Rejected,
            Self::Expired,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Longest free-text field of a request.
pub const MAX_REQUEST_TEXT: usize = 200;

/// A sign-up request as the resident filed it, with what staff did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrationRequest {
    pub request_id: RequestId,
    pub name: String,
    pub email: Email,
    pub phone: String,
    pub address: String,
    pub division_id: DivisionId,
    pub account_number: Option<String>,
    #[serde(flatten)]
    pub status: RequestStatus,
    pub matched_account_id: Option<AccountId>,
    pub matched_contact_id: Option<ContactId>,
    /// Staff's reason when rejected.
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Checks one free-text field of a request: trimmed, at most [`MAX_REQUEST_TEXT`]
/// characters, no control characters; `required` refuses empty.
pub fn request_text(
    field: &'static str,
    value: &str,
    required: bool,
) -> Result<String, DomainError> {
    let v = value.trim();
    let invalid = |reason: String| DomainError::InvalidField { field, reason };
    if required && v.is_empty() {
        return Err(invalid("is required".into()));
    }
    if v.chars().count() > MAX_REQUEST_TEXT {
        return Err(invalid(format!(
            "must be at most {MAX_REQUEST_TEXT} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters".into()));
    }
    Ok(v.to_owned())
}

/// How a login was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginVia {
    /// Through an invitation's link.
    Invitation,
    /// With an account number and portal key (the address confirmed by email).
    PortalKey,
}

impl LoginVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PortalKey => "portal_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(Self::Invitation),
            "portal_key" => Some(Self::PortalKey),
            _ => None,
        }
    }
}

/// A portal login: one per address per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Login {
    /// The address as first registered; compare with [`Email::normalized`].
    pub email: Email,
    pub name: String,
    pub contact_ids: Vec<ContactId>,
    pub account_ids: Vec<AccountId>,
    pub via: LoginVia,
    /// The address is confirmed: always for an invitation (the link came to it); for a
    /// portal key, once the emailed link is followed. Until then the login cannot sign in.
    pub confirmed: bool,
    /// The identity provider holds its credentials (the store reserves the address first;
    /// a registration interrupted in between is finished by the next attempt).
    pub provisioned: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = RequestEvent> {
        prop_oneof![
            Just(RequestEvent::Match),
            Just(RequestEvent::KeySent),
            Just(RequestEvent::Registered),
            Just(RequestEvent::LoginExists),
            Just(RequestEvent::Reject),
            Just(RequestEvent::Expire),
        ]
    }

    proptest! {
        /// Closed is final; a key is only ever sent to a matched request; every request that
        /// is not closed can be closed by each closing event.
        #[test]
        fn requests_move_only_forward(events in proptest::collection::vec(event(), 0..30)) {
            let mut s = RequestStatus::Open;
            let mut matched_once = false;
            for e in events {
                let before = s;
                match s.apply(e) {
                    Ok(next) => {
                        prop_assert!(!before.is_closed(), "{before:?} moved by {e:?}");
                        if next == RequestStatus::KeySent {
                            prop_assert!(matched_once);
                        }
                        if next == RequestStatus::Matched {
                            matched_once = true;
                        }
                        s = next;
                    }
                    Err(err) => {
                        prop_assert_eq!(err.from, before);
                        prop_assert!(before.is_closed() || (e == RequestEvent::KeySent && before == RequestStatus::Open));
                    }
                }
                if !s.is_closed() {
                    for close in [RequestEvent::Registered, RequestEvent::LoginExists, RequestEvent::Reject, RequestEvent::Expire] {
                        prop_assert!(s.apply(close).is_ok_and(RequestStatus::is_closed));
                    }
                }
            }
        }
    }

    #[test]
    fn the_statuses_read_as_the_api_writes_them() {
        let closed = RequestStatus::Closed(CloseReason::AlreadyRegistered);
        assert_eq!(
            serde_json::to_value(closed).unwrap(),
            serde_json::json!({"status": "closed", "reason": "already_registered"})
        );
        assert_eq!(
            serde_json::to_value(RequestStatus::KeySent).unwrap(),
            serde_json::json!({"status": "key_sent"})
        );
        assert_eq!(
            RequestStatus::Closed(CloseReason::Rejected)
                .apply(RequestEvent::Match)
                .unwrap_err()
                .to_string(),
            "a closed request cannot be matched"
        );
    }

    #[test]
    fn request_ids_sort_by_time() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let a = RequestId::generate(t0);
        let b = RequestId::generate(t0 + time::Duration::milliseconds(1));
        assert!(a < b);
        assert_eq!(RequestId::parse(a.as_str()).unwrap(), a);
        assert!(RequestId::parse("xyz").is_err());
    }
}
