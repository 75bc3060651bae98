//! Requests parsed into domain commands before any handler acts on them
//! ("parse, don't validate"): once a command exists its fields are valid, and
//! every problem found is a [`FieldError`] naming the request field.

use super::error::ApiError;
use crate::domain::input::InputRules;
use crate::domain::tender::DepositForm;
use crate::domain::text::shown;
use crate::domain::{Bidder, CreditCode, CreditDomain, EvaluationMethod, Fen, FieldError, Record, RegionCode, TenderId, TenderTerms};
use crate::proto::v1 as pb;
use crate::rules::Rules;
use chrono::{DateTime, Utc};

/// Most records one `PutRecords` call may carry; larger loads use `import`
/// or several batches.
pub const MAX_BATCH: usize = 10_000;

pub(crate) fn tender_id(raw: &str) -> Result<TenderId, ApiError> {
    TenderId::parse(raw).map_err(|r| ApiError::field("tender_id", r))
}

/// An instant from a protobuf timestamp; `field` names it in errors.
pub(crate) fn instant(field: &str, ts: Option<&pbjson_types::Timestamp>) -> Result<DateTime<Utc>, ApiError> {
    let ts = ts.ok_or_else(|| ApiError::field(field, "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(ApiError::field(field, "nanos must be within 0..999999999"));
    }
    let at = DateTime::from_timestamp(ts.seconds, ts.nanos as u32).ok_or_else(|| ApiError::field(field, "is out of range"))?;
    crate::domain::date::check_instant(at).map_err(|r| ApiError::field(field, r))
}

/// A bidder's credit codes; violations are named `{prefix}.credit_codes[i]`.
pub(crate) fn bidder(prefix: &str, b: Option<&pb::Bidder>, rules: &Rules) -> Result<Bidder, ApiError> {
    let b = b.ok_or_else(|| ApiError::field(prefix, "is required"))?;
    let mut codes = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in b.credit_codes.iter().enumerate() {
        match CreditCode::parse(raw, &rules.allow_list) {
            Ok((c, _)) => codes.push(c),
            Err(e) => errors.push(FieldError::new(format!("{prefix}.credit_codes[{i}]"), format!("credit code {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Bidder::new(codes).map_err(|r| ApiError::field(format!("{prefix}.credit_codes"), r))
}

/// Tender terms, every field checked and every problem reported at once.
pub(crate) fn terms(t: Option<&pb::TenderTerms>) -> Result<TenderTerms, ApiError> {
    let t = t.ok_or_else(|| ApiError::field("terms", "is required"))?;
    let mut errors: Vec<FieldError> = Vec::new();
    let mut field = |f: &str, r: String| errors.push(FieldError::new(format!("terms.{f}"), r));
    let domain = match t.domain.trim() {
        "" => {
            field("domain", "is required".into());
            None
        }
        d => CreditDomain::parse(d).or_else(|| {
            field("domain", format!("unknown credit domain '{}', expected one of: {}", shown(d), CreditDomain::expected()));
            None
        }),
    };
    let region = RegionCode::parse(&t.region).map_err(|e| field("region", e.to_string())).ok();
    let method = match t.evaluation_method.trim() {
        "" => Some(EvaluationMethod::ComprehensiveScoring),
        m => EvaluationMethod::parse(m).or_else(|| {
            field("evaluation_method", format!("unknown method '{}', expected one of: {}", shown(m), EvaluationMethod::expected()));
            None
        }),
    };
    let deadline = match instant("terms.bid_deadline", t.bid_deadline.as_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.extend(e.into_field_errors());
            None
        }
    };
    let (Some(domain), Some(region), Some(bid_deadline), Some(evaluation_method)) = (domain, region, deadline, method) else {
        return Err(ApiError::Invalid(errors));
    };
    let terms = TenderTerms {
        title: crate::domain::text::clean(&t.title).unwrap_or_else(|_| t.title.clone()),
        domain,
        region,
        bid_deadline,
        estimated_price: Fen(t.estimated_price_fen),
        nominal_deposit: Fen(t.nominal_deposit_fen),
        evaluation_method,
    };
    terms.check().map_err(|e| ApiError::Invalid(vec![e.within("terms")]))?;
    Ok(terms)
}

/// A policy id as a request names it: at most 64 printable characters
/// (whether it is loaded is checked when the tender is registered).
fn policy_id(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim();
    if id.chars().count() > 64 || id.chars().any(char::is_control) {
        return Err(ApiError::field("policy_id", "is not a policy id: at most 64 printable characters"));
    }
    Ok(id.to_owned())
}

/// `RegisterTender`: a new tender under a policy id.
pub(crate) struct RegisterTender {
    pub tender_id: TenderId,
    pub terms: TenderTerms,
    pub policy_id: String,
}

impl TryFrom<pb::RegisterTenderRequest> for RegisterTender {
    type Error = ApiError;
    fn try_from(req: pb::RegisterTenderRequest) -> Result<Self, ApiError> {
        Ok(RegisterTender {
            tender_id: tender_id(&req.tender_id)?,
            terms: terms(req.terms.as_ref())?,
            policy_id: policy_id(&req.policy_id)?,
        })
    }
}

/// `AmendTender`: new terms for a registered tender.
pub(crate) struct AmendTender {
    pub tender_id: TenderId,
    pub terms: TenderTerms,
}

impl TryFrom<pb::AmendTenderRequest> for AmendTender {
    type Error = ApiError;
    fn try_from(req: pb::AmendTenderRequest) -> Result<Self, ApiError> {
        Ok(AmendTender { tender_id: tender_id(&req.tender_id)?, terms: terms(req.terms.as_ref())? })
    }
}

/// `GetTender`: one version (0: the newest).
pub(crate) struct GetTender {
    pub tender_id: TenderId,
    pub version: u32,
}

impl TryFrom<pb::GetTenderRequest> for GetTender {
    type Error = ApiError;
    fn try_from(req: pb::GetTenderRequest) -> Result<Self, ApiError> {
        Ok(GetTender { tender_id: tender_id(&req.tender_id)?, version: req.version })
    }
}

/// A bidder on a tender: `RegisterBid` and `Assess`.
pub(crate) struct BidOn {
    pub tender_id: TenderId,
    pub bidder: Bidder,
}

impl BidOn {
    pub(super) fn register(req: &pb::RegisterBidRequest, rules: &Rules) -> Result<BidOn, ApiError> {
        Ok(BidOn { tender_id: tender_id(&req.tender_id)?, bidder: bidder("bidder", req.bidder.as_ref(), rules)? })
    }
}

/// A contract price, where given: positive fen.
fn contract_price(raw: Option<i64>) -> Result<Option<Fen>, ApiError> {
    match raw {
        Some(p) if p <= 0 => Err(ApiError::field("contract_price_fen", "must be positive when given")),
        other => Ok(other.map(Fen)),
    }
}

/// `Assess`: one bidder on a tender, with the contract price if known.
pub(crate) struct Assess {
    pub bid: BidOn,
    pub contract_price: Option<Fen>,
}

impl Assess {
    pub(super) fn parse(req: &pb::AssessRequest, rules: &Rules) -> Result<Assess, ApiError> {
        let bidder = bidder("bidder", req.bidder.as_ref(), rules)?;
        let bid = BidOn { tender_id: tender_id(&req.tender_id)?, bidder };
        Ok(Assess { bid, contract_price: contract_price(req.contract_price_fen)? })
    }
}

/// `CheckDeposit`: what a bidder offers against what it owes.
pub(crate) struct CheckDeposit {
    pub bid: BidOn,
    pub offered: Fen,
    pub form: DepositForm,
    pub contract_price: Option<Fen>,
}

impl CheckDeposit {
    pub(super) fn parse(req: &pb::CheckDepositRequest, rules: &Rules) -> Result<CheckDeposit, ApiError> {
        let bidder = bidder("bidder", req.bidder.as_ref(), rules)?;
        if req.offered_fen < 0 {
            return Err(ApiError::field("offered_fen", "must not be negative"));
        }
        let form = match req.form.trim() {
            "" => DepositForm::Cash,
            f => DepositForm::parse(f).ok_or_else(|| {
                ApiError::field("form", format!("unknown form '{}', expected one of: {}", shown(f), DepositForm::expected()))
            })?,
        };
        let tender_id = tender_id(&req.tender_id)?;
        let contract_price = contract_price(req.contract_price_fen)?;
        Ok(CheckDeposit { bid: BidOn { tender_id, bidder }, offered: Fen(req.offered_fen), form, contract_price })
    }
}

/// `PutRecords`: a batch, each record already validated or its problems,
/// by batch index.
pub(crate) struct PutRecords {
    pub source: String,
    pub records: Vec<(u64, Result<Record, Vec<FieldError>>)>,
}

impl PutRecords {
    pub(super) fn parse(req: &pb::PutRecordsRequest, rules: InputRules<'_>) -> Result<PutRecords, ApiError> {
        if req.records.is_empty() {
            return Err(ApiError::field("records", "is empty: send at least one record"));
        }
        if req.records.len() > MAX_BATCH {
            let reason = format!("has {} records; at most {MAX_BATCH} per call", req.records.len());
            return Err(ApiError::field("records", reason));
        }
        let source = match req.source.trim() {
            "" => "grpc".to_owned(),
            s if s.chars().count() > 128 || s.chars().any(char::is_control) => {
                return Err(ApiError::field("source", "must be at most 128 printable characters"));
            }
            s => format!("grpc:{s}"),
        };
        let records = req
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64, super::convert::record_from_proto(r, rules).map(|p| p.record)))
            .collect();
        Ok(PutRecords { source, records })
    }
}

/// `GetProfile`: one code at a data version, states as of an instant.
pub(crate) struct GetProfile {
    pub code: CreditCode,
    pub as_of: DateTime<Utc>,
    pub data_version: Option<u64>,
}

impl GetProfile {
    /// `now` (the replica's clock) is the instant when the request names none.
    pub(super) fn parse(req: &pb::GetProfileRequest, rules: &Rules, now: DateTime<Utc>) -> Result<GetProfile, ApiError> {
        let (code, _) = CreditCode::parse(&req.credit_code, &rules.allow_list)
            .map_err(|e| ApiError::field("credit_code", format!("credit code {e}")))?;
        let as_of = match req.as_of {
            None => now,
            Some(ts) => instant("as_of", Some(&ts))?,
        };
        Ok(GetProfile { code, as_of, data_version: req.data_version })
    }
}

/// Most bids one AssessTender answer carries (each statement is a few KB).
pub const MAX_TABLE_PAGE: usize = 200;

/// `AssessTender`: one page of a tender's table.
pub struct TablePage {
    pub tender_id: TenderId,
    /// 0: every bid (refused past [`MAX_TABLE_PAGE`]).
    pub page_size: usize,
    /// Bids with a sequence above this one.
    pub after: u32,
}

impl TablePage {
    pub fn parse(req: &pb::AssessTenderRequest) -> Result<TablePage, ApiError> {
        let tender_id = tender_id(&req.tender_id)?;
        let page_size = req.page_size as usize;
        if page_size > MAX_TABLE_PAGE {
            return Err(ApiError::field("page_size", format!("{page_size} is above {MAX_TABLE_PAGE} bids per page")));
        }
        let after = match req.page_token.trim() {
            "" => 0,
            t => t
                .strip_prefix("after:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| ApiError::field("page_token", "is not a token this server gave; pass next_page_token as it came"))?,
        };
        Ok(TablePage { tender_id, page_size, after })
    }

    /// The bids of this page and the token of the next, if any.
    pub fn page<'b>(&self, bids: &'b [crate::store::BidRow]) -> Result<(&'b [crate::store::BidRow], String), ApiError> {
        let start = bids.partition_point(|b| b.sequence <= self.after);
        let rest = &bids[start..];
        if self.page_size == 0 {
            if rest.len() > MAX_TABLE_PAGE {
                return Err(ApiError::field(
                    "page_size",
                    format!(
                        "is 0 (every bid), but the tender has {} bids, more than the {MAX_TABLE_PAGE} one answer may carry; \
                         ask page by page with page_size (at most {MAX_TABLE_PAGE}) and page_token",
                        rest.len()
                    ),
                ));
            }
            return Ok((rest, String::new()));
        }
        let page = &rest[..rest.len().min(self.page_size)];
        let next = match page.last() {
            Some(last) if rest.len() > page.len() => format!("after:{}", last.sequence),
            _ => String::new(),
        };
        Ok((page, next))
    }
}
