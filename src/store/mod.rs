//! The credit store: records, their versions and the change feed; tenders,
//! bids and policy versions.
//!
//! [`CreditStore`] is what the rest of the service sees; [`Store`] is a cheap,
//! cloneable handle to one. Both backends (SQLite, embedded, one file: the
//! default; PostgreSQL, shared by replicas) are one generic implementation,
//! `sql::SqlStore`, whose SQL is written once in `sql.rs` and `tenders.rs`;
//! each backend module holds only what really differs: how a write
//! transaction is opened, how a commit is announced, the profile query's
//! plan, and (PostgreSQL) the LISTEN loop.
//!
//! Rows are only inserted, never updated or deleted, so every past data
//! version can be read again.

mod dialect;
mod log;
mod postgres;
mod reach;
mod schema;
mod sql;
mod sqlite;
mod tenders;

pub use log::StoredCheckpoint;

pub use postgres::CHANGES_CHANNEL;
pub use reach::Reachability;
pub use sql::SqlStore;

use crate::domain::input::FieldError;
use crate::domain::ownership::Writer;
use crate::domain::profile::Profile;
use crate::domain::tender::{Bidder, TenderId};
use crate::domain::{CommitteeGrant, CreditCode, Record, Tender};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Records that conflict with what is stored or with each other; the
    /// `u64` is the caller's position label (batch index or file line).
    #[error("{} record problem(s)", .0.len())]
    Rejected(Vec<(u64, FieldError)>),
    #[error("data version {requested} is ahead of the store's current version {current}")]
    FutureVersion { requested: u64, current: u64 },
    #[error("the store cannot be reached")]
    Unavailable(#[source] sqlx::Error),
    /// Another process holds the store's write lock (a long import) past
    /// the write's wait bound (SQLITE_BUSY / SQLITE_LOCKED, PostgreSQL
    /// lock_not_available). The store is there: retry.
    #[error("the credit store is busy (another process is writing): {0}")]
    Busy(String),
    /// This process's own writes are queued deeper than a write may wait
    /// ([`WRITE_QUEUE_WAIT`]): the server is overloaded with writes. No
    /// other process is involved; the write was not begun: retry later.
    #[error("this server's write queue is full: {0}")]
    Queued(String),
    /// Records their writer may not write: versions, events or revocations
    /// of a record another owner's, or that would move a record to another
    /// owner (see [`crate::domain::ownership`]). Every problem of the batch,
    /// by position, as in `Rejected`.
    #[error("{} record(s) not the writer's to change", .0.len())]
    NotOwner(Vec<(u64, FieldError)>),
    #[error("stored row is unreadable: {0}")]
    Corrupt(String),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("tender '{0}' is already registered with other terms; use AmendTender to change it")]
    TenderExists(TenderId),
    /// A registration of an id another platform's tender has: tender ids
    /// are one namespace, so that much is said, and nothing more.
    #[error("tender id '{0}' is taken; register the tender under another id")]
    TenderIdTaken(TenderId),
    #[error("no tender '{0}'")]
    UnknownTender(TenderId),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The store's file is gone or replaced: nothing can be committed to it.
    #[error("the store is lost: {0}")]
    Lost(String),
    /// The store's file may not be used as it is (a SQLite database file
    /// with more than one hard link): a deployment error, refused before
    /// anything is opened.
    #[error("{0}")]
    Unsafe(String),
    /// [`OpenMode::Existing`]: there is no store there (no file, no database,
    /// or one without credit-tender's schema).
    #[error("{0}")]
    Missing(String),
    /// [`OpenMode::Existing`]: the store's schema is not this binary's, and
    /// the command may not migrate it.
    #[error("{0}")]
    Schema(String),
}

/// sqlx's statement logging, for both backends: every statement at TRACE,
/// and one slower than a second at DEBUG, not sqlx's default WARN. A bulk
/// write's statements carry hundreds of placeholders (an import under load
/// printed WARN lines of 12 KB each); how long a write waited is logged by
/// the store itself, in a sentence.
fn statement_logging<O: sqlx::ConnectOptions>(options: O) -> O {
    options.log_statements(::log::LevelFilter::Trace).log_slow_statements(::log::LevelFilter::Debug, std::time::Duration::from_secs(1))
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let sqlite_code = match &e {
            sqlx::Error::Database(d) => d
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(sqlx::error::DatabaseError::code)
                .and_then(|c| c.parse::<i32>().ok()),
            _ => None,
        };
        let pg_code = match &e {
            sqlx::Error::Database(d) => d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().map(|p| p.code().to_owned()),
            _ => None,
        };
        // By primary code (the low byte): SQLITE_CORRUPT and SQLITE_NOTADB,
        // the file cannot be trusted with another commit; SQLITE_BUSY and
        // SQLITE_LOCKED, another connection holds a lock past the busy
        // timeout. PostgreSQL 55P03: lock_timeout ran out.
        match (sqlite_code.map(|c| c & 0xff), pg_code.as_deref()) {
            (Some(11 | 26), _) => StoreError::Lost(format!("the database file is corrupt: {e}")),
            (Some(5 | 6), _) | (_, Some("55P03")) => StoreError::Busy(e.to_string()),
            _ => StoreError::Unavailable(e),
        }
    }
}

