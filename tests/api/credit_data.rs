//! `CreditDataService` over gRPC on 127.0.0.1, on each backend.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use pb::record::Kind;
use tonic::Code;
use tonic_types::StatusExt;

fn evaluation(id: &str, code: &str, grade: &str, score: Option<f64>) -> pb::Record {
    pb::Record {
        kind: Some(Kind::Evaluation(pb::Evaluation {
            id: id.into(),
            document_ref: "测试公告〔2026〕1号".into(),
            credit_code: code.into(),
            entity_name: "测试路桥有限公司".into(),
            domain: "highway_construction".into(),
            issuer: "440000".into(),
            year: 2025,
            grade: grade.into(),
            score,
            valid_from: "2026-03-01".into(),
            valid_to: "2027-02-28".into(),
            ..Default::default()
        })),
    }
}

fn blacklist(id: &str, code: &str, listed_on: &str, expires_on: &str) -> pb::Record {
    pb::Record {
        kind: Some(Kind::ListEntry(pb::ListEntry {
            id: id.into(),
            document_ref: "测试名单".into(),
            credit_code: code.into(),
            entity_name: "测试路桥有限公司".into(),
            list: "transport_blacklist".into(),
            authority: "测试省交通运输厅".into(),
            decision_number: "测决〔2026〕1号".into(),
            listed_on: listed_on.into(),
            expires_on: expires_on.into(),
        })),
    }
}

fn event(id: &str, code: &str, target: &str, kind: &str, on: &str) -> pb::Record {
    pb::Record {
        kind: Some(Kind::Event(pb::RecordEvent {
            id: id.into(),
            document_ref: "测试修复".into(),
            credit_code: code.into(),
            target_id: target.into(),
            event: kind.into(),
            effective_on: on.into(),
        })),
    }
}

fn put(records: Vec<pb::Record>) -> pb::PutRecordsRequest {
    pb::PutRecordsRequest { records, source: "test".into() }
}

fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries google.rpc.BadRequest")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn at(date: &str) -> Option<pbjson_types::Timestamp> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    // Noon in Shanghai.
    let ts = d.and_hms_opt(4, 0, 0).unwrap().and_utc().timestamp();
    Some(pbjson_types::Timestamp { seconds: ts, nanos: 0 })
}

