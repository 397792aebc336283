//! What every Lambda function shares, so that each `functions/<job>/src/main.rs` is a short
//! composition root: read the configuration, build the adapters, run.
//!
//! - [`config`]: typed configuration read once at cold start ([`config::Env`],
//!   [`config::SendSettings`], `TABLE_NAME`, the console's sign-in settings); a missing
//!   variable fails init by name.
//! - [`telemetry`]: JSON logs on stdout, one object per line.
//! - [`diagnostic`]: an error and its cause chain as the `Diagnostic` Lambda records.
//! - [`eventbridge`]: the envelope a send message arrives in and the send functions' body.
//! - [`invocation`]: routing a function that takes several kinds of invocation (HTTP,
//!   EventBridge, direct, a recurring setting's schedule), HTTP included through the same
//!   axum router.
//! - [`null`]: the bus and mailer of a process whose role may not publish or send, and the
//!   store of one that holds no data (the console).

pub mod config;
pub mod diagnostic;
pub mod eventbridge;
pub mod invocation;
pub mod null;
pub mod secrets;
pub mod telemetry;

pub use config::{table_name, Env, SendSettings, SettingsError};
pub use diagnostic::diagnostic;
pub use eventbridge::{message_from_eventbridge, on_event, EnvelopeError, EventError};
pub use invocation::{Invocation, ScheduledRun};
pub use null::{NoBus, NoMailer, NoStore};
pub use telemetry::init_lambda_logging;
