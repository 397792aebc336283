//! `portal-invites serve`: every HTTP route in one process, on the embedded SQLite store.
//!
//! [`LocalServer::open`] does everything that can fail before a port is taken — data dir,
//! secret, store, demo data — so a mistake is reported before anything listens.
//! [`LocalServer::run`] then serves the library's router (the same one Lambda runs) until the
//! shutdown future resolves, finishing requests in flight. Tests drive the same two calls on
//! `127.0.0.1:0` with a fresh data dir.
//!
//! While it serves, the server also runs recurring invitation settings that are due (see
//! [`crate::recurring::Scheduler`]): a task that wakes every minute, started by `run` and
//! stopped with it; and the sweeper ([`crate::sweep::SweepTask`]), another such task, which
//! re-publishes campaigns that made no progress for `--sweep-idle-minutes` on the server's
//! in-process bus.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use portal_aws::webhook::{SesWebhook, WebhookDefaults};
use portal_core::demo::DemoSummary;
use portal_core::domain::PublicUrl;
use portal_core::ports::{Clock, EventBus, SendMessage, SystemClock};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::LocalSchedules;
use portal_core::usecases::send::sweep::{SweepConfig, Sweeper, DEFAULT_IDLE};
use portal_core::usecases::send::InProcessBus;
use portal_embedded::outbox::Outbox;
use portal_embedded::sqlite::SqliteStore;
use portal_http::auth::{Permission, Verifier};
use portal_http::{router, AppState};
use tokio::net::TcpListener;

use crate::dev::{DevRoutes, DevRoutesDecision, HostGuard};
use crate::recurring::{Scheduler, DEFAULT_TICK};
use crate::secret::{Secret, SecretError, SecretSource};
pub use crate::sending::{
    local_send_deps, SERVE_OUTCOME_FLUSH, SERVE_SEND_CONCURRENCY, SERVE_STEP_CONCURRENCY,
};
use crate::sweep::{SweepTask, DEFAULT_SWEEP_EVERY};
use crate::{open_store, OpenStoreError};

/// Address `serve` listens on unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The port of [`DEFAULT_ADDR`].
const DEFAULT_PORT: u16 = 3000;

/// Directory of a data dir holding pre-fetched SNS signing certificates (named as the last
/// segment of their URL), read before fetching over HTTPS.
pub const SNS_CERT_DIR: &str = "sns-certs";

/// How `serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// Load the deterministic demo tenant before listening.
    pub demo: bool,
    /// The URL people reach this server at, when not `http://<listen address>` (a proxy).
    pub public_url: Option<String>,
    /// Whether the `/dev` routes (the outbox) are served off loopback too (`--dev-routes`).
    pub dev_routes: DevRoutes,
}

/// What tests and benchmarks may replace in a local server ([`LocalServer::open_with`]).
#[derive(Clone)]
pub struct ServeTuning {
    /// The clock of everything the server does: requests, sends, the recurring scheduler.
    pub clock: Arc<dyn Clock>,
    /// How often the recurring scheduler wakes (aligned to multiples of it).
    pub scheduler_tick: Duration,
    /// Time between two sweeps (`--sweep-every-secs`).
    pub sweep_every: Duration,
    /// No progress for this long → a campaign is re-published (`--sweep-idle-minutes`).
    pub sweep_idle: time::Duration,
}

impl Default for ServeTuning {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            scheduler_tick: DEFAULT_TICK,
            sweep_every: DEFAULT_SWEEP_EVERY,
            sweep_idle: DEFAULT_IDLE,
        }
    }
}

