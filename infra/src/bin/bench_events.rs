//! `bench-events`: SES events through the event core on the embedded store.
//!
//! It loads one division of `--contacts` contacts, sends them a campaign into a null
//! mailer (so every invitation is `sent`), then makes a stream of SES event records for
//! them (`portal-invites simulate-events`' generator with a busier mix, [`Mix::BUSY`]: every
//! invitation sent, most delivered, opened, often clicked; about 5 records each), adds
//! duplicates until they are `--dup` of the stream, and shuffles it: with the defaults,
//! about 100,000 records for about 20,000 invitations. It feeds the stream through the
//! webhook's core (record parsing, then `usecases::events::apply`), `--batch` records per
//! store call, and prints events per second.
//!
//! Then it checks what the issue asks: the same invitations fed the sorted, unique stream
//! (on a second store) end in exactly the same categories, and both campaigns' counters
//! equal a recount. It exits non-zero when they do not. Run it in release mode:
//!
//! ```text
//! cargo run --profile bench -p portal-invites --bin bench-events              # one record per store call
//! cargo run --profile bench -p portal-invites --bin bench-events -- --batch 500
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use portal_aws::ses_events::{parse_record, Parsed};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{
    Campaign, CampaignStatus, ContactId, DivisionId, Email, InvitationCategory, TenantId,
};
use portal_core::ports::{CampaignStore, Store, SystemClock};
use portal_core::usecases::events::{self, ApplyReport};
use portal_core::usecases::send::{
    run_campaign, RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper,
};
use portal_embedded::sqlite::SqliteStore;
use portal_invites::bench::{load_division, record_campaign, NullMailer};
use portal_invites::simulate::{all_invitations, invitation_records, Mix};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "bench-events",
    about = "Benchmark SES events through the event core on the embedded store"
)]
struct Args {
    /// Contacts in the division; those with an address (about 92%) are invited: the default
    /// makes about 20,000 invitations.
    #[arg(long, default_value_t = 21_710)]
    contacts: usize,
    /// Share of the stream that are duplicates of other records.
    #[arg(long, default_value_t = 0.10)]
    dup: f64,
    /// Records per store call (the SNS webhook gets one per request; batches are what the
    /// local simulator and an EventBridge batch use).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A store with one division, its campaign sent to everyone; the temp dir must outlive it.
async fn sent_campaign(dir: &Path, size: usize) -> anyhow::Result<(Arc<SqliteStore>, Campaign)> {
    let store = Arc::new(SqliteStore::open(&dir.join("bench.db"))?);
    let tenant = tenant();
    let division = DivisionId::parse("oak-hills")?;
    load_division(&*store, &tenant, &division, size).await?;
    let campaign = record_campaign(
        &*store,
        &tenant,
        &division,
        Email::parse("board@oakhills.example.org")?,
    )
    .await?;
    let config = SendConfig {
        max_send_rate: None,
        outcome_flush: 100,
        ..SendConfig::default()
    };
    let deps = SendDeps {
        store: store.clone(),
        mailer: Arc::new(NullMailer),
        clock: Arc::new(SystemClock),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(UnsubscribeSigner::new([7u8; 32])?)),
        tokens: Arc::new(TokenDeriver::new([9u8; 32])?),
        public_url: portal_core::domain::PublicUrl::parse("http://127.0.0.1:3000")
            .expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(None)),
        config,
    };
    let report = run_campaign(&deps, &tenant, &campaign.campaign_id).await?;
    if report.status != Some(CampaignStatus::Completed) {
        bail!("the campaign ended {:?}", report.status);
    }
    Ok((store, campaign))
}

fn tenant() -> TenantId {
    TenantId::parse("bench").unwrap_or_else(|_| unreachable!("a valid literal id"))
}

