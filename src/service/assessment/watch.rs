//! `WatchTender`: each change of a bid's statement, read from the
//! transparency log, until the bid deadline (the contract is written in
//! `assessment.proto`, above `WatchTenderRequest`).
//!
//! **Why the log is the source.** Every statement is a log entry before it
//! is given out, the log is one order shared by every replica, and it is
//! never rewritten: reading it from a cursor (a log size) gives the same
//! events to a first stream and to a resumed one, so none is lost or sent
//! twice, and each points at a verifiable, logged statement.
//!
//! **How a change is noticed.** The stream waits on this replica's change
//! feed (`Cache::applied_versions`, advanced by every catch-up: this
//! process's writes, another replica's by NOTIFY, the poll as a backstop,
//! and tender changes with them), and on each wake makes the tender's
//! statements as the committee's table would (`refresh_tender`: cached
//! ones are hits, changed inputs are signed and logged, shared with the
//! background refresh by the cache's single-flight loads), then reads the
//! log from its cursor. No write handler knows of watchers.
//!
//! **Bounds.** A watch keeps one outcome per bid and at most [`BUFFER`]
//! messages not yet taken by the client; it reads the log [`CHUNK`] entries
//! at a time. A slow reader stalls only its own watch, whose cursor then
//! waits in the log. Watches are counted per principal
//! ([`WATCHES_PER_PRINCIPAL`]) here and per server by the admission layer
//! (`crate::shed::WATCH_STREAMS`), where they hold no in-flight place.

use crate::access::Caller;
use crate::cache::CachedTender;
use crate::domain::TenderId;
use crate::log::Log;
use crate::proto::v1 as pb;
use crate::service::answer::Cache;
use crate::service::error::{ApiError, no_tender};
use crate::service::statement::ASSESSMENT_PAYLOAD_TYPE;
use crate::service::tenders::bid_to_proto;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tonic::Status;

/// Messages a watch holds for a client that has not taken them, at most.
const BUFFER: usize = 4;

/// Log entries read at once.
const CHUNK: u64 = 256;

/// Watches one principal may have open at once (per replica).
pub(super) const WATCHES_PER_PRINCIPAL: usize = 8;

/// The open watches of this replica, by principal.
#[derive(Default)]
pub(super) struct Watches {
    open: Mutex<HashMap<String, usize>>,
}

/// One principal's place among the watches, given back when the watch ends.
struct Place {
    watches: Arc<Watches>,
    name: String,
}

impl Watches {
    fn take(self: &Arc<Self>, caller: &Caller) -> Result<Place, ApiError> {
        let name = caller.label().to_owned();
        let mut open = self.open.lock().expect("watches lock");
        let n = open.entry(name.clone()).or_default();
        if *n >= WATCHES_PER_PRINCIPAL {
            return Err(ApiError::Limit(format!(
                "订阅已达上限：'{name}' 已打开 {WATCHES_PER_PRINCIPAL} 个 WatchTender 订阅（每个身份的上限，服务器另有总上限），\
                 关闭一个后再试 / '{name}' already has {WATCHES_PER_PRINCIPAL} WatchTender streams open, the most one principal \
                 may have (the server has its own bound on all of them)"
            )));
        }
        *n += 1;
        Ok(Place { watches: self.clone(), name })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.watches.open.lock().expect("watches lock");
        if let Some(n) = open.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.name);
            }
        }
    }
}

/// What the stream sends: messages, or the error that ends it.
pub(super) type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::WatchTenderResponse, Status>>;

/// A bid's newest statement as the watch has seen it.
struct Seen {
    tender_version: u32,
    /// The store's data version the statement was made from.
    data_version: u64,
    outcome: String,
    reasons: Vec<pb::Reason>,
}

/// What a watch asks of the assessment service: the statements of every
/// bid of an open tender made (signed and logged, or found cached) as the
/// committee's table would make them. A trait, so that the watch is handed
/// the service rather than importing it (the service holds the watches).
pub(super) trait Statements: Clone + Send + Sync + 'static {
    fn make_statements(&self, id: &TenderId) -> impl Future<Output = Result<u32, ApiError>> + Send;
}

/// One watch: the tender, the cursor, each bid's newest outcome.
struct Watcher<A> {
    api: A,
    cache: Arc<Cache>,
    log: Arc<Log>,
    id: TenderId,
    cursor: u64,
    /// By the bidder's credit codes, lead first.
    seen: HashMap<Vec<String>, Seen>,
    tx: mpsc::Sender<Result<pb::WatchTenderResponse, Status>>,
    _place: Place,
}

