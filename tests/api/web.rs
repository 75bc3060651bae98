//! The committee's page: handlers over HTTP, and the real page in headless
//! Chromium through WebDriver.

use crate::assessment::{code, terms};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use credit_tender::server::ServerOptions;
use credit_tender::store::Store;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn pages_escape_data_and_say_404() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let channel = server.channel().await;
    let c = code(201);
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(channel.clone());
    data.put_records(pb::PutRecordsRequest {
        records: vec![to_proto(evaluation_json("e", &c, json!({"entity_name": "<script>alert(1)</script>测试公司"})))],
        source: String::new(),
    })
    .await
    .unwrap();
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(channel);
    let mut t = terms("440300", "2026-12-15");
    t.title = "<b onmouseover=x>测试</b>".into();
    // Tender ids are ASCII letters, digits and -_.: (an id with markup is refused at registration).
    let refused = tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T&1".into(),
            terms: Some(t.clone()),
            policy_id: "national-template".into(),
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
    tenders
        .register_tender(pb::RegisterTenderRequest { tender_id: "T.1".into(), terms: Some(t), policy_id: "national-template".into() })
        .await
        .unwrap();
    tenders
        .register_bid(pb::RegisterBidRequest { tender_id: "T.1".into(), bidder: Some(pb::Bidder { credit_codes: vec![c.clone()] }) })
        .await
        .unwrap();

    let (status, list) = http_get(server.addr, "/").await;
    assert_eq!(status, 200);
    assert!(list.contains("&lt;b onmouseover=x&gt;测试&lt;/b&gt;") && !list.contains("<b onmouseover"), "{list}");
    assert!(list.contains("href=\"/tenders/T.1\"") && list.contains(">T.1<"), "{list}");

    let (status, page) = http_get(server.addr, "/tenders/T.1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;测试公司"), "{page}");
    assert!(!page.contains("<script>alert(1)"), "a firm name reached the page as markup");
    assert!(page.contains("data-tender=\"T.1\""));
    assert!(page.contains("<script src=\"/assets/committee.js\" defer></script>"));
    for asset in ["/assets/committee.js", "/assets/committee.css"] {
        let (status, body) = http_get(server.addr, asset).await;
        assert!(status == 200 && body.len() > 1000, "{asset}");
        assert!(!body.contains("http://") && !body.contains("https://"), "{asset} fetches from outside");
    }
    // The Ed25519 fallback is @noble/ed25519 3.2.0's index.js, byte for byte
    // (its only URLs and its one `import` are in comments), and loads nothing.
    let (status, noble) = http_get(server.addr, "/assets/noble-ed25519.js").await;
    assert_eq!(status, 200);
    assert_eq!(hex::encode(ring::digest::digest(&ring::digest::SHA256, noble.as_bytes())), credit_tender::web::NOBLE_ED25519_SHA256);
    assert!(!noble.contains("fetch(") && !noble.contains("import(") && !noble.contains("XMLHttpRequest"), "the fallback loads nothing");
    // The SHA-256 fallback is @noble/hashes 2.4.0's sha2.js and the three
    // files it imports, byte for byte, each as recorded; they load nothing else.
    for (name, _, sha256) in credit_tender::web::NOBLE_HASHES {
        let (status, text) = http_get(server.addr, &format!("/assets/noble-hashes/{name}")).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes())), sha256, "{name} as published");
        assert!(!text.contains("fetch(") && !text.contains("import(") && !text.contains("XMLHttpRequest"), "{name} loads nothing");
        for import in text.lines().filter(|l| l.starts_with("import ")) {
            let from = import.rsplit("from ").next().unwrap().trim_matches(|c| c == '"' || c == ';' || c == '\'');
            let target = from.strip_prefix("./").unwrap_or_else(|| panic!("{name}: an import from outside: {import}"));
            assert!(credit_tender::web::NOBLE_HASHES.iter().any(|(n, _, _)| *n == target), "{name} imports {target}, which is not served");
        }
    }

    let (status, page) = http_get(server.addr, "/tenders/NOPE").await;
    assert_eq!(status, 404);
    assert!(page.contains("未找到该招标项目") && page.contains("NOPE"), "{page}");
    let (status, _) = http_get(server.addr, "/api/tenders/NOPE/statements").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn store_down_is_an_error_page_not_an_empty_table() {
    let Some(db) = pg_db().await else { return };
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let name = db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").unwrap()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
    let (status, page) = http_get(server.addr, "/").await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("信用数据暂时无法读取") && page.contains("这不表示没有投标人"), "{page}");
    let (status, page) = http_get(server.addr, "/tenders/ANY").await;
    assert_eq!(status, 503, "{page}");
}

/// A WebDriver session on chromedriver, both stopped when dropped.
pub(crate) struct Browser {
    port: u16,
    session: String,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends everything the browser started: the WebDriver session first (so
    /// chromedriver quits Chromium and its helpers), then chromedriver's
    /// process group, then whatever else carries this browser's mark
    /// (Chromium's crash handlers leave the group with setsid and outlive
    /// the browser for a while).
    fn drop(&mut self) {
        if !self.session.is_empty() {
            wd_blocking(self.port, "DELETE", &format!("/session/{}", self.session));
        }
        crate::harness::kill(-i64::from(self.driver.id()));
        let _ = self.driver.wait();
        for p in self.processes() {
            crate::harness::kill(i64::from(p.pid));
        }
    }
}

/// A WebDriver command from a destructor: blocking, each step bounded.
fn wd_blocking(port: u16, method: &str, path: &str) {
    use std::io::{Read, Write};
    let bound = Some(Duration::from_secs(20));
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return };
    let _ = (s.set_read_timeout(bound), s.set_write_timeout(bound));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return;
    }
    // The answer comes once the session (and its browser) has ended.
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

