//! Lambda `send`: starts sends and fans them out — the only function that puts events on
//! the send bus. One function, two kinds of invocation:
//!
//! - an API Gateway request for the routes that start sends (`Job::Send`:
//!   `POST /v1/campaigns`, `POST /v1/invitations/individual`): the campaign is recorded and
//!   its first `Campaign Fan-Out` event published;
//! - a `Campaign Fan-Out` event from the send bus's rule: one step of the fan-out — claim a
//!   page of recipients under the 24-hour rule, publish their `Campaign Delivery` batches and
//!   the next page's fan-out. An error goes back to Lambda, whose asynchronous retries (then
//!   the failure destination) take the event again: every step is idempotent;
//! - the sweeper's scheduled rule (constant input `{"sweep": {}}`, every few minutes): every
//!   unfinished campaign that made no progress for `SWEEP_IDLE_MINUTES` gets its first
//!   `Campaign Fan-Out` again (`portal_core::usecases::send::sweep`), which repairs a lost
//!   first publish, fan-out page or delivery batch. It answers what it did; a re-publish that
//!   failed makes the invocation fail (Lambda retries it; the next sweep would anyway).
//!
//! Environment: `TABLE_NAME`, `EVENT_BUS_NAME`, the JWT settings (`JWT_JWKS`, `JWT_ISSUER`,
//! `JWT_AUDIENCE`) and the send settings of `portal_lambda::SendSettings` (`TOKEN_SECRET`,
//! read at cold start from the SSM parameter `TOKEN_SECRET_PARAMETER` names, `PUBLIC_URL`,
//! optional `PAGE_SIZE`, `TOKEN_TTL_DAYS`, …; no unsubscribe secret: it delivers nothing), optional
//! `SWEEP_IDLE_MINUTES` (default 10).

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use portal_aws::dynamodb::DynamoStore;
use portal_aws::secrets::resolve_from_env;
use portal_aws::EventBridgeBus;
use portal_core::ports::{SystemClock, DETAIL_TYPE_FAN_OUT};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::send::sweep::sweep;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::invocation::{serve_http, to_json, unsupported, Invocation};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{config, diagnostic, on_event, Env, NoMailer, SendSettings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_lambda::init_lambda_logging();
    let table = config::table_name()?;
    let bus_name = Env::process().required("EVENT_BUS_NAME")?;
    let aws = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let secrets = Secrets::from_resolved(resolve_from_env(&ssm, SECRET_VARS).await)?;
    let settings = SendSettings::from_lookup(secrets.lookup())?;
    let sweep_config = Env::process().sweep()?;
    let verifier = Verifier::from_env()?;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table));
    let bus = Arc::new(EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&aws),
        bus_name,
    ));

    let state = AppState::new(store.clone(), Arc::new(SystemClock), verifier)
        .with_public_url(settings.public_url.clone())
        .with_sending(Sending {
            bus: bus.clone(),
            tokens: settings.tokens.clone(),
            token_ttl: settings.config.token_ttl,
        });
    let http = jobs::send(state);
    // Fan-out renders and sends nothing; its role may not call SES.
    let deps = settings.deps(store.clone(), Arc::new(NoMailer), Arc::new(SystemClock));

    let (deps, bus, http) = (&deps, bus.as_ref(), &http);
    let (store, sweep_config) = (store.as_ref(), &sweep_config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = (event.payload, event.context);
        match Invocation::of(&payload).map_err(|e| diagnostic("UnsupportedEvent", &e))? {
            Invocation::EventBridge => on_event(deps, bus, &payload, DETAIL_TYPE_FAN_OUT)
                .await
                .map_err(|e| diagnostic(e.error_type(), &e)),
            Invocation::Http => serve_http(http, payload, context).await,
            Invocation::Sweep => {
                let report = sweep(store, bus, &SystemClock, sweep_config)
                    .await
                    .map_err(|e| diagnostic("SweepFailed", &e))?;
                if report.failed > 0 {
                    let e = std::io::Error::other(format!(
                        "{} of {} campaigns could not be re-published",
                        report.failed, report.active
                    ));
                    return Err(diagnostic("SweepIncomplete", &e));
                }
                to_json(&report)
            }
            other @ (Invocation::Recount(_) | Invocation::Recurring(_)) => {
                Err(unsupported("send", &other))
            }
        }
    }))
    .await
}
