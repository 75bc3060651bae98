use base64::Engine;
use bytes::Bytes;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;

/// A status's gRPC headers (for a status that ended a body).
pub(super) fn status_headers(status: &tonic::Status) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    let _ = status.add_header(&mut h);
    h
}

/// A Connect error: its code, message, details, and when to retry.
pub(super) struct ConnectError {
    code: Code,
    message: String,
    details: Vec<Detail>,
    retry_after_ms: Option<u64>,
}

impl ConnectError {
    pub(super) fn new(code: Code, message: String) -> ConnectError {
        ConnectError { code, message, details: Vec::new(), retry_after_ms: None }
    }

    /// A refusal to retry after `wait`: the message says when, a
    /// `google.rpc.RetryInfo` detail carries it, and the unary answer has
    /// Retry-After, as the shed's refusals over gRPC do.
    pub(super) fn retry(code: Code, why: &str, wait: std::time::Duration) -> ConnectError {
        let status = crate::service::retry_status(code, why, wait);
        let head = status.into_http::<tonic::body::Body>();
        ConnectError::from_grpc(head.headers(), None).unwrap_or_else(|| ConnectError::new(code, why.to_owned()))
    }

    pub(super) fn unknown() -> ConnectError {
        ConnectError::new(Code::Unknown, "the answer carries no status".into())
    }

    /// The error gRPC's status headers (or trailers) say, if not OK
    /// (`code` when already read).
    pub(super) fn from_grpc(h: &http::HeaderMap, code: Option<i32>) -> Option<ConnectError> {
        let code = code
            .or_else(|| h.get("grpc-status").and_then(|v| std::str::from_utf8(v.as_bytes()).ok()).and_then(|v| v.parse().ok()))
            .map_or(Code::Unknown, Code::from_i32);
        if code == Code::Ok {
            return None;
        }
        let message = h
            .get("grpc-message")
            .map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy().into_owned())
            .unwrap_or_default();
        let details = h
            .get("grpc-status-details-bin")
            .and_then(|v| BASE64_ANY_PADDING.decode(v.as_bytes()).ok())
            .and_then(|b| <tonic_types::pb::Status as prost::Message>::decode(&b[..]).ok())
            .map(|s| s.details.iter().map(Detail::from_any).collect())
            .unwrap_or_default();
        let retry_after_ms =
            h.get("grpc-retry-pushback-ms").and_then(|v| std::str::from_utf8(v.as_bytes()).ok()).and_then(|v| v.parse().ok());
        Some(ConnectError { code, message, details, retry_after_ms })
    }

    /// `{"code", "message", "details"}`.
    pub(super) fn json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "code": code_name(self.code), "message": self.message });
        if !self.details.is_empty() {
            body["details"] = self.details.iter().map(Detail::to_json).collect();
        }
        body
    }

    /// The unary answer: the JSON with the code's HTTP status, and
    /// Retry-After (whole seconds) when the server said when to retry.
    pub(super) fn response(&self) -> http::Response<Body> {
        let mut res = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(self.json().to_string()))));
        *res.status_mut() = http::StatusCode::from_u16(http_status(self.code)).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        if let Some(ms) = self.retry_after_ms {
            res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(ms.div_ceil(1000).max(1)));
        }
        res
    }
}

/// gRPC's binary headers are base64 with or without padding.
pub(super) const BASE64_ANY_PADDING: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One error detail as Connect's JSON carries it: the message's type, its
/// protobuf bytes (base64, unpadded) and, for the kinds this server sends,
/// the same in JSON for a reader without protobuf.
pub(super) struct Detail {
    kind: String,
    value: Vec<u8>,
}

impl Detail {
    pub(super) fn of(message: &impl prost::Message, kind: &str) -> Detail {
        Detail { kind: kind.to_owned(), value: message.encode_to_vec() }
    }

    pub(super) fn from_any(any: &prost_types::Any) -> Detail {
        let kind = any.type_url.rsplit('/').next().unwrap_or_default().to_owned();
        Detail { kind, value: any.value.clone() }
    }

    pub(super) fn debug(&self) -> Option<serde_json::Value> {
        use prost::Message;
        use serde_json::json;
        match self.kind.as_str() {
            "google.rpc.BadRequest" => {
                let b = tonic_types::pb::BadRequest::decode(&self.value[..]).ok()?;
                let violations: Vec<_> =
                    b.field_violations.iter().map(|v| json!({"field": v.field, "description": v.description})).collect();
                Some(json!({ "fieldViolations": violations }))
            }
            "google.rpc.RetryInfo" => {
                let r = tonic_types::pb::RetryInfo::decode(&self.value[..]).ok()?;
                let d = r.retry_delay?;
                Some(json!({ "retryDelay": format!("{}.{:09}s", d.seconds, d.nanos) }))
            }
            _ => None,
        }
    }

    pub(super) fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "type": self.kind,
            "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.value),
        });
        if let Some(debug) = self.debug() {
            v["debug"] = debug;
        }
        v
    }
}

/// The protocol's name for a code.
pub(super) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status the protocol assigns to a code ("Error Codes").
pub(super) fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// A unary Connect error answer.
pub(super) fn error(code: Code, message: &str, details: Vec<Detail>, retry_after_ms: Option<u64>) -> http::Response<Body> {
    ConnectError { code, message: message.to_owned(), details, retry_after_ms }.response()
}

/// 415 for a content type this path does not serve: which it was, why,
/// and what is served (in the text and in `Accept-Post`).
pub(super) fn unsupported(content_type: &str, why: &str) -> http::Response<Body> {
    let text = format!(
        "content type {content_type} is not served on this path{why}: send application/json or application/proto (the Connect protocol; \
         application/connect+json or application/connect+proto for a streaming method), \
         or application/grpc, application/grpc-web or application/grpc-web-text\n"
    );
    let mut res = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(text))));
    *res.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(
        "accept-post",
        http::HeaderValue::from_static(
            "application/json, application/proto, application/connect+json, application/connect+proto, application/grpc, \
             application/grpc+proto, application/grpc-web, application/grpc-web+proto, application/grpc-web-text",
        ),
    );
    res
}

/// The methods an RPC's path answers to.
const ALLOWED: &str = "POST";

/// 405 for a method other than POST on an RPC's path, before anything runs.
pub(super) fn not_allowed(method: &http::Method) -> http::Response<Body> {
    let shown = crate::domain::text::shown(method.as_str()).into_owned();
    let text = format!("method {shown} is not served on an RPC's path: send a POST\n");
    let mut res = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(text))));
    *res.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    res.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(ALLOWED));
    res
}

/// A CORS preflight (OPTIONS) on an RPC's path: 204 with the methods
/// allowed and no `Access-Control-Allow-Origin`: calls are same-origin
/// only, and a browser on another origin is told no before it sends one.
pub(super) fn preflight() -> http::Response<Body> {
    let mut res = http::Response::new(Body::empty());
    *res.status_mut() = http::StatusCode::NO_CONTENT;
    res.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(ALLOWED));
    res
}
