//! Every HTTP route answers a bad path with a status, never a panic: the
//! tile parser of `tlog_tiles` panicked on `/log/tile/0/000.p/0` and its
//! kind (issue 19), leaving the client an empty reply and the log a
//! backtrace, with no token needed. Paths are fuzzed the way the RPCs are
//! (`hardening::raw_bytes_to_every_rpc_get_named_errors`): `HTTP_FUZZ_CASES`
//! paths (2,000 by default, what CI runs; 0 is refused), drawn from
//! `FUZZ_SEED` (named in a failure); the long run is in BENCHMARKS.md.
//! A path that fails is appended to [`KEPT`] (commit it) and asked first by
//! every later run, as proptest keeps the other fuzz tests' failures. Every
//! connect, write and read is bounded by `CALL_BOUND`: a handler that never
//! answers fails the run, naming the path.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use proptest::prelude::*;
use proptest::strategy::{Strategy, ValueTree};

/// The tile paths of the report, and their neighbours.
const MALFORMED: &[&str] = &[
    "/log/tile/0/000.p/0",
    "/log/tile/64/000",
    "/log/tile/entries/000.p/0",
    "/log/tile/255/000",
    "/log/tile/32/000",
    "/log/tile/0/000.p/256",
    "/log/tile/0/000.p/4294967296",
    "/log/tile/0/x999/x999/x999/x999/x999/x999/x999/999",
    "/log/tile/entries/x018/x446/x744/x073/x709/x551/616.p/255",
    "/log/tile/0/-1",
    "/log/tile/",
    "/log/tile/entries/",
    "/log/tile/0/000.p/",
];

#[tokio::test]
async fn malformed_tile_paths_are_answered_404_not_with_a_panic() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    for path in MALFORMED {
        let (status, body) = http_get(server.addr, path).await;
        assert!(matches!(status, 400 | 404), "{path}: {status} {body:?} (0: no answer at all, the handler panicked)");
        assert!(!body.is_empty(), "{path}: the answer says why");
    }
    // The server is still there, and serving.
    assert_eq!(http_get(server.addr, "/log/checkpoint").await.0, 200);
}

/// Request targets: mutations of every route, tile-like paths built from
/// the pieces that broke parsers, and arbitrary text, percent-encoded where
/// a request line needs it.
fn path() -> impl Strategy<Value = String> {
    let routes = prop::sample::select(vec![
        "/",
        "/tenders/",
        "/tenders/DEMO-SX-2026-001",
        "/api/tenders/DEMO-SX-2026-001/statements",
        "/api/tenders/",
        "/api/keys",
        "/api/log/proof?index=",
        "/log/checkpoint",
        "/log/tile/0/000",
        "/log/tile/entries/000.p/1",
        "/log/",
        "/committee/enter/",
        "/assets/committee.js",
        "/assets/",
        "/metrics",
        "/credit_tender.v1.LogService/GetCheckpoint",
        "/api/tenders/DEMO-SX-2026-001/statements?page_token=",
    ]);
    let piece = prop::sample::select(vec![
        "0",
        "1",
        "7",
        "8",
        "31",
        "32",
        "63",
        "64",
        "255",
        "256",
        "-1",
        "00",
        "000",
        "001",
        "999",
        "0000",
        "x000",
        "x001",
        "x999",
        "000.p",
        "001.p",
        ".p",
        "entries",
        "data",
        "",
        "x",
        "p",
        "%00",
        "%2F",
        "%FF",
        "..",
        "4294967296",
        "18446744073709551616",
    ]);
    let tile = prop::collection::vec(piece, 1..9).prop_map(|p| format!("/log/tile/{}", p.join("/")));
    let text = any::<String>().prop_map(|s| percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC).to_string());
    let printable = "[ -~]{0,40}".prop_map(|s| s.replace([' ', '#'], "%20"));
    prop_oneof![
        3 => tile,
        2 => (routes.clone(), printable.clone()).prop_map(|(r, s)| format!("{r}{s}")),
        1 => (routes, text).prop_map(|(r, s)| format!("{r}{s}")),
        1 => printable.prop_map(|s| format!("/{s}")),
    ]
}

