//! Bearer JWT verification, the same code locally (HS256) and in Lambda (RS256 / JWKS).
//!
//! INTERFACE PINNED FOR PARALLEL WORK — the bodies are being written.

use serde::{Deserialize, Serialize};

/// The claims this API reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    pub permissions: Vec<String>,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("{0}")]
    Invalid(String),
}

/// Verifies bearer tokens.
pub struct Verifier {
    _private: (),
}

impl Verifier {
    /// Local mode: HMAC-SHA256 with a shared secret.
    pub fn hs256(_secret: &[u8]) -> Self {
        Self { _private: () }
    }
}

/// Signs an HS256 token the local server accepts (the `token` command).
pub fn issue_hs256(_secret: &[u8], _claims: &Claims) -> Result<String, AuthConfigError> {
    Err(AuthConfigError::Invalid("not yet written".into()))
}
