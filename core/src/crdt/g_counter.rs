//! Grow-only counter (Shapiro et al. 2011, §3.1.1, Specification 6): one slot per
//! replica, each incremented only by its replica; the value is the sum, merge takes each
//! slot's maximum.
//!
//! Update O(log r), merge O(r log r) for r replicas, value O(r).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::crdt::{Crdt, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A grow-only counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<ReplicaId, u64>",
    into = "BTreeMap<ReplicaId, u64>"
)]
pub struct GCounter {
    slots: BTreeMap<ReplicaId, u64>,
}

impl TryFrom<BTreeMap<ReplicaId, u64>> for GCounter {
    type Error = DistlabError;
    fn try_from(mut slots: BTreeMap<ReplicaId, u64>) -> Result<Self> {
        // A zero slot is a slot never incremented: one form per state.
        slots.retain(|_, n| *n > 0);
        check_room("a g-counter", 0, slots.len())?;
        Ok(GCounter { slots })
    }
}

impl From<GCounter> for BTreeMap<ReplicaId, u64> {
    fn from(c: GCounter) -> Self {
        c.slots
    }
}

/// A g-counter's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GCounterUpdate {
    Increment { by: u64 },
}

impl GCounter {
    pub fn new() -> Self {
        GCounter::default()
    }

    /// Replica `replica`'s slot.
    pub fn slot(&self, replica: ReplicaId) -> u64 {
        self.slots.get(&replica).copied().unwrap_or(0)
    }

    /// The slots, by replica.
    pub fn slots(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.slots.iter().map(|(r, n)| (*r, *n))
    }

    /// Adds `by` at `replica`; returns the delta (that replica's slot).
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Result<GCounter> {
        if by == 0 {
            return Ok(GCounter::default());
        }
        let n = self.slot(replica).checked_add(by).ok_or_else(|| {
            DistlabError::InvalidState(format!("replica {replica}'s slot would overflow"))
        })?;
        if n == by {
            check_room("a g-counter", self.slots.len(), 1)?;
        }
        self.slots.insert(replica, n);
        Ok(GCounter {
            slots: BTreeMap::from([(replica, n)]),
        })
    }

    /// The sum of the slots (wider than a slot: it cannot overflow).
    pub fn total(&self) -> u128 {
        self.slots.values().map(|n| u128::from(*n)).sum()
    }
}

impl Crdt for GCounter {
    type Update = GCounterUpdate;
    type Value = u128;

    fn update(
        &mut self,
        replica: ReplicaId,
        _now_ms: u64,
        update: &GCounterUpdate,
    ) -> Result<Self> {
        match update {
            GCounterUpdate::Increment { by } => self.increment(replica, *by),
        }
    }

    fn merge(&mut self, other: &GCounter) -> Result<()> {
        let new = other
            .slots
            .keys()
            .filter(|r| !self.slots.contains_key(r))
            .count();
        check_room("a g-counter", self.slots.len(), new)?;
        for (r, n) in &other.slots {
            let s = self.slots.entry(*r).or_insert(0);
            *s = (*s).max(*n);
        }
        Ok(())
    }

    fn value(&self) -> u128 {
        self.total()
    }

    fn entries(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_add_up_and_duplicates_do_not_count_twice() {
        let (mut a, mut b) = (GCounter::new(), GCounter::new());
        let d1 = a.increment(0, 3).unwrap();
        let d2 = b.increment(1, 4).unwrap();
        a.merge(&d2).unwrap();
        a.merge(&d2).unwrap();
        b.merge(&d1).unwrap();
        assert_eq!((a.value(), b.value()), (7, 7));
        assert_eq!(a, b);
    }

    #[test]
    fn overflow_is_an_error_and_changes_nothing() {
        let mut a = GCounter::new();
        a.increment(2, u64::MAX).unwrap();
        let before = a.clone();
        assert!(a.increment(2, 1).is_err());
        assert_eq!(a, before);
        a.increment(3, u64::MAX).unwrap();
        assert_eq!(a.value(), 2 * u128::from(u64::MAX));
    }

    #[test]
    fn json_round_trips_and_drops_zero_slots() {
        let a: GCounter = serde_json::from_str(r#"{"1": 5, "2": 0}"#).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"1":5}"#);
    }
}
