//! Timeouts and deadlines: how long one attempt may take, how long the whole call may
//! take, and how much of that a downstream call is given.
//!
//! Reference: gRPC deadlines ("gRPC and Deadlines", grpc.io, 2018; the `grpc-timeout`
//! header of the HTTP/2 protocol spec): a call carries a deadline, every hop passes the
//! *remaining* time on to the calls it makes, and when the deadline passes every hop
//! cancels what it was doing for that call. Finagle and Envoy do the same with a margin
//! kept back for the hop's own reply; here [`Deadline::for_downstream`] keeps
//! `hopMarginMs` back, so a downstream deadline is never later than its parent's.
//!
//! - [`Deadline`]: a point in time, and what a hop passes on.
//! - [`CallTimeout`]: one call's overall deadline and per-attempt deadlines, with the
//!   attempts in flight; [`CallTimeout::handle_timeout`] cancels the attempts whose
//!   deadline passed and reports each [`Cancellation`] (how long the work had run: the
//!   work wasted). A result that arrives after its attempt was cancelled is reported as
//!   late, not as a success.
//!
//! On the wire a deadline travels as a duration (`grpc-timeout`), since two hosts' clocks
//! differ: [`Deadline::remaining`] and [`Deadline::from_timeout`]. The time the message
//! spends in flight is then added to the downstream deadline — which is what the margin
//! is for.
//!
//! Cost: O(log n) per attempt in the number of attempts in flight.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::Millis;
use crate::error::{DistlabError, Result};
use crate::time::{Duration, Time};

pub mod lab;

/// The longest timeout option: a day, in ms.
pub const MAX_TIMEOUT_MS: u32 = 86_400_000;

/// A point in time by which work must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Deadline(pub Time);

impl Deadline {
    /// `budget` from `now`.
    pub fn after(now: Time, budget: Duration) -> Self {
        Deadline(now.saturating_add(budget))
    }

    /// The deadline a hop computes from a received timeout (`grpc-timeout`).
    pub fn from_timeout(now: Time, timeout: Duration) -> Self {
        Deadline::after(now, timeout)
    }

    pub fn at(self) -> Time {
        self.0
    }

    /// Time left at `now` (zero once passed).
    pub fn remaining(self, now: Time) -> Duration {
        self.0.saturating_since(now)
    }

    /// Whether the deadline has passed at `now` (it passes at its instant).
    pub fn is_expired(self, now: Time) -> bool {
        now >= self.0
    }

    /// The earlier of the two.
    pub fn min(self, other: Deadline) -> Deadline {
        Deadline(self.0.min(other.0))
    }

    /// The deadline to give a call made at `now` to the next hop: the remaining time less
    /// `margin`, optionally cut to `cap` (the downstream's own timeout). `None` when
    /// nothing would be left: do not make the call, fail fast.
    pub fn for_downstream(
        self,
        now: Time,
        margin: Duration,
        cap: Option<Duration>,
    ) -> Option<Self> {
        let left = self
            .remaining(now)
            .0
            .checked_sub(margin.0)
            .filter(|l| *l > 0)?;
        let left = cap.map_or(left, |c| left.min(c.0));
        (left > 0).then(|| Deadline(now.saturating_add(Duration(left))))
    }
}

/// Per-attempt and overall timeouts. JSON: `{"attemptTimeoutMs": 1000,
/// "overallTimeoutMs": 3000, "hopMarginMs": 5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct TimeoutConfig {
    /// How long one attempt may take (cut to what the overall deadline leaves).
    pub attempt_timeout_ms: Millis<1, { MAX_TIMEOUT_MS }>,
    /// How long the whole call, every attempt and wait included, may take.
    pub overall_timeout_ms: Millis<1, { MAX_TIMEOUT_MS }>,
    /// Kept back from what a downstream call is given, for this hop's own reply.
    pub hop_margin_ms: Millis<0, { MAX_TIMEOUT_MS }>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            attempt_timeout_ms: Millis::of(1_000),
            overall_timeout_ms: Millis::of(3_000),
            hop_margin_ms: Millis::of(5),
        }
    }
}

/// Why an attempt was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CancelReason {
    /// Its own per-attempt deadline passed.
    AttemptTimedOut,
    /// The call's overall deadline passed.
    DeadlineExceeded,
}

/// Work cancelled because a deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Cancellation {
    pub attempt: u64,
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub started: Time,
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub at: Time,
    pub reason: CancelReason,
    /// How long the work had run when cut: work that produced nothing.
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub ran_for: Duration,
}

/// How an attempt's result was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Completion {
    /// Before its deadline: the result counts.
    InTime,
    /// After the attempt was cancelled: the result is thrown away.
    Late,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    started: Time,
    deadline: Deadline,
    reason: CancelReason,
}

