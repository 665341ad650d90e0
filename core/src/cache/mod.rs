//! Caches: the eviction policies (`cache.lru`, `cache.lfu`, `cache.ttl`, `cache.tinylfu`),
//! each an O(1) structure over one index-based slab ([`slab`]), and their labs.
//!
//! Every policy reports what leaves it: a `put` returns the [`Evictions`] it caused (the
//! entries pushed out for room, a value replaced under the same key, a candidate W-TinyLFU
//! refused), so a caller can write back, count or log them. Keys are hashed with
//! `rustc_hash`'s fixed hasher, so the same operations give the same state on every
//! platform.

pub mod distributed;
pub mod frequency_sketch;
pub mod lab;
pub mod lfu;
pub mod lru;
pub mod multilevel;
pub mod patterns;
pub mod slab;
pub mod staleness;
pub mod stampede;
pub mod stampede_lab;
pub mod tinylfu;
pub mod ttl;
pub mod ttl_lab;

pub use lfu::Lfu;
pub use lru::Lru;
pub use tinylfu::TinyLfu;
pub use ttl::TtlCache;

use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::error::{DistlabError, Result};

/// Why an entry left a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EvictionCause {
    /// Pushed out to make room (count or weight).
    Capacity,
    /// Its key was put again: this is the old value.
    Replaced,
    /// Its time to live ran out.
    Expired,
    /// W-TinyLFU's admission filter judged it less frequent than the main space's victim.
    Rejected,
}

/// One entry that left a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted<K, V> {
    pub key: K,
    pub value: V,
    pub cause: EvictionCause,
}

/// The entries one operation pushed out, oldest first. Holds the first inline: a full
/// cache's `put` evicts exactly one entry by count, and that costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evictions<K, V> {
    first: Option<Evicted<K, V>>,
    rest: Vec<Evicted<K, V>>,
}

impl<K, V> Default for Evictions<K, V> {
    fn default() -> Self {
        Evictions {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<K, V> Evictions<K, V> {
    pub fn push(&mut self, key: K, value: V, cause: EvictionCause) {
        let e = Evicted { key, value, cause };
        if self.first.is_none() {
            self.first = Some(e);
        } else {
            self.rest.push(e);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Evicted<K, V>> {
        self.first.iter().chain(self.rest.iter())
    }

    /// How many left for `cause`.
    pub fn count(&self, cause: EvictionCause) -> usize {
        self.iter().filter(|e| e.cause == cause).count()
    }
}

impl<K, V> IntoIterator for Evictions<K, V> {
    type Item = Evicted<K, V>;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<Evicted<K, V>>, std::vec::IntoIter<Evicted<K, V>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// What the count-bounded policies (LRU, LFU, W-TinyLFU) share, so a trace can be played
/// through any of them (the labs, the hit-ratio tables).
pub trait EvictionPolicy<K, V> {
    /// A short name ("LRU").
    fn name(&self) -> &'static str;
    /// The value under `key`, counted as an access (it promotes the entry).
    fn get(&mut self, key: &K) -> Option<&V>;
    /// The value under `key`, without touching the policy's state.
    fn peek(&self, key: &K) -> Option<&V>;
    /// Stores `value` under `key`; returns what left the cache.
    fn put(&mut self, key: K, value: V) -> Evictions<K, V>;
    /// Takes `key` out.
    fn remove(&mut self, key: &K) -> Option<V>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The most entries it holds.
    fn capacity(&self) -> usize;
    /// The keys it holds, in the policy's own order (next to go last), for views and tests.
    fn keys_in_order(&self) -> Vec<K>;
}

/// The largest capacity any policy here takes (slab indices are `u32`).
pub const MAX_CAPACITY: usize = slab::MAX_SLOTS;

/// `capacity` if it is from 1 to [`MAX_CAPACITY`], else an error naming `field`.
pub fn check_capacity(field: &str, capacity: usize) -> Result<usize> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(DistlabError::field(
            field,
            format!("must be between 1 and {MAX_CAPACITY}, got {capacity}"),
        ));
    }
    Ok(capacity)
}

/// A key's 64-bit hash: `FxHasher` (fixed, so the same on every platform) finished with
/// a SplitMix64 mix, because Fx leaves small integer keys' entropy in the low bits and the
/// frequency sketch takes several indices from one hash.
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    mix64(h.finish())
}

/// SplitMix64's finaliser (Steele, Lea & Flood 2014): every input bit reaches every output
/// bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_keep_order_and_count_causes() {
        let mut e = Evictions::default();
        assert!(e.is_empty());
        e.push(1, "a", EvictionCause::Capacity);
        e.push(2, "b", EvictionCause::Replaced);
        e.push(3, "c", EvictionCause::Capacity);
        assert_eq!(e.len(), 3);
        assert_eq!(e.count(EvictionCause::Capacity), 2);
        let keys: Vec<i32> = e.into_iter().map(|x| x.key).collect();
        assert_eq!(keys, [1, 2, 3]);
    }

    #[test]
    fn capacity_is_checked_by_name() {
        assert!(check_capacity("capacity", 1).is_ok());
        let e = check_capacity("capacity", 0).unwrap_err();
        assert!(e.to_string().contains("`capacity`"), "{e}");
        assert!(check_capacity("capacity", MAX_CAPACITY + 1).is_err());
    }
}
