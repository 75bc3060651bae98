//! The shared backend: PostgreSQL, for several replicas over one store, and
//! the LISTEN loop that tells each replica of the others' writes.

use super::dialect::{Backend, NewRecord};
use super::error::StoreError;
use super::options::{OpenMode, StoreOptions, statement_logging};
use super::reach::{Guarded, Probe, Reachability};
use super::sql::SqlStore;
use super::types::ChangeSink;
use futures_util::future::BoxFuture;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{PgPool, Pool, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The channel on which each committed data version (or `t`, a tender
/// change) is announced.
pub const CHANGES_CHANNEL: &str = "credit_tender_changes";

const COPY_RECORDS: &str = "COPY records (record_id, version, kind, credit_code, digest, body) FROM STDIN (FORMAT binary)";

/// The codes a bulk write changed, before they go into the change feed: a
/// temporary table (no WAL, no index, no foreign key to check per row) that
/// the transaction's end drops, committed or not.
const STAGED_CODES_TABLE: &str = "CREATE TEMPORARY TABLE staged_changed_codes (credit_code TEXT NOT NULL) ON COMMIT DROP";
const COPY_STAGED_CODES: &str = "COPY staged_changed_codes (credit_code) FROM STDIN (FORMAT binary)";

/// How long the first connection may take to answer at all.
const FIRST_CONNECT: Duration = Duration::from_secs(5);

/// How long a request waits for a pooled connection while the store
/// answers: the pool is busy, not gone.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How long PostgreSQL keeps a session that sits idle inside a transaction
/// (a replica cut off mid-write) before ending it and releasing its locks.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);

/// Opens a PostgreSQL store: migrating it ([`OpenMode::Create`]), or only
/// one at this binary's schema ([`OpenMode::Existing`]).
///
/// The store comes guarded ([`Guarded`]): probed on a connection of its
/// own, and failing fast while it does not answer within `opts.timeout`.
/// The pool never pings a connection opened before an outage (a ping on a
/// connection to a host that went away waits for TCP to give up) but closes
/// it, and closes what comes back to it while the store is unreachable.
pub(super) async fn open(url: &str, opts: StoreOptions) -> Result<Guarded<SqlStore<Postgres>>, StoreError> {
    let mode = opts.mode;
    let migrator = sqlx::migrate!("migrations/postgres");
    // A replica cut off in the middle of a write transaction leaves its
    // backend holding the write lock, idle in transaction, for as long as
    // PostgreSQL believes the connection alive: every other replica's
    // writes would wait behind it (found by the outside attack on issue
    // 28). The server ends such a session after IDLE_IN_TRANSACTION, and
    // its keepalives notice a silent peer; no write of ours idles that
    // long between two statements of one transaction.
    let mut options = statement_logging(PgConnectOptions::from_str(url)?).options([
        ("idle_in_transaction_session_timeout", format!("{}", IDLE_IN_TRANSACTION.as_millis())),
        ("tcp_keepalives_idle", "10".to_owned()),
        ("tcp_keepalives_interval", "5".to_owned()),
        ("tcp_keepalives_count", "3".to_owned()),
    ]);
    if let OpenMode::Existing { read_only: true } = mode {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    // One connection first, on its own: the pool retries a refused
    // connection until its time-out (sqlx takes it for a server starting
    // up) and then says only "pool timed out". This says why, at once.
    match tokio::time::timeout(FIRST_CONNECT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("3D000") && mode != OpenMode::Create => {
            return Err(StoreError::Missing(format!("there is no PostgreSQL store there: {}", e.message())));
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            return Err(StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", FIRST_CONNECT.as_secs()),
            ))));
        }
    }
    let reach = Reachability::new(opts.timeout);
    let pool = pool_options(&reach, opts.connections).connect_with(options.clone()).await?;
    match mode {
        OpenMode::Create => migrator.run(&pool).await?,
        OpenMode::Existing { .. } => {
            let applied = super::schema::applied_postgres(&pool).await?;
            let database = pool.connect_options().get_database().unwrap_or("postgres").to_owned();
            super::schema::check(&migrator, applied, &format!("PostgreSQL database '{database}'"))?;
        }
    }
    // Writers take connections from the same pool: the table locks below
    // wait (up to the write wait) inside PostgreSQL.
    let store = SqlStore::new(pool.clone(), pool, None, opts.write_wait);
    Ok(Guarded::new(store, reach, probe(options)))
}

