//! gRPC-Web, binary (`application/grpc-web+proto`) and text
//! (`application/grpc-web-text`, base64), on the one port, over HTTP/1.1 as
//! well as HTTP/2, so that a browser or any gRPC-Web client gets its answer
//! and its status.
//!
//! The protocol's translation is tonic-web's (the tonic project's own, at
//! tonic's version): a gRPC-Web request becomes a gRPC request, and the
//! answer's trailers become the trailer frame at the end of its body. This
//! layer is the outermost of the server's stack, so the translated request
//! passes the metrics, shedding, the gate and the wire-error mapping exactly
//! as a gRPC call does. Two things are added around tonic-web:
//!
//! - **Only gRPC-Web requests go through it.** tonic-web answers 400 to any
//!   other HTTP/1 request, which would take the web pages off HTTP/1.1; so
//!   a request is handed to it only when its content type says gRPC-Web.
//! - **Every answer ends with a trailer frame.** An error refused before any
//!   message (the gate's, the shedding's, a handler's) is a "trailers-only"
//!   gRPC answer, its status in the headers; tonic-web passes it on as it
//!   is. The status is moved into a trailer frame in the body, where every
//!   gRPC-Web client looks for it.
//!
//! No CORS: the committee's page calls from its own origin. A browser
//! application on another origin needs a proxy in front that answers its
//! preflight.

use base64::Engine;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct GrpcWebLayer;

impl<S> tower::Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;
    fn layer(&self, inner: S) -> GrpcWeb<S> {
        GrpcWeb { inner }
    }
}

#[derive(Clone)]
pub struct GrpcWeb<S> {
    inner: S,
}

/// Whether `req` speaks gRPC-Web (its content type, as tonic-web reads it).
fn is_grpc_web<B>(req: &http::Request<B>) -> bool {
    req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"))
}

/// The headers of a trailers-only answer that are its status: they go in
/// the trailer frame. (Every `grpc-` header of such an answer is a trailer.)
fn is_trailer(name: &http::HeaderName) -> bool {
    name.as_str().starts_with("grpc-")
}

/// A trailers-only gRPC-Web answer with its status moved into a trailer
/// frame (flag 0x80, length, `name:value\r\n` lines), base64 for the text
/// form; any other answer as it is.
fn with_trailer_frame(mut res: http::Response<Body>) -> http::Response<Body> {
    if !res.headers().contains_key("grpc-status") {
        return res;
    }
    let mut block = Vec::new();
    let trailers: Vec<(http::HeaderName, http::HeaderValue)> =
        res.headers().iter().filter(|(n, _)| is_trailer(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
    for (name, value) in &trailers {
        res.headers_mut().remove(name);
        block.extend_from_slice(name.as_str().as_bytes());
        block.push(b':');
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut frame = Vec::with_capacity(5 + block.len());
    frame.push(0x80);
    frame.extend_from_slice(&(block.len() as u32).to_be_bytes());
    frame.extend_from_slice(&block);
    let text = res.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web-text"));
    let body = if text { base64::engine::general_purpose::STANDARD.encode(&frame).into_bytes() } else { frame };
    res.headers_mut().remove(http::header::CONTENT_LENGTH);
    *res.body_mut() = Body::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    res
}

impl<S> tower::Service<http::Request<Body>> for GrpcWeb<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if !is_grpc_web(&req) {
            let mut inner = inner;
            return Box::pin(inner.call(req));
        }
        let mut web = tonic_web::GrpcWebLayer::new().layer(inner);
        let fut = tower::Service::call(&mut web, req);
        Box::pin(async move { Ok(with_trailer_frame(fut.await?)) })
    }
}
