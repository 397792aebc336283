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
//! router is the library's and has no `/dev` routes. They carry no authentication: the local
//! server listens on loopback by default and the outbox is the developer's own mail.
//!
//! The unsubscribe links' HMAC key lives next to `jwt-secret` in the data dir as
//! `unsubscribe-secret` (32 random bytes as hex, owner-only), made on first use; deleting the
//! data dir invalidates the links it signed.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderValue};
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

/// The `/dev/outbox` routes over `outbox`.
pub fn outbox_routes(outbox: Outbox) -> Router {
    Router::new()
        .route("/dev/outbox", get(list))
        .route("/dev/outbox/{file}", get(read))
        .with_state(outbox)
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
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
        let res = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
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
        })
        .await
        .unwrap();
        let router = server.router();
        let (status, _, body) = get(&router, "/dev/outbox").await;
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
