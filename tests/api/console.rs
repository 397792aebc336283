//! The managers' console as the `console` function serves it (its job's router, a store that
//! refuses everything, no token accepted) and as a server without console settings answers
//! it: the shell page under a strict policy, never cached; the hashed assets it names,
//! cached for good with their media types; an unknown asset 404; no settings, a 503 page.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use portal_core::ports::FixedClock;
use portal_http::auth::Verifier;
use portal_http::console::{ConsoleConfig, CSS, JS};
use portal_http::{jobs, AppState};
use portal_lambda::NoStore;

use crate::helpers::*;

const TOKEN_ORIGIN: &str = "https://managers.auth.eu-west-1.amazoncognito.com";

/// What `functions/console` runs, with a Cognito-like provider.
fn console_function() -> App {
    let config = ConsoleConfig::new(
        &format!("{TOKEN_ORIGIN}/oauth2/authorize"),
        &format!("{TOKEN_ORIGIN}/oauth2/token"),
        "4example0client0id",
        "openid",
        Some(&format!("{TOKEN_ORIGIN}/logout")),
    )
    .expect("settings");
    let state = AppState::new(
        Arc::new(NoStore),
        Arc::new(FixedClock::new(NOW)),
        Verifier::deny_all(),
    )
    .with_console(config);
    let mut app = app();
    app.router = jobs::console(state);
    app
}

async fn get(app: &App, uri: &str) -> Reply {
    app.send(request(Method::GET, uri, None, None, Body::empty()))
        .await
}

fn header(r: &Reply, name: header::HeaderName) -> &str {
    r.headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The `/console/assets/…` URLs the page names, in order.
fn asset_urls(page: &str) -> Vec<String> {
    page.match_indices("/console/assets/")
        .map(|(at, _)| {
            let rest = &page[at..];
            rest[..rest.find(['"', '\'', ' ', '>']).unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_shell_is_never_cached_and_runs_no_script_but_its_own() {
    let app = console_function();
    let r = get(&app, "/console").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.content_type().starts_with("text/html"),
        "{}",
        r.content_type()
    );
    assert_eq!(header(&r, header::CACHE_CONTROL), "no-store");
    assert_eq!(header(&r, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header(&r, header::REFERRER_POLICY), "no-referrer");
    assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");

    let csp = header(&r, header::CONTENT_SECURITY_POLICY);
    let directive = |name: &str| -> Vec<&str> {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(directive("default-src"), ["'none'"], "{csp}");
    assert_eq!(directive("script-src"), ["'self'"], "{csp}");
    assert_eq!(directive("style-src"), ["'self'"], "{csp}");
    assert_eq!(directive("frame-ancestors"), ["'none'"], "{csp}");
    assert_eq!(directive("connect-src"), ["'self'", TOKEN_ORIGIN], "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    let page = r.text();
    // Every script is a file of this origin; no inline script, no inline style.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(
        page.contains(&format!("<script src=\"/console/assets/{}\"", JS.name)),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/console/assets/{}\"", CSS.name)),
        "{page}"
    );
    assert!(!page.contains("style="), "{page}");
    assert!(!page.contains("<style"), "{page}");
    // The sign-in settings ride in the page, escaped as an attribute.
    assert!(page.contains("4example0client0id"), "{page}");
    assert!(
        page.contains(&format!("{TOKEN_ORIGIN}/oauth2/authorize")),
        "{page}"
    );
    assert!(page.contains("&quot;client_id&quot;"), "{page}");
}

#[tokio::test]
async fn the_assets_the_shell_names_are_cached_for_good_with_their_media_types() {
    let app = console_function();
    let page = get(&app, "/console").await.text();
    let urls = asset_urls(&page);
    assert_eq!(
        urls,
        [
            format!("/console/assets/{}", CSS.name),
            format!("/console/assets/{}", JS.name)
        ],
        "the stylesheet and the script, by hashed name"
    );
    for (url, media_type) in urls.iter().zip(["text/css", "text/javascript"]) {
        let r = get(&app, url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert!(
            r.content_type().starts_with(media_type),
            "{url}: {}",
            r.content_type()
        );
        let cache = header(&r, header::CACHE_CONTROL);
        assert!(
            cache.contains("immutable") && cache.contains("max-age=31536000"),
            "{url}: {cache}"
        );
        assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(!r.body.is_empty(), "{url}");
    }
    let js = get(&app, &urls[1]).await;
    assert_eq!(js.body.as_ref(), JS.body, "the embedded script, unchanged");
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_nobody_caches() {
    let app = console_function();
    for name in [
        "app.000000000000.js",
        "app.css",
        "app.js",
        "index.html",
        "..%2Fapp.css",
    ] {
        let r = get(&app, &format!("/console/assets/{name}")).await;
        let detail = r.problem(StatusCode::NOT_FOUND);
        assert!(detail.contains("reload"), "{name}: {detail}");
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-store", "{name}");
    }
}

#[tokio::test]
async fn a_server_without_console_settings_answers_503_with_a_page_that_says_so() {
    let r = get(&app(), "/console").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.content_type().starts_with("text/html"),
        "{}",
        r.content_type()
    );
    let page = r.text();
    assert!(page.contains("not set up"), "{page}");
    for var in [
        "CONSOLE_AUTHORIZE_URL",
        "CONSOLE_TOKEN_URL",
        "CONSOLE_CLIENT_ID",
    ] {
        assert!(page.contains(var), "{var}: {page}");
    }
    // Nor are its files served (a function without the settings does not carry them).
    let r = get(&app(), &format!("/console/assets/{}", JS.name)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_console_function_serves_no_data_and_accepts_no_token() {
    let app = console_function();
    // Another job's route is not there at all, token or not.
    for uri in ["/v1/divisions", "/v1/templates"] {
        let r = app.get(uri, &admin("t1")).await;
        r.problem(StatusCode::NOT_FOUND);
    }
    let r = app
        .post(
            "/v1/invitations/counts",
            &admin("t1"),
            &serde_json::json!({}),
        )
        .await;
    r.problem(StatusCode::NOT_FOUND);
}
