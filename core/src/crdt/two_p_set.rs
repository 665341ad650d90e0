//! Two-phase set (Shapiro et al. 2011, §3.3.2, Specification 12): a g-set of additions
//! and a g-set of removals (tombstones); an element is in when added and not removed. A
//! removed element can never come back — the price of needing no tags.
//!
//! Remove has the paper's precondition (the element is in the set here): removing an
//! element never added would ban it before anyone added it. A remove's delta carries the
//! addition too, so every state keeps removals within additions even when deltas arrive
//! out of order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::crdt::{Crdt, Element, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A two-phase set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TwoPSetRepr<T>", into = "TwoPSetRepr<T>")]
#[serde(bound = "T: Element")]
pub struct TwoPSet<T: Element> {
    added: BTreeSet<T>,
    removed: BTreeSet<T>,
}

/// The JSON form.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound = "T: Element")]
pub struct TwoPSetRepr<T: Element> {
    added: BTreeSet<T>,
    removed: BTreeSet<T>,
}

impl<T: Element> TryFrom<TwoPSetRepr<T>> for TwoPSet<T> {
    type Error = DistlabError;
    fn try_from(r: TwoPSetRepr<T>) -> Result<Self> {
        if !r.removed.is_subset(&r.added) {
            return Err(DistlabError::field(
                "removed",
                "a 2p-set's removed elements must all be added elements",
            ));
        }
        check_room("a 2p-set", r.added.len(), r.removed.len())?;
        Ok(TwoPSet {
            added: r.added,
            removed: r.removed,
        })
    }
}

impl<T: Element> From<TwoPSet<T>> for TwoPSetRepr<T> {
    fn from(s: TwoPSet<T>) -> Self {
        TwoPSetRepr {
            added: s.added,
            removed: s.removed,
        }
    }
}

impl<T: Element> Default for TwoPSet<T> {
    fn default() -> Self {
        TwoPSet {
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }
}

/// A 2p-set's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwoPSetUpdate<T> {
    Add(T),
    Remove(T),
}

impl<T: Element> TwoPSet<T> {
    pub fn new() -> Self {
        TwoPSet::default()
    }

    /// Adds `e` (no effect on the value if `e` was removed already: it stays out).
    pub fn add(&mut self, e: T) -> Result<TwoPSet<T>> {
        if !self.added.contains(&e) {
            check_room("a 2p-set", self.entries(), 1)?;
            self.added.insert(e.clone());
        }
        Ok(TwoPSet {
            added: BTreeSet::from([e]),
            removed: BTreeSet::new(),
        })
    }

    /// Removes `e` for good; an error if `e` is not in the set here.
    pub fn remove(&mut self, e: T) -> Result<TwoPSet<T>> {
        if !self.contains(&e) {
            return Err(DistlabError::InvalidState(format!(
                "{e:?} is not in the 2p-set: only an element in the set can be removed"
            )));
        }
        check_room("a 2p-set", self.entries(), 1)?;
        self.removed.insert(e.clone());
        Ok(TwoPSet {
            added: BTreeSet::from([e.clone()]),
            removed: BTreeSet::from([e]),
        })
    }

    pub fn contains(&self, e: &T) -> bool {
        self.added.contains(e) && !self.removed.contains(e)
    }

    /// Whether `e` was removed (and can never be added back).
    pub fn is_removed(&self, e: &T) -> bool {
        self.removed.contains(e)
    }
}

impl<T: Element> Crdt for TwoPSet<T> {
    type Update = TwoPSetUpdate<T>;
    type Value = Vec<T>;

    fn update(
        &mut self,
        _replica: ReplicaId,
        _now_ms: u64,
        update: &TwoPSetUpdate<T>,
    ) -> Result<Self> {
        match update {
            TwoPSetUpdate::Add(e) => self.add(e.clone()),
            TwoPSetUpdate::Remove(e) => self.remove(e.clone()),
        }
    }

    fn merge(&mut self, other: &TwoPSet<T>) -> Result<()> {
        let new = other.added.difference(&self.added).count()
            + other.removed.difference(&self.removed).count();
        check_room("a 2p-set", self.entries(), new)?;
        self.added.extend(other.added.iter().cloned());
        self.removed.extend(other.removed.iter().cloned());
        Ok(())
    }

    fn value(&self) -> Vec<T> {
        self.added.difference(&self.removed).cloned().collect()
    }

    fn entries(&self) -> usize {
        self.added.len() + self.removed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_element_stays_out() {
        let (mut a, mut b) = (TwoPSet::new(), TwoPSet::new());
        let add = a.add(5u32).unwrap();
        let remove = a.remove(5).unwrap();
        // The removal arrives first: the add inside it keeps the state well formed.
        b.merge(&remove).unwrap();
        b.merge(&add).unwrap();
        assert!(b.value().is_empty());
        b.add(5).unwrap();
        assert!(!b.contains(&5));
        assert_eq!(a, b);
        assert!(a.remove(9).is_err());
    }

    #[test]
    fn json_with_a_removal_never_added_is_refused() {
        let e = serde_json::from_str::<TwoPSet<u32>>(r#"{"added": [1], "removed": [2]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("removed"), "{e}");
    }
}
