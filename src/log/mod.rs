//! The transparency log: every statement the service signs becomes a leaf
//! of one append-only Merkle tree (RFC 6962 / 9162) kept in the credit store,
//! with signed checkpoints (C2SP tlog-checkpoint as a C2SP signed note).
//!
//! - **Leaves.** A leaf is the DSSE envelope as compact JSON with its keys in
//!   the order `payload`, `payloadType`, `signatures` (and `keyid`, `sig` in
//!   each signature), base64 as in the answer ([`leaf`]), so anyone holding an
//!   answer can rebuild the leaf byte for byte and hash it.
//! - **Group commit.** Requests hand their leaf to one sequencer task per
//!   replica; it appends whatever has queued in one transaction under the
//!   log's lock in the store, and answers each request with its index once
//!   that transaction committed. An answer is never returned before its leaf
//!   is durable.
//! - **Replicas.** Every replica appends under the same lock in the store
//!   (PostgreSQL `LOCK TABLE … EXCLUSIVE`, SQLite's write lock) and reads the
//!   tree's end inside it, so there is one order, no gap and no index taken
//!   twice; there is no lease to lose, hence no way to fork the tree.
//! - **Checkpoints.** A publisher task signs a checkpoint of the newest size
//!   every `checkpoint_interval` while the tree grows, and keeps each one.

use crate::metrics::Metrics;
use crate::proto::v1 as pb;
use crate::signing::SharedKeyring;
use crate::store::{Store, StoreError, StoredCheckpoint};
use crate::tlog::note;
use crate::tlog::tree::{self, Hash, TreeError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Leaves appended in one transaction at most.
const MAX_BATCH: usize = 512;

/// How often a wait for a checkpoint looks at the store for one another
/// replica published.
const STORE_LOOK: Duration = Duration::from_millis(200);

/// Times the sequencer yields to other tasks before it closes a batch.
const BATCH_YIELDS: usize = 4;

/// The leaf of an envelope: compact DSSE JSON, keys in a fixed order.
pub fn leaf(envelope: &pb::Envelope) -> Vec<u8> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    #[derive(serde::Serialize)]
    struct Sig<'a> {
        keyid: &'a str,
        sig: String,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Leaf<'a> {
        payload: String,
        payload_type: &'a str,
        signatures: Vec<Sig<'a>>,
    }
    let leaf = Leaf {
        payload: B64.encode(&envelope.payload),
        payload_type: &envelope.payload_type,
        signatures: envelope.signatures.iter().map(|s| Sig { keyid: &s.keyid, sig: B64.encode(&s.sig) }).collect(),
    };
    serde_json::to_vec(&leaf).expect("a leaf serialises")
}

/// The envelope a leaf holds (for audit and recompute).
pub fn envelope_of_leaf(leaf: &[u8]) -> Result<pb::Envelope, String> {
    serde_json::from_slice(leaf).map_err(|e| format!("not a DSSE envelope: {e}"))
}

/// The body of a checkpoint (C2SP tlog-checkpoint): origin, size, base64 root.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", tree::hash_b64(root))
}

/// A parsed, verified checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCheckpoint {
    /// The log's origin line (its name, as the key names it).
    pub origin: String,
    /// The tree size: how many leaves the checkpoint commits to.
    pub size: u64,
    /// The RFC 9162 root hash of the first `size` leaves.
    pub root: Hash,
}

/// Parses a signed checkpoint and verifies its signature by `key`.
pub fn verify_checkpoint(signed: &str, key: &note::NoteKey) -> Result<VerifiedCheckpoint, String> {
    let text = note::verify(signed, key).map_err(|e| e.to_string())?;
    let c =
        tlog_tiles::Checkpoint::from_bytes(text.as_bytes()).map_err(|_| "not a C2SP checkpoint (origin, size, root hash)".to_owned())?;
    if c.origin() != key.name {
        return Err(format!("the checkpoint's origin '{}' is not the key's name '{}'", c.origin(), key.name));
    }
    Ok(VerifiedCheckpoint { origin: c.origin().to_owned(), size: c.size(), root: *c.hash() })
}

