//! Whether an existing store has this binary's schema, read from sqlx's
//! migration table without changing anything: commands that only read
//! must never migrate a store (nor create one).

use super::error::StoreError;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

/// sqlx's record of the migrations applied: `(version, success)`.
type Applied = Option<Vec<(i64, bool)>>;

const APPLIED: &str = "SELECT version, success FROM _sqlx_migrations ORDER BY version";

/// The applied migrations of a SQLite store, or `None` if it has no migration table.
pub(super) async fn applied_sqlite(pool: &SqlitePool) -> Result<Applied, StoreError> {
    let has: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'").fetch_optional(pool).await?;
    if has.is_none() {
        return Ok(None);
    }
    Ok(Some(sqlx::query_as(APPLIED).fetch_all(pool).await?))
}

/// The applied migrations of a PostgreSQL store, or `None` if it has no migration table.
pub(super) async fn applied_postgres(pool: &PgPool) -> Result<Applied, StoreError> {
    // NULL when there is no such table.
    let has: Option<String> = sqlx::query_scalar("SELECT CAST(to_regclass('_sqlx_migrations') AS TEXT)").fetch_one(pool).await?;
    if has.is_none() {
        return Ok(None);
    }
    Ok(Some(sqlx::query_as(APPLIED).fetch_all(pool).await?))
}

/// Refuses a store whose applied migrations are not exactly this binary's.
pub(super) fn check(migrator: &Migrator, applied: Applied, what: &str) -> Result<(), StoreError> {
    let expected: Vec<i64> = migrator.iter().filter(|m| m.migration_type.is_up_migration()).map(|m| m.version).collect();
    let newest = expected.iter().max().copied().unwrap_or(0);
    let Some(applied) = applied else {
        return Err(StoreError::Missing(format!("{what} is not a credit-tender store: it has no schema")));
    };
    if let Some((v, _)) = applied.iter().find(|(_, ok)| !ok) {
        return Err(StoreError::Schema(format!(
            "{what}: migration {v} did not finish; `credit-tender serve` or `import` on it reports why"
        )));
    }
    let versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    if let Some(v) = versions.iter().find(|v| !expected.contains(v)) {
        return Err(StoreError::Schema(format!(
            "{what} has schema version {v}, newer than this credit-tender's ({newest}): use the credit-tender that wrote it"
        )));
    }
    if versions != expected {
        let at = versions.iter().max().copied().unwrap_or(0);
        return Err(StoreError::Schema(format!(
            "{what} has schema version {at}; this credit-tender needs {newest}. Commands that only read never migrate a store: \
             `credit-tender import` or `serve` on it migrates it first"
        )));
    }
    Ok(())
}
