//! `cache.tinylfu`: W-TinyLFU, the policy of Caffeine.
//!
//! Reference: G. Einziger, R. Friedman, B. Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy" (ACM Transactions on Storage, 2017), §4 (W-TinyLFU), and Caffeine's
//! `BoundedLocalCache` (design notes: github.com/ben-manes/caffeine/wiki/Efficiency).
//!
//! New entries enter a small LRU *window* (1 % of the capacity). The rest, the *main*
//! space, is a segmented LRU (Karedla, Love & Wherry 1994): 20 % *probation*, 80 %
//! *protected*; a hit in probation promotes to protected, whose overflow is demoted back
//! to probation's front. When the window overflows, its LRU entry is the candidate: it
//! moves into probation if the main space has room, else the frequency sketch
//! ([`super::frequency_sketch`]) judges it against the main space's victim (probation's
//! LRU entry) and the less frequent of the two is evicted — the candidate only if it is
//! strictly more frequent does it get in (ties keep the incumbent, as in Caffeine). The
//! window lets a burst of new keys build frequency before it must compete; the sketch's
//! halving lets yesterday's hot keys go.
//!
//! The sketch counts a hit (`get`) and every `put`, as Caffeine counts reads and writes; a
//! miss is counted by the `put` that follows it. Not modelled: Caffeine's hill climber
//! that resizes the window, and its random admission of warm candidates against hash
//! flooding (this core has no adversary). Every operation is O(1).

use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::frequency_sketch::FrequencySketch;
use super::slab::{List, Slab};
use super::{EvictionCause, EvictionPolicy, Evictions, check_capacity, key_hash};
use crate::error::Result;

/// Which segment an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Segment {
    Window,
    Probation,
    Protected,
}

#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
    /// No stored hash: recomputing it costs less than the cache line a larger node
    /// would take on every hit.
    segment: Segment,
}

/// How the capacity splits: `window + probation + protected = capacity` at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sizes {
    pub window: usize,
    pub main: usize,
    pub protected: usize,
}

impl Sizes {
    /// Caffeine's split: main = ⌊99 % of capacity⌋, window = the rest (at least 1),
    /// protected = ⌊80 % of main⌋.
    pub fn of(capacity: usize) -> Sizes {
        let main = (capacity as u128 * 99 / 100) as usize;
        Sizes {
            window: capacity - main,
            main,
            protected: (main as u128 * 80 / 100) as usize,
        }
    }
}

/// Admission decisions so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionStats {
    /// Candidates that beat the main space's victim.
    pub admitted: u64,
    /// Candidates that lost (evicted with [`EvictionCause::Rejected`]).
    pub rejected: u64,
}

/// A W-TinyLFU cache of at most `capacity` entries.
#[derive(Debug, Clone)]
pub struct TinyLfu<K, V> {
    map: FxHashMap<K, u32>,
    slab: Slab<Entry<K, V>>,
    window: List,
    probation: List,
    protected: List,
    sizes: Sizes,
    capacity: usize,
    sketch: FrequencySketch,
    stats: AdmissionStats,
}

impl<K: Hash + Eq + Clone, V> TinyLfu<K, V> {
    /// A W-TinyLFU holding at most `capacity` entries (1 to [`super::MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> Result<Self> {
        let capacity = check_capacity("capacity", capacity)?;
        Ok(TinyLfu {
            map: FxHashMap::default(),
            slab: Slab::default(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            sizes: Sizes::of(capacity),
            capacity,
            sketch: FrequencySketch::new(capacity)?,
            stats: AdmissionStats::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    pub fn admission(&self) -> AdmissionStats {
        self.stats
    }

    pub fn sketch(&self) -> &FrequencySketch {
        &self.sketch
    }

    /// The sketch's estimate of how often `key` was used recently (0 to 15).
    pub fn frequency(&self, key: &K) -> u64 {
        self.sketch.frequency(key_hash(key))
    }

    /// Which segment holds `key`.
    pub fn segment(&self, key: &K) -> Option<Segment> {
        self.slab.get(*self.map.get(key)?).map(|e| e.segment)
    }

    /// The value under `key`: counted in the sketch and promoted in its segment.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        self.on_access(idx);
        self.slab.get(idx).map(|e| &e.value)
    }

    /// The value under `key`, touching neither the sketch nor the order.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.slab.get(*self.map.get(key)?).map(|e| &e.value)
    }

    /// Stores `value` under `key`. A present key is updated and promoted like a hit; a new
    /// one enters the window, whose overflow goes through admission.
    pub fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        let mut out = Evictions::default();
        if let Some(&idx) = self.map.get(&key) {
            if let Some(e) = self.slab.get_mut(idx) {
                let old = std::mem::replace(&mut e.value, value);
                out.push(key, old, EvictionCause::Replaced);
            }
            self.on_access(idx);
            return out;
        }
        self.sketch.increment(key_hash(&key));
        let Some(idx) = self.slab.insert(Entry {
            key: key.clone(),
            value,
            segment: Segment::Window,
        }) else {
            return out;
        };
        self.window.push_front(&mut self.slab, idx);
        self.map.insert(key, idx);
        if self.window.len() > self.sizes.window {
            self.admit_window_victim(&mut out);
        }
        out
    }

