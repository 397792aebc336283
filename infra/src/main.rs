//! `portal-invites`: the composition root. Parses arguments, sets up logging, calls the
//! library ([`portal_invites`]) and turns its errors into a message and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portal_core::domain::{CampaignId, InvitationCategory, PublicUrl, RecurringId, TenantId};
use portal_core::ports::{CampaignStore as _, Recount};
use portal_invites::serve::{self, LocalServer, ServeOptions};
use portal_invites::token::{self, TokenRequest};
use portal_invites::{import, open_store, recurring, simulate, DEFAULT_DATA_DIR};

/// Portal Invitations on one machine: the local server and its operator commands.
#[derive(Debug, Parser)]
#[command(name = "portal-invites", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every HTTP route on the embedded store.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = serve::DEFAULT_ADDR)]
        addr: String,
        /// Directory holding the database and the JWT secret (created if missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// (Re)load the deterministic demo tenant `demo` (3 divisions, about 10,000 contacts)
        /// on start; changes made to its records are overwritten.
        #[arg(long)]
        demo: bool,
        /// The URL people reach this server at (http:// or https://), used in the links of
        /// emails; defaults to the listen address.
        #[arg(long)]
        public_url: Option<String>,
        /// Minutes an unfinished campaign may go without progress before the sweeper
        /// publishes its first fan-out again (1 to 1440).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1440))]
        sweep_idle_minutes: u16,
        /// Seconds between two sweeps.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        sweep_every_secs: u64,
        /// Serve the /dev routes (every tenant's sent mail, unauthenticated) even when --addr
        /// is not a loopback address; on loopback they are always served. Requests must still
        /// name the server in their Host header (localhost or an IP address).
        #[arg(long, env = portal_invites::dev::DEV_ROUTES_ENV, value_parser = clap::builder::BoolishValueParser::new())]
        dev_routes: bool,
    },
    /// Print a bearer token the local server of this data dir accepts.
    Token {
        /// Tenant the token acts for.
        #[arg(long)]
        tenant: String,
        /// Comma-separated: invitations:read, invitations:send, registrations:manage,
        /// settings:manage, sync:write.
        #[arg(long)]
        permissions: String,
        /// Subject (who the caller is).
        #[arg(long)]
        sub: Option<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = token::DEFAULT_TTL_HOURS)]
        ttl_hours: u32,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Print a one-time link that signs in to the console of the local server of this data
    /// dir (valid 24 hours, once per server run).
    SignInLink {
        /// Tenant the manager works for.
        #[arg(long)]
        tenant: String,
        /// Comma-separated: invitations:read, invitations:send, registrations:manage,
        /// settings:manage, sync:write.
        #[arg(long)]
        permissions: String,
        /// Who signs in (shown in the console and the logs).
        #[arg(long)]
        sub: Option<String>,
        /// The server's URL as the browser reaches it.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Import accounts and contacts from CSV (one row per contact); a bad row writes nothing.
    Import {
        /// Tenant to import into.
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The CSV file; columns: account_id, division_id, number, name, class, bill_group,
        /// source, site_source, active_services, balance_due_cents, autopay, contact_id,
        /// contact_name, email, phone, billing.
        file: PathBuf,
    },
    /// Feed a realistic, seeded mix of SES events (deliveries, bounces, opens, clicks,
    /// complaints, unsubscribes; shuffled, some duplicated) for a campaign's sent invitations
    /// through the webhook's core, so its statistics move (works beside a running `serve`).
    SimulateEvents {
        /// The campaign (its id from `POST /v1/campaigns`).
        #[arg(long)]
        campaign: String,
        /// Tenant of the campaign.
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Seed of the mix: the same seed on the same campaign makes the same events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of the clicked invitations whose residents then register through their
        /// link (the real registration code: logins, `accepted`, `registered`), 0 to 1.
        #[arg(long, default_value_t = 0.5)]
        register_share: f64,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Run recurring invitation settings now (what `serve` does every minute) and send their
    /// invitations into the data dir's outbox before exiting; prints the outcomes as JSON
    /// (works beside a running `serve`). A day that already ran does nothing again.
    RunRecurring {
        /// Tenant of the settings; without it (and without --setting), every tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this setting (of --tenant, default demo), for the day due at --at (the
        /// latest local day whose hour has come since the setting was saved); without it,
        /// every enabled setting that is due at --at.
        #[arg(long)]
        setting: Option<String>,
        /// Run as if it were this instant (RFC 3339, e.g. 2030-01-08T09:05:00Z): "advance the
        /// clock" to see tomorrow's run or next week's reminders. Default: now.
        #[arg(long)]
        at: Option<String>,
        /// The URL the server is reached at, for the links in the emails.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        public_url: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Recount a campaign's invitations by category and send state and report any drift
    /// from its counters (exit status 2 when they drifted and `--fix` was not given).
    Recount {
        #[arg(long)]
        campaign: String,
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Store the recount when it differs.
        #[arg(long)]
        fix: bool,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Drifted>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Human-readable logs on stderr (stdout carries only what a command prints, so
/// `TOKEN=$(portal-invites token ...)` works); `RUST_LOG` overrides the `info` default.
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            data_dir,
            demo,
            public_url,
            sweep_idle_minutes,
            sweep_every_secs,
            dev_routes,
        } => {
            // Take the port first: a port in use is reported at once, not after the demo
            // load; connections made meanwhile wait in the backlog.
            let listener = serve::bind(&addr).await?;
            let local = listener
                .local_addr()
                .context("cannot read the listen address")?;
            let opts = ServeOptions {
                data_dir,
                demo,
                // Links in emails point at this server unless told otherwise.
                public_url: public_url.or_else(|| Some(format!("http://{local}"))),
                dev_routes: if dev_routes {
                    portal_invites::dev::DevRoutes::Always
                } else {
                    portal_invites::dev::DevRoutes::LoopbackOnly
                },
            };
            let tuning = serve::ServeTuning {
                sweep_idle: time::Duration::minutes(i64::from(sweep_idle_minutes)),
                sweep_every: std::time::Duration::from_secs(sweep_every_secs),
                ..serve::ServeTuning::default()
            };
            let server = LocalServer::open_with(opts, tuning)
                .await
                .context("cannot start the local server")?;
            let banner = server.banner(local, &program());
            // The banner is a courtesy: a closed stdout must not stop the server.
            if let Err(e) = print_out(&banner) {
                tracing::warn!(error = %e, "cannot print the start-up banner");
            }
            server.run(listener, serve::shutdown_signal()).await?;
        }
        Command::Token {
            tenant,
            permissions,
            sub,
            ttl_hours,
            data_dir,
        } => {
            let req = TokenRequest::parse(&tenant, &permissions, sub.as_deref(), Some(ttl_hours))?;
            let jwt = token::issue(&data_dir, &req)?;
            print_out(&jwt).context("cannot print the token")?;
        }
        Command::SignInLink {
            tenant,
            permissions,
            sub,
            url,
            data_dir,
        } => {
            let req = TokenRequest::parse(&tenant, &permissions, sub.as_deref(), None)?;
            let secret = portal_invites::secret::Secret::resolve(&data_dir)?;
            let link = portal_invites::idp::sign_in_link(
                &secret,
                &url,
                &req,
                time::OffsetDateTime::now_utc(),
            )
            .context("cannot sign the sign-in link")?;
            print_out(&link).context("cannot print the link")?;
        }
        Command::Import {
            tenant,
            data_dir,
            file,
        } => {
            let tenant = TenantId::parse(tenant.trim()).context("invalid --tenant")?;
            let store = open_store(&data_dir)?;
            let summary = match import::import_file(&store, &tenant, &file).await {
                Ok(s) => s,
                // The store failed part-way: some chunks may be written (see the cause).
                Err(e @ import::ImportError::Store(_)) => {
                    return Err(e).context(format!("import of {} stopped", file.display()))
                }
                Err(e) => {
                    return Err(e).context(format!(
                        "import of {} failed; nothing was written",
                        file.display()
                    ))
                }
            };
            print_out(&summary.to_string()).context("cannot print the summary")?;
        }
        Command::SimulateEvents {
            campaign,
            tenant,
            seed,
            register_share,
            data_dir,
        } => {
            let tenant = TenantId::parse(tenant.trim()).context("invalid --tenant")?;
            let campaign = CampaignId::parse(campaign.trim()).context("invalid --campaign")?;
            if !(0.0..=1.0).contains(&register_share) {
                anyhow::bail!("--register-share must be between 0 and 1");
            }
            let store = std::sync::Arc::new(open_store(&data_dir)?);
            let now = time::OffsetDateTime::now_utc();
            let tokens = portal_invites::dev::token_deriver(&data_dir)?;
            let registrar = portal_invites::dev::registrar(store.clone(), &data_dir);
            let registering = simulate::Registering {
                tokens: &tokens,
                registrar: &registrar,
                share: register_share,
            };
            let report =
                simulate::simulate(&*store, &tenant, &campaign, seed, now, Some(registering))
                    .await?;
            print_out(&serde_json::to_string_pretty(&report)?)
                .context("cannot print the report")?;
        }
        Command::RunRecurring {
            tenant,
            setting,
            at,
            public_url,
            data_dir,
        } => {
            let setting = setting
                .map(|s| RecurringId::parse(s.trim()))
                .transpose()
                .context("invalid --setting")?;
            let tenant = match (tenant, &setting) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => Some("demo".to_owned()),
                (None, None) => None,
            }
            .map(|t| TenantId::parse(t.trim()))
            .transpose()
            .context("invalid --tenant")?;
            let at = at
                .map(|a| {
                    time::OffsetDateTime::parse(
                        a.trim(),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .with_context(|| {
                        format!(
                            "--at must be an RFC 3339 time like 2030-01-08T09:05:00Z, got {a:?}"
                        )
                    })
                })
                .transpose()?;
            let public_url = PublicUrl::parse(&public_url).map_err(|_| {
                anyhow::anyhow!(
                    "--public-url must be an http:// or https:// URL, got {public_url:?}"
                )
            })?;
            let request = recurring::RunRequest {
                tenant,
                setting,
                at,
                public_url,
            };
            let report = recurring::run_recurring(&data_dir, &request).await?;
            print_out(&serde_json::to_string_pretty(&report)?)
                .context("cannot print the outcomes")?;
            if let Some(e) = report.send_error {
                anyhow::bail!(
                    "the runs' campaigns did not finish sending ({e}); `serve` on this data dir resumes them"
                );
            }
        }
        Command::Recount {
            campaign,
            tenant,
            fix,
            data_dir,
        } => {
            let tenant = TenantId::parse(tenant.trim()).context("invalid --tenant")?;
            let campaign = CampaignId::parse(campaign.trim()).context("invalid --campaign")?;
            let store = open_store(&data_dir)?;
            let recount = store
                .recount_campaign(&tenant, &campaign, fix)
                .await?
                .with_context(|| format!("campaign {campaign} does not exist for {tenant}"))?;
            print_out(&recount_report(&recount)).context("cannot print the report")?;
            if recount.drifted() && !recount.fixed {
                return Err(Drifted.into());
            }
        }
    }
    Ok(())
}

/// The counters drifted from the recount (and were left as they are).
#[derive(Debug, thiserror::Error)]
#[error(
    "the campaign's counters drift from its invitations; run again with --fix to store the recount"
)]
struct Drifted;

