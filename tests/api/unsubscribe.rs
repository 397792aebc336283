//! The public unsubscribe link: GET shows and changes nothing, POST (RFC 8058 one-click)
//! suppresses the address in the token's tenant only, forged tokens are refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{Email, TenantId};
use portal_core::ports::{FixedClock, SuppressionStore};
use portal_embedded::sqlite::SqliteStore;
use portal_http::auth::Verifier;
use portal_http::{router, AppState};
use serde_json::{json, Value};

use crate::helpers::*;

const UNSUBSCRIBE_SECRET: &[u8] = b"api-tests-unsubscribe-secret-0123456789";

/// The usual test app, with an unsubscribe signer.
fn app_with_unsubscribe() -> App {
    let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory store"));
    let clock = Arc::new(FixedClock::new(NOW));
    let state = AppState::new(store.clone(), clock.clone(), Verifier::hs256(SECRET))
        .with_unsubscribe(signer());
    App {
        router: router(state),
        store,
        clock,
    }
}

fn signer() -> UnsubscribeSigner {
    UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).unwrap()
}

fn link_token(tenant: &str, email: &str) -> String {
    signer().sign(
        &TenantId::parse(tenant).unwrap(),
        &Email::parse(email).unwrap(),
        "inv-1",
        NOW,
    )
}

/// One division of 10 accounts in `tenant`; returns the admin token.
async fn seeded(app: &App, tenant: &str) -> String {
    let t = admin(tenant);
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 10)).await;
    t
}

async fn get(app: &App, token: &str) -> Reply {
    app.send(request(
        Method::GET,
        &format!("/v1/unsubscribe?token={token}"),
        None,
        None,
        Body::empty(),
    ))
    .await
}

async fn one_click(app: &App, token: &str, body: &'static str) -> Reply {
    app.send(request(
        Method::POST,
        &format!("/v1/unsubscribe?token={token}"),
        None,
        Some("application/x-www-form-urlencoded"),
        body,
    ))
    .await
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

const ADDRESS: &str = "person0.0@d1.example.com";

#[tokio::test]
async fn opening_the_link_shows_a_page_with_a_button_and_changes_nothing() {
    let app = app_with_unsubscribe();
    let t = seeded(&app, "t1").await;
    let before = app.counts(&t, json!({})).await;

    let r = get(&app, &link_token("t1", ADDRESS)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.content_type().starts_with("text/html"),
        "{}",
        r.content_type()
    );
    let page = r.text();
    assert!(page.contains("p***@d1.example.com"), "{page}");
    assert!(
        !page.contains(ADDRESS),
        "the full address is not shown: {page}"
    );
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(
        page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
        "{page}"
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer");

    assert_eq!(app.counts(&t, json!({})).await, before);
    let tenant = TenantId::parse("t1").unwrap();
    let email = Email::parse(ADDRESS).unwrap();
    assert!(!app.store.is_suppressed(&tenant, &email).await.unwrap());
}

#[tokio::test]
async fn one_click_post_suppresses_the_address_and_the_counts_move() {
    let app = app_with_unsubscribe();
    let t = seeded(&app, "t1").await;
    let before = app.counts(&t, json!({})).await;

    let token = link_token("t1", "Person0.0@D1.example.com");
    let r = one_click(&app, &token, "List-Unsubscribe=One-Click").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.text().contains("unsubscribed"), "{}", r.text());

    let after = app.counts(&t, json!({})).await;
    assert_eq!(n(&after, "suppressed"), n(&before, "suppressed") + 1);
    assert_eq!(n(&after, "eligible"), n(&before, "eligible") - 1);

    // Idempotent: again, and from the page's form with an empty body.
    let again = one_click(&app, &token, "").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(app.counts(&t, json!({})).await, after);
}

#[tokio::test]
async fn a_tampered_or_missing_token_is_refused_and_changes_nothing() {
    let app = app_with_unsubscribe();
    let t = seeded(&app, "t1").await;
    let before = app.counts(&t, json!({})).await;
    let good = link_token("t1", ADDRESS);
    let (payload, sig) = good.split_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged_by_other_secret = UnsubscribeSigner::new([9u8; 40]).unwrap().sign(
        &TenantId::parse("t1").unwrap(),
        &Email::parse(ADDRESS).unwrap(),
        "",
        NOW,
    );
    for bad in [
        format!("{payload}.{flipped}{}", &sig[1..]),
        format!("{payload}x.{sig}"),
        forged_by_other_secret,
        "garbage".to_owned(),
        String::new(),
    ] {
        one_click(&app, &bad, "List-Unsubscribe=One-Click")
            .await
            .problem(StatusCode::BAD_REQUEST);
        get(&app, &bad).await.problem(StatusCode::BAD_REQUEST);
    }
    let no_token = app
        .send(request(
            Method::POST,
            "/v1/unsubscribe",
            None,
            None,
            Body::empty(),
        ))
        .await;
    no_token.problem(StatusCode::BAD_REQUEST);
    assert_eq!(app.counts(&t, json!({})).await, before);
}

#[tokio::test]
async fn a_link_of_one_tenant_never_suppresses_in_another() {
    let app = app_with_unsubscribe();
    let t1 = seeded(&app, "t1").await;
    let t2 = seeded(&app, "t2").await;
    let before_t2 = app.counts(&t2, json!({})).await;

    // Both tenants know the same address; the link is t1's.
    let r = one_click(
        &app,
        &link_token("t1", ADDRESS),
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    assert_eq!(app.counts(&t2, json!({})).await, before_t2);
    let email = Email::parse(ADDRESS).unwrap();
    assert!(app
        .store
        .is_suppressed(&TenantId::parse("t1").unwrap(), &email)
        .await
        .unwrap());
    assert!(!app
        .store
        .is_suppressed(&TenantId::parse("t2").unwrap(), &email)
        .await
        .unwrap());
    assert_eq!(n(&app.counts(&t1, json!({})).await, "suppressed"), 1);
}

#[tokio::test]
async fn a_server_without_an_unsubscribe_secret_fails_loudly_not_silently() {
    let app = app();
    let r = one_click(
        &app,
        &link_token("t1", ADDRESS),
        "List-Unsubscribe=One-Click",
    )
    .await;
    r.problem(StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn the_public_routes_are_served_and_are_exactly_the_ones_the_spec_leaves_without_auth() {
    use portal_http::{PUBLIC_ROUTES, ROUTES};
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../openapi.yaml")).expect("openapi.yaml parses");
    let spec = serde_json::to_value(yaml).unwrap();
    let mut in_spec = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("security") == Some(&json!([])) {
                in_spec.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    in_spec.sort();
    let mut public: Vec<(String, String)> = PUBLIC_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    public.sort();
    assert_eq!(in_spec, public);
    assert!(PUBLIC_ROUTES
        .iter()
        .all(|&(m, p)| ROUTES.iter().any(|&(_, rm, rp)| (rm, rp) == (m, p))));
}