/// Whether `signed` has the form of a signed checkpoint (a C2SP checkpoint
/// text, a blank line, signature lines), before any key is tried: why not.
pub fn checkpoint_form(signed: &str) -> Result<(), String> {
    let (text, signatures) = note::split(signed).map_err(|e| match e {
        note::NoteError::Malformed(why) => why,
        other => other.to_string(),
    })?;
    if signatures.is_empty() {
        return Err("it has no signature line".into());
    }
    tlog_tiles::Checkpoint::from_bytes(text.as_bytes())
        .map_err(|_| "its text is not a C2SP checkpoint (origin, size, root hash)".to_owned())?;
    Ok(())
}

/// The origin line of a signed checkpoint, before anything is verified.
pub fn checkpoint_origin(signed: &str) -> Option<&str> {
    signed.lines().next().filter(|l| !l.is_empty())
}

/// Why a log request failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed (unreachable, or a query error).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An index or size past the tree asked for (a proof, entries): why.
    #[error("{0}")]
    OutOfRange(String),
    /// The sequencer could not make the leaf durable: the answer must not go out.
    #[error("the transparency log could not record the statement: {0}")]
    Append(String),
    /// No active key with `role = "log"` to sign checkpoints with.
    #[error("the log has no signing key: add a key with role = \"log\" and status = \"active\" to the keys file")]
    NoKey,
}

impl From<TreeError> for LogError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::OutOfRange(why) => LogError::OutOfRange(why),
            other => LogError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

struct Pending {
    leaf: Vec<u8>,
    done: oneshot::Sender<Result<u64, String>>,
}

/// One replica's handle on the log.
pub struct Log {
    store: Store,
    origin: String,
    keys: SharedKeyring,
    queue: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
    /// The newest size this replica published a checkpoint at: what a
    /// supervision draw waits on for its seed ([`Log::first_checkpoint_after`]).
    published: tokio::sync::watch::Sender<u64>,
}

impl Log {
    /// Starts the sequencer; returns the log and the task to run it (ends
    /// when the last handle is dropped).
    pub fn new(
        store: Store,
        origin: String,
        keys: SharedKeyring,
        metrics: Arc<Metrics>,
    ) -> (Arc<Log>, impl std::future::Future<Output = ()>) {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let published = tokio::sync::watch::Sender::new(0);
        let log = Arc::new(Log { store: store.clone(), origin, keys, queue, metrics: metrics.clone(), published });
        (log, sequence(store, rx, metrics))
    }

    /// The log's origin line, the first line of every checkpoint.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Appends a leaf; its index once it is committed.
    pub async fn append(&self, leaf: Vec<u8>) -> Result<u64, LogError> {
        let (done, answer) = oneshot::channel();
        self.queue.send(Pending { leaf, done }).await.map_err(|_| LogError::Append("the log is shutting down".into()))?;
        answer.await.map_err(|_| LogError::Append("the log is shutting down".into()))?.map_err(LogError::Append)
    }

    /// Publishes a checkpoint of the newest size if the tree grew past
    /// `after`; returns the newest published size.
    pub async fn publish(&self, after: u64) -> Result<u64, LogError> {
        let size = self.store.log_size().await?;
        if size <= after {
            return Ok(after);
        }
        let root = tree::root(size, &self.store.log_hashes(&tree::root_reads(size)).await?)?;
        let keys = self.keys.get();
        let (pair, _) = keys.log_signer().ok_or(LogError::NoKey)?;
        let note =
            note::sign(&checkpoint_text(&self.origin, size, &root), &self.origin, pair).map_err(|e| LogError::Append(e.to_string()))?;
        self.store.put_checkpoint(&StoredCheckpoint { size, root: root.0.to_vec(), note }).await?;
        self.metrics.checkpoint(size);
        self.published.send_replace(size);
        tracing::debug!(size, "checkpoint published");
        Ok(size)
    }

