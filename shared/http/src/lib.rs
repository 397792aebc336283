//! The HTTP layer: axum routers that run unchanged under `lambda_http` (one per [`Job`], each
//! in its own function under `functions/`) and, merged into one, in the local server
//! (`infra/`).
//!
//! # Layout
//!
//! - [`auth`]: bearer JWT verification and the [`auth::Authorized`] extractor (401/403).
//! - [`error`]: [`ApiError`], the only way an error leaves the API (problem+json).
//! - [`json`]: body reading where every rejection is an [`ApiError`].
//! - one module per route group: [`divisions`] (and the values the count filters take),
//!   [`sync`], [`invitations`] (counts and lists),
//!   with [`csv`] streaming a list as CSV; [`templates`] (and the preview); [`campaigns`]
//!   (bulk sends, the individual invite); [`unsubscribe`] is public (signed token, no JWT).
//!
//! [`ROUTES`] is the list of `(job, method, path)` the API serves; the routers are built from
//! [`route_table`], a unit test checks the two agree, `tests/api` checks `openapi.yaml`
//! against [`ROUTES`], and `tests/deploy` checks that `template.yaml` wires each route to its
//! job's function and to no other.
//!
//! Every route gets a small body limit ([`DEFAULT_BODY_LIMIT`]); `POST /v1/sync/accounts`
//! gets [`SYNC_BODY_LIMIT`], and a few routes their own (`POST /v1/campaigns`: a
//! hand-picked selection of 10,000 ids). A last layer turns any error response that is not yet
//! problem+json (one an extractor or axum itself produced) into one.

pub mod auth;
pub mod campaigns;
pub mod console;
pub mod csv;
pub mod divisions;
pub mod error;
pub mod invitations;
pub mod json;
pub mod pages;
pub mod paging;
pub mod recurring;
pub mod register;
pub mod registrations;
pub mod senders;
pub mod ses_events;
pub mod statistics;
pub mod sync;
pub mod templates;
pub mod unsubscribe;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::PublicUrl;
use portal_core::ports::{Clock, EventWebhook, Store};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::Schedules;
use portal_core::usecases::registration::Registrar;

pub use error::ApiError;

/// Body limit of every route but sync.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Body limit of `POST /v1/sync/accounts`: room for well over 10,000 accounts.
pub const SYNC_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The jobs the API is split into on AWS, one Lambda function each (`functions/<name>`), so
/// that each function holds only the permissions its job needs. The local server serves
/// them all from one router ([`router`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Count loading: divisions, counts, recipient lists and their CSV, templates and their
    /// preview, campaigns and their statistics. Reads, never writes.
    LoadCounts,
    /// The company's system and the managers' settings: account sync and deletion, division
    /// settings, templates. The only job that writes accounts and contacts.
    Sync,
    /// Starting sends: bulk campaigns and individual invitations. The only job that puts
    /// events on the send bus.
    Send,
    /// Public routes about delivered mail: the SES event webhook and the one-click
    /// unsubscribe. No manager route, no bearer token.
    Events,
    /// Sign-up: the residents' public registration pages and the staff routes of portal
    /// keys and sign-up requests. The only job that talks to the identity provider.
    Registration,
    /// Recurring invitations: the settings routes, and the runs the scheduler starts. The
    /// only job that manages schedules.
    Recurring,
    /// The managers' console: its shell page and embedded assets. Touches no data: the
    /// console's script calls the other jobs' routes with the manager's token.
    Console,
}

impl Job {
    pub const ALL: [Job; 7] = [
        Job::LoadCounts,
        Job::Sync,
        Job::Send,
        Job::Events,
        Job::Registration,
        Job::Recurring,
        Job::Console,
    ];

