//! The token bucket: a bucket holds up to `capacity` tokens and gains `refill_per_sec` of
//! them continuously; a request of cost `c` is admitted if at least `c` tokens are present
//! and then removes them. It allows bursts of up to `capacity` and a long-run rate of
//! `refill_per_sec`: in any window of length `t` it admits at most
//! `capacity + refill_per_sec · t` worth of cost.
//!
//! Reference: the classic token bucket of traffic shaping, as specified for one bucket by
//! the single-rate three-colour marker (RFC 2697, "committed" bucket) and RFC 2698, with a
//! continuous refill instead of a per-tick one. This is the bucket-level formulation, not
//! GCRA (the equivalent "virtual scheduling" form belongs in its own module).
//!
//! Complexity: O(1) time and space per decision. Computing `retry_after` and `reset_after`
//! exactly costs a handful of extra evaluations of the refill formula (see
//! `first_satisfying`).
//!
//! Arithmetic: tokens are counted as integers, in billionths of a token ([`UNITS_PER_TOKEN`]);
//! costs are rounded up to the next billionth, so rounding can only ever deny, never admit.
//! See [`TokenBucket`] for why.
//!
//! Time going backwards: the bucket keeps a clock, the latest `now` it was asked to decide
//! at. A call with an earlier `now` is evaluated at the bucket's clock: it gets no refill,
//! and the clock does not move back. So no ordering of calls can mint a token that the
//! latest time seen would not already have allowed.

pub mod lab;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result, check_positive, check_range};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::ratelimit::rule::Rule;
use crate::ratelimit::units::{binary_parts, ceil_product, check_now};
use crate::time::{Duration, MAX_DURATION, Time};

/// Largest capacity and refill rate (per second) accepted.
pub const MAX_TOKENS: f64 = 1e15;
/// Smallest capacity accepted: a thousand units, so that costs still have resolution.
pub const MIN_CAPACITY: f64 = 1e-6;
/// The bucket's integer unit: a billionth of a token.
pub const UNITS_PER_TOKEN: f64 = 1e9;
/// A refill of one token per second, in units per microsecond.
const UNITS_PER_TOKEN_PER_SEC_PER_US: u64 = 1_000;

/// Configuration of a [`TokenBucket`]. JSON: `{"capacity": 10, "refillPerSec": 5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct TokenBucketConfig {
    /// The most tokens the bucket holds, and so the largest burst (and the largest cost) it
    /// can ever admit.
    pub capacity: f64,
    /// Tokens added per second, continuously.
    pub refill_per_sec: f64,
    /// Tokens at the start; a full bucket if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_tokens: Option<f64>,
}

impl TokenBucketConfig {
    /// A configuration with a full bucket at the start.
    pub fn new(capacity: f64, refill_per_sec: f64) -> Self {
        TokenBucketConfig {
            capacity,
            refill_per_sec,
            initial_tokens: None,
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_positive("capacity", self.capacity)?;
        check_range("capacity", self.capacity, MIN_CAPACITY, MAX_TOKENS)?;
        check_positive("refillPerSec", self.refill_per_sec)?;
        check_range("refillPerSec", self.refill_per_sec, 0.0, MAX_TOKENS)?;
        // Every wait the bucket reports is at most the time to fill it from empty, so
        // bounding that keeps every `Duration` it returns meaningful.
        let fill_us = self.capacity / self.refill_per_sec * 1e6;
        if fill_us > MAX_DURATION.0 as f64 {
            return Err(DistlabError::field(
                "refillPerSec",
                format!(
                    "{} tokens/s would take {} s to fill a capacity of {}, longer than the \
                     maximum {} s",
                    self.refill_per_sec,
                    fill_us / 1e6,
                    self.capacity,
                    MAX_DURATION.0 / 1_000_000
                ),
            ));
        }
        if let Some(initial) = self.initial_tokens {
            check_range("initialTokens", initial, 0.0, self.capacity)?;
        }
        Ok(())
    }
}

/// A token bucket; see the module documentation.
///
/// Why integers: with `f64` tokens every admission rounds, and the errors are visible at
/// exactly the moments a rate limiter is judged by: a client polling every 100 µs against
/// 1 000 tokens/s got 1 009 tokens in the first second instead of 1 010, because the level
/// at t = 1 s came out a few ulps short of 1. Counting billionths of a token in a `u128`,
/// with the rate held exactly (`ExactRate`: the binary value of the `f64` given, times 1000
/// in integers, never rounded up), the level at time `t` is
/// `min(capacity, tokens + minted(t) − minted(last admission))` where
/// `minted(t) = ⌊(t − start) · rate⌋` is one exact function of time. Nothing accumulates:
/// a million tiny refill steps and one big step give the same integer, and the only loss is
/// less than one billionth of a token, once, never compounding. Denials write nothing but
/// the clock; peeks and `tokens_at` write nothing at all.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    shape: BucketShape,
    state: BucketState,
}

/// What a bucket is, as opposed to where it stands: the configuration and the exact
/// constants derived from it. Shared by every key of a keyed token bucket.
#[derive(Debug, Clone, PartialEq)]
struct BucketShape {
    config: TokenBucketConfig,
    /// Capacity in units.
    capacity: u128,
    /// Units present when a bucket is created (`initialTokens`, else the capacity).
    initial: u128,
    /// Refill in units per microsecond, exactly.
    rate: ExactRate,
}

