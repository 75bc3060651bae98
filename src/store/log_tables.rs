//! The transparency log's tables, only ever added to: leaves, the stored
//! hashes of the Merkle tree, and checkpoints. [`LogStore`] for [`SqlStore`].
//! The tree's mathematics is [`crate::tlog::tree`]'s; the sequencer that
//! appends is `crate::log`'s.

use super::dialect::{Newest, in_list, sql_impl};
use super::error::StoreError;
use super::sql::{SqlStore, WriteKind};
use super::traits::LogStore;
use super::types::StoredCheckpoint;
use crate::tlog::tree::{self, Hash, Known};
use chrono::Utc;
use sqlx::{Executor, FromRow};

#[derive(FromRow)]
pub struct HashRow {
    idx: i64,
    hash: Vec<u8>,
}

#[derive(FromRow)]
pub struct LeafRow {
    leaf: Vec<u8>,
}

#[derive(FromRow)]
pub struct LeafIndex {
    idx: i64,
}

#[derive(FromRow)]
pub struct CheckpointRow {
    size: i64,
    root: Vec<u8>,
    note: String,
}

impl From<CheckpointRow> for StoredCheckpoint {
    fn from(r: CheckpointRow) -> Self {
        StoredCheckpoint { size: r.size as u64, root: r.root, note: r.note }
    }
}

const LOG_SIZE: &str = "SELECT MAX(idx) AS newest FROM log_leaves";
const ENTRIES: &str = "SELECT leaf FROM log_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const INDEX_OF: &str = "SELECT idx FROM log_leaves WHERE leaf_hash = $1 ORDER BY idx LIMIT 1";
const PUT_CHECKPOINT: &str =
    "INSERT INTO log_checkpoints (size, root, note, published_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING";
const LATEST_CHECKPOINT: &str = "SELECT size, root, note FROM log_checkpoints ORDER BY size DESC LIMIT 1";
const CHECKPOINT_AT: &str = "SELECT size, root, note FROM log_checkpoints WHERE size = $1";
const CHECKPOINTS: &str = "SELECT size, root, note FROM log_checkpoints ORDER BY size";

/// Leaves and stored hashes written by one statement at most: 3 parameters
/// a leaf, 2 a hash, 3 × 512 + 2 × 1,200 in all, well under SQLite's 32,766
/// parameters. Appending n leaves stores fewer than 2n + 64 hashes, so a
/// batch of the sequencer's (at most 512 leaves) is one statement.
const LEAVES_PER_STATEMENT: usize = 512;
const HASHES_PER_STATEMENT: usize = 1_200;

