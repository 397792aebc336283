//! The shell of every resident-facing HTML page (registration, unsubscribe): plain
//! server-rendered HTML that reads well on a phone and works without JavaScript.
//!
//! Every page is sent with:
//!
//! - `Content-Security-Policy`: nothing from anywhere (`default-src 'none'`), no script at
//!   all, the one inline stylesheet allowed by its SHA-256 (not `'unsafe-inline'`), forms
//!   posting only to this origin, no framing, no `<base>`;
//! - `Referrer-Policy: no-referrer` (tokens travel in these pages' URLs);
//! - `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Cache-Control: no-store`.
//!
//! Nothing is loaded from another host: no font, image, script or stylesheet.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The pages' one stylesheet: system fonts, a readable column, large touch targets.
pub const CSS: &str = "\
:root{color-scheme:light dark;--accent:#0b5cad;--link:#0b5cad;--bad:#b3261e;--ok:#1b6e3a}\
@media (prefers-color-scheme:dark){:root{--link:#8ab4f8;--bad:#f2b8b5;--ok:#7dd3a0}}\
*{box-sizing:border-box}\
body{font:1.0625rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:1.5rem 1rem 3rem}\
main{max-width:30rem;margin:0 auto}\
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}\
p.lead{font-size:1.125rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
.hint{display:block;font-weight:400;font-size:.9375rem}\
input,select,textarea{width:100%;font:inherit;padding:.625rem .75rem;border:1px solid #8a8f98;border-radius:.5rem;background:Canvas;color:CanvasText}\
input:focus,select:focus,textarea:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}\
button{margin-top:1.5rem;width:100%;font:inherit;font-weight:600;padding:.75rem 1rem;border:0;border-radius:.5rem;background:var(--accent);color:#fff;cursor:pointer}\
.alert{border-left:4px solid var(--bad);padding:.5rem .75rem;margin:1rem 0;background:rgba(179,38,30,.08)}\
.done{border-left:4px solid var(--ok);padding:.5rem .75rem;margin:1rem 0;background:rgba(27,110,58,.08)}\
.muted{font-size:.9375rem}\
a{color:var(--link)}\
";

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// An HTML page with the security headers above.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{CSS}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        title = escape(title),
    );
    let mut res = (status, Html(html)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    portal_core::domain::escape_html_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_shipped_stylesheet() {
        let csp = CSP.to_str().unwrap();
        let hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{hash}'")));
        assert!(!csp.contains("unsafe"));
        assert!(
            !csp.contains("script-src"),
            "no script is allowed at all: {csp}"
        );
    }

    #[test]
    fn titles_are_escaped() {
        let res = page(StatusCode::OK, "<b>", "");
        assert_eq!(res.status(), StatusCode::OK);
    }
}
