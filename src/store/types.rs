//! What goes in and out of the store: write modes and outcomes, stored
//! bids, policies and checkpoints, WAL checkpoints, the change sink, and the
//! rows a profile is built from.

use super::error::StoreError;
use crate::domain::input::FieldError;
use crate::domain::profile::Profile;
use crate::domain::tender::Bidder;
use crate::domain::{CreditCode, Record};
use chrono::{DateTime, Utc};

/// How [`StoreUpkeep::wal_checkpoint`](super::traits::StoreUpkeep::wal_checkpoint) copies the write-ahead log.
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
    /// Everything, then the next write starts the log file over from its
    /// beginning instead of growing it (SQLite's RESTART), waiting at most
    /// this long for readers on an older snapshot. The file keeps its size:
    /// nothing is freed, so nothing stalls on the freeing.
    Restart(std::time::Duration),
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
    /// Records stored as new ids or new versions (in a dry run: that would be).
    pub stored: u32,
    /// Records identical (same digest) to their id's newest version: not stored again.
    pub unchanged: u32,
    /// The credit codes whose records changed: every one when there are at
    /// most [`CHANGED_CODES_LISTED`] (any `PutRecords` batch), otherwise
    /// none, and `changed_count` says how many (an import of millions of
    /// firms keeps flat memory; replicas learn the codes from the change feed).
    pub changed_codes: Vec<CreditCode>,
    /// How many credit codes' records changed, listed or not.
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
    /// Check everything and keep the write.
    Commit,
    /// Check everything, including conflicts with stored records, then roll back.
    DryRun,
}

/// A stored bid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRow {
    /// 1-based order of registration within the tender.
    pub sequence: u32,
    /// The firm or consortium, lead first.
    pub bidder: Bidder,
    /// When the bid was registered.
    pub registered_at: DateTime<Utc>,
}

/// A policy version as stored: its id and the file's text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredPolicy {
    /// The policy's `id` as its file declares it.
    pub policy_id: String,
    /// The file's exact text; its hex SHA-256 is the key it is stored under.
    pub source: String,
}

/// Told of changes other processes committed (PostgreSQL NOTIFY).
pub trait ChangeSink: Send + Sync + 'static {
    /// A change was announced; `announced` is its data version when known.
    fn changed(&self, announced: Option<u64>);
    /// Announcements may have been missed: catch up from the change table.
    fn notifications_lost(&self);
}

/// A checkpoint as stored: tree size, root hash, signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Leaves in the tree it commits to.
    pub size: u64,
    /// The 32-byte RFC 9162 root hash of those leaves.
    pub root: Vec<u8>,
    /// The checkpoint as published: a C2SP tlog-checkpoint body in a signed note.
    pub note: String,
}

/// A record version as read back, before grouping into a [`Profile`].
#[derive(Debug, sqlx::FromRow)]
pub struct RecordRow {
    /// The provider's record id.
    pub record_id: String,
    /// The data version that wrote this version of the record.
    pub version: i64,
    /// Hex SHA-256 of `body`.
    pub digest: String,
    /// The record's canonical JSON ([`Record::canonical_json`]).
    pub body: String,
}

/// A record version of one of several codes' profiles, with the code it
/// was read for and the store's newest data version.
#[derive(Debug, sqlx::FromRow)]
pub struct ProfileRow {
    /// The credit code asked for, which this row belongs to.
    pub origin: String,
    /// The provider's record id.
    pub record_id: String,
    /// The data version that wrote this version of the record.
    pub version: i64,
    /// Hex SHA-256 of `body`.
    pub digest: String,
    /// The record's canonical JSON ([`Record::canonical_json`]).
    pub body: String,
    /// The store's newest data version, read in the same statement so that
    /// rows and version agree; `None` in an empty store.
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
