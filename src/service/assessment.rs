//! `credit_tender.v1.AssessmentService`: signed assessments as of the bid deadline.

use super::policies::PolicySet;
use super::statement::{sign, statement, ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE};
use super::tenders::{bidder_from_key, bidder_to_proto, parse_bidder, timestamp};
use super::ApiError;
use crate::config::Rules;
use crate::domain::tender::parse_tender_id;
use crate::domain::{Bidder, Tender};
use crate::policy::{evaluate, MemberInput, Policy};
use crate::proto::v1 as pb;
use crate::signing::SharedKeyring;
use crate::store::Store;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct AssessmentApi {
    store: Store,
    rules: Arc<Rules>,
    policies: Arc<PolicySet>,
    keys: SharedKeyring,
}

impl AssessmentApi {
    pub fn new(store: Store, rules: Arc<Rules>, policies: Arc<PolicySet>, keys: SharedKeyring) -> Self {
        AssessmentApi { store, rules, policies, keys }
    }

    async fn tender(&self, raw_id: &str) -> Result<(Tender, Arc<Policy>), ApiError> {
        let id = parse_tender_id(raw_id).map_err(|r| ApiError::field("tender_id", r))?;
        let tender = self.store.tender(&id, None).await?.ok_or_else(|| ApiError::NotFound(format!("no tender '{id}'")))?;
        let policy = self.policies.by_digest(&tender.policy_digest).await?;
        Ok((tender, policy))
    }

    /// Reads every member's profile at one data version, evaluates and signs.
    async fn assess(
        &self,
        tender: &Tender,
        policy: &Policy,
        bidder: &Bidder,
        allow_listed: &[bool],
    ) -> Result<pb::AssessResponse, ApiError> {
        let version = self.store.current_version().await?;
        let mut profiles = Vec::with_capacity(bidder.codes().len());
        for code in bidder.codes() {
            profiles.push(self.store.profile(code, Some(version)).await?);
        }
        let members: Vec<MemberInput<'_>> = bidder
            .codes()
            .iter()
            .zip(&profiles)
            .zip(allow_listed)
            .map(|((code, profile), allow)| MemberInput { code, profile, allow_listed: *allow })
            .collect();
        let assessment = evaluate(tender, policy, &members);
        let statement = statement(tender, policy, bidder, &assessment, version, chrono::Utc::now());
        let envelope = sign(&self.keys.get(), ASSESSMENT_PAYLOAD_TYPE, &statement);
        Ok(pb::AssessResponse { envelope: Some(envelope), statement: Some(statement) })
    }

    async fn assess_one(&self, req: pb::AssessRequest) -> Result<pb::AssessResponse, ApiError> {
        let (bidder, allow) = parse_bidder("bidder", req.bidder.as_ref(), &self.rules)?;
        let (tender, policy) = self.tender(&req.tender_id).await?;
        self.assess(&tender, &policy, &bidder, &allow).await
    }

    async fn assess_tender(&self, req: pb::AssessTenderRequest) -> Result<pb::AssessTenderResponse, ApiError> {
        let (tender, policy) = self.tender(&req.tender_id).await?;
        let mut bids = Vec::new();
        for row in self.store.bids(&tender.tender_id).await? {
            let (bidder, allow) = bidder_from_key(&row.bidder, &self.rules)?;
            let assessment = self.assess(&tender, &policy, &bidder, &allow).await?;
            bids.push(pb::AssessedBid {
                bid: Some(pb::Bid {
                    tender_id: tender.tender_id.clone(),
                    sequence: row.sequence,
                    bidder: Some(bidder_to_proto(&bidder)),
                    registered_at: Some(timestamp(row.registered_at)),
                }),
                assessment: Some(assessment),
            });
        }
        Ok(pb::AssessTenderResponse { bids })
    }

    async fn check_deposit(&self, req: pb::CheckDepositRequest) -> Result<pb::CheckDepositResponse, ApiError> {
        let (bidder, allow) = parse_bidder("bidder", req.bidder.as_ref(), &self.rules)?;
        if req.offered_fen < 0 {
            return Err(ApiError::field("offered_fen", "must not be negative"));
        }
        let form = match req.form.trim() {
            "" | "cash" => "cash",
            "credit_guarantee" => "credit_guarantee",
            other => {
                return Err(ApiError::field("form", format!("unknown form '{other}', expected one of: cash, credit_guarantee")));
            }
        };
        let (tender, policy) = self.tender(&req.tender_id).await?;
        let assessed = self.assess(&tender, &policy, &bidder, &allow).await?;
        let statement = assessed.statement.expect("assess always returns a statement");
        let owed = statement.deposit_owed_fen;
        let guarantee_refused = form == "credit_guarantee" && !statement.credit_guarantee_allowed;
        let counted = if guarantee_refused { 0 } else { req.offered_fen };
        let shortfall = (owed - counted).max(0);
        let satisfied = shortfall == 0;
        let yuan = |f: i64| crate::domain::Fen(f).to_string();
        let message = if guarantee_refused {
            format!(
                "a credit guarantee is not accepted for grade {} under policy {}: lodge {} in cash or another accepted form",
                statement.applied_grade,
                policy.id,
                yuan(owed)
            )
        } else if satisfied {
            format!("the offer of {} covers the deposit owed, {}", yuan(req.offered_fen), yuan(owed))
        } else {
            format!("the offer of {} falls short of the deposit owed, {}, by {}", yuan(req.offered_fen), yuan(owed), yuan(shortfall))
        };
        let check = pb::DepositCheck {
            statement_type: "credit-tender/deposit-check/v1".into(),
            assessment: Some(statement),
            offered_fen: req.offered_fen,
            form: form.into(),
            satisfied,
            shortfall_fen: shortfall,
            message,
        };
        let envelope = sign(&self.keys.get(), DEPOSIT_CHECK_PAYLOAD_TYPE, &check);
        Ok(pb::CheckDepositResponse { envelope: Some(envelope), check: Some(check) })
    }
}

#[tonic::async_trait]
impl pb::assessment_service_server::AssessmentService for AssessmentApi {
    async fn assess(&self, r: Request<pb::AssessRequest>) -> Result<Response<pb::AssessResponse>, Status> {
        Ok(Response::new(self.assess_one(r.into_inner()).await?))
    }

    async fn assess_tender(&self, r: Request<pb::AssessTenderRequest>) -> Result<Response<pb::AssessTenderResponse>, Status> {
        Ok(Response::new(self.assess_tender(r.into_inner()).await?))
    }

    async fn check_deposit(&self, r: Request<pb::CheckDepositRequest>) -> Result<Response<pb::CheckDepositResponse>, Status> {
        Ok(Response::new(self.check_deposit(r.into_inner()).await?))
    }
}
