//! Admission control: a request that has already waited too long is refused
//! before any work is done for it, so the requests that are admitted keep
//! their latency under overload, and the server recovers the moment load
//! drops.
//!
//! **What is measured.** Each request is stamped when hyper hands it to the
//! service stack (the connection's task has just read its frames) and its
//! wait is taken when its own task first runs: that is the time it spent in
//! the runtime's run queue behind other work, which is where requests queue
//! when the process is short of CPU. A count of requests in flight at this
//! layer misses that queue (a cached answer holds a slot for microseconds),
//! which is why the old in-flight limit alone shed almost nothing while
//! latency grew (BENCHMARKS.md, "Overload").
//!
//! **When a request is refused**: when it has waited longer than
//! `queue_target` (5 ms by default) by the time its task first runs. A
//! deadline on the wait, not CoDel's "standing queue" test (RFC 8289: the
//! shortest wait of an interval above the target): tokio runs the task
//! woken last next (its LIFO slot, by design), so one request of each
//! batch a connection reads would wait almost nothing however long the
//! others wait, and the shortest wait of an interval would stay near zero
//! under any load. A burst whose tail would wait past the target
//! has that tail refused; the operator sets the target above the bursts
//! the service should absorb.
//!
//! **Hard ceiling.** Beside the wait, at most `max_in_flight` requests are
//! served at once, process-wide (a request holds its slot until its
//! response body ends, so a long stream counts for its whole life); one more
//! is refused at once. This bounds the memory and store connections that
//! slow calls (store reads, large tables) can tie up.
//!
//! **Never shed**: health checks, `/metrics` and the public keys
//! ([`never_shed`]): an orchestrator must be able to see an overloaded
//! server, and verifiers must be able to fetch keys.
//!
//! A refusal is RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail and
//! `grpc-retry-pushback-ms` (503 with Retry-After on pages), sent before the
//! gate and the handlers run: nothing is read, evaluated, signed or logged
//! for a refused request.

use crate::metrics::Metrics;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;

/// The wait past which a request is refused (`--queue-target-ms`): CoDel's
/// target (RFC 8289 §4.4), ten times the p99 of a store read here.
pub const DEFAULT_QUEUE_TARGET: Duration = Duration::from_millis(5);

/// What a refused client is told to wait before retrying (RetryInfo and
/// `grpc-retry-pushback-ms`): CoDel's interval (RFC 8289 §4.5), long
/// enough for a queue of a few thousand requests to drain.
pub const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Requests served at once, process-wide (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Test-only request header (honoured only with
/// `ServerOptions::queue_wait_test_hook`): milliseconds added to the
/// request's measured wait, so that tests inject a wait instead of sleeping.
pub const TEST_WAIT_HEADER: &str = "x-credit-tender-test-queue-wait-ms";

/// Paths that are never shed: gRPC health (Check and Watch), the key
/// listing (gRPC `ListKeys` and `/api/keys`) and `/metrics`.
pub fn never_shed(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/credit_tender.v1.KeyService/")
        || path == "/metrics"
        || path == "/api/keys"
}

/// What admission is told by the server's options.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionOptions {
    pub max_in_flight: usize,
    pub queue_target: Duration,
    /// Honour [`TEST_WAIT_HEADER`] (tests only).
    pub test_hook: bool,
}

#[derive(Clone)]
pub struct ShedLayer {
    /// The hard ceiling: one permit per request served at once.
    slots: Arc<Semaphore>,
    options: AdmissionOptions,
    metrics: Arc<Metrics>,
}

impl ShedLayer {
    pub fn new(options: AdmissionOptions, metrics: Arc<Metrics>) -> ShedLayer {
        ShedLayer { slots: Arc::new(Semaphore::new(options.max_in_flight.max(1))), options, metrics }
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

/// The answer to a refused request: RESOURCE_EXHAUSTED with RetryInfo and
/// `grpc-retry-pushback-ms` for gRPC, 503 with Retry-After for pages.
fn refuse(grpc: bool, why: String, retry_after: Duration) -> http::Response<Body> {
    if grpc {
        use tonic_types::{ErrorDetails, StatusExt};
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(retry_after));
        let mut s = tonic::Status::with_error_details(tonic::Code::ResourceExhausted, why, details);
        if let Ok(v) = retry_after.as_millis().max(1).to_string().parse() {
            s.metadata_mut().insert("grpc-retry-pushback-ms", v);
        }
        return s.into_http();
    }
    let mut r = http::Response::new(Body::new(why));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    if let Ok(v) = http::HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

impl<S, B> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The stamp: hyper calls this from the connection's task as soon as
        // it has read the request's headers.
        let mut arrived = Instant::now();
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if never_shed(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        if self.layer.options.test_hook
            && let Some(ms) = req.headers().get(TEST_WAIT_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        {
            arrived = arrived.checked_sub(Duration::from_millis(ms)).unwrap_or(arrived);
        }
        let layer = self.layer.clone();
        let grpc = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        Box::pin(async move {
            // First run of this request's own task: what it waited is known.
            let waited = arrived.elapsed();
            let retry_after = RETRY_AFTER;
            if waited > layer.options.queue_target {
                layer.metrics.denied("queue_wait");
                let why = format!(
                    "the server is overloaded: this request waited {} ms for its turn, past the {} ms allowed; retry after {} ms",
                    millis(waited),
                    millis(layer.options.queue_target),
                    retry_after.as_millis()
                );
                return Ok(refuse(grpc, why, retry_after));
            }
            let Ok(slot) = layer.slots.clone().try_acquire_owned() else {
                layer.metrics.denied("shed");
                let why = format!(
                    "the server is at its limit of {} requests in flight; retry after {} ms",
                    layer.options.max_in_flight,
                    retry_after.as_millis()
                );
                return Ok(refuse(grpc, why, retry_after));
            };
            let res = inner.call(req).await?;
            Ok(res.map(|inner| Body::new(Slotted { inner, _slot: slot })))
        })
    }
}
