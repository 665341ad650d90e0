//! Load shedding with an adaptive concurrency limit: admit at most `limit` requests at
//! once, learn the limit from what the service's latency and drops say, and when over it
//! refuse the least important requests first.
//!
//! References:
//! - Netflix's `concurrency-limits` library ("Performance Under Load", Netflix tech blog
//!   2018). Each finished request is a sample `(rtt, inflight when it started, dropped)`:
//!   - AIMD (`AIMDLimit`, defaults initial 20, min 20, max 200, backoff 0.9, timeout 5 s):
//!     on a drop or an rtt above the timeout, `limit = ⌊limit × backoffRatio⌋`; else, if
//!     `inflight × 2 ≥ limit` (the limit is being used), `limit = limit + 1`; then clamp
//!     to `[minLimit, maxLimit]`.
//!   - Gradient2 (`Gradient2Limit`, defaults initial 20, min 20, max 200, smoothing 0.2,
//!     queueSize 4, longWindow 600, rttTolerance 1.5) — the gradient limiter here —
//!     fed, as Netflix's `WindowedLimit` feeds it, one sample per *sample window*
//!     (defaults windowMs 1000, windowSize 10): a window gathers the finished requests'
//!     rtts and closes at the first request ending `windowMs` after it opened; if it
//!     holds at least `windowSize` requests its mean rtt is the short rtt and its
//!     highest inflight the inflight of one update, otherwise it is thrown away (too few
//!     to say anything). Per update: `longRtt` is an exponential average of the short
//!     rtt (the plain mean of the first 10, then weight 2/(longWindow+1), so the long
//!     window is 600 *windows*: minutes), cut by 5 % whenever it exceeds twice the short
//!     rtt (latency back to normal after a long overload); if `inflight < limit/2` the
//!     limit is left as is (the application, not the service, is the bottleneck); else
//!     `gradient = max(0.5, min(1, rttTolerance × longRtt / shortRtt))`, `new = limit ×
//!     gradient + queueSize`, `limit = limit × (1 − smoothing) + new × smoothing`,
//!     clamped to `[minLimit, maxLimit]`. Drops do not enter the formula.
//!
//!     Without the window (one update per request, as this module first did) `longRtt`
//!     averages only the last few hundred *requests*, a fraction of a second under load,
//!     and keeps up with the queueing latency it should be measured against: on the lab's
//!     service the limit then swings far past the capacity, up to where the service drops
//!     requests (it still sheds; the lab test shows both). With it, under a steady
//!     overload the limit settles where `gradient = 1 − queueSize/limit`, i.e. where the
//!     latency is about `rttTolerance × longRtt` (on the lab's service, whose latency
//!     grows in proportion to the load past its capacity, near twice the capacity), and
//!     drifts slowly up as `longRtt` learns the queueing latency, Gradient2's known
//!     trade-off.
//!
//!     Where this differs from Netflix: the window's length is fixed at `windowMs`
//!     (Netflix clamps twice the window's lowest rtt into [minWindowTime, maxWindowTime],
//!     both 1 s by default, so the same by default); rtts below 100 µs are not dropped
//!     (Netflix's minRttThreshold), a zero rtt counts as 1 µs; AIMD is fed every sample
//!     (unwindowed, as Netflix's AIMD is usually used). Vegas is not implemented.
//! - Priority shedding as in Google's SRE book, ch. 21 "Handling Overload" (criticality:
//!   a backend out of capacity rejects the least critical requests first): priority 0 is
//!   the most important; priority `p` is admitted while `inflight < ⌊limit × (1 − p ×
//!   headroomPerPriority)⌋`, so as load grows past the limit the lowest priority is shed
//!   first and the most important keeps the whole limit.
//!
//! Sans-I/O: [`LoadShedder::try_acquire`] at `now` admits or sheds; the caller reports
//! how each admitted request ended ([`LoadShedder::on_success`], [`LoadShedder::
//! on_dropped`], or [`LoadShedder::release`] for one that tells nothing). Cost: O(log n)
//! per request in the requests in flight.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis, Probability};
use crate::error::{DistlabError, Result, check_range};
use crate::time::{Duration, Time};

