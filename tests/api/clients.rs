//! Other clients see the same contract: a Python grpcio client that knows
//! nothing but what the server's reflection service tells it (as grpcurl
//! works: schema by reflection, request as JSON, answer as protobuf JSON)
//! gets the same answers, field for field, as the generated Rust client.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use pb::assessment_service_client::AssessmentServiceClient;
use pb::tender_service_client::TenderServiceClient;
use prost::Message;
use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/reflect_call.py");

/// Whether python3 with grpcio, grpcio-reflection and protobuf is here;
/// `CREDIT_TENDER_REQUIRE_PYTHON_GRPC=1` (CI) makes their absence a failure.
pub(crate) fn python_grpc() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_reflection, google.protobuf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("CREDIT_TENDER_REQUIRE_PYTHON_GRPC").is_ok_and(|v| v == "1");
        assert!(!required, "CREDIT_TENDER_REQUIRE_PYTHON_GRPC=1 but python3 cannot import grpc, grpc_reflection and google.protobuf");
        crate::harness::skipped(
            crate::harness::Needs::PythonGrpc,
            "python3 cannot import grpc, grpc_reflection and google.protobuf: pip install grpcio grpcio-reflection protobuf",
        );
    }
    ok
}

/// One call from Python: (the answer as protobuf JSON, its binary encoding).
async fn python_call(server: &CliServer, method: &str, request: Value) -> (Value, Vec<u8>) {
    let args = [SCRIPT.to_owned(), server.addr.to_string(), method.to_owned(), request.to_string()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(args).output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{method}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unknown_fields"], 0, "{method}: the reflected schema does not describe every field sent");
    let hex = v["binary"].as_str().unwrap();
    let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    (v["json"].clone(), bytes)
}

/// The statement as signed (the envelope's payload) is protobuf's JSON
/// mapping of the statement: Python's own mapping of the answer it decoded
/// must be the same object. Timestamps are compared as instants: the
/// payload writes UTC as `+00:00`, protobuf's printers as `Z` (its parsers
/// take both).
fn same_statement(python: &Value, answer: &pb::AssessResponse, what: &str) {
    let signed: Value = serde_json::from_slice(&answer.envelope.as_ref().unwrap().payload).unwrap();
    assert_eq!(utc_as_z(python["statement"].clone()), utc_as_z(signed), "{what}: Python's JSON of the statement is not the signed payload");
}

fn utc_as_z(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > 20 && s.ends_with("+00:00") && chrono::DateTime::parse_from_rfc3339(&s).is_ok() => {
            Value::String(format!("{}Z", &s[..s.len() - 6]))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(utc_as_z).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, utc_as_z(v))).collect()),
        other => other,
    }
}

#[tokio::test]
async fn a_python_grpcio_client_by_reflection_gets_the_same_answers_field_for_field() {
    if !python_grpc() {
        return;
    }
    let demo = CliServer::spawn(&["demo"]).await;
    let mut tenders = TenderServiceClient::new(demo.channel.clone());
    let mut assess = AssessmentServiceClient::new(demo.channel.clone());
    let list = tenders.list_tenders(pb::ListTendersRequest {}).await.unwrap().into_inner().tenders;
    let mut statements = 0;
    for t in &list {
        // Every demo statement, through the committee's table.
        let typed = assess
            .assess_tender(pb::AssessTenderRequest { tender_id: t.tender_id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let (py, bytes) = python_call(&demo, "credit_tender.v1.AssessmentService/AssessTender", json!({"tenderId": t.tender_id})).await;
        assert_eq!(pb::AssessTenderResponse::decode(&bytes[..]).unwrap(), typed, "{}: AssessTender", t.tender_id);
        let rows = py["bids"].as_array().map_or(&[][..], Vec::as_slice);
        assert_eq!(rows.len(), typed.bids.len());
        for (row, bid) in rows.iter().zip(&typed.bids) {
            let answer = bid.assessment.as_ref().unwrap();
            same_statement(&row["assessment"], answer, &t.tender_id);
            assert_eq!(row["assessment"]["logIndex"], json!(answer.log_index.unwrap().to_string()), "uint64 is a JSON string");
            statements += 1;
        }
        let Some(first) = typed.bids.first() else { continue };
        let codes = first.bid.as_ref().unwrap().bidder.as_ref().unwrap().credit_codes.clone();

        // Assess and CheckDeposit for its first bidder.
        let request = pb::AssessRequest {
            tender_id: t.tender_id.clone(),
            bidder: Some(pb::Bidder { credit_codes: codes.clone() }),
            contract_price_fen: None,
        };
        let typed = assess.assess(request).await.unwrap().into_inner();
        let (py, bytes) = python_call(
            &demo,
            "credit_tender.v1.AssessmentService/Assess",
            json!({"tenderId": t.tender_id, "bidder": {"creditCodes": codes}}),
        )
        .await;
        assert_eq!(pb::AssessResponse::decode(&bytes[..]).unwrap(), typed, "{}: Assess", t.tender_id);
        same_statement(&py, &typed, &t.tender_id);

        let request = pb::CheckDepositRequest {
            tender_id: t.tender_id.clone(),
            bidder: Some(pb::Bidder { credit_codes: codes.clone() }),
            offered_fen: 1,
            ..Default::default()
        };
        let typed = assess.check_deposit(request).await.unwrap().into_inner();
        let (py, bytes) = python_call(
            &demo,
            "credit_tender.v1.AssessmentService/CheckDeposit",
            json!({"tenderId": t.tender_id, "bidder": {"creditCodes": codes}, "offeredFen": "1"}),
        )
        .await;
        // Each deposit check is a new statement (signed when asked): the same
        // fields, but its own signature and time.
        let from_python = pb::CheckDepositResponse::decode(&bytes[..]).unwrap();
        let (a, b) = (from_python.check.unwrap(), typed.check.unwrap());
        assert_eq!(a, b, "{}: CheckDeposit", t.tender_id);
        assert_eq!(py["check"]["offeredFen"], json!("1"));
        assert_eq!(py["check"]["satisfied"].as_bool().unwrap_or(false), b.satisfied);
    }
    assert!(statements >= 15, "{statements}");
}
