//! `cache.stampede`: three defences against a cache stampede — the herd of requests that
//! all miss at once when a hot key expires and all go to the backing store.
//!
//! - [`Singleflight`]: request coalescing, the way Go's `golang.org/x/sync/singleflight`
//!   does it: the first caller to miss a key loads it, every caller that misses the same
//!   key while that load is in flight waits for its result, so one expiry costs one load.
//! - [`XFetch`]: probabilistic early expiration (Vattani, Chierichetti & Lowenstein,
//!   "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a caller that reads a
//!   value still valid recomputes it early when `now − δ·β·ln(u) ≥ expiry`, with `δ` the
//!   time the last recomputation took, `β > 0` (1 is the paper's optimum; larger is
//!   earlier) and `u` uniform in (0, 1]. The probability is `e^(−(expiry − now)/(δβ))`:
//!   negligible long before expiry, certain at it, so one caller — usually — refreshes the
//!   value while everyone else still hits.
//! - [`jittered_ttl`]: TTL jitter, so keys filled together do not expire together.
//!
//! Sans-I/O: time comes in as `now`, randomness as a uniform draw `u` the caller takes
//! from its own seeded generator. Each operation is O(log k) in the keys with a load in
//! flight.

use std::collections::BTreeMap;

use crate::error::{DistlabError, Result};
use crate::time::{Duration, Time};

/// What a caller that missed must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// It is the first: load the key from the backing store, then call
    /// [`Singleflight::finish`].
    Load,
    /// A load of the key is in flight (started at `since`): wait for it; `waiting`
    /// callers, this one included, wait besides the loader.
    Wait { since: Time, waiting: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Flight<W> {
    started: Time,
    /// The loader first, then the callers that joined, in order.
    callers: Vec<W>,
}

/// Request coalescing: at most one load in flight per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Singleflight<K: Ord, W> {
    flights: BTreeMap<K, Flight<W>>,
    loads: u64,
    coalesced: u64,
}

impl<K: Ord, W> Default for Singleflight<K, W> {
    fn default() -> Self {
        Singleflight {
            flights: BTreeMap::new(),
            loads: 0,
            coalesced: 0,
        }
    }
}

impl<K: Ord + Clone, W> Singleflight<K, W> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `caller` missed `key` at `now`: it loads, or it waits for the load in flight.
    pub fn join(&mut self, key: &K, caller: W, now: Time) -> Join {
        match self.flights.get_mut(key) {
            Some(flight) => {
                flight.callers.push(caller);
                self.coalesced += 1;
                Join::Wait {
                    since: flight.started,
                    waiting: flight.callers.len() - 1,
                }
            }
            None => {
                self.flights.insert(
                    key.clone(),
                    Flight {
                        started: now,
                        callers: vec![caller],
                    },
                );
                self.loads += 1;
                Join::Load
            }
        }
    }

    /// The load of `key` ended: every caller of the flight, the loader first, to be
    /// answered with its result. The next miss starts a new flight.
    pub fn finish(&mut self, key: &K) -> Result<Vec<W>> {
        self.flights
            .remove(key)
            .map(|f| f.callers)
            .ok_or_else(|| DistlabError::InvalidState("no load of that key is in flight".into()))
    }

    /// Whether a load of `key` is in flight.
    pub fn in_flight(&self, key: &K) -> bool {
        self.flights.contains_key(key)
    }

    /// Keys with a load in flight.
    pub fn flights(&self) -> usize {
        self.flights.len()
    }

    /// Callers waiting on `key`'s load, the loader included.
    pub fn callers(&self, key: &K) -> usize {
        self.flights.get(key).map_or(0, |f| f.callers.len())
    }

    /// Loads started so far.
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// Callers that waited on another's load instead of loading.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }
}

/// Probabilistic early expiration with parameter `β`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XFetch {
    beta: f64,
}

/// The largest β accepted: past it every read recomputes long before expiry.
pub const MAX_BETA: f64 = 1_000.0;

impl XFetch {
    /// `beta` in (0, [`MAX_BETA`]]; 1 is the paper's optimal choice.
    pub fn new(beta: f64) -> Result<Self> {
        if !(beta > 0.0 && beta <= MAX_BETA) {
            return Err(DistlabError::field(
                "beta",
                format!("must be greater than 0 and at most {MAX_BETA}, got {beta}"),
            ));
        }
        Ok(XFetch { beta })
    }

    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Whether a read at `now` of a value expiring at `expiry`, whose last recomputation
    /// took `delta`, recomputes it, for the uniform draw `u` in (0, 1].
    pub fn should_recompute(
        &self,
        now: Time,
        expiry: Time,
        delta: Duration,
        u: f64,
    ) -> Result<bool> {
        if !(u > 0.0 && u <= 1.0) {
            return Err(DistlabError::field(
                "u",
                format!("must be in (0, 1], got {u}"),
            ));
        }
        if now >= expiry {
            return Ok(true);
        }
        // −δ·β·ln(u) ≥ 0: how far ahead of `now` this read looks, in microseconds.
        let ahead = -(delta.as_micros() as f64) * self.beta * libm::log(u);
        Ok(now.as_micros() as f64 + ahead >= expiry.as_micros() as f64)
    }

    /// The probability that a read at `now` recomputes: `e^(−(expiry − now)/(δβ))`, 1 at
    /// or past expiry, 0 before it when `δ` is zero.
    pub fn recompute_probability(&self, now: Time, expiry: Time, delta: Duration) -> f64 {
        if now >= expiry {
            return 1.0;
        }
        let scale = delta.as_micros() as f64 * self.beta;
        if scale <= 0.0 {
            return 0.0;
        }
        let gap = (expiry.as_micros() - now.as_micros()) as f64;
        libm::exp(-gap / scale)
    }
}

