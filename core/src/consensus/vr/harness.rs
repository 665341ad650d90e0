//! A VR group under the shared closed-loop key-value clients ([`KvHarness`]): the
//! paper's client id is the client's session, "not the primary; try n" is the hint a
//! client follows, and VR's checker runs after every event.

use crate::consensus::kv_clients::KvHarness;
pub use crate::consensus::kv_clients::Workload;
use crate::consensus::vr::invariants::Checker;
use crate::consensus::vr::replica::VrReplica;
use crate::sim::NodeId;

/// A VR group, its clients and the checker.
pub type Harness = KvHarness<VrReplica, Checker>;

impl Harness {
    /// Every replica's executed op-number, for the report of a seed that stalled.
    pub fn applied(&self) -> Vec<(NodeId, u64)> {
        self.per_node(VrReplica::executed)
    }
}