/// How [`CreditStore::wal_checkpoint`] copies the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalMode {
    /// As much as no reader still needs, without waiting for any lock and
    /// without holding up writers or readers (SQLite's PASSIVE): the
    /// server's background checkpointer.
    Passive,
    /// Everything, then the log file cut to zero bytes (SQLite's
    /// TRUNCATE), waiting at most this long for another process's write or
    /// read to end; a log still in use is left as it is. An import's last
    /// step, so that no later write, in any process, is the one that has
    /// to copy the import's pages.
    Truncate(std::time::Duration),
}

/// What a WAL checkpoint did (SQLite's `PRAGMA wal_checkpoint` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// Whether it stopped short: another connection held a lock it needed.
    pub busy: bool,
    /// Frames in the log; 0 after a truncation.
    pub frames: u64,
    /// Frames now copied into the database.
    pub checkpointed: u64,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version created, or the current one when nothing changed.
    pub data_version: u64,
    /// Whether this write created `data_version`.
    pub created: bool,
    pub stored: u32,
    pub unchanged: u32,
    /// The credit codes whose records changed: every one when there are at
    /// most [`CHANGED_CODES_LISTED`] (any `PutRecords` batch), otherwise
    /// none, and `changed_count` says how many (an import of millions of
    /// firms keeps flat memory; replicas learn the codes from the change feed).
    pub changed_codes: Vec<CreditCode>,
    pub changed_count: u64,
}

/// Changed codes a write lists in its outcome at most.
pub const CHANGED_CODES_LISTED: usize = 50_000;

/// The records to write, each labelled with a position for error reports
/// (batch index or file line). An item may already be a validation failure:
/// the write then goes on checking the rest, so that one pass reports every
/// problem, and stores nothing.
pub type RecordSource<'a> = dyn Iterator<Item = (u64, Result<Record, Vec<FieldError>>)> + Send + 'a;

/// Whether to keep a write or only check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Commit,
    /// Check everything, including conflicts with stored records, then roll back.
    DryRun,
}

/// A stored bid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRow {
    pub sequence: u32,
    pub bidder: Bidder,
    pub registered_at: DateTime<Utc>,
}

/// A policy version as stored: its id and the file's text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredPolicy {
    pub policy_id: String,
    pub source: String,
}

/// Told of changes other processes committed (PostgreSQL NOTIFY).
pub trait ChangeSink: Send + Sync + 'static {
    /// A change was announced; `announced` is its data version when known.
    fn changed(&self, announced: Option<u64>);
    /// Announcements may have been missed: catch up from the change table.
    fn notifications_lost(&self);
}

