//! `bench-lambda`: each Lambda function's `bootstrap` as `cargo lambda build` made it — its
//! size, its zipped size (the deployment package) and its init time.
//!
//! Init time is measured as Lambda's provided runtime sees it: the bootstrap is started with
//! the environment Lambda gives a function (the [`LAMBDA_ENV`] defaults plus the function's
//! own configuration from [`FUNCTION_ENV`], nothing inherited from this process) and
//! `AWS_LAMBDA_RUNTIME_API` pointing at a stand-in for the Runtime API on loopback, and timed
//! from the spawn to the arrival of its first `GET /2018-06-01/runtime/invocation/next`. The
//! stand-in never answers: the process is killed as soon as the request is in. A function
//! that exits, sends another request or times out first has failed to start, and the bench
//! exits non-zero after printing every function's figures with the reason (its stderr).
//!
//! The targets (zip ≤ 4 MB, init ≤ 50 ms) are marked `pass` or `OVER`; missing one does not
//! make the bench fail. The zip is made as `sam build`'s is: Python's `zipfile`, deflate at
//! its default level, holding the one file `bootstrap` (python3 must be on PATH).
//!
//! Sizes are in MB of 1,000,000 bytes. This machine's cores are faster than the CPU share a
//! 128 MB function gets: init times here are a floor for Lambda's cold starts, not a forecast.
//!
//! ```text
//! infra/scripts/lambda-build.sh          # builds every function, then runs this
//! cargo run -p portal-invites --bin bench-lambda -- [LAMBDA_DIR] [--runs 20]
//! ```

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

type Vars = &'static [(&'static str, &'static str)];

/// What every function gets: the variables Lambda sets for a `provided.al2023` function of
/// 128 MB, and the template's `Globals` (`TABLE_NAME`, `RUST_LOG`, `LOG_FORMAT`).
/// `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_LOG_GROUP_NAME` and `AWS_LAMBDA_RUNTIME_API` are
/// set per function and run.
const LAMBDA_ENV: Vars = &[
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    (
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
    ),
    ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_SESSION_TOKEN", "test"),
    ("_HANDLER", "bootstrap"),
    ("LAMBDA_TASK_ROOT", "/var/task"),
    ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
    ("LANG", "en_US.UTF-8"),
    ("TZ", ":UTC"),
    ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
    (
        "LD_LIBRARY_PATH",
        "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    ),
    // template.yaml Globals.
    ("TABLE_NAME", "portal-invites-bench"),
    ("RUST_LOG", "info"),
    ("LOG_FORMAT", "json"),
];

/// Each function's own configuration, as template.yaml's `Environment` gives it, in groups.
/// Adding a function is one line; a function without a line gets [`LAMBDA_ENV`] only (with a
/// note), and fails to start if it needs more — which the bench reports.
const FUNCTION_ENV: &[(&str, &[Vars])] = &[
    ("load-counts", &[JWT, &[PUBLIC_URL]]),
    ("sync", &[JWT]),
    ("send", &[JWT, SEND_SETTINGS, BUS, &[("PAGE_SIZE", "1000")]]),
    ("delivery", &[SEND_SETTINGS, DELIVERY]),
    ("ses-events", &[SES_EVENTS, &[UNSUBSCRIBE_SECRET]]),
    ("registration", &[JWT, SEND_SETTINGS, BUS, USER_POOL]),
    ("recurring", &[JWT, SEND_SETTINGS, BUS, SCHEDULES]),
    ("console", &[CONSOLE]),
];

/// `Verifier::from_env` (portal-http auth): RS256 with a JWKS document. The key is the public
/// half of the tests' `test-rs256-jwks.json` fixture.
const JWT: Vars = &[
    (
        "JWT_JWKS",
        r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"test-key-1","n":"qHai3iV-WEglssRCUXOl2IiIFryv7LTwaBvSPdUGePqfpsqiMu8Rq8jx9W-Ij0-c8a1hJwgQNWEfWTF0IbpP7Qmc-6Nae5exFzAyGdnzcDJ-0H8Pg7_i4hzMcRi4Zch4Qg_9ZcyUPo9E9hbpawLsBYrlpFofn2ahlrL_aObq0HDVyMghvciLVOhYH5zHtEnrCPZAPRYg3o3GnHmo_oudMJr1psaQsd97Kq9ltG4EnJrllQ51oQNrKaB0A6tI7--XjnIyuW2TV9OZGQ0R7LTePncB4grvja9VC3XKHjycHzYGQ7QGBOxp8iNMz-QfXMKbs9woE4wi1HpnC9fkLkl--Q","e":"AQAB"}]}"#,
    ),
    (
        "JWT_ISSUER",
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_bench",
    ),
    ("JWT_AUDIENCE", "portal-invites"),
];

