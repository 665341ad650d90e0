//! The sliding log: every admission is logged with its time and cost; a request of cost `c`
//! at `now` is admitted if the cost logged in the last window `(now − W, now]` plus `c`
//! stays within `limit`. It is exact: every half-open span of length `W` admits at most
//! `limit`, so any span of length `t` admits at most `limit · (⌊t/W⌋ + 1)`, within the
//! envelope `limit + (limit / W) · t`. The price is memory: one entry per admission still
//! in the window, O(limit / smallest cost) per client (a sorted set per key in a key-value
//! store), and O(entries expired) per decision, amortised O(1).
//!
//! Entries logged at the same microsecond are merged. The log holds at most
//! [`MAX_LOG_ENTRIES`]; when it is full a request is denied until the oldest entry
//! expires, which only ever denies more, never admits more.
//!
//! Reference: the "sliding log" of Figma's "An alternative approach to rate limiting"
//! (2017) and Cloudflare's rate-limiting write-up (2017), as a sorted set per key.
//!
//! Time going backwards: a call stamped earlier than the latest time seen is evaluated, and
//! logged, at that latest time (evaluating it at its own time would ignore the newer
//! entries and could admit more); waits are relative to the caller's `now`.
//!
//! Lab: `ratelimit.sliding-log`, the comparison lab ([`crate::ratelimit::compare_lab`]) opened
//! with this algorithm in front.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::ratelimit::rule::{Limiter, Rule};
use crate::ratelimit::units::{as_tokens, check_now, cost_units, limit_units, window};
use crate::time::{Duration, Time};

/// Most entries one log keeps.
pub const MAX_LOG_ENTRIES: usize = 100_000;
/// Entries the view lists.
pub const SHOWN_ENTRIES: usize = 20;

/// Configuration of a sliding-log limiter. JSON: `{"limit": 10, "windowMs": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct SlidingLogConfig {
    /// The most cost admitted in any window of `windowMs`.
    pub limit: f64,
    /// The window length in milliseconds (at least 0.001).
    pub window_ms: f64,
}

/// A validated sliding-log configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingLogRule {
    config: SlidingLogConfig,
    limit: u128,
    window: Duration,
}

/// One client's log: admissions (time, units), oldest first, their sum and the clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlidingLogState {
    pub entries: VecDeque<(Time, u128)>,
    pub sum: u128,
    pub clock: Time,
}

/// A sliding-log limiter for one client.
pub type SlidingLog = Limiter<SlidingLogRule>;

impl SlidingLog {
    /// A limiter created at time zero.
    pub fn new(config: SlidingLogConfig) -> Result<Self> {
        Ok(Limiter::from_rule(SlidingLogRule::new(config)?, Time::ZERO))
    }
}

impl SlidingLogRule {
    /// Checks every field, naming the first bad one.
    pub fn new(config: SlidingLogConfig) -> Result<Self> {
        let limit = limit_units("limit", config.limit)?;
        let window = window("windowMs", config.window_ms)?;
        Ok(SlidingLogRule {
            config,
            limit,
            window,
        })
    }

    pub fn config(&self) -> &SlidingLogConfig {
        &self.config
    }

    /// When an entry logged at `t` stops counting.
    fn expiry(&self, t: Time) -> Time {
        t.saturating_add(self.window)
    }

    /// Entries (from the oldest) no longer counting at `at`, and their units. Every decision
    /// drops the expired ones, so this is O(entries expired since), not O(log).
    fn expired(&self, state: &SlidingLogState, at: Time) -> (usize, u128) {
        let mut n = 0;
        let mut units = 0;
        for (t, c) in &state.entries {
            if self.expiry(*t) > at {
                break;
            }
            n += 1;
            units += c;
        }
        (n, units)
    }

    /// Units logged that still count at `at`.
    fn live_sum(&self, state: &SlidingLogState, at: Time) -> u128 {
        state.sum - self.expired(state, at).1
    }
}

impl Rule for SlidingLogRule {
    type State = SlidingLogState;

