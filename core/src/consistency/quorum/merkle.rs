//! A Merkle tree over a replica's keys, for anti-entropy (DeCandia et al., "Dynamo",
//! SOSP 2007, section 4.7; Merkle, "A digital signature based on a conventional
//! encryption function", CRYPTO 1987).
//!
//! The key-hash space `[0, 2^64)` is cut into `2^depth` equal ranges; leaf `i` is the
//! hash of the keys (with what the replica holds for each) whose key hash falls in range
//! `i`, and each parent is the hash of its two children. Two replicas compare trees top
//! down: equal roots end the exchange after one hash; otherwise only the children of
//! differing nodes are compared, down to the leaves, so the ranges to synchronise are
//! found while exchanging hashes in proportion to the differences, not the keys.
//!
//! The hash is the simulator's stable 64-bit hash, not a cryptographic one: replicas do
//! not lie to each other here, and a collision (which would hide a difference until the
//! range changes again) has probability about `2^-64` per compared node.
//!
//! Cost: building is O(keys + 2^depth); a diff compares at most `2 · differing leaves ·
//! depth + 1` nodes.

use std::hash::{Hash, Hasher};

use crate::error::{DistlabError, Result};
use crate::sim::trace::StableHasher;

/// Deepest tree: 2^16 leaves.
pub const MAX_DEPTH: u32 = 16;

/// The hash of an empty range (and of a node whose children are both empty), so that two
/// empty subtrees compare equal whatever their position.
pub const EMPTY: u64 = 0;

/// Where `key` falls in the key-hash space.
pub fn key_hash(key: &str) -> u64 {
    let mut h = StableHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// The leaf of a tree of `depth` levels below the root that covers `key_hash`.
pub fn leaf_of(key_hash: u64, depth: u32) -> u32 {
    if depth == 0 {
        0
    } else {
        (key_hash >> (64 - depth.min(MAX_DEPTH))) as u32
    }
}

/// The key hashes leaf `leaf` covers, first and last included.
pub fn leaf_range(leaf: u32, depth: u32) -> (u64, u64) {
    let depth = depth.min(MAX_DEPTH);
    if depth == 0 {
        return (0, u64::MAX);
    }
    let width = 64 - depth;
    let first = u64::from(leaf) << width;
    (first, first | ((1u64 << width) - 1))
}

/// A Merkle tree: `levels[0]` is the root, `levels[depth]` the `2^depth` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerkleTree {
    depth: u32,
    levels: Vec<Vec<u64>>,
}

impl MerkleTree {
    /// Builds the tree of `entries`: each a key and a hash of what is held for it
    /// (version and value), given in increasing key order (a `BTreeMap`'s order), so
    /// that two replicas holding the same entries build the same leaves.
    pub fn build<'a>(
        depth: u32,
        entries: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<Self> {
        if depth > MAX_DEPTH {
            return Err(DistlabError::field(
                "depth",
                format!("must be at most {MAX_DEPTH}, got {depth}"),
            ));
        }
        let leaves = 1usize << depth;
        let mut hashers: Vec<Option<StableHasher>> = vec![None; leaves];
        for (key, content) in entries {
            let leaf = leaf_of(key_hash(key), depth) as usize;
            if let Some(slot) = hashers.get_mut(leaf) {
                let h = slot.get_or_insert_with(StableHasher::default);
                key.hash(h);
                content.hash(h);
            }
        }
        let mut levels = vec![Vec::new(); depth as usize + 1];
        levels[depth as usize] = hashers
            .iter()
            .map(|h| h.map_or(EMPTY, |h| h.finish().max(1)))
            .collect();
        for level in (0..depth as usize).rev() {
            let below = &levels[level + 1];
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [EMPTY, EMPTY] => EMPTY,
                    [l, r] => {
                        let mut h = StableHasher::default();
                        (l, r).hash(&mut h);
                        h.finish().max(1)
                    }
                    _ => EMPTY,
                })
                .collect();
            levels[level] = up;
        }
        Ok(MerkleTree { depth, levels })
    }

    /// Levels below the root.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub fn root(&self) -> u64 {
        self.hash(0, 0).unwrap_or(EMPTY)
    }

    /// Node `index` of `level` (0: the root), if there is one.
    pub fn hash(&self, level: u32, index: u32) -> Option<u64> {
        self.levels
            .get(level as usize)?
            .get(index as usize)
            .copied()
    }

    /// Every level, root first.
    pub fn levels(&self) -> &[Vec<u64>] {
        &self.levels
    }

    /// Of the other side's hashes at `level`, the nodes where this tree differs.
    pub fn differing(&self, level: u32, theirs: &[(u32, u64)]) -> Vec<u32> {
        theirs
            .iter()
            .filter(|(i, h)| self.hash(level, *i) != Some(*h))
            .map(|(i, _)| *i)
            .collect()
    }

    /// This tree's hashes of the children of `parents` (nodes of `level`), to send.
    pub fn children_hashes(&self, level: u32, parents: &[u32]) -> Vec<(u32, u64)> {
        parents
            .iter()
            .flat_map(|&p| [2 * p, 2 * p + 1])
            .filter_map(|c| Some((c, self.hash(level + 1, c)?)))
            .collect()
    }

    /// Compares two trees top down as two replicas would: the leaves (ranges) that
    /// differ, and what the exchange cost.
    pub fn diff(&self, other: &MerkleTree) -> Result<TreeDiff> {
        if self.depth != other.depth {
            return Err(DistlabError::field(
                "depth",
                format!(
                    "trees of different depths ({} and {}) cannot be compared",
                    self.depth, other.depth
                ),
            ));
        }
        let mut sent = vec![(0, self.root())];
        let mut d = TreeDiff::default();
        let mut level = 0;
        loop {
            d.hashes_exchanged += sent.len() as u64;
            d.compared_per_level.push(sent.len() as u32);
            let differing = other.differing(level, &sent);
            if differing.is_empty() || level == self.depth {
                d.ranges = if level == self.depth {
                    differing
                } else {
                    Vec::new()
                };
                return Ok(d);
            }
            sent = self.children_hashes(level, &differing);
            level += 1;
        }
    }
}

