//! Credit-risk classes (分级分类监管): the risk policy file and the pure
//! `classify`, which reads a firm's records on a date and names every record
//! that raised its class. No I/O, no clock.

use crate::domain::date::shanghai;
use crate::domain::profile::{Profile, RecordState};
use crate::domain::records::{EvaluationKind, EvaluationStatus, EventKind, ListKind, Record};
use crate::domain::vocab::vocabulary;
use crate::domain::{CreditDomain, EvaluationMethod, Fen, Grade, Issuer, RegionCode, Tender, TenderId, TenderTerms};
use crate::policy::{EvidenceOutcome, GradeSource, MemberInput, Policy, evaluate};
use chrono::{Months, NaiveDate, TimeZone};
use serde::Deserialize;
use std::collections::BTreeMap;

vocabulary! {
    /// A credit-risk class, lowest risk first.
    RiskClass {
        /// 低风险: class A of 国市监信发〔2022〕6号.
        Low => "low",
        /// 一般风险 (B); also the class when no rule gives one.
        General => "general",
        /// 较高风险 (C).
        FairlyHigh => "fairly_high",
        /// 高风险 (D).
        High => "high",
    }
}

impl RiskClass {
    /// The class as supervisors name it (国市监信发〔2022〕6号's four classes).
    pub fn chinese_name(self) -> &'static str {
        match self {
            RiskClass::Low => "低风险",
            RiskClass::General => "一般风险",
            RiskClass::FairlyHigh => "较高风险",
            RiskClass::High => "高风险",
        }
    }
}

/// The most inspectors a firm may be given (`inspectors_per_firm`).
pub const MAX_PER_FIRM: u32 = 10;

/// A risk policy: which indicators raise a firm to which class, and the
/// share of each class drawn for inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskPolicy {
    /// The policy's id, 1-64 characters of `a-z`, `0-9`, `-`, `_`; requests name it.
    pub id: String,
    /// A title for people, shown with the policy.
    pub title: String,
    /// Hex SHA-256 of the file's bytes.
    pub digest: String,
    /// The file's text as read, kept so that a statement's policy can be shown.
    pub source: String,
    /// The tender policy whose grade choice gives the grade.
    pub grade_policy: String,
    /// Percent of each class drawn, by class.
    pub ratio_percent: BTreeMap<RiskClass, u32>,
    /// `rules.grade`: the class each grade gives; every grade has one.
    pub grade: BTreeMap<Grade, RiskClass>,
    /// `rules.new_entrant`: the class when no evaluation applies and the
    /// grade is the new-entrant default.
    pub new_entrant: RiskClass,
    /// `rules.carried_over`: the class when the grade is an evaluation used
    /// past its validity until a new result is published.
    pub carried_over: RiskClass,
    /// `rules.lists`: the class a list entry in force gives, per list; a
    /// list not named raises nothing.
    pub lists: BTreeMap<ListKind, RiskClass>,
    /// `rules.penalty_class`: the class each penalty in publication gives,
    /// while there are fewer than `many_penalties`.
    pub penalty_class: RiskClass,
    /// `rules.many_penalties`: from this many penalties in publication (at
    /// least 2), each gives `many_penalties_class` instead.
    pub many_penalties: u32,
    /// `rules.many_penalties_class`: see `many_penalties`.
    pub many_penalties_class: RiskClass,
    /// `rules.breached_commitment_months`: a commitment breached within
    /// this many months before the date counts (at most 120).
    pub breached_commitment_months: u32,
    /// `rules.breached_commitment_class`: the class such a breach gives.
    pub breached_commitment_class: RiskClass,
    /// `rules.repair_months`: a credit repair effective within this many
    /// months before the date counts (at most 120).
    pub repair_months: u32,
    /// `rules.repair_class`: the class such a repair gives.
    pub repair_class: RiskClass,
    /// `scope.graded_within_months`: a firm is in a draw's population when
    /// the province graded it by a result valid within this many months
    /// before the date ([`in_scope`]); at most 120.
    pub graded_within_months: u32,
    /// Inspectors drawn for each firm drawn, when the request names no count.
    pub inspectors_per_firm: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: String,
    title: String,
    grade_policy: String,
    ratio_percent: BTreeMap<String, u32>,
    inspectors_per_firm: u32,
    rules: Rules,
    scope: Scope,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    grade: BTreeMap<String, String>,
    new_entrant: String,
    carried_over: String,
    lists: BTreeMap<String, String>,
    penalty_class: String,
    many_penalties: u32,
    many_penalties_class: String,
    breached_commitment_months: u32,
    breached_commitment_class: String,
    repair_months: u32,
    repair_class: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    graded_within_months: u32,
}

