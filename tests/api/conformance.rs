//! Inputs are read as `openapi.yaml` types them: disagreements Schemathesis found
//! (`infra/api-fuzz/run.sh`) and the server was wrong about.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn with_contacts() -> (App, String) {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 30)).await;
    (app, t)
}

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "subject": "Your [DivisionName] portal",
        "html": "<a href=\"[PortalLink]\">Register</a>",
        "text": "Register: [PortalLink] [UnsubscribeLink]",
    })
}

fn weekly() -> Value {
    json!({
        "enabled": true,
        "scope": "all",
        "template_id": "welcome",
        "cadence_days": 7,
        "max_invitations_per_contact": 3,
        "hour_of_day": 9,
        "time_zone": "America/Chicago",
    })
}

#[tokio::test]
async fn a_page_size_written_114_0_is_114_and_null_or_a_fraction_is_a_422() {
    let (app, t) = with_contacts().await;
    // JSON Schema's `integer` is any number without a fraction: 3.0 is the integer 3.
    let page = app
        .post("/v1/invitations/recipients", &t, &json!({"limit": 3.0}))
        .await
        .ok();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["next_cursor"].is_string());
    for (limit, needle) in [
        (json!(null), "null"),
        (json!(2.5), "2.5"),
        (json!("3"), "string"),
        (json!(1e300), "fits u32"),
    ] {
        let d = app
            .post("/v1/invitations/recipients", &t, &json!({"limit": limit}))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(d.contains(needle), "limit {limit}: {d}");
    }
    // Out of range as a whole number is still the range's 422.
    let d = app
        .post("/v1/invitations/recipients", &t, &json!({"limit": 501.0}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("limit"), "{d}");
}

#[tokio::test]
async fn a_recurring_setting_and_a_sync_take_whole_numbers_written_with_a_fraction() {
    let (app, t) = with_contacts().await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let mut setting = weekly();
    setting["cadence_days"] = json!(7.0);
    setting["max_invitations_per_contact"] = json!(3.0);
    setting["hour_of_day"] = json!(9.0);
    let saved = app.put("/v1/recurring/weekly", &t, &setting).await.ok();
    assert_eq!(
        (
            &saved["cadence_days"],
            &saved["max_invitations_per_contact"],
            &saved["hour_of_day"]
        ),
        (&json!(7), &json!(3), &json!(9))
    );
    for (field, value) in [
        ("hour_of_day", json!(9.5)),
        ("hour_of_day", json!(null)),
        ("cadence_days", json!(70000.0)),
    ] {
        let mut bad = weekly();
        bad[field] = value.clone();
        app.put("/v1/recurring/weekly", &t, &bad)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
    }

    let mut a = account("d1", 0);
    a["balance_due_cents"] = json!(4200.0);
    let report = app.sync(&t, &[a.clone()]).await;
    assert_eq!(report["accounts"], 1);
    let due = app
        .counts(&t, json!({"filters": {"balance_due": true}}))
        .await;
    assert!(due["total"].as_u64().unwrap() > 0, "{due}");
    a["balance_due_cents"] = json!(42.5);
    let d = app
        .post("/v1/sync/accounts", &t, &json!([a]))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("record 0") && d.contains("42.5"), "{d}");
}

#[tokio::test]
async fn a_recurring_setting_s_filters_have_the_limits_of_a_count_s_counted_in_characters() {
    let (app, t) = with_contacts().await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let mut long = weekly();
    long["filters"] = json!({"site_source": ["x".repeat(201)]});
    let d = app
        .put("/v1/recurring/weekly", &t, &long)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("filters.site_source"), "{d}");
    app.get("/v1/recurring/weekly", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    let mut many = weekly();
    many["filters"] = json!({"bill_group": vec!["g"; 101]});
    app.put("/v1/recurring/weekly", &t, &many)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);

    // 200 characters are allowed whatever their bytes (`maxLength` counts characters).
    let accented = "é".repeat(200);
    let mut ok = weekly();
    ok["filters"] = json!({"site_source": [accented]});
    let saved = app.put("/v1/recurring/weekly", &t, &ok).await.ok();
    assert_eq!(saved["filters"]["site_source"][0], json!(accented));
    let counted = app
        .counts(&t, json!({"filters": {"account_class": [accented]}}))
        .await;
    assert_eq!(counted["total"], 0);
}

#[tokio::test]
async fn an_empty_cursor_is_the_first_page_of_a_division_s_campaigns() {
    let (app, t) = with_contacts().await;
    let first = app.get("/v1/campaigns?division_id=d1", &t).await.ok();
    let empty = app
        .get("/v1/campaigns?division_id=d1&cursor=", &t)
        .await
        .ok();
    assert_eq!(first, empty);
    app.get("/v1/campaigns?division_id=d1&cursor=nope", &t)
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_campaign_s_recipients_may_be_asked_for_without_a_body() {
    let (app, _bus) = app_with_sending();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 5)).await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let started = app
        .post(
            "/v1/campaigns",
            &t,
            &json!({"division_ids": ["d1"], "template_id": "welcome"}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let id = started.json()["campaign_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/campaigns/{id}/recipients");
    let bare = app
        .send(request(Method::POST, &path, Some(&t), None, Body::empty()))
        .await
        .ok();
    assert_eq!(bare, app.post(&path, &t, &json!({})).await.ok());
    assert!(bare["items"].is_array() && bare.get("next_cursor").is_some());
    // A body still says what it is, and an empty cursor is the first page there too.
    app.send(request(Method::POST, &path, Some(&t), None, "{}"))
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        app.post(&path, &t, &json!({"cursor": "", "limit": 50.0}))
            .await
            .ok(),
        bare
    );
}

#[tokio::test]
async fn a_registration_link_whose_tenant_holds_control_characters_is_incomplete() {
    let app = app();
    let t = admin("demo");
    app.put_division(&t, "d1").await;
    let page = |uri: &str| app.send(request(Method::GET, uri, None, None, Body::empty()));
    // Before: the control characters were dropped and the page was tenant "demo"'s.
    for uri in [
        "/register/key?tenant=de%10mo",
        "/register/key?tenant=%C2%87demo",
        "/register/request?tenant=de%10mo",
    ] {
        let r = page(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
        assert!(r.text().contains("tenant"), "{uri}: {}", r.text());
    }
    assert_eq!(
        page("/register/key?tenant=demo").await.status,
        StatusCode::OK
    );
    // The account prefill is free text: control characters are dropped from it.
    let r = page("/register/key?tenant=demo&account=A%10-1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("value=\"A-1\""), "{}", r.text());
}
