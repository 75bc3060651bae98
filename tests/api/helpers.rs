//! Test harness: fresh stores per test on each backend, a server on an
//! ephemeral loopback port, and the CLI binary.

use credit_tender::proto::v1::assessment_service_client::AssessmentServiceClient;
use credit_tender::proto::v1::credit_data_service_client::CreditDataServiceClient;
use credit_tender::proto::v1::tender_service_client::TenderServiceClient;
use credit_tender::rules::Rules;
use credit_tender::server::{self, AppState, ServerOptions};
use credit_tender::service::Cache;
use credit_tender::service::PolicySet;
use credit_tender::signing::{Keyring, SharedKeyring};
use credit_tender::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use crate::records::*;
use std::process::{Command, Output};
use tonic::transport::Channel;

/// The longest any one call of a test may take (a gRPC call on the harness's
/// channels, an HTTP request): a server that stops answering fails the test
/// instead of hanging it.
pub(crate) const CALL_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// `fut` (a connect, a handshake, a read), failing the test naming `what`
/// if it takes longer than [`CALL_BOUND`]: no network wait of the suite is
/// unbounded.
pub(crate) async fn bounded<T>(what: impl std::fmt::Display, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, fut).await.unwrap_or_else(|_| panic!("{what}: nothing within {CALL_BOUND:?}"))
}

/// A plain HTTP/2 endpoint at `addr` whose connect and every call are
/// bounded by [`CALL_BOUND`].
pub(crate) fn endpoint(addr: impl std::fmt::Display) -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_timeout(CALL_BOUND).timeout(CALL_BOUND)
}

/// A store URL on one backend, cleaned up when dropped.
pub(crate) struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(name), Ok(admin)) = (&self.pg_name, std::env::var("DATABASE_URL")) {
            // Best effort: a leftover database only costs disk space.
            let name = name.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}

pub(crate) fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    TestDb { url, backend: "sqlite", _dir: Some(dir), pg_name: None }
}

/// A fresh PostgreSQL database, or `None` (with a notice) when `DATABASE_URL`
/// is unset. With `CREDIT_TENDER_REQUIRE_PG=1` (as in `.ci/run`) a missing or
/// unreachable PostgreSQL fails the test instead.
pub(crate) async fn pg_db() -> Option<TestDb> {
    let required = std::env::var("CREDIT_TENDER_REQUIRE_PG").is_ok_and(|v| v == "1");
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        assert!(!required, "CREDIT_TENDER_REQUIRE_PG=1 but DATABASE_URL is not set");
        crate::harness::skipped(crate::harness::Needs::Postgres, "DATABASE_URL is not set");
        return None;
    };
    use sqlx::Connection;
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if !required => {
            crate::harness::skipped(crate::harness::Needs::Postgres, &format!("cannot connect to DATABASE_URL: {e}"));
            return None;
        }
        Err(e) => panic!("CREDIT_TENDER_REQUIRE_PG=1 but PostgreSQL is unreachable: {e}"),
    };
    let name = format!("ct_test_{}", uuid_like());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let url = url_with_database(&admin, &name);
    Some(TestDb { url, backend: "postgres", _dir: None, pg_name: Some(name) })
}

fn url_with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
    let mut url = format!("{}/{}", &base[..path_start], name);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}_{}_{}", std::process::id(), nanos, N.fetch_add(1, Ordering::Relaxed))
}

/// A test's size knob from the environment (`CRASH_CYCLES`, `RSS_BIDDERS`…):
/// `default` when unset. A value that is not a whole number, or is below
/// `min` (0 cycles or 0 bidders would let the test pass having tested
/// nothing), fails the test by name rather than being ignored.
pub(crate) fn knob(name: &str, default: u64, min: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= min => n,
            Ok(n) => panic!("{name}={n} is below {min}: the test would test nothing; unset it or give at least {min}"),
            Err(_) => panic!("{name}='{v}' is not a whole number"),
        },
    }
}

/// The fuzz tests' seed: `FUZZ_SEED` (`.ci/run` draws one per run and
/// prints it) or one drawn here; a failure names it so that it can be replayed.
pub(crate) fn fuzz_seed() -> u64 {
    match std::env::var("FUZZ_SEED") {
        Ok(v) => v.trim().parse::<u64>().unwrap_or_else(|_| panic!("FUZZ_SEED='{v}' is not a whole number")),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        }
    }
}

/// Every RPC of the public API, as `/package.Service/Method` paths, read
/// from the descriptor set the build keeps for reflection (the `.proto`
/// files): a test that walks these covers an RPC added later without being
/// told.
pub(crate) fn rpc_paths() -> Vec<String> {
    use prost::Message;
    let set =
        prost_types::FileDescriptorSet::decode(credit_tender::proto::FILE_DESCRIPTOR_SET).expect("the build's descriptor set decodes");
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                out.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    assert!(out.len() >= 17, "the descriptor set lists only {} RPCs: {out:?}", out.len());
    out
}

