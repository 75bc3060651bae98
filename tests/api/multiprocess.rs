//! Many processes, one SQLite file. The `serve` binary takes gRPC writes
//! (PutRecords, RegisterTender, RegisterBid) while the `import` binary runs
//! on the same file again and again, once with 200,000 rows; then the server
//! is killed with -9 and started again. Nothing either process acknowledged
//! may be missing, no data version may be acknowledged twice, the file must
//! pass `PRAGMA integrity_check`, and no descriptor of the server may ever
//! point at a deleted `-wal` or `-shm`.
//!
//! The hazard (SQLite, "How To Corrupt", §2.2): closing any descriptor of the
//! database file drops all of the process's POSIX locks on it; the next
//! import to close then believes it is the last connection and deletes the
//! WAL under the live server.
//!
//! `MULTIPROCESS_IMPORTS` (30; at least 2, or no import closes beside
//! another's) and `MULTIPROCESS_BIG_ROWS` (200,000; at least 1) set the run's
//! size, refused by name when not a whole number or below that; `.ci/run`
//! pins them to CI's values. BENCHMARKS.md has a longer run.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tonic::Code;

/// What the gRPC writer was told.
#[derive(Default)]
struct Acked {
    /// (record id, credit code, data version)
    records: Vec<(String, String, u64)>,
    tenders: Vec<String>,
    bids: Vec<String>,
    /// UNAVAILABLE "busy" answers: allowed, nothing acknowledged.
    busy: u64,
    /// Any other failure: none is allowed.
    errors: Vec<String>,
}

/// An answer that is not an acknowledgement: "busy" is counted, anything else is an error.
fn refused(acked: &Mutex<Acked>, what: &str, status: tonic::Status) {
    let mut a = acked.lock().unwrap();
    if status.code() == Code::Unavailable && status.message().contains("busy") {
        a.busy += 1;
    } else {
        a.errors.push(format!("{what}: {:?} {}", status.code(), status.message()));
    }
}

fn first_errors(acked: &Mutex<Acked>) -> Vec<String> {
    acked.lock().unwrap().errors.iter().take(5).cloned().collect()
}

/// Writes through gRPC until told to stop: a record, a tender and a bid per round.
async fn writer(
    w: u32,
    channel: tonic::transport::Channel,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
    rounds: tokio::sync::watch::Sender<u64>,
) {
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(channel.clone());
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(channel);
    let mut i = 0u32;
    // A server that stops answering fails the test at the end; no need to spin on it.
    while !stop.load(Ordering::Relaxed) && acked.lock().unwrap().errors.len() < 100 {
        i += 1;
        let id = format!("mp-w{w}-{i}");
        let code = crate::assessment::code(600_000 + w * 50_000 + i);
        let put = pb::PutRecordsRequest { records: vec![to_proto(evaluation_json(&id, &code, json!({})))], source: "writer".into() };
        match data.put_records(put).await {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(r.stored, 1, "{id} is new: it makes a data version of its own");
                acked.lock().unwrap().records.push((id, code.clone(), r.data_version));
            }
            Err(s) => refused(&acked, "PutRecords", s),
        }
        let tender = format!("MP-T{w}-{i}");
        let register = pb::RegisterTenderRequest {
            tender_id: tender.clone(),
            terms: Some(crate::assessment::terms("440300", "2026-12-15")),
            policy_id: "national-template".into(),
        };
        match tenders.register_tender(register).await {
            Ok(_) => {
                acked.lock().unwrap().tenders.push(tender.clone());
                let bid = pb::RegisterBidRequest { tender_id: tender.clone(), bidder: Some(pb::Bidder { credit_codes: vec![code] }) };
                match tenders.register_bid(bid).await {
                    Ok(_) => acked.lock().unwrap().bids.push(tender),
                    Err(s) => refused(&acked, "RegisterBid", s),
                }
            }
            Err(s) => refused(&acked, "RegisterTender", s),
        }
        rounds.send_modify(|n| *n += 1);
    }
}

/// Samples the server's descriptors through /proc until told to stop:
/// every target that is a deleted `-wal` or `-shm`, and how many samples.
fn watch_descriptors(pid: u32, db: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(BTreeSet<String>, u64)> {
    std::thread::spawn(move || {
        let mut deleted = BTreeSet::new();
        let mut samples = 0u64;
        let bad = [format!("{db}-wal (deleted)"), format!("{db}-shm (deleted)")];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                for entry in dir.flatten() {
                    // readlink only: the test never opens the server's files.
                    if let Ok(target) = std::fs::read_link(entry.path()) {
                        let target = target.to_string_lossy().into_owned();
                        if bad.contains(&target) {
                            deleted.insert(target);
                        }
                    }
                }
                samples += 1;
            }
            // A sampling interval, not a wait for an event: the fault has none.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (deleted, samples)
    })
}

