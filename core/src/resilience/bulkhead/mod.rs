//! A bulkhead: at most `maxConcurrentCalls` calls at once to one dependency, so a slow
//! dependency can tie up only its own share of a service's workers; callers beyond that
//! wait in a bounded FIFO queue for at most `maxWaitMs`, and fail fast when the queue is
//! full too.
//!
//! Reference: the bulkhead pattern of Nygard's *Release It!* (2007), with the options of
//! Resilience4j's `SemaphoreBulkhead` (`maxConcurrentCalls`, default 25;
//! `maxWaitDuration`, default 0: fail fast at once). Resilience4j's waiters block on a
//! fair semaphore; here the wait queue is explicit (`maxQueue`, default 0), strictly FIFO,
//! and a freed slot goes to the oldest waiter that has not timed out. A waiter whose
//! `maxWaitMs` has passed leaves the queue (reported by [`Bulkhead::handle_timeout`], or
//! on the next call that touches the queue): it never gets a slot late.
//!
//! Every caller is accounted for: admitted at once, queued then admitted, queued then
//! timed out, queued then cancelled, or rejected — never lost.
//!
//! Cost: O(log n) per call in the calls in flight; a cancelled waiter costs O(queue).

use std::collections::{BTreeSet, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis};
use crate::error::{DistlabError, Result};
use crate::time::{Duration, Time};

pub mod lab;

/// The most concurrent calls a bulkhead may allow.
pub const MAX_CONCURRENT_CALLS: u32 = 100_000;
/// The longest wait queue.
pub const MAX_QUEUE: u32 = 100_000;
/// The longest wait: a day, in ms.
pub const MAX_WAIT_MS: u32 = 86_400_000;

/// Configuration. JSON: `{"maxConcurrentCalls": 10, "maxQueue": 20, "maxWaitMs": 500}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BulkheadConfig {
    pub max_concurrent_calls: Count<1, { MAX_CONCURRENT_CALLS }>,
    /// Callers that may wait for a slot (0: fail fast when all slots are taken).
    pub max_queue: Count<0, { MAX_QUEUE }>,
    /// Longest a caller waits in the queue (0: fail fast when all slots are taken).
    pub max_wait_ms: Millis<0, { MAX_WAIT_MS }>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent_calls: Count::of(25),
            max_queue: Count::of(0),
            max_wait_ms: Millis::of(0),
        }
    }
}

/// What the bulkhead said to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum BulkheadEntry {
    /// A slot is the caller's: call [`Bulkhead::release`] when done.
    Admitted,
    /// Waiting at `position` (0: next) until `expiresAt` µs.
    Queued {
        position: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        expires_at: Time,
    },
    /// Every slot and the queue are full: fail fast.
    Rejected,
}

/// Something that happened to a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum WaiterEvent {
    /// Got a slot after waiting `waited` µs.
    Admitted {
        id: u64,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        waited: Duration,
    },
    /// Waited `maxWaitMs` without a slot: the call fails.
    TimedOut { id: u64 },
}

/// Counters since the bulkhead was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct BulkheadStats {
    pub admitted_at_once: u64,
    pub queued: u64,
    pub admitted_from_queue: u64,
    pub timed_out: u64,
    pub cancelled: u64,
    pub rejected: u64,
    pub completed: u64,
    /// Most slots ever taken at once, and most waiters.
    pub peak_in_use: u32,
    pub peak_queue: u32,
    /// Total time spent waiting by admitted waiters, µs.
    pub total_wait_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Waiter {
    pub id: u64,
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub since: Time,
    #[cfg_attr(feature = "tsify", tsify(type = "number"))]
    pub expires_at: Time,
}

/// The bulkhead. Callers are named by an id of their choosing, unique while they hold a
/// slot or wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Bulkhead {
    limit: u32,
    max_queue: u32,
    max_wait: Duration,
    in_use: BTreeSet<u64>,
    queue: VecDeque<Waiter>,
    stats: BulkheadStats,
}

