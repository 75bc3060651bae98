//! The embedded backend: one SQLite file in WAL mode, safe to share with
//! `credit-tender import` (and any other process) running on the same file.

use super::dialect::{Backend, NewRecord, placeholders};
use super::sql::{INSERT_RECORDS, SqlStore};
use super::{ChangeSink, OpenMode, StoreError, StoreOptions, WalCheckpoint, WalMode};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Pool, Sqlite, Transaction};
use std::future::Future;
use std::path::{Path, PathBuf};
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
    let options = super::statement_logging(SqliteConnectOptions::from_str(url)?)
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

/// Replaces the pools' connections after the file was repaired: a
/// connection that read a damaged first page keeps it in its page cache,
/// and SQLite reads it again only when the WAL changes, which a store
/// refusing writes does not do. Each connection opened before the last
/// renewal is closed when next taken from its pool, and a new one opened.
#[derive(Clone)]
struct Renewal {
    base: std::time::Instant,
    /// Microseconds after `base` of the last renewal; 0: none yet.
    at: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Renewal {
    fn default() -> Self {
        Renewal { base: std::time::Instant::now(), at: Arc::default() }
    }
}

impl Renewal {
    fn pool(&self, connections: u32) -> SqlitePoolOptions {
        let renewal = self.clone();
        SqlitePoolOptions::new().max_connections(connections).before_acquire(move |_conn, meta| {
            let keep = renewal.keeps(meta.age);
            Box::pin(async move { Ok(keep) })
        })
    }

    /// Whether a connection of this age was opened after the last renewal.
    fn keeps(&self, age: Duration) -> bool {
        use std::sync::atomic::Ordering;
        match self.at.load(Ordering::Acquire) {
            0 => true,
            at => self.base.elapsed().saturating_sub(age) >= Duration::from_micros(at),
        }
    }

    fn renew(&self) {
        use std::sync::atomic::Ordering;
        self.at.store((self.base.elapsed().as_micros() as u64).max(1), Ordering::Release);
    }
}

/// The store's file, watched without this process ever opening it.
///
/// PITFALL (SQLite's "How To Corrupt", §2.2): on POSIX, closing *any*
/// descriptor of a file drops *all* of the process's advisory locks on it.
/// This check once opened the database file to read its header, on every
/// write and every probe: the server then held none of SQLite's locks, the
/// next `import` to close believed it was the last connection and deleted
/// the WAL under the server, and both went on committing the same data
/// versions into different files until the store was malformed. So the
/// files are looked at only through `stat` (which opens nothing), through
/// the links in `/proc/self/fd` (the descriptors SQLite itself holds), and
/// through SQLite (a connection of its own, whose close SQLite defers while
/// other connections of the process hold locks).
pub(crate) struct StoreFile {
    /// As the kernel names it in /proc/self/fd (canonical).
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// A fresh connection's options (never creating the file): the probe
    /// reads the file as a new reader, or a restart, would.
    fresh: SqliteConnectOptions,
    renewal: Renewal,
}

impl StoreFile {
    fn of(path: &Path, fresh: SqliteConnectOptions, renewal: Renewal) -> std::io::Result<StoreFile> {
        use std::os::unix::fs::MetadataExt;
        // realpath and stat: neither opens the file.
        let path = std::fs::canonicalize(path)?;
        let m = std::fs::metadata(&path)?;
        Ok(StoreFile { path, dev: m.dev(), ino: m.ino(), fresh, renewal })
    }

    /// After a repair: every pooled connection is replaced before its next use.
    pub(crate) fn renew_connections(&self) {
        self.renewal.renew();
    }

    /// Whether the file at the path is still the one opened (by `stat`):
    /// cheap enough for every write.
    pub(crate) fn check_path(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => Ok(()),
            Ok(_) => Err(StoreError::Lost(format!("{} was replaced by another file", self.path.display()))),
            Err(e) => Err(StoreError::Lost(format!("{}: {e}", self.path.display()))),
        }
    }

    /// Whether every descriptor SQLite holds on the database is the file
    /// at the path, and none on its `-wal` or `-shm` was deleted under it
    /// (which happens only when another process believed it was the last
    /// connection: writes since then went to a file nobody else sees).
    /// Reads the links of /proc/self/fd and `stat`s through them; opens
    /// nothing. Where there is no /proc, only the path is checked.
    pub(crate) fn check_descriptors(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Ok(()) };
        let db = self.path.to_string_lossy();
        let deleted = format!("{db} (deleted)");
        let gone = [format!("{db}-wal (deleted)"), format!("{db}-shm (deleted)")];
        for entry in dir.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            let target = target.to_string_lossy();
            if target == db {
                // stat through the link is fstat of SQLite's descriptor. A
                // descriptor closed meanwhile is simply gone.
                if let Ok(m) = std::fs::metadata(entry.path())
                    && (m.dev(), m.ino()) != (self.dev, self.ino)
                {
                    return Err(StoreError::Lost(format!("{db} is open here as another file than the one at its path")));
                }
            } else if target == deleted {
                return Err(StoreError::Lost(format!("{db} was deleted while open")));
            } else if gone.iter().any(|g| *g == target) {
                let file = target.trim_end_matches(" (deleted)");
                return Err(StoreError::Lost(format!(
                    "{file} was deleted by another process while this one had it open: writes since then may be in a file no other process sees; stop every process using the store, then restart"
                )));
            }
        }
        Ok(())
    }

    /// Whether `other` is this database or its `-wal` or `-shm` (by `stat`).
    pub(crate) fn is(&self, other: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = std::fs::metadata(other) else { return false };
        let id = (m.dev(), m.ino());
        let mut ours = vec![(self.dev, self.ino)];
        for suffix in ["-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(&p) {
                ours.push((m.dev(), m.ino()));
            }
        }
        ours.contains(&id)
    }

    /// Whether SQLite can read the file as a fresh connection would (its
    /// header and schema; a file overwritten in place fails here even
    /// while this process's connections still hold its first page).
    pub(crate) async fn check_readable(&self) -> Result<(), StoreError> {
        let mut conn = SqliteConnection::connect_with(&self.fresh).await?;
        let read = sqlx::query(super::sql::NEWEST_VERSION).fetch_one(&mut conn).await;
        let _ = conn.close().await;
        read?;
        Ok(())
    }
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

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn listen(_pool: &Pool<Sqlite>, _sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
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
            let row: (i64, i64, i64) = match mode {
                WalMode::Passive => sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?,
                WalMode::Truncate(wait) => {
                    sqlx::query(&format!("PRAGMA busy_timeout = {}", wait.as_millis())).execute(&mut *conn).await?;
                    let row = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await;
                    sqlx::query(&format!("PRAGMA busy_timeout = {}", pool_wait.as_millis())).execute(&mut *conn).await?;
                    row?
                }
            };
            // (busy, log, checkpointed); -1 for the last two when the store is not in WAL mode.
            Ok(Some(WalCheckpoint { busy: row.0 != 0, frames: row.1.max(0) as u64, checkpointed: row.2.max(0) as u64 }))
        })
    }
}
