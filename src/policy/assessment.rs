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
    /// What the step found, machine-readable (`NO_DYNAMIC_D`, `GRADE_FOUND`, …).
    pub note_code: &'static str,
    pub note: Sentence,
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
    pub message: Sentence,
}

/// Something the committee should know that changes no figure, with a
/// machine-readable code (`DYNAMIC_D_OVERRIDES`, `UNDER_OBJECTION`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: &'static str,
    /// The member it concerns.
    pub credit_code: Option<CreditCode>,
    /// The record behind it, if one is.
    pub record_id: Option<RecordId>,
    pub message: Sentence,
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
    pub warnings: Vec<Warning>,
}
