//! The embedded backend: one SQLite file in WAL mode.

use super::tenders::tender_impl;
use super::{backend_impl, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// SQLite has one writer at a time; queueing writers of this process here
    /// keeps them from spinning on SQLITE_BUSY. `BEGIN IMMEDIATE` (below)
    /// covers writers in other processes, such as `credit-tender import`.
    write_lock: Arc<Mutex<()>>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        // Pragmas go on the connect options so that every pooled connection gets them.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool, write_lock: Arc::new(Mutex::new(())) })
    }

    async fn begin_write(&self) -> Result<(Transaction<'static, Sqlite>, MutexGuard<'_, ()>), StoreError> {
        let guard = self.write_lock.lock().await;
        // IMMEDIATE takes the write lock now, so the version read next cannot
        // be taken by another process before this transaction commits.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((tx, guard))
    }

    async fn tender_changed(tx: &mut Transaction<'static, Sqlite>, tender_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tender_changes (tender_id) VALUES ($1)").bind(tender_id).execute(&mut **tx).await?;
        Ok(())
    }

    async fn after_write(_tx: &mut Transaction<'static, Sqlite>, _version: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

tender_impl!(SqliteStore);
backend_impl!(SqliteStore, Sqlite, super::PROFILE_SQL_SQLITE);
