//! Count loading and recipient lists.

use crate::domain::{ContactRecord, DomainError, FilterValues};
use crate::domain::{Counts, DivisionId, Filters, Group, TenantId};
use crate::ports::{Clock, ContactQuery, ListQuery, Page, Store, MAX_EXAMINED, MAX_PAGE_SIZE};

use super::UseCaseError;

/// Most divisions one request may name.
pub const MAX_DIVISIONS_PER_QUERY: usize = 500;

/// The divisions and filters a manager picked.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Empty = every division of the tenant.
    pub division_ids: Vec<DivisionId>,
    pub filters: Filters,
    pub limit_to_uninvited: bool,
}

/// Resolves a selection into a store query: "all divisions" is expanded, named divisions
/// must exist for this tenant.
pub async fn resolve(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    selection: Selection,
) -> Result<ContactQuery, UseCaseError> {
    let filters = selection.filters.validate()?;
    let division_ids =
        resolve_divisions(store, tenant, selection.division_ids, "division_ids").await?;
    Ok(ContactQuery {
        division_ids,
        filters,
        limit_to_uninvited: selection.limit_to_uninvited,
        now: clock.now(),
    })
}

/// The divisions a request names, sorted and without repeats, or every division of the
/// tenant (ordered by id) when it names none. At most [`MAX_DIVISIONS_PER_QUERY`] may be
/// named (`field` says where, in the refusal); each must exist for this tenant, or the answer
/// is a 404 (another tenant's division looks exactly like a missing one).
pub async fn resolve_divisions(
    store: &dyn Store,
    tenant: &TenantId,
    named: Vec<DivisionId>,
    field: &'static str,
) -> Result<Vec<DivisionId>, UseCaseError> {
    if named.len() > MAX_DIVISIONS_PER_QUERY {
        return Err(DomainError::InvalidField {
            field,
            reason: format!("at most {MAX_DIVISIONS_PER_QUERY} divisions"),
        }
        .into());
    }
    let existing = store.list_divisions(tenant).await?;
    if named.is_empty() {
        return Ok(existing.into_iter().map(|d| d.division_id).collect());
    }
    let mut wanted = named;
    wanted.sort();
    wanted.dedup();
    for id in &wanted {
        if !existing.iter().any(|d| &d.division_id == id) {
            return Err(UseCaseError::NotFound {
                kind: "division",
                id: id.to_string(),
            });
        }
    }
    Ok(wanted)
}

/// The values the list filters can take, per division and over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterValueReport {
    /// Each division asked for (all of the tenant's when none was named), ordered by id.
    pub divisions: Vec<(DivisionId, FilterValues)>,
    /// The divisions' values merged: what a selection of all of them offers.
    pub all: FilterValues,
}

/// `GET /v1/divisions/filter-values`: the distinct values of account class, bill group,
/// account source and site source among the contacts of each division, with their number of
/// contacts. Divisions are named and checked as in a count (`division_id` in the refusal).
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn filter_values(
    store: &dyn Store,
    tenant: &TenantId,
    division_ids: Vec<DivisionId>,
) -> Result<FilterValueReport, UseCaseError> {
    let divisions = resolve_divisions(store, tenant, division_ids, "division_id").await?;
    if divisions.is_empty() {
        return Ok(FilterValueReport::default());
    }
    let values = store.filter_values(tenant, &divisions).await?;
    if values.len() != divisions.len() {
        return Err(UseCaseError::Store(crate::ports::StoreError::backend(
            "filter_values",
            WrongLength {
                asked: divisions.len(),
                got: values.len(),
            },
        )));
    }
    let mut all = FilterValues::default();
    for v in &values {
        all.merge(v);
    }
    Ok(FilterValueReport {
        divisions: divisions.into_iter().zip(values).collect(),
        all,
    })
}

/// A store answered `filter_values` with another number of divisions than it was asked:
/// an adapter bug, never the caller's.
#[derive(Debug, thiserror::Error)]
#[error("asked for the filter values of {asked} divisions, got {got}")]
struct WrongLength {
    asked: usize,
    got: usize,
}

/// `POST /v1/invitations/counts`.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn load_counts(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    selection: Selection,
) -> Result<Counts, UseCaseError> {
    let query = resolve(store, clock, tenant, selection).await?;
    if query.division_ids.is_empty() {
        return Ok(Counts::default());
    }
    Ok(store.count_contacts(tenant, &query).await?)
}

/// One page of `POST /v1/invitations/recipients`.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub selection: Selection,
    pub group: Group,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Validates a list request into a store query.
pub async fn resolve_list(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    req: ListRequest,
) -> Result<ListQuery, UseCaseError> {
    let limit = req.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(DomainError::InvalidField {
            field: "limit",
            reason: format!("must be between 1 and {MAX_PAGE_SIZE}"),
        }
        .into());
    }
    let search = crate::domain::search::needle(&req.q.unwrap_or_default());
    if search.chars().count() > 200 {
        return Err(DomainError::InvalidField {
            field: "q",
            reason: "must be at most 200 characters".into(),
        }
        .into());
    }
    let contacts = resolve(store, clock, tenant, req.selection).await?;
    Ok(ListQuery {
        contacts,
        group: req.group,
        search,
        cursor: req.cursor,
        limit,
        max_examined: Some(MAX_EXAMINED),
    })
}

/// `POST /v1/invitations/recipients`, one page.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn list_recipients(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    req: ListRequest,
) -> Result<Page<ContactRecord>, UseCaseError> {
    let query = resolve_list(store, clock, tenant, req).await?;
    if query.contacts.division_ids.is_empty() {
        return Ok(Page {
            items: vec![],
            next_cursor: None,
        });
    }
    Ok(store.list_contacts(tenant, &query).await?)
}
