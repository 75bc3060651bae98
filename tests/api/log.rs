//! The transparency log through the real interfaces: every signed statement
//! logged once, proofs that check against signed checkpoints, the tiles, the
//! CLI's verify/proof/audit/recompute, replicas on one PostgreSQL, kill -9.

use crate::assessment::{Fixture, code, terms};
use crate::helpers::*;
use credit_tender::log as tlog;
use credit_tender::proto::v1 as pb;
use credit_tender::server::{LogOptions, ServerOptions};
use credit_tender::tlog::{note, note::NoteKey, tree};
use serde_json::json;
use std::time::Duration;
use tonic::Code;

type LogClient = pb::log_service_client::LogServiceClient<tonic::transport::Channel>;

fn fast_log() -> ServerOptions {
    ServerOptions {
        log: Some(LogOptions { checkpoint_interval: Duration::from_millis(50), ..LogOptions::default() }),
        ..ServerOptions::default()
    }
}

/// The newest checkpoint, once this in-process server has published one
/// covering `size` leaves (awaited on its metrics, not polled).
async fn checkpoint_covering(server: &TestServer, size: u64) -> pb::Checkpoint {
    let mut published = server.cache.metrics().checkpoints();
    tokio::time::timeout(Duration::from_secs(10), published.wait_for(|n| *n >= size))
        .await
        .unwrap_or_else(|_| panic!("no checkpoint covers {size} leaves after 10 s"))
        .unwrap();
    newest(&mut LogClient::new(server.channel.clone())).await
}

/// The same for the binary: awaited on its log line.
async fn checkpoint_logged(server: &CliServer, size: u64) -> pb::Checkpoint {
    server.checkpoint_logged(size).await;
    newest(&mut LogClient::new(server.channel.clone())).await
}

async fn newest(log: &mut LogClient) -> pb::Checkpoint {
    log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner()
}

/// The log key ListKeys publishes, named by the checkpoint's origin.
async fn log_key(channel: tonic::transport::Channel, origin: &str) -> NoteKey {
    let keys = pb::key_service_client::KeyServiceClient::new(channel).list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    let k = keys.keys.iter().find(|k| k.role == "log" && k.status == "active").expect("a log key is listed with its role");
    NoteKey { name: origin.to_owned(), public_key: k.public_key.to_vec() }
}

fn hash(h: &[u8]) -> tree::Hash {
    tree::hash_from_bytes(h).unwrap()
}

