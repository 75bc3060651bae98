//! The SQL dialect at the bottom of the store: what differs between SQLite
//! and PostgreSQL ([`Backend`]), the few helpers every table family uses to
//! write statements for either (parameters, IN lists, the newest version),
//! and [`sql_impl!`], the one statement of what sqlx must be able to do with
//! a backend's types. Everything else in the store is written once above this.

use super::types::{ChangeSink, WalCheckpoint, WalMode};
use futures_util::future::BoxFuture;
use sqlx::{Database, FromRow, Pool, Transaction};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What differs between the two backends.
pub trait Backend: Database {
    const NAME: &'static str;

    /// Whether generated statements number their parameters (`$1`) or not (`?`).
    const NUMBERED_PARAMS: bool;

    /// Every version, up to `$1`, of every record id that concerned one of
    /// the codes in `codes` (an IN list of `$2, $3, …`) at some version up to
    /// `$1`, with the code it concerned (`origin`) and the store's newest
    /// data version (`newest`, read in the same statement), ordered by
    /// origin, version, id. Each planner needs its own phrasing to stay on
    /// the indexes.
    fn profiles_sql(codes: &str) -> String;

    /// Opens a write transaction that holds the store's write lock, so that
    /// data versions are taken one at a time and commit in order. Waits at
    /// most `wait` for a lock another process holds (or not at all: the
    /// store's write path then tries again until the same bound).
    fn begin_write(pool: &Pool<Self>, wait: Duration) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Opens a transaction that holds the transparency log's append lock, so
    /// that replicas sharing the store append one batch at a time, each
    /// after the last: one order, no gaps, no index taken twice.
    fn begin_log_append(pool: &Pool<Self>, wait: Duration) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Opens a write transaction for a write that needs no ordering with
    /// others (committee grants, policies, checkpoints).
    fn begin_small_write(pool: &Pool<Self>, wait: Duration)
    -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Announces a committed change to other processes, inside the writing
    /// transaction (so that it is heard only once the change is readable).
    fn announce<'c>(conn: &'c mut Self::Connection, payload: &'c str) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Stores new record versions of data version `version` (the bulk of an
    /// import): multi-row INSERTs, or COPY where the backend has it.
    fn insert_records<'c>(
        conn: &'c mut Self::Connection,
        version: i64,
        rows: &'c [NewRecord],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Refreshes the planner's statistics of the record tables, where the
    /// planner needs them: `None` when it does not.
    const ANALYZE: Option<&'static str>;

    /// Gives a connection about to write many records the page cache of a
    /// bulk write, where the backend's cache is the connection's own, and
    /// returns what to give back to [`Backend::leave_bulk`]: `None` where it
    /// is not (PostgreSQL's shared buffers are the server's).
    fn enter_bulk<'c>(_conn: &'c mut Self::Connection) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send + 'c {
        async { Ok(None) }
    }

    /// Gives the connection back the cache it had before [`Backend::enter_bulk`].
    fn leave_bulk<'c>(_conn: &'c mut Self::Connection, _before: i64) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c {
        async { Ok(()) }
    }

    /// Stages codes changed by a write in bulk mode (see
    /// [`Backend::enter_bulk`]) where the backend can stage them more cheaply
    /// than inserting each into the change feed, with its conflict check, as
    /// it comes: `first` on the write's first call. Answers whether it did
    /// (`false`: the caller inserts them itself); the staged codes go into
    /// the feed once each with [`Backend::CHANGED_FROM_STAGED`].
    fn stage_changed<'c>(
        _conn: &'c mut Self::Connection,
        _codes: &'c [&'c String],
        _first: bool,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send + 'c {
        async { Ok(false) }
    }

    /// Moves the codes [`Backend::stage_changed`] staged into the change feed
    /// for data version `$1`, once each: `None` where nothing is staged.
    const CHANGED_FROM_STAGED: Option<&'static str> = None;

    /// Rows a statement changed (sqlx's result types share no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// A task that hears other processes' announcements, where the backend has them.
    fn change_listener(pool: &Pool<Self>, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>>;

    /// Copies the write-ahead log into the database, where the backend has
    /// one of its own to manage (SQLite; PostgreSQL checkpoints itself):
    /// `None` otherwise. See [`WalCheckpoint`].
    fn wal_checkpoint(
        _pool: &Pool<Self>,
        _mode: WalMode,
        _pool_wait: Duration,
    ) -> BoxFuture<'static, Result<Option<WalCheckpoint>, sqlx::Error>> {
        Box::pin(async { Ok(None) })
    }
}

