//! DynamoDB-only checks of the campaign adapter: what claims, creations, facts, lists and
//! recounts cost in requests; that one held contact costs its 48 neighbours one retry, not
//! their claim; and that concurrent writers of facts never lose or double-count an update.

use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::DynamoStore;
use portal_core::domain::{
    Account, Campaign, CampaignId, CategoryCounts, ContactId, DivisionId, DivisionInput, Email,
    Invitation, InvitationCategory, InvitationFact, InvitationState, SendCounts, TenantId, Trigger,
    MAX_CAMPAIGN_DIVISIONS,
};
use portal_core::ports::{
    AccountStore, CampaignStore, Claim, ClaimResult, ContactStateStore, CreateOutcome,
    DivisionStore, FactResult, InvitationFilter, SuppressionReason, SuppressionStore,
};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use portal_testkit::moto::{fresh_table, Exclusive, Moto};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

async fn counted_store() -> (Exclusive<DynamoStore>, RequestCounter) {
    let counter = RequestCounter::new();
    let store = Exclusive::new(|| async {
        let client: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
        let table = fresh_table(&client).await;
        // moto does not isolate concurrent transactions (see `serialize_transactions`).
        DynamoStore::new(client, table).serialize_transactions()
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
            AccountBuilder::new(format!("a{a}"))
                .number(format!("N-{a}"))
                .name(format!("Account {a}"))
                .contacts(chunk.iter().map(|&i| {
                    ContactBuilder::new(cid(i).as_str())
                        .name(format!("Contact {i}"))
                        .email(format!("c{i}@example.com"))
                        .billing(false)
                }))
                .build()
        })
        .collect();
    store.upsert_accounts(tenant, &accounts).await.unwrap();
}

fn campaign(trigger: Trigger) -> Campaign {
    CampaignBuilder::new(NOW)
        .trigger(trigger)
        .created_by("manager")
        .build()
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
                contact_name: format!("Contact {i}"),
                account_number: format!("N-{}", i / 10),
                registration_token_hash: [i as u8; 32],
                expires_at: NOW + Duration::days(14),
                state: InvitationState::new(),
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
async fn claiming_200_contacts_takes_two_locator_reads_and_seven_transactions() {
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
        7,
        "33 claims (state, invitation, address) and the campaign's counters per transaction"
    );
    assert_eq!(counter.total(), 9);
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.targeted, got.categories.in_process, got.sends.pending),
        (200, 200, 200)
    );
    // Claims that carry their division skip the locator reads.
    let other = campaign(Trigger::Individual);
    store
        .create_campaign(&tenant, &other, None, NOW)
        .await
        .unwrap();
    counter.reset();
    let hinted: Vec<Claim> = claims(&other, 0..33)
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
    seed(&store, &tenant, 33).await;
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
        .claim_contacts(&tenant, &c.campaign_id, &claims(&c, 0..33), NOW)
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
        "the cancelled batch, then the 30 others"
    );
    let page = store
        .list_invitations(
            &tenant,
            &c.campaign_id,
            &InvitationFilter::default(),
            None,
            500,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 30);
}

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn mail(i: usize) -> Email {
    Email::parse(&format!("c{i}@example.com")).unwrap()
}

fn permanent_bounce() -> InvitationFact {
    InvitationFact::Bounced {
        permanent: true,
        reason: "Permanent/General".into(),
    }
}

