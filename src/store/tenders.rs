//! Tenders, bids, policy versions and committee grants in the store; SQL
//! shared by both backends.

use super::dialect::{Backend, Newest};
use super::{BidRow, StoreError, StoredPolicy};
use crate::domain::tender::{Bidder, CommitteeGrant, EvaluationMethod, Tender, TenderId, TenderTerms};
use crate::domain::{CreditDomain, Fen, RegionCode};
use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};
use std::collections::HashMap;

/// A tender version as stored.
#[derive(FromRow)]
pub struct TenderRow {
    tender_id: String,
    version: i64,
    title: String,
    domain: String,
    region: String,
    bid_deadline: DateTime<Utc>,
    estimated_price_fen: i64,
    nominal_deposit_fen: i64,
    evaluation_method: String,
    policy_id: String,
    policy_digest: String,
    registered_at: DateTime<Utc>,
}

const TENDER_COLUMNS: &str = "tender_id, version, title, domain, region, bid_deadline, estimated_price_fen, \
     nominal_deposit_fen, evaluation_method, policy_id, policy_digest, registered_at";

impl TryFrom<TenderRow> for Tender {
    type Error = StoreError;
    fn try_from(r: TenderRow) -> Result<Tender, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("tender {} version {}: bad {what}", r.tender_id, r.version));
        Ok(Tender {
            terms: TenderTerms {
                title: r.title.clone(),
                domain: CreditDomain::parse(&r.domain).ok_or_else(|| corrupt("domain"))?,
                region: RegionCode::parse(&r.region).map_err(|_| corrupt("region"))?,
                bid_deadline: r.bid_deadline,
                estimated_price: Fen(r.estimated_price_fen),
                nominal_deposit: Fen(r.nominal_deposit_fen),
                evaluation_method: EvaluationMethod::parse(&r.evaluation_method).ok_or_else(|| corrupt("evaluation method"))?,
            },
            tender_id: TenderId::parse(&r.tender_id).map_err(|_| corrupt("id"))?,
            version: r.version as u32,
            policy_id: r.policy_id,
            policy_digest: r.policy_digest,
            registered_at: r.registered_at,
        })
    }
}

#[derive(FromRow)]
pub struct BidCount {
    tender_id: String,
    bids: i64,
}

#[derive(FromRow)]
pub struct StoredBid {
    sequence: i64,
    bidder: String,
    registered_at: DateTime<Utc>,
}

impl TryFrom<StoredBid> for BidRow {
    type Error = StoreError;
    fn try_from(r: StoredBid) -> Result<BidRow, StoreError> {
        let bidder = Bidder::from_key(&r.bidder).map_err(|e| StoreError::Corrupt(format!("bid '{}': {e}", r.bidder)))?;
        Ok(BidRow { sequence: r.sequence as u32, bidder, registered_at: r.registered_at })
    }
}

#[derive(FromRow)]
pub struct TenderChange {
    seq: i64,
    tender_id: String,
}

const PUT_POLICY: &str = "INSERT INTO policies (digest, policy_id, source, loaded_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (digest) DO NOTHING";
const POLICY_BY_DIGEST: &str = "SELECT policy_id, source FROM policies WHERE digest = $1";
const NEWEST_TENDER_VERSION: &str = "SELECT MAX(version) AS newest FROM tenders WHERE tender_id = $1";
const INSERT_TENDER: &str = "INSERT INTO tenders (tender_id, version, title, domain, region, bid_deadline, \
     estimated_price_fen, nominal_deposit_fen, evaluation_method, policy_id, policy_digest, registered_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const BID_COUNTS: &str = "SELECT tender_id, COUNT(*) AS bids FROM bids GROUP BY tender_id";
const BID_OF_BIDDER: &str = "SELECT sequence, bidder, registered_at FROM bids WHERE tender_id = $1 AND bidder = $2";
const NEWEST_BID: &str = "SELECT MAX(sequence) AS newest FROM bids WHERE tender_id = $1";
const INSERT_BID: &str = "INSERT INTO bids (tender_id, sequence, bidder, registered_at) VALUES ($1, $2, $3, $4)";
const BIDS: &str = "SELECT sequence, bidder, registered_at FROM bids WHERE tender_id = $1 ORDER BY sequence";
const INSERT_TENDER_CHANGE: &str = "INSERT INTO tender_changes (tender_id) VALUES ($1)";
const NEWEST_TENDER_CHANGE: &str = "SELECT MAX(seq) AS newest FROM tender_changes";
const TENDER_CHANGES_SINCE: &str = "SELECT seq, tender_id FROM tender_changes WHERE seq > $1 ORDER BY seq";

