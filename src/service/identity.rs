//! What a signed assessment depends on, named once.
//!
//! A statement is computed from [`StatementInputs`] and nothing else: the
//! evaluation and the statement builder read their inputs from it, and the
//! statement cache keys what they made by [`StatementInputs::identity`]. An
//! input the builder reads but the identity leaves out would let a stale
//! statement be served, signed and logged; the test below varies every field
//! in turn, and its exhaustive destructuring stops compiling when a field is
//! added without a variation.
//!
//! The committee's table checks its rows at a coarser [`Stamp`]: while the
//! tender entry, the data version and the active key are those it was checked
//! at, every input of every row's identity is unchanged (the policy is the
//! tender's, the profiles are those of the data version, the table asks with
//! no contract price), so every row stands. That claim is not a second rule:
//! [`Stamp::covers`] checks it against each row's [`StatementInputs`] as the
//! row is made, destructuring them as [`StatementInputs::identity`] does, and
//! a table is kept only when the stamp covers every row. The tests vary each
//! input in turn against both.

use crate::cache::CachedTender;
use crate::domain::profile::Profile;
use crate::domain::{Bidder, Fen, Tender};
use crate::policy::Policy;
use std::sync::Arc;

/// Everything one signed assessment is computed from.
#[derive(Clone, Copy)]
pub(crate) struct StatementInputs<'a> {
    /// The tender as registered; its `version` changes with every amendment,
    /// so `(tender_id, version)` names all of its terms.
    pub tender: &'a Tender,
    /// The tender's policy version, named by the digest of its file.
    pub policy: &'a Policy,
    /// The bidder's credit codes, lead member first.
    pub bidder: &'a Bidder,
    /// Each member's profile, in the bidder's order.
    pub profiles: &'a [&'a Profile],
    /// The id of the key that signs (after a rotation, statements are signed anew).
    pub key_id: &'a str,
    /// The contract price, for the performance bond; `None` when not asked.
    pub contract_price: Option<Fen>,
}

impl StatementInputs<'_> {
    /// The statement cache's key: equal for two sets of inputs exactly when
    /// the statements computed from them are equal apart from `issuedAt` and
    /// the data version they were read at. Fields are separated by U+001F,
    /// which no id, code or digest may hold.
    pub(super) fn identity(&self) -> String {
        use std::fmt::Write;
        const SEP: char = '\u{1f}';
        let StatementInputs { tender, policy, bidder, profiles, key_id, contract_price } = self;
        let mut key = String::with_capacity(192 + 24 * bidder.codes().len());
        let _ = write!(key, "{}{SEP}{}{SEP}{}{SEP}", tender.tender_id, tender.version, policy.digest);
        for (i, code) in bidder.codes().iter().enumerate() {
            if i > 0 {
                key.push('+');
            }
            key.push_str(code.as_str());
        }
        key.push(SEP);
        key.push_str(key_id);
        for p in profiles.iter() {
            let _ = write!(key, "{SEP}{}", p.content_version());
        }
        if let Some(price) = contract_price {
            let _ = write!(key, "{SEP}c{}", price.0);
        }
        key
    }
}

/// What a committee table's rows were checked at: while a request finds the
/// same, every row's [`StatementInputs`] are unchanged (see the module doc).
#[derive(Clone)]
pub(super) struct Stamp {
    /// The tender entry of the cache: a new entry for every tender or bid change.
    pub tender: Arc<CachedTender>,
    /// The data version every row's profiles were read at or after.
    pub data_version: u64,
    /// The active signing key.
    pub key_id: String,
}

impl Stamp {
    /// Whether `other` was taken at the same inputs.
    pub(super) fn same(&self, other: &Stamp) -> bool {
        Arc::ptr_eq(&self.tender, &other.tender) && self.data_version == other.data_version && self.key_id == other.key_id
    }

