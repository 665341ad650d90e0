//! Per-key limiters with a memory bound: one [`Rule`] shared by every key and one state per
//! key, for any of the algorithms (token bucket, GCRA, windows, log, queue). At most
//! `max_keys` states are kept, in least-recently-used order. Keys whose state is idle — back
//! to what a fresh key would have, a full allowance, so forgetting them loses nothing — are
//! evicted by [`KeyedLimiter::sweep_idle`] from the least recently used end; when a new key
//! arrives and the limiter is full, the least recently used key is evicted whatever its
//! state, and counted as a *forced* eviction if it was not idle (that key starts afresh if
//! it returns, so it may get more than its limit: bounded memory has that price, and the
//! count shows how often it was paid).
//!
//! Layout: states live in a dense slab (`Vec`) threaded by a doubly linked LRU list of `u32`
//! indices; a hash index (`rustc_hash`'s Fx hasher, deterministic) maps keys to slab slots.
//! Removal swaps the last slot into the hole, so the slab stays dense. Memory per key is the
//! slot (key, state, two links) plus the index's share (key, slot, control byte, at
//! hashbrown's load factor of at most 7/8), reported by [`KeyedLimiter::memory`] from
//! `size_of` and the capacities actually allocated.
//!
//! Reference: the per-key ("keyed") limiters of `governor` (a `DashMap` of GCRA states,
//! with `retain_recent` to drop idle ones) and of nginx's `limit_req_zone` (a fixed-size
//! shared zone of per-key states, least recently used evicted when full).
//!
//! Time going backwards is each algorithm's own rule (see [`crate::ratelimit::units`]);
//! the LRU order is the order of calls, whatever their times.
//!
//! Complexity: O(1) expected per decision; `sweep_idle` O(keys removed + 1).

use rustc_hash::FxHashMap;
use serde::Serialize;
use std::hash::Hash;
use std::mem::size_of;

use crate::error::{DistlabError, Result};
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::rule::Rule;
use crate::time::Time;

/// Largest `max_keys`: slots are addressed by `u32`, one value kept as the null link.
pub const MAX_KEYS: u64 = u32::MAX as u64 - 1;
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
struct Slot<K, S> {
    key: K,
    state: S,
    /// Towards the most recently used end.
    newer: u32,
    /// Towards the least recently used end.
    older: u32,
}

/// How the keyed limiter's memory is spent, from `size_of` and allocated capacities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct KeyedMemory {
    pub keys: u64,
    /// `size_of` one key's algorithm state.
    pub state_bytes: u64,
    /// `size_of` one key.
    pub key_bytes: u64,
    /// `size_of` one slab slot: key, state, two `u32` links, padding.
    pub slot_bytes: u64,
    /// The slab as allocated (capacity × slot).
    pub slab_bytes: u64,
    /// The hash index as allocated: buckets × (key + `u32` slot + 1 control byte).
    pub index_bytes: u64,
    /// Heap memory the states own (a sliding log's entries).
    pub state_heap_bytes: u64,
    /// Everything, divided by the keys held (0 with no keys).
    pub bytes_per_key: f64,
    /// The same without the two copies of the key (slot and index).
    pub bytes_per_key_excluding_keys: f64,
}

/// Eviction counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct EvictionStats {
    /// Idle keys removed: nothing was lost.
    pub idle: u64,
    /// Keys removed while not idle, to make room for a new key.
    pub forced: u64,
}

/// Per-key limiters of one rule; see the module documentation.
#[derive(Debug, Clone)]
pub struct KeyedLimiter<R: Rule, K = u64> {
    rule: R,
    max_keys: usize,
    index: FxHashMap<K, u32>,
    slots: Vec<Slot<K, R::State>>,
    /// Most recently used.
    newest: u32,
    /// Least recently used.
    oldest: u32,
    evictions: EvictionStats,
}

impl<R: Rule, K: Hash + Eq + Clone> KeyedLimiter<R, K> {
    /// At most `max_keys` (1 to [`MAX_KEYS`]) keys held at once.
    pub fn new(rule: R, max_keys: u64) -> Result<Self> {
        if !(1..=MAX_KEYS).contains(&max_keys) {
            return Err(DistlabError::field(
                "maxKeys",
                format!("must be between 1 and {MAX_KEYS}, got {max_keys}"),
            ));
        }
        Ok(KeyedLimiter {
            rule,
            // Fits: at most u32::MAX − 1, and usize is at least 32 bits.
            max_keys: max_keys as usize,
            index: FxHashMap::default(),
            slots: Vec::new(),
            newest: NIL,
            oldest: NIL,
            evictions: EvictionStats::default(),
        })
    }

