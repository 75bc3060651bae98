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
//! 3. The points invariant (issue 20), for random policies, evaluation
//!    methods, rewards and consortia: each stage is at least 0 and at most
//!    its own limit (the cap less the stages before it), the stages add up
//!    exactly to the total, and the total is at most the cap; a reward's
//!    reason says what it gave and what the cap cut, and they add up to the
//!    reward. Checked on the assessment, on the signed statement's JSON
//!    payload, and on the committee table's and CSV's cells as the page
//!    writes them from that payload (`Number(x).toFixed(2)`).
//! 4. Events and versions (issue 20): in random histories of writes, where
//!    records get later content versions and events come in between, an
//!    objection raised against an older version does not touch a newer
//!    content version: the same history without that event gives the same
//!    outcome. An event on the current version that changes the grade is
//!    itself the reason, and the evidence names the record it ended.
//!
//! 1, 2 and 4 under the national template, which counts an evaluation under
//! objection until decided. (A policy that skips contested grades changes
//! grades on purpose when an objection is filed.)

use super::fixtures::{CODE, history, policy, profile, profile_of, tender};
use super::{Assessment, MemberInput, Policy, evaluate};
use crate::domain::records::{EventKind, RecordType};
use crate::domain::{Bidder, CreditCode, EvaluationMethod, Points};
use proptest::prelude::*;
use serde_json::{Value, json};

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
        let targets: Vec<(String, RecordType)> =
            out.iter().map(|v| (v["id"].as_str().unwrap().to_owned(), RecordType::parse(v["type"].as_str().unwrap()).unwrap())).collect();
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
            s.push_str(&format!(" {} ", e.note.en.replace([',', ';', ':'], " ")));
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

/// Points as a policy file writes them: a decimal with two places.
fn decimal(hundredths: i32) -> String {
    Points(hundredths).to_string()
}