    /// The first checkpoint published after leaf `index` was appended: the
    /// stored checkpoint of the smallest size above `index`. Its root hashes
    /// that leaf, so nobody could know it when the leaf was written. Waits
    /// for this replica's publisher (every `checkpoint_interval` while the
    /// tree grows) for at most `bound`.
    pub async fn first_checkpoint_after(&self, index: u64, bound: Duration) -> Result<StoredCheckpoint, LogError> {
        let mut published = self.published.subscribe();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let first = self.store.checkpoints().await?.into_iter().filter(|c| c.size > index).min_by_key(|c| c.size);
            if let Some(c) = first {
                return Ok(c);
            }
            // Another replica may publish it: look at the store again at
            // least every STORE_LOOK, not only when this replica publishes.
            let look = deadline.min(tokio::time::Instant::now() + STORE_LOOK);
            match tokio::time::timeout_at(look, published.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(LogError::Append("the log is shutting down".into())),
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => {
                    return Err(LogError::Append(format!(
                        "no checkpoint covering leaf {index} was published within {} ms",
                        bound.as_millis()
                    )));
                }
            }
        }
    }

    /// The checkpoint of the empty tree (RFC 6962 §2.1: its root is the
    /// SHA-256 of the empty string), signed now. C2SP tlog-checkpoint allows
    /// size 0, and an auditor of a new deployment starts from it. Ed25519
    /// signatures are deterministic: every replica signs the same bytes.
    pub fn empty_checkpoint(&self) -> Result<StoredCheckpoint, LogError> {
        let root = tree::root(0, &tree::Known::default())?;
        let keys = self.keys.get();
        let (pair, _) = keys.log_signer().ok_or(LogError::NoKey)?;
        let note = note::sign(&checkpoint_text(&self.origin, 0, &root), &self.origin, pair).map_err(|e| LogError::Append(e.to_string()))?;
        Ok(StoredCheckpoint { size: 0, root: root.0.to_vec(), note })
    }

    /// Publishes checkpoints every `interval` while the tree grows, until
    /// dropped; first the empty tree's, if no checkpoint was ever published.
    pub async fn publish_every(self: Arc<Self>, interval: Duration) {
        let mut published = match self.store.checkpoint(None).await {
            Ok(Some(c)) => c.size,
            Ok(None) => {
                let kept = match self.empty_checkpoint() {
                    Ok(empty) => self.store.put_checkpoint(&empty).await.map_err(LogError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = kept {
                    tracing::warn!(error = %e, "could not publish the empty tree's checkpoint");
                }
                0
            }
            Err(_) => 0,
        };
        if published > 0 {
            self.metrics.checkpoint(published);
            tracing::debug!(size = published, "checkpoint published before this start");
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.publish(published).await {
                Ok(size) => published = size,
                Err(e) => tracing::warn!(error = %e, "could not publish a checkpoint; retrying"),
            }
        }
    }

    /// The newest checkpoint, or the one of `size`. Before any is kept, the
    /// newest is the empty tree's (a true prefix of any tree this log grows).
    pub async fn checkpoint(&self, size: Option<u64>) -> Result<StoredCheckpoint, LogError> {
        match (self.store.checkpoint(size).await?, size) {
            (Some(c), _) => Ok(c),
            (None, None | Some(0)) => self.empty_checkpoint(),
            (None, Some(n)) => Err(LogError::OutOfRange(format!("no checkpoint was published at tree size {n}"))),
        }
    }

    /// The tree size to answer for: `requested`, or the newest checkpoint's;
    /// never beyond the newest checkpoint. The log shows no tree state past
    /// what it has signed: a proof or an entry of a larger tree would let a
    /// caller compute the next checkpoint's root before it is published,
    /// and that root is an inspection draw's seed (`crate::supervision`).
    pub async fn size_for(&self, requested: u64) -> Result<u64, LogError> {
        let newest = self.checkpoint(None).await?.size;
        if requested == 0 {
            return Ok(newest);
        }
        if requested > newest {
            return Err(LogError::OutOfRange(format!(
                "tree_size {requested} is beyond the newest signed checkpoint ({newest} leaves): the log answers only for trees it \
                 has signed; a checkpoint is published every checkpoint interval while the tree grows, ask again after the next"
            )));
        }
        Ok(requested)
    }

    /// The newest signed checkpoint's size: how far entries and proofs go.
    pub async fn published_size(&self) -> Result<u64, LogError> {
        Ok(self.checkpoint(None).await?.size)
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of `size`
    /// leaves: the sibling hashes, leaf to root. OutOfRange unless `index < size <= stored`.
    pub async fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let known = self.store.log_hashes(&tree::inclusion_reads(index, size)?).await?;
        Ok(tree::inclusion(index, size, &known)?)
    }

    /// The RFC 9162 consistency proof from the tree of `old` leaves to the
    /// tree of `new`. OutOfRange unless `old <= new <= stored`.
    pub async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        let known = self.store.log_hashes(&tree::consistency_reads(old, new)?).await?;
        Ok(tree::consistency(old, new, &known)?)
    }

    /// The index of the leaf whose RFC 9162 leaf hash is `leaf_hash`, if logged.
    pub async fn index_of(&self, leaf_hash: &[u8]) -> Result<Option<u64>, LogError> {
        Ok(self.store.log_index_of(leaf_hash).await?)
    }

    /// The leaves (each a DSSE envelope's bytes) at indexes `start..end`.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        Ok(self.store.log_entries(start, end).await?)
    }

    /// A C2SP tlog-tiles resource under `/log/`: `tile/<L>/<N>[.p/<W>]` (hashes)
    /// or `tile/entries/<N>[.p/<W>]` (entry bundle), within the newest
    /// checkpoint's tree.
    pub async fn tile(&self, path: &str) -> Result<Vec<u8>, LogError> {
        let (tile, entries) = parse_tile(path)
            .ok_or_else(|| LogError::OutOfRange(format!("'{}' is not a tile of this log", crate::domain::text::shown(path))))?;
        let size = self.checkpoint(None).await?.size;
        let width = u64::from(tile.width());
        // The tile's last hash must be in the tree: at level l, a tree of
        // `size` leaves has size >> (8 * l) complete nodes.
        let level_nodes = size.checked_shr(8 * u32::from(tile.level())).unwrap_or(0);
        let beyond = || LogError::OutOfRange(format!("'{path}' is beyond the tree of {size} leaves"));
        let start = tile.level_index().checked_mul(256).ok_or_else(beyond)?;
        if start.checked_add(width).is_none_or(|end| end > level_nodes) {
            return Err(LogError::OutOfRange(format!("'{path}' is beyond the tree of {size} leaves")));
        }
        if entries {
            let leaves = self.store.log_entries(start, start + width).await?;
            let mut out = Vec::new();
            for leaf in leaves {
                let len = u16::try_from(leaf.len()).map_err(|_| LogError::Store(StoreError::Corrupt("a leaf over 64 KiB".into())))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&leaf);
            }
            return Ok(out);
        }
        let recorder = tree::Recorder::default();
        let _ = tile.read_data(&recorder);
        let known = self.store.log_hashes(&recorder.indexes()).await?;
        tile.read_data(&known).map_err(|e| LogError::Store(StoreError::Corrupt(e.to_string())))
    }
}