/// One WebDriver command, bounded by [`CALL_BOUND`]: a browser that stops
/// answering fails the test instead of hanging it.
async fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    tokio::time::timeout(CALL_BOUND, wd_unbounded(port, method, path, body))
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer within {CALL_BOUND:?}"))
}

async fn wd_unbounded(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver may keep
    // the connection open, so waiting for EOF could wait forever.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection early");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .expect("chromedriver answers with Content-Length");
            break (i + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection early");
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("webdriver answered {text}: {e}"))
}

/// The variable every process of one browser carries (chromedriver, and
/// through it Chromium and its helpers): its profile directory.
const BROWSER_MARK: &str = "CREDIT_TENDER_TEST_BROWSER";

impl Browser {
    /// This browser's live processes: chromedriver and all it started.
    pub(crate) fn processes(&self) -> Vec<crate::harness::Proc> {
        crate::harness::marked(BROWSER_MARK, &self._profile.path().display().to_string())
    }

    pub(crate) async fn start() -> Option<Browser> {
        Browser::start_with(&[]).await
    }

    /// A browser with extra Chromium flags (e.g. host mapping, a trusted key).
    pub(crate) async fn start_with(extra: &[String]) -> Option<Browser> {
        let required = std::env::var("CREDIT_TENDER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
        let driver = std::env::var("CHROMEDRIVER")
            .ok()
            .or_else(|| std::path::Path::new("/usr/bin/chromedriver").exists().then(|| "/usr/bin/chromedriver".to_owned()));
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(!required, "CREDIT_TENDER_REQUIRE_BROWSER=1 but chromium or chromedriver is missing");
            crate::harness::skipped(
                crate::harness::Needs::Browser,
                "chromium or chromedriver is missing: install chromium and chromium-driver",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let profile = tempfile::tempdir().unwrap();
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .env(BROWSER_MARK, profile.path())
            // Its own process group, so that it and what it starts can be ended together.
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // chromedriver says on stdout when it accepts sessions.
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let started = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = stdout.lines().map_while(Result::ok);
            let ok = lines.any(|l| l.contains("started successfully"));
            std::thread::spawn(move || lines.for_each(drop));
            ok
        });
        let started = tokio::time::timeout(Duration::from_secs(20), started).await;
        assert!(matches!(started, Ok(Ok(true))), "chromedriver did not start");
        let mut browser = Browser { port, session: String::new(), driver: child, _profile: profile };
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1366,768",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", browser._profile.path().display()));
        args.extend_from_slice(extra);
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": args
        }}}});
        let r = wd(port, "POST", "/session", Some(caps)).await;
        browser.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_owned();
        Some(browser)
    }

    pub(crate) async fn goto(&self, url: &str) {
        wd(self.port, "POST", &format!("/session/{}/url", self.session), Some(json!({"url": url}))).await;
    }

    /// Runs an async script; its last argument is the callback for the result.
    pub(crate) async fn eval_async(&self, script: &str) -> Value {
        let r =
            wd(self.port, "POST", &format!("/session/{}/execute/async", self.session), Some(json!({"script": script, "args": []}))).await;
        r["value"].clone()
    }

    pub(crate) async fn eval(&self, script: &str) -> Value {
        let r =
            wd(self.port, "POST", &format!("/session/{}/execute/sync", self.session), Some(json!({"script": script, "args": []}))).await;
        r["value"].clone()
    }

    /// Waits until the page says it has verified and rendered everything:
    /// an async script that resolves when `body[data-ready]` turns "1".
    pub(crate) async fn ready(&self) {
        let script = "const done = arguments[arguments.length - 1];\
            const ready = () => document.body && document.body.dataset.ready === '1';\
            if (ready()) { done(true); return; }\
            new MutationObserver((_, o) => { if (ready()) { o.disconnect(); done(true); } })\
              .observe(document.documentElement, { attributes: true, childList: true, subtree: true });";
        let path = format!("/session/{}/execute/async", self.session);
        let r = wd(self.port, "POST", &path, Some(json!({"script": script, "args": []}))).await;
        assert_eq!(r["value"], json!(true), "page never became ready: {r}");
    }

    /// Waits until the page has checked every row against the transparency
    /// log (`body[data-logged]` set); how many rows it found logged.
    pub(crate) async fn logged(&self) -> u64 {
        let script = "const done = arguments[arguments.length - 1];\
            const logged = () => document.body && document.body.dataset.logged !== undefined;\
            if (logged()) { done(Number(document.body.dataset.logged)); return; }\
            new MutationObserver((_, o) => { if (logged()) { o.disconnect(); done(Number(document.body.dataset.logged)); } })\
              .observe(document.documentElement, { attributes: true, childList: true, subtree: true });";
        let path = format!("/session/{}/execute/async", self.session);
        let r = wd(self.port, "POST", &path, Some(json!({"script": script, "args": []}))).await;
        r["value"].as_u64().unwrap_or_else(|| panic!("the page never finished its log checks: {r}"))
    }

    /// The CSV the page offers, as rows of cells (its BOM removed).
    pub(crate) async fn csv(&self) -> Vec<Vec<String>> {
        let text = self
            .eval_async(
                "const done = arguments[arguments.length - 1]; fetch(document.getElementById('csv').href).then(r => r.text()).then(done)",
            )
            .await;
        csv_cells(text.as_str().unwrap_or_else(|| panic!("no CSV: {text}")))
    }

    pub(crate) async fn rows(&self) -> Vec<(String, Vec<String>)> {
        let v = self
            .eval("return [...document.querySelectorAll('#table tbody tr.row, #table tbody tr.invalid')].map(tr => [tr.dataset.seq, [...tr.cells].map(td => td.innerText.trim())])")
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// Runs `source` in every document this browser opens from now on,
    /// before the page's own scripts (CDP `Page.addScriptToEvaluateOnNewDocument`).
    pub(crate) async fn init_script(&self, source: &str) {
        let body = json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}});
        let r = wd(self.port, "POST", &format!("/session/{}/goog/cdp/execute", self.session), Some(body)).await;
        assert!(r["value"]["identifier"].is_string(), "init script not installed: {r}");
    }

    /// Runs one Chrome DevTools Protocol command in this browser.
    pub(crate) async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let body = json!({"cmd": cmd, "params": params});
        let r = wd(self.port, "POST", &format!("/session/{}/goog/cdp/execute", self.session), Some(body)).await;
        assert!(r["value"].is_object(), "{cmd} failed: {r}");
        r["value"].clone()
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let r = wd(self.port, "GET", &format!("/session/{}/screenshot", self.session), None).await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.decode(r["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// A browser ends every process it started: once dropped, nothing of
/// chromedriver's process tree (Chromium, its renderers, its crash handler)
/// is left running. Processes that are not this test's children cannot be
/// awaited, so their end is looked for, every 20 ms for up to 10 s.
#[tokio::test]
async fn a_browser_leaves_no_process_behind() {
    let Some(browser) = Browser::start().await else { return };
    browser.goto("data:text/html,<p>x</p>").await;
    let tree = browser.processes();
    for name in ["chromedriver", "chromium", "chrome_crashpad"] {
        assert!(tree.iter().any(|p| p.name.starts_with(&name[..name.len().min(15)])), "no {name} among the browser's processes: {tree:?}");
    }
    drop(browser);
    let mut left = tree.clone();
    for _ in 0..500 {
        left.retain(|p| crate::harness::alive(p.pid));
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // a non-child's end cannot be awaited
    }
    assert!(left.is_empty(), "still running 10 s after the browser was dropped: {left:?}");
}

fn yuan(fen: i64) -> String {
    credit_tender::domain::Fen(fen).to_string()
}

#[tokio::test]
async fn the_committee_page_verifies_every_row_in_the_browser() {
    let Some(browser) = Browser::start().await else { return };
    // The demo: its data, its tenders and bids.
    let db = sqlite_db();
    let store = Store::open(&db.url).await.unwrap();
    let rules = credit_tender::rules::Rules::shipped();
    credit_tender::demo::load(&store, &rules).await.unwrap();
    let policies = credit_tender::service::PolicySet::load(store.clone(), None).await.unwrap();
    credit_tender::demo::register_tenders(&store, &policies).await.unwrap();
    let options = ServerOptions { web_test_hooks: true, ..ServerOptions::default() };
    let server = spawn_app(store, AppOptions { server: options, ..AppOptions::default() }).await;
    let tender = "DEMO-SX-2026-001";
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(server.channel().await);
    let table =
        assess.assess_tender(pb::AssessTenderRequest { tender_id: tender.into(), ..Default::default() }).await.unwrap().into_inner();
    assert!(table.bids.len() >= 5);

    browser.goto(&format!("http://{}/tenders/{tender}", server.addr)).await;
    browser.ready().await;
    let rows = browser.rows().await;
    assert_eq!(rows.len(), table.bids.len(), "{rows:?}");
    for (bid, (seq, cells)) in table.bids.iter().zip(&rows) {
        let s = bid.assessment.as_ref().unwrap().statement.as_ref().unwrap();
        assert_eq!(seq, &bid.bid.as_ref().unwrap().sequence.to_string(), "bid order");
        assert!(cells[1].contains(&s.members[0].credit_code), "{cells:?}");
        assert_eq!(cells[2], s.applied_grade, "grade of bid {seq}");
        assert_eq!(cells[4], format!("{:.2}", s.qualification_points));
        assert_eq!(cells[5], format!("{:.2}", s.evaluation_points));
        assert_eq!(cells[6], format!("{:.2}", s.total_points));
        assert!(cells[7].starts_with(&yuan(s.deposit_owed_fen)), "deposit of bid {seq}: {} vs {}", cells[7], yuan(s.deposit_owed_fen));
        assert!(cells[9].starts_with(if s.eligible { "否" } else { "排除" }), "bid {seq}: {cells:?}");
        assert!(cells[10].starts_with(if s.qualified { "通过" } else { "不通过" }), "bid {seq}: {cells:?}");
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq}");
    }
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("全部结论签名有效"), "{status}");
    // Each row is then proven to be in the transparency log (inclusion proof
    // against a checkpoint signed by the log key, checked in the browser).
    assert_eq!(browser.logged().await, table.bids.len() as u64);
    for (bid, (seq, cells)) in table.bids.iter().zip(&browser.rows().await) {
        let index = bid.assessment.as_ref().unwrap().log_index.unwrap();
        assert_eq!(cells.last().unwrap(), &format!("#{index} 已入账"), "bid {seq}");
    }
    // A row opens its evidence.
    let evidence = browser
        .eval("const r = document.querySelector('#table tbody tr.row'); r.click(); return r.nextElementSibling.hidden ? '' : r.nextElementSibling.innerText")
        .await;
    assert!(evidence.as_str().unwrap().contains("数据版本"), "{evidence}");
    // Sorting by total puts the highest last after one click (ascending).
    browser.eval("document.querySelector('th[data-key=total]').click(); return 0").await;
    let sorted = browser.rows().await;
    let totals: Vec<f64> = sorted.iter().map(|(_, c)| c[6].parse().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    let csv = browser.eval("return document.getElementById('csv').href").await;
    assert!(csv.as_str().unwrap().starts_with("blob:"), "{csv}");
    // docs/committee-demo.png (the README's picture) is a copy of this shot:
    // run this test, then copy target/screenshots/committee-demo.png there.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/committee-demo.png");
    browser.screenshot(&shot).await;

    // The same tender with one payload altered in transit.
    browser.goto(&format!("http://{}/tenders/{tender}?tamper=2", server.addr)).await;
    browser.ready().await;
    let rows = browser.rows().await;
    for (seq, cells) in &rows {
        let want = if seq == "2" { "签名无效" } else { "签名有效" };
        assert_eq!(cells[cells.len() - 2], want, "bid {seq}: {cells:?}");
    }
    let status =
        browser.eval("return document.getElementById('status').className + ' ' + document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("error") && status.as_str().unwrap().contains("签名无效"), "{status}");
    assert_eq!(browser.logged().await, table.bids.len() as u64 - 1, "the altered statement is not the logged one");
    let rows = browser.rows().await;
    let altered = rows.iter().find(|(seq, _)| seq == "2").unwrap();
    assert_eq!(altered.1.last().unwrap(), "未入账");
    browser.screenshot(&shot.with_file_name("committee-tampered.png")).await;

    // Unknown tender in the browser: the 404 page.
    browser.goto(&format!("http://{}/tenders/NOPE", server.addr)).await;
    let h1 = browser.eval("return document.querySelector('h1').innerText").await;
    assert_eq!(h1, json!("未找到该招标项目"));
}

/// A CSV as the page writes it (RFC 4180: quoted cells, `""` for a quote,
/// CRLF), its byte-order mark removed: rows of cells.
fn csv_cells(text: &str) -> Vec<Vec<String>> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

/// Exact hundredths of a two-decimal cell as the page writes it ("2.50").
fn hundredths(cell: &str) -> i64 {
    let (whole, frac) = cell.split_once('.').unwrap_or_else(|| panic!("'{cell}' has no two decimals"));
    assert_eq!(frac.len(), 2, "'{cell}'");
    whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

/// Issue 20's first case on the committee's page: a red-listed AA firm, the
/// same AA without a list, and both as a consortium. The per-stage points in
/// the table the browser renders and in the CSV it offers add up to each
/// row's total, each within the cap, as in the signed statements.
#[tokio::test]
async fn the_committee_table_and_csv_keep_per_stage_points_within_the_cap() {
    let Some(browser) = Browser::start().await else { return };
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let channel = server.channel().await;
    let (r, c) = (code(215), code(216));
    let aa = |id: &str, firm: &str| {
        evaluation_json(
            id,
            firm,
            json!({"issuer": "440000", "grade": "AA", "score": null, "year": 2021,
            "valid_from": "2022-01-01", "valid_to": "2022-12-31"}),
        )
    };
    let mut red = list_entry_json("red-r", &r, "transport_red_list");
    red["listed_on"] = json!("2021-12-01");
    red["expires_on"] = json!("2024-11-30");
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(channel.clone());
    let records = [aa("aa-r", &r), red, aa("aa-c", &c)].into_iter().map(to_proto).collect();
    data.put_records(pb::PutRecordsRequest { records, source: String::new() }).await.unwrap();
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(channel.clone());
    let t = terms("440300", "2022-06-15");
    tenders
        .register_tender(pb::RegisterTenderRequest { tender_id: "T2022".into(), terms: Some(t), policy_id: "national-template".into() })
        .await
        .unwrap();
    for codes in [vec![r.clone()], vec![c.clone()], vec![r.clone(), c.clone()]] {
        let bidder = Some(pb::Bidder { credit_codes: codes });
        tenders.register_bid(pb::RegisterBidRequest { tender_id: "T2022".into(), bidder }).await.unwrap();
    }
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(channel);
    let table =
        assess.assess_tender(pb::AssessTenderRequest { tender_id: "T2022".into(), ..Default::default() }).await.unwrap().into_inner();
    let statements: Vec<&pb::AssessmentStatement> =
        table.bids.iter().map(|b| b.assessment.as_ref().unwrap().statement.as_ref().unwrap()).collect();
    assert_eq!(statements.len(), 3);
    assert_eq!(statements[0].reasons[0].code, "REWARD_TRANSPORT_RED_LIST", "R is rewarded: {:?}", statements[0]);

    browser.goto(&format!("http://{}/tenders/T2022", server.addr)).await;
    browser.ready().await;
    let rows = browser.rows().await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    // A CSV taken while the log checks still run opens with a one-cell note
    // saying so (its 入账 cells read 尚未核验); the points do not depend on it.
    let csv: Vec<Vec<String>> = browser.csv().await.into_iter().skip_while(|row| row.len() == 1).collect();
    let column = |name: &str| csv[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {:?}", csv[0]));
    let (qc, ec, tc) = (column("资格审查加分"), column("评标加分"), column("合计"));
    let lines = &csv[1..];
    assert_eq!(lines.len(), 3, "{csv:?}");
    for ((s, (seq, cells)), line) in statements.iter().zip(&rows).zip(lines) {
        let cap = (s.points_cap * 100.0).round() as i64;
        for (what, q, e, t) in [("table", &cells[4], &cells[5], &cells[6]), ("csv", &line[qc], &line[ec], &line[tc])] {
            let (q, e, t) = (hundredths(q), hundredths(e), hundredths(t));
            assert!(q >= 0 && e >= 0 && q <= cap && e <= cap - q, "{what} bid {seq}: a stage outside its limit: {cells:?} {line:?}");
            assert_eq!(q + e, t, "{what} bid {seq}: the stages add up to the total: {cells:?} {line:?}");
            assert!(t <= cap, "{what} bid {seq}: total above the cap: {cells:?} {line:?}");
            assert_eq!((q, e, t), (100, 200, 300), "{what} bid {seq}: AA fills the cap, with the reward or without");
        }
    }
}

/// The demo server with its tenders registered, the page's test hooks on
/// (`?tamper=N`), and the committee's table of DEMO-SX-2026-001 as gRPC gives it.
async fn demo_for_browser() -> (TestServer, pb::AssessTenderResponse, TestDb) {
    demo_server(ServerOptions { web_test_hooks: true, ..ServerOptions::default() }).await
}

/// The demo server with `options`, and DEMO-SX-2026-001's table as gRPC gives it.
pub(crate) async fn demo_server(options: ServerOptions) -> (TestServer, pb::AssessTenderResponse, TestDb) {
    let db = sqlite_db();
    let store = Store::open(&db.url).await.unwrap();
    let rules = credit_tender::rules::Rules::shipped();
    credit_tender::demo::load(&store, &rules).await.unwrap();
    let policies = credit_tender::service::PolicySet::load(store.clone(), None).await.unwrap();
    credit_tender::demo::register_tenders(&store, &policies).await.unwrap();
    let server = spawn_app(store, AppOptions { server: options, ..AppOptions::default() }).await;
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(server.channel().await);
    let request = pb::AssessTenderRequest { tender_id: DEMO_TENDER.into(), ..Default::default() };
    let table = assess.assess_tender(request).await.unwrap().into_inner();
    assert!(table.bids.len() >= 5);
    (server, table, db)
}

pub(crate) const DEMO_TENDER: &str = "DEMO-SX-2026-001";

/// Makes WebCrypto refuse Ed25519 as a Chromium before 137 does (and the
/// domestic browsers built on one): importKey and verify reject the
/// algorithm as unknown; SHA-256 and SHA-512 still work.
const NO_WEBCRYPTO_ED25519: &str = r#"(() => {
  const ed = alg => String(typeof alg === "string" ? alg : alg && alg.name).toLowerCase() === "ed25519";
  for (const [m, at] of [["importKey", 2], ["verify", 0], ["generateKey", 0]]) {
    const orig = SubtleCrypto.prototype[m];
    SubtleCrypto.prototype[m] = function (...args) {
      return ed(args[at]) ? Promise.reject(new DOMException("Algorithm: Unrecognized name", "NotSupportedError")) : orig.apply(this, args);
    };
  }
})();"#;

/// Takes WebCrypto away altogether, as on a plain http:// intranet address.
const NO_WEBCRYPTO: &str = "Object.defineProperty(Crypto.prototype, 'subtle', { get() { return undefined; }, configurable: true });";

#[test]
fn english_phrases_are_found_and_identifiers_are_not() {
    assert_eq!(english_phrases("无。no dynamic D in force"), vec!["no dynamic", "in force"]);
    assert_eq!(english_phrases("见 allow-list 与 credit code"), vec!["allow-list", "credit code"]);
    assert!(english_phrases("DEMO-SX-2026-001 sha256:ab12 签名有效 eval:440000:highway_construction").is_empty());
}

/// Every identifier the statements carry (record ids, codes, keys, document
/// numbers): these are data, not sentences, and are taken out of the page's
/// text before it is searched for English.
fn identifiers(table: &pb::AssessTenderResponse) -> Vec<String> {
    let mut ids = Vec::new();
    for bid in &table.bids {
        let a = bid.assessment.as_ref().unwrap();
        let s = a.statement.as_ref().unwrap();
        ids.extend(a.envelope.as_ref().unwrap().signatures.iter().map(|x| x.keyid.clone()));
        ids.extend(s.members.iter().flat_map(|m| [m.credit_code.clone(), m.entity_name.clone()]));
        for g in &s.member_grades {
            ids.extend(g.evidence.iter().flat_map(|e| [e.record_id.clone(), e.document_ref.clone()]));
            ids.extend(g.evidence.iter().flat_map(|e| {
                e.note_params
                    .iter()
                    .filter(|p| p.name == "records")
                    .flat_map(|p| p.value.split(", ").map(str::to_owned).collect::<Vec<_>>())
            }));
        }
        ids.extend(s.reasons.iter().map(|r| r.record_id.clone()));
        ids.extend(s.reasons.iter().flat_map(|r| {
            r.params
                .iter()
                .filter(|p| p.name.contains("number") || p.name.contains("authority") || p.name.contains("kind"))
                .map(|p| p.value.clone())
        }));
        ids.extend(s.warning_details.iter().map(|w| w.record_id.clone()));
    }
    ids.retain(|i| !i.is_empty());
    // Longest first, so that an id containing another is taken out whole.
    ids.sort_by_key(|i| std::cmp::Reverse(i.len()));
    ids
}

/// Issue 22: the committee reads only Chinese. Every row opened, the page's
/// text (table, evidence, reasons, warnings, rule name) has no English
/// phrase once the record ids and codes are taken out; the region is named;
/// a consortium's members each show their grade and source; 排除 and 不通过
/// carry their reason in the row; 入账 does not wrap; and each row's printed
/// line names its log index and the statement's SHA-256.
#[tokio::test]
async fn the_committee_page_speaks_chinese_names_the_region_and_prints_what_verify_checks() {
    let Some(browser) = Browser::start().await else { return };
    let (server, table, _dir) = demo_for_browser().await;
    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.logged().await, table.bids.len() as u64);
    browser.eval("document.querySelectorAll('#table tbody tr.detail').forEach(t => t.hidden = false); return 0").await;
    let text = browser.eval("return document.body.innerText").await.as_str().unwrap().to_owned();
    assert!(text.contains("山西省太原市（140100）"), "the region's name: {text}");
    assert!(text.contains("山西省公路施工招标信用评价应用示例"), "the rules' Chinese name: {text}");
    let mut stripped = text.clone();
    for id in identifiers(&table) {
        stripped = stripped.replace(&id, " ");
    }
    let english = english_phrases(&stripped);
    assert!(english.is_empty(), "English on the committee's page: {english:?}\n{stripped}");
    for phrase in ["allow-list", "credit code", "clean new entrant", "shanxi-highway-construction", "dynamic D", "Unrecognized"] {
        assert!(!stripped.contains(phrase), "'{phrase}' on the page");
    }

    let rows = browser.rows().await;
    for (bid, (seq, cells)) in table.bids.iter().zip(&rows) {
        let s = bid.assessment.as_ref().unwrap().statement.as_ref().unwrap();
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq}");
        if s.members.len() > 1 {
            for (m, g) in s.members.iter().zip(&s.member_grades) {
                assert!(cells[3].contains(&format!("{}：{}级", m.entity_name, g.grade)), "each member's grade against its name: {cells:?}");
            }
        }
        let why = |effect: &str| s.reasons.iter().filter(|r| r.effect == effect).map(|r| r.message_zh.clone()).collect::<Vec<_>>();
        if !s.eligible {
            assert!(
                cells[9].starts_with("排除") && why("exclusion").iter().all(|w| !w.is_empty() && cells[9].contains(w.as_str())),
                "bid {seq}: {cells:?}"
            );
        } else if !s.qualified {
            assert!(
                cells[10].starts_with("不通过") && why("qualification").iter().all(|w| cells[10].contains(w.as_str())),
                "bid {seq}: {cells:?}"
            );
        }
    }
    assert!(
        table.bids.iter().any(|b| !b.assessment.as_ref().unwrap().statement.as_ref().unwrap().eligible),
        "the demo has an excluded bid"
    );
    let wrap = browser.eval("return [...document.querySelectorAll('td.log')].map(td => getComputedStyle(td).whiteSpace)").await;
    assert!(wrap.as_array().unwrap().iter().all(|w| w == "nowrap"), "{wrap}");
    // The printed record: each row's log index and the statement's SHA-256.
    let printed = browser.eval("return [...document.querySelectorAll('tr.printonly')].map(tr => tr.textContent)").await;
    let printed: Vec<String> = serde_json::from_value(printed).unwrap();
    assert_eq!(printed.len(), table.bids.len());
    for (bid, line) in table.bids.iter().zip(&printed) {
        let a = bid.assessment.as_ref().unwrap();
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &a.envelope.as_ref().unwrap().payload));
        assert!(line.contains(&format!("日志序号 {} ", a.log_index.unwrap())) && line.contains(&digest), "{line}");
    }
    let css = browser.eval("return [...document.styleSheets[0].cssRules].map(r => r.cssText).join('\\n')").await;
    assert!(css.as_str().unwrap().contains("tr.printonly { display: table-row; }"), "printed rows are shown in print");

    // The rules' tooltip: their Chinese title and version, not the file's English id.
    let tooltip = browser.eval("return document.querySelector('.facts span[title]').title").await;
    let tooltip = tooltip.as_str().unwrap();
    let policy = &table.bids[0].assessment.as_ref().unwrap().statement.as_ref().unwrap().policy_digest;
    assert_eq!(tooltip, format!("山西省公路施工招标信用评价应用示例，版本 sha256:{}…", &policy[..12]));

    // The CSV has every column the table shows: 等级来源, each member's
    // grade, 提示 and 入账, beside the reasons, log index and SHA-256.
    let csv = browser.csv().await;
    let header = &csv[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    assert_eq!(csv.len(), table.bids.len() + 1, "{csv:?}");
    for ((bid, (seq, cells)), line) in table.bids.iter().zip(&rows).zip(&csv[1..]) {
        let a = bid.assessment.as_ref().unwrap();
        let s = a.statement.as_ref().unwrap();
        assert_eq!(&line[column("序号")], seq);
        assert_eq!(line[column("等级来源")], cells[3], "bid {seq}: the source as the table shows it");
        let members = &line[column("成员信用等级")];
        for (m, g) in s.members.iter().zip(&s.member_grades) {
            assert!(members.contains(&format!("{}（{}）：{}级（", m.entity_name, m.credit_code, g.grade)), "bid {seq}: {members}");
        }
        let warnings: Vec<&str> = s.warning_details.iter().map(|w| w.message_zh.as_str()).collect();
        assert_eq!(warnings.len(), s.warnings.len(), "bid {seq}: every warning has its Chinese");
        assert_eq!(line[column("提示")], warnings.join("；"), "bid {seq}");
        assert_eq!(line[column("入账")], "已入账", "bid {seq}: the CSV is made again once the log checks are done");
        assert_eq!(line[column("日志序号")], a.log_index.unwrap().to_string());
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &a.envelope.as_ref().unwrap().payload));
        assert_eq!(line[column("声明SHA-256")], digest);
    }
    assert!(
        table.bids.iter().any(|b| !b.assessment.as_ref().unwrap().statement.as_ref().unwrap().warnings.is_empty()),
        "the demo has a bid with a warning"
    );
    assert!(
        table.bids.iter().any(|b| b.assessment.as_ref().unwrap().statement.as_ref().unwrap().members.len() > 1),
        "the demo has a consortium"
    );
    let mut text = csv.iter().flatten().cloned().collect::<Vec<_>>().join("\n");
    for id in identifiers(&table) {
        text = text.replace(&id, " ");
    }
    assert!(english_phrases(&text).is_empty(), "English in the CSV: {:?}", english_phrases(&text));
}

