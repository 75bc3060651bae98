//! Access over real TLS on 127.0.0.1: every role against every RPC and page,
//! token and certificate identities, scope refusals that store nothing, the
//! committee's single-use link, and per-principal limits. The clients trust
//! the test CA, as a platform would.

use crate::helpers::*;
use credit_tender::access::principals::{Principals, SharedPrincipals};
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use credit_tender::tls::{SharedTls, TlsFiles};
use pb::assessment_service_client::AssessmentServiceClient;
use pb::credit_data_service_client::CreditDataServiceClient;
use pb::tender_service_client::TenderServiceClient;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request, Status};

pub(crate) const HOST: &str = "ct.test";

/// Test certificates from `credit-tender cert`: a CA, the server's, and a
/// client certificate for the provider.
pub(crate) struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub(crate) fn make() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let out = cli(&["cert", "--host", HOST, "--client", "sx-provider", "--out", dir.path().to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        Certs { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub(crate) fn files(&self) -> TlsFiles {
        TlsFiles { cert: self.path("server.pem"), key: self.path("server.key"), client_ca: Some(self.path("ca.pem")) }
    }
}

/// Tokens of the test principals, by name.
pub(crate) const PLATFORM_TOKEN: &str = "ct_platform-gd-token";
pub(crate) const OTHER_PLATFORM_TOKEN: &str = "ct_platform-sx-token";
pub(crate) const SUPERVISOR_TOKEN: &str = "ct_supervisor-token";
pub(crate) const PROVIDER_TOKEN: &str = "ct_provider-gd-token";

fn sha(t: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()))
}

/// The test principals; the rate test gives the supervisor a small limit.
pub(crate) const SMALL_SUPERVISOR_LIMITS: &str = "[limits.supervisor]\nrequests_per_second = 1\nburst = 5\nconcurrent = 2\n";

pub(crate) fn principals_toml() -> String {
    format!(
        r#"
[[principal]]
name = "gd-platform"
role = "platform"
regions = ["440000"]
token_sha256 = "{}"

[[principal]]
name = "sx-platform"
role = "platform"
regions = ["140000"]
token_sha256 = "{}"

[[principal]]
name = "supervisor"
role = "supervisor"
token_sha256 = "{}"

[[principal]]
name = "gd-provider"
role = "provider"
issuers = ["440000"]
authorities = ["测试省交通运输厅"]
token_sha256 = "{}"

[[principal]]
name = "sx-provider"
role = "provider"
issuers = ["140000"]
certificate_subject = "CN=sx-provider"
"#,
        sha(PLATFORM_TOKEN),
        sha(OTHER_PLATFORM_TOKEN),
        sha(SUPERVISOR_TOKEN),
        sha(PROVIDER_TOKEN)
    )
}

/// A server over TLS with the test principals.
pub(crate) async fn spawn_secure(db: &TestDb, certs: &Certs) -> TestServer {
    spawn_secure_with(db, certs, &principals_toml()).await
}

pub(crate) async fn spawn_secure_with(db: &TestDb, certs: &Certs, principals: &str) -> TestServer {
    spawn_secure_at(db, certs, principals, credit_tender::clock::Clock::system()).await
}

/// As [`spawn_secure_with`], the server reading the time from `clock` (a
/// test moves a manual clock past an expiry instead of sleeping).
pub(crate) async fn spawn_secure_at(db: &TestDb, certs: &Certs, principals: &str, clock: credit_tender::clock::Clock) -> TestServer {
    let principals = Principals::from_toml(principals).unwrap();
    let server = credit_tender::server::ServerOptions {
        principals: Some(Arc::new(SharedPrincipals::fixed(principals))),
        tls: Some(SharedTls::load(certs.files()).unwrap()),
        ..Default::default()
    };
    let cache = credit_tender::cache::CacheConfig { clock, ..Default::default() };
    spawn_app(open(db).await, AppOptions { server, cache }).await
}

/// A channel that trusts the test CA, optionally presenting a client certificate.
pub(crate) async fn tls_channel(addr: std::net::SocketAddr, certs: &Certs, client: Option<&str>) -> Channel {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certs.read("ca.pem"))).domain_name(HOST);
    if let Some(cn) = client {
        tls = tls.identity(Identity::from_pem(certs.read(&format!("client-{cn}.pem")), certs.read(&format!("client-{cn}.key"))));
    }
    let endpoint =
        Channel::from_shared(format!("https://{addr}")).unwrap().connect_timeout(CALL_BOUND).timeout(CALL_BOUND).tls_config(tls).unwrap();
    bounded("a TLS channel's handshake", endpoint.connect()).await.unwrap()
}

/// How a test caller proves who it is over gRPC: a bearer token, or a
/// committee member's session cookie, or nothing.
#[derive(Clone)]
pub(crate) enum Creds {
    Token(Bearer),
    Cookie(tonic::metadata::MetadataValue<tonic::metadata::Ascii>),
}

impl tonic::service::Interceptor for Creds {
    fn call(&mut self, r: Request<()>) -> Result<Request<()>, Status> {
        match self {
            Creds::Token(b) => b.call(r),
            Creds::Cookie(c) => {
                let mut r = r;
                r.metadata_mut().insert("cookie", c.clone());
                Ok(r)
            }
        }
    }
}

pub(crate) struct Clients {
    pub data: CreditDataServiceClient<InterceptedService<Channel, Creds>>,
    pub tenders: TenderServiceClient<InterceptedService<Channel, Creds>>,
    pub assess: AssessmentServiceClient<InterceptedService<Channel, Creds>>,
}

fn clients_as(channel: &Channel, c: Creds) -> Clients {
    Clients {
        data: CreditDataServiceClient::with_interceptor(channel.clone(), c.clone()),
        tenders: TenderServiceClient::with_interceptor(channel.clone(), c.clone()),
        assess: AssessmentServiceClient::with_interceptor(channel.clone(), c),
    }
}

pub(crate) fn clients(channel: &Channel, token: Option<&str>) -> Clients {
    clients_as(channel, Creds::Token(Bearer::new(token).unwrap()))
}