/// Where a watch starts: the pieces of the assessment service it reads.
pub(super) struct Start<'a, A> {
    pub(super) api: A,
    pub(super) cache: &'a Arc<Cache>,
    pub(super) log: Option<Arc<Log>>,
    pub(super) watches: &'a Arc<Watches>,
}

/// Opens a watch on `cached` (a tender `caller` may watch): refusals (no
/// log, a cursor beyond the log, limits) come back here, before the stream
/// starts.
pub(super) async fn open<A: Statements>(
    start: Start<'_, A>,
    caller: &Caller,
    cached: &CachedTender,
    after: Option<u64>,
) -> Result<WatchStream, ApiError> {
    let Start { api, cache, log, watches } = start;
    let Some(log) = log else {
        return Err(ApiError::Precondition("WatchTender reads the transparency log, and this server runs without it (--no-log)".into()));
    };
    let place = watches.take(caller)?;
    let cursor = match after {
        Some(after) => {
            let size = cache.store().log_size().await?;
            if after > size {
                return Err(ApiError::field("after", format!("{after} is beyond the log, which has {size} entries")));
            }
            after
        }
        None => {
            // Now: once the current statements are logged, so that
            // they are "previous" and not events.
            if cached.tender.terms.bid_deadline > cache.clock().now() {
                api.make_statements(&cached.tender.tender_id).await?;
            }
            cache.store().log_size().await?
        }
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    let id = cached.tender.tender_id.clone();
    let mut watcher = Watcher { api, cache: cache.clone(), log, id, cursor, seen: HashMap::new(), tx, _place: place };
    watcher.previous(cached).await?;
    let versions = cache.applied_versions();
    tokio::spawn(async move {
        if watcher.send(pb::WatchTenderResponse { cursor: watcher.cursor, change: None }).await {
            watcher.run(versions).await;
        }
    });
    Ok(WatchStream::new(rx))
}

impl<A: Statements> Watcher<A> {
    /// Sends one message; `false` once the client has gone.
    async fn send(&self, message: pb::WatchTenderResponse) -> bool {
        self.tx.send(Ok(message)).await.is_ok()
    }

    /// Ends the stream with `e`'s status (the client resumes from its cursor).
    async fn fail(&self, e: ApiError) {
        let _ = self.tx.send(Err(Status::from(e))).await;
    }

    /// Follows the tender until its deadline; the stream ends (OK) when
    /// this returns without having sent an error.
    async fn run(mut self, mut versions: tokio::sync::watch::Receiver<u64>) {
        loop {
            let cached = match self.cache.tender(&self.id).await {
                Ok(Some(c)) => c,
                Ok(None) => return self.fail(no_tender(self.id.as_str())).await,
                Err(e) => return self.fail(e.into()).await,
            };
            let deadline = cached.tender.terms.bid_deadline;
            let open = self.cache.clock().now() < deadline;
            if open && let Err(e) = self.api.make_statements(&self.id).await {
                return self.fail(e).await;
            }
            let size = match self.cache.store().log_size().await {
                Ok(size) => size,
                Err(e) => return self.fail(e.into()).await,
            };
            match self.scan(&cached, size).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail(e).await,
            }
            if !open {
                return;
            }
            let wait = (deadline - self.cache.clock().now()).to_std().unwrap_or_default();
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
                () = self.tx.closed() => return,
            }
        }
    }

    /// Each bid's newest statement logged before the cursor, read back
    /// from it until every bid has one or the log's start.
    async fn previous(&mut self, cached: &CachedTender) -> Result<(), ApiError> {
        let bids: Vec<Vec<String>> = cached.bids.iter().map(|b| codes_of(b.bidder.codes())).collect();
        let mut end = self.cursor;
        while end > 0 && self.seen.len() < bids.len() {
            let start = end.saturating_sub(CHUNK);
            let entries = self.log.entries(start, end).await?;
            for leaf in entries.iter().rev() {
                let Some((statement, _)) = self.statement_of(leaf) else { continue };
                let key = members_of(&statement);
                if bids.contains(&key) && !self.seen.contains_key(&key) {
                    self.seen.insert(key, seen(&statement));
                }
            }
            end = start;
        }
        Ok(())
    }

    /// Sends an event for each changed bid statement in `[cursor, size)`,
    /// in log order, and moves the cursor to `size`; `false` once the
    /// client has gone.
    async fn scan(&mut self, cached: &CachedTender, size: u64) -> Result<bool, ApiError> {
        let deadline = cached.tender.terms.bid_deadline;
        while self.cursor < size {
            let end = size.min(self.cursor + CHUNK);
            let entries = self.log.entries(self.cursor, end).await?;
            for (i, leaf) in entries.iter().enumerate() {
                let index = self.cursor + i as u64;
                let Some((statement, envelope)) = self.statement_of(leaf) else { continue };
                if issued_at(&statement).is_none_or(|t| t >= deadline) {
                    continue;
                }
                let key = members_of(&statement);
                let Some(row) = cached.bids.iter().find(|b| codes_of(b.bidder.codes()) == key) else { continue };
                let Some(change) = self.change(key, &statement) else { continue };
                let (added, removed) = change;
                let answer = pb::AssessResponse { envelope: Some(envelope), statement: Some(statement), log_index: Some(index) };
                let change = pb::BidChange {
                    bid: Some(bid_to_proto(&cached.tender.tender_id, row)),
                    log_index: index,
                    added,
                    removed,
                    assessment: Some(answer),
                };
                if !self.send(pb::WatchTenderResponse { cursor: index + 1, change: Some(change) }).await {
                    return Ok(false);
                }
            }
            self.cursor = end;
        }
        Ok(true)
    }

    /// The reasons added and removed if `statement` changes its bid's
    /// outcome (and records it as the bid's newest); `None` if not.
    #[allow(clippy::type_complexity)]
    fn change(&mut self, key: Vec<String>, statement: &pb::AssessmentStatement) -> Option<(Vec<pb::Reason>, Vec<pb::Reason>)> {
        let new = seen(statement);
        let (added, removed) = match self.seen.get(&key) {
            // A statement made from an older tender version or older data
            // than the newest seen (a replica behind logged it after another
            // one's newer statement) says nothing new: sending it would tell
            // the client the bid went back.
            Some(old) if old.tender_version > new.tender_version || old.data_version > new.data_version => return None,
            // The same decision made again (from newer data): nothing to send,
            // but an older statement logged after it is now behind it.
            Some(old) if old.outcome == new.outcome => {
                self.seen.insert(key, new);
                return None;
            }
            Some(old) => (
                new.reasons.iter().filter(|r| !old.reasons.iter().any(|o| same_reason(o, r))).cloned().collect(),
                old.reasons.iter().filter(|o| !new.reasons.iter().any(|r| same_reason(o, r))).cloned().collect(),
            ),
            None => (new.reasons.clone(), Vec::new()),
        };
        self.seen.insert(key, new);
        Some((added, removed))
    }

    /// The assessment statement of this tender a leaf holds, as a bid's
    /// table row would be (no contract price), with its envelope.
    fn statement_of(&self, leaf: &[u8]) -> Option<(pb::AssessmentStatement, pb::Envelope)> {
        // Most leaves are other tenders': told apart before any parsing.
        let envelope = crate::log::envelope_of_leaf(leaf).ok()?;
        if envelope.payload_type != ASSESSMENT_PAYLOAD_TYPE {
            return None;
        }
        let needle = format!("\"tenderId\":{}", serde_json::to_string(self.id.as_str()).ok()?);
        if !envelope.payload.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return None;
        }
        let statement: pb::AssessmentStatement = serde_json::from_slice(&envelope.payload).ok()?;
        (statement.tender_id == self.id.as_str() && statement.contract_price_fen.is_none()).then_some((statement, envelope))
    }
}

