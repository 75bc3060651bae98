//! The credit store: records, their versions and the change feed.
//!
//! Two backends share one behaviour: SQLite (embedded, one file; the default)
//! and PostgreSQL (shared by replicas). Rows are only inserted, never updated
//! or deleted, so every past data version can be read again.
//!
//! The write and read logic is written once, in [`backend_impl!`], and
//! instantiated for each sqlx driver; the drivers differ only in how a
//! write transaction is opened (see each backend's `begin_write`).

mod postgres;
mod sqlite;
pub(crate) mod tenders;

pub use tenders::BidRow;

pub use postgres::{PgStore, CHANGES_CHANNEL};
pub use sqlite::SqliteStore;

use crate::domain::input::FieldViolation;
use crate::domain::profile::Profile;
use crate::domain::{CreditCode, Record};

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Records that conflict with what is stored or with each other; the
    /// `u64` is the caller's position label (batch index or file line).
    #[error("{} record problem(s)", .0.len())]
    Rejected(Vec<(u64, FieldViolation)>),
    #[error("data version {requested} is ahead of the store's current version {current}")]
    FutureVersion { requested: u64, current: u64 },
    #[error("the store cannot be reached")]
    Unavailable(#[source] sqlx::Error),
    #[error("stored row is unreadable: {0}")]
    Corrupt(String),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("tender '{0}' is already registered with other terms; use AmendTender to change it")]
    TenderExists(String),
    #[error("no tender '{0}'")]
    UnknownTender(String),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version created, or the current one when nothing changed.
    pub data_version: u64,
    /// Whether this write created `data_version`.
    pub created: bool,
    pub stored: u32,
    pub unchanged: u32,
    pub changed_codes: Vec<CreditCode>,
}

/// The records to write, each labelled with a position for error reports
/// (batch index or file line). An item may already be a validation failure:
/// the write then goes on checking the rest, so that one pass reports every
/// problem, and stores nothing.
pub type RecordSource<'a> = dyn Iterator<Item = (u64, Result<Record, Vec<FieldViolation>>)> + Send + 'a;

/// Whether to keep a write or only check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Commit,
    /// Check everything, including conflicts with stored records, then roll back.
    DryRun,
}

/// A credit store on either backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating if needed) and migrates the store a URL names.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The newest data version (0 for an empty store).
    pub async fn current_version(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.current_version().await,
            Store::Postgres(s) => s.current_version().await,
        }
    }

    /// Writes records all-or-nothing as one new data version.
    ///
    /// A record identical to its id's newest version is skipped; a record with
    /// a known id and new content becomes a new version. Conflicts (an id of
    /// another type, one id twice with different content, an event whose
    /// target is unknown or belongs to another code) reject the whole write.
    pub async fn write(
        &self,
        source: &str,
        records: &mut RecordSource<'_>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.write(source, records, mode).await,
            Store::Postgres(s) => s.write(source, records, mode).await,
        }
    }

    /// The records of one code as the store held them at `at_version`
    /// (default: the current version).
    pub async fn profile(&self, code: &CreditCode, at_version: Option<u64>) -> Result<Profile, StoreError> {
        match self {
            Store::Sqlite(s) => s.profile(code, at_version).await,
            Store::Postgres(s) => s.profile(code, at_version).await,
        }
    }

    pub async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.put_policy(id, digest, source).await,
            Store::Postgres(s) => s.put_policy(id, digest, source).await,
        }
    }

    /// A policy version by digest: (policy id, file text).
    pub async fn policy_source(&self, digest: &str) -> Result<Option<(String, String)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.policy_source(digest).await,
            Store::Postgres(s) => s.policy_source(digest).await,
        }
    }

    /// A tender version (`None` or 0: the newest).
    pub async fn tender(&self, id: &str, version: Option<u32>) -> Result<Option<crate::domain::Tender>, StoreError> {
        match self {
            Store::Sqlite(s) => s.tender(id, version).await,
            Store::Postgres(s) => s.tender(id, version).await,
        }
    }

    /// The newest version of every tender with its bid count, latest deadline first.
    pub async fn list_tenders(&self) -> Result<Vec<(crate::domain::Tender, u32)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_tenders().await,
            Store::Postgres(s) => s.list_tenders().await,
        }
    }

    /// Stores a tender version (see the backends' `insert_tender`).
    pub async fn insert_tender(&self, t: &crate::domain::Tender) -> Result<crate::domain::Tender, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_tender(t).await,
            Store::Postgres(s) => s.insert_tender(t).await,
        }
    }

    pub async fn register_bid(&self, tender_id: &str, bidder: &str) -> Result<BidRow, StoreError> {
        match self {
            Store::Sqlite(s) => s.register_bid(tender_id, bidder).await,
            Store::Postgres(s) => s.register_bid(tender_id, bidder).await,
        }
    }

    /// The newest tender change sequence number (0 when none).
    pub async fn tender_change_seq(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.tender_change_seq().await,
            Store::Postgres(s) => s.tender_change_seq().await,
        }
    }

    /// The tender change feed after sequence `after`: (seq, tender id), oldest first.
    pub async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, String)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.tender_changes_since(after).await,
            Store::Postgres(s) => s.tender_changes_since(after).await,
        }
    }

    pub async fn bids(&self, tender_id: &str) -> Result<Vec<BidRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.bids(tender_id).await,
            Store::Postgres(s) => s.bids(tender_id).await,
        }
    }

    /// The credit codes changed by each data version after `after`, oldest first.
    pub async fn changes_since(&self, after: u64) -> Result<Vec<(u64, CreditCode)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.changes_since(after).await,
            Store::Postgres(s) => s.changes_since(after).await,
        }
    }
}

