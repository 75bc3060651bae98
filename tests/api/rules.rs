//! The credit rules as a credit authority would check them, one rule per
//! test, each through the gRPC API on both stores; the ingest refusals also
//! through `import` and `import --dry-run`, leaving the store as it was.

use crate::assessment::{Fixture, code, deadline, terms};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

const Y: &str = "2026-01-01";
const Z: &str = "2027-12-31";

fn eval(id: &str, c: &str, issuer: &str, grade: &str) -> Value {
    evaluation_json(id, c, json!({"issuer": issuer, "grade": grade, "score": null, "valid_from": Y, "valid_to": Z}))
}

fn reasons(s: &pb::AssessmentStatement) -> Vec<(&str, &str)> {
    s.reasons.iter().map(|r| (r.code.as_str(), r.effect.as_str())).collect()
}

/// Stores `setup`, then sends `bad` through PutRecords, `import --dry-run` and
/// `import`: each must refuse it naming `field` (and a reason containing
/// `reason`), and the store must be as it was.
async fn refused_everywhere(db: &TestDb, setup: &[Value], bad: &[Value], field: &str, reason: &str) {
    let mut f = Fixture::new(db).await;
    if !setup.is_empty() {
        f.put(setup).await;
    }
    let before = snapshot(&db.url).await;
    let records = bad.iter().cloned().map(to_proto).collect();
    let status = f.data.put_records(pb::PutRecordsRequest { records, source: "t".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "[{}] {status:?}", db.backend);
    let details = tonic_types::StatusExt::get_details_bad_request(&status).expect("field violations");
    let line = bad.len() - 1;
    let v = &details.field_violations[0];
    assert_eq!(v.field, format!("records[{line}].{field}"), "[{}] {details:?}", db.backend);
    assert!(v.description.contains(reason), "[{}] {}", db.backend, v.description);

    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "bad.jsonl", jsonl(bad));
    for dry in [true, false] {
        let mut args = vec!["import", "--db", &db.url, path.to_str().unwrap()];
        if dry {
            args.push("--dry-run");
        }
        let out = cli(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "[{}] dry-run {dry}: {err}", db.backend);
        let want = format!("{}:{}: {field}: ", path.display(), bad.len());
        assert!(err.contains(&want) && err.contains(reason), "[{}] dry-run {dry}: lacks '{want}…{reason}':\n{err}", db.backend);
    }
    assert_eq!(snapshot(&db.url).await, before, "[{}] the store changed", db.backend);
}

#[tokio::test]
async fn rule_1_a_repair_or_removal_cannot_end_an_evaluation() {
    for db in backends().await {
        let c = code(301);
        let setup = [eval("e-c", &c, "440000", "C")];
        for kind in ["repair", "removal"] {
            let bad = [event_json("ev", &c, "e-c", kind, "2026-06-01")];
            refused_everywhere(&db, &setup, &bad, "event", "cannot end an evaluation").await;
        }
        // The grade stands: C, refused at qualification, not a clean new entrant.
        let mut f = Fixture::new(&db).await;
        f.put(&setup).await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("T1", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.qualified), ("C", false), "[{}]", db.backend);
    }
}

#[tokio::test]
async fn rule_2_events_on_commitments_are_objections_and_an_upheld_one_clears_the_breach() {
    for db in backends().await {
        let c = code(302);
        let breach = commitment_json("com", &c, json!({"status": "breached", "breached_on": "2026-05-01"}));
        let setup = [eval("e", &c, "440000", "AA"), breach.clone()];
        refused_everywhere(&db, &setup, &[event_json("r", &c, "com", "repair", "2026-07-01")], "event", "does not accept a repair").await;

        let mut f = Fixture::new(&db).await;
        f.put(&setup).await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("T1", &[&c]).await;
        assert!(reasons(&s).contains(&("COMMITMENT_BREACHED", "bonus")) && !s.credit_benefit, "[{}] {s:?}", db.backend);
        f.put(&[event_json("o1", &c, "com", "objection_filed", "2026-06-01")]).await;
        let (s, _) = f.assess("T1", &[&c]).await;
        assert!(reasons(&s).contains(&("COMMITMENT_BREACHED", "bonus")), "a pending objection: the breach counts until decided");
        assert!(s.warnings.iter().any(|w| w.contains("com") && w.contains("under objection")), "{:?}", s.warnings);
        f.put(&[event_json("o2", &c, "com", "objection_upheld", "2026-07-01")]).await;
        let (s, _) = f.assess("T1", &[&c]).await;
        assert!(s.reasons.is_empty() && s.credit_benefit, "[{}] an upheld objection clears the breach: {s:?}", db.backend);
        assert_eq!(s.total_points, 3.0);
    }
}

