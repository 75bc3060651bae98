//! The supervision platform's view (issue 24), through gRPC on 127.0.0.1
//! and the CLI: risk classes with the records that decided them, inspection
//! draws recomputed offline, and outcomes summed three ways.

use crate::helpers::*;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use pb::supervision_service_client::SupervisionServiceClient;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Client = SupervisionServiceClient<InterceptedService<Channel, Bearer>>;

/// A server publishing checkpoints every 50 ms (a draw waits for one), with
/// `principals` when given.
pub async fn spawn(db: &TestDb, principals: Option<&str>) -> TestServer {
    use credit_tender::access::principals::{Principals, SharedPrincipals};
    let log = credit_tender::server::LogOptions { checkpoint_interval: std::time::Duration::from_millis(50), ..Default::default() };
    let principals = principals.map(|p| std::sync::Arc::new(SharedPrincipals::fixed(Principals::from_toml(p).unwrap())));
    let server = credit_tender::server::ServerOptions { log: Some(log), principals, ..Default::default() };
    spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await
}

fn client(server: &TestServer, token: Option<&str>) -> Client {
    SupervisionServiceClient::with_interceptor(server.channel.clone(), Bearer::new(token).unwrap())
}

async fn put(server: &TestServer, records: Vec<Value>) {
    let req = pb::PutRecordsRequest { records: records.into_iter().map(to_proto).collect(), source: "test".into() };
    server.data.clone().put_records(req).await.unwrap();
}

fn classify_request(code: &str) -> pb::ClassifyFirmRequest {
    pb::ClassifyFirmRequest {
        credit_code: code.into(),
        domain: "highway_construction".into(),
        region: "440300".into(),
        date: "2026-12-15".into(),
        policy_id: String::new(),
    }
}

/// The score each grade's band holds (policies/score-bands.toml).
fn graded(id: &str, code: &str, grade: &str, issuer: &str) -> Value {
    let score = match grade {
        "AA" => 97.0,
        "A" => 90.0,
        "B" => 80.0,
        "C" => 70.0,
        _ => 50.0,
    };
    evaluation_json(id, code, json!({"grade": grade, "score": score, "issuer": issuer}))
}

