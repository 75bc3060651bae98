//! `credit-tender import`: JSON Lines and CSV in, all or nothing, on each backend.

use crate::helpers::*;
use serde_json::json;

/// Seeds a store with one good file; returns the temp dir for further files.
async fn seeded(db: &TestDb) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let good = file(
        dir.path(),
        "seed.jsonl",
        jsonl(&[evaluation_json("e-seed", CODE_A, json!({})), list_entry_json("l-seed", CODE_B, "court_enforcement")]),
    );
    let out = cli(&["import", "--db", &db.url, good.to_str().unwrap()]);
    assert!(out.status.success(), "seed import failed: {}", stderr(&out));
    dir
}

/// Imports `content` as `name`, expects rejection, and checks that stderr
/// names `expected` (after the file name) and that nothing changed.
async fn rejects(db: &TestDb, dir: &std::path::Path, name: &str, content: &[u8], expected: &[&str]) {
    let before = snapshot(&db.url).await;
    let path = file(dir, name, content);
    let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "[{}] {name}: expected exit 65 (data refused), stderr: {err}", db.backend);
    for e in expected {
        let want = format!("{}:{e}", path.display());
        assert!(err.contains(&want), "[{}] {name}: stderr lacks '{want}':\n{err}", db.backend);
    }
    assert!(err.contains("nothing from this file was stored"), "{err}");
    assert_eq!(snapshot(&db.url).await, before, "[{}] {name}: store changed", db.backend);
}

