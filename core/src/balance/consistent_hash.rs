//! `balance.consistent-hash`: a hash ring with virtual nodes and an N-replica preference
//! list — Karger et al., "Consistent Hashing and Random Trees" (STOC 1997), with the
//! virtual nodes and the preference list of Amazon's Dynamo (DeCandia et al., SOSP 2007,
//! §4.2–4.3).
//!
//! Each physical node puts `virtual_nodes × weight` points on a 64-bit ring; a key belongs
//! to the first point at or after its hash, clockwise (wrapping past the top). Adding a
//! node therefore takes over only the arcs just before its new points, and removing one
//! hands its arcs to the next points clockwise: about `1/N` of the keys move, and only
//! to or from that node.
//!
//! Layout: the points are one sorted `Vec<u64>` with a parallel `Vec<u32>` of owners, so a
//! lookup is one binary search over a dense array of hashes — O(log V) with V points —
//! and touches no tree nodes. Adding a node merges its sorted points in (O(V)), removing
//! one filters them out (O(V)).
//!
//! Hashing is stable and seedable (MurmurHash64A finished with SplitMix64), so the same
//! seed gives the same ring on every platform; never `RandomState`.

use std::cmp::Ordering;

use crate::error::{DistlabError, Result};
use crate::sketch::hash::{mix64, murmur64a};

/// The most virtual nodes one unit of weight may place.
pub const MAX_VIRTUAL_NODES: u32 = 10_000;
/// The largest weight a node may have.
pub const MAX_WEIGHT: u32 = 1_000;
/// The most points the whole ring may hold (bounds memory: 12 bytes a point).
pub const MAX_RING_POINTS: usize = 4_000_000;
/// The longest node name, in bytes.
pub const MAX_NODE_NAME_BYTES: usize = 256;

/// Salt that separates a node's virtual-node hashes from keys' hashes.
const VNODE_SALT: u64 = 0x7669_7274_7561_6c21;

/// The 64-bit hash of `bytes` under `seed`: MurmurHash64A (the sketches' hash) keyed by
/// the seed's low half, its output mixed with the whole seed so that every seed bit counts.
#[inline]
pub fn ring_hash(seed: u64, bytes: &[u8]) -> u64 {
    mix64(murmur64a(bytes, (seed ^ (seed >> 32)) as u32) ^ seed)
}

/// The position of virtual node `index` of the node named `name`.
#[inline]
fn vnode_point(seed: u64, name: &str, index: u32) -> u64 {
    // mix64 is a bijection, so one node's points never coincide among themselves.
    ring_hash(seed ^ VNODE_SALT, name.as_bytes()) ^ mix64(u64::from(index) ^ VNODE_SALT)
}

/// One physical node on the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingNode {
    pub name: String,
    pub weight: u32,
    /// Points it has on the ring: the ring's virtual nodes × its weight.
    pub points: u32,
}

/// A consistent-hash ring over named nodes.
#[derive(Debug, Clone)]
pub struct HashRing {
    seed: u64,
    virtual_nodes: u32,
    /// The nodes by slot; a removed node leaves `None` for the next one added.
    slots: Vec<Option<RingNode>>,
    live: usize,
    /// Point positions, ascending; ties (a 64-bit collision) ordered by owner's name so
    /// that the ring does not depend on the order nodes joined.
    points: Vec<u64>,
    /// `owners[i]` is the slot of the node that placed `points[i]`.
    owners: Vec<u32>,
}

