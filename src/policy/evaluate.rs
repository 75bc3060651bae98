//! `evaluate`: profile + tender + policy → assessment. Pure: no I/O, no clock;
//! the same inputs give the same assessment, always.

use super::{LapsedGrade, Policy, Stage, UnderObjection};
use crate::domain::date::shanghai_date;
use crate::domain::profile::{Profile, RecordState, StoredRecord};
use crate::domain::records::{Evaluation, EvaluationKind, EventKind, ListKind, Record, RecordId};
use crate::domain::vocab::vocabulary;
use crate::domain::{CreditCode, EvaluationMethod, Fen, Grade, Issuer, Points, RegionCode, Tender};
use chrono::{Months, NaiveDate};

vocabulary! {
    /// Which step of the grade choice gave a member's grade.
    GradeSource {
        DynamicD => "dynamic_d",
        Provincial => "provincial",
        National => "national",
        /// A lapsed annual grade kept under the policy's `lapsed_grade`.
        CarriedOver => "carried_over",
        NewEntrant => "new_entrant",
    }
}

vocabulary! {
    /// What a reason affects.
    Effect {
        Exclusion => "exclusion",
        Qualification => "qualification",
        /// Withholds the credit benefit (bonus points and reductions).
        Bonus => "bonus",
        Deposit => "deposit",
        /// Says why a stage gave no points, without withholding anything else.
        Points => "points",
        /// A joint reward for honest firms.
        Reward => "reward",
    }
}

vocabulary! {
    /// waived (nothing owed), reduced, or full.
    DepositBasis { Waived => "waived", Reduced => "reduced", Full => "full" }
}

vocabulary! {
    /// What one step of the grade choice found.
    EvidenceOutcome { Chosen => "chosen", NotFound => "not_found", Skipped => "skipped" }
}

/// A machine-readable reason, written on the wire as an upper-case code
/// (`LISTED_TRANSPORT_BLACKLIST`, `GRADE_EXCLUDED`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// On a list the policy excludes for.
    Listed(ListKind),
    /// On a list that withholds the credit bonus.
    BonusWithheld(ListKind),
    PenaltyInPublication,
    CommitmentBreached,
    NewEntrantNoBenefit,
    GradeExcluded,
    GradeNotQualified,
    DepositNotReduced,
    /// The tender's evaluation method awards no credit points at this stage.
    NoPointsForMethod(Stage),
    /// Every member is on a list the policy rewards.
    Reward(ListKind),
    /// Every member is on a rewarded list, but the bidder has no credit
    /// benefit (excluded, not qualified or withheld): no reward is granted.
    RewardWithheld(ListKind),
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, prefix: &str, l: ListKind| write!(f, "{prefix}{}", l.as_str().to_ascii_uppercase());
        match self {
            ReasonCode::Listed(l) => list(f, "LISTED_", *l),
            ReasonCode::BonusWithheld(l) => list(f, "BONUS_WITHHELD_", *l),
            ReasonCode::PenaltyInPublication => f.write_str("PENALTY_IN_PUBLICATION"),
            ReasonCode::CommitmentBreached => f.write_str("COMMITMENT_BREACHED"),
            ReasonCode::NewEntrantNoBenefit => f.write_str("NEW_ENTRANT_NO_BENEFIT"),
            ReasonCode::GradeExcluded => f.write_str("GRADE_EXCLUDED"),
            ReasonCode::GradeNotQualified => f.write_str("GRADE_NOT_QUALIFIED"),
            ReasonCode::DepositNotReduced => f.write_str("DEPOSIT_NOT_REDUCED"),
            ReasonCode::NoPointsForMethod(stage) => write!(f, "NO_{}_POINTS_FOR_METHOD", stage.as_str().to_ascii_uppercase()),
            ReasonCode::Reward(l) => list(f, "REWARD_", *l),
            ReasonCode::RewardWithheld(l) => list(f, "REWARD_WITHHELD_", *l),
        }
    }
}

/// One bidder member's records.
#[derive(Debug, Clone, Copy)]
pub struct MemberInput<'a> {
    pub code: &'a CreditCode,
    pub profile: &'a Profile,
}

