//! A resilience policy: the primitives of this section composed into one pipeline, in an
//! order the user chooses — timeout, retry, circuit breaker, bulkhead, hedging and
//! fallback, each the existing type ([`crate::resilience::circuit_breaker::CircuitBreaker`],
//! [`crate::resilience::retry::RetryPolicy`], ...), not a copy.
//!
//! References: Polly v8's `ResiliencePipeline` is the semantic anchor ("strategies are
//! executed in the order they were added": the first is the outermost, it wraps all the
//! others and the call; Polly's docs on strategy order); the seed's `ResiliencePolicy`
//! (`withTimeout(...).withRetry(...).withCircuitBreaker(...)`, the first added
//! outermost) is the same shape.
//!
//! What each strategy does to what it wraps (its *inner* pipeline: the strategies after
//! it, then the call):
//! - `timeout`: the inner pipeline has `timeoutMs`; past it the inner work is cancelled
//!   and this fails with `timeout`. Outside a retry it bounds the whole call, inside it
//!   bounds each attempt (Polly's "timeout per attempt" vs "total timeout").
//! - `retry`: runs the inner pipeline again after a backoff while [`RetryPolicy`] (and
//!   its optional gRPC retry budget) says so.
//! - `circuitBreaker`: asks [`CircuitBreaker::try_acquire`]; refused, it fails at once
//!   with `unavailable` (Resilience4j's `CallNotPermittedException`, Polly's
//!   `BrokenCircuitException`), without running the inner pipeline; else the inner
//!   pipeline's result is recorded (its duration from the permit: slow calls count).
//! - `bulkhead`: takes a slot of the [`Bulkhead`] (or waits in its queue) for as long as
//!   the inner pipeline runs; full, it fails at once with `overloaded`.
//! - `hedging`: runs the inner pipeline as [`HedgedCall`] says — again after the hedging
//!   delay or a non-fatal error, first success wins, the rest are cancelled.
//! - `fallback`: level 0 of its [`FallbackChain`] is the inner pipeline; the chain's
//!   other levels are other sources the caller is asked to call (target `fallback`), then
//!   its static default.
//!
//! Order matters. Two orders of the same retry and breaker on the same failure stream:
//! - retry outside the breaker (`[retry, circuitBreaker]`, Polly's recommended order):
//!   the breaker sees every attempt, opens on the attempts' failure rate, and then
//!   refuses the retries at once, so an open circuit takes the retries' load off the
//!   dependency (they fail fast as `unavailable`; add it to `retryOn` or not).
//! - retry inside the breaker (`[circuitBreaker, retry]`): the breaker sees one result
//!   per call, after the retries; failures the retries mask never count, so it opens
//!   later or never (at a 50 % attempt failure rate and 3 attempts a call fails 12.5 % of
//!   the time), and every retry reaches the dependency.
//!
//! Which is right: outside, when the breaker is there to protect a struggling
//! dependency (its failures are correlated: an outage, an overload) — the usual case;
//! inside, when the failures are independent and transient (the retries mend them) and
//! the breaker should only trip when calls fail end to end. The tests show both on one
//! stream.
//!
//! Sans-I/O: [`Pipeline::start`] opens a call; the pipeline answers with
//! [`PolicyAction`]s — send attempt `attempt` (to the dependency or to a fallback
//! source), cancel one, the call is done (with its outcome and the attempts it made on
//! the dependency). The caller reports each attempt's result with
//! [`Pipeline::on_result`] and calls [`Pipeline::handle_timeout`] at
//! [`Pipeline::poll_timeout`]. Randomness (retry jitter) comes from the caller's
//! [`SimRng`]. Cost: a result or a timer is O(strategies + calls open) (the timer scan
//! walks the open work).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::Millis;
use crate::error::{DistlabError, Result};
use crate::resilience::ErrorKind;
use crate::resilience::bulkhead::{Bulkhead, BulkheadConfig, BulkheadEntry, WaiterEvent};
use crate::resilience::circuit_breaker::{Admission, CircuitBreaker, CircuitBreakerConfig, Permit};
use crate::resilience::fallback::{
    FallbackAction, FallbackCall, FallbackChain, FallbackConfig, Served,
};
use crate::resilience::hedging::{HedgeAction, HedgedCall, HedgingConfig, HedgingPolicy};
use crate::resilience::retry::{
    RetryBudget, RetryBudgetConfig, RetryConfig, RetryDecision, RetryPolicy, RetryState,
};
use crate::resilience::timeout::{Deadline, MAX_TIMEOUT_MS};
use crate::rng::SimRng;
use crate::sim::workload::within;
use crate::time::{Duration, Time};

