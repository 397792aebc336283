//! Lambda `load-counts`: sync, divisions, invitation counts, recipient lists, templates,
//! campaigns and unsubscribe, served by the library's axum router under `lambda_http` on the
//! DynamoDB store. Creating a campaign records it and publishes its first fan-out message on
//! the EventBridge send bus; the `fan-out` and `delivery` functions do the rest.
//!
//! Environment: `TABLE_NAME`, `EVENT_BUS_NAME`, the JWT settings read by
//! `portal_core::http::auth::Verifier::from_env` (`JWT_JWKS`, `JWT_ISSUER`, `JWT_AUDIENCE`),
//! and the send settings read by `portal_core::usecases::send::SendSettings::from_env`:
//! `UNSUBSCRIBE_SECRET` (at least 32 bytes) signs and checks the one-click unsubscribe links
//! (`/v1/unsubscribe`, public) — changing it invalidates the links in emails already sent;
//! `TOKEN_SECRET` derives registration tokens; `PUBLIC_URL` is the base of the links in
//! previews and emails; `TOKEN_TTL_DAYS` how long registration links stay valid.

use std::sync::Arc;

use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::adapters::EventBridgeBus;
use portal_core::http::{auth::Verifier, router, AppState};
use portal_core::ports::SystemClock;
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::send::SendSettings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portal_core::telemetry::init_lambda_logging();

    let table =
        std::env::var("TABLE_NAME").map_err(|_| "missing environment variable TABLE_NAME")?;
    let bus_name = std::env::var("EVENT_BUS_NAME")
        .map_err(|_| "missing environment variable EVENT_BUS_NAME")?;
    let settings = SendSettings::from_env()?;
    let aws = aws_config::load_from_env().await;
    let state = AppState::new(
        Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table)),
        Arc::new(SystemClock),
        Verifier::from_env()?,
    )
    .with_public_url(settings.public_url)
    .with_unsubscribe(settings.unsubscribe)
    .with_sending(Sending {
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&aws),
            bus_name,
        )),
        tokens: settings.tokens,
        token_ttl: settings.config.token_ttl,
    });
    lambda_http::run(router(state)).await
}
