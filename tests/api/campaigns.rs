//! Campaign routes: a bulk send is accepted at once and queues its fan-out, the division's
//! 24-hour lock answers 409 with when to retry (held at 23:59:59, free at 24:00:00),
//! `Idempotency-Key` replays, the individual invite, and unsubscribe marking the invitation.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{
    hash_token, CampaignId, CampaignStatus, ContactId, DivisionId, Email, InvitationCategory,
    PortalStatus, TenantId,
};
use portal_core::ports::{
    CampaignStore, ContactStateStore, Recipient, SendMessage, SuppressionReason, SuppressionStore,
};
use portal_core::usecases::send::TokenDeriver;
use portal_http::auth::issue_hs256;
use serde_json::{json, Value};
use time::Duration;

use crate::helpers::*;

const D2_SENDER: &str = "board@d2.example.com";
/// A contact of `accounts("d1", 10)` with an address, and one without.
const CONTACT: &str = "d1-c0-0";
const NO_EMAIL: &str = "d1-c3-0";

/// An admin token of `tenant` valid for three days after [`NOW`], for tests that move the
/// clock past a day.
fn lasting_admin(tenant: &str) -> String {
    let mut c = claims(tenant, ALL_PERMISSIONS);
    c.exp = (NOW + Duration::days(3)).unix_timestamp();
    issue_hs256(SECRET, &c).unwrap()
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "subject": "Your [DivisionName] portal",
        "html": "<a href=\"[PortalLink]\">Register</a> <a href=\"[UnsubscribeLink]\">Unsubscribe</a>",
        "text": "Register: [PortalLink]",
    })
}

/// Tenant `t1` with divisions d1 (`hoa@example.com`) and d2 ([`D2_SENDER`]), their
/// accounts, and the template `welcome`; returns the app, its bus and an admin token.
async fn seeded() -> (App, std::sync::Arc<RecordingBus>, String) {
    let (app, bus) = app_with_sending();
    let t = lasting_admin("t1");
    seed(&app, &t).await;
    (app, bus, t)
}

async fn seed(app: &App, t: &str) {
    app.put_division(t, "d1").await;
    app.put(
        "/v1/divisions/d2",
        t,
        &json!({"name": "Division d2", "email_from": D2_SENDER}),
    )
    .await
    .ok();
    app.allow_senders(t, &["example.com", "example.org", "d2.example.com"])
        .await;
    app.sync(t, &accounts("d1", 10)).await;
    app.sync(t, &accounts("d2", 5)).await;
    app.put("/v1/templates/welcome", t, &welcome()).await.ok();
}

fn body(divisions: &[&str]) -> Value {
    json!({"division_ids": divisions, "filters": {}, "template_id": "welcome"})
}

async fn post_campaign(app: &App, token: &str, key: Option<&str>, body: &str) -> Reply {
    let mut req = request(
        Method::POST,
        "/v1/campaigns",
        Some(token),
        Some("application/json"),
        body.to_owned(),
    );
    if let Some(k) = key {
        req.headers_mut()
            .insert("idempotency-key", k.parse().expect("header value"));
    }
    app.send(req).await
}

