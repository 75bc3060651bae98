//! The generated API of `proto/credit_tender/v1`, with protobuf's JSON mapping.

#![allow(missing_docs, clippy::all, unreachable_pub)]

pub mod v1 {
    tonic::include_proto!("credit_tender.v1");
    include!(concat!(env!("OUT_DIR"), "/credit_tender.v1.serde.rs"));
}

/// The encoded FileDescriptorSet, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/credit_tender_descriptor.bin"));
