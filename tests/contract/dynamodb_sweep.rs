//! DynamoDB-only checks of the sweeper's store: a campaign leaves the index (`gsi1`,
//! `ACTIVE#CMP`) in the write that completes or fails it, a paused one stays in it but is
//! not listed, and a sweep costs one Query and one BatchGetItem per 100 campaigns, whatever
//! the number of finished campaigns.

use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::{DynamoStore, GSI1};
use portal_core::domain::{CampaignId, CampaignStatus, DivisionInput, Email, TenantId, Trigger};
use portal_core::ports::{CampaignStore, CampaignSweepStore, DivisionStore, SweepWatch};
use portal_testkit::builders::CampaignBuilder;
use portal_testkit::moto::{fresh_table, Exclusive, Moto};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

async fn counted_store() -> (Exclusive<DynamoStore>, RequestCounter) {
    let counter = RequestCounter::new();
    let store = Exclusive::new(|| async {
        let client: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
        let table = fresh_table(&client).await;
        DynamoStore::new(client, table).serialize_transactions()
    })
    .await;
    (store, counter)
}

async fn record(store: &DynamoStore, tenant: &TenantId, at: OffsetDateTime) -> CampaignId {
    let d = DivisionInput::new(
        portal_core::domain::DivisionId::parse("d1").unwrap(),
        "Division d1".to_owned(),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(tenant, &d).await.unwrap();
    let c = CampaignBuilder::new(at)
        .trigger(Trigger::Individual)
        .division("d1")
        .build();
    store.create_campaign(tenant, &c, None, at).await.unwrap();
    c.campaign_id
}

/// The campaign ids in the index partition `ACTIVE#CMP`, read straight from the table.
async fn indexed(store: &DynamoStore) -> Vec<String> {
    let client: aws_sdk_dynamodb::Client = Moto::shared().client();
    let out = client
        .query()
        .table_name(store.table_name())
        .index_name(GSI1)
        .key_condition_expression("gsi1pk = :p")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("ACTIVE#CMP".into()),
        )
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| {
            let sk = i["gsi1sk"].as_s().unwrap();
            sk.rsplit('#').next().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_leaves_the_index_when_it_completes_or_fails_and_stays_while_paused() {
    let (store, _) = counted_store().await;
    let t = TenantId::parse("acme").unwrap();
    let ids: Vec<CampaignId> = record_many(&store, &t, 4).await;
    assert_eq!(
        indexed(&store).await,
        ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "every recorded campaign is indexed, oldest first"
    );
    use CampaignStatus as S;
    let moves: [&[S]; 3] = [
        &[S::Queued, S::FanningOut, S::Sending, S::Completed],
        &[S::Queued, S::Failed],
        &[S::Queued, S::Paused],
    ];
    for (id, path) in ids.iter().zip(moves) {
        for pair in path.windows(2) {
            assert!(store
                .update_campaign_status(&t, id, pair[0], pair[1], None)
                .await
                .unwrap());
        }
    }
    assert_eq!(
        indexed(&store).await,
        vec![ids[2].to_string(), ids[3].to_string()],
        "completed and failed campaigns are out of the index"
    );
    let listed: Vec<String> = store
        .active_campaigns()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.campaign.campaign_id.to_string())
        .collect();
    assert_eq!(
        listed,
        vec![ids[3].to_string()],
        "a paused one is not listed"
    );
    // With a reason, failing a paused campaign takes it out too.
    assert!(store
        .update_campaign_status(&t, &ids[2], S::Paused, S::Failed, Some("gave up".into()))
        .await
        .unwrap());
    assert_eq!(indexed(&store).await, vec![ids[3].to_string()]);
}

async fn record_many(store: &DynamoStore, t: &TenantId, n: i64) -> Vec<CampaignId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(record(store, t, NOW + Duration::minutes(i)).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_reads_one_query_and_one_batch_of_records_whatever_finished_before() {
    let (store, counter) = counted_store().await;
    let t = TenantId::parse("acme").unwrap();
    let ids = record_many(&store, &t, 30).await;
    // 25 finished, 5 unfinished with a record each.
    for id in &ids[..25] {
        for (from, to) in [
            (CampaignStatus::Queued, CampaignStatus::FanningOut),
            (CampaignStatus::FanningOut, CampaignStatus::Sending),
            (CampaignStatus::Sending, CampaignStatus::Completed),
        ] {
            store
                .update_campaign_status(&t, id, from, to, None)
                .await
                .unwrap();
        }
    }
    for id in &ids[25..] {
        let w = SweepWatch {
            fingerprint: 1,
            since: NOW,
        };
        assert!(store.put_watch(&t, id, &w, None).await.unwrap());
    }

    counter.reset();
    let active = store.active_campaigns().await.unwrap();
    assert_eq!(active.len(), 5);
    assert!(active.iter().all(|a| a.watch.is_some()));
    assert_eq!(counter.get("Query"), 1);
    assert_eq!(counter.get("BatchGetItem"), 1);
    assert_eq!(counter.total(), 2);

    // Nothing unfinished: one Query. (Moto is taken one test at a time: give it back first.)
    drop(store);
    let empty = counted_store().await;
    empty.1.reset();
    assert!(empty.0.active_campaigns().await.unwrap().is_empty());
    assert_eq!(empty.1.total(), 1);
}