/// Asserts a 202 `{campaign_id, status}` and returns the id.
#[track_caller]
fn accepted(r: &Reply, status: &str) -> String {
    assert_eq!(r.status, StatusCode::ACCEPTED, "body: {}", r.text());
    let v = r.json();
    assert_eq!(v["status"], status, "{v}");
    let id = v["campaign_id"].as_str().expect("campaign_id").to_owned();
    assert_eq!(keys(&v), ["campaign_id", "status"].map(String::from).into());
    assert_eq!(r.headers[header::LOCATION], format!("/v1/campaigns/{id}"));
    id
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn fan_out(tenant_id: &str, campaign: &str) -> SendMessage {
    SendMessage::FanOut {
        tenant: tenant(tenant_id),
        campaign_id: CampaignId::parse(campaign).unwrap(),
        cursor: None,
        spec: None,
    }
}

/// Asserts a 409 problem with `retry_after`, the held id member and a `Retry-After` header.
#[track_caller]
fn held(r: &Reply, member: &str, id: &str, retry_after: &str, seconds: i64) {
    r.problem(StatusCode::CONFLICT);
    let p = r.json();
    assert_eq!(p["retry_after"], retry_after, "{p}");
    assert_eq!(p[member], id, "{p}");
    assert_eq!(r.headers[header::RETRY_AFTER], seconds.to_string());
}

#[tokio::test]
async fn a_campaign_is_accepted_at_once_its_fan_out_queued_and_it_reads_back() {
    let (app, bus, t) = seeded().await;
    let r = post_campaign(&app, &t, None, &body(&["d1", "d2"]).to_string()).await;
    let id = accepted(&r, "queued");
    assert_eq!(bus.messages(), vec![fan_out("t1", &id)]);

    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(
        c,
        json!({
            "campaign_id": id,
            "trigger": "manual",
            "status": "queued",
            "division_ids": ["d1", "d2"],
            "filters": {
                "account_class": [], "bill_group": [], "account_source": [], "site_source": [],
                "active_services": false, "balance_due": false,
                "billing_contacts_only": false, "without_autopay": false,
            },
            "limit_to_uninvited": true,
            "template_id": "welcome",
            "email_from": "hoa@example.com",
            "created_at": "2026-11-02T12:00:00Z",
            "created_by": "user-of-t1",
            "targeted": 0,
            "skipped": {"accepted": 0, "held_24h": 0, "suppressed": 0, "no_email": 0, "duplicate_address": 0},
            "statistics": {
                "total": 0, "in_process": 0, "failed": 0, "unopened": 0, "bounced": 0,
                "opened": 0, "clicked": 0, "unsubscribed": 0, "registered": 0,
                "success_rate": null,
            },
            "sends": {"pending": 0, "sent": 0, "failed": 0},
            "pause_reason": null,
        })
    );
}

#[tokio::test]
async fn the_sender_defaults_to_the_first_divisions_address_and_can_be_named() {
    let (app, _, t) = seeded().await;
    let id = accepted(
        &post_campaign(&app, &t, None, &body(&["d2"]).to_string()).await,
        "queued",
    );
    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["email_from"], D2_SENDER);

    let mut named = body(&["d1"]);
    named["email_from"] = "Office@Example.org".into();
    named["limit_to_uninvited"] = false.into();
    named["filters"] = json!({"bill_group": ["A"], "balance_due": true});
    let id = accepted(
        &post_campaign(&app, &t, None, &named.to_string()).await,
        "queued",
    );
    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["email_from"], "Office@Example.org");
    assert_eq!(c["limit_to_uninvited"], false);
    assert_eq!(c["filters"]["bill_group"], json!(["A"]));
    assert_eq!(c["filters"]["balance_due"], true);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_answer_the_same_campaign_and_another_body_is_a_422() {
    let (app, bus, t) = seeded().await;
    let first = accepted(
        &post_campaign(&app, &t, Some("key-1"), &body(&["d1"]).to_string()).await,
        "queued",
    );
    // The same request spelled differently: other key order, whitespace, defaults written out.
    let same = r#"{ "template_id": "welcome", "limit_to_uninvited": true,
                    "division_ids": ["d1"], "filters": {"bill_group": []} }"#;
    let again = accepted(
        &post_campaign(&app, &t, Some("key-1"), same).await,
        "queued",
    );
    assert_eq!(again, first);
    // Still queued, so the fan-out message is published again (recovers a lost publish).
    assert_eq!(
        bus.messages(),
        vec![fan_out("t1", &first), fan_out("t1", &first)]
    );

    // No second campaign was made: without the key the division is held by the first.
    post_campaign(&app, &t, None, &body(&["d1"]).to_string())
        .await
        .problem(StatusCode::CONFLICT);

    // The same key with another body.
    let mut other = body(&["d1"]);
    other["limit_to_uninvited"] = false.into();
    let detail = post_campaign(&app, &t, Some("key-1"), &other.to_string())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("Idempotency-Key"), "{detail}");
    let detail = post_campaign(&app, &t, Some("key-1"), &body(&["d2"]).to_string())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("Idempotency-Key"), "{detail}");
    // ...which locked nothing: d2 is still free.
    accepted(
        &post_campaign(&app, &t, None, &body(&["d2"]).to_string()).await,
        "queued",
    );
    assert_eq!(bus.messages().len(), 3);
}

#[tokio::test]
async fn a_replayed_key_of_a_campaign_that_moved_on_answers_its_status_and_queues_nothing() {
    let (app, bus, t) = seeded().await;
    let id = accepted(
        &post_campaign(&app, &t, Some("k"), &body(&["d1"]).to_string()).await,
        "queued",
    );
    let cid = CampaignId::parse(&id).unwrap();
    assert!(app
        .store
        .update_campaign_status(
            &tenant("t1"),
            &cid,
            CampaignStatus::Queued,
            CampaignStatus::FanningOut,
            None
        )
        .await
        .unwrap());
    let again = post_campaign(&app, &t, Some("k"), &body(&["d1"]).to_string()).await;
    assert_eq!(accepted(&again, "fanning_out"), id);
    assert_eq!(bus.messages().len(), 1);
}

