//! A moto server (PyPI `moto[server]`) for tests and benchmarks, and the AWS SDK clients
//! pointed at it.
//!
//! [`Moto::shared`] starts one server per test binary on first use and every test of the
//! binary shares it; tests stay independent by creating their own uniquely named tables
//! ([`fresh_table`]). A benchmark starts its own with [`Moto::builder`], optionally through a
//! Python script that patches moto before serving ([`MotoBuilder::python_script`]).
//!
//! **Finding it:** `$MOTO_SERVER`, else `.venv/bin/moto_server` under the workspace root,
//! else `moto_server` on `PATH`. If it cannot be started the test PANICS with install
//! instructions: AWS adapter tests fail loudly, they never skip.
//!
//! **Stopping it:** a Rust `static` is never dropped, so the server cannot be killed from a
//! destructor. Instead it runs under a tiny `sh` watchdog whose stdin is a pipe held by this
//! process: `moto_server ... & cat >/dev/null; kill -9 $pid`. When the test process exits —
//! normally, by panic, or killed — or the [`Moto`] is dropped, the pipe closes, `cat` sees
//! end-of-file and the watchdog kills moto (with SIGKILL: moto's SIGTERM handler can hang
//! while keep-alive connections are open). No port stays taken and no server outlives the run.
//!
//! **Clients:** every SDK client for moto is built from one [`sdk_config`] (test credentials,
//! `us-east-1`, the server's endpoint, SDK retries off) by [`client`] or, counting its
//! requests in a [`RequestCounter`], [`counted_client`] — for DynamoDB, SES v2, EventBridge
//! and SQS alike ([`SdkClient`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use portal_aws::aws_metrics::RequestCounter;
use serde_json::Value;

/// How to get moto, for error messages.
pub const INSTALL_HINT: &str = "moto is needed for the DynamoDB tests. Install it with \
    `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` in the workspace root, \
    or put `moto_server` on PATH, or set MOTO_SERVER=/path/to/moto_server";

/// How long a starting server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running moto server; dropping it stops the server.
pub struct Moto {
    endpoint: String,
    /// Holds the watchdog's stdin pipe open for as long as the server should run.
    _watchdog: Mutex<Child>,
}

static SHARED: OnceLock<Moto> = OnceLock::new();

impl Moto {
    /// The test binary's server, started on first call (blocking, ~1 s).
    pub fn shared() -> &'static Moto {
        SHARED.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("{e}\n{INSTALL_HINT}")))
    }

    /// Starts a new stock server (most tests want [`Moto::shared`]).
    pub fn start() -> Result<Moto, String> {
        Moto::builder().start()
    }

    /// How to start a server other than the stock one.
    pub fn builder() -> MotoBuilder {
        MotoBuilder::default()
    }

    /// Base URL, e.g. `http://127.0.0.1:50123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// [`sdk_config`] for this server.
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint)
    }

    /// A client of any [`SdkClient`] service for this server, e.g.
    /// `let ddb: aws_sdk_dynamodb::Client = moto.client();`.
    pub fn client<C: SdkClient>(&self) -> C {
        client(&self.endpoint)
    }

    /// Like [`Moto::client`], counting every request in `counter`.
    pub fn counted_client<C: SdkClient>(&self, counter: &RequestCounter) -> C {
        counted_client(&self.endpoint, counter)
    }
}

/// How to start moto: stock `moto_server` by default.
#[derive(Debug, Clone, Default)]
pub struct MotoBuilder {
    script: Option<PathBuf>,
}

impl MotoBuilder {
    /// Runs `script` with the Python interpreter named on the `moto_server` script's `#!`
    /// line (moto's own), with moto's arguments (`-H 127.0.0.1 -p PORT`), instead of
    /// `moto_server` itself. The script patches moto and then calls `moto.server.main()`.
    pub fn python_script(mut self, script: impl Into<PathBuf>) -> Self {
        self.script = Some(script.into());
        self
    }

    /// Starts the server on a free loopback port and waits until it answers.
    pub fn start(self) -> Result<Moto, String> {
        let program = find_moto_server()?;
        let command: Vec<std::ffi::OsString> = match &self.script {
            None => vec![program.clone().into()],
            Some(script) => {
                if !script.is_file() {
                    return Err(format!("{} does not exist", script.display()));
                }
                let mut command = interpreter(&program)?;
                command.push(script.clone().into());
                command
            }
        };
        let mut last_err = String::new();
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(r#""$0" "$@" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill -9 $pid 2>/dev/null; wait $pid"#)
                .args(&command)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run sh to start {}: {e}", program.display()))?;
            let endpoint = format!("http://127.0.0.1:{port}");
            match wait_ready(port, &mut child) {
                Ok(()) => {
                    return Ok(Moto {
                        endpoint,
                        _watchdog: Mutex::new(child),
                    })
                }
                Err(e) => {
                    last_err = e;
                    // Closing stdin makes the watchdog stop the server.
                    drop(child.stdin.take());
                    let _ = child.wait();
                }
            }
        }
        let what = match &self.script {
            None => program.display().to_string(),
            Some(s) => format!("{} through {}", program.display(), s.display()),
        };
        Err(format!("moto_server ({what}) did not start: {last_err}"))
    }
}

