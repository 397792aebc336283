//! `bench-recurring`: a recurring setting run over a large tenant on the embedded store, and
//! (optionally) the AWS requests of its runs on moto.
//!
//! **Embedded store.** `--divisions` divisions (default 10) of `--contacts` contacts each
//! (default 100,000; the deterministic demo generator, about 8% without an address) on a
//! file-backed SQLite store in a temporary directory, the `welcome` template, and one
//! setting over `all` divisions: weekly, at most 3 invitations, 09:00 UTC. The clock is an
//! injected one; the mailer drops every message (like `bench-send --null-mailer`: the
//! pipeline alone). Three run days:
//!
//! 1. **day 0** — everyone is new: the time to decide the targets (`preview`: the same walk
//!    over every contact the run makes), the run itself (`run_setting`: claim the day, find
//!    someone due, record the campaign, queue its fan-out) and the time to finish its
//!    campaign (fan-out and delivery drained through `handle`, as the local server's worker
//!    runs them, with its concurrency settings);
//! 2. **day 1** — nobody is due (everyone was invited yesterday): what most days cost, a
//!    walk over every contact that finds nobody and records the run without a campaign;
//! 3. **day 7** — every pending contact is due its first reminder: preview, run, finish.
//!
//! For each it prints times, rates and the peak RSS (reset through `/proc/self/clear_refs`
//! before each phase), and fails unless each campaign completed with one email per contact
//! with an address.
//!
//! **DynamoDB on moto** (`--moto N`, default 0: skipped). The same three days over N
//! contacts (spread over the same divisions) on a DynamoDB table in moto (started through
//! `infra/scripts/moto_bench.py`, like `bench-dynamodb`), the runs' bus an EventBridge bus
//! whose requests are counted (the messages are also queued in-process, where `handle` takes
//! them one at a time as the Lambda functions do, with their `OUTCOME_FLUSH`). It prints the
//! DynamoDB and EventBridge requests of each day by operation, per 1,000 invitations
//! (reminders on day 7), against the ≤ 60 target of a manual send. Seeding is not counted.
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-recurring -- --contacts 100000
//! cargo run --profile bench -p portal-invites --bin bench-recurring -- --contacts 10000 --moto 2000
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_trait::async_trait;
use clap::Parser;
use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::{create_table, DynamoStore};
use portal_aws::eventbridge::EventBridgeBus;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{
    CampaignId, CampaignStatus, DivisionId, Filters, PublicUrl, RecurringId, TemplateId, TenantId,
};
use portal_core::ports::{BusError, EventBus, FixedClock, SendMessage, Store};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::{self, LocalSchedules, RunOutcome, SettingInput};
use portal_core::usecases::send::queue::QueueBus;
use portal_core::usecases::send::{
    drain, handle, RateLimiter, RunReport, SendConfig, SendDeps, TokenDeriver, TokioSleeper,
};
use portal_embedded::sqlite::SqliteStore;
use portal_invites::bench::{load_division, welcome_template, NullMailer};
use portal_testkit::moto::{client, counted_client, Moto, INSTALL_HINT};
use time::macros::datetime;
use time::OffsetDateTime;

/// The Python script moto is started through (see `bench-dynamodb`).
const MOTO_PATCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_bench.py");
/// What a manual send's requests are held to (issue 3); the recurring issue asks the same.
const TARGET_DYNAMODB_EVENTBRIDGE_PER_1000: f64 = 60.0;
/// Day 0, 08:00 UTC: when the setting is saved (its runs are due at 09:00).
const SAVED_AT: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);