#[tokio::test]
async fn a_division_sent_within_24_hours_is_a_409_saying_when_and_creates_nothing() {
    let (app, bus, t) = seeded().await;
    accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );

    let r = post_campaign(&app, &t, None, &body(&["d2", "d1"]).to_string()).await;
    held(&r, "division_id", "d1", "2026-11-03T12:00:00Z", 86_400);
    assert_eq!(bus.messages().len(), 1);
    // Nothing was recorded: d2 was not locked by the refused request.
    accepted(
        &post_campaign(&app, &t, None, &body(&["d2"]).to_string()).await,
        "queued",
    );

    app.clock
        .advance(Duration::hours(24) - Duration::seconds(1));
    let r = post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await;
    held(&r, "division_id", "d1", "2026-11-03T12:00:00Z", 1);

    app.clock.advance(Duration::seconds(1));
    accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    assert_eq!(bus.messages().len(), 3);
}

#[tokio::test]
async fn an_unknown_template_is_a_422_and_locks_nothing() {
    let (app, bus, t) = seeded().await;
    let mut b = body(&["d1"]);
    b["template_id"] = "nope".into();
    let detail = post_campaign(&app, &t, None, &b.to_string())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("template nope"), "{detail}");
    assert!(bus.messages().is_empty());
    accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
}

