//! Connect's streaming form (`application/connect+proto`,
//! `application/connect+json`): enveloped messages both ways, and an
//! end-of-stream envelope (flag 0x02) carrying the status as JSON, the
//! HTTP status always 200.
//!
//! In binary, Connect's envelopes are gRPC's messages byte for byte (a
//! flag, a 4-byte length, the message), so the body passes as it is and
//! only the end differs. In JSON, the request's one envelope is read and
//! its message re-encoded in protobuf, and each answer message is
//! re-encoded in JSON as it comes ([`Reframe`]), nothing held but the
//! message being cut out.

use super::errors::{ConnectError, status_headers};
use super::method::{Codec, ConnectLayer, Method, bounded};
use super::unary::{accept_identity, as_grpc, connect_head, metadata, single_message};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;

/// A Connect binary streaming call as gRPC's: the body passes as it is.
pub(super) fn grpc_stream_request(req: http::Request<Body>) -> Result<http::Request<Body>, Box<http::Response<Body>>> {
    let (mut parts, body) = req.into_parts();
    let timeout = connect_head(&parts.headers, "connect-content-encoding").map_err(|(code, why)| refused(Codec::Proto, code, why))?;
    as_grpc(&mut parts.headers, timeout);
    Ok(http::Request::from_parts(parts, body))
}

/// The streaming answer to a refusal made before the call.
fn refused(codec: Codec, code: Code, why: String) -> Box<http::Response<Body>> {
    refused_with(codec, code, ConnectError::new(code, bounded(why)))
}

/// The streaming answer to `error`, a refusal made before the call.
fn refused_with(codec: Codec, code: Code, error: ConnectError) -> Box<http::Response<Body>> {
    let end = end_stream(&serde_json::json!({ "error": error.json() }));
    let mut res = Box::new(stream_answer(http::HeaderMap::new(), Body::empty(), Some(end), codec, None));
    accept_identity(code, &mut res, "connect-accept-encoding");
    res
}

/// A JSON stream to a method this server does not serve over Connect.
pub(super) fn unknown_stream(path: &str) -> Box<http::Response<Body>> {
    let shown = crate::domain::text::shown(path);
    refused(Codec::Json, Code::Unimplemented, format!("{shown} is not a streaming method served here over Connect in JSON"))
}

/// A Connect JSON streaming call (server streaming: one request envelope)
/// as gRPC's: the envelope read within the body's bound and time, its
/// message re-encoded in protobuf.
pub(super) async fn grpc_json_stream_request(
    req: http::Request<Body>,
    method: &Method,
    layer: &ConnectLayer,
) -> Result<http::Request<Body>, Box<http::Response<Body>>> {
    let (mut parts, body) = req.into_parts();
    let refuse = |code: Code, why: String| refused(Codec::Json, code, why);
    let timeout = connect_head(&parts.headers, "connect-content-encoding").map_err(|(code, why)| refuse(code, why))?;
    let read =
        tokio::time::timeout(layer.body_timeout, http_body_util::Limited::new(body, crate::shed::MAX_BODY_BYTES - 5).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            layer.metrics.denied("body_too_large");
            return Err(refuse(
                Code::ResourceExhausted,
                format!("the request's body is larger than {} bytes", crate::shed::MAX_BODY_BYTES - 5),
            ));
        }
        Ok(Err(e)) => return Err(refuse(Code::Cancelled, format!("the request's body could not be read: {e}"))),
        Err(_) => {
            layer.metrics.denied("body_timeout");
            let why = format!("the request's body did not arrive within {} ms of its headers", layer.body_timeout.as_millis());
            let error = ConnectError::retry(Code::ResourceExhausted, &why, crate::shed::RETRY_AFTER);
            return Err(refused_with(Codec::Json, Code::ResourceExhausted, error));
        }
    };
    let json = single_message(&bytes).map_err(|why| {
        refuse(Code::InvalidArgument, format!("invalid request: the body is not one Connect envelope around a JSON message: {why}"))
    })?;
    let message = (method.request_from_json)(json).map_err(|bad| {
        let why = match bad.at.as_str() {
            "" => format!("invalid request: the message is not this method's request in JSON: {}", bad.why),
            at => format!("invalid request: {at}: {}", bad.why),
        };
        refuse(Code::InvalidArgument, why)
    })?;
    as_grpc(&mut parts.headers, timeout);
    Ok(http::Request::from_parts(parts, Body::new(http_body_util::Full::new(Bytes::from(envelope(0, &message))))))
}

/// The Connect streaming answer to a gRPC answer: always HTTP 200, the
/// messages as they come (in JSON through `to_json`), then the
/// end-of-stream envelope with the status (from the trailers, or from the
/// head of a trailers-only answer).
pub(super) fn connect_stream_response(res: http::Response<Body>, codec: Codec, to_json: Option<ToJson>) -> http::Response<Body> {
    let (parts, body) = res.into_parts();
    let head_status = parts.headers.contains_key("grpc-status").then(|| end_of(&parts.headers));
    let mut head = http::HeaderMap::new();
    metadata(&parts.headers, None, &mut head);
    stream_answer(head, body, head_status, codec, to_json)
}

