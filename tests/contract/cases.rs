//! Contract cases for divisions, accounts, contacts, counts, lists and suppression. Add a
//! case: write `pub async fn name(store: &dyn Store)` here and list its name under `cases`
//! in `contract_suite!` (in `main.rs`) — every adapter then runs it.
//!
//! The domain is the oracle: counts and lists are checked against what
//! [`Filters::matches`], [`classify`], [`Counts::add`] and [`Group::contains`] say about the
//! records the store hands back. Cases assume nothing about list order beyond "stable, each
//! item exactly once", and each builds its own tenants, so they hold on every adapter.

use std::collections::{BTreeSet, HashSet};

use crate::ids::{cid, div};
use portal_core::domain::{
    classify, Account, AccountId, AddressTally, ContactId, ContactInput, ContactRecord, Counts,
    DivisionId, DivisionInput, Email, Filters, Group, PortalStatus, TenantId,
};
use portal_core::ports::{ContactQuery, ListQuery, Store, StoreError, SuppressionReason};
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn aid(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// "Now" for every case: whole seconds, as the stores keep them.
const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

async fn put_div(store: &dyn Store, t: &TenantId, id: &str) {
    let d =
        DivisionInput::new(div(id), format!("Division {id}"), email("hoa@example.org")).unwrap();
    store.put_division(t, &d).await.unwrap();
}

fn contact(id: &str, name: &str, mail: Option<&str>, billing: bool) -> ContactInput {
    ContactBuilder::new(id)
        .name(name)
        .maybe_email(mail)
        .phone("555-0100")
        .billing(billing)
        .build()
}

fn account(id: &str, division: &str, contacts: Vec<ContactInput>) -> Account {
    AccountBuilder::new(id)
        .division(division)
        .contacts(contacts)
        .build()
}

fn query(divisions: &[&str], filters: Filters, limit_to_uninvited: bool) -> ContactQuery {
    ContactQuery {
        division_ids: divisions.iter().map(|d| div(d)).collect(),
        filters,
        limit_to_uninvited,
        now: NOW,
    }
}

/// Follows a list to its end with small pages; fails on a repeated item.
async fn list_all(
    store: &dyn Store,
    t: &TenantId,
    q: &ContactQuery,
    group: Group,
    search: &str,
    limit: u32,
) -> Vec<ContactRecord> {
    list_within(store, t, q, (group, search), limit, None)
        .await
        .0
}

/// [`list_all`] with pages that examine at most `budget` contacts each; also the number of
/// pages it took.
async fn list_within(
    store: &dyn Store,
    t: &TenantId,
    q: &ContactQuery,
    (group, search): (Group, &str),
    limit: u32,
    budget: Option<u32>,
) -> (Vec<ContactRecord>, usize) {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = None;
    for pages in 1..10_000 {
        let page = store
            .list_contacts(
                t,
                &ListQuery {
                    contacts: q.clone(),
                    group,
                    search: search.into(),
                    cursor: cursor.take(),
                    limit,
                    max_examined: budget,
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize, "page over its limit");
        if let Some(n) = budget {
            assert!(page.items.len() <= n as usize, "page over its budget");
        }
        for c in page.items {
            assert!(
                seen.insert(c.contact_id.clone()),
                "{} listed twice in {group:?}",
                c.contact_id
            );
            out.push(c);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (out, pages),
        }
    }
    panic!("paging did not end");
}

/// A small deterministic generator (xorshift), so fixtures are random-looking but
/// reproducible on every adapter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const CLASSES: &[&str] = &["Residential", "Commercial", "Multi-Family"];
const GROUPS: &[&str] = &["A", "B", "C"];
const SOURCES: &[&str] = &["Web", "Import"];
const SITES: &[&str] = &["North", "South"];

/// A synced tenant with varied accounts, statuses, invitations and suppressions.
struct Fixture {
    contacts: Vec<ContactId>,
    suppressed: HashSet<String>,
}

async fn build_fixture(store: &dyn Store, t: &TenantId, seed: u64, accounts: usize) -> Fixture {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for d in ["d1", "d2", "d3"] {
        put_div(store, t, d).await;
    }
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    let mut emails = Vec::new();
    for i in 0..accounts {
        let n = 1 + rng.below(3) as usize;
        let contacts: Vec<ContactInput> = (0..n)
            .map(|k| {
                let id = format!("c{i}-{k}");
                let mail = (!rng.chance(15)).then(|| {
                    if rng.chance(10) {
                        // A handful of addresses several contacts share, spelled variously.
                        let n = rng.below(5);
                        if rng.chance(50) {
                            format!("Shared.{n}@Example.ORG")
                        } else {
                            format!("shared.{n}@example.org")
                        }
                    } else if rng.chance(30) {
                        format!("Person.{i}.{k}@Example.COM")
                    } else {
                        format!("person.{i}.{k}@example.net")
                    }
                });
                if let Some(m) = &mail {
                    emails.push(m.clone());
                }
                ids.push(cid(&id));
                contact(&id, &format!("Person {i} {k}"), mail.as_deref(), k == 0)
            })
            .collect();
        batch.push(
            AccountBuilder::new(format!("a{i}"))
                .division(rng.pick(&["d1", "d2", "d3"]))
                .number(format!("{}", 10_000 + i))
                .name(format!("Owner {i}"))
                .class(rng.pick(CLASSES))
                .bill_group(rng.pick(GROUPS))
                .source(rng.pick(SOURCES))
                .site_source(rng.pick(SITES))
                .active_services(rng.chance(75))
                .balance_due_cents(if rng.chance(35) { 1_500 } else { 0 })
                .autopay(rng.chance(40))
                .contacts(contacts)
                .build(),
        );
    }
    store.upsert_accounts(t, &batch).await.unwrap();

    let hours = [1, 12, 23, 24, 25, 72];
    for id in &ids {
        match rng.below(10) {
            0 | 1 => {
                if rng.chance(50) {
                    let at = NOW - Duration::hours(hours[rng.below(6) as usize]);
                    assert!(store.record_invited(t, id, at).await.unwrap());
                }
                assert!(store
                    .set_portal_status(t, id, PortalStatus::Accepted)
                    .await
                    .unwrap());
            }
            2..=4 => {
                let at = NOW - Duration::hours(hours[rng.below(6) as usize])
                    + Duration::seconds(rng.below(3) as i64 - 1);
                assert!(store.record_invited(t, id, at).await.unwrap());
            }
            5 => {
                // Invited, then reset: not_sent but still inside or past the hold.
                let at = NOW - Duration::hours(hours[rng.below(6) as usize]);
                assert!(store.record_invited(t, id, at).await.unwrap());
                assert!(store
                    .set_portal_status(t, id, PortalStatus::NotSent)
                    .await
                    .unwrap());
            }
            _ => {}
        }
    }
    let mut suppressed = HashSet::new();
    for m in &emails {
        if rng.chance(12) {
            // Suppress under another spelling: comparison is on the normalised form.
            let spelled = if rng.chance(50) {
                m.to_uppercase()
            } else {
                m.to_lowercase()
            };
            let reason = if rng.chance(50) {
                SuppressionReason::Bounced
            } else {
                SuppressionReason::Complained
            };
            store
                .suppress(t, &email(&spelled), reason, NOW)
                .await
                .unwrap();
            suppressed.insert(m.to_lowercase());
        }
    }
    Fixture {
        contacts: ids,
        suppressed,
    }
}

impl Fixture {
    /// The stored records, read back one by one.
    async fn records(&self, store: &dyn Store, t: &TenantId) -> Vec<ContactRecord> {
        let mut out = Vec::new();
        for id in &self.contacts {
            out.push(
                store
                    .get_contact(t, id)
                    .await
                    .unwrap()
                    .expect("fixture contact exists"),
            );
        }
        out
    }

    fn is_suppressed(&self, c: &ContactRecord) -> bool {
        c.email
            .as_ref()
            .is_some_and(|e| self.suppressed.contains(&e.normalized()))
    }

    fn oracle_counts(&self, records: &[ContactRecord], q: &ContactQuery) -> Counts {
        let mut counts = Counts::default();
        let mut addresses = AddressTally::default();
        for c in records.iter().filter(|c| in_query(c, q)) {
            let outcome = classify(c, q.now, self.is_suppressed(c), q.limit_to_uninvited);
            counts.add(c, outcome);
            addresses.add(c, outcome, q.now);
        }
        counts.duplicate_address = addresses.duplicates();
        counts
    }

    fn oracle_group(
        &self,
        records: &[ContactRecord],
        q: &ContactQuery,
        group: Group,
        search: &str,
    ) -> BTreeSet<ContactId> {
        records
            .iter()
            .filter(|c| in_query(c, q) && c.matches_search(search))
            .filter(|c| {
                let outcome = classify(c, q.now, self.is_suppressed(c), q.limit_to_uninvited);
                group.contains(c, outcome)
            })
            .map(|c| c.contact_id.clone())
            .collect()
    }
}

fn in_query(c: &ContactRecord, q: &ContactQuery) -> bool {
    q.division_ids.contains(&c.division_id) && q.filters.matches(c)
}

fn ids(records: &[ContactRecord]) -> BTreeSet<ContactId> {
    records.iter().map(|c| c.contact_id.clone()).collect()
}

/// One filter per variant, plus combinations and a value nobody has.
fn filter_variants() -> Vec<Filters> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        Filters::default(),
        Filters {
            account_class: s(&["Commercial"]),
            ..Default::default()
        },
        Filters {
            account_class: s(&["Residential", "Multi-Family"]),
            ..Default::default()
        },
        Filters {
            bill_group: s(&["B"]),
            ..Default::default()
        },
        Filters {
            account_source: s(&["Import"]),
            ..Default::default()
        },
        Filters {
            site_source: s(&["South", "Nowhere"]),
            ..Default::default()
        },
        Filters {
            account_class: s(&["No such class"]),
            ..Default::default()
        },
        Filters {
            active_services: true,
            ..Default::default()
        },
        Filters {
            balance_due: true,
            ..Default::default()
        },
        Filters {
            billing_contacts_only: true,
            ..Default::default()
        },
        Filters {
            without_autopay: true,
            ..Default::default()
        },
        Filters {
            account_class: s(&["Residential", "Commercial"]),
            bill_group: s(&["A", "C"]),
            active_services: true,
            billing_contacts_only: true,
            without_autopay: true,
            ..Default::default()
        },
    ]
}

