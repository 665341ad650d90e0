//! Retries: try a failed call again after a backoff, at most so many times, only for
//! errors worth retrying, and only while a retry budget says the dependency is healthy
//! enough for retries not to make things worse.
//!
//! References:
//! - Marc Brooker, "Exponential Backoff and Jitter", AWS Architecture Blog, 2015: the
//!   four delay rules of [`Jitter`]. With `exp(n) = min(cap, base · multiplier^n)` for
//!   the `n`-th retry (from 0): *none* sleeps `exp(n)`; *full* sleeps uniformly in
//!   `[0, exp(n)]`; *equal* sleeps `exp(n)/2` plus uniformly `[0, exp(n)/2]`;
//!   *decorrelated* sleeps `min(cap, uniform[base, 3 · previous])`, the previous sleep
//!   starting at `base`. Every delay lies in `[0, cap]`. Delays are drawn in whole
//!   microseconds from a seeded [`SimRng`], so a seed gives the same delays everywhere.
//! - gRPC retry throttling (gRFC A6, "Client Retry Support"): [`RetryBudget`] is a token
//!   bucket of `maxTokens` that starts full; every failed attempt takes 1 token, every
//!   success gives back `tokenRatio`, and a retry is allowed only while more than half the
//!   tokens remain. Tokens are kept in thousandths, as gRPC does, so the arithmetic is
//!   exact. When a dependency fails, the budget empties and retries stop, so a client's
//!   load falls to its first attempts instead of multiplying by `maxAttempts`.
//!
//! Resilience4j's `Retry` names the same options `maxAttempts` (default 3, counting the
//! first attempt) and `waitDuration` (500 ms, here `initialBackoffMs`); the backoff's
//! multiplier and cap follow gRPC's retry policy (`backoffMultiplier`, `maxBackoff`).
//!
//! Cost: a decision is O(1): one `pow` and at most one random draw.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis};
use crate::error::{DistlabError, Result};
use crate::resilience::{ErrorKind, ErrorKinds};
use crate::rng::SimRng;
use crate::time::{Duration, Time};

pub mod lab;

/// The most attempts a call may make, the first included.
pub const MAX_ATTEMPTS: u32 = 100;
/// The longest backoff option: an hour, in ms.
pub const MAX_BACKOFF_MS: u32 = 3_600_000;
/// The largest `maxTokens` gRPC accepts.
pub const MAX_TOKENS: u32 = 1_000;
/// The largest backoff multiplier accepted.
pub const MAX_MULTIPLIER: f64 = 100.0;

/// How a backoff is randomised (Brooker 2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Jitter {
    /// `exp(n)`: every client retries in lockstep.
    None,
    /// Uniform in `[0, exp(n)]`.
    Full,
    /// `exp(n)/2` plus uniform in `[0, exp(n)/2]`.
    Equal,
    /// `min(cap, uniform[base, 3 · previous])`.
    Decorrelated,
}

impl Jitter {
    pub const ALL: [Jitter; 4] = [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
        }
    }
}

/// The delays between attempts. JSON: `{"initialBackoffMs": 100, "maxBackoffMs": 10000,
/// "backoffMultiplier": 2, "jitter": "full"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BackoffConfig {
    /// The first retry's base delay (`base`); at most `maxBackoffMs`.
    pub initial_backoff_ms: Millis<0, { MAX_BACKOFF_MS }>,
    /// The cap on every delay.
    pub max_backoff_ms: Millis<0, { MAX_BACKOFF_MS }>,
    /// Growth per retry, from 1 to 100.
    pub backoff_multiplier: f64,
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial_backoff_ms: Millis::of(500),
            max_backoff_ms: Millis::of(30_000),
            backoff_multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

/// A retry policy. JSON: `{"maxAttempts": 3, "backoff": {...}, "retryOn": ["unavailable",
/// "timeout"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RetryConfig {
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: Count<1, { MAX_ATTEMPTS }>,
    pub backoff: BackoffConfig,
    /// The error kinds worth another attempt; any other fails the call at once.
    pub retry_on: Vec<ErrorKind>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: Count::of(3),
            backoff: BackoffConfig::default(),
            retry_on: vec![
                ErrorKind::Unavailable,
                ErrorKind::Timeout,
                ErrorKind::Overloaded,
            ],
        }
    }
}