/// Rows as read back, before grouping into a [`Profile`].
pub(crate) struct Row {
    pub record_id: String,
    pub version: i64,
    pub digest: String,
    pub body: String,
}

/// Groups all visible versions of a code's record ids into a profile.
pub(crate) fn build_profile(code: &CreditCode, data_version: u64, rows: Vec<Row>) -> Result<Profile, StoreError> {
    use crate::domain::profile::{StoredRecord, Superseded};
    use std::collections::BTreeMap;
    // rows are ordered by version, so the last of each id is its newest.
    let mut by_id: BTreeMap<String, Vec<StoredRecord>> = BTreeMap::new();
    for row in rows {
        let record: Record = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("record {} version {}: {e}", row.record_id, row.version)))?;
        by_id.entry(row.record_id).or_default().push(StoredRecord {
            record,
            recorded_version: row.version as u64,
            digest: row.digest,
        });
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
    history.sort_by(|a, b| b.superseded_at.cmp(&a.superseded_at));
    let (events, records) = current.into_iter().partition(|s| matches!(s.record, Record::Event(_)));
    Ok(Profile { credit_code: code.clone(), data_version, records, events, history })
}

/// Every version, up to `$2`, of every record id that concerned code `$1` at
/// some version up to `$2`. SQLite plans the IN-subquery through the indexes.
pub(crate) const PROFILE_SQL_SQLITE: &str = "SELECT r.record_id, r.version, r.digest, r.body FROM records r \
     WHERE r.version <= $2 AND r.record_id IN \
       (SELECT record_id FROM records WHERE credit_code = $1 AND version <= $2) \
     ORDER BY r.version, r.record_id";

/// The same for PostgreSQL, whose planner may turn the IN-subquery into a
/// hash join over the whole table (seen: 10-30 ms per profile on 50,000
/// records before ANALYZE). LATERAL with OFFSET 0 (an optimisation fence: the
/// subquery is not pulled up) keeps it to primary-key lookups per id.
pub(crate) const PROFILE_SQL_POSTGRES: &str = "SELECT r.record_id, r.version, r.digest, r.body \
     FROM (SELECT DISTINCT record_id FROM records WHERE credit_code = $1 AND version <= $2) ids \
     CROSS JOIN LATERAL (SELECT x.record_id, x.version, x.digest, x.body FROM records x \
                         WHERE x.record_id = ids.record_id AND x.version <= $2 OFFSET 0) r \
     ORDER BY r.version, r.record_id";

