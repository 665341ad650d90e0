//! Hedging: when an attempt is slow to answer, send the same call again without waiting
//! for it to fail; the first success wins and the attempts still in flight are cancelled.
//!
//! References:
//! - gRPC's hedging policy (gRFC A6, "Client Retry Support", the `hedgingPolicy`):
//!   `maxAttempts` attempts in all (clients cap it at 5), the next one sent `hedgingDelay`
//!   after the previous; an attempt failing with a status in `nonFatalStatusCodes` sends
//!   the next one at once, any other status ends the call with that error and cancels
//!   the rest; the first success ends the call; once every attempt has failed the call
//!   fails with the last error — a hedged call is never retried after that. Hedges are
//!   throttled by the same token bucket as retries ([`RetryBudget`]): no hedge goes while
//!   the budget is at or below half, failures with a non-fatal status take a token and
//!   successes give back `tokenRatio`.
//! - Dean & Barroso, "The Tail at Scale" (CACM 2013): defer the hedge until the first
//!   attempt has been outstanding longer than the 95th-percentile latency of its kind,
//!   which bounds the extra load to about 5 % while cutting the tail. [`HedgingDelay::
//!   Percentile`] does that over a sliding window of the latencies of recent winning
//!   attempts (Finagle's `BackupRequestFilter` likewise). The window only sees attempts
//!   that answered before being cancelled, so when hedges win often it underestimates
//!   the tail — the budget bounds what that costs.
//!
//! Differences from gRPC: `maxAttempts` 1 is allowed (hedging off: the baseline a lab
//! compares with; gRPC rejects it), and the delay may be a percentile.
//!
//! Sans-I/O: [`HedgingPolicy::start`] opens a [`HedgedCall`]; the caller sends what each
//! [`HedgeAction::Send`] says, arms a timer for [`HedgedCall::poll_timeout`], and feeds
//! back [`HedgedCall::handle_timeout`] and [`HedgedCall::on_result`]. Cost: O(1) per
//! decision, plus O(window) for a latency observed by a percentile delay.

use std::collections::VecDeque;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis, Probability};
use crate::error::{DistlabError, Result};
use crate::resilience::retry::RetryBudget;
use crate::resilience::{ErrorKind, ErrorKinds};
use crate::time::{Duration, Time};

pub mod lab;
#[cfg(test)]
mod tests;

/// The most attempts a hedged call may make, the first included (gRPC's cap).
pub const MAX_HEDGED_ATTEMPTS: u32 = 5;
/// The longest hedging delay: an hour, in ms.
pub const MAX_HEDGING_DELAY_MS: u32 = 3_600_000;
/// The most latencies a percentile delay keeps.
pub const MAX_WINDOW: u32 = 100_000;

/// When the next attempt goes. JSON: `{"type": "fixed", "ms": 100}` or `{"type":
/// "percentile", "quantile": 0.95, "window": 1000, "minSamples": 20, "fallbackMs": 100}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HedgingDelay {
    /// A fixed delay (gRPC's `hedgingDelay`; 0 sends every attempt at once).
    Fixed {
        ms: Millis<0, { MAX_HEDGING_DELAY_MS }>,
    },
    /// The `quantile` of the latencies of the last `window` winning attempts; until
    /// `minSamples` have been seen, `fallbackMs`.
    Percentile {
        quantile: Probability,
        window: Count<1, { MAX_WINDOW }>,
        min_samples: Count<1, { MAX_WINDOW }>,
        fallback_ms: Millis<0, { MAX_HEDGING_DELAY_MS }>,
    },
}

impl HedgingDelay {
    /// The Tail at Scale's rule: the p95 of the last 1,000 winning attempts, 100 ms
    /// until 20 have been seen.
    pub const P95: HedgingDelay = HedgingDelay::Percentile {
        quantile: Probability::of(0.95),
        window: Count::of(1_000),
        min_samples: Count::of(20),
        fallback_ms: Millis::of(100),
    };
}

/// A hedging policy. JSON: `{"maxAttempts": 3, "delay": {"type": "fixed", "ms": 100},
/// "nonFatal": ["unavailable"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HedgingConfig {
    /// Attempts in all, the first included (1: hedging off).
    pub max_attempts: Count<1, { MAX_HEDGED_ATTEMPTS }>,
    pub delay: HedgingDelay,
    /// Error kinds after which the next attempt goes at once; any other ends the call.
    pub non_fatal: Vec<ErrorKind>,
}

impl Default for HedgingConfig {
    fn default() -> Self {
        HedgingConfig {
            max_attempts: Count::of(3),
            delay: HedgingDelay::Fixed {
                ms: Millis::of(100),
            },
            non_fatal: vec![ErrorKind::Unavailable, ErrorKind::Overloaded],
        }
    }
}

/// The latencies of the newest `capacity` winning attempts, kept both in arrival order
/// (to drop the oldest) and sorted (to read a quantile in O(1)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyWindow {
    capacity: usize,
    arrivals: VecDeque<u64>,
    sorted: Vec<u64>,
}

