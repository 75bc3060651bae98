//! Load generator: measures each scenario against one running server, next
//! to that server's own grpc.health.v1 Check (the ceiling of the stack).
//!
//! ```sh
//! cargo build --release --examples
//! taskset -c 1 target/release/credit-tender demo --listen 127.0.0.1:50051 &
//! taskset -c 0 target/release/examples/loadgen --server http://127.0.0.1:50051
//! ```
//! The generator creates its own firms and tenders through the API (names
//! start with LOADGEN), so any server will do: demo, SQLite or PostgreSQL.
//! Against a server with TLS and principals, give `--ca` and the tokens of a
//! platform (region 110000) and a provider (issuer 110000):
//! `loadgen --server https://HOST:PORT --ca ca.pem --token ct_… --provider-token ct_…`.

use clap::Parser;
use credit_tender::domain::CreditCode;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

fn token(t: Option<&str>) -> Bearer {
    Bearer::new(t).expect("a token is header-safe")
}

/// A codec that sends and takes protobuf bytes as they are.
mod raw {
    use prost::bytes::{Buf, BufMut};
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    pub(crate) struct Raw;
    pub(crate) struct Bytes;

    impl Encoder for Bytes {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Bytes {
        type Item = prost::bytes::Bytes;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<prost::bytes::Bytes>, Status> {
            let n = src.remaining();
            Ok(Some(src.copy_to_bytes(n)))
        }
    }

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = prost::bytes::Bytes;
        type Encoder = Bytes;
        type Decoder = Bytes;
        fn encoder(&mut self) -> Bytes {
            Bytes
        }
        fn decoder(&mut self) -> Bytes {
            Bytes
        }
    }
}

/// A connection that sends the platform's token.
type Ch = InterceptedService<Channel, Bearer>;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// A worker whose call is shed waits as the server's retry hint says
    /// (grpc-retry-pushback-ms) before its next call, as a gRPC client with
    /// a retry policy does; without it, it calls again at once (the
    /// harshest client).
    #[arg(long)]
    honour_retry: bool,
    /// HTTP/2 connections to open.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight at once, across connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Requests in flight for the AssessTender scenario (a committee's screen
    /// refreshing, not a burst).
    #[arg(long, default_value_t = 4)]
    tender_concurrency: usize,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of unmeasured load before each scenario.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Scenarios to run, comma-separated: health, assess-hit, assess-hit-raw
    /// (the same, the answer's bytes not decoded), assess-hit-connect-json and
    /// assess-hit-connect-proto (the same through the Connect door, a POST of
    /// JSON or of binary protobuf, the answer's bytes not decoded), assess-sign,
    /// assess-cold, assess-tender, deposit-burst, log-latency (time from a new
    /// statement's answer to the first checkpoint that covers it),
    /// tender-after-write (the 50-bid table's first AssessTender right after a
    /// write touching 10 of its bidders; needs a server without principals,
    /// or a --token that may also write), overload-hit and overload-sign
    /// (cached Assess and new statements at 1×, 2×, 4×, 8× --sustainable and
    /// 1× again: admitted p99 against the unloaded one, and the share shed),
    /// assess-bare (assess-hit against a bare tonic server answering the
    /// same bytes from memory, `examples/bare_tonic.rs`; see --bare).
    #[arg(long, default_value = "health,assess-hit,assess-sign,assess-cold,assess-tender,deposit-burst")]
    mix: String,
    /// Distinct firms created for the cold scenario.
    #[arg(long, default_value_t = 200_000)]
    cold_firms: u32,
    /// CA certificate (PEM) to trust, for an https:// server.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Bearer token of a platform principal (regions 110000), sent with every measured call.
    #[arg(long)]
    token: Option<String>,
    /// Bearer token of a provider principal (issuer 110000), for creating the firms; default --token.
    #[arg(long)]
    provider_token: Option<String>,
    /// The concurrency the server sustains (requests in flight at which
    /// throughput stops growing): the overload scenarios run at 1×, 2×, 4×
    /// and 8× it, then at 1× again.
    #[arg(long, default_value_t = 8)]
    sustainable: usize,
    /// Tenders registered for the new-statement scenarios: each (tender,
    /// hot firm) pair is asked once, so there are 50 fresh pairs per tender.
    #[arg(long, default_value_t = 2_000)]
    sign_tenders: usize,
    /// For assess-bare: a bare tonic server already running (bare_tonic);
    /// without it, loadgen starts target/…/examples/bare_tonic itself, next
    /// to its own executable, with the server's cached answer.
    #[arg(long)]
    bare: Option<String>,
    /// A prefix for ids, so repeated runs on one store do not collide.
    #[arg(long, default_value_t = format!("LG{}", std::process::id()))]
    run: String,
}

