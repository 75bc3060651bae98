//! What every door (gRPC, gRPC-Web, Connect) shares beneath it, found by the
//! outside attack on issue 23: who is calling is known from the headers, and
//! a caller without a good identity is refused before its body is read; the
//! bodies held at once have a budget; a body too large is not told to
//! retry; `bearer` is Bearer; codecs other than protobuf are refused;
//! gRPC-Web text that is not base64 is the client's mistake.

use crate::cache::sample;
use crate::helpers::*;
use credit_tender::access::principals::{Principals, SharedPrincipals};
use credit_tender::proto::v1 as pb;
use credit_tender::server::ServerOptions;
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http;

/// Each stream's answer as it arrives: its number, and what `status_of` reads from it.
type Answers = tokio::sync::mpsc::UnboundedReceiver<(usize, (String, String, Option<String>))>;

/// A bound on waiting for an answer that must come: a hung test fails
/// rather than hangs. Never what a test asserts.
const SAFETY: Duration = Duration::from_secs(60);

/// A server with the test principals, bodies allowed ten minutes to come
/// (so that only a refusal from the headers answers a half-sent request).
async fn guarded(db: &TestDb, body_budget: usize, principals: &str) -> TestServer {
    let principals = Principals::from_toml(principals).unwrap();
    let server = ServerOptions {
        body_timeout: Duration::from_secs(600),
        body_budget,
        principals: Some(Arc::new(SharedPrincipals::fixed(principals))),
        ..ServerOptions::default()
    };
    spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await
}

async fn h2(addr: std::net::SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    send
}

/// Opens a POST to `path` with `content_type` and `headers`; its body is
/// whatever the caller then sends on the stream.
async fn open_stream(
    send: &h2::client::SendRequest<bytes::Bytes>,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let mut req = http::Request::post(format!("http://127.0.0.1{path}")).header("content-type", content_type).header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut send = send.clone().ready().await.unwrap();
    send.send_request(req.body(()).unwrap(), false).unwrap()
}

/// A gRPC message frame of exactly `total` bytes (header included) whose
/// message is an unknown field of zeros: any method's request decodes it
/// as an empty one.
fn padded_frame(total: usize) -> Vec<u8> {
    let message = total - 5;
    let n = message - 1 - 3; // the tag, a three-byte varint length
    assert!((1 << 14..1 << 21).contains(&n));
    let mut out = vec![0u8];
    out.extend_from_slice(&(message as u32).to_be_bytes());
    out.push(0x7a); // field 15, length-delimited
    out.extend_from_slice(&[(n as u8 & 0x7f) | 0x80, ((n >> 7) as u8 & 0x7f) | 0x80, (n >> 14) as u8]);
    out.resize(total, 0);
    out
}

/// The status of an answer, from its head (trailers-only) or, for gRPC-Web,
/// from the trailer frame at the end of its body; with its message and
/// the head's `grpc-retry-pushback-ms` or the trailer frame's.
async fn status_of(response: http::Response<h2::RecvStream>) -> (String, String, Option<String>) {
    let (head, mut body) = response.into_parts();
    let h = &head.headers;
    if let Some(s) = h.get("grpc-status") {
        let message = h.get("grpc-message").map(|m| percent(m.to_str().unwrap())).unwrap_or_default();
        let pushback = h.get("grpc-retry-pushback-ms").map(|v| v.to_str().unwrap().to_owned());
        return (s.to_str().unwrap().to_owned(), message, pushback);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    if let Some(t) = body.trailers().await.unwrap() {
        let get = |n: &str| t.get(n).map(|v| v.to_str().unwrap().to_owned());
        return (get("grpc-status").unwrap(), percent(&get("grpc-message").unwrap_or_default()), get("grpc-retry-pushback-ms"));
    }
    // gRPC-Web: the last frame (flag 0x80) holds `name:value` lines.
    let mut rest = &bytes[..];
    let mut lines = String::new();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest[0] == 0x80 {
            lines = String::from_utf8(rest[5..5 + len].to_vec()).unwrap();
        }
        rest = &rest[5 + len..];
    }
    let get = |n: &str| lines.split("\r\n").find_map(|l| l.strip_prefix(n).and_then(|v| v.strip_prefix(':')).map(str::to_owned));
    (get("grpc-status").expect("a status"), percent(&get("grpc-message").unwrap_or_default()), get("grpc-retry-pushback-ms"))
}

fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    let auth = format!("Bearer {}", crate::access::SUPERVISOR_TOKEN);
    let answer = http1(addr, "GET", "/metrics", &[("authorization", &auth)], b"").await;
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.body).unwrap()
}

fn denials(metrics: &str, reason: &str) -> f64 {
    sample(metrics, &format!("credit_tender_access_denials_total{{reason=\"{reason}\"}}"))
}

