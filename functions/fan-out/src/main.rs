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
use portal_core::ports::{EventBus, SendMessage, SystemClock};
use portal_core::usecases::send::{
    handle, message_from_eventbridge, NoMailer, SendDeps, SendSettings,
};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();

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
        on_event(deps, bus, &event.payload).await
    }))
    .await
}

async fn on_event(deps: &SendDeps, bus: &dyn EventBus, event: &Value) -> Result<Value, Diagnostic> {
    let msg = message_from_eventbridge(event).map_err(|e| {
        tracing::error!(error = %e, "the event is not a send message");
        diagnostic("NotASendMessage", &e)
    })?;
    if !matches!(msg, SendMessage::FanOut { .. }) {
        tracing::warn!(
            kind = msg.detail_type(),
            campaign = %msg.campaign_id(),
            "not a fan-out message: acknowledged without action (check the rule's pattern)"
        );
        return Ok(json!({ "ignored": msg.detail_type() }));
    }
    handle(deps, bus, &msg).await.map_err(|e| {
        let d = diagnostic("SendFailed", &e);
        tracing::error!(error = %d.error_message, "fan-out step failed; Lambda will retry it");
        d
    })?;
    Ok(json!({ "done": msg.detail_type() }))
}

/// The error Lambda records for the event (and hands to the failure destination): a stable
/// type and the whole cause chain.
fn diagnostic(error_type: &str, e: &dyn std::error::Error) -> Diagnostic {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message,
    }
}
