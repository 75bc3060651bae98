//! `evaluate`: profile + tender + policy → assessment. Pure: no I/O, no clock;
//! the same inputs give the same assessment, always.

use super::{Policy, UnderObjection};
use crate::domain::date::shanghai_date;
use crate::domain::profile::{Profile, RecordState, StoredRecord};
use crate::domain::records::{Evaluation, EvaluationKind, ListKind, Record};
use crate::domain::vocab::vocabulary;
use crate::domain::{CreditCode, Fen, Grade, Issuer, Points, Tender};
use chrono::{Months, NaiveDate};

vocabulary! {
    /// Which step of the grade choice gave a member's grade.
    GradeSource { DynamicD => "dynamic_d", Provincial => "provincial", National => "national", NewEntrant => "new_entrant" }
}

vocabulary! {
    /// What a reason affects.
    Effect { Exclusion => "exclusion", Qualification => "qualification", Bonus => "bonus", Deposit => "deposit" }
}

vocabulary! {
    /// waived (nothing owed), reduced, or full.
    DepositBasis { Waived => "waived", Reduced => "reduced", Full => "full" }
}

/// One bidder member's records.
#[derive(Debug, Clone, Copy)]
pub struct MemberInput<'a> {
    pub code: &'a CreditCode,
    pub profile: &'a Profile,
    /// The code passed only through the operator's allow-list.
    pub allow_listed: bool,
}

/// One step of a member's grade choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub step: GradeSource,
    /// chosen | not_found | skipped
    pub outcome: &'static str,
    pub record: Option<(StoredRecord, Evaluation)>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberGrade {
    pub code: CreditCode,
    pub entity_name: String,
    pub grade: Grade,
    pub source: GradeSource,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub effect: Effect,
    pub credit_code: String,
    pub record_id: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub as_of_date: NaiveDate,
    pub members: Vec<MemberGrade>,
    pub applied_grade: Grade,
    pub eligible: bool,
    pub qualified: bool,
    pub credit_benefit: bool,
    pub reasons: Vec<Reason>,
    pub qualification_points: Points,
    pub evaluation_points: Points,
    pub total_points: Points,
    pub cap: Points,
    pub nominal_deposit: Fen,
    pub deposit_owed: Fen,
    pub deposit_basis: DepositBasis,
    pub deposit_share_percent: u32,
    pub credit_guarantee_allowed: bool,
    pub performance_bond_rate_bp: u32,
    pub warnings: Vec<String>,
}

/// A counting record with its state at the as-of date.
struct Counted<'a> {
    stored: &'a StoredRecord,
    state: RecordState,
}

fn counted<'a>(profile: &'a Profile, d: NaiveDate) -> Vec<Counted<'a>> {
    profile
        .records
        .iter()
        .filter_map(|s| {
            let (state, _) = profile.state_at(&s.record, d);
            state.counts().then_some(Counted { stored: s, state })
        })
        .collect()
}

fn newest<'a>(cands: impl Iterator<Item = (&'a StoredRecord, &'a Evaluation)>) -> Option<(&'a StoredRecord, &'a Evaluation)> {
    cands.max_by_key(|(s, e)| (e.year, e.valid_from, s.recorded_version))
}

fn list_code(prefix: &str, list: ListKind) -> String {
    format!("{prefix}{}", list.as_str().to_ascii_uppercase())
}

