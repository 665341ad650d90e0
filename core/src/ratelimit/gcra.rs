//! GCRA, the generic cell rate algorithm: the leaky bucket as a meter, kept as a single
//! number per client, the theoretical arrival time (TAT) — when the client's schedule is
//! next free if it sent at exactly the permitted rate. With emission interval `T = 1/rate`
//! and room for `burst` tokens, a request of cost `c` at `t` conforms if
//! `max(TAT, t) + c·T − t ≤ burst · T`, and then `TAT ← max(TAT, t) + c·T`. For unit costs
//! this is the ITU-T I.371 virtual-scheduling form, `TAT ≤ t + τ` with burst tolerance
//! `τ = (burst − 1) · T`; it admits exactly what a token bucket of capacity `burst` and
//! refill `rate` admits (any span of length `t` admits at most `burst + rate · t`), while
//! storing one timestamp instead of a level and a time.
//!
//! References: ITU-T Recommendation I.371 (traffic control in B-ISDN), the ATM Forum
//! Traffic Management Specification 4.0 (GCRA, virtual scheduling and continuous-state
//! leaky bucket); Brandur Leach, "Rate limiting, cells, and GCRA" (2015); the `governor`
//! crate, against which tests/tests/ratelimit_governor.rs checks this one.
//!
//! Arithmetic: the TAT is held in nanoseconds (a `u128`, so no input time can overflow
//! it); `T` is the `f64` at or above `10^9 / rate` (never below it), and each request's
//! share `c·T` is the exact product rounded up to a whole nanosecond, so rounding only
//! ever denies, except that the horizon `⌈burst · T⌉` is rounded up too (so that a
//! request of the whole burst stays admissible): at most one nanosecond of schedule, a
//! billionth of a second's worth of the rate. Waits are rounded up to whole microseconds.
//!
//! Time going backwards: a call stamped earlier than an earlier one is evaluated at its own
//! time. The TAT only moves forward, so an earlier `now` finds it further ahead and never
//! gets more than the latest time would; see [`crate::ratelimit::units`].
//!
//! Complexity: O(1) time; 16 bytes of state per client.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::ratelimit::rule::{Limiter, Rule};
use crate::ratelimit::units::{
    check_now, cost_ns, cost_units, emission_interval_ns, limit_units, ns_to_us_ceil, u128_as_f64,
};
use crate::time::{Duration, Time};

/// Configuration of a GCRA limiter. JSON: `{"burst": 10, "ratePerSec": 5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct GcraConfig {
    /// The most cost admitted at once (a token bucket's capacity).
    pub burst: f64,
    /// The sustained rate, in cost per second.
    pub rate_per_sec: f64,
}

/// The virtual-scheduling arithmetic GCRA and the shaping leaky bucket share: a schedule
/// that may run at most `limit · T` ahead of now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VirtualSchedule {
    limit: f64,
    /// T, nanoseconds per token.
    interval_ns: f64,
    /// ⌈limit · T⌉: how far ahead of now the schedule may be after an admission.
    horizon_ns: u128,
    /// ⌈T⌉, capped at the horizon: the share of a request of cost 1, the usual cost.
    unit_share_ns: u128,
}

/// What the schedule says about one request, before it is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    pub decision: RateLimitDecision,
    /// When the request's slot starts: `max(TAT, now)`, in nanoseconds.
    pub start_ns: u128,
    /// The TAT after the decision (unchanged if denied).
    pub tat_ns: u128,
}

#[inline]
fn ns(t: Time) -> u128 {
    t.0 as u128 * 1_000
}

impl VirtualSchedule {
    /// Checks the rate and the limit, naming the fields as given.
    pub fn new(limit_field: &str, limit: f64, rate_field: &str, rate_per_sec: f64) -> Result<Self> {
        limit_units(limit_field, limit)?;
        let interval_ns = emission_interval_ns(rate_field, rate_per_sec, limit_field, limit)?;
        let horizon_ns = cost_ns(limit, interval_ns);
        Ok(VirtualSchedule {
            limit,
            interval_ns,
            horizon_ns,
            unit_share_ns: cost_ns(1.0, interval_ns).min(horizon_ns),
        })
    }

    /// T in nanoseconds.
    pub fn interval_ns(&self) -> f64 {
        self.interval_ns
    }

    /// Whether a request of `cost` at `now` fits a schedule at `tat_ns`: the new TAT if it
    /// does, `None` if not. The whole algorithm; [`VirtualSchedule::schedule`] adds the
    /// decision's fields.
    #[inline]
    pub fn admit(&self, tat_ns: u128, now: Time, cost: f64, what: &str) -> Result<Option<u128>> {
        let share = self.share(cost, what)?;
        check_now(now)?;
        let at = ns(now);
        let next = tat_ns.max(at) + share;
        Ok((next - at <= self.horizon_ns).then_some(next))
    }