pub mod lab;
#[cfg(test)]
mod tests;

/// The most strategies a pipeline may hold.
pub const MAX_STRATEGIES: usize = 8;
/// Timer rounds one [`Pipeline::handle_timeout`] runs at most (each settles one timer).
const MAX_TIMER_ROUNDS: usize = 1_000_000;

/// One strategy. JSON: `{"type": "timeout", "timeoutMs": 500}`, `{"type": "retry",
/// "policy": {...}, "budget": {"maxTokens": 10, "tokenRatio": 0.1}}` (budget optional),
/// `{"type": "circuitBreaker", "config": {...}}`, `{"type": "bulkhead", "config": {...}}`,
/// `{"type": "hedging", "config": {...}}`, `{"type": "fallback", "config": {...}}` (each
/// `config`/`policy` is the primitive's own, defaults if left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum StrategyConfig {
    Timeout {
        timeout_ms: Millis<1, { MAX_TIMEOUT_MS }>,
    },
    Retry {
        #[serde(default)]
        policy: RetryConfig,
        #[serde(default)]
        budget: Option<RetryBudgetConfig>,
    },
    CircuitBreaker {
        #[serde(default)]
        config: CircuitBreakerConfig,
    },
    Bulkhead {
        #[serde(default)]
        config: BulkheadConfig,
    },
    Hedging {
        #[serde(default)]
        config: HedgingConfig,
    },
    Fallback {
        #[serde(default)]
        config: FallbackConfig,
    },
}

impl StrategyConfig {
    /// The strategy's name (its JSON `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StrategyConfig::Timeout { .. } => "timeout",
            StrategyConfig::Retry { .. } => "retry",
            StrategyConfig::CircuitBreaker { .. } => "circuitBreaker",
            StrategyConfig::Bulkhead { .. } => "bulkhead",
            StrategyConfig::Hedging { .. } => "hedging",
            StrategyConfig::Fallback { .. } => "fallback",
        }
    }
}

/// A pipeline: strategies outermost first. JSON: `{"strategies": [{"type": "retry"},
/// {"type": "circuitBreaker"}, {"type": "timeout", "timeoutMs": 1000}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PolicyConfig {
    /// Outermost first: the first wraps all the others and the call.
    pub strategies: Vec<StrategyConfig>,
}

impl Default for PolicyConfig {
    /// Polly's recommended order: fallback, retry, circuit breaker, per-attempt timeout.
    fn default() -> Self {
        PolicyConfig {
            strategies: vec![
                StrategyConfig::Fallback {
                    config: FallbackConfig::default(),
                },
                StrategyConfig::Retry {
                    policy: RetryConfig::default(),
                    budget: None,
                },
                StrategyConfig::CircuitBreaker {
                    config: CircuitBreakerConfig::default(),
                },
                StrategyConfig::Timeout {
                    timeout_ms: Millis::of(1_000),
                },
            ],
        }
    }
}

/// A strategy in force: the primitive's own state, shared by every call.
#[derive(Debug, Clone)]
pub enum Strategy {
    Timeout(Duration),
    Retry {
        policy: RetryPolicy,
        budget: Option<RetryBudget>,
    },
    CircuitBreaker(CircuitBreaker),
    Bulkhead(Bulkhead),
    Hedging(HedgingPolicy),
    Fallback(FallbackChain),
}

impl Strategy {
    fn new(c: &StrategyConfig) -> Result<Self> {
        Ok(match c {
            StrategyConfig::Timeout { timeout_ms } => Strategy::Timeout(timeout_ms.duration()),
            StrategyConfig::Retry { policy, budget } => Strategy::Retry {
                policy: RetryPolicy::new(policy).map_err(|e| within("policy", e))?,
                budget: budget
                    .as_ref()
                    .map(RetryBudget::new)
                    .transpose()
                    .map_err(|e| within("budget", e))?,
            },
            StrategyConfig::CircuitBreaker { config } => Strategy::CircuitBreaker(
                CircuitBreaker::new(config.clone()).map_err(|e| within("config", e))?,
            ),
            StrategyConfig::Bulkhead { config } => Strategy::Bulkhead(Bulkhead::new(*config)),
            StrategyConfig::Hedging { config } => {
                Strategy::Hedging(HedgingPolicy::new(config).map_err(|e| within("config", e))?)
            }
            StrategyConfig::Fallback { config } => {
                Strategy::Fallback(FallbackChain::new(config).map_err(|e| within("config", e))?)
            }
        })
    }

    /// The most times this strategy runs what it wraps in one call.
    fn fan_out(&self) -> u64 {
        match self {
            Strategy::Retry { policy, .. } => u64::from(policy.max_attempts()),
            Strategy::Hedging(h) => u64::from(h.max_attempts()),
            _ => 1,
        }
    }
}

