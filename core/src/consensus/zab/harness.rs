//! A Zab ensemble under the shared closed-loop key-value clients ([`KvHarness`]): each
//! client is a session that follows "not the leader; try n" hints, and Zab's checker runs
//! after every event.

use crate::consensus::kv_clients::KvHarness;
pub use crate::consensus::kv_clients::Workload;
use crate::consensus::zab::invariants::Checker;
use crate::consensus::zab::peer::ZabPeer;
use crate::sim::NodeId;

/// A Zab ensemble, its clients and the checker.
pub type Harness = KvHarness<ZabPeer, Checker>;

impl Harness {
    /// Every peer's delivered count, for the report of a seed that stalled.
    pub fn delivered(&self) -> Vec<(NodeId, usize)> {
        self.per_node(ZabPeer::committed)
    }

    /// The peer leading an established epoch in broadcast, if one is up.
    pub fn serving_leader(&self) -> Option<NodeId> {
        let sim = self.sim();
        (0..sim.node_count()).find(|&id| sim.node(id).is_some_and(ZabPeer::is_serving_leader))
    }
}