    /// The function serving this job on AWS (`functions/<name>`, `template.yaml`).
    pub fn function(self) -> &'static str {
        match self {
            Job::LoadCounts => "load-counts",
            Job::Sync => "sync",
            Job::Send => "send",
            Job::Events => "ses-events",
            Job::Registration => "registration",
            Job::Recurring => "recurring",
            Job::Console => "console",
        }
    }
}

/// Every route the API serves: `(job, method, path)`, paths in OpenAPI/axum template syntax.
pub const ROUTES: &[(Job, &str, &str)] = &[
    (Job::LoadCounts, "GET", "/v1/divisions"),
    (Job::LoadCounts, "GET", "/v1/divisions/filter-values"),
    (Job::Sync, "PUT", "/v1/divisions/{division_id}"),
    (Job::Sync, "POST", "/v1/sync/accounts"),
    (Job::Sync, "DELETE", "/v1/accounts/{account_id}"),
    (Job::LoadCounts, "POST", "/v1/invitations/counts"),
    (Job::LoadCounts, "POST", "/v1/invitations/recipients"),
    (Job::LoadCounts, "GET", "/v1/templates"),
    (Job::LoadCounts, "GET", "/v1/templates/{template_id}"),
    (Job::Sync, "PUT", "/v1/templates/{template_id}"),
    (Job::Sync, "DELETE", "/v1/templates/{template_id}"),
    (Job::LoadCounts, "GET", "/v1/settings/senders"),
    (Job::Sync, "PUT", "/v1/settings/senders"),
    (Job::LoadCounts, "POST", "/v1/invitations/preview"),
    (Job::Send, "POST", "/v1/campaigns"),
    (Job::LoadCounts, "GET", "/v1/campaigns"),
    (Job::LoadCounts, "GET", "/v1/campaigns/{campaign_id}"),
    (
        Job::LoadCounts,
        "POST",
        "/v1/campaigns/{campaign_id}/recipients",
    ),
    (Job::Send, "POST", "/v1/invitations/individual"),
    (Job::Events, "GET", "/v1/unsubscribe"),
    (Job::Events, "POST", "/v1/unsubscribe"),
    (Job::Events, "POST", "/v1/ses-events"),
    (Job::Registration, "GET", "/register"),
    (Job::Registration, "POST", "/register"),
    (Job::Registration, "GET", "/register/key"),
    (Job::Registration, "POST", "/register/key"),
    (Job::Registration, "GET", "/register/confirm"),
    (Job::Registration, "POST", "/register/confirm"),
    (Job::Registration, "GET", "/register/request"),
    (Job::Registration, "POST", "/register/request"),
    (
        Job::Registration,
        "GET",
        "/v1/accounts/{account_id}/portal-key",
    ),
    (
        Job::Registration,
        "POST",
        "/v1/accounts/{account_id}/portal-key",
    ),
    (Job::Registration, "GET", "/v1/registration-requests"),
    (
        Job::Registration,
        "GET",
        "/v1/registration-requests/{request_id}",
    ),
    (
        Job::Registration,
        "POST",
        "/v1/registration-requests/{request_id}/match",
    ),
    (
        Job::Registration,
        "POST",
        "/v1/registration-requests/{request_id}/reject",
    ),
    (Job::Recurring, "GET", "/v1/recurring"),
    (Job::Recurring, "GET", "/v1/recurring/{recurring_id}"),
    (Job::Recurring, "PUT", "/v1/recurring/{recurring_id}"),
    (Job::Recurring, "DELETE", "/v1/recurring/{recurring_id}"),
    (Job::Recurring, "GET", "/v1/recurring/{recurring_id}/runs"),
    (
        Job::Recurring,
        "POST",
        "/v1/recurring/{recurring_id}/preview",
    ),
    (Job::Console, "GET", "/console"),
    (Job::Console, "GET", "/console/assets/{asset}"),
];