#[tokio::test]
async fn rule_3_an_upheld_objection_ends_a_penalty_at_once_a_repair_waits_for_the_minimum() {
    for db in backends().await {
        let (upheld, repaired) = (code(303), code(304));
        let safety = |id: &str, c: &str| {
            penalty_json(
                id,
                c,
                json!({"category": "work_safety", "min_publication_end": "2027-06-01", "max_publication_end": "2029-05-31"}),
            )
        };
        let mut f = Fixture::new(&db).await;
        f.put(&[
            eval("eu", &upheld, "440000", "AA"),
            safety("pu", &upheld),
            eval("er", &repaired, "440000", "AA"),
            safety("pr", &repaired),
        ])
        .await;
        f.put(&[
            event_json("ou", &upheld, "pu", "objection_upheld", "2026-08-01"),
            event_json("rr", &repaired, "pr", "repair", "2026-08-01"),
        ])
        .await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("T1", &[&upheld]).await;
        assert!(s.reasons.is_empty() && s.credit_benefit, "[{}] the penalty was wrong: no waiting: {s:?}", db.backend);
        let (s, _) = f.assess("T1", &[&repaired]).await;
        assert_eq!(reasons(&s)[0], ("PENALTY_IN_PUBLICATION", "bonus"), "[{}] a repair waits for the 1-year minimum", db.backend);
    }
}

#[tokio::test]
async fn rule_4_publication_periods_follow_the_penalty_category() {
    for db in backends().await {
        let c = code(305);
        let short = penalty_json("p", &c, json!({"category": "work_safety", "min_publication_end": "2026-09-01"}));
        refused_everywhere(&db, &[], &[short], "min_publication_end", "less than 12 months after decided_on 2026-06-01").await;
        let long = penalty_json("p", &c, json!({"max_publication_end": "2029-06-02"}));
        refused_everywhere(&db, &[], &[long], "max_publication_end", "more than 36 months after decided_on").await;
        let mut f = Fixture::new(&db).await;
        f.put(&[penalty_json("p", &c, json!({}))]).await; // general: 3 months to 3 years, as the sources say
    }
}