/// At least 32 bytes (portal-lambda's `Env::unsubscribe_signer`).
const UNSUBSCRIBE_SECRET: (&str, &str) = (
    "UNSUBSCRIBE_SECRET",
    "bench-unsubscribe-secret-0123456789abcdef",
);
/// An `http(s)://host[/path]` URL (portal-lambda's `Env::public_url`).
const PUBLIC_URL: (&str, &str) = ("PUBLIC_URL", "https://invite.example.org");

/// portal-lambda's `SendSettings::from_env`: both secrets at least 32 bytes.
const SEND_SETTINGS: Vars = &[
    ("TOKEN_SECRET", "bench-token-secret-0123456789abcdef-0123"),
    UNSUBSCRIBE_SECRET,
    PUBLIC_URL,
    ("TOKEN_TTL_DAYS", "14"),
];

const BUS: Vars = &[("EVENT_BUS_NAME", "portal-invites-send")];

/// The console's sign-in settings (portal-lambda's `Env::console`: https URLs), as the
/// template's Console* parameters give them for a Cognito hosted UI domain.
const CONSOLE: Vars = &[
    (
        "CONSOLE_AUTHORIZE_URL",
        "https://managers.auth.us-east-1.amazoncognito.com/oauth2/authorize",
    ),
    (
        "CONSOLE_TOKEN_URL",
        "https://managers.auth.us-east-1.amazoncognito.com/oauth2/token",
    ),
    ("CONSOLE_CLIENT_ID", "benchconsoleclient0123456789"),
    ("CONSOLE_SCOPE", "openid"),
    ("CONSOLE_SIGN_OUT_URL", ""),
];

/// The registration function's Cognito user pool and app client (`!Ref`s in template.yaml).
const USER_POOL: Vars = &[
    ("USER_POOL_ID", "us-east-1_bench0001"),
    ("USER_POOL_CLIENT_ID", "benchclient0123456789abcdef"),
];

/// The recurring function's schedule group, its own ARN, the scheduler's execution role and
/// the schedules' dead-letter queue (template.yaml; the function checks each ARN's service).
const SCHEDULES: Vars = &[
    ("SCHEDULE_GROUP", "portal-invites-recurring"),
    (
        "SCHEDULE_TARGET_ARN",
        "arn:aws:lambda:us-east-1:123456789012:function:portal-invites-recurring",
    ),
    (
        "SCHEDULER_ROLE_ARN",
        "arn:aws:iam::123456789012:role/portal-invites-RecurringSchedulerRole-bench",
    ),
    (
        "SCHEDULE_DLQ_ARN",
        "arn:aws:sqs:us-east-1:123456789012:portal-invites-RecurringDeadLetterQueue-bench",
    ),
];

const DELIVERY: Vars = &[
    ("MAX_SEND_RATE", "14"),
    ("FAILURE_THRESHOLD", "100"),
    ("OUTCOME_FLUSH", "50"),
    ("SES_CONFIGURATION_SET", "portal-invites"),
];

/// portal-aws's `SesWebhook::from_env`: the topic allow-list, no certificate dir (as
/// deployed), and a raw-delivery secret (at least 24 characters).
const SES_EVENTS: Vars = &[
    (
        "SNS_TOPIC_ARNS",
        "arn:aws:sns:us-east-1:111122223333:portal-invites-ses-events",
    ),
    ("SNS_CERT_DIR", ""),
    ("RAW_EVENTS_SECRET", "bench-raw-events-secret-0123456789"),
];

