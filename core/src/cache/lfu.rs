//! `cache.lfu`: least frequently used eviction in O(1), with least recently used among
//! equals.
//!
//! Reference: K. Shah, A. Mitra, D. Matani, "An O(1) algorithm for implementing the LFU
//! cache eviction scheme" (2010). Entries with the same access count hang in one list per
//! count (front: most recent); the counts form a list of their own in increasing order, so
//! an access moves an entry to the next count's list (created next to its own if missing,
//! its own dropped when emptied) and the victim is the back of the lowest count's list.
//! Both lists live in index-based slabs ([`super::slab`]).
//!
//! An entry starts at count 1 when put; `get` and a `put` of a present key add 1; `peek`
//! does not. The counts never age: that is LFU's known weakness (a once-hot key stays),
//! which W-TinyLFU's halving sketch answers ([`super::tinylfu`]).

use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::slab::{List, NIL, Slab};
use super::{EvictionCause, EvictionPolicy, Evictions, check_capacity};
use crate::error::Result;

#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
    /// Slot of its count's bucket.
    bucket: u32,
}

/// The entries accessed `count` times.
#[derive(Debug, Clone)]
struct Bucket {
    count: u64,
    entries: List,
}

/// An O(1) LFU cache of at most `capacity` entries.
#[derive(Debug, Clone)]
pub struct Lfu<K, V> {
    map: FxHashMap<K, u32>,
    entries: Slab<Entry<K, V>>,
    buckets: Slab<Bucket>,
    /// Buckets by increasing count (front: the lowest).
    counts: List,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Lfu<K, V> {
    /// An LFU holding at most `capacity` entries (1 to [`super::MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(Lfu {
            map: FxHashMap::default(),
            entries: Slab::default(),
            buckets: Slab::default(),
            counts: List::default(),
            capacity: check_capacity("capacity", capacity)?,
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

    /// How many times `key` was accessed while cached (its put included).
    pub fn frequency(&self, key: &K) -> Option<u64> {
        let e = self.entries.get(*self.map.get(key)?)?;
        Some(self.buckets.get(e.bucket)?.count)
    }

    /// The value under `key`, its count raised by one.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        self.bump(idx);
        self.entries.get(idx).map(|e| &e.value)
    }