impl std::fmt::Debug for ServeTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeTuning")
            .field("scheduler_tick", &self.scheduler_tick)
            .field("sweep_every", &self.sweep_every)
            .field("sweep_idle", &self.sweep_idle)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--public-url must be an http:// or https:// URL without query or fragment, got {0:?}"
    )]
    PublicUrl(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] OpenStoreError),
    #[error("cannot load the demo tenant")]
    Demo(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot resume the unfinished campaigns")]
    Resume(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
}

/// A local server ready to listen.
pub struct LocalServer {
    opts: ServeOptions,
    /// `--public-url` as parsed, when given.
    public_url: Option<PublicUrl>,
    secret: Secret,
    store: Arc<SqliteStore>,
    router: Router,
    /// What the `/dev` routes serve; merged by [`LocalServer::router_on`] when they are on.
    outbox: Outbox,
    demo: Option<DemoSummary>,
    /// With `--demo`: a fresh invitation's registration link, so a newcomer can register.
    demo_link: Option<String>,
    /// What `run` starts beside the HTTP server.
    scheduler: Scheduler,
    sweeper: SweepTask,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("opts", &self.opts)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Prepares the data dir, secret and store, and loads the demo tenant when asked.
    pub async fn open(opts: ServeOptions) -> Result<Self, ServeError> {
        Self::open_with(opts, ServeTuning::default()).await
    }

    /// [`LocalServer::open`] with another clock or scheduler period.
    pub async fn open_with(opts: ServeOptions, tuning: ServeTuning) -> Result<Self, ServeError> {
        let given = opts
            .public_url
            .as_deref()
            .map(|u| PublicUrl::parse(u).map_err(|_| ServeError::PublicUrl(u.to_owned())))
            .transpose()?;
        let public_url = given.clone().unwrap_or(PublicUrl::local(DEFAULT_PORT));
        let secret = Secret::resolve(&opts.data_dir)?;
        let store = Arc::new(open_store(&opts.data_dir)?);
        let clock = tuning.clock;
        let demo = if opts.demo {
            let started = Instant::now();
            let summary = portal_core::demo::load_demo(&*store, clock.now())
                .await
                .map_err(|e| ServeError::Demo(Box::new(e)))?;
            tracing::info!(
                tenant = %summary.tenant,
                contacts = summary.contacts,
                ms = started.elapsed().as_millis() as u64,
                "demo tenant ready"
            );
            Some(summary)
        } else {
            None
        };
        // Sending: the same fan-out and delivery code as the Lambda functions, driven by an
        // in-process queue, writing every email into the data dir's outbox.
        let deps = local_send_deps(
            &opts.data_dir,
            store.clone(),
            clock.clone(),
            public_url.clone(),
        )?;
        let unsubscribe = crate::dev::unsubscribe_signer(&opts.data_dir)?;
        let tokens = deps.tokens.clone();
        let token_ttl = deps.config.token_ttl;
        let (bus, _worker) = InProcessBus::spawn(deps, std::time::Duration::from_secs(1));
        // Campaigns a previous run left unfinished carry on where they stopped.
        let unfinished = store
            .unfinished_campaigns()
            .await
            .map_err(|e| ServeError::Resume(Box::new(e)))?;
        for (tenant, campaign_id) in unfinished {
            tracing::info!(%tenant, %campaign_id, "resuming an unfinished campaign");
            bus.publish(&[SendMessage::FanOut {
                tenant,
                campaign_id,
                cursor: None,
                spec: None,
            }])
            .await
            .map_err(|e| ServeError::Resume(Box::new(e)))?;
        }
        let bus = Arc::new(bus);
        let sweeper = SweepTask {
            sweeper: Sweeper {
                store: store.clone(),
                bus: bus.clone(),
                clock: clock.clone(),
                config: SweepConfig {
                    idle: tuning.sweep_idle,
                },
            },
            every: tuning.sweep_every,
        };
        let sending = Sending {
            bus: bus.clone(),
            tokens: tokens.clone(),
            token_ttl,
        };
        let scheduler = Scheduler {
            store: store.clone(),
            clock: clock.clone(),
            sending: Sending {
                bus: bus.clone(),
                tokens: tokens.clone(),
                token_ttl,
            },
            tick: tuning.scheduler_tick,
        };
        let demo_link = match &demo {
            Some(d) => demo_registration_link(&store, &*clock, &sending, &public_url, d).await,
            None => None,
        };
        let state = AppState::new(
            store.clone(),
            clock.clone(),
            Verifier::hs256(secret.as_bytes()),
        )
        .with_public_url(public_url)
        .with_unsubscribe(unsubscribe)
        .with_sending(sending)
        .with_registration(crate::dev::registrar(store.clone(), &opts.data_dir))
        .with_schedules(Arc::new(LocalSchedules));
        // The console signs in with the server's own provider (one-time links).
        let idp = crate::idp::LocalIdp::new(&secret, given.as_ref(), clock.clone());
        let state = match idp.console_config() {
            Some(config) => state.with_console(config),
            None => state,
        };
        // SNS can reach a local server only through a tunnel; `simulate-events` is the usual
        // local source. A machine without root certificates still serves, refusing signed
        // events whose certificate is not in `<data dir>/sns-certs`.
        let state =
            match SesWebhook::from_env(WebhookDefaults::local(opts.data_dir.join(SNS_CERT_DIR))) {
                Ok(webhook) => state.with_ses_webhook(webhook),
                Err(e) => {
                    tracing::warn!(error = %e, "the SES event webhook is off");
                    state
                }
            };
        // The `/dev` routes depend on the address bound: see `router_on`.
        let router = router(state)
            .merge(idp.routes())
            .route("/", axum::routing::get(portal_http::console::to_console));
        Ok(Self {
            outbox: Outbox::in_data_dir(&opts.data_dir),
            opts,
            public_url: given,
            secret,
            store,
            router,
            demo,
            demo_link,
            scheduler,
            sweeper,
        })
    }

    /// The router this server serves, without the `/dev` routes (for in-process tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Whether this server, bound to `addr`, serves the `/dev` routes, and why.
    pub fn dev_routes(&self, addr: SocketAddr) -> DevRoutesDecision {
        DevRoutesDecision::decide(self.opts.dev_routes, addr)
    }

    /// Exactly what [`LocalServer::run`] serves on `addr`: the router, plus the `/dev` routes
    /// behind their `Host` check when [`LocalServer::dev_routes`] says so.
    pub fn router_on(&self, addr: SocketAddr) -> Router {
        if !self.dev_routes(addr).is_on() {
            return self.router.clone();
        }
        self.router.clone().merge(crate::dev::guarded_outbox_routes(
            self.outbox.clone(),
            HostGuard::new(addr),
        ))
    }

    /// The store this server serves from.
    pub fn store(&self) -> Arc<SqliteStore> {
        self.store.clone()
    }

    /// What `--demo` loaded.
    pub fn demo(&self) -> Option<&DemoSummary> {
        self.demo.as_ref()
    }

    /// With `--demo`: the registration link of the invitation sent at start.
    pub fn demo_link(&self) -> Option<&str> {
        self.demo_link.as_deref()
    }

    /// The start-up text for a server listening on `addr` (see [`banner`]).
    pub fn banner(&self, addr: SocketAddr, program: &str) -> String {
        let mut out = banner(
            &self.url(addr),
            &self.opts,
            self.demo.as_ref(),
            &self.secret.source,
            program,
            self.scheduler.tick,
        );
        let url = self.url(addr);
        let dev = self.dev_routes(addr);
        let dev_line = if dev.is_on() {
            format!(
                "  /dev routes: on ({}): sent mail at {url}/dev/outbox\n",
                dev.reason()
            )
        } else {
            format!("  /dev routes: off ({})\n", dev.reason())
        };
        match out.find("  recurring invitations:") {
            Some(at) => out.insert_str(at, &dev_line),
            None => out += &dev_line,
        }
        let dir = shell_quote(&self.opts.data_dir.display().to_string());
        let console = match self.demo.as_ref().and_then(|d| {
            let req = crate::token::TokenRequest::parse(
                d.tenant.as_str(),
                &Permission::ALL.map(Permission::as_str).join(","),
                Some("demo-manager"),
                None,
            )
            .ok()?;
            crate::idp::sign_in_link(&self.secret, &url, &req, time::OffsetDateTime::now_utc())
        }) {
            Some(link) => format!(
                "\nOpen the managers' console (a one-time sign-in link with every permission, valid 24 hours):\n  {link}\n"
            ),
            None => format!(
                "\nSign in to the managers' console at {url}/console with a one-time link:\n  {program} sign-in-link --data-dir {dir} --url {url} --tenant <tenant> --permissions invitations:read,invitations:send\n"
            ),
        };
        // The console first: it is what a newcomer opens.
        match out.find("\nGet a token") {
            Some(at) => out.insert_str(at, &console),
            None => out += &console,
        }
        if let Some(link) = &self.demo_link {
            out += &format!(
                "\nRegister a demo resident (the invitation email is in {}/outbox):\n  {link}\n",
                shell_quote(&self.opts.data_dir.display().to_string())
            );
        }
        out
    }

    /// Where the signing secret came from.
    pub fn secret_source(&self) -> &SecretSource {
        &self.secret.source
    }

    /// The base URL people use for a server listening on `addr`.
    pub fn url(&self, addr: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.to_string(),
            None => format!("http://{addr}"),
        }
    }

    /// Serves — and runs due recurring settings and sweeps — until `shutdown` resolves, then lets
    /// requests in flight (and a recurring tick in progress) finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(ServeError::Serve)?;
        tracing::info!(%addr, data_dir = %self.opts.data_dir.display(), "listening");
        let dev = self.dev_routes(addr);
        tracing::info!(on = dev.is_on(), reason = %dev.reason(), "/dev routes (the outbox)");
        let router = self.router_on(addr);
        let scheduler = self.scheduler.spawn();
        let sweeper = self.sweeper.spawn();
        // The peer address is what the registration pages rate-limit per client.
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve);
        scheduler.stop().await;
        sweeper.stop().await;
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Invites one eligible demo contact individually (through the real send path, so the email
/// lands in the outbox) and answers its registration link. `None` (logged) when no contact is
/// eligible — a restart within 24 hours of inviting them all, say.
async fn demo_registration_link(
    store: &SqliteStore,
    clock: &dyn Clock,
    sending: &Sending,
    public_url: &PublicUrl,
    demo: &DemoSummary,
) -> Option<String> {
    use portal_core::domain::{Filters, Group, MergeValues, TemplateId, TenantId};
    use portal_core::ports::{ContactQuery, ContactStore, DivisionStore, ListQuery};
    use portal_core::usecases::campaigns::{send_individual, SendIndividual};
    let tenant = TenantId::parse(demo.tenant.as_str()).ok()?;
    let divisions = store.list_divisions(&tenant).await.ok()?;
    let query = ListQuery {
        contacts: ContactQuery {
            division_ids: divisions.into_iter().map(|d| d.division_id).collect(),
            filters: Filters::default(),
            limit_to_uninvited: true,
            now: clock.now(),
        },
        group: Group::Eligible,
        search: String::new(),
        cursor: None,
        limit: 1,
        max_examined: None,
    };
    let contact = store
        .list_contacts(&tenant, &query)
        .await
        .ok()?
        .items
        .into_iter()
        .next()?;
    let template = TemplateId::parse(portal_core::demo::DEMO_TEMPLATE).ok()?;
    let request = SendIndividual::invitation(contact.contact_id.clone(), template, None);
    match send_individual(store, clock, sending, &tenant, "demo", request).await {
        Ok(started) => {
            let token = sending
                .tokens
                .token(&tenant, &started.campaign_id, &contact.contact_id);
            Some(MergeValues::registration_url(public_url, &token))
        }
        Err(e) => {
            tracing::warn!(error = %portal_core::error_chain(&e), "no demo invitation was sent");
            None
        }
    }
}

/// Binds a listener, naming the address when it is taken.
pub async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and systemd send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// What `serve` prints once it listens: the URL, the exact command for a token, and a
/// first request to try. `program` is how to invoke this binary from the same shell.
pub fn banner(
    url: &str,
    opts: &ServeOptions,
    demo: Option<&DemoSummary>,
    secret: &SecretSource,
    program: &str,
    scheduler_tick: Duration,
) -> String {
    let dir = shell_quote(&opts.data_dir.display().to_string());
    let tenant = demo.map_or("my-company", |d| d.tenant.as_str());
    let mut out = format!("Portal Invitations is listening on {url}\n");
    out += &format!("  data dir: {dir}\n");
    if let Some(d) = demo {
        out += &format!(
            "  demo tenant: {} ({} divisions, {} accounts, {} contacts)\n",
            d.tenant, d.divisions, d.accounts, d.contacts
        );
    }
    let every = match scheduler_tick.as_secs() {
        60 => "minute".to_owned(),
        s if s > 0 && s % 60 == 0 => format!("{} minutes", s / 60),
        _ => format!("{} s", scheduler_tick.as_secs_f64()),
    };
    out += &format!(
        "  recurring invitations: due settings run here every {every} (now: {program} run-recurring --data-dir {dir})\n"
    );
    out += "\nGet a token (valid 12 hours):\n";
    if *secret == SecretSource::Env {
        out += &format!(
            "  (tokens are signed with ${}; keep it set in the shell that runs `token`)\n",
            crate::secret::SECRET_ENV
        );
    }
    out += &format!(
        "  TOKEN=$({program} token --data-dir {dir} --tenant {tenant} --permissions invitations:read,sync:write)\n"
    );
    out += "\nThen try:\n";
    out += &format!("  curl -s -H \"Authorization: Bearer $TOKEN\" {url}/v1/divisions\n");
    out += &format!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{{\"limit_to_uninvited\": true}}' {url}/v1/invitations/counts\n"
    );
    out += "\nStop with Ctrl-C.\n";
    out
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=+,@%".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(demo: bool) -> ServeOptions {
        ServeOptions {
            data_dir: PathBuf::from("./my data"),
            demo,
            public_url: None,
            dev_routes: DevRoutes::default(),
        }
    }

    #[test]
    fn the_banner_gives_a_runnable_token_command_for_the_same_data_dir() {
        let demo = DemoSummary {
            tenant: "demo".into(),
            divisions: 3,
            accounts: 6250,
            contacts: 10_012,
            ..Default::default()
        };
        let b = banner(
            "http://127.0.0.1:3000",
            &opts(true),
            Some(&demo),
            &SecretSource::File("x".into()),
            "portal-invites",
            DEFAULT_TICK,
        );
        assert!(b.contains("listening on http://127.0.0.1:3000"), "{b}");
        assert!(b.contains("10012 contacts"), "{b}");
        assert!(
            b.contains("portal-invites token --data-dir './my data' --tenant demo --permissions invitations:read,sync:write"),
            "{b}"
        );
        assert!(
            b.contains(
                "curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:3000/v1/divisions"
            ),
            "{b}"
        );
        assert!(
            b.contains("recurring invitations: due settings run here every minute (now: portal-invites run-recurring --data-dir './my data')"),
            "{b}"
        );
    }

    #[test]
    fn the_banner_warns_when_the_secret_comes_from_the_environment() {
        let b = banner(
            "http://x",
            &opts(false),
            None,
            &SecretSource::Env,
            "p",
            Duration::from_secs(1),
        );
        assert!(b.contains("every 1 s"), "{b}");
        assert!(b.contains("PORTAL_INVITES_JWT_SECRET"), "{b}");
        assert!(!b.contains("demo"), "{b}");
    }

    #[tokio::test]
    async fn a_public_url_that_is_not_http_is_refused_before_anything_is_created() {
        let dir = tempfile::Builder::new()
            .prefix("public-url")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        for bad in [
            "localhost:3000",
            "https://",
            "ftp://x",
            "https://x.example/?a=1",
        ] {
            let err = LocalServer::open(ServeOptions {
                data_dir: data_dir.clone(),
                demo: false,
                public_url: Some(bad.into()),
                dev_routes: DevRoutes::default(),
            })
            .await
            .unwrap_err();
            assert!(matches!(err, ServeError::PublicUrl(_)), "{bad}: {err}");
        }
        assert!(!data_dir.exists());
    }

    #[tokio::test]
    async fn the_public_url_replaces_the_listen_address_in_what_is_printed() {
        let dir = tempfile::Builder::new()
            .prefix("public-url-ok")
            .tempdir()
            .unwrap();
        let server = LocalServer::open(ServeOptions {
            data_dir: dir.path().to_owned(),
            demo: false,
            public_url: Some("https://invites.example.com/".into()),
            dev_routes: DevRoutes::default(),
        })
        .await
        .unwrap();
        let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(server.url(addr), "https://invites.example.com");
        assert!(server
            .banner(addr, "p")
            .contains("https://invites.example.com/v1/divisions"));
    }

    #[test]
    fn shell_quoting_leaves_plain_paths_alone_and_quotes_the_rest() {
        assert_eq!(shell_quote("./.portal-invites"), "./.portal-invites");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
