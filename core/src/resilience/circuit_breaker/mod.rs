//! A circuit breaker: stop calling a dependency whose recent calls mostly fail or are slow,
//! and after a wait let a few trial calls through to see whether it has recovered.
//!
//! Reference: Resilience4j's `CircuitBreaker` (`CircuitBreakerStateMachine` and
//! `CircuitBreakerMetrics`), the pattern as Nygard names it in *Release It!* (2007). The
//! options, their names and their defaults are Resilience4j's: failure-rate threshold
//! 50 %, slow-call-rate threshold 100 % with a slow-call duration of 60 s, a count-based
//! sliding window of 100 calls, a minimum of 100 calls before a rate is judged, 10
//! permitted calls in half-open, 60 s in open, no automatic open → half-open transition,
//! no limit on the time spent in half-open.
//!
//! - **Closed**: every call is permitted and its outcome recorded in the sliding window
//!   (the last `slidingWindowSize` calls, or the calls of the last `slidingWindowSize`
//!   seconds in one-second buckets). Once the window holds at least
//!   `minimumNumberOfCalls` (for a count window, at most its size), the breaker opens when
//!   the failure rate or the slow-call rate reaches its threshold (`≥`). A call is slow
//!   when it took longer (`>`) than `slowCallDurationThresholdMs`.
//! - **Open**: every call is refused, with how long until the breaker will probe. The
//!   first call strictly after `waitDurationInOpenStateMs` moves it to half-open (or the
//!   timer does, with `automaticTransitionFromOpenToHalfOpenEnabled`).
//! - **Half-open**: `permittedNumberOfCallsInHalfOpenState` calls are permitted, no more,
//!   until they have all reported; then the same thresholds over those calls close or
//!   reopen it. With `maxWaitDurationInHalfOpenStateMs` > 0 it reopens if they take
//!   longer than that.
//!
//! Where this differs from Resilience4j, and why:
//! - **A result counts only in the state it was permitted in.** Each [`Permit`] carries
//!   the breaker's epoch (bumped on every transition). Resilience4j records a late result
//!   in whatever state the breaker is in when it arrives, so a slow call permitted while
//!   closed can finish during half-open and be counted as one of the trial calls, deciding
//!   the probe with a call that never probed. Here a stale result is counted
//!   ([`BreakerStats::stale_results`]) and otherwise ignored.
//! - Half-open permits are tracked by id, so a result reported twice, or for a permit this
//!   breaker never issued, is an error instead of a second count.
//! - Thresholds are percentages as in Resilience4j (`50.0`), but checked when the breaker
//!   is built; times are milliseconds and the clock is the caller's `now` in µs. A clock
//!   that goes backwards is taken as standing still.
//! - No forced-open, disabled or metrics-only states, and exceptions are classified by
//!   the caller as an [`ErrorKind`]: `ignoredErrors` plays `ignoreExceptions`.
//!
//! Cost: every decision and every result is O(1) (a time-based window may clear up to
//! `slidingWindowSize` buckets after a long quiet spell); memory is O(window size).

use std::collections::{BTreeSet, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis};
use crate::error::{DistlabError, Result};
use crate::resilience::{ErrorKind, ErrorKinds};
use crate::time::{Duration, Time};

pub mod lab;

/// The largest sliding window, in calls or seconds.
pub const MAX_SLIDING_WINDOW: u32 = 10_000;
/// The most calls half-open may permit.
pub const MAX_HALF_OPEN_CALLS: u32 = 10_000;
/// The longest duration option: a day, in ms.
pub const MAX_BREAKER_MS: u32 = 86_400_000;
/// Transition events kept until taken; older ones are dropped (and counted).
pub const MAX_PENDING_EVENTS: usize = 256;

/// How the sliding window is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum SlidingWindowType {
    /// The last `slidingWindowSize` calls.
    CountBased,
    /// The calls of the last `slidingWindowSize` seconds, in one-second buckets.
    TimeBased,
}