/// An anonymous client opening many streams of large bodies, and ones with
/// a made-up token or session, is refused from the headers: the refusal
/// comes while the body is still being sent (it never ends here, and bodies
/// may take ten minutes), over gRPC and gRPC-Web alike, and no byte of
/// theirs is counted against the body budget.
#[tokio::test]
async fn callers_without_a_good_identity_are_refused_from_their_headers_before_their_bodies_are_sent() {
    let db = sqlite_db();
    let server = guarded(&db, 4 << 20, &crate::access::principals_toml()).await;
    let send = h2(server.addr).await;
    let before = metrics(server.addr).await;
    // The first 64 KiB of a frame that says 15 MiB follow.
    let mut first = vec![0u8; 64 << 10];
    first[1..5].copy_from_slice(&((15u32 << 20) - 5).to_be_bytes());
    let first = bytes::Bytes::from(first);
    let mut held = Vec::new();
    for i in 0..48 {
        let (who, expect): (&[(&str, &str)], &str) = match i % 3 {
            0 => (&[], "PutRecords needs a caller identity"),
            1 => (&[("authorization", "Bearer made-up")], "unknown or revoked bearer token"),
            _ => (&[("cookie", "ct_session=made-up")], "the committee session has ended"),
        };
        let content_type = if i % 2 == 0 { "application/grpc" } else { "application/grpc-web+proto" };
        let (response, mut stream) = open_stream(&send, "/credit_tender.v1.CreditDataService/PutRecords", content_type, who).await;
        // The first 64 KiB of a 15 MiB body, and no more.
        stream.send_data(first.clone(), false).unwrap();
        let response = tokio::time::timeout(SAFETY, response).await.expect("refused from the headers").unwrap();
        let (status, message, _) = status_of(response).await;
        assert_eq!(status, "16", "{i} {content_type}: UNAUTHENTICATED: {message}");
        assert!(message.contains(expect), "{i}: {message}");
        held.push(stream);
    }
    let after = metrics(server.addr).await;
    assert_eq!(denials(&after, "unauthenticated") - denials(&before, "unauthenticated"), 48.0);
    for reason in ["body_budget", "body_timeout", "body_too_large"] {
        assert_eq!(denials(&after, reason), 0.0, "{reason}");
    }
    drop(held);
}

/// Sends `frame` on `stream` in 64 KiB pieces, leaving the body open.
fn send_open(stream: &mut h2::SendStream<bytes::Bytes>, frame: &[u8]) {
    for piece in frame.chunks(64 << 10) {
        stream.send_data(bytes::Bytes::copy_from_slice(piece), false).unwrap();
    }
}

/// Streams whose answers come back over a channel, tagged with their index.
fn answers(pending: Vec<h2::client::ResponseFuture>) -> Answers {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, response) in pending.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let status = match response.await {
                Ok(r) => status_of(r).await,
                Err(e) => ("reset".into(), e.to_string(), None),
            };
            let _ = tx.send((i, status));
        });
    }
    rx
}

async fn next(rx: &mut Answers) -> (usize, (String, String, Option<String>)) {
    tokio::time::timeout(SAFETY, rx.recv()).await.expect("an answer").expect("an open channel")
}

/// The bodies held at once have a budget (4 MiB here): six principal's
/// bodies of 1,000,000 bytes, sent but not ended, cannot all be held, so
/// exactly two are refused (RESOURCE_EXHAUSTED with the retry hint) and the
/// four others are served once they end. Unidentified callers hold a
/// quarter of it: of two such bodies of 600,000 bytes one is refused.
#[tokio::test]
async fn the_body_budget_refuses_the_stream_past_it_and_unidentified_callers_hold_a_quarter() {
    let db = sqlite_db();
    let server = guarded(&db, 4 << 20, &crate::access::principals_toml()).await;
    let send = h2(server.addr).await;
    let auth = format!("Bearer {}", crate::access::PLATFORM_TOKEN);
    let body = padded_frame(1_000_000);
    let (mut pending, mut streams) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let (response, mut stream) =
            open_stream(&send, "/credit_tender.v1.TenderService/ListTenders", "application/grpc", &[("authorization", &auth)]).await;
        send_open(&mut stream, &body);
        pending.push(response);
        streams.push(stream);
    }
    let mut rx = answers(pending);
    let mut refused = Vec::new();
    for _ in 0..2 {
        let (i, (status, message, pushback)) = next(&mut rx).await;
        assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
        assert!(
            message.contains("request bodies the server holds are at their limit of 4194304 bytes at once; retry after 100 ms"),
            "{message}"
        );
        assert_eq!(pushback.as_deref(), Some("100"));
        refused.push(i);
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        if !refused.contains(&i) {
            stream.send_data(bytes::Bytes::new(), true).unwrap();
        }
    }
    for _ in 0..4 {
        let (i, (status, message, _)) = next(&mut rx).await;
        assert_eq!(status, "0", "stream {i} is served once its body ends: {message}");
    }
    assert_eq!(denials(&metrics(server.addr).await, "body_budget"), 2.0);

    // Unidentified callers, on a call open to them: a quarter (1 MiB).
    let body = padded_frame(600_000);
    let (mut pending, mut streams) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (response, mut stream) = open_stream(&send, "/credit_tender.v1.LogService/GetCheckpoint", "application/grpc", &[]).await;
        send_open(&mut stream, &body);
        pending.push(response);
        streams.push(stream);
    }
    let mut rx = answers(pending);
    let (i, (status, message, pushback)) = next(&mut rx).await;
    assert_eq!(status, "8", "{message}");
    assert!(message.contains("unidentified callers' request bodies are at their limit of 1048576 bytes at once"), "{message}");
    assert_eq!(pushback.as_deref(), Some("100"));
    streams[1 - i].send_data(bytes::Bytes::new(), true).unwrap();
    let (_, (status, message, _)) = next(&mut rx).await;
    assert_eq!(status, "0", "{message}");
    assert_eq!(denials(&metrics(server.addr).await, "body_budget"), 3.0);
}

