//! Contract cases for hand-picked campaigns at the store: the selection recorded with its
//! campaign and paged back in order, no division lock checked or taken, idempotency
//! replays, and contacts located and read in batches — never across tenants.

use std::collections::{BTreeMap, HashMap};

use crate::ids::{cid, div, t};
use portal_core::domain::{
    Account, Campaign, CampaignId, ContactId, DivisionInput, Email, PortalStatus, TenantId,
    MAX_SELECTED_CONTACTS,
};
use portal_core::ports::{CreateOutcome, Idempotency, Store};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

async fn put_div(store: &dyn Store, tenant: &TenantId, id: &str) {
    let d = DivisionInput::new(
        div(id),
        format!("Division {id}"),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(tenant, &d).await.unwrap();
}

/// Divisions `d1` and `d2`, each with `n` contacts `{prefix}{division}-{i}` (with email
/// `{prefix}{division}-{i}@example.com`), two per account.
async fn seed(store: &dyn Store, tenant: &TenantId, prefix: &str, n: usize) {
    let mut accounts: Vec<Account> = Vec::new();
    for d in ["d1", "d2"] {
        put_div(store, tenant, d).await;
        let ids: Vec<usize> = (0..n).collect();
        accounts.extend(ids.chunks(2).enumerate().map(|(a, chunk)| {
            AccountBuilder::new(format!("{prefix}{d}-a{a}"))
                .division(d)
                .contacts(chunk.iter().map(|i| {
                    ContactBuilder::new(format!("{prefix}{d}-{i}"))
                        .name(format!("Contact {d} {i}"))
                        .email(format!("{prefix}{d}-{i}@example.com"))
                }))
                .build()
        }));
    }
    store.upsert_accounts(tenant, &accounts).await.unwrap();
}

/// A hand-picked campaign over `divisions` naming `ids`, created at `at`.
fn picked(divisions: &[&str], ids: &[ContactId], at: OffsetDateTime) -> Campaign {
    CampaignBuilder::new(at)
        .divisions(divisions)
        .hand_picked(u32::try_from(ids.len()).unwrap())
        .build()
}

async fn create_picked(
    store: &dyn Store,
    tenant: &TenantId,
    c: &Campaign,
    ids: &[ContactId],
    idempotency: Option<&Idempotency>,
    at: OffsetDateTime,
) -> CreateOutcome {
    store
        .create_selection_campaign(tenant, c, ids, idempotency, at)
        .await
        .unwrap()
}

/// Every id of a campaign's selection, read `page` at a time.
async fn read_all(
    store: &dyn Store,
    tenant: &TenantId,
    c: &CampaignId,
    page: u32,
) -> Vec<ContactId> {
    let mut all = Vec::new();
    loop {
        let offset = u32::try_from(all.len()).unwrap();
        let ids = store.selection_ids(tenant, c, offset, page).await.unwrap();
        let done = ids.len() < page as usize;
        all.extend(ids);
        if done {
            return all;
        }
    }
}

// ---------------------------------------------------------------------------------------

pub async fn a_hand_picked_campaign_round_trips_with_its_ids_in_the_order_picked(
    store: &dyn Store,
) {
    let tenant = t("sel-rt");
    put_div(store, &tenant, "d1").await;
    put_div(store, &tenant, "d2").await;
    // Over two chunk boundaries on DynamoDB (500 ids a chunk), in no sorted order.
    let ids: Vec<ContactId> = (0..1_234)
        .map(|i| cid(&format!("p{}", (i * 7919) % 1_234)))
        .collect();
    let c = picked(&["d2", "d1"], &ids, NOW);
    assert_eq!(
        create_picked(store, &tenant, &c, &ids, None, NOW).await,
        CreateOutcome::Created
    );

    let back = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, c, "every field, the selection's count included");
    assert_eq!(back.selection.unwrap().contacts, 1_234);
    assert!(!back.locks_divisions());

    assert_eq!(read_all(store, &tenant, &c.campaign_id, 500).await, ids);
    assert_eq!(read_all(store, &tenant, &c.campaign_id, 7).await, ids);
    // A page across a chunk boundary, the tail, and past the end.
    let across = store
        .selection_ids(&tenant, &c.campaign_id, 480, 40)
        .await
        .unwrap();
    assert_eq!(across, ids[480..520]);
    let tail = store
        .selection_ids(&tenant, &c.campaign_id, 1_200, 500)
        .await
        .unwrap();
    assert_eq!(tail, ids[1_200..]);
    for past in [1_234, 5_000] {
        assert!(store
            .selection_ids(&tenant, &c.campaign_id, past, 500)
            .await
            .unwrap()
            .is_empty());
    }
    // A campaign over divisions has no selection.
    let bulk = CampaignBuilder::new(NOW).division("d1").build();
    store
        .create_campaign(&tenant, &bulk, None, NOW)
        .await
        .unwrap();
    assert!(store
        .selection_ids(&tenant, &bulk.campaign_id, 0, 500)
        .await
        .unwrap()
        .is_empty());

    // Listed in both divisions' histories.
    for d in ["d1", "d2"] {
        let listed = store
            .list_campaigns(&tenant, &div(d), None, 10)
            .await
            .unwrap();
        assert!(
            listed.items.iter().any(|x| x.campaign_id == c.campaign_id),
            "{d}: {listed:?}"
        );
    }
}