    #[inline]
    fn share(&self, cost: f64, what: &str) -> Result<u128> {
        // NaN fails the comparisons too; the full check then names the problem.
        if !(cost > 0.0 && cost <= self.limit) {
            cost_units(cost, self.limit, what)?;
        }
        Ok(if cost == 1.0 {
            self.unit_share_ns
        } else {
            cost_ns(cost, self.interval_ns).min(self.horizon_ns)
        })
    }

    /// Decides a request of `cost` at `now` against a schedule at `tat_ns`.
    #[inline]
    pub fn schedule(&self, tat_ns: u128, now: Time, cost: f64, what: &str) -> Result<Scheduled> {
        let share = self.share(cost, what)?;
        check_now(now)?;
        let at = ns(now);
        let start = tat_ns.max(at);
        let next = start + share;
        let allowed = next - at <= self.horizon_ns;
        let tat = if allowed { next } else { tat_ns };
        let retry_after = if allowed {
            Duration::ZERO
        } else {
            // The first whole microsecond u with tat + share − u·1000 ≤ horizon.
            let earliest = ns_to_us_ceil(tat_ns + share - self.horizon_ns);
            Time(earliest).saturating_since(now)
        };
        Ok(Scheduled {
            decision: RateLimitDecision {
                allowed,
                limit: self.limit,
                remaining: self.level(tat, now),
                retry_after,
                reset_after: self.full_at(tat, now).saturating_since(now),
            },
            start_ns: start,
            tat_ns: tat,
        })
    }

    /// Tokens' worth of room at `now`.
    #[inline]
    pub fn level(&self, tat_ns: u128, now: Time) -> f64 {
        let ahead = tat_ns.saturating_sub(ns(now));
        if ahead == 0 {
            return self.limit;
        }
        let room = u128_as_f64(self.horizon_ns.saturating_sub(ahead)) / self.interval_ns;
        room.clamp(0.0, self.limit)
    }

    /// When the TAT is no longer ahead of time (whole microseconds, rounded up).
    #[inline]
    pub fn full_at(&self, tat_ns: u128, now: Time) -> Time {
        Time(ns_to_us_ceil(tat_ns)).max(now)
    }

    pub fn envelope(&self) -> Envelope {
        Envelope {
            burst: self.limit,
            rate_per_sec: 1e9 / self.interval_ns,
        }
    }

    pub fn fresh(&self, now: Time) -> u128 {
        ns(now)
    }

    pub fn is_idle(&self, tat_ns: u128, now: Time) -> bool {
        tat_ns <= ns(now)
    }

    /// How far the TAT is ahead of `now`, in ms.
    pub fn ahead_ms(&self, tat_ns: u128, now: Time) -> f64 {
        tat_ns.saturating_sub(ns(now)) as f64 / 1e6
    }
}

/// A validated GCRA configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcraRule {
    config: GcraConfig,
    schedule: VirtualSchedule,
}

/// One client's state: its theoretical arrival time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    pub tat_ns: u128,
}

/// A GCRA limiter for one client.
pub type Gcra = Limiter<GcraRule>;

impl Gcra {
    /// A limiter created at time zero.
    pub fn new(config: GcraConfig) -> Result<Self> {
        Ok(Limiter::from_rule(GcraRule::new(config)?, Time::ZERO))
    }
}

impl Gcra {
    /// Admits a request of `cost` at `now` if it conforms, like
    /// [`Limiter::try_acquire`] but answering only yes or no (no remaining allowance or
    /// waits computed): what `governor`'s `check` answers, for the hottest paths.
    #[inline]
    pub fn check(&mut self, now: Time, cost: f64) -> Result<bool> {
        let (rule, state) = self.parts_mut();
        let next = rule.schedule.admit(state.tat_ns, now, cost, "burst")?;
        if let Some(tat) = next {
            state.tat_ns = tat;
        }
        Ok(next.is_some())
    }
}

impl GcraRule {
    /// Checks every field, naming the first bad one.
    pub fn new(config: GcraConfig) -> Result<Self> {
        Ok(GcraRule {
            config,
            schedule: VirtualSchedule::new(
                "burst",
                config.burst,
                "ratePerSec",
                config.rate_per_sec,
            )?,
        })
    }

    pub fn config(&self) -> &GcraConfig {
        &self.config
    }

    pub fn schedule(&self) -> &VirtualSchedule {
        &self.schedule
    }
}

