//! Overload: a request that has waited too long for its turn, or arrives
//! past the in-flight ceiling, is refused with RESOURCE_EXHAUSTED and a retry
//! hint before any work is done for it; health, /metrics and the key listing
//! never are. The wait is injected through the server's test hook
//! (`shed::TEST_WAIT_HEADER`), never slept.

use crate::assessment::{Fixture, code};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use credit_tender::server::{LogOptions, ServerOptions};
use credit_tender::shed::{RETRY_AFTER, TEST_WAIT_HEADER};
use serde_json::json;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

/// The wait a test's requests are allowed: far above what a test thread
/// descheduled on a busy machine waits, far below the waits injected.
const TARGET: Duration = Duration::from_secs(1);

fn hooked() -> ServerOptions {
    ServerOptions {
        queue_wait_test_hook: true,
        queue_target: TARGET,
        log: Some(LogOptions { checkpoint_interval: Duration::from_millis(50), ..LogOptions::default() }),
        ..ServerOptions::default()
    }
}

/// `message` as a request that has already waited `ms` milliseconds.
fn waited<T>(message: T, ms: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(TEST_WAIT_HEADER, ms.to_string().parse().unwrap());
    r
}

fn assess(tender: &str, c: &str) -> pb::AssessRequest {
    pb::AssessRequest { tender_id: tender.into(), bidder: Some(pb::Bidder { credit_codes: vec![c.into()] }), contract_price_fen: None }
}

/// The refusal every shed request gets: RESOURCE_EXHAUSTED, RetryInfo and
/// the pushback header, both naming the same delay.
fn assert_shed(status: &tonic::Status, says: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(says), "{}", status.message());
    let retry = status.get_details_retry_info().expect("a google.rpc.RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(RETRY_AFTER));
    let pushback = status.metadata().get("grpc-retry-pushback-ms").expect("grpc-retry-pushback-ms").to_str().unwrap();
    assert_eq!(pushback, RETRY_AFTER.as_millis().to_string());
}

async fn fixture(db: &TestDb, server: ServerOptions) -> Fixture {
    let mut f = Fixture::with(spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await);
    f.put(&(0..3).map(|n| evaluation_json(&format!("e{n}"), &code(900 + n), json!({}))).collect::<Vec<_>>()).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    f
}

#[tokio::test]
async fn a_request_that_waited_past_the_target_is_refused_with_a_retry_hint_and_the_next_is_served() {
    let db = sqlite_db();
    let mut f = fixture(&db, hooked()).await;
    let status = f.assess.assess(waited(assess("T1", &code(900)), 10_000)).await.unwrap_err();
    assert_shed(&status, "waited 10000.");
    assert!(status.message().contains("past the 1000.0 ms allowed"), "{}", status.message());
    // A wait within the target is served.
    f.assess.assess(waited(assess("T1", &code(900)), TARGET.as_millis() as u64 / 2)).await.unwrap();
    // The server counts it by reason.
    let (_, metrics) = http_get(f.server.addr, "/metrics").await;
    assert!(metrics.contains("reason=\"queue_wait\"} 1"), "{metrics}");
    // The same request without the wait is served at once.
    let answer = f.assess.assess(assess("T1", &code(900))).await.unwrap().into_inner();
    assert!(answer.envelope.is_some());
}

#[tokio::test]
async fn health_metrics_and_the_key_listing_are_never_refused_under_load() {
    let db = sqlite_db();
    // One request in flight at most, and a test hook for the wait.
    let options = ServerOptions { max_in_flight: 1, ..hooked() };
    let mut f = fixture(&db, options).await;
    let ch = f.server.channel().await;
    // Load: a reflection stream holds the one slot for as long as it is open.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let list = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    tx.send(list.clone()).await.unwrap();
    let mut stream = reflection.server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    let status = f.assess.assess(assess("T1", &code(900))).await.unwrap_err();
    assert_shed(&status, "limit of 1 requests in flight");

    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let mut keys = pb::key_service_client::KeyServiceClient::new(ch.clone());
    let check = || tonic_health::pb::HealthCheckRequest { service: String::new() };
    for wait in [0, 10_000] {
        // Past the ceiling, and (the second time) after a wait that sheds anything else.
        health.check(waited(check(), wait)).await.unwrap();
        assert!(!keys.list_keys(waited(pb::ListKeysRequest {}, wait)).await.unwrap().into_inner().keys.is_empty());
        let status = f.assess.assess(waited(assess("T1", &code(900)), wait)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
    }
    let mut watch = health.watch(waited(check(), 10_000)).await.unwrap().into_inner();
    watch.message().await.unwrap().unwrap();
    assert_eq!(http_get(f.server.addr, "/metrics").await.0, 200);
    assert_eq!(http_get(f.server.addr, "/api/keys").await.0, 200);
    // The page is shed like the rest, with a Retry-After.
    assert_eq!(http_get(f.server.addr, "/").await.0, 503);

    // The slot comes back when the stream ends; the next call is served.
    drop(tx);
    while stream.message().await.unwrap().is_some() {}
    let mut served = false;
    for _ in 0..100 {
        if f.assess.assess(assess("T1", &code(900))).await.is_ok() {
            served = true;
            break;
        }
        tokio::task::yield_now().await; // the stream's end reaches the server's body
    }
    assert!(served, "service resumed once load dropped");
}

#[tokio::test]
async fn a_refused_request_leaves_nothing_signed_or_logged() {
    let db = sqlite_db();
    let mut f = fixture(&db, hooked()).await;
    let metrics = f.server.cache.metrics().clone();
    let signed_before = *metrics.signatures().borrow();
    let (_, page_before) = http_get(f.server.addr, "/metrics").await;
    let leaves = |page: &str| page.lines().find(|l| l.starts_with("credit_tender_log_leaves")).map(str::to_owned);
    // A question never asked: answering it would sign and log a statement.
    for c in [code(901), code(902)] {
        let status = f.assess.assess(waited(assess("T1", &c), 10_000)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let deposit = pb::CheckDepositRequest {
            tender_id: "T1".into(),
            bidder: Some(pb::Bidder { credit_codes: vec![c.clone()] }),
            offered_fen: 0,
            form: "cash".into(),
            contract_price_fen: None,
        };
        let status = f.assess.check_deposit(waited(deposit, 10_000)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
    assert_eq!(*metrics.signatures().borrow(), signed_before, "nothing signed for a refused request");
    let (_, page_after) = http_get(f.server.addr, "/metrics").await;
    assert!(leaves(&page_before).is_some(), "{page_before}");
    assert_eq!(leaves(&page_after), leaves(&page_before), "nothing logged for a refused request");
    // The first statement admitted is the log's first leaf: none was
    // appended for the refused ones.
    let answer = f.assess.assess(assess("T1", &code(901))).await.unwrap().into_inner();
    assert_eq!(answer.log_index, Some(0));
    assert_eq!(*metrics.signatures().borrow(), signed_before + 1);
}

#[test]
fn a_queue_target_that_is_not_a_positive_duration_is_refused_naming_the_flag() {
    for bad in ["0", "-1", "soon", "NaN"] {
        let out = cli(&["demo", &format!("--queue-target-ms={bad}"), "--listen", "127.0.0.1:0"]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("--queue-target-ms") && err.contains("is not a number of milliseconds above 0"), "{err}");
    }
}
