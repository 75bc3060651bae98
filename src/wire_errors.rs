//! The client's mistakes, named as the client's: tonic answers a request it
//! cannot decode with INTERNAL (prost's decode error) and one over the size
//! limit with OUT_OF_RANGE. gRPC's convention is INVALID_ARGUMENT and
//! RESOURCE_EXHAUSTED; this layer rewrites those answers, so that /metrics
//! counts them as client errors and callers can tell them from a server fault.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// The code a tonic-made error answer should have had, if it is one.
fn corrected(status: &[u8], message: &str) -> Option<(&'static str, &'static str)> {
    match status {
        b"13" if message.starts_with("failed to decode Protobuf message") => {
            Some(("3", "the request is not a valid protobuf message of this method's type"))
        }
        b"11" if message.starts_with("Error, decoded message length too large") => {
            Some(("8", "the request is larger than this server accepts"))
        }
        _ => None,
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for WireErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let h = res.headers();
            let message = h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let message = percent_decoded(message);
            if let Some((code, why)) = h.get("grpc-status").and_then(|s| corrected(s.as_bytes(), &message)) {
                let detail = format!("{why}: {message}");
                let h = res.headers_mut();
                h.insert("grpc-status", http::HeaderValue::from_static(code));
                if let Ok(v) = http::HeaderValue::from_str(&percent_encoded(&detail)) {
                    h.insert("grpc-message", v);
                }
            }
            Ok(res)
        })
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