/// Zipped deployment package target, bytes.
const ZIP_TARGET: u64 = 4_000_000;
/// Init time target, milliseconds.
const INIT_TARGET_MS: f64 = 50.0;
const MB: f64 = 1_000_000.0;
const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

#[derive(Debug, Parser)]
#[command(
    name = "bench-lambda",
    about = "Size, zipped size and init time of each Lambda bootstrap"
)]
struct Args {
    /// cargo lambda's output dir, holding <function>/bootstrap [default: $CARGO_TARGET_DIR/lambda,
    /// else target/lambda]
    lambda_dir: Option<PathBuf>,
    /// A function to measure (repeatable); default: every <function>/bootstrap in the dir.
    #[arg(long = "function")]
    functions: Vec<String>,
    /// Starts per function.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// How long a start may take before it counts as failed, ms.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dir = match &args.lambda_dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("lambda"),
    };
    let functions = if args.functions.is_empty() {
        discover(&dir)?
    } else {
        args.functions.clone()
    };
    if functions.is_empty() {
        bail!("no <function>/bootstrap in {}", dir.display());
    }
    let zip_dir = tempfile::tempdir().context("creating a temp dir for the zips")?;
    let timeout = Duration::from_millis(args.timeout_ms);

    let mut rows = Vec::new();
    for name in &functions {
        if !FUNCTION_ENV.iter().any(|(f, _)| f == name) {
            println!(
                "note: `{name}` has no line in FUNCTION_ENV (infra/src/bin/bench_lambda.rs): it \
                 gets the default environment only; add its configuration variables there"
            );
        }
        let bootstrap = dir.join(name).join("bootstrap");
        let size = std::fs::metadata(&bootstrap)
            .with_context(|| format!("{}: no bootstrap", bootstrap.display()))?
            .len();
        let zip = zip_size(&bootstrap, &zip_dir.path().join(format!("{name}.zip")))?;
        let starts = measure(name, &bootstrap, args.runs, timeout).await?;
        eprintln!("measured {name}");
        rows.push(Row {
            name: name.clone(),
            size,
            zip,
            starts,
        });
    }
    print_table(&rows, args.runs);

    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.starts.is_err())
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("could not start: {}", failed.join(", "));
    }
    Ok(())
}

/// Every subdirectory of `dir` holding a `bootstrap`, sorted.
fn discover(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("bootstrap").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The environment of `name`: Lambda's defaults, then the function's own configuration.
fn environment(name: &str) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = LAMBDA_ENV
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    env.push(("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()));
    env.push(("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")));
    let own = FUNCTION_ENV
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, groups)| *groups)
        .unwrap_or_default();
    for (k, v) in own.iter().flat_map(|g| g.iter()) {
        env.retain(|(key, _)| key != k);
        env.push((*k, (*v).to_owned()));
    }
    env
}

