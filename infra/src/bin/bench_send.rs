//! `bench-send`: one campaign end to end on the embedded store with the local mailer.
//!
//! It generates one division of `--contacts` contacts with the deterministic demo generator
//! ([`portal_core::demo`]) on a file-backed SQLite store in a temporary directory (no portal
//! states: every contact with an address is eligible), saves a template, records a campaign
//! and runs it the way `run_campaign` does (timing each step) — the same fan-out and delivery code the local server's
//! in-process worker runs — appending every email to the outbox log.
//!
//! It prints invitations per second of the send (fan-out + rendering + outbox writes +
//! outcome writes) and the peak RSS of the send alone (the kernel's high-water mark is reset
//! through `/proc/self/clear_refs` after loading), plus the outbox size. Run it in release
//! mode:
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-send -- --contacts 100000
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{CampaignStatus, DivisionId, Email, TenantId};
use portal_core::ports::{CampaignStore, EventBus, SendMessage, SystemClock};
use portal_core::usecases::send::queue::QueueBus;
use portal_core::usecases::send::{
    handle, run_campaign, RateLimiter, RunReport, SendConfig, SendDeps, TokenDeriver, TokioSleeper,
};
use portal_embedded::outbox::Outbox;
use portal_embedded::sqlite::SqliteStore;

#[derive(Debug, Parser)]
#[command(
    name = "bench-send",
    about = "Benchmark one campaign end to end on the embedded store"
)]
struct Args {
    /// Contacts in the campaign's division.
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Sends between outcome writes (see `SendConfig::outcome_flush`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_OUTCOME_FLUSH)]
    outcome_flush: usize,
    /// Emails of a batch in flight at once (see `SendConfig::send_concurrency`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_SEND_CONCURRENCY)]
    concurrency: usize,
    /// Bus messages handled at once (see `SendConfig::step_concurrency`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_STEP_CONCURRENCY)]
    steps: usize,
    /// Send into a mailer that drops every message, to measure the pipeline without the
    /// file system (the outbox's appends).
    #[arg(long)]
    null_mailer: bool,
    /// Where to put the database and outbox (default: a fresh temporary directory, removed
    /// at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak-RSS mark (`VmHWM`) to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteStore::open(&dir.join("bench.db"))?);
    let tenant = TenantId::parse("bench")?;
    let division = DivisionId::parse("oak-hills")?;

    let start = Instant::now();
    portal_invites::bench::load_division(&*store, &tenant, &division, args.contacts).await?;
    let campaign = portal_invites::bench::record_campaign(
        &*store,
        &tenant,
        &division,
        Email::parse("board@oakhills.example.org")?,
    )
    .await?;
    println!(
        "loaded {} contacts in {:.1} s",
        args.contacts,
        start.elapsed().as_secs_f64()
    );

    let config = SendConfig {
        max_send_rate: None,
        outcome_flush: args.outcome_flush,
        send_concurrency: args.concurrency,
        step_concurrency: args.steps,
        ..SendConfig::default()
    };
    let deps = SendDeps {
        store: store.clone(),
        mailer: if args.null_mailer {
            Arc::new(portal_invites::bench::NullMailer)
        } else {
            Arc::new(Outbox::in_data_dir(&dir))
        },
        clock: Arc::new(SystemClock),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(UnsubscribeSigner::new([7u8; 32])?)),
        tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
        public_url: portal_core::domain::PublicUrl::parse("http://127.0.0.1:3000")
            .expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    };
    let rss_reset = reset_peak_rss();
    let rss_before = status_kib("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    // With one step at a time, `run_campaign`'s loop timed per message kind; otherwise
    // `run_campaign` itself, fan-out pages overlapping deliveries.
    let mut split = None;
    let report = if args.steps <= 1 {
        let queue = QueueBus::default();
        queue
            .publish(&[SendMessage::FanOut {
                tenant: tenant.clone(),
                campaign_id: campaign.campaign_id.clone(),
                cursor: None,
                spec: None,
            }])
            .await?;
        let (mut fan_out_time, mut delivery_time) = (Duration::ZERO, Duration::ZERO);
        let mut report = RunReport::default();
        while let Some(msg) = queue.pop() {
            let step = Instant::now();
            let r = handle(&deps, &queue, &msg)
                .await
                .context("running the campaign")?;
            match msg {
                SendMessage::FanOut { .. } => fan_out_time += step.elapsed(),
                SendMessage::Deliver { .. } => delivery_time += step.elapsed(),
            }
            report.sent += r.sent;
            report.failed += r.failed;
        }
        split = Some((fan_out_time, delivery_time));
        report
    } else {
        run_campaign(&deps, &tenant, &campaign.campaign_id)
            .await
            .context("running the campaign")?
    };
    let elapsed = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:").unwrap_or(0);
    let got = store
        .get_campaign(&tenant, &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?;
    let outbox_bytes: u64 = std::fs::read_dir(dir.join("outbox"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let (anon, file) = (status_kib("RssAnon:"), status_kib("RssFile:"));

    println!(
        "campaign of {} contacts, outcome_flush {}, send concurrency {}, steps {}",
        args.contacts, args.outcome_flush, args.concurrency, args.steps
    );
    println!(
        "  status {:?}, targeted {}, sent {}, failed {}, skipped no_email {}",
        got.status, got.targeted, report.sent, report.failed, got.skipped.no_email
    );
    println!(
        "  {:.0} invitations/s ({:.2} s for {} emails)",
        report.sent as f64 / elapsed,
        elapsed,
        report.sent
    );
    if let Some((fan_out_time, delivery_time)) = split {
        println!(
            "  of which fan-out {:.2} s ({:.0} claims/s), delivery {:.2} s ({:.0} emails/s)",
            fan_out_time.as_secs_f64(),
            got.targeted as f64 / fan_out_time.as_secs_f64(),
            delivery_time.as_secs_f64(),
            report.sent as f64 / delivery_time.as_secs_f64()
        );
    }
    println!(
        "  peak RSS during the send {:.1} MiB (RSS before {:.1} MiB{})",
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        if rss_reset {
            ""
        } else {
            "; peak not reset: includes loading"
        }
    );
    println!(
        "  RSS at the end: {:.1} MiB anonymous, {:.1} MiB file-backed",
        anon.unwrap_or(0) as f64 / 1024.0,
        file.unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "  mailer {}, outbox {:.1} MiB",
        if args.null_mailer { "null" } else { "outbox" },
        outbox_bytes as f64 / (1024.0 * 1024.0)
    );
    if got.status != CampaignStatus::Completed {
        bail!("the campaign ended {:?}, not completed", got.status);
    }
    Ok(())
}
