//! Sender settings: a tenant sends only from the domains and addresses it allows. Without
//! settings nothing may be sent; a sender outside them is a 422 naming it on every send
//! route; divisions are still synced with any sender and say whether theirs is allowed; one
//! tenant's settings never reach another.

use axum::http::StatusCode;
use portal_core::domain::CampaignId;
use portal_core::ports::CampaignStore;
use serde_json::{json, Value};

use crate::helpers::*;

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "subject": "Your [DivisionName] portal",
        "html": "<a href=\"[PortalLink]\">Register</a>",
        "text": "Register: [PortalLink]",
    })
}

/// Tenant `t` with division `d1` sending from `board@oakhills.example.com`, ten accounts
/// and the template `welcome` — and no sender settings.
async fn unconfigured(app: &App, t: &str) {
    let r = app
        .put(
            "/v1/divisions/d1",
            t,
            &json!({"name": "Oak Hills", "email_from": "board@oakhills.example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    app.sync(t, &accounts("d1", 10)).await;
    app.put("/v1/templates/welcome", t, &welcome()).await.ok();
}

fn bulk(email_from: Option<&str>) -> Value {
    let mut b = json!({"division_ids": ["d1"], "filters": {}, "template_id": "welcome"});
    if let Some(f) = email_from {
        b["email_from"] = json!(f);
    }
    b
}

#[tokio::test]
async fn a_tenant_without_sender_settings_sends_nothing_until_it_saves_some() {
    let (app, bus) = app_with_sending();
    let t = admin("t1");
    unconfigured(&app, &t).await;

    let settings = app.get("/v1/settings/senders", &t).await.ok();
    assert_eq!(
        settings,
        json!({"domains": [], "addresses": [], "display_name": null, "updated_at": null, "updated_by": null})
    );
    let divisions = app.get("/v1/divisions", &t).await.ok();
    assert_eq!(divisions["items"][0]["sender_status"], "no_settings");
    let counts = app
        .counts(&t, json!({"division_ids": ["d1"], "filters": {}}))
        .await;
    assert_eq!(
        counts["default_sender"],
        json!({"division_id": "d1", "email_from": "board@oakhills.example.com", "status": "no_settings"})
    );

    let r = app.post("/v1/campaigns", &t, &bulk(None)).await;
    let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("board@oakhills.example.com"), "{detail}");
    assert!(detail.contains("division d1"), "{detail}");
    assert!(detail.contains("PUT /v1/settings/senders"), "{detail}");
    let r = app
        .post(
            "/v1/invitations/individual",
            &t,
            &json!({"contact_id": "d1-c0-0", "template_id": "welcome"}),
        )
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bus.messages().is_empty(), "nothing queued");
    let campaigns = app.get("/v1/campaigns?division_id=d1", &t).await.ok();
    assert_eq!(campaigns["items"], json!([]), "nothing recorded");

    let saved = app
        .put(
            "/v1/settings/senders",
            &t,
            &json!({"domains": ["OakHills.Example.com"], "addresses": []}),
        )
        .await
        .ok();
    assert_eq!(saved["domains"], json!(["oakhills.example.com"]));
    assert_eq!(saved["updated_by"], "user-of-t1");
    assert_eq!(app.get("/v1/settings/senders", &t).await.ok(), saved);
    assert_eq!(
        app.get("/v1/divisions", &t).await.ok()["items"][0]["sender_status"],
        "allowed"
    );
    let r = app.post("/v1/campaigns", &t, &bulk(None)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
}

#[tokio::test]
async fn a_named_sender_outside_the_settings_is_refused_on_every_send_route() {
    let (app, bus) = app_with_sending();
    let t = admin("t1");
    unconfigured(&app, &t).await;
    app.put(
        "/v1/settings/senders",
        &t,
        &json!({"domains": ["oakhills.example.com"], "addresses": ["Manager@Elsewhere.example.org"]}),
    )
    .await
    .ok();

    // Another tenant's domain, a subdomain, a look-alike: refused, naming the sender.
    for from in [
        "ceo@othertenant.example.com",
        "board@mail.oakhills.example.com",
        "board@oakhills.example.com.evil.example",
        "other@elsewhere.example.org",
    ] {
        let r = app.post("/v1/campaigns", &t, &bulk(Some(from))).await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(from), "{from}: {detail}");
        let r = app
            .post(
                "/v1/invitations/individual",
                &t,
                &json!({"contact_id": "d1-c0-0", "template_id": "welcome", "email_from": from}),
            )
            .await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(from), "{from}: {detail}");
        let r = app
            .put(
                "/v1/recurring/weekly",
                &t,
                &json!({"enabled": true, "scope": "all", "filters": {}, "template_id": "welcome",
                        "email_from": from, "cadence_days": 7, "max_invitations_per_contact": 3,
                        "hour_of_day": 9, "time_zone": "UTC"}),
            )
            .await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(from), "{from}: {detail}");
    }
    assert!(bus.messages().is_empty());

    // The allowed address, whatever its case, and any address at the allowed domain.
    let r = app
        .post(
            "/v1/invitations/individual",
            &t,
            &json!({"contact_id": "d1-c0-0", "template_id": "welcome",
                    "email_from": "manager@elsewhere.example.org"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = app
        .post(
            "/v1/campaigns",
            &t,
            &bulk(Some("Office@OakHills.example.com")),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
}

#[tokio::test]
async fn a_division_synced_with_a_sender_not_allowed_is_kept_but_not_sent_from() {
    let (app, bus) = app_with_sending();
    let t = admin("t1");
    unconfigured(&app, &t).await;
    app.put(
        "/v1/settings/senders",
        &t,
        &json!({"domains": ["oakhills.example.com"]}),
    )
    .await
    .ok();
    let synced = app
        .put(
            "/v1/divisions/d2",
            &t,
            &json!({"name": "Elsewhere", "email_from": "board@platform.example.net"}),
        )
        .await
        .ok();
    assert_eq!(synced["sender_status"], "not_allowed");
    app.sync(&t, &accounts("d2", 3)).await;
    let listed = app.get("/v1/divisions", &t).await.ok();
    let status: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["division_id"].as_str().unwrap(),
                d["sender_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(status, [("d1", "allowed"), ("d2", "not_allowed")]);
    let counts = app
        .counts(&t, json!({"division_ids": ["d2", "d1"], "filters": {}}))
        .await;
    assert_eq!(counts["default_sender"]["division_id"], "d2");
    assert_eq!(counts["default_sender"]["status"], "not_allowed");

    // Its default sender is refused; naming an allowed one sends its contacts.
    let both = json!({"division_ids": ["d2", "d1"], "filters": {}, "template_id": "welcome"});
    let detail = app
        .post("/v1/campaigns", &t, &both)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("board@platform.example.net"), "{detail}");
    assert!(detail.contains("division d2"), "{detail}");
    let r = app
        .post(
            "/v1/invitations/individual",
            &t,
            &json!({"contact_id": "d2-c0-0", "template_id": "welcome"}),
        )
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bus.messages().is_empty());
    let mut named = both.clone();
    named["email_from"] = json!("board@oakhills.example.com");
    let r = app.post("/v1/campaigns", &t, &named).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
}

#[tokio::test]
async fn bad_sender_settings_are_422s_naming_the_field_and_need_settings_manage() {
    let app = app();
    let t = admin("t1");
    for (body, field) in [
        (json!({}), "domains"),
        (json!({"domains": [], "addresses": []}), "domains"),
        (json!({"domains": ["localhost"]}), "domains"),
        (json!({"domains": ["exa mple.com"]}), "domains"),
        (json!({"domains": ["a..example.com"]}), "domains"),
        (json!({"addresses": ["not-an-address"]}), "addresses"),
    ] {
        let detail = app
            .put("/v1/settings/senders", &t, &body)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let many: Vec<String> = (0..51).map(|i| format!("d{i}.example.com")).collect();
    let detail = app
        .put("/v1/settings/senders", &t, &json!({"domains": many}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("at most 50"), "{detail}");
    app.put("/v1/settings/senders", &t, &json!({"domains": "a.com"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.put(
        "/v1/settings/senders",
        &t,
        &json!({"domains": ["a.example.com"], "extra": 1}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);

    let sender = token("t1", &["invitations:read", "invitations:send"]);
    let detail = app
        .put(
            "/v1/settings/senders",
            &sender,
            &json!({"domains": ["a.example.com"]}),
        )
        .await
        .problem(StatusCode::FORBIDDEN);
    assert!(detail.contains("settings:manage"), "{detail}");
    assert_eq!(
        app.get("/v1/settings/senders", &sender).await.ok()["domains"],
        json!([])
    );
}

#[tokio::test]
async fn one_tenants_sender_settings_never_reach_another() {
    let (app, bus) = app_with_sending();
    let (a, b) = (admin("t1"), admin("t2"));
    unconfigured(&app, &a).await;
    unconfigured(&app, &b).await;
    app.put(
        "/v1/settings/senders",
        &a,
        &json!({"domains": ["oakhills.example.com"]}),
    )
    .await
    .ok();
    assert_eq!(
        app.get("/v1/settings/senders", &b).await.ok()["domains"],
        json!([])
    );
    // t2 synced the same sender, but t1's settings do not allow it for t2.
    let detail = app
        .post(
            "/v1/campaigns",
            &b,
            &bulk(Some("board@oakhills.example.com")),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("no sender settings"), "{detail}");
    assert!(bus.messages().is_empty());
    let r = app.post("/v1/campaigns", &a, &bulk(None)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
}

#[tokio::test]
async fn a_display_name_is_saved_read_back_and_checked() {
    let (app, bus) = app_with_sending();
    let t = admin("t1");
    unconfigured(&app, &t).await;
    let saved = app
        .put(
            "/v1/settings/senders",
            &t,
            &json!({"domains": ["oakhills.example.com"], "display_name": " [DivisionName] via Acme "}),
        )
        .await
        .ok();
    assert_eq!(saved["display_name"], "[DivisionName] via Acme");
    assert_eq!(app.get("/v1/settings/senders", &t).await.ok(), saved);
    // A campaign started now keeps the display name: its fan-out carries it.
    let r = app.post("/v1/campaigns", &t, &bulk(None)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["campaign_id"].as_str().unwrap().to_owned();
    let campaign = app
        .store
        .get_campaign(&tenant_of(&t), &CampaignId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        campaign
            .display_name
            .map(|n| n.as_str().to_owned())
            .as_deref(),
        Some("[DivisionName] via Acme")
    );
    assert_eq!(bus.messages().len(), 1);

    for (bad, why) in [
        (json!("Acme\r\nBcc: someone@evil.example"), "line breaks"),
        (json!("[ContactName] at Acme"), "[ContactName]"),
        (json!("a".repeat(101)), "at most 100"),
        (json!(42), "expected a string"),
    ] {
        let detail = app
            .put(
                "/v1/settings/senders",
                &t,
                &json!({"domains": ["oakhills.example.com"], "display_name": bad}),
            )
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(why), "{bad}: {detail}");
    }
    // Blank or null: back to each division's own name.
    for none in [json!(null), json!("  ")] {
        let saved = app
            .put(
                "/v1/settings/senders",
                &t,
                &json!({"domains": ["oakhills.example.com"], "display_name": none}),
            )
            .await
            .ok();
        assert_eq!(saved["display_name"], Value::Null);
    }
}
