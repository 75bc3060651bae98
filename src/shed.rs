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
//! **When a request is refused** (CoDel as adapted to request queues: Nichols
//! and Jacobson, RFC 8289; Maurer, "Fail at Scale", ACM Queue 13(8), 2015,
//! and folly's `Codel`): time is cut into intervals (`queue_interval`, 100
//! ms by default). If every request of the last interval waited longer than
//! `queue_target` (5 ms by default), the queue is standing, not a burst
//! draining: the server is overloaded, and a request that has waited more
//! than the target is refused. Otherwise only a request that has waited a
//! whole interval is refused. A burst is served; a standing queue is cut to
//! the target within one interval, and once load drops the next interval
//! finds the queue empty and stops shedding.
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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;

/// The wait past which, once a queue stands, requests are refused (`--queue-target-ms`).
/// CoDel's default (RFC 8289 §4.4), also folly's and Maurer's.
pub const DEFAULT_QUEUE_TARGET: Duration = Duration::from_millis(5);

/// How long the wait must stay above the target before shedding starts
/// (`--queue-interval-ms`); also the retry hint sent with a refusal. CoDel's
/// default (RFC 8289 §4.5).
pub const DEFAULT_QUEUE_INTERVAL: Duration = Duration::from_millis(100);

/// Requests served at once, process-wide (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Test-only request header (honoured only with
/// `ServerOptions::queue_wait_test_hook`): milliseconds added to the
/// request's measured wait, so that tests inject a wait instead of sleeping.
pub const TEST_WAIT_HEADER: &str = "x-credit-tender-test-queue-wait-ms";

/// Paths that are never shed: gRPC health (Check and Watch), the key
/// listing (gRPC `ListKeys` and `/api/keys`) and `/metrics`.
pub fn never_shed(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/credit_tender.v1.KeyService/") || path == "/metrics" || path == "/api/keys"
}

/// The CoDel controller: decides from a request's wait whether it is
/// admitted. Pure over the instants it is given, so it is tested without a
/// clock.
#[derive(Debug)]
pub struct Codel {
    target: Duration,
    interval: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// When the current interval ends.
    ends: Instant,
    /// The shortest wait seen in the current interval; `None` before the first.
    min_wait: Option<Duration>,
    /// Whether every request of the last interval waited past the target.
    overloaded: bool,
}

impl Codel {
    /// `target` and `interval` are both positive; `interval` is longer than `target`.
    pub fn new(target: Duration, interval: Duration, now: Instant) -> Codel {
        Codel { target, interval, state: Mutex::new(Window { ends: now + interval, min_wait: None, overloaded: false }) }
    }

    /// Whether a request that has waited `waited` as of `now` is admitted.
    /// Every request counts towards the interval's shortest wait, refused
    /// or not: both were in the queue.
    pub fn admit(&self, now: Instant, waited: Duration) -> bool {
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now >= w.ends {
            // An interval with no request at all, or one that ended more than
            // an interval ago (the server was idle since), found no queue.
            let stale = now >= w.ends + self.interval;
            w.overloaded = !stale && w.min_wait.is_some_and(|m| m > self.target);
            w.min_wait = None;
            w.ends = now + self.interval;
        }
        w.min_wait = Some(w.min_wait.map_or(waited, |m| m.min(waited)));
        waited <= if w.overloaded { self.target } else { self.interval }
    }

    /// Whether the last interval found a standing queue.
    pub fn overloaded(&self) -> bool {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).overloaded
    }
}

/// What admission is told by the server's options.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionOptions {
    pub max_in_flight: usize,
    pub queue_target: Duration,
    pub queue_interval: Duration,
    /// Honour [`TEST_WAIT_HEADER`] (tests only).
    pub test_hook: bool,
}

#[derive(Clone)]
pub struct ShedLayer {
    /// The hard ceiling: one permit per request served at once.
    slots: Arc<Semaphore>,
    /// Shared by every connection: the queue is the process's, not a connection's.
    codel: Arc<Codel>,
    options: AdmissionOptions,
    metrics: Arc<Metrics>,
}

impl ShedLayer {
    pub fn new(options: AdmissionOptions, metrics: Arc<Metrics>) -> ShedLayer {
        ShedLayer {
            slots: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            codel: Arc::new(Codel::new(options.queue_target, options.queue_interval, Instant::now())),
            options,
            metrics,
        }
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
            let now = Instant::now();
            let waited = now.saturating_duration_since(arrived);
            let retry_after = layer.options.queue_interval;
            if !layer.codel.admit(now, waited) {
                layer.metrics.denied("queue_wait");
                let why = format!(
                    "the server is overloaded: this request waited {} ms for its turn, past the {} ms allowed; retry after {} ms",
                    millis(waited),
                    millis(if layer.codel.overloaded() { layer.options.queue_target } else { layer.options.queue_interval }),
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(5);
    const I: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_is_served_and_only_a_request_that_waited_a_whole_interval_is_refused() {
        let t0 = Instant::now();
        let c = Codel::new(T, I, t0);
        assert!(c.admit(t0 + ms(1), ms(50)), "a wait past the target, but no standing queue yet");
        assert!(c.admit(t0 + ms(2), I), "exactly one interval is still admitted");
        assert!(!c.admit(t0 + ms(3), I + ms(1)), "longer than an interval is refused even without a standing queue");
        assert!(!c.overloaded());
    }

    #[test]
    fn a_queue_that_stands_for_an_interval_is_cut_to_the_target_and_shedding_stops_when_it_drains() {
        let t0 = Instant::now();
        let c = Codel::new(T, I, t0);
        // A whole interval in which every request waited past the target.
        for k in 0..10 {
            assert!(c.admit(t0 + ms(10 * k), ms(20)));
        }
        // The next interval begins overloaded: past the target is refused.
        assert!(!c.admit(t0 + ms(101), ms(6)));
        assert!(c.overloaded());
        assert!(c.admit(t0 + ms(102), ms(5)), "at the target is admitted");
        // Load drops: a request found no queue during this interval.
        assert!(c.admit(t0 + ms(150), Duration::ZERO));
        assert!(c.admit(t0 + ms(202), ms(20)), "the next interval is not overloaded");
        assert!(!c.overloaded());
    }

    #[test]
    fn an_idle_interval_ends_overload() {
        let t0 = Instant::now();
        let c = Codel::new(T, I, t0);
        assert!(c.admit(t0 + ms(50), ms(20)));
        assert!(!c.admit(t0 + ms(101), ms(20)), "the last interval's only request waited past the target");
        // Nothing arrives for more than an interval: the queue was empty.
        assert!(c.admit(t0 + ms(400), ms(20)));
        assert!(!c.overloaded());
    }
}
