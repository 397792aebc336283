//! `PUT /v1/divisions/{division_id}` (sync) and `GET /v1/divisions` (managers).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use portal_core::domain::{Division, DivisionId, DivisionInput, Email};
use portal_core::usecases;

use super::auth::{perm, Authorized};
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;

/// The body of `PUT /v1/divisions/{division_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DivisionBody {
    pub name: String,
    pub email_from: String,
}

/// Parses a path parameter into an id, as a 422 naming the parameter when it is not one.
pub(crate) fn path_id<T>(
    param: &'static str,
    path: Result<Path<String>, PathRejection>,
    parse: impl FnOnce(String) -> Result<T, portal_core::domain::DomainError>,
) -> Result<T, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::BadRequest(format!("{param}: {e}")))?;
    parse(raw).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Creates or updates a division's name and sender address.
pub async fn put(
    caller: Authorized<perm::SyncWrite>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<DivisionBody>,
) -> Result<Json<Division>, ApiError> {
    let id = path_id("division_id", path, DivisionId::parse)?;
    let email_from = Email::parse(&body.email_from)
        .map_err(|e| ApiError::Unprocessable(format!("email_from: {e}")))?;
    let input = DivisionInput::new(id, body.name, email_from)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?
        .synced_at(state.clock.now());
    let division =
        usecases::sync::put_division(state.store.as_ref(), &caller.tenant, input).await?;
    Ok(Json(division))
}

/// Every division of the caller's tenant, ordered by id.
pub async fn list(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Division>>, ApiError> {
    let divisions = state
        .store
        .list_divisions(&caller.tenant)
        .await
        .map_err(usecases::UseCaseError::from)?;
    Ok(Json(divisions))
}
