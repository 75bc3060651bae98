//! The supervision platform's view (`credit_tender.v1.SupervisionService`):
//! credit-risk classes, inspection draws anyone can recompute, and what
//! credit changed in tendering.
//!
//! - [`risk`]: the risk policy file and the pure `classify` (pure).
//! - [`draw`]: the draw's procedure, `sha256-rank/v1` (pure).
//! - [`outcomes`]: the figures, summed from the log's statements (pure).
//! - [`policies`]: the risk policies a server offers, by id and digest.
//! - [`inspectors`]: the inspector list a draw imports, and who inspects
//!   each firm drawn, by the same procedure (pure).
//! - [`ocds`]: one tender's credit facts as an OCDS release package (pure).
//!
//! Every classification and draw is a signed statement in the transparency
//! log, made and recorded as assessments are (`crate::service`).

pub mod draw;
pub mod inspectors;
pub mod ocds;
mod orphans;
pub mod outcomes;
pub mod policies;
pub mod risk;

use crate::access::{Action, Caller, Resource};
use crate::cache::CachedProfile;
use crate::domain::date::parse_date;
use crate::domain::text::shown;
use crate::domain::{CreditCode, CreditDomain, FieldError, RegionCode};
use crate::log::Log;
use crate::policy::Policy;
use crate::proto::v1 as pb;
use crate::service::{ApiError, Cache, PolicySet};
use crate::signing::SharedKeyring;
use chrono::NaiveDate;
use draw::Member;
use policies::RiskPolicySet;
use risk::RiskPolicy;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// DSSE payload type of a signed risk classification of one firm.
pub const CLASSIFICATION_PAYLOAD_TYPE: &str = "application/vnd.credit-tender.risk-classification.v1+json";
/// DSSE payload type of a draw's commit: its parameters and population
/// digest, logged before the seed exists ([`draw`], step 2).
pub const COMMIT_PAYLOAD_TYPE: &str = "application/vnd.credit-tender.inspection-commit.v1+json";
/// DSSE payload type of a draw's result: the seed, the firms chosen and
/// their inspectors, logged after its commit.
pub const DRAW_PAYLOAD_TYPE: &str = "application/vnd.credit-tender.inspection-draw.v1+json";

/// The risk policy a request without one uses.
pub const DEFAULT_RISK_POLICY: &str = "transport-risk-classes";

/// Log entries read from the store at once while outcomes are summed.
const ENTRIES_PER_READ: u64 = 1000;

/// Profiles read from the store at once while a draw's population is built.
const POPULATION_CHUNK: usize = 500;

/// How long a draw waits for the checkpoint that gives its seed, in
/// checkpoint intervals (a checkpoint is published every interval while the
/// tree grows; the commit just grew it).
const SEED_WAIT_INTERVALS: u32 = 10;

/// The `SupervisionService` handlers: classification, draws and outcomes,
/// each authorised, signed with the statement key and appended to the log.
/// Cheap to clone; clones share the draws in flight.
#[derive(Clone)]
pub struct SupervisionApi {
    rules: Arc<crate::rules::Rules>,
    cache: Arc<Cache>,
    policies: Arc<PolicySet>,
    risk: Arc<RiskPolicySet>,
    keys: SharedKeyring,
    log: Option<Arc<Log>>,
    /// How long a draw may wait for its seed.
    seed_wait: Duration,
    /// Commits of draws this replica is running: not orphans ([`orphans`]).
    in_flight: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>,
    /// Held while orphaned commits are looked for and completed, so that
    /// two requests never complete one twice.
    orphan_lock: Arc<tokio::sync::Mutex<()>>,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The fields every supervision request shares, parsed.
struct Params {
    domain: CreditDomain,
    region: RegionCode,
    date: NaiveDate,
    policy: Arc<RiskPolicy>,
    grade_policy: Arc<Policy>,
}

impl SupervisionApi {
    /// The service over the server's shared parts. With `log` `None`,
    /// classifications are signed but not logged and a draw is refused
    /// (FAILED_PRECONDITION: its seed is a checkpoint). A draw waits up to
    /// ten `checkpoint_interval`s for its seed.
    pub fn new(
        rules: Arc<crate::rules::Rules>,
        cache: Arc<Cache>,
        policies: Arc<PolicySet>,
        risk: Arc<RiskPolicySet>,
        keys: SharedKeyring,
        log: Option<Arc<Log>>,
        checkpoint_interval: Duration,
    ) -> Self {
        SupervisionApi {
            rules,
            cache,
            policies,
            risk,
            keys,
            log,
            seed_wait: checkpoint_interval * SEED_WAIT_INTERVALS,
            in_flight: Arc::default(),
            orphan_lock: Arc::default(),
        }
    }

