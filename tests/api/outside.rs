//! Faults found from outside the project (issue 19): each test is one kind
//! of fault that public bug reports of similar systems, or a newcomer
//! following the README, found, driven through the binary or the server.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tonic::Code;

/// The binary, with a working directory and environment of the test's choosing.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_credit-tender"));
    c.env("RUST_LOG", "warn").env_remove("CREDIT_TENDER_DB");
    c
}

fn run(c: &mut Command) -> std::process::Output {
    c.output().expect("run credit-tender")
}

/// A signed statement and the keys that verify it, as files `verify` reads.
async fn statement_files(dir: &Path) -> (PathBuf, PathBuf, pb::Envelope, pb::ListKeysResponse) {
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    let c = crate::assessment::code(71);
    f.put(&[evaluation_json("e", &c, json!({}))]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let (_, envelope) = f.assess("T1", &[&c]).await;
    let keys = pb::key_service_client::KeyServiceClient::new(f.server.channel().await)
        .list_keys(pb::ListKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let env = file(dir, "st.json", serde_json::to_vec(&envelope).unwrap());
    let keys_path = file(dir, "keys.json", serde_json::to_vec(&keys).unwrap());
    (env, keys_path, envelope, keys)
}

// ---------------------------------------------------------------- item 1

/// The lines of `text` as an editor numbers them (1-based) that contain `needle`.
fn editor_line(text: &str, needle: &str) -> u64 {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") as u64 + 1
}

const HEADER: [&str; 9] = ["credit_code", "entity_name", "domain", "issuer", "year", "grade", "score", "valid_from", "valid_to"];

/// A result table as a spreadsheet saves it: rows end in CRLF, a cell's own
/// line break (Alt+Enter) is a bare LF inside quotes, a cell with a comma is
/// quoted, and the file ends with a line break. `quote_all` as WPS does;
/// `blank` adds an empty line and a row of empty cells (a formatted row).
fn table(sep: char, rows: &[[&str; 9]], quote_all: bool, blank: bool) -> String {
    let cell = |c: &str| {
        if quote_all || c.contains(sep) || c.contains('"') || c.contains('\n') {
            format!("\"{}\"", c.replace('"', "\"\""))
        } else {
            c.to_owned()
        }
    };
    let line = |r: &[&str]| r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(&sep.to_string());
    let mut out = format!("{}\r\n", HEADER.join(&sep.to_string()));
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&line(r));
        out.push_str("\r\n");
        if blank && i == 0 {
            out.push_str("\r\n");
        }
    }
    if blank {
        out.push_str(&[""; 9].join(&sep.to_string()));
        out.push_str("\r\n");
    }
    out
}

/// Three rows; with `bad`, the second name has a line break in its cell
/// (refused: a name is one line) and the third row's code is `bad`.
fn rows(bad: Option<&str>) -> Vec<[&'static str; 9]> {
    let (name, code) = match bad {
        Some(code) => ("中铁某局集团有限公司,第一分公司\n（联合体牵头人）", code.to_owned().leak() as &str),
        None => (GOOD_NAME, CODE_C),
    };
    vec![
        [CODE_A, "山西路桥建设集团有限公司", "highway_construction", "140000", "2025", "AA", "96", "2026-03-01", "2027-02-28"],
        [CODE_B, name, "highway_construction", "140000", "2025", "A", "", "2026-03-01", "2027-02-28"],
        [code, "错误代码有限公司", "highway_construction", "140000", "2025", "B", "", "2026-03-01", "2027-02-28"],
    ]
}

/// A name with a comma, so quoted in every file.
const GOOD_NAME: &str = "中铁某局集团有限公司,第一分公司（联合体牵头人）";

