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
//!
//! The settings may also fix the name inboxes show next to the address
//! ([`SenderSettings::display_name`], a [`DisplayName`]): by default it is the name of the
//! recipient's division; a tenant may show its company's name instead, or both
//! (`[DivisionName] via Acme Property`). A campaign keeps the name its settings had when it
//! started, as it keeps its sender.

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
    /// The name shown next to the address; `None`: the recipient's division's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// Longest display name pattern, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// How a sender's display name is made: text in which `[DivisionName]` stands for the name
/// of the recipient's division (`Acme Property`, `[DivisionName] via Acme Property`).
/// 1–100 characters after trimming, no control characters (a line break would let a name
/// add mail headers), no merge tag but `[DivisionName]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// The tag replaced by the recipient's division's name.
    pub const DIVISION_TAG: &'static str = "[DivisionName]";

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_optional(raw)?.ok_or_else(|| DomainError::InvalidField {
            field: "display_name",
            reason: format!("must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
        })
    }

    /// [`DisplayName::parse`], with a blank text (spaces only) read as no display name. The
    /// limits hold for the text as given, before trimming.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, DomainError> {
        let bad = |reason: String| DomainError::InvalidField {
            field: "display_name",
            reason,
        };
        if raw.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(bad(format!(
                "must be at most {MAX_DISPLAY_NAME_CHARS} characters"
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(bad(
                "must not contain line breaks or control characters".into()
            ));
        }
        let name = raw.trim();
        if name.is_empty() {
            return Ok(None);
        }
        let rest = name.replace(Self::DIVISION_TAG, "");
        if let Some(at) = rest.find('[') {
            let tag: String = rest[at..]
                .chars()
                .take_while(|c| *c != ']')
                .take(40)
                .collect();
            if rest[at..].contains(']') {
                return Err(bad(format!(
                    "{tag}] is not allowed here: only {} is",
                    Self::DIVISION_TAG
                )));
            }
        }
        Ok(Some(Self(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name an email to a contact of `division_name` shows; `None` when that comes out
    /// empty (a pattern of only the tag, for a division without a name).
    pub fn render(&self, division_name: &str) -> Option<String> {
        let name = self.0.replace(Self::DIVISION_TAG, division_name);
        let name = name.trim();
        (!name.is_empty()).then(|| name.to_owned())
    }
}

impl<'de> Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The display name of an email to a contact of `division_name` under `policy` (the tenant's
/// [`SenderSettings::display_name`] as a campaign captured it): the division's own name
/// without one. `None`: no display name, the bare address.
pub fn display_name_for(policy: Option<&DisplayName>, division_name: &str) -> Option<String> {
    match policy {
        Some(p) => p.render(division_name),
        None => (!division_name.is_empty()).then(|| division_name.to_owned()),
    }
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
            display_name: None,
            updated_at,
            updated_by: updated_by.to_owned(),
        })
    }

    /// These settings with the display name `raw` (`None` or blank: the division's name).
    pub fn with_display_name(mut self, raw: Option<&str>) -> Result<Self, DomainError> {
        self.display_name = match raw {
            None => None,
            Some(name) => DisplayName::parse_optional(name)?,
        };
        Ok(self)
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
    fn a_display_name_shows_the_division_the_company_or_both() {
        let s = settings(&["example.com"], &[]);
        assert_eq!(s.display_name, None);
        assert_eq!(
            display_name_for(None, "Oak Hills HOA").as_deref(),
            Some("Oak Hills HOA")
        );
        assert_eq!(display_name_for(None, ""), None);
        let fixed = s
            .clone()
            .with_display_name(Some(" Acme Property "))
            .unwrap();
        let fixed = fixed.display_name.as_ref();
        assert_eq!(
            display_name_for(fixed, "Oak Hills HOA").as_deref(),
            Some("Acme Property")
        );
        let both = s
            .clone()
            .with_display_name(Some("[DivisionName] via Acme"))
            .unwrap();
        let both = both.display_name.as_ref();
        assert_eq!(
            display_name_for(both, "Oak Hills HOA").as_deref(),
            Some("Oak Hills HOA via Acme")
        );
        assert_eq!(display_name_for(both, "").as_deref(), Some("via Acme"));
        let only = DisplayName::parse("[DivisionName]").unwrap();
        assert_eq!(only.render(""), None);
        assert_eq!(
            s.clone()
                .with_display_name(Some("  "))
                .unwrap()
                .display_name,
            None
        );
    }

    #[test]
    fn a_display_name_refuses_line_breaks_other_tags_and_length() {
        for bad in [
            "Acme\r\nBcc: x@evil.example",
            "Acme\u{0}",
            "[ContactName] at Acme",
            "[DivisionName] [PortalLink]",
        ] {
            let e = DisplayName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("display_name"), "{bad:?}: {e}");
        }
        assert!(DisplayName::parse(&"a".repeat(MAX_DISPLAY_NAME_CHARS)).is_ok());
        assert!(DisplayName::parse(&"a".repeat(MAX_DISPLAY_NAME_CHARS + 1)).is_err());
        // The limit holds before trimming, as the API document states it.
        assert!(DisplayName::parse_optional(&" ".repeat(MAX_DISPLAY_NAME_CHARS + 1)).is_err());
        assert_eq!(DisplayName::parse_optional("   ").unwrap(), None);
        assert!(DisplayName::parse_optional(" \t ").is_err());
        // A bracket that is no tag is text.
        assert!(DisplayName::parse("Acme [North").is_ok());
        let json = serde_json::to_string(&DisplayName::parse("Acme").unwrap()).unwrap();
        assert_eq!(json, "\"Acme\"");
        assert!(serde_json::from_str::<DisplayName>("\"a\\nb\"").is_err());
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
