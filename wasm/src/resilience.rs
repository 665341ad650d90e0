//! Typed classes for the resilience primitives, for direct use in notebooks: times are
//! milliseconds (`nowMs`), durations in results are µs as everywhere in the package, and
//! every bad argument is a JS `Error` naming it.
//!
//! `CircuitBreaker`, `Retry` (a policy with its own seeded random stream and one call's
//! progress), `RetryBudget` (gRPC retry throttling), `Bulkhead`, `Deadline` and `Hedging`
//! (hedged calls to one dependency, numbered by the class), `Fallback` (calls down a
//! chain of levels, numbered by the class) and `HealthMonitor` (startup, liveness and
//! readiness checks aggregated to healthy / degraded / unhealthy) and `LoadShedder`
//! (an adaptive concurrency limit, AIMD or Gradient2, shedding low priorities first), and
//! `ResiliencePipeline` (those strategies composed in a chosen order, as Polly v8's).

use std::collections::BTreeMap;

use distlab_core::resilience::ErrorKind;
use distlab_core::resilience::bulkhead::{Bulkhead as CoreBulkhead, BulkheadConfig};
use distlab_core::resilience::circuit_breaker::{
    CircuitBreaker as CoreBreaker, CircuitBreakerConfig, Permit,
};
use distlab_core::resilience::fallback::{
    FallbackAction, FallbackCall, FallbackChain, FallbackConfig,
};
use distlab_core::resilience::health::{HealthConfig, HealthMonitor as CoreHealth};
use distlab_core::resilience::hedging::{HedgeAction, HedgedCall, HedgingConfig, HedgingPolicy};
use distlab_core::resilience::load_shedding::{LoadShedder as CoreShedder, LoadShedderConfig};
use distlab_core::resilience::policy::{Pipeline as CorePipeline, PolicyConfig};
use distlab_core::resilience::retry::{
    RetryBudget as CoreBudget, RetryBudgetConfig, RetryConfig, RetryPolicy, RetryState,
};
use distlab_core::resilience::timeout::Deadline as CoreDeadline;
use distlab_core::rng::SimRng;
use distlab_core::{Duration, Time};
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, to_json};
use crate::{core_error, js_error, typed_config, whole_number, whole_u32};

fn now(now_ms: f64) -> Result<Time, JsError> {
    Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)
}

fn millis(field: &str, ms: f64) -> Result<Duration, JsError> {
    Duration::try_from_millis_f64(field, ms)
        .and_then(|d| d.check(field))
        .map_err(core_error)
}

/// A JSON-shaped argument, naming `what` on error.
fn argument<T: DeserializeOwned + serde::Serialize>(what: &str, v: &JsValue) -> Result<T, JsError> {
    let json = to_json(what, v).map_err(js_error)?;
    distlab_core::lab::json::from_value(what, &json).map_err(core_error)
}

fn kind(v: &JsValue) -> Result<ErrorKind, JsError> {
    argument("kind", v)
}

/// A circuit breaker (Resilience4j's options and defaults):
/// `new CircuitBreaker({slidingWindowSize: 20, minimumNumberOfCalls: 10})`.
#[wasm_bindgen]
pub struct CircuitBreaker {
    inner: CoreBreaker,
}

