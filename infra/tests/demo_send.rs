//! The demo's bulk send over its three divisions, the local server's way (fan-out and
//! delivery into the outbox): one email per address, although some demo contacts share one.

use std::collections::BTreeMap;
use std::sync::Arc;

use portal_core::demo::{demo_tenant, load_demo};
use portal_core::domain::{Campaign, CampaignId, CampaignStatus, PublicUrl, Trigger};
use portal_core::ports::{CampaignStore, ContactQuery, ContactStore, DivisionStore, FixedClock};
use portal_core::usecases::send::run_campaign;
use portal_embedded::outbox::Outbox;
use portal_embedded::sqlite::SqliteStore;
use portal_invites::sending::local_send_deps;
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_division_demo_campaign_sends_one_email_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let now = datetime!(2026-11-02 12:00:00 UTC);
    load_demo(&*store, now).await.unwrap();
    let t = demo_tenant();
    let divisions = store.list_divisions(&t).await.unwrap();
    assert_eq!(divisions.len(), 3);
    let query = ContactQuery {
        division_ids: divisions.iter().map(|d| d.division_id.clone()).collect(),
        filters: Default::default(),
        limit_to_uninvited: true,
        now,
    };
    let counts = store.count_contacts(&t, &query).await.unwrap();
    assert!(
        counts.duplicate_address > 0,
        "the demo has contacts sharing an address: {counts:?}"
    );

    let campaign = Campaign {
        campaign_id: CampaignId::generate(now),
        trigger: Trigger::Manual,
        status: CampaignStatus::Queued,
        division_ids: query.division_ids.clone(),
        filters: Default::default(),
        limit_to_uninvited: true,
        template_id: portal_core::demo::DEMO_TEMPLATE.to_owned(),
        email_from: divisions[0].email_from.clone(),
        display_name: None,
        created_at: now,
        created_by: "test".into(),
        targeted: 0,
        skipped: Default::default(),
        categories: Default::default(),
        sends: Default::default(),
        pause_reason: None,
        recurring: None,
        selection: None,
    };
    store
        .create_campaign(&t, &campaign, None, now)
        .await
        .unwrap();
    let deps = local_send_deps(
        dir.path(),
        store.clone(),
        Arc::new(FixedClock::new(now)),
        PublicUrl::parse("http://127.0.0.1:3000").unwrap(),
    )
    .unwrap();
    let report = run_campaign(&deps, &t, &campaign.campaign_id)
        .await
        .unwrap();
    assert_eq!(report.status, Some(CampaignStatus::Completed));

    let outbox = Outbox::in_data_dir(dir.path());
    let mut per_address: BTreeMap<String, usize> = BTreeMap::new();
    for e in outbox.list(100_000).await.unwrap() {
        *per_address.entry(e.to.to_ascii_lowercase()).or_default() += 1;
    }
    let emails: usize = per_address.values().sum();
    let twice: Vec<_> = per_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "addresses emailed more than once: {twice:?}"
    );
    let sent = store
        .get_campaign(&t, &campaign.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.sends.sent, emails as u64);
    // What the counts said a send would do is what it did.
    assert_eq!(emails as u64, counts.eligible - counts.duplicate_address);
    assert_eq!(sent.skipped.duplicate_address, counts.duplicate_address);
    println!(
        "demo campaign: {emails} emails to {} addresses, {} contacts skipped for a shared address",
        per_address.len(),
        sent.skipped.duplicate_address
    );
}
