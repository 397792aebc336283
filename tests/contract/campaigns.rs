//! Contract cases for campaigns, invitations and the two 24-hour rules (the division lock on
//! a bulk send, the per-contact claim on every send). Each case builds its own tenant.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{cid, div, t};
use portal_core::domain::{
    Account, Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DisplayName,
    DivisionInput, Email, Filters, Invitation, InvitationCategory, InvitationFact, InvitationState,
    PortalStatus, RegistrationToken, SendCounts, SendState, Skipped, Suppression, TenantId,
    Trigger,
};
use portal_core::ports::{
    Attempt, Claim, ClaimResult, ContactQuery, CreateOutcome, FactResult, Idempotency,
    InvitationFilter, LeaseOutcome, LeaseStep, Store, SuppressionReason,
};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
const DAY: Duration = Duration::hours(24);
const ONE_SECOND: Duration = Duration::seconds(1);

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn put_div(store: &dyn Store, tenant: &TenantId, id: &str) {
    let d =
        DivisionInput::new(div(id), format!("Division {id}"), email("hoa@example.org")).unwrap();
    store.put_division(tenant, &d).await.unwrap();
}

/// Divisions `d1`, `d2`, and `n` contacts `c000..` on accounts of four contacts in `d1`.
async fn seed(store: &dyn Store, tenant: &TenantId, n: usize) {
    put_div(store, tenant, "d1").await;
    put_div(store, tenant, "d2").await;
    let ids: Vec<usize> = (0..n).collect();
    let accounts: Vec<Account> = ids
        .chunks(4)
        .enumerate()
        .map(|(a, chunk)| {
            AccountBuilder::new(format!("a{a:03}"))
                .number(format!("N-{a}"))
                .name(format!("Account {a}"))
                .contacts(chunk.iter().map(|i| {
                    ContactBuilder::new(format!("c{i:03}"))
                        .name(format!("Contact {i}"))
                        .email(format!("c{i}@example.com"))
                }))
                .build()
        })
        .collect();
    store.upsert_accounts(tenant, &accounts).await.unwrap();
}

fn campaign(trigger: Trigger, divisions: &[&str], at: OffsetDateTime) -> Campaign {
    CampaignBuilder::new(at)
        .trigger(trigger)
        .divisions(divisions)
        .filters(Filters {
            account_class: vec!["Residential".into()],
            billing_contacts_only: true,
            ..Filters::default()
        })
        .build()
}

fn claim(c: &Campaign, contact: &str, at: OffsetDateTime) -> Claim {
    Claim {
        contact_id: cid(contact),
        division_id: None,
        invitation: Invitation {
            campaign_id: c.campaign_id.clone(),
            contact_id: cid(contact),
            email: email(&format!("{contact}@example.com")),
            contact_name: format!("Contact {contact}"),
            account_number: format!("ACC-{}", &contact[..contact.len().min(3)]),
            registration_token_hash: RegistrationToken::generate().hash(),
            expires_at: at + Duration::days(14),
            state: InvitationState::new(),
            created_at: at,
        },
    }
}

fn all() -> InvitationFilter {
    InvitationFilter::default()
}

async fn create(
    store: &dyn Store,
    tenant: &TenantId,
    c: &Campaign,
    at: OffsetDateTime,
) -> CreateOutcome {
    store.create_campaign(tenant, c, None, at).await.unwrap()
}

async fn claim_all(
    store: &dyn Store,
    tenant: &TenantId,
    c: &Campaign,
    contacts: &[&str],
    at: OffsetDateTime,
) -> Vec<ClaimResult> {
    let claims: Vec<Claim> = contacts.iter().map(|id| claim(c, id, at)).collect();
    store
        .claim_contacts(tenant, &c.campaign_id, &claims, at)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------

pub async fn a_campaign_round_trips_with_every_field(store: &dyn Store) {
    let tenant = t("cmp-rt");
    seed(store, &tenant, 0).await;
    let mut c = campaign(Trigger::Manual, &["d1", "d2"], NOW);
    c.targeted = 3;
    c.skipped = Skipped {
        accepted: 1,
        held_24h: 2,
        suppressed: 3,
        no_email: 4,
        duplicate_address: 5,
    };
    c.pause_reason = Some("testing".into());
    c.display_name = Some(DisplayName::parse("[DivisionName] via Ácme").unwrap());
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    assert_eq!(
        store.get_campaign(&tenant, &c.campaign_id).await.unwrap(),
        Some(c.clone())
    );
    let other = CampaignId::generate(NOW);
    assert_eq!(store.get_campaign(&tenant, &other).await.unwrap(), None);
    for d in ["d1", "d2"] {
        let d = store.get_division(&tenant, &div(d)).await.unwrap().unwrap();
        assert_eq!(
            d.last_bulk_sent_at,
            Some(NOW),
            "a manual send locks its divisions"
        );
    }
}

pub async fn a_second_bulk_send_within_24_hours_is_held_and_writes_nothing(store: &dyn Store) {
    let tenant = t("cmp-held");
    seed(store, &tenant, 0).await;
    let first = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &first, NOW).await,
        CreateOutcome::Created
    );

    let later = NOW + Duration::hours(3);
    let second = campaign(Trigger::Manual, &["d2", "d1"], later);
    assert_eq!(
        create(store, &tenant, &second, later).await,
        CreateOutcome::DivisionHeld {
            division_id: div("d1"),
            retry_after: NOW + DAY,
        }
    );
    assert_eq!(
        store
            .get_campaign(&tenant, &second.campaign_id)
            .await
            .unwrap(),
        None
    );
    let d2 = store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d2.last_bulk_sent_at, None,
        "the free division was not locked either"
    );
    let d1 = store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_bulk_sent_at, Some(NOW));

    // An unknown division is refused, and nothing is written.
    let ghost = campaign(Trigger::Manual, &["d2", "nope"], later);
    assert_eq!(
        create(store, &tenant, &ghost, later).await,
        CreateOutcome::DivisionMissing {
            division_id: div("nope")
        }
    );
    assert_eq!(
        store
            .get_campaign(&tenant, &ghost.campaign_id)
            .await
            .unwrap(),
        None
    );
}

pub async fn the_division_lock_holds_at_23_59_59_and_frees_at_24_00_00(store: &dyn Store) {
    let tenant = t("cmp-div-edge");
    seed(store, &tenant, 0).await;
    let first = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &first, NOW).await,
        CreateOutcome::Created
    );

    let almost = NOW + DAY - ONE_SECOND;
    let early = campaign(Trigger::Manual, &["d1"], almost);
    assert!(matches!(
        create(store, &tenant, &early, almost).await,
        CreateOutcome::DivisionHeld { retry_after, .. } if retry_after == NOW + DAY
    ));
    let on_time = campaign(Trigger::Manual, &["d1"], NOW + DAY);
    assert_eq!(
        create(store, &tenant, &on_time, NOW + DAY).await,
        CreateOutcome::Created
    );
    let d1 = store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_bulk_sent_at, Some(NOW + DAY));
}

pub async fn individual_and_recurring_campaigns_take_no_division_lock(store: &dyn Store) {
    let tenant = t("cmp-nolock");
    seed(store, &tenant, 0).await;
    let bulk = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &bulk, NOW).await,
        CreateOutcome::Created
    );
    for trigger in [Trigger::Individual, Trigger::Recurring] {
        let c = campaign(trigger, &["d1"], NOW);
        assert_eq!(
            create(store, &tenant, &c, NOW).await,
            CreateOutcome::Created
        );
        assert_eq!(
            store
                .get_campaign(&tenant, &c.campaign_id)
                .await
                .unwrap()
                .map(|c| c.trigger),
            Some(trigger)
        );
    }
    let d2 = store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d2.last_bulk_sent_at, None);
}