/// A response message's protobuf encoding to its JSON.
pub(super) type ToJson = fn(&[u8]) -> Result<Vec<u8>, String>;

fn stream_answer(head: http::HeaderMap, body: Body, ended: Option<Bytes>, codec: Codec, to_json: Option<ToJson>) -> http::Response<Body> {
    let reframe = to_json.map(|to_json| Reframe { to_json, pending: bytes::BytesMut::new() });
    let mut res = http::Response::new(Body::new(EndStream { inner: body, ended, done: false, reframe }));
    *res.headers_mut() = head;
    let content_type = match codec {
        Codec::Json => "application/connect+json",
        Codec::Proto => "application/connect+proto",
    };
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    res
}

/// The end-of-stream envelope for gRPC's status headers (or trailers).
fn end_of(h: &http::HeaderMap) -> Bytes {
    match ConnectError::from_grpc(h, None) {
        None => end_stream(&serde_json::json!({})),
        Some(e) => end_stream(&serde_json::json!({ "error": e.json() })),
    }
}

/// Flag 0x02 (end of stream), the length, the JSON.
fn end_stream(json: &serde_json::Value) -> Bytes {
    Bytes::from(envelope(0x02, json.to_string().as_bytes()))
}

/// An envelope: the flag, the length (4 bytes, big-endian), the message.
fn envelope(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flag);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// gRPC messages cut out of a body's data frames, however they fall, and
/// re-encoded in JSON.
struct Reframe {
    to_json: ToJson,
    pending: bytes::BytesMut,
}

impl Reframe {
    /// The envelopes of every whole message now pending, in JSON.
    fn take(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while self.pending.len() >= 5 {
            let len = u32::from_be_bytes([self.pending[1], self.pending[2], self.pending[3], self.pending[4]]) as usize;
            if self.pending.len() < 5 + len {
                break;
            }
            let frame = self.pending.split_to(5 + len);
            if frame[0] != 0 {
                return Err(format!("a message with flag {} (compressed?)", frame[0]));
            }
            out.extend_from_slice(&envelope(0, &(self.to_json)(&frame[5..])?));
        }
        Ok(out)
    }
}

/// A gRPC answer's body as Connect's: messages pass (re-encoded when
/// JSON); the trailers become the end-of-stream envelope.
struct EndStream {
    inner: Body,
    /// The end already known (a trailers-only answer, a refusal).
    ended: Option<Bytes>,
    done: bool,
    reframe: Option<Reframe>,
}

impl http_body::Body for EndStream {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(end) = self.ended.take() {
            self.done = true;
            return Poll::Ready(Some(Ok(http_body::Frame::data(end))));
        }
        loop {
            let end = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match &mut self.reframe {
                        None => return Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                        Some(reframe) => {
                            reframe.pending.extend_from_slice(&data);
                            match reframe.take() {
                                Ok(out) if out.is_empty() => continue,
                                Ok(out) => return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(out))))),
                                Err(why) => {
                                    tracing::error!(%why, "a streamed answer that does not re-encode as JSON");
                                    let e = ConnectError::new(Code::Internal, "internal error".into());
                                    end_stream(&serde_json::json!({ "error": e.json() }))
                                }
                            }
                        }
                    },
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => end_of(&trailers),
                        Err(_) => continue,
                    },
                },
                Some(Err(status)) => end_of(&status_headers(&status)),
                None => {
                    let e = ConnectError::new(Code::Internal, "the answer ended without a status".into());
                    end_stream(&serde_json::json!({ "error": e.json() }))
                }
            };
            self.done = true;
            return Poll::Ready(Some(Ok(http_body::Frame::data(end))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_json(proto: &[u8]) -> Result<Vec<u8>, String> {
        Ok(format!("{{\"n\":{}}}", proto.len()).into_bytes())
    }

    #[test]
    fn json_reframing_cuts_whole_messages_however_the_frames_fall() {
        let mut body = envelope(0, b"abc");
        body.extend(envelope(0, b"hello"));
        let mut reframe = Reframe { to_json, pending: bytes::BytesMut::new() };
        let mut out = Vec::new();
        // One byte at a time: nothing comes out before a message is whole.
        for byte in &body {
            reframe.pending.extend_from_slice(&[*byte]);
            out.extend(reframe.take().unwrap());
        }
        let mut expected = envelope(0, b"{\"n\":3}");
        expected.extend(envelope(0, b"{\"n\":5}"));
        assert_eq!(out, expected);
        assert!(reframe.pending.is_empty());
        reframe.pending.extend_from_slice(&envelope(1, b"zz"));
        assert!(reframe.take().unwrap_err().contains("flag 1"));
        assert_eq!(&end_stream(&serde_json::json!({}))[..], &[2, 0, 0, 0, 2, b'{', b'}']);
    }
}
