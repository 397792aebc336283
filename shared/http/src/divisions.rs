//! `PUT /v1/divisions/{division_id}` (sync), `GET /v1/divisions` and
//! `GET /v1/divisions/filter-values` (managers).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use portal_core::domain::{
    Division, DivisionId, DivisionInput, Email, FilterField, FilterValues, SenderCheck,
};
use portal_core::usecases;
use portal_core::usecases::counts::FilterValueReport;

use super::auth::{perm, Authorized};
use super::error::ApiError;
use super::json::ApiJson;
use super::paging::{ItemPage, PageParams};
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

/// A division as the API shows it: with whether its sender may be used
/// (`sender_status`: `allowed`, `not_allowed`, or `no_settings` while the tenant has no
/// sender settings). A division whose sender is not allowed is kept, but nothing is sent
/// from it by default until the sender settings allow it.
#[derive(Debug, Serialize)]
pub struct DivisionView {
    #[serde(flatten)]
    pub division: Division,
    pub sender_status: SenderCheck,
}

async fn sender_settings(
    state: &AppState,
    tenant: &portal_core::domain::TenantId,
) -> Result<Option<portal_core::domain::SenderSettings>, ApiError> {
    Ok(state
        .store
        .get_sender_settings(tenant)
        .await
        .map_err(usecases::UseCaseError::from)?)
}

/// Creates or updates a division's name and sender address. A sender the tenant's sender
/// settings do not allow is accepted (the tenant's systems sync what they hold) and shown
/// as such in `sender_status`.
pub async fn put(
    caller: Authorized<perm::SyncWrite>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<DivisionBody>,
) -> Result<Json<DivisionView>, ApiError> {
    let id = path_id("division_id", path, DivisionId::parse)?;
    let email_from = Email::parse(&body.email_from)
        .map_err(|e| ApiError::Unprocessable(format!("email_from: {e}")))?;
    let input = DivisionInput::new(id, body.name, email_from)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?
        .synced_at(state.clock.now());
    let division =
        usecases::sync::put_division(state.store.as_ref(), &caller.tenant, input).await?;
    let settings = sender_settings(&state, &caller.tenant).await?;
    if !SenderCheck::of(settings.as_ref(), &division.email_from).is_allowed() {
        tracing::warn!(tenant = %caller.tenant, division = %division.division_id,
            sender = %division.email_from, "division synced with a sender that is not allowed");
    }
    Ok(Json(DivisionView {
        sender_status: SenderCheck::of(settings.as_ref(), &division.email_from),
        division,
    }))
}

