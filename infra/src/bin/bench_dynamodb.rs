//! `bench-dynamodb`: what the DynamoDB store costs in requests, on a moto server.
//!
//! It syncs one division of N contacts (default 100,000; deterministic demo accounts, sent
//! through the sync use case in requests of 10,000 accounts like `POST /v1/sync/accounts`),
//! syncs the same accounts again (nothing changed), then loads the division's counts once and one 500-row recipient page, and prints, for each
//! step, the DynamoDB requests by operation (a `Query` request is one page of results),
//! counted by an SDK interceptor. moto is a protocol peer, not a performance model of
//! DynamoDB, so request counts are the figures that matter; wall times are shown for
//! orientation only.
//!
//! ```text
//! cargo run -p portal-invites --bin bench-dynamodb [-- --contacts 100000] [--endpoint URL]
//! ```
//!
//! Without `--endpoint` it starts `moto_server` (from `$MOTO_SERVER`, `./.venv/bin` or
//! `PATH`) on a free loopback port, under a watchdog that stops it when this process
//! exits.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use clap::Parser;
use portal_core::adapters::aws_metrics::RequestCounter;
use portal_core::adapters::dynamodb::{create_table, DynamoStore};
use portal_core::demo;
use portal_core::domain::{DivisionId, DivisionInput, Email, Filters, Group, TenantId};
use portal_core::ports::{ContactQuery, ContactStore, ListQuery};
use portal_core::usecases::sync;
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "bench-dynamodb",
    about = "Count the DynamoDB requests of a sync, a count and a list page"
)]
struct Args {
    /// Contacts in the division.
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// A running DynamoDB-compatible endpoint (default: start moto_server).
    #[arg(long)]
    endpoint: Option<String>,
}

/// Accounts per sync request, like one `POST /v1/sync/accounts` body.
const SYNC_REQUEST_ACCOUNTS: usize = 10_000;
const PAGE: u32 = 500;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _moto;
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => {
            let (child, url) = start_moto()?;
            _moto = child;
            url
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args.contacts, &endpoint))
}

async fn run(size: usize, endpoint: &str) -> anyhow::Result<()> {
    let counter = RequestCounter::new();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .endpoint_url(endpoint)
            .interceptor(counter.clone())
            .build(),
    );
    let table = format!("bench-{}", std::process::id());
    create_table(&client, &table).await?;
    let store = DynamoStore::new(client, table.clone());
    let tenant = TenantId::parse("bench")?;
    let division = DivisionId::parse("bench-division")?;
    sync::put_division(
        &store,
        &tenant,
        DivisionInput::new(
            division.clone(),
            "Benchmark division".into(),
            Email::parse("bench@example.com")?,
        )?,
    )
    .await?;
    println!("endpoint {endpoint}, table {table}, {size} contacts in one division\n");

    // Sync, then the same sync again (a nightly re-sync where nothing changed).
    let mut requests = Vec::new();
    let (mut written, mut next, mut accounts) = (0usize, 0u64, 0usize);
    while written < size {
        let mut batch = demo::accounts(demo::DEMO_SEED, &division, next, SYNC_REQUEST_ACCOUNTS)?;
        next += SYNC_REQUEST_ACCOUNTS as u64;
        let mut kept = Vec::with_capacity(batch.len());
        for mut a in batch.drain(..) {
            if written >= size {
                break;
            }
            a.contacts.truncate(size - written);
            written += a.contacts.len();
            kept.push(a);
        }
        accounts += kept.len();
        requests.push(kept);
    }
    for what in ["sync", "re-sync, nothing changed"] {
        counter.reset();
        let start = Instant::now();
        for (i, request) in requests.iter().enumerate() {
            sync::upsert_accounts(&store, &tenant, request)
                .await
                .context("sync")?;
            eprintln!(
                "  {what}: request {}/{} ({:.0?})",
                i + 1,
                requests.len(),
                start.elapsed()
            );
        }
        report(
            &format!(
                "{what}: {written} contacts on {accounts} accounts in {} sync requests",
                requests.len()
            ),
            &counter,
            start.elapsed(),
        );
    }

    // Count.
    let query = ContactQuery {
        division_ids: vec![division.clone()],
        filters: Filters::default(),
        limit_to_uninvited: true,
        now: OffsetDateTime::now_utc(),
    };
    counter.reset();
    let start = Instant::now();
    let counts = store.count_contacts(&tenant, &query).await?;
    if counts.total != size as u64 {
        bail!("counted {} contacts, expected {size}", counts.total);
    }
    report(
        &format!(
            "count: total {} eligible {} no_email {}",
            counts.total, counts.eligible, counts.no_email
        ),
        &counter,
        start.elapsed(),
    );

    // List pages.
    for group in [Group::All, Group::Eligible] {
        counter.reset();
        let start = Instant::now();
        let page = store
            .list_contacts(
                &tenant,
                &ListQuery {
                    contacts: query.clone(),
                    group,
                    search: String::new(),
                    cursor: None,
                    limit: PAGE,
                },
            )
            .await?;
        report(
            &format!(
                "list: first {PAGE}-row page of `{}` ({} rows, more: {})",
                group.as_str(),
                page.items.len(),
                page.next_cursor.is_some()
            ),
            &counter,
            start.elapsed(),
        );
    }
    Ok(())
}

fn report(what: &str, counter: &RequestCounter, elapsed: Duration) {
    println!("{what}");
    println!(
        "  {} DynamoDB requests in {:.1} s:",
        counter.total(),
        elapsed.as_secs_f64()
    );
    for ((_, op), n) in counter.snapshot() {
        let note = if op == "Query" { " (pages)" } else { "" };
        println!("    {op:<16} {n:>7}{note}");
    }
    println!();
}

/// Starts moto on a free port under an `sh` watchdog that SIGKILLs it when our end of its
/// stdin pipe closes, i.e. when this process exits however it exits.
fn start_moto() -> anyhow::Result<(Child, String)> {
    let program = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(".venv/bin/moto_server")).filter(|p| p.is_file()))
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("moto_server"))
                    .find(|p| p.is_file())
            })
        })
        .context(
            "moto_server not found: `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`, \
             or pass --endpoint",
        )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill -9 $pid 2>/dev/null; wait $pid"#)
        .arg(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting moto_server")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, format!("http://127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("moto_server did not listen on port {port} within 20 s")
}
