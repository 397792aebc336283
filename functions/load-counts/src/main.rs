//! Lambda `load-counts`: the manager routes that read — divisions, invitation counts,
//! recipient lists and their CSV, templates and their preview, campaigns and their
//! statistics (`Job::LoadCounts`) — on the DynamoDB store. Its role may only read the table.
//!
//! Environment: `TABLE_NAME`, `PUBLIC_URL` (previews render links on it), and the JWT settings
//! (`JWT_JWKS`, `JWT_ISSUER`, `JWT_AUDIENCE`; see `portal_http::auth::Verifier::from_env`).

use std::sync::Arc;

use portal_aws::dynamodb::DynamoStore;
use portal_core::ports::SystemClock;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::{config, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portal_lambda::init_lambda_logging();
    let (table, public_url) = (config::table_name()?, Env::process().public_url()?);
    let aws = aws_config::load_from_env().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let state = AppState::new(
        Arc::new(store),
        Arc::new(SystemClock),
        Verifier::from_env()?,
    )
    .with_public_url(public_url);
    lambda_http::run(jobs::load_counts(state)).await
}
