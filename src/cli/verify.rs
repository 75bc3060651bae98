//! `credit-tender verify`: check a DSSE envelope offline against published keys.

use super::{render, Exit};
use crate::proto::v1 as pb;
use crate::service::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE};
use crate::signing::{verify_each, KeyStatus, PublicKeyInfo};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The DSSE envelope (JSON: payloadType, payload, signatures[].keyid/sig).
    pub envelope: PathBuf,
    /// The public keys: the ListKeys answer as JSON (`credit-tender keys`).
    #[arg(long, value_name = "KEYS.json")]
    pub keys: PathBuf,
    /// How many signatures must verify (default: every one on the envelope).
    #[arg(long, value_name = "N")]
    pub threshold: Option<usize>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf, what: &str) -> Result<T, Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| Exit::usage(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Exit::usage(format!("{}:{}: not {what}: {e}", path.display(), e.line())))
}

/// The listed keys, refusing an unknown status or an algorithm other than Ed25519.
fn keys(args: &VerifyArgs) -> Result<Vec<PublicKeyInfo>, Exit> {
    let listed: pb::ListKeysResponse = read_json(&args.keys, "a ListKeys answer")?;
    let at = |t: Option<pbjson_types::Timestamp>| t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    listed
        .keys
        .into_iter()
        .map(|k| {
            let bad = |what: String| Exit::usage(format!("{}: key {}: {what}", args.keys.display(), k.keyid));
            let status = KeyStatus::parse(&k.status)
                .ok_or_else(|| bad(format!("unknown status '{}', expected one of: {}", k.status, KeyStatus::expected())))?;
            if !k.algorithm.eq_ignore_ascii_case("ed25519") {
                return Err(bad(format!("algorithm '{}' is not ed25519, the only one credit-tender signs with", k.algorithm)));
            }
            Ok(PublicKeyInfo {
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

pub fn run(args: &VerifyArgs) -> Result<(), Exit> {
    let env: pb::Envelope = read_json(&args.envelope, "a DSSE envelope")?;
    let keys = keys(args)?;
    let envelope = crate::service::envelope_from_proto(&env);
    let results = verify_each(&envelope, &keys, issued_at(&env.payload));
    if results.is_empty() {
        return Err(Exit::failed("INVALID: the envelope has no signatures"));
    }
    let valid: Vec<&str> = results.iter().filter(|(_, r)| r.is_ok()).map(|(k, _)| k.as_str()).collect();
    let needed = args.threshold.unwrap_or(results.len()).max(1);
    for (keyid, r) in &results {
        match r {
            Ok(()) => println!("Signature   valid, key {keyid}"),
            Err(e) => eprintln!("Signature   INVALID: {e}"),
        }
    }
    if valid.len() < needed {
        return Err(Exit::failed(format!(
            "INVALID: {} of {} signature(s) verify; {needed} required{}",
            valid.len(),
            results.len(),
            if args.threshold.is_none() { " (every one; --threshold N to accept fewer)" } else { "" }
        )));
    }
    let keyid = valid[0];
    let text = match env.payload_type.as_str() {
        ASSESSMENT_PAYLOAD_TYPE => serde_json::from_slice::<pb::AssessmentStatement>(&env.payload).map(|s| render::assessment(&s)),
        DEPOSIT_CHECK_PAYLOAD_TYPE => serde_json::from_slice::<pb::DepositCheck>(&env.payload).map(|c| render::deposit_check(&c)),
        other => return Err(Exit::failed(format!("signature valid (key {keyid}), but payload type '{other}' is not one credit-tender issues"))),
    }
    .map_err(|e| Exit::failed(format!("signature valid (key {keyid}), but the payload does not parse: {e}")))?;
    print!("{text}");
    Ok(())
}
