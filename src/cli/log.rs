//! The transparency log from the command line: `proof` fetches what
//! `verify --checkpoint --proof` checks, `audit` follows the log and raises
//! alarms, `recompute` explains a logged statement from the store.

use super::exit::Exit;
use super::out::{errln, outln};
use super::remote::{Ch, Connect, connect};
use super::verify::{keys_file, keys_of, verified_checkpoint};
use crate::log::VerifiedCheckpoint;
use crate::proto::v1 as pb;
use crate::signing::{PublicKeyInfo, verify_each};
use crate::tlog::tree::{self, Hash, Known};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ProofArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// The statement's log index (`log_index` in the answer).
    #[arg(long)]
    pub index: u64,
    /// Where to write the signed checkpoint the proof is against.
    #[arg(long, value_name = "CP")]
    pub checkpoint: PathBuf,
    /// Where to write the inclusion proof (JSON).
    #[arg(long, value_name = "PROOF.json")]
    pub proof: PathBuf,
}

/// How long `proof` waits for a signed checkpoint that includes the index.
const PROOF_WAIT_SECONDS: u64 = 10;

/// Writes the newest checkpoint and a statement's inclusion proof in it,
/// waiting up to [`PROOF_WAIT_SECONDS`] for a checkpoint that includes the
/// index (a statement issued a moment ago is signed into the next one).
pub(super) async fn proof(args: &ProofArgs) -> Result<(), Exit> {
    let mut log = pb::log_service_client::LogServiceClient::new(connect(&args.connect).await?);
    let server = args.connect.server.as_str();
    // A statement just issued is in the tree at once, but in a signed
    // checkpoint only at the next one (every --checkpoint-interval-ms, 1 s by
    // default): wait for it a little rather than call the index unknown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(PROOF_WAIT_SECONDS);
    loop {
        let newest = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.map_err(|e| Exit::from_status(server, &e))?;
        if newest.get_ref().tree_size > args.index || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await; // the next checkpoint cannot be awaited over gRPC
    }
    let request = pb::GetInclusionProofRequest { leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(args.index)), tree_size: 0 };
    let p = log.get_inclusion_proof(request).await.map_err(|e| Exit::from_status(server, &e))?.into_inner();
    let checkpoint = p.checkpoint.clone().ok_or_else(|| Exit::software("the server sent no checkpoint with the proof"))?;
    let write = |path: &Path, text: &str| std::fs::write(path, text).map_err(|e| Exit::creating(path, &e));
    write(&args.checkpoint, &checkpoint.note)?;
    write(&args.proof, &serde_json::to_string_pretty(&p).expect("proofs serialise"))?;
    outln!(
        "leaf {} in the tree of {}: checkpoint {}, proof {}",
        p.leaf_index,
        p.tree_size,
        args.checkpoint.display(),
        args.proof.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Where the auditor keeps what it has verified (created if missing).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// The keys to trust (a ListKeys answer as JSON); default: ask the
    /// server the first time and keep them in DIR (trust on first use).
    #[arg(long, value_name = "KEYS.json")]
    pub keys: Option<PathBuf>,
    /// How long an inspection commit may wait for its draw before it is an
    /// alarm (a warning until then).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub draw_grace_seconds: i64,
}

/// What the auditor keeps between runs.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct AuditState {
    /// The last checkpoint verified, as signed.
    checkpoint: Option<String>,
    /// For each (tender, version, bidder, inputs) seen: each distinct
    /// answer's digest and the first leaf that gave it.
    answers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Inspection commits and draws seen (`audit_draws`).
    #[serde(default)]
    supervision: super::audit_draws::DrawState,
}

struct Alarm(String);

fn read_state(dir: &Path) -> Result<(AuditState, Vec<Hash>), Exit> {
    let state_path = dir.join("state.json");
    let state = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Exit::data(format!("{}: corrupt auditor state: {e}", state_path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AuditState::default(),
        Err(e) => return Err(Exit::reading(&state_path, &e)),
    };
    let hashes_path = dir.join("hashes");
    let bytes = match std::fs::read(&hashes_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Exit::reading(&hashes_path, &e)),
    };
    if bytes.len() % tree::HASH_SIZE != 0 {
        return Err(Exit::data(format!("{}: corrupt: not a whole number of hashes", hashes_path.display())));
    }
    Ok((state, bytes.chunks(tree::HASH_SIZE).map(|c| tree::hash_from_bytes(c).expect("32 bytes")).collect()))
}

