//! `credit_tender.v1.CreditDataService`: records in, profiles out.

use super::convert::{record_from_proto, record_to_proto};
use super::ApiError;
use crate::config::Rules;
use crate::domain::date::shanghai_date;
use crate::domain::profile::Profile;
use crate::domain::{CodeCheck, CreditCode, Record};
use crate::proto::v1 as pb;
use crate::store::{Store, WriteMode};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most records one `PutRecords` call may carry; larger loads use `import`
/// or several batches.
pub const MAX_BATCH: usize = 10_000;

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

    async fn put(&self, req: pb::PutRecordsRequest) -> Result<pb::PutRecordsResponse, ApiError> {
        if req.records.is_empty() {
            return Err(ApiError::field("records", "is empty: send at least one record"));
        }
        if req.records.len() > MAX_BATCH {
            return Err(ApiError::field(
                "records",
                format!("has {} records; at most {MAX_BATCH} per call", req.records.len()),
            ));
        }
        let source = match req.source.trim() {
            "" => "grpc".to_owned(),
            s if s.chars().count() > 128 || s.chars().any(char::is_control) => {
                return Err(ApiError::field("source", "must be at most 128 printable characters"));
            }
            s => format!("grpc:{s}"),
        };
        let rules = self.rules.input();
        let mut items = req
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64, record_from_proto(r, rules).map(|p| p.record)))
            .collect::<Vec<_>>()
            .into_iter();
        let outcome = self.store.write(&source, &mut items, WriteMode::Commit).await?;
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

    async fn profile(&self, req: pb::GetProfileRequest) -> Result<pb::GetProfileResponse, ApiError> {
        let (code, check) = CreditCode::parse(&req.credit_code, &self.rules.allow_list)
            .map_err(|e| ApiError::field("credit_code", format!("credit code {e}")))?;
        let as_of = match req.as_of {
            None => chrono::Utc::now(),
            Some(ts) => chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
                .ok_or_else(|| ApiError::field("as_of", "is outside the representable range of instants"))?,
        };
        let date = shanghai_date(as_of);
        let profile = self.store.profile(&code, req.data_version).await?;
        let mut warnings = Vec::new();
        if check == CodeCheck::AllowListed {
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
        Ok(Response::new(self.put(request.into_inner()).await?))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        Ok(Response::new(self.profile(request.into_inner()).await?))
    }
}
