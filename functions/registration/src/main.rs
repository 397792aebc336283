//! Lambda `registration`: resident sign-up and the staff routes that go with it
//! (`Job::Registration`), on the DynamoDB store, a Cognito user pool and the send bus.
//!
//! - Public pages (no bearer token; server-rendered HTML, JSON on request): the invitation
//!   link `GET`/`POST /register`, the portal-key sign-up `GET`/`POST /register/key` (its
//!   confirmation link `GET`/`POST /register/confirm`), and the sign-up request
//!   `GET`/`POST /register/request`.
//! - Staff routes (JWT, `registrations:manage`): an account's portal key (read, rotate) and
//!   the sign-up requests (list, read with suggested matches, match, reject). Matching sends
//!   the portal-key email as a campaign of one: its first `Campaign Fan-Out` goes on the send
//!   bus exactly as from the send function.
//!
//! A registration reserves the address in DynamoDB (conditional write), then Cognito holds
//! the password (`portal_aws::CognitoIdentity`), then `Portal Registration` goes on the send
//! bus (source `portal-invites.registration`) for the portal. Confirmation emails of
//! portal-key sign-ups go out through SES v2 without the invitations' configuration set
//! (they are no invitation: their events would have no campaign to count in).
//!
//! Environment: `TABLE_NAME`, `EVENT_BUS_NAME`, `USER_POOL_ID`, `USER_POOL_CLIENT_ID`
//! (optional: only signing in, which this function never does on AWS, needs it), the JWT
//! settings (`JWT_JWKS`, `JWT_ISSUER`, `JWT_AUDIENCE`) and the send settings of
//! `portal_lambda::SendSettings` (`TOKEN_SECRET`, read at cold start from the SSM parameter
//! `TOKEN_SECRET_PARAMETER` names, `PUBLIC_URL`,
//! optional `TOKEN_TTL_DAYS`, …).

use std::sync::Arc;

use portal_aws::dynamodb::DynamoStore;
use portal_aws::secrets::resolve_from_env;
use portal_aws::ses::SesMailer;
use portal_aws::{CognitoIdentity, EventBridgeBus};
use portal_core::ports::SystemClock;
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::registration::{Registrar, RegistrationSettings};
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{config, Env, SendSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portal_lambda::init_lambda_logging();
    let env = Env::process();
    let table = config::table_name()?;
    let bus_name = env.required("EVENT_BUS_NAME")?;
    let user_pool_id = env.required("USER_POOL_ID")?;
    let client_id = env.optional("USER_POOL_CLIENT_ID")?;
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
    let identity = CognitoIdentity::new(
        aws_sdk_cognitoidentityprovider::Client::new(&aws),
        user_pool_id,
    )
    .with_client_id(client_id);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), None);

    let state = AppState::new(store, Arc::new(SystemClock), verifier)
        .with_public_url(settings.public_url.clone())
        .with_sending(Sending {
            bus: bus.clone(),
            tokens: settings.tokens.clone(),
            token_ttl: settings.config.token_ttl,
        })
        .with_registration(Registrar {
            identity: Arc::new(identity),
            events: bus,
            mailer: Arc::new(mailer),
            settings: RegistrationSettings::default(),
        });
    lambda_http::run(jobs::registration(state)).await
}