#[wasm_bindgen]
impl CircuitBreaker {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "CircuitBreakerConfig | undefined")] config: JsValue,
    ) -> Result<CircuitBreaker, JsError> {
        let config: CircuitBreakerConfig = if config.is_undefined() || config.is_null() {
            CircuitBreakerConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CoreBreaker::new(config).map_err(core_error)?;
        Ok(CircuitBreaker { inner })
    }

    /// Asks to make a call at `nowMs`: `{type: "permitted", permit}` or `{type:
    /// "rejected", state, retryAfter}` (µs, `null` in half-open).
    #[wasm_bindgen(js_name = tryAcquire, unchecked_return_type = "Admission")]
    pub fn try_acquire(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let admission = self.inner.try_acquire(now(now_ms)?);
        to_js(&admission).map_err(js_error)
    }

    /// Reports that the call of `permit` succeeded at `nowMs`.
    #[wasm_bindgen(js_name = onSuccess)]
    pub fn on_success(
        &mut self,
        now_ms: f64,
        #[wasm_bindgen(unchecked_param_type = "Permit")] permit: JsValue,
    ) -> Result<(), JsError> {
        let permit: Permit = argument("permit", &permit)?;
        self.inner
            .on_success(now(now_ms)?, permit)
            .map_err(core_error)
    }

    /// Reports that the call of `permit` failed at `nowMs` with `kind` (`"unavailable"`,
    /// `"timeout"`...).
    #[wasm_bindgen(js_name = onError)]
    pub fn on_error(
        &mut self,
        now_ms: f64,
        #[wasm_bindgen(unchecked_param_type = "Permit")] permit: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind")] kind: JsValue,
    ) -> Result<(), JsError> {
        let permit: Permit = argument("permit", &permit)?;
        let kind = self::kind(&kind)?;
        self.inner
            .on_error(now(now_ms)?, permit, kind)
            .map_err(core_error)
    }

    /// Gives back a permit whose call was never made.
    pub fn release(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Permit")] permit: JsValue,
    ) -> Result<(), JsError> {
        let permit: Permit = argument("permit", &permit)?;
        self.inner.release(permit).map_err(core_error)
    }

    /// `"closed"`, `"open"` or `"halfOpen"`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state().name().to_string()
    }

    /// The counts the state is judged on: `{calls, failures, slow}`.
    #[wasm_bindgen(unchecked_return_type = "WindowCounts")]
    pub fn counts(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.counts()).map_err(js_error)
    }

    #[wasm_bindgen(unchecked_return_type = "BreakerStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.stats()).map_err(js_error)
    }

    /// The state transitions since the last call, oldest first.
    #[wasm_bindgen(js_name = takeEvents, unchecked_return_type = "BreakerEvent[]")]
    pub fn take_events(&mut self) -> Result<JsValue, JsError> {
        to_js(&self.inner.take_events()).map_err(js_error)
    }

    /// When a timer should call `handleTimeout` (ms), if ever.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.inner.poll_timeout().map(Time::as_millis_f64)
    }

    /// Applies the transitions due at `nowMs` on time alone.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.inner.handle_timeout(now(now_ms)?);
        Ok(())
    }
}

/// A retry policy for one call at a time, with its own random stream:
/// `new Retry({maxAttempts: 4, backoff: {initialBackoffMs: 100, jitter: "full"}}, seed)`.
#[wasm_bindgen]
pub struct Retry {
    policy: RetryPolicy,
    rng: SimRng,
    seed: u64,
    state: RetryState,
}

#[wasm_bindgen]
impl Retry {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "RetryConfig | undefined")] config: JsValue,
        seed: Option<f64>,
    ) -> Result<Retry, JsError> {
        let config: RetryConfig = if config.is_undefined() || config.is_null() {
            RetryConfig::default()
        } else {
            typed_config(&config)?
        };
        let policy = RetryPolicy::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        let seed = whole_number("seed", seed.unwrap_or(1.0))?;
        Ok(Retry {
            policy,
            rng: SimRng::new(seed),
            seed,
            state: RetryState::first_attempt(),
        })
    }

    /// A new call: its first attempt is about to go.
    pub fn start(&mut self) {
        self.state = RetryState::first_attempt();
    }

    /// Attempts made by the current call, the one in flight included.
    #[wasm_bindgen(getter)]
    pub fn attempts(&self) -> u32 {
        self.state.attempts
    }

    /// The attempt in flight failed at `nowMs` with `kind`: `{type: "retry", attempt,
    /// delay, at}` (µs) or `{type: "giveUp", reason}`.
    #[wasm_bindgen(js_name = onFailure, unchecked_return_type = "RetryDecision")]
    pub fn on_failure(
        &mut self,
        now_ms: f64,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind")] kind: JsValue,
    ) -> Result<JsValue, JsError> {
        let kind = self::kind(&kind)?;
        let d = self
            .policy
            .on_failure(&mut self.state, now(now_ms)?, kind, &mut self.rng, None);
        to_js(&d).map_err(js_error)
    }

    /// As `onFailure`, charging the failure to `budget`, which also decides whether a
    /// retry may go.
    #[wasm_bindgen(js_name = onFailureWithBudget, unchecked_return_type = "RetryDecision")]
    pub fn on_failure_with_budget(
        &mut self,
        now_ms: f64,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind")] kind: JsValue,
        budget: &mut RetryBudget,
    ) -> Result<JsValue, JsError> {
        let kind = self::kind(&kind)?;
        let d = self.policy.on_failure(
            &mut self.state,
            now(now_ms)?,
            kind,
            &mut self.rng,
            Some(&mut budget.inner),
        );
        to_js(&d).map_err(js_error)
    }

    /// The delays (ms) this policy's jitter gives retries 1 to `count` of one call,
    /// drawn from a fresh stream of the seed (the call in progress is not touched).
    pub fn delays(&self, count: f64) -> Result<Vec<f64>, JsError> {
        let count = whole_number("count", count)?;
        if count > 10_000 {
            return Err(js_error(format!(
                "invalid `count`: must be at most 10000, got {count}"
            )));
        }
        let mut rng = SimRng::new(self.seed);
        let mut previous = None;
        Ok((0..count as u32)
            .map(|n| {
                let d = self.policy.backoff().delay(n, previous, &mut rng);
                previous = Some(d);
                d.as_millis_f64()
            })
            .collect())
    }
}

