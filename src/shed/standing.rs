//! Whether a queue stands, and the retry hint of a request refused for
//! its wait (the rule is in `crate::shed`'s doc).

use std::time::{Duration, Instant};

/// CoDel's interval (RFC 8289 §4.5): how long shedding lasts after the
/// last window that showed a standing queue, and the longest wait a
/// request may have outside such a spell.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The fewest requests a window needs to show a standing queue: below
/// that, a few late requests are a burst, not a queue.
pub const STANDING_MIN: u32 = 16;

/// Whether a queue stands: the waits of the requests of the current
/// window, and until when shedding lasts (see the module's doc).
pub(super) struct Standing {
    target: Duration,
    /// 20 × the target, within 1 ms and [`INTERVAL`].
    window: Duration,
    state: std::sync::Mutex<Window>,
    /// Refusals for the wait so far: the sequence the hints are spread by.
    refused: std::sync::atomic::AtomicU64,
}

struct Window {
    start: Instant,
    seen: u32,
    late: u32,
    /// Shedding lasts until then.
    shedding_until: Option<Instant>,
}

impl Standing {
    pub(super) fn new(target: Duration) -> Standing {
        let window = (target * 20).clamp(Duration::from_millis(1), INTERVAL);
        Standing {
            target,
            window,
            state: std::sync::Mutex::new(Window { start: Instant::now(), seen: 0, late: 0, shedding_until: None }),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a request that waited `waited` by `now`, and says whether it
    /// is refused: `Some(the wait it was allowed)`, or `None` to admit it.
    pub(super) fn refuses(&self, now: Instant, waited: Duration) -> Option<Duration> {
        let late = waited > self.target;
        let shedding = {
            let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // A window ends once it is long enough and has enough requests
            // to judge, or at the interval however few it has.
            let age = now.saturating_duration_since(w.start);
            if age >= INTERVAL || (age >= self.window && w.seen >= STANDING_MIN) {
                *w = Window { start: now, seen: 0, late: 0, shedding_until: w.shedding_until };
            }
            w.seen += 1;
            w.late += u32::from(late);
            // Most of a window's requests late: a standing queue, known as
            // soon as the window has enough of them.
            if w.seen >= STANDING_MIN && w.late * 2 > w.seen {
                w.shedding_until = Some(now + INTERVAL);
            }
            w.shedding_until.is_some_and(|until| now < until)
        };
        let allowed = if shedding { self.target } else { INTERVAL.max(self.target) };
        (waited > allowed).then_some(allowed)
    }

    /// The retry hint of a request refused for its wait: [`INTERVAL`] (the
    /// hint every other refusal gives, `shed::RETRY_AFTER`)
    /// spread over 50–150% of it, in whole milliseconds, evenly across
    /// refusals (the golden-ratio sequence over a count of them). The clients
    /// a standing queue sends away are sent away together; told the same
    /// wait, they would come back together, as the next queue (measured:
    /// BENCHMARKS.md, "Overload").
    pub(super) fn hint(&self) -> Duration {
        let n = self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The fractional part of n × φ, as 53 bits.
        let fraction = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let ms = INTERVAL.as_secs_f64() * 1000.0 * (0.5 + fraction);
        Duration::from_millis(ms.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(5);
    const LATE: Duration = Duration::from_millis(20);
    const PROMPT: Duration = Duration::from_micros(100);

    /// A late request at a server without a standing queue is served: a
    /// burst, or a stall of the machine, is not overload.
    #[test]
    fn late_requests_without_a_standing_queue_are_served() {
        let s = Standing::new(TARGET);
        let t0 = Instant::now();
        assert_eq!(s.refuses(t0, LATE), None);
        // A few in a hundred late, at any rate: never a standing queue.
        for i in 0..10_000u32 {
            let waited = if i % 30 == 0 { LATE } else { PROMPT };
            assert_eq!(s.refuses(t0 + Duration::from_micros(u64::from(i) * 10), waited), None, "request {i}");
        }
    }

    /// Most requests of a window late: from then, late ones are refused
    /// with the target as their allowance, prompt ones are served, and
    /// once no window shows a queue for an interval, late ones are served
    /// again.
    #[test]
    fn a_standing_queue_sheds_the_late_until_an_interval_passes_without_one() {
        let s = Standing::new(TARGET);
        let t0 = Instant::now();
        for i in 0..STANDING_MIN - 1 {
            assert_eq!(s.refuses(t0 + Duration::from_micros(u64::from(i)), LATE), None, "before the window shows a queue");
        }
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(s.refuses(t1, LATE), Some(TARGET), "the window's majority is late");
        assert_eq!(s.refuses(t1, PROMPT), None, "a request that did not wait is served");
        assert_eq!(s.refuses(t1 + INTERVAL / 2, LATE), Some(TARGET), "the spell lasts");
        // Prompt requests only: the windows stop showing a queue (this
        // one's majority turns prompt), and the spell ends an interval
        // after the last that did.
        let mut t = t1;
        while t < t1 + 2 * INTERVAL {
            assert_eq!(s.refuses(t, PROMPT), None);
            t += Duration::from_millis(1);
        }
        assert_eq!(s.refuses(t1 + 2 * INTERVAL + Duration::from_millis(1), LATE), None, "recovered");
    }

    /// Past the interval a request is refused whatever the others waited.
    /// The hints of refusals in a row lie within 50–150 ms and spread
    /// evenly: each tenth of the range holds about a tenth of them.
    #[test]
    fn retry_hints_spread_evenly_over_half_to_one_and_a_half_intervals() {
        let s = Standing::new(TARGET);
        let mut tenths = [0u32; 10];
        for _ in 0..1000 {
            let ms = s.hint().as_millis() as u64;
            assert!((50..=150).contains(&ms), "{ms} ms");
            tenths[((ms - 50) / 10).min(9) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (80..=120).contains(&n)), "{tenths:?}");
    }

    #[test]
    fn a_wait_past_the_interval_is_always_refused() {
        let s = Standing::new(TARGET);
        assert_eq!(s.refuses(Instant::now(), INTERVAL + Duration::from_millis(1)), Some(INTERVAL));
        let large = Standing::new(Duration::from_millis(300));
        assert_eq!(large.refuses(Instant::now(), Duration::from_millis(200)), None, "a target above the interval is the allowance");
        assert_eq!(large.refuses(Instant::now(), Duration::from_millis(301)), Some(Duration::from_millis(300)));
    }
}
