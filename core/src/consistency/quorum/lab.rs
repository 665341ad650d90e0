//! Lab `consistency.quorum`: a register per key on N of the cluster's nodes, read and
//! written by closed-loop clients through any node as coordinator, in plain Dynamo mode
//! (DeCandia et al. 2007) or ABD (Attiya, Bar-Noy & Dolev 1995). N, R, W and the mode are
//! in the config, every fault is an action, and a get or put of your own can be sent to
//! any node. Each operation is listed with the replicas it queried, stored to and
//! repaired; each replica's copy of every key, stale ones marked; and the
//! linearizability checker's verdict on the clients' history so far, with the operations
//! it could not place when plain quorums break it (faults and concurrent writes find one
//! within seconds; ABD never breaks).
//!
//! Two Dynamo mechanisms can be switched on (both off by default). Sloppy quorums with
//! hinted handoff (section 4.6): operations list the stand-ins that acked (`n3→n1`: n3
//! for n1), a table lists the hinted copies waiting for their replica, and under a
//! partition writes keep succeeding where strict quorums time out — while the checker
//! catches reads that miss writes held only by stand-ins. Merkle-tree anti-entropy
//! (section 4.7): a table of recent rounds with the hashes exchanged and the key-hash
//! ranges found differing, and the trees of one pair of replicas (the `inspect` action
//! picks it) side by side, level by level, the nodes that differ lit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::consistency::quorum::harness::{Harness, Workload};
use crate::consistency::quorum::merkle::{self, MerkleTree};
use crate::consistency::quorum::node::{
    AntiEntropy, Mode, QuorumNode, QuorumParams, QuorumRequest, preference_list, range_peers,
};
use crate::consistency::quorum::soak::describe_violation;
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{Cell, InvariantStatus, NodeGlance, Panel};
use crate::sim::history::Outcome;
use crate::sim::linearizability::Verdict;
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// Most nodes the lab runs.
pub const MAX_LAB_NODES: u32 = 9;
/// Operations listed, newest first.
const OPERATION_ROWS: usize = 16;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;
/// The checker runs again once this many more operations have ended.
const CHECK_EVERY_OPS: u64 = 10;
/// The checker's step budget per run.
const CHECK_STEPS: u64 = 500_000;
/// Deepest Merkle tree the lab builds: the page draws 2^8 ranges per tree.
pub const MAX_SHOWN_DEPTH: u32 = 8;
/// Anti-entropy rounds listed.
const ROUND_ROWS: usize = 16;

