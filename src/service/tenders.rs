//! `credit_tender.v1.TenderService`: tenders and bids as the platform registers them.

use super::answer::Cache;
use super::authorize::{authorize, caller};
use super::commands::{AmendTender, BidOn, GetTender, RegisterTender};
use super::error::{ApiError, count_refusal, no_tender};
use super::policies::PolicySet;
use crate::access::{Action, Caller, Decision, Resource, decide};
use crate::domain::{Bidder, CommitteeGrant, Tender, TenderId, TenderTerms};
use crate::proto::v1 as pb;
use crate::rules::Rules;
use crate::store::{BidRow, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct TenderApi {
    rules: Arc<Rules>,
    policies: Arc<PolicySet>,
    cache: Arc<Cache>,
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
    pub fn new(rules: Arc<Rules>, policies: Arc<PolicySet>, cache: Arc<Cache>) -> Self {
        TenderApi { rules, policies, cache }
    }

    async fn bid_count(&self, id: &TenderId) -> Result<u32, ApiError> {
        Ok(self.cache.store().bids(id).await?.len() as u32)
    }

    fn on(&self, caller: &Caller, action: Action, t: &Tender) -> Result<(), ApiError> {
        let resource = Resource::Tender { id: &t.tender_id, region: t.terms.region };
        authorize(caller, action, resource, self.cache.metrics(), self.cache.clock())
    }

    /// The newest version of a tender `caller` may do `action` on: its role
    /// is asked first, before the lookup, and then an id out of its scope
    /// is answered exactly as an unknown one.
    async fn visible(&self, caller: &Caller, action: Action, id: &TenderId) -> Result<Tender, ApiError> {
        authorize(caller, action, Resource::AnyTender, self.cache.metrics(), self.cache.clock())?;
        let t = self.cache.store().tender(id, None).await?.ok_or_else(|| no_tender(id.as_str()))?;
        self.on(caller, action, &t)?;
        Ok(t)
    }

    async fn register(&self, caller: &Caller, cmd: RegisterTender) -> Result<pb::Tender, ApiError> {
        authorize(caller, Action::RegisterTender, Resource::AnyTender, self.cache.metrics(), self.cache.clock())?;
        let resource = Resource::Placement { id: &cmd.tender_id, region: cmd.terms.region };
        authorize(caller, Action::RegisterTender, resource, self.cache.metrics(), self.cache.clock())?;
        let policy = self.policies.current(&cmd.policy_id).ok_or_else(|| {
            ApiError::field(
                "policy_id",
                format!("no loaded policy '{}'; loaded: {}", crate::domain::text::shown(&cmd.policy_id), self.policies.ids().join(", ")),
            )
        })?;
        check_against_policy(&cmd.terms, &policy)?;
        let tender = Tender {
            tender_id: cmd.tender_id,
            version: 1,
            terms: cmd.terms,
            policy_id: policy.id.clone(),
            policy_digest: policy.digest.clone(),
            registered_at: self.cache.clock().now(),
        };
        let stored = match self.cache.insert_tender(&tender).await {
            // Ids are one namespace: a taken id is said to be taken, never
            // where or by whom, and an id taken out of the caller's scope is
            // not offered for AmendTender (which would answer "no tender").
            Err(StoreError::TenderExists(id)) => {
                let theirs = match self.cache.store().tender(&id, None).await? {
                    Some(t) => {
                        decide(caller, Action::ReadTender, Resource::Tender { id: &id, region: t.terms.region }, self.cache.clock().now())
                            != Decision::Allow
                    }
                    None => true,
                };
                return Err(if theirs {
                    ApiError::Store(StoreError::TenderIdTaken(id))
                } else {
                    ApiError::Store(StoreError::TenderExists(id))
                });
            }
            other => other.map_err(|e| count_refusal(self.cache.metrics(), e))?,
        };
        let count = self.bid_count(&stored.tender_id).await?;
        Ok(tender_to_proto(&stored, count))
    }

    async fn amend(&self, caller: &Caller, cmd: AmendTender) -> Result<pb::Tender, ApiError> {
        let AmendTender { tender_id, terms } = cmd;
        let old = self.visible(caller, Action::AmendTender, &tender_id).await?;
        // Moving a tender is allowed only within the caller's regions: the
        // caller's own tender, so refused naming the rule.
        let resource = Resource::Placement { id: &tender_id, region: terms.region };
        authorize(caller, Action::AmendTender, resource, self.cache.metrics(), self.cache.clock())?;
        if old.terms.domain != terms.domain {
            return Err(ApiError::field("terms.domain", format!("cannot change from {} to {}", old.terms.domain, terms.domain)));
        }
        let policy = self.policies.by_digest(&old.policy_digest).await?;
        check_against_policy(&terms, &policy)?;
        let tender = Tender { version: old.version + 1, terms, registered_at: self.cache.clock().now(), ..old };
        let stored = self.cache.insert_tender(&tender).await.map_err(|e| count_refusal(self.cache.metrics(), e))?;
        let count = self.bid_count(&stored.tender_id).await?;
        tracing::info!(tender = %stored.tender_id, version = stored.version, "tender amended");
        Ok(tender_to_proto(&stored, count))
    }

    async fn get(&self, caller: &Caller, cmd: GetTender) -> Result<pb::Tender, ApiError> {
        let GetTender { tender_id, version } = cmd;
        // Scope is the newest version's region; only then is a version looked for.
        let newest = self.visible(caller, Action::ReadTender, &tender_id).await?;
        let t = match version {
            0 => newest,
            v => self.cache.store().tender(&tender_id, Some(v)).await?.ok_or_else(|| {
                ApiError::NotFound(format!("tender '{tender_id}' has no version {v}; its newest is version {}", newest.version))
            })?,
        };
        let count = self.bid_count(&tender_id).await?;
        Ok(tender_to_proto(&t, count))
    }

    async fn bid(&self, caller: &Caller, cmd: BidOn) -> Result<pb::Bid, ApiError> {
        let BidOn { tender_id, bidder } = cmd;
        self.visible(caller, Action::RegisterBid, &tender_id).await?;
        let row: BidRow = self.cache.register_bid(&tender_id, &bidder).await.map_err(|e| count_refusal(self.cache.metrics(), e))?;
        Ok(bid_to_proto(&tender_id, &row))
    }
}

impl TenderApi {
    async fn list(&self, caller: &Caller) -> Result<pb::ListTendersResponse, ApiError> {
        authorize(caller, Action::ListTenders, Resource::Service, self.cache.metrics(), self.cache.clock())?;
        let list = self.cache.tender_list().await?;
        let now = self.cache.clock().now();
        let tenders = list
            .iter()
            .filter(|(t, _)| {
                let resource = Resource::Tender { id: &t.tender_id, region: t.terms.region };
                decide(caller, Action::ReadTender, resource, now) == Decision::Allow
            })
            .map(|(t, n)| tender_to_proto(t, *n))
            .collect();
        Ok(pb::ListTendersResponse { tenders })
    }

    /// A single-use link for one committee member and one tender, until
    /// `expires_at` (at most 24 hours ahead).
    async fn grant(&self, caller: &Caller, req: pb::GrantCommitteeAccessRequest) -> Result<pb::CommitteeGrant, ApiError> {
        let tender_id = super::commands::tender_id(&req.tender_id)?;
        let member_ref = req.member_ref.trim().to_owned();
        if member_ref.is_empty() || member_ref.chars().count() > 128 || member_ref.chars().any(char::is_control) {
            return Err(ApiError::field("member_ref", "is required: at most 128 printable characters"));
        }
        let expires_at = super::commands::instant("expires_at", req.expires_at.as_ref())?;
        let now = self.cache.clock().now();
        if expires_at <= now || expires_at > now + chrono::Duration::hours(24) {
            return Err(ApiError::field("expires_at", "must be in the future and at most 24 hours ahead"));
        }
        self.visible(caller, Action::GrantCommitteeAccess, &tender_id).await?;
        let (link, link_sha256) = crate::access::principals::new_token();
        let grant = CommitteeGrant {
            grant_id: crate::access::principals::new_token().1[..16].to_owned(),
            tender_id,
            member_ref,
            granted_by: caller.label().to_owned(),
            granted_at: now,
            expires_at,
            used_at: None,
            revoked_at: None,
        };
        self.cache.insert_grant(&grant, &link_sha256).await.map_err(|e| count_refusal(self.cache.metrics(), e))?;
        tracing::info!(principal = caller.label(), grant = %grant.grant_id, tender = %grant.tender_id, "committee access granted");
        Ok(grant_to_proto(&grant, format!("/committee/enter/{link}")))
    }

    async fn revoke(&self, caller: &Caller, req: pb::RevokeCommitteeAccessRequest) -> Result<pb::CommitteeGrant, ApiError> {
        authorize(caller, Action::GrantCommitteeAccess, Resource::AnyTender, self.cache.metrics(), self.cache.clock())?;
        let grant_id = req.grant_id.trim();
        // Grant ids are what GrantCommitteeAccess answered: 16 hexadecimal characters.
        if grant_id.len() != 16 || !grant_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::field("grant_id", "is not a grant id: 16 hexadecimal characters, as GrantCommitteeAccess answered"));
        }
        let not_found = || ApiError::NotFound(format!("no committee grant '{grant_id}'"));
        let grant = self.cache.store().grant(grant_id).await?.ok_or_else(not_found)?;
        let tender = self.cache.store().tender(&grant.tender_id, None).await?.ok_or_else(not_found)?;
        self.on(caller, Action::GrantCommitteeAccess, &tender).map_err(|e| match e {
            ApiError::NotFound(_) => not_found(),
            e => e,
        })?;
        self.cache.revoke_grant(&grant.grant_id, self.cache.clock().now()).await.map_err(|e| count_refusal(self.cache.metrics(), e))?;
        tracing::info!(principal = caller.label(), grant = %grant.grant_id, tender = %grant.tender_id, "committee access revoked");
        let grant = self.cache.store().grant(&grant.grant_id).await?.ok_or_else(not_found)?;
        Ok(grant_to_proto(&grant, String::new()))
    }
}

