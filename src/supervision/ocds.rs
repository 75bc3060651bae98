//! One tender's credit-related facts as an OCDS 1.1 release package (open
//! data, 公开), built from the signed assessment statements the committee's
//! table shows. Pure: the same tender and statements give the same bytes
//! (no clock is read; the package's date is the newest statement's).
//!
//! - Parties are identified by their unified social credit codes, scheme
//!   `CN-USCI` (org-id.guide's "Unified Social Credit Identifier"); a party's
//!   id is `CN-USCI-` and the code.
//! - Each bid is a `bids.details` entry of the bids extension (v1.1.5):
//!   `status` `valid` when the bidder is eligible and qualified, else
//!   `disqualified`, with its tenderers.
//! - What OCDS has no field for is added under names of our own (OCDS
//!   allows additional fields; the OCDS tools list them): `creditAssessment`
//!   on each bid (grade, points, reasons, the statement that says so) and
//!   `bidDeposit` on each bid (投标保证金: nominal, owed, the basis, and
//!   whether a credit guarantee may replace it). The community guarantees
//!   extension describes contract guarantees, not bid deposits, so it is
//!   not used.

use crate::domain::Tender;
use crate::proto::v1 as pb;
use serde_json::{Value, json};

/// The bids extension, at the tag whose files tests/ocds holds.
pub const BID_EXTENSION: &str = "https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/v1.1.5/extension.json";

/// The identifier scheme of a unified social credit code on org-id.guide.
pub const SCHEME: &str = "CN-USCI";

/// The OCID prefix: `ocds-` and six characters OCP assigns to a publisher.
/// This server has none of its own; `xxxxxx` says so plainly (a publisher
/// replaces it with its registered prefix when it republishes).
pub const OCID_PREFIX: &str = "ocds-xxxxxx-";

/// One bid of the tender with its newest assessment.
pub struct AssessedBid<'a> {
    /// 1-based order of registration within the tender; the bid's OCDS id
    /// is `TENDER-SEQUENCE`.
    pub sequence: u32,
    /// When the bid was registered, as the bid's `date`.
    pub registered_at: Option<&'a pbjson_types::Timestamp>,
    /// The newest signed assessment of the bidder for the tender.
    pub assessment: &'a pb::AssessResponse,
}

/// The largest amount, in fen, the export writes: a JSON number with at
/// most 15 significant digits reads back as exactly the decimal written
/// (an IEEE double holds 15), so every amount up to 9,999,999,999,999.99
/// yuan is exact in yuan with two decimals. Contract prices are far below;
/// a tender beyond it is not exported rather than rounded.
pub const MAX_FEN: i64 = 999_999_999_999_999;

/// An amount beyond [`MAX_FEN`], as the export refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {fen} fen, beyond the {MAX_FEN} fen a JSON number carries exactly in yuan")]
pub struct TooLarge {
    /// Which amount, e.g. the estimated price or a bid's nominal deposit.
    pub what: &'static str,
    /// The amount in fen.
    pub fen: i64,
}

/// Fen as OCDS's Value in yuan: `fen / 100` to the nearest double, which
/// JSON writes as the shortest decimal reading back to it — the two-decimal
/// yuan amount itself, within [`MAX_FEN`].
fn money(what: &'static str, fen: i64) -> Result<Value, TooLarge> {
    if fen.unsigned_abs() > MAX_FEN as u64 {
        return Err(TooLarge { what, fen });
    }
    Ok(json!({ "amount": fen as f64 / 100.0, "currency": "CNY" }))
}

/// The value without what is empty: OCDS omits a field rather than set it
/// to `""`, `[]`, `{}` or null (lib-cove-ocds' `empty_field` check).
fn pruned(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(pruned).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(o) => {
            let o: serde_json::Map<String, Value> = o.into_iter().filter_map(|(k, v)| Some((k, pruned(v)?))).collect();
            (!o.is_empty()).then_some(Value::Object(o))
        }
        v => Some(v),
    }
}