/// Where an attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Target {
    /// The dependency the pipeline protects.
    Dependency,
    /// Level `level` (1 or more) of the fallback strategy at `strategy`.
    Fallback { strategy: u32, level: u32 },
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Outcome {
    /// The dependency answered.
    Succeeded,
    /// A fallback answered: its level `level` (1 or more), or its static default (null).
    FellBack {
        strategy: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
        level: Option<u32>,
    },
    /// The call failed with `error`, raised by strategy `by` (a timeout, a breaker or a
    /// bulkhead refusing) or, when null, by the dependency.
    Failed {
        error: ErrorKind,
        #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
        by: Option<u32>,
    },
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum PolicyAction {
    /// Make attempt `attempt` of call `call` now, to `target`; report it with
    /// [`Pipeline::on_result`].
    Send {
        attempt: u64,
        call: u64,
        target: Target,
    },
    /// Attempt `attempt` is no longer wanted: cancel it (its result will be ignored).
    Cancel { attempt: u64 },
    /// Call `call` is over after `latency` µs, having sent `attempts` attempts to the
    /// dependency.
    Done {
        call: u64,
        outcome: Outcome,
        attempts: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        latency: Duration,
    },
}

/// Counters since the pipeline was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PolicyStats {
    pub calls: u64,
    pub succeeded: u64,
    pub fell_back: u64,
    pub failed: u64,
    /// Attempts sent to the dependency, and to fallback sources.
    pub attempts: u64,
    pub fallback_attempts: u64,
    /// Attempts cancelled (a timeout, a losing hedge, a cancelled call).
    pub cancelled: u64,
    /// Calls the caller gave up on ([`Pipeline::cancel_call`]): neither succeeded nor
    /// failed.
    pub calls_cancelled: u64,
}

/// A failure travelling out through the strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    error: ErrorKind,
    by: Option<u32>,
}

/// What one run of a (part of the) pipeline gave.
type RunResult = std::result::Result<Outcome, Failure>;

fn error_of(r: &RunResult) -> Option<ErrorKind> {
    r.as_ref().err().map(|f| f.error)
}

/// One running piece of a call: strategy `layer`'s run of what it wraps, or (layer =
/// strategies) an attempt.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    call: u64,
    parent: Option<u64>,
    layer: usize,
    work: Work,
}

