//! A Multi-Paxos cluster under the shared closed-loop key-value clients ([`KvHarness`]):
//! each client is a session that follows "not the leader; try n" hints, and Paxos'
//! checker (agreement and validity, so it is told every command issued) runs after every
//! event.

use crate::consensus::kv_clients::KvHarness;
pub use crate::consensus::kv_clients::Workload;
use crate::consensus::paxos::invariants::Checker;
use crate::consensus::paxos::node::PaxosNode;
use crate::sim::NodeId;

/// A Paxos cluster, its clients and the checker.
pub type Harness = KvHarness<PaxosNode, Checker>;

impl Harness {
    /// Every node's store, for comparing replicas after the run.
    pub fn applied(&self) -> Vec<(NodeId, u64)> {
        self.per_node(PaxosNode::applied)
    }
}
