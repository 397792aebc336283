//! Lambda `ses-events`: what happens to mail after it is sent — SES's email events however
//! they arrive, the recipients' one-click unsubscribe, and campaign recounts — on the
//! DynamoDB store. It serves no manager route. One function takes three kinds of invocation
//! ([`Invocation`]):
//!
//! - an API Gateway request for the public routes of `Job::Events`: `POST /v1/ses-events`
//!   (SNS's HTTPS subscription; believed only when the SNS signature verifies) and
//!   `GET`/`POST /v1/unsubscribe` (a signed token in the link);
//! - an EventBridge event from SES's EventBridge destination (rule on the default bus);
//! - a direct invocation `{"recount": {"tenant": "…", "campaign_id": "…", "fix": false}}`,
//!   answering the stored and recounted counters (`aws lambda invoke`).
//!
//! A store failure is returned as an error (SNS gets a 500 and retries; EventBridge's async
//! invocation retries, then the dead-letter queue): applying an event twice changes nothing.
//!
//! Environment: `TABLE_NAME`, `UNSUBSCRIBE_SECRET_PARAMETER`, `SNS_TOPIC_ARNS` (allow-list),
//! optional `SNS_CERT_DIR`, `RAW_EVENTS_SECRET_PARAMETER`, `SNS_CERT_REGIONS` (default
//! `AWS_REGION`), `SNS_SIGNATURE_V2_ONLY` (default true here) and
//! `SNS_MAX_MESSAGE_AGE_SECONDS` (default 4500) (see
//! `portal_aws::webhook::SesWebhook::from_env`); the secrets are read from their SSM
//! parameters at cold start.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use portal_aws::dynamodb::DynamoStore;
use portal_aws::secrets::resolve_from_env;
use portal_aws::webhook::{self, SesWebhook, WebhookDefaults};
use portal_core::ports::SystemClock;
use portal_core::usecases::events::recount;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::invocation::{serve_http, to_json, unsupported, Invocation};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{config, diagnostic, Env};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_lambda::init_lambda_logging();
    let table = config::table_name()?;
    let aws = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let secrets = Secrets::from_resolved(resolve_from_env(&ssm, SECRET_VARS).await)?;
    let unsubscribe = Env::from_lookup(secrets.lookup()).unsubscribe_signer()?;
    let mut ses_webhook = SesWebhook::from_env(WebhookDefaults::lambda())?;
    if let Some(raw) = secrets
        .get("RAW_EVENTS_SECRET")
        .filter(|v| !v.trim().is_empty())
    {
        ses_webhook = ses_webhook.with_raw_secret(raw)?;
    }
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table));
    // Public routes only: no bearer token is ever accepted here.
    let state = AppState::new(store.clone(), Arc::new(SystemClock), Verifier::deny_all())
        .with_unsubscribe(unsubscribe)
        .with_ses_webhook(ses_webhook);
    let http = jobs::events(state);

    let (store, http) = (&store, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = (event.payload, event.context);
        match Invocation::of(&payload).map_err(|e| diagnostic("InvalidRecount", &e))? {
            Invocation::EventBridge => webhook::on_eventbridge(store.as_ref(), &payload)
                .await
                .map_err(|e| diagnostic("StoreError", &e))
                .and_then(|o| to_json(&o)),
            Invocation::Recount(req) => recount(store.as_ref(), &req)
                .await
                .map_err(|e| diagnostic("StoreError", &e))
                .and_then(|r| to_json(&r)),
            Invocation::Http => serve_http(http, payload, context).await,
            other @ (Invocation::Recurring(_) | Invocation::Sweep) => {
                Err(unsupported("ses-events", &other))
            }
        }
    }))
    .await
}