#[derive(Debug, Parser)]
#[command(
    name = "bench-recurring",
    about = "Benchmark a recurring setting's runs over a large tenant (embedded store; optionally the AWS requests on moto)"
)]
struct Args {
    /// Divisions of the tenant.
    #[arg(long, default_value_t = 10)]
    divisions: usize,
    /// Contacts per division on the embedded store (0: skip the embedded store).
    #[arg(long, default_value_t = 100_000)]
    contacts: usize,
    /// Sends between outcome writes on the embedded store (see `SendConfig::outcome_flush`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_OUTCOME_FLUSH)]
    outcome_flush: usize,
    /// Emails of a batch in flight at once (see `SendConfig::send_concurrency`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_SEND_CONCURRENCY)]
    concurrency: usize,
    /// Bus messages handled at once (see `SendConfig::step_concurrency`).
    #[arg(long, default_value_t = portal_invites::serve::SERVE_STEP_CONCURRENCY)]
    steps: usize,
    /// Contacts of the DynamoDB scenario on moto, over the same divisions (0: skip it).
    #[arg(long, default_value_t = 0)]
    moto: usize,
    /// Where to put the database (default: a fresh temporary directory, removed at the end).
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

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn setting_id() -> RecurringId {
    RecurringId::parse("weekly").expect("a valid id")
}

/// Weekly, at most 3, 09:00 UTC, over every division.
fn setting_input() -> anyhow::Result<SettingInput> {
    Ok(SettingInput {
        enabled: true,
        scope: "all".into(),
        division_ids: Vec::new(),
        filters: Filters::default(),
        template_id: TemplateId::parse("welcome")?,
        email_from: None,
        cadence_days: 7,
        max_invitations_per_contact: 3,
        hour_of_day: 9,
        time_zone: "UTC".into(),
    })
}

fn divisions(n: usize) -> anyhow::Result<Vec<DivisionId>> {
    (0..n)
        .map(|i| Ok(DivisionId::parse(format!("div-{i:02}"))?))
        .collect()
}

fn deps(
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    config: SendConfig,
) -> anyhow::Result<SendDeps> {
    Ok(SendDeps {
        store,
        mailer: Arc::new(NullMailer),
        clock,
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(UnsubscribeSigner::new([7u8; 32])?)),
        tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
        public_url: PublicUrl::parse("http://127.0.0.1:3000").expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    })
}

/// What one run day did.
struct Day {
    label: &'static str,
    preview: Option<(Duration, u64, u64)>,
    run: Duration,
    outcome: RunOutcome,
    finish: Duration,
    report: RunReport,
    /// Time in fan-out and in delivery, when the steps ran one at a time.
    split: Option<(Duration, Duration)>,
    campaigns: Vec<CampaignId>,
}

/// One run day at `at`: the preview (unless `preview` is false), the run, then its
/// campaigns drained through `handle` (one step at a time, timed by kind, when
/// `deps.config.step_concurrency` is 1).
#[allow(clippy::too_many_arguments)]
async fn run_day(
    label: &'static str,
    store: &Arc<dyn Store>,
    deps: &SendDeps,
    clock: &FixedClock,
    sending: &Sending,
    queue: &QueueBus,
    tenant: &TenantId,
    at: OffsetDateTime,
    preview: bool,
) -> anyhow::Result<Day> {
    clock.set(at);
    let preview = if preview {
        let start = Instant::now();
        let (_, counts) = recurring::preview(&**store, clock, tenant, &setting_id()).await?;
        Some((start.elapsed(), counts.total, counts.eligible))
    } else {
        None
    };
    let start = Instant::now();
    let outcome =
        recurring::run_setting(&**store, clock, sending, tenant, &setting_id(), None).await?;
    let run = start.elapsed();

    let start = Instant::now();
    let mut split = None;
    let report = if deps.config.step_concurrency <= 1 {
        let (mut fan_out, mut delivery) = (Duration::ZERO, Duration::ZERO);
        let mut report = RunReport::default();
        while let Some(msg) = queue.pop() {
            let step = Instant::now();
            let r = handle(deps, queue, &msg)
                .await
                .context("running the campaign")?;
            match msg {
                SendMessage::FanOut { .. } => fan_out += step.elapsed(),
                SendMessage::Deliver { .. } => delivery += step.elapsed(),
            }
            report.sent += r.sent;
            report.failed += r.failed;
        }
        split = Some((fan_out, delivery));
        report
    } else {
        drain(deps, queue).await.context("running the campaign")?
    };
    let finish = start.elapsed();

    // The run's campaigns: the newest of each division's history made by this run.
    let mut campaigns = BTreeSet::new();
    if let RunOutcome::Queued { run } = &outcome {
        for d in store.list_divisions(tenant).await? {
            let page = store
                .list_campaigns(tenant, &d.division_id, None, 5)
                .await?;
            for c in page.items {
                if c.recurring
                    .as_ref()
                    .is_some_and(|r| r.local_date == run.local_date)
                {
                    campaigns.insert(c.campaign_id);
                }
            }
        }
    }
    Ok(Day {
        label,
        preview,
        run,
        outcome,
        finish,
        report,
        split,
        campaigns: campaigns.into_iter().collect(),
    })
}

