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
use crate::domain::TenderId;
use crate::signing::SharedKeyring;
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

/// Where a request went wrong, as the page or the JSON API shows it.
enum WebError {
    NotFound(String),
    Invalid(String),
    Unavailable(String),
    Internal(String),
}

/// The one mapping from a service error to HTTP (gRPC's is `From<ApiError> for Status`).
impl From<ApiError> for WebError {
    fn from(e: ApiError) -> WebError {
        match e {
                        ApiError::NotFound(m) => WebError::NotFound(m),
            e @ ApiError::Invalid(_) => WebError::Invalid(e.to_string()),
            e @ ApiError::Internal(_) => WebError::Internal(e.to_string()),
            e => WebError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::cache::CacheError> for WebError {
    fn from(e: crate::cache::CacheError) -> WebError {
        ApiError::from(e).into()
    }
}

impl WebError {
    /// As an HTML page, for the committee's routes; `id` is the tender asked for.
    fn page(self, id: &str) -> Response {
        match self {
            WebError::NotFound(_) | WebError::Invalid(_) => (
                StatusCode::NOT_FOUND,
                Html(page::error(404, "未找到该招标项目", &format!("没有编号为「{id}」的招标项目。请核对项目编号，或从项目列表进入。"))),
            )
                .into_response(),
            WebError::Unavailable(e) | WebError::Internal(e) => {
                tracing::warn!(error = %e, "page: store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Html(page::error(503, "信用数据暂时无法读取", "信用数据库当前无法访问，页面无法显示投标人的信用评价结论。这不表示没有投标人。请稍后刷新，或联系系统管理员。")),
                )
                    .into_response()
            }
        }
    }

    /// As plain text, for the JSON API.
    fn api(self) -> Response {
        match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, m).into_response(),
            WebError::Invalid(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            WebError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("信用数据暂时无法读取：{m}")).into_response(),
            WebError::Internal(m) => {
                tracing::error!(error = %m, "web api: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

async fn list(State(s): State<WebState>) -> Response {
    match s.cache.tender_list().await {
        Ok(tenders) => Html(page::tender_list(&tenders)).into_response(),
        Err(e) => WebError::from(e).page(""),
    }
}

async fn committee(State(s): State<WebState>, Path(id): Path<String>) -> Response {
    match committee_page(&s, &id).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => e.page(&id),
    }
}

async fn committee_page(s: &WebState, raw_id: &str) -> Result<String, WebError> {
    let id = TenderId::parse(raw_id).map_err(WebError::Invalid)?;
    let cached = s.cache.tender(&id).await?.ok_or_else(|| WebError::NotFound(id.to_string()))?;
    let version = s.cache.data_version().await?;
    let mut bidders = Vec::new();
    for bid in &cached.bids {
        let mut members = Vec::new();
        for code in bid.bidder.codes() {
            let name = s.cache.profile(code, version).await?.profile.entity_name();
            members.push((code.to_string(), name));
        }
        bidders.push((bid.sequence, members));
    }
    Ok(page::committee(&cached.tender, &bidders))
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
    let table = match TenderId::parse(&id).map_err(|r| ApiError::field("tender_id", r)) {
        Ok(tender_id) => s.assessments.assess_tender_table(&tender_id).await,
        Err(e) => Err(e),
    };
    let table = match table {
        Ok(t) => t,
        Err(e) => return WebError::from(e).api(),
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
