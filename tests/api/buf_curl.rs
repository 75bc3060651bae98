//! `buf curl`, a real outside client that learns the schema by server
//! reflection, calls the API in all three protocols on the one port
//! (Connect and gRPC-Web over HTTP/1.1, gRPC over HTTP/2) and gets the
//! generated Rust client's answers, errors included. buf comes from npm
//! (`@bufbuild/buf`, pinned in tests/clients/package.json): `npm ci --prefix
//! tests/clients`; without it the test skips, said in the run's last line,
//! and `CREDIT_TENDER_REQUIRE_NODE=1` (CI) makes that a failure.

use crate::access::{PLATFORM_TOKEN, clients};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The npm-installed client `bin` in tests/clients/node_modules/.bin, if it runs.
pub(crate) fn npm_bin(bin: &str, version_arg: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/.bin").join(bin);
    let runs = std::process::Command::new(&path).arg(version_arg).output().is_ok_and(|o| o.status.success());
    if runs {
        return Some(path);
    }
    let required = std::env::var("CREDIT_TENDER_REQUIRE_NODE").is_ok_and(|v| v == "1");
    assert!(!required, "CREDIT_TENDER_REQUIRE_NODE=1 but {} does not run: npm ci --prefix tests/clients", path.display());
    crate::harness::skipped(crate::harness::Needs::Node, "tests/clients/node_modules is absent: npm ci --prefix tests/clients");
    None
}

/// `buf curl` of `method` with `request` in `protocol`: (it succeeded, its
/// JSON output: the answer, or the error).
async fn buf_curl(buf: &std::path::Path, addr: std::net::SocketAddr, protocol: &str, method: &str, request: Value) -> (bool, Value) {
    let (ok, text) = buf_curl_raw(buf, addr, protocol, method, request).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{protocol} {method}: not JSON ({e}): {text}"));
    (ok, v)
}

/// `buf curl` as [`buf_curl`], its output as text: a stream's messages
/// come one JSON object after another.
pub(crate) async fn buf_curl_raw(
    buf: &std::path::Path,
    addr: std::net::SocketAddr,
    protocol: &str,
    method: &str,
    request: Value,
) -> (bool, String) {
    let mut args = vec!["curl".to_owned(), "--protocol".into(), protocol.into()];
    if protocol == "grpc" {
        args.push("--http2-prior-knowledge".into());
    }
    args.extend(["-H".into(), format!("authorization: Bearer {PLATFORM_TOKEN}"), "-d".into(), request.to_string()]);
    args.push(format!("http://{addr}/credit_tender.v1.{method}"));
    let buf = buf.to_path_buf();
    let run = move || std::process::Command::new(buf).args(args).output().unwrap();
    let out = bounded(format!("buf curl {method}"), tokio::task::spawn_blocking(run)).await.unwrap();
    let text = if out.status.success() { stdout(&out) } else { stderr(&out) };
    (out.status.success(), text)
}

#[tokio::test]
async fn buf_curl_by_reflection_gets_the_rust_clients_answers_in_connect_grpc_and_grpc_web() {
    let Some(buf) = npm_bin("buf", "--version") else { return };
    let (server, code, _db) = crate::connect::seeded().await;
    let mut platform = clients(&server.channel, Some(PLATFORM_TOKEN));
    let assess = pb::AssessRequest {
        tender_id: "T-GD".into(),
        bidder: Some(pb::Bidder { credit_codes: vec![code.clone()] }),
        contract_price_fen: None,
    };
    let typed_assess = platform.assess.assess(assess).await.unwrap().into_inner();
    let typed_table = platform
        .assess
        .assess_tender(pb::AssessTenderRequest { tender_id: "T-GD".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let check = pb::CheckDepositRequest {
        tender_id: "T-GD".into(),
        bidder: Some(pb::Bidder { credit_codes: vec![code.clone()] }),
        offered_fen: 1,
        ..Default::default()
    };
    let typed_check = platform.assess.check_deposit(check).await.unwrap().into_inner();
    let mut keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone());
    let typed_keys = keys.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    let bidder = json!({"creditCodes": [code]});

    for protocol in ["connect", "grpc", "grpcweb"] {
        let (ok, v) =
            buf_curl(&buf, server.addr, protocol, "AssessmentService/Assess", json!({"tenderId": "T-GD", "bidder": bidder})).await;
        assert!(ok, "{protocol}: {v}");
        assert_eq!(serde_json::from_value::<pb::AssessResponse>(v).unwrap(), typed_assess, "{protocol}: Assess");

        let (ok, v) = buf_curl(&buf, server.addr, protocol, "AssessmentService/AssessTender", json!({"tenderId": "T-GD"})).await;
        assert!(ok, "{protocol}: {v}");
        assert_eq!(serde_json::from_value::<pb::AssessTenderResponse>(v).unwrap(), typed_table, "{protocol}: AssessTender");

        let request = json!({"tenderId": "T-GD", "bidder": bidder, "offeredFen": "1"});
        let (ok, v) = buf_curl(&buf, server.addr, protocol, "AssessmentService/CheckDeposit", request).await;
        assert!(ok, "{protocol}: {v}");
        // A new statement each time: the same fields, its own signature and time.
        assert_eq!(serde_json::from_value::<pb::CheckDepositResponse>(v).unwrap().check, typed_check.check, "{protocol}: CheckDeposit");

        let (ok, v) = buf_curl(&buf, server.addr, protocol, "KeyService/ListKeys", json!({})).await;
        assert!(ok, "{protocol}: {v}");
        assert_eq!(serde_json::from_value::<pb::ListKeysResponse>(v).unwrap(), typed_keys, "{protocol}: ListKeys");

        // An error: the same code and message as the Rust client's.
        let (ok, v) = buf_curl(&buf, server.addr, protocol, "TenderService/GetTender", json!({"tenderId": "T-NONE"})).await;
        assert!(!ok);
        assert_eq!(v["code"], json!("not_found"), "{protocol}: {v}");
        assert_eq!(v["message"], json!("no tender 'T-NONE'"), "{protocol}: {v}");
    }
    let status = platform.tenders.get_tender(pb::GetTenderRequest { tender_id: "T-NONE".into(), version: 0 }).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (tonic::Code::NotFound, "no tender 'T-NONE'"));
}
