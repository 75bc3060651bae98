//! The server's own surface: health, reflection, start-up refusals, the demo.

use crate::helpers::*;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_services() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "credit_tender.v1.CreditDataService"] {
        let r = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut stream = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!("{response:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["credit_tender.v1.CreditDataService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    // Health reports every service reflection describes, LogService and
    // SupervisionService included: a service added without health fails here.
    let services: Vec<&String> = names.iter().filter(|n| n.starts_with("credit_tender.")).collect();
    assert!(services.len() >= 6, "{names:?}");
    for service in services {
        let r = health.check(HealthCheckRequest { service: service.clone() }).await;
        assert_eq!(r.map(|r| r.into_inner().status()).ok(), Some(ServingStatus::Serving), "health of {service}");
    }

    // Older clients use v1alpha.
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaMsg;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = Alpha::new(channel);
    let request = AlphaMsg {
        host: String::new(),
        message_request: Some(AlphaRequest::FileContainingSymbol("credit_tender.v1.CreditDataService".into())),
    };
    let mut stream = alpha.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().unwrap().message_response.is_some());
    server.stop().await;
}

#[tokio::test]
async fn non_loopback_listen_is_refused_with_the_reason() {
    let db = sqlite_db();
    let out = cli(&["serve", "--db", &db.url, "--keys", "unused.toml", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(err.contains("refusing to listen on 0.0.0.0:0") && err.contains("--insecure-allow-remote"), "{err}");
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let mut client = server.credit_data().await.max_encoding_message_size(64 * 1024 * 1024);
    let big = credit_tender::proto::v1::PutRecordsRequest { records: vec![], source: "x".repeat(17 * 1024 * 1024) };
    let status = client.put_records(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn demo_serves_the_shipped_data() {
    use credit_tender::proto::v1::{GetProfileRequest, credit_data_service_client::CreditDataServiceClient};
    let demo = CliServer::spawn(&["demo"]).await;
    let mut client = CreditDataServiceClient::new(demo.channel.clone());
    // The allow-listed pilot firm is in the demo data.
    let p =
        client.get_profile(GetProfileRequest { credit_code: PILOT.into(), as_of: None, data_version: None }).await.unwrap().into_inner();
    assert_eq!(p.data_version, 2);
    assert_eq!(p.records.len(), 2, "{p:?}");
    assert!(!p.warnings.is_empty());
}

/// A stopped server closes its port: nothing keeps accepting (and holding
/// the server's state) after `run` has returned.
#[tokio::test]
async fn a_stopped_server_closes_its_port() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let addr = server.addr;
    bounded("connect", tokio::net::TcpStream::connect(addr)).await.expect("the running server accepts");
    server.stop().await;
    let refused = bounded("connect", tokio::net::TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "the port still accepts connections after the server stopped");
}

#[test]
fn a_pool_of_no_connections_is_refused_by_name() {
    let out = cli(&["serve", "--keys", "keys.toml", "--db-connections", "0"]);
    assert_eq!(out.status.code(), Some(64), "a usage error, as the exit table says: {}", stderr(&out));
    assert!(stderr(&out).contains("'--db-connections <N>': 0 is not in 1..=1000"), "{}", stderr(&out));
}
