//! Lab `coordination.leader-election`: the bully algorithm ([`super::bully`]) or the
//! lease on a store ([`super::lease`]), picked by `algorithm`, on the same cluster kit,
//! so that the two can be watched side by side: who leads, whom each node believes, the
//! term and lease, and the messages each node sent by kind — the bully algorithm's
//! quadratic burst of `election`s and `answer`s against the lease's steady claims.
//!
//! Invariants. Bully: after a quiet spell (no fault in force, the network as configured,
//! for three rounds of its timeouts) every live node follows the highest live id. Lease:
//! at most one leader per term, and never two candidates holding a valid lease at once —
//! which holds only inside the clock bound (drift between clocks under
//! `driftMarginPpm`, no clock stepped back): a `clockDrift` or `clockSkew` fault on the
//! leader shows it break. `crashLeader` and `isolateLeader` aim a fault at whoever leads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher as _};

use crate::bounded::{Count, Millis};
use crate::coordination::leader_election::bully::{self, BullyConfig, BullyMessage, BullyNode};
use crate::coordination::leader_election::lease::{
    self, CandidatePhase, FIRST_CANDIDATE, LeaseElectionConfig, LeaseMessage, LeaseNode,
};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::disk::Disk;
use crate::sim::engine::MAX_NODES;
use crate::sim::node::{ClientRequest, Ctx, Effect, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::sim::{Fault, FaultScript, NetworkConfig, NodeStatus, ScheduledFault, Sim};
use crate::time::{Duration, Time};

const TRACE_TAIL: usize = 20_000;
/// Terms remembered for the one-leader-per-term check.
const TERMS_KEPT: usize = 1_024;

/// Which election the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ElectionAlgorithm {
    /// Garcia-Molina's bully algorithm: the highest live id wins.
    Bully,
    /// A leader lease on a store (node 0), claimed by compare-and-set.
    Lease,
}

cluster_lab_config! {
    /// Configuration of the leader-election lab.
    pub struct ElectionLabConfig {
        /// Bully or a lease on a store.
        pub algorithm: ElectionAlgorithm = ElectionAlgorithm::Lease,
        /// Candidates (with a lease, node 0 is the store and the candidates follow it).
        pub candidates: Count<2, { MAX_NODES - 1 }> = Count::of(5),
        /// Bully: between two coordinator heartbeats.
        pub heartbeat_ms: Millis<1, 60_000> = Millis::of(50),
        /// Bully: silence from the coordinator before a node starts an election.
        pub leader_timeout_ms: Millis<1, 60_000> = Millis::of(200),
        /// Bully: how long an electing node waits for an answer.
        pub answer_timeout_ms: Millis<1, 60_000> = Millis::of(30),
        /// Bully: how long an answered node waits for the coordinator.
        pub coordinator_timeout_ms: Millis<1, 60_000> = Millis::of(100),
        /// Lease: how long a grant lasts on the store's clock.
        pub lease_ms: Millis<1, 60_000> = Millis::of(300),
        /// Lease: between the leader's renewals.
        pub renew_ms: Millis<1, 60_000> = Millis::of(100),
        /// Lease: between a follower's claims.
        pub poll_ms: Millis<1, 60_000> = Millis::of(100),
        /// Lease: how much faster the store's clock may run than the leader's (ppm).
        pub drift_margin_ppm: Count<0, 500_000> = Count::of(100_000),
    }
    defaults {
        faults: default_faults(),
    }
}

