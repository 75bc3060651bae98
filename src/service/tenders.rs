//! `credit_tender.v1.TenderService`: tenders and bids as the platform registers them.

use super::commands::{AmendTender, BidOn, GetTender, RegisterTender};
use super::policies::PolicySet;
use super::ApiError;
use crate::config::Rules;
use crate::domain::{Bidder, Tender, TenderId, TenderTerms};
use crate::proto::v1 as pb;
use crate::store::{BidRow, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct TenderApi {
    store: Store,
    rules: Arc<Rules>,
    policies: Arc<PolicySet>,
    cache: Arc<super::Cache>,
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub(crate) fn bidder_to_proto(b: &Bidder) -> pb::Bidder {
    pb::Bidder { credit_codes: b.codes().iter().map(|c| c.to_string()).collect() }
}

pub(crate) fn tender_to_proto(t: &Tender, bid_count: u32) -> pb::Tender {
    pb::Tender {
        tender_id: t.tender_id.to_string(),
        version: t.version,
        terms: Some(pb::TenderTerms {
            title: t.terms.title.clone(),
            domain: t.terms.domain.to_string(),
            region: t.terms.region.to_string(),
            bid_deadline: Some(timestamp(t.terms.bid_deadline)),
            estimated_price_fen: t.terms.estimated_price.0,
            nominal_deposit_fen: t.terms.nominal_deposit.0,
            evaluation_method: t.terms.evaluation_method.to_string(),
        }),
        policy_id: t.policy_id.clone(),
        policy_digest: t.policy_digest.clone(),
        registered_at: Some(timestamp(t.registered_at)),
        bid_count,
    }
}

/// What a tender's terms must meet under its policy, beyond their own checks.
pub fn check_against_policy(terms: &TenderTerms, policy: &crate::policy::Policy) -> Result<(), ApiError> {
    if policy.domain != terms.domain {
        return Err(ApiError::field(
            "policy_id",
            format!("policy '{}' is for {}, the tender is {}", policy.id, policy.domain, terms.domain),
        ));
    }
    if terms.nominal_deposit > policy.max_nominal_deposit {
        return Err(ApiError::field(
            "terms.nominal_deposit_fen",
            format!(
                "{} exceeds {}, the ceiling on a bid deposit that policy '{}' sets whatever the estimated price",
                terms.nominal_deposit, policy.max_nominal_deposit, policy.id
            ),
        ));
    }
    if terms.nominal_deposit > policy.max_nominal_deposit_for(terms.estimated_price) {
        return Err(ApiError::field(
            "terms.nominal_deposit_fen",
            format!(
                "{} exceeds {} basis points of the estimated price {}, the most policy '{}' allows",
                terms.nominal_deposit, policy.max_nominal_deposit_bp, terms.estimated_price, policy.id
            ),
        ));
    }
    Ok(())
}

impl TenderApi {
    pub fn new(rules: Arc<Rules>, policies: Arc<PolicySet>, cache: Arc<super::Cache>) -> Self {
        TenderApi { store: cache.store().clone(), rules, policies, cache }
    }

    /// This replica sees its own tender writes at once.
    async fn refresh(&self) {
        if let Err(e) = self.cache.catch_up().await {
            tracing::warn!(error = %e, "tender stored, but the cache could not be refreshed; the follower will retry");
            self.cache.notifications_lost();
        }
    }

    async fn bid_count(&self, id: &TenderId) -> Result<u32, ApiError> {
        Ok(self.store.bids(id).await?.len() as u32)
    }

    async fn register(&self, cmd: RegisterTender) -> Result<pb::Tender, ApiError> {
        let policy = self.policies.current(&cmd.policy_id).ok_or_else(|| {
            ApiError::field(
                "policy_id",
                format!("no loaded policy '{}'; loaded: {}", cmd.policy_id, self.policies.ids().join(", ")),
            )
        })?;
        check_against_policy(&cmd.terms, &policy)?;
        let tender = Tender {
            tender_id: cmd.tender_id,
            version: 1,
            terms: cmd.terms,
            policy_id: policy.id.clone(),
            policy_digest: policy.digest.clone(),
            registered_at: Utc::now(),
        };
        let stored = self.store.insert_tender(&tender).await?;
        self.refresh().await;
        let count = self.bid_count(&stored.tender_id).await?;
        Ok(tender_to_proto(&stored, count))
    }

    async fn amend(&self, cmd: AmendTender) -> Result<pb::Tender, ApiError> {
        let AmendTender { tender_id, terms } = cmd;
        let old = self.store.tender(&tender_id, None).await?.ok_or_else(|| ApiError::NotFound(format!("no tender '{tender_id}'")))?;
        if old.terms.domain != terms.domain {
            return Err(ApiError::field("terms.domain", format!("cannot change from {} to {}", old.terms.domain, terms.domain)));
        }
        let policy = self.policies.by_digest(&old.policy_digest).await?;
        check_against_policy(&terms, &policy)?;
        let tender = Tender { version: old.version + 1, terms, registered_at: Utc::now(), ..old };
        let stored = self.store.insert_tender(&tender).await?;
        self.refresh().await;
        let count = self.bid_count(&stored.tender_id).await?;
        tracing::info!(tender = %stored.tender_id, version = stored.version, "tender amended");
        Ok(tender_to_proto(&stored, count))
    }

    async fn get(&self, cmd: GetTender) -> Result<pb::Tender, ApiError> {
        let GetTender { tender_id, version } = cmd;
        let t = self
            .store
            .tender(&tender_id, Some(version))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no tender '{tender_id}' version {version}")))?;
        let count = self.bid_count(&tender_id).await?;
        Ok(tender_to_proto(&t, count))
    }

    async fn bid(&self, cmd: BidOn) -> Result<pb::Bid, ApiError> {
        let BidOn { tender_id, bidder } = cmd;
        if self.store.tender(&tender_id, None).await?.is_none() {
            return Err(ApiError::NotFound(format!("no tender '{tender_id}'")));
        }
        let row: BidRow = self.store.register_bid(&tender_id, &bidder).await?;
        self.refresh().await;
        Ok(bid_to_proto(&tender_id, &row))
    }
}

pub(crate) fn bid_to_proto(tender_id: &TenderId, row: &BidRow) -> pb::Bid {
    pb::Bid {
        tender_id: tender_id.to_string(),
        sequence: row.sequence,
        bidder: Some(bidder_to_proto(&row.bidder)),
        registered_at: Some(timestamp(row.registered_at)),
    }
}

#[tonic::async_trait]
impl pb::tender_service_server::TenderService for TenderApi {
    async fn register_tender(&self, r: Request<pb::RegisterTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.register(r.into_inner().try_into()?).await?))
    }

    async fn amend_tender(&self, r: Request<pb::AmendTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.amend(r.into_inner().try_into()?).await?))
    }

    async fn get_tender(&self, r: Request<pb::GetTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.get(r.into_inner().try_into()?).await?))
    }

    async fn list_tenders(&self, _: Request<pb::ListTendersRequest>) -> Result<Response<pb::ListTendersResponse>, Status> {
        let list = self.store.list_tenders().await.map_err(ApiError::from)?;
        let tenders = list.iter().map(|(t, n)| tender_to_proto(t, *n)).collect();
        Ok(Response::new(pb::ListTendersResponse { tenders }))
    }

    async fn register_bid(&self, r: Request<pb::RegisterBidRequest>) -> Result<Response<pb::Bid>, Status> {
        let cmd = BidOn::register(r.get_ref(), &self.rules)?;
        Ok(Response::new(self.bid(cmd).await?))
    }
}
