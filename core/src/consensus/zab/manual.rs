//! A Zab ensemble driven by hand, message by message, as VR's and Paxos' `manual`
//! modules drive theirs: the test decides which timer fires, which messages are
//! delivered and which are lost, when a peer crashes and restarts. The schedules of
//! Zab.tla's issues.md and a leader crashing mid-synchronisation need an exact
//! interleaving that random timeouts would only find by luck.
//!
//! Peers run through the same [`Node`] interface as in the simulator, with a [`Ctx`]
//! built by hand; disks are the simulator's [`Disk`]. The safety checker reads every peer
//! after every handler.

use crate::consensus::raft::state_machine::{KvCommand, KvResponse};
use crate::consensus::zab::invariants::{Checker, Observed, Violation};
use crate::consensus::zab::messages::Message;
use crate::consensus::zab::peer::{TICK, ZabParams, ZabPeer};
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
    params: ZabParams,
    nodes: Vec<Option<ZabPeer>>,
    disks: Vec<Disk>,
    boots: Vec<u32>,
    now: Time,
    rng: SimRng,
    queue: Vec<Queued>,
    replies: Vec<(ClientId, RequestId, Reply<KvResponse>)>,
    checker: Checker,
    next_request: RequestId,
}

impl ManualCluster {
    /// Boots `n` nodes with empty disks.
    pub fn new(n: u32, params: ZabParams, seed: u64) -> Self {
        let mut c = ManualCluster {
            params,
            nodes: (0..n).map(|_| None).collect(),
            disks: (0..n).map(|_| Disk::new()).collect(),
            boots: vec![0; n as usize],
            now: Time::from_millis(1),
            rng: SimRng::new(seed),
            queue: Vec::new(),
            replies: Vec::new(),
            checker: Checker::default(),
            next_request: 0,
        };
        for id in 0..n {
            c.boot(id);
        }
        c
    }

    pub fn node(&self, id: NodeId) -> Option<&ZabPeer> {
        self.nodes.get(id as usize).and_then(Option::as_ref)
    }
    pub fn queue(&self) -> &[Queued] {
        &self.queue
    }
    /// Every reply sent to a client so far.
    pub fn replies(&self) -> &[(ClientId, RequestId, Reply<KvResponse>)] {
        &self.replies
    }
    pub fn checker(&self) -> &Checker {
        &self.checker
    }
    /// The first invariant violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.checker.violation()
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
        let node = ZabPeer::recover(id, &self.params, disk);
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            *slot = Some(node);
        }
        if let Some(b) = self.boots.get_mut(id as usize) {
            *b += 1;
        }
        self.run(id, |n, ctx| n.on_start(ctx));
    }

    /// Runs one handler of `id`, executes its effects (timers are the test's job) and
    /// checks the invariants.
    fn run(&mut self, id: NodeId, f: impl FnOnce(&mut ZabPeer, &mut Ctx<'_, ZabPeer>)) {
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
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                let boots = self.boots.get(i).copied().unwrap_or(0);
                self.checker.observe_peer(&Observed::of(n, boots));
            }
        }
    }

    /// Fires `id`'s timer: a leader's heartbeat and re-sends (or its step-down), a
    /// follower's re-sends (or its return to election once its deadline passed: see
    /// [`Self::advance`]), a looking peer's notification.
    pub fn tick(&mut self, id: NodeId) {
        self.run(id, |n, ctx| n.on_timer(TICK, ctx));
    }

    /// A client's command to `node`; returns the request's id.
    pub fn request(&mut self, node: NodeId, cmd: KvCommand) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        self.run(node, |n, ctx| {
            n.on_request(
                ClientRequest {
                    client: 0,
                    id,
                    body: cmd,
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

    /// Delivers, in send order, every queued message `pass` accepts, without the ones
    /// those deliveries cause (one hop). Returns how many were delivered.
    pub fn deliver_once(&mut self, mut pass: impl FnMut(&Queued) -> bool) -> usize {
        let (now, rest): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|q| pass(q));
        self.queue = rest;
        let mut delivered = 0;
        for q in now {
            if self.node(q.to).is_none() {
                continue;
            }
            delivered += 1;
            self.run(q.to, |n, ctx| n.on_message(q.from, q.msg, ctx));
        }
        delivered
    }

    /// `rounds` times: every running peer's timer fires, then every message is
    /// delivered (no time passes, so nobody times out).
    pub fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for id in 0..self.nodes.len() as NodeId {
                self.tick(id);
            }
            self.deliver(|_| true);
        }
    }

    /// The peer leading an established epoch in broadcast, if any.
    pub fn serving_leader(&self) -> Option<NodeId> {
        (0..self.nodes.len() as NodeId)
            .find(|&id| self.node(id).is_some_and(ZabPeer::is_serving_leader))
    }

    /// Delivers every message among the nodes of `group` (in both directions).
    pub fn deliver_within(&mut self, group: &[NodeId]) -> usize {
        self.deliver(|q| group.contains(&q.from) && group.contains(&q.to))
    }

    /// Puts a message in the queue as if `from` had sent it (a delayed or duplicated
    /// copy of something sent earlier, say).
    pub fn inject(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.queue.push(Queued { from, to, msg });
    }

    /// Drops every queued message `lose` accepts. Returns how many.
    pub fn drop_where(&mut self, mut lose: impl FnMut(&Queued) -> bool) -> usize {
        let before = self.queue.len();
        self.queue.retain(|q| !lose(q));
        before - self.queue.len()
    }

    /// Crashes `id`: volatile state and unsynced writes are lost, and so is every message
    /// queued to it (messages it sent stay in flight).
    pub fn crash(&mut self, id: NodeId) -> Result<()> {
        let slot = self
            .nodes
            .get_mut(id as usize)
            .ok_or_else(|| DistlabError::field("node", format!("node {id} does not exist")))?;
        *slot = None;
        if let Some(d) = self.disks.get_mut(id as usize) {
            d.crash(&mut self.rng, 0.0);
        }
        self.queue.retain(|q| q.to != id);
        Ok(())
    }

    /// Restarts a crashed `id` from its disk.
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
