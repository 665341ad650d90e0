//! A cuckoo filter (Fan, Andersen, Kaminsky & Mitzenmacher, "Cuckoo Filter: Practically
//! Better Than Bloom", CoNEXT 2014): a table of buckets of four fingerprints. A key's
//! `f`-bit fingerprint may live in bucket `i1 = h(x)` or `i2 = i1 ⊕ h(fp)` — partial-key
//! cuckoo hashing: either bucket and the fingerprint give the other, so entries can be
//! moved without the key. Inserting into two full buckets evicts a random entry to its
//! other bucket, and so on up to `maxKicks` times; supports delete (of keys inserted) and
//! reaches about 95 % load with buckets of four.
//!
//! As in the authors' implementation, when the kicks run out the last evicted
//! fingerprint waits in a one-entry victim slot, so nothing inserted is lost; the filter
//! then counts as full and refuses inserts until a delete makes room. The load factor at
//! that first failure is recorded. False-positive rate about `8 / 2^f`.
//!
//! Insert is O(1) amortised (O(maxKicks) at worst), query and delete O(1).

use crate::alloc;
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sketch::hash::{SKETCH_SEED, mix64, murmur64a};

/// Entries per bucket.
pub const BUCKET_SIZE: usize = 4;
/// The most buckets (2^28: 2 GiB of 16-bit entries).
pub const MAX_BUCKETS: u64 = 1 << 28;

/// One move of an insertion's chain of evictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kick {
    /// The bucket the entry was evicted from.
    pub bucket: u64,
    pub slot: usize,
    /// The fingerprint evicted (it moves to its other bucket next).
    pub evicted: u16,
}

/// A cuckoo filter over byte-string keys.
#[derive(Debug, Clone)]
pub struct Cuckoo {
    /// 0 is an empty slot.
    buckets: Vec<[u16; BUCKET_SIZE]>,
    fingerprint_bits: u32,
    max_kicks: u32,
    items: u64,
    /// A fingerprint and one of its buckets, left over when the kicks ran out.
    victim: Option<(u64, u16)>,
    /// Chooses which entry to evict.
    rng: SimRng,
    last_kicks: Vec<Kick>,
    first_failure_load: Option<f64>,
}

impl Cuckoo {
    /// A filter for `capacity` keys — `capacity / 4` buckets rounded up to a power of two
    /// — with `fingerprint_bits` (4 to 16) bits per fingerprint and at most `max_kicks`
    /// evictions per insert (1 to 10,000); `seed` picks the evictions. Errors name
    /// `capacity`, `fingerprintBits` or `maxKicks`.
    pub fn new(capacity: u64, fingerprint_bits: u32, max_kicks: u32, seed: u64) -> Result<Self> {
        let buckets = capacity
            .div_ceil(BUCKET_SIZE as u64)
            .max(1)
            .next_power_of_two();
        if capacity == 0 || buckets > MAX_BUCKETS {
            return Err(DistlabError::field(
                "capacity",
                format!(
                    "must be between 1 and {}, got {capacity}",
                    MAX_BUCKETS * BUCKET_SIZE as u64
                ),
            ));
        }
        if !(4..=16).contains(&fingerprint_bits) {
            return Err(DistlabError::field(
                "fingerprintBits",
                format!("must be between 4 and 16, got {fingerprint_bits}"),
            ));
        }
        if !(1..=10_000).contains(&max_kicks) {
            return Err(DistlabError::field(
                "maxKicks",
                format!("must be between 1 and 10000, got {max_kicks}"),
            ));
        }
        Ok(Cuckoo {
            buckets: alloc::filled(buckets as usize, [0; BUCKET_SIZE], "capacity")?,
            fingerprint_bits,
            max_kicks,
            items: 0,
            victim: None,
            rng: SimRng::new(seed),
            last_kicks: Vec::new(),
            first_failure_load: None,
        })
    }

