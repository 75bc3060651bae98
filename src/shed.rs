//! Admission control: a request that has already waited too long is refused
//! before any work is done for it, so the requests that are admitted keep
//! their latency under overload, and the server recovers the moment load
//! drops.
//!
//! **What is measured.** A request's wait runs from when its bytes reached
//! the host (the kernel's receive time of its connection's latest read,
//! `crate::received`, stamped by the gate as [`crate::gate::Arrived`]) to
//! when its own task first runs. That covers the two places requests queue
//! when the process is short of CPU: unread in their sockets while the
//! connection's task waits for its turn, and in the runtime's run queue
//! after it. A count of requests in flight at this layer misses both (a
//! cached answer holds a slot for microseconds), which is why the old
//! in-flight limit alone shed almost nothing while latency grew
//! (BENCHMARKS.md, "Overload").
//!
//! **When a request is refused: only while a queue stands.** Requests are
//! counted in windows of 20 × `queue_target` (1 to 100 ms; a window with
//! fewer than [`STANDING_MIN`] requests lasts until it has them, up to
//! [`INTERVAL`]). A window in
//! which at least [`STANDING_MIN`] requests came and most of them waited
//! past `queue_target` (5 ms by default, `--queue-target-ms`) shows a
//! standing queue, not a burst: from then until [`INTERVAL`] after the
//! last such window, a request that waited past `queue_target` is refused
//! (RESOURCE_EXHAUSTED with a retry hint of about [`RETRY_AFTER`], the
//! same interval, spread over 50–150% of it so that the clients sent away
//! together do not return together). Outside such a spell, only a request that
//! waited past [`INTERVAL`] (or `queue_target`, if larger) is refused.
//! This is CoDel's standing-queue test (RFC 8289 §3) with the median wait
//! in place of the minimum, and its "target, else interval" deadlines as
//! in Facebook's server queues (Maurer, "Fail at Scale", ACM Queue 2015).
//! The median, because tokio runs the task woken last next (its LIFO slot)
//! and the kernel's stamp is the newest bytes', so a few requests of every
//! batch wait almost nothing however long the others wait. And a standing
//! test, because on a machine near its capacity a few requests in a
//! hundred really do wait past a tight target (a virtual CPU that stalls,
//! the process's other threads): refusing each of those sent its client
//! away for the whole hint, and cut the throughput at a load the server
//! sustains to a quarter (BENCHMARKS.md, "Tried, not merged").
//! Recovery is immediate: once the load drops, requests stop waiting, and
//! a request that did not wait past the target is never refused.
//!
//! **Hard ceiling.** Beside the wait, at most `max_in_flight` requests are
//! served at once, process-wide; one more is refused at once. This bounds
//! the memory and store connections that slow calls (store reads, large
//! tables) can tie up. A request takes its slot only once its whole body
//! has arrived (it is read first, within `body_timeout`, or refused), and
//! holds it until its response body ends: a client that sends headers and
//! never the body holds no slot, and one whose body comes later than the
//! bound is refused rather than admitted late.
//!
//! **Who is calling is known before the body is read.** The gate
//! (`crate::gate::GateLayer`) sits outside this layer and identifies the
//! caller from the headers alone: an identity that does not hold, or an
//! unidentified caller of an RPC that needs one, is refused there, its
//! body never read. It also stamps the request's arrival
//! ([`crate::gate::Arrived`]),
//! as it is the first to see it. The principal's own rate and concurrency
//! are applied inside this layer (`crate::gate::LimitsLayer`), once the
//! body is whole.
//!
//! **Unidentified callers** (when principals are configured: the gate
//! found no identity, or one that does not hold on a public route)
//! together hold at most a quarter of the ceiling ([`anonymous_share`]),
//! so they cannot lock out the principals.
//!
//! **Request bodies held at once** are bounded process-wide by a budget
//! of bytes (`--body-budget-mib`, [`DEFAULT_BODY_BUDGET`]): each chunk of a
//! body takes its bytes from the budget as it arrives, and gives them back
//! when the service has read the body (or the request is dropped). A chunk
//! that does not fit has its request refused at once (RESOURCE_EXHAUSTED,
//! with the retry hint), and what it held is freed. Unidentified callers'
//! bodies hold at most a quarter of it together. Without it, bodies of
//! 16 MiB that each take up to `body_timeout` to arrive, on many streams
//! and connections, held GiBs (the outside attack on issue 23).
//!
//! **New statements** are limited apart (`--max-signing`,
//! [`DEFAULT_MAX_SIGNING`]): a call that must sign and log a statement
//! holds its place until its leaf is durable, so a count bounds that
//! path's latency where the wait stamp cannot (the wait is in the log's
//! commit, after admission). The limit is applied where a statement is
//! made (`service::assessment`), so cached answers never meet it.
//!
//! **Streams that are not work**: server reflection holds no ceiling slot;
//! at most [`REFLECTION_STREAMS`] are open at once, process-wide.
//!
use crate::access::Caller;
use crate::metrics::Metrics;
use http_body_util::BodyExt;
use standing::Standing;
pub use standing::{INTERVAL, STANDING_MIN};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;