/// The pool, as [`open`] says: connections from before an outage replaced
/// rather than trusted, none pinged while the store is unreachable. (sqlx
/// 0.8 sets no TCP keepalive on its sockets and has no hook for one: a
/// silent peer is noticed by the probe's time-out instead.)
fn pool_options(reach: &Arc<Reachability>, connections: u32) -> PgPoolOptions {
    let (on_acquire, on_release) = (reach.clone(), reach.clone());
    PgPoolOptions::new()
        .max_connections(connections)
        // A wait for a connection ends sooner when the store turns
        // unreachable (the probe's verdict); this bounds the wait for a
        // turn in a pool busy with requests.
        .acquire_timeout(POOL_WAIT)
        // The ping is made below, after the age check (sqlx pings first).
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let reach = on_acquire.clone();
            Box::pin(async move {
                if reach.predates_outage(meta.age) {
                    tracing::debug!("closing a connection opened before the store's last outage");
                    return Ok(false);
                }
                conn.ping().await?;
                Ok(true)
            })
        })
        .after_release(move |_, meta| {
            // While the store is unreachable a connection coming back may
            // be silent: sqlx's ping on release would wait on it for as long
            // as TCP does, holding its place in the pool.
            let keep = !on_release.is_down() && !on_release.predates_outage(meta.age);
            Box::pin(async move { Ok(keep) })
        })
}

/// The probe: the newest data version (the schema must be there), read on
/// a connection of its own, opened again whenever one fails; a connection
/// whose probe is cut short by the timeout is dropped with it.
fn probe(options: PgConnectOptions) -> Probe {
    let kept: Arc<tokio::sync::Mutex<Option<PgConnection>>> = Arc::default();
    Box::new(move || {
        let (options, kept) = (options.clone(), kept.clone());
        Box::pin(async move {
            let mut slot = kept.lock().await;
            let mut conn = match slot.take() {
                Some(conn) => conn,
                None => PgConnection::connect_with(&options).await?,
            };
            sqlx::query("SELECT MAX(version) FROM data_versions").execute(&mut conn).await?;
            *slot = Some(conn);
            Ok::<(), StoreError>(())
        })
    })
}

/// Sets the transaction's lock_timeout to `wait` (at least 1 ms: 0 would
/// mean no limit), then takes `lock` if any.
async fn wait_at_most(tx: &mut PgConnection, wait: Duration, lock: Option<&'static str>) -> Result<(), sqlx::Error> {
    let ms = wait.as_millis().clamp(1, i32::MAX as u128).to_string();
    // No JIT in a write: its statements are lookups of a few rows, but inside a
    // bulk load the planner has no statistics for the rows the transaction
    // itself inserted, estimates costs past `jit_above_cost`, and compiled
    // each chunk's lookup with LLVM (a first load of firms with five records
    // each ran 2.3x slower than the same file into a store holding records).
    sqlx::query("SELECT set_config('lock_timeout', $1, true), set_config('jit', 'off', true)").bind(ms).execute(&mut *tx).await?;
    if let Some(lock) = lock {
        sqlx::query(lock).execute(&mut *tx).await?;
    }
    Ok(())
}

/// COPY's binary form: its signature, no flags, no header extension.
const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows in COPY's binary form: `fields` per row, each a length and its
/// bytes (text as it is, a BIGINT as 8 bytes big-endian), then the trailer.
/// The server parses nothing (in CSV form, reading the quoted fields took
/// a sixth of its time in an import: BENCHMARKS.md, Import).
struct BinaryRows(Vec<u8>);

impl BinaryRows {
    fn with_capacity(bytes: usize) -> Self {
        let mut data = Vec::with_capacity(COPY_BINARY_HEADER.len() + bytes + 2);
        data.extend_from_slice(COPY_BINARY_HEADER);
        BinaryRows(data)
    }

    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) -> Result<(), sqlx::Error> {
        let len = i32::try_from(bytes.len()).map_err(|_| sqlx::Error::Protocol(format!("a COPY field of {} bytes", bytes.len())))?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    /// Sends the rows on `conn` as the data of `copy`.
    async fn send(mut self, conn: &mut PgConnection, copy: &str) -> Result<(), sqlx::Error> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(copy).await?;
        if let Err(e) = copy.send(self.0).await {
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
        copy.finish().await?;
        Ok(())
    }
}

impl Backend for Postgres {
    const NAME: &'static str = "postgres";

    const NUMBERED_PARAMS: bool = true;

