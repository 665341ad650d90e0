//! The sketches' hashing: Redis's MurmurHash64A (Austin Appleby's MurmurHash2, 64-bit
//! variant, read byte-order neutral as Redis reads it), and the two hashes a key's `k`
//! probe positions come from by double hashing (Kirsch & Mitzenmacher, "Less Hashing,
//! Same Performance: Building a Better Bloom Filter", ESA 2006).
//!
//! Everything here is plain integer arithmetic on the key's bytes: the same numbers
//! natively and in wasm, run after run (no `RandomState`).

/// The seed Redis's HyperLogLog hashes elements with (`hllPatLen`).
pub const REDIS_HLL_SEED: u32 = 0xadc8_3b19;

/// The seed the bloom, counting-bloom, count-min and cuckoo sketches hash keys with.
pub const SKETCH_SEED: u32 = 0x5eed_b10f;

const M: u64 = 0xc6a4_a793_5bd1_e995;
const R: u32 = 47;

/// MurmurHash64A of `key` with `seed`, as Redis computes it: 8-byte words read little
/// endian, the tail folded in from its last byte down, then the final avalanche.
pub fn murmur64a(key: &[u8], seed: u32) -> u64 {
    // Redis takes the length as a C `int`; keys longer than 2^31 bytes cannot reach it.
    let mut h = u64::from(seed) ^ (key.len() as u64).wrapping_mul(M);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The finaliser of SplitMix64 (Steele, Lea & Flood 2014): a bijection on u64 that
/// spreads every input bit over every output bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A key's two independent-looking hashes, from which probe `i` is `h1 + i·h2`
/// (Kirsch–Mitzenmacher): one MurmurHash64A per key, however many probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoubleHash {
    pub h1: u64,
    /// Odd, so that the probes of one key never all coincide.
    pub h2: u64,
}

impl DoubleHash {
    pub fn of(key: &[u8]) -> Self {
        let h1 = murmur64a(key, SKETCH_SEED);
        DoubleHash {
            h1,
            h2: mix64(h1 ^ 0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// Probe `i` as a position in `[0, n)`: Lemire's multiply-shift reduction of the
    /// 64-bit `h1 + i·h2`, which takes its high bits (no modulo bias worth the name, no
    /// division).
    #[inline]
    pub fn probe(&self, i: u64, n: u64) -> u64 {
        reduce(self.h1.wrapping_add(i.wrapping_mul(self.h2)), n)
    }
}

/// `x` mapped onto `[0, n)` by its high bits.
#[inline]
pub fn reduce(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Redis's C code (MurmurHash64A as in hyperloglog.c), which the
    /// differential test against a running redis-server confirms through the registers.
    #[test]
    fn murmur_known_values_and_every_tail_length() {
        // The empty key: only the seed and the avalanche.
        let mut h = u64::from(REDIS_HLL_SEED);
        h ^= h >> R;
        h = h.wrapping_mul(M);
        h ^= h >> R;
        assert_eq!(murmur64a(b"", REDIS_HLL_SEED), h);
        // Each tail length gives a different hash, and a word boundary is respected.
        let key = b"abcdefghijklmnop";
        let hashes: Vec<u64> = (0..=16).map(|n| murmur64a(&key[..n], 0)).collect();
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), hashes.len());
        assert_ne!(murmur64a(b"a", 0), murmur64a(b"a", 1));
    }

    #[test]
    fn probes_stay_in_range() {
        let d = DoubleHash::of(b"key");
        for n in [1, 2, 3, 1000, u64::MAX] {
            for i in 0..20 {
                assert!(d.probe(i, n) < n);
            }
        }
        assert_eq!(d.h2 & 1, 1);
    }
}
