//! A tenant's sender settings: the addresses its emails may come from.
//!
//! Every email a tenant's campaigns, individual invites, recurring runs and registration send
//! names a sender (`email_from`). Without these settings any syntactically valid address
//! would do, so one tenant's manager could send as another tenant's domain or the platform's
//! own. A sender is allowed when its address is one of [`SenderSettings::addresses`] or its
//! domain one of [`SenderSettings::domains`] (compared case-insensitively, the domain
//! exactly: `mail.example.com` is not `example.com`). A tenant with no settings may send from
//! nobody: its settings come first.
//!
//! Divisions are synced from the tenant's own systems with a default sender each; sync keeps
//! a division whose sender is not allowed, and such a division cannot be sent from by
//! default until the settings allow it ([`SenderCheck`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DomainError, Email};

/// Most domains and most addresses in one tenant's settings.
pub const MAX_SENDER_DOMAINS: usize = 50;
pub const MAX_SENDER_ADDRESSES: usize = 100;

/// What a tenant may send from (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderSettings {
    /// Lowercase domains, sorted, distinct: any address at one of them is allowed.
    pub domains: Vec<String>,
    /// Single addresses allowed whatever their domain, sorted by their lowercase form,
    /// distinct.
    pub addresses: Vec<Email>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// Whether a sender may be used, and if not, why — what counts and division lists show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderCheck {
    Allowed,
    /// The tenant has settings, and they name neither the address nor its domain.
    NotAllowed,
    /// The tenant has no sender settings yet: nothing is allowed.
    NoSettings,
}

impl SenderCheck {
    /// `settings` is the tenant's (`None`: it has none).
    pub fn of(settings: Option<&SenderSettings>, sender: &Email) -> Self {
        match settings {
            None => Self::NoSettings,
            Some(s) if s.allows(sender) => Self::Allowed,
            Some(_) => Self::NotAllowed,
        }
    }

    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }
}

impl SenderSettings {
    /// Checks and normalizes what a manager entered: domains lowercased and checked as host
    /// names, addresses parsed; both sorted, duplicates dropped; at least one of either.
    pub fn new(
        domains: &[String],
        addresses: &[String],
        updated_at: OffsetDateTime,
        updated_by: &str,
    ) -> Result<Self, DomainError> {
        if domains.len() > MAX_SENDER_DOMAINS {
            return Err(DomainError::InvalidField {
                field: "domains",
                reason: format!("at most {MAX_SENDER_DOMAINS}, got {}", domains.len()),
            });
        }
        if addresses.len() > MAX_SENDER_ADDRESSES {
            return Err(DomainError::InvalidField {
                field: "addresses",
                reason: format!("at most {MAX_SENDER_ADDRESSES}, got {}", addresses.len()),
            });
        }
        let mut ds = Vec::with_capacity(domains.len());
        for d in domains {
            ds.push(domain(d)?);
        }
        ds.sort();
        ds.dedup();
        let mut addrs = Vec::with_capacity(addresses.len());
        for a in addresses {
            addrs.push(Email::parse(a).map_err(|e| DomainError::InvalidField {
                field: "addresses",
                reason: e.to_string(),
            })?);
        }
        addrs.sort_by_key(Email::normalized);
        addrs.dedup_by_key(|a| a.normalized());
        if ds.is_empty() && addrs.is_empty() {
            return Err(DomainError::InvalidField {
                field: "domains",
                reason: "name at least one domain or address to send from".into(),
            });
        }
        Ok(Self {
            domains: ds,
            addresses: addrs,
            updated_at,
            updated_by: updated_by.to_owned(),
        })
    }

    /// Whether `sender` is one of the addresses or at one of the domains.
    pub fn allows(&self, sender: &Email) -> bool {
        let normalized = sender.normalized();
        if self.addresses.iter().any(|a| a.normalized() == normalized) {
            return true;
        }
        normalized
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.domains.iter().any(|allowed| allowed == d))
    }
}

/// A domain as entered: trimmed, lowercased, a host name of dot-separated labels (letters,
/// digits, inner hyphens), at least two labels, at most 253 characters.
fn domain(raw: &str) -> Result<String, DomainError> {
    let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
    let bad = |reason: &str| DomainError::InvalidField {
        field: "domains",
        reason: format!("{:?} {reason}", d.chars().take(80).collect::<String>()),
    };
    if d.is_empty() || d.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("is not a domain (example.com)"));
    }
    for l in labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad("is not a domain (example.com)"));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn settings(domains: &[&str], addresses: &[&str]) -> SenderSettings {
        let d: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
        let a: Vec<String> = addresses.iter().map(|s| s.to_string()).collect();
        SenderSettings::new(&d, &a, at(), "m").unwrap()
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn a_domain_allows_every_address_at_it_and_nothing_else() {
        let s = settings(&["Example.COM"], &[]);
        assert!(s.allows(&email("board@example.com")));
        assert!(s.allows(&email("Office@EXAMPLE.com")));
        assert!(!s.allows(&email("board@mail.example.com")));
        assert!(!s.allows(&email("board@example.com.evil.org")));
        assert!(!s.allows(&email("board@notexample.com")));
    }

    #[test]
    fn an_address_allows_only_itself_case_insensitively() {
        let s = settings(&[], &["Manager@Example.org"]);
        assert!(s.allows(&email("manager@example.org")));
        assert!(!s.allows(&email("other@example.org")));
    }

    #[test]
    fn no_settings_allow_nothing_and_say_so() {
        let e = email("a@example.com");
        assert_eq!(SenderCheck::of(None, &e), SenderCheck::NoSettings);
        let s = settings(&["example.org"], &[]);
        assert_eq!(SenderCheck::of(Some(&s), &e), SenderCheck::NotAllowed);
        let s = settings(&["example.com"], &[]);
        assert_eq!(SenderCheck::of(Some(&s), &e), SenderCheck::Allowed);
    }

    #[test]
    fn entries_are_normalized_sorted_and_deduplicated() {
        let s = settings(
            &["b.org", "@A.org", " a.org "],
            &["X@c.org", "x@C.org", "a@c.org"],
        );
        assert_eq!(s.domains, vec!["a.org", "b.org"]);
        let a: Vec<&str> = s.addresses.iter().map(Email::as_str).collect();
        assert_eq!(a, vec!["a@c.org", "X@c.org"]);
    }

    #[test]
    fn bad_entries_are_refused_with_the_field_named() {
        let bad = |d: &[&str], a: &[&str]| {
            let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            SenderSettings::new(&d, &a, at(), "m")
                .unwrap_err()
                .to_string()
        };
        assert!(bad(&[], &[]).contains("domains"));
        assert!(bad(&["localhost"], &[]).contains("domains"));
        assert!(bad(&["exa mple.com"], &[]).contains("domains"));
        assert!(bad(&["-a.com"], &[]).contains("domains"));
        assert!(bad(&["a..com"], &[]).contains("domains"));
        assert!(bad(&[], &["not-an-address"]).contains("addresses"));
        let many: Vec<String> = (0..=MAX_SENDER_DOMAINS)
            .map(|i| format!("d{i}.com"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(bad(&many, &[]).contains("at most"));
    }
}
