//! `evaluate`: profile + tender + policy → assessment. Pure: no I/O, no clock;
//! the same inputs give the same assessment, always.

use super::assessment::{Assessment, DepositBasis, Effect, GradeSource, MemberGrade, MemberInput, ReasonCode};
use super::sentence::{Sentence, sentence};
use super::terms::{Policy, Stage, UnderObjection};
use crate::domain::date::shanghai_date;
use crate::domain::profile::RecordState;
use crate::domain::records::{ListKind, Record, RecordId};
use crate::domain::{CreditCode, EvaluationMethod, Fen, Grade, Points, Tender};
use chrono::{Months, NaiveDate};
use findings::{Counted, Findings, counted};
use grade::choose_grade;

mod findings;
mod grade;

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
        let list_zh = list.chinese_name();
        let message = sentence!(
            "on the {list} list: no joint reward, because the bidder has no credit benefit (see the other reasons)",
            "列入{list_zh}，但投标人不享受信用优惠（见其他原因），不给予联合激励",
            list = list,
        );
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
    let deposit_percent = policy.reward_deposit_share_percent_at_most;
    let points_part = if policy.awards(method, Stage::Evaluation) {
        let (given, cut) = extra.fit(points.total().room_under(cap));
        points.evaluation = points.evaluation + given;
        sentence!(
            "joint reward of {extra} points at bid evaluation: {given} points given, {cut} points cut by the cap of {cap}",
            "评标阶段联合激励加{extra}分：实际给予{given}分，因信用加分上限{cap}分扣减{cut}分",
            extra = extra,
            given = given,
            cut = cut,
            cap = cap,
        )
    } else {
        let method_zh = method.chinese_name();
        sentence!(
            "no joint reward points: the {method} method awards no credit points at bid evaluation",
            "不给予联合激励加分：{method_zh}在评标阶段不计信用加分",
            method = method,
        )
    };
    for (code, record) in holders {
        let list_zh = list.chinese_name();
        let head = sentence!("on the {list} list: ", "列入{list_zh}：", list = list);
        let tail = sentence!(
            "a deposit of at most {deposit_percent}% of the nominal",
            "投标保证金至多为名义金额的{deposit_percent}%",
            deposit_percent = deposit_percent,
        );
        let points_part = points_part.clone();
        let message = Sentence {
            params: [head.params, points_part.params, tail.params].concat(),
            en: format!("{}{}; and {}", head.en, points_part.en, tail.en),
            zh: format!("{}{}；{}", head.zh, points_part.zh, tail.zh),
        };
        found.reason(ReasonCode::Reward(list), Effect::Reward, Some(code), Some(record), message);
    }
}

/// One member: its warnings, its grade with the evidence that chose it, and
/// the grounds its records give for exclusion or withholding.
fn assess_member(tender: &Tender, policy: &Policy, m: &MemberInput<'_>, d: NaiveDate, found: &mut Findings) -> Member {
    let code = m.code;
    if !code.passes_checksum() {
        let message = sentence!(
            "credit code {credit_code} fails the GB 32100-2015 checksum and is accepted only because it is on the operator's allow-list",
            "统一社会信用代码{credit_code}未通过GB 32100-2015校验，仅因列入运营方的例外名单而被接受",
            credit_code = code,
        );
        found.warn("ALLOW_LISTED_CODE", code, None, message);
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
            sentence!(
                "{credit_code} has no credit evaluation that applies: a default grade earns no credit benefit",
                "{credit_code}无适用的信用评价结果：默认等级不享受信用加分和保证金优惠",
                credit_code = code,
            ),
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
        let (treatment, en, zh) = match (&c.stored.record, policy.under_objection) {
            (Record::Evaluation(_), UnderObjection::Skip) => ("skipped", "the policy passes over it", "本规则不予采用"),
            (Record::Evaluation(_), UnderObjection::Count) => {
                ("counted", "the policy counts it until decided", "本规则在异议处理完毕前予以采用")
            }
            _ => ("counted", "it counts until decided", "异议处理完毕前仍予计入"),
        };
        let id = c.stored.record.id();
        let message = sentence!(
            "record {record_id} of {credit_code} is under objection at {date}; {en}",
            "{credit_code}的记录{record_id}在{date}处于异议处理期；{zh}",
            record_id = id,
            credit_code = code,
            date = d,
            treatment = treatment,
        );
        found.warn("UNDER_OBJECTION", code, Some(id), message);
    }
}

