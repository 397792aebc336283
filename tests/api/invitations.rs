//! Count loading, recipient lists, pagination and CSV export, checked against each other.

use std::collections::HashSet;

use axum::http::{header, Method, StatusCode};
use portal_core::domain::{ContactId, Email, PortalStatus, TenantId};
use portal_core::ports::{ContactStateStore, SuppressionReason, SuppressionStore};
use serde_json::{json, Value};

use crate::helpers::*;

/// Two divisions (120 + 45 accounts) with a mix of portal states: some accepted, some
/// pending (invited two days ago), some invited an hour ago (held by the 24-hour rule), one
/// suppressed address. Returns the admin token.
async fn seeded() -> (App, String) {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.put_division(&t, "d2").await;
    app.sync(&t, &accounts("d1", 120)).await;
    app.sync(&t, &accounts("d2", 45)).await;
    let tenant = TenantId::parse("t1").unwrap();
    for i in (0..120).step_by(5) {
        let id = ContactId::parse(format!("d1-c{i}-0")).unwrap();
        app.store
            .set_portal_status(&tenant, &id, PortalStatus::Accepted)
            .await
            .unwrap();
    }
    for i in (1..120).step_by(6) {
        let id = ContactId::parse(format!("d1-c{i}-0")).unwrap();
        app.store
            .record_invited(&tenant, &id, NOW - time::Duration::days(2))
            .await
            .unwrap();
    }
    for i in (2..45).step_by(4) {
        let id = ContactId::parse(format!("d2-c{i}-0")).unwrap();
        app.store
            .record_invited(&tenant, &id, NOW - time::Duration::hours(1))
            .await
            .unwrap();
    }
    app.store
        .suppress(
            &tenant,
            &Email::parse("person4.0@d1.example.com").unwrap(),
            SuppressionReason::Bounced,
            NOW,
        )
        .await
        .unwrap();
    (app, t)
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[tokio::test]
async fn counts_add_up_and_match_the_seeded_data() {
    let (app, t) = seeded().await;
    let c = app.counts(&t, json!({})).await;
    assert_eq!(n(&c, "total"), contacts_in(120) + contacts_in(45));
    assert_eq!(
        n(&c, "total"),
        n(&c, "accepted") + n(&c, "pending") + n(&c, "not_sent")
    );
    assert_eq!(n(&c, "accepted"), 24);
    assert!(n(&c, "pending") > 0 && n(&c, "held_24h") == 0, "{c}");
    assert_eq!(n(&c, "suppressed"), 1);
    // limit_to_uninvited: only not_sent contacts are targeted.
    assert_eq!(
        n(&c, "not_sent"),
        n(&c, "eligible") + n(&c, "held_24h") + n(&c, "suppressed") + n(&c, "no_email")
    );
    // Without it, pending contacts are targeted too, and the recent ones are held.
    let all = app.counts(&t, json!({"limit_to_uninvited": false})).await;
    assert_eq!(
        n(&all, "not_sent") + n(&all, "pending"),
        n(&all, "eligible") + n(&all, "held_24h") + n(&all, "suppressed") + n(&all, "no_email")
    );
    assert!(n(&all, "held_24h") > 0, "{all}");
}

#[tokio::test]
async fn the_24_hour_hold_ends_when_the_clock_passes_it() {
    let (app, _) = seeded().await;
    // A token that outlives the clock's jumps.
    let mut c = claims("t1", ALL_PERMISSIONS);
    c.exp = (NOW + time::Duration::days(3)).unix_timestamp();
    let t = portal_http::auth::issue_hs256(SECRET, &c).unwrap();
    let body = json!({"limit_to_uninvited": false});
    let before = app.counts(&t, body.clone()).await;
    // Invited an hour before NOW: still held 22h59m later, free exactly 24h after sending.
    app.clock
        .advance(time::Duration::hours(22) + time::Duration::minutes(59));
    assert_eq!(app.counts(&t, body.clone()).await, before);
    app.clock.advance(time::Duration::minutes(1));
    let after = app.counts(&t, body).await;
    assert_eq!(n(&after, "held_24h"), 0);
    assert_eq!(
        n(&after, "eligible"),
        n(&before, "eligible") + n(&before, "held_24h")
    );
}

#[tokio::test]
async fn counts_of_each_division_add_up_to_the_counts_of_both() {
    let (app, t) = seeded().await;
    let both = app.counts(&t, json!({"division_ids": ["d1", "d2"]})).await;
    let d1 = app.counts(&t, json!({"division_ids": ["d1"]})).await;
    let d2 = app.counts(&t, json!({"division_ids": ["d2"]})).await;
    assert_eq!(app.counts(&t, json!({})).await, both);
    for k in [
        "total",
        "active_services",
        "accepted",
        "pending",
        "not_sent",
        "eligible",
        "held_24h",
        "suppressed",
        "no_email",
    ] {
        assert_eq!(n(&both, k), n(&d1, k) + n(&d2, k), "{k}");
    }
}

/// Each filter alone, and a few together.
fn filter_cases() -> Vec<Value> {
    vec![
        json!({}),
        json!({"account_class": ["Residential"]}),
        json!({"account_class": ["Residential", "HOA"]}),
        json!({"bill_group": ["B"]}),
        json!({"account_source": ["Import"]}),
        json!({"site_source": ["Office"]}),
        json!({"active_services": true}),
        json!({"balance_due": true}),
        json!({"billing_contacts_only": true}),
        json!({"without_autopay": true}),
        json!({"account_class": ["Commercial"], "balance_due": true, "billing_contacts_only": true}),
        json!({"account_class": ["Nope"]}),
    ]
}

#[tokio::test]
async fn each_filter_narrows_the_counts_consistently_with_the_lists() {
    let (app, t) = seeded().await;
    let unfiltered = app.counts(&t, json!({})).await;
    for filters in filter_cases() {
        let body = json!({"filters": filters});
        let c = app.counts(&t, body.clone()).await;
        assert!(n(&c, "total") <= n(&unfiltered, "total"), "{filters}");
        assert_eq!(
            n(&c, "total"),
            n(&c, "accepted") + n(&c, "pending") + n(&c, "not_sent"),
            "{filters}"
        );
        for group in [
            "all",
            "active_services",
            "accepted",
            "pending",
            "not_sent",
            "eligible",
            "held_24h",
            "suppressed",
            "no_email",
        ] {
            let mut list_body = body.clone();
            list_body["group"] = group.into();
            let rows = app.list_all(&t, list_body, 500).await;
            let key = if group == "all" { "total" } else { group };
            assert_eq!(rows.len() as u64, n(&c, key), "{filters} {group}");
        }
    }
}

#[tokio::test]
async fn list_rows_carry_the_documented_fields() {
    let (app, t) = seeded().await;
    let page = app
        .post(
            "/v1/invitations/recipients",
            &t,
            &json!({"group": "pending", "limit": 3}),
        )
        .await
        .ok();
    let row = &page["items"][0];
    let mut keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "account_name",
            "account_number",
            "contact_id",
            "contact_name",
            "email",
            "has_autopay",
            "last_invite_sent",
            "last_login",
            "portal_status"
        ]
    );
    assert_eq!(row["portal_status"], "pending");
    // RFC 3339.
    let sent = row["last_invite_sent"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(sent, &time::format_description::well_known::Rfc3339).is_ok(),
        "{sent}"
    );
}

