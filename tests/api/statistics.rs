//! Invitation statistics: SES events through `POST /v1/ses-events` (a signed SNS
//! notification, raw delivery with the operator's secret, refusals), the campaign's
//! `statistics`, a division's campaign history and the drill-down into one category.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portal_aws::sns::{CertFetcher, CertStore, FetchError, SnsVerifier};
use portal_aws::webhook::SesWebhook;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{CampaignId, Email, InvitationFact, TenantId};
use portal_core::ports::{CampaignStore, SuppressionStore};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::send::{
    run_campaign, RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper,
};
use portal_http::{router, AppState};
use portal_testkit::null::NullMailer;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:portal-ses-events";
const CERT_FILE: &str = "SimpleNotificationService-0123456789abcdef.pem";
const RAW_SECRET: &str = "raw-delivery-secret-0123456789";

/// The signing key and its certificate, made once per test binary (RSA keygen is slow).
struct Signer {
    pkcs8: Vec<u8>,
    cert_pem: String,
}

fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let cert = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        Signer {
            pkcs8: key.serialize_der(),
            cert_pem: cert.pem(),
        }
    })
}

/// Refuses every request: certificates come from the directory only, and a test fails
/// loudly if the webhook tried the network.
struct Offline;

#[async_trait::async_trait]
impl CertFetcher for Offline {
    async fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        panic!("the webhook fetched {url}");
    }
}

struct World {
    app: App,
    token: String,
    _certs: tempfile::TempDir,
}

/// Tenant `t1` with division d1 (10 accounts), the template, the SES webhook (topic
/// [`TOPIC`], certificate in a directory, raw delivery with [`RAW_SECRET`]).
async fn world() -> World {
    world_with(RAW_SECRET).await
}

/// [`world`] with raw delivery accepting `raw_secret` (two lines during a rotation).
async fn world_with(raw_secret: &str) -> World {
    let certs = tempfile::tempdir().expect("temp dir");
    std::fs::write(certs.path().join(CERT_FILE), &signer().cert_pem).expect("cert");
    let verifier = SnsVerifier::new(
        [TOPIC],
        CertStore::new(Arc::new(Offline)).with_dir(certs.path()),
    );
    let webhook = SesWebhook::new(verifier)
        .with_raw_secret(raw_secret)
        .expect("secret");
    let store =
        Arc::new(portal_embedded::sqlite::SqliteStore::open_in_memory().expect("in-memory store"));
    let clock = Arc::new(portal_core::ports::FixedClock::new(NOW));
    let state = AppState::new(
        store.clone(),
        clock.clone(),
        portal_http::auth::Verifier::hs256(SECRET),
    )
    .with_unsubscribe(UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).expect("secret"))
    .with_sending(Sending {
        bus: Arc::new(RecordingBus::default()),
        tokens: Arc::new(TokenDeriver::new(TOKEN_SECRET).expect("secret")),
        token_ttl: time::Duration::days(14),
    })
    .with_ses_webhook(webhook);
    let app = App {
        router: router(state),
        store,
        clock,
    };
    let token = admin("t1");
    app.put_division(&token, "d1").await;
    app.put_division(&token, "d2").await;
    app.sync(&token, &accounts("d1", 10)).await;
    app.sync(&token, &accounts("d2", 3)).await;
    app.put(
        "/v1/templates/welcome",
        &token,
        &json!({"name": "Welcome", "subject": "Portal", "html": "<a href=\"[PortalLink]\">Go</a>",
            "text": "[PortalLink] [UnsubscribeLink]"}),
    )
    .await
    .ok();
    World {
        app,
        token,
        _certs: certs,
    }
}

