//! Lab `sim.faults`: a fault timeline applied to a small cluster of pinging nodes. The
//! timeline is the nemesis's random script (`NemesisConfig`, the generator the soaks
//! use: crash/restart, pause/resume, partitions, loss, duplication, reordering, clock
//! skew and drift, every episode healed by `durationMs`) plus any faults the config
//! scripts by hand; every fault is also an action. The view draws the timeline as lanes —
//! one per node, one per clock, one for partitions, one per network knob — each bar a
//! condition from the fault that set it to the next fault on its lane, applied ones
//! coloured by what they do and pending ones grey; the cluster shows the faults in force.
//!
//! Invariant: the nemesis heals what it breaks — once its script has ended, every node is
//! up, no link is cut and no loss, duplication or reordering is left on (unless faults were
//! also applied as actions, which the check then says it cannot judge).
//! Fault model: Jepsen's nemesis (Kingsbury, jepsen.io), crash-recovery with a durable
//! disk, as in the simulator ([`crate::sim::faults`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel, TimelineBar};
use crate::rng::SimRng;
use crate::sim::pingpong::{PingConfig, PingNode};
use crate::sim::workload::within;
use crate::sim::{
    Fault, FaultScript, NemesisConfig, NetStats, NodeId, NodeStatus, ScheduledFault, Sim, SimConfig,
};
use crate::time::{Duration, Time};

/// The largest cluster the lab takes: the timeline has a lane per node.
pub const MAX_NODES: u32 = 16;
/// Faults the script may hold (the nemesis's and the config's together).
pub const MAX_FAULTS: usize = 2_000;
/// Rows of the script table: the faults around now.
const SCRIPT_ROWS: usize = 24;

