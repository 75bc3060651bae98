//! Faults an outside tester found in issue 19's fixes: each test is one kind
//! of fault, driven through the binary, gRPC on 127.0.0.1 or HTTP, with
//! nothing stored on refused input.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use tonic::Code;

/// The binary, with an environment of the test's choosing.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_credit-tender"));
    c.env("RUST_LOG", "warn").env_remove("CREDIT_TENDER_DB").env_remove("CREDIT_TENDER_SERVER");
    c
}

fn run(c: &mut Command) -> std::process::Output {
    c.output().expect("run credit-tender")
}

/// Asserts `text` reads as a sentence: no Rust Debug dumps, enum names or OS error numbers.
fn reads_as_a_sentence(text: &str) {
    for rust in ["(os error", "InvalidEncoding", "WrongAlgorithm", "LengthDelimited", "Varint", "Error {", "Kind(", "Custom {", "Some("] {
        assert!(!text.contains(rust), "'{rust}' is Rust's, not a sentence: {text}");
    }
}

// ------------------------------------------------------------ 1: signing keys

#[test]
fn a_keys_file_whose_key_cannot_sign_is_refused_at_start_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(cli(&["keygen", "--out", d.join("good.pk8").to_str().unwrap()]).status.success());
    assert!(cli(&["keygen", "--out", d.join("log.pk8").to_str().unwrap()]).status.success());
    file(d, "garbage.pk8", b"this is not a key\n");
    file(d, "empty.pk8", b"");
    // An ECDSA P-256 key in PKCS#8: a real key, of another algorithm.
    file(d, "p256.pk8", rcgen::KeyPair::generate().unwrap().serialize_der());
    let log = "[[key]]\nfile = \"log.pk8\"\nrole = \"log\"\nstatus = \"active\"\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "garbage",
            format!("[[key]]\nfile = \"garbage.pk8\"\nstatus = \"active\"\n{log}"),
            "key 1 (file = \"garbage.pk8\"): is not an Ed25519 private key",
        ),
        ("empty", format!("[[key]]\nfile = \"empty.pk8\"\nstatus = \"active\"\n{log}"), "key 1 (file = \"empty.pk8\"): the file is empty"),
        (
            "another algorithm, as a verify-only key",
            format!("[[key]]\nfile = \"good.pk8\"\nstatus = \"active\"\n{log}[[key]]\nfile = \"p256.pk8\"\nstatus = \"verify_only\"\n"),
            "key 3 (file = \"p256.pk8\"): is not an Ed25519 private key",
        ),
        (
            "an active key past its validity",
            format!("[[key]]\nfile = \"good.pk8\"\nstatus = \"active\"\nvalid_to = 2020-01-01T00:00:00Z\n{log}"),
            "key 1 (file = \"good.pk8\"): is active but its validity ended 2020-01-01",
        ),
        (
            "a validity that ends before it begins",
            format!(
                "[[key]]\nfile = \"good.pk8\"\nstatus = \"verify_only\"\nvalid_from = 2025-01-01T00:00:00Z\nvalid_to = 2024-01-01T00:00:00Z\n{log}"
            ),
            "key 1 (file = \"good.pk8\"): valid_from 2025-01-01T00:00:00+00:00 is not before valid_to",
        ),
        (
            "one key as the statement key and the log key",
            "[[key]]\nfile = \"good.pk8\"\nstatus = \"active\"\n\n[[key]]\nfile = \"good.pk8\"\nrole = \"log\"\nstatus = \"active\"\n"
                .into(),
            "key 2 (file = \"good.pk8\"): is the same key as key 1",
        ),
        ("no key at all", "key = []\n".into(), "lists no key"),
    ];
    for (what, toml, says) in cases {
        let keys = file(d, "keys.toml", toml);
        let store = d.join("s.db");
        let out = run(bin().args([
            "serve",
            "--db",
            &format!("sqlite://{}", store.display()),
            "--keys",
            keys.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{what}: {err}");
        assert!(err.contains(&format!("{}: {says}", keys.display())), "{what}: names the file and the key: {err}");
        assert!(!stdout(&out).contains("listening on"), "{what}: {}", stdout(&out));
        assert!(!store.exists(), "{what}: a store was created for a server that could not sign");
        reads_as_a_sentence(&err);
    }
}

// ------------------------------------------------------------ 2: credit codes

/// A resident ID number (GB 11643's own example) and one whose region, date
/// and check digit fit: neither is a credit code.
const RESIDENT_IDS: [&str; 2] = ["11010519491231002X", "140105198503121539"];

/// Full-width forms of CODE_B (91440300192317458F), as a Chinese input method types them.
fn full_width(code: &str) -> String {
    code.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect()
}

// Multi-threaded: the binary blocks this thread while it talks to a server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_id_numbers_are_named_and_full_width_codes_read_as_ascii_on_every_way_in() {
    let says = "looks like a resident ID number";
    for db in backends().await {
        let mut f = crate::assessment::Fixture::new(&db).await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let before = snapshot(&db.url).await;
        for id in RESIDENT_IDS {
            // gRPC: PutRecords, GetProfile, Assess.
            let record = to_proto(evaluation_json("e", id, json!({})));
            let status = f.data.put_records(pb::PutRecordsRequest { records: vec![record], source: String::new() }).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "[{}] {id}", db.backend);
            assert!(status.message().contains(says), "[{}] {id}: {}", db.backend, status.message());
            let status = f.data.get_profile(pb::GetProfileRequest { credit_code: id.into(), ..Default::default() }).await.unwrap_err();
            assert!(status.code() == Code::InvalidArgument && status.message().contains(says), "{id}: {}", status.message());
            let request = pb::AssessRequest {
                tender_id: "T1".into(),
                bidder: Some(pb::Bidder { credit_codes: vec![id.into()] }),
                contract_price_fen: None,
            };
            let status = f.assess.assess(request).await.unwrap_err();
            assert!(status.code() == Code::InvalidArgument && status.message().contains(says), "{id}: {}", status.message());
            // The CLI's argument, sent on by `assess`.
            let url = format!("http://{}", f.server.addr);
            let out = cli(&["assess", "--server", &url, "--tender", "T1", "--bidder", id]);
            assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
            assert!(stderr(&out).contains(says), "{}", stderr(&out));
        }
        // Import: JSON Lines and a CSV table.
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<_> = RESIDENT_IDS.iter().enumerate().map(|(i, c)| evaluation_json(&format!("x{i}"), c, json!({}))).collect();
        let path = file(dir.path(), "ids.jsonl", jsonl(&lines));
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!(":1: credit_code: credit code {says}")), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!(":2: credit_code: credit code {says}")), "{}", stderr(&out));
        let csv = format!(
            "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\r\n{},某公司,highway_construction,140000,2025,A,,2026-03-01,2027-02-28\r\n",
            RESIDENT_IDS[1]
        );
        let path = file(dir.path(), "ids.csv", csv);
        let out = cli(&["import", "--db", &db.url, "--document-ref", "r", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!(":2: credit_code: credit code {says}")), "{}", stderr(&out));
        assert_eq!(snapshot(&db.url).await, before, "[{}] nothing stored", db.backend);

        // Full width: the same code as its ASCII form, on every way in.
        let wide = full_width(CODE_B);
        let record = to_proto(evaluation_json("w1", &wide, json!({})));
        f.data.put_records(pb::PutRecordsRequest { records: vec![record], source: String::new() }).await.unwrap();
        let csv = format!(
            "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\r\n{},某公司,highway_construction,140000,2024,A,,2025-03-01,2027-02-28\r\n",
            full_width(CODE_C)
        );
        let path = file(dir.path(), "wide.csv", csv);
        let out = cli(&["import", "--db", &db.url, "--document-ref", "r", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        for (typed, stored) in [(wide.as_str(), CODE_B), (&full_width(CODE_C), CODE_C)] {
            let p =
                f.data.get_profile(pb::GetProfileRequest { credit_code: typed.into(), ..Default::default() }).await.unwrap().into_inner();
            assert_eq!(p.credit_code, stored, "[{}] read as ASCII", db.backend);
        }
        let store = open(&db).await;
        let code = credit_tender::domain::CreditCode::parse_strict(CODE_C).unwrap();
        let profile = store.profile(&code, None).await.unwrap();
        let stored = serde_json::to_value(&profile.records[0].record).unwrap();
        assert_eq!(stored["id"], format!("eval:140000:highway_construction:2024:{CODE_C}"), "the default id in ASCII too");
        let url = format!("http://{}", f.server.addr);
        let out = cli(&["assess", "--server", &url, "--tender", "T1", "--bidder", &wide]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(CODE_B), "{}", stdout(&out));
    }
}

