//! Observed-remove set (Shapiro et al. 2011, §3.3.5, Specification 15): every add tags
//! the element with a unique tag (a dot: replica, per-replica counter); a remove
//! tombstones the tags it has *observed*. An add concurrent with a remove carries a tag
//! the remove did not see, so the element stays: add wins.
//!
//! This is the paper's form, with tombstones kept (they count towards the bound); the
//! tombstone-free form of Bieniusa et al. 2012 ("An optimized conflict-free replicated
//! set") trades them for a version vector and is not built here.
//!
//! Add O(log n); remove O(t log n) for the element's t tags; merge O((m + n) log n) when
//! the other state brings new tombstones (the live tags are swept), O(m log n) otherwise.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::crdt::{Crdt, Element, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A unique tag: the `counter`-th add made at `replica`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dot {
    pub replica: ReplicaId,
    pub counter: u64,
}

/// An add-wins observed-remove set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "OrSetRepr<T>", into = "OrSetRepr<T>")]
#[serde(bound = "T: Element")]
pub struct OrSet<T: Element> {
    /// Each element in the set with its tags not yet removed (never empty).
    live: BTreeMap<T, BTreeSet<Dot>>,
    /// Tags removed.
    removed: BTreeSet<Dot>,
    /// The highest counter of every replica's tags seen, live or removed: derived from the
    /// tags (so not serialised), kept so an add finds its next tag in O(log r).
    seen: BTreeMap<ReplicaId, u64>,
    /// Live and removed tags together.
    tags: usize,
}

/// The JSON form: `{live: [[element, [dots]]...], removed: [dots]}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound = "T: Element")]
pub struct OrSetRepr<T: Element> {
    live: Vec<(T, BTreeSet<Dot>)>,
    removed: BTreeSet<Dot>,
}

impl<T: Element> TryFrom<OrSetRepr<T>> for OrSet<T> {
    type Error = DistlabError;
    fn try_from(r: OrSetRepr<T>) -> Result<Self> {
        let mut set = OrSet::default();
        check_room("an or-set", 0, r.removed.len())?;
        set.tags = r.removed.len();
        for d in &r.removed {
            set.see(*d);
        }
        set.removed = r.removed;
        let mut owners = BTreeSet::new();
        for (e, dots) in r.live {
            for d in dots {
                if !owners.insert(d) {
                    return Err(DistlabError::field(
                        "live",
                        format!("tag {d:?} tags two elements of an or-set"),
                    ));
                }
                set.see(d);
                if !set.removed.contains(&d) {
                    check_room("an or-set", set.tags, 1)?;
                    set.tags += 1;
                    set.live.entry(e.clone()).or_default().insert(d);
                }
            }
        }
        Ok(set)
    }
}

impl<T: Element> From<OrSet<T>> for OrSetRepr<T> {
    fn from(s: OrSet<T>) -> Self {
        OrSetRepr {
            live: s.live.into_iter().collect(),
            removed: s.removed,
        }
    }
}

impl<T: Element> Default for OrSet<T> {
    fn default() -> Self {
        OrSet {
            live: BTreeMap::new(),
            removed: BTreeSet::new(),
            seen: BTreeMap::new(),
            tags: 0,
        }
    }
}

/// An or-set's update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrSetUpdate<T> {
    Add(T),
    /// Removes the tags of the element seen here (a no-op if it is not in the set here).
    Remove(T),
}

impl<T: Element> OrSet<T> {
    pub fn new() -> Self {
        OrSet::default()
    }

    fn see(&mut self, d: Dot) {
        let s = self.seen.entry(d.replica).or_insert(0);
        *s = (*s).max(d.counter);
    }