fn code_of<T>(r: Result<tonic::Response<T>, Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

pub(crate) fn terms(region: &str) -> pb::TenderTerms {
    crate::assessment::terms(region, "2026-12-15")
}

fn bidder(c: &str) -> Option<pb::Bidder> {
    Some(pb::Bidder { credit_codes: vec![c.to_owned()] })
}

/// The callers of the role matrices: a principal of every role, one of them
/// outside the tender's region, and callers with no or an unknown identity.
const CALLERS: [&str; 7] = ["anonymous", "committee", "provider", "other platform", "supervisor", "unknown token", "platform"];

/// The role each named caller has, if any: every role must have a caller.
fn role_of(caller: &str) -> Option<credit_tender::access::Role> {
    use credit_tender::access::Role;
    match caller {
        "committee" => Some(Role::Committee),
        "provider" => Some(Role::Provider),
        "platform" | "other platform" => Some(Role::Platform),
        "supervisor" => Some(Role::Supervisor),
        _ => None,
    }
}

/// What every RPC answers each caller (in [`CALLERS`] order), by path. The
/// test fails for an RPC of the descriptors without a row here, and for a
/// row without an RPC.
///
/// The log's rows are today's behaviour: checkpoints and proofs for every
/// caller, anonymous included (OK), but not for a token nobody holds
/// (UNAUTHENTICATED); entries for supervisors alone (anonymous and unknown
/// tokens UNAUTHENTICATED, every other role PERMISSION_DENIED).
fn expected_rpc_codes() -> std::collections::BTreeMap<&'static str, [Code; 7]> {
    use Code::*;
    const UN: Code = Unauthenticated;
    const PD: Code = PermissionDenied;
    const NF: Code = NotFound;
    [
        //                                                          anonymous committee provider other platform supervisor unknown platform
        ("/credit_tender.v1.CreditDataService/PutRecords", [UN, PD, Ok, PD, PD, UN, PD]),
        ("/credit_tender.v1.CreditDataService/GetProfile", [UN, PD, Ok, PD, Ok, UN, PD]),
        ("/credit_tender.v1.KeyService/ListKeys", [Ok, Ok, Ok, Ok, Ok, Ok, Ok]),
        ("/credit_tender.v1.TenderService/RegisterTender", [UN, PD, PD, PD, PD, UN, Ok]),
        ("/credit_tender.v1.TenderService/AmendTender", [UN, PD, PD, NF, PD, UN, Ok]),
        ("/credit_tender.v1.TenderService/GetTender", [UN, PD, PD, NF, Ok, UN, Ok]),
        ("/credit_tender.v1.TenderService/ListTenders", [UN, PD, PD, Ok, Ok, UN, Ok]),
        ("/credit_tender.v1.TenderService/RegisterBid", [UN, PD, PD, NF, PD, UN, Ok]),
        ("/credit_tender.v1.TenderService/GrantCommitteeAccess", [UN, PD, PD, NF, PD, UN, Ok]),
        ("/credit_tender.v1.TenderService/RevokeCommitteeAccess", [UN, PD, PD, NF, PD, UN, Ok]),
        ("/credit_tender.v1.AssessmentService/Assess", [UN, PD, PD, NF, Ok, UN, Ok]),
        ("/credit_tender.v1.AssessmentService/AssessTender", [UN, Ok, PD, NF, Ok, UN, Ok]),
        ("/credit_tender.v1.AssessmentService/CheckDeposit", [UN, PD, PD, NF, Ok, UN, Ok]),
        // A committee may read its tender's table, not watch it.
        ("/credit_tender.v1.AssessmentService/WatchTender", [UN, PD, PD, NF, Ok, UN, Ok]),
        ("/credit_tender.v1.LogService/GetCheckpoint", [Ok, Ok, Ok, Ok, Ok, UN, Ok]),
        ("/credit_tender.v1.LogService/GetInclusionProof", [Ok, Ok, Ok, Ok, Ok, UN, Ok]),
        ("/credit_tender.v1.LogService/GetConsistencyProof", [Ok, Ok, Ok, Ok, Ok, UN, Ok]),
        ("/credit_tender.v1.LogService/GetEntries", [UN, PD, PD, PD, Ok, UN, PD]),
        ("/credit_tender.v1.SupervisionService/ClassifyFirm", [UN, PD, PD, PD, Ok, UN, PD]),
        ("/credit_tender.v1.SupervisionService/DrawInspection", [UN, PD, PD, PD, Ok, UN, PD]),
        // Outcomes for Guangdong ("44"): the Shanxi platform is refused, the Guangdong one served.
        ("/credit_tender.v1.SupervisionService/GetOutcomes", [UN, PD, PD, PD, Ok, UN, Ok]),
    ]
    .into_iter()
    .collect()
}

/// What one caller sends in the matrix.
struct Call<'a> {
    /// The bidder's code (seeded with a grade by the provider).
    code: &'a str,
    /// Which caller this is (row index): keeps written ids apart.
    tag: usize,
    /// A grant every caller tries to revoke.
    grant_id: &'a str,
}

/// The request a caller sends to `path`, encoded: valid and within T-GD,
/// so that only who is calling decides the answer.
fn request_for(path: &str, c: &Call<'_>) -> Vec<u8> {
    use prost::Message;
    let bidder = || bidder(c.code);
    let method = path.rsplit('/').next().unwrap_or(path);
    match method {
        "PutRecords" => {
            let eval = evaluation_json(&format!("e-{}", c.tag), c.code, json!({"issuer": "440000", "year": 2010 + c.tag}));
            pb::PutRecordsRequest { records: vec![to_proto(eval)], source: "ignored".into() }.encode_to_vec()
        }
        "GetProfile" => pb::GetProfileRequest { credit_code: c.code.into(), as_of: None, data_version: None }.encode_to_vec(),
        "ListKeys" => pb::ListKeysRequest {}.encode_to_vec(),
        "RegisterTender" => pb::RegisterTenderRequest {
            tender_id: format!("T-NEW-{}", c.tag),
            terms: Some(terms("440300")),
            policy_id: "national-template".into(),
        }
        .encode_to_vec(),
        "AmendTender" => pb::AmendTenderRequest { tender_id: "T-GD".into(), terms: Some(terms("440300")) }.encode_to_vec(),
        "GetTender" => pb::GetTenderRequest { tender_id: "T-GD".into(), version: 0 }.encode_to_vec(),
        "ListTenders" => pb::ListTendersRequest {}.encode_to_vec(),
        "RegisterBid" => pb::RegisterBidRequest { tender_id: "T-GD".into(), bidder: bidder() }.encode_to_vec(),
        "GrantCommitteeAccess" => {
            let expires = chrono::Utc::now() + chrono::Duration::hours(1);
            pb::GrantCommitteeAccessRequest {
                tender_id: "T-GD".into(),
                member_ref: "expert-7".into(),
                expires_at: Some(pbjson_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
            }
            .encode_to_vec()
        }
        "RevokeCommitteeAccess" => pb::RevokeCommitteeAccessRequest { grant_id: c.grant_id.into() }.encode_to_vec(),
        "Assess" => pb::AssessRequest { tender_id: "T-GD".into(), bidder: bidder(), contract_price_fen: None }.encode_to_vec(),
        "AssessTender" => pb::AssessTenderRequest { tender_id: "T-GD".into(), ..Default::default() }.encode_to_vec(),
        "WatchTender" => pb::WatchTenderRequest { tender_id: "T-GD".into(), after: None }.encode_to_vec(),
        "CheckDeposit" => pb::CheckDepositRequest {
            tender_id: "T-GD".into(),
            bidder: bidder(),
            offered_fen: 0,
            form: String::new(),
            contract_price_fen: None,
        }
        .encode_to_vec(),
        // The seed leaves two leaves and a checkpoint covering them.
        "GetCheckpoint" => pb::GetCheckpointRequest { tree_size: None }.encode_to_vec(),
        "GetInclusionProof" => {
            pb::GetInclusionProofRequest { leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(0)), tree_size: 1 }.encode_to_vec()
        }
        "GetConsistencyProof" => pb::GetConsistencyProofRequest { old_size: 1, new_size: 2 }.encode_to_vec(),
        "GetEntries" => pb::GetEntriesRequest { start: 0, end: 1 }.encode_to_vec(),
        "ClassifyFirm" => pb::ClassifyFirmRequest {
            credit_code: c.code.into(),
            domain: "highway_construction".into(),
            region: "440300".into(),
            date: "2026-12-15".into(),
            policy_id: String::new(),
        }
        .encode_to_vec(),
        "DrawInspection" => pb::DrawInspectionRequest {
            region: "440000".into(),
            domain: "highway_construction".into(),
            date: "2026-12-15".into(),
            policy_id: String::new(),
            ..Default::default()
        }
        .encode_to_vec(),
        "GetOutcomes" => {
            pb::GetOutcomesRequest { region_prefix: "44".into(), domain: String::new(), from: "2026-01-01".into(), to: "2026-12-31".into() }
                .encode_to_vec()
        }
        _ => panic!("the matrix has no request for {path}: add one here, and its row in expected_rpc_codes"),
    }
}

