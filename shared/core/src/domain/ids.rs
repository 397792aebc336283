//! Identifiers. Every id is parsed once at the edge: 1–64 characters of `[A-Za-z0-9._:-]`.
//! `#` is excluded on purpose — the DynamoDB adapter uses it as its key separator, and a
//! narrow alphabet keeps ids safe in URLs, CSV and log lines.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use super::DomainError;

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;

fn check_id(kind: &'static str, raw: &str) -> Result<(), DomainError> {
    if raw.is_empty() || raw.len() > MAX_ID_LEN {
        return Err(DomainError::InvalidId {
            kind,
            value: raw.chars().take(80).collect(),
            reason: "must be 1 to 64 characters",
        });
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(DomainError::InvalidId {
            kind,
            value: raw.chars().take(80).collect(),
            reason: "may contain only letters, digits, '.', '_', ':' and '-'",
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an id, rejecting anything outside the id alphabet.
            pub fn parse(raw: impl Into<String>) -> Result<Self, DomainError> {
                let raw = raw.into();
                check_id($kind, &raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// The management company. Comes only from the caller's token, never from a body or path.
    TenantId,
    "tenant_id"
);
id_type!(
    /// A division, association or branch: a group of accounts.
    DivisionId,
    "division_id"
);
id_type!(
    /// A customer account or homeowner unit, as the company's own system names it.
    AccountId,
    "account_id"
);
id_type!(
    /// A person on an account: the unit that is invited.
    ContactId,
    "contact_id"
);
id_type!(
    /// An invitation template, named by the tenant (`welcome`, `reminder-2026`).
    TemplateId,
    "template_id"
);
id_type!(
    /// A recurring invitation setting, named by the tenant (`weekly`, `new-hoas`).
    RecurringId,
    "recurring_id"
);

/// A time-sortable id: 12 hex digits of `now` in milliseconds, then 20 random hex digits.
/// Ids made later sort after (to the millisecond), so newest-first is reverse key order, and
/// two ids never collide in practice (80 random bits).
pub(crate) fn sortable_hex_id(now: time::OffsetDateTime) -> String {
    use rand::RngCore;
    let millis = (now.unix_timestamp_nanos() / 1_000_000).clamp(0, 0xffff_ffff_ffff) as u64;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut s = format!("{millis:012x}");
    for b in random {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Checks an id made by [`sortable_hex_id`]: exactly 32 lowercase hex digits.
pub(crate) fn parse_sortable_hex_id(
    kind: &'static str,
    raw: String,
) -> Result<String, DomainError> {
    if raw.len() != 32 || !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DomainError::InvalidId {
            kind,
            value: raw.chars().take(80).collect(),
            reason: "must be 32 lowercase hexadecimal digits",
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_id_alphabet() {
        assert!(ContactId::parse("c-001.a_b:9").is_ok());
    }

    #[test]
    fn ids_reject_separators_spaces_and_length() {
        assert!(ContactId::parse("a#b").is_err());
        assert!(ContactId::parse("a b").is_err());
        assert!(ContactId::parse("").is_err());
        assert!(ContactId::parse("x".repeat(65)).is_err());
    }
}
