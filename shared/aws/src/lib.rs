//! The AWS adapters: the ports of `portal_core` on AWS services, and the AWS message formats
//! events arrive in. AWS types never leave this crate.
//!
//! - [`dynamodb`]: the single-table store.
//! - [`ses`]: the SES v2 mailer (Raw sends, message tags, configuration set).
//! - [`eventbridge`]: the send bus, and the `Portal Registration` events
//!   (`portal_core::ports::RegistrationEvents`).
//! - [`scheduler`]: one EventBridge Scheduler schedule per recurring setting
//!   (`portal_core::usecases::recurring::Schedules`).
//! - [`cognito`]: logins' passwords in a Cognito user pool (`portal_core::ports::Identity`).
//! - [`sns`]: SNS message verification (signature, certificate host, topic allow-list).
//! - [`ses_events`]: SES event records (SNS or EventBridge) and what each says about an
//!   invitation.
//! - [`webhook`]: the SES event webhook (`portal_core::ports::EventWebhook`) and SES's
//!   EventBridge destination.
//! - [`secrets`]: the functions' secrets, read at cold start from SSM Parameter Store
//!   `SecureString` parameters.
//! - [`aws_metrics`]: an SDK interceptor counting AWS requests per operation.

pub mod aws_metrics;
pub mod cognito;
pub mod dynamodb;
pub mod eventbridge;
pub mod scheduler;
pub mod secrets;
pub mod ses;
pub mod ses_events;
pub mod sns;
pub mod webhook;

pub use cognito::CognitoIdentity;
pub use eventbridge::EventBridgeBus;
pub use scheduler::{EventBridgeSchedules, ScheduleTarget};
