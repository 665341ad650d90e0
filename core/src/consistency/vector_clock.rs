//! Vector clocks (Fidge 1988, "Timestamps in message-passing systems that preserve the
//! partial ordering"; Mattern 1989, "Virtual time and global states of distributed
//! systems"): one counter per process, so that comparing two clocks tells whether one
//! event happened before the other or the two are concurrent — what a Lamport clock cannot.
//!
//! Entries that are zero are not stored: a clock names only the processes it has heard of,
//! so comparing and merging cost O(k) for k named processes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::{DistlabError, Result};

/// A process (or replica) id.
pub type ProcessId = u32;

/// How two vector clocks (and the events they stamp) are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClockOrder {
    /// Every entry ≤ the other's and one <: happened before.
    Before,
    /// The other happened before this one.
    After,
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

/// A vector clock: process → number of its events seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<ProcessId, u64>",
    into = "BTreeMap<ProcessId, u64>"
)]
pub struct VectorClock {
    entries: BTreeMap<ProcessId, u64>,
}

impl TryFrom<BTreeMap<ProcessId, u64>> for VectorClock {
    type Error = String;
    fn try_from(mut entries: BTreeMap<ProcessId, u64>) -> std::result::Result<Self, String> {
        // A zero is the same as a missing entry: dropping it keeps one form per clock, so
        // equal clocks are equal values.
        entries.retain(|_, n| *n > 0);
        Ok(VectorClock { entries })
    }
}

impl From<VectorClock> for BTreeMap<ProcessId, u64> {
    fn from(c: VectorClock) -> Self {
        c.entries
    }
}

impl VectorClock {
    pub fn new() -> Self {
        VectorClock::default()
    }

    /// Process `p`'s entry (0 if never heard of).
    pub fn get(&self, p: ProcessId) -> u64 {
        self.entries.get(&p).copied().unwrap_or(0)
    }

    /// The named processes and their counts, by process.
    pub fn entries(&self) -> impl Iterator<Item = (ProcessId, u64)> + '_ {
        self.entries.iter().map(|(p, n)| (*p, *n))
    }

    /// Processes named.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Process `p`'s next event: its entry goes up by one. Errors (clock unchanged) when
    /// the entry is at `u64::MAX`.
    pub fn increment(&mut self, p: ProcessId) -> Result<u64> {
        let n = self.get(p).checked_add(1).ok_or_else(|| {
            DistlabError::InvalidState(format!("process {p}'s clock entry would overflow"))
        })?;
        self.entries.insert(p, n);
        Ok(n)
    }

    /// Raises process `p`'s entry to `n` if it is below (a version vector naming one
    /// event, `(p, n)`, merged in).
    pub fn raise(&mut self, p: ProcessId, n: u64) {
        if n > self.get(p) {
            self.entries.insert(p, n);
        }
    }

    /// The entry-wise maximum: what a process knows after receiving a message stamped
    /// `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        for (p, n) in &other.entries {
            let e = self.entries.entry(*p).or_insert(0);
            *e = (*e).max(*n);
        }
    }

    /// Whether every entry is at least `other`'s.
    pub fn dominates(&self, other: &VectorClock) -> bool {
        other.entries.iter().all(|(p, n)| self.get(*p) >= *n)
    }

    /// How this clock is ordered against `other`.
    pub fn compare(&self, other: &VectorClock) -> ClockOrder {
        match (other.dominates(self), self.dominates(other)) {
            (true, true) => ClockOrder::Equal,
            (true, false) => ClockOrder::Before,
            (false, true) => ClockOrder::After,
            (false, false) => ClockOrder::Concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock(pairs: &[(u32, u64)]) -> VectorClock {
        VectorClock::try_from(pairs.iter().copied().collect::<BTreeMap<_, _>>()).unwrap()
    }

    #[test]
    fn compare_names_the_four_orders() {
        let a = clock(&[(0, 1)]);
        let b = clock(&[(0, 1), (1, 1)]);
        let c = clock(&[(1, 2)]);
        assert_eq!(a.compare(&b), ClockOrder::Before);
        assert_eq!(b.compare(&a), ClockOrder::After);
        assert_eq!(a.compare(&c), ClockOrder::Concurrent);
        assert_eq!(
            b.compare(&clock(&[(1, 1), (0, 1), (2, 0)])),
            ClockOrder::Equal
        );
        let mut m = a.clone();
        m.merge(&c);
        assert_eq!(m, clock(&[(0, 1), (1, 2)]));
    }

    #[test]
    fn an_overflowing_entry_is_an_error() {
        let mut a = clock(&[(3, u64::MAX)]);
        assert!(a.increment(3).is_err());
        assert_eq!(a.get(3), u64::MAX);
    }

    fn arb_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::btree_map(0u32..4, 0u64..3, 0..4)
            .prop_map(|m| VectorClock::try_from(m).unwrap())
    }

    proptest! {
        /// "Before" is a strict partial order (irreflexive, antisymmetric, transitive) and
        /// compare is consistent in both directions.
        #[test]
        fn compare_is_a_partial_order(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            prop_assert_eq!(a.compare(&a), ClockOrder::Equal);
            let flip = match a.compare(&b) {
                ClockOrder::Before => ClockOrder::After,
                ClockOrder::After => ClockOrder::Before,
                o => o,
            };
            prop_assert_eq!(b.compare(&a), flip);
            if a.compare(&b) == ClockOrder::Before && b.compare(&c) == ClockOrder::Before {
                prop_assert_eq!(a.compare(&c), ClockOrder::Before);
            }
            if a.compare(&b) == ClockOrder::Equal {
                prop_assert_eq!(&a, &b);
            }
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(m.dominates(&a) && m.dominates(&b));
        }
    }
}
