//! Test harness: the real router on an in-memory SQLite store, a fixed clock, an HS256
//! verifier, and helpers to call it with `oneshot` and read problem+json answers;
//! [`app_with_sending`] adds an in-memory [`RecordingBus`] for the send routes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::ports::{BusError, EventBus, FixedClock, SendMessage, SenderStore as _};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::LocalSchedules;
use portal_core::usecases::send::TokenDeriver;
use portal_embedded::sqlite::SqliteStore;
use portal_http::auth::{issue_hs256, Claims, Verifier};
use portal_http::{router, AppState};
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use tower::ServiceExt;

pub const SECRET: &[u8] = b"api-tests-secret-api-tests-secret";
pub const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

pub const ALL_PERMISSIONS: &[&str] = &[
    "invitations:read",
    "invitations:send",
    "registrations:manage",
    "settings:manage",
    "sync:write",
];

pub struct App {
    pub router: Router,
    pub store: Arc<SqliteStore>,
    pub clock: Arc<FixedClock>,
}

pub fn app() -> App {
    app_with(Verifier::hs256(SECRET))
}

pub fn app_with(verifier: Verifier) -> App {
    let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory store"));
    let clock = Arc::new(FixedClock::new(NOW));
    let state = AppState::new(store.clone(), clock.clone(), verifier)
        .with_schedules(Arc::new(LocalSchedules));
    App {
        router: router(state),
        store,
        clock,
    }
}

/// The registration-token secret of [`app_with_sending`].
pub const TOKEN_SECRET: &[u8] = b"api-tests-token-secret-0123456789abcdef";
/// The unsubscribe secret of [`app_with_sending`].
pub const UNSUBSCRIBE_SECRET: &[u8] = b"api-tests-unsubscribe-secret-0123456789";

/// An event bus that keeps what is published, in order, and can be told to refuse.
#[derive(Default)]
pub struct RecordingBus {
    messages: Mutex<Vec<SendMessage>>,
    refuse: AtomicBool,
}

impl RecordingBus {
    /// Everything published so far.
    pub fn messages(&self) -> Vec<SendMessage> {
        self.messages.lock().unwrap().clone()
    }

    /// From now on, every publish fails (and records nothing).
    pub fn refuse(&self, yes: bool) {
        self.refuse.store(yes, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(BusError::Backend("the test bus refuses".into()));
        }
        self.messages.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }
}

/// A [`Sending`] on `bus` with the test app's token secret (for calling use cases directly).
pub fn sending_of(bus: &Arc<RecordingBus>) -> Sending {
    Sending {
        bus: bus.clone(),
        tokens: Arc::new(TokenDeriver::new(TOKEN_SECRET).expect("secret")),
        token_ttl: time::Duration::days(14),
    }
}

/// The test app with the send routes configured: a [`RecordingBus`], registration tokens
/// from [`TOKEN_SECRET`] and unsubscribe links signed with [`UNSUBSCRIBE_SECRET`].
pub fn app_with_sending() -> (App, Arc<RecordingBus>) {
    let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory store"));
    let clock = Arc::new(FixedClock::new(NOW));
    let bus = Arc::new(RecordingBus::default());
    let state = AppState::new(store.clone(), clock.clone(), Verifier::hs256(SECRET))
        .with_unsubscribe(UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).expect("secret"))
        .with_sending(Sending {
            bus: bus.clone(),
            tokens: Arc::new(TokenDeriver::new(TOKEN_SECRET).expect("secret")),
            token_ttl: time::Duration::days(14),
        })
        .with_schedules(Arc::new(LocalSchedules));
    let app = App {
        router: router(state),
        store,
        clock,
    };
    (app, bus)
}

/// The tenant a token of these tests names.
pub fn tenant_of(token: &str) -> portal_core::domain::TenantId {
    let claims = Verifier::hs256(SECRET)
        .verify(token, NOW)
        .expect("a token of these tests");
    portal_core::domain::TenantId::parse(claims.tenant_id).expect("tenant id")
}

pub fn claims(tenant: &str, permissions: &[&str]) -> Claims {
    Claims {
        sub: format!("user-of-{tenant}"),
        tenant_id: tenant.into(),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        exp: NOW.unix_timestamp() + 3600,
    }
}

/// A token of `tenant` with the given permissions, valid for an hour after [`NOW`].
pub fn token(tenant: &str, permissions: &[&str]) -> String {
    issue_hs256(SECRET, &claims(tenant, permissions)).expect("sign")
}

