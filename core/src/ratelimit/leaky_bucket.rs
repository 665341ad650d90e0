//! The leaky bucket as a queue: requests enter a FIFO queue of bounded size and leave it at
//! a fixed rate, one token's worth every `T = 1/drainPerSec`; a request that does not fit
//! in the queue is rejected. Unlike every other limiter here it *shapes* rather than
//! polices: an admitted request is not let through now but told when it will leave the
//! queue (its delay), so the output is smooth — in any span of length `t` at most
//! `largest cost + drainPerSec · t` leaves — however bursty the input.
//!
//! The queue needs no list of its requests: with the queue draining continuously, all that
//! matters is when it will be empty, `E`. A request of cost `c` arriving at `t` finds a
//! backlog of `max(E − t, 0) / T` tokens; it fits if backlog plus `c` is at most
//! `queueSize`; it leaves the queue (starts draining) at `max(E, t)` and `E` becomes
//! `max(E, t) + c·T`. That is exactly GCRA's update with `burst = queueSize` — the
//! meter and the queue admit the same requests, and differ in whether the admitted ones
//! wait (the continuous-state leaky bucket and virtual scheduling of the ATM Forum TM 4.0
//! are the same algorithm). So this module reuses [`VirtualSchedule`] and adds the delay.
//!
//! References: J. Turner, "New directions in communications (or which way to the
//! information age?)", IEEE Communications Magazine, 1986 (the leaky bucket); ATM Forum
//! Traffic Management Specification 4.0 (1996); nginx's `limit_req` with `burst`
//! (without `nodelay`) is this shaper.
//!
//! Time going backwards: a call stamped earlier than an earlier one is evaluated at its
//! own time; the queue's end only moves forward, so it finds a longer backlog and a longer
//! delay, never more room (see [`crate::ratelimit::units`]).
//!
//! Complexity: O(1) time; 16 bytes of state per client.
//!
//! Lab: `ratelimit.leaky-bucket`, the comparison lab ([`crate::ratelimit::compare_lab`]) opened
//! with this algorithm in front (GCRA, its meter twin, has no id of its own and
//! sits beside it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::gcra::VirtualSchedule;
use crate::ratelimit::lane::Envelope;
use crate::ratelimit::rule::{Limiter, Rule};
use crate::ratelimit::units::ns_to_us_ceil;
use crate::time::{Duration, Time};

/// Configuration of a shaping leaky bucket. JSON: `{"queueSize": 10, "drainPerSec": 5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LeakyBucketConfig {
    /// The most cost the queue holds (including the request leaving it).
    pub queue_size: f64,
    /// The fixed rate the queue drains at, in cost per second.
    pub drain_per_sec: f64,
}

/// A shaping decision: the policing decision, and for an admitted request when it leaves
/// the queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ShapingDecision {
    #[serde(flatten)]
    pub decision: RateLimitDecision,
    /// How long an admitted request waits in the queue before it leaves (zero if denied or
    /// if the queue was empty), whole microseconds rounded up.
    #[cfg_attr(feature = "tsify", tsify(type = "Duration"))]
    pub delay: Duration,
}

impl From<ShapingDecision> for RateLimitDecision {
    fn from(s: ShapingDecision) -> Self {
        s.decision
    }
}

/// A validated leaky-bucket configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyBucketRule {
    config: LeakyBucketConfig,
    schedule: VirtualSchedule,
}

/// One client's queue: when it will be empty, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakyBucketState {
    pub empty_at_ns: u128,
}

/// A shaping leaky bucket for one client.
pub type LeakyBucket = Limiter<LeakyBucketRule>;

impl LeakyBucket {
    /// A bucket created at time zero.
    pub fn new(config: LeakyBucketConfig) -> Result<Self> {
        Ok(Limiter::from_rule(
            LeakyBucketRule::new(config)?,
            Time::ZERO,
        ))
    }

    /// Queues a request of `cost` at `now` if it fits, saying when it leaves the queue.
    #[inline]
    pub fn try_enqueue(&mut self, now: Time, cost: f64) -> Result<ShapingDecision> {
        let (rule, state) = self.parts_mut();
        rule.shape(state, now, cost)
    }
}

impl LeakyBucketRule {
    /// Checks every field, naming the first bad one.
    pub fn new(config: LeakyBucketConfig) -> Result<Self> {
        Ok(LeakyBucketRule {
            config,
            schedule: VirtualSchedule::new(
                "queueSize",
                config.queue_size,
                "drainPerSec",
                config.drain_per_sec,
            )?,
        })
    }

    pub fn config(&self) -> &LeakyBucketConfig {
        &self.config
    }

    /// Decides a request and, if admitted, when it leaves the queue.
    #[inline]
    pub fn shape(
        &self,
        state: &mut LeakyBucketState,
        now: Time,
        cost: f64,
    ) -> Result<ShapingDecision> {
        let s = self
            .schedule
            .schedule(state.empty_at_ns, now, cost, "queue size")?;
        state.empty_at_ns = s.tat_ns;
        let delay = if s.decision.allowed {
            Time(ns_to_us_ceil(s.start_ns)).saturating_since(now)
        } else {
            Duration::ZERO
        };
        Ok(ShapingDecision {
            decision: s.decision,
            delay,
        })
    }

    /// The backlog at `now`, in cost.
    pub fn backlog(&self, state: &LeakyBucketState, now: Time) -> f64 {
        self.config.queue_size - self.schedule.level(state.empty_at_ns, now)
    }
}

impl Rule for LeakyBucketRule {
    type State = LeakyBucketState;

