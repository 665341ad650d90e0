//! Positive-negative counter (Shapiro et al. 2011, §3.1.2, Specification 7): two
//! grow-only counters, one for increments and one for decrements; the value is their
//! difference, and merge merges each.

use serde::{Deserialize, Serialize};

use crate::crdt::{Crdt, GCounter, ReplicaId, check_room};
use crate::error::Result;

/// A counter that goes up and down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

/// A pn-counter's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PnCounterUpdate {
    Increment { by: u64 },
    Decrement { by: u64 },
}

impl PnCounter {
    pub fn new() -> Self {
        PnCounter::default()
    }

    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Result<PnCounter> {
        self.check_slot(&self.increments, replica)?;
        Ok(PnCounter {
            increments: self.increments.increment(replica, by)?,
            decrements: GCounter::default(),
        })
    }

    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> Result<PnCounter> {
        self.check_slot(&self.decrements, replica)?;
        Ok(PnCounter {
            increments: GCounter::default(),
            decrements: self.decrements.increment(replica, by)?,
        })
    }

    /// The bound covers both halves together.
    fn check_slot(&self, half: &GCounter, replica: ReplicaId) -> Result<()> {
        let new = usize::from(half.slot(replica) == 0);
        check_room("a pn-counter", self.entries(), new)
    }

    /// Increments minus decrements.
    pub fn total(&self) -> i128 {
        // Each half is below 2^84 (2^20 slots of < 2^64): the difference fits.
        self.increments.total() as i128 - self.decrements.total() as i128
    }

    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }
}

impl Crdt for PnCounter {
    type Update = PnCounterUpdate;
    type Value = i128;

    fn update(
        &mut self,
        replica: ReplicaId,
        _now_ms: u64,
        update: &PnCounterUpdate,
    ) -> Result<Self> {
        match update {
            PnCounterUpdate::Increment { by } => self.increment(replica, *by),
            PnCounterUpdate::Decrement { by } => self.decrement(replica, *by),
        }
    }

    fn merge(&mut self, other: &PnCounter) -> Result<()> {
        let new = |mine: &GCounter, theirs: &GCounter| {
            theirs.slots().filter(|(r, _)| mine.slot(*r) == 0).count()
        };
        let adding =
            new(&self.increments, &other.increments) + new(&self.decrements, &other.decrements);
        check_room("a pn-counter", self.entries(), adding)?;
        self.increments.merge(&other.increments)?;
        self.decrements.merge(&other.decrements)?;
        Ok(())
    }

    fn value(&self) -> i128 {
        self.total()
    }

    fn entries(&self) -> usize {
        self.increments.entries() + self.decrements.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_up_and_down_and_converges() {
        let (mut a, mut b) = (PnCounter::new(), PnCounter::new());
        let d1 = a.increment(0, 10).unwrap();
        let d2 = b.decrement(1, 4).unwrap();
        let d3 = b.decrement(1, 1).unwrap();
        a.merge(&d3).unwrap();
        a.merge(&d2).unwrap();
        b.merge(&d1).unwrap();
        assert_eq!((a.value(), b.value()), (5, 5));
        assert_eq!(a, b);
        let c = PnCounter::new();
        let mut d = c.clone();
        d.decrement(7, u64::MAX).unwrap();
        assert_eq!(d.value(), -i128::from(u64::MAX));
    }
}
