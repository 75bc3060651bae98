//! [`SqlStore`]: a credit store over one sqlx pool, and a write's turn (this
//! process's queue, then the store's write lock, within the write wait).
//!
//! `SqlStore` is generic over a [`Backend`]: a sqlx database plus the few
//! things that really differ between SQLite and PostgreSQL. Its SQL is
//! written once, one file per table family (`records.rs`, `record_write.rs`,
//! `tenders.rs`, `policies.rs`, `grants.rs`, `log_tables.rs`, `upkeep.rs`),
//! each an implementation of its family's trait.

use super::dialect::Backend;
use super::error::StoreError;
use super::options::WRITE_QUEUE_WAIT;
use super::sqlite_file::StoreFile;
use sqlx::{Database, Pool, Transaction};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// A credit store over one sqlx pool.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    /// Where writes are made: for SQLite one connection with no busy
    /// timeout of its own (see [`SqlStore::turn`]); for PostgreSQL the pool.
    pub(super) writer: Pool<DB>,
    /// Writers of this process queue here rather than inside the database:
    /// SQLite would make them spin on SQLITE_BUSY, and on PostgreSQL they
    /// would only wait for the table lock that [`Backend::begin_write`] takes.
    /// Writers in other processes are held off by that lock.
    pub(super) write_lock: Mutex<()>,
    /// The write at the head of the queue is waiting for another process's
    /// lock: those behind it wait for that too, up to the whole write wait.
    pub(super) held_off: std::sync::atomic::AtomicBool,
    /// How long a write waits for its turn, in this queue and then for a
    /// lock another process holds, before it is answered busy.
    pub(super) write_wait: Duration,
    /// The file the store was opened on (SQLite): a write commits only while
    /// that very file is still at its path, so that nothing is acknowledged
    /// into a file that was deleted or replaced underneath.
    pub(super) file: Option<StoreFile>,
    /// Why the last probe found the file lost (it reads the file as a new
    /// connection would, which writes do not): writes are refused until a
    /// probe passes again.
    pub(super) lost: std::sync::Mutex<Option<String>>,
    /// Records stored since the planner's statistics were last refreshed.
    pub(super) since_analyze: std::sync::atomic::AtomicU64,
    /// The transparency log's frontier as this process's last append left
    /// it, so that the next append need not read it back while no other
    /// replica appended in between (`log_tables.rs`).
    pub(super) log_tail: std::sync::Mutex<Option<crate::tlog::tree::Edge>>,
}

/// Which lock a write takes.
#[derive(Debug, Clone, Copy)]
pub(super) enum WriteKind {
    /// The data versions' (records, tenders, bids).
    Data,
    /// The transparency log's append lock.
    Log,
    /// None beyond the database's own (grants, policies, checkpoints).
    Small,
}

/// The longest pause between two tries for a lock another process holds:
/// as SQLite's own busy handler, which sleeps 1 to 100 ms between tries.
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(50);

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>, writer: Pool<DB>, file: Option<StoreFile>, write_wait: Duration) -> Self {
        SqlStore {
            pool,
            writer,
            write_lock: Mutex::new(()),
            held_off: std::sync::atomic::AtomicBool::new(false),
            write_wait,
            file,
            lost: std::sync::Mutex::new(None),
            since_analyze: std::sync::atomic::AtomicU64::new(0),
            log_tail: std::sync::Mutex::new(None),
        }
    }

    /// Refuses a write to a file that is gone, replaced, or that the last
    /// probe could not read. `stat` only: cheap enough for every write.
    pub(super) fn check_file(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else { return Ok(()) };
        if let Some(why) = self.lost.lock().expect("lost lock").clone() {
            return Err(StoreError::Lost(why));
        }
        file.check_path()
    }

    /// Keeps the probe's verdict on the file for the writes; renews the
    /// connections when a lost file is sound again.
    pub(super) fn keep_verdict(&self, file: &StoreFile, verdict: &Result<(), StoreError>) {
        let mut lost = self.lost.lock().expect("lost lock");
        match verdict {
            Ok(()) => {
                if lost.take().is_some() {
                    // Connections may hold what they read while it was damaged.
                    file.renew_connections();
                }
            }
            Err(StoreError::Lost(why)) => *lost = Some(why.clone()),
            Err(_) => {}
        }
    }

    /// Refused in this process's own write queue (no other process involved).
    fn queued(&self, waited: Duration) -> StoreError {
        tracing::info!(
            waited_ms = waited.as_millis() as u64,
            "a write gave up waiting behind this server's own writes: refused, queue full"
        );
        StoreError::Queued(format!("this write waited {} ms behind this server's other writes", waited.as_millis()))
    }

    fn busy(&self) -> StoreError {
        StoreError::Busy(format!("this write waited {} ms for its turn", self.write_wait.as_millis()))
    }
}

impl<DB: Backend> SqlStore<DB> {
    /// A write's turn: this process's queue, then the store's write lock
    /// (`kind`), within the write wait; refused at once when the store is
    /// lost. Another process's write lock (a long import) cannot be awaited
    /// across processes, so it is tried again after a pause, as SQLite's busy
    /// handler would, but without holding a thread and up to one deadline
    /// however many writes of this process queue behind it. Past the wait:
    /// [`StoreError::Busy`], never "cannot be reached"; past
    /// [`WRITE_QUEUE_WAIT`] in this process's own queue:
    /// [`StoreError::Queued`].
    pub(super) async fn turn(&self, kind: WriteKind) -> Result<(MutexGuard<'_, ()>, Transaction<'static, DB>), StoreError> {
        use tokio::time::Instant;
        let deadline = Instant::now() + self.write_wait;
        let in_queue = self.write_wait.min(WRITE_QUEUE_WAIT);
        let queued = match tokio::time::timeout(in_queue, self.write_lock.lock()).await {
            Ok(turn) => turn,
            // The head of the queue waits for another process: so does this write.
            Err(_) if self.held_off.load(std::sync::atomic::Ordering::Relaxed) => {
                tokio::time::timeout_at(deadline, self.write_lock.lock()).await.map_err(|_| self.busy())?
            }
            Err(_) => return Err(self.queued(in_queue)),
        };
        self.check_file()?;
        let mut pause = Duration::from_millis(1);
        let mut told = false;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let begun = match kind {
                WriteKind::Data => DB::begin_write(&self.writer, wait).await,
                WriteKind::Log => DB::begin_log_append(&self.writer, wait).await,
                WriteKind::Small => DB::begin_small_write(&self.writer, wait).await,
            };
            let begun = begun.map_err(StoreError::from);
            // Held off until a write begins without meeting another process's
            // lock: those queued behind an import's wait are behind the import.
            match &begun {
                Err(StoreError::Busy(_)) => self.held_off.store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(_) if !told => self.held_off.store(false, std::sync::atomic::Ordering::Relaxed),
                _ => {}
            }
            match begun {
                Ok(tx) => return Ok((queued, tx)),
                Err(StoreError::Busy(_)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        tracing::info!(
                            wait_ms = self.write_wait.as_millis() as u64,
                            "a write gave up waiting for another process's write lock: answered busy"
                        );
                        return Err(self.busy());
                    }
                    if !told {
                        tracing::debug!(
                            left_ms = left.as_millis() as u64,
                            "waiting for the store's write lock, which another process holds"
                        );
                        told = true;
                    }
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                }
                Err(e) => {
                    if let StoreError::Lost(why) = &e {
                        // Kept until a probe finds the file sound again (and renews the connections).
                        *self.lost.lock().expect("lost lock") = Some(why.clone());
                    }
                    return Err(e);
                }
            }
        }
    }
}