#[tokio::test]
async fn spreadsheet_files_import_as_excel_and_wps_save_them_with_the_lines_an_editor_shows() {
    let bad = "91440300192317458X";
    let utf16 = |s: &str| {
        let mut b = vec![0xFF, 0xFE];
        b.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        b
    };
    let bom = |s: &str| [&[0xEF, 0xBB, 0xBF][..], s.as_bytes()].concat();
    let gbk = |s: &str| encoding_rs::GBK.encode(s).0.into_owned();
    // (file name, separator, every cell quoted, blank rows, the bytes, flags)
    type Kind<'a> = (&'a str, char, bool, bool, Box<dyn Fn(&str) -> Vec<u8>>, &'a [&'a str]);
    let kinds: Vec<Kind> = vec![
        ("excel-gbk.csv", ',', false, false, Box::new(gbk), &["--encoding", "gb18030"]),
        ("excel-utf8.csv", ',', false, false, Box::new(bom), &[]),
        ("excel-unicode.txt", '\t', false, false, Box::new(utf16), &[]),
        ("wps-utf8.csv", ',', true, true, Box::new(bom), &[]),
        ("wps-gbk.csv", ',', true, true, Box::new(gbk), &["--encoding", "gbk"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, sep, quote_all, blank, make, flags) in &kinds {
        let db = sqlite_db();
        open(&db).await;
        let text = table(*sep, &rows(Some(bad)), *quote_all, *blank);
        let path = file(dir.path(), name, make(&text));
        let args = |p: &Path| {
            let mut a = vec!["import".to_owned(), "--db".into(), db.url.clone(), "--document-ref".into(), "晋交公告〔2026〕1号".into()];
            a.extend(flags.iter().map(|s| s.to_string()));
            a.push(p.to_str().unwrap().to_owned());
            a
        };
        let before = snapshot(&db.url).await;
        let out = run(bin().args(args(&path)));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{name}: {err}");
        let line = editor_line(&text, bad);
        assert!(
            err.contains(&format!("{}:{line}: credit_code: credit code has check character 'X'", path.display())),
            "{name}: the bad code is on line {line} as an editor shows it: {err}"
        );
        // A record that spans lines is on the line where it starts.
        let line = editor_line(&text, "中铁某局");
        assert!(
            err.contains(&format!("{}:{line}: entity_name: contains control characters", path.display())),
            "{name}: line {line}: {err}"
        );
        assert_eq!(snapshot(&db.url).await, before, "{name}: nothing stored from a rejected file");

        // The same file with the code put right imports, names intact.
        let good = table(*sep, &rows(None), *quote_all, *blank);
        let path = file(dir.path(), &format!("good-{name}"), make(&good));
        let out = run(bin().args(args(&path)));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("imported 3 record(s)"), "{name}: {}", stdout(&out));
        let store = open(&db).await;
        let code = |c: &str| credit_tender::domain::CreditCode::parse_strict(c).unwrap();
        let profile = store.profile(&code(CODE_B), None).await.unwrap();
        let stored = serde_json::to_value(&profile.records[0].record).unwrap();
        assert_eq!(stored["entity_name"], GOOD_NAME, "{name}");
    }

    // GBK without --encoding: refused at once, naming the encoding and the way out.
    let db = sqlite_db();
    open(&db).await;
    let text = table(',', &rows(None), false, false);
    let path = file(dir.path(), "plain-gbk.csv", gbk(&text));
    let before = snapshot(&db.url).await;
    let out = run(bin().args(["import", "--db", &db.url, "--document-ref", "x", path.to_str().unwrap()]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains(&format!("{}:2: encoding: the file is not UTF-8; it reads as GB18030 (GBK)", path.display())), "{err}");
    assert!(err.contains("--encoding gb18030") && err.contains("CSV UTF-8"), "{err}");
    assert!(!err.contains("is not valid UTF-8"), "one file-level error, not one per row: {err}");
    assert_eq!(snapshot(&db.url).await, before);
}

// ---------------------------------------------------------------- item 4

#[tokio::test]
async fn a_threshold_counts_distinct_keys_never_one_signature_listed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (env_path, keys_path, envelope, _) = statement_files(dir.path()).await;
    let mut twice = envelope.clone();
    twice.signatures.push(envelope.signatures[0].clone());
    let twice_path = file(dir.path(), "twice.json", serde_json::to_vec(&twice).unwrap());
    let verify = |env: &Path, extra: &[&str]| {
        let mut c = bin();
        c.args(["verify", env.to_str().unwrap(), "--keys", keys_path.to_str().unwrap()]).args(extra);
        run(&mut c)
    };
    let out = verify(&twice_path, &["--threshold", "2"]);
    assert_eq!(out.status.code(), Some(1), "one key twice is one key: {}", stderr(&out));
    assert!(stderr(&out).contains("INVALID: 1 distinct key(s) verify; --threshold 2 requires 2"), "{}", stderr(&out));
    assert!(verify(&twice_path, &["--threshold", "1"]).status.success());
    assert!(verify(&twice_path, &[]).status.success(), "both signatures verify");
    assert_eq!(verify(&env_path, &["--threshold", "2"]).status.code(), Some(1));
}

