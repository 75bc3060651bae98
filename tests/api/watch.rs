//! WatchTender over TLS with tokens, as platforms call it: a write that
//! changes two of five bidders gives exactly those two events, each pointing at a logged statement that verifies; a reconnect
//! from the cursor gets what happened while disconnected and nothing twice;
//! a committee session is refused and another province's platform gets
//! AssessTender's "no tender"; the stream ends with OK at the deadline
//! (moved by AmendTender). `buf curl` gets the same events over Connect,
//! gRPC-Web and gRPC.

use crate::access::{
    Certs, Creds, OTHER_PLATFORM_TOKEN, PLATFORM_TOKEN, PROVIDER_TOKEN, SUPERVISOR_TOKEN, clients, grant, https_get, session_cookie,
    spawn_secure, tls_channel,
};
use crate::assessment::{check_statement, code};
use crate::helpers::*;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const TENDER: &str = "T-W";

fn bidder(c: &str) -> Option<pb::Bidder> {
    Some(pb::Bidder { credit_codes: vec![c.to_owned()] })
}

fn blacklist(id: &str, c: &str) -> pb::PutRecordsRequest {
    pb::PutRecordsRequest { records: vec![to_proto(list_entry_json(id, c, "transport_blacklist"))], source: String::new() }
}

fn watch_request(after: Option<u64>) -> pb::WatchTenderRequest {
    pb::WatchTenderRequest { tender_id: TENDER.into(), after }
}

/// The next message of a watch, within the harness's bound.
async fn next(watch: &mut tonic::Streaming<pb::WatchTenderResponse>) -> Option<pb::WatchTenderResponse> {
    bounded("the next WatchTender message", watch.message()).await.unwrap()
}

/// The next message, which must be an event: (bid sequence, the change).
async fn event(watch: &mut tonic::Streaming<pb::WatchTenderResponse>) -> (u64, pb::BidChange) {
    let m = next(watch).await.expect("an event, not the stream's end");
    let change = m.change.expect("an event carries a change");
    assert_eq!(m.cursor, change.log_index + 1, "an event's cursor is just past its log entry");
    (m.cursor, change)
}

/// The event's statement verifies, and is the log's entry at its index.
async fn check_logged(server: &TestServer, ch: &Channel, change: &pb::BidChange) {
    let answer = change.assessment.as_ref().unwrap();
    let (s, e) = (answer.statement.as_ref().unwrap(), answer.envelope.as_ref().unwrap());
    check_statement(s, e, &server.keys.get().public_keys());
    assert_eq!(answer.log_index, Some(change.log_index));
    let creds = Creds::Token(Bearer::new(Some(SUPERVISOR_TOKEN)).unwrap());
    let mut log = pb::log_service_client::LogServiceClient::with_interceptor(ch.clone(), creds);
    // Entries are served once a signed checkpoint covers them.
    let request = pb::GetEntriesRequest { start: change.log_index, end: change.log_index + 1 };
    let mut published = server.cache.metrics().checkpoints();
    bounded("a checkpoint covering the event's entry", published.wait_for(|n| *n > change.log_index)).await.unwrap();
    let entries = log.get_entries(request).await.unwrap().into_inner().entries;
    assert_eq!(entries, vec![credit_tender::log::leaf(e)], "the log's entry at {} is the event's statement", change.log_index);
    assert_eq!(s.members[0].credit_code, change.bid.as_ref().unwrap().bidder.as_ref().unwrap().credit_codes[0]);
}

fn added_codes(change: &pb::BidChange) -> Vec<&str> {
    change.added.iter().map(|r| r.code.as_str()).collect()
}

/// Tender T-W in Shenzhen on `server`, with `codes` graded (records
/// `{prefix}-1`, `{prefix}-2`, ...) and bidding in this order.
async fn graded_bids(server: &TestServer, codes: &[&String], prefix: &str) {
    let records = codes.iter().enumerate().map(|(i, c)| to_proto(evaluation_json(&format!("{prefix}-{}", i + 1), c, json!({})))).collect();
    server.data.clone().put_records(pb::PutRecordsRequest { records, source: String::new() }).await.unwrap();
    let mut tenders = server.tenders.clone();
    let terms = Some(crate::access::terms("440300"));
    tenders
        .register_tender(pb::RegisterTenderRequest { tender_id: TENDER.into(), terms, policy_id: "national-template".into() })
        .await
        .unwrap();
    for c in codes {
        tenders.register_bid(pb::RegisterBidRequest { tender_id: TENDER.into(), bidder: bidder(c) }).await.unwrap();
    }
}

