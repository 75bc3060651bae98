//! `credit-tender verify`: check a DSSE envelope offline against published keys.

use super::exit::Exit;
use super::out::{errln, outln, outp};
use super::render;
use crate::proto::v1 as pb;
use crate::service::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE};
use crate::signing::{KeyRole, KeyStatus, PublicKeyInfo, verify_each};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The DSSE envelope (JSON: payloadType, payload, signatures[].keyid/sig).
    pub envelope: PathBuf,
    /// The public keys: the ListKeys answer as JSON (`credit-tender keys`).
    #[arg(long, value_name = "KEYS.json")]
    pub keys: PathBuf,
    /// How many distinct keys must have signed validly (default: every
    /// signature on the envelope must verify). A key counts once, however
    /// often its signature is listed.
    #[arg(long, value_name = "N")]
    pub threshold: Option<usize>,
    /// A signed checkpoint of the transparency log (`credit-tender proof`
    /// writes one); with --proof, also check the statement is in the log.
    #[arg(long, value_name = "CP", requires = "proof")]
    pub checkpoint: Option<PathBuf>,
    /// The inclusion proof (GetInclusionProof's answer as JSON).
    #[arg(long, value_name = "PROOF.json", requires = "checkpoint")]
    pub proof: Option<PathBuf>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T, Exit> {
    let text = crate::rules::read_text(path).map_err(|e| Exit::reading(path, &e))?;
    serde_json::from_str(&text).map_err(|e| Exit::data(format!("{}:{}: not {what}: {e}", path.display(), e.line())))
}

pub(crate) fn keys_file(path: &std::path::Path) -> Result<Vec<PublicKeyInfo>, Exit> {
    keys_of(read_json(path, "a ListKeys answer")?, path)
}

/// The listed keys, refusing an unknown status or role, or an algorithm other than Ed25519.
pub(crate) fn keys_of(listed: pb::ListKeysResponse, source: &std::path::Path) -> Result<Vec<PublicKeyInfo>, Exit> {
    let at = |t: Option<pbjson_types::Timestamp>| t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    listed
        .keys
        .into_iter()
        .map(|k| {
            let bad = |what: String| Exit::data(format!("{}: key {}: {what}", source.display(), k.keyid));
            let status = KeyStatus::parse(&k.status)
                .ok_or_else(|| bad(format!("unknown status '{}', expected one of: {}", k.status, KeyStatus::expected())))?;
            if !k.algorithm.eq_ignore_ascii_case("ed25519") {
                return Err(bad(format!("algorithm '{}' is not ed25519, the only one credit-tender signs with", k.algorithm)));
            }
            let role = if k.role.is_empty() { Some(KeyRole::Statement) } else { KeyRole::parse(&k.role) };
            let role = role.ok_or_else(|| bad(format!("unknown role '{}', expected one of: {}", k.role, KeyRole::expected())))?;
            Ok(PublicKeyInfo {
                role,
                keyid: k.keyid.clone(),
                public_key: k.public_key.to_vec(),
                status,
                valid_from: at(k.valid_from),
                valid_to: at(k.valid_to),
            })
        })
        .collect()
}

/// When the statement says it was issued (an assessment's, or the assessment inside a deposit check).
fn issued_at(payload: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let at = v.get("issuedAt").or_else(|| v.pointer("/assessment/issuedAt"))?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(at).ok().map(|t| t.to_utc())
}

