//! The store contract: the same cases, run against every store adapter.
//!
//! `cases.rs` holds the cases as `async fn(&dyn Store)` and the `contract_suite!` macro that
//! turns each into a `#[tokio::test]` for one adapter; `sqlite.rs` and `dynamodb.rs` each
//! invoke the macro with a way to make a fresh, empty store.

#[macro_use]
mod cases;
mod dynamodb;
mod sqlite;
