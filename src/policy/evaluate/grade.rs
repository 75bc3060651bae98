//! The grade choice: DOMAIN.md's steps in order (dynamic D, provincial,
//! national), a lapsed grade carried over, else the new-entrant default;
//! every step tried is kept as evidence.

use super::findings::{Counted, Findings, newest};
use crate::domain::profile::{Profile, RecordState, StoredRecord};
use crate::domain::records::{Evaluation, Record};
use crate::domain::records::{EvaluationKind, EventKind};
use crate::domain::{Grade, Tender};
use crate::domain::{Issuer, RegionCode, region_display, region_name};
use crate::policy::assessment::{Evidence, EvidenceOutcome, GradeSource};
use crate::policy::sentence::{Sentence, sentence};
use crate::policy::terms::LapsedGrade;
use crate::policy::terms::{Policy, UnderObjection};
use chrono::{Months, NaiveDate};

/// The steps of the grade choice before the new-entrant default, in DOMAIN.md's order.
pub(super) const GRADE_STEPS: [GradeSource; 3] = [GradeSource::DynamicD, GradeSource::Provincial, GradeSource::National];

pub(super) fn step_enabled(policy: &Policy, step: GradeSource) -> bool {
    match step {
        GradeSource::DynamicD => policy.use_dynamic_d,
        GradeSource::Provincial => policy.use_provincial,
        GradeSource::National => policy.use_national,
        GradeSource::CarriedOver | GradeSource::NewEntrant => true,
    }
}

/// Whether an evaluation is one that `step` looks for on a tender in `region`.
/// A dynamic D applies where it was set: a province's in the whole province,
/// a city's (or county's) there only.
pub(super) fn step_matches(step: GradeSource, e: &Evaluation, region: RegionCode) -> bool {
    let province = region.province();
    match step {
        GradeSource::DynamicD => e.evaluation_kind == EvaluationKind::DynamicD && e.region.is_some_and(|r| r.contains(region)),
        GradeSource::Provincial => e.evaluation_kind == EvaluationKind::Annual && e.issuer == Issuer::Province(province),
        GradeSource::National => e.evaluation_kind == EvaluationKind::Annual && e.issuer == Issuer::National,
        GradeSource::CarriedOver | GradeSource::NewEntrant => false,
    }
}

