//! The fast path: moka caches of profiles and signed statements in front of
//! the store, kept fresh by following the store's change feed.
//!
//! Freshness is by data version, never by TTL alone. A follower task reads
//! `changed_codes` after the newest version this replica has applied, evicts
//! those codes, and records each change in a bounded window. It is woken by
//! this process's own writes, by PostgreSQL NOTIFY, and by a poll interval as
//! a backstop, so a lost notification only delays an invalidation.
//!
//! Writes that change what is cached go through the cache too (`write.rs`):
//! each returns once this replica has applied it.
//!
//! A profile load that was in flight while its code changed can still land in
//! moka after the eviction (moka cannot know); every entry therefore carries
//! the version it was read at, and a hit is only used when the change window
//! shows no change to that code since.

use crate::clock::Clock;
use crate::domain::profile::Profile;
use crate::domain::{CreditCode, Tender, TenderId};
use crate::metrics::Metrics;
use crate::store::{BidRow, ChangeSink, Store, StoreError};

mod config;
mod window;
mod write;
pub use config::{CHANGE_WINDOW, CacheConfig, DEFAULT_CACHE_BYTES, DEFAULT_MAX_STALENESS, DEFAULT_POLL_INTERVAL};
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use window::ChangeWindow;

/// A profile and the data version it was read at.
#[derive(Debug)]
pub struct CachedProfile {
    /// The profile as read.
    pub profile: Profile,
    /// The data version it was read at; a hit is used only when no change
    /// to its code is known since.
    pub read_at: u64,
    weight: u32,
}

/// A tender's newest version and its bids, as read at a tender change sequence.
#[derive(Debug)]
pub struct CachedTender {
    /// The tender's newest version.
    pub tender: Tender,
    /// Its bids, by sequence.
    pub bids: Vec<BidRow>,
    read_at: u64,
}

impl CachedTender {
    /// An entry as the cache keeps it, read at tender change `read_at`.
    pub fn new(tender: Tender, bids: Vec<BidRow>, read_at: u64) -> CachedTender {
        CachedTender { tender, bids, read_at }
    }
}

/// Every tender's newest version with its bid count.
pub type TenderList = Arc<Vec<(Tender, u32)>>;

/// What one catch-up found changed, for whoever keeps statements ready
/// (`crate::refresh`).
#[derive(Debug, Default, Clone)]
pub struct Changed {
    /// Credit codes whose records changed.
    pub codes: Vec<CreditCode>,
    /// Tenders registered, amended or bid on (the tender change feed).
    pub tenders: Vec<TenderId>,
}

/// Why the cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The store failed a read the cache could not answer from memory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A load shared by concurrent requests failed (one error, many waiters).
    #[error(transparent)]
    SharedLoad(Arc<StoreError>),
    /// The store has not been reached for longer than `max_staleness`:
    /// (time since it was last reached, the bound).
    #[error("the credit store has not been reachable for {} s, longer than the {} s this replica may serve cached data", .0.as_secs(), .1.as_secs())]
    TooStale(Duration, Duration),
}

/// Profiles and statements for one replica.
pub struct CreditCache<S: Clone + Send + Sync + 'static> {
    store: Store,
    config: CacheConfig,
    metrics: Arc<Metrics>,
    profiles: Cache<CreditCode, Arc<CachedProfile>, Hasher>,
    statements: Cache<String, Arc<S>, Hasher>,
    tenders: Cache<TenderId, Arc<CachedTender>, Hasher>,
    /// Newest tender change applied, and the last change of each tender.
    applied_tender_seq: AtomicU64,
    tender_changes: RwLock<HashMap<TenderId, u64>>,
    /// Every tender with its bid count, as read at a tender change sequence:
    /// the committee's list page, valid until the next tender change.
    tender_list: Mutex<Option<(u64, TenderList)>>,
    /// Newest data version whose changes this replica has applied.
    applied: AtomicU64,
    /// The same, for whoever wants to await a version (tests, tools).
    applied_watch: tokio::sync::watch::Sender<u64>,
    /// When the store last answered the follower (read from the config's clock).
    confirmed_at: Mutex<Instant>,
    window: RwLock<ChangeWindow>,
    /// Set when the change notifications may have been missed: the next
    /// request catches up from the change table before it is served.
    must_catch_up: AtomicBool,
    /// One catch-up at a time; concurrent callers wait for it.
    catching_up: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    /// Where changes are told, if anyone listens (bounded: when it is full
    /// the change is not told, and only its readiness is lost).
    changes_out: std::sync::OnceLock<tokio::sync::mpsc::Sender<Changed>>,
}