mod standing;

/// The wait past which a request is refused (`--queue-target-ms`): CoDel's
/// target (RFC 8289 §4.4), ten times the p99 of a store read here.
pub const DEFAULT_QUEUE_TARGET: Duration = Duration::from_millis(5);

/// What a refused client is told to wait before retrying (RetryInfo and
/// `grpc-retry-pushback-ms`): CoDel's interval (RFC 8289 §4.5), long
/// enough for a queue of a few thousand requests to drain.
pub const RETRY_AFTER: Duration = INTERVAL;

/// Requests served at once, process-wide (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// New statements made at once for callers (`--max-signing`): each is
/// evaluated, signed and waits for its leaf's durable commit to the
/// transparency log. Past the log's group commit, more of them at once add
/// only waiting (BENCHMARKS.md, "Issue 27": throughput stops growing near 8
/// in flight on the reference 2-core machine and admitted p99 doubles at
/// 16), and that wait is spent after admission, where the queue-wait stamp
/// cannot see it. So a request that needs a new statement when this many are
/// being made is refused at once, before anything is signed. Cached answers
/// are never counted. A machine with more cores can raise it.
pub const DEFAULT_MAX_SIGNING: usize = 16;

/// How long a request's body may take to arrive after its headers
/// (`--body-timeout-ms`): a 16 MiB batch at well under 10 Mbit/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Server reflection streams open at once, process-wide: reflection is
/// open to anyone, costs little per message, and a client keeps one open
/// for as long as it likes, so it has a bound of its own, not ceiling slots.
pub const REFLECTION_STREAMS: usize = 16;

/// WatchTender streams open at once, process-wide: each lasts until its
/// tender's deadline, so they hold no ceiling slot but a bound of their own
/// (one principal's share is limited by the service).
pub const WATCH_STREAMS: usize = 256;

/// The largest request body read before admission: a gRPC message of
/// `server::MAX_MESSAGE_BYTES` (16 MiB) with its 5-byte frame header (the
/// server asserts the two agree). A larger one is refused, as tonic would
/// refuse its message.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024 + 5;

/// Bytes of request bodies held at once, process-wide (`--body-budget-mib`):
/// four of the largest messages, so that a few full `PutRecords` batches
/// arrive together; unidentified callers hold a quarter of it (16 MiB), far
/// more than any call open to them needs.
pub const DEFAULT_BODY_BUDGET: usize = 64 * 1024 * 1024;

/// Ceiling slots that unidentified callers may hold together: a quarter of
/// `max_in_flight`, at least one. Their share of the body budget is a
/// quarter of it too.
pub fn anonymous_share(max_in_flight: usize) -> usize {
    (max_in_flight / 4).max(1)
}

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

/// Server reflection (v1 and v1alpha): a bidirectional stream, bounded by
/// [`REFLECTION_STREAMS`] instead of the ceiling, its body never buffered.
fn is_reflection(path: &str) -> bool {
    path.starts_with("/grpc.reflection.")
}

/// WatchTender: a server stream, bounded by [`WATCH_STREAMS`] instead of
/// the ceiling (its one request message is read by tonic, within the
/// message bound).
fn is_watch(path: &str) -> bool {
    path == "/credit_tender.v1.AssessmentService/WatchTender"
}

/// What admission is told by the server's options.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionOptions {
    /// At least 1 (the CLI refuses 0; 0 here would refuse every request).
    pub max_in_flight: usize,
    pub queue_target: Duration,
    /// How long a request's body may take to arrive after its headers.
    pub body_timeout: Duration,
    /// Bytes of request bodies held at once (at least 1).
    pub body_budget: usize,
    /// Honour [`TEST_WAIT_HEADER`] (tests only).
    pub test_hook: bool,
}

