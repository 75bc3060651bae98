//! The README's Java example ("From Java: the two calls a platform makes
//! most"), run as written with the JDK's single-file launcher against a
//! TLS server with the test principals: its Assess is the Rust client's
//! answer, its CheckDeposit the same check, and a tender it may not see is
//! a 404 with a Connect error body. Without `java` the test skips;
//! `CREDIT_TENDER_REQUIRE_JAVA=1` (CI) makes that a failure.

use crate::access::{Certs, HOST, PLATFORM_TOKEN, clients, seed, spawn_secure, tls_channel};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;

const README: &str = include_str!("../../README.md");

/// The ```java block after the Java heading.
fn java_example() -> &'static str {
    let at = README.find("### From Java: the two calls a platform makes most").expect("the README has the Java example");
    let rest = &README[at..];
    let start = rest.find("```java\n").expect("a java block") + "```java\n".len();
    let end = rest[start..].find("\n```").expect("the java block ends");
    &rest[start..start + end]
}

fn java() -> bool {
    let ok = std::process::Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("CREDIT_TENDER_REQUIRE_JAVA").is_ok_and(|v| v == "1");
        assert!(!required, "CREDIT_TENDER_REQUIRE_JAVA=1 but there is no java on PATH");
        crate::harness::skipped(crate::harness::Needs::Java, "no java on PATH (apt-get install default-jdk-headless)");
    }
    ok
}

/// `java Platform.java SERVER CA TOKEN TENDER CODE`, the test name resolving
/// to loopback: (exit status 0, the printed lines).
async fn run_example(dir: &std::path::Path, server: &TestServer, certs: &Certs, tender: &str, code: &str) -> (bool, Vec<String>) {
    let args = [
        format!("-Djdk.net.hosts.file={}", dir.join("hosts").display()),
        dir.join("Platform.java").to_str().unwrap().to_owned(),
        format!("https://{HOST}:{}", server.addr.port()),
        certs.path("ca.pem").to_str().unwrap().to_owned(),
        PLATFORM_TOKEN.to_owned(),
        tender.to_owned(),
        code.to_owned(),
    ];
    let run = move || std::process::Command::new("java").args(args).output().unwrap();
    let out = bounded("java Platform.java", tokio::task::spawn_blocking(run)).await.unwrap();
    assert!(out.status.success() || out.status.code() == Some(1), "java: {}", stderr(&out));
    (out.status.success(), stdout(&out).lines().map(str::to_owned).collect())
}

#[tokio::test]
async fn the_readmes_java_example_assesses_and_checks_a_deposit_over_tls_with_a_token() {
    if !java() {
        return;
    }
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure(&db, &certs).await;
    let code = crate::assessment::code(231);
    seed(server.addr, &certs, &code).await;
    let channel = tls_channel(server.addr, &certs, None).await;
    let mut platform = clients(&channel, Some(PLATFORM_TOKEN));
    let bidder = Some(pb::Bidder { credit_codes: vec![code.clone()] });
    let assess = pb::AssessRequest { tender_id: "T-GD".into(), bidder: bidder.clone(), contract_price_fen: None };
    let typed = platform.assess.assess(assess).await.unwrap().into_inner();
    let check = pb::CheckDepositRequest { tender_id: "T-GD".into(), bidder, offered_fen: 200_000, ..Default::default() };
    let typed_check = platform.assess.check_deposit(check).await.unwrap().into_inner();

    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "Platform.java", java_example());
    file(dir.path(), "hosts", format!("127.0.0.1 {HOST}\n"));
    let (ok, lines) = run_example(dir.path(), &server, &certs, "T-GD", &code).await;
    assert!(ok, "{lines:?}");
    let answer = |method: &str| -> serde_json::Value {
        let line = lines.iter().find(|l| l.starts_with(method)).unwrap_or_else(|| panic!("no {method} line: {lines:?}"));
        let body = line.strip_prefix(&format!("{method} 200 ")).unwrap_or_else(|| panic!("{line}"));
        serde_json::from_str(body).unwrap()
    };
    let assessed: pb::AssessResponse = serde_json::from_value(answer("AssessmentService/Assess")).unwrap();
    assert_eq!(assessed, typed, "Java's Assess is the Rust client's answer");
    let checked: pb::CheckDepositResponse = serde_json::from_value(answer("AssessmentService/CheckDeposit")).unwrap();
    assert_eq!(checked.check, typed_check.check, "Java's CheckDeposit");

    // A tender this platform does not have: 404, a Connect error body, exit status 1.
    let (ok, lines) = run_example(dir.path(), &server, &certs, "NO-SUCH", &code).await;
    assert!(!ok);
    assert_eq!(lines, [r#"AssessmentService/Assess 404 {"code":"not_found","message":"no tender 'NO-SUCH'"}"#], "{lines:?}");
}