#[tokio::test]
async fn bad_campaign_requests_are_4xx_problems_and_lock_nothing() {
    let (app, bus, t) = seeded().await;
    let many: Vec<String> = (0..=portal_core::domain::MAX_CAMPAIGN_DIVISIONS)
        .map(|i| format!("d{i}"))
        .collect();
    let cases: Vec<(String, Option<String>, StatusCode, &str)> = vec![
        (body(&[]).to_string(), None, StatusCode::UNPROCESSABLE_ENTITY, "division_ids"),
        (body(&["d1", "d1"]).to_string(), None, StatusCode::UNPROCESSABLE_ENTITY, "twice"),
        (
            json!({"division_ids": many, "template_id": "welcome"}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "at most 49",
        ),
        (body(&["d1", "ghost"]).to_string(), None, StatusCode::NOT_FOUND, "ghost"),
        (body(&["ghost", "d1"]).to_string(), None, StatusCode::NOT_FOUND, "ghost"),
        (
            json!({"division_ids": ["d1"], "template_id": "welcome", "email_from": "not an address"}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "email_from",
        ),
        (
            json!({"division_ids": ["d1"], "template_id": "welcome", "filters": {"colour": []}}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"division_ids": ["d1"]}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_id",
        ),
        (
            json!({"division_ids": ["d1"], "template_id": "welcome", "send_now": true}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "send_now",
        ),
        (
            json!({"division_ids": ["d#1"], "template_id": "welcome"}).to_string(),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "division_id",
        ),
        ("{\"division_ids\": [".into(), None, StatusCode::BAD_REQUEST, "JSON"),
        ("".into(), None, StatusCode::BAD_REQUEST, "JSON"),
        (
            body(&["d1"]).to_string(),
            Some("k".repeat(256)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key",
        ),
        (
            body(&["d1"]).to_string(),
            Some(String::new()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key",
        ),
    ];
    for (b, key, status, needle) in cases {
        let detail = post_campaign(&app, &t, key.as_deref(), &b)
            .await
            .problem(status);
        assert!(detail.contains(needle), "{b}: {detail}");
    }
    let r = app
        .send(request(
            Method::POST,
            "/v1/campaigns",
            Some(&t),
            Some("text/plain"),
            body(&["d1"]).to_string(),
        ))
        .await;
    r.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert!(bus.messages().is_empty());
    // A key of exactly 255 characters is fine, and nothing above locked d1.
    accepted(
        &post_campaign(&app, &t, Some(&"k".repeat(255)), &body(&["d1"]).to_string()).await,
        "queued",
    );
}

#[tokio::test]
async fn campaigns_are_read_only_by_their_tenant_and_ids_are_checked() {
    let (app, _, t1) = seeded().await;
    let t2 = admin("t2");
    seed(&app, &t2).await;
    let id = accepted(
        &post_campaign(&app, &t1, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    app.get(&format!("/v1/campaigns/{id}"), &t2)
        .await
        .problem(StatusCode::NOT_FOUND);
    // Same division ids in t2 are t2's own, and unlocked.
    accepted(
        &post_campaign(&app, &t2, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    let unknown = "0".repeat(32);
    app.get(&format!("/v1/campaigns/{unknown}"), &t1)
        .await
        .problem(StatusCode::NOT_FOUND);
    let detail = app
        .get("/v1/campaigns/not-a-campaign", &t1)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("campaign_id"), "{detail}");
}

#[tokio::test]
async fn campaign_routes_need_a_token_and_their_permission() {
    let (app, bus, t) = seeded().await;
    let id = accepted(
        &post_campaign(&app, &t, None, &body(&["d2"]).to_string()).await,
        "queued",
    );
    let individual = json!({"contact_id": CONTACT, "template_id": "welcome"});
    let sends = [
        ("/v1/campaigns", body(&["d1"])),
        ("/v1/invitations/individual", individual),
    ];
    for (uri, b) in &sends {
        let r = app
            .send(request(
                Method::POST,
                uri,
                None,
                Some("application/json"),
                b.to_string(),
            ))
            .await;
        r.problem(StatusCode::UNAUTHORIZED);
        let reader = token("t1", &["invitations:read"]);
        let r = app.post(uri, &reader, b).await;
        r.problem(StatusCode::FORBIDDEN);
        assert_eq!(r.json()["permission"], "invitations:send");
    }
    let uri = format!("/v1/campaigns/{id}");
    app.send(request(Method::GET, &uri, None, None, Body::empty()))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let r = app.get(&uri, &token("t1", &["invitations:send"])).await;
    r.problem(StatusCode::FORBIDDEN);
    assert_eq!(r.json()["permission"], "invitations:read");
    assert_eq!(bus.messages().len(), 1);
    // A sender with both permissions, nothing else, is enough.
    let sender = token("t1", &["invitations:send", "invitations:read"]);
    accepted(
        &post_campaign(&app, &sender, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    app.get(&uri, &sender).await.ok();
}

#[tokio::test]
async fn a_server_without_sending_configured_fails_loudly_on_the_send_routes() {
    let app = app();
    let t = admin("t1");
    seed(&app, &t).await;
    post_campaign(&app, &t, None, &body(&["d1"]).to_string())
        .await
        .problem(StatusCode::INTERNAL_SERVER_ERROR);
    app.post(
        "/v1/invitations/individual",
        &t,
        &json!({"contact_id": CONTACT, "template_id": "welcome"}),
    )
    .await
    .problem(StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_campaign_the_bus_refused_stays_queued_and_the_same_key_queues_it_again() {
    let (app, bus, t) = seeded().await;
    bus.refuse(true);
    let r = post_campaign(&app, &t, Some("k"), &body(&["d1"]).to_string()).await;
    r.problem(StatusCode::SERVICE_UNAVAILABLE);
    let id = r.json()["campaign_id"].as_str().unwrap().to_owned();
    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["status"], "queued");
    assert!(bus.messages().is_empty());

    bus.refuse(false);
    let again = post_campaign(&app, &t, Some("k"), &body(&["d1"]).to_string()).await;
    assert_eq!(accepted(&again, "queued"), id);
    assert_eq!(bus.messages(), vec![fan_out("t1", &id)]);
}

async fn individual(app: &App, t: &str, contact: &str) -> Reply {
    app.post(
        "/v1/invitations/individual",
        t,
        &json!({"contact_id": contact, "template_id": "welcome"}),
    )
    .await
}

#[tokio::test]
async fn an_individual_invite_claims_the_contact_and_queues_one_delivery() {
    let (app, bus, t) = seeded().await;
    let before = app.counts(&t, json!({"division_ids": ["d1"]})).await;
    let id = accepted(&individual(&app, &t, CONTACT).await, "sending");
    let cid = CampaignId::parse(&id).unwrap();
    let contact = ContactId::parse(CONTACT).unwrap();
    let key = app.get("/v1/accounts/d1-a0/portal-key", &t).await.ok()["portal_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        bus.messages(),
        vec![SendMessage::Deliver {
            tenant: tenant("t1"),
            campaign_id: cid.clone(),
            recipients: vec![Recipient {
                contact_id: contact.clone(),
                email: Email::parse("person0.0@d1.example.com").unwrap(),
                contact_name: "Person 0 0".into(),
                account_number: "10000".into(),
                account_name: "Account 0 of d1".into(),
                division_id: DivisionId::parse("d1").unwrap(),
                division_name: "Division d1".into(),
                portal_key: key.clone(),
                fresh: true,
            }],
            spec: None,
        }]
    );
    assert_eq!(
        key.len(),
        19,
        "every account has a generated portal key: {key:?}"
    );

    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["trigger"], "individual");
    assert_eq!(c["status"], "sending");
    assert_eq!(c["division_ids"], json!(["d1"]));
    assert_eq!(c["limit_to_uninvited"], false);
    assert_eq!(c["email_from"], "hoa@example.com");
    assert_eq!(c["targeted"], 1);
    assert_eq!(
        c["statistics"],
        json!({
            "total": 1, "in_process": 1, "failed": 0, "unopened": 0, "bounced": 0,
            "opened": 0, "clicked": 0, "unsubscribed": 0, "registered": 0,
            "success_rate": 0.0,
        })
    );
    assert_eq!(c["sends"], json!({"pending": 1, "sent": 0, "failed": 0}));

    // The invitation holds only the hash of the token delivery will derive again.
    let inv = app
        .store
        .get_invitation(&tenant("t1"), &cid, &contact)
        .await
        .unwrap()
        .expect("invitation");
    assert_eq!(inv.category(), InvitationCategory::InProcess);
    let token = TokenDeriver::new(TOKEN_SECRET)
        .unwrap()
        .token(&tenant("t1"), &cid, &contact);
    assert_eq!(inv.registration_token_hash, hash_token(&token));
    assert_eq!(inv.expires_at, NOW + Duration::days(14));

    // The contact is now pending and held by the 24-hour rule.
    let after = app
        .counts(
            &t,
            json!({"division_ids": ["d1"], "limit_to_uninvited": false}),
        )
        .await;
    assert_eq!(after["held_24h"], 1);
    assert_eq!(after["pending"], before["pending"].as_u64().unwrap() + 1);

    // A second invite within 24 hours, by any route, is a 409 that records nothing.
    app.clock.advance(Duration::hours(1));
    let r = individual(&app, &t, CONTACT).await;
    held(&r, "contact_id", CONTACT, "2026-11-03T12:00:00Z", 23 * 3600);
    assert_eq!(bus.messages().len(), 1);

    // An individual invite takes no division lock: d1 can still be bulk-sent.
    accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    // And at 24:00:00 the contact can be invited again.
    app.clock.set(NOW + Duration::hours(24));
    accepted(&individual(&app, &t, CONTACT).await, "sending");
}

#[tokio::test]
async fn accepted_suppressed_and_address_less_contacts_are_422_and_unknown_ones_404() {
    let (app, bus, t) = seeded().await;
    let t1 = tenant("t1");
    app.store
        .set_portal_status(
            &t1,
            &ContactId::parse("d1-c1-0").unwrap(),
            PortalStatus::Accepted,
        )
        .await
        .unwrap();
    app.store
        .suppress(
            &t1,
            &Email::parse("person2.0@d1.example.com").unwrap(),
            SuppressionReason::Bounced,
            NOW,
        )
        .await
        .unwrap();
    for (contact, needle) in [
        ("d1-c1-0", "registered"),
        ("d1-c2-0", "suppression list"),
        (NO_EMAIL, "no email address"),
    ] {
        let detail = individual(&app, &t, contact)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            detail.contains(contact) && detail.contains(needle),
            "{detail}"
        );
    }
    individual(&app, &t, "ghost")
        .await
        .problem(StatusCode::NOT_FOUND);
    // Another tenant's contact looks exactly like a missing one.
    let t2 = admin("t2");
    app.put("/v1/templates/welcome", &t2, &welcome()).await.ok();
    individual(&app, &t2, CONTACT)
        .await
        .problem(StatusCode::NOT_FOUND);
    let mut b = json!({"contact_id": CONTACT, "template_id": "nope"});
    app.post("/v1/invitations/individual", &t, &b)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    b["template_id"] = "welcome".into();
    b["email_from"] = "nope".into();
    app.post("/v1/invitations/individual", &t, &b)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    for raw in [
        "{",
        "[]",
        "{\"contact_id\": 5, \"template_id\": \"welcome\"}",
    ] {
        let r = app
            .send(request(
                Method::POST,
                "/v1/invitations/individual",
                Some(&t),
                Some("application/json"),
                raw,
            ))
            .await;
        assert!(
            matches!(
                r.status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{raw}: {}",
            r.status
        );
        r.problem(r.status);
    }
    assert!(bus.messages().is_empty());
}

#[tokio::test]
async fn an_individual_invite_the_bus_refused_ends_failed_not_lost() {
    let (app, bus, t) = seeded().await;
    bus.refuse(true);
    let r = individual(&app, &t, CONTACT).await;
    r.problem(StatusCode::SERVICE_UNAVAILABLE);
    let id = r.json()["campaign_id"].as_str().unwrap().to_owned();
    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["status"], "failed");
    assert!(
        c["pause_reason"]
            .as_str()
            .is_some_and(|r| r.contains("queued")),
        "{c}"
    );
    let inv = app
        .store
        .get_invitation(
            &tenant("t1"),
            &CampaignId::parse(&id).unwrap(),
            &ContactId::parse(CONTACT).unwrap(),
        )
        .await
        .unwrap()
        .expect("invitation");
    assert_eq!(inv.category().as_str(), "failed");
}

async fn one_click(app: &App, token: &str) -> Reply {
    app.send(request(
        Method::POST,
        &format!("/v1/unsubscribe?token={token}"),
        None,
        Some("application/x-www-form-urlencoded"),
        "List-Unsubscribe=One-Click",
    ))
    .await
}

#[tokio::test]
async fn unsubscribing_marks_the_invitation_the_link_came_with_and_suppresses_the_address() {
    let (app, _, t) = seeded().await;
    let id = accepted(&individual(&app, &t, CONTACT).await, "sending");
    let cid = CampaignId::parse(&id).unwrap();
    let contact = ContactId::parse(CONTACT).unwrap();
    let email = Email::parse("person0.0@d1.example.com").unwrap();
    let signer = UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).unwrap();
    let link = signer.sign(&tenant("t1"), &email, &format!("{id}:{CONTACT}"), NOW);

    for _ in 0..2 {
        let r = one_click(&app, &link).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let inv = app
            .store
            .get_invitation(&tenant("t1"), &cid, &contact)
            .await
            .unwrap()
            .expect("invitation");
        assert_eq!(inv.category(), InvitationCategory::Unsubscribed);
    }
    assert!(app
        .store
        .is_suppressed(&tenant("t1"), &email)
        .await
        .unwrap());
    // Twice, yet counted once.
    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(
        c["statistics"],
        json!({
            "total": 1, "in_process": 0, "failed": 0, "unopened": 0, "bounced": 0,
            "opened": 0, "clicked": 0, "unsubscribed": 1, "registered": 0,
            "success_rate": 0.0,
        })
    );
}

#[tokio::test]
async fn an_unsubscribe_link_without_a_known_invitation_still_suppresses_the_address() {
    let (app, _, _) = seeded().await;
    let signer = UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).unwrap();
    let unknown_campaign = "0".repeat(32);
    for (i, invitation) in [
        String::new(),
        "inv-1".to_owned(),
        format!("{unknown_campaign}:{CONTACT}"),
        format!("{unknown_campaign}:bad#id"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = Email::parse(&format!("person{i}.0@d1.example.com")).unwrap();
        let link = signer.sign(&tenant("t1"), &email, &invitation, NOW);
        let r = one_click(&app, &link).await;
        assert_eq!(r.status, StatusCode::OK, "{invitation}: {}", r.text());
        assert!(
            app.store
                .is_suppressed(&tenant("t1"), &email)
                .await
                .unwrap(),
            "{invitation}"
        );
    }
}

#[tokio::test]
async fn the_documented_campaign_shapes_are_the_ones_the_api_reads_and_writes() {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../openapi.yaml")).expect("openapi.yaml parses");
    let spec = serde_json::to_value(yaml).unwrap();
    let schema = |name: &str| spec["components"]["schemas"][name].clone();
    let required = |s: &Value| -> BTreeSet<String> {
        s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let (app, _, t) = seeded().await;

    // Every documented request field is accepted (bodies deny unknown fields): the form
    // over divisions, and the hand-picked one.
    let full = json!({"division_ids": ["d1"], "filters": {}, "limit_to_uninvited": true,
                      "template_id": "welcome", "email_from": "office@example.org"});
    let picked = json!({"contact_ids": [CONTACT], "limit_to_uninvited": true,
                        "template_id": "welcome", "email_from": "office@example.org"});
    let mut both = keys(&full);
    both.extend(keys(&picked));
    assert_eq!(keys(&schema("CampaignRequest")["properties"]), both);
    let r = post_campaign(&app, &t, None, &picked.to_string()).await;
    let picked_id = accepted(&r, "queued");
    let c = app
        .get(&format!("/v1/campaigns/{picked_id}"), &t)
        .await
        .ok();
    let selection = schema("Campaign")["properties"]["selection"].clone();
    assert_eq!(required(&selection), keys(&c["selection"]));
    assert_eq!(selection["properties"]["kind"]["enum"], json!(["contacts"]));
    let r = post_campaign(&app, &t, None, &full.to_string()).await;
    let id = accepted(&r, "queued");
    assert_eq!(required(&schema("CampaignStarted")), keys(&r.json()));

    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    let documented = schema("Campaign");
    assert_eq!(required(&documented), keys(&c));
    let optional: BTreeSet<String> = keys(&documented["properties"])
        .difference(&required(&documented))
        .cloned()
        .collect();
    assert_eq!(
        optional,
        ["recurring", "selection"].map(String::from).into()
    );
    for part in ["skipped", "statistics", "sends"] {
        let mut shape = documented["properties"][part].clone();
        if let Some(r) = shape["$ref"].as_str() {
            shape = schema(r.trim_start_matches("#/components/schemas/"));
        }
        assert_eq!(required(&shape), keys(&c[part]), "{part}");
    }
    let statuses = schema("CampaignStatus")["enum"].clone();
    assert!(statuses.as_array().unwrap().contains(&c["status"]));

    let individual = json!({"contact_id": CONTACT, "template_id": "welcome",
                            "email_from": "office@example.org"});
    assert_eq!(
        keys(&schema("IndividualRequest")["properties"]),
        keys(&individual)
    );
    let r = app
        .post("/v1/invitations/individual", &t, &individual)
        .await;
    accepted(&r, "sending");
}

// --- Hand-picked selections (`contact_ids`) ---------------------------------------------

fn picked(ids: &[&str]) -> Value {
    json!({"contact_ids": ids, "template_id": "welcome"})
}

#[tokio::test]
async fn a_hand_picked_selection_is_accepted_reads_back_as_one_and_shows_in_each_divisions_history()
{
    let (app, bus, t) = seeded().await;
    // Repeats are dropped; the first contact's division (d2) gives the sender.
    let ids = ["d2-c0-0", CONTACT, "d1-c1-0", CONTACT, NO_EMAIL];
    let r = post_campaign(&app, &t, None, &picked(&ids).to_string()).await;
    let id = accepted(&r, "queued");
    assert_eq!(bus.messages(), vec![fan_out("t1", &id)]);

    let c = app.get(&format!("/v1/campaigns/{id}"), &t).await.ok();
    assert_eq!(c["trigger"], "manual");
    assert_eq!(c["selection"], json!({"kind": "contacts", "contacts": 4}));
    assert_eq!(c["division_ids"], json!(["d2", "d1"]));
    assert_eq!(c["email_from"], D2_SENDER);
    assert_eq!(c["filters"]["account_class"], json!([]));
    assert_eq!(c["limit_to_uninvited"], true);
    for d in ["d1", "d2"] {
        let history = app
            .get(&format!("/v1/campaigns?division_id={d}"), &t)
            .await
            .ok();
        assert_eq!(history["items"][0]["campaign_id"], id, "{d}");
        assert_eq!(history["items"][0]["selection"]["contacts"], 4, "{d}");
    }
    // A campaign over divisions says nothing of a selection.
    let bulk = accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    let c = app.get(&format!("/v1/campaigns/{bulk}"), &t).await.ok();
    assert!(c.get("selection").is_none(), "{c}");
}

#[tokio::test]
async fn the_division_lock_neither_refuses_a_selection_nor_is_taken_by_one() {
    let (app, bus, t) = seeded().await;
    accepted(
        &post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await,
        "queued",
    );
    post_campaign(&app, &t, None, &body(&["d1"]).to_string())
        .await
        .problem(StatusCode::CONFLICT);

    // d1 was bulk-sent just now: a selection of its contacts is accepted all the same.
    accepted(
        &post_campaign(&app, &t, None, &picked(&[CONTACT, "d1-c1-0"]).to_string()).await,
        "queued",
    );
    // A selection in d2 does not lock d2: a bulk send of d2 right after is accepted.
    accepted(
        &post_campaign(&app, &t, None, &picked(&["d2-c0-0"]).to_string()).await,
        "queued",
    );
    accepted(
        &post_campaign(&app, &t, None, &body(&["d2"]).to_string()).await,
        "queued",
    );
    // ...and d1's lock is still the bulk send's: held until 24 hours after it.
    let r = post_campaign(&app, &t, None, &body(&["d1"]).to_string()).await;
    held(&r, "division_id", "d1", "2026-11-03T12:00:00Z", 86_400);
    let divisions = app.get("/v1/divisions", &t).await.ok();
    let d2 = divisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["division_id"] == "d2")
        .unwrap()
        .clone();
    assert_eq!(d2["last_bulk_sent_at"], "2026-11-02T12:00:00Z", "{d2}");
    assert_eq!(bus.messages().len(), 4);
}

#[tokio::test]
async fn bad_selections_are_422_problems_that_record_nothing() {
    let (app, bus, t) = seeded().await;
    let t2 = admin("t2");
    app.put_division(&t2, "d9").await;
    app.sync(&t2, &accounts("d9", 2)).await;

    let ghosts: Vec<String> = (1..=12).map(|i| format!("ghost-{i}")).collect();
    let mut with_ghosts = vec![CONTACT.to_owned()];
    with_ghosts.extend(ghosts.iter().cloned());
    let too_many: Vec<String> = (0..=portal_core::domain::MAX_SELECTED_CONTACTS)
        .map(|i| format!("c{i}"))
        .collect();
    let cases: Vec<(Value, &str)> =
        vec![
        (
            json!({"contact_ids": [CONTACT], "division_ids": ["d1"], "template_id": "welcome"}),
            "not both",
        ),
        (
            json!({"contact_ids": [CONTACT], "filters": {}, "template_id": "welcome"}),
            "not both",
        ),
        (json!({"template_id": "welcome"}), "division_ids"),
        (picked(&[]), "at least one contact"),
        (json!({"contact_ids": too_many, "template_id": "welcome"}), "at most 10000"),
        (
            json!({"contact_ids": with_ghosts, "template_id": "welcome"}),
            "12 of the contact_ids are not a contact of this tenant (ghost-1, ghost-2, ghost-3, \
             ghost-4, ghost-5, ghost-6, ghost-7, ghost-8, ghost-9, ghost-10 and 2 more)",
        ),
        // Another tenant's contact is as unknown as a made-up one.
        (picked(&[CONTACT, "d9-c0-0"]), "(d9-c0-0)"),
        (picked(&["c#1"]), "contact_id"),
        (
            json!({"contact_ids": [CONTACT], "template_id": "nope"}),
            "template nope",
        ),
    ];
    for (b, needle) in cases {
        let detail = post_campaign(&app, &t, None, &b.to_string())
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(needle), "{needle}: {detail}");
    }
    assert!(bus.messages().is_empty());
    for d in ["d1", "d2"] {
        let history = app
            .get(&format!("/v1/campaigns?division_id={d}"), &t)
            .await
            .ok();
        assert_eq!(history["items"], json!([]), "{d}");
    }
}

#[tokio::test]
async fn ten_thousand_ids_of_the_longest_length_fit_in_one_request() {
    let (app, bus, t) = seeded().await;
    // All unknown: the answer is the 422 naming them, not a 413.
    let ids: Vec<String> = (0..portal_core::domain::MAX_SELECTED_CONTACTS)
        .map(|i| format!("{i:0>64}"))
        .collect();
    let b = json!({"contact_ids": ids, "template_id": "welcome"}).to_string();
    assert!(b.len() > 600_000, "{} bytes", b.len());
    let detail = post_campaign(&app, &t, None, &b)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.starts_with("10000 of the contact_ids"), "{detail}");
    // The route's own limit, named in the 413.
    let huge = json!({"contact_ids": [CONTACT], "template_id": "welcome",
                      "email_from": format!("{}@example.org", "x".repeat(1024 * 1024))});
    let detail = post_campaign(&app, &t, None, &huge.to_string())
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("1 MiB"), "{detail}");
    assert!(bus.messages().is_empty());
}

#[tokio::test]
async fn a_selection_spanning_more_divisions_than_a_campaign_may_is_a_422() {
    let (app, bus, t) = seeded().await;
    let n = portal_core::domain::MAX_CAMPAIGN_DIVISIONS + 1;
    let mut ids = Vec::new();
    for i in 0..n {
        let d = format!("x{i}");
        app.put_division(&t, &d).await;
        app.sync(&t, &accounts(&d, 1)).await;
        ids.push(format!("{d}-c0-0"));
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let detail = post_campaign(&app, &t, None, &picked(&ids).to_string())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("50 divisions"), "{detail}");
    assert!(detail.contains("at most 49"), "{detail}");
    accepted(
        &post_campaign(&app, &t, None, &picked(&ids[..n - 1]).to_string()).await,
        "queued",
    );
    assert_eq!(bus.messages().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_replays_a_selection_whatever_the_order_of_its_ids() {
    let (app, bus, t) = seeded().await;
    let first = accepted(
        &post_campaign(
            &app,
            &t,
            Some("pick"),
            &picked(&[CONTACT, "d1-c1-0", "d2-c0-0"]).to_string(),
        )
        .await,
        "queued",
    );
    // The same set, the same first contact (it picks the sender), repeats: the same campaign.
    let same = r#"{"template_id": "welcome", "limit_to_uninvited": true,
                   "contact_ids": ["d1-c0-0", "d2-c0-0", "d1-c1-0", "d2-c0-0"]}"#;
    assert_eq!(
        accepted(&post_campaign(&app, &t, Some("pick"), same).await, "queued"),
        first
    );
    assert_eq!(
        bus.messages(),
        vec![fan_out("t1", &first), fan_out("t1", &first)]
    );
    // Another first contact picks another default sender: another request.
    for other in [
        picked(&["d2-c0-0", CONTACT, "d1-c1-0"]),
        picked(&[CONTACT, "d1-c1-0"]),
        body(&["d1"]),
    ] {
        let detail = post_campaign(&app, &t, Some("pick"), &other.to_string())
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains("Idempotency-Key"), "{detail}");
    }
    // With the sender named, the order does not matter at all.
    let mut named = picked(&[CONTACT, "d1-c1-0", "d2-c0-0"]);
    named["email_from"] = "office@example.org".into();
    let second = accepted(
        &post_campaign(&app, &t, Some("named"), &named.to_string()).await,
        "queued",
    );
    named["contact_ids"] = json!(["d2-c0-0", "d1-c1-0", CONTACT]);
    assert_eq!(
        accepted(
            &post_campaign(&app, &t, Some("named"), &named.to_string()).await,
            "queued"
        ),
        second
    );
    assert_ne!(first, second);
    let c = app.get(&format!("/v1/campaigns/{second}"), &t).await.ok();
    assert_eq!(c["email_from"], "office@example.org");
}
