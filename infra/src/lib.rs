//! The local server and operator commands of Portal Invitations, as a library so the
//! end-to-end tests drive exactly what the `portal-invites` binary runs.
//!
//! # Layout
//!
//! - [`serve`]: `portal-invites serve` — every HTTP route in one process on the embedded
//!   SQLite store, optionally with the demo tenant; graceful shutdown.
//! - [`recurring`]: the local server's recurring scheduler (due settings run every minute)
//!   and `portal-invites run-recurring` (run them now, or at another instant with `--at`).
//! - [`sweep`]: the local server's sweeper (stalled campaigns re-published every minute).
//! - [`token`]: `portal-invites token` — signs a bearer token the local server accepts.
//! - [`idp`]: the local identity provider the console signs in with (one-time sign-in
//!   links, OpenID Connect authorization code + PKCE); `portal-invites sign-in-link`.
//! - [`import`]: `portal-invites import` — accounts and contacts from CSV, checked whole
//!   before anything is written.
//! - [`secret`]: the HS256 secret `serve` and `token` share (environment or data dir).
//! - [`simulate`]: `portal-invites simulate-events` — SES's events for a campaign, made up
//!   and fed through the webhook's core (there is no SES on one machine).
//! - [`dev`]: local-only routes (`GET /dev/outbox`) and the unsubscribe secret file.
//!
//! `src/main.rs` only parses arguments, sets up logging and calls these; `src/bin/` holds the
//! benchmark binaries.
//!
//! A data dir holds `portal.db` (the SQLite store, WAL mode), `jwt-secret`,
//! `unsubscribe-secret` and `outbox/` (every email the local mailer sent, in an append-only log
//! served as `.eml` by `GET /dev/outbox`); several
//! commands may use one data dir at once (e.g. `import` while `serve` runs).

pub mod bench;
pub mod dev;
pub mod idp;
pub mod import;
pub mod recurring;
pub mod secret;
pub mod sending;
pub mod serve;
pub mod simulate;
pub mod sweep;
pub mod token;

use std::path::{Path, PathBuf};

use portal_core::ports::StoreError;
use portal_embedded::sqlite::SqliteStore;

/// Data dir used when `--data-dir` is not given, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".portal-invites";

/// The SQLite file inside a data dir.
pub const DB_FILE: &str = "portal.db";

#[derive(Debug, thiserror::Error)]
#[error("cannot open the store {path}")]
pub struct OpenStoreError {
    pub path: PathBuf,
    #[source]
    pub source: StoreError,
}

/// Opens (creating if needed) the embedded store of a data dir.
pub fn open_store(data_dir: &Path) -> Result<SqliteStore, OpenStoreError> {
    let path = data_dir.join(DB_FILE);
    SqliteStore::open(&path).map_err(|source| OpenStoreError { path, source })
}
