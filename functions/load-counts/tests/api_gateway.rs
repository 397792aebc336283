//! The router behaves the same behind API Gateway: an HTTP API (payload v2) event, as
//! `lambda_http` turns it into a request, reaches the right route with its auth header,
//! path and body intact.

use std::sync::Arc;

use http_body_util::BodyExt;
use portal_core::adapters::sqlite::SqliteStore;
use portal_core::http::auth::{issue_hs256, Claims, Verifier};
use portal_core::http::{router, AppState};
use portal_core::ports::FixedClock;
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

#[tokio::test]
async fn an_api_gateway_event_reaches_the_routes_with_its_token_and_body() {
    let state = AppState::new(
        Arc::new(SqliteStore::open_in_memory().expect("store")),
        Arc::new(FixedClock::new(datetime!(2026-11-27 10:00 UTC))),
        Verifier::hs256(SECRET),
    );
    let app = router(state);
    let t = token("acme");

    let put = event(
        "PUT",
        "/v1/divisions/oak-hills",
        &t,
        Some(r#"{"name":"Oak Hills HOA","email_from":"board@oakhills.example.com"}"#),
    );
    let resp = app.clone().oneshot(put).await.expect("infallible");
    assert_eq!(resp.status(), 200);

    let resp = app
        .clone()
        .oneshot(event("GET", "/v1/divisions", &t, None))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let divisions: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(divisions[0]["division_id"], "oak-hills");
    assert_eq!(divisions[0]["name"], "Oak Hills HOA");

    // Another tenant's token, through the same event path, sees nothing.
    let resp = app
        .oneshot(event("GET", "/v1/divisions", &token("other"), None))
        .await
        .expect("infallible");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"[]");
}
