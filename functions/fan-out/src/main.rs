//! Lambda `fan-out`: one step of a campaign's fan-out per event — claims a page of its
//! recipients under the 24-hour rule and publishes their delivery batches with the next
//! page's fan-out, through `portal_core::usecases::send::handle` on the DynamoDB store and
//! the EventBridge bus.
//!
//! Triggered by the rule routing `Campaign Fan-Out` events from the send bus. Any other
//! message is logged and acknowledged (a routing mistake, which retrying cannot fix). An
//! error is returned to Lambda so its asynchronous retries, then the failure destination,
//! take the event again: every step is idempotent.
//!
//! Environment: `TABLE_NAME`, `EVENT_BUS_NAME`, and the send settings read by
//! `portal_core::usecases::send::SendSettings::from_env` (`TOKEN_SECRET`,
//! `UNSUBSCRIBE_SECRET`, `PUBLIC_URL`, optional `PAGE_SIZE`, `TOKEN_TTL_DAYS`, …).

use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::adapters::EventBridgeBus;
use portal_core::ports::{SystemClock, DETAIL_TYPE_FAN_OUT};
use portal_core::usecases::send::{on_event, EventError, NoMailer, SendSettings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_core::telemetry::init_lambda_logging();

    let table =
        std::env::var("TABLE_NAME").map_err(|_| "missing environment variable TABLE_NAME")?;
    let bus_name = std::env::var("EVENT_BUS_NAME")
        .map_err(|_| "missing environment variable EVENT_BUS_NAME")?;
    let settings = SendSettings::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = settings.deps(
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table)),
        // Fan-out renders and sends nothing; its role may not call SES.
        Arc::new(NoMailer),
        Arc::new(SystemClock),
    );
    let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&aws), bus_name);
    let (deps, bus) = (&deps, &bus);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        on_event(deps, bus, &event.payload, DETAIL_TYPE_FAN_OUT)
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