/// Issue 22: where WebCrypto has no Ed25519 (Chromium before 137), the page
/// verifies with the vendored @noble/ed25519: every row 签名有效 and 已入账;
/// a payload altered in transit is still 签名无效.
#[tokio::test]
async fn without_webcrypto_ed25519_the_page_verifies_with_the_vendored_fallback() {
    let Some(browser) = Browser::start().await else { return };
    let (server, table, _dir) = demo_for_browser().await;
    browser.init_script(NO_WEBCRYPTO_ED25519).await;
    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return document.body.dataset.verifier").await, json!("noble"));
    let rows = browser.rows().await;
    assert_eq!(rows.len(), table.bids.len());
    for (seq, cells) in &rows {
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq}: {cells:?}");
    }
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("全部结论签名有效"), "{status}");
    assert_eq!(browser.logged().await, table.bids.len() as u64, "log checkpoints verified by the fallback too");

    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}?tamper=2", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return document.body.dataset.verifier").await, json!("noble"));
    for (seq, cells) in &browser.rows().await {
        let want = if seq == "2" { "签名无效" } else { "签名有效" };
        assert_eq!(cells[cells.len() - 2], want, "bid {seq}: {cells:?}");
    }
}

/// The second outside attack on issue 22: with no WebCrypto at all (a
/// plain-HTTP intranet address is not a secure context), the page still
/// verifies every row, in pure JavaScript (@noble/ed25519 with @noble/hashes'
/// SHA-512): 签名有效 and 已入账; a payload altered in transit is 签名无效.
#[tokio::test]
async fn without_webcrypto_the_page_verifies_in_pure_javascript() {
    let Some(browser) = Browser::start().await else { return };
    let (server, table, _dir) = demo_for_browser().await;
    browser.init_script(NO_WEBCRYPTO).await;
    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return typeof crypto.subtle").await, json!("undefined"), "the page ran without WebCrypto");
    assert_eq!(browser.eval("return document.body.dataset.verifier").await, json!("noble-js"));
    let rows = browser.rows().await;
    assert_eq!(rows.len(), table.bids.len());
    for (seq, cells) in &rows {
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq}: {cells:?}");
    }
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("全部结论签名有效"), "{status}");
    assert_eq!(browser.logged().await, table.bids.len() as u64, "log checkpoints verified in pure JavaScript too");
    let csv = browser.csv().await;
    assert!(csv[0][0] == "序号", "no warning line when every row was checked: {csv:?}");
    let column = |name: &str| csv[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {:?}", csv[0]));
    assert!(csv[1..].iter().all(|r| r[column("签名")] == "签名有效" && r[column("入账")] == "已入账"), "{csv:?}");
    // The statement's SHA-256 (the vendored @noble/hashes) in the printed record and the CSV alike.
    let printed = browser.eval("return [...document.querySelectorAll('tr.printonly')].map(tr => tr.textContent)").await;
    let printed: Vec<String> = serde_json::from_value(printed).unwrap();
    for ((bid, line), row) in table.bids.iter().zip(&printed).zip(&csv[1..]) {
        let payload = &bid.assessment.as_ref().unwrap().envelope.as_ref().unwrap().payload;
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, payload));
        assert!(line.contains(&format!("声明 SHA-256 {digest}")), "{line}");
        assert_eq!(row[column("声明SHA-256")], digest, "{row:?}");
    }

    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}?tamper=2", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return document.body.dataset.verifier").await, json!("noble-js"));
    for (seq, cells) in &browser.rows().await {
        let want = if seq == "2" { "签名无效" } else { "签名有效" };
        assert_eq!(cells[cells.len() - 2], want, "bid {seq}: {cells:?}");
    }
}

