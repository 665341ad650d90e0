//! Lowe's memoisation: the search configurations (operations linearized, model state)
//! already explored. Reaching a known configuration again by another order can only lead
//! where the first visit led, so the search skips it; this is what turns Wing & Gong's
//! factorial search into one bounded by the number of distinct configurations.
//!
//! Operations that never returned are optional (they may never have taken effect), which
//! gives a dominance rule on top of plain equality: a configuration that has linearized
//! the same required operations into the same state, but *fewer* optional ones, can do
//! everything this one can (the extra optional operations may simply never happen), so if
//! it was explored this one need not be. Configurations are therefore grouped by (required
//! operations, state), and each group keeps the optional sets it was reached with; a new
//! configuration is skipped when one of them is a subset of its own. Without this, every
//! timed-out write that could be linearized harmlessly (say, just before a later write
//! overwrites it) doubles the search.
//!
//! The table is open-addressed over append-only arenas, so an insertion allocates nothing
//! beyond amortised growth, and it keeps every state it has seen: the search refers to
//! states by configuration id instead of cloning them onto its stack.

use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

use super::bitset::LinearizedSet;

/// Index of a configuration in the arena.
pub(crate) type ConfigId = u32;

/// A free slot, or the end of a chain.
const NONE: u32 = u32::MAX;

/// What [`VisitedSet::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insertion {
    /// The configuration is new and now stored under this id.
    New(ConfigId),
    /// It, or one that dominates it, was stored already.
    Seen,
    /// The arena cannot number more configurations (more than four billion: far more
    /// memory than any machine has).
    Full,
}

/// Bitsets in their trimmed form (see [`LinearizedSet::trimmed`]), back to back.
struct TrimmedSets {
    full_words: Vec<u32>,
    /// Where each set's words start in `words`; one more entry than there are sets.
    starts: Vec<usize>,
    words: Vec<u64>,
}

impl TrimmedSets {
    fn new() -> Self {
        TrimmedSets {
            full_words: Vec::new(),
            starts: vec![0],
            words: Vec::new(),
        }
    }

    fn push(&mut self, (full, words): (usize, &[u64])) {
        self.full_words.push(full as u32);
        self.words.extend_from_slice(words);
        self.starts.push(self.words.len());
    }

    #[inline]
    fn get(&self, index: usize) -> (usize, &[u64]) {
        let full = self.full_words.get(index).map_or(0, |&f| f as usize);
        let words = match (self.starts.get(index), self.starts.get(index + 1)) {
            (Some(&start), Some(&end)) => self.words.get(start..end).unwrap_or(&[]),
            _ => &[],
        };
        (full, words)
    }
}

/// Whether trimmed set `a` is a subset of trimmed set `b`.
#[inline]
fn is_subset((a_full, a_words): (usize, &[u64]), (b_full, b_words): (usize, &[u64])) -> bool {
    // Word `b_full` of `b` is not all ones, so `a` cannot have more full words.
    if a_full > b_full {
        return false;
    }
    a_words.iter().enumerate().all(|(j, &a)| {
        let word = a_full + j;
        let b = if word < b_full {
            u64::MAX
        } else {
            b_words.get(word - b_full).copied().unwrap_or(0)
        };
        a & !b == 0
    })
}

/// Hashes a model state with the fixed (never OS-seeded) Fx hasher.
#[inline]
fn state_hash<S: Hash>(state: &S) -> u64 {
    let mut hasher = FxHasher::default();
    state.hash(&mut hasher);
    hasher.finish()
}

/// Explored configurations, grouped by (required operations linearized, model state).
pub(crate) struct VisitedSet<S> {
    /// Open-addressed slots holding group ids, `NONE` when free; a power of two long.
    slots: Vec<u32>,
    group_hashes: Vec<u64>,
    group_required: TrimmedSets,
    group_states: Vec<S>,
    /// The group's most recent configuration, the head of its chain.
    group_newest: Vec<ConfigId>,
    config_group: Vec<u32>,
    /// The configuration added to the same group before this one, or `NONE`.
    config_older: Vec<ConfigId>,
    config_optional: TrimmedSets,
}

