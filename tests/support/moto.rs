//! A moto server (PyPI `moto[server]`) for tests: one per test binary, on a free loopback port.
//!
//! [`Moto::shared`] starts it on first use and every test of the binary shares it; tests stay
//! independent by creating their own uniquely named tables ([`fresh_table`]).
//!
//! **Finding it:** `$MOTO_SERVER`, else `.venv/bin/moto_server` under the workspace root,
//! else `moto_server` on `PATH`. If it cannot be started the test PANICS with install
//! instructions: AWS adapter tests fail loudly, they never skip.
//!
//! **Stopping it:** a Rust `static` is never dropped, so the server cannot be killed from a
//! destructor. Instead it runs under a tiny `sh` watchdog whose stdin is a pipe held by this
//! process: `moto_server ... & cat >/dev/null; kill -9 $pid`. When the test process exits —
//! normally, by panic, or killed — the OS closes the pipe, `cat` sees end-of-file and the
//! watchdog kills moto (with SIGKILL: moto's SIGTERM handler can hang while keep-alive
//! connections are open). No port stays taken and no server outlives the test run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use portal_core::adapters::aws_metrics::RequestCounter;

const INSTALL_HINT: &str = "moto is needed for the DynamoDB tests. Install it with \
    `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` in the workspace root, \
    or put `moto_server` on PATH, or set MOTO_SERVER=/path/to/moto_server";

/// How long a starting server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running moto server.
pub struct Moto {
    endpoint: String,
    /// Holds the watchdog's stdin pipe open for the life of the process.
    _watchdog: Mutex<Child>,
}

static SHARED: OnceLock<Moto> = OnceLock::new();

impl Moto {
    /// The test binary's server, started on first call (blocking, ~1 s).
    pub fn shared() -> &'static Moto {
        SHARED.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("{e}\n{INSTALL_HINT}")))
    }

    /// Base URL, e.g. `http://127.0.0.1:50123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Starts a new server (most tests want [`Moto::shared`]).
    pub fn start() -> Result<Moto, String> {
        let program = find_moto_server()?;
        let mut last_err = String::new();
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(r#""$0" "$@" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill -9 $pid 2>/dev/null; wait $pid"#)
                .arg(&program)
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
        Err(format!(
            "moto_server ({}) did not start: {last_err}",
            program.display()
        ))
    }

    /// A DynamoDB client for this server: test credentials, `us-east-1`, SDK retries off
    /// (moto answers some bad requests with a 500 that the SDK would otherwise retry).
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(self.dynamodb_config().build())
    }

    /// Like [`Moto::dynamodb_client`], counting every request in `counter`.
    pub fn counted_dynamodb_client(&self, counter: &RequestCounter) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            self.dynamodb_config().interceptor(counter.clone()).build(),
        )
    }

    /// The client configuration, for tests that add to it.
    pub fn dynamodb_config(&self) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .endpoint_url(&self.endpoint)
            .retry_config(RetryConfig::disabled())
    }
}

impl Moto {
    /// An SES v2 client for this server, configured like [`Moto::dynamodb_client`].
    pub fn sesv2_client(&self) -> aws_sdk_sesv2::Client {
        aws_sdk_sesv2::Client::from_conf(self.sesv2_config().build())
    }

    /// The SES v2 client configuration, for tests that add to it (e.g. an interceptor).
    pub fn sesv2_config(&self) -> aws_sdk_sesv2::config::Builder {
        aws_sdk_sesv2::Config::builder()
            .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
            .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .endpoint_url(&self.endpoint)
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
    }
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
    portal_core::adapters::dynamodb::create_table(client, &name)
        .await
        .unwrap_or_else(|e| panic!("creating table {name} on moto failed: {e:?}"));
    name
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
    // The workspace's own virtualenv (what `.ci/run` installs) wins over whatever is on PATH.
    // tests/ is one level below the workspace root.
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
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
