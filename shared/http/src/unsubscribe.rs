//! `GET` and `POST /v1/unsubscribe?token=…`: the public one-click unsubscribe endpoint every
//! email's `List-Unsubscribe` header points at (RFC 8058). No bearer token: the signed
//! unsubscribe token ([`portal_core::domain::unsubscribe`]) is the only authority, and it names
//! the tenant and the address, so it can never act on another tenant.
//!
//! - `GET` shows a small HTML page — the address partly masked and a button — and changes
//!   nothing: mail scanners and link previews fetch links, and must not unsubscribe anyone.
//! - `POST` unsubscribes: the address goes on the tenant's suppression list (reason
//!   `unsubscribed`), the invitation the link came with (`{campaign_id}:{contact_id}` in the
//!   token) becomes `unsubscribed`, and a small HTML confirmation is shown. It is idempotent.
//!   An invitation id that is empty, malformed or names no invitation of the tenant changes
//!   only the suppression list: the address is what the recipient asked to stop. RFC 8058 mail
//!   clients send `List-Unsubscribe=One-Click` as `application/x-www-form-urlencoded` (some
//!   as `multipart/form-data`); the page's own form sends the same field. The body is not
//!   required: the signed token alone proves the link came from an email we sent.
//! - A missing, malformed, forged or tampered token is a **400 problem+json** on both
//!   methods (the API's one error format; the router's safety net would turn any other 4xx
//!   body into one anyway).
//!
//! Pages come from [`super::pages`]: `Cache-Control: no-store`, `Referrer-Policy: no-referrer`
//! (the token is in the URL), a Content-Security-Policy that allows no script.
//!
//! The signer comes from [`super::AppState::unsubscribe`]; a server started without one
//! answers 500 (a configuration error, logged).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;

use super::pages::escape;
use super::{ApiError, AppState};
use portal_core::domain::unsubscribe::{mask_email, UnsubscribeClaim};
use portal_core::domain::{CampaignId, ContactId, InvitationFact};
use portal_core::ports::{FactResult, SuppressionReason};

/// `GET /v1/unsubscribe?token=…`: the confirmation page; changes nothing.
pub async fn show(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (token, claim) = verified(&state, query)?;
    let masked = escape(&mask_email(&claim.email));
    let body = format!(
        "<h1>Unsubscribe</h1>\n\
         <p>Stop invitation emails to <strong>{masked}</strong>?</p>\n\
         <form method=\"post\" action=\"?token={token}\">\n\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n\
         <button type=\"submit\">Unsubscribe</button>\n\
         </form>\n",
        token = escape(&token),
    );
    Ok(page("Unsubscribe", &body))
}

/// `POST /v1/unsubscribe?token=…`: puts the address on the tenant's suppression list.
pub async fn unsubscribe(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, claim) = verified(&state, query)?;
    let now = state.clock.now();
    state
        .store
        .suppress(
            &claim.tenant,
            &claim.email,
            SuppressionReason::Unsubscribed,
            now,
        )
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let marked = match invitation_key(&claim.invitation_id) {
        Some((campaign, contact)) => state
            .store
            .apply_facts(
                &claim.tenant,
                &campaign,
                &[(contact, InvitationFact::Unsubscribed)],
            )
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .first()
            .is_some_and(|r| !matches!(r, FactResult::Missing)),
        None => false,
    };
    tracing::info!(tenant = %claim.tenant, invitation = %claim.invitation_id, marked, "unsubscribed");
    let masked = escape(&mask_email(&claim.email));
    let body = format!(
        "<h1>You are unsubscribed</h1>\n\
         <p><strong>{masked}</strong> will not receive invitation emails from this sender again.</p>\n"
    );
    Ok(page("Unsubscribed", &body))
}

/// Splits an invitation id `{campaign_id}:{contact_id}` (a campaign id has no `:`, a
/// contact id may). `None` when it is not one.
fn invitation_key(id: &str) -> Option<(CampaignId, ContactId)> {
    let (campaign, contact) = id.split_once(':')?;
    Some((
        CampaignId::parse(campaign).ok()?,
        ContactId::parse(contact).ok()?,
    ))
}

fn verified(
    state: &AppState,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(String, UnsubscribeClaim), ApiError> {
    let token = query
        .ok()
        .and_then(|Query(mut q)| q.remove("token"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the query parameter token is required".into()))?;
    let signer = state.unsubscribe.as_ref().ok_or_else(|| {
        ApiError::Internal("no unsubscribe secret is configured (UNSUBSCRIBE_SECRET)".into())
    })?;
    let claim = signer
        .verify(&token)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((token, claim))
}

fn page(title: &str, body: &str) -> Response {
    super::pages::page(axum::http::StatusCode::OK, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_ids_split_at_the_first_colon_and_anything_else_is_ignored() {
        let campaign = "0123456789abcdef0123456789abcdef";
        let (c, k) = invitation_key(&format!("{campaign}:c-1:x")).unwrap();
        assert_eq!((c.as_str(), k.as_str()), (campaign, "c-1:x"));
        for bad in [
            "",
            "inv-1",
            "c-1",
            &format!("{campaign}:"),
            "nothex:c-1",
            &format!("{campaign}:a#b"),
        ] {
            assert!(invitation_key(bad).is_none(), "{bad:?}");
        }
    }
}
