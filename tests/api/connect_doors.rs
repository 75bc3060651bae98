//! What the Connect door answers besides a call it serves, from outside
//! (Python's http.client over HTTP/1.1, tests/clients/connect_calls.py):
//! methods it does not serve, HTTP methods other than POST, gRPC health
//! over Connect, and the head of a request (protocol version, deadline,
//! compression, content type). Each is a Connect error body with the
//! protocol's status or a plain HTTP refusal that says what is served;
//! never 200 with an empty gRPC answer.

use crate::access::PLATFORM_TOKEN;
use crate::connect::{Answer, json_call, python, seeded};
use serde_json::{Value, json};

/// The calls, each on a fresh connection: a refusal that leaves the body
/// unread closes the connection it came on.
async fn connect_calls(addr: std::net::SocketAddr, calls: &[Value]) -> Vec<Answer> {
    let calls: Vec<Value> = calls
        .iter()
        .cloned()
        .map(|mut c| {
            c["fresh"] = json!(true);
            c
        })
        .collect();
    crate::connect::connect_calls(addr, &calls).await
}

fn call(method: &str, path: &str, headers: Value, body: &str) -> Value {
    json!({"method": method, "path": path, "headers": headers, "body": body})
}

fn json_post(path: &str, body: Value) -> Value {
    call("POST", path, json!({"content-type": "application/json"}), &body.to_string())
}

#[tokio::test]
async fn unknown_methods_and_streaming_ones_get_connect_errors_and_health_answers_in_json() {
    if !python() {
        return;
    }
    let (server, _code, _db) = seeded().await;
    let calls = [
        json_post("/credit_tender.v1.TenderService/NoSuchMethod", json!({})),
        json_post("/no.such.Service/Method", json!({})),
        json_post("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", json!({})),
        call("POST", "/no.such.Service/Method", json!({"content-type": "application/connect+json"}), "\u{0}\u{0}\u{0}\u{0}\u{2}{}"),
        json_post("/grpc.health.v1.Health/Check", json!({})),
        json_post("/grpc.health.v1.Health/Check", json!({"service": "credit_tender.v1.KeyService"})),
        json_post("/grpc.health.v1.Health/Check", json!({"service": null})),
        json_post("/grpc.health.v1.Health/Check", json!({"service": "no.such.Service"})),
        json_post("/grpc.health.v1.Health/Watch", json!({})),
    ];
    let a = connect_calls(server.addr, &calls).await;
    for (i, path) in [(0, "NoSuchMethod"), (1, "no.such.Service"), (2, "ServerReflectionInfo")] {
        let (message, _) = a[i].error(501, "unimplemented");
        assert!(message.contains(path), "{message}");
    }
    // A JSON stream to an unknown method: the end-of-stream envelope says so.
    assert_eq!(a[3].status, 200);
    assert_eq!(a[3].content_type(), "application/connect+json");
    assert_eq!(a[3].body[0], 2, "an end-of-stream envelope: {:?}", a[3].body);
    let end: Value = serde_json::from_slice(&a[3].body[5..]).unwrap();
    assert_eq!(end["error"]["code"], json!("unimplemented"), "{end}");

    for i in [4, 5, 6] {
        assert_eq!(a[i].status, 200, "{i}: {}", String::from_utf8_lossy(&a[i].body));
        assert_eq!(a[i].content_type(), "application/json");
        assert_eq!(a[i].json(), json!({"status": "SERVING"}), "{i}");
    }
    a[7].error(404, "not_found");
    // Watch streams: a unary content type is refused, saying what is served.
    assert_eq!(a[8].status, 415, "{}", String::from_utf8_lossy(&a[8].body));
    let text = String::from_utf8_lossy(&a[8].body);
    assert!(text.contains("'application/json'") && text.contains("application/connect+json"), "{text}");
}