/// Every backend available here: SQLite always, PostgreSQL when configured.
pub(crate) async fn backends() -> Vec<TestDb> {
    let mut v = vec![sqlite_db()];
    v.extend(pg_db().await);
    v
}

/// How a test app is configured; `AppOptions::default()` is what `serve` runs.
#[derive(Default)]
pub(crate) struct AppOptions {
    pub cache: credit_tender::cache::CacheConfig,
    pub server: ServerOptions,
}

/// Opens (and migrates) a test database's store.
pub(crate) async fn open(db: &TestDb) -> Store {
    Store::open(&db.url).await.unwrap()
}

/// The one way tests start the service: over `store` on 127.0.0.1:0, with
/// typed clients connected to it; stopped when dropped.
pub(crate) async fn spawn_app(store: Store, mut options: AppOptions) -> TestServer {
    // Only the overload tests (with the wait's test hook) judge the wait: on a
    // shared machine a test's thread can be descheduled for longer than the
    // 5 ms target, and no other test may fail for that.
    // Likewise the limit on new statements made at once: tests that make
    // many at once test other things.
    if !options.server.queue_wait_test_hook {
        options.server.queue_target = options.server.queue_target.max(std::time::Duration::from_secs(10));
        options.server.max_signing = options.server.max_signing.max(4096);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let policies = PolicySet::load(store.clone(), None).await.unwrap();
    let keys = SharedKeyring::new(Keyring::ephemeral(), None);
    let state = AppState::new(store.clone(), Rules::shipped(), policies, keys.clone(), options.cache).await.unwrap();
    let cache = state.cache.clone();
    let handle = tokio::spawn(server::run(listener, state, options.server, async {
        let _ = rx.await;
    }));
    // Lazy: the harness connects at its first call (a test may want the port to itself).
    let channel = endpoint(addr).connect_lazy();
    TestServer {
        addr,
        store,
        keys,
        cache,
        data: CreditDataServiceClient::new(channel.clone()),
        tenders: TenderServiceClient::new(channel.clone()),
        assess: AssessmentServiceClient::new(channel.clone()),
        channel,
        stop: Some(tx),
        handle: Some(handle),
        _db: None,
    }
}

/// An app over a fresh SQLite store that lives as long as the app.
///
/// `spawn_app(open(&sqlite_db()).await, …)` is a bug: the temporary
/// `TestDb` is dropped at the end of that statement and its directory
/// removed under the running server, which then (rightly) finds its store
/// lost and answers 503 at whatever moment it next checks.
pub(crate) async fn spawn_sqlite_app(options: AppOptions) -> TestServer {
    let db = sqlite_db();
    let mut server = spawn_app(open(&db).await, options).await;
    server._db = Some(db);
    server
}

/// A running test app.
pub(crate) struct TestServer {
    pub addr: std::net::SocketAddr,
    #[allow(dead_code)] // for tests that reach past the API
    pub store: Store,
    pub keys: SharedKeyring,
    /// This replica's cache, for awaiting the versions it has applied.
    #[allow(dead_code)]
    pub cache: Arc<Cache>,
    pub channel: Channel,
    #[allow(dead_code)]
    pub data: CreditDataServiceClient<Channel>,
    #[allow(dead_code)]
    pub tenders: TenderServiceClient<Channel>,
    #[allow(dead_code)]
    pub assess: AssessmentServiceClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The database the app serves, when the app owns it (its directory
    /// lives as long as the app).
    _db: Option<TestDb>,
}

impl TestServer {
    pub(crate) async fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(crate) async fn credit_data(&self) -> CreditDataServiceClient<Channel> {
        self.data.clone()
    }

    /// Waits (up to 10 s) until this replica has applied data version `v`.
    #[allow(dead_code)]
    pub(crate) async fn applied(&self, v: u64) {
        let mut versions = self.cache.applied_versions();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), versions.wait_for(|a| *a >= v)).await;
        assert!(seen.is_ok_and(|r| r.is_ok()), "replica at {addr} has not applied data version {v} within 10 s", addr = self.addr);
    }

    /// Stops the server and waits for it to finish.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs the `credit-tender` binary.
pub(crate) fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credit-tender")).args(args).env("RUST_LOG", "warn").output().expect("run credit-tender")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes `content` to `dir/name` and returns the path.
/// The `[[key]]` table of the transparency log's key, `log.pk8` in `dir`
/// (generated on first use).
pub(crate) fn log_key_toml(dir: &Path) -> &'static str {
    let path = dir.join("log.pk8");
    if !path.exists() {
        assert!(cli(&["keygen", "--out", path.to_str().unwrap()]).status.success());
    }
    "\n[[key]]\nfile = \"log.pk8\"\nrole = \"log\"\nstatus = \"active\"\n"
}