/// The size of a deflate zip holding `bootstrap`, made by Python's zipfile as `sam build` does.
fn zip_size(bootstrap: &Path, zip: &Path) -> anyhow::Result<u64> {
    const SCRIPT: &str = "import sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n\
        \x20   z.write(sys.argv[1], 'bootstrap')\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(bootstrap)
        .arg(zip)
        .output()
        .context("running python3 to zip the bootstrap (is python3 on PATH?)")?;
    if !out.status.success() {
        bail!(
            "zipping {} failed: {}",
            bootstrap.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(std::fs::metadata(zip)
        .with_context(|| format!("{}: no zip", zip.display()))?
        .len())
}

/// One successful start: time to the first GET, and the process's resident memory then.
struct Start {
    init: Duration,
    rss_kb: Option<u64>,
}

struct Row {
    name: String,
    size: u64,
    zip: u64,
    /// Every run's start, or why one failed.
    starts: Result<Vec<Start>, String>,
}

/// `runs` starts of `bootstrap`; the first failure ends them. Errors of the bench itself
/// (no loopback port, cannot spawn) are returned as `Err`; a function's failure to start is
/// `Ok(Err(reason))`.
async fn measure(
    name: &str,
    bootstrap: &Path,
    runs: usize,
    timeout: Duration,
) -> anyhow::Result<Result<Vec<Start>, String>> {
    let env = environment(name);
    let mut starts = Vec::with_capacity(runs);
    for run in 1..=runs {
        match start_once(bootstrap, &env, timeout).await? {
            Ok(start) => starts.push(start),
            Err(reason) => return Ok(Err(format!("run {run}/{runs}: {reason}"))),
        }
    }
    Ok(Ok(starts))
}

/// How a start ended, before the child is killed.
enum Outcome {
    /// The first request and the time it arrived.
    Request(Result<(String, String), String>, Duration),
    Exited(ExitStatus),
    TimedOut,
}

async fn start_once(
    bootstrap: &Path,
    env: &[(&'static str, String)],
    timeout: Duration,
) -> anyhow::Result<Result<Start, String>> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the Runtime API stand-in on loopback")?;
    let api = listener.local_addr()?;
    // Output goes to files, so nothing blocks on a full pipe and it can be shown on failure.
    let mut stdout = tempfile::tempfile().context("creating a temp file for stdout")?;
    let mut stderr = tempfile::tempfile().context("creating a temp file for stderr")?;
    let mut cmd = Command::new(bootstrap);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout.try_clone()?))
        .stderr(Stdio::from(stderr.try_clone()?));
    if let Some(dir) = bootstrap.parent() {
        cmd.current_dir(dir);
    }

    let began = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bootstrap.display()))?;
    let waited = wait_first_request(&listener, &mut child, began, timeout).await;
    let rss_kb = resident_kb(child.id());
    // Ends the process whatever happened (an exited one is only reaped); the connection it
    // made is held, unanswered, until then.
    let _ = child.kill();
    child.wait().context("reaping the bootstrap")?;
    let (outcome, connection) = waited?;
    drop(connection);

    let what = match outcome {
        Outcome::Request(Ok((line, _)), init) if is_next(&line) => {
            return Ok(Ok(Start { init, rss_kb }));
        }
        Outcome::Request(Ok((line, body)), _) => {
            format!("its first request was `{line}`, not GET {NEXT_PATH}: {body}")
        }
        Outcome::Request(Err(e), _) => format!("unreadable first request: {e}"),
        Outcome::Exited(status) => format!("exited ({status}) before asking for an invocation"),
        Outcome::TimedOut => format!("no GET {NEXT_PATH} within {} ms", timeout.as_millis()),
    };
    Ok(Err(format!(
        "{what}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        tail(&mut stderr)?,
        tail(&mut stdout)?
    )))
}

fn is_next(request_line: &str) -> bool {
    let mut parts = request_line.split_whitespace();
    parts.next() == Some("GET") && parts.next() == Some(NEXT_PATH)
}

/// Waits for the first request on `listener`, the child's exit or the timeout, whichever
/// comes first; returns the request's connection too, for the caller to hold.
async fn wait_first_request(
    listener: &TcpListener,
    child: &mut Child,
    began: Instant,
    timeout: Duration,
) -> anyhow::Result<(Outcome, Option<TcpStream>)> {
    let request = async {
        let (mut stream, _) = listener.accept().await?;
        let head = read_request(&mut stream).await;
        let at = began.elapsed();
        Ok::<_, std::io::Error>((head, at, stream))
    };
    tokio::pin!(request);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = &mut request => {
                let (head, at, stream) = r.context("accepting the bootstrap's connection")?;
                return Ok((Outcome::Request(head, at), Some(stream)));
            }
            () = &mut deadline => return Ok((Outcome::TimedOut, None)),
            // An exit is noticed within a millisecond; it only decides failures, not timing.
            () = tokio::time::sleep(Duration::from_millis(1)) => {
                if let Some(status) = child.try_wait().context("polling the bootstrap")? {
                    return Ok((Outcome::Exited(status), None));
                }
            }
        }
    }
}

