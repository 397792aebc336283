//! Bearer JWT verification: the same code locally (HS256, a shared secret) and in Lambda
//! (RS256 keys from the identity provider's JWKS, picked by `kid`).
//!
//! # Layout
//!
//! - [`Verifier`] checks a token's signature, algorithm, and — when configured (always on
//!   Lambda: [`Verifier::from_lookup`] refuses to start without them) — issuer and audience,
//!   then the expiry and any `nbf` against the app's [`Clock`](portal_core::ports::Clock) (so
//!   tests with a fixed clock are deterministic), and yields [`Claims`]. From a JWKS it keeps
//!   only RSA keys meant for RS256 signatures: `use` absent or `sig`, `alg` absent or `RS256`,
//!   `key_ops` absent or naming `verify`.
//! - [`Authorized<P>`] is the extractor handlers take: it verifies the `Authorization`
//!   header (401) and checks the permission named by the marker type `P` (403) *before* the
//!   body is read, so an unauthenticated caller never gets to make us parse 64 MiB.
//! - The tenant comes only from the token ([`Authorized::tenant`]); no body or path can
//!   name another one.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use portal_core::domain::Permission;
use portal_core::domain::TenantId;

use super::error::ApiError;
use super::AppState;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const EXP_LEEWAY_SECS: i64 = 60;

/// Shortest HS256 secret accepted from the environment.
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// The claims this API reads. Other claims (`iss`, `aud`, `iat`...) may be present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    pub permissions: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// A bad auth configuration, or a token that could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// No variable says how to verify tokens.
    #[error("missing environment variable {var}: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    /// A variable is set to something unusable.
    #[error("invalid {var}: {reason}")]
    InvalidVar { var: &'static str, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Why a token was refused. Shown to the client (as a 401 detail): none of it is secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the bearer token was signed by a key this API does not know")]
    UnknownKey,
    #[error("the bearer token is invalid: {0}")]
    Invalid(String),
}

enum Keys {
    /// One shared secret.
    Hs256(DecodingKey),
    /// RS256 public keys by `kid`.
    Jwks(HashMap<String, DecodingKey>),
}

/// Verifies bearer tokens.
pub struct Verifier {
    keys: Keys,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.keys {
            Keys::Hs256(_) => "hs256".to_owned(),
            Keys::Jwks(k) => format!("jwks({} keys)", k.len()),
        };
        f.debug_struct("Verifier").field("mode", &mode).finish()
    }
}

fn base_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    // Expiry is checked against the app's clock in `verify`; the library would use the
    // system clock, which makes fixed-clock tests flaky.
    v.validate_exp = false;
    v.set_required_spec_claims(&["exp"]);
    // Only enforced when configured (see `with_issuer` / `with_audience`).
    v.validate_aud = false;
    v
}