/// How a matrix call is made: gRPC, or the Connect protocol's binary form
/// (the same message, a POST of `application/proto`).
#[derive(Clone, Copy, Debug)]
enum Door {
    Grpc,
    Connect,
}

/// Calls `path` with `body` as `creds` through `door`: the answer's code.
async fn call_through(door: Door, channel: &Channel, creds: &Creds, path: &str, body: Vec<u8>) -> Code {
    if path.ends_with("/WatchTender") {
        return watch_as(door, channel, creds, path, body).await;
    }
    match door {
        Door::Grpc => call_as(channel, creds, path, body).await,
        Door::Connect => connect_call_as(channel, creds, path, body).await,
    }
}

/// A Connect unary call in binary over the channel's HTTP/2 connection:
/// OK for a 200 with `application/proto`, else the code its error body names.
async fn connect_call_as(channel: &Channel, creds: &Creds, path: &str, body: Vec<u8>) -> Code {
    use http_body_util::BodyExt;
    use tonic::codegen::http;
    use tonic::service::Interceptor;
    use tower::ServiceExt;
    let headers = creds.clone().call(Request::new(())).unwrap().metadata().clone().into_headers();
    let mut req = http::Request::post(path)
        .header("content-type", "application/proto")
        .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(body))))
        .unwrap();
    req.headers_mut().extend(headers);
    let res = channel.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    if status == 200 {
        assert_eq!(content_type.as_deref(), Some("application/proto"), "{path}");
        return Code::Ok;
    }
    let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {status}: not a Connect error ({e})"));
    let name = error["code"].as_str().unwrap_or_else(|| panic!("{path}: {error}"));
    match name {
        "invalid_argument" => Code::InvalidArgument,
        "not_found" => Code::NotFound,
        "already_exists" => Code::AlreadyExists,
        "permission_denied" => Code::PermissionDenied,
        "resource_exhausted" => Code::ResourceExhausted,
        "failed_precondition" => Code::FailedPrecondition,
        "unauthenticated" => Code::Unauthenticated,
        "unavailable" => Code::Unavailable,
        other => panic!("{path}: an unexpected code {other}: {error}"),
    }
}

/// Opens the server stream `path` with `body` as `creds`: OK once its
/// first message came (a watch runs until its tender's deadline), else the
/// code it ended with. Connect's streaming form in binary for that door.
async fn watch_as(door: Door, channel: &Channel, creds: &Creds, path: &str, body: Vec<u8>) -> Code {
    use http_body_util::BodyExt;
    use tonic::codegen::http;
    use tonic::service::Interceptor;
    use tower::ServiceExt;
    if let Door::Grpc = door {
        let mut grpc = tonic::client::Grpc::new(InterceptedService::new(channel.clone(), creds.clone()));
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
        return match grpc.server_streaming(Request::new(body), path, crate::hardening::raw::Raw).await {
            Ok(stream) => match bounded("a watch's first message", stream.into_inner().message()).await {
                Ok(Some(_)) => Code::Ok,
                Ok(None) => Code::Unknown,
                Err(s) => s.code(),
            },
            Err(s) => s.code(),
        };
    }
    let headers = creds.clone().call(Request::new(())).unwrap().metadata().clone().into_headers();
    let mut framed = vec![0];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    let mut req = http::Request::post(path)
        .header("content-type", "application/connect+proto")
        .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(framed))))
        .unwrap();
    req.headers_mut().extend(headers);
    let res = channel.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200, "{path}: Connect streams answer 200");
    let mut body = res.into_body();
    let mut got = Vec::new();
    // The first envelope: a message (OK) or the end of the stream (its error).
    while got.len() < 5 || got.len() < 5 + u32::from_be_bytes([got[1], got[2], got[3], got[4]]) as usize {
        let frame = bounded("a Connect stream's first envelope", body.frame()).await.expect("an envelope").unwrap();
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    if got[0] == 0 {
        return Code::Ok;
    }
    let end: serde_json::Value = serde_json::from_slice(&got[5..]).unwrap();
    match end["error"]["code"].as_str() {
        Some("not_found") => Code::NotFound,
        Some("permission_denied") => Code::PermissionDenied,
        Some("unauthenticated") => Code::Unauthenticated,
        other => panic!("{path}: an unexpected end {other:?}: {end}"),
    }
}

/// Calls `path` with `body` as `creds`: the answer's code.
async fn call_as(channel: &Channel, creds: &Creds, path: &str, body: Vec<u8>) -> Code {
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(channel.clone(), creds.clone()));
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    match grpc.unary(Request::new(body), path, crate::hardening::raw::Raw).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// The platform registers T-GD (Shenzhen) with one bid; the provider writes
/// the bidder's grade.
pub(crate) async fn seed(addr: std::net::SocketAddr, certs: &Certs, code: &str) {
    let ch = tls_channel(addr, certs, None).await;
    let mut p = clients(&ch, Some(PLATFORM_TOKEN));
    let req = pb::RegisterTenderRequest { tender_id: "T-GD".into(), terms: Some(terms("440300")), policy_id: "national-template".into() };
    p.tenders.register_tender(req).await.unwrap();
    p.tenders.register_bid(pb::RegisterBidRequest { tender_id: "T-GD".into(), bidder: bidder(code) }).await.unwrap();
    let mut prov = clients(&ch, Some(PROVIDER_TOKEN));
    let put = pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("seed", code, json!({})))], source: String::new() };
    prov.data.put_records(put).await.unwrap();
}

