//! Orphaned inspection commits: a commit logged without its draw, because
//! the server stopped between the two steps (a crash, kill -9) or the seed
//! checkpoint came later than a draw waits. The commit is public, so its
//! draw is still determined: the first checkpoint after it seeds it. The
//! server completes it, never re-commits over it:
//!
//! - at start, once every commit it finds has had the time a draw waits
//!   for its seed (a commit younger than that may be another replica's
//!   draw in progress);
//! - on the next DrawInspection with the same region, domain, date and risk
//!   policy, whose answer is then the completed draw.
//!
//! The draw is recomputed from the population at the commit's data
//! version, which must hash to the committed digest; if it does not (the
//! store lost that version) or the committed policy version is not loaded,
//! the commit stays an orphan, said in the server's log, and `credit-tender
//! audit` raises it.

use super::inspectors::list_digest;
use super::{COMMIT_PAYLOAD_TYPE, Committed, DRAW_PAYLOAD_TYPE, ENTRIES_PER_READ, InspectorDraw, Params, SupervisionApi};
use crate::domain::date::parse_date;
use crate::domain::{CreditDomain, RegionCode};
use crate::proto::v1 as pb;
use crate::service::ApiError;
use std::collections::BTreeSet;
use std::time::Duration;

/// A commit without a draw, as logged.
type Orphan = Committed;

impl SupervisionApi {
    /// Every commit in the log that no draw names, oldest first.
    async fn orphans(&self) -> Result<Vec<Orphan>, ApiError> {
        let Some(log) = &self.log else { return Ok(Vec::new()) };
        let size = self.cache.store().log_size().await?;
        let mut commits = Vec::new();
        let mut drawn = BTreeSet::new();
        let mut at = 0;
        while at < size {
            let end = size.min(at + ENTRIES_PER_READ);
            for (i, leaf) in log.entries(at, end).await?.iter().enumerate() {
                let Ok(envelope) = crate::log::envelope_of_leaf(leaf) else { continue };
                match envelope.payload_type.as_str() {
                    COMMIT_PAYLOAD_TYPE => {
                        if let Ok(commit) = serde_json::from_slice::<pb::InspectionCommit>(&envelope.payload) {
                            commits.push(Orphan { index: at + i as u64, envelope, commit });
                        }
                    }
                    DRAW_PAYLOAD_TYPE => {
                        if let Ok(d) = serde_json::from_slice::<pb::InspectionDraw>(&envelope.payload) {
                            drawn.insert(d.commit_log_index);
                        }
                    }
                    _ => {}
                }
            }
            at = end;
        }
        let in_flight = self.in_flight.lock().expect("not poisoned").clone();
        commits.retain(|c| !drawn.contains(&c.index) && !in_flight.contains(&c.index));
        Ok(commits)
    }

    /// Completes orphaned commits logged at indexes below `below`: those
    /// with `only`'s parameters (the first one's draw is the answer), or
    /// every one (`None`, at start, bounded by the log's size at start so
    /// that a commit this run makes is never taken for an earlier run's).
    /// A commit that bound an inspector list (only its digest is logged)
    /// is completed only with that list: by the next DrawInspection that
    /// brings a list of the same digest, never at start.
    pub(super) async fn complete_orphans(
        &self,
        only: Option<(&Params, Option<&InspectorDraw>)>,
        below: u64,
    ) -> Result<Option<pb::DrawInspectionResponse>, ApiError> {
        let _one_at_a_time = self.orphan_lock.lock().await;
        loop {
            let mut orphans = self.orphans().await?;
            orphans.retain(|o| o.index < below);
            let list = only.and_then(|(_, list)| list);
            if let Some((p, _)) = only {
                orphans.retain(|o| {
                    let c = &o.commit;
                    c.region == p.region.to_string()
                        && c.domain == p.domain.to_string()
                        && c.date == p.date.to_string()
                        && c.policy_id == p.policy.id
                });
            }
            // A commit's inspector list must be the one at hand, by digest.
            orphans.retain(|o| match (&o.commit.inspectors, list) {
                (None, _) => true,
                (Some(c), Some((l, per_firm))) => c.digest == list_digest(l) && c.per_firm == *per_firm,
                (Some(_), None) => false,
            });
            // A commit younger than a draw's wait may be another replica's
            // draw in progress: look again once it is that old.
            let now = self.cache.clock().now().timestamp();
            let wait = self.seed_wait.as_secs().max(1) as i64;
            let youngest = orphans.iter().map(|o| o.commit.issued_at.as_ref().map_or(0, |t| t.seconds)).max();
            if let Some(t) = youngest.filter(|t| now - t < wait) {
                tokio::time::sleep(Duration::from_secs((wait - (now - t)) as u64)).await;
                continue;
            }
            let mut first = None;
            for o in orphans {
                let index = o.index;
                match self.complete(o, list.cloned()).await {
                    Ok(done) => {
                        tracing::warn!(commit_index = index, draw_index = done.draw_log_index, "an orphaned inspection commit was drawn");
                        if only.is_some() {
                            return Ok(Some(done));
                        }
                        first.get_or_insert(done);
                    }
                    Err(e) => tracing::error!(commit_index = index, error = %e, "an orphaned inspection commit cannot be drawn here"),
                }
            }
            return Ok(first.filter(|_| only.is_some()));
        }
    }

    /// Draws one orphaned commit from its own population and policy.
    async fn complete(&self, o: Orphan, list: Option<InspectorDraw>) -> Result<pb::DrawInspectionResponse, ApiError> {
        let log = self.log.clone().expect("orphans come from the log");
        let c = &o.commit;
        let bad = |why: String| ApiError::Precondition(format!("the inspection commit at leaf {}: {why}", o.index));
        let policy = self
            .risk
            .current(&c.policy_id)
            .filter(|p| p.digest == c.policy_digest)
            .ok_or_else(|| bad(format!("its risk policy '{}' version {} is not loaded", c.policy_id, c.policy_digest)))?;
        let grade_policy = self
            .policies
            .current(&policy.grade_policy)
            .ok_or_else(|| bad(format!("grade policy '{}' is not loaded", policy.grade_policy)))?;
        let (Some(domain), Ok(region), Ok(date)) = (CreditDomain::parse(&c.domain), RegionCode::parse(&c.region), parse_date(&c.date))
        else {
            return Err(bad("its region, domain or date does not parse".into()));
        };
        let p = Params { domain, region, date, policy: policy.clone(), grade_policy };
        let population = self.population(&p, c.data_version).await?;
        let digest = super::draw::population_digest(&population);
        if digest != c.population_digest {
            return Err(bad(format!(
                "its population at data version {} now hashes to {digest}, not the committed {}",
                c.data_version, c.population_digest
            )));
        }
        self.finish(&log, &policy, o, population, list).await
    }

    /// At start: completes the orphans an earlier run left, once a draw in
    /// progress elsewhere would have ended. The server runs the returned
    /// task in its background set, so shutdown stops it with the others (an
    /// orphan left unfinished is found again at the next start). `None`
    /// without a log: there is nothing to complete.
    pub fn complete_orphans_at_start(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.log.as_ref()?;
        let api = self.clone();
        Some(async move {
            let left = match api.cache.store().log_size().await {
                Ok(size) => size,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for orphaned inspection commits");
                    return;
                }
            };
            tokio::time::sleep(api.seed_wait).await;
            if let Err(e) = api.complete_orphans(None, left).await {
                tracing::warn!(error = %e, "could not look for orphaned inspection commits");
            }
        })
    }
}
