//! The records' reads: profiles at a data version, the feed of changed
//! codes, and who wrote what. [`RecordStore`] for [`SqlStore`]; the write
//! path is `record_write.rs`.

use super::dialect::{NEWEST_VERSION, Newest, sql_impl};
use super::error::StoreError;
use super::record_write::{FirstVersion, PreviousVersion, SiblingEvaluation, Target};
use super::sql::SqlStore;
use super::traits::RecordStore;
use super::types::{ProfileRow, RecordRow, RecordSource, WriteMode, WriteOutcome, build_profile};
use crate::domain::CreditCode;
use crate::domain::ownership::Writer;
use crate::domain::profile::Profile;
use sqlx::FromRow;
use std::collections::HashMap;

/// A code of the change feed, with the data version that changed it.
#[derive(FromRow)]
pub struct ChangedCode {
    version: i64,
    credit_code: String,
}

#[derive(FromRow)]
pub struct Written {
    written: i64,
}

/// Codes with an evaluation, as (first version, code) rows so that the
/// change feed's row type reads them.
const EVALUATED_CODES: &str = "SELECT MIN(version) AS version, credit_code FROM records \
     WHERE kind = 'evaluation' AND version <= $1 GROUP BY credit_code ORDER BY credit_code";
const CHANGES_SINCE: &str = "SELECT version, credit_code FROM changed_codes WHERE version > $1 ORDER BY version, credit_code LIMIT $2";
const WRITTEN_BY: &str = "SELECT COUNT(*) AS written FROM records r JOIN data_versions v ON v.version = r.version \
     WHERE r.credit_code = $1 AND v.source = $2";

sql_impl! {
    #[async_trait::async_trait]
    impl RecordStore for SqlStore<DB>, reading [
        ChangedCode, Written, RecordRow, ProfileRow,
        // The write path's.
        PreviousVersion, FirstVersion, Target, SiblingEvaluation,
    ] {
        async fn current_version(&self) -> Result<u64, StoreError> {
            Ok(sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&self.pool).await?.newest.unwrap_or(0) as u64)
        }

        async fn write(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError> {
            self.write_records(writer, records, mode).await
        }

        /// The profiles of `codes` (distinct) at one data version, in their
        /// order, in one statement: one round trip for a whole consortium or a
        /// committee's table, and for one code too (no separate version query
        /// unless none of the codes has a record).
        async fn profiles(&self, codes: &[CreditCode], at_version: Option<u64>) -> Result<Vec<Profile>, StoreError> {
            if codes.is_empty() {
                return Ok(Vec::new());
            }
            let mut conn = self.pool.acquire().await?;
            let list = (2..codes.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let bound = match at_version {
                None | Some(0) => i64::MAX,
                Some(v) => i64::try_from(v).unwrap_or(i64::MAX),
            };
            let sql = DB::profiles_sql(&list);
            let mut q = sqlx::query_as::<_, ProfileRow>(&sql).bind(bound);
            for code in codes {
                q = q.bind(code.as_str());
            }
            let rows = q.fetch_all(&mut *conn).await?;
            let current = match rows.first() {
                Some(row) => row.newest.unwrap_or(0) as u64,
                None => sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&mut *conn).await?.newest.unwrap_or(0) as u64,
            };
            let version = match at_version {
                None | Some(0) => current,
                Some(v) if v > current => return Err(StoreError::FutureVersion { requested: v, current }),
                Some(v) => v,
            };
            let mut by_code: HashMap<String, Vec<RecordRow>> = HashMap::with_capacity(codes.len());
            for row in rows {
                by_code.entry(row.origin).or_default().push(RecordRow {
                    record_id: row.record_id,
                    version: row.version,
                    digest: row.digest,
                    body: row.body,
                });
            }
            codes.iter().map(|code| build_profile(code, version, by_code.remove(code.as_str()).unwrap_or_default())).collect()
        }

        async fn profile(&self, code: &CreditCode, at_version: Option<u64>) -> Result<Profile, StoreError> {
            let mut profiles = self.profiles(std::slice::from_ref(code), at_version).await?;
            Ok(profiles.pop().expect("one profile per code"))
        }

        async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<(u64, CreditCode)>, StoreError> {
            let rows: Vec<ChangedCode> =
                sqlx::query_as(CHANGES_SINCE).bind(after as i64).bind(i64::from(limit)).fetch_all(&self.pool).await?;
            rows.into_iter()
                .map(|r| CreditCode::try_from(r.credit_code).map(|c| (r.version as u64, c)).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        }

        async fn written_by(&self, code: &CreditCode, source: &str) -> Result<bool, StoreError> {
            let w: Written = sqlx::query_as(WRITTEN_BY).bind(code.as_str()).bind(source).fetch_one(&self.pool).await?;
            Ok(w.written > 0)
        }

        async fn evaluated_codes(&self, at_version: u64) -> Result<Vec<CreditCode>, StoreError> {
            let bound = i64::try_from(at_version).unwrap_or(i64::MAX);
            let rows: Vec<ChangedCode> = sqlx::query_as(EVALUATED_CODES).bind(bound).fetch_all(&self.pool).await?;
            rows.into_iter().map(|r| CreditCode::try_from(r.credit_code).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
        }
    }
}
