//! Issue 22's outside attack: every HTTP answer a person or the page's
//! script can see reads Chinese first, with a machine code (in the body and
//! the `x-credit-tender-error` header). Whoever makes the answer: the shed
//! (503), the gate (401, 429), the pages' handlers (404, 400), or the
//! framework (an unknown path, a method a route does not take, a query or a
//! path it cannot read).

use crate::access::{Certs, SMALL_SUPERVISOR_LIMITS, SUPERVISOR_TOKEN, https_get, principals_toml, spawn_secure_with};
use crate::helpers::*;
use credit_tender::refusal::CODE_HEADER;
use credit_tender::server::ServerOptions;
use credit_tender::shed::TEST_WAIT_HEADER;

/// A raw HTTP/1.1 request with `extra` header lines: (status, head in
/// lower case, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let raw = bounded(format!("{method} {path}"), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    })
    .await;
    let text = String::from_utf8(raw).expect("answers are UTF-8");
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").map(|(h, b)| (h.to_ascii_lowercase(), b.to_owned())).unwrap_or_default();
    (status, head, body)
}

/// The value of header `name` in a lower-cased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::trim))
}

/// Asserts a refusal: its status, Chinese first, its code in the body and
/// the header, and a text or HTML type that says UTF-8.
fn refused(what: &str, (status, head, body): &(u16, String, String), want: u16, code: &str) {
    assert_eq!(*status, want, "{what}: {head}\n{body}");
    assert_chinese_first(what, body);
    assert_eq!(header(head, CODE_HEADER), Some(code.to_ascii_lowercase().as_str()), "{what}: {head}");
    let kind = header(head, "content-type").unwrap_or_default();
    assert!(kind.contains("charset=utf-8"), "{what}: {kind}");
    if kind.starts_with("text/plain") {
        assert!(body.contains(&format!("（代码 {code}）")), "{what}: {body}");
    }
}

#[tokio::test]
async fn the_pages_and_the_framework_refuse_in_chinese_with_a_code() {
    let (server, _table, _db) = crate::web::demo_server(ServerOptions::default()).await;
    let addr = server.addr;
    // A bad proof query names the parameter, in Chinese.
    for query in ["index=abc", "index=-1", "", "index=1.5"] {
        let answer = http(addr, "GET", &format!("/api/log/proof?{query}"), &[]).await;
        refused(&format!("proof ?{query}"), &answer, 400, "BAD_REQUEST");
        assert!(answer.2.contains("index") && !answer.2.contains("Failed to deserialize"), "{}", answer.2);
    }
    let answer = http(addr, "GET", "/api/log/proof?index=99999999", &[]).await;
    refused("a proof of a leaf not yet logged", &answer, 404, "NOT_FOUND");
    assert!(answer.2.contains("日志序号 99999999 尚未计入"), "{}", answer.2);
    let answer = http(addr, "GET", "/api/tenders/NO-SUCH/statements", &[]).await;
    refused("statements of an unknown tender", &answer, 404, "NOT_FOUND");
    assert!(answer.2.contains("「NO-SUCH」"), "{}", answer.2);
    let answer = http(addr, "GET", &format!("/api/tenders/{}/statements?page_token=bogus", crate::web::DEMO_TENDER), &[]).await;
    refused("a page token that is not one", &answer, 400, "BAD_REQUEST");
    refused("a bad statements query", &http(addr, "GET", "/api/tenders/X/statements?tamper=x", &[]).await, 400, "BAD_REQUEST");
    // What the framework answers: an unknown path, a method a route does
    // not take, a path that is not UTF-8 once decoded.
    refused("an unknown path", &http(addr, "GET", "/no/such/page", &[]).await, 404, "NOT_FOUND");
    refused("an unknown asset", &http(addr, "GET", "/assets/noble-hashes/none.js", &[]).await, 404, "NOT_FOUND");
    refused("a log tile beyond the tree", &http(addr, "GET", "/log/tile/0/000", &[]).await, 404, "NOT_FOUND");
    let answer = http(addr, "POST", "/tenders/X", &[]).await;
    refused("POST to a page", &answer, 405, "METHOD_NOT_ALLOWED");
    refused("a path that is not UTF-8", &http(addr, "GET", "/tenders/%FF%FE", &[]).await, 400, "BAD_REQUEST");
    // The page for an unknown tender is an HTML page, Chinese first, with its code.
    refused("the page of an unknown tender", &http(addr, "GET", "/tenders/NO-SUCH", &[]).await, 404, "NOT_FOUND");
    // gRPC to an unknown service is still gRPC's UNIMPLEMENTED, not a page.
    let answer = http(addr, "POST", "/no.such.Service/Method", &[("content-type", "application/grpc")]).await;
    assert_eq!(header(&answer.1, "grpc-status"), Some("12"), "{}", answer.1);
}

