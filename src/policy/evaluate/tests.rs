//! `evaluate`'s steps, each on its own.

use super::*;
use crate::domain::profile::Profile;
use crate::policy::assessment::*;

use crate::policy::fixtures::{CODE, policy, profile, tender};

fn grade(id: &str, issuer: &str, grade: &str, year: u32) -> serde_json::Value {
    serde_json::json!({"type": "evaluation", "id": id, "entity_name": "x", "domain": "highway_construction",
        "issuer": issuer, "year": year, "grade": grade, "valid_from": "2026-01-01", "valid_to": "2027-12-31"})
}

fn choose(p: &Profile, region: &str) -> (Grade, GradeSource, Vec<Evidence>, Findings) {
    let mut found = Findings::default();
    let d = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    let records = counted(p, d);
    let (g, s, e) = choose_grade(&tender(region), &policy(), p, &records, d, &mut found);
    (g, s, e, found)
}

#[test]
fn grade_choice_prefers_dynamic_d_then_province_then_national() {
    let mut dynamic = grade("d", "440000", "D", 2026);
    dynamic["evaluation_kind"] = "dynamic_d".into();
    dynamic["region"] = "440000".into();
    let all = profile(&[grade("n", "national", "AA", 2025), grade("p", "440000", "A", 2025), dynamic]);
    let (g, source, evidence, found) = choose(&all, "440300");
    assert_eq!((g, source), (Grade::D, GradeSource::DynamicD));
    assert_eq!(evidence.len(), 1);
    assert!(found.warnings[0].message.en.contains("set directly to D"), "{:?}", found.warnings);
    assert_eq!(found.warnings[0].code, "DYNAMIC_D_OVERRIDES");
    assert!(found.warnings[0].message.zh.contains("被直接降为D级"), "{:?}", found.warnings);

    let (g, source, evidence, _) = choose(&all, "140100");
    assert_eq!((g, source), (Grade::AA, GradeSource::National), "another province's grades do not apply");
    let outcomes: Vec<_> = evidence.iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, [EvidenceOutcome::NotFound, EvidenceOutcome::NotFound, EvidenceOutcome::Chosen]);

    let two_years = profile(&[grade("p24", "440000", "B", 2024), grade("p25", "440000", "A", 2025)]);
    assert_eq!(choose(&two_years, "440300").0, Grade::A, "the newest year wins");
}

#[test]
fn no_grade_falls_back_to_the_new_entrant_default_by_bad_records() {
    let clean = profile(&[]);
    let (g, source, evidence, found) = choose(&clean, "440300");
    assert_eq!((g, source), (policy().new_entrant_clean, GradeSource::NewEntrant));
    assert_eq!(evidence.last().unwrap().outcome, EvidenceOutcome::Chosen);
    assert!(found.warnings[0].message.en.contains("no credit records at all"));
    assert_eq!(found.warnings[0].code, "NO_CREDIT_RECORDS");

    let listed = serde_json::json!({"type": "list_entry", "id": "l", "entity_name": "x", "list": "transport_blacklist",
        "authority": "a", "decision_number": "n", "listed_on": "2026-01-01"});
    let (g, _, evidence, _) = choose(&profile(&[listed]), "440300");
    assert_eq!(g, policy().new_entrant_with_bad_records);
    assert!(evidence.last().unwrap().note.en.contains("bad records l"));
    assert_eq!(evidence.last().unwrap().note_code, "NEW_ENTRANT_WITH_BAD_RECORDS");
    assert!(evidence.last().unwrap().note.zh.contains("有不良记录l"), "{:?}", evidence.last());
}

#[test]
fn record_grounds_name_the_record_and_the_effect() {
    let listed = serde_json::json!({"type": "list_entry", "id": "l", "entity_name": "x", "list": "transport_blacklist",
        "authority": "a", "decision_number": "n", "listed_on": "2026-01-01"});
    let p = profile(&[listed]);
    let d = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    let mut found = Findings::default();
    record_grounds(&policy(), &p.credit_code, &counted(&p, d), d, &mut found);
    let r = &found.reasons[0];
    assert_eq!(r.code.to_string(), "LISTED_TRANSPORT_BLACKLIST");
    assert_eq!((r.effect, r.record_id.as_ref().map(RecordId::as_str)), (Effect::Exclusion, Some("l")));
}

#[test]
fn a_consortium_takes_its_worst_member_grade() {
    let member = |g| MemberGrade {
        code: CreditCode::parse_strict(CODE).unwrap(),
        entity_name: String::new(),
        grade: g,
        source: GradeSource::Provincial,
        evidence: vec![],
    };
    assert_eq!(consortium_grade(&[member(Grade::AA), member(Grade::B), member(Grade::A)]), Grade::B);
    assert_eq!(consortium_grade(&[]), Grade::D, "no member: the worst");
}