    /// PostgreSQL's planner may turn an IN-subquery into a hash join over the
    /// whole table (seen: 10-30 ms per profile on 50,000 records before
    /// ANALYZE). LATERAL with OFFSET 0 (an optimisation fence: the subquery is
    /// not pulled up) keeps it to primary-key lookups per id.
    fn profiles_sql(codes: &str) -> String {
        format!(
            "SELECT ids.credit_code AS origin, r.record_id, r.version, r.digest, r.body, \
                    (SELECT MAX(version) FROM data_versions) AS newest \
             FROM (SELECT DISTINCT credit_code, record_id FROM records WHERE credit_code IN ({codes}) AND version <= $1) ids \
             CROSS JOIN LATERAL (SELECT x.record_id, x.version, x.digest, x.body FROM records x \
                                 WHERE x.record_id = ids.record_id AND x.version <= $1 OFFSET 0) r \
             ORDER BY ids.credit_code, r.version, r.record_id"
        )
    }

    /// Writers take data versions one at a time and commit in that order, so
    /// a reader that has seen version N has seen every version below N.
    /// Waits at most `wait` for the lock (lock_not_available past it).
    async fn begin_write(pool: &Pool<Postgres>, wait: Duration) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        wait_at_most(&mut tx, wait, Some("LOCK TABLE data_versions IN SHARE ROW EXCLUSIVE MODE")).await?;
        Ok(tx)
    }

    /// A write that needs no table lock (grants, policies, checkpoints).
    async fn begin_small_write(pool: &Pool<Postgres>, wait: Duration) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        wait_at_most(&mut tx, wait, None).await?;
        Ok(tx)
    }

    /// EXCLUSIVE blocks other appenders (and nothing that only reads) until
    /// this transaction ends.
    async fn begin_log_append(pool: &Pool<Postgres>, wait: Duration) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        wait_at_most(&mut tx, wait, Some("LOCK TABLE log_leaves IN EXCLUSIVE MODE")).await?;
        Ok(tx)
    }

    /// COPY in binary form: one round trip and no statement to parse per chunk.
    async fn insert_records(conn: &mut PgConnection, version: i64, rows: &[NewRecord]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut data = BinaryRows::with_capacity(rows.iter().map(|r| r.body.len() + r.id.len() + r.code.len() + 128).sum());
        let version = version.to_be_bytes();
        for r in rows {
            data.row(6);
            for field in [r.id.as_bytes(), &version, r.kind.as_bytes(), r.code.as_bytes(), r.digest.as_bytes(), r.body.as_bytes()] {
                data.field(field)?;
            }
        }
        data.send(conn, COPY_RECORDS).await
    }

    const ANALYZE: Option<&'static str> = Some("ANALYZE records, changed_codes");

    /// Each flush of an import inserted its codes into the change feed with
    /// a conflict check per row (codes recur across chunks: five times each
    /// for firms with five records), which took as long as the COPY of the
    /// records itself (BENCHMARKS.md, Import). Staged by COPY instead, and
    /// moved once at the end, each code once and in key order.
    async fn stage_changed(conn: &mut PgConnection, codes: &[&String], first: bool) -> Result<bool, sqlx::Error> {
        if first {
            sqlx::query(STAGED_CODES_TABLE).execute(&mut *conn).await?;
        }
        if codes.is_empty() {
            return Ok(true);
        }
        let mut data = BinaryRows::with_capacity(codes.iter().map(|c| c.len() + 6).sum());
        for code in codes {
            data.row(1);
            data.field(code.as_bytes())?;
        }
        data.send(conn, COPY_STAGED_CODES).await?;
        Ok(true)
    }

    /// No conflict check: the data version is this transaction's own, and
    /// every code of a write that staged went through the staging table.
    const CHANGED_FROM_STAGED: Option<&'static str> = Some(
        "INSERT INTO changed_codes (version, credit_code) \
         SELECT $1::BIGINT, credit_code FROM (SELECT DISTINCT credit_code FROM staged_changed_codes) s ORDER BY credit_code",
    );

    /// NOTIFY is delivered at commit, so replicas hear of a change only once
    /// it is readable.
    async fn announce<'c>(conn: &'c mut PgConnection, payload: &'c str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANGES_CHANNEL).bind(payload).execute(conn).await?;
        Ok(())
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn change_listener(pool: &Pool<Postgres>, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(follow_changes(pool.clone(), sink)))
    }
}

/// LISTENs for committed changes and tells `sink`; a lost connection is
/// reported as lost notifications, so that the next request catches up from
/// the change table first (PgListener reconnects, but drops what was sent
/// while it was away).
async fn follow_changes(pool: PgPool, sink: Arc<dyn ChangeSink>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the change listener; retrying");
                sink.notifications_lost();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            sink.notifications_lost();
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything committed before LISTEN took effect is read by catching up.
        sink.notifications_lost();
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => sink.changed(n.payload().parse().ok()),
                Ok(None) => {
                    tracing::warn!("change listener connection lost; catching up from the change table");
                    sink.notifications_lost();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    sink.notifications_lost();
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
