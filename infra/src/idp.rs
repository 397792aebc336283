//! The local server's identity provider: just enough OpenID Connect for the console to sign
//! in the way it does on AWS (authorization code with PKCE), on one machine, with no account
//! database.
//!
//! # How a manager signs in
//!
//! 1. `serve --demo` (or `portal-invites sign-in-link`) prints a one-time link
//!    `/local-idp/sign-in?ticket=…`. The ticket is signed with a key derived from the data
//!    dir's secret (not the API's key: a ticket is never a bearer token), names the tenant and
//!    permissions, and expires after [`TICKET_TTL_MINUTES`]. Opening it starts a provider
//!    session (an `HttpOnly` cookie scoped to `/local-idp`) and goes to the console. The same
//!    ticket works once per server run.
//! 2. The console, holding no token, sends the browser to [`AUTHORIZE_PATH`] with a PKCE
//!    challenge; the provider sees its session and answers a code (valid 60 s, usable once).
//! 3. The console posts the code and its verifier to [`TOKEN_PATH`] and gets an access token:
//!    the same HS256 bearer token `portal-invites token` prints.
//!
//! On AWS the console is configured with a real provider's endpoints instead
//! (`template.yaml`), and none of this is deployed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use portal_core::domain::PublicUrl;
use portal_core::ports::Clock;
use portal_http::auth::{issue_hs256, Claims};
use portal_http::console::ConsoleConfig;
use portal_http::pages::{escape, page};

use crate::secret::Secret;
use crate::token::TokenRequest;

/// Where the one-time link points.
pub const SIGN_IN_PATH: &str = "/local-idp/sign-in";
/// The authorization endpoint.
pub const AUTHORIZE_PATH: &str = "/local-idp/authorize";
/// The token endpoint.
pub const TOKEN_PATH: &str = "/local-idp/token";
/// Ends the provider session.
pub const SIGN_OUT_PATH: &str = "/local-idp/sign-out";
/// The console's client id here.
pub const CLIENT_ID: &str = "portal-console";
/// How long a printed sign-in link works.
pub const TICKET_TTL_MINUTES: i64 = 24 * 60;
/// How long a provider session (and so a console token) lasts.
pub const SESSION_TTL_HOURS: i64 = 12;
/// How long an authorization code can be traded.
pub const CODE_TTL_SECS: i64 = 60;

const COOKIE: &str = "portal_idp";

/// What a ticket and a session carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    sub: String,
    tenant_id: String,
    permissions: Vec<String>,
    exp: i64,
    /// Ticket id (one use per server run); empty in a session.
    #[serde(default)]
    jti: String,
    /// `ticket` or `session`: a session cookie is not a ticket, nor the reverse.
    purpose: String,
}

struct Code {
    grant: Grant,
    challenge: String,
    redirect_uri: String,
    expires: i64,
}

/// Keys derived from the data dir's secret, one per use.
#[derive(Clone)]
struct Keys {
    ticket: Vec<u8>,
    session: Vec<u8>,
    api: Vec<u8>,
}

fn derive(secret: &[u8], label: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"portal-invites local-idp ");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update(secret);
    h.finalize().to_vec()
}

impl Keys {
    fn new(secret: &[u8]) -> Self {
        Self {
            ticket: derive(secret, "ticket"),
            session: derive(secret, "session"),
            api: secret.to_vec(),
        }
    }
}

fn sign(key: &[u8], grant: &Grant) -> Option<String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        grant,
        &EncodingKey::from_secret(key),
    )
    .ok()
}

fn open(key: &[u8], token: &str, purpose: &str, now: i64) -> Result<Grant, &'static str> {
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.set_required_spec_claims(&["exp"]);
    let grant = jsonwebtoken::decode::<Grant>(token, &DecodingKey::from_secret(key), &v)
        .map_err(|_| "invalid")?
        .claims;
    if grant.purpose != purpose {
        return Err("invalid");
    }
    if grant.exp <= now {
        return Err("expired");
    }
    Ok(grant)
}

