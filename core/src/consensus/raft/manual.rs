//! A Raft cluster driven by hand, message by message: the test decides which timer fires,
//! which messages are delivered and which are lost, when a node crashes and restarts. It
//! is how the paper's figures are replayed exactly (Figure 8 needs one entry to reach one
//! follower and not another), where a simulation with random timeouts would need luck.
//!
//! Nodes run through the same [`Node`] interface as in the simulator, with a
//! [`Ctx`] built by hand; disks are the simulator's [`Disk`]. Invariants are checked
//! after every handler.

use crate::consensus::raft::config::RaftParams;
use crate::consensus::raft::invariants::{InvariantChecker, Observation, Violation};
use crate::consensus::raft::messages::Message;
use crate::consensus::raft::node::{
    BOOT_QUIET_TIMER, ELECTION_TIMER, HEARTBEAT_TIMER, RaftNode, RaftRequest,
};
use crate::consensus::raft::state_machine::KvResponse;
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sim::disk::Disk;
use crate::sim::node::{ClientId, ClientRequest, Ctx, Effect, Node, NodeId, Reply, RequestId};
use crate::time::{Duration, Time};

/// A message sent and not yet delivered or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// A hand-driven cluster.
#[derive(Debug, Clone)]
pub struct ManualCluster {
    params: RaftParams,
    nodes: Vec<Option<RaftNode>>,
    disks: Vec<Disk>,
    now: Time,
    rng: SimRng,
    queue: Vec<Queued>,
    replies: Vec<(ClientId, RequestId, Reply<KvResponse>)>,
    checker: InvariantChecker,
    violation: Option<Violation>,
    next_request: RequestId,
}

impl ManualCluster {
    /// Boots `n` nodes with empty disks.
    pub fn new(n: u32, params: RaftParams, seed: u64) -> Self {
        let mut c = ManualCluster {
            params,
            nodes: (0..n).map(|_| None).collect(),
            disks: (0..n).map(|_| Disk::new()).collect(),
            now: Time::from_millis(1),
            rng: SimRng::new(seed),
            queue: Vec::new(),
            replies: Vec::new(),
            checker: InvariantChecker::new(),
            violation: None,
            next_request: 0,
        };
        for id in 0..n {
            c.boot(id);
        }
        c
    }