#[tokio::test]
async fn each_bad_input_is_named_and_changes_nothing() {
    for db in backends().await {
        let dir = seeded(&db).await;
        let d = dir.path();
        let good = evaluation_json("e-new", CODE_C, json!({}));
        let with = |extra| jsonl(&[good.clone(), evaluation_json("e-bad", CODE_C, extra)]);

        rejects(&db, d, "malformed.jsonl", format!("{good}\n{{\"type\": \"evaluation\",\n").as_bytes(), &["2: json: malformed JSON"]).await;
        let mut bad_utf8 = format!("{good}\n").into_bytes();
        bad_utf8.extend_from_slice(b"{\"type\":\"evaluation\",\"entity_name\":\"\xff\xfe\"}\n");
        rejects(&db, d, "utf8.jsonl", &bad_utf8, &["2: encoding: the file is not UTF-8 (byte 37 of line 2 is not)"]).await;
        rejects(
            &db,
            d,
            "type.jsonl",
            jsonl(&[good.clone(), json!({"type": "rating", "id": "x"})]).as_bytes(),
            &["2: type: unknown value 'rating'"],
        )
        .await;
        // A line with no type, and lines that are JSON but not an object,
        // are each an error on their line, never skipped as if blank.
        let mut untyped = evaluation_json("e-untyped", CODE_C, json!({}));
        untyped.as_object_mut().unwrap().remove("type");
        rejects(
            &db,
            d,
            "untyped.jsonl",
            jsonl(&[good.clone(), untyped]).as_bytes(),
            &["2: type: is required, one of: evaluation, list_entry"],
        )
        .await;
        for (name, line) in [("array.jsonl", "[1]"), ("number.jsonl", "7"), ("string.jsonl", "\"evaluation\""), ("null.jsonl", "null")] {
            rejects(&db, d, name, format!("{good}\n{line}\n").as_bytes(), &["2: json: expected one JSON object per line"]).await;
        }
        rejects(&db, d, "missing.jsonl", with(json!({"entity_name": null})).as_bytes(), &["2: entity_name: is required"]).await;
        rejects(
            &db,
            d,
            "short.jsonl",
            with(json!({"credit_code": "91440300192317458"})).as_bytes(),
            &["2: credit_code: credit code has 17 characters, a credit code has 18"],
        )
        .await;
        rejects(
            &db,
            d,
            "long.jsonl",
            with(json!({"credit_code": "91440300192317458FF"})).as_bytes(),
            &["2: credit_code: credit code has 19 characters"],
        )
        .await;
        rejects(
            &db,
            d,
            "letter.jsonl",
            with(json!({"credit_code": "91440300I92317458F"})).as_bytes(),
            &["2: credit_code: credit code has forbidden character 'I' at position 9"],
        )
        .await;
        rejects(
            &db,
            d,
            "region.jsonl",
            with(json!({"credit_code": "9144A300192317458F"})).as_bytes(),
            &["2: credit_code: credit code has a non-digit region code '44A300'"],
        )
        .await;
        rejects(
            &db,
            d,
            "check.jsonl",
            with(json!({"credit_code": "914403001923174580"})).as_bytes(),
            &["2: credit_code: credit code has check character '0' but the checksum gives 'F'"],
        )
        .await;
        rejects(
            &db,
            d,
            "domain.jsonl",
            with(json!({"domain": "railway_construction"})).as_bytes(),
            &["2: domain: unknown credit domain 'railway_construction'"],
        )
        .await;
        rejects(
            &db,
            d,
            "water.jsonl",
            with(json!({"domain": "water_resources"})).as_bytes(),
            &["2: domain: 'water_resources' is the water-resources sector (水利)"],
        )
        .await;
        rejects(&db, d, "aaa.jsonl", with(json!({"grade": "AAA"})).as_bytes(), &["2: grade: 'AAA' is a water-resources (水利) grade"])
            .await;
        rejects(
            &db,
            d,
            "score.jsonl",
            with(json!({"grade": "AA", "score": 90.0})).as_bytes(),
            &["2: score: 90 lies in grade A's band, not AA's"],
        )
        .await;
        rejects(
            &db,
            d,
            "dates.jsonl",
            with(json!({"valid_from": "2026-05-01", "valid_to": "2026-04-30"})).as_bytes(),
            &["2: valid_to: 2026-04-30 is before valid_from 2026-05-01"],
        )
        .await;
        rejects(
            &db,
            d,
            "twice.jsonl",
            jsonl(&[good.clone(), evaluation_json("e-new", CODE_C, json!({"grade": "B", "score": 80}))]).as_bytes(),
            &["2: id: 'e-new' appears earlier in this batch with different content"],
        )
        .await;
        rejects(
            &db,
            d,
            "header.csv",
            b"code,name,domain\n914403001922038216,x,highway_construction\n",
            &["1: header: unexpected header 'code,name,domain'"],
        )
        .await;
        rejects(&db, d, "empty.jsonl", b"", &["1: file: is empty"]).await;
        rejects(&db, d, "empty.csv", b"", &["1: file: is empty"]).await;
        // Every bad line is listed, not just the first.
        rejects(
            &db,
            d,
            "several.jsonl",
            jsonl(&[good.clone(), evaluation_json("e2", "123", json!({})), json!({"type": "penalty"})]).as_bytes(),
            &["2: credit_code: credit code has 3 characters", "3: id: is required", "3: decided_on: is required"],
        )
        .await;
    }
}