/// The routes of [`ROUTES`] that take no bearer token: the unsubscribe link carries its own
/// signed token, an SES event is believed only when its SNS signature verifies, and the
/// registration pages are for residents (an invitation's token, a portal key, or a request
/// staff will check); the console's shell and assets hold no data (its script signs in and
/// calls the API with a token). Every other route answers 401 without a JWT.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/unsubscribe"),
    ("POST", "/v1/unsubscribe"),
    ("POST", "/v1/ses-events"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/register/key"),
    ("POST", "/register/key"),
    ("GET", "/register/confirm"),
    ("POST", "/register/confirm"),
    ("GET", "/register/request"),
    ("POST", "/register/request"),
    ("GET", "/console"),
    ("GET", "/console/assets/{asset}"),
];

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<auth::Verifier>,
    /// Base of every link in an email (`[PortalLink]`, `[UnsubscribeLink]`), no trailing `/`.
    pub public_url: PublicUrl,
    /// Signs and checks unsubscribe links; `None` until [`AppState::with_unsubscribe`]
    /// (the unsubscribe routes then answer 500: a configuration error).
    pub unsubscribe: Option<Arc<UnsubscribeSigner>>,
    /// The bus and token deriver the send routes need; `None` until
    /// [`AppState::with_sending`] (those routes then answer 500: a configuration error).
    pub sending: Option<Arc<Sending>>,
    /// Verifies and applies SES events (`POST /v1/ses-events`); `None` until
    /// [`AppState::with_ses_webhook`] (the route then answers 500: a configuration error).
    pub ses_webhook: Option<Arc<dyn EventWebhook>>,
    /// The identity provider, the portal's event bus and the confirmation mailer the
    /// registration pages need; `None` until [`AppState::with_registration`] (the pages that
    /// register then answer 500: a configuration error).
    pub registration: Option<Arc<Registrar>>,
    /// Where recurring settings' schedules are kept; `None` until
    /// [`AppState::with_schedules`] (saving a setting then answers 500: a configuration
    /// error).
    pub schedules: Option<Arc<dyn Schedules>>,
    /// The console's sign-in settings; without them `/console` says it is not set up.
    pub console: Option<Arc<console::Console>>,
}

/// [`AppState::public_url`] is `http://127.0.0.1:{this}` unless
/// [`AppState::with_public_url`] says otherwise.
pub const DEFAULT_PUBLIC_PORT: u16 = 3000;

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, auth: auth::Verifier) -> Self {
        Self {
            store,
            clock,
            auth: Arc::new(auth),
            public_url: PublicUrl::local(DEFAULT_PUBLIC_PORT),
            unsubscribe: None,
            sending: None,
            ses_webhook: None,
            registration: None,
            schedules: None,
            console: None,
        }
    }

    /// Sets the base URL links in emails are built from (a trailing `/` is dropped).
    pub fn with_public_url(mut self, url: PublicUrl) -> Self {
        self.public_url = url;
        self
    }

    /// Sets the signer of unsubscribe links (`UNSUBSCRIBE_SECRET` on Lambda, a secret file
    /// in the local server's data dir).
    pub fn with_unsubscribe(mut self, signer: UnsubscribeSigner) -> Self {
        self.unsubscribe = Some(Arc::new(signer));
        self
    }

    /// Sets what the send routes (`POST /v1/campaigns`, `POST /v1/invitations/individual`)
    /// publish to and derive registration tokens with.
    pub fn with_sending(mut self, sending: Sending) -> Self {
        self.sending = Some(Arc::new(sending));
        self
    }

    /// Sets what registration needs: the identity provider, the portal's event bus, the
    /// confirmation mailer and the sign-up settings.
    pub fn with_registration(mut self, registrar: Registrar) -> Self {
        self.registration = Some(Arc::new(registrar));
        self
    }

    /// Sets where recurring settings' schedules go (EventBridge Scheduler on AWS,
    /// `LocalSchedules` on one machine).
    pub fn with_schedules(mut self, schedules: Arc<dyn Schedules>) -> Self {
        self.schedules = Some(schedules);
        self
    }

    /// Sets the console's sign-in settings (see [`console`]).
    pub fn with_console(mut self, config: console::ConsoleConfig) -> Self {
        self.console = Some(Arc::new(console::Console::new(config)));
        self
    }

    /// Sets the SES event webhook's verifier and raw-delivery secret.
    pub fn with_ses_webhook(mut self, webhook: impl EventWebhook + 'static) -> Self {
        self.ses_webhook = Some(Arc::new(webhook));
        self
    }
}

