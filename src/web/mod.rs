//! The evaluation committee's web page, served on the gRPC port.
//!
//! `/` lists tenders; `/tenders/{id}` is the committee's table, which the
//! browser fills from `/api/tenders/{id}/statements` (the DSSE envelopes of
//! every bid, nothing decoded) after verifying each signature against
//! `/api/keys` (the ListKeys answer). Everything is served by the binary.

mod ocds;
mod page;
mod proofs;
mod reply;
mod supervision;

pub use page::esc;
pub use reply::WebState;

use reply::{WebError, bad_query, caller_of, json, refusal, unauthorized};

use crate::access::{Action, Caller, Decision, Resource, decide};
use crate::domain::TenderId;
use crate::proto::v1 as pb;
use crate::refusal::{CODE_HEADER, TEXT_PLAIN};
use crate::service::{ApiError, key_to_proto};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use proofs::{log_checkpoint, log_proof, log_tile};

const JS: &str = include_str!("assets/committee.js");
const CSS: &str = include_str!("assets/committee.css");
/// @noble/ed25519 3.2.0 from npm, byte for byte (its `index.js`): the page's
/// Ed25519 verifier where WebCrypto has none. npm integrity
/// sha512-criDgRlnUA09hchYrTy/JUWPIEap5rZxQe6wDWzRx51oWWpDRcUpuNzlgPxDJaOK6AsW9c0wKcj3rKRv6t+bPQ==;
/// the file's SHA-256 is [`NOBLE_ED25519_SHA256`] (checked by a test). MIT
/// licence: `assets/noble-ed25519.LICENSE`.
const NOBLE_ED25519: &str = include_str!("assets/noble-ed25519.js");
/// The SHA-256 of `assets/noble-ed25519.js` as published in @noble/ed25519 3.2.0.
pub const NOBLE_ED25519_SHA256: &str = "a4f631d1876b5d9e43a86cd71194ca27b5e1451edf4ba4db9a418f40a475569a";
/// @noble/hashes 2.4.0 from npm, byte for byte: `sha2.js` and the three
/// files it imports, served under `/assets/noble-hashes/` so that its
/// relative imports resolve. The page's SHA-256 and (for @noble/ed25519)
/// SHA-512 where the browser has no WebCrypto (a plain-HTTP intranet
/// address), so that it verifies every row there too and the printed record
/// and the CSV carry each statement's SHA-256. npm integrity of
/// the package
/// sha512-X5XaVWZIBCT7HHZGm5I7ZQXDwLG+bGXuSrMQAW+7Zvl87h1kmc1ZB1VSRJcpUfoUrGQp4Fkoxm5kZ+Ms+aW+eA==;
/// each file's SHA-256 beside it (checked by a test). MIT licence:
/// `assets/noble-hashes.LICENSE`.
pub const NOBLE_HASHES: [(&str, &str, &str); 4] = [
    ("sha2.js", include_str!("assets/noble-hashes/sha2.js"), "471746bba6ec4c6238ca41358d1d3b40b6ff31cf3363f0b4d550c649c1a8e83b"),
    ("_md.js", include_str!("assets/noble-hashes/_md.js"), "60cf3010fda89e3e4d3f0e7ff1ce249e9c467f34b4fd41b6fd6101d9f69be763"),
    ("_u64.js", include_str!("assets/noble-hashes/_u64.js"), "b09da8c07fe8187c07649494cdb7cd0bcf13df90b506a9473d19e4d5f8c2e102"),
    ("utils.js", include_str!("assets/noble-hashes/utils.js"), "037ad49adb78168b6b699598fd33f85f7877456b1d28b4d032e2a1a16807947c"),
];

