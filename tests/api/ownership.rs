//! Records belong to their writer: over TLS, a Shanxi provider (issuer
//! 140000, its authority, commitments; by client certificate) owns a
//! firm's grade, blacklist entry, penalty, commitment and an objection; a
//! Guangdong provider (issuer 440000, its own authority and commitments; by
//! token) tries to version, revoke, or put an event on each of them, with
//! every event type each accepts, or sends a byte-identical copy of one.
//! Every attempt is PERMISSION_DENIED naming
//! the record id and its owner, and the store is unchanged. The two
//! overwrites reported in issue 18 are among them. Then the operator's
//! import may version any owner's record, but not move it to another owner.

use crate::access::{Certs, clients, spawn_secure_with, tls_channel};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

const SX_AUTHORITY: &str = "山西省交通运输厅";
const GD_AUTHORITY: &str = "广东省交通运输厅";
const GD_TOKEN: &str = "ct_gd-provider-ownership";

fn principals() -> String {
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, GD_TOKEN.as_bytes()));
    format!(
        r#"
[[principal]]
name = "sx-provider"
role = "provider"
issuers = ["140000"]
authorities = ["{SX_AUTHORITY}"]
commitments = true
certificate_subject = "CN=sx-provider"

[[principal]]
name = "gd-provider"
role = "provider"
issuers = ["440000"]
authorities = ["{GD_AUTHORITY}"]
commitments = true
token_sha256 = "{sha}"
"#
    )
}

