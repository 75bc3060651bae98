//! Why the store refused or failed: [`StoreError`], and how a sqlx error
//! becomes one.

use crate::domain::input::FieldError;
use crate::domain::tender::TenderId;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Records that conflict with what is stored or with each other; the
    /// `u64` is the caller's position label (batch index or file line).
    #[error("{} record problem(s)", .0.len())]
    Rejected(Vec<(u64, FieldError)>),
    #[error("data version {requested} is ahead of the store's current version {current}")]
    /// A read at a data version the store has not reached yet.
    FutureVersion {
        /// The version asked for.
        requested: u64,
        /// The store's newest version.
        current: u64,
    },
    /// Any other database error: the connection failed, timed out, or the
    /// database refused the statement. Retry, or see the source.
    #[error("the store cannot be reached")]
    Unavailable(#[source] sqlx::Error),
    /// Another process holds the store's write lock (a long import) past
    /// the write's wait bound (SQLITE_BUSY / SQLITE_LOCKED, PostgreSQL
    /// lock_not_available). The store is there: retry.
    #[error("the credit store is busy (another process is writing): {0}")]
    Busy(String),
    /// This process's own writes are queued deeper than a write may wait
    /// ([`WRITE_QUEUE_WAIT`](super::options::WRITE_QUEUE_WAIT)): the server is overloaded with writes. No
    /// other process is involved; the write was not begun: retry later.
    #[error("this server's write queue is full: {0}")]
    Queued(String),
    /// Records their writer may not write: versions, events or revocations
    /// of a record another owner's, or that would move a record to another
    /// owner (see [`crate::domain::ownership`]). Every problem of the batch,
    /// by position, as in `Rejected`.
    #[error("{} record(s) not the writer's to change", .0.len())]
    NotOwner(Vec<(u64, FieldError)>),
    /// A stored row that does not parse back (a record's JSON, a tender's
    /// words); says which row. Not retryable.
    #[error("stored row is unreadable: {0}")]
    Corrupt(String),
    /// Bringing the schema up to this binary's failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A first registration of a tender id already registered with other
    /// terms (the same terms again return the stored tender).
    #[error("tender '{0}' is already registered with other terms; use AmendTender to change it")]
    TenderExists(TenderId),
    /// A registration of an id another platform's tender has: tender ids
    /// are one namespace, so that much is said, and nothing more.
    #[error("tender id '{0}' is taken; register the tender under another id")]
    TenderIdTaken(TenderId),
    /// An amendment or bid for a tender id never registered.
    #[error("no tender '{0}'")]
    UnknownTender(TenderId),
    /// A database URL that is neither `sqlite:…` nor `postgres://…`/`postgresql://…`.
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
    /// [`OpenMode::Existing`](super::options::OpenMode::Existing): there is no store there (no file, no database,
    /// or one without credit-tender's schema).
    #[error("{0}")]
    Missing(String),
    /// [`OpenMode::Existing`](super::options::OpenMode::Existing): the store's schema is not this binary's, and
    /// the command may not migrate it.
    #[error("{0}")]
    Schema(String),
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
