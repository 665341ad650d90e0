//! Lab `consensus.vr`: Viewstamped Replication Revisited (Liskov & Cowling 2012) on the
//! simulator, closed-loop clients writing and reading a few keys through the primary.
//! Each replica shows its view, status, op-number, commit-number, last normal view, the
//! one number it keeps on disk, and the newest ops of its log; a table lines up the
//! newest op-numbers across replicas; state-machine safety, the commit-number and one
//! primary per view are checked after every event. Every fault is an action.
//!
//! Things to try: crash the primary (`view mod n`) and watch the backups' view change
//! move to the next view; restart it and watch it recover — status recovering until f + 1
//! replicas with normal status, including the new primary, have answered its nonce; crash
//! more than f replicas and the group waits, as in-memory VR must.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::consensus::vr::harness::{Harness, Workload};
use crate::consensus::vr::invariants::Invariant;
use crate::consensus::vr::messages::{Entry, Status};
use crate::consensus::vr::replica::{VrParams, VrReplica};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// Op-numbers listed in the table and per replica.
const OP_ROWS: usize = 12;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;

cluster_lab_config! {
    /// Configuration of the VR lab.
    pub struct VrLabConfig {
        /// Replicas: 2f + 1 tolerate f crashed or recovering at once.
        pub nodes: Count<3, 9> = Count::of(5),
        /// The primary's heartbeat (`Commit`) period, and every re-send period.
        pub heartbeat_ms: Millis<1, 60_000> = Millis::of(25),
        /// A backup that hears nothing from the primary for a time drawn from
        /// [timeoutMinMs, timeoutMaxMs] starts a view change.
        pub timeout_min_ms: Millis<1, 60_000> = Millis::of(150),
        pub timeout_max_ms: Millis<1, 60_000> = Millis::of(300),
        /// Closed-loop clients, each with its client id and request numbers.
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(3),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum VrLabAction {
    /// Clients start no new request (the ones under way finish): the group settles.
    StopClients {},
}

/// The VR lab.
#[derive(Debug, Clone)]
pub struct VrLab {
    h: Harness,
}

fn entry_text(e: &Entry) -> String {
    format!("c{}#{} {:?}", e.session, e.seq, e.op)
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Normal => "normal",
        Status::ViewChange => "view-change",
        Status::Recovering => "recovering",
    }
}

impl VrLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    fn replicas(&self) -> impl Iterator<Item = &VrReplica> {
        let sim = self.h.sim();
        (0..sim.node_count()).filter_map(move |id| sim.node(id))
    }

    fn view_changes(&self) -> u64 {
        self.replicas().map(VrReplica::view_changes).sum()
    }

    fn ops_table(&self) -> Panel {
        let sim = self.h.sim();
        let top = self.replicas().map(VrReplica::op_number).max().unwrap_or(0);
        let mut columns = vec!["op".to_string()];
        columns.extend((0..sim.node_count()).map(|id| format!("n{id}")));
        let rows = (1..=top)
            .rev()
            .take(OP_ROWS)
            .map(|op| {
                let mut row = vec![json!(op)];
                row.extend((0..sim.node_count()).map(|id| {
                    json!(match sim.node(id) {
                        None => "down".to_string(),
                        Some(r) => match r.log().get(op as usize - 1) {
                            None => "—".to_string(),
                            Some(e) if op <= r.commit_number() => {
                                format!("{} ✓", entry_text(e))
                            }
                            Some(e) => entry_text(e),
                        },
                    })
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "op-numbers, newest first (✓ committed at that replica)".into(),
            columns,
            rows,
        }
    }

    fn model_text(&self) -> Panel {
        let recoveries: u64 = self.replicas().map(VrReplica::recoveries).sum();
        Panel::Text {
            title: "in memory, recovery instead of disk".into(),
            body: format!(
                "{} view changes started, {recoveries} recoveries. VR keeps its log in memory: \
                 a restarted replica has lost it and recovers — status recovering, a fresh \
                 nonce, then the log of the primary of the latest view once f + 1 replicas \
                 with normal status have answered. With more than f replicas crashed or \
                 recovering at once, nobody can answer enough: the group waits. The one \
                 number on disk is the highest view a replica took part in, so it never \
                 rejoins an older view.",
                self.view_changes()
            ),
        }
    }
}

/// Running totals: requests answered and view changes started.
impl Sampled for VrLab {
    type Totals = (usize, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("requests answered", "per interval"),
            ("view changes", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (usize, u64) {
        (self.h.completed(), self.view_changes())
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(usize, u64)) -> Vec<f64> {
        let (done, changes) = self.totals();
        vec![
            done.saturating_sub(since.0) as f64,
            changes.saturating_sub(since.1) as f64,
        ]
    }
}

impl ClusterLab for VrLab {
    const ID: &'static str = "consensus.vr";
    type Node = VrReplica;
    type Config = VrLabConfig;
    type Action = VrLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &VrLabConfig) -> Result<Self> {
        let params = VrParams {
            heartbeat: c.heartbeat_ms.duration(),
            timeout_min: c.timeout_min_ms.duration(),
            timeout_max: c.timeout_max_ms.duration(),
        };
        let workload = Workload {
            clients: c.clients.get(),
            keys: c.keys.get(),
            ..Workload::default()
        };
        let mut h = Harness::new(
            SimConfig {
                clients: c.clients.get(),
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.nodes.get())
            },
            params,
            workload,
        )?;
        c.load_faults(h.sim_mut())?;
        Ok(VrLab { h })
    }

    fn sim(&self) -> &Sim<VrReplica> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<VrReplica> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        self.h.observe();
    }

    fn act(&mut self, action: &VrLabAction) -> Result<()> {
        match action {
            VrLabAction::StopClients {} => {
                self.h.stop_clients();
                Ok(())
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(r) = self.h.sim().node(id) else {
            return;
        };
        fields.insert("view".into(), json!(r.view()));
        fields.insert("status".into(), json!(status_text(r.status())));
        fields.insert("opNumber".into(), json!(r.op_number()));
        fields.insert("commitNumber".into(), json!(r.commit_number()));
        fields.insert("lastNormalView".into(), json!(r.last_normal_view()));
        fields.insert("viewOnDisk".into(), json!(r.voted_view()));
        fields.insert("executed".into(), json!(r.executed()));
        let newest: BTreeMap<String, String> = r
            .log()
            .iter()
            .enumerate()
            .rev()
            .take(OP_ROWS)
            .map(|(i, e)| ((i + 1).to_string(), entry_text(e)))
            .collect();
        fields.insert("log (newest)".into(), json!(newest));
        fields.insert("store".into(), json!(r.service().data()));
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let r = self.h.sim().node(id)?;
        Some(NodeGlance {
            node: id,
            badge: Some(format!(
                "v{} {}/{}",
                r.view(),
                r.op_number(),
                r.commit_number()
            )),
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.ops_table(), self.model_text()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let names = [
            (
                Invariant::StateMachineSafety,
                "state-machine safety: one request per committed op-number",
            ),
            (
                Invariant::CommitNumber,
                "commit-number monotonic (per life) and within the log",
            ),
            (
                Invariant::OnePrimaryPerView,
                "at most one acting primary per view, view mod n",
            ),
        ];
        let committed = self.h.checker().committed();
        names
            .iter()
            .map(|(inv, name)| match self.h.violation() {
                Some(v) if v.invariant == *inv => {
                    InvariantStatus::violated(name, v.to_string(), v.nodes.clone())
                }
                _ => InvariantStatus::holds(name, format!("{committed} ops committed")),
            })
            .collect()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::vr::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<VrLabAction>> {
        let mut v = vec![ClusterAction::Lab(VrLabAction::StopClients {})];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Json) -> Runner<Cluster<VrLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn a_crashed_primary_is_replaced_and_recovers_when_restarted() {
        let mut l = lab(json!({"nodes": 3}));
        l.step(Duration::from_secs(1)).unwrap();
        let before = l.model().harness().completed();
        assert!(before > 10, "{before}");
        assert!(l.model().harness().sim().node(0).unwrap().is_primary());
        l.act(&json!({"type": "crash", "node": 0})).unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        assert!(l.model().harness().completed() > before + 5);
        l.act(&json!({"type": "restart", "node": 0})).unwrap();
        l.step(Duration::from_secs(1)).unwrap();
        let zero = l.model().harness().sim().node(0).unwrap();
        assert_eq!(zero.status(), Status::Normal);
        assert_eq!(zero.recoveries(), 1);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let text = serde_json::to_string(&v.nodes).unwrap();
        assert!(
            text.contains("commitNumber") && text.contains("viewOnDisk"),
            "{text}"
        );
        l.act(&json!({"type": "stopClients"})).unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 2}), "config.nodes"),
            (json!({"heartbeatMs": 0}), "config.heartbeatMs"),
            (json!({"clients": 99}), "config.clients"),
        ] {
            let e = Runner::<Cluster<VrLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