pub mod lab;
#[cfg(test)]
mod tests;

/// The highest concurrency limit.
pub const MAX_LIMIT: u32 = 100_000;
/// The most priorities.
pub const MAX_PRIORITIES: u32 = 8;
/// The longest AIMD timeout: an hour, in ms.
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;
/// The longest Gradient2 window, in samples.
pub const MAX_LONG_WINDOW: u32 = 100_000;
/// Samples Gradient2's long rtt averages plainly before it turns exponential.
const WARMUP_SAMPLES: u32 = 10;
/// The most requests a Gradient2 sample window may require.
pub const MAX_WINDOW_SIZE: u32 = 100_000;

fn default_window_ms() -> Millis<1, { MAX_TIMEOUT_MS }> {
    Millis::of(1_000)
}

fn default_window_size() -> Count<1, { MAX_WINDOW_SIZE }> {
    Count::of(10)
}

/// The limit algorithm. JSON: `{"type": "aimd", "initialLimit": 20, "minLimit": 20,
/// "maxLimit": 200, "backoffRatio": 0.9, "timeoutMs": 5000}` or `{"type": "gradient2",
/// "initialLimit": 20, "minLimit": 20, "maxLimit": 200, "smoothing": 0.2, "queueSize": 4,
/// "longWindow": 600, "rttTolerance": 1.5, "windowMs": 1000, "windowSize": 10}` (the
/// window fields may be left out: Netflix's `WindowedLimit` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LimitConfig {
    Aimd {
        initial_limit: Count<1, { MAX_LIMIT }>,
        min_limit: Count<1, { MAX_LIMIT }>,
        max_limit: Count<1, { MAX_LIMIT }>,
        /// Multiplies the limit on a drop, in [0.5, 1).
        backoff_ratio: f64,
        /// An rtt above this counts as a drop.
        timeout_ms: Millis<1, { MAX_TIMEOUT_MS }>,
    },
    Gradient2 {
        initial_limit: Count<1, { MAX_LIMIT }>,
        min_limit: Count<1, { MAX_LIMIT }>,
        max_limit: Count<1, { MAX_LIMIT }>,
        /// How much of the new estimate replaces the limit each sample, in (0, 1].
        smoothing: Probability,
        /// How far the limit may grow past what the latency allows.
        queue_size: Count<0, { MAX_LIMIT }>,
        /// Sample windows the long-term rtt averages over.
        long_window: Count<1, { MAX_LONG_WINDOW }>,
        /// How much slower than the long-term rtt a sample may be before the limit
        /// shrinks, in [1, 100].
        rtt_tolerance: f64,
        /// How long a sample window lasts at least.
        #[serde(default = "default_window_ms")]
        window_ms: Millis<1, { MAX_TIMEOUT_MS }>,
        /// Requests a window needs to count (fewer: it is thrown away).
        #[serde(default = "default_window_size")]
        window_size: Count<1, { MAX_WINDOW_SIZE }>,
    },
}

impl LimitConfig {
    /// Netflix's AIMD defaults.
    pub const AIMD: LimitConfig = LimitConfig::Aimd {
        initial_limit: Count::of(20),
        min_limit: Count::of(20),
        max_limit: Count::of(200),
        backoff_ratio: 0.9,
        timeout_ms: Millis::of(5_000),
    };
    /// Netflix's Gradient2 defaults.
    pub const GRADIENT2: LimitConfig = LimitConfig::Gradient2 {
        initial_limit: Count::of(20),
        min_limit: Count::of(20),
        max_limit: Count::of(200),
        smoothing: Probability::of(0.2),
        queue_size: Count::of(4),
        long_window: Count::of(600),
        rtt_tolerance: 1.5,
        window_ms: Millis::of(1_000),
        window_size: Count::of(10),
    };
}

/// A load shedder. JSON: `{"limit": {"type": "aimd", ...}, "priorities": 3,
/// "headroomPerPriority": 0.1}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LoadShedderConfig {
    pub limit: LimitConfig,
    /// Priorities 0 (most important) to `priorities − 1`.
    pub priorities: Count<1, { MAX_PRIORITIES }>,
    /// The share of the limit each step down in priority gives up.
    pub headroom_per_priority: Probability,
}

