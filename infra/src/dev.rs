//! What only the local server has: the outbox routes and the unsubscribe secret file.
//!
//! - `GET /dev/outbox[?limit=N]`: the newest `N` (default 100, at most 1000) messages the
//!   local mailer wrote, newest first, as a JSON array of `{file, to, subject, date}`.
//! - `GET /dev/outbox/{file}`: one message's exact bytes as `message/rfc822` — save it as
//!   `.eml` and open it in any mail client (the outbox keeps messages in an append-only log
//!   under `<data-dir>/outbox/`, see [`portal_embedded::outbox`]). Only plain outbox file
//!   names are accepted (400 otherwise), so no path can leave the outbox.
//!
//! These routes are merged into the local router only (see [`crate::serve`]); the Lambda
//! router is the library's and has no `/dev` routes. They carry no authentication (the outbox
//! is every tenant's sent mail, tokens in links included), so they are guarded instead:
//!
//! - **Served only on loopback** ([`DevRoutesDecision::decide`]): a server bound to a loopback
//!   address (`127.0.0.1`, `::1`, the default) serves them; one bound to any other address
//!   does not (`/dev/*` is then a 404 like any unknown route) unless started with
//!   `--dev-routes` (or `PORTAL_INVITES_DEV_ROUTES=1`). The server says which at start.
//! - **Host checked** ([`HostGuard`]): a request must name this server in its `Host` header —
//!   `localhost` or the bound IP address (any IP address when bound to `0.0.0.0`/`::`) —
//!   else it is refused with a 421 problem. This stops DNS rebinding: a page of
//!   `evil.example` whose name is made to resolve to 127.0.0.1 reaches the port, but its
//!   requests carry `Host: evil.example`; an IP literal cannot be rebound. A reverse proxy
//!   in front of a loopback server must not forward `/dev` (it would pass both checks).
//!
//! The unsubscribe links' HMAC key lives next to `jwt-secret` in the data dir as
//! `unsubscribe-secret` (32 random bytes as hex, owner-only), made on first use; deleting the
//! data dir invalidates the links it signed.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::usecases::send::TokenDeriver;
use portal_embedded::outbox::{Outbox, OutboxError};
use portal_http::ApiError;
use serde::Deserialize;

use crate::secret::SecretError;

/// The file, inside the data dir, holding the unsubscribe links' key.
pub const UNSUBSCRIBE_SECRET_FILE: &str = "unsubscribe-secret";
/// The key registration tokens are derived with (see `portal_core::usecases::send`).
pub const REGISTRATION_SECRET_FILE: &str = "registration-secret";

/// Default and largest `limit` of `GET /dev/outbox`.
pub const DEFAULT_OUTBOX_LIMIT: usize = 100;
pub const MAX_OUTBOX_LIMIT: usize = 1000;

/// The environment variable that turns the `/dev` routes on whatever the bound address
/// (`1`/`true`; what `--dev-routes` does).
pub const DEV_ROUTES_ENV: &str = "PORTAL_INVITES_DEV_ROUTES";

/// The `/dev/outbox` routes over `outbox`, unguarded: [`guarded_outbox_routes`] is what a
/// listening server serves.
pub fn outbox_routes(outbox: Outbox) -> Router {
    Router::new()
        .route("/dev/outbox", get(list))
        .route("/dev/outbox/{file}", get(read))
        .with_state(outbox)
}

/// The `/dev/outbox` routes behind `guard`'s `Host` check.
pub fn guarded_outbox_routes(outbox: Outbox, guard: HostGuard) -> Router {
    outbox_routes(outbox).layer(axum::middleware::from_fn_with_state(guard, check_host))
}

/// What `serve` was told about the `/dev` routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DevRoutes {
    /// Served when the server is bound to a loopback address (the default).
    #[default]
    LoopbackOnly,
    /// Served whatever the address (`--dev-routes`, [`DEV_ROUTES_ENV`]).
    Always,
}

/// Whether a server bound to an address serves the `/dev` routes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevRoutesDecision {
    /// Bound to a loopback address: only this machine can connect.
    OnLoopback(SocketAddr),
    /// `--dev-routes` or [`DEV_ROUTES_ENV`] asked for them.
    OnByFlag(SocketAddr),
    /// Bound to an address other machines may reach, and not asked for.
    OffNotLoopback(SocketAddr),
}

impl DevRoutesDecision {
    /// The rule of the module docs.
    pub fn decide(policy: DevRoutes, bound: SocketAddr) -> Self {
        if bound.ip().is_loopback() {
            Self::OnLoopback(bound)
        } else if policy == DevRoutes::Always {
            Self::OnByFlag(bound)
        } else {
            Self::OffNotLoopback(bound)
        }
    }

