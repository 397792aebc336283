//! Email addresses, parsed once. Comparison (suppression, logins) uses the lowercased form.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use super::DomainError;

/// A syntactically plausible address: `local@domain.tld`, at most 254 characters, no spaces
/// or control characters. Deliverability is SES's business, not ours.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let bad = |reason: &'static str| DomainError::InvalidEmail {
            value: s.chars().take(80).collect(),
            reason,
        };
        if s.is_empty() || s.len() > 254 {
            return Err(bad("must be 1 to 254 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| bad("must contain '@'"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(bad("has an invalid local part"));
        }
        if domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad("has an invalid domain"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lowercased form used for suppression lists and one-login-per-address checks.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_parse_and_normalize() {
        let e = Email::parse("  Jane.Doe+hoa@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Jane.Doe+hoa@Example.COM");
        assert_eq!(e.normalized(), "jane.doe+hoa@example.com");
    }

    #[test]
    fn implausible_addresses_are_rejected() {
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@.com",
            "a b@c.com",
            "@x.com",
            "a@x..com",
            "a@x.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
