//! Portal keys: the secret printed on welcome letters and emailed to matched sign-up
//! requests, which — with the account number — lets a resident create a login at once.
//!
//! Every account has one: the company's system may send it (`portal_key` in sync), otherwise
//! the store generates one the first time it sees the account ([`PortalKey::generate`]):
//! 16 characters from a 31-letter alphabet without look-alikes (no `0 O 1 I L`), grouped
//! by four for reading — `7KQ4-M2XD-9RTA-HW3E`, 79 random bits.
//!
//! What a resident types is compared after [`normalize`]: case, spaces and dashes do not
//! matter. The comparison runs in constant time over the normalized forms.

use std::fmt;

use rand::Rng;
use serde::{Serialize, Serializer};

use super::DomainError;

/// The letters a generated key uses: digits and capitals without `0 O 1 I L`.
pub const KEY_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters of a generated key (without its dashes).
pub const GENERATED_LEN: usize = 16;
/// Longest key accepted from sync (normalized).
pub const MAX_KEY_LEN: usize = 64;
/// Shortest key accepted from sync (normalized): anything shorter is guessable.
pub const MIN_KEY_LEN: usize = 8;

/// An account's portal key, kept as the company's system or the generator wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalKey(String);

impl PortalKey {
    /// A fresh key: [`GENERATED_LEN`] characters of [`KEY_ALPHABET`] in groups of four.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut s = String::with_capacity(GENERATED_LEN + GENERATED_LEN / 4);
        for i in 0..GENERATED_LEN {
            if i > 0 && i % 4 == 0 {
                s.push('-');
            }
            let c = KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())];
            s.push(char::from(c));
        }
        Self(s)
    }

    /// A key sent by the company's system: 8 to 64 letters and digits once spaces and dashes
    /// are dropped. Kept as sent (trimmed, upper-cased) so the letter shows what they print.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim().to_ascii_uppercase();
        let invalid = |reason: String| DomainError::InvalidField {
            field: "portal_key",
            reason,
        };
        if trimmed
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == ' '))
        {
            return Err(invalid(
                "may contain only letters, digits, spaces and '-'".into(),
            ));
        }
        let n = normalize(&trimmed).len();
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&n) {
            return Err(invalid(format!(
                "must have {MIN_KEY_LEN} to {MAX_KEY_LEN} letters and digits"
            )));
        }
        Ok(Self(trimmed))
    }

    /// The key as stored and shown to staff.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether what a resident typed is this key (case, spaces and dashes ignored), in
    /// time that depends only on the lengths.
    pub fn matches(&self, typed: &str) -> bool {
        constant_time_eq(normalize(&self.0).as_bytes(), normalize(typed).as_bytes())
    }
}

/// Upper-case letters and digits only: how keys are compared.
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Compares without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

impl fmt::Debug for PortalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortalKey(<redacted>)")
    }
}

impl fmt::Display for PortalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PortalKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_are_grouped_unambiguous_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let k = PortalKey::generate();
            let s = k.as_str();
            assert_eq!(s.len(), 19, "{s}");
            assert_eq!(s.matches('-').count(), 3);
            assert!(normalize(s).bytes().all(|b| KEY_ALPHABET.contains(&b)));
            assert!(!s.contains(['0', 'O', '1', 'I', 'L']));
            assert!(seen.insert(s.to_owned()));
        }
        // 31^16 > 2^79: at least 60 bits, as promised.
        assert!((KEY_ALPHABET.len() as f64).log2() * GENERATED_LEN as f64 >= 60.0);
    }

    #[test]
    fn typed_keys_match_regardless_of_case_spaces_and_dashes() {
        let k = PortalKey::parse("7kq4-m2xd-9rta").unwrap();
        assert_eq!(k.as_str(), "7KQ4-M2XD-9RTA");
        assert!(k.matches("7KQ4M2XD9RTA"));
        assert!(k.matches(" 7kq4 m2xd 9rta "));
        assert!(!k.matches("7KQ4-M2XD-9RTB"));
        assert!(!k.matches("7KQ4-M2XD-9RT"));
        assert!(!k.matches(""));
    }

    #[test]
    fn keys_from_sync_are_checked() {
        for bad in ["", "short", "ab<script>cd", &"A".repeat(65), "ÄÖÜ12345"] {
            assert!(PortalKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PortalKey::parse("ABCD 1234").is_ok());
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let k = PortalKey::generate();
        assert!(!format!("{k:?}").contains(k.as_str()));
    }

    proptest! {
        #[test]
        fn constant_time_eq_agrees_with_eq(a in proptest::collection::vec(any::<u8>(), 0..20),
                                           b in proptest::collection::vec(any::<u8>(), 0..20)) {
            prop_assert_eq!(constant_time_eq(&a, &b), a == b);
        }
    }
}
