//! The transparency log over HTTP: the checkpoint, C2SP tiles and
//! inclusion proofs, for whoever the access rules let read them.

use super::reply::{ABSENT_ZH, WebError, WebState, bad_query, caller_of, json};
use crate::access::{Action, Caller, Decision, Resource, decide};
use crate::log::Log;
use crate::service::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Allows `action` on the log to `caller`, or says why not.
fn log_access(s: &WebState, caller: &Caller, action: Action) -> Result<Arc<Log>, WebError> {
    match decide(caller, action, Resource::Service, s.cache.clock().now()) {
        Decision::Allow => {}
        Decision::Unauthenticated(_) => return Err(WebError::Unauthenticated),
        Decision::Deny(why) => {
            let zh = if action == Action::ReadLogEntries {
                "日志条目只供监管方读取。"
            } else {
                "此项内容不对当前身份开放。"
            };
            return Err(WebError::Forbidden { why, zh });
        }
        Decision::NotFound => return Err(WebError::NotFound { why: "not found".into(), zh: ABSENT_ZH.into() }),
    }
    s.log.clone().ok_or_else(|| WebError::NotFound {
        why: "this server keeps no transparency log".into(),
        zh: "本服务未启用透明日志，无从提供入账证明。".into(),
    })
}

fn log_error(e: crate::log::LogError) -> WebError {
    match e {
        crate::log::LogError::OutOfRange(why) => {
            WebError::NotFound { why, zh: "日志中没有所请求的条目或数据块（尚未写入，或地址有误）。".into() }
        }
        other => ApiError::from(other).into(),
    }
}

/// `/log/checkpoint`: the newest signed checkpoint (C2SP tlog-tiles).
pub(super) async fn log_checkpoint(State(s): State<WebState>, ext: Option<Extension<Caller>>) -> Response {
    let result = async {
        let log = log_access(&s, &caller_of(ext), Action::ReadLogProofs)?;
        log.checkpoint(None).await.map_err(log_error)
    };
    match result.await {
        Ok(c) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], c.note).into_response(),
        Err(e) => e.api(),
    }
}

/// `/log/tile/…`: hash tiles and entry bundles (C2SP tlog-tiles). Full
/// tiles never change and are cacheable for ever; entries are for supervisors.
pub(super) async fn log_tile(State(s): State<WebState>, Path(tile): Path<String>, ext: Option<Extension<Caller>>) -> Response {
    let action = if tile.starts_with("tile/entries/") { Action::ReadLogEntries } else { Action::ReadLogProofs };
    let result = async {
        let log = log_access(&s, &caller_of(ext), action)?;
        log.tile(&tile).await.map_err(log_error)
    };
    match result.await {
        Ok(bytes) => {
            let cache = if tile.contains(".p/") { "no-store" } else { "public, max-age=31536000, immutable" };
            ([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes).into_response()
        }
        Err(e) => e.api(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ProofQuery {
    index: u64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ProofAnswer {
    index: u64,
    tree_size: u64,
    /// Base64 hashes of the audit path, leaf to root.
    hashes: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    checkpoint: String,
}

/// `/api/log/proof?index=N`: an inclusion proof against the newest
/// checkpoint, with that checkpoint, for the committee's page.
pub(super) async fn log_proof(
    State(s): State<WebState>,
    q: Result<Query<ProofQuery>, QueryRejection>,
    ext: Option<Extension<Caller>>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_query(e, "index 必须是日志序号（0 或正整数），例如 ?index=0。").api(),
    };
    let result = async {
        let log = log_access(&s, &caller_of(ext), Action::ReadLogProofs)?;
        let checkpoint = log.checkpoint(None).await.map_err(log_error)?;
        if q.index >= checkpoint.size {
            return Err(WebError::NotFound {
                why: format!("leaf {} is not yet covered by a checkpoint (size {})", q.index, checkpoint.size),
                zh: format!("日志序号 {} 尚未计入已签名的检查点（当前检查点含 {} 条），请稍后重试。", q.index, checkpoint.size),
            });
        }
        let proof = log.inclusion(q.index, checkpoint.size).await.map_err(log_error)?;
        Ok(ProofAnswer {
            index: q.index,
            tree_size: checkpoint.size,
            hashes: proof.iter().map(crate::tlog::tree::hash_b64).collect(),
            checkpoint: checkpoint.note,
        })
    };
    match result.await {
        Ok(a) => json(&a),
        Err(e) => e.api(),
    }
}
