//! Campaigns: starting a bulk send, reading one, and the individual invite. The rules live
//! in [`crate::usecases::campaigns`]; this module reads requests and shapes answers.
//!
//! - `POST /v1/campaigns` (`invitations:send`): 202 `{campaign_id, status}` with a
//!   `Location` header. An optional `Idempotency-Key` header (1 to 255 characters, else 422)
//!   makes a retry answer the same campaign; the same key with another body is a 422.
//! - `GET /v1/campaigns/{campaign_id}` (`invitations:read`): the campaign, its `statistics`
//!   (invitations per category, `success_rate`) and send counters.
//!   An id that is not a campaign id is a 422 (like every malformed path id); a well-formed
//!   one that is unknown, or another tenant's, is a 404.
//! - `POST /v1/invitations/individual` (`invitations:send`): 202 with a campaign of one.
//!
//! A 409 (a division or contact held by the 24-hour rule) is problem+json with two extra
//! members, `retry_after` (RFC 3339) and `division_id` or `contact_id`, and a `Retry-After`
//! header in whole seconds, rounded up. A campaign recorded but not queued on the bus is a
//! 503 naming `campaign_id`. The send routes answer 500 when the server was started
//! without [`super::AppState::sending`] (a configuration error, logged).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DivisionId, Email, Filters,
    SendCounts, Skipped, TemplateId, Trigger,
};
use crate::usecases::campaigns::{
    self, CampaignError, SendIndividual, Sending, StartCampaign, Started,
};
use crate::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::{ApiError, PROBLEM_JSON};
use super::json::ApiJson;
use super::AppState;

/// The header that makes `POST /v1/campaigns` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn yes() -> bool {
    true
}

/// The body of `POST /v1/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    pub division_ids: Vec<DivisionId>,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default = "yes")]
    pub limit_to_uninvited: bool,
    pub template_id: TemplateId,
    #[serde(default)]
    pub email_from: Option<String>,
}

/// The body of `POST /v1/invitations/individual`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndividualBody {
    pub contact_id: ContactId,
    pub template_id: TemplateId,
    #[serde(default)]
    pub email_from: Option<String>,
}

/// What `GET /v1/campaigns/{campaign_id}` answers.
#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub campaign_id: CampaignId,
    pub trigger: Trigger,
    pub status: CampaignStatus,
    pub division_ids: Vec<DivisionId>,
    pub filters: Filters,
    pub limit_to_uninvited: bool,
    pub template_id: String,
    pub email_from: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub targeted: u64,
    pub skipped: Skipped,
    /// Where the campaign's invitations stand: one category each, adding up to `total`.
    pub statistics: Statistics,
    /// Where their send attempts stand (`pending` until the delivery step or SES answers).
    pub sends: SendCounts,
    pub pause_reason: Option<String>,
}

/// A campaign's invitations per category, with `success_rate = registered / (total −
/// failed)` (`null` while nothing was reached).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Statistics {
    pub total: u64,
    #[serde(flatten)]
    pub categories: CategoryCounts,
    pub success_rate: Option<f64>,
}

impl From<CategoryCounts> for Statistics {
    fn from(c: CategoryCounts) -> Self {
        Self {
            total: c.total(),
            categories: c,
            success_rate: c.success_rate(),
        }
    }
}

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        Self {
            campaign_id: c.campaign_id,
            trigger: c.trigger,
            status: c.status,
            division_ids: c.division_ids,
            filters: c.filters,
            limit_to_uninvited: c.limit_to_uninvited,
            template_id: c.template_id,
            email_from: c.email_from.as_str().to_owned(),
            created_at: c.created_at,
            created_by: c.created_by,
            targeted: c.targeted,
            skipped: c.skipped,
            statistics: c.categories.into(),
            sends: c.sends,
            pause_reason: c.pause_reason,
        }
    }
}

fn sending(state: &AppState) -> Result<&Sending, ApiError> {
    state.sending.as_deref().ok_or_else(|| {
        ApiError::Internal(
            "sending is not configured: no event bus or token secret was given to this server"
                .into(),
        )
    })
}

fn email_from(raw: Option<String>) -> Result<Option<Email>, ApiError> {
    raw.map(|e| Email::parse(&e))
        .transpose()
        .map_err(|e| ApiError::Unprocessable(format!("email_from: {e}")))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::Unprocessable("Idempotency-Key: must be visible ASCII characters".into())
    })?;
    campaigns::check_idempotency_key(key).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(Some(key.to_owned()))
}