// ------------------------------------------------------------ 3: spreadsheet CSV

const HEADER: &str = "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to";

fn row(code: &str, name: &str) -> String {
    format!("{code},{name},highway_construction,140000,2025,A,,2026-03-01,2027-02-28")
}

#[tokio::test]
async fn csv_and_jsonl_as_spreadsheets_and_windows_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let import = |db: &TestDb, extra: &[&str], path: &Path| {
        let mut args = vec!["import", "--db", &db.url, "--document-ref", "晋交公告〔2026〕1号"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        cli(&args)
    };

    // Excel's trailing empty columns: `a,b,c,,,` in the header and every row.
    let db = sqlite_db();
    open(&db).await;
    let text = format!("{HEADER},,,\r\n{},,,\r\n{},,,\r\n", row(CODE_A, "甲公司"), row(CODE_B, "乙公司"));
    let out = import(&db, &[], &file(d, "trailing.csv", text));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("imported 2 record(s)"), "{}", stdout(&out));
    // ...but a value under an unnamed column is still refused.
    let text = format!("{HEADER},,\r\n{},x,\r\n", row(CODE_C, "丙公司"));
    let out = import(&db, &[], &file(d, "extra-value.csv", text));
    assert_eq!(out.status.code(), Some(65));
    assert!(stderr(&out).contains(":2: row: has a value in column 10, which the header does not name (it names 9)"), "{}", stderr(&out));

    // A quote never closed: reported where it opens, nothing swallowed or stored.
    let before = snapshot(&db.url).await;
    let text = format!("{HEADER}\r\n{}\r\n{}\r\n{}\r\n", row(CODE_C, "丙公司"), row(CODE_C, "\"丁公司"), row(CODE_C, "戊公司"));
    let path = file(d, "unclosed.csv", &text);
    let out = import(&db, &[], &path);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains(&format!("{}:3: csv: a quoted cell opened on this line is never closed", path.display())), "{err}");
    assert!(!err.contains("fields, the header has"), "the swallowed rows are not reported as a row: {err}");
    assert_eq!(snapshot(&db.url).await, before);

    // A cell with a line break (CRLF inside the quotes) before a bad row: the
    // bad row's line is the one an editor shows.
    let bad = "91440300192317458X";
    let text = format!(
        "{HEADER}\r\n{}\r\n\"{CODE_C}\",\"第一行\r\n第二行\",highway_construction,140000,2025,A,,2026-03-01,2027-02-28\r\n{}\r\n",
        row(CODE_A, "甲"),
        row(bad, "坏")
    );
    let path = file(d, "multiline.csv", &text);
    let out = import(&db, &[], &path);
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3: entity_name: contains control characters", path.display())), "{err}");
    assert!(err.contains(&format!("{}:5: credit_code", path.display())), "line 5 as an editor shows it: {err}");
    assert_eq!(snapshot(&db.url).await, before);

    // JSON Lines with CRLF: read, and a bad line named by its editor line.
    let lines = [evaluation_json("j1", CODE_C, json!({})), evaluation_json("j2", CODE_C, json!({"grade": "Z"}))];
    let text = format!("{}\r\n\r\n{}\r\n", lines[0], lines[1]);
    let path = file(d, "crlf.jsonl", &text);
    let out = import(&db, &[], &path);
    assert!(stderr(&out).contains(&format!("{}:3: grade", path.display())), "{}", stderr(&out));
    let text = format!("{}\r\n", lines[0]);
    let out = import(&db, &[], &file(d, "crlf-good.jsonl", &text));
    assert!(out.status.success(), "{}", stderr(&out));

    // --encoding in any letter case; a UTF-8 file given it is not garbled.
    let gbk_text = format!("{HEADER}\r\n{}\r\n", row(CODE_A, "山西路桥建设集团有限公司"));
    let gbk = file(d, "gbk.csv", encoding_rs::GBK.encode(&gbk_text).0);
    for name in ["GB18030", "gb18030", "GBK", "Gb2312", "UTF-8"] {
        let db = sqlite_db();
        open(&db).await;
        let out = import(&db, &["--encoding", name], &gbk);
        if name == "UTF-8" {
            assert_eq!(out.status.code(), Some(65), "a GBK file read as UTF-8 is refused: {}", stderr(&out));
        } else {
            assert!(out.status.success(), "--encoding {name}: {}", stderr(&out));
        }
    }
    let utf8_text = format!("{HEADER}\r\n{}\r\n", row(CODE_B, "中铁某局集团有限公司"));
    for (what, bytes) in
        [("UTF-8", utf8_text.as_bytes().to_vec()), ("UTF-8 with a BOM", [&[0xEF, 0xBB, 0xBF][..], utf8_text.as_bytes()].concat())]
    {
        let db = sqlite_db();
        open(&db).await;
        let out = import(&db, &["--encoding", "gb18030"], &file(d, "utf8.csv", bytes));
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let store = open(&db).await;
        let profile = store.profile(&credit_tender::domain::CreditCode::parse_strict(CODE_B).unwrap(), None).await.unwrap();
        assert_eq!(profile.entity_name(), "中铁某局集团有限公司", "{what} given --encoding gb18030 is read as UTF-8");
    }
}