fn code(n: u32) -> String {
    CreditCode::with_check_character(&format!("91110000LG{n:07}")).expect("valid").to_string()
}

fn firm(n: u32) -> pb::Record {
    let grade = ["AA", "A", "B", "C"][(n % 4) as usize];
    pb::Record {
        kind: Some(pb::record::Kind::Evaluation(pb::Evaluation {
            id: format!("loadgen-eval-{n}"),
            document_ref: "LOADGEN".into(),
            credit_code: code(n),
            entity_name: format!("LOADGEN 测试企业 {n}"),
            domain: "highway_construction".into(),
            issuer: "110000".into(),
            year: 2025,
            grade: grade.into(),
            valid_from: "2026-01-01".into(),
            valid_to: "2030-12-31".into(),
            ..Default::default()
        })),
    }
}

fn bidder(n: u32) -> Option<pb::Bidder> {
    Some(pb::Bidder { credit_codes: vec![code(n)] })
}

struct Setup {
    channels: Vec<Ch>,
    hot_tender: String,
    sign_tenders: Vec<String>,
    table_tender: String,
}

const HOT_FIRMS: u32 = 50;

/// A setup call, tried again after the server's retry hint while it is shed
/// (RESOURCE_EXHAUSTED): with a queue target set as low as the overload runs
/// set it, even an unloaded server refuses some of the setup's large writes.
async fn patient<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == tonic::Code::ResourceExhausted && tries < 100 => {
                tries += 1;
                let ms = s.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Err(s) => return Err(s),
        }
    }
}

async fn setup(args: &Args) -> Result<Setup, Box<dyn std::error::Error>> {
    let mut raw = Vec::new();
    for _ in 0..args.connections {
        let mut endpoint = tonic::transport::Endpoint::from_shared(args.server.clone())?;
        if let Some(ca) = &args.ca {
            let ca = tonic::transport::Certificate::from_pem(std::fs::read(ca)?);
            endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?;
        }
        raw.push(endpoint.connect().await?);
    }
    let platform = token(args.token.as_deref());
    let provider = token(args.provider_token.as_deref().or(args.token.as_deref()));
    let channels: Vec<Ch> = raw.iter().map(|c| InterceptedService::new(c.clone(), platform.clone())).collect();
    let data = pb::credit_data_service_client::CreditDataServiceClient::new(InterceptedService::new(raw[0].clone(), provider));
    let total = HOT_FIRMS + args.cold_firms;
    let t = Instant::now();
    let mut n = 0;
    while n < total {
        let end = (n + 10_000).min(total);
        let request = pb::PutRecordsRequest { records: (n..end).map(firm).collect(), source: "loadgen".into() };
        patient(|| {
            let (mut data, request) = (data.clone(), request.clone());
            async move { data.put_records(request).await }
        })
        .await?;
        n = end;
    }
    eprintln!("setup: {total} firms stored in {:.1}s", t.elapsed().as_secs_f64());
    let tenders = pb::tender_service_client::TenderServiceClient::new(channels[0].clone());
    let deadline = pbjson_types::Timestamp { seconds: 1_797_300_000, nanos: 0 }; // mid-December 2026
    let register = |id: String| pb::RegisterTenderRequest {
        tender_id: id,
        policy_id: "national-template".into(),
        terms: Some(pb::TenderTerms {
            title: "LOADGEN".into(),
            domain: "highway_construction".into(),
            region: "110105".into(),
            bid_deadline: Some(deadline),
            estimated_price_fen: 1_000_000_000,
            nominal_deposit_fen: 10_000_000,
            evaluation_method: "comprehensive_scoring".into(),
        }),
    };
    let hot_tender = format!("{}-HOT", args.run);
    let register_tender = |id: String| {
        let (tenders, request) = (tenders.clone(), register(id));
        patient(move || {
            let (mut tenders, request) = (tenders.clone(), request.clone());
            async move { tenders.register_tender(request).await }
        })
    };
    register_tender(hot_tender.clone()).await?;
    let table_tender = format!("{}-TABLE", args.run);
    register_tender(table_tender.clone()).await?;
    for i in 0..50 {
        let request = pb::RegisterBidRequest { tender_id: table_tender.clone(), bidder: bidder(i) };
        patient(|| {
            let (mut tenders, request) = (tenders.clone(), request.clone());
            async move { tenders.register_bid(request).await }
        })
        .await?;
    }
    let mut sign_tenders = Vec::new();
    for i in 0..args.sign_tenders {
        let id = format!("{}-SIGN-{i}", args.run);
        register_tender(id.clone()).await?;
        sign_tenders.push(id);
    }
    Ok(Setup { channels, hot_tender, sign_tenders, table_tender })
}