    pub fn bucket_count(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// Entries the table has room for.
    pub fn slots(&self) -> u64 {
        self.bucket_count() * BUCKET_SIZE as u64
    }

    pub fn fingerprint_bits(&self) -> u32 {
        self.fingerprint_bits
    }

    /// Keys held (the victim slot's included).
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Keys held over slots.
    pub fn load_factor(&self) -> f64 {
        self.items as f64 / self.slots() as f64
    }

    /// The load factor when an insert first ran out of kicks.
    pub fn first_failure_load(&self) -> Option<f64> {
        self.first_failure_load
    }

    /// Whether the victim slot is taken: inserts are refused until a delete.
    pub fn is_full(&self) -> bool {
        self.victim.is_some()
    }

    /// The evictions of the latest insert.
    pub fn last_kicks(&self) -> &[Kick] {
        &self.last_kicks
    }

    /// Bucket `i`'s entries (0: empty).
    pub fn bucket(&self, i: u64) -> [u16; BUCKET_SIZE] {
        self.buckets.get(i as usize).copied().unwrap_or_default()
    }

    /// The victim slot: a bucket and fingerprint.
    pub fn victim(&self) -> Option<(u64, u16)> {
        self.victim
    }

    fn mask(&self) -> u64 {
        self.bucket_count() - 1
    }

    /// `key`'s fingerprint (never 0) and first bucket.
    pub fn locate(&self, key: &[u8]) -> (u16, u64) {
        let h = murmur64a(key, SKETCH_SEED);
        let fp = ((h >> 32) & ((1 << self.fingerprint_bits) - 1)) as u16;
        (fp.max(1), h & self.mask())
    }

    /// The other bucket of fingerprint `fp` in bucket `i`: `i ⊕ h(fp)`.
    pub fn alternate(&self, i: u64, fp: u16) -> u64 {
        (i ^ mix64(u64::from(fp))) & self.mask()
    }

    fn place(&mut self, i: u64, fp: u16) -> bool {
        let bucket = &mut self.buckets[i as usize];
        match bucket.iter_mut().find(|e| **e == 0) {
            Some(e) => {
                *e = fp;
                true
            }
            None => false,
        }
    }

    /// Stores `fp` in bucket `i` or its alternate, evicting as needed; false with the
    /// last evicted fingerprint in the victim slot if the kicks ran out.
    fn insert_fingerprint(&mut self, i1: u64, fp: u16) -> bool {
        self.last_kicks.clear();
        let i2 = self.alternate(i1, fp);
        if self.place(i1, fp) || self.place(i2, fp) {
            return true;
        }
        let mut i = if self.rng.chance(0.5) { i1 } else { i2 };
        let mut fp = fp;
        for _ in 0..self.max_kicks {
            let slot = self.rng.below(BUCKET_SIZE as u64) as usize;
            let evicted = std::mem::replace(&mut self.buckets[i as usize][slot], fp);
            self.last_kicks.push(Kick {
                bucket: i,
                slot,
                evicted,
            });
            fp = evicted;
            i = self.alternate(i, fp);
            if self.place(i, fp) {
                return true;
            }
        }
        self.victim = Some((i, fp));
        false
    }

    /// Inserts `key`; false if the filter is full (the victim slot taken) and the key was
    /// not stored. An insert that runs out of kicks still stores the key — the last
    /// evicted fingerprint waits in the victim slot — and makes the filter full.
    pub fn insert(&mut self, key: &[u8]) -> bool {
        if self.victim.is_some() {
            return false;
        }
        let (fp, i1) = self.locate(key);
        self.items += 1;
        if !self.insert_fingerprint(i1, fp) && self.first_failure_load.is_none() {
            self.first_failure_load = Some(self.load_factor());
        }
        true
    }

    /// Whether `key` may be present.
    pub fn contains(&self, key: &[u8]) -> bool {
        let (fp, i1) = self.locate(key);
        let i2 = self.alternate(i1, fp);
        self.buckets[i1 as usize].contains(&fp)
            || self.buckets[i2 as usize].contains(&fp)
            || self
                .victim
                .is_some_and(|(i, v)| v == fp && (i == i1 || i == i2))
    }

    /// Deletes one copy of `key`'s fingerprint; false if none was found. Only delete keys
    /// that were inserted: deleting a false positive removes another key's entry. A
    /// waiting victim then gets another try.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let (fp, i1) = self.locate(key);
        let i2 = self.alternate(i1, fp);
        if let Some((i, v)) = self.victim
            && v == fp
            && (i == i1 || i == i2)
        {
            self.victim = None;
            self.items -= 1;
            return true;
        }
        for i in [i1, i2] {
            if let Some(e) = self.buckets[i as usize].iter_mut().find(|e| **e == fp) {
                *e = 0;
                self.items -= 1;
                if let Some((vi, vfp)) = self.victim.take() {
                    self.insert_fingerprint(vi, vfp);
                }
                return true;
            }
        }
        false
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * BUCKET_SIZE * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_past_ninety_percent_before_the_first_failure() {
        for seed in 0..5 {
            let mut f = Cuckoo::new(1 << 14, 12, 500, seed).unwrap();
            let mut n = 0u64;
            while f.first_failure_load().is_none() {
                assert!(f.insert(&n.to_le_bytes()));
                n += 1;
            }
            let load = f.first_failure_load().unwrap();
            assert!(load >= 0.90, "seed {seed}: {load}");
            assert!(!f.insert(b"one more"));
            // Nothing inserted is lost, the victim included.
            for k in 0..n {
                assert!(f.contains(&k.to_le_bytes()), "seed {seed}: key {k}");
            }
            // A delete makes room and the victim moves in.
            assert!(f.remove(&0u64.to_le_bytes()));
            assert!(!f.is_full());
            assert!(f.insert(b"one more"));
        }
    }

    #[test]
    fn alternate_buckets_pair_up() {
        let f = Cuckoo::new(1000, 8, 10, 1).unwrap();
        for k in 0..100u32 {
            let (fp, i1) = f.locate(&k.to_le_bytes());
            assert_eq!(f.alternate(f.alternate(i1, fp), fp), i1);
            assert!(fp != 0 && fp < 256);
        }
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (r, field) in [
            (Cuckoo::new(0, 8, 10, 1), "`capacity`"),
            (Cuckoo::new(u64::MAX, 8, 10, 1), "`capacity`"),
            (Cuckoo::new(10, 3, 10, 1), "`fingerprintBits`"),
            (Cuckoo::new(10, 17, 10, 1), "`fingerprintBits`"),
            (Cuckoo::new(10, 8, 0, 1), "`maxKicks`"),
        ] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    proptest! {
        #[test]
        fn no_false_negative(keys in proptest::collection::btree_set(any::<u64>(), 1..500),
                             removed in 0usize..500, seed: u64) {
            let mut f = Cuckoo::new(512, 8, 100, seed).unwrap();
            let keys: Vec<u64> = keys.into_iter().collect();
            let mut stored = Vec::new();
            for k in &keys {
                if f.insert(&k.to_le_bytes()) {
                    stored.push(*k);
                }
            }
            for k in &stored {
                prop_assert!(f.contains(&k.to_le_bytes()));
            }
            let cut = removed.min(stored.len());
            for k in &stored[..cut] {
                prop_assert!(f.remove(&k.to_le_bytes()));
            }
            for k in &stored[cut..] {
                prop_assert!(f.contains(&k.to_le_bytes()));
            }
        }
    }
}