/// Everything the service asks of a credit store.
#[async_trait::async_trait]
pub trait CreditStore: Send + Sync + 'static {
    /// "sqlite" or "postgres", for logs.
    fn backend_name(&self) -> &'static str;

    /// Copies the store's write-ahead log into the database (SQLite only:
    /// `None` for PostgreSQL, which checkpoints itself).
    ///
    /// PITFALL: a SQLite connection checkpoints on its own after a commit
    /// once the log passes 1,000 pages (`wal_autocheckpoint`), inside the
    /// commit's call. After an `import` of 60,000 rows beside `serve`, the
    /// server's next commit was the one that copied the import's whole log
    /// (seconds, synchronous=FULL), so a `PutRecords` with `--write-wait-ms
    /// 1000` was answered after 4.7 s. So no connection checkpoints on its
    /// own (`wal_autocheckpoint=0`): the server checkpoints in the
    /// background ([`WalMode::Passive`], never in a request), and a
    /// writing command before it exits ([`WalMode::Truncate`]).
    async fn wal_checkpoint(&self, mode: WalMode) -> Result<Option<WalCheckpoint>, StoreError>;

    /// The newest data version (0 for an empty store).
    async fn current_version(&self) -> Result<u64, StoreError>;

    /// Writes records all-or-nothing as one new data version.
    ///
    /// A record identical to its id's newest version is skipped; a record with
    /// a known id and new content becomes a new version. Conflicts (an id of
    /// another type, one id twice with different content, an event whose
    /// target is unknown or belongs to another code) reject the whole write
    /// (`Rejected`); so does a record that is not `writer`'s to write under
    /// the ownership rule of [`crate::domain::ownership`] (`NotOwner`).
    /// `writer.source()` is kept with the version.
    async fn write(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError>;

    /// The records of one code as the store held them at `at_version`
    /// (default: the current version).
    async fn profile(&self, code: &CreditCode, at_version: Option<u64>) -> Result<Profile, StoreError>;

    /// The same for several distinct codes at one version, in their order,
    /// in one round trip.
    async fn profiles(&self, codes: &[CreditCode], at_version: Option<u64>) -> Result<Vec<Profile>, StoreError>;

    /// The credit codes changed by each data version after `after`, oldest
    /// first, at most `limit` of them.
    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<(u64, CreditCode)>, StoreError>;

    /// Keeps a policy version (idempotent by digest).
    async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError>;

    /// A policy version by digest.
    async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError>;

    /// A tender version (`None` or 0: the newest).
    async fn tender(&self, id: &TenderId, version: Option<u32>) -> Result<Option<Tender>, StoreError>;

    /// The newest version of every tender with its bid count, latest deadline first.
    async fn list_tenders(&self) -> Result<Vec<(Tender, u32)>, StoreError>;

    /// Inserts version `t.version` of a tender. For version 1 an existing
    /// identical registration is returned as is (idempotent); a different
    /// one is `TenderExists`. For later versions the previous must exist.
    async fn insert_tender(&self, t: &Tender) -> Result<Tender, StoreError>;

    /// Records a bid once; the same bidder again gets its first sequence.
    async fn register_bid(&self, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError>;

    /// A tender's bids in bid order.
    async fn bids(&self, tender_id: &TenderId) -> Result<Vec<BidRow>, StoreError>;

    /// The newest tender change sequence number (0 when none).
    async fn tender_change_seq(&self) -> Result<u64, StoreError>;

    /// The tender change feed after sequence `after`: (seq, tender id), oldest first.
    async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, TenderId)>, StoreError>;

    /// Whether the store is still the one opened and answers: its file (SQLite)
    /// and its schema. Health follows this.
    async fn probe(&self) -> Result<(), StoreError>;

    /// How often [`Self::probe`] is called: every second unless the store
    /// says otherwise (PostgreSQL: a quarter of [`StoreOptions::timeout`]).
    fn probe_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    /// Completes when a call saw the store fail and wants a probe before
    /// the next due one (never, unless the store says otherwise).
    async fn probe_wanted(&self) {
        std::future::pending::<()>().await;
    }

    /// Whether `path` is one of the store's own files (SQLite: the database,
    /// its `-wal` or `-shm`), which this process must never open itself:
    /// closing that descriptor would drop the locks SQLite holds on it.
    fn is_own_file(&self, path: &std::path::Path) -> bool;

    /// Keeps a committee grant; only the link's SHA-256 is stored.
    async fn insert_grant(&self, grant: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError>;

    /// Uses a grant's link once, binding a session to it; `None` for a link
    /// unknown, already used, revoked or expired.
    async fn redeem_grant(&self, link_sha256: &str, session_sha256: &str, now: DateTime<Utc>)
    -> Result<Option<CommitteeGrant>, StoreError>;

    /// The grant a session belongs to (live or not: the caller checks).
    async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError>;

    async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError>;

    /// Revokes a grant; false if it was unknown or already revoked.
    async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Whether any record of `code` was written under `source` (a principal's name).
    async fn written_by(&self, code: &CreditCode, source: &str) -> Result<bool, StoreError>;

    /// A task that hears other processes' commits and tells `sink`, for a
    /// backend that can announce them (PostgreSQL); `None` for one that cannot.
    fn listen(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>>;

    /// Appends leaves to the transparency log, after every leaf any process
    /// appended before; returns the first one's index. Committed (durable)
    /// when this returns.
    async fn log_append(&self, leaves: &[Vec<u8>]) -> Result<u64, StoreError>;

    /// Leaves in the log.
    async fn log_size(&self) -> Result<u64, StoreError>;

    /// The log's stored hashes at these indexes (tlog order); all or an error.
    async fn log_hashes(&self, indexes: &[u64]) -> Result<crate::tlog::tree::Known, StoreError>;

    /// Leaves `start..end` (fewer if the log is shorter).
    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The index of the first leaf with this leaf hash.
    async fn log_index_of(&self, leaf_hash: &[u8]) -> Result<Option<u64>, StoreError>;

    /// Keeps a published checkpoint (the first one of a size wins).
    async fn put_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;

    /// The newest checkpoint, or the one of `size`.
    async fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Every checkpoint published, smallest first.
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// Every credit code with an evaluation recorded at or before
    /// `at_version`, in code order: who may be in a supervision draw's
    /// population (`crate::supervision`).
    async fn evaluated_codes(&self, at_version: u64) -> Result<Vec<CreditCode>, StoreError>;
}

/// Pooled connections to the store unless told otherwise: measured with
/// `examples/loadgen` against PostgreSQL on 2 cores (BENCHMARKS.md, round 3).
pub const DEFAULT_CONNECTIONS: u32 = 8;

/// How long a write waits for its turn unless told otherwise (`serve
/// --write-wait-ms`): behind this process's other writes, then behind
/// another process holding the store's write lock (an import). Past it the
/// write is refused as [`StoreError::Busy`], nothing stored. Ten seconds, as
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
/// [`StoreError::Queued`] (RESOURCE_EXHAUSTED), since the queue is of this
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

/// A handle to a credit store on either backend; cloning it is cheap.
#[derive(Clone)]
pub struct Store(Arc<dyn CreditStore>);

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
    Existing { read_only: bool },
}

/// Whether `url` names a backend this build has: `sqlite:…`, `postgres://…`
/// or `postgresql://…`.
pub fn supported_url(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) and migrates the store a URL names, with
    /// [`DEFAULT_CONNECTIONS`] pooled connections.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, DEFAULT_CONNECTIONS).await
    }

    /// The same, with `connections` pooled connections (at least one).
    pub async fn open_with(url: &str, connections: u32) -> Result<Store, StoreError> {
        Store::open_options(url, StoreOptions { connections, ..StoreOptions::default() }).await
    }

    /// Opens the store a URL names as `mode` says, with `connections`
    /// pooled connections.
    pub async fn open_as(url: &str, connections: u32, mode: OpenMode) -> Result<Store, StoreError> {
        Store::open_options(url, StoreOptions { connections, mode, ..StoreOptions::default() }).await
    }

    /// The same, with every option. A PostgreSQL that refuses the
    /// connection is an error at once, not after the pool's time-out.
    pub async fn open_options(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let options = StoreOptions { connections: options.connections.max(1), ..options };
        if url.starts_with("sqlite:") {
            Ok(Store::new(sqlite::open(url, options).await?))
        } else if supported_url(url) {
            Ok(Store::new(postgres::open(url, options).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn new(store: impl CreditStore) -> Store {
        Store(Arc::new(store))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn CreditStore;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A record version as read back, before grouping into a [`Profile`].
#[derive(Debug, sqlx::FromRow)]
pub struct RecordRow {
    pub record_id: String,
    pub version: i64,
    pub digest: String,
    pub body: String,
}

/// A record version of one of several codes' profiles, with the code it
/// was read for and the store's newest data version.
#[derive(Debug, sqlx::FromRow)]
pub struct ProfileRow {
    pub origin: String,
    pub record_id: String,
    pub version: i64,
    pub digest: String,
    pub body: String,
    pub newest: Option<i64>,
}

/// Groups all visible versions of a code's record ids into a profile.
pub(crate) fn build_profile(code: &CreditCode, data_version: u64, rows: Vec<RecordRow>) -> Result<Profile, StoreError> {
    use crate::domain::profile::{StoredRecord, Superseded};
    use std::collections::BTreeMap;
    // rows are ordered by version, so the last of each id is its newest.
    let mut by_id: BTreeMap<String, Vec<StoredRecord>> = BTreeMap::new();
    for row in rows {
        let record: Record = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("record {} version {}: {e}", row.record_id, row.version)))?;
        by_id.entry(row.record_id).or_default().push(StoredRecord { record, recorded_version: row.version as u64, digest: row.digest });
    }
    let mut current = Vec::new();
    let mut history = Vec::new();
    for (_, mut versions) in by_id {
        let newest = versions.pop().expect("at least one version");
        let mut next = newest.recorded_version;
        for older in versions.into_iter().rev() {
            history.push(Superseded { superseded_at: next, stored: older.clone() });
            next = older.recorded_version;
        }
        // An id whose newest version moved to another code is not this code's.
        if newest.record.credit_code() == code {
            current.push(newest);
        }
    }
    current.sort_by(|a, b| (a.recorded_version, a.record.id()).cmp(&(b.recorded_version, b.record.id())));
    history.sort_by_key(|h| std::cmp::Reverse(h.superseded_at));
    let (events, records) = current.into_iter().partition(|s| matches!(s.record, Record::Event(_)));
    Ok(Profile { credit_code: code.clone(), data_version, records, events, history })
}
