//! Sync: divisions, JSON and NDJSON account upserts, deletions.

use axum::http::{Method, StatusCode};
use portal_core::domain::{ContactId, PortalStatus, TenantId};
use portal_core::ports::ContactStateStore;
use serde_json::{json, Value};

use crate::helpers::*;

fn ndjson(accounts: &[Value]) -> String {
    accounts
        .iter()
        .map(|a| a.to_string() + "\n")
        .collect::<String>()
}

#[tokio::test]
async fn a_division_put_is_returned_and_listed() {
    let app = app();
    let t = admin("t1");
    let r = app
        .put(
            "/v1/divisions/north",
            &t,
            &json!({"name": "North HOA", "email_from": "north@example.com"}),
        )
        .await
        .ok();
    assert_eq!(
        r,
        json!({"division_id": "north", "name": "North HOA",
               "email_from": "north@example.com", "last_bulk_sent_at": null,
               "first_synced_at": "2026-11-02T12:00:00Z", "sender_status": "no_settings"})
    );
    // A later sync keeps when the division was first synced.
    app.clock.advance(time::Duration::minutes(30));
    let again = app
        .put(
            "/v1/divisions/north",
            &t,
            &json!({"name": "North", "email_from": "north@example.com"}),
        )
        .await
        .ok();
    assert_eq!(again["first_synced_at"], "2026-11-02T12:00:00Z");
    app.put_division(&t, "east").await;
    let list = app.get("/v1/divisions", &t).await.ok();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Division east", "North"]);
}

#[tokio::test]
async fn a_division_with_a_bad_sender_address_or_id_is_refused() {
    let app = app();
    let t = admin("t1");
    let d = app
        .put(
            "/v1/divisions/north",
            &t,
            &json!({"name": "North", "email_from": "not-an-address"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("email_from"), "{d}");
    let d = app
        .put(
            "/v1/divisions/a%23b",
            &t,
            &json!({"name": "North", "email_from": "a@b.com"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("division_id"), "{d}");
}

#[tokio::test]
async fn ten_thousand_accounts_sync_in_one_json_request() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "big").await;
    let batch = accounts("big", 10_000);
    let report = app.sync(&t, &batch).await;
    assert_eq!(report["accounts"], 10_000);
    assert_eq!(report["contacts"], contacts_in(10_000));
    assert_eq!(report["contacts_removed"], 0);
    let counts = app.counts(&t, json!({"division_ids": ["big"]})).await;
    assert_eq!(counts["total"], contacts_in(10_000));
}

#[tokio::test]
async fn ten_thousand_accounts_sync_in_one_ndjson_request() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "big").await;
    let r = app
        .send(request(
            Method::POST,
            "/v1/sync/accounts",
            Some(&t),
            Some("application/x-ndjson"),
            ndjson(&accounts("big", 10_000)),
        ))
        .await
        .ok();
    assert_eq!(r["accounts"], 10_000);
    let counts = app.counts(&t, json!({})).await;
    assert_eq!(counts["total"], contacts_in(10_000));
}

#[tokio::test]
async fn syncing_the_same_body_twice_changes_nothing() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let batch = accounts("d1", 50);
    app.sync(&t, &batch).await;
    let before = app.counts(&t, json!({})).await;
    let again = app.sync(&t, &batch).await;
    assert_eq!(again["contacts_removed"], 0);
    assert_eq!(app.counts(&t, json!({})).await, before);
}

#[tokio::test]
async fn a_resync_keeps_portal_status_and_removes_contacts_no_longer_listed() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut batch = accounts("d1", 3);
    app.sync(&t, &batch).await;
    let tenant = TenantId::parse("t1").unwrap();
    let kept = ContactId::parse("d1-c2-0").unwrap();
    assert!(app
        .store
        .set_portal_status(&tenant, &kept, PortalStatus::Accepted)
        .await
        .unwrap());
    // Account 2 had three contacts; keep only the first.
    batch[2]["contacts"] = json!([batch[2]["contacts"][0].clone()]);
    let report = app.sync(&t, &batch).await;
    assert_eq!(report["contacts_removed"], 2);
    let counts = app.counts(&t, json!({})).await;
    assert_eq!(counts["accepted"], 1);
    assert_eq!(counts["total"], contacts_in(3) - 2);
}

#[tokio::test]
async fn a_sync_into_an_unknown_division_is_404_and_writes_nothing() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut batch = accounts("d1", 5);
    batch.push(account("nowhere", 0));
    let d = app
        .post("/v1/sync/accounts", &t, &Value::from(batch))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(d.contains("nowhere"), "{d}");
    assert_eq!(app.counts(&t, json!({})).await["total"], 0);
}