fn prefix(parent: &str, e: distlab_core::DistlabError) -> distlab_core::DistlabError {
    match e {
        distlab_core::DistlabError::InvalidField { field, problem } => {
            distlab_core::DistlabError::field(format!("{parent}.{field}"), problem)
        }
        other => other,
    }
}

/// gRPC retry throttling, shared by the calls to one dependency:
/// `new RetryBudget({maxTokens: 10, tokenRatio: 0.1})`.
#[wasm_bindgen]
pub struct RetryBudget {
    inner: CoreBudget,
}

#[wasm_bindgen]
impl RetryBudget {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "RetryBudgetConfig | undefined")] config: JsValue,
    ) -> Result<RetryBudget, JsError> {
        let config: RetryBudgetConfig = if config.is_undefined() || config.is_null() {
            RetryBudgetConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CoreBudget::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        Ok(RetryBudget { inner })
    }

    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> f64 {
        self.inner.tokens()
    }

    #[wasm_bindgen(js_name = onSuccess)]
    pub fn on_success(&mut self) {
        self.inner.on_success();
    }

    #[wasm_bindgen(js_name = onFailure)]
    pub fn on_failure(&mut self) {
        self.inner.on_failure();
    }

    /// Whether a retry may go now (more than half the tokens left).
    #[wasm_bindgen(js_name = allowsRetry)]
    pub fn allows_retry(&mut self) -> bool {
        self.inner.allows_retry()
    }

    #[wasm_bindgen(unchecked_return_type = "BudgetStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.stats()).map_err(js_error)
    }
}

/// A bulkhead: `new Bulkhead({maxConcurrentCalls: 10, maxQueue: 20, maxWaitMs: 500})`.
/// Callers are named by whole-number ids of the caller's choosing.
#[wasm_bindgen]
pub struct Bulkhead {
    inner: CoreBulkhead,
}

#[wasm_bindgen]
impl Bulkhead {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "BulkheadConfig | undefined")] config: JsValue,
    ) -> Result<Bulkhead, JsError> {
        let config: BulkheadConfig = if config.is_undefined() || config.is_null() {
            BulkheadConfig::default()
        } else {
            typed_config(&config)?
        };
        Ok(Bulkhead {
            inner: CoreBulkhead::new(config),
        })
    }

    /// Caller `id` asks for a slot at `nowMs`: `{entry, events}`, `entry` being `{type:
    /// "admitted"}`, `{type: "queued", position, expiresAt}` or `{type: "rejected"}`, and
    /// `events` what happened to waiters meanwhile.
    #[wasm_bindgen(js_name = tryEnter)]
    pub fn try_enter(&mut self, now_ms: f64, id: f64) -> Result<JsValue, JsError> {
        let id = whole_number("id", id)?;
        let (entry, events) = self.inner.try_enter(now(now_ms)?, id).map_err(core_error)?;
        to_js(&serde_json::json!({"entry": entry, "events": events})).map_err(js_error)
    }

    /// Caller `id` is done at `nowMs`; returns what happened to waiters (`{type:
    /// "admitted", id, waited}` or `{type: "timedOut", id}`).
    #[wasm_bindgen(unchecked_return_type = "WaiterEvent[]")]
    pub fn release(&mut self, now_ms: f64, id: f64) -> Result<JsValue, JsError> {
        let id = whole_number("id", id)?;
        let events = self.inner.release(now(now_ms)?, id).map_err(core_error)?;
        to_js(&events).map_err(js_error)
    }

    /// Waiter `id` gives up.
    pub fn cancel(&mut self, id: f64) -> Result<(), JsError> {
        let id = whole_number("id", id)?;
        self.inner.cancel(id).map_err(core_error)
    }

    /// Removes the waiters whose wait ran out by `nowMs`.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "WaiterEvent[]")]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let events = self.inner.handle_timeout(now(now_ms)?);
        to_js(&events).map_err(js_error)
    }

    /// When the oldest waiter times out (ms), if anyone waits.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.inner.poll_timeout().map(Time::as_millis_f64)
    }

    #[wasm_bindgen(getter, js_name = inUse)]
    pub fn in_use(&self) -> u32 {
        self.inner.in_use()
    }

    #[wasm_bindgen(getter, js_name = queueLength)]
    pub fn queue_length(&self) -> u32 {
        self.inner.queue_len()
    }

    #[wasm_bindgen(unchecked_return_type = "BulkheadStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.stats()).map_err(js_error)
    }
}