// ------------------------------------------------------------ 5: undecodable gRPC

/// One request body, sent as it is.
struct Once(Option<bytes::Bytes>);

impl http_body::Body for Once {
    type Data = bytes::Bytes;
    type Error = tonic::Status;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// POSTs `body` (already framed, or not) to a gRPC method: its grpc-status
/// and grpc-message, from the headers or the trailers.
async fn raw_grpc(channel: tonic::transport::Channel, path: &str, body: Vec<u8>) -> (String, String) {
    use tower::ServiceExt;
    let request = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Once(Some(body.into()))))
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut fields = parts.headers.clone();
    if !fields.contains_key("grpc-status") {
        while let Some(frame) = std::future::poll_fn(|cx| http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)).await {
            if let Ok(trailers) = frame.unwrap().into_trailers() {
                fields = trailers;
            }
        }
    }
    let get = |k: &str| fields.get(k).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let message = percent_encoding::percent_decode_str(&get("grpc-message")).decode_utf8_lossy().into_owned();
    (get("grpc-status"), message)
}

fn framed(flag: u8, length: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

#[tokio::test]
async fn requests_that_cannot_be_decoded_are_invalid_argument_on_every_method_and_stream() {
    let server = spawn_sqlite_app(AppOptions::default()).await;
    let put = "/credit_tender.v1.CreditDataService/PutRecords";
    let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let health = "/grpc.health.v1.Health/Check";
    let garbage = [0x0a, 0xff, 0xff, 0x01, 0x00];
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("a message whose bytes are not protobuf", put, framed(0, 5, &garbage)),
        ("a wrong wire type", put, framed(0, 2, &[0x08, 0x01])),
        ("a message cut short of its length prefix", put, framed(0, 100, &[0x12, 0x01])),
        ("no message at all", put, Vec::new()),
        ("a compression flag that is neither 0 nor 1", put, framed(7, 0, &[])),
        ("garbage on the reflection stream", reflection, framed(0, 5, &garbage)),
        ("a cut-short message on the reflection stream", reflection, framed(0, 50, &[0x0a])),
        ("garbage to health", health, framed(0, 5, &garbage)),
    ];
    for (what, path, body) in cases {
        let (status, message) = raw_grpc(server.channel().await, path, body).await;
        assert_eq!(status, "3", "{what}: INVALID_ARGUMENT, not INTERNAL or UNKNOWN: {message}");
        assert!(message.starts_with("the request "), "{what}: a sentence: {message}");
        reads_as_a_sentence(&message);
    }
    let metrics = crate::cache::scrape(server.addr).await;
    assert!(!metrics.contains("code=\"INTERNAL\""), "{metrics}");
}

