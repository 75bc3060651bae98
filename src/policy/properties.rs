//! Properties of `evaluate` over random record sets (proptest):
//!
//! 1. An event (repair, removal, objection) never raises a bidder's grade
//!    above what the same records without it give, unless it ends a bad
//!    record (a list entry, a penalty, a breach) or overturns a grade by an
//!    upheld objection, which the evidence then names.
//! 2. Every record whose absence would change the outcome (grade, exclusion,
//!    qualification, benefit, points, deposit, bond) is named by the
//!    statement: in the grade evidence, a reason, or the new-entrant note.
//!
//! Under the national template, which counts an evaluation under objection
//! until decided. (A policy that skips contested grades changes grades on
//! purpose when an objection is filed.)

use super::fixtures::{policy, profile, tender, CODE};
use super::{evaluate, Assessment, MemberInput};
use crate::domain::records::{EventKind, RecordType};
use crate::domain::CreditCode;
use proptest::prelude::*;
use serde_json::{json, Value};

const GRADES: [&str; 5] = ["AA", "A", "B", "C", "D"];
const LISTS: [&str; 8] = [
    "transport_blacklist",
    "transport_red_list",
    "key_attention",
    "court_enforcement",
    "major_tax_violation",
    "market_serious_violation",
    "procurement_debarment",
    "overload_transport",
];
const DATES: [&str; 4] = ["2025-08-01", "2026-02-01", "2026-08-01", "2027-01-01"];

/// One generated evaluation: (issuer index, grade, year offset, dynamic D region or none, under objection).
type EvalSpec = (usize, usize, i32, Option<usize>, bool);

fn evaluation(i: usize, (issuer, grade, year, dynamic, contested): EvalSpec) -> Value {
    let issuer = ["national", "440000"][issuer];
    let year = 2024 + year;
    let mut v = json!({"type": "evaluation", "id": format!("e{i}"), "entity_name": "x", "domain": "highway_construction",
        "issuer": issuer, "year": year, "grade": GRADES[grade],
        "valid_from": format!("{}-03-01", year + 1), "valid_to": format!("{}-02-28", year + 2)});
    if let Some(r) = dynamic {
        v["issuer"] = "440000".into();
        v["grade"] = "D".into();
        v["evaluation_kind"] = "dynamic_d".into();
        v["region"] = ["440000", "440300", "440100"][r].into();
    }
    if contested {
        v["status"] = "under_objection".into();
    }
    v
}

/// A record set as the store would hold it (ingest rules respected: one
/// annual grade per issuer and year, events only of the kinds their target
/// accepts).
fn records() -> impl Strategy<Value = Vec<Value>> {
    let evals = proptest::collection::vec((0..2usize, 0..5usize, 0..3i32, proptest::option::weighted(0.2, 0..3usize), any::<bool>()), 0..4);
    let lists = proptest::collection::vec((0..LISTS.len(), any::<bool>()), 0..3);
    let penalty = any::<bool>();
    let commitment = proptest::option::of(any::<bool>());
    let events = proptest::collection::vec((any::<prop::sample::Index>(), 0..5usize, 0..DATES.len()), 0..4);
    (evals, lists, penalty, commitment, events).prop_map(|(evals, lists, penalty, commitment, events)| {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, spec) in evals.into_iter().enumerate() {
            if spec.3.is_none() && !seen.insert((spec.0, spec.2)) {
                continue;
            }
            out.push(evaluation(i, spec));
        }
        for (i, (list, expires)) in lists.into_iter().enumerate() {
            let mut v = json!({"type": "list_entry", "id": format!("l{i}"), "entity_name": "x", "list": LISTS[list],
                "authority": "a", "decision_number": "n", "listed_on": "2026-01-01"});
            if expires {
                v["expires_on"] = "2027-06-30".into();
            }
            out.push(v);
        }
        if penalty {
            out.push(json!({"type": "penalty", "id": "p0", "entity_name": "x", "decision_number": "n", "authority": "a",
                "decided_on": "2026-06-01", "category": "general", "min_publication_end": "2026-09-01",
                "max_publication_end": "2029-05-31"}));
        }
        if let Some(breached) = commitment {
            let mut v = json!({"type": "commitment", "id": "c0", "entity_name": "x", "commitment_kind": "k",
                "made_on": "2026-01-01", "status": "kept"});
            if breached {
                v["status"] = "breached".into();
                v["breached_on"] = "2026-05-01".into();
            }
            out.push(v);
        }
        let targets: Vec<(String, RecordType)> = out
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_owned(), RecordType::parse(v["type"].as_str().unwrap()).unwrap()))
            .collect();
        for (i, (target, kind, on)) in events.into_iter().enumerate() {
            if targets.is_empty() {
                break;
            }
            let (id, t) = &targets[target.index(targets.len())];
            let accepted = t.accepted_events();
            let event: EventKind = accepted[kind % accepted.len()];
            out.push(json!({"type": "event", "id": format!("v{i}"), "target_id": id, "event": event.as_str(), "effective_on": DATES[on]}));
        }
        out
    })
}