/// Issue 22: where nothing can be verified (no WebCrypto, and the vendored
/// fallback cannot be loaded, as in a browser without BigInt or with the
/// assets blocked), the page says 此浏览器无法核验签名, marks no row 签名无效,
/// and the CSV says in the file that its rows were not checked.
#[tokio::test]
async fn where_no_verification_is_possible_the_page_says_so_and_marks_nothing_invalid() {
    let Some(browser) = Browser::start().await else { return };
    let (server, table, _dir) = demo_for_browser().await;
    browser.init_script(NO_WEBCRYPTO).await;
    browser.cdp("Network.enable", json!({})).await;
    browser.cdp("Network.setBlockedURLs", json!({"urls": ["*/assets/noble-*"]})).await;
    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return document.body.dataset.verifier").await, json!("none"));
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("此浏览器无法核验签名"), "{status}");
    let rows = browser.rows().await;
    assert_eq!(rows.len(), table.bids.len());
    for (seq, cells) in &rows {
        assert_eq!(cells[cells.len() - 2], "未核验", "bid {seq}: {cells:?}");
        assert_eq!(cells[cells.len() - 1], "未核验", "bid {seq}: {cells:?}");
    }
    let text = browser.eval("return document.body.innerText").await;
    assert!(!text.as_str().unwrap().contains("签名无效"), "nothing is called invalid: {text}");
    let csv = browser.csv().await;
    assert!(csv[0][0].contains("此浏览器无法核验签名"), "{csv:?}");
    let header = &csv[1];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    let rows = &csv[2..];
    assert_eq!(rows.len(), table.bids.len(), "{csv:?}");
    assert!(rows.iter().all(|r| r[column("签名")] == "未核验" && r[column("入账")] == "未核验"), "{csv:?}");
    assert!(!csv.iter().flatten().any(|c| c.contains("签名有效") || c.contains("签名无效")), "{csv:?}");
}