/// Node 4 crashes at 1.5 s and comes back at 3 s (with bully it is the first leader).
fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    FaultScript {
        faults: vec![
            at(1_500, Fault::Crash { node: 4 }),
            at(3_000, Fault::Restart { node: 4 }),
        ],
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ElectionLabAction {
    /// Crash the node that leads now.
    CrashLeader {},
    /// Cut the node that leads now off from every other node.
    IsolateLeader {},
}

/// Either algorithm's node, so that one lab runs both.
#[derive(Debug, Clone)]
pub enum ElectionNode {
    Bully(BullyNode),
    Lease(LeaseNode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElectionMessage {
    Bully(BullyMessage),
    Lease(LeaseMessage),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElectionConfig {
    Bully(BullyConfig),
    Lease(LeaseElectionConfig),
}

impl Fingerprint for ElectionMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

impl Fingerprint for ElectionNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        match self {
            ElectionNode::Bully(n) => {
                h.write_u8(0);
                n.fingerprint_into(h);
            }
            ElectionNode::Lease(n) => {
                h.write_u8(1);
                n.fingerprint_into(h);
            }
        }
    }
}

impl ElectionNode {
    pub fn bully(&self) -> Option<&BullyNode> {
        match self {
            ElectionNode::Bully(n) => Some(n),
            ElectionNode::Lease(_) => None,
        }
    }

    pub fn lease(&self) -> Option<&LeaseNode> {
        match self {
            ElectionNode::Lease(n) => Some(n),
            ElectionNode::Bully(_) => None,
        }
    }

    /// Whom the node takes for the leader.
    pub fn believed_leader(&self) -> Option<NodeId> {
        match self {
            ElectionNode::Bully(n) => n.leader(),
            ElectionNode::Lease(n) => n.believed_leader().map(|l| l.0),
        }
    }
}

/// Runs `f` on the wrapped node with a context of its own type and passes its effects on,
/// its messages wrapped.
fn delegate<I: Node<Request = (), Response = ()>>(
    inner: &mut I,
    ctx: &mut Ctx<'_, ElectionNode>,
    wrap: fn(I::Message) -> ElectionMessage,
    f: impl FnOnce(&mut I, &mut Ctx<'_, I>),
) {
    let mut effects = Vec::new();
    let mut inner_ctx = Ctx::new(
        ctx.id,
        ctx.local_now,
        ctx.node_count,
        &mut *ctx.rng,
        &mut effects,
    );
    f(inner, &mut inner_ctx);
    for e in effects {
        ctx.effects.push(match e {
            Effect::Send { to, msg } => Effect::Send { to, msg: wrap(msg) },
            Effect::SetTimer { timer, after } => Effect::SetTimer { timer, after },
            Effect::CancelTimer { timer } => Effect::CancelTimer { timer },
            Effect::Reply {
                client,
                request,
                reply,
            } => Effect::Reply {
                client,
                request,
                reply,
            },
            Effect::Disk(op) => Effect::Disk(op),
            Effect::StateChange(s) => Effect::StateChange(s),
            Effect::Log(s) => Effect::Log(s),
        });
    }
}

impl Node for ElectionNode {
    type Message = ElectionMessage;
    type Request = ();
    type Response = ();
    type Config = ElectionConfig;

    fn recover(id: NodeId, config: &ElectionConfig, disk: &Disk) -> Self {
        match config {
            ElectionConfig::Bully(c) => ElectionNode::Bully(BullyNode::recover(id, c, disk)),
            ElectionConfig::Lease(c) => ElectionNode::Lease(LeaseNode::recover(id, c, disk)),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        match self {
            ElectionNode::Bully(n) => {
                delegate(n, ctx, ElectionMessage::Bully, |n, c| n.on_start(c))
            }
            ElectionNode::Lease(n) => {
                delegate(n, ctx, ElectionMessage::Lease, |n, c| n.on_start(c))
            }
        }
    }

    fn on_message(&mut self, from: NodeId, msg: ElectionMessage, ctx: &mut Ctx<'_, Self>) {
        match (self, msg) {
            (ElectionNode::Bully(n), ElectionMessage::Bully(m)) => {
                delegate(n, ctx, ElectionMessage::Bully, |n, c| {
                    n.on_message(from, m, c)
                })
            }
            (ElectionNode::Lease(n), ElectionMessage::Lease(m)) => {
                delegate(n, ctx, ElectionMessage::Lease, |n, c| {
                    n.on_message(from, m, c)
                })
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match self {
            ElectionNode::Bully(n) => {
                delegate(n, ctx, ElectionMessage::Bully, |n, c| n.on_timer(timer, c))
            }
            ElectionNode::Lease(n) => {
                delegate(n, ctx, ElectionMessage::Lease, |n, c| n.on_timer(timer, c))
            }
        }
    }

    fn on_request(&mut self, request: ClientRequest<()>, ctx: &mut Ctx<'_, Self>) {
        match self {
            ElectionNode::Bully(n) => delegate(n, ctx, ElectionMessage::Bully, |n, c| {
                n.on_request(request, c)
            }),
            ElectionNode::Lease(n) => delegate(n, ctx, ElectionMessage::Lease, |n, c| {
                n.on_request(request, c)
            }),
        }
    }

    fn message_kind(msg: &ElectionMessage) -> &'static str {
        match msg {
            ElectionMessage::Bully(m) => BullyNode::message_kind(m),
            ElectionMessage::Lease(m) => LeaseNode::message_kind(m),
        }
    }

    fn role(&self) -> &'static str {
        match self {
            ElectionNode::Bully(n) => n.role(),
            ElectionNode::Lease(n) => n.role(),
        }
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElectionTotals {
    /// Every message the nodes sent.
    pub sent: u64,
    /// The election's own messages: bully's elections, answers and coordinators; the
    /// lease's claims and the store's answers to them (heartbeats and renewals left out).
    pub election: u64,
    pub leader_changes: u64,
}

/// What the cluster's faults look like, to tell when they last changed: node statuses,
/// partitions, and whether the network is as configured.
#[derive(Debug, Clone, PartialEq)]
struct Disturbance {
    statuses: Vec<Option<NodeStatus>>,
    groups: Vec<Vec<NodeId>>,
    cuts: Vec<(NodeId, NodeId)>,
    network_as_configured: bool,
}

impl Disturbance {
    fn quiet(&self) -> bool {
        self.groups.is_empty()
            && self.cuts.is_empty()
            && self.network_as_configured
            && !self.statuses.contains(&Some(NodeStatus::Paused))
    }
}

/// The leader-election lab.
#[derive(Debug, Clone)]
pub struct ElectionLab {
    sim: Sim<ElectionNode>,
    algorithm: ElectionAlgorithm,
    network: NetworkConfig,
    /// Bully: how long the faults must be quiet before every live node must agree.
    quiet_spell: Duration,
    disturbance: Disturbance,
    disturbed_at: Time,
    /// The first breach of each invariant: what and whom.
    not_converged: Option<(String, Vec<NodeId>)>,
    two_in_a_term: Option<(String, Vec<NodeId>)>,
    two_valid: Option<(String, Vec<NodeId>)>,
    /// Lease: the leader seen in each recent term.
    leader_of_term: BTreeMap<u64, NodeId>,
    leader: Option<NodeId>,
    leader_changes: u64,
    /// Each node's boots and sent counts (all, election) as last seen, and the running
    /// totals.
    seen_sent: Vec<(u32, u64, u64)>,
    sent_total: (u64, u64),
}

impl ElectionLab {
    pub fn algorithm(&self) -> ElectionAlgorithm {
        self.algorithm
    }

    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
    }

    /// The node that leads now: bully's leader, or the lease holder with a valid lease
    /// (the lowest id if, outside the clock bound, there are two).
    pub fn leader(&self) -> Option<NodeId> {
        match self.algorithm {
            ElectionAlgorithm::Bully => (0..self.sim.node_count()).rev().find(|&id| {
                self.sim.status(id) == Some(NodeStatus::Up)
                    && self
                        .sim
                        .node(id)
                        .and_then(ElectionNode::bully)
                        .is_some_and(|n| n.phase() == bully::BullyPhase::Leader)
            }),
            ElectionAlgorithm::Lease => lease::valid_leaders_in(&self.sim, ElectionNode::lease)
                .first()
                .map(|l| l.0),
        }
    }

    fn disturbance(&self) -> Disturbance {
        let net = self.sim.network();
        Disturbance {
            statuses: (0..self.sim.node_count())
                .map(|id| self.sim.status(id))
                .collect(),
            groups: net.groups(),
            cuts: net.one_way_cuts(),
            network_as_configured: net.config() == &self.network,
        }
    }

    /// Messages the nodes now up have sent since they booted: all of them, and the
    /// election's own, per node.
    fn sent_now(&self) -> Vec<(u64, u64)> {
        (0..self.sim.node_count())
            .map(|id| match self.sim.node(id) {
                Some(ElectionNode::Bully(n)) => {
                    let s = n.sent();
                    (s.election_messages() + s.heartbeat, s.election_messages())
                }
                Some(ElectionNode::Lease(n)) => {
                    let s = n.sent();
                    (s.total(), s.election_messages())
                }
                None => (0, 0),
            })
            .collect()
    }

    /// Adds what each node sent since the last look to the running totals: a node's own
    /// counts start again when it boots, and vanish while it is down.
    fn count_sent(&mut self) {
        let now = self.sent_now();
        self.seen_sent.resize(now.len(), (0, 0, 0));
        for (id, (seen, &(all, election))) in self.seen_sent.iter_mut().zip(&now).enumerate() {
            let boots = self.sim.boots(id as NodeId);
            let (base_all, base_election) = if boots != seen.0 {
                (0, 0)
            } else {
                (seen.1, seen.2)
            };
            self.sent_total.0 += all.saturating_sub(base_all);
            self.sent_total.1 += election.saturating_sub(base_election);
            *seen = (boots, all, election);
        }
    }

    fn check_bully(&mut self) {
        let d = self.disturbance();
        if d != self.disturbance {
            self.disturbance = d;
            self.disturbed_at = self.sim.now();
        }
        if self.not_converged.is_some()
            || !self.disturbance.quiet()
            || self.sim.now().saturating_since(self.disturbed_at) < self.quiet_spell
        {
            return;
        }
        if let Err(e) = bully::agreement_in(&self.sim, ElectionNode::bully) {
            let live: Vec<NodeId> = (0..self.sim.node_count())
                .filter(|&id| self.sim.status(id) == Some(NodeStatus::Up))
                .collect();
            self.not_converged = Some((
                format!(
                    "at {} after a quiet spell of {} ms: {e}",
                    self.sim.now(),
                    self.quiet_spell.as_millis_f64()
                ),
                live,
            ));
        }
    }

    fn check_lease(&mut self) {
        let valid = lease::valid_leaders_in(&self.sim, ElectionNode::lease);
        if valid.len() > 1 && self.two_valid.is_none() {
            self.two_valid = Some((
                format!(
                    "at {} {} candidates hold a valid lease on their own clocks: {valid:?} \
                     (node, term)",
                    self.sim.now(),
                    valid.len()
                ),
                valid.iter().map(|v| v.0).collect(),
            ));
        }
        for id in FIRST_CANDIDATE..self.sim.node_count() {
            let Some((term, _)) = self
                .sim
                .node(id)
                .and_then(ElectionNode::lease)
                .and_then(LeaseNode::leading)
            else {
                continue;
            };
            self.record_term(term, id);
        }
    }

    /// Notes that `id` led in `term`; a second node in the same term breaks the invariant.
    fn record_term(&mut self, term: u64, id: NodeId) {
        match self.leader_of_term.get(&term) {
            Some(&other) if other != id => {
                if self.two_in_a_term.is_none() {
                    self.two_in_a_term = Some((
                        format!("n{other} and n{id} both led in term {term}"),
                        vec![other, id],
                    ));
                }
            }
            Some(_) => {}
            None => {
                self.leader_of_term.insert(term, id);
                if self.leader_of_term.len() > TERMS_KEPT {
                    self.leader_of_term.pop_first();
                }
            }
        }
    }

    fn messages_panel(&self) -> Panel {
        let rows = (0..self.sim.node_count())
            .filter_map(|id| {
                let row = match self.sim.node(id)? {
                    ElectionNode::Bully(n) => {
                        let s = n.sent();
                        vec![
                            json!(format!("n{id}")),
                            json!(s.election),
                            json!(s.answer),
                            json!(s.coordinator),
                            json!(s.heartbeat),
                            json!(s.election_messages() + s.heartbeat),
                        ]
                    }
                    ElectionNode::Lease(n) => {
                        let s = n.sent();
                        vec![
                            json!(format!("n{id}")),
                            json!(s.claim),
                            json!(s.elected + s.held),
                            json!(s.renew),
                            json!(s.renewed + s.lost),
                            json!(s.total()),
                        ]
                    }
                };
                Some(row)
            })
            .collect();
        let columns: &[&str] = match self.algorithm {
            ElectionAlgorithm::Bully => &[
                "node",
                "election",
                "answer",
                "coordinator",
                "heartbeat",
                "total",
            ],
            ElectionAlgorithm::Lease => &[
                "node",
                "claim",
                "elected/held",
                "renew",
                "renewed/lost",
                "total",
            ],
        };
        Panel::Table {
            title: "messages sent by kind (since the node last booted)".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }
}

impl Sampled for ElectionLab {
    type Totals = ElectionTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("messages sent", "per interval"),
            ("election messages", "per interval"),
            ("leader changes", "total"),
            ("leaders now", "nodes"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> ElectionTotals {
        let (sent, election) = self.sent_total;
        ElectionTotals {
            sent,
            election,
            leader_changes: self.leader_changes,
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &ElectionTotals) -> Vec<f64> {
        let t = self.totals();
        let leaders = match self.algorithm {
            ElectionAlgorithm::Bully => (0..self.sim.node_count())
                .filter(|&id| self.sim.node(id).map(Node::role) == Some("leader"))
                .count(),
            ElectionAlgorithm::Lease => {
                lease::valid_leaders_in(&self.sim, ElectionNode::lease).len()
            }
        };
        vec![
            t.sent.saturating_sub(since.sent) as f64,
            t.election.saturating_sub(since.election) as f64,
            t.leader_changes as f64,
            leaders as f64,
        ]
    }
}

impl ClusterLab for ElectionLab {
    const ID: &'static str = "coordination.leader-election";
    type Node = ElectionNode;
    type Config = ElectionLabConfig;
    type Action = ElectionLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &ElectionLabConfig) -> Result<Self> {
        let (config, nodes, quiet_spell) = match c.algorithm {
            ElectionAlgorithm::Bully => {
                let b = BullyConfig {
                    heartbeat: c.heartbeat_ms.duration(),
                    leader_timeout: c.leader_timeout_ms.duration(),
                    answer_timeout: c.answer_timeout_ms.duration(),
                    coordinator_timeout: c.coordinator_timeout_ms.duration(),
                };
                let round = b.leader_timeout.0 + b.answer_timeout.0 + b.coordinator_timeout.0;
                let quiet = Duration(3 * round + b.heartbeat.0);
                (ElectionConfig::Bully(b), c.candidates.get(), quiet)
            }
            ElectionAlgorithm::Lease => (
                ElectionConfig::Lease(LeaseElectionConfig {
                    lease: c.lease_ms.duration(),
                    renew: c.renew_ms.duration(),
                    poll: c.poll_ms.duration(),
                    drift_margin_ppm: c.drift_margin_ppm.get() as u64,
                }),
                FIRST_CANDIDATE + c.candidates.get(),
                Duration::ZERO,
            ),
        };
        let mut sim = Sim::new(c.sim_config(nodes), config)?;
        c.load_faults(&mut sim)?;
        let mut lab = ElectionLab {
            network: sim.network().config().clone(),
            algorithm: c.algorithm,
            quiet_spell,
            disturbance: Disturbance {
                statuses: Vec::new(),
                groups: Vec::new(),
                cuts: Vec::new(),
                network_as_configured: true,
            },
            disturbed_at: Time::ZERO,
            not_converged: None,
            two_in_a_term: None,
            two_valid: None,
            leader_of_term: BTreeMap::new(),
            leader: None,
            leader_changes: 0,
            seen_sent: Vec::new(),
            sent_total: (0, 0),
            sim,
        };
        lab.disturbance = lab.disturbance();
        lab.observe();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<ElectionNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<ElectionNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        self.count_sent();
        match self.algorithm {
            ElectionAlgorithm::Bully => self.check_bully(),
            ElectionAlgorithm::Lease => self.check_lease(),
        }
        let leader = self.leader();
        if leader.is_some() && leader != self.leader {
            self.leader_changes += 1;
        }
        if leader.is_some() {
            self.leader = leader;
        }
    }

    fn act(&mut self, action: &ElectionLabAction) -> Result<()> {
        let Some(leader) = self.leader() else {
            return Err(DistlabError::InvalidState(
                "no node leads now (step on until one does)".into(),
            ));
        };
        let fault = match action {
            ElectionLabAction::CrashLeader {} => Fault::Crash { node: leader },
            ElectionLabAction::IsolateLeader {} => Fault::Partition {
                groups: vec![vec![leader]],
            },
        };
        self.sim.apply_fault(&fault)
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        match n {
            ElectionNode::Bully(b) => {
                fields.insert("believedLeader".into(), json!(b.leader()));
                fields.insert("electionsStarted".into(), json!(b.elections_started()));
                let s = b.sent();
                fields.insert(
                    "sent".into(),
                    json!({"election": s.election, "answer": s.answer,
                        "coordinator": s.coordinator, "heartbeat": s.heartbeat}),
                );
            }
            ElectionNode::Lease(l) => {
                let s = l.sent();
                fields.insert(
                    "sent".into(),
                    json!({"claim": s.claim, "renew": s.renew, "elected": s.elected,
                        "held": s.held, "renewed": s.renewed, "lost": s.lost}),
                );
                if let Some(st) = l.store() {
                    let now = self.sim.clock(id).map(|k| k.local(self.sim.now()));
                    let holder = st.holder.filter(|h| now.is_some_and(|t| t < h.2));
                    fields.insert("newestTerm".into(), json!(st.last_token));
                    fields.insert("grants".into(), json!(st.grants));
                    fields.insert(
                        "leaseHolder".into(),
                        json!(holder.map(|h| json!({"node": h.0, "term": h.1,
                            "leaseEndsMsStoreClock": h.2.as_millis_f64()}))),
                    );
                }
                if let Some(c) = l.candidate() {
                    fields.insert(
                        "believedLeader".into(),
                        json!(
                            l.believed_leader()
                                .map(|(node, term)| json!({"node": node, "term": term}))
                        ),
                    );
                    if let CandidatePhase::Leader { term, until, .. } = c.phase {
                        let local = self.sim.clock(id).map(|k| k.local(self.sim.now()));
                        fields.insert("term".into(), json!(term));
                        fields.insert(
                            "leaseLeftMsOwnClock".into(),
                            json!(local.map(|t| until.0 as f64 / 1e3 - t.as_millis_f64())),
                        );
                    }
                    fields.insert("termsWon".into(), json!(c.terms_won));
                    fields.insert("steppedDown".into(), json!(c.stepped_down));
                }
            }
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.messages_panel()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let status = |name: &str, breach: &Option<(String, Vec<NodeId>)>, ok: &str| match breach {
            Some((d, nodes)) => InvariantStatus::violated(name, d.clone(), nodes.clone()),
            None => InvariantStatus::holds(name, ok),
        };
        match self.algorithm {
            ElectionAlgorithm::Bully => vec![status(
                "after a quiet spell every live node follows the highest live id",
                &self.not_converged,
                "checked once no fault has been in force for three rounds of timeouts",
            )],
            ElectionAlgorithm::Lease => vec![
                status(
                    "at most one leader per term",
                    &self.two_in_a_term,
                    "each term the store granted was held by one node",
                ),
                status(
                    "never two valid leases at once (inside the clock bound)",
                    &self.two_valid,
                    "every leader's lease ran out on its clock before the store granted the next",
                ),
            ],
        }
    }

    fn example_actions() -> Vec<ClusterAction<ElectionLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(ElectionLabAction::CrashLeader {}));
        v.push(ClusterAction::Lab(ElectionLabAction::IsolateLeader {}));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn lab(algorithm: ElectionAlgorithm) -> Cluster<ElectionLab> {
        Cluster::<ElectionLab>::new(&ElectionLabConfig {
            algorithm,
            ..ElectionLabConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn both_algorithms_elect_hand_over_and_keep_their_invariants() {
        for algorithm in [ElectionAlgorithm::Bully, ElectionAlgorithm::Lease] {
            let mut l = lab(algorithm);
            while l.step_until(Time::from_millis(1_000)) {}
            let first = l.lab().leader().unwrap();
            while l.step_until(Time::from_millis(5_000)) {}
            assert!(l.invariants().iter().all(|i| i.ok), "{:?}", l.invariants());
            assert!(l.lab().leader().is_some());
            if algorithm == ElectionAlgorithm::Bully {
                assert_eq!(first, 4);
                // Crashed at 1.5 s, back at 3 s: n4 lost and took it back.
                assert!(
                    l.lab().leader_changes() >= 3,
                    "{}",
                    l.lab().leader_changes()
                );
                assert_eq!(l.lab().leader(), Some(4));
            }
        }
    }

    #[test]
    fn every_invariant_can_fail() {
        // Bully: a node that follows the wrong leader after a quiet spell.
        let mut l = lab(ElectionAlgorithm::Bully);
        while l.step_until(Time::from_millis(1_000)) {}
        let mut bad = l.lab().clone();
        bad.disturbed_at = Time::ZERO;
        bad.quiet_spell = Duration::ZERO;
        // Crash n4 with no time to re-elect: the others still follow it.
        bad.sim.apply_fault(&Fault::Crash { node: 4 }).unwrap();
        bad.disturbance = bad.disturbance();
        bad.observe();
        assert!(!bad.invariants()[0].ok);
        // Lease: a second node in a term, and two valid leases (a leader's clock slowed
        // far past the margin while it is cut off).
        let mut l = lab(ElectionAlgorithm::Lease);
        while l.step_until(Time::from_millis(1_000)) {}
        let mut two = l.lab().clone();
        let leader = two.leader().unwrap();
        two.record_term(1_000, leader);
        two.record_term(1_000, leader + 1);
        assert!(!two.invariants()[0].ok);
        assert!(two.invariants()[1].ok);
        let mut slow = l;
        slow.act(&ClusterAction::Fault(Fault::ClockDrift {
            node: leader,
            ppm: -400_000,
        }))
        .unwrap();
        slow.act(&ClusterAction::Lab(ElectionLabAction::IsolateLeader {}))
            .unwrap();
        while slow.step_until(Time::from_millis(2_500)) {}
        assert!(!slow.invariants()[1].ok, "{:?}", slow.invariants());
        assert!(slow.invariants()[0].ok);
    }

    #[test]
    fn crash_leader_needs_a_leader_and_moves_leadership() {
        let mut l = lab(ElectionAlgorithm::Lease);
        assert!(
            l.act(&ClusterAction::Lab(ElectionLabAction::CrashLeader {}))
                .is_err()
        );
        while l.step_until(Time::from_millis(1_000)) {}
        let first = l.lab().leader().unwrap();
        l.act(&ClusterAction::Lab(ElectionLabAction::CrashLeader {}))
            .unwrap();
        while l.step_until(Time::from_millis(2_000)) {}
        assert_ne!(l.lab().leader(), Some(first));
        assert!(l.lab().leader().is_some());
    }
}
