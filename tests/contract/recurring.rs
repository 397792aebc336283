//! Contract cases for recurring invitations: settings, the run of a day recorded exactly once
//! (under concurrent starts), run history, and what the store keeps for the runs to decide —
//! when a division was first synced, how many invitations each contact has had, and a
//! campaign's recurring run. Each case builds its own tenants.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::ids::{cid, div, t};
use portal_core::domain::{
    Account, Campaign, CampaignId, DivisionInput, Email, Filters, Group, Invitation,
    InvitationState, RecurringId, RecurringRun, RecurringSetting, RegistrationToken, ReminderRule,
    Scope, TemplateId, TenantId, TimeZoneName, Trigger,
};
use portal_core::ports::{
    Claim, ClaimResult, ContactQuery, CreateOutcome, ListQuery, RunRecord, StartRun, Store,
    StoreError,
};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// "Now" for every case: whole seconds, as every store keeps them.
const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
const DAY: Duration = Duration::hours(24);

fn rid(s: &str) -> RecurringId {
    RecurringId::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Polls every future until all are done, on the calling task (the futures borrow the store,
/// so they cannot be spawned): their store calls are in flight together.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// An enabled setting for every division, daily at 09:00 in Chicago, created at [`NOW`].
fn setting(id: &str) -> RecurringSetting {
    RecurringSetting {
        setting_id: rid(id),
        enabled: true,
        scope: Scope::All,
        filters: Filters::default(),
        template_id: TemplateId::parse("welcome").unwrap(),
        email_from: None,
        rule: ReminderRule {
            cadence_days: 7,
            max_invitations_per_contact: 3,
        },
        hour_of_day: 9,
        time_zone: TimeZoneName::parse("America/Chicago").unwrap(),
        created_at: NOW,
        updated_at: NOW,
    }
}

fn ids(settings: &[RecurringSetting]) -> Vec<&str> {
    settings.iter().map(|s| s.setting_id.as_str()).collect()
}

async fn put_div(store: &dyn Store, tenant: &TenantId, id: &str) {
    let d =
        DivisionInput::new(div(id), format!("Division {id}"), email("hoa@example.org")).unwrap();
    store.put_division(tenant, &d).await.unwrap();
}

fn run(setting: &str, date: &str, started_at: OffsetDateTime) -> RunRecord {
    RunRecord {
        setting_id: rid(setting),
        local_date: date.into(),
        started_at,
        campaign_id: None,
        finished: false,
    }
}

async fn start(store: &dyn Store, tenant: &TenantId, setting: &str, date: &str) -> StartRun {
    store
        .start_run(tenant, &rid(setting), date, NOW)
        .await
        .unwrap()
}

// --- Settings ---------------------------------------------------------------------------

pub async fn settings_round_trip_with_every_field(store: &dyn Store) {
    let tenant = t("rec-rt");
    let all = setting("all");
    let new_only = RecurringSetting {
        enabled: false,
        scope: Scope::NewDivisionsOnly,
        filters: Filters {
            account_class: vec!["Residential".into(), "Multi-Family".into()],
            bill_group: vec!["A".into()],
            account_source: vec!["Web".into()],
            site_source: vec!["North".into()],
            active_services: true,
            balance_due: true,
            billing_contacts_only: true,
            without_autopay: true,
        },
        email_from: Some(email("Board@Example.org")),
        rule: ReminderRule {
            cadence_days: 365,
            max_invitations_per_contact: 50,
        },
        hour_of_day: 23,
        time_zone: TimeZoneName::parse("Pacific/Auckland").unwrap(),
        created_at: NOW - Duration::days(30),
        updated_at: NOW + Duration::seconds(1),
        ..setting("new-only")
    };
    let chosen = RecurringSetting {
        scope: Scope::Divisions(vec![div("d1"), div("d2"), div("d3")]),
        template_id: TemplateId::parse("reminder").unwrap(),
        rule: ReminderRule {
            cadence_days: 1,
            max_invitations_per_contact: 1,
        },
        hour_of_day: 0,
        time_zone: TimeZoneName::parse("UTC").unwrap(),
        ..setting("chosen")
    };
    for s in [&all, &new_only, &chosen] {
        store.put_setting(&tenant, s).await.unwrap();
    }
    for s in [&all, &new_only, &chosen] {
        let got = store
            .get_setting(&tenant, &s.setting_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} was saved", s.setting_id));
        assert_eq!(&got, s);
        assert_eq!(got.time_zone.as_str(), s.time_zone.as_str());
    }
    assert_eq!(
        store.get_setting(&tenant, &rid("other")).await.unwrap(),
        None
    );
}

pub async fn saving_a_setting_again_replaces_it_with_what_the_caller_sets(store: &dyn Store) {
    let tenant = t("rec-replace");
    let first = RecurringSetting {
        scope: Scope::Divisions(vec![div("d1")]),
        email_from: Some(email("hoa@example.org")),
        filters: Filters {
            bill_group: vec!["B".into()],
            ..Filters::default()
        },
        ..setting("weekly")
    };
    store.put_setting(&tenant, &first).await.unwrap();
    let second = RecurringSetting {
        enabled: false,
        scope: Scope::All,
        email_from: None,
        filters: Filters::default(),
        rule: ReminderRule {
            cadence_days: 14,
            max_invitations_per_contact: 5,
        },
        hour_of_day: 17,
        time_zone: TimeZoneName::parse("Europe/Paris").unwrap(),
        created_at: first.created_at,
        updated_at: NOW + DAY,
        ..first.clone()
    };
    store.put_setting(&tenant, &second).await.unwrap();
    assert_eq!(
        store.get_setting(&tenant, &rid("weekly")).await.unwrap(),
        Some(second.clone()),
        "nothing of the first save is left over (division list, sender, filters)"
    );
    // The caller decides `created_at`: the store keeps what it is given.
    let third = RecurringSetting {
        created_at: NOW + DAY,
        ..second
    };
    store.put_setting(&tenant, &third).await.unwrap();
    assert_eq!(
        store.get_setting(&tenant, &rid("weekly")).await.unwrap(),
        Some(third)
    );
    assert_eq!(
        ids(&store.list_settings(&tenant).await.unwrap()),
        ["weekly"]
    );
}

pub async fn settings_list_in_id_order_and_nothing_else(store: &dyn Store) {
    let tenant = t("rec-list");
    assert_eq!(store.list_settings(&tenant).await.unwrap(), []);
    // Divisions share a tenant's key space on some stores: they are not settings.
    put_div(store, &tenant, "d1").await;
    for id in ["b", "a-1", "c", "a", "a0"] {
        store.put_setting(&tenant, &setting(id)).await.unwrap();
    }
    let listed = store.list_settings(&tenant).await.unwrap();
    assert_eq!(ids(&listed), ["a", "a-1", "a0", "b", "c"]);
    assert_eq!(listed[0], setting("a"));
    assert_eq!(store.list_divisions(&tenant).await.unwrap().len(), 1);
}

pub async fn deleting_a_setting_reports_whether_it_existed_and_keeps_its_runs(store: &dyn Store) {
    let tenant = t("rec-del");
    store
        .put_setting(&tenant, &setting("weekly"))
        .await
        .unwrap();
    store.put_setting(&tenant, &setting("daily")).await.unwrap();
    assert_eq!(
        start(store, &tenant, "weekly", "2026-11-02").await,
        StartRun::Started
    );

    assert!(store.delete_setting(&tenant, &rid("weekly")).await.unwrap());
    assert!(!store.delete_setting(&tenant, &rid("weekly")).await.unwrap());
    assert!(!store.delete_setting(&tenant, &rid("never")).await.unwrap());
    assert_eq!(
        store.get_setting(&tenant, &rid("weekly")).await.unwrap(),
        None
    );
    assert_eq!(ids(&store.list_settings(&tenant).await.unwrap()), ["daily"]);
    assert!(store
        .enabled_settings()
        .await
        .unwrap()
        .iter()
        .all(|(tn, s)| { !(tn == &tenant && s.setting_id == rid("weekly")) }));

    let history = store
        .list_runs(&tenant, &rid("weekly"), None, 10)
        .await
        .unwrap();
    assert_eq!(history.items, [run("weekly", "2026-11-02", NOW)]);
}

pub async fn settings_and_runs_never_cross_tenants(store: &dyn Store) {
    let (alice, bob) = (t("rec-alice"), t("rec-bob"));
    let mine = RecurringSetting {
        email_from: Some(email("alice@example.org")),
        ..setting("weekly")
    };
    store.put_setting(&alice, &mine).await.unwrap();
    assert_eq!(store.get_setting(&bob, &rid("weekly")).await.unwrap(), None);
    assert_eq!(store.list_settings(&bob).await.unwrap(), []);
    assert!(!store.delete_setting(&bob, &rid("weekly")).await.unwrap());

    // Bob's setting of the same id is his own.
    let his = RecurringSetting {
        enabled: false,
        ..setting("weekly")
    };
    store.put_setting(&bob, &his).await.unwrap();
    assert_eq!(
        store.get_setting(&alice, &rid("weekly")).await.unwrap(),
        Some(mine.clone())
    );
    assert_eq!(
        store.get_setting(&bob, &rid("weekly")).await.unwrap(),
        Some(his)
    );

    // The same (setting, day) runs once per tenant.
    assert_eq!(
        start(store, &alice, "weekly", "2026-11-02").await,
        StartRun::Started
    );
    assert_eq!(
        start(store, &bob, "weekly", "2026-11-02").await,
        StartRun::Started
    );
    let mut done = run("weekly", "2026-11-02", NOW);
    done.finished = true;
    done.campaign_id = Some(CampaignId::generate(NOW));
    store.finish_run(&alice, &done).await.unwrap();
    let bobs = store
        .list_runs(&bob, &rid("weekly"), None, 10)
        .await
        .unwrap();
    assert_eq!(bobs.items, [run("weekly", "2026-11-02", NOW)]);
    assert_eq!(
        store
            .list_runs(&alice, &rid("weekly"), None, 10)
            .await
            .unwrap()
            .items,
        [done]
    );

    // A cursor made for Alice is refused, or pages only through Bob's own runs.
    for day in ["2026-11-03", "2026-11-04"] {
        start(store, &alice, "weekly", day).await;
    }
    let cursor = store
        .list_runs(&alice, &rid("weekly"), None, 1)
        .await
        .unwrap()
        .next_cursor
        .expect("alice has more runs");
    match store
        .list_runs(&bob, &rid("weekly"), Some(&cursor), 10)
        .await
    {
        Err(StoreError::InvalidCursor(_)) => {}
        Ok(page) => assert!(
            page.items
                .iter()
                .all(|r| r == &run("weekly", "2026-11-02", NOW)),
            "{page:?}"
        ),
        Err(e) => panic!("{e}"),
    }
}

pub async fn enabled_settings_are_the_enabled_ones_of_every_tenant(store: &dyn Store) {
    let (alice, bob) = (t("rec-en-alice"), t("rec-en-bob"));
    let off = RecurringSetting {
        enabled: false,
        ..setting("off")
    };
    store.put_setting(&alice, &setting("weekly")).await.unwrap();
    store.put_setting(&alice, &off).await.unwrap();
    let bobs = RecurringSetting {
        time_zone: TimeZoneName::parse("Europe/Paris").unwrap(),
        ..setting("daily")
    };
    store.put_setting(&bob, &bobs).await.unwrap();

    let ours = |all: Vec<(TenantId, RecurringSetting)>| -> BTreeSet<(String, String)> {
        all.into_iter()
            .filter(|(tn, _)| tn == &alice || tn == &bob)
            .map(|(tn, s)| (tn.to_string(), s.setting_id.to_string()))
            .collect()
    };
    let enabled = store.enabled_settings().await.unwrap();
    assert_eq!(
        ours(enabled.clone()),
        BTreeSet::from([
            ("rec-en-alice".to_owned(), "weekly".to_owned()),
            ("rec-en-bob".to_owned(), "daily".to_owned()),
        ])
    );
    let listed_bobs = enabled
        .iter()
        .find(|(tn, _)| tn == &bob)
        .map(|(_, s)| s.clone());
    assert_eq!(listed_bobs, Some(bobs), "whole settings are listed");

    // Switching one off and another on moves them out of and into the list.
    store
        .put_setting(
            &alice,
            &RecurringSetting {
                enabled: false,
                ..setting("weekly")
            },
        )
        .await
        .unwrap();
    store
        .put_setting(
            &alice,
            &RecurringSetting {
                enabled: true,
                ..off
            },
        )
        .await
        .unwrap();
    store.delete_setting(&bob, &rid("daily")).await.unwrap();
    assert_eq!(
        ours(store.enabled_settings().await.unwrap()),
        BTreeSet::from([("rec-en-alice".to_owned(), "off".to_owned())])
    );
}

// --- Runs -------------------------------------------------------------------------------

/// 20 starts of one day at once (the schedule firing twice, retries, two servers): exactly
/// one records the run, every other one reads that record.
pub async fn a_day_starts_once_under_twenty_concurrent_starts(store: &dyn Store) {
    let tenant = t("rec-race");
    let setting_id = rid("weekly");
    let outcomes: Vec<StartRun> = join_all(
        (0..20)
            .map(|n| {
                store.start_run(
                    &tenant,
                    &setting_id,
                    "2026-11-02",
                    NOW + Duration::seconds(n),
                )
            })
            .collect(),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();

    let winners: Vec<i64> = (0..20)
        .filter(|&n| outcomes[n as usize] == StartRun::Started)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let recorded = run("weekly", "2026-11-02", NOW + Duration::seconds(winners[0]));
    for (n, o) in outcomes.iter().enumerate() {
        if n as i64 != winners[0] {
            assert_eq!(o, &StartRun::Already(recorded.clone()), "start {n}");
        }
    }
    assert_eq!(
        store
            .list_runs(&tenant, &setting_id, None, 10)
            .await
            .unwrap()
            .items,
        std::slice::from_ref(&recorded)
    );

    // Later the same day: still the one record; the next day starts again.
    assert_eq!(
        store
            .start_run(&tenant, &setting_id, "2026-11-02", NOW + Duration::hours(5))
            .await
            .unwrap(),
        StartRun::Already(recorded)
    );
    assert_eq!(
        store
            .start_run(&tenant, &setting_id, "2026-11-03", NOW + DAY)
            .await
            .unwrap(),
        StartRun::Started
    );
    // Another setting's day is its own.
    assert_eq!(
        start(store, &tenant, "daily", "2026-11-02").await,
        StartRun::Started
    );
}

pub async fn finishing_a_run_stores_its_campaign_and_that_it_finished(store: &dyn Store) {
    let tenant = t("rec-finish");
    assert_eq!(
        start(store, &tenant, "weekly", "2026-11-02").await,
        StartRun::Started
    );
    let campaign = CampaignId::generate(NOW);
    let queued = RunRecord {
        campaign_id: Some(campaign.clone()),
        finished: true,
        ..run("weekly", "2026-11-02", NOW)
    };
    store.finish_run(&tenant, &queued).await.unwrap();
    assert_eq!(
        store
            .start_run(&tenant, &rid("weekly"), "2026-11-02", NOW + DAY)
            .await
            .unwrap(),
        StartRun::Already(queued.clone()),
        "a finished day is not run again"
    );

    // A day that found nobody finishes without a campaign.
    let next = NOW + DAY;
    assert_eq!(
        store
            .start_run(&tenant, &rid("weekly"), "2026-11-03", next)
            .await
            .unwrap(),
        StartRun::Started
    );
    let nobody = RunRecord {
        finished: true,
        ..run("weekly", "2026-11-03", next)
    };
    store.finish_run(&tenant, &nobody).await.unwrap();
    assert_eq!(
        store
            .list_runs(&tenant, &rid("weekly"), None, 10)
            .await
            .unwrap()
            .items,
        [nobody, queued]
    );
}

pub async fn runs_list_newest_day_first_and_page_with_cursors(store: &dyn Store) {
    let tenant = t("rec-runs");
    // Seven days, started out of order, the last one across a month's end.
    let days = [
        "2026-10-30",
        "2026-11-02",
        "2026-10-31",
        "2026-11-01",
        "2026-10-29",
        "2026-11-03",
        "2026-10-28",
    ];
    for d in days {
        assert_eq!(start(store, &tenant, "weekly", d).await, StartRun::Started);
    }
    start(store, &tenant, "other", "2026-12-01").await;
    let mut newest_first: Vec<&str> = days.to_vec();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));

    for limit in [1, 3, 7, 10] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let page = store
                .list_runs(&tenant, &rid("weekly"), cursor.as_deref(), limit)
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            got.extend(page.items.iter().map(|r| r.local_date.clone()));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(
                        page.items.len(),
                        limit as usize,
                        "a short page ends the list"
                    );
                    cursor = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(got, newest_first, "limit {limit}");
    }
    let whole = store
        .list_runs(&tenant, &rid("weekly"), None, 7)
        .await
        .unwrap();
    assert_eq!(whole.next_cursor, None, "nothing follows the last day");
    assert!(whole.items.iter().all(|r| r.setting_id == rid("weekly")));

    let nothing = store
        .list_runs(&tenant, &rid("never"), None, 10)
        .await
        .unwrap();
    assert!(nothing.items.is_empty());
    assert_eq!(nothing.next_cursor, None);

    for forged in ["", "!!!", "bm90IGEgY3Vyc29y", &"A".repeat(600)] {
        assert!(
            matches!(
                store
                    .list_runs(&tenant, &rid("weekly"), Some(forged), 3)
                    .await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{forged:?} should be rejected"
        );
    }
}

// --- What the runs read -----------------------------------------------------------------

pub async fn a_division_keeps_the_time_it_was_first_synced(store: &dyn Store) {
    let tenant = t("rec-first-sync");
    let first = NOW - Duration::days(3);
    let input = DivisionInput::new(div("d1"), "North".into(), email("north@example.org"))
        .unwrap()
        .synced_at(first);
    let stored = store.put_division(&tenant, &input).await.unwrap();
    assert_eq!(stored.first_synced_at, Some(first));

    let again = DivisionInput::new(div("d1"), "North Shore".into(), email("ns@example.org"))
        .unwrap()
        .synced_at(NOW);
    let stored = store.put_division(&tenant, &again).await.unwrap();
    assert_eq!(stored.name, "North Shore");
    assert_eq!(stored.email_from, email("ns@example.org"));
    assert_eq!(stored.first_synced_at, Some(first), "a later sync keeps it");
    let read = store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, stored);
    assert_eq!(store.list_divisions(&tenant).await.unwrap(), [stored]);

    // Without a time from the caller, the store's clock says when.
    let before = OffsetDateTime::now_utc() - Duration::seconds(5);
    put_div(store, &tenant, "d2").await;
    let d2 = store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    let at = d2.first_synced_at.expect("a new division gets a time");
    assert!(at >= before && at <= OffsetDateTime::now_utc() + Duration::seconds(5));
}