    fn params(&self, domain: &str, region: &str, date: &str, policy_id: &str, errors: &mut Vec<FieldError>) -> Option<Params> {
        let domain = match CreditDomain::parse(domain) {
            Some(d) => Some(d),
            None if domain.trim().is_empty() => {
                errors.push(FieldError::new("domain", "is required"));
                None
            }
            None => {
                errors.push(FieldError::new(
                    "domain",
                    format!("unknown credit domain '{}', expected one of: {}", shown(domain), CreditDomain::expected()),
                ));
                None
            }
        };
        let region = RegionCode::parse(region)
            .map_err(|e| e.to_string())
            .and_then(|r| match crate::domain::regions::region_name(&r.to_string()) {
                Some(_) => Ok(r),
                None => Err(format!("'{r}' is not a region code of GB/T 2260 (the table this server ships)")),
            })
            .map_err(|e| errors.push(FieldError::new("region", e)))
            .ok();
        let date = strict_date(date).map_err(|e| errors.push(FieldError::new("date", e))).ok();
        let id = if policy_id.trim().is_empty() { DEFAULT_RISK_POLICY } else { policy_id.trim() };
        let policy = self.risk.current(id);
        if policy.is_none() {
            errors.push(FieldError::new("policy_id", format!("no risk policy '{}'; loaded: {}", shown(id), self.risk.ids().join(", "))));
        }
        let grade_policy = policy.as_ref().and_then(|p| self.policies.current(&p.grade_policy));
        if let (Some(p), None) = (&policy, &grade_policy) {
            errors.push(FieldError::new("policy_id", format!("its grade_policy '{}' is not loaded", p.grade_policy)));
        }
        Some(Params { domain: domain?, region: region?, date: date?, policy: policy?, grade_policy: grade_policy? })
    }

    /// Signs `message`, records it in the log, and gives its index (none
    /// without a log).
    async fn sign_and_log<T: serde::Serialize>(&self, payload_type: &str, message: &T) -> Result<(pb::Envelope, Option<u64>), ApiError> {
        self.cache.metrics().signed();
        let envelope = crate::service::statement::sign(&self.keys.get(), payload_type, message);
        let index = match &self.log {
            Some(log) => Some(log.append(crate::log::leaf(&envelope)).await?),
            None => None,
        };
        Ok((envelope, index))
    }

    /// Keeps the risk policy's text in the store with the tender policies,
    /// so every version a statement names can be read back.
    async fn keep_policy(&self, p: &RiskPolicy) -> Result<(), ApiError> {
        self.cache.store().put_policy(&p.id, &p.digest, &p.source).await?;
        Ok(())
    }

