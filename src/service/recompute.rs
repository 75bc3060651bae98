//! Recomputing a logged statement from what it names — tender version, data
//! version, policy digest, bidder — to show that any past answer can be
//! explained: the same inputs give the same statement in every field but
//! the time it was issued.

use super::assessment::deposit_check;
use super::statement::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE, statement};
use crate::domain::tender::{Bidder, DepositForm};
use crate::domain::{CreditCode, Fen, TenderId};
use crate::policy::{MemberInput, Policy, evaluate};
use crate::proto::v1 as pb;
use crate::store::Store;
use chrono::{DateTime, Utc};

/// A signed statement beside its recomputation, both as JSON values.
#[derive(Debug)]
pub struct Recomputed {
    pub signed: serde_json::Value,
    pub recomputed: serde_json::Value,
}

impl Recomputed {
    /// Fields that differ (JSON pointers), issuedAt aside.
    pub fn differences(&self) -> Vec<String> {
        let mut out = Vec::new();
        diff("", &self.signed, &self.recomputed, &mut out);
        out
    }
}

fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                if k == "issuedAt" {
                    continue;
                }
                let null = serde_json::Value::Null;
                diff(&format!("{at}/{k}"), x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), out);
            }
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{at}: signed {a}, recomputed {b}")),
        _ => {}
    }
}

fn issued_at(s: &pb::AssessmentStatement) -> Result<DateTime<Utc>, String> {
    let t = s.issued_at.as_ref().ok_or("the statement has no issuedAt")?;
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).ok_or_else(|| "issuedAt is out of range".into())
}

/// Recomputes the assessment `signed` names from the store.
async fn assessment(store: &Store, signed: &pb::AssessmentStatement) -> Result<pb::AssessmentStatement, String> {
    let id = TenderId::parse(&signed.tender_id)?;
    let tender = store
        .tender(&id, Some(signed.tender_version))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("tender {id} version {} is not in this store", signed.tender_version))?;
    let stored = store
        .policy_source(&signed.policy_digest)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("policy version {} is not in this store", signed.policy_digest))?;
    let policy = Policy::from_toml(&stored.source)?;
    if policy.digest != signed.policy_digest {
        return Err(format!("the stored policy {} hashes to {}, not {}", stored.policy_id, policy.digest, signed.policy_digest));
    }
    let codes = signed
        .members
        .iter()
        .map(|m| CreditCode::try_from(m.credit_code.clone()).map_err(|e| format!("member {}: {e}", m.credit_code)))
        .collect::<Result<Vec<_>, _>>()?;
    let bidder = Bidder::new(codes)?;
    let mut profiles = Vec::new();
    for code in bidder.codes() {
        profiles.push(store.profile(code, Some(signed.data_version)).await.map_err(|e| e.to_string())?);
    }
    let members: Vec<MemberInput<'_>> = bidder.codes().iter().zip(&profiles).map(|(code, profile)| MemberInput { code, profile }).collect();
    let a = evaluate(&tender, &policy, &members, signed.contract_price_fen.map(Fen));
    let mut s = statement(&tender, &policy, &bidder, &a, signed.data_version, issued_at(signed)?);
    if signed.served_from_cache_while_store_unreachable {
        // Issued from cached data while the store was unreachable: the
        // warning it carries is about that moment, not about the inputs.
        s.served_from_cache_while_store_unreachable = true;
        s.warnings.extend(signed.warnings.iter().filter(|w| w.starts_with("served from cached data")).cloned());
        s.warning_details.extend(signed.warning_details.iter().filter(|w| w.code == "SERVED_FROM_CACHE").cloned());
    }
    Ok(s)
}

/// Recomputes a logged statement (assessment or deposit check).
pub async fn recompute(store: &Store, envelope: &pb::Envelope) -> Result<Recomputed, String> {
    let value = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| format!("the payload is not JSON: {e}"));
    match envelope.payload_type.as_str() {
        ASSESSMENT_PAYLOAD_TYPE => {
            let signed: pb::AssessmentStatement =
                serde_json::from_slice(&envelope.payload).map_err(|e| format!("the payload is not an assessment: {e}"))?;
            let again = assessment(store, &signed).await?;
            Ok(Recomputed { signed: value(&envelope.payload)?, recomputed: serde_json::to_value(&again).map_err(|e| e.to_string())? })
        }
        DEPOSIT_CHECK_PAYLOAD_TYPE => {
            let signed: pb::DepositCheck =
                serde_json::from_slice(&envelope.payload).map_err(|e| format!("the payload is not a deposit check: {e}"))?;
            let inner = signed.assessment.as_ref().ok_or("the deposit check holds no assessment")?;
            let again = assessment(store, inner).await?;
            let form = DepositForm::parse(&signed.form).ok_or_else(|| format!("unknown deposit form '{}'", signed.form))?;
            let check = deposit_check(again, Fen(signed.offered_fen), form, &inner.policy_id);
            Ok(Recomputed { signed: value(&envelope.payload)?, recomputed: serde_json::to_value(&check).map_err(|e| e.to_string())? })
        }
        other => Err(format!("payload type '{other}' is not one credit-tender issues")),
    }
}
