//! A Paxos cluster driven by hand, message by message, as raft's `manual` module drives
//! Raft: the test decides which timer fires, which messages are delivered and which are
//! lost, when a node crashes and restarts. The dangerous schedules — a proposer crashing
//! between its phases, two proposers preempting each other round after round — need an
//! exact interleaving that random timeouts would only find by luck.
//!
//! The cluster itself is the shared [`crate::sim::manual::ManualCluster`]; this module
//! names the timers.

use crate::consensus::paxos::invariants::Checker;
use crate::consensus::paxos::node::{Message, PaxosNode, TICK, TIMEOUT};
use crate::sim::NodeId;
use crate::sim::manual;

/// A message sent and not yet delivered or dropped.
pub type Queued = manual::Queued<Message>;
/// A hand-driven Paxos cluster.
pub type ManualCluster = manual::ManualCluster<PaxosNode, Checker>;

impl ManualCluster {
    /// Fires `id`'s retry timer (single-decree: phase 1 again if a command waits and the
    /// back-off is over; Multi-Paxos: phase 1 if no leader was heard lately).
    pub fn timeout(&mut self, id: NodeId) {
        self.fire(id, TIMEOUT);
    }

    /// Fires `id`'s heartbeat timer (a Multi-Paxos leader's heartbeat and resends).
    pub fn heartbeat(&mut self, id: NodeId) {
        self.fire(id, TICK);
    }
}