impl Verifier {
    /// Local mode: HMAC-SHA256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            keys: Keys::Hs256(DecodingKey::from_secret(secret)),
            validation: base_validation(Algorithm::HS256),
        }
    }

    /// Accepts no token at all: for a server of public routes only (the SES events
    /// function), where a protected route must answer 401 whatever it is sent.
    pub fn deny_all() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::hs256(&secret)
    }

    /// AWS mode: RS256 keys from a JWKS document (`{"keys": [...]}`); a token names its key
    /// with `kid`. Keys that are not RSA keys for RS256 signatures are skipped (see
    /// [`is_rs256_signing_key`]).
    pub fn rs256_jwks(jwks_json: &str) -> Result<Self, AuthConfigError> {
        let set: JwkSet =
            serde_json::from_str(jwks_json).map_err(|e| AuthConfigError::InvalidVar {
                var: "JWT_JWKS",
                reason: format!("not a JWKS document: {e}"),
            })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if !is_rs256_signing_key(jwk) {
                tracing::info!(%kid, "JWKS key skipped: not an RSA key for RS256 signatures");
                continue;
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthConfigError::InvalidVar {
                var: "JWT_JWKS",
                reason: format!("key {kid}: {e}"),
            })?;
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(AuthConfigError::InvalidVar {
                var: "JWT_JWKS",
                reason: "no RSA signing key (use sig, alg RS256) with a `kid`".into(),
            });
        }
        Ok(Self {
            keys: Keys::Jwks(keys),
            validation: base_validation(Algorithm::RS256),
        })
    }

    /// Requires `iss` to be this issuer.
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation.required_spec_claims.insert("iss".into());
        self
    }

    /// Requires `aud` to contain this audience.
    pub fn with_audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation.required_spec_claims.insert("aud".into());
        self
    }

    /// Lambda mode, configured by environment; see [`Verifier::from_lookup`].
    pub fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads `JWT_ALG` (`HS256` or `RS256`; inferred from which of the next two is set),
    /// `JWT_HS256_SECRET` (at least 32 bytes) or `JWT_JWKS` (a JWKS JSON document), and
    /// `JWT_ISSUER` and `JWT_AUDIENCE`, both required and enforced (a token checked against no
    /// issuer or audience would be any token the keys ever signed, for any application). Fails
    /// naming the variable that is missing, blank or bad.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let alg = match get("JWT_ALG") {
            Some(a) => a.to_ascii_uppercase(),
            None if get("JWT_JWKS").is_some() => "RS256".to_owned(),
            None if get("JWT_HS256_SECRET").is_some() => "HS256".to_owned(),
            None => {
                return Err(AuthConfigError::Missing {
                    var: "JWT_JWKS",
                    hint: "set JWT_JWKS (RS256) or JWT_HS256_SECRET (HS256)",
                })
            }
        };
        let verifier = match alg.as_str() {
            "HS256" => {
                let secret = get("JWT_HS256_SECRET").ok_or(AuthConfigError::Missing {
                    var: "JWT_HS256_SECRET",
                    hint: "JWT_ALG is HS256",
                })?;
                if secret.len() < MIN_HS256_SECRET_LEN {
                    return Err(AuthConfigError::InvalidVar {
                        var: "JWT_HS256_SECRET",
                        reason: format!("must be at least {MIN_HS256_SECRET_LEN} bytes"),
                    });
                }
                Self::hs256(secret.as_bytes())
            }
            "RS256" => {
                let jwks = get("JWT_JWKS").ok_or(AuthConfigError::Missing {
                    var: "JWT_JWKS",
                    hint: "JWT_ALG is RS256",
                })?;
                Self::rs256_jwks(&jwks)?
            }
            other => {
                return Err(AuthConfigError::InvalidVar {
                    var: "JWT_ALG",
                    reason: format!("{other:?} is not HS256 or RS256"),
                })
            }
        };
        let issuer = get("JWT_ISSUER").ok_or(AuthConfigError::Missing {
            var: "JWT_ISSUER",
            hint: "the issuer (`iss`) every manager token must carry; it may not be empty",
        })?;
        let audience = get("JWT_AUDIENCE").ok_or(AuthConfigError::Missing {
            var: "JWT_AUDIENCE",
            hint: "the audience (`aud`) every manager token must carry; it may not be empty",
        })?;
        Ok(verifier.with_issuer(&issuer).with_audience(&audience))
    }

    /// Verifies a token (without the `Bearer ` prefix) at `now`.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let key = match &self.keys {
            Keys::Hs256(k) => k,
            Keys::Jwks(keys) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|e| TokenError::Invalid(e.to_string()))?;
                let kid = header
                    .kid
                    .ok_or_else(|| TokenError::Invalid("the token header has no `kid`".into()))?;
                keys.get(&kid).ok_or(TokenError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Checked>(token, key, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => {
                    TokenError::Invalid("the signature does not verify".into())
                }
                ErrorKind::InvalidAlgorithm => {
                    TokenError::Invalid("the token uses a different algorithm".into())
                }
                _ => TokenError::Invalid(e.to_string()),
            }
        })?;
        let Checked { claims, nbf } = data.claims;
        if claims.exp.saturating_add(EXP_LEEWAY_SECS) <= now.unix_timestamp() {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf.saturating_sub(EXP_LEEWAY_SECS) > now.unix_timestamp()) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// What [`Verifier::verify`] decodes: the claims it yields and those it only checks.
#[derive(Deserialize)]
struct Checked {
    #[serde(flatten)]
    claims: Claims,
    /// Not before, seconds since the Unix epoch.
    #[serde(default)]
    nbf: Option<i64>,
}

/// Whether a JWKS key may verify our RS256 tokens: an RSA key whose `use` (if any) is `sig`,
/// whose `alg` (if any) is `RS256`, and whose `key_ops` (if any) include `verify` (RFC 7517
/// §4.2–4.4). A provider's encryption key, or a key published for another algorithm, is not
/// a key to accept signatures from.
pub fn is_rs256_signing_key(jwk: &jsonwebtoken::jwk::Jwk) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm, KeyOperations, PublicKeyUse};
    let common = &jwk.common;
    matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
        && matches!(common.public_key_use, None | Some(PublicKeyUse::Signature))
        && matches!(common.key_algorithm, None | Some(KeyAlgorithm::RS256))
        && common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify))
}