    /// The value under `key`, its count untouched.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(*self.map.get(key)?).map(|e| &e.value)
    }

    /// Stores `value` under `key`: a new key enters with count 1 after evicting the least
    /// frequently used entry (least recent among equals) if full; a present key's value is
    /// replaced and its count raised.
    pub fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        let mut out = Evictions::default();
        if let Some(&idx) = self.map.get(&key) {
            if let Some(e) = self.entries.get_mut(idx) {
                let old = std::mem::replace(&mut e.value, value);
                out.push(key, old, EvictionCause::Replaced);
            }
            self.bump(idx);
            return out;
        }
        if self.map.len() >= self.capacity {
            self.evict(&mut out);
        }
        // The bucket of count 1 is the lowest if it exists.
        let first = self
            .counts
            .front()
            .filter(|&b| self.buckets.get(b).is_some_and(|b| b.count == 1));
        let bucket = match first {
            Some(b) => b,
            None => {
                let Some(b) = self.buckets.insert(Bucket {
                    count: 1,
                    entries: List::default(),
                }) else {
                    return out;
                };
                self.counts.push_front(&mut self.buckets, b);
                b
            }
        };
        let Some(idx) = self.entries.insert(Entry {
            key: key.clone(),
            value,
            bucket,
        }) else {
            return out;
        };
        self.link(bucket, idx);
        self.map.insert(key, idx);
        out
    }

    /// Takes `key` out, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let idx = self.map.remove(key)?;
        self.unlink(idx);
        self.entries.remove(idx).map(|e| e.value)
    }

    /// Entries from the next to go to the last: increasing count, least recent first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, u64)> {
        self.counts.iter(&self.buckets).flat_map(move |b| {
            let (count, list) = self
                .buckets
                .get(b)
                .map_or((0, List::default()), |b| (b.count, b.entries));
            let order: Vec<u32> = list.iter(&self.entries).collect();
            order
                .into_iter()
                .rev()
                .filter_map(move |i| self.entries.get(i).map(|e| (&e.key, &e.value, count)))
        })
    }

    /// `(count, entries with that count)` from the lowest count up.
    pub fn bucket_sizes(&self) -> Vec<(u64, usize)> {
        self.counts
            .iter(&self.buckets)
            .filter_map(|b| self.buckets.get(b).map(|b| (b.count, b.entries.len())))
            .collect()
    }

    fn link(&mut self, bucket: u32, idx: u32) {
        if let Some(b) = self.buckets.get_mut(bucket) {
            let mut list = b.entries;
            list.push_front(&mut self.entries, idx);
            b.entries = list;
        }
        if let Some(e) = self.entries.get_mut(idx) {
            e.bucket = bucket;
        }
    }

    /// Takes entry `idx` out of its bucket, dropping the bucket if it empties.
    fn unlink(&mut self, idx: u32) {
        let Some(bucket) = self.entries.get(idx).map(|e| e.bucket) else {
            return;
        };
        let Some(b) = self.buckets.get_mut(bucket) else {
            return;
        };
        let mut list = b.entries;
        list.unlink(&mut self.entries, idx);
        b.entries = list;
        if list.is_empty() {
            self.counts.unlink(&mut self.buckets, bucket);
            self.buckets.remove(bucket);
        }
        if let Some(e) = self.entries.get_mut(idx) {
            e.bucket = NIL;
        }
    }

    /// Moves entry `idx` to the bucket of its count + 1.
    fn bump(&mut self, idx: u32) {
        let Some(bucket) = self.entries.get(idx).map(|e| e.bucket) else {
            return;
        };
        let Some(count) = self.buckets.get(bucket).map(|b| b.count) else {
            return;
        };
        let next_count = count.saturating_add(1);
        if next_count == count {
            // Saturated: only its recency changes.
            if let Some(b) = self.buckets.get_mut(bucket) {
                let mut list = b.entries;
                list.move_to_front(&mut self.entries, idx);
                b.entries = list;
            }
            return;
        }
        let next = self
            .counts
            .next(&self.buckets, bucket)
            .filter(|&n| self.buckets.get(n).is_some_and(|b| b.count == next_count));
        let target = match next {
            Some(n) => n,
            None => {
                let Some(n) = self.buckets.insert(Bucket {
                    count: next_count,
                    entries: List::default(),
                }) else {
                    return;
                };
                self.counts.insert_after(&mut self.buckets, bucket, n);
                n
            }
        };
        // Unlinking may drop the old bucket; the new one is already linked after it.
        self.unlink(idx);
        self.link(target, idx);
    }

    fn evict(&mut self, out: &mut Evictions<K, V>) {
        let Some(victim) = self
            .counts
            .front()
            .and_then(|b| self.buckets.get(b))
            .and_then(|b| b.entries.back())
        else {
            return;
        };
        self.unlink(victim);
        if let Some(e) = self.entries.remove(victim) {
            self.map.remove(&e.key);
            out.push(e.key, e.value, EvictionCause::Capacity);
        }
    }
}

