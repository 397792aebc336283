//! `bench-dynamodb`: what the DynamoDB store (and, for a send, EventBridge and SES) costs in
//! requests, on a moto server.
//!
//! Three scenarios, each on a fresh table; any can be left out with `0`:
//!
//! - **SES events** (`--events N`, default 300): a campaign over N contacts sent into a null
//!   mailer, then a shuffled stream of SES event records for its invitations (about 5 per
//!   invitation, 10% duplicated) fed one at a time through the webhook's core, as SNS
//!   delivers them. It prints write requests per state-changing event (target 1) and per
//!   event that changed nothing (target 0) and reads per event; then feeds the sorted,
//!   unique stream to the same invitations on a second table and fails unless both end in
//!   the same categories with counters equal to a recount.
//! - **send** (`--send N`, default 2,000): one campaign to a division of N contacts run the
//!   way the Lambda functions run it. A `FanOut` message is published on an EventBridge bus
//!   whose rule targets an SQS queue; the queue stands in for EventBridge's delivery to the
//!   fan-out and delivery functions: each event read from it goes through
//!   `message_from_eventbridge` and `send::handle` (DynamoDB store, SES v2 mailer, EventBridge
//!   bus, the Lambda's `OUTCOME_FLUSH`, no send rate), until the queue is empty. It prints
//!   the requests per 1,000 invitations — DynamoDB by operation, EventBridge `PutEvents`, SES
//!   `SendEmail` — against the targets (DynamoDB + EventBridge ≤ 60, SES 1 per invitation),
//!   and fails unless the campaign completed and moto's SES received exactly one email per
//!   eligible contact. Seeding and the SQS reads are not counted.
//! - **sync** (`--contacts N`, default 100,000): syncs one division of N contacts
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
//! cargo run --release -p portal-invites --bin bench-dynamodb [-- --send 2000] [--contacts 100000] [--endpoint URL]
//! cargo run --release -p portal-invites --bin bench-dynamodb -- --contacts 0   # the send only
//! ```
//!
//! Without `--endpoint` it starts `moto_server` (from `$MOTO_SERVER`, `./.venv/bin` or
//! `PATH`) on a free loopback port, under a watchdog that stops it when this process
//! exits. moto's `TransactWriteItems` copies the whole table once per item of a transaction
//! (rollback backups), which makes every claim and outcome write cost seconds on a table of
//! a few thousand items; so moto is started backing up only the items a transaction names
//! (see [`MOTO_ONE_BACKUP_PER_TRANSACTION`]) — same answers, same counts — unless
//! `--stock-moto` is given. The send reads the emails back from moto (`GET /moto-api/data.json`), so an
//! `--endpoint` must be a moto server on `http://`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use clap::Parser;
use portal_core::adapters::aws_metrics::RequestCounter;
use portal_core::adapters::dynamodb::{create_table, DynamoStore};
use portal_core::adapters::eventbridge::EventBridgeBus;
use portal_core::adapters::ses::SesMailer;
use portal_core::demo;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{
    CampaignStatus, DivisionId, DivisionInput, Email, Filters, Group, TenantId,
};
use portal_core::ports::{
    AccountStore, CampaignStore, ContactQuery, ContactStore, DivisionStore, EventBus, ListQuery,
    SendMessage, SystemClock, EVENT_SOURCE,
};
use portal_core::usecases::send::settings::LAMBDA_OUTCOME_FLUSH;
use portal_core::usecases::send::{
    handle, message_from_eventbridge, RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper,
};
use portal_core::usecases::sync::{self, SYNC_CHUNK};
use serde_json::Value;
use time::OffsetDateTime;

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

