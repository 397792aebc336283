//! Lambda `ses-events`: SES's email events, however they arrive, and campaign recounts, on
//! the DynamoDB store. One function takes three kinds of invocation
//! ([`portal_core::usecases::webhook::Invocation`]):
//!
//! - an API Gateway request for `POST /v1/ses-events` (SNS's HTTPS subscription; public,
//!   believed only when the SNS signature verifies), served by the library's router;
//! - an EventBridge event from SES's EventBridge destination (rule on the default bus);
//! - a direct invocation `{"recount": {"tenant": "…", "campaign_id": "…", "fix": false}}`,
//!   answering the stored and recounted counters (`aws lambda invoke`).
//!
//! A store failure is returned as an error (SNS gets a 500 and retries; EventBridge's async
//! invocation retries, then the dead-letter queue): applying an event twice changes nothing.
//!
//! Environment: `TABLE_NAME`, `SNS_TOPIC_ARNS` (allow-list), optional `SNS_CERT_DIR` and
//! `RAW_EVENTS_SECRET` (see `portal_core::usecases::webhook::SesWebhook::from_env`).

use std::sync::Arc;

use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Service as _};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::http::{auth::Verifier, router_with, AppState};
use portal_core::ports::SystemClock;
use portal_core::usecases::webhook::{self, Invocation, SesWebhook};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_core::telemetry::init_lambda_logging();

    let table =
        std::env::var("TABLE_NAME").map_err(|_| "missing environment variable TABLE_NAME")?;
    let aws = aws_config::load_from_env().await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table));
    // The webhook is the function's only route; it needs no bearer token.
    let state = AppState::new(store.clone(), Arc::new(SystemClock), Verifier::deny_all())
        .with_ses_webhook(SesWebhook::from_env(None)?);
    let http = Adapter::from(router_with(state, |method, path| {
        method == "POST" && path == "/v1/ses-events"
    }));
    let (store, http) = (&store, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = (event.payload, event.context);
        match Invocation::of(&payload).map_err(|e| diagnostic("InvalidRecount", &e))? {
            Invocation::EventBridge => webhook::on_eventbridge(store.as_ref(), &payload)
                .await
                .map_err(|e| diagnostic("StoreError", &e))
                .and_then(|o| to_json(&o)),
            Invocation::Recount(req) => webhook::recount(store.as_ref(), &req)
                .await
                .map_err(|e| diagnostic("StoreError", &e))
                .and_then(|r| to_json(&r)),
            Invocation::Http => {
                let request: LambdaRequest = serde_json::from_value(payload)
                    .map_err(|e| diagnostic("UnsupportedEvent", &e))?;
                let response = http
                    .clone()
                    .call(LambdaEvent::new(request, context))
                    .await
                    .map_err(|e| diagnostic("HttpError", &e))?;
                to_json(&response)
            }
        }
    }))
    .await
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Diagnostic> {
    serde_json::to_value(value).map_err(|e| diagnostic("SerializationError", &e))
}

/// What Lambda records for an invocation the function could not take: the error's chain.
fn diagnostic(error_type: &str, e: &(dyn std::error::Error + 'static)) -> Diagnostic {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message,
    }
}