/// Tiles are 2^8 hashes wide (C2SP tlog-tiles).
const TILE_HEIGHT: u8 = 8;

/// Levels of hash tiles that a tree of at most 2^64 leaves can have.
const TILE_LEVELS: u8 = 8;

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (C2SP
/// tlog-tiles: N in groups of three digits, all but the last prefixed `x`;
/// W from 1 to 255) into a tile and whether it is an entry bundle; `None`
/// for anything else. Checked here, whole, before `tlog_tiles` sees it:
/// its `Tile::from_path` panics on a width of 0 and its reads overflow past
/// level 31 (`tile/0/000.p/0`, `tile/64/000`, `tile/entries/000.p/0`).
fn parse_tile(path: &str) -> Option<(tlog_tiles::Tile, bool)> {
    let rest = path.strip_prefix("tile/")?;
    let (level, rest) = rest.split_once('/')?;
    let (level, entries) = match level {
        "entries" => (0, true),
        l if !l.is_empty() && l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()) && (l == "0" || !l.starts_with('0')) => {
            (l.parse::<u8>().ok().filter(|l| *l < TILE_LEVELS)?, false)
        }
        _ => return None,
    };
    let (index, width) = match rest.split_once(".p/") {
        Some((n, w)) => {
            let width = (!w.is_empty() && w.len() <= 3 && !w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit()))
                .then(|| w.parse::<u32>().ok())
                .flatten()
                .filter(|w| (1..1 << TILE_HEIGHT).contains(w))?;
            (n, width)
        }
        None => (rest, 1 << TILE_HEIGHT),
    };
    let groups: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() { g.strip_prefix('x')? } else { g };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    let tile = tlog_tiles::Tile::new(TILE_HEIGHT, level, n, width, entries);
    // The canonical spelling only (no leading `x000/`): one path per tile.
    let canonical = tile.path();
    let expected = if entries { format!("tile/{TILE_HEIGHT}/data/{index}") } else { format!("tile/{TILE_HEIGHT}/{level}/{index}") };
    (canonical.split(".p/").next() == Some(expected.as_str())).then_some((tile, entries))
}

