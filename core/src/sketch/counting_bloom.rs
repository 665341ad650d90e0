//! A counting Bloom filter (Fan, Cao, Almeida & Broder, "Summary Cache", SIGCOMM 1998):
//! a Bloom filter whose bits are 4-bit counters, so a key can be deleted by decrementing
//! its counters. Four bits suffice in practice (a counter passes 15 with probability
//! about 1.37·10^−15·m at the optimal load); one that reaches 15 saturates — it is never
//! incremented past 15 nor decremented again, since its true count is no longer known —
//! so an overflow can cost a false positive but never a false negative.
//!
//! Insert, delete and query are O(k); counters are packed two per byte.

use crate::alloc;
use crate::error::Result;
use crate::sketch::bloom::{check_shape, optimal_bits, optimal_hashes};
use crate::sketch::hash::DoubleHash;

/// The largest counter: four bits.
pub const COUNTER_MAX: u8 = 15;
/// The most counters: 2^32 (2 GiB).
pub const MAX_COUNTERS: u64 = 1 << 32;

/// A counting Bloom filter with 4-bit saturating counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountingBloom {
    /// Counter `i` is the low nibble of byte `i/2` when `i` is even, the high one else.
    nibbles: Vec<u8>,
    counters: u64,
    hashes: u32,
    /// Keys inserted minus keys deleted.
    items: u64,
    /// Increments that found their counter at 15 (each a saturation).
    saturations: u64,
}

impl CountingBloom {
    /// `counters` 4-bit counters, `hashes` probes per key (errors name `bits` or
    /// `hashes`).
    pub fn new(counters: u64, hashes: u32) -> Result<Self> {
        check_shape(counters, hashes, MAX_COUNTERS)?;
        Ok(CountingBloom {
            nibbles: alloc::filled(counters.div_ceil(2) as usize, 0, "counters")?,
            counters,
            hashes,
            items: 0,
            saturations: 0,
        })
    }

    /// The optimal shape for `expected_items` keys at `false_positive_rate`, as for a
    /// Bloom filter (one counter per bit).
    pub fn with_rate(expected_items: u64, false_positive_rate: f64) -> Result<Self> {
        let m = optimal_bits(expected_items, false_positive_rate)?;
        CountingBloom::new(m, optimal_hashes(m, expected_items))
    }

    pub fn counters(&self) -> u64 {
        self.counters
    }

    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// Keys inserted and not deleted.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Increments that met a counter already at 15.
    pub fn saturations(&self) -> u64 {
        self.saturations
    }

    /// Counter `i` (0 past the end).
    pub fn counter(&self, i: u64) -> u8 {
        if i >= self.counters {
            return 0;
        }
        let byte = self.nibbles[(i / 2) as usize];
        if i.is_multiple_of(2) {
            byte & 0x0f
        } else {
            byte >> 4
        }
    }

    fn set_counter(&mut self, i: u64, v: u8) {
        let byte = &mut self.nibbles[(i / 2) as usize];
        *byte = if i.is_multiple_of(2) {
            (*byte & 0xf0) | v
        } else {
            (*byte & 0x0f) | (v << 4)
        };
    }

    /// The counter positions `key` probes (a position may repeat; it is then counted
    /// once per probe, on insert and delete alike).
    pub fn positions(&self, key: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let h = DoubleHash::of(key);
        let n = self.counters;
        (0..u64::from(self.hashes)).map(move |i| h.probe(i, n))
    }

    /// Adds `key`: each of its counters goes up by one, or stays at 15.
    pub fn insert(&mut self, key: &[u8]) {
        for i in self.positions(key) {
            let c = self.counter(i);
            if c == COUNTER_MAX {
                self.saturations += 1;
            } else {
                self.set_counter(i, c + 1);
            }
        }
        self.items += 1;
    }

    /// Whether `key` may be present (every counter non-zero).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.positions(key).all(|i| self.counter(i) > 0)
    }

    /// Deletes `key` if it may be present, returning whether it did; a key the filter
    /// says is absent was never inserted, and deleting it would corrupt others, so it
    /// changes nothing. Saturated counters stay at 15.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        if !self.contains(key) {
            return false;
        }
        for i in self.positions(key) {
            let c = self.counter(i);
            if c != COUNTER_MAX {
                self.set_counter(i, c - 1);
            }
        }
        self.items = self.items.saturating_sub(1);
        true
    }

    /// Counters that are not zero.
    pub fn nonzero_counters(&self) -> u64 {
        (0..self.counters).filter(|&i| self.counter(i) > 0).count() as u64
    }

    pub fn memory_bytes(&self) -> usize {
        self.nibbles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delete_undoes_insert() {
        let mut f = CountingBloom::with_rate(100, 0.01).unwrap();
        let empty = f.clone();
        f.insert(b"a");
        f.insert(b"b");
        assert!(f.contains(b"a") && f.contains(b"b"));
        assert!(f.remove(b"a"));
        assert!(f.remove(b"b"));
        assert_eq!(f.nibbles, empty.nibbles);
        assert!(!f.contains(b"a"));
        assert!(!f.remove(b"never"));
    }

    #[test]
    fn overflow_saturates_rather_than_wraps() {
        // One counter, one probe: every key lands on it.
        let mut f = CountingBloom::new(1, 1).unwrap();
        for i in 0..20u8 {
            f.insert(&[i]);
        }
        assert_eq!(f.counter(0), COUNTER_MAX);
        assert_eq!(f.saturations(), 5);
        // Deleting all twenty leaves it at 15: no false negative for anything still
        // counted there, ever.
        for i in 0..20u8 {
            assert!(f.remove(&[i]));
        }
        assert_eq!(f.counter(0), COUNTER_MAX);
        assert!(f.contains(b"anything"));
    }

    #[test]
    fn neighbours_in_a_byte_are_independent() {
        let mut f = CountingBloom::new(2, 1).unwrap();
        for _ in 0..3 {
            f.set_counter(0, 9);
            f.set_counter(1, 4);
        }
        assert_eq!((f.counter(0), f.counter(1)), (9, 4));
        assert_eq!(f.counter(2), 0);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        assert!(
            CountingBloom::new(0, 2)
                .unwrap_err()
                .to_string()
                .contains("`bits`")
        );
        assert!(
            CountingBloom::new(10, 0)
                .unwrap_err()
                .to_string()
                .contains("`hashes`")
        );
        let e = CountingBloom::with_rate(10, 2.0).unwrap_err().to_string();
        assert!(e.contains("`falsePositiveRate`"), "{e}");
    }

    proptest! {
        /// Before any delete, every inserted key is found; after deleting some of them,
        /// every key still inserted is found.
        #[test]
        fn no_false_negative(keys in proptest::collection::btree_set(any::<u32>(), 1..300),
                             deleted in 0usize..300) {
            let mut f = CountingBloom::with_rate(300, 0.01).unwrap();
            let keys: Vec<u32> = keys.into_iter().collect();
            for k in &keys {
                f.insert(&k.to_le_bytes());
            }
            for k in &keys {
                prop_assert!(f.contains(&k.to_le_bytes()));
            }
            let cut = deleted.min(keys.len());
            for k in &keys[..cut] {
                prop_assert!(f.remove(&k.to_le_bytes()));
            }
            for k in &keys[cut..] {
                prop_assert!(f.contains(&k.to_le_bytes()));
            }
        }
    }
}