fn write_state(dir: &Path, state: &AuditState, hashes: &[Hash]) -> Result<(), Exit> {
    let write = |name: &str, bytes: &[u8]| {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, dir.join(name)))
            .map_err(|e| Exit::io(format!("{}: cannot write: {}", dir.join(name).display(), super::exit::io_reason(&e))))
    };
    write("hashes", &hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>())?;
    write("state.json", serde_json::to_string_pretty(state).expect("state serialises").as_bytes())
}

/// The keys to trust: --keys, else those kept in DIR, else the server's (kept).
async fn audit_keys(args: &AuditArgs, ch: &Ch) -> Result<Vec<PublicKeyInfo>, Exit> {
    let status = |e: tonic::Status| Exit::from_status(&args.connect.server, &e);
    if let Some(path) = &args.keys {
        return keys_file(path);
    }
    let kept = args.state.join("keys.json");
    if kept.exists() {
        return keys_file(&kept);
    }
    let listed =
        pb::key_service_client::KeyServiceClient::new(ch.clone()).list_keys(pb::ListKeysRequest {}).await.map_err(status)?.into_inner();
    std::fs::write(&kept, serde_json::to_string_pretty(&listed).expect("keys serialise"))
        .map_err(|e| Exit::io(format!("{}: cannot write: {}", kept.display(), super::exit::io_reason(&e))))?;
    keys_of(listed, &kept)
}

/// The question a statement answers, and its answer with issuedAt removed.
fn question_and_answer(env: &pb::Envelope) -> Option<(String, String, String)> {
    let mut v: serde_json::Value = serde_json::from_slice(&env.payload).ok()?;
    let strip = |v: &mut serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("issuedAt");
        }
    };
    strip(&mut v);
    let (a, extra) = match v.get_mut("assessment") {
        Some(inner) => {
            strip(inner);
            let inner = inner.clone();
            let extra = format!("deposit {} {}", v.get("offeredFen")?, v.get("form")?);
            (inner, extra)
        }
        None => (v.clone(), "assessment".to_owned()),
    };
    let tender = a.get("tenderId")?.as_str()?.to_owned();
    let members: Vec<&str> = a.get("members")?.as_array()?.iter().filter_map(|m| m.get("creditCode")?.as_str()).collect();
    let question = format!(
        "{tender} v{} bidder {} data v{} policy {} price {} {extra}",
        a.get("tenderVersion")?,
        members.join("+"),
        a.get("dataVersion")?,
        a.get("policyDigest")?.as_str()?,
        a.get("contractPriceFen").unwrap_or(&serde_json::Value::Null),
    );
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, serde_json::to_string(&v).ok()?.as_bytes()));
    Some((tender, question, digest))
}