/// Where one bucket stands: all a keyed token bucket stores per key (32 bytes).
///
/// The level `since_start` µs after the start is `min(capacity, minted(since_start) −
/// offset)`, where `offset` is `minted − tokens` as of the latest admission (or creation):
/// the tokens then, plus what has been minted since. One signed number instead of the pair
/// gives the same integers with half the memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    /// Refill is counted from here: `rate.minted(t − start)` units by time `t`.
    start: Time,
    /// The latest `now` any decision was made at; earlier times are evaluated here.
    clock: Time,
    offset: i128,
}

impl TokenBucket {
    /// A bucket created at time zero.
    pub fn new(config: TokenBucketConfig) -> Result<Self> {
        TokenBucket::starting_at(config, Time::ZERO)
    }

    /// A bucket created at `start`: its initial tokens are those present at `start`.
    pub fn starting_at(config: TokenBucketConfig, start: Time) -> Result<Self> {
        let shape = BucketShape::new(config)?;
        let state = shape.fresh(start);
        Ok(TokenBucket { shape, state })
    }

    pub fn config(&self) -> &TokenBucketConfig {
        &self.shape.config
    }

    /// The latest time the bucket has decided at; calls at earlier times are evaluated here.
    pub fn clock(&self) -> Time {
        self.state.clock
    }

    /// Tokens present at `now` (at the bucket's clock if `now` is earlier), without changing
    /// anything: for drawing the bucket.
    pub fn tokens_at(&self, now: Time) -> f64 {
        self.shape.tokens_at(&self.state, now)
    }

    /// What [`TokenBucket::try_acquire`] would decide, without charging anything.
    pub fn peek(&self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.shape
            .evaluate(&self.state, now, cost)
            .map(|e| e.decision)
    }

    /// Changes the capacity and the refill rate at `now` (at the bucket's clock if `now` is
    /// earlier). The tokens present at that moment are kept, cut down to the new capacity if
    /// it is smaller: reconfiguring never mints a token, and a larger capacity fills up by
    /// refill, not at once. From then on the bucket refills at the new rate, exactly as a
    /// bucket created at that moment with those tokens, which is what [`TokenBucket::config`]
    /// then reports (`initialTokens` being the tokens kept). On error (naming `capacity` or
    /// `refillPerSec`) nothing changes.
    pub fn reconfigure(&mut self, now: Time, capacity: f64, refill_per_sec: f64) -> Result<()> {
        let mut shape = BucketShape::new(TokenBucketConfig::new(capacity, refill_per_sec))?;
        let at = self.shape.effective(&self.state, now);
        let level = self
            .shape
            .level(self.state.offset, at.saturating_since(self.state.start).0);
        // Exactly the units kept, and reported as tokens within the new capacity.
        shape.initial = level.min(shape.capacity);
        shape.config.initial_tokens = Some(shape.as_tokens(shape.initial));
        self.state = shape.fresh(at);
        self.shape = shape;
        Ok(())
    }

    /// Admits a request of weight `cost` at `now` if enough tokens are present, and charges
    /// them. `cost` must be finite, positive and at most the capacity (a larger request could
    /// never be admitted, so asking is an error rather than a denial).
    pub fn try_acquire(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.shape.decide(&mut self.state, now, cost)
    }

    /// When the bucket is full again if nothing is admitted (`now`, or the bucket's later
    /// clock, if it is full already).
    pub fn full_at(&self, now: Time) -> Time {
        self.shape.full_at(&self.state, now)
    }

    /// Its tokens and configuration, for a node in a lab's view.
    pub fn fields(&self, now: Time) -> BTreeMap<String, Value> {
        self.shape.fields(&self.state, now)
    }
}

impl BucketShape {
    fn new(config: TokenBucketConfig) -> Result<Self> {
        config.validate()?;
        let capacity = to_units(config.capacity);
        Ok(BucketShape {
            config,
            capacity,
            initial: config
                .initial_tokens
                .map_or(capacity, |t| to_units(t).min(capacity)),
            // Units per µs are tokens per second × 1000, exactly: the product is formed in
            // integers, never rounded in floating point (a rounded-up rate, as
            // `rate · 1e9 / 1e6` gives for about 15 % of rates, would admit beyond the
            // bound).
            rate: ExactRate::from_f64_times(config.refill_per_sec, UNITS_PER_TOKEN_PER_SEC_PER_US),
        })
    }

    /// A bucket created at `start`, holding its initial tokens.
    fn fresh(&self, start: Time) -> BucketState {
        BucketState {
            start,
            clock: start,
            // Nothing minted yet: the offset is minus the tokens (below 2^80, exact).
            offset: -(self.initial as i128),
        }
    }

    fn tokens_at(&self, st: &BucketState, now: Time) -> f64 {
        let since_start = self.effective(st, now).saturating_since(st.start).0;
        self.as_tokens(self.level(st.offset, since_start))
    }

    fn decide(&self, st: &mut BucketState, now: Time, cost: f64) -> Result<RateLimitDecision> {
        let e = self.evaluate(st, now, cost)?;
        st.clock = e.at;
        if let Some(offset) = e.charged {
            st.offset = offset;
        }
        Ok(e.decision)
    }