/// A random valid policy: the national template with its cap, both stage
/// tables, the reward's points, the reward lists, the stages per method and
/// the new entrant's benefit drawn at random (every grade's stages within the
/// cap, as the loader demands).
fn policies() -> impl Strategy<Value = Policy> {
    let cap = 0..=500i32;
    let tables = proptest::collection::vec((0..=500i32, 0..=500i32), 5);
    let extra = 0..=500i32;
    // Mostly the red list (so that rewards come up), sometimes others or none.
    let reward_lists = (proptest::bool::weighted(0.8), proptest::sample::subsequence(LISTS.to_vec(), 0..=2)).prop_map(|(red, mut l)| {
        if red && !l.contains(&"transport_red_list") {
            l.push("transport_red_list");
        }
        l
    });
    let stages = proptest::collection::vec(0..4usize, 3);
    (cap, tables, extra, reward_lists, stages, any::<bool>()).prop_map(|(cap, tables, extra, reward_lists, stages, benefit)| {
        let mut text = include_str!("../../policies/national-template.toml").to_owned();
        let mut swap = |from: &str, to: String| {
            assert!(text.contains(from), "{from}");
            text = text.replacen(from, &to, 1);
        };
        let (q, e): (Vec<i32>, Vec<i32>) = tables
            .iter()
            .map(|&(q, e)| {
                let q = q % (cap + 1);
                (q, e % (cap - q + 1))
            })
            .unzip();
        let table = |v: &[i32]| {
            let cells: Vec<String> = GRADES.iter().zip(v).map(|(g, p)| format!("{g} = {}", decimal(*p))).collect();
            format!("{{ {} }}", cells.join(", "))
        };
        swap("cap = 3.0", format!("cap = {}", decimal(cap)));
        swap("qualification = { AA = 1.0, A = 0.5, B = 0, C = 0, D = 0 }", format!("qualification = {}", table(&q)));
        swap("evaluation    = { AA = 2.0, A = 1.0, B = 0, C = 0, D = 0 }", format!("evaluation = {}", table(&e)));
        swap("extra_evaluation_points = 0.5", format!("extra_evaluation_points = {}", decimal(extra % (cap + 1))));
        let lists: Vec<String> = reward_lists.iter().map(|l| format!("{l:?}")).collect();
        swap("lists = [\"transport_red_list\"]", format!("lists = [{}]", lists.join(", ")));
        let stage_sets = [r#"[]"#, r#"["qualification"]"#, r#"["evaluation"]"#, r#"["qualification", "evaluation"]"#];
        swap(
            "stages_by_method = { comprehensive_scoring = [\"qualification\", \"evaluation\"], reasonable_low_price = [\"qualification\"], lowest_evaluated_price = [\"qualification\"] }",
            format!(
                "stages_by_method = {{ comprehensive_scoring = {}, reasonable_low_price = {}, lowest_evaluated_price = {} }}",
                stage_sets[stages[0]], stage_sets[stages[1]], stage_sets[stages[2]]
            ),
        );
        swap("credit_benefit = false", format!("credit_benefit = {benefit}"));
        Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    })
}

/// A consortium of one to three members, each with random records and,
/// often, an entry on the red list (so that rewards come up).
fn consortia() -> impl Strategy<Value = Vec<Vec<Value>>> {
    proptest::collection::vec((records(), proptest::bool::weighted(0.85)), 1..=3).prop_map(|members| {
        members
            .into_iter()
            .map(|(mut lines, red)| {
                if red {
                    lines.push(json!({"type": "list_entry", "id": "red", "entity_name": "x", "list": "transport_red_list",
                        "authority": "a", "decision_number": "n", "listed_on": "2026-01-01"}));
                }
                lines
            })
            .collect()
    })
}

fn member_code(i: usize) -> CreditCode {
    CreditCode::with_check_character(&format!("91440300MA{:07}", 900 + i)).unwrap()
}

fn assess_consortium(policy: &Policy, method: EvaluationMethod, members: &[Vec<Value>]) -> (crate::domain::Tender, Assessment) {
    let codes: Vec<CreditCode> = (0..members.len()).map(member_code).collect();
    let profiles: Vec<_> = members.iter().zip(&codes).map(|(lines, code)| profile_of(code, lines)).collect();
    let inputs: Vec<MemberInput<'_>> = codes.iter().zip(&profiles).map(|(code, profile)| MemberInput { code, profile }).collect();
    let mut t = tender("440300");
    t.terms.evaluation_method = method;
    let a = evaluate(&t, policy, &inputs, None);
    (t, a)
}

/// The invariant on three figures in hundredths and the cap.
fn invariant(what: &str, q: i64, e: i64, total: i64, cap: i64) -> Result<(), TestCaseError> {
    prop_assert!(q >= 0 && q <= cap, "{what}: qualification {q} outside 0..={cap}");
    prop_assert!(e >= 0 && e <= cap - q, "{what}: evaluation {e} outside 0..={} (the cap less qualification)", cap - q);
    prop_assert_eq!(q + e, total, "{}: the stages do not add up to the total", what);
    prop_assert!(total <= cap, "{what}: total {total} above the cap {cap}");
    Ok(())
}

/// A payload number as the page reads it (`Number(s.x)`) and writes it into
/// a table cell and a CSV cell (`toFixed(2)`), back in exact hundredths.
fn cell(payload: &Value, key: &str) -> i64 {
    let x = payload[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {payload}"));
    let shown = format!("{x:.2}");
    let (whole, frac) = shown.split_once('.').unwrap();
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    whole.parse::<i64>().unwrap() * 100 + sign * frac.parse::<i64>().unwrap()
}

/// A reward reason's "X points given, Y points cut", in hundredths.
fn given_and_cut(message: &str) -> Option<(i32, i32)> {
    let given = message.split(" points given, ").next()?.rsplit(' ').next()?;
    let cut = message.split(" points given, ").nth(1)?.split(' ').next()?;
    Some((Points::from_decimal(given.parse().ok()?).ok()?.0, Points::from_decimal(cut.parse().ok()?).ok()?.0))
}

const METHODS: [EvaluationMethod; 3] =
    [EvaluationMethod::ComprehensiveScoring, EvaluationMethod::ReasonableLowPrice, EvaluationMethod::LowestEvaluatedPrice];

/// One write of a random history: new records, later content versions of
/// earlier ones, and events on what is stored so far.
#[derive(Debug, Clone)]
enum Step {
    /// A new version of the `n`th record so far (wrapping), with the grade
    /// (evaluations) or document reference (others) changed.
    Correct(prop::sample::Index, usize),
    /// An event of the `k`th kind its target accepts, effective on a date.
    Event(prop::sample::Index, usize, usize),
}

fn histories() -> impl Strategy<Value = Vec<Vec<Value>>> {
    let step = prop_oneof![
        (any::<prop::sample::Index>(), 0..5usize).prop_map(|(i, g)| Step::Correct(i, g)),
        (any::<prop::sample::Index>(), 0..5usize, 0..DATES.len()).prop_map(|(i, k, d)| Step::Event(i, k, d)),
    ];
    let batches = proptest::collection::vec(proptest::collection::vec(step, 1..3), 1..5);
    (records(), batches).prop_map(|(first, batches)| {
        // The first write: every record with no event (events come later).
        let originals: Vec<Value> = first.into_iter().filter(|v| v["type"] != "event").collect();
        let mut current: Vec<Value> = originals.clone();
        let mut out = vec![originals];
        let mut n = 0;
        for steps in batches {
            if current.is_empty() {
                break;
            }
            let mut batch: Vec<Value> = Vec::new();
            for step in steps {
                match step {
                    Step::Correct(i, g) => {
                        let k = i.index(current.len());
                        let mut v = current[k].clone();
                        if batch.iter().any(|b| b["id"] == v["id"]) {
                            continue; // one version of an id per write
                        }
                        if v["type"] == "evaluation" && v["evaluation_kind"] != "dynamic_d" {
                            v["grade"] = GRADES[g].into();
                        }
                        v["document_ref"] = format!("corrected {n}").into();
                        n += 1;
                        current[k] = v.clone();
                        batch.push(v);
                    }
                    Step::Event(i, kind, on) => {
                        let target = &current[i.index(current.len())];
                        let accepted = RecordType::parse(target["type"].as_str().unwrap()).unwrap().accepted_events();
                        let event: EventKind = accepted[kind % accepted.len()];
                        batch.push(json!({"type": "event", "id": format!("v{n}"), "target_id": target["id"], "event": event.as_str(),
                            "effective_on": DATES[on]}));
                        n += 1;
                    }
                }
            }
            out.push(batch);
        }
        out
    })
}

/// The rest of the objection `event_id` belongs to on `target`: for a
/// filing, the decisions taken on it; for a decision, its filing and the
/// other decisions of the same write (within one write filings count
/// first, and decisions have no order among them, so each decides the
/// filing pending once that write's filings are counted). Empty
/// for a filing not yet decided, a decision with no pending filing, or
/// another event.
fn objection_partners(batches: &[Vec<Value>], target: &str, event_id: &str) -> Vec<String> {
    let mut pending: Option<String> = None;
    for batch in batches {
        let on_target = |kind: &'static str| {
            batch
                .iter()
                .filter(move |v| v["type"] == "event" && v["target_id"] == target && v["event"] == kind)
                .map(|v| v["id"].as_str().unwrap().to_owned())
        };
        if let Some(filing) = on_target("objection_filed").next_back() {
            pending = Some(filing);
        }
        let decisions: Vec<String> = on_target("objection_upheld").chain(on_target("objection_rejected")).collect();
        if decisions.is_empty() {
            continue;
        }
        if let Some(filing) = pending.take() {
            let objection: Vec<String> = decisions.into_iter().chain([filing]).collect();
            if objection.iter().any(|id| id == event_id) {
                return objection.into_iter().filter(|id| id != event_id).collect();
            }
        }
    }
    Vec::new()
}

fn assess_history(batches: &[Vec<Value>]) -> Assessment {
    let p = history(batches);
    let code = CreditCode::parse_strict(CODE).unwrap();
    evaluate(&tender("440300"), &policy(), &[MemberInput { code: &code, profile: &p }], None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn points_stay_within_each_stage_and_the_cap_on_every_statement_table_and_csv(
        policy in policies(),
        method in 0..3usize,
        members in consortia(),
    ) {
        let method = METHODS[method];
        let (tender, a) = assess_consortium(&policy, method, &members);
        let cap = i64::from(a.cap.0);
        invariant("assessment", a.qualification_points.0.into(), a.evaluation_points.0.into(), a.total_points.0.into(), cap)?;

        // The reward's reason: given and cut add up to the reward, and the
        // evaluation stage grew by exactly what was given.
        let reward = a.reasons.iter().find(|r| r.effect == super::Effect::Reward);
        if let Some(r) = reward.filter(|_| policy.awards(method, super::Stage::Evaluation)) {
            let (given, cut) = given_and_cut(&r.message.en).ok_or_else(|| TestCaseError::fail(format!("no points in '{}'", r.message.en)))?;
            prop_assert_eq!(given + cut, policy.reward_extra_evaluation_points.0, "{}", r.message.en);
            let mut unrewarded = policy.clone();
            unrewarded.reward_lists.clear();
            let (_, plain) = assess_consortium(&unrewarded, method, &members);
            prop_assert_eq!(a.evaluation_points.0 - plain.evaluation_points.0, given, "{}", r.message.en);
        }

        // The signed statement's payload, and the committee's row and CSV
        // line the page builds from it.
        let codes: Vec<CreditCode> = (0..members.len()).map(member_code).collect();
        let bidder = Bidder::new(codes).unwrap();
        let statement = crate::service::statement::statement(&tender, &policy, &bidder, &a, 1, chrono::DateTime::UNIX_EPOCH);
        let payload: Value = serde_json::from_slice(&serde_json::to_vec(&statement).unwrap()).unwrap();
        let (q, e, t, c) = (
            cell(&payload, "qualificationPoints"),
            cell(&payload, "evaluationPoints"),
            cell(&payload, "totalPoints"),
            cell(&payload, "pointsCap"),
        );
        prop_assert_eq!(c, cap);
        invariant("committee table and CSV", q, e, t, c)?;
        prop_assert_eq!((q, e, t), (i64::from(a.qualification_points.0), i64::from(a.evaluation_points.0), i64::from(a.total_points.0)));
    }

    #[test]
    fn a_later_content_version_counts_after_an_event_on_an_older_one(batches in histories()) {
        let with = assess_history(&batches);
        let profile = history(&batches);
        for (b, batch) in batches.iter().enumerate() {
            for event in batch.iter().filter(|v| v["type"] == "event") {
                let target = event["target_id"].as_str().unwrap();
                let mut rest = batches.clone();
                rest[b].retain(|v| v["id"] != event["id"]);
                // An objection is left out whole, its filing with the decision
                // taken on it: a decision concerns the version its pending
                // filing was raised against, so leaving out only one of the two
                // would pair the other with another event and move it onto
                // another version. Paired as the profile pairs them: in write
                // order, filings before decisions within one write, and every
                // decision of one write on the filing pending before it.
                let partners = objection_partners(&batches, target, event["id"].as_str().unwrap());
                for batch in rest.iter_mut() {
                    batch.retain(|v| !partners.iter().any(|p| v["id"] == p.as_str()));
                }
                let without = assess_history(&rest);
                // A content version of the target written after the event,
                // or in the same write (the target itself was written
                // before: the first write holds every original).
                let corrected_later = batches[b..].iter().flatten().any(|v| v["id"] == target);
                let kind = EventKind::parse(event["event"].as_str().unwrap()).unwrap();
                if kind.concerns_one_version() && corrected_later {
                    prop_assert_eq!(
                        outcome(&with), outcome(&without),
                        "{} raised against an older version of {} changed the outcome:\n{:?}", event, target, batches
                    );
                    let current = profile.records.iter().find(|s| s.record.id().as_str() == target).unwrap();
                    let applies = profile.events_for(current).any(|e| e.id.as_str() == event["id"].as_str().unwrap());
                    prop_assert!(!applies, "{} applies to the later version of {}", event, target);
                } else if with.applied_grade != without.applied_grade {
                    // The event is itself the reason: it ended or contested
                    // the target's current version, and the statement shows it.
                    let t = batches.iter().flatten().find(|v| v["id"] == target).unwrap();
                    let bad = matches!(t["type"].as_str(), Some("list_entry" | "penalty" | "commitment"));
                    prop_assert!(
                        bad || named(&with).contains(&format!(" {target} ")),
                        "{} changed the grade from {} to {} without the statement naming {}:\n{:?}",
                        event, without.applied_grade, with.applied_grade, target, batches
                    );
                }
            }
        }
    }
}