/// One step of a member's grade choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub step: GradeSource,
    pub outcome: EvidenceOutcome,
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
    pub code: ReasonCode,
    pub effect: Effect,
    /// The member it concerns; `None` for the bidder as a whole.
    pub credit_code: Option<CreditCode>,
    /// The record behind it, if one is.
    pub record_id: Option<RecordId>,
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
    /// The contract price the platform gave, if it gave one.
    pub contract_price: Option<Fen>,
    /// The performance bond owed, where the contract price is known.
    pub performance_bond: Option<Fen>,
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
            let (state, _) = profile.state_at(s, d);
            state.counts().then_some(Counted { stored: s, state })
        })
        .collect()
}

fn newest<'a>(cands: impl Iterator<Item = (&'a StoredRecord, &'a Evaluation)>) -> Option<(&'a StoredRecord, &'a Evaluation)> {
    cands.max_by_key(|(s, e)| (e.year, e.valid_from, s.recorded_version))
}

/// What the steps find along the way, in the order they find it (the order
/// is part of the signed statement).
#[derive(Default)]
struct Findings {
    reasons: Vec<Reason>,
    warnings: Vec<String>,
}

impl Findings {
    fn reason(&mut self, code: ReasonCode, effect: Effect, member: Option<&CreditCode>, record: Option<&RecordId>, message: String) {
        self.reasons.push(Reason { code, effect, credit_code: member.cloned(), record_id: record.cloned(), message });
    }

    fn any(&self, effect: Effect) -> bool {
        self.reasons.iter().any(|r| r.effect == effect)
    }
}

