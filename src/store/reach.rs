//! Whether a store over the network can be reached, and a store handle that
//! fails fast while it cannot.
//!
//! A PostgreSQL that crashed, restarted or sits behind a partition does not
//! always say so: a refused connection is an error at once, but a silent
//! peer leaves a query (or the pool's connect) waiting for as long as TCP
//! takes to give up, many minutes. So a probe asks the store every quarter
//! of the bound ([`StoreOptions::timeout`](super::StoreOptions), `serve
//! --store-timeout-ms`, 1 s unless told) on a connection of its own, and
//! allows it three quarters of the bound to answer. The first probe that
//! fails or does not answer in time marks the store unreachable:
//!
//! - every store call in flight ends at once with
//!   [`StoreError::Unavailable`] (its connection is closed, not returned);
//! - every store call made while it is unreachable fails at once, without
//!   touching the pool;
//! - the change listener is dropped, and the cache must catch up from the
//!   change table before it serves again ([`ChangeSink::notifications_lost`]).
//!
//! So a request needing the store fails at most one bound after the store
//! stopped answering. The next probe that is answered marks it reachable
//! again (probes run every quarter bound throughout, so recovery waits on
//! no longer timer); connections opened before the outage are then closed
//! as they come back to the pool or out of it, never pinged.

use super::error::StoreError;
use super::traits::{CreditStore, GrantStore, LogStore, PolicyStore, RecordStore, StoreUpkeep, TenderStore};
use super::types::{BidRow, ChangeSink, RecordSource, StoredCheckpoint, StoredPolicy, WalCheckpoint, WalMode, WriteMode, WriteOutcome};
use crate::domain::ownership::Writer;
use crate::domain::profile::Profile;
use crate::domain::tender::{Bidder, TenderId};
use crate::domain::{CommitteeGrant, CreditCode, Tender};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether the store answers, as the last probe found it.
#[derive(Debug)]
pub struct Reachability {
    /// The bound: how long the store may leave a request unanswered before
    /// it counts as unreachable.
    timeout: Duration,
    /// `true` while the store is unreachable. A watch, so that every call in
    /// flight (each holds a receiver) ends the moment it turns.
    down: tokio::sync::watch::Sender<bool>,
    /// Why the store was last found unreachable, for the log.
    why: Mutex<String>,
    /// The instant everything is measured from.
    base: Instant,
    /// When the last outage began, in nanoseconds after `base` (0: none
    /// yet): connections opened before it are not used again.
    outage_began: AtomicU64,
    /// Asks for a probe now: a call saw the store fail.
    probe_now: tokio::sync::Notify,
}

impl Reachability {
    /// A store taken to be reachable, with this bound.
    pub fn new(timeout: Duration) -> Arc<Reachability> {
        Arc::new(Reachability {
            timeout,
            down: tokio::sync::watch::Sender::new(false),
            why: Mutex::new(String::new()),
            base: Instant::now(),
            outage_began: AtomicU64::new(0),
            probe_now: tokio::sync::Notify::new(),
        })
    }

    /// The bound this store was opened with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often the store is probed: a quarter of the bound.
    pub fn probe_every(&self) -> Duration {
        self.timeout / 4
    }

    /// How long a probe may take: three quarters of the bound, so that a
    /// probe started just before the store stopped answering has failed one
    /// bound later at most.
    pub fn probe_within(&self) -> Duration {
        self.timeout - self.probe_every()
    }

    /// Whether the store is taken to be down: a call or probe failed to reach
    /// it within the bound, and no probe has reached it since.
    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// Marks the store unreachable; `true` if it was reachable until now.
    pub fn mark_down(&self, why: &str) -> bool {
        *self.why.lock().expect("why lock") = why.to_owned();
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        let turned = self.down.send_if_modified(|down| !std::mem::replace(down, true));
        if turned {
            self.outage_began.store(nanos, Ordering::Release);
        }
        turned
    }