/// Starts a campaign over `division` and runs its send to the end; returns its id and the
/// invitations' `(contact_id, email)`.
async fn sent_campaign(w: &World, division: &str) -> (String, Vec<(String, String)>) {
    let r = w
        .app
        .post(
            "/v1/campaigns",
            &w.token,
            &json!({"division_ids": [division], "template_id": "welcome"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["campaign_id"].as_str().unwrap().to_owned();
    let config = SendConfig {
        max_send_rate: None,
        ..SendConfig::default()
    };
    let deps = SendDeps {
        store: w.app.store.clone(),
        mailer: Arc::new(NullMailer),
        clock: w.app.clock.clone(),
        sleeper: Arc::new(TokioSleeper),
        unsubscribe: Some(Arc::new(
            UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).unwrap(),
        )),
        tokens: Arc::new(TokenDeriver::new(TOKEN_SECRET).unwrap()),
        public_url: portal_core::domain::PublicUrl::parse("https://portal.example.org")
            .expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(None)),
        config,
    };
    run_campaign(&deps, &t1(), &CampaignId::parse(&id).unwrap())
        .await
        .expect("send");
    let rows = recipients(w, &id, json!({"limit": 500})).await;
    let invited = rows
        .iter()
        .map(|r| {
            (
                r["contact_id"].as_str().unwrap().to_owned(),
                r["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (id, invited)
}

fn t1() -> TenantId {
    TenantId::parse("t1").unwrap()
}

async fn recipients(w: &World, id: &str, body: Value) -> Vec<Value> {
    let r = w
        .app
        .post(&format!("/v1/campaigns/{id}/recipients"), &w.token, &body)
        .await
        .ok();
    r["items"].as_array().unwrap().clone()
}

/// An SES event record as SES publishes it, tagged for `campaign`/`contact` of `t1`.
fn record(event_type: &str, campaign: &str, contact: &str, email: &str) -> Value {
    let mut r = json!({
        "eventType": event_type,
        "mail": {
            "timestamp": NOW.format(&Rfc3339).unwrap(),
            "source": "hoa@example.com",
            "messageId": format!("{campaign}-{contact}"),
            "destination": [email],
            "tags": {"tenant": ["t1"], "campaign": [campaign], "invitation": [contact],
                     "ses:configuration-set": ["portal"]},
        },
    });
    let (key, body) = match event_type {
        "Delivery" => (
            "delivery",
            json!({"recipients": [email], "smtpResponse": "250 ok"}),
        ),
        "Open" => ("open", json!({"ipAddress": "192.0.2.1", "userAgent": "x"})),
        "Click" => (
            "click",
            json!({"link": "https://portal.example.org/register"}),
        ),
        "Bounce" => (
            "bounce",
            json!({"bounceType": "Permanent", "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": email}]}),
        ),
        "Complaint" => (
            "complaint",
            json!({"complainedRecipients": [{"emailAddress": email}]}),
        ),
        other => panic!("no sample for {other}"),
    };
    r[key] = body;
    r
}

/// A Notification carrying `message`, signed (SignatureVersion 2) over SNS's string to
/// sign with the certificate in the directory.
fn signed(message: &str, topic: &str) -> Value {
    let ts = NOW.format(&Rfc3339).unwrap();
    let id = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324";
    let to_sign =
        format!("Message\n{message}\nMessageId\n{id}\nTimestamp\n{ts}\nTopicArn\n{topic}\nType\nNotification\n");
    let key = RsaKeyPair::from_pkcs8(&signer().pkcs8).expect("key");
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        to_sign.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    json!({
        "Type": "Notification", "MessageId": id, "TopicArn": topic, "Message": message,
        "Timestamp": ts, "SignatureVersion": "2", "Signature": STANDARD.encode(sig),
        "SigningCertURL": format!("https://sns.us-east-1.amazonaws.com/{CERT_FILE}"),
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    })
}

async fn post_event(w: &World, body: String, password: Option<&str>) -> Reply {
    let mut req = request(
        Method::POST,
        "/v1/ses-events",
        None,
        Some("text/plain; charset=UTF-8"),
        Body::from(body),
    );
    if let Some(p) = password {
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("sns:{p}")))
                .parse()
                .unwrap(),
        );
    }
    w.app.send(req).await
}

async fn statistics(w: &World, id: &str) -> Value {
    w.app
        .get(&format!("/v1/campaigns/{id}"), &w.token)
        .await
        .ok()["statistics"]
        .clone()
}

