//! `credit_tender.v1.TenderService`: tenders and bids as the platform registers them.

use super::policies::PolicySet;
use super::ApiError;
use crate::config::Rules;
use crate::domain::tender::parse_tender_id;
use crate::domain::{Bidder, CreditCode, CreditDomain, EvaluationMethod, Fen, RegionCode, Tender, TenderTerms};
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

pub(crate) fn instant(field: &str, ts: Option<&pbjson_types::Timestamp>) -> Result<DateTime<Utc>, ApiError> {
    let ts = ts.ok_or_else(|| ApiError::field(field, "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(ApiError::field(field, "nanos must be within 0..999999999"));
    }
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).ok_or_else(|| ApiError::field(field, "is out of range"))
}

/// Parses a bidder; violations are named `{prefix}.credit_codes[i]`.
pub(crate) fn parse_bidder(prefix: &str, b: Option<&pb::Bidder>, rules: &Rules) -> Result<(Bidder, Vec<bool>), ApiError> {
    let b = b.ok_or_else(|| ApiError::field(prefix, "is required"))?;
    let mut codes = Vec::new();
    let mut allow_listed = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in b.credit_codes.iter().enumerate() {
        match CreditCode::parse(raw, &rules.allow_list) {
            Ok((c, check)) => {
                codes.push(c);
                allow_listed.push(check == crate::domain::CodeCheck::AllowListed);
            }
            Err(e) => errors.push((format!("{prefix}.credit_codes[{i}]"), format!("credit code {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let bidder = Bidder::new(codes).map_err(|r| ApiError::field(format!("{prefix}.credit_codes"), r))?;
    Ok((bidder, allow_listed))
}

/// Bidder from its stored key.
pub(crate) fn bidder_from_key(key: &str, rules: &Rules) -> Result<(Bidder, Vec<bool>), ApiError> {
    let codes: Vec<String> = key.split('+').map(str::to_owned).collect();
    parse_bidder("bidder", Some(&pb::Bidder { credit_codes: codes }), rules)
        .map_err(|_| ApiError::Internal(format!("stored bidder '{key}' no longer parses")))
}

pub(crate) fn bidder_to_proto(b: &Bidder) -> pb::Bidder {
    pb::Bidder { credit_codes: b.codes().iter().map(|c| c.to_string()).collect() }
}

fn parse_terms(t: Option<&pb::TenderTerms>) -> Result<TenderTerms, ApiError> {
    let t = t.ok_or_else(|| ApiError::field("terms", "is required"))?;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut err = |f: &str, r: String| errors.push((format!("terms.{f}"), r));
    let domain = match t.domain.trim() {
        "" => {
            err("domain", "is required".into());
            None
        }
        d => CreditDomain::parse(d).or_else(|| {
            err("domain", format!("unknown credit domain '{d}', expected one of: {}", CreditDomain::expected()));
            None
        }),
    };
    let region = RegionCode::parse(&t.region).map_err(|e| err("region", e.to_string())).ok();
    let deadline = instant("terms.bid_deadline", t.bid_deadline.as_ref()).map_err(|e| match e {
        ApiError::Invalid(v) => errors.extend(v),
        _ => {}
    });
    let method = match t.evaluation_method.trim() {
        "" => Some(EvaluationMethod::ComprehensiveScoring),
        m => EvaluationMethod::parse(m).or_else(|| {
            errors.push((
                "terms.evaluation_method".into(),
                format!("unknown method '{m}', expected one of: {}", EvaluationMethod::expected()),
            ));
            None
        }),
    };
    let terms = match (domain, region, deadline, method) {
        (Some(domain), Some(region), Ok(bid_deadline), Some(evaluation_method)) if errors.is_empty() => TenderTerms {
            title: t.title.trim().to_owned(),
            domain,
            region,
            bid_deadline,
            estimated_price: Fen(t.estimated_price_fen),
            nominal_deposit: Fen(t.nominal_deposit_fen),
            evaluation_method,
        },
        _ => return Err(ApiError::Invalid(errors)),
    };
    terms.check().map_err(|(f, r)| ApiError::field(format!("terms.{f}"), r))?;
    Ok(terms)
}

pub(crate) fn tender_to_proto(t: &Tender, bid_count: u32) -> pb::Tender {
    pb::Tender {
        tender_id: t.tender_id.clone(),
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
    let cap = terms.estimated_price.0 as i128 * policy.max_nominal_deposit_bp as i128;
    if (terms.nominal_deposit.0 as i128) * 10_000 > cap {
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

    async fn bid_count(&self, id: &str) -> Result<u32, ApiError> {
        Ok(self.store.bids(id).await?.len() as u32)
    }

    async fn register(&self, req: pb::RegisterTenderRequest) -> Result<pb::Tender, ApiError> {
        let tender_id = parse_tender_id(&req.tender_id).map_err(|r| ApiError::field("tender_id", r))?;
        let terms = parse_terms(req.terms.as_ref())?;
        let policy = self.policies.current(req.policy_id.trim()).ok_or_else(|| {
            ApiError::field(
                "policy_id",
                format!("no loaded policy '{}'; loaded: {}", req.policy_id, self.policies.ids().join(", ")),
            )
        })?;
        check_against_policy(&terms, &policy)?;
        let tender = Tender {
            tender_id,
            version: 1,
            terms,
            policy_id: policy.id.clone(),
            policy_digest: policy.digest.clone(),
            registered_at: Utc::now(),
        };
        let stored = self.store.insert_tender(&tender).await?;
        self.refresh().await;
        let count = self.bid_count(&stored.tender_id).await?;
        Ok(tender_to_proto(&stored, count))
    }

    async fn amend(&self, req: pb::AmendTenderRequest) -> Result<pb::Tender, ApiError> {
        let tender_id = parse_tender_id(&req.tender_id).map_err(|r| ApiError::field("tender_id", r))?;
        let terms = parse_terms(req.terms.as_ref())?;
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

    async fn get(&self, req: pb::GetTenderRequest) -> Result<pb::Tender, ApiError> {
        let id = parse_tender_id(&req.tender_id).map_err(|r| ApiError::field("tender_id", r))?;
        let t = self
            .store
            .tender(&id, Some(req.version))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no tender '{id}' version {}", req.version)))?;
        let count = self.bid_count(&id).await?;
        Ok(tender_to_proto(&t, count))
    }

    async fn bid(&self, req: pb::RegisterBidRequest) -> Result<pb::Bid, ApiError> {
        let id = parse_tender_id(&req.tender_id).map_err(|r| ApiError::field("tender_id", r))?;
        let (bidder, _) = parse_bidder("bidder", req.bidder.as_ref(), &self.rules)?;
        if self.store.tender(&id, None).await?.is_none() {
            return Err(ApiError::NotFound(format!("no tender '{id}'")));
        }
        let row: BidRow = self.store.register_bid(&id, &bidder.key()).await?;
        self.refresh().await;
        Ok(pb::Bid {
            tender_id: id,
            sequence: row.sequence,
            bidder: Some(bidder_to_proto(&bidder)),
            registered_at: Some(timestamp(row.registered_at)),
        })
    }
}

#[tonic::async_trait]
impl pb::tender_service_server::TenderService for TenderApi {
    async fn register_tender(&self, r: Request<pb::RegisterTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.register(r.into_inner()).await?))
    }

    async fn amend_tender(&self, r: Request<pb::AmendTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.amend(r.into_inner()).await?))
    }

    async fn get_tender(&self, r: Request<pb::GetTenderRequest>) -> Result<Response<pb::Tender>, Status> {
        Ok(Response::new(self.get(r.into_inner()).await?))
    }

    async fn list_tenders(&self, _: Request<pb::ListTendersRequest>) -> Result<Response<pb::ListTendersResponse>, Status> {
        let list = self.store.list_tenders().await.map_err(ApiError::from)?;
        let tenders = list.iter().map(|(t, n)| tender_to_proto(t, *n)).collect();
        Ok(Response::new(pb::ListTendersResponse { tenders }))
    }

    async fn register_bid(&self, r: Request<pb::RegisterBidRequest>) -> Result<Response<pb::Bid>, Status> {
        Ok(Response::new(self.bid(r.into_inner()).await?))
    }
}