/// Tender T-W in Shenzhen with five graded bidders, each statement logged once.
async fn five_bidders(ch: &Channel) -> Vec<String> {
    let codes: Vec<String> = (1..=5).map(|n| code(2300 + n)).collect();
    let mut provider = clients(ch, Some(PROVIDER_TOKEN));
    let records = codes.iter().enumerate().map(|(i, c)| to_proto(evaluation_json(&format!("w-{i}"), c, json!({})))).collect();
    provider.data.put_records(pb::PutRecordsRequest { records, source: String::new() }).await.unwrap();
    let mut platform = clients(ch, Some(PLATFORM_TOKEN));
    let terms = Some(crate::access::terms("440300"));
    platform
        .tenders
        .register_tender(pb::RegisterTenderRequest { tender_id: TENDER.into(), terms, policy_id: "national-template".into() })
        .await
        .unwrap();
    for c in &codes {
        platform.tenders.register_bid(pb::RegisterBidRequest { tender_id: TENDER.into(), bidder: bidder(c) }).await.unwrap();
    }
    platform.assess.assess_tender(pb::AssessTenderRequest { tender_id: TENDER.into(), ..Default::default() }).await.unwrap();
    codes
}

#[tokio::test]
async fn a_write_changing_two_of_five_bidders_sends_two_events_in_bid_order_and_a_reconnect_repeats_none() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure(&db, &certs).await;
        let ch = tls_channel(server.addr, &certs, None).await;
        let codes = five_bidders(&ch).await;
        let mut platform = clients(&ch, Some(PLATFORM_TOKEN));
        let mut provider = clients(&ch, Some(PROVIDER_TOKEN));

        let mut watch = platform.assess.watch_tender(watch_request(None)).await.unwrap().into_inner();
        let first = next(&mut watch).await.unwrap();
        assert!(first.change.is_none(), "the first message carries only the cursor: {first:?}");

        // One write blacklists the fourth and the second bidder, in that order.
        let mut both = blacklist("bl-4", &codes[3]);
        both.records.extend(blacklist("bl-2", &codes[1]).records);
        provider.data.put_records(both).await.unwrap();
        // Events come in log order; bid order within a write is usual, not promised.
        let (_, one) = event(&mut watch).await;
        let (cursor, other) = event(&mut watch).await;
        assert!(one.log_index < other.log_index);
        let (second, fourth) = if one.bid.as_ref().unwrap().sequence == 2 { (one, other) } else { (other, one) };
        for (change, sequence) in [(&second, 2), (&fourth, 4)] {
            assert_eq!(change.bid.as_ref().unwrap().sequence, sequence, "[{}] bid order: {change:?}", db.backend);
            assert!(added_codes(change).contains(&"LISTED_TRANSPORT_BLACKLIST"), "[{}] {change:?}", db.backend);
            assert!(change.removed.iter().all(|r| r.code != "LISTED_TRANSPORT_BLACKLIST"));
            assert!(!change.assessment.as_ref().unwrap().statement.as_ref().unwrap().eligible);
            check_logged(&server, &ch, change).await;
        }
        drop(watch);

        // The event as a platform saves it verifies offline with `credit-tender verify`.
        let dir = tempfile::tempdir().unwrap();
        let saved = json!({ "cursor": cursor.to_string(), "change": serde_json::to_value(&fourth).unwrap() });
        let saved = json_file(dir.path(), "event.json", &saved);
        let mut keys = pb::key_service_client::KeyServiceClient::new(ch.clone());
        let listed = keys.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
        let keys_file = json_file(dir.path(), "keys.json", &listed);
        let out = cli(&["verify", saved.to_str().unwrap(), "--keys", keys_file.to_str().unwrap()]);
        assert!(out.status.success(), "[{}] {}", db.backend, stderr(&out));
        assert!(stdout(&out).contains("Signature   valid"), "{}", stdout(&out));

        // While disconnected, the first bidder is blacklisted.
        provider.data.put_records(blacklist("bl-1", &codes[0])).await.unwrap();
        let mut watch = platform.assess.watch_tender(watch_request(Some(cursor))).await.unwrap().into_inner();
        assert_eq!(next(&mut watch).await.unwrap(), pb::WatchTenderResponse { cursor, change: None });
        let (_, missed) = event(&mut watch).await;
        assert_eq!(missed.bid.as_ref().unwrap().sequence, 1, "[{}] what happened while disconnected: {missed:?}", db.backend);
        assert!(added_codes(&missed).contains(&"LISTED_TRANSPORT_BLACKLIST"), "{missed:?}");
        check_logged(&server, &ch, &missed).await;
        // The next event is the fifth bidder's: the second and fourth were not sent again.
        provider.data.put_records(blacklist("bl-5", &codes[4])).await.unwrap();
        let (_, fifth) = event(&mut watch).await;
        assert_eq!(fifth.bid.as_ref().unwrap().sequence, 5, "[{}] {fifth:?}", db.backend);
        assert!(fifth.log_index > missed.log_index);
    }
}

