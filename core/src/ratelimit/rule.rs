//! The split every local limiter here is built on: a [`Rule`] (the validated configuration
//! and the constants derived from it, shared) and a per-key `State` (what must be
//! remembered about one client). A single limiter is a [`Limiter`], one rule and one state;
//! the keyed limiter ([`crate::ratelimit::keyed`]) is one rule and many states, which is
//! what keeps its memory per key down to the state alone.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::time::Time;

/// A rate-limiting algorithm with its configuration; the state it decides on is kept
/// elsewhere.
pub trait Rule: Clone + Debug {
    /// What the algorithm remembers about one client.
    type State: Clone + Debug + PartialEq;
    /// The algorithm's name, for labels ("fixed window").
    fn algorithm(&self) -> &'static str;
    /// The state of a client never seen before, at `now`: a full allowance.
    fn fresh(&self, now: Time) -> Self::State;
    /// Decides (and charges, if admitted) a request of `cost` at `now`. On error (a cost
    /// that could never be admitted, naming `cost`) the state is unchanged.
    fn decide(&self, state: &mut Self::State, now: Time, cost: f64) -> Result<RateLimitDecision>;
    /// Whether `state` admits at `now` exactly what a fresh state would from now on, so
    /// forgetting it loses nothing (an idle key, which the keyed limiter may evict).
    fn is_idle(&self, state: &Self::State, now: Time) -> bool;
    /// The allowance available at `now` without deciding anything: tokens, what is left
    /// of the window, queue space.
    fn level(&self, state: &Self::State, now: Time) -> f64;
    /// The largest allowance: a decision's `limit`.
    fn limit(&self) -> f64;
    /// When the allowance is back to [`limit`](Self::limit) if nothing is admitted.
    fn full_at(&self, state: &Self::State, now: Time) -> Time;
    /// The admission envelope it promises: cost admitted in any window of length `t` is at
    /// most `burst + rate · t`.
    fn envelope(&self) -> Envelope;
    /// Its configuration and the state, for a node in a lab's view.
    fn fields(&self, state: &Self::State, now: Time) -> BTreeMap<String, Value>;
    /// Heap memory the state owns beyond its own size (a sliding log's entries).
    fn heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
}

/// One rule and one state: a limiter for one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Limiter<R: Rule> {
    rule: R,
    state: R::State,
}

impl<R: Rule> Limiter<R> {
    /// A limiter whose allowance is full at `now`.
    pub fn from_rule(rule: R, now: Time) -> Self {
        let state = rule.fresh(now);
        Limiter { rule, state }
    }

    pub fn rule(&self) -> &R {
        &self.rule
    }

    pub fn state(&self) -> &R::State {
        &self.state
    }

    /// Decides a request of weight `cost` at `now` and charges it if admitted.
    #[inline]
    pub fn try_acquire(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.rule.decide(&mut self.state, now, cost)
    }

    /// What [`Limiter::try_acquire`] would decide, changing nothing.
    pub fn peek(&self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        let mut state = self.state.clone();
        self.rule.decide(&mut state, now, cost)
    }

    /// The allowance available at `now`.
    pub fn level(&self, now: Time) -> f64 {
        self.rule.level(&self.state, now)
    }

    /// The rule and the state, the state mutable: for rules with decisions of their own
    /// (the shaping leaky bucket's delay).
    pub fn parts_mut(&mut self) -> (&R, &mut R::State) {
        (&self.rule, &mut self.state)
    }
}

/// What the window algorithms' property tests share: feeding a request sequence and
/// walking every span of the admissions.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Limiter, Rule};
    use crate::ratelimit::RateLimitDecision;
    use crate::time::Time;
    use proptest::prelude::*;

    /// `v` milliseconds after the start, the tests' unit of time.
    pub fn ms(v: u64) -> Time {
        Time::from_millis(v)
    }

    /// Feeds `requests` (gap in µs since the previous one, cost as a fraction of `limit`)
    /// to `l`. Every denial's retry-after must be exact: admitted then, not a microsecond
    /// earlier; with `level_is_remaining`, the level after each decision is its
    /// `remaining`. Returns the admissions as (µs, cost).
    pub fn drive<R: Rule>(
        l: &mut Limiter<R>,
        limit: f64,
        requests: &[(u64, f64)],
        level_is_remaining: bool,
    ) -> Result<Vec<(u64, f64)>, TestCaseError> {
        let mut now = 0;
        let mut admitted = Vec::new();
        for &(gap, frac) in requests {
            now += gap;
            let cost = frac * limit;
            let d = l.try_acquire(Time(now), cost).unwrap();
            if d.allowed {
                admitted.push((now, cost));
            } else {
                let at = now + d.retry_after.0;
                prop_assert!(l.peek(Time(at), cost).unwrap().allowed);
                prop_assert!(!l.peek(Time(at - 1), cost).unwrap().allowed);
            }
            if level_is_remaining {
                prop_assert_eq!(l.level(Time(now)), d.remaining);
            }
        }
        Ok(admitted)
    }

    /// Calls `check(first, last, sum)` for every run of consecutive admissions, with the
    /// times (µs) of its first and last and the cost it admitted in all.
    pub fn each_span(
        admitted: &[(u64, f64)],
        mut check: impl FnMut(u64, u64, f64) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        for (i, &(first, _)) in admitted.iter().enumerate() {
            let mut sum = 0.0;
            for &(last, cost) in &admitted[i..] {
                sum += cost;
                check(first, last, sum)?;
            }
        }
        Ok(())
    }

    /// Feeds requests of cost 1 stamped `base − back` (time that may run backwards) to `l`,
    /// and the same requests stamped with the latest time seen so far to a copy; `same`
    /// compares each pair of decisions, given both stamps.
    pub fn against_the_latest_time<R: Rule>(
        l: &Limiter<R>,
        requests: &[(u64, u64)],
        mut same: impl FnMut(
            RateLimitDecision,
            RateLimitDecision,
            u64,
            u64,
        ) -> Result<(), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        let (mut shuffled, mut clamped) = (l.clone(), l.clone());
        let (mut base, mut latest) = (0u64, 0u64);
        for &(gap, back) in requests {
            base += gap;
            let now = base.saturating_sub(back);
            latest = latest.max(now);
            let a = shuffled.try_acquire(Time(now), 1.0).unwrap();
            let b = clamped.try_acquire(Time(latest), 1.0).unwrap();
            prop_assert_eq!(a.allowed, b.allowed);
            same(a, b, now, latest)?;
        }
        Ok(())
    }

    /// `bound` with room for the sums' floating-point rounding.
    pub fn slack(bound: f64) -> f64 {
        bound * (1.0 + 1e-12) + 1e-9
    }
}
