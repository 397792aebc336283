//! Templates (save, read, list, delete, 422s naming the tag and part) and the invitation
//! preview (a real contact's values, HTML-escaped; a sample contact; no tokens; a saved
//! template or an unsaved draft, the draft refused exactly as a save would be).

use axum::http::StatusCode;
use portal_core::domain::MAX_BODY_BYTES;
use serde_json::{json, Value};

use crate::helpers::*;

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "subject": "Welcome to [DivisionName], [ContactName]",
        "html": "<p>Dear [ContactName] ([AccountName], #[AccountNumber])</p>\
                 <a href=\"[PortalLink]\">Register</a> key [PortalKey] \
                 <a href=\"[UnsubscribeLink]\">Unsubscribe</a>",
        "text": "Dear [ContactName]\nRegister: [PortalLink]\nUnsubscribe: [UnsubscribeLink]",
    })
}

#[tokio::test]
async fn a_saved_template_can_be_read_listed_and_deleted() {
    let app = app();
    let t = admin("t1");
    let saved = app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let mut expected = welcome();
    expected["template_id"] = "welcome".into();
    expected["kind"] = "invitation".into();
    assert_eq!(saved, expected);
    assert_eq!(app.get("/v1/templates/welcome", &t).await.ok(), expected);

    let mut second = welcome();
    second["name"] = "Reminder".into();
    app.put("/v1/templates/a-reminder", &t, &second).await.ok();
    let list = app.get("/v1/templates", &t).await.ok();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-reminder", "welcome"]);

    let r = app.delete("/v1/templates/welcome", &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    app.get("/v1/templates/welcome", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete("/v1/templates/welcome", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/v1/templates", &t).await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn saving_again_replaces_the_template() {
    let app = app();
    let t = admin("t1");
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let mut changed = welcome();
    changed["subject"] = "Changed".into();
    app.put("/v1/templates/welcome", &t, &changed).await.ok();
    let read = app.get("/v1/templates/welcome", &t).await.ok();
    assert_eq!(read["subject"], "Changed");
}

#[tokio::test]
async fn an_unknown_tag_is_a_422_naming_the_tag_and_the_part() {
    let app = app();
    let t = admin("t1");
    for (part, value, tag) in [
        ("subject", "Hello [FirstName]", "[FirstName]"),
        ("html", "<p>[ContactNmae]</p>[PortalLink]", "[ContactNmae]"),
        ("text", "[PortalLink] [contactname]", "[contactname]"),
    ] {
        let mut body = welcome();
        body[part] = value.into();
        let r = app.put("/v1/templates/welcome", &t, &body).await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            detail.contains(&format!("{tag} in the {part}")),
            "{part}: {detail}"
        );
        // The same, for a client to show at the field.
        let p = r.json();
        assert_eq!((&p["field"], &p["tag"]), (&json!(part), &json!(tag)), "{p}");
        assert_eq!(p["position"], value.find(tag).unwrap(), "{p}");
    }
    // Nothing was saved.
    app.get("/v1/templates/welcome", &t)
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_template_without_the_portal_link_in_html_or_text_is_a_422() {
    let app = app();
    let t = admin("t1");
    for part in ["html", "text"] {
        let mut body = welcome();
        body[part] = "no link here [ContactName]".into();
        let r = app.put("/v1/templates/welcome", &t, &body).await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains("[PortalLink]"), "{detail}");
        assert!(detail.contains(&format!("the {part}")), "{detail}");
        let p = r.json();
        assert_eq!(
            (&p["field"], &p["tag"]),
            (&json!(part), &json!("[PortalLink]")),
            "{p}"
        );
    }
}

#[tokio::test]
async fn oversized_parts_and_bad_fields_are_422s() {
    let app = app();
    let t = admin("t1");
    let mut body = welcome();
    body["html"] = format!("[PortalLink]{}", "x".repeat(MAX_BODY_BYTES)).into();
    let detail = app
        .put("/v1/templates/welcome", &t, &body)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("html"), "{detail}");

    let mut body = welcome();
    body["subject"] = "two\nlines".into();
    let detail = app
        .put("/v1/templates/welcome", &t, &body)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("subject"), "{detail}");

    let mut body = welcome();
    body["extra"] = 1.into();
    app.put("/v1/templates/welcome", &t, &body)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    app.put("/v1/templates/bad%23id", &t, &welcome())
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn writing_templates_needs_settings_manage_and_reading_needs_invitations_read() {
    let app = app();
    let reader = token("t1", &["invitations:read"]);
    let detail = app
        .put("/v1/templates/welcome", &reader, &welcome())
        .await
        .problem(StatusCode::FORBIDDEN);
    assert!(detail.contains("settings:manage"), "{detail}");
    let writer = token("t1", &["settings:manage"]);
    app.put("/v1/templates/welcome", &writer, &welcome())
        .await
        .ok();
    app.get("/v1/templates/welcome", &writer)
        .await
        .problem(StatusCode::FORBIDDEN);
    app.get("/v1/templates/welcome", &reader).await.ok();
    app.delete("/v1/templates/welcome", &reader)
        .await
        .problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn one_tenant_never_sees_or_deletes_another_tenants_templates() {
    let app = app();
    let (a, b) = (admin("t1"), admin("t2"));
    app.put("/v1/templates/welcome", &a, &welcome()).await.ok();
    app.get("/v1/templates/welcome", &b)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/v1/templates", &b).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
    app.delete("/v1/templates/welcome", &b)
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post(
        "/v1/invitations/preview",
        &b,
        &json!({"template_id": "welcome"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    app.get("/v1/templates/welcome", &a).await.ok();
}

/// A division `d1` with one account whose contact has a name that needs escaping.
async fn tenant_with_tricky_contact(app: &App, t: &str) {
    app.put(
        "/v1/divisions/d1",
        t,
        &json!({"name": "North & South", "email_from": "north@hoa.example.com"}),
    )
    .await
    .ok();
    let mut acc = account("d1", 0);
    acc["name"] = "Oak <Street>".into();
    acc["number"] = "A-100".into();
    acc["contacts"] = json!([{
        "contact_id": "c1",
        "name": "<b>O'Neil & Sons</b>",
        "email": "oneil@example.com",
        "phone": "",
        "billing": true,
    }]);
    app.sync(t, &[acc]).await;
}

#[tokio::test]
async fn a_preview_renders_the_contacts_values_escaped_in_html_only() {
    let app = app();
    let t = admin("t1");
    tenant_with_tricky_contact(&app, &t).await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome", "contact_id": "c1"}),
        )
        .await
        .ok();
    assert_eq!(p["from"], "north@hoa.example.com");
    assert_eq!(
        p["subject"],
        "Welcome to North & South, <b>O'Neil & Sons</b>"
    );
    let html = p["html"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<p>Dear &lt;b&gt;O&#39;Neil &amp; Sons&lt;/b&gt; (Oak &lt;Street&gt;, #A-100)</p>"
        ),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("href=\"http://127.0.0.1:3000/register?token=PREVIEW-NOT-A-REAL-TOKEN\""),
        "{html}"
    );
    assert!(
        html.contains(
            "href=\"http://127.0.0.1:3000/v1/unsubscribe?token=PREVIEW-NOT-A-REAL-TOKEN\""
        ),
        "{html}"
    );
    assert!(html.contains("key XXXX-XXXX-XXXX-XXXX"), "{html}");
    let text = p["text"].as_str().unwrap();
    assert!(text.starts_with("Dear <b>O'Neil & Sons</b>\n"), "{text}");
    assert!(
        text.contains("Register: http://127.0.0.1:3000/register?token=PREVIEW-NOT-A-REAL-TOKEN"),
        "{text}"
    );
}

#[tokio::test]
async fn a_preview_changes_nothing_about_the_contact() {
    let app = app();
    let t = admin("t1");
    tenant_with_tricky_contact(&app, &t).await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let before = app.counts(&t, json!({})).await;
    for _ in 0..2 {
        app.post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome", "contact_id": "c1"}),
        )
        .await
        .ok();
    }
    assert_eq!(app.counts(&t, json!({})).await, before);
}

#[tokio::test]
async fn a_preview_without_a_contact_uses_a_sample_in_the_first_division() {
    let app = app();
    let t = admin("t1");
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let detail = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("division"), "{detail}");

    app.put(
        "/v1/divisions/b",
        &t,
        &json!({"name": "Second", "email_from": "second@hoa.example.com"}),
    )
    .await
    .ok();
    app.put(
        "/v1/divisions/a",
        &t,
        &json!({"name": "First", "email_from": "first@hoa.example.com"}),
    )
    .await
    .ok();
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome"}),
        )
        .await
        .ok();
    assert_eq!(p["from"], "first@hoa.example.com");
    assert_eq!(p["subject"], "Welcome to First, Alex Sample");
    assert!(p["text"].as_str().unwrap().contains("/register?token="));
}