const ALL_GROUPS: [Group; 9] = [
    Group::All,
    Group::ActiveServices,
    Group::Accepted,
    Group::Pending,
    Group::NotSent,
    Group::Eligible,
    Group::Held24h,
    Group::Suppressed,
    Group::NoEmail,
];

// ---------------------------------------------------------------------------------------
// Divisions
// ---------------------------------------------------------------------------------------

pub async fn divisions_round_trip(store: &dyn Store) {
    let t = tenant("t1");
    let d = DivisionInput::new(
        DivisionId::parse("d1").unwrap(),
        "Oak Hills HOA".into(),
        Email::parse("board@oakhills.example").unwrap(),
    )
    .unwrap();
    store.put_division(&t, &d).await.unwrap();
    let got = store.list_divisions(&t).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "Oak Hills HOA");
    assert!(store
        .list_divisions(&tenant("t2"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn divisions_update_in_place_and_list_in_id_order(store: &dyn Store) {
    let t = tenant("t1");
    for id in ["river-bend", "cedar-park", "oak-hills"] {
        put_div(store, &t, id).await;
    }
    let renamed = DivisionInput::new(
        div("oak-hills"),
        "Oak Hills (renamed)".into(),
        email("Board@OakHills.example"),
    )
    .unwrap();
    let stored = store.put_division(&t, &renamed).await.unwrap();
    assert_eq!(stored.name, "Oak Hills (renamed)");
    assert_eq!(stored.email_from.as_str(), "Board@OakHills.example");
    assert_eq!(stored.last_bulk_sent_at, None);

    let got = store.get_division(&t, &div("oak-hills")).await.unwrap();
    assert_eq!(got.as_ref(), Some(&stored));
    assert_eq!(store.get_division(&t, &div("nope")).await.unwrap(), None);

    let listed = store.list_divisions(&t).await.unwrap();
    let names: Vec<_> = listed.iter().map(|d| d.division_id.as_str()).collect();
    assert_eq!(names, ["cedar-park", "oak-hills", "river-bend"]);
    assert_eq!(listed[1], stored);
}

pub async fn divisions_page_by_id_and_the_last_page_has_no_cursor(store: &dyn Store) {
    let (t, other) = (tenant("t1"), tenant("t2"));
    for id in ["d5", "d1", "d4", "d2", "d3"] {
        put_div(store, &t, id).await;
    }
    put_div(store, &other, "d9").await;
    let mut pages = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let page = store
            .list_divisions_page(&t, cursor.as_deref(), 2)
            .await
            .unwrap();
        pages.push(
            page.items
                .iter()
                .map(|d| d.division_id.to_string())
                .collect::<Vec<_>>(),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["d1", "d2"], vec!["d3", "d4"], vec!["d5"]]);
    assert_eq!(
        store
            .list_divisions_page(&t, None, 500)
            .await
            .unwrap()
            .items,
        store.list_divisions(&t).await.unwrap()
    );
    let page = store.list_divisions_page(&t, None, 5).await.unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (5, None));
    // A cursor carries no tenant: used by another tenant it continues in that tenant.
    let first = store.list_divisions_page(&t, None, 1).await.unwrap();
    let theirs = store
        .list_divisions_page(&other, first.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    let ids: Vec<_> = theirs
        .items
        .iter()
        .map(|d| d.division_id.as_str())
        .collect();
    assert_eq!(ids, ["d9"]);
    for bad in ["nope", "ZGl2MTo", "dHBsMTpkMQ"] {
        assert!(
            matches!(
                store.list_divisions_page(&t, Some(bad), 2).await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------

pub async fn upserting_the_same_accounts_twice_changes_nothing(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let accounts = vec![
        account(
            "a1",
            "d1",
            vec![
                contact("c1", "Ann", Some("ann@example.com"), true),
                contact("c2", "Bob", None, false),
            ],
        ),
        account(
            "a2",
            "d1",
            vec![contact("c3", "Cy", Some("cy@example.org"), true)],
        ),
    ];
    let first = store.upsert_accounts(&t, &accounts).await.unwrap();
    assert_eq!(
        (first.accounts, first.contacts, first.contacts_removed),
        (2, 3, 0)
    );
    let mut before: Vec<_> = accounts.iter().flat_map(|a| a.contact_records()).collect();
    // The first sync generated each account's portal key; the second must keep it.
    for expected in &mut before {
        let got = store
            .get_contact(&t, &expected.contact_id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            got.portal_key.is_some(),
            "{:?} has no portal key",
            expected.contact_id
        );
        expected.portal_key = got.portal_key;
    }
    let second = store.upsert_accounts(&t, &accounts).await.unwrap();
    assert_eq!(
        (second.accounts, second.contacts, second.contacts_removed),
        (2, 3, 0)
    );
    for expected in before {
        let got = store
            .get_contact(&t, &expected.contact_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, expected);
    }
    let all = list_all(
        store,
        &t,
        &query(&["d1"], Filters::default(), true),
        Group::All,
        "",
        2,
    )
    .await;
    assert_eq!(all.len(), 3);
}

pub async fn a_sync_replaces_the_contact_set_of_an_account(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let a = account(
        "a1",
        "d1",
        vec![
            contact("c1", "Ann", Some("ann@example.com"), true),
            contact("c2", "Bob", Some("bob@example.com"), false),
        ],
    );
    store.upsert_accounts(&t, &[a]).await.unwrap();
    let a = account(
        "a1",
        "d1",
        vec![
            contact("c1", "Ann Lee", Some("ann@example.com"), true),
            contact("c3", "Cy", None, false),
        ],
    );
    let report = store.upsert_accounts(&t, &[a]).await.unwrap();
    assert_eq!(report.contacts_removed, 1);
    assert_eq!(store.get_contact(&t, &cid("c2")).await.unwrap(), None);
    let c1 = store.get_contact(&t, &cid("c1")).await.unwrap().unwrap();
    assert_eq!(c1.contact_name, "Ann Lee");
    assert!(store.get_contact(&t, &cid("c3")).await.unwrap().is_some());
    let counts = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), true))
        .await
        .unwrap();
    assert_eq!(counts.total, 2);
}

pub async fn portal_status_and_invitations_survive_a_resync(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let a = account(
        "a1",
        "d1",
        vec![
            contact("c1", "Ann", Some("ann@example.com"), true),
            contact("c2", "Bob", Some("bob@example.com"), false),
        ],
    );
    store
        .upsert_accounts(&t, std::slice::from_ref(&a))
        .await
        .unwrap();
    let sent = NOW - Duration::hours(2);
    assert!(store.record_invited(&t, &cid("c1"), sent).await.unwrap());
    assert!(store
        .set_portal_status(&t, &cid("c2"), PortalStatus::Accepted)
        .await
        .unwrap());
    // Inviting an accepted contact records the time but keeps it accepted.
    assert!(store.record_invited(&t, &cid("c2"), sent).await.unwrap());

    let mut changed = a;
    changed.name = "Renamed".into();
    changed.autopay = true;
    store.upsert_accounts(&t, &[changed]).await.unwrap();

    let c1 = store.get_contact(&t, &cid("c1")).await.unwrap().unwrap();
    assert_eq!(c1.portal_status, PortalStatus::Pending);
    assert_eq!(c1.last_invited_at, Some(sent));
    assert_eq!(c1.account_name, "Renamed");
    assert!(c1.autopay);
    let c2 = store.get_contact(&t, &cid("c2")).await.unwrap().unwrap();
    assert_eq!(c2.portal_status, PortalStatus::Accepted);
    assert_eq!(c2.last_invited_at, Some(sent));
}

pub async fn a_synced_last_login_replaces_the_stored_one_and_absence_keeps_it(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let mut a = account(
        "a1",
        "d1",
        vec![contact("c1", "Ann", Some("ann@example.com"), true)],
    );
    let first = datetime!(2026-10-01 08:00:00 UTC);
    a.last_login = Some(first);
    store.upsert_accounts(&t, &[a.clone()]).await.unwrap();
    assert_eq!(
        store
            .get_contact(&t, &cid("c1"))
            .await
            .unwrap()
            .unwrap()
            .last_login,
        Some(first)
    );
    a.last_login = None;
    store.upsert_accounts(&t, &[a.clone()]).await.unwrap();
    assert_eq!(
        store
            .get_contact(&t, &cid("c1"))
            .await
            .unwrap()
            .unwrap()
            .last_login,
        Some(first)
    );
    let later = datetime!(2026-10-20 17:30:05 UTC);
    a.last_login = Some(later);
    store.upsert_accounts(&t, &[a]).await.unwrap();
    assert_eq!(
        store
            .get_contact(&t, &cid("c1"))
            .await
            .unwrap()
            .unwrap()
            .last_login,
        Some(later)
    );
}

pub async fn a_contact_synced_under_another_account_moves_with_it(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    put_div(store, &t, "d2").await;
    let a1 = account(
        "a1",
        "d1",
        vec![contact("c1", "Ann", Some("ann@example.com"), true)],
    );
    store.upsert_accounts(&t, &[a1]).await.unwrap();
    assert!(store
        .set_portal_status(&t, &cid("c1"), PortalStatus::Accepted)
        .await
        .unwrap());

    let mut a2 = account(
        "a2",
        "d2",
        vec![contact("c1", "Ann", Some("ann@example.com"), true)],
    );
    a2.class = "Commercial".into();
    store.upsert_accounts(&t, &[a2]).await.unwrap();

    let c1 = store.get_contact(&t, &cid("c1")).await.unwrap().unwrap();
    assert_eq!(c1.account_id, aid("a2"));
    assert_eq!(c1.division_id, div("d2"));
    assert_eq!(c1.account_class, "Commercial");
    assert_eq!(c1.portal_status, PortalStatus::Accepted);
    let d1 = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), true))
        .await
        .unwrap();
    let d2 = store
        .count_contacts(&t, &query(&["d2"], Filters::default(), true))
        .await
        .unwrap();
    assert_eq!((d1.total, d2.total, d2.accepted), (0, 1, 1));
    let listed = list_all(
        store,
        &t,
        &query(&["d1", "d2"], Filters::default(), true),
        Group::All,
        "",
        10,
    )
    .await;
    assert_eq!(ids(&listed), BTreeSet::from([cid("c1")]));

    // Re-syncing the old account without it leaves the moved contact alone.
    let report = store
        .upsert_accounts(&t, &[account("a1", "d1", vec![])])
        .await
        .unwrap();
    assert_eq!(report.contacts_removed, 0);
    assert!(store.get_contact(&t, &cid("c1")).await.unwrap().is_some());
}

