//! The client's mistakes, named as the client's: tonic answers a request it
//! cannot decode with INTERNAL (prost's decode error) and one over the size
//! limit with OUT_OF_RANGE. gRPC's convention is INVALID_ARGUMENT and
//! RESOURCE_EXHAUSTED; this layer rewrites those answers, so that /metrics
//! counts them as client errors and callers can tell them from a server fault.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;

#[derive(Clone, Copy, Default)]
pub struct WireErrorsLayer;

impl<S> tower::Layer<S> for WireErrorsLayer {
    type Service = WireErrors<S>;
    fn layer(&self, inner: S) -> WireErrors<S> {
        WireErrors { inner }
    }
}

#[derive(Clone)]
pub struct WireErrors<S> {
    inner: S,
}

/// The code and message a tonic-made error answer should have had, if it
/// is one: a request that cannot be decoded is the client's mistake.
fn corrected(status: &[u8], message: &str) -> Option<(&'static str, String)> {
    let not_protobuf = "the request is not a valid protobuf message of this method's type";
    match status {
        b"13" if message.starts_with("failed to decode Protobuf message") => Some(("3", format!("{not_protobuf}{}", prost_detail(message)))),
        b"13" if message.starts_with("Unexpected EOF decoding stream") => {
            Some(("3", format!("{not_protobuf}: it ends inside a message (the length prefix promises more bytes than came)")))
        }
        b"13" if message.starts_with("Missing request message") => {
            Some(("3", "the request has no message: this method takes exactly one".to_owned()))
        }
        b"13" if message.starts_with("protocol error: received message with invalid compression flag") => {
            Some(("3", format!("{not_protobuf}: a message's first byte (its compression flag) must be 0 or 1")))
        }
        b"11" if message.starts_with("Error, decoded message length too large") => {
            Some(("8", format!("the request is larger than this server accepts: {message}")))
        }
        _ => None,
    }
}

/// prost's reason, in words: where in the message (its field path) and
/// what, without Rust's names for wire types.
fn prost_detail(message: &str) -> String {
    let rest = message.trim_start_matches("failed to decode Protobuf message").trim_start_matches(':').trim();
    let mut fields = Vec::new();
    let mut reason = rest;
    while let Some((head, tail)) = reason.split_once(": ") {
        if head.contains('.') && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            fields.push(head);
            reason = tail;
        } else {
            break;
        }
    }
    let reason = if reason.starts_with("invalid wire type") {
        "a field has the wrong wire type"
    } else if reason.starts_with("invalid string value") {
        "a string field is not UTF-8"
    } else if reason.starts_with("buffer underflow") || reason.starts_with("invalid varint") || reason.starts_with("delimited length exceeded") {
        "it ends inside a field"
    } else if reason.is_empty() {
        return String::new();
    } else {
        reason
    };
    match fields.last() {
        Some(at) => format!(": at {at}, {reason}"),
        None => format!(": {reason}"),
    }
}

impl<S, B> tower::Service<http::Request<B>> for WireErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            // A trailers-only answer (a unary call refused before its handler).
            if fix(res.headers_mut()) {
                return Ok(res);
            }
            // A stream refused mid-way (reflection's, a client stream): the
            // status comes in the trailers.
            let grpc = res.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            if grpc && !res.headers().contains_key("grpc-status") {
                return Ok(res.map(|body| Body::new(FixTrailers { inner: body })));
            }
            Ok(res)
        })
    }
}

/// Rewrites a tonic-made status in `h` (headers or trailers); whether it was one.
fn fix(h: &mut http::HeaderMap) -> bool {
    let message = h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let message = percent_decoded(message);
    let Some((code, detail)) = h.get("grpc-status").and_then(|s| corrected(s.as_bytes(), &message)) else {
        return false;
    };
    h.insert("grpc-status", http::HeaderValue::from_static(code));
    if let Ok(v) = http::HeaderValue::from_str(&percent_encoded(&detail)) {
        h.insert("grpc-message", v);
    }
    true
}

/// A response body whose trailers pass through [`fix`].
struct FixTrailers {
    inner: Body,
}

impl http_body::Body for FixTrailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    fix(&mut trailers);
                    http_body::Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"): bytes
/// outside printable ASCII, and '%' itself.
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn percent_encoded(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, GRPC_MESSAGE).to_string()
}