impl<K: Hash + Eq + Clone, V> EvictionPolicy<K, V> for Lfu<K, V> {
    fn name(&self) -> &'static str {
        "LFU"
    }
    fn get(&mut self, key: &K) -> Option<&V> {
        Lfu::get(self, key)
    }
    fn peek(&self, key: &K) -> Option<&V> {
        Lfu::peek(self, key)
    }
    fn put(&mut self, key: K, value: V) -> Evictions<K, V> {
        Lfu::put(self, key, value)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        Lfu::remove(self, key)
    }
    fn len(&self) -> usize {
        Lfu::len(self)
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    /// Most to keep first, next to go last.
    fn keys_in_order(&self) -> Vec<K> {
        let mut keys: Vec<K> = self.iter().map(|(k, _, _)| k.clone()).collect();
        keys.reverse();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_least_frequent_goes_and_recency_breaks_ties() {
        let mut l = Lfu::new(3).unwrap();
        l.put('a', 1);
        l.put('b', 2);
        l.put('c', 3);
        l.get(&'a');
        l.get(&'a');
        l.get(&'c');
        // Counts: a 3, b 1, c 2.
        assert_eq!(l.bucket_sizes(), [(1, 1), (2, 1), (3, 1)]);
        let out: Vec<char> = l.put('d', 4).into_iter().map(|e| e.key).collect();
        assert_eq!(out, ['b']);
        // d (1) is now the least frequent; after e arrives, d and e tie at 1 and d is older.
        assert_eq!(l.put('e', 5).into_iter().next().map(|e| e.key), Some('d'));
        l.get(&'e');
        assert_eq!(l.frequency(&'e'), Some(2));
        // e and c tie at 2: c was used longer ago.
        assert_eq!(l.put('f', 6).into_iter().next().map(|e| e.key), Some('c'));
        assert_eq!(l.peek(&'f'), Some(&6));
        assert_eq!(l.frequency(&'f'), Some(1), "peek does not count");
        let order: Vec<char> = l.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(order, ['f', 'e', 'a']);
    }

    #[test]
    fn remove_drops_empty_buckets_and_put_again_counts() {
        let mut l = Lfu::new(2).unwrap();
        l.put(1, 1);
        l.get(&1);
        assert_eq!(l.remove(&1), Some(1));
        assert!(l.bucket_sizes().is_empty());
        l.put(2, 2);
        let out = l.put(2, 3);
        assert_eq!(out.count(EvictionCause::Replaced), 1);
        assert_eq!(l.frequency(&2), Some(2));
        assert!(
            Lfu::<u8, u8>::new(0)
                .unwrap_err()
                .to_string()
                .contains("`capacity`")
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Peek(u8),
        Put(u8, u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..10).prop_map(Op::Get),
            1 => (0u8..10).prop_map(Op::Peek),
            3 => (0u8..10, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            1 => (0u8..10).prop_map(Op::Remove),
        ]
    }

    /// The counting model: key → (value, count, last use); the victim is the least count,
    /// then the oldest last use.
    #[derive(Default)]
    struct Model {
        m: std::collections::BTreeMap<u8, (u8, u64, u64)>,
        clock: u64,
    }

    proptest! {
        #[test]
        fn lfu_matches_a_counting_model(
            cap in 1usize..6,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut lfu = Lfu::new(cap).unwrap();
            let mut m = Model::default();
            for op in ops {
                m.clock += 1;
                let now = m.clock;
                match op {
                    Op::Get(k) => {
                        let want = m.m.get_mut(&k).map(|e| { e.1 += 1; e.2 = now; e.0 });
                        prop_assert_eq!(lfu.get(&k).copied(), want);
                    }
                    Op::Peek(k) => prop_assert_eq!(lfu.peek(&k).copied(), m.m.get(&k).map(|e| e.0)),
                    Op::Remove(k) => prop_assert_eq!(lfu.remove(&k), m.m.remove(&k).map(|e| e.0)),
                    Op::Put(k, v) => {
                        let mut want = Vec::new();
                        if let Some(e) = m.m.get_mut(&k) {
                            want.push((k, e.0, EvictionCause::Replaced));
                            *e = (v, e.1 + 1, now);
                        } else {
                            if m.m.len() >= cap {
                                let (&vk, &(vv, _, _)) =
                                    m.m.iter().min_by_key(|(_, e)| (e.1, e.2)).unwrap();
                                m.m.remove(&vk);
                                want.push((vk, vv, EvictionCause::Capacity));
                            }
                            m.m.insert(k, (v, 1, now));
                        }
                        let got: Vec<_> =
                            lfu.put(k, v).into_iter().map(|e| (e.key, e.value, e.cause)).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(lfu.len(), m.m.len());
                for (k, e) in &m.m {
                    prop_assert_eq!(lfu.frequency(k), Some(e.1));
                }
            }
        }
    }
}