/// A keys file in `dir` with a fresh statement key (`k.pk8`) and log key.
pub(crate) fn keys_file(dir: &Path) -> PathBuf {
    assert!(cli(&["keygen", "--out", dir.join("k.pk8").to_str().unwrap()]).status.success());
    let log = log_key_toml(dir);
    file(dir, "keys.toml", format!("[[key]]\nfile = \"k.pk8\"\nstatus = \"active\"\n{log}"))
}

pub(crate) fn file(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Everything stored, as comparable text: proves a failed write changed nothing.
pub(crate) async fn snapshot(url: &str) -> Vec<String> {
    use sqlx::Row;
    let q = "SELECT 'v' || CAST(version AS TEXT) || ':' || source FROM data_versions \
             UNION ALL SELECT record_id || '@' || CAST(version AS TEXT) || ':' || digest FROM records \
             UNION ALL SELECT 'c' || CAST(version AS TEXT) || ':' || credit_code FROM changed_codes";
    let rows: Vec<String> = if url.starts_with("sqlite:") {
        // One connection, closed before returning: a SQLite connection left
        // to close on its own may be the last one, and delete the WAL, at any
        // later moment. A pool's close can return before its connections'
        // worker threads have closed their files; a connection's close
        // returns once its worker has (sqlx's Shutdown command answers after
        // dropping the handle).
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows = sqlx::query(q).fetch_all(&mut conn).await.unwrap().iter().map(|r| r.get::<String, _>(0)).collect();
        conn.close().await.unwrap();
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query(q).fetch_all(&pool).await.unwrap().iter().map(|r| r.get::<String, _>(0)).collect();
        pool.close().await;
        rows
    };
    let mut rows = rows;
    rows.sort();
    rows
}

// Real codes from DOMAIN.md, checksum-valid.
pub(crate) const CODE_A: &str = "914403001922038216";
pub(crate) const CODE_B: &str = "91440300192317458F";
pub(crate) const CODE_C: &str = "91110000802100433B";
pub(crate) const PILOT: &str = "91350100M0001TGQXM";

/// GET `path` over plain HTTP/1.1: (status, body).
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let raw = bounded(format!("GET {path}"), raw_get(addr, path, "")).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// GET `path` over plain HTTP/1.1: (status, body bytes).
pub(crate) async fn http_get_bytes(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let raw = bounded(format!("GET {path}"), raw_get(addr, path, "")).await;
    let status = std::str::from_utf8(&raw[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| raw[i + 4..].to_vec()).unwrap_or_default();
    (status, body)
}

/// GET `path` over plain HTTP/1.1 with `extra` header lines (each ending
/// in CRLF), unbounded (callers bound it): the raw answer.
pub(crate) async fn raw_get(addr: std::net::SocketAddr, path: &str, extra: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    raw
}

/// Writes `v` as JSON to `dir/name`; its path.
pub(crate) fn json_file<T: serde::Serialize>(dir: &Path, name: &str, v: &T) -> PathBuf {
    file(dir, name, serde_json::to_vec_pretty(v).unwrap())
}

/// The `credit-tender` binary serving on a free loopback port; killed when dropped.
pub(crate) struct CliServer {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// A plain channel; it connects at its first call (TLS servers need their own).
    pub channel: Channel,
    /// The server's log lines (stderr), as they come.
    log: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl CliServer {
    /// Runs `credit-tender ARGS --listen 127.0.0.1:0` and connects once it
    /// says on stdout where it listens.
    pub(crate) async fn spawn(args: &[&str]) -> CliServer {
        CliServer::spawn_limited(args, None).await
    }

    /// The same, with at most `open_files` file descriptors (`ulimit -n`).
    pub(crate) async fn spawn_limited(args: &[&str], open_files: Option<u32>) -> CliServer {
        use std::io::BufRead;
        let bin = env!("CARGO_BIN_EXE_credit-tender");
        let mut command = match open_files {
            None => Command::new(bin),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
        };
        command.args(args).args(["--listen", "127.0.0.1:0"]);
        // As in spawn_app: a descheduled test must not be shed.
        if !args.contains(&"--queue-target-ms") {
            command.args(["--queue-target-ms", "10000"]);
        }
        let mut child = command
            .env("RUST_LOG", "warn,credit_tender::server=info,credit_tender::log=debug,credit_tender::store=debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (log_tx, log) = tokio::sync::mpsc::unbounded_channel();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || stderr.lines().map_while(Result::ok).try_for_each(|l| log_tx.send(l)));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut lines = stdout.lines().map_while(Result::ok);
            let addr = lines.find_map(|l| l.strip_prefix("listening on ").map(str::to_owned));
            let _ = addr_tx.send(addr);
            lines.for_each(drop);
        });
        let addr = match tokio::time::timeout(std::time::Duration::from_secs(60), addr_rx).await {
            Ok(Ok(Some(addr))) => addr,
            _ => {
                let _ = child.kill();
                panic!("credit-tender {args:?} exited or did not say where it listens: {:?}", child.wait());
            }
        };
        let channel = endpoint(&addr).connect_lazy();
        let addr = addr.parse().expect("the printed address parses");
        CliServer { child, addr, channel, log: tokio::sync::Mutex::new(log) }
    }

    /// Waits (up to 30 s) for the server to log a checkpoint of at least `size` leaves.
    pub(crate) async fn checkpoint_logged(&self, size: u64) {
        let published = async {
            loop {
                let line = self.log_line("checkpoint published").await;
                let published: u64 =
                    line.split("size=").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
                if published >= size {
                    return;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), published)
            .await
            .unwrap_or_else(|_| panic!("no checkpoint of {size} leaves logged within 30 s"));
    }

    /// The log lines (stderr) that have arrived so far, without waiting.
    #[allow(dead_code)]
    pub(crate) async fn lines_so_far(&self) -> Vec<String> {
        let mut log = self.log.lock().await;
        std::iter::from_fn(|| log.try_recv().ok()).collect()
    }

    /// Waits (up to 10 s) for a log line containing `needle`; returns it.
    pub(crate) async fn log_line(&self, needle: &str) -> String {
        let mut log = self.log.lock().await;
        let found = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(line) = log.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        });
        found.await.ok().flatten().unwrap_or_else(|| panic!("no log line with '{needle}'"))
    }
}

impl Drop for CliServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// English as a sentence has it: two or more lower-case words in a row
/// ("credit code", "allow-list", "no dynamic D in force").
pub(crate) fn english_phrases(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let word_at = |i: usize| (i..chars.len()).take_while(|&j| chars[j].is_ascii_lowercase()).count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_lowercase() || (i > 0 && chars[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let (start, mut at, mut words, mut end) = (i, i, 0, i);
        loop {
            let n = word_at(at);
            if n < 2 || chars.get(at + n).is_some_and(|c| c.is_ascii_alphanumeric()) {
                break;
            }
            words += 1;
            end = at + n;
            match chars.get(end) {
                Some(' ' | '-') if chars.get(end + 1).is_some_and(|c| c.is_ascii_lowercase()) => at = end + 1,
                _ => break,
            }
        }
        if words >= 2 {
            out.push(chars[start..end].iter().collect());
        }
        i = end.max(start + 1);
    }
    out
}

/// Asserts that an HTTP error answer reads Chinese first, as a person or
/// the page's script shows it: an HTML page's heading and first paragraph,
/// or a text's first line, begin with a Chinese character and hold no
/// English phrase (machine codes in capitals and ids are not phrases).
pub(crate) fn assert_chinese_first(what: &str, body: &str) {
    let text = if body.trim_start().to_ascii_lowercase().starts_with("<!doctype") {
        let inner = |tag: &str| {
            let open = format!("<{tag}>");
            let at = body.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("{what}: no <{tag}> in {body}"));
            body[at..].split('<').next().unwrap().to_owned()
        };
        format!("{}\n{}", inner("h1"), inner("p"))
    } else {
        body.lines().next().unwrap_or("").to_owned()
    };
    let first = text.trim_start().chars().next();
    assert!(first.is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{what}: does not begin in Chinese: {body:?}");
    let english = english_phrases(&text);
    assert!(english.is_empty(), "{what}: English in the answer: {english:?} in {text:?}");
}

/// An HTTP/1.1 answer as a raw client reads it.
#[allow(dead_code)]
pub(crate) struct Http1Answer {
    pub status: u16,
    /// The head's header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

#[allow(dead_code)]
impl Http1Answer {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request over a fresh plain HTTP/1.1 connection (bounded by
/// [`CALL_BOUND`]): `method path` with `headers` and `body`.
#[allow(dead_code)]
pub(crate) async fn http1(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Http1Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = bounded(format!("{method} {path} over HTTP/1.1"), exchange).await;
    let end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunked(&body);
    }
    Http1Answer { status, headers, body }
}

/// A chunked HTTP/1.1 body's bytes (RFC 9112 §7.1), trailers dropped.
fn dechunked(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).expect("a hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