/// A token of `tenant` with every permission.
pub fn admin(tenant: &str) -> String {
    token(tenant, ALL_PERMISSIONS)
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with this status and returns its `detail`.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.content_type(), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status.as_u16());
        assert!(p["type"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        let detail = p["detail"].as_str().unwrap_or_default().to_owned();
        assert!(!detail.is_empty(), "{p}");
        detail
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text());
        self.json()
    }
}

pub fn request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).expect("request")
}

impl App {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.send(request(Method::GET, uri, Some(token), None, Body::empty()))
            .await
    }

    pub async fn post(&self, uri: &str, token: &str, body: &Value) -> Reply {
        self.send(request(
            Method::POST,
            uri,
            Some(token),
            Some("application/json"),
            body.to_string(),
        ))
        .await
    }

    pub async fn put(&self, uri: &str, token: &str, body: &Value) -> Reply {
        self.send(request(
            Method::PUT,
            uri,
            Some(token),
            Some("application/json"),
            body.to_string(),
        ))
        .await
    }

    pub async fn delete(&self, uri: &str, token: &str) -> Reply {
        self.send(request(
            Method::DELETE,
            uri,
            Some(token),
            None,
            Body::empty(),
        ))
        .await
    }

    /// A division sending from `hoa@example.com`, and sender settings of its tenant (the
    /// token's) allowing `example.com` when the tenant has none yet.
    pub async fn put_division(&self, token: &str, id: &str) {
        let r = self
            .put(
                &format!("/v1/divisions/{id}"),
                token,
                &json!({"name": format!("Division {id}"), "email_from": "hoa@example.com"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let tenant = tenant_of(token);
        if self
            .store
            .get_sender_settings(&tenant)
            .await
            .expect("read sender settings")
            .is_none()
        {
            self.allow_senders(token, &["example.com", "example.org"])
                .await;
        }
    }

    /// Saves sender settings allowing `domains` for the token's tenant (replacing any).
    pub async fn allow_senders(&self, token: &str, domains: &[&str]) {
        portal_testkit::builders::allow_senders(self.store.as_ref(), &tenant_of(token), domains)
            .await;
    }

    pub async fn sync(&self, token: &str, accounts: &[Value]) -> Value {
        self.post("/v1/sync/accounts", token, &Value::from(accounts.to_vec()))
            .await
            .ok()
    }

    pub async fn counts(&self, token: &str, body: Value) -> Value {
        self.post("/v1/invitations/counts", token, &body).await.ok()
    }

    /// Every item of a list, following `next_cursor` with pages of `limit`.
    pub async fn list_all(&self, token: &str, mut body: Value, limit: u32) -> Vec<Value> {
        body["limit"] = limit.into();
        let mut items = Vec::new();
        for _ in 0..100_000 {
            let page = self
                .post("/v1/invitations/recipients", token, &body)
                .await
                .ok();
            let got = page["items"].as_array().expect("items").clone();
            assert!(got.len() <= limit as usize);
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(c) => body["cursor"] = c.into(),
                None => return items,
            }
        }
        panic!("the list never ended");
    }
}

/// A deterministic account of `division` with 1–3 contacts and a spread of every filterable
/// field: `i` picks class, bill group, sources, services, balance, autopay; some contacts have
/// no email, some are not billing contacts.
pub fn account(division: &str, i: usize) -> Value {
    let classes = ["Residential", "Commercial", "HOA"];
    let groups = ["A", "B", "C", "D"];
    let sources = ["Web", "Import", "Office"];
    let n_contacts = 1 + i % 3;
    let contacts: Vec<Value> = (0..n_contacts)
        .map(|k| {
            let email = if (i + k) % 7 == 3 {
                Value::Null
            } else {
                format!("person{i}.{k}@{division}.example.com").into()
            };
            json!({
                "contact_id": format!("{division}-c{i}-{k}"),
                "name": format!("Person {i} {k}"),
                "email": email,
                "phone": "555-0100",
                "billing": k == 0,
            })
        })
        .collect();
    json!({
        "account_id": format!("{division}-a{i}"),
        "division_id": division,
        "number": format!("{}", 10_000 + i),
        "name": format!("Account {i} of {division}"),
        "class": classes[i % 3],
        "bill_group": groups[i % 4],
        "source": sources[i % 3],
        "site_source": sources[(i / 3) % 3],
        "active_services": !matches!(i % 5, 0),
        "balance_due_cents": if i % 4 == 1 { 1250 } else { 0 },
        "autopay": matches!(i % 6, 0),
        "contacts": contacts,
    })
}

pub fn accounts(division: &str, n: usize) -> Vec<Value> {
    (0..n).map(|i| account(division, i)).collect()
}

/// How many contacts [`accounts`] makes for `n` accounts.
pub fn contacts_in(n: usize) -> u64 {
    (0..n).map(|i| 1 + (i % 3) as u64).sum()
}
