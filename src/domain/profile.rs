//! Everything the store holds about one credit code at one data version, and
//! the state of each record at a calendar date (DESIGN.md, "Record rules").

use super::credit_code::CreditCode;
use super::records::*;
use super::vocab::vocabulary;
use chrono::{Days, NaiveDate};

/// A record as stored: its content, when it was recorded and its digest.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record's content.
    pub record: Record,
    /// The data version at which this version of the record was written.
    pub recorded_version: u64,
    /// [`Record::digest`]: hex SHA-256 of its canonical JSON.
    pub digest: String,
}

/// An earlier version of a record id, replaced at `superseded_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Superseded {
    /// The replaced version, as it was stored.
    pub stored: StoredRecord,
    /// The data version whose write replaced it.
    pub superseded_at: u64,
}

/// One credit code's records, read at `data_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The firm.
    pub credit_code: CreditCode,
    /// The data version read: nothing written after it is included.
    pub data_version: u64,
    /// Newest version of each non-event record id, in recording order.
    pub records: Vec<StoredRecord>,
    /// Newest version of each event id, in recording order.
    pub events: Vec<StoredRecord>,
    /// Older versions of any of the above.
    pub history: Vec<Superseded>,
}

vocabulary! {
    /// A record's state at a date.
    RecordState {
        /// Counts at the date.
        InForce => "in_force",
        /// In force, but an objection against it is pending.
        UnderObjection => "under_objection",
        /// Starts after the date (`valid_from`, `listed_on`, `decided_on`, `made_on`).
        NotYet => "not_yet",
        /// Its end (`valid_to`, `expires_on`, `max_publication_end`) is before the date.
        Expired => "expired",
        /// Ended by repair, removal or an upheld objection.
        Ended => "ended",
        /// An evaluation its issuer revoked.
        Revoked => "revoked",
        /// A commitment that was breached on or before the date.
        Breached => "breached",
    }
}

impl RecordState {
    /// Whether the record counts at the date (possibly with a warning).
    pub fn counts(self) -> bool {
        matches!(self, RecordState::InForce | RecordState::UnderObjection | RecordState::Breached)
    }
}

fn day_after(d: NaiveDate) -> NaiveDate {
    d.checked_add_days(Days::new(1)).unwrap_or(d)
}

impl Profile {
    /// The newest data version at which anything in this profile was recorded:
    /// two reads with the same content version hold the same records.
    pub fn content_version(&self) -> u64 {
        let current = self.records.iter().chain(&self.events).map(|s| s.recorded_version);
        let older = self.history.iter().map(|h| h.superseded_at.max(h.stored.recorded_version));
        current.chain(older).max().unwrap_or(0)
    }

    /// The newest name the records give for the firm; empty when none does.
    pub fn entity_name(&self) -> String {
        self.records.iter().rev().find_map(|s| s.record.entity_name()).unwrap_or_default().to_owned()
    }

    /// The data versions at which `id` was recorded, oldest first: its
    /// current version and every superseded one up to this profile's data
    /// version.
    fn versions_of(&self, id: &RecordId) -> Vec<u64> {
        let current = self.records.iter().chain(&self.events).filter(|s| s.record.id() == id);
        let older = self.history.iter().map(|h| &h.stored).filter(|s| s.record.id() == id);
        let mut versions: Vec<u64> = current.chain(older).map(|s| s.recorded_version).collect();
        versions.sort_unstable();
        versions
    }

    /// The data version of the target version that `event` (an event's
    /// stored version) concerns, for an event that concerns one version
    /// ([`EventKind::concerns_one_version`]); `None` for one that concerns
    /// every version of its target (repair, removal).
    ///
    /// An event is raised against what was published when it was first
    /// recorded: the target's newest version recorded *before* the event id
    /// was first recorded with this target (a later version of the event,
    /// say a corrected date, does not move it), or, when the target was
    /// first recorded in the same write as the event, that first version.
    /// So a correction published after an upheld objection, or in the same
    /// write as it, is new content that counts again. Nothing new is stored
    /// for this: both data versions are already kept with every record, so
    /// events recorded before this rule keep aiming at the version they were
    /// raised against.
    pub fn concerned_version(&self, event: &StoredRecord) -> Option<u64> {
        let Record::Event(e) = &event.record else { return None };
        if !e.event.concerns_one_version() {
            return None;
        }
        let first = self.first_recorded(event);
        if let Some(filing) = self.decided_filing(e, first) {
            return self.concerned_version(filing);
        }
        let targets = self.versions_of(&e.target_id);
        targets.iter().rev().find(|&&v| v < first).or(targets.first()).copied().or(Some(first))
    }

