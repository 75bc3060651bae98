//! proto ⇄ domain for records.
//!
//! Both directions go through the JSON field names, which the proto and the
//! domain share exactly: a proto record is read as the same object a JSON Lines
//! line would be (so one validator, [`parse_record`], serves every input), and a
//! domain record is written back through protobuf's JSON mapping.

use crate::domain::Record;
use crate::domain::input::{FieldError, InputRules, Parsed, parse_record};
use crate::proto::v1 as pb;
use pb::record::Kind;
use serde_json::{Map, Value};

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn object<T: serde::Serialize>(record_type: &str, message: &T) -> Map<String, Value> {
    let Ok(Value::Object(camel)) = serde_json::to_value(message) else {
        return Map::new();
    };
    let mut obj: Map<String, Value> = camel.into_iter().map(|(k, v)| (snake_case(&k), v)).collect();
    obj.insert("type".into(), Value::String(record_type.into()));
    obj
}

/// Validates one proto record.
pub(crate) fn record_from_proto(r: &pb::Record, rules: InputRules<'_>) -> Result<Parsed, Vec<FieldError>> {
    let obj = match &r.kind {
        None => {
            return Err(vec![FieldError::new("kind", "is required: set one of evaluation, list_entry, penalty, commitment, event")]);
        }
        // JSON has no NaN or infinity: serde would turn them into null and drop the score.
        Some(Kind::Evaluation(m)) if m.score.is_some_and(|s| !s.is_finite()) => {
            let score = m.score.unwrap_or_default();
            return Err(vec![FieldError::new("score", format!("{score} is not a number a score can be"))]);
        }
        Some(Kind::Evaluation(m)) => object("evaluation", m),
        Some(Kind::ListEntry(m)) => object("list_entry", m),
        Some(Kind::Penalty(m)) => object("penalty", m),
        Some(Kind::Commitment(m)) => object("commitment", m),
        Some(Kind::Event(m)) => object("event", m),
    };
    parse_record(&obj, rules)
}

fn message<T: serde::de::DeserializeOwned>(record: &Record) -> T {
    let Value::Object(mut obj) = serde_json::to_value(record).expect("records serialise") else {
        unreachable!("records serialise as objects")
    };
    obj.remove("type");
    serde_json::from_value(Value::Object(obj)).expect("domain and proto records share their JSON field names")
}

/// A domain record as its proto message.
pub(crate) fn record_to_proto(record: &Record) -> pb::Record {
    let kind = match record {
        Record::Evaluation(_) => Kind::Evaluation(message(record)),
        Record::ListEntry(_) => Kind::ListEntry(message(record)),
        Record::Penalty(_) => Kind::Penalty(message(record)),
        Record::Commitment(_) => Kind::Commitment(message(record)),
        Record::Event(_) => Kind::Event(message(record)),
    };
    pb::Record { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    #[test]
    fn round_trip_through_proto() {
        let rules = Rules::shipped();
        let line = r#"{"type":"evaluation","id":"e1","document_ref":"交公路发〔2025〕1号","credit_code":"91440300192317458F","entity_name":"测试","domain":"highway_construction","issuer":"national","year":2025,"grade":"AA","score":96.5,"valid_from":"2026-01-01","valid_to":"2026-12-31"}"#;
        let obj: Map<String, Value> = serde_json::from_str(line).unwrap();
        let parsed = parse_record(&obj, rules.input()).unwrap();
        let proto = record_to_proto(&parsed.record);
        let again = record_from_proto(&proto, rules.input()).unwrap();
        assert_eq!(again.record, parsed.record);
    }
}