/// The request line and (for a request that is not the expected GET) the start of the body.
async fn read_request(stream: &mut TcpStream) -> Result<(String, String), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("a request head over 64 KiB".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed after {} bytes: {:?}",
                buf.len(),
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    if is_next(&line) {
        return Ok((line, String::new()));
    }
    // Another request (e.g. POST /2018-06-01/runtime/init/error): its body says why.
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(16 * 1024);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    Ok((line, String::from_utf8_lossy(&body).into_owned()))
}

/// VmRSS of a live process, from /proc (None elsewhere or once it is gone).
fn resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// The last 4 KiB of a captured output.
fn tail(file: &mut File) -> anyhow::Result<String> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).trim_end().to_owned())
}

/// Nearest-rank percentile of sorted values, `p` in 0–100.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "OVER"
    }
}

fn print_table(rows: &[Row], runs: usize) {
    println!();
    println!(
        "{:<14} {:>12} {:>8} | {:>11} {:>8}      | {:>12} {:>12} {:>12} | {:>6}",
        "function",
        "bootstrap B",
        "MB",
        "zip B",
        "zip MB",
        "init min ms",
        "median ms",
        "p90 ms",
        "RSS MB"
    );
    for row in rows {
        let sizes = format!(
            "{:<14} {:>12} {:>8.2} | {:>11} {:>8.2} {}",
            row.name,
            row.size,
            row.size as f64 / MB,
            row.zip,
            row.zip as f64 / MB,
            mark(row.zip <= ZIP_TARGET),
        );
        match &row.starts {
            Ok(starts) => {
                let mut ms: Vec<f64> = starts.iter().map(|s| s.init.as_secs_f64() * 1e3).collect();
                ms.sort_by(f64::total_cmp);
                let mut rss: Vec<f64> = starts
                    .iter()
                    .filter_map(|s| s.rss_kb)
                    .map(|kb| kb as f64 * 1024.0 / MB)
                    .collect();
                rss.sort_by(f64::total_cmp);
                let figure = |v: f64| format!("{v:>7.1} {}", mark(v <= INIT_TARGET_MS));
                let rss = if rss.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.1}", median(&rss))
                };
                println!(
                    "{sizes} | {} {} {} | {rss:>6}",
                    figure(ms[0]),
                    figure(median(&ms)),
                    figure(percentile(&ms, 90.0)),
                );
            }
            Err(reason) => {
                println!("{sizes} | FAILED TO START");
                for line in reason.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    println!(
        "{runs} starts per function; targets: zip <= {:.0} MB, init <= {INIT_TARGET_MS:.0} ms \
         (spawn -> first GET {NEXT_PATH}); 1 MB = 1,000,000 bytes; RSS = median resident \
         memory at that GET",
        ZIP_TARGET as f64 / MB
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 90.0), 18.0);
        assert_eq!(percentile(&v, 100.0), 20.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(median(&v), 10.5);
        assert_eq!(median(&[3.0]), 3.0);
    }

    #[test]
    fn a_function_gets_the_defaults_then_its_own_variables() {
        let env = environment("delivery");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME"), Some("delivery"));
        assert_eq!(get("TABLE_NAME"), Some("portal-invites-bench"));
        assert_eq!(get("SES_CONFIGURATION_SET"), Some("portal-invites"));
        assert!(get("UNSUBSCRIBE_SECRET").is_some_and(|s| s.len() >= 32));
        assert!(get("TOKEN_SECRET").is_some_and(|s| s.len() >= 32));

        let unknown = environment("not-a-function");
        assert_eq!(unknown.len(), LAMBDA_ENV.len() + 2);
    }

    #[test]
    fn only_the_next_invocation_get_counts() {
        assert!(is_next("GET /2018-06-01/runtime/invocation/next HTTP/1.1"));
        assert!(!is_next("POST /2018-06-01/runtime/init/error HTTP/1.1"));
        assert!(!is_next("GET / HTTP/1.1"));
    }
}