/// Accounts per sync request, like one `POST /v1/sync/accounts` body.
const SYNC_REQUEST_ACCOUNTS: usize = 10_000;
const PAGE: u32 = 500;
/// What the send scenario's figures are held to (issue 3, "Benchmarks").
const TARGET_DYNAMODB_EVENTBRIDGE_PER_1000: f64 = 60.0;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.outcome_flush == 0 {
        bail!("--outcome-flush must be at least 1");
    }
    let _moto;
    let endpoint = match &args.endpoint {
        Some(e) => e.clone(),
        None => {
            let (child, url) = start_moto(!args.stock_moto)?;
            _moto = child;
            url
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("endpoint {endpoint}\n");
    if args.events > 0 {
        rt.block_on(run_events(args.events, &endpoint))?;
    }
    if args.send > 0 {
        rt.block_on(run_send(args.send, args.outcome_flush, &endpoint))?;
    }
    if args.contacts > 0 {
        rt.block_on(run(args.contacts, &endpoint))?;
    }
    Ok(())
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
    let table = format!("bench-sync-{}", std::process::id());
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
    println!("SYNC — table {table}, {size} contacts in one division\n");

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

/// The send scenario (see the module docs).
async fn run_send(size: usize, outcome_flush: usize, endpoint: &str) -> anyhow::Result<()> {
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    );
    let dynamo_counter = RequestCounter::new();
    let events_counter = RequestCounter::new();
    let ses_counter = RequestCounter::new();

    // Table, bus → rule → queue, verified sender: set up with uncounted clients.
    let table = format!("bench-send-{run_id}");
    create_table(&dynamodb_client(endpoint, None), &table).await?;
    let store = Arc::new(DynamoStore::new(
        dynamodb_client(endpoint, Some(&dynamo_counter)),
        table.clone(),
    ));
    let setup_events = eventbridge_client(endpoint, None);
    let sqs = sqs_client(endpoint);
    let bus_name = format!("bench-send-{run_id}");
    let queue_url = wire_bus(&setup_events, &sqs, &bus_name).await?;
    let sender = Email::parse(&format!("board-{run_id}@oakhills.example.org"))?;
    ses_client(endpoint, None)
        .create_email_identity()
        .email_identity(sender.as_str())
        .send()
        .await
        .context("CreateEmailIdentity")?;

    // Seed: one division, its contacts, a template, a queued campaign.
    let tenant = TenantId::parse("bench")?;
    let division = DivisionId::parse("oak-hills")?;
    let start = Instant::now();
    store
        .put_division(
            &tenant,
            &DivisionInput::new(division.clone(), "Oak Hills HOA".into(), sender.clone())?,
        )
        .await?;
    // Addresses of the eligible contacts (on a fresh table: every contact with one), with
    // how many contacts share each.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut written, mut next) = (0usize, 0u64);
    while written < size {
        let mut chunk = demo::accounts(demo::DEMO_SEED, &division, next, SYNC_CHUNK)?;
        next += SYNC_CHUNK as u64;
        let mut kept = Vec::with_capacity(chunk.len());
        for mut a in chunk.drain(..) {
            if written >= size {
                break;
            }
            a.contacts.truncate(size - written);
            written += a.contacts.len();
            for email in a.contacts.iter().filter_map(|c| c.email.as_ref()) {
                *expected.entry(email.normalized()).or_default() += 1;
            }
            kept.push(a);
        }
        store.upsert_accounts(&tenant, &kept).await?;
    }
    let eligible: u64 = expected.values().sum();
    let campaign =
        portal_invites::bench::record_campaign(&*store, &tenant, &division, sender.clone()).await?;
    println!(
        "SEND — table {table}, bus {bus_name}: {size} contacts in one division, {eligible} with \
         an address; outcome_flush {outcome_flush}, no send rate (seeded in {:.1} s)",
        start.elapsed().as_secs_f64()
    );

    // Run it as the Lambda functions would.
    let config = SendConfig {
        max_send_rate: None,
        outcome_flush,
        ..SendConfig::default()
    };
    let deps = SendDeps {
        store: store.clone(),
        mailer: Arc::new(SesMailer::new(
            ses_client(endpoint, Some(&ses_counter)),
            None,
        )),
        clock: Arc::new(SystemClock),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Arc::new(UnsubscribeSigner::new([7u8; 32])?),
        tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
        public_url: "https://invite.example.org".into(),
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    };
    let bus = EventBridgeBus::new(
        eventbridge_client(endpoint, Some(&events_counter)),
        &bus_name,
    );
    for c in [&dynamo_counter, &events_counter, &ses_counter] {
        c.reset();
    }
    let start = Instant::now();
    // What `POST /v1/campaigns` publishes once the campaign is recorded.
    bus.publish(&[SendMessage::FanOut {
        tenant: tenant.clone(),
        campaign_id: campaign.campaign_id.clone(),
        cursor: None,
    }])
    .await
    .context("publishing the first FanOut")?;
    let mut handled: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut sent, mut failed) = (0u64, 0u64);
    // Every step publishes before it returns and moto delivers to the queue within PutEvents,
    // so an empty queue means nothing is left in flight.
    let most_messages = 10 + 2 * size as u64;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .context("ReceiveMessage")?;
        let messages = out.messages();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let event: Value = serde_json::from_str(m.body().context("an event without a body")?)
                .context("the event is not JSON")?;
            let msg = message_from_eventbridge(&event).context("reading the event")?;
            let r = handle(&deps, &bus, &msg)
                .await
                .with_context(|| format!("handling a {} message", msg.detail_type()))?;
            sent += r.sent;
            failed += r.failed;
            *handled.entry(msg.detail_type()).or_default() += 1;
            eprintln!(
                "  {} handled, {sent} sent ({:.0?})",
                msg.detail_type(),
                start.elapsed()
            );
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().context("a message without a receipt")?)
                .send()
                .await
                .context("DeleteMessage")?;
        }
        if handled.values().sum::<u64>() > most_messages {
            bail!("more than {most_messages} bus messages: the send does not converge");
        }
    }
    let elapsed = start.elapsed();
    let dynamo = dynamo_counter.snapshot();
    let put_events = events_counter.get("PutEvents");
    let events_total = events_counter.total();
    let send_email = ses_counter.get("SendEmail");
    let ses_total = ses_counter.total();

    // The outcome.
    let got = store
        .get_campaign(&tenant, &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?;
    // moto's data dump would list every item of the table (minutes at this size): drop the
    // table first, so the dump holds little more than the emails.
    dynamodb_client(endpoint, None)
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .context("DeleteTable")?;
    let received = sent_emails(endpoint, sender.as_str()).await?;
    println!(
        "  status {:?}, targeted {}, sent {sent}, failed {failed}, skipped no_email {}; bus \
         messages handled: {}",
        got.status,
        got.targeted,
        got.skipped.no_email,
        handled
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let invitations = sent.max(1) as f64;
    let per_1000 = |n: u64| n as f64 * 1000.0 / invitations;
    let dynamo_total: u64 = dynamo.values().sum();
    println!(
        "  requests in {:.1} s, total and per 1,000 invitations ({sent} invitations):",
        elapsed.as_secs_f64()
    );
    for ((_, op), n) in &dynamo {
        let note = if op == "Query" { " (pages)" } else { "" };
        println!(
            "    DynamoDB    {op:<20} {n:>7} {:>9.1}{note}",
            per_1000(*n)
        );
    }
    println!(
        "    DynamoDB    {:<20} {dynamo_total:>7} {:>9.1}",
        "total",
        per_1000(dynamo_total)
    );
    for ((_, op), n) in events_counter.snapshot() {
        println!("    EventBridge {op:<20} {n:>7} {:>9.1}", per_1000(n));
    }
    let both = dynamo_total + events_total;
    let both_per_1000 = per_1000(both);
    println!(
        "    DynamoDB + EventBridge           {both:>7} {both_per_1000:>9.1}   target ≤ \
         {TARGET_DYNAMODB_EVENTBRIDGE_PER_1000:.0}: {}",
        if both_per_1000 <= TARGET_DYNAMODB_EVENTBRIDGE_PER_1000 {
            "met"
        } else {
            "NOT met"
        }
    );
    for ((_, op), n) in ses_counter.snapshot() {
        println!(
            "    SES         {op:<20} {n:>7} {:>9.1}   target 1 per invitation",
            per_1000(n)
        );
    }
    println!("  (not counted: seeding, recording the campaign, the SQS reads standing in for EventBridge → Lambda)\n");

    let mut problems = Vec::new();
    if got.status != CampaignStatus::Completed {
        problems.push(format!(
            "the campaign ended {:?}, not completed",
            got.status
        ));
    }
    if got.targeted != eligible || sent != eligible || failed != 0 {
        problems.push(format!(
            "{eligible} eligible contacts, but targeted {}, sent {sent}, failed {failed}",
            got.targeted
        ));
    }
    if send_email != eligible || ses_total != send_email {
        problems.push(format!(
            "{send_email} SES SendEmail requests ({ses_total} in all) for {eligible} eligible \
             contacts"
        ));
    }
    if put_events != events_total {
        problems.push(format!(
            "EventBridge requests other than PutEvents: {:?}",
            events_counter.snapshot()
        ));
    }
    if received != expected {
        let mut diff: Vec<String> = expected
            .keys()
            .chain(received.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|a| expected.get(*a) != received.get(*a))
            .take(5)
            .map(|a| {
                format!(
                    "{a}: expected {}, received {}",
                    expected.get(a).copied().unwrap_or(0),
                    received.get(a).copied().unwrap_or(0)
                )
            })
            .collect();
        diff.insert(
            0,
            format!(
                "moto received {} emails from {sender}, expected {eligible}",
                received.values().sum::<u64>()
            ),
        );
        problems.push(diff.join("; "));
    }
    if !problems.is_empty() {
        bail!("the send went wrong: {}", problems.join(" | "));
    }
    println!(
        "  checked: campaign completed; moto's SES received exactly one email per eligible \
         contact ({eligible})\n"
    );
    Ok(())
}

/// The SES events scenario: a campaign over `size` contacts sent into a null mailer, then a
/// shuffled stream of SES event records for it (10% duplicated) fed one at a time through
/// the webhook's core, as SNS delivers them, counting each event's DynamoDB requests. The
/// same invitations on a second table get the sorted, unique stream: both must end in the
/// same categories, with counters equal to a recount.
async fn run_events(size: usize, endpoint: &str) -> anyhow::Result<()> {
    use portal_core::domain::{ContactId, InvitationCategory};
    use portal_core::ses_events::{parse_record, Parsed};
    use portal_core::usecases::events::{self, AddressedFact};
    use portal_invites::simulate::{all_invitations, invitation_records, Mix};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    let tenant = TenantId::parse("bench")?;
    let now = OffsetDateTime::now_utc();
    // One table with its campaign sent; each invitation's records seeded by its contact, so
    // both tables get the same events.
    let world = |name: &'static str, counter: RequestCounter| {
        let tenant = tenant.clone();
        async move {
            let table = format!("bench-events-{name}-{}", std::process::id());
            create_table(&dynamodb_client(endpoint, None), &table).await?;
            let store = Arc::new(DynamoStore::new(
                dynamodb_client(endpoint, Some(&counter)),
                table.clone(),
            ));
            let division = DivisionId::parse("oak-hills")?;
            portal_invites::bench::load_division(&*store, &tenant, &division, size).await?;
            let campaign = portal_invites::bench::record_campaign(
                &*store,
                &tenant,
                &division,
                Email::parse("board@oakhills.example.org")?,
            )
            .await?;
            let deps = SendDeps {
                store: store.clone(),
                mailer: Arc::new(portal_invites::bench::NullMailer),
                clock: Arc::new(SystemClock),
                sleeper: Arc::new(TokioSleeper),
                unsubscribe: Arc::new(UnsubscribeSigner::new([7u8; 32])?),
                tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
                public_url: "https://invite.example.org".into(),
                limiter: Arc::new(RateLimiter::new(None)),
                config: SendConfig {
                    max_send_rate: None,
                    ..SendConfig::default()
                },
            };
            portal_core::usecases::send::run_campaign(&deps, &tenant, &campaign.campaign_id)
                .await?;
            let mut records = Vec::new();
            for inv in all_invitations(&*store, &tenant, &campaign.campaign_id).await? {
                let seed = inv.contact_id.as_str().bytes().fold(7u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                records.extend(invitation_records(&tenant, &inv, &Mix::BUSY, &mut rng, now));
            }
            anyhow::Ok((store, campaign, table, records))
        }
    };
    let feed = |store: Arc<DynamoStore>, stream: Vec<String>, counter: RequestCounter| async move {
        let writes = |c: &RequestCounter| {
            c.get("TransactWriteItems")
                + c.get("UpdateItem")
                + c.get("PutItem")
                + c.get("BatchWriteItem")
                + c.get("DeleteItem")
        };
        let (mut changed, mut unchanged) = (0u64, 0u64);
        let (mut writes_changed, mut writes_unchanged, mut reads) = (0u64, 0u64, 0u64);
        for record in &stream {
            let Parsed::Event(e) = parse_record(record)? else {
                bail!("a generated record was ignored: {record}");
            };
            let fact = AddressedFact::from_ses(&e).map_err(|r| anyhow::anyhow!("{r}"))?;
            let (w0, t0) = (writes(&counter), counter.total());
            let r = events::apply(&*store, [fact]).await?;
            let (w, t) = (writes(&counter) - w0, counter.total() - t0);
            reads += t - w;
            if r.changed > 0 {
                changed += 1;
                writes_changed += w;
            } else {
                unchanged += 1;
                writes_unchanged += w;
            }
        }
        anyhow::Ok((changed, unchanged, writes_changed, writes_unchanged, reads))
    };
    let categories = |store: Arc<DynamoStore>, campaign: portal_core::domain::Campaign| {
        let tenant = tenant.clone();
        async move {
            let all = all_invitations(&*store, &tenant, &campaign.campaign_id).await?;
            let recount = store
                .recount_campaign(&tenant, &campaign.campaign_id, false)
                .await?
                .context("the campaign vanished")?;
            if recount.drifted() {
                bail!("the counters drift from the recount: {recount:?}");
            }
            anyhow::Ok(
                all.into_iter()
                    .map(|i| (i.contact_id.clone(), i.category()))
                    .collect::<BTreeMap<ContactId, InvitationCategory>>(),
            )
        }
    };

    let counter = RequestCounter::new();
    let start = Instant::now();
    let (store, campaign, table, unique) = world("shuffled", counter.clone()).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut stream = unique.clone();
    for _ in 0..unique.len() / 9 {
        stream.push(unique[rng.random_range(0..unique.len())].clone());
    }
    stream.shuffle(&mut rng);
    println!(
        "SES EVENTS — table {table}: {} records ({} unique) for the {} invitations of {size} contacts, one per call (set up in {:.0} s)",
        stream.len(),
        unique.len(),
        campaign_targeted(&store, &tenant, &campaign).await?,
        start.elapsed().as_secs_f64()
    );
    counter.reset();
    let start = Instant::now();
    let (changed, unchanged, writes_changed, writes_unchanged, reads) =
        feed(store.clone(), stream.clone(), counter.clone()).await?;
    println!(
        "  {} events in {:.1} s: {changed} changed an invitation, {unchanged} changed nothing",
        stream.len(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "  write requests per state-changing event {:.2} (target 1); per event that changed nothing {:.2} (target 0); reads per event {:.2}",
        writes_changed as f64 / changed.max(1) as f64,
        writes_unchanged as f64 / unchanged.max(1) as f64,
        reads as f64 / stream.len().max(1) as f64
    );
    for ((_, op), n) in counter.snapshot() {
        println!("    {op:<20} {n:>7}");
    }
    let shuffled = categories(store, campaign).await?;

    let other = RequestCounter::new();
    let (sorted_store, sorted_campaign, sorted_table, sorted_records) =
        world("sorted", other.clone()).await?;
    feed(sorted_store.clone(), sorted_records, other).await?;
    let sorted = categories(sorted_store, sorted_campaign).await?;
    let differ = shuffled
        .iter()
        .filter(|(k, v)| sorted.get(*k) != Some(v))
        .count();
    if differ > 0 || shuffled.len() != sorted.len() {
        bail!("{differ} invitations differ between the shuffled and the sorted stream");
    }
    println!(
        "  the sorted, unique stream on {sorted_table} ends in the same category for all {} invitations; counters equal the recount on both tables\n",
        shuffled.len()
    );
    for t in [&table, &sorted_table] {
        dynamodb_client(endpoint, None)
            .delete_table()
            .table_name(t)
            .send()
            .await
            .context("DeleteTable")?;
    }
    Ok(())
}

async fn campaign_targeted(
    store: &DynamoStore,
    tenant: &TenantId,
    campaign: &portal_core::domain::Campaign,
) -> anyhow::Result<u64> {
    Ok(store
        .get_campaign(tenant, &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?
        .targeted)
}

/// Creates the bus, a queue and a rule routing this system's events to the queue; returns
/// the queue's URL.
async fn wire_bus(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus_name: &str,
) -> anyhow::Result<String> {
    events
        .create_event_bus()
        .name(bus_name)
        .send()
        .await
        .context("CreateEventBus")?;
    let queue_url = sqs
        .create_queue()
        .queue_name(bus_name)
        // A round of ten deliveries must not see its messages come back mid-way.
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "900",
        )
        .send()
        .await
        .context("CreateQueue")?
        .queue_url()
        .context("CreateQueue answered no URL")?
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .context("GetQueueAttributes")?
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("GetQueueAttributes answered no ARN")?
        .clone();
    let rule = format!("{bus_name}-send-steps");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus_name)
        .event_pattern(serde_json::json!({ "source": [EVENT_SOURCE] }).to_string())
        .send()
        .await
        .context("PutRule")?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus_name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .context("an EventBridge target")?,
        )
        .send()
        .await
        .context("PutTargets")?;
    Ok(queue_url)
}