pub async fn deleting_an_account_removes_its_contacts(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    store
        .upsert_accounts(
            &t,
            &[
                account(
                    "a1",
                    "d1",
                    vec![
                        contact("c1", "Ann", Some("ann@example.com"), true),
                        contact("c2", "Bob", None, false),
                    ],
                ),
                account("a2", "d1", vec![contact("c3", "Cy", None, true)]),
                account("a3", "d1", vec![]),
            ],
        )
        .await
        .unwrap();
    assert!(store.delete_account(&t, &aid("a1")).await.unwrap());
    assert!(store.get_contact(&t, &cid("c1")).await.unwrap().is_none());
    assert!(store.get_contact(&t, &cid("c2")).await.unwrap().is_none());
    assert!(store.get_contact(&t, &cid("c3")).await.unwrap().is_some());
    assert!(!store.delete_account(&t, &aid("a1")).await.unwrap());
    assert!(!store.delete_account(&t, &aid("never")).await.unwrap());
    // An account without contacts still exists until deleted.
    assert!(store.delete_account(&t, &aid("a3")).await.unwrap());
    let counts = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), true))
        .await
        .unwrap();
    assert_eq!(counts.total, 1);
}

pub async fn state_changes_on_a_missing_contact_report_false(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    assert!(!store
        .set_portal_status(&t, &cid("ghost"), PortalStatus::Accepted)
        .await
        .unwrap());
    assert!(!store.record_invited(&t, &cid("ghost"), NOW).await.unwrap());
    assert!(store
        .get_contact(&t, &cid("ghost"))
        .await
        .unwrap()
        .is_none());
    // Nothing was created by the attempts.
    let counts = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), false))
        .await
        .unwrap();
    assert_eq!(counts, Counts::default());
}

