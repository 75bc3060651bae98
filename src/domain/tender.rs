//! Tenders, their terms and bidders.

use super::credit_code::CreditCode;
use super::grade::CreditDomain;
use super::input::FieldError;
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

impl EvaluationMethod {
    /// The method's name as the committee reads it.
    pub fn chinese_name(self) -> &'static str {
        match self {
            EvaluationMethod::ComprehensiveScoring => "综合评分法",
            EvaluationMethod::ReasonableLowPrice => "合理低价法",
            EvaluationMethod::LowestEvaluatedPrice => "经评审的最低投标价法",
        }
    }
}

vocabulary! {
    /// How a bidder lodges its bid deposit: in cash (or a bank guarantee), or
    /// by a credit guarantee (信用保函 or guarantee insurance) where the
    /// policy accepts one for its grade.
    DepositForm {
        /// Cash or a bank guarantee, as the tender documents ask.
        Cash => "cash",
        /// A credit guarantee (信用保函 or guarantee insurance) in place of the deposit.
        CreditGuarantee => "credit_guarantee",
    }
}

/// The terms of one tender version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenderTerms {
    /// The tender's title, 1 to 256 characters, shown to the committee.
    pub title: String,
    /// The credit domain whose grades apply to its bidders.
    pub domain: CreditDomain,
    /// Where the works are (GB/T 2260); picks the province's grades and the
    /// dynamic downgrades in force there.
    pub region: RegionCode,
    /// The instant at which a bidder's grade is read (DOMAIN.md: "at the bid deadline").
    pub bid_deadline: DateTime<Utc>,
    /// Estimated price (招标控制价 or estimate), positive.
    pub estimated_price: Fen,
    /// The bid deposit the documents ask before any credit reduction: at most
    /// 2% of `estimated_price` (招标投标法实施条例 Art. 26).
    pub nominal_deposit: Fen,
    /// How bids are evaluated; policies may give points only under some methods.
    pub evaluation_method: EvaluationMethod,
}

/// A registered tender version, bound to one policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tender {
    /// The platform's id for the tender, the same in every version.
    pub tender_id: TenderId,
    /// 1 for the first registration, one more for each amendment; older
    /// versions stay in the store.
    pub version: u32,
    /// The terms of this version.
    pub terms: TenderTerms,
    /// The id of the credit policy the tender applies.
    pub policy_id: String,
    /// The digest of that policy's exact text, so a later edit of the
    /// policy does not change what this version applies.
    pub policy_digest: String,
    /// When this version was registered.
    pub registered_at: DateTime<Utc>,
}

impl TenderTerms {
    /// Checks relations between fields; each field was parsed on its own before.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 256 {
            return Err(FieldError::new("title", "is required, at most 256 characters"));
        }
        if let Err(why) = super::text::clean(&self.title) {
            return Err(FieldError::new("title", why));
        }
        if self.estimated_price.0 <= 0 {
            return Err(FieldError::new("estimated_price_fen", "must be positive"));
        }
        if self.nominal_deposit.0 < 0 {
            return Err(FieldError::new("nominal_deposit_fen", "must not be negative"));
        }
        // 招标投标法实施条例 Art. 26: a bid deposit may not exceed 2% of the estimated price.
        if self.nominal_deposit.0 as i128 * 50 > self.estimated_price.0 as i128 {
            return Err(FieldError::new(
                "nominal_deposit_fen",
                format!("{} exceeds 2% of the estimated price {} (招标投标法实施条例 Art. 26)", self.nominal_deposit, self.estimated_price),
            ));
        }
        Ok(())
    }
}

/// A tender's id as the platform assigned it: 1 to 64 printable characters
/// without '/' (it appears in page paths).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenderId(String);

impl TenderId {
    /// Parses an id, trimming surrounding spaces.
    pub fn parse(s: &str) -> Result<TenderId, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("is required".into());
        }
        if t.chars().count() > 64 || !t.chars().all(super::text::is_tender_id_char) {
            return Err(format!("must be 1 to 64 characters of {}", super::text::TENDER_ID_ALPHABET));
        }
        Ok(TenderId(t.to_owned()))
    }

    /// The id as the platform gave it, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for TenderId {
    fn borrow(&self) -> &str {
        &self.0
    }
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

    /// The members' codes, lead first; one for a single firm.
    pub fn codes(&self) -> &[CreditCode] {
        &self.0
    }

    /// Whether this is a joint bid (联合体) of two or more firms.
    pub fn is_consortium(&self) -> bool {
        self.0.len() > 1
    }

    /// The bidder's one text form, for storage and cache keys: its codes
    /// joined by '+', lead first. [`Bidder::from_key`] reads it back.
    pub fn key(&self) -> String {
        self.0.iter().map(CreditCode::as_str).collect::<Vec<_>>().join("+")
    }

    /// Reads a [`Bidder::key`] back. Its codes were checked when the bid was
    /// registered, so an allow-listed code stays readable (see
    /// [`CreditCode`]'s `TryFrom<String>`).
    pub fn from_key(key: &str) -> Result<Bidder, String> {
        let codes = key
            .split('+')
            .map(|c| CreditCode::try_from(c.to_owned()).map_err(|e| format!("credit code {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Bidder::new(codes)
    }
}

/// A platform's grant of one tender's committee page to one member, until
/// `expires_at`. Its link works once; its session ends at expiry or revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeGrant {
    /// A random id (16 characters) by which the platform revokes the grant.
    pub grant_id: String,
    /// The tender whose committee page it opens.
    pub tender_id: TenderId,
    /// The platform's own reference for the member (never shown to others).
    pub member_ref: String,
    /// The principal that granted it.
    pub granted_by: String,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// When its link and its session stop working.
    pub expires_at: DateTime<Utc>,
    /// When its one-use link was redeemed for a session; `None` until then.
    pub used_at: Option<DateTime<Utc>>,
    /// When the platform revoked it; `None` while not revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl CommitteeGrant {
    /// Whether a session of this grant may act at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidder_key_round_trips_lead_first() {
        let a = CreditCode::parse_strict("91440300192317458F").unwrap();
        let b = CreditCode::parse_strict("914403001922038216").unwrap();
        let bidder = Bidder::new(vec![a, b]).unwrap();
        assert_eq!(bidder.key(), "91440300192317458F+914403001922038216");
        assert_eq!(Bidder::from_key(&bidder.key()).unwrap(), bidder);
        assert!(Bidder::from_key("91440300192317458F+91440300192317458F").unwrap_err().contains("twice"));
        assert!(Bidder::from_key("").is_err());
    }

    #[test]
    fn tender_ids_are_trimmed_and_refuse_slashes() {
        assert_eq!(TenderId::parse(" T-1 ").unwrap().as_str(), "T-1");
        assert_eq!(TenderId::parse("a/b").unwrap_err(), "must be 1 to 64 characters of A-Z a-z 0-9 - _ . :");
        assert!(TenderId::parse("D\u{415}MO-1").is_err(), "a Cyrillic look-alike");
        assert_eq!(TenderId::parse("  ").unwrap_err(), "is required");
    }
}
