//! A Bloom filter (Bloom, "Space/Time Trade-offs in Hash Coding with Allowable Errors",
//! CACM 1970): `m` bits and `k` probes per key; a key is "maybe present" when all its
//! bits are set, "absent" otherwise — never a false negative. Sized from the expected
//! number of keys `n` and the wanted false-positive rate `p` by the classic optima
//! `m = ⌈−n·ln p / (ln 2)²⌉`, `k = round(m/n · ln 2)`; after `n` insertions the
//! false-positive rate is about `(1 − e^(−kn/m))^k`, which [`Bloom::expected_fpr`]
//! reports and the accuracy tests measure against. The `k` probes come from one hash by
//! double hashing (Kirsch & Mitzenmacher, ESA 2006), which keeps that rate.
//!
//! Insert and query are O(k); union of two filters of one shape is an OR of their bits.

use crate::alloc;
use crate::error::{DistlabError, Result};
use crate::sketch::hash::DoubleHash;

/// The largest filter: 2^33 bits (1 GiB).
pub const MAX_BITS: u64 = 1 << 33;
/// The most probes per key.
pub const MAX_HASHES: u32 = 64;

/// A Bloom filter over byte-string keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
    bits: u64,
    hashes: u32,
    /// Insertions so far (a union adds the other filter's): the `n` of the formula.
    inserted: u64,
}

/// Bits for `n` keys at false-positive rate `p`: `⌈−n·ln p / (ln 2)²⌉`.
pub fn optimal_bits(expected_items: u64, false_positive_rate: f64) -> Result<u64> {
    check_items(expected_items)?;
    check_rate(false_positive_rate)?;
    let ln2 = core::f64::consts::LN_2;
    let m = libm::ceil(-(expected_items as f64) * libm::log(false_positive_rate) / (ln2 * ln2));
    if m > MAX_BITS as f64 {
        return Err(DistlabError::field(
            "expectedItems",
            format!(
                "{expected_items} keys at a false-positive rate of {false_positive_rate} need \
                 {m} bits, more than the {MAX_BITS} allowed"
            ),
        ));
    }
    Ok((m as u64).max(1))
}

/// Probes for `m` bits and `n` keys: `round(m/n · ln 2)`, at least 1.
pub fn optimal_hashes(bits: u64, expected_items: u64) -> u32 {
    let k = libm::round(bits as f64 / expected_items.max(1) as f64 * core::f64::consts::LN_2);
    (k as u32).clamp(1, MAX_HASHES)
}

/// `(1 − e^(−kn/m))^k`: the false-positive rate of `m` bits and `k` probes after `n`
/// distinct keys, bits taken as independent.
pub fn formula_fpr(bits: u64, hashes: u32, items: u64) -> f64 {
    let k = f64::from(hashes);
    libm::pow(1.0 - libm::exp(-k * items as f64 / bits.max(1) as f64), k)
}

fn check_items(n: u64) -> Result<()> {
    if n == 0 {
        return Err(DistlabError::field(
            "expectedItems",
            "must be at least 1, got 0",
        ));
    }
    Ok(())
}

fn check_rate(p: f64) -> Result<()> {
    if !(p > 0.0 && p < 1.0) {
        return Err(DistlabError::field(
            "falsePositiveRate",
            format!("must be greater than 0 and less than 1, got {p}"),
        ));
    }
    Ok(())
}

/// Checks a filter's shape: `bits` in 1..=[`MAX_BITS`], `hashes` in 1..=[`MAX_HASHES`].
pub(crate) fn check_shape(bits: u64, hashes: u32, max_bits: u64) -> Result<()> {
    if bits == 0 || bits > max_bits {
        return Err(DistlabError::field(
            "bits",
            format!("must be between 1 and {max_bits}, got {bits}"),
        ));
    }
    if hashes == 0 || hashes > MAX_HASHES {
        return Err(DistlabError::field(
            "hashes",
            format!("must be between 1 and {MAX_HASHES}, got {hashes}"),
        ));
    }
    Ok(())
}

impl Bloom {
    /// A filter of `bits` bits probing `hashes` of them per key.
    pub fn new(bits: u64, hashes: u32) -> Result<Self> {
        check_shape(bits, hashes, MAX_BITS)?;
        Ok(Bloom {
            words: alloc::filled(bits.div_ceil(64) as usize, 0, "bits")?,
            bits,
            hashes,
            inserted: 0,
        })
    }

    /// The optimal filter for `expected_items` keys at `false_positive_rate`.
    pub fn with_rate(expected_items: u64, false_positive_rate: f64) -> Result<Self> {
        let bits = optimal_bits(expected_items, false_positive_rate)?;
        Bloom::new(bits, optimal_hashes(bits, expected_items))
    }

    pub fn bits(&self) -> u64 {
        self.bits
    }

    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// Insertions so far (with a union's).
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// The bit positions `key` probes, in probe order (a position may repeat).
    pub fn positions(&self, key: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let h = DoubleHash::of(key);
        let bits = self.bits;
        (0..u64::from(self.hashes)).map(move |i| h.probe(i, bits))
    }

