//! Prometheus metrics, served as text on `/metrics`.
//!
//! Every label value of a closed set (the caches' events, the store's
//! operations, connection events, refusal reasons) is exported from the
//! start, at zero: a reader (an alert, a dashboard, a test) can then tell
//! "none yet" from "not exported", and a renamed or removed series shows
//! as missing instead of reading as a quiet zero. Counting a value outside
//! its set is a bug, caught by a debug assertion.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

/// A cache event's labels: static strings, so counting one allocates nothing
/// (three or four are counted per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct CacheEvent {
    cache: &'static str,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Request {
    method: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Method {
    method: String,
}

/// The (cache, event) pairs the caches count: hits and misses of each
/// cache, loads of profiles, and evictions of the two weighed caches.
pub const CACHE_EVENTS: &[(&str, &str)] = &[
    ("profile", "hit"),
    ("profile", "miss"),
    ("profile", "load"),
    ("profile", "eviction"),
    ("statement", "hit"),
    ("statement", "miss"),
    ("statement", "eviction"),
    ("tender", "hit"),
    ("tender", "miss"),
    ("tender_list", "hit"),
    ("tender_list", "miss"),
    ("table", "hit"),
    ("table", "miss"),
];

/// The caches whose weight (approximate bytes) is exported.
pub const WEIGHED_CACHES: &[&str] = &["profile", "statement"];

/// The credit store operations whose latency is measured.
pub const STORE_OPS: &[&str] = &["current_version", "profile", "profiles", "tender", "list_tenders", "changes_since", "log_append"];

/// Connection events: accepted; waited (accepted at the connection cap and
/// held, unserved, until a place freed); idle_closed; handshake_failed;
/// handshake_timeout; accept_error (one per failed accept, so while the
/// process is out of descriptors it counts the accept loop's retries).
pub const CONNECTION_EVENTS: &[&str] = &["accepted", "waited", "idle_closed", "handshake_failed", "handshake_timeout", "accept_error"];

/// Why a request was refused before it was served: no identity
/// (unauthenticated), the store could not check a session (unavailable),
/// the principal's rate or concurrency limit (rate_limited), the process's
/// requests in flight (shed), the time the request waited for its turn
/// (queue_wait, `crate::shed`), new statements already being made
/// (signing, `--max-signing`), the role or scope (permission_denied, not_found).
pub const DENIAL_REASONS: &[&str] = &[
    "unauthenticated",
    "unavailable",
    "rate_limited",
    "shed",
    "queue_wait",
    "body_timeout",
    "body_too_large",
    "body_budget",
    "write_queue",
    "signing",
    "permission_denied",
    "not_found",
];

