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

/// A JSON body a route does not require: no body at all (empty, without `Content-Type`)
/// reads as `T::default()`; anything else is read as [`ApiJson`] reads it.
#[derive(Debug, Clone)]
pub struct OptionalApiJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = req.headers().contains_key(header::CONTENT_TYPE);
        if declared {
            require_json(req.headers())?;
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, &super::describe_limit(super::DEFAULT_BODY_LIMIT)))?;
        if !declared {
            if bytes.is_empty() {
                return Ok(OptionalApiJson(T::default()));
            }
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalApiJson)
            .map_err(|e| json_error(None, &e))
    }
}

/// The integer fields of JSON bodies, read as JSON Schema reads `type: integer`: any JSON
/// number with no fractional part, so `114.0` is 114 (serde's integers refuse it). `null`,
/// a fraction, a string or a value out of the field's range is refused as serde would
/// (a 422 through [`json_error`]). Use `#[serde(deserialize_with = "integer::exact")]`, or
/// `#[serde(default, deserialize_with = "integer::optional")]` for a field that may be
/// absent (absent is `None`; `null` is refused like any other non-number).
pub mod integer {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserializer, Unexpected, Visitor};

    /// The integer of the field's type.
    pub fn exact<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64> + TryFrom<u64>,
    {
        d.deserialize_any(Integral(PhantomData))
    }

    /// An optional integer: present means a number (see [`exact`]).
    pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64> + TryFrom<u64>,
    {
        exact(d).map(Some)
    }

    struct Integral<T>(PhantomData<T>);

    impl<T> Integral<T>
    where
        T: TryFrom<i64> + TryFrom<u64>,
    {
        fn range<E: de::Error>(&self, unexpected: Unexpected<'_>) -> E {
            E::invalid_value(
                unexpected,
                &format!("an integer that fits {}", short_name::<T>()).as_str(),
            )
        }
    }

    fn short_name<T>() -> &'static str {
        let name = std::any::type_name::<T>();
        name.rsplit("::").next().unwrap_or(name)
    }

    impl<T> Visitor<'_> for Integral<T>
    where
        T: TryFrom<i64> + TryFrom<u64>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| self.range(Unexpected::Unsigned(v)))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            T::try_from(v).map_err(|_| self.range(Unexpected::Signed(v)))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            // 2^63 and 2^64 are exact in f64; every integral f64 below them converts exactly.
            const TWO_63: f64 = 9_223_372_036_854_775_808.0;
            const TWO_64: f64 = 18_446_744_073_709_551_616.0;
            if !v.is_finite() || v.fract() != 0.0 {
                return Err(E::invalid_type(Unexpected::Float(v), &self));
            }
            if (0.0..TWO_64).contains(&v) {
                self.visit_u64(v as u64)
            } else if (-TWO_63..0.0).contains(&v) {
                self.visit_i64(v as i64)
            } else {
                Err(self.range(Unexpected::Float(v)))
            }
        }
    }
}