pub async fn an_idempotency_key_answers_the_same_campaign_and_refuses_another_body(
    store: &dyn Store,
) {
    let tenant = t("cmp-idem");
    seed(store, &tenant, 0).await;
    let key = Idempotency {
        key: "retry-me #1 / with any text".into(),
        body_hash: [7; 32],
    };
    let first = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        store
            .create_campaign(&tenant, &first, Some(&key), NOW)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // A retry of the same request (a fresh id, as the handler makes one per request) gets
    // the first campaign, although its division is now held.
    let later = NOW + Duration::minutes(1);
    let retry = campaign(Trigger::Manual, &["d1"], later);
    assert_eq!(
        store
            .create_campaign(&tenant, &retry, Some(&key), later)
            .await
            .unwrap(),
        CreateOutcome::Existing(Box::new(first.clone()))
    );
    assert_eq!(
        store
            .get_campaign(&tenant, &retry.campaign_id)
            .await
            .unwrap(),
        None
    );

    let other_body = Idempotency {
        key: key.key.clone(),
        body_hash: [8; 32],
    };
    let other = campaign(Trigger::Manual, &["d2"], later);
    assert_eq!(
        store
            .create_campaign(&tenant, &other, Some(&other_body), later)
            .await
            .unwrap(),
        CreateOutcome::IdempotencyMismatch
    );
    assert_eq!(
        store
            .get_campaign(&tenant, &other.campaign_id)
            .await
            .unwrap(),
        None
    );
    let d2 = store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d2.last_bulk_sent_at, None, "a refused key locks nothing");

    // The same key in another tenant is another key.
    let elsewhere = t("cmp-idem-2");
    seed(store, &elsewhere, 0).await;
    let theirs = campaign(Trigger::Manual, &["d1"], later);
    assert_eq!(
        store
            .create_campaign(&elsewhere, &theirs, Some(&other_body), later)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

pub async fn claims_sort_out_accepted_missing_and_held_contacts(store: &dyn Store) {
    let tenant = t("cmp-claims");
    seed(store, &tenant, 8).await;
    store
        .set_portal_status(&tenant, &cid("c001"), PortalStatus::Accepted)
        .await
        .unwrap();
    store
        .record_invited(&tenant, &cid("c002"), NOW - Duration::hours(2))
        .await
        .unwrap();
    // Invited exactly 24 hours ago through the older path: free again.
    store
        .record_invited(&tenant, &cid("c003"), NOW - DAY)
        .await
        .unwrap();

    let c = campaign(Trigger::Individual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    let results = claim_all(
        store,
        &tenant,
        &c,
        &["c000", "c001", "c002", "c003", "ghost", "c000"],
        NOW,
    )
    .await;
    assert_eq!(
        results,
        [
            ClaimResult::Claimed,
            ClaimResult::Accepted,
            ClaimResult::Held {
                until: NOW + Duration::hours(22)
            },
            ClaimResult::Claimed,
            ClaimResult::Missing,
            ClaimResult::Claimed, // a repeat gets the first one's result
        ]
    );

    for (id, status, invited) in [
        ("c000", PortalStatus::Pending, Some(NOW)),
        ("c001", PortalStatus::Accepted, None),
        (
            "c002",
            PortalStatus::Pending,
            Some(NOW - Duration::hours(2)),
        ),
        ("c003", PortalStatus::Pending, Some(NOW)),
        ("c004", PortalStatus::NotSent, None),
    ] {
        let got = store.get_contact(&tenant, &cid(id)).await.unwrap().unwrap();
        assert_eq!(
            (got.portal_status, got.last_invited_at),
            (status, invited),
            "{id}"
        );
    }

    let page = store
        .list_invitations(&tenant, &c.campaign_id, &all(), None, 100)
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|i| i.contact_id.as_str()).collect();
    assert_eq!(
        ids,
        ["c000", "c003"],
        "only claimed contacts get an invitation"
    );
    assert_eq!(page.next_cursor, None);
    let expected = claim(&c, "c000", NOW).invitation;
    let stored = &page.items[0];
    assert_eq!(
        (
            &stored.email,
            &stored.contact_name,
            &stored.account_number,
            stored.expires_at,
            &stored.state,
            stored.created_at
        ),
        (
            &expected.email,
            &expected.contact_name,
            &expected.account_number,
            expected.expires_at,
            &expected.state,
            expected.created_at
        )
    );
}

pub async fn a_replayed_claim_is_already_claimed_and_another_campaign_is_held(store: &dyn Store) {
    let tenant = t("cmp-replay");
    seed(store, &tenant, 4).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let first = claim(&c, "c000", NOW);
    let results = store
        .claim_contacts(&tenant, &c.campaign_id, std::slice::from_ref(&first), NOW)
        .await
        .unwrap();
    assert_eq!(results, [ClaimResult::Claimed]);
    let stored = store
        .get_invitation(&tenant, &c.campaign_id, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, first.invitation);

    // The fan-out dies and runs again, a minute later, with fresh tokens: nothing changes.
    let later = NOW + Duration::minutes(1);
    assert_eq!(
        claim_all(store, &tenant, &c, &["c000", "c001"], later).await,
        [
            ClaimResult::AlreadyClaimedByThisCampaign,
            ClaimResult::Claimed
        ]
    );
    let again = store
        .get_invitation(&tenant, &c.campaign_id, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again, first.invitation,
        "the first token stays the valid one"
    );
    let contact = store
        .get_contact(&tenant, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.last_invited_at, Some(NOW));

    let other = campaign(Trigger::Individual, &["d1"], later);
    create(store, &tenant, &other, later).await;
    assert_eq!(
        claim_all(store, &tenant, &other, &["c000"], later).await,
        [ClaimResult::Held { until: NOW + DAY }]
    );
    assert_eq!(
        store
            .get_invitation(&tenant, &other.campaign_id, &cid("c000"))
            .await
            .unwrap(),
        None
    );
}

pub async fn the_contact_claim_holds_at_23_59_59_and_frees_at_24_00_00(store: &dyn Store) {
    let tenant = t("cmp-claim-edge");
    seed(store, &tenant, 2).await;
    let a = campaign(Trigger::Individual, &["d1"], NOW);
    create(store, &tenant, &a, NOW).await;
    assert_eq!(
        claim_all(store, &tenant, &a, &["c000"], NOW).await,
        [ClaimResult::Claimed]
    );
    let almost = NOW + DAY - ONE_SECOND;
    let b = campaign(Trigger::Individual, &["d1"], almost);
    create(store, &tenant, &b, almost).await;
    assert_eq!(
        claim_all(store, &tenant, &b, &["c000"], almost).await,
        [ClaimResult::Held { until: NOW + DAY }]
    );
    let c = campaign(Trigger::Individual, &["d1"], NOW + DAY);
    create(store, &tenant, &c, NOW + DAY).await;
    assert_eq!(
        claim_all(store, &tenant, &c, &["c000"], NOW + DAY).await,
        [ClaimResult::Claimed]
    );
    let contact = store
        .get_contact(&tenant, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.last_invited_at, Some(NOW + DAY));
}

pub async fn two_concurrent_campaigns_claim_each_contact_exactly_once(store: &dyn Store) {
    const N: usize = 120;
    let tenant = t("cmp-race");
    seed(store, &tenant, N).await;
    let bulk = campaign(Trigger::Manual, &["d1"], NOW);
    let single = campaign(Trigger::Individual, &["d1"], NOW);
    create(store, &tenant, &bulk, NOW).await;
    create(store, &tenant, &single, NOW).await;
    let ids: Vec<String> = (0..N).map(|i| format!("c{i:03}")).collect();
    let forward: Vec<&str> = ids.iter().map(String::as_str).collect();
    let backward: Vec<&str> = forward.iter().rev().copied().collect();

    let (a, b) = tokio::join!(
        claim_all(store, &tenant, &bulk, &forward, NOW),
        claim_all(store, &tenant, &single, &backward, NOW),
    );
    let b: Vec<ClaimResult> = b.into_iter().rev().collect();
    let mut winners: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, id) in forward.iter().enumerate() {
        match (a[i], b[i]) {
            (ClaimResult::Claimed, ClaimResult::Held { until }) => {
                assert_eq!(until, NOW + DAY);
                winners.insert(id, "bulk");
            }
            (ClaimResult::Held { until }, ClaimResult::Claimed) => {
                assert_eq!(until, NOW + DAY);
                winners.insert(id, "single");
            }
            other => panic!("{id}: {other:?} — claimed twice or not at all"),
        }
    }
    assert_eq!(winners.len(), N);

    // The stored invitations agree with the results: each contact once, in one campaign.
    let mut stored = BTreeSet::new();
    for (c, who) in [(&bulk, "bulk"), (&single, "single")] {
        let mut cursor = None;
        loop {
            let page = store
                .list_invitations(&tenant, &c.campaign_id, &all(), cursor.as_deref(), 37)
                .await
                .unwrap();
            for inv in &page.items {
                assert_eq!(winners.get(inv.contact_id.as_str()), Some(&who));
                assert!(stored.insert(inv.contact_id.clone()), "stored twice");
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
    }
    assert_eq!(stored.len(), N);

    let counts = store
        .count_contacts(
            &tenant,
            &ContactQuery {
                division_ids: vec![div("d1")],
                filters: Filters::default(),
                limit_to_uninvited: false,
                now: NOW + Duration::hours(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (counts.pending, counts.held_24h, counts.eligible),
        (N as u64, N as u64, 0)
    );
}

pub async fn status_moves_only_from_the_expected_status_and_counts_add_up(store: &dyn Store) {
    let tenant = t("cmp-status");
    seed(store, &tenant, 0).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let id = &c.campaign_id;
    let fan_out = CampaignStatus::Queued
        .next(portal_core::domain::CampaignEvent::FanOutStarted)
        .unwrap();
    assert!(store
        .update_campaign_status(&tenant, id, CampaignStatus::Queued, fan_out, None)
        .await
        .unwrap());
    // A second runner with a stale view loses.
    assert!(!store
        .update_campaign_status(&tenant, id, CampaignStatus::Queued, fan_out, None)
        .await
        .unwrap());
    assert!(store
        .update_campaign_status(
            &tenant,
            id,
            fan_out,
            CampaignStatus::Paused,
            Some("too many failures".into())
        )
        .await
        .unwrap());
    let got = store.get_campaign(&tenant, id).await.unwrap().unwrap();
    assert_eq!(got.status, CampaignStatus::Paused);
    assert_eq!(got.pause_reason.as_deref(), Some("too many failures"));
    assert!(store
        .update_campaign_status(
            &tenant,
            id,
            CampaignStatus::Paused,
            CampaignStatus::Queued,
            None
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .get_campaign(&tenant, id)
            .await
            .unwrap()
            .unwrap()
            .pause_reason,
        None
    );

    let skips = Skipped {
        accepted: 1,
        held_24h: 2,
        suppressed: 3,
        no_email: 4,
        duplicate_address: 5,
    };
    for _ in 0..2 {
        assert!(store
            .add_campaign_counts(&tenant, id, 5, skips, None)
            .await
            .unwrap());
    }
    // Under a page key the counts are added once, however often the page is replayed.
    for (page, first) in [("p1", true), ("p1", false), ("p2", true), ("p1", false)] {
        assert_eq!(
            store
                .add_campaign_counts(&tenant, id, 0, skips, Some(page))
                .await
                .unwrap(),
            first,
            "page {page}"
        );
    }
    let got = store.get_campaign(&tenant, id).await.unwrap().unwrap();
    assert_eq!(got.targeted, 10);
    assert_eq!(
        got.skipped,
        Skipped {
            accepted: 4,
            held_24h: 8,
            suppressed: 12,
            no_email: 16,
            duplicate_address: 20,
        }
    );
    let missing = CampaignId::generate(NOW);
    assert!(!store
        .add_campaign_counts(&tenant, &missing, 1, Skipped::default(), None)
        .await
        .unwrap());
    assert!(!store
        .add_campaign_counts(&tenant, &missing, 1, Skipped::default(), Some("p1"))
        .await
        .unwrap());
    assert!(!store
        .update_campaign_status(
            &tenant,
            &missing,
            CampaignStatus::Queued,
            CampaignStatus::Failed,
            None
        )
        .await
        .unwrap());
}

pub async fn invitations_page_in_contact_order_and_record_their_category(store: &dyn Store) {
    let tenant = t("cmp-pages");
    seed(store, &tenant, 9).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let ids: Vec<String> = (0..9).rev().map(|i| format!("c{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    claim_all(store, &tenant, &c, &ids, NOW).await;

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_invitations(&tenant, &c.campaign_id, &all(), cursor.as_deref(), 4)
            .await
            .unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.into_iter().map(|i| i.contact_id.to_string()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..9).map(|i| format!("c{i:03}")).collect();
    assert_eq!(seen, expected);
    assert!(store
        .list_invitations(&tenant, &c.campaign_id, &all(), Some("forged"), 4)
        .await
        .is_err());

    let results = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (
                    cid("c004"),
                    InvitationFact::SendFailed {
                        reason: "mailbox full".into(),
                    },
                ),
                (cid("c005"), InvitationFact::Sent),
                (cid("c999"), InvitationFact::Sent),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(results[0], FactResult::Changed(_)));
    assert!(matches!(results[1], FactResult::Changed(_)));
    assert_eq!(results[2], FactResult::Missing);
    let get = |id: &'static str| {
        let c = c.campaign_id.clone();
        let tenant = tenant.clone();
        async move {
            store
                .get_invitation(&tenant, &c, &cid(id))
                .await
                .unwrap()
                .map(|i| i.state)
        }
    };
    assert_eq!(
        get("c004").await,
        Some(InvitationState {
            category: InvitationCategory::Failed,
            send: SendState::Failed,
            reason: Some("mailbox full".into()),
            suppressed: false,
        })
    );
    assert_eq!(
        get("c005").await,
        Some(InvitationState {
            send: SendState::Sent,
            ..InvitationState::new()
        })
    );
    assert_eq!(get("c006").await, Some(InvitationState::new()));
}

pub async fn campaigns_and_claims_never_cross_tenants(store: &dyn Store) {
    let (mine, theirs) = (t("cmp-mine"), t("cmp-theirs"));
    seed(store, &mine, 2).await;
    seed(store, &theirs, 2).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(create(store, &mine, &c, NOW).await, CreateOutcome::Created);
    claim_all(store, &mine, &c, &["c000"], NOW).await;

    // Their division is not locked, and they see none of my campaign.
    let d1 = store
        .get_division(&theirs, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_bulk_sent_at, None);
    assert_eq!(
        store.get_campaign(&theirs, &c.campaign_id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_invitation(&theirs, &c.campaign_id, &cid("c000"))
            .await
            .unwrap(),
        None
    );
    let page = store
        .list_invitations(&theirs, &c.campaign_id, &all(), None, 10)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(!store
        .update_campaign_status(
            &theirs,
            &c.campaign_id,
            CampaignStatus::Queued,
            CampaignStatus::Failed,
            None
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .apply_facts(
                &theirs,
                &c.campaign_id,
                &[(cid("c000"), InvitationFact::Registered)]
            )
            .await
            .unwrap(),
        [FactResult::Missing]
    );

    // Their contact with the same id is free: my claim did not touch it.
    let their_contact = store
        .get_contact(&theirs, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(their_contact.last_invited_at, None);
    // And claiming under my campaign id in their tenant (once they have a campaign of that
    // id) claims their contact, not mine.
    assert_eq!(
        create(store, &theirs, &c, NOW).await,
        CreateOutcome::Created
    );
    assert_eq!(
        claim_all(store, &theirs, &c, &["c000"], NOW).await,
        [ClaimResult::Claimed]
    );
    assert_eq!(
        store
            .get_campaign(&mine, &c.campaign_id)
            .await
            .unwrap()
            .map(|c| c.status),
        Some(CampaignStatus::Queued)
    );
}

pub async fn claims_and_outcomes_keep_the_category_counters_equal_to_a_recount(store: &dyn Store) {
    let tenant = t("cmp-counters");
    seed(store, &tenant, 8).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    let ids = ["c000", "c001", "c002", "c003", "c004"];
    claim_all(store, &tenant, &c, &ids, NOW).await;
    // A replayed claim counts nothing again; a claim carrying its division is claimed too.
    claim_all(store, &tenant, &c, &ids, NOW).await;
    let mut hinted = claim(&c, "c005", NOW);
    hinted.division_id = Some(div("d1"));
    assert_eq!(
        store
            .claim_contacts(&tenant, &c.campaign_id, &[hinted], NOW)
            .await
            .unwrap(),
        vec![ClaimResult::Claimed]
    );
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.targeted, 6);
    assert_eq!(got.categories.in_process, 6);

    assert_eq!(got.sends.pending, 6);

    let failed = InvitationFact::SendFailed {
        reason: "mailbox full".into(),
    };
    let applied = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c000"), InvitationFact::Sent),
                (cid("c001"), InvitationFact::Sent),
                (cid("c002"), failed.clone()),
                (cid("c999"), InvitationFact::Sent),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(
        applied[..3],
        [
            FactResult::Changed(_),
            FactResult::Changed(_),
            FactResult::Changed(_)
        ]
    ));
    assert_eq!(applied[3], FactResult::Missing);
    // Recording again (a replayed delivery) changes nothing and moves no counter; a later
    // send failure still outranks `in_process` but leaves the recorded send as it was.
    let again = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c000"), InvitationFact::Sent),
                (cid("c000"), failed.clone()),
                (cid("c003"), InvitationFact::Sent),
            ],
        )
        .await
        .unwrap();
    assert_eq!(again[0], FactResult::Unchanged);
    assert!(
        matches!(again[1], FactResult::Changed(_)),
        "failed outranks in_process"
    );
    assert!(matches!(again[2], FactResult::Changed(_)));
    // An unsubscribe outranks what came before; the same contact twice in a call applies
    // in order.
    let last = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c001"), InvitationFact::Delivered),
                (cid("c001"), InvitationFact::Unsubscribed),
                (cid("c001"), InvitationFact::Opened),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(
        last[..2],
        [FactResult::Changed(_), FactResult::Changed(_)]
    ));
    assert_eq!(last[2], FactResult::Unchanged);

    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    let invitations = store
        .list_invitations(&tenant, &c.campaign_id, &all(), None, 100)
        .await
        .unwrap()
        .items;
    let (recount, resend) = tally(&invitations);
    assert_eq!((got.categories, got.sends), (recount, resend));
    assert_eq!(
        got.categories,
        CategoryCounts {
            in_process: 3,
            failed: 2,
            unsubscribed: 1,
            ..CategoryCounts::default()
        }
    );
    assert_eq!(
        got.sends,
        SendCounts {
            pending: 2,
            sent: 3,
            failed: 1
        }
    );
    let by_id: BTreeMap<String, InvitationState> = invitations
        .into_iter()
        .map(|i| (i.contact_id.to_string(), i.state))
        .collect();
    assert_eq!(
        (by_id["c000"].category, by_id["c000"].send),
        (InvitationCategory::Failed, SendState::Sent)
    );
    assert_eq!(by_id["c002"].reason.as_deref(), Some("mailbox full"));
    assert_eq!(by_id["c001"].category, InvitationCategory::Unsubscribed);
    let recount = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!recount.drifted(), "{recount:?}");
}

/// The categories and send states of `invitations`, counted.
fn tally(invitations: &[Invitation]) -> (CategoryCounts, SendCounts) {
    let mut categories = CategoryCounts::default();
    let mut sends = SendCounts::default();
    for inv in invitations {
        *categories.get_mut(inv.state.category) += 1;
        *sends.get_mut(inv.state.send) += 1;
    }
    (categories, sends)
}

pub async fn invitations_and_suppressions_are_read_in_batches(store: &dyn Store) {
    let tenant = t("cmp-batch-read");
    seed(store, &tenant, 6).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    claim_all(store, &tenant, &c, &["c000", "c002", "c004"], NOW).await;
    let got: BTreeSet<String> = store
        .get_invitations(
            &tenant,
            &c.campaign_id,
            &[
                cid("c000"),
                cid("c001"),
                cid("c002"),
                cid("c004"),
                cid("c004"),
            ],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.contact_id.to_string())
        .collect();
    assert_eq!(
        got,
        BTreeSet::from(["c000".into(), "c002".into(), "c004".into()])
    );
    assert!(store
        .get_invitations(&t("cmp-batch-other"), &c.campaign_id, &[cid("c000")])
        .await
        .unwrap()
        .is_empty());

    store
        .suppress(
            &tenant,
            &email("C1@Example.com"),
            SuppressionReason::Unsubscribed,
            NOW,
        )
        .await
        .unwrap();
    store
        .suppress(
            &t("cmp-batch-other"),
            &email("c2@example.com"),
            SuppressionReason::Unsubscribed,
            NOW,
        )
        .await
        .unwrap();
    let found = store
        .suppressed_among(
            &tenant,
            &[
                email("c0@example.com"),
                email("c1@example.com"),
                email("c2@example.com"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        std::collections::HashSet::from(["c1@example.com".to_owned()])
    );
    assert!(store
        .suppressed_among(&tenant, &[])
        .await
        .unwrap()
        .is_empty());
}

/// A deterministic shuffle (xorshift), so a failing case replays.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        items.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// What an invitation's facts lead to, by the domain alone.
fn fold(facts: &[&InvitationFact]) -> InvitationState {
    let mut state = InvitationState::new();
    for f in facts {
        if let Some(t) = state.apply(f) {
            state = t.to;
        }
    }
    state
}

/// A plausible life of invitation `i`, in the order SES would tell it, no duplicates.
fn life(i: usize) -> Vec<InvitationFact> {
    use InvitationFact as F;
    let mut facts = vec![F::Sent];
    match i % 8 {
        0 => {}
        1 => facts.push(F::Delivered),
        2 => facts.extend([F::Delivered, F::Opened]),
        3 => facts.extend([F::Delivered, F::Opened, F::Clicked, F::Registered]),
        4 => facts.extend([
            F::Delayed,
            F::Bounced {
                permanent: true,
                reason: "Permanent/General".into(),
            },
        ]),
        5 => facts.extend([F::Delivered, F::Opened, F::Unsubscribed]),
        6 => facts.extend([F::Delivered, F::Complained]),
        _ => {
            facts = vec![F::Rejected {
                reason: "Bad content".into(),
            }]
        }
    }
    facts
}

pub async fn a_shuffled_duplicated_fact_stream_ends_like_the_ordered_one_and_counters_never_drift(
    store: &dyn Store,
) {
    const N: usize = 40;
    let ids: Vec<String> = (0..N).map(|i| format!("c{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let ordered: Vec<(ContactId, InvitationFact)> = (0..N)
        .flat_map(|i| {
            life(i)
                .into_iter()
                .map(move |f| (cid(&format!("c{i:03}")), f))
        })
        .collect();
    let mut shuffled = ordered.clone();
    // Every fourth fact twice, then any order.
    shuffled.extend(ordered.iter().step_by(4).cloned());
    shuffle(&mut shuffled, 0x5eed);

    let mut finals = Vec::new();
    for (name, stream) in [("fct-ordered", &ordered), ("fct-shuffled", &shuffled)] {
        let tenant = t(name);
        seed(store, &tenant, N).await;
        let c = campaign(Trigger::Manual, &["d1"], NOW);
        create(store, &tenant, &c, NOW).await;
        claim_all(store, &tenant, &c, &ids, NOW).await;
        // In calls of 37: a contact may recur within a call.
        for chunk in stream.chunks(37) {
            let results = store
                .apply_facts(&tenant, &c.campaign_id, chunk)
                .await
                .unwrap();
            assert_eq!(results.len(), chunk.len());
            assert!(!results.contains(&FactResult::Missing));
        }
        let got = store
            .get_campaign(&tenant, &c.campaign_id)
            .await
            .unwrap()
            .unwrap();
        let invitations = store
            .list_invitations(&tenant, &c.campaign_id, &all(), None, 100)
            .await
            .unwrap()
            .items;
        assert_eq!(invitations.len(), N);
        assert_eq!((got.categories, got.sends), tally(&invitations), "{name}");
        let recount = store
            .recount_campaign(&tenant, &c.campaign_id, false)
            .await
            .unwrap()
            .unwrap();
        assert!(!recount.drifted(), "{name}: {recount:?}");
        assert!(!recount.fixed);
        assert_eq!(recount.counted, (got.categories, got.sends));
        let states: BTreeMap<String, (InvitationCategory, SendState, bool)> = invitations
            .iter()
            .map(|i| {
                let s = &i.state;
                (i.contact_id.to_string(), (s.category, s.send, s.suppressed))
            })
            .collect();
        finals.push((states, got.categories));
    }
    assert_eq!(
        finals[0], finals[1],
        "order and duplicates changed the outcome"
    );
    // And both are what the domain says.
    for (i, id) in ids.iter().enumerate() {
        let facts = life(i);
        let expected = fold(&facts.iter().collect::<Vec<_>>());
        assert_eq!(
            finals[0].0[*id],
            (expected.category, expected.send, expected.suppressed),
            "{id}"
        );
    }
    assert_eq!(
        finals[0].1,
        CategoryCounts {
            in_process: 5,
            failed: 5,
            unopened: 5,
            bounced: 5,
            opened: 5,
            unsubscribed: 10,
            registered: 5,
            ..CategoryCounts::default()
        }
    );
}

pub async fn a_permanent_bounce_or_a_complaint_suppresses_the_address_once(store: &dyn Store) {
    let tenant = t("fct-suppress");
    seed(store, &tenant, 4).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    claim_all(store, &tenant, &c, &["c000", "c001", "c002", "c003"], NOW).await;
    let bounce = InvitationFact::Bounced {
        permanent: true,
        reason: "Permanent/General".into(),
    };
    let undetermined = InvitationFact::Bounced {
        permanent: false,
        reason: "Undetermined".into(),
    };
    let results = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c000"), bounce.clone()),
                (cid("c001"), InvitationFact::Complained),
                (cid("c002"), InvitationFact::Delayed),
                (cid("c003"), undetermined),
            ],
        )
        .await
        .unwrap();
    let suppress: Vec<Option<Suppression>> = results
        .iter()
        .map(|r| match r {
            FactResult::Changed(t) => t.suppress,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        suppress,
        [
            Some(Suppression::Bounced),
            Some(Suppression::Complained),
            None,
            None
        ]
    );
    for (contact, suppressed) in [
        ("c000", true),
        ("c001", true),
        ("c002", false),
        ("c003", false),
    ] {
        assert_eq!(
            store
                .is_suppressed(&tenant, &email(&format!("{contact}@example.com")))
                .await
                .unwrap(),
            suppressed,
            "{contact}"
        );
    }
    assert!(!store
        .is_suppressed(&t("fct-suppress-other"), &email("c000@example.com"))
        .await
        .unwrap());
    let before = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            before.categories.bounced,
            before.categories.unsubscribed,
            before.categories.in_process
        ),
        (2, 1, 1)
    );

    // SNS delivers at least once: the same events again write nothing.
    let again = store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c000"), bounce),
                (cid("c001"), InvitationFact::Complained),
            ],
        )
        .await
        .unwrap();
    assert_eq!(again, [FactResult::Unchanged, FactResult::Unchanged]);
    let after = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, before);
    let inv = store
        .get_invitation(&tenant, &c.campaign_id, &cid("c000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        inv.state,
        InvitationState {
            category: InvitationCategory::Bounced,
            send: SendState::Sent,
            reason: Some("Permanent/General".into()),
            suppressed: true,
        }
    );
}

pub async fn campaigns_list_newest_first_under_each_of_their_divisions(store: &dyn Store) {
    let tenant = t("cmp-list");
    seed(store, &tenant, 0).await;
    put_div(store, &tenant, "d3").await;
    // Oldest first: four in d1 (one of them also in d2), one in d2 alone.
    let mut made = Vec::new();
    for (i, divisions) in [
        &["d1"][..],
        &["d1", "d2"][..],
        &["d2"][..],
        &["d1"][..],
        &["d1"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let at = NOW + Duration::minutes(i as i64);
        let c = campaign(Trigger::Individual, divisions, at);
        assert_eq!(create(store, &tenant, &c, at).await, CreateOutcome::Created);
        made.push(c);
    }
    let list = |division: &'static str, limit: u32| {
        let tenant = tenant.clone();
        async move {
            let mut ids = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .list_campaigns(&tenant, &div(division), cursor.as_deref(), limit)
                    .await
                    .unwrap();
                assert!(page.items.len() <= limit as usize);
                ids.extend(page.items.into_iter().map(|c| c.campaign_id));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break ids;
                }
            }
        }
    };
    let id = |i: usize| made[i].campaign_id.clone();
    assert_eq!(list("d1", 2).await, [id(4), id(3), id(1), id(0)]);
    assert_eq!(list("d1", 100).await, [id(4), id(3), id(1), id(0)]);
    assert_eq!(list("d2", 1).await, [id(2), id(1)]);
    assert!(list("d3", 10).await.is_empty());
    // The listed campaign is the whole campaign, counters included.
    let first = store
        .list_campaigns(&tenant, &div("d2"), None, 1)
        .await
        .unwrap();
    assert_eq!(first.items, [made[2].clone()]);
    assert!(first.next_cursor.is_some());
    assert!(store
        .list_campaigns(&tenant, &div("d1"), Some("forged"), 2)
        .await
        .is_err());
    // Another tenant with the same division ids sees nothing of them.
    let other = t("cmp-list-other");
    seed(store, &other, 0).await;
    assert!(store
        .list_campaigns(&other, &div("d1"), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

pub async fn invitations_filter_by_category_and_search_and_page(store: &dyn Store) {
    let tenant = t("inv-filter");
    seed(store, &tenant, 9).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let ids: Vec<String> = (0..9).map(|i| format!("c{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    // c000..c008: names "Contact c00N", account numbers "ACC-c00".
    let mut claims: Vec<Claim> = ids.iter().map(|id| claim(&c, id, NOW)).collect();
    claims[7].invitation.account_number = "X-77".into();
    claims[8].invitation.contact_name = "Zoë Ångström".into();
    store
        .claim_contacts(&tenant, &c.campaign_id, &claims, NOW)
        .await
        .unwrap();
    let delivered: Vec<(ContactId, InvitationFact)> = ["c001", "c003", "c004", "c007", "c008"]
        .iter()
        .map(|id| (cid(id), InvitationFact::Delivered))
        .collect();
    store
        .apply_facts(&tenant, &c.campaign_id, &delivered)
        .await
        .unwrap();
    store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[(cid("c004"), InvitationFact::Opened)],
        )
        .await
        .unwrap();

    // Every budget of items examined per page lists the same invitations; a small one
    // only takes more pages (some empty, each with a cursor).
    for budget in [None, Some(1), Some(3), Some(9)] {
        let list = |category: Option<InvitationCategory>, search: &'static str, limit: u32| {
            let (tenant, campaign) = (tenant.clone(), c.campaign_id.clone());
            let filter = InvitationFilter {
                category,
                search: search.into(),
                max_examined: budget,
            };
            async move {
                let mut seen = Vec::new();
                let mut pages = 0usize;
                let mut cursor: Option<String> = None;
                loop {
                    let page = store
                        .list_invitations(&tenant, &campaign, &filter, cursor.as_deref(), limit)
                        .await
                        .unwrap();
                    pages += 1;
                    assert!(page.items.len() <= limit as usize);
                    if let Some(n) = budget {
                        assert!(
                            page.items.len() <= n as usize,
                            "{budget:?}: over the budget"
                        );
                    }
                    for inv in &page.items {
                        assert!(filter.matches(inv), "{inv:?} does not pass {filter:?}");
                    }
                    seen.extend(page.items.into_iter().map(|i| i.contact_id.to_string()));
                    cursor = page.next_cursor;
                    if cursor.is_none() {
                        break (seen, pages);
                    }
                    assert!(pages <= 20, "{budget:?}: the cursors do not end");
                }
            }
        };
        let unopened = Some(InvitationCategory::Unopened);
        assert_eq!(
            list(unopened, "", 2).await.0,
            ["c001", "c003", "c007", "c008"]
        );
        let (opened, pages) = list(Some(InvitationCategory::Opened), "", 2).await;
        assert_eq!(opened, ["c004"]);
        if let Some(n) = budget {
            // Nine invitations, n at most examined per page.
            assert!(
                pages >= 9usize.div_ceil(n as usize),
                "{budget:?}: {pages} pages"
            );
        } else {
            assert_eq!(pages, 1);
        }
        assert!(list(Some(InvitationCategory::Registered), "", 2)
            .await
            .0
            .is_empty());
        assert_eq!(list(None, "", 4).await.0.len(), 9);
        // Search: email, name and account number, lowercased.
        assert_eq!(list(None, "c003@example", 2).await.0, ["c003"]);
        assert_eq!(list(None, "x-77", 2).await.0, ["c007"]);
        assert_eq!(list(None, "zoë ång", 2).await.0, ["c008"]);
        assert_eq!(list(None, "contact c00", 3).await.0.len(), 8);
        assert_eq!(
            list(unopened, "contact", 3).await.0,
            ["c001", "c003", "c007"]
        );
        assert!(list(None, "nobody", 2).await.0.is_empty());
    }
    // A search that matches nothing, with the API's budget, answers at once.
    let nothing = store
        .list_invitations(
            &tenant,
            &c.campaign_id,
            &InvitationFilter {
                category: None,
                search: "nobody".into(),
                max_examined: Some(2),
            },
            None,
            50,
        )
        .await
        .unwrap();
    assert!(nothing.items.is_empty());
    assert!(
        nothing.next_cursor.is_some(),
        "seven invitations are left to examine"
    );
}

pub async fn a_recount_agrees_with_the_counters_and_fix_stores_it(store: &dyn Store) {
    let tenant = t("cmp-recount");
    seed(store, &tenant, 6).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let fresh = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!fresh.drifted());
    assert_eq!(
        fresh.counted,
        (CategoryCounts::default(), SendCounts::default())
    );

    claim_all(store, &tenant, &c, &["c000", "c001", "c002", "c003"], NOW).await;
    store
        .apply_facts(
            &tenant,
            &c.campaign_id,
            &[
                (cid("c000"), InvitationFact::Delivered),
                (cid("c001"), InvitationFact::Registered),
                (
                    cid("c002"),
                    InvitationFact::SendFailed {
                        reason: "throttled".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let expected = (
        CategoryCounts {
            in_process: 1,
            failed: 1,
            unopened: 1,
            registered: 1,
            ..CategoryCounts::default()
        },
        SendCounts {
            pending: 1,
            sent: 2,
            failed: 1,
        },
    );
    let checked = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!checked.drifted());
    assert!(!checked.fixed);
    assert_eq!((checked.stored, checked.counted), (expected, expected));

    let fixed = store
        .recount_campaign(&tenant, &c.campaign_id, true)
        .await
        .unwrap()
        .unwrap();
    assert!(fixed.fixed);
    assert!(!fixed.drifted());
    assert_eq!(fixed.counted, expected);
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.categories, got.sends), expected);
    assert_eq!(got.categories.success_rate(), Some(1.0 / 3.0));

    // No campaign, or another tenant's: nothing to recount.
    let missing = CampaignId::generate(NOW);
    assert_eq!(
        store
            .recount_campaign(&tenant, &missing, true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .recount_campaign(&t("cmp-recount-other"), &c.campaign_id, true)
            .await
            .unwrap(),
        None
    );
}

pub async fn facts_for_a_missing_invitation_or_another_tenant_change_nothing(store: &dyn Store) {
    let (mine, theirs) = (t("fct-mine"), t("fct-theirs"));
    seed(store, &mine, 2).await;
    seed(store, &theirs, 2).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &mine, &c, NOW).await;
    claim_all(store, &mine, &c, &["c000"], NOW).await;
    let before = store
        .get_campaign(&mine, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();

    // Not claimed (c001), unknown contact, unknown campaign.
    assert_eq!(
        store
            .apply_facts(
                &mine,
                &c.campaign_id,
                &[
                    (cid("c001"), InvitationFact::Delivered),
                    (cid("ghost"), InvitationFact::Complained),
                ]
            )
            .await
            .unwrap(),
        [FactResult::Missing, FactResult::Missing]
    );
    assert_eq!(
        store
            .apply_facts(
                &mine,
                &CampaignId::generate(NOW),
                &[(cid("c000"), InvitationFact::Delivered)]
            )
            .await
            .unwrap(),
        [FactResult::Missing]
    );
    // Their facts under my campaign id reach none of my invitations, and suppress nothing.
    let bounce = InvitationFact::Bounced {
        permanent: true,
        reason: "Permanent/General".into(),
    };
    assert_eq!(
        store
            .apply_facts(&theirs, &c.campaign_id, &[(cid("c000"), bounce)])
            .await
            .unwrap(),
        [FactResult::Missing]
    );
    assert_eq!(
        store.get_campaign(&mine, &c.campaign_id).await.unwrap(),
        Some(before)
    );
    assert_eq!(
        store
            .get_invitation(&mine, &c.campaign_id, &cid("c000"))
            .await
            .unwrap()
            .map(|i| i.state),
        Some(InvitationState::new())
    );
    for tenant in [&mine, &theirs] {
        assert!(!store
            .is_suppressed(tenant, &email("c000@example.com"))
            .await
            .unwrap());
    }
    assert!(store
        .apply_facts(&mine, &c.campaign_id, &[])
        .await
        .unwrap()
        .is_empty());
}

pub async fn concurrent_fact_calls_lose_no_update(store: &dyn Store) {
    const N: usize = 10;
    let tenant = t("fct-race");
    seed(store, &tenant, N).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    create(store, &tenant, &c, NOW).await;
    let ids: Vec<String> = (0..N).map(|i| format!("c{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    claim_all(store, &tenant, &c, &ids, NOW).await;
    // One caller records the sends, the other opens and (for half) registrations: every
    // invitation gets facts from both at once.
    let sends: Vec<(ContactId, InvitationFact)> = ids
        .iter()
        .map(|id| (cid(id), InvitationFact::Sent))
        .collect();
    let events: Vec<(ContactId, InvitationFact)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let f = if i % 2 == 0 {
                InvitationFact::Registered
            } else {
                InvitationFact::Opened
            };
            (cid(id), f)
        })
        .collect();
    let (a, b) = tokio::join!(
        store.apply_facts(&tenant, &c.campaign_id, &sends),
        store.apply_facts(&tenant, &c.campaign_id, &events),
    );
    a.unwrap();
    b.unwrap();
    let got = store
        .get_campaign(&tenant, &c.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.categories,
        CategoryCounts {
            opened: 5,
            registered: 5,
            ..CategoryCounts::default()
        }
    );
    assert_eq!(
        got.sends,
        SendCounts {
            sent: N as u64,
            ..SendCounts::default()
        }
    );
    let recount = store
        .recount_campaign(&tenant, &c.campaign_id, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!recount.drifted(), "{recount:?}");
}

// ---------------------------------------------------------------------------------------
// One invitation per address, and delivery leases (issue 13).

/// A claim of `contact` for `c` with the address `address` (any case).
fn claim_at(c: &Campaign, contact: &str, address: &str, at: OffsetDateTime) -> Claim {
    let mut claim = claim(c, contact, at);
    claim.invitation.email = email(address);
    claim
}

pub async fn an_address_is_claimed_once_per_24_hours_whichever_contact_carries_it(
    store: &dyn Store,
) {
    let tenant = t("addr");
    seed(store, &tenant, 6).await;
    let a = campaign(Trigger::Individual, &["d1"], NOW);
    let b = campaign(Trigger::Individual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &a, NOW).await,
        CreateOutcome::Created
    );
    assert_eq!(
        create(store, &tenant, &b, NOW).await,
        CreateOutcome::Created
    );
    let claims = |c: &Campaign, at| {
        vec![
            claim_at(c, "c000", "Pat@Example.org", at),
            // Same person, another contact, another spelling, in the same call.
            claim_at(c, "c001", "pat@example.ORG", at),
            claim_at(c, "c002", "lee@example.org", at),
        ]
    };
    let got = store
        .claim_contacts(&tenant, &a.campaign_id, &claims(&a, NOW), NOW)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            ClaimResult::Claimed,
            ClaimResult::DuplicateAddress { until: NOW + DAY },
            ClaimResult::Claimed,
        ]
    );
    // The refused contact was not touched: no invitation, not counted, not pending.
    let ids: Vec<String> = store
        .list_invitations(&tenant, &a.campaign_id, &all(), None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.contact_id.to_string())
        .collect();
    assert_eq!(ids, ["c000", "c002"]);
    let got_a = store
        .get_campaign(&tenant, &a.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got_a.targeted, 2);
    let c001 = store
        .get_contact(&tenant, &cid("c001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c001.last_invited_at, None);

    // A replay of the same call answers the same, and claims nothing new.
    let again = store
        .claim_contacts(&tenant, &a.campaign_id, &claims(&a, NOW), NOW)
        .await
        .unwrap();
    assert_eq!(again[0], ClaimResult::AlreadyClaimedByThisCampaign);
    assert_eq!(again[1], ClaimResult::DuplicateAddress { until: NOW + DAY });

    // Another campaign, another contact with the address: held until 24 hours have passed.
    let later = NOW + DAY - ONE_SECOND;
    let other = vec![claim_at(&b, "c003", "PAT@EXAMPLE.ORG", later)];
    assert_eq!(
        store
            .claim_contacts(&tenant, &b.campaign_id, &other, later)
            .await
            .unwrap(),
        vec![ClaimResult::DuplicateAddress { until: NOW + DAY }]
    );
    let free = NOW + DAY;
    let other = vec![claim_at(&b, "c003", "PAT@EXAMPLE.ORG", free)];
    assert_eq!(
        store
            .claim_contacts(&tenant, &b.campaign_id, &other, free)
            .await
            .unwrap(),
        vec![ClaimResult::Claimed]
    );

    // Recording an invitation by other means (the demo, imports) holds the address too.
    store
        .record_invited(&tenant, &cid("c004"), free)
        .await
        .unwrap();
    let c004_address = store
        .get_contact(&tenant, &cid("c004"))
        .await
        .unwrap()
        .unwrap()
        .email
        .unwrap();
    let upper = c004_address.as_str().to_ascii_uppercase();
    assert_eq!(
        store
            .claim_contacts(
                &tenant,
                &b.campaign_id,
                &[claim_at(&b, "c005", &upper, free)],
                free
            )
            .await
            .unwrap(),
        vec![ClaimResult::DuplicateAddress { until: free + DAY }]
    );

    // Another tenant's contact with the same address is its own person.
    let elsewhere = t("addr-other");
    seed(store, &elsewhere, 2).await;
    let c = campaign(Trigger::Individual, &["d1"], NOW);
    assert_eq!(
        create(store, &elsewhere, &c, NOW).await,
        CreateOutcome::Created
    );
    assert_eq!(
        store
            .claim_contacts(
                &elsewhere,
                &c.campaign_id,
                &[claim_at(&c, "c000", "pat@example.org", NOW)],
                NOW
            )
            .await
            .unwrap(),
        vec![ClaimResult::Claimed]
    );
}

pub async fn a_delivery_lease_is_held_by_one_owner_until_it_runs_out_or_is_done(store: &dyn Store) {
    let tenant = t("lease");
    seed(store, &tenant, 2).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    let id = &c.campaign_id;
    let until = NOW + Duration::minutes(5);
    let lease = |owner: &'static str, at: OffsetDateTime| {
        let id = id.clone();
        let tenant = tenant.clone();
        async move {
            store
                .lease_batch(
                    &tenant,
                    &id,
                    "b1",
                    owner,
                    at,
                    at + Duration::minutes(5),
                    None,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(
        lease("one", NOW).await,
        LeaseOutcome::Acquired {
            resumed: false,
            attempt: None
        }
    );
    assert_eq!(lease("two", NOW).await, LeaseOutcome::Busy { until });
    // Only the owner moves it on.
    let attempt = Attempt {
        contacts: vec![cid("c000"), cid("c001")],
        at: NOW + Duration::seconds(10),
    };
    let step = LeaseStep::Attempting {
        attempt: attempt.clone(),
        until: NOW + Duration::minutes(6),
    };
    assert!(!store
        .step_batch(&tenant, id, "b1", "two", &step)
        .await
        .unwrap());
    assert!(store
        .step_batch(&tenant, id, "b1", "one", &step)
        .await
        .unwrap());
    assert_eq!(
        lease("two", NOW + Duration::minutes(6) - ONE_SECOND).await,
        LeaseOutcome::Busy {
            until: NOW + Duration::minutes(6)
        }
    );
    // Run out: the next owner resumes with the attempt the first one recorded.
    assert_eq!(
        lease("two", NOW + Duration::minutes(6)).await,
        LeaseOutcome::Acquired {
            resumed: true,
            attempt: Some(attempt.clone())
        }
    );
    assert!(!store
        .step_batch(&tenant, id, "b1", "one", &LeaseStep::Done)
        .await
        .unwrap());
    // Released: free at once, the attempt kept for the next holder.
    assert!(store
        .step_batch(&tenant, id, "b1", "two", &LeaseStep::Release)
        .await
        .unwrap());
    assert_eq!(
        lease("three", NOW + Duration::minutes(7)).await,
        LeaseOutcome::Acquired {
            resumed: true,
            attempt: Some(attempt)
        }
    );
    // The outcomes and the step in one call; then done for good.
    let written = store
        .record_batch_outcomes(&tenant, id, &[], "b1", "three", &LeaseStep::Done)
        .await
        .unwrap();
    assert!(written.results.is_empty());
    assert!(written.kept);
    assert_eq!(written.drained, None, "nothing changed: unknown");
    assert_eq!(lease("four", NOW + DAY).await, LeaseOutcome::Done);
    // Batches, campaigns and tenants are separate leases. A first lease may record its first
    // group in the same write; a later holder keeps a recorded attempt until it steps.
    let first = Attempt {
        contacts: vec![cid("c001")],
        at: NOW,
    };
    assert!(matches!(
        store
            .lease_batch(&tenant, id, "b2", "four", NOW, until, Some(&first))
            .await
            .unwrap(),
        LeaseOutcome::Acquired { resumed: false, .. }
    ));
    let other = Attempt {
        contacts: vec![cid("c000")],
        at: until,
    };
    assert_eq!(
        store
            .lease_batch(&tenant, id, "b2", "five", until, until + DAY, Some(&other))
            .await
            .unwrap(),
        LeaseOutcome::Acquired {
            resumed: true,
            attempt: Some(first.clone())
        }
    );
    assert_eq!(
        store
            .lease_batch(&tenant, id, "b2", "six", until + DAY, until + DAY * 2, None)
            .await
            .unwrap(),
        LeaseOutcome::Acquired {
            resumed: true,
            attempt: Some(first)
        }
    );
    // The same campaign id and batch in another tenant is another lease.
    let other_tenant = t("lease-other");
    seed(store, &other_tenant, 1).await;
    assert_eq!(
        create(store, &other_tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    assert!(matches!(
        store
            .lease_batch(&other_tenant, id, "b1", "four", NOW, until, None)
            .await
            .unwrap(),
        LeaseOutcome::Acquired { resumed: false, .. }
    ));
}

pub async fn outcomes_written_with_a_lost_lease_are_kept_and_say_so(store: &dyn Store) {
    let tenant = t("lease-lost");
    seed(store, &tenant, 3).await;
    let c = campaign(Trigger::Individual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    claim_all(store, &tenant, &c, &["c000", "c001"], NOW).await;
    let id = &c.campaign_id;
    let until = NOW + Duration::minutes(5);
    store
        .lease_batch(&tenant, id, "b", "old", NOW, until, None)
        .await
        .unwrap();
    store
        .lease_batch(
            &tenant,
            id,
            "b",
            "new",
            until,
            until + Duration::minutes(5),
            None,
        )
        .await
        .unwrap();
    let written = store
        .record_batch_outcomes(
            &tenant,
            id,
            &[(cid("c000"), InvitationFact::Sent)],
            "b",
            "old",
            &LeaseStep::Done,
        )
        .await
        .unwrap();
    assert!(!written.kept, "the lease is the new owner's");
    assert!(matches!(written.results[..], [FactResult::Changed(_)]));
    assert_eq!(written.drained, Some(false), "c001 is still pending");
    let got = store.get_campaign(&tenant, id).await.unwrap().unwrap();
    assert_eq!((got.sends.sent, got.sends.pending), (1, 1));
    // The new owner's lease was not touched: not done.
    assert!(matches!(
        store
            .lease_batch(
                &tenant,
                id,
                "b",
                "new",
                until,
                until + Duration::minutes(5),
                None
            )
            .await
            .unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
}

pub async fn a_paused_failed_or_missing_campaign_leases_no_batch(store: &dyn Store) {
    let tenant = t("lease-stop");
    seed(store, &tenant, 2).await;
    let c = campaign(Trigger::Manual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    let id = &c.campaign_id;
    let lease = |batch: &'static str, owner: &'static str, at: OffsetDateTime| {
        let id = id.clone();
        let tenant = tenant.clone();
        async move {
            store
                .lease_batch(
                    &tenant,
                    &id,
                    batch,
                    owner,
                    at,
                    at + Duration::minutes(5),
                    None,
                )
                .await
                .unwrap()
        }
    };
    // Leased once while the campaign runs; its holder dies.
    assert!(matches!(
        lease("b1", "one", NOW).await,
        LeaseOutcome::Acquired { resumed: false, .. }
    ));
    let set = |from: CampaignStatus, to: CampaignStatus| {
        let id = id.clone();
        let tenant = tenant.clone();
        async move {
            assert!(store
                .update_campaign_status(&tenant, &id, from, to, Some("stop".into()))
                .await
                .unwrap());
        }
    };
    set(CampaignStatus::Queued, CampaignStatus::Paused).await;
    // Neither a new batch nor the dead holder's, even once its lease ran out.
    assert_eq!(lease("b2", "two", NOW).await, LeaseOutcome::Stopped);
    let later = NOW + Duration::minutes(10);
    assert_eq!(lease("b1", "two", later).await, LeaseOutcome::Stopped);
    // Resumed: both lease again, the old one as a resume.
    set(CampaignStatus::Paused, CampaignStatus::Queued).await;
    assert!(matches!(
        lease("b2", "two", later).await,
        LeaseOutcome::Acquired { resumed: false, .. }
    ));
    assert!(matches!(
        lease("b1", "two", later).await,
        LeaseOutcome::Acquired { resumed: true, .. }
    ));
    set(CampaignStatus::Queued, CampaignStatus::Failed).await;
    assert_eq!(lease("b3", "three", later).await, LeaseOutcome::Stopped);
    // A campaign that does not exist (or is another tenant's) leases nothing.
    let other = campaign(Trigger::Manual, &["d1"], NOW + Duration::seconds(1));
    assert_eq!(
        store
            .lease_batch(&tenant, &other.campaign_id, "b1", "x", NOW, later, None)
            .await
            .unwrap(),
        LeaseOutcome::Stopped
    );
    let stranger = t("lease-stop-other");
    assert_eq!(
        store
            .lease_batch(&stranger, id, "b4", "x", NOW, later, None)
            .await
            .unwrap(),
        LeaseOutcome::Stopped
    );
}

pub async fn a_batch_last_write_says_whether_it_left_the_campaign_nothing_pending(
    store: &dyn Store,
) {
    let tenant = t("drained");
    seed(store, &tenant, 4).await;
    let c = campaign(Trigger::Individual, &["d1"], NOW);
    assert_eq!(
        create(store, &tenant, &c, NOW).await,
        CreateOutcome::Created
    );
    claim_all(store, &tenant, &c, &["c000", "c001", "c002"], NOW).await;
    let id = &c.campaign_id;
    let until = NOW + Duration::minutes(5);
    for b in ["b1", "b2"] {
        store
            .lease_batch(&tenant, id, b, "me", NOW, until, None)
            .await
            .unwrap();
    }
    let write = |batch: &'static str, contacts: &'static [&'static str], step: LeaseStep| {
        let tenant = tenant.clone();
        let id = id.clone();
        async move {
            let outcomes: Vec<_> = contacts
                .iter()
                .map(|c| (cid(c), InvitationFact::Sent))
                .collect();
            store
                .record_batch_outcomes(&tenant, &id, &outcomes, batch, "me", &step)
                .await
                .unwrap()
        }
    };
    // A group that is not a batch's last says nothing; a batch's last write with others
    // pending says so.
    let mid = LeaseStep::Attempting {
        attempt: Attempt {
            contacts: vec![cid("c001")],
            at: NOW,
        },
        until,
    };
    assert_eq!(write("b1", &["c000"], mid).await.drained, None);
    assert_eq!(
        write("b1", &["c001"], LeaseStep::Done).await.drained,
        Some(false)
    );
    // While the fan-out runs, resolving the last pending invitation completes nothing yet.
    let fanning = write("b2", &["c002"], LeaseStep::Done).await;
    assert_eq!(fanning.drained, Some(false));
    // Once it is over (`sending`), the write that resolves the last one drains the campaign.
    for (from, to) in [
        (CampaignStatus::Queued, CampaignStatus::FanningOut),
        (CampaignStatus::FanningOut, CampaignStatus::Sending),
    ] {
        assert!(store
            .update_campaign_status(&tenant, id, from, to, None)
            .await
            .unwrap());
    }
    claim_all(store, &tenant, &c, &["c003"], NOW).await;
    store
        .lease_batch(&tenant, id, "b4", "me", NOW, until, None)
        .await
        .unwrap();
    let last = write("b4", &["c003"], LeaseStep::Done).await;
    assert!(matches!(last.results[..], [FactResult::Changed(_)]));
    assert!(last.kept);
    assert_eq!(last.drained, Some(true));
    let got = store.get_campaign(&tenant, id).await.unwrap().unwrap();
    assert_eq!((got.sends.sent, got.sends.pending), (4, 0));
    // Written again (a duplicate): nothing changed, nothing known.
    store
        .lease_batch(&tenant, id, "b3", "me", NOW, until, None)
        .await
        .unwrap();
    assert_eq!(write("b3", &["c003"], LeaseStep::Done).await.drained, None);
}