// ---------------------------------------------------------------------------------------
// Counts and lists
// ---------------------------------------------------------------------------------------

pub async fn counts_agree_with_the_domain_for_every_filter(store: &dyn Store) {
    let t = tenant("t1");
    let fx = build_fixture(store, &t, 7, 40).await;
    let records = fx.records(store, &t).await;
    // The fixture exercises every bucket, or the comparison below proves little.
    let all = fx.oracle_counts(
        &records,
        &query(&["d1", "d2", "d3"], Filters::default(), false),
    );
    for (bucket, n) in [
        ("accepted", all.accepted),
        ("pending", all.pending),
        ("eligible", all.eligible),
        ("held_24h", all.held_24h),
        ("suppressed", all.suppressed),
        ("no_email", all.no_email),
    ] {
        assert!(n > 0, "fixture has no {bucket} contact: {all:?}");
    }
    for divisions in [&["d1", "d2"][..], &["d3"], &["d1", "d2", "d3"]] {
        for filters in filter_variants() {
            for limit in [true, false] {
                let q = query(divisions, filters.clone(), limit);
                let got = store.count_contacts(&t, &q).await.unwrap();
                assert_eq!(got, fx.oracle_counts(&records, &q), "{divisions:?} {q:?}");
                assert_eq!(got.total, got.accepted + got.pending + got.not_sent);
            }
        }
    }
}