fn class(key: &str, s: &str) -> Result<RiskClass, String> {
    RiskClass::parse(s).ok_or_else(|| format!("{key}: unknown class '{s}', expected one of: {}", RiskClass::expected()))
}

impl RiskPolicy {
    /// Parses and validates a risk policy file; errors name the key and the reason.
    pub fn from_toml(text: &str) -> Result<RiskPolicy, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let id = f.id.trim().to_owned();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err("id: must be 1-64 characters of a-z, 0-9, '-' and '_'".into());
        }
        let mut ratio_percent = BTreeMap::new();
        for (k, v) in &f.ratio_percent {
            let c = class(&format!("ratio_percent.{k}"), k)?;
            if *v > 100 {
                return Err(format!("ratio_percent.{k}: {v}% is above 100"));
            }
            ratio_percent.insert(c, *v);
        }
        if let Some(missing) = RiskClass::ALL.iter().find(|c| !ratio_percent.contains_key(c)) {
            return Err(format!("ratio_percent: no ratio for class {missing}; give every class ({})", RiskClass::expected()));
        }
        let r = &f.rules;
        let mut grade = BTreeMap::new();
        for (g, c) in &r.grade {
            let gr = Grade::parse(g).ok_or_else(|| format!("rules.grade.{g}: unknown grade, expected one of: {}", Grade::expected()))?;
            grade.insert(gr, class(&format!("rules.grade.{g}"), c)?);
        }
        if let Some(missing) = Grade::ALL.iter().find(|g| !grade.contains_key(g)) {
            return Err(format!("rules.grade: no class for grade {missing}; give every grade (AA, A, B, C, D)"));
        }
        let mut lists = BTreeMap::new();
        for (l, c) in &r.lists {
            let list =
                ListKind::parse(l).ok_or_else(|| format!("rules.lists.{l}: unknown list, expected one of: {}", ListKind::expected()))?;
            lists.insert(list, class(&format!("rules.lists.{l}"), c)?);
        }
        if r.many_penalties < 2 {
            return Err("rules.many_penalties: at least 2 (one penalty is rules.penalty_class)".into());
        }
        for (k, v) in [
            ("rules.breached_commitment_months", r.breached_commitment_months),
            ("rules.repair_months", r.repair_months),
            ("scope.graded_within_months", f.scope.graded_within_months),
        ] {
            if v > 120 {
                return Err(format!("{k}: {v} months is more than ten years"));
            }
        }
        if !(1..=MAX_PER_FIRM).contains(&f.inspectors_per_firm) {
            return Err(format!("inspectors_per_firm: {} is not 1 to {}", f.inspectors_per_firm, MAX_PER_FIRM));
        }
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
        Ok(RiskPolicy {
            id,
            title: f.title,
            digest,
            source: text.to_owned(),
            grade_policy: f.grade_policy.trim().to_owned(),
            ratio_percent,
            grade,
            new_entrant: class("rules.new_entrant", &r.new_entrant)?,
            carried_over: class("rules.carried_over", &r.carried_over)?,
            lists,
            penalty_class: class("rules.penalty_class", &r.penalty_class)?,
            many_penalties: r.many_penalties,
            many_penalties_class: class("rules.many_penalties_class", &r.many_penalties_class)?,
            breached_commitment_months: r.breached_commitment_months,
            breached_commitment_class: class("rules.breached_commitment_class", &r.breached_commitment_class)?,
            repair_months: r.repair_months,
            repair_class: class("rules.repair_class", &r.repair_class)?,
            graded_within_months: f.scope.graded_within_months,
            inspectors_per_firm: f.inspectors_per_firm,
        })
    }

    /// The percent of class `c` drawn for inspection (0 to 100).
    pub fn ratio(&self, c: RiskClass) -> u32 {
        self.ratio_percent.get(&c).copied().unwrap_or(0)
    }
}