#[tokio::test]
async fn a_preview_of_an_unknown_template_or_contact_is_a_404() {
    let app = app();
    let t = admin("t1");
    tenant_with_tricky_contact(&app, &t).await;
    let detail = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "nope"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("template nope"), "{detail}");
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let detail = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome", "contact_id": "ghost"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("contact ghost"), "{detail}");
    app.post("/v1/invitations/preview", &t, &json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

/// `welcome()` as an unsaved draft (no name), of `kind` when given.
fn draft(kind: Option<&str>) -> Value {
    let mut d = welcome();
    d.as_object_mut().unwrap().remove("name");
    if let Some(kind) = kind {
        d["kind"] = kind.into();
    }
    d
}

#[tokio::test]
async fn a_draft_preview_renders_a_contacts_values_and_saves_nothing() {
    let app = app();
    let t = admin("t1");
    tenant_with_tricky_contact(&app, &t).await;
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template": draft(None), "contact_id": "c1"}),
        )
        .await
        .ok();
    // Exactly what the same template, saved, previews as.
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let saved = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome", "contact_id": "c1"}),
        )
        .await
        .ok();
    assert_eq!(p, saved);
    assert_eq!(p["from"], "north@hoa.example.com");
    assert_eq!(
        p["subject"],
        "Welcome to North & South, <b>O'Neil & Sons</b>"
    );
    let html = p["html"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<p>Dear &lt;b&gt;O&#39;Neil &amp; Sons&lt;/b&gt; (Oak &lt;Street&gt;, #A-100)</p>"
        ),
        "{html}"
    );
    assert!(
        html.contains("/register?token=PREVIEW-NOT-A-REAL-TOKEN"),
        "{html}"
    );
    assert!(p["text"]
        .as_str()
        .unwrap()
        .starts_with("Dear <b>O'Neil & Sons</b>\n"));

    // Only the template saved above exists: a draft is written nowhere.
    app.delete("/v1/templates/welcome", &t).await;
    let before = app.counts(&t, json!({})).await;
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template": draft(None)}),
        )
        .await
        .ok();
    assert_eq!(p["subject"], "Welcome to North & South, Alex Sample");
    assert_eq!(
        app.get("/v1/templates", &t).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
    assert_eq!(app.counts(&t, json!({})).await, before);

    // A reader (no settings:manage) may preview a draft: it is a read.
    let reader = token("t1", &["invitations:read"]);
    app.post(
        "/v1/invitations/preview",
        &reader,
        &json!({"template": draft(None), "contact_id": "c1"}),
    )
    .await
    .ok();
    app.post(
        "/v1/invitations/preview",
        &token("t1", &["settings:manage"]),
        &json!({"template": draft(None)}),
    )
    .await
    .problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_draft_of_kind_portal_key_renders_its_sign_up_link() {
    let app = app();
    let t = admin("t1");
    tenant_with_tricky_contact(&app, &t).await;
    let mut d = draft(Some("portal_key"));
    d["text"] = "Account [AccountNumber], key [PortalKey]: [PortalLink]".into();
    d["html"] = "<p>[AccountNumber] [PortalKey]</p>".into();
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template": d, "contact_id": "c1"}),
        )
        .await
        .ok();
    assert_eq!(
        p["text"],
        "Account A-100, key XXXX-XXXX-XXXX-XXXX: \
         http://127.0.0.1:3000/register/key?tenant=t1&account=A-100"
    );
    // The rules of the kind apply to a draft as to a save.
    let mut d = draft(Some("portal_key"));
    d["html"] = "<p>[AccountNumber]</p>".into();
    let r = app
        .post("/v1/invitations/preview", &t, &json!({"template": d}))
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (&r.json()["field"], &r.json()["tag"]),
        (&json!("html"), &json!("[PortalKey]"))
    );
}

