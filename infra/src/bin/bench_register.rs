//! `bench-register`: registrations through invitation links on the local server.
//!
//! It opens a [`LocalServer`] (the one `portal-invites serve` runs) on a fresh data dir and
//! serves it on a loopback port, loads one division (`portal_invites::bench::load_division`,
//! the demo generator), sends it a bulk campaign through the real fan-out and delivery code
//! into a null mailer (so every invitation is `sent` and holds its token's hash), and derives
//! each invitation's registration token with the server's own `TokenDeriver` (the data dir's
//! `registration-secret`, as `serve --demo` does for its banner link).
//!
//! Then it times `POST /register?token=…` as a browser sends it (a urlencoded form with a
//! password, one HTTP/1.1 connection per request), `--registrations` of them one after the
//! other and `--registrations` more from `--clients` concurrent clients, and prints
//! registrations per second and p50/p95/max latency of each, plus the Argon2id parameters
//! the embedded identity store hashed with (read back from a stored hash). Argon2id dominates
//! by design: the server hashes on Tokio's blocking pool, so concurrency is bounded by cores.
//!
//! It checks what it measured: every answer is "You are registered" (a new login each time,
//! the demo addresses being unique), and the campaign then counts exactly that many
//! `registered`. It exits non-zero otherwise. Run it in release mode:
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-register
//! cargo run --profile bench -p portal-invites --bin bench-register -- --registrations 400 --clients 8
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use portal_core::domain::{CampaignStatus, DivisionId, Email, PublicUrl, TenantId};
use portal_core::ports::CampaignStore;
use portal_core::usecases::send::{run_campaign, RateLimiter, SendConfig, SendDeps, TokioSleeper};
use portal_invites::bench::{load_division, record_campaign, NullMailer};
use portal_invites::serve::{LocalServer, ServeOptions};
use portal_invites::simulate::all_invitations;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Parser)]
#[command(
    name = "bench-register",
    about = "Benchmark POST /register (invitation links) on the local server"
)]
struct Args {
    /// Registrations timed in each phase (sequential, then concurrent).
    #[arg(long, default_value_t = 200)]
    registrations: usize,
    /// Concurrent clients of the second phase.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Untimed registrations first (connections, caches, the blocking pool's threads).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
}

/// The form a resident's browser posts (`password` ≥ 12 characters, not a common one).
const FORM: &[u8] = b"name=&password=lantern+orchard+velvet+42";

/// The parameters `portal_embedded`'s identity store is documented to use (OWASP's first
/// Argon2id configuration); the benchmark reads the real ones back from a stored hash.
const EXPECTED_ARGON2: &str = "m=19456,t=2,p=1";