impl Rule for GcraRule {
    type State = GcraState;

    fn algorithm(&self) -> &'static str {
        "GCRA"
    }

    fn fresh(&self, now: Time) -> GcraState {
        GcraState {
            tat_ns: self.schedule.fresh(now),
        }
    }

    #[inline]
    fn decide(&self, state: &mut GcraState, now: Time, cost: f64) -> Result<RateLimitDecision> {
        let s = self.schedule.schedule(state.tat_ns, now, cost, "burst")?;
        state.tat_ns = s.tat_ns;
        Ok(s.decision)
    }

    fn is_idle(&self, state: &GcraState, now: Time) -> bool {
        self.schedule.is_idle(state.tat_ns, now)
    }

    fn level(&self, state: &GcraState, now: Time) -> f64 {
        self.schedule.level(state.tat_ns, now)
    }

    fn limit(&self) -> f64 {
        self.config.burst
    }

    fn full_at(&self, state: &GcraState, now: Time) -> Time {
        self.schedule.full_at(state.tat_ns, now)
    }

    fn envelope(&self) -> Envelope {
        self.schedule.envelope()
    }

    fn fields(&self, state: &GcraState, now: Time) -> BTreeMap<String, Value> {
        let t_ms = self.schedule.interval_ns / 1e6;
        BTreeMap::from([
            ("burst".into(), json!(self.config.burst)),
            ("ratePerSec".into(), json!(self.config.rate_per_sec)),
            ("emissionIntervalMs".into(), json!(t_ms)),
            (
                "burstToleranceMs".into(),
                json!((self.config.burst - 1.0).max(0.0) * t_ms),
            ),
            ("tatMs".into(), json!(state.tat_ns as f64 / 1e6)),
            (
                "tatAheadMs".into(),
                json!(self.schedule.ahead_ms(state.tat_ns, now)),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::rule::testing::ms;
    use crate::ratelimit::{TokenBucket, TokenBucketConfig};
    use proptest::prelude::*;

    fn gcra(burst: f64, rate: f64) -> Gcra {
        Gcra::new(GcraConfig {
            burst,
            rate_per_sec: rate,
        })
        .unwrap()
    }

    #[test]
    fn admits_a_burst_then_one_per_interval() {
        let mut g = gcra(3.0, 10.0);
        for i in 0..3 {
            let d = g.try_acquire(ms(0), 1.0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, 2.0 - i as f64);
        }
        assert_eq!(g.state().tat_ns, 300_000_000);
        let d = g.try_acquire(ms(0), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(100));
        assert_eq!(d.reset_after, Duration::from_millis(300));
        assert!(!g.try_acquire(Time(99_999), 1.0).unwrap().allowed);
        assert!(g.try_acquire(ms(100), 1.0).unwrap().allowed);
        assert!(!g.try_acquire(ms(150), 1.0).unwrap().allowed);
        // A weighted request waits for its whole share.
        let d = g.try_acquire(ms(150), 3.0).unwrap();
        assert_eq!(d.retry_after, Duration::from_millis(250));
    }

    #[test]
    fn check_decides_like_try_acquire() {
        let mut a = gcra(3.0, 7.0);
        let mut b = a.clone();
        for (i, cost) in [1.0, 2.5, 1.0, 0.3, 3.0, 1.0, 1.0].iter().enumerate() {
            let now = Time(i as u64 * 90_000);
            assert_eq!(
                a.check(now, *cost).unwrap(),
                b.try_acquire(now, *cost).unwrap().allowed
            );
            assert_eq!(a, b);
        }
        assert!(a.check(Time(0), 4.0).is_err());
    }

    #[test]
    fn time_going_backwards_is_never_more_permissive() {
        let mut g = gcra(2.0, 1.0);
        assert!(g.try_acquire(ms(10_000), 2.0).unwrap().allowed);
        let d = g.try_acquire(ms(1_000), 1.0).unwrap();
        assert!(!d.allowed);
        // From the caller's time: the TAT (12 s) less the room for a burst of 2 (2 s),
        // plus the request's 1 s: 11 s, 10 s after 1 s.
        assert_eq!(d.retry_after, Duration::from_secs(10));
        assert_eq!(g.state().tat_ns, 12_000_000_000);
    }

    #[test]
    fn bad_configs_and_costs_name_the_field() {
        for (burst, rate, field) in [
            (0.0, 1.0, "burst"),
            (f64::NAN, 1.0, "burst"),
            (1.0, 0.0, "ratePerSec"),
            (1.0, -2.0, "ratePerSec"),
            (1e15, 1e-9, "ratePerSec"),
        ] {
            let e = Gcra::new(GcraConfig {
                burst,
                rate_per_sec: rate,
            })
            .unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        let mut g = gcra(2.0, 1.0);
        let before = g.clone();
        for cost in [0.0, f64::NAN, 2.5, -1.0] {
            let e = g.try_acquire(ms(0), cost).unwrap_err();
            assert!(e.to_string().contains("`cost`"), "{e}");
        }
        assert_eq!(g, before);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// GCRA admits what a token bucket of the same capacity and rate admits, request
        /// for request, whenever the emission interval is a whole number of nanoseconds and
        /// times are whole microseconds (so neither rounds); and its waits are exact.
        #[test]
        fn decides_like_a_token_bucket(
            burst in 1u32..20,
            rate in prop::sample::select(vec![1.0, 2.0, 4.0, 5.0, 8.0, 10.0, 20.0, 100.0, 1_000.0]),
            requests in proptest::collection::vec((0u64..400_000, 1u32..=20), 1..150),
        ) {
            let burst = f64::from(burst);
            let mut g = gcra(burst, rate);
            let mut b = TokenBucket::new(TokenBucketConfig::new(burst, rate)).unwrap();
            let mut now = 0;
            for (gap, cost) in requests {
                now += gap;
                let cost = f64::from(cost).min(burst);
                let dg = g.try_acquire(Time(now), cost).unwrap();
                let db = b.try_acquire(Time(now), cost).unwrap();
                prop_assert_eq!(dg.allowed, db.allowed, "at {} cost {}", now, cost);
                prop_assert!((dg.remaining - db.remaining).abs() < 1e-6);
                prop_assert_eq!(dg.retry_after, db.retry_after);
                prop_assert_eq!(dg.reset_after, db.reset_after);
            }
        }

        /// Any window [t_i, t_j] between admissions admits at most burst + rate · length;
        /// retry-after is exact to the microsecond.
        #[test]
        fn envelope_holds_and_waits_are_exact(
            burst in 0.5f64..30.0,
            rate in 0.01f64..300.0,
            requests in proptest::collection::vec((0u64..400_000, 0.01f64..=1.0), 1..150),
        ) {
            let mut g = gcra(burst, rate);
            let mut now = 0;
            let mut admitted: Vec<(u64, f64)> = Vec::new();
            for (gap, frac) in requests {
                now += gap;
                let cost = frac * burst;
                let d = g.try_acquire(Time(now), cost).unwrap();
                if d.allowed {
                    admitted.push((now, cost));
                } else {
                    let at = now + d.retry_after.0;
                    prop_assert!(g.peek(Time(at), cost).unwrap().allowed);
                    prop_assert!(!g.peek(Time(at - 1), cost).unwrap().allowed);
                }
            }
            for i in 0..admitted.len() {
                let mut sum = 0.0;
                for j in i..admitted.len() {
                    sum += admitted[j].1;
                    let t = (admitted[j].0 - admitted[i].0) as f64 / 1e6;
                    let bound = burst + rate * t;
                    prop_assert!(sum <= bound * (1.0 + 1e-9) + 1e-9, "{} > {}", sum, bound);
                }
            }
        }

        /// Calls in any order: never more admitted in total than the latest time allows.
        #[test]
        fn time_going_backwards_never_admits_more(
            requests in proptest::collection::vec((0u64..300_000, 0u64..2_000_000), 1..100),
        ) {
            let mut shuffled = gcra(5.0, 4.0);
            let (mut base, mut latest) = (0u64, 0u64);
            let mut total = 0u32;
            for (gap, back) in requests {
                base += gap;
                let now = base.saturating_sub(back);
                latest = latest.max(now);
                let level_at_latest = shuffled.level(Time(latest));
                prop_assert!(shuffled.level(Time(now)) <= level_at_latest);
                let d = shuffled.try_acquire(Time(now), 1.0).unwrap();
                total += u32::from(d.allowed);
                if d.allowed {
                    prop_assert!(level_at_latest >= 1.0 - 1e-9);
                }
            }
            prop_assert!(f64::from(total) <= 5.0 + 4.0 * latest as f64 / 1e6 + 1e-9);
        }

        #[test]
        fn arbitrary_numbers_never_panic(burst in any::<f64>(), rate in any::<f64>(), cost in any::<f64>(), now in any::<u64>()) {
            if let Ok(mut g) = Gcra::new(GcraConfig { burst, rate_per_sec: rate }) {
                for dt in [0, 1, u64::MAX] {
                    if let Ok(d) = g.try_acquire(Time(now.saturating_add(dt)), cost) {
                        prop_assert!(d.remaining >= 0.0 && d.remaining <= burst);
                    }
                }
            }
        }
    }
}