fn assess(lines: &[Value]) -> Assessment {
    let p = profile(lines);
    let code = CreditCode::parse_strict(CODE).unwrap();
    evaluate(&tender("440300"), &policy(), &[MemberInput { code: &code, profile: &p }], None)
}

/// What a committee acts on.
fn outcome(a: &Assessment) -> impl PartialEq + std::fmt::Debug {
    (a.applied_grade, a.eligible, a.qualified, a.credit_benefit, a.total_points, a.deposit_owed, a.performance_bond_rate_bp)
}

/// Every record id the statement names.
fn named(a: &Assessment) -> String {
    let mut s = String::new();
    for m in &a.members {
        for e in &m.evidence {
            if let Some((stored, _)) = &e.record {
                s.push_str(&format!(" {} ", stored.record.id()));
            }
            s.push_str(&format!(" {} ", e.note.replace([',', ';', ':'], " ")));
        }
    }
    for r in &a.reasons {
        if let Some(id) = &r.record_id {
            s.push_str(&format!(" {id} "));
        }
    }
    s
}

fn without(lines: &[Value], id: &str) -> Vec<Value> {
    lines.iter().filter(|v| v["id"] != id && v["target_id"] != id).cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn an_event_never_raises_a_grade_unless_it_ends_a_bad_record(lines in records()) {
        let with = assess(&lines);
        for event in lines.iter().filter(|v| v["type"] == "event") {
            let rest: Vec<Value> = lines.iter().filter(|v| v["id"] != event["id"]).cloned().collect();
            let before = assess(&rest);
            if with.applied_grade.rank() <= before.applied_grade.rank() {
                continue;
            }
            let target = lines.iter().find(|v| v["id"] == event["target_id"]).unwrap();
            let bad = matches!(target["type"].as_str(), Some("list_entry" | "penalty" | "commitment"));
            let overturned = event["event"] == "objection_upheld" && target["type"] == "evaluation";
            prop_assert!(bad || overturned, "{event} raised {} to {}", before.applied_grade, with.applied_grade);
            if overturned {
                let id = target["id"].as_str().unwrap();
                prop_assert!(named(&with).contains(&format!(" {id} ")), "the overturned grade {id} is not shown: {with:?}");
            }
        }
    }

    #[test]
    fn the_statement_names_every_record_that_changed_the_outcome(lines in records()) {
        let with = assess(&lines);
        let named = named(&with);
        for record in lines.iter().filter(|v| v["type"] != "event") {
            let id = record["id"].as_str().unwrap();
            let rest = without(&lines, id);
            if outcome(&assess(&rest)) != outcome(&with) {
                prop_assert!(named.contains(&format!(" {id} ")), "{id} changed the outcome but is not named:\n{named}\n{lines:?}");
            }
        }
    }
}
