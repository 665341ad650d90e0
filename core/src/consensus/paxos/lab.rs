//! Lab `consensus.paxos`: Paxos on the simulator (Lamport, "Paxos Made Simple", 2001),
//! either Multi-Paxos with a stable leader or every command by its own instance of basic
//! Paxos, closed-loop clients with sessions writing and reading a few keys. Each node
//! shows its acceptor's promise and votes, its proposer's ballot and phase, and what it
//! knows chosen; a table shows the newest slots at every node; agreement, one value per
//! ballot, Inv1 and validity are checked after every event.
//!
//! The duelling proposers of §2.4: in single-decree mode every node proposes its own
//! clients' commands, and a proposer preempted by a higher ballot tries again after a
//! delay. `randomisedBackoff` off makes the delay fixed: proposers that collide once
//! tend to collide again, and the phase 1 rounds panel climbs while few commands are
//! chosen; on, the delays differ and one proposer finishes first. Multi-Paxos' leader
//! ends the duel for good: the others do not start phase 1 while its heartbeats arrive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::bounded::{Count, Millis};
use crate::consensus::paxos::harness::{Harness, Workload};
use crate::consensus::paxos::invariants::Invariant;
use crate::consensus::paxos::node::{Mode, PaxosNode, PaxosParams, Role, Value};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// Slots listed in the table.
const SLOT_ROWS: usize = 12;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;