/// A deadline: `new Deadline(nowMs, budgetMs)`; `forDownstream` gives the next hop the
/// remaining time less a margin, never more.
#[wasm_bindgen]
pub struct Deadline {
    inner: CoreDeadline,
}

#[wasm_bindgen]
impl Deadline {
    #[wasm_bindgen(constructor)]
    pub fn new(now_ms: f64, budget_ms: f64) -> Result<Deadline, JsError> {
        let inner = CoreDeadline::after(now(now_ms)?, millis("budgetMs", budget_ms)?);
        Ok(Deadline { inner })
    }

    /// The deadline, in ms.
    #[wasm_bindgen(getter, js_name = atMs)]
    pub fn at_ms(&self) -> f64 {
        self.inner.at().as_millis_f64()
    }

    /// Time left at `nowMs`, in ms (0 once passed): the `grpc-timeout` to send.
    #[wasm_bindgen(js_name = remainingMs)]
    pub fn remaining_ms(&self, now_ms: f64) -> Result<f64, JsError> {
        Ok(self.inner.remaining(now(now_ms)?).as_millis_f64())
    }

    #[wasm_bindgen(js_name = isExpired)]
    pub fn is_expired(&self, now_ms: f64) -> Result<bool, JsError> {
        Ok(self.inner.is_expired(now(now_ms)?))
    }

    /// The deadline of a call made at `nowMs` to the next hop: the remaining time less
    /// `marginMs`, cut to `capMs` if given; `undefined` when nothing would be left.
    #[wasm_bindgen(js_name = forDownstream)]
    pub fn for_downstream(
        &self,
        now_ms: f64,
        margin_ms: f64,
        cap_ms: Option<f64>,
    ) -> Result<Option<Deadline>, JsError> {
        let margin = millis("marginMs", margin_ms)?;
        let cap = cap_ms.map(|c| millis("capMs", c)).transpose()?;
        Ok(self
            .inner
            .for_downstream(now(now_ms)?, margin, cap)
            .map(|inner| Deadline { inner }))
    }
}

#[wasm_bindgen(typescript_custom_section)]
const HEDGING_TS: &str = r#"
/** What one hedged call must do: send or cancel attempts, or it is over. */
export interface CallActions { call: number; actions: HedgeAction[] }
"#;

/// Hedged calls to one dependency (gRPC's hedging policy), numbered by the class:
/// `new Hedging({maxAttempts: 3, delay: {type: "fixed", ms: 100}})`, optionally throttled
/// by a budget: `new Hedging(config, {maxTokens: 10, tokenRatio: 0.1})`. `start` opens a
/// call; send what each `{type: "send", attempt}` says, report answers with `onResult`,
/// and call `handleTimeout` at `pollTimeoutMs`.
#[wasm_bindgen]
pub struct Hedging {
    policy: HedgingPolicy,
    budget: Option<CoreBudget>,
    calls: BTreeMap<u32, HedgedCall>,
    next_call: u32,
}

impl Hedging {
    fn call_actions(&mut self, call: u32, actions: Vec<HedgeAction>) -> Result<JsValue, JsError> {
        if self.calls.get(&call).is_some_and(HedgedCall::is_done) {
            self.calls.remove(&call);
        }
        to_js(&serde_json::json!({"call": call, "actions": actions})).map_err(js_error)
    }
}