/// Has the page's proof requests shed by the server (its queue-wait test
/// hook), as a server under load sheds them: with `#shed=N` in the page's
/// address, each index's first N tries; with `#shed=all`, every try; with
/// `#shed=statements`, every try of the statements themselves. Each try is
/// recorded in `window.proofTries` as [url, try, status, retry-after, time].
const SHED_PROOFS: &str = r#"(() => {
  const fetch0 = window.fetch.bind(window);
  const tries = new Map();
  window.proofTries = [];
  window.fetch = (url, init) => {
    const u = String(url);
    const m = /shed=(\w+)/.exec(location.hash);
    const statements = u.startsWith("/api/tenders/");
    if (!u.startsWith("/api/log/proof") && !statements) return fetch0(url, init);
    const n = (tries.get(u) || 0) + 1;
    tries.set(u, n);
    const shed = m && (statements ? m[1] === "statements" : m[1] === "all" || n <= Number(m[1]));
    const at = performance.now();
    const headers = new Headers((init && init.headers) || {});
    if (shed) headers.set("x-credit-tender-test-queue-wait-ms", "60000");
    return fetch0(url, { ...(init || {}), headers }).then(r => {
      window.proofTries.push([u, n, r.status, r.headers.get("Retry-After"), at]);
      return r;
    });
  };
})();"#;

