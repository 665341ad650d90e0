//! Lab `consensus.pbft`: Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI
//! 1999) on the simulator, with closed-loop clients that accept a result once f + 1
//! replicas reply alike. Each replica shows its view and status, the low and high
//! watermarks h and H, its stable checkpoint and who signed its proof, the next
//! sequence number, its prepared certificates and commit quorums (who signed them), and
//! whether it lies; a table lines up the sequence numbers in the window across replicas.
//! Safety among correct replicas is checked after every event. Every fault is an action,
//! and so is turning a replica into a liar.
//!
//! Things to try: make the primary (`view mod n`) equivocate and watch the backups time
//! out and move to the next view; make a second replica equivocate too (f + 1 liars in a
//! group of 4) and watch two correct replicas commit different requests at one sequence
//! number; make one forge and watch its messages dropped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::consensus::pbft::byzantine::Behaviour;
use crate::consensus::pbft::harness::Harness;
use crate::consensus::pbft::invariants::Invariant;
use crate::consensus::pbft::replica::{PbftParams, PbftReplica, Status};
use crate::consensus::vr::harness::Workload;
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// Sequence numbers listed in the table.
const SEQ_ROWS: u64 = 12;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;

/// A lying replica in the config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Liar {
    pub node: u32,
    pub behaviour: Behaviour,
}

