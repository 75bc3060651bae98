//! A policy file's terms: what one TOML file sets for one credit domain,
//! parsed and checked against the legal caps once, so [`Policy`] is valid
//! wherever it is held.

use crate::domain::records::ListKind;
use crate::domain::{CreditDomain, EvaluationMethod, Fen, Grade, Points};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The legal cap on a bid deposit: 2% of the estimated price (招标投标法实施条例 Art. 26).
pub const LEGAL_MAX_DEPOSIT_BP: u32 = 200;
/// The legal cap on a performance bond: 10% of the contract price (Art. 58).
pub const LEGAL_MAX_PERFORMANCE_BOND_BP: u32 = 1000;

/// A value per grade, indexed by [`Grade::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerGrade<T>([T; 5]);

impl<T: Copy> PerGrade<T> {
    /// The value for grade `g`.
    pub fn get(&self, g: Grade) -> T {
        self.0[g.rank() as usize]
    }
}

/// How an evaluation under objection is treated in grade choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnderObjection {
    /// Use it, with a warning.
    Count,
    /// Pass over it, with a warning.
    Skip,
}

/// What a lapsed annual grade (expired, next not yet published) counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LapsedGrade {
    /// Keep it for at most `max_carry_over_months` after it expired, with a warning.
    CarryOver,
    /// Ignore it: the firm is assessed as a new entrant, with a warning.
    NewEntrant,
}

crate::domain::vocab::vocabulary! {
    /// A stage of the tender at which credit earns points.
    Stage {
        /// 资格审查: qualification review.
        Qualification => "qualification",
        /// 评标: bid evaluation.
        Evaluation => "evaluation",
    }
}

impl Stage {
    /// The stage's name as the committee reads it.
    pub fn chinese_name(self) -> &'static str {
        match self {
            Stage::Qualification => "资格审查",
            Stage::Evaluation => "评标",
        }
    }
}