    /// When the bucket is full again if nothing is admitted.
    fn full_at(&self, st: &BucketState, now: Time) -> Time {
        let at = self.effective(st, now);
        // A full bucket admits its whole capacity; otherwise the denial says when it will.
        match self.evaluate(st, at, self.config.capacity) {
            Ok(e) if !e.decision.allowed => at.saturating_add(e.decision.reset_after),
            _ => at,
        }
    }

    fn fields(&self, st: &BucketState, now: Time) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("tokens".to_string(), json!(self.tokens_at(st, now))),
            ("capacity".to_string(), json!(self.config.capacity)),
            (
                "refillPerSec".to_string(),
                json!(self.config.refill_per_sec),
            ),
        ])
    }

    fn evaluate(&self, st: &BucketState, now: Time, cost: f64) -> Result<Evaluation> {
        check_positive("cost", cost)?;
        if cost > self.config.capacity {
            return Err(DistlabError::field(
                "cost",
                format!(
                    "{cost} exceeds the capacity {}: it could never be admitted",
                    self.config.capacity
                ),
            ));
        }
        // Rounded up, and by the same monotone rounding as the capacity, so a cost equal
        // to the capacity is still admissible.
        let cost = to_units(cost);
        check_now(now)?;
        let at = self.effective(st, now);
        let since_start = at.saturating_since(st.start).0;
        let level = self.level(st.offset, since_start);
        // Waits are searched with the very formula a later call will evaluate, so they are
        // the shortest that work, to the microsecond; they are measured from `at` and then
        // expressed relative to the caller's `now`, so that retrying at `now + retry_after`
        // is exact even if `now` was behind the bucket's clock.
        let wait = |offset: i128, target: u128| {
            let guess = self.estimate_wait(self.level(offset, since_start), target);
            let w = first_satisfying(guess, |w| {
                self.level(offset, since_start.saturating_add(w)) >= target
            });
            at.saturating_add(Duration(w)).saturating_since(now)
        };
        let (charged, remaining, retry_after, reset_after) = if level >= cost {
            let remaining = level - cost;
            // Both below 2^117: the difference is exact.
            let offset = self.rate.minted(since_start) as i128 - remaining as i128;
            let reset = wait(offset, self.capacity);
            (Some(offset), remaining, Duration::ZERO, reset)
        } else {
            let retry = wait(st.offset, cost);
            let reset = wait(st.offset, self.capacity);
            (None, level, retry, reset)
        };
        Ok(Evaluation {
            decision: RateLimitDecision {
                allowed: charged.is_some(),
                limit: self.config.capacity,
                remaining: self.as_tokens(remaining),
                retry_after,
                reset_after,
            },
            at,
            charged,
        })
    }

    /// Units as tokens. The capacity in units was rounded up, so a full bucket (or one a
    /// fraction of a unit from full) reports exactly the configured capacity.
    fn as_tokens(&self, units: u128) -> f64 {
        if units >= self.capacity {
            return self.config.capacity;
        }
        (units as f64 / UNITS_PER_TOKEN).min(self.config.capacity)
    }

    fn effective(&self, st: &BucketState, now: Time) -> Time {
        now.max(st.clock)
    }

    /// Units present `since_start` µs after the start of a bucket at `offset`. Monotone in
    /// `since_start`, which is what makes the wait searches valid. Minted counts stay below
    /// 2^117 (see [`ExactRate::minted`]), so the signed difference is exact.
    fn level(&self, offset: i128, since_start: u64) -> u128 {
        let units = (self.rate.minted(since_start) as i128).saturating_sub(offset);
        (units.max(0) as u128).min(self.capacity)
    }

    /// A first guess at the wait from `level` to `target` units, in microseconds.
    fn estimate_wait(&self, level: u128, target: u128) -> u64 {
        let missing = target.saturating_sub(level) as f64;
        // A saturating float-to-int cast; the search corrects any error in the guess.
        libm::ceil(missing / self.rate.approx) as u64
    }
}

/// The outcome of evaluating a request, before it is applied.
struct Evaluation {
    decision: RateLimitDecision,
    /// The time the decision was taken at: the caller's `now` or the bucket's later clock.
    at: Time,
    /// If admitted, the bucket's new offset.
    charged: Option<i128>,
}

/// Token amounts to units, rounded up from the exact product (`tokens · 1e9` in floating
/// point could round down, and a cost rounded down would admit beyond the bound). Callers
/// pass validated finite values in `[0, MAX_TOKENS]`, so the result is below 2^80.
pub(crate) fn to_units(tokens: f64) -> u128 {
    ceil_product(tokens, UNITS_PER_TOKEN)
}

/// A positive rate held exactly as `mantissa · 2^exponent` units per microsecond: the
/// binary value of the `f64` it was made from, so `minted` is an exact floor with no
/// rounding of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ExactRate {
    mantissa: u64,
    exponent: i32,
    /// The same value as an `f64`, for first guesses.
    approx: f64,
}

impl ExactRate {
    /// `rate` must be finite and positive; validation guarantees at most 10^18, so that
    /// `mantissa · 2^exponent < 2^60`.
    #[cfg(test)]
    fn from_f64(rate: f64) -> ExactRate {
        ExactRate::from_f64_times(rate, 1)
    }