#[tokio::test]
async fn paging_returns_every_contact_exactly_once() {
    let (app, t) = seeded().await;
    let total = n(&app.counts(&t, json!({})).await, "total");
    for limit in [1, 7, 500] {
        if limit == 1 && total > 400 {
            // One by one is slow in debug builds; 7 exercises the same boundaries.
            continue;
        }
        let rows = app.list_all(&t, json!({"group": "all"}), limit).await;
        let ids: HashSet<&str> = rows
            .iter()
            .map(|r| r["contact_id"].as_str().unwrap())
            .collect();
        assert_eq!(rows.len() as u64, total, "limit {limit}");
        assert_eq!(ids.len() as u64, total, "limit {limit}: duplicates");
    }
}

#[tokio::test]
async fn the_default_page_is_at_most_100_rows() {
    let (app, t) = seeded().await;
    let page = app
        .post("/v1/invitations/recipients", &t, &json!({}))
        .await
        .ok();
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn search_finds_contacts_by_email_name_and_account() {
    let (app, t) = seeded().await;
    for (q, expect) in [
        ("PERSON7.1@D1", "d1-c7-1"),
        ("person 44 2", "d1-c44-2"),
        ("10044", "d1-c44-0"),
        ("account 44 of d2", "d2-c44-0"),
    ] {
        let rows = app.list_all(&t, json!({"group": "all", "q": q}), 500).await;
        assert!(
            rows.iter().any(|r| r["contact_id"] == expect),
            "{q}: {rows:?}"
        );
        assert!(rows.len() < 20, "{q} matched {}", rows.len());
    }
}

fn csv_request(token: &str, body: &Value) -> axum::http::Request<axum::body::Body> {
    let mut r = request(
        Method::POST,
        "/v1/invitations/recipients",
        Some(token),
        Some("application/json"),
        body.to_string(),
    );
    r.headers_mut()
        .insert(header::ACCEPT, "text/csv".parse().unwrap());
    r
}

#[tokio::test]
async fn csv_export_has_a_header_and_one_row_per_contact_of_the_group() {
    let (app, t) = seeded().await;
    for group in ["all", "accepted", "not_sent", "eligible", "no_email"] {
        let body = json!({"group": group, "limit": 3});
        let count = app.counts(&t, json!({})).await;
        let r = app.send(csv_request(&t, &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(r.content_type().starts_with("text/csv"));
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "contact_id,email,contact_name,account_number,account_name,portal_status,\
             last_invite_sent,last_login,has_autopay"
        );
        let key = if group == "all" { "total" } else { group };
        assert_eq!(lines.len() as u64 - 1, n(&count, key), "{group}");
        let ids: HashSet<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(ids.len(), lines.len() - 1, "{group}: duplicate rows");
    }
}

#[tokio::test]
async fn csv_cells_that_look_like_formulas_are_defused() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let mut a = account("d1", 1);
    a["name"] = "=HYPERLINK(\"http://evil\",\"x\")".into();
    a["contacts"][0]["name"] = "+cmd, \"quoted\"".into();
    app.sync(&t, &[a]).await;
    let r = app.send(csv_request(&t, &json!({"group": "all"}))).await;
    let text = r.text();
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
        "{text}"
    );
    assert!(text.contains("\"'+cmd, \"\"quoted\"\"\""), "{text}");
}