#[wasm_bindgen]
impl Hedging {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "HedgingConfig | undefined")] config: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RetryBudgetConfig | undefined")] budget: JsValue,
    ) -> Result<Hedging, JsError> {
        let config: HedgingConfig = if config.is_undefined() || config.is_null() {
            HedgingConfig::default()
        } else {
            typed_config(&config)?
        };
        let policy = HedgingPolicy::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        let budget = if budget.is_undefined() || budget.is_null() {
            None
        } else {
            let c: RetryBudgetConfig = argument("budget", &budget)?;
            Some(CoreBudget::new(&c).map_err(|e| core_error(prefix("budget", e)))?)
        };
        Ok(Hedging {
            policy,
            budget,
            calls: BTreeMap::new(),
            next_call: 0,
        })
    }

    /// Opens a call at `nowMs`: `{call, actions}` — its number and the attempts to send.
    #[wasm_bindgen(unchecked_return_type = "CallActions")]
    pub fn start(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let call = self.next_call;
        self.next_call = self.next_call.checked_add(1).ok_or_else(|| {
            js_error("invalid `start`: every call number up to 4294967295 was used")
        })?;
        let (c, actions) = self.policy.start(now, self.budget.as_mut());
        self.calls.insert(call, c);
        self.call_actions(call, actions)
    }

    /// Attempt `attempt` of call `call` answered at `nowMs`, failing with `error` (an
    /// `ErrorKind`) or succeeding (`null` / absent): `{call, actions}`. An answer for an
    /// attempt not in flight, or for a call that is over, returns no actions.
    #[wasm_bindgen(js_name = onResult, unchecked_return_type = "CallActions")]
    pub fn on_result(
        &mut self,
        now_ms: f64,
        call: f64,
        attempt: f64,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind | null | undefined")] error: JsValue,
    ) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let call = whole_u32("call", call)?;
        let attempt = whole_u32("attempt", attempt)?;
        let error = if error.is_undefined() || error.is_null() {
            None
        } else {
            Some(argument::<ErrorKind>("error", &error)?)
        };
        if call >= self.next_call {
            return Err(js_error(format!(
                "invalid `call`: no call {call} was started"
            )));
        }
        let actions = match self.calls.get_mut(&call) {
            Some(c) => c.on_result(now, attempt, error, &mut self.policy, self.budget.as_mut()),
            None => Vec::new(),
        };
        self.call_actions(call, actions)
    }

    /// Sends the hedges due by `nowMs`, for every call: `{call, actions}[]`.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "CallActions[]")]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let mut out = Vec::new();
        for (call, c) in &mut self.calls {
            let actions = c.handle_timeout(now, &mut self.policy, self.budget.as_mut());
            if !actions.is_empty() {
                out.push(serde_json::json!({"call": call, "actions": actions}));
            }
        }
        to_js(&out).map_err(js_error)
    }

    /// The caller gives up on call `call` (its own deadline): `{call, actions}` cancelling
    /// what is in flight and ending it with `timeout`.
    #[wasm_bindgen(unchecked_return_type = "CallActions")]
    pub fn cancel(&mut self, call: f64) -> Result<JsValue, JsError> {
        let call = whole_u32("call", call)?;
        let actions = match self.calls.get_mut(&call) {
            Some(c) => c.cancel(&mut self.policy),
            None => Vec::new(),
        };
        self.call_actions(call, actions)
    }

    /// When the next hedge of any call goes (ms), if one is due.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.calls
            .values()
            .filter_map(HedgedCall::poll_timeout)
            .min()
            .map(Time::as_millis_f64)
    }

    /// The delay the next hedge waits now (ms): fixed, or the percentile observed.
    #[wasm_bindgen(getter, js_name = delayMs)]
    pub fn delay_ms(&self) -> f64 {
        self.policy.delay().as_millis_f64()
    }

    /// Calls still open.
    #[wasm_bindgen(getter, js_name = openCalls)]
    pub fn open_calls(&self) -> u32 {
        self.calls.len() as u32
    }

    /// The budget's tokens, if it has one.
    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> Option<f64> {
        self.budget.as_ref().map(CoreBudget::tokens)
    }

    #[wasm_bindgen(unchecked_return_type = "HedgingStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.policy.stats()).map_err(js_error)
    }
}

#[wasm_bindgen(typescript_custom_section)]
const FALLBACK_TS: &str = r#"
/** What one call down a fallback chain must do: ask or cancel a level, or it is over. */
export interface FallbackCallActions { call: number; actions: FallbackAction[] }
"#;

/// Calls down a fallback chain (Polly's fallback, one level after another), numbered by
/// the class: `new Fallback({levels: [{name: "personalised", timeoutMs: 200}, {name:
/// "popular", timeoutMs: 50}], staticDefault: true})`. `start` opens a call and says
/// which level to ask; report its answer with `onResult`, and call `handleTimeout` at
/// `pollTimeoutMs`. The `done` action says who served the call.
#[wasm_bindgen]
pub struct Fallback {
    chain: FallbackChain,
    calls: BTreeMap<u32, FallbackCall>,
    next_call: u32,
}

