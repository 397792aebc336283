//! `POST /v1/invitations/counts` and `POST /v1/invitations/recipients` (JSON pages, or the
//! whole group as CSV with `Accept: text/csv`).
//!
//! Both take the manager's selection in the body (a POST, because filters do not fit a
//! query string). The tenant is the caller's; a division id of another tenant is a 404, just
//! like one that does not exist.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use portal_core::domain::{
    ContactRecord, Counts, DivisionId, Email, Filters, Group, PortalStatus, SenderCheck,
};
use portal_core::usecases::counts::{self, ListRequest, Selection};
use portal_core::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::error::ApiError;
use super::json::{integer, ApiJson};
use super::AppState;

fn yes() -> bool {
    true
}

/// The body of `POST /v1/invitations/counts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsBody {
    /// Empty or absent: every division of the tenant.
    #[serde(default)]
    pub division_ids: Vec<DivisionId>,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default = "yes")]
    pub limit_to_uninvited: bool,
}

/// The body of `POST /v1/invitations/recipients`: the selection of a count, plus which
/// list, a search and a page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientsBody {
    #[serde(default)]
    pub division_ids: Vec<DivisionId>,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default = "yes")]
    pub limit_to_uninvited: bool,
    #[serde(default)]
    pub group: Group,
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Absent: the default page size; `null` is refused (the document types it `integer`).
    #[serde(default, deserialize_with = "integer::optional")]
    pub limit: Option<u32>,
}

impl RecipientsBody {
    fn into_request(self) -> ListRequest {
        ListRequest {
            selection: Selection {
                division_ids: self.division_ids,
                filters: self.filters,
                limit_to_uninvited: self.limit_to_uninvited,
            },
            group: self.group,
            q: self.q,
            // An empty cursor means "from the start", like an absent one.
            cursor: self.cursor.filter(|c| !c.is_empty()),
            limit: self.limit,
        }
    }
}

/// One row of a recipient list.
#[derive(Debug, Clone, Serialize)]
pub struct RecipientItem {
    pub contact_id: String,
    pub email: Option<String>,
    pub contact_name: String,
    pub account_number: String,
    pub account_name: String,
    pub portal_status: PortalStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_invite_sent: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
    pub has_autopay: bool,
}

impl From<ContactRecord> for RecipientItem {
    fn from(c: ContactRecord) -> Self {
        Self {
            contact_id: c.contact_id.to_string(),
            email: c.email.map(|e| e.as_str().to_owned()),
            contact_name: c.contact_name,
            account_number: c.account_number,
            account_name: c.account_name,
            portal_status: c.portal_status,
            last_invite_sent: c.last_invited_at,
            last_login: c.last_login,
            has_autopay: c.autopay,
        }
    }
}

/// A page of a recipient list.
#[derive(Debug, Serialize)]
pub struct RecipientPage {
    pub items: Vec<RecipientItem>,
    pub next_cursor: Option<String>,
}

/// The sender a send of the selection would use by default (its first division's), and
/// whether the tenant's sender settings allow it: why a selection cannot be sent as it is.
#[derive(Debug, Serialize)]
pub struct DefaultSender {
    pub division_id: DivisionId,
    pub email_from: Email,
    pub status: SenderCheck,
}

/// `POST /v1/invitations/counts`: the counts, and the selection's default sender.
#[derive(Debug, Serialize)]
pub struct CountsView {
    #[serde(flatten)]
    pub counts: Counts,
    /// `None` when the tenant has no division.
    pub default_sender: Option<DefaultSender>,
}

/// The counts a manager loads for a selection.
pub async fn counts(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CountsBody>,
) -> Result<Json<CountsView>, ApiError> {
    let first = body.division_ids.first().cloned();
    let selection = Selection {
        division_ids: body.division_ids,
        filters: body.filters,
        limit_to_uninvited: body.limit_to_uninvited,
    };
    let counts = counts::load_counts(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.tenant,
        selection,
    )
    .await?;
    let store = state.store.as_ref();
    let division = match first {
        Some(id) => store.get_division(&caller.tenant, &id).await,
        // No division named (every division): the first by id.
        None => store
            .list_divisions(&caller.tenant)
            .await
            .map(|all| all.into_iter().next()),
    }
    .map_err(UseCaseError::from)?;
    let default_sender = match division {
        Some(d) => {
            let settings = store
                .get_sender_settings(&caller.tenant)
                .await
                .map_err(UseCaseError::from)?;
            Some(DefaultSender {
                status: SenderCheck::of(settings.as_ref(), &d.email_from),
                division_id: d.division_id,
                email_from: d.email_from,
            })
        }
        None => None,
    };
    Ok(Json(CountsView {
        counts,
        default_sender,
    }))
}

/// Whether the caller asked for CSV.
pub(crate) fn wants_csv(headers: &HeaderMap) -> bool {
    super::header_items(headers, header::ACCEPT).any(|m| {
        m.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
    })
}

/// One page of a recipient list, or with `Accept: text/csv` every row of the group.
pub async fn recipients(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RecipientsBody>,
) -> Result<Response, ApiError> {
    if wants_csv(&headers) {
        return super::csv::export(state, caller.tenant, body.into_request()).await;
    }
    let page = counts::list_recipients(
        state.store.as_ref(),
        state.clock.as_ref(),
        &caller.tenant,
        body.into_request(),
    )
    .await?;
    Ok(Json(RecipientPage {
        items: page.items.into_iter().map(RecipientItem::from).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}