/// The outside attack on issue 22: a proof the server sheds (503 with
/// Retry-After) is asked for again, no sooner than Retry-After says, and the
/// row ends 已入账; a proof that stays unavailable leaves the row 暂未核验,
/// never 入账核验失败, and the status line and the CSV say so.
#[tokio::test]
async fn a_shed_proof_is_retried_as_retry_after_asks_and_one_never_given_is_not_a_failure() {
    let Some(browser) = Browser::start().await else { return };
    let options = ServerOptions {
        queue_wait_test_hook: true,
        // Only the injected wait is past it, on any machine.
        queue_target: Duration::from_secs(10),
        ..ServerOptions::default()
    };
    let (server, table, _db) = demo_server(options).await;
    browser.init_script(SHED_PROOFS).await;
    let page = format!("http://{}/tenders/{DEMO_TENDER}", server.addr);

    // Each proof shed twice, then given.
    browser.goto(&format!("{page}#shed=2")).await;
    browser.ready().await;
    assert_eq!(browser.logged().await, table.bids.len() as u64, "every row proven once the server answered");
    for (seq, cells) in browser.rows().await {
        assert!(cells.last().unwrap().ends_with("已入账"), "bid {seq}: {cells:?}");
    }
    let tries: Vec<(String, u32, u16, Option<String>, f64)> =
        serde_json::from_value(browser.eval("return window.proofTries").await).unwrap();
    for bid in &table.bids {
        let index = bid.assessment.as_ref().unwrap().log_index.unwrap();
        let url = format!("/api/log/proof?index={index}");
        let mine: Vec<_> = tries.iter().filter(|t| t.0 == url).collect();
        // Shed twice, then answered (a 404 between: its checkpoint was not signed yet).
        let statuses: Vec<u16> = mine.iter().map(|t| t.2).collect();
        assert!(statuses.starts_with(&[503, 503]) && statuses.last() == Some(&200), "{url}: {mine:?}");
        assert!(statuses[2..statuses.len() - 1].iter().all(|s| *s == 404), "{url}: {mine:?}");
        assert_eq!(mine[0].3.as_deref(), Some("1"), "the shed says when to retry: {mine:?}");
        // Retry-After is honoured: the next try comes no sooner than 1 s later.
        for pair in mine.windows(2) {
            assert!(pair[1].4 - pair[0].4 >= 990.0, "{url}: a retry {} ms after a Retry-After of 1 s", pair[1].4 - pair[0].4);
        }
    }

    // Every proof shed, every time: not one row failed, each 暂未核验 (a
    // new document: a change of the hash alone would not load the page again).
    browser.goto("about:blank").await;
    browser.goto(&format!("{page}#shed=all")).await;
    browser.ready().await;
    assert_eq!(browser.logged().await, 0);
    assert_eq!(browser.eval("return document.body.dataset.logUnavailable").await, json!(table.bids.len().to_string()));
    for (seq, cells) in browser.rows().await {
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq}: {cells:?}");
        assert_eq!(cells.last().unwrap(), "暂未核验", "bid {seq}: {cells:?}");
    }
    let text = browser.eval("return document.body.innerText").await;
    assert!(!text.as_str().unwrap().contains("入账核验失败"), "{text}");
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert!(status.as_str().unwrap().contains("入账证明暂时无法取得") && status.as_str().unwrap().contains("不是核验失败"), "{status}");
    let csv = browser.csv().await;
    let at = csv[0].iter().position(|h| h == "入账").unwrap();
    assert!(csv[1..].iter().all(|r| r[at] == "暂未核验"), "{csv:?}");

    // The statements themselves shed every time: the page asks six times,
    // then says so in Chinese (the server's words and code), no table.
    browser.goto("about:blank").await;
    browser.goto(&format!("{page}#shed=statements")).await;
    browser.ready().await;
    let tries: Vec<(String, u32, u16, Option<String>, f64)> =
        serde_json::from_value(browser.eval("return window.proofTries").await).unwrap();
    assert_eq!(tries.iter().map(|t| t.2).collect::<Vec<_>>(), [503; 6], "{tries:?}");
    let status = browser.eval("return document.getElementById('status').innerText").await;
    let status = status.as_str().unwrap();
    assert!(status.starts_with("无法取得信用评价结论（HTTP 503）：服务器繁忙") && status.contains("（代码 OVERLOADED）"), "{status}");
    assert!(english_phrases(status).is_empty(), "{status}");
    assert_eq!(browser.eval("return document.getElementById('table').hidden").await, json!(true));
}

/// A tender with no bids offers no CSV (the link stays hidden) and says so.
#[tokio::test]
async fn a_tender_without_bids_offers_no_csv() {
    let Some(browser) = Browser::start().await else { return };
    let (server, _table, _db) = demo_server(ServerOptions::default()).await;
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(server.channel().await);
    tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T-EMPTY".into(),
            terms: Some(terms("140100", "2026-12-15")),
            policy_id: "national-template".into(),
        })
        .await
        .unwrap();
    browser.goto(&format!("http://{}/tenders/T-EMPTY", server.addr)).await;
    browser.ready().await;
    let status = browser.eval("return document.getElementById('status').innerText").await;
    assert_eq!(status, json!("本项目尚无投标。"));
    let csv = browser.eval("const a = document.getElementById('csv'); return [a.hidden, getComputedStyle(a).display]").await;
    assert_eq!(csv, json!([true, "none"]), "no CSV offered for a tender without bids");
    // With bids, the link is shown.
    browser.goto(&format!("http://{}/tenders/{DEMO_TENDER}", server.addr)).await;
    browser.ready().await;
    assert_eq!(browser.eval("return document.getElementById('csv').hidden").await, json!(false));
}
