//! Lab `consensus.raft`: a Raft cluster of 3 to 51 nodes with key-value clients, every
//! fault of the simulator as an action, plus adding and removing nodes, transferring
//! leadership and triggering snapshots. The view shows each node's role, term, vote, log
//! tail, commit and applied index, election-timer progress and (on the leader) each
//! follower's next and match index; messages in flight by kind; the leader's key-value
//! state and the latest client requests; metrics; and the five safety invariants,
//! checked after every event — switch off `currentTermCommitRule`, or use lease reads
//! with a clock drifting beyond `leaseDriftBoundPpm` (or stepped), to watch one break.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::consensus::raft::config::{MAX_MEMBERS, RaftConfig};
use crate::consensus::raft::glance;
use crate::consensus::raft::harness::{Harness, LogicalOp, Workload};
use crate::consensus::raft::invariants::Invariant;
use crate::consensus::raft::messages::{EntryData, Message};
use crate::consensus::raft::node::{RaftNode, RaftRequest, Role};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, MessageDetail, NodeGlance, Panel};
use crate::sim::history::Outcome;
use crate::sim::{Fault, InFlight, NetworkConfig, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The most processes a lab may grow to by adding nodes.
pub const MAX_LAB_NODES: u32 = 64;
/// Log entries shown per node.
const LOG_TAIL: usize = 8;
/// Trace events a lab hands out: the newest ones. A Raft cluster writes several per
/// event (delivery, disk writes, sends), and the page shows a recent window; the hash
/// still covers every event. Serialising an event costs microseconds, and the page (and
/// the lab suites) ask for the trace often.
pub const TRACE_TAIL: usize = 400;

/// The clients' workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RaftLabWorkload {
    /// Closed-loop clients, each one command at a time.
    pub clients: Count<0, 32>,
    pub keys: Count<1, 1_000>,
    pub read_fraction: Probability,
    /// At most `1 − readFraction`.
    pub cas_fraction: Probability,
    /// Pause between an answer and the client's next command.
    pub think_ms: Millis<0, 600_000>,
    /// How long a client waits for an answer before retrying elsewhere.
    pub timeout_ms: Millis<1, 600_000>,
}

impl Default for RaftLabWorkload {
    fn default() -> Self {
        RaftLabWorkload {
            clients: Count::of(2),
            keys: Count::of(3),
            read_fraction: Probability::of(0.3),
            cas_fraction: Probability::of(0.1),
            think_ms: Millis::of(50),
            timeout_ms: Millis::of(500),
        }
    }
}

