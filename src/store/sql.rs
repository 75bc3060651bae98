//! The SQL both backends share, written once over sqlx's `Database`.
//!
//! [`SqlStore`] is generic over a [`Backend`](super::dialect::Backend): a sqlx database plus the few
//! things that really differ between SQLite and PostgreSQL. The long
//! `where` clauses say what sqlx must be able to do with the backend's types
//! (run queries on a connection, bind integers, text and instants, read each
//! row struct); both sqlx drivers meet them, and the compiler checks it.

use super::dialect::{Backend, NewRecord, Newest, in_list, placeholders};
use super::log::LogTables;
use super::sqlite::StoreFile;
use super::tenders::Tenders;
use super::{
    BidRow, ChangeSink, CreditStore, ProfileRow, RecordRow, RecordSource, StoreError, StoredPolicy, WriteMode, WriteOutcome, build_profile,
};
use crate::domain::input::FieldError;
use crate::domain::ownership::{Owner, Writer};
use crate::domain::profile::Profile;
use crate::domain::tender::{Bidder, TenderId};
use crate::domain::{CommitteeGrant, CreditCode, Evaluation, EvaluationKind, EventKind, Record, RecordType, Tender};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// A credit store over one sqlx pool.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    /// Where writes are made: for SQLite one connection with no busy
    /// timeout of its own (see [`SqlStore::turn`]); for PostgreSQL the pool.
    writer: Pool<DB>,
    /// Writers of this process queue here rather than inside the database:
    /// SQLite would make them spin on SQLITE_BUSY, and on PostgreSQL they
    /// would only wait for the table lock that [`Backend::begin_write`] takes.
    /// Writers in other processes are held off by that lock.
    write_lock: Mutex<()>,
    /// The write at the head of the queue is waiting for another process's
    /// lock: those behind it wait for that too, up to the whole write wait.
    held_off: std::sync::atomic::AtomicBool,
    /// How long a write waits for its turn, in this queue and then for a
    /// lock another process holds, before it is answered busy.
    write_wait: Duration,
    /// The file the store was opened on (SQLite): a write commits only while
    /// that very file is still at its path, so that nothing is acknowledged
    /// into a file that was deleted or replaced underneath.
    file: Option<StoreFile>,
    /// Why the last probe found the file lost (it reads the file as a new
    /// connection would, which writes do not): writes are refused until a
    /// probe passes again.
    lost: std::sync::Mutex<Option<String>>,
    /// Records stored since the planner's statistics were last refreshed.
    since_analyze: std::sync::atomic::AtomicU64,
}

/// Records stored after which the planner's statistics are refreshed: a
/// profile read planned on statistics from before a bulk load scans the
/// whole table (PostgreSQL over 30,000 records, EXPLAIN ANALYZE: 8 ms instead
/// of 0.08 ms per profile, until autovacuum's next ANALYZE a minute or more
/// later; cold Assess ran at 169 requests/s).
const ANALYZE_EVERY: u64 = 10_000;

/// Which lock a write takes.
#[derive(Debug, Clone, Copy)]
enum WriteKind {
    /// The data versions' (records, tenders, bids).
    Data,
    /// The transparency log's append lock.
    Log,
    /// None beyond the database's own (grants, policies, checkpoints).
    Small,
}

