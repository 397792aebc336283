//! Registration through the router: the invitation link (GET changes nothing, POST registers
//! once, expiry at the exact instant, weak passwords, one login per address), the portal key
//! path (same answer and time for a wrong key and an unknown account, rate limits, the emailed
//! confirmation), sign-up requests and their staff queue, portal keys, tenant isolation.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::http::{header, Method, StatusCode};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{CampaignId, ContactId, Email, PortalStatus, TenantId};
use portal_core::ports::{
    BusError, ContactStore, Identity, MailError, Mailer, PortalRegistration, RawEmail,
    RegistrationEvents, RegistrationStore, SendMessage, SentMessage,
};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::registration::{Registrar, RegistrationSettings};
use portal_core::usecases::send::TokenDeriver;
use portal_embedded::sqlite::SqliteStore;
use portal_http::auth::{issue_hs256, Verifier};
use portal_http::{router, AppState};
use serde_json::{json, Value};
use time::Duration;

use crate::helpers::*;

/// Keeps what is mailed.
#[derive(Default)]
struct RecordingMailer(Mutex<Vec<RawEmail>>);

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        self.0.lock().unwrap().push(msg.clone());
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}

impl RecordingMailer {
    /// The text part of the last message, decoded.
    fn last_text(&self) -> String {
        let all = self.0.lock().unwrap();
        let raw = &all.last().expect("a message was sent").raw;
        let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
        parsed.body_text(0).unwrap().into_owned()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Keeps what is announced to the portal.
#[derive(Default)]
struct RecordingEvents(Mutex<Vec<PortalRegistration>>);

#[async_trait::async_trait]
impl RegistrationEvents for RecordingEvents {
    async fn registered(&self, e: &PortalRegistration) -> Result<(), BusError> {
        self.0.lock().unwrap().push(e.clone());
        Ok(())
    }
}

struct RegApp {
    app: App,
    bus: Arc<RecordingBus>,
    mailer: Arc<RecordingMailer>,
    events: Arc<RecordingEvents>,
    admin: String,
}

/// A lasting admin token (the clock moves by days in some tests).
fn lasting_admin(tenant: &str) -> String {
    let mut c = claims(tenant, ALL_PERMISSIONS);
    c.exp = (NOW + Duration::days(30)).unix_timestamp();
    issue_hs256(SECRET, &c).unwrap()
}

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "subject": "Your [DivisionName] portal",
        "html": "<a href=\"[PortalLink]\">Register</a> key [PortalKey]",
        "text": "Register: [PortalLink] key [PortalKey]",
    })
}

async fn reg_app() -> RegApp {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let clock = Arc::new(portal_core::ports::FixedClock::new(NOW));
    let bus = Arc::new(RecordingBus::default());
    let mailer = Arc::new(RecordingMailer::default());
    let events = Arc::new(RecordingEvents::default());
    let state = AppState::new(store.clone(), clock.clone(), Verifier::hs256(SECRET))
        .with_unsubscribe(UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).unwrap())
        .with_sending(Sending {
            bus: bus.clone(),
            tokens: Arc::new(TokenDeriver::new(TOKEN_SECRET).unwrap()),
            token_ttl: Duration::days(14),
        })
        .with_registration(Registrar {
            identity: store.clone(),
            events: events.clone(),
            mailer: mailer.clone(),
            settings: RegistrationSettings {
                sign_in_url: Some(SIGN_IN.into()),
                ..RegistrationSettings::default()
            },
        });
    let app = App {
        router: router(state),
        store,
        clock,
    };
    let admin = lasting_admin("t1");
    seed(&app, &admin).await;
    RegApp {
        app,
        bus,
        mailer,
        events,
        admin,
    }
}

async fn seed(app: &App, t: &str) {
    app.put_division(t, "d1").await;
    app.sync(t, &accounts("d1", 10)).await;
    app.put("/v1/templates/welcome", t, &welcome()).await.ok();
}