fn accepted(started: Started) -> Response {
    let location = format!("/v1/campaigns/{}", started.campaign_id);
    let mut res = (StatusCode::ACCEPTED, Json(started)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `POST /v1/campaigns`: records a bulk send and queues its fan-out.
pub async fn create(
    caller: Authorized<perm::InvitationsSend>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CampaignBody>,
) -> Result<Response, ApiError> {
    let sending = sending(&state)?;
    let key = idempotency_key(&headers)?;
    let request = StartCampaign {
        division_ids: body.division_ids,
        filters: body.filters,
        limit_to_uninvited: body.limit_to_uninvited,
        template_id: body.template_id,
        email_from: email_from(body.email_from)?,
    };
    let result = campaigns::start_campaign(
        state.store.as_ref(),
        state.clock.as_ref(),
        sending,
        &caller.tenant,
        &caller.sub,
        request,
        key,
    )
    .await;
    Ok(match result {
        Ok(started) => accepted(started),
        Err(e) => error_response(e, state.clock.now()),
    })
}

/// `POST /v1/invitations/individual`: invites one contact now.
pub async fn individual(
    caller: Authorized<perm::InvitationsSend>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<IndividualBody>,
) -> Result<Response, ApiError> {
    let sending = sending(&state)?;
    let request = SendIndividual {
        contact_id: body.contact_id,
        template_id: body.template_id,
        email_from: email_from(body.email_from)?,
    };
    let result = campaigns::send_individual(
        state.store.as_ref(),
        state.clock.as_ref(),
        sending,
        &caller.tenant,
        &caller.sub,
        request,
    )
    .await;
    Ok(match result {
        Ok(started) => accepted(started),
        Err(e) => error_response(e, state.clock.now()),
    })
}

/// `GET /v1/campaigns/{campaign_id}`.
pub async fn get(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignView>, ApiError> {
    let id = path_id("campaign_id", path, CampaignId::parse)?;
    let campaign = state
        .store
        .get_campaign(&caller.tenant, &id)
        .await
        .map_err(UseCaseError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("campaign {id} does not exist")))?;
    Ok(Json(campaign.into()))
}

/// A problem+json body with members beyond those [`ApiError`] writes.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    division_id: Option<&'a DivisionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id: Option<&'a ContactId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<&'a CampaignId>,
}

impl<'a> Problem<'a> {
    fn new(slug: &str, title: &'a str, status: StatusCode, detail: String) -> Self {
        Self {
            kind: format!("urn:portal-invites:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            retry_after: None,
            division_id: None,
            contact_id: None,
            campaign_id: None,
        }
    }

    fn into_response(self, retry_after_secs: Option<i64>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::CONFLICT);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Whole seconds from `now` until `until`, rounded up, never negative.
fn seconds_until(now: OffsetDateTime, until: OffsetDateTime) -> i64 {
    let d = until - now;
    if d <= time::Duration::ZERO {
        return 0;
    }
    d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Turns a use-case error into its answer (statuses documented on [`CampaignError`]).
fn error_response(e: CampaignError, now: OffsetDateTime) -> Response {
    let detail = e.to_string();
    match &e {
        CampaignError::DivisionHeld {
            division_id,
            retry_after,
        } => {
            tracing::debug!(%detail, "send refused");
            let mut p = Problem::new(
                "division-held",
                "Division sent less than 24 hours ago",
                StatusCode::CONFLICT,
                detail,
            );
            p.retry_after = Some(rfc3339(*retry_after));
            p.division_id = Some(division_id);
            p.into_response(Some(seconds_until(now, *retry_after)))
        }
        CampaignError::ContactHeld {
            contact_id,
            retry_after,
        } => {
            tracing::debug!(%detail, "send refused");
            let mut p = Problem::new(
                "contact-held",
                "Contact invited less than 24 hours ago",
                StatusCode::CONFLICT,
                detail,
            );
            p.retry_after = Some(rfc3339(*retry_after));
            p.contact_id = Some(contact_id);
            p.into_response(Some(seconds_until(now, *retry_after)))
        }
        CampaignError::NotQueued { campaign_id, .. }
        | CampaignError::DeliveryNotQueued { campaign_id, .. } => {
            tracing::error!(error = %error_chain(&e), "campaign not queued");
            let hint = if matches!(e, CampaignError::NotQueued { .. }) {
                "; it stays queued: send the same request with the same Idempotency-Key again \
                 to queue it"
            } else {
                "; the invitation is marked failed"
            };
            let mut p = Problem::new(
                "not-queued",
                "Could not be queued",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{detail}{hint}"),
            );
            p.campaign_id = Some(campaign_id);
            p.into_response(None)
        }
        CampaignError::Invalid(_)
        | CampaignError::TemplateMissing(_)
        | CampaignError::IdempotencyMismatch
        | CampaignError::NotSendable { .. } => ApiError::Unprocessable(detail).into_response(),
        CampaignError::NotFound { .. } => ApiError::NotFound(detail).into_response(),
        CampaignError::Unexpected(_) | CampaignError::Store(_) | CampaignError::Transition(_) => {
            ApiError::Internal(Box::new(e)).into_response()
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let now = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(seconds_until(now, now + time::Duration::seconds(1)), 1);
        assert_eq!(
            seconds_until(now, now + time::Duration::milliseconds(1001)),
            2
        );
        assert_eq!(seconds_until(now, now + time::Duration::nanoseconds(1)), 1);
        assert_eq!(seconds_until(now, now - time::Duration::seconds(5)), 0);
    }
}