// ------------------------------------------------------------ 6 and 7: messages, BOMs

fn bom(text: &str) -> Vec<u8> {
    [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat()
}

// Multi-threaded: the binary blocks this thread while it talks to a server on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_files_saved_by_notepad_with_a_byte_order_mark_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Keys: a keys file and a PEM key with a BOM.
    assert!(cli(&["keygen", "--out", d.join("s.pk8").to_str().unwrap()]).status.success());
    assert!(cli(&["keygen", "--out", d.join("l.pk8").to_str().unwrap()]).status.success());
    use base64::Engine;
    let der = std::fs::read(d.join("s.pk8")).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\r\n{}\r\n-----END PRIVATE KEY-----\r\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    file(d, "s.pem", bom(&pem));
    let keys = file(
        d,
        "keys.toml",
        bom(
            "[[key]]\r\nfile = \"s.pem\"\r\nstatus = \"active\"\r\n\r\n[[key]]\r\nfile = \"l.pk8\"\r\nrole = \"log\"\r\nstatus = \"active\"\r\n",
        ),
    );
    // Principals, policies and the rule files.
    let principals = file(
        d,
        "principals.toml",
        bom(
            "[[principal]]\r\nname = \"s\"\r\nrole = \"supervisor\"\r\ntoken_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\r\n",
        ),
    );
    let policies = d.join("policies");
    std::fs::create_dir(&policies).unwrap();
    let shipped = credit_tender::rules::SHIPPED_POLICIES[0].1.replace("national-template", "bom-policy");
    file(&policies, "bom.toml", bom(&shipped));
    let allow = file(d, "allow.txt", bom(&format!("{PILOT}\r\n")));
    let bands = file(d, "bands.toml", bom(credit_tender::rules::SHIPPED_SCORE_BANDS));
    let periods = file(d, "periods.toml", bom(credit_tender::rules::SHIPPED_PUBLICATION_PERIODS));
    let db = format!("sqlite://{}", d.join("s.db").display());
    let server = CliServer::spawn(&[
        "serve",
        "--db",
        &db,
        "--keys",
        keys.to_str().unwrap(),
        "--principals",
        principals.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
        "--allow-list",
        allow.to_str().unwrap(),
        "--score-bands",
        bands.to_str().unwrap(),
        "--publication-periods",
        periods.to_str().unwrap(),
    ])
    .await;
    let mut keys_client = pb::key_service_client::KeyServiceClient::new(server.channel.clone());
    let listed = keys_client.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.keys.len(), 2);
    drop(server);

    // verify: the keys (ListKeys JSON) and the envelope saved with a BOM.
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    f.put(&[evaluation_json("e", CODE_A, json!({}))]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let (_, envelope) = f.assess("T1", &[CODE_A]).await;
    let listed = pb::key_service_client::KeyServiceClient::new(f.server.channel().await)
        .list_keys(pb::ListKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let env = file(d, "st.json", bom(&serde_json::to_string(&envelope).unwrap()));
    let keys_json = file(d, "keys.json", bom(&serde_json::to_string(&listed).unwrap()));
    let out = cli(&["verify", env.to_str().unwrap(), "--keys", keys_json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A config file in another encoding is said to be so, in a sentence.
    let latin = file(d, "latin.toml", b"[[key]]\nfile = \"caf\xe9.pk8\"\nstatus = \"active\"\n");
    let out = cli(&["serve", "--db", &format!("sqlite://{}", d.join("x.db").display()), "--keys", latin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("latin.toml: cannot read: it is not UTF-8 text"), "{}", stderr(&out));
    let out = cli(&["verify", latin.to_str().unwrap(), "--keys", keys_json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let missing = d.join("missing.toml");
    let out = cli(&["serve", "--db", &format!("sqlite://{}", d.join("x.db").display()), "--keys", missing.to_str().unwrap()]);
    assert!(stderr(&out).contains("missing.toml: cannot read: no such file or directory"), "{}", stderr(&out));
    reads_as_a_sentence(&stderr(&out));
    let out = cli(&[
        "serve",
        "--db",
        &format!("sqlite://{}", d.join("x.db").display()),
        "--keys",
        keys.to_str().unwrap(),
        "--principals",
        missing.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("missing.toml: cannot read: no such file or directory"), "{}", stderr(&out));
    reads_as_a_sentence(&stderr(&out));
}

// ------------------------------------------------------------ 8: HTTP

/// A raw HTTP/1.1 request: (status, headers, body bytes as received).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let status = std::str::from_utf8(&raw[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    (status, String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(), raw[end + 4..].to_vec())
}

#[tokio::test]
async fn http_bounds_echoed_ids_and_answers_head_like_get_on_every_route() {
    let server = spawn_sqlite_app(AppOptions::default()).await;
    // A 5,000-character id: its start, an ellipsis and its length.
    let id = "A".repeat(5000);
    let (status, _, body) = http(server.addr, "GET", &format!("/tenders/{id}")).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 404);
    assert!(body.contains(&format!("{}… (5000 characters)", "A".repeat(64))), "{}", &body[..body.len().min(2000)]);
    assert!(!body.contains(&"A".repeat(65)), "the whole id is echoed");
    let (_, _, api) = http(server.addr, "GET", &format!("/api/tenders/{id}/statements")).await;
    assert!(api.len() < 1000, "the API's answer echoes the whole id: {} bytes", api.len());

    // HEAD as GET without a body, on every route the web router serves.
    let concrete = |p: &str| {
        p.replace("{id}", "NO-SUCH")
            .replace("{*tile}", "tile/0/000")
            .replace("{link}", "x")
            .replace("/api/log/proof", "/api/log/proof?index=0")
    };
    for route in credit_tender::web::paths() {
        let path = concrete(route);
        let (get_status, get_head, get_body) = http(server.addr, "GET", &path).await;
        let (head_status, head_head, head_body) = http(server.addr, "HEAD", &path).await;
        assert_ne!(head_status, 405, "HEAD {path}");
        assert_eq!(head_status, get_status, "HEAD {path} answers as GET does");
        assert!(head_body.is_empty(), "HEAD {path} has no body: {}", String::from_utf8_lossy(&head_body));
        let length = |h: &str| h.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().to_owned()));
        if let (Some(get_len), Some(head_len)) = (length(&get_head), length(&head_head)) {
            assert_eq!(get_len, head_len, "HEAD {path}: Content-Length as GET's ({} body bytes)", get_body.len());
        }
    }
}

// ------------------------------------------------------------ 9: cert

#[test]
fn cert_refuses_a_bad_host_or_days_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tls");
    let long_label = format!("{}.example", "a".repeat(64));
    let cases: &[(&[&str], &str)] = &[
        (&["--host", "credit example.gov.cn"], "is not a DNS name or an IP address"),
        (&["--host=-credit.example"], "is not a DNS name or an IP address"),
        (&["--host", "credit..example"], "is not a DNS name or an IP address"),
        (&["--host", "credit.example/path"], "is not a DNS name or an IP address"),
        (&["--host", ""], "is not a host name"),
        (&["--host", &long_label], "is not a DNS name or an IP address"),
        (&["--host", "信用.中国"], "xn--"),
        (&["--host", "credit.example", "--days", "0"], "--days"),
        (&["--host", "credit.example", "--days", "100000"], "--days"),
        (&["--host", "credit.example", "--days=-5"], "--days"),
        (&["--host", "credit.example", "--client", "../escape"], "is not a client name"),
    ];
    for (args, says) in cases {
        let mut c = bin();
        c.args(["cert", "--out", out_dir.to_str().unwrap()]).args(*args);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!out_dir.exists(), "{args:?}: wrote {}", out_dir.display());
        assert!(!dir.path().join("escape.pem").exists() && !dir.path().join("client-..").exists());
    }
    // Good names and addresses still work: a wildcard, an IPv6 address.
    let out = cli(&[
        "cert",
        "--host",
        "credit.example.gov.cn",
        "--host",
        "*.credit.example",
        "--host",
        "::1",
        "--host",
        "10.0.0.5",
        "--days",
        "3650",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Existing files: refused before any is written.
    let again = cli(&["cert", "--host", "x.example", "--client", "new", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(73), "{}", stderr(&again));
    assert!(!out_dir.join("client-new.pem").exists());
}

/// /metrics names only this server's own methods: a client that sends
/// paths of its own choosing (`/assets/r1.js`, an RPC that does not exist)
/// adds no series (it added one per path, so /metrics grew without bound).
#[tokio::test]
async fn metrics_do_not_grow_with_paths_a_client_makes_up() {
    let server = spawn_sqlite_app(AppOptions::default()).await;
    let (_, _, before) = http(server.addr, "GET", "/metrics").await;
    for n in 0..20 {
        http(server.addr, "GET", &format!("/assets/r{n}.js")).await;
        http(server.addr, "GET", &format!("/log/tile/0/00{n}.p/9")).await;
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    let mut raw = tonic::client::Grpc::new(server.channel().await);
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/credit_tender.v1.AssessmentService/MadeUp");
    let codec = tonic_prost::ProstCodec::<pb::ListKeysRequest, pb::ListKeysResponse>::default();
    let err = raw.unary(tonic::Request::new(pb::ListKeysRequest {}), path, codec).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let (_, _, after) = http(server.addr, "GET", "/metrics").await;
    let after = String::from_utf8(after).unwrap();
    assert!(!after.contains("r1.js") && !after.contains(".p/9") && !after.contains("MadeUp"), "{after}");
    assert!(after.contains("method=\"Check\""), "{after}");
    assert!(after.contains("method=\"unknown\""), "{after}");
    assert!(after.len() < String::from_utf8(before).unwrap().len() + 20_000, "{after}");
}
