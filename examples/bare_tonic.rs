//! The stack's own limit for a cached Assess: a bare tonic server that
//! serves `credit_tender.v1.AssessmentService/Assess` (the request decoded
//! by prost, as the real server does) and answers with one fixed, already
//! encoded `AssessResponse` held in memory, plus grpc.health.v1. No store,
//! no cache, no layers: what a cached Assess could cost at best.
//!
//! ```sh
//! cargo build --release --example bare_tonic
//! target/release/examples/bare_tonic --listen 127.0.0.1:50200 --answer answer.bin
//! ```
//! `--answer` is a file holding an encoded answer (loadgen's `assess-bare`
//! scenario fetches a cached answer from the server it measures and starts
//! this program with it, so both answer the same bytes); without it the
//! answer is an `AssessResponse` of `--bytes` bytes whose envelope payload
//! is filler. The first line on stdout is the address listened on.

use clap::Parser;
use credit_tender::proto::v1 as pb;
use prost::Message;
use prost::bytes::{BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50200")]
    listen: std::net::SocketAddr,
    /// A file holding the encoded AssessResponse to answer with.
    #[arg(long, value_name = "FILE")]
    answer: Option<std::path::PathBuf>,
    /// Without --answer: the size of the synthetic answer, in bytes.
    #[arg(long, default_value_t = 2_538)]
    bytes: usize,
}

/// A synthetic answer of exactly `size` encoded bytes (at least a few):
/// the envelope's payload grown until the whole message has that size.
fn synthetic(size: usize) -> Bytes {
    let mut payload = 0;
    loop {
        let answer = pb::AssessResponse {
            envelope: Some(pb::Envelope {
                payload_type: "application/vnd.credit-tender.assessment.v1+json".into(),
                payload: vec![b'x'; payload].into(),
                signatures: vec![],
            }),
            statement: None,
            log_index: Some(1),
        };
        // Varint lengths grow in steps, so a size may be skipped: take the
        // first answer at least as large.
        if answer.encoded_len() >= size {
            return answer.encode_to_vec().into();
        }
        payload += 1;
    }
}

/// The codec: requests decoded by prost, the answer written as it is.
#[derive(Default)]
struct Fixed;

struct Write;

struct Read;

impl Codec for Fixed {
    type Encode = Bytes;
    type Decode = pb::AssessRequest;
    type Encoder = Write;
    type Decoder = Read;
    fn encoder(&mut self) -> Write {
        Write
    }
    fn decoder(&mut self) -> Read {
        Read
    }
}

impl Encoder for Write {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Read {
    type Item = pb::AssessRequest;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::AssessRequest>, Status> {
        pb::AssessRequest::decode(src).map(Some).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

struct Answer(Bytes);

impl tonic::server::UnaryService<pb::AssessRequest> for Answer {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, _: Request<pb::AssessRequest>) -> Self::Future {
        std::future::ready(Ok(Response::new(self.0.clone())))
    }
}

/// `AssessmentService` with Assess only; any other method is UNIMPLEMENTED.
#[derive(Clone)]
struct Bare(Bytes);

impl tonic::server::NamedService for Bare {
    const NAME: &'static str = "credit_tender.v1.AssessmentService";
}

impl<B> tower::Service<tonic::codegen::http::Request<B>> for Bare
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let answer = self.0.clone();
        if req.uri().path() != "/credit_tender.v1.AssessmentService/Assess" {
            return Box::pin(async { Ok(Status::unimplemented("bare_tonic answers Assess only").into_http()) });
        }
        Box::pin(async move { Ok(tonic::server::Grpc::new(Fixed).unary(Answer(answer), req).await) })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let answer: Bytes = match &args.answer {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            pb::AssessResponse::decode(bytes.as_slice()).map_err(|e| format!("{}: not an encoded AssessResponse: {e}", path.display()))?;
            bytes.into()
        }
        None => synthetic(args.bytes),
    };
    // TCP_NODELAY, as the real server's listener sets it.
    let incoming = tonic::transport::server::TcpIncoming::bind(args.listen)?.with_nodelay(Some(true));
    // The address first, alone on its line: loadgen reads it.
    println!("{}", incoming.local_addr()?);
    eprintln!("bare_tonic: answering Assess with {} bytes", answer.len());
    let (_health, health_service) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder().add_service(health_service).add_service(Bare(answer)).serve_with_incoming(incoming).await?;
    Ok(())
}