/// One version of a tender credit policy, parsed from its TOML file
/// ([`Policy::from_toml`]) and checked against the legal caps. Field docs
/// name the file key each comes from; the shipped files say the source
/// (`[S]`, `[W]`, `[U]` or ASSUMED) of every value.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `id`: 1-64 characters of `a-z`, `0-9`, `-`, `_`; tenders name it.
    pub id: String,
    /// `title`: for people, shown with the policy.
    pub title: String,
    /// Hex SHA-256 of the file's bytes.
    pub digest: String,
    /// The file's text, kept so that old versions stay loadable.
    pub source: String,
    /// `domain`: the credit domain whose grades the policy reads.
    pub domain: CreditDomain,
    /// `grade_choice.use_dynamic_d`: a dynamic D in force in the tender's
    /// region overrides every other grade (DOMAIN.md's first step).
    pub use_dynamic_d: bool,
    /// `grade_choice.use_provincial`: the tender province's newest valid grade.
    pub use_provincial: bool,
    /// `grade_choice.use_national`: the national grade, when no provincial one applies.
    pub use_national: bool,
    /// `grade_choice.under_objection`: whether an evaluation under objection counts.
    pub under_objection: UnderObjection,
    /// `grade_choice.lapsed_grade`: what an expired annual grade counts for
    /// before the next is published.
    pub lapsed_grade: LapsedGrade,
    /// `grade_choice.max_carry_over_months`: how long after expiry a lapsed
    /// grade may be carried over.
    pub max_carry_over_months: u32,
    /// `new_entrant.clean_grade`: the default grade with no bad record (DOMAIN.md: A).
    pub new_entrant_clean: Grade,
    /// `new_entrant.with_bad_records_grade`: the default grade with one.
    pub new_entrant_with_bad_records: Grade,
    /// `new_entrant.bad_record_lists`: lists whose entries in force are bad records.
    pub new_entrant_bad_lists: Vec<ListKind>,
    /// `new_entrant.penalty_is_bad_record`: whether a penalty in publication is one.
    pub new_entrant_penalty_is_bad: bool,
    /// `new_entrant.credit_benefit`: whether a default grade earns points,
    /// deposit reduction and a lower bond; `false` fails closed.
    pub new_entrant_benefit: bool,
    /// `exclusion.lists`: an entry in force on one of these excludes the
    /// bidder (eligible = false).
    pub exclusion_lists: Vec<ListKind>,
    /// `exclusion.grades`: grades that exclude the bidder.
    pub exclusion_grades: Vec<Grade>,
    /// `qualification.refused_grades`: grades that pass exclusion but fail
    /// qualification review (qualified = false).
    pub refused_grades: Vec<Grade>,
    /// `bonus.cap`: the credit factor's weight; no grade's stages, nor the
    /// joint reward, may take the total above it.
    pub cap: Points,
    /// `bonus.qualification`: points at qualification review per grade, each at least 0.
    pub qualification_points: PerGrade<Points>,
    /// `bonus.evaluation`: points at bid evaluation per grade, each at least 0.
    pub evaluation_points: PerGrade<Points>,
    /// `bonus.withheld_by_lists`: an entry in force on one of these
    /// withholds the bonus without excluding.
    pub withhold_lists: Vec<ListKind>,
    /// `bonus.withheld_by_penalty_in_publication`: whether a penalty in
    /// publication withholds the bonus.
    pub withhold_penalty: bool,
    /// `bonus.withheld_by_breached_commitment_months`: a commitment breached
    /// within this many months of the deadline withholds the bonus; `None`: never.
    pub withhold_breach_months: Option<u32>,
    /// `bonus.withholding_also_denies_deposit_reduction`: whether a withheld
    /// bonus also means the full deposit and the no-benefit bond rate.
    pub withhold_denies_deposit_reduction: bool,
    /// The stages that award points, per evaluation method.
    pub stages_by_method: BTreeMap<EvaluationMethod, Vec<Stage>>,
    /// Lists whose holders earn the joint reward.
    pub reward_lists: Vec<ListKind>,
    /// `reward.extra_evaluation_points`: the joint reward's points at bid
    /// evaluation, within the cap and only where the method awards them.
    pub reward_extra_evaluation_points: Points,
    /// `reward.deposit_share_percent_at_most`: the most of the nominal
    /// deposit a rewarded bidder owes, in percent.
    pub reward_deposit_share_percent_at_most: u32,
    /// `deposit.max_nominal_rate_bp`: the most nominal deposit a tender may
    /// ask, in basis points of its estimated price; at most
    /// [`LEGAL_MAX_DEPOSIT_BP`] (招标投标法实施条例 Art. 26).
    pub max_nominal_deposit_bp: u32,
    /// An absolute ceiling on the nominal deposit besides the rate.
    pub max_nominal_deposit: Fen,
    /// `deposit.share_percent`: the share of the nominal deposit owed per
    /// grade, in percent (0 waives it, 100 is the full deposit).
    pub deposit_share_percent: PerGrade<u32>,
    /// `deposit.credit_guarantee_grades`: grades that may lodge a credit
    /// guarantee (信用保函 or guarantee insurance) instead of the deposit.
    pub guarantee_grades: Vec<Grade>,
    /// `performance_bond.rate_bp`: the performance bond per grade, in basis
    /// points of the contract price; each at most
    /// [`LEGAL_MAX_PERFORMANCE_BOND_BP`] (Art. 58).
    pub bond_rate_bp: PerGrade<u32>,
    /// `performance_bond.no_benefit_rate_bp`: the bond rate when the bidder
    /// gets no credit benefit (not qualified, a new entrant without benefit,
    /// or withheld where that denies reductions).
    pub no_benefit_bond_rate_bp: u32,
}