/// Signs an HS256 token the local server accepts (the `token` command).
pub fn issue_hs256(secret: &[u8], claims: &Claims) -> Result<String, AuthConfigError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthConfigError::Invalid(format!("cannot sign token: {e}")))
}

/// Marker types naming the permission a route requires, for [`Authorized`].
pub mod perm {
    use super::Permission;

    /// A permission a handler can demand in its signature.
    pub trait Required: Send + Sync + 'static {
        const PERMISSION: Permission;
    }

    macro_rules! marker {
        ($name:ident, $p:ident) => {
            #[derive(Debug)]
            pub struct $name;
            impl Required for $name {
                const PERMISSION: Permission = Permission::$p;
            }
        };
    }

    marker!(InvitationsRead, InvitationsRead);
    marker!(InvitationsSend, InvitationsSend);
    marker!(RegistrationsManage, RegistrationsManage);
    marker!(SettingsManage, SettingsManage);
    marker!(SyncWrite, SyncWrite);
}

/// A verified caller holding permission `P`: the extractor every protected handler takes.
#[derive(Debug)]
pub struct Authorized<P> {
    pub tenant: TenantId,
    pub sub: String,
    _permission: PhantomData<P>,
}

impl<P> Authorized<P> {
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
}

/// Verifies the request's bearer token into a tenant and the caller's permissions.
pub fn authenticate(
    parts: &Parts,
    state: &AppState,
) -> Result<(TenantId, String, Vec<String>), ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized(TokenError::Missing.to_string()))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized(TokenError::NotBearer.to_string()))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(ApiError::Unauthorized(TokenError::NotBearer.to_string())),
    };
    let claims = state
        .auth
        .verify(token, state.clock.now())
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let tenant = TenantId::parse(claims.tenant_id).map_err(|e| {
        ApiError::Unauthorized(TokenError::Invalid(format!("tenant_id: {e}")).to_string())
    })?;
    Ok((tenant, claims.sub, claims.permissions))
}