    /// Marks the store reachable; `true` if it was unreachable until now.
    pub fn mark_up(&self) -> bool {
        self.down.send_if_modified(|down| std::mem::replace(down, false))
    }

    /// Whether a connection `age` old was opened before the last outage
    /// began: it is closed rather than used (or pinged: a ping on a
    /// connection to a host that went away waits for TCP to give up).
    pub fn predates_outage(&self, age: Duration) -> bool {
        let began = self.outage_began.load(Ordering::Acquire);
        opened_before((began != 0).then(|| Duration::from_nanos(began)), self.base.elapsed(), age)
    }

    /// The error of a call refused or ended because the store is unreachable.
    pub fn unreachable(&self) -> StoreError {
        let why = self.why.lock().expect("why lock").clone();
        unreachable(format!("the store has not answered within {} ms ({why})", self.timeout.as_millis()))
    }

    /// Completes when the store is (or becomes) unreachable.
    pub async fn until_down(&self) {
        let mut rx = self.down.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Completes when the store is (or becomes) reachable.
    pub async fn until_up(&self) {
        let mut rx = self.down.subscribe();
        let _ = rx.wait_for(|down| !*down).await;
    }

    /// Runs a store call: at once an error while the store is unreachable,
    /// and ended with one the moment it turns unreachable. A call that fails
    /// because the store cannot be reached asks for a probe at once.
    pub async fn bounded<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let mut rx = self.down.subscribe();
        if *rx.borrow_and_update() {
            return Err(self.unreachable());
        }
        tokio::select! {
            biased;
            result = call => {
                if let Err(StoreError::Unavailable(_)) = &result {
                    self.probe_now.notify_one();
                }
                result
            }
            () = async { let _ = rx.wait_for(|down| *down).await; } => Err(self.unreachable()),
        }
    }

    /// Completes when a call asked for a probe.
    pub async fn probe_wanted(&self) {
        self.probe_now.notified().await;
    }
}

/// Whether a connection `age` old at `now` was opened no later than an
/// outage that began at `began` (both measured from one base); never when
/// there has been no outage.
fn opened_before(began: Option<Duration>, now: Duration, age: Duration) -> bool {
    began.is_some_and(|began| now.saturating_sub(age) <= began)
}

/// A [`StoreError::Unavailable`] saying why.
pub(super) fn unreachable(why: String) -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
}

/// Asks the store whether it answers, on a connection of the probe's own
/// (so that a pool busy with requests is not taken for an outage).
pub(super) type Probe = Box<dyn Fn() -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

/// A store whose every call is [`Reachability::bounded`], probed by `probe`.
pub(super) struct Guarded<S> {
    inner: Arc<S>,
    reach: Arc<Reachability>,
    probe: Probe,
}