/// The emails moto's SES accepted from `sender`, counted by (lower-cased) destination, read
/// from `GET /moto-api/data.json`.
async fn sent_emails(endpoint: &str, sender: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let host = endpoint
        .strip_prefix("http://")
        .context("reading the sent emails needs an http:// moto endpoint")?
        .trim_end_matches('/')
        .to_owned();
    let raw = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut conn = std::net::TcpStream::connect(&host)?;
        write!(
            conn,
            "GET /moto-api/data.json HTTP/1.0\r\nHost: {host}\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        Ok(raw)
    })
    .await?
    .context("GET /moto-api/data.json")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("/moto-api/data.json: not an HTTP answer")?;
    let data: Value =
        serde_json::from_slice(&raw[split + 4..]).context("/moto-api/data.json is not JSON")?;
    let mut messages = Vec::new();
    collect_raw_messages(&data["ses"], &mut messages);
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for m in messages.into_iter().filter(|m| m["source"] == sender) {
        let destinations = m["destinations"]
            .as_array()
            .context("a sent message without destinations")?;
        // moto lists the envelope recipient and the `To` header's: one address, twice.
        let mut to = std::collections::BTreeSet::new();
        for d in destinations {
            let d = d.as_str().context("a destination that is not a string")?;
            to.insert(d.to_ascii_lowercase());
        }
        for d in to {
            *out.entry(d).or_default() += 1;
        }
    }
    Ok(out)
}

