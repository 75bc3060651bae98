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
    EvaluationKind {
        /// The yearly grade, valid for its `valid_from..=valid_to`.
        Annual => "annual",
        /// A direct downgrade to D after a serious breach, in force in its
        /// region and overriding the annual grade (DOMAIN.md, "Dynamic downgrade").
        DynamicD => "dynamic_d",
    }
}

vocabulary! {
    /// Publication status of an evaluation as the provider reports it.
    EvaluationStatus {
        /// In effect (the default when a provider gives none).
        Published => "published",
        /// Contested by the firm; counts, with a warning, until decided.
        UnderObjection => "under_objection",
        /// Withdrawn by its issuer; never counts.
        Revoked => "revoked",
    }
}

vocabulary! {
    /// The lists a transport tender checks.
    ListKind {
        /// 交通运输失信黑名单 (交政研发〔2018〕181号).
        TransportBlacklist => "transport_blacklist",
        /// 交通运输守信红名单, the same measures' reward list.
        TransportRedList => "transport_red_list",
        /// 重点关注名单: serious cases below the blacklist.
        KeyAttention => "key_attention",
        /// 失信被执行人, kept by the courts.
        CourtEnforcement => "court_enforcement",
        /// 重大税收违法失信主体, kept by the tax authority.
        MajorTaxViolation => "major_tax_violation",
        /// 严重违法失信名单, kept by the market regulator.
        MarketSeriousViolation => "market_serious_violation",
        /// 政府采购严重违法失信行为记录.
        ProcurementDebarment => "procurement_debarment",
        /// 超限超载运输失信名单 (overloaded transport).
        OverloadTransport => "overload_transport",
    }
}

vocabulary! {
    /// Penalty categories; work safety, fire and special equipment have a
    /// minimum publication of one year instead of three months.
    PenaltyCategory {
        /// Any other penalty: published at least three months.
        General => "general",
        /// Work safety (安全生产).
        WorkSafety => "work_safety",
        /// Fire safety (消防).
        Fire => "fire",
        /// Special equipment (特种设备).
        SpecialEquipment => "special_equipment",
    }
}

vocabulary! {
    /// Whether a credit commitment was kept.
    CommitmentStatus {
        /// Kept, or not (yet) found breached.
        Kept => "kept",
        /// Breached on the commitment's `breached_on` date.
        Breached => "breached",
    }
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
    /// Trims `s` and checks it: 1 to 128 characters, NFC, nothing invisible
    /// ([`super::text::clean`]); the error is a reason for the `id` field.
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

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credit evaluation result: an annual grade in one credit domain, or a
/// dynamic downgrade to D (DOMAIN.md, "Who grades whom").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Provider-assigned id; one namespace across providers and record types.
    pub id: RecordId,
    /// The provider's reference to the source document (announcement number
    /// or URL), at most 512 characters.
    pub document_ref: String,
    /// The graded firm.
    pub credit_code: CreditCode,
    /// The firm's name as the issuer published it, at most 256 characters.
    pub entity_name: String,
    /// The credit domain graded; the grade says nothing about the others.
    pub domain: CreditDomain,
    /// The Ministry (national) or the province that issued the grade.
    pub issuer: Issuer,
    /// The year whose conduct was graded, 1990 to 2100.
    pub year: i32,
    /// AA to D; always D for a dynamic downgrade.
    pub grade: Grade,
    /// The published score, if any; for an annual result it lies within the
    /// grade's band of [`super::score_bands::ScoreBands`].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
    /// First day the result applies (inclusive).
    pub valid_from: NaiveDate,
    /// Last day the result applies (inclusive); not before `valid_from`.
    pub valid_to: NaiveDate,
    /// Annual result or dynamic downgrade.
    pub evaluation_kind: EvaluationKind,
    /// Set exactly when `evaluation_kind` is `dynamic_d`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<RegionCode>,
    /// Publication status as the provider reports it.
    pub status: EvaluationStatus,
}

