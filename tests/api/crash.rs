//! Crash safety: kill -9 the server while providers are writing, restart it,
//! and every acknowledged record must be there. `CRASH_CYCLES` sets the
//! cycles per store (3 in CI; BENCHMARKS.md has the 50-cycle run).

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn cycles_on(db: &TestDb) -> (usize, usize) {
    let cycles = knob("CRASH_CYCLES", 3, 1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(dir.path());
    let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
    // How many writes are acknowledged, for awaiting (not polling) them.
    let count = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let mut next = 0u32;
    for cycle in 0..cycles {
        let mut server = CliServer::spawn(&["serve", "--db", &db.url, "--keys", keys.to_str().unwrap()]).await;
        let killed = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4u32 {
            let channel = server.channel.clone();
            let (acked, count, killed) = (acked.clone(), count.clone(), killed.clone());
            let base = next + w * 10_000;
            writers.push(tokio::spawn(async move {
                let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(channel);
                for i in 0..10_000u32 {
                    let n = base + i;
                    let code = crate::assessment::code(100_000 + n);
                    let r = to_proto(evaluation_json(&format!("crash-{n}"), &code, json!({})));
                    match data.put_records(pb::PutRecordsRequest { records: vec![r], source: String::new() }).await {
                        Ok(_) => {
                            acked.lock().unwrap().push(n);
                            count.send_modify(|c| *c += 1);
                        }
                        // The kill ends the writes; any error before it is the server's fault.
                        Err(_) if killed.load(Ordering::SeqCst) => return Ok(()),
                        Err(status) => return Err(format!("write crash-{n} failed before the kill: {status:?}")),
                    }
                }
                Ok(())
            }));
        }
        next += 4 * 10_000;
        // Let writes flow, then kill without warning, mid-stream.
        let target = acked.lock().unwrap().len() + 20 + cycle % 7;
        let mut acks = count.subscribe();
        let flowing = tokio::time::timeout(Duration::from_secs(60), acks.wait_for(|n| *n >= target)).await.is_ok();
        assert!(flowing, "[{}] cycle {cycle}: fewer than {target} writes acknowledged after 60 s", db.backend);
        killed.store(true, Ordering::SeqCst);
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        for w in writers {
            if let Err(e) = w.await.expect("a writer panicked") {
                panic!("[{}] cycle {cycle}: {e}", db.backend);
            }
        }
    }
    // Restart once more and look for every acknowledged record.
    let server = CliServer::spawn(&["serve", "--db", &db.url, "--keys", keys.to_str().unwrap()]).await;
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(server.channel.clone());
    let acked = acked.lock().unwrap().clone();
    for n in &acked {
        let code = crate::assessment::code(100_000 + n);
        let p = data.get_profile(pb::GetProfileRequest { credit_code: code, as_of: None, data_version: None }).await.unwrap().into_inner();
        assert!(
            p.records
                .iter()
                .any(|r| matches!(&r.record.as_ref().unwrap().kind, Some(pb::record::Kind::Evaluation(e)) if e.id == format!("crash-{n}"))),
            "[{}] acknowledged record crash-{n} is missing after kill -9",
            db.backend
        );
    }
    (cycles, acked.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    for db in backends().await {
        let (cycles, checked) = cycles_on(&db).await;
        println!("[{}] {cycles} kill -9 cycles, {checked} acknowledged records checked, 0 lost", db.backend);
        assert!(checked > 0);
    }
}
