//! The discrete-event simulator (catalog id `sim.engine`).
//!
//! One virtual clock in microseconds, one event queue ordered by (time, insertion number)
//! so that simultaneous events always run in the same order, seeded random streams, and
//! the network, fault, disk and clock models around a set of [`Node`]s. The design follows
//! FoundationDB's deterministic simulation and the sans-I/O drivers of quinn-proto and
//! raft-rs: nodes return effects, the simulator executes them.
//!
//! Cost: O(log E) per event for E queued events; no allocation per event beyond the
//! messages the nodes themselves create.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::error::{DistlabError, Result, check_probability};
use crate::rng::SimRng;
use crate::sim::clock::NodeClock;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::faults::{Fault, FaultScript};
use crate::sim::history::{ClientOp, Outcome};
use crate::sim::network::{Fate, Network, NetworkConfig};
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Effect, Endpoint, Fingerprint, Node, NodeId, Reply, RequestId,
    TimerId,
};
use crate::sim::trace::{DropReason, StableHasher, Trace, TraceKind};
use crate::time::{Duration, Time};

/// The most nodes or clients one simulation may have.
pub const MAX_NODES: u32 = 10_000;

/// Settings of one simulation, apart from the nodes' own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u32,
    pub clients: u32,
    pub network: NetworkConfig,
    /// Probability that a crash tears the oldest unsynced write of each file.
    pub torn_write_probability: f64,
    /// Keep trace events (the hash is kept either way).
    pub record_trace: bool,
    /// Stop keeping events after this many (the hash goes on).
    pub trace_limit: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 3,
            clients: 1,
            network: NetworkConfig::default(),
            torn_write_probability: 0.5,
            record_trace: true,
            trace_limit: 1_000_000,
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(DistlabError::field(
                "nodes",
                format!("must be between 1 and {MAX_NODES}, got {}", self.nodes),
            ));
        }
        if self.clients > MAX_NODES {
            return Err(DistlabError::field(
                "clients",
                format!("must be at most {MAX_NODES}, got {}", self.clients),
            ));
        }
        self.network.validate("network")?;
        check_probability("tornWriteProbability", self.torn_write_probability)?;
        Ok(())
    }
}

/// Whether a node is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeStatus {
    Up,
    Paused,
    Crashed,
}

/// What travels between endpoints.
#[derive(Debug, Clone)]
enum Payload<N: Node> {
    Peer(N::Message),
    Request(ClientRequest<N::Request>),
    Reply {
        request: RequestId,
        reply: Reply<N::Response>,
    },
}

impl<N: Node> Payload<N> {
    fn kind(&self) -> &'static str {
        match self {
            Payload::Peer(m) => N::message_kind(m),
            Payload::Request(_) => "request",
            Payload::Reply { .. } => "reply",
        }
    }
}

#[derive(Debug, Clone)]
enum EventKind<N: Node> {
    Deliver {
        from: Endpoint,
        to: Endpoint,
        msg: u64,
        sent: Time,
        payload: Payload<N>,
    },
    Timer {
        node: NodeId,
        timer: TimerId,
        generation: u64,
    },
    ClientTimeout {
        request: RequestId,
    },
    Fault(Fault),
    External(u64),
}

#[derive(Debug, Clone)]
struct Event<N: Node> {
    at: Time,
    seq: u64,
    kind: EventKind<N>,
}

// Min-heap on (at, seq): BinaryHeap is a max-heap, so the order is reversed.
impl<N: Node> Ord for Event<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
impl<N: Node> PartialOrd for Event<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<N: Node> PartialEq for Event<N> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<N: Node> Eq for Event<N> {}

#[derive(Debug, Clone)]
struct NodeSlot<N: Node> {
    /// `None` while crashed: the volatile state is gone.
    node: Option<N>,
    paused: bool,
    disk: Disk,
    clock: NodeClock,
    /// Live timers: the generation of their pending event (stale events are skipped) and
    /// when it is due.
    timers: FxHashMap<TimerId, (u64, Time)>,
    /// Events that arrived while paused, in arrival order.
    parked: Vec<Event<N>>,
    /// Crash part-way through the next event, after this many effects.
    crash_after_effects: Option<u32>,
    boots: u32,
}

impl<N: Node> NodeSlot<N> {
    fn status(&self) -> NodeStatus {
        match (&self.node, self.paused) {
            (None, _) => NodeStatus::Crashed,
            (Some(_), true) => NodeStatus::Paused,
            (Some(_), false) => NodeStatus::Up,
        }
    }
}