/// A recount as a person reads it: one line per counter, drifted ones marked.
fn recount_report(r: &Recount) -> String {
    let (stored_c, stored_s) = r.stored;
    let (counted_c, counted_s) = r.counted;
    let mut lines = vec![format!(
        "{:<14} {:>10} {:>10}",
        "counter", "stored", "counted"
    )];
    let mut row = |name: &str, stored: u64, counted: u64| {
        let mark = if stored == counted { "" } else { "  drift" };
        lines.push(format!("{name:<14} {stored:>10} {counted:>10}{mark}"));
    };
    for c in InvitationCategory::ALL {
        row(c.as_str(), stored_c.get(c), counted_c.get(c));
    }
    row("send_pending", stored_s.pending, counted_s.pending);
    row("send_sent", stored_s.sent, counted_s.sent);
    row("send_failed", stored_s.failed, counted_s.failed);
    lines.push(match (r.drifted(), r.fixed) {
        (false, _) => "no drift".to_owned(),
        (true, true) => "drift: the recount was stored".to_owned(),
        (true, false) => "drift".to_owned(),
    });
    lines.join("\n")
}

/// Prints a line on stdout, returning an error where `println!` would panic (a closed pipe).
fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// How to run this binary again from the same shell, for the start-up banner: through
/// cargo when cargo launched us (it sets `CARGO_PKG_NAME` at run time), else as invoked.
fn program() -> String {
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok(env!("CARGO_PKG_NAME")) {
        return format!("cargo run -q -p {} --", env!("CARGO_PKG_NAME"));
    }
    std::env::args()
        .next()
        .map(|a| serve::shell_quote(&a))
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_to_loopback_and_the_local_data_dir() {
        let cli = Cli::try_parse_from(["portal-invites", "serve", "--demo"]).unwrap();
        match cli.command {
            Command::Serve {
                addr,
                data_dir,
                demo,
                ..
            } => {
                assert_eq!(addr, "127.0.0.1:3000");
                assert_eq!(data_dir, PathBuf::from(".portal-invites"));
                assert!(demo);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn serve_sweeps_every_minute_after_ten_idle_minutes_unless_told() {
        let cli = Cli::try_parse_from(["portal-invites", "serve"]).unwrap();
        match cli.command {
            Command::Serve {
                sweep_idle_minutes,
                sweep_every_secs,
                ..
            } => assert_eq!((sweep_idle_minutes, sweep_every_secs), (10, 60)),
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "portal-invites",
            "serve",
            "--sweep-idle-minutes",
            "3",
            "--sweep-every-secs",
            "5",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                sweep_idle_minutes: 3,
                sweep_every_secs: 5,
                ..
            }
        ));
        for bad in [
            ["--sweep-idle-minutes", "0"],
            ["--sweep-idle-minutes", "1441"],
            ["--sweep-every-secs", "0"],
        ] {
            let args = ["portal-invites", "serve", bad[0], bad[1]];
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_recurring_takes_every_option_and_none() {
        let cli = Cli::try_parse_from([
            "portal-invites",
            "run-recurring",
            "--tenant",
            "demo",
            "--setting",
            "weekly",
            "--at",
            "2030-01-08T09:05:00Z",
            "--data-dir",
            "d",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::RunRecurring {
                setting: Some(_),
                ..
            }
        ));
        let cli = Cli::try_parse_from(["portal-invites", "run-recurring"]).unwrap();
        match cli.command {
            Command::RunRecurring {
                tenant,
                setting,
                at,
                public_url,
                data_dir,
            } => {
                assert_eq!((tenant, setting, at), (None, None, None));
                assert_eq!(public_url, "http://127.0.0.1:3000");
                assert_eq!(data_dir, PathBuf::from(".portal-invites"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn token_requires_a_tenant_and_permissions() {
        assert!(Cli::try_parse_from(["portal-invites", "token", "--tenant", "demo"]).is_err());
        assert!(Cli::try_parse_from([
            "portal-invites",
            "token",
            "--tenant",
            "demo",
            "--permissions",
            "sync:write"
        ])
        .is_ok());
    }
}
