//! Last-writer-wins element map: a map whose every key is an LWW register (Shapiro et
//! al. 2011's LWW-element-set, §3.3.3, Specification 13, with a value per element). A
//! removal is a write of "absent" with its own stamp, kept as a tombstone so that a
//! concurrent earlier write cannot bring the key back; the later stamp wins per key,
//! ties broken by replica id, then by the written value (absent first) as in
//! [`crate::crdt::lww_register`].
//!
//! Set and remove O(log n); merge O(m log n).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::crdt::{Crdt, Element, ReplicaId, Stamp, check_room};
use crate::error::{DistlabError, Result};

/// A key's latest write: a value, or `None` for a removal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound = "V: Element")]
pub struct Slot<V: Element> {
    pub stamp: Stamp,
    pub value: Option<V>,
}

/// An LWW element map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<(K, Slot<V>)>", into = "Vec<(K, Slot<V>)>")]
#[serde(bound = "K: Element, V: Element")]
pub struct LwwMap<K: Element, V: Element> {
    slots: BTreeMap<K, Slot<V>>,
}

impl<K: Element, V: Element> TryFrom<Vec<(K, Slot<V>)>> for LwwMap<K, V> {
    type Error = DistlabError;
    fn try_from(pairs: Vec<(K, Slot<V>)>) -> Result<Self> {
        check_room("an lww-map", 0, pairs.len())?;
        let mut map = LwwMap::default();
        for (k, s) in pairs {
            map.join_slot(k, s);
        }
        Ok(map)
    }
}

impl<K: Element, V: Element> From<LwwMap<K, V>> for Vec<(K, Slot<V>)> {
    fn from(m: LwwMap<K, V>) -> Self {
        m.slots.into_iter().collect()
    }
}

impl<K: Element, V: Element> Default for LwwMap<K, V> {
    fn default() -> Self {
        LwwMap {
            slots: BTreeMap::new(),
        }
    }
}

/// An lww-map's update, stamped with the replica's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LwwMapUpdate<K, V> {
    Set(K, V),
    Remove(K),
}

impl<K: Element, V: Element> LwwMap<K, V> {
    pub fn new() -> Self {
        LwwMap::default()
    }

    fn join_slot(&mut self, k: K, s: Slot<V>) {
        match self.slots.get_mut(&k) {
            Some(mine) => {
                if s > *mine {
                    *mine = s;
                }
            }
            None => {
                self.slots.insert(k, s);
            }
        }
    }

    fn write(&mut self, replica: ReplicaId, now_ms: u64, k: K, value: Option<V>) -> Result<Self> {
        if !self.slots.contains_key(&k) {
            check_room("an lww-map", self.slots.len(), 1)?;
        }
        let slot = Slot {
            stamp: Stamp {
                time_ms: now_ms,
                replica,
            },
            value,
        };
        self.join_slot(k.clone(), slot.clone());
        Ok(LwwMap {
            slots: BTreeMap::from([(k, slot)]),
        })
    }

    /// Writes `k` = `v`; returns the delta (the key's write).
    pub fn set(&mut self, replica: ReplicaId, now_ms: u64, k: K, v: V) -> Result<Self> {
        self.write(replica, now_ms, k, Some(v))
    }

    /// Removes `k` (a tombstone write); returns the delta.
    pub fn remove(&mut self, replica: ReplicaId, now_ms: u64, k: K) -> Result<Self> {
        self.write(replica, now_ms, k, None)
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.slots.get(k).and_then(|s| s.value.as_ref())
    }

    /// Every key's latest write, tombstones included.
    pub fn slots(&self) -> impl Iterator<Item = (&K, &Slot<V>)> {
        self.slots.iter()
    }
}

impl<K: Element, V: Element> Crdt for LwwMap<K, V> {
    type Update = LwwMapUpdate<K, V>;
    /// The live pairs, by key.
    type Value = Vec<(K, V)>;

    fn update(
        &mut self,
        replica: ReplicaId,
        now_ms: u64,
        update: &LwwMapUpdate<K, V>,
    ) -> Result<Self> {
        match update {
            LwwMapUpdate::Set(k, v) => self.set(replica, now_ms, k.clone(), v.clone()),
            LwwMapUpdate::Remove(k) => self.remove(replica, now_ms, k.clone()),
        }
    }

    fn merge(&mut self, other: &LwwMap<K, V>) -> Result<()> {
        let new = other
            .slots
            .keys()
            .filter(|k| !self.slots.contains_key(k))
            .count();
        check_room("an lww-map", self.slots.len(), new)?;
        for (k, s) in &other.slots {
            self.join_slot(k.clone(), s.clone());
        }
        Ok(())
    }

    fn value(&self) -> Vec<(K, V)> {
        self.slots
            .iter()
            .filter_map(|(k, s)| s.value.as_ref().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    fn entries(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_removal_beats_an_earlier_set_in_any_order() {
        let (mut a, mut b) = (LwwMap::new(), LwwMap::new());
        let set = a.set(0, 10, 7u32, 1u32).unwrap();
        let remove = b.remove(1, 20, 7).unwrap();
        a.merge(&remove).unwrap();
        b.merge(&set).unwrap();
        assert!(a.value().is_empty());
        assert_eq!(a, b);
        let again = a.set(0, 30, 7, 2).unwrap();
        b.merge(&again).unwrap();
        assert_eq!(b.value(), vec![(7, 2)]);
    }
}
