//! Holding up under hostile input: bounded error details, decode failures
//! named as the client's, one time range for every timestamp.

use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use tonic::Code;

#[tokio::test]
async fn ten_thousand_bad_records_fit_in_a_trailer_every_client_accepts() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let records = (0..10_000).map(|i| to_proto(evaluation_json(&format!("e{i}"), "91440300192317458X", json!({})))).collect();
    let status = server.credit_data().await.put_records(pb::PutRecordsRequest { records, source: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // grpc-status-details-bin goes base64 in a header: grpcio refuses over 16 KiB, warns over 8.
    assert!(status.details().len() * 4 / 3 < 8 * 1024, "{} bytes of details", status.details().len());
    let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
    let v = &details.field_violations;
    assert_eq!(v[0].field, "records[0].credit_code");
    let last = v.last().unwrap();
    assert_eq!(last.field, "…");
    assert!(last.description.starts_with(&format!("{} more problem(s) not listed here", 10_000 - (v.len() - 1))), "{}", last.description);
}

/// Sends raw bytes as a unary request body, as a broken or hostile client would.
mod raw {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::Status;

    #[derive(Default)]
    pub struct Raw;
    pub struct RawEncoder;
    pub struct Ignore;

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            use bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Ignore {
        type Item = ();
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
            use bytes::Buf;
            src.advance(src.remaining());
            Ok(Some(()))
        }
    }

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ();
        type Encoder = RawEncoder;
        type Decoder = Ignore;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> Ignore {
            Ignore
        }
    }

    pub async fn call(channel: tonic::transport::Channel, path: &'static str, body: Vec<u8>) -> Result<(), Status> {
        let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
        grpc.ready().await.map_err(|e| Status::unknown(e.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        grpc.unary(tonic::Request::new(body), path, Raw).await.map(|_| ())
    }
}

#[tokio::test]
async fn undecodable_and_oversized_requests_are_the_clients_errors() {
    let db = sqlite_db();
    let server = spawn_app(open(&db).await, AppOptions::default()).await;
    let put = "/credit_tender.v1.CreditDataService/PutRecords";
    // Field 1 (records) as a length-delimited field whose length runs past the end.
    let garbage = vec![0x0a, 0xff, 0xff, 0x01, 0x00];
    let status = raw::call(server.channel().await, put, garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not a valid protobuf message"), "{}", status.message());
    // Field 2 (source) with invalid UTF-8.
    let bad_utf8 = vec![0x12, 0x02, 0xff, 0xfe];
    let status = raw::call(server.channel().await, put, bad_utf8).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let big = vec![0x12, 0x80, 0x80, 0x80, 0x09].into_iter().chain(std::iter::repeat_n(b'x', 18 << 20)).collect();
    let status = raw::call(server.channel().await, put, big).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let metrics = crate::cache::scrape(server.addr).await;
    assert!(metrics.contains("code=\"INVALID_ARGUMENT\""), "counted as client errors: {metrics}");
    assert!(!metrics.contains("code=\"INTERNAL\""), "{metrics}");
}