    pub fn is_on(self) -> bool {
        !matches!(self, Self::OffNotLoopback(_))
    }

    /// Why, in words (the start-up banner and log).
    pub fn reason(self) -> String {
        match self {
            Self::OnLoopback(a) => format!("bound to the loopback address {}", a.ip()),
            Self::OnByFlag(_) => format!("--dev-routes (or {DEV_ROUTES_ENV}) was given"),
            Self::OffNotLoopback(a) => format!(
                "{} is not a loopback address; start with --dev-routes to serve them anyway",
                a.ip()
            ),
        }
    }
}

/// The `Host` names a request to the `/dev` routes may carry (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct HostGuard {
    bound: IpAddr,
}

impl HostGuard {
    /// For a server bound to `bound`.
    pub fn new(bound: SocketAddr) -> Self {
        Self { bound: bound.ip() }
    }

    /// Whether `host` (a `Host` header's value) names this server: `localhost`, or an IP
    /// address it listens on.
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = host_of(host) else {
            return false;
        };
        if name == "localhost" {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => self.bound.is_unspecified() || ip == self.bound,
            Err(_) => false,
        }
    }
}

/// The host of an authority (`host[:port]`, `[v6][:port]`), lowercased, without brackets.
fn host_of(authority: &str) -> Option<String> {
    let authority: Authority = authority.trim().parse().ok()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Refuses, with a 421 problem, a request whose `Host` (or HTTP/2 authority) does not name
/// this server.
async fn check_host(State(guard): State<HostGuard>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(h) if guard.allows(&h) => next.run(request).await,
        Some(h) => {
            tracing::warn!(host = %h, path = %request.uri().path(), "refused a /dev request for another host");
            ApiError::MisdirectedRequest(format!(
                "the /dev routes answer only to requests for this server (Host: localhost or its address), not {:?}",
                h.chars().take(100).collect::<String>()
            ))
            .into_response()
        }
        None => ApiError::MisdirectedRequest(
            "the /dev routes need a Host header naming this server".into(),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
}

async fn list(
    State(outbox): State<Outbox>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_OUTBOX_LIMIT);
    if limit == 0 || limit > MAX_OUTBOX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_OUTBOX_LIMIT}"
        )));
    }
    let entries = outbox.list(limit).await.map_err(outbox_error)?;
    Ok(Json(entries).into_response())
}

