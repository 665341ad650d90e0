//! A cluster driven by hand, message by message: the test decides which timer fires,
//! which messages are delivered and which are lost, when a node crashes and restarts.
//! The dangerous schedules of a protocol's paper (a proposer crashing between its
//! phases, a view change during a view change, a leader crashing mid-synchronisation)
//! need an exact interleaving that random timeouts would only find by luck; raft-rs
//! tests its protocol the same way, stepping messages by hand.
//!
//! Nodes run through the same [`Node`] interface as in the simulator, with a [`Ctx`]
//! built by hand; disks are the simulator's [`Disk`]. The protocol's [`ClusterChecker`]
//! reads every node after every handler. Timers are the test's job: a protocol's
//! `manual` module adds the methods that fire its timers by name.

use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sim::Sim;
use crate::sim::disk::Disk;
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Effect, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::time::{Duration, Time};
use std::fmt::Debug;

/// A protocol's safety checker: it reads the nodes after every event, in the simulator
/// (the whole cluster) or in a hand-driven cluster (one node at a time).
pub trait ClusterChecker<N: Node>: Clone + Debug + Default {
    type Violation: Debug;

    /// Checks the invariants against every running node of `sim`.
    fn observe(&mut self, sim: &Sim<N>) {
        let count = sim.node_count();
        for id in 0..count {
            if let Some(node) = sim.node(id) {
                self.observe_node(id, sim.boots(id), node, count);
            }
        }
    }
    /// Checks the invariants against node `id`, booted `boots` times, in a cluster of
    /// `count` nodes.
    fn observe_node(&mut self, id: NodeId, boots: u32, node: &N, count: u32);
    /// The first invariant broken, if any.
    fn violation(&self) -> Option<&Self::Violation>;
    /// Told of every request a client sends, for validity checks (only values that were
    /// proposed may be chosen).
    fn issued(&mut self, _request: &N::Request) {}
}

/// A message sent and not yet delivered or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued<M> {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: M,
}

/// A hand-driven cluster of `N`s checked by `C`.
#[derive(Debug, Clone)]
pub struct ManualCluster<N: Node, C> {
    params: N::Config,
    nodes: Vec<Option<N>>,
    disks: Vec<Disk>,
    boots: Vec<u32>,
    now: Time,
    rng: SimRng,
    queue: Vec<Queued<N::Message>>,
    replies: Vec<(ClientId, RequestId, Reply<N::Response>)>,
    checker: C,
    next_request: RequestId,
}

impl<N: Node, C: ClusterChecker<N>> ManualCluster<N, C> {
    /// Boots `n` nodes with empty disks.
    pub fn new(n: u32, params: N::Config, seed: u64) -> Self {
        let mut c = ManualCluster {
            params,
            nodes: (0..n).map(|_| None).collect(),
            disks: (0..n).map(|_| Disk::new()).collect(),
            boots: vec![0; n as usize],
            now: Time::from_millis(1),
            rng: SimRng::new(seed),
            queue: Vec::new(),
            replies: Vec::new(),
            checker: C::default(),
            next_request: 0,
        };
        for id in 0..n {
            c.boot(id);
        }
        c
    }

    pub fn node(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id as usize).and_then(Option::as_ref)
    }
    /// How many nodes the cluster has, running or crashed.
    pub fn len(&self) -> u32 {
        self.nodes.len() as u32
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn queue(&self) -> &[Queued<N::Message>] {
        &self.queue
    }
    /// Every reply sent to a client so far.
    pub fn replies(&self) -> &[(ClientId, RequestId, Reply<N::Response>)] {
        &self.replies
    }
    pub fn checker(&self) -> &C {
        &self.checker
    }
    /// The first invariant violation, if any.
    pub fn violation(&self) -> Option<&C::Violation> {
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
        let node = N::recover(id, &self.params, disk);
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
    fn run(&mut self, id: NodeId, f: impl FnOnce(&mut N, &mut Ctx<'_, N>)) {
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
                self.checker.observe_node(i as NodeId, boots, n, count);
            }
        }
    }

    /// Fires `id`'s timer `timer`.
    pub fn fire(&mut self, id: NodeId, timer: TimerId) {
        self.run(id, |n, ctx| n.on_timer(timer, ctx));
    }

    /// A client's request to `node`; returns the request's id. The request counts as
    /// issued for the checker's validity check.
    pub fn request(&mut self, node: NodeId, body: N::Request) -> RequestId {
        let id = self.next_request;
        self.next_request += 1;
        self.checker.issued(&body);
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
    pub fn deliver(&mut self, mut pass: impl FnMut(&Queued<N::Message>) -> bool) -> usize {
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
    pub fn deliver_once(&mut self, mut pass: impl FnMut(&Queued<N::Message>) -> bool) -> usize {
        let (now, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
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

    /// Delivers every message among the nodes of `group` (in both directions).
    pub fn deliver_within(&mut self, group: &[NodeId]) -> usize {
        self.deliver(|q| group.contains(&q.from) && group.contains(&q.to))
    }

    /// Puts a message in the queue as if `from` had sent it (a delayed or duplicated
    /// copy of something sent earlier, say).
    pub fn inject(&mut self, from: NodeId, to: NodeId, msg: N::Message) {
        self.queue.push(Queued { from, to, msg });
    }

    /// Drops every queued message `lose` accepts. Returns how many.
    pub fn drop_where(&mut self, mut lose: impl FnMut(&Queued<N::Message>) -> bool) -> usize {
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
