//! The credit records the store keeps. Values of these types are valid: they
//! are only made by [`super::input`], which checks every field.

use super::credit_code::CreditCode;
use super::grade::{CreditDomain, Grade};
use super::issuer::{Issuer, RegionCode};
use super::vocab::vocabulary;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

vocabulary! {
    /// Whether an evaluation is the annual result or a dynamic downgrade to D.
    EvaluationKind { Annual => "annual", DynamicD => "dynamic_d" }
}

vocabulary! {
    /// Publication status of an evaluation as the provider reports it.
    EvaluationStatus { Published => "published", UnderObjection => "under_objection", Revoked => "revoked" }
}

vocabulary! {
    /// The lists a transport tender checks.
    ListKind {
        TransportBlacklist => "transport_blacklist",
        TransportRedList => "transport_red_list",
        KeyAttention => "key_attention",
        CourtEnforcement => "court_enforcement",
        MajorTaxViolation => "major_tax_violation",
        MarketSeriousViolation => "market_serious_violation",
        ProcurementDebarment => "procurement_debarment",
        OverloadTransport => "overload_transport",
    }
}

vocabulary! {
    /// Penalty categories; work safety, fire and special equipment have a
    /// minimum publication of one year instead of three months.
    PenaltyCategory { General => "general", WorkSafety => "work_safety", Fire => "fire", SpecialEquipment => "special_equipment" }
}

vocabulary! {
    /// Whether a credit commitment was kept.
    CommitmentStatus { Kept => "kept", Breached => "breached" }
}

vocabulary! {
    /// What an event does to its target record from its effective date on.
    EventKind {
        /// Credit repair: ends publication or list membership.
        Repair => "repair",
        /// Removal from a list (or revocation of a record) by its authority.
        Removal => "removal",
        /// An objection (异议申诉) was filed: the record is contested.
        ObjectionFiled => "objection_filed",
        /// The objection succeeded: the record no longer counts.
        ObjectionUpheld => "objection_upheld",
        /// The objection failed: the record stands, no longer contested.
        ObjectionRejected => "objection_rejected",
    }
}

impl EventKind {
    /// Whether the event is about the content of one version of its target
    /// (an objection says the published content is wrong, or is not), rather
    /// than about the record whatever its version (a repair or removal ends
    /// the record's publication or listing, and a corrected text of it does
    /// not bring it back). See [`crate::domain::profile::Profile::concerned_version`].
    pub fn concerns_one_version(self) -> bool {
        matches!(self, EventKind::ObjectionFiled | EventKind::ObjectionUpheld | EventKind::ObjectionRejected)
    }
}

/// A provider-assigned record id: 1 to 128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub(crate) String);

impl RecordId {
    pub fn parse(s: &str) -> Result<RecordId, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("is required".into());
        }
        if t.chars().count() > 128 {
            return Err("is longer than 128 characters".into());
        }
        Ok(RecordId(super::text::clean(t)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub id: RecordId,
    pub document_ref: String,
    pub credit_code: CreditCode,
    pub entity_name: String,
    pub domain: CreditDomain,
    pub issuer: Issuer,
    pub year: i32,
    pub grade: Grade,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub evaluation_kind: EvaluationKind,
    /// Set exactly when `evaluation_kind` is `dynamic_d`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<RegionCode>,
    pub status: EvaluationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: RecordId,
    pub document_ref: String,
    pub credit_code: CreditCode,
    pub entity_name: String,
    pub list: ListKind,
    pub authority: String,
    pub decision_number: String,
    pub listed_on: NaiveDate,
    /// `None`: in force until removed or repaired.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    pub id: RecordId,
    pub document_ref: String,
    pub credit_code: CreditCode,
    pub entity_name: String,
    pub decision_number: String,
    pub authority: String,
    pub decided_on: NaiveDate,
    pub category: PenaltyCategory,
    pub min_publication_end: NaiveDate,
    pub max_publication_end: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub id: RecordId,
    pub document_ref: String,
    pub credit_code: CreditCode,
    pub entity_name: String,
    pub commitment_kind: String,
    pub made_on: NaiveDate,
    pub status: CommitmentStatus,
    /// Set exactly when `status` is `breached`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub breached_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    pub id: RecordId,
    pub document_ref: String,
    pub credit_code: CreditCode,
    pub target_id: RecordId,
    pub event: EventKind,
    pub effective_on: NaiveDate,
}

/// Any record, tagged by `type` in its JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Evaluation(Evaluation),
    ListEntry(ListEntry),
    Penalty(Penalty),
    Commitment(Commitment),
    Event(RecordEvent),
}

vocabulary! {
    /// The `type` word of each record kind.
    RecordType {
        Evaluation => "evaluation",
        ListEntry => "list_entry",
        Penalty => "penalty",
        Commitment => "commitment",
        Event => "event",
    }
}