    /// Adds `e` at `replica` with a fresh tag; returns the delta (the tagged element).
    pub fn add(&mut self, replica: ReplicaId, e: T) -> Result<OrSet<T>> {
        let counter = self
            .seen
            .get(&replica)
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| {
                DistlabError::InvalidState(format!("replica {replica}'s tags are exhausted"))
            })?;
        check_room("an or-set", self.tags, 1)?;
        let dot = Dot { replica, counter };
        self.see(dot);
        self.tags += 1;
        self.live.entry(e.clone()).or_default().insert(dot);
        let mut delta = OrSet::default();
        delta.see(dot);
        delta.tags = 1;
        delta.live.insert(e, BTreeSet::from([dot]));
        Ok(delta)
    }

    /// Removes `e` as seen here: its tags become tombstones. Returns the delta (the
    /// tombstones).
    pub fn remove(&mut self, e: &T) -> OrSet<T> {
        let mut delta = OrSet::default();
        if let Some(dots) = self.live.remove(e) {
            // The tags move from live to removed: the count stays.
            self.removed.extend(dots.iter().copied());
            for d in &dots {
                delta.see(*d);
            }
            delta.tags = dots.len();
            delta.removed = dots;
        }
        delta
    }

    pub fn contains(&self, e: &T) -> bool {
        self.live.contains_key(e)
    }

    /// The live tags of `e`.
    pub fn tags_of(&self, e: &T) -> impl Iterator<Item = Dot> + '_ {
        self.live.get(e).into_iter().flatten().copied()
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.removed.len()
    }

    fn knows(&self, e: &T, d: &Dot) -> bool {
        self.removed.contains(d) || self.live.get(e).is_some_and(|s| s.contains(d))
    }
}

impl<T: Element> Crdt for OrSet<T> {
    type Update = OrSetUpdate<T>;
    type Value = Vec<T>;

    fn update(
        &mut self,
        replica: ReplicaId,
        _now_ms: u64,
        update: &OrSetUpdate<T>,
    ) -> Result<Self> {
        match update {
            OrSetUpdate::Add(e) => self.add(replica, e.clone()),
            OrSetUpdate::Remove(e) => Ok(self.remove(e)),
        }
    }

    fn merge(&mut self, other: &OrSet<T>) -> Result<()> {
        let new_removed: Vec<Dot> = other
            .removed
            .iter()
            .filter(|d| !self.removed.contains(d))
            .copied()
            .collect();
        // An upper bound: a new tombstone may retire a live tag of ours (no new entry).
        let new_live = other
            .live
            .iter()
            .flat_map(|(e, dots)| dots.iter().map(move |d| (e, d)))
            .filter(|(e, d)| !self.knows(e, d))
            .count();
        check_room("an or-set", self.tags, new_live + new_removed.len())?;
        for d in other.removed.iter().chain(other.live.values().flatten()) {
            self.see(*d);
        }
        if !new_removed.is_empty() {
            let before: usize = self.live.values().map(BTreeSet::len).sum();
            self.removed.extend(new_removed.iter().copied());
            let removed = &self.removed;
            self.live.retain(|_, dots| {
                dots.retain(|d| !removed.contains(d));
                !dots.is_empty()
            });
            let after: usize = self.live.values().map(BTreeSet::len).sum();
            // Retired live tags were counted once already.
            self.tags = self.tags + new_removed.len() - (before - after);
        }
        for (e, dots) in &other.live {
            for d in dots {
                if !self.knows(e, d) {
                    self.live.entry(e.clone()).or_default().insert(*d);
                    self.tags += 1;
                }
            }
        }
        Ok(())
    }

    fn value(&self) -> Vec<T> {
        self.live.keys().cloned().collect()
    }

    fn entries(&self) -> usize {
        self.tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concurrent_add_wins_over_a_remove() {
        let (mut a, mut b) = (OrSet::new(), OrSet::new());
        let add = a.add(0, 9u32).unwrap();
        b.merge(&add).unwrap();
        // a removes x while b adds it again, concurrently.
        let remove = a.remove(&9);
        let re_add = b.add(1, 9).unwrap();
        a.merge(&re_add).unwrap();
        b.merge(&remove).unwrap();
        assert_eq!(a.value(), vec![9]);
        assert_eq!(a, b);
        // A remove that saw both tags takes it out everywhere.
        let remove = b.remove(&9);
        a.merge(&remove).unwrap();
        assert!(a.value().is_empty());
        assert_eq!(a, b);
        assert_eq!(a.entries(), 2);
    }

    #[test]
    fn tags_continue_after_a_round_trip_through_json() {
        let mut a = OrSet::new();
        a.add(3, 7u32).unwrap();
        a.remove(&7);
        let mut back: OrSet<u32> =
            serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        back.add(3, 7).unwrap();
        assert_eq!(
            back.tags_of(&7).collect::<Vec<_>>(),
            vec![Dot {
                replica: 3,
                counter: 2
            }]
        );
    }

    #[test]
    fn one_tag_on_two_elements_is_refused() {
        let e = serde_json::from_str::<OrSet<u32>>(
            r#"{"live": [[1, [{"replica": 0, "counter": 1}]], [2, [{"replica": 0, "counter": 1}]]], "removed": []}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("two elements"), "{e}");
    }
}