#[tokio::test]
async fn every_statement_is_logged_once_and_proven_in_a_signed_checkpoint() {
    let db = sqlite_db();
    let mut f = Fixture::with(spawn_app(open(&db).await, AppOptions { server: fast_log(), ..AppOptions::default() }).await);
    let codes: Vec<String> = (0..5).map(|n| code(700 + n)).collect();
    f.put(&codes.iter().enumerate().map(|(i, c)| evaluation_json(&format!("e{i}"), c, json!({}))).collect::<Vec<_>>()).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let request = |c: &str| pb::AssessRequest {
        tender_id: "T1".into(),
        bidder: Some(pb::Bidder { credit_codes: vec![c.into()] }),
        contract_price_fen: None,
    };
    let mut envelopes = Vec::new();
    for c in &codes[..3] {
        let r = f.assess.assess(request(c)).await.unwrap().into_inner();
        envelopes.push((r.log_index.expect("the answer carries its log index"), r.envelope.unwrap()));
    }
    let mut log = LogClient::new(f.server.channel.clone());
    let early = checkpoint_covering(&f.server, 3).await;
    for c in &codes[3..] {
        let r = f.assess.assess(request(c)).await.unwrap().into_inner();
        envelopes.push((r.log_index.unwrap(), r.envelope.unwrap()));
    }
    // The same question at unchanged inputs is served from the cache: no new leaf.
    let again = f.assess.assess(request(&codes[0])).await.unwrap().into_inner();
    assert_eq!(again.log_index, Some(envelopes[0].0));
    // A deposit check is a statement of its own.
    let check = f
        .assess
        .check_deposit(pb::CheckDepositRequest {
            tender_id: "T1".into(),
            bidder: Some(pb::Bidder { credit_codes: vec![codes[1].clone()] }),
            offered_fen: 0,
            form: "cash".into(),
            contract_price_fen: None,
        })
        .await
        .unwrap()
        .into_inner();
    envelopes.push((check.log_index.unwrap(), check.envelope.unwrap()));
    let mut indexes: Vec<u64> = envelopes.iter().map(|(i, _)| *i).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..6).collect::<Vec<u64>>(), "one leaf per statement, no gap");

    let cp = checkpoint_covering(&f.server, 6).await;
    assert_eq!(cp.tree_size, 6);
    let origin = tlog::checkpoint_origin(&cp.note).unwrap().to_owned();
    let key = log_key(f.server.channel.clone(), &origin).await;
    let verified = tlog::verify_checkpoint(&cp.note, &key).unwrap();
    assert_eq!(verified.root, hash(&cp.root_hash));
    let entries = log.get_entries(pb::GetEntriesRequest { start: 0, end: 6 }).await.unwrap().into_inner().entries;
    for (index, env) in &envelopes {
        let leaf = tlog::leaf(env);
        assert_eq!(entries[*index as usize].to_vec(), leaf, "entry {index} is the envelope as compact DSSE JSON");
        let p = log
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(*index)),
                tree_size: 6,
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<_> = p.hashes.iter().map(|h| hash(h)).collect();
        tree::check_inclusion(&hashes, *index, 6, verified.root, tree::leaf_hash(&leaf)).unwrap();
        let by_hash = pb::GetInclusionProofRequest {
            leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafHash(tree::leaf_hash(&leaf).0.to_vec().into())),
            tree_size: 0,
        };
        assert_eq!(log.get_inclusion_proof(by_hash).await.unwrap().into_inner().leaf_index, *index);
    }
    let early_cp = tlog::verify_checkpoint(&early.note, &key).unwrap();
    let c =
        log.get_consistency_proof(pb::GetConsistencyProofRequest { old_size: early.tree_size, new_size: 6 }).await.unwrap().into_inner();
    let hashes: Vec<_> = c.hashes.iter().map(|h| hash(h)).collect();
    tree::check_consistency(&hashes, early_cp.size, early_cp.root, 6, verified.root).unwrap();

    // Requests beyond the tree, or inverted, are INVALID_ARGUMENT naming the field.
    let bad = [
        log.get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(100)),
            tree_size: 6,
        })
        .await
        .unwrap_err(),
        log.get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(0)),
            tree_size: 1000,
        })
        .await
        .unwrap_err(),
        log.get_consistency_proof(pb::GetConsistencyProofRequest { old_size: 5, new_size: 3 }).await.unwrap_err(),
        log.get_consistency_proof(pb::GetConsistencyProofRequest { old_size: 0, new_size: 3 }).await.unwrap_err(),
        log.get_entries(pb::GetEntriesRequest { start: 5, end: 2 }).await.unwrap_err(),
    ];
    for (status, field) in bad.iter().zip(["leaf_index", "tree_size", "old_size", "old_size", "end"]) {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }

    // The same tree as C2SP tlog-tiles over HTTP.
    let (code_, text) = http_get(f.server.addr, "/log/checkpoint").await;
    assert_eq!(code_, 200);
    let served = tlog::verify_checkpoint(&text, &key).unwrap();
    assert!(served.size >= 6);
    let (code_, tile) = http_get_bytes(f.server.addr, "/log/tile/0/000.p/6").await;
    assert_eq!(code_, 200);
    assert_eq!(tile.len(), 6 * 32);
    for (index, env) in &envelopes {
        let at = *index as usize * 32;
        assert_eq!(&tile[at..at + 32], &tree::leaf_hash(&tlog::leaf(env)).0, "level-0 tile holds the leaf hashes");
    }
    let (code_, bundle) = http_get_bytes(f.server.addr, "/log/tile/entries/000.p/6").await;
    assert_eq!(code_, 200);
    let mut at = 0;
    for entry in &entries {
        let len = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
        assert_eq!(&bundle[at + 2..at + 2 + len], &entry[..]);
        at += 2 + len;
    }
    assert_eq!(at, bundle.len());
    assert_eq!(http_get_bytes(f.server.addr, "/log/tile/0/000.p/200").await.0, 404, "a tile beyond the tree");
    assert_eq!(http_get_bytes(f.server.addr, "/log/tile/nonsense").await.0, 404);
}

/// A deposit check for a bidder never assessed makes two statements, the
/// assessment and the check, logged together: the assessment's leaf just
/// before the check's, and the assessment is the one a later Assess answers
/// with (the cached statement, not a second one), the same the check embeds.
#[tokio::test]
async fn a_first_deposit_check_logs_its_assessment_just_before_it_and_assess_answers_that_one() {
    let db = sqlite_db();
    let mut f = Fixture::with(spawn_app(open(&db).await, AppOptions { server: fast_log(), ..AppOptions::default() }).await);
    let codes: Vec<String> = (0..3).map(|n| code(760 + n)).collect();
    f.put(&codes.iter().enumerate().map(|(i, c)| evaluation_json(&format!("e{i}"), c, json!({}))).collect::<Vec<_>>()).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let bidder = |c: &str| Some(pb::Bidder { credit_codes: vec![c.into()] });
    let mut leaves = Vec::new();
    for c in &codes {
        let check = f
            .assess
            .check_deposit(pb::CheckDepositRequest {
                tender_id: "T1".into(),
                bidder: bidder(c),
                offered_fen: 1,
                form: "cash".into(),
                contract_price_fen: None,
            })
            .await
            .unwrap()
            .into_inner();
        let assessed =
            f.assess.assess(pb::AssessRequest { tender_id: "T1".into(), bidder: bidder(c), contract_price_fen: None }).await.unwrap();
        let assessed = assessed.into_inner();
        let (a, k) = (assessed.log_index.unwrap(), check.log_index.unwrap());
        assert_eq!(k, a + 1, "the check's leaf follows its assessment's");
        assert_eq!(check.check.unwrap().assessment, assessed.statement, "the check embeds the statement Assess answers with");
        leaves.push((a, assessed.envelope.unwrap()));
        leaves.push((k, check.envelope.unwrap()));
    }
    // Every answer came after its leaf was durable: the first checkpoint covering 6 leaves covers them all.
    let cp = checkpoint_covering(&f.server, 6).await;
    assert_eq!(cp.tree_size, 6, "two leaves per new bidder, no more");
    let mut log = LogClient::new(f.server.channel.clone());
    let entries = log.get_entries(pb::GetEntriesRequest { start: 0, end: 6 }).await.unwrap().into_inner().entries;
    for (index, env) in &leaves {
        assert_eq!(entries[*index as usize].to_vec(), tlog::leaf(env), "leaf {index}");
    }
}

