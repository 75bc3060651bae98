//! Turning loosely typed input — a JSON Lines object, a CSV row, a gRPC message —
//! into a valid [`Record`], or into every problem found, each naming its field.
//!
//! All three inputs pass through [`parse_record`] so that the rules and the
//! wording of errors are the same whichever way a record arrives.

use super::credit_code::{AllowList, CodeCheck, CreditCode};
use super::date::parse_date;
use super::grade::{CreditDomain, Grade, WATER_RESOURCES_WORDS};
use super::issuer::{Issuer, RegionCode};
use super::publication::PublicationPeriods;
use super::records::*;
use super::score_bands::ScoreBands;
use super::text::shown;
use chrono::NaiveDate;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One problem with one field of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path as the caller wrote it, e.g. `valid_to` or
    /// `records[2].credit_code`.
    pub field: String,
    /// What is wrong with it, in words for the person who wrote it.
    pub reason: String,
}

impl FieldError {
    /// An error naming `field` and `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }

    /// The same error for a field inside `parent` (`terms` + `title` →
    /// `terms.title`; `records[2]` + `id` → `records[2].id`).
    pub fn within(self, parent: &str) -> Self {
        FieldError { field: format!("{parent}.{}", self.field), reason: self.reason }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What validation needs to know beyond the record itself.
#[derive(Debug, Clone, Copy)]
pub struct InputRules<'a> {
    /// Genuine credit codes that fail the GB 32100 checksum.
    pub allow_list: &'a AllowList,
    /// Which score each grade covers per domain; an evaluation whose score
    /// and grade disagree is refused.
    pub score_bands: &'a ScoreBands,
    /// Shortest and longest publication of a penalty, in months (双公示).
    pub publication: &'a PublicationPeriods,
}

/// A valid record, and warnings to pass on (e.g. an allow-listed code).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The record, valid by construction.
    pub record: Record,
    /// Sentences to carry into statements that use it; empty for most.
    pub warnings: Vec<String>,
}

