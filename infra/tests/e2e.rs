//! End to end: the real local server — the same `LocalServer` the `portal-invites serve`
//! binary runs — on `127.0.0.1:0` with its own data dir, driven over real HTTP.
//!
//! # Layout
//!
//! - `support`: a throw-away data dir, a tiny HTTP/1.1 client (one connection per request,
//!   chunked bodies decoded: enough for JSON and the streamed CSV export, no extra crates),
//!   and the servers: one shared demo server (loading 10,000 contacts once, on its own thread
//!   and runtime so it outlives each test's runtime) and fresh empty servers per test.
//! - the tests: the demo tenant through the API, tenancy, errors, the CSV import, the
//!   binary itself (`token`, `import`, `serve` with SIGTERM), and recurring invitations (a
//!   server whose clock the test moves, its scheduler, and `run-recurring --at`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use portal_core::domain::TenantId;
use portal_invites::import::{self, ImportError};
use portal_invites::serve::{LocalServer, ServeOptions};
use portal_invites::token::{self, TokenRequest};
use serde_json::{json, Value};

mod support {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A data dir under the system temp dir, removed on drop.
    pub type TestDir = tempfile::TempDir;

    /// A response, fully read.
    #[derive(Debug)]
    pub struct Resp {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Resp {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
        }

        /// Asserts a problem+json error with this status and a non-empty detail.
        pub fn assert_problem(&self, status: u16) -> Value {
            assert_eq!(self.status, status, "body: {}", self.text());
            let ct = self.header("content-type").unwrap_or_default();
            assert!(
                ct.starts_with("application/problem+json"),
                "content-type {ct:?}"
            );
            let p = self.json();
            assert_eq!(p["status"], status, "{p}");
            assert!(
                p["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "a problem needs a detail: {p}"
            );
            p
        }
    }

    /// One HTTP/1.1 request on a fresh connection.
    pub async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // `Host: {addr}` unless the test names another host.
        let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            String::new()
        } else {
            format!("Host: {addr}\r\n")
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        head += "\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        parse_response(&raw)
    }

    fn parse_response(raw: &[u8]) -> Resp {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = std::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    fn dechunk(mut rest: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a chunk size line");
            let line = std::str::from_utf8(&rest[..eol]).unwrap();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .expect("a hex chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }

    /// A client of one server, with or without a bearer token.
    #[derive(Clone)]
    pub struct Api {
        pub addr: SocketAddr,
        pub token: Option<String>,
    }

    impl Api {
        fn auth(&self) -> Option<String> {
            self.token.as_ref().map(|t| format!("Bearer {t}"))
        }

        pub async fn request(
            &self,
            method: &str,
            path: &str,
            extra: &[(&str, &str)],
            body: &[u8],
        ) -> Resp {
            let auth = self.auth();
            let mut headers: Vec<(&str, &str)> = extra.to_vec();
            if let Some(a) = &auth {
                headers.push(("Authorization", a));
            }
            send(self.addr, method, path, &headers, body).await
        }

        pub async fn get(&self, path: &str) -> Resp {
            self.request("GET", path, &[], b"").await
        }

        pub async fn json(&self, method: &str, path: &str, body: &Value) -> Resp {
            self.request(
                method,
                path,
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            )
            .await
        }

        /// `POST /v1/invitations/counts`, expecting 200.
        pub async fn counts(&self, body: &Value) -> Value {
            let r = self.json("POST", "/v1/invitations/counts", body).await;
            assert_eq!(r.status, 200, "counts: {}", r.text());
            r.json()
        }

        /// `GET /v1/divisions`, expecting 200: the division ids.
        pub async fn division_ids(&self) -> Vec<String> {
            let r = self.get("/v1/divisions").await;
            assert_eq!(r.status, 200, "divisions: {}", r.text());
            r.json()["items"]
                .as_array()
                .expect("a JSON array")
                .iter()
                .map(|d| d["division_id"].as_str().unwrap().to_owned())
                .collect()
        }
    }

    /// A token the server of `dir` accepts, through the library's `token` command.
    pub fn token_for(dir: &Path, tenant: &str, permissions: &str) -> String {
        let req = TokenRequest::parse(tenant, permissions, Some("e2e"), None).unwrap();
        token::issue(dir, &req).unwrap()
    }

    /// The demo server, shared by every test of this binary: it lives on its own thread and
    /// runtime for the life of the process.
    pub struct DemoServer {
        pub addr: SocketAddr,
        pub dir: PathBuf,
        /// The registration link the banner prints (an invitation sent at start).
        pub link: Option<String>,
    }

    impl DemoServer {
        pub fn api(&self, tenant: &str, permissions: &str) -> Api {
            Api {
                addr: self.addr,
                token: Some(token_for(&self.dir, tenant, permissions)),
            }
        }
    }

    pub fn demo() -> &'static DemoServer {
        static DEMO: OnceLock<DemoServer> = OnceLock::new();
        DEMO.get_or_init(|| {
            // Kept for the life of the process: a static is never dropped, so the dirs of
            // earlier runs are removed here instead.
            remove_stale_demo_dirs();
            let dir = std::mem::ManuallyDrop::new(
                tempfile::Builder::new().prefix("demo").tempdir().unwrap(),
            );
            let data_dir = dir.path().to_owned();
            type Started = Result<(SocketAddr, Option<String>), String>;
            let (tx, rx) = std::sync::mpsc::channel::<Started>();
            let opts = ServeOptions {
                data_dir: data_dir.clone(),
                demo: true,
                public_url: None,
                dev_routes: Default::default(),
            };
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let server = match LocalServer::open(opts).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:?}")));
                            return;
                        }
                    };
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let link = server.demo_link().map(str::to_owned);
                    let _ = tx.send(Ok((listener.local_addr().unwrap(), link)));
                    server.run(listener, std::future::pending()).await.unwrap();
                });
            });
            let (addr, link) = rx
                .recv()
                .unwrap()
                .unwrap_or_else(|e| panic!("the demo server did not start: {e}"));
            DemoServer {
                addr,
                dir: data_dir,
                link,
            }
        })
    }

    /// Removes demo data dirs left by test processes that are gone (Linux: no `/proc/<pid>`).
    fn remove_stale_demo_dirs() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("portal-invites-e2e-demo-") else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or_default();
            if Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// A fresh, empty server on this test's runtime; stops when dropped.
    pub struct EmptyServer {
        pub addr: SocketAddr,
        pub dir: TestDir,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    impl EmptyServer {
        pub async fn start(label: &str) -> Self {
            let dir = tempfile::Builder::new().prefix(label).tempdir().unwrap();
            let server = LocalServer::open(ServeOptions {
                data_dir: dir.path().to_owned(),
                demo: false,
                public_url: None,
                dev_routes: Default::default(),
            })
            .await
            .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(server.run(listener, async move {
                let _ = stopped.await;
            }));
            Self {
                addr,
                dir,
                _stop: stop,
            }
        }

        pub fn api(&self, tenant: &str, permissions: &str) -> Api {
            Api {
                addr: self.addr,
                token: Some(token_for(self.dir.path(), tenant, permissions)),
            }
        }
    }
}