cluster_lab_config! {
    /// Configuration of the quorum lab.
    pub struct QuorumLabConfig {
        pub nodes: Count<1, { MAX_LAB_NODES }> = Count::of(5),
        /// Plain Dynamo quorums, or ABD.
        pub mode: Mode = Mode::Plain,
        /// Replicas per key.
        pub n: Count<1, { MAX_LAB_NODES }> = Count::of(3),
        /// Query answers a read (and ABD's write) waits for.
        pub r: Count<1, { MAX_LAB_NODES }> = Count::of(2),
        /// Store acks a write (and ABD's read write-back) waits for.
        pub w: Count<1, { MAX_LAB_NODES }> = Count::of(2),
        /// Replicas fsync a store before acking it; off, a restart forgets acked writes.
        pub durable: bool = true,
        /// Closed-loop clients (one more, the last, is yours: the get and put actions).
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(2),
        /// Share of the clients' operations that are gets.
        pub get_share: Probability = Probability::of(0.5),
        /// A client gives up on an operation after this long.
        pub timeout_ms: Millis<1, 60_000> = Millis::of(500),
        /// A coordinator resends a phase to the replicas that have not answered.
        pub resend_ms: Millis<1, 60_000> = Millis::of(100),
        /// Sloppy quorum with hinted handoff: unanswered home replicas are stood in for
        /// by the next nodes of the ring.
        pub sloppy: bool = false,
        /// How often a stand-in offers its hinted copies to their replica.
        pub handoff_ms: Millis<1, 60_000> = Millis::of(200),
        /// Merkle-tree anti-entropy between replicas.
        pub anti_entropy: bool = false,
        /// Time between a node's anti-entropy rounds.
        pub anti_entropy_ms: Millis<1, 60_000> = Millis::of(200),
        /// Levels of the Merkle trees below the root (2^depth key-hash ranges).
        pub tree_depth: Count<0, { MAX_SHOWN_DEPTH }> = Count::of(3),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum QuorumLabAction {
    /// Your client reads `key` through coordinator `node`.
    Get { node: NodeId, key: String },
    /// Your client writes `value` to `key` through coordinator `node`.
    Put {
        node: NodeId,
        key: String,
        value: String,
    },
    /// The clients start no new operation (the ones under way finish).
    StopClients {},
    /// Shows the Merkle trees of replicas `a` and `b` side by side.
    Inspect { a: NodeId, b: NodeId },
}

/// The checker's latest verdict.
#[derive(Debug, Clone, PartialEq)]
struct Judged {
    verdict: Verdict,
    operations: usize,
    detail: String,
}

/// The quorum lab.
#[derive(Debug, Clone)]
pub struct QuorumLab {
    h: Harness,
    /// The client the actions use.
    hand: u32,
    timeout: Duration,
    judged: Judged,
    /// Ended operations when the checker last ran.
    checked_at: u64,
    /// The pair of replicas whose trees are shown.
    inspected: (NodeId, NodeId),
}

impl QuorumLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    /// The checker's verdict on the history at its last run.
    pub fn verdict(&self) -> Verdict {
        self.judged.verdict
    }

    fn judge(&mut self) {
        let history = self.h.history();
        self.checked_at = self.h.sim().ended_ops();
        self.judged = match self.h.check(Some(CHECK_STEPS)) {
            Ok(r) => Judged {
                verdict: r.verdict,
                operations: history.len(),
                detail: match r.verdict {
                    Verdict::Linearizable => format!("{} operations linearizable", history.len()),
                    Verdict::Undecided => "the checker ran out of steps".into(),
                    Verdict::NotLinearizable => describe_violation(&r, &history),
                },
            },
            Err(e) => Judged {
                verdict: Verdict::Undecided,
                operations: history.len(),
                detail: e.to_string(),
            },
        };
    }

    /// Copies older than the newest at some home replica of the key, per key.
    fn stale(&self) -> usize {
        let sim = self.h.sim();
        let newest = self.newest();
        newest
            .iter()
            .map(|(key, tag)| {
                self.homes(key)
                    .into_iter()
                    .filter(|id| {
                        sim.node(*id)
                            .is_none_or(|n| n.store().get(key).is_none_or(|(t, _)| t < tag))
                    })
                    .count()
            })
            .sum()
    }

    fn homes(&self, key: &str) -> Vec<NodeId> {
        let sim = self.h.sim();
        preference_list(key, sim.node_config().n, sim.node_count())
    }

    /// The newest tag any up replica holds, per key.
    fn newest(&self) -> BTreeMap<String, crate::consistency::quorum::Tag> {
        let sim = self.h.sim();
        let mut newest = BTreeMap::new();
        for id in 0..sim.node_count() {
            if let Some(n) = sim.node(id) {
                for (k, (t, _)) in n.store() {
                    let e = newest.entry(k.clone()).or_insert(*t);
                    if *t > *e {
                        *e = *t;
                    }
                }
            }
        }
        newest
    }

    fn operations_table(&self) -> Panel {
        let ids = |v: &[NodeId]| {
            v.iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Stand-ins are shown with the replica they stood in for.
        let stored = |v: &crate::consistency::quorum::QuorumResponse| {
            v.stored
                .iter()
                .map(|n| match v.hinted.iter().find(|(s, _)| s == n) {
                    Some((_, intended)) => format!("n{n}→n{intended}"),
                    None => format!("n{n}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rows = self
            .h
            .sim()
            .history()
            .iter()
            .rev()
            .take(OPERATION_ROWS)
            .map(|op| {
                let what = match &op.body {
                    QuorumRequest::Get { key } => format!("get {key}"),
                    QuorumRequest::Put { key, value } => format!("put {key} = {value}"),
                };
                let (answer, queried, stored, repaired, tag, took) = match &op.outcome {
                    Outcome::Ok { value, at } => (
                        value
                            .value
                            .clone()
                            .map_or("ok".into(), |v| format!("'{v}'")),
                        ids(&value.queried),
                        stored(value),
                        ids(&value.repaired),
                        value.tag.map_or("—".into(), |t| t.to_string()),
                        json!(at.saturating_since(op.invoked).as_millis_f64()),
                    ),
                    Outcome::Pending => (
                        "…".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        json!(null),
                    ),
                    Outcome::Timeout { .. } => (
                        "timed out".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        json!(null),
                    ),
                    Outcome::Fail { reason, .. } => (
                        reason.clone(),
                        "".into(),
                        "".into(),
                        "".into(),
                        "".into(),
                        json!(null),
                    ),
                };
                vec![
                    json!(format!("c{}", op.client)),
                    json!(what),
                    json!(format!("n{}", op.node)),
                    json!(answer),
                    json!(tag),
                    json!(queried),
                    json!(stored),
                    json!(repaired),
                    json!(op.invoked.as_millis_f64()),
                    took,
                ]
            })
            .collect();
        Panel::Table {
            title: "operations, newest first (replicas that answered each phase)".into(),
            columns: [
                "client",
                "operation",
                "coordinator",
                "answer",
                "tag",
                "queried",
                "stored",
                "repaired",
                "invoked ms",
                "took ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn replicas_table(&self) -> Panel {
        let sim = self.h.sim();
        let newest = self.newest();
        let keys: Vec<String> = (0..self.h.workload().keys.max(1))
            .map(|k| format!("k{k}"))
            .chain(newest.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut columns = vec!["key".to_string(), "home replicas".to_string()];
        columns.extend((0..sim.node_count()).map(|id| format!("n{id}")));
        let rows = keys
            .iter()
            .map(|key| {
                let homes = self.homes(key);
                let mut row = vec![
                    json!(key),
                    json!(
                        homes
                            .iter()
                            .map(|h| format!("n{h}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ];
                row.extend((0..sim.node_count()).map(|id| {
                    let cell = match sim.node(id) {
                        None => "down".to_string(),
                        Some(n) => match n.store().get(key) {
                            None if homes.contains(&id) => "(empty)".into(),
                            None => String::new(),
                            Some((t, v)) => {
                                let stale = newest.get(key).is_some_and(|m| t < m);
                                format!("'{v}' @ {t}{}", if stale { " (stale)" } else { "" })
                            }
                        },
                    };
                    json!(cell)
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "each replica's copy (stale: older than the newest anywhere)".into(),
            columns,
            rows,
        }
    }

    /// Recent anti-entropy rounds as each of their two replicas saw them, newest first.
    fn rounds_table(&self) -> Panel {
        let sim = self.h.sim();
        let depth = sim.node_config().anti_entropy.map_or(0, |a| a.depth);
        let mut rounds: Vec<(NodeId, &crate::consistency::quorum::node::SyncRound)> = (0..sim
            .node_count())
            .filter_map(|id| Some((id, sim.node(id)?)))
            .flat_map(|(id, n)| n.rounds().iter().map(move |r| (id, r)))
            .collect();
        rounds.sort_by_key(|(id, r)| (std::cmp::Reverse(r.session.number), r.session, *id));
        let rows = rounds
            .into_iter()
            .take(ROUND_ROWS)
            .map(|(id, r)| {
                let ranges = r
                    .ranges
                    .iter()
                    .map(|&leaf| {
                        let (lo, hi) = merkle::leaf_range(leaf, depth);
                        format!("#{leaf} [{:04x}…–{:04x}…]", lo >> 48, hi >> 48)
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![
                    json!(format!("n{}#{}", r.session.initiator, r.session.number)),
                    json!(format!("n{id}")),
                    json!(format!("n{}", r.peer)),
                    json!(r.hashes_sent),
                    json!(r.hashes_received),
                    json!(r.level),
                    json!(if ranges.is_empty() {
                        "in sync".to_string()
                    } else {
                        ranges
                    }),
                    json!(r.keys_sent),
                    json!(r.keys_received),
                    json!(r.keys_applied),
                ]
            })
            .collect();
        Panel::Table {
            title: format!(
                "anti-entropy rounds, newest first (Merkle trees of depth {depth}: {} key-hash                  ranges)",
                1u64 << depth
            ),
            columns: [
                "round",
                "replica",
                "peer",
                "hashes sent",
                "hashes received",
                "deepest level",
                "differing ranges",
                "keys sent",
                "keys received",
                "keys applied",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    /// The trees of the inspected pair over the keys they share, if both are up.
    pub fn inspected_trees(&self) -> Option<(MerkleTree, MerkleTree)> {
        let sim = self.h.sim();
        let ae = sim.node_config().anti_entropy?;
        let (a, b) = self.inspected;
        if a == b {
            return None;
        }
        let nodes = sim.node_count();
        let ta = sim.node(a)?.tree_with(b, ae.depth, nodes).ok()?;
        let tb = sim.node(b)?.tree_with(a, ae.depth, nodes).ok()?;
        Some((ta, tb))
    }

    /// The two trees of the inspected pair as grids, level by level from the root, each
    /// node spread over the leaves below it (an icicle): 0 an empty range, 1 a node
    /// equal to the other tree's, 2 one that differs.
    fn tree_panels(&self) -> Vec<Panel> {
        let (a, b) = self.inspected;
        let shares =
            range_peers(a, self.h.sim().node_config().n, self.h.sim().node_count()).contains(&b);
        let Some((ta, tb)) = self.inspected_trees() else {
            return vec![Panel::Text {
                title: "Merkle trees".into(),
                body: format!(
                    "Replicas n{a} and n{b} cannot be compared now (the same node, or one is                      down): pick two up replicas with the inspect action."
                ),
            }];
        };
        let depth = ta.depth();
        let width = 1u32 << depth;
        let grid = |mine: &MerkleTree, theirs: &MerkleTree, me: NodeId, peer: NodeId| {
            let mut cells = Vec::with_capacity((width * (depth + 1)) as usize);
            for level in 0..=depth {
                let span = 1u32 << (depth - level);
                for column in 0..width {
                    let index = column / span;
                    let h = mine.hash(level, index).unwrap_or(merkle::EMPTY);
                    let differs = theirs.hash(level, index) != Some(h);
                    let (lo, hi) = merkle::leaf_range(index, level);
                    cells.push(Cell {
                        value: if differs {
                            2.0
                        } else if h == merkle::EMPTY {
                            0.0
                        } else {
                            1.0
                        },
                        label: format!(
                            "level {level} node {index}, key hashes {:04x}…–{:04x}…: {}{}",
                            lo >> 48,
                            hi >> 48,
                            if h == merkle::EMPTY {
                                "empty".to_string()
                            } else {
                                format!("{h:016x}")
                            },
                            if differs { " (differs)" } else { "" }
                        ),
                    });
                }
            }
            Panel::Grid {
                title: format!(
                    "n{me}'s Merkle tree over the keys it shares with n{peer}{} (root first;                      2 = differs from n{peer}'s, 1 = equal, 0 = empty)",
                    if shares {
                        ""
                    } else {
                        " (none: not replicas of a common range)"
                    }
                ),
                columns: width,
                cells,
            }
        };
        vec![grid(&ta, &tb, a, b), grid(&tb, &ta, b, a)]
    }

    /// Hinted copies stand-ins hold, waiting for their intended replica.
    fn hints_table(&self) -> Panel {
        let sim = self.h.sim();
        let mut rows = Vec::new();
        for id in 0..sim.node_count() {
            let Some(n) = sim.node(id) else {
                continue;
            };
            for (intended, held) in n.hints() {
                for (key, (tag, value)) in held {
                    rows.push(vec![
                        json!(format!("n{id}")),
                        json!(format!("n{intended}")),
                        json!(key),
                        json!(format!("'{value}' @ {tag}")),
                    ]);
                }
            }
        }
        Panel::Table {
            title: "hinted copies held by stand-ins, until their replica acks a handoff".into(),
            columns: ["stand-in", "for", "key", "copy"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn verdict_text(&self) -> Panel {
        let p = self.h.sim().node_config();
        let mode = match p.mode {
            Mode::Plain => "plain quorums",
            Mode::Abd => "ABD",
        };
        let overlap = if p.r + p.w > p.n {
            "R + W > N: every read quorum meets every write quorum"
        } else {
            "R + W <= N: a read quorum can miss the latest write entirely"
        };
        let sloppy = if p.sloppy {
            " Sloppy quorum: a write acked by stand-ins need not meet a later quorum of home \
             replicas."
        } else {
            ""
        };
        Panel::Text {
            title: "linearizability checker".into(),
            body: format!(
                "{mode}, N = {}, R = {}, W = {} ({overlap}).{sloppy} On the {} operations \
                 checked: {:?}. {}",
                p.n, p.r, p.w, self.judged.operations, self.judged.verdict, self.judged.detail
            ),
        }
    }
}

/// Running totals: operations answered and timed out.
impl Sampled for QuorumLab {
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("operations answered", "per interval"),
            ("operations timed out", "per interval"),
            ("stale replica copies", "copies"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (u64, u64) {
        let mut answered = 0;
        let mut timed_out = 0;
        for op in self.h.sim().history() {
            match op.outcome {
                Outcome::Ok { .. } => answered += 1,
                Outcome::Timeout { .. } => timed_out += 1,
                _ => {}
            }
        }
        (answered, timed_out)
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(u64, u64)) -> Vec<f64> {
        let (answered, timed_out) = self.totals();
        vec![
            answered.saturating_sub(since.0) as f64,
            timed_out.saturating_sub(since.1) as f64,
            self.stale() as f64,
        ]
    }
}

impl ClusterLab for QuorumLab {
    const ID: &'static str = "consistency.quorum";
    type Node = QuorumNode;
    type Config = QuorumLabConfig;
    type Action = QuorumLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &QuorumLabConfig) -> Result<Self> {
        let params = QuorumParams {
            mode: c.mode,
            n: c.n.get(),
            r: c.r.get(),
            w: c.w.get(),
            durable: c.durable,
            resend: c.resend_ms.duration(),
            sloppy: c.sloppy,
            handoff: c.handoff_ms.duration(),
            anti_entropy: c.anti_entropy.then(|| AntiEntropy {
                period: c.anti_entropy_ms.duration(),
                depth: c.tree_depth.get(),
            }),
            ..QuorumParams::default()
        };
        let workload = Workload {
            clients: c.clients.get(),
            keys: c.keys.get(),
            get_share: c.get_share.get(),
            timeout: c.timeout_ms.duration(),
            ..Workload::default()
        };
        let hand = c.clients.get();
        let mut h = Harness::new(
            SimConfig {
                clients: hand + 1,
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.nodes.get())
            },
            params,
            workload,
        )?;
        c.load_faults(h.sim_mut())?;
        let mut lab = QuorumLab {
            h,
            hand,
            timeout: c.timeout_ms.duration(),
            judged: Judged {
                verdict: Verdict::Linearizable,
                operations: 0,
                detail: "no operations yet".into(),
            },
            checked_at: 0,
            inspected: (0, 1.min(c.nodes.get() - 1)),
        };
        lab.judge();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<QuorumNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<QuorumNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        // Once broken, a history stays broken: the first violation is kept.
        if self.judged.verdict != Verdict::NotLinearizable
            && self.h.sim().ended_ops() >= self.checked_at + CHECK_EVERY_OPS
        {
            self.judge();
        }
    }

    fn act(&mut self, action: &QuorumLabAction) -> Result<()> {
        let body = match action {
            QuorumLabAction::StopClients {} => {
                self.h.stop_clients();
                return Ok(());
            }
            QuorumLabAction::Inspect { a, b } => {
                let nodes = self.h.sim().node_count();
                for (field, id) in [("a", *a), ("b", *b)] {
                    if id >= nodes {
                        return Err(DistlabError::field(
                            field,
                            format!("no node {id} (nodes 0 to {})", nodes - 1),
                        ));
                    }
                }
                if a == b {
                    return Err(DistlabError::field("b", "pick two different replicas"));
                }
                self.inspected = (*a, *b);
                return Ok(());
            }
            QuorumLabAction::Get { key, .. } => QuorumRequest::Get { key: key.clone() },
            QuorumLabAction::Put { key, value, .. } => QuorumRequest::Put {
                key: key.clone(),
                value: value.clone(),
            },
        };
        let (QuorumLabAction::Get { node, .. } | QuorumLabAction::Put { node, .. }) = action else {
            return Ok(());
        };
        if body.key().is_empty() {
            return Err(DistlabError::field("key", "must not be empty"));
        }
        self.h
            .sim_mut()
            .client_request(self.hand, *node, body, self.timeout)?;
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(n) = self.h.sim().node(id) else {
            return;
        };
        let store: BTreeMap<&String, String> = n
            .store()
            .iter()
            .map(|(k, (t, v))| (k, format!("'{v}' @ {t}")))
            .collect();
        fields.insert("store".into(), json!(store));
        fields.insert("coordinating".into(), json!(n.running().len()));
        fields.insert("stats".into(), json!(n.stats()));
        if n.params().sloppy {
            let hints: BTreeMap<String, usize> = n
                .hints()
                .iter()
                .map(|(i, h)| (format!("n{i}"), h.len()))
                .collect();
            fields.insert("hintsFor".into(), json!(hints));
            fields.insert("suspects".into(), json!(n.suspects()));
        }
        if n.params().anti_entropy.is_some() {
            fields.insert("syncRounds".into(), json!(n.rounds()));
        }
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let n = self.h.sim().node(id)?;
        let running = n.running().len();
        Some(NodeGlance {
            node: id,
            badge: (running > 0).then(|| format!("{running} ops")),
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        let mut panels = vec![
            self.verdict_text(),
            self.operations_table(),
            self.replicas_table(),
        ];
        let p = self.h.sim().node_config();
        if p.sloppy {
            panels.push(self.hints_table());
        }
        if p.anti_entropy.is_some() {
            panels.push(self.rounds_table());
            panels.extend(self.tree_panels());
        }
        panels
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let name = "linearizable: the clients' history has a sequential order the checker accepts";
        vec![match self.judged.verdict {
            Verdict::NotLinearizable => {
                InvariantStatus::violated(name, self.judged.detail.clone(), Vec::new())
            }
            _ => InvariantStatus::holds(name, self.judged.detail.clone()),
        }]
    }

    fn example_actions() -> Vec<ClusterAction<QuorumLabAction>> {
        let mut v = vec![
            ClusterAction::Lab(QuorumLabAction::Get {
                node: 0,
                key: "k0".into(),
            }),
            ClusterAction::Lab(QuorumLabAction::Put {
                node: 1,
                key: "k0".into(),
                value: "mine".into(),
            }),
            ClusterAction::Lab(QuorumLabAction::StopClients {}),
            ClusterAction::Lab(QuorumLabAction::Inspect { a: 1, b: 2 }),
        ];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"n": 6, "nodes": 5}), "config.n"),
            (json!({"r": 4}), "config.r"),
            (json!({"mode": "abd", "r": 1, "w": 2}), "config.r"),
            (json!({"nodes": 0}), "config.nodes"),
        ] {
            let e = Runner::<Cluster<QuorumLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
        let mut l = Runner::<Cluster<QuorumLab>>::from_json(&json!({})).unwrap();
        let e = l
            .act(&json!({"type": "get", "node": 9, "key": "k0"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node"), "{e}");
    }
}