    pub fn node(&self, id: NodeId) -> Option<&RaftNode> {
        self.nodes.get(id as usize).and_then(Option::as_ref)
    }
    /// Node `id`'s disk (kept while the node is crashed).
    pub fn disk(&self, id: NodeId) -> Option<&Disk> {
        self.disks.get(id as usize)
    }
    pub fn queue(&self) -> &[Queued] {
        &self.queue
    }
    /// Every reply sent to a client so far.
    pub fn replies(&self) -> &[(ClientId, RequestId, Reply<KvResponse>)] {
        &self.replies
    }
    /// The first invariant violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    pub fn now(&self) -> Time {
        self.now
    }

    /// Moves every node's clock forward.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn boot(&mut self, id: NodeId) {
        let Some(disk) = self.disks.get(id as usize) else {
            return;
        };
        let node = RaftNode::recover(id, &self.params, disk);
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            *slot = Some(node);
        }
        self.run(id, |n, ctx| n.on_start(ctx));
    }

    /// Runs one handler of `id` and executes its effects (timers are the test's job).
    fn run(&mut self, id: NodeId, f: impl FnOnce(&mut RaftNode, &mut Ctx<'_, RaftNode>)) {
        let count = self.nodes.len() as u32;
        let Some(Some(node)) = self.nodes.get_mut(id as usize) else {
            return;
        };
        let mut effects = Vec::new();
        let mut ctx = Ctx::new(id, self.now, count, &mut self.rng, &mut effects);
        f(node, &mut ctx);
        for e in effects {
            match e {
                Effect::Send { to, msg } => self.queue.push(Queued { from: id, to, msg }),
                Effect::Reply {
                    client,
                    request,
                    reply,
                } => self.replies.push((client, request, reply)),
                Effect::Disk(op) => {
                    if let Some(d) = self.disks.get_mut(id as usize) {
                        d.apply(op);
                    }
                }
                Effect::SetTimer { .. }
                | Effect::CancelTimer { .. }
                | Effect::StateChange(_)
                | Effect::Log(_) => {}
            }
        }
        self.check();
    }

    fn check(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let obs: Vec<Observation<'_>> = self.nodes.iter().flatten().map(Observation::of).collect();
        if let Err(v) = self.checker.check(&obs) {
            self.violation = Some(v);
        }
    }

    /// Fires `id`'s election timer (a follower campaigns; a leader checks its quorum).
    pub fn timeout(&mut self, id: NodeId) {
        self.run(id, |n, ctx| n.on_timer(ELECTION_TIMER, ctx));
    }

    /// Fires `id`'s heartbeat timer.
    pub fn heartbeat(&mut self, id: NodeId) {
        self.run(id, |n, ctx| n.on_timer(HEARTBEAT_TIMER, ctx));
    }

    /// Ends `id`'s quiet period after a restart (in the simulator a timer does, one
    /// minimum election timeout after booting): until then it refuses votes.
    pub fn end_boot_quiet(&mut self, id: NodeId) {
        self.run(id, |n, ctx| n.on_timer(BOOT_QUIET_TIMER, ctx));
    }

    /// A client request to `node`; returns its id.
    pub fn request(&mut self, node: NodeId, body: RaftRequest) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        self.run(node, |n, ctx| {
            n.on_request(
                ClientRequest {
                    client: 0,
                    id,
                    body,
                },
                ctx,
            )
        });
        id
    }

    /// Delivers, in send order, every queued message `pass` accepts — including the ones
    /// those deliveries cause — until none is left; the others stay queued. Messages to
    /// crashed nodes are dropped. Returns how many were delivered.
    pub fn deliver(&mut self, mut pass: impl FnMut(&Queued) -> bool) -> usize {
        let mut delivered = 0;
        // A bound, so that a protocol that never quiesces fails the test instead of
        // hanging it.
        for _ in 0..100_000 {
            let Some(pos) = self.queue.iter().position(&mut pass) else {
                break;
            };
            let q = self.queue.remove(pos);
            if self.node(q.to).is_none() {
                continue;
            }
            delivered += 1;
            self.run(q.to, |n, ctx| n.on_message(q.from, q.msg, ctx));
        }
        delivered
    }

    /// Delivers every message among the nodes of `group` (in both directions).
    pub fn deliver_within(&mut self, group: &[NodeId]) -> usize {
        self.deliver(|q| group.contains(&q.from) && group.contains(&q.to))
    }

    /// Drops every queued message `lose` accepts. Returns how many.
    pub fn drop_where(&mut self, mut lose: impl FnMut(&Queued) -> bool) -> usize {
        let before = self.queue.len();
        self.queue.retain(|q| !lose(q));
        before - self.queue.len()
    }

    /// Crashes `id`: volatile state and unsynced writes are lost.
    pub fn crash(&mut self, id: NodeId) -> Result<()> {
        let slot = self
            .nodes
            .get_mut(id as usize)
            .ok_or_else(|| DistlabError::field("node", format!("node {id} does not exist")))?;
        *slot = None;
        if let Some(d) = self.disks.get_mut(id as usize) {
            d.crash(&mut self.rng, 0.0);
        }
        self.checker.forget(id);
        self.queue.retain(|q| q.to != id);
        Ok(())
    }

    /// Restarts a crashed `id` from its disk. Having heard from a leader before, it
    /// refuses votes until [`end_boot_quiet`](Self::end_boot_quiet).
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        match self.nodes.get(id as usize) {
            None => Err(DistlabError::field(
                "node",
                format!("node {id} does not exist"),
            )),
            Some(Some(_)) => Err(DistlabError::InvalidState(format!("node {id} is running"))),
            Some(None) => {
                self.boot(id);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::config::RaftConfig;
    use crate::consensus::raft::node::Role;

    /// A follower that restarts right after confirming a leader's heartbeat refuses
    /// pre-votes and votes until its quiet period ends (a leader's lease counts on it).
    #[test]
    fn a_restarted_node_refuses_votes_until_its_quiet_period_ends() {
        for pre_vote in [true, false] {
            let config = RaftConfig {
                pre_vote,
                ..RaftConfig::default()
            };
            let mut c = ManualCluster::new(3, config.params(3).unwrap(), 5);
            c.timeout(0);
            c.deliver_within(&[0, 1, 2]);
            c.heartbeat(0);
            c.deliver_within(&[0, 1, 2]);
            assert_eq!(c.node(0).unwrap().raft_role(), Role::Leader);
            // Node 1 restarts; the leader goes; node 2 no longer hears from it.
            c.crash(1).unwrap();
            c.restart(1).unwrap();
            c.crash(0).unwrap();
            c.advance(Duration::from_secs(1));
            c.timeout(2);
            c.deliver_within(&[1, 2]);
            let n2 = c.node(2).unwrap();
            assert_ne!(n2.raft_role(), Role::Leader, "pre-vote {pre_vote}");
            let n1 = c.node(1).unwrap();
            assert_eq!(
                (n1.term(), n1.voted_for()),
                (1, Some(0)),
                "pre-vote {pre_vote}"
            );
            c.end_boot_quiet(1);
            c.timeout(2);
            c.deliver_within(&[1, 2]);
            assert_eq!(c.node(2).unwrap().raft_role(), Role::Leader, "{pre_vote}");
            assert!(c.violation().is_none());
        }
    }

    /// A node booting from an empty disk never heard from a leader: it votes at once.
    #[test]
    fn a_first_boot_votes_at_once() {
        let mut c = ManualCluster::new(3, RaftConfig::default().params(3).unwrap(), 5);
        c.timeout(2);
        c.deliver_within(&[1, 2]);
        assert_eq!(c.node(2).unwrap().raft_role(), Role::Leader);
    }
}