use support::{demo, Api, EmptyServer, TestDir};

const READ: &str = "invitations:read";
const READ_WRITE: &str = "invitations:read,sync:write";

fn assert_counts_add_up(c: &Value) {
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    assert_eq!(
        n("total"),
        n("accepted") + n("pending") + n("not_sent"),
        "total = accepted + pending + not_sent: {c}"
    );
    assert!(n("active_services") <= n("total"), "{c}");
    assert!(n("no_email") <= n("total"), "{c}");
}

/// Every row of a recipient list, following `next_cursor` to the end.
async fn whole_list(api: &Api, body: &Value) -> Vec<Value> {
    let mut items = Vec::new();
    let mut body = body.clone();
    for _ in 0..1000 {
        let r = api.json("POST", "/v1/invitations/recipients", &body).await;
        assert_eq!(r.status, 200, "recipients: {}", r.text());
        let page = r.json();
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= body["limit"].as_u64().unwrap_or(100) as usize);
        items.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => body["cursor"] = json!(c),
            None => return items,
        }
    }
    panic!("a list that never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_link_that_registers_its_invited_resident_once() {
    let demo = support::demo();
    let link = demo
        .link
        .clone()
        .expect("serve --demo prints a registration link");
    let path = link
        .strip_prefix("http://127.0.0.1:3000")
        .unwrap_or_else(|| panic!("{link}"))
        .to_owned();
    assert!(path.starts_with("/register?token="), "{path}");
    // The same link is in the invitation email in the outbox.
    let token = path.trim_start_matches("/register?token=");
    let outbox = portal_embedded::outbox::Outbox::in_data_dir(&demo.dir);
    let mut found = false;
    for _ in 0..50 {
        found = outbox.all_messages().unwrap().iter().any(|(_, m)| {
            String::from_utf8_lossy(m)
                .replace("=\r\n", "")
                .contains(token)
        });
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "no email in {} carries the link",
        outbox.dir().display()
    );

    let public = Api {
        addr: demo.addr,
        token: None,
    };
    let page = public.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Create your portal login"));
    let post = public
        .request(
            "POST",
            &path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"password=a+demo+resident+password",
        )
        .await;
    assert_eq!(post.status, 200, "{}", post.text());
    assert!(
        post.text().contains("You are registered"),
        "{}",
        post.text()
    );
    let again = public.get(&path).await;
    assert_eq!(again.status, 410);
    let events = std::fs::read_to_string(demo.dir.join("portal-events.jsonl")).unwrap();
    assert!(events.contains("Portal Registration"), "{events}");
}

