//! The keyed limiter's hash index: key → slot number in 4 bytes a bucket. The keys live
//! once, in the slots; the index holds only slot numbers and reads a slot's key when it
//! must compare or rehash. That halves the index of a `u64`-keyed limiter against a map of
//! (key, slot) pairs and keeps a second copy of every key out of memory.
//!
//! Open addressing with linear probing (Knuth, TAOCP vol. 3, §6.4, algorithm L) and
//! deletion by backward shift (algorithm R), so no tombstones accumulate under the
//! limiter's steady churn of evictions and arrivals. The table is any size, not only a
//! power of two: a bucket is chosen by Lemire's multiply-shift range reduction of a 64-bit
//! Fx hash (deterministic, as the core requires), which is what lets the table grow by
//! half rather than double, and stop growing at what `max_keys` needs.
//!
//! Load: at most 3/5 (an unsuccessful probe then reads 3.6 buckets on average, a
//! successful one 2); right after growing, 2/5. So the index costs 6.7 to 10 bytes per
//! key, and 16.7 at the moment it grows (the old and the new table both allocated).
//!
//! Complexity: O(1) expected per operation; growing is O(n), amortised O(1).

use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

/// An empty bucket.
const EMPTY: u32 = u32::MAX;
/// The smallest table allocated.
const MIN_BUCKETS: usize = 8;

/// Slot numbers by hash; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlotIndex {
    buckets: Vec<u32>,
    len: usize,
}

/// The hash every key is placed by.
#[inline]
pub(crate) fn hash_key<K: Hash + ?Sized>(key: &K) -> u64 {
    spread(FxBuildHasher.hash_one(key))
}

