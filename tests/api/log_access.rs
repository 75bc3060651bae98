//! The transparency log before its first leaf, and who may read what of it
//! (issue 19): the empty tree's checkpoint is published, checkpoints,
//! proofs and hash tiles are for any caller (anonymous too, as the README
//! says), entries only for supervisors, and an entries tile asked for by a
//! platform is 403 (forbidden to its role), not 404 (there is one).

use crate::helpers::*;
use credit_tender::access::principals::{Principals, SharedPrincipals};
use credit_tender::log as tlog;
use credit_tender::proto::v1 as pb;
use credit_tender::tlog::note::NoteKey;
use std::sync::Arc;
use tonic::Code;

const PLATFORM: &str = "ct_log-access-platform";
const SUPERVISOR: &str = "ct_log-access-supervisor";

fn sha(t: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()))
}

async fn spawn_with_principals(db: &TestDb) -> TestServer {
    let toml = format!(
        "[[principal]]\nname = \"p\"\nrole = \"platform\"\nregions = [\"440000\"]\ntoken_sha256 = \"{}\"\n\n\
         [[principal]]\nname = \"s\"\nrole = \"supervisor\"\ntoken_sha256 = \"{}\"\n",
        sha(PLATFORM),
        sha(SUPERVISOR)
    );
    let principals = Principals::from_toml(&toml).unwrap();
    let log = credit_tender::server::LogOptions { checkpoint_interval: std::time::Duration::from_millis(50), ..Default::default() };
    let server = credit_tender::server::ServerOptions {
        principals: Some(Arc::new(SharedPrincipals::fixed(principals))),
        log: Some(log),
        ..Default::default()
    };
    spawn_app(open(db).await, AppOptions { server, ..AppOptions::default() }).await
}

/// GET `path` with an optional bearer token: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let raw = bounded(format!("GET {path}"), raw_get(addr, path, &auth)).await;
    let status = std::str::from_utf8(&raw[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| raw[i + 4..].to_vec()).unwrap_or_default();
    (status, body)
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(t) = token {
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// Waits (on the server's metrics, up to 10 s) for a checkpoint covering `size` leaves.
async fn covered(server: &TestServer, size: u64) {
    let mut published = server.cache.metrics().checkpoints();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n >= size)).await;
    assert!(seen.is_ok_and(|r| r.is_ok()), "no checkpoint covers {size} leaves after 10 s");
}

async fn log_key(server: &TestServer, origin: &str) -> NoteKey {
    let keys =
        pb::key_service_client::KeyServiceClient::new(server.channel().await).list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    let k = keys.keys.iter().find(|k| k.role == "log" && k.status == "active").unwrap();
    NoteKey { name: origin.to_owned(), public_key: k.public_key.to_vec() }
}

#[tokio::test]
async fn an_empty_log_publishes_the_size_zero_checkpoint_to_any_caller() {
    for db in backends().await {
        let server = spawn_with_principals(&db).await;
        let mut log = pb::log_service_client::LogServiceClient::new(server.channel().await);
        // Anonymous, on a log with no leaf: the empty tree, signed by the log key.
        let c = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner();
        assert_eq!(c.tree_size, 0, "[{}]", db.backend);
        let empty = ring::digest::digest(&ring::digest::SHA256, b"");
        assert_eq!(&c.root_hash[..], empty.as_ref(), "RFC 6962: the empty tree's hash is SHA-256 of nothing");
        let origin = tlog::checkpoint_origin(&c.note).unwrap().to_owned();
        let verified = tlog::verify_checkpoint(&c.note, &log_key(&server, &origin).await).unwrap();
        assert_eq!((verified.size, verified.root.0.to_vec()), (0, empty.as_ref().to_vec()));
        let (status, body) = get(server.addr, "/log/checkpoint", None).await;
        assert_eq!((status, String::from_utf8(body).unwrap()), (200, c.note.clone()), "[{}] the same note over HTTP", db.backend);
        // The publisher keeps it before any other: once it has published the
        // first leaf's checkpoint (awaited on its metrics), the empty one is stored.
        server.store.log_append(&[b"first".to_vec()]).await.unwrap();
        covered(&server, 1).await;
        let kept = server.store.checkpoint(Some(0)).await.unwrap().expect("the empty tree's checkpoint is kept");
        assert_eq!(kept.note, c.note, "one signature for one tree: Ed25519 is deterministic");
    }
}

#[tokio::test]
async fn proofs_and_hash_tiles_are_for_anyone_entries_for_supervisors_and_a_platform_is_told_403() {
    let db = sqlite_db();
    let server = spawn_with_principals(&db).await;
    // Two leaves, and a checkpoint over them.
    server.store.log_append(&[b"leaf one".to_vec(), b"leaf two".to_vec()]).await.unwrap();
    let mut log = pb::log_service_client::LogServiceClient::new(server.channel().await);
    covered(&server, 2).await;
    let c = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner();
    // Anonymous: checkpoints, inclusion and consistency proofs, hash tiles.
    let inclusion = pb::GetInclusionProofRequest { leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(1)), tree_size: 2 };
    assert_eq!(log.get_inclusion_proof(inclusion).await.unwrap().into_inner().tree_size, c.tree_size);
    log.get_consistency_proof(pb::GetConsistencyProofRequest { old_size: 1, new_size: 2 }).await.unwrap();
    assert_eq!(get(server.addr, "/log/tile/0/000.p/2", None).await.0, 200);
    assert_eq!(get(server.addr, "/api/log/proof?index=0", None).await.0, 200);
    // Entries: anonymous 401, a platform 403 (gRPC PERMISSION_DENIED), a supervisor 200.
    let entries = "/log/tile/entries/000.p/2";
    assert_eq!(get(server.addr, entries, None).await.0, 401);
    let (status, body) = get(server.addr, entries, Some(PLATFORM)).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("当前身份无权访问此内容：日志条目只供监管方读取。") && text.contains("（代码 FORBIDDEN）"), "{text}");
    let (status, bundle) = get(server.addr, entries, Some(SUPERVISOR)).await;
    assert_eq!(status, 200);
    assert_eq!(&bundle[..2], &(b"leaf one".len() as u16).to_be_bytes(), "a C2SP entry bundle");
    let request = || pb::GetEntriesRequest { start: 0, end: 2 };
    assert_eq!(log.get_entries(with_token(request(), None)).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(log.get_entries(with_token(request(), Some(PLATFORM))).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(log.get_entries(with_token(request(), Some(SUPERVISOR))).await.unwrap().into_inner().entries.len(), 2);
}