/// `ttl` shortened by a random fraction of at most `jitter` (in [0, 1]): `ttl·(1 − jitter·u)`
/// for the uniform draw `u` in [0, 1). Never longer than `ttl`, so a bound on staleness
/// still holds, and keys written together expire spread over `jitter·ttl`.
pub fn jittered_ttl(ttl: Duration, jitter: f64, u: f64) -> Result<Duration> {
    if !(0.0..=1.0).contains(&jitter) {
        return Err(DistlabError::field(
            "jitter",
            format!("must be in [0, 1], got {jitter}"),
        ));
    }
    if !(0.0..1.0).contains(&u) {
        return Err(DistlabError::field(
            "u",
            format!("must be in [0, 1), got {u}"),
        ));
    }
    let cut = (ttl.as_micros() as f64 * jitter * u) as u64;
    Ok(Duration::from_micros(ttl.as_micros().saturating_sub(cut)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn singleflight_loads_once_per_flight_however_many_callers() {
        let mut sf: Singleflight<u32, u32> = Singleflight::new();
        let t = Time::from_millis(5);
        assert_eq!(sf.join(&7, 0, t), Join::Load);
        for caller in 1..100 {
            assert_eq!(
                sf.join(&7, caller, Time::from_millis(6)),
                Join::Wait {
                    since: t,
                    waiting: caller as usize
                }
            );
        }
        // Another key has its own flight.
        assert_eq!(sf.join(&8, 500, t), Join::Load);
        assert_eq!(sf.loads(), 2);
        assert_eq!(sf.coalesced(), 99);
        assert_eq!(sf.finish(&7).unwrap(), (0..100).collect::<Vec<_>>());
        assert!(!sf.in_flight(&7));
        assert!(sf.finish(&7).is_err());
        // The next miss after the load ended starts a new flight.
        assert_eq!(sf.join(&7, 200, Time::from_millis(9)), Join::Load);
        assert_eq!(sf.loads(), 3);
    }

    #[test]
    fn xfetch_validates_and_is_certain_at_expiry() {
        assert!(XFetch::new(0.0).is_err());
        assert!(XFetch::new(f64::NAN).is_err());
        assert!(XFetch::new(-1.0).is_err());
        let x = XFetch::new(1.0).unwrap();
        let (expiry, delta) = (Time::from_millis(1_000), Duration::from_millis(100));
        for u in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(x.should_recompute(Time::ZERO, expiry, delta, u).is_err());
        }
        assert!(x.should_recompute(expiry, expiry, delta, 1.0).unwrap());
        // u = 1 looks no further than now.
        assert!(
            !x.should_recompute(Time::from_millis(999), expiry, delta, 1.0)
                .unwrap()
        );
        // With no recompute time it never fires early.
        assert!(
            !x.should_recompute(Time::ZERO, expiry, Duration::ZERO, 1e-300)
                .unwrap()
        );
        assert_eq!(x.recompute_probability(expiry, expiry, delta), 1.0);
    }

    /// Over seeded trials the early-recompute rate matches `e^(−gap/(δβ))`.
    #[test]
    fn xfetch_recomputes_early_as_often_as_its_formula_says() {
        let mut rng = SimRng::derive(11, 3);
        let expiry = Time::from_millis(10_000);
        const TRIALS: u32 = 20_000;
        for beta in [0.5, 1.0, 2.0] {
            let x = XFetch::new(beta).unwrap();
            for (gap_ms, delta_ms) in [(50, 100), (100, 100), (200, 100), (300, 50)] {
                let now = Time::from_millis(10_000 - gap_ms);
                let delta = Duration::from_millis(delta_ms);
                let p = x.recompute_probability(now, expiry, delta);
                let want = libm::exp(-(gap_ms as f64) / (delta_ms as f64 * beta));
                assert!((p - want).abs() < 1e-12, "{p} vs {want}");
                let hits = (0..TRIALS)
                    .filter(|_| {
                        x.should_recompute(now, expiry, delta, rng.next_f64_open0())
                            .unwrap()
                    })
                    .count();
                let measured = f64::from(hits as u32) / f64::from(TRIALS);
                // Five standard deviations of a binomial proportion.
                let sd = libm::sqrt(p * (1.0 - p) / f64::from(TRIALS));
                assert!(
                    (measured - p).abs() <= 5.0 * sd + 1e-9,
                    "beta {beta}, gap {gap_ms} ms, delta {delta_ms} ms: {measured} vs {p}"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_ttls_below_the_base_and_validates() {
        let ttl = Duration::from_millis(1_000);
        assert_eq!(jittered_ttl(ttl, 0.0, 0.7).unwrap(), ttl);
        assert_eq!(jittered_ttl(ttl, 0.2, 0.0).unwrap(), ttl);
        assert_eq!(
            jittered_ttl(ttl, 0.2, 0.5).unwrap(),
            Duration::from_millis(900)
        );
        let mut rng = SimRng::derive(4, 4);
        let ttls: Vec<u64> = (0..1_000)
            .map(|_| jittered_ttl(ttl, 0.2, rng.next_f64()).unwrap().as_micros())
            .collect();
        assert!(ttls.iter().all(|t| (800_000..=1_000_000).contains(t)));
        let distinct: std::collections::BTreeSet<_> = ttls.iter().map(|t| t / 10_000).collect();
        assert!(distinct.len() >= 19, "{}", distinct.len());
        for (j, u) in [
            (-0.1, 0.5),
            (1.1, 0.5),
            (f64::NAN, 0.5),
            (0.2, 1.0),
            (0.2, -0.1),
        ] {
            assert!(jittered_ttl(ttl, j, u).is_err(), "{j} {u}");
        }
    }
}