    async fn classify(&self, caller: &Caller, r: &pb::ClassifyFirmRequest) -> Result<pb::ClassifyFirmResponse, ApiError> {
        crate::service::authorize(caller, Action::ClassifyFirm, Resource::Service, self.cache.metrics(), self.cache.clock())?;
        let mut errors = Vec::new();
        let code = CreditCode::parse(&r.credit_code, &self.rules.allow_list)
            .map_err(|e| errors.push(FieldError::new("credit_code", format!("credit code {e}"))))
            .ok();
        let params = self.params(&r.domain, &r.region, &r.date, &r.policy_id, &mut errors);
        let (Some((code, _)), Some(p)) = (code, params) else { return Err(ApiError::Invalid(errors)) };
        let version = self.cache.data_version().await?;
        let cached: Arc<CachedProfile> = self.cache.profile(&code, version).await?;
        let data_version = cached.read_at.max(version);
        let c = risk::classify(&p.policy, &p.grade_policy, &cached.profile, p.domain, p.region, p.date);
        let classification = pb::Classification {
            statement_type: "credit-tender/risk-classification/v1".into(),
            credit_code: code.to_string(),
            entity_name: c.entity_name.clone(),
            domain: p.domain.to_string(),
            region: p.region.to_string(),
            date: p.date.to_string(),
            data_version,
            policy_id: p.policy.id.clone(),
            policy_digest: p.policy.digest.clone(),
            policy_title: p.policy.title.clone(),
            risk_class: c.class.to_string(),
            risk_class_zh: c.class.chinese_name().into(),
            inspection_ratio_percent: p.policy.ratio(c.class),
            grade: c.grade.to_string(),
            grade_source: c.grade_source.to_string(),
            grade_policy_id: p.grade_policy.id.clone(),
            grade_policy_digest: p.grade_policy.digest.clone(),
            evidence: c
                .indicators
                .iter()
                .map(|i| pb::ClassEvidence {
                    rule: i.rule.to_string(),
                    risk_class: i.class.to_string(),
                    decisive: i.class == c.class,
                    record_type: i.record_type.into(),
                    record_id: i.record_id.clone(),
                    recorded_version: i.recorded_version,
                    detail: i.detail.clone(),
                    message_zh: i.message_zh.clone(),
                })
                .collect(),
            issued_at: Some(timestamp(self.cache.clock().now())),
        };
        self.keep_policy(&p.policy).await?;
        let (envelope, log_index) = self.sign_and_log(CLASSIFICATION_PAYLOAD_TYPE, &classification).await?;
        Ok(pb::ClassifyFirmResponse { envelope: Some(envelope), classification: Some(classification), log_index })
    }