/// The items of a comma-separated list header (`Accept`, `Accept-Encoding`), over all its
/// lines, each as written (parameters such as `;q=0.5` included, not trimmed).
pub(crate) fn header_items(
    headers: &axum::http::HeaderMap,
    name: header::HeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

/// `64 MiB`, `256 KiB`: a limit as a person reads it.
pub fn describe_limit(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    // Written without `%` / `is_multiple_of` (1.87) to keep the workspace's 1.85 MSRV.
    if bytes >= MIB && bytes / MIB * MIB == bytes {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes / KIB * KIB == bytes {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// `(method, path, handler)` of every route of [`ROUTES`], job by job; the routers are built
/// from it.
pub fn route_table() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    let mut all = Vec::with_capacity(ROUTES.len());
    all.extend(load_counts_routes());
    all.extend(sync_routes());
    all.extend(send_routes());
    all.extend(events_routes());
    all.extend(registration_routes());
    all.extend(recurring_routes());
    all.extend(console_routes());
    all
}

/// `(method, path, handler)` of [`Job::LoadCounts`]'s routes.
fn load_counts_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/divisions", get(divisions::list)),
        (
            "GET",
            "/v1/divisions/filter-values",
            get(divisions::filter_values),
        ),
        ("POST", "/v1/invitations/counts", post(invitations::counts)),
        (
            "POST",
            "/v1/invitations/recipients",
            post(invitations::recipients),
        ),
        ("GET", "/v1/templates", get(templates::list)),
        ("GET", "/v1/settings/senders", get(senders::get)),
        ("GET", "/v1/templates/{template_id}", get(templates::get)),
        (
            "POST",
            "/v1/invitations/preview",
            post(templates::preview).layer(DefaultBodyLimit::max(templates::TEMPLATE_BODY_LIMIT)),
        ),
        ("GET", "/v1/campaigns", get(statistics::list)),
        ("GET", "/v1/campaigns/{campaign_id}", get(campaigns::get)),
        (
            "POST",
            "/v1/campaigns/{campaign_id}/recipients",
            post(statistics::recipients),
        ),
    ]
}

/// `(method, path, handler)` of [`Job::Sync`]'s routes.
fn sync_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("PUT", "/v1/divisions/{division_id}", put(divisions::put)),
        (
            "POST",
            "/v1/sync/accounts",
            post(sync::accounts).layer(DefaultBodyLimit::max(SYNC_BODY_LIMIT)),
        ),
        (
            "DELETE",
            "/v1/accounts/{account_id}",
            delete(sync::delete_account),
        ),
        (
            "PUT",
            "/v1/templates/{template_id}",
            put(templates::put).layer(DefaultBodyLimit::max(templates::TEMPLATE_BODY_LIMIT)),
        ),
        (
            "DELETE",
            "/v1/templates/{template_id}",
            delete(templates::delete),
        ),
        ("PUT", "/v1/settings/senders", put(senders::put)),
    ]
}

/// `(method, path, handler)` of [`Job::Send`]'s routes.
fn send_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        (
            "POST",
            "/v1/campaigns",
            post(campaigns::create).layer(DefaultBodyLimit::max(campaigns::CAMPAIGN_BODY_LIMIT)),
        ),
        (
            "POST",
            "/v1/invitations/individual",
            post(campaigns::individual),
        ),
    ]
}