vocabulary! {
    /// The rule of a risk policy that read an indicator.
    Rule {
        /// `rules.grade`: the grade the tender policy's grade choice gives.
        Grade => "grade",
        /// `rules.new_entrant` or `rules.carried_over`: where the grade came from.
        GradeSource => "grade_source",
        /// `rules.lists`: a list entry in force.
        List => "list",
        /// `rules.penalty_class` / `many_penalties_class`: a penalty in publication.
        PenaltiesInPublication => "penalties_in_publication",
        /// `rules.breached_commitment_*`: a recent breach of a commitment.
        BreachedCommitment => "breached_commitment",
        /// `rules.repair_*`: a recent credit repair.
        Repair => "repair",
    }
}

/// One indicator and the class its rule gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// The rule that read it.
    pub rule: Rule,
    /// The class the rule gives for it.
    pub class: RiskClass,
    /// evaluation | list_entry | penalty | commitment | event; empty when no record.
    pub record_type: &'static str,
    /// The record read; empty when no record (a new entrant's default grade).
    pub record_id: String,
    /// The data version of the record's version read; 0 when no record.
    pub recorded_version: u64,
    /// What was read, in English, e.g. "grade B (provincial)".
    pub detail: String,
    /// The same for the supervisor, in Chinese.
    pub message_zh: String,
}

/// A firm's class and everything that was read to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The highest class any indicator gives; `general` when none.
    pub class: RiskClass,
    /// The grade the tender policy's grade choice gives on the date.
    pub grade: Grade,
    /// Which step of the grade choice gave it (DOMAIN.md, "Who grades whom").
    pub grade_source: GradeSource,
    /// The firm's name from the evidence read.
    pub entity_name: String,
    /// Every indicator, in the order the rules read them; the decisive ones
    /// are those whose class is `class`.
    pub indicators: Vec<Indicator>,
}

/// The tender a firm's grade is read for: one in `region` and `domain` whose
/// bid deadline falls on `d` (noon in Shanghai), so that the grade choice is
/// exactly a tender's.
fn grade_tender(grade_policy: &Policy, domain: CreditDomain, region: RegionCode, d: NaiveDate) -> Tender {
    let noon = shanghai().from_local_datetime(&d.and_hms_opt(12, 0, 0).expect("noon exists")).single().expect("a fixed offset");
    let at = noon.with_timezone(&chrono::Utc);
    Tender {
        tender_id: TenderId::parse("risk-classification").expect("a valid id"),
        version: 1,
        terms: TenderTerms {
            title: "risk classification".into(),
            domain,
            region,
            bid_deadline: at,
            estimated_price: Fen(1),
            nominal_deposit: Fen(0),
            evaluation_method: EvaluationMethod::ComprehensiveScoring,
        },
        policy_id: grade_policy.id.clone(),
        policy_digest: grade_policy.digest.clone(),
        registered_at: at,
    }
}

fn months_before(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_sub_months(Months::new(months)).unwrap_or(NaiveDate::MIN)
}

