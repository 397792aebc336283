//! Portal Invitations: the library every function and the local server are built from.
//!
//! # Layout
//!
//! - [`domain`]: parsed types (ids, emails, accounts, contacts, filters) and pure rules
//!   (classification for the 24-hour rule, counts, recipient groups).
//! - [`ports`]: the traits the use cases need — store (split by capability) and clock.
//! - [`adapters`]: the ports implemented on SQLite (one machine) and DynamoDB (AWS).
//! - [`usecases`]: sync, count loading, recipient lists, campaigns and their send, SES events
//!   to invitation categories (`events`, `webhook`) — written once, against the ports.
//! - [`sns`]: SNS message verification (signature, certificate host, topic allow-list).
//! - [`ses_events`]: SES event records (SNS or EventBridge) and what each says about an
//!   invitation.
//! - [`telemetry`]: the Lambda functions' JSON logging.
//! - [`mail`]: an email rendered once as a complete MIME message (what every mailer sends).
//! - [`demo`]: deterministic demo and benchmark data (the local server's `--demo` tenant).
//! - [`http`]: the axum router, auth (JWT), problem+json errors; runs unchanged under
//!   `lambda_http` and in the local server.

pub mod adapters;
pub mod demo;
pub mod domain;
pub mod http;
pub mod mail;
pub mod ports;
pub mod ses_events;
pub mod sns;
pub mod telemetry;
pub mod usecases;
