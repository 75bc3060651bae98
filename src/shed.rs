//! Load shedding: at most `max_in_flight` requests are served at once,
//! process-wide; one more is answered RESOURCE_EXHAUSTED at once (429 on
//! pages) instead of queueing, so the admitted ones keep their latency and
//! the server recovers the moment load drops. A request holds its slot until
//! its response body ends, so a long stream counts for its whole life.

use crate::metrics::Metrics;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;

#[derive(Clone)]
pub struct ShedLayer {
    slots: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
}

impl ShedLayer {
    pub fn new(max_in_flight: usize, metrics: Arc<Metrics>) -> ShedLayer {
        ShedLayer { slots: Arc::new(Semaphore::new(max_in_flight)), limit: max_in_flight, metrics }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    layer: ShedLayer,
}

/// A response body that gives its slot back when it ends or is dropped.
struct Slotted {
    inner: Body,
    _slot: OwnedSemaphorePermit,
}

impl http_body::Body for Slotted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S, B> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Ok(slot) = self.layer.slots.clone().try_acquire_owned() else {
            self.layer.metrics.denied("shed");
            let grpc = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let why = format!("the server is at its limit of {} requests in flight; retry shortly", self.layer.limit);
            let response = if grpc {
                let mut s = tonic::Status::resource_exhausted(why);
                s.metadata_mut().insert("grpc-retry-pushback-ms", tonic::metadata::MetadataValue::from_static("100"));
                s.into_http()
            } else {
                let mut r = http::Response::new(Body::new(why));
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                r
            };
            return Box::pin(async move { Ok(response) });
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|inner| Body::new(Slotted { inner, _slot: slot })))
        })
    }
}
