//! The fixed-window counter: time is cut into windows of length `W` aligned to time zero
//! (`[kW, (k+1)W)`), each with a counter; a request of cost `c` is admitted if the window's
//! counter plus `c` stays within `limit`. One counter and one window index per client,
//! O(1) per decision: the cheapest limiter there is, and the one a `INCR key:{k}` +
//! `EXPIRE` in a key-value store implements.
//!
//! Its flaw is the point of its lab: windows are independent, so `limit` admitted at the
//! end of one window and `limit` at the start of the next make `2 · limit` within an
//! instant. In any span of length `t` it admits at most `limit · (⌊t/W⌋ + 2)`, which is
//! within the envelope `2 · limit + (limit / W) · t`.
//!
//! Reference: the "fixed window" of rate-limiting folklore, as described for instance in
//! Cloudflare's "How we built rate limiting capable of scaling to millions of domains"
//! (2017) and the Stripe and Kong rate-limiter write-ups.
//!
//! Time going backwards: a call stamped in a window earlier than the newest one seen is
//! counted in the newest window (the older counters are gone, and counting it there never
//! admits more than the newest time would); waits are relative to the caller's `now`.
//!
//! Lab: `ratelimit.fixed-window`, the comparison lab ([`crate::ratelimit::compare_lab`]) opened
//! with this algorithm in front.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::ratelimit::rule::{Limiter, Rule};
use crate::ratelimit::units::{as_tokens, check_now, cost_units, limit_units, window};
use crate::time::{Duration, Time};

/// Configuration of a fixed-window limiter. JSON: `{"limit": 10, "windowMs": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FixedWindowConfig {
    /// The most cost admitted per window.
    pub limit: f64,
    /// The window length in milliseconds (at least 0.001).
    pub window_ms: f64,
}

/// A validated fixed-window configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWindowRule {
    config: FixedWindowConfig,
    limit: u128,
    window: Duration,
}

/// One client's window: its index and the units admitted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindowState {
    pub window: u64,
    pub used: u128,
}

/// A fixed-window limiter for one client.
pub type FixedWindow = Limiter<FixedWindowRule>;

impl FixedWindowRule {
    /// Checks every field, naming the first bad one.
    pub fn new(config: FixedWindowConfig) -> Result<Self> {
        let limit = limit_units("limit", config.limit)?;
        let window = window("windowMs", config.window_ms)?;
        Ok(FixedWindowRule {
            config,
            limit,
            window,
        })
    }

    pub fn config(&self) -> &FixedWindowConfig {
        &self.config
    }

    fn index(&self, now: Time) -> u64 {
        now.0 / self.window.0
    }

    fn window_end(&self, index: u64) -> Time {
        Time(index.saturating_add(1).saturating_mul(self.window.0))
    }

    /// The state as of `now`: a later window starts empty; an earlier `now` sees the
    /// newest window.
    fn current(&self, state: &FixedWindowState, now: Time) -> FixedWindowState {
        let index = self.index(now);
        if index > state.window {
            FixedWindowState {
                window: index,
                used: 0,
            }
        } else {
            *state
        }
    }
}

impl FixedWindow {
    /// A limiter created at time zero.
    pub fn new(config: FixedWindowConfig) -> Result<Self> {
        Ok(Limiter::from_rule(
            FixedWindowRule::new(config)?,
            Time::ZERO,
        ))
    }
}

impl Rule for FixedWindowRule {
    type State = FixedWindowState;