impl Bulkhead {
    pub fn new(config: BulkheadConfig) -> Self {
        Bulkhead {
            limit: config.max_concurrent_calls.get(),
            max_queue: config.max_queue.get(),
            max_wait: config.max_wait_ms.duration(),
            in_use: BTreeSet::new(),
            queue: VecDeque::new(),
            stats: BulkheadStats::default(),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn max_queue(&self) -> u32 {
        self.max_queue
    }

    pub fn in_use(&self) -> u32 {
        self.in_use.len() as u32
    }

    /// The ids holding slots, in id order.
    pub fn holders(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_use.iter().copied()
    }

    /// The waiters, oldest first.
    pub fn waiters(&self) -> impl Iterator<Item = &Waiter> {
        self.queue.iter()
    }

    pub fn queue_len(&self) -> u32 {
        self.queue.len() as u32
    }

    pub fn stats(&self) -> BulkheadStats {
        self.stats
    }

    fn known(&self, id: u64) -> bool {
        self.in_use.contains(&id) || self.queue.iter().any(|w| w.id == id)
    }

    /// Caller `id` asks for a slot at `now`. Waiters whose wait ran out by `now` leave
    /// first; their events come back beside the entry. Error: `id` already holds a slot
    /// or waits.
    pub fn try_enter(&mut self, now: Time, id: u64) -> Result<(BulkheadEntry, Vec<WaiterEvent>)> {
        let expired = self.handle_timeout(now);
        if self.known(id) {
            return Err(DistlabError::field(
                "id",
                format!("caller {id} already holds a slot or waits"),
            ));
        }
        let entry = if (self.in_use.len() as u32) < self.limit && self.queue.is_empty() {
            self.in_use.insert(id);
            self.stats.admitted_at_once += 1;
            self.stats.peak_in_use = self.stats.peak_in_use.max(self.in_use());
            BulkheadEntry::Admitted
        } else if self.max_wait > Duration::ZERO && self.queue_len() < self.max_queue {
            let expires_at = now.saturating_add(self.max_wait);
            self.queue.push_back(Waiter {
                id,
                since: now,
                expires_at,
            });
            self.stats.queued += 1;
            self.stats.peak_queue = self.stats.peak_queue.max(self.queue_len());
            BulkheadEntry::Queued {
                position: self.queue_len() - 1,
                expires_at,
            }
        } else {
            self.stats.rejected += 1;
            BulkheadEntry::Rejected
        };
        Ok((entry, expired))
    }

    /// Caller `id` is done with its slot at `now`: the slot goes to the oldest waiter that
    /// has not timed out. Returns what happened to waiters. Error: `id` holds no slot.
    pub fn release(&mut self, now: Time, id: u64) -> Result<Vec<WaiterEvent>> {
        if !self.in_use.remove(&id) {
            return Err(DistlabError::field(
                "id",
                format!("caller {id} holds no slot"),
            ));
        }
        self.stats.completed += 1;
        let mut events = self.handle_timeout(now);
        events.extend(self.fill(now));
        Ok(events)
    }

    /// Waiter `id` gives up before its turn. Error: `id` is not waiting.
    pub fn cancel(&mut self, id: u64) -> Result<()> {
        let at = self
            .queue
            .iter()
            .position(|w| w.id == id)
            .ok_or_else(|| DistlabError::field("id", format!("caller {id} is not waiting")))?;
        self.queue.remove(at);
        self.stats.cancelled += 1;
        Ok(())
    }

    /// When the oldest waiter times out, for a timer.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.queue.iter().map(|w| w.expires_at).min()
    }

    /// Removes the waiters whose wait has run out by `now` (a waiter is out at its
    /// `expiresAt`: it waited less than `maxWaitMs` or not at all).
    pub fn handle_timeout(&mut self, now: Time) -> Vec<WaiterEvent> {
        let mut events = Vec::new();
        self.queue.retain(|w| {
            let out = now >= w.expires_at;
            if out {
                events.push(WaiterEvent::TimedOut { id: w.id });
            }
            !out
        });
        self.stats.timed_out += events.len() as u64;
        events
    }

    fn fill(&mut self, now: Time) -> Vec<WaiterEvent> {
        let mut events = Vec::new();
        while (self.in_use.len() as u32) < self.limit {
            let Some(w) = self.queue.pop_front() else {
                break;
            };
            self.in_use.insert(w.id);
            let waited = now.saturating_since(w.since);
            self.stats.admitted_from_queue += 1;
            self.stats.total_wait_us = self.stats.total_wait_us.saturating_add(waited.0);
            events.push(WaiterEvent::Admitted { id: w.id, waited });
        }
        self.stats.peak_in_use = self.stats.peak_in_use.max(self.in_use());
        events
    }
}

#[cfg(test)]
mod tests;