fn account(id: &str, contacts: &[&str]) -> Account {
    AccountBuilder::new(id)
        .division("d1")
        .contacts(
            contacts
                .iter()
                .map(|c| ContactBuilder::new(*c).email(format!("{c}@example.com"))),
        )
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
            contact_name: contact.into(),
            account_number: "N-1".into(),
            registration_token_hash: RegistrationToken::generate().hash(),
            expires_at: at + Duration::days(14),
            state: InvitationState::new(),
            created_at: at,
        },
    }
}

async fn claim_one(
    store: &dyn Store,
    tenant: &TenantId,
    c: &Campaign,
    contact: &str,
    at: OffsetDateTime,
) -> ClaimResult {
    let r = store
        .claim_contacts(tenant, &c.campaign_id, &[claim(c, contact, at)], at)
        .await
        .unwrap();
    r[0]
}

async fn sent(store: &dyn Store, tenant: &TenantId, contact: &str) -> u32 {
    store
        .get_contact(tenant, &cid(contact))
        .await
        .unwrap()
        .unwrap()
        .invitations_sent
}

async fn new_campaign(store: &dyn Store, tenant: &TenantId, at: OffsetDateTime) -> Campaign {
    let c = CampaignBuilder::new(at)
        .trigger(Trigger::Individual)
        .division("d1")
        .build();
    assert_eq!(
        store.create_campaign(tenant, &c, None, at).await.unwrap(),
        CreateOutcome::Created
    );
    c
}

