//! Differential test: our GCRA (and so our token bucket, which admits the same requests)
//! against the `governor` crate's GCRA, fed identical request sequences through governor's
//! `FakeRelativeClock`.
//!
//! Where the semantics match, and so where this test compares: integer costs (governor's
//! `check_n` cells), a burst that is a whole number of cells, and an emission interval that
//! is a whole number of nanoseconds (rate dividing 10^9), with times in whole microseconds.
//! There every decision and every wait agrees: governor's `wait_time_from` in nanoseconds is
//! ours rounded up to the microsecond.
//!
//! Where they differ by design (not compared):
//! - A rate whose interval is not a whole number of nanoseconds: governor floors `T`
//!   (`Duration / n`), admitting slightly more than the rate; we round each request's share
//!   `c·T` up, admitting slightly less. Neither exceeds a nanosecond per request.
//! - Fractional costs and bursts: ours accepts them (weighted cost), governor counts cells.
//! - Waits: governor reports nanoseconds; our decisions (and HTTP headers) whole
//!   microseconds, rounded up so that a client waiting that long is admitted.
//! - Remaining: governor reports whole cells left (`remaining_burst_capacity`), ours the
//!   exact fractional tokens.
//! - Time going backwards: governor's clock is monotonic by construction; ours is fed
//!   arbitrary times and evaluates each at its own time, which both algorithms do alike
//!   (`max(TAT, t)`), so it is not a difference in the rule, only in what callers can send.
#![cfg(not(target_arch = "wasm32"))]

use distlab_core::ratelimit::gcra::{Gcra, GcraConfig};
use distlab_core::ratelimit::{TokenBucket, TokenBucketConfig};
use distlab_core::{Duration, Time};
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use proptest::prelude::*;
use std::num::NonZeroU32;

/// Rates (per second) whose interval is a whole number of nanoseconds.
const EXACT_RATES: [u32; 10] = [1, 2, 4, 5, 8, 10, 16, 25, 100, 1_000];

struct Pair {
    ours: Gcra,
    bucket: TokenBucket,
    theirs: RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        FakeRelativeClock,
        governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
    >,
    clock: FakeRelativeClock,
    now_us: u64,
}

impl Pair {
    fn new(burst: u32, rate: u32) -> Pair {
        let clock = FakeRelativeClock::default();
        let period = std::time::Duration::from_nanos(1_000_000_000 / u64::from(rate));
        let quota = Quota::with_period(period)
            .unwrap()
            .allow_burst(NonZeroU32::new(burst).unwrap());
        Pair {
            ours: Gcra::new(GcraConfig {
                burst: f64::from(burst),
                rate_per_sec: f64::from(rate),
            })
            .unwrap(),
            bucket: TokenBucket::new(TokenBucketConfig::new(f64::from(burst), f64::from(rate)))
                .unwrap(),
            theirs: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            now_us: 0,
        }
    }

    /// Advances both clocks by `gap_us` and asks both for `n` cells; checks they agree.
    fn check(&mut self, gap_us: u64, n: u32) -> bool {
        self.now_us += gap_us;
        self.clock.advance(std::time::Duration::from_micros(gap_us));
        let ours = self
            .ours
            .try_acquire(Time(self.now_us), f64::from(n))
            .unwrap();
        let bucket = self
            .bucket
            .try_acquire(Time(self.now_us), f64::from(n))
            .unwrap();
        let theirs = self
            .theirs
            .check_n(NonZeroU32::new(n).unwrap())
            .expect("n is at most the burst");
        assert_eq!(
            ours.allowed,
            theirs.is_ok(),
            "at {} µs, {n} cells",
            self.now_us
        );
        assert_eq!(
            bucket.allowed, ours.allowed,
            "token bucket at {} µs",
            self.now_us
        );
        if let Err(not_until) = theirs {
            let wait_ns = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
            let expected = Duration(wait_ns.as_nanos().div_ceil(1_000) as u64);
            assert_eq!(ours.retry_after, expected, "wait at {} µs", self.now_us);
        }
        ours.allowed
    }
}

#[test]
fn a_burst_then_the_rate() {
    let mut p = Pair::new(5, 10);
    let admitted = (0..8).filter(|_| p.check(0, 1)).count();
    assert_eq!(admitted, 5);
    assert!(!p.check(99_999, 1));
    assert!(p.check(1, 1));
    // A weighted request of 3 waits for three intervals.
    assert!(!p.check(0, 3));
    assert!(p.check(300_000, 3));
}

#[test]
fn more_cells_than_the_burst_is_an_error_in_both() {
    let mut p = Pair::new(3, 10);
    assert!(p.ours.try_acquire(Time(0), 4.0).is_err());
    assert!(p.theirs.check_n(NonZeroU32::new(4).unwrap()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_governor_on_identical_sequences(
        burst in 1u32..50,
        rate in prop::sample::select(EXACT_RATES.to_vec()),
        requests in proptest::collection::vec((0u64..500_000, 1u32..=8), 1..300),
    ) {
        let mut p = Pair::new(burst, rate);
        let mut admitted = 0;
        for (gap, n) in requests {
            // Mostly tight gaps, so both limiters spend time denying.
            let gap = gap % (2_000_000 / u64::from(rate)).max(1);
            admitted += u32::from(p.check(gap, n.min(burst)));
        }
        prop_assert!(admitted > 0);
    }
}