#[tokio::test]
async fn bad_batches_get_a_violation_per_record_and_store_nothing() {
    for db in backends().await {
        let server = spawn_app(open(&db).await, AppOptions::default()).await;
        let mut client = server.credit_data().await;
        client.put_records(put(vec![evaluation("e0", CODE_A, "A", Some(90.0))])).await.unwrap();
        let before = snapshot(&db.url).await;

        let mut missing = evaluation("e3", CODE_C, "B", None);
        if let Some(Kind::Evaluation(e)) = &mut missing.kind {
            e.entity_name.clear();
        }
        let status = client
            .put_records(put(vec![
                evaluation("e1", CODE_B, "A", Some(88.0)),
                evaluation("e2", "9144A300192317458F", "A", None),
                missing,
                evaluation("e4", CODE_C, "AAA", None),
                evaluation("e5", CODE_C, "AA", Some(80.0)),
                pb::Record { kind: None },
                event("ev1", CODE_B, "nope", "repair", "2026-01-01"),
                evaluation("e0", CODE_A, "B", Some(80.0)),
                evaluation("e0", CODE_A, "C", Some(70.0)),
            ]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "[{}] {status:?}", db.backend);
        let v = violations(&status);
        let has = |field: &str, start: &str| {
            assert!(v.iter().any(|(f, d)| f == field && d.starts_with(start)), "[{}] no violation {field}: {start}… in {v:#?}", db.backend)
        };
        has("records[1].credit_code", "credit code has a non-digit region code '44A300'");
        has("records[2].entity_name", "is required");
        has("records[3].grade", "'AAA' is a water-resources (水利) grade");
        has("records[4].score", "80 lies in grade B's band, not AA's");
        has("records[5].kind", "is required");
        has("records[6].target_id", "event 'ev1' targets unknown record 'nope'");
        has("records[8].id", "'e0' appears earlier in this batch with different content");
        assert_eq!(v.len(), 7, "{v:#?}");
        assert_eq!(snapshot(&db.url).await, before, "[{}] a rejected batch changed the store", db.backend);

        let status = client.put_records(put(vec![])).await.unwrap_err();
        assert_eq!(violations(&status), vec![("records".to_owned(), "is empty: send at least one record".to_owned())]);
    }
}

#[tokio::test]
async fn versions_supersede_and_old_state_stays_readable() {
    for db in backends().await {
        let server = spawn_app(open(&db).await, AppOptions::default()).await;
        let mut client = server.credit_data().await;
        let r1 = client
            .put_records(put(vec![evaluation("e1", CODE_A, "A", Some(90.0)), blacklist("b1", CODE_A, "2026-05-01", "2027-04-30")]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r1.data_version, r1.stored, r1.unchanged), (1, 2, 0));
        assert_eq!(r1.changed_credit_codes, vec![CODE_A.to_owned()]);

        // Identical again: nothing new, no new data version.
        let same = client.put_records(put(vec![evaluation("e1", CODE_A, "A", Some(90.0))])).await.unwrap().into_inner();
        assert_eq!((same.data_version, same.stored, same.unchanged), (1, 0, 1));

        // New content for e1 (a corrected grade), and a repair of the blacklist entry.
        let r2 = client
            .put_records(put(vec![evaluation("e1", CODE_A, "AA", Some(96.0)), event("rep1", CODE_A, "b1", "repair", "2026-08-01")]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r2.data_version, r2.stored), (2, 2));

        let now = client
            .get_profile(pb::GetProfileRequest { credit_code: CODE_A.to_lowercase(), as_of: at("2026-09-01"), data_version: None })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(now.credit_code, CODE_A);
        assert_eq!(now.data_version, 2);
        assert_eq!(now.as_of_date, "2026-09-01");
        let e1 = now.records.iter().find(|r| r.recorded_version == 2).expect("e1 v2");
        match e1.record.as_ref().unwrap().kind.as_ref().unwrap() {
            Kind::Evaluation(e) => assert_eq!((e.id.as_str(), e.grade.as_str()), ("e1", "AA")),
            other => panic!("{other:?}"),
        }
        assert_eq!(e1.history.len(), 1);
        assert_eq!(e1.history[0].superseded_at, 2);
        match e1.history[0].record.as_ref().unwrap().kind.as_ref().unwrap() {
            Kind::Evaluation(e) => assert_eq!(e.grade, "A"),
            other => panic!("{other:?}"),
        }
        let b1 = now.records.iter().find(|r| matches!(&r.record.as_ref().unwrap().kind, Some(Kind::ListEntry(_)))).unwrap();
        assert_eq!(b1.state, "ended", "{b1:?}");
        assert_eq!(b1.events.len(), 1);
        assert_eq!(b1.events[0].event.as_ref().unwrap().event, "repair");

        // Before the repair took effect the entry was in force.
        let july = client
            .get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), as_of: at("2026-07-01"), data_version: None })
            .await
            .unwrap()
            .into_inner();
        let b1 = july.records.iter().find(|r| matches!(&r.record.as_ref().unwrap().kind, Some(Kind::ListEntry(_)))).unwrap();
        assert_eq!(b1.state, "in_force");

        // As of data version 1: the old grade, no repair.
        let old = client
            .get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), as_of: at("2026-09-01"), data_version: Some(1) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(old.data_version, 1);
        assert_eq!(old.records.len(), 2);
        for r in &old.records {
            assert_eq!(r.recorded_version, 1);
            assert!(r.history.is_empty() && r.events.is_empty());
            if let Some(Kind::Evaluation(e)) = &r.record.as_ref().unwrap().kind {
                assert_eq!(e.grade, "A");
            } else {
                assert_eq!(r.state, "in_force");
            }
        }

        let status =
            client.get_profile(pb::GetProfileRequest { credit_code: CODE_A.into(), as_of: None, data_version: Some(9) }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violations(&status)[0].0, "data_version");

        let status = client
            .get_profile(pb::GetProfileRequest { credit_code: "914403001923174580".into(), as_of: None, data_version: None })
            .await
            .unwrap_err();
        assert_eq!(
            violations(&status),
            vec![("credit_code".to_owned(), "credit code has check character '0' but the checksum gives 'F'".to_owned())]
        );
    }
}

#[tokio::test]
async fn allow_listed_pilot_code_is_accepted_with_a_warning() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let mut client = server.credit_data().await;
    client.put_records(put(vec![evaluation("p1", PILOT, "A", Some(88.0))])).await.unwrap();
    let p = client
        .get_profile(pb::GetProfileRequest { credit_code: PILOT.into(), as_of: None, data_version: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("allow-list"), "{:?}", p.warnings);
    // A code one character off is not on the list.
    let status = client.put_records(put(vec![evaluation("p2", "91350100M0001TGQXN", "A", None)])).await.unwrap_err();
    assert!(violations(&status)[0].1.starts_with("credit code has check character 'N'"));
}

#[tokio::test]
async fn an_unknown_code_has_an_empty_profile() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let mut client = server.credit_data().await;
    let p = client
        .get_profile(pb::GetProfileRequest { credit_code: CODE_C.into(), as_of: None, data_version: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.data_version, p.records.len()), (0, 0));
}

/// A new version of a record id cannot move the record to another firm:
/// the first firm's profile would lose it at every later data version (and
/// the events on it with it). Refused by field, nothing stored.
#[tokio::test]
async fn a_new_version_cannot_move_a_record_to_another_credit_code() {
    for db in backends().await {
        let server = spawn_app(open(&db).await, AppOptions::default()).await;
        let mut client = server.credit_data().await;
        client.put_records(put(vec![evaluation("e1", CODE_A, "C", None)])).await.unwrap();
        let before = snapshot(&db.url).await;
        let err = client.put_records(put(vec![evaluation("e1", CODE_B, "AA", None)])).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "[{}] {err:?}", db.backend);
        let details = tonic_types::StatusExt::get_error_details(&err);
        let v = &details.bad_request().expect("field violations").field_violations[0];
        assert_eq!(v.field, "records[0].credit_code", "[{}]", db.backend);
        assert!(
            v.description.contains(&format!("'e1' is a record of credit code {CODE_A}; a new version cannot move it to {CODE_B}")),
            "{}",
            v.description
        );
        assert_eq!(snapshot(&db.url).await, before, "[{}] nothing stored", db.backend);
    }
}