#[tokio::test]
async fn during_a_rotation_raw_events_with_either_secret_are_accepted_and_others_refused() {
    const NEW: &str = "raw-delivery-secret-new-0123456789";
    let w = world_with(&format!("{NEW}\n{RAW_SECRET}")).await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let (c0, e0) = &invited[0];
    let (c1, e1) = &invited[1];
    let r = post_event(&w, record("Open", &id, c0, e0).to_string(), Some(NEW)).await;
    assert_eq!(r.ok()["outcome"], "applied");
    let r = post_event(
        &w,
        record("Open", &id, c1, e1).to_string(),
        Some(RAW_SECRET),
    )
    .await;
    assert_eq!(r.ok()["outcome"], "applied");
    let rec = record("Click", &id, c0, e0).to_string();
    post_event(
        &w,
        rec.clone(),
        Some("raw-delivery-secret-other-0123456789"),
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    post_event(&w, rec, None)
        .await
        .problem(StatusCode::FORBIDDEN);
    assert_eq!(statistics(&w, &id).await["opened"], 2);
    assert_eq!(statistics(&w, &id).await["clicked"], 0);
}

#[tokio::test]
async fn signed_and_raw_ses_events_move_the_statistics_and_duplicates_count_once() {
    let w = world().await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let n = invited.len();
    assert!(n >= 6, "{n} invited");
    let before = statistics(&w, &id).await;
    assert_eq!(before["total"], n);
    assert_eq!(before["in_process"], n, "sent, not delivered yet");

    // Every invitation delivered, through a signed SNS notification each — twice.
    for (contact, email) in &invited {
        let rec = record("Delivery", &id, contact, email).to_string();
        for _ in 0..2 {
            let r = post_event(&w, signed(&rec, TOPIC).to_string(), None).await;
            assert_eq!(r.ok()["outcome"], "applied");
        }
    }
    // Then, raw delivery with the operator's secret: an open and a click (out of order:
    // the click first), a bounce and a complaint.
    let (c0, e0) = &invited[0];
    let (c1, e1) = &invited[1];
    let (c2, e2) = &invited[2];
    for rec in [
        record("Click", &id, c0, e0),
        record("Open", &id, c0, e0),
        record("Open", &id, c1, e1),
        record("Open", &id, c1, e1),
        record("Bounce", &id, c2, e2),
        record("Complaint", &id, &invited[3].0, &invited[3].1),
    ] {
        let r = post_event(&w, rec.to_string(), Some(RAW_SECRET)).await;
        assert_eq!(r.ok()["outcome"], "applied", "{rec}");
    }
    // Registration (issue 5) will record this fact; until then the store takes it directly.
    w.app
        .store
        .apply_facts(
            &t1(),
            &CampaignId::parse(&id).unwrap(),
            &[(
                portal_core::domain::ContactId::parse(&invited[4].0).unwrap(),
                InvitationFact::Registered,
            )],
        )
        .await
        .unwrap();

    let s = statistics(&w, &id).await;
    let expected_unopened = n - 5;
    assert_eq!(
        s,
        json!({
            "total": n, "in_process": 0, "failed": 0, "unopened": expected_unopened,
            "bounced": 1, "opened": 1, "clicked": 1, "unsubscribed": 1, "registered": 1,
            "success_rate": 1.0 / n as f64,
        })
    );
    // A permanent bounce and a complaint put the addresses on the suppression list.
    for email in [e2, &invited[3].1] {
        assert!(w
            .app
            .store
            .is_suppressed(&t1(), &Email::parse(email).unwrap())
            .await
            .unwrap());
    }
    // The drill-down shows the bounce with its reason, and CSV carries the same rows.
    let bounced = recipients(&w, &id, json!({"category": "bounced"})).await;
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0]["email"], e2.as_str());
    assert_eq!(bounced[0]["reason"], "Permanent/General");
    let mut req = request(
        Method::POST,
        &format!("/v1/campaigns/{id}/recipients"),
        Some(&w.token),
        Some("application/json"),
        json!({"category": "unopened"}).to_string(),
    );
    req.headers_mut()
        .insert(header::ACCEPT, "text/csv".parse().unwrap());
    let csv = w.app.send(req).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type().starts_with("text/csv"));
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "contact_id,email,contact_name,account_number,category,send_state,reason,invited_at"
    );
    assert_eq!(lines.len(), 1 + expected_unopened);
    assert!(lines[1..].iter().all(|l| l.contains(",unopened,sent,")));
}