/// Assesses a bidder (its members' profiles) for a tender under a policy, as
/// of the tender's bid deadline: each member's grade and grounds, then the
/// bidder's grade, exclusion, qualification, points, rewards, deposit and
/// bond. `contract_price`, when the platform knows it, gives the bond in fen.
pub fn evaluate(tender: &Tender, policy: &Policy, members: &[MemberInput<'_>], contract_price: Option<Fen>) -> Assessment {
    let d = shanghai_date(tender.terms.bid_deadline);
    let mut found = Findings::default();
    let assessed: Vec<Member> = members.iter().map(|m| assess_member(tender, policy, m, d, &mut found)).collect();
    let new_entrant_without_benefit = assessed.iter().any(|m| m.grade.source == GradeSource::NewEntrant) && !policy.new_entrant_benefit;
    let rewarded_by = reward_list(&assessed);
    let grades: Vec<MemberGrade> = assessed.into_iter().map(|m| m.grade).collect();

    let applied_grade = consortium_grade(&grades);
    exclusion_by_grade(policy, applied_grade, &mut found);
    let eligible = !found.any(Effect::Exclusion);
    qualification(policy, applied_grade, eligible, &mut found);
    let qualified = eligible && !found.any(Effect::Qualification);
    let withheld = found.any(Effect::Bonus);
    let credit_benefit = qualified && !withheld;
    let method = tender.terms.evaluation_method;
    let mut points = points(policy, applied_grade, credit_benefit, method, &mut found);
    let reward = match rewarded_by {
        Some((list, holders)) if !credit_benefit => {
            withhold_reward(list, &holders, &mut found);
            None
        }
        rewarded_by => rewarded_by,
    };
    if let Some((list, holders)) = &reward {
        grant_reward(policy, *list, holders, method, &mut points, &mut found);
    }

    let reduction_allowed = qualified && !new_entrant_without_benefit && !(withheld && policy.withhold_denies_deposit_reduction);
    let at_most = reward.as_ref().map(|_| policy.reward_deposit_share_percent_at_most);
    let deposit = deposit(policy, applied_grade, tender.terms.nominal_deposit, reduction_allowed, at_most, &mut found);
    let performance_bond_rate_bp = if reduction_allowed { policy.bond_rate_bp.get(applied_grade) } else { policy.no_benefit_bond_rate_bp };
    // Round up to the fen, as the deposit: the bond is never less than its rate.
    let performance_bond = contract_price.map(|p| Fen(((p.0.max(0) as i128 * performance_bond_rate_bp as i128 + 9_999) / 10_000) as i64));

    Assessment {
        as_of_date: d,
        members: grades,
        applied_grade,
        eligible,
        qualified,
        credit_benefit,
        reasons: found.reasons,
        qualification_points: points.qualification,
        evaluation_points: points.evaluation,
        total_points: points.total(),
        cap: policy.cap,
        nominal_deposit: tender.terms.nominal_deposit,
        deposit_owed: deposit.owed,
        deposit_basis: deposit.basis,
        deposit_share_percent: deposit.share_percent,
        credit_guarantee_allowed: reduction_allowed && policy.guarantee_grades.contains(&applied_grade),
        performance_bond_rate_bp,
        contract_price,
        performance_bond,
        warnings: found.warnings,
    }
}

/// A member's grade and, if it holds one, the reward-list entry in force.
struct Member {
    grade: MemberGrade,
    reward: Option<(ListKind, CreditCode, RecordId)>,
}

/// The list that rewards the bidder, with each member's entry: only when
/// every member holds an entry of one same rewarded list.
fn reward_list(members: &[Member]) -> Option<(ListKind, Vec<(CreditCode, RecordId)>)> {
    let first = members.first()?.reward.as_ref()?.0;
    let holders = members
        .iter()
        .map(|m| m.reward.as_ref().filter(|(l, _, _)| *l == first).map(|(_, c, r)| (c.clone(), r.clone())))
        .collect::<Option<Vec<_>>>()?;
    Some((first, holders))
}

/// A rewarded bidder without credit benefit: no reward points and no
/// reward deposit share, said per member so that a holder of a red-list entry
/// sees why it was not rewarded (the reasons that withheld the benefit stand
/// beside it).
fn withhold_reward(list: ListKind, holders: &[(CreditCode, RecordId)], found: &mut Findings) {
    for (code, record) in holders {
        let message = format!("on the {list} list: no joint reward, because the bidder has no credit benefit (see the other reasons)");
        found.reason(ReasonCode::RewardWithheld(list), Effect::Points, Some(code), Some(record), message);
    }
}

/// The joint reward: extra points at bid evaluation where the method awards
/// them, of which the bidder gets only what fits in what the cap leaves
/// after both stages (a later step never breaks the points invariant, see
/// [`points`]); shown per member as a reason that says, in points, how much
/// was given and how much the cap cut.
fn grant_reward(
    policy: &Policy,
    list: ListKind,
    holders: &[(CreditCode, RecordId)],
    method: EvaluationMethod,
    points: &mut StagePoints,
    found: &mut Findings,
) {
    let cap = policy.cap;
    let extra = policy.reward_extra_evaluation_points;
    let deposit = format!("a deposit of at most {}% of the nominal", policy.reward_deposit_share_percent_at_most);
    let points_part = if policy.awards(method, Stage::Evaluation) {
        let (given, cut) = extra.fit(points.total().room_under(cap));
        points.evaluation = points.evaluation + given;
        format!("joint reward of {extra} points at bid evaluation: {given} points given, {cut} points cut by the cap of {cap}")
    } else {
        format!("no joint reward points: the {method} method awards no credit points at bid evaluation")
    };
    for (code, record) in holders {
        let message = format!("on the {list} list: {points_part}; and {deposit}");
        found.reason(ReasonCode::Reward(list), Effect::Reward, Some(code), Some(record), message);
    }
}

/// One member: its warnings, its grade with the evidence that chose it, and
/// the grounds its records give for exclusion or withholding.
fn assess_member(tender: &Tender, policy: &Policy, m: &MemberInput<'_>, d: NaiveDate, found: &mut Findings) -> Member {
    let code = m.code;
    if !code.passes_checksum() {
        found.warnings.push(format!(
            "credit code {code} fails the GB 32100-2015 checksum and is accepted only because it is on the operator's allow-list"
        ));
    }
    let records = counted(m.profile, d);
    warn_under_objection(policy, code, &records, d, found);
    let (grade, source, evidence) = choose_grade(tender, policy, m.profile, &records, d, found);
    if source == GradeSource::NewEntrant && !policy.new_entrant_benefit {
        found.reason(
            ReasonCode::NewEntrantNoBenefit,
            Effect::Bonus,
            Some(code),
            None,
            format!("{code} has no credit evaluation that applies: a default grade earns no credit benefit"),
        );
    }
    record_grounds(policy, code, &records, d, found);
    let reward = records.iter().find_map(|c| match &c.stored.record {
        Record::ListEntry(l) if policy.reward_lists.contains(&l.list) => Some((l.list, code.clone(), l.id.clone())),
        _ => None,
    });
    let grade = MemberGrade { code: code.clone(), entity_name: m.profile.entity_name(), grade, source, evidence };
    Member { grade, reward }
}

fn warn_under_objection(policy: &Policy, code: &CreditCode, records: &[Counted<'_>], d: NaiveDate, found: &mut Findings) {
    for c in records.iter().filter(|c| c.state == RecordState::UnderObjection) {
        let treatment = match (&c.stored.record, policy.under_objection) {
            (Record::Evaluation(_), UnderObjection::Skip) => "the policy passes over it",
            (Record::Evaluation(_), UnderObjection::Count) => "the policy counts it until decided",
            _ => "it counts until decided",
        };
        found.warnings.push(format!("record {} of {code} is under objection at {d}; {treatment}", c.stored.record.id()));
    }
}

/// The steps of the grade choice before the new-entrant default, in DOMAIN.md's order.
const GRADE_STEPS: [GradeSource; 3] = [GradeSource::DynamicD, GradeSource::Provincial, GradeSource::National];

fn step_enabled(policy: &Policy, step: GradeSource) -> bool {
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
fn step_matches(step: GradeSource, e: &Evaluation, region: RegionCode) -> bool {
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
fn choose_grade(
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
            evidence.push(Evidence { step, outcome: EvidenceOutcome::Skipped, record: None, note: "not used by this policy".into() });
            continue;
        }
        let overturned = overturned(profile, tender, step, d);
        let Some((s, e)) = newest(evaluations.iter().copied().filter(|(_, e)| step_matches(step, e, tender.terms.region))) else {
            let note = match step {
                GradeSource::DynamicD => format!("no dynamic D in force in {} at {d}", tender.terms.region),
                GradeSource::Provincial => format!("no {province} grade in {domain} valid at {d}"),
                _ => format!("no national grade in {domain} valid at {d}"),
            };
            let note = note + &overturned;
            evidence.push(Evidence { step, outcome: EvidenceOutcome::NotFound, record: None, note });
            continue;
        };
        evidence.push(Evidence {
            step,
            outcome: EvidenceOutcome::Chosen,
            record: Some((s.clone(), e.clone())),
            note: format!("{} grade {} for {}, valid {} to {}", e.issuer, e.grade, e.year, e.valid_from, e.valid_to) + &overturned,
        });
        if step == GradeSource::DynamicD {
            let code = &profile.credit_code;
            found.warnings.push(format!("{code} was set directly to D in {province}; this overrides its annual grade"));
        }
        return (e.grade, step, evidence);
    }
    if let Some((s, e)) = lapsed_grade(policy, profile, tender, d) {
        let until = e.valid_to.checked_add_months(Months::new(policy.max_carry_over_months)).unwrap_or(NaiveDate::MAX);
        let what = format!("{} grade {} for {} expired on {}", e.issuer, e.grade, e.year, e.valid_to);
        let code = &profile.credit_code;
        let record = Some((s.clone(), e.clone()));
        if policy.lapsed_grade == LapsedGrade::CarryOver {
            let note = format!("{what}; carried over until the next result, at most until {until}");
            evidence.push(Evidence { step: GradeSource::CarriedOver, outcome: EvidenceOutcome::Chosen, record, note });
            found.warnings.push(format!("{code}: {what} and no newer result applies; the policy carries it over"));
            return (e.grade, GradeSource::CarriedOver, evidence);
        }
        let note = format!("{what}; the policy treats a lapsed grade as none");
        evidence.push(Evidence { step: GradeSource::CarriedOver, outcome: EvidenceOutcome::Skipped, record, note });
        found.warnings.push(format!("{code}: {what}; the policy assesses it as a new entrant until the next result"));
    }
    let (grade, note) = new_entrant_grade(policy, records);
    evidence.push(Evidence { step: GradeSource::NewEntrant, outcome: EvidenceOutcome::Chosen, record: None, note });
    if profile.records.is_empty() {
        found.warnings.push(format!("no credit records at all for {}: assessed as a new entrant", profile.credit_code));
    }
    (grade, GradeSource::NewEntrant, evidence)
}

/// The evaluations `step` would have looked at that an upheld objection
/// ended by `d`, as a note ("; e1 does not count: objection_upheld (o1)
/// effective 2026-07-01"): a grade changed by an objection shows why.
fn overturned(profile: &Profile, tender: &Tender, step: GradeSource, d: NaiveDate) -> String {
    let mut note = String::new();
    for s in &profile.records {
        let Record::Evaluation(e) = &s.record else { continue };
        if e.domain != tender.terms.domain || !step_matches(step, e, tender.terms.region) {
            continue;
        }
        let (state, why) = profile.state_at(s, d);
        if state == RecordState::Ended {
            note.push_str(&format!("; {} does not count: {why}", e.id));
        }
    }
    note
}

/// The newest annual grade in the tender's domain (the province's before the
/// nation's) that expired before `d` but within the policy's carry-over
/// months, and that no upheld objection or revocation took away.
fn lapsed_grade<'a>(policy: &Policy, profile: &'a Profile, tender: &Tender, d: NaiveDate) -> Option<(&'a StoredRecord, &'a Evaluation)> {
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
fn new_entrant_grade(policy: &Policy, records: &[Counted<'_>]) -> (Grade, String) {
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
        (policy.new_entrant_clean, "no grade and no bad record: the policy's default for a clean new entrant".to_owned())
    } else {
        (
            policy.new_entrant_with_bad_records,
            format!("no grade; bad records {}: the policy's default for a new entrant with bad records", bad.join(", ")),
        )
    }
}

/// Exclusion and withholding grounds from a member's lists, penalties and commitments.
fn record_grounds(policy: &Policy, code: &CreditCode, records: &[Counted<'_>], d: NaiveDate, found: &mut Findings) {
    for c in records {
        let id = Some(c.stored.record.id());
        match &c.stored.record {
            Record::ListEntry(l) if policy.exclusion_lists.contains(&l.list) => found.reason(
                ReasonCode::Listed(l.list),
                Effect::Exclusion,
                Some(code),
                id,
                format!("on the {} list ({}, {}) since {}", l.list, l.authority, l.decision_number, l.listed_on),
            ),
            Record::ListEntry(l) if policy.withhold_lists.contains(&l.list) => found.reason(
                ReasonCode::BonusWithheld(l.list),
                Effect::Bonus,
                Some(code),
                id,
                format!("on the {} list ({}) since {}: no credit bonus", l.list, l.decision_number, l.listed_on),
            ),
            Record::Penalty(p) if policy.withhold_penalty => found.reason(
                ReasonCode::PenaltyInPublication,
                Effect::Bonus,
                Some(code),
                id,
                format!("penalty {} of {} is still in its publication period", p.decision_number, p.decided_on),
            ),
            Record::Commitment(cm) => {
                let (Some(months), Some(breached)) = (policy.withhold_breach_months, cm.breached_on) else { continue };
                let since = d.checked_sub_months(Months::new(months)).unwrap_or(NaiveDate::MIN);
                if breached > since && breached <= d {
                    found.reason(
                        ReasonCode::CommitmentBreached,
                        Effect::Bonus,
                        Some(code),
                        id,
                        format!("commitment '{}' breached on {breached}, within {months} months", cm.commitment_kind),
                    );
                }
            }
            _ => {}
        }
    }
}

/// A consortium takes its members' worst grade.
fn consortium_grade(grades: &[MemberGrade]) -> Grade {
    grades.iter().map(|g| g.grade).reduce(Grade::worse_of).unwrap_or(Grade::D)
}

fn exclusion_by_grade(policy: &Policy, grade: Grade, found: &mut Findings) {
    if policy.exclusion_grades.contains(&grade) {
        let message = format!("grade {grade} is excluded by the policy");
        found.reason(ReasonCode::GradeExcluded, Effect::Exclusion, None, None, message);
    }
}

fn qualification(policy: &Policy, grade: Grade, eligible: bool, found: &mut Findings) {
    if eligible && policy.refused_grades.contains(&grade) {
        let message = format!("grade {grade} does not pass qualification review under the policy");
        found.reason(ReasonCode::GradeNotQualified, Effect::Qualification, None, None, message);
    }
}

/// Points per stage. The invariant, for every policy, method, reward and
/// consortium: each stage is at least 0 and at most its own limit (the cap
/// less what the stages before it took: qualification review first, then
/// bid evaluation, as the committee applies them), so the stages add up to
/// the total and the total is at most the cap.
struct StagePoints {
    qualification: Points,
    evaluation: Points,
}

impl StagePoints {
    /// Always the sum of the stages: there is no separate total to drift.
    fn total(&self) -> Points {
        self.qualification + self.evaluation
    }
}

/// Points per stage: only at the stages the tender's evaluation method
/// scores credit at (with a reason where a benefit is lost so), only with
/// credit benefit, and each stage within what the cap leaves after the
/// stages before it. (A policy's tables already fit: [`Policy::from_toml`]
/// refuses a negative figure or a grade whose stages add up above the cap.)
fn points(policy: &Policy, grade: Grade, credit_benefit: bool, method: EvaluationMethod, found: &mut Findings) -> StagePoints {
    let mut pick = |stage: Stage, table: Points, room: Points| {
        if !policy.awards(method, stage) {
            if credit_benefit && table > Points::ZERO {
                let message = format!("the {method} method awards no credit points at {stage}; grade {grade} would earn {table}");
                found.reason(ReasonCode::NoPointsForMethod(stage), Effect::Points, None, None, message);
            }
            return Points::ZERO;
        }
        if credit_benefit { table.fit(room).0 } else { Points::ZERO }
    };
    let qualification = pick(Stage::Qualification, policy.qualification_points.get(grade), policy.cap);
    let evaluation = pick(Stage::Evaluation, policy.evaluation_points.get(grade), qualification.room_under(policy.cap));
    StagePoints { qualification, evaluation }
}

struct Deposit {
    owed: Fen,
    basis: DepositBasis,
    share_percent: u32,
}

/// The bid deposit owed: the grade's share of the nominal deposit (or a
/// reward's, if lower) when a reduction is allowed, else all of it (with a
/// reason when the grade would have reduced it).
fn deposit(policy: &Policy, grade: Grade, nominal: Fen, reduction_allowed: bool, at_most: Option<u32>, found: &mut Findings) -> Deposit {
    let grade_share = policy.deposit_share_percent.get(grade);
    let share = if reduction_allowed { grade_share.min(at_most.unwrap_or(100)).min(100) } else { 100 };
    // Round up to the fen: the bidder never owes less than the share.
    let owed = Fen(((nominal.0.max(0) as i128 * share as i128 + 99) / 100) as i64);
    let basis = match share {
        0 => DepositBasis::Waived,
        100 => DepositBasis::Full,
        _ => DepositBasis::Reduced,
    };
    if !reduction_allowed && grade_share < 100 {
        let message = format!("grade {grade} would reduce the deposit, but the bidder has no credit benefit");
        found.reason(ReasonCode::DepositNotReduced, Effect::Deposit, None, None, message);
    }
    Deposit { owed, basis, share_percent: share }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(found.warnings[0].contains("set directly to D"), "{:?}", found.warnings);

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
        assert!(found.warnings[0].contains("no credit records at all"));

        let listed = serde_json::json!({"type": "list_entry", "id": "l", "entity_name": "x", "list": "transport_blacklist",
            "authority": "a", "decision_number": "n", "listed_on": "2026-01-01"});
        let (g, _, evidence, _) = choose(&profile(&[listed]), "440300");
        assert_eq!(g, policy().new_entrant_with_bad_records);
        assert!(evidence.last().unwrap().note.contains("bad records l"));
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
        assert_eq!(
            (full.qualification, full.evaluation, full.total()),
            (Points(100), Points(200), Points(300)),
            "AA already fills the cap"
        );
        assert!(found.reasons[0].message.contains("0.00 points given, 0.50 points cut by the cap of 3.00"), "{}", found.reasons[0].message);

        let mut found = Findings::default();
        let mut a = points(&p, Grade::A, true, scoring, &mut found);
        grant_reward(&p, ListKind::TransportRedList, &holder, scoring, &mut a, &mut found);
        assert_eq!((a.qualification, a.evaluation, a.total()), (Points(50), Points(150), Points(200)));
        assert!(found.reasons[0].message.contains("0.50 points given, 0.00 points cut"), "{}", found.reasons[0].message);

        let mut found = Findings::default();
        let low = EvaluationMethod::LowestEvaluatedPrice;
        let mut aa = points(&p, Grade::AA, true, low, &mut found);
        grant_reward(&p, ListKind::TransportRedList, &holder, low, &mut aa, &mut found);
        assert_eq!(aa.evaluation, Points(0));
        assert!(found.reasons[1].message.contains("no joint reward points"), "{}", found.reasons[1].message);
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
}
