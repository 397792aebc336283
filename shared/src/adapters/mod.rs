//! Adapters: the ports implemented for real backends.
//!
//! - [`sqlite`]: the embedded store used on one machine (and by the local server).
//! - [`dynamodb`]: the single-table DynamoDB store used on AWS.
//! - [`aws_metrics`]: an SDK interceptor counting AWS requests per operation.

pub mod aws_metrics;
pub mod dynamodb;
pub mod sqlite;