pub async fn the_24_hour_hold_ends_exactly_at_24_hours(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    store
        .upsert_accounts(
            &t,
            &[account(
                "a1",
                "d1",
                vec![
                    contact("held", "Held", Some("held@example.com"), true),
                    contact("free", "Free", Some("free@example.com"), true),
                ],
            )],
        )
        .await
        .unwrap();
    let day = Duration::hours(24);
    store
        .record_invited(&t, &cid("held"), NOW - day + Duration::seconds(1))
        .await
        .unwrap();
    store
        .record_invited(&t, &cid("free"), NOW - day)
        .await
        .unwrap();
    let q = query(&["d1"], Filters::default(), false);
    let counts = store.count_contacts(&t, &q).await.unwrap();
    assert_eq!(
        (counts.held_24h, counts.eligible, counts.pending),
        (1, 1, 2)
    );
    let held = list_all(store, &t, &q, Group::Held24h, "", 10).await;
    assert_eq!(ids(&held), BTreeSet::from([cid("held")]));
    let eligible = list_all(store, &t, &q, Group::Eligible, "", 10).await;
    assert_eq!(ids(&eligible), BTreeSet::from([cid("free")]));
    // Limited to uninvited contacts, pending ones are not targeted at all.
    let limited = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), true))
        .await
        .unwrap();
    assert_eq!((limited.held_24h, limited.eligible), (0, 0));
}

