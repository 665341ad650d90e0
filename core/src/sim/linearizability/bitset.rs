//! The set of operations linearized so far on the search path: a bitset with an
//! incrementally maintained Zobrist hash and a compact canonical form for the memo.
//!
//! Operations are numbered in call order, and an operation can only be linearized once
//! everything that returned before its call has been, so a linearized set is always "a run
//! of full words, then a few scattered bits, then zeros". [`LinearizedSet::trimmed`]
//! returns just the middle part, which keeps memo entries small however long the history.

/// Bits of one operation's Zobrist key: a fixed pseudo-random 64-bit value per operation
/// (SplitMix64 of its number), so the hash of a set is the XOR of its members' keys and
/// adding or removing one member costs one XOR.
#[inline]
fn zobrist_key(op: u32) -> u64 {
    let mut z = (op as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A set of operation numbers below a fixed bound.
#[derive(Debug, Clone)]
pub(crate) struct LinearizedSet {
    words: Vec<u64>,
    hash: u64,
    /// Every word before this one is all ones.
    full_words: usize,
    /// Every word from this one on is zero.
    end_word: usize,
}

impl LinearizedSet {
    /// An empty set able to hold operations `0..ops`.
    pub(crate) fn new(ops: usize) -> Self {
        LinearizedSet {
            words: vec![0; ops.div_ceil(64)],
            hash: 0,
            full_words: 0,
            end_word: 0,
        }
    }

    /// Adds `op`, which must be below the bound and not yet a member.
    #[inline]
    pub(crate) fn insert(&mut self, op: u32) {
        let word = (op / 64) as usize;
        let Some(w) = self.words.get_mut(word) else {
            return;
        };
        *w |= 1u64 << (op % 64);
        self.hash ^= zobrist_key(op);
        if word >= self.end_word {
            self.end_word = word + 1;
        }
        if word == self.full_words {
            while self.words.get(self.full_words) == Some(&u64::MAX) {
                self.full_words += 1;
            }
        }
    }

    /// Removes `op`, which must be a member.
    #[inline]
    pub(crate) fn remove(&mut self, op: u32) {
        let word = (op / 64) as usize;
        let Some(w) = self.words.get_mut(word) else {
            return;
        };
        *w &= !(1u64 << (op % 64));
        self.hash ^= zobrist_key(op);
        if word < self.full_words {
            self.full_words = word;
        }
        if word + 1 == self.end_word {
            while self.end_word > 0 && self.words.get(self.end_word - 1) == Some(&0) {
                self.end_word -= 1;
            }
        }
    }

    /// The Zobrist hash of the members: equal sets have equal hashes.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The canonical compact form: the number of leading all-ones words, and the words
    /// after them up to the last non-zero one. Two sets are equal exactly when their
    /// trimmed forms are.
    #[inline]
    pub(crate) fn trimmed(&self) -> (usize, &[u64]) {
        let end = self.end_word.max(self.full_words);
        (
            self.full_words,
            self.words.get(self.full_words..end).unwrap_or(&[]),
        )
    }

    /// Whether `op` is a member.
    #[cfg(test)]
    pub(crate) fn contains(&self, op: u32) -> bool {
        self.words
            .get((op / 64) as usize)
            .is_some_and(|w| w & (1u64 << (op % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_trimmed(members: &[bool]) -> (usize, Vec<u64>) {
        let mut words = vec![0u64; members.len().div_ceil(64)];
        for (i, &m) in members.iter().enumerate() {
            if m {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        let full = words.iter().take_while(|&&w| w == u64::MAX).count();
        let end = words
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |p| p + 1)
            .max(full);
        (full, words[full..end].to_vec())
    }

    proptest! {
        /// After any sequence of inserts and removes, the trimmed form and the hash depend
        /// only on the members, never on the path that led there.
        #[test]
        fn trimmed_form_and_hash_are_canonical(
            size in 1usize..300,
            toggles in proptest::collection::vec(0usize..300, 0..600),
        ) {
            let mut set = LinearizedSet::new(size);
            let mut members = vec![false; size];
            for t in toggles {
                let op = t % size;
                if members[op] { set.remove(op as u32) } else { set.insert(op as u32) }
                members[op] = !members[op];
                let (full, words) = set.trimmed();
                prop_assert_eq!((full, words.to_vec()), naive_trimmed(&members));
                let mut rebuilt = LinearizedSet::new(size);
                for (i, &m) in members.iter().enumerate() {
                    if m { rebuilt.insert(i as u32) }
                    prop_assert_eq!(set.contains(i as u32), m);
                }
                prop_assert_eq!(set.hash(), rebuilt.hash());
            }
        }
    }
}
