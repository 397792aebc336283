//! Contract cases for the values the list filters take in each division
//! (`ContactStore::filter_values`).
//!
//! The oracle is the domain: every contact of the division, as `list_contacts` hands them
//! back, folded with [`FilterValues::add_contact`]. Each case also spells out a few values,
//! so that a store and the oracle cannot agree on nonsense.

use std::collections::HashSet;

use crate::ids::div;
use portal_core::domain::{
    Account, AccountId, DivisionId, DivisionInput, Email, FilterField, FilterValues, Filters,
    Group, TenantId,
};
use portal_core::ports::{ContactQuery, ListQuery, Store};
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use time::macros::datetime;

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

async fn put_div(store: &dyn Store, t: &TenantId, id: &str) {
    let d = DivisionInput::new(
        div(id),
        format!("Division {id}"),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(t, &d).await.unwrap();
}

/// An account with `contacts` contacts `{id}-c{i}` and these four values.
fn account(id: &str, division: &str, values: [&str; 4], contacts: usize) -> Account {
    account_with(
        id,
        division,
        values,
        (0..contacts).map(|i| format!("{id}-c{i}")),
    )
}

fn account_with(
    id: &str,
    division: &str,
    [class, group, source, site]: [&str; 4],
    contacts: impl IntoIterator<Item = String>,
) -> Account {
    AccountBuilder::new(id)
        .division(division)
        .class(class)
        .bill_group(group)
        .source(source)
        .site_source(site)
        .contacts(contacts.into_iter().map(|c| {
            ContactBuilder::new(c.clone())
                .name(format!("Contact {c}"))
                .email(format!("{c}@example.com"))
        }))
        .build()
}

/// The values folded from every contact of `division`.
async fn oracle(store: &dyn Store, t: &TenantId, division: &str) -> FilterValues {
    let mut values = FilterValues::default();
    let mut seen = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_contacts(
                t,
                &ListQuery {
                    contacts: ContactQuery {
                        division_ids: vec![div(division)],
                        filters: Filters::default(),
                        limit_to_uninvited: false,
                        now: datetime!(2026-11-02 12:00:00 UTC),
                    },
                    group: Group::All,
                    search: String::new(),
                    cursor: cursor.take(),
                    limit: 500,
                    max_examined: None,
                },
            )
            .await
            .unwrap();
        for c in &page.items {
            assert!(seen.insert(c.contact_id.clone()), "listed twice");
            values.add_contact(c);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return values,
        }
    }
}

async fn values_of(store: &dyn Store, t: &TenantId, divisions: &[&str]) -> Vec<FilterValues> {
    let ids: Vec<DivisionId> = divisions.iter().map(|d| div(d)).collect();
    let got = store.filter_values(t, &ids).await.unwrap();
    assert_eq!(got.len(), divisions.len(), "one answer per division");
    got
}

/// Each division's values, checked against the oracle.
#[track_caller]
fn check(got: &FilterValues, want: &FilterValues, what: &str) {
    assert_eq!(got, want, "{what}: the store disagrees with its contacts");
}

async fn agree(store: &dyn Store, t: &TenantId, divisions: &[&str], what: &str) {
    let got = values_of(store, t, divisions).await;
    for (d, got) in divisions.iter().zip(&got) {
        check(got, &oracle(store, t, d).await, &format!("{what}, {d}"));
    }
}

fn pairs(v: &FilterValues, field: FilterField) -> Vec<(String, u64)> {
    v.values(field).map(|(s, n)| (s.to_owned(), n)).collect()
}