// ---------------------------------------------------------------- item 5

#[tokio::test]
async fn strings_that_pass_the_checksum_but_are_no_credit_code_are_refused_everywhere() {
    // A resident ID number whose last character fits GB 32100's checksum, and eighteen zeros.
    let not_codes = ["140105198503121539", "000000000000000000"];
    for db in backends().await {
        let mut f = crate::assessment::Fixture::new(&db).await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let before = snapshot(&db.url).await;
        for bad in not_codes {
            let record = to_proto(evaluation_json("e", bad, json!({})));
            let status = f.data.put_records(pb::PutRecordsRequest { records: vec![record], source: String::new() }).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "[{}] {bad}", db.backend);
            let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
            assert_eq!(details.field_violations[0].field, "records[0].credit_code", "[{}] {bad}", db.backend);
            let status = f.data.get_profile(pb::GetProfileRequest { credit_code: bad.into(), ..Default::default() }).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
            let request = pb::AssessRequest {
                tender_id: "T1".into(),
                bidder: Some(pb::Bidder { credit_codes: vec![bad.into()] }),
                contract_price_fen: None,
            };
            assert_eq!(f.assess.assess(request).await.unwrap_err().code(), Code::InvalidArgument, "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<_> = not_codes.iter().enumerate().map(|(i, c)| evaluation_json(&format!("x{i}"), c, json!({}))).collect();
        let path = file(dir.path(), "ids.jsonl", jsonl(&lines));
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{err}");
        assert!(err.contains(":1: credit_code: credit code looks like a resident ID number (GB 11643"), "{err}");
        assert!(err.contains(":2: credit_code: credit code has '0' at position 1, which is no registration department"), "{err}");
        assert_eq!(snapshot(&db.url).await, before, "[{}] nothing stored", db.backend);
        // The real codes of DOMAIN.md, and the allow-listed pilot code, still pass.
        let real = ["914403001922038216", "91440300192317458F", "91110000802100433B", "91520000214434146R", PILOT];
        let lines: Vec<_> = real.iter().enumerate().map(|(i, c)| evaluation_json(&format!("r{i}"), c, json!({}))).collect();
        let path = file(dir.path(), "real.jsonl", jsonl(&lines));
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------- item 6

/// Runs the binary with its stdout a pipe whose reader has already gone:
/// every write to it fails with EPIPE.
fn with_reader_gone(c: &mut Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = c.stdout(writer).stderr(Stdio::piped()).spawn().unwrap();
    child.wait_with_output().unwrap()
}

// Multi-threaded: the binary blocks this thread while it talks to a server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_changes_no_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let (env_path, keys_path, envelope, _) = statement_files(dir.path()).await;
    let quiet = |out: &std::process::Output, what: &str, status: i32| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(status), "{what}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{what}: {err}");
    };
    let verify = |env: &Path| with_reader_gone(bin().args(["verify", env.to_str().unwrap(), "--keys", keys_path.to_str().unwrap()]));
    quiet(&verify(&env_path), "verify of a valid statement | head", 0);
    let mut bad = envelope.clone();
    bad.payload = bad.payload.slice(1..);
    let bad_path = file(dir.path(), "bad.json", serde_json::to_vec(&bad).unwrap());
    quiet(&verify(&bad_path), "verify of a tampered statement | head", 1);
    quiet(&with_reader_gone(bin().args(["token", "create", "--name", "x", "--role", "platform"])), "token create", 0);
    quiet(&with_reader_gone(bin().args(["keygen", "--out", dir.path().join("k.pk8").to_str().unwrap()])), "keygen", 0);
    let db = sqlite_db();
    let data = file(dir.path(), "d.jsonl", jsonl(&[evaluation_json("e", CODE_A, json!({}))]));
    quiet(&with_reader_gone(bin().args(["import", "--db", &db.url, data.to_str().unwrap()])), "import", 0);
    let server = spawn_sqlite_app(AppOptions::default()).await;
    let url = format!("http://{}", server.addr);
    quiet(&with_reader_gone(bin().args(["keys", "--server", &url])), "keys", 0);
    // A command whose stdout is a full disk fails instead: its output is lost.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = bin().args(["token", "create", "--name", "x", "--role", "platform"]).stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(74), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write to stdout"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- item 7

#[test]
fn listening_on_is_printed_only_once_everything_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    assert!(cli(&["keygen", "--out", dir.path().join("k.pk8").to_str().unwrap()]).status.success());
    // A keys file without the log's key.
    let keys = file(dir.path(), "keys.toml", "[[key]]\nfile = \"k.pk8\"\nstatus = \"active\"\n");
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let out = run(bin().args(["serve", "--db", &db, "--keys", keys.to_str().unwrap(), "--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(!stdout(&out).contains("listening on"), "announced a server that was about to exit: {}", stdout(&out));
    assert!(stderr(&out).contains("role = \"log\""), "{}", stderr(&out));
}

// ---------------------------------------------------------------- item 8

/// A principals file with one platform, for a caller the server refuses.
const PLATFORM_TOKEN: &str = "ct_outside-platform";

fn sha(t: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()))
}

// Multi-threaded: the binary blocks this thread while it talks to a server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_exit_table_is_what_the_commands_return() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (env_path, keys_path, envelope, _) = statement_files(d).await;
    let db = sqlite_db();
    let mut seen = std::collections::BTreeSet::new();
    let mut row = |status: i32, what: &str, out: std::process::Output, says: &str| {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(status), "{what}: {err}");
        assert!(err.contains(says), "{what}: stderr lacks '{says}': {err}");
        seen.insert(status);
    };
    // 0 done
    row(0, "token create", run(bin().args(["token", "create", "--name", "x", "--role", "platform"])), "");
    // 1 a check said no
    let mut bad = envelope.clone();
    bad.payload = bad.payload.slice(1..);
    let bad_path = file(d, "bad.json", serde_json::to_vec(&bad).unwrap());
    row(
        1,
        "verify a tampered statement",
        run(bin().args(["verify", bad_path.to_str().unwrap(), "--keys", keys_path.to_str().unwrap()])),
        "INVALID",
    );
    // 64 the command line is wrong: clap's errors too, and a --db without a scheme
    row(64, "unknown flag", run(bin().args(["import", "--frobnicate", "x.jsonl"])), "unexpected argument '--frobnicate'");
    row(64, "no command", run(&mut bin()), "Usage:");
    row(
        64,
        "--db without scheme",
        run(bin().args(["import", "--db", "credit.db", "x.jsonl"])),
        "'credit.db' has no scheme: use sqlite://credit.db",
    );
    row(64, "--server without a scheme", run(bin().args(["keys", "--server", "127.0.0.1:50051"])), "'127.0.0.1:50051' has no scheme");
    row(64, "--server not a URL", run(bin().args(["keys", "--server", "http://"])), "is not a URL");
    // 65 input data refused
    let data = file(d, "bad.jsonl", "not json\n");
    let not_checkpoint = file(d, "cp.txt", "this is not a checkpoint\n");
    let proof_json = file(d, "proof.json", r#"{"leafIndex":"0","treeSize":"1","hashes":[]}"#);
    row(
        65,
        "verify with a malformed checkpoint",
        run(bin().args([
            "verify",
            env_path.to_str().unwrap(),
            "--keys",
            keys_path.to_str().unwrap(),
            "--checkpoint",
            not_checkpoint.to_str().unwrap(),
            "--proof",
            proof_json.to_str().unwrap(),
        ])),
        "not a signed checkpoint",
    );
    row(65, "a rejected file", run(bin().args(["import", "--db", &db.url, data.to_str().unwrap()])), "malformed JSON");
    row(
        65,
        "not an envelope",
        run(bin().args(["verify", keys_path.to_str().unwrap(), "--keys", keys_path.to_str().unwrap()])),
        "not a DSSE envelope",
    );
    // 66 an input file or store that does not exist
    let missing = d.join("missing.jsonl");
    row(
        66,
        "a missing file",
        run(bin().args(["import", "--db", &db.url, missing.to_str().unwrap()])),
        "missing.jsonl: cannot read: no such file or directory",
    );
    let no_store = format!("sqlite://{}", d.join("no-such.db").display());
    row(
        66,
        "recompute on no store",
        run(bin().args(["recompute", env_path.to_str().unwrap(), "--db", &no_store])),
        "there is no SQLite store at",
    );
    // 69 unavailable: nothing listens on port 1
    let refused = run(bin().args(["import", "--db", "postgres://postgres@127.0.0.1:1/x", data.to_str().unwrap()]));
    row(69, "PostgreSQL refusing connections", refused, "connection refused");
    row(69, "a server that is not there", run(bin().args(["keys", "--server", "http://127.0.0.1:1"])), "connection refused");
    let web = not_grpc_server().await;
    row(
        69,
        "a server that is not gRPC (an HTTP/1 port)",
        run(bin().args(["keys", "--server", &format!("http://{web}")])),
        &format!("http://{web} did not answer as a gRPC server"),
    );
    // 70 internal error: a panic (the test hook exists in debug builds only)
    row(
        70,
        "a panic",
        run(bin().args(["token", "create", "--name", "x", "--role", "platform"]).env("CREDIT_TENDER_TEST_PANIC", "1")),
        "internal error (a bug)",
    );
    // 73 cannot create an output file
    let key = d.join("k.pk8");
    assert!(cli(&["keygen", "--out", key.to_str().unwrap()]).status.success());
    row(73, "keygen over an existing key", run(bin().args(["keygen", "--out", key.to_str().unwrap()])), "cannot create: it already exists");
    // 74 cannot write output
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    row(
        74,
        "stdout on a full disk",
        bin().args(["token", "create", "--name", "x", "--role", "platform"]).stdout(full).output().unwrap(),
        "cannot write to stdout",
    );
    // 77 the server does not know the caller
    let principals = file(
        d,
        "p.toml",
        format!("[[principal]]\nname = \"p\"\nrole = \"platform\"\nregions = [\"440000\"]\ntoken_sha256 = \"{}\"\n", sha(PLATFORM_TOKEN)),
    );
    let keys_dir = d.join("serve-keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let keys_toml = keys_file(&keys_dir);
    let serve_db = format!("sqlite://{}", d.join("serve.db").display());
    let server = CliServer::spawn(&[
        "serve",
        "--db",
        &serve_db,
        "--keys",
        keys_toml.to_str().unwrap(),
        "--principals",
        principals.to_str().unwrap(),
    ])
    .await;
    let url = format!("http://{}", server.addr);
    let proof_args = |token: &str| {
        let (cp, p) = (d.join("cp"), d.join("p.json"));
        let mut c = bin();
        c.args([
            "proof",
            "--server",
            &url,
            "--token",
            token,
            "--index",
            "0",
            "--checkpoint",
            cp.to_str().unwrap(),
            "--proof",
            p.to_str().unwrap(),
        ]);
        c
    };
    row(77, "an unknown token", run(&mut proof_args("ct_not-a-known-token")), "answered UNAUTHENTICATED: unknown or revoked bearer token");
    // 69: the port is taken, or the store is locked by another process past the wait.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    row(
        69,
        "serve on a port in use",
        run(bin().args(["serve", "--db", &serve_db, "--keys", keys_toml.to_str().unwrap(), "--listen", &taken_addr])),
        &format!("cannot listen on {taken_addr}"),
    );
    let locked_path = d.join("locked.db");
    let locked_db = format!("sqlite://{}", locked_path.display());
    drop(credit_tender::store::Store::open(&locked_db).await.unwrap());
    let locked = {
        use sqlx::ConnectOptions;
        let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(&locked_path).connect().await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut c).await.unwrap();
        c
    };
    row(
        69,
        "serve on a store another process holds locked",
        run(bin().args([
            "serve",
            "--db",
            &locked_db,
            "--keys",
            keys_toml.to_str().unwrap(),
            "--write-wait-ms",
            "200",
            "--listen",
            "127.0.0.1:0",
        ])),
        "busy",
    );
    drop(locked);
    // 78 a configuration file is wrong
    let no_log_key = file(d, "nolog.toml", "[[key]]\nfile = \"k.pk8\"\nstatus = \"active\"\n");
    row(
        78,
        "keys without the log's key",
        run(bin().args(["serve", "--db", &serve_db, "--keys", no_log_key.to_str().unwrap(), "--listen", "127.0.0.1:0"])),
        "role = \"log\"",
    );

    // The README's table has exactly these rows.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: std::collections::BTreeSet<i32> = readme
        .split("### Exit status")
        .nth(1)
        .expect("README has an exit status section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_start_matches('|').split('|').next()?.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(table, seen, "the README's exit table and the statuses the commands return");
}