#[derive(Debug, Clone, PartialEq)]
enum Work {
    Attempt,
    Timeout {
        deadline: Deadline,
        child: Option<u64>,
    },
    Retry {
        state: RetryState,
        child: Option<u64>,
        retry_at: Option<Time>,
    },
    Breaker {
        permit: Permit,
        child: Option<u64>,
    },
    Bulkhead {
        holding: bool,
        child: Option<u64>,
    },
    Hedging {
        hedged: HedgedCall,
        /// Attempt number → the node running it.
        children: BTreeMap<u32, u64>,
    },
    Fallback {
        chain_call: FallbackCall,
        /// The level being asked and the node asking it.
        child: Option<(u32, u64)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenCall {
    started: Time,
    attempts: u32,
}

/// A resilience pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    strategies: Vec<Strategy>,
    nodes: BTreeMap<u64, Node>,
    next_node: u64,
    calls: BTreeMap<u64, OpenCall>,
    next_call: u64,
    /// Waiter events of a bulkhead (by layer) still to act on.
    waiters: Vec<(usize, WaiterEvent)>,
    stats: PolicyStats,
}

impl Pipeline {
    /// Errors name the field: `strategies` empty or longer than [`MAX_STRATEGIES`], or
    /// `strategies[i].<field>` as the primitive names it.
    pub fn new(c: &PolicyConfig) -> Result<Self> {
        if c.strategies.is_empty() || c.strategies.len() > MAX_STRATEGIES {
            return Err(DistlabError::field(
                "strategies",
                format!(
                    "must hold 1 to {MAX_STRATEGIES} strategies, got {}",
                    c.strategies.len()
                ),
            ));
        }
        let strategies = c
            .strategies
            .iter()
            .enumerate()
            .map(|(i, s)| Strategy::new(s).map_err(|e| within(&format!("strategies[{i}]"), e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline {
            strategies,
            nodes: BTreeMap::new(),
            next_node: 0,
            calls: BTreeMap::new(),
            next_call: 0,
            waiters: Vec::new(),
            stats: PolicyStats::default(),
        })
    }

    /// Outermost first.
    pub fn strategies(&self) -> &[Strategy] {
        &self.strategies
    }

    pub fn stats(&self) -> PolicyStats {
        self.stats
    }

    /// Calls started and not done.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Attempts in flight (to the dependency or a fallback).
    pub fn attempts_in_flight(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| matches!(n.work, Work::Attempt))
            .count()
    }

    /// The most attempts one call can send to the dependency: the product of the
    /// retries' and hedges' maximum attempts.
    pub fn max_attempts_per_call(&self) -> u64 {
        self.strategies
            .iter()
            .map(Strategy::fan_out)
            .fold(1u64, |a, b| a.saturating_mul(b))
    }

    /// Opens a call at `now`.
    pub fn start(&mut self, now: Time, rng: &mut SimRng) -> (u64, Vec<PolicyAction>) {
        let call = self.next_call;
        self.next_call += 1;
        self.stats.calls += 1;
        self.calls.insert(
            call,
            OpenCall {
                started: now,
                attempts: 0,
            },
        );
        let mut out = Vec::new();
        self.spawn(now, rng, call, None, 0, &mut out);
        self.settle(now, rng, &mut out);
        (call, out)
    }

    /// Attempt `attempt` answered at `now`, failing with `error` or not. The answer to
    /// an attempt cancelled (or already answered) is ignored. Error: no such attempt was
    /// ever sent.
    pub fn on_result(
        &mut self,
        now: Time,
        attempt: u64,
        error: Option<ErrorKind>,
        rng: &mut SimRng,
    ) -> Result<Vec<PolicyAction>> {
        if attempt >= self.next_node {
            return Err(DistlabError::field(
                "attempt",
                format!("attempt {attempt} was never sent"),
            ));
        }
        let mut out = Vec::new();
        let Some(node) = self.nodes.get(&attempt) else {
            return Ok(out);
        };
        if node.work != Work::Attempt {
            return Err(DistlabError::field(
                "attempt",
                format!("{attempt} is not an attempt"),
            ));
        }
        // A fallback source's answer is turned into `fellBack` by its fallback node.
        let result = match error {
            None => Ok(Outcome::Succeeded),
            Some(error) => Err(Failure { error, by: None }),
        };
        self.complete(now, rng, attempt, result, &mut out);
        self.settle(now, rng, &mut out);
        Ok(out)
    }

    /// The earliest deadline of the timeouts wrapping attempt `attempt` while it is in
    /// flight: what a downstream hop may spend on it (gRPC deadline propagation: the
    /// deadline travels, so the time already spent is gone from it). `None`: no timeout
    /// wraps it, or it is not in flight.
    pub fn attempt_deadline(&self, attempt: u64) -> Option<Deadline> {
        let mut at = self.nodes.get(&attempt)?;
        let mut earliest: Option<Deadline> = None;
        loop {
            if let Work::Timeout { deadline, .. } = &at.work {
                earliest = Some(earliest.map_or(*deadline, |e| e.min(*deadline)));
            }
            match at.parent.and_then(|p| self.nodes.get(&p)) {
                Some(parent) => at = parent,
                None => return earliest,
            }
        }
    }

    /// The attempts in flight (to the dependency or a fallback), by id.
    pub fn attempts(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes
            .iter()
            .filter(|(_, n)| n.work == Work::Attempt)
            .map(|(id, _)| *id)
    }

    /// How many ids (calls' pieces and attempts) the pipeline has handed out: every
    /// attempt id it ever sent is below it.
    pub fn ids_issued(&self) -> u64 {
        self.next_node
    }

    /// The call attempt `attempt` belongs to, while it is in flight.
    pub fn call_of(&self, attempt: u64) -> Option<u64> {
        self.nodes
            .get(&attempt)
            .filter(|n| n.work == Work::Attempt)
            .map(|n| n.call)
    }

    /// The caller gave up on call `call` (its own caller cancelled, or its deadline
    /// passed): every attempt under it is cancelled ([`PolicyAction::Cancel`]), breaker
    /// permits go back unrecorded and bulkhead slots are freed (a waiter they admit may
    /// send at once). The call ends without a `Done`: nobody waits for its outcome. A
    /// call not open: nothing happens.
    pub fn cancel_call(&mut self, now: Time, call: u64, rng: &mut SimRng) -> Vec<PolicyAction> {
        let mut out = Vec::new();
        if self.calls.remove(&call).is_none() {
            return out;
        }
        self.stats.calls_cancelled += 1;
        let root = self
            .nodes
            .iter()
            .find_map(|(id, n)| (n.call == call && n.parent.is_none()).then_some(*id));
        if let Some(root) = root {
            self.cancel_subtree(now, root, &mut out);
        }
        self.settle(now, rng, &mut out);
        out
    }

    /// When the next timer is due: a timeout, a retry's backoff, a hedge, a fallback
    /// level's timeout, a bulkhead waiter's wait, a breaker's transition.
    pub fn poll_timeout(&self) -> Option<Time> {
        let nodes = self.nodes.values().filter_map(Self::node_timer);
        let strategies = self.strategies.iter().filter_map(|s| match s {
            Strategy::Bulkhead(b) => b.poll_timeout(),
            Strategy::CircuitBreaker(b) => b.poll_timeout(),
            _ => None,
        });
        nodes.chain(strategies).min()
    }

    fn node_timer(n: &Node) -> Option<Time> {
        match &n.work {
            Work::Timeout { deadline, .. } => Some(deadline.at()),
            Work::Retry { retry_at, .. } => *retry_at,
            Work::Hedging { hedged, .. } => hedged.poll_timeout(),
            Work::Fallback { chain_call, .. } => chain_call.poll_timeout(),
            _ => None,
        }
    }

    /// Runs every timer due by `now`.
    pub fn handle_timeout(&mut self, now: Time, rng: &mut SimRng) -> Vec<PolicyAction> {
        let mut out = Vec::new();
        for s in &mut self.strategies {
            match s {
                Strategy::CircuitBreaker(b) if b.poll_timeout().is_some_and(|t| t <= now) => {
                    b.handle_timeout(now);
                }
                _ => {}
            }
        }
        let n = self.strategies.len();
        for layer in 0..n {
            if let Some(Strategy::Bulkhead(b)) = self.strategies.get_mut(layer) {
                let events = b.handle_timeout(now);
                self.waiters.extend(events.into_iter().map(|e| (layer, e)));
            }
        }
        self.settle(now, rng, &mut out);
        for _ in 0..MAX_TIMER_ROUNDS {
            let due = self
                .nodes
                .iter()
                .find_map(|(id, n)| Self::node_timer(n).is_some_and(|t| t <= now).then_some(*id));
            let Some(id) = due else { break };
            self.fire(now, rng, id, &mut out);
            self.settle(now, rng, &mut out);
        }
        out
    }

    fn fire(&mut self, now: Time, rng: &mut SimRng, id: u64, out: &mut Vec<PolicyAction>) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let layer = node.layer;
        let call = node.call;
        match &mut node.work {
            Work::Timeout { child, .. } => {
                let child = child.take();
                if let Some(c) = child {
                    self.cancel_subtree(now, c, out);
                }
                let failure = Failure {
                    error: ErrorKind::Timeout,
                    by: Some(layer as u32),
                };
                self.complete(now, rng, id, Err(failure), out);
            }
            Work::Retry {
                retry_at, child, ..
            } => {
                *retry_at = None;
                *child = Some(self.next_node);
                self.spawn(now, rng, call, Some(id), layer + 1, out);
            }
            Work::Hedging { hedged, .. } => {
                let actions = match self.strategies.get_mut(layer) {
                    Some(Strategy::Hedging(policy)) => hedged.handle_timeout(now, policy, None),
                    _ => Vec::new(),
                };
                self.apply_hedging(now, rng, id, actions, None, out);
            }
            Work::Fallback { chain_call, .. } => {
                let actions = match self.strategies.get_mut(layer) {
                    Some(Strategy::Fallback(chain)) => chain_call.handle_timeout(now, chain),
                    _ => Vec::new(),
                };
                self.apply_fallback(now, rng, id, actions, None, out);
            }
            Work::Attempt | Work::Breaker { .. } | Work::Bulkhead { .. } => {}
        }
    }

