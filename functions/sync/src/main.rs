//! Lambda `sync`: the manager routes that write reference data — account sync and deletion,
//! division settings, templates (`Job::Sync`) — on the DynamoDB store. The only function
//! that writes accounts and contacts.
//!
//! Environment: `TABLE_NAME` and the JWT settings (`JWT_JWKS`, `JWT_ISSUER`, `JWT_AUDIENCE`;
//! see `portal_http::auth::Verifier::from_env`).

use std::sync::Arc;

use portal_aws::dynamodb::DynamoStore;
use portal_core::ports::SystemClock;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portal_lambda::init_lambda_logging();
    let table = config::table_name()?;
    let aws = aws_config::load_from_env().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let state = AppState::new(
        Arc::new(store),
        Arc::new(SystemClock),
        Verifier::from_env()?,
    );
    lambda_http::run(jobs::sync(state)).await
}