fn verifies(server: &TestServer, env: &pb::Envelope) {
    let keys = server.keys.get().public_keys();
    let results = credit_tender::signing::verify_each(&credit_tender::service::envelope_from_proto(env), &keys, None);
    assert!(!results.is_empty() && results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
}

/// Each firm's class, and the records marked decisive are exactly those
/// that raised it there: the grade alone, a blacklist and three penalties
/// (not the good grade), a breached commitment, a repair, or no record (a
/// new entrant's default).
#[tokio::test]
async fn classification_evidence_names_every_record_that_decided_the_class() {
    for db in backends().await {
        let server = spawn(&db, None).await;
        let c = |n: u32| crate::assessment::code(9000 + n);
        let (a, b, cc, d, e) = (c(1), c(2), c(3), c(4), c(5));
        let mut records = vec![graded("e-a", &a, "AA", "440000"), graded("e-b", &b, "A", "440000")];
        records.push(list_entry_json("l-b", &b, "transport_blacklist"));
        for i in 1..=3 {
            records.push(penalty_json(&format!("p-b{i}"), &b, json!({"decision_number": format!("罚{i}")})));
        }
        records.push(graded("e-c", &cc, "AA", "440000"));
        records.push(commitment_json("k-c", &cc, json!({"status": "breached", "breached_on": "2026-09-01"})));
        records.push(graded("e-e", &e, "AA", "440000"));
        records.push(penalty_json("p-e", &e, json!({})));
        records.push(event_json("r-e", &e, "p-e", "repair", "2026-10-01"));
        put(&server, records).await;
        let mut sup = client(&server, None);
        let expected: [(&str, &str, &[&str]); 5] = [
            (&a, "low", &["e-a"]),
            (&b, "high", &["l-b", "p-b1", "p-b2", "p-b3"]),
            (&cc, "fairly_high", &["k-c"]),
            (&d, "general", &[""]),
            (&e, "general", &["r-e"]),
        ];
        for (code, class, decisive) in expected {
            let r = sup.classify_firm(classify_request(code)).await.unwrap().into_inner();
            let got = r.classification.clone().unwrap();
            assert_eq!(got.risk_class, class, "[{}] {code}: {got:#?}", db.backend);
            let deciding: BTreeSet<&str> = got.evidence.iter().filter(|e| e.decisive).map(|e| e.record_id.as_str()).collect();
            assert_eq!(deciding, decisive.iter().copied().collect(), "[{}] {code}: {got:#?}", db.backend);
            assert!(got.evidence.iter().filter(|e| e.decisive).all(|e| e.risk_class == class));
            // A signed statement in the log, whose payload is the answer.
            let env = r.envelope.unwrap();
            verifies(&server, &env);
            assert_eq!(env.payload_type, "application/vnd.credit-tender.risk-classification.v1+json");
            assert_eq!(serde_json::from_slice::<pb::Classification>(&env.payload).unwrap(), got);
            assert!(r.log_index.is_some());
            let ratio = [("low", 5), ("general", 10), ("fairly_high", 30), ("high", 60)].into_iter().find(|(k, _)| *k == class).unwrap().1;
            assert_eq!(got.inspection_ratio_percent, ratio);
        }
        // The good grade is read but does not decide a blacklisted firm's class.
        let r = sup.classify_firm(classify_request(&b)).await.unwrap().into_inner().classification.unwrap();
        let grade = r.evidence.iter().find(|e| e.rule == "grade").unwrap();
        assert_eq!((grade.record_id.as_str(), grade.risk_class.as_str(), grade.decisive), ("e-b", "low", false));
        assert_eq!((r.grade.as_str(), r.grade_source.as_str()), ("A", "provincial"));
        // Bad input: every field named.
        let bad = pb::ClassifyFirmRequest {
            credit_code: "123".into(),
            domain: "water".into(),
            region: "44".into(),
            date: "2026-13-01".into(),
            policy_id: "nope".into(),
        };
        let status = sup.classify_firm(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        use tonic_types::StatusExt;
        let fields: Vec<String> = status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["credit_code", "domain", "region", "date", "policy_id"]);
    }
}

/// Forty firms Guangdong grades (AA, A, B, C, D in turn) and one Shanxi
/// grades: the draw's population, in four classes.
async fn draw_population(server: &TestServer) -> Vec<String> {
    let grades = ["AA", "A", "B", "C", "D"];
    let codes: Vec<String> = (0..40).map(|i| crate::assessment::code(8000 + i)).collect();
    let mut records: Vec<Value> = codes.iter().enumerate().map(|(i, c)| graded(&format!("d-{i}"), c, grades[i % 5], "440000")).collect();
    let shanxi = credit_tender::domain::CreditCode::with_check_character("91140100MA0008999").unwrap().to_string();
    records.push(graded("d-sx", &shanxi, "AA", "140000"));
    put(server, records).await;
    codes
}

fn draw_request() -> pb::DrawInspectionRequest {
    pb::DrawInspectionRequest {
        region: "440000".into(),
        domain: "highway_construction".into(),
        date: "2026-12-15".into(),
        policy_id: String::new(),
    }
}

async fn keys_json(server: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone()).list_keys(pb::ListKeysRequest {}).await.unwrap();
    json_file(dir, "keys.json", &keys.into_inner())
}