#[derive(FromRow)]
pub struct GrantRow {
    grant_id: String,
    tender_id: String,
    member_ref: String,
    granted_by: String,
    granted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<GrantRow> for CommitteeGrant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<CommitteeGrant, StoreError> {
        Ok(CommitteeGrant {
            tender_id: TenderId::parse(&r.tender_id).map_err(|e| StoreError::Corrupt(format!("grant {}: {e}", r.grant_id)))?,
            grant_id: r.grant_id,
            member_ref: r.member_ref,
            granted_by: r.granted_by,
            granted_at: r.granted_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(FromRow)]
pub struct Written {
    written: i64,
}

const GRANT_COLUMNS: &str = "grant_id, tender_id, member_ref, granted_by, granted_at, expires_at, used_at, revoked_at";
const INSERT_GRANT: &str = "INSERT INTO committee_grants (grant_id, tender_id, member_ref, granted_by, granted_at, \
     expires_at, link_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const REDEEM_GRANT: &str = "UPDATE committee_grants SET used_at = $1, session_sha256 = $2 \
     WHERE link_sha256 = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1";
const REVOKE_GRANT: &str = "UPDATE committee_grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL";
const WRITTEN_BY: &str = "SELECT COUNT(*) AS written FROM records r JOIN data_versions v ON v.version = r.version \
     WHERE r.credit_code = $1 AND v.source = $2";

/// The tender queries over one pool.
pub(super) struct Tenders<'p, DB: Backend>(pub &'p Pool<DB>);

impl<DB> Tenders<'_, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> Newest: FromRow<'r, DB::Row>,
    for<'r> StoredPolicy: FromRow<'r, DB::Row>,
    for<'r> TenderRow: FromRow<'r, DB::Row>,
    for<'r> BidCount: FromRow<'r, DB::Row>,
    for<'r> StoredBid: FromRow<'r, DB::Row>,
    for<'r> TenderChange: FromRow<'r, DB::Row>,
    for<'r> GrantRow: FromRow<'r, DB::Row>,
    for<'r> Written: FromRow<'r, DB::Row>,
{
    pub async fn insert_grant(mut tx: Transaction<'static, DB>, g: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError> {
        sqlx::query(INSERT_GRANT)
            .bind(g.grant_id.as_str())
            .bind(g.tender_id.as_str())
            .bind(g.member_ref.as_str())
            .bind(g.granted_by.as_str())
            .bind(g.granted_at)
            .bind(g.expires_at)
            .bind(link_sha256)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses a link once: binds the session to it and returns the grant, or
    /// `None` for a link unknown, used, revoked or expired.
    pub async fn redeem_grant(
        mut tx: Transaction<'static, DB>,
        link_sha256: &str,
        session_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitteeGrant>, StoreError> {
        let done = sqlx::query(REDEEM_GRANT).bind(now).bind(session_sha256).bind(link_sha256).execute(&mut *tx).await?;
        if DB::rows_affected(&done) != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let grant = Self::grant_in(&mut tx, "session_sha256", session_sha256).await?;
        tx.commit().await?;
        Ok(grant)
    }

    pub async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        self.grant_by("session_sha256", session_sha256).await
    }

    pub async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        self.grant_by("grant_id", grant_id).await
    }

    async fn grant_by(&self, column: &str, value: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        let mut conn = self.0.acquire().await?;
        Self::grant_in(&mut conn, column, value).await
    }

    async fn grant_in(conn: &mut DB::Connection, column: &str, value: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM committee_grants WHERE {column} = $1");
        let row: Option<GrantRow> = sqlx::query_as(&sql).bind(value).fetch_optional(&mut *conn).await?;
        row.map(CommitteeGrant::try_from).transpose()
    }

    /// Revokes a grant; false if it was unknown or already revoked.
    pub async fn revoke_grant(mut tx: Transaction<'static, DB>, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(REVOKE_GRANT).bind(now).bind(grant_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    /// Whether any record of `code` was written by `source`.
    pub async fn written_by(&self, code: &str, source: &str) -> Result<bool, StoreError> {
        let w: Written = sqlx::query_as(WRITTEN_BY).bind(code).bind(source).fetch_one(self.0).await?;
        Ok(w.written > 0)
    }

    pub async fn put_policy(mut tx: Transaction<'static, DB>, id: &str, digest: &str, source: &str) -> Result<(), StoreError> {
        sqlx::query(PUT_POLICY).bind(digest).bind(id).bind(source).bind(Utc::now()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError> {
        Ok(sqlx::query_as(POLICY_BY_DIGEST).bind(digest).fetch_optional(self.0).await?)
    }

    pub async fn tender(&self, id: &TenderId, version: Option<u32>) -> Result<Option<Tender>, StoreError> {
        let row: Option<TenderRow> = match version {
            None | Some(0) => {
                let sql = format!("SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 ORDER BY version DESC LIMIT 1");
                sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(self.0).await?
            }
            Some(v) => {
                let sql = format!("SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 AND version = $2");
                sqlx::query_as(&sql).bind(id.as_str()).bind(v as i64).fetch_optional(self.0).await?
            }
        };
        row.map(Tender::try_from).transpose()
    }

    pub async fn list_tenders(&self) -> Result<Vec<(Tender, u32)>, StoreError> {
        let sql = format!(
            "SELECT {TENDER_COLUMNS} FROM tenders t WHERE version = \
               (SELECT MAX(version) FROM tenders u WHERE u.tender_id = t.tender_id) \
             ORDER BY bid_deadline DESC, tender_id"
        );
        let rows: Vec<TenderRow> = sqlx::query_as(&sql).fetch_all(self.0).await?;
        let counts: Vec<BidCount> = sqlx::query_as(BID_COUNTS).fetch_all(self.0).await?;
        let counts: HashMap<String, i64> = counts.into_iter().map(|c| (c.tender_id, c.bids)).collect();
        rows.into_iter()
            .map(|r| {
                let t = Tender::try_from(r)?;
                let n = counts.get(t.tender_id.as_str()).copied().unwrap_or(0) as u32;
                Ok((t, n))
            })
            .collect()
    }

    /// In `tx`, a write transaction holding the data lock; commits it.
    pub async fn insert_tender(&self, mut tx: Transaction<'static, DB>, t: &Tender) -> Result<Tender, StoreError> {
        let newest = sqlx::query_as::<_, Newest>(NEWEST_TENDER_VERSION).bind(t.tender_id.as_str()).fetch_one(&mut *tx).await?;
        let version = match (newest.newest, t.version) {
            (None, 1) => 1,
            (Some(_), 1) => {
                tx.rollback().await?;
                let first = self.tender(&t.tender_id, Some(1)).await?.expect("version 1 exists");
                if first.terms == t.terms && first.policy_id == t.policy_id {
                    return Ok(self.tender(&t.tender_id, None).await?.expect("tender exists"));
                }
                return Err(StoreError::TenderExists(t.tender_id.clone()));
            }
            (None, _) => return Err(StoreError::UnknownTender(t.tender_id.clone())),
            (Some(n), _) => n + 1,
        };
        sqlx::query(INSERT_TENDER)
            .bind(t.tender_id.as_str())
            .bind(version)
            .bind(t.terms.title.as_str())
            .bind(t.terms.domain.as_str())
            .bind(t.terms.region.to_string())
            .bind(t.terms.bid_deadline)
            .bind(t.terms.estimated_price.0)
            .bind(t.terms.nominal_deposit.0)
            .bind(t.terms.evaluation_method.as_str())
            .bind(t.policy_id.as_str())
            .bind(t.policy_digest.as_str())
            .bind(t.registered_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_TENDER_CHANGE).bind(t.tender_id.as_str()).execute(&mut *tx).await?;
        DB::announce(&mut tx, "t").await?;
        tx.commit().await?;
        Ok(Tender { version: version as u32, ..t.clone() })
    }

    /// In `tx`, a write transaction holding the data lock; commits it.
    pub async fn register_bid(mut tx: Transaction<'static, DB>, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError> {
        let key = bidder.key();
        let existing: Option<StoredBid> =
            sqlx::query_as(BID_OF_BIDDER).bind(tender_id.as_str()).bind(key.as_str()).fetch_optional(&mut *tx).await?;
        if let Some(existing) = existing {
            tx.rollback().await?;
            return BidRow::try_from(existing);
        }
        let newest = sqlx::query_as::<_, Newest>(NEWEST_BID).bind(tender_id.as_str()).fetch_one(&mut *tx).await?;
        let sequence = newest.newest.unwrap_or(0) + 1;
        let registered_at = Utc::now();
        sqlx::query(INSERT_BID).bind(tender_id.as_str()).bind(sequence).bind(key.as_str()).bind(registered_at).execute(&mut *tx).await?;
        sqlx::query(INSERT_TENDER_CHANGE).bind(tender_id.as_str()).execute(&mut *tx).await?;
        DB::announce(&mut tx, "t").await?;
        tx.commit().await?;
        Ok(BidRow { sequence: sequence as u32, bidder: bidder.clone(), registered_at })
    }

    pub async fn bids(&self, tender_id: &TenderId) -> Result<Vec<BidRow>, StoreError> {
        let rows: Vec<StoredBid> = sqlx::query_as(BIDS).bind(tender_id.as_str()).fetch_all(self.0).await?;
        rows.into_iter().map(BidRow::try_from).collect()
    }

    pub async fn tender_change_seq(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query_as::<_, Newest>(NEWEST_TENDER_CHANGE).fetch_one(self.0).await?.newest.unwrap_or(0) as u64)
    }

    pub async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, TenderId)>, StoreError> {
        let rows: Vec<TenderChange> = sqlx::query_as(TENDER_CHANGES_SINCE).bind(after as i64).fetch_all(self.0).await?;
        rows.into_iter()
            .map(|r| {
                let id = TenderId::parse(&r.tender_id).map_err(|e| StoreError::Corrupt(format!("tender change {}: {e}", r.seq)))?;
                Ok((r.seq as u64, id))
            })
            .collect()
    }
}
