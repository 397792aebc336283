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

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use portal_core::domain::{ContactRecord, TenantId};
use portal_core::ports::{ListQuery, Page, StoreError, MAX_PAGE_SIZE};
use portal_core::usecases::counts::{resolve_list, ListRequest};

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
fn encode(header: bool, rows: &[ContactRecord]) -> Result<Bytes, csv::Error> {
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
pub(crate) enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// A list streamed as CSV, one store page at a time: `fetch(cursor)` reads a page (`None`:
/// the first), `encode(first, items)` turns it into bytes (`first`: with the header row).
/// Memory stays one page whatever the list's size. A store failure mid-stream is logged and
/// ends the body with an error, so the client sees a failed download, not a short file.
pub(crate) fn paged<T, F, Fut>(
    fetch: F,
    encode: fn(bool, &[T]) -> Result<Bytes, csv::Error>,
) -> impl Stream<Item = Result<Bytes, ExportError>> + Send
where
    T: Send + 'static,
    F: FnMut(Option<String>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T>, StoreError>> + Send,
{
    stream::unfold(
        (fetch, None::<String>, true, false),
        move |(mut fetch, cursor, first, done)| async move {
            if done {
                return None;
            }
            match fetch(cursor).await {
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed mid-stream");
                    Some((Err(ExportError::from(e)), (fetch, None, first, true)))
                }
                Ok(page) => {
                    let chunk = encode(first, &page.items).map_err(ExportError::from);
                    let done = page.next_cursor.is_none();
                    Some((chunk, (fetch, page.next_cursor, false, done)))
                }
            }
        },
    )
}

/// The headers of a CSV download named `filename`.
pub(crate) fn csv_headers(filename: &str) -> [(header::HeaderName, HeaderValue); 2] {
    let disposition = format!("attachment; filename=\"{filename}\"");
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition)
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
    ]
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
    let headers = csv_headers(&format!("recipients-{}.csv", group.as_str()));
    if query.contacts.division_ids.is_empty() {
        // A tenant without divisions: just the header row.
        let body = encode(true, &[]).map_err(|e| ApiError::Internal(Box::new(e)))?;
        return Ok((StatusCode::OK, headers, body).into_response());
    }
    let store = state.store.clone();
    let stream = paged(
        move |cursor| {
            let (store, tenant) = (store.clone(), tenant.clone());
            let query = ListQuery {
                cursor,
                ..query.clone()
            };
            async move { store.list_contacts(&tenant, &query).await }
        },
        encode,
    );
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