/// A validated backoff: draws the delay before each retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: u64,
    cap: u64,
    multiplier: f64,
    jitter: Jitter,
}

impl Backoff {
    /// Errors name the field (`initialBackoffMs`, `backoffMultiplier`).
    pub fn new(c: &BackoffConfig) -> Result<Self> {
        let m = c.backoff_multiplier;
        if !m.is_finite() || !(1.0..=MAX_MULTIPLIER).contains(&m) {
            return Err(DistlabError::field(
                "backoffMultiplier",
                format!("must be a number from 1 to {MAX_MULTIPLIER}, got {m}"),
            ));
        }
        if c.initial_backoff_ms > c.max_backoff_ms {
            return Err(DistlabError::field(
                "initialBackoffMs",
                format!(
                    "must be at most maxBackoffMs ({}), got {}",
                    c.max_backoff_ms, c.initial_backoff_ms
                ),
            ));
        }
        Ok(Backoff {
            base: c.initial_backoff_ms.as_micros(),
            cap: c.max_backoff_ms.as_micros(),
            multiplier: m,
            jitter: c.jitter,
        })
    }

    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    pub fn cap(&self) -> Duration {
        Duration(self.cap)
    }

    /// `min(cap, base · multiplier^n)` in µs.
    pub fn exponential(&self, retry: u32) -> u64 {
        let grown = self.base as f64 * libm::pow(self.multiplier, f64::from(retry));
        // `grown` may be infinite; the comparison keeps it at the cap, and the cap (at
        // most an hour in µs) converts exactly.
        if grown >= self.cap as f64 {
            self.cap
        } else {
            grown as u64
        }
    }

    /// The delay before retry `retry` (0 for the first retry), given the previous delay
    /// (`None` before the first; only decorrelated jitter reads it).
    pub fn delay(&self, retry: u32, previous: Option<Duration>, rng: &mut SimRng) -> Duration {
        let us = match self.jitter {
            Jitter::None => self.exponential(retry),
            Jitter::Full => rng.range_inclusive(0, self.exponential(retry)),
            Jitter::Equal => {
                let e = self.exponential(retry);
                let half = e / 2;
                (e - half) + rng.range_inclusive(0, half)
            }
            Jitter::Decorrelated => {
                let previous = previous.map_or(self.base, |d| d.0);
                let high = previous.saturating_mul(3).max(self.base);
                rng.range_inclusive(self.base, high).min(self.cap)
            }
        };
        Duration(us)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RetryDecision {
    /// Make attempt number `attempt` (from 1, the first being 1) at `at`, `delay` from now.
    Retry {
        attempt: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        delay: Duration,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        at: Time,
    },
    /// Stop and fail the call.
    GiveUp { reason: GiveUpReason },
}

/// Why a call stops retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum GiveUpReason {
    /// The error is not in `retryOn`.
    NotRetryable,
    /// `maxAttempts` attempts were made.
    AttemptsExhausted,
    /// The retry budget is at or below half its tokens.
    BudgetExhausted,
}

/// A validated retry policy, shared by every call it governs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    retry_on: ErrorKinds,
}

/// One call's progress through its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RetryState {
    /// Attempts made so far (the one in flight included).
    pub attempts: u32,
    /// The delay drawn before the latest retry.
    #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
    pub last_delay: Option<Duration>,
}

impl RetryState {
    /// A call about to make its first attempt.
    pub fn first_attempt() -> Self {
        RetryState {
            attempts: 1,
            last_delay: None,
        }
    }
}

impl RetryPolicy {
    /// Errors name the field (`backoff.backoffMultiplier`).
    pub fn new(c: &RetryConfig) -> Result<Self> {
        let backoff =
            Backoff::new(&c.backoff).map_err(|e| crate::sim::workload::within("backoff", e))?;
        Ok(RetryPolicy {
            max_attempts: c.max_attempts.get(),
            backoff,
            retry_on: ErrorKinds::of(&c.retry_on),
        })
    }

    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn retries(&self, kind: ErrorKind) -> bool {
        self.retry_on.contains(kind)
    }

