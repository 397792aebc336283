//! The job routers behave the same behind API Gateway: an HTTP API (payload v2) event, as
//! `lambda_http` turns it into a request, reaches the right route with its auth header,
//! path and body intact — on the router of the route's job only. `load-counts` serves
//! `job_router(Job::LoadCounts, …)`: a route of another job (here a sync route) answers 404
//! there, as it would if API Gateway ever sent it the wrong request.

use std::sync::Arc;

use http_body_util::BodyExt;
use portal_core::ports::FixedClock;
use portal_embedded::sqlite::SqliteStore;
use portal_http::auth::{issue_hs256, Claims, Verifier};
use portal_http::{job_router, AppState, Job};
use time::macros::datetime;
use tower::ServiceExt;

const SECRET: &[u8] = b"an-api-gateway-test-secret-of-32+bytes";

fn event(method: &str, path: &str, token: &str, body: Option<&str>) -> lambda_http::Request {
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {token}"),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "curl/8"
            },
            "requestId": "req-1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "27/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795780800000_i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

fn token(tenant: &str) -> String {
    issue_hs256(
        SECRET,
        &Claims {
            sub: "manager-1".into(),
            tenant_id: tenant.into(),
            permissions: vec!["sync:write".into(), "invitations:read".into()],
            exp: datetime!(2026-11-28 10:00 UTC).unix_timestamp(),
        },
    )
    .expect("token")
}

fn state() -> AppState {
    AppState::new(
        Arc::new(SqliteStore::open_in_memory().expect("store")),
        Arc::new(FixedClock::new(datetime!(2026-11-27 10:00 UTC))),
        Verifier::hs256(SECRET),
    )
}

const PUT_DIVISION: &str = r#"{"name":"Oak Hills HOA","email_from":"board@oakhills.example.com"}"#;

#[tokio::test]
async fn an_api_gateway_event_reaches_its_jobs_router_with_its_token_and_body() {
    // One store behind both routers, as one table is behind both functions.
    let state = state();
    let load_counts = job_router(Job::LoadCounts, state.clone());
    let sync = job_router(Job::Sync, state);
    let t = token("acme");

    let put = event("PUT", "/v1/divisions/oak-hills", &t, Some(PUT_DIVISION));
    let resp = sync.clone().oneshot(put).await.expect("infallible");
    assert_eq!(resp.status(), 200);

    let resp = load_counts
        .clone()
        .oneshot(event("GET", "/v1/divisions", &t, None))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let divisions: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(divisions["items"][0]["division_id"], "oak-hills");
    assert_eq!(divisions["items"][0]["name"], "Oak Hills HOA");

    // Another tenant's token, through the same event path, sees nothing.
    let resp = load_counts
        .oneshot(event("GET", "/v1/divisions", &token("other"), None))
        .await
        .expect("infallible");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], br#"{"items":[],"next_cursor":null}"#);
}

#[tokio::test]
async fn a_route_of_another_job_is_not_found_on_load_counts() {
    let state = state();
    let load_counts = job_router(Job::LoadCounts, state.clone());
    let t = token("acme");

    let put = || event("PUT", "/v1/divisions/oak-hills", &t, Some(PUT_DIVISION));
    let resp = load_counts
        .clone()
        .oneshot(put())
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 404, "a sync route on load-counts' router");
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "a 404 like any other"
    );

    // Nothing was written: the division does not exist for load-counts either.
    let resp = load_counts
        .oneshot(event("GET", "/v1/divisions", &t, None))
        .await
        .expect("infallible");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], br#"{"items":[],"next_cursor":null}"#);

    // The sync router serves it.
    let resp = job_router(Job::Sync, state)
        .oneshot(put())
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
}
