//! What the caches are given: their bounds, freshness and clock, with the
//! defaults the CLI's flags and the tests share (defined once here).

use crate::clock::Clock;
use std::time::Duration;

/// How the caches behave.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `false` reads the store on every request (`--no-cache`, for diagnosis
    /// and for measuring what the cache buys).
    pub enabled: bool,
    /// Most bytes of profiles kept, by each entry's estimated size (64 MiB by default).
    pub profile_bytes: u64,
    /// Most bytes of signed statements kept, by each entry's estimated size
    /// (64 MiB by default).
    pub statement_bytes: u64,
    /// How long cached data may be served after the store was last reached.
    pub max_staleness: Duration,
    /// Backstop poll of the change table.
    pub poll_interval: Duration,
    /// Backstop expiry; freshness does not depend on it.
    pub ttl: Duration,
    /// Changes remembered for telling stale entries; a catch-up with more
    /// than this many invalidates every profile instead of reading them all.
    pub change_window: usize,
    /// The time this replica reads: its freshness bound here, and through
    /// [`CreditCache::clock`] grants, sessions, deadlines and `issuedAt`
    /// (tests hand in [`Clock::manual`] to move it without sleeping).
    pub clock: Clock,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            profile_bytes: DEFAULT_CACHE_BYTES,
            statement_bytes: DEFAULT_CACHE_BYTES,
            max_staleness: DEFAULT_MAX_STALENESS,
            poll_interval: DEFAULT_POLL_INTERVAL,
            ttl: Duration::from_secs(3600),
            change_window: CHANGE_WINDOW,
            clock: Clock::system(),
        }
    }
}

/// The memory bound of each cache (profiles, statements), unless told (`--cache-mib`).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
/// How long cached data may be served while the store cannot be reached,
/// unless told (`--max-staleness`).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(60);
/// The backstop poll of the change table, unless told (`--poll-ms`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Changes remembered by default; past it the oldest are forgotten and
/// entries read before them are reloaded.
pub const CHANGE_WINDOW: usize = 100_000;
