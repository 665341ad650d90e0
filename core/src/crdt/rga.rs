//! Replicated Growable Array (Roh, Jeon, Kim & Lee 2011, "Replicated abstract data
//! types: Building blocks for collaborative applications", JPDC 71(3)): a text sequence
//! where every character has a unique id (a Lamport timestamp and the inserting replica),
//! is inserted *after* the id of the character to its left, and is deleted by a tombstone
//! that keeps it as an anchor for inserts that reference it.
//!
//! Concurrent inserts after the same character are ordered by timestamp, then replica:
//! the larger id goes first (nearer its anchor). Integration is the paper's: from the
//! anchor, skip right past every character with a larger id, insert before the first
//! smaller one. Skipping is right because ids grow along every chain of anchors (a
//! character's timestamp exceeds every timestamp its replica had seen), so a larger
//! neighbour's whole run of descendants is larger too.
//!
//! State-based merge and deltas (see [`crate::crdt`]): a state is the set of characters
//! with their anchors and tombstone flags; merging integrates the other's unknown
//! characters in id order (anchors first, since they are smaller) and ORs the tombstones.
//! A delta whose anchor has not arrived yet waits in `pending` until it does, so deltas
//! converge in any delivery order — the causal delivery the paper's op-based form needs,
//! built in.
//!
//! Cost: the sequence is kept as one array of ids, tombstones included. Typing at the end
//! is O(1) amortised plus O(log n) for the id map; an insert or delete by visible index,
//! or a remote insert far from the end, is O(n). Tombstones are never collected.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::crdt::{Crdt, ReplicaId, check_room};
use crate::error::{DistlabError, Result};

/// A character's id: Lamport time, then replica. `(0, 0)` is the start of the text.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RgaId {
    pub time: u64,
    pub replica: ReplicaId,
}

/// The anchor every text starts from.
pub const START: RgaId = RgaId {
    time: 0,
    replica: 0,
};

/// One character as the JSON form and the deltas carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RgaChar {
    pub id: RgaId,
    /// The character it was inserted after.
    pub after: RgaId,
    pub ch: char,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    after: RgaId,
    ch: char,
    deleted: bool,
}

/// A replicated text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<RgaChar>", into = "Vec<RgaChar>")]
pub struct Rga {
    /// Integrated characters.
    nodes: BTreeMap<RgaId, Node>,
    /// The integrated ids in text order, tombstones included.
    order: Vec<RgaId>,
    /// Characters whose anchor has not arrived.
    pending: BTreeMap<RgaId, Node>,
    /// The largest time seen.
    max_time: u64,
    /// Characters not deleted.
    visible: usize,
}

/// Equal characters, tombstones and pending ones: `order` derives from them.
impl PartialEq for Rga {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes && self.pending == other.pending
    }
}
impl Eq for Rga {}

impl Hash for Rga {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.nodes.hash(h);
        self.pending.hash(h);
    }
}

impl TryFrom<Vec<RgaChar>> for Rga {
    type Error = DistlabError;
    fn try_from(chars: Vec<RgaChar>) -> Result<Self> {
        let mut delta = Rga::default();
        for c in chars {
            if c.after.time >= c.id.time {
                return Err(DistlabError::field(
                    "after",
                    format!(
                        "an RGA character's anchor must be older than it: {:?} after {:?}",
                        c.id, c.after
                    ),
                ));
            }
            let node = Node {
                after: c.after,
                ch: c.ch,
                deleted: c.deleted,
            };
            if delta.pending.insert(c.id, node).is_some_and(|n| n != node) {
                return Err(DistlabError::field(
                    "id",
                    format!("{:?} names two characters", c.id),
                ));
            }
            check_room("an RGA", delta.pending.len(), 0)?;
        }
        let mut rga = Rga::default();
        rga.merge(&delta)?;
        Ok(rga)
    }
}

impl From<Rga> for Vec<RgaChar> {
    fn from(r: Rga) -> Self {
        r.chars().collect()
    }
}

/// An RGA update, by visible index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RgaUpdate {
    /// Insert `ch` so that it is at `index` (0 ..= length).
    Insert { index: usize, ch: char },
    /// Delete the character at `index`.
    Delete { index: usize },
}

impl Rga {
    pub fn new() -> Self {
        Rga::default()
    }

    /// Visible characters.
    pub fn len(&self) -> usize {
        self.visible
    }

    pub fn is_empty(&self) -> bool {
        self.visible == 0
    }