#[tokio::test]
async fn a_bad_email_is_422_naming_the_record_index_and_field_and_nothing_is_written() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut batch = accounts("d1", 20);
    batch[17]["contacts"][0]["email"] = "not-an-address".into();
    let r = app.post("/v1/sync/accounts", &t, &Value::from(batch)).await;
    let d = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("record 17"), "{d}");
    assert!(d.contains("contacts[0].email"), "{d}");
    assert_eq!(r.json()["record"], 17);
    assert_eq!(r.json()["field"], "contacts[0].email");
    assert_eq!(app.counts(&t, json!({})).await["total"], 0);
}

#[tokio::test]
async fn a_bad_ndjson_line_is_422_naming_the_line_and_nothing_is_written() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut batch = accounts("d1", 10);
    batch[4]["number"] = "".into();
    let r = app
        .send(request(
            Method::POST,
            "/v1/sync/accounts",
            Some(&t),
            Some("application/x-ndjson"),
            ndjson(&batch),
        ))
        .await;
    let d = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("line 5") && d.contains("number"), "{d}");
    assert_eq!(r.json()["line"], 5);
    assert_eq!(app.counts(&t, json!({})).await["total"], 0);
}

#[tokio::test]
async fn malformed_ndjson_is_400_naming_the_line() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let body = format!("{}\n{{\"account_id\": \n", account("d1", 0));
    let d = app
        .send(request(
            Method::POST,
            "/v1/sync/accounts",
            Some(&t),
            Some("application/x-ndjson"),
            body,
        ))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(d.contains("line 2"), "{d}");
}

#[tokio::test]
async fn unknown_fields_in_an_account_or_contact_are_422() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut a = account("d1", 0);
    a["colour"] = "blue".into();
    let d = app
        .post("/v1/sync/accounts", &t, &json!([a]))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("colour") && d.contains("record 0"), "{d}");
    let mut a = account("d1", 0);
    a["contacts"][0]["mail"] = "x@y.com".into();
    let d = app
        .post("/v1/sync/accounts", &t, &json!([a]))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("mail"), "{d}");
}

#[tokio::test]
async fn a_contact_without_an_email_is_counted_as_no_email() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut a = account("d1", 0);
    a["contacts"] = json!([
        {"contact_id": "x1", "name": "No Mail", "billing": true},
        {"contact_id": "x2", "name": "Null Mail", "email": null, "phone": "", "billing": true},
    ]);
    app.sync(&t, &[a]).await;
    let c = app.counts(&t, json!({})).await;
    assert_eq!(c["total"], 2);
    assert_eq!(c["no_email"], 2);
}

#[tokio::test]
async fn an_account_can_be_deleted_once() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 4)).await;
    let r = app.delete("/v1/accounts/d1-a1", &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(app.counts(&t, json!({})).await["total"], contacts_in(4) - 2);
    app.delete("/v1/accounts/d1-a1", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sync_body_of_the_wrong_media_type_is_415() {
    let app = app();
    let t = admin("t1");
    app.send(request(
        Method::POST,
        "/v1/sync/accounts",
        Some(&t),
        Some("text/plain"),
        "[]",
    ))
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_sync_body_over_64_mib_is_413() {
    let app = app();
    let t = admin("t1");
    let body = vec![b' '; 64 * 1024 * 1024 + 1];
    let d = app
        .send(request(
            Method::POST,
            "/v1/sync/accounts",
            Some(&t),
            Some("application/json"),
            body,
        ))
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(d.contains("64 MiB"), "{d}");
}

#[tokio::test]
async fn divisions_are_listed_a_page_at_a_time() {
    let app = app();
    let t = admin("t1");
    for id in ["d3", "d1", "d2"] {
        app.put_division(&t, id).await;
    }
    app.put_division(&admin("t2"), "d0").await;
    let first = app.get("/v1/divisions?limit=2", &t).await.ok();
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["division_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["d1", "d2"]);
    assert_eq!(first["items"][0]["sender_status"], "allowed");
    let cursor = first["next_cursor"].as_str().unwrap();
    let last = app
        .get(&format!("/v1/divisions?limit=2&cursor={cursor}"), &t)
        .await
        .ok();
    assert_eq!(ids(&last), ["d3"]);
    assert_eq!(last["next_cursor"], Value::Null);

    for bad in [
        "/v1/divisions?limit=0",
        "/v1/divisions?limit=-1",
        "/v1/divisions?cursor=dGVtcGxhdGU",
        "/v1/divisions?division_id=d1",
    ] {
        app.get(bad, &t).await.problem(StatusCode::BAD_REQUEST);
    }
}
