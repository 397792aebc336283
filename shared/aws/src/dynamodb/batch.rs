//! Batched reads and writes within DynamoDB's limits, whatever an emulator tolerates:
//! BatchWriteItem takes at most 25 requests and BatchGetItem at most 100 keys, and both may
//! hand back unprocessed work under throttling, which is retried with exponential back-off.
//! Chunks run concurrently, a bounded number at a time.

use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt, TryStreamExt};

use super::items::Item;
use portal_core::ports::StoreError;

/// Most write requests in one BatchWriteItem call (AWS limit).
pub(super) const MAX_BATCH_WRITE: usize = 25;
/// Most keys in one BatchGetItem call (AWS limit).
pub(super) const MAX_BATCH_GET: usize = 100;
/// Batch calls in flight at once per store operation.
pub(super) const CONCURRENCY: usize = 8;
/// Attempts at a batch before giving up on its unprocessed remainder.
const MAX_ATTEMPTS: u32 = 8;

/// DynamoDB kept returning unprocessed items (sustained throttling).
#[derive(Debug, thiserror::Error)]
#[error("{0} items still unprocessed after {MAX_ATTEMPTS} attempts")]
struct Unprocessed(usize);

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25u64 << attempt.min(6))
}

pub(super) fn put(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::backend("BatchWriteItem", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub(super) fn delete(key: Item) -> Result<WriteRequest, StoreError> {
    let del = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| StoreError::backend("BatchWriteItem", e))?;
    Ok(WriteRequest::builder().delete_request(del).build())
}

/// Writes every request. Keys must be distinct (DynamoDB rejects a batch naming one twice).
pub(super) async fn write_all(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    let chunks: Vec<Vec<WriteRequest>> = requests
        .chunks(MAX_BATCH_WRITE)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    futures::stream::iter(chunks)
        .map(|chunk| write_chunk(client, table, chunk))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn write_chunk(
    client: &Client,
    table: &str,
    mut chunk: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    for attempt in 0..MAX_ATTEMPTS {
        let out = client
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .map_err(|e| StoreError::backend("BatchWriteItem", e))?;
        chunk = out
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        if chunk.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            left = chunk.len(),
            attempt,
            "BatchWriteItem left items unprocessed"
        );
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(StoreError::backend(
        "BatchWriteItem",
        Unprocessed(chunk.len()),
    ))
}

/// Reads the items at `keys` (missing ones are simply absent from the result), strongly
/// consistent, optionally projected. Duplicate keys are not allowed.
pub(super) async fn get_all(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    projection: Option<(String, std::collections::HashMap<String, String>)>,
) -> Result<Vec<Item>, StoreError> {
    let chunks: Vec<Vec<Item>> = keys.chunks(MAX_BATCH_GET).map(<[Item]>::to_vec).collect();
    let pages: Vec<Vec<Item>> = futures::stream::iter(chunks)
        .map(|chunk| get_chunk(client, table, chunk, projection.clone()))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

async fn get_chunk(
    client: &Client,
    table: &str,
    chunk: Vec<Item>,
    projection: Option<(String, std::collections::HashMap<String, String>)>,
) -> Result<Vec<Item>, StoreError> {
    let (expr, names) = projection.unzip();
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(chunk))
        .consistent_read(true)
        .set_projection_expression(expr)
        .set_expression_attribute_names(names)
        .build()
        .map_err(|e| StoreError::backend("BatchGetItem", e))?;
    let mut found = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let mut out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| StoreError::backend("BatchGetItem", e))?;
        if let Some(items) = out.responses.as_mut().and_then(|r| r.remove(table)) {
            found.extend(items);
        }
        match out.unprocessed_keys.and_then(|mut u| u.remove(table)) {
            Some(rest) if !rest.keys.is_empty() => {
                tracing::debug!(
                    left = rest.keys.len(),
                    attempt,
                    "BatchGetItem left keys unprocessed"
                );
                request = rest;
                tokio::time::sleep(backoff(attempt)).await;
            }
            _ => return Ok(found),
        }
    }
    Err(StoreError::backend("BatchGetItem", Unprocessed(0)))
}