// The file form. Unknown keys are errors, so a typo cannot silently drop a rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: String,
    title: String,
    domain: String,
    grade_choice: GradeChoice,
    new_entrant: NewEntrant,
    exclusion: Exclusion,
    qualification: Qualification,
    bonus: Bonus,
    reward: Reward,
    deposit: Deposit,
    performance_bond: Bond,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reward {
    lists: Vec<String>,
    extra_evaluation_points: f64,
    deposit_share_percent_at_most: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradeChoice {
    use_dynamic_d: bool,
    use_provincial: bool,
    use_national: bool,
    under_objection: UnderObjection,
    lapsed_grade: LapsedGrade,
    max_carry_over_months: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntrant {
    clean_grade: String,
    with_bad_records_grade: String,
    bad_record_lists: Vec<String>,
    penalty_is_bad_record: bool,
    credit_benefit: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exclusion {
    lists: Vec<String>,
    grades: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Qualification {
    refused_grades: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bonus {
    cap: f64,
    qualification: BTreeMap<String, f64>,
    evaluation: BTreeMap<String, f64>,
    withheld_by_lists: Vec<String>,
    withheld_by_penalty_in_publication: bool,
    #[serde(default)]
    withheld_by_breached_commitment_months: Option<u32>,
    withholding_also_denies_deposit_reduction: bool,
    stages_by_method: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deposit {
    max_nominal_rate_bp: u32,
    max_nominal_fen: i64,
    share_percent: BTreeMap<String, u32>,
    credit_guarantee_grades: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bond {
    rate_bp: BTreeMap<String, u32>,
    no_benefit_rate_bp: u32,
}

fn grade(key: &str, s: &str) -> Result<Grade, String> {
    Grade::parse(s).ok_or_else(|| format!("{key}: unknown grade '{s}', expected one of: {}", Grade::expected()))
}

fn grades(key: &str, v: &[String]) -> Result<Vec<Grade>, String> {
    v.iter().map(|s| grade(key, s)).collect()
}

fn lists(key: &str, v: &[String]) -> Result<Vec<ListKind>, String> {
    v.iter()
        .map(|s| ListKind::parse(s).ok_or_else(|| format!("{key}: unknown list '{s}', expected one of: {}", ListKind::expected())))
        .collect()
}

fn per_grade<T: Copy + Default, U: Copy>(
    key: &str,
    map: &BTreeMap<String, U>,
    convert: impl Fn(&str, U) -> Result<T, String>,
) -> Result<PerGrade<T>, String> {
    let mut out = [T::default(); 5];
    let mut seen = [false; 5];
    for (g, v) in map {
        let gr = grade(&format!("{key}.{g}"), g)?;
        out[gr.rank() as usize] = convert(&format!("{key}.{g}"), *v)?;
        seen[gr.rank() as usize] = true;
    }
    if let Some(missing) = Grade::ALL.iter().find(|g| !seen[g.rank() as usize]) {
        return Err(format!("{key}: no value for grade {missing}; give every grade (AA, A, B, C, D)"));
    }
    Ok(PerGrade(out))
}

/// Every evaluation method must say which stages award points.
fn stages_by_method(map: &BTreeMap<String, Vec<String>>) -> Result<BTreeMap<EvaluationMethod, Vec<Stage>>, String> {
    let mut out = BTreeMap::new();
    for (m, stages) in map {
        let key = format!("bonus.stages_by_method.{m}");
        let method = EvaluationMethod::parse(m)
            .ok_or_else(|| format!("{key}: unknown evaluation method, expected one of: {}", EvaluationMethod::expected()))?;
        let stages = stages
            .iter()
            .map(|s| Stage::parse(s).ok_or_else(|| format!("{key}: unknown stage '{s}', expected one of: {}", Stage::expected())))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(method, stages);
    }
    if let Some(missing) = EvaluationMethod::ALL.iter().find(|m| !out.contains_key(m)) {
        return Err(format!("bonus.stages_by_method: no entry for {missing}; give every evaluation method"));
    }
    Ok(out)
}

impl Policy {
    /// Whether `stage` awards credit points under `method`.
    pub fn awards(&self, method: EvaluationMethod, stage: Stage) -> bool {
        self.stages_by_method.get(&method).is_some_and(|s| s.contains(&stage))
    }

    /// The most nominal deposit a tender may ask: the lower of the rate of
    /// its estimated price and the absolute ceiling.
    pub fn max_nominal_deposit_for(&self, estimated_price: Fen) -> Fen {
        let by_rate = (estimated_price.0 as i128 * self.max_nominal_deposit_bp as i128 / 10_000) as i64;
        Fen(by_rate.min(self.max_nominal_deposit.0))
    }

    /// Parses and validates a policy file; errors name the key and the reason.
    // Long because: one check per key of the policy file, each naming its key, in the file's order.
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let id = f.id.trim().to_owned();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err("id: must be 1-64 characters of a-z, 0-9, '-' and '_'".into());
        }
        let domain = CreditDomain::parse(&f.domain)
            .ok_or_else(|| format!("domain: unknown credit domain '{}', expected one of: {}", f.domain, CreditDomain::expected()))?;
        let cap = Points::from_decimal(f.bonus.cap).map_err(|e| format!("bonus.cap: {e}"))?;
        if cap.0 < 0 {
            return Err("bonus.cap: must not be negative".into());
        }
        // Every stage's points are at least 0 (issue 20's invariant): a
        // deduction is not a credit bonus, and a negative stage would let
        // the stages add up to less than what each shows.
        let points = |k: &str, v: f64| match Points::from_decimal(v) {
            Ok(p) if p < Points::ZERO => Err(format!("{k}: {p} is negative: credit points at a stage are at least 0")),
            Ok(p) => Ok(p),
            Err(e) => Err(format!("{k}: {e}")),
        };
        let qualification_points = per_grade("bonus.qualification", &f.bonus.qualification, points)?;
        let evaluation_points = per_grade("bonus.evaluation", &f.bonus.evaluation, points)?;
        for g in Grade::ALL {
            let (q, e) = (qualification_points.get(*g), evaluation_points.get(*g));
            let total = q + e;
            if q > cap || e > cap || total > cap {
                return Err(format!("bonus: grade {g} earns {q} + {e} = {total} points, above the credit factor's cap of {cap}"));
            }
        }
        if f.deposit.max_nominal_rate_bp > LEGAL_MAX_DEPOSIT_BP {
            return Err(format!(
                "deposit.max_nominal_rate_bp: {} basis points is above the legal 2% of the estimated price ({} bp, 招标投标法实施条例 Art. 26)",
                f.deposit.max_nominal_rate_bp, LEGAL_MAX_DEPOSIT_BP
            ));
        }
        let deposit_share_percent = per_grade("deposit.share_percent", &f.deposit.share_percent, |k, v: u32| {
            if v > 100 { Err(format!("{k}: {v}% is above the nominal deposit (at most 100)")) } else { Ok(v) }
        })?;
        let bond = |k: &str, v: u32| {
            if v > LEGAL_MAX_PERFORMANCE_BOND_BP {
                Err(format!(
                    "{k}: {v} basis points is above the legal 10% of the contract price ({LEGAL_MAX_PERFORMANCE_BOND_BP} bp, 招标投标法实施条例 Art. 58)"
                ))
            } else {
                Ok(v)
            }
        };
        let bond_rate_bp = per_grade("performance_bond.rate_bp", &f.performance_bond.rate_bp, bond)?;
        let no_benefit_bond_rate_bp = bond("performance_bond.no_benefit_rate_bp", f.performance_bond.no_benefit_rate_bp)?;
        let stages_by_method = stages_by_method(&f.bonus.stages_by_method)?;
        let reward_extra_evaluation_points =
            Points::from_decimal(f.reward.extra_evaluation_points).map_err(|e| format!("reward.extra_evaluation_points: {e}"))?;
        if reward_extra_evaluation_points.0 < 0 || reward_extra_evaluation_points > cap {
            return Err(format!("reward.extra_evaluation_points: must be between 0 and the cap of {cap}"));
        }
        if f.reward.deposit_share_percent_at_most > 100 {
            return Err("reward.deposit_share_percent_at_most: must be at most 100".into());
        }
        if f.deposit.max_nominal_fen <= 0 {
            return Err("deposit.max_nominal_fen: must be positive".into());
        }
        if f.grade_choice.max_carry_over_months > 24 {
            return Err("grade_choice.max_carry_over_months: at most 24 (a grade is valid for one year)".into());
        }
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
        Ok(Policy {
            id,
            title: f.title,
            digest,
            source: text.to_owned(),
            domain,
            use_dynamic_d: f.grade_choice.use_dynamic_d,
            use_provincial: f.grade_choice.use_provincial,
            use_national: f.grade_choice.use_national,
            under_objection: f.grade_choice.under_objection,
            lapsed_grade: f.grade_choice.lapsed_grade,
            max_carry_over_months: f.grade_choice.max_carry_over_months,
            new_entrant_clean: grade("new_entrant.clean_grade", &f.new_entrant.clean_grade)?,
            new_entrant_with_bad_records: grade("new_entrant.with_bad_records_grade", &f.new_entrant.with_bad_records_grade)?,
            new_entrant_bad_lists: lists("new_entrant.bad_record_lists", &f.new_entrant.bad_record_lists)?,
            new_entrant_penalty_is_bad: f.new_entrant.penalty_is_bad_record,
            new_entrant_benefit: f.new_entrant.credit_benefit,
            exclusion_lists: lists("exclusion.lists", &f.exclusion.lists)?,
            exclusion_grades: grades("exclusion.grades", &f.exclusion.grades)?,
            refused_grades: grades("qualification.refused_grades", &f.qualification.refused_grades)?,
            cap,
            qualification_points,
            evaluation_points,
            withhold_lists: lists("bonus.withheld_by_lists", &f.bonus.withheld_by_lists)?,
            withhold_penalty: f.bonus.withheld_by_penalty_in_publication,
            withhold_breach_months: f.bonus.withheld_by_breached_commitment_months,
            withhold_denies_deposit_reduction: f.bonus.withholding_also_denies_deposit_reduction,
            stages_by_method,
            reward_lists: lists("reward.lists", &f.reward.lists)?,
            reward_extra_evaluation_points,
            reward_deposit_share_percent_at_most: f.reward.deposit_share_percent_at_most,
            max_nominal_deposit_bp: f.deposit.max_nominal_rate_bp,
            max_nominal_deposit: Fen(f.deposit.max_nominal_fen),
            deposit_share_percent,
            guarantee_grades: grades("deposit.credit_guarantee_grades", &f.deposit.credit_guarantee_grades)?,
            bond_rate_bp,
            no_benefit_bond_rate_bp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NATIONAL: &str = include_str!("../../policies/national-template.toml");

    #[test]
    fn shipped_policies_load() {
        let p = Policy::from_toml(NATIONAL).unwrap();
        assert_eq!(p.id, "national-template");
        Policy::from_toml(include_str!("../../policies/shanxi-highway-construction.toml")).unwrap();
    }

    fn err(from: &str, to: &str) -> String {
        assert!(NATIONAL.contains(from), "{from}");
        Policy::from_toml(&NATIONAL.replacen(from, to, 1)).unwrap_err()
    }

    #[test]
    fn refusals_name_key_and_reason() {
        assert!(err("clean_grade = \"A\"", "clean_grade = \"AAA\"").starts_with("new_entrant.clean_grade: unknown grade 'AAA'"));
        assert!(err("cap = 3.0", "cap = 1.0").starts_with("bonus: grade AA earns 1.00 + 2.00 = 3.00 points, above"));
        assert!(
            err("max_nominal_rate_bp = 200", "max_nominal_rate_bp = 250")
                .starts_with("deposit.max_nominal_rate_bp: 250 basis points is above the legal 2%")
        );
        assert!(
            err("no_benefit_rate_bp = 1000", "no_benefit_rate_bp = 1200")
                .starts_with("performance_bond.no_benefit_rate_bp: 1200 basis points is above the legal 10%")
        );
        assert!(err("AA = 0, A = 50", "AA = 0, A = 150").starts_with("deposit.share_percent.A: 150% is above"));
        assert!(err("use_national = true", "use_national = true\nuse_county = true").contains("unknown field `use_county`"));
        assert!(err("A = 1.0, B = 0, C = 0", "A = 1.0, B = 0, C = -1.0").starts_with("bonus.evaluation.C: -1.00 is negative"));
    }
}