impl Default for LoadShedderConfig {
    fn default() -> Self {
        LoadShedderConfig {
            limit: LimitConfig::AIMD,
            priorities: Count::of(3),
            headroom_per_priority: Probability::of(0.1),
        }
    }
}

/// Netflix's AIMD limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AimdLimit {
    limit: u32,
    min: u32,
    max: u32,
    backoff: f64,
    timeout: Duration,
}

impl AimdLimit {
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// One sample: a request that took `rtt`, started with `inflight` in flight
    /// (itself included), dropped or not.
    pub fn update(&mut self, rtt: Duration, inflight: u32, dropped: bool) {
        let next = if dropped || rtt > self.timeout {
            (f64::from(self.limit) * self.backoff) as u32
        } else if u64::from(inflight) * 2 >= u64::from(self.limit) {
            self.limit.saturating_add(1)
        } else {
            self.limit
        };
        self.limit = next.clamp(self.min, self.max);
    }
}

/// Netflix's Gradient2 limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gradient2Limit {
    estimated: f64,
    min: f64,
    max: f64,
    smoothing: f64,
    queue_size: f64,
    tolerance: f64,
    long_factor: f64,
    long_rtt: f64,
    samples: u32,
    last_rtt: f64,
    window: SampleWindow,
    window_len: Duration,
    window_size: u32,
}

/// The requests finished in the current sample window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SampleWindow {
    /// When the window closes: the first request ending at or after this closes it.
    closes: Time,
    count: u32,
    rtt_sum: f64,
    max_inflight: u32,
}

impl Gradient2Limit {
    pub fn limit(&self) -> u32 {
        self.estimated as u32
    }

    /// The long-term rtt, µs.
    pub fn long_rtt(&self) -> f64 {
        self.long_rtt
    }

    /// The short rtt of the last closed window, µs (0 before the first).
    pub fn short_rtt(&self) -> f64 {
        self.last_rtt
    }

    /// One request that finished at `now` after `rtt`, having started with `inflight`
    /// in flight (itself included). It joins the sample window; if that closes, the
    /// window (if it holds `windowSize` requests) updates the limit. Says whether the
    /// limit was updated.
    pub fn on_sample(&mut self, now: Time, rtt: Duration, inflight: u32) -> bool {
        let w = &mut self.window;
        w.count = w.count.saturating_add(1);
        w.rtt_sum += rtt.0 as f64;
        w.max_inflight = w.max_inflight.max(inflight);
        if now < w.closes {
            return false;
        }
        let done = *w;
        self.window = SampleWindow {
            closes: now.saturating_add(self.window_len),
            count: 0,
            rtt_sum: 0.0,
            max_inflight: 0,
        };
        if done.count < self.window_size {
            return false;
        }
        let mean = Duration((done.rtt_sum / f64::from(done.count)) as u64);
        self.update(mean, done.max_inflight);
        true
    }

    fn add_long(&mut self, rtt: f64) -> f64 {
        if self.samples < WARMUP_SAMPLES {
            self.samples += 1;
            self.long_rtt += (rtt - self.long_rtt) / f64::from(self.samples);
        } else {
            self.long_rtt = self.long_rtt * (1.0 - self.long_factor) + rtt * self.long_factor;
        }
        self.long_rtt
    }

    /// One update from a window's short rtt and inflight (drops do not enter
    /// Gradient2's formula). [`Gradient2Limit::on_sample`] calls it per window.
    pub fn update(&mut self, rtt: Duration, inflight: u32) {
        // A zero rtt would make the gradient infinite: count it as a microsecond.
        let short = (rtt.0 as f64).max(1.0);
        self.last_rtt = short;
        let long = self.add_long(short);
        if long / short > 2.0 {
            self.long_rtt *= 0.95;
        }
        if f64::from(inflight) < self.estimated / 2.0 {
            return;
        }
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        let new = self.estimated * gradient + self.queue_size;
        let new = self.estimated * (1.0 - self.smoothing) + new * self.smoothing;
        self.estimated = new.clamp(self.min, self.max);
    }
}