impl<S: CreditStore> Guarded<S> {
    pub(super) fn new(inner: S, reach: Arc<Reachability>, probe: Probe) -> Guarded<S> {
        Guarded { inner: Arc::new(inner), reach, probe }
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> RecordStore for Guarded<S> {
    async fn current_version(&self) -> Result<u64, StoreError> {
        self.reach.bounded(self.inner.current_version()).await
    }

    async fn write(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError> {
        self.reach.bounded(self.inner.write(writer, records, mode)).await
    }

    async fn profile(&self, code: &CreditCode, at_version: Option<u64>) -> Result<Profile, StoreError> {
        self.reach.bounded(self.inner.profile(code, at_version)).await
    }

    async fn profiles(&self, codes: &[CreditCode], at_version: Option<u64>) -> Result<Vec<Profile>, StoreError> {
        self.reach.bounded(self.inner.profiles(codes, at_version)).await
    }

    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<(u64, CreditCode)>, StoreError> {
        self.reach.bounded(self.inner.changes_since(after, limit)).await
    }

    async fn written_by(&self, code: &CreditCode, source: &str) -> Result<bool, StoreError> {
        self.reach.bounded(self.inner.written_by(code, source)).await
    }

    async fn evaluated_codes(&self, at_version: u64) -> Result<Vec<CreditCode>, StoreError> {
        self.reach.bounded(self.inner.evaluated_codes(at_version)).await
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> TenderStore for Guarded<S> {
    async fn tender(&self, id: &TenderId, version: Option<u32>) -> Result<Option<Tender>, StoreError> {
        self.reach.bounded(self.inner.tender(id, version)).await
    }

    async fn list_tenders(&self) -> Result<Vec<(Tender, u32)>, StoreError> {
        self.reach.bounded(self.inner.list_tenders()).await
    }

    async fn insert_tender(&self, t: &Tender) -> Result<Tender, StoreError> {
        self.reach.bounded(self.inner.insert_tender(t)).await
    }

    async fn register_bid(&self, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError> {
        self.reach.bounded(self.inner.register_bid(tender_id, bidder)).await
    }

    async fn bids(&self, tender_id: &TenderId) -> Result<Vec<BidRow>, StoreError> {
        self.reach.bounded(self.inner.bids(tender_id)).await
    }

    async fn tender_change_seq(&self) -> Result<u64, StoreError> {
        self.reach.bounded(self.inner.tender_change_seq()).await
    }

    async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, TenderId)>, StoreError> {
        self.reach.bounded(self.inner.tender_changes_since(after)).await
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> PolicyStore for Guarded<S> {
    async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError> {
        self.reach.bounded(self.inner.put_policy(id, digest, source)).await
    }

    async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError> {
        self.reach.bounded(self.inner.policy_source(digest)).await
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> GrantStore for Guarded<S> {
    async fn insert_grant(&self, grant: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError> {
        self.reach.bounded(self.inner.insert_grant(grant, link_sha256)).await
    }

    async fn redeem_grant(
        &self,
        link_sha256: &str,
        session_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitteeGrant>, StoreError> {
        self.reach.bounded(self.inner.redeem_grant(link_sha256, session_sha256, now)).await
    }

    async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        self.reach.bounded(self.inner.grant_by_session(session_sha256)).await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        self.reach.bounded(self.inner.grant(grant_id)).await
    }

    async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.reach.bounded(self.inner.revoke_grant(grant_id, now)).await
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> LogStore for Guarded<S> {
    async fn log_append(&self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
        self.reach.bounded(self.inner.log_append(leaves)).await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        self.reach.bounded(self.inner.log_size()).await
    }

    async fn log_hashes(&self, indexes: &[u64]) -> Result<crate::tlog::tree::Known, StoreError> {
        self.reach.bounded(self.inner.log_hashes(indexes)).await
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.reach.bounded(self.inner.log_entries(start, end)).await
    }

    async fn log_index_of(&self, leaf_hash: &[u8]) -> Result<Option<u64>, StoreError> {
        self.reach.bounded(self.inner.log_index_of(leaf_hash)).await
    }

    async fn put_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        self.reach.bounded(self.inner.put_checkpoint(checkpoint)).await
    }

    async fn checkpoint(&self, size: Option<u64>) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.reach.bounded(self.inner.checkpoint(size)).await
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.reach.bounded(self.inner.checkpoints()).await
    }
}

#[async_trait::async_trait]
impl<S: CreditStore> StoreUpkeep for Guarded<S> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn wal_checkpoint(&self, mode: WalMode) -> Result<Option<WalCheckpoint>, StoreError> {
        self.reach.bounded(self.inner.wal_checkpoint(mode)).await
    }

    /// The probe, within three quarters of the bound; its verdict marks the
    /// store reachable or not. A store that answers but refuses (busy,
    /// lost) is not unreachable.
    async fn probe(&self) -> Result<(), StoreError> {
        let within = self.reach.probe_within();
        let verdict = match tokio::time::timeout(within, (self.probe)()).await {
            Ok(verdict) => verdict,
            Err(_) => Err(unreachable(format!("the probe had no answer within {} ms", within.as_millis()))),
        };
        match &verdict {
            Ok(()) | Err(StoreError::Busy(_)) => {
                if self.reach.mark_up() {
                    tracing::info!(backend = self.backend_name(), "the credit store answers again");
                }
            }
            Err(e @ StoreError::Unavailable(_)) => {
                let why = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
                if self.reach.mark_down(&why) {
                    tracing::error!(backend = self.backend_name(), %why, "the credit store cannot be reached: requests that need it fail at once");
                }
            }
            Err(_) => {}
        }
        verdict
    }

    fn probe_every(&self) -> Duration {
        self.reach.probe_every()
    }

    async fn probe_wanted(&self) {
        self.reach.probe_wanted().await;
    }

    fn is_own_file(&self, path: &std::path::Path) -> bool {
        self.inner.is_own_file(path)
    }

    /// The inner listener while the store is reachable. When it turns
    /// unreachable the listener is dropped (its connection may be silent,
    /// and would hear nothing) and the cache told that notifications were
    /// lost; once the store answers again a new listener LISTENs and the
    /// cache catches up from the change table.
    fn change_listener(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
        // Only a backend that can announce has a listener.
        let _unpolled = self.inner.change_listener(sink.clone())?;
        let inner = self.inner.clone();
        let reach = self.reach.clone();
        Some(Box::pin(async move {
            loop {
                reach.until_up().await;
                let Some(listening) = inner.change_listener(sink.clone()) else { return };
                tokio::select! {
                    () = listening => {}
                    () = reach.until_down() => {
                        tracing::warn!("the credit store cannot be reached: change listener dropped, catching up when it answers");
                    }
                }
                sink.notifications_lost();
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_in_flight_ends_when_the_store_turns_unreachable_and_later_calls_fail_at_once() {
        let reach = Reachability::new(Duration::from_secs(1));
        let r = reach.clone();
        let hung = tokio::spawn(async move { r.bounded(std::future::pending::<Result<(), StoreError>>()).await });
        tokio::task::yield_now().await;
        assert!(reach.mark_down("test"));
        assert!(!reach.mark_down("again"), "already down");
        assert!(matches!(hung.await.unwrap(), Err(StoreError::Unavailable(_))));
        let refused = reach.bounded(async { Ok(()) }).await;
        assert!(matches!(refused, Err(StoreError::Unavailable(_))), "no call is made while the store is unreachable");
        assert!(reach.mark_up());
        reach.bounded(async { Ok(()) }).await.unwrap();
    }

    #[tokio::test]
    async fn connections_opened_before_an_outage_are_told_apart_from_those_opened_after() {
        // The rule, at given instants (no time needs to pass).
        let ms = Duration::from_millis;
        assert!(!opened_before(None, ms(100), ms(3_600_000)), "no outage yet");
        assert!(opened_before(Some(ms(40)), ms(60), ms(30)), "opened at 30, before the outage at 40");
        assert!(opened_before(Some(ms(40)), ms(60), ms(20)), "opened as it began");
        assert!(!opened_before(Some(ms(40)), ms(60), ms(5)), "opened at 55, after it");
        assert!(opened_before(Some(ms(40)), ms(60), ms(3_600_000)), "older than the base");
        // And on a Reachability: an hour-old connection predates an outage marked now.
        let reach = Reachability::new(Duration::from_secs(1));
        assert!(!reach.predates_outage(Duration::from_secs(3600)), "no outage yet");
        reach.mark_down("test");
        reach.mark_up();
        assert!(reach.predates_outage(Duration::from_secs(3600)), "opened before the outage began");
    }

    #[test]
    fn a_probe_started_at_any_moment_fails_within_the_bound() {
        let reach = Reachability::new(Duration::from_millis(1000));
        assert_eq!(reach.probe_every() + reach.probe_within(), reach.timeout());
    }
}
