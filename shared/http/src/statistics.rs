//! A division's campaign history and the drill-down into one category of a campaign.
//!
//! - `GET /v1/campaigns?division_id=…&cursor=…&limit=…` (`invitations:read`): the division's
//!   campaigns, newest first, each with its statistics (the same view as
//!   `GET /v1/campaigns/{campaign_id}`). An unknown division, or another tenant's, is a 404.
//! - `POST /v1/campaigns/{campaign_id}/recipients` (`invitations:read`) with
//!   `{category, q, cursor, limit}`: one page of the campaign's invitations, optionally of one
//!   category and matching a search over email, contact name and account number; with
//!   `Accept: text/csv` every matching invitation as a streamed CSV.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use portal_core::domain::{
    CampaignId, ContactId, DivisionId, Invitation, InvitationCategory, SendState, TenantId,
};
use portal_core::ports::{InvitationFilter, Store, StoreError, MAX_EXAMINED, MAX_PAGE_SIZE};
use portal_core::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::campaigns::CampaignView;
use super::csv::{csv_headers, defuse, paged};
use super::divisions::path_id;
use super::error::ApiError;
use super::invitations::wants_csv;
use super::json::{integer, OptionalApiJson};
use super::paging::{first_page, page_limit};
use super::AppState;

/// The query of `GET /v1/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub division_id: String,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of campaigns.
#[derive(Debug, Serialize)]
pub struct CampaignPage {
    pub items: Vec<CampaignView>,
    pub next_cursor: Option<String>,
}

fn limit(raw: Option<u32>) -> Result<u32, ApiError> {
    page_limit(raw, ApiError::Unprocessable)
}

fn store_error(e: StoreError) -> ApiError {
    UseCaseError::from(e).into()
}

/// `GET /v1/campaigns`: a division's campaigns, newest first.
pub async fn list(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<CampaignPage>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let division = DivisionId::parse(params.division_id)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let limit = limit(params.limit)?;
    if state
        .store
        .get_division(&caller.tenant, &division)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "division {division} does not exist"
        )));
    }
    let page = state
        .store
        .list_campaigns(&caller.tenant, &division, first_page(&params.cursor), limit)
        .await
        .map_err(store_error)?;
    Ok(Json(CampaignPage {
        items: page.items.into_iter().map(CampaignView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The body of `POST /v1/campaigns/{campaign_id}/recipients`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientsBody {
    /// One category, or every invitation when absent.
    #[serde(default)]
    pub category: Option<InvitationCategory>,
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Absent: the default page size; `null` is refused (the document types it `integer`).
    #[serde(default, deserialize_with = "integer::optional")]
    pub limit: Option<u32>,
}

/// One invitation of a campaign as a manager sees it.
#[derive(Debug, Serialize)]
pub struct RecipientItem {
    pub contact_id: ContactId,
    pub email: String,
    pub contact_name: String,
    pub account_number: String,
    pub category: InvitationCategory,
    pub send_state: SendState,
    /// Why it failed or bounced.
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub invited_at: OffsetDateTime,
}

impl From<Invitation> for RecipientItem {
    fn from(i: Invitation) -> Self {
        Self {
            contact_id: i.contact_id,
            email: i.email.as_str().to_owned(),
            contact_name: i.contact_name,
            account_number: i.account_number,
            category: i.state.category,
            send_state: i.state.send,
            reason: i.state.reason,
            invited_at: i.created_at,
        }
    }
}

/// A page of a campaign's invitations.
#[derive(Debug, Serialize)]
pub struct RecipientPage {
    pub items: Vec<RecipientItem>,
    pub next_cursor: Option<String>,
}

/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// `POST /v1/campaigns/{campaign_id}/recipients`.
pub async fn recipients(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    OptionalApiJson(body): OptionalApiJson<RecipientsBody>,
) -> Result<Response, ApiError> {
    let id = path_id("campaign_id", path, CampaignId::parse)?;
    let search = portal_core::domain::search::needle(&body.q.unwrap_or_default());
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "q: longer than {MAX_SEARCH_CHARS} characters"
        )));
    }
    // Every page (the CSV export's too) examines a bounded number of invitations.
    let filter = InvitationFilter {
        category: body.category,
        search,
        max_examined: Some(MAX_EXAMINED),
    };
    let limit = limit(body.limit)?;
    if state
        .store
        .get_campaign(&caller.tenant, &id)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("campaign {id} does not exist")));
    }
    if wants_csv(&headers) {
        return Ok(export(state.store.clone(), caller.tenant, id, filter));
    }
    let page = state
        .store
        .list_invitations(
            &caller.tenant,
            &id,
            &filter,
            first_page(&body.cursor),
            limit,
        )
        .await
        .map_err(store_error)?;
    Ok(Json(RecipientPage {
        items: page.items.into_iter().map(RecipientItem::from).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// The CSV columns, in order: the fields of a JSON item.
pub const CSV_HEADER: [&str; 8] = [
    "contact_id",
    "email",
    "contact_name",
    "account_number",
    "category",
    "send_state",
    "reason",
    "invited_at",
];

fn encode(header: bool, rows: &[Invitation]) -> Result<Bytes, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(64 * 1024));
    if header {
        w.write_record(CSV_HEADER)?;
    }
    for i in rows.iter().cloned().map(RecipientItem::from) {
        let invited_at = i
            .invited_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        w.write_record([
            defuse(i.contact_id.as_str()).as_ref(),
            defuse(&i.email).as_ref(),
            defuse(&i.contact_name).as_ref(),
            defuse(&i.account_number).as_ref(),
            i.category.as_str(),
            i.send_state.as_str(),
            defuse(i.reason.as_deref().unwrap_or("")).as_ref(),
            &invited_at,
        ])?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Every matching invitation as CSV, a store page at a time.
fn export(
    store: Arc<dyn Store>,
    tenant: TenantId,
    campaign: CampaignId,
    filter: InvitationFilter,
) -> Response {
    let headers = csv_headers(&format!(
        "campaign-{campaign}-{}.csv",
        filter.category.map_or("all", InvitationCategory::as_str)
    ));
    let body = paged(
        move |cursor| {
            let (store, tenant, campaign, filter) = (
                store.clone(),
                tenant.clone(),
                campaign.clone(),
                filter.clone(),
            );
            async move {
                store
                    .list_invitations(
                        &tenant,
                        &campaign,
                        &filter,
                        cursor.as_deref(),
                        MAX_PAGE_SIZE,
                    )
                    .await
            }
        },
        encode,
    );
    (StatusCode::OK, headers, Body::from_stream(body)).into_response()
}
