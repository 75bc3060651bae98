//! Test fixtures shared by `evaluate`'s unit tests and the property tests:
//! the national template, a tender, and a profile from JSON Lines objects.

use super::Policy;
use crate::domain::input::parse_record;
use crate::domain::profile::{Profile, StoredRecord};
use crate::domain::records::Record;
use crate::domain::{CreditCode, CreditDomain, EvaluationMethod, Fen, RegionCode, Tender, TenderId, TenderTerms};

/// The one firm the fixtures' profiles belong to.
pub(crate) const CODE: &str = "91440300192317458F";

pub(crate) fn policy() -> Policy {
    Policy::from_toml(include_str!("../../policies/national-template.toml")).unwrap()
}

/// A comprehensive-scoring tender in `region`, deadline 2026-12-15 10:00 Shanghai.
pub(crate) fn tender(region: &str) -> Tender {
    Tender {
        tender_id: TenderId::parse("T").unwrap(),
        version: 1,
        terms: TenderTerms {
            title: "t".into(),
            domain: CreditDomain::HighwayConstruction,
            region: RegionCode::parse(region).unwrap(),
            bid_deadline: chrono::DateTime::parse_from_rfc3339("2026-12-15T10:00:00+08:00").unwrap().to_utc(),
            estimated_price: Fen(1_000_000_000),
            nominal_deposit: Fen(10_000_001),
            evaluation_method: EvaluationMethod::ComprehensiveScoring,
        },
        policy_id: "national-template".into(),
        policy_digest: String::new(),
        registered_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// A profile of `code` holding `lines`, as [`profile`] does for [`CODE`].
pub(crate) fn profile_of(code: &CreditCode, lines: &[serde_json::Value]) -> Profile {
    let mut p = profile_with(code.as_str(), lines);
    p.credit_code = code.clone();
    p
}

/// A profile of [`CODE`] holding `lines` (JSON Lines objects; `credit_code`
/// and `document_ref` filled in), recorded one version each in order.
pub(crate) fn profile(lines: &[serde_json::Value]) -> Profile {
    profile_with(CODE, lines)
}

fn profile_with(code: &str, lines: &[serde_json::Value]) -> Profile {
    let rules = crate::rules::Rules::shipped();
    let (mut records, mut events) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let mut line = line.clone();
        line["credit_code"] = code.into();
        line["document_ref"] = "r".into();
        let record = parse_record(line.as_object().unwrap(), rules.input()).unwrap_or_else(|e| panic!("{line}: {e:?}")).record;
        let stored = StoredRecord { record, recorded_version: i as u64 + 1, digest: String::new() };
        if matches!(stored.record, Record::Event(_)) { events.push(stored) } else { records.push(stored) }
    }
    Profile { credit_code: CreditCode::parse_strict(code).unwrap(), data_version: lines.len() as u64, records, events, history: vec![] }
}

/// A profile of [`CODE`] as the store builds it from a history of writes:
/// each batch is one data version (1, 2, …); a record whose id is already
/// stored with other content is a new version of it (`document_ref` kept as
/// given, default "r"). Built by the store's own grouping
/// ([`crate::store::build_profile`]), so current versions, superseded ones
/// and events are what a read at the last version gives.
pub(crate) fn history(batches: &[Vec<serde_json::Value>]) -> Profile {
    let rules = crate::rules::Rules::shipped();
    let mut rows = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        for line in batch {
            let mut line = line.clone();
            line["credit_code"] = CODE.into();
            if line.get("document_ref").is_none() {
                line["document_ref"] = "r".into();
            }
            let record = parse_record(line.as_object().unwrap(), rules.input()).unwrap_or_else(|e| panic!("{line}: {e:?}")).record;
            let body = record.canonical_json();
            let digest = crate::domain::records::digest_of(&body);
            rows.push(crate::store::RecordRow { record_id: record.id().to_string(), version: i as i64 + 1, digest, body });
        }
    }
    // The store reads rows in version order, then id.
    rows.sort_by(|a, b| (a.version, &a.record_id).cmp(&(b.version, &b.record_id)));
    let code = CreditCode::parse_strict(CODE).unwrap();
    crate::store::build_profile(&code, batches.len() as u64, rows).unwrap()
}
