//! Tenders, their terms and bidders.

use super::credit_code::CreditCode;
use super::grade::CreditDomain;
use super::issuer::RegionCode;
use super::money::Fen;
use super::vocab::vocabulary;
use chrono::{DateTime, Utc};

vocabulary! {
    /// How bids are evaluated (评标办法).
    EvaluationMethod {
        /// 综合评分法
        ComprehensiveScoring => "comprehensive_scoring",
        /// 合理低价法
        ReasonableLowPrice => "reasonable_low_price",
        /// 经评审的最低投标价法
        LowestEvaluatedPrice => "lowest_evaluated_price",
    }
}

/// The terms of one tender version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenderTerms {
    pub title: String,
    pub domain: CreditDomain,
    pub region: RegionCode,
    pub bid_deadline: DateTime<Utc>,
    pub estimated_price: Fen,
    pub nominal_deposit: Fen,
    pub evaluation_method: EvaluationMethod,
}

/// A registered tender version, bound to one policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tender {
    pub tender_id: String,
    pub version: u32,
    pub terms: TenderTerms,
    pub policy_id: String,
    pub policy_digest: String,
    pub registered_at: DateTime<Utc>,
}

/// Why tender terms were refused: (field, reason).
pub type TermsError = (&'static str, String);

impl TenderTerms {
    /// Checks relations between fields; each field was parsed on its own before.
    pub fn check(&self) -> Result<(), TermsError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 256 {
            return Err(("title", "is required, at most 256 characters".into()));
        }
        if self.estimated_price.0 <= 0 {
            return Err(("estimated_price_fen", "must be positive".into()));
        }
        if self.nominal_deposit.0 < 0 {
            return Err(("nominal_deposit_fen", "must not be negative".into()));
        }
        // 招标投标法实施条例 Art. 26: a bid deposit may not exceed 2% of the estimated price.
        if self.nominal_deposit.0 as i128 * 50 > self.estimated_price.0 as i128 {
            return Err((
                "nominal_deposit_fen",
                format!(
                    "{} exceeds 2% of the estimated price {} (招标投标法实施条例 Art. 26)",
                    self.nominal_deposit, self.estimated_price
                ),
            ));
        }
        Ok(())
    }
}

/// Parses a tender id: 1 to 64 printable characters.
pub fn parse_tender_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("is required".into());
    }
    if t.chars().count() > 64 || t.chars().any(|c| c.is_control() || c == '/') {
        return Err("must be at most 64 printable characters without '/'".into());
    }
    Ok(t.to_owned())
}

/// A bidder: one firm, or a consortium with its lead first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bidder(Vec<CreditCode>);

impl Bidder {
    /// At least one code, at most 10, no code twice.
    pub fn new(codes: Vec<CreditCode>) -> Result<Bidder, String> {
        if codes.is_empty() {
            return Err("needs at least one credit code".into());
        }
        if codes.len() > 10 {
            return Err("a consortium may have at most 10 members".into());
        }
        for (i, c) in codes.iter().enumerate() {
            if codes[..i].contains(c) {
                return Err(format!("credit code {c} appears twice"));
            }
        }
        Ok(Bidder(codes))
    }

    pub fn codes(&self) -> &[CreditCode] {
        &self.0
    }

    pub fn is_consortium(&self) -> bool {
        self.0.len() > 1
    }

    /// Stable text key, e.g. for storage: codes joined by '+', lead first.
    pub fn key(&self) -> String {
        self.0.iter().map(CreditCode::as_str).collect::<Vec<_>>().join("+")
    }
}