/// The draw recomputes offline to IDENTICAL; a population, a seed or a
/// ratio changed each change the chosen set, and verify-draw says where; a
/// second draw for the same parameters shows in the log beside the first.
#[tokio::test]
async fn a_draw_verifies_offline_changes_with_any_input_and_every_draw_is_logged() {
    let db = sqlite_db();
    let server = spawn(&db, None).await;
    let codes = draw_population(&server).await;
    let mut sup = client(&server, None);
    let first = sup.draw_inspection(draw_request()).await.unwrap().into_inner();
    let draw = first.draw.clone().unwrap();
    let population: Vec<&str> = first.population.iter().map(|p| p.credit_code.as_str()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(population, sorted, "the Guangdong firms only, by code");
    let ratios: BTreeMap<&str, (u32, u32, u32)> =
        draw.ratios.iter().map(|r| (r.risk_class.as_str(), (r.ratio_percent, r.population, r.drawn))).collect();
    // 16 low at 5% (1), 8 general at 10% (1), 8 fairly high at 30% (3), 8 high at 60% (5).
    let want = [("fairly_high", (30, 8, 3)), ("general", (10, 8, 1)), ("high", (60, 8, 5)), ("low", (5, 16, 1))];
    assert_eq!(ratios, want.into_iter().collect());
    assert_eq!(draw.chosen.len(), 10);
    assert!(draw.seed_tree_size > first.commit_log_index, "the seed's tree holds the commit");
    assert!(first.draw_log_index > first.commit_log_index);
    verifies(&server, first.commit_envelope.as_ref().unwrap());
    verifies(&server, first.draw_envelope.as_ref().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let keys = keys_json(&server, dir.path()).await;
    let drawn = json_file(dir.path(), "draw.json", &first);
    let run = |extra: &[&str]| {
        let mut args = vec!["verify-draw", drawn.to_str().unwrap(), "--keys", keys.to_str().unwrap()];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("IDENTICAL: 10 firm(s) drawn from a population of 40"), "{}", stdout(&out));

    // The population: one chosen firm left out.
    let left_out = &draw.chosen[0].credit_code;
    let fewer: Vec<&pb::PopulationEntry> = first.population.iter().filter(|p| &p.credit_code != left_out).collect();
    let fewer = json_file(dir.path(), "fewer.json", &fewer);
    let out = run(&["--population", fewer.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS population: its digest is"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("signed but not recomputed: [{left_out}]")), "{}", stderr(&out));

    // The seed: a later checkpoint (the draw itself grew the tree).
    let mut published = server.cache.metrics().checkpoints();
    let after = first.draw_log_index + 1;
    tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n >= after)).await.unwrap().unwrap();
    let mut log = pb::log_service_client::LogServiceClient::new(server.channel.clone());
    let later = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: Some(after) }).await.unwrap().into_inner();
    let later = file(dir.path(), "later.cp", &later.note);
    let out = run(&["--checkpoint", later.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS seed: the checkpoint's root is"), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS chosen:"), "{}", stderr(&out));

    // A ratio: the signed draw edited to inspect every high-risk firm.
    let mut edited = first.clone();
    let env = edited.draw_envelope.as_mut().unwrap();
    let mut payload: Value = serde_json::from_slice(&env.payload).unwrap();
    for r in payload["ratios"].as_array_mut().unwrap() {
        if r["riskClass"] == "high" {
            r["ratioPercent"] = json!(100);
        }
    }
    env.payload = serde_json::to_vec(&payload).unwrap().into();
    let edited = json_file(dir.path(), "edited.json", &edited);
    let out = cli(&["verify-draw", edited.to_str().unwrap(), "--keys", keys.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS the draw: a signature does not verify"), "{}", stderr(&out));
    assert!(stderr(&out).contains("recomputed draw chooses 13 firm(s), the signed one 10"), "{}", stderr(&out));

    // The same parameters drawn again: both commits and both draws are in the log.
    let second = sup.draw_inspection(draw_request()).await.unwrap().into_inner();
    assert_ne!(second.draw.as_ref().unwrap().seed, draw.seed, "a new commit, a new seed");
    tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n > second.draw_log_index)).await.unwrap().unwrap();
    let size = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size;
    let entries = log.get_entries(pb::GetEntriesRequest { start: 0, end: size }).await.unwrap().into_inner().entries;
    let mut commits = Vec::new();
    let mut draws = Vec::new();
    for (i, leaf) in entries.iter().enumerate() {
        let env = credit_tender::log::envelope_of_leaf(leaf).unwrap();
        let v: Value = serde_json::from_slice(&env.payload).unwrap();
        let same = v["region"] == "440000" && v["date"] == "2026-12-15" && v["domain"] == "highway_construction";
        match env.payload_type.as_str() {
            "application/vnd.credit-tender.inspection-commit.v1+json" if same => commits.push(i as u64),
            "application/vnd.credit-tender.inspection-draw.v1+json" if same => {
                draws.push(v["commitLogIndex"].as_str().unwrap().parse::<u64>().unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(commits, vec![first.commit_log_index, second.commit_log_index]);
    assert_eq!(draws, commits, "each draw names its own commit");
}