/// A body over the 16 MiB message limit stays too large: RESOURCE_EXHAUSTED
/// saying so and the limit, with no retry hint, over gRPC and gRPC-Web.
#[tokio::test]
async fn a_body_over_the_message_limit_is_not_told_to_retry() {
    let db = sqlite_db();
    let server = guarded(&db, credit_tender::shed::DEFAULT_BODY_BUDGET, &crate::access::principals_toml()).await;
    let send = h2(server.addr).await;
    let auth = format!("Bearer {}", crate::access::PLATFORM_TOKEN);
    let body = bytes::Bytes::from(vec![0u8; (16 << 20) + 6]);
    for content_type in ["application/grpc", "application/grpc-web+proto"] {
        let (response, mut stream) =
            open_stream(&send, "/credit_tender.v1.TenderService/ListTenders", content_type, &[("authorization", &auth)]).await;
        stream.send_data(body.clone(), true).unwrap();
        let response = tokio::time::timeout(SAFETY, response).await.expect("an answer").unwrap();
        let (status, message, pushback) = status_of(response).await;
        assert_eq!(status, "8", "{content_type}: {message}");
        assert!(message.contains("message is too large") && message.contains("at most 16777216 bytes"), "{message}");
        assert!(!message.contains("retry"), "{message}");
        assert_eq!(pushback, None, "{content_type}");
    }
}

/// The authorization scheme is case-insensitive (RFC 9110 §11.1): `bearer`
/// and `BEARER` tokens are the principal's, on gRPC, gRPC-Web and pages.
#[tokio::test]
async fn a_bearer_scheme_in_any_case_is_a_bearer_token_on_every_door() {
    let db = sqlite_db();
    let server = guarded(&db, credit_tender::shed::DEFAULT_BODY_BUDGET, &crate::access::principals_toml()).await;
    let send = h2(server.addr).await;
    // A gRPC frame of an empty message.
    let message = vec![0u8; 5];
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme}  {}", crate::access::PLATFORM_TOKEN);
        for content_type in ["application/grpc", "application/grpc-web+proto"] {
            let (response, mut stream) =
                open_stream(&send, "/credit_tender.v1.TenderService/ListTenders", content_type, &[("authorization", &auth)]).await;
            stream.send_data(bytes::Bytes::from(message.clone()), true).unwrap();
            let (status, text, _) = status_of(response.await.unwrap()).await;
            assert_eq!(status, "0", "{scheme} over {content_type}: {text}");
        }
        let auth = format!("{scheme} {}", crate::access::SUPERVISOR_TOKEN);
        let answer = http1(server.addr, "GET", "/metrics", &[("authorization", &auth)], b"").await;
        assert_eq!(answer.status, 200, "{scheme}: /metrics");
    }
    // Another scheme is no bearer token.
    let (response, mut stream) =
        open_stream(&send, "/credit_tender.v1.TenderService/ListTenders", "application/grpc", &[("authorization", "Basic Zm9vOmJhcg==")])
            .await;
    stream.send_data(bytes::Bytes::from(message), true).unwrap();
    let (status, _, _) = status_of(response.await.unwrap()).await;
    assert_eq!(status, "16");
}