impl<S: Eq + Hash> VisitedSet<S> {
    pub(crate) fn new() -> Self {
        VisitedSet {
            slots: vec![NONE; 1024],
            group_hashes: Vec::new(),
            group_required: TrimmedSets::new(),
            group_states: Vec::new(),
            group_newest: Vec::new(),
            config_group: Vec::new(),
            config_older: Vec::new(),
            config_optional: TrimmedSets::new(),
        }
    }

    /// The number of configurations stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.config_group.len()
    }

    /// The state of a stored configuration.
    #[inline]
    pub(crate) fn state(&self, id: ConfigId) -> Option<&S> {
        let group = *self.config_group.get(id as usize)?;
        self.group_states.get(group as usize)
    }

    /// Whether the configuration, or one that dominates it, is present.
    pub(crate) fn covers(
        &self,
        required: &LinearizedSet,
        optional: &LinearizedSet,
        state: &S,
    ) -> bool {
        let hash = required.hash() ^ state_hash(state).rotate_left(29);
        let required = required.trimmed();
        let mask = self.slots.len() - 1;
        let mut slot = self.home_slot(hash);
        while let Some(&group) = self.slots.get(slot) {
            if group == NONE {
                return false;
            }
            if self.is_group(group as usize, hash, required, state) {
                return self.has_subset_of(group as usize, optional.trimmed());
            }
            slot = (slot + 1) & mask;
        }
        false
    }

    /// Adds the configuration (`required` and `optional` operations linearized, `state`)
    /// unless it, or a configuration that dominates it, is already present.
    pub(crate) fn insert(
        &mut self,
        required: &LinearizedSet,
        optional: &LinearizedSet,
        state: S,
    ) -> Insertion {
        let Some(id) = u32::try_from(self.config_group.len())
            .ok()
            .filter(|&i| i < NONE)
        else {
            return Insertion::Full;
        };
        let hash = required.hash() ^ state_hash(&state).rotate_left(29);
        let required = required.trimmed();
        let optional = optional.trimmed();
        let mask = self.slots.len() - 1;
        let mut slot = self.home_slot(hash);
        while let Some(&group) = self.slots.get(slot) {
            if group == NONE {
                break;
            }
            if self.is_group(group as usize, hash, required, &state) {
                if self.has_subset_of(group as usize, optional) {
                    return Insertion::Seen;
                }
                let older = self
                    .group_newest
                    .get(group as usize)
                    .copied()
                    .unwrap_or(NONE);
                if let Some(newest) = self.group_newest.get_mut(group as usize) {
                    *newest = id;
                }
                self.push_config(group, older, optional);
                return Insertion::New(id);
            }
            slot = (slot + 1) & mask;
        }
        let Some(group) = u32::try_from(self.group_states.len())
            .ok()
            .filter(|&g| g < NONE)
        else {
            return Insertion::Full;
        };
        let Some(free) = self.slots.get_mut(slot) else {
            return Insertion::Full;
        };
        *free = group;
        self.group_hashes.push(hash);
        self.group_required.push(required);
        self.group_states.push(state);
        self.group_newest.push(id);
        self.push_config(group, NONE, optional);
        if self.group_states.len() * 2 > self.slots.len() {
            self.grow();
        }
        Insertion::New(id)
    }

    fn push_config(&mut self, group: u32, older: ConfigId, optional: (usize, &[u64])) {
        self.config_group.push(group);
        self.config_older.push(older);
        self.config_optional.push(optional);
    }

    /// Fibonacci hashing: the high bits of a multiplication spread any input well.
    #[inline]
    fn home_slot(&self, hash: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    #[inline]
    fn is_group(&self, group: usize, hash: u64, required: (usize, &[u64]), state: &S) -> bool {
        self.group_hashes.get(group) == Some(&hash)
            && self.group_required.get(group) == required
            && self.group_states.get(group) == Some(state)
    }

    /// Whether some configuration of the group linearized a subset of `optional`.
    #[inline]
    fn has_subset_of(&self, group: usize, optional: (usize, &[u64])) -> bool {
        let mut config = self.group_newest.get(group).copied().unwrap_or(NONE);
        while config != NONE {
            if is_subset(self.config_optional.get(config as usize), optional) {
                return true;
            }
            config = self
                .config_older
                .get(config as usize)
                .copied()
                .unwrap_or(NONE);
        }
        false
    }

    /// Doubles the table and re-places every group by its stored hash.
    fn grow(&mut self) {
        self.slots = vec![NONE; self.slots.len() * 2];
        let mask = self.slots.len() - 1;
        for (group, &hash) in self.group_hashes.iter().enumerate() {
            let bits = self.slots.len().trailing_zeros();
            let mut slot = (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
            while let Some(s) = self.slots.get_mut(slot) {
                if *s == NONE {
                    *s = group as u32;
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_configuration_is_found_again_however_reached() {
        let none = LinearizedSet::new(0);
        let mut visited = VisitedSet::new();
        let mut set = LinearizedSet::new(200);
        assert_eq!(visited.insert(&set, &none, 0u8), Insertion::New(0));
        assert_eq!(visited.insert(&set, &none, 0u8), Insertion::Seen);
        assert!(visited.covers(&set, &none, &0u8));
        assert!(!visited.covers(&set, &none, &1u8));
        assert_eq!(visited.insert(&set, &none, 1u8), Insertion::New(1));
        set.insert(3);
        set.insert(150);
        assert_eq!(visited.insert(&set, &none, 1u8), Insertion::New(2));
        let mut other = LinearizedSet::new(200);
        other.insert(150);
        other.insert(3);
        assert_eq!(visited.insert(&other, &none, 1u8), Insertion::Seen);
        assert_eq!(visited.state(2), Some(&1u8));
    }

    #[test]
    fn fewer_optional_operations_dominate() {
        let required = LinearizedSet::new(10);
        let mut visited = VisitedSet::new();
        let mut optional = LinearizedSet::new(130);
        optional.insert(1);
        assert_eq!(visited.insert(&required, &optional, 'a'), Insertion::New(0));
        // A superset of a stored optional set is dominated...
        optional.insert(100);
        assert_eq!(visited.insert(&required, &optional, 'a'), Insertion::Seen);
        // ...a different or smaller one is not.
        let mut other = LinearizedSet::new(130);
        other.insert(100);
        assert_eq!(visited.insert(&required, &other, 'a'), Insertion::New(1));
        let empty = LinearizedSet::new(130);
        assert_eq!(visited.insert(&required, &empty, 'a'), Insertion::New(2));
        assert_eq!(visited.insert(&required, &optional, 'a'), Insertion::Seen);
        assert_eq!(visited.state(1), Some(&'a'));
    }

    #[test]
    fn subset_of_trimmed_forms() {
        let mut a = LinearizedSet::new(200);
        let mut b = LinearizedSet::new(200);
        for op in 0..70 {
            b.insert(op);
        }
        b.insert(150);
        a.insert(5);
        a.insert(150);
        assert!(is_subset(a.trimmed(), b.trimmed()));
        assert!(!is_subset(b.trimmed(), a.trimmed()));
        a.insert(151);
        assert!(!is_subset(a.trimmed(), b.trimmed()));
        for op in 0..64 {
            a.insert(op);
        }
        a.remove(151);
        assert!(is_subset(a.trimmed(), b.trimmed()));
    }

    #[test]
    fn survives_growth() {
        let none = LinearizedSet::new(0);
        let mut visited = VisitedSet::new();
        let mut set = LinearizedSet::new(10_000);
        for op in 0..5_000u32 {
            set.insert(op);
            assert!(matches!(
                visited.insert(&set, &none, op % 7),
                Insertion::New(_)
            ));
        }
        assert_eq!(visited.len(), 5_000);
        let mut again = LinearizedSet::new(10_000);
        for op in 0..5_000u32 {
            again.insert(op);
            assert_eq!(
                visited.insert(&again, &none, op % 7),
                Insertion::Seen,
                "{op}"
            );
        }
    }
}