fn grant_to_proto(g: &CommitteeGrant, link_path: String) -> pb::CommitteeGrant {
    pb::CommitteeGrant {
        grant_id: g.grant_id.clone(),
        tender_id: g.tender_id.to_string(),
        member_ref: g.member_ref.clone(),
        expires_at: Some(timestamp(g.expires_at)),
        link_path,
        revoked: g.revoked_at.is_some(),
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
        let caller = caller(&r);
        Ok(Response::new(self.register(&caller, r.into_inner().try_into()?).await?))
    }

    async fn amend_tender(&self, r: Request<pb::AmendTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        let caller = caller(&r);
        Ok(Response::new(self.amend(&caller, r.into_inner().try_into()?).await?))
    }

    async fn get_tender(&self, r: Request<pb::GetTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        let caller = caller(&r);
        Ok(Response::new(self.get(&caller, r.into_inner().try_into()?).await?))
    }

    async fn list_tenders(&self, r: Request<pb::ListTendersRequest>) -> Result<Response<pb::ListTendersResponse>, Status> {
        Ok(Response::new(self.list(&caller(&r)).await?))
    }

    async fn register_bid(&self, r: Request<pb::RegisterBidRequest>) -> Result<Response<pb::Bid>, Status> {
        let cmd = BidOn::register(r.get_ref(), &self.rules)?;
        Ok(Response::new(self.bid(&caller(&r), cmd).await?))
    }

    async fn grant_committee_access(&self, r: Request<pb::GrantCommitteeAccessRequest>) -> Result<Response<pb::CommitteeGrant>, Status> {
        let caller = caller(&r);
        Ok(Response::new(self.grant(&caller, r.into_inner()).await?))
    }

    async fn revoke_committee_access(&self, r: Request<pb::RevokeCommitteeAccessRequest>) -> Result<Response<pb::CommitteeGrant>, Status> {
        let caller = caller(&r);
        Ok(Response::new(self.revoke(&caller, r.into_inner()).await?))
    }
}