#[tokio::test]
async fn only_post_reaches_an_rpc_and_every_content_type_is_checked() {
    if !python() {
        return;
    }
    let (server, _code, _db) = seeded().await;
    let list_keys = "/credit_tender.v1.KeyService/ListKeys";
    // A gRPC frame around an empty ListKeysRequest.
    let frame = "\u{0}\u{0}\u{0}\u{0}\u{0}";
    let calls = [
        call("GET", list_keys, json!({"content-type": "application/grpc"}), frame),
        call("GET", list_keys, json!({"content-type": "text/html"}), frame),
        call("PUT", list_keys, json!({"content-type": "application/json"}), "{}"),
        call("DELETE", "/credit_tender.v1.TenderService/GetTender", json!({}), ""),
        call("PATCH", "/no.such.Service/Method", json!({"content-type": "application/json"}), "{}"),
        call("OPTIONS", list_keys, json!({"origin": "https://platform.example", "access-control-request-method": "POST"}), ""),
        call("POST", list_keys, json!({"content-type": "text/html"}), "{}"),
        call("POST", "/credit_tender.v1.AssessmentService/WatchTender", json!({"content-type": "application/json"}), "{}"),
        call("POST", list_keys, json!({"content-type": "application/connect+json"}), "{}"),
        // The pages are not RPCs: GET still reaches them.
        call("GET", "/metrics", json!({}), ""),
    ];
    let a = connect_calls(server.addr, &calls).await;
    for (i, answer) in a[..5].iter().enumerate() {
        assert_eq!(answer.status, 405, "{i}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.headers.get("allow").map(String::as_str), Some("POST"), "{i}");
        assert!(!answer.headers.contains_key("grpc-status"), "{i}: nothing ran: {:?}", answer.headers);
    }
    // The preflight: no origin allowed, nothing run.
    assert_eq!(a[5].status, 204);
    assert!(!a[5].headers.contains_key("access-control-allow-origin"), "{:?}", a[5].headers);
    assert!(!a[5].headers.contains_key("grpc-status") && a[5].body.is_empty());
    for (i, shown) in [(6, "'text/html'"), (7, "'application/json'"), (8, "'application/connect+json'")] {
        assert_eq!(a[i].status, 415, "{i}");
        let text = String::from_utf8_lossy(&a[i].body);
        assert!(text.contains(shown) && !text.contains("a streaming content type is"), "{i}: {text}");
        let accepted = &a[i].headers["accept-post"];
        for t in ["application/json", "application/proto", "application/connect+json", "application/connect+proto", "application/grpc-web"]
        {
            assert!(accepted.contains(t), "{i}: {accepted}");
        }
    }
    // A page's GET (/metrics, behind its token) is not refused as a method.
    assert_ne!(a[9].status, 405, "{:?}", a[9].headers);
    assert!(!a[9].headers.contains_key("allow"));
}

#[tokio::test]
async fn the_head_of_a_connect_request_is_checked_as_the_protocol_says() {
    if !python() {
        return;
    }
    let (server, _code, _db) = seeded().await;
    let with = |extra: Value| {
        let mut c = json_call("KeyService/ListKeys", Some(PLATFORM_TOKEN), json!({}));
        for (k, v) in extra.as_object().unwrap() {
            c["headers"][k] = v.clone();
        }
        c
    };
    let calls = [
        with(json!({"connect-protocol-version": "2"})),
        with(json!({"connect-timeout-ms": "0"})),
        with(json!({"connect-timeout-ms": "1e3"})),
        with(json!({"content-encoding": "gzip"})),
        with(json!({"connect-timeout-ms": "60000"})),
        with(json!({})),
    ];
    let a = connect_calls(server.addr, &calls).await;
    let (message, _) = a[0].error(400, "invalid_argument");
    assert!(message.contains("connect-protocol-version '2'"), "{message}");
    for i in [1, 2] {
        let (message, _) = a[i].error(400, "invalid_argument");
        assert!(message.contains("connect-timeout-ms"), "{message}");
    }
    let (message, _) = a[3].error(501, "unimplemented");
    assert!(message.contains("gzip"), "{message}");
    assert_eq!(a[3].headers.get("accept-encoding").map(String::as_str), Some("identity"));
    assert_eq!(a[4].status, 200, "a deadline the call meets: {}", String::from_utf8_lossy(&a[4].body));
    assert_eq!(a[4].body, a[5].body);
}

#[tokio::test]
async fn a_connect_deadline_ends_the_call_with_deadline_exceeded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _code, _db) = seeded().await;
    // The head says 100 bytes of body and 2 come: the call waits on its body
    // (up to --body-timeout-ms, 10 s) until its own deadline ends it.
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /credit_tender.v1.KeyService/ListKeys HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {PLATFORM_TOKEN}\r\nConnect-Timeout-Ms: 200\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{{}}"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    };
    let answer = crate::helpers::bounded("a call past its deadline", exchange).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains(r#""code":"deadline_exceeded""#) && answer.contains("connect-timeout-ms"), "{answer}");
}
