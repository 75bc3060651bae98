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
//! - **Only protobuf.** `application/grpc+json`, `application/grpc-web+json`
//!   and any other codec but protobuf are answered UNIMPLEMENTED at once,
//!   in the protocol the client speaks (a gRPC-Web answer for gRPC-Web), as
//!   gRPC answers a codec it does not have; they are not run as protobuf.
//!   Content types that are not gRPC's at all pass on (to the Connect door
//!   and the pages, which answer 415 where they must).
//! - **Malformed text is the client's fault.** gRPC-Web text that is not
//!   base64 is INVALID_ARGUMENT (tonic-web says INTERNAL), so the client is
//!   told and `/metrics` counts a client error.
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
pub(crate) struct GrpcWebLayer;

impl<S> tower::Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;
    fn layer(&self, inner: S) -> GrpcWeb<S> {
        GrpcWeb { inner }
    }
}

#[derive(Clone)]
pub(crate) struct GrpcWeb<S> {
    inner: S,
}

/// Whether `req` speaks gRPC-Web (its content type, as tonic-web reads it).
fn is_grpc_web<B>(req: &http::Request<B>) -> bool {
    req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"))
}

/// The codec a gRPC or gRPC-Web content type names after `+`, when it names
/// one other than protobuf: `application/grpc+json` is `Some("json")`;
/// `application/grpc`, `application/grpc-web-text+proto` and any content
/// type not gRPC's are `None`.
fn other_codec<B>(req: &http::Request<B>) -> Option<String> {
    let value = req.headers().get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let codec =
        ["application/grpc-web-text+", "application/grpc-web+", "application/grpc+"].iter().find_map(|base| media.strip_prefix(base))?;
    (codec != "proto").then(|| codec.to_owned())
}

/// UNIMPLEMENTED for a codec this server does not speak, as a gRPC-Web
/// answer (its status in a trailer frame) for gRPC-Web, trailers-only for gRPC.
fn codec_refused<B>(req: &http::Request<B>, codec: &str) -> http::Response<Body> {
    let why = format!(
        "this server speaks gRPC in protobuf only: content type '{}' asks for the codec '{}'; send application/grpc (or application/grpc-web, application/grpc-web-text) with protobuf messages",
        crate::domain::text::shown(req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()),
        crate::domain::text::shown(codec),
    );
    let mut res = tonic::Status::unimplemented(why).into_http();
    if is_grpc_web(req) {
        let text = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web-text"));
        let answer = if text { "application/grpc-web-text+proto" } else { "application/grpc-web+proto" };
        res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(answer));
        return with_trailer_frame(res);
    }
    res
}

/// Whether tonic-web's error reading a request body is about the client's
/// bytes (base64 it cannot decode, a frame where none belongs) rather than
/// the connection: its messages, "tonic-web: " and then the base64
/// decoder's `Invalid …` or its own.
fn client_fault(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Internal
        && status
            .message()
            .strip_prefix("tonic-web: ")
            .is_some_and(|m| m.starts_with("Invalid") || m.starts_with("malformed base64") || m.starts_with("unexpected frame type"))
}

/// A gRPC-Web request's body, after tonic-web, whose client faults are
/// INVALID_ARGUMENT: the status the admission layer (`crate::shed`) answers
/// with when it reads the body, and tonic when it does (never-shed calls).
struct ClientFaults(Body);

impl http_body::Body for ClientFaults {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx).map_err(|e| {
            if client_fault(&e) {
                let detail = e.message().trim_start_matches("tonic-web: ");
                tonic::Status::invalid_argument(format!("the request's body is not gRPC-Web text: it is not base64 ({detail})"))
            } else {
                e
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The service tonic-web calls: the translated request, its body's client
/// faults named as the client's ([`ClientFaults`]).
#[derive(Clone)]
struct Translated<S>(S);

impl<S> tower::Service<http::Request<Body>> for Translated<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.0.call(req.map(|b| Body::new(ClientFaults(b))))
    }
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
        if let Some(codec) = other_codec(&req) {
            return Box::pin(std::future::ready(Ok(codec_refused(&req, &codec))));
        }
        if !is_grpc_web(&req) {
            let mut inner = inner;
            return Box::pin(inner.call(req));
        }
        let mut web = tonic_web::GrpcWebLayer::new().layer(Translated(inner));
        let fut = tower::Service::call(&mut web, req);
        Box::pin(async move { Ok(with_trailer_frame(fut.await?)) })
    }
}