/// Contacts sharing an address (in several spellings, across divisions): a count's
/// `duplicate_address` is every eligible contact of an address but one, and all of them
/// when a contact of the selection with the address was invited within 24 hours. Another
/// tenant's contact with the address changes nothing.
pub async fn contacts_sharing_an_address_are_counted_in_duplicate_address(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    put_div(store, &t, "d2").await;
    let one = |id: &str, division: &str, mail: &str| {
        account(
            &format!("acc-{id}"),
            division,
            vec![contact(id, "P", Some(mail), true)],
        )
    };
    store
        .upsert_accounts(
            &t,
            &[
                one("pat1", "d1", "Pat@Example.org"),
                one("pat2", "d1", "pat@example.ORG"),
                one("pat3", "d2", "PAT@EXAMPLE.ORG"),
                one("lee1", "d1", "lee@example.org"),
                one("lee2", "d1", "LEE@example.org"),
                one("solo", "d1", "solo@example.org"),
            ],
        )
        .await
        .unwrap();
    let other = tenant("t2");
    put_div(store, &other, "d1").await;
    store
        .upsert_accounts(&other, &[one("solo-t2", "d1", "Solo@example.org")])
        .await
        .unwrap();
    let both = query(&["d1", "d2"], Filters::default(), false);
    let counts = store.count_contacts(&t, &both).await.unwrap();
    // Pat: 3 eligible, 2 skipped; Lee: 2 eligible, 1 skipped.
    assert_eq!((counts.eligible, counts.duplicate_address), (6, 3));
    let d1 = store
        .count_contacts(&t, &query(&["d1"], Filters::default(), false))
        .await
        .unwrap();
    assert_eq!((d1.eligible, d1.duplicate_address), (5, 2), "pat3 is in d2");

    // Lee was invited an hour ago through lee1: lee2 gets nothing either.
    store
        .record_invited(&t, &cid("lee1"), NOW - Duration::hours(1))
        .await
        .unwrap();
    let counts = store.count_contacts(&t, &both).await.unwrap();
    assert_eq!(
        (counts.eligible, counts.held_24h, counts.duplicate_address),
        (5, 1, 3)
    );
    // Limited to uninvited contacts, lee1 (pending) is not targeted, but its invitation
    // still holds the address.
    let limited = store
        .count_contacts(&t, &query(&["d1", "d2"], Filters::default(), true))
        .await
        .unwrap();
    assert_eq!((limited.eligible, limited.duplicate_address), (5, 3));
    // 24 hours after the invitation the address is free again: one of the two is emailed.
    let mut later = both.clone();
    later.now = NOW + Duration::hours(23) - Duration::seconds(1);
    let counts = store.count_contacts(&t, &later).await.unwrap();
    assert_eq!(
        (counts.eligible, counts.duplicate_address),
        (5, 3),
        "23:59:59 after: still held"
    );
    later.now = NOW + Duration::hours(23);
    let counts = store.count_contacts(&t, &later).await.unwrap();
    assert_eq!((counts.eligible, counts.duplicate_address), (6, 3));
    // The eligible list is the eligible count, duplicates included.
    let eligible = list_all(store, &t, &both, Group::Eligible, "", 10).await;
    assert_eq!(eligible.len() as u64, 5);
    // Nothing of the other tenant's is counted, nor is its contact a duplicate.
    let theirs = store
        .count_contacts(&other, &query(&["d1"], Filters::default(), false))
        .await
        .unwrap();
    assert_eq!((theirs.eligible, theirs.duplicate_address), (1, 0));
}

pub async fn suppressed_addresses_are_counted_case_insensitively(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    // Suppressed before the contact is ever synced.
    store
        .suppress(
            &t,
            &email("EARLY@example.com"),
            SuppressionReason::Bounced,
            NOW,
        )
        .await
        .unwrap();
    store
        .upsert_accounts(
            &t,
            &[account(
                "a1",
                "d1",
                vec![
                    contact("c1", "Ann", Some("Ann@Example.com"), true),
                    contact("c2", "Early", Some("early@EXAMPLE.com"), false),
                    contact("c3", "Cy", Some("cy@example.com"), false),
                    contact("c4", "Dee", None, false),
                ],
            )],
        )
        .await
        .unwrap();
    store
        .suppress(
            &t,
            &email("ann@example.COM"),
            SuppressionReason::Complained,
            NOW,
        )
        .await
        .unwrap();
    // Idempotent.
    store
        .suppress(
            &t,
            &email("ANN@example.com"),
            SuppressionReason::Unsubscribed,
            NOW,
        )
        .await
        .unwrap();
    assert!(store
        .is_suppressed(&t, &email("aNn@example.com"))
        .await
        .unwrap());
    assert!(!store
        .is_suppressed(&t, &email("cy@example.com"))
        .await
        .unwrap());

    let q = query(&["d1"], Filters::default(), true);
    let counts = store.count_contacts(&t, &q).await.unwrap();
    assert_eq!(
        (
            counts.suppressed,
            counts.eligible,
            counts.no_email,
            counts.total
        ),
        (2, 1, 1, 4)
    );
    let listed = list_all(store, &t, &q, Group::Suppressed, "", 1).await;
    assert_eq!(ids(&listed), BTreeSet::from([cid("c1"), cid("c2")]));

    // An address changed by sync to a suppressed one is suppressed; changed away, it is not.
    store
        .upsert_accounts(
            &t,
            &[account(
                "a1",
                "d1",
                vec![
                    contact("c1", "Ann", Some("ann.new@example.com"), true),
                    contact("c2", "Early", Some("early@example.com"), false),
                    contact("c3", "Cy", Some("Early@Example.com"), false),
                    contact("c4", "Dee", None, false),
                ],
            )],
        )
        .await
        .unwrap();
    let listed = list_all(store, &t, &q, Group::Suppressed, "", 10).await;
    assert_eq!(ids(&listed), BTreeSet::from([cid("c2"), cid("c3")]));
    // Accepted contacts are never counted as suppressed.
    store
        .set_portal_status(&t, &cid("c2"), PortalStatus::Accepted)
        .await
        .unwrap();
    let counts = store.count_contacts(&t, &q).await.unwrap();
    assert_eq!((counts.suppressed, counts.accepted), (1, 1));
}