#[derive(Clone, Copy, PartialEq)]
enum ConnectCodec {
    Json,
    Proto,
}

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Health,
    AssessHit,
    AssessHitRaw,
    /// The cached Assess through the Connect door, JSON or binary.
    AssessHitConnect(ConnectCodec),
    AssessSign,
    AssessCold,
    AssessTender,
    DepositBurst,
}

struct Report {
    name: &'static str,
    requests: usize,
    errors: u64,
    seconds: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

/// How one call ended: answered, shed (RESOURCE_EXHAUSTED), or another error.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Answered,
    /// Refused, with the wait the server asked for (ms).
    Shed(u64),
    Failed,
}

fn outcome<T>(r: Result<T, tonic::Status>) -> Outcome {
    match r {
        Ok(_) => Outcome::Answered,
        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
            Outcome::Shed(s.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(100))
        }
        Err(_) => Outcome::Failed,
    }
}

async fn one(s: Scenario, ch: Ch, setup: &Setup, i: u64, cold_base: u32, cold_firms: u32) -> Outcome {
    match s {
        Scenario::Health => outcome(HealthClient::new(ch).check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await),
        Scenario::AssessHit => outcome(
            pb::assessment_service_client::AssessmentServiceClient::new(ch)
                .assess(pb::AssessRequest {
                    tender_id: setup.hot_tender.clone(),
                    bidder: bidder((i % HOT_FIRMS as u64) as u32),
                    contract_price_fen: None,
                })
                .await,
        ),
        Scenario::AssessHitRaw => {
            // The same call, the answer's bytes taken as they come: what the
            // server costs, without this client's decoding of ~5 KB.
            use prost::Message;
            let request = pb::AssessRequest {
                tender_id: setup.hot_tender.clone(),
                bidder: bidder((i % HOT_FIRMS as u64) as u32),
                contract_price_fen: None,
            };
            let mut grpc = tonic::client::Grpc::new(ch);
            if grpc.ready().await.is_err() {
                return Outcome::Failed;
            }
            let path = tonic::codegen::http::uri::PathAndQuery::from_static("/credit_tender.v1.AssessmentService/Assess");
            match grpc.unary(tonic::Request::new(request.encode_to_vec()), path, raw::Raw).await {
                Ok(r) if r.get_ref().is_empty() => Outcome::Failed,
                r => outcome(r),
            }
        }
        Scenario::AssessHitConnect(codec) => {
            // A POST as a platform's HTTP client sends it (here over the
            // same HTTP/2 connections); the answer's bytes taken as they come.
            use http_body_util::BodyExt;
            use prost::Message;
            use tower::ServiceExt;
            let request = pb::AssessRequest {
                tender_id: setup.hot_tender.clone(),
                bidder: bidder((i % HOT_FIRMS as u64) as u32),
                contract_price_fen: None,
            };
            let (content_type, body) = match codec {
                ConnectCodec::Json => ("application/json", serde_json::to_vec(&request).expect("JSON")),
                ConnectCodec::Proto => ("application/proto", request.encode_to_vec()),
            };
            let req = tonic::codegen::http::Request::post("/credit_tender.v1.AssessmentService/Assess")
                .header("content-type", content_type)
                .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(body))))
                .expect("a request");
            match ch.oneshot(req).await {
                Ok(res) if res.status() == 200 => match res.into_body().collect().await.map(|b| b.to_bytes()) {
                    Ok(b) if !b.is_empty() => Outcome::Answered,
                    _ => Outcome::Failed,
                },
                Ok(res) if res.status() == 429 => Outcome::Shed(100),
                _ => Outcome::Failed,
            }
        }
        Scenario::AssessSign => {
            // Each (tender, firm) pair once: profile cached, statement new.
            let t = &setup.sign_tenders[(i / HOT_FIRMS as u64) as usize % setup.sign_tenders.len()];
            outcome(
                pb::assessment_service_client::AssessmentServiceClient::new(ch)
                    .assess(pb::AssessRequest {
                        tender_id: t.clone(),
                        bidder: bidder((i % HOT_FIRMS as u64) as u32),
                        contract_price_fen: None,
                    })
                    .await,
            )
        }
        Scenario::AssessCold => outcome(
            pb::assessment_service_client::AssessmentServiceClient::new(ch)
                .assess(pb::AssessRequest {
                    tender_id: setup.hot_tender.clone(),
                    bidder: bidder(HOT_FIRMS + cold_base + (i as u32 % cold_firms)),
                    contract_price_fen: None,
                })
                .await,
        ),
        Scenario::AssessTender => outcome(
            pb::assessment_service_client::AssessmentServiceClient::new(ch)
                .assess_tender(pb::AssessTenderRequest { tender_id: setup.table_tender.clone(), ..Default::default() })
                .await,
        ),
        Scenario::DepositBurst => outcome(
            pb::assessment_service_client::AssessmentServiceClient::new(ch)
                .check_deposit(pb::CheckDepositRequest {
                    tender_id: setup.hot_tender.clone(),
                    bidder: bidder(HOT_FIRMS + cold_base + (i as u32 % 10_000)),
                    offered_fen: 5_000_000,
                    form: "cash".into(),
                    contract_price_fen: None,
                })
                .await,
        ),
    }
}