cluster_lab_config! {
    /// Configuration of the fault-timeline lab. The seed drives the nemesis's script
    /// too; `faults` are scheduled by hand, besides the nemesis's.
    pub struct FaultsLabConfig {
        pub nodes: Count<2, { MAX_NODES }> = Count::of(5),
        /// The random fault script.
        pub nemesis: NemesisConfig = NemesisConfig {
            intensity: Probability::of(0.8),
            ..NemesisConfig::default()
        },
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum FaultsLabAction {
    /// Undo every fault in force now: restart crashed nodes, resume paused ones, heal
    /// partitions, turn loss, duplication and reordering off.
    HealAll {},
}

/// The lane a fault belongs to: the condition it sets lasts until the next fault there.
fn lane_of(fault: &Fault) -> String {
    match fault {
        Fault::Crash { node }
        | Fault::CrashMidEvent { node, .. }
        | Fault::Restart { node }
        | Fault::Pause { node }
        | Fault::Resume { node } => format!("n{node}"),
        Fault::ClockSkew { node, .. } | Fault::ClockDrift { node, .. } => {
            format!("n{node} clock")
        }
        Fault::Partition { .. } | Fault::PartitionOneWay { .. } | Fault::Heal => {
            "partitions".into()
        }
        Fault::SetLoss { .. } => "loss".into(),
        Fault::SetDuplicate { .. } => "duplicate".into(),
        Fault::SetReorder { .. } => "reorder".into(),
        Fault::SetLatency { .. } | Fault::SetLinkLatency { .. } => "latency".into(),
    }
}

/// The fault's `type` and its other fields, short.
fn describe(fault: &Fault) -> String {
    let Ok(Value::Object(mut m)) = serde_json::to_value(fault) else {
        return String::new();
    };
    let kind = m
        .remove("type")
        .and_then(|t| t.as_str().map(String::from))
        .unwrap_or_default();
    if m.is_empty() {
        kind
    } else {
        format!("{kind} {}", Value::Object(m))
    }
}

/// What a bar's colour says the fault did.
fn state_of(fault: &Fault) -> &'static str {
    match fault {
        Fault::Crash { .. } | Fault::CrashMidEvent { .. } => "failed",
        Fault::Pause { .. } | Fault::Partition { .. } | Fault::PartitionOneWay { .. } => "timeout",
        Fault::Restart { .. } | Fault::Resume { .. } | Fault::Heal => "ok",
        Fault::SetLoss { probability }
        | Fault::SetDuplicate { probability }
        | Fault::SetReorder { probability } => {
            if probability.get() > 0.0 {
                "pending"
            } else {
                "ok"
            }
        }
        _ => "open",
    }
}

/// The fault-timeline lab.
#[derive(Debug, Clone)]
pub struct FaultsLab {
    sim: Sim<PingNode>,
    /// The whole script, by time (the nemesis's and the config's).
    script: Vec<ScheduledFault>,
    /// When the nemesis's script has healed everything.
    heals_by: Time,
    /// A fault was applied as an action: what it broke is the user's, not the nemesis's,
    /// and the heal check cannot judge the run.
    faulted_by_action: bool,
}

impl FaultsLab {
    fn applied(&self) -> usize {
        let now = self.sim.now().0;
        self.script.partition_point(|f| f.at_us <= now)
    }

    fn timeline(&self) -> Panel {
        let now = self.sim.now().0;
        let mut lanes: Vec<String> = (0..self.sim.node_count())
            .map(|n| format!("n{n}"))
            .collect();
        let mut bars = Vec::new();
        // The fault that last set each lane, waiting for the next one to end its bar.
        let mut open: BTreeMap<String, (u64, &Fault)> = BTreeMap::new();
        let mut close = |lanes: &mut Vec<String>, lane: &str, start: u64, f: &Fault, end| {
            let index = match lanes.iter().position(|l| l == lane) {
                Some(i) => i,
                None => {
                    lanes.push(lane.to_string());
                    lanes.len() - 1
                }
            };
            bars.push(TimelineBar {
                lane: index as u32,
                start: start as f64 / 1e3,
                end,
                label: describe(f),
                state: if start <= now { state_of(f) } else { "info" }.into(),
                order: None,
            });
        };
        for sf in &self.script {
            let lane = lane_of(&sf.fault);
            if let Some((start, f)) = open.insert(lane.clone(), (sf.at_us, &sf.fault)) {
                close(&mut lanes, &lane, start, f, Some(sf.at_us as f64 / 1e3));
            }
        }
        for (lane, (start, f)) in open {
            close(&mut lanes, &lane, start, f, None);
        }
        Panel::Timeline {
            title: format!(
                "fault timeline (ms): {} of {} faults applied; grey: still to come",
                self.applied(),
                self.script.len()
            ),
            lanes,
            bars,
        }
    }

    fn script_table(&self) -> Panel {
        let next = self.applied();
        let from = next.saturating_sub(SCRIPT_ROWS / 2);
        let rows = self
            .script
            .iter()
            .enumerate()
            .skip(from)
            .take(SCRIPT_ROWS)
            .map(|(i, f)| {
                vec![
                    json!(f.at_us as f64 / 1e3),
                    json!(describe(&f.fault)),
                    json!(if i < next { "applied" } else { "to come" }),
                ]
            })
            .collect();
        Panel::Table {
            title: "the script around now".into(),
            columns: ["at ms", "fault", ""].map(String::from).to_vec(),
            rows,
        }
    }

    /// What is still broken: nodes down or paused, cut links, knobs on.
    fn still_broken(&self) -> Vec<String> {
        let mut broken: Vec<String> = (0..self.sim.node_count())
            .filter(|&n| self.sim.status(n) != Some(NodeStatus::Up))
            .map(|n| format!("n{n} is not up"))
            .collect();
        let net = self.sim.network();
        if !net.groups().is_empty() || !net.one_way_cuts().is_empty() {
            broken.push("links are cut".into());
        }
        let c = net.config();
        for (name, p) in [
            ("loss", c.loss),
            ("duplication", c.duplicate),
            ("reordering", c.reorder),
        ] {
            if p.get() > 0.0 {
                broken.push(format!("{name} is {p}"));
            }
        }
        broken
    }
}

impl Sampled for FaultsLab {
    type Totals = NetStats;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("delivered", "msg/s"),
            ("dropped", "msg/s"),
            ("nodes not up", "nodes"),
            ("faults applied", "faults"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> NetStats {
        self.sim.net_stats()
    }

    fn sample(&self, _at: Time, interval: Duration, since: &NetStats) -> Vec<f64> {
        let now = self.sim.net_stats();
        let dropped = |s: &NetStats| s.lost + s.partitioned + s.to_down_node;
        let down = (0..self.sim.node_count())
            .filter(|&n| self.sim.status(n) != Some(NodeStatus::Up))
            .count();
        vec![
            per_second(now.delivered - since.delivered, interval),
            per_second(dropped(&now) - dropped(since), interval),
            down as f64,
            self.applied() as f64,
        ]
    }
}

impl ClusterLab for FaultsLab {
    const ID: &'static str = "sim.faults";
    type Node = PingNode;
    type Config = FaultsLabConfig;
    type Action = FaultsLabAction;
    const TRACE_TAIL: usize = 20_000;

    fn new(c: &FaultsLabConfig) -> Result<Self> {
        let nemesis = c
            .nemesis
            .generate(c.nodes.get(), &mut SimRng::derive(c.seed, 3))
            .map_err(|e| within("nemesis", e))?;
        c.faults
            .validate(c.nodes.get())
            .map_err(|e| within("faults", e))?;
        let mut script: Vec<ScheduledFault> = nemesis
            .faults
            .iter()
            .chain(&c.faults.faults)
            .cloned()
            .collect();
        if script.len() > MAX_FAULTS {
            return Err(DistlabError::field(
                "nemesis",
                format!(
                    "the script holds {} faults, more than {MAX_FAULTS}: lower the intensity \
                     or the duration",
                    script.len()
                ),
            ));
        }
        // Stable: faults at one time keep their order, the nemesis's first.
        script.sort_by_key(|f| f.at_us);
        let mut sim = Sim::new(
            SimConfig {
                clients: 1,
                record_trace: true,
                trace_limit: 100_000,
                ..c.sim_config(c.nodes.get())
            },
            PingConfig {
                fanout: 4,
                interval: Duration::from_millis(50),
            },
        )?;
        let script_faults = FaultScript {
            faults: script.clone(),
        };
        sim.load_script(&script_faults)?;
        Ok(FaultsLab {
            sim,
            heals_by: script_faults.end(),
            script,
            faulted_by_action: false,
        })
    }

    fn sim(&self) -> &Sim<PingNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<PingNode> {
        &mut self.sim
    }

    fn on_fault_action(&mut self, _fault: &Fault) {
        self.faulted_by_action = true;
    }

    fn act(&mut self, action: &FaultsLabAction) -> Result<()> {
        match action {
            FaultsLabAction::HealAll {} => {
                for n in 0..self.sim.node_count() {
                    match self.sim.status(n) {
                        Some(NodeStatus::Crashed) | None => {
                            self.sim.apply_fault(&Fault::Restart { node: n })?;
                        }
                        Some(NodeStatus::Paused) => {
                            self.sim.apply_fault(&Fault::Resume { node: n })?;
                        }
                        Some(NodeStatus::Up) => {}
                    }
                }
                for fault in [
                    Fault::Heal,
                    Fault::SetLoss {
                        probability: Probability::NEVER,
                    },
                    Fault::SetDuplicate {
                        probability: Probability::NEVER,
                    },
                    Fault::SetReorder {
                        probability: Probability::NEVER,
                    },
                ] {
                    self.sim.apply_fault(&fault)?;
                }
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        if let Some(n) = self.sim.node(id) {
            let t = n.totals();
            fields.insert("pingsSent".into(), json!(t.pings_sent));
            fields.insert("pongsReceived".into(), json!(t.pongs_received));
            fields.insert("gaps".into(), json!(t.gaps));
        }
        let lane = format!("n{id}");
        let last = self
            .script
            .iter()
            .take(self.applied())
            .rev()
            .find(|f| lane_of(&f.fault) == lane);
        fields.insert(
            "lastScriptedFault".into(),
            json!(last.map(|f| describe(&f.fault))),
        );
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.timeline(), self.script_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const HEALED: &str = "the nemesis heals what it breaks";
        let now = self.sim.now();
        let status = if now < self.heals_by {
            InvariantStatus::holds(
                HEALED,
                format!(
                    "checked from {} on, when the script has ended",
                    self.heals_by
                ),
            )
        } else if self.faulted_by_action {
            InvariantStatus::holds(HEALED, "not judged: faults were applied as actions")
        } else {
            match self.still_broken() {
                broken if broken.is_empty() => InvariantStatus::holds(
                    HEALED,
                    format!(
                        "everything whole since the script ended at {}",
                        self.heals_by
                    ),
                ),
                broken => InvariantStatus::violated(
                    HEALED,
                    format!("after the script's end: {}", broken.join(", ")),
                    (0..self.sim.node_count())
                        .filter(|&n| self.sim.status(n) != Some(NodeStatus::Up))
                        .collect(),
                ),
            }
        };
        vec![status]
    }

    fn example_actions() -> Vec<ClusterAction<FaultsLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(FaultsLabAction::HealAll {}));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, LabModel, Runner};

    fn lab(config: Value) -> Runner<Cluster<FaultsLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn healed(v: &crate::lab::View) -> &InvariantStatus {
        &v.invariants[0]
    }

    #[test]
    fn the_nemesis_heals_every_seed_by_the_end_of_its_script() {
        for seed in 0..30 {
            let mut l = lab(json!({"seed": seed, "nemesis": {"durationMs": 3000}}));
            l.step(Duration::from_secs(4)).unwrap();
            let m = l.model();
            assert!(!m.script.is_empty(), "seed {seed}");
            assert_eq!(m.applied(), m.script.len());
            let v = l.view();
            assert!(healed(&v).ok, "seed {seed}: {:?}", healed(&v));
            assert!(healed(&v).detail.contains("whole"), "{:?}", healed(&v));
        }
    }

    #[test]
    fn the_timeline_has_a_bar_per_fault_and_greys_what_is_to_come() {
        let mut l = lab(json!({"nemesis": {"durationMs": 4000}}));
        l.step(Duration::from_secs(2)).unwrap();
        let v = l.view();
        let Panel::Timeline { lanes, bars, .. } = &v.panels[0] else {
            panic!("{:?}", v.panels[0])
        };
        assert_eq!(bars.len(), l.model().script.len());
        assert_eq!(&lanes[..5], ["n0", "n1", "n2", "n3", "n4"]);
        assert!(bars.iter().all(|b| (b.lane as usize) < lanes.len()));
        let to_come = bars.iter().filter(|b| b.state == "info").count();
        assert_eq!(to_come, l.model().script.len() - l.model().applied());
        assert!(to_come > 0 && to_come < bars.len());
    }

    #[test]
    fn the_heal_check_can_fail_and_does_not_judge_actions() {
        let config = FaultsLabConfig {
            nemesis: NemesisConfig {
                duration_ms: 1_000.0,
                ..NemesisConfig::default()
            },
            ..FaultsLabConfig::default()
        };
        // Something the script did not heal (here a crash behind the script's back).
        let mut m = Cluster::<FaultsLab>::new(&config).unwrap();
        while m.step_until(Time::from_millis(1_500)) {}
        m.sim.apply_fault(&Fault::Crash { node: 2 }).unwrap();
        let v = m.view();
        assert!(
            !healed(&v).ok && healed(&v).nodes == vec![2],
            "{:?}",
            healed(&v)
        );
        // The same crash as an action: the user's, not judged.
        let mut l = Runner::<Cluster<FaultsLab>>::new(config).unwrap();
        l.step(Duration::from_millis(1_500)).unwrap();
        l.act(&json!({"type": "crash", "node": 2})).unwrap();
        let v = l.view();
        assert!(healed(&v).ok && healed(&v).detail.contains("not judged"));
        l.act(&json!({"type": "healAll"})).unwrap();
        assert!(l.model().still_broken().is_empty());
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 1}), "config.nodes"),
            (
                json!({"nemesis": {"intensity": 2}}),
                "config.nemesis.intensity",
            ),
            (
                json!({"faults": {"faults": [{"atUs": 0, "fault": {"type": "crash", "node": 9}}]}}),
                "config.faults",
            ),
            (json!({"sampleMs": 0}), "config.sampleMs"),
        ] {
            let e = Runner::<Cluster<FaultsLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
