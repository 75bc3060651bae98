//! What credit changed in tendering, summed from the signed statements in
//! the log: the same function serves `GetOutcomes` and `credit-tender
//! outcomes` (over the entries it fetched and checked), so the two can only
//! differ in what they read.
//!
//! Each (tender, bidder) counts once, by its newest assessment statement:
//! the highest tender version, then the latest in the log. A tender is in
//! the period when the as-of date (its bid deadline in Asia/Shanghai) of its
//! newest version's statements falls in [from, to], and in the region and
//! domain those statements name. Credit guarantees come from deposit checks:
//! a bid whose newest check was met by a credit guarantee counts one, for
//! the deposit owed it stood for.

use crate::domain::CreditDomain;
use crate::proto::v1 as pb;
use crate::service::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// Which tenders to sum over.
#[derive(Debug, Clone)]
pub struct Query {
    /// Digits a tender's region starts with ("" for all).
    pub region_prefix: String,
    /// Only tenders in this credit domain; `None` for all.
    pub domain: Option<CreditDomain>,
    /// First as-of date counted (inclusive): a statement's bid deadline as
    /// an Asia/Shanghai date.
    pub from: NaiveDate,
    /// Last as-of date counted (inclusive).
    pub to: NaiveDate,
}

/// A (tender, bidder) pair's newest statement: (tender version, log index).
type Newest<T> = BTreeMap<(String, String), ((u32, u64), T)>;

/// A bidder as its member codes, sorted: a consortium is one bidder in any
/// member order.
fn bidder_key(s: &pb::AssessmentStatement) -> String {
    let mut codes: Vec<&str> = s.members.iter().map(|m| m.credit_code.as_str()).collect();
    codes.sort_unstable();
    codes.join("+")
}

fn keep<T>(map: &mut Newest<T>, key: (String, String), at: (u32, u64), value: T) {
    match map.get(&key) {
        Some((seen, _)) if *seen >= at => {}
        _ => {
            map.insert(key, (at, value));
        }
    }
}

fn points_centi(p: f64) -> i64 {
    (p * 100.0).round() as i64
}

/// Adds one bid to `f`; `guarantee` is the deposit a credit guarantee stood for.
fn add(f: &mut pb::OutcomeFigures, s: &pb::AssessmentStatement, guarantee: Option<i64>, reasons: &mut [BTreeMap<String, u32>; 2]) {
    f.bids_assessed += 1;
    f.bidders_with_credit_benefit += u32::from(s.credit_benefit);
    let (q, e) = (points_centi(s.qualification_points), points_centi(s.evaluation_points));
    f.qualification_points_centi += q;
    f.evaluation_points_centi += e;
    f.bidders_with_qualification_points += u32::from(q > 0);
    f.bidders_with_evaluation_points += u32::from(e > 0);
    match s.deposit_basis.as_str() {
        "waived" => f.deposits_waived += 1,
        "reduced" => f.deposits_reduced += 1,
        _ => f.deposits_full += 1,
    }
    f.nominal_deposit_fen += s.nominal_deposit_fen;
    f.deposit_owed_fen += s.deposit_owed_fen;
    f.deposit_saved_fen += s.nominal_deposit_fen - s.deposit_owed_fen;
    if let Some(fen) = guarantee {
        f.credit_guarantees += 1;
        f.credit_guarantee_fen += fen;
    }
    f.excluded += u32::from(!s.eligible);
    f.not_qualified += u32::from(s.eligible && !s.qualified);
    let codes = |effects: &[&str]| {
        s.reasons.iter().filter(|r| effects.contains(&r.effect.as_str())).map(|r| r.code.clone()).collect::<BTreeSet<_>>()
    };
    for code in codes(&["exclusion", "qualification"]) {
        *reasons[0].entry(code).or_default() += 1;
    }
    let rewards = codes(&["reward"]);
    f.rewards += u32::from(!rewards.is_empty());
    for code in rewards {
        *reasons[1].entry(code).or_default() += 1;
    }
}

/// Figures being summed, with their reason tallies and tenders.
#[derive(Default)]
struct Sum {
    figures: pb::OutcomeFigures,
    reasons: [BTreeMap<String, u32>; 2],
    tenders: BTreeSet<String>,
}

