//! The transparency log's tables, only ever added to: leaves, the stored
//! hashes of the Merkle tree, and checkpoints. [`LogStore`] for [`SqlStore`].
//! The tree's mathematics is [`crate::tlog::tree`]'s; the sequencer that
//! appends is `crate::log`'s.

use super::dialect::{Newest, in_list, placeholders, sql_impl};
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

/// Rows per multi-row INSERT: well under SQLite's 32,766 parameters.
const ROWS_PER_INSERT: usize = 300;

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
        async fn log_append(&self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Log).await?;
            let first = sqlx::query_as::<_, Newest>(LOG_SIZE).fetch_one(&mut *tx).await?.newest.map_or(0, |n| n as u64 + 1);
            let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| tree::leaf_hash(l)).collect();
            let known = Self::read_hashes(&mut *tx, &tree::append_reads(first, &leaf_hashes)).await?;
            let added = tree::append(first, &leaf_hashes, known).map_err(|e| StoreError::Corrupt(format!("the log's tree: {e}")))?;
            for (chunk_no, chunk) in leaves.chunks(ROWS_PER_INSERT).enumerate() {
                let sql = format!("INSERT INTO log_leaves (idx, leaf_hash, leaf) VALUES {}", placeholders::<DB>(chunk.len(), 3));
                let mut q = sqlx::query(&sql);
                for (i, leaf) in chunk.iter().enumerate() {
                    let n = chunk_no * ROWS_PER_INSERT + i;
                    q = q.bind((first + n as u64) as i64).bind(leaf_hashes[n].0.to_vec()).bind(leaf.clone());
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in added.chunks(ROWS_PER_INSERT) {
                let sql = format!("INSERT INTO log_hashes (idx, hash) VALUES {}", placeholders::<DB>(chunk.len(), 2));
                let mut q = sqlx::query(&sql);
                for (i, h) in chunk {
                    q = q.bind(*i as i64).bind(h.0.to_vec());
                }
                q.execute(&mut *tx).await?;
            }
            // The file may have gone while the leaves were written: then nothing is acknowledged.
            self.check_file()?;
            tx.commit().await?;
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