fn tenant() -> TenantId {
    TenantId::parse("bench").unwrap_or_else(|_| unreachable!("a valid literal id"))
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
async fn post_form(addr: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line in the answer")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Registers with one token and checks the answer is a new login.
async fn register(addr: SocketAddr, token: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (status, body) = post_form(addr, &format!("/register?token={token}"), FORM).await?;
    let took = started.elapsed();
    if status != 200 || !body.contains("You are registered") {
        let heading = body
            .split("<h1>")
            .nth(1)
            .and_then(|h| h.split("</h1>").next())
            .unwrap_or("");
        bail!("POST /register answered {status} ({heading:?}), not a new login");
    }
    Ok(took)
}

/// Percentile (nearest rank) of sorted latencies.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    println!(
        "{label}: {:.1} registrations/s ({} in {:.2} s); latency p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        latencies.len() as f64 / wall.as_secs_f64(),
        latencies.len(),
        wall.as_secs_f64(),
        ms(pct(&latencies, 50.0)),
        ms(pct(&latencies, 95.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

/// The Argon2id parameters of a stored hash: the PHC string (`$argon2id$v=19$m=…,t=…,p=…$`)
/// is read from the SQLite files of the data dir (the database and its write-ahead log).
fn stored_argon2_params(data_dir: &Path) -> Option<String> {
    const MARK: &[u8] = b"$argon2id$v=19$";
    for file in [
        portal_invites::DB_FILE.to_owned(),
        format!("{}-wal", portal_invites::DB_FILE),
    ] {
        let Ok(bytes) = std::fs::read(data_dir.join(file)) else {
            continue;
        };
        if let Some(at) = bytes.windows(MARK.len()).position(|w| w == MARK) {
            let rest = &bytes[at + MARK.len()..];
            let end = rest.iter().position(|&b| b == b'$')?;
            return String::from_utf8(rest[..end].to_vec()).ok();
        }
    }
    None
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.registrations == 0 || args.clients == 0 {
        bail!("--registrations and --clients must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("bench-register")
        .tempdir()?;
    let data_dir = dir.path().to_owned();
    let server = LocalServer::open(ServeOptions {
        data_dir: data_dir.clone(),
        demo: false,
        public_url: None,
        dev_routes: Default::default(),
    })
    .await
    .context("cannot open the local server")?;
    let store = server.store();

    // Invitations: one division's bulk campaign, sent through the real code into a null
    // mailer, with the tokens the server derives (its data dir's registration secret).
    let wanted = args.warmup + 2 * args.registrations;
    let started = Instant::now();
    let tenant = tenant();
    let division = DivisionId::parse("oak-hills")?;
    // About 92% of the generator's contacts have an address, a few share one: load more.
    load_division(&*store, &tenant, &division, wanted * 3 / 2 + 50).await?;
    let campaign = record_campaign(
        &*store,
        &tenant,
        &division,
        Email::parse("board@oakhills.example.org")?,
    )
    .await?;
    let tokens = Arc::new(portal_invites::dev::token_deriver(&data_dir)?);
    let deps = SendDeps {
        store: store.clone(),
        mailer: Arc::new(NullMailer),
        clock: Arc::new(portal_core::ports::SystemClock),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(portal_invites::dev::unsubscribe_signer(
            &data_dir,
        )?)),
        tokens: tokens.clone(),
        public_url: PublicUrl::parse("http://127.0.0.1:3000").expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(None)),
        config: SendConfig {
            max_send_rate: None,
            outcome_flush: 100,
            ..SendConfig::default()
        },
    };
    let sent = run_campaign(&deps, &tenant, &campaign.campaign_id).await?;
    if sent.status != Some(CampaignStatus::Completed) {
        bail!("the campaign ended {:?}", sent.status);
    }
    let invitations = all_invitations(&*store, &tenant, &campaign.campaign_id).await?;
    // One invitation per address: a second one of an address joins the first one's login
    // (no hash), which is not what is measured.
    let mut addresses = std::collections::HashSet::new();
    let links: Vec<String> = invitations
        .iter()
        .filter(|i| addresses.insert(i.email.normalized()))
        .take(wanted)
        .map(|i| tokens.token(&tenant, &campaign.campaign_id, &i.contact_id))
        .collect();
    if links.len() < wanted {
        bail!(
            "{} invitations to distinct addresses, {wanted} needed: load more contacts",
            links.len()
        );
    }
    println!(
        "{} invitations sent in {:.0} ms; timing {} sequential + {} with {} clients (after {} warm-up)",
        invitations.len(),
        ms(started.elapsed()),
        args.registrations,
        args.registrations,
        args.clients,
        args.warmup,
    );

    // The server, on loopback, as `portal-invites serve` runs it.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(listener, async move {
        let _ = stopped.await;
    }));

    let (warm, rest) = links.split_at(args.warmup);
    let (sequential, concurrent) = rest.split_at(args.registrations);
    for token in warm {
        register(addr, token).await?;
    }

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(sequential.len());
    for token in sequential {
        latencies.push(register(addr, token).await?);
    }
    report("sequential", latencies, started.elapsed());

    let queue: Arc<Vec<String>> = Arc::new(concurrent.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (queue, next) = (queue.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = queue.get(i) else {
                    return Ok::<_, anyhow::Error>(mine);
                };
                mine.push(register(addr, token).await?);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(concurrent.len());
    for c in clients {
        latencies.extend(c.await??);
    }
    report(
        &format!("{} concurrent clients", args.clients),
        latencies,
        started.elapsed(),
    );

    let _ = stop.send(());
    serving.await??;

    // What was measured really registered: the campaign counts every one.
    let after = store
        .get_campaign(&tenant, &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?;
    if after.categories.registered != wanted as u64 {
        bail!(
            "the campaign counts {} registered, {wanted} registrations were answered",
            after.categories.registered
        );
    }
    println!(
        "campaign: {} registered, success rate {:.3}",
        after.categories.registered,
        after.categories.success_rate().unwrap_or(0.0)
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match stored_argon2_params(&data_dir) {
        Some(p) => {
            println!("Argon2id {p} (memory KiB, iterations, lanes; read from a stored hash), {cores} cores");
            if p != EXPECTED_ARGON2 {
                println!("note: the documented parameters are {EXPECTED_ARGON2}");
            }
        }
        None => println!(
            "Argon2id: no stored hash found to read the parameters from (documented: {EXPECTED_ARGON2}), {cores} cores"
        ),
    }
    Ok(())
}