async fn read(
    State(outbox): State<Outbox>,
    file: Result<UrlPath<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let UrlPath(file) = file.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let bytes = outbox.read(&file).await.map_err(outbox_error)?;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    // The name passed `is_outbox_file_name`: plain ASCII, safe in a quoted header value.
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn outbox_error(e: OutboxError) -> ApiError {
    match e {
        OutboxError::InvalidName(_) => ApiError::BadRequest(e.to_string()),
        OutboxError::NotFound(_) => ApiError::NotFound(e.to_string()),
        OutboxError::Io { .. } => ApiError::Internal(Box::new(e)),
    }
}

/// The unsubscribe signer of a data dir, its key file created on first use.
pub fn unsubscribe_signer(data_dir: &Path) -> Result<UnsubscribeSigner, SecretError> {
    let (text, path) = key_file(data_dir, UNSUBSCRIBE_SECRET_FILE)?;
    UnsubscribeSigner::new(text.trim()).map_err(|_| SecretError::FileTooShort { path })
}

/// The registration-token deriver of a data dir, its key file created on first use.
/// What registration needs on one machine: the embedded store as identity provider (Argon2id
/// hashes), the data dir's `portal-events.jsonl` as the portal's bus, and the outbox for
/// confirmation emails.
pub fn registrar(
    store: std::sync::Arc<portal_embedded::sqlite::SqliteStore>,
    data_dir: &Path,
) -> portal_core::usecases::registration::Registrar {
    portal_core::usecases::registration::Registrar {
        identity: store,
        events: std::sync::Arc::new(
            portal_embedded::portal_events::JsonlRegistrationEvents::in_data_dir(data_dir),
        ),
        mailer: std::sync::Arc::new(portal_embedded::outbox::Outbox::in_data_dir(data_dir)),
        settings: portal_core::usecases::registration::RegistrationSettings::default(),
    }
}

pub fn token_deriver(data_dir: &Path) -> Result<TokenDeriver, SecretError> {
    let (text, path) = key_file(data_dir, REGISTRATION_SECRET_FILE)?;
    TokenDeriver::new(text.trim()).map_err(|_| SecretError::FileTooShort { path })
}

/// The text of a random 256-bit hex key file in the data dir (mode 0600), created on first
/// use; a concurrent creator's file is read rather than replaced.
fn key_file(data_dir: &Path, name: &str) -> Result<(String, PathBuf), SecretError> {
    std::fs::create_dir_all(data_dir).map_err(|source| SecretError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join(name);
    let file_err = |source| SecretError::File {
        path: path.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            use rand::RngCore;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            f.write_all(hex.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .and_then(|()| f.sync_all())
                .map_err(file_err)?;
            tracing::info!(path = %path.display(), "created a new secret");
        }
        // An earlier run (or a concurrent command) made it: read what is there.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(file_err(e)),
    }
    let text = std::fs::read_to_string(&path).map_err(file_err)?;
    Ok((text, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use portal_core::domain::{Email, TenantId};
    use portal_core::ports::{Mailer, RawEmail};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
        get_from(router, uri, None).await
    }

    async fn get_from(
        router: &Router,
        uri: &str,
        host: Option<&str>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut req = Request::get(uri);
        if let Some(h) = host {
            req = req.header(header::HOST, h);
        }
        let res = router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ct, body.to_vec())
    }

    fn message(to: &str, id: &str) -> RawEmail {
        RawEmail {
            from: Email::parse("hoa@example.com").unwrap(),
            to: Email::parse(to).unwrap(),
            message_id: format!("{id}@example.com"),
            raw: format!(
                "From: hoa@example.com\r\nTo: {to}\r\nSubject: Invitation {id}\r\n\
                 Date: Mon, 2 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{id}@example.com>\r\n\r\nhi\r\n"
            )
            .into_bytes(),
            tags: vec![],
        }
    }

    #[tokio::test]
    async fn the_outbox_lists_sent_messages_and_serves_each_as_rfc822() {
        let dir = tempfile::Builder::new()
            .prefix("dev-outbox")
            .tempdir()
            .unwrap();
        let outbox = Outbox::in_data_dir(dir.path());
        let router = outbox_routes(outbox.clone());
        let (status, _, body) = get(&router, "/dev/outbox").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"[]");

        let first = message("a@example.org", "m1");
        outbox.send_raw(&first).await.unwrap();
        outbox
            .send_raw(&message("b@example.org", "m2"))
            .await
            .unwrap();

        let (status, ct, body) = get(&router, "/dev/outbox").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("application/json"));
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list[0]["to"], "b@example.org");
        assert_eq!(list[1]["subject"], "Invitation m1");
        assert_eq!(list[1]["date"], "2026-11-02T12:00:00Z");
        let (_, _, one) = get(&router, "/dev/outbox?limit=1").await;
        assert_eq!(
            serde_json::from_slice::<Vec<serde_json::Value>>(&one)
                .unwrap()
                .len(),
            1
        );

        let file = list[1]["file"].as_str().unwrap();
        let (status, ct, body) = get(&router, &format!("/dev/outbox/{file}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "message/rfc822");
        assert_eq!(body, first.raw);
    }

    #[tokio::test]
    async fn outbox_file_names_cannot_reach_outside_the_outbox() {
        let dir = tempfile::Builder::new()
            .prefix("dev-outbox-traversal")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("jwt-secret.eml"), "secret").unwrap();
        let router = outbox_routes(Outbox::in_data_dir(dir.path()));
        for uri in [
            "/dev/outbox/..%2Fjwt-secret.eml",
            "/dev/outbox/%2E%2E%2Fjwt-secret.eml",
            "/dev/outbox/..",
            "/dev/outbox/.tmp-x.eml",
            "/dev/outbox/x.txt",
        ] {
            let (status, ct, _) = get(&router, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(ct, "application/problem+json", "{uri}");
        }
        let (status, ct, _) = get(&router, "/dev/outbox/missing.eml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ct, "application/problem+json");
        let (status, _, _) = get(&router, "/dev/outbox?limit=0").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_local_server_serves_the_outbox_and_honours_its_own_unsubscribe_links() {
        let dir = tempfile::Builder::new()
            .prefix("dev-serve")
            .tempdir()
            .unwrap();
        let server = crate::serve::LocalServer::open(crate::serve::ServeOptions {
            data_dir: dir.path().to_owned(),
            demo: false,
            public_url: None,
            dev_routes: Default::default(),
        })
        .await
        .unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let router = server.router_on(addr);
        let (status, _, body) = get_from(&router, "/dev/outbox", Some("127.0.0.1:3000")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"[]");

        let signer = unsubscribe_signer(dir.path()).unwrap();
        let tenant = TenantId::parse("t1").unwrap();
        let email = Email::parse("a@example.org").unwrap();
        let token = signer.sign(&tenant, &email, "", time::OffsetDateTime::now_utc());
        let (status, ct, _) = get(&router, &format!("/v1/unsubscribe?token={token}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        let res = router
            .clone()
            .oneshot(
                Request::post(format!("/v1/unsubscribe?token={token}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("List-Unsubscribe=One-Click"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        use portal_core::ports::SuppressionStore;
        assert!(server.store().is_suppressed(&tenant, &email).await.unwrap());
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn dev_routes_are_served_on_loopback_and_elsewhere_only_when_asked() {
        use DevRoutesDecision::*;
        let auto = DevRoutes::LoopbackOnly;
        for a in ["127.0.0.1:3000", "[::1]:3000", "127.0.0.5:0"] {
            assert_eq!(
                DevRoutesDecision::decide(auto, addr(a)),
                OnLoopback(addr(a))
            );
        }
        for a in ["0.0.0.0:3000", "[::]:3000", "192.168.1.20:3000"] {
            let off = DevRoutesDecision::decide(auto, addr(a));
            assert_eq!(off, OffNotLoopback(addr(a)));
            assert!(!off.is_on());
            assert!(off.reason().contains("--dev-routes"), "{}", off.reason());
            let on = DevRoutesDecision::decide(DevRoutes::Always, addr(a));
            assert_eq!(on, OnByFlag(addr(a)));
            assert!(on.is_on());
        }
    }

    #[test]
    fn only_hosts_naming_this_server_pass_the_host_check() {
        let loopback = HostGuard::new(addr("127.0.0.1:3000"));
        for ok in ["127.0.0.1:3000", "127.0.0.1", "localhost:3000", "LOCALHOST"] {
            assert!(loopback.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3000",
            "10.0.0.1:3000",
            "",
            "localhost@evil.example",
        ] {
            assert!(!loopback.allows(bad), "{bad:?}");
        }
        let v6 = HostGuard::new(addr("[::1]:3000"));
        assert!(v6.allows("[::1]:3000"));
        assert!(!v6.allows("127.0.0.1:3000"));
        let any = HostGuard::new(addr("0.0.0.0:3000"));
        assert!(any.allows("192.168.1.20:3000"));
        assert!(any.allows("localhost"));
        assert!(!any.allows("printer.lan:3000"));
    }

    #[tokio::test]
    async fn a_request_for_another_host_gets_a_problem_not_mail() {
        let dir = tempfile::Builder::new()
            .prefix("dev-rebinding")
            .tempdir()
            .unwrap();
        let outbox = Outbox::in_data_dir(dir.path());
        outbox
            .send_raw(&message("a@example.org", "m1"))
            .await
            .unwrap();
        let router = guarded_outbox_routes(outbox, HostGuard::new(addr("127.0.0.1:3000")));
        for host in [Some("evil.example:3000"), Some("evil.example"), None] {
            for uri in ["/dev/outbox", "/dev/outbox/x.eml"] {
                let (status, ct, body) = get_from(&router, uri, host).await;
                assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host:?} {uri}");
                assert_eq!(ct, "application/problem+json", "{host:?} {uri}");
                let text = String::from_utf8(body).unwrap();
                assert!(!text.contains("a@example.org"), "{text}");
            }
        }
        let (status, _, body) = get_from(&router, "/dev/outbox", Some("localhost:3000")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8(body).unwrap().contains("a@example.org"));
    }

    #[test]
    fn the_unsubscribe_secret_is_made_once_per_data_dir_and_kept_private() {
        let dir = tempfile::Builder::new()
            .prefix("unsub-secret")
            .tempdir()
            .unwrap();
        let a = unsubscribe_signer(dir.path()).unwrap();
        let b = unsubscribe_signer(dir.path()).unwrap();
        let t = TenantId::parse("t1").unwrap();
        let e = Email::parse("a@example.org").unwrap();
        let token = a.sign(&t, &e, "", time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            b.verify(&token).unwrap().email,
            e,
            "same key on the second use"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(UNSUBSCRIBE_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::Builder::new()
            .prefix("unsub-secret-2")
            .tempdir()
            .unwrap();
        assert!(unsubscribe_signer(other.path())
            .unwrap()
            .verify(&token)
            .is_err());
    }
}