/// Reads fields out of the object, remembering each problem.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    used: BTreeSet<&'static str>,
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl<'a> Fields<'a> {
    fn fail<T>(&mut self, field: &str, reason: impl Into<String>) -> Option<T> {
        self.errors.push(FieldError::new(field, reason));
        None
    }

    /// A field's text; numbers are accepted as their decimal text.
    fn text(&mut self, field: &'static str) -> Option<String> {
        self.used.insert(field);
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => self.fail(field, format!("must be a string, got {}", kind_of(other))),
        }
    }

    fn required(&mut self, field: &'static str) -> Option<String> {
        let before = self.errors.len();
        match self.text(field) {
            Some(s) => Some(s),
            None if self.errors.len() > before => None,
            None => self.fail(field, "is required"),
        }
    }

    fn required_text(&mut self, field: &'static str, max_chars: usize) -> Option<String> {
        let s = self.required(field)?;
        if s.chars().count() > max_chars {
            return self.fail(field, format!("is longer than {max_chars} characters"));
        }
        let s = match super::text::clean(&s) {
            Ok(s) => s,
            Err(why) => return self.fail(field, why),
        };
        Some(s)
    }

    fn id(&mut self, field: &'static str) -> Option<RecordId> {
        let s = self.required(field)?;
        RecordId::parse(&s).map_err(|r| self.errors.push(FieldError::new(field, r))).ok()
    }

    fn date(&mut self, field: &'static str) -> Option<NaiveDate> {
        let s = self.required(field)?;
        parse_date(&s).map_err(|r| self.errors.push(FieldError::new(field, r))).ok()
    }

    fn optional_date(&mut self, field: &'static str) -> Option<Option<NaiveDate>> {
        let before = self.errors.len();
        match self.text(field) {
            None if self.errors.len() > before => None,
            None => Some(None),
            Some(s) => parse_date(&s).map(Some).map_err(|r| self.errors.push(FieldError::new(field, r))).ok(),
        }
    }

    fn code(&mut self, field: &'static str, allow: &AllowList) -> Option<CreditCode> {
        let s = self.required(field)?;
        match CreditCode::parse(&s, allow) {
            Ok((code, CodeCheck::Valid)) => Some(code),
            Ok((code, CodeCheck::AllowListed)) => {
                self.warnings.push(format!(
                    "credit code {code} fails the GB 32100-2015 checksum and is accepted only because it is on the operator's allow-list"
                ));
                Some(code)
            }
            Err(e) => self.fail(field, format!("credit code {e}")),
        }
    }

    fn word<T>(&mut self, field: &'static str, parse: fn(&str) -> Option<T>, expected: fn() -> String) -> Option<T> {
        let s = self.required(field)?;
        match parse(&s) {
            Some(v) => Some(v),
            None => self.fail(field, format!("unknown value '{}', expected one of: {}", shown(&s), expected())),
        }
    }

    fn integer(&mut self, field: &'static str) -> Option<i64> {
        let s = self.required(field)?;
        s.parse::<i64>().map_err(|_| self.errors.push(FieldError::new(field, format!("'{}' is not a whole number", shown(&s))))).ok()
    }

    fn optional_number(&mut self, field: &'static str) -> Option<Option<f64>> {
        let before = self.errors.len();
        match self.text(field) {
            None if self.errors.len() > before => None,
            None => Some(None),
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(Some(v)),
                _ => self.fail(field, format!("'{}' is not a number", shown(&s))),
            },
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates one record given as a JSON object with a `type` field.
pub fn parse_record(obj: &Map<String, Value>, rules: InputRules<'_>) -> Result<Parsed, Vec<FieldError>> {
    let mut f = Fields { obj, used: BTreeSet::new(), errors: Vec::new(), warnings: Vec::new() };
    let Some(record_type) = f.word("type", RecordType::parse, RecordType::expected) else {
        return Err(f.errors);
    };
    let record = match record_type {
        RecordType::Evaluation => evaluation(&mut f, rules),
        RecordType::ListEntry => list_entry(&mut f, rules),
        RecordType::Penalty => penalty(&mut f, rules),
        RecordType::Commitment => commitment(&mut f, rules),
        RecordType::Event => event(&mut f, rules),
    };
    for key in obj.keys() {
        if !f.used.contains(key.as_str()) {
            f.errors.push(FieldError::new(super::text::shown(key), format!("is not a field of a {record_type} record")));
        }
    }
    match record {
        Some(record) if f.errors.is_empty() => Ok(Parsed { record, warnings: f.warnings }),
        _ => {
            if f.errors.is_empty() {
                f.errors.push(FieldError::new("type", "record is incomplete"));
            }
            Err(f.errors)
        }
    }
}

fn domain(f: &mut Fields<'_>) -> Option<CreditDomain> {
    let s = f.required("domain")?;
    if WATER_RESOURCES_WORDS.iter().any(|w| w.eq_ignore_ascii_case(&s)) {
        return f
            .fail("domain", format!("'{}' is the water-resources sector (水利), which is not transport credit and is refused", shown(&s)));
    }
    match CreditDomain::parse(&s) {
        Some(d) => Some(d),
        None => f.fail("domain", format!("unknown credit domain '{}', expected one of: {}", shown(&s), CreditDomain::expected())),
    }
}

fn grade(f: &mut Fields<'_>) -> Option<Grade> {
    let s = f.required("grade")?;
    if s.eq_ignore_ascii_case("AAA") {
        return f.fail("grade", "'AAA' is a water-resources (水利) grade, not a transport credit grade (AA, A, B, C, D)");
    }
    match Grade::parse(&s) {
        Some(g) => Some(g),
        None => f.fail("grade", format!("unknown grade '{}', expected one of: {}", shown(&s), Grade::expected())),
    }
}

// Long because: one line per field of an evaluation, read and checked in the input format's order.
fn evaluation(f: &mut Fields<'_>, rules: InputRules<'_>) -> Option<Record> {
    let id = f.id("id");
    let document_ref = f.required_text("document_ref", 512);
    let credit_code = f.code("credit_code", rules.allow_list);
    let entity_name = f.required_text("entity_name", 256);
    let domain = domain(f);
    let issuer = f.required("issuer").and_then(|s| match Issuer::parse(&s) {
        Ok(i) => Some(i),
        Err(e) => f.fail("issuer", format!("'{}': {e}; use \"national\" or a province code", shown(&s))),
    });
    let year = f.integer("year").and_then(|y| {
        if (1990..=2100).contains(&y) { Some(y as i32) } else { f.fail("year", format!("{y} is not a plausible evaluation year")) }
    });
    let grade = grade(f);
    let score = f.optional_number("score");
    let valid_from = f.date("valid_from");
    let valid_to = f.date("valid_to");
    let kind = match f.text("evaluation_kind") {
        None => Some(EvaluationKind::Annual),
        Some(s) => EvaluationKind::parse(&s).or_else(|| {
            f.fail("evaluation_kind", format!("unknown value '{}', expected one of: {}", shown(&s), EvaluationKind::expected()))
        }),
    };
    let region = match f.text("region") {
        None => Some(None),
        Some(s) => match RegionCode::parse(&s) {
            Ok(r) => Some(Some(r)),
            Err(e) => f.fail("region", e.to_string()),
        },
    };
    let status = match f.text("status") {
        None => Some(EvaluationStatus::Published),
        Some(s) => EvaluationStatus::parse(&s)
            .or_else(|| f.fail("status", format!("unknown value '{}', expected one of: {}", shown(&s), EvaluationStatus::expected()))),
    };

    if let (Some(from), Some(to)) = (valid_from, valid_to)
        && to < from
    {
        f.fail::<()>("valid_to", format!("{to} is before valid_from {from}"));
    }
    if let (Some(kind), Some(region), Some(grade)) = (kind, region, grade) {
        match kind {
            EvaluationKind::DynamicD if grade != Grade::D => {
                f.fail::<()>("grade", format!("a dynamic downgrade sets grade D, got {grade}"));
            }
            EvaluationKind::DynamicD if region.is_none() => {
                f.fail::<()>("region", "is required for a dynamic_d evaluation (where the downgrade applies)");
            }
            EvaluationKind::Annual if region.is_some() => {
                f.fail::<()>("region", "applies only to dynamic_d evaluations");
            }
            _ => {}
        }
    }
    // A province sets a firm to D within its own province (the whole of it,
    // or one city or county); only the Ministry may name any region.
    if let (Some(Issuer::Province(p)), Some(Some(r)), Some(EvaluationKind::DynamicD)) = (issuer, region, kind)
        && r.province() != p
    {
        f.fail::<()>("region", format!("{r} is outside issuer {p}'s province: a province sets a dynamic D only within itself"));
    }
    if let (Some(Some(score)), Some(domain), Some(grade), Some(EvaluationKind::Annual)) = (score, domain, grade, kind)
        && let Err(reason) = rules.score_bands.check(domain, grade, score)
    {
        f.fail::<()>("score", reason);
    }
    Some(Record::Evaluation(Evaluation {
        id: id?,
        document_ref: document_ref?,
        credit_code: credit_code?,
        entity_name: entity_name?,
        domain: domain?,
        issuer: issuer?,
        year: year?,
        grade: grade?,
        score: score?,
        valid_from: valid_from?,
        valid_to: valid_to?,
        evaluation_kind: kind?,
        region: region?,
        status: status?,
    }))
}

fn list_entry(f: &mut Fields<'_>, rules: InputRules<'_>) -> Option<Record> {
    let id = f.id("id");
    let document_ref = f.required_text("document_ref", 512);
    let credit_code = f.code("credit_code", rules.allow_list);
    let entity_name = f.required_text("entity_name", 256);
    let list = f.word("list", ListKind::parse, ListKind::expected);
    let authority = f.required_text("authority", 256);
    let decision_number = f.required_text("decision_number", 256);
    let listed_on = f.date("listed_on");
    let expires_on = f.optional_date("expires_on");
    if let (Some(from), Some(Some(to))) = (listed_on, expires_on)
        && to < from
    {
        f.fail::<()>("expires_on", format!("{to} is before listed_on {from}"));
    }
    Some(Record::ListEntry(ListEntry {
        id: id?,
        document_ref: document_ref?,
        credit_code: credit_code?,
        entity_name: entity_name?,
        list: list?,
        authority: authority?,
        decision_number: decision_number?,
        listed_on: listed_on?,
        expires_on: expires_on?,
    }))
}

fn penalty(f: &mut Fields<'_>, rules: InputRules<'_>) -> Option<Record> {
    let id = f.id("id");
    let document_ref = f.required_text("document_ref", 512);
    let credit_code = f.code("credit_code", rules.allow_list);
    let entity_name = f.required_text("entity_name", 256);
    let decision_number = f.required_text("decision_number", 256);
    let authority = f.required_text("authority", 256);
    let decided_on = f.date("decided_on");
    let category = f.word("category", PenaltyCategory::parse, PenaltyCategory::expected);
    let min_end = f.date("min_publication_end");
    let max_end = f.date("max_publication_end");
    if let (Some(d), Some(min)) = (decided_on, min_end)
        && min < d
    {
        f.fail::<()>("min_publication_end", format!("{min} is before decided_on {d}"));
    }
    if let (Some(min), Some(max)) = (min_end, max_end)
        && max < min
    {
        f.fail::<()>("max_publication_end", format!("{max} is before min_publication_end {min}"));
    }
    if let (Some(c), Some(d), Some(min), Some(max)) = (category, decided_on, min_end, max_end)
        && min >= d
        && max >= min
        && let Some((field, reason)) = rules.publication.check(c, d, min, max)
    {
        f.fail::<()>(field, reason);
    }
    Some(Record::Penalty(Penalty {
        id: id?,
        document_ref: document_ref?,
        credit_code: credit_code?,
        entity_name: entity_name?,
        decision_number: decision_number?,
        authority: authority?,
        decided_on: decided_on?,
        category: category?,
        min_publication_end: min_end?,
        max_publication_end: max_end?,
    }))
}

fn commitment(f: &mut Fields<'_>, rules: InputRules<'_>) -> Option<Record> {
    let id = f.id("id");
    let document_ref = f.required_text("document_ref", 512);
    let credit_code = f.code("credit_code", rules.allow_list);
    let entity_name = f.required_text("entity_name", 256);
    let commitment_kind = f.required_text("commitment_kind", 256);
    let made_on = f.date("made_on");
    let status = f.word("status", CommitmentStatus::parse, CommitmentStatus::expected);
    let breached_on = f.optional_date("breached_on");
    match (status, breached_on) {
        (Some(CommitmentStatus::Breached), Some(None)) => {
            f.fail::<()>("breached_on", "is required when status is breached");
        }
        (Some(CommitmentStatus::Kept), Some(Some(_))) => {
            f.fail::<()>("breached_on", "must be empty when status is kept");
        }
        _ => {}
    }
    if let (Some(made), Some(Some(b))) = (made_on, breached_on)
        && b < made
    {
        f.fail::<()>("breached_on", format!("{b} is before made_on {made}"));
    }
    Some(Record::Commitment(Commitment {
        id: id?,
        document_ref: document_ref?,
        credit_code: credit_code?,
        entity_name: entity_name?,
        commitment_kind: commitment_kind?,
        made_on: made_on?,
        status: status?,
        breached_on: breached_on?,
    }))
}

fn event(f: &mut Fields<'_>, rules: InputRules<'_>) -> Option<Record> {
    let id = f.id("id");
    let document_ref = f.required_text("document_ref", 512);
    let credit_code = f.code("credit_code", rules.allow_list);
    let target_id = f.id("target_id");
    let event = f.word("event", EventKind::parse, EventKind::expected);
    let effective_on = f.date("effective_on");
    if let (Some(id), Some(target)) = (&id, &target_id)
        && id == target
    {
        f.fail::<()>("target_id", "an event cannot target itself");
    }
    Some(Record::Event(RecordEvent {
        id: id?,
        document_ref: document_ref?,
        credit_code: credit_code?,
        target_id: target_id?,
        event: event?,
        effective_on: effective_on?,
    }))
}
