//! When PostgreSQL goes away (issue 28): a TCP proxy of the test's own sits
//! between one replica and PostgreSQL and is cut and restored, so no
//! database has to be stopped. Cut by refusal (connections reset, new ones
//! refused) and by partition (connections held open, nothing passes), the
//! replica behind it must answer writes UNAVAILABLE within its bound, say
//! NOT_SERVING, go on answering what it has cached, and once the link is
//! back say SERVING, take the next write, and serve nothing its missed
//! notifications would have changed. A second replica, straight on
//! PostgreSQL, writes during the cut.

use crate::assessment::{code, terms};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

/// The replica's `--store-timeout-ms`: the product's promise is that a
/// request needing a store that stopped answering fails within it.
const BOUND: Duration = Duration::from_millis(500);

/// What the test allows on top of [`BOUND`] before calling it broken: the
/// 2-core test machine runs several servers and suites at once (load
/// averages of 20 were seen), so a timer may fire seconds late. What it
/// must tell apart is longer: before issue 28 a write waited for sqlx's
/// pool (5 s) on a refusal, and for the client's deadline (60 s here,
/// `CALL_BOUND`) on a partition, the case that could never end by itself.
const SLACK: Duration = Duration::from_secs(4);

/// How long the test waits for something it awaits (a health change): a
/// hang fails the test instead of stalling the suite.
const AWAIT: Duration = Duration::from_secs(20);

/// What the proxy lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    /// The port is closed (new connections refused) and every connection
    /// through it is reset: PostgreSQL crashed or restarting.
    Refused,
    /// Connections are accepted and kept open, and nothing passes either
    /// way until the link opens again (then what was held is delivered,
    /// as TCP does after a partition heals): a partition.
    Silent,
}

/// A TCP proxy to `upstream` on a loopback port of its own.
struct Proxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let link = watch::Sender::new(Link::Open);
        let task = tokio::spawn(accept(listener, addr, upstream, link.subscribe()));
        Proxy { addr, link, task }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Every relay ends on a refusal.
        self.link.send_replace(Link::Refused);
        self.task.abort();
    }
}

/// Accepts and relays while the link is not refused; closes the port while it is.
async fn accept(listener: TcpListener, addr: SocketAddr, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    let mut listener = Some(listener);
    loop {
        if *link.borrow_and_update() == Link::Refused {
            drop(listener.take());
            if link.wait_for(|l| *l != Link::Refused).await.is_err() {
                return;
            }
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket.bind(addr).unwrap();
            listener = Some(socket.listen(128).unwrap());
            continue;
        }
        let open = listener.as_ref().expect("listening while not refused");
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(relay(client, upstream, link.clone()));
                }
            }
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, link: watch::Receiver<Link>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    // Dropped on a refusal: a reset, as a crashed server's host sends.
    let _ = client.set_zero_linger();
    let _ = server.set_zero_linger();
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(pump(client_read, server_write, link.clone()), pump(server_read, client_write, link));
}