    fn algorithm(&self) -> &'static str {
        "fixed window"
    }

    fn fresh(&self, now: Time) -> FixedWindowState {
        FixedWindowState {
            window: self.index(now),
            used: 0,
        }
    }

    fn decide(
        &self,
        state: &mut FixedWindowState,
        now: Time,
        cost: f64,
    ) -> Result<RateLimitDecision> {
        let cost = cost_units(cost, self.config.limit, "limit")?;
        check_now(now)?;
        let mut current = self.current(state, now);
        let end = self.window_end(current.window);
        let allowed = current.used.saturating_add(cost) <= self.limit;
        if allowed {
            current.used += cost;
        }
        *state = current;
        let until_end = end.saturating_since(now);
        Ok(RateLimitDecision {
            allowed,
            limit: self.config.limit,
            remaining: as_tokens(self.limit - current.used, self.limit, self.config.limit),
            retry_after: if allowed { Duration::ZERO } else { until_end },
            reset_after: if current.used == 0 {
                Duration::ZERO
            } else {
                until_end
            },
        })
    }

    fn is_idle(&self, state: &FixedWindowState, now: Time) -> bool {
        self.current(state, now).used == 0
    }

    fn level(&self, state: &FixedWindowState, now: Time) -> f64 {
        let used = self.current(state, now).used;
        as_tokens(self.limit - used, self.limit, self.config.limit)
    }

    fn limit(&self) -> f64 {
        self.config.limit
    }

    fn full_at(&self, state: &FixedWindowState, now: Time) -> Time {
        let current = self.current(state, now);
        if current.used == 0 {
            now.max(Time(current.window.saturating_mul(self.window.0)))
        } else {
            self.window_end(current.window)
        }
    }

    fn envelope(&self) -> Envelope {
        Envelope {
            burst: 2.0 * self.config.limit,
            rate_per_sec: self.config.limit / self.window.as_secs_f64(),
        }
    }

    fn fields(&self, state: &FixedWindowState, now: Time) -> BTreeMap<String, Value> {
        let current = self.current(state, now);
        let start = Time(current.window.saturating_mul(self.window.0));
        BTreeMap::from([
            ("limit".into(), json!(self.config.limit)),
            ("windowMs".into(), json!(self.config.window_ms)),
            ("windowStartMs".into(), json!(start.as_millis_f64())),
            (
                "windowEndMs".into(),
                json!(self.window_end(current.window).as_millis_f64()),
            ),
            (
                "used".into(),
                json!(as_tokens(current.used, self.limit, self.config.limit)),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DistlabError;
    use crate::ratelimit::rule::testing::{against_the_latest_time, drive, each_span, ms, slack};
    use proptest::prelude::*;

    fn limiter(limit: f64, window_ms: f64) -> FixedWindow {
        FixedWindow::new(FixedWindowConfig { limit, window_ms }).unwrap()
    }

    #[test]
    fn counts_per_window_and_resets_at_the_boundary() {
        let mut l = limiter(3.0, 1_000.0);
        for i in 0..3 {
            let d = l.try_acquire(ms(100), 1.0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, 2.0 - i as f64);
            assert_eq!(d.reset_after, Duration::from_millis(900));
        }
        let d = l.try_acquire(ms(400), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(600));
        assert_eq!(d.remaining, 0.0);
        assert!(!l.try_acquire(Time(999_999), 1.0).unwrap().allowed);
        let d = l.try_acquire(ms(1_000), 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 2.0);
    }

    #[test]
    fn the_boundary_burst_admits_twice_the_limit_in_two_microseconds() {
        let mut l = limiter(10.0, 1_000.0);
        let before = (0..10)
            .filter(|_| l.try_acquire(Time(999_999), 1.0).unwrap().allowed)
            .count();
        let after = (0..10)
            .filter(|_| l.try_acquire(Time(1_000_000), 1.0).unwrap().allowed)
            .count();
        assert_eq!(before + after, 20);
    }

    #[test]
    fn time_going_backwards_counts_in_the_newest_window() {
        let mut l = limiter(2.0, 1_000.0);
        assert!(l.try_acquire(ms(1_500), 2.0).unwrap().allowed);
        // Stamped in the previous window: counted in the newest one, so denied; the wait is
        // from the caller's time to the newest window's end.
        let d = l.try_acquire(ms(500), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(1_500));
        assert_eq!(l.state().window, 1);
        assert!(l.try_acquire(ms(2_000), 1.0).unwrap().allowed);
    }

    #[test]
    fn bad_configs_and_costs_name_the_field() {
        for (limit, window_ms, field) in [
            (0.0, 1.0, "limit"),
            (f64::NAN, 1.0, "limit"),
            (1e16, 1.0, "limit"),
            (1.0, 0.0, "windowMs"),
            (1.0, -5.0, "windowMs"),
            (1.0, f64::INFINITY, "windowMs"),
            (1.0, 1e300, "windowMs"),
        ] {
            let e = FixedWindow::new(FixedWindowConfig { limit, window_ms }).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        let mut l = limiter(2.0, 10.0);
        let before = l.clone();
        for cost in [0.0, -1.0, f64::NAN, 2.5] {
            let e = l.try_acquire(ms(1), cost).unwrap_err();
            assert!(matches!(e, DistlabError::InvalidField { ref field, .. } if field == "cost"));
        }
        assert_eq!(l, before);
        let cfg: FixedWindowConfig =
            serde_json::from_str(r#"{"limit": 5, "windowMs": 100}"#).unwrap();
        assert_eq!(
            cfg,
            FixedWindowConfig {
                limit: 5.0,
                window_ms: 100.0
            }
        );
        assert!(serde_json::from_str::<FixedWindowConfig>(r#"{"limit": 5}"#).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every aligned window admits at most `limit`, and any span of length `t` at most
        /// `limit · (⌊t/W⌋ + 2)`; retry-after is exact.
        #[test]
        fn windows_admit_at_most_the_limit(
            limit in 1.0f64..20.0,
            window_us in 1u64..2_000_000,
            requests in proptest::collection::vec((0u64..300_000, 0.01f64..=1.0), 1..150),
        ) {
            let mut l = FixedWindow::new(FixedWindowConfig { limit, window_ms: window_us as f64 / 1e3 }).unwrap();
            let w = l.rule().window.0;
            let env = l.rule().envelope();
            let admitted = drive(&mut l, limit, &requests, false)?;
            each_span(&admitted, |first, last, sum| {
                let t = last - first;
                prop_assert!(sum <= slack(limit * ((t / w) as f64 + 2.0)));
                if first / w == last / w {
                    prop_assert!(sum <= slack(limit));
                }
                prop_assert!(sum <= slack(env.burst + env.rate_per_sec * t as f64 / 1e6));
                Ok(())
            })?;
        }

        /// Calls in any order never admit more than calls at the latest time seen.
        #[test]
        fn time_going_backwards_never_admits_more(
            requests in proptest::collection::vec((0u64..300_000, 0u64..2_000_000), 1..100),
        ) {
            against_the_latest_time(&limiter(5.0, 500.0), &requests, |a, b, _, _| {
                prop_assert_eq!(a.remaining, b.remaining);
                Ok(())
            })?;
        }

        #[test]
        fn arbitrary_numbers_never_panic(limit in any::<f64>(), window_ms in any::<f64>(), cost in any::<f64>(), now in any::<u64>()) {
            if let Ok(mut l) = FixedWindow::new(FixedWindowConfig { limit, window_ms })
                && let Ok(d) = l.try_acquire(Time(now), cost)
            {
                prop_assert!(d.remaining >= 0.0 && d.remaining <= limit);
            }
        }
    }
}
