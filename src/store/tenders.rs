//! Tenders, their versions and bids, and the tender change feed.
//! [`TenderStore`] for [`SqlStore`].

use super::dialect::{Newest, sql_impl};
use super::error::StoreError;
use super::sql::{SqlStore, WriteKind};
use super::traits::TenderStore;
use super::types::BidRow;
use crate::domain::tender::{Bidder, EvaluationMethod, Tender, TenderId, TenderTerms};
use crate::domain::{CreditDomain, Fen, RegionCode};
use chrono::{DateTime, Utc};
use sqlx::FromRow;
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

sql_impl! {
    #[async_trait::async_trait]
    impl TenderStore for SqlStore<DB>, reading [TenderRow, BidCount, StoredBid, TenderChange] {
        async fn tender(&self, id: &TenderId, version: Option<u32>) -> Result<Option<Tender>, StoreError> {
            let row: Option<TenderRow> = match version {
                None | Some(0) => {
                    let sql = format!("SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 ORDER BY version DESC LIMIT 1");
                    sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?
                }
                Some(v) => {
                    let sql = format!("SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 AND version = $2");
                    sqlx::query_as(&sql).bind(id.as_str()).bind(v as i64).fetch_optional(&self.pool).await?
                }
            };
            row.map(Tender::try_from).transpose()
        }

        async fn list_tenders(&self) -> Result<Vec<(Tender, u32)>, StoreError> {
            let sql = format!(
                "SELECT {TENDER_COLUMNS} FROM tenders t WHERE version = \
                   (SELECT MAX(version) FROM tenders u WHERE u.tender_id = t.tender_id) \
                 ORDER BY bid_deadline DESC, tender_id"
            );
            let rows: Vec<TenderRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
            let counts: Vec<BidCount> = sqlx::query_as(BID_COUNTS).fetch_all(&self.pool).await?;
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
        async fn insert_tender(&self, t: &Tender) -> Result<Tender, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Data).await?;
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
        async fn register_bid(&self, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError> {
            let (_turn, mut tx) = self.turn(WriteKind::Data).await?;
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

        async fn bids(&self, tender_id: &TenderId) -> Result<Vec<BidRow>, StoreError> {
            let rows: Vec<StoredBid> = sqlx::query_as(BIDS).bind(tender_id.as_str()).fetch_all(&self.pool).await?;
            rows.into_iter().map(BidRow::try_from).collect()
        }

        async fn tender_change_seq(&self) -> Result<u64, StoreError> {
            Ok(sqlx::query_as::<_, Newest>(NEWEST_TENDER_CHANGE).fetch_one(&self.pool).await?.newest.unwrap_or(0) as u64)
        }

        async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, TenderId)>, StoreError> {
            let rows: Vec<TenderChange> = sqlx::query_as(TENDER_CHANGES_SINCE).bind(after as i64).fetch_all(&self.pool).await?;
            rows.into_iter()
                .map(|r| {
                    let id = TenderId::parse(&r.tender_id).map_err(|e| StoreError::Corrupt(format!("tender change {}: {e}", r.seq)))?;
                    Ok((r.seq as u64, id))
                })
                .collect()
        }
    }
}
