//! The one write path: the store's writes that change what this replica
//! caches, each returning only once this replica's cache has applied it, or
//! has been told that it may have missed it (the next request then catches up
//! from the change table before it is served).
//!
//! A service writes through these methods and never calls
//! [`CreditCache::catch_up`] itself, so no handler can forget it: a client
//! that wrote and then reads on the same replica sees its write.

use super::CreditCache;
use crate::domain::ownership::Writer;
use crate::domain::{Bidder, CommitteeGrant, Tender, TenderId};
use crate::store::{BidRow, RecordSource, StoreError, WriteMode, WriteOutcome};
use chrono::{DateTime, Utc};

impl<S: Clone + Send + Sync + 'static> CreditCache<S> {
    /// Stores a batch of records (`crate::store::CreditStore::write`); a
    /// committed batch that created a data version is applied here before
    /// this returns.
    pub async fn write_records(
        &self,
        writer: &Writer,
        records: &mut RecordSource<'_>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let outcome = self.store.write(writer, records, mode).await?;
        if outcome.created {
            self.apply_own_write("records").await;
        }
        Ok(outcome)
    }

    /// Stores a tender version (a registration or an amendment), applied
    /// here before this returns.
    pub async fn insert_tender(&self, tender: &Tender) -> Result<Tender, StoreError> {
        let stored = self.store.insert_tender(tender).await?;
        self.apply_own_write("tender").await;
        Ok(stored)
    }

    /// Registers a bid, applied here before this returns.
    pub async fn register_bid(&self, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError> {
        let row = self.store.register_bid(tender_id, bidder).await?;
        self.apply_own_write("bid").await;
        Ok(row)
    }

    /// Stores a committee grant. Grants are read from the store by every
    /// request that presents one, never cached: nothing to apply.
    pub async fn insert_grant(&self, grant: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError> {
        self.store.insert_grant(grant, link_sha256).await
    }

    /// Revokes a committee grant as of `now`; like [`Self::insert_grant`],
    /// nothing cached depends on it.
    pub async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.store.revoke_grant(grant_id, now).await
    }

    /// After a write of this replica: catch up now, so that the next request
    /// sees it; if the store cannot say what changed, catch up before the
    /// next request instead (the follower also retries).
    async fn apply_own_write(&self, what: &'static str) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, what, "stored, but could not refresh the cache; the follower will retry");
            self.notifications_lost();
        }
    }
}