    /// The data version at which an event id was first recorded against its
    /// current target (a later version of the event, say a corrected date,
    /// does not move it).
    fn first_recorded(&self, event: &StoredRecord) -> u64 {
        let Record::Event(e) = &event.record else { return event.recorded_version };
        self.history
            .iter()
            .map(|h| &h.stored)
            .filter(|s| matches!(&s.record, Record::Event(x) if x.id == e.id && x.target_id == e.target_id))
            .map(|s| s.recorded_version)
            .chain([event.recorded_version])
            .min()
            .unwrap_or(event.recorded_version)
    }

    /// For a decision on an objection (upheld or rejected), the filing it
    /// decides: the objection filed against the same target most recently
    /// before the decision was first recorded (`first`), unless a decision
    /// on that target in an earlier write came in between. Within one write,
    /// filings count before decisions, and decisions have no order among
    /// them: each decides the filing pending once that write's filings are
    /// counted (README, "the version an objection was raised against"). A
    /// decision concerns the version its filing was raised against, even
    /// when a corrected version was published while the objection was
    /// pending. `None` for a decision with no pending filing (it concerns
    /// what was published before it) and for any other event.
    fn decided_filing(&self, e: &RecordEvent, first: u64) -> Option<&StoredRecord> {
        if !matches!(e.event, EventKind::ObjectionUpheld | EventKind::ObjectionRejected) {
            return None;
        }
        let mut before: Vec<(u64, &StoredRecord, EventKind)> = self
            .events
            .iter()
            .filter_map(|s| match &s.record {
                Record::Event(x) if x.target_id == e.target_id && x.id != e.id => Some((self.first_recorded(s), s, x.event)),
                _ => None,
            })
            .filter(|(at, _, kind)| *at < first || (*at == first && *kind == EventKind::ObjectionFiled))
            .collect();
        // Oldest first; within one write, filings before decisions.
        before.sort_by_key(|(at, _, kind)| (*at, *kind != EventKind::ObjectionFiled));
        let mut pending = None;
        for (_, s, kind) in before {
            match kind {
                EventKind::ObjectionFiled => pending = Some(s),
                EventKind::ObjectionUpheld | EventKind::ObjectionRejected => pending = None,
                _ => {}
            }
        }
        pending
    }

