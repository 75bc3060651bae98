//! How an HTTP answer that refuses a request reads, wherever it is made
//! (the shed, the gate, the pages and their API): a Chinese sentence first,
//! for the committee member or operator who reads it and for the page's
//! script, which shows it; then, in brackets, a machine code that programs
//! and logs can match on, which the [`CODE_HEADER`] header carries too.
//! gRPC refusals are not worded here: their status codes and messages are
//! for programs, and the CLI words them; the retry hint they share is
//! `crate::service::retry_status`, so that every layer gives the same one.

use std::time::Duration;
use tonic::body::Body;
use tonic::codegen::http;

/// The header that carries a refusal's machine code (e.g. `OVERLOADED`).
/// An HTTP error answer without it was not worded here (the framework's
/// own), and the pages replace its body with [`for_status`]'s sentence.
pub const CODE_HEADER: &str = "x-credit-tender-error";

/// The text type of every refusal.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The body of a refusal: `zh`, then `（代码 CODE）`, then a line end.
pub fn body(zh: &str, code: &str) -> String {
    format!("{zh}（代码 {code}）\n")
}

/// Whole seconds for Retry-After: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// A plain-text refusal for the tower layers in front of the router (the
/// shed and the gate), with Retry-After when the client should try again.
pub fn plain(status: http::StatusCode, code: &'static str, zh: &str, retry_after: Option<Duration>) -> http::Response<Body> {
    let mut r = http::Response::new(Body::new(body(zh, code)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(TEXT_PLAIN));
    h.insert(CODE_HEADER, http::HeaderValue::from_static(code));
    if let Some(wait) = retry_after {
        h.insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry_after_secs(wait)));
    }
    r
}

/// The machine code and Chinese sentence for an HTTP error status, for an
/// answer the framework made (a route that does not exist, a method a route
/// does not take, a query it cannot read) and this crate did not word.
pub fn for_status(status: http::StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("BAD_REQUEST", "请求无效：请求的地址或参数格式不正确。"),
        401 => ("UNAUTHENTICATED", "需要授权：未携带有效的身份凭证，或会话已失效。"),
        403 => ("FORBIDDEN", "当前身份无权访问此内容。"),
        404 => ("NOT_FOUND", "未找到所请求的页面或内容。请核对地址，或从项目列表进入。"),
        405 => ("METHOD_NOT_ALLOWED", "此地址不支持该请求方法。"),
        406 => ("NOT_ACCEPTABLE", "无法以请求的格式作答。"),
        408 => ("REQUEST_TIMEOUT", "请求未能按时送达，未被处理。请重试。"),
        411 => ("LENGTH_REQUIRED", "请求未说明请求体的长度，未被处理。"),
        413 => ("BODY_TOO_LARGE", "请求体过大，未被处理。"),
        414 => ("URI_TOO_LONG", "请求地址过长，未被处理。"),
        415 => ("UNSUPPORTED_MEDIA_TYPE", "请求内容的类型不受支持。"),
        422 => ("BAD_REQUEST", "请求内容无法处理：格式正确但取值无效。"),
        429 => ("RATE_LIMITED", "请求过于频繁，请稍后重试。"),
        503 => ("UNAVAILABLE", "服务暂时不可用，请稍后重试。"),
        504 => ("TIMEOUT", "服务未能按时作答，请稍后重试。"),
        s if s >= 500 => ("INTERNAL", "服务内部错误，已记录。请稍后重试；如持续出现，请联系系统管理员。"),
        _ => ("BAD_REQUEST", "请求无法处理。"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_chinese_first_with_its_code_and_a_retry_in_whole_seconds() {
        let r = plain(http::StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", "服务器繁忙。", Some(Duration::from_millis(100)));
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[CODE_HEADER], "OVERLOADED");
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], TEXT_PLAIN);
        assert_eq!(body("服务器繁忙。", "OVERLOADED"), "服务器繁忙。（代码 OVERLOADED）\n");
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        for s in [400, 401, 403, 404, 405, 411, 413, 429, 500, 502, 503, 418] {
            let (code, zh) = for_status(http::StatusCode::from_u16(s).unwrap());
            assert!(code.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}: {code}");
            assert!(zh.chars().next().is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{s}: {zh}");
        }
    }
}
