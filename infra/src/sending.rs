//! How the local server and `run-recurring` send: the same fan-out and delivery code as the
//! Lambda functions, into the data dir's outbox.

use std::sync::Arc;

use portal_core::domain::PublicUrl;
use portal_core::ports::Clock;
use portal_core::usecases::send::{RateLimiter, SendConfig, SendDeps, TokioSleeper};
use portal_embedded::outbox::Outbox;
use portal_embedded::sqlite::SqliteStore;

use crate::secret::SecretError;

/// Emails of a delivery batch in flight at once on the local server.
pub const SERVE_SEND_CONCURRENCY: usize = 8;
/// Bus messages the local server's worker handles at once.
pub const SERVE_STEP_CONCURRENCY: usize = 4;
/// Sends between outcome writes on the local server (see `SendConfig::outcome_flush`).
pub const SERVE_OUTCOME_FLUSH: usize = 50;

/// The sending dependencies of a data dir on one machine: the same fan-out and delivery code
/// as the Lambda functions, writing every email into the data dir's outbox, with the data
/// dir's token and unsubscribe keys (so links work on its server). `serve` drives them with
/// an in-process bus; `run-recurring` drains a queue with them.
pub fn local_send_deps(
    data_dir: &std::path::Path,
    store: Arc<SqliteStore>,
    clock: Arc<dyn Clock>,
    public_url: PublicUrl,
) -> Result<SendDeps, SecretError> {
    let config = SendConfig {
        // The outbox has no quota; SES's rate applies on AWS.
        max_send_rate: None,
        send_concurrency: SERVE_SEND_CONCURRENCY,
        step_concurrency: SERVE_STEP_CONCURRENCY,
        // The outbox writes a Message-ID once, so a re-send after a crash lands once
        // however many outcomes were pending: write them in larger groups.
        outcome_flush: SERVE_OUTCOME_FLUSH,
        ..SendConfig::default()
    };
    Ok(SendDeps {
        store,
        mailer: Arc::new(Outbox::in_data_dir(data_dir)),
        clock,
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(crate::dev::unsubscribe_signer(data_dir)?)),
        tokens: Arc::new(crate::dev::token_deriver(data_dir)?),
        public_url,
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    })
}
