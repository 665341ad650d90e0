//! The simulated dependency the resilience labs call: how often a call fails, how long it
//! takes, how often it is slow, and (for the retry lab) how much load it can take. Each
//! knob changes by action, so a lab can break the dependency and let it recover.
//!
//! Also [`LabTrace`], the bounded trace every resilience lab records: the newest events as
//! JSON and a stable hash of all of them, and [`LoadMeter`], the attempts a dependency
//! saw over the last second (what a lab compares with its capacity).

use std::collections::VecDeque;
use std::hash::Hasher;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Millis, Probability};
use crate::resilience::ErrorKind;
use crate::rng::SimRng;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The longest latency a dependency may be given: a minute, in ms.
pub const MAX_LATENCY_MS: u32 = 60_000;
/// Trace events a lab keeps (the hash covers every one).
pub const TRACE_EVENTS: usize = 200;
/// A dependency's load is measured over the last second in buckets of this many µs.
const LOAD_BUCKET_US: u64 = 10_000;
const LOAD_BUCKETS: usize = 100;

/// A dependency's health. JSON: `{"failureRate": 0.05, "latencyMs": 50, "slowRate": 0,
/// "slowLatencyMs": 2000}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct DependencyConfig {
    /// Chance a call fails (with `unavailable`).
    pub failure_rate: Probability,
    /// Typical latency: a call takes uniformly between half and one and a half of it.
    pub latency_ms: Millis<0, { MAX_LATENCY_MS }>,
    /// Chance a call is slow instead: it takes `slowLatencyMs`.
    pub slow_rate: Probability,
    pub slow_latency_ms: Millis<0, { MAX_LATENCY_MS }>,
}

impl Default for DependencyConfig {
    fn default() -> Self {
        DependencyConfig {
            failure_rate: Probability::of(0.05),
            latency_ms: Millis::of(50),
            slow_rate: Probability::NEVER,
            slow_latency_ms: Millis::of(2_000),
        }
    }
}

/// How one call to the dependency goes: it answers after `latency`, with `error` if it
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOutcome {
    pub latency: Duration,
    pub error: Option<ErrorKind>,
}

impl DependencyConfig {
    /// Draws one call's outcome.
    pub fn call(&self, rng: &mut SimRng) -> CallOutcome {
        let failed = rng.chance(self.failure_rate.get());
        let latency = if rng.chance(self.slow_rate.get()) {
            self.slow_latency_ms.duration()
        } else {
            let typical = self.latency_ms.as_micros();
            Duration(typical / 2 + rng.range_inclusive(0, typical))
        };
        CallOutcome {
            latency,
            error: failed.then_some(ErrorKind::Unavailable),
        }
    }
}

/// Attempts on the dependency over the last second, in [`LOAD_BUCKETS`] buckets.
#[derive(Debug, Clone)]
pub struct LoadMeter {
    buckets: [u32; LOAD_BUCKETS],
    newest: u64,
    total: u64,
}

impl Default for LoadMeter {
    fn default() -> Self {
        LoadMeter::new()
    }
}

impl LoadMeter {
    pub fn new() -> Self {
        LoadMeter {
            buckets: [0; LOAD_BUCKETS],
            newest: 0,
            total: 0,
        }
    }

    fn advance(&mut self, now: Time) {
        let bucket = now.0 / LOAD_BUCKET_US;
        let steps = bucket.saturating_sub(self.newest).min(LOAD_BUCKETS as u64);
        for s in 1..=steps {
            let slot = ((bucket - steps + s) % LOAD_BUCKETS as u64) as usize;
            if let Some(b) = self.buckets.get_mut(slot) {
                self.total -= u64::from(*b);
                *b = 0;
            }
        }
        self.newest = self.newest.max(bucket);
    }

    /// Counts an attempt at `now`; returns the attempts in the last second, this one
    /// included.
    pub fn attempt(&mut self, now: Time) -> u64 {
        self.advance(now);
        if let Some(b) = self
            .buckets
            .get_mut((self.newest % LOAD_BUCKETS as u64) as usize)
        {
            *b = b.saturating_add(1);
        }
        self.total += 1;
        self.total
    }
}

/// The newest [`TRACE_EVENTS`] events of a lab and a hash of all of them.
#[derive(Debug, Clone)]
pub struct LabTrace {
    hasher: StableHasher,
    events: u64,
    recent: VecDeque<Value>,
}

impl Default for LabTrace {
    fn default() -> Self {
        LabTrace {
            hasher: StableHasher::default(),
            events: 0,
            recent: VecDeque::with_capacity(TRACE_EVENTS),
        }
    }
}

impl LabTrace {
    /// Records an event: its step, time, kind and numbers (all hashed).
    pub fn push(&mut self, step: u64, at: Time, kind: &str, numbers: &[(&str, u64)]) {
        self.hasher.write_u64(step);
        self.hasher.write_u64(at.0);
        self.hasher.write(kind.as_bytes());
        let mut event = json!({"step": step, "atUs": at.0, "kind": kind});
        for (name, n) in numbers {
            self.hasher.write_u64(*n);
            event[*name] = json!(n);
        }
        self.events += 1;
        if self.recent.len() >= TRACE_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
    }

    /// `{hash, events, complete, trace}`.
    pub fn to_json(&self) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.events,
            "complete": self.events <= self.recent.len() as u64,
            "trace": self.recent,
        })
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_fails_and_slows_as_configured() {
        let d = DependencyConfig {
            failure_rate: Probability::of(0.25),
            latency_ms: Millis::of(100),
            slow_rate: Probability::of(0.1),
            slow_latency_ms: Millis::of(5_000),
        };
        let mut rng = SimRng::new(4);
        let calls: Vec<CallOutcome> = (0..10_000).map(|_| d.call(&mut rng)).collect();
        let failed = calls.iter().filter(|c| c.error.is_some()).count();
        let slow = calls.iter().filter(|c| c.latency.0 == 5_000_000).count();
        assert!((2_300..2_700).contains(&failed), "{failed}");
        assert!((850..1_150).contains(&slow), "{slow}");
        assert!(
            calls
                .iter()
                .all(|c| c.latency.0 == 5_000_000 || (50_000..=150_000).contains(&c.latency.0))
        );
    }

    #[test]
    fn the_trace_keeps_the_newest_and_hashes_all() {
        let mut a = LabTrace::default();
        let mut b = LabTrace::default();
        for i in 0..(TRACE_EVENTS as u64 + 5) {
            a.push(i, Time(i), "call", &[("id", i)]);
            b.push(i, Time(i), "call", &[("id", i + u64::from(i == 0))]);
        }
        let (ja, jb) = (a.to_json(), b.to_json());
        assert_eq!(ja["trace"], jb["trace"], "the differing event was dropped");
        assert_ne!(ja["hash"], jb["hash"], "but it is in the hash");
        assert_eq!(ja["complete"], json!(false));
        assert_eq!(ja["trace"][0]["id"], json!(5));
    }
}