/// Every object with a `raw_data` (a Raw message moto accepted), wherever it sits.
fn collect_raw_messages<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) if m.contains_key("raw_data") => out.push(v),
        Value::Object(m) => m.values().for_each(|x| collect_raw_messages(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_raw_messages(x, out)),
        _ => {}
    }
}

/// A DynamoDB client for moto with SDK retries off (a retried request would count twice
/// and hide a moto error), counting into `counter` when given.
fn dynamodb_client(endpoint: &str, counter: Option<&RequestCounter>) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// Like [`dynamodb_client`], for EventBridge.
fn eventbridge_client(
    endpoint: &str,
    counter: Option<&RequestCounter>,
) -> aws_sdk_eventbridge::Client {
    use aws_sdk_eventbridge::config;
    let mut b = aws_sdk_eventbridge::Config::builder()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new("us-east-1"))
        .credentials_provider(config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .endpoint_url(endpoint)
        .retry_config(config::retry::RetryConfig::disabled());
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_eventbridge::Client::from_conf(b.build())
}

/// Like [`dynamodb_client`], for SES v2.
fn ses_client(endpoint: &str, counter: Option<&RequestCounter>) -> aws_sdk_sesv2::Client {
    use aws_sdk_sesv2::config;
    let mut b = aws_sdk_sesv2::Config::builder()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new("us-east-1"))
        .credentials_provider(config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .endpoint_url(endpoint)
        .retry_config(config::retry::RetryConfig::disabled());
    if let Some(c) = counter {
        b = b.interceptor(c.clone());
    }
    aws_sdk_sesv2::Client::from_conf(b.build())
}