/// What one step processed, for drivers that schedule their own events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// A simulator event (delivery, timer, fault, timeout).
    Event,
    /// An event the driver scheduled with [`Sim::schedule_external`].
    External(u64),
}

/// Message counters since the start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub partitioned: u64,
    pub to_down_node: u64,
    pub duplicated: u64,
}

/// An event waiting in the queue, for showing the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub at: Time,
    /// Ties at one time run in this order (the order they were queued).
    pub seq: u64,
    /// `deliver`, `timer`, `clientTimeout`, `fault` or `external`.
    pub kind: &'static str,
    /// The node it happens at, if one.
    pub node: Option<NodeId>,
    pub detail: String,
}

/// A message in flight, for drawing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub id: u64,
    pub from: Endpoint,
    pub to: Endpoint,
    pub kind: &'static str,
    pub sent: Time,
    pub arrives: Time,
    /// 0 when sent, 1 on arrival.
    pub progress: f64,
}

/// A deterministic simulation of a cluster of `N` nodes and its clients.
#[derive(Debug, Clone)]
pub struct Sim<N: Node> {
    config: SimConfig,
    node_config: N::Config,
    now: Time,
    steps: u64,
    seq: u64,
    next_msg: u64,
    next_timer_generation: u64,
    queue: BinaryHeap<Event<N>>,
    /// Events a resume released from a paused node's inbox, due now, in the order they
    /// came due: they run before anything in `queue`.
    resumed: VecDeque<Event<N>>,
    nodes: Vec<NodeSlot<N>>,
    network: Network,
    net_rng: SimRng,
    node_rng: SimRng,
    fault_rng: SimRng,
    history: Vec<ClientOp<N::Request, N::Response>>,
    /// Client operations that ended (answered, failed or timed out) so far.
    ended: u64,
    stats: NetStats,
    trace: Trace,
    effects: Vec<Effect<N::Message, N::Response>>,
}

impl<N: Node> Sim<N> {
    /// Builds the cluster and starts every node at time zero.
    pub fn new(config: SimConfig, node_config: N::Config) -> Result<Self> {
        config.validate()?;
        let network = Network::new(config.network.clone(), config.nodes as usize)?;
        let mut sim = Sim {
            net_rng: SimRng::derive(config.seed, 1),
            node_rng: SimRng::derive(config.seed, 2),
            fault_rng: SimRng::derive(config.seed, 3),
            trace: Trace::new(config.record_trace, config.trace_limit),
            node_config,
            now: Time::ZERO,
            steps: 0,
            seq: 0,
            next_msg: 0,
            next_timer_generation: 0,
            queue: BinaryHeap::new(),
            resumed: VecDeque::new(),
            nodes: Vec::with_capacity(config.nodes as usize),
            network,
            history: Vec::new(),
            ended: 0,
            stats: NetStats::default(),
            effects: Vec::new(),
            config,
        };
        for _ in 0..sim.config.nodes {
            sim.push_slot();
        }
        for id in 0..sim.config.nodes {
            sim.boot(id);
        }
        Ok(sim)
    }

    fn push_slot(&mut self) {
        self.nodes.push(NodeSlot {
            node: None,
            paused: false,
            disk: Disk::new(),
            clock: NodeClock::default(),
            timers: FxHashMap::default(),
            parked: Vec::new(),
            crash_after_effects: None,
            boots: 0,
        });
    }

    /// Adds a node (empty disk) and starts it. Returns its id.
    pub fn add_node(&mut self) -> Result<NodeId> {
        if self.nodes.len() as u32 >= MAX_NODES {
            return Err(DistlabError::field(
                "nodes",
                format!("at most {MAX_NODES} nodes"),
            ));
        }
        self.push_slot();
        self.network.add_node();
        let id = self.nodes.len() as NodeId - 1;
        self.boot(id);
        Ok(id)
    }

    fn boot(&mut self, id: NodeId) {
        let Some(slot) = self.nodes.get_mut(id as usize) else {
            return;
        };
        slot.node = Some(N::recover(id, &self.node_config, &slot.disk));
        slot.paused = false;
        slot.boots += 1;
        self.handle(id, |n, ctx| n.on_start(ctx));
    }

    // ---- observation ----

