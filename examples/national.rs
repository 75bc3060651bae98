//! National scale: how the store, the log and the answers hold up with
//! 10⁵–10⁶ firms, five records each, and a log of as many leaves.
//!
//! ```sh
//! cargo build --release --bin credit-tender --example national
//! python3 examples/import_bench/gen_rows.py 1000000 national.csv --per-firm 5
//! /usr/bin/time -f '%e s %M KB' target/release/credit-tender import --db sqlite:///tmp/n.db national.csv --document-ref x
//! target/release/examples/national log --db sqlite:///tmp/nlog.db --leaves 1000000
//! target/release/credit-tender serve --db sqlite:///tmp/n.db --keys keys.toml --listen 127.0.0.1:50125 &
//! target/release/examples/national serve --server http://127.0.0.1:50125 --csv national.csv
//! ```
//!
//! `log` appends leaves of a statement's size (2,300 bytes), which are not
//! statements (an audit of that log would rightly raise alarms), so it takes
//! only a store of its own: a store whose log holds anything else is refused.
//! It appends them through the
//! store, in batches as the log's sequencer writes them, then times a
//! checkpoint's publication, inclusion proofs and consistency proofs at the
//! log's size. `serve` asks a running server about firms of the file it
//! never saw asked: cold Assess (p50/p99), and committee tables of 50 cold
//! bidders each (the first AssessTender of each tender).

use clap::{Parser, Subcommand};
use credit_tender::log::Log;
use credit_tender::metrics::Metrics;
use credit_tender::proto::v1 as pb;
use credit_tender::signing::{Keyring, SharedKeyring};
use credit_tender::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Grows the store's log to `--leaves`, then times a checkpoint and proofs.
    Log {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 100_000)]
        leaves: u64,
        /// Leaves per append (the sequencer's batch is at most 512).
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Timed runs of each proof.
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
    /// Asks a running server about the file's firms, each once.
    Serve {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// The imported file (its credit codes are read).
        #[arg(long)]
        csv: std::path::PathBuf,
        /// Cold Assess requests (distinct firms).
        #[arg(long, default_value_t = 5_000)]
        assess: usize,
        /// Requests in flight for cold Assess.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Committee tables of 50 cold bidders.
        #[arg(long, default_value_t = 20)]
        tables: usize,
        #[arg(long, default_value_t = format!("NAT{}", std::process::id()))]
        run: String,
    },
}

/// SplitMix64: reproducible picks without a dependency for an example.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..hi` (the modulo bias is nothing at these sizes).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The `p` quantile of sorted latencies, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut lat: Vec<Duration>) {
    lat.sort();
    println!("| {name} | {} | {:.3} | {:.3} | {:.3} |", lat.len(), pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 1.0));
}

/// A leaf of a statement's size, distinct per index.
fn leaf(i: u64) -> Vec<u8> {
    let mut leaf = format!("{{\"national\":{i},\"pad\":\"").into_bytes();
    leaf.resize(2_290, b'x');
    leaf.extend_from_slice(b"\"}");
    leaf
}

