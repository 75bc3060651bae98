//! How a page or the JSON API answers: the state every route reads, the
//! one mapping from a service error to HTTP ([`WebError`]), and the plain
//! refusals and error pages it is written with.

use super::page;
use crate::access::Caller;
use crate::log::Log;
use crate::refusal::{CODE_HEADER, TEXT_PLAIN};
use crate::service::{ApiError, AssessmentApi, Cache};
use crate::signing::SharedKeyring;
use axum::extract::Extension;
use axum::extract::rejection::QueryRejection;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

#[derive(Clone)]
pub struct WebState {
    pub cache: Arc<Cache>,
    pub assessments: AssessmentApi,
    pub keys: SharedKeyring,
    /// The transparency log, when the server keeps one.
    pub log: Option<Arc<Log>>,
    /// The supervision platform's figures, for `/supervision`.
    pub supervision: crate::supervision::SupervisionApi,
    /// Lets tests have a statement's payload altered in transit
    /// (`?tamper=SEQUENCE`), to prove the page catches it. Never set by the CLI.
    pub test_hooks: bool,
}

/// A plain-text refusal from a page's route: Chinese first, with its code.
pub(super) fn refusal(status: StatusCode, code: &'static str, zh: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, TEXT_PLAIN), (axum::http::header::HeaderName::from_static(CODE_HEADER), code)],
        crate::refusal::body(zh, code),
    )
        .into_response()
}

/// An HTML error page from a page's route, its code in the header.
pub(super) fn error_page(status: StatusCode, code: &'static str, heading: &str, detail: &str) -> Response {
    (status, [(axum::http::header::HeaderName::from_static(CODE_HEADER), code)], Html(page::error(status.as_u16(), heading, detail)))
        .into_response()
}

/// The caller the gate identified (anonymous if none did).
pub(super) fn caller_of(ext: Option<Extension<Caller>>) -> Caller {
    ext.map(|Extension(c)| c).unwrap_or(Caller::Anonymous)
}

pub(super) fn unauthorized() -> Response {
    error_page(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "需要授权",
        "此链接或会话已失效（已使用、已过期或已撤销）。请向招标平台重新申请评标委员会访问链接。",
    )
}

/// Where a request went wrong, as the page or the JSON API shows it. The
/// English `why` is for the log; whoever reads the answer reads Chinese.
pub(super) enum WebError {
    Unauthenticated,
    /// A known caller outside its role, where nothing is hidden by saying so
    /// (the log's entries exist for every caller; only who may read differs).
    Forbidden {
        why: String,
        zh: &'static str,
    },
    NotFound {
        why: String,
        zh: String,
    },
    Invalid {
        why: String,
        zh: String,
    },
    Unavailable(String),
    /// The tender cannot be assessed as it stands (its policy version).
    Precondition(String),
    Internal(String),
}

/// What is said for a thing that is absent (or hidden from this caller).
pub(super) const ABSENT_ZH: &str = "未找到所请求的内容，或当前身份无权查看。";

