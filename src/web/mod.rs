//! The evaluation committee's web page, served on the gRPC port.
//!
//! `/` lists tenders; `/tenders/{id}` is the committee's table, which the
//! browser fills from `/api/tenders/{id}/statements` (the DSSE envelopes of
//! every bid, nothing decoded) after verifying each signature against
//! `/api/keys` (the ListKeys answer). Everything is served by the binary.

mod page;

pub use page::esc;

use crate::proto::v1 as pb;
use crate::service::{key_to_proto, ApiError, AssessmentApi, Cache};
use crate::signing::SharedKeyring;
use crate::store::Store;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

const JS: &str = include_str!("assets/committee.js");
const CSS: &str = include_str!("assets/committee.css");

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub cache: Arc<Cache>,
    pub assessments: AssessmentApi,
    pub keys: SharedKeyring,
    /// Lets tests have a statement's payload altered in transit
    /// (`?tamper=SEQUENCE`), to prove the page catches it. Never set by the CLI.
    pub test_hooks: bool,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(list))
        .route("/tenders/{id}", get(committee))
        .route("/api/tenders/{id}/statements", get(statements))
        .route("/api/keys", get(keys))
        .route("/assets/committee.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
        .route("/assets/committee.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .with_state(state)
}

fn store_down(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "page: store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(page::error(503, "信用数据暂时无法读取", "信用数据库当前无法访问，页面无法显示投标人的信用评价结论。这不表示没有投标人。请稍后刷新，或联系系统管理员。")),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page::error(404, "未找到该招标项目", &format!("没有编号为「{id}」的招标项目。请核对项目编号，或从项目列表进入。"))),
    )
        .into_response()
}

async fn list(State(s): State<WebState>) -> Response {
    match s.store.list_tenders().await {
        Ok(tenders) => Html(page::tender_list(&tenders)).into_response(),
        Err(e) => store_down(e),
    }
}

async fn committee(State(s): State<WebState>, Path(id): Path<String>) -> Response {
    let cached = match s.cache.tender(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(&id),
        Err(e) => return store_down(e),
    };
    let version = match s.cache.data_version().await {
        Ok(v) => v,
        Err(e) => return store_down(e),
    };
    let mut bidders = Vec::new();
    for bid in &cached.bids {
        let mut members = Vec::new();
        for code in bid.bidder.split('+') {
            let name = match crate::domain::CreditCode::try_from(code.to_owned()) {
                Ok(c) => match s.cache.profile(&c, version).await {
                    Ok(p) => p.profile.entity_name(),
                    Err(e) => return store_down(e),
                },
                Err(_) => String::new(),
            };
            members.push((code.to_owned(), name));
        }
        bidders.push((bid.sequence, members));
    }
    Html(page::committee(&cached.tender, &bidders)).into_response()
}

#[derive(serde::Deserialize)]
struct StatementQuery {
    tamper: Option<u32>,
}

#[derive(serde::Serialize)]
struct SignedBid {
    sequence: u32,
    envelope: pb::Envelope,
}

#[derive(serde::Serialize)]
struct Statements {
    tender_id: String,
    bids: Vec<SignedBid>,
}

async fn statements(State(s): State<WebState>, Path(id): Path<String>, Query(q): Query<StatementQuery>) -> Response {
    let table = match s.assessments.assess_tender_table(&id).await {
        Ok(t) => t,
        Err(ApiError::NotFound(m)) => return (StatusCode::NOT_FOUND, m).into_response(),
        Err(e @ ApiError::Invalid(_)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("信用数据暂时无法读取：{e}")).into_response(),
    };
    let mut bids: Vec<SignedBid> = table
        .bids
        .into_iter()
        .filter_map(|b| {
            let sequence = b.bid?.sequence;
            Some(SignedBid { sequence, envelope: b.assessment?.envelope? })
        })
        .collect();
    if let (true, Some(seq)) = (s.test_hooks, q.tamper) {
        for b in bids.iter_mut().filter(|b| b.sequence == seq) {
            b.envelope.payload = tamper(&b.envelope.payload).into();
        }
    }
    json(&Statements { tender_id: id, bids })
}

/// Changes one digit of the deposit owed: still valid JSON, no longer what was signed.
fn tamper(payload: &[u8]) -> Vec<u8> {
    let mut p = payload.to_vec();
    let needle = b"\"depositOwedFen\":\"";
    if let Some(i) = p.windows(needle.len()).position(|w| w == needle) {
        let d = &mut p[i + needle.len()];
        *d = if *d == b'9' { b'1' } else { *d + 1 };
    }
    p
}

async fn keys(State(s): State<WebState>) -> Response {
    let keys = pb::ListKeysResponse { keys: s.keys.get().public_keys().into_iter().map(key_to_proto).collect() };
    json(&keys)
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
