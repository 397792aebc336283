//! Bad input always gets a 4xx problem+json with a useful detail, never a 500.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn with_division() -> (App, String) {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.sync(&t, &accounts("d1", 30)).await;
    (app, t)
}

async fn raw(app: &App, t: &str, uri: &str, ct: Option<&str>, body: &str) -> Reply {
    app.send(request(Method::POST, uri, Some(t), ct, body.to_owned()))
        .await
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let (app, t) = with_division().await;
    for uri in ["/v1/invitations/counts", "/v1/invitations/recipients"] {
        for body in ["{", "{\"division_ids\": [}", "", "nul"] {
            let d = raw(&app, &t, uri, Some("application/json"), body)
                .await
                .problem(StatusCode::BAD_REQUEST);
            assert!(d.contains("JSON"), "{uri} {body:?}: {d}");
        }
    }
    let d = raw(
        &app,
        &t,
        "/v1/sync/accounts",
        Some("application/json"),
        "[{\"account_id\": ",
    )
    .await
    .problem(StatusCode::BAD_REQUEST);
    assert!(d.contains("record 0"), "{d}");
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_a_422_quoting_serde() {
    let (app, t) = with_division().await;
    for (uri, body, needle) in [
        (
            "/v1/invitations/counts",
            json!({"divisions": []}),
            "divisions",
        ),
        (
            "/v1/invitations/counts",
            json!({"filters": {"colour": ["red"]}}),
            "colour",
        ),
        (
            "/v1/invitations/counts",
            json!({"limit_to_uninvited": "yes"}),
            "invalid type",
        ),
        ("/v1/invitations/counts", json!({"group": "all"}), "group"),
        (
            "/v1/invitations/recipients",
            json!({"limit": "ten"}),
            "invalid type",
        ),
        (
            "/v1/invitations/recipients",
            json!({"limit": -1}),
            "invalid value",
        ),
        ("/v1/invitations/recipients", json!({"page": 2}), "page"),
        (
            "/v1/invitations/recipients",
            json!({"division_ids": ["bad id"]}),
            "division_id",
        ),
        ("/v1/sync/accounts", json!({"account_id": "a"}), "array"),
    ] {
        let d = app
            .post(uri, &t, &body)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(d.contains(needle), "{uri} {body}: {d}");
    }
}

#[tokio::test]
async fn a_page_size_of_zero_or_over_500_is_a_422() {
    let (app, t) = with_division().await;
    for limit in [0, 501, 100_000] {
        let d = app
            .post("/v1/invitations/recipients", &t, &json!({"limit": limit}))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(d.contains("limit"), "{d}");
    }
    app.post("/v1/invitations/recipients", &t, &json!({"limit": 500}))
        .await
        .ok();
}

#[tokio::test]
async fn an_unknown_group_is_a_422_listing_the_groups() {
    let (app, t) = with_division().await;
    let d = app
        .post("/v1/invitations/recipients", &t, &json!({"group": "vip"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("vip") && d.contains("not_sent"), "{d}");
}

#[tokio::test]
async fn a_forged_or_foreign_cursor_is_a_400() {
    let (app, t) = with_division().await;
    for cursor in ["garbage", "eyJ4IjoxfQ", "\u{00e9}\u{00e9}"] {
        let d = app
            .post("/v1/invitations/recipients", &t, &json!({"cursor": cursor}))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(d.contains("cursor"), "{cursor:?}: {d}");
    }
    // A cursor of one group does not continue another.
    let page = app
        .post(
            "/v1/invitations/recipients",
            &t,
            &json!({"group": "all", "limit": 2}),
        )
        .await
        .ok();
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = app
        .post(
            "/v1/invitations/recipients",
            &t,
            &json!({"group": "no_email", "limit": 2, "cursor": cursor}),
        )
        .await;
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
        "{}",
        r.text()
    );
    if r.status == StatusCode::BAD_REQUEST {
        r.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let (app, t) = with_division().await;
    raw(&app, &t, "/v1/invitations/counts", Some("text/plain"), "{}")
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    raw(&app, &t, "/v1/invitations/counts", None, "{}")
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.send(request(
        Method::PUT,
        "/v1/divisions/d2",
        Some(&t),
        Some("application/x-www-form-urlencoded"),
        "name=x",
    ))
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_body_over_256_kib_is_a_413_outside_sync() {
    let (app, t) = with_division().await;
    let ids: Vec<String> = (0..40_000).map(|i| format!("division-{i}")).collect();
    let body = json!({"division_ids": ids}).to_string();
    assert!(body.len() > 256 * 1024);
    let d = raw(
        &app,
        &t,
        "/v1/invitations/counts",
        Some("application/json"),
        &body,
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(d.contains("256 KiB"), "{d}");
}

#[tokio::test]
async fn too_many_divisions_or_filter_values_are_a_422() {
    let (app, t) = with_division().await;
    let ids: Vec<String> = (0..501).map(|i| format!("d{i}")).collect();
    app.post("/v1/invitations/counts", &t, &json!({"division_ids": ids}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let values: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let d = app
        .post(
            "/v1/invitations/counts",
            &t,
            &json!({"filters": {"account_class": values}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("account_class"), "{d}");
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = app();
    let t = admin("t1");
    for uri in ["/", "/v1/nothing", "/v1/divisions/d1/extra"] {
        app.get(uri, &t).await.problem(StatusCode::NOT_FOUND);
    }
    // Even without a token: the route does not exist.
    app.send(
        axum::http::Request::get("/v2/x")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = app();
    let t = admin("t1");
    for (m, uri) in [
        (Method::DELETE, "/v1/divisions"),
        (Method::GET, "/v1/invitations/counts"),
        (Method::PATCH, "/v1/divisions/d1"),
        (Method::GET, "/v1/sync/accounts"),
    ] {
        let d = app
            .send(request(m.clone(), uri, Some(&t), None, Body::empty()))
            .await
            .problem(StatusCode::METHOD_NOT_ALLOWED);
        assert!(d.contains(m.as_str()), "{d}");
    }
}

#[tokio::test]
async fn a_path_id_outside_the_id_alphabet_is_a_422() {
    let app = app();
    let t = admin("t1");
    let d = app
        .delete("/v1/accounts/has%20space", &t)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("account_id"), "{d}");
}

#[tokio::test]
async fn an_empty_sync_writes_nothing_and_succeeds() {
    let (app, t) = with_division().await;
    let r = app.sync(&t, &[]).await;
    assert_eq!(
        r,
        json!({"accounts": 0, "contacts": 0, "contacts_removed": 0})
    );
}

#[tokio::test]
async fn a_405_names_the_allowed_methods() {
    let app = app();
    let r = app
        .send(request(
            Method::DELETE,
            "/v1/divisions",
            None,
            None,
            Body::empty(),
        ))
        .await;
    r.problem(StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers
        .get(axum::http::header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(allow.contains("GET"), "Allow: {allow:?}");
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_a_4xx_problem() {
    let app = app();
    let t = admin("t1");
    let r = app.delete("/v1/accounts/%FF%FE", &t).await;
    assert!(r.status.is_client_error(), "{}", r.text());
    r.problem(r.status);
}
