//! Holding up under hostile input: bounded error details, decode failures
//! named as the client's, one time range for every timestamp.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use tonic::Code;

#[tokio::test]
async fn ten_thousand_bad_records_fit_in_a_trailer_every_client_accepts() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let records = (0..10_000).map(|i| to_proto(evaluation_json(&format!("e{i}"), "91440300192317458X", json!({})))).collect();
    let status = server.credit_data().await.put_records(pb::PutRecordsRequest { records, source: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // grpc-status-details-bin goes base64 in a header: grpcio refuses over 16 KiB, warns over 8.
    assert!(status.details().len() * 4 / 3 < 8 * 1024, "{} bytes of details", status.details().len());
    let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
    let v = &details.field_violations;
    assert_eq!(v[0].field, "records[0].credit_code");
    let last = v.last().unwrap();
    assert_eq!(last.field, "…");
    assert!(last.description.starts_with(&format!("{} more problem(s) not listed here", 10_000 - (v.len() - 1))), "{}", last.description);
}

/// Sends raw bytes as a unary request body, as a broken or hostile client would.
pub(crate) mod raw {
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    pub(crate) struct Raw;
    pub(crate) struct RawEncoder;
    pub(crate) struct Ignore;

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Ignore {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            use bytes::Buf;
            let mut out = vec![0; src.remaining()];
            src.copy_to_slice(&mut out);
            Ok(Some(out))
        }
    }

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = Ignore;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> Ignore {
            Ignore
        }
    }

    pub(crate) async fn call(channel: tonic::transport::Channel, path: &str, body: Vec<u8>) -> Result<(), Status> {
        call_bytes(channel, path, body).await.map(|_| ())
    }

    /// The answer's message bytes, exactly as sent.
    pub(crate) async fn call_bytes(channel: tonic::transport::Channel, path: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
        let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
        grpc.ready().await.map_err(|e| Status::unknown(e.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).map_err(|e| Status::invalid_argument(e.to_string()))?;
        grpc.unary(tonic::Request::new(body), path, Raw).await.map(|r| r.into_inner())
    }
}

#[tokio::test]
async fn undecodable_and_oversized_requests_are_the_clients_errors() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let put = "/credit_tender.v1.CreditDataService/PutRecords";
    // Field 1 (records) as a length-delimited field whose length runs past the end.
    let garbage = vec![0x0a, 0xff, 0xff, 0x01, 0x00];
    let status = raw::call(server.channel().await, put, garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not a valid protobuf message"), "{}", status.message());
    // Field 2 (source) with invalid UTF-8.
    let bad_utf8 = vec![0x12, 0x02, 0xff, 0xfe];
    let status = raw::call(server.channel().await, put, bad_utf8).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let big = vec![0x12, 0x80, 0x80, 0x80, 0x09].into_iter().chain(std::iter::repeat_n(b'x', 18 << 20)).collect();
    let status = raw::call(server.channel().await, put, big).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let metrics = crate::cache::scrape(server.addr).await;
    assert!(metrics.contains("code=\"INVALID_ARGUMENT\""), "counted as client errors: {metrics}");
    assert!(!metrics.contains("code=\"INTERNAL\""), "{metrics}");
}

#[tokio::test]
async fn every_timestamp_and_date_is_within_one_range_named_by_field() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let mut tenders = server.tenders.clone();
    for (seconds, label) in [(253_402_300_800_i64, "year 10000"), (-62_167_219_200, "year 0"), (946_684_799 - 8 * 3600, "1999 in Shanghai")]
    {
        let mut terms = crate::assessment::terms("440300", "2026-12-15");
        terms.bid_deadline = Some(pbjson_types::Timestamp { seconds, nanos: 0 });
        let req = pb::RegisterTenderRequest { tender_id: "T".into(), terms: Some(terms), policy_id: "national-template".into() };
        let status = tenders.register_tender(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{label}");
        let v = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
        assert_eq!(v.field_violations[0].field, "terms.bid_deadline", "{label}");
    }
    let mut data = server.credit_data().await;
    let as_of = Some(pbjson_types::Timestamp { seconds: 1_800_000_000, nanos: -1 });
    let status = data.get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), as_of, data_version: None }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("as_of: nanos must be within"), "{}", status.message());
    let far = evaluation_json("e", CODE_A, json!({"valid_to": "2200-01-01"}));
    let status = data.put_records(pb::PutRecordsRequest { records: vec![to_proto(far)], source: String::new() }).await.unwrap_err();
    assert!(status.message().contains("records[0].valid_to: 2200-01-01 is outside the dates this service accepts"), "{}", status.message());
    assert!(
        data.get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), as_of: None, data_version: None })
            .await
            .unwrap()
            .into_inner()
            .records
            .is_empty()
    );
}

