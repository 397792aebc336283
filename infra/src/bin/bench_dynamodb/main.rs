//! `bench-dynamodb`: what the DynamoDB store (and, for a send, EventBridge and SES) costs in
//! requests, on a moto server.
//!
//! Three scenarios, each on a fresh table and in its own module; any can be left out with `0`:
//!
//! - **SES events** (`--events N`, default 300; [`events`]): a campaign over N contacts sent
//!   into a null mailer, then a shuffled stream of SES event records for its invitations
//!   (about 5 per invitation, 10% duplicated) fed one at a time through the webhook's core,
//!   as SNS delivers them. It prints write requests per state-changing event (target 1) and
//!   per event that changed nothing (target 0) and reads per event; then feeds the sorted,
//!   unique stream to the same invitations on a second table and fails unless both end in
//!   the same categories with counters equal to a recount.
//! - **send** (`--send N`, default 2,000; [`send`]): one campaign to a division of N contacts
//!   run the way the Lambda functions run it. A `FanOut` message is published on an
//!   EventBridge bus whose rule targets an SQS queue; the queue stands in for EventBridge's
//!   delivery to the fan-out and delivery functions: each event read from it goes through
//!   `message_from_eventbridge` and `send::handle` (DynamoDB store, SES v2 mailer, EventBridge
//!   bus, the Lambda's `OUTCOME_FLUSH`, no send rate), until the queue is empty. It prints
//!   the requests per 1,000 invitations — DynamoDB by operation, EventBridge `PutEvents`, SES
//!   `SendEmail` — against the targets (DynamoDB + EventBridge ≤ 60, SES 1 per invitation),
//!   then the same split by phase (the first publish, the fan-out steps, the delivery steps:
//!   each message's requests are the counters' difference across its `handle`), and fails
//!   unless the campaign completed and moto's SES received exactly one email per eligible
//!   contact. Seeding and the SQS reads are not counted.
//! - **sync** (`--contacts N`, default 100,000; [`sync`]): syncs one division of N contacts
//!   (deterministic demo accounts, sent through the sync use case in requests of 10,000
//!   accounts like `POST /v1/sync/accounts`), syncs the same accounts again (nothing
//!   changed), then loads the division's counts once and one 500-row recipient page, and
//!   prints, for each step, the DynamoDB requests by operation.
//!
//! Requests are counted by an SDK interceptor (a `Query` request is one page of results).
//! moto is a protocol peer, not a performance model of DynamoDB, so request counts are the
//! figures that matter; wall times are shown for orientation only.
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-dynamodb [-- --send 2000] [--contacts 100000] [--endpoint URL]
//! cargo run --profile bench -p portal-invites --bin bench-dynamodb -- --contacts 0   # the send only
//! ```
//!
//! Without `--endpoint` it starts moto with `portal_testkit::moto` (`moto_server` from
//! `$MOTO_SERVER`, `./.venv/bin` or `PATH`, on a free loopback port, stopped when this
//! process exits). moto's `TransactWriteItems` copies the whole table once per item of a
//! transaction (rollback backups), which makes every claim and outcome write cost seconds on
//! a table of a few thousand items; so moto is started through `infra/scripts/moto_bench.py`,
//! which backs up only the items a transaction names — same answers, same counts — and stops
//! moto keeping every DynamoDB item and SQS message it ever made (for its data dump: the
//! memory of a 10,000-contact send grew past 400 MB and never shrank), unless `--stock-moto`
//! is given. The send reads the emails back from moto
//! (`GET /moto-api/data.json`), so an `--endpoint` must be a moto server on `http://`.

mod events;
mod send;
mod sync;

use std::sync::Arc;

use anyhow::bail;
use clap::Parser;
use portal_aws::dynamodb::DynamoStore;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::PublicUrl;
use portal_core::ports::{Mailer, SystemClock};
use portal_core::usecases::send::{RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper};
use portal_lambda::config::LAMBDA_OUTCOME_FLUSH;
use portal_testkit::moto::{Moto, INSTALL_HINT};

/// The Python script moto is started through unless `--stock-moto` is given.
const MOTO_PATCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_bench.py");

#[derive(Debug, Parser)]
#[command(
    name = "bench-dynamodb",
    about = "Count the AWS requests of a campaign send, and the DynamoDB requests of a sync, a count and a list page"
)]
struct Args {
    /// Contacts in the sync scenario's division (0: skip the sync, count and list).
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Contacts in the send scenario's division (0: skip the send).
    #[arg(long, default_value_t = 2_000)]
    send: usize,
    /// Invitations in the SES events scenario (0: skip it).
    #[arg(long, default_value_t = 300)]
    events: usize,
    /// Sends between outcome writes in the send (the Lambda default unless set).
    #[arg(long, default_value_t = LAMBDA_OUTCOME_FLUSH)]
    outcome_flush: usize,
    /// A running moto server (default: start moto_server).
    #[arg(long)]
    endpoint: Option<String>,
    /// Start moto exactly as `moto_server` runs it, whose `TransactWriteItems` copies the
    /// table once per item: the same counts, but the 2,000-contact send takes an hour.
    #[arg(long)]
    stock_moto: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.outcome_flush == 0 {
        bail!("--outcome-flush must be at least 1");
    }
    // Stopped when dropped, at the end of `main`.
    let _moto;
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => {
            let launch = if args.stock_moto {
                Moto::builder()
            } else {
                Moto::builder().python_script(MOTO_PATCH)
            };
            let moto = launch
                .start()
                .map_err(|e| anyhow::anyhow!("{e}\n{INSTALL_HINT}, or pass --endpoint"))?;
            let url = moto.endpoint().to_owned();
            _moto = moto;
            url
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("endpoint {endpoint}\n");
    if args.events > 0 {
        rt.block_on(events::run(args.events, &endpoint))?;
    }
    if args.send > 0 {
        rt.block_on(send::run(args.send, args.outcome_flush, &endpoint))?;
    }
    if args.contacts > 0 {
        rt.block_on(sync::run(args.contacts, &endpoint))?;
    }
    Ok(())
}

/// What the send use case runs on, as the Lambda functions set it up: `store`, `mailer`,
/// the system clock, fixed secrets, no send rate unless `config` has one.
fn send_deps(
    store: Arc<DynamoStore>,
    mailer: Arc<dyn Mailer>,
    config: SendConfig,
) -> anyhow::Result<SendDeps> {
    Ok(SendDeps {
        store,
        mailer,
        clock: Arc::new(SystemClock),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(UnsubscribeSigner::new([7u8; 32])?)),
        tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
        public_url: PublicUrl::parse("https://invite.example.org")?,
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    })
}
