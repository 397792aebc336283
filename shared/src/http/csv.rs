//! A recipient list as CSV, streamed: a header row, then one row per contact of the group.
//!
//! The selection is validated before the response starts (so a bad division or filter is
//! still a 4xx problem), then the body pages through the store [`MAX_PAGE_SIZE`] contacts at
//! a time inside the stream: memory stays one page whatever the size of the division. A
//! store failure mid-stream can no longer change the status; it is logged and the body is
//! cut short, which a client sees as a failed download rather than a silently short file.
//!
//! Cells are quoted by the `csv` crate, and a cell that starts with `=`, `+`, `-`, `@`, tab
//! or carriage return is prefixed with `'` so a spreadsheet never runs it as a formula
//! (CSV injection).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{ContactRecord, TenantId};
use crate::ports::{ListQuery, Store, StoreError, MAX_PAGE_SIZE};
use crate::usecases::counts::{resolve_list, ListRequest};

use super::error::ApiError;
use super::AppState;

/// The CSV columns, in order: the fields of a JSON list item.
pub const CSV_HEADER: [&str; 9] = [
    "contact_id",
    "email",
    "contact_name",
    "account_number",
    "account_name",
    "portal_status",
    "last_invite_sent",
    "last_login",
    "has_autopay",
];

/// Neutralises a cell a spreadsheet would read as a formula.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn timestamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

/// Writes rows as CSV bytes.
fn encode<'a>(
    header: bool,
    rows: impl IntoIterator<Item = &'a ContactRecord>,
) -> Result<Bytes, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(64 * 1024));
    if header {
        w.write_record(CSV_HEADER)?;
    }
    for c in rows {
        let email = c.email.as_ref().map(|e| e.as_str()).unwrap_or("");
        let record = [
            defuse(c.contact_id.as_str()).into_owned(),
            defuse(email).into_owned(),
            defuse(&c.contact_name).into_owned(),
            defuse(&c.account_number).into_owned(),
            defuse(&c.account_name).into_owned(),
            c.portal_status.as_str().to_owned(),
            timestamp(c.last_invited_at),
            timestamp(c.last_login),
            c.autopay.to_string(),
        ];
        w.write_record(&record)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| csv::Error::from(e.into_error()))
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode CSV: {0}")]
    Csv(#[from] csv::Error),
}

struct Cursor {
    store: Arc<dyn Store>,
    tenant: TenantId,
    query: ListQuery,
    first: bool,
    done: bool,
}

fn rows(state: Cursor) -> impl Stream<Item = Result<Bytes, ExportError>> + Send {
    stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let page = match s.store.list_contacts(&s.tenant, &s.query).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(tenant = %s.tenant, error = %e, "CSV export failed mid-stream");
                s.done = true;
                return Some((Err(ExportError::from(e)), s));
            }
        };
        let chunk = encode(s.first, &page.items).map_err(ExportError::from);
        s.first = false;
        match page.next_cursor {
            Some(c) => s.query.cursor = Some(c),
            None => s.done = true,
        }
        Some((chunk, s))
    })
}

/// The whole group of a list request as a streamed CSV response (cursor and limit ignored).
pub async fn export(
    state: AppState,
    tenant: TenantId,
    mut req: ListRequest,
) -> Result<Response, ApiError> {
    req.cursor = None;
    req.limit = Some(MAX_PAGE_SIZE);
    let group = req.group;
    let query = resolve_list(state.store.as_ref(), state.clock.as_ref(), &tenant, req).await?;
    let filename = format!("attachment; filename=\"recipients-{}.csv\"", group.as_str());
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&filename)
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
    ];
    if query.contacts.division_ids.is_empty() {
        // A tenant without divisions: just the header row.
        let body = encode(true, []).map_err(|e| ApiError::Internal(Box::new(e)))?;
        return Ok((StatusCode::OK, headers, body).into_response());
    }
    let stream = rows(Cursor {
        store: state.store.clone(),
        tenant,
        query,
        first: true,
        done: false,
    });
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_defused() {
        assert_eq!(defuse("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(defuse("+1"), "'+1");
        assert_eq!(defuse("-2"), "'-2");
        assert_eq!(defuse("@x"), "'@x");
        assert_eq!(defuse("plain"), "plain");
        assert_eq!(defuse(""), "");
    }
}
