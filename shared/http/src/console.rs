//! The managers' console: a small script-driven app served by the HTTP layer, calling the
//! same `/v1` routes any client calls (there is no console-only route to data).
//!
//! # What is served
//!
//! - `GET /console`: the shell page. It names its stylesheet and script by content hash,
//!   carries the sign-in settings (OpenID Connect authorization code with PKCE, see
//!   [`ConsoleConfig`]) in a `<meta>` element, and is never cached.
//! - `GET /console/assets/{asset}`: the stylesheet and the script, embedded in the binary at
//!   compile time, named `app.<hash>.css` / `app.<hash>.js`, cached for a year
//!   (`immutable`): a new build has new names, so a browser never mixes versions.
//!
//! The script is the concatenation of the files under `shared/http/console/js/` (no build
//! step outside cargo, no framework, nothing from other hosts).
//!
//! # Security headers
//!
//! `Content-Security-Policy` allows scripts and styles from this origin only (no inline
//! script), requests to this origin and to the identity provider's token endpoint, email
//! previews in a sandboxed frame, and no framing of the console itself.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::pages::escape;
use super::AppState;

/// Where the console sends a manager to sign in, and how it trades the code for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The identity provider's authorization endpoint (OpenID Connect).
    pub authorize_url: String,
    /// Its token endpoint (the browser posts the code and PKCE verifier here).
    pub token_url: String,
    /// The console's client id at the identity provider (a public client: no secret).
    pub client_id: String,
    /// Scopes to ask for (space-separated).
    pub scope: String,
    /// Where "Sign out" goes after forgetting the token, if the provider has such a page.
    pub sign_out_url: Option<String>,
}

/// A bad console setting.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleConfigError {
    #[error("{var} must be an absolute http(s) URL (or a path on this server), got {value:?}")]
    Url { var: &'static str, value: String },
    #[error("{var} must not be empty")]
    Empty { var: &'static str },
}

impl ConsoleConfig {
    /// Checks the settings: URLs absolute `http(s)` or paths on this origin (`/…`, the local
    /// server's own provider), client id present.
    pub fn new(
        authorize_url: &str,
        token_url: &str,
        client_id: &str,
        scope: &str,
        sign_out_url: Option<&str>,
    ) -> Result<Self, ConsoleConfigError> {
        fn url(var: &'static str, value: &str) -> Result<String, ConsoleConfigError> {
            let v = value.trim();
            let absolute =
                (v.starts_with("https://") || v.starts_with("http://")) && origin_of(v).is_some();
            let path = v.starts_with('/') && !v.starts_with("//");
            let ok = (absolute || path)
                && !v
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\');
            if ok {
                Ok(v.to_owned())
            } else {
                Err(ConsoleConfigError::Url {
                    var,
                    value: value.to_owned(),
                })
            }
        }
        let client_id = client_id.trim();
        if client_id.is_empty() {
            return Err(ConsoleConfigError::Empty {
                var: "CONSOLE_CLIENT_ID",
            });
        }
        Ok(Self {
            authorize_url: url("CONSOLE_AUTHORIZE_URL", authorize_url)?,
            token_url: url("CONSOLE_TOKEN_URL", token_url)?,
            client_id: client_id.to_owned(),
            scope: scope.trim().to_owned(),
            sign_out_url: sign_out_url
                .filter(|s| !s.trim().is_empty())
                .map(|s| url("CONSOLE_SIGN_OUT_URL", s))
                .transpose()?,
        })
    }

    /// The settings as the script reads them.
    fn json(&self) -> String {
        serde_json::json!({
            "authorize_url": self.authorize_url,
            "token_url": self.token_url,
            "client_id": self.client_id,
            "scope": self.scope,
            "sign_out_url": self.sign_out_url,
        })
        .to_string()
    }
}

/// `https://host:port` of an absolute URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest_at = url.find("://")? + 3;
    let end = url[rest_at..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| rest_at + i);
    (end > rest_at).then(|| &url[..end])
}

/// One embedded file, named by its content, kept plain and gzipped.
pub struct Asset {
    pub name: String,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// `body` gzipped once, at first use; `None` if compressing failed (served plain).
    pub gzip: Option<Vec<u8>>,
}

fn hashed(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        name: format!("{stem}.{hex}.{ext}"),
        content_type,
        body: body.as_bytes(),
        gzip: gzip(body.as_bytes()),
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).ok()?;
    enc.finish().ok()
}

/// Whether an `Accept-Encoding` header accepts gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    super::header_items(headers, header::ACCEPT_ENCODING).any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or("");
        let refused = it.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// The stylesheet.
pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    hashed(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_str!("../console/app.css"),
    )
});