#[tokio::test]
async fn the_shed_refuses_a_page_in_chinese_with_retry_after() {
    let options = ServerOptions {
        queue_wait_test_hook: true,
        // Only the injected wait is past it, on any machine.
        queue_target: std::time::Duration::from_secs(10),
        ..ServerOptions::default()
    };
    let (server, _table, _db) = crate::web::demo_server(options).await;
    for path in ["/api/log/proof?index=0", "/", "/tenders/DEMO-SX-2026-001", "/api/tenders/DEMO-SX-2026-001/statements"] {
        let answer = http(server.addr, "GET", path, &[(TEST_WAIT_HEADER, "60000")]).await;
        refused(&format!("{path}, shed"), &answer, 503, "OVERLOADED");
        assert_eq!(header(&answer.1, "retry-after"), Some("1"), "{path}: {}", answer.1);
        assert!(answer.2.starts_with("服务器繁忙：本次请求排队等候") && answer.2.contains("请 1 秒后重试"), "{path}: {}", answer.2);
    }
}

#[tokio::test]
async fn the_gate_refuses_a_page_in_chinese_unauthenticated_or_over_its_rate() {
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure_with(&db, &certs, &format!("{SMALL_SUPERVISOR_LIMITS}{}", principals_toml())).await;
    let statements = "/api/tenders/T-GD/statements";
    // No identity: the page says so (HTML); the API too (text).
    for path in ["/", "/tenders/T-GD", statements] {
        let (status, head, body) = https_get(server.addr, &certs, path, &[]).await;
        refused(&format!("anonymous {path}"), &(status, head.to_ascii_lowercase(), body), 401, "UNAUTHENTICATED");
    }
    let (status, head, body) = https_get(server.addr, &certs, statements, &[("authorization", "Bearer ct_nobody")]).await;
    refused("an unknown token", &(status, head.to_ascii_lowercase(), body.clone()), 401, "UNAUTHENTICATED");
    assert!(body.contains("访问令牌未知或已被撤销"), "{body}");
    let (status, head, body) = https_get(server.addr, &certs, statements, &[("cookie", "ct_session=ct_not-a-session")]).await;
    refused("a session that is over", &(status, head.to_ascii_lowercase(), body.clone()), 401, "SESSION_ENDED");
    assert!(body.contains("请向招标平台重新申请评标委员会访问链接"), "{body}");
    // Over its rate: 429, in Chinese, with a Retry-After in whole seconds.
    let auth = format!("Bearer {SUPERVISOR_TOKEN}");
    let mut limited = None;
    for _ in 0..1000 {
        let (status, head, body) = https_get(server.addr, &certs, "/metrics", &[("authorization", auth.as_str())]).await;
        if status != 200 {
            limited = Some((status, head.to_ascii_lowercase(), body));
            break;
        }
    }
    let limited = limited.expect("1,000 calls in a row never met the supervisor's 1/s limit");
    refused("the supervisor over its rate", &limited, 429, "RATE_LIMITED");
    assert_eq!(header(&limited.1, "retry-after"), Some("1"), "{}", limited.1);
    assert!(limited.2.contains("「supervisor」每秒最多 1 个请求") && limited.2.contains("请 1 秒后重试"), "{}", limited.2);
}
