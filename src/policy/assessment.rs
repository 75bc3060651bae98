//! What an assessment says: the bidder's grade, the reasons and warnings
//! behind it, points, deposit and bond, as [`evaluate`](super::evaluate)
//! returns them.

use super::sentence::Sentence;
use super::terms::Stage;
use crate::domain::profile::{Profile, StoredRecord};
use crate::domain::records::{Evaluation, ListKind, RecordId};
use crate::domain::vocab::vocabulary;
use crate::domain::{CreditCode, Fen, Grade, Points};
use chrono::NaiveDate;

vocabulary! {
    /// Which step of the grade choice gave a member's grade.
    GradeSource {
        /// A dynamic D in force in the tender's region.
        DynamicD => "dynamic_d",
        /// The tender province's newest valid grade in the domain.
        Provincial => "provincial",
        /// The national grade.
        National => "national",
        /// A lapsed annual grade kept under the policy's `lapsed_grade`.
        CarriedOver => "carried_over",
        /// The policy's new-entrant default (DOMAIN.md, "New entrant").
        NewEntrant => "new_entrant",
    }
}

vocabulary! {
    /// What a reason affects.
    Effect {
        /// Grounds for exclusion: the bidder is not eligible.
        Exclusion => "exclusion",
        /// Fails qualification review: the bidder is not qualified.
        Qualification => "qualification",
        /// Withholds the credit benefit (bonus points and reductions).
        Bonus => "bonus",
        /// Says why the deposit is not reduced.
        Deposit => "deposit",
        /// Says why a stage gave no points, without withholding anything else.
        Points => "points",
        /// A joint reward for honest firms.
        Reward => "reward",
    }
}

vocabulary! {
    /// waived (nothing owed), reduced, or full.
    DepositBasis {
        /// A share of 0%.
        Waived => "waived",
        /// A share between 0% and 100%.
        Reduced => "reduced",
        /// The whole nominal deposit.
        Full => "full",
    }
}

vocabulary! {
    /// What one step of the grade choice found.
    EvidenceOutcome {
        /// The step gave the grade.
        Chosen => "chosen",
        /// The step found nothing that applies.
        NotFound => "not_found",
        /// The policy does not use the step, or ignores the lapsed grade it found.
        Skipped => "skipped",
    }
}

/// A machine-readable reason, written on the wire as an upper-case code
/// (`LISTED_TRANSPORT_BLACKLIST`, `GRADE_EXCLUDED`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// On a list the policy excludes for.
    Listed(ListKind),
    /// On a list that withholds the credit bonus.
    BonusWithheld(ListKind),
    /// A penalty in its publication period withholds the bonus.
    PenaltyInPublication,
    /// A commitment breached within the policy's months withholds the bonus.
    CommitmentBreached,
    /// A member's grade is the new-entrant default, which earns no benefit.
    NewEntrantNoBenefit,
    /// The applied grade is one the policy excludes.
    GradeExcluded,
    /// The applied grade fails qualification review.
    GradeNotQualified,
    /// The grade would reduce the deposit, but the bidder has no credit benefit.
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
    /// The member's credit code, as the bid names it.
    pub code: &'a CreditCode,
    /// Its records, read at one data version.
    pub profile: &'a Profile,
}

/// One step of a member's grade choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The step of the grade choice.
    pub step: GradeSource,
    /// What it found.
    pub outcome: EvidenceOutcome,
    /// The evaluation it found (chosen or passed over), as stored and as read.
    pub record: Option<(StoredRecord, Evaluation)>,
    /// What the step found, machine-readable (`NO_DYNAMIC_D`, `GRADE_FOUND`, …).
    pub note_code: &'static str,
    /// The same in words.
    pub note: Sentence,
}

/// One member's grade and how it was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberGrade {
    /// The member's credit code.
    pub code: CreditCode,
    /// The newest name its records give; empty when none does.
    pub entity_name: String,
    /// The grade that applies to it at the bid deadline.
    pub grade: Grade,
    /// The step that gave it.
    pub source: GradeSource,
    /// Every step, in order, with what it found.
    pub evidence: Vec<Evidence>,
}

/// A ground that changed the outcome: an exclusion, a withheld benefit, a
/// stage without points, a reward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// What it is, machine-readable.
    pub code: ReasonCode,
    /// What it affects.
    pub effect: Effect,
    /// The member it concerns; `None` for the bidder as a whole.
    pub credit_code: Option<CreditCode>,
    /// The record behind it, if one is.
    pub record_id: Option<RecordId>,
    /// The reason in words.
    pub message: Sentence,
}

/// Something the committee should know that changes no figure, with a
/// machine-readable code (`DYNAMIC_D_OVERRIDES`, `UNDER_OBJECTION`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What it is, machine-readable.
    pub code: &'static str,
    /// The member it concerns.
    pub credit_code: Option<CreditCode>,
    /// The record behind it, if one is.
    pub record_id: Option<RecordId>,
    /// The warning in words.
    pub message: Sentence,
}

/// What [`evaluate`] finds for one bidder on one tender version.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The bid deadline as an Asia/Shanghai date, against which validity is judged.
    pub as_of_date: NaiveDate,
    /// Each member's grade, in the bid's order (lead first).
    pub members: Vec<MemberGrade>,
    /// The grade applied to the bidder: the lowest of its members' (联合体).
    pub applied_grade: Grade,
    /// No grounds for exclusion.
    pub eligible: bool,
    /// Eligible and passes qualification review.
    pub qualified: bool,
    /// Qualified and nothing withholds the bonus: points and reductions apply.
    pub credit_benefit: bool,
    /// Every reason, in the order the steps found them.
    pub reasons: Vec<Reason>,
    /// Points at qualification review.
    pub qualification_points: Points,
    /// Points at bid evaluation, any joint reward included.
    pub evaluation_points: Points,
    /// The sum of the two stages, never above `cap`.
    pub total_points: Points,
    /// The policy's cap on credit points.
    pub cap: Points,
    /// The deposit the tender documents ask before any credit reduction.
    pub nominal_deposit: Fen,
    /// What the bidder owes: `deposit_share_percent` of it, rounded up to the fen.
    pub deposit_owed: Fen,
    /// Waived, reduced or full.
    pub deposit_basis: DepositBasis,
    /// The share of the nominal deposit owed, in percent.
    pub deposit_share_percent: u32,
    /// Whether a credit guarantee (信用保函) may replace the deposit.
    pub credit_guarantee_allowed: bool,
    /// The performance bond's rate, in basis points of the contract price.
    pub performance_bond_rate_bp: u32,
    /// The contract price the platform gave, if it gave one.
    pub contract_price: Option<Fen>,
    /// The performance bond owed, where the contract price is known.
    pub performance_bond: Option<Fen>,
    /// Everything the committee should know that changes no figure.
    pub warnings: Vec<Warning>,
}
