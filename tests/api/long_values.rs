//! Long bad values come back as INVALID_ARGUMENT naming their field, to a
//! grpcio client (issue 19). An error used to echo the value twice (message
//! and details, percent-encoded); past grpcio's metadata limit (a 6,000
//! character grade; Chinese from about 800 characters) it reported
//! RESOURCE_EXHAUSTED instead, which clients retry. Every string field of
//! every request, 10,000 ASCII and 3,000 Chinese characters, from Python
//! (tests/clients/long_values.py), knowing the API by reflection only.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/long_values.py");

fn proto_json<T: serde::Serialize>(m: &T) -> Value {
    serde_json::to_value(m).unwrap()
}

/// A valid request of each method that has string fields; between them,
/// every string field is reachable (the script checks).
fn bases() -> Value {
    let put = |record: Value| proto_json(&pb::PutRecordsRequest { records: vec![to_proto(record)], source: "test".into() });
    let terms = crate::assessment::terms("440300", "2026-12-15");
    let bidder = pb::Bidder { credit_codes: vec![CODE_A.into()] };
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    json!({
        "credit_tender.v1.CreditDataService/PutRecords": [
            put(evaluation_json("e", CODE_A, json!({"evaluation_kind": "annual", "status": "published"}))),
            put(list_entry_json("l", CODE_A, "transport_blacklist")),
            put(penalty_json("p", CODE_A, json!({}))),
            put(commitment_json("c", CODE_A, json!({}))),
            put(event_json("v", CODE_A, "l", "repair", "2026-06-01")),
        ],
        "credit_tender.v1.CreditDataService/GetProfile": [proto_json(&pb::GetProfileRequest { credit_code: CODE_A.into(), ..Default::default() })],
        "credit_tender.v1.TenderService/RegisterTender": [proto_json(&pb::RegisterTenderRequest { tender_id: "T1".into(), terms: Some(terms.clone()), policy_id: "national-template".into() })],
        "credit_tender.v1.TenderService/AmendTender": [proto_json(&pb::AmendTenderRequest { tender_id: "T1".into(), terms: Some(terms.clone()) })],
        "credit_tender.v1.TenderService/GetTender": [proto_json(&pb::GetTenderRequest { tender_id: "T1".into(), ..Default::default() })],
        "credit_tender.v1.TenderService/RegisterBid": [proto_json(&pb::RegisterBidRequest { tender_id: "T1".into(), bidder: Some(bidder.clone()) })],
        "credit_tender.v1.TenderService/GrantCommitteeAccess": [proto_json(&pb::GrantCommitteeAccessRequest {
            tender_id: "T1".into(),
            member_ref: "专家 1".into(),
            expires_at: Some(pbjson_types::Timestamp { seconds: in_an_hour.timestamp(), nanos: 0 }),
        })],
        "credit_tender.v1.TenderService/RevokeCommitteeAccess": [proto_json(&pb::RevokeCommitteeAccessRequest { grant_id: "0123456789abcdef".into() })],
        "credit_tender.v1.AssessmentService/Assess": [proto_json(&pb::AssessRequest { tender_id: "T1".into(), bidder: Some(bidder.clone()), contract_price_fen: None })],
        "credit_tender.v1.AssessmentService/AssessTender": [proto_json(&pb::AssessTenderRequest { tender_id: "T1".into(), ..Default::default() })],
        "credit_tender.v1.AssessmentService/WatchTender": [proto_json(&pb::WatchTenderRequest { tender_id: "T1".into(), after: None })],
        "credit_tender.v1.AssessmentService/CheckDeposit": [proto_json(&pb::CheckDepositRequest { tender_id: "T1".into(), bidder: Some(bidder), offered_fen: 1, form: "cash".into(), ..Default::default() })],
        "credit_tender.v1.SupervisionService/ClassifyFirm": [proto_json(&pb::ClassifyFirmRequest {
            credit_code: CODE_A.into(),
            domain: "highway_construction".into(),
            region: "440300".into(),
            date: "2026-12-15".into(),
            policy_id: "transport-risk-classes".into(),
        })],
        "credit_tender.v1.SupervisionService/DrawInspection": [proto_json(&pb::DrawInspectionRequest {
            region: "440300".into(),
            domain: "highway_construction".into(),
            date: "2026-12-15".into(),
            policy_id: "transport-risk-classes".into(),
            ..Default::default()
        })],
        "credit_tender.v1.SupervisionService/GetOutcomes": [proto_json(&pb::GetOutcomesRequest {
            region_prefix: "44".into(),
            domain: "highway_construction".into(),
            from: "2026-01-01".into(),
            to: "2026-12-31".into(),
        })],
    })
}

#[tokio::test]
async fn every_string_field_of_every_request_too_long_is_invalid_argument_naming_it_in_grpcio() {
    if !crate::clients::python_grpc() {
        return;
    }
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    f.put(&[evaluation_json("e", CODE_A, json!({})), list_entry_json("l", CODE_A, "transport_blacklist")]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let before = snapshot(&db.url).await;
    let args = [SCRIPT.to_owned(), f.server.addr.to_string(), bases().to_string()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(args).output()).await.unwrap().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", report.lines().last().unwrap_or_default());
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    let calls: usize = report.lines().last().and_then(|l| l.split(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(calls >= 120, "every string field twice: {report}");
    assert_eq!(snapshot(&db.url).await, before, "a refused request stored something");
}
