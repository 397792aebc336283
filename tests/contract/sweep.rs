//! Contract cases for the sweeper's store (`CampaignSweepStore`): which campaigns are
//! active, in what order, with which tenant, and watch records written only over the record
//! read. Each case is generic over the adapter, which implements `Store` for the setup.

use portal_core::domain::{
    Campaign, CampaignId, CampaignStatus, DivisionInput, Email, Skipped, TenantId, Trigger,
};
use portal_core::ports::{ActiveCampaign, CampaignSweepStore, CreateOutcome, Store, SweepWatch};
use portal_testkit::builders::CampaignBuilder;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::ids::{div, t};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

/// Records an individual campaign (no division lock, so many share `d1`) created at `at`.
async fn record(store: &dyn Store, tenant: &TenantId, at: OffsetDateTime) -> Campaign {
    record_as(store, tenant, at, None).await
}

/// [`record`] under a chosen id.
async fn record_as(
    store: &dyn Store,
    tenant: &TenantId,
    at: OffsetDateTime,
    id: Option<CampaignId>,
) -> Campaign {
    let d = DivisionInput::new(
        div("d1"),
        "Division d1".to_owned(),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(tenant, &d).await.unwrap();
    let mut c = CampaignBuilder::new(at)
        .trigger(Trigger::Individual)
        .division("d1")
        .build();
    if let Some(id) = id {
        c.campaign_id = id;
    }
    assert_eq!(
        store.create_campaign(tenant, &c, None, at).await.unwrap(),
        CreateOutcome::Created
    );
    c
}

/// Moves a queued campaign along the ordinary path to `to`.
async fn move_to(store: &dyn Store, tenant: &TenantId, c: &CampaignId, to: CampaignStatus) {
    use CampaignStatus as S;
    let path: &[S] = match to {
        S::Queued => &[],
        S::FanningOut => &[S::FanningOut],
        S::Sending => &[S::FanningOut, S::Sending],
        S::Completed => &[S::FanningOut, S::Sending, S::Completed],
        S::Paused => &[S::Paused],
        S::Failed => &[S::Failed],
    };
    let mut from = S::Queued;
    for &next in path {
        let reason = (next == S::Paused || next == S::Failed).then(|| "why".to_owned());
        assert!(store
            .update_campaign_status(tenant, c, from, next, reason)
            .await
            .unwrap());
        from = next;
    }
}

fn listed(active: &[ActiveCampaign]) -> Vec<(String, String, CampaignStatus)> {
    active
        .iter()
        .map(|a| {
            (
                a.tenant.to_string(),
                a.campaign.campaign_id.to_string(),
                a.campaign.status,
            )
        })
        .collect()
}

pub async fn active_campaigns_are_the_queued_fanning_out_and_sending_of_every_tenant_oldest_first<
    S: Store + CampaignSweepStore,
>(
    store: &S,
) {
    let (a, b) = (t("acme"), t("beta-2"));
    let mut want = Vec::new();
    // Interleaved across tenants, a minute apart: the listing is by age, not by tenant.
    let statuses = [
        (CampaignStatus::Queued, true),
        (CampaignStatus::Completed, false),
        (CampaignStatus::FanningOut, true),
        (CampaignStatus::Paused, false),
        (CampaignStatus::Sending, true),
        (CampaignStatus::Failed, false),
    ];
    for (i, (status, active)) in statuses.into_iter().enumerate() {
        for (j, tenant) in [&b, &a].into_iter().enumerate() {
            let at = NOW + Duration::minutes((2 * i + j) as i64);
            let c = record(store, tenant, at).await;
            move_to(store, tenant, &c.campaign_id, status).await;
            if active {
                want.push((tenant.to_string(), c.campaign_id.to_string(), status));
            }
        }
    }

    let got = store.active_campaigns().await.unwrap();
    assert_eq!(listed(&got), want);
    // Each listed campaign is the campaign as stored, of its own tenant, with no record yet.
    for item in &got {
        let stored = store
            .get_campaign(&item.tenant, &item.campaign.campaign_id)
            .await
            .unwrap()
            .expect("the listed campaign exists in its tenant");
        assert_eq!(item.campaign, stored);
        assert_eq!(item.watch, None);
    }
}

pub async fn a_campaign_leaves_the_listing_when_it_finishes_and_a_paused_one_returns_on_resume<
    S: Store + CampaignSweepStore,
>(
    store: &S,
) {
    let tenant = t("acme");
    let done = record(store, &tenant, NOW).await;
    let paused = record(store, &tenant, NOW + Duration::minutes(1)).await;
    move_to(store, &tenant, &done.campaign_id, CampaignStatus::Sending).await;
    // Counters moved while it ran are what the listing shows.
    store
        .add_campaign_counts(
            &tenant,
            &done.campaign_id,
            0,
            Skipped {
                no_email: 3,
                ..Skipped::default()
            },
            None,
        )
        .await
        .unwrap();
    let got = store.active_campaigns().await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].campaign.skipped.no_email, 3);
    assert_eq!(got[0].campaign.status, CampaignStatus::Sending);

    assert!(store
        .update_campaign_status(
            &tenant,
            &done.campaign_id,
            CampaignStatus::Sending,
            CampaignStatus::Completed,
            None
        )
        .await
        .unwrap());
    move_to(store, &tenant, &paused.campaign_id, CampaignStatus::Paused).await;
    assert_eq!(listed(&store.active_campaigns().await.unwrap()), vec![]);

    assert!(store
        .update_campaign_status(
            &tenant,
            &paused.campaign_id,
            CampaignStatus::Paused,
            CampaignStatus::Queued,
            None
        )
        .await
        .unwrap());
    assert_eq!(
        listed(&store.active_campaigns().await.unwrap()),
        vec![(
            "acme".to_owned(),
            paused.campaign_id.to_string(),
            CampaignStatus::Queued
        )]
    );
    // A paused campaign that fails for good does not come back.
    move_to(store, &tenant, &paused.campaign_id, CampaignStatus::Failed).await;
    assert!(store.active_campaigns().await.unwrap().is_empty());
}