#[tokio::test]
async fn forged_tampered_wrong_topic_wrong_host_and_unsigned_events_are_403_and_change_nothing() {
    let w = world().await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let (c, e) = &invited[0];
    let rec = record("Open", &id, c, e).to_string();
    let genuine = signed(&rec, TOPIC);

    let mut tampered = genuine.clone();
    tampered["Message"] = Value::from(record("Click", &id, c, e).to_string());
    let mut forged = genuine.clone();
    forged["Signature"] = Value::from(STANDARD.encode([7u8; 256]));
    let wrong_topic = signed(&rec, "arn:aws:sns:us-east-1:999999999999:other");
    let mut wrong_host = genuine.clone();
    wrong_host["SigningCertURL"] = Value::from(format!("https://sns.evil.example.com/{CERT_FILE}"));
    let mut look_alike = genuine.clone();
    look_alike["SigningCertURL"] = Value::from(format!(
        "https://sns.us-east-1.amazonaws.com.evil.example/{CERT_FILE}"
    ));
    for (what, body) in [
        ("tampered", tampered),
        ("forged", forged),
        ("wrong topic", wrong_topic),
        ("wrong host", wrong_host),
        ("look-alike host", look_alike),
    ] {
        let r = post_event(&w, body.to_string(), None).await;
        let detail = r.problem(StatusCode::FORBIDDEN);
        assert!(!detail.is_empty(), "{what}");
    }
    // Unsigned: no credentials, wrong credentials.
    post_event(&w, rec.clone(), None)
        .await
        .problem(StatusCode::FORBIDDEN);
    post_event(&w, rec.clone(), Some("not-the-secret-at-all-0000"))
        .await
        .problem(StatusCode::FORBIDDEN);
    // A signed-looking body that is not JSON enough to be SNS is a 400.
    post_event(&w, r#"{"Type":"Notification","TopicArn":7}"#.into(), None)
        .await
        .problem(StatusCode::BAD_REQUEST);

    assert_eq!(statistics(&w, &id).await["opened"], 0);
    // The genuine message is accepted (the certificate was never fetched: Offline panics).
    let r = post_event(&w, genuine.to_string(), None).await;
    assert_eq!(r.ok()["outcome"], "applied");
    assert_eq!(statistics(&w, &id).await["opened"], 1);
}

#[tokio::test]
async fn events_about_nothing_of_ours_are_acknowledged_and_ignored() {
    let w = world().await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let (c, e) = &invited[0];
    // Another tenant's tag on our campaign id: nothing moves (the store finds no invitation).
    let mut other = record("Open", &id, c, e);
    other["mail"]["tags"]["tenant"] = json!(["t2"]);
    let r = post_event(&w, signed(&other.to_string(), TOPIC).to_string(), None).await;
    assert_eq!(r.ok()["report"]["missing"], 1);
    // No tags at all, and an event type SES may add one day.
    let mut untagged = record("Open", &id, c, e);
    untagged["mail"]["tags"] = json!({});
    let mut unknown = record("Open", &id, c, e);
    unknown["eventType"] = json!("Teleport");
    unknown["teleport"] = json!({"where": "moon"});
    for rec in [untagged, unknown] {
        let r = post_event(&w, signed(&rec.to_string(), TOPIC).to_string(), None).await;
        assert_eq!(r.ok()["outcome"], "ignored", "{rec}");
    }
    assert_eq!(statistics(&w, &id).await["opened"], 0);
}

#[tokio::test]
async fn a_divisions_campaigns_are_listed_newest_first_with_their_statistics() {
    let w = world().await;
    let (first, _) = sent_campaign(&w, "d1").await;
    w.app.clock.advance(time::Duration::hours(25));
    let token = {
        let mut c = claims("t1", ALL_PERMISSIONS);
        c.exp = (NOW + time::Duration::days(3)).unix_timestamp();
        portal_http::auth::issue_hs256(SECRET, &c).unwrap()
    };
    let w = World { token, ..w };
    let (second, _) = sent_campaign(&w, "d1").await;
    let (_other, _) = sent_campaign(&w, "d2").await;

    let page = w
        .app
        .get("/v1/campaigns?division_id=d1", &w.token)
        .await
        .ok();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert!(page["items"][0]["statistics"]["total"].as_u64().is_some());
    assert_eq!(page["next_cursor"], Value::Null);

    let one = w
        .app
        .get("/v1/campaigns?division_id=d1&limit=1", &w.token)
        .await
        .ok();
    assert_eq!(one["items"][0]["campaign_id"], second.as_str());
    let cursor = one["next_cursor"].as_str().expect("a next page");
    let two = w
        .app
        .get(
            &format!("/v1/campaigns?division_id=d1&limit=1&cursor={cursor}"),
            &w.token,
        )
        .await
        .ok();
    assert_eq!(two["items"][0]["campaign_id"], first.as_str());

    // Another tenant sees none of it; bad input is a 4xx problem.
    let other = admin_until("t2");
    w.app
        .get("/v1/campaigns?division_id=d1", &other)
        .await
        .problem(StatusCode::NOT_FOUND);
    w.app
        .get("/v1/campaigns?division_id=nope", &w.token)
        .await
        .problem(StatusCode::NOT_FOUND);
    w.app
        .get("/v1/campaigns", &w.token)
        .await
        .problem(StatusCode::BAD_REQUEST);
    w.app
        .get("/v1/campaigns?division_id=d1&limit=0", &w.token)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    w.app
        .get("/v1/campaigns?division_id=d1&cursor=garbage", &w.token)
        .await
        .problem(StatusCode::BAD_REQUEST);
}

fn admin_until(tenant: &str) -> String {
    let mut c = claims(tenant, ALL_PERMISSIONS);
    c.exp = (NOW + time::Duration::days(3)).unix_timestamp();
    portal_http::auth::issue_hs256(SECRET, &c).unwrap()
}

#[tokio::test]
async fn the_drill_down_filters_searches_pages_and_refuses_bad_input() {
    let w = world().await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let all = recipients(&w, &id, json!({})).await;
    assert_eq!(all.len(), invited.len());
    // Search by part of an email, case-insensitive.
    let (_, email) = &invited[0];
    let needle = email.split('@').next().unwrap().to_uppercase();
    let found = recipients(&w, &id, json!({"q": needle})).await;
    assert!(found.iter().any(|r| r["email"] == email.as_str()));
    assert!(found.len() < all.len());
    // Paging visits each invitation once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 2});
        if let Some(c) = &cursor {
            body["cursor"] = Value::from(c.clone());
        }
        let page = w
            .app
            .post(&format!("/v1/campaigns/{id}/recipients"), &w.token, &body)
            .await
            .ok();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["contact_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), invited.len());

    let path = format!("/v1/campaigns/{id}/recipients");
    w.app
        .post(&path, &w.token, &json!({"category": "sent"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    w.app
        .post(&path, &w.token, &json!({"limit": 501}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    w.app
        .post(
            "/v1/campaigns/0123456789abcdef0123456789abcdef/recipients",
            &w.token,
            &json!({}),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    w.app
        .post(&path, &admin_until("t2"), &json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
    w.app
        .post(&path, &token("t1", &["sync:write"]), &json!({}))
        .await
        .problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ses_events_through_eventbridge_reach_the_same_core_and_a_recount_finds_no_drift() {
    use portal_aws::webhook;
    use portal_core::ports::WebhookOutcome;
    use portal_core::usecases::events::{recount, RecountRequest};
    let w = world().await;
    let (id, invited) = sent_campaign(&w, "d1").await;
    let (c, e) = &invited[0];
    let event = json!({
        "version": "0", "id": "9f1c7b4e-0000-0000-0000-000000000000",
        "detail-type": "Email Opened", "source": "aws.ses", "account": "123456789012",
        "time": "2026-11-02T12:00:00Z", "region": "us-east-1", "resources": [],
        "detail": record("Open", &id, c, e),
    });
    for _ in 0..2 {
        let out = webhook::on_eventbridge(w.app.store.as_ref(), &event)
            .await
            .unwrap();
        assert!(matches!(out, WebhookOutcome::Applied { .. }), "{out:?}");
    }
    assert_eq!(statistics(&w, &id).await["opened"], 1);
    // Another source on the default bus is acknowledged and changes nothing.
    let mut other = event.clone();
    other["source"] = json!("aws.s3");
    let out = webhook::on_eventbridge(w.app.store.as_ref(), &other)
        .await
        .unwrap();
    assert!(matches!(out, WebhookOutcome::Ignored { .. }), "{out:?}");

    // What `{"recount": …}` answers on AWS.
    let req = RecountRequest {
        tenant: t1(),
        campaign_id: CampaignId::parse(&id).unwrap(),
        fix: false,
    };
    let report = recount(w.app.store.as_ref(), &req)
        .await
        .unwrap()
        .expect("the campaign exists");
    assert!(!report.drifted && !report.fixed);
    assert_eq!(report.counted.categories.opened, 1);
    let unknown = RecountRequest {
        campaign_id: CampaignId::parse("0123456789abcdef0123456789abcdef").unwrap(),
        ..req
    };
    assert!(recount(w.app.store.as_ref(), &unknown)
        .await
        .unwrap()
        .is_none());
}
