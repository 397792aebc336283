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
use portal_core::ports::{EventBus, SendMessage, SystemClock};
use portal_core::usecases::send::{
    handle, message_from_eventbridge, NoBus, SendDeps, SendSettings,
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
        on_event(deps, &NoBus, &event.payload).await
    }))
    .await
}

async fn on_event(deps: &SendDeps, bus: &dyn EventBus, event: &Value) -> Result<Value, Diagnostic> {
    let msg = message_from_eventbridge(event).map_err(|e| {
        tracing::error!(error = %e, "the event is not a send message");
        diagnostic("NotASendMessage", &e)
    })?;
    if !matches!(msg, SendMessage::Deliver { .. }) {
        tracing::warn!(
            kind = msg.detail_type(),
            campaign = %msg.campaign_id(),
            "not a delivery message: acknowledged without action (check the rule's pattern)"
        );
        return Ok(json!({ "ignored": msg.detail_type() }));
    }
    let report = handle(deps, bus, &msg).await.map_err(|e| {
        let d = diagnostic("SendFailed", &e);
        tracing::error!(error = %d.error_message, "delivery failed; Lambda will retry it");
        d
    })?;
    tracing::info!(
        sent = report.sent,
        failed = report.failed,
        "batch delivered"
    );
    Ok(json!({ "sent": report.sent, "failed": report.failed }))
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
