//! `cache.lru`: least recently used eviction, bounded by entry count and optionally by total
//! weight. O(1) `get`, `put`, `remove` and `peek`: a hash map from key to slot and one
//! recency list through an index-based slab ([`super::slab`]) — the layout of the `lru`
//! crate and of `quick_cache` without raw pointers.
//!
//! Reference: the LRU replacement policy as analysed by Sleator & Tarjan, "Amortized
//! efficiency of list update and paging rules" (CACM 1985); weights follow Caffeine's
//! `maximumWeight` (an entry may weigh 0; one heavier than the whole cache is refused).
//!
//! `get` promotes the entry to most recent; `peek` does not. A `put` returns the entries it
//! pushed out, least recent first, and the old value when the key was present.

use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::slab::{List, Slab};
use super::{EvictionCause, EvictionPolicy, Evictions, check_capacity};
use crate::error::{DistlabError, Result};

#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
}

/// An LRU cache of at most `max_entries` entries weighing at most `max_weight` together.
#[derive(Debug, Clone)]
pub struct Lru<K, V> {
    map: FxHashMap<K, u32>,
    slab: Slab<Entry<K, V>>,
    /// Each slot's weight, beside the slab rather than in it: a hit touches only its node,
    /// which stays 32 bytes for 8-byte keys and values (one cache line holds two).
    weights: Vec<u64>,
    /// Front: most recently used.
    order: List,
    max_entries: usize,
    max_weight: u64,
    weight: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An LRU holding at most `max_entries` entries (1 to [`super::MAX_CAPACITY`]), every
    /// entry weighing 1 unless put with [`Lru::put_weighted`].
    pub fn new(max_entries: usize) -> Result<Self> {
        Self::weighted(max_entries, u64::MAX)
    }

    /// An LRU of `max_entries` clamped to 1 ..= [`super::MAX_CAPACITY`], for a caller
    /// that checked its capacity already and cannot fail (a simulated node's `recover`).
    pub fn clamped(max_entries: usize) -> Self {
        Lru {
            map: FxHashMap::default(),
            slab: Slab::default(),
            weights: Vec::new(),
            order: List::default(),
            max_entries: max_entries.clamp(1, super::MAX_CAPACITY),
            max_weight: u64::MAX,
            weight: 0,
        }
    }

    /// An LRU bounded by count and by total weight (`max_weight` ≥ 1).
    pub fn weighted(max_entries: usize, max_weight: u64) -> Result<Self> {
        let max_entries = check_capacity("maxEntries", max_entries)?;
        if max_weight == 0 {
            return Err(DistlabError::field(
                "maxWeight",
                "must be at least 1, got 0",
            ));
        }
        Ok(Lru {
            map: FxHashMap::default(),
            slab: Slab::default(),
            weights: Vec::new(),
            order: List::default(),
            max_entries,
            max_weight,
            weight: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn max_weight(&self) -> u64 {
        self.max_weight
    }

    /// The total weight held.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// The value under `key`, made most recently used.
    #[inline]
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        self.order.move_to_front(&mut self.slab, idx);
        self.slab.get(idx).map(|e| &e.value)
    }

    /// The value under `key`, made most recently used, to change in place.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let idx = *self.map.get(key)?;
        self.order.move_to_front(&mut self.slab, idx);
        self.slab.get_mut(idx).map(|e| &mut e.value)
    }

    /// The value under `key`, its recency untouched.
    #[inline]
    pub fn peek(&self, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        self.slab.get(idx).map(|e| &e.value)
    }

    /// The entry that would go next, without touching it.
    pub fn peek_lru(&self) -> Option<(&K, &V)> {
        let e = self.slab.get(self.order.back()?)?;
        Some((&e.key, &e.value))
    }

    /// Stores `value` under `key` with weight 1, most recently used.
    #[inline]
    pub fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        let mut out = Evictions::default();
        self.insert(key, value, 1, &mut out);
        out
    }

    /// Stores `value` under `key` with `weight` (0 to `maxWeight`), most recently used,
    /// evicting least recently used entries until count and weight fit.
    pub fn put_weighted(&mut self, key: K, value: V, weight: u64) -> Result<Evictions<K, V>> {
        if weight > self.max_weight {
            return Err(DistlabError::field(
                "weight",
                format!(
                    "{weight} exceeds the cache's maxWeight {}: it could never fit",
                    self.max_weight
                ),
            ));
        }
        let mut out = Evictions::default();
        self.insert(key, value, weight, &mut out);
        Ok(out)
    }