    pub fn rule(&self) -> &R {
        &self.rule
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn max_keys(&self) -> u64 {
        self.max_keys as u64
    }

    pub fn evictions(&self) -> EvictionStats {
        self.evictions
    }

    /// The state held for `key`, if any.
    pub fn state(&self, key: &K) -> Option<&R::State> {
        let &i = self.index.get(key)?;
        self.slots.get(i as usize).map(|s| &s.state)
    }

    /// Decides a request of `cost` by `key` at `now`, creating the key's state if needed
    /// (evicting the least recently used key if full). On error nothing changes.
    pub fn try_acquire(&mut self, key: K, now: Time, cost: f64) -> Result<RateLimitDecision> {
        if let Some(&i) = self.index.get(&key) {
            let slot = &mut self.slots[i as usize];
            let d = self.rule.decide(&mut slot.state, now, cost)?;
            self.touch(i);
            return Ok(d);
        }
        let mut state = self.rule.fresh(now);
        let d = self.rule.decide(&mut state, now, cost)?;
        if self.slots.len() >= self.max_keys {
            let oldest = self.oldest;
            if self.rule.is_idle(&self.slots[oldest as usize].state, now) {
                self.evictions.idle += 1;
            } else {
                self.evictions.forced += 1;
            }
            self.remove(oldest);
        }
        if self.slots.len() == self.slots.capacity() {
            // Double, as `push` would, but never past the bound: a full limiter carries no
            // slack (a million keys would otherwise pay for 2^20 slots, or 2^21).
            let room = self.max_keys - self.slots.len();
            self.slots
                .reserve_exact(self.slots.capacity().max(4).min(room));
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            key: key.clone(),
            state,
            newer: NIL,
            older: NIL,
        });
        self.index.insert(key, i);
        self.link_newest(i);
        Ok(d)
    }

    /// What [`KeyedLimiter::try_acquire`] would decide, changing nothing.
    pub fn peek(&self, key: &K, now: Time, cost: f64) -> Result<RateLimitDecision> {
        let mut state = match self.state(key) {
            Some(s) => s.clone(),
            None => self.rule.fresh(now),
        };
        self.rule.decide(&mut state, now, cost)
    }

    /// Removes idle keys from the least recently used end, up to `max` of them, stopping at
    /// the first key that is not idle. Returns how many were removed.
    pub fn sweep_idle(&mut self, now: Time, max: usize) -> usize {
        let mut removed = 0;
        while removed < max && self.oldest != NIL {
            let oldest = self.oldest;
            if !self.rule.is_idle(&self.slots[oldest as usize].state, now) {
                break;
            }
            self.remove(oldest);
            self.evictions.idle += 1;
            removed += 1;
        }
        removed
    }

    /// Keys from the most recently used, with their states, up to `n`.
    pub fn most_recent(&self, n: usize) -> Vec<(&K, &R::State)> {
        let mut out = Vec::new();
        let mut i = self.newest;
        while i != NIL && out.len() < n {
            let s = &self.slots[i as usize];
            out.push((&s.key, &s.state));
            i = s.older;
        }
        out
    }

    /// Bytes per key by layout alone, independent of allocation history: a slot plus an
    /// index entry and control byte at hashbrown's highest load (7/8). A clone allocates
    /// exactly, a long-lived limiter with headroom, so [`KeyedLimiter::memory`] differs
    /// between the two; this figure does not, which is what a reproducible view needs.
    pub fn layout_bytes_per_key() -> f64 {
        size_of::<Slot<K, R::State>>() as f64 + (size_of::<(K, u32)>() as f64 + 1.0) * 8.0 / 7.0
    }

    /// Memory in use, computed from `size_of` and the allocated capacities.
    pub fn memory(&self) -> KeyedMemory {
        let keys = self.slots.len() as u64;
        let slot_bytes = size_of::<Slot<K, R::State>>() as u64;
        let slab_bytes = self.slots.capacity() as u64 * slot_bytes;
        // hashbrown holds at most 7/8 of its buckets (a power of two; 4 or 8 when small),
        // plus one group (16) of trailing control bytes.
        let capacity = self.index.capacity() as u64;
        let buckets = match capacity {
            0 => 0,
            1..=3 => 4,
            4..=7 => 8,
            c => (c * 8 / 7).next_power_of_two(),
        };
        let entry = size_of::<(K, u32)>() as u64;
        let index_bytes = if buckets == 0 {
            0
        } else {
            buckets * (entry + 1) + 16
        };
        let state_heap_bytes = self
            .slots
            .iter()
            .map(|s| self.rule.heap_bytes(&s.state) as u64)
            .sum::<u64>();
        let total = (slab_bytes + index_bytes + state_heap_bytes) as f64;
        let key_copies = (buckets + self.slots.capacity() as u64) * size_of::<K>() as u64;
        let per_key = |b: f64| if keys == 0 { 0.0 } else { b / keys as f64 };
        KeyedMemory {
            keys,
            state_bytes: size_of::<R::State>() as u64,
            key_bytes: size_of::<K>() as u64,
            slot_bytes,
            slab_bytes,
            index_bytes,
            state_heap_bytes,
            bytes_per_key: per_key(total),
            bytes_per_key_excluding_keys: per_key(total - key_copies as f64),
        }
    }