/// Copies one direction while the link is open; holds still while it is
/// silent; ends when refused or when either side closes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut link: watch::Receiver<Link>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !link.wait_for(|l| *l != Link::Silent).await.is_ok_and(|l| *l == Link::Open) {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = link.changed() => continue,
        };
        if !link.wait_for(|l| *l != Link::Silent).await.is_ok_and(|l| *l == Link::Open) {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its host and port replaced by `addr` (user and database kept).
fn via(url: &str, addr: SocketAddr) -> String {
    let scheme_end = url.find("://").expect("a URL") + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let user = rest[..authority_end].rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{}{user}{addr}{}", &url[..scheme_end], &rest[authority_end..])
}

/// One evaluation of a firm of its own, numbered `n`.
fn record(n: usize) -> pb::PutRecordsRequest {
    let n32 = u32::try_from(n).unwrap();
    pb::PutRecordsRequest {
        records: vec![to_proto(evaluation_json(&format!("w{n}"), &code(280_000 + n32), json!({})))],
        source: String::new(),
    }
}

fn assess(c: &str) -> pb::AssessRequest {
    pb::AssessRequest { tender_id: "T28".into(), bidder: Some(pb::Bidder { credit_codes: vec![c.to_owned()] }), contract_price_fen: None }
}

/// A write refused during the cut, as its caller saw it.
#[derive(Debug)]
struct Refused {
    code: tonic::Code,
    message: String,
    retry: Option<Duration>,
    took: Duration,
}

/// Writes one record after another through `data` until `stop`; the ids
/// acknowledged, and how every refused write was refused. `progress` is
/// told after every answer, so that the test awaits counts, not time.
async fn keep_writing(
    mut data: pb::credit_data_service_client::CreditDataServiceClient<tonic::transport::Channel>,
    acked: Arc<AtomicUsize>,
    refused_so_far: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    progress: Arc<tokio::sync::Notify>,
) -> (Vec<String>, Vec<Refused>) {
    let (mut ids, mut refused) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let started = Instant::now();
        match data.put_records(record(n)).await {
            Ok(_) => {
                ids.push(format!("w{n}"));
                acked.fetch_add(1, Ordering::Release);
            }
            Err(s) => {
                refused.push(Refused {
                    code: s.code(),
                    message: s.message().to_owned(),
                    retry: s.get_details_retry_info().and_then(|r| r.retry_delay),
                    took: started.elapsed(),
                });
                refused_so_far.fetch_add(1, Ordering::Release);
            }
        }
        progress.notify_one();
        // Paces the writer (a client writing now and then), not a wait for time to pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ids, refused)
}

/// Waits until `watch` reports `want`; how long that took.
async fn health_turns(watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>, want: ServingStatus) -> Duration {
    let started = Instant::now();
    let turned = async {
        while let Some(r) = watch.message().await.expect("the health watch stays open") {
            if r.status == want as i32 {
                return;
            }
        }
        panic!("the health watch ended");
    };
    tokio::time::timeout(AWAIT, turned).await.unwrap_or_else(|_| panic!("health did not turn {want:?} within {AWAIT:?}"));
    started.elapsed()
}

async fn check(health: &mut tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status
}

/// The whole cut-and-restore, with the link cut as `cut` says.
async fn outage(cut: Link) {
    let Some(db) = pg_db().await else { return };
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port())).await.unwrap().next().unwrap();
    let proxy = Proxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(dir.path());
    let keys = keys.to_str().unwrap();
    // A straight on PostgreSQL; B behind the proxy, with no backstop poll
    // worth the name: only its catch-up after the outage can show it A's
    // writes made during the cut.
    let a = CliServer::spawn(&["serve", "--db", &db.url, "--keys", keys]).await;
    let bound_ms = BOUND.as_millis().to_string();
    let b = CliServer::spawn(&[
        "serve",
        "--db",
        &via(&db.url, proxy.addr),
        "--keys",
        keys,
        "--store-timeout-ms",
        &bound_ms,
        "--poll-ms",
        "3600000",
    ])
    .await;
    let mut a_data = pb::credit_data_service_client::CreditDataServiceClient::new(a.channel.clone());
    let mut a_tenders = pb::tender_service_client::TenderServiceClient::new(a.channel.clone());
    let mut b_data = pb::credit_data_service_client::CreditDataServiceClient::new(b.channel.clone());
    let mut b_assess = pb::assessment_service_client::AssessmentServiceClient::new(b.channel.clone());
    let mut b_health = tonic_health::pb::health_client::HealthClient::new(b.channel.clone());

    let firm = code(28);
    a_data
        .put_records(pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("e28", &firm, json!({})))], source: String::new() })
        .await
        .unwrap();
    a_tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T28".into(),
            terms: Some(terms("440300", "2026-12-15")),
            policy_id: "national-template".into(),
        })
        .await
        .unwrap();
    let before = b_assess.assess(assess(&firm)).await.unwrap().into_inner();
    assert!(before.statement.as_ref().unwrap().eligible);
    let later = code(29);
    a_data
        .put_records(pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("e29", &later, json!({})))], source: String::new() })
        .await
        .unwrap();
    assert!(b_assess.assess(assess(&later)).await.unwrap().into_inner().statement.unwrap().eligible);

    // B writes all along, into the cut: its own writes would make it catch
    // up, so it stops before the restore, and what B serves afterwards
    // shows what its recovery alone did.
    let (acked, refused_so_far, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let progress = Arc::new(tokio::sync::Notify::new());
    let writer = tokio::spawn(keep_writing(b_data.clone(), acked.clone(), refused_so_far.clone(), stop.clone(), progress.clone()));
    let mut watch = b_health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    health_turns(&mut watch, ServingStatus::Serving).await;
    tokio::time::timeout(AWAIT, async {
        while acked.load(Ordering::Acquire) < 3 {
            progress.notified().await;
        }
    })
    .await
    .expect("B takes writes before the cut");

    proxy.set(cut);
    let noticed = health_turns(&mut watch, ServingStatus::NotServing).await;
    assert!(noticed <= BOUND + SLACK, "{cut:?}: health turned NOT_SERVING {noticed:?} after the cut; the bound is {BOUND:?}");
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(check(&mut b_health, "credit_tender.v1.CreditDataService").await, not_serving);
    assert_eq!(check(&mut b_health, "credit_tender.v1.TenderService").await, not_serving);
    assert_eq!(check(&mut b_health, "credit_tender.v1.AssessmentService").await, not_serving);
    assert_eq!(check(&mut b_health, "credit_tender.v1.SupervisionService").await, not_serving);
    assert_eq!(check(&mut b_health, "credit_tender.v1.LogService").await, not_serving, "the log's proofs are read from the store");
    assert_eq!(check(&mut b_health, "credit_tender.v1.KeyService").await, ServingStatus::Serving as i32, "keys need no store");

    // A write now is refused at once, saying why and when to retry.
    let started = Instant::now();
    let refused = b_data.put_records(record(1_000_000)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("the credit store cannot be reached"), "{}", refused.message());
    assert_eq!(refused.get_details_retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(1)));
    assert_eq!(refused.metadata().get("grpc-retry-pushback-ms").map(|v| v.to_str().unwrap()), Some("1000"));
    assert!(took <= BOUND + SLACK, "{cut:?}: a write during the outage took {took:?}");

    // What B has cached it still answers: the same signed statement.
    let cached = b_assess.assess(assess(&firm)).await.expect("a cached statement is answered during the outage").into_inner();
    assert_eq!(cached.envelope, before.envelope, "the cached statement, as signed before the outage");

    // A blacklists the firm while B hears nothing.
    let blacklisted = a_data
        .put_records(pb::PutRecordsRequest {
            records: vec![to_proto(list_entry_json("bl28", &firm, "transport_blacklist"))],
            source: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .data_version;

    tokio::time::timeout(AWAIT, async {
        while refused_so_far.load(Ordering::Acquire) < 2 {
            progress.notified().await;
        }
    })
    .await
    .expect("B's writer is refused during the outage");
    stop.store(true, Ordering::Release);
    let (ids, refusals) = tokio::time::timeout(AWAIT, writer).await.expect("the writer stops").unwrap();
    assert!(!refusals.is_empty(), "{cut:?}: no write of B's was refused during the outage");
    for r in &refusals {
        assert_eq!(r.code, tonic::Code::Unavailable, "{cut:?}: {r:?}");
        assert!(r.message.contains("the credit store cannot be reached"), "{cut:?}: {r:?}");
        assert_eq!(r.retry, Some(Duration::from_secs(1)), "{cut:?}: {r:?}");
        assert!(r.took <= BOUND + SLACK, "{cut:?}: a write was refused only after {:?}: {r:?}", r.took);
    }

    proxy.set(Link::Open);
    let back = health_turns(&mut watch, ServingStatus::Serving).await;
    assert!(back <= BOUND + SLACK, "{cut:?}: health turned SERVING {back:?} after the restore");
    let after = b_assess.assess(assess(&firm)).await.unwrap().into_inner().statement.unwrap();
    assert!(!after.eligible, "{cut:?}: replica B answered from before the blacklisting it missed during the outage");
    assert!(after.data_version >= blacklisted, "{cut:?}: B answered at data version {} < {blacklisted}", after.data_version);
    b_data.put_records(record(2_000_000)).await.expect("the first write after the restore is taken");

    // B LISTENs again: A's next write reaches it by NOTIFY (its poll is an
    // hour away, and its cache was confirmed just now, well within the
    // 60 s after which it would catch up unasked).
    a_data
        .put_records(pb::PutRecordsRequest {
            records: vec![to_proto(list_entry_json("bl29", &later, "transport_blacklist"))],
            source: String::new(),
        })
        .await
        .unwrap();
    tokio::time::timeout(AWAIT, async {
        while b_assess.assess(assess(&later)).await.unwrap().into_inner().statement.unwrap().eligible {
            // B is another process: its hearing the NOTIFY has no event a client can await.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{cut:?}: B did not hear of a write made after the restore within {AWAIT:?}: no LISTEN"));

    // No acknowledged write is lost: each is in the store.
    let store = sqlx::PgPool::connect(&db.url).await.unwrap();
    let stored: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT record_id FROM records").fetch_all(&store).await.unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().map(|(id,)| id).collect();
    let lost: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{cut:?}: acknowledged writes lost: {lost:?} of {}", ids.len());
    assert!(stored.contains("w2000000"), "the write after the restore is stored");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_fails_writes_fast_turns_health_off_and_on_and_nothing_stale_is_served_after() {
    outage(Link::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_keeps_connections_open_and_silent_is_noticed_within_the_bound() {
    outage(Link::Silent).await;
}
