//! `credit_tender.v1.CreditDataService`: records in, profiles out.

use super::commands::{GetProfile, PutRecords};
use super::convert::record_to_proto;
use super::ApiError;
use crate::config::Rules;
use crate::domain::date::shanghai_date;
use crate::domain::profile::Profile;
use crate::domain::Record;
use crate::proto::v1 as pb;
use crate::store::{Store, WriteMode};
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct CreditDataApi {
    store: Store,
    rules: Arc<Rules>,
    cache: Arc<super::Cache>,
}

impl CreditDataApi {
    pub fn new(rules: Arc<Rules>, cache: Arc<super::Cache>) -> Self {
        CreditDataApi { store: cache.store().clone(), rules, cache }
    }

    async fn put(&self, cmd: PutRecords) -> Result<pb::PutRecordsResponse, ApiError> {
        let PutRecords { source, records } = cmd;
        let outcome = self.store.write(&source, &mut records.into_iter(), WriteMode::Commit).await?;
        if outcome.created {
            tracing::info!(data_version = outcome.data_version, stored = outcome.stored, %source, "records stored");
            // The next request on this replica must see the write.
            if let Err(e) = self.cache.catch_up().await {
                tracing::warn!(error = %e, "stored, but could not refresh the cache; the follower will retry");
                self.cache.notifications_lost();
            }
        }
        Ok(pb::PutRecordsResponse {
            data_version: outcome.data_version,
            stored: outcome.stored,
            unchanged: outcome.unchanged,
            changed_credit_codes: outcome.changed_codes.into_iter().map(String::from).collect(),
        })
    }

    async fn profile(&self, cmd: GetProfile) -> Result<pb::GetProfileResponse, ApiError> {
        let GetProfile { code, as_of, data_version } = cmd;
        let date = shanghai_date(as_of);
        let profile = self.store.profile(&code, data_version).await?;
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
            let (state, reason) = profile.state_at(&s.record, date);
            let id = s.record.id();
            let events = profile
                .events
                .iter()
                .filter(|e| matches!(&e.record, Record::Event(ev) if &ev.target_id == id))
                .filter_map(|e| match record_to_proto(&e.record).kind {
                    Some(pb::record::Kind::Event(event)) => {
                        Some(pb::StoredEvent { event: Some(event), recorded_version: e.recorded_version })
                    }
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
    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Result<Response<pb::PutRecordsResponse>, Status> {
        let cmd = PutRecords::parse(request.get_ref(), self.rules.input())?;
        Ok(Response::new(self.put(cmd).await?))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let cmd = GetProfile::parse(request.get_ref(), &self.rules)?;
        Ok(Response::new(self.profile(cmd).await?))
    }
}
