//! The embedded backend: one SQLite file in WAL mode.

use super::log::placeholders;
use super::sql::{Backend, FileIdentity, NewRecord, SqlStore, INSERT_RECORDS};
use super::{ChangeSink, OpenMode, StoreError};
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Opens a SQLite store: creating and migrating it ([`OpenMode::Create`]),
/// or only an existing one at this binary's schema ([`OpenMode::Existing`]).
pub(super) async fn open(url: &str, connections: u32, mode: OpenMode) -> Result<SqlStore<Sqlite>, StoreError> {
    let migrator = sqlx::migrate!("migrations/sqlite");
    // Pragmas go on the connect options so that every pooled connection gets them.
    let options = SqliteConnectOptions::from_str(url)?.busy_timeout(Duration::from_secs(10)).foreign_keys(true);
    let options = match mode {
        OpenMode::Create => options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full),
        // The journal mode is kept in the file: an existing store is in WAL already.
        OpenMode::Existing { read_only } => options.create_if_missing(false).read_only(read_only),
    };
    let path = options.get_filename().to_owned();
    let in_memory = path.as_os_str() == ":memory:" || url.contains("mode=memory");
    if let (OpenMode::Existing { .. }, false) = (mode, in_memory)
        && !path.is_file()
    {
        return Err(StoreError::Missing(format!("there is no SQLite store at {}", path.display())));
    }
    let pool = SqlitePoolOptions::new().max_connections(connections).connect_with(options).await?;
    match mode {
        OpenMode::Create => migrator.run(&pool).await?,
        OpenMode::Existing { .. } => {
            let applied = super::schema::applied_sqlite(&pool).await?;
            super::schema::check(&migrator, applied, &path.display().to_string())?;
        }
    }
    // An in-memory database has no file to watch.
    let file = FileIdentity::of(&path).ok();
    Ok(SqlStore::new(pool, file))
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
    /// transaction commits.
    fn begin_write(pool: &Pool<Sqlite>) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    fn begin_log_append(pool: &Pool<Sqlite>) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
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
}
