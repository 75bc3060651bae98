//! `credit_tender.v1.LogService`: checkpoints, proofs and entries of the
//! transparency log.

use super::authorize::{authorize, caller};
use super::error::ApiError;
use crate::access::{Action, Resource};
use crate::log::{Log, LogError};
use crate::metrics::Metrics;
use crate::proto::v1 as pb;
use crate::store::StoredCheckpoint;
use crate::tlog::tree::Hash;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Entries per GetEntries answer at most (about 5 MB of statements).
pub(super) const MAX_ENTRIES: u64 = 1000;

/// Entry bytes one GetEntries answer carries at most (past its first entry):
/// half the 4 MiB every gRPC client decodes by default. A statement's leaf is
/// about 5 KB, so 1,000 of them would not fit, and `audit` failed on any log
/// of 800 statements or more (found by the outside attack on issue 27). The
/// caller asks again from where the answer stopped, as it must anyway.
pub const MAX_ENTRIES_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct LogApi {
    log: Arc<Log>,
    metrics: Arc<Metrics>,
    /// The replica's clock, for access decisions (a committee grant's expiry).
    clock: crate::clock::Clock,
}

impl LogApi {
    pub fn new(log: Arc<Log>, metrics: Arc<Metrics>, clock: crate::clock::Clock) -> Self {
        LogApi { log, metrics, clock }
    }
}

fn checkpoint_to_proto(c: StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint { tree_size: c.size, root_hash: c.root.into(), note: c.note }
}

fn hashes(h: Vec<Hash>) -> Vec<prost::bytes::Bytes> {
    h.into_iter().map(|h| h.0.to_vec().into()).collect()
}

/// An out-of-range request as INVALID_ARGUMENT naming `field`.
fn named(field: &'static str) -> impl Fn(LogError) -> ApiError {
    move |e| match e {
        LogError::OutOfRange(why) => ApiError::field(field, why),
        other => other.into(),
    }
}

impl LogApi {
    async fn inclusion(&self, r: &pb::GetInclusionProofRequest) -> Result<pb::InclusionProof, ApiError> {
        let size = self.log.size_for(r.tree_size).await.map_err(named("tree_size"))?;
        let index = match &r.leaf {
            Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(i)) => *i,
            Some(pb::get_inclusion_proof_request::Leaf::LeafHash(h)) => {
                if h.len() != 32 {
                    return Err(ApiError::field("leaf_hash", format!("is {} bytes; a leaf hash is 32 (SHA-256)", h.len())));
                }
                self.log.index_of(h).await?.ok_or_else(|| ApiError::NotFound("no leaf of the log has that hash".into()))?
            }
            None => return Err(ApiError::field("leaf", "give leaf_index or leaf_hash")),
        };
        if index >= size {
            let newest = self.log.published_size().await?;
            return Err(if index >= newest && r.tree_size == 0 {
                // In the tree, perhaps, but not yet under a signed checkpoint.
                ApiError::field(
                    "leaf_index",
                    format!(
                        "{index} is not in the newest signed checkpoint's tree ({newest} leaves): a statement just issued is \
                         signed into the next checkpoint (at most one checkpoint interval away); ask again then"
                    ),
                )
            } else {
                ApiError::field("leaf_index", format!("{index} is not in the tree of size {size}"))
            });
        }
        let proof = self.log.inclusion(index, size).await.map_err(named("leaf_index"))?;
        let checkpoint = self.log.checkpoint(Some(size)).await.ok().map(checkpoint_to_proto);
        Ok(pb::InclusionProof { leaf_index: index, tree_size: size, hashes: hashes(proof), checkpoint })
    }
}

#[tonic::async_trait]
impl pb::log_service_server::LogService for LogApi {
    async fn get_checkpoint(&self, r: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::Checkpoint>, Status> {
        authorize(&caller(&r), Action::ReadLogProofs, Resource::Service, &self.metrics, &self.clock)?;
        // Size 0, or none given, is the newest: on an empty log, the empty tree's.
        let size = r.get_ref().tree_size.filter(|n| *n > 0);
        let c = self.log.checkpoint(size).await.map_err(|e| match e {
            LogError::OutOfRange(why) => ApiError::NotFound(why),
            other => other.into(),
        })?;
        Ok(Response::new(checkpoint_to_proto(c)))
    }

    async fn get_inclusion_proof(&self, r: Request<pb::GetInclusionProofRequest>) -> Result<Response<pb::InclusionProof>, Status> {
        authorize(&caller(&r), Action::ReadLogProofs, Resource::Service, &self.metrics, &self.clock)?;
        Ok(Response::new(self.inclusion(r.get_ref()).await?))
    }

    async fn get_consistency_proof(&self, r: Request<pb::GetConsistencyProofRequest>) -> Result<Response<pb::ConsistencyProof>, Status> {
        authorize(&caller(&r), Action::ReadLogProofs, Resource::Service, &self.metrics, &self.clock)?;
        let new = self.log.size_for(r.get_ref().new_size).await.map_err(named("new_size"))?;
        let old = r.get_ref().old_size;
        let proof = self.log.consistency(old, new).await.map_err(named("old_size"))?;
        Ok(Response::new(pb::ConsistencyProof { old_size: old, new_size: new, hashes: hashes(proof) }))
    }

    async fn get_entries(&self, r: Request<pb::GetEntriesRequest>) -> Result<Response<pb::GetEntriesResponse>, Status> {
        authorize(&caller(&r), Action::ReadLogEntries, Resource::Service, &self.metrics, &self.clock)?;
        let (start, end) = (r.get_ref().start, r.get_ref().end);
        if end <= start {
            return Err(ApiError::field("end", format!("{end} is not after start {start}")).into());
        }
        // Only entries a signed checkpoint holds: the newest leaves would
        // let a caller compute the next checkpoint's root, a draw's seed,
        // before it is published.
        let published = self.log.published_size().await.map_err(ApiError::from)?;
        if start >= published {
            return Err(ApiError::field(
                "start",
                format!(
                    "{start} is not in the newest signed checkpoint's tree ({published} leaves): entries are served up to the \
                     newest checkpoint; ask again after the next (at most one checkpoint interval away)"
                ),
            )
            .into());
        }
        let end = end.min(published).min(start.saturating_add(MAX_ENTRIES));
        let mut bytes = 0;
        let entries: Vec<_> = self
            .log
            .entries(start, end)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .take_while(|e| {
                let first = bytes == 0;
                bytes += e.len().max(1);
                first || bytes <= MAX_ENTRIES_BYTES
            })
            .map(Into::into)
            .collect();
        Ok(Response::new(pb::GetEntriesResponse { start, entries }))
    }
}