pub async fn the_largest_selection_of_the_longest_ids_is_recorded_whole(store: &dyn Store) {
    let tenant = t("sel-max");
    put_div(store, &tenant, "d1").await;
    // 10,000 ids of 64 characters: ~670 KB, more than one DynamoDB item may hold.
    let ids: Vec<ContactId> = (0..MAX_SELECTED_CONTACTS)
        .map(|i| cid(&format!("{i:0>64}")))
        .collect();
    let c = picked(&["d1"], &ids, NOW);
    assert_eq!(
        create_picked(store, &tenant, &c, &ids, None, NOW).await,
        CreateOutcome::Created
    );
    assert_eq!(read_all(store, &tenant, &c.campaign_id, 500).await, ids);
}

pub async fn a_hand_picked_campaign_neither_checks_nor_takes_the_division_lock(store: &dyn Store) {
    let tenant = t("sel-lock");
    put_div(store, &tenant, "d1").await;
    put_div(store, &tenant, "d2").await;
    let ids = vec![cid("x1"), cid("x2")];

    // d1 was bulk-sent an hour ago: a selection over d1 is recorded all the same.
    let bulk = CampaignBuilder::new(NOW).division("d1").build();
    assert_eq!(
        store
            .create_campaign(&tenant, &bulk, None, NOW)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let later = NOW + Duration::hours(1);
    let c = picked(&["d1", "d2"], &ids, later);
    assert_eq!(
        create_picked(store, &tenant, &c, &ids, None, later).await,
        CreateOutcome::Created
    );

    // ... and leaves the lock where it was: d1's stays the bulk send's, d2 has none.
    let d1 = store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_bulk_sent_at, Some(NOW));
    let d2 = store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d2.last_bulk_sent_at, None);

    // So a bulk send of d2 right after the selection is not held.
    let bulk2 = CampaignBuilder::new(later).division("d2").build();
    assert_eq!(
        store
            .create_campaign(&tenant, &bulk2, None, later)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // While a second bulk send of d1 still is (the selection did not reset it either).
    let bulk3 = CampaignBuilder::new(later).division("d1").build();
    assert_eq!(
        store
            .create_campaign(&tenant, &bulk3, None, later)
            .await
            .unwrap(),
        CreateOutcome::DivisionHeld {
            division_id: div("d1"),
            retry_after: NOW + Duration::hours(24),
        }
    );
}

