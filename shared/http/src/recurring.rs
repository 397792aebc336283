//! Recurring invitation settings (`settings:manage`):
//!
//! - `GET /v1/recurring`: the tenant's settings, in id order;
//! - `GET/PUT/DELETE /v1/recurring/{recurring_id}`: one setting; `PUT` creates or replaces it
//!   and its schedule (idempotent: a `PUT` whose schedule call failed is sent again);
//! - `GET /v1/recurring/{recurring_id}/runs`: its runs, newest day first, each with its
//!   campaign's `targeted` and `skipped`;
//! - `POST /v1/recurring/{recurring_id}/preview`: whom the next run would target now, in the
//!   counts of `/v1/invitations/counts`; creates nothing.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use portal_core::domain::{
    Counts, DivisionId, Email, Filters, RecurringId, SettingDoc, TemplateId,
};
use portal_core::usecases::recurring::{self as rec, RecurringError, RunView, SettingInput};

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::ApiError;
use super::json::{integer, ApiJson};
use super::AppState;

/// The body of `PUT /v1/recurring/{recurring_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingBody {
    pub enabled: bool,
    pub scope: String,
    #[serde(default)]
    pub division_ids: Vec<DivisionId>,
    #[serde(default)]
    pub filters: Filters,
    pub template_id: TemplateId,
    #[serde(default)]
    pub email_from: Option<String>,
    #[serde(deserialize_with = "integer::exact")]
    pub cadence_days: u16,
    #[serde(deserialize_with = "integer::exact")]
    pub max_invitations_per_contact: u16,
    #[serde(deserialize_with = "integer::exact")]
    pub hour_of_day: u8,
    pub time_zone: String,
}

/// A setting as the API shows it: its document and when it runs next.
#[derive(Debug, Serialize)]
pub struct SettingView {
    #[serde(flatten)]
    pub doc: SettingDoc,
    /// The next instant a run is due (`null` when disabled).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<time::OffsetDateTime>,
}

fn view(state: &AppState, s: &portal_core::domain::RecurringSetting) -> SettingView {
    let now = state.clock.now();
    let next_run_at = s.enabled.then(|| {
        let today = s.time_zone.date_at(now);
        let due = s.due_at(today);
        if due > now {
            due
        } else {
            s.due_at(today.next())
        }
    });
    SettingView {
        doc: s.to_doc(),
        next_run_at,
    }
}

fn recurring_error(e: RecurringError) -> ApiError {
    match e {
        RecurringError::Invalid(d) => ApiError::Unprocessable(d.to_string()),
        e @ RecurringError::NotFound(_) => ApiError::NotFound(e.to_string()),
        e @ RecurringError::Schedule(_) => {
            tracing::error!(error = %portal_core::error_chain(&e), "schedule not updated");
            ApiError::Unavailable(e.to_string())
        }
        e @ RecurringError::NotQueued(_) => ApiError::Unavailable(e.to_string()),
        RecurringError::Store(s) => ApiError::from(portal_core::usecases::UseCaseError::from(s)),
        e @ RecurringError::Unexpected(_) => ApiError::Internal(Box::new(e)),
    }
}

fn setting_id(path: Result<Path<String>, PathRejection>) -> Result<RecurringId, ApiError> {
    path_id("recurring_id", path, RecurringId::parse)
}

fn schedules(state: &AppState) -> Result<&dyn rec::Schedules, ApiError> {
    state.schedules.as_deref().ok_or_else(|| {
        ApiError::Internal("no schedule adapter is configured on this server".into())
    })
}

/// `GET /v1/recurring`
pub async fn list(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
) -> Result<Json<Vec<SettingView>>, ApiError> {
    let settings = state
        .store
        .list_settings(&caller.tenant)
        .await
        .map_err(|e| recurring_error(e.into()))?;
    Ok(Json(settings.iter().map(|s| view(&state, s)).collect()))
}

/// `GET /v1/recurring/{recurring_id}`
pub async fn get(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SettingView>, ApiError> {
    let id = setting_id(path)?;
    let s = state
        .store
        .get_setting(&caller.tenant, &id)
        .await
        .map_err(|e| recurring_error(e.into()))?
        .ok_or_else(|| recurring_error(RecurringError::NotFound(id)))?;
    Ok(Json(view(&state, &s)))
}

/// `PUT /v1/recurring/{recurring_id}`
pub async fn put(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<SettingBody>,
) -> Result<Json<SettingView>, ApiError> {
    let id = setting_id(path)?;
    let email_from = body
        .email_from
        .filter(|e| !e.trim().is_empty())
        .map(|e| Email::parse(&e))
        .transpose()
        .map_err(|e| ApiError::Unprocessable(format!("email_from: {e}")))?;
    let saved = rec::save_setting(
        state.store.as_ref(),
        schedules(&state)?,
        state.clock.as_ref(),
        &caller.tenant,
        id,
        SettingInput {
            enabled: body.enabled,
            scope: body.scope,
            division_ids: body.division_ids,
            filters: body.filters,
            template_id: body.template_id,
            email_from,
            cadence_days: body.cadence_days,
            max_invitations_per_contact: body.max_invitations_per_contact,
            hour_of_day: body.hour_of_day,
            time_zone: body.time_zone,
        },
    )
    .await
    .map_err(recurring_error)?;
    Ok(Json(view(&state, &saved)))
}

/// `DELETE /v1/recurring/{recurring_id}`
pub async fn delete(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = setting_id(path)?;
    rec::delete_setting(
        state.store.as_ref(),
        schedules(&state)?,
        &caller.tenant,
        &id,
    )
    .await
    .map_err(recurring_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize)]
pub struct RunPage {
    pub items: Vec<RunView>,
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/recurring/{recurring_id}/runs` (an unknown parameter is a 400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/recurring/{recurring_id}/runs?cursor=&limit=`
pub async fn runs(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<RunParams>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let id = setting_id(path)?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = super::paging::page_limit(q.limit, ApiError::BadRequest)?;
    if state
        .store
        .get_setting(&caller.tenant, &id)
        .await
        .map_err(|e| recurring_error(e.into()))?
        .is_none()
    {
        return Err(recurring_error(RecurringError::NotFound(id)));
    }
    let page = rec::runs(
        state.store.as_ref(),
        &caller.tenant,
        &id,
        q.cursor.as_deref().filter(|c| !c.is_empty()),
        limit,
    )
    .await
    .map_err(recurring_error)?;
    Ok(Json(RunPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize)]
pub struct PreviewView {
    pub division_ids: Vec<DivisionId>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// `POST /v1/recurring/{recurring_id}/preview`
pub async fn preview(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PreviewView>, ApiError> {
    let id = setting_id(path)?;
    let (division_ids, counts) = rec::preview(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.tenant,
        &id,
    )
    .await
    .map_err(recurring_error)?;
    Ok(Json(PreviewView {
        division_ids,
        counts,
    }))
}