cluster_lab_config! {
    /// Configuration of the Raft lab.
    pub struct RaftLabConfig {
        /// Members at the start.
        pub nodes: Count<3, { MAX_MEMBERS }> = Count::of(5),
        pub raft: RaftConfig = RaftConfig {
            snapshot_entries: 50,
            ..RaftConfig::default()
        },
        pub workload: RaftLabWorkload = RaftLabWorkload::default(),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RaftLabAction {
    /// A one-off client command, to `node` (default: the leader).
    #[serde(rename_all = "camelCase")]
    ClientRequest {
        request: KvOp,
        #[serde(default)]
        node: Option<NodeId>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: f64,
    },
    /// Starts a new process and asks the leader to add it (as a learner, promoted once
    /// it has caught up).
    AddNode {},
    /// Asks the leader to remove `node` from the configuration.
    RemoveNode { node: NodeId },
    /// Asks the leader to hand leadership to `to`.
    TransferLeadership { to: NodeId },
    /// Asks `node` to snapshot and compact its log now.
    Snapshot { node: NodeId },
}

fn default_timeout_ms() -> f64 {
    1_000.0
}

/// The Raft lab.
#[derive(Debug, Clone)]
pub struct RaftLab {
    h: Harness,
    /// The run as of its last event; samples read this, never the live state, so a run
    /// stepped by time and one stepped by events (seek, replay) record the same samples.
    gauges: Gauges,
    /// The first operation that may be answered after the last sample: a cache of where
    /// the latency samples start looking (samples come in time order).
    latency_cursor: Cell<usize>,
    next_session: u64,
}

/// What the metrics read of a run, as of its last processed event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Gauges {
    pub commit: u64,
    pub delivered: u64,
    pub max_term: u64,
    /// Time without a leader able to serve, up to `at`.
    pub leaderless_us: u64,
    pub serving: bool,
    pub at: Time,
}

impl Gauges {
    /// The gauges after the event `h` just processed, these being the ones before it.
    pub(super) fn after_event(&self, h: &Harness) -> Gauges {
        let sim = h.sim();
        let now = sim.now();
        let nodes = (0..sim.node_count()).filter_map(|id| sim.node(id));
        let (commit, max_term) = nodes.fold((0, 0), |(c, t), n| {
            (c.max(n.commit_index()), t.max(n.term()))
        });
        let gap = if self.serving {
            0
        } else {
            now.saturating_since(self.at).0
        };
        Gauges {
            commit: commit.max(self.commit),
            delivered: sim.net_stats().delivered,
            max_term,
            leaderless_us: self.leaderless_us + gap,
            serving: h.leader_serving(),
            at: now,
        }
    }
}

/// Processes one event of `h` (if one is due by `deadline`); returns the gauges from
/// before it, for the samples due before its time, and updates `gauges`.
pub(crate) fn step_harness(h: &mut Harness, deadline: Time, gauges: &mut Gauges) -> Option<Gauges> {
    if !h.step_until(deadline) {
        return None;
    }
    let before = *gauges;
    *gauges = before.after_event(h);
    Some(before)
}

/// Validates a workload and turns it into the harness's.
pub(crate) fn workload(w: &RaftLabWorkload) -> Result<Workload> {
    // Each bound is the field's type's; only the sum is checked here.
    if w.read_fraction.get() + w.cas_fraction.get() > 1.0 {
        return Err(DistlabError::field(
            "workload.casFraction",
            "readFraction + casFraction must be at most 1",
        ));
    }
    Ok(Workload {
        clients: w.clients.get(),
        keys: w.keys.get(),
        read_fraction: w.read_fraction.get(),
        cas_fraction: w.cas_fraction.get(),
        think: w.think_ms.duration(),
        attempt_timeout: w.timeout_ms.duration(),
        ..Workload::default()
    })
}

/// Prefixes the field of a validation error.
pub(crate) fn in_field(prefix: &str, e: DistlabError) -> DistlabError {
    match e {
        DistlabError::InvalidField { field, problem } => {
            DistlabError::field(format!("{prefix}.{field}"), problem)
        }
        other => other,
    }
}

/// Builds a harness from the parts every Raft lab shares.
pub(crate) fn build_harness(
    seed: u64,
    nodes: u32,
    raft: &RaftConfig,
    w: &RaftLabWorkload,
    network: &NetworkConfig,
) -> Result<Harness> {
    if !(3..=MAX_MEMBERS).contains(&nodes) {
        return Err(DistlabError::field(
            "nodes",
            format!("must be between 3 and {MAX_MEMBERS}, got {nodes}"),
        ));
    }
    let params = raft.params(nodes).map_err(|e| in_field("raft", e))?;
    network.validate("network")?;
    raft.check_timing(&network.latency)
        .map_err(|e| in_field("raft", e))?;
    let workload = workload(w)?;
    let sim = SimConfig {
        seed,
        nodes,
        // The workload's clients, then one for the lab's own requests.
        clients: workload.clients + 1,
        network: network.clone(),
        record_trace: true,
        trace_limit: 100_000,
        ..SimConfig::default()
    };
    Harness::new(sim, params, workload, true)
}

impl RaftLab {
    /// The harness underneath, for tests.
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    /// Latencies in ms of the operations answered in (at − interval, at], by their answer
    /// time, whatever the run has done since.
    fn latencies(&self, at: Time, interval: Duration) -> Vec<f64> {
        let ops = self.h.ops();
        let from = at.0.saturating_sub(interval.0);
        let answered = |o: &LogicalOp| o.result.as_ref().map(|(_, t)| t.0);
        let mut cursor = self.latency_cursor.get();
        let mut latencies: Vec<f64> = ops
            .iter()
            .skip(cursor)
            .filter(|o| answered(o).is_some_and(|t| t > from && t <= at.0))
            .filter_map(|o| answered(o).map(|t| (t - o.invoked.0) as f64 / 1e3))
            .collect();
        while ops
            .get(cursor)
            .is_some_and(|o| answered(o).is_some_and(|t| t <= at.0))
        {
            cursor += 1;
        }
        self.latency_cursor.set(cursor);
        latencies.sort_by(f64::total_cmp);
        latencies
    }

    fn kv_panel(&self) -> Panel {
        let sim = self.h.sim();
        let source = self
            .h
            .leader()
            .and_then(|l| sim.node(l))
            .or_else(|| (0..sim.node_count()).find_map(|id| sim.node(id)));
        let rows = source.map_or(Vec::new(), |n| {
            n.kv()
                .data()
                .iter()
                .take(50)
                .map(|(k, v)| vec![json!(k), json!(v)])
                .collect()
        });
        Panel::Table {
            title: "key-value state (leader's, applied)".into(),
            columns: vec!["key".into(), "value".into()],
            rows,
        }
    }

    fn clients_panel(&self) -> Panel {
        let rows = self
            .h
            .sim()
            .history()
            .iter()
            .rev()
            .take(12)
            .map(|op| {
                let (outcome, at) = match &op.outcome {
                    Outcome::Pending => ("pending".to_string(), None),
                    Outcome::Ok { value, at } => {
                        (format!("ok: {}", show_response(value)), Some(*at))
                    }
                    Outcome::Fail { reason, at } => (format!("fail: {reason}"), Some(*at)),
                    Outcome::Timeout { at } => ("timeout (unknown)".to_string(), Some(*at)),
                };
                vec![
                    json!(op.client),
                    json!(op.node),
                    json!(show_request(&op.body)),
                    json!(op.invoked.as_millis_f64()),
                    json!(outcome),
                    json!(at.map(|t| t.saturating_since(op.invoked).as_millis_f64())),
                ]
            })
            .collect();
        Panel::Table {
            title: "client requests (latest first)".into(),
            columns: [
                "client",
                "node",
                "request",
                "invoked ms",
                "outcome",
                "latency ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn leader_or_first(&self) -> NodeId {
        self.h.leader().unwrap_or(0)
    }

    fn admin(&mut self, node: NodeId, request: RaftRequest) -> Result<()> {
        self.h.admin(node, request).map(drop)
    }
}

/// The five invariants' status for a harness.
pub(crate) fn invariant_statuses(h: &Harness) -> Vec<InvariantStatus> {
    Invariant::ALL
        .iter()
        .map(|&inv| match h.violation() {
            Some(v) if v.invariant == inv => {
                InvariantStatus::violated(inv.name(), v.detail.clone(), v.nodes.clone())
            }
            _ => InvariantStatus::holds(inv.name(), "checked after every event"),
        })
        .collect()
}

/// A short form of an entry, for the log view.
pub fn describe(data: &EntryData) -> String {
    match data {
        EntryData::Noop => "no-op".into(),
        EntryData::Command(c) => show_op(&c.op),
        EntryData::Membership(m) => {
            let ids = |s: &std::collections::BTreeSet<NodeId>| {
                s.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if m.learners.is_empty() {
                format!("config voters {{{}}}", ids(&m.voters))
            } else {
                format!(
                    "config voters {{{}}} learners {{{}}}",
                    ids(&m.voters),
                    ids(&m.learners)
                )
            }
        }
    }
}

fn show_op(op: &KvOp) -> String {
    match op {
        KvOp::Get { key } => format!("get {key}"),
        KvOp::Put { key, value } => format!("put {key}={value}"),
        KvOp::Delete { key } => format!("delete {key}"),
        KvOp::Cas { key, expected, new } => {
            format!("cas {key} {}→{new}", expected.as_deref().unwrap_or("∅"))
        }
    }
}

fn show_request(r: &RaftRequest) -> String {
    match r {
        RaftRequest::Kv(c) => show_op(&c.op),
        RaftRequest::Snapshot => "snapshot".into(),
        RaftRequest::TransferLeadership { to } => format!("transfer leadership to {to}"),
        RaftRequest::AddNode { node } => format!("add node {node}"),
        RaftRequest::RemoveNode { node } => format!("remove node {node}"),
    }
}

fn show_response(r: &KvResponse) -> String {
    match r {
        KvResponse::Value { value } => value.clone().unwrap_or_else(|| "(absent)".into()),
        KvResponse::Ok => "ok".into(),
        KvResponse::CasFailed { current } => format!(
            "cas failed, value is {}",
            current.as_deref().unwrap_or("(absent)")
        ),
    }
}

/// What the commit and message rates are taken from.
#[derive(Debug, Clone, Copy, Default)]
pub struct RaftTotals {
    commit: u64,
    delivered: u64,
}

impl Sampled for RaftLab {
    type Totals = RaftTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("commits", "entries/s"),
            ("messages per commit", "messages"),
            ("client latency p50", "ms"),
            ("client latency p99", "ms"),
            ("time without a leader", "ms"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> RaftTotals {
        RaftTotals {
            commit: self.gauges.commit,
            delivered: self.gauges.delivered,
        }
    }

    fn sample(&self, at: Time, interval: Duration, since: &RaftTotals) -> Vec<f64> {
        let g = self.gauges;
        let commits = g.commit.saturating_sub(since.commit);
        let msgs = g.delivered.saturating_sub(since.delivered) as f64;
        let per_commit = if commits > 0 {
            msgs / commits as f64
        } else {
            0.0
        };
        let latencies = self.latencies(at, interval);
        let pct = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() - 1) as f64 * p).round() as usize;
            latencies.get(i).copied().unwrap_or(0.0)
        };
        vec![
            per_second(commits, interval),
            per_commit,
            pct(0.5),
            pct(0.99),
            g.leaderless_us as f64 / 1e3,
        ]
    }
}

impl ClusterLab for RaftLab {
    const ID: &'static str = "consensus.raft";
    type Node = RaftNode;
    type Config = RaftLabConfig;
    type Action = RaftLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &RaftLabConfig) -> Result<Self> {
        let mut h = build_harness(c.seed, c.nodes.get(), &c.raft, &c.workload, &c.network)?;
        c.load_faults(h.sim_mut())?;
        Ok(RaftLab {
            h,
            gauges: Gauges::default(),
            latency_cursor: Cell::new(0),
            next_session: 1,
        })
    }

    fn sim(&self) -> &Sim<RaftNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<RaftNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        step_harness(&mut self.h, until, &mut self.gauges).is_some()
    }

    fn role(&self, id: NodeId) -> String {
        let Some(n) = self.h.sim().node(id) else {
            return "down".into();
        };
        match n.raft_role() {
            Role::Follower if n.membership().learners.contains(&id) => "learner",
            Role::Follower if !n.membership().contains(id) => "non-member",
            r => r.name(),
        }
        .into()
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let sim = self.h.sim();
        let clock = sim.clock(id).copied().unwrap_or_default();
        let Some(n) = sim.node(id) else {
            return;
        };
        let local_now = clock.local(sim.now());
        let log = n.log();
        fields.insert("term".into(), json!(n.term()));
        fields.insert("votedFor".into(), json!(n.voted_for()));
        fields.insert("leader".into(), json!(n.leader()));
        fields.insert("commitIndex".into(), json!(n.commit_index()));
        fields.insert("appliedIndex".into(), json!(n.applied_index()));
        fields.insert("lastIndex".into(), json!(log.last_index()));
        fields.insert("lastTerm".into(), json!(log.last_term()));
        fields.insert("snapshotIndex".into(), json!(log.base_index()));
        fields.insert(
            "electionTimer".into(),
            json!(n.election_progress(local_now)),
        );
        fields.insert(
            "voters".into(),
            json!(n.membership().voters.iter().collect::<Vec<_>>()),
        );
        fields.insert(
            "learners".into(),
            json!(n.membership().learners.iter().collect::<Vec<_>>()),
        );
        fields.insert("keys".into(), json!(n.kv().len()));
        let from = log.last_index().saturating_sub(LOG_TAIL as u64) + 1;
        let tail: Vec<Value> = log
            .iter()
            .skip_while(|(i, _)| *i < from)
            .map(|(i, e)| {
                json!({
                    "index": i,
                    "term": e.term,
                    "command": describe(&e.data),
                    "committed": i <= n.commit_index(),
                })
            })
            .collect();
        fields.insert("log".into(), Value::Array(tail));
        if n.is_leader() {
            let progress: Vec<Value> = n
                .progress()
                .iter()
                .map(|(p, pr)| {
                    json!({
                        "node": p,
                        "nextIndex": pr.next,
                        "matchIndex": pr.matched,
                        "probing": pr.probing,
                    })
                })
                .collect();
            fields.insert("progress".into(), Value::Array(progress));
            if let Some(t) = n.lease_until() {
                fields.insert(
                    "leaseLeftMs".into(),
                    json!(t.saturating_since(local_now).as_millis_f64()),
                );
            }
        }
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        glance::glance(self.h.sim(), id, id)
    }

    fn message_detail(&self, m: &InFlight, payload: Option<&Message>) -> Option<MessageDetail> {
        Some(glance::message_detail(m, payload, m.id))
    }

    fn panels(&self) -> Vec<Panel> {
        let grid = glance::log_grid("replicated logs (by term)", self.h.sim(), |id| {
            self.role(id)
        });
        vec![grid, self.kv_panel(), self.clients_panel()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        invariant_statuses(&self.h)
    }

    fn act(&mut self, action: &RaftLabAction) -> Result<()> {
        match action {
            RaftLabAction::ClientRequest {
                request,
                node,
                timeout_ms,
            } => {
                let timeout = Duration::try_from_millis_f64("timeoutMs", *timeout_ms)?;
                let node = node.unwrap_or_else(|| self.leader_or_first());
                // Each one-off request is its own session: it is never retried.
                let cmd = KvCommand {
                    session: self.next_session,
                    seq: 1,
                    op: request.clone(),
                };
                let client = self.h.workload().clients;
                self.h.sim_mut().client_request(
                    client,
                    node,
                    RaftRequest::Kv(Box::new(cmd)),
                    timeout,
                )?;
                self.next_session += 1;
            }
            RaftLabAction::AddNode {} => {
                if self.h.sim().node_count() >= MAX_LAB_NODES {
                    return Err(DistlabError::field(
                        "nodes",
                        format!("the lab holds at most {MAX_LAB_NODES} processes"),
                    ));
                }
                let leader = self.leader_or_first();
                let node = self.h.sim_mut().add_node()?;
                self.admin(leader, RaftRequest::AddNode { node })?;
            }
            RaftLabAction::RemoveNode { node } => {
                check_node(self.h.sim(), "node", *node)?;
                let leader = self.leader_or_first();
                self.admin(leader, RaftRequest::RemoveNode { node: *node })?;
            }
            RaftLabAction::TransferLeadership { to } => {
                check_node(self.h.sim(), "to", *to)?;
                let leader = self.leader_or_first();
                self.admin(leader, RaftRequest::TransferLeadership { to: *to })?;
            }
            RaftLabAction::Snapshot { node } => {
                check_node(self.h.sim(), "node", *node)?;
                self.admin(*node, RaftRequest::Snapshot)?;
            }
        }
        Ok(())
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::raft::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<RaftLabAction>> {
        // The simulator's faults, and a clock running 30 % slow on node 0: the drift
        // under which a lease read can return stale data.
        let mut v: Vec<ClusterAction<RaftLabAction>> = Fault::examples()
            .into_iter()
            .chain([Fault::ClockDrift {
                node: 0,
                ppm: -300_000,
            }])
            .map(ClusterAction::Fault)
            .collect();
        v.extend(
            [
                RaftLabAction::ClientRequest {
                    request: KvOp::Put {
                        key: "x".into(),
                        value: "1".into(),
                    },
                    node: None,
                    timeout_ms: 1_000.0,
                },
                RaftLabAction::ClientRequest {
                    request: KvOp::Get { key: "x".into() },
                    node: Some(1),
                    timeout_ms: 1_000.0,
                },
                RaftLabAction::AddNode {},
                RaftLabAction::RemoveNode { node: 4 },
                RaftLabAction::TransferLeadership { to: 2 },
                RaftLabAction::Snapshot { node: 0 },
            ]
            .into_iter()
            .map(ClusterAction::Lab),
        );
        v
    }
}

fn check_node(sim: &Sim<RaftNode>, field: &str, node: NodeId) -> Result<()> {
    if node < sim.node_count() {
        Ok(())
    } else {
        Err(DistlabError::field(
            field,
            format!(
                "node {node} does not exist (the cluster has {} nodes)",
                sim.node_count()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    type RaftRun = Runner<Cluster<RaftLab>>;

    #[test]
    fn a_long_run_hands_out_its_newest_events() {
        // Past the events the simulator keeps, the trace still ends at the present (it
        // once kept the first ones, and the page's diagram stopped there).
        let mut lab = RaftRun::new(RaftLabConfig::default()).unwrap();
        while lab.model().lab().harness().sim().trace().first_kept() == 0 {
            lab.step(Duration::from_secs(5)).unwrap();
        }
        let now = lab.now().0;
        let trace = lab.trace();
        let last = trace["trace"].as_array().unwrap().last().unwrap()["time"].clone();
        assert!(
            now - last.as_u64().unwrap() < 50_000,
            "newest event at {last} µs, now {now} µs"
        );
        assert_eq!(trace["complete"], false);
    }

    #[test]
    fn the_default_lab_elects_serves_and_keeps_every_invariant() {
        let mut lab = RaftRun::new(RaftLabConfig::default()).unwrap();
        lab.step(Duration::from_secs(3)).unwrap();
        let v = lab.view();
        assert_eq!(v.nodes.len(), 5);
        assert_eq!(v.nodes.iter().filter(|n| n.role == "leader").count(), 1);
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        assert_eq!(v.invariants.len(), 5);
        assert!(
            v.metrics
                .iter()
                .any(|s| s.name == "commits" && !s.y.is_empty())
        );
        let h = lab.model().lab().harness();
        assert!(h.completed() > 10);
        lab.act(&json!({"type": "addNode"})).unwrap();
        lab.act(
            &json!({"type": "clientRequest", "request": {"op": "put", "key": "k", "value": "v"}}),
        )
        .unwrap();
        lab.step(Duration::from_secs(2)).unwrap();
        let v = lab.view();
        assert_eq!(v.nodes.len(), 6);
        assert!(
            v.nodes
                .iter()
                .filter(|n| n.role == "leader")
                .all(|n| n.fields["voters"].as_array().map_or(0, Vec::len) == 6)
        );
        let e = lab
            .act(&json!({"type": "transferLeadership", "to": 99}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("to`"), "{e}");
    }

    #[test]
    fn bad_configs_name_their_field() {
        let bad = |c: RaftLabConfig| RaftRun::new(c).unwrap_err().to_string();
        let e = crate::lab::json::from_value::<RaftLabConfig>("config", &json!({"nodes": 2}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.nodes`"), "{e}");
        let e = bad(RaftLabConfig {
            raft: RaftConfig {
                heartbeat_ms: 1e9,
                ..RaftConfig::default()
            },
            ..RaftLabConfig::default()
        });
        assert!(e.contains("raft.heartbeatMs`"), "{e}");
        let e = crate::lab::json::from_value::<RaftLabConfig>(
            "config",
            &json!({"workload": {"readFraction": 2}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("config.workload.readFraction`"), "{e}");
        let e = bad(RaftLabConfig {
            workload: RaftLabWorkload {
                read_fraction: Probability::of(0.7),
                cas_fraction: Probability::of(0.4),
                ..RaftLabWorkload::default()
            },
            ..RaftLabConfig::default()
        });
        assert!(e.contains("workload.casFraction`"), "{e}");
        // Election timeouts too close to the network's latency (paper §5.6).
        let e = bad(RaftLabConfig {
            network: NetworkConfig {
                latency: crate::sim::LatencyModel::Constant { ms: 60.0 },
                ..NetworkConfig::default()
            },
            ..RaftLabConfig::default()
        });
        assert!(e.contains("raft.electionTimeoutMinMs`"), "{e}");
    }
}