    /// Starts strategy `layer`'s run (or, past the last strategy, an attempt on the
    /// dependency) as node `self.next_node`, a child of `parent`.
    fn spawn(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        call: u64,
        parent: Option<u64>,
        layer: usize,
        out: &mut Vec<PolicyAction>,
    ) {
        let id = self.next_node;
        self.next_node += 1;
        let node = |work| Node {
            call,
            parent,
            layer,
            work,
        };
        let next = self.next_node;
        match self.strategies.get_mut(layer) {
            None => {
                self.nodes.insert(id, node(Work::Attempt));
                self.stats.attempts += 1;
                if let Some(c) = self.calls.get_mut(&call) {
                    c.attempts += 1;
                }
                out.push(PolicyAction::Send {
                    attempt: id,
                    call,
                    target: Target::Dependency,
                });
            }
            Some(Strategy::Timeout(d)) => {
                let deadline = Deadline::from_timeout(now, *d);
                self.nodes.insert(
                    id,
                    node(Work::Timeout {
                        deadline,
                        child: Some(next),
                    }),
                );
                self.spawn(now, rng, call, Some(id), layer + 1, out);
            }
            Some(Strategy::Retry { .. }) => {
                self.nodes.insert(
                    id,
                    node(Work::Retry {
                        state: RetryState::first_attempt(),
                        child: Some(next),
                        retry_at: None,
                    }),
                );
                self.spawn(now, rng, call, Some(id), layer + 1, out);
            }
            Some(Strategy::CircuitBreaker(b)) => match b.try_acquire(now) {
                Admission::Permitted { permit } => {
                    self.nodes.insert(
                        id,
                        node(Work::Breaker {
                            permit,
                            child: Some(next),
                        }),
                    );
                    self.spawn(now, rng, call, Some(id), layer + 1, out);
                }
                Admission::Rejected { .. } => {
                    let failure = Failure {
                        error: ErrorKind::Unavailable,
                        by: Some(layer as u32),
                    };
                    self.deliver(now, rng, call, parent, id, Err(failure), out);
                }
            },
            Some(Strategy::Bulkhead(b)) => {
                let Ok((entry, events)) = b.try_enter(now, id) else {
                    // Cannot happen: node ids are never reused.
                    return;
                };
                self.waiters.extend(events.into_iter().map(|e| (layer, e)));
                match entry {
                    BulkheadEntry::Admitted => {
                        self.nodes.insert(
                            id,
                            node(Work::Bulkhead {
                                holding: true,
                                child: Some(next),
                            }),
                        );
                        self.spawn(now, rng, call, Some(id), layer + 1, out);
                    }
                    BulkheadEntry::Queued { .. } => {
                        self.nodes.insert(
                            id,
                            node(Work::Bulkhead {
                                holding: false,
                                child: None,
                            }),
                        );
                    }
                    BulkheadEntry::Rejected => {
                        let failure = Failure {
                            error: ErrorKind::Overloaded,
                            by: Some(layer as u32),
                        };
                        self.deliver(now, rng, call, parent, id, Err(failure), out);
                    }
                }
            }
            Some(Strategy::Hedging(policy)) => {
                let (hedged, actions) = policy.start(now, None);
                self.nodes.insert(
                    id,
                    node(Work::Hedging {
                        hedged,
                        children: BTreeMap::new(),
                    }),
                );
                self.apply_hedging(now, rng, id, actions, None, out);
            }
            Some(Strategy::Fallback(chain)) => {
                let (chain_call, action) = chain.start(now);
                self.nodes.insert(
                    id,
                    node(Work::Fallback {
                        chain_call,
                        child: None,
                    }),
                );
                self.apply_fallback(now, rng, id, vec![action], None, out);
            }
        }
    }