/// The interpreter (and its arguments) on the `#!` line of the `moto_server` script.
fn interpreter(program: &std::path::Path) -> Result<Vec<std::ffi::OsString>, String> {
    let script = std::fs::read_to_string(program)
        .map_err(|e| format!("reading {}: {e}", program.display()))?;
    let interpreter: Vec<std::ffi::OsString> = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.split_whitespace().map(Into::into).collect())
        .unwrap_or_default();
    if interpreter.is_empty() {
        return Err(format!(
            "{} has no #! line to find moto's Python",
            program.display()
        ));
    }
    Ok(interpreter)
}

/// The one SDK configuration for moto at `endpoint`: test credentials, `us-east-1`, SDK
/// retries off (moto answers some bad requests with a 500 that the SDK would otherwise
/// retry, and a retried request would count twice).
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "moto",
        )))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build()
}

/// A client of a service moto serves, built from [`sdk_config`].
pub trait SdkClient: Sized {
    /// A client for `config`, counting its requests in `counter` when given.
    fn from_sdk_config(config: &SdkConfig, counter: Option<&RequestCounter>) -> Self;
}

macro_rules! sdk_clients {
    ($($sdk:ident),*) => {$(
        impl SdkClient for $sdk::Client {
            fn from_sdk_config(config: &SdkConfig, counter: Option<&RequestCounter>) -> Self {
                let mut builder = $sdk::config::Builder::from(config);
                if let Some(counter) = counter {
                    builder = builder.interceptor(counter.clone());
                }
                $sdk::Client::from_conf(builder.build())
            }
        }
    )*};
}

sdk_clients!(
    aws_sdk_dynamodb,
    aws_sdk_sesv2,
    aws_sdk_eventbridge,
    aws_sdk_sqs,
    aws_sdk_ssm
);

/// A client for moto at `endpoint` (see [`sdk_config`]).
pub fn client<C: SdkClient>(endpoint: &str) -> C {
    C::from_sdk_config(&sdk_config(endpoint), None)
}

/// Like [`client`], counting every request in `counter`.
pub fn counted_client<C: SdkClient>(endpoint: &str, counter: &RequestCounter) -> C {
    C::from_sdk_config(&sdk_config(endpoint), Some(counter))
}

/// Creates a table with the adapter's definition under a name no other test uses, and
/// returns the name.
pub async fn fresh_table(client: &aws_sdk_dynamodb::Client) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "portal-test-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    portal_aws::dynamodb::create_table(client, &name)
        .await
        .unwrap_or_else(|e| panic!("creating table {name} on moto failed: {e:?}"));
    name
}

/// Every message moto's SES accepted — the objects with a `raw_data` (`source`,
/// `destinations`, `raw_data`), wherever they sit in `GET /moto-api/data.json` — from the
/// server at `endpoint` (`http://` only). Blocking.
pub fn ses_messages(endpoint: &str) -> Result<Vec<Value>, String> {
    let host = endpoint
        .strip_prefix("http://")
        .ok_or("reading moto's data needs an http:// endpoint")?
        .trim_end_matches('/');
    let fetch = || -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect(host)?;
        write!(
            conn,
            "GET /moto-api/data.json HTTP/1.0\r\nHost: {host}\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        Ok(raw)
    };
    let raw = fetch().map_err(|e| format!("GET /moto-api/data.json: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("/moto-api/data.json: not an HTTP answer")?;
    let data: Value = serde_json::from_slice(&raw[split + 4..])
        .map_err(|e| format!("/moto-api/data.json is not JSON: {e}"))?;
    let mut out = Vec::new();
    collect_raw_messages(&data["ses"], &mut out);
    Ok(out)
}

fn collect_raw_messages(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) if m.contains_key("raw_data") => out.push(v.clone()),
        Value::Object(m) => m.values().for_each(|x| collect_raw_messages(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_raw_messages(x, out)),
        _ => {}
    }
}

fn find_moto_server() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("MOTO_SERVER={} does not exist", p.display()))
        };
    }
    // The workspace's own virtualenv wins over whatever is on PATH. This crate sits two
    // levels below the workspace root (shared/testkit).
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("moto_server not found (checked $MOTO_SERVER, .venv/bin and PATH)".into())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Polls `GET /moto-api/` until it answers 200.
fn wait_ready(port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited at once ({status})"));
        }
        if moto_api_ok(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no answer on port {port} within {READY_TIMEOUT:?}"))
}

fn moto_api_ok(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match conn.read(&mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200")
}

/// A store (or anything) used while holding moto to oneself; derefs to what it wraps.
///
/// moto's DynamoDB is not safe under concurrent use: a transaction snapshots its tables with
/// `deepcopy` and restores the snapshot when any condition fails, and concurrent requests
/// interleave with that. Under parallel tests this lost writes now and then (a contract case
/// found a contact it had just written missing). DynamoDB isolates all of this, so the tests
/// take moto one at a time: every test that talks to moto's DynamoDB holds an `Exclusive`.
pub struct Exclusive<T> {
    inner: T,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl<T> Exclusive<T> {
    /// Waits for this test's turn on moto, then wraps `make()`'s value.
    pub async fn new<F: std::future::Future<Output = T>>(make: impl FnOnce() -> F) -> Self {
        static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let turn = TURN.lock().await;
        Exclusive {
            inner: make().await,
            _turn: turn,
        }
    }
}

impl<T> std::ops::Deref for Exclusive<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}