/// A one-time sign-in link to the local server at `base_url` for `req`'s tenant and
/// permissions (the `sign-in-link` command, and `serve --demo`'s banner).
pub fn sign_in_link(
    secret: &Secret,
    base_url: &str,
    req: &TokenRequest,
    now: time::OffsetDateTime,
) -> Option<String> {
    let mut jti = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
    let grant = Grant {
        sub: req.sub.clone(),
        tenant_id: req.tenant.to_string(),
        permissions: req.permissions.clone(),
        exp: now.unix_timestamp() + TICKET_TTL_MINUTES * 60,
        jti: URL_SAFE_NO_PAD.encode(jti),
        purpose: "ticket".to_owned(),
    };
    let ticket = sign(&Keys::new(secret.as_bytes()).ticket, &grant)?;
    Some(format!(
        "{}{SIGN_IN_PATH}?ticket={ticket}",
        base_url.trim_end_matches('/')
    ))
}

/// The provider: its keys, the tickets used in this run, and the codes not yet traded.
#[derive(Clone)]
pub struct LocalIdp {
    keys: Keys,
    /// The server's public URL when one was given; otherwise the browser's `Host`.
    public_url: Option<String>,
    clock: Arc<dyn Clock>,
    used: Arc<Mutex<HashMap<String, i64>>>,
    codes: Arc<Mutex<HashMap<String, Code>>>,
}

impl LocalIdp {
    pub fn new(secret: &Secret, public_url: Option<&PublicUrl>, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Keys::new(secret.as_bytes()),
            public_url: public_url.map(|u| u.to_string().trim_end_matches('/').to_owned()),
            clock,
            used: Arc::default(),
            codes: Arc::default(),
        }
    }

    /// The console's settings pointing at this provider (paths on the same origin).
    pub fn console_config(&self) -> Option<ConsoleConfig> {
        ConsoleConfig::new(
            AUTHORIZE_PATH,
            TOKEN_PATH,
            CLIENT_ID,
            "openid",
            Some(SIGN_OUT_PATH),
        )
        .ok()
    }

    /// Where the console lives, as the browser reaches this server.
    fn console_url(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(u) = &self.public_url {
            return Some(format!("{u}/console"));
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        ok.then(|| format!("http://{host}/console"))
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// The provider's routes.
    pub fn routes(self) -> Router {
        Router::new()
            .route(SIGN_IN_PATH, get(sign_in))
            .route(AUTHORIZE_PATH, get(authorize))
            .route(TOKEN_PATH, post(token))
            .route(SIGN_OUT_PATH, get(sign_out))
            .with_state(self)
    }
}

fn refusal(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p class=\"muted\">Get a new link with \
             <code>portal-invites sign-in-link --tenant &lt;tenant&gt; --permissions …</code> \
             (run it with the server's <code>--data-dir</code>).</p>",
            escape(title),
            escape(text)
        ),
    )
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