    /// A fallback source's attempt for level `level` of the fallback at `parent`.
    fn spawn_fallback_attempt(
        &mut self,
        call: u64,
        parent: u64,
        level: u32,
        out: &mut Vec<PolicyAction>,
    ) {
        let id = self.next_node;
        self.next_node += 1;
        let strategy = self.nodes.get(&parent).map_or(0, |n| n.layer as u32);
        self.nodes.insert(
            id,
            Node {
                call,
                parent: Some(parent),
                layer: self.strategies.len(),
                work: Work::Attempt,
            },
        );
        self.stats.fallback_attempts += 1;
        out.push(PolicyAction::Send {
            attempt: id,
            call,
            target: Target::Fallback { strategy, level },
        });
    }

    fn apply_hedging(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        id: u64,
        actions: Vec<HedgeAction>,
        last: Option<RunResult>,
        out: &mut Vec<PolicyAction>,
    ) {
        for action in actions {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let (call, layer) = (node.call, node.layer);
            let Work::Hedging { children, .. } = &mut node.work else {
                return;
            };
            match action {
                HedgeAction::Send { attempt } => {
                    children.insert(attempt, self.next_node);
                    self.spawn(now, rng, call, Some(id), layer + 1, out);
                }
                HedgeAction::Cancel { attempt } => {
                    if let Some(c) = children.remove(&attempt) {
                        self.cancel_subtree(now, c, out);
                    }
                }
                HedgeAction::Done { error, .. } => {
                    let result = Self::ended(last, error, layer);
                    self.complete(now, rng, id, result, out);
                }
            }
        }
    }

    /// The result a strategy ends with: `last` (the run that ended it) if it agrees.
    fn ended(last: Option<RunResult>, error: Option<ErrorKind>, layer: usize) -> RunResult {
        match (error, last) {
            (None, Some(Ok(o))) => Ok(o),
            (None, _) => Ok(Outcome::Succeeded),
            (Some(e), Some(Err(f))) if f.error == e => Err(f),
            (Some(e), _) => Err(Failure {
                error: e,
                by: Some(layer as u32),
            }),
        }
    }

