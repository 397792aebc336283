//! The password a resident chooses. It exists in clear only on its way from the request to
//! the identity adapter (Argon2id hash locally, Cognito on AWS): never logged (its `Debug`
//! is redacted), never stored, never echoed back into a page.
//!
//! Rules (NIST SP 800-63B): at least [`MIN_PASSWORD_CHARS`] characters, at most
//! [`MAX_PASSWORD_CHARS`]; not one of the common passwords shipped with the code
//! (`common_passwords.txt`), not one character repeated, and not the address it is for.

use std::fmt;

use super::Email;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 128;

const COMMON: &str = include_str!("common_passwords.txt");

/// Why a password is refused, in words a resident can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("this password is one of the most common passwords: choose another")]
    Common,
    #[error("the password must not be your email address")]
    IsEmail,
}

/// A password that passed the rules.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(raw: &str, email: &Email) -> Result<Self, PasswordError> {
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(PasswordError::TooLong);
        }
        let lower = raw.to_lowercase();
        if is_common(&lower) || one_repeated_char(raw) {
            return Err(PasswordError::Common);
        }
        if lower.trim() == email.normalized() {
            return Err(PasswordError::IsEmail);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The clear text, for the identity adapter only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn one_repeated_char(raw: &str) -> bool {
    let mut chars = raw.chars();
    let first = chars.next();
    chars.all(|c| Some(c) == first)
}

fn is_common(lower: &str) -> bool {
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == lower)
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("jane.doe@example.com").unwrap()
    }

    #[test]
    fn short_common_repeated_and_own_address_are_refused() {
        let e = email();
        assert_eq!(
            Password::new("short", &e).unwrap_err(),
            PasswordError::TooShort
        );
        assert_eq!(
            Password::new("elevenchars", &e).unwrap_err(),
            PasswordError::TooShort
        );
        assert_eq!(
            Password::new(&"x".repeat(129), &e).unwrap_err(),
            PasswordError::TooLong
        );
        for common in [
            "password1234",
            "Password1234",
            "QWERTY123456",
            "1qaz2wsx3edc",
        ] {
            assert_eq!(
                Password::new(common, &e).unwrap_err(),
                PasswordError::Common,
                "{common}"
            );
        }
        assert_eq!(
            Password::new("zzzzzzzzzzzzzz", &e).unwrap_err(),
            PasswordError::Common
        );
        assert_eq!(
            Password::new("Jane.Doe@example.com", &e).unwrap_err(),
            PasswordError::IsEmail
        );
    }

    #[test]
    fn a_decent_password_passes_and_never_shows_in_debug() {
        let p = Password::new("correct pony staple 42", &email()).unwrap();
        assert_eq!(p.expose(), "correct pony staple 42");
        assert!(!format!("{p:?}").contains("pony"));
        // Twelve characters counted as characters, not bytes.
        assert!(Password::new("ééééééééééé", &email()).is_err());
        assert!(Password::new("éééééééééééa", &email()).is_ok());
    }

    #[test]
    fn the_shipped_list_is_lowercase_and_long_enough_to_matter() {
        let entries: Vec<&str> = COMMON
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(entries.len() >= 100);
        for l in entries {
            assert_eq!(l, l.to_lowercase());
            assert!(
                l.chars().count() >= MIN_PASSWORD_CHARS,
                "{l} is short: never reachable"
            );
        }
    }
}