impl LatencyWindow {
    pub fn new(capacity: usize) -> Self {
        LatencyWindow {
            capacity: capacity.max(1),
            arrivals: VecDeque::new(),
            sorted: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Adds a latency, dropping the oldest once full.
    pub fn push(&mut self, latency: Duration) {
        if self.arrivals.len() == self.capacity
            && let Some(old) = self.arrivals.pop_front()
            && let Ok(i) = self.sorted.binary_search(&old)
        {
            self.sorted.remove(i);
        }
        self.arrivals.push_back(latency.0);
        let i = self.sorted.partition_point(|l| *l <= latency.0);
        self.sorted.insert(i, latency.0);
    }

    /// The nearest-rank `q`-quantile: the smallest latency with at least `q` of the
    /// window at or below it. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = libm::ceil(q * n as f64) as usize;
        self.sorted.get(rank.clamp(1, n) - 1).map(|l| Duration(*l))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum DelayRule {
    Fixed(Duration),
    Percentile {
        quantile: f64,
        window: LatencyWindow,
        min_samples: usize,
        fallback: Duration,
    },
}

/// Counters of a [`HedgingPolicy`], over every call it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HedgingStats {
    pub calls: u64,
    pub attempts: u64,
    /// Attempts after the first.
    pub hedges: u64,
    /// Hedges the budget held back.
    pub throttled: u64,
    /// Attempts cancelled because the call had its answer.
    pub cancelled: u64,
    /// Calls a hedge (not the first attempt) won.
    pub won_by_hedge: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// A validated hedging policy, shared by the calls to one dependency: it learns the
/// latency a percentile delay needs and keeps the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgingPolicy {
    max_attempts: u32,
    delay: DelayRule,
    non_fatal: ErrorKinds,
    stats: HedgingStats,
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HedgeAction {
    /// Send attempt `attempt` (0 is the first) now.
    Send { attempt: u32 },
    /// Cancel attempt `attempt`: the call has its answer.
    Cancel { attempt: u32 },
    /// The call is over: `error` is `None` when attempt `attempt` succeeded, else the
    /// error it ends with (from attempt `attempt`).
    Done {
        attempt: u32,
        error: Option<ErrorKind>,
        attempts: u32,
    },
}

/// One hedged call: the attempts sent, those in flight, when the next may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HedgedCall {
    started: Time,
    /// When each attempt was sent, by attempt number.
    sent: Vec<Time>,
    /// Bit `i`: attempt `i` is in flight.
    in_flight: u32,
    next_hedge_at: Option<Time>,
    done: bool,
}

impl HedgingPolicy {
    /// Errors name the field: `delay.minSamples` above `delay.window`.
    pub fn new(c: &HedgingConfig) -> Result<Self> {
        let delay = match c.delay {
            HedgingDelay::Fixed { ms } => DelayRule::Fixed(ms.duration()),
            HedgingDelay::Percentile {
                quantile,
                window,
                min_samples,
                fallback_ms,
            } => {
                if min_samples.get() > window.get() {
                    return Err(DistlabError::field(
                        "delay.minSamples",
                        format!("must be at most delay.window ({window}), got {min_samples}"),
                    ));
                }
                if quantile.get() <= 0.0 {
                    return Err(DistlabError::field(
                        "delay.quantile",
                        "must be above 0, got 0",
                    ));
                }
                DelayRule::Percentile {
                    quantile: quantile.get(),
                    window: LatencyWindow::new(window.get() as usize),
                    min_samples: min_samples.get() as usize,
                    fallback: fallback_ms.duration(),
                }
            }
        };
        Ok(HedgingPolicy {
            max_attempts: c.max_attempts.get(),
            delay,
            non_fatal: ErrorKinds::of(&c.non_fatal),
            stats: HedgingStats::default(),
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn stats(&self) -> HedgingStats {
        self.stats
    }

    /// The delay the next hedge waits now.
    pub fn delay(&self) -> Duration {
        match &self.delay {
            DelayRule::Fixed(d) => *d,
            DelayRule::Percentile {
                quantile,
                window,
                min_samples,
                fallback,
            } => {
                if window.len() < *min_samples {
                    *fallback
                } else {
                    window.quantile(*quantile).unwrap_or(*fallback)
                }
            }
        }
    }

    /// Whether an error of `kind` sends the next attempt (rather than ending the call).
    pub fn is_non_fatal(&self, kind: ErrorKind) -> bool {
        self.non_fatal.contains(kind)
    }

    fn observe(&mut self, latency: Duration) {
        if let DelayRule::Percentile { window, .. } = &mut self.delay {
            window.push(latency);
        }
    }

    /// Opens a call at `now`: the first attempt goes at once, and with a zero delay so
    /// do the hedges (each while `budget` allows).
    pub fn start(
        &mut self,
        now: Time,
        budget: Option<&mut RetryBudget>,
    ) -> (HedgedCall, Vec<HedgeAction>) {
        self.stats.calls += 1;
        let mut call = HedgedCall {
            started: now,
            sent: Vec::new(),
            in_flight: 0,
            next_hedge_at: None,
            done: false,
        };
        let mut actions = vec![call.send(now, self)];
        actions.extend(call.handle_timeout(now, self, budget));
        (call, actions)
    }
}

impl HedgedCall {
    pub fn started(&self) -> Time {
        self.started
    }

    /// Attempts sent so far.
    pub fn attempts(&self) -> u32 {
        self.sent.len() as u32
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether attempt `attempt` is in flight.
    pub fn in_flight(&self, attempt: u32) -> bool {
        attempt < 32 && self.in_flight & (1 << attempt) != 0
    }

    /// When the next hedge goes, if one is due.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.next_hedge_at
    }

    fn send(&mut self, now: Time, policy: &mut HedgingPolicy) -> HedgeAction {
        let attempt = self.sent.len() as u32;
        self.sent.push(now);
        self.in_flight |= 1 << attempt;
        policy.stats.attempts += 1;
        if attempt > 0 {
            policy.stats.hedges += 1;
        }
        self.next_hedge_at =
            (attempt + 1 < policy.max_attempts).then(|| now.saturating_add(policy.delay()));
        HedgeAction::Send { attempt }
    }

    /// Sends a hedge if the budget allows; once it refuses, no more hedges go.
    fn hedge(
        &mut self,
        now: Time,
        policy: &mut HedgingPolicy,
        budget: Option<&mut RetryBudget>,
    ) -> Option<HedgeAction> {
        if self.done || self.attempts() >= policy.max_attempts {
            self.next_hedge_at = None;
            return None;
        }
        if let Some(b) = budget
            && !b.allows_retry()
        {
            policy.stats.throttled += 1;
            self.next_hedge_at = None;
            return None;
        }
        Some(self.send(now, policy))
    }

    /// Sends the hedges due by `now` (several, when the delay is zero).
    pub fn handle_timeout(
        &mut self,
        now: Time,
        policy: &mut HedgingPolicy,
        mut budget: Option<&mut RetryBudget>,
    ) -> Vec<HedgeAction> {
        let mut actions = Vec::new();
        while let Some(at) = self.next_hedge_at
            && at <= now
        {
            match self.hedge(now, policy, budget.as_deref_mut()) {
                Some(a) => actions.push(a),
                None => break,
            }
        }
        actions
    }

    fn finish(
        &mut self,
        policy: &mut HedgingPolicy,
        attempt: u32,
        error: Option<ErrorKind>,
    ) -> Vec<HedgeAction> {
        self.done = true;
        self.next_hedge_at = None;
        let mut actions: Vec<HedgeAction> = (0..self.attempts())
            .filter(|a| self.in_flight(*a))
            .map(|attempt| HedgeAction::Cancel { attempt })
            .collect();
        policy.stats.cancelled += actions.len() as u64;
        self.in_flight = 0;
        match error {
            None => {
                policy.stats.succeeded += 1;
                if attempt > 0 {
                    policy.stats.won_by_hedge += 1;
                }
            }
            Some(_) => policy.stats.failed += 1,
        }
        actions.push(HedgeAction::Done {
            attempt,
            error,
            attempts: self.attempts(),
        });
        actions
    }

    /// Attempt `attempt` answered at `now`, with `error` if it failed. An answer for an
    /// attempt not in flight (cancelled, already answered, never sent) is ignored: it
    /// returns no action and changes nothing.
    pub fn on_result(
        &mut self,
        now: Time,
        attempt: u32,
        error: Option<ErrorKind>,
        policy: &mut HedgingPolicy,
        mut budget: Option<&mut RetryBudget>,
    ) -> Vec<HedgeAction> {
        if self.done || !self.in_flight(attempt) {
            return Vec::new();
        }
        self.in_flight &= !(1 << attempt);
        let sent = self.sent.get(attempt as usize).copied().unwrap_or(now);
        let Some(kind) = error else {
            if let Some(b) = budget {
                b.on_success();
            }
            policy.observe(now.saturating_since(sent));
            return self.finish(policy, attempt, None);
        };
        if !policy.is_non_fatal(kind) {
            return self.finish(policy, attempt, Some(kind));
        }
        if let Some(b) = budget.as_deref_mut() {
            b.on_failure();
        }
        // A non-fatal failure sends the next attempt at once, cutting its delay short.
        if self.next_hedge_at.is_some() {
            self.next_hedge_at = Some(now);
        }
        let actions = self.handle_timeout(now, policy, budget);
        if actions.is_empty() && self.in_flight == 0 {
            return self.finish(policy, attempt, Some(kind));
        }
        actions
    }

    /// The caller gives up (its own deadline): cancels what is in flight and ends the
    /// call with `timeout`. Nothing, if the call was over.
    pub fn cancel(&mut self, policy: &mut HedgingPolicy) -> Vec<HedgeAction> {
        if self.done {
            return Vec::new();
        }
        let last = self.attempts().saturating_sub(1);
        self.finish(policy, last, Some(ErrorKind::Timeout))
    }
}
