//! The embedded backend: one SQLite file in WAL mode, safe to share with
//! `credit-tender import` (and any other process) running on the same file.

use super::dialect::{Backend, INSERT_RECORDS, NewRecord, placeholders};
use super::error::StoreError;
use super::options::{OpenMode, StoreOptions, statement_logging};
use super::sql::SqlStore;
use super::sqlite_file::{Renewal, StoreFile};
use super::types::{ChangeSink, WalCheckpoint, WalMode};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Opens a SQLite store: creating and migrating it ([`OpenMode::Create`]),
/// or only an existing one at this binary's schema ([`OpenMode::Existing`]).
///
/// Two pools share the file: readers, whose busy timeout is the write wait
/// (a reader is held up only in SQLite's rare recovery steps), and one
/// writer connection with no busy timeout of its own: the write path waits
/// for another process's write lock itself, up to the write wait, so that
/// the bound holds however many of this process's writes are queued, and
/// so that waiting shows in the log.
pub(super) async fn open(url: &str, opts: StoreOptions) -> Result<SqlStore<Sqlite>, StoreError> {
    let migrator = sqlx::migrate!("migrations/sqlite");
    // Pragmas go on the connect options so that every pooled connection gets them.
    let options = statement_logging(SqliteConnectOptions::from_str(url)?)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(opts.write_wait)
        .foreign_keys(true)
        // Checkpoints are never run inside a commit (see CreditStore::wal_checkpoint).
        .pragma("wal_autocheckpoint", "0");
    let options = match opts.mode {
        OpenMode::Create => options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal),
        // The journal mode is kept in the file: an existing store is in WAL already.
        OpenMode::Existing { read_only } => options.create_if_missing(false).read_only(read_only),
    };
    let path = options.get_filename().to_owned();
    let in_memory = path.as_os_str() == ":memory:" || url.contains("mode=memory");
    // A stat, not an open: see StoreFile.
    if let (OpenMode::Existing { .. }, false) = (opts.mode, in_memory)
        && !path.is_file()
    {
        return Err(StoreError::Missing(format!("there is no SQLite store at {}", path.display())));
    }
    if !in_memory {
        refuse_hard_links(&path)?;
    }
    let renewal = Renewal::default();
    let pool = renewal.pool(opts.connections).connect_with(options.clone()).await?;
    match opts.mode {
        OpenMode::Create => migrator.run(&pool).await?,
        OpenMode::Existing { .. } => {
            let applied = super::schema::applied_sqlite(&pool).await?;
            super::schema::check(&migrator, applied, &path.display().to_string())?;
        }
    }
    // One writer at a time in this process anyway (the store's write queue).
    let writer = renewal.pool(1).connect_with(options.clone().busy_timeout(Duration::ZERO)).await?;
    // An in-memory database has no file to watch.
    let path = options.get_filename().to_owned();
    let file = StoreFile::of(&path, options.create_if_missing(false), renewal).ok();
    Ok(SqlStore::new(pool, writer, file, opts.write_wait))
}