/// A statement's file as `assess --json`, the log or a platform gives it:
/// a DSSE envelope (`payloadType`, `payload`, `signatures`), and the
/// `logIndex` that `assess --json` adds beside them; the index when given.
///
/// Errors name the file (and the line, for JSON that does not parse) and
/// say what a statement's file holds.
pub(crate) fn read_envelope(path: &std::path::Path) -> Result<(pb::Envelope, Option<serde_json::Value>), Exit> {
    let mut json: serde_json::Value = read_json(path, "a DSSE envelope")?;
    // A WatchTender event (`change.assessment`) or an Assess answer as the
    // API gives it (`envelope` and `logIndex` side by side) holds the same
    // envelope one or two levels down.
    if let Some(answer) = json.pointer_mut("/change/assessment").map(serde_json::Value::take) {
        json = answer;
    }
    if let Some(o) = json.as_object_mut()
        && let Some(envelope) = o.remove("envelope")
    {
        let log_index = o.remove("logIndex");
        json = envelope;
        if let (Some(i), Some(e)) = (log_index, json.as_object_mut()) {
            e.insert("logIndex".into(), i);
        }
    }
    let log_index = json.as_object_mut().and_then(|o| o.remove("logIndex"));
    let env = serde_json::from_value(json).map_err(|e| {
        Exit::data(format!(
            "{}: not a DSSE envelope ({e}); a statement's file holds payloadType, payload and signatures, and logIndex as `assess --json` writes it, or is an Assess answer or a WatchTender event that holds one",
            path.display()
        ))
    })?;
    Ok((env, log_index))
}

pub(super) fn run(args: &VerifyArgs) -> Result<(), Exit> {
    let (env, log_index) = read_envelope(&args.envelope)?;
    let keys = keys_file(&args.keys)?;
    let envelope = crate::service::envelope_from_proto(&env);
    let results = verify_each(&envelope, &keys, issued_at(&env.payload));
    if results.is_empty() {
        return Err(Exit::verdict("INVALID: the envelope has no signatures"));
    }
    for (keyid, r) in &results {
        match r {
            Ok(()) => outln!("Signature   valid, key {keyid}"),
            Err(e) => errln!("Signature   INVALID: {e}"),
        }
    }
    // A threshold counts keys, never signatures: one key's signature listed
    // twice is one key. A key id is the SHA-256 of the key, and a signature
    // verifies only under the key its id names, so distinct ids that verify
    // are distinct keys.
    let mut valid: Vec<&str> = results.iter().filter(|(_, r)| r.is_ok()).map(|(k, _)| k.as_str()).collect();
    let valid_signatures = valid.len();
    valid.sort_unstable();
    valid.dedup();
    match args.threshold {
        // Without a threshold, every signature on the envelope must verify.
        None if valid_signatures < results.len() => {
            return Err(Exit::verdict(format!(
                "INVALID: {valid_signatures} of {} signature(s) verify; {} required (every one; --threshold N to accept N distinct keys)",
                results.len(),
                results.len()
            )));
        }
        Some(needed) if valid.len() < needed.max(1) => {
            let repeated = if valid_signatures > valid.len() { ", however often it signed" } else { "" };
            return Err(Exit::verdict(format!(
                "INVALID: {} distinct key(s) verify; --threshold {needed} requires {needed} (a key counts once{repeated})",
                valid.len()
            )));
        }
        _ => {}
    }
    let keyid = valid[0];
    // The SHA-256 of the signed statement (the payload), as the committee's printed record lists it.
    outln!("Statement   sha256 {}", hex::encode(ring::digest::digest(&ring::digest::SHA256, &env.payload)));
    if let Some(index) = log_index {
        let index = index.as_str().map(str::to_owned).unwrap_or_else(|| index.to_string());
        outln!("Log index   {index} (as the server said; --checkpoint and --proof from `proof --index {index}` check it)");
    }
    if let (Some(cp), Some(proof)) = (&args.checkpoint, &args.proof) {
        let (index, size) = check_logged(&env, &keys, cp, proof)?;
        outln!("Logged      leaf {index} of the tree of {size} (checkpoint {})", cp.display());
    }
    let text = match env.payload_type.as_str() {
        ASSESSMENT_PAYLOAD_TYPE => serde_json::from_slice::<pb::AssessmentStatement>(&env.payload).map(|s| render::assessment(&s)),
        DEPOSIT_CHECK_PAYLOAD_TYPE => serde_json::from_slice::<pb::DepositCheck>(&env.payload).map(|c| render::deposit_check(&c)),
        other => {
            return Err(Exit::data(format!("signature valid (key {keyid}), but payload type '{other}' is not one credit-tender issues")));
        }
    }
    .map_err(|e| Exit::data(format!("signature valid (key {keyid}), but the payload does not parse: {e}")))?;
    outp!("{text}");
    Ok(())
}