    /// Takes `key` out, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let idx = self.map.remove(key)?;
        let segment = self.slab.get(idx)?.segment;
        self.unlink_from(segment, idx);
        self.slab.remove(idx).map(|e| e.value)
    }

    /// A segment's keys, most recent first.
    pub fn keys_of(&self, segment: Segment) -> Vec<&K> {
        let list = match segment {
            Segment::Window => &self.window,
            Segment::Probation => &self.probation,
            Segment::Protected => &self.protected,
        };
        list.iter(&self.slab)
            .filter_map(|i| self.slab.get(i).map(|e| &e.key))
            .collect()
    }

    /// Takes slot `idx` out of `segment`'s list.
    fn unlink_from(&mut self, segment: Segment, idx: u32) {
        let list = match segment {
            Segment::Window => &mut self.window,
            Segment::Probation => &mut self.probation,
            Segment::Protected => &mut self.protected,
        };
        list.unlink(&mut self.slab, idx);
    }

    fn set_segment(&mut self, idx: u32, segment: Segment) {
        if let Some(e) = self.slab.get_mut(idx) {
            e.segment = segment;
        }
    }

    fn on_access(&mut self, idx: u32) {
        let Some((segment, hash)) = self.slab.get(idx).map(|e| (e.segment, key_hash(&e.key)))
        else {
            return;
        };
        self.sketch.increment(hash);
        match segment {
            Segment::Window => self.window.move_to_front(&mut self.slab, idx),
            Segment::Protected => self.protected.move_to_front(&mut self.slab, idx),
            Segment::Probation => {
                self.probation.unlink(&mut self.slab, idx);
                self.protected.push_front(&mut self.slab, idx);
                self.set_segment(idx, Segment::Protected);
                // Protected's overflow goes back on probation, as the freshest there.
                while self.protected.len() > self.sizes.protected {
                    let Some(demoted) = self.protected.back() else {
                        break;
                    };
                    self.protected.unlink(&mut self.slab, demoted);
                    self.probation.push_front(&mut self.slab, demoted);
                    self.set_segment(demoted, Segment::Probation);
                }
            }
        }
    }

    /// The window is one over its size: its LRU entry moves to the main space or competes
    /// with the main space's victim.
    fn admit_window_victim(&mut self, out: &mut Evictions<K, V>) {
        let Some(candidate) = self.window.back() else {
            return;
        };
        self.window.unlink(&mut self.slab, candidate);
        let main_len = self.probation.len() + self.protected.len();
        if main_len < self.sizes.main {
            self.probation.push_front(&mut self.slab, candidate);
            self.set_segment(candidate, Segment::Probation);
            return;
        }
        let victim = self.probation.back().or(self.protected.back());
        let Some(victim) = victim else {
            // No main space at all (capacity 1): the window is the cache.
            self.drop_entry(candidate, EvictionCause::Capacity, out);
            return;
        };
        let freq = |i: u32| {
            self.slab
                .get(i)
                .map_or(0, |e| self.sketch.frequency(key_hash(&e.key)))
        };
        if freq(candidate) > freq(victim) {
            self.stats.admitted += 1;
            if let Some(segment) = self.slab.get(victim).map(|e| e.segment) {
                self.unlink_from(segment, victim);
            }
            self.drop_entry(victim, EvictionCause::Capacity, out);
            self.probation.push_front(&mut self.slab, candidate);
            self.set_segment(candidate, Segment::Probation);
        } else {
            self.stats.rejected += 1;
            self.drop_entry(candidate, EvictionCause::Rejected, out);
        }
    }

    /// Frees slot `idx`, already unlinked.
    fn drop_entry(&mut self, idx: u32, cause: EvictionCause, out: &mut Evictions<K, V>) {
        if let Some(e) = self.slab.remove(idx) {
            self.map.remove(&e.key);
            out.push(e.key, e.value, cause);
        }
    }
}