/// An entry on a list that bars or rewards (DOMAIN.md, "Lists that bar or reward").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Provider-assigned id; one namespace across providers and record types.
    pub id: RecordId,
    /// The provider's reference to the source document, at most 512 characters.
    pub document_ref: String,
    /// The listed firm.
    pub credit_code: CreditCode,
    /// The firm's name as the list gives it, at most 256 characters.
    pub entity_name: String,
    /// Which list.
    pub list: ListKind,
    /// The listing authority; it owns the entry (see [`super::ownership`]).
    pub authority: String,
    /// The number of the listing decision.
    pub decision_number: String,
    /// First day on the list.
    pub listed_on: NaiveDate,
    /// `None`: in force until removed or repaired.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_on: Option<NaiveDate>,
}

/// An administrative penalty in its publication period (双公示).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    /// Provider-assigned id; one namespace across providers and record types.
    pub id: RecordId,
    /// The provider's reference to the source document, at most 512 characters.
    pub document_ref: String,
    /// The penalised firm.
    pub credit_code: CreditCode,
    /// The firm's name as the decision gives it, at most 256 characters.
    pub entity_name: String,
    /// The number of the penalty decision.
    pub decision_number: String,
    /// The deciding authority; it owns the record (see [`super::ownership`]).
    pub authority: String,
    /// The date of the decision, from which publication runs.
    pub decided_on: NaiveDate,
    /// Sets the shortest publication (one year for work safety, fire and
    /// special equipment, else three months).
    pub category: PenaltyCategory,
    /// Earliest end of publication; removal can be asked only after it.
    /// Checked against `decided_on` and the category by
    /// [`super::publication::PublicationPeriods`].
    pub min_publication_end: NaiveDate,
    /// Latest end of publication (at most three years from `decided_on`);
    /// not before `min_publication_end`.
    pub max_publication_end: NaiveDate,
}

/// A credit commitment (信用承诺) and whether it was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Provider-assigned id; one namespace across providers and record types.
    pub id: RecordId,
    /// The provider's reference to the source document, at most 512 characters.
    pub document_ref: String,
    /// The committing firm.
    pub credit_code: CreditCode,
    /// The firm's name as the commitment gives it, at most 256 characters.
    pub entity_name: String,
    /// Free text naming the commitment, e.g. "投标信用承诺".
    pub commitment_kind: String,
    /// The date the commitment was made.
    pub made_on: NaiveDate,
    /// Kept or breached.
    pub status: CommitmentStatus,
    /// Set exactly when `status` is `breached`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub breached_on: Option<NaiveDate>,
}

/// An event that ends or suspends another record (its target) from a date
/// on; which events a target accepts is [`RecordType::accepted_events`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Provider-assigned id; one namespace across providers and record types.
    pub id: RecordId,
    /// The provider's reference to the source document, at most 512 characters.
    pub document_ref: String,
    /// Must equal the target's credit code.
    pub credit_code: CreditCode,
    /// The id of the record concerned: an evaluation, list entry, penalty or commitment.
    pub target_id: RecordId,
    /// What the event does to its target.
    pub event: EventKind,
    /// The first day the event takes effect.
    pub effective_on: NaiveDate,
}

/// Any record, tagged by `type` in its JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// `"type": "evaluation"`.
    Evaluation(Evaluation),
    /// `"type": "list_entry"`.
    ListEntry(ListEntry),
    /// `"type": "penalty"`.
    Penalty(Penalty),
    /// `"type": "commitment"`.
    Commitment(Commitment),
    /// `"type": "event"`.
    Event(RecordEvent),
}

vocabulary! {
    /// The `type` word of each record kind.
    RecordType {
        /// [`Evaluation`].
        Evaluation => "evaluation",
        /// [`ListEntry`].
        ListEntry => "list_entry",
        /// [`Penalty`].
        Penalty => "penalty",
        /// [`Commitment`].
        Commitment => "commitment",
        /// [`RecordEvent`].
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
    /// The provider-assigned id, whatever the type.
    pub fn id(&self) -> &RecordId {
        match self {
            Record::Evaluation(r) => &r.id,
            Record::ListEntry(r) => &r.id,
            Record::Penalty(r) => &r.id,
            Record::Commitment(r) => &r.id,
            Record::Event(r) => &r.id,
        }
    }

    /// The firm the record is about (for an event, its target's firm).
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

    /// The `type` word of this record.
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