    fn algorithm(&self) -> &'static str {
        "sliding log"
    }

    fn fresh(&self, now: Time) -> SlidingLogState {
        SlidingLogState {
            clock: now,
            ..SlidingLogState::default()
        }
    }

    fn decide(
        &self,
        state: &mut SlidingLogState,
        now: Time,
        cost: f64,
    ) -> Result<RateLimitDecision> {
        let cost = cost_units(cost, self.config.limit, "limit")?;
        check_now(now)?;
        let at = now.max(state.clock);
        state.clock = at;
        while let Some(&(t, c)) = state.entries.front()
            && self.expiry(t) <= at
        {
            state.entries.pop_front();
            state.sum -= c;
        }
        let merges = state.entries.back().is_some_and(|&(t, _)| t == at);
        let room = merges || state.entries.len() < MAX_LOG_ENTRIES;
        let allowed = room && state.sum.saturating_add(cost) <= self.limit;
        let mut retry_after = Duration::ZERO;
        if allowed {
            match state.entries.back_mut() {
                Some((_, c)) if merges => *c += cost,
                _ => state.entries.push_back((at, cost)),
            }
            state.sum += cost;
        } else {
            // The oldest entries expire first: wait for the first one whose expiry frees
            // enough units (and a slot, if the log is full).
            let need = (state.sum + cost).saturating_sub(self.limit);
            let mut freed = 0u128;
            for (i, &(t, c)) in state.entries.iter().enumerate() {
                freed += c;
                if freed >= need && state.entries.len() - (i + 1) < MAX_LOG_ENTRIES {
                    retry_after = self.expiry(t).saturating_since(now);
                    break;
                }
            }
        }
        let reset_after = state.entries.back().map_or(Duration::ZERO, |&(t, _)| {
            self.expiry(t).saturating_since(now)
        });
        Ok(RateLimitDecision {
            allowed,
            limit: self.config.limit,
            remaining: as_tokens(self.limit - state.sum, self.limit, self.config.limit),
            retry_after,
            reset_after,
        })
    }

    fn is_idle(&self, state: &SlidingLogState, now: Time) -> bool {
        let at = now.max(state.clock);
        state
            .entries
            .back()
            .is_none_or(|&(t, _)| self.expiry(t) <= at)
    }

    fn level(&self, state: &SlidingLogState, now: Time) -> f64 {
        let used = self.live_sum(state, now.max(state.clock));
        as_tokens(
            self.limit - used.min(self.limit),
            self.limit,
            self.config.limit,
        )
    }

    fn limit(&self) -> f64 {
        self.config.limit
    }

    fn full_at(&self, state: &SlidingLogState, now: Time) -> Time {
        let at = now.max(state.clock);
        state
            .entries
            .back()
            .map_or(at, |&(t, _)| self.expiry(t).max(at))
    }

    fn envelope(&self) -> Envelope {
        Envelope {
            burst: self.config.limit,
            rate_per_sec: self.config.limit / self.window.as_secs_f64(),
        }
    }

    fn fields(&self, state: &SlidingLogState, now: Time) -> BTreeMap<String, Value> {
        let at = now.max(state.clock);
        let (expired, _) = self.expired(state, at);
        let live = state.entries.len() - expired;
        let mut shown: Vec<Value> = state
            .entries
            .iter()
            .rev()
            .take(SHOWN_ENTRIES.min(live))
            .map(|(t, c)| {
                json!([
                    t.as_millis_f64(),
                    as_tokens(*c, self.limit, self.config.limit)
                ])
            })
            .collect();
        shown.reverse();
        BTreeMap::from([
            ("limit".into(), json!(self.config.limit)),
            ("windowMs".into(), json!(self.config.window_ms)),
            ("logEntries".into(), json!(live)),
            (
                "logged".into(),
                json!(as_tokens(
                    self.live_sum(state, at).min(self.limit),
                    self.limit,
                    self.config.limit
                )),
            ),
            ("newestEntries [ms, cost]".into(), json!(shown)),
        ])
    }

    fn heap_bytes(&self, state: &SlidingLogState) -> usize {
        state.entries.capacity() * std::mem::size_of::<(Time, u128)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::rule::testing::{against_the_latest_time, drive, each_span, ms, slack};
    use proptest::prelude::*;

    fn limiter(limit: f64, window_ms: f64) -> SlidingLog {
        SlidingLog::new(SlidingLogConfig { limit, window_ms }).unwrap()
    }

    #[test]
    fn the_window_slides_with_each_entry() {
        let mut l = limiter(3.0, 1_000.0);
        assert!(l.try_acquire(ms(0), 1.0).unwrap().allowed);
        assert!(l.try_acquire(ms(400), 1.0).unwrap().allowed);
        let d = l.try_acquire(ms(800), 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0.0);
        assert_eq!(d.reset_after, Duration::from_millis(1_000));
        let d = l.try_acquire(ms(900), 1.0).unwrap();
        assert!(!d.allowed);
        // The entry at 0 expires at 1 000 ms.
        assert_eq!(d.retry_after, Duration::from_millis(100));
        assert!(!l.try_acquire(Time(999_999), 1.0).unwrap().allowed);
        assert!(l.try_acquire(ms(1_000), 1.0).unwrap().allowed);
        // Two units need both the 400 and the 800 entries to go: at 1 800 ms... the 400
        // entry frees one, and the 800 entry the second.
        let d = l.try_acquire(ms(1_000), 2.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(800));
    }

    #[test]
    fn no_boundary_burst() {
        let mut l = limiter(10.0, 1_000.0);
        let admitted = (0..10)
            .filter(|_| l.try_acquire(Time(999_999), 1.0).unwrap().allowed)
            .count()
            + (0..10)
                .filter(|_| l.try_acquire(Time(1_000_000), 1.0).unwrap().allowed)
                .count();
        assert_eq!(admitted, 10);
        assert_eq!(l.state().entries.len(), 1, "same-time entries merge");
    }

    #[test]
    fn a_full_log_denies_until_its_oldest_entry_expires() {
        let mut l = limiter(1e6, 1_000.0);
        for i in 0..MAX_LOG_ENTRIES as u64 {
            assert!(l.try_acquire(Time(i), 1.0).unwrap().allowed);
        }
        let d = l.try_acquire(Time(MAX_LOG_ENTRIES as u64), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration(1_000_000 - MAX_LOG_ENTRIES as u64));
        assert!(l.rule().heap_bytes(l.state()) >= MAX_LOG_ENTRIES * 32);
    }

    #[test]
    fn time_going_backwards_is_logged_at_the_clock() {
        let mut l = limiter(2.0, 1_000.0);
        assert!(l.try_acquire(ms(5_000), 1.0).unwrap().allowed);
        let d = l.try_acquire(ms(100), 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!(l.state().entries.back().unwrap().0, ms(5_000));
        assert_eq!(d.reset_after, Duration::from_millis(5_900));
        let d = l.try_acquire(ms(200), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(5_800));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every span of length < W admits at most `limit` (the exact bound), any span of
        /// length t at most `limit · (⌊t/W⌋ + 1)`; retry-after is exact.
        #[test]
        fn every_window_admits_at_most_the_limit(
            limit in 1.0f64..20.0,
            window_us in 1u64..2_000_000,
            requests in proptest::collection::vec((0u64..300_000, 0.01f64..=1.0), 1..150),
        ) {
            let mut l = SlidingLog::new(SlidingLogConfig { limit, window_ms: window_us as f64 / 1e3 }).unwrap();
            let w = l.rule().window.0;
            let admitted = drive(&mut l, limit, &requests, true)?;
            each_span(&admitted, |first, last, sum| {
                let bound = limit * (((last - first) / w) as f64 + 1.0);
                prop_assert!(sum <= slack(bound), "{} > {}", sum, bound);
                Ok(())
            })?;
        }

        /// Calls in any order never admit more than calls at the latest time seen.
        #[test]
        fn time_going_backwards_never_admits_more(
            requests in proptest::collection::vec((0u64..300_000, 0u64..2_000_000), 1..100),
        ) {
            against_the_latest_time(&limiter(5.0, 500.0), &requests, |a, b, now, latest| {
                prop_assert_eq!(now + a.reset_after.0, latest + b.reset_after.0);
                Ok(())
            })?;
        }

        #[test]
        fn arbitrary_numbers_never_panic(limit in any::<f64>(), window_ms in any::<f64>(), cost in any::<f64>(), now in any::<u64>()) {
            if let Ok(mut l) = SlidingLog::new(SlidingLogConfig { limit, window_ms }) {
                for dt in [0, 1, u64::MAX] {
                    if let Ok(d) = l.try_acquire(Time(now.saturating_add(dt)), cost) {
                        prop_assert!(d.remaining >= 0.0 && d.remaining <= limit);
                    }
                }
            }
        }
    }
}