/// Every page, API and file the web router answers, in axum's path syntax,
/// with its handler. The router is built from this list and nothing else,
/// so [`paths`] is the whole of the HTTP surface besides gRPC.
fn pages() -> Vec<(&'static str, MethodRouter<WebState>)> {
    vec![
        ("/", get(list)),
        ("/tenders/{id}", get(committee)),
        ("/api/tenders/{id}/statements", get(statements)),
        ("/tenders/{id}/ocds.json", get(ocds::release)),
        ("/api/keys", get(keys)),
        ("/api/log/proof", get(log_proof)),
        ("/log/checkpoint", get(log_checkpoint)),
        ("/log/{*tile}", get(log_tile)),
        ("/committee/enter/{link}", get(enter)),
        ("/assets/committee.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) })),
        ("/assets/committee.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) })),
        ("/assets/noble-ed25519.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], NOBLE_ED25519) })),
        ("/assets/noble-hashes/{file}", get(noble_hashes)),
        ("/metrics", get(metrics)),
        ("/supervision", get(supervision::page)),
        ("/supervision/outcomes.csv", get(supervision::csv)),
    ]
}

/// The paths of every route the web router serves (axum syntax, e.g.
/// `/tenders/{id}`), as it is built: a test holding one expected answer per
/// role for each path fails when a route is added without one.
pub fn paths() -> Vec<&'static str> {
    pages().into_iter().map(|(path, _)| path).collect()
}

pub fn router(state: WebState) -> Router {
    pages()
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| router.route(path, handler))
        .fallback(fallback)
        .layer(axum::middleware::map_response(harden))
        .with_state(state)
}

/// `/assets/noble-hashes/{file}`: one of [`NOBLE_HASHES`]' files.
async fn noble_hashes(Path(file): Path<String>) -> Response {
    match NOBLE_HASHES.iter().find(|(name, _, _)| *name == file) {
        Some((_, text, _)) => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], *text).into_response(),
        None => {
            let (code, zh) = crate::refusal::for_status(StatusCode::NOT_FOUND);
            refusal(StatusCode::NOT_FOUND, code, zh)
        }
    }
}

/// `/metrics`: the Prometheus text, for supervisors.
async fn metrics(State(s): State<WebState>, ext: Option<Extension<Caller>>) -> Response {
    match decide(&caller_of(ext), Action::ReadMetrics, Resource::Service, s.cache.clock().now()) {
        Decision::Allow => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.cache.metrics().render()).into_response()
        }
        Decision::Unauthenticated(_) => WebError::Unauthenticated.api(),
        _ => WebError::Forbidden { why: "metrics are for supervisors".into(), zh: "运行指标只供监管方读取。" }.api(),
    }
}

/// Every page and API answer: no inline script, no framing, no sniffing,
/// and no Referer (a committee link must never leak through one).
async fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    let grpc = h.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // An error this crate did not word (the framework's: a method a route
    // does not take, a path it cannot decode, an empty 404) gets the
    // Chinese sentence for its status; its other headers (Allow) stay.
    if (r.status().is_client_error() || r.status().is_server_error()) && !grpc && !r.headers().contains_key(CODE_HEADER) {
        let (code, zh) = crate::refusal::for_status(r.status());
        tracing::debug!(status = %r.status(), code, "web: a framework's error answer, worded in Chinese");
        let (mut parts, _) = r.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(TEXT_PLAIN));
        parts.headers.insert(CODE_HEADER, axum::http::HeaderValue::from_static(code));
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::from(crate::refusal::body(zh, code)));
    }
    r
}

/// What no route answers: gRPC's UNIMPLEMENTED for a gRPC call (an unknown
/// service), else the Chinese 404.
async fn fallback(headers: axum::http::HeaderMap) -> Response {
    if headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")) {
        let (parts, ()) = tonic::Status::unimplemented("no such gRPC service on this server").into_http::<()>().into_parts();
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    let (code, zh) = crate::refusal::for_status(StatusCode::NOT_FOUND);
    refusal(StatusCode::NOT_FOUND, code, zh)
}

/// Whether `caller` may see `tender`'s page.
fn may_view(caller: &Caller, tender: &crate::domain::Tender, now: chrono::DateTime<chrono::Utc>) -> Decision {
    let resource = Resource::Tender { id: &tender.tender_id, region: tender.terms.region };
    decide(caller, Action::ViewCommitteePage, resource, now)
}

/// A committee member's single-use link: binds a session cookie to the
/// grant, then sends the browser on to its tender (so the link leaves the
/// address bar at once). A used, expired or revoked link is 401.
async fn enter(State(s): State<WebState>, Path(link): Path<String>) -> Response {
    use crate::access::principals::new_token;
    let link_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, link.as_bytes()));
    let (session, session_sha256) = new_token();
    let now = s.cache.clock().now();
    match s.cache.store().redeem_grant(&link_sha256, &session_sha256, now).await {
        Ok(Some(grant)) => {
            tracing::info!(grant = %grant.grant_id, tender = %grant.tender_id, "committee link used");
            let max_age = (grant.expires_at - now).num_seconds().clamp(1, 24 * 3600);
            let cookie = format!("{}={session}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}", crate::gate::SESSION_COOKIE);
            let to = format!("/tenders/{}", page::url_segment(grant.tender_id.as_str()));
            (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, to)]).into_response()
        }
        Ok(None) => {
            tracing::info!("committee link refused: unknown, used, expired or revoked");
            unauthorized()
        }
        Err(e) => WebError::from(ApiError::from(e)).page(""),
    }
}