fn codes_of(codes: &[crate::domain::CreditCode]) -> Vec<String> {
    codes.iter().map(ToString::to_string).collect()
}

fn members_of(statement: &pb::AssessmentStatement) -> Vec<String> {
    statement.members.iter().map(|m| m.credit_code.clone()).collect()
}

fn issued_at(statement: &pb::AssessmentStatement) -> Option<DateTime<Utc>> {
    let t = statement.issued_at.as_ref()?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// Two reasons are the same when code, member and record are.
fn same_reason(a: &pb::Reason, b: &pb::Reason) -> bool {
    a.code == b.code && a.credit_code == b.credit_code && a.record_id == b.record_id
}

/// What a statement decides, without when and at which data version it was
/// signed: its reasons and figures.
fn seen(s: &pb::AssessmentStatement) -> Seen {
    let mut reasons: Vec<String> = s.reasons.iter().map(|r| format!("{}/{}/{}", r.code, r.credit_code, r.record_id)).collect();
    reasons.sort();
    let outcome = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        s.eligible,
        s.qualified,
        s.applied_grade,
        s.qualification_points,
        s.evaluation_points,
        s.total_points,
        s.deposit_owed_fen,
        s.deposit_basis,
        s.deposit_share_percent,
        s.credit_benefit,
        reasons.join(",")
    );
    Seen { tender_version: s.tender_version, data_version: s.data_version, outcome, reasons: s.reasons.clone() }
}