/// One statement writing `leaves` leaves (idx, leaf_hash, leaf) and `hashes`
/// stored hashes (idx, hash), parameters in that order: for SQLite two
/// INSERTs in one query (sqlx binds its parameters across them); for
/// PostgreSQL, whose extended protocol takes one statement, the leaves'
/// INSERT as a data-modifying WITH.
fn append_sql<DB: super::dialect::Backend>(leaves: usize, hashes: usize) -> String {
    let param = |i: usize| if DB::NUMBERED_PARAMS { format!("${i}") } else { "?".to_owned() };
    let rows = |from: usize, rows: usize, cols: usize| {
        (0..rows)
            .map(|r| format!("({})", (1..=cols).map(|c| param(from + r * cols + c)).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let leaf_rows = format!("INSERT INTO log_leaves (idx, leaf_hash, leaf) VALUES {}", rows(0, leaves, 3));
    let hash_rows = format!("INSERT INTO log_hashes (idx, hash) VALUES {}", rows(3 * leaves, hashes, 2));
    match (leaves, hashes) {
        (_, 0) => leaf_rows,
        (0, _) => hash_rows,
        _ if DB::NUMBERED_PARAMS => format!("WITH appended AS ({leaf_rows}) {hash_rows}"),
        _ => format!("{leaf_rows}; {hash_rows}"),
    }
}

sql_impl! {
    #[async_trait::async_trait]
    impl LogStore for SqlStore<DB>, reading [HashRow, LeafRow, LeafIndex, CheckpointRow] {
        async fn log_hashes(&self, indexes: &[u64]) -> Result<Known, StoreError> {
            Self::read_hashes(&self.pool, indexes).await
        }

        async fn log_size(&self) -> Result<u64, StoreError> {
            Ok(sqlx::query_as::<_, Newest>(LOG_SIZE).fetch_one(&self.pool).await?.newest.map_or(0, |n| n as u64 + 1))
        }

        /// Appends `leaves` after the current end under the append lock, with
        /// the stored hashes they complete; returns the first leaf's index.
        /// Four round trips for a batch of the sequencer's:
        /// begin, the tree's end, one statement writing leaves and hashes, and
        /// the commit; the hashes the append reads come from the previous
        /// append of this process while the tree's end is where it left it.
        async fn log_append(&self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Log).await?;
            let first = sqlx::query_as::<_, Newest>(LOG_SIZE).fetch_one(&mut *tx).await?.newest.map_or(0, |n| n as u64 + 1);
            let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| tree::leaf_hash(l)).collect();
            let reads = tree::append_reads(first, &leaf_hashes);
            // Taken, not copied: an append that fails leaves no tail behind.
            let tail = self.log_tail.lock().expect("log tail").take().and_then(|t| t.known_for(first, &reads));
            let known = match tail {
                Some(known) => known,
                None => Self::read_hashes(&mut *tx, &reads).await?,
            };
            let added = tree::append(first, &leaf_hashes, known.clone()).map_err(|e| StoreError::Corrupt(format!("the log's tree: {e}")))?;
            // A batch of the sequencer's (at most 512 leaves) is one statement.
            let (mut leaf_parts, mut hash_parts) = (leaves.chunks(LEAVES_PER_STATEMENT), added.chunks(HASHES_PER_STATEMENT));
            let mut next = first;
            loop {
                let (part, hashes) = (leaf_parts.next().unwrap_or_default(), hash_parts.next().unwrap_or_default());
                if part.is_empty() && hashes.is_empty() {
                    break;
                }
                let sql = append_sql::<DB>(part.len(), hashes.len());
                let mut q = sqlx::query(&sql);
                for leaf in part {
                    q = q.bind(next as i64).bind(leaf_hashes[(next - first) as usize].0.to_vec()).bind(leaf.clone());
                    next += 1;
                }
                for (i, h) in hashes {
                    q = q.bind(*i as i64).bind(h.0.to_vec());
                }
                q.execute(&mut *tx).await?;
            }
            // The file may have gone while the leaves were written: then nothing is acknowledged.
            self.check_file()?;
            tx.commit().await?;
            let end = first + leaves.len() as u64;
            let mut all = known;
            all.0.extend(added);
            *self.log_tail.lock().expect("log tail") = Some(tree::Edge::after(end, all));
            Ok(first)
        }

        async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            let rows: Vec<LeafRow> = sqlx::query_as(ENTRIES).bind(start as i64).bind(end as i64).fetch_all(&self.pool).await?;
            Ok(rows.into_iter().map(|r| r.leaf).collect())
        }

        async fn log_index_of(&self, leaf_hash: &[u8]) -> Result<Option<u64>, StoreError> {
            let row: Option<LeafIndex> = sqlx::query_as(INDEX_OF).bind(leaf_hash.to_vec()).fetch_optional(&self.pool).await?;
            Ok(row.map(|r| r.idx as u64))
        }

        async fn put_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), StoreError> {
            // In the writers' queue (FIFO), not in SQLite's busy loop behind a
            // stream of log appends.
            let (_turn, mut tx) = self.turn(WriteKind::Small).await?;
            sqlx::query(PUT_CHECKPOINT)
                .bind(c.size as i64)
                .bind(c.root.clone())
                .bind(c.note.as_str())
                .bind(Utc::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        /// The newest checkpoint, or the one of `size`.
        async fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError> {
            let row: Option<CheckpointRow> = match size {
                None => sqlx::query_as(LATEST_CHECKPOINT).fetch_optional(&self.pool).await?,
                Some(n) => sqlx::query_as(CHECKPOINT_AT).bind(n as i64).fetch_optional(&self.pool).await?,
            };
            Ok(row.map(StoredCheckpoint::from))
        }

        async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
            let rows: Vec<CheckpointRow> = sqlx::query_as(CHECKPOINTS).fetch_all(&self.pool).await?;
            Ok(rows.into_iter().map(StoredCheckpoint::from).collect())
        }
    }
}

sql_impl! {
    impl SqlStore<DB>, reading [HashRow] {
        async fn read_hashes<'e, E>(executor: E, indexes: &[u64]) -> Result<Known, StoreError>
        where
            E: Executor<'e, Database = DB>,
        {
            let mut known = Known::default();
            if indexes.is_empty() {
                return Ok(known);
            }
            let sql = format!("SELECT idx, hash FROM log_hashes WHERE idx IN ({})", in_list::<DB>(indexes.len()));
            let mut q = sqlx::query_as::<_, HashRow>(&sql);
            for i in indexes {
                q = q.bind(*i as i64);
            }
            for row in q.fetch_all(executor).await? {
                let hash =
                    tree::hash_from_bytes(&row.hash).ok_or_else(|| StoreError::Corrupt(format!("stored hash {} is not 32 bytes", row.idx)))?;
                known.0.insert(row.idx as u64, hash);
            }
            match indexes.iter().find(|i| !known.0.contains_key(i)) {
                Some(missing) => Err(StoreError::Corrupt(format!("the log's stored hash {missing} is missing"))),
                None => Ok(known),
            }
        }
    }
}