/// The log keys that may have signed a checkpoint of `origin`.
pub(crate) fn log_keys(keys: &[PublicKeyInfo], origin: &str) -> Vec<crate::tlog::note::NoteKey> {
    keys.iter()
        .filter(|k| k.role == KeyRole::Log && k.status != KeyStatus::Revoked)
        .map(|k| crate::tlog::note::NoteKey { name: origin.to_owned(), public_key: k.public_key.clone() })
        .collect()
}

/// Verifies a signed checkpoint against the listed log keys.
pub(crate) fn verified_checkpoint(note: &str, keys: &[PublicKeyInfo], what: &str) -> Result<crate::log::VerifiedCheckpoint, Exit> {
    let origin =
        crate::log::checkpoint_origin(note).ok_or_else(|| Exit::data(format!("{what}: not a signed checkpoint (no origin line)")))?;
    // A note that is not a signed checkpoint at all is bad input (65), not
    // a checkpoint whose signature says no (1).
    crate::log::checkpoint_form(note).map_err(|why| Exit::data(format!("{what}: not a signed checkpoint: {why}")))?;
    let candidates = log_keys(keys, origin);
    if candidates.is_empty() {
        return Err(Exit::data(format!("{what}: no listed key has role \"log\" (or every one is revoked): cannot check the checkpoint")));
    }
    let mut last = String::new();
    for key in &candidates {
        match crate::log::verify_checkpoint(note, key) {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
    }
    Err(Exit::verdict(format!("{what}: INVALID checkpoint: {last}")))
}

/// Checks that the envelope is the leaf the proof places in the checkpoint's tree.
fn check_logged(env: &pb::Envelope, keys: &[PublicKeyInfo], cp: &std::path::Path, proof: &std::path::Path) -> Result<(u64, u64), Exit> {
    let note = crate::rules::read_text(cp).map_err(|e| Exit::reading(cp, &e))?;
    let checkpoint = verified_checkpoint(&note, keys, &cp.display().to_string())?;
    let p: pb::InclusionProof = read_json(proof, "an inclusion proof (GetInclusionProof's answer)")?;
    if p.tree_size != checkpoint.size {
        return Err(Exit::data(format!(
            "{}: the proof is for a tree of {} leaves, the checkpoint for {}: a proof for another tree",
            proof.display(),
            p.tree_size,
            checkpoint.size
        )));
    }
    let hashes = p
        .hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            crate::tlog::tree::hash_from_bytes(h).ok_or_else(|| Exit::data(format!("{}: hashes[{i}] is not 32 bytes", proof.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if p.leaf_index >= p.tree_size {
        return Err(Exit::data(format!(
            "{}: leaf_index {} is not in a tree of {} leaves: not an inclusion proof",
            proof.display(),
            p.leaf_index,
            p.tree_size
        )));
    }
    let expected = crate::tlog::tree::inclusion_proof_len(p.leaf_index, p.tree_size);
    if hashes.len() != expected {
        return Err(Exit::data(format!(
            "{}: has {} hashes; an inclusion proof of leaf {} in a tree of {} has {expected} (RFC 9162 §2.1.3)",
            proof.display(),
            hashes.len(),
            p.leaf_index,
            p.tree_size
        )));
    }
    let leaf = crate::tlog::tree::leaf_hash(&crate::log::leaf(env));
    crate::tlog::tree::check_inclusion(&hashes, p.leaf_index, p.tree_size, checkpoint.root, leaf)
        .map_err(|e| Exit::verdict(format!("NOT LOGGED: {e}")))?;
    Ok((p.leaf_index, p.tree_size))
}
