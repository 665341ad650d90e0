//! The in-memory Raft log: entries after a snapshot base (paper §5.3, §7).
//!
//! Index `i` is at `entries[i - base_index - 1]`; the base (the last index and term the
//! snapshot covers) stands in for everything compacted away, so `term_at(base_index)`
//! still answers the consistency check of an AppendEntries that starts right after it.
//!
//! Every entry also carries a *prefix digest*: a hash of the entry and of the digest
//! before it, so two logs have equal digests at index `i` exactly when (up to hash
//! collisions) they hold the same entries `1..=i`. The node never uses it to decide
//! anything; it is a ghost variable for the invariant checker, which can then check Log
//! Matching and State Machine Safety in O(1) per new entry instead of comparing whole
//! logs after every event.
//!
//! Terms in a log never decrease (a leader appends only entries of its own term, which
//! is at least the term of every entry it has), so finding the last entry of a term is
//! a binary search.

use std::hash::{Hash, Hasher};

use crate::consensus::raft::messages::{Entry, LogIndex, Term};
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

/// The digest of the empty prefix.
pub const EMPTY_DIGEST: u64 = 0x9e37_79b9_7f4a_7c15;

/// The prefix digest of `entry` at `index` after a prefix with digest `prev`.
pub fn chain_digest(prev: u64, index: LogIndex, entry: &Entry) -> u64 {
    let mut h = StableHasher::default();
    h.write_u64(prev);
    h.write_u64(index);
    entry.term.hash(&mut h);
    entry.data.hash(&mut h);
    h.finish()
}

/// A Raft log with a snapshot base.
#[derive(Debug, Clone)]
pub struct Log {
    base_index: LogIndex,
    base_term: Term,
    base_digest: u64,
    entries: Vec<Entry>,
    digests: Vec<u64>,
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

impl Log {
    pub fn new() -> Self {
        Log {
            base_index: 0,
            base_term: 0,
            base_digest: EMPTY_DIGEST,
            entries: Vec::new(),
            digests: Vec::new(),
        }
    }