async fn sign_in(State(idp): State<LocalIdp>, Query(q): Query<TicketQuery>) -> Response {
    let now = idp.now();
    let Some(ticket) = q.ticket else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete",
            "The link has no ticket. Copy the whole link that was printed.",
        );
    };
    let grant = match open(&idp.keys.ticket, &ticket, "ticket", now) {
        Ok(g) => g,
        Err("expired") => {
            return refusal(
                StatusCode::GONE,
                "This sign-in link has expired",
                "Sign-in links work for 24 hours.",
            )
        }
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                "It was not made for this server's data directory, or it was cut short.",
            )
        }
    };
    {
        let Ok(mut used) = idp.used.lock() else {
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, "Try again", "");
        };
        used.retain(|_, exp| *exp > now);
        if used.contains_key(&grant.jti) {
            return refusal(
                StatusCode::GONE,
                "This sign-in link has been used",
                "Each link signs in once. If you are already signed in, open the console.",
            );
        }
        used.insert(grant.jti.clone(), grant.exp);
    }
    let session = Grant {
        exp: now + SESSION_TTL_HOURS * 3600,
        jti: String::new(),
        purpose: "session".to_owned(),
        ..grant
    };
    let Some(cookie) = sign(&idp.keys.session, &session) else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, "Try again", "");
    };
    let secure = if idp
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    };
    let mut res = Redirect::to("/console").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={cookie}; Path=/local-idp; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_TTL_HOURS * 3600
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn session_of(idp: &LocalIdp, headers: &HeaderMap) -> Option<Grant> {
    let now = idp.now();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
        .find_map(|t| open(&idp.keys.session, &t, "session", now).ok())
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(
    State(idp): State<LocalIdp>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let expected_redirect = idp.console_url(&headers).unwrap_or_default();
    if expected_redirect.is_empty()
        || q.client_id.as_deref() != Some(CLIENT_ID)
        || q.redirect_uri.as_deref() != Some(expected_redirect.as_str())
    {
        return refusal(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            &format!("Only the console ({expected_redirect}) signs in here."),
        );
    }
    let (Some("code"), Some("S256"), Some(challenge), Some(state)) = (
        q.response_type.as_deref(),
        q.code_challenge_method.as_deref(),
        q.code_challenge.filter(|c| (43..=128).contains(&c.len())),
        q.state,
    ) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            "The console must ask for a code with a PKCE S256 challenge and a state.",
        );
    };
    let Some(grant) = session_of(&idp, &headers) else {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "You are not signed in here",
            "Open the one-time sign-in link that `portal-invites serve --demo` printed.",
        );
    };
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let code = URL_SAFE_NO_PAD.encode(raw);
    let now = idp.now();
    {
        let Ok(mut codes) = idp.codes.lock() else {
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, "Try again", "");
        };
        codes.retain(|_, c| c.expires > now);
        codes.insert(
            code.clone(),
            Code {
                grant,
                challenge,
                redirect_uri: expected_redirect.clone(),
                expires: now + CODE_TTL_SECS,
            },
        );
    }
    let query = serde_urlencoded::to_string([("code", code.as_str()), ("state", state.as_str())])
        .unwrap_or_default();
    let mut res = Redirect::to(&format!("{expected_redirect}?{query}")).into_response();
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(idp): State<LocalIdp>, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return oauth_error("invalid_request", "the body is not a form");
    };
    if form.grant_type.as_deref() != Some("authorization_code") {
        return oauth_error("unsupported_grant_type", "only authorization_code");
    }
    let (Some(code), Some(verifier)) = (form.code, form.code_verifier) else {
        return oauth_error("invalid_request", "code and code_verifier are required");
    };
    let now = idp.now();
    let taken = match idp.codes.lock() {
        Ok(mut codes) => codes.remove(&code),
        Err(_) => None,
    };
    let Some(taken) = taken.filter(|c| c.expires > now) else {
        return oauth_error("invalid_grant", "unknown, used or expired code");
    };
    if form.client_id.as_deref() != Some(CLIENT_ID)
        || form.redirect_uri.as_deref() != Some(taken.redirect_uri.as_str())
    {
        return oauth_error("invalid_grant", "client or redirect_uri does not match");
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if computed != taken.challenge {
        return oauth_error("invalid_grant", "the code_verifier does not match");
    }
    let exp = taken.grant.exp;
    let claims = Claims {
        sub: taken.grant.sub,
        tenant_id: taken.grant.tenant_id,
        permissions: taken.grant.permissions,
        exp,
    };
    let Ok(access) = issue_hs256(&idp.keys.api, &claims) else {
        return oauth_error("server_error", "cannot sign the token");
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": exp - now,
        })),
    )
        .into_response()
}