impl<K: Hash + Eq + Clone, V> EvictionPolicy<K, V> for TinyLfu<K, V> {
    fn name(&self) -> &'static str {
        "W-TinyLFU"
    }
    fn get(&mut self, key: &K) -> Option<&V> {
        TinyLfu::get(self, key)
    }
    fn peek(&self, key: &K) -> Option<&V> {
        TinyLfu::peek(self, key)
    }
    fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        TinyLfu::put(self, key, value)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        TinyLfu::remove(self, key)
    }
    fn len(&self) -> usize {
        TinyLfu::len(self)
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    /// Protected, then window, then probation, each most recent first.
    fn keys_in_order(&self) -> Vec<K> {
        [Segment::Protected, Segment::Window, Segment::Probation]
            .into_iter()
            .flat_map(|s| self.keys_of(s))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_follow_caffeine() {
        assert_eq!(
            Sizes::of(1),
            Sizes {
                window: 1,
                main: 0,
                protected: 0
            }
        );
        assert_eq!(
            Sizes::of(100),
            Sizes {
                window: 1,
                main: 99,
                protected: 79
            }
        );
        assert_eq!(Sizes::of(1_000).window, 10);
        assert!(
            TinyLfu::<u8, u8>::new(0)
                .unwrap_err()
                .to_string()
                .contains("`capacity`")
        );
    }

    #[test]
    fn a_one_hit_wonder_cannot_push_out_a_frequent_key() {
        let mut c = TinyLfu::new(100).unwrap();
        for k in 0..100u32 {
            c.put(k, k);
        }
        for _ in 0..3 {
            for k in 0..99u32 {
                assert_eq!(c.get(&k), Some(&k));
            }
        }
        // A scan of new keys: each passes through the one-slot window and loses to the
        // frequent victim — unless the sketch overestimates it: a scan key whose four
        // counters each collide with a frequent key's reads as frequent (count-min errs
        // only upwards), here once in 200.
        let mut lost = 0;
        for k in 1_000..1_200u32 {
            lost += c.put(k, k).iter().filter(|e| e.key < 99).count();
        }
        assert!(lost <= 2, "{lost} frequent keys lost to the scan");
        assert!(c.admission().rejected >= 195);
        assert_eq!(
            (0..99u32).filter(|k| c.peek(k).is_some()).count(),
            99 - lost
        );
    }

    #[test]
    fn a_frequent_newcomer_is_admitted_and_a_probation_hit_is_protected() {
        let mut c = TinyLfu::new(100).unwrap();
        for k in 0..100u32 {
            c.put(k, k);
        }
        assert_eq!(c.segment(&50), Some(Segment::Probation));
        c.get(&50);
        assert_eq!(c.segment(&50), Some(Segment::Protected));
        // Key 500 has been asked for often (its puts count).
        for _ in 0..5 {
            c.put(500, 0);
            c.remove(&500);
        }
        let out = c.put(500, 1);
        assert_eq!(c.segment(&500), Some(Segment::Window));
        assert!(out.is_empty());
        let out: Vec<_> = c.put(501, 1).into_iter().collect();
        // 500 left the window for the main space: the victim went instead.
        assert_eq!(c.segment(&500), Some(Segment::Probation));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cause, EvictionCause::Capacity);
        assert_eq!(c.admission().admitted, 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Put(u8, u8),
        Remove(u8),
    }

    proptest! {
        /// Against a map: the cache never holds more than its capacity, returns the last
        /// value put for every key it holds, and every key it lost was reported.
        #[test]
        fn tinylfu_matches_a_map_model(
            cap in 1usize..40,
            ops in proptest::collection::vec(prop_oneof![
                3 => (0u8..60).prop_map(Op::Get),
                3 => (0u8..60, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
                1 => (0u8..60).prop_map(Op::Remove),
            ], 1..400),
        ) {
            let mut c = TinyLfu::new(cap).unwrap();
            let mut m = std::collections::BTreeMap::new();
            for op in ops {
                match op {
                    Op::Get(k) => {
                        let got = c.get(&k).copied();
                        if let Some(v) = got {
                            prop_assert_eq!(Some(v), m.get(&k).copied());
                        }
                    }
                    Op::Remove(k) => {
                        let got = c.remove(&k);
                        prop_assert_eq!(got, m.remove(&k));
                    }
                    Op::Put(k, v) => {
                        let old = m.insert(k, v);
                        for e in c.put(k, v) {
                            match e.cause {
                                EvictionCause::Replaced => {
                                    prop_assert_eq!(Some(e.value), old);
                                    prop_assert_eq!(e.key, k);
                                }
                                _ => prop_assert_eq!(m.remove(&e.key), Some(e.value)),
                            }
                        }
                    }
                }
                prop_assert!(c.len() <= cap);
                prop_assert_eq!(c.len(), m.len());
                let s = c.sizes();
                prop_assert!(c.keys_of(Segment::Window).len() <= s.window);
                prop_assert!(c.keys_of(Segment::Protected).len() <= s.protected);
                prop_assert!(
                    c.keys_of(Segment::Probation).len() + c.keys_of(Segment::Protected).len()
                        <= s.main
                );
                for (k, v) in &m {
                    prop_assert_eq!(c.peek(k), Some(v));
                }
            }
        }
    }
}