fn list(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

pub async fn filter_values_appear_after_a_sync_and_count_contacts(store: &dyn Store) {
    let t = tenant("t1");
    for d in ["d1", "d2"] {
        put_div(store, &t, d).await;
    }
    let before = values_of(store, &t, &["d1", "d2"]).await;
    assert!(before.iter().all(FilterValues::is_empty), "{before:?}");

    store
        .upsert_accounts(
            &t,
            &[
                account("a1", "d1", ["Residential", "A", "Web", "North"], 2),
                account("a2", "d1", ["Commercial", "A", "Import", "North"], 1),
                account("a3", "d1", ["", "B", "Web", "South"], 1),
                account("a4", "d2", ["Residential", "C", "Web", "South"], 3),
                account("a5", "d1", ["HOA", "A", "Web", "North"], 0),
            ],
        )
        .await
        .unwrap();

    // Answers come in the order asked.
    let got = values_of(store, &t, &["d2", "d1"]).await;
    let (d2, d1) = (&got[0], &got[1]);
    assert_eq!(
        pairs(d1, FilterField::AccountClass),
        list(&[("", 1), ("Commercial", 1), ("Residential", 2)]),
        "counted in contacts, sorted, the empty value included, an account without contacts not"
    );
    assert_eq!(
        pairs(d1, FilterField::BillGroup),
        list(&[("A", 3), ("B", 1)])
    );
    assert_eq!(
        pairs(d1, FilterField::AccountSource),
        list(&[("Import", 1), ("Web", 3)])
    );
    assert_eq!(
        pairs(d1, FilterField::SiteSource),
        list(&[("North", 3), ("South", 1)])
    );
    assert_eq!(
        pairs(d2, FilterField::AccountClass),
        list(&[("Residential", 3)])
    );
    check(d1, &oracle(store, &t, "d1").await, "d1");
    check(d2, &oracle(store, &t, "d2").await, "d2");
}

pub async fn filter_values_follow_accounts_that_change_move_and_lose_contacts(store: &dyn Store) {
    let t = tenant("t1");
    for d in ["d1", "d2"] {
        put_div(store, &t, d).await;
    }
    store
        .upsert_accounts(
            &t,
            &[
                account("a1", "d1", ["Residential", "A", "Web", "North"], 2),
                account("a2", "d1", ["Commercial", "B", "Import", "North"], 2),
                account("a3", "d1", ["Commercial", "B", "Import", "South"], 3),
                account("a4", "d1", ["HOA", "C", "Office", "East"], 2),
            ],
        )
        .await
        .unwrap();
    agree(store, &t, &["d1", "d2"], "first sync").await;

    // a1 changes class, a2 moves to d2, a3 keeps one contact of three, and a5 (new, in d2)
    // takes a contact of a4, which is not in this sync.
    store
        .upsert_accounts(
            &t,
            &[
                account("a1", "d1", ["Multi-Family", "A", "Web", "North"], 2),
                account("a2", "d2", ["Commercial", "B", "Import", "North"], 2),
                account("a3", "d1", ["Commercial", "B", "Import", "South"], 1),
                account_with(
                    "a5",
                    "d2",
                    ["HOA", "D", "Office", "West"],
                    ["a4-c1".to_owned()],
                ),
            ],
        )
        .await
        .unwrap();
    let got = values_of(store, &t, &["d1", "d2"]).await;
    assert_eq!(
        pairs(&got[0], FilterField::AccountClass),
        list(&[("Commercial", 1), ("HOA", 1), ("Multi-Family", 2)]),
        "Residential left with a1's change, a2's contacts with it, a3 and a4 shrank"
    );
    assert_eq!(
        pairs(&got[1], FilterField::AccountClass),
        list(&[("Commercial", 2), ("HOA", 1)])
    );
    assert_eq!(
        pairs(&got[1], FilterField::BillGroup),
        list(&[("B", 2), ("D", 1)])
    );
    agree(store, &t, &["d1", "d2"], "after the changes").await;

    // A contact moving within one call: the last account listing it has it.
    store
        .upsert_accounts(
            &t,
            &[
                account_with(
                    "a6",
                    "d1",
                    ["Estate", "E", "Web", "North"],
                    ["a1-c0".to_owned()],
                ),
                account_with(
                    "a7",
                    "d2",
                    ["Estate", "F", "Web", "North"],
                    ["a1-c0".to_owned()],
                ),
            ],
        )
        .await
        .unwrap();
    let got = values_of(store, &t, &["d1", "d2"]).await;
    assert_eq!(
        pairs(&got[0], FilterField::AccountClass),
        list(&[("Commercial", 1), ("HOA", 1), ("Multi-Family", 1)])
    );
    assert_eq!(
        pairs(&got[1], FilterField::BillGroup),
        list(&[("B", 2), ("D", 1), ("F", 1)])
    );
    agree(
        store,
        &t,
        &["d1", "d2"],
        "a contact listed twice in one call",
    )
    .await;
}

pub async fn filter_values_shrink_and_disappear_when_accounts_are_deleted(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    store
        .upsert_accounts(
            &t,
            &[
                account("a1", "d1", ["Residential", "A", "Web", "North"], 2),
                account("a2", "d1", ["Residential", "B", "Web", "North"], 1),
                account("a3", "d1", ["Commercial", "B", "Import", "South"], 3),
            ],
        )
        .await
        .unwrap();
    assert!(store
        .delete_account(&t, &AccountId::parse("a3").unwrap())
        .await
        .unwrap());
    let got = values_of(store, &t, &["d1"]).await.remove(0);
    assert_eq!(
        pairs(&got, FilterField::AccountClass),
        list(&[("Residential", 3)])
    );
    assert_eq!(
        pairs(&got, FilterField::BillGroup),
        list(&[("A", 2), ("B", 1)])
    );
    assert_eq!(pairs(&got, FilterField::SiteSource), list(&[("North", 3)]));
    check(&got, &oracle(store, &t, "d1").await, "after one deletion");

    assert!(!store
        .delete_account(&t, &AccountId::parse("missing").unwrap())
        .await
        .unwrap());
    for a in ["a1", "a2"] {
        assert!(store
            .delete_account(&t, &AccountId::parse(a).unwrap())
            .await
            .unwrap());
    }
    let got = values_of(store, &t, &["d1"]).await.remove(0);
    assert!(got.is_empty(), "nothing left: {got:?}");
}

pub async fn a_resync_that_changes_nothing_changes_no_value(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let accounts = [
        account("a1", "d1", ["Residential", "A", "Web", "North"], 2),
        account("a2", "d1", ["Commercial", "B", "Import", "South"], 1),
    ];
    store.upsert_accounts(&t, &accounts).await.unwrap();
    let first = values_of(store, &t, &["d1"]).await;
    store.upsert_accounts(&t, &accounts).await.unwrap();
    assert_eq!(values_of(store, &t, &["d1"]).await, first, "a resync");
    // An account listed twice in one call counts once, as its last version.
    store
        .upsert_accounts(
            &t,
            &[
                account("a2", "d1", ["Other", "B", "Import", "South"], 1),
                accounts[1].clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(values_of(store, &t, &["d1"]).await, first, "listed twice");
    agree(store, &t, &["d1"], "after resyncs").await;
}

pub async fn tenants_never_see_or_change_each_others_filter_values(store: &dyn Store) {
    let (alice, bob) = (tenant("alice"), tenant("bob"));
    for t in [&alice, &bob] {
        put_div(store, t, "d1").await;
    }
    store
        .upsert_accounts(
            &alice,
            &[account("a1", "d1", ["Residential", "A", "Web", "North"], 2)],
        )
        .await
        .unwrap();
    assert!(values_of(store, &bob, &["d1"]).await[0].is_empty());

    // The same account and contact ids under bob are bob's own.
    store
        .upsert_accounts(
            &bob,
            &[account(
                "a1",
                "d1",
                ["Commercial", "Z", "Import", "South"],
                1,
            )],
        )
        .await
        .unwrap();
    let (a, b) = (
        values_of(store, &alice, &["d1"]).await.remove(0),
        values_of(store, &bob, &["d1"]).await.remove(0),
    );
    assert_eq!(
        pairs(&a, FilterField::AccountClass),
        list(&[("Residential", 2)])
    );
    assert_eq!(
        pairs(&b, FilterField::AccountClass),
        list(&[("Commercial", 1)])
    );
    assert!(store
        .delete_account(&bob, &AccountId::parse("a1").unwrap())
        .await
        .unwrap());
    assert_eq!(values_of(store, &alice, &["d1"]).await.remove(0), a);
    assert!(values_of(store, &bob, &["d1"]).await[0].is_empty());
}

/// A small deterministic generator (xorshift): the same sequence on every adapter.
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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

pub async fn random_syncs_and_deletions_keep_filter_values_equal_to_the_contacts(
    store: &dyn Store,
) {
    let t = tenant("t1");
    let divisions = ["d1", "d2", "d3"];
    for d in divisions {
        put_div(store, &t, d).await;
    }
    let mut rng = Rng(0x5EED_F11E);
    let mut contacts_of: Vec<Vec<String>> = (0..40)
        .map(|a| (0..1 + a % 3).map(|k| format!("a{a}-c{k}")).collect())
        .collect();
    for step in 0..5 {
        // Some accounts, with new values; a few contacts change account.
        let mut batch = Vec::new();
        for _ in 0..25 {
            let a = rng.below(contacts_of.len());
            if rng.below(5) == 0 {
                let from = rng.below(contacts_of.len());
                if let Some(c) = contacts_of[from].pop() {
                    contacts_of.iter_mut().for_each(|l| l.retain(|x| *x != c));
                    contacts_of[a].push(c);
                }
            }
            batch.push(account_with(
                &format!("a{a}"),
                rng.pick(&divisions),
                [
                    rng.pick(&["Residential", "Commercial", "HOA"]),
                    rng.pick(&["A", "B", "C", "D"]),
                    rng.pick(&["Web", "Import"]),
                    rng.pick(&["North", "South", ""]),
                ],
                contacts_of[a].clone(),
            ));
        }
        store.upsert_accounts(&t, &batch).await.unwrap();
        // The store moved each contact to the last account listing it: mirror that.
        for a in &batch {
            let i: usize = a.account_id.as_str()[1..].parse().unwrap();
            let ids: Vec<String> = a
                .contacts
                .iter()
                .map(|c| c.contact_id.to_string())
                .collect();
            for (j, l) in contacts_of.iter_mut().enumerate() {
                if j != i {
                    l.retain(|c| !ids.contains(c));
                }
            }
            contacts_of[i] = ids;
        }
        let gone = rng.below(contacts_of.len());
        store
            .delete_account(&t, &AccountId::parse(format!("a{gone}")).unwrap())
            .await
            .unwrap();
        contacts_of[gone].clear();
        agree(store, &t, &divisions, &format!("step {step}")).await;
    }
}

/// A request racing its own retry, and another request on the same division: every change
/// is counted once. (Concurrent syncs of one account with *different* data are not ordered
/// by any store: which version's fields win is not part of the contract.)
pub async fn a_sync_racing_its_retry_and_another_sync_counts_every_contact_once(store: &dyn Store) {
    let t = tenant("t1");
    put_div(store, &t, "d1").await;
    let accounts = |prefix: &str, class: &str| -> Vec<Account> {
        (0..30)
            .map(|i| {
                account(
                    &format!("{prefix}{i}"),
                    "d1",
                    [class, "A", "Web", "North"],
                    2,
                )
            })
            .collect()
    };
    let (request, other) = (accounts("a", "One"), accounts("b", "Two"));
    let (r1, r2, r3) = tokio::join!(
        store.upsert_accounts(&t, &request),
        store.upsert_accounts(&t, &request),
        store.upsert_accounts(&t, &other),
    );
    for r in [r1, r2, r3] {
        r.unwrap();
    }
    let got = values_of(store, &t, &["d1"]).await.remove(0);
    assert_eq!(
        pairs(&got, FilterField::AccountClass),
        list(&[("One", 60), ("Two", 60)])
    );
    assert_eq!(pairs(&got, FilterField::BillGroup), list(&[("A", 120)]));
    agree(store, &t, &["d1"], "after concurrent syncs").await;
}