/// Runs `credit-tender import` on a thread of its own; the data version it reports.
async fn import(url: &str, file: &std::path::Path) -> u64 {
    let args = ["import", "--db", url, "--document-ref", "多进程测试", file.to_str().unwrap()].map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || cli(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    let err: String = stderr(&out).chars().take(4000).collect();
    assert!(out.status.success(), "import of {} failed: {}{err}", file.display(), stdout(&out));
    let text = stdout(&out);
    text.split("as data version ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("import of {} did not say its data version: {text}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_import_share_one_sqlite_file_and_lose_nothing() {
    let imports = knob("MULTIPROCESS_IMPORTS", 30, 2);
    let big_rows = u32::try_from(knob("MULTIPROCESS_BIG_ROWS", 200_000, 1)).expect("MULTIPROCESS_BIG_ROWS fits in 32 bits");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("credit.db");
    let db_text = db.to_str().unwrap().to_owned();
    let url = format!("sqlite://{db_text}");
    let keys = keys_file(dir.path());
    let serve = ["serve", "--db", url.as_str(), "--keys", keys.to_str().unwrap()];
    let mut server = CliServer::spawn(&serve).await;

    let stop = Arc::new(AtomicBool::new(false));
    let descriptors = watch_descriptors(server.child.id(), db_text.clone(), stop.clone());
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let (rounds_tx, mut rounds) = tokio::sync::watch::channel(0u64);
    let writers: Vec<_> =
        (0..2).map(|w| tokio::spawn(writer(w, server.channel.clone(), stop.clone(), acked.clone(), rounds_tx.clone()))).collect();
    // Every health status the server announces during the run.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let mut watch = health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(watch.message().await.unwrap().unwrap().status, serving);
    let statuses: Arc<Mutex<Vec<i32>>> = Arc::default();
    let watching = {
        let statuses = statuses.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = watch.message().await {
                statuses.lock().unwrap().push(m.status);
            }
        })
    };

    // (data version, file name, rows) of every import.
    let mut imported: Vec<(u64, String, i64)> = Vec::new();
    for run in 0..imports {
        // The writers go on between imports, so each import closes beside live writes.
        let seen = *rounds.borrow_and_update();
        let lines: Vec<serde_json::Value> = (0..20u32)
            .map(|k| evaluation_json(&format!("mp-i{run}-{k}"), &crate::assessment::code(800_000 + run as u32 * 20 + k), json!({})))
            .collect();
        let name = format!("small-{run}.jsonl");
        let path = file(dir.path(), &name, jsonl(&lines));
        imported.push((import(&url, &path).await, name, 20));
        // (The watch's guard is dropped at once: the writers need its lock.)
        let progressed = tokio::time::timeout(std::time::Duration::from_secs(30), rounds.wait_for(|n| *n > seen)).await.is_ok();
        assert!(progressed, "the gRPC writers made no progress for 30 s after import {run}: {:?}", first_errors(&acked));
    }
    let mut csv = String::from("credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\n");
    for n in 0..big_rows {
        csv.push_str(&format!(
            "{},测试{n},highway_construction,440000,2025,A,,2026-03-01,2027-02-28\n",
            crate::assessment::code(1_000_000 + n)
        ));
    }
    let big = file(dir.path(), "big.csv", csv);
    let seen = *rounds.borrow_and_update();
    imported.push((import(&url, &big).await, "big.csv".into(), i64::from(big_rows)));
    let progressed = tokio::time::timeout(std::time::Duration::from_secs(30), rounds.wait_for(|n| *n > seen)).await.is_ok();
    assert!(progressed, "the gRPC writers made no progress for 30 s after the big import: {:?}", first_errors(&acked));

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let (deleted, samples) = descriptors.join().unwrap();
    // Health never left SERVING: a busy store is not a lost one.
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status;
    assert_eq!(status, serving);
    watching.abort();
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.iter().all(|s| *s == serving), "health left SERVING during the run: {statuses:?}");

    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "{} imports, {} records, {} tenders, {} bids acknowledged over gRPC, {} busy answers, {samples} descriptor samples",
        imported.len(),
        acked.records.len(),
        acked.tenders.len(),
        acked.bids.len(),
        acked.busy
    );
    assert!(deleted.is_empty(), "a descriptor of the server pointed at a deleted file: {deleted:?}");
    assert!(samples > 0);
    assert!(acked.errors.is_empty(), "writes failed other than 'busy': {:?}", &acked.errors[..acked.errors.len().min(5)]);
    assert!(!acked.records.is_empty() && !acked.bids.is_empty(), "the writers got nothing acknowledged");

    // No data version acknowledged twice, by either process.
    let mut versions: Vec<u64> = acked.records.iter().map(|r| r.2).chain(imported.iter().map(|i| i.0)).collect();
    versions.sort_unstable();
    let total = versions.len();
    versions.dedup();
    assert_eq!(versions.len(), total, "a data version was acknowledged twice");

    // The server starts again on the file and sees what it acknowledged.
    let restarted = CliServer::spawn(&serve).await;
    let (last_id, last_code, _) = acked.records.last().unwrap().clone();
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(restarted.channel.clone());
    let profile = data.get_profile(pb::GetProfileRequest { credit_code: last_code, ..Default::default() }).await.unwrap().into_inner();
    assert!(
        profile
            .records
            .iter()
            .any(|r| matches!(&r.record.as_ref().unwrap().kind, Some(pb::record::Kind::Evaluation(e)) if e.id == last_id))
    );
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(restarted.channel.clone());
    let last_tender = acked.tenders.last().unwrap().clone();
    tenders.get_tender(pb::GetTenderRequest { tender_id: last_tender, version: 0 }).await.unwrap();
    drop(restarted);

    // Everything acknowledged is in the file, under the version and source it was acknowledged with.
    use sqlx::Row;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(false);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    let check: String = sqlx::query("PRAGMA integrity_check").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(check, "ok");
    let sources: HashMap<u64, (String, i64)> = sqlx::query("SELECT version, source, record_count FROM data_versions")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<i64, _>(0) as u64, (r.get::<String, _>(1), r.get::<i64, _>(2))))
        .collect();
    let stored: HashSet<(String, u64)> = sqlx::query("SELECT record_id, version FROM records")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
        .collect();
    for (id, _, v) in &acked.records {
        assert_eq!(sources.get(v).map(|s| s.0.as_str()), Some("grpc:writer"), "data version {v} of acknowledged record {id}");
        assert!(stored.contains(&(id.clone(), *v)), "acknowledged record {id} (data version {v}) is missing");
    }
    for (v, name, rows) in &imported {
        assert_eq!(sources.get(v), Some(&(format!("import:{name}"), *rows)), "data version {v} of the import of {name}");
        let n = stored.iter().filter(|(_, sv)| sv == v).count() as i64;
        assert_eq!(n, *rows, "records of the import of {name} (data version {v})");
    }
    let tenders: HashSet<String> =
        sqlx::query("SELECT tender_id FROM tenders").fetch_all(&pool).await.unwrap().iter().map(|r| r.get(0)).collect();
    let bids: HashSet<String> =
        sqlx::query("SELECT tender_id FROM bids").fetch_all(&pool).await.unwrap().iter().map(|r| r.get(0)).collect();
    for t in &acked.tenders {
        assert!(tenders.contains(t), "acknowledged tender {t} is missing");
    }
    for t in &acked.bids {
        assert!(bids.contains(t), "acknowledged bid on {t} is missing");
    }
}