impl Fallback {
    fn call_actions(
        &mut self,
        call: u32,
        actions: Vec<FallbackAction>,
    ) -> Result<JsValue, JsError> {
        if self.calls.get(&call).is_some_and(FallbackCall::is_done) {
            self.calls.remove(&call);
        }
        to_js(&serde_json::json!({"call": call, "actions": actions})).map_err(js_error)
    }
}

#[wasm_bindgen]
impl Fallback {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "FallbackConfig | undefined")] config: JsValue,
    ) -> Result<Fallback, JsError> {
        let config: FallbackConfig = if config.is_undefined() || config.is_null() {
            FallbackConfig::default()
        } else {
            typed_config(&config)?
        };
        let chain = FallbackChain::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        Ok(Fallback {
            chain,
            calls: BTreeMap::new(),
            next_call: 0,
        })
    }

    /// Opens a call at `nowMs`: `{call, actions}` — its number and `{type: "ask", level:
    /// 0, deadline}`.
    #[wasm_bindgen(unchecked_return_type = "FallbackCallActions")]
    pub fn start(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let call = self.next_call;
        self.next_call = self.next_call.checked_add(1).ok_or_else(|| {
            js_error("invalid `start`: every call number up to 4294967295 was used")
        })?;
        let (c, ask) = self.chain.start(now);
        self.calls.insert(call, c);
        self.call_actions(call, vec![ask])
    }

    /// Level `level` of call `call` answered at `nowMs`, failing with `error` (an
    /// `ErrorKind`) or not (`null` / absent): `{call, actions}` — ask the next level, or
    /// `{type: "done", served, latency}`. An answer from a level not being asked, or for
    /// a call that is over, returns no actions.
    #[wasm_bindgen(js_name = onResult, unchecked_return_type = "FallbackCallActions")]
    pub fn on_result(
        &mut self,
        now_ms: f64,
        call: f64,
        level: f64,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind | null | undefined")] error: JsValue,
    ) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let call = whole_u32("call", call)?;
        let level = whole_u32("level", level)?;
        let error = if error.is_undefined() || error.is_null() {
            None
        } else {
            Some(argument::<ErrorKind>("error", &error)?)
        };
        if call >= self.next_call {
            return Err(js_error(format!(
                "invalid `call`: no call {call} was started"
            )));
        }
        let actions = match self.calls.get_mut(&call) {
            Some(c) => c.on_result(now, level, error, &mut self.chain),
            None => Vec::new(),
        };
        self.call_actions(call, actions)
    }

    /// Cancels the levels that ran out of time by `nowMs` and asks the next, for every
    /// call: `{call, actions}[]`.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "FallbackCallActions[]")]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let mut out = Vec::new();
        let mut finished = Vec::new();
        for (call, c) in &mut self.calls {
            let actions = c.handle_timeout(now, &mut self.chain);
            if !actions.is_empty() {
                out.push(serde_json::json!({"call": call, "actions": actions}));
            }
            if c.is_done() {
                finished.push(*call);
            }
        }
        for call in finished {
            self.calls.remove(&call);
        }
        to_js(&out).map_err(js_error)
    }

    /// When the next level of any call runs out of time (ms), if one has a timeout.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.calls
            .values()
            .filter_map(FallbackCall::poll_timeout)
            .min()
            .map(Time::as_millis_f64)
    }

    /// Calls still open.
    #[wasm_bindgen(getter, js_name = openCalls)]
    pub fn open_calls(&self) -> u32 {
        self.calls.len() as u32
    }

    /// Counters: calls, per level `{asked, served, failed, timedOut}`, `staticDefault`,
    /// `failed`.
    #[wasm_bindgen(unchecked_return_type = "FallbackStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(self.chain.stats()).map_err(js_error)
    }
}

/// A service's health checks (Kubernetes' probes, ASP.NET Core's aggregation):
/// `new HealthMonitor({checks: [{name: "warm-up", kind: "startup"}, {name: "db", kind:
/// "readiness", critical: true, periodMs: 1000, timeoutMs: 200, failureThreshold: 3}]},
/// nowMs)`. `handleTimeout(nowMs)` says which checks to run (`{type: "run", check,
/// deadline}`) or which ran out of time (`{type: "cancel", check}`); report each run
/// with `onResult`; `report()` gives the aggregate and every check's detail.
#[wasm_bindgen]
pub struct HealthMonitor {
    inner: CoreHealth,
}

