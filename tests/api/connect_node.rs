//! A Node client built as a platform team would build one: the protobuf-es
//! code generator's output for proto/ (`buf generate`, made here, never
//! kept) and @connectrpc/connect-node, calling Assess over TLS with a
//! platform's token in the Connect protocol (HTTP/2) and in gRPC-Web
//! (HTTP/1.1) (tests/clients/connect_node.mjs). Both answers are the Rust
//! client's; a refusal arrives as the same code and message. The npm
//! packages are pinned in tests/clients/package-lock.json; without them the
//! test skips (`CREDIT_TENDER_REQUIRE_NODE=1` makes that a failure).

use crate::access::{Certs, HOST, PLATFORM_TOKEN, clients, seed, spawn_secure, tls_channel};
use crate::buf_curl::npm_bin;
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use std::path::Path;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/connect_node.mjs");

#[tokio::test]
async fn a_connect_node_client_from_generated_code_assesses_over_tls_with_a_token_in_connect_and_grpc_web() {
    let (Some(buf), Some(protoc_gen_es)) = (npm_bin("buf", "--version"), npm_bin("protoc-gen-es", "--version")) else { return };
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure(&db, &certs).await;
    let code = crate::assessment::code(230);
    seed(server.addr, &certs, &code).await;
    let channel = tls_channel(server.addr, &certs, None).await;
    let request = pb::AssessRequest {
        tender_id: "T-GD".into(),
        bidder: Some(pb::Bidder { credit_codes: vec![code.clone()] }),
        contract_price_fen: None,
    };
    let typed = clients(&channel, Some(PLATFORM_TOKEN)).assess.assess(request).await.unwrap().into_inner();

    // The generated client code, as `buf generate` writes it for protobuf-es.
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen");
    let template = serde_json::json!({
        "version": "v2",
        "plugins": [{"local": protoc_gen_es.to_str().unwrap(), "out": generated.to_str().unwrap(), "opt": ["target=js", "import_extension=js"]}],
    });
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let run = move || {
        std::process::Command::new(buf).args(["generate", proto.to_str().unwrap(), "--template", &template.to_string()]).output().unwrap()
    };
    let out = bounded("buf generate", tokio::task::spawn_blocking(run)).await.unwrap();
    assert!(out.status.success(), "buf generate: {}", stderr(&out));
    // The generated modules are ES modules and import @bufbuild/protobuf.
    file(dir.path(), "package.json", r#"{"type": "module"}"#);
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules"), dir.path().join("node_modules"))
        .unwrap();

    let args = [
        SCRIPT.to_owned(),
        generated.to_str().unwrap().to_owned(),
        format!("https://127.0.0.1:{}", server.addr.port()),
        HOST.to_owned(),
        certs.path("ca.pem").to_str().unwrap().to_owned(),
        PLATFORM_TOKEN.to_owned(),
        "T-GD".to_owned(),
        code,
    ];
    let run = move || std::process::Command::new("node").args(args).output().unwrap();
    let out = bounded("the Node client", tokio::task::spawn_blocking(run)).await.unwrap();
    assert!(out.status.success(), "connect_node.mjs: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for door in ["connect", "grpcWeb"] {
        let answer: pb::AssessResponse = serde_json::from_value(v[door].clone()).unwrap_or_else(|e| panic!("{door}: {e}: {v}"));
        assert_eq!(answer, typed, "{door}: the Rust client's answer");
    }
    assert_eq!(v["refused"], serde_json::json!({"code": "NotFound", "message": "no tender 'NO-SUCH-TENDER'"}), "{v}");
}
