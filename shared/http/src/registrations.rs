//! The staff side of registration (`registrations:manage`): portal keys and the sign-up
//! request queue.
//!
//! - `GET /v1/accounts/{account_id}/portal-key`: the account's key (for welcome letters).
//! - `POST /v1/accounts/{account_id}/portal-key`: a new key; the old one stops working.
//! - `GET /v1/registration-requests?status=&division_id=&cursor=&limit=`: newest first.
//! - `GET /v1/registration-requests/{request_id}`: the request with suggested matches.
//! - `POST /v1/registration-requests/{request_id}/match {account_id, contact_id?, template_id?}`:
//!   links it and sends the portal key email (a campaign of one, 24-hour rule), or closes it
//!   when its address already has a login.
//! - `POST /v1/registration-requests/{request_id}/reject {reason}`.
//!
//! Everything is scoped to the caller's tenant: another tenant's account or request is a 404,
//! exactly like a missing one.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use portal_core::domain::{
    AccountId, ContactId, DivisionId, PortalKey, RegistrationRequest, RequestId, RequestStatus,
    TemplateId,
};
use portal_core::ports::RequestFilter;
use portal_core::usecases::registration::{self as reg, MatchRequest, Matched, Suggestion};

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::ApiError;
use super::json::ApiJson;
use super::register::registration_error;
use super::AppState;

#[derive(Debug, Serialize)]
pub struct PortalKeyView {
    pub account_id: AccountId,
    pub portal_key: PortalKey,
}

/// `GET /v1/accounts/{account_id}/portal-key`
pub async fn get_key(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PortalKeyView>, ApiError> {
    let id = path_id("account_id", path, AccountId::parse)?;
    let key = reg::portal_key(state.store.as_ref(), &caller.tenant, &id)
        .await
        .map_err(|e| registration_error(&state, e))?;
    Ok(Json(PortalKeyView {
        account_id: id,
        portal_key: key,
    }))
}

/// `POST /v1/accounts/{account_id}/portal-key`
pub async fn rotate_key(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PortalKeyView>, ApiError> {
    let id = path_id("account_id", path, AccountId::parse)?;
    let key = reg::rotate_portal_key(state.store.as_ref(), &caller.tenant, &id)
        .await
        .map_err(|e| registration_error(&state, e))?;
    Ok(Json(PortalKeyView {
        account_id: id,
        portal_key: key,
    }))
}

#[derive(Debug, Serialize)]
pub struct RequestPage {
    pub items: Vec<RegistrationRequest>,
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/registration-requests` (an unknown parameter is a 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub division_id: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/registration-requests`
pub async fn list(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<RequestPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            RequestStatus::ALL_NAMES
                .into_iter()
                .find(|n| *n == s)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "status must be one of {}",
                        RequestStatus::ALL_NAMES.join(", ")
                    ))
                })?,
        ),
    };
    let division_id = match q.division_id.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(DivisionId::parse(d).map_err(|e| ApiError::BadRequest(e.to_string()))?),
        None => None,
    };
    let limit = super::paging::page_limit(q.limit, ApiError::BadRequest)?;
    let page = reg::list_requests(
        state.store.as_ref(),
        &caller.tenant,
        &RequestFilter {
            status,
            division_id,
            max_examined: Some(portal_core::ports::MAX_EXAMINED),
        },
        q.cursor.as_deref().filter(|c| !c.is_empty()),
        limit,
    )
    .await
    .map_err(|e| ApiError::from(portal_core::usecases::UseCaseError::from(e)))?;
    Ok(Json(RequestPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize)]
pub struct RequestView {
    #[serde(flatten)]
    pub request: RegistrationRequest,
    pub suggestions: Vec<Suggestion>,
}

fn request_id(path: Result<Path<String>, PathRejection>) -> Result<RequestId, ApiError> {
    path_id("request_id", path, RequestId::parse)
}

/// `GET /v1/registration-requests/{request_id}`
pub async fn get(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RequestView>, ApiError> {
    let id = request_id(path)?;
    let (request, suggestions) = reg::get_request(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.tenant,
        &id,
    )
    .await
    .map_err(|e| registration_error(&state, e))?;
    Ok(Json(RequestView {
        request,
        suggestions,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchBody {
    pub account_id: AccountId,
    #[serde(default)]
    pub contact_id: Option<ContactId>,
    #[serde(default)]
    pub template_id: Option<TemplateId>,
}

/// `POST /v1/registration-requests/{request_id}/match`
pub async fn match_request(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<MatchBody>,
) -> Result<Json<Matched>, ApiError> {
    let id = request_id(path)?;
    let sending = super::campaigns::sending(&state)?;
    let matched = reg::match_request(
        state.store.as_ref(),
        state.clock.as_ref(),
        sending,
        &caller.tenant,
        &caller.sub,
        &id,
        MatchRequest {
            account_id: body.account_id,
            contact_id: body.contact_id,
            template_id: body.template_id,
        },
    )
    .await
    .map_err(|e| registration_error(&state, e))?;
    Ok(Json(matched))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: String,
}

/// `POST /v1/registration-requests/{request_id}/reject`
pub async fn reject(
    caller: Authorized<perm::RegistrationsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<RejectBody>,
) -> Result<Json<RegistrationRequest>, ApiError> {
    let id = request_id(path)?;
    let request = reg::reject_request(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.tenant,
        &id,
        &body.reason,
    )
    .await
    .map_err(|e| registration_error(&state, e))?;
    Ok(Json(request))
}
