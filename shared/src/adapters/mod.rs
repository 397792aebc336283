//! Adapters: the ports implemented for real backends.
//!
//! - [`sqlite`]: the embedded store used on one machine (and by the local server).
//! - [`dynamodb`]: the single-table DynamoDB store used on AWS.
//! - [`outbox`]: the local mailer, writing each message as an `.eml` file.
//! - [`ses`]: the SES v2 mailer (Raw sends, message tags, configuration set).
//! - [`aws_metrics`]: an SDK interceptor counting AWS requests per operation.

pub mod aws_metrics;
pub mod dynamodb;
pub mod eventbridge;
pub mod local_bus;
pub mod outbox;
pub mod ses;
pub mod sqlite;

pub use eventbridge::EventBridgeBus;