/// `v` with `extra`'s fields set.
fn with(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn put(records: Vec<Value>) -> pb::PutRecordsRequest {
    pb::PutRecordsRequest { records: records.into_iter().map(to_proto).collect(), source: String::new() }
}

/// Shanxi's records of one firm.
fn shanxi(code: &str) -> Vec<Value> {
    vec![
        evaluation_json("SX-E1", code, json!({"issuer": "140000", "grade": "B", "score": null})),
        with(list_entry_json("SX-BL1", code, "transport_blacklist"), json!({"authority": SX_AUTHORITY})),
        penalty_json("SX-P1", code, json!({"authority": SX_AUTHORITY})),
        commitment_json("SX-C1", code, json!({})),
        event_json("SX-EV1", code, "SX-E1", "objection_filed", "2026-06-01"),
    ]
}

/// What Guangdong tries, each alone: (what, the record, the id and the owner the refusal must name).
fn attempts(code: &str) -> Vec<(String, Value, &'static str, &'static str)> {
    let mut v: Vec<(String, Value, &'static str, &'static str)> = vec![
        // Issue 18, as reported: Shanxi's grade B replaced by an AA under Guangdong's issuer.
        (
            "the grade, under its own issuer".into(),
            evaluation_json("SX-E1", code, json!({"issuer": "440000", "grade": "AA", "score": null})),
            "SX-E1",
            "140000",
        ),
        // Issue 18, as reported: the blacklist entry, under Guangdong's authority, expired.
        (
            "the blacklist entry, under its own authority".into(),
            with(list_entry_json("SX-BL1", code, "transport_blacklist"), json!({"authority": GD_AUTHORITY, "expires_on": "2026-06-30"})),
            "SX-BL1",
            SX_AUTHORITY,
        ),
        (
            "the penalty, under its own authority".into(),
            penalty_json("SX-P1", code, json!({"authority": GD_AUTHORITY, "max_publication_end": "2026-12-31"})),
            "SX-P1",
            SX_AUTHORITY,
        ),
        (
            "the commitment".into(),
            commitment_json("SX-C1", code, json!({"status": "breached", "breached_on": "2026-03-01"})),
            "SX-C1",
            "sx-provider",
        ),
        (
            "the objection, retargeted at its own grade".into(),
            event_json("SX-EV1", code, "GD-E1", "objection_filed", "2026-06-01"),
            "SX-EV1",
            "140000",
        ),
        ("the objection, upheld".into(), event_json("SX-EV1", code, "SX-E1", "objection_upheld", "2026-06-01"), "SX-EV1", "140000"),
        // Revocations and versions that keep Shanxi as the owner.
        (
            "a revocation of the grade".into(),
            evaluation_json("SX-E1", code, json!({"issuer": "140000", "grade": "B", "score": null, "status": "revoked"})),
            "SX-E1",
            "140000",
        ),
        (
            "the blacklist entry, expired, under Shanxi's authority".into(),
            with(list_entry_json("SX-BL1", code, "transport_blacklist"), json!({"authority": SX_AUTHORITY, "expires_on": "2026-06-30"})),
            "SX-BL1",
            SX_AUTHORITY,
        ),
    ];
    // Byte-identical copies of each of Shanxi's records (and its event): no
    // "unchanged" OK for a record that is not the writer's.
    let owners: [(&'static str, &'static str); 5] =
        [("SX-E1", "140000"), ("SX-BL1", SX_AUTHORITY), ("SX-P1", SX_AUTHORITY), ("SX-C1", "sx-provider"), ("SX-EV1", "140000")];
    for (record, (id, owner)) in shanxi(code).into_iter().zip(owners) {
        v.push((format!("a byte-identical copy of {id}"), record, id, owner));
    }
    // Every event each of Shanxi's records accepts.
    let accepted: [(&str, &'static str, &'static str, &[&str]); 4] = [
        ("SX-E1", "SX-E1", "140000", &["objection_filed", "objection_upheld", "objection_rejected"]),
        ("SX-BL1", "SX-BL1", SX_AUTHORITY, &["repair", "removal", "objection_filed", "objection_upheld", "objection_rejected"]),
        ("SX-P1", "SX-P1", SX_AUTHORITY, &["repair", "removal", "objection_filed", "objection_upheld", "objection_rejected"]),
        ("SX-C1", "SX-C1", "sx-provider", &["objection_filed", "objection_upheld", "objection_rejected"]),
    ];
    for (target, id, owner, events) in accepted {
        for event in events {
            let record = event_json(&format!("GD-{target}-{event}"), code, target, event, "2026-10-01");
            v.push((format!("a {event} on {target}"), record, id, owner));
        }
    }
    v
}

#[tokio::test]
async fn a_provider_cannot_version_revoke_or_event_another_providers_records() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure_with(&db, &certs, &principals()).await;
        let mut sx = clients(&tls_channel(server.addr, &certs, Some("sx-provider")).await, None);
        let mut gd = clients(&tls_channel(server.addr, &certs, None).await, Some(GD_TOKEN));
        let code = crate::assessment::code(1801);
        sx.data.put_records(put(shanxi(&code))).await.unwrap();
        // Guangdong's own grade of the firm: its to write, and a target for the retargeting attempt.
        gd.data.put_records(put(vec![evaluation_json("GD-E1", &code, json!({"issuer": "440000", "year": 2024}))])).await.unwrap();
        let before = snapshot(&db.url).await;

        for (what, record, id, owner) in attempts(&code) {
            let status = gd.data.put_records(put(vec![record])).await.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "[{}] {what}: {status:?}", db.backend);
            let message = status.message();
            assert!(
                message.contains(&format!("'{id}'")) && message.contains(owner),
                "[{}] {what}: the refusal names the id and its owner: {message}",
                db.backend
            );
        }
        assert_eq!(snapshot(&db.url).await, before, "[{}] refused writes store nothing", db.backend);

        // A whole batch is refused for one such record, and says which.
        let mut batch = vec![evaluation_json("GD-E2", &code, json!({"issuer": "440000", "year": 2023}))];
        batch.push(with(list_entry_json("SX-BL1", &code, "transport_blacklist"), json!({"authority": GD_AUTHORITY})));
        let status = gd.data.put_records(put(batch)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("records[1].authority: 'SX-BL1' belongs to authority '山西省交通运输厅', named by its first version"),
            "{}",
            status.message()
        );
        assert_eq!(snapshot(&db.url).await, before, "[{}] nothing of the batch is stored", db.backend);

        // The owner still versions and ends its own records.
        let corrected =
            with(list_entry_json("SX-BL1", &code, "transport_blacklist"), json!({"authority": SX_AUTHORITY, "expires_on": "2027-06-30"}));
        sx.data.put_records(put(vec![corrected, event_json("SX-R1", &code, "SX-BL1", "repair", "2026-10-01")])).await.unwrap();
        sx.data
            .put_records(put(vec![commitment_json("SX-C1", &code, json!({"status": "breached", "breached_on": "2026-03-01"}))]))
            .await
            .unwrap();
        // Even the owner may not move its record to another owner.
        let status = sx
            .data
            .put_records(put(vec![evaluation_json("SX-E1", &code, json!({"issuer": "440000", "grade": "B", "score": null}))]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "[{}] {status:?}", db.backend);
    }
}

