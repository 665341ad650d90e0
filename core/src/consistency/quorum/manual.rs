//! A quorum cluster driven by hand, message by message, for the named schedules: a test
//! says which messages arrive and in what order, which never do, when a node loses power
//! and when a client gives up. Time moves one microsecond per action, so the history's
//! real-time order is the order of the test's calls; each node's clock can be offset to
//! make two coordinators read the same instant.

use crate::consistency::quorum::harness::history;
use crate::consistency::quorum::node::{
    Message, QuorumNode, QuorumParams, QuorumRequest, QuorumResponse,
};
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sim::disk::Disk;
use crate::sim::history::{ClientOp, Outcome};
use crate::sim::linearizability::{CheckResult, KvInput, KvModel, KvOutput, Operation, check};
use crate::sim::node::{ClientId, ClientRequest, Ctx, Effect, Node, NodeId, Reply, RequestId};
use crate::time::Time;

/// A message sent and not yet delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// Nodes, their disks, the messages in flight and the clients' history.
#[derive(Debug, Clone)]
pub struct ManualCluster {
    params: QuorumParams,
    nodes: Vec<QuorumNode>,
    disks: Vec<Disk>,
    clock_offset: Vec<i64>,
    in_flight: Vec<Pending>,
    history: Vec<ClientOp<QuorumRequest, QuorumResponse>>,
    now: Time,
    rng: SimRng,
}

impl ManualCluster {
    /// `nodes` nodes booted from empty disks.
    pub fn new(nodes: u32, params: QuorumParams) -> Result<Self> {
        params.validate(nodes)?;
        let mut c = ManualCluster {
            nodes: Vec::new(),
            disks: vec![Disk::new(); nodes as usize],
            clock_offset: vec![0; nodes as usize],
            in_flight: Vec::new(),
            history: Vec::new(),
            now: Time(1),
            rng: SimRng::new(0),
            params,
        };
        for id in 0..nodes {
            let node = QuorumNode::recover(id, &c.params, &Disk::new());
            c.nodes.push(node);
            c.handle(id, |n, ctx| n.on_start(ctx));
        }
        Ok(c)
    }

    pub fn node(&self, id: NodeId) -> Option<&QuorumNode> {
        self.nodes.get(id as usize)
    }
    pub fn in_flight(&self) -> &[Pending] {
        &self.in_flight
    }
    pub fn now(&self) -> Time {
        self.now
    }

    /// Node `id`'s clock reads true time plus `offset_us`.
    pub fn set_clock_offset(&mut self, id: NodeId, offset_us: i64) {
        if let Some(o) = self.clock_offset.get_mut(id as usize) {
            *o = offset_us;
        }
    }

    fn handle(&mut self, id: NodeId, f: impl FnOnce(&mut QuorumNode, &mut Ctx<'_, QuorumNode>)) {
        let count = self.nodes.len() as u32;
        let offset = self.clock_offset.get(id as usize).copied().unwrap_or(0);
        let local = Time(self.now.0.saturating_add_signed(offset));
        let mut effects = Vec::new();
        let Some(node) = self.nodes.get_mut(id as usize) else {
            return;
        };
        let mut ctx = Ctx::new(id, local, count, &mut self.rng, &mut effects);
        f(node, &mut ctx);
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.in_flight.push(Pending { from: id, to, msg }),
                Effect::Reply {
                    request,
                    reply: Reply::Ok(value),
                    ..
                } => {
                    if let Some(op) = self.history.get_mut(request as usize)
                        && op.is_pending()
                    {
                        op.outcome = Outcome::Ok {
                            value,
                            at: self.now,
                        };
                    }
                }
                Effect::Reply {
                    request,
                    reply: Reply::Fail(reason),
                    ..
                } => {
                    if let Some(op) = self.history.get_mut(request as usize)
                        && op.is_pending()
                    {
                        op.outcome = Outcome::Fail {
                            reason,
                            at: self.now,
                        };
                    }
                }
                Effect::Disk(op) => {
                    if let Some(d) = self.disks.get_mut(id as usize) {
                        d.apply(op);
                    }
                }
                // Timers are the test's to fire (resends are not part of a named
                // schedule); state changes and logs are for traces.
                Effect::SetTimer { .. }
                | Effect::CancelTimer { .. }
                | Effect::StateChange(_)
                | Effect::Log(_) => {}
            }
        }
    }

    /// Client `client` asks node `node`; returns the request id.
    pub fn request(
        &mut self,
        client: ClientId,
        node: NodeId,
        body: QuorumRequest,
    ) -> Result<RequestId> {
        if node as usize >= self.nodes.len() {
            return Err(DistlabError::field("node", format!("no node {node}")));
        }
        self.now = Time(self.now.0 + 1);
        let id = self.history.len() as RequestId;
        self.history.push(ClientOp {
            client,
            request: id,
            node,
            body: body.clone(),
            invoked: self.now,
            outcome: Outcome::Pending,
        });
        self.handle(node, |n, ctx| {
            n.on_request(ClientRequest { client, id, body }, ctx)
        });
        Ok(id)
    }

    /// Delivers, in the order they were sent, every message in flight that `which`
    /// picks (and the ones their handling sends that it also picks); returns how many.
    pub fn deliver(&mut self, which: impl Fn(&Pending) -> bool) -> usize {
        let mut delivered = 0;
        while let Some(i) = self.in_flight.iter().position(&which) {
            let p = self.in_flight.remove(i);
            self.now = Time(self.now.0 + 1);
            self.handle(p.to, |n, ctx| n.on_message(p.from, p.msg, ctx));
            delivered += 1;
        }
        delivered
    }

    /// Drops every message in flight that `which` picks; returns how many.
    pub fn drop_where(&mut self, which: impl Fn(&Pending) -> bool) -> usize {
        let before = self.in_flight.len();
        self.in_flight.retain(|p| !which(p));
        before - self.in_flight.len()
    }

    /// Node `id` loses power (its unsynced writes are lost) and boots from its disk.
    pub fn power_cycle(&mut self, id: NodeId) {
        self.now = Time(self.now.0 + 1);
        let Some(disk) = self.disks.get_mut(id as usize) else {
            return;
        };
        disk.crash(&mut self.rng, 0.0);
        let node = QuorumNode::recover(id, &self.params, disk);
        if let Some(slot) = self.nodes.get_mut(id as usize) {
            *slot = node;
        }
        self.handle(id, |n, ctx| n.on_start(ctx));
    }

    /// The answer to `request`, if it came.
    pub fn answer(&self, request: RequestId) -> Option<&QuorumResponse> {
        match &self.history.get(request as usize)?.outcome {
            Outcome::Ok { value, .. } => Some(value),
            _ => None,
        }
    }

    /// What a get answered.
    pub fn read_value(&self, request: RequestId) -> Option<String> {
        self.answer(request)?.value.clone()
    }

    pub fn history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        history(&self.history)
    }

    /// The checker's verdict on the history so far (unanswered operations may or may not
    /// have taken effect).
    pub fn check(&self) -> Result<CheckResult> {
        check(&KvModel, &self.history())
    }
}
