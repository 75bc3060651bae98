//! The statements the demo issues, pinned: every payload (all fields but
//! `issuedAt`) of every demo tender's table and of a deposit check per bid
//! must be byte-identical to `tests/golden/demo-statements.jsonl`. A change
//! to a rule or to the statement's shape shows here as a diff to review.
//!
//! After an intended change, rewrite the file with
//! `CREDIT_TENDER_BLESS=1 cargo test golden` and review the diff. A run that
//! rewrites the file fails (saying so), so a bless can never pass for a
//! comparison: the next run, without the variable, compares. `.ci/run`
//! unsets the variable and fails if `tests/golden` changed during its run.

use crate::helpers::*;
use credit_tender::proto::v1::assessment_service_client::AssessmentServiceClient;
use credit_tender::proto::v1::tender_service_client::TenderServiceClient;
use credit_tender::proto::v1::{AssessTenderRequest, CheckDepositRequest, ListTendersRequest};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/demo-statements.jsonl");

/// A payload with its `issuedAt` (the only field that changes between runs) removed.
fn pinned(payload: &[u8]) -> String {
    let text = std::str::from_utf8(payload).expect("payloads are UTF-8 JSON");
    let value: serde_json::Value = serde_json::from_str(text).expect("payloads are JSON");
    let issued = value.get("issuedAt").or_else(|| value.pointer("/assessment/issuedAt")).cloned().expect("issuedAt");
    let issued = serde_json::to_string(&issued).unwrap();
    // Remove the field from the exact bytes, so key order and spacing stay pinned.
    let without = text.replace(&format!(",\"issuedAt\":{issued}"), "");
    assert_ne!(without, text, "issuedAt not found in {text}");
    without
}

#[tokio::test]
async fn demo_statements_match_the_golden_payloads() {
    let demo = CliServer::spawn(&["demo"]).await;
    let mut tenders = TenderServiceClient::new(demo.channel.clone());
    let mut assess = AssessmentServiceClient::new(demo.channel.clone());
    let mut list = tenders.list_tenders(ListTendersRequest {}).await.unwrap().into_inner().tenders;
    list.sort_by(|a, b| a.tender_id.cmp(&b.tender_id));
    let mut lines = Vec::new();
    for t in &list {
        let table =
            assess.assess_tender(AssessTenderRequest { tender_id: t.tender_id.clone(), ..Default::default() }).await.unwrap().into_inner();
        for bid in table.bids {
            let envelope = bid.assessment.unwrap().envelope.unwrap();
            lines.push(pinned(&envelope.payload));
            let bidder = bid.bid.unwrap().bidder;
            for (form, offered_fen) in [("cash", 1_000_000), ("credit_guarantee", 0)] {
                let check = CheckDepositRequest {
                    tender_id: t.tender_id.clone(),
                    bidder: bidder.clone(),
                    offered_fen,
                    form: form.into(),
                    contract_price_fen: None,
                };
                let checked = assess.check_deposit(check).await.unwrap().into_inner();
                lines.push(pinned(&checked.envelope.unwrap().payload));
            }
        }
    }
    assert!(lines.len() > 20, "the demo issues statements for every bid: {}", lines.len());
    let got = lines.join("\n") + "\n";
    let want = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    if std::env::var("CREDIT_TENDER_BLESS").is_ok_and(|v| v == "1") && got != want {
        std::fs::write(GOLDEN, &got).unwrap();
        panic!("CREDIT_TENDER_BLESS=1: rewrote {GOLDEN}; review the diff (git diff tests/golden), then run again without the variable");
    }
    assert!(!want.is_empty(), "{GOLDEN} is missing or empty (see the module doc to write it)");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "statement {} differs from the golden payload", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "number of statements");
}

/// Assess answers a cache hit with the encoded bytes it keeps: the same
/// bytes on every hit, and exactly what prost makes of the generated
/// message, for every demo statement.
#[tokio::test]
async fn cached_answers_are_the_same_bytes_on_every_hit_and_what_prost_encodes() {
    use prost::Message;
    let demo = CliServer::spawn(&["demo"]).await;
    let mut tenders = TenderServiceClient::new(demo.channel.clone());
    let mut assess = AssessmentServiceClient::new(demo.channel.clone());
    let list = tenders.list_tenders(ListTendersRequest {}).await.unwrap().into_inner().tenders;
    let mut checked = 0;
    for t in &list {
        let table =
            assess.assess_tender(AssessTenderRequest { tender_id: t.tender_id.clone(), ..Default::default() }).await.unwrap().into_inner();
        for bid in table.bids {
            let request = credit_tender::proto::v1::AssessRequest {
                tender_id: t.tender_id.clone(),
                bidder: bid.bid.unwrap().bidder,
                contract_price_fen: None,
            };
            let path = "/credit_tender.v1.AssessmentService/Assess";
            let first = crate::hardening::raw::call_bytes(demo.channel.clone(), path, request.encode_to_vec()).await.unwrap();
            let again = crate::hardening::raw::call_bytes(demo.channel.clone(), path, request.encode_to_vec()).await.unwrap();
            assert_eq!(first, again, "a hit is the same bytes");
            let typed = assess.assess(request).await.unwrap().into_inner();
            let decoded = credit_tender::proto::v1::AssessResponse::decode(&first[..]).unwrap();
            assert_eq!(decoded, typed, "the bytes decode to the answer a generated client gets");
            assert_eq!(typed.encode_to_vec(), first, "and are what prost encodes for it");
            assert_eq!(Some(&typed), bid.assessment.as_ref(), "the table holds the same answer");
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked}");
}

/// AssessTender answers from the tender's encoded table: the same bytes on
/// every hit, and exactly what prost encodes for the answer a generated
/// client decodes, whole and page by page (the page token is encoded too).
#[tokio::test]
async fn committee_tables_are_the_same_bytes_on_every_hit_and_what_prost_encodes() {
    use credit_tender::proto::v1::AssessTenderResponse;
    use prost::Message;
    let demo = CliServer::spawn(&["demo"]).await;
    let mut tenders = TenderServiceClient::new(demo.channel.clone());
    let mut assess = AssessmentServiceClient::new(demo.channel.clone());
    let list = tenders.list_tenders(ListTendersRequest {}).await.unwrap().into_inner().tenders;
    let path = "/credit_tender.v1.AssessmentService/AssessTender";
    let mut rows = 0;
    for t in &list {
        for page_size in [0, 2] {
            let mut token = String::new();
            loop {
                let request = AssessTenderRequest { tender_id: t.tender_id.clone(), page_size, page_token: token.clone() };
                let first = crate::hardening::raw::call_bytes(demo.channel.clone(), path, request.encode_to_vec()).await.unwrap();
                let again = crate::hardening::raw::call_bytes(demo.channel.clone(), path, request.encode_to_vec()).await.unwrap();
                assert_eq!(first, again, "a hit is the same bytes");
                let typed = assess.assess_tender(request).await.unwrap().into_inner();
                assert_eq!(AssessTenderResponse::decode(&first[..]).unwrap(), typed, "the bytes decode to the generated client's answer");
                assert_eq!(typed.encode_to_vec(), first, "and are what prost encodes for it");
                rows += typed.bids.len();
                if typed.next_page_token.is_empty() {
                    break;
                }
                token = typed.next_page_token;
            }
        }
    }
    assert!(rows >= 30, "{rows}");
}