#[tokio::test]
async fn watch_refuses_a_committee_answers_out_of_scope_as_assess_tender_and_ends_at_the_amended_deadline() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure(&db, &certs).await;
        let ch = tls_channel(server.addr, &certs, None).await;
        five_bidders(&ch).await;
        let mut platform = clients(&ch, Some(PLATFORM_TOKEN));

        // A committee member of this very tender may read its table, not watch it.
        let (_, link) = grant(&ch, TENDER, 3600).await;
        let (_, head, _) = https_get(server.addr, &certs, &link, &[]).await;
        let cookie: tonic::metadata::MetadataValue<_> = session_cookie(&head).parse().unwrap();
        let mut committee = pb::assessment_service_client::AssessmentServiceClient::with_interceptor(ch.clone(), Creds::Cookie(cookie));
        committee.assess_tender(pb::AssessTenderRequest { tender_id: TENDER.into(), ..Default::default() }).await.unwrap();
        let refused = committee.watch_tender(watch_request(None)).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "[{}] {refused:?}", db.backend);

        // Another province's platform: AssessTender's answer, byte for byte.
        let mut other = clients(&ch, Some(OTHER_PLATFORM_TOKEN));
        let table = other.assess.assess_tender(pb::AssessTenderRequest { tender_id: TENDER.into(), ..Default::default() }).await;
        let table = table.unwrap_err();
        let watch = other.assess.watch_tender(watch_request(None)).await.unwrap_err();
        assert_eq!((watch.code(), watch.message()), (table.code(), table.message()), "[{}]", db.backend);
        assert_eq!(watch.code(), Code::NotFound);
        // A cursor beyond the log names the field.
        let beyond = platform.assess.watch_tender(watch_request(Some(1 << 40))).await.unwrap_err();
        assert_eq!(beyond.code(), Code::InvalidArgument, "{beyond:?}");
        assert!(beyond.message().contains("after"), "{beyond:?}");

        // The platform moves the deadline to two seconds from now: the
        // stream ends then, with OK. The deadline is an instant of the wall
        // clock, which this test cannot move, hence the short wait.
        let mut watch = platform.assess.watch_tender(watch_request(None)).await.unwrap().into_inner();
        let c0 = next(&mut watch).await.unwrap().cursor;
        let soon = chrono::Utc::now().timestamp() + 2;
        let mut terms = crate::access::terms("440300");
        terms.bid_deadline = Some(pbjson_types::Timestamp { seconds: soon, nanos: 0 });
        platform.tenders.amend_tender(pb::AmendTenderRequest { tender_id: TENDER.into(), terms: Some(terms) }).await.unwrap();
        assert_eq!(next(&mut watch).await, None, "[{}] the stream ends at the deadline, with no event (nothing changed)", db.backend);
        assert!(chrono::Utc::now().timestamp() >= soon, "not before the deadline");
        // A resume after the deadline ends at once.
        let mut again = platform.assess.watch_tender(watch_request(Some(c0))).await.unwrap().into_inner();
        assert_eq!(next(&mut again).await.unwrap().change, None);
        assert_eq!(next(&mut again).await, None);
    }
}

