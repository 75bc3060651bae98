//! What a write stages besides the store's own answers: each record's
//! canonical JSON and digest, worked out off the writer's task
//! ([`prepare`]), and, in a first load into an empty store, what the write
//! itself has staged ([`FirstLoad`]), so that the lookups it makes
//! needless are skipped.

use super::error::StoreError;
use crate::domain::Record;
use std::collections::BTreeSet;

/// A record with what the store keeps of it worked out: its canonical JSON
/// and that JSON's digest, the largest part of a record's staging that needs
/// no store (serde and SHA-256: most of the writer's own CPU in a bulk write).
pub(super) struct Prepared {
    pub(super) pos: u64,
    pub(super) record: Record,
    /// [`Record::canonical_json`].
    pub(super) body: String,
    /// [`crate::domain::records::digest_of`] the body.
    pub(super) digest: String,
}

/// [`Prepared`] records of a chunk, in order.
pub(super) fn prepare(chunk: Vec<(u64, Record)>) -> Vec<Prepared> {
    chunk
        .into_iter()
        .map(|(pos, record)| {
            let body = record.canonical_json();
            let digest = crate::domain::records::digest_of(&body);
            Prepared { pos, record, body, digest }
        })
        .collect()
}

/// The records a blocking thread prepared.
pub(super) async fn prepared(task: tokio::task::JoinHandle<Vec<Prepared>>) -> Result<Vec<Prepared>, StoreError> {
    task.await.map_err(|e| StoreError::Corrupt(format!("preparing records for the store failed: {e}")))
}

/// Fingerprints kept at most by a first load ([`FirstLoad`]): about 20
/// bytes each, so at most ~160 MB however large the file; past it the
/// write looks every id and code up in the store, as any other write does.
const FIRST_LOAD_SEEN: usize = 1 << 23;

/// The ids, and the codes with an evaluation, that a write into an empty
/// store has staged so far, as 64-bit fingerprints. Everything stored is the
/// write's own (the write holds the store's write lock from before it saw
/// the store empty), so an id whose fingerprint is absent is new, and a code
/// whose fingerprint is absent has no evaluation: their lookups, a third of
/// PostgreSQL's work in a bulk load (BENCHMARKS.md, Import), are skipped. A
/// fingerprint shared by two ids only costs the lookup.
pub(super) struct FirstLoad {
    hasher: std::hash::RandomState,
    ids: std::collections::HashSet<u64>,
    codes: std::collections::HashSet<u64>,
    /// [`FIRST_LOAD_SEEN`], but for tests.
    limit: usize,
}

impl Default for FirstLoad {
    fn default() -> Self {
        Self { hasher: Default::default(), ids: Default::default(), codes: Default::default(), limit: FIRST_LOAD_SEEN }
    }
}

impl FirstLoad {
    fn fingerprint(&self, s: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(s)
    }

    /// Whether `id` may have been staged by this write (if `false`, it is new).
    pub(super) fn may_hold_id(&self, id: &str) -> bool {
        self.ids.contains(&self.fingerprint(id))
    }

    /// Whether an evaluation of `code` may have been staged by this write.
    pub(super) fn may_hold_code(&self, code: &str) -> bool {
        self.codes.contains(&self.fingerprint(code))
    }

    /// Notes a staged record; `false` once past [`FIRST_LOAD_SEEN`].
    pub(super) fn note(&mut self, id: &str, evaluated: Option<&str>) -> bool {
        self.ids.insert(self.fingerprint(id));
        if let Some(code) = evaluated {
            self.codes.insert(self.fingerprint(code));
        }
        self.ids.len() + self.codes.len() <= self.limit
    }
}

/// Lookups of a chunk's ids and codes, less those a first load knows are new.
pub(super) fn to_look_up<'a>(
    keys: impl Iterator<Item = &'a str>,
    first_load: Option<&FirstLoad>,
    may_hold: fn(&FirstLoad, &str) -> bool,
) -> Vec<&'a str> {
    keys.filter(|k| first_load.is_none_or(|f| may_hold(f, k))).collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_load_knows_what_it_staged_and_gives_up_past_its_bound() {
        let mut seen = FirstLoad::default();
        assert!(!seen.may_hold_id("e1"), "nothing staged yet");
        assert!(seen.note("e1", Some("91440300MA5XXXXX0X")));
        assert!(seen.note("l1", None));
        assert!(seen.may_hold_id("e1") && seen.may_hold_id("l1") && !seen.may_hold_id("e2"));
        assert!(seen.may_hold_code("91440300MA5XXXXX0X"), "an evaluation's code");
        assert!(!seen.may_hold_code("91440300MA5YYYYY0Y"));
        let look = to_look_up(["e2", "e1", "e1", "l1"].into_iter(), Some(&seen), FirstLoad::may_hold_id);
        assert_eq!(look, ["e1", "l1"], "only what may be staged, each once, in key order");
        assert_eq!(to_look_up(["b", "a"].into_iter(), None, FirstLoad::may_hold_id), ["a", "b"], "without a first load: everything");
        let mut bounded = FirstLoad { limit: 3, ..FirstLoad::default() };
        assert!(bounded.note("a", Some("c1")) && bounded.note("b", None));
        assert!(!bounded.note("c", None), "past the bound the write looks everything up");
    }
}
