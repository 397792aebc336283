//! The send scenario: one campaign run the Lambda way (EventBridge → queue → `handle`), with
//! the DynamoDB, EventBridge and SES requests per 1,000 invitations, in all and by phase
//! (the first publish, then each kind of bus message: fan-out steps, delivery steps).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use portal_aws::aws_metrics::{RequestCounter, RequestCounts};
use portal_aws::dynamodb::{create_table, DynamoStore};
use portal_aws::eventbridge::EventBridgeBus;
use portal_aws::ses::SesMailer;
use portal_core::demo;
use portal_core::domain::{CampaignStatus, DivisionId, DivisionInput, Email, TenantId};
use portal_core::ports::{
    AccountStore, CampaignStore, DivisionStore, EventBus, SendMessage, EVENT_SOURCE,
};
use portal_core::usecases::send::{handle, SendConfig};
use portal_core::usecases::sync::SYNC_CHUNK;
use portal_lambda::message_from_eventbridge;
use portal_testkit::moto::{client, counted_client, ses_messages};
use serde_json::Value;
use time::OffsetDateTime;

use crate::send_deps;

/// What the send scenario's figures are held to (issue 13).
const TARGET_DYNAMODB_EVENTBRIDGE_PER_1000: f64 = 50.0;

/// The send scenario (see the crate docs).
pub async fn run(size: usize, outcome_flush: usize, endpoint: &str) -> anyhow::Result<()> {
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
    create_table(&client(endpoint), &table).await?;
    let store = Arc::new(DynamoStore::new(
        counted_client(endpoint, &dynamo_counter),
        table.clone(),
    ));
    let setup_events = client(endpoint);
    // Never counted: its reads stand in for EventBridge → Lambda.
    let sqs: aws_sdk_sqs::Client = client(endpoint);
    let bus_name = format!("bench-send-{run_id}");
    let queue_url = wire_bus(&setup_events, &sqs, &bus_name).await?;
    let sender = Email::parse(&format!("board-{run_id}@oakhills.example.org"))?;
    client::<aws_sdk_sesv2::Client>(endpoint)
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
    // Addresses of the eligible contacts (on a fresh table: every contact with one): each is
    // sent one email, however many contacts share it.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut written, mut next) = (0usize, 0u64);
    let mut contacts_with_email = 0u64;
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
                *expected.entry(email.normalized()).or_default() = 1;
                contacts_with_email += 1;
            }
            kept.push(a);
        }
        store.upsert_accounts(&tenant, &kept).await?;
    }
    // One per address: contacts sharing an address are skipped as `duplicate_address`.
    let eligible: u64 = expected.values().sum();
    let shared = contacts_with_email - eligible;
    let campaign =
        portal_invites::bench::record_campaign(&*store, &tenant, &division, sender.clone()).await?;
    println!(
        "SEND — table {table}, bus {bus_name}: {size} contacts in one division, \
         {contacts_with_email} with an address ({eligible} distinct, {shared} sharing one); \
         outcome_flush {outcome_flush}, no send rate (seeded in {:.1} s)",
        start.elapsed().as_secs_f64()
    );

    // Run it as the Lambda functions would.
    let config = SendConfig {
        max_send_rate: None,
        outcome_flush,
        ..SendConfig::default()
    };
    let deps = send_deps(
        store.clone(),
        Arc::new(SesMailer::new(counted_client(endpoint, &ses_counter), None)),
        config,
    )?;
    let bus = EventBridgeBus::new(counted_client(endpoint, &events_counter), &bus_name);
    for c in [&dynamo_counter, &events_counter, &ses_counter] {
        c.reset();
    }
    let start = Instant::now();
    // What `POST /v1/campaigns` publishes once the campaign is recorded.
    bus.publish(&[SendMessage::FanOut {
        tenant: tenant.clone(),
        campaign_id: campaign.campaign_id.clone(),
        cursor: None,
        spec: None,
    }])
    .await
    .context("publishing the first FanOut")?;
    // Requests by phase: each message's are the counters' difference across its `handle`
    // (one message at a time, so nothing else is counted meanwhile).
    let counters = [
        ("DynamoDB", &dynamo_counter),
        ("EventBridge", &events_counter),
        ("SES", &ses_counter),
    ];
    let mut phases = Phases::default();
    let mut seen = labelled(&counters);
    phases.get(PHASE_START).add(&seen, &Labelled::new());
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
            let now = labelled(&counters);
            let phase = phases.get(msg.detail_type());
            phase.messages += 1;
            phase.add(&now, &seen);
            seen = now;
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
    let all = labelled(&counters);
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
    client::<aws_sdk_dynamodb::Client>(endpoint)
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
    print_phases(&phases, &all, per_1000);
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
            "{eligible} eligible addresses, but targeted {}, sent {sent}, failed {failed}",
            got.targeted
        ));
    }
    if got.skipped.duplicate_address != shared {
        problems.push(format!(
            "{shared} contacts share an address, but {} were skipped as duplicate_address",
            got.skipped.duplicate_address
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
            .collect::<BTreeSet<_>>()
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
         address ({eligible}; {shared} contacts skipped for a shared address)\n"
    );
    Ok(())
}

/// The phase of the requests made before any message is handled: publishing the first
/// `FanOut`, as `POST /v1/campaigns` does.
const PHASE_START: &str = "start (the first Fan-Out published)";

/// Requests keyed by (service label, operation).
type Labelled = BTreeMap<(&'static str, String), u64>;

/// One phase of the send: how many bus messages it handled and the requests they made.
#[derive(Debug, Default)]
struct Phase {
    messages: u64,
    requests: Labelled,
}

impl Phase {
    /// Adds the requests counted between `before` and `now`.
    fn add(&mut self, now: &Labelled, before: &Labelled) {
        for (key, n) in now {
            let d = n.saturating_sub(before.get(key).copied().unwrap_or(0));
            if d > 0 {
                *self.requests.entry(key.clone()).or_default() += d;
            }
        }
    }
}

/// The phases in the order they first made requests.
#[derive(Debug, Default)]
struct Phases(Vec<(&'static str, Phase)>);

impl Phases {
    fn get(&mut self, name: &'static str) -> &mut Phase {
        let i = match self.0.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.0.push((name, Phase::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

/// Every counter's counts under its service label ("DynamoDB", "EventBridge", "SES").
fn labelled(counters: &[(&'static str, &RequestCounter)]) -> Labelled {
    let mut out = Labelled::new();
    for (label, counter) in counters {
        let counts: RequestCounts = counter.snapshot();
        for ((_, op), n) in counts {
            *out.entry((*label, op)).or_default() += n;
        }
    }
    out
}

/// Prints the requests by phase, and what no phase accounts for (nothing, unless a step
/// leaves work running after it returns).
fn print_phases(phases: &Phases, all: &Labelled, per_1000: impl Fn(u64) -> f64) {
    println!("  by phase (the requests made while handling each kind of bus message), total and per 1,000 invitations:");
    let mut accounted = Labelled::new();
    for (name, phase) in &phases.0 {
        if *name == PHASE_START {
            println!("    {name}");
        } else {
            println!(
                "    {name}: {} message{}",
                phase.messages,
                if phase.messages == 1 { "" } else { "s" }
            );
        }
        for ((service, op), n) in &phase.requests {
            println!("      {service:<11} {op:<20} {n:>7} {:>9.1}", per_1000(*n));
            *accounted.entry((*service, op.clone())).or_default() += n;
        }
        let both: u64 = phase
            .requests
            .iter()
            .filter(|((s, _), _)| *s != "SES")
            .map(|(_, n)| n)
            .sum();
        println!(
            "      DynamoDB + EventBridge           {both:>7} {:>9.1}",
            per_1000(both)
        );
    }
    let mut rest = Phase::default();
    rest.add(all, &accounted);
    if !rest.requests.is_empty() {
        println!("    outside any step");
        for ((service, op), n) in &rest.requests {
            println!("      {service:<11} {op:<20} {n:>7} {:>9.1}", per_1000(*n));
        }
    }
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
    let endpoint = endpoint.to_owned();
    let messages = tokio::task::spawn_blocking(move || ses_messages(&endpoint))
        .await?
        .map_err(anyhow::Error::msg)?;
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for m in messages.iter().filter(|m| m["source"] == sender) {
        let destinations = m["destinations"]
            .as_array()
            .context("a sent message without destinations")?;
        // moto lists the envelope recipient and the `To` header's: one address, twice.
        let mut to = BTreeSet::new();
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
