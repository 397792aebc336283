//! `portal-invites token`: signs a bearer token the local server accepts.
//!
//! The token carries exactly the claims the API reads (`sub`, `tenant_id`, `permissions`,
//! `exp`) and is signed with the data dir's secret (see [`crate::secret`]). Tenant and
//! permission names are checked here so a typo fails now, with the list of valid names,
//! instead of as a puzzling 403 later.

use std::path::Path;

use portal_core::domain::{DomainError, TenantId};
use portal_http::auth::{issue_hs256, AuthConfigError, Claims, Permission};
use time::OffsetDateTime;

use crate::secret::{Secret, SecretError};

/// Every permission the API knows, comma-separated, for error messages.
fn known_permissions() -> String {
    Permission::ALL.map(Permission::as_str).join(", ")
}

/// Subject used when `--sub` is not given.
pub const DEFAULT_SUB: &str = "local-operator";

/// Lifetime used when `--ttl-hours` is not given.
pub const DEFAULT_TTL_HOURS: u32 = 12;

/// Longest lifetime accepted: a year.
pub const MAX_TTL_HOURS: u32 = 24 * 366;

/// What to put in a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub tenant: TenantId,
    pub permissions: Vec<String>,
    pub sub: String,
    pub ttl_hours: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid --tenant")]
    Tenant(#[source] DomainError),
    #[error(
        "unknown permission {0:?}; known permissions are: {known}",
        known = known_permissions()
    )]
    UnknownPermission(String),
    #[error("--permissions must name at least one of: {known}", known = known_permissions())]
    NoPermissions,
    #[error("--sub must be 1 to 200 characters without control characters")]
    Sub,
    #[error("--ttl-hours must be between 1 and {MAX_TTL_HOURS}")]
    Ttl,
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot sign the token")]
    Sign(#[source] AuthConfigError),
}

impl TokenRequest {
    /// Checks a request as typed on the command line: `permissions` is the comma-separated
    /// list (spaces around names are ignored, duplicates dropped).
    pub fn parse(
        tenant: &str,
        permissions: &str,
        sub: Option<&str>,
        ttl_hours: Option<u32>,
    ) -> Result<Self, TokenError> {
        let tenant = TenantId::parse(tenant.trim()).map_err(TokenError::Tenant)?;
        let mut perms: Vec<String> = Vec::new();
        for p in permissions
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if Permission::parse(p).is_none() {
                return Err(TokenError::UnknownPermission(p.to_owned()));
            }
            if !perms.iter().any(|q| q == p) {
                perms.push(p.to_owned());
            }
        }
        if perms.is_empty() {
            return Err(TokenError::NoPermissions);
        }
        let sub = sub.unwrap_or(DEFAULT_SUB).trim().to_owned();
        if sub.is_empty() || sub.chars().count() > 200 || sub.chars().any(char::is_control) {
            return Err(TokenError::Sub);
        }
        let ttl_hours = ttl_hours.unwrap_or(DEFAULT_TTL_HOURS);
        if ttl_hours == 0 || ttl_hours > MAX_TTL_HOURS {
            return Err(TokenError::Ttl);
        }
        Ok(Self {
            tenant,
            permissions: perms,
            sub,
            ttl_hours,
        })
    }

    /// The claims of this request, expiring `ttl_hours` after `now`.
    pub fn claims(&self, now: OffsetDateTime) -> Claims {
        Claims {
            sub: self.sub.clone(),
            tenant_id: self.tenant.to_string(),
            permissions: self.permissions.clone(),
            exp: now.unix_timestamp() + i64::from(self.ttl_hours) * 3600,
        }
    }
}

/// Signs a token with a given secret.
pub fn sign(
    secret: &Secret,
    req: &TokenRequest,
    now: OffsetDateTime,
) -> Result<String, TokenError> {
    issue_hs256(secret.as_bytes(), &req.claims(now)).map_err(TokenError::Sign)
}

/// Signs a token with the secret the local server of `data_dir` uses (the `token` command).
pub fn issue(data_dir: &Path, req: &TokenRequest) -> Result<String, TokenError> {
    let secret = Secret::resolve(data_dir)?;
    sign(&secret, req, OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_trimmed_and_deduplicated() {
        let r = TokenRequest::parse(
            "demo",
            " sync:write, invitations:read,sync:write",
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.permissions, ["sync:write", "invitations:read"]);
        assert_eq!(r.sub, DEFAULT_SUB);
        assert_eq!(r.ttl_hours, DEFAULT_TTL_HOURS);
    }

    #[test]
    fn a_misspelt_permission_is_named_with_the_valid_ones() {
        let err = TokenRequest::parse("demo", "invitation:read", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"invitation:read\""), "{err}");
        assert!(err.contains("invitations:read, invitations:send"), "{err}");
    }

    #[test]
    fn an_empty_permission_list_is_refused() {
        assert!(matches!(
            TokenRequest::parse("demo", " , ", None, None),
            Err(TokenError::NoPermissions)
        ));
    }

    #[test]
    fn a_tenant_outside_the_id_alphabet_is_refused() {
        let err = TokenRequest::parse("acme corp", "sync:write", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tenant"), "{err}");
    }

    #[test]
    fn ttl_must_be_positive_and_bounded() {
        assert!(TokenRequest::parse("demo", "sync:write", None, Some(0)).is_err());
        assert!(TokenRequest::parse("demo", "sync:write", None, Some(MAX_TTL_HOURS + 1)).is_err());
    }

    #[test]
    fn claims_expire_ttl_hours_after_now() {
        let r = TokenRequest::parse("demo", "sync:write", Some("ops"), Some(2)).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let c = r.claims(now);
        assert_eq!(c.exp, 1_800_000_000 + 7200);
        assert_eq!(c.tenant_id, "demo");
        assert_eq!(c.sub, "ops");
    }
}