/// A member's grade: the first step that finds a counting evaluation in the
/// tender's domain, else the policy's new-entrant default; with every step
/// tried as evidence.
pub(super) fn choose_grade(
    tender: &Tender,
    policy: &Policy,
    profile: &Profile,
    records: &[Counted<'_>],
    d: NaiveDate,
    found: &mut Findings,
) -> (Grade, GradeSource, Vec<Evidence>) {
    let province = tender.terms.region.province();
    let domain = tender.terms.domain;
    let evaluations: Vec<(&StoredRecord, &Evaluation)> = records
        .iter()
        .filter(|c| !(c.state == RecordState::UnderObjection && policy.under_objection == UnderObjection::Skip))
        .filter_map(|c| match &c.stored.record {
            Record::Evaluation(e) if e.domain == domain => Some((c.stored, e)),
            _ => None,
        })
        .collect();
    let mut evidence = Vec::new();
    for step in GRADE_STEPS {
        if !step_enabled(policy, step) {
            let note = sentence!("not used by this policy", "本规则不采用此步骤");
            evidence.push(Evidence { step, outcome: EvidenceOutcome::Skipped, record: None, note_code: "STEP_NOT_USED", note });
            continue;
        }
        let overturned = overturned(profile, tender, step, d);
        let Some((s, e)) = newest(evaluations.iter().copied().filter(|(_, e)| step_matches(step, e, tender.terms.region))) else {
            let (note_code, note) = not_found(tender, step, d);
            let note = overturned.into_iter().fold(note, Sentence::and);
            evidence.push(Evidence { step, outcome: EvidenceOutcome::NotFound, record: None, note_code, note });
            continue;
        };
        let note = overturned.into_iter().fold(graded(e), Sentence::and);
        evidence.push(Evidence {
            step,
            outcome: EvidenceOutcome::Chosen,
            record: Some((s.clone(), e.clone())),
            note_code: "GRADE_FOUND",
            note,
        });
        if step == GradeSource::DynamicD {
            let province_zh = region_display(&province.to_string());
            let message = sentence!(
                "{credit_code} was set directly to D in {province}; this overrides its annual grade",
                "{credit_code}在{province_zh}被直接降为D级，覆盖其年度评价等级",
                credit_code = &profile.credit_code,
                province = province,
            );
            found.warn("DYNAMIC_D_OVERRIDES", &profile.credit_code, Some(&e.id), message);
        }
        return (e.grade, step, evidence);
    }
    if let Some(lapsed_grade) = lapsed_grade(policy, profile, tender, d)
        && let Some(grade) = lapsed(policy, profile, lapsed_grade, &mut evidence, found)
    {
        return (grade, GradeSource::CarriedOver, evidence);
    }
    let (grade, note_code, note) = new_entrant_grade(policy, records);
    evidence.push(Evidence { step: GradeSource::NewEntrant, outcome: EvidenceOutcome::Chosen, record: None, note_code, note });
    if profile.records.is_empty() {
        let message = sentence!(
            "no credit records at all for {credit_code}: assessed as a new entrant",
            "{credit_code}无任何信用记录：按新进入企业评价",
            credit_code = &profile.credit_code,
        );
        found.warn("NO_CREDIT_RECORDS", &profile.credit_code, None, message);
    }
    (grade, GradeSource::NewEntrant, evidence)
}

/// What a step that found no grade says, in the tender's region and domain.
fn not_found(tender: &Tender, step: GradeSource, d: NaiveDate) -> (&'static str, Sentence) {
    let province = tender.terms.region.province();
    let domain = tender.terms.domain;
    let region_zh = region_display(&tender.terms.region.to_string());
    let province_zh = region_name(&province.to_string()).unwrap_or_default();
    let domain_zh = domain.chinese_name();
    match step {
        GradeSource::DynamicD => (
            "NO_DYNAMIC_D",
            sentence!(
                "no dynamic D in force in {region} at {date}",
                "{date}在{region_zh}无有效的动态D级评价",
                region = tender.terms.region,
                date = d,
            ),
        ),
        GradeSource::Provincial => (
            "NO_PROVINCIAL_GRADE",
            sentence!(
                "no {province} grade in {domain} valid at {date}",
                "{date}无有效的{province_zh}{domain_zh}信用评价结果",
                province = province,
                domain = domain,
                date = d,
            ),
        ),
        _ => (
            "NO_NATIONAL_GRADE",
            sentence!(
                "no national grade in {domain} valid at {date}",
                "{date}无有效的全国{domain_zh}信用评价结果",
                domain = domain,
                date = d,
            ),
        ),
    }
}

/// A lapsed grade as the policy treats it: carried over (its grade), or
/// ignored (`None`: the member is then a new entrant); either with evidence
/// and a warning.
fn lapsed(
    policy: &Policy,
    profile: &Profile,
    (s, e): (&StoredRecord, &Evaluation),
    evidence: &mut Vec<Evidence>,
    found: &mut Findings,
) -> Option<Grade> {
    let until = e.valid_to.checked_add_months(Months::new(policy.max_carry_over_months)).unwrap_or(NaiveDate::MAX);
    let issuer_zh = issuer_name(e.issuer);
    let what = sentence!(
        "{issuer} grade {grade} for {year} expired on {valid_to}",
        "{issuer_zh}{year}年度评价{grade}级已于{valid_to}到期",
        issuer = e.issuer,
        grade = e.grade,
        year = e.year,
        valid_to = e.valid_to,
    );
    let code = &profile.credit_code;
    let record = Some((s.clone(), e.clone()));
    let (what_en, what_zh) = (&what.en, &what.zh);
    let member = sentence!("{credit_code}: ", "{credit_code}：", credit_code = code);
    let joined = |what: &Sentence, rest: Sentence| Sentence {
        params: [member.params.clone(), what.params.clone(), rest.params].concat(),
        en: format!("{}{}{}", member.en, what.en, rest.en),
        zh: format!("{}{}{}", member.zh, what.zh, rest.zh),
    };
    if policy.lapsed_grade == LapsedGrade::CarryOver {
        let note = sentence!(
            "{what_en}; carried over until the next result, at most until {until}",
            "{what_zh}；在新结果发布前沿用，最迟至{until}",
            until = until,
        );
        let note = Sentence { params: [what.params.clone(), note.params].concat(), ..note };
        evidence.push(Evidence {
            step: GradeSource::CarriedOver,
            outcome: EvidenceOutcome::Chosen,
            record,
            note_code: "GRADE_CARRIED_OVER",
            note,
        });
        let rest = sentence!(" and no newer result applies; the policy carries it over", "，且无更新的评价结果；本规则予以沿用");
        found.warn("GRADE_CARRIED_OVER", code, Some(&e.id), joined(&what, rest));
        return Some(e.grade);
    }
    let note = sentence!("{what_en}; the policy treats a lapsed grade as none", "{what_zh}；本规则不沿用过期的等级");
    let note = Sentence { params: what.params.clone(), ..note };
    evidence.push(Evidence {
        step: GradeSource::CarriedOver,
        outcome: EvidenceOutcome::Skipped,
        record,
        note_code: "LAPSED_GRADE_IGNORED",
        note,
    });
    let rest = sentence!("; the policy assesses it as a new entrant until the next result", "；在新结果发布前按新进入企业评价");
    found.warn("LAPSED_GRADE_IGNORED", code, Some(&e.id), joined(&what, rest));
    None
}

/// A chosen evaluation, in words: "140000 grade A for 2025, valid
/// 2026-03-01 to 2027-02-28".
pub(super) fn graded(e: &Evaluation) -> Sentence {
    let issuer_zh = issuer_name(e.issuer);
    sentence!(
        "{issuer} grade {grade} for {year}, valid {valid_from} to {valid_to}",
        "{issuer_zh}{year}年度评价为{grade}级，有效期{valid_from}至{valid_to}",
        issuer = e.issuer,
        grade = e.grade,
        year = e.year,
        valid_from = e.valid_from,
        valid_to = e.valid_to,
    )
}

/// An issuer's name as the committee reads it: 山西省, 全国.
pub(super) fn issuer_name(issuer: Issuer) -> String {
    let code = issuer.to_string();
    region_name(&code).map_or(code, str::to_owned)
}

/// The evaluations `step` would have looked at that an upheld objection
/// ended by `d`, each as a sentence to append to the step's note ("e1 does
/// not count: objection_upheld (o1) effective 2026-07-01"): a grade changed
/// by an objection shows why.
pub(super) fn overturned(profile: &Profile, tender: &Tender, step: GradeSource, d: NaiveDate) -> Vec<Sentence> {
    let mut notes = Vec::new();
    for s in &profile.records {
        let Record::Evaluation(e) = &s.record else { continue };
        if e.domain != tender.terms.domain || !step_matches(step, e, tender.terms.region) {
            continue;
        }
        if profile.state_at(s, d).0 != RecordState::Ended {
            continue;
        }
        let Some((ev, on)) = profile.ending(s) else { continue };
        let event_zh = ev.event.chinese_name();
        notes.push(sentence!(
            "{not_counted} does not count: {event} ({event_id}) effective {effective_on}",
            "{not_counted}不予计入：{event_zh}（{event_id}），自{effective_on}起生效",
            not_counted = &e.id,
            event = ev.event,
            event_id = &ev.id,
            effective_on = on,
        ));
    }
    notes
}

/// The newest annual grade in the tender's domain (the province's before the
/// nation's) that expired before `d` but within the policy's carry-over
/// months, and that no upheld objection or revocation took away.
pub(super) fn lapsed_grade<'a>(
    policy: &Policy,
    profile: &'a Profile,
    tender: &Tender,
    d: NaiveDate,
) -> Option<(&'a StoredRecord, &'a Evaluation)> {
    let province = tender.terms.region.province();
    let lapsed = |issuer: Issuer| {
        let candidates = profile.records.iter().filter_map(|s| match &s.record {
            Record::Evaluation(e)
                if e.evaluation_kind == EvaluationKind::Annual
                    && e.domain == tender.terms.domain
                    && e.issuer == issuer
                    && e.valid_to < d
                    && e.valid_to.checked_add_months(Months::new(policy.max_carry_over_months)).is_some_and(|u| d <= u)
                    && profile.state_at(s, d).0 == RecordState::Expired
                    && !profile.events_for(s).any(|ev| ev.event == EventKind::ObjectionUpheld && ev.effective_on <= d) =>
            {
                Some((s, e))
            }
            _ => None,
        });
        newest(candidates)
    };
    lapsed(Issuer::Province(province)).or_else(|| lapsed(Issuer::National))
}

/// The policy's default for a member with no grade, by whether it has bad records.
pub(super) fn new_entrant_grade(policy: &Policy, records: &[Counted<'_>]) -> (Grade, &'static str, Sentence) {
    let bad: Vec<String> = records
        .iter()
        .filter(|c| match &c.stored.record {
            Record::ListEntry(l) => policy.new_entrant_bad_lists.contains(&l.list),
            Record::Penalty(_) => policy.new_entrant_penalty_is_bad,
            _ => false,
        })
        .map(|c| c.stored.record.id().to_string())
        .collect();
    if bad.is_empty() {
        let note = sentence!(
            "no grade and no bad record: the policy's default for a clean new entrant",
            "无信用等级且无不良记录：按本规则无不良记录的新进入企业的默认等级"
        );
        (policy.new_entrant_clean, "NEW_ENTRANT_CLEAN", note)
    } else {
        let note = sentence!(
            "no grade; bad records {records}: the policy's default for a new entrant with bad records",
            "无信用等级，有不良记录{records}：按本规则有不良记录的新进入企业的默认等级",
            records = bad.join(", "),
        );
        (policy.new_entrant_with_bad_records, "NEW_ENTRANT_WITH_BAD_RECORDS", note)
    }
}