/// A live write behind another process's write lock (an import's, here held
/// by this test) waits for it: stored once the lock is released within the
/// bound; past the bound, UNAVAILABLE "busy" with a retry hint and nothing
/// stored, never "cannot be reached". Reads are answered and health stays
/// SERVING all along. Two servers share the file, one with a short bound.
#[tokio::test]
async fn a_write_behind_another_processs_write_waits_and_past_its_bound_is_told_busy() {
    use sqlx::{Connection, Row};
    use tonic_types::StatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("credit.db");
    let url = format!("sqlite://{}", db.display());
    let keys = keys_file(dir.path());
    let patient = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap()]).await;
    let hasty = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap(), "--write-wait-ms", "300"]).await;
    let record = |id: &str, n: u32| pb::PutRecordsRequest {
        records: vec![to_proto(evaluation_json(id, &crate::assessment::code(1_900 + n), json!({})))],
        source: String::new(),
    };
    let mut hasty_data = pb::credit_data_service_client::CreditDataServiceClient::new(hasty.channel.clone());
    let mut patient_data = pb::credit_data_service_client::CreditDataServiceClient::new(patient.channel.clone());
    let first = hasty_data.put_records(record("busy-1", 1)).await.unwrap().into_inner().data_version;

    // This process takes the write lock and writes a data version, as an import does.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(false);
    let mut importer = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let mut held = importer.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query(
        "INSERT INTO data_versions (version, recorded_at, source, record_count) VALUES (?, '2026-11-30T00:00:00Z', 'import:held', 0)",
    )
    .bind(first as i64 + 1)
    .execute(&mut *held)
    .await
    .unwrap();

    let status = hasty_data.put_records(record("busy-2", 2)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "the credit store is busy (another process is writing); retry");
    assert_eq!(status.get_details_retry_info().and_then(|r| r.retry_delay), Some(std::time::Duration::from_secs(1)));
    assert_eq!(status.metadata().get("grpc-retry-pushback-ms").map(|v| v.to_str().unwrap()), Some("1000"));
    hasty.log_line("gave up waiting for another process's write lock").await;
    // Reads go on, and health says the store is there.
    let profile =
        hasty_data.get_profile(pb::GetProfileRequest { credit_code: crate::assessment::code(1_901), ..Default::default() }).await.unwrap();
    assert_eq!(profile.into_inner().records.len(), 1);
    let mut health = tonic_health::pb::health_client::HealthClient::new(hasty.channel.clone());
    let serving = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status;
    assert_eq!(serving, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // The patient server's write waits; the lock is released while it does; it is stored after the import's version.
    let waiting = tokio::spawn(async move { patient_data.put_records(record("busy-3", 3)).await });
    patient.log_line("waiting for the store's write lock").await;
    held.commit().await.unwrap();
    let stored = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(stored.data_version, first + 2, "after the held import's version {}", first + 1);
    let sources: Vec<String> = sqlx::query("SELECT source FROM data_versions ORDER BY version")
        .fetch_all(&mut importer)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sources, ["grpc", "import:held", "grpc"], "busy-2 was not stored");
    importer.close().await.unwrap();
}

