//! Contract cases for the sender settings: none until saved, read back whole, replaced, one
//! document per tenant, and not mistaken for a division.

use portal_core::domain::{Email, SenderSettings};
use portal_core::ports::Store;
use time::macros::datetime;

use crate::cases::tenant;

fn settings(domains: &[&str], addresses: &[&str], by: &str) -> SenderSettings {
    let d: Vec<String> = domains.iter().map(|s| (*s).to_owned()).collect();
    let a: Vec<String> = addresses.iter().map(|s| (*s).to_owned()).collect();
    SenderSettings::new(&d, &a, datetime!(2026-12-01 10:30:00 UTC), by).unwrap()
}

pub async fn sender_settings_are_none_until_saved_then_read_back_whole(store: &dyn Store) {
    let t = tenant("snd-a");
    assert_eq!(store.get_sender_settings(&t).await.unwrap(), None);
    let saved = settings(
        &["oakhills.example.com", "Example.ORG"],
        &["Board@Cedar.example.net"],
        "manager-1",
    )
    .with_display_name(Some("[DivisionName] · Ácme Property"))
    .unwrap();
    store.put_sender_settings(&t, &saved).await.unwrap();
    let read = store.get_sender_settings(&t).await.unwrap().unwrap();
    assert_eq!(read, saved);
    assert_eq!(read.domains, ["example.org", "oakhills.example.com"]);
    assert!(read.allows(&Email::parse("board@cedar.example.net").unwrap()));
    assert_eq!(read.updated_by, "manager-1");
    assert_eq!(
        read.display_name.map(|n| n.as_str().to_owned()).as_deref(),
        Some("[DivisionName] · Ácme Property")
    );
    assert_eq!(read.updated_at, datetime!(2026-12-01 10:30:00 UTC));
}

pub async fn saving_sender_settings_again_replaces_them(store: &dyn Store) {
    let t = tenant("snd-b");
    store
        .put_sender_settings(&t, &settings(&["a.example.com"], &[], "m1"))
        .await
        .unwrap();
    let second = settings(&[], &["only@b.example.com"], "m2");
    store.put_sender_settings(&t, &second).await.unwrap();
    let read = store.get_sender_settings(&t).await.unwrap().unwrap();
    assert_eq!(read, second);
    assert_eq!(read.display_name, None);
    assert!(!read.allows(&Email::parse("x@a.example.com").unwrap()));
}

pub async fn tenants_never_see_each_others_sender_settings(store: &dyn Store) {
    let (a, b) = (tenant("snd-c1"), tenant("snd-c2"));
    store
        .put_sender_settings(&a, &settings(&["a.example.com"], &[], "ma"))
        .await
        .unwrap();
    assert_eq!(store.get_sender_settings(&b).await.unwrap(), None);
    store
        .put_sender_settings(&b, &settings(&["b.example.com"], &[], "mb"))
        .await
        .unwrap();
    let read_a = store.get_sender_settings(&a).await.unwrap().unwrap();
    assert_eq!(read_a.domains, ["a.example.com"]);
    let read_b = store.get_sender_settings(&b).await.unwrap().unwrap();
    assert_eq!(read_b.domains, ["b.example.com"]);
}

pub async fn sender_settings_do_not_show_up_as_divisions(store: &dyn Store) {
    let t = tenant("snd-d");
    store
        .put_sender_settings(&t, &settings(&["a.example.com"], &[], "m"))
        .await
        .unwrap();
    assert!(store.list_divisions(&t).await.unwrap().is_empty());
}