#[tokio::test]
async fn verify_refuses_revoked_keys_statements_outside_validity_other_algorithms_and_any_bad_signature() {
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    let c = crate::assessment::code(93);
    f.put(&[evaluation_json("e", &c, json!({}))]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let (_, envelope) = f.assess("T1", &[&c]).await;
    let keys = pb::key_service_client::KeyServiceClient::new(f.server.channel().await)
        .list_keys(pb::ListKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &dyn erased::Json| file(dir.path(), name, v.json());
    let env_path = write("env.json", &envelope);
    let verify = |keys: &pb::ListKeysResponse, env: &std::path::Path, extra: &[&str]| {
        let keys_path = file(dir.path(), "keys.json", serde_json::to_vec(keys).unwrap());
        let mut args = vec!["verify", env.to_str().unwrap(), "--keys", keys_path.to_str().unwrap()];
        args.extend_from_slice(extra);
        cli(&args)
    };
    assert!(verify(&keys, &env_path, &[]).status.success());

    let mut revoked = keys.clone();
    revoked.keys[0].status = "revoked".into();
    let out = verify(&revoked, &env_path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));

    let mut expired = keys.clone();
    expired.keys[0].valid_to = Some(pbjson_types::Timestamp { seconds: 1_700_000_000, nanos: 0 });
    let out = verify(&expired, &env_path, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was not valid when the statement was issued"), "{}", stderr(&out));

    let mut rsa = keys.clone();
    rsa.keys[0].algorithm = "rsa".into();
    let out = verify(&rsa, &env_path, &[]);
    assert_eq!(out.status.code(), Some(65), "a key list the verifier cannot use is data refused");
    assert!(stderr(&out).contains("algorithm 'rsa' is not ed25519"), "{}", stderr(&out));

    // One good signature and one garbage one, of every length an Ed25519
    // signature is not (empty, short, long) as well as the right length: a
    // verifier that skipped a signature it could not parse would count 1 of
    // 1 and accept.
    for (label, junk) in [
        ("64 zero bytes", vec![0u8; 64]),
        ("empty", Vec::new()),
        ("one byte", vec![7u8]),
        ("truncated", envelope.signatures[0].sig[..32].to_vec()),
        ("63 bytes", vec![1u8; 63]),
        ("65 bytes", vec![1u8; 65]),
        ("the good one and one byte more", [&envelope.signatures[0].sig[..], &[0u8]].concat()),
    ] {
        let mut two = envelope.clone();
        two.signatures.push(pb::Signature { keyid: envelope.signatures[0].keyid.clone(), sig: junk.into() });
        let two_path = write("two.json", &two);
        let out = verify(&keys, &two_path, &[]);
        assert_eq!(out.status.code(), Some(1), "one good and one garbage ({label}) signature is not valid: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("1 of 2 signature(s) verify; 2 required") && err.contains("does not match"), "{label}: {err}");
        assert!(stdout(&out).contains("Signature   valid"), "every signature's result is reported");
        assert!(verify(&keys, &two_path, &["--threshold", "1"]).status.success(), "{label}");
    }
}

/// serde_json for the generated types, without naming each.
mod erased {
    pub(super) trait Json {
        fn json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap()
        }
    }
}

#[tokio::test]
async fn text_that_fools_people_is_refused_by_field() {
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    let put = |r: pb::Record| pb::PutRecordsRequest { records: vec![r], source: String::new() };
    for (label, extra, field) in [
        ("zero-width space", json!({"entity_name": "演示路桥\u{200B}"}), "records[0].entity_name"),
        ("bidi override", json!({"entity_name": "abc\u{202E}cba"}), "records[0].entity_name"),
        ("NUL in an id", json!({"id": "e\u{0}1"}), "records[0].id"),
    ] {
        let status = f.data.put_records(put(to_proto(evaluation_json("e", CODE_A, extra)))).await.unwrap_err();
        let v = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
        assert_eq!(v.field_violations[0].field, field, "{label}: {status:?}");
    }
    let mut nan = to_proto(evaluation_json("e", CODE_A, json!({})));
    if let Some(pb::record::Kind::Evaluation(e)) = &mut nan.kind {
        e.score = Some(f64::NAN);
    }
    let status = f.data.put_records(put(nan)).await.unwrap_err();
    assert!(status.message().contains("records[0].score: NaN is not a number"), "{}", status.message());

    for (label, id, title, field) in [
        ("Cyrillic look-alike id", "D\u{415}MO-SX-2026-001", "t", "tender_id"),
        ("bidi in a title", "T-1", "标题\u{202E}", "terms.title"),
        ("NUL in a title", "T-2", "a\u{0}b", "terms.title"),
    ] {
        let mut terms = crate::assessment::terms("440300", "2026-12-15");
        terms.title = title.into();
        let req = pb::RegisterTenderRequest { tender_id: id.into(), terms: Some(terms), policy_id: "national-template".into() };
        let status = f.tenders.register_tender(req).await.unwrap_err();
        let v = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
        assert_eq!(v.field_violations[0].field, field, "{label}: {status:?}");
    }
}

#[tokio::test]
async fn the_committees_csv_neutralises_formulas() {
    let Some(browser) = crate::web::Browser::start().await else { return };
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    let c = crate::assessment::code(94);
    f.put(&[evaluation_json("e", &c, json!({"entity_name": "=HYPERLINK(\"http://evil.example\",\"点此\")"}))]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    f.tenders
        .register_bid(pb::RegisterBidRequest { tender_id: "T1".into(), bidder: Some(pb::Bidder { credit_codes: vec![c.clone()] }) })
        .await
        .unwrap();
    browser.goto(&format!("http://{}/tenders/T1", f.server.addr)).await;
    browser.ready().await;
    let csv = browser
        .eval_async(
            "const done = arguments[arguments.length - 1]; fetch(document.getElementById('csv').href).then(r => r.text()).then(done);",
        )
        .await;
    let csv = csv.as_str().unwrap();
    assert!(csv.contains("\"'=HYPERLINK("), "the formula is neutralised: {csv}");
    assert!(!csv.contains("\"=HYPERLINK("), "{csv}");
}

/// A server on a SQLite file with one record written, and a health Watch on it.
struct ServingFile {
    _dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    server: CliServer,
    data: pb::credit_data_service_client::CreditDataServiceClient<tonic::transport::Channel>,
    watch: tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
}

impl ServingFile {
    async fn start() -> ServingFile {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("credit.db");
        let url = format!("sqlite://{}", db_path.display());
        let keys = keys_file(dir.path());
        let server = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap()]).await;
        let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(server.channel.clone());
        data.put_records(put("a")).await.unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
        let watch = health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
        ServingFile { _dir: dir, db_path, server, data, watch }
    }
}

/// One evaluation of CODE_A, its year set by the id's length (one grade per year).
fn put(id: &str) -> pb::PutRecordsRequest {
    pb::PutRecordsRequest {
        records: vec![to_proto(evaluation_json(id, CODE_A, json!({"year": 2000 + id.len() as i64})))],
        source: String::new(),
    }
}

#[tokio::test]
async fn a_deleted_database_turns_health_off_and_no_write_is_acknowledged_after() {
    let ServingFile { _dir: _keep, db_path, server, mut data, mut watch } = ServingFile::start().await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(watch.message().await.unwrap().unwrap().status, serving);

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let status = data.put_records(put("bb")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("the credit store is lost"), "{}", status.message());
    // The probe notices within a second; health says so (awaited on the Watch stream).
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.status, tonic_health::pb::health_check_response::ServingStatus::NotServing as i32);
    let status = data.put_records(put("ccc")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    server.log_line("fails its probe").await;
}

/// Random bytes to every RPC the descriptors declare, over a real server:
/// each answer is a named client error (or OK), never INTERNAL or UNKNOWN,
/// and the server keeps serving. `RPC_FUZZ_CASES` per method (32 by
/// default; 0 is refused). The seed is `FUZZ_SEED` (`.ci/run` draws one per
/// run) or drawn here, and named in any failure; a failing body is kept in
/// `proptest-regressions/api/rpc_fuzz.txt` and replayed first on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_to_every_rpc_get_named_errors() {
    use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let cases = knob("RPC_FUZZ_CASES", 32, 1) as u32;
    let seed = fuzz_seed();
    let replay = format!("replay with FUZZ_SEED={seed} cargo test --test api raw_bytes");
    let seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u32>>> = Default::default();
    let handle = tokio::runtime::Handle::current();
    for method in rpc_paths() {
        let config = Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/api/rpc_fuzz.txt"
            )))),
            ..Config::default()
        };
        let (channel, handle, seen) = (server.channel.clone(), handle.clone(), seen.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut runner = TestRunner::new(config);
            runner.run(&proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), |body| {
                let code = match handle.block_on(raw::call(channel.clone(), &method, body)) {
                    Ok(()) => Code::Ok,
                    Err(s) => s.code(),
                };
                *seen.lock().unwrap().entry(format!("{code:?}")).or_insert(0) += 1;
                if matches!(code, Code::Internal | Code::Unknown) {
                    return Err(TestCaseError::fail(format!("{method} answered {code:?}")));
                }
                Ok(())
            })
        })
        .await
        .unwrap();
        if let Err(e) = outcome {
            panic!("{e} ({replay})");
        }
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains_key("InvalidArgument"), "{seen:?} ({replay})");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
}

