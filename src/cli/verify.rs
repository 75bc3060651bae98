//! `credit-tender verify`: check a DSSE envelope offline against published keys.

use super::{render, Exit};
use crate::proto::v1 as pb;
use crate::service::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE};
use crate::signing::{verify, KeyStatus, PublicKeyInfo};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The DSSE envelope (JSON: payloadType, payload, signatures[].keyid/sig).
    pub envelope: PathBuf,
    /// The public keys: the ListKeys answer as JSON (`credit-tender keys`).
    #[arg(long, value_name = "KEYS.json")]
    pub keys: PathBuf,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf, what: &str) -> Result<T, Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| Exit::usage(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Exit::usage(format!("{}:{}: not {what}: {e}", path.display(), e.line())))
}

pub fn run(args: &VerifyArgs) -> Result<(), Exit> {
    let env: pb::Envelope = read_json(&args.envelope, "a DSSE envelope")?;
    let keys: pb::ListKeysResponse = read_json(&args.keys, "a ListKeys answer")?;
    let keys: Vec<PublicKeyInfo> = keys
        .keys
        .into_iter()
        .map(|k| {
            let status = KeyStatus::parse(&k.status).ok_or_else(|| {
                Exit::usage(format!(
                    "{}: key {}: unknown status '{}', expected one of: {}",
                    args.keys.display(),
                    k.keyid,
                    k.status,
                    KeyStatus::expected()
                ))
            })?;
            Ok(PublicKeyInfo { keyid: k.keyid, public_key: k.public_key.to_vec(), status, valid_from: None, valid_to: None })
        })
        .collect::<Result<_, Exit>>()?;
    let envelope = crate::service::envelope_from_proto(&env);
    let keyid = verify(&envelope, &keys).map_err(|e| Exit::failed(format!("INVALID: {e}")))?;
    let text = match env.payload_type.as_str() {
        ASSESSMENT_PAYLOAD_TYPE => serde_json::from_slice::<pb::AssessmentStatement>(&env.payload).map(|s| render::assessment(&s)),
        DEPOSIT_CHECK_PAYLOAD_TYPE => serde_json::from_slice::<pb::DepositCheck>(&env.payload).map(|c| render::deposit_check(&c)),
        other => return Err(Exit::failed(format!("signature valid (key {keyid}), but payload type '{other}' is not one credit-tender issues"))),
    }
    .map_err(|e| Exit::failed(format!("signature valid (key {keyid}), but the payload does not parse: {e}")))?;
    println!("Signature   valid, key {keyid}");
    print!("{text}");
    Ok(())
}