pub async fn every_group_pages_to_exactly_the_oracle_set(store: &dyn Store) {
    let t = tenant("t1");
    let fx = build_fixture(store, &t, 11, 30).await;
    let records = fx.records(store, &t).await;
    let filtered = Filters {
        active_services: true,
        ..Default::default()
    };
    for (divisions, filters) in [
        (&["d1", "d2", "d3"][..], Filters::default()),
        (&["d2", "d3"][..], filtered),
    ] {
        for limit in [true, false] {
            let q = query(divisions, filters.clone(), limit);
            for group in ALL_GROUPS {
                let listed = list_all(store, &t, &q, group, "", 4).await;
                assert_eq!(
                    ids(&listed),
                    fx.oracle_group(&records, &q, group, ""),
                    "{group:?} limit_to_uninvited={limit} {divisions:?}"
                );
                // Pages that examine a few contacts each list the same set.
                if limit && filters == Filters::default() {
                    let (bounded, _) = list_within(store, &t, &q, (group, ""), 4, Some(5)).await;
                    assert_eq!(ids(&bounded), ids(&listed), "{group:?} with a budget of 5");
                }
                // What a list hands back is the stored record.
                for c in &listed {
                    assert!(
                        records.contains(c),
                        "{} differs from get_contact",
                        c.contact_id
                    );
                }
            }
        }
    }
    // A full page of the whole set in one go.
    let q = query(&["d1", "d2", "d3"], Filters::default(), true);
    let one = list_all(store, &t, &q, Group::All, "", 500).await;
    assert_eq!(one.len(), records.len());
}

pub async fn search_matches_email_names_and_account_number(store: &dyn Store) {
    let t = tenant("t1");
    let fx = build_fixture(store, &t, 3, 25).await;
    let records = fx.records(store, &t).await;
    let q = query(&["d1", "d2", "d3"], Filters::default(), false);
    for needle in [
        "example.com",
        "person 1",
        "owner 2",
        "1001",
        "person.3.",
        "zzz-nothing",
        "@",
    ] {
        let expected = fx.oracle_group(&records, &q, Group::All, needle);
        let listed = list_all(store, &t, &q, Group::All, needle, 3).await;
        assert_eq!(ids(&listed), expected, "search {needle:?}");
        // The smallest budget once; every search with a few contacts a page.
        for budget in if needle == "person 1" {
            &[1, 6][..]
        } else {
            &[6][..]
        } {
            let budget = *budget;
            let (bounded, pages) =
                list_within(store, &t, &q, (Group::All, needle), 3, Some(budget)).await;
            assert_eq!(
                ids(&bounded),
                expected,
                "search {needle:?}, budget {budget}"
            );
            // Every contact is examined once, at most `budget` a page.
            let at_least = records.len().div_ceil(budget as usize);
            assert!(pages >= at_least, "{needle:?}: {pages} pages < {at_least}");
        }
    }
    // A search that matches nothing reads a bounded page: empty, with a cursor to go on.
    let first = store
        .list_contacts(
            &t,
            &ListQuery {
                contacts: q.clone(),
                group: Group::All,
                search: "zzz-nothing".into(),
                cursor: None,
                limit: 50,
                max_examined: Some(7),
            },
        )
        .await
        .unwrap();
    assert!(first.items.is_empty());
    assert!(
        first.next_cursor.is_some(),
        "more than 7 contacts are left to examine"
    );
    // Search narrows a group, too.
    let expected = fx.oracle_group(&records, &q, Group::NotSent, "example.net");
    let listed = list_all(store, &t, &q, Group::NotSent, "example.net", 3).await;
    assert_eq!(ids(&listed), expected);
}

pub async fn a_forged_cursor_is_rejected(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    store
        .upsert_accounts(
            &t,
            &[account(
                "a1",
                "d1",
                vec![
                    contact("c1", "Ann", None, true),
                    contact("c2", "Bob", None, true),
                ],
            )],
        )
        .await
        .unwrap();
    for bad in ["not a cursor", "", "eyJ4IjoxfQ", "%%%", "AAAA"] {
        let r = store
            .list_contacts(
                &t,
                &ListQuery {
                    contacts: query(&["d1"], Filters::default(), true),
                    group: Group::All,
                    search: String::new(),
                    cursor: Some(bad.into()),
                    limit: 10,
                    max_examined: None,
                },
            )
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidCursor(_))),
            "{bad:?} gave {r:?}"
        );
    }
}