impl HashRing {
    /// An empty ring placing `virtual_nodes` points per unit of weight, hashing with
    /// `seed`.
    pub fn new(virtual_nodes: u32, seed: u64) -> Result<Self> {
        check_virtual_nodes(virtual_nodes)?;
        Ok(HashRing {
            seed,
            virtual_nodes,
            slots: Vec::new(),
            live: 0,
            points: Vec::new(),
            owners: Vec::new(),
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn virtual_nodes(&self) -> u32 {
        self.virtual_nodes
    }

    /// Physical nodes on the ring.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Points (virtual nodes) on the ring.
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// The nodes, in slot order (the order they joined, a removed node's slot reused).
    pub fn nodes(&self) -> impl Iterator<Item = &RingNode> {
        self.slots.iter().flatten()
    }

    /// Whether a node of that name is on the ring.
    pub fn contains(&self, name: &str) -> bool {
        self.slot_of(name).is_some()
    }

    /// The hash a key is placed by.
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        ring_hash(self.seed, key)
    }

    /// The points in ring order with their owners' names.
    pub fn points(&self) -> impl Iterator<Item = (u64, &str)> {
        self.points
            .iter()
            .zip(&self.owners)
            .map(|(p, o)| (*p, self.name_at(*o)))
    }

    /// Adds `name` with `weight` (its share relative to weight-1 nodes). Only the arcs
    /// just before its new points change owner.
    pub fn add_node(&mut self, name: &str, weight: u32) -> Result<()> {
        check_name(name)?;
        if weight == 0 || weight > MAX_WEIGHT {
            return Err(DistlabError::field(
                "weight",
                format!("must be between 1 and {MAX_WEIGHT}, got {weight}"),
            ));
        }
        if self.contains(name) {
            return Err(DistlabError::InvalidState(format!(
                "node `{name}` is already on the ring"
            )));
        }
        let count = self.virtual_nodes.saturating_mul(weight);
        let total = self.points.len().saturating_add(count as usize);
        if total > MAX_RING_POINTS {
            return Err(DistlabError::field(
                "weight",
                format!(
                    "the ring would hold {total} points (virtual nodes × weight summed over \
                     nodes), more than {MAX_RING_POINTS}"
                ),
            ));
        }
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let slot_id =
            u32::try_from(slot).map_err(|_| DistlabError::InvalidState("too many nodes".into()))?;
        self.slots[slot] = Some(RingNode {
            name: name.to_string(),
            weight,
            points: count,
        });
        self.live += 1;
        let mut fresh: Vec<u64> = (0..count)
            .map(|i| vnode_point(self.seed, name, i))
            .collect();
        fresh.sort_unstable();
        self.merge_in(&fresh, slot_id);
        Ok(())
    }

    /// Removes `name`: its arcs go to the next points clockwise, nothing else moves.
    pub fn remove_node(&mut self, name: &str) -> Result<RingNode> {
        let slot = self.slot_of(name).ok_or_else(|| DistlabError::Unknown {
            what: "ring node",
            id: name.to_string(),
        })?;
        let node = self.slots[slot as usize]
            .take()
            .ok_or_else(|| DistlabError::InvalidState(format!("node `{name}` has no slot")))?;
        self.live -= 1;
        let mut kept = 0;
        for i in 0..self.points.len() {
            if self.owners[i] != slot {
                self.points[kept] = self.points[i];
                self.owners[kept] = self.owners[i];
                kept += 1;
            }
        }
        self.points.truncate(kept);
        self.owners.truncate(kept);
        Ok(node)
    }

    /// Rebuilds the ring with `virtual_nodes` points per unit of weight (every node's
    /// points are placed again; the same seed gives the same points).
    pub fn set_virtual_nodes(&mut self, virtual_nodes: u32) -> Result<()> {
        check_virtual_nodes(virtual_nodes)?;
        let total: u64 = self
            .nodes()
            .map(|n| u64::from(n.weight) * u64::from(virtual_nodes))
            .sum();
        if total > MAX_RING_POINTS as u64 {
            return Err(DistlabError::field(
                "virtualNodes",
                format!("the ring would hold {total} points, more than {MAX_RING_POINTS}"),
            ));
        }
        let nodes: Vec<(String, u32)> = self.nodes().map(|n| (n.name.clone(), n.weight)).collect();
        let mut rebuilt = HashRing::new(virtual_nodes, self.seed)?;
        for (name, weight) in nodes {
            rebuilt.add_node(&name, weight)?;
        }
        *self = rebuilt;
        Ok(())
    }

    /// The node `key` belongs to; `None` on an empty ring. O(log V).
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<&str> {
        self.owner_index(self.key_hash(key))
            .map(|i| self.name_at(self.owners[i]))
    }

    /// The index into the points of the first point at or after `hash`, wrapping.
    #[inline]
    pub fn owner_index(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|p| *p < hash);
        Some(if i == self.points.len() { 0 } else { i })
    }

    /// The node owning the point at `index` (from [`Self::owner_index`]).
    pub fn owner_at(&self, index: usize) -> Option<&str> {
        self.owners.get(index).map(|o| self.name_at(*o))
    }

    /// The `replicas` distinct nodes that hold `key`, in order: its owner, then the next
    /// distinct nodes met walking clockwise (Dynamo's preference list).
    pub fn preference_list(&self, key: &[u8], replicas: usize) -> Result<Vec<&str>> {
        if replicas == 0 || replicas > self.live {
            return Err(DistlabError::field(
                "replicas",
                format!(
                    "must be between 1 and the number of nodes ({}), got {replicas}",
                    self.live
                ),
            ));
        }
        let Some(start) = self.owner_index(self.key_hash(key)) else {
            return Err(DistlabError::InvalidState("the ring has no nodes".into()));
        };
        let mut chosen: Vec<u32> = Vec::with_capacity(replicas);
        let n = self.points.len();
        for step in 0..n {
            let owner = self.owners[(start + step) % n];
            if !chosen.contains(&owner) {
                chosen.push(owner);
                if chosen.len() == replicas {
                    break;
                }
            }
        }
        Ok(chosen.into_iter().map(|o| self.name_at(o)).collect())
    }

    /// Each node's share of the ring (the arcs its points end), in slot order; sums to 1
    /// on a non-empty ring.
    pub fn ownership(&self) -> Vec<(&str, f64)> {
        let mut share = vec![0u128; self.slots.len()];
        let n = self.points.len();
        for i in 0..n {
            let prev = if i == 0 {
                self.points[n - 1]
            } else {
                self.points[i - 1]
            };
            // The arc (prev, p]; the first point's arc wraps past the top of the ring.
            let len = self.points[i].wrapping_sub(prev);
            let len = if n == 1 {
                u128::from(u64::MAX) + 1
            } else {
                u128::from(len)
            };
            share[self.owners[i] as usize] += len;
        }
        let ring = (u128::from(u64::MAX) + 1) as f64;
        self.slots
            .iter()
            .zip(share)
            .filter_map(|(s, len)| s.as_ref().map(|s| (s.name.as_str(), len as f64 / ring)))
            .collect()
    }

    fn slot_of(&self, name: &str) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.name == name))
            .and_then(|i| u32::try_from(i).ok())
    }

    fn name_at(&self, slot: u32) -> &str {
        // Every owner in `owners` names a live slot: remove_node filters its points out.
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map_or("", |n| n.name.as_str())
    }

    /// Merges `fresh` (sorted) points of `slot` into the ring in one pass.
    fn merge_in(&mut self, fresh: &[u64], slot: u32) {
        let old_points = std::mem::take(&mut self.points);
        let old_owners = std::mem::take(&mut self.owners);
        let total = old_points.len() + fresh.len();
        let mut points = Vec::with_capacity(total);
        let mut owners = Vec::with_capacity(total);
        let (mut i, mut j) = (0, 0);
        while i < old_points.len() || j < fresh.len() {
            let take_old = match (old_points.get(i), fresh.get(j)) {
                (Some(a), Some(b)) => self.order(*a, old_owners[i], *b, slot) == Ordering::Less,
                (Some(_), None) => true,
                _ => false,
            };
            if take_old {
                points.push(old_points[i]);
                owners.push(old_owners[i]);
                i += 1;
            } else {
                points.push(fresh[j]);
                owners.push(slot);
                j += 1;
            }
        }
        self.points = points;
        self.owners = owners;
    }

    /// Ring order: by position, a collision broken by the owners' names.
    fn order(&self, a: u64, a_owner: u32, b: u64, b_owner: u32) -> Ordering {
        a.cmp(&b)
            .then_with(|| self.name_at(a_owner).cmp(self.name_at(b_owner)))
    }
}