    /// Exactly `rate · factor`, for `factor` at most 1 000: the odd mantissa (below 2^53)
    /// times the factor stays below 2^63. `rate` must be finite and positive, and validation
    /// keeps `rate · factor` at most 10^18, below 2^60.
    fn from_f64_times(rate: f64, factor: u64) -> ExactRate {
        let (mantissa, exponent) = binary_parts(rate);
        ExactRate {
            mantissa: mantissa * factor,
            exponent,
            approx: rate * factor as f64,
        }
    }

    /// `⌊elapsed_us · rate⌋`, exactly. `elapsed_us · mantissa < 2^127`, and a non-negative
    /// exponent is below 60 (the rate is below 2^60), so nothing overflows a `u128` before
    /// the final saturating shift.
    fn minted(self, elapsed_us: u64) -> u128 {
        let product = elapsed_us as u128 * self.mantissa as u128;
        if self.exponent >= 0 {
            product.saturating_mul(1u128 << self.exponent.min(127))
        } else {
            product
                .checked_shr(self.exponent.unsigned_abs())
                .unwrap_or(0)
        }
    }
}

/// The smallest `w` with `pred(w)`, for a monotone `pred` (false, then true), starting from a
/// guess that is usually off by at most a microsecond or two: gallop away from the guess to
/// bracket the answer, then bisect. O(log |error of the guess|) evaluations. Returns
/// `u64::MAX` if `pred` holds nowhere (which a validated bucket never asks).
pub(crate) fn first_satisfying(guess: u64, pred: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi); // pred(lo) is false, pred(hi) is true
    let mut step = 1u64;
    if pred(guess) {
        hi = guess;
        loop {
            if hi == 0 {
                return 0;
            }
            let probe = guess.saturating_sub(step);
            if !pred(probe) {
                lo = probe;
                break;
            }
            hi = probe;
            step = step.saturating_mul(2);
        }
    } else {
        lo = guess;
        loop {
            if lo == u64::MAX {
                return u64::MAX;
            }
            let probe = guess.saturating_add(step);
            if pred(probe) {
                hi = probe;
                break;
            }
            lo = probe;
            step = step.saturating_mul(2);
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The token bucket as a [`Rule`], so that the keyed limiter and the comparison lab can use
/// it like every other algorithm: the configuration once, a [`BucketState`] (32 bytes) per
/// client.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucketRule {
    shape: BucketShape,
}

impl TokenBucketRule {
    /// Checks every field, naming the first bad one.
    pub fn new(config: TokenBucketConfig) -> Result<Self> {
        Ok(TokenBucketRule {
            shape: BucketShape::new(config)?,
        })
    }

    pub fn config(&self) -> &TokenBucketConfig {
        &self.shape.config
    }
}

impl Rule for TokenBucketRule {
    type State = BucketState;

    fn algorithm(&self) -> &'static str {
        "token bucket"
    }

    fn fresh(&self, now: Time) -> BucketState {
        self.shape.fresh(now)
    }

    fn decide(&self, state: &mut BucketState, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.shape.decide(state, now, cost)
    }

    fn is_idle(&self, state: &BucketState, now: Time) -> bool {
        self.shape.tokens_at(state, now) >= self.shape.config.capacity
    }

    fn level(&self, state: &BucketState, now: Time) -> f64 {
        self.shape.tokens_at(state, now)
    }

    fn limit(&self) -> f64 {
        self.shape.config.capacity
    }

    fn full_at(&self, state: &BucketState, now: Time) -> Time {
        self.shape.full_at(state, now)
    }

    fn envelope(&self) -> Envelope {
        Envelope {
            burst: self.shape.config.capacity,
            rate_per_sec: self.shape.config.refill_per_sec,
        }
    }

    fn fields(&self, state: &BucketState, now: Time) -> BTreeMap<String, Value> {
        self.shape.fields(state, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::rule::testing::ms;
    use crate::ratelimit::units::MAX_DECISION_TIME;
    use proptest::prelude::*;

    fn bucket(capacity: f64, refill_per_sec: f64) -> TokenBucket {
        TokenBucket::new(TokenBucketConfig::new(capacity, refill_per_sec)).unwrap()
    }

    #[test]
    fn starts_full_admits_a_burst_then_denies() {
        let mut b = bucket(10.0, 5.0);
        for i in 0..10 {
            let d = b.try_acquire(ms(0), 1.0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, 9.0 - i as f64);
            assert_eq!(d.limit, 10.0);
            assert_eq!(d.retry_after, Duration::ZERO);
        }
        let d = b.try_acquire(ms(0), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0.0);
        // 5 tokens/s: one token every 200 ms, full again after 2 s.
        assert_eq!(d.retry_after, Duration::from_millis(200));
        assert_eq!(d.reset_after, Duration::from_secs(2));
        assert!(!b.try_acquire(ms(199), 1.0).unwrap().allowed);
        assert!(b.try_acquire(ms(200), 1.0).unwrap().allowed);
    }

    #[test]
    fn weighted_cost_waits_for_enough_tokens() {
        let mut b = bucket(10.0, 5.0);
        assert!(b.try_acquire(ms(0), 8.0).unwrap().allowed);
        let d = b.try_acquire(ms(0), 4.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 2.0);
        assert_eq!(d.retry_after, Duration::from_millis(400));
        assert!(b.try_acquire(ms(400), 4.0).unwrap().allowed);
        assert!(!b.try_acquire(ms(400), 0.25).unwrap().allowed);
        assert!(b.try_acquire(ms(450), 0.25).unwrap().allowed);
    }

    #[test]
    fn reset_after_when_admitted_is_time_to_full() {
        let mut b = bucket(4.0, 2.0);
        let d = b.try_acquire(ms(0), 3.0).unwrap();
        assert_eq!(d.reset_after, Duration::from_millis(1_500));
        assert_eq!(b.tokens_at(ms(1_500)), 4.0);
        assert!(b.tokens_at(ms(1_499)) < 4.0);
        assert_eq!(b.tokens_at(ms(10_000)), 4.0, "refill stops at capacity");
    }

    #[test]
    fn initial_tokens_and_start_time() {
        let cfg = TokenBucketConfig {
            initial_tokens: Some(0.0),
            ..TokenBucketConfig::new(2.0, 1.0)
        };
        let b = TokenBucket::starting_at(cfg, ms(5_000)).unwrap();
        assert_eq!(b.tokens_at(ms(0)), 0.0);
        assert_eq!(b.tokens_at(ms(6_000)), 1.0);
        let d = b.peek(ms(5_000), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn a_greedy_client_gets_exactly_the_bound() {
        // 1 token per ms; a client asking every 100 µs for one second gets the initial burst
        // plus one token per elapsed millisecond: the bound is tight, not just respected.
        let mut b = bucket(10.0, 1_000.0);
        let admitted = (0..=10_000u64)
            .filter(|i| b.try_acquire(Time(i * 100), 1.0).unwrap().allowed)
            .count();
        assert_eq!(admitted, 10 + 1_000);
    }

    #[test]
    fn reconfigure_keeps_the_tokens_present_clamped_to_the_new_capacity() {
        let mut b = bucket(10.0, 1.0);
        assert!(b.try_acquire(ms(0), 6.0).unwrap().allowed);
        // 4 tokens at 0, 6 at 2 s. A larger capacity keeps the 6 and refills at the new rate.
        b.reconfigure(ms(2_000), 20.0, 4.0).unwrap();
        assert_eq!(b.tokens_at(ms(2_000)), 6.0);
        assert_eq!(b.tokens_at(ms(3_000)), 10.0);
        assert_eq!(b.tokens_at(ms(5_500)), 20.0);
        assert_eq!(b.config().initial_tokens, Some(6.0));
        assert_eq!(b.config().capacity, 20.0);
        // A smaller capacity cuts the level down to it; no token is ever minted.
        b.reconfigure(ms(6_000), 3.0, 0.5).unwrap();
        assert_eq!(b.tokens_at(ms(6_000)), 3.0);
        assert!(b.try_acquire(ms(6_000), 3.0).unwrap().allowed);
        let d = b.try_acquire(ms(6_000), 1.0).unwrap();
        assert_eq!(d.retry_after, Duration::from_secs(2));
        assert_eq!(d.reset_after, Duration::from_secs(6));
        assert_eq!(d.limit, 3.0);
        // Earlier than the clock: applied at the clock, which does not move back.
        b.reconfigure(ms(1_000), 3.0, 1.0).unwrap();
        assert_eq!(b.clock(), ms(6_000));
        assert_eq!(b.tokens_at(ms(7_000)), 1.0);
        // Bad values change nothing.
        let before = b.clone();
        for (capacity, rate, field) in [
            (0.0, 1.0, "capacity"),
            (f64::NAN, 1.0, "capacity"),
            (1.0, -1.0, "refillPerSec"),
            (1e15, 1e-9, "refillPerSec"),
        ] {
            let e = b.reconfigure(ms(8_000), capacity, rate).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        assert_eq!(b, before);
    }

    #[test]
    fn peek_changes_nothing() {
        let b = bucket(3.0, 1.0);
        let before = b.clone();
        assert!(b.peek(ms(10), 3.0).unwrap().allowed);
        assert_eq!(b, before);
    }

    #[test]
    fn many_tiny_steps_refill_exactly_like_one_big_step() {
        let mut tiny = bucket(1_000.0, 0.3);
        let mut big = tiny.clone();
        tiny.try_acquire(Time(0), 1_000.0).unwrap();
        big.try_acquire(Time(0), 1_000.0).unwrap();
        // A denied poll every 5 µs for ten seconds against one call at the end.
        let mut t = 0;
        while t < 10_000_000 {
            t += 5;
            assert!(!tiny.try_acquire(Time(t), 999.0).unwrap().allowed);
        }
        big.try_acquire(Time(t), 999.0).unwrap();
        assert_eq!(tiny, big);
        // The rate is the f64's exact value, and 0.3 as an f64 is 0.29999999999999998890:
        // ten seconds mint just under 3 tokens, floored to the billionth. (A refill rounded
        // up to 300 units per µs showed 3.0 here, and admitted beyond the bound elsewhere.)
        assert_eq!(tiny.tokens_at(Time(t)), 2.999_999_999);
    }

    #[test]
    fn time_going_backwards_gets_no_refill_and_keeps_the_clock() {
        let mut b = bucket(2.0, 1.0);
        assert!(b.try_acquire(ms(10_000), 2.0).unwrap().allowed);
        // Earlier than the clock: evaluated at 10 s, so nothing has refilled.
        let d = b.try_acquire(ms(1_000), 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0.0);
        assert_eq!(b.clock(), ms(10_000));
        // Retry-after is relative to the caller's (earlier) now: 9 s to reach the clock,
        // then 1 s for a token.
        assert_eq!(d.retry_after, Duration::from_secs(10));
        assert!(b.try_acquire(ms(11_000), 1.0).unwrap().allowed);
        assert_eq!(b.tokens_at(ms(0)), 0.0);
    }

    #[test]
    fn bad_costs_are_errors_naming_cost() {
        let mut b = bucket(5.0, 1.0);
        for cost in [0.0, -1.0, f64::NAN, f64::INFINITY, 5.000001, 1e300] {
            let err = b.try_acquire(ms(0), cost).unwrap_err();
            assert!(err.to_string().contains("`cost`"), "{cost}: {err}");
        }
        assert!(b.try_acquire(ms(0), 5.0).unwrap().allowed);
    }

    #[test]
    fn bad_configs_are_errors_naming_the_field() {
        let cases = [
            (TokenBucketConfig::new(0.0, 1.0), "capacity"),
            (TokenBucketConfig::new(-3.0, 1.0), "capacity"),
            (TokenBucketConfig::new(f64::NAN, 1.0), "capacity"),
            (TokenBucketConfig::new(f64::INFINITY, 1.0), "capacity"),
            (TokenBucketConfig::new(1e16, 1e15), "capacity"),
            (TokenBucketConfig::new(10.0, 0.0), "refillPerSec"),
            (TokenBucketConfig::new(10.0, -1.0), "refillPerSec"),
            (TokenBucketConfig::new(10.0, f64::NAN), "refillPerSec"),
            (
                TokenBucketConfig::new(10.0, f64::NEG_INFINITY),
                "refillPerSec",
            ),
            (TokenBucketConfig::new(1e15, 1e-9), "refillPerSec"),
            (
                TokenBucketConfig {
                    initial_tokens: Some(11.0),
                    ..TokenBucketConfig::new(10.0, 1.0)
                },
                "initialTokens",
            ),
            (
                TokenBucketConfig {
                    initial_tokens: Some(f64::NAN),
                    ..TokenBucketConfig::new(10.0, 1.0)
                },
                "initialTokens",
            ),
        ];
        for (cfg, field) in cases {
            let err = TokenBucket::new(cfg).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{cfg:?}: {err}"
            );
        }
    }

    #[test]
    fn json_config_is_camel_case_and_strict() {
        let cfg: TokenBucketConfig =
            serde_json::from_str(r#"{"capacity": 10, "refillPerSec": 5}"#).unwrap();
        assert_eq!(cfg, TokenBucketConfig::new(10.0, 5.0));
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            r#"{"capacity":10.0,"refillPerSec":5.0}"#
        );
        assert!(serde_json::from_str::<TokenBucketConfig>(r#"{"capacity": 10}"#).is_err());
        assert!(
            serde_json::from_str::<TokenBucketConfig>(
                r#"{"capacity": 10, "refillPerSec": 5, "burst": 3}"#
            )
            .is_err()
        );
    }

    #[test]
    fn decision_serializes_camel_case() {
        let d = bucket(10.0, 5.0).peek(ms(0), 1.0).unwrap();
        let v = serde_json::to_value(d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "allowed": true, "limit": 10.0, "remaining": 9.0,
                "retryAfter": 0, "resetAfter": 200_000
            })
        );
    }

    #[test]
    fn exact_rate_is_the_f64_value_and_mints_exact_floors() {
        for x in [
            300.0,
            1e18,
            1.0 / 3.0,
            0.1,
            1e-12,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let r = ExactRate::from_f64(x);
            let value = r.mantissa as f64 * libm::pow(2.0, f64::from(r.exponent));
            assert_eq!(value, x, "{x}");
        }
        let r = ExactRate::from_f64(300.0);
        assert_eq!(r.minted(10_000_000), 3_000_000_000);
        // 0.5 units/µs: exact halves, floored.
        let half = ExactRate::from_f64(0.5);
        assert_eq!((half.minted(1), half.minted(2), half.minted(3)), (0, 1, 1));
        assert_eq!(half.minted(u64::MAX), (u64::MAX / 2) as u128);
        let big = ExactRate::from_f64(1e18);
        assert_eq!(
            big.minted(u64::MAX),
            u64::MAX as u128 * 1_000_000_000_000_000_000
        );
        assert_eq!(ExactRate::from_f64(5e-324).minted(u64::MAX), 0);
    }

    /// Issue 13's counterexample to "rounding can only deny": `rate · 1e9 / 1e6` rounded
    /// this rate up by 64 units per µs, and the bucket admitted 999999482903634.75 tokens
    /// 3.290065 s after being drained, against an exact bound of 999999482903634.57536.
    // The literals are the exact binary values the issue reports (f64 steps are 1/8 here),
    // written out in full rather than as the shortest decimal that rounds to them.
    #[allow(clippy::excessive_precision)]
    #[test]
    fn a_rate_that_floating_point_rounds_up_admits_no_more_than_the_exact_bound() {
        let mut b = bucket(1e15, 303_945_205_612_544.0);
        assert!(b.try_acquire(Time(0), 1e15).unwrap().allowed);
        let at = Time(3_290_065);
        let d = b.peek(at, 999_999_482_903_634.75).unwrap();
        assert!(!d.allowed, "admitted beyond the exact bound");
        // The exact level, 999999482903634.57536, floored to the unit.
        assert!(
            (d.remaining - 999_999_482_903_634.575_36).abs() <= 0.125,
            "{}",
            d.remaining
        );
        assert!(b.try_acquire(at, 999_999_482_903_634.5).unwrap().allowed);
    }

    #[allow(clippy::excessive_precision)] // exact binary values, as above
    #[test]
    fn units_are_the_exact_product_rounded_up() {
        assert_eq!(to_units(1.0), 1_000_000_000);
        assert_eq!(to_units(1e15), 1_000_000_000_000_000_000_000_000);
        // 0.1 is a little above a tenth in binary: one unit more.
        assert_eq!(to_units(0.1), 100_000_001);
        assert_eq!(to_units(0.5), 500_000_000);
        // f64 multiplication rounds this one down to ...689130496 units.
        assert_eq!(
            to_units(999_999_482_903_634.75),
            999_999_482_903_634_750_000_000
        );
        assert_eq!(to_units(5e-324), 1);
        assert_eq!(to_units(0.0), 0);
    }

    /// Issue 13: near the end of `Time` waits saturated and a denial could say
    /// `Retry-After: 0`. Such times are refused, naming `now`, and change nothing.
    #[test]
    fn times_near_the_end_of_time_are_refused_and_denials_always_wait() {
        let mut b = bucket(1.0, 1.0);
        let last = MAX_DECISION_TIME;
        assert!(b.try_acquire(last, 1.0).unwrap().allowed);
        let d = b.try_acquire(last, 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        let before = b.clone();
        for now in [Time(last.0 + 1), Time(u64::MAX - 1), Time::MAX] {
            let e = b.try_acquire(now, 1.0).unwrap_err();
            assert!(e.to_string().contains("`now`"), "{e}");
            assert!(b.peek(now, 1.0).is_err());
        }
        assert_eq!(b, before);
    }

    #[test]
    fn first_satisfying_finds_the_boundary() {
        for answer in [0u64, 1, 2, 7, 1_000, 1 << 40] {
            for guess in [0u64, 1, 5, 999, 1_001, 1 << 41, u64::MAX - 1] {
                assert_eq!(first_satisfying(guess, |w| w >= answer), answer);
            }
        }
        assert_eq!(first_satisfying(3, |_| false), u64::MAX);
    }

    /// A random bucket and a random sequence of (gap µs, cost as a fraction of capacity).
    fn scenario() -> impl Strategy<Value = (TokenBucketConfig, Vec<(u64, f64)>)> {
        (
            0.5f64..50.0,
            0.01f64..200.0,
            proptest::option::of(0.0f64..=1.0),
            proptest::collection::vec((0u64..400_000, 0.001f64..=1.0), 1..150),
        )
            .prop_map(|(capacity, rate, initial, requests)| {
                let config = TokenBucketConfig {
                    capacity,
                    refill_per_sec: rate,
                    initial_tokens: initial.map(|f| f * capacity),
                };
                let requests = requests
                    .into_iter()
                    .map(|(gap, frac)| (gap, frac * capacity))
                    .collect();
                (config, requests)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// In every window [t_i, t_j] spanned by two admissions, the admitted cost is at most
        /// capacity + rate · (t_j - t_i). Windows between admissions are the tightest, so
        /// this covers all windows. The slack: the capacity is rounded up to whole billionths
        /// of a token (at most one billionth more), plus rounding in this test's own f64 sums.
        #[test]
        fn any_window_admits_at_most_capacity_plus_rate_times_length(
            (config, requests) in scenario()
        ) {
            let mut b = TokenBucket::new(config).unwrap();
            let mut now = 0u64;
            let mut admitted: Vec<(u64, f64)> = Vec::new();
            for (gap, cost) in requests {
                now += gap;
                if b.try_acquire(Time(now), cost).unwrap().allowed {
                    admitted.push((now, cost));
                }
            }
            for i in 0..admitted.len() {
                let mut sum = 0.0;
                for j in i..admitted.len() {
                    sum += admitted[j].1;
                    let t = (admitted[j].0 - admitted[i].0) as f64 / 1e6;
                    let bound = config.capacity + config.refill_per_sec * t;
                    prop_assert!(sum <= bound * (1.0 + 1e-12) + 1e-9,
                        "window {}..{} admitted {} > {}", admitted[i].0, admitted[j].0, sum, bound);
                }
            }
        }

        /// Calls in any time order decide exactly as if each `now` were the latest time seen
        /// so far; so over the whole run nothing is admitted beyond what the latest time
        /// allows, and a call in the past never finds more tokens than the present holds.
        #[test]
        fn time_going_backwards_never_mints_tokens(
            (config, requests) in scenario(),
            jitter in proptest::collection::vec(0u64..2_000_000, 150),
        ) {
            let mut shuffled = TokenBucket::new(config).unwrap();
            let mut clamped = shuffled.clone();
            let mut latest = 0u64;
            let mut base = 0u64;
            let mut total = 0.0;
            for (i, (gap, cost)) in requests.iter().enumerate() {
                base += gap;
                // Up to 2 s in the past of a steadily advancing time.
                let now = base.saturating_sub(jitter[i]);
                if now < latest {
                    let present = shuffled.tokens_at(Time(latest));
                    prop_assert_eq!(shuffled.tokens_at(Time(now)).to_bits(), present.to_bits());
                }
                latest = latest.max(now);
                let a = shuffled.try_acquire(Time(now), *cost).unwrap();
                let b = clamped.try_acquire(Time(latest), *cost).unwrap();
                prop_assert_eq!(a.allowed, b.allowed);
                prop_assert_eq!(a.remaining.to_bits(), b.remaining.to_bits());
                if !a.allowed {
                    prop_assert_eq!(now + a.retry_after.0, latest + b.retry_after.0);
                }
                prop_assert_eq!(now + a.reset_after.0, latest + b.reset_after.0);
                if a.allowed {
                    total += cost;
                }
            }
            let initial = config.initial_tokens.unwrap_or(config.capacity);
            let bound = initial + config.refill_per_sec * latest as f64 / 1e6;
            prop_assert!(total <= bound * (1.0 + 1e-12) + 1e-9, "{} > {}", total, bound);
        }

        /// After any history, a denied request is admitted at exactly now + retry_after and
        /// not a microsecond earlier; the bucket is full at exactly now + reset_after.
        #[test]
        fn retry_after_and_reset_after_are_exact(
            (config, requests) in scenario(),
            probe_frac in 0.001f64..=1.0,
        ) {
            let mut b = TokenBucket::new(config).unwrap();
            let mut now = 0u64;
            for (gap, cost) in requests {
                now += gap;
                b.try_acquire(Time(now), cost).unwrap();
            }
            let cost = probe_frac * config.capacity;
            let d = b.peek(Time(now), cost).unwrap();
            // reset_after describes the bucket after the decision, charged or not.
            let mut after = b.clone();
            prop_assert_eq!(after.try_acquire(Time(now), cost).unwrap(), d);
            let full_at = now + d.reset_after.0;
            prop_assert_eq!(after.tokens_at(Time(full_at)), config.capacity);
            if d.reset_after.0 > 0 {
                prop_assert!(after.tokens_at(Time(full_at - 1)) < config.capacity);
            }
            if d.allowed {
                prop_assert_eq!(d.retry_after, Duration::ZERO);
            } else {
                prop_assert!(d.retry_after.0 > 0);
                let at = now + d.retry_after.0;
                prop_assert!(!b.clone().try_acquire(Time(at - 1), cost).unwrap().allowed);
                prop_assert!(b.try_acquire(Time(at), cost).unwrap().allowed);
            }
        }

        /// Valid but extreme buckets (rates and capacities over 21 orders of magnitude, times
        /// anywhere up to the last decision time): decisions stay in range, retry_after stays
        /// exact and a denial's wait is never 0.
        #[test]
        fn extreme_valid_buckets_stay_exact(
            capacity_exp in -6.0f64..15.0,
            rate_exp in -6.0f64..15.0,
            start in 0..=MAX_DECISION_TIME.0,
            gaps in proptest::collection::vec(0u64..1_000_000_000, 1..20),
            fracs in proptest::collection::vec(0.0001f64..=1.0, 20),
        ) {
            let config = TokenBucketConfig::new(libm::pow(10.0, capacity_exp), libm::pow(10.0, rate_exp));
            prop_assume!(config.validate().is_ok());
            let mut b = TokenBucket::starting_at(config, Time(start)).unwrap();
            let mut now = start;
            for (gap, frac) in gaps.iter().zip(&fracs) {
                now = now.saturating_add(*gap).min(MAX_DECISION_TIME.0);
                let cost = frac * config.capacity;
                let d = b.try_acquire(Time(now), cost).unwrap();
                prop_assert!(d.remaining >= 0.0 && d.remaining <= config.capacity);
                prop_assert!(d.allowed || d.retry_after.0 > 0);
                let retry_at = now.saturating_add(d.retry_after.0);
                if !d.allowed && retry_at <= MAX_DECISION_TIME.0 {
                    prop_assert!(b.peek(Time(retry_at), cost).unwrap().allowed);
                    prop_assert!(!b.peek(Time(retry_at - 1), cost).unwrap().allowed);
                }
            }
        }

        /// Any numbers at all: a bucket or an error naming a field, never a panic; and any
        /// cost on a valid bucket: a decision or an error naming `cost`.
        #[test]
        fn arbitrary_configs_and_costs_never_panic(
            capacity in any::<f64>(),
            rate in any::<f64>(),
            initial in proptest::option::of(any::<f64>()),
            cost in any::<f64>(),
            now in any::<u64>(),
        ) {
            let config = TokenBucketConfig { capacity, refill_per_sec: rate, initial_tokens: initial };
            match TokenBucket::new(config) {
                Ok(mut b) => {
                    match b.try_acquire(Time(now), cost) {
                        Ok(d) => prop_assert!(d.remaining >= 0.0 && d.remaining <= capacity),
                        Err(e) => prop_assert!(
                            e.to_string().contains("`cost`")
                                || (now > MAX_DECISION_TIME.0 && e.to_string().contains("`now`"))
                        ),
                    }
                }
                Err(DistlabError::InvalidField { field, .. }) => {
                    prop_assert!(["capacity", "refillPerSec", "initialTokens"].contains(&field.as_str()));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
