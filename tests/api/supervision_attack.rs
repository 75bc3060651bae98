//! The supervision view after its outside attack (issue 24): a draw's seed
//! cannot be computed before its checkpoint is published, orphaned commits
//! are completed, `audit` checks draws, and `verify-draw` reads only what
//! is signed.

use crate::helpers::*;
use crate::supervision::{draw_population, draw_request, keys_json};
use credit_tender::proto::v1 as pb;
use pb::log_service_client::LogServiceClient;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

/// A server whose publisher signs a checkpoint at its start and then only
/// once an hour: the tree grows past its newest checkpoint and stays so
/// while the test looks.
pub(crate) async fn spawn_hourly(store: credit_tender::store::Store) -> TestServer {
    let log = credit_tender::server::LogOptions { checkpoint_interval: Duration::from_secs(3600), ..Default::default() };
    let server = credit_tender::server::ServerOptions { log: Some(log), ..Default::default() };
    spawn_app(store, AppOptions { server, ..AppOptions::default() }).await
}

/// Another replica's publisher over the same store: signs a checkpoint of
/// the tree as it stands now.
pub(crate) async fn publish_as_replica(server: &TestServer, after: u64) -> u64 {
    let origin = credit_tender::server::DEFAULT_LOG_ORIGIN.to_owned();
    let metrics = Arc::new(credit_tender::metrics::Metrics::new());
    let (replica, _sequencer) = credit_tender::log::Log::new(server.store.clone(), origin, server.keys.clone(), metrics);
    replica.publish(after).await.unwrap()
}

/// Waits (for an event, not for time) until the store's tree has `size`
/// leaves: the tree is looked at again each time this server appends.
pub(crate) async fn tree_reaches(server: &TestServer, size: u64) {
    let mut appended = server.cache.metrics().logged_leaves();
    tokio::time::timeout(Duration::from_secs(30), async {
        while server.store.log_size().await.unwrap() < size {
            appended.changed().await.expect("the server's metrics outlive the wait");
        }
    })
    .await
    .expect("the tree grew");
}

fn inclusion(index: u64, tree_size: u64) -> pb::GetInclusionProofRequest {
    pb::GetInclusionProofRequest { leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(index)), tree_size }
}

fn refused(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, [field], "{}", status.message());
}

/// Finding 1 (critical): between a draw's commit and the checkpoint that
/// seeds it, no caller can read the commit's leaf or any proof, tile or
/// entry of a tree past the newest checkpoint, so nobody can compute the
/// seed early and grind it (add leaves until a favoured firm escapes).
/// Once the checkpoint is published, the same requests are answered and
/// the draw's seed is that checkpoint's root.
#[tokio::test]
async fn a_draws_seed_cannot_be_computed_by_any_caller_before_its_checkpoint_is_published() {
    let db = sqlite_db();
    let store = open(&db).await;
    store.log_append(&[b"a leaf before the start".to_vec()]).await.unwrap();
    let server = spawn_hourly(store).await;
    let mut published = server.cache.metrics().checkpoints();
    tokio::time::timeout(Duration::from_secs(30), published.wait_for(|n| *n >= 1)).await.unwrap().unwrap();
    draw_population(&server).await;
    let mut sup = pb::supervision_service_client::SupervisionServiceClient::new(server.channel.clone());
    let drawing = tokio::spawn(async move { sup.draw_inspection(draw_request()).await });
    // The commit is leaf 1; the newest checkpoint still has 1 leaf.
    tree_reaches(&server, 2).await;
    let mut log = LogServiceClient::new(server.channel.clone());
    assert_eq!(log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size, 1);
    let status = log.get_entries(pb::GetEntriesRequest { start: 1, end: 2 }).await.unwrap_err();
    refused(&status, "start");
    let got = log.get_entries(pb::GetEntriesRequest { start: 0, end: 2 }).await.unwrap().into_inner();
    assert_eq!(got.entries.len(), 1, "entries only up to the newest checkpoint");
    let status = log.get_inclusion_proof(inclusion(1, 0)).await.unwrap_err();
    refused(&status, "leaf_index");
    assert!(status.message().contains("ask again"), "a retry hint: {}", status.message());
    refused(&log.get_inclusion_proof(inclusion(0, 2)).await.unwrap_err(), "tree_size");
    let consistency = pb::GetConsistencyProofRequest { old_size: 1, new_size: 2 };
    refused(&log.get_consistency_proof(consistency).await.unwrap_err(), "new_size");
    for path in ["/log/tile/0/000.p/2", "/log/tile/entries/000.p/2", "/api/log/proof?index=1"] {
        assert_eq!(http_get_bytes(server.addr, path).await.0, 404, "{path}");
    }
    assert!(!drawing.is_finished(), "the draw waits for its checkpoint");

    // Another replica publishes the checkpoint of 2 leaves: the draw takes its root.
    assert_eq!(publish_as_replica(&server, 1).await, 2);
    let answer = tokio::time::timeout(Duration::from_secs(30), drawing).await.unwrap().unwrap().unwrap().into_inner();
    let cp = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: Some(2) }).await.unwrap().into_inner();
    let draw = answer.draw.unwrap();
    assert_eq!((draw.seed_tree_size, draw.seed.as_str()), (2, hex::encode(&cp.root_hash).as_str()));
    let entries = log.get_entries(pb::GetEntriesRequest { start: 1, end: 2 }).await.unwrap().into_inner().entries;
    assert_eq!(entries[0].to_vec(), credit_tender::log::leaf(answer.commit_envelope.as_ref().unwrap()));
    let proof = log.get_inclusion_proof(inclusion(1, 0)).await.unwrap().into_inner();
    assert_eq!(proof.tree_size, 2);
    assert_eq!(http_get_bytes(server.addr, "/log/tile/0/000.p/2").await.0, 200);
}