#[tokio::test]
async fn rule_5_a_lapsed_grade_is_carried_over_as_the_policy_says_with_a_warning() {
    for db in backends().await {
        let c = code(306);
        let mut f = Fixture::new(&db).await;
        f.put(&[evaluation_json(
            "old",
            &c,
            json!({"issuer": "440000", "grade": "AA", "score": null, "year": 2024,
            "valid_from": "2025-03-01", "valid_to": "2026-02-28"}),
        )])
        .await;
        f.tender("GAP", "national-template", "440300", "2026-04-15").await;
        f.tender("LATE", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("GAP", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("AA", "carried_over"), "[{}]", db.backend);
        let step = s.member_grades[0].evidence.last().unwrap();
        assert_eq!((step.step.as_str(), step.outcome.as_str(), step.record_id.as_str()), ("carried_over", "chosen", "old"));
        assert!(s.warnings.iter().any(|w| w.contains("expired on 2026-02-28") && w.contains("carries it over")), "{:?}", s.warnings);
        assert!(s.credit_benefit);
        let (s, _) = f.assess("LATE", &[&c]).await;
        assert_eq!(s.member_grades[0].source, "new_entrant", "[{}] past the carry-over months", db.backend);
    }
}

#[tokio::test]
async fn rule_6_a_second_grade_for_one_year_is_refused_and_a_correction_is_a_new_version() {
    for db in backends().await {
        let c = code(307);
        let first = eval("g1", &c, "440000", "B");
        refused_everywhere(
            &db,
            std::slice::from_ref(&first),
            &[eval("g2", &c, "440000", "AA")],
            "id",
            "send a corrected result as a new version of 'g1'",
        )
        .await;
        let mut f = Fixture::new(&db).await;
        f.put(&[first]).await;
        f.put(&[eval("g1", &c, "440000", "A")]).await; // the corrected result
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("T1", &[&c]).await;
        assert_eq!(s.applied_grade, "A", "[{}]", db.backend);
    }
}

#[tokio::test]
async fn rule_7_credit_points_only_at_the_stages_the_method_scores() {
    for db in backends().await {
        let c = code(308);
        let mut f = Fixture::new(&db).await;
        f.put(&[eval("e", &c, "440000", "AA")]).await;
        let mut t = terms("440300", "2026-12-15");
        t.evaluation_method = "lowest_evaluated_price".into();
        let req = pb::RegisterTenderRequest { tender_id: "LOW".into(), terms: Some(t), policy_id: "national-template".into() };
        f.tenders.register_tender(req).await.unwrap();
        let (s, _) = f.assess("LOW", &[&c]).await;
        assert_eq!((s.qualification_points, s.evaluation_points, s.total_points), (1.0, 0.0, 1.0), "[{}]", db.backend);
        assert_eq!(reasons(&s), vec![("NO_EVALUATION_POINTS_FOR_METHOD", "points")]);
        assert!(s.reasons[0].message.contains("lowest_evaluated_price"), "{}", s.reasons[0].message);
        assert!(s.credit_benefit && s.deposit_basis == "waived", "the method takes points, not the other benefits");
    }
}

#[tokio::test]
async fn rule_8_a_dynamic_d_applies_at_its_level_and_only_within_its_issuers_province() {
    for db in backends().await {
        let c = code(309);
        let dyn_d = |id: &str, issuer: &str, region: &str| {
            evaluation_json(
                id,
                &c,
                json!({"issuer": issuer, "grade": "D", "score": null, "evaluation_kind": "dynamic_d",
                "region": region, "year": 2026, "valid_from": "2026-10-01", "valid_to": "2027-09-30"}),
            )
        };
        refused_everywhere(&db, &[], &[dyn_d("x", "440000", "140000")], "region", "outside issuer 440000's province").await;
        let mut f = Fixture::new(&db).await;
        f.put(&[eval("e", &c, "440000", "A"), dyn_d("d", "440000", "440100")]).await;
        f.tender("SZ", "national-template", "440300", "2026-12-15").await;
        f.tender("GZ", "national-template", "440106", "2026-12-15").await;
        let (s, _) = f.assess("SZ", &[&c]).await;
        assert_eq!(s.applied_grade, "A", "[{}] Guangzhou's D does not apply in Shenzhen", db.backend);
        let (s, _) = f.assess("GZ", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("D", "dynamic_d"), "[{}]", db.backend);
    }
}

#[tokio::test]
async fn rule_9_red_list_holders_earn_the_joint_reward() {
    for db in backends().await {
        let (aa, b, plain) = (code(310), code(311), code(312));
        let red = |id: &str, c: &str| list_entry_json(id, c, "transport_red_list");
        let mut f = Fixture::new(&db).await;
        f.put(&[
            eval("ea", &aa, "440000", "AA"),
            red("ra", &aa),
            eval("eb", &b, "440000", "B"),
            red("rb", &b),
            eval("ep", &plain, "440000", "B"),
        ])
        .await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let (s, _) = f.assess("T1", &[&aa]).await;
        assert_eq!(reasons(&s), vec![("REWARD_TRANSPORT_RED_LIST", "reward")], "[{}]", db.backend);
        assert_eq!((s.reasons[0].credit_code.as_str(), s.reasons[0].record_id.as_str()), (aa.as_str(), "ra"));
        assert_eq!((s.evaluation_points, s.total_points), (2.0, 3.0), "AA fills the cap already: the reward gives what fits, nothing");
        let (s, _) = f.assess("T1", &[&b]).await;
        assert_eq!((s.deposit_share_percent, s.deposit_owed_fen), (50, 5_000_000), "[{}] at most half the deposit", db.backend);
        assert_eq!((s.qualification_points, s.evaluation_points, s.total_points), (0.0, 0.5, 0.5), "[{}] the extra points fit", db.backend);
        assert!(s.reasons[0].message.contains("0.50 points given, 0.00 points cut"), "{}", s.reasons[0].message);
        let (s, _) = f.assess("T1", &[&plain]).await;
        assert_eq!((s.deposit_share_percent, s.evaluation_points), (100, 0.0));
        let (s, _) = f.assess("T1", &[&b, &plain]).await;
        assert!(s.reasons.iter().all(|r| r.effect != "reward"), "a consortium is rewarded only if every member is");

        // A holder whose credit benefit is withheld is told the reward was
        // not granted, beside the reason that withheld it.
        let withheld = code(319);
        f.put(&[eval("ew", &withheld, "440000", "B"), red("rw", &withheld), penalty_json("pw", &withheld, json!({}))]).await;
        let (s, _) = f.assess("T1", &[&withheld]).await;
        let codes = reasons(&s);
        assert!(codes.contains(&("PENALTY_IN_PUBLICATION", "bonus")), "[{}] {codes:?}", db.backend);
        assert!(codes.contains(&("REWARD_WITHHELD_TRANSPORT_RED_LIST", "points")), "[{}] {codes:?}", db.backend);
        assert!(!codes.iter().any(|(c, _)| *c == "REWARD_TRANSPORT_RED_LIST"), "[{}] {codes:?}", db.backend);
        assert_eq!((s.deposit_share_percent, s.evaluation_points), (100, 0.0), "[{}]", db.backend);
    }
}

#[tokio::test]
async fn rule_10_the_bond_in_fen_and_the_deposit_ceiling() {
    for db in backends().await {
        let c = code(313);
        let mut f = Fixture::new(&db).await;
        f.put(&[eval("e", &c, "440000", "AA")]).await;
        f.tender("T1", "national-template", "440300", "2026-12-15").await;
        let bidder = Some(pb::Bidder { credit_codes: vec![c.clone()] });
        let req = pb::AssessRequest { tender_id: "T1".into(), bidder: bidder.clone(), contract_price_fen: Some(1_000_000_001) };
        let s = f.assess.assess(req).await.unwrap().into_inner().statement.unwrap();
        assert_eq!(
            (s.performance_bond_rate_bp, s.performance_bond_fen, s.contract_price_fen),
            (500, Some(50_000_001), Some(1_000_000_001))
        );
        let (plain, _) = f.assess("T1", &[&c]).await;
        assert_eq!(plain.performance_bond_fen, None, "no contract price, no amount");
        let bad = pb::AssessRequest { tender_id: "T1".into(), bidder, contract_price_fen: Some(0) };
        let status = f.assess.assess(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("contract_price_fen: must be positive"), "{}", status.message());

        // 2% of 100,000,000 yuan would allow 2,000,000 yuan; 900,000 yuan is over the 800,000 yuan ceiling.
        let mut t = terms("440300", "2026-12-15");
        t.estimated_price_fen = 10_000_000_000;
        t.nominal_deposit_fen = 90_000_000;
        let req = pb::RegisterTenderRequest { tender_id: "BIG".into(), terms: Some(t), policy_id: "national-template".into() };
        let status = f.tenders.register_tender(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "[{}]", db.backend);
        assert!(status.message().contains("terms.nominal_deposit_fen: ¥900,000.00 exceeds ¥800,000.00"), "{}", status.message());
    }
}

#[tokio::test]
async fn rule_4_the_publication_periods_file_can_be_replaced_and_is_checked() {
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let c = code(314);
    // A stricter operator file: general penalties at least 6 months.
    let stricter = include_str!("../../policies/publication-periods.toml").replace("general = 3 ", "general = 6 ");
    let periods = file(dir.path(), "periods.toml", stricter);
    let records = file(dir.path(), "p.jsonl", jsonl(&[penalty_json("p", &c, json!({}))]));
    let out = cli(&["import", "--db", &db.url, "--publication-periods", periods.to_str().unwrap(), records.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("min_publication_end: 2026-09-01 is less than 6 months after decided_on 2026-06-01"), "{}", stderr(&out));
    let broken = file(dir.path(), "broken.toml", "max_months = 36\n[min_months]\ngeneral = 3\n");
    let out = cli(&["import", "--db", &db.url, "--publication-periods", broken.to_str().unwrap(), records.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "a rule file is configuration");
    assert!(stderr(&out).contains(broken.to_str().unwrap()) && stderr(&out).contains("no value for category"), "{}", stderr(&out));
}

/// Issue 20, first case as written: a red-listed AA firm (R) and the same AA
/// without a list (C), comprehensive evaluation, deadline 2022-06-15. The
/// reward gives only what fits under the cap, so R's stages add up to its
/// total as C's do, and the reason says in points what was given and cut.
#[tokio::test]
async fn rule_11_per_stage_points_add_up_to_the_total_within_the_cap_after_a_reward() {
    for db in backends().await {
        let (r, c) = (code(315), code(316));
        let aa = |id: &str, firm: &str| {
            evaluation_json(
                id,
                firm,
                json!({"issuer": "440000", "grade": "AA", "score": null, "year": 2021,
                "valid_from": "2022-01-01", "valid_to": "2022-12-31"}),
            )
        };
        let mut red = list_entry_json("red-r", &r, "transport_red_list");
        red["listed_on"] = json!("2021-12-01");
        red["expires_on"] = json!("2024-11-30");
        let mut f = Fixture::new(&db).await;
        f.put(&[aa("aa-r", &r), red, aa("aa-c", &c)]).await;
        f.tender("T2022", "national-template", "440300", "2022-06-15").await;
        let (sr, _) = f.assess("T2022", &[&r]).await;
        let (sc, _) = f.assess("T2022", &[&c]).await;
        for s in [&sr, &sc] {
            assert_eq!(
                (s.qualification_points, s.evaluation_points, s.total_points, s.points_cap),
                (1.0, 2.0, 3.0, 3.0),
                "[{}] the stages add up to the total, within the cap: {s:?}",
                db.backend
            );
        }
        assert_eq!(reasons(&sr), vec![("REWARD_TRANSPORT_RED_LIST", "reward")], "[{}]", db.backend);
        let message = &sr.reasons[0].message;
        assert!(
            message.contains("0.00 points given") && message.contains("0.50 points cut by the cap of 3.00"),
            "[{}] the reason says in points what was given and what the cap cut: {message}",
            db.backend
        );
        assert!(!message.contains("within the cap"), "[{}] {message}", db.backend);
        // The deposit part of the reward is not points: it still applies.
        assert_eq!(sr.deposit_share_percent, 0, "[{}] AA's waiver is below the reward's at most 50%", db.backend);
    }
}

/// Issue 20, second case as written: provincial C (G) overturned by an
/// upheld objection effective 2022-03-01, a national B, deadline
/// 2022-06-15. B applies; then the issuer publishes the corrected result as
/// a new version of G, grade A, and that version counts.
#[tokio::test]
async fn rule_12_a_corrected_grade_published_after_an_upheld_objection_counts() {
    for db in backends().await {
        let c = code(317);
        let grade = |id: &str, issuer: &str, g: &str| {
            evaluation_json(
                id,
                &c,
                json!({"issuer": issuer, "grade": g, "score": null, "year": 2021,
                "valid_from": "2022-01-01", "valid_to": "2022-12-31"}),
            )
        };
        let mut f = Fixture::new(&db).await;
        f.put(&[grade("G", "440000", "C"), grade("N", "national", "B")]).await;
        f.put(&[event_json("upheld", &c, "G", "objection_upheld", "2022-03-01")]).await;
        f.tender("T2022", "national-template", "440300", "2022-06-15").await;
        let (s, _) = f.assess("T2022", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("B", "national"), "[{}]", db.backend);
        let provincial = &s.member_grades[0].evidence[1];
        assert!(provincial.note.contains("G does not count: objection_upheld"), "[{}] {}", db.backend, provincial.note);

        f.put(&[grade("G", "440000", "A")]).await; // the corrected result, a new version of G
        let (s, _) = f.assess("T2022", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("A", "provincial"), "[{}] {s:?}", db.backend);
        let provincial = &s.member_grades[0].evidence[1];
        assert_eq!((provincial.record_id.as_str(), provincial.grade.as_str()), ("G", "A"), "[{}]", db.backend);
        assert!(!provincial.note.contains("does not count"), "[{}] {}", db.backend, provincial.note);

        let profile = f
            .data
            .get_profile(pb::GetProfileRequest { credit_code: c.clone(), as_of: deadline("2022-06-15"), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let g = profile
            .records
            .iter()
            .find(|r| matches!(&r.record.as_ref().unwrap().kind, Some(pb::record::Kind::Evaluation(e)) if e.id == "G"))
            .unwrap();
        assert_eq!(g.state, "in_force", "[{}] the corrected version is not ended: {}", db.backend, g.state_reason);
        assert_eq!(g.history.len(), 1, "[{}] the overturned version is kept", db.backend);
    }
}

/// The order issue 20's first fix got wrong: an objection is filed against
/// G, the issuer publishes the corrected result while it is pending, and the
/// upheld decision is recorded after the correction. The decision concerns
/// the version the objection was filed against, so the correction counts.
#[tokio::test]
async fn rule_13_an_objection_decided_after_a_correction_ends_the_version_it_was_filed_against() {
    for db in backends().await {
        let c = code(318);
        let grade = |id: &str, issuer: &str, g: &str| {
            evaluation_json(
                id,
                &c,
                json!({"issuer": issuer, "grade": g, "score": null, "year": 2021,
                "valid_from": "2022-01-01", "valid_to": "2022-12-31"}),
            )
        };
        let mut f = Fixture::new(&db).await;
        f.put(&[grade("G", "440000", "C"), grade("N", "national", "B")]).await;
        f.put(&[event_json("filed", &c, "G", "objection_filed", "2022-02-01")]).await;
        f.put(&[grade("G", "440000", "A")]).await; // corrected while the objection is pending
        f.put(&[event_json("upheld", &c, "G", "objection_upheld", "2022-03-01")]).await;
        f.tender("T2022", "national-template", "440300", "2022-06-15").await;
        let (s, _) = f.assess("T2022", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("A", "provincial"), "[{}] {s:?}", db.backend);
        let provincial = &s.member_grades[0].evidence[1];
        assert_eq!((provincial.record_id.as_str(), provincial.grade.as_str()), ("G", "A"), "[{}]", db.backend);

        // A decision with no pending filing concerns what was published
        // before it: an upheld objection recorded now ends the correction.
        f.put(&[event_json("upheld-2", &c, "G", "objection_upheld", "2022-04-01")]).await;
        let (s, _) = f.assess("T2022", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("B", "national"), "[{}] {s:?}", db.backend);
    }
}

/// Two decisions on one filing recorded in one write (a platform sending
/// the appeal's outcome with the first instance's): a write has no order
/// within it, so both decide the filing pending before it and concern the
/// version it was filed against. Neither may take the other's place and
/// end the correction published while the objection was pending.
#[tokio::test]
async fn rule_13_decisions_in_one_write_decide_the_filing_pending_before_it() {
    for db in backends().await {
        let c = code(320);
        let grade = |g: &str| {
            evaluation_json(
                "G",
                &c,
                json!({"issuer": "440000", "grade": g, "score": null, "year": 2021,
                "valid_from": "2022-01-01", "valid_to": "2022-12-31"}),
            )
        };
        let mut f = Fixture::new(&db).await;
        f.put(&[grade("C")]).await;
        f.put(&[event_json("filed", &c, "G", "objection_filed", "2022-02-01"), grade("A")]).await;
        f.put(&[
            event_json("upheld", &c, "G", "objection_upheld", "2022-03-01"),
            event_json("rejected", &c, "G", "objection_rejected", "2022-03-01"),
        ])
        .await;
        f.tender("T2022", "national-template", "440300", "2022-06-15").await;
        let (s, _) = f.assess("T2022", &[&c]).await;
        assert_eq!((s.applied_grade.as_str(), s.member_grades[0].source.as_str()), ("A", "provincial"), "[{}] {s:?}", db.backend);
    }
}
