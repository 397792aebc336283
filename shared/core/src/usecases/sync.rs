//! Sync from the company's systems: divisions, accounts with contacts, deletions.

use std::collections::HashSet;

use crate::domain::{Account, AccountId, Division, DivisionInput, TenantId};
use crate::ports::{Store, SyncReport};

use super::UseCaseError;

/// Accounts written per store call: bounds memory and request size.
pub const SYNC_CHUNK: usize = 500;

/// Most accounts one sync request may carry.
pub const MAX_ACCOUNTS_PER_SYNC: usize = 50_000;

#[tracing::instrument(skip_all, fields(tenant = %tenant, division = %division.division_id))]
pub async fn put_division(
    store: &dyn Store,
    tenant: &TenantId,
    division: DivisionInput,
) -> Result<Division, UseCaseError> {
    Ok(store.put_division(tenant, &division).await?)
}

/// Upserts accounts. Every account's division must exist for this tenant, checked before
/// anything is written; then accounts are written in chunks of [`SYNC_CHUNK`]. The upsert is
/// idempotent, so a failed request is safely retried whole.
#[tracing::instrument(skip_all, fields(tenant = %tenant, accounts = accounts.len()))]
pub async fn upsert_accounts(
    store: &dyn Store,
    tenant: &TenantId,
    accounts: &[Account],
) -> Result<SyncReport, UseCaseError> {
    let known: HashSet<_> = store
        .list_divisions(tenant)
        .await?
        .into_iter()
        .map(|d| d.division_id)
        .collect();
    if let Some(a) = accounts.iter().find(|a| !known.contains(&a.division_id)) {
        return Err(UseCaseError::NotFound {
            kind: "division",
            id: a.division_id.to_string(),
        });
    }
    let mut total = SyncReport::default();
    for chunk in accounts.chunks(SYNC_CHUNK) {
        let r = store.upsert_accounts(tenant, chunk).await?;
        total.accounts += r.accounts;
        total.contacts += r.contacts;
        total.contacts_removed += r.contacts_removed;
    }
    Ok(total)
}

#[tracing::instrument(skip_all, fields(tenant = %tenant, account = %id))]
pub async fn delete_account(
    store: &dyn Store,
    tenant: &TenantId,
    id: &AccountId,
) -> Result<(), UseCaseError> {
    if store.delete_account(tenant, id).await? {
        Ok(())
    } else {
        Err(UseCaseError::NotFound {
            kind: "account",
            id: id.to_string(),
        })
    }
}