#[wasm_bindgen]
impl HealthMonitor {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "HealthConfig | undefined")] config: JsValue,
        now_ms: f64,
    ) -> Result<HealthMonitor, JsError> {
        let config: HealthConfig = if config.is_undefined() || config.is_null() {
            HealthConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner =
            CoreHealth::new(&config, now(now_ms)?).map_err(|e| core_error(prefix("config", e)))?;
        Ok(HealthMonitor { inner })
    }

    /// The runs to start and those that ran out of time, at `nowMs`.
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "HealthAction[]")]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let actions = self.inner.handle_timeout(now(now_ms)?);
        to_js(&actions).map_err(js_error)
    }

    /// Check `check`'s run answered at `nowMs`: passed (`error` `null` / absent) or
    /// failed with `error`, a short description. A run that took its whole timeout fails.
    #[wasm_bindgen(js_name = onResult)]
    pub fn on_result(
        &mut self,
        now_ms: f64,
        check: f64,
        error: Option<String>,
    ) -> Result<(), JsError> {
        let check = whole_u32("check", check)?;
        self.inner
            .on_result(now(now_ms)?, check, error.as_deref())
            .map_err(core_error)
    }

    /// When to call `handleTimeout` next (ms).
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.inner.poll_timeout().map(Time::as_millis_f64)
    }

    /// The service restarted at `nowMs`: every check starts over, startup first.
    pub fn restart(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.inner.restart(now(now_ms)?);
        Ok(())
    }

    /// Whether every startup check has passed.
    #[wasm_bindgen(getter)]
    pub fn started(&self) -> bool {
        self.inner.started()
    }

    /// `{status, liveness, readiness, started, checks: [{name, kind, critical, state,
    /// gated, running, lastDuration, consecutiveFailures, lastError, ...}]}`.
    #[wasm_bindgen(unchecked_return_type = "HealthReport")]
    pub fn report(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.report()).map_err(js_error)
    }
}

/// Load shedding with an adaptive concurrency limit (Netflix's concurrency-limits):
/// `new LoadShedder({limit: {type: "aimd", initialLimit: 20, minLimit: 20, maxLimit: 200,
/// backoffRatio: 0.9, timeoutMs: 5000}, priorities: 3, headroomPerPriority: 0.1})`, or
/// `{type: "gradient2", ..., windowMs: 1000, windowSize: 10}` (Gradient2 updates once per
/// sample window). Priority 0 is the most important and is shed last.
#[wasm_bindgen]
pub struct LoadShedder {
    inner: CoreShedder,
}

#[wasm_bindgen]
impl LoadShedder {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "LoadShedderConfig | undefined")] config: JsValue,
    ) -> Result<LoadShedder, JsError> {
        let config: LoadShedderConfig = if config.is_undefined() || config.is_null() {
            LoadShedderConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CoreShedder::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        Ok(LoadShedder { inner })
    }

    /// A request of `priority` at `nowMs`: `{type: "admitted", id}` or `{type: "shed",
    /// inflight, allowed}`.
    #[wasm_bindgen(js_name = tryAcquire, unchecked_return_type = "ShedAdmission")]
    pub fn try_acquire(&mut self, now_ms: f64, priority: f64) -> Result<JsValue, JsError> {
        let priority = whole_u32("priority", priority)?;
        let a = self
            .inner
            .try_acquire(now(now_ms)?, priority)
            .map_err(core_error)?;
        to_js(&a).map_err(js_error)
    }

    /// Request `id` succeeded at `nowMs` (a sample for the limit).
    #[wasm_bindgen(js_name = onSuccess)]
    pub fn on_success(&mut self, now_ms: f64, id: f64) -> Result<(), JsError> {
        let id = whole_number("id", id)?;
        self.inner.on_success(now(now_ms)?, id).map_err(core_error)
    }

    /// Request `id` was dropped by the service at `nowMs` (the limit backs off).
    #[wasm_bindgen(js_name = onDropped)]
    pub fn on_dropped(&mut self, now_ms: f64, id: f64) -> Result<(), JsError> {
        let id = whole_number("id", id)?;
        self.inner.on_dropped(now(now_ms)?, id).map_err(core_error)
    }

    /// Request `id` ended telling nothing about the service: no sample.
    pub fn release(&mut self, id: f64) -> Result<(), JsError> {
        let id = whole_number("id", id)?;
        self.inner.release(id).map_err(core_error)
    }

    #[wasm_bindgen(getter)]
    pub fn limit(&self) -> u32 {
        self.inner.limit()
    }

    #[wasm_bindgen(getter)]
    pub fn inflight(&self) -> u32 {
        self.inner.inflight()
    }

    /// The requests in flight priority `priority` may find and still be admitted.
    pub fn allowed(&self, priority: f64) -> Result<u32, JsError> {
        let priority = whole_u32("priority", priority)?;
        if priority >= self.inner.priorities() {
            return Err(js_error(format!(
                "invalid `priority`: must be below {}, got {priority}",
                self.inner.priorities()
            )));
        }
        Ok(self.inner.allowed(priority))
    }

    /// Per priority: `{admitted, shed, succeeded, dropped}`.
    #[wasm_bindgen(unchecked_return_type = "PriorityStats[]")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(self.inner.stats()).map_err(js_error)
    }
}

