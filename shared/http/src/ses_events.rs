//! `POST /v1/ses-events`: the SES event webhook SNS posts to. Public — no bearer token: a
//! message is believed only when its SNS signature verifies (see
//! [`portal_core::usecases::webhook`]).
//!
//! Answers: 200 with what happened (`applied`, `ignored`, `confirmed`, `unsubscribed`);
//! 400 for a body that is not an SNS message; 403 for anything not genuine (bad signature,
//! a topic not on the allow-list, a certificate URL off SNS's hosts, unsigned without valid
//! raw-delivery credentials) — SNS does not retry a 4xx; 503 when the certificate could not
//! be fetched and 500 when the store failed, both of which SNS retries.
//!
//! SNS posts with `Content-Type: text/plain`, so the body is read as bytes whatever the
//! media type.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use portal_core::ports::WebhookOutcome;

use super::error::ApiError;
use super::AppState;

/// Largest body accepted: an SNS message is at most 256 KiB, plus its envelope.
pub const SES_EVENTS_BODY_LIMIT: usize = 512 * 1024;

/// The HTTP Basic password of the request, if it carries one.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    decoded.split_once(':').map(|(_, p)| p.to_owned())
}

/// `POST /v1/ses-events`.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookOutcome>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the body is empty: expected an SNS message".into(),
        ));
    }
    let webhook = state.ses_webhook.as_deref().ok_or_else(|| {
        ApiError::Internal("the SES event webhook is not configured on this server".into())
    })?;
    let password = basic_password(&headers);
    let result = webhook
        .receive(
            state.store.as_ref(),
            &body,
            password.as_deref(),
            state.clock.now(),
        )
        .await;
    result.map(Json).map_err(|refusal| {
        tracing::warn!(error = %refusal, "SES event refused");
        ApiError::from(refusal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_basic_password_is_read_and_other_schemes_are_not() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_password(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "Basic {}",
                STANDARD.encode("sns:s3cret:with:colons")
            ))
            .unwrap(),
        );
        assert_eq!(basic_password(&h).as_deref(), Some("s3cret:with:colons"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(basic_password(&h), None);
    }
}
