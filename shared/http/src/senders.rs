//! The tenant's sender settings (see [`SenderSettings`]).
//!
//! - `GET /v1/settings/senders` (`invitations:read`): the allowed domains and addresses, or
//!   empty lists (`updated_at: null`) when none are saved yet. Readable by whoever can send,
//!   so a send form can offer only allowed senders.
//! - `PUT /v1/settings/senders` (`settings:manage`): replaces them. At least one domain or
//!   address; a domain allows every address at it (exactly that domain), an address only
//!   itself. `display_name` (optional) is the name inboxes show next to the address:
//!   absent, `null` or blank, the recipient's division's name; else a text of at most 100
//!   characters in which `[DivisionName]` stands for it (`[DivisionName] via Acme`). A 422
//!   names the field at fault.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use portal_core::domain::{DisplayName, Email, SenderSettings};
use portal_core::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;

/// The body of `PUT /v1/settings/senders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendersBody {
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// What both routes answer.
#[derive(Debug, Serialize)]
pub struct SendersView {
    pub domains: Vec<String>,
    pub addresses: Vec<Email>,
    /// `null`: each email shows its division's name.
    pub display_name: Option<DisplayName>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    pub updated_by: Option<String>,
}

impl From<Option<SenderSettings>> for SendersView {
    fn from(s: Option<SenderSettings>) -> Self {
        match s {
            Some(s) => Self {
                domains: s.domains,
                addresses: s.addresses,
                display_name: s.display_name,
                updated_at: Some(s.updated_at),
                updated_by: Some(s.updated_by),
            },
            None => Self {
                domains: Vec::new(),
                addresses: Vec::new(),
                display_name: None,
                updated_at: None,
                updated_by: None,
            },
        }
    }
}

fn store_error(e: portal_core::ports::StoreError) -> ApiError {
    UseCaseError::from(e).into()
}

pub async fn get(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
) -> Result<Json<SendersView>, ApiError> {
    let settings = state
        .store
        .get_sender_settings(&caller.tenant)
        .await
        .map_err(store_error)?;
    Ok(Json(settings.into()))
}

pub async fn put(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendersBody>,
) -> Result<Json<SendersView>, ApiError> {
    let settings = SenderSettings::new(
        &body.domains,
        &body.addresses,
        state.clock.now(),
        &caller.sub,
    )
    .and_then(|s| s.with_display_name(body.display_name.as_deref()))
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    state
        .store
        .put_sender_settings(&caller.tenant, &settings)
        .await
        .map_err(store_error)?;
    tracing::info!(tenant = %caller.tenant, domains = settings.domains.len(),
        addresses = settings.addresses.len(), "sender settings saved");
    Ok(Json(Some(settings).into()))
}