    /// `weight` ≤ `max_weight` (checked by the callers).
    #[inline]
    fn insert(&mut self, key: K, value: V, weight: u64, out: &mut Evictions<K, V>) {
        if let Some(&idx) = self.map.get(&key) {
            if let Some(e) = self.slab.get_mut(idx) {
                let old = std::mem::replace(&mut e.value, value);
                if let Some(w) = self.weights.get_mut(idx as usize) {
                    self.weight = self.weight - *w + weight;
                    *w = weight;
                }
                out.push(key, old, EvictionCause::Replaced);
            }
            self.order.move_to_front(&mut self.slab, idx);
        } else {
            // Room first, so a full cache reuses the slot it frees.
            while self.map.len() >= self.max_entries
                || self.weight.saturating_add(weight) > self.max_weight
            {
                if !self.evict_lru(out) {
                    break;
                }
            }
            let Some(idx) = self.slab.insert(Entry {
                key: key.clone(),
                value,
            }) else {
                return;
            };
            if self.weights.len() <= idx as usize {
                self.weights.resize(idx as usize + 1, 0);
            }
            if let Some(w) = self.weights.get_mut(idx as usize) {
                *w = weight;
            }
            self.order.push_front(&mut self.slab, idx);
            self.map.insert(key, idx);
            self.weight += weight;
            return;
        }
        // A heavier replacement may push others out; the entry itself fits alone.
        while self.weight > self.max_weight && self.order.len() > 1 {
            if !self.evict_lru(out) {
                break;
            }
        }
    }

    fn evict_lru(&mut self, out: &mut Evictions<K, V>) -> bool {
        let Some(idx) = self.order.back() else {
            return false;
        };
        self.order.unlink(&mut self.slab, idx);
        let Some(e) = self.slab.remove(idx) else {
            return false;
        };
        self.map.remove(&e.key);
        self.weight -= self.weights.get(idx as usize).copied().unwrap_or(0);
        out.push(e.key, e.value, EvictionCause::Capacity);
        true
    }

    /// Takes `key` out, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let idx = self.map.remove(key)?;
        self.order.unlink(&mut self.slab, idx);
        let e = self.slab.remove(idx)?;
        self.weight -= self.weights.get(idx as usize).copied().unwrap_or(0);
        Some(e.value)
    }

    /// Evicts the least recently used entry, if any.
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        let mut out = Evictions::default();
        self.evict_lru(&mut out);
        out.into_iter().next().map(|e| (e.key, e.value))
    }

    /// Entries from most to least recently used.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.order
            .iter(&self.slab)
            .filter_map(|i| self.slab.get(i).map(|e| (&e.key, &e.value)))
    }
}