    /// The attempt in flight failed with `kind` at `now`: retry (the state then counts the
    /// next attempt) or give up. The failure is charged to `budget`, which also decides
    /// whether a retry may go.
    pub fn on_failure(
        &self,
        state: &mut RetryState,
        now: Time,
        kind: ErrorKind,
        rng: &mut SimRng,
        mut budget: Option<&mut RetryBudget>,
    ) -> RetryDecision {
        if let Some(b) = budget.as_deref_mut() {
            b.on_failure();
        }
        let reason = if !self.retry_on.contains(kind) {
            GiveUpReason::NotRetryable
        } else if state.attempts >= self.max_attempts {
            GiveUpReason::AttemptsExhausted
        } else if budget.is_some_and(|b| !b.allows_retry()) {
            GiveUpReason::BudgetExhausted
        } else {
            let delay = self
                .backoff
                .delay(state.attempts.saturating_sub(1), state.last_delay, rng);
            state.attempts += 1;
            state.last_delay = Some(delay);
            return RetryDecision::Retry {
                attempt: state.attempts,
                delay,
                at: now.saturating_add(delay),
            };
        };
        RetryDecision::GiveUp { reason }
    }

    /// The attempt in flight succeeded: credit the budget.
    pub fn on_success(&self, budget: Option<&mut RetryBudget>) {
        if let Some(b) = budget {
            b.on_success();
        }
    }
}

/// gRPC's retry throttling parameters. JSON: `{"maxTokens": 10, "tokenRatio": 0.1}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RetryBudgetConfig {
    /// The bucket's size, and its level at the start.
    pub max_tokens: Count<1, { MAX_TOKENS }>,
    /// Tokens a success gives back: over 0, at most `maxTokens`, in thousandths (more
    /// decimals are cut, as gRPC does).
    pub token_ratio: f64,
}

impl Default for RetryBudgetConfig {
    /// gRFC A6's example: 10 tokens, 0.1 per success.
    fn default() -> Self {
        RetryBudgetConfig {
            max_tokens: Count::of(10),
            token_ratio: 0.1,
        }
    }
}

/// Counters of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BudgetStats {
    pub successes: u64,
    pub failures: u64,
    /// Times [`RetryBudget::allows_retry`] said yes, and no.
    pub retries_allowed: u64,
    pub retries_throttled: u64,
}

/// gRPC retry throttling: a token bucket shared by every call to one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryBudget {
    /// In thousandths of a token.
    max: u64,
    ratio: u64,
    tokens: u64,
    stats: BudgetStats,
}

impl RetryBudget {
    /// A full budget; errors name the field (`tokenRatio`).
    pub fn new(c: &RetryBudgetConfig) -> Result<Self> {
        let max = u64::from(c.max_tokens.get()) * 1_000;
        let r = c.token_ratio;
        // Cut to thousandths, as gRPC does; what is left must be a positive amount.
        let ratio = if r.is_finite() && r > 0.0 && r <= f64::from(c.max_tokens.get()) {
            (r * 1_000.0) as u64
        } else {
            0
        };
        if ratio == 0 {
            return Err(DistlabError::field(
                "tokenRatio",
                format!(
                    "must be at least 0.001 and at most maxTokens ({}), got {r}",
                    c.max_tokens
                ),
            ));
        }
        Ok(RetryBudget {
            max,
            ratio,
            tokens: max,
            stats: BudgetStats::default(),
        })
    }

    /// Tokens now.
    pub fn tokens(&self) -> f64 {
        self.tokens as f64 / 1_000.0
    }

    pub fn max_tokens(&self) -> f64 {
        self.max as f64 / 1_000.0
    }

    pub fn stats(&self) -> BudgetStats {
        self.stats
    }

    /// An attempt failed (in a way gRPC counts: the caller decides).
    pub fn on_failure(&mut self) {
        self.tokens = self.tokens.saturating_sub(1_000);
        self.stats.failures += 1;
    }

    /// An attempt succeeded.
    pub fn on_success(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(self.max);
        self.stats.successes += 1;
    }

    /// Whether a retry may go now: more than half the tokens remain. Counts the answer.
    pub fn allows_retry(&mut self) -> bool {
        let yes = self.tokens * 2 > self.max;
        if yes {
            self.stats.retries_allowed += 1;
        } else {
            self.stats.retries_throttled += 1;
        }
        yes
    }
}

#[cfg(test)]
mod tests;
