//! What the steps of [`evaluate`](super::evaluate) share: the records that
//! count at the as-of date, and the reasons and warnings found on the way.

use crate::domain::CreditCode;
use crate::domain::profile::{Profile, RecordState, StoredRecord};
use crate::domain::records::{Evaluation, RecordId};
use crate::policy::assessment::{Effect, Reason, ReasonCode, Warning};
use crate::policy::sentence::Sentence;
use chrono::NaiveDate;

/// A counting record with its state at the as-of date.
pub(super) struct Counted<'a> {
    pub(super) stored: &'a StoredRecord,
    pub(super) state: RecordState,
}

pub(super) fn counted<'a>(profile: &'a Profile, d: NaiveDate) -> Vec<Counted<'a>> {
    profile
        .records
        .iter()
        .filter_map(|s| {
            let (state, _) = profile.state_at(s, d);
            state.counts().then_some(Counted { stored: s, state })
        })
        .collect()
}

pub(super) fn newest<'a>(cands: impl Iterator<Item = (&'a StoredRecord, &'a Evaluation)>) -> Option<(&'a StoredRecord, &'a Evaluation)> {
    cands.max_by_key(|(s, e)| (e.year, e.valid_from, s.recorded_version))
}

/// What the steps find along the way, in the order they find it (the order
/// is part of the signed statement).
#[derive(Default)]
pub(super) struct Findings {
    pub(super) reasons: Vec<Reason>,
    pub(super) warnings: Vec<Warning>,
}

impl Findings {
    pub(super) fn reason(
        &mut self,
        code: ReasonCode,
        effect: Effect,
        member: Option<&CreditCode>,
        record: Option<&RecordId>,
        message: Sentence,
    ) {
        self.reasons.push(Reason { code, effect, credit_code: member.cloned(), record_id: record.cloned(), message });
    }

    pub(super) fn warn(&mut self, code: &'static str, member: &CreditCode, record: Option<&RecordId>, message: Sentence) {
        self.warnings.push(Warning { code, credit_code: Some(member.clone()), record_id: record.cloned(), message });
    }

    pub(super) fn any(&self, effect: Effect) -> bool {
        self.reasons.iter().any(|r| r.effect == effect)
    }
}