    /// The firms in scope on the date with their classes, read at one data version.
    async fn population(&self, p: &Params, version: u64) -> Result<Vec<Member>, ApiError> {
        let store = self.cache.store();
        let codes = store.evaluated_codes(version).await?;
        let mut out = Vec::new();
        for chunk in codes.chunks(POPULATION_CHUNK) {
            for profile in store.profiles(chunk, Some(version)).await? {
                if risk::in_scope(&p.policy, &profile, p.domain, p.region, p.date) {
                    let c = risk::classify(&p.policy, &p.grade_policy, &profile, p.domain, p.region, p.date);
                    out.push(Member { credit_code: profile.credit_code.to_string(), class: c.class });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn draw(&self, caller: &Caller, r: &pb::DrawInspectionRequest) -> Result<pb::DrawInspectionResponse, ApiError> {
        crate::service::authorize(caller, Action::DrawInspection, Resource::Service, self.cache.metrics(), self.cache.clock())?;
        let mut errors = Vec::new();
        let params = self.params(&r.domain, &r.region, &r.date, &r.policy_id, &mut errors);
        let list = self.inspector_list(r, params.as_ref(), &mut errors);
        let (Some(p), true) = (params, errors.is_empty()) else { return Err(ApiError::Invalid(errors)) };
        let Some(log) = self.log.clone() else {
            return Err(ApiError::Precondition(
                "an inspection draw takes its seed from the transparency log, and this server runs without one".into(),
            ));
        };
        // A commit with these parameters left without its draw (a crash, a
        // seed that came too late) is drawn first, and is the answer: a
        // fresh commit would hide it.
        if let Some(done) = self.complete_orphans(Some((&p, list.as_ref())), u64::MAX).await? {
            return Ok(done);
        }
        let version = self.cache.data_version().await?;
        let population = self.population(&p, version).await?;
        if let Some((list, per_firm)) = &list
            && let Some((code, free)) = inspectors::short_of(population.iter().map(|m| m.credit_code.as_str()), list, *per_firm)
        {
            return Err(ApiError::Invalid(vec![FieldError::new(
                inspectors::FIELD,
                format!("firm {code} of the population has {free} inspector(s) it is not conflicted with; {per_firm} per firm are drawn"),
            )]));
        }
        let commit = pb::InspectionCommit {
            statement_type: "credit-tender/inspection-commit/v1".into(),
            region: p.region.to_string(),
            domain: p.domain.to_string(),
            date: p.date.to_string(),
            data_version: version,
            policy_id: p.policy.id.clone(),
            policy_digest: p.policy.digest.clone(),
            population_digest: draw::population_digest(&population),
            population_size: population.len() as u32,
            ratios: ratios(&p.policy, &population, None),
            requested_by: caller.label().to_owned(),
            issued_at: Some(timestamp(self.cache.clock().now())),
            inspectors: list.as_ref().map(|(l, per_firm)| pb::InspectorList {
                digest: inspectors::list_digest(l),
                size: l.len() as u32,
                per_firm: *per_firm,
            }),
        };
        self.keep_policy(&p.policy).await?;
        let (commit_envelope, commit_index) = self.sign_and_log(COMMIT_PAYLOAD_TYPE, &commit).await?;
        let commit_index = commit_index.expect("the log is on");
        self.in_flight.lock().expect("not poisoned").insert(commit_index);
        let committed = Committed { index: commit_index, envelope: commit_envelope, commit };
        let drawn = self.finish(&log, &p.policy, committed, population, list).await;
        self.in_flight.lock().expect("not poisoned").remove(&commit_index);
        let drawn = drawn?;
        tracing::info!(
            principal = caller.label(),
            region = %p.region,
            domain = %p.domain,
            date = %p.date,
            population = drawn.population.len(),
            chosen = drawn.draw.as_ref().map_or(0, |d| d.chosen.len()),
            commit_index,
            "inspection drawn"
        );
        Ok(drawn)
    }

    /// The draw's second step for a logged commit: the seed from the first
    /// checkpoint after it, the choice, the signed and logged draw.
    async fn finish(
        &self,
        log: &Log,
        policy: &RiskPolicy,
        committed: Committed,
        population: Vec<Member>,
        list: Option<InspectorDraw>,
    ) -> Result<pb::DrawInspectionResponse, ApiError> {
        let Committed { index: commit_index, envelope: commit_envelope, commit } = committed;
        let commit_leaf = crate::log::leaf(&commit_envelope);
        let seed_checkpoint = log.first_checkpoint_after(commit_index, self.seed_wait).await?;
        let seed = hex::encode(&seed_checkpoint.root);
        let chosen = draw::choose(&population, &seed, |c| policy.ratio(c));
        let inclusion = log.inclusion(commit_index, seed_checkpoint.size).await?;
        let statement = pb::InspectionDraw {
            statement_type: "credit-tender/inspection-draw/v1".into(),
            commit_log_index: commit_index,
            commit_leaf_hash: hex::encode(crate::tlog::tree::leaf_hash(&commit_leaf).0),
            region: commit.region.clone(),
            domain: commit.domain.clone(),
            date: commit.date.clone(),
            policy_id: commit.policy_id.clone(),
            policy_digest: commit.policy_digest.clone(),
            population_digest: commit.population_digest.clone(),
            population_size: commit.population_size,
            ratios: ratios(policy, &population, Some(&chosen)),
            seed_tree_size: seed_checkpoint.size,
            seed: seed.clone(),
            procedure: draw::PROCEDURE.into(),
            chosen: chosen
                .iter()
                .map(|c| pb::ChosenFirm { credit_code: c.credit_code.clone(), risk_class: c.class.to_string(), rank: c.rank.clone() })
                .collect(),
            seed_inclusion_proof: inclusion.iter().map(|h| hex::encode(h.0)).collect(),
            issued_at: Some(timestamp(self.cache.clock().now())),
            inspectors: commit.inspectors.clone(),
            assignments: list.as_ref().map(|(l, per_firm)| assignments(&chosen, l, &seed, *per_firm)).unwrap_or_default(),
        };
        let (draw_envelope, draw_index) = self.sign_and_log(DRAW_PAYLOAD_TYPE, &statement).await?;
        Ok(pb::DrawInspectionResponse {
            commit_envelope: Some(commit_envelope),
            commit: Some(commit),
            commit_log_index: commit_index,
            seed_checkpoint: seed_checkpoint.note,
            draw_envelope: Some(draw_envelope),
            draw: Some(statement),
            draw_log_index: draw_index.expect("the log is on"),
            population: population
                .iter()
                .map(|m| pb::PopulationEntry { credit_code: m.credit_code.clone(), risk_class: m.class.to_string() })
                .collect(),
            inspectors: list.map(|(l, _)| inspector_entries(l)).unwrap_or_default(),
        })
    }

    /// The request's inspector list and the count per firm, when it has a
    /// list; its problems pushed as field violations.
    fn inspector_list(
        &self,
        r: &pb::DrawInspectionRequest,
        p: Option<&Params>,
        errors: &mut Vec<FieldError>,
    ) -> Option<(Vec<inspectors::Inspector>, u32)> {
        if r.inspectors_csv.is_empty() {
            if r.inspectors_per_firm != 0 {
                errors.push(FieldError::new("inspectors_per_firm", "is set, but inspectors_csv (the list to draw from) is empty"));
            }
            if !r.inspectors_encoding.is_empty() {
                errors.push(FieldError::new("inspectors_encoding", "is set, but inspectors_csv (the list to draw from) is empty"));
            }
            return None;
        }
        let encoding = match r.inspectors_encoding.trim().to_ascii_lowercase().as_str() {
            "" | "utf-8" | "utf8" => None,
            "gb18030" | "gbk" => Some(encoding_rs::GB18030),
            other => {
                errors.push(FieldError::new("inspectors_encoding", format!("'{}' is not \"\", utf-8 or gb18030", shown(other))));
                None
            }
        };
        if r.inspectors_per_firm > inspectors::MAX_PER_FIRM {
            errors.push(FieldError::new(
                "inspectors_per_firm",
                format!("{} is more than {}", r.inspectors_per_firm, inspectors::MAX_PER_FIRM),
            ));
        }
        let list = inspectors::parse_csv(&r.inspectors_csv, encoding, &self.rules.allow_list)
            .map_err(|problems| errors.extend(inspectors::field_errors(problems)))
            .ok()?;
        let per_firm = if r.inspectors_per_firm == 0 { p?.policy.inspectors_per_firm } else { r.inspectors_per_firm };
        if per_firm as usize > list.len() {
            errors
                .push(FieldError::new("inspectors_per_firm", format!("{per_firm} per firm, but the list has {} inspector(s)", list.len())));
        }
        Some((list, per_firm))
    }

    /// GetOutcomes for `caller` (the supervisor's page asks it too).
    pub async fn outcomes_for(&self, caller: &Caller, r: &pb::GetOutcomesRequest) -> Result<pb::Outcomes, ApiError> {
        let query = outcomes_query(r)?;
        crate::service::authorize(
            caller,
            Action::ReadOutcomes,
            Resource::RegionPrefix(&query.region_prefix),
            self.cache.metrics(),
            self.cache.clock(),
        )?;
        let Some(log) = &self.log else {
            return Err(ApiError::Precondition("outcomes are summed from the transparency log, and this server runs without one".into()));
        };
        // The newest checkpoint's tree: the same figures `credit-tender
        // outcomes` sums from a verified copy of it.
        let size = log.checkpoint(None).await?.size;
        let mut leaves = Vec::with_capacity(size as usize);
        let mut at = 0;
        while at < size {
            let end = size.min(at + ENTRIES_PER_READ);
            leaves.extend(log.entries(at, end).await?);
            at = end;
        }
        Ok(outcomes::tally(leaves.iter().enumerate().map(|(i, l)| (i as u64, l.as_slice())), &query, size))
    }
}

/// Who inspects each chosen firm, as the draw statement writes it.
pub fn assignments(chosen: &[draw::Chosen], list: &[inspectors::Inspector], seed: &str, per_firm: u32) -> Vec<pb::FirmInspectors> {
    let firms: Vec<String> = chosen.iter().map(|c| c.credit_code.clone()).collect();
    inspectors::assign(&firms, list, seed, per_firm)
        .into_iter()
        .map(|a| pb::FirmInspectors {
            credit_code: a.credit_code,
            inspectors: a
                .inspectors
                .into_iter()
                .map(|(i, rank)| pb::AssignedInspector { inspector_id: i.id, name: i.name, rank })
                .collect(),
        })
        .collect()
}

/// The list as the answer carries it, by id.
fn inspector_entries(mut list: Vec<inspectors::Inspector>) -> Vec<pb::Inspector> {
    list.sort();
    list.into_iter()
        .map(|i| pb::Inspector { inspector_id: i.id, name: i.name, conflicted_codes: i.conflicts.into_iter().collect() })
        .collect()
}

/// A logged inspection commit: its leaf index, envelope and statement.
struct Committed {
    index: u64,
    envelope: pb::Envelope,
    commit: pb::InspectionCommit,
}

/// An inspector list and how many inspectors each chosen firm gets.
type InspectorDraw = (Vec<inspectors::Inspector>, u32);

/// Per class: its ratio, its firms, and how many are (or are to be) drawn.
fn ratios(policy: &RiskPolicy, population: &[Member], drawn: Option<&[draw::Chosen]>) -> Vec<pb::ClassRatio> {
    draw::class_counts(population)
        .into_iter()
        .map(|(class, n)| pb::ClassRatio {
            risk_class: class.to_string(),
            ratio_percent: policy.ratio(class),
            population: n,
            drawn: drawn
                .map_or_else(|| draw::drawn_count(n, policy.ratio(class)), |d| d.iter().filter(|c| c.class == class).count() as u32),
        })
        .collect()
}

/// A date written `YYYY-MM-DD` exactly (not `2026-12-1`, not `+2026-12-01`).
fn strict_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let form = t.len() == 10 && t.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !t.is_empty() && !form {
        return Err(format!("'{}' is not a date written YYYY-MM-DD (four-digit year, two-digit month and day)", shown(t)));
    }
    parse_date(t)
}

/// A GetOutcomes request as a query; every bad field named.
pub fn outcomes_query(r: &pb::GetOutcomesRequest) -> Result<outcomes::Query, ApiError> {
    let mut errors = Vec::new();
    let prefix = r.region_prefix.trim();
    if prefix.len() > 6 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("region_prefix", format!("'{}' is not 0 to 6 digits of a GB/T 2260 code", shown(prefix))));
    }
    let domain = match r.domain.trim() {
        "" => None,
        d => CreditDomain::parse(d).or_else(|| {
            errors.push(FieldError::new(
                "domain",
                format!("unknown credit domain '{}', expected one of: {}", shown(d), CreditDomain::expected()),
            ));
            None
        }),
    };
    let from = strict_date(&r.from).map_err(|e| errors.push(FieldError::new("from", e))).ok();
    let to = strict_date(&r.to).map_err(|e| errors.push(FieldError::new("to", e))).ok();
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        errors.push(FieldError::new("to", format!("{t} is before from {f}")));
    }
    match (from, to) {
        (Some(from), Some(to)) if errors.is_empty() => Ok(outcomes::Query { region_prefix: prefix.to_owned(), domain, from, to }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

fn caller<T>(r: &Request<T>) -> Caller {
    r.extensions().get::<Caller>().cloned().unwrap_or(Caller::Anonymous)
}

#[tonic::async_trait]
impl pb::supervision_service_server::SupervisionService for SupervisionApi {
    async fn classify_firm(&self, r: Request<pb::ClassifyFirmRequest>) -> Result<Response<pb::ClassifyFirmResponse>, Status> {
        Ok(Response::new(self.classify(&caller(&r), r.get_ref()).await?))
    }

    async fn draw_inspection(&self, r: Request<pb::DrawInspectionRequest>) -> Result<Response<pb::DrawInspectionResponse>, Status> {
        Ok(Response::new(self.draw(&caller(&r), r.get_ref()).await?))
    }

    async fn get_outcomes(&self, r: Request<pb::GetOutcomesRequest>) -> Result<Response<pb::Outcomes>, Status> {
        Ok(Response::new(self.outcomes_for(&caller(&r), r.get_ref()).await?))
    }
}
