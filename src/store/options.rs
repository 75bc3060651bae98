//! How a store is opened: pool size, write wait, time-out, whether it may
//! be created; and sqlx's statement logging for both backends.

/// Pooled connections to the store unless told otherwise: measured with
/// `examples/loadgen` against PostgreSQL on 2 cores (BENCHMARKS.md, round 3).
pub const DEFAULT_CONNECTIONS: u32 = 8;

/// How long a write waits for its turn unless told otherwise (`serve
/// --write-wait-ms`): behind this process's other writes, then behind
/// another process holding the store's write lock (an import). Past it the
/// write is refused as [`StoreError::Busy`](super::error::StoreError::Busy), nothing stored. Ten seconds, as
/// SQLite's busy timeout was before it was a flag: a 200,000-row import
/// holds the lock for about 2.5 s (release build, BENCHMARKS.md).
pub const DEFAULT_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a store over the network (PostgreSQL) may leave a request
/// unanswered before it counts as unreachable, unless told otherwise (`serve
/// --store-timeout-ms`): then every request that needs it is answered
/// UNAVAILABLE at once, and health says NOT_SERVING, until it answers again
/// (see `reach`). One second, as the issue that asked for it proposed
/// (issue 28): far above a healthy round trip on a LAN, far below a
/// client's usual deadline.
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest a write waits behind this process's own other writes (at
/// most the write wait): past it the write is refused as
/// [`StoreError::Queued`](super::error::StoreError::Queued) (RESOURCE_EXHAUSTED), since the queue is of this
/// server's making, as the admission layer refuses a request that waited
/// too long (`crate::shed`). A second holds a few hundred small writes
/// (1–5 ms each, BENCHMARKS.md); waiting for another process's lock (an
/// import) keeps the whole write wait.
pub const WRITE_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How a store is opened.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Pooled connections (at least one).
    pub connections: u32,
    /// How long a write waits for its turn; see [`DEFAULT_WRITE_WAIT`].
    pub write_wait: std::time::Duration,
    /// PostgreSQL: how long the store may leave a request unanswered (a
    /// connection, a probe) before it counts as unreachable; see
    /// [`DEFAULT_STORE_TIMEOUT`]. SQLite, a local file, has no use for it.
    pub timeout: std::time::Duration,
    /// Whether the store may be created and migrated.
    pub mode: OpenMode,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connections: DEFAULT_CONNECTIONS,
            write_wait: DEFAULT_WRITE_WAIT,
            timeout: DEFAULT_STORE_TIMEOUT,
            mode: OpenMode::Create,
        }
    }
}

/// How a command opens its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the store if it is missing and migrate it to this binary's
    /// schema: what `serve` and `import` do.
    Create,
    /// Only a store that exists and already has this binary's schema: never
    /// created, never migrated (a mistyped path is an error, not a new empty
    /// store). For commands that only read: `recompute`, `import --dry-run`.
    /// With `read_only`, the connections cannot write at all (SQLite
    /// `mode=ro`, PostgreSQL `default_transaction_read_only`); a dry run
    /// needs a transaction it rolls back, so it opens with `read_only: false`.
    Existing {
        /// Open connections that cannot write.
        read_only: bool,
    },
}

/// Whether `url` names a backend this build has: `sqlite:…`, `postgres://…`
/// or `postgresql://…`.
pub fn supported_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// sqlx's statement logging, for both backends: every statement at TRACE,
/// and one slower than a second at DEBUG, not sqlx's default WARN. A bulk
/// write's statements carry hundreds of placeholders (an import under load
/// printed WARN lines of 12 KB each); how long a write waited is logged by
/// the store itself, in a sentence.
pub(super) fn statement_logging<O: sqlx::ConnectOptions>(options: O) -> O {
    options.log_statements(::log::LevelFilter::Trace).log_slow_statements(::log::LevelFilter::Debug, std::time::Duration::from_secs(1))
}
