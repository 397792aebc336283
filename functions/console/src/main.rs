//! Lambda `console`: the managers' console (`Job::Console`) — `GET /console`, the shell
//! page, and `GET /console/assets/{asset}`, its stylesheet and script (embedded, named by
//! content hash). Both routes are public: the page holds no data. In the browser it signs
//! the manager in at the identity provider behind the API's JWT issuer (OpenID Connect
//! authorization code with PKCE) and calls the other functions' `/v1` routes with the token
//! it gets, like any client.
//!
//! It touches nothing else: no AWS client, a store that refuses every call
//! ([`NoStore`]), a verifier that accepts no token; its role has no action of its own.
//!
//! Environment (see `portal_lambda::config`): `CONSOLE_AUTHORIZE_URL`, `CONSOLE_TOKEN_URL`,
//! `CONSOLE_CLIENT_ID` (all three or none: without them `/console` says it is not set up),
//! optional `CONSOLE_SCOPE` (default `openid`) and `CONSOLE_SIGN_OUT_URL`.

use std::sync::Arc;

use portal_core::ports::SystemClock;
use portal_http::{auth::Verifier, jobs, AppState};
use portal_lambda::{Env, NoStore};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portal_lambda::init_lambda_logging();
    let state = AppState::new(
        Arc::new(NoStore),
        Arc::new(SystemClock),
        Verifier::deny_all(),
    );
    let state = match Env::process().console()? {
        Some(console) => state.with_console(console),
        None => {
            lambda_http::tracing::warn!(
                "no CONSOLE_* settings: /console answers that it is not set up"
            );
            state
        }
    };
    lambda_http::run(jobs::console(state)).await
}
