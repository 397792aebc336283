//! Campaigns: starting a bulk send, reading one, and the individual invite. The rules live
//! in [`portal_core::usecases::campaigns`]; this module reads requests and shapes answers.
//!
//! - `POST /v1/campaigns` (`invitations:send`): 202 `{campaign_id, status}` with a
//!   `Location` header. An optional `Idempotency-Key` header (1 to 255 characters, else 422)
//!   makes a retry answer the same campaign; the same key with another body is a 422. The
//!   body names `division_ids` (with optional `filters`) or `contact_ids` (a hand-picked
//!   selection of up to 10,000 contacts), never both: both, or neither, is a 422. Its limit
//!   is [`CAMPAIGN_BODY_LIMIT`] (10,000 ids of 64 characters fit).
//! - `GET /v1/campaigns/{campaign_id}` (`invitations:read`): the campaign, its `statistics`
//!   (invitations per category, `success_rate`) and send counters; a hand-picked one also
//!   says so (`selection`: [`SelectionView`]).
//!   An id that is not a campaign id is a 422 (like every malformed path id); a well-formed
//!   one that is unknown, or another tenant's, is a 404.
//! - `POST /v1/invitations/individual` (`invitations:send`): 202 with a campaign of one.
//!
//! A 409 (a division or contact held by the 24-hour rule) is problem+json with two extra
//! members, `retry_after` (RFC 3339) and `division_id` or `contact_id`, and a `Retry-After`
//! header in whole seconds, rounded up. A campaign recorded but not queued on the bus is a
//! 503 naming `campaign_id`. The send routes answer 500 when the server was started
//! without [`super::AppState::sending`] (a configuration error, logged).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use portal_core::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DivisionId, Email, Filters,
    PickedContacts, SendCounts, Skipped, TemplateId, Trigger,
};
use portal_core::usecases::campaigns::{
    self, CampaignError, Recipients, SendIndividual, Sending, StartCampaign, Started,
};
use portal_core::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::{ApiError, HeldSubject};
use super::json::{body_rejection, json_error, require_json, ApiJson};
use super::{describe_limit, AppState};

/// The header that makes `POST /v1/campaigns` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Body limit of `POST /v1/campaigns`: a hand-picked selection of
/// [`MAX_SELECTED_CONTACTS`](portal_core::domain::MAX_SELECTED_CONTACTS) ids of 64
/// characters is about 670 KB of JSON.
pub const CAMPAIGN_BODY_LIMIT: usize = 1024 * 1024;

fn yes() -> bool {
    true
}

/// The body of `POST /v1/campaigns`: `division_ids` (+ `filters`) or `contact_ids`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    #[serde(default)]
    pub division_ids: Option<Vec<DivisionId>>,
    #[serde(default)]
    pub filters: Option<Filters>,
    /// A hand-picked selection, instead of divisions and filters.
    #[serde(default)]
    pub contact_ids: Option<Vec<ContactId>>,
    #[serde(default = "yes")]
    pub limit_to_uninvited: bool,
    pub template_id: TemplateId,
    #[serde(default)]
    pub email_from: Option<String>,
}

impl CampaignBody {
    /// Whom the send goes to: one form or the other.
    fn recipients(&mut self) -> Result<Recipients, ApiError> {
        match (
            self.contact_ids.take(),
            self.division_ids.take(),
            self.filters.take(),
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ApiError::Unprocessable(
                "name either contact_ids (a hand-picked selection) or division_ids with \
                 optional filters, not both"
                    .into(),
            )),
            (Some(ids), None, None) => Ok(Recipients::Contacts(
                PickedContacts::parse(ids).map_err(|e| ApiError::Unprocessable(e.to_string()))?,
            )),
            (None, Some(division_ids), filters) => Ok(Recipients::Divisions {
                division_ids,
                filters: filters.unwrap_or_default(),
            }),
            (None, None, _) => Err(ApiError::Unprocessable(
                "name the recipients: division_ids (with optional filters), or contact_ids \
                 (a hand-picked selection)"
                    .into(),
            )),
        }
    }
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
    /// For a recurring run's campaign: the setting and the local day it ran for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring: Option<portal_core::domain::RecurringRun>,
    /// For a hand-picked campaign: `{"kind": "contacts", "contacts": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionView>,
}