    /// Sets `key`'s bits. Returns whether any was clear: `false` means the filter already
    /// answered "maybe" for it.
    pub fn insert(&mut self, key: &[u8]) -> bool {
        let h = DoubleHash::of(key);
        let mut changed = false;
        for i in 0..u64::from(self.hashes) {
            let bit = h.probe(i, self.bits);
            let (w, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            changed |= self.words[w] & mask == 0;
            self.words[w] |= mask;
        }
        self.inserted += 1;
        changed
    }

    /// Whether `key` may have been inserted (`false`: it certainly was not).
    pub fn contains(&self, key: &[u8]) -> bool {
        let h = DoubleHash::of(key);
        (0..u64::from(self.hashes)).all(|i| self.bit(h.probe(i, self.bits)))
    }

    /// Bit `i` (false past the end).
    pub fn bit(&self, i: u64) -> bool {
        i < self.bits && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Bits set.
    pub fn set_bits(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The false-positive rate the formula predicts after the insertions so far.
    pub fn expected_fpr(&self) -> f64 {
        formula_fpr(self.bits, self.hashes, self.inserted)
    }

    /// The false-positive rate the bits set now give (the fraction set, to the `k`):
    /// what a query of a fresh key meets, duplicates or not.
    pub fn fill_fpr(&self) -> f64 {
        libm::pow(
            self.set_bits() as f64 / self.bits as f64,
            f64::from(self.hashes),
        )
    }

    /// Adds every key of `other` (same bits and hashes): a key in either now answers
    /// "maybe".
    pub fn union(&mut self, other: &Bloom) -> Result<()> {
        if (other.bits, other.hashes) != (self.bits, self.hashes) {
            return Err(DistlabError::field(
                "other",
                format!(
                    "a union needs filters of one shape: this one has {} bits and {} hashes, \
                     the other {} and {}",
                    self.bits, self.hashes, other.bits, other.hashes
                ),
            ));
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
        self.inserted += other.inserted;
        Ok(())
    }

    /// Empties the filter.
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.inserted = 0;
    }

    /// Bytes of bits held.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn optimal_shape_matches_the_textbook() {
        // n = 10^6, p = 1 %: m = 9,585,059 bits, k = 7.
        let b = Bloom::with_rate(1_000_000, 0.01).unwrap();
        assert_eq!(b.bits(), 9_585_059);
        assert_eq!(b.hashes(), 7);
        assert!((formula_fpr(b.bits(), b.hashes(), 1_000_000) - 0.01).abs() < 0.0005);
        assert_eq!(Bloom::with_rate(1, 0.5).unwrap().hashes(), 1);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (r, field) in [
            (Bloom::with_rate(0, 0.01), "`expectedItems`"),
            (Bloom::with_rate(10, 0.0), "`falsePositiveRate`"),
            (Bloom::with_rate(10, 1.0), "`falsePositiveRate`"),
            (Bloom::with_rate(10, f64::NAN), "`falsePositiveRate`"),
            (Bloom::with_rate(u64::MAX / 2, 1e-9), "`expectedItems`"),
            (Bloom::new(0, 3), "`bits`"),
            (Bloom::new(MAX_BITS + 1, 3), "`bits`"),
            (Bloom::new(100, 0), "`hashes`"),
            (Bloom::new(100, 65), "`hashes`"),
        ] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        let mut a = Bloom::new(100, 3).unwrap();
        let e = a.union(&Bloom::new(100, 4).unwrap()).unwrap_err();
        assert!(e.to_string().contains("`other`"), "{e}");
    }

    #[test]
    fn union_holds_both_sets_and_only_their_bits() {
        let mut a = Bloom::with_rate(1000, 0.01).unwrap();
        let mut b = a.clone();
        for i in 0..500u32 {
            a.insert(&i.to_le_bytes());
            b.insert(&(i + 10_000).to_le_bytes());
        }
        let mut both = Bloom::with_rate(1000, 0.01).unwrap();
        for i in 0..500u32 {
            both.insert(&i.to_le_bytes());
            both.insert(&(i + 10_000).to_le_bytes());
        }
        a.union(&b).unwrap();
        assert_eq!(a, both);
        assert_eq!(a.inserted(), 1000);
    }

    #[test]
    fn measured_fpr_is_near_the_formula() {
        // 2 · 10^4 keys, 10^5 probes: a few hundred false positives, 10 % is ~3 sigma.
        let mut b = Bloom::with_rate(20_000, 0.02).unwrap();
        for i in 0..20_000u64 {
            b.insert(&i.to_le_bytes());
        }
        let probes = 100_000u64;
        let fp = (0..probes)
            .filter(|i| b.contains(&(i + (1 << 40)).to_le_bytes()))
            .count() as f64;
        let measured = fp / probes as f64;
        let expected = b.expected_fpr();
        assert!(
            (measured / expected - 1.0).abs() < 0.15,
            "{measured} vs {expected}"
        );
    }

    proptest! {
        #[test]
        fn never_a_false_negative(keys in proptest::collection::vec(any::<Vec<u8>>(), 1..200),
                                  bits in 1u64..2000, hashes in 1u32..12) {
            let mut b = Bloom::new(bits, hashes).unwrap();
            for k in &keys {
                b.insert(k);
            }
            for k in &keys {
                prop_assert!(b.contains(k));
            }
        }
    }
}
