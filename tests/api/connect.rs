//! The Connect protocol from outside, as a platform's web back end calls it:
//! Python's standard `http.client`, HTTP/1.1, a POST of JSON with a bearer
//! token (tests/clients/connect_calls.py). The answers are the generated
//! Rust client's, field for field; the envelope from the JSON door verifies
//! with the keys from the JSON door; every refusal is a Connect error body
//! with the protocol's HTTP status, from the same gate and handlers as gRPC.

use crate::access::{
    OTHER_PLATFORM_TOKEN, PLATFORM_TOKEN, PROVIDER_TOKEN, SMALL_SUPERVISOR_LIMITS, SUPERVISOR_TOKEN, clients, principals_toml,
};
use crate::cache::sample;
use crate::helpers::*;
use credit_tender::access::principals::{Principals, SharedPrincipals};
use credit_tender::proto::v1 as pb;
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/connect_calls.py");

/// Whether python3 is here (its standard library is all the script needs).
pub(crate) fn python() -> bool {
    let ok = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        crate::harness::skipped(crate::harness::Needs::Python, "no python3 on PATH");
    }
    ok
}

/// One answer as http.client read it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub version: u64,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers.get("content-type").map_or("", String::as_str)
    }

    /// A Connect error's body, checked: (code, message, details).
    pub(crate) fn error(&self, status: u16, code: &str) -> (String, Vec<Value>) {
        assert_eq!(self.status, status, "{code}: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type(), "application/json");
        let v = self.json();
        assert_eq!(v["code"], json!(code), "{v}");
        let message = v["message"].as_str().unwrap_or_else(|| panic!("no message: {v}")).to_owned();
        (message, v["details"].as_array().cloned().unwrap_or_default())
    }
}