/// The write and read logic shared by both backends. `$conn` is how to get a
/// `&mut` connection out of the transaction value the backend's `begin_write`
/// returns; `$after_write` runs inside the transaction just before commit
/// (PostgreSQL sends its NOTIFY there).
macro_rules! backend_impl {
    ($store:ty, $db:ty, $profile_sql:expr) => {
        impl $store {
            pub async fn current_version(&self) -> Result<u64, $crate::store::StoreError> {
                let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM data_versions")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(v.unwrap_or(0) as u64)
            }

            pub async fn write(
                &self,
                source: &str,
                records: &mut $crate::store::RecordSource<'_>,
                mode: $crate::store::WriteMode,
            ) -> Result<$crate::store::WriteOutcome, $crate::store::StoreError> {
                use $crate::domain::input::FieldViolation;
                use $crate::domain::Record;
                use $crate::store::{StoreError, WriteOutcome};
                use std::collections::BTreeSet;

                // Records keep being inserted after a problem is found so that later
                // checks (duplicate ids, event targets) see the whole batch; the
                // transaction is rolled back at the end.
                let (mut tx, _guard) = self.begin_write().await?;
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM data_versions").fetch_one(&mut *tx).await?;
                let current = current.unwrap_or(0);
                let version = current + 1;
                sqlx::query("INSERT INTO data_versions (version, recorded_at, source, record_count) VALUES ($1, $2, $3, 0)")
                    .bind(version)
                    .bind(chrono::Utc::now())
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;

                let mut problems: Vec<(u64, FieldViolation)> = Vec::new();
                let mut changed: BTreeSet<String> = BTreeSet::new();
                let mut events: Vec<(u64, String, String, String)> = Vec::new();
                let (mut stored, mut unchanged) = (0u32, 0u32);
                for (pos, record) in records {
                    let record = match record {
                        Ok(r) => r,
                        Err(violations) => {
                            problems.extend(violations.into_iter().map(|v| (pos, v)));
                            continue;
                        }
                    };
                    let id = record.id().as_str().to_owned();
                    let kind = record.record_type().as_str();
                    let digest = record.digest();
                    let code = record.credit_code().as_str().to_owned();
                    let prev: Option<(i64, String, String, String)> = sqlx::query_as(
                        "SELECT version, kind, digest, credit_code FROM records WHERE record_id = $1 ORDER BY version DESC LIMIT 1",
                    )
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((pv, pkind, pdigest, pcode)) = &prev {
                        if pkind != kind {
                            problems.push((pos, FieldViolation::new("id", format!("'{id}' is already the id of a record of type {pkind}, not {kind}"))));
                            continue;
                        }
                        if *pdigest == digest {
                            unchanged += 1;
                            continue;
                        }
                        if *pv == version {
                            problems.push((pos, FieldViolation::new("id", format!("'{id}' appears earlier in this batch with different content"))));
                            continue;
                        }
                        changed.insert(pcode.clone());
                    }
                    if let Record::Event(e) = &record {
                        events.push((pos, id.clone(), e.target_id.as_str().to_owned(), code.clone()));
                    }
                    sqlx::query("INSERT INTO records (record_id, version, kind, credit_code, digest, body) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(&id)
                        .bind(version)
                        .bind(kind)
                        .bind(&code)
                        .bind(&digest)
                        .bind(record.canonical_json())
                        .execute(&mut *tx)
                        .await?;
                    changed.insert(code);
                    stored += 1;
                }
                // Events may precede their targets in a batch: check them at the end.
                for (pos, id, target, code) in events {
                    let t: Option<(String, String)> = sqlx::query_as(
                        "SELECT kind, credit_code FROM records WHERE record_id = $1 ORDER BY version DESC LIMIT 1",
                    )
                    .bind(&target)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match t {
                        None => problems.push((pos, FieldViolation::new("target_id", format!("event '{id}' targets unknown record '{target}'")))),
                        Some((k, _)) if k == "event" => problems.push((pos, FieldViolation::new("target_id", format!("'{target}' is an event; events target evaluations, list entries, penalties or commitments")))),
                        Some((_, c)) if c != code => problems.push((pos, FieldViolation::new("credit_code", format!("{code} differs from {c}, the credit code of target '{target}'")))),
                        Some(_) => {}
                    }
                }
                if !problems.is_empty() {
                    tx.rollback().await?;
                    problems.sort_by_key(|(p, _)| *p);
                    return Err(StoreError::Rejected(problems));
                }
                if stored == 0 || mode == $crate::store::WriteMode::DryRun {
                    tx.rollback().await?;
                    let changed_codes = if stored == 0 { vec![] } else { Self::codes(changed)? };
                    return Ok(WriteOutcome { data_version: current as u64, created: false, stored, unchanged, changed_codes });
                }
                sqlx::query("UPDATE data_versions SET record_count = $1 WHERE version = $2")
                    .bind(stored as i64)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                for code in &changed {
                    sqlx::query("INSERT INTO changed_codes (version, credit_code) VALUES ($1, $2)")
                        .bind(version)
                        .bind(code)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::after_write(&mut tx, version).await?;
                tx.commit().await?;
                Ok(WriteOutcome { data_version: version as u64, created: true, stored, unchanged, changed_codes: Self::codes(changed)? })
            }

            fn codes(
                set: std::collections::BTreeSet<String>,
            ) -> Result<Vec<$crate::domain::CreditCode>, $crate::store::StoreError> {
                set.into_iter()
                    .map(|c| $crate::domain::CreditCode::try_from(c).map_err(|e| $crate::store::StoreError::Corrupt(e.to_string())))
                    .collect()
            }

            pub async fn profile(
                &self,
                code: &$crate::domain::CreditCode,
                at_version: Option<u64>,
            ) -> Result<$crate::domain::profile::Profile, $crate::store::StoreError> {
                use $crate::store::{Row, StoreError};
                let mut conn = self.pool.acquire().await?;
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM data_versions").fetch_one(&mut *conn).await?;
                let current = current.unwrap_or(0) as u64;
                let version = match at_version {
                    None | Some(0) => current,
                    Some(v) if v > current => return Err(StoreError::FutureVersion { requested: v, current }),
                    Some(v) => v,
                };
                let rows: Vec<(String, i64, String, String)> = sqlx::query_as($profile_sql)
                .bind(code.as_str())
                .bind(version as i64)
                .fetch_all(&mut *conn)
                .await?;
                let rows = rows
                    .into_iter()
                    .map(|(record_id, version, digest, body)| Row { record_id, version, digest, body })
                    .collect();
                $crate::store::build_profile(code, version, rows)
            }

            pub async fn changes_since(
                &self,
                after: u64,
            ) -> Result<Vec<(u64, $crate::domain::CreditCode)>, $crate::store::StoreError> {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT version, credit_code FROM changed_codes WHERE version > $1 ORDER BY version, credit_code",
                )
                .bind(after as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(v, c)| {
                        $crate::domain::CreditCode::try_from(c)
                            .map(|c| (v as u64, c))
                            .map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use backend_impl;
