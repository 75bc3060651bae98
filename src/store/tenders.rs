//! Tenders, bids and policy versions in the store, shared by both backends
//! like the record logic in `mod.rs`.

use crate::domain::tender::{EvaluationMethod, Tender, TenderTerms};
use crate::domain::{CreditDomain, Fen, RegionCode};
use chrono::{DateTime, Utc};

use super::StoreError;

/// A stored bid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRow {
    pub sequence: u32,
    /// Codes joined by '+', lead first (see `Bidder::key`).
    pub bidder: String,
    pub registered_at: DateTime<Utc>,
}

pub(crate) type TenderTuple =
    (String, i64, String, String, String, DateTime<Utc>, i64, i64, String, String, String, DateTime<Utc>);

pub(crate) const TENDER_COLUMNS: &str = "tender_id, version, title, domain, region, bid_deadline, estimated_price_fen, \
     nominal_deposit_fen, evaluation_method, policy_id, policy_digest, registered_at";

pub(crate) fn tender_from_row(r: TenderTuple) -> Result<Tender, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("tender {} version {}: bad {what}", r.0, r.1));
    Ok(Tender {
        terms: TenderTerms {
            title: r.2.clone(),
            domain: CreditDomain::parse(&r.3).ok_or_else(|| corrupt("domain"))?,
            region: RegionCode::parse(&r.4).map_err(|_| corrupt("region"))?,
            bid_deadline: r.5,
            estimated_price: Fen(r.6),
            nominal_deposit: Fen(r.7),
            evaluation_method: EvaluationMethod::parse(&r.8).ok_or_else(|| corrupt("evaluation method"))?,
        },
        tender_id: r.0,
        version: r.1 as u32,
        policy_id: r.9,
        policy_digest: r.10,
        registered_at: r.11,
    })
}