/// A Connect unary call of `method` (`Service/Method`) with a JSON body.
pub(crate) fn json_call(method: &str, token: Option<&str>, body: Value) -> Value {
    let mut headers = json!({"content-type": "application/json", "connect-protocol-version": "1"});
    if let Some(t) = token {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    json!({"path": format!("/credit_tender.v1.{method}"), "headers": headers, "body": body.to_string()})
}

/// Runs the calls from Python, in order, on one kept-alive connection.
pub(crate) async fn connect_calls(addr: std::net::SocketAddr, calls: &[Value]) -> Vec<Answer> {
    use std::io::Write;
    let input = serde_json::to_vec(calls).unwrap();
    let run = move || {
        let mut child = std::process::Command::new("python3")
            .args([SCRIPT, &addr.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = bounded("the Python Connect client", tokio::task::spawn_blocking(run)).await.unwrap();
    assert!(out.status.success(), "connect_calls.py: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    answers
        .into_iter()
        .map(|a| {
            let hex = a["body_hex"].as_str().unwrap();
            Answer {
                status: a["status"].as_u64().unwrap() as u16,
                version: a["version"].as_u64().unwrap(),
                headers: serde_json::from_value(a["headers"].clone()).unwrap(),
                body: (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect(),
            }
        })
        .collect()
}

fn bidder(code: &str) -> Option<pb::Bidder> {
    Some(pb::Bidder { credit_codes: vec![code.to_owned()] })
}

/// A server with the test principals (the supervisor held to a small
/// rate), and T-GD registered by its platform with one bid whose bidder
/// the provider graded.
pub(crate) async fn seeded() -> (TestServer, String, TestDb) {
    let principals = Principals::from_toml(&format!("{SMALL_SUPERVISOR_LIMITS}{}", principals_toml())).unwrap();
    let options =
        credit_tender::server::ServerOptions { principals: Some(Arc::new(SharedPrincipals::fixed(principals))), ..Default::default() };
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions { server: options, ..AppOptions::default() }).await;
    let code = crate::assessment::code(23);
    let mut platform = clients(&server.channel, Some(PLATFORM_TOKEN));
    let terms = crate::access::terms("440300");
    let req = pb::RegisterTenderRequest { tender_id: "T-GD".into(), terms: Some(terms), policy_id: "national-template".into() };
    platform.tenders.register_tender(req).await.unwrap();
    platform.tenders.register_bid(pb::RegisterBidRequest { tender_id: "T-GD".into(), bidder: bidder(&code) }).await.unwrap();
    let mut provider = clients(&server.channel, Some(PROVIDER_TOKEN));
    let put = pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("e-23", &code, json!({})))], source: String::new() };
    provider.data.put_records(put).await.unwrap();
    (server, code, db)
}

#[tokio::test]
async fn connect_json_over_http1_from_python_answers_as_grpc_does_and_the_envelope_verifies() {
    if !python() {
        return;
    }
    let (server, code, _db) = seeded().await;
    let mut platform = clients(&server.channel, Some(PLATFORM_TOKEN));
    let assess = pb::AssessRequest { tender_id: "T-GD".into(), bidder: bidder(&code), contract_price_fen: None };
    let typed_assess = platform.assess.assess(assess.clone()).await.unwrap().into_inner();
    let typed_table = platform
        .assess
        .assess_tender(pb::AssessTenderRequest { tender_id: "T-GD".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let check = pb::CheckDepositRequest { tender_id: "T-GD".into(), bidder: bidder(&code), offered_fen: 1, ..Default::default() };
    let typed_check = platform.assess.check_deposit(check).await.unwrap().into_inner();
    let mut keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone());
    let typed_keys = keys.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();

    let calls = [
        json_call("AssessmentService/Assess", Some(PLATFORM_TOKEN), json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}})),
        // Proto field names are accepted too.
        json_call("AssessmentService/Assess", Some(PLATFORM_TOKEN), json!({"tender_id": "T-GD", "bidder": {"credit_codes": [code]}})),
        json_call("AssessmentService/AssessTender", Some(PLATFORM_TOKEN), json!({"tenderId": "T-GD"})),
        json_call(
            "AssessmentService/CheckDeposit",
            Some(PLATFORM_TOKEN),
            json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}, "offeredFen": "1"}),
        ),
        json_call("KeyService/ListKeys", None, json!({})),
        // Binary protobuf: the same answer's bytes.
        json!({
            "path": "/credit_tender.v1.AssessmentService/Assess",
            "headers": {"content-type": "application/proto", "authorization": format!("Bearer {PLATFORM_TOKEN}")},
            "body_hex": hex::encode(assess.encode_to_vec()),
        }),
    ];
    let answers = connect_calls(server.addr, &calls).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.version, 11, "call {i}: HTTP/1.1");
        assert_eq!(a.status, 200, "call {i}: {}", String::from_utf8_lossy(&a.body));
    }
    let [assessed, by_proto_names, table, deposit, listed, binary] = &answers[..] else { panic!("{} answers", answers.len()) };

    assert_eq!(assessed.content_type(), "application/json");
    let v = assessed.json();
    assert!(v.get("logIndex").is_some() && v["envelope"].get("payloadType").is_some(), "lowerCamel names: {v}");
    assert!(v.get("log_index").is_none(), "{v}");
    let from_json: pb::AssessResponse = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(from_json, typed_assess, "Assess in Connect JSON is the gRPC answer");
    assert_eq!(by_proto_names.body, assessed.body, "proto names in the request: the same answer");

    let from_json: pb::AssessTenderResponse = serde_json::from_value(table.json()).unwrap();
    assert_eq!(from_json, typed_table, "AssessTender");
    assert_eq!(typed_table.bids.len(), 1);

    // Each deposit check is a new statement: the same fields, its own signature and time.
    let from_json: pb::CheckDepositResponse = serde_json::from_value(deposit.json()).unwrap();
    assert_eq!(from_json.check, typed_check.check, "CheckDeposit");
    assert_eq!(deposit.json()["check"]["offeredFen"], json!("1"), "int64 as a JSON string");

    let from_json: pb::ListKeysResponse = serde_json::from_value(listed.json()).unwrap();
    assert_eq!(from_json, typed_keys, "ListKeys");

    assert_eq!(binary.content_type(), "application/proto");
    assert_eq!(pb::AssessResponse::decode(&binary.body[..]).unwrap(), typed_assess, "Assess in Connect binary");

    // The envelope as the JSON door gave it verifies offline with the keys as the JSON door listed them.
    let dir = tempfile::tempdir().unwrap();
    let envelope = json_file(dir.path(), "envelope.json", &v["envelope"]);
    let keys_file = file(dir.path(), "keys.json", &listed.body);
    let out = cli(&["verify", envelope.to_str().unwrap(), "--keys", keys_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Signature   valid") && stdout(&out).contains(&code), "{}", stdout(&out));
}

#[tokio::test]
async fn connect_errors_are_connect_error_bodies_with_the_protocols_http_status() {
    if !python() {
        return;
    }
    let (server, code, _db) = seeded().await;
    let assess = |token: Option<&str>, body: Value| json_call("AssessmentService/Assess", token, body);
    let calls = vec![
        assess(Some(PLATFORM_TOKEN), json!({"tenderId": "T-GD", "bidder": {"creditCodes": ["12345"]}})),
        assess(Some(PLATFORM_TOKEN), json!({"tenderId": 5})),
        assess(Some(PLATFORM_TOKEN), json!({"tenderId": "T-GD", "bidders": []})),
        assess(Some(PLATFORM_TOKEN), json!({"tenderId": "T-NONE", "bidder": {"creditCodes": [code]}})),
        // Another province's platform does not see T-GD: not found, as over gRPC.
        assess(Some(OTHER_PLATFORM_TOKEN), json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}})),
        assess(None, json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}})),
        assess(Some("ct_nobody"), json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}})),
        assess(Some(PROVIDER_TOKEN), json!({"tenderId": "T-GD", "bidder": {"creditCodes": [code]}})),
        json!({
            "path": "/credit_tender.v1.AssessmentService/Assess",
            "headers": {"content-type": "application/x-www-form-urlencoded", "authorization": format!("Bearer {PLATFORM_TOKEN}")},
            "body": format!("tenderId=T-GD&creditCodes={code}"),
        }),
    ];
    let answers = connect_calls(server.addr, &calls).await;
    assert!(answers.iter().all(|a| a.version == 11));

    let (message, details) = answers[0].error(400, "invalid_argument");
    assert!(message.contains("bidder.credit_codes[0]") && message.contains("18"), "{message}");
    let violations = &details[0]["debug"]["fieldViolations"];
    assert_eq!(details[0]["type"], json!("google.rpc.BadRequest"), "{details:?}");
    assert!(details[0]["value"].as_str().is_some_and(|v| !v.is_empty() && !v.ends_with('=')), "base64 without padding: {details:?}");
    assert!(violations[0]["field"].as_str().is_some_and(|f| f.contains("credit_codes[0]")), "{violations}");

    let (message, details) = answers[1].error(400, "invalid_argument");
    assert!(message.contains("tenderId") && message.contains("invalid type"), "{message}");
    assert_eq!(details[0]["debug"]["fieldViolations"][0]["field"], json!("tenderId"), "{details:?}");
    let (message, _) = answers[2].error(400, "invalid_argument");
    assert!(message.contains("unknown field `bidders`"), "{message}");

    let (message, _) = answers[3].error(404, "not_found");
    assert!(message.contains("T-NONE"), "{message}");
    let (other, _) = answers[4].error(404, "not_found");
    assert_eq!(other, "no tender 'T-GD'");

    answers[5].error(401, "unauthenticated");
    let (message, _) = answers[6].error(401, "unauthenticated");
    assert!(message.contains("unknown or revoked bearer token"), "{message}");
    let (message, _) = answers[7].error(403, "permission_denied");
    assert!(!message.is_empty());

    let form = &answers[8];
    assert_eq!(form.status, 415, "{}", String::from_utf8_lossy(&form.body));
    assert!(form.headers.get("accept-post").is_some_and(|v| v.contains("application/json")), "{:?}", form.headers);

    // Counted as the gRPC calls they became, refusals included.
    let auth = format!("Authorization: Bearer {SUPERVISOR_TOKEN}\r\n");
    let raw = bounded("GET /metrics", raw_get(server.addr, "/metrics", &auth)).await;
    let metrics = String::from_utf8_lossy(&raw).into_owned();
    assert!(sample(&metrics, "credit_tender_grpc_requests_total{method=\"Assess\",code=\"UNAUTHENTICATED\"}") >= 1.0, "{metrics}");
    assert!(sample(&metrics, "credit_tender_grpc_requests_total{method=\"Assess\",code=\"INVALID_ARGUMENT\"}") >= 3.0, "{metrics}");

    // The supervisor may make 5 calls at once and 1 a second after (the
    // scrape took one): of thirty calls in a row, some are over (all would take 26 s).
    let calls: Vec<Value> = (0..30).map(|_| json_call("TenderService/ListTenders", Some(SUPERVISOR_TOKEN), json!({}))).collect();
    let supervisor = connect_calls(server.addr, &calls).await;
    assert!(supervisor[0].status == 200, "{}", String::from_utf8_lossy(&supervisor[0].body));
    let limited: Vec<&Answer> = supervisor.iter().filter(|a| a.status != 200).collect();
    assert!(!limited.is_empty(), "thirty calls in a row, none over a rate of 1/s with a burst of 5");
    for a in limited {
        let (message, _) = a.error(429, "resource_exhausted");
        assert!(message.contains("'supervisor' is over its 1 requests/s"), "{message}");
        assert!(a.headers.get("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "{:?}", a.headers);
    }
}