/// Configuration of a [`CircuitBreaker`], with Resilience4j's names and defaults. JSON:
/// `{"failureRateThreshold": 50, "slidingWindowSize": 20, "minimumNumberOfCalls": 10,
/// "waitDurationInOpenStateMs": 5000}` (every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct CircuitBreakerConfig {
    /// Percent of failed calls (over 0, at most 100) at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Percent of slow calls (over 0, at most 100) at or above which the breaker opens.
    pub slow_call_rate_threshold: f64,
    /// A call that takes longer than this is slow.
    pub slow_call_duration_threshold_ms: Millis<1, { MAX_BREAKER_MS }>,
    pub sliding_window_type: SlidingWindowType,
    /// Calls (count-based) or seconds (time-based) the window covers.
    pub sliding_window_size: Count<1, { MAX_SLIDING_WINDOW }>,
    /// Calls the window must hold before a rate is judged (count-based: at most the
    /// window size is required).
    pub minimum_number_of_calls: Count<1, { MAX_SLIDING_WINDOW }>,
    /// Trial calls permitted in half-open.
    pub permitted_number_of_calls_in_half_open_state: Count<1, { MAX_HALF_OPEN_CALLS }>,
    /// How long the breaker stays open before it may probe.
    pub wait_duration_in_open_state_ms: Millis<1, { MAX_BREAKER_MS }>,
    /// Longest time in half-open before reopening; 0 waits for the trial calls forever.
    pub max_wait_duration_in_half_open_state_ms: Millis<0, { MAX_BREAKER_MS }>,
    /// Whether the wait's end alone (a timer: [`CircuitBreaker::handle_timeout`]) moves
    /// open to half-open, rather than the next call.
    pub automatic_transition_from_open_to_half_open_enabled: bool,
    /// Error kinds recorded as neither success nor failure.
    pub ignored_errors: Vec<ErrorKind>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration_threshold_ms: Millis::of(60_000),
            sliding_window_type: SlidingWindowType::CountBased,
            sliding_window_size: Count::of(100),
            minimum_number_of_calls: Count::of(100),
            permitted_number_of_calls_in_half_open_state: Count::of(10),
            wait_duration_in_open_state_ms: Millis::of(60_000),
            max_wait_duration_in_half_open_state_ms: Millis::of(0),
            automatic_transition_from_open_to_half_open_enabled: false,
            ignored_errors: Vec::new(),
        }
    }
}

fn check_percent(field: &str, value: f64) -> Result<f64> {
    if !value.is_finite() || value <= 0.0 || value > 100.0 {
        return Err(DistlabError::field(
            field,
            format!("must be a percentage over 0 and at most 100, got {value}"),
        ));
    }
    Ok(value)
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "halfOpen",
        }
    }
}

/// Leave to make one call, to be handed back with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Permit {
    /// Unique per breaker, increasing.
    pub id: u64,
    /// The breaker's epoch when it was issued: results of older epochs are stale.
    pub epoch: u64,
    /// When the call was permitted, µs: its duration is measured from here.
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub acquired_at: Time,
}

/// What the breaker said to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Admission {
    /// Go ahead; report the result with this permit.
    Permitted { permit: Permit },
    /// Not now. `retryAfter` (µs) is when an open breaker will probe; absent in
    /// half-open, where it depends on the trial calls.
    Rejected {
        state: BreakerState,
        #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
        retry_after: Option<Duration>,
    },
}

impl Admission {
    /// The permit, if permitted.
    pub fn permit(self) -> Option<Permit> {
        match self {
            Admission::Permitted { permit } => Some(permit),
            Admission::Rejected { .. } => None,
        }
    }
}

/// How a permitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CallResult {
    Success,
    Failure { kind: ErrorKind },
}

/// Why the breaker moved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TransitionReason {
    /// The window's rates (percent) reached a threshold.
    ThresholdsExceeded {
        failure_rate: f64,
        slow_call_rate: f64,
    },
    /// The trial calls' rates stayed below both thresholds.
    TrialsPassed {
        failure_rate: f64,
        slow_call_rate: f64,
    },
    /// The wait in open ended.
    WaitElapsed,
    /// Half-open lasted its maximum.
    HalfOpenTimedOut,
}