pub async fn a_hand_picked_campaign_answers_its_idempotency_key(store: &dyn Store) {
    let tenant = t("sel-idem");
    put_div(store, &tenant, "d1").await;
    let ids = vec![cid("x1"), cid("x2"), cid("x3")];
    let key = |body: u8| Idempotency {
        key: "pick-1".into(),
        body_hash: [body; 32],
    };
    let c = picked(&["d1"], &ids, NOW);
    assert_eq!(
        create_picked(store, &tenant, &c, &ids, Some(&key(1)), NOW).await,
        CreateOutcome::Created
    );

    // The same key and body: that campaign, and nothing written (its selection unchanged).
    let other_ids = vec![cid("y1")];
    let again = picked(&["d1"], &other_ids, NOW);
    match create_picked(store, &tenant, &again, &other_ids, Some(&key(1)), NOW).await {
        CreateOutcome::Existing(existing) => assert_eq!(*existing, c),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        create_picked(store, &tenant, &again, &other_ids, Some(&key(2)), NOW).await,
        CreateOutcome::IdempotencyMismatch
    );
    assert_eq!(read_all(store, &tenant, &c.campaign_id, 500).await, ids);
    assert!(store
        .get_campaign(&tenant, &again.campaign_id)
        .await
        .unwrap()
        .is_none());
    assert!(read_all(store, &tenant, &again.campaign_id, 500)
        .await
        .is_empty());
}

pub async fn contacts_are_located_and_read_in_batches_within_their_tenant(store: &dyn Store) {
    let (a, b) = (t("sel-a"), t("sel-b"));
    seed(store, &a, "", 6).await;
    // Tenant b has the same contact ids, in the other division, and one of its own.
    let b_accounts = vec![AccountBuilder::new("b-acc")
        .division("d2")
        .contacts(
            ["d1-0", "b-only"]
                .map(|id| ContactBuilder::new(id).email(format!("b.{id}@example.com"))),
        )
        .build()];
    put_div(store, &b, "d2").await;
    store.upsert_accounts(&b, &b_accounts).await.unwrap();
    store
        .record_invited(&a, &cid("d1-1"), NOW - Duration::hours(1))
        .await
        .unwrap();
    store
        .set_portal_status(&a, &cid("d2-2"), PortalStatus::Accepted)
        .await
        .unwrap();

    let asked: Vec<ContactId> = ["d1-0", "d2-5", "d1-1", "nobody", "b-only", "d1-0", "d2-2"]
        .map(cid)
        .to_vec();
    let located: BTreeMap<String, String> = store
        .locate_contacts(&a, &asked)
        .await
        .unwrap()
        .into_iter()
        .map(|(c, d)| (c.to_string(), d.to_string()))
        .collect();
    let expected: BTreeMap<String, String> = [
        ("d1-0", "d1"),
        ("d2-5", "d2"),
        ("d1-1", "d1"),
        ("d2-2", "d2"),
    ]
    .map(|(c, d)| (c.to_owned(), d.to_owned()))
    .into();
    assert_eq!(located, expected);
    let in_b: BTreeMap<String, String> = store
        .locate_contacts(&b, &asked)
        .await
        .unwrap()
        .into_iter()
        .map(|(c, d)| (c.to_string(), d.to_string()))
        .collect();
    let expected_b: BTreeMap<String, String> = [("d1-0", "d2"), ("b-only", "d2")]
        .map(|(c, d)| (c.to_owned(), d.to_owned()))
        .into();
    assert_eq!(in_b, expected_b);

    // Read whole, with their state, as `get_contact` reads each one.
    let got: HashMap<ContactId, _> = store
        .get_contacts(&a, &asked)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.contact_id.clone(), c))
        .collect();
    assert_eq!(got.len(), 4);
    for (id, record) in &got {
        assert_eq!(
            Some(record),
            store.get_contact(&a, id).await.unwrap().as_ref(),
            "{id}"
        );
    }
    assert_eq!(
        got[&cid("d1-1")].last_invited_at,
        Some(NOW - Duration::hours(1))
    );
    assert_eq!(got[&cid("d1-1")].portal_status, PortalStatus::Pending);
    assert_eq!(got[&cid("d2-2")].portal_status, PortalStatus::Accepted);
    assert_eq!(
        got[&cid("d1-0")].email.as_ref().map(Email::as_str),
        Some("d1-0@example.com"),
        "tenant a's contact, not b's of the same id"
    );
    assert!(store.get_contacts(&a, &[]).await.unwrap().is_empty());

    // Another tenant cannot read a selection through its campaign id.
    let ids = vec![cid("d1-0")];
    let c = picked(&["d1"], &ids, NOW);
    create_picked(store, &a, &c, &ids, None, NOW).await;
    assert!(store
        .selection_ids(&b, &c.campaign_id, 0, 500)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_campaign(&b, &c.campaign_id)
        .await
        .unwrap()
        .is_none());
}
