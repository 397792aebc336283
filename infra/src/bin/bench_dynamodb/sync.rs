//! The sync scenario: one division synced, synced again unchanged, counted, its filter values
//! read and listed, with the DynamoDB requests of each step.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::{create_table, DynamoStore};
use portal_core::demo;
use portal_core::domain::{
    DivisionId, DivisionInput, Email, FilterField, Filters, Group, TenantId,
};
use portal_core::ports::{ContactQuery, ContactStore, ListQuery};
use portal_core::usecases::sync;
use portal_testkit::moto::counted_client;
use time::OffsetDateTime;

/// Accounts per sync request, like one `POST /v1/sync/accounts` body.
const SYNC_REQUEST_ACCOUNTS: usize = 10_000;
const PAGE: u32 = 500;

/// The sync scenario (see the crate docs).
pub async fn run(size: usize, endpoint: &str) -> anyhow::Result<()> {
    let counter = RequestCounter::new();
    let client: aws_sdk_dynamodb::Client = counted_client(endpoint, &counter);
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

    // The values the count filters take (the division's summary).
    counter.reset();
    let start = Instant::now();
    let values = store
        .filter_values(&tenant, std::slice::from_ref(&division))
        .await?;
    let classes: u64 = values
        .iter()
        .flat_map(|v| v.values(FilterField::AccountClass).map(|(_, n)| n))
        .sum();
    if classes != size as u64 {
        bail!("the filter values count {classes} contacts, expected {size}");
    }
    report(
        &format!(
            "filter values: {} account classes",
            values
                .first()
                .map_or(0, |v| v.values(FilterField::AccountClass).count())
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
                    max_examined: None,
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