/// `GET /v1/divisions?cursor=&limit=`: a page of the caller's tenant's divisions, ordered
/// by id.
pub async fn list(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ItemPage<DivisionView>>, ApiError> {
    let (cursor, limit) = PageParams::of(query)?;
    let page = state
        .store
        .list_divisions_page(&caller.tenant, cursor.as_deref(), limit)
        .await
        .map_err(usecases::UseCaseError::from)?;
    let settings = sender_settings(&state, &caller.tenant).await?;
    Ok(Json(ItemPage {
        items: page
            .items
            .into_iter()
            .map(|division| DivisionView {
                sender_status: SenderCheck::of(settings.as_ref(), &division.email_from),
                division,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One value of a list filter, with the number of contacts having it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// The values of each list filter, sorted by value; the field names are those of `filters`
/// in `POST /v1/invitations/counts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldValues {
    pub account_class: Vec<ValueCount>,
    pub bill_group: Vec<ValueCount>,
    pub account_source: Vec<ValueCount>,
    pub site_source: Vec<ValueCount>,
}

impl From<&FilterValues> for FieldValues {
    fn from(v: &FilterValues) -> Self {
        let list = |field: FilterField| {
            v.values(field)
                .map(|(value, count)| ValueCount {
                    value: value.to_owned(),
                    count,
                })
                .collect()
        };
        Self {
            account_class: list(FilterField::AccountClass),
            bill_group: list(FilterField::BillGroup),
            account_source: list(FilterField::AccountSource),
            site_source: list(FilterField::SiteSource),
        }
    }
}

/// One division's values.
#[derive(Debug, Clone, Serialize)]
pub struct DivisionValues {
    pub division_id: DivisionId,
    #[serde(flatten)]
    pub values: FieldValues,
}

/// The answer of `GET /v1/divisions/filter-values`.
#[derive(Debug, Clone, Serialize)]
pub struct FilterValuesView {
    pub divisions: Vec<DivisionValues>,
    /// The divisions' values merged.
    pub all: FieldValues,
}

impl From<FilterValueReport> for FilterValuesView {
    fn from(r: FilterValueReport) -> Self {
        Self {
            divisions: r
                .divisions
                .iter()
                .map(|(d, v)| DivisionValues {
                    division_id: d.clone(),
                    values: v.into(),
                })
                .collect(),
            all: (&r.all).into(),
        }
    }
}

/// The divisions a `?division_id=a&division_id=b` query names (the parameter repeated, as
/// OpenAPI's default `form` style writes an array; an empty value is ignored, as elsewhere).
/// A query that does not parse or names another parameter is a 400; a value that is not an
/// id a 422 (as `GET /v1/campaigns?division_id=` answers).
fn named_divisions(raw: Option<&str>) -> Result<Vec<DivisionId>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("the query string does not parse: {e}")))?;
    // Every value counts against the limit, empty ones included (as `maxItems` counts them).
    let max = usecases::counts::MAX_DIVISIONS_PER_QUERY;
    if pairs.len() > max {
        return Err(ApiError::Unprocessable(format!(
            "division_id: at most {max} values"
        )));
    }
    let mut named = Vec::new();
    for (key, value) in pairs {
        if key != "division_id" {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{key}`: the only one is `division_id`"
            )));
        }
        if value.is_empty() {
            continue;
        }
        let id = DivisionId::parse(value)
            .map_err(|e| ApiError::Unprocessable(format!("division_id: {e}")))?;
        named.push(id);
    }
    Ok(named)
}

/// `GET /v1/divisions/filter-values`: for each named division (every division of the
/// tenant when none is named) and for all of them together, the distinct values of account
/// class, bill group, account source and site source with their number of contacts. An
/// unknown division, or another tenant's, is a 404.
pub async fn filter_values(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<FilterValuesView>, ApiError> {
    let named = named_divisions(raw.as_deref())?;
    let report =
        usecases::counts::filter_values(state.store.as_ref(), &caller.tenant, named).await?;
    Ok(Json(report.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &str) -> Result<Vec<String>, ApiError> {
        named_divisions(Some(raw)).map(|v| v.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn more_than_500_values_are_refused_even_empty_ones() {
        let empties = vec!["division_id="; 501].join("&");
        assert!(matches!(ids(&empties), Err(ApiError::Unprocessable(_))));
        let named = vec!["division_id=a"; 501].join("&");
        assert!(matches!(ids(&named), Err(ApiError::Unprocessable(_))));
        assert_eq!(
            ids(&vec!["division_id="; 500].join("&")).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn division_ids_come_from_the_repeated_parameter() {
        assert_eq!(ids("").unwrap(), Vec::<String>::new());
        assert_eq!(named_divisions(None).unwrap(), vec![]);
        assert_eq!(ids("division_id=a").unwrap(), ["a"]);
        assert_eq!(
            ids("division_id=oak-hills&division_id=b&division_id=").unwrap(),
            ["oak-hills", "b"]
        );
        assert!(matches!(ids("division=a"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            ids("division_id=a,b"),
            Err(ApiError::Unprocessable(_))
        ));
        // Percent-decoding is lenient: what is left is not an id.
        for bad in ["division_id=%ZZ", "division_id=%FF", "division_id=a%23b"] {
            assert!(matches!(ids(bad), Err(ApiError::Unprocessable(_))), "{bad}");
        }
        assert_eq!(ids("division_id=a%2Db").unwrap(), ["a-b"]);
    }
}