/// Exclusion and withholding grounds from a member's lists, penalties and commitments.
fn record_grounds(policy: &Policy, code: &CreditCode, records: &[Counted<'_>], d: NaiveDate, found: &mut Findings) {
    for c in records {
        let id = Some(c.stored.record.id());
        match &c.stored.record {
            Record::ListEntry(l) if policy.exclusion_lists.contains(&l.list) => {
                found.reason(ReasonCode::Listed(l.list), Effect::Exclusion, Some(code), id, {
                    let list_zh = l.list.chinese_name();
                    sentence!(
                        "on the {list} list ({authority}, {decision_number}) since {listed_on}",
                        "自{listed_on}起列入{list_zh}（{authority}，{decision_number}），予以排除",
                        list = l.list,
                        authority = &l.authority,
                        decision_number = &l.decision_number,
                        listed_on = l.listed_on,
                    )
                })
            }
            Record::ListEntry(l) if policy.withhold_lists.contains(&l.list) => {
                found.reason(ReasonCode::BonusWithheld(l.list), Effect::Bonus, Some(code), id, {
                    let list_zh = l.list.chinese_name();
                    sentence!(
                        "on the {list} list ({decision_number}) since {listed_on}: no credit bonus",
                        "自{listed_on}起列入{list_zh}（{decision_number}），不享受信用加分",
                        list = l.list,
                        decision_number = &l.decision_number,
                        listed_on = l.listed_on,
                    )
                })
            }
            Record::Penalty(p) if policy.withhold_penalty => found.reason(
                ReasonCode::PenaltyInPublication,
                Effect::Bonus,
                Some(code),
                id,
                sentence!(
                    "penalty {decision_number} of {decided_on} is still in its publication period",
                    "{decided_on}作出的行政处罚{decision_number}仍在公示期内，不享受信用加分",
                    decision_number = &p.decision_number,
                    decided_on = p.decided_on,
                ),
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
                        sentence!(
                            "commitment '{commitment_kind}' breached on {breached_on}, within {months} months",
                            "信用承诺“{commitment_kind}”于{breached_on}失信，在{months}个月内，不享受信用加分",
                            commitment_kind = &cm.commitment_kind,
                            breached_on = breached,
                            months = months,
                        ),
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
        let message = sentence!("grade {grade} is excluded by the policy", "信用等级{grade}级按本规则予以排除", grade = grade);
        found.reason(ReasonCode::GradeExcluded, Effect::Exclusion, None, None, message);
    }
}

fn qualification(policy: &Policy, grade: Grade, eligible: bool, found: &mut Findings) {
    if eligible && policy.refused_grades.contains(&grade) {
        let message = sentence!(
            "grade {grade} does not pass qualification review under the policy",
            "信用等级{grade}级按本规则未通过资格审查",
            grade = grade
        );
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
                let (method_zh, stage_zh) = (method.chinese_name(), stage.chinese_name());
                let message = sentence!(
                    "the {method} method awards no credit points at {stage}; grade {grade} would earn {table}",
                    "{method_zh}在{stage_zh}阶段不计信用加分；{grade}级本可得{table}分",
                    method = method,
                    stage = stage,
                    grade = grade,
                    table = table,
                );
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
        let message = sentence!(
            "grade {grade} would reduce the deposit, but the bidder has no credit benefit",
            "{grade}级本可减缴投标保证金，但投标人不享受信用优惠，须全额缴纳",
            grade = grade,
        );
        found.reason(ReasonCode::DepositNotReduced, Effect::Deposit, None, None, message);
    }
    Deposit { owed, basis, share_percent: share }
}

#[cfg(test)]
mod tests;