/// Every claim counts once, in the claim's own write: a replay of the same campaign's claim
/// (before or after 24 hours) and a held claim count nothing.
pub async fn invitations_sent_counts_each_claim_of_a_contact_once(store: &dyn Store) {
    let tenant = t("rec-count");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", &["c1", "c2"])])
        .await
        .unwrap();
    assert_eq!(sent(store, &tenant, "c1").await, 0);

    let first = new_campaign(store, &tenant, NOW).await;
    assert_eq!(
        claim_one(store, &tenant, &first, "c1", NOW).await,
        ClaimResult::Claimed
    );
    assert_eq!(sent(store, &tenant, "c1").await, 1);
    let later = NOW + Duration::minutes(5);
    assert_eq!(
        claim_one(store, &tenant, &first, "c1", later).await,
        ClaimResult::AlreadyClaimedByThisCampaign
    );
    let held = new_campaign(store, &tenant, later).await;
    assert!(matches!(
        claim_one(store, &tenant, &held, "c1", later).await,
        ClaimResult::Held { .. }
    ));
    assert_eq!(
        sent(store, &tenant, "c1").await,
        1,
        "a replay or a hold counts nothing"
    );

    let second = new_campaign(store, &tenant, NOW + DAY).await;
    assert_eq!(
        claim_one(store, &tenant, &second, "c1", NOW + DAY).await,
        ClaimResult::Claimed
    );
    assert_eq!(sent(store, &tenant, "c1").await, 2);
    // The first campaign's fan-out replayed two days later: the contact is free again, but
    // this campaign has invited it already.
    assert_eq!(
        claim_one(store, &tenant, &first, "c1", NOW + DAY * 3).await,
        ClaimResult::AlreadyClaimedByThisCampaign
    );
    assert_eq!(sent(store, &tenant, "c1").await, 2);
    assert_eq!(sent(store, &tenant, "c2").await, 0);

    // Every read path carries the count; a resync keeps it.
    store
        .upsert_accounts(&tenant, &[account("a1", &["c1", "c2"])])
        .await
        .unwrap();
    let page = store
        .list_contacts(
            &tenant,
            &ListQuery {
                contacts: ContactQuery {
                    division_ids: vec![div("d1")],
                    filters: Filters::default(),
                    limit_to_uninvited: false,
                    now: NOW + DAY * 3,
                },
                group: Group::All,
                search: String::new(),
                cursor: None,
                limit: 10,
                max_examined: None,
            },
        )
        .await
        .unwrap();
    let listed: Vec<(&str, u32)> = page
        .items
        .iter()
        .map(|c| (c.contact_id.as_str(), c.invitations_sent))
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.contains(&("c1", 2)) && listed.contains(&("c2", 0)),
        "{listed:?}"
    );
}

pub async fn a_recurring_campaign_round_trips_with_its_run(store: &dyn Store) {
    let tenant = t("rec-cmp");
    put_div(store, &tenant, "d1").await;
    let mut c = CampaignBuilder::new(NOW)
        .trigger(Trigger::Recurring)
        .division("d1")
        .created_by("recurring:weekly")
        .build();
    c.recurring = Some(RecurringRun {
        setting_id: rid("weekly"),
        local_date: "2026-11-02".into(),
        rule: ReminderRule {
            cadence_days: 7,
            max_invitations_per_contact: 3,
        },
    });
    assert_eq!(
        store.create_campaign(&tenant, &c, None, NOW).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.get_campaign(&tenant, &c.campaign_id).await.unwrap(),
        Some(c.clone())
    );
    let listed = store
        .list_campaigns(&tenant, &div("d1"), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.items, [c.clone()]);

    // A campaign of another trigger has none.
    let manual = CampaignBuilder::new(NOW).division("d1").build();
    assert_eq!(manual.recurring, None);
    store
        .create_campaign(&tenant, &manual, None, NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_campaign(&tenant, &manual.campaign_id)
            .await
            .unwrap()
            .unwrap()
            .recurring,
        None
    );
}