/// How a hand-picked campaign chose its recipients, for a UI to say "hand-picked (N
/// contacts)".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SelectionView {
    /// Always `contacts`: the contacts were picked one by one (`contact_ids`).
    pub kind: &'static str,
    /// How many distinct contacts were picked.
    pub contacts: u32,
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
            recurring: c.recurring,
            selection: c.selection.map(|p| SelectionView {
                kind: "contacts",
                contacts: p.contacts,
            }),
        }
    }
}

pub(crate) fn sending(state: &AppState) -> Result<&Sending, ApiError> {
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // `ApiJson`, with this route's own limit in the 413's detail.
    require_json(&headers)?;
    let body = body.map_err(|r| body_rejection(r, &describe_limit(CAMPAIGN_BODY_LIMIT)))?;
    let mut body: CampaignBody = serde_json::from_slice(&body).map_err(|e| json_error(None, &e))?;
    let sending = sending(&state)?;
    let key = idempotency_key(&headers)?;
    let request = StartCampaign {
        recipients: body.recipients()?,
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
        Err(e) => error_response(e, state.clock.now()).into_response(),
    })
}

/// `POST /v1/invitations/individual`: invites one contact now.
pub async fn individual(
    caller: Authorized<perm::InvitationsSend>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<IndividualBody>,
) -> Result<Response, ApiError> {
    let sending = sending(&state)?;
    let request = SendIndividual::invitation(
        body.contact_id,
        body.template_id,
        email_from(body.email_from)?,
    );
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
        Err(e) => error_response(e, state.clock.now()).into_response(),
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

/// Whole seconds from `now` until `until`, rounded up, never negative.
pub(crate) fn seconds_until(now: OffsetDateTime, until: OffsetDateTime) -> i64 {
    let d = until - now;
    if d <= time::Duration::ZERO {
        return 0;
    }
    d.whole_seconds() + i64::from(d.subsec_nanoseconds() > 0)
}

fn not_queued(e: &CampaignError, campaign_id: CampaignId, hint: &str) -> ApiError {
    tracing::error!(error = %portal_core::error_chain(e), "campaign not queued");
    ApiError::NotQueued {
        detail: format!("{e}{hint}"),
        campaign_id,
    }
}

/// The answer to a use-case error (statuses documented on [`CampaignError`] and [`ApiError`]).
pub(crate) fn error_response(e: CampaignError, now: OffsetDateTime) -> ApiError {
    let detail = e.to_string();
    match e {
        CampaignError::DivisionHeld {
            division_id,
            retry_after,
        } => {
            tracing::debug!(%detail, "send refused");
            ApiError::Held {
                detail,
                subject: HeldSubject::Division(division_id),
                retry_after,
                retry_after_secs: seconds_until(now, retry_after),
            }
        }
        CampaignError::ContactHeld {
            contact_id,
            retry_after,
        } => {
            tracing::debug!(%detail, "send refused");
            ApiError::Held {
                detail,
                subject: HeldSubject::Contact(contact_id),
                retry_after,
                retry_after_secs: seconds_until(now, retry_after),
            }
        }
        CampaignError::AddressHeld {
            contact_id,
            retry_after,
        } => {
            tracing::debug!(%detail, "send refused");
            ApiError::Held {
                detail,
                subject: HeldSubject::Address(contact_id),
                retry_after,
                retry_after_secs: seconds_until(now, retry_after),
            }
        }
        CampaignError::NotQueued {
            ref campaign_id, ..
        } => not_queued(
            &e,
            campaign_id.clone(),
            "; it stays queued: send the same request with the same Idempotency-Key again to \
             queue it",
        ),
        CampaignError::DeliveryNotQueued {
            ref campaign_id, ..
        } => not_queued(&e, campaign_id.clone(), "; the invitation is marked failed"),
        CampaignError::Invalid(_)
        | CampaignError::UnknownContacts { .. }
        | CampaignError::TemplateMissing(_)
        | CampaignError::WrongTemplateKind { .. }
        | CampaignError::IdempotencyMismatch
        | CampaignError::NotSendable { .. }
        | CampaignError::SenderNotAllowed { .. } => ApiError::Unprocessable(detail),
        CampaignError::NotFound { .. } => ApiError::NotFound(detail),
        CampaignError::Unexpected(_) | CampaignError::Store(_) | CampaignError::Transition(_) => {
            ApiError::Internal(Box::new(e))
        }
    }
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