    /// Makes slot `i` the most recently used.
    fn touch(&mut self, i: u32) {
        if self.newest != i {
            self.unlink(i);
            self.link_newest(i);
        }
    }

    fn link_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        {
            let s = &mut self.slots[i as usize];
            s.newer = NIL;
            s.older = old_newest;
        }
        if old_newest != NIL {
            self.slots[old_newest as usize].newer = i;
        } else {
            self.oldest = i;
        }
        self.newest = i;
    }

    fn unlink(&mut self, i: u32) {
        let (newer, older) = {
            let s = &self.slots[i as usize];
            (s.newer, s.older)
        };
        if newer != NIL {
            self.slots[newer as usize].older = older;
        } else {
            self.newest = older;
        }
        if older != NIL {
            self.slots[older as usize].newer = newer;
        } else {
            self.oldest = newer;
        }
    }

    /// Removes slot `i`, moving the last slot into its place.
    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let removed = self.slots.swap_remove(i as usize);
        self.index.remove(&removed.key);
        if (i as usize) < self.slots.len() {
            // The former last slot now lives at `i`: repoint its neighbours and its index.
            let moved_from = self.slots.len() as u32;
            let (newer, older, key) = {
                let s = &self.slots[i as usize];
                (s.newer, s.older, s.key.clone())
            };
            if newer != NIL {
                self.slots[newer as usize].older = i;
            } else {
                self.newest = i;
            }
            if older != NIL {
                self.slots[older as usize].newer = i;
            } else {
                self.oldest = i;
            }
            if let Some(slot) = self.index.get_mut(&key) {
                debug_assert_eq!(*slot, moved_from);
                *slot = i;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::fixed_window::{FixedWindowConfig, FixedWindowRule};
    use crate::ratelimit::gcra::{Gcra, GcraConfig, GcraRule};
    use crate::ratelimit::rule::testing::ms;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn gcra_rule(burst: f64, rate: f64) -> GcraRule {
        GcraRule::new(GcraConfig {
            burst,
            rate_per_sec: rate,
        })
        .unwrap()
    }

    #[test]
    fn keys_are_limited_separately() {
        let mut k = KeyedLimiter::new(gcra_rule(2.0, 1.0), 10).unwrap();
        assert!(k.try_acquire(1, ms(0), 2.0).unwrap().allowed);
        assert!(!k.try_acquire(1, ms(0), 1.0).unwrap().allowed);
        assert!(k.try_acquire(2, ms(0), 2.0).unwrap().allowed);
        assert_eq!(k.len(), 2);
        assert!(k.peek(&3, ms(0), 2.0).unwrap().allowed);
        assert_eq!(k.len(), 2, "peek creates nothing");
    }

    #[test]
    fn idle_keys_are_swept_and_full_limiters_evict_the_least_recent() {
        let mut k = KeyedLimiter::new(gcra_rule(1.0, 1.0), 3).unwrap();
        for key in 0..3u64 {
            k.try_acquire(key, ms(key * 100), 1.0).unwrap();
        }
        k.try_acquire(0, ms(300), 1.0).unwrap(); // denied, but 0 is now the most recent
        let order: Vec<u64> = k.most_recent(10).iter().map(|(k, _)| **k).collect();
        assert_eq!(order, [0, 2, 1]);
        // Key 3 arrives while all are busy: 1 (least recent) is forced out.
        k.try_acquire(3, ms(400), 1.0).unwrap();
        assert!(k.state(&1).is_none());
        assert_eq!(k.evictions(), EvictionStats { idle: 0, forced: 1 });
        // At 1.25 s keys 2 (idle since 1.2 s) and 0 (idle since 1 s) are idle, 3 is not:
        // the sweep takes 2 and 0 from the old end and stops at 3.
        assert_eq!(k.sweep_idle(ms(1_250), 10), 2);
        assert_eq!(k.len(), 1);
        assert!(k.state(&3).is_some());
        assert_eq!(k.evictions(), EvictionStats { idle: 2, forced: 1 });
        assert_eq!(k.sweep_idle(ms(1_400), 10), 1);
        assert!(k.is_empty());
    }

    #[test]
    fn errors_change_nothing_and_bad_sizes_name_the_field() {
        let mut k = KeyedLimiter::new(gcra_rule(1.0, 1.0), 1).unwrap();
        k.try_acquire(7, ms(0), 1.0).unwrap();
        let e = k.try_acquire(8, ms(0), 5.0).unwrap_err();
        assert!(e.to_string().contains("`cost`"));
        assert!(k.state(&7).is_some(), "a failed new key evicts nothing");
        for bad in [0, MAX_KEYS + 1] {
            let e = KeyedLimiter::<GcraRule>::new(gcra_rule(1.0, 1.0), bad).unwrap_err();
            assert!(e.to_string().contains("`maxKeys`"));
        }
    }

    #[test]
    fn memory_is_reported_from_sizes() {
        let mut k = KeyedLimiter::new(gcra_rule(5.0, 1.0), 1_000).unwrap();
        assert_eq!(k.memory().bytes_per_key, 0.0);
        for key in 0..1_000u64 {
            k.try_acquire(key, ms(0), 1.0).unwrap();
        }
        let m = k.memory();
        assert_eq!(m.keys, 1_000);
        assert_eq!(m.state_bytes, 16);
        assert_eq!(m.slot_bytes, 32);
        assert!(m.index_bytes >= 1_000 * 17);
        assert!(
            m.bytes_per_key > 32.0 + 17.0 && m.bytes_per_key < 200.0,
            "{m:?}"
        );
        assert!(m.bytes_per_key_excluding_keys < m.bytes_per_key);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Against a model (a Vec in LRU order and a standalone limiter per key): the same
        /// decisions, the same keys held in the same order, the same evictions; never more
        /// than `max_keys`.
        #[test]
        fn matches_a_model(
            max_keys in 1u64..6,
            ops in proptest::collection::vec((0u64..8, 0u64..300_000, 0u8..4), 1..200),
        ) {
            let rule = FixedWindowRule::new(FixedWindowConfig { limit: 2.0, window_ms: 500.0 }).unwrap();
            let mut k = KeyedLimiter::new(rule, max_keys).unwrap();
            let mut model: VecDeque<(u64, crate::ratelimit::fixed_window::FixedWindowState)> = VecDeque::new();
            let mut now = 0;
            for (key, gap, op) in ops {
                now += gap;
                if op == 0 {
                    let removed = k.sweep_idle(Time(now), 2);
                    let mut expect = 0;
                    while expect < 2 && model.back().is_some_and(|(_, s)| rule.is_idle(s, Time(now))) {
                        model.pop_back();
                        expect += 1;
                    }
                    prop_assert_eq!(removed, expect);
                } else {
                    let d = k.try_acquire(key, Time(now), 1.0).unwrap();
                    let mut state = match model.iter().position(|(k, _)| *k == key) {
                        Some(p) => model.remove(p).unwrap().1,
                        None => {
                            if model.len() as u64 >= max_keys {
                                model.pop_back();
                            }
                            rule.fresh(Time(now))
                        }
                    };
                    let expected = rule.decide(&mut state, Time(now), 1.0).unwrap();
                    model.push_front((key, state));
                    prop_assert_eq!(d, expected);
                }
                prop_assert!(k.len() as u64 <= max_keys);
                let held: Vec<(u64, _)> = k.most_recent(100).into_iter().map(|(k, s)| (*k, *s)).collect();
                let modelled: Vec<(u64, _)> = model.iter().copied().collect();
                prop_assert_eq!(held, modelled);
            }
        }

        /// One key of the keyed limiter decides exactly like a standalone limiter.
        #[test]
        fn one_key_is_a_standalone_limiter(requests in proptest::collection::vec((0u64..400_000, 0.1f64..=3.0), 1..100)) {
            let mut k = KeyedLimiter::new(gcra_rule(3.0, 7.0), 4).unwrap();
            let mut g = Gcra::new(GcraConfig { burst: 3.0, rate_per_sec: 7.0 }).unwrap();
            let mut now = 0;
            for (gap, cost) in requests {
                now += gap;
                prop_assert_eq!(k.try_acquire("one", Time(now), cost).unwrap(), g.try_acquire(Time(now), cost).unwrap());
            }
        }
    }
}
