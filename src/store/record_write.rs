//! The write path of the records: one data version per write, all or
//! nothing, with every check (types, codes, duplicates, event targets,
//! annual grades, ownership) made in one pass over the batch.

use super::dialect::{NEWEST_VERSION, NewRecord, Newest, in_list, placeholders, sql_impl};
use super::error::StoreError;
use super::sql::{SqlStore, WriteKind};
use super::staging::{FirstLoad, Prepared, prepare, prepared, to_look_up};
use super::types::{CHANGED_CODES_LISTED, RecordSource, WriteMode, WriteOutcome};
use crate::domain::input::FieldError;
use crate::domain::ownership::{Owner, Writer};
use crate::domain::{CreditCode, Evaluation, EvaluationKind, EventKind, Record, RecordType};
use chrono::Utc;
use sqlx::FromRow;
use std::collections::{BTreeSet, HashMap};

/// Records stored after which the planner's statistics are refreshed: a
/// profile read planned on statistics from before a bulk load scans the
/// whole table (PostgreSQL over 30,000 records, EXPLAIN ANALYZE: 8 ms instead
/// of 0.08 ms per profile, until autovacuum's next ANALYZE a minute or more
/// later; cold Assess ran at 169 requests/s).
const ANALYZE_EVERY: u64 = 10_000;

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

const INSERT_VERSION: &str = "INSERT INTO data_versions (version, recorded_at, source, record_count) VALUES ($1, $2, $3, 0)";

/// Followed by an IN list of ids and [`NEWEST_VERSION_OF_ROW`].
const NEWEST_OF_IDS: &str = "SELECT r.record_id, r.version, r.kind, r.digest, r.credit_code FROM records r WHERE r.record_id IN";

/// Keeps only each id's newest version.
const NEWEST_VERSION_OF_ROW: &str = "AND r.version = (SELECT MAX(x.version) FROM records x WHERE x.record_id = r.record_id)";

/// Followed by an IN list of ids: each id's first version and who wrote it.
const FIRST_OF_IDS: &str = "SELECT r.record_id, r.body, d.source FROM records r JOIN data_versions d ON d.version = r.version \
     WHERE r.version = (SELECT MIN(x.version) FROM records x WHERE x.record_id = r.record_id) AND r.record_id IN";

/// A row if the store holds any record.
const ANY_RECORD: &str = "SELECT 1 FROM records LIMIT 1";

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
    /// Whether the backend staged the changed codes, to move into the feed
    /// at the end ([`super::dialect::Backend::stage_changed`]).
    staged: bool,
    stored: u32,
    unchanged: u32,
    /// In a write into a store that held no records when it began, what the
    /// write itself has staged (`None` otherwise, or past the fingerprints it may keep).
    first_load: Option<FirstLoad>,
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

/// A record of the batch.
struct Staged<'a> {
    pos: u64,
    record: &'a Record,
    id: &'a str,
    kind: &'a str,
    code: &'a str,
    digest: &'a str,
}

/// Checks a record whose id is stored, or earlier in the batch, as `p`:
/// `true` for a new version to stage. `false` for a record refused (the
/// problem is noted in `batch`) or unchanged (counted, and queued for its
/// owner check where it needs one).
fn known_id(
    staged: &Staged<'_>,
    p: &PreviousVersion,
    version: i64,
    writer: &Writer,
    batch: &mut Batch,
    versioned: &mut Vec<Versioned>,
) -> bool {
    let Staged { pos, record, id, kind, code, digest } = *staged;
    if p.kind != kind {
        let reason = format!("'{id}' is already the id of a record of type {}, not {kind}", p.kind);
        batch.problems.push((pos, FieldError::new("id", reason)));
        return false;
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
        return false;
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
                batch.events.push(PendingEvent { pos, id: id.to_owned(), target, code: code.to_owned(), event: e.event, versioned: true });
            } else {
                versioned.push(Versioned { pos, id: id.to_owned(), claimed: None, field: Owner::field(record) });
            }
        }
        batch.unchanged += 1;
        return false;
    }
    if p.version == version {
        let reason = format!("'{id}' appears earlier in this batch with different content");
        batch.problems.push((pos, FieldError::new("id", reason)));
        return false;
    }
    batch.changed.insert(p.credit_code.clone());
    // A new version of an id from an earlier data version: whose it is
    // is read below, for the whole chunk at once (events: with their targets).
    if !matches!(record, Record::Event(_)) {
        versioned.push(Versioned { pos, id: id.to_owned(), claimed: Owner::claimed_by(record), field: Owner::field(record) });
    }
    true
}