#[tokio::test]
async fn csv_export_of_an_unknown_division_is_a_404_problem() {
    let (app, t) = seeded().await;
    let r = app
        .send(csv_request(&t, &json!({"division_ids": ["zzz"]})))
        .await;
    r.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn csv_export_streams_a_group_larger_than_one_store_page() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 700)).await;
    let total = contacts_in(700);
    assert!(total > 2 * 500);
    let r = app.send(csv_request(&t, &json!({"group": "all"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    let ids: HashSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(text.lines().count() as u64, total + 1);
    assert_eq!(ids.len() as u64, total);
}

#[tokio::test]
async fn a_search_that_matches_nothing_reads_a_bounded_page_and_says_where_to_go_on() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    // 1,500 accounts: 3,000 contacts, more than one page may examine.
    for chunk in accounts("d1", 1500).chunks(500) {
        app.sync(&t, chunk).await;
    }
    let total = contacts_in(1500);
    assert!(total > u64::from(portal_core::ports::MAX_EXAMINED));
    let body = json!({"division_ids": ["d1"], "group": "all", "q": "nobody", "limit": 50});
    let first = app.post("/v1/invitations/recipients", &t, &body).await.ok();
    assert_eq!(first["items"], json!([]));
    let cursor = first["next_cursor"].as_str().expect("a cursor to go on");
    let mut next = body.clone();
    next["cursor"] = cursor.into();
    let last = app.post("/v1/invitations/recipients", &t, &next).await.ok();
    assert_eq!(last, json!({"items": [], "next_cursor": null}));
    // A search that matches, past the first 2,000 contacts, is found by following cursors.
    let needle = json!({"division_ids": ["d1"], "group": "all", "q": "person1499.0@"});
    let found = app.list_all(&t, needle, 50).await;
    assert_eq!(found.len(), 1, "{found:?}");
    // Without a search every page is full.
    let page = app
        .post(
            "/v1/invitations/recipients",
            &t,
            &json!({"division_ids": ["d1"], "limit": 500}),
        )
        .await
        .ok();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(500));
}