/// A record version to store.
pub struct NewRecord {
    pub id: String,
    pub kind: &'static str,
    pub code: String,
    pub digest: String,
    /// Its canonical JSON.
    pub body: String,
}

#[derive(FromRow)]
pub struct Newest {
    pub newest: Option<i64>,
}

/// The `i`th (1-based) parameter: `$i`, or `?` where numbered parameters
/// cost more than they give (SQLite: sqlx maps each numbered parameter by
/// name, a linear search per parameter, quadratic in a multi-row insert).
fn param<DB: Backend>(i: usize) -> String {
    if DB::NUMBERED_PARAMS { format!("${i}") } else { "?".to_owned() }
}

/// `($1, $2), ($3, $4), …` for `rows` rows of `cols` columns.
pub(super) fn placeholders<DB: Backend>(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", (1..=cols).map(|c| param::<DB>(r * cols + c)).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, …` for an IN list of `n`.
pub(super) fn in_list<DB: Backend>(n: usize) -> String {
    (1..=n).map(param::<DB>).collect::<Vec<_>>().join(", ")
}

/// The newest data version (`None` in an empty store).
pub(super) const NEWEST_VERSION: &str = "SELECT MAX(version) AS newest FROM data_versions";

/// Followed by a VALUES list of six columns per record: what
/// [`Backend::insert_records`] does where the backend has no COPY.
pub(super) const INSERT_RECORDS: &str = "INSERT INTO records (record_id, version, kind, credit_code, digest, body) VALUES";

/// An `impl` block over every [`Backend`], with the one statement of what
/// sqlx must be able to do with the backend's types: run statements on a
/// connection (and so on a pool or in a transaction), bind integers, text,
/// instants and bytes, and read [`Newest`] and each row struct the block
/// names after `reading`, its table family's own. Both sqlx drivers meet
/// these bounds, and the compiler checks it for each. Written once here so
/// that a table family names only its own rows (the bounds cannot be a
/// trait's: Rust does not carry a trait's where-clauses to its users):
///
/// ```ignore
/// sql_impl! {
///     #[async_trait::async_trait]
///     impl TenderStore for SqlStore<DB>, reading [TenderRow, StoredBid] {
///         /* methods */
///     }
/// }
/// ```
///
/// An inherent block is `impl SqlStore<DB>, reading [...] { ... }`. The
/// type's one generic parameter is always `DB`.
macro_rules! sql_impl {
    ($(#[$attr:meta])* impl $($head:ident)* <DB>, reading [$($row:ty),* $(,)?] { $($body:tt)* }) => {
        $(#[$attr])*
        impl<DB> $($head)* <DB>
        where
            DB: super::dialect::Backend,
            for<'c> &'c mut <DB as ::sqlx::Database>::Connection: ::sqlx::Executor<'c, Database = DB>,
            for<'q> <DB as ::sqlx::Database>::Arguments<'q>: ::sqlx::IntoArguments<'q, DB>,
            for<'q> i64: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> &'q str: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> String: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Vec<u8>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> ::chrono::DateTime<::chrono::Utc>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'r> super::dialect::Newest: ::sqlx::FromRow<'r, <DB as ::sqlx::Database>::Row>,
            $(for<'r> $row: ::sqlx::FromRow<'r, <DB as ::sqlx::Database>::Row>,)*
        {
            $($body)*
        }
    };
}
pub(super) use sql_impl;