/// One kept-alive HTTP/1.1 connection (a fresh connection per request
/// would run out of loopback ports in a long run: each one waits a minute
/// in TIME_WAIT).
#[derive(Default)]
struct KeepAlive {
    stream: Option<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl KeepAlive {
    /// GET `path`: the status; or why there is none: the server closed the
    /// connection without an answer twice (once may be an idle connection
    /// it closed), or did not answer within `CALL_BOUND`.
    async fn get(&mut self, addr: std::net::SocketAddr, path: &str) -> Result<u16, String> {
        for _ in 0..2 {
            match tokio::time::timeout(CALL_BOUND, self.try_get(addr, path)).await {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => self.stream = None,
                Err(_) => {
                    self.stream = None;
                    return Err(format!("no answer within {CALL_BOUND:?} (the handler hangs)"));
                }
            }
        }
        Err("no answer: the connection was closed twice (a panic closes it)".into())
    }

    async fn try_get(&mut self, addr: std::net::SocketAddr, path: &str) -> Option<u16> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            // Bounded with the rest of the request by the caller (`get`).
            self.stream = Some(tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.ok()?));
        }
        let s = self.stream.as_mut()?;
        s.get_mut().write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
        let mut line = String::new();
        if s.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let status = line.get(9..12)?.parse().ok()?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if s.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let header = line.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(v) = header.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
            close |= header.starts_with("connection:") && header.contains("close");
        }
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line).await.ok()?;
                let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
                let mut chunk = vec![0; size + 2];
                s.read_exact(&mut chunk).await.ok()?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            let mut body = vec![0; n];
            s.read_exact(&mut body).await.ok()?;
        } else {
            close = true;
        }
        if close {
            self.stream = None;
        }
        Some(status)
    }
}

/// Paths that failed an earlier run, one a line (`#` starts a comment):
/// asked first by every run.
const KEPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/api/http_fuzz.txt");

fn kept() -> Vec<String> {
    match std::fs::read_to_string(KEPT) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{KEPT}: {e}"),
    }
}

/// Appends failing paths to [`KEPT`], with the seed that drew them.
fn keep(failed: &[&str], seed: u64) {
    use std::io::Write;
    let known = kept();
    let new: Vec<&&str> = failed.iter().filter(|p| !known.iter().any(|k| k == **p)).collect();
    if new.is_empty() {
        return;
    }
    if let Some(dir) = std::path::Path::new(KEPT).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(KEPT).unwrap_or_else(|e| panic!("{KEPT}: {e}"));
    writeln!(f, "# failed with FUZZ_SEED={seed}").unwrap();
    for p in new {
        writeln!(f, "{p}").unwrap();
    }
}

/// How many paths: `HTTP_FUZZ_CASES`, 2,000 by default.
fn cases() -> usize {
    knob("HTTP_FUZZ_CASES", 2000, 1) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_route_answers_fuzzed_paths_with_a_status_and_never_panics() {
    // The binary, so that a panic shows in its log whichever thread it is on.
    let server = CliServer::spawn(&["demo"]).await;
    // Leaves in the log and a checkpoint over them: tile paths reach the tiles.
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(server.channel.clone());
    assess.assess_tender(pb::AssessTenderRequest { tender_id: "DEMO-SX-2026-001".into(), ..Default::default() }).await.unwrap();
    server.checkpoint_logged(1).await;
    let seed = fuzz_seed();
    let replay = format!("replay with FUZZ_SEED={seed} cargo test --test api http_fuzz");
    let config = proptest::test_runner::Config { rng_seed: proptest::test_runner::RngSeed::Fixed(seed), ..Default::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = path();
    let mut statuses = std::collections::BTreeMap::new();
    let paths: Vec<String> = kept()
        .into_iter()
        .chain((0..cases()).map(|_| strategy.new_tree(&mut runner).unwrap().current()))
        .chain(MALFORMED.iter().map(|p| p.to_string()))
        .collect();
    // Four at a time: the long run is a million paths.
    let addr = server.addr;
    let chunks: Vec<Vec<String>> = paths.chunks(paths.len().div_ceil(4)).map(<[String]>::to_vec).collect();
    let answers = futures_util::future::join_all(chunks.into_iter().map(|chunk| {
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(chunk.len());
            let mut conn = KeepAlive::default();
            for p in chunk {
                let status = conn.get(addr, &p).await;
                out.push((p, status));
            }
            out
        })
    }))
    .await;
    let mut failures = Vec::new();
    for (p, answer) in answers.into_iter().flat_map(|a| a.unwrap_or_else(|e| panic!("a fuzzing task failed: {e}; {replay}"))) {
        let status = match answer {
            Ok(status) => status,
            Err(why) => {
                failures.push((p, why));
                continue;
            }
        };
        if status >= 500 || (p.starts_with("/log/") && !matches!(status, 200 | 400 | 404)) {
            failures.push((p, format!("answered {status}")));
            continue;
        }
        *statuses.entry(status).or_insert(0u64) += 1;
    }
    if !failures.is_empty() {
        keep(&failures.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), seed);
        let (p, why) = &failures[0];
        panic!("{} path(s) failed, the first: {p}: {why}; kept in {KEPT}; {replay}", failures.len());
    }
    let panics: Vec<String> = server.lines_so_far().await.into_iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "{} panic(s), the first: {}; {replay}", panics.len(), panics[0]);
    eprintln!("{} paths: {statuses:?}", paths.len());
    assert!(statuses.contains_key(&200) && statuses.contains_key(&404), "{statuses:?}");
}