cluster_lab_config! {
    /// Configuration of the PBFT lab.
    pub struct PbftLabConfig {
        /// Replicas: 3f + 1 tolerate f liars.
        pub nodes: Count<4, 10> = Count::of(4),
        /// Replicas that lie from the start, and how.
        pub liars: Vec<Liar> = Vec::new(),
        /// K: a checkpoint every K sequence numbers.
        pub checkpoint_interval: Count<1, 64> = Count::of(4),
        /// L = K × this: the high watermark is H = h + L.
        pub window_checkpoints: Count<1, 8> = Count::of(2),
        /// How long a backup waits for a request before it starts a view change.
        pub view_timeout_ms: Millis<10, 60_000> = Millis::of(250),
        /// The retransmission tick.
        pub retransmit_ms: Millis<5, 60_000> = Millis::of(60),
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(3),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum PbftLabAction {
    /// Clients start no new request (the ones under way finish).
    StopClients {},
    /// Turns a running replica into a liar (or back to honest with `honest`).
    MakeByzantine { node: u32, behaviour: Behaviour },
}

/// The PBFT lab.
#[derive(Debug, Clone)]
pub struct PbftLab {
    h: Harness,
}

fn signers(ids: impl Iterator<Item = NodeId>) -> String {
    let v: Vec<String> = ids.map(|i| format!("n{i}")).collect();
    format!("{{{}}}", v.join(","))
}

impl PbftLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    fn replicas(&self) -> impl Iterator<Item = &PbftReplica> {
        let sim = self.h.sim();
        (0..sim.node_count()).filter_map(move |id| sim.node(id))
    }

    fn view_changes(&self) -> u64 {
        self.replicas().map(PbftReplica::view_changes_started).sum()
    }

    /// One cell: what replica `r` holds at `seq`.
    fn cell(r: &PbftReplica, seq: u64) -> String {
        if seq <= r.low_watermark() {
            return match r.commit_record().get(&seq) {
                Some(req) => format!("{} ✓ (collected)", req.text()),
                None => "below h".into(),
            };
        }
        let Some(slot) = r.slots().get(&seq) else {
            return "—".into();
        };
        let Some(pp) = &slot.pre_prepare else {
            return format!(
                "{} prepares, {} commits",
                slot.prepares.len(),
                slot.commits.len()
            );
        };
        let phase = if slot.committed {
            "committed"
        } else if r.prepared_certificate(seq).is_some() {
            "prepared"
        } else {
            "pre-prepared"
        };
        format!("{} — {phase}", pp.value.request.text())
    }

    fn seq_table(&self) -> Panel {
        let sim = self.h.sim();
        let top = self
            .replicas()
            .map(|r| {
                r.slots()
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0)
                    .max(r.last_executed())
            })
            .max()
            .unwrap_or(0);
        let mut columns = vec!["seq".to_string()];
        columns.extend((0..sim.node_count()).map(|id| match sim.node(id) {
            Some(r) if !r.behaviour().is_honest() => format!("n{id} (liar)"),
            _ => format!("n{id}"),
        }));
        let rows = (1..=top)
            .rev()
            .take(SEQ_ROWS as usize)
            .map(|seq| {
                let mut row = vec![json!(seq)];
                row.extend((0..sim.node_count()).map(|id| {
                    json!(match sim.node(id) {
                        None => "down".to_string(),
                        Some(r) => Self::cell(r, seq),
                    })
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "sequence numbers, newest first".into(),
            columns,
            rows,
        }
    }

    fn certificates(&self) -> Panel {
        let mut rows = Vec::new();
        for r in self.replicas() {
            for (seq, cert) in r.prepared_certificates().iter().rev().take(4) {
                let pp = &cert.pre_prepare.value;
                let commits = r.slots().get(seq).map(|s| {
                    signers(
                        s.commits
                            .values()
                            .filter(|c| c.value.digest == pp.digest && c.value.view == pp.view)
                            .map(|c| c.signer),
                    )
                });
                rows.push(vec![
                    json!(format!("n{}", r.id())),
                    json!(seq),
                    json!(pp.view),
                    json!(pp.request.text()),
                    json!(format!(
                        "pre-prepare n{} + prepares {}",
                        cert.pre_prepare.signer,
                        signers(cert.prepares.iter().map(|p| p.signer))
                    )),
                    json!(commits.unwrap_or_else(|| "—".into())),
                ]);
            }
        }
        Panel::Table {
            title: "quorum certificates (prepared: pre-prepare + 2f prepares; commit: 2f + 1)"
                .into(),
            columns: ["replica", "seq", "view", "request", "prepared", "commits"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn model_text(&self) -> Panel {
        let forged: u64 = self.replicas().map(PbftReplica::forgeries_dropped).sum();
        let transfers: u64 = self.replicas().map(PbftReplica::state_transfers).sum();
        let f = self.h.f();
        Panel::Text {
            title: "Byzantine faults".into(),
            body: format!(
                "n = {}, f = {f}: quorums of 2f + 1 = {} intersect in f + 1 replicas, at least \
                 one of them correct while at most f lie. {} view changes started, {forged} \
                 forged messages dropped (a liar cannot MAC or sign as another replica), \
                 {transfers} state transfers. A client believes a result only when f + 1 = {} \
                 replicas reply alike.",
                self.h.sim().node_count(),
                2 * f + 1,
                self.view_changes(),
                f + 1
            ),
        }
    }
}

/// Running totals: requests answered and view changes started.
impl Sampled for PbftLab {
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

impl ClusterLab for PbftLab {
    const ID: &'static str = "consensus.pbft";
    type Node = PbftReplica;
    type Config = PbftLabConfig;
    type Action = PbftLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &PbftLabConfig) -> Result<Self> {
        let nodes = c.nodes.get();
        let mut byzantine = BTreeMap::new();
        for liar in &c.liars {
            if liar.node >= nodes {
                return Err(DistlabError::field(
                    "config.liars",
                    format!("replica {} does not exist (there are {nodes})", liar.node),
                ));
            }
            byzantine.insert(liar.node, liar.behaviour);
        }
        let k = u64::from(c.checkpoint_interval.get());
        let params = PbftParams {
            key_secret: c.seed ^ 0x5eed,
            checkpoint_interval: k,
            log_window: k * u64::from(c.window_checkpoints.get()),
            retransmit: c.retransmit_ms.duration(),
            view_timeout: c.view_timeout_ms.duration(),
            byzantine,
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
                ..c.sim_config(nodes)
            },
            params,
            workload,
        )?;
        c.load_faults(h.sim_mut())?;
        Ok(PbftLab { h })
    }

    fn sim(&self) -> &Sim<PbftReplica> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<PbftReplica> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        self.h.observe();
    }

    fn act(&mut self, action: &PbftLabAction) -> Result<()> {
        match action {
            PbftLabAction::StopClients {} => {
                self.h.stop_clients();
                Ok(())
            }
            PbftLabAction::MakeByzantine { node, behaviour } => {
                let n = self.h.sim().node_count();
                match self.h.sim_mut().node_mut(*node) {
                    Some(r) => {
                        r.set_behaviour(*behaviour);
                        Ok(())
                    }
                    None => Err(DistlabError::field(
                        "action.node",
                        format!("replica {node} is down or does not exist (there are {n})"),
                    )),
                }
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(r) = self.h.sim().node(id) else {
            return;
        };
        fields.insert("view".into(), json!(r.view()));
        fields.insert(
            "status".into(),
            json!(match r.status() {
                Status::Normal => "normal",
                Status::ViewChange => "view-change",
            }),
        );
        fields.insert("behaviour".into(), json!(r.behaviour().name()));
        fields.insert("liar".into(), json!(!r.behaviour().is_honest()));
        fields.insert(
            "primary".into(),
            json!(format!("n{}", r.primary_of(r.view()))),
        );
        fields.insert("lowWatermark".into(), json!(r.low_watermark()));
        fields.insert("highWatermark".into(), json!(r.high_watermark()));
        fields.insert("stableCheckpoint".into(), json!(r.low_watermark()));
        fields.insert(
            "stableProof".into(),
            json!(signers(r.stable_proof().iter().map(|c| c.signer))),
        );
        fields.insert("lastExecuted".into(), json!(r.last_executed()));
        fields.insert("nextSeq".into(), json!(r.next_seq()));
        fields.insert("recovering".into(), json!(r.recovering()));
        fields.insert("forgeriesDropped".into(), json!(r.forgeries_dropped()));
        let certs: BTreeMap<String, String> = r
            .prepared_certificates()
            .iter()
            .rev()
            .take(6)
            .map(|(seq, c)| {
                (
                    seq.to_string(),
                    format!(
                        "v{} {} by n{} + {}",
                        c.pre_prepare.value.view,
                        c.pre_prepare.value.request.text(),
                        c.pre_prepare.signer,
                        signers(c.prepares.iter().map(|p| p.signer))
                    ),
                )
            })
            .collect();
        fields.insert("prepared certificates".into(), json!(certs));
        let committed: BTreeMap<String, String> = r
            .commit_record()
            .iter()
            .rev()
            .take(6)
            .map(|(s, q)| (s.to_string(), q.text()))
            .collect();
        fields.insert("committed (newest)".into(), json!(committed));
        fields.insert("store".into(), json!(r.service().data()));
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let r = self.h.sim().node(id)?;
        let liar = if r.behaviour().is_honest() {
            String::new()
        } else {
            format!(" ⚠{}", r.behaviour().name())
        };
        Some(NodeGlance {
            node: id,
            badge: Some(format!(
                "v{} h{} e{}{liar}",
                r.view(),
                r.low_watermark(),
                r.last_executed()
            )),
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.seq_table(), self.certificates(), self.model_text()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let names = [
            (
                Invariant::Safety,
                "safety: no two correct replicas commit different requests at one sequence number",
            ),
            (
                Invariant::ExecutedStates,
                "correct replicas that executed the same prefix hold the same state",
            ),
        ];
        let committed = self.h.checker().committed();
        names
            .iter()
            .map(|(inv, name)| match self.h.violation() {
                Some(v) if v.invariant == *inv => {
                    InvariantStatus::violated(name, v.to_string(), v.nodes.clone())
                }
                _ => {
                    InvariantStatus::holds(name, format!("{committed} sequence numbers committed"))
                }
            })
            .collect()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::pbft::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<PbftLabAction>> {
        let mut v = vec![
            ClusterAction::Lab(PbftLabAction::StopClients {}),
            ClusterAction::Lab(PbftLabAction::MakeByzantine {
                node: 0,
                behaviour: Behaviour::Equivocate,
            }),
        ];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Json) -> Runner<Cluster<PbftLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn an_equivocating_primary_is_replaced_and_a_second_liar_breaks_safety() {
        let mut l = lab(json!({"nodes": 4, "seed": 4}));
        l.step(Duration::from_secs(1)).unwrap();
        let before = l.model().harness().completed();
        assert!(before > 10, "{before}");
        l.act(&json!({"type": "makeByzantine", "node": 0, "behaviour": "equivocate"}))
            .unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        let h = l.model().harness();
        assert!(h.violation().is_none(), "{:?}", h.violation());
        assert!(h.completed() > before + 5);
        assert!(h.sim().node(2).unwrap().view() >= 1);
        let v = l.view();
        let text = serde_json::to_string(&v.nodes).unwrap();
        assert!(
            text.contains("lowWatermark") && text.contains("\"liar\":true"),
            "{text}"
        );
        // f + 1 = 2 liars in a group of 4, one of them the primary of a later view.
        let mut l = lab(json!({"nodes": 4, "seed": 4, "liars": [
            {"node": 0, "behaviour": "equivocate"}, {"node": 1, "behaviour": "equivocate"}]}));
        l.step(Duration::from_secs(3)).unwrap();
        let v = l.view();
        assert!(v.invariants.iter().any(|i| !i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 3}), "config.nodes"),
            (
                json!({"liars": [{"node": 9, "behaviour": "silent"}]}),
                "config.liars",
            ),
            (
                json!({"checkpointInterval": 0}),
                "config.checkpointInterval",
            ),
        ] {
            let e = Runner::<Cluster<PbftLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
        let mut l = lab(json!({}));
        let e = l
            .act(&json!({"type": "makeByzantine", "node": 7, "behaviour": "silent"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("action.node"), "{e}");
    }
}