/// The limit in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Aimd(AimdLimit),
    Gradient2(Gradient2Limit),
}

impl Limit {
    /// Errors name the field under `limit.`: bounds out of order, `backoffRatio`
    /// outside [0.5, 1), `rttTolerance` outside [1, 100], `smoothing` 0.
    pub fn new(c: &LimitConfig) -> Result<Self> {
        let bounds = |initial: Count<1, MAX_LIMIT>,
                      min: Count<1, MAX_LIMIT>,
                      max: Count<1, MAX_LIMIT>| {
            if min.get() > max.get() {
                return Err(DistlabError::field(
                    "limit.minLimit",
                    format!("must be at most limit.maxLimit ({max}), got {min}"),
                ));
            }
            if !(min.get()..=max.get()).contains(&initial.get()) {
                return Err(DistlabError::field(
                    "limit.initialLimit",
                    format!(
                        "must be between limit.minLimit ({min}) and limit.maxLimit ({max}), got {initial}"
                    ),
                ));
            }
            Ok(())
        };
        match *c {
            LimitConfig::Aimd {
                initial_limit,
                min_limit,
                max_limit,
                backoff_ratio,
                timeout_ms,
            } => {
                bounds(initial_limit, min_limit, max_limit)?;
                check_range("limit.backoffRatio", backoff_ratio, 0.5, 1.0)?;
                if backoff_ratio >= 1.0 {
                    return Err(DistlabError::field(
                        "limit.backoffRatio",
                        "must be below 1, got 1",
                    ));
                }
                Ok(Limit::Aimd(AimdLimit {
                    limit: initial_limit.get(),
                    min: min_limit.get(),
                    max: max_limit.get(),
                    backoff: backoff_ratio,
                    timeout: timeout_ms.duration(),
                }))
            }
            LimitConfig::Gradient2 {
                initial_limit,
                min_limit,
                max_limit,
                smoothing,
                queue_size,
                long_window,
                rtt_tolerance,
                window_ms,
                window_size,
            } => {
                bounds(initial_limit, min_limit, max_limit)?;
                check_range("limit.rttTolerance", rtt_tolerance, 1.0, 100.0)?;
                if smoothing.get() <= 0.0 {
                    return Err(DistlabError::field(
                        "limit.smoothing",
                        "must be above 0, got 0",
                    ));
                }
                Ok(Limit::Gradient2(Gradient2Limit {
                    estimated: f64::from(initial_limit.get()),
                    min: f64::from(min_limit.get()),
                    max: f64::from(max_limit.get()),
                    smoothing: smoothing.get(),
                    queue_size: f64::from(queue_size.get()),
                    tolerance: rtt_tolerance,
                    long_factor: 2.0 / (f64::from(long_window.get()) + 1.0),
                    long_rtt: 0.0,
                    samples: 0,
                    last_rtt: 0.0,
                    window: SampleWindow {
                        closes: Time::ZERO,
                        count: 0,
                        rtt_sum: 0.0,
                        max_inflight: 0,
                    },
                    window_len: window_ms.duration(),
                    window_size: window_size.get(),
                }))
            }
        }
    }

    pub fn limit(&self) -> u32 {
        match self {
            Limit::Aimd(l) => l.limit(),
            Limit::Gradient2(l) => l.limit(),
        }
    }

    /// A request that finished at `now` after `rtt`: AIMD updates at once, Gradient2
    /// adds it to its sample window.
    pub fn on_sample(&mut self, now: Time, rtt: Duration, inflight: u32, dropped: bool) {
        match self {
            Limit::Aimd(l) => l.update(rtt, inflight, dropped),
            Limit::Gradient2(l) => {
                l.on_sample(now, rtt, inflight);
            }
        }
    }
}

/// What the shedder said to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ShedAdmission {
    /// Go ahead; report how it ended under `id`.
    Admitted { id: u64 },
    /// Refused: `inflight` requests were in flight, and this priority may use `allowed`.
    Shed { inflight: u32, allowed: u32 },
}

/// Counters of one priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PriorityStats {
    pub admitted: u64,
    pub shed: u64,
    pub succeeded: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    started: Time,
    inflight: u32,
    priority: u32,
}