/// `(method, path, handler)` of [`Job::Events`]'s routes.
fn events_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/unsubscribe", get(unsubscribe::show)),
        ("POST", "/v1/unsubscribe", post(unsubscribe::unsubscribe)),
        (
            "POST",
            "/v1/ses-events",
            post(ses_events::receive)
                .layer(DefaultBodyLimit::max(ses_events::SES_EVENTS_BODY_LIMIT)),
        ),
    ]
}

/// `(method, path, handler)` of [`Job::Registration`]'s routes.
fn registration_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        (
            "GET",
            "/register",
            get(register::invitation_form).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "POST",
            "/register",
            post(register::invitation_submit)
                .layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "GET",
            "/register/key",
            get(register::key_form).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "POST",
            "/register/key",
            post(register::key_submit).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "GET",
            "/register/confirm",
            get(register::confirm_form).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "POST",
            "/register/confirm",
            post(register::confirm_submit).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "GET",
            "/register/request",
            get(register::request_form).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "POST",
            "/register/request",
            post(register::request_submit).layer(middleware::from_fn(register::pages_for_browsers)),
        ),
        (
            "GET",
            "/v1/accounts/{account_id}/portal-key",
            get(registrations::get_key),
        ),
        (
            "POST",
            "/v1/accounts/{account_id}/portal-key",
            post(registrations::rotate_key),
        ),
        ("GET", "/v1/registration-requests", get(registrations::list)),
        (
            "GET",
            "/v1/registration-requests/{request_id}",
            get(registrations::get),
        ),
        (
            "POST",
            "/v1/registration-requests/{request_id}/match",
            post(registrations::match_request),
        ),
        (
            "POST",
            "/v1/registration-requests/{request_id}/reject",
            post(registrations::reject),
        ),
    ]
}

/// `(method, path, handler)` of [`Job::Recurring`]'s routes.
fn recurring_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/recurring", get(recurring::list)),
        ("GET", "/v1/recurring/{recurring_id}", get(recurring::get)),
        ("PUT", "/v1/recurring/{recurring_id}", put(recurring::put)),
        (
            "DELETE",
            "/v1/recurring/{recurring_id}",
            delete(recurring::delete),
        ),
        (
            "GET",
            "/v1/recurring/{recurring_id}/runs",
            get(recurring::runs),
        ),
        (
            "POST",
            "/v1/recurring/{recurring_id}/preview",
            post(recurring::preview),
        ),
    ]
}

/// `(method, path, handler)` of [`Job::Console`]'s routes.
fn console_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/console", get(console::index)),
        ("GET", "/console/assets/{asset}", get(console::asset)),
    ]
}

/// The whole API, every job's routes in one router: what the local server serves.
pub fn router(state: AppState) -> Router {
    router_with(state, |_, _| true)
}

/// The routes of one job, with the same fallbacks and layers: what its function serves (any
/// other route answers 404).
pub fn job_router(job: Job, state: AppState) -> Router {
    router_with(state, |method, path| {
        ROUTES
            .iter()
            .any(|&(j, m, p)| j == job && m == method && p == path)
    })
}

/// One router per job, built from that job's routes only, so that a function's binary holds
/// its own handlers and none of the others' (what [`job_router`] cannot do: it picks at run
/// time from every route). Each `functions/<job>/src/main.rs` calls its own.
pub mod jobs {
    use axum::Router;

    use super::{from_routes, AppState};

    pub fn load_counts(state: AppState) -> Router {
        from_routes(super::load_counts_routes(), state)
    }
    pub fn sync(state: AppState) -> Router {
        from_routes(super::sync_routes(), state)
    }
    pub fn send(state: AppState) -> Router {
        from_routes(super::send_routes(), state)
    }
    pub fn events(state: AppState) -> Router {
        from_routes(super::events_routes(), state)
    }
    pub fn registration(state: AppState) -> Router {
        from_routes(super::registration_routes(), state)
    }
    pub fn recurring(state: AppState) -> Router {
        from_routes(super::recurring_routes(), state)
    }
    pub fn console(state: AppState) -> Router {
        from_routes(super::console_routes(), state)
    }
}

