//! Authentication (401), permissions (403) and tenant isolation.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portal_http::auth::{issue_hs256, Verifier};
use portal_http::{PUBLIC_ROUTES, ROUTES};
use serde_json::{json, Value};

use crate::helpers::*;

/// The required permission of each route.
fn permission_of(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("GET", "/v1/divisions") | ("GET", "/v1/divisions/filter-values") => "invitations:read",
        ("GET", "/v1/templates") | ("GET", "/v1/templates/{template_id}") => "invitations:read",
        ("PUT", "/v1/templates/{template_id}") | ("DELETE", "/v1/templates/{template_id}") => {
            "settings:manage"
        }
        ("POST", "/v1/invitations/preview") => "invitations:read",
        ("GET", "/v1/settings/senders") => "invitations:read",
        ("PUT", "/v1/settings/senders") => "settings:manage",
        ("POST", "/v1/campaigns") | ("POST", "/v1/invitations/individual") => "invitations:send",
        ("GET", "/v1/campaigns/{campaign_id}")
        | ("GET", "/v1/campaigns")
        | ("POST", "/v1/campaigns/{campaign_id}/recipients") => "invitations:read",
        ("POST", "/v1/invitations/counts") | ("POST", "/v1/invitations/recipients") => {
            "invitations:read"
        }
        (_, p) if p.starts_with("/v1/registration-requests") || p.ends_with("/portal-key") => {
            "registrations:manage"
        }
        (_, p) if p.starts_with("/v1/recurring") => "settings:manage",
        _ => "sync:write",
    }
}

/// Every route but the public ones (see `unsubscribe.rs` for those).
fn protected_routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES
        .iter()
        .map(|&(_, m, p)| (m, p))
        .filter(|r| !PUBLIC_ROUTES.contains(r))
}

fn concrete(path: &str) -> String {
    path.replace("{division_id}", "d1")
        .replace("{account_id}", "a1")
        .replace("{template_id}", "tpl1")
        .replace("{campaign_id}", "0123456789abcdef0123456789abcdef")
        .replace("{request_id}", "0123456789abcdef0123456789abcdef")
        .replace("{recurring_id}", "weekly")
}

fn call(method: &str, path: &str, token: Option<&str>) -> axum::http::Request<Body> {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let body = match method {
        "PUT" => json!({"name": "D", "email_from": "a@b.com"}).to_string(),
        "POST" if path == "/v1/sync/accounts" => "[]".to_owned(),
        "POST" => "{}".to_owned(),
        _ => String::new(),
    };
    request(m, &concrete(path), token, Some("application/json"), body)
}

