//! Grow-only set (Shapiro et al. 2011, §3.3.1, Specification 11): add only; merge is union.
//!
//! Add and lookup O(log n), merge O(m log n).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::crdt::{Crdt, Element, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A grow-only set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeSet<T>", into = "BTreeSet<T>")]
#[serde(bound = "T: Element")]
pub struct GSet<T: Element> {
    elements: BTreeSet<T>,
}

impl<T: Element> Default for GSet<T> {
    fn default() -> Self {
        GSet {
            elements: BTreeSet::new(),
        }
    }
}

impl<T: Element> TryFrom<BTreeSet<T>> for GSet<T> {
    type Error = DistlabError;
    fn try_from(elements: BTreeSet<T>) -> Result<Self> {
        check_room("a g-set", 0, elements.len())?;
        Ok(GSet { elements })
    }
}

impl<T: Element> From<GSet<T>> for BTreeSet<T> {
    fn from(s: GSet<T>) -> Self {
        s.elements
    }
}

/// A g-set's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GSetUpdate<T> {
    Add(T),
}

impl<T: Element> GSet<T> {
    pub fn new() -> Self {
        GSet::default()
    }

    /// Adds `e`; returns the delta ({e}).
    pub fn add(&mut self, e: T) -> Result<GSet<T>> {
        if !self.elements.contains(&e) {
            check_room("a g-set", self.elements.len(), 1)?;
            self.elements.insert(e.clone());
        }
        Ok(GSet {
            elements: BTreeSet::from([e]),
        })
    }

    pub fn contains(&self, e: &T) -> bool {
        self.elements.contains(e)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.elements.iter()
    }
}

impl<T: Element> Crdt for GSet<T> {
    type Update = GSetUpdate<T>;
    type Value = Vec<T>;

    fn update(
        &mut self,
        _replica: ReplicaId,
        _now_ms: u64,
        update: &GSetUpdate<T>,
    ) -> Result<Self> {
        match update {
            GSetUpdate::Add(e) => self.add(e.clone()),
        }
    }

    fn merge(&mut self, other: &GSet<T>) -> Result<()> {
        let new = other.elements.difference(&self.elements).count();
        check_room("a g-set", self.elements.len(), new)?;
        self.elements.extend(other.elements.iter().cloned());
        Ok(())
    }

    fn value(&self) -> Vec<T> {
        self.elements.iter().cloned().collect()
    }

    fn entries(&self) -> usize {
        self.elements.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_adds() {
        let (mut a, mut b) = (GSet::new(), GSet::new());
        let d = a.add(1u32).unwrap();
        b.add(2).unwrap();
        b.merge(&d).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.value(), vec![1, 2]);
        assert_eq!(a, b);
    }
}