/// What comparing two trees found and cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// The leaves whose ranges differ, in increasing order.
    pub ranges: Vec<u32>,
    /// Node hashes sent, over all levels.
    pub hashes_exchanged: u64,
    /// Nodes compared at each level reached, root first.
    pub compared_per_level: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn tree(depth: u32, store: &BTreeMap<String, u64>) -> MerkleTree {
        MerkleTree::build(depth, store.iter().map(|(k, v)| (k.as_str(), *v))).unwrap()
    }

    /// The leaves holding a key the two stores disagree on (one lacks it, or the
    /// contents differ).
    fn truly_differing(
        depth: u32,
        a: &BTreeMap<String, u64>,
        b: &BTreeMap<String, u64>,
    ) -> Vec<u32> {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| leaf_of(key_hash(k), depth))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn identical_stores_exchange_only_the_root() {
        let store: BTreeMap<String, u64> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        for depth in [0, 1, 4, 10] {
            let d = tree(depth, &store).diff(&tree(depth, &store)).unwrap();
            assert_eq!(d.hashes_exchanged, 1, "depth {depth}");
            assert!(d.ranges.is_empty());
        }
    }

    #[test]
    fn one_changed_key_is_found_along_one_path() {
        let a: BTreeMap<String, u64> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let mut b = a.clone();
        b.insert("k7".into(), 1_000);
        let depth = 6;
        let d = tree(depth, &a).diff(&tree(depth, &b)).unwrap();
        assert_eq!(d.ranges, vec![leaf_of(key_hash("k7"), depth)]);
        // The root, then both children of each differing node on the way down.
        assert_eq!(d.hashes_exchanged, 1 + 2 * u64::from(depth));
        let (lo, hi) = leaf_range(d.ranges[0], depth);
        assert!((lo..=hi).contains(&key_hash("k7")));
    }

    #[test]
    fn leaf_ranges_tile_the_key_space() {
        let depth = 3;
        let mut next = 0u64;
        for leaf in 0..8 {
            let (lo, hi) = leaf_range(leaf, depth);
            assert_eq!(lo, next);
            assert_eq!(leaf_of(lo, depth), leaf);
            assert_eq!(leaf_of(hi, depth), leaf);
            next = hi.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last range ends at 2^64 - 1");
        assert_eq!(leaf_range(0, 0), (0, u64::MAX));
    }

    #[test]
    fn bad_depths_are_refused() {
        assert!(MerkleTree::build(MAX_DEPTH + 1, []).is_err());
        let a = MerkleTree::build(2, []).unwrap();
        let b = MerkleTree::build(3, []).unwrap();
        assert!(a.diff(&b).is_err());
        assert_eq!(a.root(), EMPTY);
    }

    #[test]
    fn the_diff_can_fail_on_a_corrupted_tree() {
        // A tree whose leaf changed without its parents being recomputed hides the
        // difference from a top-down comparison: the check below would catch it.
        let a: BTreeMap<String, u64> = (0..20).map(|i| (format!("k{i}"), i)).collect();
        let mut b = a.clone();
        b.insert("k3".into(), 99);
        let depth = 4;
        let good = tree(depth, &a);
        let mut bad = tree(depth, &b);
        bad.levels[0][0] = good.root();
        let d = good.diff(&bad).unwrap();
        assert_ne!(d.ranges, truly_differing(depth, &a, &b));
    }

    fn store() -> impl Strategy<Value = BTreeMap<String, u64>> {
        prop::collection::btree_map("k[0-9]{1,3}", 0u64..4, 0..40)
    }

    proptest! {
        /// The diff finds exactly the ranges holding keys that differ: none missed,
        /// none reported without a differing key.
        #[test]
        fn diff_finds_exactly_the_differing_ranges(
            a in store(),
            edits in prop::collection::vec(("k[0-9]{1,3}", prop::option::of(0u64..4)), 0..8),
            depth in 0u32..9,
        ) {
            let mut b = a.clone();
            for (k, v) in edits {
                match v {
                    Some(v) => { b.insert(k, v); }
                    None => { b.remove(&k); }
                }
            }
            let (ta, tb) = (tree(depth, &a), tree(depth, &b));
            let d = ta.diff(&tb).unwrap();
            let expected = truly_differing(depth, &a, &b);
            prop_assert_eq!(&d.ranges, &expected);
            prop_assert_eq!(tb.diff(&ta).unwrap().ranges, expected.clone());
            if expected.is_empty() {
                prop_assert_eq!(d.hashes_exchanged, 1);
            } else {
                prop_assert!(d.hashes_exchanged <= 1 + 2 * expected.len() as u64 * u64::from(depth));
            }
        }
    }
}