    /// Every character, integrated then pending, in id order.
    pub fn chars(&self) -> impl Iterator<Item = RgaChar> + '_ {
        self.nodes
            .iter()
            .chain(self.pending.iter())
            .map(|(id, n)| RgaChar {
                id: *id,
                after: n.after,
                ch: n.ch,
                deleted: n.deleted,
            })
    }

    /// The text.
    pub fn text(&self) -> String {
        self.order
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .filter(|n| !n.deleted)
            .map(|n| n.ch)
            .collect()
    }

    /// Characters waiting for their anchor.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.nodes.len() - self.visible
    }

    /// Where in `order` the visible character `index` is.
    fn position_of_visible(&self, index: usize) -> Option<usize> {
        // Typing at the end is the common case: count from whichever end is nearer.
        if index >= self.visible {
            return None;
        }
        if index >= self.visible / 2 {
            let mut from_end = self.visible - index;
            for (pos, id) in self.order.iter().enumerate().rev() {
                if self.nodes.get(id).is_some_and(|n| !n.deleted) {
                    from_end -= 1;
                    if from_end == 0 {
                        return Some(pos);
                    }
                }
            }
            None
        } else {
            let mut seen = 0;
            for (pos, id) in self.order.iter().enumerate() {
                if self.nodes.get(id).is_some_and(|n| !n.deleted) {
                    if seen == index {
                        return Some(pos);
                    }
                    seen += 1;
                }
            }
            None
        }
    }

    /// Inserts `ch` at visible `index` (0 ..= len) at `replica`; returns the delta.
    pub fn insert(&mut self, replica: ReplicaId, index: usize, ch: char) -> Result<Rga> {
        if index > self.visible {
            return Err(DistlabError::field(
                "index",
                format!("must be at most the length {}, got {index}", self.visible),
            ));
        }
        check_room("an RGA", self.entries(), 1)?;
        let after = match index {
            0 => START,
            i => self
                .position_of_visible(i - 1)
                .and_then(|p| self.order.get(p).copied())
                .unwrap_or(START),
        };
        let time = self.max_time.checked_add(1).ok_or_else(|| {
            DistlabError::InvalidState("the RGA's Lamport clock would overflow".into())
        })?;
        let id = RgaId { time, replica };
        let node = Node {
            after,
            ch,
            deleted: false,
        };
        self.integrate(id, node);
        let mut delta = Rga::default();
        delta.integrate(id, node);
        Ok(delta)
    }

    /// Inserts `text` at visible `index`, one character after another; returns the delta
    /// of them all.
    pub fn insert_str(&mut self, replica: ReplicaId, index: usize, text: &str) -> Result<Rga> {
        let n = text.chars().count();
        check_room("an RGA", self.entries(), n)?;
        if index > self.visible {
            return Err(DistlabError::field(
                "index",
                format!("must be at most the length {}, got {index}", self.visible),
            ));
        }
        let mut delta = Rga::default();
        for (i, ch) in text.chars().enumerate() {
            let d = self.insert(replica, index + i, ch)?;
            delta.merge(&d)?;
        }
        Ok(delta)
    }

    /// Deletes the character at visible `index` (a tombstone); returns the delta.
    pub fn delete(&mut self, index: usize) -> Result<Rga> {
        let id = self
            .position_of_visible(index)
            .and_then(|p| self.order.get(p).copied())
            .ok_or_else(|| {
                DistlabError::field(
                    "index",
                    format!("must be below the length {}, got {index}", self.visible),
                )
            })?;
        let mut delta = Rga::default();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.deleted = true;
            self.visible -= 1;
            delta.integrate(id, *n);
        }
        Ok(delta)
    }

    /// Places a character not seen before, or parks it until its anchor comes.
    fn integrate(&mut self, id: RgaId, node: Node) {
        self.max_time = self.max_time.max(id.time);
        if node.after != START && !self.nodes.contains_key(&node.after) {
            self.pending.insert(id, node);
            return;
        }
        self.place(id, node);
        // Characters that waited for this one (and, in turn, for them).
        if !self.pending.is_empty() {
            let mut ready = vec![id];
            while let Some(anchor) = ready.pop() {
                let children: Vec<RgaId> = self
                    .pending
                    .iter()
                    .filter(|(_, n)| n.after == anchor)
                    .map(|(c, _)| *c)
                    .collect();
                for c in children {
                    if let Some(n) = self.pending.remove(&c) {
                        self.place(c, n);
                        ready.push(c);
                    }
                }
            }
        }
    }

    fn place(&mut self, id: RgaId, node: Node) {
        let mut pos = match node.after {
            START => 0,
            a => self
                .order
                .iter()
                .rposition(|x| *x == a)
                .map_or(0, |p| p + 1),
        };
        while self.order.get(pos).is_some_and(|x| *x > id) {
            pos += 1;
        }
        self.order.insert(pos, id);
        self.nodes.insert(id, node);
        if !node.deleted {
            self.visible += 1;
        }
    }

    fn known(&self, id: &RgaId) -> Option<&Node> {
        self.nodes.get(id).or_else(|| self.pending.get(id))
    }
}