async fn log(db: &str, leaves: u64, batch: usize, runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(db).await?;
    let start = store.log_size().await?;
    if start > 0 && !store.log_entries(0, 1).await?.first().is_some_and(|first| first.starts_with(b"{\"national\":")) {
        return Err(format!("{db}: its log holds statements; `log` appends made-up leaves, so give it a store of its own").into());
    }
    let t = Instant::now();
    let mut size = start;
    let mut checkpointed = Instant::now();
    while size < leaves {
        let end = (size + batch as u64).min(leaves);
        store.log_append(&(size..end).map(leaf).collect::<Vec<_>>()).await?;
        size = end;
        // The server's own checkpoint each second (`checkpoint_wal`): the
        // SQLite write-ahead log copied into the database, so that reads do
        // not look through gigabytes of it. Nothing for PostgreSQL.
        if checkpointed.elapsed() >= Duration::from_secs(1) {
            store.wal_checkpoint_and_restart().await?;
            checkpointed = Instant::now();
        }
    }
    store.wal_checkpoint_and_restart().await?;
    let appended = size - start;
    if appended > 0 {
        let s = t.elapsed().as_secs_f64();
        println!("appended {appended} leaves in {s:.1} s ({:.0} leaves/s)", appended as f64 / s);
    }
    let keys = SharedKeyring::new(Keyring::ephemeral(), None);
    let (log, sequencer) = Log::new(store.clone(), "national.example/log".into(), keys, Arc::new(Metrics::new()));
    let _sequencer = tokio::spawn(sequencer);
    println!("| at {size} leaves | runs | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut publish = Vec::new();
    for i in 0..20 {
        // Each publication of a size not yet published: one more leaf first.
        store.log_append(&[leaf(size + i)]).await?;
        let t = Instant::now();
        log.publish(0).await?;
        publish.push(t.elapsed());
    }
    summary("checkpoint publication", publish);
    let size = store.log_size().await?;
    let mut rng = Rng(25);
    let mut inclusion = Vec::with_capacity(runs);
    let mut consistency = Vec::with_capacity(runs);
    for _ in 0..runs {
        let index = rng.range(0, size);
        let t = Instant::now();
        log.inclusion(index, size).await?;
        inclusion.push(t.elapsed());
        let old = rng.range(1, size);
        let t = Instant::now();
        log.consistency(old, size).await?;
        consistency.push(t.elapsed());
    }
    summary("inclusion proof", inclusion);
    summary("consistency proof", consistency);
    Ok(())
}

type Channel = tonic::transport::Channel;

async fn register_tender(channel: &Channel, id: &str) -> Result<(), tonic::Status> {
    let deadline = pbjson_types::Timestamp { seconds: 1_797_300_000, nanos: 0 }; // mid-December 2026
    let request = pb::RegisterTenderRequest {
        tender_id: id.to_owned(),
        policy_id: "national-template".into(),
        terms: Some(pb::TenderTerms {
            title: "NATIONAL".into(),
            domain: "highway_construction".into(),
            region: "440300".into(),
            bid_deadline: Some(deadline),
            estimated_price_fen: 1_000_000_000,
            nominal_deposit_fen: 10_000_000,
            evaluation_method: "comprehensive_scoring".into(),
        }),
    };
    pb::tender_service_client::TenderServiceClient::new(channel.clone()).register_tender(request).await?;
    Ok(())
}

fn bidder(code: &str) -> Option<pb::Bidder> {
    Some(pb::Bidder { credit_codes: vec![code.to_owned()] })
}

/// Distinct credit codes of the file, shuffled.
fn codes_of(csv: &std::path::Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(csv)?;
    let mut codes: Vec<String> = text.lines().skip(1).filter_map(|l| l.split(',').next()).map(str::to_owned).collect();
    codes.sort_unstable();
    codes.dedup();
    // Fisher-Yates, seeded per run: a second run asks other firms.
    let mut rng = Rng(std::process::id().into());
    for i in (1..codes.len()).rev() {
        codes.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    Ok(codes)
}

async fn serve(
    server: String,
    csv: &std::path::Path,
    assess: usize,
    concurrency: usize,
    tables: usize,
    run: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let codes = codes_of(csv)?;
    if codes.len() < assess + 50 * tables {
        return Err(format!("{} has {} firms; the run asks {}", csv.display(), codes.len(), assess + 50 * tables).into());
    }
    let channel = tonic::transport::Endpoint::from_shared(server)?.connect().await?;
    let tender = format!("{run}-ASSESS");
    register_tender(&channel, &tender).await?;
    // Cold Assess: each firm once, `concurrency` in flight.
    let (cold, tabled) = codes.split_at(assess);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cold = Arc::new(cold.to_vec());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (channel, next, cold, tender) = (channel.clone(), next.clone(), cold.clone(), tender.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = pb::assessment_service_client::AssessmentServiceClient::new(channel);
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(code) = cold.get(i) else { return Ok::<_, tonic::Status>(lat) };
                let request = pb::AssessRequest { tender_id: tender.clone(), bidder: bidder(code), contract_price_fen: None };
                let t = Instant::now();
                client.assess(request).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await??);
    }
    println!("cold Assess: {} firms in {:.2} s ({concurrency} in flight)", lat.len(), t.elapsed().as_secs_f64());
    println!("| measure | runs | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    summary("cold Assess", lat);
    // Committee tables: 50 bidders never asked about, the tender's first AssessTender.
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(channel.clone());
    let mut client = pb::assessment_service_client::AssessmentServiceClient::new(channel.clone());
    let mut lat = Vec::new();
    for (n, firms) in tabled.chunks(50).take(tables).enumerate() {
        let id = format!("{run}-TABLE-{n}");
        register_tender(&channel, &id).await?;
        for code in firms {
            tenders.register_bid(pb::RegisterBidRequest { tender_id: id.clone(), bidder: bidder(code) }).await?;
        }
        let t = Instant::now();
        let table = client.assess_tender(pb::AssessTenderRequest { tender_id: id, ..Default::default() }).await?.into_inner();
        lat.push(t.elapsed());
        if table.bids.len() != 50 {
            return Err(format!("a table of 50 bids answered {} rows", table.bids.len()).into());
        }
    }
    summary("AssessTender, 50 cold bidders (first call)", lat);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Args::parse().command {
        Command::Log { db, leaves, batch, runs } => log(&db, leaves, batch, runs).await,
        Command::Serve { server, csv, assess, concurrency, tables, run } => serve(server, &csv, assess, concurrency, tables, &run).await,
    }
}
