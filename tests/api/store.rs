//! The store's own contract, run against each backend: the change feed, event
//! checks, records that move between codes, and concurrent writers.

use crate::helpers::*;
use credit_tender::domain::{CreditCode, Record};
use credit_tender::store::{Store, StoreError, WriteMode};
use serde_json::json;

async fn write(store: &Store, records: Vec<Record>) -> Result<credit_tender::store::WriteOutcome, StoreError> {
    let mut items = records.into_iter().enumerate().map(|(i, r)| (i as u64, Ok(r)));
    store.write(&credit_tender::domain::ownership::Writer::operator("test"), &mut items, WriteMode::Commit).await
}

fn code(s: &str) -> CreditCode {
    CreditCode::parse_strict(s).unwrap()
}

/// A write of more firms than an outcome lists (an import of a year's
/// results) records every code in the change feed and counts them, and its
/// outcome lists none of them (`changed_codes` is empty past the limit).
#[tokio::test]
async fn a_write_of_more_codes_than_are_listed_counts_them_feeds_them_all_and_lists_none() {
    let db = sqlite_db();
    let store = Store::open(&db.url).await.unwrap();
    let n = credit_tender::store::CHANGED_CODES_LISTED as u32 + 1;
    let records = (0..n).map(|i| to_record(evaluation_json(&format!("e{i}"), &crate::assessment::code(100_000 + i), json!({})))).collect();
    let o = write(&store, records).await.unwrap();
    assert_eq!(o.changed_count, u64::from(n));
    assert!(o.changed_codes.is_empty(), "{} codes listed", o.changed_codes.len());
    assert_eq!(store.changes_since(0, n + 10).await.unwrap().len(), n as usize);
}

/// After a bulk write PostgreSQL plans profile reads on fresh statistics,
/// not on those of the empty table (a sequential scan per profile).
#[tokio::test]
async fn a_bulk_write_refreshes_the_planners_statistics() {
    let Some(db) = pg_db().await else { return };
    let store = Store::open(&db.url).await.unwrap();
    let records =
        (0..10_000u32).map(|i| to_record(evaluation_json(&format!("e{i}"), &crate::assessment::code(300_000 + i), json!({})))).collect();
    write(&store, records).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (analysed,): (bool,) = sqlx::query_as("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'records'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(analysed, "records were not analysed after 10,000 were written");
    let plan: Vec<(String,)> = sqlx::query_as(&format!(
        "EXPLAIN SELECT record_id FROM records WHERE credit_code = '{}' AND version <= 1",
        crate::assessment::code(300_001)
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.into_iter().map(|(l,)| l).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("records_by_code"), "{plan}");
}

#[tokio::test]
async fn change_feed_lists_codes_per_version() {
    for db in backends().await {
        let store = Store::open(&db.url).await.unwrap();
        assert_eq!(store.current_version().await.unwrap(), 0);
        write(&store, vec![to_record(evaluation_json("e1", CODE_A, json!({}))), to_record(evaluation_json("e2", CODE_B, json!({})))])
            .await
            .unwrap();
        // A new version of e2 (CODE_B) and a first record for CODE_C: both codes changed.
        let o = write(
            &store,
            vec![
                to_record(evaluation_json("e2", CODE_B, json!({"grade": "B", "score": 80.0}))),
                to_record(evaluation_json("e3", CODE_C, json!({}))),
            ],
        )
        .await
        .unwrap();
        // Sorted by code text: CODE_C (9111…) before CODE_B (9144…).
        assert_eq!(o.changed_codes, vec![code(CODE_C), code(CODE_B)]);
        assert_eq!(o.changed_count, 2);
        assert_eq!(
            store.changes_since(0, 1000).await.unwrap(),
            vec![(1, code(CODE_A)), (1, code(CODE_B)), (2, code(CODE_C)), (2, code(CODE_B))]
        );
        assert_eq!(store.changes_since(1, 1000).await.unwrap().len(), 2);
        // CODE_B's profile holds e2's new version and keeps the old one as history.
        let b = store.profile(&code(CODE_B), None).await.unwrap();
        assert_eq!(b.records.len(), 1, "[{}] {:?}", db.backend, b.records);
        assert_eq!(b.history.len(), 1);
        let b1 = store.profile(&code(CODE_B), Some(1)).await.unwrap();
        assert_eq!((b1.records.len(), b1.history.len()), (1, 0));
        assert_eq!(store.profile(&code(CODE_C), None).await.unwrap().records.len(), 1);
        // A version that would move e2 to CODE_C is refused (a record keeps its firm).
        let moved = write(&store, vec![to_record(evaluation_json("e2", CODE_C, json!({})))]).await;
        assert!(matches!(moved, Err(credit_tender::store::StoreError::Rejected(_))), "[{}] {moved:?}", db.backend);
    }
}

#[tokio::test]
async fn events_must_target_a_record_of_the_same_code() {
    for db in backends().await {
        let store = Store::open(&db.url).await.unwrap();
        write(&store, vec![to_record(list_entry_json("l1", CODE_A, "transport_blacklist"))]).await.unwrap();
        let ev = |id: &str, c: &str, target: &str| to_record(event_json(id, c, target, "repair", "2026-06-01"));
        let err = write(&store, vec![ev("x1", CODE_B, "l1")]).await.unwrap_err();
        match err {
            StoreError::Rejected(p) => {
                assert_eq!(p[0].1.field, "credit_code");
                assert!(p[0].1.reason.contains("the credit code of target 'l1'"), "{p:?}");
            }
            other => panic!("{other:?}"),
        }
        // An event may come before its target within a batch.
        let o = write(&store, vec![ev("x2", CODE_B, "l2"), to_record(list_entry_json("l2", CODE_B, "key_attention"))]).await.unwrap();
        assert_eq!(o.stored, 2);
        let err = write(&store, vec![ev("x3", CODE_B, "x2")]).await.unwrap_err();
        assert!(matches!(err, StoreError::Rejected(ref p) if p[0].1.reason.contains("is an event")), "{err:?}");
    }
}

#[tokio::test]
async fn concurrent_writers_get_distinct_consecutive_versions() {
    for db in backends().await {
        let store = Store::open(&db.url).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                write(&store, vec![to_record(evaluation_json(&format!("c{i}"), CODE_A, json!({"year": 2017 + i})))])
                    .await
                    .unwrap()
                    .data_version
            }));
        }
        let mut versions = Vec::new();
        for t in tasks {
            versions.push(t.await.unwrap());
        }
        versions.sort();
        assert_eq!(versions, (1..=8).collect::<Vec<_>>(), "[{}]", db.backend);
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(Store::open("mysql://x").await, Err(StoreError::UnsupportedUrl(_))));
}