/// What one phase of load measured.
struct Run {
    /// Latencies of answered requests, in µs.
    lat: Vec<u32>,
    /// Refused with RESOURCE_EXHAUSTED.
    shed: u64,
    /// Any other error.
    failed: u64,
    seconds: f64,
}

/// Runs `s` at `concurrency` in flight for `dur` (or until `counter` reaches
/// `limit`): latencies of answered requests, shed and failed ones apart.
#[allow(clippy::too_many_arguments)] // one phase's whole description; a struct would only rename them
async fn drive_at(
    s: Scenario,
    setup: &Arc<Setup>,
    args: &Args,
    concurrency: usize,
    dur: Duration,
    limit: Option<u64>,
    counter: &Arc<AtomicU64>,
    cold_base: u32,
) -> Run {
    let start = Instant::now();
    let stop = start + dur;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let ch = setup.channels[w % setup.channels.len()].clone();
        let setup = setup.clone();
        let counter = counter.clone();
        let cold_firms = args.cold_firms.max(1);
        let honour = args.honour_retry;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut shed, mut failed) = (0u64, 0u64);
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= stop || limit.is_some_and(|l| i >= l) {
                    break;
                }
                let t = Instant::now();
                // Latency of answered requests only: a shed one is counted apart.
                match one(s, ch.clone(), &setup, i, cold_base, cold_firms).await {
                    Outcome::Answered => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Outcome::Shed(wait) => {
                        shed += 1;
                        if honour {
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                    }
                    Outcome::Failed => failed += 1,
                }
            }
            (lat, shed, failed)
        }));
    }
    let mut run = Run { lat: Vec::new(), shed: 0, failed: 0, seconds: 0.0 };
    for t in tasks {
        let (l, shed, failed) = t.await.expect("worker");
        run.lat.extend(l);
        run.shed += shed;
        run.failed += failed;
    }
    run.seconds = start.elapsed().as_secs_f64();
    run
}