#[tokio::test]
async fn the_operators_import_versions_any_owners_record_but_never_moves_it() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure_with(&db, &certs, &principals()).await;
        let mut sx = clients(&tls_channel(server.addr, &certs, Some("sx-provider")).await, None);
        let code = crate::assessment::code(1802);
        sx.data.put_records(put(shanxi(&code))).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let before = snapshot(&db.url).await;

        let moved = with(list_entry_json("SX-BL1", &code, "transport_blacklist"), json!({"authority": GD_AUTHORITY}));
        let f = file(dir.path(), "moved.jsonl", jsonl(&[moved]));
        let out = cli(&["import", "--db", &db.url, f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65), "[{}] {}", db.backend, stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("moved.jsonl:1: authority: 'SX-BL1' belongs to authority '山西省交通运输厅', named by its first version"),
            "{err}"
        );
        assert!(err.contains("a record keeps its owner"), "{err}");
        assert_eq!(snapshot(&db.url).await, before, "[{}] nothing imported", db.backend);

        // A corrected grade from the operator, under the same issuer: a new version.
        let corrected = evaluation_json("SX-E1", &code, json!({"issuer": "140000", "grade": "A", "score": null}));
        let f = file(dir.path(), "corrected.jsonl", jsonl(&[corrected]));
        let out = cli(&["import", "--db", &db.url, f.to_str().unwrap()]);
        assert!(out.status.success(), "[{}] {}", db.backend, stderr(&out));
    }
}

/// Runs `sql` (one or more statements) on a test database of either backend.
async fn execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// Data written before the rule needs no migration: a record overwritten
/// then (a version under another authority, as the old code stored it)
/// still belongs to the owner of its first version, every row is kept, and
/// its owner can put it right.
#[tokio::test]
async fn a_record_overwritten_before_the_rule_still_belongs_to_its_first_owner() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure_with(&db, &certs, &principals()).await;
        let mut sx = clients(&tls_channel(server.addr, &certs, Some("sx-provider")).await, None);
        let mut gd = clients(&tls_channel(server.addr, &certs, None).await, Some(GD_TOKEN));
        let code = crate::assessment::code(1804);
        sx.data.put_records(put(shanxi(&code))).await.unwrap();
        // The overwrite issue 18 reported, stored as the old code stored it.
        let hijack = to_record(with(
            list_entry_json("SX-BL1", &code, "transport_blacklist"),
            json!({"authority": GD_AUTHORITY, "expires_on": "2026-06-30"}),
        ));
        let body = hijack.canonical_json();
        let digest = credit_tender::domain::records::digest_of(&body);
        execute(
            &db.url,
            &format!(
                "INSERT INTO data_versions (version, recorded_at, source, record_count) \
                   SELECT MAX(version) + 1, '2026-11-01T00:00:00Z', 'gd-provider', 1 FROM data_versions; \
                 INSERT INTO records (record_id, version, kind, credit_code, digest, body) \
                   SELECT 'SX-BL1', MAX(version), 'list_entry', '{code}', '{digest}', '{}' FROM data_versions",
                body.replace('\'', "''")
            ),
        )
        .await;
        let before = snapshot(&db.url).await;
        let again =
            with(list_entry_json("SX-BL1", &code, "transport_blacklist"), json!({"authority": GD_AUTHORITY, "expires_on": "2026-07-31"}));
        let status = gd.data.put_records(put(vec![again])).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "[{}] {status:?}", db.backend);
        assert!(
            status.message().contains("'SX-BL1' belongs to authority '山西省交通运输厅', named by its first version"),
            "{}",
            status.message()
        );
        assert_eq!(snapshot(&db.url).await, before, "[{}]", db.backend);
        // Shanxi puts its entry back: a new version under its own authority; every row stays.
        let restored = with(list_entry_json("SX-BL1", &code, "transport_blacklist"), json!({"authority": SX_AUTHORITY}));
        sx.data.put_records(put(vec![restored])).await.unwrap();
        let after = snapshot(&db.url).await;
        assert!(before.iter().all(|row| after.contains(row)), "[{}] every row is kept", db.backend);
        assert_eq!(after.iter().filter(|r| r.starts_with("SX-BL1@")).count(), 3, "[{}] {after:?}", db.backend);
    }
}