/// A loopback HTTP/1.1 server that answers every request 400, as a web
/// server or proxy does to gRPC's HTTP/2 preface; its address.
async fn not_grpc_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request").await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- item 9

#[tokio::test]
async fn commands_that_only_read_never_create_or_migrate_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = file(d, "st.json", r#"{"payloadType":"application/vnd.credit-tender.assessment.v1+json","payload":"e30=","signatures":[]}"#);
    let data = file(d, "d.jsonl", jsonl(&[evaluation_json("e", CODE_A, json!({}))]));
    // recompute with no --db: the default path, in the working directory.
    let out = run(bin().current_dir(d).args(["recompute", "st.json"]));
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
    assert!(stderr(&out).contains("there is no SQLite store at credit-tender.db"), "{}", stderr(&out));
    assert!(!d.join("credit-tender.db").exists(), "recompute created a store");
    // A mistyped path, to recompute and to a dry run.
    let typo = d.join("credt.db");
    let url = format!("sqlite://{}", typo.display());
    for args in [vec!["recompute", env.to_str().unwrap(), "--db", &url], vec!["import", "--dry-run", "--db", &url, data.to_str().unwrap()]]
    {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(66), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("there is no SQLite store at {}", typo.display())), "{}", stderr(&out));
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // A store one migration behind: read-only commands refuse it, and leave it as it was.
    for db in backends().await {
        open(&db).await;
        let delete = "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM _sqlx_migrations";
        let migrations: i64 = match db.backend {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
                sqlx::query(delete).execute(&pool).await.unwrap();
                sqlx::query_scalar(count).fetch_one(&pool).await.unwrap()
            }
            _ => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                sqlx::query(delete).execute(&pool).await.unwrap();
                sqlx::query_scalar(count).fetch_one(&pool).await.unwrap()
            }
        };
        let before = snapshot(&db.url).await;
        for args in [
            vec!["import", "--dry-run", "--db", &db.url, data.to_str().unwrap()],
            vec!["recompute", env.to_str().unwrap(), "--db", &db.url],
        ] {
            let out = cli(&args);
            assert_eq!(out.status.code(), Some(69), "[{}] {args:?}: {}", db.backend, stderr(&out));
            assert!(stderr(&out).contains("never migrate a store"), "[{}] {}", db.backend, stderr(&out));
        }
        assert_eq!(snapshot(&db.url).await, before);
        let after: i64 = match db.backend {
            "sqlite" => sqlx::query_scalar(count).fetch_one(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap(),
            _ => sqlx::query_scalar(count).fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap(),
        };
        assert_eq!(after, migrations, "[{}] a read-only command migrated the store", db.backend);
    }
    // An empty PostgreSQL database is no store: a dry run does not migrate it into one.
    if let Some(db) = pg_db().await {
        let out = cli(&["import", "--dry-run", "--db", &db.url, data.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
        assert!(stderr(&out).contains("is not a credit-tender store: it has no schema"), "{}", stderr(&out));
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(tables, 0, "a dry run created tables");
    }
}

// ---------------------------------------------------------------- item 10

// Multi-threaded: the binary blocks this thread while it talks to a server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_say_what_is_wrong_in_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = file(d, "d.jsonl", jsonl(&[evaluation_json("e", CODE_A, json!({}))]));
    // A PostgreSQL that refuses connections: said so, not "pool timed out".
    let out = cli(&["import", "--db", "postgres://postgres:secret@127.0.0.1:1/credit", data.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(err.contains("connection refused") && !err.contains("pool timed out"), "{err}");
    assert!(!err.contains("secret") && err.contains("postgres://postgres:***@127.0.0.1:1/credit"), "the password stays hidden: {err}");
    // A missing import file: no line 0.
    let db = sqlite_db();
    let out = cli(&["import", "--db", &db.url, d.join("missing.jsonl").to_str().unwrap()]);
    assert!(
        stderr(&out).contains("missing.jsonl: cannot read: no such file or directory") && !stderr(&out).contains(":0"),
        "{}",
        stderr(&out)
    );
    // gRPC errors by their gRPC names, in a sentence.
    let server = spawn_sqlite_app(AppOptions::default()).await;
    let url = format!("http://{}", server.addr);
    let out = cli(&["assess", "--server", &url, "--tender", "NO-SUCH", "--bidder", CODE_A]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        stderr(&out).contains(&format!("{url} answered NOT_FOUND: no tender 'NO-SUCH'")) && !stderr(&out).contains("NotFound"),
        "{}",
        stderr(&out)
    );

    // --listen with a host name is resolved.
    let mut child = bin()
        .args(["demo", "--listen", "localhost:0", "--no-background-refresh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().next().and_then(Result::ok)
    });
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), first).await.expect("demo starts").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = first.expect("a line on stdout");
    assert!(line.starts_with("listening on 127.0.0.1:") || line.starts_with("listening on [::1]:"), "{line}");
    let out = cli(&["demo", "--listen", "no-such-host.invalid:50051"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("cannot resolve 'no-such-host.invalid'"), "{}", stderr(&out));

    // A certificate for another name: a sentence naming the host and --host.
    let certs = d.join("tls");
    assert!(cli(&["cert", "--host", "credit.test", "--out", certs.to_str().unwrap()]).status.success());
    let keys = keys_file(d);
    let db = format!("sqlite://{}", d.join("tls.db").display());
    let server = CliServer::spawn(&[
        "serve",
        "--db",
        &db,
        "--keys",
        keys.to_str().unwrap(),
        "--tls-cert",
        certs.join("server.pem").to_str().unwrap(),
        "--tls-key",
        certs.join("server.key").to_str().unwrap(),
    ])
    .await;
    let https = format!("https://127.0.0.1:{}", server.addr.port());
    let out = cli(&[
        "proof",
        "--server",
        &https,
        "--ca",
        certs.join("ca.pem").to_str().unwrap(),
        "--index",
        "0",
        "--checkpoint",
        d.join("cp").to_str().unwrap(),
        "--proof",
        d.join("p.json").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("the server's certificate is not valid for '127.0.0.1' (it is for credit.test)"), "{err}");
    assert!(err.contains("credit-tender cert --host 127.0.0.1") && !err.contains("NotValidForName"), "{err}");
}