impl Crdt for Rga {
    type Update = RgaUpdate;
    type Value = String;

    fn update(&mut self, replica: ReplicaId, _now_ms: u64, update: &RgaUpdate) -> Result<Self> {
        match update {
            RgaUpdate::Insert { index, ch } => self.insert(replica, *index, *ch),
            RgaUpdate::Delete { index } => self.delete(*index),
        }
    }

    fn merge(&mut self, other: &Rga) -> Result<()> {
        let mut new = 0;
        for c in other.chars() {
            match self.known(&c.id) {
                Some(n) if n.after != c.after || n.ch != c.ch => {
                    return Err(DistlabError::InvalidState(format!(
                        "{:?} is two different characters in the states merged",
                        c.id
                    )));
                }
                Some(_) => {}
                None => new += 1,
            }
        }
        check_room("an RGA", self.entries(), new)?;
        let mut unknown: Vec<RgaChar> = Vec::new();
        for c in other.chars() {
            if let Some(n) = self.nodes.get_mut(&c.id) {
                if c.deleted && !n.deleted {
                    n.deleted = true;
                    self.visible -= 1;
                }
            } else if let Some(n) = self.pending.get_mut(&c.id) {
                n.deleted |= c.deleted;
            } else {
                unknown.push(c);
            }
        }
        // Anchors are older: in id order, each one's anchor comes before it.
        unknown.sort_by_key(|c| c.id);
        for c in unknown {
            self.integrate(
                c.id,
                Node {
                    after: c.after,
                    ch: c.ch,
                    deleted: c.deleted,
                },
            );
        }
        Ok(())
    }

    fn value(&self) -> String {
        self.text()
    }

    fn entries(&self) -> usize {
        self.nodes.len() + self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_inserts_at_one_place_order_by_timestamp_then_replica() {
        let mut a = Rga::new();
        let base = a.insert_str(0, 0, "ac").unwrap();
        let mut b = Rga::new();
        b.merge(&base).unwrap();
        // Both insert after "a" concurrently, at the same Lamport time: replica 2 wins
        // the place nearer the anchor.
        let da = a.insert(1, 1, 'x').unwrap();
        let db = b.insert(2, 1, 'y').unwrap();
        a.merge(&db).unwrap();
        b.merge(&da).unwrap();
        assert_eq!(a.text(), "ayxc");
        assert_eq!(a, b);
        // A later insert at the same place goes first (larger timestamp).
        let dz = a.insert(1, 1, 'z').unwrap();
        b.merge(&dz).unwrap();
        assert_eq!(b.text(), "azyxc");
    }

    #[test]
    fn deltas_out_of_order_wait_for_their_anchor() {
        let mut a = Rga::new();
        let d1 = a.insert(0, 0, 'h').unwrap();
        let d2 = a.insert(0, 1, 'i').unwrap();
        let d3 = a.delete(0).unwrap();
        let mut b = Rga::new();
        b.merge(&d2).unwrap();
        assert_eq!((b.text().as_str(), b.pending()), ("", 1));
        b.merge(&d1).unwrap();
        assert_eq!((b.text().as_str(), b.pending()), ("hi", 0));
        b.merge(&d3).unwrap();
        b.merge(&d2).unwrap();
        assert_eq!(
            (b.text().as_str(), b.pending(), b.tombstones()),
            ("i", 0, 1)
        );
        assert_eq!(a, b);
    }

    #[test]
    fn a_tombstone_still_anchors_inserts() {
        let mut a = Rga::new();
        let base = a.insert_str(0, 0, "ab").unwrap();
        let mut b = Rga::new();
        b.merge(&base).unwrap();
        let del = a.delete(0).unwrap();
        let ins = b.insert(1, 1, 'x').unwrap();
        a.merge(&ins).unwrap();
        b.merge(&del).unwrap();
        assert_eq!((a.text().as_str(), b.text().as_str()), ("xb", "xb"));
    }

    #[test]
    fn bad_json_and_bad_indices_are_errors() {
        let e = serde_json::from_str::<Rga>(
            r#"[{"id": {"time": 1, "replica": 0}, "after": {"time": 1, "replica": 0}, "ch": "a", "deleted": false}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("older"), "{e}");
        let mut a = Rga::new();
        assert!(a.insert(0, 1, 'x').is_err());
        assert!(a.delete(0).is_err());
        a.insert_str(0, 0, "héllo").unwrap();
        let back: Rga = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!((back.text(), &back), ("héllo".to_string(), &a));
    }
}