/// Every caller against every RPC the descriptors declare, over TLS, through
/// gRPC and through the Connect protocol: the code each gets is the one its
/// row says, whichever door it came in by.
#[tokio::test]
async fn every_role_against_every_rpc_over_tls() {
    let expected = expected_rpc_codes();
    let rpcs = rpc_paths();
    let unlisted: Vec<&String> = rpcs.iter().filter(|p| !expected.contains_key(p.as_str())).collect();
    assert!(unlisted.is_empty(), "RPCs with no expected row in the role matrix: {unlisted:?}");
    let gone: Vec<&&str> = expected.keys().filter(|k| !rpcs.iter().any(|p| p == *k)).collect();
    assert!(gone.is_empty(), "rows for RPCs the descriptors do not declare: {gone:?}");
    for role in credit_tender::access::Role::ALL {
        assert!(CALLERS.iter().any(|c| role_of(c) == Some(*role)), "no caller of role {role} in the matrix");
    }
    // Each door on a server of its own: the matrix writes.
    let mut runs = Vec::new();
    for door in [Door::Grpc, Door::Connect] {
        runs.extend(backends().await.into_iter().map(|db| (door, db)));
    }
    for (door, db) in runs {
        let certs = Certs::make();
        let server = spawn_secure_fast_log(&db, &certs).await;
        let code = crate::assessment::code(700);
        seed(server.addr, &certs, &code).await;
        let ch = tls_channel(server.addr, &certs, None).await;
        logged_twice(&server, &ch, &code).await;
        // A committee member's session works over gRPC too (the cookie as metadata).
        let (_, link) = grant(&ch, "T-GD", 3600).await;
        let (_, head, _) = https_get(server.addr, &certs, &link, &[]).await;
        let cookie: tonic::metadata::MetadataValue<_> = session_cookie(&head).parse().unwrap();
        // A grant each caller tries to revoke.
        let (revocable, _) = grant(&ch, "T-GD", 3600).await;
        let token = |t: Option<&str>| Creds::Token(Bearer::new(t).unwrap());
        for (tag, who) in CALLERS.iter().enumerate() {
            let creds = match *who {
                "anonymous" => token(None),
                "committee" => Creds::Cookie(cookie.clone()),
                "provider" => token(Some(PROVIDER_TOKEN)),
                "other platform" => token(Some(OTHER_PLATFORM_TOKEN)),
                "supervisor" => token(Some(SUPERVISOR_TOKEN)),
                "unknown token" => token(Some("ct_nobody")),
                "platform" => token(Some(PLATFORM_TOKEN)),
                other => panic!("no credentials for caller {other}"),
            };
            let call = Call { code: &code, tag, grant_id: &revocable };
            for rpc in &rpcs {
                let got = call_through(door, &ch, &creds, rpc, request_for(rpc, &call)).await;
                assert_eq!(got, expected[rpc.as_str()][tag], "[{} {door:?}] {who} calling {rpc}", db.backend);
            }
        }
        // The platform of another province does not see T-GD in its list.
        let mut other = clients(&ch, Some(OTHER_PLATFORM_TOKEN));
        let list = other.tenders.list_tenders(pb::ListTendersRequest {}).await.unwrap().into_inner();
        assert!(list.tenders.iter().all(|t| t.tender_id != "T-GD"), "{list:?}");
        // Health and reflection need no identity.
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    }
}

/// A server over TLS with the test principals, publishing checkpoints every 50 ms.
async fn spawn_secure_fast_log(db: &TestDb, certs: &Certs) -> TestServer {
    let principals = Principals::from_toml(&principals_toml()).unwrap();
    let server = credit_tender::server::ServerOptions {
        principals: Some(Arc::new(SharedPrincipals::fixed(principals))),
        tls: Some(SharedTls::load(certs.files()).unwrap()),
        log: Some(credit_tender::server::LogOptions { checkpoint_interval: std::time::Duration::from_millis(50), ..Default::default() }),
        ..Default::default()
    };
    spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await
}

/// The platform asks for two statements of T-GD (an assessment, a deposit
/// check: at least two leaves), then waits (bounded) for a checkpoint
/// covering two leaves, so that every log call of the matrices has a tree.
async fn logged_twice(server: &TestServer, ch: &Channel, code: &str) {
    let mut p = clients(ch, Some(PLATFORM_TOKEN));
    p.assess.assess(pb::AssessRequest { tender_id: "T-GD".into(), bidder: bidder(code), contract_price_fen: None }).await.unwrap();
    let check = pb::CheckDepositRequest {
        tender_id: "T-GD".into(),
        bidder: bidder(code),
        offered_fen: 0,
        form: String::new(),
        contract_price_fen: None,
    };
    p.assess.check_deposit(check).await.unwrap();
    let mut published = server.cache.metrics().checkpoints();
    tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n >= 2))
        .await
        .expect("no checkpoint covers two leaves after 10 s")
        .unwrap();
}

#[tokio::test]
async fn a_client_certificate_is_an_identity_and_a_provider_writes_only_within_its_scope() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure(&db, &certs).await;
        let ch = tls_channel(server.addr, &certs, Some("sx-provider")).await;
        let mut sx = clients(&ch, None);
        let code = crate::assessment::code(701);
        let ours = evaluation_json("sx-1", &code, json!({"issuer": "140000"}));
        let put = |r: serde_json::Value| pb::PutRecordsRequest { records: vec![to_proto(r)], source: "forged-source".into() };
        let v = sx.data.put_records(put(ours)).await.unwrap().into_inner().data_version;
        let before = snapshot(&db.url).await;
        for (label, record) in [
            ("national grade", evaluation_json("sx-2", &code, json!({"issuer": "national", "year": 2024}))),
            ("another province", evaluation_json("sx-3", &code, json!({"issuer": "440000", "year": 2023}))),
            ("another authority", list_entry_json("sx-4", &code, "transport_blacklist")),
        ] {
            let status = sx.data.put_records(put(record)).await.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "[{}] {label}: {status:?}", db.backend);
            assert!(status.message().contains("provider 'sx-provider' may not write"), "{}", status.message());
        }
        assert_eq!(snapshot(&db.url).await, before, "[{}] a refused write stores nothing", db.backend);
        // The source kept with the version is the principal, not what the caller wrote.
        assert!(before.iter().any(|row| row == &format!("v{v}:sx-provider")), "{before:?}");
        // Its own code it may read back; another provider's it may not.
        let p = sx.data.get_profile(pb::GetProfileRequest { credit_code: code.clone(), as_of: None, data_version: None }).await;
        assert!(p.is_ok(), "{p:?}");
        let other = crate::assessment::code(702);
        let mut gd = clients(&tls_channel(server.addr, &certs, None).await, Some(PROVIDER_TOKEN));
        gd.data.put_records(put(evaluation_json("gd-1", &other, json!({})))).await.unwrap();
        let status = sx.data.get_profile(pb::GetProfileRequest { credit_code: other, as_of: None, data_version: None }).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
}