/// [`drive_at`] at the scenario's usual concurrency: (latencies, errors of
/// any kind, seconds).
async fn drive(
    s: Scenario,
    setup: &Arc<Setup>,
    args: &Args,
    dur: Duration,
    limit: Option<u64>,
    counter: &Arc<AtomicU64>,
    cold_base: u32,
) -> (Vec<u32>, u64, f64) {
    let concurrency = if s == Scenario::AssessTender { args.tender_concurrency } else { args.concurrency };
    let run = drive_at(s, setup, args, concurrency, dur, limit, counter, cold_base).await;
    (run.lat, run.shed + run.failed, run.seconds)
}

/// Cached Assess or new statements at 1×, 2×, 4× and 8× the sustainable
/// concurrency, then 1× again (load dropped), each for `--duration`: the
/// admitted requests' p99 against the unloaded (first 1×) one, and the
/// share shed. Printed as a Markdown table.
async fn overload(s: Scenario, label: &str, setup: &Arc<Setup>, args: &Args) {
    let n = args.sustainable.max(1);
    // New statements: one counter across the phases, so no pair is asked twice.
    let counter = Arc::new(AtomicU64::new(0));
    let limit = (s == Scenario::AssessSign).then(|| HOT_FIRMS as u64 * setup.sign_tenders.len() as u64);
    if s == Scenario::AssessSign {
        // The hot profiles cached first; the statements stay new.
        drive_at(Scenario::AssessHit, setup, args, n, Duration::from_millis(300), None, &Arc::new(AtomicU64::new(0)), 0).await;
    } else {
        drive_at(s, setup, args, n, Duration::from_secs(args.warmup), None, &Arc::new(AtomicU64::new(0)), 0).await;
    }
    println!("| {label} | load | in flight | answered/s | p50 ms | p99 ms | p99 vs unloaded | shed | share shed | other errors |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut unloaded_p99 = None;
    for (k, name) in [(1, "1× (unloaded)"), (2, "2×"), (4, "4×"), (8, "8×"), (1, "1× again (load dropped)")] {
        let c = n * k;
        let mut run = drive_at(s, setup, args, c, Duration::from_secs(args.duration), limit, &counter, 0).await;
        run.lat.sort_unstable();
        let p99 = pct(&run.lat, 0.99);
        let base = *unloaded_p99.get_or_insert(p99);
        let answered = run.lat.len() as u64;
        let share = 100.0 * run.shed as f64 / (answered + run.shed + run.failed).max(1) as f64;
        let line = format!(
            "| {label} | {name} | {c} | {:.0} | {:.3} | {p99:.3} | {} | {} | {share:.2}% | {} |",
            answered as f64 / run.seconds,
            pct(&run.lat, 0.5),
            if base > 0.0 { format!("{:.2}×", p99 / base) } else { "–".into() },
            run.shed,
            run.failed
        );
        eprintln!("{line}");
        println!("{line}");
        if limit.is_some_and(|l| counter.load(Ordering::Relaxed) >= l) {
            eprintln!("{label}: every fresh (tender, firm) pair is spent; give more --sign-tenders for longer phases");
            break;
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let setup = Arc::new(setup(&args).await?);
    let mut reports = Vec::new();
    let mut cold_next = 0u32;
    for name in args.mix.split(',').map(str::trim) {
        if name == "log-latency" {
            log_latency(&setup, &args).await?;
            continue;
        }
        if name == "tender-after-write" {
            tender_after_write(&setup).await?;
            continue;
        }
        if name == "overload-hit" {
            overload(Scenario::AssessHit, "Assess, statement cached", &setup, &args).await;
            continue;
        }
        if name == "overload-sign" {
            overload(Scenario::AssessSign, "Assess, new statement to sign", &setup, &args).await;
            continue;
        }
        if name == "assess-bare" {
            reports.push(bare(&setup, &args).await?);
            continue;
        }
        let (s, label) = match name {
            "health" => (Scenario::Health, "health Check (ceiling)"),
            "assess-hit" => (Scenario::AssessHit, "Assess, statement cached"),
            "assess-hit-raw" => (Scenario::AssessHitRaw, "Assess, statement cached, bytes undecoded"),
            "assess-hit-connect-json" => (Scenario::AssessHitConnect(ConnectCodec::Json), "Assess, cached, Connect JSON, bytes undecoded"),
            "assess-hit-connect-proto" => {
                (Scenario::AssessHitConnect(ConnectCodec::Proto), "Assess, cached, Connect binary, bytes undecoded")
            }
            "assess-sign" => (Scenario::AssessSign, "Assess, new statement to sign"),
            "assess-cold" => (Scenario::AssessCold, "Assess, cold (store + sign)"),
            "assess-tender" => (Scenario::AssessTender, "AssessTender, 50 bids, hot"),
            "deposit-burst" => (Scenario::DepositBurst, "CheckDeposit, 10,000 new bidders"),
            other => return Err(format!("unknown scenario '{other}'").into()),
        };
        let counter = Arc::new(AtomicU64::new(0));
        let (warm, limit) = match s {
            // Warm-up would spend the fresh pairs and firms the scenario measures.
            Scenario::AssessSign | Scenario::AssessCold | Scenario::DepositBurst => (false, None),
            _ => (true, None),
        };
        if warm {
            drive(s, &setup, &args, Duration::from_secs(args.warmup), None, &counter, cold_next).await;
        }
        let (dur, limit) = match s {
            Scenario::DepositBurst => (Duration::from_secs(600), Some(10_000)),
            Scenario::AssessSign => (Duration::from_secs(args.duration), Some(HOT_FIRMS as u64 * setup.sign_tenders.len() as u64)),
            Scenario::AssessCold => (Duration::from_secs(args.duration), Some(u64::from(args.cold_firms))),
            _ => (Duration::from_secs(args.duration), limit),
        };
        if s == Scenario::AssessSign {
            // Make sure the hot profiles are cached first.
            drive(Scenario::AssessHit, &setup, &args, Duration::from_millis(300), None, &Arc::new(AtomicU64::new(0)), 0).await;
        }
        let counter = Arc::new(AtomicU64::new(0));
        let (mut lat, errors, seconds) = drive(s, &setup, &args, dur, limit, &counter, cold_next).await;
        if matches!(s, Scenario::AssessCold) {
            cold_next += lat.len() as u32;
        }
        if s == Scenario::DepositBurst {
            cold_next += 10_000;
        }
        lat.sort_unstable();
        let r =
            Report { name: label, requests: lat.len(), errors, seconds, p50: pct(&lat, 0.5), p99: pct(&lat, 0.99), p999: pct(&lat, 0.999) };
        eprintln!(
            "{:<36} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  ({} requests, {} errors)",
            r.name,
            r.requests as f64 / r.seconds,
            r.p50,
            r.p99,
            r.p999,
            r.requests,
            r.errors
        );
        reports.push(r);
    }
    if reports.is_empty() {
        return Ok(());
    }
    let ceiling = reports.iter().find(|r| r.name.starts_with("health")).map(|r| (r.requests as f64 / r.seconds, r.p99));
    println!("| scenario | req/s | p50 ms | p99 ms | p99.9 ms | rate vs health | p99 vs health | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &reports {
        let rate = r.requests as f64 / r.seconds;
        let (vs_rate, vs_p99) = match ceiling {
            Some((c, p)) if c > 0.0 && p > 0.0 => (format!("{:.0}%", 100.0 * rate / c), format!("{:.2}×", r.p99 / p)),
            _ => ("–".into(), "–".into()),
        };
        println!("| {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} |", r.name, rate, r.p50, r.p99, r.p999, vs_rate, vs_p99, r.errors);
    }
    let rate = |prefix: &str| reports.iter().find(|r| r.name.starts_with(prefix)).map(|r| r.requests as f64 / r.seconds);
    if let (Some(cached), Some(bare)) = (rate("Assess, statement cached"), rate(BARE_LABEL)) {
        println!("\ncached Assess vs bare tonic (same bytes from memory): {:.0}%", 100.0 * cached / bare);
    }
    Ok(())
}

const BARE_LABEL: &str = "bare tonic, Assess's cached bytes from memory";

/// A bare tonic server answering Assess with the bytes of the measured
/// server's cached answer, started here unless --bare names one; kills it
/// when dropped.
struct BareServer(Option<std::process::Child>);

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The assess-hit scenario against a bare tonic server that answers the
/// same bytes the measured server answers for a cached Assess.
async fn bare(setup: &Arc<Setup>, args: &Args) -> Result<Report, Box<dyn std::error::Error>> {
    use prost::Message;
    // The measured server's cached answer, as bytes (asked twice: the second is a hit).
    let request = pb::AssessRequest { tender_id: setup.hot_tender.clone(), bidder: bidder(0), contract_price_fen: None };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/credit_tender.v1.AssessmentService/Assess");
    let mut answer = prost::bytes::Bytes::new();
    for _ in 0..2 {
        let mut grpc = tonic::client::Grpc::new(setup.channels[0].clone());
        grpc.ready().await?;
        answer = grpc.unary(tonic::Request::new(request.encode_to_vec()), path.clone(), raw::Raw).await?.into_inner();
    }
    let (_server, url) = match &args.bare {
        Some(url) => (BareServer(None), url.clone()),
        None => {
            let file = std::env::temp_dir().join(format!("loadgen-answer-{}.bin", std::process::id()));
            std::fs::write(&file, &answer)?;
            let exe = std::env::current_exe()?.with_file_name("bare_tonic");
            let mut child = std::process::Command::new(&exe)
                .args(["--listen", "127.0.0.1:0", "--answer"])
                .arg(&file)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e} (cargo build --release --example bare_tonic)", exe.display()))?;
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("piped")), &mut line)?;
            let _ = std::fs::remove_file(&file);
            (BareServer(Some(child)), format!("http://{}", line.trim()))
        }
    };
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?.connect().await?;
        channels.push(InterceptedService::new(channel, token(None)));
    }
    let mut grpc = tonic::client::Grpc::new(channels[0].clone());
    grpc.ready().await?;
    let theirs = grpc.unary(tonic::Request::new(request.encode_to_vec()), path, raw::Raw).await?.into_inner();
    eprintln!("assess-bare: the server's cached answer is {} bytes, the bare server's {}", answer.len(), theirs.len());
    let bare = Arc::new(Setup {
        channels,
        hot_tender: setup.hot_tender.clone(),
        sign_tenders: setup.sign_tenders.clone(),
        table_tender: setup.table_tender.clone(),
    });
    let counter = Arc::new(AtomicU64::new(0));
    drive(Scenario::AssessHit, &bare, args, Duration::from_secs(args.warmup), None, &counter, 0).await;
    let (mut lat, errors, seconds) = drive(Scenario::AssessHit, &bare, args, Duration::from_secs(args.duration), None, &counter, 0).await;
    lat.sort_unstable();
    let r = Report {
        name: BARE_LABEL,
        requests: lat.len(),
        errors,
        seconds,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        p999: pct(&lat, 0.999),
    };
    eprintln!(
        "{:<36} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} errors)",
        r.name,
        r.requests as f64 / r.seconds,
        r.p50,
        r.p99,
        r.errors
    );
    Ok(r)
}

