//! Lambda `delivery`: sends one batch of a campaign's invitations through SES v2 per event
//! (Raw content, message tags, the configuration set) and records each outcome, through
//! `portal_core::usecases::send::handle` on the DynamoDB store.
//!
//! Triggered by the rule routing `Campaign Delivery` events from the send bus. Any other
//! message is logged and acknowledged (a routing mistake, which retrying cannot fix). An
//! error is returned to Lambda so its asynchronous retries, then the failure destination,
//! take the event again: delivery skips invitations already sent or failed.
//!
//! `MAX_SEND_RATE` is enforced per process: the account-wide rate is at most
//! `MAX_SEND_RATE` × the function's reserved concurrency (see `template.yaml`).
//!
//! Environment: `TABLE_NAME`, `SES_CONFIGURATION_SET` (optional), and the send settings read
//! by `portal_core::usecases::send::SendSettings::from_env` (`TOKEN_SECRET`,
//! `UNSUBSCRIBE_SECRET`, `PUBLIC_URL`, optional `MAX_SEND_RATE`, `OUTCOME_FLUSH`,
//! `FAILURE_THRESHOLD`, …).

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::adapters::ses::SesMailer;
use portal_core::ports::{SystemClock, DETAIL_TYPE_DELIVER};
use portal_core::usecases::send::{on_event, EventError, NoBus, SendSettings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_core::telemetry::init_lambda_logging();

    let table =
        std::env::var("TABLE_NAME").map_err(|_| "missing environment variable TABLE_NAME")?;
    let configuration_set = std::env::var("SES_CONFIGURATION_SET")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let settings = SendSettings::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = settings.deps(
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table)),
        Arc::new(SesMailer::new(
            aws_sdk_sesv2::Client::new(&aws),
            configuration_set,
        )),
        Arc::new(SystemClock),
    );
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // A delivery publishes nothing; its role may not call events:PutEvents.
        on_event(deps, &NoBus, &event.payload, DETAIL_TYPE_DELIVER)
            .await
            .map_err(diagnostic)
    }))
    .await
}

/// What Lambda records for an event the function could not take.
fn diagnostic(e: EventError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_owned(),
        error_message: e.chain(),
    }
}