/// A supervisor limited to 1 request/s (burst 5) is refused once it is
/// past its burst, and every refusal it sees is one the limiter counted
/// (`credit_tender_access_denials_total{reason="rate_limited"}`), while a
/// platform calling at the same time is never refused. Nothing here depends
/// on how fast the machine is: the bucket starts full, so the first five
/// calls pass; calls in a row soon outrun 1/s, so a refusal comes (within a
/// bound of 1,000 calls).
#[tokio::test]
async fn one_noisy_principal_is_limited_and_the_others_are_not() {
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure_with(&db, &certs, &format!("{SMALL_SUPERVISOR_LIMITS}{}", principals_toml())).await;
    let code = crate::assessment::code(703);
    seed(server.addr, &certs, &code).await;
    let ch = tls_channel(server.addr, &certs, None).await;
    let noisy = clients(&ch, Some(SUPERVISOR_TOKEN));
    let calm = clients(&ch, Some(PLATFORM_TOKEN));
    let get = |c: &Clients| {
        let mut t = c.tenders.clone();
        async move { t.get_tender(pb::GetTenderRequest { tender_id: "T-GD".into(), version: 0 }).await }
    };
    let limited = "credit_tender_access_denials_total{reason=\"rate_limited\"}";
    let counted = || crate::cache::sample(&server.cache.metrics().render(), limited);
    assert_eq!(counted(), 0.0);

    // Calls in a row, the platform's between the supervisor's, until the limiter refuses one.
    let mut passed = 0;
    let mut refusal = None;
    for _ in 0..1000 {
        match get(&noisy).await {
            Ok(_) => passed += 1,
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
        assert_eq!(code_of(get(&calm).await), Code::Ok, "the platform was refused while the supervisor was limited");
    }
    let status = refusal.expect("1,000 calls in a row never met the supervisor's 1/s limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("'supervisor' is over its 1 requests/s"), "{}", status.message());
    let wait = rate_pushback_ms(&status);
    assert!(status.message().contains(&format!("retry after {wait} ms")), "the message and the header agree: {}", status.message());
    assert!(passed >= 5, "only {passed} calls passed before the first refusal: the burst of 5 was not honoured");
    assert_eq!(counted(), 1.0, "the refusal the supervisor saw is the one the limiter counted");

    // Forty at once, and forty of the platform's meanwhile: every refusal
    // is the supervisor's and counted; the platform is served every time.
    let noisy_calls: Vec<_> = (0..40).map(|_| tokio::spawn(get(&noisy))).collect();
    let mut calm_codes = Vec::new();
    for _ in 0..40 {
        calm_codes.push(code_of(get(&calm).await));
    }
    let mut refused = 0;
    for call in noisy_calls {
        match call.await.unwrap() {
            Ok(_) => {}
            Err(s) if s.code() == Code::ResourceExhausted && s.message().contains("requests in flight") => {
                assert_eq!(pushback_ms(&s), 50, "the in-flight limit's hint: {s:?}");
                refused += 1;
            }
            Err(s) if s.code() == Code::ResourceExhausted => {
                rate_pushback_ms(&s);
                refused += 1;
            }
            Err(s) => panic!("the supervisor was answered {s:?}"),
        }
    }
    assert!(calm_codes.iter().all(|c| *c == Code::Ok), "another principal is not limited: {calm_codes:?}");
    assert_eq!(counted(), 1.0 + f64::from(refused), "every refusal seen is one the limiter counted, and only those");
}

/// A refusal's `grpc-retry-pushback-ms`, as a number.
fn pushback_ms(status: &tonic::Status) -> u64 {
    let v = status.metadata().get("grpc-retry-pushback-ms").unwrap_or_else(|| panic!("no grpc-retry-pushback-ms: {status:?}"));
    v.to_str().unwrap().parse().unwrap_or_else(|_| panic!("grpc-retry-pushback-ms {v:?} is not a number of milliseconds"))
}

/// The hint of a refusal by the supervisor's rate of 1 request/s
/// ([`SMALL_SUPERVISOR_LIMITS`]): the wait until its bucket holds a request
/// again, which a limiter refilling at that rate never puts past one
/// period, 1,000 ms (and never at 0: the gate rounds up to 1 ms). A limiter
/// refilling slower than configured (a period of 2 s, or a minute) tells a
/// caller that has just emptied its bucket to wait longer than that.
fn rate_pushback_ms(status: &tonic::Status) -> u64 {
    let wait = pushback_ms(status);
    assert!((1..=1_000).contains(&wait), "a 1/s limiter asks for a wait of {wait} ms, not within one period (1..=1000 ms): {status:?}");
    wait
}

/// GET over HTTPS/1.1 trusting the test CA: (status, headers, body).
pub(crate) async fn https_get(addr: std::net::SocketAddr, certs: &Certs, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(certs.path("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    // Connect, handshake, request and answer, all within the bound.
    let raw = bounded(format!("GET {path} over TLS"), async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = connector.connect(HOST.try_into().unwrap(), tcp).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{extra}\r\n").as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    })
    .await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").map(|(h, b)| (h.to_owned(), b.to_owned())).unwrap_or_default();
    (status, head, body)
}

use rustls_pki_types::pem::PemObject;

/// Grants committee access to `tender` as the platform; returns (grant id, link path).
pub(crate) async fn grant(ch: &Channel, tender: &str, seconds: i64) -> (String, String) {
    let mut p = clients(ch, Some(PLATFORM_TOKEN));
    let expires = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    let g = p
        .tenders
        .grant_committee_access(pb::GrantCommitteeAccessRequest {
            tender_id: tender.into(),
            member_ref: "expert-7".into(),
            expires_at: Some(pbjson_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    (g.grant_id, g.link_path)
}

pub(crate) fn session_cookie(head: &str) -> String {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(line.contains(attr), "cookie lacks {attr}: {line}");
    }
    line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_committee_link_works_once_shows_one_tender_and_ends_with_its_grant() {
    for db in backends().await {
        let certs = Certs::make();
        let clock = credit_tender::clock::Clock::manual();
        let server = spawn_secure_at(&db, &certs, &principals_toml(), clock.clone()).await;
        let code = crate::assessment::code(704);
        seed(server.addr, &certs, &code).await;
        let ch = tls_channel(server.addr, &certs, None).await;
        let mut p = clients(&ch, Some(PLATFORM_TOKEN));
        let other =
            pb::RegisterTenderRequest { tender_id: "T-GD-2".into(), terms: Some(terms("440100")), policy_id: "national-template".into() };
        p.tenders.register_tender(other).await.unwrap();

        let (grant_id, link) = grant(&ch, "T-GD", 3600).await;
        assert!(link.starts_with("/committee/enter/ct_"), "{link}");
        let (status, head, _) = https_get(server.addr, &certs, &link, &[]).await;
        assert_eq!(status, 303, "[{}] {head}", db.backend);
        assert!(head.contains("location: /tenders/T-GD") || head.contains("Location: /tenders/T-GD"), "{head}");
        assert!(head.to_ascii_lowercase().contains("referrer-policy: no-referrer"), "{head}");
        let cookie = session_cookie(&head);
        let (again, _, _) = https_get(server.addr, &certs, &link, &[]).await;
        assert_eq!(again, 401, "a link works once");

        let with = [("cookie", cookie.as_str())];
        let (s, head, body) = https_get(server.addr, &certs, "/", &with).await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("T-GD") && !body.contains("T-GD-2"), "only its own tender is listed: {body}");
        let csp = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-security-policy")).unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{head}");
        assert!(head.to_ascii_lowercase().contains("x-content-type-options: nosniff"));
        assert_eq!(https_get(server.addr, &certs, "/tenders/T-GD", &with).await.0, 200);
        assert_eq!(https_get(server.addr, &certs, "/api/tenders/T-GD/statements", &with).await.0, 200);
        assert_eq!(https_get(server.addr, &certs, "/tenders/T-GD-2", &with).await.0, 404, "other tenders are not found");
        assert_eq!(https_get(server.addr, &certs, "/tenders/NO-SUCH", &with).await.0, 404);
        assert_eq!(https_get(server.addr, &certs, "/metrics", &with).await.0, 403);
        assert_eq!(https_get(server.addr, &certs, "/tenders/T-GD", &[]).await.0, 401, "no cookie, no page");

        // Revoked: everything 401s.
        p.tenders.revoke_committee_access(pb::RevokeCommitteeAccessRequest { grant_id }).await.unwrap();
        for path in ["/", "/tenders/T-GD", "/api/tenders/T-GD/statements"] {
            assert_eq!(https_get(server.addr, &certs, path, &with).await.0, 401, "[{}] {path} after revocation", db.backend);
        }
        // Expired: likewise.
        let (_, link) = grant(&ch, "T-GD", 2).await;
        let (_, head, _) = https_get(server.addr, &certs, &link, &[]).await;
        let cookie = session_cookie(&head);
        assert_eq!(https_get(server.addr, &certs, "/tenders/T-GD", &[("cookie", cookie.as_str())]).await.0, 200);
        clock.advance(std::time::Duration::from_millis(2100)); // past the grant's expiry, on the server's clock
        assert_eq!(https_get(server.addr, &certs, "/tenders/T-GD", &[("cookie", cookie.as_str())]).await.0, 401);
        // Supervisors read metrics; grants and refusals are counted.
        let (s, _, metrics) = https_get(server.addr, &certs, "/metrics", &[("authorization", &format!("Bearer {SUPERVISOR_TOKEN}"))]).await;
        assert_eq!(s, 200);
        assert!(metrics.contains("credit_tender_access_denials_total{reason=\"unauthenticated\"}"), "{metrics}");
    }
}

#[tokio::test]
async fn bad_access_configuration_is_refused_with_the_reason() {
    let certs = Certs::make();
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let written = keys_file(dir.path());
    std::fs::rename(&written, &keys).unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--db", &db.url, "--keys", keys.to_str().unwrap(), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = cli(&args);
        (out.status.code(), stderr(&out))
    };
    let bad = |name: &str, content: String| {
        let p = file(dir.path(), name, content);
        p.to_str().unwrap().to_owned()
    };
    let good = principals_toml();
    for (label, content, want) in [
        ("malformed", good.replace("regions = [\"440000\"]", "regions = [\"440000\""), "line 6:"),
        ("unknown role", good.replacen("role = \"platform\"", "role = \"admin\"", 1), "line 2: role: unknown role 'admin'"),
        (
            "overlapping names",
            good.replacen("name = \"sx-platform\"", "name = \"gd-platform\"", 1),
            "name 'gd-platform' is used by an earlier principal",
        ),
        ("shared token", good.replacen(&sha(OTHER_PLATFORM_TOKEN), &sha(PLATFORM_TOKEN), 1), "has the same token as an earlier principal"),
        ("region", good.replacen("regions = [\"440000\"]", "regions = [\"4400\"]", 1), "regions: '4400' is not a region code"),
    ] {
        let path = bad(&format!("{label}.toml"), content);
        let (code, err) = serve(&["--principals", &path]);
        assert_eq!(code, Some(78), "{label}: {err}");
        assert!(err.contains(&path) && err.contains(want), "{label}: {err}");
    }
    // A key that does not match the certificate.
    let other = Certs::make();
    let (code, err) =
        serve(&["--tls-cert", certs.path("server.pem").to_str().unwrap(), "--tls-key", other.path("server.key").to_str().unwrap()]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("the key does not match the certificate"), "{err}");
    // An expired certificate, refused with its dates.
    let (cert, key) = expired_certificate();
    let cert = bad("expired.pem", cert);
    let key = bad("expired.key", key);
    let (code, err) = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("certificate is not valid now: valid from") && err.contains("2020"), "{err}");
    // Beyond loopback without TLS and principals: refused.
    let out = cli(&["serve", "--db", &db.url, "--keys", keys.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("without --tls-cert/--tls-key and --principals"), "{}", stderr(&out));
}

fn expired_certificate() -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![HOST.to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(1_577_836_800).unwrap(); // 2020-01-01
    params.not_after = time::OffsetDateTime::from_unix_timestamp(1_609_372_800).unwrap(); // 2020-12-31
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn sighup_rotates_tokens_and_certificates_without_dropping_established_connections() {
    let db = sqlite_db();
    let certs = Certs::make();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_file(dir.path());
    let principals = file(dir.path(), "principals.toml", principals_toml());
    // The server reads its certificate from files it does not own: copies.
    let cert = file(dir.path(), "server.pem", std::fs::read(certs.path("server.pem")).unwrap());
    let key = file(dir.path(), "server.key", std::fs::read(certs.path("server.key")).unwrap());
    let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let server = CliServer::spawn(&[
        "serve",
        "--db",
        &db.url,
        "--keys",
        &p(&keys),
        "--principals",
        &p(&principals),
        "--tls-cert",
        &p(&cert),
        "--tls-key",
        &p(&key),
        "--client-ca",
        &p(&certs.path("ca.pem")),
    ])
    .await;
    let established = tls_channel(server.addr, &certs, None).await;
    let list = |ch: &Channel, token: &str| {
        let mut c = clients(ch, Some(token));
        async move { code_of(c.tenders.list_tenders(pb::ListTendersRequest {}).await) }
    };
    assert_eq!(list(&established, PLATFORM_TOKEN).await, Code::Ok);

    // Rotate: the platform gets a new token, the server a certificate from a new CA.
    const NEW_TOKEN: &str = "ct_platform-gd-rotated";
    std::fs::write(&principals, principals_toml().replace(&sha(PLATFORM_TOKEN), &sha(NEW_TOKEN))).unwrap();
    let next = Certs::make();
    std::fs::copy(next.path("server.pem"), &cert).unwrap();
    std::fs::copy(next.path("server.key"), &key).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    server.log_line("principals reloaded").await;
    server.log_line("TLS certificates reloaded").await;

    // The established connection carries on, under the new principals.
    assert_eq!(list(&established, NEW_TOKEN).await, Code::Ok);
    assert_eq!(list(&established, PLATFORM_TOKEN).await, Code::Unauthenticated, "the old token is revoked");
    // New connections get the new certificate: trusted through the new CA only.
    let fresh = tls_channel(server.addr, &next, None).await;
    assert_eq!(list(&fresh, NEW_TOKEN).await, Code::Ok);
    let old_ca = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certs.read("ca.pem"))).domain_name(HOST);
    let old = Channel::from_shared(format!("https://{}", server.addr)).unwrap().connect_timeout(CALL_BOUND).tls_config(old_ca).unwrap();
    let refused = bounded("a TLS handshake", old.connect()).await;
    assert!(refused.is_err(), "the old certificate is no longer served");

    // Broken files leave what is in use: once the server has said each
    // reload failed, the rotated token and certificate still work, and
    // nothing the broken files name is accepted.
    const THIRD_TOKEN: &str = "ct_platform-gd-third";
    let third = Certs::make();
    /// What is broken, the principals file, the certificate and key (PEM), the line the server logs.
    type BrokenReload<'a> = (&'a str, String, Option<(String, String)>, &'a str);
    let cases: [BrokenReload; 4] = [
        (
            "a principal with an unknown role",
            principals_toml().replace(&sha(PLATFORM_TOKEN), &sha(THIRD_TOKEN)).replace("role = \"supervisor\"", "role = \"emperor\""),
            None,
            "principals reload failed",
        ),
        (
            "not TOML",
            format!("[[principal]]\nname = \"gd-platform\"\ntoken_sha256 = \"{}\"\nrole = ", sha(THIRD_TOKEN)),
            None,
            "principals reload failed",
        ),
        (
            "a key that does not match the certificate",
            String::new(),
            Some((third.read("server.pem"), next.read("server.key"))),
            "TLS reload failed",
        ),
        ("an expired certificate", String::new(), Some(expired_certificate()), "TLS reload failed"),
    ];
    for (label, principals_text, tls, event) in cases {
        let rotated = principals_toml().replace(&sha(PLATFORM_TOKEN), &sha(NEW_TOKEN));
        std::fs::write(&principals, if principals_text.is_empty() { rotated } else { principals_text }).unwrap();
        let (cert_pem, key_pem) = tls.unwrap_or_else(|| (next.read("server.pem"), next.read("server.key")));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let hup = std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
        assert!(hup.success());
        let failed = server.log_line(event).await;
        let named = if event.starts_with("TLS") { &cert } else { &principals };
        assert!(
            failed.contains(named.to_str().unwrap()) || failed.contains(key.to_str().unwrap()),
            "{label}: the failure names the file: {failed}"
        );
        assert_eq!(list(&established, NEW_TOKEN).await, Code::Ok, "{label}: the token in use stopped working");
        assert_eq!(list(&established, THIRD_TOKEN).await, Code::Unauthenticated, "{label}: a token of the broken file was accepted");
        assert_eq!(list(&established, PLATFORM_TOKEN).await, Code::Unauthenticated, "{label}: a revoked token came back");
        let mut supervisor = clients(&established, Some(SUPERVISOR_TOKEN));
        assert_eq!(
            code_of(supervisor.tenders.list_tenders(pb::ListTendersRequest {}).await),
            Code::Ok,
            "{label}: the supervisor lost its role"
        );
        let fresh = tls_channel(server.addr, &next, None).await;
        assert_eq!(list(&fresh, NEW_TOKEN).await, Code::Ok, "{label}: a new connection no longer gets the certificate in use");
        let third_ca = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(third.read("ca.pem"))).domain_name(HOST);
        let endpoint =
            Channel::from_shared(format!("https://{}", server.addr)).unwrap().connect_timeout(CALL_BOUND).tls_config(third_ca).unwrap();
        let refused = bounded("a TLS handshake", endpoint.connect()).await;
        assert!(refused.is_err(), "{label}: the broken files' certificate is served");
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, for Chromium's
/// --ignore-certificate-errors-spki-list (how the test trusts its own CA's leaf).
fn spki_hash(pem: &std::path::Path) -> String {
    use base64::Engine;
    let der = rustls_pki_types::CertificateDer::from_pem_file(pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

#[tokio::test]
async fn the_committee_verifies_every_row_over_tls_at_an_intranet_name() {
    let certs = Certs::make();
    let browser_args = [
        format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"),
        format!("--ignore-certificate-errors-spki-list={}", spki_hash(&certs.path("server.pem"))),
    ];
    let Some(browser) = crate::web::Browser::start_with(&browser_args).await else { return };
    let db = sqlite_db();
    let store = open(&db).await;
    let rules = credit_tender::rules::Rules::shipped();
    credit_tender::demo::load(&store, &rules).await.unwrap();
    let policies = credit_tender::service::PolicySet::load(store.clone(), None).await.unwrap();
    credit_tender::demo::register_tenders(&store, &policies).await.unwrap();
    drop(store);
    let server = spawn_secure(&db, &certs).await;
    let ch = tls_channel(server.addr, &certs, None).await;
    // Shanxi's tender: the Shanxi platform grants the member.
    let tender = "DEMO-SX-2026-001";
    let mut sx = clients(&ch, Some(OTHER_PLATFORM_TOKEN));
    let expires = chrono::Utc::now() + chrono::Duration::hours(2);
    let link = sx
        .tenders
        .grant_committee_access(pb::GrantCommitteeAccessRequest {
            tender_id: tender.into(),
            member_ref: "expert-1".into(),
            expires_at: Some(pbjson_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner()
        .link_path;
    let table =
        sx.assess.assess_tender(pb::AssessTenderRequest { tender_id: tender.into(), ..Default::default() }).await.unwrap().into_inner();

    browser.goto(&format!("https://{HOST}:{}{link}", server.addr.port())).await;
    browser.ready().await;
    assert_eq!(browser.eval("return window.isSecureContext").await, json!(true), "a secure context at an intranet name");
    let url = browser.eval("return location.pathname").await;
    assert_eq!(url, json!(format!("/tenders/{tender}")), "the link left the address bar");
    let rows = browser.rows().await;
    assert_eq!(rows.len(), table.bids.len(), "{rows:?}");
    for (seq, cells) in &rows {
        assert_eq!(cells[cells.len() - 2], "签名有效", "bid {seq} verified in the browser: {cells:?}");
    }
    // The committee member's browser checks the log too (proofs are for any caller).
    assert_eq!(browser.logged().await, rows.len() as u64, "every row 已入账 for the committee");
    // The list shows the member's one tender only.
    browser.goto(&format!("https://{HOST}:{}/", server.addr.port())).await;
    let listed = browser.eval("return [...document.querySelectorAll('tbody tr a')].map(a => a.innerText)").await;
    assert_eq!(listed, json!([tender]));
}

/// What every web route answers each caller (in [`CALLERS`] order): per
/// route of the router (`credit_tender::web::paths`), the requests made of
/// it and their statuses. The test fails for a route without a row, and for
/// a row without a route. `LINK` stands for a fresh committee link.
///
/// The log's rows are today's behaviour: checkpoints, proofs and hash tiles
/// for every caller, anonymous included (200), but not for a token nobody
/// holds (401); entry tiles for supervisors alone (anonymous and unknown
/// tokens 401, every other role 403). Each tile kind is asked for in both
/// forms, partial (`.p/W`) and full: the tree has two leaves, so a full tile
/// does not exist yet (404) for a caller allowed to read it, and access is
/// decided before that; the test checks that both forms are asked for.
fn expected_page_statuses() -> std::collections::BTreeMap<&'static str, Vec<(&'static str, [u16; 7])>> {
    [
        //                                                anonymous committee provider other platform supervisor unknown platform
        ("/", vec![("/", [401, 200, 200, 200, 200, 401, 200])]),
        ("/tenders/{id}", vec![("/tenders/T-GD", [401, 200, 404, 404, 200, 401, 200])]),
        ("/api/tenders/{id}/statements", vec![("/api/tenders/T-GD/statements", [401, 200, 404, 404, 200, 401, 200])]),
        // The OCDS export: whoever may read the tender's statements.
        ("/tenders/{id}/ocds.json", vec![("/tenders/T-GD/ocds.json", [401, 200, 404, 404, 200, 401, 200])]),
        ("/api/keys", vec![("/api/keys", [200; 7])]),
        ("/api/log/proof", vec![("/api/log/proof?index=0", [200, 200, 200, 200, 200, 401, 200])]),
        ("/log/checkpoint", vec![("/log/checkpoint", [200, 200, 200, 200, 200, 401, 200])]),
        (
            "/log/{*tile}",
            vec![
                ("/log/tile/0/000.p/1", [200, 200, 200, 200, 200, 401, 200]),
                ("/log/tile/0/000", [404, 404, 404, 404, 404, 401, 404]),
                ("/log/tile/entries/000.p/1", [401, 403, 403, 403, 200, 401, 403]),
                ("/log/tile/entries/000", [401, 403, 403, 403, 404, 401, 403]),
            ],
        ),
        ("/committee/enter/{link}", vec![("LINK", [303; 7])]),
        ("/assets/committee.js", vec![("/assets/committee.js", [200; 7])]),
        ("/assets/committee.css", vec![("/assets/committee.css", [200; 7])]),
        ("/assets/noble-ed25519.js", vec![("/assets/noble-ed25519.js", [200; 7])]),
        ("/assets/noble-hashes/{file}", vec![("/assets/noble-hashes/sha2.js", [200; 7]), ("/assets/noble-hashes/none.js", [404; 7])]),
        ("/metrics", vec![("/metrics", [401, 403, 403, 403, 200, 401, 403])]),
        // Guangdong's outcomes: the supervisor and the Guangdong platform only.
        ("/supervision", vec![("/supervision?region_prefix=44", [401, 403, 403, 403, 200, 401, 200])]),
        ("/supervision/outcomes.csv", vec![("/supervision/outcomes.csv?region_prefix=44", [401, 403, 403, 403, 200, 401, 200])]),
    ]
    .into_iter()
    .collect()
}

/// Every caller against every route of the web router, over TLS.
#[tokio::test]
async fn every_role_against_every_page_over_tls() {
    let expected = expected_page_statuses();
    let routes = credit_tender::web::paths();
    let unlisted: Vec<&&str> = routes.iter().filter(|p| !expected.contains_key(*p)).collect();
    assert!(unlisted.is_empty(), "routes with no expected row in the page matrix: {unlisted:?}");
    let gone: Vec<&&str> = expected.keys().filter(|k| !routes.contains(*k)).collect();
    assert!(gone.is_empty(), "rows for routes the router does not have: {gone:?}");
    // Each tile kind (hash tiles, entry bundles) in both forms (partial and
    // full): the access check is per path, and a rule that read only one
    // form would leave the other open.
    let tiles: Vec<&str> = expected["/log/{*tile}"].iter().map(|(p, _)| *p).collect();
    for kind in ["/log/tile/0/", "/log/tile/entries/"] {
        for partial in [true, false] {
            assert!(
                tiles.iter().any(|t| t.starts_with(kind) && t.contains(".p/") == partial),
                "the page matrix asks for no {} tile under {kind}: {tiles:?}",
                if partial { "partial" } else { "full" }
            );
        }
    }
    let db = sqlite_db();
    let certs = Certs::make();
    let server = spawn_secure_fast_log(&db, &certs).await;
    let code = crate::assessment::code(705);
    seed(server.addr, &certs, &code).await;
    let ch = tls_channel(server.addr, &certs, None).await;
    logged_twice(&server, &ch, &code).await;
    let (_, link) = grant(&ch, "T-GD", 3600).await;
    let (_, head, _) = https_get(server.addr, &certs, &link, &[]).await;
    let cookie = session_cookie(&head);
    let auth = |t: &str| format!("Bearer {t}");
    let (platform, other, supervisor, provider) =
        (auth(PLATFORM_TOKEN), auth(OTHER_PLATFORM_TOKEN), auth(SUPERVISOR_TOKEN), auth(PROVIDER_TOKEN));
    for (i, who) in CALLERS.iter().enumerate() {
        let header = match *who {
            "anonymous" => None,
            "committee" => Some(("cookie", cookie.as_str())),
            "provider" => Some(("authorization", provider.as_str())),
            "other platform" => Some(("authorization", other.as_str())),
            "supervisor" => Some(("authorization", supervisor.as_str())),
            "unknown token" => Some(("authorization", "Bearer ct_nobody")),
            "platform" => Some(("authorization", platform.as_str())),
            other => panic!("no credentials for caller {other}"),
        };
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        for (route, requests) in &expected {
            for (path, want) in requests {
                let path = if *path == "LINK" { grant(&ch, "T-GD", 3600).await.1 } else { (*path).to_owned() };
                let (status, head, body) = https_get(server.addr, &certs, &path, &headers).await;
                assert_eq!(status, want[i], "{who} on {path} (route {route}): {body}");
                // Every refusal reads Chinese first, with its machine code.
                if status >= 400 {
                    assert_chinese_first(&format!("{who} on {path}"), &body);
                    assert!(head.to_ascii_lowercase().contains(credit_tender::refusal::CODE_HEADER), "{who} on {path}: {head}");
                }
            }
        }
        // The list shows only what the caller may see.
        let (_, _, list) = https_get(server.addr, &certs, "/", &headers).await;
        let sees = list.contains("T-GD");
        assert_eq!(sees, matches!(*who, "committee" | "platform" | "supervisor"), "{who} listing: {list}");
    }
}

#[test]
fn token_create_prints_a_token_once_and_the_entry_with_its_digest() {
    let out = cli(&["token", "create", "--name", "gd-platform", "--role", "platform"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("ct_") && token.len() > 40, "{token}");
    let entry = stderr(&out);
    assert!(entry.contains(&format!("token_sha256 = \"{}\"", sha(&token))), "{entry}");
    assert!(!entry.contains(&token), "the token itself appears once, on stdout");
    assert_ne!(stdout(&cli(&["token", "create", "--name", "x", "--role", "platform"])), stdout(&out), "fresh each time");
    let bad = cli(&["token", "create", "--name", "x", "--role", "committee"]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(stderr(&bad).contains("--role: 'committee' is not one of provider, platform, supervisor"), "{}", stderr(&bad));
}
