//! Policies: the per-tender credit rules as data, and the pure function that
//! applies them ([`evaluate`]).
//!
//! A policy is one TOML file for one credit domain. Its identity is its `id`
//! plus the SHA-256 of the file's bytes, so editing a file makes a new version
//! and never changes what an old tender was bound to.

mod assessment;
mod evaluate;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod properties;
mod sentence;
mod terms;

pub use assessment::{
    Assessment, DepositBasis, Effect, Evidence, EvidenceOutcome, GradeSource, MemberGrade, MemberInput, Reason, ReasonCode, Warning,
};
pub use evaluate::evaluate;
pub use sentence::{Param, Sentence};
pub use terms::{LEGAL_MAX_DEPOSIT_BP, LEGAL_MAX_PERFORMANCE_BOND_BP, LapsedGrade, PerGrade, Policy, Stage, UnderObjection};