/// The longest pause between two tries for a lock another process holds:
/// as SQLite's own busy handler, which sleeps 1 to 100 ms between tries.
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(50);

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>, writer: Pool<DB>, file: Option<StoreFile>, write_wait: Duration) -> Self {
        SqlStore {
            pool,
            writer,
            write_lock: Mutex::new(()),
            held_off: std::sync::atomic::AtomicBool::new(false),
            write_wait,
            file,
            lost: std::sync::Mutex::new(None),
            since_analyze: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Refuses a write to a file that is gone, replaced, or that the last
    /// probe could not read. `stat` only: cheap enough for every write.
    fn check_file(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else { return Ok(()) };
        if let Some(why) = self.lost.lock().expect("lost lock").clone() {
            return Err(StoreError::Lost(why));
        }
        file.check_path()
    }

    /// Keeps the probe's verdict on the file for the writes; renews the
    /// connections when a lost file is sound again.
    fn keep_verdict(&self, file: &StoreFile, verdict: &Result<(), StoreError>) {
        let mut lost = self.lost.lock().expect("lost lock");
        match verdict {
            Ok(()) => {
                if lost.take().is_some() {
                    // Connections may hold what they read while it was damaged.
                    file.renew_connections();
                }
            }
            Err(StoreError::Lost(why)) => *lost = Some(why.clone()),
            Err(_) => {}
        }
    }

    /// Refused in this process's own write queue (no other process involved).
    fn queued(&self, waited: Duration) -> StoreError {
        tracing::info!(
            waited_ms = waited.as_millis() as u64,
            "a write gave up waiting behind this server's own writes: refused, queue full"
        );
        StoreError::Queued(format!("this write waited {} ms behind this server's other writes", waited.as_millis()))
    }

    fn busy(&self) -> StoreError {
        StoreError::Busy(format!("this write waited {} ms for its turn", self.write_wait.as_millis()))
    }
}

/// The newest version of a record id, for the write checks.
#[derive(FromRow)]
pub struct PreviousVersion {
    record_id: String,
    version: i64,
    kind: String,
    digest: String,
    credit_code: String,
}

/// The first version of a record id, with its data version's source: what
/// decides the id's owner.
#[derive(FromRow)]
pub struct FirstVersion {
    record_id: String,
    body: String,
    source: String,
}

#[derive(FromRow)]
pub struct Target {
    kind: String,
    credit_code: String,
}

/// The newest version of another evaluation id of the same code.
#[derive(FromRow)]
pub struct SiblingEvaluation {
    record_id: String,
    credit_code: String,
    body: String,
}

#[derive(FromRow)]
pub struct ChangedCode {
    version: i64,
    credit_code: String,
}

pub(super) const NEWEST_VERSION: &str = "SELECT MAX(version) AS newest FROM data_versions";

const INSERT_VERSION: &str = "INSERT INTO data_versions (version, recorded_at, source, record_count) VALUES ($1, $2, $3, 0)";

/// Followed by an IN list of ids and [`NEWEST_VERSION_OF_ROW`].
const NEWEST_OF_IDS: &str = "SELECT r.record_id, r.version, r.kind, r.digest, r.credit_code FROM records r WHERE r.record_id IN";

/// Keeps only each id's newest version.
const NEWEST_VERSION_OF_ROW: &str = "AND r.version = (SELECT MAX(x.version) FROM records x WHERE x.record_id = r.record_id)";

/// Followed by a VALUES list of six columns per record.
pub(super) const INSERT_RECORDS: &str = "INSERT INTO records (record_id, version, kind, credit_code, digest, body) VALUES";

/// Followed by an IN list of ids: each id's first version and who wrote it.
const FIRST_OF_IDS: &str = "SELECT r.record_id, r.body, d.source FROM records r JOIN data_versions d ON d.version = r.version \
     WHERE r.version = (SELECT MIN(x.version) FROM records x WHERE x.record_id = r.record_id) AND r.record_id IN";

const TARGET_OF_EVENT: &str = "SELECT kind, credit_code FROM records WHERE record_id = $1 ORDER BY version DESC LIMIT 1";

/// The evaluations of codes (an IN list follows), with [`NEWEST_VERSION_OF_ROW`].
const EVALUATIONS_OF_CODES: &str =
    "SELECT r.record_id, r.credit_code, r.body FROM records r WHERE r.kind = 'evaluation' AND r.credit_code IN";

/// Records staged per round trip (six parameters each: well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
const STAGE_CHUNK: usize = 500;

const SET_RECORD_COUNT: &str = "UPDATE data_versions SET record_count = $1 WHERE version = $2";

/// Followed by a VALUES list of (version, code) pairs.
const INSERT_CHANGED_CODES: &str = "INSERT INTO changed_codes (version, credit_code) VALUES";
const CHANGED_CODES_ONCE: &str = "ON CONFLICT DO NOTHING";

/// Codes with an evaluation, as (first version, code) rows so that the
/// change feed's row type reads them.
const EVALUATED_CODES: &str = "SELECT MIN(version) AS version, credit_code FROM records \
     WHERE kind = 'evaluation' AND version <= $1 GROUP BY credit_code ORDER BY credit_code";
const CHANGES_SINCE: &str = "SELECT version, credit_code FROM changed_codes WHERE version > $1 ORDER BY version, credit_code LIMIT $2";

/// An event waiting for its target check.
struct PendingEvent {
    pos: u64,
    id: String,
    target: String,
    code: String,
    event: EventKind,
    /// Whether the event's id has versions from earlier data versions.
    versioned: bool,
}

/// A record that is a new version of an id from an earlier data version,
/// waiting for its owner check.
struct Versioned {
    pos: u64,
    id: String,
    /// The owner the new version names, if its type names one.
    claimed: Option<Owner>,
    field: &'static str,
}

/// What one pass over a batch found.
#[derive(Default)]
struct Batch {
    problems: Vec<(u64, FieldError)>,
    /// Problems of ownership (not the writer's record to write).
    denied: Vec<(u64, FieldError)>,
    /// Codes changed by the records staged since the last flush.
    changed: BTreeSet<String>,
    /// Every code changed so far, while there are few enough to list.
    listed: Option<BTreeSet<String>>,
    changed_count: u64,
    events: Vec<PendingEvent>,
    stored: u32,
    unchanged: u32,
}

/// One annual grade per (issuer, domain, year) and code: a second id for
/// the same result is refused; a corrected result is a new version of the
/// first id. Without this the choice between two would fall to whichever
/// id sorts last. `others` are the newest versions of the code's evaluations.
fn second_annual_grade(e: &Evaluation, others: &[Evaluation]) -> Option<String> {
    if e.evaluation_kind != EvaluationKind::Annual {
        return None;
    }
    others
        .iter()
        .find(|o| {
            o.id != e.id && o.evaluation_kind == EvaluationKind::Annual && (o.issuer, o.domain, o.year) == (e.issuer, e.domain, e.year)
        })
        .map(|o| {
            format!(
                "'{}' is already the {} grade in {} for {}: send a corrected result as a new version of '{}', not under a new id",
                o.id, e.issuer, e.domain, e.year, o.id
            )
        })
}

fn codes(set: BTreeSet<String>) -> Result<Vec<CreditCode>, StoreError> {
    set.into_iter().map(|c| CreditCode::try_from(c).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
}

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> Newest: FromRow<'r, DB::Row>,
    for<'r> PreviousVersion: FromRow<'r, DB::Row>,
    for<'r> FirstVersion: FromRow<'r, DB::Row>,
    for<'r> Target: FromRow<'r, DB::Row>,
    for<'r> ChangedCode: FromRow<'r, DB::Row>,
    for<'r> RecordRow: FromRow<'r, DB::Row>,
    for<'r> ProfileRow: FromRow<'r, DB::Row>,
    for<'r> SiblingEvaluation: FromRow<'r, DB::Row>,
{
    /// A write's turn: this process's queue, then the store's write lock
    /// (`kind`), within the write wait; refused at once when the store is
    /// lost. Another process's write lock (a long import) cannot be awaited
    /// across processes, so it is tried again after a pause, as SQLite's busy
    /// handler would, but without holding a thread and up to one deadline
    /// however many writes of this process queue behind it. Past the wait:
    /// [`StoreError::Busy`], never "cannot be reached"; past
    /// [`super::WRITE_QUEUE_WAIT`] in this process's own queue:
    /// [`StoreError::Queued`].
    async fn turn(&self, kind: WriteKind) -> Result<(MutexGuard<'_, ()>, Transaction<'static, DB>), StoreError> {
        use tokio::time::Instant;
        let deadline = Instant::now() + self.write_wait;
        let in_queue = self.write_wait.min(super::WRITE_QUEUE_WAIT);
        let queued = match tokio::time::timeout(in_queue, self.write_lock.lock()).await {
            Ok(turn) => turn,
            // The head of the queue waits for another process: so does this write.
            Err(_) if self.held_off.load(std::sync::atomic::Ordering::Relaxed) => {
                tokio::time::timeout_at(deadline, self.write_lock.lock()).await.map_err(|_| self.busy())?
            }
            Err(_) => return Err(self.queued(in_queue)),
        };
        self.check_file()?;
        let mut pause = Duration::from_millis(1);
        let mut told = false;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let begun = match kind {
                WriteKind::Data => DB::begin_write(&self.writer, wait).await,
                WriteKind::Log => DB::begin_log_append(&self.writer, wait).await,
                WriteKind::Small => DB::begin_small_write(&self.writer, wait).await,
            };
            let begun = begun.map_err(StoreError::from);
            // Held off until a write begins without meeting another process's
            // lock: those queued behind an import's wait are behind the import.
            match &begun {
                Err(StoreError::Busy(_)) => self.held_off.store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(_) if !told => self.held_off.store(false, std::sync::atomic::Ordering::Relaxed),
                _ => {}
            }
            match begun {
                Ok(tx) => return Ok((queued, tx)),
                Err(StoreError::Busy(_)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        tracing::info!(
                            wait_ms = self.write_wait.as_millis() as u64,
                            "a write gave up waiting for another process's write lock: answered busy"
                        );
                        return Err(self.busy());
                    }
                    if !told {
                        tracing::debug!(
                            left_ms = left.as_millis() as u64,
                            "waiting for the store's write lock, which another process holds"
                        );
                        told = true;
                    }
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                }
                Err(e) => {
                    if let StoreError::Lost(why) = &e {
                        // Kept until a probe finds the file sound again (and renews the connections).
                        *self.lost.lock().expect("lost lock") = Some(why.clone());
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Counts stored records; past [`ANALYZE_EVERY`], refreshes the
    /// planner's statistics (after the commit: the write stands whatever
    /// happens here; and before returning, so that an import's process
    /// does not exit first).
    async fn analyze_after(&self, stored: u64) {
        use std::sync::atomic::Ordering;
        let Some(sql) = DB::ANALYZE else { return };
        if self.since_analyze.fetch_add(stored, Ordering::Relaxed) + stored < ANALYZE_EVERY {
            return;
        }
        self.since_analyze.store(0, Ordering::Relaxed);
        match sqlx::raw_sql(sql).execute(&self.pool).await {
            Ok(_) => tracing::debug!("planner statistics refreshed after a bulk write"),
            Err(e) => tracing::warn!(error = %e, "refreshing the planner's statistics failed"),
        }
    }

    /// The newest stored version of each id.
    async fn newest_of_ids(&self, conn: &mut DB::Connection, ids: &[&str]) -> Result<HashMap<String, PreviousVersion>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!("{NEWEST_OF_IDS} ({}) {NEWEST_VERSION_OF_ROW}", in_list::<DB>(ids.len()));
        let mut q = sqlx::query_as::<_, PreviousVersion>(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&mut *conn).await?.into_iter().map(|p| (p.record_id.clone(), p)).collect())
    }

    /// The newest version of every evaluation id of each code, parsed.
    async fn evaluations_of(&self, conn: &mut DB::Connection, codes: &[&str]) -> Result<HashMap<String, Vec<Evaluation>>, StoreError> {
        let mut out: HashMap<String, Vec<Evaluation>> = HashMap::new();
        if codes.is_empty() {
            return Ok(out);
        }
        let sql = format!("{EVALUATIONS_OF_CODES} ({}) {NEWEST_VERSION_OF_ROW}", in_list::<DB>(codes.len()));
        let mut q = sqlx::query_as::<_, SiblingEvaluation>(&sql);
        for code in codes {
            q = q.bind(*code);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let Ok(Record::Evaluation(e)) = serde_json::from_str::<Record>(&row.body) else {
                return Err(StoreError::Corrupt(format!("record {} is unreadable", row.record_id)));
            };
            out.entry(row.credit_code).or_default().push(e);
        }
        Ok(out)
    }

    /// The owner of each stored id (see [`crate::domain::ownership`]), from
    /// its first version: named there, or its writer's (a commitment), or
    /// its target's (an event). Ids not stored are absent.
    async fn owners_of(&self, conn: &mut DB::Connection, ids: &[&str]) -> Result<HashMap<String, Owner>, StoreError> {
        let mut owners = HashMap::with_capacity(ids.len());
        // Events' ids, by the id of their target.
        let mut events: Vec<(String, String)> = Vec::new();
        for part in ids.chunks(STAGE_CHUNK) {
            let sql = format!("{FIRST_OF_IDS} ({})", in_list::<DB>(part.len()));
            let mut q = sqlx::query_as::<_, FirstVersion>(&sql);
            for id in part {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let record: Record =
                    serde_json::from_str(&row.body).map_err(|e| StoreError::Corrupt(format!("record {}: {e}", row.record_id)))?;
                match (Owner::named_by(&record, &row.source), &record) {
                    (Some(owner), _) => {
                        owners.insert(row.record_id, owner);
                    }
                    (None, Record::Event(e)) => events.push((row.record_id, e.target_id.as_str().to_owned())),
                    (None, _) => unreachable!("only events name no owner"),
                }
            }
        }
        if !events.is_empty() {
            // Events target only records that are not events (checked at ingest).
            let targets: Vec<&str> =
                events.iter().map(|(_, t)| t.as_str()).filter(|t| !owners.contains_key(*t)).collect::<BTreeSet<_>>().into_iter().collect();
            let found = Box::pin(self.owners_of(conn, &targets)).await?;
            for (event, target) in events {
                if let Some(owner) = owners.get(&target).or_else(|| found.get(&target)).cloned() {
                    owners.insert(event, owner);
                }
            }
        }
        Ok(owners)
    }

    /// Stages a chunk of records into the open data version with a few
    /// statements (the newest version of every id, the evaluations of every
    /// code, one multi-row insert) instead of three per record, with the
    /// same answers as record by record in order.
    async fn stage_chunk(
        &self,
        conn: &mut DB::Connection,
        writer: &Writer,
        version: i64,
        chunk: Vec<(u64, Record)>,
        batch: &mut Batch,
    ) -> Result<(), StoreError> {
        let ids: Vec<&str> = chunk.iter().map(|(_, r)| r.id().as_str()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut prev = self.newest_of_ids(conn, &ids).await?;
        let codes: Vec<&str> = chunk
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Evaluation(e) if e.evaluation_kind == EvaluationKind::Annual => Some(e.credit_code.as_str()),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut evaluations = self.evaluations_of(conn, &codes).await?;
        let mut rows: Vec<NewRecord> = Vec::with_capacity(chunk.len());
        let mut versioned: Vec<Versioned> = Vec::new();
        for (pos, record) in &chunk {
            let pos = *pos;
            let id = record.id().as_str().to_owned();
            let kind = record.record_type().as_str();
            let body = record.canonical_json();
            let digest = crate::domain::records::digest_of(&body);
            let code = record.credit_code().as_str().to_owned();
            if let Some(p) = prev.get(&id) {
                if p.kind != kind {
                    let reason = format!("'{id}' is already the id of a record of type {}, not {kind}", p.kind);
                    batch.problems.push((pos, FieldError::new("id", reason)));
                    continue;
                }
                if p.credit_code != code {
                    // A record is about one firm: moving it would take it out
                    // of the first firm's history at every later data version.
                    let reason = format!(
                        "'{id}' is a record of credit code {}; a new version cannot move it to {code}: end it \
                         (revoke, remove or an upheld objection) and publish a new record with a new id",
                        p.credit_code
                    );
                    batch.problems.push((pos, FieldError::new("credit_code", reason)));
                    continue;
                }
                if p.digest == digest {
                    // Unchanged, but still checked for whose it is: a copy of
                    // another owner's record is refused as a changed one would
                    // be (else "unchanged" would answer OK to a writer with no
                    // right to it). The operator covers every owner, and a
                    // copy moves nothing: not checked, so that re-importing a
                    // file stays cheap.
                    // (A copy of a record earlier in this batch was checked as that one.)
                    if !writer.is_operator() && p.version != version {
                        if let Record::Event(e) = record {
                            let target = e.target_id.as_str().to_owned();
                            batch.events.push(PendingEvent { pos, id: id.clone(), target, code, event: e.event, versioned: true });
                        } else {
                            versioned.push(Versioned { pos, id: id.clone(), claimed: None, field: Owner::field(record) });
                        }
                    }
                    batch.unchanged += 1;
                    continue;
                }
                if p.version == version {
                    let reason = format!("'{id}' appears earlier in this batch with different content");
                    batch.problems.push((pos, FieldError::new("id", reason)));
                    continue;
                }
                batch.changed.insert(p.credit_code.clone());
                // A new version of an id from an earlier data version: whose it is
                // is read below, for the whole chunk at once (events: with their targets).
                if !matches!(record, Record::Event(_)) {
                    versioned.push(Versioned { pos, id: id.clone(), claimed: Owner::claimed_by(record), field: Owner::field(record) });
                }
            } else if !writer.is_operator()
                && let Some(owner) = Owner::named_by(record, writer.source())
                && let Some(reason) = writer.refuse_new(&id, &owner)
            {
                batch.denied.push((pos, FieldError::new(Owner::field(record), reason)));
            }
            if let Record::Evaluation(e) = record {
                if let Some(reason) = second_annual_grade(e, evaluations.get(e.credit_code.as_str()).map(Vec::as_slice).unwrap_or(&[])) {
                    batch.problems.push((pos, FieldError::new("id", reason)));
                    continue;
                }
                // Later records of this chunk see this one as the id's newest version.
                let of_code = evaluations.entry(code.clone()).or_default();
                of_code.retain(|o| o.id != e.id);
                of_code.push(e.clone());
            }
            if let Record::Event(e) = record {
                let target = e.target_id.as_str().to_owned();
                let versioned = prev.contains_key(&id);
                batch.events.push(PendingEvent { pos, id: id.clone(), target, code: code.clone(), event: e.event, versioned });
            }
            prev.insert(
                id.clone(),
                PreviousVersion {
                    record_id: id.clone(),
                    version,
                    kind: kind.to_owned(),
                    digest: digest.clone(),
                    credit_code: code.clone(),
                },
            );
            rows.push(NewRecord { id, kind, code: code.clone(), digest, body });
            batch.changed.insert(code);
            batch.stored += 1;
        }
        DB::insert_records(conn, version, &rows).await?;
        if !versioned.is_empty() {
            let ids: Vec<&str> = versioned.iter().map(|v| v.id.as_str()).collect();
            let owners = self.owners_of(conn, &ids).await?;
            for Versioned { pos, id, claimed, field } in versioned {
                let owner = owners.get(&id).ok_or_else(|| StoreError::Corrupt(format!("record {id} has no first version")))?;
                if let Some(reason) = writer.refuse_change("a new version of", &id, owner, claimed.as_ref()) {
                    batch.denied.push((pos, FieldError::new(field, reason)));
                }
            }
        }
        Ok(())
    }

    /// Records the codes changed since the last flush in the change feed
    /// (once each per version), so that a write of millions of records
    /// never holds them all.
    async fn flush_changed(&self, conn: &mut DB::Connection, version: i64, batch: &mut Batch) -> Result<(), StoreError> {
        let changed = std::mem::take(&mut batch.changed);
        let list: Vec<&String> = changed.iter().collect();
        for part in list.chunks(STAGE_CHUNK * 2) {
            let sql = format!("{INSERT_CHANGED_CODES} {} {CHANGED_CODES_ONCE}", placeholders::<DB>(part.len(), 2));
            let mut q = sqlx::query(&sql);
            for code in part {
                q = q.bind(version).bind(code.as_str());
            }
            batch.changed_count += DB::rows_affected(&q.execute(&mut *conn).await?);
        }
        if let Some(listed) = &mut batch.listed {
            listed.extend(changed);
            if listed.len() > super::CHANGED_CODES_LISTED {
                batch.listed = None;
            }
        }
        Ok(())
    }

    /// Checks the batch's events once every record is in: events may precede
    /// their targets in a batch.
    async fn check_event_targets(&self, conn: &mut DB::Connection, writer: &Writer, batch: &mut Batch) -> Result<(), StoreError> {
        // Owners of every target, and of every event id with earlier versions
        // (an event keeps its owner: that of the record it first targeted).
        let mut ids: BTreeSet<&str> = batch.events.iter().map(|e| e.target.as_str()).collect();
        ids.extend(batch.events.iter().filter(|e| e.versioned).map(|e| e.id.as_str()));
        let ids: Vec<&str> = ids.into_iter().collect();
        let owners = self.owners_of(conn, &ids).await?;
        for PendingEvent { pos, id, target, code, event, versioned } in std::mem::take(&mut batch.events) {
            let found: Option<Target> = sqlx::query_as(TARGET_OF_EVENT).bind(target.as_str()).fetch_optional(&mut *conn).await?;
            let problem = match found {
                None => Some(("target_id", format!("event '{id}' targets unknown record '{target}'"))),
                Some(t) if t.kind == "event" => Some((
                    "target_id",
                    format!("'{target}' is an event; events target evaluations, list entries, penalties or commitments"),
                )),
                Some(t) if t.credit_code != code => {
                    Some(("credit_code", format!("{code} differs from {}, the credit code of target '{target}'", t.credit_code)))
                }
                Some(t) => RecordType::parse(&t.kind)
                    .and_then(|kind| kind.event_refusal(event))
                    .map(|reason| ("event", format!("'{target}' is a record of type {}: {reason}", t.kind))),
            };
            if let Some((field, reason)) = problem {
                batch.problems.push((pos, FieldError::new(field, reason)));
                continue;
            }
            let Some(owner) = owners.get(&target) else { continue };
            let refusal = match owners.get(&id) {
                // A new version of an event: it keeps the owner of the record it first targeted.
                Some(first) if versioned => writer.refuse_change("a new version of", &id, first, Some(owner)),
                _ => writer.refuse_change("an event on", &target, owner, None),
            };
            if let Some(reason) = refusal {
                batch.denied.push((pos, FieldError::new("target_id", reason)));
            }
        }
        Ok(())
    }

    async fn write_records(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError> {
        let source = writer.source();
        let (_turn, mut tx) = self.turn(WriteKind::Data).await?;
        let current = sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&mut *tx).await?.newest.unwrap_or(0);
        let version = current + 1;
        sqlx::query(INSERT_VERSION).bind(version).bind(Utc::now()).bind(source).execute(&mut *tx).await?;

        // Records keep being inserted after a problem is found so that later
        // checks (duplicate ids, event targets) see the whole batch; the
        // transaction is rolled back at the end.
        let mut batch = Batch { listed: Some(BTreeSet::new()), ..Batch::default() };
        let mut chunk = Vec::with_capacity(STAGE_CHUNK);
        for (pos, record) in records {
            match record {
                Ok(record) => chunk.push((pos, record)),
                Err(violations) => batch.problems.extend(violations.into_iter().map(|v| (pos, v))),
            }
            if chunk.len() == STAGE_CHUNK {
                self.stage_chunk(&mut tx, writer, version, std::mem::take(&mut chunk), &mut batch).await?;
                self.flush_changed(&mut tx, version, &mut batch).await?;
            }
        }
        self.stage_chunk(&mut tx, writer, version, chunk, &mut batch).await?;
        self.flush_changed(&mut tx, version, &mut batch).await?;
        self.check_event_targets(&mut tx, writer, &mut batch).await?;
        if !batch.denied.is_empty() {
            // Not the writer's to write: every problem of the batch, refused as such.
            tx.rollback().await?;
            let mut all = std::mem::take(&mut batch.denied);
            all.append(&mut batch.problems);
            all.sort_by_key(|(p, _)| *p);
            return Err(StoreError::NotOwner(all));
        }
        if !batch.problems.is_empty() {
            tx.rollback().await?;
            batch.problems.sort_by_key(|(p, _)| *p);
            return Err(StoreError::Rejected(batch.problems));
        }
        let Batch { stored, unchanged, listed, changed_count, .. } = batch;
        let changed_codes = codes(listed.unwrap_or_default())?;
        if stored == 0 || mode == WriteMode::DryRun {
            tx.rollback().await?;
            let (changed_codes, changed_count) = if stored == 0 { (vec![], 0) } else { (changed_codes, changed_count) };
            return Ok(WriteOutcome { data_version: current as u64, created: false, stored, unchanged, changed_codes, changed_count });
        }
        sqlx::query(SET_RECORD_COUNT).bind(stored as i64).bind(version).execute(&mut *tx).await?;
        DB::announce(&mut tx, &version.to_string()).await?;
        // The file may have gone while the batch was written: then nothing is acknowledged.
        if let Err(e) = self.check_file() {
            tx.rollback().await?;
            return Err(e);
        }
        tx.commit().await?;
        self.analyze_after(u64::from(stored)).await;
        Ok(WriteOutcome { data_version: version as u64, created: true, stored, unchanged, changed_codes, changed_count })
    }

    /// The profiles of `codes` (distinct) at one data version, in their
    /// order, in one statement: one round trip for a whole consortium or a
    /// committee's table, and for one code too (no separate version query
    /// unless none of the codes has a record).
    async fn read_profiles(&self, codes: &[CreditCode], at_version: Option<u64>) -> Result<Vec<Profile>, StoreError> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let list = (2..codes.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let bound = match at_version {
            None | Some(0) => i64::MAX,
            Some(v) => i64::try_from(v).unwrap_or(i64::MAX),
        };
        let sql = DB::profiles_sql(&list);
        let mut q = sqlx::query_as::<_, ProfileRow>(&sql).bind(bound);
        for code in codes {
            q = q.bind(code.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let current = match rows.first() {
            Some(row) => row.newest.unwrap_or(0) as u64,
            None => sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&mut *conn).await?.newest.unwrap_or(0) as u64,
        };
        let version = match at_version {
            None | Some(0) => current,
            Some(v) if v > current => return Err(StoreError::FutureVersion { requested: v, current }),
            Some(v) => v,
        };
        let mut by_code: HashMap<String, Vec<RecordRow>> = HashMap::with_capacity(codes.len());
        for row in rows {
            by_code.entry(row.origin).or_default().push(RecordRow {
                record_id: row.record_id,
                version: row.version,
                digest: row.digest,
                body: row.body,
            });
        }
        codes.iter().map(|code| build_profile(code, version, by_code.remove(code.as_str()).unwrap_or_default())).collect()
    }

    async fn read_changes(&self, after: u64, limit: u32) -> Result<Vec<(u64, CreditCode)>, StoreError> {
        let rows: Vec<ChangedCode> = sqlx::query_as(CHANGES_SINCE).bind(after as i64).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|r| CreditCode::try_from(r.credit_code).map(|c| (r.version as u64, c)).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }
}

#[async_trait::async_trait]
impl<DB> CreditStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> Newest: FromRow<'r, DB::Row>,
    for<'r> PreviousVersion: FromRow<'r, DB::Row>,
    for<'r> FirstVersion: FromRow<'r, DB::Row>,
    for<'r> Target: FromRow<'r, DB::Row>,
    for<'r> ChangedCode: FromRow<'r, DB::Row>,
    for<'r> RecordRow: FromRow<'r, DB::Row>,
    for<'r> ProfileRow: FromRow<'r, DB::Row>,
    for<'r> SiblingEvaluation: FromRow<'r, DB::Row>,
    for<'r> StoredPolicy: FromRow<'r, DB::Row>,
    for<'r> super::tenders::TenderRow: FromRow<'r, DB::Row>,
    for<'r> super::tenders::BidCount: FromRow<'r, DB::Row>,
    for<'r> super::tenders::StoredBid: FromRow<'r, DB::Row>,
    for<'r> super::tenders::TenderChange: FromRow<'r, DB::Row>,
    for<'r> super::tenders::GrantRow: FromRow<'r, DB::Row>,
    for<'r> super::tenders::Written: FromRow<'r, DB::Row>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'r> super::log::HashRow: FromRow<'r, DB::Row>,
    for<'r> super::log::LeafRow: FromRow<'r, DB::Row>,
    for<'r> super::log::LeafIndex: FromRow<'r, DB::Row>,
    for<'r> super::log::CheckpointRow: FromRow<'r, DB::Row>,
{
    fn backend_name(&self) -> &'static str {
        <DB as Backend>::NAME
    }

    async fn current_version(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&self.pool).await?.newest.unwrap_or(0) as u64)
    }

    async fn write(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError> {
        self.write_records(writer, records, mode).await
    }

    async fn profiles(&self, codes: &[CreditCode], at_version: Option<u64>) -> Result<Vec<Profile>, StoreError> {
        self.read_profiles(codes, at_version).await
    }

    async fn profile(&self, code: &CreditCode, at_version: Option<u64>) -> Result<Profile, StoreError> {
        let mut profiles = self.read_profiles(std::slice::from_ref(code), at_version).await?;
        Ok(profiles.pop().expect("one profile per code"))
    }

    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<(u64, CreditCode)>, StoreError> {
        self.read_changes(after, limit).await
    }

    async fn put_policy(&self, id: &str, digest: &str, source: &str) -> Result<(), StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Small).await?;
        Tenders::put_policy(tx, id, digest, source).await
    }

    async fn policy_source(&self, digest: &str) -> Result<Option<StoredPolicy>, StoreError> {
        Tenders(&self.pool).policy_source(digest).await
    }

    async fn tender(&self, id: &TenderId, version: Option<u32>) -> Result<Option<Tender>, StoreError> {
        Tenders(&self.pool).tender(id, version).await
    }

    async fn list_tenders(&self) -> Result<Vec<(Tender, u32)>, StoreError> {
        Tenders(&self.pool).list_tenders().await
    }

    async fn insert_tender(&self, t: &Tender) -> Result<Tender, StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Data).await?;
        Tenders(&self.pool).insert_tender(tx, t).await
    }

    async fn register_bid(&self, tender_id: &TenderId, bidder: &Bidder) -> Result<BidRow, StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Data).await?;
        Tenders::<DB>::register_bid(tx, tender_id, bidder).await
    }

    async fn bids(&self, tender_id: &TenderId) -> Result<Vec<BidRow>, StoreError> {
        Tenders(&self.pool).bids(tender_id).await
    }

    async fn tender_change_seq(&self) -> Result<u64, StoreError> {
        Tenders(&self.pool).tender_change_seq().await
    }

    async fn tender_changes_since(&self, after: u64) -> Result<Vec<(u64, TenderId)>, StoreError> {
        Tenders(&self.pool).tender_changes_since(after).await
    }

    async fn wal_checkpoint(&self, mode: super::WalMode) -> Result<Option<super::WalCheckpoint>, StoreError> {
        Ok(DB::wal_checkpoint(&self.pool, mode, self.write_wait).await?)
    }

    /// The file (SQLite): its path, SQLite's descriptors of it, and a read
    /// by a fresh connection; a lost verdict is kept for the writes until a
    /// probe passes again. Then a query through the pool.
    async fn probe(&self) -> Result<(), StoreError> {
        if let Some(file) = &self.file {
            let verdict = match file.check_path().and_then(|()| file.check_descriptors()) {
                Ok(()) => file.check_readable().await,
                lost => lost,
            };
            self.keep_verdict(file, &verdict);
            verdict?;
        }
        let read = sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&self.pool).await.map_err(StoreError::from);
        if let (Some(file), Err(StoreError::Lost(_))) = (&self.file, &read) {
            // Sound to a fresh connection, damaged to a pooled one: it still
            // holds what it read while the file was damaged.
            file.renew_connections();
        }
        read?;
        Ok(())
    }

    fn is_own_file(&self, path: &std::path::Path) -> bool {
        self.file.as_ref().is_some_and(|f| f.is(path))
    }

    async fn insert_grant(&self, grant: &CommitteeGrant, link_sha256: &str) -> Result<(), StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Small).await?;
        Tenders::<DB>::insert_grant(tx, grant, link_sha256).await
    }

    async fn redeem_grant(
        &self,
        link_sha256: &str,
        session_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CommitteeGrant>, StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Small).await?;
        Tenders::<DB>::redeem_grant(tx, link_sha256, session_sha256, now).await
    }

    async fn grant_by_session(&self, session_sha256: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        Tenders(&self.pool).grant_by_session(session_sha256).await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<CommitteeGrant>, StoreError> {
        Tenders(&self.pool).grant(grant_id).await
    }

    async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Small).await?;
        Tenders::<DB>::revoke_grant(tx, grant_id, now).await
    }

    async fn written_by(&self, code: &CreditCode, source: &str) -> Result<bool, StoreError> {
        Tenders(&self.pool).written_by(code.as_str(), source).await
    }

    fn listen(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
        DB::listen(&self.pool, sink)
    }

    async fn log_append(&self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
        let (_turn, tx) = self.turn(WriteKind::Log).await?;
        LogTables::<DB>::append(tx, leaves, || self.check_file()).await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        LogTables(&self.pool).size().await
    }

    async fn log_hashes(&self, indexes: &[u64]) -> Result<crate::tlog::tree::Known, StoreError> {
        LogTables(&self.pool).hashes(indexes).await
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        LogTables(&self.pool).entries(start, end).await
    }

    async fn log_index_of(&self, leaf_hash: &[u8]) -> Result<Option<u64>, StoreError> {
        LogTables(&self.pool).index_of(leaf_hash).await
    }

    async fn put_checkpoint(&self, checkpoint: &super::StoredCheckpoint) -> Result<(), StoreError> {
        // In the writers' queue (FIFO), not in SQLite's busy loop behind a
        // stream of log appends.
        let (_turn, tx) = self.turn(WriteKind::Small).await?;
        LogTables::<DB>::put_checkpoint(tx, checkpoint).await
    }

    async fn checkpoint(&self, size: Option<u64>) -> Result<Option<super::StoredCheckpoint>, StoreError> {
        LogTables(&self.pool).checkpoint(size).await
    }

    async fn checkpoints(&self) -> Result<Vec<super::StoredCheckpoint>, StoreError> {
        LogTables(&self.pool).checkpoints().await
    }

    async fn evaluated_codes(&self, at_version: u64) -> Result<Vec<CreditCode>, StoreError> {
        let bound = i64::try_from(at_version).unwrap_or(i64::MAX);
        let rows: Vec<ChangedCode> = sqlx::query_as(EVALUATED_CODES).bind(bound).fetch_all(&self.pool).await?;
        rows.into_iter().map(|r| CreditCode::try_from(r.credit_code).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }
}
