//! Statements in readable form, for `assess` and `verify`.

use crate::domain::Fen;
use crate::proto::v1 as pb;
use std::fmt::Write;

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

/// The Chinese sentence where the statement carries one (statements signed
/// before they did carry only the English).
fn zh<'a>(zh: &'a str, en: &'a str) -> &'a str {
    if zh.is_empty() { en } else { zh }
}

/// A multi-line, plain-text rendering of an assessment statement: labels in
/// English, the statement's sentences (evidence, reasons, warnings) in
/// Chinese where it carries them, regions by GB/T 2260 name and code.
pub(super) fn assessment(s: &pb::AssessmentStatement) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Tender      {} (version {}) {}", s.tender_id, s.tender_version, s.tender_title);
    let _ = writeln!(o, "Domain      {} in {}", s.domain, crate::domain::region_display(&s.region));
    for m in &s.members {
        let role = if m.lead { " (lead)" } else { "" };
        let _ = writeln!(o, "Bidder      {} {}{role}", m.credit_code, m.entity_name);
    }
    let _ = writeln!(o, "As of       {} (bid deadline), data version {}", s.as_of_date, s.data_version);
    let _ = writeln!(o, "Policy      {} {} sha256:{}", s.policy_id, s.policy_title, s.policy_digest);
    let _ = writeln!(o, "Grade       {}", s.applied_grade);
    for g in &s.member_grades {
        for e in &g.evidence {
            let rec = if e.record_id.is_empty() { String::new() } else { format!(" [{}]", e.record_id) };
            let _ = writeln!(o, "  {} {:<11} {:<9} {}{rec}", g.credit_code, e.step, e.outcome, zh(&e.note_zh, &e.note));
        }
    }
    let _ = writeln!(o, "Eligible    {}   Qualified {}   Credit benefit {}", yes(s.eligible), yes(s.qualified), yes(s.credit_benefit));
    let _ = writeln!(
        o,
        "Points      qualification {:.2} + evaluation {:.2} = {:.2} (cap {:.2})",
        s.qualification_points, s.evaluation_points, s.total_points, s.points_cap
    );
    let _ = writeln!(
        o,
        "Deposit     {} owed of {} nominal ({}, {}%){}",
        Fen(s.deposit_owed_fen),
        Fen(s.nominal_deposit_fen),
        s.deposit_basis,
        s.deposit_share_percent,
        if s.credit_guarantee_allowed { "; credit guarantee accepted" } else { "" }
    );
    let _ = writeln!(o, "Perf. bond  {:.2}% of the contract price", f64::from(s.performance_bond_rate_bp) / 100.0);
    if let (Some(price), Some(bond)) = (s.contract_price_fen, s.performance_bond_fen) {
        let _ = writeln!(o, "            {} on a contract price of {}", crate::domain::Fen(bond), crate::domain::Fen(price));
    }
    for r in &s.reasons {
        let _ = writeln!(o, "Reason      [{}] {}: {}", r.effect, r.code, zh(&r.message_zh, &r.message));
    }
    for (i, w) in s.warnings.iter().enumerate() {
        match s.warning_details.get(i) {
            Some(d) => {
                let _ = writeln!(o, "Warning     {}: {}", d.code, zh(&d.message_zh, w));
            }
            None => {
                let _ = writeln!(o, "Warning     {w}");
            }
        }
    }
    if let Some(t) = &s.issued_at
        && let Some(at) = chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
    {
        let _ = writeln!(o, "Issued      {}", at.with_timezone(&crate::domain::date::shanghai()).format("%Y-%m-%d %H:%M:%S %:z"));
    }
    o
}

pub(super) fn deposit_check(c: &pb::DepositCheck) -> String {
    let mut o = c.assessment.as_ref().map(assessment).unwrap_or_default();
    let _ = writeln!(
        o,
        "Offer       {} as {}: {}",
        Fen(c.offered_fen),
        c.form,
        if c.satisfied { "satisfies the deposit" } else { "DOES NOT satisfy the deposit" }
    );
    let _ = writeln!(o, "            {}", zh(&c.message_zh, &c.message));
    o
}