    pub fn config(&self) -> &SimConfig {
        &self.config
    }
    pub fn node_config(&self) -> &N::Config {
        &self.node_config
    }
    pub fn now(&self) -> Time {
        self.now
    }
    /// Events processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    pub fn node_count(&self) -> u32 {
        self.nodes.len() as u32
    }
    /// The node's volatile state, `None` if it is crashed or does not exist.
    pub fn node(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id as usize).and_then(|s| s.node.as_ref())
    }
    /// The node's volatile state to change in place: a lab action that reconfigures a
    /// running node (PBFT's "make this replica Byzantine"), or a test that builds a bad
    /// state; `None` if it is crashed.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut N> {
        self.nodes
            .get_mut(id as usize)
            .and_then(|s| s.node.as_mut())
    }
    /// What a node restarted from now on recovers with: a lab's run-time
    /// reconfiguration (a control plane's push) changes it as it changes the live nodes.
    pub fn node_config_mut(&mut self) -> &mut N::Config {
        &mut self.node_config
    }
    pub fn status(&self, id: NodeId) -> Option<NodeStatus> {
        self.nodes.get(id as usize).map(NodeSlot::status)
    }
    pub fn disk(&self, id: NodeId) -> Option<&Disk> {
        self.nodes.get(id as usize).map(|s| &s.disk)
    }
    pub fn clock(&self, id: NodeId) -> Option<&NodeClock> {
        self.nodes.get(id as usize).map(|s| &s.clock)
    }
    /// How many times the node has booted (1 = never restarted).
    pub fn boots(&self, id: NodeId) -> u32 {
        self.nodes.get(id as usize).map_or(0, |s| s.boots)
    }
    /// Events waiting in a paused node's inbox.
    pub fn parked(&self, id: NodeId) -> usize {
        self.nodes.get(id as usize).map_or(0, |s| s.parked.len())
    }
    pub fn network(&self) -> &Network {
        &self.network
    }
    pub fn history(&self) -> &[ClientOp<N::Request, N::Response>] {
        &self.history
    }
    /// How many client operations have ended so far: a driver that waits on some can
    /// look at the history only when this moved.
    pub fn ended_ops(&self) -> u64 {
        self.ended
    }
    pub fn trace(&self) -> &Trace {
        &self.trace
    }
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// The fingerprint of node `id`'s state, for a model checker (see [`Fingerprint`]):
    /// whether it is up, paused or crashed, its volatile state (none while crashed), its
    /// disk, and its clock, whose readings its timers and leases run on. `None` if there is
    /// no such node.
    ///
    /// Left out, because they are not the node's state but the cluster's: what is pending
    /// *for* the node — its timers, messages on their way to it, the inbox it keeps while
    /// paused, a scheduled crash part-way through an event — which lives in the event queue
    /// and is fingerprinted with it (stateright likewise keeps the network and the timers
    /// beside the actors' states); the simulator's time; and its boot count, a tally no node
    /// sees (a protocol that needs one keeps it on disk, as the ping protocol does).
    pub fn node_fingerprint(&self, id: NodeId) -> Option<u64> {
        let slot = self.nodes.get(id as usize)?;
        let mut h = StableHasher::default();
        slot.status().hash(&mut h);
        if let Some(node) = &slot.node {
            node.fingerprint_into(&mut h);
        }
        slot.disk.fingerprint_into(&mut h);
        slot.clock.fingerprint_into(&mut h);
        Some(h.finish())
    }

    /// The fingerprint of `msg` on its way from node `from` to node `to`: the same content
    /// between other nodes is another message.
    pub fn message_fingerprint(from: NodeId, to: NodeId, msg: &N::Message) -> u64 {
        let mut h = StableHasher::default();
        h.write_u32(from);
        h.write_u32(to);
        msg.fingerprint_into(&mut h);
        h.finish()
    }

    /// Time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<Time> {
        match self.resumed.front() {
            Some(e) => Some(e.at),
            None => self.queue.peek().map(|e| e.at),
        }
    }
    pub fn pending_events(&self) -> usize {
        self.resumed.len() + self.queue.len()
    }

    /// The first `max` queued events in the order they will run: by time, then by the
    /// order they were queued. Costs a sort of the queue: for showing it, not for driving.
    pub fn queued(&self, max: usize) -> Vec<Queued> {
        let mut events: Vec<&Event<N>> = self.queue.iter().collect();
        events.sort_unstable_by_key(|e| (e.at, e.seq));
        self.resumed
            .iter()
            .chain(events)
            .take(max)
            .map(|e| {
                let (kind, node, detail) = match &e.kind {
                    EventKind::Deliver { from, to, msg, .. } => {
                        let node = match to {
                            Endpoint::Node(n) => Some(*n),
                            Endpoint::Client(_) => None,
                        };
                        ("deliver", node, format!("message {msg}: {from:?} → {to:?}"))
                    }
                    EventKind::Timer { node, timer, .. } => {
                        ("timer", Some(*node), format!("timer {timer}"))
                    }
                    EventKind::ClientTimeout { request } => {
                        ("clientTimeout", None, format!("request {request}"))
                    }
                    EventKind::Fault(f) => {
                        ("fault", None, serde_json::to_string(f).unwrap_or_default())
                    }
                    EventKind::External(tag) => ("external", None, format!("tag {tag}")),
                };
                Queued {
                    at: e.at,
                    seq: e.seq,
                    kind,
                    node,
                    detail,
                }
            })
            .collect()
    }

    /// Messages in flight with their progress at the current time, ordered by arrival.
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.in_flight_with_messages()
            .into_iter()
            .map(|(m, _)| m)
            .collect()
    }

    /// [`in_flight`](Self::in_flight), each with the peer message it carries (`None` for
    /// a client's request or reply), for a lab that shows what a message says.
    pub fn in_flight_with_messages(&self) -> Vec<(InFlight, Option<&N::Message>)> {
        let mut v: Vec<(u64, InFlight, Option<&N::Message>)> = self
            .queue
            .iter()
            .chain(&self.resumed)
            .filter_map(|e| match &e.kind {
                EventKind::Deliver {
                    from,
                    to,
                    msg,
                    sent,
                    payload,
                } => {
                    let total = e.at.0.saturating_sub(sent.0);
                    let done = self.now.0.saturating_sub(sent.0);
                    let progress = if total == 0 {
                        1.0
                    } else {
                        (done as f64 / total as f64).min(1.0)
                    };
                    Some((
                        e.seq,
                        InFlight {
                            id: *msg,
                            from: *from,
                            to: *to,
                            kind: payload.kind(),
                            sent: *sent,
                            arrives: e.at,
                            progress,
                        },
                        match payload {
                            Payload::Peer(m) => Some(m),
                            _ => None,
                        },
                    ))
                }
                _ => None,
            })
            .collect();
        v.sort_by_key(|(seq, m, _)| (m.arrives, *seq));
        v.into_iter().map(|(_, m, payload)| (m, payload)).collect()
    }

    // ---- driving ----

    fn push(&mut self, at: Time, kind: EventKind<N>) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Event { at, seq, kind });
    }

    /// Schedules an event that [`step`](Self::step) hands back to the driver as
    /// [`Stepped::External`] (workload arrivals, for example).
    pub fn schedule_external(&mut self, at: Time, tag: u64) {
        let at = at.max(self.now);
        self.push(at, EventKind::External(tag));
    }

    /// Schedules a fault.
    pub fn schedule_fault(&mut self, at: Time, fault: Fault) -> Result<()> {
        fault.validate(self.node_count())?;
        let at = at.max(self.now);
        self.push(at, EventKind::Fault(fault));
        Ok(())
    }

    /// Schedules every fault of a script (validated as a whole first).
    pub fn load_script(&mut self, script: &FaultScript) -> Result<()> {
        script.validate(self.node_count())?;
        for f in &script.faults {
            let at = Time(f.at_us).max(self.now);
            self.push(at, EventKind::Fault(f.fault.clone()));
        }
        Ok(())
    }

    /// Processes the next event, whenever it is. `None` when nothing is left.
    pub fn step(&mut self) -> Option<Stepped> {
        self.step_until(Time::MAX)
    }

    /// Processes the next event if it happens no later than `deadline`.
    pub fn step_until(&mut self, deadline: Time) -> Option<Stepped> {
        loop {
            let at = self.next_event_time()?;
            if at > deadline {
                return None;
            }
            let event = match self.resumed.pop_front() {
                Some(e) => e,
                None => self.queue.pop()?,
            };
            self.now = self.now.max(event.at);
            if let Some(stepped) = self.process(event) {
                return Some(stepped);
            }
        }
    }

    /// Processes every event up to and including `t`, then moves the clock to `t`.
    /// External events are handed to `on_external`.
    pub fn run_until(&mut self, t: Time, mut on_external: impl FnMut(&mut Self, u64)) {
        while let Some(s) = self.step_until(t) {
            if let Stepped::External(tag) = s {
                on_external(self, tag);
            }
        }
        self.advance_clock(t);
    }

    /// Moves the clock forward to `t` without processing anything (no-op if `t` is not
    /// later than now). Events due before `t` stay queued and run at their own time when
    /// stepped, but the clock never goes back.
    pub fn advance_clock(&mut self, t: Time) {
        self.now = self.now.max(t);
    }

    /// Handles one event; `None` when it turned out to need nothing (a stale timer, an
    /// event parked at a paused node), which does not count as a step.
    fn process(&mut self, event: Event<N>) -> Option<Stepped> {
        let target = match &event.kind {
            EventKind::Deliver {
                to: Endpoint::Node(n),
                ..
            } => Some(*n),
            EventKind::Timer {
                node,
                timer,
                generation,
            } => {
                let slot = self.nodes.get(*node as usize)?;
                if slot.timers.get(timer).map(|t| t.0) != Some(*generation) {
                    return None;
                }
                Some(*node)
            }
            _ => None,
        };
        if let Some(n) = target
            && let Some(slot) = self.nodes.get_mut(n as usize)
            && slot.paused
            && slot.node.is_some()
        {
            slot.parked.push(event);
            return None;
        }
        match event.kind {
            EventKind::Deliver {
                from,
                to,
                msg,
                payload,
                ..
            } => {
                self.steps += 1;
                self.deliver(from, to, msg, payload);
                Some(Stepped::Event)
            }
            EventKind::Timer { node, timer, .. } => {
                self.steps += 1;
                if let Some(slot) = self.nodes.get_mut(node as usize) {
                    slot.timers.remove(&timer);
                }
                self.trace_event(TraceKind::Timer { node, timer });
                self.handle(node, |n, ctx| n.on_timer(timer, ctx));
                Some(Stepped::Event)
            }
            EventKind::ClientTimeout { request } => {
                let op = self.history.get_mut(request as usize)?;
                if !op.is_pending() {
                    return None;
                }
                self.steps += 1;
                op.outcome = Outcome::Timeout { at: self.now };
                self.ended += 1;
                let client = op.client;
                self.trace_event(TraceKind::ClientTimeout { client, request });
                Some(Stepped::Event)
            }
            EventKind::Fault(fault) => {
                self.steps += 1;
                if let Err(e) = self.apply_fault_now(&fault) {
                    self.trace_event(TraceKind::Fault {
                        what: format!("rejected: {e}"),
                    });
                }
                Some(Stepped::Event)
            }
            EventKind::External(tag) => {
                self.steps += 1;
                self.trace_event(TraceKind::External { tag });
                Some(Stepped::External(tag))
            }
        }
    }

    fn trace_event(&mut self, kind: TraceKind) {
        self.trace.push(self.steps, self.now, kind);
    }

    fn deliver(&mut self, from: Endpoint, to: Endpoint, msg: u64, payload: Payload<N>) {
        let kind = payload.kind();
        let drop = |reason| TraceKind::Drop {
            from,
            to,
            msg,
            kind,
            reason,
        };
        match to {
            Endpoint::Client(client) => {
                let Payload::Reply { request, reply } = payload else {
                    return;
                };
                let Some(op) = self.history.get_mut(request as usize) else {
                    return;
                };
                if !op.is_pending() {
                    self.trace_event(drop(DropReason::ClientGaveUp));
                    return;
                }
                self.stats.delivered += 1;
                self.ended += 1;
                op.outcome = match reply {
                    Reply::Ok(value) => Outcome::Ok {
                        value,
                        at: self.now,
                    },
                    Reply::Fail(reason) => Outcome::Fail {
                        reason,
                        at: self.now,
                    },
                };
                let ok = matches!(op.outcome, Outcome::Ok { .. });
                self.trace_event(TraceKind::Deliver {
                    from,
                    to,
                    msg,
                    kind,
                });
                self.trace_event(if ok {
                    TraceKind::ClientOk { client, request }
                } else {
                    TraceKind::ClientFail { client, request }
                });
            }
            Endpoint::Node(node) => {
                let up = self
                    .nodes
                    .get(node as usize)
                    .is_some_and(|s| s.node.is_some());
                if !up {
                    self.stats.to_down_node += 1;
                    self.trace_event(drop(DropReason::NodeDown));
                    return;
                }
                if let Endpoint::Node(src) = from
                    && !self.network.connected(src, node)
                {
                    self.stats.partitioned += 1;
                    self.trace_event(drop(DropReason::Partition));
                    return;
                }
                self.stats.delivered += 1;
                self.trace_event(TraceKind::Deliver {
                    from,
                    to,
                    msg,
                    kind,
                });
                match (payload, from) {
                    (Payload::Peer(m), Endpoint::Node(src)) => {
                        self.handle(node, |n, ctx| n.on_message(src, m, ctx))
                    }
                    (Payload::Request(r), _) => self.handle(node, |n, ctx| n.on_request(r, ctx)),
                    _ => {}
                }
            }
        }
    }

    /// Runs one handler of node `id` and executes the effects it wrote.
    fn handle(&mut self, id: NodeId, f: impl FnOnce(&mut N, &mut Ctx<'_, N>)) {
        let node_count = self.nodes.len() as u32;
        let Some(slot) = self.nodes.get_mut(id as usize) else {
            return;
        };
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let mut effects = std::mem::take(&mut self.effects);
        let mut ctx = Ctx {
            id,
            local_now: slot.clock.local(self.now),
            node_count,
            rng: &mut self.node_rng,
            effects: &mut effects,
        };
        f(node, &mut ctx);
        let crash_after = slot.crash_after_effects.take();
        for (executed, effect) in effects.drain(..).enumerate() {
            if crash_after.is_some_and(|k| executed as u64 >= k as u64) {
                break;
            }
            self.execute(id, effect);
        }
        effects.clear();
        self.effects = effects;
        if crash_after.is_some() {
            self.crash(id);
        }
    }

    fn execute(&mut self, id: NodeId, effect: Effect<N::Message, N::Response>) {
        match effect {
            Effect::Send { to, msg } => {
                let from = Endpoint::Node(id);
                if to >= self.nodes.len() as u32 {
                    let kind = N::message_kind(&msg);
                    let msg = self.next_msg_id();
                    let to = Endpoint::Node(to);
                    self.trace_event(TraceKind::Drop {
                        from,
                        to,
                        msg,
                        kind,
                        reason: DropReason::NoSuchNode,
                    });
                    return;
                }
                self.send(from, Endpoint::Node(to), Payload::Peer(msg));
            }
            Effect::SetTimer { timer, after } => {
                let generation = self.next_timer_generation;
                self.next_timer_generation += 1;
                let Some(slot) = self.nodes.get_mut(id as usize) else {
                    return;
                };
                let at = self.now + slot.clock.to_sim(after);
                slot.timers.insert(timer, (generation, at));
                self.push(
                    at,
                    EventKind::Timer {
                        node: id,
                        timer,
                        generation,
                    },
                );
            }
            Effect::CancelTimer { timer } => {
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    slot.timers.remove(&timer);
                }
            }
            Effect::Reply {
                client,
                request,
                reply,
            } => {
                if client < self.config.clients {
                    let payload = Payload::Reply { request, reply };
                    self.send(Endpoint::Node(id), Endpoint::Client(client), payload);
                }
            }
            Effect::Disk(op) => {
                let (name, file, bytes) = match &op {
                    DiskOp::Append { file, bytes } => ("append", Some(*file), bytes.len()),
                    DiskOp::Overwrite { file, bytes } => ("overwrite", Some(*file), bytes.len()),
                    DiskOp::Truncate { file, .. } => ("truncate", Some(*file), 0),
                    DiskOp::Fsync => ("fsync", None, 0),
                };
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    slot.disk.apply(op);
                }
                self.trace_event(TraceKind::Persist {
                    node: id,
                    op: name,
                    file,
                    bytes,
                });
            }
            Effect::StateChange(what) => {
                self.trace_event(TraceKind::StateChange { node: id, what })
            }
            Effect::Log(text) => self.trace_event(TraceKind::Log { node: id, text }),
        }
    }

    fn next_msg_id(&mut self) -> u64 {
        let id = self.next_msg;
        self.next_msg += 1;
        id
    }

    fn send(&mut self, from: Endpoint, to: Endpoint, payload: Payload<N>) {
        let msg = self.next_msg_id();
        let kind = payload.kind();
        self.stats.sent += 1;
        self.trace_event(TraceKind::Send {
            from,
            to,
            msg,
            kind,
        });
        let nodes = match (from, to) {
            (Endpoint::Node(a), Endpoint::Node(b)) => Some((a, b)),
            _ => None,
        };
        let fate = self.network.route(
            &mut self.net_rng,
            self.now.0,
            (from.code(), to.code()),
            nodes,
        );
        match fate {
            Fate::Lost => {
                self.stats.lost += 1;
                let reason = DropReason::Loss;
                self.trace_event(TraceKind::Drop {
                    from,
                    to,
                    msg,
                    kind,
                    reason,
                });
            }
            Fate::Partitioned => {
                self.stats.partitioned += 1;
                let reason = DropReason::Partition;
                self.trace_event(TraceKind::Drop {
                    from,
                    to,
                    msg,
                    kind,
                    reason,
                });
            }
            Fate::Deliver { delay, duplicate } => {
                let sent = self.now;
                if let Some(extra) = duplicate {
                    self.stats.duplicated += 1;
                    self.trace_event(TraceKind::Duplicate {
                        from,
                        to,
                        msg,
                        kind,
                    });
                    let copy = payload.clone();
                    self.push(
                        sent + extra,
                        EventKind::Deliver {
                            from,
                            to,
                            msg,
                            sent,
                            payload: copy,
                        },
                    );
                }
                self.push(
                    sent + delay,
                    EventKind::Deliver {
                        from,
                        to,
                        msg,
                        sent,
                        payload,
                    },
                );
            }
        }
    }

    // ---- clients ----

    /// Client `client` sends `body` to `node`; if no answer arrives within `timeout`, the
    /// client gives up and the operation's outcome is unknown. Returns the request id,
    /// which is also the operation's index in [`history`](Self::history).
    pub fn client_request(
        &mut self,
        client: ClientId,
        node: NodeId,
        body: N::Request,
        timeout: Duration,
    ) -> Result<RequestId> {
        if client >= self.config.clients {
            return Err(DistlabError::field(
                "client",
                format!(
                    "client {client} does not exist (there are {})",
                    self.config.clients
                ),
            ));
        }
        self.check_node("node", node)?;
        let timeout = timeout.check("timeout")?;
        let request = self.history.len() as RequestId;
        self.history.push(ClientOp {
            client,
            request,
            node,
            body: body.clone(),
            invoked: self.now,
            outcome: Outcome::Pending,
        });
        self.trace_event(TraceKind::Invoke {
            client,
            request,
            node,
        });
        let payload = Payload::Request(ClientRequest {
            client,
            id: request,
            body,
        });
        self.send(Endpoint::Client(client), Endpoint::Node(node), payload);
        self.push(self.now + timeout, EventKind::ClientTimeout { request });
        Ok(request)
    }

    fn check_node(&self, field: &str, node: NodeId) -> Result<()> {
        if (node as usize) < self.nodes.len() {
            Ok(())
        } else {
            Err(DistlabError::field(
                field,
                format!(
                    "node {node} does not exist (the cluster has {} nodes)",
                    self.nodes.len()
                ),
            ))
        }
    }

    // ---- faults ----

    /// Applies a fault now.
    pub fn apply_fault(&mut self, fault: &Fault) -> Result<()> {
        fault.validate(self.node_count())?;
        self.apply_fault_now(fault)
    }

    fn apply_fault_now(&mut self, fault: &Fault) -> Result<()> {
        if !matches!(
            fault,
            Fault::Crash { .. }
                | Fault::Restart { .. }
                | Fault::Pause { .. }
                | Fault::Resume { .. }
        ) {
            self.trace_event(TraceKind::Fault {
                what: describe(fault),
            });
        }
        match fault {
            Fault::Crash { node } => {
                self.check_node("node", *node)?;
                self.crash(*node);
            }
            Fault::CrashMidEvent { node, effects } => {
                self.check_node("node", *node)?;
                if let Some(slot) = self.nodes.get_mut(*node as usize) {
                    slot.crash_after_effects = Some(*effects);
                }
            }
            Fault::Restart { node } => {
                self.check_node("node", *node)?;
                if self
                    .nodes
                    .get(*node as usize)
                    .is_some_and(|s| s.node.is_none())
                {
                    self.trace_event(TraceKind::Restart { node: *node });
                    self.boot(*node);
                }
            }
            Fault::Pause { node } => {
                self.check_node("node", *node)?;
                if let Some(slot) = self.nodes.get_mut(*node as usize)
                    && slot.node.is_some()
                    && !slot.paused
                {
                    slot.paused = true;
                    self.trace_event(TraceKind::Pause { node: *node });
                }
            }
            Fault::Resume { node } => self.resume(*node)?,
            Fault::Partition { groups } => self.network.partition(groups)?,
            Fault::PartitionOneWay { from, to } => self.network.partition_one_way(from, to)?,
            Fault::Heal => self.network.heal(),
            Fault::SetLoss { probability } => {
                let mut c = self.network.config().clone();
                c.loss = *probability;
                self.network.set_config(c)?;
            }
            Fault::SetDuplicate { probability } => {
                let mut c = self.network.config().clone();
                c.duplicate = *probability;
                self.network.set_config(c)?;
            }
            Fault::SetReorder { probability } => {
                let mut c = self.network.config().clone();
                c.reorder = *probability;
                self.network.set_config(c)?;
            }
            Fault::SetLatency { latency } => {
                let mut c = self.network.config().clone();
                c.latency = *latency;
                self.network.set_config(c)?;
            }
            Fault::SetLinkLatency { from, to, latency } => {
                self.network.set_link_latency(*from, *to, *latency)?
            }
            Fault::ClockSkew { node, skew_ms } => {
                self.check_node("node", *node)?;
                let now = self.now;
                if let Some(slot) = self.nodes.get_mut(*node as usize) {
                    slot.clock
                        .set_skew(now, libm::round(skew_ms * 1_000.0) as i64);
                }
            }
            Fault::ClockDrift { node, ppm } => {
                self.check_node("node", *node)?;
                let now = self.now;
                let Some(slot) = self.nodes.get_mut(*node as usize) else {
                    return Ok(());
                };
                let old = slot.clock;
                slot.clock.set_drift(now, *ppm);
                // A pending timer waits for its node's clock to advance by what was left
                // of its span: at the new rate that takes another simulated time, so it is
                // due again (never early by the node's own reading). In arming order, so
                // the queue gets them in the same order on every platform.
                let mut pending: Vec<(u64, TimerId, Time)> = slot
                    .timers
                    .iter()
                    .filter(|(_, (_, due))| *due > now)
                    .map(|(t, (g, due))| (*g, *t, *due))
                    .collect();
                pending.sort_unstable();
                for (_, timer, due) in pending {
                    let left = old.local(due).saturating_since(old.local(now));
                    let generation = self.next_timer_generation;
                    self.next_timer_generation += 1;
                    let at = now + slot.clock.to_sim(left);
                    slot.timers.insert(timer, (generation, at));
                    let seq = self.seq;
                    self.seq += 1;
                    self.queue.push(Event {
                        at,
                        seq,
                        kind: EventKind::Timer {
                            node: *node,
                            timer,
                            generation,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, id: NodeId) {
        let Some(slot) = self.nodes.get_mut(id as usize) else {
            return;
        };
        if slot.node.is_none() {
            return;
        }
        slot.node = None;
        slot.paused = false;
        slot.timers.clear();
        slot.parked.clear();
        slot.crash_after_effects = None;
        slot.disk
            .crash(&mut self.fault_rng, self.config.torn_write_probability);
        self.trace_event(TraceKind::Crash { node: id });
    }

    fn resume(&mut self, id: NodeId) -> Result<()> {
        self.check_node("node", id)?;
        let Some(slot) = self.nodes.get_mut(id as usize) else {
            return Ok(());
        };
        if !slot.paused {
            return Ok(());
        }
        slot.paused = false;
        let parked = std::mem::take(&mut slot.parked);
        self.trace_event(TraceKind::Resume { node: id });
        // The inbox and overdue timers are handled now, in the order they came due, and
        // before anything else due at this instant: they are older than all of it, and a
        // FIFO link must stay FIFO across a pause (a message due exactly now must not
        // overtake the ones parked before it).
        for e in parked {
            self.resumed.push_back(Event {
                at: self.now,
                seq: e.seq,
                kind: e.kind,
            });
        }
        Ok(())
    }
}

/// A short human description of a fault, for the trace.
pub fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Crash { node } => format!("crash node {node}"),
        Fault::CrashMidEvent { node, effects } => {
            format!("crash node {node} after {effects} effects of its next event")
        }
        Fault::Restart { node } => format!("restart node {node}"),
        Fault::Pause { node } => format!("pause node {node}"),
        Fault::Resume { node } => format!("resume node {node}"),
        Fault::Partition { groups } => format!("partition {groups:?} | rest"),
        Fault::PartitionOneWay { from, to } => format!("cut {from:?} → {to:?}"),
        Fault::Heal => "heal all partitions".to_string(),
        Fault::SetLoss { probability } => format!("loss {:.1} %", probability.get() * 100.0),
        Fault::SetDuplicate { probability } => {
            format!("duplication {:.1} %", probability.get() * 100.0)
        }
        Fault::SetReorder { probability } => {
            format!("reordering {:.1} %", probability.get() * 100.0)
        }
        Fault::SetLatency { latency } => format!("latency {latency:?}"),
        Fault::SetLinkLatency { from, to, latency } => format!("latency {from}→{to} {latency:?}"),
        Fault::ClockSkew { node, skew_ms } => format!("node {node} clock skew {skew_ms} ms"),
        Fault::ClockDrift { node, ppm } => format!("node {node} clock drift {ppm} ppm"),
    }
}