#[tokio::test]
async fn a_large_tender_is_assessed_in_pages() {
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    f.tender("BIG", "national-template", "440300", "2026-12-15").await;
    const BIDS: u32 = 450;
    for n in 0..BIDS {
        let bidder = Some(pb::Bidder { credit_codes: vec![crate::assessment::code(10_000 + n)] });
        f.tenders.register_bid(pb::RegisterBidRequest { tender_id: "BIG".into(), bidder }).await.unwrap();
    }
    let ask =
        |page_size: u32, page_token: &str| pb::AssessTenderRequest { tender_id: "BIG".into(), page_size, page_token: page_token.into() };
    let status = f.assess.assess_tender(ask(0, "")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("page_size: is 0 (every bid), but the tender has 450 bids") && status.message().contains("page_token"),
        "{}",
        status.message()
    );
    assert!(f.assess.assess_tender(ask(201, "")).await.unwrap_err().message().contains("page_size: 201 is above 200"));
    assert!(f.assess.assess_tender(ask(10, "bogus")).await.unwrap_err().message().contains("page_token: is not a token"));

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = f.assess.assess_tender(ask(200, &token)).await.unwrap().into_inner();
        pages += 1;
        seen.extend(page.bids.iter().map(|b| b.bid.as_ref().unwrap().sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=BIDS).collect::<Vec<_>>(), "every bid once, in bid order");

    // The committee page's API pages the same way.
    let (status, body) = http_get(f.server.addr, "/api/tenders/BIG/statements").await;
    assert_eq!(status, 200);
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(first["bids"].as_array().unwrap().len(), 200);
    let next = first["next_page_token"].as_str().unwrap();
    let (_, body) = http_get(f.server.addr, &format!("/api/tenders/BIG/statements?page_token={next}")).await;
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(second["bids"][0]["sequence"], 201);
}