/// The caches' hasher: foldhash rather than SipHash (a statement's key is
/// some 200 bytes, hashed on every lookup; SipHash was 4% of the new-statement
/// path's CPU). Seeded per process, so keys cannot be chosen to collide.
pub type Hasher = foldhash::quality::RandomState;

/// What moka itself holds per entry beyond key and value: the entry and its
/// metadata, two deque nodes, the hash table slot and allocator rounding.
/// Measured, not derived: with it, RSS under 200,000 distinct bidders stays
/// within the configured bound plus a constant (tests/api/cache.rs).
pub const ENTRY_OVERHEAD: usize = 512;

/// Bytes a cached profile holds: the struct, its code, and each record in
/// both its parsed form and strings (about twice its canonical JSON).
fn profile_weight(p: &Profile) -> u32 {
    let records = p.records.iter().chain(&p.events).chain(p.history.iter().map(|h| &h.stored));
    let bytes: usize = records.map(|s| 2 * s.record.canonical_json().len() + s.digest.len() + 128).sum();
    let fixed = ENTRY_OVERHEAD + std::mem::size_of::<CachedProfile>() + 2 * p.credit_code.as_str().len();
    (bytes + fixed).min(u32::MAX as usize) as u32
}

impl<S: Clone + Send + Sync + 'static> CreditCache<S> {
    /// Builds the caches; `statement_weight` sizes a cached statement in bytes.
    pub async fn new(
        store: Store,
        config: CacheConfig,
        metrics: Arc<Metrics>,
        statement_weight: fn(&S) -> u32,
    ) -> Result<Arc<Self>, StoreError> {
        let m = metrics.clone();
        let profiles = Cache::builder()
            .max_capacity(config.profile_bytes)
            .weigher(|_: &CreditCode, v: &Arc<CachedProfile>| v.weight)
            .time_to_live(config.ttl)
            .eviction_listener(move |_, _, cause| {
                if cause.was_evicted() {
                    m.cache("profile", "eviction");
                }
            })
            .build_with_hasher(Hasher::default());
        let m = metrics.clone();
        let statements = Cache::builder()
            .max_capacity(config.statement_bytes)
            .weigher(move |k: &String, v: &Arc<S>| {
                let fixed = ENTRY_OVERHEAD + std::mem::size_of::<S>() + k.capacity();
                statement_weight(v).saturating_add(fixed as u32)
            })
            .time_to_live(config.ttl)
            .eviction_listener(move |_, _, cause| {
                if cause.was_evicted() {
                    m.cache("statement", "eviction");
                }
            })
            .build_with_hasher(Hasher::default());
        let tenders = Cache::builder().max_capacity(100_000).time_to_live(config.ttl).build_with_hasher(Hasher::default());
        let start = Instant::now();
        let applied = store.current_version().await?;
        let tender_seq = store.tender_change_seq().await?;
        let change_window = config.change_window;
        let confirmed_at = config.clock.instant();
        metrics.store_query("current_version", start.elapsed());
        Ok(Arc::new(CreditCache {
            store,
            config,
            metrics,
            profiles,
            statements,
            tenders,
            applied_tender_seq: AtomicU64::new(tender_seq),
            tender_changes: RwLock::new(HashMap::new()),
            tender_list: Mutex::new(None),
            applied: AtomicU64::new(applied),
            applied_watch: tokio::sync::watch::Sender::new(applied),
            confirmed_at: Mutex::new(confirmed_at),
            window: RwLock::new(ChangeWindow::new(applied, change_window)),
            must_catch_up: AtomicBool::new(false),
            catching_up: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            changes_out: std::sync::OnceLock::new(),
        }))
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The time this replica reads (the config's [`Clock`]).
    pub fn clock(&self) -> &Clock {
        &self.config.clock
    }

    /// Whether the caches are on (`false` with `--no-cache`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The store behind the caches. A write that changes cached data goes
    /// through the cache's own write methods instead, which return once
    /// this replica has applied it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server's metrics, which the cache counts hits, misses and evictions in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The data version requests are answered at, after any pending catch-up.
    /// Errors once cached data is older than the freshness bound.
    pub async fn data_version(&self) -> Result<u64, CacheError> {
        if !self.config.enabled {
            let start = Instant::now();
            let v = self.store.current_version().await?;
            self.metrics.store_query("current_version", start.elapsed());
            return Ok(v);
        }
        let age = self.config.clock.since(*self.confirmed_at.lock().expect("clock lock"));
        if (self.must_catch_up.load(Ordering::Acquire) || age > self.config.max_staleness)
            && let Err(e) = self.catch_up().await
        {
            // The store is down: cached data may serve within the bound.
            if age > self.config.max_staleness {
                return Err(CacheError::TooStale(age, self.config.max_staleness));
            }
            tracing::warn!(error = %e, "store unreachable; serving cached data within the freshness bound");
        }
        Ok(self.applied.load(Ordering::Acquire))
    }

    /// How long ago the store last confirmed the applied version, when that
    /// is longer than two poll intervals (the statement then says so).
    pub fn unconfirmed_for(&self) -> Option<Duration> {
        let age = self.config.clock.since(*self.confirmed_at.lock().expect("clock lock"));
        (self.config.enabled && age > self.config.poll_interval * 2).then_some(age)
    }

    /// One code's profile as of data version `at` (from [`Self::data_version`]).
    pub async fn profile(&self, code: &CreditCode, at: u64) -> Result<Arc<CachedProfile>, CacheError> {
        if !self.config.enabled {
            return Ok(Arc::new(self.load(code, at).await?));
        }
        if let Some(entry) = self.profiles.get(code).await {
            if !self.window.read().expect("window lock").changed_since(code, entry.read_at) {
                self.metrics.cache("profile", "hit");
                return Ok(entry);
            }
            self.profiles.invalidate(code).await;
        }
        self.metrics.cache("profile", "miss");
        loop {
            let entry = self
                .profiles
                .try_get_with(code.clone(), async {
                    let version = self.applied.load(Ordering::Acquire).max(at);
                    self.load(code, version).await.map(Arc::new)
                })
                .await
                .map_err(|e: Arc<StoreError>| match Arc::try_unwrap(e) {
                    Ok(e) => CacheError::Store(e),
                    Err(shared) => CacheError::SharedLoad(shared),
                })?;
            if !self.window.read().expect("window lock").changed_since(code, entry.read_at) {
                return Ok(entry);
            }
            // Changed while it loaded: drop it and read again.
            self.profiles.invalidate(code).await;
        }
    }

    /// Loads the profiles of those of `codes` not cached (or stale) in one
    /// store round trip, so that the [`Self::profile`] calls that follow hit:
    /// a consortium's members, a committee table's bidders.
    pub async fn prefetch(&self, codes: &[&CreditCode], at: u64) -> Result<(), CacheError> {
        if !self.config.enabled {
            return Ok(());
        }
        let mut missing: Vec<CreditCode> = Vec::new();
        for &code in codes {
            if missing.contains(code) {
                continue;
            }
            let fresh = match self.profiles.get(code).await {
                Some(entry) => !self.window.read().expect("window lock").changed_since(code, entry.read_at),
                None => false,
            };
            if !fresh {
                missing.push(code.clone());
            }
        }
        if missing.len() < 2 {
            // One code: the single-flight load of `profile` does as well.
            return Ok(());
        }
        let version = self.applied.load(Ordering::Acquire).max(at);
        let start = Instant::now();
        let profiles = self.store.profiles(&missing, Some(version)).await?;
        self.metrics.store_query("profiles", start.elapsed());
        for profile in profiles {
            let code = profile.credit_code.clone();
            let entry = Arc::new(self.loaded(profile));
            // Changed while it loaded: leave it to be read again when asked.
            if !self.window.read().expect("window lock").changed_since(&code, entry.read_at) {
                self.profiles.insert(code, entry).await;
            }
        }
        Ok(())
    }

    async fn load(&self, code: &CreditCode, version: u64) -> Result<CachedProfile, StoreError> {
        let start = Instant::now();
        let profile = self.store.profile(code, Some(version)).await?;
        self.metrics.store_query("profile", start.elapsed());
        Ok(self.loaded(profile))
    }

    /// A profile read from the store, as the cache keeps it.
    fn loaded(&self, profile: Profile) -> CachedProfile {
        self.metrics.cache("profile", "load");
        let weight = profile_weight(&profile);
        CachedProfile { read_at: profile.data_version, profile, weight }
    }

    /// A tender's newest version and its bids; `None` for an unknown tender.
    pub async fn tender(&self, id: &TenderId) -> Result<Option<Arc<CachedTender>>, CacheError> {
        let changed = |t: &CachedTender| self.tender_changes.read().expect("tender lock").get(id).is_some_and(|v| *v > t.read_at);
        if self.config.enabled {
            if let Some(t) = self.tenders.get(id).await {
                if !changed(&t) {
                    self.metrics.cache("tender", "hit");
                    return Ok(Some(t));
                }
                self.tenders.invalidate(id).await;
            }
            self.metrics.cache("tender", "miss");
        }
        loop {
            let read_at = self.applied_tender_seq.load(Ordering::Acquire);
            let start = Instant::now();
            let Some(tender) = self.store.tender(id, None).await? else { return Ok(None) };
            let bids = self.store.bids(id).await?;
            self.metrics.store_query("tender", start.elapsed());
            let entry = Arc::new(CachedTender { tender, bids, read_at });
            if !self.config.enabled {
                return Ok(Some(entry));
            }
            if !changed(&entry) {
                self.tenders.insert(id.clone(), entry.clone()).await;
                if !changed(&entry) {
                    return Ok(Some(entry));
                }
            }
            self.tenders.invalidate(id).await;
        }
    }

    /// Every tender's newest version with its bid count, latest deadline first.
    pub async fn tender_list(&self) -> Result<TenderList, CacheError> {
        let read_at = self.applied_tender_seq.load(Ordering::Acquire);
        if self.config.enabled {
            if let Some((at, list)) = &*self.tender_list.lock().expect("tender list lock")
                && *at == read_at
            {
                self.metrics.cache("tender_list", "hit");
                return Ok(list.clone());
            }
            self.metrics.cache("tender_list", "miss");
        }
        let start = Instant::now();
        let list = Arc::new(self.store.list_tenders().await?);
        self.metrics.store_query("list_tenders", start.elapsed());
        if self.config.enabled {
            *self.tender_list.lock().expect("tender list lock") = Some((read_at, list.clone()));
        }
        Ok(list)
    }

    /// A cached statement, or `make`'s, cached under `key`. `key` must name
    /// everything the statement depends on.
    pub async fn statement<F, E>(&self, key: String, make: F) -> Result<Arc<S>, E>
    where
        F: std::future::Future<Output = Result<S, E>>,
        E: From<Arc<E>> + Send + Sync + 'static,
    {
        if !self.config.enabled {
            return make.await.map(Arc::new);
        }
        if let Some(s) = self.statements.get(&key).await {
            self.metrics.cache("statement", "hit");
            return Ok(s);
        }
        self.metrics.cache("statement", "miss");
        // Every request that waited on the same load gets its error: the one
        // left last takes it whole, the others share it.
        self.statements.try_get_with(key, async { make.await.map(Arc::new) }).await.map_err(|e: Arc<E>| E::from(e))
    }

    /// Applies every change after the applied version; returns the new applied version.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let _one = self.catching_up.lock().await;
        let from = self.applied.load(Ordering::Acquire);
        let start = Instant::now();
        let window = self.config.change_window.max(1);
        let changes = self.store.changes_since(from, u32::try_from(window).unwrap_or(u32::MAX - 1) + 1).await;
        self.metrics.store_query("changes_since", start.elapsed());
        let changes = changes?;
        if changes.len() > window {
            // More changes than the window holds (a bulk import): rather
            // than read them all, treat everything read so far as stale.
            let newest = self.store.current_version().await?;
            self.window.write().expect("window lock").forget_before(newest);
            self.profiles.invalidate_all();
            self.metrics.invalidated(changes.len() as u64);
            return self.caught_up(newest).await;
        }
        let mut newest = from;
        if !changes.is_empty() {
            let mut window = self.window.write().expect("window lock");
            for (v, code) in &changes {
                window.record(*v, code);
                newest = newest.max(*v);
            }
        }
        for (_, code) in &changes {
            self.profiles.invalidate(code).await;
        }
        self.metrics.invalidated(changes.len() as u64);
        if !changes.is_empty() {
            self.tell(Changed { codes: changes.into_iter().map(|(_, c)| c).collect(), tenders: Vec::new() });
        }
        self.caught_up(newest).await
    }

    /// Applies tender changes, then publishes `newest` as applied.
    async fn caught_up(&self, newest: u64) -> Result<u64, StoreError> {
        let tender_from = self.applied_tender_seq.load(Ordering::Acquire);
        let tender_changes = self.store.tender_changes_since(tender_from).await?;
        let mut tender_newest = tender_from;
        if !tender_changes.is_empty() {
            let mut last = self.tender_changes.write().expect("tender lock");
            for (seq, id) in &tender_changes {
                last.insert(id.clone(), *seq);
                tender_newest = tender_newest.max(*seq);
            }
        }
        for (_, id) in &tender_changes {
            self.tenders.invalidate(id).await;
        }
        if !tender_changes.is_empty() {
            self.tell(Changed { codes: Vec::new(), tenders: tender_changes.into_iter().map(|(_, id)| id).collect() });
        }
        self.applied_tender_seq.store(tender_newest, Ordering::Release);
        self.applied.store(newest, Ordering::Release);
        self.applied_watch.send_replace(newest);
        self.must_catch_up.store(false, Ordering::Release);
        *self.confirmed_at.lock().expect("clock lock") = self.config.clock.instant();
        self.metrics.versions(newest, newest);
        self.profiles.run_pending_tasks().await;
        self.statements.run_pending_tasks().await;
        self.metrics.cache_weight("profile", self.profiles.weighted_size());
        self.metrics.cache_weight("statement", self.statements.weighted_size());
        Ok(newest)
    }

    /// The newest applied data version, as it changes: await
    /// `wait_for(|v| *v >= n)` to know this replica has seen version `n`.
    pub fn applied_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_watch.subscribe()
    }

    /// Notes that notifications may have been lost: catch up before serving.
    pub fn notifications_lost(&self) {
        self.must_catch_up.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Tells changes to `tx` from now on (once; later calls are ignored).
    pub fn tell_changes_to(&self, tx: tokio::sync::mpsc::Sender<Changed>) {
        let _ = self.changes_out.set(tx);
    }

    fn tell(&self, changed: Changed) {
        if let Some(tx) = self.changes_out.get()
            && tx.try_send(changed).is_err()
        {
            tracing::debug!("the refresh queue is full or closed; these changes will be computed when asked");
        }
    }

    /// Wakes the follower (a change was announced).
    pub fn changed(&self, announced: Option<u64>) {
        if let Some(v) = announced {
            self.metrics.versions(self.applied.load(Ordering::Acquire), v);
        }
        self.wake.notify_one();
    }

    /// Follows the change feed until the task is dropped.
    pub async fn follow(self: Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "cannot read the change feed; serving cached data within the freshness bound");
            }
        }
    }

    /// Approximate bytes held, after pending evictions ran: (profiles, statements).
    pub async fn weights(&self) -> (u64, u64) {
        self.profiles.run_pending_tasks().await;
        self.statements.run_pending_tasks().await;
        (self.profiles.weighted_size(), self.statements.weighted_size())
    }
}

impl<S: Clone + Send + Sync + 'static> ChangeSink for CreditCache<S> {
    fn changed(&self, announced: Option<u64>) {
        CreditCache::changed(self, announced);
    }

    fn notifications_lost(&self) {
        CreditCache::notifications_lost(self);
    }
}