    /// Events that apply to `stored` (one version of a record), oldest
    /// effective date first: every repair and removal of its id, and the
    /// objection events raised against this version or an earlier one
    /// ([`Profile::concerned_version`]).
    pub fn events_for<'a>(&'a self, stored: &'a StoredRecord) -> impl Iterator<Item = &'a RecordEvent> + 'a {
        let id = stored.record.id();
        let mut evs: Vec<&RecordEvent> = self
            .events
            .iter()
            .filter_map(|s| match &s.record {
                Record::Event(e) if &e.target_id == id => {
                    let applies = self.concerned_version(s).is_none_or(|v| stored.recorded_version <= v);
                    applies.then_some(e)
                }
                _ => None,
            })
            .collect();
        evs.sort_by_key(|e| e.effective_on);
        evs.into_iter()
    }

    /// The event that ends a record (repair, removal or upheld objection,
    /// of those its type accepts), with the date it ends it from: a penalty's
    /// repair or removal no earlier than the day after its minimum
    /// publication end. Whether it has ended at a date `d` is `on <= d`.
    pub fn ending<'a>(&'a self, stored: &'a StoredRecord) -> Option<(&'a RecordEvent, NaiveDate)> {
        let record = &stored.record;
        let accepted = record.record_type().accepted_events();
        let ending = self
            .events_for(stored)
            .filter(|e| accepted.contains(&e.event))
            .find(|e| matches!(e.event, EventKind::Repair | EventKind::Removal | EventKind::ObjectionUpheld))?;
        let on = match (record, ending.event) {
            (Record::Penalty(p), EventKind::Repair | EventKind::Removal) if ending.effective_on <= p.min_publication_end => {
                day_after(p.min_publication_end)
            }
            _ => ending.effective_on,
        };
        Some((ending, on))
    }

    /// The state of `stored` (one version of a record) at date `d`, with the
    /// reason in plain words.
    ///
    /// Only events the record's type accepts count (see
    /// [`RecordType::accepted_events`]; ingest refuses the others), and of
    /// objections only those raised against this version or an earlier one
    /// ([`Profile::events_for`]). What ends a record: an upheld objection at
    /// once (the version was wrong; a corrected version published after it
    /// counts); a repair or removal of a penalty no earlier than the day
    /// after its minimum publication end, of a list entry from its date.
    pub fn state_at(&self, stored: &StoredRecord, d: NaiveDate) -> (RecordState, String) {
        let record = &stored.record;
        let accepted = record.record_type().accepted_events();
        let events: Vec<&RecordEvent> = self.events_for(stored).filter(|e| accepted.contains(&e.event)).collect();
        let (ending, ends_on) = self.ending(stored).unzip();
        let objection_pending = events
            .iter()
            .filter(|e| e.effective_on <= d)
            .rfind(|e| matches!(e.event, EventKind::ObjectionFiled | EventKind::ObjectionRejected | EventKind::ObjectionUpheld))
            .is_some_and(|e| e.event == EventKind::ObjectionFiled);
        let ended = match (ends_on, ending) {
            (Some(on), Some(ev)) if on <= d => Some((RecordState::Ended, format!("{} ({}) effective {on}", ev.event, ev.id))),
            _ => None,
        };
        let (start, end, what) = match record {
            Record::Evaluation(e) => {
                if e.status == EvaluationStatus::Revoked {
                    return (RecordState::Revoked, "the evaluation was revoked by its issuer".into());
                }
                (e.valid_from, Some(e.valid_to), "valid")
            }
            Record::ListEntry(l) => (l.listed_on, l.expires_on, "listed"),
            Record::Penalty(p) => (p.decided_on, Some(p.max_publication_end), "published"),
            Record::Commitment(c) => return commitment_state(c, d, ended, objection_pending),
            Record::Event(e) => return (RecordState::InForce, format!("effective from {}", e.effective_on)),
        };
        if d < start {
            return (RecordState::NotYet, format!("{what} from {start}"));
        }
        if let Some(end) = end
            && d > end
        {
            return (RecordState::Expired, format!("{what} until {end}"));
        }
        if let Some(ended) = ended {
            return ended;
        }
        let contested = objection_pending || matches!(record, Record::Evaluation(e) if e.status == EvaluationStatus::UnderObjection);
        let span = match end {
            Some(end) => format!("{what} {start} to {end}"),
            None => format!("{what} from {start}, no expiry"),
        };
        if contested { (RecordState::UnderObjection, format!("{span}; an objection is pending")) } else { (RecordState::InForce, span) }
    }
}

/// A commitment at `d`: not yet made, its breach cleared by an upheld
/// objection (`ended`), kept, breached, or breached with an objection
/// pending (it counts until decided).
fn commitment_state(c: &Commitment, d: NaiveDate, ended: Option<(RecordState, String)>, objection_pending: bool) -> (RecordState, String) {
    if c.made_on > d {
        return (RecordState::NotYet, format!("made on {}", c.made_on));
    }
    if let Some((state, why)) = ended {
        return (state, format!("breach cleared: {why}"));
    }
    match c.breached_on {
        Some(b) if b <= d && objection_pending => (RecordState::UnderObjection, format!("breached on {b}; an objection is pending")),
        Some(b) if b <= d => (RecordState::Breached, format!("breached on {b}")),
        _ => (RecordState::InForce, format!("made on {}, not breached", c.made_on)),
    }
}