/// PostgreSQL keeps the rule its foreign keys kept (migration 0006 replaced
/// them with statement-level triggers, which check a bulk import once per
/// statement): no record or change-feed row names a data version that does
/// not exist, whether inserted, moved by an UPDATE or by an upsert's DO
/// UPDATE (the outside attack on issue 25 found UPDATE unchecked), and data
/// versions are never deleted, truncated or renumbered.
#[tokio::test]
async fn postgres_refuses_rows_of_a_missing_data_version_and_any_removal_of_one() {
    use sqlx::Connection;
    let Some(db) = pg_db().await else { return };
    let store = Store::open(&db.url).await.unwrap();
    write(&store, vec![to_record(evaluation_json("v-1", &crate::assessment::code(400_001), json!({})))]).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let refused = [
        "INSERT INTO records (record_id, version, kind, credit_code, digest, body) VALUES ('x', 999, 'evaluation', 'c', 'd', '{}')",
        "INSERT INTO changed_codes (version, credit_code) VALUES (999, 'c')",
        "UPDATE records SET version = 999",
        "UPDATE changed_codes SET version = 999",
        "INSERT INTO records (SELECT * FROM records) ON CONFLICT (record_id, version) DO UPDATE SET version = 4242",
        "DELETE FROM data_versions",
        "TRUNCATE data_versions CASCADE",
        "UPDATE data_versions SET version = version + 100",
    ];
    for sql in refused {
        let e = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(e.to_string().contains("data version"), "{sql}: {e}");
    }
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM records UNION ALL SELECT version FROM changed_codes").fetch_all(&mut conn).await.unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|(v,)| *v == 1), "{rows:?}");
    // What the rule allows still works: a version's count may be set.
    sqlx::query("UPDATE data_versions SET record_count = record_count").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}
