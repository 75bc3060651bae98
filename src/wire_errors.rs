//! The client's mistakes, named as the client's: tonic answers a request it
//! cannot decode with INTERNAL (prost's decode error) and one over the size
//! limit with OUT_OF_RANGE. gRPC's convention is INVALID_ARGUMENT and
//! RESOURCE_EXHAUSTED; this layer rewrites those answers, so that /metrics
//! counts them as client errors and callers can tell them from a server fault.
//! It does so for a stream's trailers as well as for a trailers-only answer,
//! for a message cut short or missing, and for reflection's stream, which
//! ends quietly on a message it cannot decode (its messages are checked on
//! their way in).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;

#[derive(Clone, Copy, Default)]
pub(crate) struct WireErrorsLayer;

impl<S> tower::Layer<S> for WireErrorsLayer {
    type Service = WireErrors<S>;
    fn layer(&self, inner: S) -> WireErrors<S> {
        WireErrors { inner }
    }
}

#[derive(Clone)]
pub(crate) struct WireErrors<S> {
    inner: S,
}

/// The code and message a tonic-made error answer should have had, if it
/// is one: a request that cannot be decoded is the client's mistake.
fn corrected(status: &[u8], message: &str) -> Option<(&'static str, String)> {
    let not_protobuf = "the request is not a valid protobuf message of this method's type";
    match status {
        b"13" if message.starts_with("failed to decode Protobuf message") => {
            Some(("3", format!("{not_protobuf}{}", prost_detail(message))))
        }
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
    } else if reason.starts_with("buffer underflow")
        || reason.starts_with("invalid varint")
        || reason.starts_with("delimited length exceeded")
    {
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

impl<S> tower::Service<http::Request<Body>> for WireErrors<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Reflection's stream ends quietly (OK, no answer) on a message it
        // cannot decode: its messages are checked here on their way in, and
        // the stream's status says what was wrong with them.
        let checked = req.uri().path().starts_with("/grpc.reflection.").then(|| Arc::new(Mutex::new(None)));
        let req = match &checked {
            Some(fault) => req.map(|body| Body::new(CheckFrames { inner: body, buf: Vec::new(), fault: fault.clone() })),
            None => req,
        };
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
                return Ok(res.map(|body| Body::new(FixTrailers { inner: body, fault: checked })));
            }
            Ok(res)
        })
    }
}

/// What was wrong with a checked request's messages, if anything.
type Fault = Arc<Mutex<Option<String>>>;

/// A request body passed through unchanged, whose gRPC messages are decoded
/// as reflection requests on the way: the first that does not decode, or
/// a body that ends inside a message, is noted in `fault`.
struct CheckFrames {
    inner: Body,
    buf: Vec<u8>,
    fault: Fault,
}

impl CheckFrames {
    fn note(&self, why: String) {
        self.fault.lock().expect("fault lock").get_or_insert(why);
    }

    /// Checks every whole message in `buf`, keeping a partial one.
    fn check(&mut self) {
        use prost::Message;
        while self.buf.len() >= 5 {
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if self.buf.len() < 5 + len {
                return;
            }
            let why = match self.buf[0] {
                0 => tonic_reflection::pb::v1::ServerReflectionRequest::decode(&self.buf[5..5 + len])
                    .err()
                    .map(|e| format!("the request is not a valid protobuf message of this method's type{}", prost_detail(&e.to_string()))),
                // Compressed: tonic decompresses and decodes it.
                1 => None,
                _ => Some("the request is not a valid protobuf message of this method's type: a message's first byte (its compression flag) must be 0 or 1".to_owned()),
            };
            if let Some(why) = why {
                self.note(why);
            }
            self.buf.drain(..5 + len);
        }
    }
}

impl http_body::Body for CheckFrames {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.buf.extend_from_slice(data);
                    self.check();
                }
            }
            Poll::Ready(None) if !self.buf.is_empty() => {
                self.note("the request is not a valid protobuf message of this method's type: it ends inside a message (the length prefix promises more bytes than came)".into());
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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

/// A response body whose trailers pass through [`fix`], and, for a checked
/// request, say what was wrong with its messages instead of OK.
struct FixTrailers {
    inner: Body,
    fault: Option<Fault>,
}

impl http_body::Body for FixTrailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    let fault = self.fault.as_ref().and_then(|f| f.lock().expect("fault lock").clone());
                    match fault {
                        Some(why) if trailers.get("grpc-status").is_none_or(|s| s.as_bytes() == b"0") => {
                            trailers.insert("grpc-status", http::HeaderValue::from_static("3"));
                            if let Ok(v) = http::HeaderValue::from_str(&percent_encoded(&why)) {
                                trailers.insert("grpc-message", v);
                            }
                        }
                        _ => {
                            fix(&mut trailers);
                        }
                    }
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
