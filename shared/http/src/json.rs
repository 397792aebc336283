//! Reading request bodies so that every rejection is a problem+json [`ApiError`].
//!
//! axum's own `Json` answers bad input in plain text; [`ApiJson`] reads the body once as
//! [`Bytes`] (under the route's `DefaultBodyLimit`) and classifies what can go wrong:
//! wrong media type → 415, too large → 413, not well-formed JSON → 400, well-formed JSON of
//! the wrong shape (unknown field, wrong type, missing field) → 422, with serde's message
//! (which names the field and the line/column) as the detail.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The media type of a request body, lowercased, without parameters (`charset=...`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = raw.split(';').next().unwrap_or(raw).trim();
    Some(essence.to_ascii_lowercase())
}

/// `application/json` or any `application/*+json`.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Turns a failed body read into 413 (over the limit) or 400.
pub fn body_rejection(rejection: BytesRejection, limit_description: &str) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit_description: limit_description.to_owned(),
        }
    } else {
        ApiError::BadRequest(format!("could not read the request body: {rejection}"))
    }
}

/// Classifies a serde_json error: not JSON at all (400) or JSON of the wrong shape (422).
pub fn json_error(context: Option<&str>, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let prefix = context.map(|c| format!("{c}: ")).unwrap_or_default();
    match e.classify() {
        Category::Syntax | Category::Eof => {
            ApiError::BadRequest(format!("{prefix}malformed JSON: {e}"))
        }
        Category::Data => ApiError::Unprocessable(format!("{prefix}{e}")),
        Category::Io => ApiError::BadRequest(format!("{prefix}{e}")),
    }
}

/// Checks that a body is declared as JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(m) if is_json(&m) => Ok(()),
        Some(m) => Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type: application/json, got {m}"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        )),
    }
}

/// A JSON body; rejections are problem+json.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, &super::describe_limit(super::DEFAULT_BODY_LIMIT)))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| json_error(None, &e))
    }
}
