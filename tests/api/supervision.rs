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
pub(crate) async fn spawn(db: &TestDb, principals: Option<&str>) -> TestServer {
    use credit_tender::access::principals::{Principals, SharedPrincipals};
    let log = credit_tender::server::LogOptions { checkpoint_interval: std::time::Duration::from_millis(50), ..Default::default() };
    let principals = principals.map(|p| std::sync::Arc::new(SharedPrincipals::fixed(Principals::from_toml(p).unwrap())));
    let server = credit_tender::server::ServerOptions { log: Some(log), principals, ..Default::default() };
    spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await
}

pub(crate) fn client(server: &TestServer, token: Option<&str>) -> Client {
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
pub(crate) async fn draw_population(server: &TestServer) -> Vec<String> {
    let grades = ["AA", "A", "B", "C", "D"];
    let codes: Vec<String> = (0..40).map(|i| crate::assessment::code(8000 + i)).collect();
    let mut records: Vec<Value> = codes.iter().enumerate().map(|(i, c)| graded(&format!("d-{i}"), c, grades[i % 5], "440000")).collect();
    let shanxi = credit_tender::domain::CreditCode::with_check_character("91140100MA0008999").unwrap().to_string();
    records.push(graded("d-sx", &shanxi, "AA", "140000"));
    put(server, records).await;
    codes
}

pub(crate) fn draw_request() -> pb::DrawInspectionRequest {
    pb::DrawInspectionRequest {
        region: "440000".into(),
        domain: "highway_construction".into(),
        date: "2026-12-15".into(),
        policy_id: String::new(),
        ..Default::default()
    }
}

pub(crate) async fn keys_json(server: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
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

/// The figures compared three ways, in one shape.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    tenders: u32,
    bids: u32,
    benefit: u32,
    qualification_centi: i64,
    evaluation_centi: i64,
    with_qualification: u32,
    with_evaluation: u32,
    waived: u32,
    reduced: u32,
    full: u32,
    nominal: i64,
    owed: i64,
    saved: i64,
    guarantees: u32,
    guarantee_fen: i64,
    excluded: u32,
    not_qualified: u32,
    exclusions: BTreeMap<String, u32>,
    rewards: u32,
    rewards_by: BTreeMap<String, u32>,
}

fn figures_of(f: &pb::OutcomeFigures) -> Figures {
    let by = |v: &[pb::ReasonCount]| v.iter().map(|r| (r.code.clone(), r.count)).collect();
    Figures {
        tenders: f.tenders,
        bids: f.bids_assessed,
        benefit: f.bidders_with_credit_benefit,
        qualification_centi: f.qualification_points_centi,
        evaluation_centi: f.evaluation_points_centi,
        with_qualification: f.bidders_with_qualification_points,
        with_evaluation: f.bidders_with_evaluation_points,
        waived: f.deposits_waived,
        reduced: f.deposits_reduced,
        full: f.deposits_full,
        nominal: f.nominal_deposit_fen,
        owed: f.deposit_owed_fen,
        saved: f.deposit_saved_fen,
        guarantees: f.credit_guarantees,
        guarantee_fen: f.credit_guarantee_fen,
        excluded: f.excluded,
        not_qualified: f.not_qualified,
        exclusions: by(&f.exclusions_by_reason),
        rewards: f.rewards,
        rewards_by: by(&f.rewards_by_reason),
    }
}

/// The test's own sum over the log's leaves, read as plain JSON: each
/// (tender, bidder) by its newest assessment (highest tender version, then
/// latest leaf), tenders placed by their newest version's statements.
fn independent_sum(leaves: &[Vec<u8>], prefix: &str, from: &str, to: &str) -> Figures {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut newest: BTreeMap<(String, String), ((u64, usize), Value)> = BTreeMap::new();
    let mut checks: BTreeMap<(String, String), ((u64, usize), Value)> = BTreeMap::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let leaf: Value = serde_json::from_slice(leaf).unwrap();
        let payload: Value = serde_json::from_slice(&b64.decode(leaf["payload"].as_str().unwrap()).unwrap()).unwrap();
        let (target, s) = match leaf["payloadType"].as_str().unwrap() {
            "application/vnd.credit-tender.assessment.v1+json" => (&mut newest, payload.clone()),
            "application/vnd.credit-tender.deposit-check.v1+json" => (&mut checks, payload["assessment"].clone()),
            _ => continue,
        };
        let bidder: Vec<&str> = s["members"].as_array().unwrap().iter().map(|m| m["creditCode"].as_str().unwrap()).collect();
        let key = (s["tenderId"].as_str().unwrap().to_owned(), bidder.join("+"));
        let at = (s["tenderVersion"].as_u64().unwrap(), i);
        if target.get(&key).is_none_or(|(seen, _)| *seen < at) {
            target.insert(key, (at, payload));
        }
    }
    let mut tender_newest: BTreeMap<&str, (u64, &Value)> = BTreeMap::new();
    for ((tender, _), ((v, _), s)) in &newest {
        if tender_newest.get(tender.as_str()).is_none_or(|(seen, _)| seen < v) {
            tender_newest.insert(tender, (*v, s));
        }
    }
    let fen = |v: &Value| v.as_str().map(|s| s.parse::<i64>().unwrap()).or_else(|| v.as_i64()).unwrap();
    let mut f = Figures::default();
    let mut tenders = BTreeSet::new();
    for (key, (_, s)) in &newest {
        let t = tender_newest[key.0.as_str()].1;
        let date = t["asOfDate"].as_str().unwrap();
        if !(t["region"].as_str().unwrap().starts_with(prefix) && from <= date && date <= to) {
            continue;
        }
        tenders.insert(key.0.clone());
        f.bids += 1;
        f.benefit += u32::from(s["creditBenefit"] == true);
        let q = (s["qualificationPoints"].as_f64().unwrap() * 100.0).round() as i64;
        let e = (s["evaluationPoints"].as_f64().unwrap() * 100.0).round() as i64;
        f.qualification_centi += q;
        f.evaluation_centi += e;
        f.with_qualification += u32::from(q > 0);
        f.with_evaluation += u32::from(e > 0);
        match s["depositBasis"].as_str().unwrap() {
            "waived" => f.waived += 1,
            "reduced" => f.reduced += 1,
            _ => f.full += 1,
        }
        let (nominal, owed) = (fen(&s["nominalDepositFen"]), fen(&s["depositOwedFen"]));
        f.nominal += nominal;
        f.owed += owed;
        f.saved += nominal - owed;
        if let Some((_, c)) = checks.get(key)
            && c["form"] == "credit_guarantee"
            && c["satisfied"] == true
        {
            f.guarantees += 1;
            f.guarantee_fen += fen(&c["assessment"]["depositOwedFen"]);
        }
        f.excluded += u32::from(s["eligible"] == false);
        f.not_qualified += u32::from(s["eligible"] == true && s["qualified"] == false);
        let codes = |effects: &[&str]| -> BTreeSet<String> {
            s["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| effects.contains(&r["effect"].as_str().unwrap()))
                .map(|r| r["code"].as_str().unwrap().to_owned())
                .collect()
        };
        for c in codes(&["exclusion", "qualification"]) {
            *f.exclusions.entry(c).or_default() += 1;
        }
        let rewards = codes(&["reward"]);
        f.rewards += u32::from(!rewards.is_empty());
        for c in rewards {
            *f.rewards_by.entry(c).or_default() += 1;
        }
    }
    f.tenders = tenders.len() as u32;
    f
}

/// Waits for a checkpoint covering `size` leaves; its leaves, read as a supervisor.
async fn leaves_up_to(server: &TestServer, size: u64, token: Option<&str>) -> (u64, Vec<Vec<u8>>) {
    let mut published = server.cache.metrics().checkpoints();
    tokio::time::timeout(std::time::Duration::from_secs(30), published.wait_for(|n| *n >= size)).await.unwrap().unwrap();
    let mut log = pb::log_service_client::LogServiceClient::with_interceptor(server.channel.clone(), Bearer::new(token).unwrap());
    let size = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size;
    let mut leaves = Vec::new();
    while (leaves.len() as u64) < size {
        let r = pb::GetEntriesRequest { start: leaves.len() as u64, end: size };
        leaves.extend(log.get_entries(r).await.unwrap().into_inner().entries.into_iter().map(|e| e.to_vec()));
    }
    (size, leaves)
}

fn outcomes_request(prefix: &str, from: &str, to: &str) -> pb::GetOutcomesRequest {
    pb::GetOutcomesRequest { region_prefix: prefix.into(), domain: String::new(), from: from.into(), to: to.into() }
}

/// The CLI run off the test's runtime thread, which serves the server it calls.
async fn cli_async(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

/// `credit-tender outcomes --json` over the tree of `size` leaves.
async fn cli_outcomes(server: &TestServer, token: Option<&str>, prefix: &str, from: &str, to: &str, size: u64) -> pb::Outcomes {
    let url = format!("http://{}", server.addr);
    let size = size.to_string();
    let mut args =
        vec!["outcomes", "--server", &url, "--region-prefix", prefix, "--from", from, "--to", to, "--tree-size", &size, "--json"];
    if let Some(t) = token {
        args.extend(["--token", t]);
    }
    let out = cli_async(args.into_iter().map(str::to_owned).collect()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The demo: every bid of the three demo tenders assessed, a credit
/// guarantee lodged where allowed; GetOutcomes, the CLI over the verified
/// log and the test's own sum agree.
/// The demo loaded, every bid of its tenders assessed and a credit
/// guarantee checked where allowed: the server, the last log index, and how
/// many guarantees.
pub(crate) async fn demo_assessed(db: &TestDb) -> (TestServer, u64, u32) {
    use credit_tender::rules::Rules;
    {
        let store = open(db).await;
        credit_tender::demo::load(&store, &Rules::shipped()).await.unwrap();
        let policies = credit_tender::service::PolicySet::load(store.clone(), None).await.unwrap();
        credit_tender::demo::register_tenders(&store, &policies).await.unwrap();
    }
    let server = spawn(db, None).await;
    let mut assess = server.assess.clone();
    let mut last = 0;
    let mut guarantees = 0;
    for t in credit_tender::demo::TENDERS {
        let table =
            assess.assess_tender(pb::AssessTenderRequest { tender_id: t.id.into(), ..Default::default() }).await.unwrap().into_inner();
        for bid in table.bids {
            let a = bid.assessment.unwrap();
            last = last.max(a.log_index.unwrap());
            let s = a.statement.unwrap();
            if s.credit_guarantee_allowed {
                let req = pb::CheckDepositRequest {
                    tender_id: t.id.into(),
                    bidder: bid.bid.unwrap().bidder,
                    offered_fen: s.deposit_owed_fen,
                    form: "credit_guarantee".into(),
                    contract_price_fen: None,
                };
                last = last.max(assess.check_deposit(req).await.unwrap().into_inner().log_index.unwrap());
                guarantees += 1;
            }
        }
    }
    (server, last, guarantees)
}

#[tokio::test]
async fn outcomes_of_the_demo_equal_the_cli_and_an_independent_sum() {
    let db = sqlite_db();
    let (server, last, guarantees) = demo_assessed(&db).await;
    assert!(guarantees > 0, "the demo has bidders a credit guarantee is allowed for");
    let (size, leaves) = leaves_up_to(&server, last + 1, None).await;
    let (from, to) = ("2026-01-01", "2027-12-31");
    let served = client(&server, None).get_outcomes(outcomes_request("", from, to)).await.unwrap().into_inner();
    assert_eq!(served.tree_size, size);
    let total = figures_of(served.total.as_ref().unwrap());
    assert_eq!(total, independent_sum(&leaves, "", from, to));
    assert_eq!((total.tenders, total.bids, total.guarantees), (3, 15, guarantees));
    assert!(total.saved > 0 && total.excluded > 0 && total.not_qualified > 0, "{total:#?}");
    assert_eq!(cli_outcomes(&server, None, "", from, to, size).await, served);
    // By month and by region, each over its own tenders.
    let months: Vec<&str> = served.by_month.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(months, ["2026-12", "2027-03"]);
    for g in &served.by_region {
        assert_eq!(figures_of(g.figures.as_ref().unwrap()), independent_sum(&leaves, &g.key, from, to), "{}", g.key);
    }
}

const GD: &str = "ct_outcomes-gd";
const SX: &str = "ct_outcomes-sx";
const SUPERVISOR: &str = "ct_outcomes-supervisor";

fn principals() -> String {
    let sha = |t: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()));
    format!(
        "[[principal]]\nname = \"gd\"\nrole = \"platform\"\nregions = [\"440000\"]\ntoken_sha256 = \"{}\"\n\n\
         [[principal]]\nname = \"sx\"\nrole = \"platform\"\nregions = [\"140000\"]\ntoken_sha256 = \"{}\"\n\n\
         [[principal]]\nname = \"s\"\nrole = \"supervisor\"\ntoken_sha256 = \"{}\"\n",
        sha(GD),
        sha(SX),
        sha(SUPERVISOR)
    )
}

/// A generated month: 200 tenders in Shenzhen and Taiyuan, three bids each
/// from twelve firms of every standing, a credit guarantee on every fourth;
/// the test's own sum from the log's entries equals GetOutcomes and the CLI,
/// and a platform sees only its regions.
#[tokio::test]
async fn outcomes_of_a_generated_month_of_200_tenders_equal_an_independent_sum_and_platforms_see_their_regions() {
    let db = sqlite_db();
    let firms: Vec<String> = (0..12).map(|i| crate::assessment::code(7000 + i)).collect();
    let grade = ["AA", "AA", "AA", "A", "A", "A", "B", "B", "A", "AA", "C"];
    let mut records: Vec<Value> = grade.iter().enumerate().map(|(i, g)| graded(&format!("g-{i}"), &firms[i], g, "national")).collect();
    records.push(list_entry_json("g-black", &firms[8], "transport_blacklist"));
    records.push(list_entry_json("g-red", &firms[9], "transport_red_list"));
    let dir = tempfile::tempdir().unwrap();
    let data = file(dir.path(), "firms.jsonl", jsonl(&records));
    let out = cli(&["import", "--db", &db.url, data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = spawn(&db, Some(&principals())).await;
    let as_platform = |t: &str| {
        let b = Bearer::new(Some(t)).unwrap();
        (
            pb::tender_service_client::TenderServiceClient::with_interceptor(server.channel.clone(), b.clone()),
            pb::assessment_service_client::AssessmentServiceClient::with_interceptor(server.channel.clone(), b),
        )
    };
    let (gd, sx) = (as_platform(GD), as_platform(SX));
    let mut last = 0;
    for i in 0..200u32 {
        let (region, (tenders, assess)) = if i % 2 == 0 { ("440300", &gd) } else { ("140100", &sx) };
        let (mut tenders, mut assess) = (tenders.clone(), assess.clone());
        let id = format!("GEN-{i:03}");
        let mut terms = crate::assessment::terms(region, &format!("2026-12-{:02}", 1 + i % 28));
        terms.nominal_deposit_fen = 10_000_000 + i64::from(i) * 1_000;
        let req = pb::RegisterTenderRequest { tender_id: id.clone(), terms: Some(terms), policy_id: "national-template".into() };
        tenders.register_tender(req).await.unwrap();
        for k in 0..3 {
            let code = firms[((i + k * 4) % 12) as usize].clone();
            let bid = pb::RegisterBidRequest { tender_id: id.clone(), bidder: Some(pb::Bidder { credit_codes: vec![code] }) };
            tenders.register_bid(bid).await.unwrap();
        }
        let table =
            assess.assess_tender(pb::AssessTenderRequest { tender_id: id.clone(), ..Default::default() }).await.unwrap().into_inner();
        for bid in &table.bids {
            last = last.max(bid.assessment.as_ref().unwrap().log_index.unwrap());
        }
        if i % 4 == 0 {
            let first = &table.bids[0];
            let s = first.assessment.as_ref().unwrap().statement.as_ref().unwrap();
            let req = pb::CheckDepositRequest {
                tender_id: id.clone(),
                bidder: first.bid.as_ref().unwrap().bidder.clone(),
                offered_fen: s.deposit_owed_fen,
                form: "credit_guarantee".into(),
                contract_price_fen: None,
            };
            last = last.max(assess.check_deposit(req).await.unwrap().into_inner().log_index.unwrap());
        }
    }
    let (size, leaves) = leaves_up_to(&server, last + 1, Some(SUPERVISOR)).await;
    let (from, to) = ("2026-12-01", "2026-12-31");
    let mut sup = client(&server, Some(SUPERVISOR));
    let all = sup.get_outcomes(outcomes_request("", from, to)).await.unwrap().into_inner();
    assert_eq!(all.tree_size, size);
    let total = figures_of(all.total.as_ref().unwrap());
    assert_eq!(total, independent_sum(&leaves, "", from, to));
    assert_eq!((total.tenders, total.bids), (200, 600));
    assert!(total.guarantees > 0 && total.excluded > 0 && total.not_qualified > 0 && total.rewards > 0, "{total:#?}");
    assert_eq!(total.saved, total.nominal - total.owed);
    assert_eq!(cli_outcomes(&server, Some(SUPERVISOR), "", from, to, size).await, all);
    // A week is a part of the month.
    let week = sup.get_outcomes(outcomes_request("", "2026-12-01", "2026-12-07")).await.unwrap().into_inner();
    assert_eq!(figures_of(week.total.as_ref().unwrap()), independent_sum(&leaves, "", "2026-12-01", "2026-12-07"));

    // The Guangdong platform: its regions only, the same figures the supervisor sees for them.
    let mut platform = client(&server, Some(GD));
    let own = platform.get_outcomes(outcomes_request("44", from, to)).await.unwrap().into_inner();
    assert_eq!(own, sup.get_outcomes(outcomes_request("44", from, to)).await.unwrap().into_inner());
    assert_eq!(figures_of(own.total.as_ref().unwrap()), independent_sum(&leaves, "44", from, to));
    assert_eq!(own.total.as_ref().unwrap().tenders, 100);
    assert!(own.by_region.iter().all(|g| g.key.starts_with("44")
        && g.tender_ids.iter().all(|t| all.by_region.iter().any(|a| a.key == g.key && a.tender_ids.contains(t)))));
    for other in ["14", "", "4"] {
        let refused = platform.get_outcomes(outcomes_request(other, from, to)).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{other}: {refused:?}");
        assert!(refused.message().contains("reads outcomes only within its regions (440000)"), "{}", refused.message());
    }
    let url = format!("http://{}", server.addr);
    let out = cli_async(["outcomes", "--server", &url, "--token", GD, "--from", from, "--to", to].map(str::to_owned).to_vec()).await;
    assert_eq!(out.status.code(), Some(77), "a platform may not read the log's entries: {}", stderr(&out));
}

/// The supervisor's page in Chromium: each month's and region's bar and
/// point carry the figures of its table row (bids assessed, deposit saved),
/// the tallest bar fills the chart as drawn, and the CSV holds the same
/// figures as GetOutcomes.
#[tokio::test]
async fn the_supervisor_page_charts_the_table_s_figures_and_the_csv_is_correct() {
    let db = sqlite_db();
    let (server, last, _) = demo_assessed(&db).await;
    leaves_up_to(&server, last + 1, None).await;
    let (from, to) = ("2026-01-01", "2027-12-31");
    let o = client(&server, None).get_outcomes(outcomes_request("", from, to)).await.unwrap().into_inner();

    // The CSV: a row for the total, each month and each region.
    let (status, body) = http_get(server.addr, &format!("/supervision/outcomes.csv?from={from}&to={to}")).await;
    assert_eq!(status, 200, "{body}");
    let body = body.strip_prefix('\u{feff}').expect("a byte-order mark for Excel");
    let rows: Vec<Vec<&str>> = body.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..4], ["分组", "键", "招标项目", "已评价投标"]);
    let yuan = |fen: i64| format!("{}.{:02}", fen / 100, fen % 100);
    let expect = |kind: &str, key: &str, f: &pb::OutcomeFigures, tenders: &[String]| {
        let row = rows.iter().find(|r| r[0] == kind && r[1] == key).unwrap_or_else(|| panic!("no CSV row {kind} {key}: {body}"));
        assert_eq!(row[2..5], [f.tenders.to_string(), f.bids_assessed.to_string(), f.bidders_with_credit_benefit.to_string()]);
        assert_eq!(row[10], yuan(f.deposit_saved_fen), "{kind} {key}");
        assert_eq!(row[11], f.credit_guarantees.to_string());
        assert_eq!(row[13], f.excluded.to_string());
        assert_eq!(row[16], tenders.join(" "));
    };
    expect("合计", "", o.total.as_ref().unwrap(), &[]);
    for g in &o.by_month {
        expect("月份", &g.key, g.figures.as_ref().unwrap(), &g.tender_ids);
    }
    for g in &o.by_region {
        expect("地区", &g.key, g.figures.as_ref().unwrap(), &g.tender_ids);
    }
    assert_eq!(rows.len(), 2 + o.by_month.len() + o.by_region.len());

    let Some(browser) = crate::web::Browser::start().await else { return };
    browser.goto(&format!("http://{}/supervision?from={from}&to={to}", server.addr)).await;
    for (chart, table, groups) in [("chart-month", "by-month", &o.by_month), ("chart-region", "by-region", &o.by_region)] {
        let drawn = browser
            .eval(&format!(
                "return [...document.querySelectorAll('#{chart} rect.bar')].map(r => [r.dataset.key, Number(r.dataset.value), r.getBBox().height])"
            ))
            .await;
        let drawn: Vec<(String, u32, f64)> = serde_json::from_value(drawn).unwrap();
        let points = browser
            .eval(&format!(
                "return [...document.querySelectorAll('#{chart} circle.point')].map(c => [c.dataset.key, Number(c.dataset.value)])"
            ))
            .await;
        let points: Vec<(String, i64)> = serde_json::from_value(points).unwrap();
        let rows = browser
            .eval(&format!(
                "return [...document.querySelectorAll('#{table} tbody tr')].map(tr => [...tr.cells].map(c => c.innerText.trim()))"
            ))
            .await;
        let rows: Vec<Vec<String>> = serde_json::from_value(rows).unwrap();
        assert_eq!(drawn.len(), groups.len(), "{chart}: {drawn:?}");
        assert_eq!(rows.len(), groups.len(), "{table}: {rows:?}");
        let tallest = drawn.iter().map(|d| d.2).fold(0.0, f64::max);
        assert!((tallest - 200.0).abs() < 0.5, "{chart}: the tallest bar fills the chart: {drawn:?}");
        for (i, g) in groups.iter().enumerate() {
            let f = g.figures.as_ref().unwrap();
            let max = groups.iter().map(|g| g.figures.as_ref().unwrap().bids_assessed).max().unwrap();
            assert_eq!((drawn[i].0.as_str(), drawn[i].1), (g.key.as_str(), f.bids_assessed), "{chart}");
            assert!((drawn[i].2 - 200.0 * f64::from(f.bids_assessed) / f64::from(max)).abs() < 0.5, "{chart}: {drawn:?}");
            assert_eq!(points[i], (g.key.clone(), f.deposit_saved_fen), "{chart}");
            // The table row says what the bar and the point say.
            assert_eq!(rows[i][0], g.key);
            assert_eq!(rows[i][2], f.bids_assessed.to_string(), "{table} {}", g.key);
            assert_eq!(rows[i][9], yuan(f.deposit_saved_fen), "{table} {}", g.key);
            assert_eq!(rows[i][15], g.tender_ids.join(" "), "{table}: the tenders behind the row");
        }
    }
    let links = browser.eval("return [...document.querySelectorAll('#by-month td.tenders a')].map(a => a.getAttribute('href'))").await;
    let links: Vec<String> = serde_json::from_value(links).unwrap();
    assert!(links.contains(&"/tenders/DEMO-GD-2026-002".to_owned()), "{links:?}");
    let csv = browser.eval("return document.querySelector('#csv').getAttribute('href')").await;
    assert_eq!(csv, json!(format!("/supervision/outcomes.csv?region_prefix=&domain=&from={from}&to={to}")));
}