    fn apply_fallback(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        id: u64,
        actions: Vec<FallbackAction>,
        last: Option<RunResult>,
        out: &mut Vec<PolicyAction>,
    ) {
        for action in actions {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let (call, layer) = (node.call, node.layer);
            let Work::Fallback { child, .. } = &mut node.work else {
                return;
            };
            match action {
                FallbackAction::Ask { level, .. } => {
                    *child = Some((level, self.next_node));
                    if level == 0 {
                        self.spawn(now, rng, call, Some(id), layer + 1, out);
                    } else {
                        self.spawn_fallback_attempt(call, id, level, out);
                    }
                }
                FallbackAction::Cancel { level } => {
                    if let Some((l, c)) = *child
                        && l == level
                    {
                        *child = None;
                        self.cancel_subtree(now, c, out);
                    }
                }
                FallbackAction::Done { served, .. } => {
                    let strategy = layer as u32;
                    let result = match served {
                        Served::Level { level: 0 } => Self::ended(last, None, layer),
                        Served::Level { level } => Ok(Outcome::FellBack {
                            strategy,
                            level: Some(level),
                        }),
                        Served::StaticDefault => Ok(Outcome::FellBack {
                            strategy,
                            level: None,
                        }),
                        Served::Failed { error } => Self::ended(last, Some(error), layer),
                    };
                    self.complete(now, rng, id, result, out);
                }
            }
        }
    }

    /// Node `id` ended with `result`: it leaves, and its parent (or the call) hears.
    fn complete(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        id: u64,
        result: RunResult,
        out: &mut Vec<PolicyAction>,
    ) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        self.deliver(now, rng, node.call, node.parent, id, result, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        call: u64,
        parent: Option<u64>,
        child: u64,
        result: RunResult,
        out: &mut Vec<PolicyAction>,
    ) {
        match parent {
            Some(p) => self.on_child_done(now, rng, p, child, result, out),
            None => self.finish_call(now, call, result, out),
        }
    }

    fn finish_call(
        &mut self,
        now: Time,
        call: u64,
        result: RunResult,
        out: &mut Vec<PolicyAction>,
    ) {
        let Some(open) = self.calls.remove(&call) else {
            return;
        };
        let outcome = match result {
            Ok(o) => o,
            Err(f) => Outcome::Failed {
                error: f.error,
                by: f.by,
            },
        };
        match outcome {
            Outcome::Succeeded => self.stats.succeeded += 1,
            Outcome::FellBack { .. } => self.stats.fell_back += 1,
            Outcome::Failed { .. } => self.stats.failed += 1,
        }
        out.push(PolicyAction::Done {
            call,
            outcome,
            attempts: open.attempts,
            latency: now.saturating_since(open.started),
        });
    }

    /// What wraps `child` hears that it ended with `result`.
    fn on_child_done(
        &mut self,
        now: Time,
        rng: &mut SimRng,
        id: u64,
        child: u64,
        result: RunResult,
        out: &mut Vec<PolicyAction>,
    ) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let (call, layer) = (node.call, node.layer);
        match &mut node.work {
            Work::Attempt => {}
            Work::Timeout { child: c, .. } => {
                if *c == Some(child) {
                    self.complete(now, rng, id, result, out);
                }
            }
            Work::Retry {
                state,
                child: c,
                retry_at,
            } => {
                if *c != Some(child) {
                    return;
                }
                *c = None;
                let Some(Strategy::Retry { policy, budget }) = self.strategies.get_mut(layer)
                else {
                    return;
                };
                let Err(failure) = result else {
                    policy.on_success(budget.as_mut());
                    self.complete(now, rng, id, result, out);
                    return;
                };
                match policy.on_failure(state, now, failure.error, rng, budget.as_mut()) {
                    RetryDecision::Retry { at, .. } if at > now => *retry_at = Some(at),
                    RetryDecision::Retry { .. } => {
                        *c = Some(self.next_node);
                        self.spawn(now, rng, call, Some(id), layer + 1, out);
                    }
                    RetryDecision::GiveUp { .. } => self.complete(now, rng, id, result, out),
                }
            }
            Work::Breaker { permit, child: c } => {
                if *c != Some(child) {
                    return;
                }
                if let Some(Strategy::CircuitBreaker(b)) = self.strategies.get_mut(layer) {
                    // Cannot fail: the permit is this breaker's and reported once.
                    let _ = match error_of(&result) {
                        None => b.on_success(now, *permit),
                        Some(kind) => b.on_error(now, *permit, kind),
                    };
                }
                self.complete(now, rng, id, result, out);
            }
            Work::Bulkhead { holding, child: c } => {
                if *c != Some(child) {
                    return;
                }
                if *holding && let Some(Strategy::Bulkhead(b)) = self.strategies.get_mut(layer) {
                    let events = b.release(now, id).unwrap_or_default();
                    self.waiters.extend(events.into_iter().map(|e| (layer, e)));
                }
                self.complete(now, rng, id, result, out);
            }
            Work::Hedging { hedged, children } => {
                let Some(attempt) = children
                    .iter()
                    .find_map(|(a, c)| (*c == child).then_some(*a))
                else {
                    return;
                };
                children.remove(&attempt);
                let actions = match self.strategies.get_mut(layer) {
                    Some(Strategy::Hedging(policy)) => {
                        hedged.on_result(now, attempt, error_of(&result), policy, None)
                    }
                    _ => Vec::new(),
                };
                self.apply_hedging(now, rng, id, actions, Some(result), out);
            }
            Work::Fallback {
                chain_call,
                child: c,
            } => {
                let Some((level, _)) = c.filter(|(_, n)| *n == child) else {
                    return;
                };
                *c = None;
                let actions = match self.strategies.get_mut(layer) {
                    Some(Strategy::Fallback(chain)) => {
                        chain_call.on_result(now, level, error_of(&result), chain)
                    }
                    _ => Vec::new(),
                };
                self.apply_fallback(now, rng, id, actions, Some(result), out);
            }
        }
    }