/// Finding 7: `verify-draw` compares the answer's unsigned copies with the
/// signed statements: an edited `draw.chosen`, `commitLogIndex`, an
/// impossible `drawLogIndex`, or a missing `commit` or `draw` is DIFFERS
/// naming the field, never IDENTICAL.
#[tokio::test]
async fn verify_draw_names_every_unsigned_copy_that_disagrees_with_the_signed_statements() {
    let db = sqlite_db();
    let server = crate::supervision::spawn(&db, None).await;
    draw_population(&server).await;
    let mut sup = pb::supervision_service_client::SupervisionServiceClient::new(server.channel.clone());
    let answer = sup.draw_inspection(draw_request()).await.unwrap().into_inner();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_json(&server, dir.path()).await;
    let run = |name: &str, a: &pb::DrawInspectionResponse| {
        let path = json_file(dir.path(), name, a);
        cli(&["verify-draw", path.to_str().unwrap(), "--keys", keys.to_str().unwrap()])
    };
    let out = run("genuine.json", &answer);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("not checked here: drawLogIndex {}", answer.draw_log_index)), "{}", stdout(&out));

    let population: Vec<String> = answer.population.iter().map(|p| p.credit_code.clone()).collect();
    let chosen: Vec<String> = answer.draw.as_ref().unwrap().chosen.iter().map(|c| c.credit_code.clone()).collect();
    let spared = population.iter().find(|c| !chosen.contains(c)).unwrap().clone();
    let mut swapped = answer.clone();
    swapped.draw.as_mut().unwrap().chosen[0].credit_code = spared;
    let mut commit_index = answer.clone();
    commit_index.commit_log_index += 1;
    let mut draw_index = answer.clone();
    draw_index.draw_log_index = answer.commit_log_index;
    let mut no_commit = answer.clone();
    no_commit.commit = None;
    let mut no_draw = answer.clone();
    no_draw.draw = None;
    let cases = [
        (swapped, "DIFFERS draw.chosen: the unsigned copy differs from the signed draw"),
        (commit_index, "DIFFERS commitLogIndex: the answer says"),
        (draw_index, "DIFFERS drawLogIndex: the answer says"),
        (no_commit, "DIFFERS commit: the answer has no unsigned copy"),
        (no_draw, "DIFFERS draw: the answer has no unsigned copy"),
    ];
    for (i, (edited, want)) in cases.iter().enumerate() {
        let out = run(&format!("edited{i}.json"), edited);
        assert_eq!(out.status.code(), Some(1), "{want}: {}{}", stdout(&out), stderr(&out));
        assert!(!stdout(&out).contains("IDENTICAL"), "{}", stdout(&out));
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
    }
}

const COMMIT_TYPE: &str = "application/vnd.credit-tender.inspection-commit.v1+json";
const DRAW_TYPE: &str = "application/vnd.credit-tender.inspection-draw.v1+json";

/// `message` signed with the server's statement key, as a log leaf.
fn signed_leaf<T: serde::Serialize>(server: &TestServer, payload_type: &str, message: &T) -> (pb::Envelope, Vec<u8>) {
    let env = server.keys.get().sign(payload_type, serde_json::to_vec(message).unwrap());
    let env = pb::Envelope {
        payload_type: env.payload_type,
        payload: env.payload.into(),
        signatures: env.signatures.into_iter().map(|(keyid, sig)| pb::Signature { keyid, sig: sig.into() }).collect(),
    };
    let leaf = credit_tender::log::leaf(&env);
    (env, leaf)
}

