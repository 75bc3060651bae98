use super::errors::{ConnectError, Detail, error, status_headers};
use super::method::{Codec, ConnectLayer, Method, Refused, bounded};
use bytes::Bytes;
use http_body_util::BodyExt;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;

/// The gRPC call a Connect call stands for: the same head (identity,
/// connection details) with gRPC's content type and deadline, and the
/// message framed.
pub(super) async fn grpc_request(
    req: http::Request<Body>,
    method: &Method,
    codec: Codec,
    layer: &ConnectLayer,
) -> Result<http::Request<Body>, Refused> {
    let (mut parts, body) = req.into_parts();
    let refuse = |code: Code, message: String| Refused { response: error(code, &message, Vec::new(), None), counted: None };
    let timeout = connect_head(&parts.headers, http::header::CONTENT_ENCODING.as_str()).map_err(|(code, why)| {
        let mut refused = refuse(code, why);
        accept_identity(code, &mut refused.response, "accept-encoding");
        refused
    })?;
    let read =
        tokio::time::timeout(layer.body_timeout, http_body_util::Limited::new(body, crate::shed::MAX_BODY_BYTES - 5).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            layer.metrics.denied("body_too_large");
            let why = format!("the request's body is larger than {} bytes", crate::shed::MAX_BODY_BYTES - 5);
            return Err(refuse(Code::ResourceExhausted, why));
        }
        Ok(Err(e)) => return Err(refuse(Code::Cancelled, format!("the request's body could not be read: {e}"))),
        Err(_) => {
            layer.metrics.denied("body_timeout");
            let why = format!("the request's body did not arrive within {} ms of its headers", layer.body_timeout.as_millis());
            let response = ConnectError::retry(Code::ResourceExhausted, &why, crate::shed::RETRY_AFTER).response();
            return Err(Refused { response, counted: None });
        }
    };
    let message = match codec {
        Codec::Proto => bytes.to_vec(),
        Codec::Json => (method.request_from_json)(&bytes).map_err(|bad| {
            let message = match bad.at.as_str() {
                "" => format!("invalid request: the body is not this method's request in JSON: {}", bad.why),
                at => format!("invalid request: {at}: {}", bad.why),
            };
            let message = bounded(message);
            let violation = tonic_types::pb::BadRequest {
                field_violations: vec![tonic_types::pb::bad_request::FieldViolation {
                    field: bad.at.clone(),
                    description: message.clone(),
                    ..Default::default()
                }],
            };
            let detail = Detail::of(&violation, "google.rpc.BadRequest");
            Refused { response: error(Code::InvalidArgument, &message, vec![detail], None), counted: Some("INVALID_ARGUMENT") }
        })?,
    };
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);

    as_grpc(&mut parts.headers, timeout);
    Ok(http::Request::from_parts(parts, Body::new(http_body_util::Full::new(Bytes::from(framed)))))
}

/// What a Connect request's head asks that gRPC's does not: the protocol's
/// version (1, if said), the body's compression (`encoding_header`:
/// identity only; refused as `unimplemented`, the answer saying
/// `Accept-Encoding: identity`) and the deadline (`connect-timeout-ms`, a
/// positive number of at most 10 digits), which is returned.
pub(super) fn connect_head(h: &http::HeaderMap, encoding_header: &str) -> Result<Option<u64>, (Code, String)> {
    let shown = |v: &http::HeaderValue| crate::domain::text::shown(&String::from_utf8_lossy(v.as_bytes())).into_owned();
    if let Some(version) = h.get("connect-protocol-version")
        && version.as_bytes() != b"1"
    {
        let why = format!("connect-protocol-version '{}' is not served: this server speaks version 1", shown(version));
        return Err((Code::InvalidArgument, why));
    }
    if let Some(encoding) = h.get(encoding_header)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err((Code::Unimplemented, format!("{encoding_header} '{}' is not served: send the body uncompressed", shown(encoding))));
    }
    match h.get("connect-timeout-ms") {
        None => Ok(None),
        Some(v) => match connect_timeout(v) {
            Some(ms) => Ok(Some(ms)),
            None => Err((
                Code::InvalidArgument,
                format!("connect-timeout-ms '{}' is not a positive whole number of milliseconds (at most 10 digits)", shown(v)),
            )),
        },
    }
}