    fn algorithm(&self) -> &'static str {
        "leaky bucket (queue)"
    }

    fn fresh(&self, now: Time) -> LeakyBucketState {
        LeakyBucketState {
            empty_at_ns: self.schedule.fresh(now),
        }
    }

    fn decide(
        &self,
        state: &mut LeakyBucketState,
        now: Time,
        cost: f64,
    ) -> Result<RateLimitDecision> {
        self.shape(state, now, cost).map(RateLimitDecision::from)
    }

    fn is_idle(&self, state: &LeakyBucketState, now: Time) -> bool {
        self.schedule.is_idle(state.empty_at_ns, now)
    }

    fn level(&self, state: &LeakyBucketState, now: Time) -> f64 {
        self.schedule.level(state.empty_at_ns, now)
    }

    fn limit(&self) -> f64 {
        self.config.queue_size
    }

    fn full_at(&self, state: &LeakyBucketState, now: Time) -> Time {
        self.schedule.full_at(state.empty_at_ns, now)
    }

    /// What it admits into the queue; what leaves is smoother still.
    fn envelope(&self) -> Envelope {
        self.schedule.envelope()
    }

    fn fields(&self, state: &LeakyBucketState, now: Time) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("queueSize".into(), json!(self.config.queue_size)),
            ("drainPerSec".into(), json!(self.config.drain_per_sec)),
            ("backlog".into(), json!(self.backlog(state, now))),
            (
                "emptyInMs".into(),
                json!(self.schedule.ahead_ms(state.empty_at_ns, now)),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::gcra::{Gcra, GcraConfig};
    use crate::ratelimit::rule::testing::ms;
    use proptest::prelude::*;

    fn bucket(queue_size: f64, drain_per_sec: f64) -> LeakyBucket {
        LeakyBucket::new(LeakyBucketConfig {
            queue_size,
            drain_per_sec,
        })
        .unwrap()
    }

    #[test]
    fn a_burst_is_queued_and_released_at_the_drain_rate() {
        let mut b = bucket(4.0, 10.0);
        let delays: Vec<u64> = (0..4)
            .map(|_| b.try_enqueue(ms(0), 1.0).unwrap())
            .map(|d| {
                assert!(d.decision.allowed);
                d.delay.0 / 1_000
            })
            .collect();
        assert_eq!(delays, [0, 100, 200, 300]);
        let d = b.try_enqueue(ms(0), 1.0).unwrap();
        assert!(!d.decision.allowed);
        assert_eq!(d.delay, Duration::ZERO);
        assert_eq!(d.decision.retry_after, Duration::from_millis(100));
        assert_eq!(b.rule().backlog(b.state(), ms(0)), 4.0);
        assert_eq!(b.rule().backlog(b.state(), ms(250)), 1.5);
        // After 250 ms, 2.5 left: a request waits for the 1.5 ahead of it.
        let d = b.try_enqueue(ms(250), 1.0).unwrap();
        assert_eq!(d.delay, Duration::from_millis(150));
    }

    #[test]
    fn time_going_backwards_finds_a_longer_queue() {
        let mut b = bucket(3.0, 1.0);
        assert!(b.try_enqueue(ms(5_000), 1.0).unwrap().decision.allowed);
        // At its own time the queue, empty at 6 s, holds 2: one more fits.
        let d = b.try_enqueue(ms(4_000), 1.0).unwrap();
        assert!(d.decision.allowed);
        // The queue empties at 6 s; this one leaves then, 2 s after its own time.
        assert_eq!(d.delay, Duration::from_secs(2));
        let d = b.try_enqueue(ms(4_000), 1.0).unwrap();
        assert!(!d.decision.allowed);
    }

    #[test]
    fn decision_json_has_the_delay_beside_the_fields() {
        let d = bucket(2.0, 1.0).try_enqueue(ms(0), 1.0).unwrap();
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            serde_json::json!({"allowed": true, "limit": 2.0, "remaining": 1.0,
                "retryAfter": 0, "resetAfter": 1_000_000, "delay": 0})
        );
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (q, r, field) in [
            (0.0, 1.0, "queueSize"),
            (1.0, 0.0, "drainPerSec"),
            (1e15, 1e-9, "drainPerSec"),
        ] {
            let e = LeakyBucket::new(LeakyBucketConfig {
                queue_size: q,
                drain_per_sec: r,
            })
            .unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        let e = bucket(2.0, 1.0).try_enqueue(ms(0), 3.0).unwrap_err();
        assert!(e.to_string().contains("`cost`"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The queue admits exactly what GCRA with `burst = queueSize` admits; the backlog
        /// never exceeds the queue; departures are in arrival order and spaced by at least
        /// each request's drain time, so the output rate is the drain rate.
        #[test]
        fn shapes_to_the_drain_rate(
            queue in 0.5f64..30.0,
            rate in 0.01f64..300.0,
            requests in proptest::collection::vec((0u64..400_000, 0.01f64..=1.0), 1..150),
        ) {
            let mut b = bucket(queue, rate);
            let mut g = Gcra::new(GcraConfig { burst: queue, rate_per_sec: rate }).unwrap();
            let mut now = 0;
            let mut last: Option<(u64, f64)> = None;
            for (gap, frac) in requests {
                now += gap;
                let cost = frac * queue;
                let d = b.try_enqueue(Time(now), cost).unwrap();
                prop_assert_eq!(d.decision, g.try_acquire(Time(now), cost).unwrap());
                prop_assert!(b.rule().backlog(b.state(), Time(now)) <= queue * (1.0 + 1e-12));
                if d.decision.allowed {
                    let leaves = now + d.delay.0;
                    if let Some((prev, prev_cost)) = last {
                        // Rounded to microseconds: up to 1 µs early.
                        prop_assert!(leaves as f64 + 1.0 >= prev as f64 + prev_cost / rate * 1e6);
                    }
                    last = Some((leaves, cost));
                }
            }
        }
    }
}