/// Waits until a checkpoint covers `size` leaves.
async fn covered(server: &TestServer, size: u64) {
    let mut published = server.cache.metrics().checkpoints();
    tokio::time::timeout(Duration::from_secs(30), published.wait_for(|n| *n >= size)).await.unwrap().unwrap();
}

/// Every leaf's payload type and JSON payload, read from the store.
async fn statements(server: &TestServer) -> Vec<(String, serde_json::Value)> {
    let size = server.store.log_size().await.unwrap();
    let leaves = server.store.log_entries(0, size).await.unwrap();
    leaves
        .iter()
        .map(|l| {
            let env = credit_tender::log::envelope_of_leaf(l).unwrap();
            (env.payload_type.clone(), serde_json::from_slice(&env.payload).unwrap_or(serde_json::Value::Null))
        })
        .collect()
}

async fn audit(server: &TestServer, state: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = ["audit", "--server", &format!("http://{}", server.addr), "--state", state.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

/// Findings 2 and 3: `audit` reads classifications, commits and draws
/// without a false alarm and checks each draw against its commit, the tree
/// and the checkpoints; a signed draw whose choice was bent is an alarm;
/// an orphaned commit is a warning within the grace and an alarm after;
/// the server completes an orphan on the next draw with its parameters
/// (its answer is the orphan's draw, seeded by the first checkpoint after
/// it) and at its start.
#[tokio::test]
async fn audit_checks_draws_and_orphaned_commits_are_completed_not_hidden() {
    let db = sqlite_db();
    let server = crate::supervision::spawn(&db, None).await;
    let codes = draw_population(&server).await;
    let mut sup = pb::supervision_service_client::SupervisionServiceClient::new(server.channel.clone());
    let classify = |code: &str| pb::ClassifyFirmRequest {
        credit_code: code.into(),
        domain: "highway_construction".into(),
        region: "440300".into(),
        date: "2026-12-15".into(),
        policy_id: String::new(),
    };
    sup.classify_firm(classify(&codes[0])).await.unwrap();
    sup.classify_firm(classify(&codes[1])).await.unwrap();
    let first = sup.draw_inspection(draw_request()).await.unwrap().into_inner();
    covered(&server, first.draw_log_index + 1).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("audit");
    let out = audit(&server, &state, &[]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains("ALARM") && !stdout(&out).contains("WARNING"), "{}{}", stdout(&out), stderr(&out));

    // A signed second draw for the same commit, its choice bent: one firm
    // swapped for one the procedure did not choose.
    let mut bent = first.draw.clone().unwrap();
    let spared = first.population.iter().find(|p| bent.chosen.iter().all(|c| c.credit_code != p.credit_code)).unwrap();
    bent.chosen[0].credit_code = spared.credit_code.clone();
    let (_, leaf) = signed_leaf(&server, DRAW_TYPE, &bent);
    let bent_index = server.store.log_append(&[leaf]).await.unwrap();
    covered(&server, bent_index + 1).await;
    let out = audit(&server, &state, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("ALARM: leaf {bent_index} (inspection draw): {}'s rank is not SHA-256(seed:code)", spared.credit_code)),
        "{err}"
    );
    assert!(
        err.contains(&format!("commit leaf {} has 2 draws", first.commit_log_index)) && err.contains("choosing different firms"),
        "{err}"
    );

    // An orphan: a commit for the same parameters, logged a minute ago, never drawn.
    let mut orphan = first.commit.clone().unwrap();
    let past = chrono::Utc::now().timestamp() - 60;
    orphan.issued_at = Some(pbjson_types::Timestamp { seconds: past, nanos: 0 });
    let (orphan_env, leaf) = signed_leaf(&server, COMMIT_TYPE, &orphan);
    let orphan_index = server.store.log_append(&[leaf]).await.unwrap();
    covered(&server, orphan_index + 1).await;
    let fresh = dir.path().join("fresh");
    let out = audit(&server, &fresh, &["--draw-grace-seconds", "3600"]).await;
    assert!(stdout(&out).contains(&format!("WARNING: leaf {orphan_index}: an inspection commit without a draw")), "{}", stdout(&out));
    let out = audit(&server, &dir.path().join("strict"), &["--draw-grace-seconds", "30"]).await;
    assert!(stderr(&out).contains(&format!("ALARM: leaf {orphan_index}: an inspection commit without a draw")), "{}", stderr(&out));

    // The next draw with its parameters completes it, from the first checkpoint after it.
    let completed = sup.draw_inspection(draw_request()).await.unwrap().into_inner();
    assert_eq!(completed.commit_log_index, orphan_index, "the orphan's draw, not a fresh commit");
    assert_eq!(completed.commit_envelope.as_ref(), Some(&orphan_env));
    let checkpoints = server.store.checkpoints().await.unwrap();
    let seed = checkpoints.iter().filter(|c| c.size > orphan_index).min_by_key(|c| c.size).unwrap();
    let draw = completed.draw.as_ref().unwrap();
    assert_eq!((draw.seed_tree_size, draw.seed.clone()), (seed.size, hex::encode(&seed.root)));
    let commits = statements(&server).await.iter().filter(|(t, _)| t == COMMIT_TYPE).count();
    assert_eq!(commits, 2, "no fresh commit");
    let keys = keys_json(&server, dir.path()).await;
    let file = json_file(dir.path(), "completed.json", &completed);
    let out = cli(&["verify-draw", file.to_str().unwrap(), "--keys", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // At start: an orphan left by a run that stopped between commit and draw.
    let (_, leaf) = signed_leaf(&server, COMMIT_TYPE, &orphan);
    let second_orphan = server.store.log_append(&[leaf]).await.unwrap();
    let restarted = crate::supervision::spawn(&db, None).await;
    // The restarted server appends the orphan's draw after its seed wait:
    // its statements are looked at again each time it appends.
    let mut appended = restarted.cache.metrics().logged_leaves();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let drawn = statements(&restarted)
                .await
                .iter()
                .any(|(t, v)| t == DRAW_TYPE && v["commitLogIndex"].as_str() == Some(second_orphan.to_string().as_str()));
            if drawn {
                break;
            }
            appended.changed().await.expect("the server's metrics outlive the wait");
        }
    })
    .await
    .expect("the restarted server draws the orphan");
}

