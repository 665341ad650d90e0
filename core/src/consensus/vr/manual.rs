//! A VR group driven by hand, message by message, as paxos' and raft's `manual` modules
//! drive theirs: the test decides which timer fires, which messages are delivered and
//! which are lost, when a replica crashes and restarts. The dangerous schedules — a view
//! change during a view change, a recovery while a view change is under way, a replica
//! that voted and then crashed — need an exact interleaving that random timeouts would
//! only find by luck.
//!
//! The cluster itself is the shared [`crate::sim::manual::ManualCluster`]; this module
//! names the timers.

use crate::consensus::vr::invariants::Checker;
use crate::consensus::vr::messages::Message;
use crate::consensus::vr::replica::{TICK, VrReplica};
use crate::sim::NodeId;
use crate::sim::manual;

/// A message sent and not yet delivered or dropped.
pub type Queued = manual::Queued<Message>;
/// A hand-driven VR group.
pub type ManualCluster = manual::ManualCluster<VrReplica, Checker>;

impl ManualCluster {
    /// Fires `id`'s timer: a primary's heartbeat and re-sends, a backup's check on the
    /// primary (a view change once its deadline passed: see [`Self::advance`]), a view
    /// change's or a recovery's re-sends.
    pub fn tick(&mut self, id: NodeId) {
        self.fire(id, TICK);
    }
}
