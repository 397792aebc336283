//! The base URL every link we send or show is built on (`[PortalLink]`, `[UnsubscribeLink]`,
//! the resident pages): one type, one rule, whether it comes from `PUBLIC_URL` on Lambda or
//! `--public-url` on the local server.

use std::fmt;

use super::DomainError;

/// `http(s)://host[:port][/path]`, without query, fragment, whitespace or a trailing `/`
/// (trailing slashes are dropped on parse), so `{url}/register?token=…` is always well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

const EXPECTED: &str = "an http:// or https:// URL with a host and no query, fragment or spaces";

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::InvalidField {
            field: "public URL",
            reason: format!(
                "{:?} is not {EXPECTED}",
                raw.chars().take(120).collect::<String>()
            ),
        };
        let url = raw.trim().trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty()
            || url.contains(['?', '#', '<', '>', '"'])
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        Ok(PublicUrl(url.to_owned()))
    }

    /// `http://127.0.0.1:{port}`: the local server's own address.
    pub fn local(port: u16) -> Self {
        PublicUrl(format!("http://127.0.0.1:{port}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether links built on it are `https://` (required on AWS: they carry tokens).
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// `{self}{path}`: `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PublicUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_http_url_is_kept_without_its_trailing_slashes() {
        let u = PublicUrl::parse(" http://localhost:3000/portal// ").unwrap();
        assert_eq!(u.as_str(), "http://localhost:3000/portal");
        assert_eq!(u.join("/register"), "http://localhost:3000/portal/register");
        assert_eq!(
            PublicUrl::parse("https://invite.example.org/")
                .unwrap()
                .as_str(),
            "https://invite.example.org"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "invite.example.org",
            "ftp://invite.example.org",
            "https://",
            "https:///path",
            "https://invite.example.org/?x=1",
            "https://invite.example.org/#top",
            "https://invite example.org",
            "https://invite.example.org/<script>",
            "",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