/// The per-principal rate limit's refusal carries the retry hint the
/// shedding's does: RetryInfo and the pushback, both naming the same wait.
#[tokio::test]
async fn a_principal_over_its_rate_is_told_when_to_retry_with_retry_info() {
    use tonic_types::StatusExt;
    let db = sqlite_db();
    let toml = format!("{}{}", crate::access::principals_toml(), crate::access::SMALL_SUPERVISOR_LIMITS);
    let server = guarded(&db, credit_tender::shed::DEFAULT_BODY_BUDGET, &toml).await;
    let bearer = credit_tender::proto::Bearer::new(Some(crate::access::SUPERVISOR_TOKEN)).unwrap();
    let mut client = pb::tender_service_client::TenderServiceClient::with_interceptor(server.channel.clone(), bearer);
    let mut refusal = None;
    for _ in 0..20 {
        if let Err(s) = client.list_tenders(pb::ListTendersRequest {}).await {
            refusal = Some(s);
            break;
        }
    }
    let status = refusal.expect("a burst of 5 at 1/s is over the rate within 20 calls");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("a RetryInfo detail").retry_delay.expect("a delay");
    let pushback: u64 = status.metadata().get("grpc-retry-pushback-ms").expect("the pushback").to_str().unwrap().parse().unwrap();
    assert_eq!(retry.as_millis() as u64, pushback);
    assert!(status.message().ends_with(&format!("retry after {pushback} ms")), "{}", status.message());
}

/// A codec other than protobuf is refused, not run as protobuf: gRPC
/// answers UNIMPLEMENTED, gRPC-Web the same in its trailer frame.
#[tokio::test]
async fn grpc_and_grpc_web_in_json_are_refused_as_unimplemented() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let send = h2(server.addr).await;
    for content_type in ["application/grpc+json", "application/grpc-web+json", "application/grpc-web-text+json", "application/GRPC+Json"] {
        let (response, mut stream) = open_stream(&send, "/credit_tender.v1.KeyService/ListKeys", content_type, &[]).await;
        stream.send_data(bytes::Bytes::from_static(b"\0\0\0\0\x02{}"), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let answer_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let web = content_type.to_ascii_lowercase().starts_with("application/grpc-web");
        assert_eq!(answer_type.starts_with("application/grpc-web"), web, "{content_type}: {answer_type}");
        let (status, message, _) = if content_type.contains("text") {
            // The text form's trailer frame is base64.
            let (_, mut body) = response.into_parts();
            let mut text = Vec::new();
            while let Some(c) = body.data().await {
                text.extend_from_slice(&c.unwrap());
            }
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
            let lines = String::from_utf8(raw[5..].to_vec()).unwrap();
            assert!(lines.contains("grpc-status:12"), "{lines}");
            continue;
        } else {
            status_of(response).await
        };
        assert_eq!(status, "12", "{content_type}: {message}");
        assert!(message.contains("protobuf only"), "{message}");
    }
    // HTTP/1.1 too (tonic-web would answer 400 to gRPC-Web JSON there).
    let answer =
        http1(server.addr, "POST", "/credit_tender.v1.KeyService/ListKeys", &[("content-type", "application/grpc-web+json")], b"").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.windows(14).any(|w| w == b"grpc-status:12"), "{:?}", String::from_utf8_lossy(&answer.body));
}

/// gRPC-Web text that is not base64 is the client's mistake:
/// INVALID_ARGUMENT in the trailer frame, counted so in /metrics, on a call
/// admission reads the body of and on one it never sheds alike.
#[tokio::test]
async fn grpc_web_text_that_is_not_base64_is_invalid_argument() {
    use base64::Engine;
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    for (path, method) in
        [("/credit_tender.v1.TenderService/GetTender", "GetTender"), ("/credit_tender.v1.KeyService/ListKeys", "ListKeys")]
    {
        for body in [&b"!!!!not base64"[..], b"AAAAAA=", b"AAAAAAA*"] {
            let headers = [("content-type", "application/grpc-web-text"), ("accept", "application/grpc-web-text")];
            let answer = http1(server.addr, "POST", path, &headers, body).await;
            assert_eq!(answer.status, 200, "{path}");
            let text: Vec<u8> = answer.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            let frame = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
            assert_eq!(frame[0], 0x80, "a trailer frame");
            let lines = String::from_utf8(frame[5..].to_vec()).unwrap();
            assert!(lines.contains("grpc-status:3\r\n"), "{path} {body:?}: {lines}");
            assert!(percent(&lines).contains("not base64"), "{lines}");
        }
        let metrics = crate::cache::scrape(server.addr).await;
        let series = format!("credit_tender_grpc_requests_total{{method=\"{method}\",code=\"INVALID_ARGUMENT\"}}");
        assert_eq!(sample(&metrics, &series), 3.0, "{metrics}");
        assert!(!metrics.contains(&format!("method=\"{method}\",code=\"INTERNAL\"")), "{metrics}");
    }
}
