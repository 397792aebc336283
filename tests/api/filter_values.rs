//! `GET /v1/divisions/filter-values`: the values the count filters take, per division and in
//! total, each with the contacts having it — checked against `POST /v1/invitations/counts`,
//! which must count exactly that many contacts for a filter on the value.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const FIELDS: [&str; 4] = [
    "account_class",
    "bill_group",
    "account_source",
    "site_source",
];

/// Two divisions: d1 with 30 accounts, d2 with 12 (the deterministic spread of
/// [`account`]: three classes, four bill groups, three sources).
async fn seeded() -> (App, String) {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.put_division(&t, "d2").await;
    app.sync(&t, &accounts("d1", 30)).await;
    app.sync(&t, &accounts("d2", 12)).await;
    (app, t)
}

async fn values(app: &App, token: &str, query: &str) -> Value {
    app.get(&format!("/v1/divisions/filter-values{query}"), token)
        .await
        .ok()
}

/// `[(value, count)]` of one field of one answer.
fn pairs(v: &Value, field: &str) -> Vec<(String, u64)> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn division_ids(v: &Value) -> Vec<&str> {
    v["divisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["division_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_value_counts_the_contacts_a_count_filtered_on_it_counts() {
    let (app, t) = seeded().await;
    let v = values(&app, &t, "").await;
    assert_eq!(
        division_ids(&v),
        ["d1", "d2"],
        "every division, in id order"
    );
    for (i, d) in ["d1", "d2"].into_iter().enumerate() {
        let division = &v["divisions"][i];
        let total = app.counts(&t, json!({"division_ids": [d]})).await["total"]
            .as_u64()
            .unwrap();
        for field in FIELDS {
            let got = pairs(division, field);
            assert!(!got.is_empty(), "{d} {field}");
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted, "{d} {field}: sorted by value");
            // Every contact has exactly one value of each field.
            assert_eq!(
                got.iter().map(|(_, n)| n).sum::<u64>(),
                total,
                "{d} {field}"
            );
            for (value, n) in got {
                let c = app
                    .counts(
                        &t,
                        json!({"division_ids": [d], "filters": {field: [value.clone()]}}),
                    )
                    .await;
                assert_eq!(c["total"].as_u64(), Some(n), "{d} {field}={value}");
            }
        }
    }
    // `all` adds the divisions up.
    for field in FIELDS {
        let mut merged = std::collections::BTreeMap::<String, u64>::new();
        for d in v["divisions"].as_array().unwrap() {
            for (value, n) in pairs(d, field) {
                *merged.entry(value).or_default() += n;
            }
        }
        let merged: Vec<(String, u64)> = merged.into_iter().collect();
        assert_eq!(pairs(&v["all"], field), merged, "all.{field}");
    }
    assert_eq!(
        pairs(&v["divisions"][0], "account_class"),
        [
            ("Commercial".to_owned(), contacts_of(30, |i| i % 3 == 1)),
            ("HOA".to_owned(), contacts_of(30, |i| i % 3 == 2)),
            ("Residential".to_owned(), contacts_of(30, |i| i % 3 == 0)),
        ]
    );
}

/// The contacts [`accounts`] gives the accounts `i < n` that `pick` keeps.
fn contacts_of(n: usize, pick: impl Fn(usize) -> bool) -> u64 {
    (0..n)
        .filter(|i| pick(*i))
        .map(|i| 1 + (i % 3) as u64)
        .sum()
}

#[tokio::test]
async fn named_divisions_answer_in_id_order_once_each() {
    let (app, t) = seeded().await;
    let both = values(&app, &t, "").await;
    let v = values(&app, &t, "?division_id=d2&division_id=d1&division_id=d2").await;
    assert_eq!(v, both);
    let d2 = values(&app, &t, "?division_id=d2").await;
    assert_eq!(division_ids(&d2), ["d2"]);
    assert_eq!(d2["divisions"][0], both["divisions"][1]);
    for field in FIELDS {
        assert_eq!(d2["all"][field], d2["divisions"][0][field], "{field}");
    }
    // An empty value names nothing.
    assert_eq!(values(&app, &t, "?division_id=").await, both);
}

#[tokio::test]
async fn values_follow_syncs_and_deletions() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let empty = values(&app, &t, "").await;
    for field in FIELDS {
        assert_eq!(empty["divisions"][0][field], json!([]), "{field}");
    }
    let mut a = account("d1", 0);
    a["class"] = "Estate".into();
    app.sync(&t, &[a.clone(), account("d1", 1)]).await;
    let v = values(&app, &t, "").await;
    assert_eq!(
        pairs(&v["divisions"][0], "account_class"),
        [("Commercial".to_owned(), 2), ("Estate".to_owned(), 1)]
    );
    a["class"] = "Commercial".into();
    app.sync(&t, &[a]).await;
    let v = values(&app, &t, "").await;
    assert_eq!(
        pairs(&v["divisions"][0], "account_class"),
        [("Commercial".to_owned(), 3)],
        "Estate left with the last account of that class"
    );
    let r = app.delete("/v1/accounts/d1-a1", &t).await;
    assert!(r.status.is_success(), "{}", r.text());
    let v = values(&app, &t, "").await;
    assert_eq!(
        pairs(&v["divisions"][0], "account_class"),
        [("Commercial".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_divisions_and_values() {
    let (app, _) = seeded().await;
    let other = admin("t2");
    assert_eq!(
        values(&app, &other, "").await,
        json!({"divisions": [], "all": {
            "account_class": [], "bill_group": [], "account_source": [], "site_source": []
        }})
    );
    // Another tenant's division is as missing as one that does not exist.
    for query in ["?division_id=d1", "?division_id=nowhere"] {
        let r = app
            .get(&format!("/v1/divisions/filter-values{query}"), &other)
            .await;
        let detail = r.problem(StatusCode::NOT_FOUND);
        assert!(detail.contains("division"), "{detail}");
    }
    app.put_division(&other, "d1").await;
    let v = values(&app, &other, "?division_id=d1").await;
    assert_eq!(v["divisions"][0]["account_class"], json!([]));
}

#[tokio::test]
async fn bad_queries_are_4xx_problems() {
    let (app, t) = seeded().await;
    let get = |q: &str| {
        let uri = format!("/v1/divisions/filter-values{q}");
        let (app, t) = (&app, &t);
        async move { app.get(&uri, t).await }
    };
    let detail = get("?division=d1").await.problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("division_id"), "{detail}");
    for q in [
        "?division_id=a,b",
        "?division_id=has%23hash",
        "?division_id=%FF",
    ] {
        let detail = get(q).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains("division_id"), "{q}: {detail}");
    }
    let many: String = (0..501).map(|i| format!("&division_id=d{i}")).collect();
    let detail = get(&format!("?{}", &many[1..]))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("500"), "{detail}");
}

#[tokio::test]
async fn reading_values_needs_invitations_read_only() {
    let (app, _) = seeded().await;
    values(&app, &token("t1", &["invitations:read"]), "").await;
    let r = app
        .get(
            "/v1/divisions/filter-values",
            &token("t1", &["sync:write", "invitations:send"]),
        )
        .await;
    let detail = r.problem(StatusCode::FORBIDDEN);
    assert!(detail.contains("invitations:read"), "{detail}");
}

#[tokio::test]
async fn filter_values_is_this_route_and_not_a_division_id() {
    let app = app();
    let t = admin("t1");
    let r = app
        .put(
            "/v1/divisions/filter-values",
            &t,
            &json!({"name": "D", "email_from": "hoa@example.com"}),
        )
        .await;
    r.problem(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        app.get("/v1/divisions", &t).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
}