/// Fresh statements at the tender concurrency for `--duration` seconds, and
/// a poller reading the newest checkpoint every 2 ms: how long after each
/// answer a checkpoint covered it.
async fn log_latency(setup: &Arc<Setup>, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let stop = Instant::now() + Duration::from_secs(args.duration);
    let answers: Arc<std::sync::Mutex<Vec<(Instant, u64)>>> = Default::default();
    let counter = Arc::new(AtomicU64::new(50_000));
    let mut tasks = Vec::new();
    for w in 0..args.tender_concurrency {
        let (ch, setup, answers, counter) =
            (setup.channels[w % setup.channels.len()].clone(), setup.clone(), answers.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = pb::assessment_service_client::AssessmentServiceClient::new(ch);
            while Instant::now() < stop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = &setup.sign_tenders[(i / HOT_FIRMS as u64) as usize % setup.sign_tenders.len()];
                let req =
                    pb::AssessRequest { tender_id: t.clone(), bidder: bidder((i % HOT_FIRMS as u64) as u32), contract_price_fen: None };
                if let Some(index) = client.assess(req).await.ok().and_then(|r| r.into_inner().log_index) {
                    answers.lock().unwrap().push((Instant::now(), index));
                }
            }
        }));
    }
    let mut log = pb::log_service_client::LogServiceClient::new(setup.channels[0].clone());
    let mut seen: Vec<(Instant, u64)> = Vec::new();
    let newest = || answers.lock().unwrap().iter().map(|(_, i)| *i).max();
    loop {
        if let Ok(c) = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await {
            seen.push((Instant::now(), c.into_inner().tree_size));
        }
        let done = Instant::now() >= stop && tasks.iter().all(|t| t.is_finished());
        if done && newest().is_none_or(|n| seen.last().is_some_and(|(_, size)| *size > n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let answers = answers.lock().unwrap().clone();
    if answers.is_empty() {
        return Err("log-latency: no answer carried a log index (is the server running without the log?)".into());
    }
    let mut delays: Vec<u32> = answers
        .iter()
        .filter_map(|(at, index)| seen.iter().find(|(t, size)| t >= at && size > index).map(|(t, _)| (*t - *at).as_micros() as u32))
        .collect();
    delays.sort_unstable();
    eprintln!(
        "log-latency: {} statements; answer to covering checkpoint p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        pct(&delays, 1.0)
    );
    println!(
        "| answer → first covering checkpoint ({} statements) | p50 {:.1} ms | p99 {:.1} ms |",
        delays.len(),
        pct(&delays, 0.5),
        pct(&delays, 0.99)
    );
    Ok(())
}

/// 50 rounds of: a write touching 10 of the table tender's bidders (a new
/// list entry each), then at once the committee's AssessTender; the latency
/// of that first call, which a background refresh may have made a hit.
async fn tender_after_write(setup: &Arc<Setup>) -> Result<(), Box<dyn std::error::Error>> {
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(setup.channels[0].clone());
    let mut assess = pb::assessment_service_client::AssessmentServiceClient::new(setup.channels[1 % setup.channels.len()].clone());
    let (mut lat, mut later) = (Vec::new(), Vec::new());
    for round in 0..60u32 {
        let records = (0..10u32)
            .map(|k| {
                let n = (round * 10 + k) % 50;
                pb::Record {
                    kind: Some(pb::record::Kind::ListEntry(pb::ListEntry {
                        id: format!("loadgen-list-{round}-{k}-{}", std::process::id()),
                        document_ref: "LOADGEN".into(),
                        credit_code: code(n),
                        entity_name: format!("LOADGEN 测试企业 {n}"),
                        list: "key_attention".into(),
                        authority: "LOADGEN".into(),
                        decision_number: format!("LOADGEN-{round}-{k}"),
                        listed_on: "2026-01-01".into(),
                        expires_on: "2026-01-02".into(),
                    })),
                }
            })
            .collect();
        data.put_records(pb::PutRecordsRequest { records, source: "loadgen".into() }).await?;
        // Odd rounds: the committee asks 100 ms after the write, not at once.
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t = Instant::now();
        assess.assess_tender(pb::AssessTenderRequest { tender_id: setup.table_tender.clone(), ..Default::default() }).await?;
        let us = t.elapsed().as_micros() as u32;
        if round % 2 == 0 {
            lat.push(us)
        } else {
            later.push(us)
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (name, lat) in [("at once", &mut lat), ("100 ms later", &mut later)] {
        lat.sort_unstable();
        eprintln!(
            "tender-after-write, {name}: first AssessTender after a write touching 10 bidders: p50 {:.2} ms, p99 {:.2} ms",
            pct(lat, 0.5),
            pct(lat, 0.99)
        );
        println!(
            "| AssessTender {name} after a write touching 10 of its 50 bidders | p50 {:.2} ms | p99 {:.2} ms |",
            pct(lat, 0.5),
            pct(lat, 0.99)
        );
    }
    Ok(())
}