/// The script: every file of `console/js`, in dependency order.
pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    hashed(
        "app",
        "js",
        "text/javascript; charset=utf-8",
        concat!(
            "\"use strict\";\n",
            include_str!("../console/js/core.js"),
            include_str!("../console/js/invitations.js"),
            include_str!("../console/js/campaigns.js"),
            include_str!("../console/js/templates.js"),
            include_str!("../console/js/registrations.js"),
            include_str!("../console/js/recurring.js"),
            include_str!("../console/js/senders.js"),
            include_str!("../console/js/main.js"),
        ),
    )
});

/// The shell page's markup around the settings.
const SHELL: &str = include_str!("../console/index.html");

/// The embedded files, as the routes serve them.
pub struct Assets {
    shell: &'static str,
    css: &'static LazyLock<Asset>,
    js: &'static LazyLock<Asset>,
}

/// What the console's routes serve: the sign-in settings and the embedded files. Only
/// [`AppState::with_console`](super::AppState::with_console) names the files, so the
/// functions that never call it (every job but the console) do not carry them.
pub struct Console {
    pub config: ConsoleConfig,
    assets: Assets,
}

impl Console {
    pub fn new(config: ConsoleConfig) -> Self {
        Self {
            config,
            assets: Assets {
                shell: SHELL,
                css: &CSS,
                js: &JS,
            },
        }
    }
}

/// `GET /console`: the shell page.
pub async fn index(State(state): State<AppState>) -> Response {
    let Some(console) = state.console.as_deref() else {
        return super::pages::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Console not configured",
            "<h1>The console is not set up here</h1>\
             <p>This deployment has no sign-in settings for the console \
             (<code>CONSOLE_AUTHORIZE_URL</code>, <code>CONSOLE_TOKEN_URL</code>, \
             <code>CONSOLE_CLIENT_ID</code>). The API works without it.</p>",
        );
    };
    let (config, assets) = (&console.config, &console.assets);
    let html = assets
        .shell
        .replace("{{css}}", &format!("/console/assets/{}", assets.css.name))
        .replace("{{js}}", &format!("/console/assets/{}", assets.js.name))
        .replace("{{config}}", &escape(&config.json()));
    let mut res = Html(html).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp(config)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `GET /console/` and the local server's `/`: to the console.
pub async fn to_console() -> Redirect {
    Redirect::permanent("/console")
}

/// The console's policy: this origin only, plus the token endpoint for the code exchange.
pub fn csp(config: &ConsoleConfig) -> String {
    // A path is on this origin, already allowed by 'self'.
    let token_origin = origin_of(&config.token_url).unwrap_or("");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {token_origin}; frame-src 'self'; child-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `GET /console/assets/{asset}`: an embedded file by its hashed name, gzipped when the
/// browser accepts it.
pub async fn asset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let asset = state.console.as_deref().and_then(|c| {
        [&**c.assets.css, &**c.assets.js]
            .into_iter()
            .find(|a| a.name == name)
    });
    let Some(asset) = asset else {
        let mut res = (
            StatusCode::NOT_FOUND,
            "no such asset (reload the console)\n",
        )
            .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    };
    let gzipped = asset.gzip.as_deref().filter(|_| accepts_gzip(&headers));
    let mut res = match gzipped {
        Some(bytes) => {
            let mut res = bytes.to_vec().into_response();
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            res
        }
        None => asset.body.into_response(),
    };
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_their_content() {
        assert!(CSS.name.starts_with("app.") && CSS.name.ends_with(".css"));
        assert!(JS.name.starts_with("app.") && JS.name.ends_with(".js"));
        assert_ne!(CSS.name, "app.css");
        assert_eq!(CSS.name.len(), "app.".len() + 12 + ".css".len());
    }

    #[test]
    fn gzip_is_used_when_accepted_and_not_refused() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
        let js = JS.gzip.as_deref().map(<[u8]>::len).unwrap_or(usize::MAX);
        assert!(js < JS.body.len() / 2, "gzip {js} of {}", JS.body.len());
    }

    #[test]
    fn the_origin_of_a_url_is_its_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://auth.example.com/oauth2/token"),
            Some("https://auth.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:3000"),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(origin_of("https:///x"), None);
    }

    #[test]
    fn settings_refuse_other_relative_urls_and_an_empty_client() {
        assert!(
            ConsoleConfig::new("//evil/authorize", "https://a/t", "c", "openid", None).is_err()
        );
        assert!(ConsoleConfig::new("authorize", "https://a/t", "c", "openid", None).is_err());
        assert!(ConsoleConfig::new("/authorize", "/token", "c", "openid", None).is_ok());
        assert!(ConsoleConfig::new("https://a/authorize", "https://a/t", " ", "", None).is_err());
        let ok = ConsoleConfig::new("https://a/authorize", "https://a/t", "c", "openid", None);
        assert!(ok.is_ok());
    }
}
