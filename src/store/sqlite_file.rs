//! The SQLite store's file, watched for loss and replacement without this
//! process ever opening it, and the renewal of connections that read it
//! while it was damaged.

use super::dialect::NEWEST_VERSION;
use super::error::StoreError;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePoolOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Replaces the pools' connections after the file was repaired: a
/// connection that read a damaged first page keeps it in its page cache,
/// and SQLite reads it again only when the WAL changes, which a store
/// refusing writes does not do. Each connection opened before the last
/// renewal is closed when next taken from its pool, and a new one opened.
#[derive(Clone)]
pub(super) struct Renewal {
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
    pub(super) fn pool(&self, connections: u32) -> SqlitePoolOptions {
        let renewal = self.clone();
        // No ping before each acquire (sqlx's default): the connection is a
        // thread in this process, and the ping was one more round trip to it
        // on every write and read.
        SqlitePoolOptions::new().max_connections(connections).test_before_acquire(false).before_acquire(move |conn, meta| {
            let keep = renewal.keeps(meta.age);
            Box::pin(async move { Ok(keep && out_of_transaction(conn).await?) })
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

/// Whether a pooled connection is out of any transaction, as sqlx counts
/// them; one that is not is closed and replaced.
///
/// PITFALL (sqlx issue #3742, the SQLite form): when a COMMIT fails with
/// SQLITE_FULL or SQLITE_IOERR, SQLite may already have rolled the
/// transaction back. sqlx's ROLLBACK then fails ("no transaction is
/// active"), its count of open transactions stays at 1, and every later
/// `BEGIN IMMEDIATE` on that connection is refused
/// (`InvalidSavePointStatement`). The writer pool has one connection, so
/// after one full disk the server refused every write until restarted.
/// A rollback of a dropped transaction may still be queued for the
/// connection's thread, so a count above 0 is looked at again after a ping,
/// which that thread answers only after the rollback.
async fn out_of_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::{Database, TransactionManager};
    type Manager = <sqlx::Sqlite as Database>::TransactionManager;
    if Manager::get_transaction_depth(conn) == 0 {
        return Ok(true);
    }
    conn.ping().await?;
    Ok(Manager::get_transaction_depth(conn) == 0)
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
pub(super) struct StoreFile {
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
    pub(super) fn of(path: &Path, fresh: SqliteConnectOptions, renewal: Renewal) -> std::io::Result<StoreFile> {
        use std::os::unix::fs::MetadataExt;
        // realpath and stat: neither opens the file.
        let path = std::fs::canonicalize(path)?;
        let m = std::fs::metadata(&path)?;
        Ok(StoreFile { path, dev: m.dev(), ino: m.ino(), fresh, renewal })
    }

    /// After a repair: every pooled connection is replaced before its next use.
    pub(super) fn renew_connections(&self) {
        self.renewal.renew();
    }

    /// Whether the file at the path is still the one opened (by `stat`):
    /// cheap enough for every write.
    pub(super) fn check_path(&self) -> Result<(), StoreError> {
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
    pub(super) fn check_descriptors(&self) -> Result<(), StoreError> {
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
    pub(super) fn is(&self, other: &Path) -> bool {
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
    pub(super) async fn check_readable(&self) -> Result<(), StoreError> {
        let mut conn = SqliteConnection::connect_with(&self.fresh).await?;
        let read = sqlx::query(NEWEST_VERSION).fetch_one(&mut conn).await;
        let _ = conn.close().await;
        read?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction SQLite rolled back itself (as on a full disk), which
    /// sqlx still counts as open, does not leave the pool's connection
    /// refusing every later transaction.
    #[tokio::test]
    async fn a_connection_whose_transaction_sqlite_ended_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let pool = Renewal::default().pool(1).connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&pool).await.unwrap();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        // What SQLite does on SQLITE_FULL in a COMMIT, behind sqlx's back.
        sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        drop(tx); // sqlx's own ROLLBACK now fails: no transaction is active
        for _ in 0..2 {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("a fresh connection, not InvalidSavePointStatement");
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap();
        assert_eq!(n, 2);
    }
}