/// Carries a hash's entropy into its high bits, which is where [`SlotIndex`]'s range
/// reduction reads it. Fx hashes in `usize`, so on wasm32 its `u64` has the high 32 bits
/// zero, and without this every key there started its probe at bucket 0: each operation
/// scanned the whole run, and a hundred thousand keys took the browser 40 s instead of
/// milliseconds. A multiply by an odd constant (Knuth's multiplicative hashing, 2^64/φ)
/// is a bijection, so nothing collides that did not already.
#[inline]
fn spread(hash: u64) -> u64 {
    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Buckets needed to hold `n` slot numbers at the highest load, 3/5.
fn buckets_for(n: usize) -> usize {
    (n.saturating_mul(5).div_ceil(3)).max(MIN_BUCKETS)
}

impl SlotIndex {
    pub(crate) fn new() -> Self {
        SlotIndex::default()
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<u32>()
    }

    /// Buckets allocated.
    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// The slot number whose key `is_key` recognises, among those placed by `hash`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        self.bucket_of(hash, is_key).map(|b| self.buckets[b])
    }

    fn bucket_of(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut b = self.home(hash);
        loop {
            match self.buckets[b] {
                EMPTY => return None,
                s if is_key(s) => return Some(b),
                _ => b = self.next(b),
            }
        }
    }

    /// Adds `slot`, whose key is placed by `hash` and is not in the index yet. `hash_of`
    /// gives the hash of any slot already indexed (for moving them when the table grows);
    /// `most` is the most slot numbers the index will ever hold, so the table never grows
    /// past what that needs.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        slot: u32,
        most: usize,
        hash_of: impl Fn(u32) -> u64,
    ) {
        if (self.len + 1) * 5 > self.buckets.len() * 3 {
            let grown = (self.buckets.len() + self.buckets.len() / 2).min(buckets_for(most));
            self.rebuild(buckets_for(self.len + 1).max(grown), &hash_of);
        }
        self.place(hash, slot);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, slot: u32) {
        let mut b = self.home(hash);
        while self.buckets[b] != EMPTY {
            b = self.next(b);
        }
        self.buckets[b] = slot;
    }

    fn rebuild(&mut self, buckets: usize, hash_of: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(hash_of(s), s);
        }
    }

    /// Removes `slot`, placed by `hash`; later entries of its run move back into the hole
    /// (each to the first free bucket at or after its home), so lookups still find them.
    /// Returns whether it was there.
    pub(crate) fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        let Some(mut hole) = self.bucket_of(hash, |s| s == slot) else {
            return false;
        };
        let n = self.buckets.len();
        let mut b = self.next(hole);
        while self.buckets[b] != EMPTY {
            let s = self.buckets[b];
            let home = self.home(hash_of(s));
            // The entry may move back to the hole unless its home lies cyclically in
            // (hole, b]: then the hole is before its home, where a lookup never looks.
            let dist_home = (b + n - home) % n;
            let dist_hole = (b + n - hole) % n;
            if dist_home >= dist_hole {
                self.buckets[hole] = s;
                hole = b;
            }
            b = self.next(b);
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Renames `from` (placed by `hash`) to `to`, in place.
    pub(crate) fn renumber(&mut self, hash: u64, from: u32, to: u32) {
        if let Some(b) = self.bucket_of(hash, |s| s == from) {
            self.buckets[b] = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Against a BTreeMap, with a hash of few values so runs collide and wrap, and
        /// removals shift entries back: every key is found exactly while indexed.
        #[test]
        fn matches_a_map(ops in proptest::collection::vec((0u32..60, any::<bool>()), 1..400), spread in 1u64..8) {
            let hash = |k: u32| (u64::from(k) % spread).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut index = SlotIndex::new();
            let mut model = BTreeMap::new();
            for (key, add) in ops {
                // The slot number is the key itself here, so hash_of is the key's hash.
                if add && !model.contains_key(&key) {
                    index.insert(hash(key), key, 1_000, hash);
                    model.insert(key, ());
                } else if !add {
                    prop_assert_eq!(index.remove(hash(key), key, hash), model.remove(&key).is_some());
                }
                for k in 0..60u32 {
                    prop_assert_eq!(index.find(hash(k), |s| s == k).is_some(), model.contains_key(&k));
                }
                prop_assert!(index.len * 5 <= index.buckets() * 3);
            }
        }
    }

    /// The probes stay short when the hash is only 32 bits wide, as Fx's is on wasm32
    /// (the native suite cannot see that target's hasher, so it feeds such hashes in).
    #[test]
    fn a_32_bit_hash_still_spreads_over_the_table() {
        let keys = 20_000u32;
        for hash32 in [
            |k: u32| u64::from(k),
            |k: u32| u64::from(k.wrapping_mul(0x9E37_79B9)),
        ] {
            let hash = |s: u32| spread(hash32(s));
            let mut index = SlotIndex::new();
            for s in 0..keys {
                index.insert(hash(s), s, usize::MAX, hash);
            }
            // Linear probing at a load of at most 3/5: a successful search reads about 2
            // buckets; a table where every key starts at one bucket reads n/2.
            let mut probes = 0usize;
            for s in 0..keys {
                let mut read = 0usize;
                assert_eq!(
                    index.find(hash(s), |x| {
                        read += 1;
                        x == s
                    }),
                    Some(s)
                );
                probes += read;
            }
            let mean = probes as f64 / f64::from(keys);
            assert!(mean < 3.0, "mean probe length {mean}");
        }
    }

    #[test]
    fn grows_by_half_and_never_past_what_most_needs() {
        let mut index = SlotIndex::new();
        let hash = |s: u32| hash_key(&s);
        for s in 0..1_000u32 {
            index.insert(hash(s), s, 1_000, hash);
        }
        assert_eq!(index.buckets(), buckets_for(1_000));
        assert_eq!(index.bytes(), buckets_for(1_000) * 4);
        let mut unbounded = SlotIndex::new();
        for s in 0..1_000u32 {
            unbounded.insert(hash(s), s, usize::MAX, hash);
        }
        assert!(
            unbounded.buckets() * 2 <= 1_000 * 5,
            "{}",
            unbounded.buckets()
        );
        for s in 0..1_000u32 {
            assert_eq!(unbounded.find(hash(s), |x| x == s), Some(s));
        }
        unbounded.renumber(hash(7), 7, 70_000);
        assert_eq!(unbounded.find(hash(7), |x| x == 70_000), Some(70_000));
    }
}