/// `connect-timeout-ms`'s value, if it is one: 1 to 10 digits, not 0.
pub(super) fn connect_timeout(v: &http::HeaderValue) -> Option<u64> {
    let text = std::str::from_utf8(v.as_bytes()).ok().filter(|t| (1..=10).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))?;
    text.parse::<u64>().ok().filter(|ms| *ms > 0)
}

/// The answer's header naming the one encoding served, on a refusal of another.
pub(super) fn accept_identity(code: Code, res: &mut http::Response<Body>, name: &'static str) {
    if code == Code::Unimplemented {
        res.headers_mut().insert(name, http::HeaderValue::from_static("identity"));
    }
}

/// A Connect request's head as gRPC's: its content type, trailers, the deadline.
pub(super) fn as_grpc(h: &mut http::HeaderMap, timeout_ms: Option<u64>) {
    for name in ["connect-protocol-version", "connect-timeout-ms", "connect-accept-encoding", "content-length", "accept-encoding"] {
        h.remove(name);
    }
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    if let Some(ms) = timeout_ms
        && let Ok(v) = http::HeaderValue::from_str(&format!("{ms}m"))
    {
        h.insert("grpc-timeout", v);
    }
}

/// The Connect answer to a gRPC answer: the message (re-encoded to JSON
/// for a JSON call), or the error its status says.
pub(super) async fn connect_response(res: http::Response<Body>, method: &Method, codec: Codec) -> http::Response<Body> {
    let (parts, body) = res.into_parts();
    let (data, trailers) = match body.collect().await {
        Ok(c) => {
            let trailers = c.trailers().cloned();
            (c.to_bytes(), trailers)
        }
        Err(status) => return ConnectError::from_grpc(&status_headers(&status), None).unwrap_or_else(ConnectError::unknown).response(),
    };
    // A trailers-only answer carries its status in the head.
    let status_at = if parts.headers.contains_key("grpc-status") { &parts.headers } else { trailers.as_ref().unwrap_or(&parts.headers) };
    let code = status_at.get("grpc-status").and_then(|v| std::str::from_utf8(v.as_bytes()).ok()).and_then(|v| v.parse::<i32>().ok());
    if let Some(e) = ConnectError::from_grpc(status_at, code) {
        return e.response();
    }
    let message = match single_message(&data) {
        Ok(m) => m,
        Err(why) => {
            tracing::error!(path = method.path, %why, "a gRPC answer the Connect door cannot pass on");
            return error(Code::Internal, "internal error", Vec::new(), None);
        }
    };
    let body = match codec {
        Codec::Proto => Bytes::copy_from_slice(message),
        Codec::Json => match (method.response_to_json)(message) {
            Ok(json) => Bytes::from(json),
            Err(why) => {
                tracing::error!(path = method.path, %why, "an answer that does not re-encode as JSON");
                return error(Code::Internal, "internal error", Vec::new(), None);
            }
        },
    };
    let mut out = http::Response::new(Body::new(http_body_util::Full::new(body)));
    out.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(codec.content_type()));
    metadata(&parts.headers, trailers.as_ref(), out.headers_mut());
    out
}

/// The one message of a unary gRPC answer's body.
pub(super) fn single_message(data: &[u8]) -> Result<&[u8], String> {
    if data.len() < 5 {
        return Err(format!("a body of {} bytes is not a framed message", data.len()));
    }
    if data[0] != 0 {
        return Err(format!("a message with flag {} (compressed?)", data[0]));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if data.len() != 5 + len {
        return Err(format!("a body of {} bytes around a message of {len}", data.len()));
    }
    Ok(&data[5..])
}

/// Custom metadata: leading as it is, trailing as `trailer-NAME` (the
/// protocol's unary form); gRPC's own headers stay behind.
pub(super) fn metadata(head: &http::HeaderMap, trailers: Option<&http::HeaderMap>, out: &mut http::HeaderMap) {
    let own = |n: &http::HeaderName| n.as_str().starts_with("grpc-") || matches!(n.as_str(), "content-type" | "content-length" | "te");
    for (n, v) in head.iter().filter(|(n, _)| !own(n)) {
        out.append(n.clone(), v.clone());
    }
    for (n, v) in trailers.into_iter().flatten().filter(|(n, _)| !own(n)) {
        if let Ok(name) = http::HeaderName::from_bytes(format!("trailer-{}", n.as_str()).as_bytes()) {
            out.append(name, v.clone());
        }
    }
}