/// The sequencer: appends whatever has queued as one batch, then answers.
async fn sequence(store: Store, mut rx: mpsc::Receiver<Pending>, metrics: Arc<Metrics>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Let requests that are ready to run hand in their leaves too: one
        // transaction (a handful of round trips to the store and one fsync)
        // then carries more statements.
        for _ in 0..BATCH_YIELDS {
            tokio::task::yield_now().await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let leaves: Vec<Vec<u8>> = batch.iter_mut().map(|p| std::mem::take(&mut p.leaf)).collect();
        let started = std::time::Instant::now();
        let appended = store.log_append(&leaves).await;
        metrics.store_query("log_append", started.elapsed());
        match appended {
            Ok(first) => {
                metrics.logged(leaves.len() as u64);
                for (i, p) in batch.into_iter().enumerate() {
                    let _ = p.done.send(Ok(first + i as u64));
                }
            }
            Err(e) => {
                if matches!(e, StoreError::Queued(_)) {
                    metrics.denied("write_queue");
                }
                tracing::error!(error = %e, leaves = leaves.len(), "the transparency log could not append; the statements are refused");
                let why = e.to_string();
                for p in batch {
                    let _ = p.done.send(Err(why.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_compact_dsse_json_in_the_documented_key_order() {
        let env = pb::Envelope {
            payload_type: "application/vnd.credit-tender.assessment.v1+json".into(),
            payload: b"{\"a\":1}".to_vec().into(),
            signatures: vec![pb::Signature { keyid: "ab12".into(), sig: vec![1, 2, 3].into() }],
        };
        let leaf = leaf(&env);
        assert_eq!(
            String::from_utf8(leaf.clone()).unwrap(),
            r#"{"payload":"eyJhIjoxfQ==","payloadType":"application/vnd.credit-tender.assessment.v1+json","signatures":[{"keyid":"ab12","sig":"AQID"}]}"#
        );
        assert_eq!(envelope_of_leaf(&leaf).unwrap(), env);
    }

    #[test]
    fn tile_paths_are_parsed_whole_and_never_panic() {
        let ok = |p: &str| parse_tile(p).map(|(t, e)| (t.level(), t.level_index(), t.width(), e));
        assert_eq!(ok("tile/0/000"), Some((0, 0, 256, false)));
        assert_eq!(ok("tile/1/x001/234.p/7"), Some((1, 1234, 7, false)));
        assert_eq!(ok("tile/entries/000.p/255"), Some((0, 0, 255, true)));
        for bad in [
            "tile/0/000.p/0",
            "tile/64/000",
            "tile/entries/000.p/0",
            "tile/8/000",
            "tile/0/000.p/256",
            "tile/0/x000/001",
            "tile/0/1",
            "tile/0/0001",
            "tile/00/000",
            "tile/0/000.p/07",
            "tile/0/000.p/",
            "tile/0/",
            "tile/entries/",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            "tile/data/000",
            "tile/-1/000",
            "tile/0/000/",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_checkpoint_signs_and_verifies_and_names_its_origin() {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&crate::signing::generate_pkcs8()).unwrap();
        use ring::signature::KeyPair;
        let root = tree::leaf_hash(b"x");
        let signed = note::sign(&checkpoint_text("example.com/log", 7, &root), "example.com/log", &pair).unwrap();
        let key = note::NoteKey { name: "example.com/log".into(), public_key: pair.public_key().as_ref().to_vec() };
        assert_eq!(verify_checkpoint(&signed, &key).unwrap(), VerifiedCheckpoint { origin: "example.com/log".into(), size: 7, root });
        let other = note::NoteKey { name: "other/log".into(), ..key };
        assert!(verify_checkpoint(&signed, &other).is_err());
    }
}