    /// Whether a row made from `inputs` is one this stamp vouches for: each
    /// input of the row's identity is one the stamp names (the tender
    /// version and its policy, a bid of the tender, profiles read at or
    /// after the stamp's data version, the stamp's key, no contract price).
    pub(crate) fn covers(&self, inputs: &StatementInputs<'_>) -> bool {
        let StatementInputs { tender, policy, bidder, profiles, key_id, contract_price } = inputs;
        let entry = &self.tender.tender;
        let members = bidder.codes();
        tender.tender_id == entry.tender_id
            && tender.version == entry.version
            && policy.digest == entry.policy_digest
            && self.tender.bids.iter().any(|bid| bid.bidder == **bidder)
            && profiles.len() == members.len()
            && profiles.iter().zip(members).all(|(p, code)| p.credit_code == *code && p.data_version >= self.data_version)
            && *key_id == self.key_id
            && contract_price.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CreditCode;
    use crate::policy::fixtures;
    use serde_json::json;

    fn code(s: &str) -> CreditCode {
        CreditCode::parse_strict(s).unwrap()
    }

    /// Each input of a statement, varied in turn, changes its identity.
    /// Removing any one from `identity` makes this test fail; adding a field
    /// to `StatementInputs` stops the destructuring below from compiling
    /// until a variation of it is added here.
    #[test]
    fn every_input_of_a_statement_is_in_its_identity() {
        let tender = fixtures::tender("140100");
        let mut policy = fixtures::policy();
        policy.digest = "a".repeat(64);
        let lead = code(fixtures::CODE);
        let bidder = Bidder::new(vec![lead.clone()]).unwrap();
        let grade = |g: &str| {
            json!({"type": "evaluation", "id": "g", "entity_name": "x", "domain": "highway_construction",
                "issuer": "national", "year": 2025, "grade": g, "valid_from": "2026-01-01", "valid_to": "2027-12-31"})
        };
        let profile = fixtures::profile(&[grade("A")]);
        let profiles = [&profile];
        let base =
            StatementInputs { tender: &tender, policy: &policy, bidder: &bidder, profiles: &profiles, key_id: "k1", contract_price: None };
        let id = base.identity();
        assert_eq!(id, base.identity(), "the identity is a function of the inputs");

        let StatementInputs { tender: _, policy: _, bidder: _, profiles: _, key_id: _, contract_price: _ } = base;
        let mut variations: Vec<(&str, String)> = Vec::new();

        let mut other_id = tender.clone();
        other_id.tender_id = crate::domain::TenderId::parse("T2").unwrap();
        variations.push(("tender id", StatementInputs { tender: &other_id, ..base }.identity()));
        let mut amended = tender.clone();
        amended.version += 1;
        variations.push(("tender version", StatementInputs { tender: &amended, ..base }.identity()));

        let mut other_policy = policy.clone();
        other_policy.digest = "b".repeat(64);
        variations.push(("policy digest", StatementInputs { policy: &other_policy, ..base }.identity()));

        let member = code("914403001922038216");
        let consortium = Bidder::new(vec![lead.clone(), member.clone()]).unwrap();
        let member_profile = fixtures::profile_of(&member, &[grade("A")]);
        let two = [&profile, &member_profile];
        let with_member = StatementInputs { bidder: &consortium, profiles: &two, ..base };
        variations.push(("consortium member", with_member.identity()));
        let swapped = Bidder::new(vec![member.clone(), lead.clone()]).unwrap();
        let two_swapped = [&member_profile, &profile];
        variations.push(("lead member", StatementInputs { bidder: &swapped, profiles: &two_swapped, ..base }.identity()));
        let other_firm = Bidder::new(vec![member.clone()]).unwrap();
        let one_other = [&member_profile];
        let other = StatementInputs { bidder: &other_firm, profiles: &one_other, ..base }.identity();
        variations.push(("bidder", other));

        let newer = fixtures::history(&[vec![grade("A")], vec![grade("B")]]);
        assert_ne!(newer.content_version(), profile.content_version(), "the fixture's second version is newer");
        let newer_profiles = [&newer];
        variations.push(("a member's records", StatementInputs { profiles: &newer_profiles, ..base }.identity()));

        variations.push(("signing key", StatementInputs { key_id: "k2", ..base }.identity()));
        variations.push(("contract price given", StatementInputs { contract_price: Some(Fen(100)), ..base }.identity()));
        let priced = StatementInputs { contract_price: Some(Fen(100)), ..base }.identity();
        variations.push(("contract price", StatementInputs { contract_price: Some(Fen(101)), ..base }.identity()));

        for (what, varied) in &variations {
            assert_ne!(&id, varied, "varying the {what} left the identity unchanged");
        }
        assert_ne!(priced, variations.last().unwrap().1);
        let all: std::collections::HashSet<&String> = variations.iter().map(|(_, v)| v).collect();
        assert_eq!(all.len(), variations.len(), "two different variations gave one identity: {variations:?}");
    }

    /// A committee table's stamp covers a row only while every input of the
    /// row's identity is one the stamp names: each input varied in turn is
    /// refused. Removing any check from `Stamp::covers` makes this fail.
    #[test]
    fn a_tables_stamp_covers_a_row_only_at_every_input_of_its_identity() {
        let mut tender = fixtures::tender("140100");
        let mut policy = fixtures::policy();
        policy.digest = "a".repeat(64);
        tender.policy_digest = policy.digest.clone();
        let lead = code(fixtures::CODE);
        let bidder = Bidder::new(vec![lead.clone()]).unwrap();
        let grade = json!({"type": "evaluation", "id": "g", "entity_name": "x", "domain": "highway_construction",
            "issuer": "national", "year": 2025, "grade": "A", "valid_from": "2026-01-01", "valid_to": "2027-12-31"});
        let profile = fixtures::profile(std::slice::from_ref(&grade));
        let profiles = [&profile];
        let bid = |n: u32, bidder: &Bidder| crate::store::BidRow {
            sequence: n,
            bidder: bidder.clone(),
            registered_at: chrono::DateTime::UNIX_EPOCH,
        };
        let entry = Arc::new(CachedTender::new(tender.clone(), vec![bid(1, &bidder)], 0));
        let stamp = Stamp { tender: entry, data_version: profile.data_version, key_id: "k1".into() };
        let base =
            StatementInputs { tender: &tender, policy: &policy, bidder: &bidder, profiles: &profiles, key_id: "k1", contract_price: None };
        assert!(stamp.covers(&base), "the stamp covers the row it was taken for");

        let StatementInputs { tender: _, policy: _, bidder: _, profiles: _, key_id: _, contract_price: _ } = base;
        let mut other_id = tender.clone();
        other_id.tender_id = crate::domain::TenderId::parse("T2").unwrap();
        let mut amended = tender.clone();
        amended.version += 1;
        let mut other_policy = policy.clone();
        other_policy.digest = "b".repeat(64);
        let member = code("914403001922038216");
        let not_a_bid = Bidder::new(vec![member.clone()]).unwrap();
        let member_profile = fixtures::profile_of(&member, std::slice::from_ref(&grade));
        let member_profiles = [&member_profile];
        let mut older = profile.clone();
        older.data_version -= 1;
        let older_profiles = [&older];
        let misread = [&member_profile];
        let unread: [&Profile; 0] = [];
        let variations = [
            ("tender id", StatementInputs { tender: &other_id, ..base }),
            ("tender version", StatementInputs { tender: &amended, ..base }),
            ("policy digest", StatementInputs { policy: &other_policy, ..base }),
            ("bidder", StatementInputs { bidder: &not_a_bid, profiles: &member_profiles, ..base }),
            ("a member's records, read before the stamp", StatementInputs { profiles: &older_profiles, ..base }),
            ("a member's profile, of another firm", StatementInputs { profiles: &misread, ..base }),
            ("members' profiles, none read", StatementInputs { profiles: &unread, ..base }),
            ("signing key", StatementInputs { key_id: "k2", ..base }),
            ("contract price", StatementInputs { contract_price: Some(Fen(100)), ..base }),
        ];
        for (what, varied) in &variations {
            assert!(!stamp.covers(varied), "varying the {what} left the row covered by the table's stamp");
        }
    }
}