/// The class of the firm whose records are `profile`, on date `d`, for
/// tenders in `region` and `domain`: the highest class any rule of `policy`
/// gives (the rules only raise).
// Long because: one arm per rule the risk policy can hold (grade source, grade, lists, commitments, penalties, repairs), in the policy file's order.
pub fn classify(
    policy: &RiskPolicy,
    grade_policy: &Policy,
    profile: &Profile,
    domain: CreditDomain,
    region: RegionCode,
    d: NaiveDate,
) -> Classified {
    let tender = grade_tender(grade_policy, domain, region, d);
    let member = MemberInput { code: &profile.credit_code, profile };
    let assessed = evaluate(&tender, grade_policy, &[member], None);
    let m = assessed.members.into_iter().next().expect("one member in, one out");
    let mut out = Vec::new();

    // The grade, and the evaluation that gave it.
    let chosen = m.evidence.iter().find(|e| e.outcome == EvidenceOutcome::Chosen);
    let record = chosen.and_then(|e| e.record.as_ref());
    let (record_id, recorded_version) = record.map_or((String::new(), 0), |(s, e)| (e.id.to_string(), s.recorded_version));
    let issuer_zh = |i: Issuer| crate::domain::region_name(&i.to_string()).map_or_else(|| i.to_string(), str::to_owned);
    match m.source {
        GradeSource::NewEntrant => out.push(Indicator {
            rule: Rule::GradeSource,
            class: policy.new_entrant,
            record_type: "",
            record_id: String::new(),
            recorded_version: 0,
            detail: format!("grade {} by default (new_entrant)", m.grade),
            message_zh: format!("无适用的信用评价结果，按新进入企业默认为{}级", m.grade),
        }),
        source => {
            let class = policy.grade.get(&m.grade).copied().unwrap_or(RiskClass::High);
            let from = record.map(|(_, e)| format!("{}{}年度", issuer_zh(e.issuer), e.year)).unwrap_or_default();
            out.push(Indicator {
                rule: Rule::Grade,
                class,
                record_type: "evaluation",
                record_id: record_id.clone(),
                recorded_version,
                detail: format!("grade {} ({source})", m.grade),
                message_zh: format!("{from}信用评价{}级（{}）", m.grade, source_zh(source)),
            });
            if source == GradeSource::CarriedOver {
                out.push(Indicator {
                    rule: Rule::GradeSource,
                    class: policy.carried_over,
                    record_type: "evaluation",
                    record_id,
                    recorded_version,
                    detail: format!("grade {} carried over past its validity", m.grade),
                    message_zh: format!("{}级评价已过有效期，沿用至新结果发布", m.grade),
                });
            }
        }
    }

    let mut penalties = Vec::new();
    for s in &profile.records {
        let (state, _) = profile.state_at(s, d);
        match &s.record {
            Record::ListEntry(l) if state.counts() => {
                if let Some(class) = policy.lists.get(&l.list) {
                    out.push(Indicator {
                        rule: Rule::List,
                        class: *class,
                        record_type: "list_entry",
                        record_id: l.id.to_string(),
                        recorded_version: s.recorded_version,
                        detail: format!("{} listed on {} ({})", l.list, l.listed_on, l.decision_number),
                        message_zh: format!("{}列入{}（{}）", l.listed_on, l.list.chinese_name(), l.decision_number),
                    });
                }
            }
            Record::Penalty(p) if state.counts() => penalties.push((s, p)),
            Record::Commitment(c) if matches!(state, RecordState::Breached | RecordState::UnderObjection) => {
                if let Some(b) = c.breached_on.filter(|b| *b > months_before(d, policy.breached_commitment_months)) {
                    out.push(Indicator {
                        rule: Rule::BreachedCommitment,
                        class: policy.breached_commitment_class,
                        record_type: "commitment",
                        record_id: c.id.to_string(),
                        recorded_version: s.recorded_version,
                        detail: format!("commitment '{}' breached on {b}", c.commitment_kind),
                        message_zh: format!("{b}违反信用承诺（{}）", c.commitment_kind),
                    });
                }
            }
            _ => {}
        }
    }
    let many = penalties.len() >= policy.many_penalties as usize;
    let n = penalties.len();
    for (s, p) in penalties {
        let class = if many { policy.many_penalties_class } else { policy.penalty_class };
        out.push(Indicator {
            rule: Rule::PenaltiesInPublication,
            class,
            record_type: "penalty",
            record_id: p.id.to_string(),
            recorded_version: s.recorded_version,
            detail: format!("penalty {} decided on {}, in publication ({n} in all)", p.decision_number, p.decided_on),
            message_zh: format!("{}行政处罚{}处于公示期（共{n}项）", p.decided_on, p.decision_number),
        });
    }
    for s in &profile.events {
        let Record::Event(e) = &s.record else { continue };
        if e.event == EventKind::Repair && e.effective_on <= d && e.effective_on > months_before(d, policy.repair_months) {
            out.push(Indicator {
                rule: Rule::Repair,
                class: policy.repair_class,
                record_type: "event",
                record_id: e.id.to_string(),
                recorded_version: s.recorded_version,
                detail: format!("repair of {} effective {}", e.target_id, e.effective_on),
                message_zh: format!("{}完成信用修复（{}）", e.effective_on, e.target_id),
            });
        }
    }
    let class = out.iter().map(|i| i.class).max().unwrap_or(RiskClass::General);
    Classified { class, grade: m.grade, grade_source: m.source, entity_name: m.entity_name, indicators: out }
}