/// Refuses a database file with more than one name in the file system
/// (hard links), and a `-wal` or `-shm` beside it with more than one.
///
/// PITFALL: SQLite names the write-ahead log and the shared-memory lock
/// file after the path it was given (it resolves symbolic links, not hard
/// links). Two hard-linked names of one file are one database with two
/// WALs and two lock files: a server on one name and an `import` on the
/// other each commit into their own WAL, reuse each other's data versions,
/// and whichever WAL is checkpointed last loses the other's acknowledged
/// writes, with `integrity_check` still "ok". So any second name is
/// refused, by every command, before SQLite opens anything. By `stat`
/// only (see [`StoreFile`]).
fn refuse_hard_links(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.nlink() > 1
    {
        return Err(StoreError::Unsafe(format!(
            "{} has {} hard links (names for the same file): SQLite keeps a write-ahead log and lock file per name, so \
             processes opening it by different names would lose each other's writes; keep one name and remove the \
             others (`find / -samefile {}` lists them; a symbolic link is safe)",
            path.display(),
            m.nlink(),
            path.display()
        )));
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    for suffix in ["-wal", "-shm"] {
        let mut side = real.clone().into_os_string();
        side.push(suffix);
        if let Ok(m) = std::fs::symlink_metadata(&side)
            && m.nlink() > 1
        {
            return Err(StoreError::Unsafe(format!(
                "{} has {} hard links: another database, or another name of this one, would share this store's {} \
                 file and each would overwrite the other's; stop every process using the store, remove the other names, \
                 then start again",
                std::path::PathBuf::from(side).display(),
                m.nlink(),
                &suffix[1..]
            )));
        }
    }
    Ok(())
}

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";

    /// sqlx looks each numbered parameter up by name: `?` in long statements.
    const NUMBERED_PARAMS: bool = false;

    /// SQLite plans the join through the indexes.
    fn profiles_sql(codes: &str) -> String {
        format!(
            "SELECT ids.credit_code AS origin, r.record_id, r.version, r.digest, r.body, \
                    (SELECT MAX(version) FROM data_versions) AS newest \
             FROM (SELECT DISTINCT credit_code, record_id FROM records WHERE version <= $1 AND credit_code IN ({codes})) ids \
             JOIN records r ON r.record_id = ids.record_id AND r.version <= $1 \
             ORDER BY ids.credit_code, r.version, r.record_id"
        )
    }

    /// IMMEDIATE takes the write lock now, so the version read next cannot be
    /// taken by another process (such as `credit-tender import`) before this
    /// transaction commits. On the writer connection, which has no busy
    /// timeout: SQLITE_BUSY at once while another process writes, and the
    /// store's write path waits and tries again.
    fn begin_write(pool: &Pool<Sqlite>, _wait: Duration) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    fn begin_small_write(
        pool: &Pool<Sqlite>,
        _wait: Duration,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    fn begin_log_append(
        pool: &Pool<Sqlite>,
        _wait: Duration,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    /// One file has no other replicas to tell.
    async fn announce<'c>(_conn: &'c mut SqliteConnection, _payload: &'c str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// 500 rows (3,000 parameters) per statement.
    async fn insert_records(conn: &mut SqliteConnection, version: i64, rows: &[NewRecord]) -> Result<(), sqlx::Error> {
        for part in rows.chunks(500) {
            let sql = format!("{INSERT_RECORDS} {}", placeholders::<Sqlite>(part.len(), 6));
            let mut q = sqlx::query(&sql);
            for r in part {
                q = q.bind(r.id.as_str()).bind(version).bind(r.kind).bind(r.code.as_str()).bind(r.digest.as_str()).bind(r.body.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// SQLite plans on its indexes without statistics.
    const ANALYZE: Option<&'static str> = None;

    /// 256 MiB at most, taken only as the write touches pages: with credit
    /// codes in random order every record lands on a random page of both
    /// record indexes and the change feed's, and in SQLite's default 2 MiB
    /// those pages are read back and spilled to the WAL again and again
    /// (BENCHMARKS.md, Import).
    async fn enter_bulk(conn: &mut SqliteConnection) -> Result<Option<i64>, sqlx::Error> {
        let (before,): (i64,) = sqlx::query_as("PRAGMA cache_size").fetch_one(&mut *conn).await?;
        sqlx::query("PRAGMA cache_size = -262144").execute(&mut *conn).await?;
        Ok(Some(before))
    }

    async fn leave_bulk(conn: &mut SqliteConnection, before: i64) -> Result<(), sqlx::Error> {
        let sql = format!("PRAGMA cache_size = {before}");
        sqlx::query(&sql).execute(&mut *conn).await?;
        Ok(())
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn change_listener(_pool: &Pool<Sqlite>, _sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// `PRAGMA wal_checkpoint` on a reader connection. For a truncation,
    /// the connection's busy timeout is the mode's wait for that statement
    /// only, then the pool's again.
    fn wal_checkpoint(
        pool: &Pool<Sqlite>,
        mode: WalMode,
        pool_wait: Duration,
    ) -> BoxFuture<'static, Result<Option<WalCheckpoint>, sqlx::Error>> {
        let pool = pool.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let (pragma, wait) = match mode {
                WalMode::Passive => ("PRAGMA wal_checkpoint(PASSIVE)", None),
                WalMode::Truncate(wait) => ("PRAGMA wal_checkpoint(TRUNCATE)", Some(wait)),
                WalMode::Restart(wait) => ("PRAGMA wal_checkpoint(RESTART)", Some(wait)),
            };
            let row: (i64, i64, i64) = match wait {
                None => sqlx::query_as(pragma).fetch_one(&mut *conn).await?,
                Some(wait) => {
                    sqlx::query(&format!("PRAGMA busy_timeout = {}", wait.as_millis())).execute(&mut *conn).await?;
                    let row = sqlx::query_as(pragma).fetch_one(&mut *conn).await;
                    sqlx::query(&format!("PRAGMA busy_timeout = {}", pool_wait.as_millis())).execute(&mut *conn).await?;
                    row?
                }
            };
            // (busy, log, checkpointed); -1 for the last two when the store is not in WAL mode.
            Ok(Some(WalCheckpoint { busy: row.0 != 0, frames: row.1.max(0) as u64, checkpointed: row.2.max(0) as u64 }))
        })
    }
}
