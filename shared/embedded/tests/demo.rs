//! The demo tenant on the embedded store: what `portal-invites serve --demo` loads.

use portal_core::demo::{demo_tenant, load_demo};
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tenant_loads_about_ten_thousand_contacts_and_reloads_identically() {
    use portal_core::domain::Filters;
    use portal_core::ports::{ContactQuery, ContactStore, DivisionStore};
    use portal_embedded::sqlite::SqliteStore;

    let store = SqliteStore::open_in_memory().unwrap();
    let now = datetime!(2026-11-02 12:00:00 UTC);
    let first = load_demo(&store, now).await.unwrap();
    assert_eq!(first.divisions, 3);
    assert!((9_000..11_000).contains(&first.contacts), "{first:?}");
    let t = demo_tenant();
    let divisions = store.list_divisions(&t).await.unwrap();
    let q = ContactQuery {
        division_ids: divisions.iter().map(|d| d.division_id.clone()).collect(),
        filters: Filters::default(),
        limit_to_uninvited: false,
        now,
    };
    let counts = store.count_contacts(&t, &q).await.unwrap();
    assert_eq!(counts.total, first.contacts);
    assert_eq!(counts.accepted, first.accepted);
    assert_eq!(counts.pending, first.pending);
    for (bucket, n) in [
        ("held_24h", counts.held_24h),
        ("suppressed", counts.suppressed),
        ("no_email", counts.no_email),
        ("eligible", counts.eligible),
    ] {
        assert!(n > 0, "the demo has no {bucket} contact: {counts:?}");
    }

    let again = load_demo(&store, now).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(store.count_contacts(&t, &q).await.unwrap(), counts);
}