sql_impl! {
    impl SqlStore<DB>, reading [PreviousVersion, FirstVersion, Target, SiblingEvaluation] {
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
        // Long because: the chunk's few statements and the record-by-record answers they must equal, kept in one place to be read together.
        async fn stage_chunk(
            &self,
            conn: &mut DB::Connection,
            writer: &Writer,
            version: i64,
            chunk: Vec<Prepared>,
            batch: &mut Batch,
        ) -> Result<(), StoreError> {
            let ids = to_look_up(chunk.iter().map(|p| p.record.id().as_str()), batch.first_load.as_ref(), FirstLoad::may_hold_id);
            let mut prev = self.newest_of_ids(conn, &ids).await?;
            let annual = chunk.iter().filter_map(|p| match &p.record {
                Record::Evaluation(e) if e.evaluation_kind == EvaluationKind::Annual => Some(e.credit_code.as_str()),
                _ => None,
            });
            let codes = to_look_up(annual, batch.first_load.as_ref(), FirstLoad::may_hold_code);
            let mut evaluations = self.evaluations_of(conn, &codes).await?;
            let mut rows: Vec<NewRecord> = Vec::with_capacity(chunk.len());
            let mut versioned: Vec<Versioned> = Vec::new();
            for Prepared { pos, record, body, digest } in chunk {
                let record = &record;
                let id = record.id().as_str().to_owned();
                let kind = record.record_type().as_str();
                let code = record.credit_code().as_str().to_owned();
                if let Some(p) = prev.get(&id) {
                    let staged = Staged { pos, record, id: &id, kind, code: &code, digest: &digest };
                    if !known_id(&staged, p, version, writer, batch, &mut versioned) {
                        continue;
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
                if let Some(first) = &mut batch.first_load {
                    let evaluated = matches!(record, Record::Evaluation(_)).then_some(code.as_str());
                    if !first.note(&id, evaluated) {
                        batch.first_load = None;
                    }
                }
                rows.push(NewRecord { id, kind, code: code.clone(), digest, body });
                batch.changed.insert(code);
                batch.stored += 1;
            }
            // In key order: with codes in random order, each insert then lands
            // after the last one in the chunk's pages of the indexes.
            rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
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
        /// never holds them all; a write in bulk mode stages them where the
        /// backend can, for [`Self::move_staged`].
        async fn flush_changed(&self, conn: &mut DB::Connection, version: i64, bulk: bool, batch: &mut Batch) -> Result<(), StoreError> {
            let changed = std::mem::take(&mut batch.changed);
            let list: Vec<&String> = changed.iter().collect();
            let staged = bulk && DB::stage_changed(conn, &list, !batch.staged).await?;
            batch.staged |= staged;
            if !staged {
                for part in list.chunks(STAGE_CHUNK * 2) {
                    let sql = format!("{INSERT_CHANGED_CODES} {} {CHANGED_CODES_ONCE}", placeholders::<DB>(part.len(), 2));
                    let mut q = sqlx::query(&sql);
                    for code in part {
                        q = q.bind(version).bind(code.as_str());
                    }
                    batch.changed_count += DB::rows_affected(&q.execute(&mut *conn).await?);
                }
            }
            if let Some(listed) = &mut batch.listed {
                listed.extend(changed);
                if listed.len() > CHANGED_CODES_LISTED {
                    batch.listed = None;
                }
            }
            Ok(())
        }

        /// Moves the codes staged by [`Self::flush_changed`] into the change feed.
        async fn move_staged(&self, conn: &mut DB::Connection, version: i64, batch: &mut Batch) -> Result<(), StoreError> {
            if let (true, Some(sql)) = (batch.staged, DB::CHANGED_FROM_STAGED) {
                batch.changed_count += DB::rows_affected(&sqlx::query(sql).bind(version).execute(&mut *conn).await?);
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

        /// Stages every record of `records` into data version `version` and
        /// checks the batch. After the first full chunk (a small write keeps
        /// the connection as it is) the connection enters the backend's bulk
        /// mode, and `bulk` keeps what its leaving needs.
        async fn stage_all(
            &self,
            conn: &mut DB::Connection,
            writer: &Writer,
            version: i64,
            records: &mut RecordSource<'_>,
            (entered, bulk): (&mut bool, &mut Option<i64>),
        ) -> Result<Batch, StoreError> {
            // Records keep being inserted after a problem is found so that later
            // checks (duplicate ids, event targets) see the whole batch; the
            // transaction is rolled back at the end.
            let mut batch = Batch { listed: Some(BTreeSet::new()), ..Batch::default() };
            let mut chunk = Vec::with_capacity(STAGE_CHUNK);
            // Each full chunk is prepared on a blocking thread while the one
            // before it is staged, so that the store (a server, or SQLite's
            // worker) and this writer work at once instead of in turn.
            let mut pending: Option<tokio::task::JoinHandle<Vec<Prepared>>> = None;
            for (pos, record) in records {
                match record {
                    Ok(record) => chunk.push((pos, record)),
                    Err(violations) => batch.problems.extend(violations.into_iter().map(|v| (pos, v))),
                }
                if chunk.len() == STAGE_CHUNK {
                    if !*entered {
                        *entered = true;
                        *bulk = DB::enter_bulk(conn).await?;
                        // Only a write of more than a chunk asks (a small one saves the
                        // round trip). Nothing of this write is staged yet, and under the
                        // write lock every record from here to the commit is this write's.
                        batch.first_load = sqlx::query(ANY_RECORD).fetch_optional(&mut *conn).await?.is_none().then(FirstLoad::default);
                    }
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(STAGE_CHUNK));
                    if let Some(previous) = pending.replace(tokio::task::spawn_blocking(move || prepare(full))) {
                        self.stage_chunk(conn, writer, version, prepared(previous).await?, &mut batch).await?;
                        self.flush_changed(conn, version, true, &mut batch).await?;
                    }
                }
            }
            if let Some(previous) = pending {
                self.stage_chunk(conn, writer, version, prepared(previous).await?, &mut batch).await?;
                self.flush_changed(conn, version, true, &mut batch).await?;
            }
            self.stage_chunk(conn, writer, version, prepare(chunk), &mut batch).await?;
            self.flush_changed(conn, version, *entered, &mut batch).await?;
            self.move_staged(conn, version, &mut batch).await?;
            self.check_event_targets(conn, writer, &mut batch).await?;
            Ok(batch)
        }

        pub(super) async fn write_records(&self, writer: &Writer, records: &mut RecordSource<'_>, mode: WriteMode) -> Result<WriteOutcome, StoreError> {
            let source = writer.source();
            let (_turn, mut tx) = self.turn(WriteKind::Data).await?;
            let current = sqlx::query_as::<_, Newest>(NEWEST_VERSION).fetch_one(&mut *tx).await?.newest.unwrap_or(0);
            let version = current + 1;
            sqlx::query(INSERT_VERSION).bind(version).bind(Utc::now()).bind(source).execute(&mut *tx).await?;
            let (mut entered, mut bulk) = (false, None);
            let staged = self.stage_all(&mut tx, writer, version, records, (&mut entered, &mut bulk)).await;
            if let Some(before) = bulk {
                // The connection serves later small writes: its cache goes back
                // (the dirty pages stay until the commit writes them).
                DB::leave_bulk(&mut tx, before).await?;
            }
            let mut batch = staged?;
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
    }
}