pub async fn a_watch_record_is_written_only_over_the_record_read<S: Store + CampaignSweepStore>(
    store: &S,
) {
    let tenant = t("acme");
    let c = record(store, &tenant, NOW).await;
    let id = &c.campaign_id;
    let first = SweepWatch {
        fingerprint: u64::MAX - 1,
        since: NOW + Duration::minutes(1),
    };
    let second = SweepWatch {
        fingerprint: 42,
        since: NOW + Duration::minutes(11),
    };

    assert!(store.put_watch(&tenant, id, &first, None).await.unwrap());
    // Another sweep that read no record, or another record, writes nothing.
    assert!(!store.put_watch(&tenant, id, &second, None).await.unwrap());
    let stale = SweepWatch {
        since: first.since - Duration::seconds(1),
        ..first
    };
    assert!(!store
        .put_watch(&tenant, id, &second, Some(&stale))
        .await
        .unwrap());
    let other_fp = SweepWatch {
        fingerprint: 7,
        ..first
    };
    assert!(!store
        .put_watch(&tenant, id, &second, Some(&other_fp))
        .await
        .unwrap());
    assert_eq!(
        store.active_campaigns().await.unwrap()[0].watch,
        Some(first)
    );

    assert!(store
        .put_watch(&tenant, id, &second, Some(&first))
        .await
        .unwrap());
    assert_eq!(
        store.active_campaigns().await.unwrap()[0].watch,
        Some(second)
    );
    // The record read before is stale now.
    assert!(!store
        .put_watch(&tenant, id, &first, Some(&first))
        .await
        .unwrap());
}

pub async fn watch_records_keep_whole_seconds_and_compare_to_the_second<
    S: Store + CampaignSweepStore,
>(
    store: &S,
) {
    let tenant = t("acme");
    let c = record(store, &tenant, NOW).await;
    let fine = SweepWatch {
        fingerprint: 1,
        since: NOW + Duration::milliseconds(1_750),
    };
    assert!(store
        .put_watch(&tenant, &c.campaign_id, &fine, None)
        .await
        .unwrap());
    let read = store.active_campaigns().await.unwrap()[0].watch.unwrap();
    assert_eq!(read.since, NOW + Duration::seconds(1));
    // Both the exact record written and the one read back identify it.
    let next = SweepWatch {
        fingerprint: 2,
        since: NOW + Duration::minutes(20),
    };
    assert!(store
        .put_watch(&tenant, &c.campaign_id, &next, Some(&fine))
        .await
        .unwrap());
    assert!(store
        .put_watch(&tenant, &c.campaign_id, &read, Some(&next))
        .await
        .unwrap());
}

pub async fn watch_records_never_cross_tenants<S: Store + CampaignSweepStore>(store: &S) {
    let (a, b) = (t("acme"), t("beta"));
    // The same campaign id in two tenants.
    let ca = record(store, &a, NOW).await;
    let cb = record_as(store, &b, NOW, Some(ca.campaign_id.clone())).await;
    let wa = SweepWatch {
        fingerprint: 1,
        since: NOW,
    };
    assert!(store
        .put_watch(&a, &ca.campaign_id, &wa, None)
        .await
        .unwrap());
    // Tenant b's campaign has no record: a's is not b's.
    let wb = SweepWatch {
        fingerprint: 2,
        since: NOW + Duration::minutes(1),
    };
    assert!(!store
        .put_watch(&b, &cb.campaign_id, &wb, Some(&wa))
        .await
        .unwrap());
    assert!(store
        .put_watch(&b, &cb.campaign_id, &wb, None)
        .await
        .unwrap());
    let mut got: Vec<(String, Option<SweepWatch>)> = store
        .active_campaigns()
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.tenant.to_string(), x.watch))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![("acme".to_owned(), Some(wa)), ("beta".to_owned(), Some(wb))]
    );
}

pub async fn twenty_concurrent_sweeps_over_one_record_write_it_once<
    S: Store + CampaignSweepStore + Clone + 'static,
>(
    store: &S,
) {
    let tenant = t("acme");
    let c = record(store, &tenant, NOW).await;
    let read = SweepWatch {
        fingerprint: 9,
        since: NOW,
    };
    assert!(store
        .put_watch(&tenant, &c.campaign_id, &read, None)
        .await
        .unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, tenant, id) = (store.clone(), tenant.clone(), c.campaign_id.clone());
            tokio::spawn(async move {
                let claim = SweepWatch {
                    fingerprint: 9,
                    since: NOW + Duration::minutes(10) + Duration::seconds(i),
                };
                store
                    .put_watch(&tenant, &id, &claim, Some(&read))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one sweep re-publishes");
}