#[test]
fn points_need_credit_benefit_and_stay_under_the_cap() {
    let p = policy();
    let mut found = Findings::default();
    let scoring = EvaluationMethod::ComprehensiveScoring;
    let full = points(&p, Grade::AA, true, scoring, &mut found);
    assert_eq!(full.qualification, p.qualification_points.get(Grade::AA));
    assert!(full.total() <= p.cap);
    let none = points(&p, Grade::AA, false, scoring, &mut found);
    assert_eq!((none.qualification, none.evaluation, none.total()), (Points(0), Points(0), Points(0)));
    assert!(found.reasons.is_empty());

    let lowest = points(&p, Grade::AA, true, EvaluationMethod::LowestEvaluatedPrice, &mut found);
    assert_eq!((lowest.qualification, lowest.evaluation), (p.qualification_points.get(Grade::AA), Points(0)));
    assert_eq!(found.reasons[0].code.to_string(), "NO_EVALUATION_POINTS_FOR_METHOD");
    assert_eq!(found.reasons[0].effect, Effect::Points);
}

#[test]
fn a_reward_gives_only_what_fits_under_the_cap_and_says_so_in_points() {
    let p = policy();
    let scoring = EvaluationMethod::ComprehensiveScoring;
    let holder = [(CreditCode::parse_strict(CODE).unwrap(), RecordId::parse("red").unwrap())];
    let mut found = Findings::default();
    let mut full = points(&p, Grade::AA, true, scoring, &mut found);
    grant_reward(&p, ListKind::TransportRedList, &holder, scoring, &mut full, &mut found);
    assert_eq!((full.qualification, full.evaluation, full.total()), (Points(100), Points(200), Points(300)), "AA already fills the cap");
    assert!(
        found.reasons[0].message.en.contains("0.00 points given, 0.50 points cut by the cap of 3.00"),
        "{}",
        found.reasons[0].message.en
    );

    let mut found = Findings::default();
    let mut a = points(&p, Grade::A, true, scoring, &mut found);
    grant_reward(&p, ListKind::TransportRedList, &holder, scoring, &mut a, &mut found);
    assert_eq!((a.qualification, a.evaluation, a.total()), (Points(50), Points(150), Points(200)));
    assert!(found.reasons[0].message.en.contains("0.50 points given, 0.00 points cut"), "{}", found.reasons[0].message.en);

    let mut found = Findings::default();
    let low = EvaluationMethod::LowestEvaluatedPrice;
    let mut aa = points(&p, Grade::AA, true, low, &mut found);
    grant_reward(&p, ListKind::TransportRedList, &holder, low, &mut aa, &mut found);
    assert_eq!(aa.evaluation, Points(0));
    assert!(found.reasons[1].message.en.contains("no joint reward points"), "{}", found.reasons[1].message.en);
}

#[test]
fn deposit_share_rounds_up_to_the_fen_and_says_why_not_reduced() {
    let p = policy();
    let mut found = Findings::default();
    let aa = deposit(&p, Grade::AA, Fen(10_000_001), true, None, &mut found);
    assert_eq!((aa.owed, aa.basis, aa.share_percent), (Fen(0), DepositBasis::Waived, 0));
    let a = deposit(&p, Grade::A, Fen(10_000_001), true, None, &mut found);
    assert_eq!((a.owed, a.basis), (Fen(5_000_001), DepositBasis::Reduced), "half, rounded up");
    assert!(found.reasons.is_empty());
    let withheld = deposit(&p, Grade::A, Fen(10_000_001), false, None, &mut found);
    assert_eq!((withheld.owed, withheld.basis), (Fen(10_000_001), DepositBasis::Full));
    assert_eq!(found.reasons[0].code, ReasonCode::DepositNotReduced);
    let rewarded = deposit(&p, Grade::B, Fen(10_000_001), true, Some(50), &mut found);
    assert_eq!((rewarded.owed, rewarded.share_percent), (Fen(5_000_001), 50), "a reward's share when lower");
}

#[test]
fn grade_exclusion_comes_before_qualification() {
    let p = policy();
    let mut found = Findings::default();
    exclusion_by_grade(&p, Grade::D, &mut found);
    qualification(&p, Grade::D, !found.any(Effect::Exclusion), &mut found);
    let codes: Vec<_> = found.reasons.iter().map(|r| r.code).collect();
    assert_eq!(codes, [ReasonCode::GradeExcluded], "an excluded bidder is not also refused at qualification");
    let mut found = Findings::default();
    qualification(&p, Grade::C, true, &mut found);
    assert_eq!(found.reasons[0].code, ReasonCode::GradeNotQualified);
}
