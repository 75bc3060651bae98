//! The generated API of `proto/credit_tender/v1`, with protobuf's JSON mapping.

#![allow(missing_docs, clippy::all, unreachable_pub)]

pub mod v1 {
    tonic::include_proto!("credit_tender.v1");
    include!(concat!(env!("OUT_DIR"), "/credit_tender.v1.serde.rs"));
}

/// The encoded FileDescriptorSet, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/credit_tender_descriptor.bin"));

/// For clients: sends `authorization: Bearer TOKEN` with every call, or
/// nothing when built without a token.
///
/// ```no_run
/// # async fn f(channel: tonic::transport::Channel) -> Result<(), Box<dyn std::error::Error>> {
/// use credit_tender::proto::{v1::tender_service_client::TenderServiceClient, Bearer};
/// let mut tenders = TenderServiceClient::with_interceptor(channel, Bearer::new(Some("ct_…"))?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// Refuses a token that cannot be a header value.
    pub fn new(token: Option<&str>) -> Result<Bearer, tonic::metadata::errors::InvalidMetadataValue> {
        token.map(|t| format!("Bearer {t}").parse()).transpose().map(Bearer)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}