/// The one mapping from a service error to HTTP (gRPC's is `From<ApiError> for Status`).
impl From<ApiError> for WebError {
    fn from(e: ApiError) -> WebError {
        match e {
            ApiError::NotFound(why) => WebError::NotFound { why, zh: ABSENT_ZH.into() },
            ApiError::Unauthenticated(_) => WebError::Unauthenticated,
            // Forbidden to the role: shown as absent, so ids are not revealed.
            ApiError::Denied(why) => WebError::NotFound { why, zh: ABSENT_ZH.into() },
            ApiError::Invalid(fields) => {
                let names: Vec<String> = fields.iter().filter(|f| !f.field.is_empty()).map(|f| format!("「{}」", f.field)).collect();
                let zh = if names.is_empty() {
                    "请求无效：参数不符合要求。".to_owned()
                } else {
                    format!("请求无效：参数{}不符合要求。", names.join("、"))
                };
                WebError::Invalid { why: ApiError::Invalid(fields).to_string(), zh }
            }
            e @ ApiError::Internal(_) => WebError::Internal(e.to_string()),
            ApiError::Precondition(m) => WebError::Precondition(m),
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
    pub(super) fn page(self, id: &str) -> Response {
        match self {
            WebError::Unauthenticated => unauthorized(),
            WebError::Forbidden { .. } | WebError::NotFound { .. } | WebError::Invalid { .. } => error_page(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "未找到该招标项目",
                // Bounded as every echoed value is (a path may be megabytes long).
                &format!("没有编号为「{}」的招标项目。请核对项目编号，或从项目列表进入。", crate::domain::text::shown(id)),
            ),
            WebError::Unavailable(e) | WebError::Internal(e) => {
                tracing::warn!(error = %e, "page: store unavailable");
                let mut r = error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "信用数据暂时无法读取",
                    "信用数据库当前无法访问，页面无法显示投标人的信用评价结论。这不表示没有投标人。请稍后刷新，或联系系统管理员。",
                );
                r.headers_mut().insert(header::RETRY_AFTER, crate::refusal::retry_after_secs(crate::service::BUSY_RETRY_AFTER).into());
                r
            }
            WebError::Precondition(e) => {
                tracing::warn!(error = %e, "page: the tender cannot be assessed as bound");
                error_page(
                    StatusCode::CONFLICT,
                    "POLICY_NOT_APPLICABLE",
                    "无法按该项目绑定的信用规则出具结论",
                    "该招标项目绑定的信用规则版本无法由当前版本的服务应用。本服务不会按与项目规则不同的方式出具结论；请招标平台按当前有效的规则版本重新登记该项目。",
                )
            }
        }
    }

    /// As plain text, for the JSON API and the log's files: a Chinese
    /// sentence and a machine code (`crate::refusal`); a 503 says when to retry.
    pub(super) fn api(self) -> Response {
        match self {
            WebError::Unauthenticated => refusal(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "需要授权：未携带有效的身份凭证，或评标委员会会话已失效（已使用、已过期或已撤销）。",
            ),
            WebError::Forbidden { why, zh } => {
                tracing::info!(why = %why, "web api: forbidden to the caller's role");
                refusal(StatusCode::FORBIDDEN, "FORBIDDEN", &format!("当前身份无权访问此内容：{zh}"))
            }
            WebError::NotFound { why, zh } => {
                tracing::debug!(why = %why, "web api: not found");
                refusal(StatusCode::NOT_FOUND, "NOT_FOUND", &zh)
            }
            WebError::Invalid { why, zh } => {
                tracing::debug!(why = %why, "web api: invalid request");
                refusal(StatusCode::BAD_REQUEST, "BAD_REQUEST", &zh)
            }
            WebError::Unavailable(why) => {
                tracing::warn!(error = %why, "web api: unavailable");
                let wait = crate::service::BUSY_RETRY_AFTER;
                let secs = crate::refusal::retry_after_secs(wait);
                let mut r = refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    &format!("信用数据暂时无法读取，请 {secs} 秒后重试。这不表示没有投标人或结论有误。"),
                );
                r.headers_mut().insert(header::RETRY_AFTER, secs.into());
                r
            }
            WebError::Precondition(why) => {
                tracing::warn!(error = %why, "web api: the tender cannot be assessed as bound");
                refusal(
                    StatusCode::CONFLICT,
                    "POLICY_NOT_APPLICABLE",
                    "无法按该项目绑定的信用规则出具结论：该项目绑定的规则版本无法由当前版本的服务应用，请招标平台按当前有效的规则版本重新登记该项目。",
                )
            }
            WebError::Internal(m) => {
                tracing::error!(error = %m, "web api: internal error");
                let (code, zh) = crate::refusal::for_status(StatusCode::INTERNAL_SERVER_ERROR);
                refusal(StatusCode::INTERNAL_SERVER_ERROR, code, zh)
            }
        }
    }
}

/// A query string that could not be read, said in Chinese with the
/// parameters the route takes (`expected`); axum's English for the log.
pub(super) fn bad_query(rejection: QueryRejection, expected: &str) -> WebError {
    WebError::Invalid { why: rejection.body_text(), zh: format!("查询参数无效：{expected}") }
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => WebError::Internal(e.to_string()).api(),
    }
}