impl<K: Hash + Eq + Clone, V> EvictionPolicy<K, V> for Lru<K, V> {
    fn name(&self) -> &'static str {
        "LRU"
    }
    fn get(&mut self, key: &K) -> Option<&V> {
        Lru::get(self, key)
    }
    fn peek(&self, key: &K) -> Option<&V> {
        Lru::peek(self, key)
    }
    fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        Lru::put(self, key, value)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        Lru::remove(self, key)
    }
    fn len(&self) -> usize {
        Lru::len(self)
    }
    fn capacity(&self) -> usize {
        self.max_entries
    }
    fn keys_in_order(&self) -> Vec<K> {
        self.iter().map(|(k, _)| k.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Evicted;
    use proptest::prelude::*;

    fn keys(l: &Lru<u32, u32>) -> Vec<u32> {
        l.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn get_promotes_and_peek_does_not() {
        let mut l = Lru::new(3).unwrap();
        for k in 0..3 {
            assert!(l.put(k, k * 10).is_empty());
        }
        assert_eq!(l.get(&0), Some(&0));
        assert_eq!(l.peek(&1), Some(&10));
        let out: Vec<_> = l.put(3, 30).into_iter().collect();
        assert_eq!(
            out,
            [Evicted {
                key: 1,
                value: 10,
                cause: EvictionCause::Capacity
            }]
        );
        assert_eq!(keys(&l), [3, 0, 2]);
    }

    #[test]
    fn put_again_replaces_and_reports_the_old_value() {
        let mut l = Lru::new(2).unwrap();
        l.put(1, 1);
        l.put(2, 2);
        let out: Vec<_> = l.put(1, 11).into_iter().collect();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].value, out[0].cause), (1, EvictionCause::Replaced));
        assert_eq!(keys(&l), [1, 2]);
        assert_eq!(l.remove(&2), Some(2));
        assert_eq!(l.remove(&2), None);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn weight_bounds_evict_several_and_refuse_the_impossible() {
        let mut l = Lru::weighted(10, 10).unwrap();
        for k in 0..5 {
            l.put_weighted(k, k, 2).unwrap();
        }
        assert_eq!(l.weight(), 10);
        let out = l.put_weighted(9, 9, 5).unwrap();
        let gone: Vec<u32> = out.into_iter().map(|e| e.key).collect();
        assert_eq!(gone, [0, 1, 2]);
        assert_eq!(l.weight(), 9);
        // Growing an entry in place pushes the others out, never the entry itself.
        let out = l.put_weighted(9, 99, 10).unwrap();
        assert_eq!(out.count(EvictionCause::Capacity), 2);
        assert_eq!((l.len(), l.weight()), (1, 10));
        let e = l.put_weighted(1, 1, 11).unwrap_err();
        assert!(e.to_string().contains("`weight`"), "{e}");
        assert_eq!(l.len(), 1, "a refused put changes nothing");
        // Weight 0 is free, bounded by count only.
        assert!(l.put_weighted(2, 2, 0).unwrap().is_empty());
    }

    #[test]
    fn constructors_name_the_bad_field() {
        for (r, field) in [
            (Lru::<u32, u32>::new(0).map(|_| ()), "maxEntries"),
            (Lru::<u32, u32>::weighted(1, 0).map(|_| ()), "maxWeight"),
        ] {
            let e = r.unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        assert_eq!(Lru::<u32, u32>::clamped(0).max_entries(), 1);
        assert_eq!(
            Lru::<u32, u32>::clamped(usize::MAX).max_entries(),
            super::super::MAX_CAPACITY
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Peek(u8),
        Put(u8, u8, u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12).prop_map(Op::Get),
            (0u8..12).prop_map(Op::Peek),
            (0u8..12, any::<u8>(), 0u8..5).prop_map(|(k, v, w)| Op::Put(k, v, w)),
            (0u8..12).prop_map(Op::Remove),
        ]
    }

    /// The reference model: a Vec of (key, value, weight), most recent first.
    #[derive(Default)]
    struct Model {
        v: Vec<(u8, u8, u64)>,
    }

    impl Model {
        fn touch(&mut self, k: u8) -> Option<u8> {
            let i = self.v.iter().position(|e| e.0 == k)?;
            let e = self.v.remove(i);
            self.v.insert(0, e);
            Some(e.1)
        }
        fn weight(&self) -> u64 {
            self.v.iter().map(|e| e.2).sum()
        }
    }

    proptest! {
        #[test]
        fn lru_matches_a_vec_model(
            cap in 1usize..6,
            max_weight in 1u64..12,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut lru = Lru::weighted(cap, max_weight).unwrap();
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Get(k) => prop_assert_eq!(lru.get(&k).copied(), m.touch(k)),
                    Op::Peek(k) => prop_assert_eq!(
                        lru.peek(&k).copied(),
                        m.v.iter().find(|e| e.0 == k).map(|e| e.1)
                    ),
                    Op::Remove(k) => {
                        let i = m.v.iter().position(|e| e.0 == k);
                        prop_assert_eq!(lru.remove(&k), i.map(|i| m.v.remove(i).1));
                    }
                    Op::Put(k, v, w) => {
                        let got = lru.put_weighted(k, v, w.into());
                        if u64::from(w) > max_weight {
                            prop_assert!(got.is_err());
                            continue;
                        }
                        let mut want = Vec::new();
                        if let Some(i) = m.v.iter().position(|e| e.0 == k) {
                            let old = m.v.remove(i);
                            want.push((k, old.1, EvictionCause::Replaced));
                            m.v.insert(0, (k, v, w.into()));
                            while m.weight() > max_weight && m.v.len() > 1 {
                                let e = m.v.pop().unwrap();
                                want.push((e.0, e.1, EvictionCause::Capacity));
                            }
                        } else {
                            while !m.v.is_empty()
                                && (m.v.len() >= cap || m.weight() + u64::from(w) > max_weight)
                            {
                                let e = m.v.pop().unwrap();
                                want.push((e.0, e.1, EvictionCause::Capacity));
                            }
                            m.v.insert(0, (k, v, w.into()));
                        }
                        let got: Vec<_> =
                            got.unwrap().into_iter().map(|e| (e.key, e.value, e.cause)).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                let keys: Vec<u8> = lru.iter().map(|(k, _)| *k).collect();
                let want: Vec<u8> = m.v.iter().map(|e| e.0).collect();
                prop_assert_eq!(keys, want);
                prop_assert_eq!(lru.weight(), m.weight());
                prop_assert!(lru.len() <= cap && lru.weight() <= max_weight);
            }
        }
    }
}
