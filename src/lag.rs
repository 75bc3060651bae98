//! The runtime's lag: how long the process takes to get back to a task that
//! is ready to run. Admission (`crate::shed`) refuses newly arriving work
//! while it is above the queue target.
//!
//! **Why this and not only each request's wait.** A request's own wait is
//! stamped when hyper hands it to the service, which is after the queue a
//! cached answer meets under load: its bytes wait in the socket until the
//! runtime next polls for readiness, and its connection's task waits in the
//! run queue behind every other ready task before it reads them. Neither
//! wait is seen by a stamp taken after the read (BENCHMARKS.md, "Overload").
//! A probe task sees both: every [`PROBE_EVERY`] it yields once and measures
//! how long the runtime takes to poll it again. Tokio defers a yielded task
//! until its worker next polls the IO driver (or parks), then queues it
//! with the tasks the driver woke, so the time across a yield is the delay a
//! socket's readiness meets before the task that reads it runs.
//!
//! **Smoothing.** Each sample moves the reading a quarter of the way to it
//! (an exponentially weighted mean over about four samples, a few
//! milliseconds): one long poll of one task does not shed, a queue that
//! stands for a few milliseconds does, and the reading falls back below the
//! target within a few samples of the load dropping.
//!
//! **Prior art, and why not a crate.** Node's `monitorEventLoopDelay` and
//! the `tokio-eld` crate (a histogram of the same delay, for a
//! current-thread runtime only) measure the same thing; tower's adaptive
//! limiters (`tower-acc`, `tower-resilience-adaptive`) time requests inside
//! the stack, after the queue, as the stamp does. The probe is a dozen
//! lines over tokio, so it is ours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the probe measures the lag.
pub const PROBE_EVERY: Duration = Duration::from_millis(1);

/// The runtime's smoothed lag, shared by the probe that measures it and
/// the admission that reads it.
#[derive(Debug, Default)]
pub struct RuntimeLag {
    /// Nanoseconds, smoothed.
    smoothed: AtomicU64,
    /// Nanoseconds a test says the lag is at least (see [`RuntimeLag::inject`]).
    injected: AtomicU64,
}

impl RuntimeLag {
    /// A reading of zero lag, shared by the probe and the shed layer.
    pub fn new() -> Arc<RuntimeLag> {
        Arc::new(RuntimeLag::default())
    }

    /// The lag now: the smoothed measure, or the injected one if larger.
    pub fn current(&self) -> Duration {
        let ns = self.smoothed.load(Ordering::Relaxed).max(self.injected.load(Ordering::Relaxed));
        Duration::from_nanos(ns)
    }

    /// Test hook: the lag reads at least `lag` from now on (zero to end it),
    /// so that tests put the server in overload without loading it. The
    /// server never calls it.
    pub fn inject(&self, lag: Duration) {
        self.injected.store(nanos(lag), Ordering::Relaxed);
    }

    /// Takes one sample into the smoothed reading.
    fn record(&self, sample: Duration) {
        let old = self.smoothed.load(Ordering::Relaxed);
        let new = nanos(sample);
        // A quarter of the way from the old reading to the sample.
        let next = if new >= old { old + (new - old) / 4 } else { old - (old - new) / 4 };
        self.smoothed.store(next, Ordering::Relaxed);
    }

    /// The probe: runs until the server's background set stops it.
    pub(crate) async fn probe(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let before = Instant::now();
            tokio::task::yield_now().await;
            self.record(before.elapsed());
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reading_follows_a_standing_lag_and_falls_back_when_it_ends() {
        let lag = RuntimeLag::default();
        lag.record(Duration::from_millis(4));
        assert_eq!(lag.current(), Duration::from_millis(1), "one sample moves it a quarter of the way");
        for _ in 0..20 {
            lag.record(Duration::from_millis(4));
        }
        assert!(lag.current() > Duration::from_micros(3900), "{:?}", lag.current());
        for _ in 0..20 {
            lag.record(Duration::ZERO);
        }
        assert!(lag.current() < Duration::from_micros(100), "{:?}", lag.current());
        lag.inject(Duration::from_secs(1));
        assert_eq!(lag.current(), Duration::from_secs(1));
        lag.inject(Duration::ZERO);
        assert!(lag.current() < Duration::from_micros(100));
    }
}