/// A statement's envelope and log index, for the CLI tests.
async fn a_logged_statement(channel: tonic::transport::Channel) -> (u64, pb::Envelope) {
    pb::credit_data_service_client::CreditDataServiceClient::new(channel.clone())
        .put_records(pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("e", &code(801), json!({})))], source: String::new() })
        .await
        .unwrap();
    pb::tender_service_client::TenderServiceClient::new(channel.clone())
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T1".into(),
            terms: Some(terms("440300", "2026-12-15")),
            policy_id: "national-template".into(),
        })
        .await
        .unwrap();
    let r = pb::assessment_service_client::AssessmentServiceClient::new(channel)
        .assess(pb::AssessRequest {
            tender_id: "T1".into(),
            bidder: Some(pb::Bidder { credit_codes: vec![code(801)] }),
            contract_price_fen: None,
        })
        .await
        .unwrap()
        .into_inner();
    (r.log_index.unwrap(), r.envelope.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_inclusion_offline_and_names_every_bad_input() {
    let db = sqlite_db();
    let f = Fixture::with(spawn_app(open(&db).await, AppOptions { server: fast_log(), ..AppOptions::default() }).await);
    let (index, env) = a_logged_statement(f.server.channel.clone()).await;
    checkpoint_covering(&f.server, index + 1).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = pb::key_service_client::KeyServiceClient::new(f.server.channel.clone())
        .list_keys(pb::ListKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    let keys_path = json_file(dir.path(), "keys.json", &keys);
    let env_path = json_file(dir.path(), "env.json", &env);
    let (cp, proof) = (dir.path().join("cp"), dir.path().join("proof.json"));
    let server = format!("http://{}", f.server.addr);
    let out = cli(&[
        "proof",
        "--server",
        &server,
        "--index",
        &index.to_string(),
        "--checkpoint",
        cp.to_str().unwrap(),
        "--proof",
        proof.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let verify = |env: &std::path::Path, keys: &std::path::Path, cp: &std::path::Path, proof: &std::path::Path| {
        cli(&[
            "verify",
            env.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--checkpoint",
            cp.to_str().unwrap(),
            "--proof",
            proof.to_str().unwrap(),
        ])
    };
    let ok = verify(&env_path, &keys_path, &cp, &proof);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("Logged      leaf {index}")));

    // A corrupted checkpoint.
    let note = std::fs::read_to_string(&cp).unwrap();
    let lines: Vec<&str> = note.lines().collect();
    let corrupted = note.replacen(lines[2], &lines[2].replace(&lines[2][..4], "AAAA"), 1);
    let bad_cp = file(dir.path(), "bad-cp", corrupted);
    let out = verify(&env_path, &keys_path, &bad_cp, &proof);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("INVALID checkpoint"), "{}", stderr(&out));
    // A proof for another tree.
    let mut p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    p["treeSize"] = json!("7");
    let other = file(dir.path(), "other.json", p.to_string());
    let out = verify(&env_path, &keys_path, &cp, &other);
    assert_eq!(out.status.code(), Some(65), "input data that does not fit together");
    assert!(stderr(&out).contains("a proof for another tree"), "{}", stderr(&out));
    // A truncated envelope.
    let text = std::fs::read_to_string(&env_path).unwrap();
    let truncated = file(dir.path(), "truncated.json", &text[..text.len() / 2]);
    let out = verify(&truncated, &keys_path, &cp, &proof);
    assert_eq!(out.status.code(), Some(65), "not an envelope: data refused");
    assert!(stderr(&out).contains("not a DSSE envelope"), "{}", stderr(&out));
    // An unknown log key: keys without the log's.
    let mut statement_only = keys.clone();
    statement_only.keys.retain(|k| k.role != "log");
    let out = verify(&env_path, &json_file(dir.path(), "no-log.json", &statement_only), &cp, &proof);
    assert_eq!(out.status.code(), Some(65), "cannot check is not invalid: data missing");
    assert!(stderr(&out).contains("no listed key has role \"log\""), "{}", stderr(&out));
    // Another statement is not the proven leaf.
    let mut other_env = env.clone();
    other_env.payload = env.payload.slice(..env.payload.len() - 1);
    let out = verify(&json_file(dir.path(), "other-env.json", &other_env), &keys_path, &cp, &proof);
    assert_eq!(out.status.code(), Some(1));

    // Malformed input is 65 (data), never 1 (a check that said no): a file
    // that is no checkpoint, and proofs no tree could have (issue 19).
    for (name, text, says) in [
        ("not-a-note", "hello\n".to_owned(), "not a signed checkpoint"),
        ("no-signature", format!("{}\n", note.split("\n\n").next().unwrap()), "not a signed checkpoint"),
        ("bad-base64", note.replacen(lines[4].rsplit(' ').next().unwrap(), "!!!", 1), "not a signed checkpoint"),
    ] {
        let out = verify(&env_path, &keys_path, &file(dir.path(), name, text), &proof);
        assert_eq!(out.status.code(), Some(65), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
    }
    let proven: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let size: u64 = proven["treeSize"].as_str().unwrap().parse().unwrap();
    let mut p = proven.clone();
    p["leafIndex"] = json!(size.to_string());
    let out = verify(&env_path, &keys_path, &cp, &file(dir.path(), "index.json", p.to_string()));
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("leaf_index {size} is not in a tree of {size} leaves")), "{}", stderr(&out));
    let mut p = proven.clone();
    let mut hashes = p["hashes"].as_array().cloned().unwrap_or_default();
    hashes.push(json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32])));
    p["hashes"] = json!(hashes);
    let out = verify(&env_path, &keys_path, &cp, &file(dir.path(), "long.json", p.to_string()));
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("hashes; an inclusion proof of leaf"), "{}", stderr(&out));
}