#[tokio::test]
async fn csv_tables_import_and_name_bad_rows() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let header = "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\n";
        let ok = format!(
            "{header}{CODE_A},甲路桥,highway_construction,440000,2025,AA,96,2026-03-01,2027-02-28\n\
             {CODE_B},\"乙, 设计院\",highway_design,national,2025,B,,2026-03-01,2027-02-28\n"
        );
        let path = file(dir.path(), "results.csv", &ok);
        let out = cli(&["import", "--db", &db.url, "--document-ref", "粤交〔2026〕3号", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("imported 2 record(s) as data version 1"), "{}", stdout(&out));

        // Without --document-ref the column is required.
        let before = snapshot(&db.url).await;
        let path = file(dir.path(), "noref.csv", format!("{header}{CODE_C},丙,supervision,110000,2025,A,,2026-03-01,2027-02-28\n"));
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65));
        assert!(stderr(&out).contains(&format!("{}:2: document_ref: is required", path.display())), "{}", stderr(&out));

        // A score outside its band and a water-resources grade, on lines 2 and 3.
        let bad = format!(
            "{header}{CODE_C},丙,highway_construction,110000,2025,B,90,2026-03-01,2027-02-28\n\
             {CODE_C},丙,highway_construction,110000,2024,AAA,,2025-03-01,2026-02-28\n"
        );
        let path = file(dir.path(), "bad.csv", bad);
        let out = cli(&["import", "--db", &db.url, "--document-ref", "x", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{err}");
        assert!(err.contains(&format!("{}:2: score: 90 lies in grade A's band, not B's", path.display())), "{err}");
        assert!(err.contains(&format!("{}:3: grade: 'AAA'", path.display())), "{err}");
        let mut bad_utf8 = header.as_bytes().to_vec();
        bad_utf8.extend_from_slice(format!("{CODE_C},").as_bytes());
        bad_utf8.extend_from_slice(b"\xff\xfe,supervision,110000,2025,A,,2026-03-01,2027-02-28\n");
        let path = file(dir.path(), "utf8.csv", bad_utf8);
        let out = cli(&["import", "--db", &db.url, "--document-ref", "x", path.to_str().unwrap()]);
        assert!(
            stderr(&out).contains(&format!("{}:2: encoding: the file is not UTF-8 (byte 20 of line 2 is not)", path.display())),
            "{}",
            stderr(&out)
        );
        let path = file(dir.path(), "ragged.csv", format!("{header}{CODE_C},丙,supervision\n"));
        let out = cli(&["import", "--db", &db.url, "--document-ref", "x", path.to_str().unwrap()]);
        assert!(stderr(&out).contains(&format!("{}:2: row: has 3 fields, the header has 9", path.display())), "{}", stderr(&out));
        assert_eq!(snapshot(&db.url).await, before);
    }
}

