//! Assessments as signed statements: the proto message, its JSON bytes, the envelope.

use super::tenders::timestamp;
use crate::domain::{Bidder, Tender};
use crate::policy::{Assessment, Evidence, MemberGrade, Param, Policy, Warning};
use crate::proto::v1 as pb;
use crate::signing::{Envelope, Keyring};
use chrono::{DateTime, Utc};

pub const ASSESSMENT_PAYLOAD_TYPE: &str = "application/vnd.credit-tender.assessment.v1+json";
pub const DEPOSIT_CHECK_PAYLOAD_TYPE: &str = "application/vnd.credit-tender.deposit-check.v1+json";

/// Builds the statement for an assessment.
pub(crate) fn statement(
    tender: &Tender,
    policy: &Policy,
    bidder: &Bidder,
    a: &Assessment,
    data_version: u64,
    issued_at: DateTime<Utc>,
) -> pb::AssessmentStatement {
    let members = a
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| pb::Member {
            credit_code: m.code.to_string(),
            entity_name: m.entity_name.clone(),
            lead: i == 0 && bidder.is_consortium(),
        })
        .collect();
    let member_grades = a.members.iter().map(member_grade_to_proto).collect();
    pb::AssessmentStatement {
        statement_type: "credit-tender/assessment/v1".into(),
        tender_id: tender.tender_id.to_string(),
        tender_version: tender.version,
        tender_title: tender.terms.title.clone(),
        domain: tender.terms.domain.to_string(),
        region: tender.terms.region.to_string(),
        members,
        as_of: Some(timestamp(tender.terms.bid_deadline)),
        as_of_date: a.as_of_date.to_string(),
        data_version,
        policy_id: policy.id.clone(),
        policy_digest: policy.digest.clone(),
        eligible: a.eligible,
        qualified: a.qualified,
        reasons: a
            .reasons
            .iter()
            .map(|r| pb::Reason {
                code: r.code.to_string(),
                effect: r.effect.to_string(),
                credit_code: r.credit_code.as_ref().map(ToString::to_string).unwrap_or_default(),
                record_id: r.record_id.as_ref().map(ToString::to_string).unwrap_or_default(),
                message: r.message.en.clone(),
                params: params_to_proto(&r.message.params),
                message_zh: r.message.zh.clone(),
            })
            .collect(),
        applied_grade: a.applied_grade.to_string(),
        member_grades,
        qualification_points: a.qualification_points.as_f64(),
        evaluation_points: a.evaluation_points.as_f64(),
        total_points: a.total_points.as_f64(),
        points_cap: a.cap.as_f64(),
        nominal_deposit_fen: a.nominal_deposit.0,
        deposit_owed_fen: a.deposit_owed.0,
        deposit_basis: a.deposit_basis.to_string(),
        deposit_share_percent: a.deposit_share_percent,
        credit_guarantee_allowed: a.credit_guarantee_allowed,
        performance_bond_rate_bp: a.performance_bond_rate_bp,
        warnings: a.warnings.iter().map(|w| w.message.en.clone()).collect(),
        issued_at: Some(timestamp(issued_at)),
        credit_benefit: a.credit_benefit,
        served_from_cache_while_store_unreachable: false,
        contract_price_fen: a.contract_price.map(|p| p.0),
        performance_bond_fen: a.performance_bond.map(|p| p.0),
        warning_details: a.warnings.iter().map(warning_to_proto).collect(),
        region_name: crate::domain::region_name(&tender.terms.region.to_string()).unwrap_or_default().to_owned(),
        policy_title: policy.title.clone(),
    }
}

pub(crate) fn params_to_proto(params: &[Param]) -> Vec<pb::Param> {
    params.iter().map(|p| pb::Param { name: p.name.to_owned(), value: p.value.clone() }).collect()
}

fn warning_to_proto(w: &Warning) -> pb::Warning {
    pb::Warning {
        code: w.code.to_owned(),
        params: params_to_proto(&w.message.params),
        credit_code: w.credit_code.as_ref().map(ToString::to_string).unwrap_or_default(),
        record_id: w.record_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        message_zh: w.message.zh.clone(),
    }
}

fn member_grade_to_proto(m: &MemberGrade) -> pb::MemberGrade {
    pb::MemberGrade {
        credit_code: m.code.to_string(),
        grade: m.grade.to_string(),
        source: m.source.to_string(),
        evidence: m.evidence.iter().map(evidence_to_proto).collect(),
    }
}

fn evidence_to_proto(e: &Evidence) -> pb::Evidence {
    let mut out = pb::Evidence {
        step: e.step.to_string(),
        outcome: e.outcome.to_string(),
        note: e.note.en.clone(),
        note_code: e.note_code.to_owned(),
        note_params: params_to_proto(&e.note.params),
        note_zh: e.note.zh.clone(),
        ..Default::default()
    };
    if let Some((stored, ev)) = &e.record {
        out.record_id = ev.id.to_string();
        out.issuer = ev.issuer.to_string();
        out.issuer_name = crate::domain::region_name(&out.issuer).unwrap_or_default().to_owned();
        out.year = ev.year;
        out.grade = ev.grade.to_string();
        out.document_ref = ev.document_ref.clone();
        out.valid_from = ev.valid_from.to_string();
        out.valid_to = ev.valid_to.to_string();
        out.recorded_version = stored.recorded_version;
    }
    out
}

/// Serialises `message` in protobuf's JSON mapping and signs those bytes.
pub(crate) fn sign<T: serde::Serialize>(keys: &Keyring, payload_type: &str, message: &T) -> pb::Envelope {
    let payload = serde_json::to_vec(message).expect("statements serialise");
    envelope_to_proto(keys.sign(payload_type, payload))
}

pub fn envelope_to_proto(e: Envelope) -> pb::Envelope {
    pb::Envelope {
        payload_type: e.payload_type,
        payload: e.payload.into(),
        signatures: e.signatures.into_iter().map(|(keyid, sig)| pb::Signature { keyid, sig: sig.into() }).collect(),
    }
}

pub fn envelope_from_proto(e: &pb::Envelope) -> Envelope {
    Envelope {
        payload_type: e.payload_type.clone(),
        payload: e.payload.to_vec(),
        signatures: e.signatures.iter().map(|s| (s.keyid.clone(), s.sig.to_vec())).collect(),
    }
}