/// Prints a day and checks its campaigns completed with `expected` emails.
async fn print_day(
    store: &dyn Store,
    tenant: &TenantId,
    day: &Day,
    expected: u64,
) -> anyhow::Result<()> {
    println!("{}", day.label);
    if let Some((t, total, eligible)) = day.preview {
        println!(
            "  decide the targets (preview): {:.2} s for {total} contacts ({:.0} contacts/s), {eligible} to invite",
            t.as_secs_f64(),
            total as f64 / t.as_secs_f64()
        );
    }
    let outcome = match &day.outcome {
        RunOutcome::Queued { .. } => "queued".to_owned(),
        RunOutcome::NobodyDue { .. } => "nobody due (recorded, no campaign)".to_owned(),
        other => format!("{other:?}"),
    };
    println!("  run_setting: {:.3} s, {outcome}", day.run.as_secs_f64());
    let (mut targeted, mut no_email) = (0, 0);
    for c in &day.campaigns {
        let got = store
            .get_campaign(tenant, c)
            .await?
            .context("a campaign vanished")?;
        if got.status != CampaignStatus::Completed {
            bail!("campaign {c} ended {:?}, not completed", got.status);
        }
        targeted += got.targeted;
        no_email += got.skipped.no_email;
    }
    if !day.campaigns.is_empty() {
        println!(
            "  finish the campaign{}: {:.2} s, {} sent ({:.0} invitations/s), targeted {targeted}, skipped no_email {no_email}",
            if day.campaigns.len() > 1 { "s" } else { "" },
            day.finish.as_secs_f64(),
            day.report.sent,
            day.report.sent as f64 / day.finish.as_secs_f64()
        );
        if let Some((f, d)) = day.split {
            println!(
                "    of which fan-out {:.2} s ({:.0} claims/s), delivery {:.2} s ({:.0} emails/s)",
                f.as_secs_f64(),
                targeted as f64 / f.as_secs_f64(),
                d.as_secs_f64(),
                day.report.sent as f64 / d.as_secs_f64()
            );
        }
    }
    if day.report.sent != expected || day.report.failed != 0 {
        bail!(
            "{}: expected {expected} emails, sent {} (failed {})",
            day.label,
            day.report.sent,
            day.report.failed
        );
    }
    Ok(())
}