#[tokio::test]
async fn identical_reimport_is_a_no_op_and_dry_run_stores_nothing() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let content = jsonl(&[evaluation_json("e1", CODE_A, json!({})), list_entry_json("l1", CODE_B, "transport_blacklist")]);
        let path = file(dir.path(), "a.jsonl", &content);
        let p = path.to_str().unwrap();

        // A dry run only reads: the store must exist (an empty one here).
        open(&db).await;
        let out = cli(&["import", "--db", &db.url, "--dry-run", p]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("2 record(s) would be stored"), "{}", stdout(&out));
        assert!(snapshot(&db.url).await.is_empty(), "dry run stored something");

        let out = cli(&["import", "--db", &db.url, p]);
        assert!(out.status.success());
        let after_first = snapshot(&db.url).await;
        let out = cli(&["import", "--db", &db.url, p]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("nothing new: all 2 record(s) already stored (data version 1)"), "{}", stdout(&out));
        assert_eq!(snapshot(&db.url).await, after_first);

        // A dry run also finds conflicts with what is stored.
        let clash = file(dir.path(), "clash.jsonl", jsonl(&[list_entry_json("e1", CODE_A, "transport_blacklist")]));
        let out = cli(&["import", "--db", &db.url, "--dry-run", clash.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65));
        assert!(stderr(&out).contains(":1: id: 'e1' is already the id of a record of type evaluation, not list_entry"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn files_are_independent_and_unknown_types_refused() {
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let good = file(dir.path(), "good.jsonl", jsonl(&[evaluation_json("e1", CODE_A, json!({}))]));
    let bad = file(dir.path(), "bad.jsonl", "not json\n");
    let other = file(dir.path(), "data.xml", "<x/>");
    let out = cli(&["import", "--db", &db.url, good.to_str().unwrap(), bad.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(stdout(&out).contains("good.jsonl: imported 1 record(s)"));
    assert!(stderr(&out).contains(&format!("{}:1: json: malformed JSON", bad.display())));
    assert!(stderr(&out).contains(&format!("{}: file: unknown file type", other.display())), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 of 3 file(s) rejected"));
}

#[tokio::test]
async fn bad_rule_files_are_named() {
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let bands = file(dir.path(), "bands.toml", "max_score = 100\n[domain.highway_construction]\nAAA = 95\n");
    let data = file(dir.path(), "x.jsonl", jsonl(&[evaluation_json("e1", CODE_A, json!({}))]));
    let out = cli(&["import", "--db", &db.url, "--score-bands", bands.to_str().unwrap(), data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "a rule file is configuration");
    assert!(stderr(&out).contains(&format!("{}: domain.highway_construction.AAA: unknown grade", bands.display())), "{}", stderr(&out));
}

/// The set-based write (a chunk of records per statement) gives the answers
/// record-by-record checking gave: a second annual grade or a changed
/// duplicate is found within a chunk and across chunks, and a file of
/// distinct records goes in whole.
#[tokio::test]
async fn checks_hold_within_and_across_the_write_chunks() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = credit_tender::store::Store::open(&db.url).await.unwrap();
        let code = |n: u32| crate::assessment::code(900_000 + n);
        let many: Vec<serde_json::Value> = (0..1_200).map(|n| evaluation_json(&format!("bulk-{n}"), &code(n), json!({}))).collect();
        let mut second_grade = many.clone();
        // Line 1,201: a second 2025 grade for the first firm under a new id (chunks apart).
        second_grade.push(evaluation_json("bulk-again", &code(0), json!({"grade": "B", "score": 80})));
        // Line 1,202: a changed duplicate of a record two chunks back.
        second_grade.push(evaluation_json("bulk-3", &code(3), json!({"grade": "B", "score": 80})));
        // Lines 3 and 4: a second grade within one chunk.
        second_grade.insert(2, evaluation_json("near-1", &code(5_000), json!({})));
        second_grade.insert(3, evaluation_json("near-2", &code(5_000), json!({"grade": "B", "score": 80})));
        let expected = [
            "4: id: 'near-1' is already the 440000 grade",
            "1203: id: 'bulk-0' is already the 440000 grade",
            "1204: id: 'bulk-3' appears earlier in this batch with different content",
        ];
        // An exact copy of a record two chunks back is unchanged, not refused
        // (a first load, below on the empty store, would refuse it, or fail on
        // the key, if it missed the copy's first staging).
        let mut with_copy = many.clone();
        with_copy.push(many[3].clone());
        let copied = file(dir.path(), "copied.jsonl", jsonl(&with_copy));
        let out = cli(&["import", "--db", &db.url, "--dry-run", copied.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.contains("valid: 1200 record(s) would be stored, 1 unchanged"), "[{}] {said}", db.backend);
        // Into the empty store (a first load, which skips the lookups of ids
        // and codes it has not staged itself), then into a store holding a
        // record of another firm (every id and code looked up): the same answers.
        rejects(&db, dir.path(), "chunks.jsonl", jsonl(&second_grade).as_bytes(), &expected).await;
        let other = file(dir.path(), "other.jsonl", jsonl(&[evaluation_json("other", &code(9_999), json!({}))]));
        let out = cli(&["import", "--db", &db.url, other.to_str().unwrap()]);
        assert!(out.status.success(), "[{}] {}", db.backend, stderr(&out));
        rejects(&db, dir.path(), "chunks.jsonl", jsonl(&second_grade).as_bytes(), &expected).await;
        let path = file(dir.path(), "many.jsonl", jsonl(&with_copy));
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        assert!(out.status.success(), "[{}] {}", db.backend, stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("imported 1200 record(s)") && said.contains("(1 unchanged)"), "[{}] {said}", db.backend);
        let version = store.current_version().await.unwrap();
        assert_eq!(
            store.changes_since(version - 1, 10_000).await.unwrap().len(),
            1_200,
            "[{}] every code of the new version is in the change feed",
            db.backend
        );
        // The same file again changes nothing.
        let out = cli(&["import", "--db", &db.url, path.to_str().unwrap()]);
        assert!(out.status.success());
        assert_eq!(store.current_version().await.unwrap(), version, "[{}] an identical reimport made a version", db.backend);
    }
}
