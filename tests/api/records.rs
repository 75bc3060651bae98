//! The one record builder of the tests: every record starts as the JSON
//! Lines object a provider would send (valid by default, fields overridden
//! by `extra`), and becomes a gRPC message ([`to_proto`]) or a domain record
//! ([`to_record`]) from there, so every way in sees the same record.

use credit_tender::domain::Record;
use credit_tender::domain::input::parse_record;
use credit_tender::proto::v1 as pb;
use credit_tender::rules::Rules;
use serde_json::{Value, json};

/// `base` with `extra`'s fields set (a `null` removes the field).
fn with(mut base: Value, extra: Value) -> Value {
    for (k, val) in extra.as_object().expect("extra is an object") {
        if val.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = val.clone();
        }
    }
    base
}

/// A valid annual evaluation line for `code`, with fields overridden by `extra`.
pub(crate) fn evaluation_json(id: &str, code: &str, extra: Value) -> Value {
    let base = json!({
        "type": "evaluation", "id": id, "document_ref": "测试公告〔2026〕1号", "credit_code": code,
        "entity_name": "测试路桥有限公司", "domain": "highway_construction", "issuer": "440000",
        "year": 2025, "grade": "A", "score": 90.0, "valid_from": "2026-03-01", "valid_to": "2027-02-28"
    });
    with(base, extra)
}

pub(crate) fn list_entry_json(id: &str, code: &str, list: &str) -> Value {
    json!({
        "type": "list_entry", "id": id, "document_ref": "测试名单〔2026〕2号", "credit_code": code,
        "entity_name": "测试路桥有限公司", "list": list, "authority": "测试省交通运输厅",
        "decision_number": "测决〔2026〕2号", "listed_on": "2026-05-01", "expires_on": "2027-04-30"
    })
}

/// A general penalty decided on 2026-06-01, with fields overridden by `extra`.
pub(crate) fn penalty_json(id: &str, code: &str, extra: Value) -> Value {
    let base = json!({
        "type": "penalty", "id": id, "document_ref": "r", "credit_code": code, "entity_name": "x", "decision_number": "罚1",
        "authority": "a", "decided_on": "2026-06-01", "category": "general", "min_publication_end": "2026-09-01",
        "max_publication_end": "2029-05-31"
    });
    with(base, extra)
}

/// A kept commitment made on 2026-01-01, with fields overridden by `extra`.
pub(crate) fn commitment_json(id: &str, code: &str, extra: Value) -> Value {
    let base = json!({
        "type": "commitment", "id": id, "document_ref": "r", "credit_code": code, "entity_name": "x",
        "commitment_kind": "投标信用承诺", "made_on": "2026-01-01", "status": "kept"
    });
    with(base, extra)
}

/// An event of `kind` on record `target`, effective on `on`.
pub(crate) fn event_json(id: &str, code: &str, target: &str, kind: &str, on: &str) -> Value {
    json!({"type": "event", "id": id, "document_ref": "测试", "credit_code": code, "target_id": target, "event": kind, "effective_on": on})
}

pub(crate) fn jsonl(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string() + "\n").collect()
}

/// A record line as its gRPC message (the proto shares the JSON field names).
pub(crate) fn to_proto(mut v: Value) -> pb::Record {
    use pb::record::Kind;
    let obj = v.as_object_mut().unwrap();
    let t = obj.remove("type").unwrap();
    let body = Value::Object(obj.clone());
    let kind = match t.as_str().unwrap() {
        "evaluation" => Kind::Evaluation(serde_json::from_value(body).unwrap()),
        "list_entry" => Kind::ListEntry(serde_json::from_value(body).unwrap()),
        "penalty" => Kind::Penalty(serde_json::from_value(body).unwrap()),
        "commitment" => Kind::Commitment(serde_json::from_value(body).unwrap()),
        "event" => Kind::Event(serde_json::from_value(body).unwrap()),
        other => panic!("{other}"),
    };
    pb::Record { kind: Some(kind) }
}

/// A record line as a validated domain record.
#[allow(dead_code)]
pub(crate) fn to_record(v: Value) -> Record {
    let rules = Rules::shipped();
    parse_record(v.as_object().unwrap(), rules.input()).unwrap().record
}
