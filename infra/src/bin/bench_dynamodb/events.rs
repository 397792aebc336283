//! The SES events scenario: a shuffled, duplicated stream of SES events fed one at a time
//! through the webhook's core, with the DynamoDB requests per event, checked against the
//! sorted, unique stream on a second table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::{create_table, DynamoStore};
use portal_aws::ses_events::{parse_record, Parsed};
use portal_core::domain::{Campaign, ContactId, DivisionId, Email, InvitationCategory, TenantId};
use portal_core::ports::CampaignStore;
use portal_core::usecases::events;
use portal_core::usecases::send::{run_campaign, SendConfig};
use portal_invites::bench::{load_division, record_campaign};
use portal_invites::simulate::{all_invitations, invitation_records, Mix};
use portal_testkit::moto::{client, counted_client};
use portal_testkit::null::NullMailer;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use crate::send_deps;

/// The SES events scenario: a campaign over `size` contacts sent into a null mailer, then a
/// shuffled stream of SES event records for it (10% duplicated) fed one at a time through
/// the webhook's core, as SNS delivers them, counting each event's DynamoDB requests. The
/// same invitations on a second table get the sorted, unique stream: both must end in the
/// same categories, with counters equal to a recount.
pub async fn run(size: usize, endpoint: &str) -> anyhow::Result<()> {
    let tenant = TenantId::parse("bench")?;
    let now = OffsetDateTime::now_utc();
    // One table with its campaign sent; each invitation's records seeded by its contact, so
    // both tables get the same events.
    let world = |name: &'static str, counter: RequestCounter| {
        let tenant = tenant.clone();
        async move {
            let table = format!("bench-events-{name}-{}", std::process::id());
            create_table(&client(endpoint), &table).await?;
            let store = Arc::new(DynamoStore::new(
                counted_client(endpoint, &counter),
                table.clone(),
            ));
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
                ..SendConfig::default()
            };
            let deps = send_deps(store.clone(), Arc::new(NullMailer), config)?;
            run_campaign(&deps, &tenant, &campaign.campaign_id).await?;
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
            let fact = e.addressed_fact().map_err(|r| anyhow::anyhow!("{r}"))?;
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
    let categories = |store: Arc<DynamoStore>, campaign: Campaign| {
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
        client::<aws_sdk_dynamodb::Client>(endpoint)
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
    campaign: &Campaign,
) -> anyhow::Result<u64> {
    Ok(store
        .get_campaign(tenant, &campaign.campaign_id)
        .await?
        .context("the campaign vanished")?
        .targeted)
}
