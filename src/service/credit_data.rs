//! `credit_tender.v1.CreditDataService`: records in, profiles out.

use super::answer::Cache;
use super::authorize::{authorize, caller};
use super::commands::{GetProfile, PutRecords};
use super::convert::record_to_proto;
use super::error::{ApiError, count_refusal};
use crate::access::{Action, Caller, Resource};
use crate::domain::Record;
use crate::domain::date::shanghai_date;
use crate::domain::profile::Profile;
use crate::proto::v1 as pb;
use crate::rules::Rules;
use crate::store::{StoreError, WriteMode};
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct CreditDataApi {
    rules: Arc<Rules>,
    cache: Arc<Cache>,
}

impl CreditDataApi {
    pub fn new(rules: Arc<Rules>, cache: Arc<Cache>) -> Self {
        CreditDataApi { rules, cache }
    }

    async fn put(&self, caller: &Caller, cmd: PutRecords) -> Result<pb::PutRecordsResponse, ApiError> {
        let PutRecords { source, records } = cmd;
        // What the records name is checked here; whose stored records they
        // version or target, by the store as it writes (domain::ownership).
        let named: Vec<&Record> = records.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        authorize(caller, Action::PutRecords, Resource::Records(&named), self.cache.metrics(), self.cache.clock())?;
        // What is kept with the data version: the authenticated principal, never caller-written text.
        let writer = caller.writer(&source).ok_or_else(|| ApiError::Denied(format!("'{}' may not write records", caller.label())))?;
        let source = writer.source().to_owned();
        let outcome = match self.cache.write_records(&writer, &mut records.into_iter(), WriteMode::Commit).await {
            Err(StoreError::NotOwner(problems)) => {
                // Refused by the ownership rule in the store's write path: an access decision too.
                self.cache.metrics().denied("permission_denied");
                tracing::info!(
                    principal = caller.label(),
                    action = "PutRecords",
                    problems = problems.len(),
                    outcome = "permission_denied",
                    "access refused"
                );
                return Err(ApiError::Store(StoreError::NotOwner(problems)));
            }
            other => other.map_err(|e| count_refusal(self.cache.metrics(), e))?,
        };
        if outcome.created {
            tracing::info!(data_version = outcome.data_version, stored = outcome.stored, %source, "records stored");
        }
        Ok(pb::PutRecordsResponse {
            data_version: outcome.data_version,
            stored: outcome.stored,
            unchanged: outcome.unchanged,
            changed_credit_codes: outcome.changed_codes.into_iter().map(String::from).collect(),
        })
    }

    async fn profile(&self, caller: &Caller, cmd: GetProfile) -> Result<pb::GetProfileResponse, ApiError> {
        let GetProfile { code, as_of, data_version } = cmd;
        // Only a provider's read depends on what it wrote: ask the store for no one else.
        let written_by_caller = match caller {
            Caller::Principal(p) if p.role == crate::access::Role::Provider => self.cache.store().written_by(&code, &p.name).await?,
            _ => false,
        };
        let resource = Resource::Profile { code: &code, written_by_caller };
        authorize(caller, Action::GetProfile, resource, self.cache.metrics(), self.cache.clock())?;
        let date = shanghai_date(as_of);
        let profile = self.cache.store().profile(&code, data_version).await?;
        let mut warnings = Vec::new();
        if !code.passes_checksum() {
            warnings.push(format!(
                "credit code {code} fails the GB 32100-2015 checksum and is accepted only because it is on the operator's allow-list"
            ));
        }
        Ok(pb::GetProfileResponse {
            credit_code: code.to_string(),
            data_version: profile.data_version,
            as_of_date: date.to_string(),
            records: stored_records(&profile, date),
            warnings,
        })
    }
}

fn stored_records(profile: &Profile, date: chrono::NaiveDate) -> Vec<pb::StoredRecord> {
    profile
        .records
        .iter()
        .map(|s| {
            let (state, reason) = profile.state_at(s, date);
            let id = s.record.id();
            let events = profile
                .events
                .iter()
                .filter(|e| matches!(&e.record, Record::Event(ev) if &ev.target_id == id))
                .filter_map(|e| match record_to_proto(&e.record).kind {
                    Some(pb::record::Kind::Event(event)) => Some(pb::StoredEvent {
                        event: Some(event),
                        recorded_version: e.recorded_version,
                        concerns_version: profile.concerned_version(e).unwrap_or(0),
                    }),
                    _ => None,
                })
                .collect();
            let history = profile
                .history
                .iter()
                .filter(|h| h.stored.record.id() == id)
                .map(|h| pb::SupersededVersion {
                    record: Some(record_to_proto(&h.stored.record)),
                    recorded_version: h.stored.recorded_version,
                    superseded_at: h.superseded_at,
                    digest: h.stored.digest.clone(),
                })
                .collect();
            pb::StoredRecord {
                record: Some(record_to_proto(&s.record)),
                recorded_version: s.recorded_version,
                digest: s.digest.clone(),
                state: state.as_str().to_owned(),
                state_reason: reason,
                events,
                history,
            }
        })
        .collect()
}

#[tonic::async_trait]
impl pb::credit_data_service_server::CreditDataService for CreditDataApi {
    async fn put_records(&self, request: Request<pb::PutRecordsRequest>) -> Result<Response<pb::PutRecordsResponse>, Status> {
        let caller = caller(&request);
        let cmd = PutRecords::parse(request.get_ref(), self.rules.input())?;
        Ok(Response::new(self.put(&caller, cmd).await?))
    }

    async fn get_profile(&self, request: Request<pb::GetProfileRequest>) -> Result<Response<pb::GetProfileResponse>, Status> {
        let caller = caller(&request);
        let cmd = GetProfile::parse(request.get_ref(), &self.rules, self.cache.clock().now())?;
        Ok(Response::new(self.profile(&caller, cmd).await?))
    }
}
