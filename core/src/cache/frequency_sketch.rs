//! W-TinyLFU's admission filter: a count-min sketch of 4-bit counters that forgets by
//! halving. Reference: Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy" (ACM ToS 2017), §3.3 (the "reset" operation) and Caffeine's
//! `FrequencySketch`.
//!
//! Four rows of `width` counters (`width` four times the power of two at or above the
//! cache's capacity), sixteen 4-bit counters packed per `u64`. A key's estimate is the least of its
//! four counters (Cormode & Muthukrishnan 2005), which never undercounts until a reset.
//! After `10 × capacity` counted increments every counter is halved, so frequencies are
//! those of the recent past: the paper's sample size W. Counters saturate at 15: TinyLFU
//! needs only to compare small frequencies, and that is what makes it 8 bytes per 16
//! counters. No doorkeeper: Caffeine has none either; the window absorbs one-hit wonders.

use crate::alloc;
use crate::error::{DistlabError, Result};

/// Counters per key.
const ROWS: usize = 4;
/// The largest capacity sketched: its table is 2 GiB (8 bytes an entry, rounded up to a
/// power of two). Below it the table may still not fit — a wasm32 page has at most
/// 4 GiB — and then the allocation fails with an error, never an abort.
pub const MAX_CAPACITY: usize = 1 << 28;
/// A counter's largest value.
const MAX_COUNT: u64 = 15;
/// Increments between resets, per entry of capacity (the paper's W / C).
pub const SAMPLE_FACTOR: u64 = 10;
/// Each row's seed for the index mix (odd 64-bit constants).
const SEEDS: [u64; ROWS] = [
    0x97cb_3127_4d39_1e7b,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xe703_7ed1_a0b4_28db,
];

/// The frequency sketch.
#[derive(Debug, Clone)]
pub struct FrequencySketch {
    /// `ROWS` rows of `width / 16` words each.
    table: Vec<u64>,
    width_mask: u64,
    words_per_row: usize,
    additions: u64,
    sample_size: u64,
    resets: u64,
}

impl FrequencySketch {
    /// A sketch for a cache of `capacity` entries (≥ 1). The table is allocated up
    /// front, so a capacity the memory cannot hold is an error under `capacity` rather
    /// than an abort (in the browser, of the whole module).
    pub fn new(capacity: usize) -> Result<Self> {
        // Four counters per entry per row, as Caffeine sizes its table (one 64-bit word
        // per entry): 8 bytes per entry in all, and at least one word per row.
        if capacity > MAX_CAPACITY {
            return Err(DistlabError::field(
                "capacity",
                format!(
                    "W-TinyLFU sketches at most {MAX_CAPACITY} entries (a 2 GiB table), \
                     got {capacity}"
                ),
            ));
        }
        let width = (capacity.max(4) as u64).next_power_of_two() * 4;
        let words_per_row = (width / 16) as usize;
        Ok(FrequencySketch {
            table: alloc::filled(words_per_row * ROWS, 0, "capacity")?,
            width_mask: width - 1,
            words_per_row,
            additions: 0,
            sample_size: (capacity as u64).saturating_mul(SAMPLE_FACTOR).max(1),
            resets: 0,
        })
    }

    /// Counters per row.
    pub fn width(&self) -> u64 {
        self.width_mask + 1
    }

    /// Increments since the last reset (as Caffeine counts them: those that raised a
    /// counter, halved with the counters).
    pub fn additions(&self) -> u64 {
        self.additions
    }

    /// How many times the counters were halved.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Increments counted before the next halving.
    pub fn sample_size(&self) -> u64 {
        self.sample_size
    }

    /// (word, shift) of row `row`'s counter for `hash`.
    #[inline]
    fn slot(&self, hash: u64, row: usize) -> (usize, u32) {
        let h = super::mix64(hash ^ SEEDS[row]);
        let counter = h & self.width_mask;
        let word = row * self.words_per_row + (counter >> 4) as usize;
        (word, ((counter & 15) * 4) as u32)
    }

    /// The estimated frequency of the key hashed to `hash`: 0 to 15.
    #[inline]
    pub fn frequency(&self, hash: u64) -> u64 {
        (0..ROWS)
            .map(|row| {
                let (w, s) = self.slot(hash, row);
                self.table.get(w).map_or(0, |x| (x >> s) & MAX_COUNT)
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts one access to the key hashed to `hash`; halves every counter after
    /// `sample_size` counted increments.
    #[inline]
    pub fn increment(&mut self, hash: u64) {
        let mut raised = false;
        for row in 0..ROWS {
            let (w, s) = self.slot(hash, row);
            if let Some(x) = self.table.get_mut(w)
                && (*x >> s) & MAX_COUNT < MAX_COUNT
            {
                *x += 1 << s;
                raised = true;
            }
        }
        if raised {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.reset();
            }
        }
    }

    /// Halves every counter. As in Caffeine, `additions` is halved too, less a quarter of
    /// the odd counters' lost halves (each key's count lives in four counters).
    fn reset(&mut self) {
        let mut odd = 0u64;
        for x in &mut self.table {
            odd += u64::from((*x & 0x1111_1111_1111_1111).count_ones());
            *x = (*x >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions = self.additions.saturating_sub(odd / 4) / 2;
        self.resets += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key_hash;

    #[test]
    fn counts_saturate_at_15_and_never_undercount_before_a_reset() {
        let mut s = FrequencySketch::new(1_000).unwrap();
        for k in 0..200u64 {
            for _ in 0..(k % 20) {
                s.increment(key_hash(&k));
            }
        }
        assert_eq!(s.resets(), 0);
        for k in 0..200u64 {
            let f = s.frequency(key_hash(&k));
            assert!(f >= (k % 20).min(15), "key {k}: {f}");
            assert!(f <= 15);
        }
    }

    #[test]
    fn a_capacity_past_the_largest_sketch_is_an_error_naming_it() {
        let e = FrequencySketch::new(MAX_CAPACITY + 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("capacity"), "{e}");
    }

    #[test]
    fn halving_after_ten_times_capacity_samples() {
        let mut s = FrequencySketch::new(16).unwrap();
        assert_eq!(s.sample_size(), 160);
        let hot = key_hash(&"hot");
        for _ in 0..12 {
            s.increment(hot);
        }
        assert_eq!(s.frequency(hot), 12);
        // Distinct keys until the 160th counted increment halves everything.
        let mut k = 0u64;
        while s.resets() == 0 {
            s.increment(key_hash(&k));
            k += 1;
        }
        let f = s.frequency(hot);
        assert!((6..=7).contains(&f), "12 halved, plus collisions: {f}");
        assert!(s.additions() < 160 / 2 + 1);
    }
}