/// A load shedder: an adaptive limit and priority shedding.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadShedder {
    limit: Limit,
    headroom: f64,
    in_flight: BTreeMap<u64, InFlight>,
    next_id: u64,
    stats: Vec<PriorityStats>,
}

impl LoadShedder {
    /// Errors name the field: see [`Limit::new`], and `headroomPerPriority` × (priorities
    /// − 1) reaching 1 (the lowest priority could never run).
    pub fn new(c: &LoadShedderConfig) -> Result<Self> {
        let limit = Limit::new(&c.limit)?;
        let p = c.priorities.get();
        if c.headroom_per_priority.get() * f64::from(p - 1) >= 1.0 {
            return Err(DistlabError::field(
                "headroomPerPriority",
                format!(
                    "times priorities − 1 ({}) must stay below 1, got {}",
                    p - 1,
                    c.headroom_per_priority
                ),
            ));
        }
        Ok(LoadShedder {
            limit,
            headroom: c.headroom_per_priority.get(),
            in_flight: BTreeMap::new(),
            next_id: 0,
            stats: vec![PriorityStats::default(); p as usize],
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit.limit()
    }

    pub fn limiter(&self) -> &Limit {
        &self.limit
    }

    pub fn inflight(&self) -> u32 {
        self.in_flight.len() as u32
    }

    pub fn priorities(&self) -> u32 {
        self.stats.len() as u32
    }

    /// By priority, most important first.
    pub fn stats(&self) -> &[PriorityStats] {
        &self.stats
    }

    /// How many requests in flight priority `priority` may find and still be admitted.
    pub fn allowed(&self, priority: u32) -> u32 {
        let share = 1.0 - f64::from(priority) * self.headroom;
        // The epsilon keeps 10 × (1 − 2 × 0.2) at 6, not 5.999….
        (f64::from(self.limit()) * share + 1e-9) as u32
    }

    /// A request of `priority` at `now`. Error: no such priority.
    pub fn try_acquire(&mut self, now: Time, priority: u32) -> Result<ShedAdmission> {
        let priorities = self.priorities();
        if priority >= priorities {
            return Err(DistlabError::field(
                "priority",
                format!("must be below {priorities}, got {priority}"),
            ));
        }
        let inflight = self.in_flight.len() as u32;
        let allowed = self.allowed(priority);
        let Some(stats) = self.stats.get_mut(priority as usize) else {
            return Err(DistlabError::field("priority", "no such priority"));
        };
        if inflight >= allowed {
            stats.shed += 1;
            return Ok(ShedAdmission::Shed { inflight, allowed });
        }
        stats.admitted += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(
            id,
            InFlight {
                started: now,
                inflight: inflight + 1,
                priority,
            },
        );
        Ok(ShedAdmission::Admitted { id })
    }

    fn finish(&mut self, now: Time, id: u64, dropped: Option<bool>) -> Result<()> {
        let r = self
            .in_flight
            .remove(&id)
            .ok_or_else(|| DistlabError::field("id", format!("request {id} is not in flight")))?;
        if let Some(dropped) = dropped {
            self.limit
                .on_sample(now, now.saturating_since(r.started), r.inflight, dropped);
            if let Some(s) = self.stats.get_mut(r.priority as usize) {
                if dropped {
                    s.dropped += 1;
                } else {
                    s.succeeded += 1;
                }
            }
        }
        Ok(())
    }

    /// Request `id` succeeded at `now`: a sample. Error: `id` not in flight.
    pub fn on_success(&mut self, now: Time, id: u64) -> Result<()> {
        self.finish(now, id, Some(false))
    }

    /// Request `id` was dropped by the service (overloaded, timed out) at `now`: a
    /// sample that says the limit is too high. Error: `id` not in flight.
    pub fn on_dropped(&mut self, now: Time, id: u64) -> Result<()> {
        self.finish(now, id, Some(true))
    }

    /// Request `id` ended saying nothing about the service (the caller gave up, a bad
    /// request): no sample. Error: `id` not in flight.
    pub fn release(&mut self, id: u64) -> Result<()> {
        self.finish(Time::ZERO, id, None)
    }
}
