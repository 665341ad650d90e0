//! A Zab ensemble driven by hand, message by message, as VR's and Paxos' `manual`
//! modules drive theirs: the test decides which timer fires, which messages are
//! delivered and which are lost, when a peer crashes and restarts. The schedules of
//! Zab.tla's issues.md and a leader crashing mid-synchronisation need an exact
//! interleaving that random timeouts would only find by luck.
//!
//! The cluster itself is the shared [`crate::sim::manual::ManualCluster`]; this module
//! names the timers.

use crate::consensus::zab::invariants::Checker;
use crate::consensus::zab::messages::Message;
use crate::consensus::zab::peer::{TICK, ZabPeer};
use crate::sim::NodeId;
use crate::sim::manual;

/// A message sent and not yet delivered or dropped.
pub type Queued = manual::Queued<Message>;
/// A hand-driven Zab ensemble.
pub type ManualCluster = manual::ManualCluster<ZabPeer, Checker>;

impl ManualCluster {
    /// Fires `id`'s timer: a leader's heartbeat and re-sends (or its step-down), a
    /// follower's re-sends (or its return to election once its deadline passed: see
    /// [`Self::advance`]), a looking peer's notification.
    pub fn tick(&mut self, id: NodeId) {
        self.fire(id, TICK);
    }

    /// `rounds` times: every running peer's timer fires, then every message is
    /// delivered (no time passes, so nobody times out).
    pub fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for id in 0..self.len() {
                self.tick(id);
            }
            self.deliver(|_| true);
        }
    }

    /// The peer leading an established epoch in broadcast, if any.
    pub fn serving_leader(&self) -> Option<NodeId> {
        (0..self.len()).find(|&id| self.node(id).is_some_and(ZabPeer::is_serving_leader))
    }
}