async fn list(State(s): State<WebState>, ext: Option<Extension<Caller>>) -> Response {
    let caller = caller_of(ext);
    if caller == Caller::Anonymous {
        return unauthorized();
    }
    match s.cache.tender_list().await {
        Ok(tenders) => {
            let now = s.cache.clock().now();
            let visible: Vec<_> = tenders.iter().filter(|(t, _)| may_view(&caller, t, now) == Decision::Allow).cloned().collect();
            Html(page::tender_list(&visible)).into_response()
        }
        Err(e) => WebError::from(e).page(""),
    }
}

async fn committee(State(s): State<WebState>, Path(id): Path<String>, ext: Option<Extension<Caller>>) -> Response {
    match committee_page(&s, &caller_of(ext), &id).await {
        Ok(html) => Html(html).into_response(),
        Err(WebError::Unauthenticated) => unauthorized(),
        Err(e) => e.page(&id),
    }
}

/// No tender `id` (or none this caller may see), the id bounded.
fn no_tender(id: &str) -> WebError {
    let shown = crate::domain::text::shown(id);
    WebError::NotFound {
        why: format!("no tender '{shown}'"), zh: format!("没有编号为「{shown}」的招标项目，或当前身份无权查看。")
    }
}

async fn committee_page(s: &WebState, caller: &Caller, raw_id: &str) -> Result<String, WebError> {
    // The role first, then the tender: no answer depends on whether it exists.
    match decide(caller, Action::ViewCommitteePage, Resource::AnyTender, s.cache.clock().now()) {
        Decision::Allow => {}
        Decision::Unauthenticated(_) => return Err(WebError::Unauthenticated),
        Decision::Deny(_) | Decision::NotFound => return Err(no_tender(raw_id)),
    }
    let id = TenderId::parse(raw_id).map_err(|why| WebError::Invalid { why, zh: String::new() })?;
    let cached = s.cache.tender(&id).await?.ok_or_else(|| no_tender(id.as_str()))?;
    match may_view(caller, &cached.tender, s.cache.clock().now()) {
        Decision::Allow => {}
        Decision::Unauthenticated(_) => return Err(WebError::Unauthenticated),
        // Outside the caller's scope, or forbidden to its role: as if absent.
        Decision::Deny(_) | Decision::NotFound => return Err(no_tender(id.as_str())),
    }
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
    let policy_title = s.assessments.policy_title(&cached.tender.policy_digest).await;
    Ok(page::committee(&cached.tender, policy_title.as_deref(), &bidders))
}

#[derive(serde::Deserialize)]
struct StatementQuery {
    tamper: Option<u32>,
    page_token: Option<String>,
}

#[derive(serde::Serialize)]
struct SignedBid {
    sequence: u32,
    envelope: pb::Envelope,
    /// The statement's index in the transparency log.
    log_index: Option<u64>,
}

#[derive(serde::Serialize)]
struct Statements {
    tender_id: String,
    bids: Vec<SignedBid>,
    /// Ask again with `?page_token=` this for the next page; empty after the last.
    next_page_token: String,
}

async fn statements(
    State(s): State<WebState>,
    Path(id): Path<String>,
    q: Result<Query<StatementQuery>, QueryRejection>,
    ext: Option<Extension<Caller>>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_query(e, "本接口只接受 page_token（上一页答复给出的令牌）。").api(),
    };
    let caller = caller_of(ext);
    // The page asks for pages of the largest size, whatever the tender's size.
    let request = pb::AssessTenderRequest {
        tender_id: id.clone(),
        page_size: crate::service::MAX_TABLE_PAGE as u32,
        page_token: q.page_token.clone().unwrap_or_default(),
    };
    let table = match crate::service::TablePage::parse(&request) {
        Ok(page) => s.assessments.assess_tender_table(&caller, &page).await,
        Err(e) => Err(e),
    };
    let table = match table {
        Ok(t) => t,
        Err(ApiError::NotFound(why) | ApiError::Denied(why)) => {
            let shown = crate::domain::text::shown(&id);
            return WebError::NotFound { why, zh: format!("没有编号为「{shown}」的招标项目，或当前身份无权查看。") }.api();
        }
        Err(e) => return WebError::from(e).api(),
    };
    let table_next = table.next_page_token.clone();
    let mut bids: Vec<SignedBid> = table
        .bids
        .into_iter()
        .filter_map(|b| {
            let sequence = b.bid?.sequence;
            let assessment = b.assessment?;
            Some(SignedBid { sequence, log_index: assessment.log_index, envelope: assessment.envelope? })
        })
        .collect();
    if let (true, Some(seq)) = (s.test_hooks, q.tamper) {
        for b in bids.iter_mut().filter(|b| b.sequence == seq) {
            b.envelope.payload = tamper(&b.envelope.payload).into();
        }
    }
    json(&Statements { tender_id: id, bids, next_page_token: table_next })
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