/// Invites `contact` individually; answers the invitation's link token.
async fn invite(r: &RegApp, contact: &str) -> (CampaignId, String) {
    let reply = r
        .app
        .post(
            "/v1/invitations/individual",
            &r.admin,
            &json!({"contact_id": contact, "template_id": "welcome"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = CampaignId::parse(reply.json()["campaign_id"].as_str().unwrap()).unwrap();
    let token = TokenDeriver::new(TOKEN_SECRET).unwrap().token(
        &TenantId::parse("t1").unwrap(),
        &id,
        &ContactId::parse(contact).unwrap(),
    );
    (id, token)
}

fn form(method: Method, uri: &str, body: &str) -> axum::http::Request<axum::body::Body> {
    request(
        method,
        uri,
        None,
        Some("application/x-www-form-urlencoded"),
        body.to_owned(),
    )
}

fn get(uri: &str) -> axum::http::Request<axum::body::Body> {
    request(Method::GET, uri, None, None, "")
}

fn json_post(uri: &str, body: &Value) -> axum::http::Request<axum::body::Body> {
    request(
        Method::POST,
        uri,
        None,
        Some("application/json"),
        body.to_string(),
    )
}

const GOOD: &str = "correct horse staple 42";

/// The portal's sign-in page the pages link to.
const SIGN_IN: &str = "https://portal.example/sign-in";

/// `d1-c0-0` is `person0.0@d1.example.com` on account `d1-a0` (number 10000).
const CONTACT: &str = "d1-c0-0";

fn assert_page_headers(reply: &Reply) {
    let h = |n: header::HeaderName| {
        reply
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        reply.content_type().starts_with("text/html"),
        "{}",
        reply.content_type()
    );
    assert_eq!(h(header::REFERRER_POLICY), "no-referrer");
    assert_eq!(h(header::X_FRAME_OPTIONS), "DENY");
    let csp = h(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let body = reply.text();
    // Nothing is loaded from anywhere: no script, no external stylesheet, image or font.
    for loads in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(
            !body.contains(loads),
            "the page loads something ({loads}): {body}"
        );
    }
}

async fn status_of(r: &RegApp, contact: &str) -> PortalStatus {
    r.app
        .store
        .get_contact(
            &TenantId::parse("t1").unwrap(),
            &ContactId::parse(contact).unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
        .portal_status
}

#[tokio::test]
async fn the_invitation_page_shows_who_and_where_and_changes_nothing() {
    let r = reg_app().await;
    let (_, token) = invite(&r, CONTACT).await;
    for _ in 0..3 {
        let reply = r.app.send(get(&format!("/register?token={token}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_page_headers(&reply);
        let body = reply.text();
        assert!(body.contains("Division d1"), "{body}");
        assert!(
            body.contains("p***@d1.example.com") || body.contains("@d1.example.com"),
            "{body}"
        );
        assert!(
            !body.contains("person0.0@"),
            "the address must be masked: {body}"
        );
        assert!(body.contains("type=\"password\""));
    }
    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::Pending);
    assert!(r.events.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn registering_accepts_the_contact_counts_the_campaign_and_tells_the_portal_once() {
    let r = reg_app().await;
    let (campaign, token) = invite(&r, CONTACT).await;
    let before = r
        .app
        .counts(&r.admin, json!({"division_ids": ["d1"]}))
        .await;

    let reply = r
        .app
        .send(form(
            Method::POST,
            &format!("/register?token={token}"),
            &format!("password={}", GOOD.replace(' ', "+")),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_page_headers(&reply);
    assert!(
        reply.text().contains("You are registered"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains("horse"),
        "the password is never echoed"
    );

    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::Accepted);
    let after = r
        .app
        .counts(&r.admin, json!({"division_ids": ["d1"]}))
        .await;
    assert_eq!(after["accepted"], before["accepted"].as_u64().unwrap() + 1);
    let stats = r
        .app
        .get(&format!("/v1/campaigns/{campaign}"), &r.admin)
        .await
        .ok();
    assert_eq!(stats["statistics"]["registered"], 1, "{stats}");
    assert_eq!(stats["statistics"]["success_rate"], 1.0, "{stats}");

    let events = r.events.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].email.as_str(), "person0.0@d1.example.com");
    assert_eq!(
        events[0].contact_ids,
        vec![ContactId::parse(CONTACT).unwrap()]
    );
    assert_eq!(events[0].campaign_id.as_ref(), Some(&campaign));

    // The identity provider holds the password (Argon2id in the embedded store).
    let t1 = TenantId::parse("t1").unwrap();
    let email = Email::parse("PERSON0.0@d1.example.com").unwrap();
    assert!(r.app.store.verify(&t1, &email, GOOD).await.unwrap());
    assert!(!r
        .app
        .store
        .verify(&t1, &email, "another password")
        .await
        .unwrap());

    // The link works once: a second POST and a later GET say it was used.
    let again = r
        .app
        .send(json_post(
            &format!("/register?token={token}"),
            &json!({"password": GOOD}),
        ))
        .await;
    again.problem(StatusCode::GONE);
    let page = r.app.send(get(&format!("/register?token={token}"))).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text().contains("already used"), "{}", page.text());
    assert_eq!(r.events.0.lock().unwrap().len(), 1, "announced once");
    let stats = r
        .app
        .get(&format!("/v1/campaigns/{campaign}"), &r.admin)
        .await
        .ok();
    assert_eq!(stats["statistics"]["registered"], 1);
}

#[tokio::test]
async fn a_json_registration_answers_json() {
    let r = reg_app().await;
    let (_, token) = invite(&r, CONTACT).await;
    let reply = r
        .app
        .send(json_post(
            &format!("/register?token={token}"),
            &json!({"password": GOOD, "name": "Pat"}),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "registered");
    assert_eq!(body["new_login"], true);
    assert_eq!(body["contact_ids"], json!([CONTACT]));
}

#[tokio::test]
async fn a_link_works_until_the_instant_it_expires() {
    let r = reg_app().await;
    let (_, token) = invite(&r, CONTACT).await;
    let expires = NOW + Duration::days(14);
    r.app.clock.set(expires - Duration::seconds(1));
    let page = r.app.send(get(&format!("/register?token={token}"))).await;
    assert_eq!(page.status, StatusCode::OK);
    r.app.clock.set(expires);
    let page = r.app.send(get(&format!("/register?token={token}"))).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text().contains("expired"), "{}", page.text());
    assert!(
        page.text().contains("/register/request?tenant=t1"),
        "offers a sign-up request"
    );
    let post = r
        .app
        .send(json_post(
            &format!("/register?token={token}"),
            &json!({"password": GOOD}),
        ))
        .await;
    assert!(post.problem(StatusCode::GONE).contains("expired"));
    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::Pending);
}

#[tokio::test]
async fn unknown_tokens_weak_passwords_and_bad_bodies_are_refused_clearly() {
    let r = reg_app().await;
    let (_, token) = invite(&r, CONTACT).await;
    let page = r.app.send(get("/register?token=")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text().contains("incomplete"));
    for bad in ["nope", &"x".repeat(500), "%00%01a"] {
        let page = r.app.send(get(&format!("/register?token={bad}"))).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{bad}");
        assert!(page.text().contains("not valid"));
        assert_page_headers(&page);
    }
    // A weak password: the form again (HTML) or a 422 naming the rule (JSON); nothing changes.
    let page = r
        .app
        .send(form(
            Method::POST,
            &format!("/register?token={token}"),
            "password=short",
        ))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.text().contains("at least 12 characters"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("type=\"password\""));
    let detail = r
        .app
        .send(json_post(
            &format!("/register?token={token}"),
            &json!({"password": "password1234"}),
        ))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("common"), "{detail}");
    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::Pending);

    let uri = format!("/register?token={token}");
    r.app
        .send(request(
            Method::POST,
            &uri,
            None,
            Some("application/json"),
            "{not json",
        ))
        .await
        .problem(StatusCode::BAD_REQUEST);
    let odd = r
        .app
        .send(request(
            Method::POST,
            &uri,
            None,
            Some("text/plain"),
            "password=x",
        ))
        .await;
    assert_eq!(odd.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        odd.content_type().starts_with("text/html"),
        "a browser gets a page"
    );
    r.app
        .send(json_post(&uri, &json!({"password": GOOD, "admin": true})))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    r.app
        .send(json_post(
            "/register?token=unknown",
            &json!({"password": GOOD}),
        ))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_second_contact_with_the_same_address_is_not_invited_again_and_joins_through_the_first_link(
) {
    let r = reg_app().await;
    // Give d1-c1-0 the address of d1-c0-0 (another account, same person).
    let mut acc = account("d1", 1);
    acc["contacts"][0]["email"] = json!("Person0.0@D1.example.com");
    r.app.sync(&r.admin, &[acc]).await;
    let (_, first) = invite(&r, CONTACT).await;
    // One person, one invitation per 24 hours: the second contact's invite is refused.
    let again = r
        .app
        .post(
            "/v1/invitations/individual",
            &r.admin,
            &json!({"contact_id": "d1-c1-0", "template_id": "welcome"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let problem = again.json();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("address was invited for another contact"),
        "{problem}"
    );
    assert_eq!(problem["contact_id"], "d1-c1-0");
    assert_eq!(problem["type"], "urn:portal-invites:problem:address-held");
    let ok = r
        .app
        .send(json_post(
            &format!("/register?token={first}"),
            &json!({"password": GOOD}),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let t1 = TenantId::parse("t1").unwrap();
    let login = r
        .app
        .store
        .get_login(&t1, &Email::parse("person0.0@d1.example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.contact_ids.len(), 2);
    assert!(r.app.store.verify(&t1, &login.email, GOOD).await.unwrap());
    assert_eq!(status_of(&r, "d1-c1-0").await, PortalStatus::Accepted);
}

/// Two more contacts, on other accounts, have `d1-c0-0`'s address in other spellings:
/// registering through `d1-c0-0`'s link accepts all three, the portal hears of all three, and
/// the other contacts of those accounts are left alone.
#[tokio::test]
async fn registering_through_one_link_accepts_every_contact_with_the_address() {
    let r = reg_app().await;
    let mut a1 = account("d1", 1);
    a1["contacts"][0]["email"] = json!("PERSON0.0@d1.example.com");
    let mut a2 = account("d1", 2);
    a2["contacts"][1]["email"] = json!("person0.0@D1.Example.COM");
    r.app.sync(&r.admin, &[a1, a2]).await;
    let (_, token) = invite(&r, CONTACT).await;

    let ok = r
        .app
        .send(form(
            Method::POST,
            &format!("/register?token={token}"),
            &format!("password={}", GOOD.replace(' ', "+")),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.text().contains("You are registered"), "{}", ok.text());
    for c in [CONTACT, "d1-c1-0", "d1-c2-1"] {
        assert_eq!(status_of(&r, c).await, PortalStatus::Accepted, "{c}");
    }
    for c in ["d1-c1-1", "d1-c2-0", "d1-c2-2"] {
        assert_eq!(status_of(&r, c).await, PortalStatus::NotSent, "{c}");
    }
    let events = r.events.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    let mut contacts: Vec<&str> = events[0].contact_ids.iter().map(|c| c.as_str()).collect();
    contacts.sort();
    assert_eq!(contacts, vec![CONTACT, "d1-c1-0", "d1-c2-1"]);
    let mut accounts: Vec<&str> = events[0].account_ids.iter().map(|a| a.as_str()).collect();
    accounts.sort();
    assert_eq!(accounts, vec!["d1-a0", "d1-a1", "d1-a2"]);
    // The accepted tile counts them: three of the division's contacts.
    let counts = r
        .app
        .post(
            "/v1/invitations/counts",
            &r.admin,
            &json!({"division_ids": ["d1"], "filters": {}}),
        )
        .await
        .ok();
    assert_eq!(counts["accepted"], 3);
}

/// The account number and key of `d1-a0`.
async fn key_of(r: &RegApp, account: &str) -> String {
    r.app
        .get(&format!("/v1/accounts/{account}/portal-key"), &r.admin)
        .await
        .ok()["portal_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn key_form(number: &str, key: &str, email: &str) -> String {
    format!(
        "account_number={number}&portal_key={key}&name=Pat+Doe&email={}&password=correct+horse+staple+42",
        email.replace('@', "%40")
    )
}

#[tokio::test]
async fn a_portal_key_signs_up_and_the_emailed_link_confirms_the_address() {
    let r = reg_app().await;
    let key = key_of(&r, "d1-a0").await;
    assert_eq!(key.len(), 19, "{key}");
    let page = r
        .app
        .send(get("/register/key?tenant=t1&account=10000"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_page_headers(&page);
    assert!(
        page.text().contains("value=\"10000\""),
        "the account number is filled in"
    );

    let typed = key.to_lowercase().replace('-', " ");
    let reply = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &typed, "person0.0@d1.example.com"),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.text().contains("Check your email"),
        "{}",
        reply.text()
    );
    let t1 = TenantId::parse("t1").unwrap();
    let email = Email::parse("person0.0@d1.example.com").unwrap();
    assert!(
        !r.app.store.verify(&t1, &email, GOOD).await.unwrap(),
        "not usable before confirmation"
    );
    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::NotSent);

    let text = r.mailer.last_text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/register/confirm?"))
        .expect("a confirmation link")
        .to_owned();
    let path = link.trim_start_matches("http://127.0.0.1:3000");
    let shown = r.app.send(get(path)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text().contains("Confirm my email address"));
    assert!(
        !r.app.store.verify(&t1, &email, GOOD).await.unwrap(),
        "GET confirms nothing"
    );
    let done = r.app.send(form(Method::POST, path, "")).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.text().contains("confirmed"));
    assert!(r.app.store.verify(&t1, &email, GOOD).await.unwrap());
    assert_eq!(status_of(&r, CONTACT).await, PortalStatus::Accepted);
    assert_eq!(r.events.0.lock().unwrap().len(), 1);

    // The same address cannot make a second login.
    let again = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "Person0.0@d1.example.com"),
        ))
        .await;
    assert!(
        again.text().contains("already have a login"),
        "{}",
        again.text()
    );
    assert_eq!(r.mailer.count(), 1);
}

#[tokio::test]
async fn a_portal_key_sign_up_whose_division_sender_is_not_allowed_makes_no_login_and_sends_nothing(
) {
    let r = reg_app().await;
    let key = key_of(&r, "d1-a0").await;
    // The division sends from hoa@example.com; the settings now allow another domain only.
    r.app.allow_senders(&r.admin, &["other.example.com"]).await;
    let reply = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "person0.0@d1.example.com"),
        ))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(
        reply.text().contains("not available for this property yet"),
        "{}",
        reply.text()
    );
    assert_eq!(r.mailer.count(), 0, "no confirmation email");
    let t1 = TenantId::parse("t1").unwrap();
    let email = Email::parse("person0.0@d1.example.com").unwrap();
    assert_eq!(r.app.store.get_login(&t1, &email).await.unwrap(), None);

    // Once the settings allow it, the same form works.
    r.app.allow_senders(&r.admin, &["example.com"]).await;
    let reply = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "person0.0@d1.example.com"),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(r.mailer.count(), 1);
}

#[tokio::test]
async fn a_confirmation_link_expires() {
    let r = reg_app().await;
    let key = key_of(&r, "d1-a0").await;
    r.app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "someone@else.example"),
        ))
        .await;
    let text = r.mailer.last_text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/register/confirm?"))
        .unwrap()
        .to_owned();
    let path = link.trim_start_matches("http://127.0.0.1:3000").to_owned();
    r.app.clock.set(NOW + Duration::days(2));
    let expired = r.app.send(form(Method::POST, &path, "")).await;
    assert_eq!(expired.status, StatusCode::GONE, "{}", expired.text());
    assert!(expired.text().contains("expired"));
}

#[tokio::test]
async fn a_wrong_key_and_an_unknown_account_get_the_same_answer_in_the_same_time() {
    let r = reg_app().await;
    let wrong = r
        .app
        .send(json_post("/register/key?tenant=t1", &json!({"account_number": "10000", "portal_key": "AAAA-BBBB-CCCC-DDDD", "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await;
    let unknown = r
        .app
        .send(json_post("/register/key?tenant=t1", &json!({"account_number": "99999", "portal_key": "AAAA-BBBB-CCCC-DDDD", "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await;
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.body, unknown.body);

    // Timing: the median of many attempts of each (alternating, from distinct clients and
    // numbers so the rate limit stays out of the way) differs by less than a third.
    let mut times = (Vec::new(), Vec::new());
    for i in 0..40 {
        for (unknown, out) in [(false, &mut times.0), (true, &mut times.1)] {
            let number = if unknown {
                format!("9{i:04}")
            } else {
                format!("{}", 10_000 + i % 10)
            };
            let mut req = json_post(
                "/register/key?tenant=t1",
                &json!({"account_number": number, "portal_key": "AAAA-BBBB-CCCC-DDDD", "name": "Pat", "email": "pat@example.com", "password": GOOD}),
            );
            req.headers_mut().insert(
                "x-forwarded-for",
                format!("10.0.{}.{}", i, unknown as u8).parse().unwrap(),
            );
            r.app.clock.advance(Duration::minutes(20));
            let started = Instant::now();
            let reply = r.app.send(req).await;
            out.push(started.elapsed());
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                reply.text()
            );
        }
    }
    let median = |v: &mut Vec<StdDuration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut times.0), median(&mut times.1));
    let (lo, hi) = (a.min(b), a.max(b));
    assert!(
        hi.as_secs_f64() <= lo.as_secs_f64() * 1.33 + 0.000_2,
        "wrong key {a:?} vs unknown account {b:?}"
    );
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account_number_and_per_client() {
    let r = reg_app().await;
    let attempt = |number: &str, client: &str| {
        let mut req = json_post(
            "/register/key?tenant=t1",
            &json!({"account_number": number, "portal_key": "WRONG-KEY1", "name": "Pat", "email": "pat@example.com", "password": GOOD}),
        );
        req.headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        req
    };
    for i in 0..5 {
        let reply = r.app.send(attempt("10000", &format!("10.0.0.{i}"))).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // The sixth failure on that account number, from a fresh client: refused before checking.
    let limited = r.app.send(attempt("10000", "10.0.0.99")).await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Even the right key is refused while limited (a guesser cannot tell).
    let key = key_of(&r, "d1-a0").await;
    let right = r
        .app
        .send(json_post("/register/key?tenant=t1", &json!({"account_number": "10000", "portal_key": key, "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await;
    right.problem(StatusCode::TOO_MANY_REQUESTS);
    // Per client: five failures on five numbers from one address, then that address waits.
    for n in 1..=5 {
        r.app
            .send(attempt(&format!("{}", 10_000 + n), "10.9.9.9"))
            .await;
    }
    r.app
        .send(attempt("10007", "10.9.9.9"))
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    // A page gets the same status, with Retry-After.
    let mut page = form(
        Method::POST,
        "/register/key?tenant=t1",
        &key_form("10007", "X", "pat@example.com"),
    );
    page.headers_mut()
        .insert("x-forwarded-for", "10.9.9.9".parse().unwrap());
    let page = r.app.send(page).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    // The window ends: the counters start again.
    r.app.clock.advance(Duration::minutes(16));
    let reply = r.app.send(attempt("10000", "10.0.0.100")).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn rotating_a_key_stops_the_old_one_at_once() {
    let r = reg_app().await;
    let old = key_of(&r, "d1-a0").await;
    let new = r
        .app
        .post("/v1/accounts/d1-a0/portal-key", &r.admin, &json!({}))
        .await
        .ok();
    let new = new["portal_key"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert_eq!(key_of(&r, "d1-a0").await, new);
    let refused = r
        .app
        .send(json_post("/register/key?tenant=t1", &json!({"account_number": "10000", "portal_key": old, "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await;
    refused.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let ok = r
        .app
        .send(json_post("/register/key?tenant=t1", &json!({"account_number": "10000", "portal_key": new, "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text());
    // A key a sync sends is taken as is; a bad one names the field.
    let mut acc = account("d1", 2);
    acc["portal_key"] = json!("OUR-OWN-KEY-2");
    r.app.sync(&r.admin, &[acc.clone()]).await;
    assert_eq!(key_of(&r, "d1-a2").await, "OUR-OWN-KEY-2");
    acc["portal_key"] = json!("no!");
    let bad = r
        .app
        .post("/v1/sync/accounts", &r.admin, &json!([acc]))
        .await;
    assert!(bad
        .problem(StatusCode::UNPROCESSABLE_ENTITY)
        .contains("portal_key"));
    // Keys are staff-only and tenant-bound.
    r.app
        .get(
            "/v1/accounts/d1-a0/portal-key",
            &token("t1", &["invitations:read"]),
        )
        .await
        .problem(StatusCode::FORBIDDEN);
    r.app
        .get("/v1/accounts/d1-a0/portal-key", &lasting_admin("t2"))
        .await
        .problem(StatusCode::NOT_FOUND);
    r.app
        .post("/v1/accounts/nope/portal-key", &r.admin, &json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sign_up_request_is_matched_and_its_portal_key_email_registers_a_login() {
    let r = reg_app().await;
    let page = r.app.send(get("/register/request?tenant=t1")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_page_headers(&page);
    assert!(page.text().contains("<option value=\"d1\""));
    let filed = r
        .app
        .send(form(
            Method::POST,
            "/register/request?tenant=t1",
            "name=Person+0+0&email=new.address%40example.com&phone=555-0100&address=1+Main&division_id=d1&account_number=10000",
        ))
        .await;
    assert_eq!(filed.status, StatusCode::OK, "{}", filed.text());
    assert!(filed.text().contains("will be in touch"));

    let list = r
        .app
        .get("/v1/registration-requests?status=open", &r.admin)
        .await
        .ok();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let id = items[0]["request_id"].as_str().unwrap().to_owned();
    let one = r
        .app
        .get(&format!("/v1/registration-requests/{id}"), &r.admin)
        .await
        .ok();
    let top = &one["suggestions"][0];
    assert_eq!(top["contact_id"], CONTACT, "{one}");
    assert_eq!(top["account_id"], "d1-a0");

    let matched = r
        .app
        .post(
            &format!("/v1/registration-requests/{id}/match"),
            &r.admin,
            &json!({"account_id": "d1-a0", "contact_id": CONTACT}),
        )
        .await
        .ok();
    assert_eq!(matched["request"]["status"], "key_sent", "{matched}");
    let campaign = matched["campaign"]["campaign_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = r
        .app
        .get(&format!("/v1/campaigns/{campaign}"), &r.admin)
        .await
        .ok();
    assert_eq!(got["trigger"], "portal_key");
    // The delivery goes to the request's address, with the account's key in the recipient.
    let key = key_of(&r, "d1-a0").await;
    let delivered = r.bus.messages().into_iter().find_map(|m| match m {
        SendMessage::Deliver {
            campaign_id,
            recipients,
            ..
        } if campaign_id.as_str() == campaign => Some(recipients),
        _ => None,
    });
    let recipients = delivered.expect("a delivery of the portal key email");
    assert_eq!(recipients[0].email.as_str(), "new.address@example.com");
    assert_eq!(recipients[0].portal_key, key);

    // The resident signs up with the key from that email, then confirms.
    let signed = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "new.address@example.com"),
        ))
        .await;
    assert!(
        signed.text().contains("Check your email"),
        "{}",
        signed.text()
    );
    let text = r.mailer.last_text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/register/confirm?"))
        .unwrap()
        .to_owned();
    r.app
        .send(form(
            Method::POST,
            link.trim_start_matches("http://127.0.0.1:3000"),
            "",
        ))
        .await;
    let closed = r
        .app
        .get(&format!("/v1/registration-requests/{id}"), &r.admin)
        .await
        .ok();
    assert_eq!(closed["status"], "closed", "{closed}");
    assert_eq!(closed["reason"], "registered");

    // A closed request cannot be matched again.
    r.app
        .post(
            &format!("/v1/registration-requests/{id}/match"),
            &r.admin,
            &json!({"account_id": "d1-a0"}),
        )
        .await
        .problem(StatusCode::CONFLICT);
}

#[tokio::test]
async fn requests_answer_the_same_whoever_asks_and_close_themselves_for_known_logins() {
    let r = reg_app().await;
    let (_, token) = invite(&r, CONTACT).await;
    r.app
        .send(json_post(
            &format!("/register?token={token}"),
            &json!({"password": GOOD}),
        ))
        .await;
    let body = |email: &str| json!({"name": "Pat", "email": email, "phone": "", "address": "1 Main", "division_id": "d1"});
    let known = r
        .app
        .send(json_post(
            "/register/request?tenant=t1",
            &body("person0.0@d1.example.com"),
        ))
        .await;
    let unknown = r
        .app
        .send(json_post(
            "/register/request?tenant=t1",
            &body("nobody@example.com"),
        ))
        .await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(
        (known.status, known.body.clone()),
        (unknown.status, unknown.body.clone())
    );
    let closed = r
        .app
        .get("/v1/registration-requests?status=closed", &r.admin)
        .await
        .ok();
    assert_eq!(closed["items"].as_array().unwrap().len(), 1);
    assert_eq!(closed["items"][0]["reason"], "already_registered");
    let open = r
        .app
        .get(
            "/v1/registration-requests?status=open&division_id=d1",
            &r.admin,
        )
        .await
        .ok();
    assert_eq!(open["items"][0]["email"], "nobody@example.com");
    // Bad input: 422 naming the field, unknown division included; bad filters 400.
    let detail = r
        .app
        .send(json_post(
            "/register/request?tenant=t1",
            &json!({"name": "", "email": "x@example.com", "address": "a", "division_id": "d1"}),
        ))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("name"), "{detail}");
    r.app
        .send(json_post(
            "/register/request?tenant=t1",
            &json!({"name": "P", "email": "x@example.com", "address": "a", "division_id": "nope"}),
        ))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    r.app
        .get("/v1/registration-requests?status=weird", &r.admin)
        .await
        .problem(StatusCode::BAD_REQUEST);
    r.app
        .get("/v1/registration-requests?cursor=forged", &r.admin)
        .await
        .problem(StatusCode::BAD_REQUEST);
    r.app
        .get("/v1/registration-requests/nothex", &r.admin)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // Reject with a reason; rejecting again is a conflict.
    let id = open["items"][0]["request_id"].as_str().unwrap().to_owned();
    let rejected = r
        .app
        .post(
            &format!("/v1/registration-requests/{id}/reject"),
            &r.admin,
            &json!({"reason": "not a resident"}),
        )
        .await
        .ok();
    assert_eq!(rejected["reason"], "rejected");
    assert_eq!(rejected["note"], "not a resident");
    r.app
        .post(
            &format!("/v1/registration-requests/{id}/reject"),
            &r.admin,
            &json!({"reason": "again"}),
        )
        .await
        .problem(StatusCode::CONFLICT);
    // Another tenant sees none of it.
    let other = lasting_admin("t2");
    assert_eq!(
        r.app.get("/v1/registration-requests", &other).await.ok()["items"],
        json!([])
    );
    r.app
        .get(&format!("/v1/registration-requests/{id}"), &other)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tenant_s_pages_know_nothing_of_another_tenant() {
    let r = reg_app().await;
    let other = lasting_admin("t2");
    seed(&r.app, &other).await;
    // t1's account number and key typed on t2's page: the same refusal as a wrong key.
    let key = key_of(&r, "d1-a0").await;
    r.app
        .send(json_post("/register/key?tenant=t2", &json!({"account_number": "10000", "portal_key": key, "name": "Pat", "email": "pat@example.com", "password": GOOD})))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    // A page without a tenant, or an unknown one: a page for a browser, problem+json for
    // a JSON client; a control character in a prefill never reaches the page.
    let page = r.app.send(get("/register/key")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_page_headers(&page);
    assert!(
        page.text().contains("does not say which company"),
        "{}",
        page.text()
    );
    let mut json = get("/register/key");
    json.headers_mut()
        .insert(header::ACCEPT, "application/json".parse().unwrap());
    r.app.send(json).await.problem(StatusCode::BAD_REQUEST);
    let page = r
        .app
        .send(get("/register/key?tenant=t1&account=10%0000"))
        .await;
    assert!(page.text().contains("value=\"1000\""), "{}", page.text());
    assert!(!page.text().contains('\0'));
    // A form with a field the page never sends: a page, not problem+json.
    let odd = r
        .app
        .send(form(
            Method::POST,
            "/register/request?tenant=t1",
            "name=a&foo=1",
        ))
        .await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(odd.content_type().starts_with("text/html"));
    let page = r.app.send(get("/register/request?tenant=nobody")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.content_type().starts_with("text/html"));
}

#[tokio::test]
async fn the_staff_routes_need_registrations_manage() {
    let r = reg_app().await;
    let reader = token("t1", &["invitations:read", "invitations:send"]);
    for uri in ["/v1/registration-requests", "/v1/accounts/d1-a0/portal-key"] {
        r.app.get(uri, &reader).await.problem(StatusCode::FORBIDDEN);
        r.app
            .get(uri, "not-a-token")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_invitation_to_an_address_awaiting_its_confirmation_says_to_confirm_first() {
    let r = reg_app().await;
    let key = key_of(&r, "d1-a0").await;
    let (_, token) = invite(&r, CONTACT).await;
    let signed = r
        .app
        .send(form(
            Method::POST,
            "/register/key?tenant=t1",
            &key_form("10000", &key, "person0.0@d1.example.com"),
        ))
        .await;
    assert!(signed.text().contains("Check your email"));
    let joined = r
        .app
        .send(form(
            Method::POST,
            &format!("/register?token={token}"),
            "password=another+fine+password",
        ))
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text());
    assert!(
        joined.text().contains("waits for you to confirm"),
        "{}",
        joined.text()
    );
    // Nothing signs in before the confirmation; the invitation's password made no login.
    let t1 = TenantId::parse("t1").unwrap();
    let email = Email::parse("person0.0@d1.example.com").unwrap();
    assert!(!r
        .app
        .store
        .verify(&t1, &email, "another fine password")
        .await
        .unwrap());
    assert!(!r.app.store.verify(&t1, &email, GOOD).await.unwrap());
}
