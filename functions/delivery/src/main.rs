//! Lambda `delivery`: sends one batch of a campaign's invitations through SES v2 per event
//! (Raw content, message tags, the configuration set) and records each outcome, through
//! `portal_core::usecases::send::handle` on the DynamoDB store. The only function that
//! calls SES; it publishes nothing.
//!
//! Triggered by the rule routing `Campaign Delivery` events from the send bus. Any other
//! message is logged and acknowledged (a routing mistake, which retrying cannot fix). An
//! error is returned to Lambda so its asynchronous retries, then the failure destination,
//! take the event again: delivery skips invitations already sent or failed.
//!
//! `MAX_SEND_RATE` is enforced per process: the account-wide rate is at most
//! `MAX_SEND_RATE` × the function's reserved concurrency (see `template.yaml`).
//!
//! Environment: `TABLE_NAME`, `SES_CONFIGURATION_SET` (optional), and the send settings of
//! `portal_lambda::SendSettings` (`TOKEN_SECRET`, `UNSUBSCRIBE_SECRET` — each read at cold start
//! from the SSM parameter its `*_PARAMETER` variable names —, `PUBLIC_URL`,
//! optional `MAX_SEND_RATE`, `OUTCOME_FLUSH`, `FAILURE_THRESHOLD`, …).

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use portal_aws::dynamodb::DynamoStore;
use portal_aws::secrets::resolve_from_env;
use portal_aws::ses::SesMailer;
use portal_core::ports::{SystemClock, DETAIL_TYPE_DELIVER};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{config, diagnostic, on_event, Env, NoBus, SendSettings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    portal_lambda::init_lambda_logging();
    let table = config::table_name()?;
    let configuration_set = Env::process().optional("SES_CONFIGURATION_SET")?;
    let aws = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let secrets = Secrets::from_resolved(resolve_from_env(&ssm, SECRET_VARS).await)?;
    let settings = SendSettings::from_lookup(secrets.lookup())?;
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
            .map_err(|e| diagnostic(e.error_type(), &e))
    }))
    .await
}