/// The routes of [`route_table`] that `keep(method, path)` accepts, with the same
/// fallbacks and layers (a function serving part of the API answers the rest 404).
pub fn router_with(state: AppState, keep: impl Fn(&str, &str) -> bool) -> Router {
    let routes = route_table()
        .into_iter()
        .filter(|&(method, path, _)| keep(method, path))
        .collect();
    from_routes(routes, state)
}

/// A router of exactly `routes`, with the fallbacks and layers every router has.
fn from_routes(
    routes: Vec<(&'static str, &'static str, MethodRouter<AppState>)>,
    state: AppState,
) -> Router {
    let mut router = Router::new();
    for (_, path, method_router) in routes {
        router = router.route(path, method_router);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(middleware::from_fn(problem_safety_net))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn no_route(req: Request) -> ApiError {
    ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    }
}

/// One line per request: method, route template (not the raw path, so ids stay out of
/// the aggregation key), status and latency.
async fn access_log(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(no route)".to_owned());
    let response = next.run(req).await;
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Makes sure no error leaves as anything but problem+json, whatever produced it.
async fn problem_safety_net(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // The resident pages answer refusals as pages (with the same status): leave them be.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_page {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == error::PROBLEM_JSON.as_bytes());
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = match axum::body::to_bytes(body, 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let mut fixed = ApiError::from_status(status, detail).into_response();
    if status != StatusCode::INTERNAL_SERVER_ERROR {
        *fixed.status_mut() = status;
    }
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_is_built_from_exactly_the_listed_routes() {
        let mut built: Vec<(&str, &str)> =
            route_table().into_iter().map(|(m, p, _)| (m, p)).collect();
        let mut listed: Vec<(&str, &str)> = ROUTES.iter().map(|&(_, m, p)| (m, p)).collect();
        built.sort_unstable();
        listed.sort_unstable();
        assert_eq!(built, listed);
        // Each job's own table is exactly its routes.
        let tables = [
            (Job::LoadCounts, load_counts_routes()),
            (Job::Sync, sync_routes()),
            (Job::Send, send_routes()),
            (Job::Events, events_routes()),
            (Job::Registration, registration_routes()),
            (Job::Recurring, recurring_routes()),
            (Job::Console, console_routes()),
        ];
        for (job, table) in tables {
            let mut got: Vec<(&str, &str)> = table.into_iter().map(|(m, p, _)| (m, p)).collect();
            let mut want: Vec<(&str, &str)> = ROUTES
                .iter()
                .filter(|&&(j, _, _)| j == job)
                .map(|&(_, m, p)| (m, p))
                .collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{job:?}");
        }
    }

    #[test]
    fn the_public_routes_are_the_events_job_the_registration_pages_and_the_console_shell_and_no_job_is_empty(
    ) {
        let public: Vec<(&str, &str)> = ROUTES
            .iter()
            .filter(|&&(j, _, p)| {
                j == Job::Events
                    || j == Job::Console
                    || (j == Job::Registration && !p.starts_with("/v1/"))
            })
            .map(|&(_, m, p)| (m, p))
            .collect();
        assert_eq!(public, PUBLIC_ROUTES);
        for job in Job::ALL {
            assert!(ROUTES.iter().any(|&(j, _, _)| j == job), "{job:?}");
        }
    }

    #[test]
    fn limits_read_as_a_person_would_write_them() {
        assert_eq!(describe_limit(SYNC_BODY_LIMIT), "64 MiB");
        assert_eq!(describe_limit(DEFAULT_BODY_LIMIT), "256 KiB");
        assert_eq!(describe_limit(10), "10 bytes");
    }
}
