//! What every cursor-paged list of the API shares: the page size when a request names none,
//! the check of `limit`, the query of a list that takes only `cursor` and `limit`, and the
//! `{items, next_cursor}` shape of a page.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::{Deserialize, Serialize};

use portal_core::ports::MAX_PAGE_SIZE;

use super::error::ApiError;

/// Page size when the request names none.
pub const DEFAULT_LIMIT: u32 = 50;

/// A page's `limit`: [`DEFAULT_LIMIT`] when absent, else 1..=[`MAX_PAGE_SIZE`] or `refuse`
/// naming the range. (The campaign lists answer 422; the later lists of sign-up requests and
/// recurring runs answer 400.)
pub(crate) fn page_limit(
    raw: Option<u32>,
    refuse: fn(String) -> ApiError,
) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(refuse(format!("limit: {n} is outside 1..={MAX_PAGE_SIZE}"))),
    }
}

/// The query of a list read in pages and nothing else (`GET /v1/divisions`,
/// `GET /v1/templates`): a bad `limit` or an unknown parameter is a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// The parameters of `query`, checked: (cursor, limit).
    pub(crate) fn of(
        query: Result<Query<PageParams>, QueryRejection>,
    ) -> Result<(Option<String>, u32), ApiError> {
        let Query(p) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let limit = page_limit(p.limit, ApiError::BadRequest)?;
        Ok((p.cursor.filter(|c| !c.is_empty()), limit))
    }
}

/// A page of a list: `next_cursor` continues it, and is `null` on the last page.
#[derive(Debug, Serialize)]
pub struct ItemPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A cursor to continue from: absent and empty both mean the first page.
pub(crate) fn first_page(cursor: &Option<String>) -> Option<&str> {
    cursor.as_deref().filter(|c| !c.is_empty())
}
