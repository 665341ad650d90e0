//! Lab `consistency.replication`: a primary and its replicas (Kleppmann, DDIA ch. 5),
//! read and written by closed-loop clients, in one of four ack modes, failing over on a
//! timeout with fencing by epochs (Raft / VR) or without. Every fault is an action, and a
//! get or put of your own can be sent to any node. Each node's role, epoch, log length,
//! commit point and lag behind the primary are listed; the invariants (one primary per
//! epoch, no acknowledged write lost) are checked after every event, and the
//! linearizability checker judges the clients' history as it grows. Partition the primary
//! away with fencing off and async acks to watch both primaries answer and a write vanish.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::consistency::quorum::soak::describe_violation;
use crate::consistency::replication::harness::{Breach, Harness, Workload};
use crate::consistency::replication::node::{AckMode, ReplRequest, ReplicaNode, ReplicationParams};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
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

cluster_lab_config! {
    /// Configuration of the replication lab.
    pub struct ReplicationLabConfig {
        pub nodes: Count<1, { MAX_LAB_NODES }> = Count::of(3),
        /// When the primary answers: async, semiSync, majority or sync.
        pub ack: AckMode = AckMode::Majority,
        /// Promotion needs a majority's votes and replicas refuse a lower epoch.
        pub fencing: bool = true,
        /// Closed-loop clients (one more, the last, is yours: the get and put actions).
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(2),
        /// Share of the clients' operations that are gets.
        pub get_share: Probability = Probability::of(0.4),
        /// A client gives up on an operation after this long.
        pub timeout_ms: Millis<1, 60_000> = Millis::of(300),
        /// The primary's heartbeat.
        pub heartbeat_ms: Millis<1, 60_000> = Millis::of(30),
        /// A replica that hears nothing for between this and twice this fails over.
        pub failover_ms: Millis<1, 60_000> = Millis::of(150),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ReplicationLabAction {
    /// Your client reads `key` at `node`.
    Get { node: NodeId, key: String },
    /// Your client writes `value` to `key` at `node`.
    Put {
        node: NodeId,
        key: String,
        value: String,
    },
    /// The clients start no new operation (the ones under way finish).
    StopClients {},
}

/// The checker's latest verdict.
#[derive(Debug, Clone, PartialEq)]
struct Judged {
    verdict: Verdict,
    operations: usize,
    detail: String,
}

/// The replication lab.
#[derive(Debug, Clone)]
pub struct ReplicationLab {
    h: Harness,
    /// The client the actions use.
    hand: u32,
    timeout: Duration,
    judged: Judged,
    /// Ended operations when the checker last ran.
    checked_at: u64,
}

impl ReplicationLab {
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

    /// The newest primary up: the highest epoch among the nodes that are primary.
    fn primary(&self) -> Option<&ReplicaNode> {
        let sim = self.h.sim();
        (0..sim.node_count())
            .filter_map(|id| sim.node(id))
            .filter(|n| n.is_primary())
            .max_by_key(|n| (n.epoch(), std::cmp::Reverse(n.id())))
    }

    /// Entries node `id` is behind the newest primary (`None` if either is down).
    fn lag(&self, id: NodeId) -> Option<u64> {
        let p = self.primary()?;
        let n = self.h.sim().node(id)?;
        Some((p.log().len() as u64).saturating_sub(n.log().len().min(p.log().len()) as u64))
    }

    fn nodes_table(&self) -> Panel {
        let sim = self.h.sim();
        let now = sim.now();
        let primary = self.primary().map(ReplicaNode::id);
        let rows = (0..sim.node_count())
            .map(|id| match sim.node(id) {
                None => vec![
                    json!(format!("n{id}")),
                    json!("down"),
                    json!(null),
                    json!(null),
                    json!(null),
                    json!(null),
                    json!(null),
                    json!(null),
                    json!(null),
                ],
                Some(n) => {
                    let acked = primary
                        .and_then(|p| sim.node(p))
                        .and_then(|p| p.progress().get(&id).copied())
                        .and_then(|pr| pr.acked_at)
                        .map(|t| now.saturating_since(t).as_millis_f64());
                    vec![
                        json!(format!("n{id}")),
                        json!(n.role_kind()),
                        json!(n.epoch()),
                        json!(n.log().len()),
                        json!(n.commit()),
                        json!(self.lag(id)),
                        json!(acked),
                        json!(n.stats().fenced),
                        json!(n.stats().truncated),
                    ]
                }
            })
            .collect();
        Panel::Table {
            title: "nodes (lag: entries behind the newest primary)".into(),
            columns: [
                "node",
                "role",
                "epoch",
                "log length",
                "commit",
                "lag entries",
                "last ack ms ago",
                "fenced appends",
                "entries cut",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn operations_table(&self) -> Panel {
        let rows = self
            .h
            .sim()
            .history()
            .iter()
            .rev()
            .take(OPERATION_ROWS)
            .map(|op| {
                let what = match &op.body {
                    ReplRequest::Get { key } => format!("get {key}"),
                    ReplRequest::Put { key, value } => format!("put {key} = {value}"),
                };
                let (answer, at, took) = match &op.outcome {
                    Outcome::Ok { value, at } => (
                        value
                            .value
                            .clone()
                            .map_or("ok".into(), |v| format!("'{v}'")),
                        format!("epoch {} index {}", value.epoch, value.index),
                        json!(at.saturating_since(op.invoked).as_millis_f64()),
                    ),
                    Outcome::Pending => ("…".into(), String::new(), json!(null)),
                    Outcome::Timeout { .. } => ("timed out".into(), String::new(), json!(null)),
                    Outcome::Fail { reason, .. } => (reason.clone(), String::new(), json!(null)),
                };
                vec![
                    json!(format!("c{}", op.client)),
                    json!(what),
                    json!(format!("n{}", op.node)),
                    json!(answer),
                    json!(at),
                    json!(op.invoked.as_millis_f64()),
                    took,
                ]
            })
            .collect();
        Panel::Table {
            title: "operations, newest first".into(),
            columns: [
                "client",
                "operation",
                "node",
                "answer",
                "log position",
                "invoked ms",
                "took ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn verdict_text(&self) -> Panel {
        let p = self.h.sim().node_config();
        Panel::Text {
            title: "linearizability checker".into(),
            body: format!(
                "{:?} acks, fencing {}. On the {} operations checked: {:?}. {}",
                p.ack,
                if p.fencing { "on" } else { "off" },
                self.judged.operations,
                self.judged.verdict,
                self.judged.detail
            ),
        }
    }
}

fn invariant(name: &str, breach: Option<&Breach>, fine: &str) -> InvariantStatus {
    match breach {
        Some(b) => InvariantStatus::violated(
            name,
            format!("{} (at {:.1} ms)", b.what, b.at.as_millis_f64()),
            b.nodes.clone(),
        ),
        None => InvariantStatus::holds(name, fine.to_string()),
    }
}

/// Running totals: operations answered and timed out.
impl Sampled for ReplicationLab {
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("operations answered", "per interval"),
            ("operations timed out", "per interval"),
            ("most lag behind the primary", "entries"),
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
        let lag = (0..self.h.sim().node_count())
            .filter_map(|id| self.lag(id))
            .max()
            .unwrap_or(0);
        vec![
            answered.saturating_sub(since.0) as f64,
            timed_out.saturating_sub(since.1) as f64,
            lag as f64,
        ]
    }
}

impl ClusterLab for ReplicationLab {
    const ID: &'static str = "consistency.replication";
    type Node = ReplicaNode;
    type Config = ReplicationLabConfig;
    type Action = ReplicationLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &ReplicationLabConfig) -> Result<Self> {
        let params = ReplicationParams {
            ack: c.ack,
            fencing: c.fencing,
            heartbeat: c.heartbeat_ms.duration(),
            failover_timeout: c.failover_ms.duration(),
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
        let mut lab = ReplicationLab {
            h,
            hand,
            timeout: c.timeout_ms.duration(),
            judged: Judged {
                verdict: Verdict::Linearizable,
                operations: 0,
                detail: "no operations yet".into(),
            },
            checked_at: 0,
        };
        lab.judge();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<ReplicaNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<ReplicaNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        self.h.observe();
        // Once broken, a history stays broken: the first violation is kept.
        if self.judged.verdict != Verdict::NotLinearizable
            && self.h.sim().ended_ops() >= self.checked_at + CHECK_EVERY_OPS
        {
            self.judge();
        }
    }

    fn act(&mut self, action: &ReplicationLabAction) -> Result<()> {
        let (node, body) = match action {
            ReplicationLabAction::StopClients {} => {
                self.h.stop_clients();
                return Ok(());
            }
            ReplicationLabAction::Get { node, key } => {
                (*node, ReplRequest::Get { key: key.clone() })
            }
            ReplicationLabAction::Put { node, key, value } => (
                *node,
                ReplRequest::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
            ),
        };
        let (ReplRequest::Get { key } | ReplRequest::Put { key, .. }) = &body;
        if key.is_empty() {
            return Err(DistlabError::field("key", "must not be empty"));
        }
        self.h
            .sim_mut()
            .client_request(self.hand, node, body, self.timeout)?;
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(n) = self.h.sim().node(id) else {
            return;
        };
        fields.insert("epoch".into(), json!(n.epoch()));
        fields.insert("logLength".into(), json!(n.log().len()));
        fields.insert("commit".into(), json!(n.commit()));
        fields.insert("lag".into(), json!(self.lag(id)));
        fields.insert(
            "follows".into(),
            json!(n.primary().map(|p| format!("n{p}"))),
        );
        fields.insert("data".into(), json!(n.data()));
        fields.insert("progress".into(), json!(n.progress()));
        fields.insert("stats".into(), json!(n.stats()));
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let n = self.h.sim().node(id)?;
        Some(NodeGlance {
            node: id,
            badge: Some(format!("e{} · {}", n.epoch(), n.log().len())),
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![
            self.verdict_text(),
            self.nodes_table(),
            self.operations_table(),
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let w = self.h.watch();
        let linearizable =
            "linearizable: the clients' history has a sequential order the checker accepts";
        vec![
            invariant(
                "one primary per epoch",
                w.two_primaries.as_ref(),
                "no epoch has had two primaries",
            ),
            invariant(
                "no acknowledged write lost: every primary holds every write acknowledged \
                 in a lower epoch",
                w.lost_write.as_ref(),
                &format!("{} acknowledged writes, none lost", w.acked().len()),
            ),
            match self.judged.verdict {
                Verdict::NotLinearizable => {
                    InvariantStatus::violated(linearizable, self.judged.detail.clone(), Vec::new())
                }
                _ => InvariantStatus::holds(linearizable, self.judged.detail.clone()),
            },
        ]
    }

    fn example_actions() -> Vec<ClusterAction<ReplicationLabAction>> {
        let mut v = vec![
            ClusterAction::Lab(ReplicationLabAction::Get {
                node: 0,
                key: "k0".into(),
            }),
            ClusterAction::Lab(ReplicationLabAction::Put {
                node: 1,
                key: "k0".into(),
                value: "mine".into(),
            }),
            ClusterAction::Lab(ReplicationLabAction::StopClients {}),
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
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 0}), "config.nodes"),
            (json!({"ack": "sometimes"}), "config.ack"),
            (json!({"failoverMs": 0}), "config.failoverMs"),
        ] {
            let e = Runner::<Cluster<ReplicationLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
        let mut l = Runner::<Cluster<ReplicationLab>>::from_json(&json!({})).unwrap();
        let e = l
            .act(&json!({"type": "get", "node": 9, "key": "k0"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node"), "{e}");
        let e = l
            .act(&json!({"type": "put", "node": 0, "key": "", "value": "x"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key"), "{e}");
    }
}