impl<P: perm::Required> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, sub, permissions) = authenticate(parts, state)?;
        if !permissions.iter().any(|p| p == P::PERMISSION.as_str()) {
            tracing::info!(%tenant, %sub, permission = P::PERMISSION.as_str(), "permission denied");
            return Err(ApiError::Forbidden(P::PERMISSION));
        }
        Ok(Self {
            tenant,
            sub,
            _permission: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            tenant_id: "t1".into(),
            permissions: vec!["invitations:read".into()],
            exp,
        }
    }

    #[test]
    fn a_token_issued_locally_verifies_until_it_expires() {
        let now = datetime!(2026-11-01 10:00:00 UTC);
        let exp = now.unix_timestamp() + 3600;
        let token = issue_hs256(SECRET, &claims(exp)).unwrap();
        let v = Verifier::hs256(SECRET);
        assert_eq!(v.verify(&token, now).unwrap().tenant_id, "t1");
        let later = now + time::Duration::seconds(3600 + EXP_LEEWAY_SECS);
        assert_eq!(v.verify(&token, later).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let now = datetime!(2026-11-01 10:00:00 UTC);
        let token = issue_hs256(b"another-secret-another-secret-xx", &claims(i64::MAX / 2));
        let err = Verifier::hs256(SECRET)
            .verify(&token.unwrap(), now)
            .unwrap_err();
        assert!(matches!(err, TokenError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn configuration_from_the_environment_names_what_is_missing() {
        let none = |_: &str| None::<String>;
        let err = Verifier::from_lookup(none).unwrap_err().to_string();
        assert!(
            err.contains("JWT_JWKS") && err.contains("JWT_HS256_SECRET"),
            "{err}"
        );

        let short = |k: &str| (k == "JWT_HS256_SECRET").then(|| "short".to_owned());
        let err = Verifier::from_lookup(short).unwrap_err().to_string();
        assert!(err.contains("JWT_HS256_SECRET"), "{err}");

        let rs_without_jwks = |k: &str| match k {
            "JWT_ALG" => Some("RS256".to_owned()),
            "JWT_ISSUER" => Some("https://issuer.example.com".to_owned()),
            "JWT_AUDIENCE" => Some("portal-invites".to_owned()),
            _ => None,
        };
        let err = Verifier::from_lookup(rs_without_jwks)
            .unwrap_err()
            .to_string();
        assert!(err.contains("JWT_JWKS"), "{err}");
    }

    #[test]
    fn a_blank_or_missing_issuer_or_audience_stops_the_start() {
        let secret = String::from_utf8(SECRET.to_vec()).unwrap();
        for (issuer, audience, named) in [
            (None, Some("app"), "JWT_ISSUER"),
            (Some(""), Some("app"), "JWT_ISSUER"),
            (Some("  "), Some("app"), "JWT_ISSUER"),
            (Some("https://issuer.example.com"), None, "JWT_AUDIENCE"),
            (Some("https://issuer.example.com"), Some(""), "JWT_AUDIENCE"),
        ] {
            let env = |k: &str| match k {
                "JWT_HS256_SECRET" => Some(secret.clone()),
                "JWT_ISSUER" => issuer.map(str::to_owned),
                "JWT_AUDIENCE" => audience.map(str::to_owned),
                _ => None,
            };
            let err = Verifier::from_lookup(env).unwrap_err().to_string();
            assert!(err.contains(named), "{issuer:?} {audience:?}: {err}");
        }
    }

    #[test]
    fn a_token_is_refused_before_its_not_before_time() {
        #[derive(Serialize)]
        struct WithNbf {
            #[serde(flatten)]
            claims: Claims,
            nbf: i64,
        }
        let now = datetime!(2026-11-01 10:00:00 UTC);
        let t = now.unix_timestamp();
        let sign = |nbf: i64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &WithNbf {
                    claims: claims(t + 3600),
                    nbf,
                },
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap()
        };
        let v = Verifier::hs256(SECRET);
        assert_eq!(
            v.verify(&sign(t + 600), now).unwrap_err(),
            TokenError::NotYetValid
        );
        // Within the clock-skew leeway, or already past: accepted.
        assert!(v.verify(&sign(t + EXP_LEEWAY_SECS), now).is_ok());
        assert!(v.verify(&sign(t - 600), now).is_ok());
        assert!(v
            .verify(&sign(t + 600), now + time::Duration::seconds(600))
            .is_ok());
    }

    #[test]
    fn only_rsa_keys_for_rs256_signatures_are_taken_from_a_jwks() {
        let n = "qHai3iV-WEglssRCUXOl2IiIFryv7LTwaBvSPdUGePqfpsqiMu8Rq8jx9W-Ij0-c8a1hJwgQNWEfWTF0IbpP7Qmc-6Nae5exFzAyGdnzcDJ-0H8Pg7_i4hzMcRi4Zch4Qg_9ZcyUPo9E9hbpawLsBYrlpFofn2ahlrL_aObq0HDVyMghvciLVOhYH5zHtEnrCPZAPRYg3o3GnHmo_oudMJr1psaQsd97Kq9ltG4EnJrllQ51oQNrKaB0A6tI7--XjnIyuW2TV9OZGQ0R7LTePncB4grvja9VC3XKHjycHzYGQ7QGBOxp8iNMz-QfXMKbs9woE4wi1HpnC9fkLkl--Q";
        let key = |extra: serde_json::Value| {
            let mut k = serde_json::json!({"kty": "RSA", "kid": "k", "n": n, "e": "AQAB"});
            for (name, value) in extra.as_object().unwrap() {
                k[name] = value.clone();
            }
            serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k).unwrap()
        };
        for ok in [
            serde_json::json!({}),
            serde_json::json!({"use": "sig"}),
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"use": "sig", "alg": "RS256", "key_ops": ["verify"]}),
        ] {
            assert!(is_rs256_signing_key(&key(ok.clone())), "{ok}");
        }
        for bad in [
            serde_json::json!({"use": "enc"}),
            serde_json::json!({"use": "enc", "alg": "RSA-OAEP"}),
            serde_json::json!({"alg": "RS512"}),
            serde_json::json!({"alg": "PS256"}),
            serde_json::json!({"alg": "RSA-OAEP-256"}),
            serde_json::json!({"key_ops": ["encrypt"]}),
        ] {
            assert!(!is_rs256_signing_key(&key(bad.clone())), "{bad}");
        }
        let only_enc = serde_json::json!({"keys": [key(serde_json::json!({"use": "enc"}))]});
        let err = Verifier::rs256_jwks(&only_enc.to_string()).unwrap_err();
        assert!(err.to_string().contains("JWT_JWKS"), "{err}");
    }

    #[test]
    fn permissions_round_trip_through_their_names() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("admin"), None);
    }
}
