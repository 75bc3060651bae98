//! What time it is, as this replica reads it.
//!
//! Everything that compares the time with something stored or remembered
//! (grants and committee sessions, the cache's freshness bound, statements'
//! `issuedAt`, whether a tender's deadline has passed) reads it from one
//! [`Clock`], handed in with the cache's configuration. In production it is
//! the wall clock and nothing else. A test makes a [`Clock::manual`] and
//! moves it forward with [`Clock::advance`], so that a grant expires or
//! cached data grows stale at once, with no sleeping on the wall clock.
//!
//! A manual clock is the wall clock plus an offset the test moves, never a
//! frozen instant: time still passes between two reads, as the code that
//! reads it expects, and what is not yet read through a clock (timestamps the
//! store writes) stays consistent with it until the test advances it.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The time source for deadlines, expiries and freshness.
#[derive(Clone, Default)]
pub struct Clock {
    /// Nanoseconds a manual clock is ahead of the wall clock; `None` is the
    /// wall clock. Shared by every copy, so that a test's handle moves the
    /// clock the server reads.
    ahead: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The wall clock, as production reads it.
    pub fn system() -> Clock {
        Clock { ahead: None }
    }

    /// A clock that reads the wall clock until [`Clock::advance`] moves it
    /// ahead (tests).
    pub fn manual() -> Clock {
        Clock { ahead: Some(Arc::new(AtomicU64::new(0))) }
    }

    /// Moves a manual clock forward by `by`, for every copy of it.
    ///
    /// # Panics
    /// On the system clock: production time is never moved.
    pub fn advance(&self, by: Duration) {
        let ahead = self.ahead.as_ref().expect("only a manual clock is advanced");
        ahead.fetch_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    fn offset(&self) -> Duration {
        self.ahead.as_ref().map_or(Duration::ZERO, |a| Duration::from_nanos(a.load(Ordering::Acquire)))
    }

    /// The current instant in UTC.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match self.ahead {
            None => now,
            Some(_) => now + chrono::TimeDelta::from_std(self.offset()).unwrap_or(chrono::TimeDelta::MAX),
        }
    }

    /// The current monotonic instant, for measuring how long ago something was.
    pub fn instant(&self) -> Instant {
        let now = Instant::now();
        match self.ahead {
            None => now,
            Some(_) => now + self.offset(),
        }
    }

    /// How long ago `earlier` (from [`Clock::instant`]) was; zero if later.
    pub fn since(&self, earlier: Instant) -> Duration {
        self.instant().saturating_duration_since(earlier)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ahead {
            None => f.write_str("Clock::system()"),
            Some(_) => write!(f, "Clock::manual(ahead {:?})", self.offset()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_every_copy_and_the_system_clock_is_the_wall_clock() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let (wall, start) = (Utc::now(), copy.instant());
        clock.advance(Duration::from_secs(3600));
        assert!(copy.now() >= wall + chrono::TimeDelta::hours(1));
        assert!(copy.since(start) >= Duration::from_secs(3600));
        assert_eq!(Clock::manual().since(clock.instant()), Duration::ZERO, "an instant ahead of now is no time ago");
        let system = Clock::system();
        let before = Utc::now();
        let read = system.now();
        assert!(read >= before && read <= Utc::now());
        assert!(std::panic::catch_unwind(|| system.advance(Duration::from_secs(1))).is_err(), "the system clock is never moved");
    }
}