macro_rules! tender_impl {
    ($store:ty) => {
        impl $store {
            pub async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO policies (digest, policy_id, source, loaded_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING",
                )
                .bind(digest)
                .bind(id)
                .bind(source)
                .bind(chrono::Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub async fn policy_source(&self, digest: &str) -> Result<Option<(String, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as("SELECT policy_id, source FROM policies WHERE digest = $1")
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            pub async fn tender(
                &self,
                id: &str,
                version: Option<u32>,
            ) -> Result<Option<$crate::domain::Tender>, $crate::store::StoreError> {
                use $crate::store::tenders::{tender_from_row, TenderTuple, TENDER_COLUMNS};
                let row: Option<TenderTuple> = match version {
                    None | Some(0) => {
                        sqlx::query_as(&format!(
                            "SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 ORDER BY version DESC LIMIT 1"
                        ))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                    Some(v) => {
                        sqlx::query_as(&format!("SELECT {TENDER_COLUMNS} FROM tenders WHERE tender_id = $1 AND version = $2"))
                            .bind(id)
                            .bind(v as i64)
                            .fetch_optional(&self.pool)
                            .await?
                    }
                };
                row.map(tender_from_row).transpose()
            }

            pub async fn list_tenders(&self) -> Result<Vec<($crate::domain::Tender, u32)>, $crate::store::StoreError> {
                use $crate::store::tenders::{tender_from_row, TenderTuple, TENDER_COLUMNS};
                let rows: Vec<TenderTuple> = sqlx::query_as(&format!(
                    "SELECT {TENDER_COLUMNS} FROM tenders t WHERE version = \
                       (SELECT MAX(version) FROM tenders u WHERE u.tender_id = t.tender_id) \
                     ORDER BY bid_deadline DESC, tender_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                let counts: Vec<(String, i64)> =
                    sqlx::query_as("SELECT tender_id, COUNT(*) FROM bids GROUP BY tender_id").fetch_all(&self.pool).await?;
                let counts: std::collections::HashMap<String, i64> = counts.into_iter().collect();
                rows.into_iter()
                    .map(|r| {
                        let t = tender_from_row(r)?;
                        let n = counts.get(&t.tender_id).copied().unwrap_or(0) as u32;
                        Ok((t, n))
                    })
                    .collect()
            }

            /// Inserts version `t.version` of a tender. For version 1 an existing
            /// identical registration is returned as is (idempotent); a different
            /// one is `TenderExists`. For later versions the previous must exist.
            pub async fn insert_tender(
                &self,
                t: &$crate::domain::Tender,
            ) -> Result<$crate::domain::Tender, $crate::store::StoreError> {
                use $crate::store::StoreError;
                let (mut tx, _guard) = self.begin_write().await?;
                let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM tenders WHERE tender_id = $1")
                    .bind(&t.tender_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let version = match (newest, t.version) {
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
                sqlx::query(
                    "INSERT INTO tenders (tender_id, version, title, domain, region, bid_deadline, estimated_price_fen, \
                     nominal_deposit_fen, evaluation_method, policy_id, policy_digest, registered_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&t.tender_id)
                .bind(version)
                .bind(&t.terms.title)
                .bind(t.terms.domain.as_str())
                .bind(t.terms.region.to_string())
                .bind(t.terms.bid_deadline)
                .bind(t.terms.estimated_price.0)
                .bind(t.terms.nominal_deposit.0)
                .bind(t.terms.evaluation_method.as_str())
                .bind(&t.policy_id)
                .bind(&t.policy_digest)
                .bind(t.registered_at)
                .execute(&mut *tx)
                .await?;
                Self::tender_changed(&mut tx, &t.tender_id).await?;
                tx.commit().await?;
                let mut stored = t.clone();
                stored.version = version as u32;
                Ok(stored)
            }

            /// Records a bid once; the same bidder again gets its first sequence.
            pub async fn register_bid(
                &self,
                tender_id: &str,
                bidder: &str,
            ) -> Result<$crate::store::BidRow, $crate::store::StoreError> {
                use $crate::store::BidRow;
                let (mut tx, _guard) = self.begin_write().await?;
                let existing: Option<(i64, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT sequence, registered_at FROM bids WHERE tender_id = $1 AND bidder = $2")
                        .bind(tender_id)
                        .bind(bidder)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((sequence, registered_at)) = existing {
                    tx.rollback().await?;
                    return Ok(BidRow { sequence: sequence as u32, bidder: bidder.to_owned(), registered_at });
                }
                let next: Option<i64> = sqlx::query_scalar("SELECT MAX(sequence) FROM bids WHERE tender_id = $1")
                    .bind(tender_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let sequence = next.unwrap_or(0) + 1;
                let registered_at = chrono::Utc::now();
                sqlx::query("INSERT INTO bids (tender_id, sequence, bidder, registered_at) VALUES ($1, $2, $3, $4)")
                    .bind(tender_id)
                    .bind(sequence)
                    .bind(bidder)
                    .bind(registered_at)
                    .execute(&mut *tx)
                    .await?;
                Self::tender_changed(&mut tx, tender_id).await?;
                tx.commit().await?;
                Ok(BidRow { sequence: sequence as u32, bidder: bidder.to_owned(), registered_at })
            }

            pub async fn tender_change_seq(&self) -> Result<u64, $crate::store::StoreError> {
                let v: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM tender_changes").fetch_one(&self.pool).await?;
                Ok(v.unwrap_or(0) as u64)
            }

            /// Tender ids changed after sequence `after`: (seq, tender id), oldest first.
            pub async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, String)>, $crate::store::StoreError> {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as("SELECT seq, tender_id FROM tender_changes WHERE seq > $1 ORDER BY seq")
                        .bind(after as i64)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(|(s, t)| (s as u64, t)).collect())
            }

            pub async fn bids(&self, tender_id: &str) -> Result<Vec<$crate::store::BidRow>, $crate::store::StoreError> {
                let rows: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT sequence, bidder, registered_at FROM bids WHERE tender_id = $1 ORDER BY sequence",
                )
                .bind(tender_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(s, bidder, registered_at)| $crate::store::BidRow { sequence: s as u32, bidder, registered_at })
                    .collect())
            }
        }
    };
}
pub(crate) use tender_impl;
