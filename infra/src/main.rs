//! `portal-invites`: the composition root. Parses arguments, sets up logging, calls the
//! library ([`portal_invites`]) and turns its errors into a message and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portal_core::domain::TenantId;
use portal_invites::serve::{self, LocalServer, ServeOptions};
use portal_invites::token::{self, TokenRequest};
use portal_invites::{import, open_store, DEFAULT_DATA_DIR};

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
            };
            let server = LocalServer::open(opts)
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
    }
    Ok(())
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