/// A second name for the store's file made with a hard link would get a WAL
/// and lock file of its own (SQLite names them after the path), so a server
/// on one name and an import on the other would lose each other's writes.
/// Every command refuses a database file with more than one hard link, or a
/// `-wal` beside it with more than one, before anything is opened: exit 78
/// (the store is set up wrong), naming the path and why; `serve` refuses at
/// startup. Nothing stored changes. A symbolic link is fine.
#[test]
fn a_store_file_with_a_second_hard_link_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ln.db");
    let hard = dir.path().join("ln-hard.db");
    let url = format!("sqlite://{}", db.display());
    let hard_url = format!("sqlite://{}", hard.display());
    let lines = jsonl(&[evaluation_json("ln-1", &crate::assessment::code(1_701), json!({}))]);
    let records = file(dir.path(), "records.jsonl", &lines);
    let records = records.to_str().unwrap();
    let out = cli(&["import", "--db", &url, records]);
    assert!(out.status.success(), "{}", stderr(&out));
    let snapshot = || tokio::runtime::Runtime::new().unwrap().block_on(snapshot(&url));
    let before = snapshot();

    std::fs::hard_link(&db, &hard).unwrap();
    let keys = keys_file(dir.path());
    let envelope = file(
        dir.path(),
        "st.json",
        r#"{"payloadType":"application/vnd.credit-tender.assessment.v1+json","payload":"e30=","signatures":[]}"#,
    );
    let more = file(dir.path(), "more.jsonl", jsonl(&[evaluation_json("ln-2", &crate::assessment::code(1_702), json!({}))]));
    for (name, url) in [("ln-hard.db", &hard_url), ("ln.db", &url)] {
        let path = dir.path().join(name);
        let commands: [Vec<&str>; 4] = [
            vec!["import", "--db", url, more.to_str().unwrap()],
            vec!["recompute", envelope.to_str().unwrap(), "--db", url],
            vec!["import", "--db", url, "--dry-run", more.to_str().unwrap()],
            vec!["serve", "--db", url, "--keys", keys.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        ];
        for args in commands {
            let out = cli(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
            assert!(
                err.contains(&format!("{} has 2 hard links", path.display()))
                    && err.contains("SQLite keeps a write-ahead log and lock file per name"),
                "{args:?}: the refusal names the path and why: {err}"
            );
            assert!(!stdout(&out).contains("listening on"), "{args:?}");
        }
    }
    assert_eq!(snapshot(), before, "nothing stored changed");
    assert!(!dir.path().join("ln-hard.db-wal").exists(), "nothing opened the second name");
    // The snapshot closed its connection before returning (helpers::snapshot),
    // so no late close in this process can unlink the -wal linked below.

    // A -wal beside the store that is also another file's name.
    std::fs::remove_file(&hard).unwrap();
    let other = file(dir.path(), "other.db-wal", b"");
    let wal = dir.path().join("ln.db-wal");
    // (No process has the store open now: an empty log left behind may go.)
    if let Ok(m) = std::fs::metadata(&wal) {
        assert_eq!(m.len(), 0, "the last import truncated its log");
        std::fs::remove_file(&wal).unwrap();
    }
    std::fs::hard_link(&other, &wal).unwrap();
    let out = cli(&["import", "--db", &url, more.to_str().unwrap()]);
    let links = std::fs::symlink_metadata(&wal).map(|m| std::os::unix::fs::MetadataExt::nlink(&m));
    assert_eq!(
        out.status.code(),
        Some(78),
        "{} has {links:?} links now; stdout: {}; stderr: {}",
        wal.display(),
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains(&format!("{} has 2 hard links", wal.display())), "{}", stderr(&out));
    std::fs::remove_file(&wal).unwrap();
    std::fs::remove_file(&other).unwrap();
    assert_eq!(snapshot(), before, "nothing stored changed");

    // One name again, reached through a symbolic link: SQLite resolves it.
    let sym = dir.path().join("ln-sym.db");
    std::os::unix::fs::symlink(&db, &sym).unwrap();
    let out = cli(&["import", "--db", &format!("sqlite://{}", sym.display()), more.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot().len(), before.len() + 3, "a version, a record and its changed code");
}

/// The value of the metric line starting with `name` (labels included), if any.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
}

/// A write after a big import does not copy the import's write-ahead log:
/// the import leaves the log copied into the database and cut to zero
/// bytes before it exits (once, a server's next commit copied it, seconds
/// past `--write-wait-ms`), and the server's own log is copied by its
/// background checkpointer (counted in /metrics), never in a request.
#[tokio::test]
async fn an_import_leaves_the_write_ahead_log_empty_and_the_server_checkpoints_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("credit.db");
    let wal = dir.path().join("credit.db-wal");
    let url = format!("sqlite://{}", db.display());
    let keys = keys_file(dir.path());
    let server = CliServer::spawn(&["serve", "--db", &url, "--keys", keys.to_str().unwrap(), "--write-wait-ms", "1000"]).await;
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(server.channel.clone());
    let put = |id: &str, n: u32| pb::PutRecordsRequest {
        records: vec![to_proto(evaluation_json(id, &crate::assessment::code(2_000 + n), json!({})))],
        source: String::new(),
    };
    data.put_records(put("wal-1", 1)).await.unwrap();

    let rows = 20_000u32;
    let mut csv = String::from("credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\n");
    for n in 0..rows {
        csv.push_str(&format!(
            "{},测试{n},highway_construction,440000,2025,A,,2026-03-01,2027-02-28\n",
            crate::assessment::code(3_000_000 + n)
        ));
    }
    let big = file(dir.path(), "big.csv", csv);
    import(&url, &big).await;
    // stat only: the test never opens the server's files.
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 0, "the import left {size} bytes of write-ahead log for the next writer to copy");

    // A live write, then the background checkpointer's next round copies it.
    let complete = "credit_tender_store_wal_checkpoints_total{outcome=\"complete\"}";
    let before = metric(&http_get(server.addr, "/metrics").await.1, complete).expect("the checkpoint counter is exported");
    data.put_records(put("wal-2", 2)).await.unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        last = http_get(server.addr, "/metrics").await.1;
        if metric(&last, complete).unwrap_or(0.0) >= before + 2.0 {
            break;
        }
        // A bounded poll of the server's own counter: another process's
        // background round has no event a client can await.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metric(&last, complete).unwrap_or(0.0) >= before + 2.0, "no background checkpoint ran after the write:\n{last}");
    let profile = data.get_profile(pb::GetProfileRequest { credit_code: crate::assessment::code(2_002), ..Default::default() }).await;
    assert_eq!(profile.unwrap().into_inner().records.len(), 1);
}