/// Follows the log from the last checkpoint it verified to the newest.
pub(super) async fn audit(args: &AuditArgs) -> Result<(), Exit> {
    let status = |e: tonic::Status| Exit::from_status(&args.connect.server, &e);
    let ch = connect(&args.connect).await?;
    std::fs::create_dir_all(&args.state).map_err(|e| Exit::creating(&args.state, &e))?;
    let keys = audit_keys(args, &ch).await?;
    let (mut state, mut hashes) = read_state(&args.state)?;
    let mut log = pb::log_service_client::LogServiceClient::new(ch);
    let newest = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.map_err(status)?.into_inner();
    let new = verified_checkpoint(&newest.note, &keys, "the server's newest checkpoint")?;
    let old = match &state.checkpoint {
        Some(note) => Some(verified_checkpoint(note, &keys, "the checkpoint kept in the state directory")?),
        None => None,
    };
    let from = old.as_ref().map_or(0, |c| c.size);
    if let Some(old) = &old {
        fork_check(&mut log, old, &new, state.checkpoint.as_deref().unwrap_or_default(), &newest.note).await?;
        if tree::stored_hash_count(old.size) != hashes.len() as u64 {
            return Err(Exit::data(format!("{}: the kept hashes do not match the kept checkpoint", args.state.display())));
        }
    }
    let mut alarms = Vec::new();
    let mut per_tender: BTreeMap<String, u64> = BTreeMap::new();
    let mut leaves = Vec::new();
    let mut at = from;
    while at < new.size {
        let got = log.get_entries(pb::GetEntriesRequest { start: at, end: new.size }).await.map_err(status)?.into_inner();
        if got.entries.is_empty() {
            return Err(Exit::verdict(format!("ALARM: the server sent no entries from {at} though its checkpoint has {}", new.size)));
        }
        for entry in got.entries {
            leaves.push((at, entry.to_vec()));
            at += 1;
        }
    }
    for (index, leaf) in &leaves {
        let n = *index;
        let mut known = Known::default();
        for i in tree::append_reads(n, &[tree::leaf_hash(leaf)]) {
            known.0.insert(i, hashes[i as usize]);
        }
        for (i, h) in tree::append(n, &[tree::leaf_hash(leaf)], known).map_err(|e| Exit::software(e.to_string()))? {
            debug_assert_eq!(i as usize, hashes.len());
            hashes.push(h);
        }
        check_entry(n, leaf, &keys, &mut state, &mut per_tender, &mut alarms);
    }
    let known = Known(tree::root_reads(new.size).into_iter().filter_map(|i| Some((i, *hashes.get(i as usize)?))).collect());
    let root = tree::root(new.size, &known).map_err(|e| Exit::software(e.to_string()))?;
    if root != new.root {
        let tampered = find_tampered(&mut log, &leaves, &new).await?;
        return Err(Exit::verdict(format!(
            "ALARM: the entries served do not hash to the checkpoint's root (size {}): tampered entr{} {}",
            new.size,
            if tampered.len() == 1 { "y" } else { "ies" },
            tampered.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut log = log;
    let found = super::audit_draws::check(&mut state.supervision, &hashes, &mut log, &keys, args.draw_grace_seconds).await?;
    for w in &found.warnings {
        outln!("WARNING: {w}");
    }
    alarms.extend(found.alarms.into_iter().map(Alarm));
    for (tender, n) in &per_tender {
        outln!("tender {tender}: {n} new statement(s)");
    }
    outln!("log verified from {from} to {} leaves ({} new), checkpoint signed by the log key", new.size, new.size - from);
    state.checkpoint = Some(newest.note);
    write_state(&args.state, &state, &hashes)?;
    if alarms.is_empty() {
        return Ok(());
    }
    for Alarm(a) in &alarms {
        errln!("ALARM: {a}");
    }
    Err(Exit::verdict(format!("{} alarm(s)", alarms.len())))
}

/// A fork: the same size with two roots, or a newer tree that does not extend the older.
async fn fork_check(
    log: &mut pb::log_service_client::LogServiceClient<Ch>,
    old: &VerifiedCheckpoint,
    new: &VerifiedCheckpoint,
    old_note: &str,
    new_note: &str,
) -> Result<(), Exit> {
    let fork = |why: String| {
        Exit::verdict(format!("ALARM: FORKED LOG: {why}\n--- checkpoint kept ---\n{old_note}--- checkpoint served ---\n{new_note}"))
    };
    if new.size < old.size {
        return Err(fork(format!("the log shrank from {} to {} leaves", old.size, new.size)));
    }
    if new.size == old.size {
        return if new.root == old.root { Ok(()) } else { Err(fork(format!("two checkpoints of size {} with different roots", new.size))) };
    }
    if old.size == 0 {
        return Ok(());
    }
    let p = log
        .get_consistency_proof(pb::GetConsistencyProofRequest { old_size: old.size, new_size: new.size })
        .await
        .map_err(|e| Exit::from_status("the server", &e))?
        .into_inner();
    let hashes: Vec<Hash> = p.hashes.iter().filter_map(|h| tree::hash_from_bytes(h)).collect();
    tree::check_consistency(&hashes, old.size, old.root, new.size, new.root)
        .map_err(|e| fork(format!("the checkpoint of size {} is not consistent with the one of size {}: {e}", new.size, old.size)))
}

/// Verifies one entry's signatures and records its answer; a second,
/// different answer to one question is an alarm.
fn check_entry(
    index: u64,
    leaf: &[u8],
    keys: &[PublicKeyInfo],
    state: &mut AuditState,
    per_tender: &mut BTreeMap<String, u64>,
    alarms: &mut Vec<Alarm>,
) {
    let env = match crate::log::envelope_of_leaf(leaf) {
        Ok(e) => e,
        Err(e) => return alarms.push(Alarm(format!("leaf {index}: {e}"))),
    };
    let envelope = crate::service::envelope_from_proto(&env);
    let results = verify_each(&envelope, keys, None);
    if results.is_empty() || results.iter().any(|(_, r)| r.is_err()) {
        let why: Vec<String> = results.iter().filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string)).collect();
        alarms.push(Alarm(format!(
            "leaf {index}: a signature does not verify: {}",
            if why.is_empty() { "unsigned".into() } else { why.join("; ") }
        )));
    }
    if let Some(read) = super::audit_draws::statement(index, leaf, &env, &mut state.supervision) {
        if let Err(why) = read {
            alarms.push(Alarm(format!("leaf {index}: {why}")));
        }
        return;
    }
    let Some((tender, question, digest)) = question_and_answer(&env) else {
        return alarms.push(Alarm(format!("leaf {index}: the statement does not parse")));
    };
    *per_tender.entry(tender).or_default() += 1;
    let answers = state.answers.entry(question.clone()).or_default();
    answers.entry(digest).or_insert(index);
    if answers.len() > 1 && answers.values().any(|first| *first == index) {
        let leaves: Vec<String> = answers.values().map(u64::to_string).collect();
        alarms.push(Alarm(format!("{} distinct answers to one question ({question}): leaves {}", answers.len(), leaves.join(", "))));
    }
}

/// The leaves whose inclusion proof against the checkpoint fails.
async fn find_tampered(
    log: &mut pb::log_service_client::LogServiceClient<Ch>,
    leaves: &[(u64, Vec<u8>)],
    new: &VerifiedCheckpoint,
) -> Result<Vec<u64>, Exit> {
    let mut bad = Vec::new();
    for (index, leaf) in leaves {
        let request =
            pb::GetInclusionProofRequest { leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(*index)), tree_size: new.size };
        let p = log.get_inclusion_proof(request).await.map_err(|e| Exit::from_status("the server", &e))?.into_inner();
        let hashes: Vec<Hash> = p.hashes.iter().filter_map(|h| tree::hash_from_bytes(h)).collect();
        if tree::check_inclusion(&hashes, *index, new.size, new.root, tree::leaf_hash(leaf)).is_err() {
            bad.push(*index);
        }
    }
    Ok(bad)
}

#[derive(Debug, Args)]
pub struct RecomputeArgs {
    /// The statement's DSSE envelope (JSON), as `assess --json` or the log gives it.
    pub envelope: PathBuf,
    /// The credit store the statement was computed from; it must exist (it
    /// is opened read-only, never created or migrated).
    #[arg(long, env = "CREDIT_TENDER_DB", default_value = super::open::DEFAULT_DB, value_parser = super::open::store_url)]
    pub db: String,
}

/// Recomputes a statement and shows it equals the signed one but for issuedAt.
pub(super) async fn recompute(args: &RecomputeArgs) -> Result<(), Exit> {
    // As `assess --json` writes it (with its logIndex), or as the log gives it.
    let (env, _) = super::verify::read_envelope(&args.envelope)?;
    let store = super::open::open_store(&args.db, crate::store::OpenMode::Existing { read_only: true }).await?;
    let r = crate::service::recompute::recompute(&store, &env).await.map_err(|e| Exit::data(format!("cannot recompute: {e}")))?;
    let differences = r.differences();
    if differences.is_empty() {
        outln!("IDENTICAL: the recomputed statement equals the signed one in every field but issuedAt");
        return Ok(());
    }
    for d in &differences {
        errln!("DIFFERS {d}");
    }
    Err(Exit::verdict(format!("{} field(s) differ from the signed statement", differences.len())))
}