/// A state transition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BreakerEvent {
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub at: Time,
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: TransitionReason,
}

/// Counters since the breaker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BreakerStats {
    pub permitted: u64,
    pub not_permitted: u64,
    pub successes: u64,
    pub failures: u64,
    pub slow_calls: u64,
    pub ignored: u64,
    /// Calls given back unused ([`CircuitBreaker::release`]).
    pub released: u64,
    /// Results that arrived after the state they were permitted in had ended.
    pub stale_results: u64,
    pub transitions: u64,
    /// Transition events dropped because nobody took them.
    pub dropped_events: u64,
}

/// One recorded outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RecordedOutcome {
    pub failure: bool,
    pub slow: bool,
}

/// Calls, failures and slow calls in some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct WindowCounts {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl WindowCounts {
    fn add(&mut self, o: RecordedOutcome) {
        self.calls += 1;
        self.failures += u32::from(o.failure);
        self.slow += u32::from(o.slow);
    }

    fn remove(&mut self, o: RecordedOutcome) {
        self.calls = self.calls.saturating_sub(1);
        self.failures = self.failures.saturating_sub(u32::from(o.failure));
        self.slow = self.slow.saturating_sub(u32::from(o.slow));
    }

    fn remove_all(&mut self, other: WindowCounts) {
        self.calls = self.calls.saturating_sub(other.calls);
        self.failures = self.failures.saturating_sub(other.failures);
        self.slow = self.slow.saturating_sub(other.slow);
    }

    /// Failure rate in percent (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        percent(self.failures, self.calls)
    }

    /// Slow-call rate in percent (0 when empty).
    pub fn slow_call_rate(&self) -> f64 {
        percent(self.slow, self.calls)
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

/// The closed state's window.
#[derive(Debug, Clone)]
pub enum SlidingWindow {
    /// The last `size` outcomes, oldest first.
    Count {
        size: usize,
        outcomes: VecDeque<RecordedOutcome>,
        totals: WindowCounts,
    },
    /// One bucket per second for the last `buckets.len()` seconds; `newest` is the epoch
    /// second of the newest bucket, which sits at `newest % len`.
    Time {
        buckets: Vec<WindowCounts>,
        newest: u64,
        totals: WindowCounts,
    },
}

impl SlidingWindow {
    fn new(kind: SlidingWindowType, size: u32) -> Self {
        match kind {
            SlidingWindowType::CountBased => SlidingWindow::Count {
                size: size as usize,
                outcomes: VecDeque::with_capacity(size as usize),
                totals: WindowCounts::default(),
            },
            SlidingWindowType::TimeBased => SlidingWindow::Time {
                buckets: vec![WindowCounts::default(); size as usize],
                newest: 0,
                totals: WindowCounts::default(),
            },
        }
    }

    /// Drops what has aged out by `now` (time-based only).
    fn advance(&mut self, now: Time) {
        if let SlidingWindow::Time {
            buckets,
            newest,
            totals,
        } = self
        {
            let second = now.0 / 1_000_000;
            if second <= *newest {
                return;
            }
            let len = buckets.len() as u64;
            // Clearing more than a full turn would clear buckets twice.
            let steps = (second - *newest).min(len);
            for s in 1..=steps {
                let slot = ((second - steps + s) % len) as usize;
                if let Some(b) = buckets.get_mut(slot) {
                    totals.remove_all(*b);
                    *b = WindowCounts::default();
                }
            }
            *newest = second;
        }
    }

    fn record(&mut self, now: Time, o: RecordedOutcome) {
        self.advance(now);
        match self {
            SlidingWindow::Count {
                size,
                outcomes,
                totals,
            } => {
                if outcomes.len() >= *size
                    && let Some(old) = outcomes.pop_front()
                {
                    totals.remove(old);
                }
                outcomes.push_back(o);
                totals.add(o);
            }
            SlidingWindow::Time {
                buckets,
                newest,
                totals,
            } => {
                let len = buckets.len() as u64;
                if let Some(b) = buckets.get_mut((*newest % len) as usize) {
                    b.add(o);
                }
                totals.add(o);
            }
        }
    }

    /// The counts over the whole window.
    pub fn totals(&self) -> WindowCounts {
        match self {
            SlidingWindow::Count { totals, .. } | SlidingWindow::Time { totals, .. } => *totals,
        }
    }
}

/// What each state holds.
#[derive(Debug, Clone)]
enum Phase {
    Closed {
        window: SlidingWindow,
    },
    Open {
        /// The breaker may probe strictly after this.
        wait_until: Time,
        /// The counts it opened on, for the view.
        opened_on: WindowCounts,
    },
    HalfOpen {
        since: Time,
        permits_left: u32,
        outstanding: BTreeSet<u64>,
        counts: WindowCounts,
    },
}

/// The circuit breaker. See the module documentation.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    ignored: ErrorKinds,
    minimum_calls: u32,
    phase: Phase,
    epoch: u64,
    next_permit: u64,
    last_now: Time,
    state_since: Time,
    events: VecDeque<BreakerEvent>,
    stats: BreakerStats,
}