/// Each invitation's records, keyed by contact (the same for every store: the generator
/// is seeded per contact, and the records name the campaign given).
async fn records(
    store: &dyn Store,
    campaign: &Campaign,
    seed: u64,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<(ContactId, Vec<String>)>> {
    let invitations = all_invitations(store, &tenant(), &campaign.campaign_id).await?;
    Ok(invitations
        .iter()
        .map(|inv| {
            let mut rng = StdRng::seed_from_u64(seed ^ fxhash(inv.contact_id.as_str()));
            (
                inv.contact_id.clone(),
                invitation_records(&tenant(), inv, &Mix::BUSY, &mut rng, now),
            )
        })
        .collect())
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Parses and applies `stream`, `batch` records per store call.
async fn feed(store: &dyn Store, stream: &[String], batch: usize) -> anyhow::Result<ApplyReport> {
    let mut report = ApplyReport::default();
    for chunk in stream.chunks(batch.max(1)) {
        let mut facts = Vec::with_capacity(chunk.len());
        for record in chunk {
            if let Parsed::Event(e) = parse_record(record)? {
                facts.push(e.addressed_fact().map_err(|r| anyhow::anyhow!("{r}"))?);
            }
        }
        report.merge(events::apply(store, facts).await?);
    }
    Ok(report)
}

async fn shuffled_campaign_size(store: &dyn Store, campaign: &Campaign) -> anyhow::Result<u64> {
    Ok(store
        .get_campaign(&tenant(), &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?
        .targeted)
}

async fn categories(
    store: &dyn Store,
    campaign: &Campaign,
) -> anyhow::Result<BTreeMap<ContactId, InvitationCategory>> {
    let invitations = all_invitations(store, &tenant(), &campaign.campaign_id).await?;
    Ok(invitations
        .into_iter()
        .map(|i| (i.contact_id.clone(), i.category()))
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = OffsetDateTime::now_utc();
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let start = Instant::now();
    let (shuffled_store, shuffled_campaign) = sent_campaign(dir_a.path(), args.contacts).await?;
    let (sorted_store, sorted_campaign) = sent_campaign(dir_b.path(), args.contacts).await?;
    println!(
        "loaded {} contacts and sent their campaign, twice, in {:.1} s",
        args.contacts,
        start.elapsed().as_secs_f64()
    );

    // The unique stream, per invitation in the order things happened.
    let per_invitation = records(&*shuffled_store, &shuffled_campaign, args.seed, now).await?;
    let unique: Vec<String> = per_invitation.into_iter().flat_map(|(_, r)| r).collect();
    let mut rng = StdRng::seed_from_u64(args.seed);
    // The busy mix makes about 5 records per invitation; duplicates are `--dup` of the whole.
    let dups_wanted = ((unique.len() as f64) * args.dup / (1.0 - args.dup)).round() as usize;
    let mut stream = unique.clone();
    for _ in 0..dups_wanted {
        let pick = rng.random_range(0..unique.len());
        stream.push(unique[pick].clone());
    }
    stream.shuffle(&mut rng);
    println!(
        "stream: {} records ({} unique + {} duplicates) for {} invitations",
        stream.len(),
        unique.len(),
        dups_wanted,
        shuffled_campaign_size(&*shuffled_store, &shuffled_campaign).await?,
    );

    let start = Instant::now();
    let report = feed(&*shuffled_store, &stream, args.batch).await?;
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "shuffled + duplicated, {} per store call: {:.0} events/s ({:.2} s); {} changed, {} unchanged, {} missing",
        args.batch,
        stream.len() as f64 / elapsed,
        elapsed,
        report.changed,
        report.unchanged,
        report.missing
    );

    // The same invitations (same contact ids) on the second store, sorted and unique.
    let sorted_records = records(&*sorted_store, &sorted_campaign, args.seed, now).await?;
    let sorted: Vec<String> = sorted_records.into_iter().flat_map(|(_, r)| r).collect();
    let start = Instant::now();
    feed(&*sorted_store, &sorted, args.batch).await?;
    println!(
        "sorted + unique: {:.0} events/s",
        sorted.len() as f64 / start.elapsed().as_secs_f64()
    );

    let a = categories(&*shuffled_store, &shuffled_campaign).await?;
    let b = categories(&*sorted_store, &sorted_campaign).await?;
    let differ = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).count();
    let mut by_category: BTreeMap<&str, u64> = BTreeMap::new();
    for c in a.values() {
        *by_category.entry(c.as_str()).or_default() += 1;
    }
    println!("final categories: {by_category:?}");
    if differ > 0 || a.len() != b.len() {
        bail!("{differ} invitations differ between the shuffled and the sorted stream");
    }
    println!("same final category for all {} invitations", a.len());
    for (name, store, campaign) in [
        ("shuffled", &shuffled_store, &shuffled_campaign),
        ("sorted", &sorted_store, &sorted_campaign),
    ] {
        let recount = store
            .recount_campaign(&tenant(), &campaign.campaign_id, false)
            .await?
            .context("the campaign vanished")?;
        if recount.drifted() {
            bail!("{name}: counters drift from the recount: {recount:?}");
        }
    }
    println!("counters equal the recount on both stores");
    Ok(())
}