/// Assesses a bidder (its members' profiles) for a tender under a policy, as
/// of the tender's bid deadline.
pub fn evaluate(tender: &Tender, policy: &Policy, members: &[MemberInput<'_>]) -> Assessment {
    let d = shanghai_date(tender.terms.bid_deadline);
    let province = tender.terms.region.province();
    let mut reasons: Vec<Reason> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut grades = Vec::new();
    let mut new_entrant_without_benefit = false;

    for m in members {
        let code = m.code.as_str().to_owned();
        if m.allow_listed {
            warnings.push(format!(
                "credit code {code} fails the GB 32100-2015 checksum and is accepted only because it is on the operator's allow-list"
            ));
        }
        let records = counted(m.profile, d);
        for c in &records {
            if c.state == RecordState::UnderObjection {
                let treatment = match (&c.stored.record, policy.under_objection) {
                    (Record::Evaluation(_), UnderObjection::Skip) => "the policy passes over it",
                    (Record::Evaluation(_), UnderObjection::Count) => "the policy counts it until decided",
                    _ => "it counts until decided",
                };
                warnings.push(format!(
                    "record {} of {code} is under objection at {d}; {treatment}",
                    c.stored.record.id()
                ));
            }
        }

        // Grade choice, in DOMAIN.md's order.
        let evaluations: Vec<(&StoredRecord, &Evaluation)> = records
            .iter()
            .filter(|c| !(c.state == RecordState::UnderObjection && policy.under_objection == UnderObjection::Skip))
            .filter_map(|c| match &c.stored.record {
                Record::Evaluation(e) if e.domain == tender.terms.domain => Some((c.stored, e)),
                _ => None,
            })
            .collect();
        let mut evidence = Vec::new();
        let mut chosen: Option<(Grade, GradeSource)> = None;
        let steps: [(GradeSource, bool, Box<dyn Fn(&Evaluation) -> bool>); 3] = [
            (
                GradeSource::DynamicD,
                policy.use_dynamic_d,
                Box::new(|e: &Evaluation| {
                    e.evaluation_kind == EvaluationKind::DynamicD && e.region.is_some_and(|r| r.province() == province)
                }),
            ),
            (
                GradeSource::Provincial,
                policy.use_provincial,
                Box::new(|e: &Evaluation| e.evaluation_kind == EvaluationKind::Annual && e.issuer == Issuer::Province(province)),
            ),
            (
                GradeSource::National,
                policy.use_national,
                Box::new(|e: &Evaluation| e.evaluation_kind == EvaluationKind::Annual && e.issuer == Issuer::National),
            ),
        ];
        for (step, enabled, matches) in steps.iter() {
            if chosen.is_some() {
                break;
            }
            if !enabled {
                evidence.push(Evidence { step: *step, outcome: "skipped", record: None, note: "not used by this policy".into() });
                continue;
            }
            match newest(evaluations.iter().copied().filter(|(_, e)| matches(e))) {
                Some((s, e)) => {
                    chosen = Some((e.grade, *step));
                    evidence.push(Evidence {
                        step: *step,
                        outcome: "chosen",
                        record: Some((s.clone(), e.clone())),
                        note: format!("{} grade {} for {}, valid {} to {}", e.issuer, e.grade, e.year, e.valid_from, e.valid_to),
                    });
                }
                None => {
                    let what = match step {
                        GradeSource::DynamicD => format!("no dynamic D in force in {province} at {d}"),
                        GradeSource::Provincial => format!("no {province} grade in {} valid at {d}", tender.terms.domain),
                        _ => format!("no national grade in {} valid at {d}", tender.terms.domain),
                    };
                    evidence.push(Evidence { step: *step, outcome: "not_found", record: None, note: what });
                }
            }
        }
        if let Some((_, GradeSource::DynamicD)) = chosen {
            warnings.push(format!("{code} was set directly to D in {province}; this overrides its annual grade"));
        }
        let (grade, source) = chosen.unwrap_or_else(|| {
            let bad: Vec<String> = records
                .iter()
                .filter(|c| match &c.stored.record {
                    Record::ListEntry(l) => policy.new_entrant_bad_lists.contains(&l.list),
                    Record::Penalty(_) => policy.new_entrant_penalty_is_bad,
                    _ => false,
                })
                .map(|c| c.stored.record.id().to_string())
                .collect();
            let (grade, note) = if bad.is_empty() {
                (policy.new_entrant_clean, "no grade and no bad record: the policy's default for a clean new entrant".to_owned())
            } else {
                (
                    policy.new_entrant_with_bad_records,
                    format!("no grade; bad records {}: the policy's default for a new entrant with bad records", bad.join(", ")),
                )
            };
            evidence.push(Evidence { step: GradeSource::NewEntrant, outcome: "chosen", record: None, note });
            if m.profile.records.is_empty() {
                warnings.push(format!("no credit records at all for {code}: assessed as a new entrant"));
            }
            (grade, GradeSource::NewEntrant)
        });
        if source == GradeSource::NewEntrant && !policy.new_entrant_benefit {
            new_entrant_without_benefit = true;
            reasons.push(Reason {
                code: "NEW_ENTRANT_NO_BENEFIT".into(),
                effect: Effect::Bonus,
                credit_code: code.clone(),
                record_id: String::new(),
                message: format!("{code} has no credit evaluation that applies: a default grade earns no credit benefit"),
            });
        }

        // Exclusion and withholding grounds from lists, penalties, commitments.
        for c in &records {
            let id = c.stored.record.id().to_string();
            match &c.stored.record {
                Record::ListEntry(l) if policy.exclusion_lists.contains(&l.list) => reasons.push(Reason {
                    code: list_code("LISTED_", l.list),
                    effect: Effect::Exclusion,
                    credit_code: code.clone(),
                    record_id: id,
                    message: format!("on the {} list ({}, {}) since {}", l.list, l.authority, l.decision_number, l.listed_on),
                }),
                Record::ListEntry(l) if policy.withhold_lists.contains(&l.list) => reasons.push(Reason {
                    code: list_code("BONUS_WITHHELD_", l.list),
                    effect: Effect::Bonus,
                    credit_code: code.clone(),
                    record_id: id,
                    message: format!("on the {} list ({}) since {}: no credit bonus", l.list, l.decision_number, l.listed_on),
                }),
                Record::Penalty(p) if policy.withhold_penalty => reasons.push(Reason {
                    code: "PENALTY_IN_PUBLICATION".into(),
                    effect: Effect::Bonus,
                    credit_code: code.clone(),
                    record_id: id,
                    message: format!("penalty {} of {} is still in its publication period", p.decision_number, p.decided_on),
                }),
                Record::Commitment(cm) => {
                    if let (Some(months), Some(breached)) = (policy.withhold_breach_months, cm.breached_on) {
                        let since = d.checked_sub_months(Months::new(months)).unwrap_or(NaiveDate::MIN);
                        if breached > since && breached <= d {
                            reasons.push(Reason {
                                code: "COMMITMENT_BREACHED".into(),
                                effect: Effect::Bonus,
                                credit_code: code.clone(),
                                record_id: id,
                                message: format!("commitment '{}' breached on {breached}, within {months} months", cm.commitment_kind),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        grades.push(MemberGrade { code: m.code.clone(), entity_name: m.profile.entity_name(), grade, source, evidence });
    }

    // A consortium takes its members' lowest grade.
    let applied_grade = grades.iter().map(|g| g.grade).reduce(Grade::min).unwrap_or(Grade::D);
    if policy.exclusion_grades.contains(&applied_grade) {
        reasons.push(Reason {
            code: "GRADE_EXCLUDED".into(),
            effect: Effect::Exclusion,
            credit_code: String::new(),
            record_id: String::new(),
            message: format!("grade {applied_grade} is excluded by the policy"),
        });
    }
    let eligible = !reasons.iter().any(|r| r.effect == Effect::Exclusion);
    if eligible && policy.refused_grades.contains(&applied_grade) {
        reasons.push(Reason {
            code: "GRADE_NOT_QUALIFIED".into(),
            effect: Effect::Qualification,
            credit_code: String::new(),
            record_id: String::new(),
            message: format!("grade {applied_grade} does not pass qualification review under the policy"),
        });
    }
    let qualified = eligible && !reasons.iter().any(|r| r.effect == Effect::Qualification);
    let withheld = reasons.iter().any(|r| r.effect == Effect::Bonus);
    let credit_benefit = qualified && !withheld;

    // Points: benefits only with credit benefit; a non-positive figure (a
    // deduction) applies whenever the bidder is assessed at all.
    let pick = |table: Points| if credit_benefit || table.0 <= 0 { table } else { Points(0) };
    let qualification_points = pick(policy.qualification_points.get(applied_grade));
    let evaluation_points = pick(policy.evaluation_points.get(applied_grade));
    let total_points = Points((qualification_points.0 + evaluation_points.0).min(policy.cap.0));

    let reduction_allowed = qualified
        && !new_entrant_without_benefit
        && !(withheld && policy.withhold_denies_deposit_reduction);
    let share = if reduction_allowed { policy.deposit_share_percent.get(applied_grade).min(100) } else { 100 };
    let nominal = tender.terms.nominal_deposit;
    // Round up to the fen: the bidder never owes less than the share.
    let owed = Fen(((nominal.0.max(0) as i128 * share as i128 + 99) / 100) as i64);
    let deposit_basis = match share {
        0 => DepositBasis::Waived,
        100 => DepositBasis::Full,
        _ => DepositBasis::Reduced,
    };
    if !reduction_allowed && policy.deposit_share_percent.get(applied_grade) < 100 {
        reasons.push(Reason {
            code: "DEPOSIT_NOT_REDUCED".into(),
            effect: Effect::Deposit,
            credit_code: String::new(),
            record_id: String::new(),
            message: format!("grade {applied_grade} would reduce the deposit, but the bidder has no credit benefit"),
        });
    }
    let credit_guarantee_allowed = reduction_allowed && policy.guarantee_grades.contains(&applied_grade);
    let performance_bond_rate_bp =
        if reduction_allowed { policy.bond_rate_bp.get(applied_grade) } else { policy.no_benefit_bond_rate_bp };

    Assessment {
        as_of_date: d,
        members: grades,
        applied_grade,
        eligible,
        qualified,
        credit_benefit,
        reasons,
        qualification_points,
        evaluation_points,
        total_points,
        cap: policy.cap,
        nominal_deposit: nominal,
        deposit_owed: owed,
        deposit_basis,
        deposit_share_percent: share,
        credit_guarantee_allowed,
        performance_bond_rate_bp,
        warnings,
    }
}
