//! Lab `coordination.swim`: SWIM members probing each other (see [`super`]). A node's
//! role is what the cluster believes of it — `alive`, `suspect` if any up member suspects
//! it, `dead` if any declares it dead — so suspicion and refutation show as colour; the
//! inspected node's membership view (the `inspect` action picks it) is a table, with
//! each member's status and incarnation as that node holds them.
//!
//! The invariant is SWIM's accuracy as the lab can judge it: no member that is up and
//! reachable is held dead by another up member. Loss, a pause or a partition longer than
//! the suspicion timeout breaks it; the member's refutation (a higher incarnation)
//! repairs it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::swim::{Status, SwimConfig, SwimNode};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::engine::MAX_NODES;
use crate::sim::{Fault, NodeId, NodeStatus, Sim};
use crate::time::{Duration, Time};

const TRACE_TAIL: usize = 20_000;

cluster_lab_config! {
    /// Configuration of the SWIM lab.
    pub struct SwimLabConfig {
        /// Members.
        pub nodes: Count<2, { MAX_NODES }> = Count::of(32),
        /// The protocol period.
        pub probe_interval_ms: Millis<1, 60_000> = Millis::of(200),
        /// Wait for a direct ack before asking others (below the period).
        pub probe_timeout_ms: Millis<1, 60_000> = Millis::of(60),
        /// Members asked to ping an unanswering target (k).
        pub indirect_checks: Count<0, 16> = Count::of(3),
        /// Suspicion timeout: this × max(1, log10 n) × the period.
        pub suspicion_mult: Count<1, 32> = Count::of(4),
        /// Lifeguard: the first suspicion timeout is this × the shortest.
        pub suspicion_max_mult: Count<1, 32> = Count::of(6),
        /// λ: each update is piggybacked at most λ·⌈log10(n+1)⌉ times.
        pub retransmit_mult: Count<1, 32> = Count::of(4),
        /// Updates one message carries at most.
        pub max_piggyback: Count<1, 64> = Count::of(8),
        /// Lifeguard's local health multiplier, dynamic suspicion timeout and nacks.
        pub lifeguard: bool = true,
        /// The member whose membership view the panel shows.
        pub inspect: u32 = 0,
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum SwimLabAction {
    /// Show `node`'s membership view in the panel.
    Inspect { node: NodeId },
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwimTotals {
    pub sent: u64,
}

/// The SWIM lab.
#[derive(Debug, Clone)]
pub struct SwimLab {
    sim: Sim<SwimNode>,
    inspect: NodeId,
}

impl SwimLab {
    fn up(&self, id: NodeId) -> Option<&SwimNode> {
        match self.sim.status(id) {
            Some(NodeStatus::Up) => self.sim.node(id),
            _ => None,
        }
    }

    /// Up members, for the checks: a crashed or paused member's beliefs do not count.
    fn up_members(&self) -> impl Iterator<Item = (NodeId, &SwimNode)> {
        (0..self.sim.node_count()).filter_map(|id| Some((id, self.up(id)?)))
    }

    /// The most severe status any up member holds of `id`, and who holds it.
    pub fn belief(&self, id: NodeId) -> (Status, Vec<NodeId>) {
        let mut worst = Status::Alive;
        let mut holders = Vec::new();
        for (o, n) in self.up_members() {
            let (s, _) = n.view_of(id);
            if s > worst {
                worst = s;
                holders.clear();
            }
            if s == worst && s != Status::Alive {
                holders.push(o);
            }
        }
        (worst, holders)
    }

    /// Up members held dead by an up member that can reach them: (holder, member).
    pub fn false_deaths(&self) -> Vec<(NodeId, NodeId)> {
        let mut out = Vec::new();
        for (o, n) in self.up_members() {
            for (&m, member) in n.members() {
                if member.status == Status::Dead
                    && self.up(m).is_some()
                    && self.sim.network().connected(o, m)
                    && self.sim.network().connected(m, o)
                {
                    out.push((o, m));
                }
            }
        }
        out
    }

    /// Whether every up member holds every up member alive.
    pub fn converged(&self) -> bool {
        let up: Vec<NodeId> = self.up_members().map(|(id, _)| id).collect();
        self.up_members()
            .all(|(_, n)| up.iter().all(|&m| n.view_of(m).0 == Status::Alive))
    }

    fn view_table(&self) -> Panel {
        let rows = match self.sim.node(self.inspect) {
            Some(n) => (0..self.sim.node_count())
                .map(|m| {
                    let (s, inc) = n.view_of(m);
                    let detail = n.members().get(&m).map_or(String::new(), |mm| {
                        if mm.status == Status::Suspect {
                            format!(
                                "suspected by {} member(s); dead at {:.0} ms unless refuted",
                                mm.suspecters.len(),
                                mm.deadline.as_millis_f64()
                            )
                        } else {
                            String::new()
                        }
                    });
                    vec![
                        json!(format!("n{m}")),
                        json!(s.name()),
                        json!(inc),
                        json!(detail),
                    ]
                })
                .collect(),
            None => Vec::new(),
        };
        Panel::Table {
            title: format!("membership view of n{}", self.inspect),
            columns: ["member", "status", "incarnation", "note"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

impl Sampled for SwimLab {
    type Totals = SwimTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("members suspected", "members"),
            ("members held dead", "members"),
            ("live members held dead", "pairs"),
            ("messages", "per s"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> SwimTotals {
        SwimTotals {
            sent: self.sim.net_stats().sent,
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &SwimTotals) -> Vec<f64> {
        let mut suspected = 0u32;
        let mut dead = 0u32;
        for id in 0..self.sim.node_count() {
            match self.belief(id).0 {
                Status::Suspect => suspected += 1,
                Status::Dead => dead += 1,
                Status::Alive => {}
            }
        }
        let secs = interval.as_secs_f64();
        let rate = if secs > 0.0 {
            self.totals().sent.saturating_sub(since.sent) as f64 / secs
        } else {
            0.0
        };
        vec![
            f64::from(suspected),
            f64::from(dead),
            self.false_deaths().len() as f64,
            rate,
        ]
    }
}

impl ClusterLab for SwimLab {
    const ID: &'static str = "coordination.swim";
    type Node = SwimNode;
    type Config = SwimLabConfig;
    type Action = SwimLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &SwimLabConfig) -> Result<Self> {
        let nodes = c.nodes.get();
        if c.inspect >= nodes {
            return Err(DistlabError::field(
                "inspect",
                format!("node {} does not exist (there are {nodes})", c.inspect),
            ));
        }
        if c.probe_timeout_ms.get() >= c.probe_interval_ms.get() {
            return Err(DistlabError::field(
                "probeTimeoutMs",
                "must be shorter than probeIntervalMs (the indirect probe needs the rest)",
            ));
        }
        let config = SwimConfig {
            probe_interval: c.probe_interval_ms.duration(),
            probe_timeout: c.probe_timeout_ms.duration(),
            indirect_checks: c.indirect_checks.get(),
            suspicion_mult: c.suspicion_mult.get(),
            suspicion_max_mult: c.suspicion_max_mult.get(),
            retransmit_mult: c.retransmit_mult.get(),
            max_piggyback: c.max_piggyback.get(),
            lifeguard: c.lifeguard,
        };
        let mut sim = Sim::new(c.sim_config(nodes), (config, nodes))?;
        c.load_faults(&mut sim)?;
        Ok(SwimLab {
            sim,
            inspect: c.inspect,
        })
    }

    fn sim(&self) -> &Sim<SwimNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<SwimNode> {
        &mut self.sim
    }

    fn act(&mut self, action: &SwimLabAction) -> Result<()> {
        match action {
            SwimLabAction::Inspect { node } => {
                if *node >= self.sim.node_count() {
                    return Err(DistlabError::field(
                        "node",
                        format!("node {node} does not exist"),
                    ));
                }
                self.inspect = *node;
            }
        }
        Ok(())
    }

    fn role(&self, id: NodeId) -> String {
        if self.sim.status(id) == Some(NodeStatus::Crashed) {
            return "down".into();
        }
        self.belief(id).0.name().into()
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        fields.insert("incarnation".into(), json!(n.incarnation()));
        fields.insert("healthScore".into(), json!(n.health()));
        fields.insert("pendingUpdates".into(), json!(n.pending_updates()));
        let of = |s: Status| -> Vec<NodeId> {
            n.members()
                .iter()
                .filter(|(_, m)| m.status == s)
                .map(|(&k, _)| k)
                .collect()
        };
        fields.insert("suspects".into(), json!(of(Status::Suspect)));
        fields.insert("dead".into(), json!(of(Status::Dead)));
        // How many this member holds dead, as a number a lesson can wait for.
        fields.insert("deadCount".into(), json!(of(Status::Dead).len()));
        let (s, holders) = self.belief(id);
        if s != Status::Alive {
            fields.insert(format!("held {} by", s.name()), json!(holders));
        }
        fields.insert("swim".into(), json!(n.stats()));
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.view_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const ACCURACY: &str = "no reachable live member is held dead";
        let wrong = self.false_deaths();
        vec![match wrong.first() {
            Some(&(o, m)) => InvariantStatus::violated(
                ACCURACY,
                format!(
                    "n{o} holds n{m} dead though both are up and connected ({} such pairs); \
                     n{m} refutes when it hears of it",
                    wrong.len()
                ),
                vec![o, m],
            ),
            None => InvariantStatus::holds(ACCURACY, "every member held dead is down or cut off"),
        }]
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::coordination::swim::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<SwimLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(SwimLabAction::Inspect { node: 1 }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    #[test]
    fn a_crashed_member_is_suspected_then_declared_dead_by_all() {
        let mut lab = Cluster::<SwimLab>::new(&SwimLabConfig {
            nodes: Count::of(10),
            ..SwimLabConfig::default()
        })
        .unwrap();
        while lab.step_until(Time::from_millis(2_000)) {}
        assert!(lab.converged());
        lab.act(&ClusterAction::Fault(Fault::Crash { node: 3 }))
            .unwrap();
        while lab.step_until(Time::from_millis(30_000)) {}
        let all_dead = (0..10)
            .filter(|&o| o != 3)
            .all(|o| lab.sim().node(o).unwrap().view_of(3).0 == Status::Dead);
        assert!(all_dead);
        assert!(lab.invariants()[0].ok);
        // It comes back and refutes: everyone holds it alive at a higher incarnation.
        lab.act(&ClusterAction::Fault(Fault::Restart { node: 3 }))
            .unwrap();
        while lab.step_until(Time::from_millis(60_000)) {}
        assert!(lab.converged());
        assert!(lab.sim().node(3).unwrap().incarnation() > 0);
    }

    #[test]
    fn a_partition_makes_false_deaths_and_the_heal_repairs_them() {
        let mut lab = Cluster::<SwimLab>::new(&SwimLabConfig {
            nodes: Count::of(8),
            ..SwimLabConfig::default()
        })
        .unwrap();
        lab.act(&ClusterAction::Fault(Fault::Partition {
            groups: vec![vec![0, 1, 2]],
        }))
        .unwrap();
        while lab.step_until(Time::from_millis(30_000)) {}
        // Cut off is not wrong: the invariant only blames reachable members.
        assert!(lab.invariants()[0].ok);
        assert_eq!(lab.sim().node(0).unwrap().view_of(5).0, Status::Dead);
        lab.act(&ClusterAction::Fault(Fault::Heal)).unwrap();
        assert!(!lab.invariants()[0].ok, "now they can reach each other");
        while lab.step_until(Time::from_millis(90_000)) {}
        assert!(lab.converged());
        assert!(lab.invariants()[0].ok);
    }

    #[test]
    fn dynamic_suspicion_shrinks_with_confirmations() {
        let cfg = SwimConfig::default();
        let n =
            <SwimNode as crate::sim::Node>::recover(0, &(cfg, 100), &crate::sim::disk::Disk::new());
        let min = n.min_suspicion();
        assert_eq!(min, Duration(4 * 2 * 200_000));
        assert_eq!(n.suspicion_timeout(0), Duration(min.0 * 6));
        assert!(n.suspicion_timeout(1) < n.suspicion_timeout(0));
        assert_eq!(n.suspicion_timeout(2), min, "k = suspicion_mult − 2 = 2");
        assert_eq!(n.retransmit_limit(), 4 * 3);
        let plain = <SwimNode as crate::sim::Node>::recover(
            0,
            &(
                SwimConfig {
                    lifeguard: false,
                    ..cfg
                },
                100,
            ),
            &crate::sim::disk::Disk::new(),
        );
        assert_eq!(plain.suspicion_timeout(0), min);
    }
}