/// Past the cap, a new client waits unserved until a place frees. Read
/// from the server's own counts, not from the clock: the accept loop says
/// when a client is waiting at the cap (`connections_waiting`), and at that
/// moment the connection gauge holds the cap and the waiting call has had
/// no answer; with the cap broken, no client would ever wait.
#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_one_closes() {
    let db = sqlite_db();
    let options = credit_tender::server::ServerOptions { max_connections: 1, ..Default::default() };
    let server = spawn_app(open(&db).await, AppOptions { server: options, ..AppOptions::default() }).await;
    let metrics = server.cache.metrics().clone();
    let check = || tonic_health::pb::HealthCheckRequest { service: String::new() };
    let first = bounded("connect", endpoint(server.addr).connect()).await.unwrap();
    tonic_health::pb::health_client::HealthClient::new(first.clone()).check(check()).await.unwrap();
    let mut waiting = metrics.waiting();
    let second = endpoint(server.addr).connect_lazy();
    let mut client = tonic_health::pb::health_client::HealthClient::new(second);
    let call = tokio::spawn(async move { client.check(check()).await });
    let at_cap = tokio::time::timeout(std::time::Duration::from_secs(10), waiting.wait_for(|n| *n == 1)).await.is_ok();
    assert!(at_cap, "no client waited at a cap of one connection: the second was let in");
    let text = metrics.render();
    assert_eq!(crate::cache::sample(&text, "credit_tender_connections_open"), 1.0, "{text}");
    assert_eq!(crate::cache::sample(&text, "credit_tender_connection_events_total{event=\"waited\"}"), 1.0, "{text}");
    assert!(!call.is_finished(), "the waiting client was answered");
    drop(first);
    let served = tokio::time::timeout(std::time::Duration::from_secs(10), call).await;
    assert!(served.is_ok_and(|r| r.unwrap().is_ok()), "the waiting client is served once a place frees");
    assert_eq!(*metrics.waiting().borrow(), 0, "a client still counted as waiting after it was served");
}

