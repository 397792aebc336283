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