impl CircuitBreaker {
    /// A closed breaker; errors name the bad field.
    pub fn new(config: CircuitBreakerConfig) -> Result<Self> {
        check_percent("failureRateThreshold", config.failure_rate_threshold)?;
        check_percent("slowCallRateThreshold", config.slow_call_rate_threshold)?;
        let size = config.sliding_window_size.get();
        let minimum_calls = match config.sliding_window_type {
            SlidingWindowType::CountBased => config.minimum_number_of_calls.get().min(size),
            SlidingWindowType::TimeBased => config.minimum_number_of_calls.get(),
        };
        Ok(CircuitBreaker {
            ignored: ErrorKinds::of(&config.ignored_errors),
            minimum_calls,
            phase: Phase::Closed {
                window: SlidingWindow::new(config.sliding_window_type, size),
            },
            config,
            epoch: 0,
            next_permit: 0,
            last_now: Time::ZERO,
            state_since: Time::ZERO,
            events: VecDeque::new(),
            stats: BreakerStats::default(),
        })
    }

    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Bumped on every transition.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the current state began.
    pub fn state_since(&self) -> Time {
        self.state_since
    }

    pub fn stats(&self) -> BreakerStats {
        self.stats
    }

    /// The closed state's window, if closed.
    pub fn window(&self) -> Option<&SlidingWindow> {
        match &self.phase {
            Phase::Closed { window } => Some(window),
            _ => None,
        }
    }

    /// The counts the state is judged on: the closed window, the trial calls in
    /// half-open, the counts the breaker opened on while open.
    pub fn counts(&self) -> WindowCounts {
        match &self.phase {
            Phase::Closed { window } => window.totals(),
            Phase::Open { opened_on, .. } => *opened_on,
            Phase::HalfOpen { counts, .. } => *counts,
        }
    }

    /// In half-open: trial calls still to permit, and those permitted but not reported.
    pub fn half_open_calls(&self) -> Option<(u32, usize)> {
        match &self.phase {
            Phase::HalfOpen {
                permits_left,
                outstanding,
                ..
            } => Some((*permits_left, outstanding.len())),
            _ => None,
        }
    }

    /// When an open breaker may probe (strictly after this).
    pub fn open_until(&self) -> Option<Time> {
        match self.phase {
            Phase::Open { wait_until, .. } => Some(wait_until),
            _ => None,
        }
    }