/// A log of more statements than 4 MiB holds (about 5 KB each): GetEntries
/// answers fewer entries than asked, within the default message size every
/// gRPC client decodes, and `audit` reads the whole log by asking again
/// (it failed from about 800 statements on; found by the outside attack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_come_in_answers_every_client_can_decode_and_audit_reads_a_large_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("credit.db").display());
    let keys = keys_file(dir.path());
    let server = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap(), "--checkpoint-interval-ms", "50"]).await;
    let ch = server.channel.clone();
    const BIDS: u32 = 900;
    let records = (0..BIDS).map(|n| to_proto(evaluation_json(&format!("e{n}"), &code(5_000 + n), json!({})))).collect();
    pb::credit_data_service_client::CreditDataServiceClient::new(ch.clone())
        .put_records(pb::PutRecordsRequest { records, source: String::new() })
        .await
        .unwrap();
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(ch.clone());
    let register = pb::RegisterTenderRequest {
        tender_id: "BIG".into(),
        terms: Some(terms("440300", "2026-12-15")),
        policy_id: "national-template".into(),
    };
    tenders.register_tender(register).await.unwrap();
    for n in 0..BIDS {
        let bidder = Some(pb::Bidder { credit_codes: vec![code(5_000 + n)] });
        tenders.register_bid(pb::RegisterBidRequest { tender_id: "BIG".into(), bidder }).await.unwrap();
    }
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(ch.clone());
    let mut page_token = String::new();
    loop {
        let page = assess
            .assess_tender(pb::AssessTenderRequest { tender_id: "BIG".into(), page_token: page_token.clone(), page_size: 200 })
            .await
            .unwrap()
            .into_inner();
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    checkpoint_logged(&server, u64::from(BIDS)).await;
    let got = LogClient::new(ch.clone()).get_entries(pb::GetEntriesRequest { start: 0, end: u64::from(BIDS) }).await.unwrap().into_inner();
    let bytes: usize = got.entries.iter().map(|e| e.len()).sum();
    assert!(!got.entries.is_empty() && got.entries.len() < BIDS as usize, "{} entries, {bytes} bytes", got.entries.len());
    assert!(bytes <= credit_tender::service::MAX_ENTRIES_BYTES, "{bytes} bytes in one answer");
    let state = dir.path().join("audit");
    let out = cli(&["audit", "--server", &format!("http://{}", server.addr), "--state", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("tender BIG: {BIDS} new statement(s)")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn audit_follows_the_log_and_reports_forks_tampering_and_two_answers_to_one_question() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("credit.db");
    let url = format!("sqlite://{}", db_path.display());
    let keys = keys_file(dir.path());
    let server = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap(), "--checkpoint-interval-ms", "50"]).await;
    let (_, env) = a_logged_statement(server.channel.clone()).await;
    let mut log = LogClient::new(server.channel.clone());
    checkpoint_logged(&server, 1).await;
    let state = dir.path().join("audit");
    let url_arg = format!("http://{}", server.addr);
    let audit = || cli(&["audit", "--server", &url_arg, "--state", state.to_str().unwrap()]);
    let out = audit();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tender T1: 1 new statement(s)"), "{}", String::from_utf8_lossy(&out.stdout));

    // A second, different answer to the same question, validly signed and logged.
    let pair = credit_tender::signing::load_key_pair(&dir.path().join("k.pk8")).unwrap();
    let mut forged: serde_json::Value = serde_json::from_slice(&env.payload).unwrap();
    forged["depositOwedFen"] = json!("1");
    let payload = serde_json::to_vec(&forged).unwrap();
    use ring::signature::KeyPair;
    let keyid = credit_tender::signing::key_id(pair.public_key().as_ref());
    let pae = format!("DSSEv1 {} {} {} ", env.payload_type.len(), env.payload_type, payload.len()).into_bytes();
    let sig = pair.sign(&[pae, payload.clone()].concat());
    let forged_env = pb::Envelope {
        payload_type: env.payload_type.clone(),
        payload: payload.into(),
        signatures: vec![pb::Signature { keyid, sig: sig.as_ref().to_vec().into() }],
    };
    let store = credit_tender::store::Store::open(&url).await.unwrap();
    store.log_append(&[tlog::leaf(&forged_env)]).await.unwrap();
    checkpoint_logged(&server, 2).await;
    let out = audit();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 distinct answers to one question (T1 v1 bidder"), "{}", stderr(&out));
    assert!(stderr(&out).contains("leaves 0, 1") || stderr(&out).contains("leaves 1, 0"), "{}", stderr(&out));

    // A checkpoint of the same size with another root, signed by the log key: a fork, shown with both.
    let log_pair = credit_tender::signing::load_key_pair(&dir.path().join("log.pk8")).unwrap();
    let cp = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner();
    let origin = tlog::checkpoint_origin(&cp.note).unwrap().to_owned();
    let forked_note = note::sign(&tlog::checkpoint_text(&origin, cp.tree_size, &tree::leaf_hash(b"fork")), &origin, &log_pair).unwrap();
    let mut kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    kept["checkpoint"] = json!(forked_note);
    std::fs::write(state.join("state.json"), kept.to_string()).unwrap();
    let out = audit();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("FORKED LOG: two checkpoints of size"), "{err}");
    assert!(err.contains(&forked_note) && err.contains(&cp.note), "both checkpoints are shown: {err}");

    // A smaller checkpoint the newest does not extend: a fork too.
    let inconsistent = note::sign(&tlog::checkpoint_text(&origin, 1, &tree::leaf_hash(b"another first leaf")), &origin, &log_pair).unwrap();
    kept["checkpoint"] = json!(inconsistent);
    std::fs::write(state.join("state.json"), kept.to_string()).unwrap();
    std::fs::write(state.join("hashes"), [0u8; 32]).unwrap();
    let out = audit();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("FORKED LOG: the checkpoint of size {} is not consistent with the one of size 1", cp.tree_size)),
        "{err}"
    );
    assert!(err.contains(&inconsistent) && err.contains(&cp.note), "both checkpoints are shown: {err}");

    // A tampered entry, audited from scratch: named by its index.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut tampered = tlog::leaf(&env);
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    sqlx::query("UPDATE log_leaves SET leaf = $1 WHERE idx = 0").bind(tampered).execute(&pool).await.unwrap();
    let fresh = dir.path().join("audit2");
    let out = cli(&["audit", "--server", &url_arg, "--state", fresh.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tampered entry 0"), "{}", stderr(&out));
}

#[tokio::test]
async fn recompute_reproduces_every_demo_statement_and_a_later_backdated_repair_changes_none() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let store = credit_tender::store::Store::open(&url).await.unwrap();
    credit_tender::demo::load(&store, &credit_tender::rules::Rules::shipped()).await.unwrap();
    let policies = credit_tender::service::PolicySet::load(store.clone(), None).await.unwrap();
    credit_tender::demo::register_tenders(&store, &policies).await.unwrap();
    let mut f = Fixture::with(spawn_app(store.clone(), AppOptions::default()).await);
    let tenders = f.tenders.list_tenders(pb::ListTendersRequest {}).await.unwrap().into_inner().tenders;
    let mut files = Vec::new();
    for t in &tenders {
        let table = f
            .assess
            .assess_tender(pb::AssessTenderRequest { tender_id: t.tender_id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        for bid in table.bids {
            let env = bid.assessment.unwrap().envelope.unwrap();
            files.push(json_file(dir.path(), &format!("a{}.json", files.len()), &env));
            let check = pb::CheckDepositRequest {
                tender_id: t.tender_id.clone(),
                bidder: bid.bid.unwrap().bidder,
                offered_fen: 1_000_000,
                form: "credit_guarantee".into(),
                contract_price_fen: None,
            };
            let env = f.assess.check_deposit(check).await.unwrap().into_inner().envelope.unwrap();
            files.push(json_file(dir.path(), &format!("d{}.json", files.len()), &env));
        }
    }
    assert!(files.len() >= 30, "{}", files.len());
    let recompute = |files: &[std::path::PathBuf]| {
        for path in files {
            let out = cli(&["recompute", path.to_str().unwrap(), "--db", &url]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            assert!(String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"));
        }
    };
    recompute(&files);
    // As `assess --json` writes a statement: the envelope with its logIndex.
    let mut with_index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    with_index["logIndex"] = json!(0);
    let st = dir.path().join("st.json");
    std::fs::write(&st, serde_json::to_vec_pretty(&with_index).unwrap()).unwrap();
    recompute(std::slice::from_ref(&st));
    // Any other field is refused in a sentence naming the file and what it should hold.
    with_index["note"] = json!("x");
    std::fs::write(&st, serde_json::to_vec_pretty(&with_index).unwrap()).unwrap();
    let out = cli(&["recompute", st.to_str().unwrap(), "--db", &url]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("st.json: not a DSSE envelope") && stderr(&out).contains("logIndex as `assess --json` writes it"),
        "{}",
        stderr(&out)
    );
    // A repair of the demo's blacklisting, recorded now but effective before
    // the deadlines: new answers change, the logged ones still recompute.
    f.put(&[event_json("late-repair", "91320100MA000113X2", "list-1", "repair", "2026-02-01")]).await;
    recompute(&files);
    // A statement altered after signing is shown to differ.
    let mut env: pb::Envelope = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&env.payload).unwrap();
    v["totalPoints"] = json!(99.5);
    env.payload = serde_json::to_vec(&v).unwrap().into();
    let out = cli(&["recompute", json_file(dir.path(), "altered.json", &env).to_str().unwrap(), "--db", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DIFFERS /totalPoints"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_append_to_one_gap_free_tree() {
    let Some(db) = pg_db().await else { return };
    let a = spawn_app(open(&db).await, AppOptions { server: fast_log(), ..AppOptions::default() }).await;
    let b = spawn_app(open(&db).await, AppOptions { server: fast_log(), ..AppOptions::default() }).await;
    let mut fa = Fixture::with(a);
    fa.tender("T1", "national-template", "440300", "2026-12-15").await;
    let fb = Fixture::with(b);
    const EACH: u32 = 60;
    let mut tasks = Vec::new();
    for (r, f) in [&fa, &fb].into_iter().enumerate() {
        for w in 0..4u32 {
            let mut assess = f.assess.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in (w..EACH).step_by(4) {
                    let c = code(20_000 + r as u32 * 1000 + i);
                    let req = pb::AssessRequest {
                        tender_id: "T1".into(),
                        bidder: Some(pb::Bidder { credit_codes: vec![c] }),
                        contract_price_fen: None,
                    };
                    let r = assess.assess(req).await.unwrap().into_inner();
                    got.push((r.log_index.unwrap(), tlog::leaf(&r.envelope.unwrap())));
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    let total = 2 * EACH as u64;
    assert_eq!(all.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..total).collect::<Vec<_>>(), "one order, no gap, no index twice");
    let mut log = LogClient::new(fa.server.channel.clone());
    checkpoint_covering(&fa.server, total).await;
    let entries = log.get_entries(pb::GetEntriesRequest { start: 0, end: total }).await.unwrap().into_inner().entries;
    for (i, leaf) in &all {
        assert_eq!(&entries[*i as usize][..], &leaf[..], "leaf {i} is what its replica answered");
    }
    // Every checkpoint either replica published is consistent with the next.
    let checkpoints = fa.server.store.checkpoints().await.unwrap();
    assert!(checkpoints.len() >= 2, "{}", checkpoints.len());
    for pair in checkpoints.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        // The empty tree's checkpoint: every tree extends it (RFC 6962 §2.1.2
        // defines consistency proofs from a size of at least 1 only).
        if old.size == 0 {
            continue;
        }
        let p = log
            .get_consistency_proof(pb::GetConsistencyProofRequest { old_size: old.size, new_size: new.size })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<_> = p.hashes.iter().map(|h| hash(h)).collect();
        tree::check_consistency(&hashes, old.size, hash(&old.root), new.size, hash(&new.root)).unwrap();
    }
}

/// kill -9 during a burst of fresh statements, `LOG_CRASH_CYCLES` times
/// (3 in CI; BENCHMARKS.md has the 30-cycle run): every answer that reached
/// the client is in the log at its index, and every checkpoint ever published
/// (all are kept in the store) is consistent with the tree after restart.
async fn log_crash_cycles_on(db: &TestDb) -> (usize, usize, usize) {
    let cycles = knob("LOG_CRASH_CYCLES", 3, 1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(dir.path());
    let args = ["serve", "--db", &db.url, "--keys", keys.to_str().unwrap(), "--checkpoint-interval-ms", "20"];
    let serve = || CliServer::spawn(&args);
    type Answered = std::sync::Arc<std::sync::Mutex<Vec<(u64, Vec<u8>)>>>;
    let acked: Answered = Default::default();
    // How many answers arrived, for awaiting (not polling) them.
    let count = std::sync::Arc::new(tokio::sync::watch::Sender::new(0usize));
    let mut next = 0u32;
    for cycle in 0..cycles {
        let mut server = serve().await;
        if cycle == 0 {
            pb::tender_service_client::TenderServiceClient::new(server.channel.clone())
                .register_tender(pb::RegisterTenderRequest {
                    tender_id: "T1".into(),
                    terms: Some(terms("440300", "2026-12-15")),
                    policy_id: "national-template".into(),
                })
                .await
                .unwrap();
        }
        let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4u32 {
            let channel = server.channel.clone();
            let (acked, count, killed) = (acked.clone(), count.clone(), killed.clone());
            let base = next + w * 10_000;
            tasks.push(tokio::spawn(async move {
                let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(channel);
                for i in 0..10_000u32 {
                    let req = pb::AssessRequest {
                        tender_id: "T1".into(),
                        bidder: Some(pb::Bidder { credit_codes: vec![code(300_000 + base + i)] }),
                        contract_price_fen: None,
                    };
                    match assess.assess(req).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            acked
                                .lock()
                                .unwrap()
                                .push((r.log_index.expect("a logged answer has its index"), tlog::leaf(&r.envelope.unwrap())));
                            count.send_modify(|c| *c += 1);
                        }
                        // The kill ends the burst; any error before it is the server's fault.
                        Err(_) if killed.load(std::sync::atomic::Ordering::SeqCst) => return Ok(()),
                        Err(status) => return Err(format!("statement {} failed before the kill: {status:?}", base + i)),
                    }
                }
                Ok(())
            }));
        }
        next += 40_000;
        let target = acked.lock().unwrap().len() + 30 + cycle % 11;
        let mut acks = count.subscribe();
        let flowing = tokio::time::timeout(Duration::from_secs(60), acks.wait_for(|n| *n >= target)).await.is_ok();
        assert!(flowing, "[{}] cycle {cycle}: fewer than {target} answers after 60 s", db.backend);
        killed.store(true, std::sync::atomic::Ordering::SeqCst);
        server.child.kill().unwrap(); // SIGKILL, mid-burst
        server.child.wait().unwrap();
        for t in tasks {
            if let Err(e) = t.await.expect("a client task panicked") {
                panic!("[{}] cycle {cycle}: {e}", db.backend);
            }
        }
    }
    let server = serve().await;
    let mut log = LogClient::new(server.channel.clone());
    let acked = acked.lock().unwrap().clone();
    let newest = acked.iter().map(|(i, _)| *i).max().unwrap();
    let end = checkpoint_logged(&server, newest + 1).await;
    let origin = tlog::checkpoint_origin(&end.note).unwrap().to_owned();
    let key = log_key(server.channel.clone(), &origin).await;
    let end_cp = tlog::verify_checkpoint(&end.note, &key).unwrap();
    let mut entries = Vec::new();
    while (entries.len() as u64) < end.tree_size {
        let got = log.get_entries(pb::GetEntriesRequest { start: entries.len() as u64, end: end.tree_size }).await.unwrap().into_inner();
        assert!(!got.entries.is_empty(), "GetEntries from {} answered no entry below {}", entries.len(), end.tree_size);
        entries.extend(got.entries);
    }
    for (index, leaf) in &acked {
        assert_eq!(&entries[*index as usize][..], &leaf[..], "[{}] answered leaf {index} is not in the log after kill -9", db.backend);
    }
    // Every checkpoint ever published is kept in the store: each one, not a sample.
    let seen = credit_tender::store::Store::open(&db.url).await.unwrap().checkpoints().await.unwrap();
    assert!(seen.len() >= cycles, "[{}] {} checkpoints for {cycles} cycles", db.backend, seen.len());
    for c in &seen {
        let old = tlog::verify_checkpoint(&c.note, &key).unwrap();
        // The empty tree's checkpoint (published first): every tree extends it.
        if old.size == 0 {
            continue;
        }
        if old.size == end_cp.size {
            assert_eq!(old.root, end_cp.root);
            continue;
        }
        let p = log
            .get_consistency_proof(pb::GetConsistencyProofRequest { old_size: old.size, new_size: end_cp.size })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<_> = p.hashes.iter().map(|h| hash(h)).collect();
        tree::check_consistency(&hashes, old.size, old.root, end_cp.size, end_cp.root).unwrap_or_else(|e| {
            panic!("[{}] checkpoint of size {} is not consistent with the tree after restart: {e}", db.backend, old.size)
        });
    }
    (cycles, acked.len(), seen.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_statement_is_in_the_log_after_kill_9() {
    for db in backends().await {
        let (cycles, leaves, checkpoints) = log_crash_cycles_on(&db).await;
        println!(
            "[{}] {cycles} kill -9 cycles: {leaves} answered leaves checked at their index, {checkpoints} checkpoints consistent, 0 lost",
            db.backend
        );
        assert!(leaves > 0 && checkpoints > 0);
    }
}

#[tokio::test]
async fn the_log_key_rotates_with_sighup_like_the_statement_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db();
    let keys = keys_file(dir.path());
    let server = CliServer::spawn(&["serve", "--db", &db.url, "--keys", keys.to_str().unwrap(), "--checkpoint-interval-ms", "50"]).await;
    a_logged_statement(server.channel.clone()).await;
    let first = checkpoint_logged(&server, 1).await;
    let origin = tlog::checkpoint_origin(&first.note).unwrap().to_owned();
    let old_key = log_key(server.channel.clone(), &origin).await;
    tlog::verify_checkpoint(&first.note, &old_key).unwrap();

    // A new log key active, the old one kept for what it signed.
    assert!(cli(&["keygen", "--out", dir.path().join("log2.pk8").to_str().unwrap()]).status.success());
    std::fs::write(
        &keys,
        "[[key]]\nfile = \"k.pk8\"\nstatus = \"active\"\n\n[[key]]\nfile = \"log2.pk8\"\nrole = \"log\"\nstatus = \"active\"\n\n\
         [[key]]\nfile = \"log.pk8\"\nrole = \"log\"\nstatus = \"verify_only\"\n",
    )
    .unwrap();
    assert!(std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap().success());
    server.log_line("keys reloaded").await;
    let listed =
        pb::key_service_client::KeyServiceClient::new(server.channel.clone()).list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    let log_keys: Vec<(&str, &str)> =
        listed.keys.iter().filter(|k| k.role == "log").map(|k| (k.status.as_str(), k.keyid.as_str())).collect();
    assert_eq!(log_keys.len(), 2, "{log_keys:?}");
    let new_key = listed.keys.iter().find(|k| k.role == "log" && k.status == "active").unwrap();
    let new_key = NoteKey { name: origin.clone(), public_key: new_key.public_key.to_vec() };
    assert_ne!(new_key, old_key);

    // The next checkpoint is signed by the new key; the old one still verifies the old checkpoint.
    pb::assessment_service_client::AssessmentServiceClient::new(server.channel.clone())
        .assess(pb::AssessRequest {
            tender_id: "T1".into(),
            bidder: Some(pb::Bidder { credit_codes: vec![code(802)] }),
            contract_price_fen: None,
        })
        .await
        .unwrap();
    let second = checkpoint_logged(&server, 2).await;
    tlog::verify_checkpoint(&second.note, &new_key).unwrap();
    assert!(tlog::verify_checkpoint(&second.note, &old_key).is_err());
    tlog::verify_checkpoint(&first.note, &old_key).unwrap();
}

/// Appends of any size, from two handles on one store taking turns, make
/// the tree an in-memory computation of the same leaves makes: a batch
/// larger than one statement's share is written in several, and a handle
/// that did not make the last append reads the tree's edge back rather than
/// trust what its own last append left.
#[tokio::test]
async fn appends_of_any_size_from_two_handles_make_the_tree_computed_in_memory() {
    let mut dbs = vec![sqlite_db()];
    dbs.extend(pg_db().await);
    for db in &dbs {
        let (one, two) = (open(db).await, open(db).await);
        let leaves: Vec<Vec<u8>> = (0..2_100u32).map(|i| format!("leaf {i} {}", "x".repeat(i as usize % 97)).into_bytes()).collect();
        let mut at = 0;
        for (k, n) in [1_300, 5, 1, 700, 3, 91].into_iter().enumerate() {
            let store = if k % 2 == 0 { &one } else { &two };
            assert_eq!(store.log_append(&leaves[at..at + n]).await.unwrap(), at as u64, "{}: batch {k}", db.backend);
            at += n;
        }
        let hashes: Vec<tree::Hash> = leaves[..at].iter().map(|l| tree::leaf_hash(l)).collect();
        let all = tree::Known(tree::append(0, &hashes, tree::Known::default()).unwrap().into_iter().collect());
        let size = at as u64;
        let stored = one.log_hashes(&tree::root_reads(size)).await.unwrap();
        assert_eq!(tree::root(size, &stored).unwrap(), tree::root(size, &all).unwrap(), "{}", db.backend);
        assert_eq!(one.log_size().await.unwrap(), size);
        assert_eq!(two.log_entries(1_295, 1_310).await.unwrap(), leaves[1_295..1_310].to_vec(), "{}", db.backend);
        // Every stored hash, not only the root's: proofs read them all.
        let every: Vec<u64> = all.0.keys().copied().collect();
        let stored = two.log_hashes(&every).await.unwrap();
        assert!(every.iter().all(|i| stored.0[i] == all.0[i]), "{}", db.backend);
    }
}