#[tokio::test]
async fn a_draft_with_an_unknown_tag_is_the_same_422_as_saving_it() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    for (part, value, tag, position) in [
        ("subject", "Hello [Nope]", "[Nope]", 6),
        (
            "html",
            "<p>[ContactNmae]</p>[PortalLink]",
            "[ContactNmae]",
            3,
        ),
        ("text", "[PortalLink] [contactname]", "[contactname]", 13),
    ] {
        let mut d = draft(None);
        d[part] = value.into();
        let r = app
            .post("/v1/invitations/preview", &t, &json!({"template": d}))
            .await;
        let detail = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            detail.contains(&format!("{tag} in the {part}")),
            "{part}: {detail}"
        );
        let p = r.json();
        assert_eq!(p["field"], part, "{p}");
        assert_eq!(p["tag"], tag, "{p}");
        assert_eq!(p["position"], position, "{p}");

        let mut saved = d.clone();
        saved["name"] = "Welcome".into();
        let put = app.put("/v1/templates/welcome", &t, &saved).await;
        put.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(put.json(), p, "PUT and preview refuse it alike");
    }
    // Other rules too: a missing link, a two-line subject.
    let mut d = draft(None);
    d["text"] = "no link".into();
    let r = app
        .post("/v1/invitations/preview", &t, &json!({"template": d}))
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["field"], "text");
    assert_eq!(r.json()["tag"], "[PortalLink]");
    let mut d = draft(None);
    d["subject"] = "two\nlines".into();
    let r = app
        .post("/v1/invitations/preview", &t, &json!({"template": d}))
        .await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["field"], "subject");
    assert!(r.json().get("tag").is_none());
    assert_eq!(
        app.get("/v1/templates", &t).await.ok(),
        json!({"items": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn a_preview_needs_exactly_one_of_template_id_and_template() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    for body in [
        json!({"template_id": "welcome", "template": draft(None)}),
        json!({}),
        json!({"contact_id": "c1"}),
    ] {
        let detail = app
            .post("/v1/invitations/preview", &t, &body)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            detail.contains("template_id") && detail.contains("template"),
            "{body}: {detail}"
        );
    }
    // A draft is only what renders: a name or an unknown field is refused.
    let mut named = draft(None);
    named["name"] = "Welcome".into();
    app.post("/v1/invitations/preview", &t, &json!({"template": named}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_draft_preview_for_another_tenants_contact_is_a_404() {
    let app = app();
    let (a, b) = (admin("t1"), admin("t2"));
    tenant_with_tricky_contact(&app, &a).await;
    app.put_division(&b, "d1").await;
    let detail = app
        .post(
            "/v1/invitations/preview",
            &b,
            &json!({"template": draft(None), "contact_id": "c1"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.contains("contact c1"), "{detail}");
    app.post(
        "/v1/invitations/preview",
        &a,
        &json!({"template": draft(None), "contact_id": "c1"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_draft_at_the_size_limit_can_be_previewed() {
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let filler = "\"".repeat(MAX_BODY_BYTES - "[PortalLink]".len());
    let mut d = draft(None);
    d["html"] = format!("[PortalLink]{filler}").into();
    d["text"] = format!("{filler}[PortalLink]").into();
    let body = json!({ "template": d });
    assert!(body.to_string().len() > 256 * 1024);
    let p = app.post("/v1/invitations/preview", &t, &body).await.ok();
    assert!(p["html"].as_str().unwrap().ends_with(&filler));
}

#[tokio::test]
async fn a_preview_builds_links_from_the_configured_public_url() {
    use portal_http::auth::Verifier;
    use portal_http::{router, AppState};
    let base = app();
    let state = AppState::new(
        base.store.clone(),
        base.clock.clone(),
        Verifier::hs256(SECRET),
    )
    .with_public_url(
        portal_core::domain::PublicUrl::parse("https://invites.example.com/").unwrap(),
    );
    let app = App {
        router: router(state),
        store: base.store.clone(),
        clock: base.clock.clone(),
    };
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    app.put("/v1/templates/welcome", &t, &welcome()).await.ok();
    let p = app
        .post(
            "/v1/invitations/preview",
            &t,
            &json!({"template_id": "welcome"}),
        )
        .await
        .ok();
    assert!(
        p["text"]
            .as_str()
            .unwrap()
            .contains("Register: https://invites.example.com/register?token="),
        "{p}"
    );
}

#[tokio::test]
async fn a_template_at_the_size_limit_is_accepted_even_when_json_escaping_doubles_it() {
    let app = app();
    let t = admin("t1");
    // Quotes double in JSON: two 100 KiB parts make a body of about 400 KiB, above the
    // 256 KiB other routes accept.
    let filler = "\"".repeat(MAX_BODY_BYTES - "[PortalLink]".len());
    let mut body = welcome();
    body["html"] = format!("[PortalLink]{filler}").into();
    body["text"] = format!("{filler}[PortalLink]").into();
    assert!(body.to_string().len() > 256 * 1024);
    let saved = app.put("/v1/templates/big", &t, &body).await.ok();
    assert_eq!(saved["html"].as_str().unwrap().len(), MAX_BODY_BYTES);
    let read = app.get("/v1/templates/big", &t).await.ok();
    assert_eq!(read["text"], body["text"]);
}

#[tokio::test]
async fn templates_are_listed_a_page_at_a_time() {
    let app = app();
    let t = admin("t1");
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        app.put(&format!("/v1/templates/{id}"), &t, &welcome())
            .await
            .ok();
    }
    let first = app.get("/v1/templates?limit=2", &t).await.ok();
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["template_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["t1", "t2"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/templates?limit=2&cursor={cursor}"), &t)
        .await
        .ok();
    assert_eq!(ids(&second), ["t3", "t4"]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = app
        .get(&format!("/v1/templates?limit=2&cursor={cursor}"), &t)
        .await
        .ok();
    assert_eq!(ids(&last), ["t5"]);
    assert_eq!(last["next_cursor"], Value::Null);
    // The default page holds 50; an empty cursor is the first page.
    let all = app.get("/v1/templates?cursor=", &t).await.ok();
    assert_eq!(ids(&all).len(), 5);

    for bad in [
        "/v1/templates?limit=0",
        "/v1/templates?limit=501",
        "/v1/templates?limit=ten",
        "/v1/templates?cursor=forged",
        "/v1/templates?page=2",
    ] {
        let detail = app.get(bad, &t).await.problem(StatusCode::BAD_REQUEST);
        let named = ["limit", "cursor", "page"]
            .iter()
            .any(|w| detail.contains(w));
        assert!(named, "{bad}: {detail}");
    }
}
