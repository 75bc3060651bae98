//! The OCDS export (issue 24): `/tenders/{id}/ocds.json` on the server's
//! port, checked by lib-cove-ocds from PyPI (`tests/ocds/validate.py`,
//! offline against the schema and bids extension vendored in tests/ocds),
//! and its figures against the signed statements.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocds/validate.py");

/// Whether python3 can import lib-cove-ocds; `CREDIT_TENDER_REQUIRE_OCDS=1`
/// (CI) makes its absence a failure.
fn libcoveocds() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import libcoveocds.api, ocdsextensionregistry"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("CREDIT_TENDER_REQUIRE_OCDS").is_ok_and(|v| v == "1");
        assert!(!required, "CREDIT_TENDER_REQUIRE_OCDS=1 but python3 cannot import libcoveocds (pip install libcoveocds==0.17.0)");
        crate::harness::skipped(crate::harness::Needs::Python, "python3 cannot import libcoveocds: pip install libcoveocds==0.17.0");
    }
    ok
}

/// lib-cove-ocds' findings on `package` (see tests/ocds/validate.py).
async fn cove(dir: &std::path::Path, name: &str, package: &Value) -> Value {
    let path = json_file(dir, name, package);
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new("python3").arg(SCRIPT).arg(path).output()).await.unwrap().unwrap();
    assert!(out.status.success(), "validate.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The fields the export adds beyond OCDS 1.1 and the bids extension, as
/// the README lists them: nothing else may be unknown to the schema.
const ADDITIONAL: [&str; 5] = [
    "/releases/bids/details/bidDeposit",
    "/releases/bids/details/creditAssessment",
    "/releases/tender/bidDeposit",
    "/releases/tender/creditPolicy",
    "/releases/tender/regionCode",
];

/// Each demo tender's export validates with lib-cove-ocds (the bids
/// extension applied, no error, only the documented additional fields), says
/// what the signed statements say, and a broken copy is reported invalid.
#[tokio::test]
async fn the_ocds_export_of_each_demo_tender_validates_with_lib_cove_ocds_and_says_what_the_statements_say() {
    let db = sqlite_db();
    let (server, _, _) = crate::supervision::demo_assessed(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let check = libcoveocds();
    for t in credit_tender::demo::TENDERS {
        let (status, body) = http_get(server.addr, &format!("/tenders/{}/ocds.json", t.id)).await;
        assert_eq!(status, 200, "{body}");
        let package: Value = serde_json::from_str(&body).unwrap();
        let table = server
            .assess
            .clone()
            .assess_tender(pb::AssessTenderRequest { tender_id: t.id.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let release = &package["releases"][0];
        assert_eq!(release["tender"]["id"], json!(t.id));
        let details = release["bids"]["details"].as_array().unwrap();
        assert_eq!(details.len(), table.bids.len());
        for (d, b) in details.iter().zip(&table.bids) {
            let s = b.assessment.as_ref().unwrap().statement.as_ref().unwrap();
            assert_eq!(d["id"], json!(format!("{}-{}", t.id, b.bid.as_ref().unwrap().sequence)));
            assert_eq!(d["status"], json!(if s.eligible && s.qualified { "valid" } else { "disqualified" }), "{d}");
            let tenderers: Vec<&str> = d["tenderers"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
            let members: Vec<String> = s.members.iter().map(|m| format!("CN-USCI-{}", m.credit_code)).collect();
            assert_eq!(tenderers, members);
            let c = &d["creditAssessment"];
            assert_eq!((c["appliedGrade"].as_str(), c["totalPoints"].as_f64()), (Some(s.applied_grade.as_str()), Some(s.total_points)));
            let yuan = |fen: i64| json!(fen as f64 / 100.0);
            assert_eq!(d["bidDeposit"]["owed"]["amount"], yuan(s.deposit_owed_fen));
            assert_eq!(d["bidDeposit"]["saved"]["amount"], yuan(s.nominal_deposit_fen - s.deposit_owed_fen));
            assert_eq!(d["bidDeposit"]["creditGuaranteeAllowed"], json!(s.credit_guarantee_allowed));
        }
        // Every party by its unified social credit code, which checks.
        for p in release["parties"].as_array().unwrap() {
            assert_eq!(p["identifier"]["scheme"], "CN-USCI");
            let code = p["identifier"]["id"].as_str().unwrap();
            assert_eq!(p["id"], json!(format!("CN-USCI-{code}")));
            credit_tender::domain::CreditCode::parse(code, &credit_tender::rules::Rules::shipped().allow_list).unwrap();
        }
        if !check {
            continue;
        }
        let found = cove(dir.path(), &format!("{}.json", t.id), &package).await;
        assert_eq!(found["validation_errors"], json!([]), "{}: {found:#}", t.id);
        assert_eq!(found["additional_checks"], json!({}), "no empty field: {found:#}");
        assert_eq!(found["invalid_extension"], json!({}), "{found:#}");
        assert_eq!(found["is_extended_schema"], json!(true), "the bids extension applied: {found:#}");
        let extra: BTreeSet<&str> = found["additional_fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(extra.is_subset(&ADDITIONAL.into_iter().collect()), "undocumented additional fields: {extra:?}");
        assert!(extra.contains("/releases/bids/details/creditAssessment"), "{extra:?}");

        // A broken copy: a bid's status not a string, a party without its id.
        let mut broken = package.clone();
        broken["releases"][0]["bids"]["details"][0]["status"] = json!(7);
        broken["releases"][0]["parties"][0]["identifier"]["id"] = json!(["not", "a", "string"]);
        broken["releases"][0].as_object_mut().unwrap().remove("ocid");
        let found = cove(dir.path(), &format!("{}-broken.json", t.id), &broken).await;
        let paths: BTreeSet<String> = found["validation_errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e["type"].as_str().unwrap_or(""), e["path"].as_str().unwrap_or(e["field"].as_str().unwrap_or(""))))
            .collect();
        assert!(paths.iter().any(|p| p.contains("bids/details/0/status")), "{found:#}");
        assert!(paths.iter().any(|p| p.contains("parties/0/identifier/id")), "{found:#}");
        assert!(paths.iter().any(|p| p.starts_with("required")), "the missing ocid: {found:#}");
    }
    let (status, body) = http_get(server.addr, "/tenders/NO-SUCH/ocds.json").await;
    assert_eq!(status, 404, "{body}");
}

/// A release's id changes with its content and only with it: RegisterBid
/// then GET is a new id, two GETs with nothing changed the same one, and
/// both releases in one package validate (release ids unique within the
/// ocid). A tender with no bid exports no empty array or object.
#[tokio::test]
async fn the_release_id_changes_with_the_content_and_a_tender_without_bids_has_no_empty_fields() {
    let db = sqlite_db();
    let (server, _, _) = crate::supervision::demo_assessed(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let check = libcoveocds();
    let get = |id: &'static str| async move {
        let (status, body) = http_get(server.addr, &format!("/tenders/{id}/ocds.json")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let mut tenders = server.tenders.clone();
    let terms = pb::TenderTerms { nominal_deposit_fen: 1_234_567, ..crate::assessment::terms("440300", "2026-12-20") };
    let req = pb::RegisterTenderRequest { tender_id: "OCDS-1".into(), terms: Some(terms), policy_id: "national-template".into() };
    tenders.register_tender(req).await.unwrap();

    let empty = get("OCDS-1").await;
    let release = &empty["releases"][0];
    let absent = [release.get("parties"), release.get("bids"), release["tender"].get("tenderers")];
    assert!(absent.iter().all(Option::is_none), "no empty parties, bids or tenderers: {release:#}");
    assert_eq!(release["tender"]["numberOfTenderers"], json!(0));
    assert_eq!(release["tender"]["bidDeposit"]["nominal"]["amount"], json!(12345.67), "fen to yuan, exactly");
    let criteria = release["tender"]["awardCriteriaDetails"].as_str().unwrap();
    assert!(criteria.starts_with("评标办法：") && criteria.contains("national-template"), "{criteria}");
    assert_eq!(get("OCDS-1").await["releases"][0]["id"], release["id"], "nothing changed, the same id");

    let demo = server
        .assess
        .clone()
        .assess_tender(pb::AssessTenderRequest { tender_id: credit_tender::demo::TENDERS[0].id.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let bidder = demo.bids[0].bid.as_ref().unwrap().bidder.clone();
    tenders.register_bid(pb::RegisterBidRequest { tender_id: "OCDS-1".into(), bidder }).await.unwrap();
    let one = get("OCDS-1").await;
    let again = get("OCDS-1").await;
    assert_ne!(one["releases"][0]["id"], release["id"], "a bid more: a new release id");
    assert_eq!(again["releases"][0]["id"], one["releases"][0]["id"], "nothing changed since: the same id");
    assert!(one["releases"][0]["id"].as_str().unwrap().starts_with("OCDS-1-v1-"), "{one:#}");

    if !check {
        return;
    }
    let found = cove(dir.path(), "empty.json", &empty).await;
    assert_eq!((&found["validation_errors"], &found["additional_checks"]), (&json!([]), &json!({})), "{found:#}");
    let mut both = one.clone();
    both["releases"] = json!([release, one["releases"][0]]);
    let found = cove(dir.path(), "both.json", &both).await;
    assert_eq!((&found["validation_errors"], &found["additional_checks"]), (&json!([]), &json!({})), "{found:#}");
    // The check can fail: the same id twice is lib-cove-ocds' uniqueItems error.
    let mut twice = both.clone();
    twice["releases"][1]["id"] = release["id"].clone();
    let found = cove(dir.path(), "twice.json", &twice).await;
    assert_ne!(found["validation_errors"], json!([]), "{found:#}");
}