    /// The last index covered by the snapshot (0 if none).
    pub fn base_index(&self) -> LogIndex {
        self.base_index
    }
    pub fn base_term(&self) -> Term {
        self.base_term
    }
    pub fn base_digest(&self) -> u64 {
        self.base_digest
    }
    /// The first index held as an entry.
    pub fn first_index(&self) -> LogIndex {
        self.base_index + 1
    }
    pub fn last_index(&self) -> LogIndex {
        self.base_index + self.entries.len() as u64
    }
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }
    /// Entries held (not counting the snapshot).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn offset(&self, index: LogIndex) -> Option<usize> {
        index
            .checked_sub(self.base_index + 1)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < self.entries.len())
    }

    /// The term at `index`: known for the base and every entry held, `None` otherwise.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.offset(index)
            .and_then(|o| self.entries.get(o))
            .map(|e| e.term)
    }

    /// The prefix digest at `index`, for the base and every entry held.
    pub fn digest_at(&self, index: LogIndex) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_digest);
        }
        self.offset(index)
            .and_then(|o| self.digests.get(o))
            .copied()
    }

    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.offset(index).and_then(|o| self.entries.get(o))
    }

    /// Entries from `from` (at least the first index) up to `max` of them.
    pub fn entries_from(&self, from: LogIndex, max: usize) -> &[Entry] {
        let Some(start) = self.offset(from.max(self.first_index())) else {
            return &[];
        };
        let end = start.saturating_add(max).min(self.entries.len());
        self.entries.get(start..end).unwrap_or_default()
    }

    /// Every entry held, with its index.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (LogIndex, &Entry)> + '_ {
        let base = self.base_index;
        self.entries
            .iter()
            .enumerate()
            .map(move |(o, e)| (base + 1 + o as u64, e))
    }

    /// Appends one entry at `last_index() + 1`; returns its index.
    pub fn push(&mut self, entry: Entry) -> LogIndex {
        let index = self.last_index() + 1;
        let prev = self.digests.last().copied().unwrap_or(self.base_digest);
        self.digests.push(chain_digest(prev, index, &entry));
        self.entries.push(entry);
        index
    }

    /// Removes every entry from `index` on (no-op past the end; never touches the base).
    pub fn truncate_from(&mut self, index: LogIndex) {
        let keep = index.saturating_sub(self.base_index + 1);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.digests.truncate(keep);
        }
    }

    /// Whether a log whose last entry is (`index`, `term`) is at least as up-to-date as
    /// this one (paper §5.4.1: later term wins, then the longer log).
    pub fn is_up_to_date(&self, index: LogIndex, term: Term) -> bool {
        (term, index) >= (self.last_term(), self.last_index())
    }

    /// The last index whose term is `term`, if the log (from the base on) has one.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing: count the entries with a term <= `term`.
        let n = self.entries.partition_point(|e| e.term <= term);
        if n > 0 {
            return self
                .entries
                .get(n - 1)
                .filter(|e| e.term == term)
                .map(|_| self.base_index + n as u64);
        }
        (self.base_term == term && self.base_index > 0).then_some(self.base_index)
    }

    /// The first index of the run of entries with the term of `index`, for a follower's
    /// fast-backtracking hint. Stops at the first entry held.
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let n = self.entries.partition_point(|e| e.term < term);
        (self.base_index + 1 + n as u64)
            .min(index)
            .max(self.first_index())
    }

    /// Drops every entry up to and including `index` (which must be held), making it the
    /// new base. Returns false (and changes nothing) if `index` is not held.
    pub fn compact_to(&mut self, index: LogIndex) -> bool {
        let (Some(term), Some(digest)) = (self.term_at(index), self.digest_at(index)) else {
            return false;
        };
        if index <= self.base_index {
            return index == self.base_index;
        }
        let n = usize::try_from(index - self.base_index).unwrap_or(usize::MAX);
        self.entries.drain(..n.min(self.entries.len()));
        self.digests.drain(..n.min(self.digests.len()));
        self.base_index = index;
        self.base_term = term;
        self.base_digest = digest;
        true
    }

    /// Replaces the whole log by a snapshot base (an installed snapshot that the log does
    /// not extend past).
    pub fn reset_to(&mut self, index: LogIndex, term: Term, digest: u64) {
        self.entries.clear();
        self.digests.clear();
        self.base_index = index;
        self.base_term = term;
        self.base_digest = digest;
    }
}

/// The base (index, term, digest) and the entries. The prefix digests of the entries are
/// left out: each is the chain digest of the one before and its entry, from the base's, so
/// they are derived from what is hashed. The base digest stays in: the invariant checker
/// reads it, and nothing else here records what the compacted prefix held.
impl Fingerprint for Log {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let Log {
            base_index,
            base_term,
            base_digest,
            entries,
            digests: _,
        } = self;
        base_index.hash(h);
        base_term.hash(h);
        base_digest.hash(h);
        entries.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::messages::EntryData;

    fn log_of(terms: &[Term]) -> Log {
        let mut l = Log::new();
        for &t in terms {
            l.push(Entry::new(t, EntryData::Noop));
        }
        l
    }

    #[test]
    fn indexes_terms_and_truncation() {
        let mut l = log_of(&[1, 1, 2, 3, 3]);
        assert_eq!((l.last_index(), l.last_term()), (5, 3));
        assert_eq!(l.term_at(0), Some(0));
        assert_eq!(l.term_at(3), Some(2));
        assert_eq!(l.term_at(6), None);
        assert_eq!(l.entries_from(4, 10).len(), 2);
        assert_eq!(l.entries_from(0, 2).len(), 2);
        assert!(l.entries_from(9, 2).is_empty());
        l.truncate_from(4);
        assert_eq!(l.last_index(), 3);
        l.truncate_from(100);
        assert_eq!(l.last_index(), 3);
    }