/// An SQS client for moto (never counted: its reads stand in for EventBridge → Lambda).
fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config;
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(config::BehaviorVersion::latest())
            .region(config::Region::new("us-east-1"))
            .credentials_provider(config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .endpoint_url(endpoint)
            .retry_config(config::retry::RetryConfig::disabled())
            .build(),
    )
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

/// Run by moto's own interpreter instead of its `moto_server` script: moto's
/// `TransactWriteItems` takes a rollback copy of the whole table once per *item* of the
/// transaction, so a 99-item claim or outcome write on a table of a few thousand items takes
/// tens of seconds, and an event stream over 20,000 invitations would take days. This backs
/// up only the items the transaction names (their state before it, or their absence) and, if
/// moto cancels or rejects the transaction, puts exactly those back — the same all-or-nothing
/// answer, at a cost of the transaction's size instead of the table's. Nothing that is counted
/// changes.
const MOTO_ONE_BACKUP_PER_TRANSACTION: &str = r#"
import copy, sys, threading
try:
    import moto.dynamodb.models as m
    _local = threading.local()
    _deepcopy_orig = copy.deepcopy
    def _deepcopy(x, memo=None):
        # Inside a patched transaction the whole-table backup is skipped (see below).
        if getattr(_local, "active", False) and isinstance(x, m.Table):
            return x
        return _deepcopy_orig(x, memo)
    class _Copy:
        deepcopy = staticmethod(_deepcopy)
        def __getattr__(self, name):
            return getattr(copy, name)
    _transact = m.DynamoDBBackend.transact_write_items
    def _key(self, op):
        table = self.get_table(op["TableName"])
        if "Key" in op:
            return op["Key"]
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    def transact_write_items(self, transact_items, *args, **kwargs):
        saved = []
        try:
            for item in transact_items:
                _, op = next(iter(item.items()))
                key = _key(self, op)
                current = self.get_item(op["TableName"], key)
                before = _deepcopy_orig(current.to_json()["Attributes"]) if current else None
                saved.append((op["TableName"], key, before))
        except Exception:
            saved = None  # let moto answer the malformed request as it does
        _local.active = saved is not None
        try:
            return _transact(self, transact_items, *args, **kwargs)
        except Exception:
            for table_name, key, before in reversed(saved or []):
                if before is None:
                    try:
                        self.delete_item(table_name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(table_name, before)
            raise
        finally:
            _local.active = False
    m.copy = _Copy()
    m.DynamoDBBackend.transact_write_items = transact_write_items
except (ImportError, AttributeError) as e:
    print("bench-dynamodb: moto left as it is:", e, file=sys.stderr)
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main())
"#;

/// Starts moto on a free port under an `sh` watchdog that SIGKILLs it when our end of its
/// stdin pipe closes, i.e. when this process exits however it exits. With `one_backup`, moto
/// runs under [`MOTO_ONE_BACKUP_PER_TRANSACTION`] through the interpreter named in the
/// `moto_server` script's `#!` line.
fn start_moto(one_backup: bool) -> anyhow::Result<(Child, String)> {
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
    let mut command: Vec<std::ffi::OsString> = vec![program.clone().into()];
    if one_backup {
        let script = std::fs::read_to_string(&program)
            .with_context(|| format!("reading {}", program.display()))?;
        let interpreter: Vec<&str> = script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        if interpreter.is_empty() {
            bail!(
                "{} has no #! line to find moto's Python: pass --stock-moto",
                program.display()
            );
        }
        command = interpreter.iter().map(Into::into).collect();
        command.push("-c".into());
        command.push(MOTO_ONE_BACKUP_PER_TRANSACTION.into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill -9 $pid 2>/dev/null; wait $pid"#)
        .args(&command)
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