/// A Connect streaming body's envelopes: (flag, message).
fn envelopes(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a torn envelope: {body:?}");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

/// WatchTender in Connect's JSON streaming form over plain HTTP/1.1.
async fn connect_json_watch(addr: std::net::SocketAddr, token: &str, request: serde_json::Value) -> Http1Answer {
    let json = request.to_string();
    let mut body = vec![0];
    body.extend_from_slice(&(json.len() as u32).to_be_bytes());
    body.extend_from_slice(json.as_bytes());
    let auth = format!("Bearer {token}");
    let headers = [("content-type", "application/connect+json"), ("authorization", auth.as_str())];
    http1(addr, "POST", "/credit_tender.v1.AssessmentService/WatchTender", &headers, &body).await
}

/// After a change and the deadline, a resume from the first cursor gets
/// the same messages through every door: Connect JSON streaming over
/// HTTP/1.1 (raw), and `buf curl` in Connect, gRPC-Web and gRPC.
#[tokio::test]
async fn connect_json_streaming_and_buf_curl_get_the_events_grpc_gets() {
    let (server, code, _db) = crate::connect::seeded().await;
    let mut platform = clients(&server.channel, Some(PLATFORM_TOKEN));
    let mut provider = clients(&server.channel, Some(PROVIDER_TOKEN));
    let request = |after| pb::WatchTenderRequest { tender_id: "T-GD".into(), after };
    let mut watch = platform.assess.watch_tender(request(None)).await.unwrap().into_inner();
    let first = next(&mut watch).await.unwrap();
    provider.data.put_records(blacklist("bl-23", &code)).await.unwrap();
    let (_, change) = event(&mut watch).await;
    assert!(added_codes(&change).contains(&"LISTED_TRANSPORT_BLACKLIST"), "{change:?}");
    // Close the tender (see the test above for why the wait is real).
    let soon = chrono::Utc::now().timestamp() + 2;
    let mut terms = crate::access::terms("440300");
    terms.bid_deadline = Some(pbjson_types::Timestamp { seconds: soon, nanos: 0 });
    platform.tenders.amend_tender(pb::AmendTenderRequest { tender_id: "T-GD".into(), terms: Some(terms) }).await.unwrap();
    assert_eq!(next(&mut watch).await, None);
    let typed = vec![first.clone(), pb::WatchTenderResponse { cursor: change.log_index + 1, change: Some(change) }];

    // Connect JSON streaming: JSON envelopes, then the end-of-stream envelope (no error).
    let after = json!({"tenderId": "T-GD", "after": first.cursor.to_string()});
    let answer = connect_json_watch(server.addr, PLATFORM_TOKEN, after.clone()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/connect+json"));
    let mut got = envelopes(&answer.body);
    assert_eq!(got.pop(), Some((2, b"{}".to_vec())), "the stream ends with OK");
    let messages: Vec<pb::WatchTenderResponse> = got
        .iter()
        .map(|(flag, m)| {
            assert_eq!(*flag, 0);
            serde_json::from_slice(m).unwrap()
        })
        .collect();
    assert_eq!(messages, typed, "Connect JSON");
    let change = serde_json::from_slice::<serde_json::Value>(&got[1].1).unwrap();
    assert!(change["change"]["logIndex"].is_string(), "lowerCamel names, 64-bit integers as strings: {change}");
    // A refusal is the end-of-stream envelope's error, the HTTP status 200.
    let refused = connect_json_watch(server.addr, crate::access::OTHER_PLATFORM_TOKEN, after).await;
    assert_eq!(refused.status, 200);
    let end = envelopes(&refused.body);
    assert_eq!(end.len(), 1, "{end:?}");
    let error: serde_json::Value = serde_json::from_slice(&end[0].1).unwrap();
    assert_eq!((end[0].0, error["error"]["code"].as_str()), (2, Some("not_found")), "{error}");
    let bad = connect_json_watch(server.addr, PLATFORM_TOKEN, json!({"tenderId": "T-GD", "after": "many"})).await;
    let error: serde_json::Value = serde_json::from_slice(&envelopes(&bad.body)[0].1).unwrap();
    assert_eq!(error["error"]["code"], "invalid_argument", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("after"), "{error}");

    let Some(buf) = crate::buf_curl::npm_bin("buf", "--version") else { return };
    for protocol in ["connect", "grpcweb", "grpc"] {
        let body = json!({"tenderId": "T-GD", "after": first.cursor.to_string()});
        let (ok, out) = crate::buf_curl::buf_curl_raw(&buf, server.addr, protocol, "AssessmentService/WatchTender", body).await;
        assert!(ok, "{protocol}: {out}");
        let got: Vec<pb::WatchTenderResponse> = serde_json::Deserializer::from_str(&out)
            .into_iter::<pb::WatchTenderResponse>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{protocol}: {e}: {out}"));
        assert_eq!(got, typed, "{protocol}");
    }
}

/// Replica B, which polls once a minute, hears of replica A's write by
/// NOTIFY: its watch sends the change with no write handler of B involved.
#[tokio::test]
async fn a_write_on_another_replica_reaches_a_watch_through_the_change_feed() {
    let Some(db) = pg_db().await else { return };
    let slow_poll = credit_tender::cache::CacheConfig { poll_interval: std::time::Duration::from_secs(60), ..Default::default() };
    let a = spawn_app(open(&db).await, AppOptions::default()).await;
    let b = spawn_app(open(&db).await, AppOptions { cache: slow_poll, ..AppOptions::default() }).await;
    let (c1, c2) = (code(2311), code(2312));
    let mut a_data = a.data.clone();
    graded_bids(&a, &[&c1, &c2], "r").await;
    let mut b_assess = b.assess.clone();
    b_assess.assess_tender(pb::AssessTenderRequest { tender_id: TENDER.into(), ..Default::default() }).await.unwrap();
    let mut watch = b_assess.watch_tender(watch_request(None)).await.unwrap().into_inner();
    assert!(next(&mut watch).await.unwrap().change.is_none());

    a_data.put_records(blacklist("bl-r2", &c2)).await.unwrap();
    let (_, change) = event(&mut watch).await;
    assert_eq!(change.bid.as_ref().unwrap().sequence, 2, "{change:?}");
    assert!(added_codes(&change).contains(&"LISTED_TRANSPORT_BLACKLIST"), "{change:?}");
}

/// Replica B, which has not caught up (SQLite: no NOTIFY, a poll once a
/// minute) and keeps no statements, logs the first bidder's statement made
/// from data older than replica A's newer one: A's watch sends no event for
/// it (the bidder did not go back), and its next event is the next change.
#[tokio::test]
async fn a_statement_made_from_older_data_after_a_newer_one_is_no_event() {
    let db = sqlite_db();
    let a = spawn_app(open(&db).await, AppOptions::default()).await;
    let (c1, c2) = (code(2321), code(2322));
    let mut a_data = a.data.clone();
    graded_bids(&a, &[&c1, &c2], "s").await;
    let behind =
        credit_tender::cache::CacheConfig { poll_interval: std::time::Duration::from_secs(60), statement_bytes: 0, ..Default::default() };
    let b = spawn_app(open(&db).await, AppOptions { cache: behind, ..AppOptions::default() }).await;
    let mut b_assess = b.assess.clone();
    let table = pb::AssessTenderRequest { tender_id: TENDER.into(), ..Default::default() };
    let old = b_assess.assess_tender(table.clone()).await.unwrap().into_inner();

    let mut a_assess = a.assess.clone();
    let mut watch = a_assess.watch_tender(watch_request(None)).await.unwrap().into_inner();
    assert!(next(&mut watch).await.unwrap().change.is_none());
    a_data.put_records(blacklist("bl-s1", &c1)).await.unwrap();
    let (_, newer) = event(&mut watch).await;
    assert_eq!(newer.bid.as_ref().unwrap().sequence, 1, "{newer:?}");
    assert!(added_codes(&newer).contains(&"LISTED_TRANSPORT_BLACKLIST"), "{newer:?}");
    let newer_version = newer.assessment.as_ref().unwrap().statement.as_ref().unwrap().data_version;

    // B, behind, signs and logs the first bidder's statement again from its older data.
    let stale = b_assess.assess_tender(table).await.unwrap().into_inner();
    let stale_first = stale.bids.iter().find(|b| b.bid.as_ref().unwrap().sequence == 1).unwrap();
    let stale_statement = stale_first.assessment.as_ref().unwrap();
    assert!(stale_statement.statement.as_ref().unwrap().data_version < newer_version, "B is behind: {stale:?}");
    assert!(stale_statement.log_index.unwrap() > newer.log_index, "B logged it after A's newer one: {stale:?} {old:?}");

    // The next write, to the second bidder, wakes A's watch: its event is the next one.
    a_data.put_records(blacklist("bl-s2", &c2)).await.unwrap();
    let (_, next_event) = event(&mut watch).await;
    assert_eq!(next_event.bid.as_ref().unwrap().sequence, 2, "the stale statement was sent as a change: {next_event:?}");
    assert!(next_event.log_index > stale_statement.log_index.unwrap());
}

/// A principal's ninth open watch is refused with RESOURCE_EXHAUSTED in
/// words about watches (not writes), Chinese first, with a retry hint.
#[tokio::test]
async fn a_principals_ninth_watch_is_refused_in_words_about_watches() {
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure(&db, &certs).await;
    let ch = tls_channel(server.addr, &certs, None).await;
    five_bidders(&ch).await;
    let mut platform = clients(&ch, Some(PLATFORM_TOKEN));
    let mut open = Vec::new();
    for _ in 0..8 {
        // WATCHES_PER_PRINCIPAL
        let mut watch = platform.assess.watch_tender(watch_request(None)).await.unwrap().into_inner();
        assert!(next(&mut watch).await.unwrap().change.is_none());
        open.push(watch);
    }
    let refused = platform.assess.watch_tender(watch_request(None)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let message = refused.message();
    assert!(!message.contains("writes"), "{message}");
    assert!(message.contains("WatchTender") && message.contains("订阅"), "{message}");
    assert!(message.starts_with("订阅已达上限"), "Chinese first: {message}");
    assert!(refused.metadata().get("grpc-retry-pushback-ms").is_some(), "{refused:?}");
    drop(open);
}
