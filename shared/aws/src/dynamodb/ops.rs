//! The shapes every DynamoDB call of this store repeats, written once: a condition that
//! failed (a single write, or one item of a cancelled transaction), what a cancelled
//! transaction's reasons say (retry, or an unexpected failure), the pause between contending
//! rounds, a Query read over every page, and one page of a list of items keyed by id.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;

use std::collections::HashMap;

use portal_core::ports::{cursor, Page, StoreError, MAX_PAGE_SIZE};

use super::items::{s, Item};

/// The code of a cancellation reason whose condition did not hold.
pub(super) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// Whether a single write (PutItem, UpdateItem, DeleteItem) failed only because its
/// condition did not hold: an answer, not an error.
pub(super) fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// The cancellation reasons of a cancelled transaction (one per item, in order), or the
/// error itself when the transaction failed otherwise.
pub(super) fn cancellation(
    e: SdkError<TransactWriteItemsError>,
) -> Result<Vec<CancellationReason>, StoreError> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            Ok(c.cancellation_reasons().to_vec())
        }
        _ => Err(StoreError::backend("TransactWriteItems", e)),
    }
}

/// A transaction item's cancellation code that a later round can clear: no failure of its
/// own (another item cancelled the transaction), a conflicting transaction, or throttling.
pub(super) fn retryable(code: &str) -> bool {
    matches!(
        code,
        "None" | CONFLICT | "ThrottlingError" | "ProvisionedThroughputExceeded"
    )
}

/// The code of a transaction item that conflicted with another transaction.
pub(super) const CONFLICT: &str = "TransactionConflict";

/// The cancellation code of item `i` (`"None"` when it did not fail or is absent).
pub(super) fn reason_code(reasons: &[CancellationReason], i: usize) -> &str {
    reasons
        .get(i)
        .and_then(CancellationReason::code)
        .unwrap_or("None")
}

/// The `ALL_OLD` copy item `i`'s failed condition returned, if any.
pub(super) fn old_item(reasons: &[CancellationReason], i: usize) -> Option<&Item> {
    reasons
        .get(i)
        .and_then(CancellationReason::item)
        .filter(|m| !m.is_empty())
}

/// Every reason is one a later round can clear.
pub(super) fn all_retryable(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .all(|r| retryable(r.code().unwrap_or("None")))
}

/// A cancellation reason that is none of the expected ones.
#[derive(Debug, thiserror::Error)]
#[error("transaction cancelled: {0}")]
pub(super) struct Cancelled(pub String);

/// A transaction cancelled for reasons the caller did not expect, naming every code.
pub(super) fn unexpected(reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    StoreError::backend("TransactWriteItems", Cancelled(codes.join(",")))
}

/// A short random pause before the next round, so contending writers spread out.
pub(super) fn jitter(round: u32) -> std::time::Duration {
    use rand::Rng as _;
    let ceiling = 10u64 << round.min(5);
    std::time::Duration::from_millis(5 + rand::rng().random_range(0..ceiling))
}

/// Runs `query` over every page, handing each item to `each` in key order.
pub(super) async fn query_all(
    query: QueryFluentBuilder,
    mut each: impl FnMut(&Item) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut start: Option<Item> = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::backend("Query", e))?;
        for item in page.items() {
            each(item)?;
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(());
        }
    }
}

/// One page of the items of partition `pk` whose sort key is `prefix` then an id, in id
/// order, after the one of id `after` (an id decoded from a cursor of `tag`'s list). Reads
/// `limit + 1` items (continuing while DynamoDB stops a Query early), so a left-over item
/// tells that another page follows: `next_cursor` is `None` exactly when nothing does.
/// `id` names an item's id, for the cursor.
pub(super) async fn id_page<T>(
    query: QueryFluentBuilder,
    pk: String,
    prefix: &str,
    (tag, after): (&str, Option<&str>),
    limit: u32,
    decode: impl Fn(&Item) -> Result<T, StoreError>,
    id: impl Fn(&T) -> &str,
) -> Result<Page<T>, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
    // Every id character sorts below `~`; `\u{1}` sorts below all of them.
    let lower = match after {
        Some(a) => format!("{prefix}{a}\u{1}"),
        None => prefix.to_owned(),
    };
    let query = query
        .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
        .set_expression_attribute_values(Some(HashMap::from([
            (":pk".to_owned(), s(pk)),
            (":lo".to_owned(), s(lower)),
            (":hi".to_owned(), s(format!("{prefix}~"))),
        ])))
        .consistent_read(true);
    let mut items = Vec::with_capacity(limit + 1);
    let mut start: Option<Item> = None;
    loop {
        let page = query
            .clone()
            .limit((limit + 1 - items.len()) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::backend("Query", e))?;
        for item in page.items() {
            items.push(decode(item)?);
        }
        start = page.last_evaluated_key;
        if start.is_none() || items.len() > limit {
            break;
        }
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| cursor::encode(tag, id(i)))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// What one page of a filtered list Query may still read: its `max_examined` items (see
/// [`portal_core::ports::MAX_EXAMINED`]). `Limit` and `ScannedCount` count items read,
/// matched or not; `None`: read until the page is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadBudget(Option<usize>);

impl ReadBudget {
    pub(super) fn new(max_examined: Option<u32>) -> Self {
        Self(max_examined.map(|n| n.max(1) as usize))
    }

    /// The next Query's `Limit` when `wanted` more matches fill the page: without a filter
    /// every item read matches, so `wanted` (within the budget); with one, what the budget
    /// leaves (no `Limit` without a budget).
    pub(super) fn limit(self, filtered: bool, wanted: usize) -> Option<i32> {
        let n = match (filtered, self.0) {
            (false, Some(n)) => Some(wanted.min(n)),
            (false, None) => Some(wanted),
            (true, n) => n,
        };
        n.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Counts a Query's `ScannedCount` against the budget.
    pub(super) fn spend(&mut self, scanned: i32) {
        if let Some(n) = self.0.as_mut() {
            *n = n.saturating_sub(usize::try_from(scanned).unwrap_or(usize::MAX));
        }
    }

    /// Whether the page may read no more.
    pub(super) fn is_spent(self) -> bool {
        self.0 == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBudget;

    #[test]
    fn a_budget_limits_filtered_queries_and_runs_out() {
        let mut b = ReadBudget::new(Some(10));
        assert_eq!(b.limit(true, 3), Some(10));
        assert_eq!(b.limit(false, 3), Some(3));
        assert_eq!(b.limit(false, 30), Some(10));
        b.spend(4);
        assert_eq!(b.limit(true, 3), Some(6));
        assert!(!b.is_spent());
        b.spend(9);
        assert!(b.is_spent());
        let none = ReadBudget::new(None);
        assert_eq!((none.limit(true, 3), none.limit(false, 3)), (None, Some(3)));
        assert!(!none.is_spent());
        assert_eq!(ReadBudget::new(Some(0)).limit(true, 1), Some(1));
    }
}