impl RecordType {
    /// The events a record of this type accepts, and so the only ones a
    /// provider may aim at it; any other is refused at ingest with
    /// [`RecordType::event_refusal`]'s reason, never stored and ignored.
    ///
    /// - An annual evaluation is changed by its issuer publishing a corrected
    ///   result (a new version of the record) or by an upheld objection; a
    ///   repair or removal does not rewrite a grade already issued
    ///   (DOMAIN.md: repair "does not rewrite an annual grade").
    /// - List entries and penalties end by repair, removal or an upheld
    ///   objection.
    /// - A commitment's breach is cleared by an upheld objection; there is
    ///   nothing to repair or remove in a kept promise.
    pub fn accepted_events(self) -> &'static [EventKind] {
        use EventKind::*;
        match self {
            RecordType::Evaluation | RecordType::Commitment => &[ObjectionFiled, ObjectionUpheld, ObjectionRejected],
            RecordType::ListEntry | RecordType::Penalty => &[Repair, Removal, ObjectionFiled, ObjectionUpheld, ObjectionRejected],
            RecordType::Event => &[],
        }
    }

    /// Why `event` may not target a record of this type, if it may not.
    pub fn event_refusal(self, event: EventKind) -> Option<String> {
        if self.accepted_events().contains(&event) {
            return None;
        }
        let accepted: Vec<&str> = self.accepted_events().iter().map(|e| e.as_str()).collect();
        Some(match (self, event) {
            (RecordType::Event, _) => "events target evaluations, list entries, penalties or commitments, not other events".to_owned(),
            (RecordType::Evaluation, EventKind::Repair | EventKind::Removal) => format!(
                "a {event} cannot end an evaluation: a grade is changed only by its issuer publishing a corrected \
                 result (a new version of the record) or by an upheld objection; an evaluation accepts {}",
                accepted.join(", ")
            ),
            _ => format!("a {self} does not accept a {event} event; it accepts {}", accepted.join(", ")),
        })
    }
}

impl Record {
    pub fn id(&self) -> &RecordId {
        match self {
            Record::Evaluation(r) => &r.id,
            Record::ListEntry(r) => &r.id,
            Record::Penalty(r) => &r.id,
            Record::Commitment(r) => &r.id,
            Record::Event(r) => &r.id,
        }
    }

    pub fn credit_code(&self) -> &CreditCode {
        match self {
            Record::Evaluation(r) => &r.credit_code,
            Record::ListEntry(r) => &r.credit_code,
            Record::Penalty(r) => &r.credit_code,
            Record::Commitment(r) => &r.credit_code,
            Record::Event(r) => &r.credit_code,
        }
    }

    /// The firm's name as this record gives it; events carry none.
    pub fn entity_name(&self) -> Option<&str> {
        match self {
            Record::Evaluation(r) => Some(&r.entity_name),
            Record::ListEntry(r) => Some(&r.entity_name),
            Record::Penalty(r) => Some(&r.entity_name),
            Record::Commitment(r) => Some(&r.entity_name),
            Record::Event(_) => None,
        }
    }

    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Evaluation(_) => RecordType::Evaluation,
            Record::ListEntry(_) => RecordType::ListEntry,
            Record::Penalty(_) => RecordType::Penalty,
            Record::Commitment(_) => RecordType::Commitment,
            Record::Event(_) => RecordType::Event,
        }
    }

    /// The record's canonical JSON: what the store keeps and what is digested.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }

    /// Hex SHA-256 of [`Record::canonical_json`]; equal digests mean identical records.
    pub fn digest(&self) -> String {
        digest_of(&self.canonical_json())
    }
}

/// [`Record::digest`] of a record whose canonical JSON is at hand.
pub fn digest_of(canonical_json: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, canonical_json.as_bytes()))
}

impl ListKind {
    /// The list's name as the committee reads it.
    pub fn chinese_name(self) -> &'static str {
        match self {
            ListKind::TransportBlacklist => "交通运输失信黑名单",
            ListKind::TransportRedList => "交通运输守信红名单",
            ListKind::KeyAttention => "重点关注名单",
            ListKind::CourtEnforcement => "失信被执行人名单",
            ListKind::MajorTaxViolation => "重大税收违法失信主体名单",
            ListKind::MarketSeriousViolation => "严重违法失信名单",
            ListKind::ProcurementDebarment => "政府采购严重违法失信行为记录名单",
            ListKind::OverloadTransport => "超限超载运输失信名单",
        }
    }
}

impl EventKind {
    /// The event's name as the committee reads it.
    pub fn chinese_name(self) -> &'static str {
        match self {
            EventKind::Repair => "信用修复",
            EventKind::Removal => "移出",
            EventKind::ObjectionFiled => "提出异议",
            EventKind::ObjectionUpheld => "异议成立",
            EventKind::ObjectionRejected => "异议不成立",
        }
    }
}