#[derive(Clone)]
pub struct ShedLayer {
    /// The hard ceiling: one permit per request served at once.
    slots: Arc<Semaphore>,
    /// Unidentified callers' share of the ceiling.
    anonymous: Arc<Semaphore>,
    /// Reflection streams open at once.
    reflection: Arc<Semaphore>,
    /// WatchTender streams open at once.
    watches: Arc<Semaphore>,
    /// Bytes of request bodies held at once, and unidentified callers' share.
    bodies: Arc<Semaphore>,
    anonymous_bodies: Arc<Semaphore>,
    /// The waits of recent requests: whether a queue stands.
    standing: Arc<Standing>,
    options: AdmissionOptions,
    metrics: Arc<Metrics>,
}

impl ShedLayer {
    pub fn new(options: AdmissionOptions, metrics: Arc<Metrics>) -> ShedLayer {
        ShedLayer {
            slots: Arc::new(Semaphore::new(options.max_in_flight)),
            anonymous: Arc::new(Semaphore::new(anonymous_share(options.max_in_flight))),
            reflection: Arc::new(Semaphore::new(REFLECTION_STREAMS)),
            watches: Arc::new(Semaphore::new(WATCH_STREAMS)),
            bodies: Arc::new(Semaphore::new(options.body_budget.min(Semaphore::MAX_PERMITS))),
            anonymous_bodies: Arc::new(Semaphore::new((options.body_budget / 4).clamp(1, Semaphore::MAX_PERMITS))),
            standing: Arc::new(Standing::new(options.queue_target)),
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

/// A response body that gives its slots back when it ends or is dropped.
struct Slotted {
    inner: Body,
    _slots: Vec<OwnedSemaphorePermit>,
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

/// Why a request was refused: in English for gRPC's message (programs and
/// the CLI read it), in Chinese for a page (people and the page's script
/// read it), and the machine code a page's answer carries.
struct Refused {
    why: String,
    zh: String,
    code: &'static str,
}

/// The answer to a refused request: RESOURCE_EXHAUSTED with RetryInfo and
/// `grpc-retry-pushback-ms` for gRPC (`why` then says "retry after N ms",
/// the pushback's value), 503 with Retry-After for pages (whole seconds, at
/// least 1, and the Chinese sentence says the same number of seconds). A
/// body too large stays too large: RESOURCE_EXHAUSTED with no retry hint
/// for gRPC, 413 for pages.
fn refuse(grpc: bool, refused: Refused, retry_after: Duration) -> http::Response<Body> {
    let too_large = refused.code == "BODY_TOO_LARGE";
    match (grpc, too_large) {
        (true, true) => return tonic::Status::resource_exhausted(refused.why).into_http(),
        (true, false) => {
            return crate::service::retry_status(tonic::Code::ResourceExhausted, &refused.why, retry_after).into_http();
        }
        (false, true) => return crate::refusal::plain(http::StatusCode::PAYLOAD_TOO_LARGE, refused.code, &refused.zh, None),
        (false, false) => {}
    }
    let secs = crate::refusal::retry_after_secs(retry_after);
    let zh = format!("{}请 {secs} 秒后重试。", refused.zh);
    crate::refusal::plain(http::StatusCode::SERVICE_UNAVAILABLE, refused.code, &zh, Some(retry_after))
}

/// A duration for a person: milliseconds to 0.1, or microseconds below
/// one millisecond (a target of 0.001 ms is 1.0 µs, not "0.0 ms").
fn readable(d: Duration) -> String {
    if d < Duration::from_millis(1) { format!("{:.1} µs", d.as_secs_f64() * 1e6) } else { format!("{:.1} ms", d.as_secs_f64() * 1000.0) }
}

/// "1 request", "4 requests".
fn requests(n: usize) -> String {
    if n == 1 { "1 request".into() } else { format!("{n} requests") }
}

impl<S> tower::Service<http::Request<Body>> for Shed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Long because: one request's admission in the order it happens (stamp, wait, body within its bounds, slot, principal limits), each step using what the ones before found.
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The stamp: hyper calls this from the connection's task as soon as
        // it has read the request's headers.
        let mut arrived = req.extensions().get::<crate::gate::Arrived>().map_or_else(Instant::now, |a| a.0);
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = req.uri().path();
        if never_shed(path) {
            return Box::pin(inner.call(req));
        }
        if self.layer.options.test_hook
            && let Some(ms) = req.headers().get(TEST_WAIT_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        {
            arrived = arrived.checked_sub(Duration::from_millis(ms)).unwrap_or(arrived);
        }
        let layer = self.layer.clone();
        let grpc = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let reflection = is_reflection(path);
        let watch = is_watch(path);
        let anonymous = req.extensions().get::<Caller>() == Some(&Caller::Anonymous);
        Box::pin(async move {
            // First run of this request's own task: what it waited is known.
            let now = Instant::now();
            let waited = now.saturating_duration_since(arrived);
            let options = layer.options;
            if let Some(allowed) = layer.standing.refuses(now, waited) {
                layer.metrics.denied("queue_wait");
                let why = format!(
                    "the server is overloaded: this request waited {} for its turn, past the {} allowed",
                    readable(waited),
                    readable(allowed),
                );
                let zh = format!("服务器繁忙：本次请求排队等候 {}，超过允许的 {}，未被处理。", readable(waited), readable(allowed));
                return Ok(refuse(grpc, Refused { why, zh, code: "OVERLOADED" }, layer.standing.hint()));
            }
            if reflection {
                let Ok(slot) = layer.reflection.clone().try_acquire_owned() else {
                    layer.metrics.denied("shed");
                    let why = format!("the server already has {REFLECTION_STREAMS} reflection streams open");
                    let zh = format!("服务器繁忙：同时打开的反射流已达上限 {REFLECTION_STREAMS} 个，未被处理。");
                    return Ok(refuse(grpc, Refused { why, zh, code: "OVERLOADED" }, RETRY_AFTER));
                };
                let res = inner.call(req).await?;
                return Ok(res.map(|inner| Body::new(Slotted { inner, _slots: vec![slot] })));
            }
            if watch {
                let Ok(slot) = layer.watches.clone().try_acquire_owned() else {
                    layer.metrics.denied("shed");
                    let why = format!("the server already has {WATCH_STREAMS} WatchTender streams open");
                    let zh = format!("服务器繁忙：同时打开的招标项目变更订阅已达上限 {WATCH_STREAMS} 个，未被处理。");
                    return Ok(refuse(grpc, Refused { why, zh, code: "OVERLOADED" }, RETRY_AFTER));
                };
                let res = inner.call(req).await?;
                return Ok(res.map(|inner| Body::new(Slotted { inner, _slots: vec![slot] })));
            }
            // The whole body first, within its bounds: a request takes a
            // slot only once it can be worked on.
            let (parts, body) = req.into_parts();
            let body = match read_body(&layer, body, anonymous).await {
                Ok(held) => held,
                Err(fault) => return Ok(fault.refusal(&layer, grpc)),
            };
            let req = http::Request::from_parts(parts, Body::new(body));
            let mut slots = Vec::with_capacity(2);
            if anonymous {
                let Ok(slot) = layer.anonymous.clone().try_acquire_owned() else {
                    layer.metrics.denied("shed");
                    let share = anonymous_share(options.max_in_flight);
                    let why = format!("unidentified callers are at their share of {} in flight", requests(share));
                    let zh = format!("服务器繁忙：未表明身份的调用方同时进行的请求已达其份额 {share} 个，未被处理。");
                    return Ok(refuse(grpc, Refused { why, zh, code: "OVERLOADED" }, RETRY_AFTER));
                };
                slots.push(slot);
            }
            let Ok(slot) = layer.slots.clone().try_acquire_owned() else {
                layer.metrics.denied("shed");
                let why = format!("the server is at its limit of {} in flight", requests(options.max_in_flight));
                let zh = format!("服务器繁忙：同时处理的请求已达上限 {} 个，未被处理。", options.max_in_flight);
                return Ok(refuse(grpc, Refused { why, zh, code: "OVERLOADED" }, RETRY_AFTER));
            };
            slots.push(slot);
            let res = inner.call(req).await?;
            // The principal limits' refusals did no work and hold no place, read or not.
            if res.extensions().get::<crate::gate::Refused>().is_some() {
                return Ok(res);
            }
            Ok(res.map(|inner| Body::new(Slotted { inner, _slots: slots })))
        })
    }
}

/// Why a body was not read whole.
enum BodyFault {
    TooLarge,
    /// The body budget (`anonymous`: unidentified callers' share of it) is spent.
    Budget {
        anonymous: bool,
    },
    /// The client's own bytes are wrong (gRPC-Web text that is not base64):
    /// its status, INVALID_ARGUMENT.
    Malformed(tonic::Status),
    /// The client reset the stream or the connection broke: no one to answer.
    Unreadable(tonic::Status),
    Late,
}

impl BodyFault {
    fn refusal(self, layer: &ShedLayer, grpc: bool) -> http::Response<Body> {
        let options = &layer.options;
        let (why, zh, code) = match self {
            BodyFault::TooLarge => {
                layer.metrics.denied("body_too_large");
                let limit = MAX_BODY_BYTES - 5;
                let why = format!(
                    "the request's message is too large: this server takes messages of at most {limit} bytes (16 MiB); \
                     send less at once"
                );
                (why, format!("请求体超过 {MAX_BODY_BYTES} 字节，未被处理。"), "BODY_TOO_LARGE")
            }
            BodyFault::Budget { anonymous } => {
                layer.metrics.denied("body_budget");
                let (whose, zh_whose, budget) = if anonymous {
                    ("unidentified callers' request bodies are", "未表明身份的调用方的请求体", options.body_budget / 4)
                } else {
                    ("the request bodies the server holds are", "服务器同时接收的请求体", options.body_budget)
                };
                let why = format!("the server is overloaded: {whose} at their limit of {budget} bytes at once");
                (why, format!("服务器繁忙：{zh_whose}已达上限 {budget} 字节，未被处理。"), "OVERLOADED")
            }
            BodyFault::Malformed(status) => {
                return if grpc {
                    status.into_http()
                } else {
                    crate::refusal::plain(http::StatusCode::BAD_REQUEST, "BAD_REQUEST", "请求体格式不正确，未被处理。", None)
                };
            }
            BodyFault::Unreadable(e) => (
                format!("the request's body could not be read: {}", e.message()),
                "无法读取请求体（连接中断，或客户端取消了请求），未被处理。".to_owned(),
                "BODY_UNREADABLE",
            ),
            BodyFault::Late => {
                layer.metrics.denied("body_timeout");
                let why = format!("the request's body did not arrive within {} of its headers", readable(options.body_timeout));
                let zh = format!("请求体未在请求头之后 {} 内送达，未被处理。", readable(options.body_timeout));
                (why, zh, "BODY_TIMEOUT")
            }
        };
        refuse(grpc, Refused { why, zh, code }, RETRY_AFTER)
    }
}

/// Reads `body` whole within `body_timeout` and [`MAX_BODY_BYTES`], each
/// chunk taking its bytes from the body budget (and, for an unidentified
/// caller, from their share of it) as it arrives.
async fn read_body(layer: &ShedLayer, body: Body, anonymous: bool) -> Result<Held, BodyFault> {
    let read = async {
        let mut body = body;
        let mut held = Held::default();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) if e.code() == tonic::Code::InvalidArgument => return Err(BodyFault::Malformed(e)),
                Err(e) => return Err(BodyFault::Unreadable(e)),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        held.trailers.get_or_insert_with(http::HeaderMap::new).extend(t);
                    }
                    continue;
                }
            };
            total += data.len();
            if total > MAX_BODY_BYTES {
                return Err(BodyFault::TooLarge);
            }
            // A DATA frame is at most 16 MiB (HTTP/2's largest frame size).
            let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
            if anonymous {
                let share = layer.anonymous_bodies.clone().try_acquire_many_owned(n).map_err(|_| BodyFault::Budget { anonymous: true })?;
                held.budget.push(share);
            }
            let place = layer.bodies.clone().try_acquire_many_owned(n).map_err(|_| BodyFault::Budget { anonymous: false })?;
            held.budget.push(place);
            held.chunks.push_back(data);
        }
        Ok(held)
    };
    tokio::time::timeout(layer.options.body_timeout, read).await.unwrap_or(Err(BodyFault::Late))
}

/// A body read whole, as a body again: its data then its trailers, as they
/// came. Its bytes' places in the body budget are given back once it has
/// been read to its end, or when it is dropped.
#[derive(Default)]
struct Held {
    chunks: VecDeque<bytes::Bytes>,
    trailers: Option<http::HeaderMap>,
    budget: Vec<OwnedSemaphorePermit>,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(data) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        self.budget.clear();
        Poll::Ready(self.trailers.take().map(|t| Ok(http_body::Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}