    #[test]
    fn backtracking_helpers() {
        let l = log_of(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(l.last_index_of_term(2), Some(5));
        assert_eq!(l.last_index_of_term(3), None);
        assert_eq!(l.last_index_of_term(4), Some(6));
        assert_eq!(l.first_index_of_term_at(5), 3);
        assert_eq!(l.first_index_of_term_at(2), 1);
    }

    #[test]
    fn digests_identify_prefixes() {
        let a = log_of(&[1, 1, 2]);
        let mut b = log_of(&[1, 1, 3]);
        assert_eq!(a.digest_at(2), b.digest_at(2));
        assert_ne!(a.digest_at(3), b.digest_at(3));
        b.truncate_from(3);
        b.push(Entry::new(2, EntryData::Noop));
        assert_eq!(a.digest_at(3), b.digest_at(3));
    }

    #[test]
    fn compaction_keeps_terms_and_digests_at_the_base() {
        let mut l = log_of(&[1, 1, 2, 3]);
        let d3 = l.digest_at(3);
        assert!(l.compact_to(3));
        assert_eq!((l.base_index(), l.base_term()), (3, 2));
        assert_eq!(l.digest_at(3), d3);
        assert_eq!(l.term_at(2), None);
        assert_eq!(l.term_at(4), Some(3));
        assert_eq!(l.last_index_of_term(2), Some(3));
        assert!(!l.compact_to(9));
        assert_eq!(l.first_index_of_term_at(4), 4);
        let before = l.digest_at(4);
        l.push(Entry::new(3, EntryData::Noop));
        assert_eq!(l.digest_at(4), before);
    }

    #[test]
    fn up_to_date_compares_term_then_length() {
        let l = log_of(&[1, 2, 2]);
        assert!(l.is_up_to_date(3, 2));
        assert!(l.is_up_to_date(1, 3));
        assert!(!l.is_up_to_date(9, 1));
        assert!(!l.is_up_to_date(2, 2));
    }

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Push(Term),
        Truncate(u64),
        Compact(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u64..3).prop_map(Step::Push),
            1 => (0u64..30).prop_map(Step::Truncate),
            1 => (0u64..30).prop_map(Step::Compact),
        ]
    }

    proptest! {
        /// The log agrees with a plain vector of terms (1-based) under any sequence of
        /// appends, truncations and compactions; terms never decrease; a prefix digest
        /// depends only on the entries up to it.
        #[test]
        fn matches_a_vector_model(steps in proptest::collection::vec(step(), 0..60)) {
            let mut log = Log::new();
            let mut model: Vec<Term> = Vec::new();
            let mut base = 0u64;
            for s in steps {
                match s {
                    Step::Push(bump) => {
                        let t = model.last().copied().unwrap_or(1) + bump;
                        model.push(t);
                        log.push(Entry::new(t, EntryData::Noop));
                    }
                    Step::Truncate(i) => {
                        let i = i.max(base + 1);
                        model.truncate((i - 1) as usize);
                        log.truncate_from(i);
                    }
                    Step::Compact(i) => {
                        let held = i > base && i <= model.len() as u64;
                        prop_assert_eq!(log.compact_to(i), held || i == base);
                        if held {
                            base = i;
                        }
                    }
                }
                prop_assert_eq!(log.last_index(), model.len() as u64);
                prop_assert_eq!(log.base_index(), base);
                for (i, t) in model.iter().enumerate() {
                    let index = i as u64 + 1;
                    let want = (index >= base).then_some(*t);
                    prop_assert_eq!(log.term_at(index), want);
                }
                prop_assert!(model.windows(2).all(|w| w[0] <= w[1]));
                // Rebuilding the same entries from scratch gives the same digests.
                let mut fresh = Log::new();
                for t in &model {
                    fresh.push(Entry::new(*t, EntryData::Noop));
                }
                for index in base.max(1)..=log.last_index() {
                    prop_assert_eq!(log.digest_at(index), fresh.digest_at(index));
                }
            }
        }
    }
}
