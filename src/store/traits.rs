//! What the service asks of a credit store, one narrow trait per table
//! family, each implemented for `SqlStore` in a file of its own (and for the
//! reachability guard in `reach.rs`). [`CreditStore`] is their sum: every
//! store that has them all is one, and callers ask for it as before.

use super::error::StoreError;
use super::types::{BidRow, ChangeSink, RecordSource, StoredCheckpoint, StoredPolicy, WalCheckpoint, WalMode, WriteMode, WriteOutcome};
use crate::domain::ownership::Writer;
use crate::domain::profile::Profile;
use crate::domain::tender::{Bidder, TenderId};
use crate::domain::{CommitteeGrant, CreditCode, Tender};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Records, the data versions they are written in, and the feed of changed
/// codes (`records.rs`; the write path in `record_write.rs`).
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + 'static {
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

    /// Whether any record of `code` was written under `source` (a principal's name).
    async fn written_by(&self, code: &CreditCode, source: &str) -> Result<bool, StoreError>;

    /// Every credit code with an evaluation recorded at or before
    /// `at_version`, in code order: who may be in a supervision draw's
    /// population (`crate::supervision`).
    async fn evaluated_codes(&self, at_version: u64) -> Result<Vec<CreditCode>, StoreError>;
}

/// Tenders, their versions and bids, and the tender change feed (`tenders.rs`).
#[async_trait::async_trait]
pub trait TenderStore: Send + Sync + 'static {
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
}

/// Policy versions, kept by digest (`policies.rs`).
#[async_trait::async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// Keeps a policy version (idempotent by digest).
    async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError>;

    /// A policy version by digest.
    async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError>;
}

/// Committee grants: links handed out, redeemed once, revoked (`grants.rs`).
#[async_trait::async_trait]
pub trait GrantStore: Send + Sync + 'static {
    /// Keeps a committee grant; only the link's SHA-256 is stored.
    async fn insert_grant(&self, grant: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError>;

    /// Uses a grant's link once, binding a session to it; `None` for a link
    /// unknown, already used, revoked or expired.
    async fn redeem_grant(&self, link_sha256: &str, session_sha256: &str, now: DateTime<Utc>)
    -> Result<Option<CommitteeGrant>, StoreError>;

    /// The grant a session belongs to (live or not: the caller checks).
    async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError>;

    /// The grant with this id (live or not: the caller checks); `None` if unknown.
    async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError>;

    /// Revokes a grant; false if it was unknown or already revoked.
    async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// The transparency log's tables: leaves, stored hashes and checkpoints
/// (`log_tables.rs`). The Merkle mathematics is [`crate::tlog`]'s; the
/// sequencer that appends is `crate::log`'s.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync + 'static {
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
}

/// Frames (4 KiB pages) of a SQLite write-ahead log, all in the database
/// already, past which the server has the next write start it over: 64 MiB.
pub const WAL_RESTART_FRAMES: u64 = 16_384;

/// How long that restart waits for readers on an older snapshot, holding new
/// writes off meanwhile (they wait and try again, as behind any other lock).
pub const WAL_RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// What keeps a store in service rather than reading or writing rows: its
/// name, WAL checkpoints, health probes, its own files, and the listener of
/// other processes' commits (`upkeep.rs`).
#[async_trait::async_trait]
pub trait StoreUpkeep: Send + Sync + 'static {
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

    /// The server's checkpoint each second: [`WalMode::Passive`], then, when
    /// every frame of a log past [`WAL_RESTART_FRAMES`] is in the database, a
    /// [`WalMode::Restart`] waiting at most [`WAL_RESTART_WAIT`] (tried again
    /// next time when readers hold it), so that the next write starts the
    /// file over instead of growing it. Returns the passive checkpoint's
    /// outcome.
    ///
    /// PITFALL: SQLite reuses its log from the start only when no reader is
    /// on an older snapshot at the moment a write begins, and never shrinks
    /// the file. Under a steady stream of new statements the log grew by the
    /// whole stream (165 MB in 12 s; found by the outside attack), and when
    /// it had filled the disk, the checkpoint (which grows the database) had
    /// no room, so the store stayed full after the disk was freed.
    async fn wal_checkpoint_and_restart(&self) -> Result<Option<WalCheckpoint>, StoreError> {
        let passive = self.wal_checkpoint(WalMode::Passive).await?;
        if let Some(c) = &passive
            && !c.busy
            && c.frames >= WAL_RESTART_FRAMES
            && c.checkpointed == c.frames
        {
            self.wal_checkpoint(WalMode::Restart(WAL_RESTART_WAIT)).await?;
        }
        Ok(passive)
    }

    /// Whether the store is still the one opened and answers: its file (SQLite)
    /// and its schema. Health follows this.
    async fn probe(&self) -> Result<(), StoreError>;

    /// How often [`Self::probe`] is called: every second unless the store
    /// says otherwise (PostgreSQL: a quarter of [`StoreOptions::timeout`](super::options::StoreOptions::timeout)).
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

    /// A task that hears other processes' commits and tells `sink`, for a
    /// backend that can announce them (PostgreSQL); `None` for one that cannot.
    fn change_listener(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>>;
}

/// Everything the service asks of a credit store: the sum of the table
/// families' traits. Any type that has them all is one, so a new query is
/// added to its family's trait alone.
pub trait CreditStore: RecordStore + TenderStore + PolicyStore + GrantStore + LogStore + StoreUpkeep {}

impl<S: RecordStore + TenderStore + PolicyStore + GrantStore + LogStore + StoreUpkeep> CreditStore for S {}