    /// Node `id` and all under it are no longer wanted: attempts cancelled, permits and
    /// slots given back.
    fn cancel_subtree(&mut self, now: Time, id: u64, out: &mut Vec<PolicyAction>) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        let layer = node.layer;
        match node.work {
            Work::Attempt => {
                self.stats.cancelled += 1;
                out.push(PolicyAction::Cancel { attempt: id });
            }
            Work::Timeout { child, .. } | Work::Retry { child, .. } => {
                if let Some(c) = child {
                    self.cancel_subtree(now, c, out);
                }
            }
            Work::Breaker { permit, child } => {
                if let Some(c) = child {
                    self.cancel_subtree(now, c, out);
                }
                if let Some(Strategy::CircuitBreaker(b)) = self.strategies.get_mut(layer) {
                    // A cancelled call says nothing of the dependency: the permit goes
                    // back unrecorded (Resilience4j's `releasePermission`).
                    let _ = b.release(permit);
                }
            }
            Work::Bulkhead { holding, child } => {
                if let Some(c) = child {
                    self.cancel_subtree(now, c, out);
                }
                if let Some(Strategy::Bulkhead(b)) = self.strategies.get_mut(layer) {
                    if holding {
                        let events = b.release(now, id).unwrap_or_default();
                        self.waiters.extend(events.into_iter().map(|e| (layer, e)));
                    } else {
                        let _ = b.cancel(id);
                    }
                }
            }
            Work::Hedging {
                mut hedged,
                children,
            } => {
                for c in children.into_values() {
                    self.cancel_subtree(now, c, out);
                }
                if let Some(Strategy::Hedging(policy)) = self.strategies.get_mut(layer) {
                    // Closes the hedged call's books (its stats); the attempts are
                    // cancelled above.
                    let _ = hedged.cancel(policy);
                }
            }
            Work::Fallback { child, .. } => {
                if let Some((_, c)) = child {
                    self.cancel_subtree(now, c, out);
                }
            }
        }
    }

    /// Acts on the bulkheads' waiter events: a waiter admitted runs what it wraps, one
    /// whose wait ran out fails with `overloaded`.
    fn settle(&mut self, now: Time, rng: &mut SimRng, out: &mut Vec<PolicyAction>) {
        while !self.waiters.is_empty() {
            let events = std::mem::take(&mut self.waiters);
            for (layer, event) in events {
                match event {
                    WaiterEvent::Admitted { id, .. } => {
                        let Some(node) = self.nodes.get_mut(&id) else {
                            // Admitted after it was cancelled: give the slot back.
                            if let Some(Strategy::Bulkhead(b)) = self.strategies.get_mut(layer) {
                                let events = b.release(now, id).unwrap_or_default();
                                self.waiters.extend(events.into_iter().map(|e| (layer, e)));
                            }
                            continue;
                        };
                        let call = node.call;
                        if let Work::Bulkhead { holding, child } = &mut node.work {
                            *holding = true;
                            *child = Some(self.next_node);
                            self.spawn(now, rng, call, Some(id), layer + 1, out);
                        }
                    }
                    WaiterEvent::TimedOut { id } => {
                        let failure = Failure {
                            error: ErrorKind::Overloaded,
                            by: Some(layer as u32),
                        };
                        self.complete(now, rng, id, Err(failure), out);
                    }
                }
            }
        }
    }
}