pub async fn tenants_never_see_count_or_change_each_other(store: &dyn Store) {
    let (a, b, empty) = (tenant("tenant-a"), tenant("tenant-b"), tenant("tenant-c"));
    let fa = build_fixture(store, &a, 5, 15).await;
    let _fb = build_fixture(store, &b, 5, 15).await;
    for d in ["d1", "d2", "d3"] {
        put_div(store, &empty, d).await;
    }
    let q = query(&["d1", "d2", "d3"], Filters::default(), false);
    let before_counts = store.count_contacts(&a, &q).await.unwrap();
    let before = fa.records(store, &a).await;

    // Change everything about tenant b, with the same ids.
    let first = fa.contacts[0].clone();
    for id in &fa.contacts {
        store
            .set_portal_status(&b, id, PortalStatus::Accepted)
            .await
            .unwrap();
        store.record_invited(&b, id, NOW).await.unwrap();
    }
    for r in &before {
        if let Some(e) = &r.email {
            store
                .suppress(&b, e, SuppressionReason::Bounced, NOW)
                .await
                .unwrap();
        }
    }
    assert!(store
        .delete_account(&b, &before[0].account_id)
        .await
        .unwrap());
    store
        .upsert_accounts(
            &b,
            &[account(
                "a1",
                "d1",
                vec![contact("c1-0", "Moved", None, true)],
            )],
        )
        .await
        .unwrap();
    store
        .put_division(
            &b,
            &DivisionInput::new(div("d1"), "B's d1".into(), email("b@example.org")).unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(store.count_contacts(&a, &q).await.unwrap(), before_counts);
    assert_eq!(fa.records(store, &a).await, before);
    assert_eq!(
        store
            .get_division(&a, &div("d1"))
            .await
            .unwrap()
            .unwrap()
            .name,
        "Division d1"
    );
    for r in &before {
        if let Some(e) = &r.email {
            if !fa.suppressed.contains(&e.normalized()) {
                assert!(!store.is_suppressed(&a, e).await.unwrap());
            }
        }
    }
    assert!(store.get_contact(&a, &first).await.unwrap().is_some());

    // A tenant with the same division ids and no contacts sees nothing at all.
    assert_eq!(
        store.count_contacts(&empty, &q).await.unwrap(),
        Counts::default()
    );
    for group in ALL_GROUPS {
        assert!(list_all(store, &empty, &q, group, "", 50).await.is_empty());
    }
    assert!(store.get_contact(&empty, &first).await.unwrap().is_none());
    assert!(!store.delete_account(&empty, &aid("a1")).await.unwrap());
    assert!(!store
        .set_portal_status(&empty, &first, PortalStatus::Accepted)
        .await
        .unwrap());
    // A cursor made on tenant a pages tenant c's (empty) data, never a's.
    let page = store
        .list_contacts(
            &a,
            &ListQuery {
                contacts: q.clone(),
                group: Group::All,
                search: String::new(),
                cursor: None,
                limit: 2,
                max_examined: None,
            },
        )
        .await
        .unwrap();
    let page = store
        .list_contacts(
            &empty,
            &ListQuery {
                contacts: q.clone(),
                group: Group::All,
                search: String::new(),
                cursor: page.next_cursor,
                limit: 50,
                max_examined: None,
            },
        )
        .await;
    match page {
        Ok(p) => assert!(p.items.is_empty(), "a cursor crossed tenants"),
        Err(e) => assert!(matches!(e, StoreError::InvalidCursor(_)), "{e:?}"),
    }
}

pub async fn random_fixtures_count_like_the_domain(store: &dyn Store) {
    for seed in [101, 202, 303] {
        let t = tenant(&format!("rand-{seed}"));
        let fx = build_fixture(store, &t, seed, 12).await;
        let records = fx.records(store, &t).await;
        let mut rng = Rng(seed * 7919);
        for _ in 0..6 {
            let pick = |rng: &mut Rng, from: &[&str]| -> Vec<String> {
                from.iter()
                    .filter(|_| rng.chance(40))
                    .map(|s| s.to_string())
                    .collect()
            };
            let filters = Filters {
                account_class: pick(&mut rng, CLASSES),
                bill_group: pick(&mut rng, GROUPS),
                account_source: pick(&mut rng, SOURCES),
                site_source: pick(&mut rng, SITES),
                active_services: rng.chance(30),
                balance_due: rng.chance(30),
                billing_contacts_only: rng.chance(30),
                without_autopay: rng.chance(30),
            };
            let divisions: Vec<&str> = ["d1", "d2", "d3"]
                .into_iter()
                .filter(|_| rng.chance(70))
                .collect();
            if divisions.is_empty() {
                continue;
            }
            let q = query(&divisions, filters, rng.chance(50));
            assert_eq!(
                store.count_contacts(&t, &q).await.unwrap(),
                fx.oracle_counts(&records, &q),
                "seed {seed}: {q:?}"
            );
            let group = ALL_GROUPS[rng.below(ALL_GROUPS.len() as u64) as usize];
            let listed = list_all(store, &t, &q, group, "", 5).await;
            assert_eq!(ids(&listed), fx.oracle_group(&records, &q, group, ""));
        }
    }
}
