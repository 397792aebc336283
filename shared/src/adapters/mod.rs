//! Adapters: the ports implemented for real backends.
//!
//! - [`sqlite`]: the embedded store used on one machine (and by the local server).
//! - [`dynamodb`]: the single-table DynamoDB store used on AWS.

pub mod dynamodb;
pub mod sqlite;
