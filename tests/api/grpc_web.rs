//! gRPC-Web on the one port, over plain HTTP/1.1 as a browser sends it:
//! binary and text, each answer ending in a trailer frame that carries the
//! status, for answers and for errors alike (a handler's, and the gate's).

use crate::cache::{sample, scrape};
use crate::helpers::*;
use base64::Engine;
use credit_tender::access::principals::{Principals, SharedPrincipals};
use credit_tender::proto::v1 as pb;
use prost::Message;
use std::sync::Arc;

/// A gRPC(-Web) length-prefixed message frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// A gRPC-Web body's frames: (the messages, the trailer frame's lines by name).
fn frames(mut body: &[u8]) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let (mut messages, mut trailers) = (Vec::new(), None);
    while !body.is_empty() {
        assert!(body.len() >= 5, "a frame cut short: {body:?}");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body[5..5 + len].to_vec();
        match body[0] {
            0 => {
                assert!(trailers.is_none(), "a message after the trailer frame");
                messages.push(payload);
            }
            0x80 => {
                let text = String::from_utf8(payload).unwrap();
                let lines = text
                    .split("\r\n")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("a trailer line without ':': {l}"));
                        (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                assert!(trailers.replace(lines).is_none(), "two trailer frames");
            }
            flag => panic!("a frame with flag {flag:#x}"),
        }
        body = &body[5 + len..];
    }
    (messages, trailers.expect("the body ends with a trailer frame"))
}

/// A trailer's value, percent-decoded (as grpc-message is sent).
fn trailer(trailers: &[(String, String)], name: &str) -> Option<String> {
    trailers.iter().find(|(n, _)| n == name).map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
}

/// The text form's body: base64, possibly several padded pieces one after
/// the other (each 4 characters decode alone).
fn unbase64(text: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(text.len() % 4, 0, "base64 in whole quanta: {}", String::from_utf8_lossy(&text));
    text.chunks(4).flat_map(|q| base64::engine::general_purpose::STANDARD.decode(q).unwrap()).collect()
}

async fn grpc_web(addr: std::net::SocketAddr, path: &str, body: Vec<u8>, text: bool, extra: &[(&str, &str)]) -> Http1Answer {
    let (content_type, body) = if text {
        ("application/grpc-web-text", base64::engine::general_purpose::STANDARD.encode(&body).into_bytes())
    } else {
        ("application/grpc-web+proto", body)
    };
    // A text client asks for a text answer (tonic-web answers in the form `accept` names).
    let mut headers = vec![("content-type", content_type), ("accept", content_type), ("x-grpc-web", "1")];
    headers.extend_from_slice(extra);
    let answer = http1(addr, "POST", path, &headers, &body).await;
    assert_eq!(answer.status, 200, "{path}: {}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("content-type"), Some(if text { "application/grpc-web-text+proto" } else { "application/grpc-web+proto" }));
    answer
}

#[tokio::test]
async fn grpc_web_over_http1_gets_its_answer_and_status_in_a_trailer_frame_binary_and_text() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone());
    let typed = keys.clone().list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    assert!(!typed.keys.is_empty());

    for text in [false, true] {
        let answer = grpc_web(server.addr, "/credit_tender.v1.KeyService/ListKeys", frame(&pb::ListKeysRequest {}), text, &[]).await;
        let body = if text { unbase64(&answer.body) } else { answer.body.clone() };
        let (messages, trailers) = frames(&body);
        assert_eq!(messages.len(), 1, "text={text}");
        assert_eq!(pb::ListKeysResponse::decode(&messages[0][..]).unwrap(), typed, "text={text}: the same answer as over gRPC");
        assert_eq!(trailer(&trailers, "grpc-status"), Some("0".into()), "text={text}: {trailers:?}");
        assert_eq!(answer.header("grpc-status"), None, "the status is in the trailer frame, not the head");

        // A handler's error: no message, the status in the trailer frame.
        let request = pb::GetTenderRequest { tender_id: "NO-SUCH-TENDER".into(), version: 0 };
        let answer = grpc_web(server.addr, "/credit_tender.v1.TenderService/GetTender", frame(&request), text, &[]).await;
        let body = if text { unbase64(&answer.body) } else { answer.body.clone() };
        let (messages, trailers) = frames(&body);
        assert!(messages.is_empty());
        assert_eq!(trailer(&trailers, "grpc-status"), Some("5".into()), "text={text}: NOT_FOUND: {trailers:?}");
        assert!(trailer(&trailers, "grpc-message").is_some_and(|m| m.contains("NO-SUCH-TENDER")), "{trailers:?}");
        assert_eq!(answer.header("grpc-status"), None);

        // A request that is not a message of the method's type: the
        // wire-error mapping (INVALID_ARGUMENT, not INTERNAL) applies here too.
        let garbage = vec![0, 0, 0, 0, 2, 0xff, 0xff];
        let answer = grpc_web(server.addr, "/credit_tender.v1.TenderService/GetTender", garbage, text, &[]).await;
        let body = if text { unbase64(&answer.body) } else { answer.body.clone() };
        let (_, trailers) = frames(&body);
        assert_eq!(trailer(&trailers, "grpc-status"), Some("3".into()), "text={text}: {trailers:?}");
    }
    // Counted as the gRPC calls they are.
    let metrics = scrape(server.addr).await;
    assert!(sample(&metrics, "credit_tender_grpc_requests_total{method=\"ListKeys\",code=\"OK\"}") >= 2.0, "{metrics}");
    assert!(sample(&metrics, "credit_tender_grpc_requests_total{method=\"GetTender\",code=\"NOT_FOUND\"}") >= 2.0, "{metrics}");

    // The pages are still served over HTTP/1.1 beside it.
    let (status, _) = http_get(server.addr, "/api/keys").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn grpc_web_callers_pass_the_same_gate_and_a_refusal_comes_in_a_trailer_frame() {
    let principals = Principals::from_toml(&crate::access::principals_toml()).unwrap();
    let options =
        credit_tender::server::ServerOptions { principals: Some(Arc::new(SharedPrincipals::fixed(principals))), ..Default::default() };
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions { server: options, ..AppOptions::default() }).await;
    let request = pb::ListTendersRequest {};
    let path = "/credit_tender.v1.TenderService/ListTenders";

    // An unknown token: refused at the gate.
    let answer = grpc_web(server.addr, path, frame(&request), false, &[("authorization", "Bearer ct_no-such-token")]).await;
    let (messages, trailers) = frames(&answer.body);
    assert!(messages.is_empty());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("16".into()), "UNAUTHENTICATED: {trailers:?}");
    assert!(trailer(&trailers, "grpc-message").is_some_and(|m| m.contains("unknown or revoked bearer token")), "{trailers:?}");

    // No identity at all: the access rules' answer.
    let answer = grpc_web(server.addr, path, frame(&request), true, &[]).await;
    let (_, trailers) = frames(&unbase64(&answer.body));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("16".into()), "{trailers:?}");

    // A platform's token: served.
    let bearer = format!("Bearer {}", crate::access::PLATFORM_TOKEN);
    let answer = grpc_web(server.addr, path, frame(&request), false, &[("authorization", &bearer)]).await;
    let (messages, trailers) = frames(&answer.body);
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0".into()), "{trailers:?}");
    assert_eq!(messages.len(), 1);
    pb::ListTendersResponse::decode(&messages[0][..]).unwrap();
}