fn rfc3339(t: &pbjson_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn party_id(code: &str) -> String {
    format!("{SCHEME}-{code}")
}

fn bid(tender_id: &str, b: &AssessedBid<'_>, s: &pb::AssessmentStatement) -> Result<Value, TooLarge> {
    let tenderers: Vec<Value> = s.members.iter().map(|m| json!({ "id": party_id(&m.credit_code), "name": m.entity_name })).collect();
    let reasons: Vec<Value> = s
        .reasons
        .iter()
        .map(|r| json!({ "code": r.code, "effect": r.effect, "creditCode": r.credit_code, "message": r.message_zh }))
        .collect();
    let envelope_sha256 =
        b.assessment.envelope.as_ref().map(|e| hex::encode(ring::digest::digest(&ring::digest::SHA256, &e.payload))).unwrap_or_default();
    let mut detail = json!({
        "id": format!("{tender_id}-{}", b.sequence),
        "status": if s.eligible && s.qualified { "valid" } else { "disqualified" },
        "tenderers": tenderers,
        "creditAssessment": {
            "eligible": s.eligible,
            "qualified": s.qualified,
            "appliedGrade": s.applied_grade,
            "memberGrades": s.member_grades.iter().map(|g| json!({ "creditCode": g.credit_code, "grade": g.grade, "source": g.source })).collect::<Vec<_>>(),
            "qualificationPoints": s.qualification_points,
            "evaluationPoints": s.evaluation_points,
            "totalPoints": s.total_points,
            "creditBenefit": s.credit_benefit,
            "reasons": reasons,
            "policyId": s.policy_id,
            "policyDigest": s.policy_digest,
            "dataVersion": s.data_version.to_string(),
            "asOf": s.as_of.as_ref().map(rfc3339),
            "statementPayloadSha256": envelope_sha256,
            "logIndex": b.assessment.log_index.map(|i| i.to_string()),
        },
        "bidDeposit": {
            "nominal": money("a bid's nominal deposit", s.nominal_deposit_fen)?,
            "owed": money("a bid's deposit owed", s.deposit_owed_fen)?,
            "saved": money("a bid's deposit saved", s.nominal_deposit_fen.saturating_sub(s.deposit_owed_fen))?,
            "basis": s.deposit_basis,
            "creditGuaranteeAllowed": s.credit_guarantee_allowed,
        },
    });
    if let Some(t) = b.registered_at {
        detail["date"] = json!(rfc3339(t));
    }
    Ok(detail)
}

/// The release's id: the tender's version and the first 16 hex digits of
/// the SHA-256 of the release's content without its id. A release id must
/// be unique within its ocid: any change (a bid registered or assessed
/// again, the tender amended) is a new id, and the same content is the same
/// id, so a republisher sees one release once.
fn release_id(tender: &Tender, release: &Value) -> String {
    let digest = super::draw::sha256_hex(release.to_string().as_bytes());
    format!("{}-v{}-{}", tender.tender_id.as_str(), tender.version, &digest[..16])
}

/// The release package for `tender` and its assessed bids (by sequence).
pub fn release_package(tender: &Tender, bids: &[AssessedBid<'_>]) -> Result<Value, TooLarge> {
    let id = tender.tender_id.as_str();
    let statements: Vec<(&AssessedBid<'_>, &pb::AssessmentStatement)> =
        bids.iter().filter_map(|b| Some((b, b.assessment.statement.as_ref()?))).collect();
    let date = statements
        .iter()
        .filter_map(|(_, s)| s.issued_at.as_ref())
        .max_by_key(|t| (t.seconds, t.nanos))
        .map_or_else(|| tender.registered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), rfc3339);
    let mut parties: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, s) in &statements {
        for m in &s.members {
            if seen.insert(m.credit_code.clone()) {
                parties.push(json!({
                    "id": party_id(&m.credit_code),
                    "name": m.entity_name,
                    "identifier": { "scheme": SCHEME, "id": m.credit_code, "legalName": m.entity_name },
                    "roles": ["tenderer"],
                }));
            }
        }
    }
    let tenderers: Vec<Value> = parties.iter().map(|p| json!({ "id": p["id"], "name": p["name"] })).collect();
    let terms = &tender.terms;
    let details = statements.iter().map(|(b, s)| bid(id, b, s)).collect::<Result<Vec<_>, _>>()?;
    let award_criteria = format!(
        "评标办法：{}；信用评价依据政策 {}（摘要 {}）",
        terms.evaluation_method.chinese_name(),
        tender.policy_id,
        tender.policy_digest
    );
    let release = json!({
        "ocid": format!("{OCID_PREFIX}{id}"),
        "date": date,
        "tag": ["tender"],
        "initiationType": "tender",
        "language": "zh",
        "parties": parties,
        "tender": {
            "id": id,
            "title": terms.title,
            "value": money("the estimated price", terms.estimated_price.0)?,
            "tenderPeriod": { "endDate": terms.bid_deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) },
            "awardCriteriaDetails": award_criteria,
            "numberOfTenderers": statements.len(),
            "tenderers": tenderers,
            "bidDeposit": { "nominal": money("the nominal deposit", terms.nominal_deposit.0)? },
            "creditPolicy": { "id": tender.policy_id, "digest": tender.policy_digest },
            "regionCode": terms.region.to_string(),
        },
        "bids": { "details": details },
    });
    let mut release = pruned(release).unwrap_or_default();
    release["id"] = json!(release_id(tender, &release));
    Ok(json!({
        "uri": format!("urn:credit-tender:tender:{id}:v{}:ocds", tender.version),
        "version": "1.1",
        "extensions": [BID_EXTENSION],
        "publishedDate": date,
        "publisher": { "name": "credit-tender" },
        "releases": [release],
    }))
}