fn check_virtual_nodes(virtual_nodes: u32) -> Result<()> {
    if virtual_nodes == 0 || virtual_nodes > MAX_VIRTUAL_NODES {
        return Err(DistlabError::field(
            "virtualNodes",
            format!("must be between 1 and {MAX_VIRTUAL_NODES}, got {virtual_nodes}"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NODE_NAME_BYTES {
        return Err(DistlabError::field(
            "name",
            format!(
                "must be 1 to {MAX_NODE_NAME_BYTES} bytes, got {}",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// The population standard deviation of `values` over their mean (the coefficient of
/// variation): 0 is perfectly even load.
pub fn relative_std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    libm::sqrt(var) / mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(nodes: usize, vnodes: u32) -> HashRing {
        let mut r = HashRing::new(vnodes, 7).unwrap();
        for i in 0..nodes {
            r.add_node(&format!("node-{i}"), 1).unwrap();
        }
        r
    }

    /// The reference: scan every point for the smallest at or after the hash, else the
    /// smallest overall.
    fn linear_lookup(r: &HashRing, key: &[u8]) -> Option<String> {
        let h = r.key_hash(key);
        let pts: Vec<(u64, &str)> = r.points().collect();
        pts.iter()
            .filter(|(p, _)| *p >= h)
            .min_by_key(|(p, _)| *p)
            .or_else(|| pts.iter().min_by_key(|(p, _)| *p))
            .map(|(_, n)| n.to_string())
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(
            HashRing::new(0, 1)
                .unwrap_err()
                .to_string()
                .contains("`virtualNodes`")
        );
        let mut r = ring(2, 10);
        assert!(matches!(
            r.add_node("node-0", 1),
            Err(DistlabError::InvalidState(_))
        ));
        assert!(
            r.add_node("x", 0)
                .unwrap_err()
                .to_string()
                .contains("`weight`")
        );
        assert!(
            r.add_node("", 1)
                .unwrap_err()
                .to_string()
                .contains("`name`")
        );
        assert!(matches!(
            r.remove_node("nope"),
            Err(DistlabError::Unknown { .. })
        ));
        assert!(
            r.preference_list(b"k", 3)
                .unwrap_err()
                .to_string()
                .contains("`replicas`")
        );
        assert!(r.preference_list(b"k", 0).is_err());
        assert!(
            HashRing::new(10, 1)
                .unwrap()
                .preference_list(b"k", 1)
                .is_err()
        );
        let mut big = HashRing::new(MAX_VIRTUAL_NODES, 1).unwrap();
        assert!(big.add_node("a", MAX_WEIGHT).is_err());
        assert_eq!(big.point_count(), 0);
        assert!(r.lookup(b"k").is_some());
        assert!(HashRing::new(1, 1).unwrap().lookup(b"k").is_none());
    }

    #[test]
    fn same_seed_same_ring_and_join_order_does_not_matter() {
        let a = ring(5, 50);
        let mut b = HashRing::new(50, 7).unwrap();
        for i in (0..5).rev() {
            b.add_node(&format!("node-{i}"), 1).unwrap();
        }
        let pa: Vec<_> = a.points().collect();
        let pb: Vec<_> = b.points().collect();
        assert_eq!(pa, pb);
        let c = {
            let mut c = HashRing::new(50, 8).unwrap();
            c.add_node("node-0", 1).unwrap();
            c
        };
        assert_ne!(c.points().next(), a.points().find(|(_, n)| *n == "node-0"));
    }

    #[test]
    fn weights_scale_points_and_share() {
        let mut r = HashRing::new(200, 3).unwrap();
        r.add_node("small", 1).unwrap();
        r.add_node("big", 3).unwrap();
        assert_eq!(r.point_count(), 800);
        let share = r.ownership();
        let total: f64 = share.iter().map(|s| s.1).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let big = share.iter().find(|s| s.0 == "big").unwrap().1;
        assert!(big > 0.65 && big < 0.85, "{big}");
    }

    #[test]
    fn set_virtual_nodes_rebuilds_with_the_same_nodes() {
        let mut r = ring(3, 10);
        r.set_virtual_nodes(20).unwrap();
        assert_eq!(r.point_count(), 60);
        assert_eq!(r.len(), 3);
        assert!(r.set_virtual_nodes(0).is_err());
        assert_eq!(r.point_count(), 60);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn lookup_equals_linear_scan(nodes in 1usize..8, vnodes in 1u32..40, seed in any::<u64>(),
                                     keys in prop::collection::vec(any::<u64>(), 1..50)) {
            let mut r = HashRing::new(vnodes, seed).unwrap();
            for i in 0..nodes {
                r.add_node(&format!("n{i}"), 1 + (i as u32 % 3)).unwrap();
            }
            for k in keys {
                let key = k.to_le_bytes();
                prop_assert_eq!(r.lookup(&key).map(str::to_string), linear_lookup(&r, &key));
            }
        }

        #[test]
        fn add_and_remove_move_only_the_changed_nodes_keys(
            nodes in 1usize..8, vnodes in 1u32..60, seed in any::<u64>(), keys in 50u64..400) {
            let mut r = HashRing::new(vnodes, seed).unwrap();
            for i in 0..nodes {
                r.add_node(&format!("n{i}"), 1).unwrap();
            }
            let owners = |r: &HashRing| -> Vec<String> {
                (0..keys).map(|k| r.lookup(&k.to_le_bytes()).unwrap().to_string()).collect()
            };
            let before = owners(&r);
            r.add_node("new", 1).unwrap();
            let after = owners(&r);
            for (b, a) in before.iter().zip(&after) {
                prop_assert!(a == b || a == "new", "{b} -> {a}");
            }
            let removed = r.remove_node("n0").unwrap();
            prop_assert_eq!(removed.name, "n0");
            let last = owners(&r);
            for (a, l) in after.iter().zip(&last) {
                prop_assert!(l == a || a == "n0", "{a} -> {l}");
            }
            // Removing what was added restores the ring exactly.
            r.add_node("n0", 1).unwrap();
            r.remove_node("new").unwrap();
            prop_assert_eq!(owners(&r), before);
        }

        #[test]
        fn preference_list_is_distinct_and_starts_at_the_owner(
            nodes in 1usize..8, vnodes in 1u32..30, seed in any::<u64>(), key in any::<u64>()) {
            let mut r = HashRing::new(vnodes, seed).unwrap();
            for i in 0..nodes {
                r.add_node(&format!("n{i}"), 1).unwrap();
            }
            for n in 1..=nodes {
                let list = r.preference_list(&key.to_le_bytes(), n).unwrap();
                prop_assert_eq!(list.len(), n);
                let mut sorted = list.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), n);
                prop_assert_eq!(Some(list[0]), r.lookup(&key.to_le_bytes()));
                // A longer list extends the shorter one.
                if n > 1 {
                    let shorter = r.preference_list(&key.to_le_bytes(), n - 1).unwrap();
                    prop_assert_eq!(&list[..n - 1], &shorter[..]);
                }
            }
        }
    }
}