#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    use crate::cache::{sample, scrape};
    use tokio::io::AsyncReadExt;
    let db = sqlite_db();
    let options = credit_tender::server::ServerOptions { idle_timeout: std::time::Duration::from_secs(1), ..Default::default() };
    let server = spawn_app(open(&db).await, AppOptions { server: options, ..AppOptions::default() }).await;
    // A client that opens HTTP/2 (its preface) and then says nothing is
    // closed (the read ends). One that sends nothing at all is closed
    // earlier, at the handshake timeout (overload.rs).
    let mut silent = bounded("connect", tokio::net::TcpStream::connect(server.addr)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut silent, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Ok(n) = silent.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    });
    assert!(closed.await.is_ok(), "an idle connection was still open after 15 s with a 1 s idle timeout");
    let accepted = "credit_tender_connection_events_total{event=\"accepted\"}";
    let before = scrape(server.addr).await;
    assert!(sample(&before, "credit_tender_connection_events_total{event=\"idle_closed\"}") >= 1.0, "{before}");

    // A client calling every 300 ms for 3 s keeps its one connection.
    let channel = bounded("connect", endpoint(server.addr).connect()).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..10 {
        health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
        // The wall clock is the subject: a real socket's idle timer, with
        // calls spaced closer than the idle timeout, is what is tested.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let after = scrape(server.addr).await;
    // One connection for the client, one for this scrape.
    assert_eq!(sample(&after, accepted) - sample(&before, accepted), 2.0, "{after}");
}