fn source_zh(s: GradeSource) -> &'static str {
    match s {
        GradeSource::DynamicD => "动态降为D级",
        GradeSource::Provincial => "省级评价",
        GradeSource::National => "全国评价",
        GradeSource::CarriedOver => "沿用过期评价",
        GradeSource::NewEntrant => "新进入企业默认",
    }
}

/// Whether a firm is in a draw's population for `region` and `domain` on
/// `d`: the region's province graded it in the domain (annual, or a dynamic
/// D within the province), by a result not revoked whose validity reaches
/// into the `graded_within_months` before `d` and has begun by `d`; for a
/// city or county, only firms registered there (positions 3-8 of the code).
pub fn in_scope(policy: &RiskPolicy, profile: &Profile, domain: CreditDomain, region: RegionCode, d: NaiveDate) -> bool {
    if !region.is_province() {
        let registered = RegionCode::parse(profile.credit_code.region()).ok();
        if !registered.is_some_and(|r| region.contains(r)) {
            return false;
        }
    }
    let province = region.province();
    let since = months_before(d, policy.graded_within_months);
    profile.records.iter().any(|s| match &s.record {
        Record::Evaluation(e) => {
            let by_province = match e.evaluation_kind {
                EvaluationKind::Annual => e.issuer == Issuer::Province(province),
                EvaluationKind::DynamicD => e.region.is_some_and(|r| province.contains(r)),
            };
            by_province && e.domain == domain && e.status != EvaluationStatus::Revoked && e.valid_from <= d && e.valid_to >= since
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../policies/risk/transport-risk-classes.toml");

    #[test]
    fn the_shipped_risk_policy_loads_and_orders_its_classes() {
        let p = RiskPolicy::from_toml(SHIPPED).unwrap();
        assert_eq!(p.id, "transport-risk-classes");
        assert_eq!(p.grade_policy, "national-template");
        assert!(RiskClass::Low < RiskClass::General && RiskClass::FairlyHigh < RiskClass::High);
        assert_eq!(p.ratio(RiskClass::High), 60);
    }

    #[test]
    fn refusals_name_key_and_reason() {
        let err = |from: &str, to: &str| {
            assert!(SHIPPED.contains(from), "{from}");
            RiskPolicy::from_toml(&SHIPPED.replacen(from, to, 1)).unwrap_err()
        };
        assert!(err("high = 60", "high = 160").starts_with("ratio_percent.high: 160% is above 100"));
        assert!(err("high = 60", "extreme = 60").starts_with("ratio_percent.extreme: unknown class"));
        assert!(err("D = \"high\" }", "D = \"worst\" }").starts_with("rules.grade.D: unknown class 'worst'"));
        assert!(err("many_penalties = 3", "many_penalties = 1").starts_with("rules.many_penalties: at least 2"));
    }
}