/// Counters of a [`CallTimeout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct TimeoutStats {
    pub started: u64,
    pub in_time: u64,
    pub cancelled: u64,
    pub late: u64,
    /// Attempts refused because the overall deadline had passed.
    pub refused: u64,
    /// Total run time of cancelled work, µs.
    pub wasted_us: u64,
}

/// One call's deadlines and its attempts in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTimeout {
    overall: Deadline,
    attempt: Duration,
    margin: Duration,
    in_flight: BTreeMap<u64, InFlight>,
    cancelled: BTreeSet<u64>,
    stats: TimeoutStats,
}

impl CallTimeout {
    /// A call starting at `now`. With `inherited` (the deadline it was called with), its
    /// overall deadline is the earlier of the two: a hop never extends its caller's.
    pub fn start(now: Time, config: &TimeoutConfig, inherited: Option<Deadline>) -> Self {
        let own = Deadline::after(now, config.overall_timeout_ms.duration());
        CallTimeout {
            overall: inherited.map_or(own, |d| d.min(own)),
            attempt: config.attempt_timeout_ms.duration(),
            margin: config.hop_margin_ms.duration(),
            in_flight: BTreeMap::new(),
            cancelled: BTreeSet::new(),
            stats: TimeoutStats::default(),
        }
    }

    pub fn overall(&self) -> Deadline {
        self.overall
    }

    pub fn stats(&self) -> TimeoutStats {
        self.stats
    }

    /// Attempts in flight: id, start and deadline.
    pub fn in_flight(&self) -> impl Iterator<Item = (u64, Time, Deadline)> + '_ {
        self.in_flight
            .iter()
            .map(|(id, f)| (*id, f.started, f.deadline))
    }

    /// Starts attempt `id` at `now`; returns its deadline (its own timeout, cut to the
    /// overall deadline). Errors: the overall deadline has passed (`deadline`), or the id
    /// is in use (`attempt`).
    pub fn begin_attempt(&mut self, now: Time, id: u64) -> Result<Deadline> {
        if self.overall.is_expired(now) {
            self.stats.refused += 1;
            return Err(DistlabError::InvalidState(format!(
                "deadline exceeded: the call's deadline {} µs has passed at {} µs",
                self.overall.0.0, now.0
            )));
        }
        if self.in_flight.contains_key(&id) || self.cancelled.contains(&id) {
            return Err(DistlabError::field(
                "attempt",
                format!("attempt {id} was already started"),
            ));
        }
        let own = Deadline::after(now, self.attempt);
        let (deadline, reason) = if own < self.overall {
            (own, CancelReason::AttemptTimedOut)
        } else {
            (self.overall, CancelReason::DeadlineExceeded)
        };
        self.in_flight.insert(
            id,
            InFlight {
                started: now,
                deadline,
                reason,
            },
        );
        self.stats.started += 1;
        Ok(deadline)
    }

    /// Attempt `id` produced its result at `now`. An attempt whose deadline has passed is
    /// cancelled first (so the result is late even if no timer fired).
    pub fn finish_attempt(&mut self, now: Time, id: u64) -> Result<Completion> {
        self.handle_timeout(now);
        if self.in_flight.remove(&id).is_some() {
            self.stats.in_time += 1;
            return Ok(Completion::InTime);
        }
        if self.cancelled.remove(&id) {
            self.stats.late += 1;
            return Ok(Completion::Late);
        }
        Err(DistlabError::field(
            "attempt",
            format!("attempt {id} is not in flight"),
        ))
    }

    /// The earliest deadline of the work in flight, for a timer.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.in_flight.values().map(|f| f.deadline.0).min()
    }

    /// Cancels every attempt whose deadline has passed by `now`, oldest deadline first.
    pub fn handle_timeout(&mut self, now: Time) -> Vec<Cancellation> {
        let mut due: Vec<(u64, InFlight)> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline.is_expired(now))
            .map(|(id, f)| (*id, *f))
            .collect();
        due.sort_by_key(|(id, f)| (f.deadline, *id));
        due.into_iter()
            .map(|(id, f)| {
                self.in_flight.remove(&id);
                self.cancelled.insert(id);
                let ran_for = f.deadline.0.saturating_since(f.started);
                self.stats.cancelled += 1;
                self.stats.wasted_us = self.stats.wasted_us.saturating_add(ran_for.0);
                Cancellation {
                    attempt: id,
                    started: f.started,
                    at: f.deadline.0,
                    reason: f.reason,
                    ran_for,
                }
            })
            .collect()
    }

    /// The deadline a downstream call made at `now` gets: the overall remaining time
    /// less the margin, never more. `None`: not enough left, fail fast.
    pub fn downstream(&self, now: Time) -> Option<Deadline> {
        self.overall.for_downstream(now, self.margin, None)
    }
}

#[cfg(test)]
mod tests;