#[tokio::test]
async fn the_demo_tenant_has_three_divisions() {
    let api = demo().api("demo", READ);
    let r = api.get("/v1/divisions").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let divisions = r.json();
    let divisions = divisions["items"].as_array().unwrap();
    assert_eq!(divisions.len(), 3, "{divisions:?}");
    for d in divisions {
        assert!(d["name"].as_str().is_some_and(|n| !n.is_empty()), "{d}");
        assert!(
            d["email_from"].as_str().is_some_and(|e| e.contains('@')),
            "{d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_add_up_for_all_divisions_and_for_each_division() {
    let api = demo().api("demo", READ);
    for uninvited in [true, false] {
        let all = api.counts(&json!({"limit_to_uninvited": uninvited})).await;
        assert_counts_add_up(&all);
        let total = all["total"].as_u64().unwrap();
        assert!(
            (9_000..=11_000).contains(&total),
            "the demo has about 10,000 contacts, got {total}"
        );
        let mut sum = 0;
        for id in api.division_ids().await {
            let one = api
                .counts(&json!({"division_ids": [id], "limit_to_uninvited": uninvited}))
                .await;
            assert_counts_add_up(&one);
            assert!(one["total"].as_u64().unwrap() > 0, "division {id} is empty");
            sum += one["total"].as_u64().unwrap();
        }
        assert_eq!(sum, total, "the divisions' totals add up to the tenant's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_a_realistic_mix_of_statuses_and_contacts() {
    let api = demo().api("demo", READ);
    let c = api.counts(&json!({})).await;
    for k in [
        "accepted",
        "pending",
        "not_sent",
        "no_email",
        "active_services",
    ] {
        assert!(c[k].as_u64().unwrap() > 0, "some contacts are {k}: {c}");
    }
    let billing = api
        .counts(&json!({"filters": {"billing_contacts_only": true}}))
        .await;
    let total = c["total"].as_u64().unwrap();
    let billing = billing["total"].as_u64().unwrap();
    assert!(
        billing > 0 && billing < total,
        "billing and non-billing contacts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_list_pages_through_exactly_the_contacts_of_its_count() {
    let api = demo().api("demo", READ);
    let id = api.division_ids().await.remove(0);
    let selection = json!({"division_ids": [id], "limit_to_uninvited": false});
    let counts = api.counts(&selection).await;

    let mut body = selection.clone();
    body["group"] = json!("pending");
    body["limit"] = json!(500);
    let rows = whole_list(&api, &body).await;
    assert_eq!(rows.len() as u64, counts["pending"].as_u64().unwrap());
    let distinct: HashSet<&str> = rows
        .iter()
        .map(|r| r["contact_id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), rows.len(), "no contact twice");
    assert!(rows.iter().all(|r| r["portal_status"] == "pending"));

    body["limit"] = json!(7);
    body["group"] = json!("all");
    let r = api.json("POST", "/v1/invitations/recipients", &body).await;
    let page = r.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 7, "{page}");
    let row = &page["items"][0];
    for field in [
        "contact_id",
        "email",
        "contact_name",
        "account_number",
        "account_name",
        "portal_status",
        "last_invite_sent",
        "last_login",
        "has_autopay",
    ] {
        assert!(row.get(field).is_some(), "a row has {field}: {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_has_a_header_and_one_row_per_contact_of_the_group() {
    let api = demo().api("demo", READ);
    let ids = api.division_ids().await;
    for (ids, group, count) in [
        (json!([ids[0]]), "not_sent", "not_sent"),
        (json!([]), "no_email", "no_email"),
        (json!([ids[1]]), "all", "total"),
    ] {
        let selection = json!({"division_ids": ids, "limit_to_uninvited": true});
        let expected = api.counts(&selection).await[count].as_u64().unwrap();
        let mut body = selection;
        body["group"] = json!(group);
        let r = api
            .request(
                "POST",
                "/v1/invitations/recipients",
                &[("Content-Type", "application/json"), ("Accept", "text/csv")],
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/csv"),
            "{:?}",
            r.headers
        );
        let mut rdr = csv::Reader::from_reader(r.body.as_slice());
        let header = rdr.headers().unwrap().clone();
        assert_eq!(header.get(0), Some("contact_id"));
        assert!(header.iter().any(|h| h == "email"));
        let rows = rdr.records().collect::<Result<Vec<_>, _>>().unwrap().len() as u64;
        assert_eq!(rows, expected, "{group}: one CSV row per contact");
        assert!(rows > 0, "{group} is not empty in the demo");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_sees_nothing_of_the_demo_tenant() {
    let demo_ids = demo().api("demo", READ).division_ids().await;
    let other = demo().api("acme", READ);
    assert!(other.division_ids().await.is_empty());
    let c = other.counts(&json!({})).await;
    assert_eq!(c["total"], 0, "{c}");
    for id in &demo_ids {
        other
            .json(
                "POST",
                "/v1/invitations/counts",
                &json!({"division_ids": [id]}),
            )
            .await
            .assert_problem(404);
        other
            .json(
                "POST",
                "/v1/invitations/recipients",
                &json!({"division_ids": [id], "group": "all"}),
            )
            .await
            .assert_problem(404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_token_gets_a_401_problem() {
    let api = Api {
        addr: demo().addr,
        token: None,
    };
    api.get("/v1/divisions").await.assert_problem(401);
    api.json("POST", "/v1/invitations/counts", &json!({}))
        .await
        .assert_problem(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_secret_gets_a_401_problem() {
    let elsewhere = tempfile::Builder::new()
        .prefix("other-secret")
        .tempdir()
        .unwrap();
    let api = Api {
        addr: demo().addr,
        token: Some(support::token_for(elsewhere.path(), "demo", READ)),
    };
    api.get("/v1/divisions").await.assert_problem(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_gets_a_403_problem() {
    let api = demo().api("demo", "sync:write");
    api.get("/v1/divisions").await.assert_problem(403);
    let reader = demo().api("demo", READ);
    reader
        .json(
            "PUT",
            "/v1/divisions/new-one",
            &json!({"name": "New", "email_from": "new@example.com"}),
        )
        .await
        .assert_problem(403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_problem_never_a_500() {
    let api = demo().api("demo", READ);
    let malformed = api
        .request(
            "POST",
            "/v1/invitations/counts",
            &[("Content-Type", "application/json")],
            b"{\"filters\": ",
        )
        .await;
    malformed.assert_problem(400);
    for body in [
        json!({"filtres": {}}),
        json!({"filters": {"billing_contacts_only": "yes"}}),
        json!({"division_ids": ["no#such"]}),
    ] {
        let r = api.json("POST", "/v1/invitations/counts", &body).await;
        assert!(
            (400..500).contains(&r.status),
            "{body} gave {}: {}",
            r.status,
            r.text()
        );
        r.assert_problem(r.status);
    }
    api.json(
        "POST",
        "/v1/invitations/recipients",
        &json!({"limit": 9999}),
    )
    .await
    .assert_problem(422);
    api.json(
        "POST",
        "/v1/invitations/recipients",
        &json!({"cursor": "not-a-cursor"}),
    )
    .await
    .assert_problem(400);
}

// ---- CSV import ----

const HEADER: &str = "account_id,division_id,number,name,class,bill_group,source,site_source,active_services,balance_due_cents,autopay,contact_id,contact_name,email,phone,billing\n";

const GOOD_CSV: &str = "\
A1,north,1001,Ada Lovelace,Residential,Monthly,CRM,Web,yes,12550,no,C1,Ada Lovelace,ada@example.com,555-0100,true
A2,north,1002,Bob Builder,Commercial,Quarterly,CRM,Phone,true,0,yes,C2,Bob Builder,,555-0101,true
A1,north,1001,Ada Lovelace,Residential,Monthly,CRM,Web,yes,12550,no,C3,Charles Babbage,charles@example.com,,false
";

fn write_csv(dir: &TestDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{HEADER}{body}")).unwrap();
    path
}

/// A server with tenant `acme` and its division `north`, and an API client for it.
async fn server_with_division() -> (EmptyServer, Api) {
    let server = EmptyServer::start("import").await;
    let api = server.api("acme", READ_WRITE);
    let r = api
        .json(
            "PUT",
            "/v1/divisions/north",
            &json!({"name": "North Branch", "email_from": "north@acme.example"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    (server, api)
}

async fn import(
    server: &EmptyServer,
    path: &std::path::Path,
) -> Result<import::ImportSummary, ImportError> {
    // A second connection to the database the running server uses, as the binary does.
    let store = portal_invites::open_store(server.dir.path()).unwrap();
    import::import_file(&store, &TenantId::parse("acme").unwrap(), path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_csv_is_imported_and_served_at_once() {
    let (server, api) = server_with_division().await;
    let path = write_csv(&server.dir, "good.csv", GOOD_CSV);
    let summary = import(&server, &path).await.unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.written.accounts, 2);
    assert_eq!(summary.written.contacts, 3);

    let c = api.counts(&json!({"limit_to_uninvited": false})).await;
    assert_eq!(c["total"], 3, "{c}");
    assert_eq!(c["not_sent"], 3, "{c}");
    assert_eq!(c["no_email"], 1, "{c}");
    let billing = api
        .counts(&json!({"filters": {"billing_contacts_only": true}, "limit_to_uninvited": false}))
        .await;
    assert_eq!(billing["total"], 2, "{billing}");

    // Importing the same file again changes nothing.
    import(&server, &path).await.unwrap();
    assert_eq!(api.counts(&json!({"limit_to_uninvited": false})).await, c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_names_its_line_and_nothing_is_written() {
    let (server, api) = server_with_division().await;
    import(&server, &write_csv(&server.dir, "good.csv", GOOD_CSV))
        .await
        .unwrap();
    let before = api.counts(&json!({"limit_to_uninvited": false})).await;
    let list_before = whole_list(&api, &json!({"group": "all", "limit": 500})).await;

    // Line 2 is valid (a new account, and a change to A1); line 3 has a bad email.
    let bad = "\
A3,north,1003,Cy Young,Residential,Monthly,CRM,Web,yes,0,no,C4,Cy Young,cy@example.com,,true
A1,north,1001,Ada Renamed,Residential,Monthly,CRM,Web,yes,0,no,C1,Ada,ada-at-example.com,,true
";
    let err = import(&server, &write_csv(&server.dir, "bad.csv", bad))
        .await
        .unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("line 3") && message.contains("email"),
        "{message}"
    );

    assert_eq!(
        api.counts(&json!({"limit_to_uninvited": false})).await,
        before
    );
    let list_after = whole_list(&api, &json!({"group": "all", "limit": 500})).await;
    assert_eq!(list_after, list_before, "the store is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_division_is_named_with_how_to_create_it_and_nothing_is_written() {
    let (server, api) = server_with_division().await;
    let body = "\
A1,north,1001,Ada,Residential,Monthly,CRM,Web,yes,0,no,C1,Ada,ada@example.com,,true
A2,south,1002,Bob,Residential,Monthly,CRM,Web,yes,0,no,C2,Bob,bob@example.com,,true
";
    let err = import(&server, &write_csv(&server.dir, "south.csv", body))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("PUT /v1/divisions/south"), "{message}");
    assert_eq!(api.counts(&json!({})).await["total"], 0);
}

// ---- the binary ----

const BIN: &str = env!("CARGO_BIN_EXE_portal-invites");

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.env_remove("PORTAL_INVITES_JWT_SECRET")
        .env("RUST_LOG", "warn");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_prints_only_a_token_the_server_accepts() {
    let server = EmptyServer::start("bin-token").await;
    let out = bin()
        .args([
            "token",
            "--tenant",
            "acme",
            "--permissions",
            READ,
            "--data-dir",
        ])
        .arg(server.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert_eq!(token.lines().count(), 1, "one line: {stdout:?}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let api = Api {
        addr: server.addr,
        token: Some(token.to_owned()),
    };
    assert_eq!(api.get("/v1/divisions").await.status, 200);
}

#[test]
fn the_token_command_refuses_an_unknown_permission_with_a_non_zero_exit() {
    let dir = tempfile::Builder::new()
        .prefix("bin-token-bad")
        .tempdir()
        .unwrap();
    let out = bin()
        .args([
            "token",
            "--tenant",
            "acme",
            "--permissions",
            "invitations:write",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invitations:write") && stderr.contains("invitations:read"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_command_exits_non_zero_naming_the_bad_line() {
    let (server, _api) = server_with_division().await;
    let bad = "\
A1,north,1001,Ada,Residential,Monthly,CRM,Web,yes,0,no,C1,Ada,ada@example.com,,true
A2,north,1002,Bob,Residential,Monthly,CRM,Web,perhaps,0,no,C2,Bob,bob@example.com,,true
";
    let path = write_csv(&server.dir, "bad.csv", bad);
    let out = bin()
        .args(["import", "--tenant", "acme", "--data-dir"])
        .arg(server.dir.path())
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing was written") && stderr.contains("line 3, column active_services"),
        "{stderr}"
    );

    let good = write_csv(&server.dir, "good.csv", GOOD_CSV);
    let out = bin()
        .args(["import", "--tenant", "acme", "--data-dir"])
        .arg(server.dir.path())
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 accounts with 3 contacts"), "{stdout}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_how_to_use_it_answers_and_stops_cleanly_on_sigterm() {
    use std::io::BufRead;

    let dir = tempfile::Builder::new()
        .prefix("bin-serve")
        .tempdir()
        .unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut url = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner += &line;
        banner += "\n";
        if let Some(u) = line.split("listening on ").nth(1) {
            url = Some(u.trim().to_owned());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "no URL in the banner: {banner}\nstderr: {}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        )
    });
    assert!(banner.contains("token --data-dir"), "{banner}");
    assert!(banner.contains("curl"), "{banner}");
    assert!(
        banner.contains("due settings run here every minute"),
        "{banner}"
    );
    assert!(
        banner.contains("/dev routes: on (bound to the loopback address 127.0.0.1)"),
        "{banner}"
    );

    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let api = Api {
        addr,
        token: Some(support::token_for(&dir.path().join("data"), "acme", READ)),
    };
    let r = api.get("/v1/divisions").await;
    assert_eq!(
        r.status,
        200,
        "{}\nstderr: {}",
        r.text(),
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM, got {status}");
}

/// `serve --addr ADDR` with `envs`, until its banner is printed: the child, the banner and
/// the port it listens on.
#[cfg(unix)]
fn serve_until_banner(
    dir: &std::path::Path,
    addr: &str,
    envs: &[(&str, &str)],
) -> (std::process::Child, String, u16) {
    use std::io::BufRead;
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut child = bin()
        .args(["serve", "--addr", addr, "--data-dir"])
        .arg(dir.join("data"))
        .env_remove(portal_invites::dev::DEV_ROUTES_ENV)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut port = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner += &line;
        banner += "\n";
        if let Some(u) = line.split("listening on ").nth(1) {
            port = u.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let Some(port) = port else {
        let _ = child.kill();
        panic!(
            "no URL in the banner: {banner}\nstderr: {}",
            std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
        );
    };
    (child, banner, port)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_beyond_loopback_serves_no_outbox_unless_told_to() {
    let dir = tempfile::Builder::new()
        .prefix("bin-dev-off")
        .tempdir()
        .unwrap();
    let (mut child, banner, port) = serve_until_banner(dir.path(), "0.0.0.0:0", &[]);
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    let r = support::send(local, "GET", "/dev/outbox", &[], b"").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains("/dev routes: off (0.0.0.0 is not a loopback address"),
        "{banner}"
    );
    r.assert_problem(404);

    let dir = tempfile::Builder::new()
        .prefix("bin-dev-flag")
        .tempdir()
        .unwrap();
    let (mut child, banner, port) = serve_until_banner(
        dir.path(),
        "0.0.0.0:0",
        &[(portal_invites::dev::DEV_ROUTES_ENV, "1")],
    );
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    let ok = support::send(local, "GET", "/dev/outbox", &[], b"").await;
    let rebound = support::send(
        local,
        "GET",
        "/dev/outbox",
        &[("Host", "evil.example")],
        b"",
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(banner.contains("/dev routes: on (--dev-routes"), "{banner}");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json(), json!([]));
    rebound.assert_problem(421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_refuses_a_request_for_another_host_dns_rebinding() {
    let server = EmptyServer::start("dev-rebinding").await;
    let api = server.api("acme", READ);
    let ok = support::send(server.addr, "GET", "/dev/outbox", &[], b"").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    for host in ["evil.example", "evil.example:80", "attacker.test:3000"] {
        let r = api
            .request("GET", "/dev/outbox?limit=1000", &[("Host", host)], b"")
            .await;
        let p = r.assert_problem(421);
        assert_eq!(p["type"], "urn:portal-invites:problem:misdirected-request");
    }
    let by_name = api
        .request("GET", "/dev/outbox", &[("Host", "localhost")], b"")
        .await;
    assert_eq!(by_name.status, 200, "{}", by_name.text());
}

// ---- recurring invitations ----

const ADMIN: &str =
    "invitations:read,invitations:send,registrations:manage,settings:manage,sync:write";

/// A token valid as long as tokens may be, for servers whose clock the test moves by weeks.
fn lasting_token(dir: &std::path::Path, tenant: &str) -> String {
    let req = TokenRequest::parse(
        tenant,
        ADMIN,
        Some("e2e"),
        Some(portal_invites::token::MAX_TTL_HOURS),
    )
    .unwrap();
    token::issue(dir, &req).unwrap()
}

/// A local server whose clock the test moves and whose scheduler ticks every second; it
/// can be stopped and started again on the same data dir ("downtime").
struct ClockedServer {
    addr: SocketAddr,
    clock: std::sync::Arc<portal_invites::recurring::ShiftedClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl ClockedServer {
    async fn start(dir: &std::path::Path, at: time::OffsetDateTime) -> Self {
        use portal_invites::recurring::ShiftedClock;
        use portal_invites::serve::ServeTuning;
        let clock = std::sync::Arc::new(ShiftedClock::starting_at(at));
        let server = LocalServer::open_with(
            ServeOptions {
                data_dir: dir.to_owned(),
                demo: false,
                public_url: None,
                dev_routes: Default::default(),
            },
            ServeTuning {
                clock: clock.clone(),
                scheduler_tick: std::time::Duration::from_secs(1),
                ..ServeTuning::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server
                .run(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            clock,
            stop: Some(stop),
            served: Some(served),
        }
    }

    fn api(&self, dir: &std::path::Path, tenant: &str) -> Api {
        Api {
            addr: self.addr,
            token: Some(lasting_token(dir, tenant)),
        }
    }

    fn now(&self) -> time::OffsetDateTime {
        use portal_core::ports::Clock as _;
        self.clock.now()
    }

    /// Stops the server and its scheduler, and waits until both have.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.served.take().unwrap().await.unwrap();
    }
}

/// `GET /v1/recurring/{id}/runs`, expecting 200: its items, newest first.
async fn recurring_runs(api: &Api, id: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/recurring/{id}/runs")).await;
    assert_eq!(r.status, 200, "runs: {}", r.text());
    r.json()["items"].as_array().unwrap().clone()
}

/// Waits (up to 15 s) for the setting to have `n` runs, all finished.
async fn wait_for_runs(api: &Api, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let runs = recurring_runs(api, id).await;
        // A run is listed from its start; its campaign and `finished` come a moment later
        // (seen on a loaded machine): wait for the whole of each.
        if runs.len() >= n && runs.iter().all(|r| r["finished"] == true) {
            return runs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the scheduler did not finish {n} run(s) of {id}: {:?}",
        recurring_runs(api, id).await
    )
}

/// The number of emails in the outbox per recipient address.
fn outbox_per_address(dir: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    let outbox = portal_embedded::outbox::Outbox::in_data_dir(dir);
    for (_, mail) in outbox.all_messages().unwrap() {
        let mail = String::from_utf8_lossy(&mail);
        let to = mail
            .lines()
            .find_map(|l| l.strip_prefix("To:"))
            .unwrap_or_default();
        let addr = to
            .rsplit('<')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_end_matches('>')
            .to_owned();
        *out.entry(addr).or_insert(0) += 1;
    }
    out
}

/// Waits (up to 15 s) until the outbox holds `n` emails.
async fn wait_for_outbox(
    dir: &std::path::Path,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    for _ in 0..150 {
        let per = outbox_per_address(dir);
        if per.values().sum::<usize>() >= n {
            return per;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the outbox never held {n} emails: {:?}",
        outbox_per_address(dir)
    )
}

/// `portal-invites run-recurring` on `dir` at `at` (with extra arguments), expecting
/// success: its JSON report.
async fn run_recurring(dir: &std::path::Path, at: time::OffsetDateTime, extra: &[&str]) -> Value {
    use time::format_description::well_known::Rfc3339;
    let mut cmd = bin();
    cmd.args(["run-recurring", "--at", &at.format(&Rfc3339).unwrap()])
        .args(extra)
        .arg("--data-dir")
        .arg(dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "run-recurring failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A tenant `acme` with the division `north`, sender settings allowing its sender, the
/// template `welcome` and contacts with `ada@` and `charles@` addresses (and one without).
async fn recurring_tenant(api: &Api, dir: &std::path::Path) {
    let r = api
        .json(
            "PUT",
            "/v1/divisions/north",
            &json!({"name": "North Branch", "email_from": "north@acme.example"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let r = api
        .json(
            "PUT",
            "/v1/settings/senders",
            &json!({"domains": ["acme.example"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api
        .json(
            "PUT",
            "/v1/templates/welcome",
            &json!({
                "name": "Welcome",
                "subject": "Your [DivisionName] portal",
                "html": "<a href=\"[PortalLink]\">Register</a> <a href=\"[UnsubscribeLink]\">Unsubscribe</a>",
                "text": "Register: [PortalLink]",
            }),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let csv = dir.join("contacts.csv");
    std::fs::write(&csv, format!("{HEADER}{GOOD_CSV}")).unwrap();
    let store = portal_invites::open_store(dir).unwrap();
    import::import_file(&store, &TenantId::parse("acme").unwrap(), &csv)
        .await
        .unwrap();
}

fn weekly_at(hour: u8) -> Value {
    json!({
        "enabled": true,
        "scope": "all",
        "filters": {},
        "template_id": "welcome",
        "cadence_days": 7,
        "max_invitations_per_contact": 2,
        "hour_of_day": hour,
        "time_zone": "UTC",
    })
}

/// The UTC day whose run is due at `at` for a setting at `hour` (today once the hour has
/// come, else yesterday), `YYYY-MM-DD`.
fn due_day(at: time::OffsetDateTime, hour: u8) -> String {
    let day = if at.hour() >= hour {
        at.date()
    } else {
        at.date().previous_day().unwrap()
    };
    day.to_string()
}

fn outcomes(report: &Value) -> Vec<String> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// Saved after its hour today, a setting first runs the next day (a setting saved after a
/// day's hour waits for the next); the server's own scheduler runs it — once — when its
/// clock gets there. `run-recurring --at` then plays the following weeks: new contacts get
/// their first invitation, pending ones a reminder every `cadence_days`, never more than
/// the maximum, unsubscribed ones nothing; a server back from days of downtime runs the
/// latest missed day once; a deleted setting runs no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_scheduler_and_run_recurring_invite_and_remind_up_to_the_maximum() {
    let tmp = tempfile::Builder::new()
        .prefix("recurring")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let start = time::OffsetDateTime::now_utc();
    let server = ClockedServer::start(dir, start).await;
    let api = server.api(dir, "acme");
    recurring_tenant(&api, dir).await;

    // The hour two hours ago: the setting is saved after its hour (a setting saved during
    // its hour would run at once: see the domain's tests), so today is left alone.
    let hour = (server.now() - time::Duration::hours(2)).hour();
    let r = api
        .json("PUT", "/v1/recurring/weekly", &weekly_at(hour))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = r.json();
    let next: time::OffsetDateTime = time::OffsetDateTime::parse(
        saved["next_run_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        next > server.now() && next - server.now() <= time::Duration::days(1),
        "{saved}"
    );
    let preview = api
        .json("POST", "/v1/recurring/weekly/preview", &json!({}))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    assert_eq!(preview.json()["eligible"], 2, "{}", preview.text());

    // Saved after today's hour: the scheduler (ticking every second) leaves today alone.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(recurring_runs(&api, "weekly").await.is_empty());
    assert!(outbox_per_address(dir).is_empty());

    // A day later the server runs it by itself, once.
    server.clock.shift(time::Duration::days(1));
    let runs = wait_for_runs(&api, "weekly", 1).await;
    let first = server.now();
    let campaign = runs[0]["campaign_id"]
        .as_str()
        .expect("a campaign")
        .to_owned();
    assert_eq!(runs[0]["finished"], true, "{runs:?}");
    assert_eq!(runs[0]["local_date"], due_day(first, hour), "{runs:?}");
    let per = wait_for_outbox(dir, 2).await;
    assert_eq!(per.get("ada@example.com"), Some(&1), "{per:?}");
    assert_eq!(per.get("charles@example.com"), Some(&1), "{per:?}");
    let c = api.get(&format!("/v1/campaigns/{campaign}")).await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["trigger"], "recurring", "{}", c.text());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        recurring_runs(&api, "weekly").await.len(),
        1,
        "ticks after the run do nothing"
    );
    assert_eq!(outbox_per_address(dir).values().sum::<usize>(), 2);

    // Charles unsubscribes; a new contact arrives.
    let signer = portal_invites::dev::unsubscribe_signer(dir).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let charles = portal_core::domain::Email::parse("charles@example.com").unwrap();
    let token = signer.sign(&tenant, &charles, "", server.now());
    let r = Api {
        addr: server.addr,
        token: None,
    }
    .request(
        "POST",
        &format!("/v1/unsubscribe?token={token}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let newcomer = "A3,north,1003,Dee Newcomer,Residential,Monthly,CRM,Web,yes,0,no,C4,Dee Newcomer,dee@example.com,,true\n";
    let csv = dir.join("newcomer.csv");
    std::fs::write(&csv, format!("{HEADER}{newcomer}")).unwrap();
    import::import_file(&portal_invites::open_store(dir).unwrap(), &tenant, &csv)
        .await
        .unwrap();

    // The next day, three hours later in the day (more than the rule's one hour of slack, so
    // the newcomer's week ends after day 8's run): only the newcomer is invited; the others
    // were invited a day ago.
    let report = run_recurring(
        dir,
        first + time::Duration::hours(27),
        &["--tenant", "acme"],
    )
    .await;
    assert_eq!(outcomes(&report), ["queued"], "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    let per = outbox_per_address(dir);
    assert_eq!(per.get("dee@example.com"), Some(&1), "{per:?}");
    // The same day again: nothing more.
    let again = run_recurring(dir, first + time::Duration::hours(28), &[]).await;
    assert_eq!(outcomes(&again), ["already_ran"], "{again}");
    assert_eq!(again["sent"], 0, "{again}");

    // Eight days after the first run: Ada's reminder (Charles unsubscribed; Dee's week is
    // not over).
    let report = run_recurring(
        dir,
        first + time::Duration::days(8),
        &["--tenant", "acme", "--setting", "weekly"],
    )
    .await;
    assert_eq!(outcomes(&report), ["queued"], "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(outbox_per_address(dir).get("ada@example.com"), Some(&2));

    // Sixteen days: Dee's reminder; Ada has had the maximum.
    let report = run_recurring(dir, first + time::Duration::days(16), &[]).await;
    assert_eq!(outcomes(&report), ["queued"], "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    // Twenty-four days: everyone has had the maximum (or unsubscribed).
    let report = run_recurring(dir, first + time::Duration::days(24), &[]).await;
    assert_eq!(outcomes(&report), ["nobody_due"], "{report}");
    assert_eq!(report["sent"], 0, "{report}");
    let per = outbox_per_address(dir);
    assert_eq!(
        per,
        [
            ("ada@example.com".to_owned(), 2),
            ("charles@example.com".to_owned(), 1),
            ("dee@example.com".to_owned(), 2),
        ]
        .into_iter()
        .collect(),
        "never more than the maximum of 2"
    );
    let runs = recurring_runs(&api, "weekly").await;
    assert_eq!(runs.len(), 5, "{runs:?}");
    let dates: Vec<&str> = runs
        .iter()
        .map(|r| r["local_date"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert!(
        runs[0]["campaign_id"].is_null(),
        "nobody due: no campaign: {runs:?}"
    );

    // Downtime: the server stops, a contact arrives, and the server comes back a week
    // after the last run: the latest missed day runs once, not every missed day.
    server.stop().await;
    let late = "A4,north,1004,Eve Late,Residential,Monthly,CRM,Web,yes,0,no,C5,Eve Late,eve@example.com,,true\n";
    std::fs::write(&csv, format!("{HEADER}{late}")).unwrap();
    import::import_file(&portal_invites::open_store(dir).unwrap(), &tenant, &csv)
        .await
        .unwrap();
    let back = first + time::Duration::days(31);
    let server = ClockedServer::start(dir, back).await;
    let api = server.api(dir, "acme");
    let runs = wait_for_runs(&api, "weekly", 6).await;
    assert_eq!(runs[0]["local_date"], due_day(back, hour), "{runs:?}");
    wait_for_outbox(dir, 6).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(recurring_runs(&api, "weekly").await.len(), 6);
    assert_eq!(outbox_per_address(dir).get("eve@example.com"), Some(&1));

    // Deleted: neither the scheduler nor run-recurring runs it again.
    let r = api
        .request("DELETE", "/v1/recurring/weekly", &[], b"")
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text());
    server.clock.shift(time::Duration::days(10));
    let report = run_recurring(dir, back + time::Duration::days(20), &[]).await;
    assert_eq!(outcomes(&report), Vec::<String>::new(), "{report}");
    let report = run_recurring(
        dir,
        back + time::Duration::days(20),
        &["--tenant", "acme", "--setting", "weekly"],
    )
    .await;
    assert_eq!(outcomes(&report), ["ignored"], "{report}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(outbox_per_address(dir).values().sum::<usize>(), 6);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_settings_refuse_bad_input_with_422_and_unknown_ones_with_404() {
    let server = EmptyServer::start("recurring-errors").await;
    let api = server.api("acme", ADMIN);
    recurring_tenant(&api, server.dir.path()).await;
    let mut bad_zone = weekly_at(9);
    bad_zone["time_zone"] = json!("Mars/Olympus_Mons");
    let mut no_cadence = weekly_at(9);
    no_cadence["cadence_days"] = json!(0);
    let mut no_template = weekly_at(9);
    no_template["template_id"] = json!("nope");
    let mut no_division = weekly_at(9);
    no_division["scope"] = json!("divisions");
    no_division["division_ids"] = json!(["south"]);
    for (body, says) in [
        (bad_zone, "Mars/Olympus_Mons"),
        (no_cadence, "cadence_days"),
        (no_template, "nope"),
        (no_division, "south"),
    ] {
        let r = api.json("PUT", "/v1/recurring/weekly", &body).await;
        let p = r.assert_problem(422);
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    assert_eq!(
        api.get("/v1/recurring").await.json(),
        json!([]),
        "nothing saved"
    );
    api.get("/v1/recurring/weekly").await.assert_problem(404);
    api.get("/v1/recurring/weekly/runs")
        .await
        .assert_problem(404);
    api.json("POST", "/v1/recurring/weekly/preview", &json!({}))
        .await
        .assert_problem(404);
    api.request("DELETE", "/v1/recurring/weekly", &[], b"")
        .await
        .assert_problem(404);
    // Managing them takes settings:manage.
    let reader = server.api("acme", READ);
    reader.get("/v1/recurring").await.assert_problem(403);
}