fn latency() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the service exports. Cheap to clone handles out of; the
/// registry is only walked when `/metrics` is scraped.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    request_seconds: Family<Method, Histogram, fn() -> Histogram>,
    cache_events: Family<CacheEvent, Counter>,
    cache_weight: Family<Labels, Gauge>,
    store_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    signatures: Counter,
    invalidations: Counter,
    replica_lag: Gauge,
    applied_version: Gauge,
    denials: Family<Labels, Counter>,
    connections_open: Gauge,
    connections_waiting: Gauge,
    connection_events: Family<Labels, Counter>,
    log_leaves: Counter,
    log_checkpoint_size: Gauge,
    refreshed: Counter,
    table_rows: Counter,
    wal_checkpoints: Family<Labels, Counter>,
    wal_frames: Gauge,
    /// Signatures made and the newest checkpoint's size, for whoever wants
    /// to await them in-process (tests, tools) rather than poll /metrics.
    signed_watch: tokio::sync::watch::Sender<u64>,
    checkpoint_watch: tokio::sync::watch::Sender<u64>,
    /// Leaves this replica appended to the log, likewise.
    logged_watch: tokio::sync::watch::Sender<u64>,
    /// Clients waiting at the connection cap, likewise.
    waiting_watch: tokio::sync::watch::Sender<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered under the `credit_tender_` prefix, labelled
    /// series that must show before their first event already at zero.
    // Long because: a table, one registration per metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("credit_tender");
        let requests = Family::<Request, Counter>::default();
        registry.register("grpc_requests", "gRPC requests by method and status code", requests.clone());
        let request_seconds = Family::<Method, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register("grpc_request_seconds", "gRPC request latency by method", request_seconds.clone());
        let cache_events = Family::<CacheEvent, Counter>::default();
        registry.register("cache_events", "cache hits, misses, loads and evictions per cache", cache_events.clone());
        let cache_weight = Family::<Labels, Gauge>::default();
        registry.register("cache_weight_bytes", "approximate bytes held per cache", cache_weight.clone());
        let store_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register("store_query_seconds", "credit store query latency by operation", store_seconds.clone());
        let signatures = Counter::default();
        registry.register("signatures", "statements signed", signatures.clone());
        let invalidations = Counter::default();
        registry.register("invalidations", "credit codes invalidated from the change feed", invalidations.clone());
        let replica_lag = Gauge::default();
        registry.register("replica_lag_versions", "data versions the store is ahead of this replica's cache", replica_lag.clone());
        let applied_version = Gauge::default();
        registry.register("applied_data_version", "newest data version this replica has applied", applied_version.clone());
        let denials = Family::<Labels, Counter>::default();
        registry.register("access_denials", "requests refused by who is calling, by reason", denials.clone());
        let connections_open = Gauge::default();
        registry.register("connections_open", "client connections open now", connections_open.clone());
        let connections_waiting = Gauge::default();
        registry.register(
            "connections_waiting",
            "clients accepted at the connection cap and waiting, unserved, for a place",
            connections_waiting.clone(),
        );
        let connection_events = Family::<Labels, Counter>::default();
        registry.register(
            "connection_events",
            "connections accepted, waiting at the cap, closed idle, failing or timing out their TLS handshake, and accept errors (EMFILE…, one per retry)",
            connection_events.clone(),
        );
        let log_leaves = Counter::default();
        registry.register("log_leaves", "statements appended to the transparency log by this replica", log_leaves.clone());
        let log_checkpoint_size = Gauge::default();
        registry.register("log_checkpoint_size", "tree size of the newest checkpoint this replica published", log_checkpoint_size.clone());
        let refreshed = Counter::default();
        registry.register(
            "refreshed_statements",
            "statements of open tenders made ready in the background (signed, or found cached)",
            refreshed.clone(),
        );
        let table_rows = Counter::default();
        registry.register(
            "table_rows_encoded",
            "rows of the committee's table framed anew (the rest are sent as kept)",
            table_rows.clone(),
        );
        let wal_checkpoints = Family::<Labels, Counter>::default();
        registry.register(
            "store_wal_checkpoints",
            "SQLite write-ahead log checkpoints run by this server's background checkpointer (never in a request), by outcome: complete, or busy (stopped short by a reader)",
            wal_checkpoints.clone(),
        );
        for outcome in ["complete", "busy"] {
            let _ = wal_checkpoints.get_or_create(&vec![("outcome", outcome.to_owned())]);
        }
        let wal_frames = Gauge::default();
        registry.register("store_wal_frames", "frames in the SQLite write-ahead log at the last background checkpoint", wal_frames.clone());
        for (cache, event) in CACHE_EVENTS {
            let _ = cache_events.get_or_create(&CacheEvent { cache, event });
        }
        for cache in WEIGHED_CACHES {
            let _ = cache_weight.get_or_create(&vec![("cache", (*cache).to_owned())]);
        }
        for op in STORE_OPS {
            let _ = store_seconds.get_or_create(&vec![("op", (*op).to_owned())]);
        }
        for event in CONNECTION_EVENTS {
            let _ = connection_events.get_or_create(&vec![("event", (*event).to_owned())]);
        }
        for reason in DENIAL_REASONS {
            let _ = denials.get_or_create(&vec![("reason", (*reason).to_owned())]);
        }
        Metrics {
            table_rows,
            wal_checkpoints,
            wal_frames,
            signed_watch: tokio::sync::watch::Sender::new(0),
            checkpoint_watch: tokio::sync::watch::Sender::new(0),
            logged_watch: tokio::sync::watch::Sender::new(0),
            refreshed,
            log_leaves,
            log_checkpoint_size,
            connections_open,
            connections_waiting,
            waiting_watch: tokio::sync::watch::Sender::new(0),
            connection_events,
            denials,
            registry,
            requests,
            request_seconds,
            cache_events,
            cache_weight,
            store_seconds,
            signatures,
            invalidations,
            replica_lag,
            applied_version,
        }
    }

    /// One gRPC request answered: `method` names the RPC, `code` is its
    /// status code's name (`OK`, `NOT_FOUND`…); counts it and observes
    /// `elapsed` in `grpc_request_seconds`.
    pub fn request(&self, method: String, code: &'static str, elapsed: Duration) {
        let method = Method { method };
        self.request_seconds.get_or_create(&method).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&Request { method: method.method, code }).inc();
    }

    /// `(cache, event)` is one of [`CACHE_EVENTS`].
    pub fn cache(&self, cache: &'static str, event: &'static str) {
        debug_assert!(CACHE_EVENTS.contains(&(cache, event)), "cache event ({cache}, {event}) is not in CACHE_EVENTS");
        self.cache_events.get_or_create(&CacheEvent { cache, event }).inc();
    }

    /// Sets `cache_weight_bytes` for `cache` (one of [`WEIGHED_CACHES`]).
    pub fn cache_weight(&self, cache: &'static str, bytes: u64) {
        debug_assert!(WEIGHED_CACHES.contains(&cache), "cache '{cache}' is not in WEIGHED_CACHES");
        self.cache_weight.get_or_create(&vec![("cache", cache.to_owned())]).set(bytes as i64);
    }

    /// `op` is one of [`STORE_OPS`].
    pub fn store_query(&self, op: &'static str, elapsed: Duration) {
        debug_assert!(STORE_OPS.contains(&op), "store operation '{op}' is not in STORE_OPS");
        self.store_seconds.get_or_create(&vec![("op", op.to_owned())]).observe(elapsed.as_secs_f64());
    }

    /// A request refused; `reason` is one of [`DENIAL_REASONS`].
    pub fn denied(&self, reason: &'static str) {
        debug_assert!(DENIAL_REASONS.contains(&reason), "denial reason '{reason}' is not in DENIAL_REASONS");
        self.denials.get_or_create(&vec![("reason", reason.to_owned())]).inc();
    }

    /// `event` is one of [`CONNECTION_EVENTS`].
    pub fn connection(&self, event: &'static str) {
        debug_assert!(CONNECTION_EVENTS.contains(&event), "connection event '{event}' is not in CONNECTION_EVENTS");
        self.connection_events.get_or_create(&vec![("event", event.to_owned())]).inc();
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connections_open(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// A client accepted at the cap starts (`+1`) or stops (`-1`) waiting for a place.
    pub fn connections_waiting(&self, delta: i64) {
        let now = self.connections_waiting.inc_by(delta) + delta;
        self.waiting_watch.send_replace(now.max(0) as u64);
    }

    /// Clients waiting at the connection cap, as the number changes (for
    /// tests and tools in the same process).
    pub fn waiting(&self) -> tokio::sync::watch::Receiver<u64> {
        self.waiting_watch.subscribe()
    }

    /// `n` statements of open tenders made ready in the background.
    pub fn refreshed(&self, n: u64) {
        self.refreshed.inc_by(n);
    }

    /// `n` rows of a committee table framed anew rather than sent as kept.
    pub fn table_rows_encoded(&self, n: u64) {
        self.table_rows.inc_by(n);
    }

    /// A background WAL checkpoint: whether it stopped short, and the log's frames.
    pub fn wal_checkpoint(&self, busy: bool, frames: u64) {
        let outcome = if busy { "busy" } else { "complete" };
        self.wal_checkpoints.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
        self.wal_frames.set(frames as i64);
    }

    /// `leaves` statements appended to the transparency log by this
    /// replica; also wakes [`Metrics::logged_leaves`] watchers.
    pub fn logged(&self, leaves: u64) {
        self.log_leaves.inc_by(leaves);
        self.logged_watch.send_modify(|n| *n += leaves);
    }

    /// Leaves this replica appended to the log, as the count changes.
    pub fn logged_leaves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.logged_watch.subscribe()
    }

    /// This replica published a checkpoint of tree size `size`; also wakes
    /// [`Metrics::checkpoints`] watchers.
    pub fn checkpoint(&self, size: u64) {
        self.log_checkpoint_size.set(size as i64);
        self.checkpoint_watch.send_replace(size);
    }

    /// One statement signed; also wakes [`Metrics::signatures`] watchers.
    pub fn signed(&self) {
        self.signatures.inc();
        self.signed_watch.send_modify(|n| *n += 1);
    }

    /// Statements signed by this process, as the count changes.
    pub fn signatures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signed_watch.subscribe()
    }

    /// The size of the newest checkpoint this process published, as it changes.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<u64> {
        self.checkpoint_watch.subscribe()
    }

    /// `n` changes read from the change feed, each evicting its credit code.
    pub fn invalidated(&self, n: u64) {
        self.invalidations.inc_by(n);
    }

    /// The newest data version this replica has applied and the store's
    /// newest; sets `applied_data_version` and `replica_lag_versions`.
    pub fn versions(&self, applied: u64, store: u64) {
        self.applied_version.set(applied as i64);
        self.replica_lag.set(store.saturating_sub(applied) as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
