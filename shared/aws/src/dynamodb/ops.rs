//! The shapes every DynamoDB call of this store repeats, written once: a condition that
//! failed (a single write, or one item of a cancelled transaction) and a Query read over
//! every page.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;

use portal_core::ports::StoreError;

use super::items::Item;

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
