//! What the Connect door's files share: the method table's entry, the
//! JSON both ways, the content types a call may ask for, the layer's
//! settings, and a refusal before a call becomes gRPC.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tonic::body::Body;
use tonic::codegen::http;

/// One RPC as the Connect door serves it.
pub(crate) struct Method {
    /// `/package.Service/Method`.
    pub(crate) path: &'static str,
    /// Client or server streaming: not served as unary.
    pub(crate) streams: bool,
    /// The request's JSON to its protobuf encoding.
    pub(crate) request_from_json: fn(&[u8]) -> Result<Vec<u8>, BadJson>,
    /// The response's protobuf encoding to its JSON.
    pub(crate) response_to_json: fn(&[u8]) -> Result<Vec<u8>, String>,
}

/// Why a request's JSON is not a message of its method's type: where
/// (a JSON path such as `bidder.creditCodes[0]`, empty for the whole) and what.
#[derive(Debug)]
pub(crate) struct BadJson {
    pub(super) at: String,
    pub(super) why: String,
}

pub(super) fn from_json<T: serde::de::DeserializeOwned + prost::Message>(json: &[u8]) -> Result<Vec<u8>, BadJson> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let message: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        BadJson { at: if at == "." { String::new() } else { at }, why: e.into_inner().to_string() }
    })?;
    de.end().map_err(|e| BadJson { at: String::new(), why: e.to_string() })?;
    Ok(message.encode_to_vec())
}

pub(super) fn to_json<T: serde::Serialize + prost::Message + Default>(proto: &[u8]) -> Result<Vec<u8>, String> {
    let message = T::decode(proto).map_err(|e| e.to_string())?;
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

/// A message cut to [`MAX_MESSAGE_CHARS`] characters: serde's reasons echo
/// the value they refuse.
pub(super) fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message,
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}

pub(super) const MAX_MESSAGE_CHARS: usize = 512;

/// The two codecs of a unary Connect call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Codec {
    Json,
    Proto,
}

impl Codec {
    pub(super) fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }
}

/// What a POST to an RPC's path asks for, by its content type.
pub(super) enum Wants {
    /// gRPC or gRPC-Web: not ours.
    Grpc,
    Connect(Codec),
    /// Connect's streaming form.
    Stream(Codec),
    /// Anything else: 415.
    Unsupported(String),
}

pub(super) fn wants(headers: &http::HeaderMap) -> Wants {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else { return Wants::Unsupported("(none)".into()) };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        m if m.starts_with("application/grpc") => Wants::Grpc,
        "application/json" => Wants::Connect(Codec::Json),
        "application/proto" => Wants::Connect(Codec::Proto),
        "application/connect+proto" => Wants::Stream(Codec::Proto),
        "application/connect+json" => Wants::Stream(Codec::Json),
        _ => Wants::Unsupported(format!("'{}'", crate::domain::text::shown(&text))),
    }
}

/// What the Connect door is told by the server's options.
#[derive(Clone)]
pub(crate) struct ConnectLayer {
    pub(super) metrics: Arc<Metrics>,
    pub(super) body_timeout: Duration,
}

impl ConnectLayer {
    pub(crate) fn new(metrics: Arc<Metrics>, body_timeout: Duration) -> ConnectLayer {
        ConnectLayer { metrics, body_timeout }
    }
}

/// A Connect call refused before it became a gRPC call.
pub(super) struct Refused {
    pub(super) response: http::Response<Body>,
    /// The code it is counted under in the method's requests, if it is.
    pub(super) counted: Option<&'static str>,
}
