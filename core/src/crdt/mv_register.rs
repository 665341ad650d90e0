//! Multi-value register (Shapiro et al. 2011, §3.2.2, Specification 10; Dynamo's
//! siblings): each write is versioned by a vector clock that dominates every version the
//! writer had seen; merge keeps the writes no other write dominates, so concurrent writes
//! all survive as siblings until a write that saw them all replaces them.
//!
//! Set O(s·k) and merge O((s + t)²·k) for s and t siblings of k-entry clocks; siblings
//! are few (one per concurrent writer).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::consistency::vector_clock::VectorClock;
use crate::crdt::{Crdt, Element, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A write and its version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound = "T: Element")]
pub struct Versioned<T: Element> {
    pub version: VectorClock,
    pub value: T,
}

/// A multi-value register: its siblings, none dominating another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Versioned<T>>", into = "Vec<Versioned<T>>")]
#[serde(bound = "T: Element")]
pub struct MvRegister<T: Element> {
    siblings: BTreeSet<Versioned<T>>,
}

impl<T: Element> TryFrom<Vec<Versioned<T>>> for MvRegister<T> {
    type Error = DistlabError;
    fn try_from(writes: Vec<Versioned<T>>) -> Result<Self> {
        let entries: usize = writes.iter().map(|w| w.version.len().max(1)).sum();
        check_room("an mv-register", 0, entries)?;
        let mut r = MvRegister::default();
        r.join(writes.into_iter().collect());
        Ok(r)
    }
}

impl<T: Element> From<MvRegister<T>> for Vec<Versioned<T>> {
    fn from(r: MvRegister<T>) -> Self {
        r.siblings.into_iter().collect()
    }
}

impl<T: Element> Default for MvRegister<T> {
    fn default() -> Self {
        MvRegister {
            siblings: BTreeSet::new(),
        }
    }
}

/// An mv-register's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvRegisterUpdate<T> {
    Set(T),
}

impl<T: Element> MvRegister<T> {
    pub fn new() -> Self {
        MvRegister::default()
    }

    /// Writes `value` at `replica`, replacing every sibling seen here. Returns the delta
    /// (the new write).
    pub fn set(&mut self, replica: ReplicaId, value: T) -> Result<Self> {
        let mut version = VectorClock::new();
        for s in &self.siblings {
            version.merge(&s.version);
        }
        version.increment(replica)?;
        check_room("an mv-register", 0, version.len())?;
        let write = Versioned { version, value };
        self.siblings = BTreeSet::from([write.clone()]);
        Ok(MvRegister {
            siblings: BTreeSet::from([write]),
        })
    }

    /// The siblings with their versions.
    pub fn siblings(&self) -> impl Iterator<Item = &Versioned<T>> {
        self.siblings.iter()
    }

    /// Keeps, of the union, the writes no other write strictly dominates.
    fn join(&mut self, mut all: BTreeSet<Versioned<T>>) {
        all.extend(self.siblings.iter().cloned());
        let keep: BTreeSet<Versioned<T>> = all
            .iter()
            .filter(|w| {
                !all.iter()
                    .any(|o| o.version != w.version && o.version.dominates(&w.version))
            })
            .cloned()
            .collect();
        self.siblings = keep;
    }
}

impl<T: Element> Crdt for MvRegister<T> {
    type Update = MvRegisterUpdate<T>;
    /// The siblings' values, in version order.
    type Value = Vec<T>;

    fn update(
        &mut self,
        replica: ReplicaId,
        _now_ms: u64,
        update: &MvRegisterUpdate<T>,
    ) -> Result<Self> {
        match update {
            MvRegisterUpdate::Set(v) => self.set(replica, v.clone()),
        }
    }

    fn merge(&mut self, other: &MvRegister<T>) -> Result<()> {
        check_room("an mv-register", self.entries(), other.entries())?;
        self.join(other.siblings.clone());
        Ok(())
    }

    fn value(&self) -> Vec<T> {
        self.siblings.iter().map(|s| s.value.clone()).collect()
    }

    fn entries(&self) -> usize {
        self.siblings.iter().map(|s| s.version.len().max(1)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_are_siblings_until_a_write_that_saw_both() {
        let (mut a, mut b) = (MvRegister::new(), MvRegister::new());
        let wa = a.set(0, 1u32).unwrap();
        let wb = b.set(1, 2).unwrap();
        a.merge(&wb).unwrap();
        b.merge(&wa).unwrap();
        assert_eq!(a.value(), vec![1, 2]);
        assert_eq!(a, b);
        let wc = b.set(1, 3).unwrap();
        a.merge(&wc).unwrap();
        assert_eq!(a.value(), vec![3]);
        assert_eq!(a, b);
        a.merge(&wa).unwrap();
        assert_eq!(a.value(), vec![3], "an old write stays replaced");
    }
}