/// A resilience pipeline (Polly v8's `ResiliencePipeline`): strategies outermost first,
/// each the primitive above with its own config:
/// `new ResiliencePipeline({strategies: [{type: "retry", policy: {maxAttempts: 3}},
/// {type: "circuitBreaker", config: {slidingWindowSize: 20}}, {type: "timeout",
/// timeoutMs: 500}]}, seed)`. The pipeline says what to do: `{type: "send", attempt,
/// call, target}`, `{type: "cancel", attempt}`, `{type: "done", call, outcome,
/// attempts, latency}`.
#[wasm_bindgen]
pub struct ResiliencePipeline {
    inner: CorePipeline,
    rng: SimRng,
}

#[wasm_bindgen]
impl ResiliencePipeline {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "PolicyConfig | undefined")] config: JsValue,
        seed: Option<f64>,
    ) -> Result<ResiliencePipeline, JsError> {
        let config: PolicyConfig = if config.is_undefined() || config.is_null() {
            PolicyConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CorePipeline::new(&config).map_err(|e| core_error(prefix("config", e)))?;
        let seed = whole_number("seed", seed.unwrap_or(1.0))?;
        Ok(ResiliencePipeline {
            inner,
            rng: SimRng::new(seed),
        })
    }

    /// Opens a call at `nowMs`: `{call, actions}`.
    #[wasm_bindgen(unchecked_return_type = "{ call: number; actions: PolicyAction[] }")]
    pub fn start(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let (call, actions) = self.inner.start(now(now_ms)?, &mut self.rng);
        to_js(&serde_json::json!({"call": call, "actions": actions})).map_err(js_error)
    }

    /// Attempt `attempt` answered at `nowMs`, failing with `error` (an `ErrorKind`) or
    /// succeeding (`null` / absent). The answer to a cancelled attempt returns nothing.
    #[wasm_bindgen(js_name = onResult, unchecked_return_type = "PolicyAction[]")]
    pub fn on_result(
        &mut self,
        now_ms: f64,
        attempt: f64,
        #[wasm_bindgen(unchecked_param_type = "ErrorKind | null | undefined")] error: JsValue,
    ) -> Result<JsValue, JsError> {
        let now = now(now_ms)?;
        let attempt = whole_number("attempt", attempt)?;
        let error = if error.is_undefined() || error.is_null() {
            None
        } else {
            Some(argument::<ErrorKind>("error", &error)?)
        };
        let actions = self
            .inner
            .on_result(now, attempt, error, &mut self.rng)
            .map_err(core_error)?;
        to_js(&actions).map_err(js_error)
    }

    /// Runs the timers due by `nowMs` (timeouts, backoffs, hedges, waits).
    #[wasm_bindgen(js_name = handleTimeout, unchecked_return_type = "PolicyAction[]")]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        let actions = self.inner.handle_timeout(now(now_ms)?, &mut self.rng);
        to_js(&actions).map_err(js_error)
    }

    /// When the next timer is due (ms), if any.
    #[wasm_bindgen(js_name = pollTimeoutMs)]
    pub fn poll_timeout_ms(&self) -> Option<f64> {
        self.inner.poll_timeout().map(Time::as_millis_f64)
    }

    /// Calls still open.
    #[wasm_bindgen(getter, js_name = openCalls)]
    pub fn open_calls(&self) -> u32 {
        self.inner.open_calls() as u32
    }

    /// The most attempts one call can make on the dependency.
    #[wasm_bindgen(getter, js_name = maxAttemptsPerCall)]
    pub fn max_attempts_per_call(&self) -> f64 {
        self.inner.max_attempts_per_call() as f64
    }

    #[wasm_bindgen(unchecked_return_type = "PolicyStats")]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.stats()).map_err(js_error)
    }
}