/// Finding 9 (part): dates not written YYYY-MM-DD exactly, and a region
/// GB/T 2260 does not know, are INVALID_ARGUMENT naming the field.
#[tokio::test]
async fn outcomes_refuse_loose_dates_and_a_draw_refuses_an_unknown_region_naming_the_field() {
    let db = sqlite_db();
    let server = crate::supervision::spawn(&db, None).await;
    let mut sup = pb::supervision_service_client::SupervisionServiceClient::new(server.channel.clone());
    for (from, to, field) in [("2026-12-1", "2026-12-31", "from"), ("2026-12-01", "+2026-12-31", "to")] {
        let r = pb::GetOutcomesRequest { region_prefix: String::new(), domain: String::new(), from: from.into(), to: to.into() };
        let status = sup.get_outcomes(r).await.unwrap_err();
        refused(&status, field);
        assert!(status.message().contains("YYYY-MM-DD"), "{}", status.message());
    }
    let url = format!("http://{}", server.addr);
    let args: Vec<String> =
        ["outcomes", "--server", &url, "--from", "2026-12-01", "--to", "2026-12-31", "--tree-size", "0"].map(String::from).into();
    let out = tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tree-size 0"), "{}", stderr(&out));
    let mut r = draw_request();
    r.region = "149900".into();
    let status = sup.draw_inspection(r).await.unwrap_err();
    refused(&status, "region");
    assert!(status.message().contains("GB/T 2260"), "{}", status.message());
}

/// Finding 5 (part): a consortium assessed as [A, B] and as [B, A] is one
/// bid in the outcomes, not two.
#[tokio::test]
async fn a_consortium_counts_once_whatever_its_member_order() {
    let db = sqlite_db();
    let server = crate::supervision::spawn(&db, None).await;
    let (a, b) = (crate::assessment::code(7001), crate::assessment::code(7002));
    let statement = |first: &str, second: &str| {
        serde_json::json!({
            "tenderId": "T-CONSORTIUM", "tenderVersion": 1, "domain": "highway_construction", "region": "440300",
            "members": [{"creditCode": first}, {"creditCode": second}], "asOfDate": "2026-12-10",
            "eligible": true, "qualified": true
        })
    };
    let payload_type = "application/vnd.credit-tender.assessment.v1+json";
    let leaves = vec![signed_leaf(&server, payload_type, &statement(&a, &b)).1, signed_leaf(&server, payload_type, &statement(&b, &a)).1];
    let first = server.store.log_append(&leaves).await.unwrap();
    covered(&server, first + 2).await;
    let mut sup = pb::supervision_service_client::SupervisionServiceClient::new(server.channel.clone());
    let r =
        pb::GetOutcomesRequest { region_prefix: "44".into(), domain: String::new(), from: "2026-12-01".into(), to: "2026-12-31".into() };
    let o = sup.get_outcomes(r).await.unwrap().into_inner();
    let total = o.total.unwrap();
    assert_eq!((total.tenders, total.bids_assessed), (1, 1));
}
