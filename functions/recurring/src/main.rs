//! Lambda `recurring`: recurring invitations — the settings and their daily runs. The only
//! function that manages EventBridge Scheduler schedules. One function, two kinds of
//! invocation:
//!
//! - an API Gateway request for the routes of `Job::Recurring` (`settings:manage`):
//!   `GET /v1/recurring`, `GET`/`PUT`/`DELETE /v1/recurring/{recurring_id}`,
//!   `GET /v1/recurring/{recurring_id}/runs`, `POST /v1/recurring/{recurring_id}/preview`.
//!   Saving a setting writes it to DynamoDB, then creates or updates its schedule
//!   (`portal_aws::scheduler::EventBridgeSchedules`: `cron(0 {hour} * * ? *)` in the
//!   setting's time zone, disabled with the setting); deleting it deletes the schedule;
//! - a schedule's firing: EventBridge Scheduler invokes the function (asynchronously) with
//!   the schedule's input `{"tenant", "setting_id", "scheduled_time"}`
//!   ([`portal_lambda::ScheduledRun`]): the setting runs for the local date it fired for
//!   (`portal_core::usecases::recurring::run_setting`) — a campaign with `trigger: recurring`
//!   whose first `Campaign Fan-Out` goes on the send bus, or nothing when nobody is due. The
//!   outcome is logged (and answered) as JSON. An error goes back to Lambda, whose
//!   asynchronous retries (then the dead-letter queue) take the firing again: the run of a
//!   day is claimed with a conditional write and every step is idempotent. A setting that is
//!   gone or disabled is ignored, so a schedule that outlived its setting does nothing.
//!
//! To run a setting by hand (the day due now):
//! `aws lambda invoke --function-name <RecurringFunctionName output> --cli-binary-format
//! raw-in-base64-out --payload '{"tenant": "T", "setting_id": "S"}' out.json`.
//!
//! Environment: `TABLE_NAME`, `EVENT_BUS_NAME`, `SCHEDULE_GROUP` (the schedule group),
//! `SCHEDULE_TARGET_ARN` (this function's ARN: what the schedules invoke),
//! `SCHEDULER_ROLE_ARN` (the execution role the schedules pass), `SCHEDULE_DLQ_ARN` (the
//! schedules' SQS dead-letter queue), the JWT settings (`JWT_JWKS`, `JWT_ISSUER`,
//! `JWT_AUDIENCE`) and the send settings of `portal_lambda::SendSettings` (`TOKEN_SECRET`,
//! read at cold start from the SSM parameter `TOKEN_SECRET_PARAMETER` names, `PUBLIC_URL`,
//! optional `TOKEN_TTL_DAYS`, …).

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use portal_aws::dynamodb::DynamoStore;
use portal_aws::secrets::resolve_from_env;
use portal_aws::{EventBridgeBus, EventBridgeSchedules, ScheduleTarget};
use portal_core::ports::SystemClock;
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::RecurringError;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::invocation::{serve_http, to_json, unsupported, Invocation};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{config, diagnostic, Env, SendSettings, SettingsError};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_lambda::init_lambda_logging();
    let env = Env::process();
    let table = config::table_name()?;
    let bus_name = env.required("EVENT_BUS_NAME")?;
    let target = ScheduleTarget {
        group_name: env.required("SCHEDULE_GROUP")?,
        target_arn: arn(&env, "SCHEDULE_TARGET_ARN", ":lambda:")?,
        role_arn: arn(&env, "SCHEDULER_ROLE_ARN", ":iam::")?,
        dead_letter_arn: arn(&env, "SCHEDULE_DLQ_ARN", ":sqs:")?,
    };
    let aws = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let secrets = Secrets::from_resolved(resolve_from_env(&ssm, SECRET_VARS).await)?;
    let settings = SendSettings::from_lookup(secrets.lookup())?;
    let verifier = Verifier::from_env()?;

    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table));
    let bus = Arc::new(EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&aws),
        bus_name,
    ));
    let schedules = EventBridgeSchedules::new(aws_sdk_scheduler::Client::new(&aws), target);
    let sending = || Sending {
        bus: bus.clone(),
        tokens: settings.tokens.clone(),
        token_ttl: settings.config.token_ttl,
    };
    let state = AppState::new(store.clone(), Arc::new(SystemClock), verifier)
        .with_public_url(settings.public_url.clone())
        .with_sending(sending())
        .with_schedules(Arc::new(schedules));
    let http = jobs::recurring(state);
    let sending = sending();

    let (store, sending, http) = (store.as_ref(), &sending, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = (event.payload, event.context);
        match Invocation::of(&payload).map_err(|e| diagnostic("UnsupportedEvent", &e))? {
            Invocation::Http => serve_http(http, payload, context).await,
            Invocation::Recurring(run) => {
                let outcome = run.run(store, &SystemClock, sending).await.map_err(|e| {
                    tracing::error!(tenant = %run.tenant, setting = %run.setting_id, error = %portal_core::error_chain(&e), "recurring run failed");
                    diagnostic(error_type(&e), &e)
                })?;
                let json = to_json(&outcome)?;
                tracing::info!(tenant = %run.tenant, setting = %run.setting_id, outcome = %json, "recurring run");
                Ok(json)
            }
            other => Err(unsupported("recurring", &other)),
        }
    }))
    .await
}

/// An ARN variable, refused at cold start when it is plainly not one of `service`'s ARNs
/// (Scheduler would refuse every schedule later).
fn arn<F: Fn(&str) -> Result<String, std::env::VarError>>(
    env: &Env<F>,
    name: &'static str,
    service: &str,
) -> Result<String, SettingsError> {
    let value = env.required(name)?;
    if value.starts_with("arn:") && value.contains(service) {
        Ok(value)
    } else {
        Err(SettingsError::Invalid {
            name,
            value: value.chars().take(80).collect(),
            expected: "the ARN template.yaml gives it",
        })
    }
}

/// The Lambda error type of a failed run.
fn error_type(e: &RecurringError) -> &'static str {
    match e {
        RecurringError::Store(_) => "StoreError",
        RecurringError::NotQueued(_) => "BusError",
        _ => "RunFailed",
    }
}