#[tokio::test]
async fn every_route_refuses_a_request_without_a_token_with_401_and_www_authenticate() {
    let app = app();
    for (method, path) in protected_routes() {
        let r = app.send(call(method, path, None)).await;
        let detail = r.problem(StatusCode::UNAUTHORIZED);
        assert!(detail.contains("Bearer"), "{method} {path}: {detail}");
        assert_eq!(
            r.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = app();
    let forged = issue_hs256(
        b"not-the-server-secret-not-the-secret",
        &claims("t1", ALL_PERMISSIONS),
    )
    .unwrap();
    app.get("/v1/divisions", &forged)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn garbage_and_non_bearer_authorization_headers_are_refused() {
    let app = app();
    app.get("/v1/divisions", "not.a.jwt")
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let r = app
        .send(
            axum::http::Request::get("/v1/divisions")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    r.problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_token_is_refused_and_says_so() {
    let app = app();
    let mut c = claims("t1", ALL_PERMISSIONS);
    c.exp = NOW.unix_timestamp() - 3600;
    let expired = issue_hs256(SECRET, &c).unwrap();
    let detail = app
        .get("/v1/divisions", &expired)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("expired"), "{detail}");
}

#[tokio::test]
async fn a_token_expires_when_the_clock_passes_its_expiry() {
    let app = app();
    let t = token("t1", &["invitations:read"]);
    app.get("/v1/divisions", &t).await.ok();
    app.clock.advance(time::Duration::hours(2));
    app.get("/v1/divisions", &t)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_route_refuses_a_token_missing_its_permission_with_403_naming_it() {
    let app = app();
    for (method, path) in protected_routes() {
        let needed = permission_of(method, path);
        let others: Vec<&str> = ALL_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| *p != needed)
            .collect();
        let t = token("t1", &others);
        let r = app.send(call(method, path, Some(&t))).await;
        let detail = r.problem(StatusCode::FORBIDDEN);
        assert!(detail.contains(needed), "{method} {path}: {detail}");
        assert_eq!(r.json()["permission"], needed);
    }
}

#[tokio::test]
async fn the_permission_check_comes_before_the_body_is_read() {
    let app = app();
    let t = token("t1", &["invitations:read"]);
    let r = app
        .send(request(
            Method::POST,
            "/v1/sync/accounts",
            Some(&t),
            Some("application/json"),
            "{not json",
        ))
        .await;
    r.problem(StatusCode::FORBIDDEN);
}

/// Tenant A with two divisions of data; returns the number of contacts.
async fn seed_tenant_a(app: &App) -> u64 {
    let a = admin("tenant-a");
    app.put_division(&a, "d1").await;
    app.put_division(&a, "d2").await;
    app.sync(&a, &accounts("d1", 30)).await;
    app.sync(&a, &accounts("d2", 12)).await;
    contacts_in(30) + contacts_in(12)
}

#[tokio::test]
async fn another_tenant_sees_no_divisions_and_counts_nothing() {
    let app = app();
    let total = seed_tenant_a(&app).await;
    let a = admin("tenant-a");
    let b = admin("tenant-b");
    assert_eq!(app.counts(&a, json!({})).await["total"], total);
    assert_eq!(
        app.get("/v1/divisions", &b).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
    let counts = app.counts(&b, json!({})).await;
    assert_eq!(counts["total"], 0, "{counts}");
    assert!(app
        .list_all(&b, json!({"group": "all"}), 500)
        .await
        .is_empty());
}

#[tokio::test]
async fn another_tenant_naming_a_division_gets_404_as_if_it_did_not_exist() {
    let app = app();
    seed_tenant_a(&app).await;
    let b = admin("tenant-b");
    let body = json!({"division_ids": ["d1"]});
    app.post("/v1/invitations/counts", &b, &body)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post("/v1/invitations/recipients", &b, &body)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenant_cannot_delete_or_sync_into_a_tenants_records() {
    let app = app();
    let total = seed_tenant_a(&app).await;
    let b = admin("tenant-b");
    app.delete("/v1/accounts/d1-a0", &b)
        .await
        .problem(StatusCode::NOT_FOUND);
    // Syncing into A's division id from B is a 404: B has no such division.
    app.post(
        "/v1/sync/accounts",
        &b,
        &Value::from(vec![account("d1", 0)]),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    // B creating its own "d1" and syncing the same ids leaves A untouched.
    app.put_division(&b, "d1").await;
    let mut acc = account("d1", 0);
    acc["name"] = "Taken over".into();
    acc["contacts"] = json!([]);
    app.sync(&b, &[acc]).await;
    let a = admin("tenant-a");
    assert_eq!(app.counts(&a, json!({})).await["total"], total);
    let a_rows = app
        .list_all(&a, json!({"group": "all", "q": "account 0 of d1"}), 500)
        .await;
    assert!(!a_rows.is_empty());
    assert!(a_rows.iter().all(|r| r["account_name"] != "Taken over"));
}

#[tokio::test]
async fn a_cursor_from_one_tenant_shows_another_tenant_nothing() {
    let app = app();
    seed_tenant_a(&app).await;
    let a = admin("tenant-a");
    let page = app
        .post(
            "/v1/invitations/recipients",
            &a,
            &json!({"group": "all", "limit": 5}),
        )
        .await
        .ok();
    let cursor = page["next_cursor"].as_str().expect("more than one page");
    let b = admin("tenant-b");
    let r = app
        .post(
            "/v1/invitations/recipients",
            &b,
            &json!({"group": "all", "limit": 5, "cursor": cursor}),
        )
        .await;
    // Either refused as a bad cursor or an empty page: never A's rows.
    if r.status == StatusCode::OK {
        assert_eq!(r.json()["items"], json!([]));
    } else {
        r.problem(StatusCode::BAD_REQUEST);
    }
}

const JWKS: &str = include_str!("fixtures/test-rs256-jwks.json");
const PRIVATE_PEM: &[u8] = include_bytes!("fixtures/test-rs256-private.pem");

fn rs256(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap(),
    )
    .unwrap()
}

fn jwks_app() -> App {
    let env = |k: &str| match k {
        "JWT_JWKS" => Some(JWKS.to_owned()),
        "JWT_ISSUER" => Some("https://issuer.example.com".to_owned()),
        "JWT_AUDIENCE" => Some("portal-invites".to_owned()),
        _ => None,
    };
    app_with(Verifier::from_lookup(env).expect("JWKS config"))
}

fn rs_claims(iss: &str, aud: &str) -> Value {
    json!({
        "sub": "manager-1",
        "tenant_id": "t1",
        "permissions": ["invitations:read"],
        "exp": NOW.unix_timestamp() + 600,
        "iss": iss,
        "aud": aud,
    })
}

#[tokio::test]
async fn rs256_tokens_from_the_jwks_issuer_are_accepted() {
    let app = jwks_app();
    let t = rs256(
        "test-key-1",
        &rs_claims("https://issuer.example.com", "portal-invites"),
    );
    assert_eq!(
        app.get("/v1/divisions", &t).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn rs256_tokens_with_the_wrong_issuer_audience_or_key_are_refused() {
    let app = jwks_app();
    for t in [
        rs256(
            "test-key-1",
            &rs_claims("https://evil.example.com", "portal-invites"),
        ),
        rs256(
            "test-key-1",
            &rs_claims("https://issuer.example.com", "another-app"),
        ),
        rs256(
            "unknown-kid",
            &rs_claims("https://issuer.example.com", "portal-invites"),
        ),
    ] {
        app.get("/v1/divisions", &t)
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let mut no_iss = rs_claims("x", "portal-invites");
    no_iss.as_object_mut().unwrap().remove("iss");
    app.get("/v1/divisions", &rs256("test-key-1", &no_iss))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

/// The fixture's key listed three times besides its own `test-key-1` entry: for encryption,
/// for another algorithm, and with no `use` or `alg` at all.
fn jwks_with_other_uses() -> String {
    let mut doc: Value = serde_json::from_str(JWKS).unwrap();
    let key = doc["keys"][0].clone();
    let keys = doc["keys"].as_array_mut().unwrap();
    for (kid, set) in [
        ("enc-key", json!({"use": "enc", "alg": "RSA-OAEP"})),
        ("rs512-key", json!({"use": "sig", "alg": "RS512"})),
        ("bare-key", json!({"use": null, "alg": null})),
    ] {
        let mut k = key.clone();
        k["kid"] = json!(kid);
        for (name, value) in set.as_object().unwrap() {
            match value {
                Value::Null => {
                    k.as_object_mut().unwrap().remove(name);
                }
                v => k[name] = v.clone(),
            }
        }
        keys.push(k);
    }
    doc.to_string()
}

#[tokio::test]
async fn only_jwks_keys_meant_for_rs256_signatures_verify_tokens() {
    let jwks = jwks_with_other_uses();
    let env = |k: &str| match k {
        "JWT_JWKS" => Some(jwks.clone()),
        "JWT_ISSUER" => Some("https://issuer.example.com".to_owned()),
        "JWT_AUDIENCE" => Some("portal-invites".to_owned()),
        _ => None,
    };
    let app = app_with(Verifier::from_lookup(env).expect("JWKS config"));
    let claims = rs_claims("https://issuer.example.com", "portal-invites");
    for kid in ["test-key-1", "bare-key"] {
        assert_eq!(
            app.get("/v1/divisions", &rs256(kid, &claims)).await.ok(),
            json!({"items": [], "next_cursor": null}),
            "{kid}"
        );
    }
    for kid in ["enc-key", "rs512-key"] {
        let p = app
            .get("/v1/divisions", &rs256(kid, &claims))
            .await
            .problem(StatusCode::UNAUTHORIZED);
        assert!(p.contains("key this API does not know"), "{kid}: {p}");
    }
}

#[tokio::test]
async fn an_rs256_token_used_before_its_nbf_is_refused() {
    let app = jwks_app();
    let mut early = rs_claims("https://issuer.example.com", "portal-invites");
    early["nbf"] = json!(NOW.unix_timestamp() + 300);
    let p = app
        .get("/v1/divisions", &rs256("test-key-1", &early))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(p.contains("not valid yet"), "{p}");
    let mut due = rs_claims("https://issuer.example.com", "portal-invites");
    due["nbf"] = json!(NOW.unix_timestamp() - 300);
    assert_eq!(
        app.get("/v1/divisions", &rs256("test-key-1", &due))
            .await
            .ok(),
        json!({"items": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn an_hs256_token_is_refused_by_an_rs256_verifier() {
    let app = jwks_app();
    // The classic algorithm confusion: HMAC keyed with public material.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let t = jsonwebtoken::encode(
        &header,
        &rs_claims("https://issuer.example.com", "portal-invites"),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    app.get("/v1/divisions", &t)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}