async fn embedded(args: &Args) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let sqlite = Arc::new(SqliteStore::open(&dir.join("bench.db"))?);
    let store: Arc<dyn Store> = sqlite.clone();
    let tenant = TenantId::parse("bench")?;

    let start = Instant::now();
    for d in divisions(args.divisions)? {
        load_division(&*store, &tenant, &d, args.contacts).await?;
    }
    store.put_template(&tenant, &welcome_template()?).await?;
    let total = args.divisions * args.contacts;
    println!(
        "EMBEDDED — {} divisions × {} contacts = {total} contacts, loaded in {:.1} s",
        args.divisions,
        args.contacts,
        start.elapsed().as_secs_f64()
    );

    let clock = Arc::new(FixedClock::new(SAVED_AT));
    recurring::save_setting(
        &*store,
        &LocalSchedules,
        &*clock,
        &tenant,
        setting_id(),
        setting_input()?,
    )
    .await?;
    let config = SendConfig {
        max_send_rate: None,
        outcome_flush: args.outcome_flush,
        send_concurrency: args.concurrency,
        step_concurrency: args.steps,
        ..SendConfig::default()
    };
    println!(
        "  setting: all divisions, weekly, at most 3, 09:00 UTC; null mailer, outcome_flush {}, send concurrency {}, steps {}\n",
        args.outcome_flush, args.concurrency, args.steps
    );
    let deps = deps(store.clone(), clock.clone(), config)?;
    let queue = Arc::new(QueueBus::default());
    let sending = Sending {
        bus: queue.clone(),
        tokens: deps.tokens.clone(),
        token_ttl: deps.config.token_ttl,
    };

    let mut invited = 0;
    for (label, at, preview) in [
        (
            "day 0 — first invitations",
            SAVED_AT + time::Duration::hours(1),
            true,
        ),
        (
            "day 1 — nobody due",
            SAVED_AT + time::Duration::hours(25),
            false,
        ),
        (
            "day 7 — first reminders",
            SAVED_AT + time::Duration::days(7) + time::Duration::hours(1),
            true,
        ),
    ] {
        let rss_reset = reset_peak_rss();
        let day = run_day(
            label, &store, &deps, &clock, &sending, &queue, &tenant, at, preview,
        )
        .await?;
        let expected = match label {
            l if l.starts_with("day 0") => {
                invited = day.report.sent;
                day.report.sent
            }
            l if l.starts_with("day 1") => 0,
            _ => invited,
        };
        print_day(&*store, &tenant, &day, expected).await?;
        println!(
            "  peak RSS {:.1} MiB{}\n",
            mib(status_kib("VmHWM:").unwrap_or(0)),
            if rss_reset {
                ""
            } else {
                " (not reset: since start)"
            }
        );
    }
    Ok(())
}

/// The runs' bus on moto: each publish goes to EventBridge (counted, then dropped: the bus
/// has no rule) and to the in-process queue the benchmark drains.
struct Tee {
    eventbridge: EventBridgeBus,
    queue: Arc<QueueBus>,
}

#[async_trait]
impl EventBus for Tee {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        self.eventbridge.publish(messages).await?;
        self.queue.publish(messages).await
    }
}

