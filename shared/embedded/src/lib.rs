//! The embedded adapters: what runs Portal Invitations on one machine with nothing else
//! installed (the local server, the tests, the benchmarks).
//!
//! - [`sqlite`]: the store, every port of `portal_core::ports` on one SQLite file; its schema
//!   and every migration live in [`sqlite::schema`], stepped on one version number.
//! - [`outbox`]: the local mailer, appending each message once to a log of segment files.
//! - [`portal_events`]: the portal's registration events as JSON lines in the data dir.

pub mod outbox;
pub mod portal_events;
pub mod sqlite;
