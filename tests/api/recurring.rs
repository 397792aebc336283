//! Recurring settings through the router: save (with its checks), read, list, delete,
//! preview, and a run's history.

use axum::http::StatusCode;
use portal_core::domain::{RecurringId, TenantId};
use portal_core::usecases::recurring::{run_setting, RunOutcome};
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

fn weekly() -> Value {
    json!({
        "enabled": true,
        "scope": "all",
        "filters": {},
        "template_id": "welcome",
        "cadence_days": 7,
        "max_invitations_per_contact": 3,
        "hour_of_day": 9,
        "time_zone": "America/Chicago",
    })
}

/// An admin token of `tenant` valid for a day after [`NOW`] (some tests move the clock).
fn lasting_admin(tenant: &str) -> String {
    let mut c = claims(tenant, ALL_PERMISSIONS);
    c.exp = (NOW + time::Duration::days(1)).unix_timestamp();
    portal_http::auth::issue_hs256(SECRET, &c).unwrap()
}

async fn seeded() -> (App, std::sync::Arc<RecordingBus>, String) {
    let (app, bus) = app_with_sending();
    let t = lasting_admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 10)).await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    (app, bus, t)
}

#[tokio::test]
async fn a_setting_is_saved_read_listed_and_deleted() {
    let (app, _, t) = seeded().await;
    let saved = app.put("/v1/recurring/weekly", &t, &weekly()).await.ok();
    assert_eq!(saved["recurring_id"], "weekly");
    assert_eq!(saved["time_zone"], "America/Chicago");
    assert_eq!(saved["scope"], "all");
    // NOW is 2026-11-02 12:00 UTC = 06:00 in Chicago: the next run is 09:00 local today.
    assert_eq!(saved["next_run_at"], "2026-11-02T15:00:00Z");
    assert_eq!(app.get("/v1/recurring/weekly", &t).await.ok(), saved);
    let mut off = weekly();
    off["enabled"] = json!(false);
    app.put("/v1/recurring/monthly", &t, &off).await.ok();
    let list = app.get("/v1/recurring", &t).await.ok();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["recurring_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["monthly", "weekly"]);
    assert_eq!(
        list[0]["next_run_at"],
        Value::Null,
        "a disabled setting never runs"
    );
    // Saving again keeps when it was first saved.
    app.clock.advance(time::Duration::hours(1));
    let again = app.put("/v1/recurring/weekly", &t, &weekly()).await.ok();
    assert_eq!(again["created_at"], saved["created_at"]);
    assert_ne!(again["updated_at"], saved["updated_at"]);
    let r = app.delete("/v1/recurring/weekly", &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/v1/recurring/weekly", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete("/v1/recurring/weekly", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    // Another tenant sees nothing.
    app.get("/v1/recurring/monthly", &admin("t2"))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/recurring", &admin("t2")).await.ok(), json!([]));
}

#[tokio::test]
async fn bad_settings_are_refused_naming_what_is_wrong() {
    let (app, _, t) = seeded().await;
    app.put(
        "/v1/templates/key",
        &t,
        &json!({"kind": "portal_key", "name": "Key", "subject": "Key",
                "html": "[AccountNumber] [PortalKey]", "text": "[AccountNumber] [PortalKey]"}),
    )
    .await
    .ok();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"time_zone": "Mars/Olympus"}), "time zone"),
        (json!({"cadence_days": 0}), "cadence_days"),
        (
            json!({"max_invitations_per_contact": 0}),
            "max_invitations_per_contact",
        ),
        (json!({"hour_of_day": 24}), "hour_of_day"),
        (
            json!({"template_id": "nope"}),
            "template nope does not exist",
        ),
        (json!({"template_id": "key"}), "not an invitation template"),
        (
            json!({"scope": "divisions", "division_ids": ["d9"]}),
            "division d9 does not exist",
        ),
        (json!({"scope": "divisions"}), "at least one division"),
        (
            json!({"division_ids": ["d1"]}),
            "only the scope `divisions`",
        ),
        (json!({"scope": "some"}), "scope"),
        (json!({"email_from": "not an address"}), "email_from"),
    ];
    for (patch, expected) in cases {
        let mut body = weekly();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let detail = app
            .put("/v1/recurring/weekly", &t, &body)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(expected), "{patch}: {detail}");
    }
    let mut body = weekly();
    body["surprise"] = json!(1);
    app.put("/v1/recurring/weekly", &t, &body)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.put("/v1/recurring/bad%23id", &t, &weekly())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.get("/v1/recurring", &t).await.ok();
    assert_eq!(
        app.get("/v1/recurring", &t).await.ok(),
        json!([]),
        "nothing was saved"
    );
}

#[tokio::test]
async fn the_preview_counts_whom_a_run_would_invite_and_a_run_shows_in_the_history() {
    let (app, bus, t) = seeded().await;
    app.put("/v1/recurring/weekly", &t, &weekly()).await.ok();
    let counts = app
        .post(
            "/v1/invitations/counts",
            &t,
            &json!({"division_ids": ["d1"]}),
        )
        .await
        .ok();
    let preview = app
        .post("/v1/recurring/weekly/preview", &t, &json!({}))
        .await
        .ok();
    assert_eq!(preview["division_ids"], json!(["d1"]));
    assert_eq!(preview["total"], counts["total"]);
    assert_eq!(
        preview["eligible"], counts["eligible"],
        "{preview} vs {counts}"
    );
    assert!(preview["eligible"].as_u64().unwrap() > 0);

    let runs = app.get("/v1/recurring/weekly/runs", &t).await.ok();
    assert_eq!(runs["items"], json!([]));
    // Run it at 09:00 Chicago (15:00 UTC): one campaign, recorded in the history.
    app.clock.set(time::macros::datetime!(2026-11-02 15:00 UTC));
    let sending = sending_of(&bus);
    let tenant = TenantId::parse("t1").unwrap();
    let id = RecurringId::parse("weekly").unwrap();
    let outcome = run_setting(
        app.store.as_ref(),
        app.clock.as_ref(),
        &sending,
        &tenant,
        &id,
        None,
    )
    .await
    .unwrap();
    let RunOutcome::Queued { run } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(run.local_date, "2026-11-02");
    let again = run_setting(
        app.store.as_ref(),
        app.clock.as_ref(),
        &sending,
        &tenant,
        &id,
        None,
    )
    .await
    .unwrap();
    assert!(matches!(again, RunOutcome::AlreadyRan { .. }), "{again:?}");
    let runs = app.get("/v1/recurring/weekly/runs", &t).await.ok();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    let campaign_id = runs["items"][0]["campaign_id"].as_str().unwrap().to_owned();
    let campaign = app
        .get(&format!("/v1/campaigns/{campaign_id}"), &t)
        .await
        .ok();
    assert_eq!(campaign["trigger"], "recurring");
    assert_eq!(campaign["recurring"]["setting_id"], "weekly");
    assert_eq!(campaign["recurring"]["local_date"], "2026-11-02");
    let history = app.get("/v1/campaigns?division_id=d1", &t).await.ok();
    assert!(history.to_string().contains(&campaign_id), "{history}");
    app.get("/v1/recurring/weekly/runs?limit=0", &t)
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get("/v1/recurring/weekly/runs?cursor=forged", &t)
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.get("/v1/recurring/nope/runs", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post("/v1/recurring/nope/preview", &t, &json!({}))
        .await
        .problem(StatusCode::NOT_FOUND);
}
