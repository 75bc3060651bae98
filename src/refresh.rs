//! Statements ready before they are asked: when a bid is registered, or a
//! write changes a bidder of an open tender, this replica signs the bid's
//! statement in the background, so that the committee's table and the
//! platform's deposit check find it cached.
//!
//! One task, one tender at a time, each as the committee's table would be
//! computed (a page of bids, up to 8 statements at once, their leaves in one
//! log commit): it never holds more than one table request's worth of work,
//! and the cache's single-flight loads mean a request arriving meanwhile
//! shares the work rather than repeating it. Closed tenders (deadline passed) are never refreshed: their
//! answers are fixed as of the deadline and are computed when asked. The task
//! ends with the server.

use crate::cache::Changed;
use crate::domain::CreditCode;
use crate::service::{AssessmentApi, Cache};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Changes waiting to be refreshed at most; past it, changes are dropped
/// (their statements are made when asked, as without this task).
pub const QUEUE: usize = 256;

/// Refreshes what each change touches, until the channel closes.
pub async fn run(api: AssessmentApi, cache: Arc<Cache>, mut changes: mpsc::Receiver<Changed>) {
    while let Some(Changed { codes, tenders }) = changes.recv().await {
        for id in &tenders {
            note(api.refresh_tender(id, None).await, &cache);
        }
        if codes.is_empty() {
            continue;
        }
        let codes: HashSet<CreditCode> = codes.into_iter().collect();
        let Ok(list) = cache.tender_list().await else { continue };
        let now = cache.clock().now();
        for (tender, bids) in list.iter() {
            if *bids > 0 && tender.terms.bid_deadline > now {
                note(api.refresh_tender(&tender.tender_id, Some(&codes)).await, &cache);
            }
        }
    }
}

fn note(result: Result<u32, crate::service::ApiError>, cache: &Cache) {
    match result {
        Ok(n) => cache.metrics().refreshed(u64::from(n)),
        Err(e) => tracing::debug!(error = %e, "background refresh skipped a tender"),
    }
}