/// Out of descriptors, the accept loop backs off instead of spinning, logs
/// once, and recovers. Counted by the server itself: when it accepts again
/// it logs how long the episode lasted and how many attempts failed, which
/// its retry counter (`connection_events_total{event="accept_error"}`)
/// confirms; at most one attempt per 100 ms back-off fits in the episode,
/// where a spinning loop would make thousands.
#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_logs_and_recovers() {
    let server = CliServer::spawn_limited(&["demo"], Some(64)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let check = || tonic_health::pb::HealthCheckRequest { service: String::new() };
    health.check(check()).await.unwrap();
    // Far more connections than the server has descriptors for.
    let mut held = Vec::new();
    for _ in 0..120 {
        // Past the descriptors and the listen backlog, a connect would hang.
        match tokio::time::timeout(std::time::Duration::from_secs(2), tokio::net::TcpStream::connect(server.addr)).await {
            Ok(tcp) => held.push(tcp.unwrap()),
            Err(_) => break,
        }
    }
    server.log_line("accept failed").await;
    drop(held);
    let again = server.log_line("accepting connections again").await;
    let field = |name: &str| -> u64 {
        let at = again.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in: {again}"));
        again[at + name.len() + 1..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let (after_ms, retries) = (field("after_ms"), field("retries"));
    assert!(retries >= 1, "{again}");
    assert!(retries <= after_ms / 100 + 1, "{retries} failed accepts in {after_ms} ms: the loop spun instead of backing off 100 ms");
    let fresh = endpoint(server.addr).connect_lazy();
    tonic_health::pb::health_client::HealthClient::new(fresh).check(check()).await.unwrap();
    let metrics = crate::cache::scrape(server.addr).await;
    let counted = crate::cache::sample(&metrics, "credit_tender_connection_events_total{event=\"accept_error\"}");
    // The counter holds every failed accept: this episode's, and any short
    // one while the freed descriptors are taken again by the backlog.
    assert!(counted >= retries as f64, "the retry counter ({counted}) has fewer failures than the log: {again}");
}

#[tokio::test]
async fn a_database_corrupted_in_place_turns_health_off_refuses_writes_and_recovers_when_repaired() {
    let ServingFile { _dir: _keep, db_path, server, mut data, mut watch } = ServingFile::start().await;
    use tonic_health::pb::health_check_response::ServingStatus;
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);

    // First a checkpoint from another process (this one), so that the first
    // page SQLite reads is the one in the file: a header overwritten while a
    // newer copy of that page waits in the WAL is written over by the next
    // checkpoint, and SQLite rightly reads the database as sound.
    {
        use sqlx::{Connection, Row};
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db_path).create_if_missing(false);
        let mut c = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut c).await.unwrap();
        assert_eq!(row.get::<i64, _>(0), 0, "the checkpoint was not blocked");
        c.close().await.unwrap();
    }
    // Overwrite the header in place: same file, same inode, not a database any more.
    let original = std::fs::read(&db_path).unwrap();
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&db_path).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(&[0xA5; 100]).unwrap();
        f.sync_all().unwrap();
    }
    let status = data.put_records(put("bb")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("corrupt"), "{}", status.message());
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    server.log_line("fails its probe").await;

    // Put the header back: the probe passes, health says so, writes are taken again.
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&db_path).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(&original[..100]).unwrap();
        f.sync_all().unwrap();
    }
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::Serving as i32);
    server.log_line("answers again").await;
    data.put_records(put("ccc")).await.unwrap();
    let profile = pb::credit_data_service_client::CreditDataServiceClient::new(server.channel.clone())
        .get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(profile.records.len(), 2, "the record refused while corrupt is absent, the others are there: {profile:?}");
}

/// Requests waiting on the same new statement share its failure: when the
/// log cannot record it, every one of them is told UNAVAILABLE (once, one
/// of them panicked the server's task instead).
#[tokio::test]
async fn concurrent_requests_for_one_statement_the_log_cannot_record_are_each_told_unavailable() {
    let ServingFile { _dir: _keep, db_path, server, data: _, watch: _ } = ServingFile::start().await;
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(server.channel.clone());
    tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T".into(),
            terms: Some(crate::assessment::terms("440300", "2026-12-15")),
            policy_id: "national-template".into(),
        })
        .await
        .unwrap();
    let assess = pb::assessment_service_client::AssessmentServiceClient::new(server.channel.clone());
    let request = |price: i64| pb::AssessRequest {
        tender_id: "T".into(),
        bidder: Some(pb::Bidder { credit_codes: vec![CODE_A.into()] }),
        contract_price_fen: Some(price),
    };
    assess.clone().assess(request(100_000_000)).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    // Tender and profile are cached; the statement at a new price is not.
    let calls = (0..16).map(|_| {
        let mut assess = assess.clone();
        async move { assess.assess(request(200_000_000)).await }
    });
    for result in futures_util::future::join_all(calls).await {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
}
