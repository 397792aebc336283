//! The HTTP API: one axum [`Router`] that runs unchanged under `lambda_http` (in
//! `functions/*`) and in the local server (`infra/`).
//!
//! INTERFACE PINNED FOR PARALLEL WORK — the bodies are being written.

pub mod auth;

use std::sync::Arc;

use axum::Router;

use crate::ports::{Clock, Store};

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<auth::Verifier>,
}

/// Every route of this issue: sync, divisions, counts, recipient lists.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
