//! gRPC health over Connect: `grpc.health.v1.Health/Check` is a unary RPC
//! like the API's, so an HTTP load balancer's JSON probe gets
//! `{"status":"SERVING"}` (or `NOT_SERVING`, or `not_found` for a service
//! it does not know) from the same health the gRPC probe reads. `Watch`
//! streams, in Connect's streaming form. The health service's messages
//! come from tonic-health without a JSON mapping; theirs is written here
//! (one string field one way, one enum the other).

use super::method::{BadJson, Method};
use prost::Message;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus};

/// The health service's two methods.
pub(super) const HEALTH: &[Method] = &[
    Method { path: "/grpc.health.v1.Health/Check", streams: false, request_from_json, response_to_json },
    Method { path: "/grpc.health.v1.Health/Watch", streams: true, request_from_json, response_to_json },
];

/// `{"service": "…"}`, the field optional (and `null` its default).
fn request_from_json(json: &[u8]) -> Result<Vec<u8>, BadJson> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[serde(default)]
        service: Option<String>,
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let request: Request = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        BadJson { at: if at == "." { String::new() } else { at }, why: e.into_inner().to_string() }
    })?;
    de.end().map_err(|e| BadJson { at: String::new(), why: e.to_string() })?;
    Ok(HealthCheckRequest { service: request.service.unwrap_or_default() }.encode_to_vec())
}

/// `{"status": "SERVING"}`: the enum by its name, as protobuf's JSON writes it.
fn response_to_json(proto: &[u8]) -> Result<Vec<u8>, String> {
    let response = HealthCheckResponse::decode(proto).map_err(|e| e.to_string())?;
    let status = ServingStatus::try_from(response.status).map_err(|e| e.to_string())?;
    serde_json::to_vec(&serde_json::json!({ "status": status.as_str_name() })).map_err(|e| e.to_string())
}