async fn sign_out() -> Response {
    let mut res = page(
        StatusCode::OK,
        "Signed out",
        "<h1>You are signed out</h1><p>To sign in again, open a new sign-in link \
         (<code>portal-invites sign-in-link</code>).</p>",
    );
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("portal_idp=; Path=/local-idp; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    res
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use portal_core::ports::SystemClock;
    use portal_http::auth::Verifier;
    use tower::ServiceExt as _;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        secret: Secret,
        app: Router,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = Secret::resolve(dir.path()).expect("secret");
        let app = LocalIdp::new(&secret, None, Arc::new(SystemClock)).routes();
        Fixture {
            _dir: dir,
            secret,
            app,
        }
    }

    fn ticket_path(f: &Fixture, permissions: &str) -> String {
        let req = TokenRequest::parse("demo", permissions, Some("ann"), None).expect("request");
        let link = sign_in_link(&f.secret, "http://h", &req, time::OffsetDateTime::now_utc())
            .expect("link");
        link.trim_start_matches("http://h").to_owned()
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let res = app.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut b = Request::get(path).header(header::HOST, "127.0.0.1:3000");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::empty()).expect("request")
    }

    fn challenge(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

    async fn session_cookie(f: &Fixture, permissions: &str) -> String {
        let (status, headers, _) = call(&f.app, get(&ticket_path(f, permissions), None)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/console");
        let set = headers[header::SET_COOKIE].to_str().expect("ascii");
        assert!(
            set.contains("HttpOnly") && set.contains("Path=/local-idp"),
            "{set}"
        );
        set.split(';').next().expect("cookie").to_owned()
    }

    async fn code(f: &Fixture, cookie: &str, verifier: &str) -> String {
        let q = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:3000/console"),
            ("state", "s1"),
            ("code_challenge", challenge(verifier).as_str()),
            ("code_challenge_method", "S256"),
        ])
        .expect("query");
        let (status, headers, _) =
            call(&f.app, get(&format!("{AUTHORIZE_PATH}?{q}"), Some(cookie))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let to = headers[header::LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            to.starts_with("http://127.0.0.1:3000/console?code="),
            "{to}"
        );
        assert!(to.ends_with("&state=s1"), "{to}");
        to.split("code=")
            .nth(1)
            .expect("code")
            .split('&')
            .next()
            .expect("code")
            .to_owned()
    }

    async fn trade(f: &Fixture, code: &str, verifier: &str) -> (StatusCode, serde_json::Value) {
        let body = serde_urlencoded::to_string([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:3000/console"),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ])
        .expect("form");
        let req = Request::post(TOKEN_PATH)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        let (status, _, text) = call(&f.app, req).await;
        (status, serde_json::from_str(&text).expect("json"))
    }

    #[tokio::test]
    async fn a_sign_in_link_gives_the_console_a_token_the_api_accepts_through_pkce() {
        let f = fixture();
        let cookie = session_cookie(&f, "invitations:read,invitations:send").await;
        let code = code(&f, &cookie, VERIFIER).await;
        let (status, body) = trade(&f, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().expect("token");
        let claims = Verifier::hs256(f.secret.as_bytes())
            .verify(token, time::OffsetDateTime::now_utc())
            .expect("the API accepts it");
        assert_eq!(claims.tenant_id, "demo");
        assert_eq!(claims.sub, "ann");
        assert_eq!(claims.permissions, ["invitations:read", "invitations:send"]);
        // A code is traded once.
        let (again, body) = trade(&f, &code, VERIFIER).await;
        assert_eq!(again, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn a_link_works_once_and_a_ticket_is_never_a_bearer_token() {
        let f = fixture();
        let path = ticket_path(&f, "invitations:read");
        let (first, _, _) = call(&f.app, get(&path, None)).await;
        assert_eq!(first, StatusCode::SEE_OTHER);
        let (second, _, page) = call(&f.app, get(&path, None)).await;
        assert_eq!(second, StatusCode::GONE);
        assert!(page.contains("has been used"), "{page}");
        let ticket = path.split("ticket=").nth(1).expect("ticket");
        let verified =
            Verifier::hs256(f.secret.as_bytes()).verify(ticket, time::OffsetDateTime::now_utc());
        assert!(verified.is_err(), "a ticket must not pass as an API token");
    }

    #[tokio::test]
    async fn a_wrong_verifier_a_foreign_redirect_and_no_session_are_refused() {
        let f = fixture();
        let cookie = session_cookie(&f, "invitations:read").await;
        let code = code(&f, &cookie, VERIFIER).await;
        let (status, body) = trade(
            &f,
            &code,
            "another-verifier-of-forty-three-characters-000000",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");

        let q = format!(
            "{AUTHORIZE_PATH}?response_type=code&client_id={CLIENT_ID}&redirect_uri=https%3A%2F%2Fevil.example%2Fconsole&state=s&code_challenge={}&code_challenge_method=S256",
            challenge(VERIFIER)
        );
        let (status, headers, _) = call(&f.app, get(&q, Some(&cookie))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(headers.get(header::LOCATION).is_none());

        let q = format!(
            "{AUTHORIZE_PATH}?response_type=code&client_id={CLIENT_ID}&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fconsole&state=s&code_challenge={}&code_challenge_method=S256",
            challenge(VERIFIER)
        );
        let (status, _, page) = call(&f.app, get(&q, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("sign-in link"), "{page}");

        let plain = q.replace("S256", "plain");
        let (status, _, _) = call(&f.app, get(&plain, Some(&cookie))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_forged_or_expired_ticket_is_refused() {
        let f = fixture();
        let other = fixture();
        let forged = ticket_path(&other, "invitations:read");
        let (status, _, page) = call(&f.app, get(&forged, None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("not valid"), "{page}");
        let req = TokenRequest::parse("demo", "invitations:read", None, None).expect("request");
        let old = time::OffsetDateTime::now_utc() - time::Duration::days(2);
        let link = sign_in_link(&f.secret, "http://h", &req, old).expect("link");
        let (status, _, page) = call(&f.app, get(link.trim_start_matches("http://h"), None)).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(page.contains("expired"), "{page}");
    }
}
