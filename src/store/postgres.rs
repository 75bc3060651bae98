//! The shared backend: PostgreSQL, for several replicas over one store.

use super::tenders::tender_impl;
use super::{backend_impl, StoreError};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use std::time::Duration;

/// The channel on which each committed data version is announced.
pub const CHANGES_CHANNEL: &str = "credit_tender_changes";

#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Opens a store over an existing pool (tests give each its own schema).
    pub async fn with_pool(pool: PgPool) -> Result<PgStore, StoreError> {
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for the change listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<(Transaction<'static, Postgres>, ()), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writers take data versions one at a time and commit in that order,
        // so a reader that has seen version N has seen every version below N.
        sqlx::query("LOCK TABLE data_versions IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        Ok((tx, ()))
    }

    async fn tender_changed(tx: &mut Transaction<'static, Postgres>, tender_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tender_changes (tender_id) VALUES ($1)").bind(tender_id).execute(&mut **tx).await?;
        sqlx::query("SELECT pg_notify($1, 't')").bind(CHANGES_CHANNEL).execute(&mut **tx).await?;
        Ok(())
    }

    /// NOTIFY is delivered at commit, so replicas hear of a version only once
    /// it is readable.
    async fn after_write(tx: &mut Transaction<'static, Postgres>, version: i64) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(version.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

tender_impl!(PgStore);
backend_impl!(PgStore, Postgres, super::PROFILE_SQL_POSTGRES);
