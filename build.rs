//! Compiles the public API in `proto/` without a system `protoc`: protox parses
//! the files, tonic-prost-build generates messages and services, pbjson-build
//! generates protobuf's canonical JSON mapping (used for signed statements and
//! for `--json` output), and the descriptor set is kept for server reflection.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/credit_tender/v1/records.proto",
    "proto/credit_tender/v1/credit_data.proto",
    "proto/credit_tender/v1/signing.proto",
    "proto/credit_tender/v1/tenders.proto",
    "proto/credit_tender/v1/assessment.proto",
    "proto/credit_tender/v1/log.proto",
    "proto/credit_tender/v1/supervision.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    let bytes = fds.encode_to_vec();
    fs::write(out.join("credit_tender_descriptor.bin"), &bytes)?;

    tonic_prost_build::configure()
        // bytes fields (DSSE payloads, signatures) as refcounted `Bytes`: a
        // cached envelope is shared, not copied, on every response.
        .bytes(".")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&bytes)?
        // Write every field, defaults included: a signed statement must say
        // `"eligible": false` rather than leave it to the reader to infer.
        .emit_fields()
        .build(&[".credit_tender"])?;
    Ok(())
}