async fn on_moto(args: &Args) -> anyhow::Result<()> {
    let moto = Moto::builder()
        .python_script(MOTO_PATCH)
        .start()
        .map_err(|e| anyhow::anyhow!("{e}\n{INSTALL_HINT}"))?;
    let endpoint = moto.endpoint().to_owned();
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    );
    let dynamo = RequestCounter::new();
    let events = RequestCounter::new();
    let table = format!("bench-recurring-{run_id}");
    create_table(&client(&endpoint), &table).await?;
    let bus_name = format!("bench-recurring-{run_id}");
    client::<aws_sdk_eventbridge::Client>(&endpoint)
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .context("CreateEventBus")?;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(
        counted_client(&endpoint, &dynamo),
        table.clone(),
    ));
    let tenant = TenantId::parse("bench")?;
    let divisions = divisions(args.divisions)?;
    let start = Instant::now();
    let per = args.moto.div_ceil(divisions.len().max(1));
    let mut left = args.moto;
    for d in &divisions {
        let n = per.min(left);
        load_division(&*store, &tenant, d, n).await?;
        left -= n;
    }
    store.put_template(&tenant, &welcome_template()?).await?;
    let clock = Arc::new(FixedClock::new(SAVED_AT));
    recurring::save_setting(
        &*store,
        &LocalSchedules,
        &*clock,
        &tenant,
        setting_id(),
        setting_input()?,
    )
    .await?;
    println!(
        "DYNAMODB ON MOTO — table {table}, bus {bus_name}: {} contacts over {} divisions (seeded in {:.1} s); steps one at a time, outcome_flush {} (Lambda's)\n",
        args.moto,
        divisions.len(),
        start.elapsed().as_secs_f64(),
        portal_lambda::config::LAMBDA_OUTCOME_FLUSH
    );
    let config = SendConfig {
        max_send_rate: None,
        outcome_flush: portal_lambda::config::LAMBDA_OUTCOME_FLUSH,
        ..SendConfig::default()
    };
    let deps = deps(store.clone(), clock.clone(), config)?;
    let queue = Arc::new(QueueBus::default());
    let sending = Sending {
        bus: Arc::new(Tee {
            eventbridge: EventBridgeBus::new(counted_client(&endpoint, &events), &bus_name),
            queue: queue.clone(),
        }),
        tokens: deps.tokens.clone(),
        token_ttl: deps.config.token_ttl,
    };
    // Delivery steps publish nothing; fan-out pages publish their batches and next page
    // through the same tee (what EventBridge carries between the functions).
    let deps_bus = Tee {
        eventbridge: EventBridgeBus::new(counted_client(&endpoint, &events), &bus_name),
        queue: queue.clone(),
    };

    let mut invited = 0u64;
    for (label, at) in [
        (
            "day 0 — first invitations",
            SAVED_AT + time::Duration::hours(1),
        ),
        ("day 1 — nobody due", SAVED_AT + time::Duration::hours(25)),
        (
            "day 7 — first reminders",
            SAVED_AT + time::Duration::days(7) + time::Duration::hours(1),
        ),
    ] {
        clock.set(at);
        dynamo.reset();
        events.reset();
        let start = Instant::now();
        let outcome =
            recurring::run_setting(&*store, &*clock, &sending, &tenant, &setting_id(), None)
                .await?;
        let run_requests = dynamo.total() + events.total();
        let mut report = RunReport::default();
        while let Some(msg) = queue.pop() {
            let r = handle(&deps, &deps_bus, &msg)
                .await
                .context("running the campaign")?;
            report.sent += r.sent;
            report.failed += r.failed;
        }
        let elapsed = start.elapsed();
        let expected = match label {
            l if l.starts_with("day 0") => {
                invited = report.sent;
                invited
            }
            l if l.starts_with("day 1") => 0,
            _ => invited,
        };
        if report.sent != expected || report.failed != 0 {
            bail!(
                "{label}: expected {expected} emails, sent {} (failed {})",
                report.sent,
                report.failed
            );
        }
        let kind = match &outcome {
            RunOutcome::Queued { .. } => "queued",
            RunOutcome::NobodyDue { .. } => "nobody due",
            _ => "other",
        };
        println!(
            "{label}: {kind}, {} emails, {:.1} s (moto; for orientation only)",
            report.sent,
            elapsed.as_secs_f64()
        );
        println!("  run_setting alone: {run_requests} requests");
        let per_1000 = |n: u64| n as f64 * 1000.0 / report.sent.max(1) as f64;
        // Per 1,000 emails; a day that sent none shows its requests only.
        let rate = |n: u64| {
            if report.sent == 0 {
                format!("{:>9}", "-")
            } else {
                format!("{:>9.1}", per_1000(n))
            }
        };
        for ((_, op), n) in dynamo.snapshot() {
            let note = if op == "Query" { " (pages)" } else { "" };
            println!("    DynamoDB    {op:<20} {n:>7} {}{note}", rate(n));
        }
        for ((_, op), n) in events.snapshot() {
            println!("    EventBridge {op:<20} {n:>7} {}", rate(n));
        }
        let both = dynamo.total() + events.total();
        if report.sent > 0 {
            println!(
                "    DynamoDB + EventBridge           {both:>7} {:>9.1} per 1,000 {}   target ≤ {TARGET_DYNAMODB_EVENTBRIDGE_PER_1000:.0}: {}\n",
                per_1000(both),
                if label.starts_with("day 7") { "reminders" } else { "invitations" },
                if per_1000(both) <= TARGET_DYNAMODB_EVENTBRIDGE_PER_1000 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        } else {
            println!("    DynamoDB + EventBridge           {both:>7}   (a day with nobody due)\n");
        }
    }
    drop(moto);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.divisions == 0 {
        bail!("--divisions must be at least 1");
    }
    if args.contacts > 0 {
        embedded(&args).await?;
    }
    if args.moto > 0 {
        on_moto(&args).await?;
    }
    Ok(())
}