impl Sum {
    fn add(&mut self, tender: &str, s: &pb::AssessmentStatement, guarantee: Option<i64>) {
        add(&mut self.figures, s, guarantee, &mut self.reasons);
        self.tenders.insert(tender.to_owned());
    }

    fn finish(self) -> (pb::OutcomeFigures, Vec<String>) {
        let list = |m: BTreeMap<String, u32>| m.into_iter().map(|(code, count)| pb::ReasonCount { code, count }).collect();
        let [exclusions, rewards] = self.reasons;
        let figures = pb::OutcomeFigures {
            tenders: self.tenders.len() as u32,
            exclusions_by_reason: list(exclusions),
            rewards_by_reason: list(rewards),
            ..self.figures
        };
        (figures, self.tenders.into_iter().collect())
    }
}

/// Sums the statements among `entries` (log index, leaf) for `query`.
/// Leaves that are not statements of these kinds are passed over.
pub fn tally<'a>(entries: impl IntoIterator<Item = (u64, &'a [u8])>, query: &Query, tree_size: u64) -> pb::Outcomes {
    let mut assessed: Newest<pb::AssessmentStatement> = BTreeMap::new();
    let mut checks: Newest<pb::DepositCheck> = BTreeMap::new();
    for (index, leaf) in entries {
        let Ok(env) = crate::log::envelope_of_leaf(leaf) else { continue };
        match env.payload_type.as_str() {
            ASSESSMENT_PAYLOAD_TYPE => {
                let Ok(s) = serde_json::from_slice::<pb::AssessmentStatement>(&env.payload) else { continue };
                let key = (s.tender_id.clone(), bidder_key(&s));
                keep(&mut assessed, key, (s.tender_version, index), s);
            }
            DEPOSIT_CHECK_PAYLOAD_TYPE => {
                let Ok(c) = serde_json::from_slice::<pb::DepositCheck>(&env.payload) else { continue };
                let Some(a) = &c.assessment else { continue };
                let key = (a.tender_id.clone(), bidder_key(a));
                let at = (a.tender_version, index);
                keep(&mut checks, key, at, c);
            }
            _ => {}
        }
    }
    // Each tender as its newest version's statements describe it.
    let mut tenders: BTreeMap<&str, (u32, &pb::AssessmentStatement)> = BTreeMap::new();
    for ((tender, _), ((version, _), s)) in &assessed {
        if tenders.get(tender.as_str()).is_none_or(|(v, _)| v < version) {
            tenders.insert(tender, (*version, s));
        }
    }
    let wanted = |s: &pb::AssessmentStatement| {
        let date = NaiveDate::parse_from_str(&s.as_of_date, "%Y-%m-%d").ok();
        s.region.starts_with(&query.region_prefix)
            && query.domain.is_none_or(|d| d.as_str() == s.domain)
            && date.is_some_and(|d| query.from <= d && d <= query.to)
    };
    let mut total = Sum::default();
    let mut months: BTreeMap<String, Sum> = BTreeMap::new();
    let mut regions: BTreeMap<String, Sum> = BTreeMap::new();
    for (key, (_, s)) in &assessed {
        let Some((_, newest)) = tenders.get(key.0.as_str()).filter(|(_, t)| wanted(t)) else { continue };
        let guarantee = checks
            .get(key)
            .map(|(_, c)| c)
            .filter(|c| c.form == "credit_guarantee" && c.satisfied)
            .and_then(|c| c.assessment.as_ref().map(|a| a.deposit_owed_fen));
        total.add(&key.0, s, guarantee);
        months.entry(newest.as_of_date.get(..7).unwrap_or_default().to_owned()).or_default().add(&key.0, s, guarantee);
        regions.entry(newest.region.clone()).or_default().add(&key.0, s, guarantee);
    }
    let groups = |m: BTreeMap<String, Sum>| {
        m.into_iter()
            .map(|(key, sum)| {
                let (figures, tender_ids) = sum.finish();
                pb::OutcomeGroup { key, figures: Some(figures), tender_ids }
            })
            .collect()
    };
    pb::Outcomes {
        region_prefix: query.region_prefix.clone(),
        domain: query.domain.map(|d| d.to_string()).unwrap_or_default(),
        from: query.from.to_string(),
        to: query.to.to_string(),
        tree_size,
        total: Some(total.finish().0),
        by_month: groups(months),
        by_region: groups(regions),
    }
}
