//! Lambda `load-counts`: sync, divisions, invitation counts and recipient lists, served by
//! the library's axum router under `lambda_http` on the DynamoDB store.
//!
//! Environment: `TABLE_NAME`, and the JWT settings read by
//! `portal_core::http::auth::Verifier::from_env` (`JWT_JWKS`, `JWT_ISSUER`, `JWT_AUDIENCE`).
//! `UNSUBSCRIBE_SECRET` (at least 32 bytes) signs and checks the one-click unsubscribe links
//! (`/v1/unsubscribe`, public); changing it invalidates the links in emails already sent.

use std::sync::Arc;

use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::http::{auth::Verifier, router, AppState};
use portal_core::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();

    let table =
        std::env::var("TABLE_NAME").map_err(|_| "missing environment variable TABLE_NAME")?;
    let unsubscribe = UnsubscribeSigner::new(
        std::env::var("UNSUBSCRIBE_SECRET")
            .map_err(|_| "missing environment variable UNSUBSCRIBE_SECRET")?,
    )?;
    let aws = aws_config::load_from_env().await;
    let state = AppState::new(
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table)),
        Arc::new(SystemClock),
        Verifier::from_env()?,
    )
    .with_unsubscribe(unsubscribe);
    lambda_http::run(router(state)).await
}