cluster_lab_config! {
    /// Configuration of the Paxos lab.
    pub struct PaxosLabConfig {
        /// Nodes, each an acceptor, a learner and a proposer.
        pub nodes: Count<1, 9> = Count::of(5),
        /// Multi-Paxos with a stable leader; off, every command runs basic Paxos (two
        /// round trips) and every node proposes its own clients' commands.
        pub multi_paxos: bool = true,
        /// A preempted proposer's retry delay is drawn from [retryMinMs, retryMaxMs];
        /// off, it is always retryMinMs (the duelling proposers' livelock).
        pub randomised_backoff: bool = true,
        pub retry_min_ms: Millis<1, 60_000> = Millis::of(150),
        pub retry_max_ms: Millis<1, 60_000> = Millis::of(300),
        /// The Multi-Paxos leader's heartbeat period.
        pub heartbeat_ms: Millis<1, 60_000> = Millis::of(50),
        /// Closed-loop clients, each with a session.
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(3),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum PaxosLabAction {
    /// Clients start no new command (the ones under way finish): the cluster settles.
    StopClients {},
}

/// The Paxos lab.
#[derive(Debug, Clone)]
pub struct PaxosLab {
    h: Harness,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Noop => "no-op".into(),
        Value::Command(c) => format!("{}#{} {:?}", c.session, c.seq, c.op),
    }
}

impl PaxosLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    /// Phase 1 rounds every node started, summed.
    fn phase1_rounds(&self) -> u64 {
        let sim = self.h.sim();
        (0..sim.node_count())
            .filter_map(|id| sim.node(id))
            .map(PaxosNode::phase1_rounds)
            .sum()
    }

    fn slots_table(&self) -> Panel {
        let sim = self.h.sim();
        let mut slots: BTreeSet<u64> = self.h.checker().chosen().keys().copied().collect();
        for id in 0..sim.node_count() {
            if let Some(n) = sim.node(id) {
                slots.extend(n.accepted().keys().rev().take(SLOT_ROWS));
            }
        }
        let mut columns = vec!["slot".to_string(), "chosen".to_string()];
        columns.extend((0..sim.node_count()).map(|id| format!("n{id} vote")));
        let rows = slots
            .iter()
            .rev()
            .take(SLOT_ROWS)
            .map(|slot| {
                let chosen = self
                    .h
                    .checker()
                    .chosen()
                    .get(slot)
                    .map_or("—".into(), value_text);
                let mut row = vec![json!(slot), json!(chosen)];
                row.extend((0..sim.node_count()).map(|id| {
                    json!(match sim.node(id) {
                        None => "down".to_string(),
                        Some(n) => n.accepted().get(slot).map_or("—".into(), |(b, v)| {
                            format!("{}.{}: {}", b.round, b.node, value_text(v))
                        }),
                    })
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "slots, newest first (votes as ballot: value)".into(),
            columns,
            rows,
        }
    }

    fn duel_text(&self) -> Panel {
        let completed = self.h.completed();
        let rounds = self.phase1_rounds();
        Panel::Text {
            title: "phase 1 rounds".into(),
            body: format!(
                "{rounds} phase 1 rounds started, {completed} commands answered ({:.1} rounds \
                 per command). Basic Paxos runs phase 1 for every command; proposers that \
                 preempt each other with fixed retry delays can keep doing so (turn \
                 randomisedBackoff off, multiPaxos off). Multi-Paxos runs it once per leader.",
                rounds as f64 / completed.max(1) as f64
            ),
        }
    }
}

/// Running totals: commands answered and phase 1 rounds started.
impl Sampled for PaxosLab {
    type Totals = (usize, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("commands answered", "per interval"),
            ("phase 1 rounds", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (usize, u64) {
        (self.h.completed(), self.phase1_rounds())
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(usize, u64)) -> Vec<f64> {
        let (done, rounds) = self.totals();
        vec![
            done.saturating_sub(since.0) as f64,
            rounds.saturating_sub(since.1) as f64,
        ]
    }
}

impl ClusterLab for PaxosLab {
    const ID: &'static str = "consensus.paxos";
    type Node = PaxosNode;
    type Config = PaxosLabConfig;
    type Action = PaxosLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &PaxosLabConfig) -> Result<Self> {
        let params = PaxosParams {
            mode: if c.multi_paxos {
                Mode::MultiPaxos
            } else {
                Mode::SingleDecree
            },
            retry_min: c.retry_min_ms.duration(),
            retry_max: c.retry_max_ms.duration(),
            randomised: c.randomised_backoff,
            heartbeat: c.heartbeat_ms.duration(),
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
        Ok(PaxosLab { h })
    }

    fn sim(&self) -> &Sim<PaxosNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<PaxosNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        self.h.observe();
    }

    fn act(&mut self, action: &PaxosLabAction) -> Result<()> {
        match action {
            PaxosLabAction::StopClients {} => {
                self.h.stop_clients();
                Ok(())
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(n) = self.h.sim().node(id) else {
            return;
        };
        let ballot = |b: crate::consensus::paxos::node::Ballot| format!("{}.{}", b.round, b.node);
        fields.insert("promised".into(), json!(n.promised().map(ballot)));
        fields.insert("ballot".into(), json!(n.ballot().map(ballot)));
        let phase = match n.proposer() {
            Role::Idle => "idle",
            Role::Preparing { .. } => "phase 1",
            Role::Proposing { .. } => "phase 2",
        };
        fields.insert("proposer".into(), json!(phase));
        let votes: BTreeMap<String, String> = n
            .accepted()
            .iter()
            .rev()
            .take(SLOT_ROWS)
            .map(|(s, (b, v))| (s.to_string(), format!("{}: {}", ballot(*b), value_text(v))))
            .collect();
        fields.insert("accepted (newest)".into(), json!(votes));
        fields.insert("chosen".into(), json!(n.chosen().len()));
        fields.insert("applied".into(), json!(n.applied()));
        fields.insert("phase1Rounds".into(), json!(n.phase1_rounds()));
        fields.insert("store".into(), json!(n.kv().data()));
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let n = self.h.sim().node(id)?;
        let badge = n.ballot().map(|b| format!("b {}.{}", b.round, b.node));
        Some(NodeGlance {
            node: id,
            badge,
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.slots_table(), self.duel_text()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let names = [
            (
                Invariant::Agreement,
                "agreement: at most one value chosen per slot, and learned",
            ),
            (
                Invariant::OneValuePerBallot,
                "one value per ballot (Paxos.tla's 2a conjunct)",
            ),
            (Invariant::Inv1, "Inv1: no acceptor votes above its promise"),
            (
                Invariant::Validity,
                "validity: a chosen command was issued by a client",
            ),
        ];
        let chosen = self.h.checker().chosen().len();
        names
            .iter()
            .map(|(inv, name)| match self.h.violation() {
                Some(v) if v.invariant == *inv => {
                    InvariantStatus::violated(name, v.to_string(), v.nodes.clone())
                }
                _ => InvariantStatus::holds(name, format!("{chosen} slots chosen")),
            })
            .collect()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::paxos::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<PaxosLabAction>> {
        let mut v = vec![ClusterAction::Lab(PaxosLabAction::StopClients {})];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Json) -> Runner<Cluster<PaxosLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn commands_are_chosen_in_both_modes_and_the_invariants_hold() {
        for multi in [true, false] {
            let mut l = lab(json!({"multiPaxos": multi, "nodes": 3}));
            l.step(Duration::from_secs(3)).unwrap();
            let v = l.view();
            assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
            assert!(l.model().harness().completed() > 10, "multi {multi}");
            let text = serde_json::to_string(&v.nodes).unwrap();
            assert!(text.contains("promised"), "{text}");
        }
    }

    #[test]
    fn a_crashed_leader_is_replaced() {
        let mut l = lab(json!({"nodes": 3}));
        l.step(Duration::from_secs(1)).unwrap();
        let leader = (0..3)
            .find(|id| {
                l.model()
                    .harness()
                    .sim()
                    .node(*id)
                    .is_some_and(|n| n.is_proposing())
            })
            .expect("a leader");
        l.act(&json!({"type": "crash", "node": leader})).unwrap();
        let before = l.model().harness().completed();
        l.step(Duration::from_secs(3)).unwrap();
        assert!(l.model().harness().completed() > before + 5);
        assert!(l.view().invariants.iter().all(|i| i.ok));
        l.act(&json!({"type": "stopClients"})).unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 0}), "config.nodes"),
            (json!({"retryMinMs": 0}), "config.retryMinMs"),
            (json!({"clients": 99}), "config.clients"),
        ] {
            let e = Runner::<Cluster<PaxosLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
