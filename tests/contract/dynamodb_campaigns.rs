//! DynamoDB-only checks of the campaign adapter: what claims and creations cost in requests,
//! and that one held contact costs its 49 neighbours one retry, not their claim.

use portal_core::adapters::aws_metrics::RequestCounter;
use portal_core::adapters::dynamodb::DynamoStore;
use portal_core::domain::{
    Account, AccountId, Campaign, CampaignId, CampaignStatus, ContactId, ContactInput, DivisionId,
    DivisionInput, Email, Filters, Invitation, InvitationCategory, Skipped, TenantId, Trigger,
};
use portal_core::ports::{
    AccountStore, CampaignStore, Claim, ClaimResult, ContactStateStore, CreateOutcome,
    DivisionStore,
};
use portal_tests::moto::{fresh_table, Exclusive, Moto};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

async fn counted_store() -> (Exclusive<DynamoStore>, RequestCounter) {
    let counter = RequestCounter::new();
    let store = Exclusive::new(|| async {
        let client = Moto::shared().counted_dynamodb_client(&counter);
        let table = fresh_table(&client).await;
        DynamoStore::new(client, table)
    })
    .await;
    (store, counter)
}

fn cid(i: usize) -> ContactId {
    ContactId::parse(format!("c{i:04}")).unwrap()
}

/// One division `d1` with `n` contacts, 10 per account.
async fn seed(store: &DynamoStore, tenant: &TenantId, n: usize) {
    let d1 = DivisionId::parse("d1").unwrap();
    let input = DivisionInput::new(
        d1.clone(),
        "Division 1".into(),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(tenant, &input).await.unwrap();
    let ids: Vec<usize> = (0..n).collect();
    let accounts: Vec<Account> = ids
        .chunks(10)
        .enumerate()
        .map(|(a, chunk)| {
            let contacts = chunk
                .iter()
                .map(|&i| {
                    ContactInput::new(
                        cid(i),
                        format!("Contact {i}"),
                        Some(Email::parse(&format!("c{i}@example.com")).unwrap()),
                        String::new(),
                        false,
                    )
                    .unwrap()
                })
                .collect();
            Account::new(
                AccountId::parse(format!("a{a}")).unwrap(),
                d1.clone(),
                format!("N-{a}"),
                format!("Account {a}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                true,
                0,
                false,
                None,
                contacts,
            )
            .unwrap()
        })
        .collect();
    store.upsert_accounts(tenant, &accounts).await.unwrap();
}

fn campaign(trigger: Trigger) -> Campaign {
    Campaign {
        campaign_id: CampaignId::generate(NOW),
        trigger,
        status: CampaignStatus::Queued,
        division_ids: vec![DivisionId::parse("d1").unwrap()],
        filters: Filters::default(),
        limit_to_uninvited: true,
        template_id: "welcome".into(),
        email_from: Email::parse("hoa@example.org").unwrap(),
        created_at: NOW,
        created_by: "manager".into(),
        targeted: 0,
        skipped: Skipped::default(),
        categories: Default::default(),
        pause_reason: None,
    }
}

fn claims(c: &Campaign, range: std::ops::Range<usize>) -> Vec<Claim> {
    range
        .map(|i| Claim {
            contact_id: cid(i),
            division_id: None,
            invitation: Invitation {
                campaign_id: c.campaign_id.clone(),
                contact_id: cid(i),
                email: Email::parse(&format!("c{i}@example.com")).unwrap(),
                registration_token_hash: [i as u8; 32],
                expires_at: NOW + Duration::days(14),
                category: InvitationCategory::InProcess,
                created_at: NOW,
            },
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_campaign_is_one_transaction_and_a_held_one_writes_nothing() {
    let (store, counter) = counted_store().await;
    let tenant = TenantId::parse("t").unwrap();
    seed(&store, &tenant, 0).await;
    counter.reset();
    let c = campaign(Trigger::Manual);
    assert_eq!(
        store.create_campaign(&tenant, &c, None, NOW).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(counter.total(), 1);
    assert_eq!(counter.get("TransactWriteItems"), 1);

    counter.reset();
    let again = campaign(Trigger::Manual);
    assert!(matches!(
        store
            .create_campaign(&tenant, &again, None, NOW)
            .await
            .unwrap(),
        CreateOutcome::DivisionHeld { .. }
    ));
    assert_eq!(
        counter.total(),
        1,
        "the cancellation reasons say why: no extra read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_200_contacts_takes_two_locator_reads_and_five_transactions() {
    let (store, counter) = counted_store().await;
    let tenant = TenantId::parse("t").unwrap();
    seed(&store, &tenant, 200).await;
    let c = campaign(Trigger::Manual);
    store.create_campaign(&tenant, &c, None, NOW).await.unwrap();
    counter.reset();
    let results = store
        .claim_contacts(&tenant, &c.campaign_id, &claims(&c, 0..200), NOW)
        .await
        .unwrap();
    assert!(results.iter().all(|r| *r == ClaimResult::Claimed));
    assert_eq!(
        counter.get("BatchGetItem"),
        2,
        "100 locators per BatchGetItem"
    );
    assert_eq!(
        counter.get("TransactWriteItems"),
        5,
        "49 claims and the campaign's counters per transaction"
    );
    assert_eq!(counter.total(), 7);
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.targeted, got.categories.in_process), (200, 200));
    // Claims that carry their division skip the locator reads.
    let other = campaign(Trigger::Individual);
    store
        .create_campaign(&tenant, &other, None, NOW)
        .await
        .unwrap();
    counter.reset();
    let hinted: Vec<Claim> = claims(&other, 0..49)
        .into_iter()
        .map(|mut c| {
            c.division_id = Some(DivisionId::parse("d1").unwrap());
            c
        })
        .collect();
    store
        .claim_contacts(&tenant, &other.campaign_id, &hinted, NOW)
        .await
        .unwrap();
    assert_eq!(counter.get("BatchGetItem"), 0);
    assert_eq!(counter.total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_held_contact_costs_its_batch_one_retry_not_its_claim() {
    let (store, counter) = counted_store().await;
    let tenant = TenantId::parse("t").unwrap();
    seed(&store, &tenant, 49).await;
    // Two contacts in the same batch are held, one is accepted.
    for i in [7, 31] {
        store
            .record_invited(&tenant, &cid(i), NOW - Duration::hours(1))
            .await
            .unwrap();
    }
    store
        .set_portal_status(
            &tenant,
            &cid(12),
            portal_core::domain::PortalStatus::Accepted,
        )
        .await
        .unwrap();
    let c = campaign(Trigger::Individual);
    store.create_campaign(&tenant, &c, None, NOW).await.unwrap();
    counter.reset();
    let results = store
        .claim_contacts(&tenant, &c.campaign_id, &claims(&c, 0..49), NOW)
        .await
        .unwrap();
    for (i, r) in results.iter().enumerate() {
        let expected = match i {
            7 | 31 => ClaimResult::Held {
                until: NOW + Duration::hours(23),
            },
            12 => ClaimResult::Accepted,
            _ => ClaimResult::Claimed,
        };
        assert_eq!(*r, expected, "contact {i}");
    }
    assert_eq!(
        counter.get("TransactWriteItems"),
        2,
        "the cancelled batch, then the 46 others"
    );
    let page = store
        .list_invitations(&tenant, &c.campaign_id, None, 500)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 46);
}