    /// The minimum number of calls actually required (capped by a count window's size).
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// Takes the transition events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<BreakerEvent> {
        self.events.drain(..).collect()
    }

    fn observe(&mut self, now: Time) -> Time {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// Asks to make a call at `now`.
    pub fn try_acquire(&mut self, now: Time) -> Admission {
        let now = self.observe(now);
        self.apply_timers(now, true);
        let permit = Permit {
            id: self.next_permit,
            epoch: self.epoch,
            acquired_at: now,
        };
        let admitted = match &mut self.phase {
            Phase::Closed { .. } => true,
            Phase::HalfOpen {
                permits_left,
                outstanding,
                ..
            } => {
                if *permits_left > 0 {
                    *permits_left -= 1;
                    outstanding.insert(permit.id);
                    true
                } else {
                    false
                }
            }
            Phase::Open { .. } => false,
        };
        if admitted {
            self.next_permit += 1;
            self.stats.permitted += 1;
            Admission::Permitted { permit }
        } else {
            self.stats.not_permitted += 1;
            Admission::Rejected {
                state: self.state(),
                retry_after: self
                    .open_until()
                    .map(|until| Duration(until.0.saturating_add(1).saturating_sub(now.0))),
            }
        }
    }

    /// The earliest time a timer should call [`Self::handle_timeout`]: the end of the open
    /// wait (with automatic transition) or of half-open's maximum.
    pub fn poll_timeout(&self) -> Option<Time> {
        match &self.phase {
            Phase::Open { wait_until, .. }
                if self
                    .config
                    .automatic_transition_from_open_to_half_open_enabled =>
            {
                Some(Time(wait_until.0.saturating_add(1)))
            }
            Phase::HalfOpen { since, .. } => self.half_open_deadline(*since),
            _ => None,
        }
    }

    /// Applies the transitions due by `now` on time alone.
    pub fn handle_timeout(&mut self, now: Time) {
        let now = self.observe(now);
        let automatic = self
            .config
            .automatic_transition_from_open_to_half_open_enabled;
        self.apply_timers(now, automatic);
    }

    fn half_open_deadline(&self, since: Time) -> Option<Time> {
        let max = self.config.max_wait_duration_in_half_open_state_ms;
        (max.as_micros() > 0).then(|| since.saturating_add(max.duration()))
    }

    fn apply_timers(&mut self, now: Time, open_to_half_open: bool) {
        match self.phase {
            Phase::Open { wait_until, .. } if open_to_half_open && now > wait_until => {
                self.half_open_now(now);
            }
            Phase::HalfOpen { since, .. }
                if self.half_open_deadline(since).is_some_and(|d| now >= d) =>
            {
                self.open_now(now, TransitionReason::HalfOpenTimedOut, self.counts());
            }
            _ => {}
        }
    }

    /// Gives back a permit whose call was never made (in half-open it frees a trial slot).
    pub fn release(&mut self, permit: Permit) -> Result<()> {
        self.check_issued(permit)?;
        if permit.epoch == self.epoch
            && let Phase::HalfOpen {
                permits_left,
                outstanding,
                ..
            } = &mut self.phase
        {
            if !outstanding.remove(&permit.id) {
                return Err(already_reported(permit));
            }
            *permits_left += 1;
        }
        self.stats.released += 1;
        Ok(())
    }

    /// Reports a successful call.
    pub fn on_success(&mut self, now: Time, permit: Permit) -> Result<()> {
        self.on_result(now, permit, CallResult::Success)
    }

    /// Reports a failed call.
    pub fn on_error(&mut self, now: Time, permit: Permit, kind: ErrorKind) -> Result<()> {
        self.on_result(now, permit, CallResult::Failure { kind })
    }

    /// Reports how a permitted call ended, at `now` (its duration runs from the permit).
    pub fn on_result(&mut self, now: Time, permit: Permit, result: CallResult) -> Result<()> {
        self.check_issued(permit)?;
        let now = self.observe(now);
        let ignored = matches!(result, CallResult::Failure { kind } if self.ignored.contains(kind));
        if ignored {
            return self.release(permit).map(|()| {
                self.stats.released -= 1;
                self.stats.ignored += 1;
            });
        }
        if permit.epoch != self.epoch {
            self.stats.stale_results += 1;
            return Ok(());
        }
        let outcome = RecordedOutcome {
            failure: matches!(result, CallResult::Failure { .. }),
            slow: now.saturating_since(permit.acquired_at)
                > self.config.slow_call_duration_threshold_ms.duration(),
        };
        match &mut self.phase {
            Phase::Closed { window } => {
                window.record(now, outcome);
            }
            Phase::HalfOpen {
                outstanding,
                counts,
                ..
            } => {
                if !outstanding.remove(&permit.id) {
                    return Err(already_reported(permit));
                }
                counts.add(outcome);
            }
            // No permit of the current epoch exists while open: the epoch changed when
            // it opened.
            Phase::Open { .. } => return Ok(()),
        }
        self.stats.successes += u64::from(!outcome.failure);
        self.stats.failures += u64::from(outcome.failure);
        self.stats.slow_calls += u64::from(outcome.slow);
        self.judge(now);
        Ok(())
    }

    fn check_issued(&self, permit: Permit) -> Result<()> {
        if permit.id >= self.next_permit || permit.epoch > self.epoch {
            return Err(DistlabError::field(
                "permit",
                format!(
                    "permit {} (epoch {}) was not issued by this breaker",
                    permit.id, permit.epoch
                ),
            ));
        }
        Ok(())
    }

    fn exceeded(&self, c: WindowCounts) -> bool {
        c.failure_rate() >= self.config.failure_rate_threshold
            || c.slow_call_rate() >= self.config.slow_call_rate_threshold
    }

    fn judge(&mut self, now: Time) {
        let c = self.counts();
        let rates = (c.failure_rate(), c.slow_call_rate());
        match &self.phase {
            Phase::Closed { .. } => {
                if c.calls >= self.minimum_calls && self.exceeded(c) {
                    self.open_now(now, exceeded(rates), c);
                }
            }
            Phase::HalfOpen { .. } => {
                let trials = self
                    .config
                    .permitted_number_of_calls_in_half_open_state
                    .get();
                if c.calls < trials {
                    return;
                }
                if self.exceeded(c) {
                    self.open_now(now, exceeded(rates), c);
                } else {
                    let reason = TransitionReason::TrialsPassed {
                        failure_rate: rates.0,
                        slow_call_rate: rates.1,
                    };
                    let window = SlidingWindow::new(
                        self.config.sliding_window_type,
                        self.config.sliding_window_size.get(),
                    );
                    self.transition(now, Phase::Closed { window }, reason);
                }
            }
            Phase::Open { .. } => {}
        }
    }

    fn open_now(&mut self, now: Time, reason: TransitionReason, opened_on: WindowCounts) {
        let wait_until = now.saturating_add(self.config.wait_duration_in_open_state_ms.duration());
        self.transition(
            now,
            Phase::Open {
                wait_until,
                opened_on,
            },
            reason,
        );
    }

    fn half_open_now(&mut self, now: Time) {
        let phase = Phase::HalfOpen {
            since: now,
            permits_left: self
                .config
                .permitted_number_of_calls_in_half_open_state
                .get(),
            outstanding: BTreeSet::new(),
            counts: WindowCounts::default(),
        };
        self.transition(now, phase, TransitionReason::WaitElapsed);
    }

    fn transition(&mut self, now: Time, phase: Phase, reason: TransitionReason) {
        let from = self.state();
        self.phase = phase;
        self.epoch += 1;
        self.state_since = now;
        self.stats.transitions += 1;
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.stats.dropped_events += 1;
        }
        self.events.push_back(BreakerEvent {
            at: now,
            from,
            to: self.state(),
            reason,
        });
    }
}

fn exceeded((failure_rate, slow_call_rate): (f64, f64)) -> TransitionReason {
    TransitionReason::ThresholdsExceeded {
        failure_rate,
        slow_call_rate,
    }
}

fn already_reported(permit: Permit) -> DistlabError {
    DistlabError::field(
        "permit",
        format!("permit {} was already reported or released", permit.id),
    )
}

#[cfg(test)]
mod tests;