/// `n` contacts in `d1`, an individual campaign, and every contact claimed for it.
async fn claimed(store: &DynamoStore, tenant: &TenantId, n: usize) -> Campaign {
    seed(store, tenant, n).await;
    let c = campaign(Trigger::Individual);
    store.create_campaign(tenant, &c, None, NOW).await.unwrap();
    let results = store
        .claim_contacts(tenant, &c.campaign_id, &claims(&c, 0..n), NOW)
        .await
        .unwrap();
    assert!(results.iter().all(|r| *r == ClaimResult::Claimed));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_costs_one_read_and_one_write_and_a_duplicate_only_the_read() {
    let (store, counter) = counted_store().await;
    let tenant = t("t");
    let c = claimed(&store, &tenant, 4).await;
    let id = &c.campaign_id;
    let requests = |counter: &RequestCounter| {
        (
            counter.get("GetItem"),
            counter.get("TransactWriteItems"),
            counter.total(),
        )
    };

    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(0), InvitationFact::Delivered)])
        .await
        .unwrap();
    assert!(matches!(r[..], [FactResult::Changed(_)]), "{r:?}");
    assert_eq!(requests(&counter), (1, 1, 2), "state-changing");

    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(0), InvitationFact::Delivered)])
        .await
        .unwrap();
    assert_eq!(r, [FactResult::Unchanged]);
    assert_eq!(requests(&counter), (1, 0, 1), "a duplicate writes nothing");

    // A permanent bounce suppresses the address in the same transaction.
    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(1), permanent_bounce())])
        .await
        .unwrap();
    match &r[..] {
        [FactResult::Changed(t)] => assert!(t.suppress.is_some()),
        other => panic!("{other:?}"),
    }
    assert_eq!(requests(&counter), (1, 1, 2), "permanent bounce");
    assert!(store.is_suppressed(&tenant, &mail(1)).await.unwrap());

    // An address already on the list (unsubscribed elsewhere) does not cancel the write.
    store
        .suppress(&tenant, &mail(2), SuppressionReason::Unsubscribed, NOW)
        .await
        .unwrap();
    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(2), InvitationFact::Complained)])
        .await
        .unwrap();
    assert!(matches!(r[..], [FactResult::Changed(_)]), "{r:?}");
    assert_eq!(requests(&counter), (1, 1, 2), "complaint");

    // A permanent bounce after an open moves no counter: the invitation and the
    // suppression only, still one transaction.
    store
        .apply_facts(&tenant, id, &[(cid(3), InvitationFact::Opened)])
        .await
        .unwrap();
    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(3), permanent_bounce())])
        .await
        .unwrap();
    assert!(matches!(r[..], [FactResult::Changed(_)]), "{r:?}");
    assert_eq!(requests(&counter), (1, 1, 2));
    assert!(store.is_suppressed(&tenant, &mail(3)).await.unwrap());

    counter.reset();
    let r = store
        .apply_facts(&tenant, id, &[(cid(99), InvitationFact::Opened)])
        .await
        .unwrap();
    assert_eq!(r, [FactResult::Missing]);
    assert_eq!(requests(&counter), (1, 0, 1));

    let got = store.get_campaign(&tenant, id).await.unwrap().unwrap();
    assert_eq!(
        got.categories,
        CategoryCounts {
            unopened: 1,
            bounced: 1,
            unsubscribed: 1,
            opened: 1,
            ..CategoryCounts::default()
        }
    );
    assert_eq!(
        got.sends,
        SendCounts {
            sent: 4,
            ..SendCounts::default()
        }
    );
    let recount = store.recount_campaign(&tenant, id, false).await.unwrap();
    assert!(!recount.unwrap().drifted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_bounces_are_read_in_two_batches_and_written_in_five_transactions() {
    let (store, counter) = counted_store().await;
    let tenant = t("t");
    let c = claimed(&store, &tenant, 200).await;
    let facts: Vec<(ContactId, InvitationFact)> =
        (0..200).map(|i| (cid(i), permanent_bounce())).collect();
    counter.reset();
    let results = store
        .apply_facts(&tenant, &c.campaign_id, &facts)
        .await
        .unwrap();
    assert!(results.iter().all(|r| matches!(r, FactResult::Changed(_))));
    assert_eq!(counter.get("BatchGetItem"), 2, "100 invitations per read");
    assert_eq!(
        counter.get("TransactWriteItems"),
        5,
        "49 invitations, their 49 suppressions and the counters per transaction"
    );
    assert_eq!(counter.total(), 7);
    let emails: Vec<Email> = (0..200).map(mail).collect();
    assert_eq!(
        store
            .suppressed_among(&tenant, &emails)
            .await
            .unwrap()
            .len(),
        200
    );
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.categories.bounced, got.sends.sent), (200, 200));
    assert_eq!(got.categories.total(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_the_same_invitations_lose_and_double_count_nothing() {
    let (store, _) = counted_store().await;
    let tenant = t("t");
    let n = 12;
    let c = claimed(&store, &tenant, n).await;
    // Each contact's facts; the last contact gets none.
    let pool = [
        InvitationFact::Sent,
        InvitationFact::Delivered,
        InvitationFact::Opened,
        InvitationFact::Clicked,
        InvitationFact::Delayed,
        permanent_bounce(),
        InvitationFact::Registered,
        InvitationFact::Unsubscribed,
    ];
    let facts_of = |i: usize| -> Vec<InvitationFact> {
        (0..i % pool.len())
            .map(|k| pool[(i + k) % pool.len()].clone())
            .collect()
    };
    let all: Vec<(ContactId, InvitationFact)> = (0..n - 1)
        .flat_map(|i| facts_of(i).into_iter().map(move |f| (cid(i), f)))
        .collect();
    let mut tasks = Vec::new();
    for seed in 1..=4u64 {
        let store = (*store).clone();
        let tenant = tenant.clone();
        let id = c.campaign_id.clone();
        let mut stream = all.clone();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in (1..stream.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            stream.swap(i, (x % (i as u64 + 1)) as usize);
        }
        tasks.push(tokio::spawn(async move {
            for chunk in stream.chunks(5) {
                store.apply_facts(&tenant, &id, chunk).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut expected = CategoryCounts::default();
    for i in 0..n {
        let mut state = InvitationState::new();
        for f in facts_of(i) {
            if i < n - 1 {
                if let Some(t) = state.apply(&f) {
                    state = t.to;
                }
            }
        }
        *expected.get_mut(state.category) += 1;
        let got = store
            .get_invitation(&tenant, &c.campaign_id, &cid(i))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.state.category, state.category, "contact {i}");
        assert_eq!(got.state.suppressed, state.suppressed, "contact {i}");
    }
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.categories, expected);
    let recount = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!recount.drifted(), "{recount:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divisions_campaigns_page_newest_first_in_one_query_and_one_batch_read() {
    let (store, counter) = counted_store().await;
    let tenant = t("t");
    seed(&store, &tenant, 0).await;
    let d2 = DivisionInput::new(
        DivisionId::parse("d2").unwrap(),
        "Division 2".into(),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(&tenant, &d2).await.unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        let at = NOW + Duration::minutes(i);
        let mut c = campaign(Trigger::Individual);
        c.campaign_id = CampaignId::generate(at);
        c.created_at = at;
        if i == 2 {
            c.division_ids.push(DivisionId::parse("d2").unwrap());
        }
        store.create_campaign(&tenant, &c, None, at).await.unwrap();
        made.push(c.campaign_id);
    }
    let d1 = DivisionId::parse("d1").unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        counter.reset();
        let page = store
            .list_campaigns(&tenant, &d1, cursor.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!((counter.get("Query"), counter.get("BatchGetItem")), (1, 1));
        seen.extend(page.items.into_iter().map(|c| c.campaign_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    made.reverse();
    assert_eq!(seen, made, "newest first, each once");
    let d2_page = store
        .list_campaigns(&tenant, &DivisionId::parse("d2").unwrap(), None, 10)
        .await
        .unwrap();
    assert_eq!(d2_page.items.len(), 1);
    assert_eq!(d2_page.items[0].campaign_id, made[2]);
    let other = store
        .list_campaigns(&t("other"), &d1, None, 10)
        .await
        .unwrap();
    assert!(other.items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_send_to_the_most_divisions_is_one_transaction_of_one_hundred_items() {
    let (store, counter) = counted_store().await;
    let tenant = t("t");
    let ids: Vec<DivisionId> = (0..=MAX_CAMPAIGN_DIVISIONS)
        .map(|i| DivisionId::parse(format!("d{i:02}")).unwrap())
        .collect();
    for d in &ids {
        let input = DivisionInput::new(
            d.clone(),
            d.to_string(),
            Email::parse("hoa@example.org").unwrap(),
        )
        .unwrap();
        store.put_division(&tenant, &input).await.unwrap();
    }
    let mut c = campaign(Trigger::Manual);
    c.division_ids = ids[..MAX_CAMPAIGN_DIVISIONS].to_vec();
    let idem = portal_core::ports::Idempotency {
        key: "k".into(),
        body_hash: [1; 32],
    };
    counter.reset();
    assert_eq!(
        store
            .create_campaign(&tenant, &c, Some(&idem), NOW)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(counter.total(), 1);
    for d in &c.division_ids {
        let page = store.list_campaigns(&tenant, d, None, 10).await.unwrap();
        assert_eq!(page.items.len(), 1, "{d}");
    }
    let mut too_many = campaign(Trigger::Individual);
    too_many.division_ids = ids.clone();
    assert!(store
        .create_campaign(&tenant, &too_many, None, NOW)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recount_reports_drift_and_fixes_it_only_on_the_counters_it_read() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (store, _) = counted_store().await;
    let tenant = t("t");
    let c = claimed(&store, &tenant, 3).await;
    store
        .apply_facts(&tenant, &c.campaign_id, &[(cid(0), InvitationFact::Opened)])
        .await
        .unwrap();
    // Something outside the adapter bumps a counter.
    Moto::shared()
        .client::<aws_sdk_dynamodb::Client>()
        .update_item()
        .table_name(store.table_name())
        .key(
            "pk",
            AttributeValue::S(format!("T#t#CMP#{}", c.campaign_id)),
        )
        .key("sk", AttributeValue::S("CMP".into()))
        .update_expression("ADD n_opened :two")
        .expression_attribute_values(":two", AttributeValue::N("2".into()))
        .send()
        .await
        .unwrap();
    let r = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(r.drifted() && !r.fixed);
    assert_eq!((r.stored.0.opened, r.counted.0.opened), (3, 1));
    assert_eq!((r.counted.0.in_process, r.counted.1.pending), (2, 2));
    let r = store
        .recount_campaign(&tenant, &c.campaign_id, true)
        .await
        .unwrap()
        .unwrap();
    assert!(r.fixed);
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.categories.opened, 1);
    let r = store
        .recount_campaign(&tenant, &c.campaign_id, true)
        .await
        .unwrap()
        .unwrap();
    assert!(!r.drifted() && r.fixed);
    assert!(store
        .recount_campaign(&tenant, &CampaignId::generate(NOW), false)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_filter_by_category_and_search_without_skipping_across_pages() {
    let (store, _) = counted_store().await;
    let tenant = t("t");
    let c = claimed(&store, &tenant, 30).await;
    let facts: Vec<(ContactId, InvitationFact)> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| (cid(i), InvitationFact::Opened))
        .collect();
    store
        .apply_facts(&tenant, &c.campaign_id, &facts)
        .await
        .unwrap();
    let all_pages = |filter: InvitationFilter| {
        let store = &store;
        let tenant = &tenant;
        let id = &c.campaign_id;
        async move {
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .list_invitations(tenant, id, &filter, cursor.as_deref(), 2)
                    .await
                    .unwrap();
                assert!(page.items.len() <= 2);
                out.extend(page.items.into_iter().map(|i| i.contact_id));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    return out;
                }
            }
        }
    };
    let opened = all_pages(InvitationFilter {
        category: Some(InvitationCategory::Opened),
        search: String::new(),
        max_examined: None,
    })
    .await;
    assert_eq!(opened, (0..30).step_by(3).map(cid).collect::<Vec<_>>());
    // Account numbers are `N-{i / 10}`: contacts 10..20 carry `N-1`.
    let searched = all_pages(InvitationFilter {
        category: Some(InvitationCategory::InProcess),
        search: "n-1".into(),
        max_examined: None,
    })
    .await;
    let expected: Vec<ContactId> = (10..20).filter(|i| i % 3 != 0).map(cid).collect();
    assert_eq!(searched, expected);
    let by_name = all_pages(InvitationFilter {
        category: None,
        search: "contact 2".into(),
        max_examined: None,
    })
    .await;
    // "Contact 2" and "Contact 20".."Contact 29".
    assert_eq!(by_name.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_outcomes_of_fresh_invitations_are_written_without_a_read_and_ses_send_events_are_read(
) {
    let (store, counter) = counted_store().await;
    let tenant = t("t");
    let c = claimed(&store, &tenant, 60).await;
    // SES's Delivery for c0000 arrives before the delivery step records its outcome.
    store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[(cid(0), InvitationFact::Delivered)],
        )
        .await
        .unwrap();
    let sent = |range: std::ops::Range<usize>| -> Vec<(ContactId, InvitationFact)> {
        range.map(|i| (cid(i), InvitationFact::Sent)).collect()
    };

    counter.reset();
    let fresh = store
        .record_send_outcomes(&tenant, &c.campaign_id, &sent(1..30))
        .await
        .unwrap();
    assert!(fresh.iter().all(|r| matches!(r, FactResult::Changed(_))));
    assert_eq!(
        (counter.get("GetItem"), counter.get("BatchGetItem")),
        (0, 0),
        "freshly claimed invitations need no read"
    );
    assert_eq!(counter.get("TransactWriteItems"), 1);

    counter.reset();
    let mixed = store
        .record_send_outcomes(
            &tenant,
            &c.campaign_id,
            &sent(0..1)
                .into_iter()
                .chain(sent(30..60))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(
        mixed[0],
        FactResult::Unchanged,
        "the delivery already proved it sent"
    );
    assert!(mixed[1..]
        .iter()
        .all(|r| matches!(r, FactResult::Changed(_))));
    assert_eq!(
        counter.get("BatchGetItem"),
        1,
        "the cancelled round is read once"
    );
    assert_eq!(counter.get("TransactWriteItems"), 2);

    let recount = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!recount.drifted(), "{recount:?}");
    assert_eq!(recount.counted.1.sent, 60);
    assert_eq!(recount.counted.0.unopened, 1);

    // SES's own Send event, arriving after the outcome, goes through `apply_facts`: read,
    // found to change nothing, never written.
    counter.reset();
    let late = store
        .apply_facts(&tenant, &c.campaign_id, &sent(5..6))
        .await
        .unwrap();
    assert_eq!(late, [FactResult::Unchanged]);
    assert_eq!(
        (counter.get("GetItem"), counter.get("TransactWriteItems")),
        (1, 0)
    );
}
