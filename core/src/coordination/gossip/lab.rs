//! Lab `coordination.gossip`: an update written at one node spreads through the cluster
//! by gossip (see [`super`]), and each node's role is its state in the epidemic for the
//! newest update of key 0 — `susceptible` (does not hold it), `infective` (holds it and
//! spreads it: every holder under anti-entropy, a hot rumor under rumor mongering) or
//! `removed` (holds it, lost interest) — so the page colours the infection as it
//! spreads. Write again with the `write` action; crash, partition or drop messages with
//! the faults.
//!
//! The invariants: one version never carries two values (what last-writer-wins merging
//! rests on), and the newest update reaches every up node — which rumor mongering can
//! break for good once every monger has lost interest (the paper's *residue*), and
//! anti-entropy cannot while nodes stay reachable.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::gossip::{
    GossipConfig, GossipMode, GossipNode, LossOfInterest, Put, Stored, Version,
};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::engine::MAX_NODES;
use crate::sim::{Fault, NodeId, NodeStatus, Sim};
use crate::time::{Duration, Time};

const TRACE_TAIL: usize = 20_000;
/// The key the lab writes and follows.
const KEY: u64 = 0;
/// How long the lab's writer waits for a node's answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

cluster_lab_config! {
    /// Configuration of the gossip lab.
    pub struct GossipLabConfig {
        /// Nodes in the cluster.
        pub nodes: Count<2, { MAX_NODES }> = Count::of(100),
        /// Anti-entropy (push, pull, pushPull) or rumor mongering (rumor).
        pub mode: GossipMode = GossipMode::Rumor,
        /// Peers each node contacts per period.
        pub fanout: Count<1, 32> = Count::of(1),
        /// Time between a node's gossip rounds, on its own clock.
        pub period_ms: Millis<1, 60_000> = Millis::of(100),
        /// Rumors: count only pushes answered "already known" (else every push).
        pub feedback: bool = true,
        /// Rumors: lose interest after k counted pushes (counter) or with chance 1/k at
        /// each (coin).
        pub loss: LossOfInterest = LossOfInterest::Counter,
        /// Rumors: the k of the counter or coin.
        pub k: Count<1, 64> = Count::of(3),
        /// The node the first update is written at.
        pub origin: u32 = 0,
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum GossipLabAction {
    /// Write a new value of the key at `node`: a new rumor starts there.
    Write { node: NodeId },
}

/// Where a node stands in the epidemic of the newest update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Infection {
    Susceptible,
    Infective,
    Removed,
}

impl Infection {
    pub fn name(self) -> &'static str {
        match self {
            Infection::Susceptible => "susceptible",
            Infection::Infective => "infective",
            Infection::Removed => "removed",
        }
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipTotals {
    pub sent: u64,
}

/// The gossip lab.
#[derive(Debug, Clone)]
pub struct GossipLab {
    sim: Sim<GossipNode>,
    /// Values written so far (the next write carries one more).
    writes: u64,
}

impl GossipLab {
    pub fn sim_ref(&self) -> &Sim<GossipNode> {
        &self.sim
    }

    /// The newest version of the key any node holds: the one every node ends with.
    pub fn newest(&self) -> Option<Version> {
        (0..self.sim.node_count())
            .filter_map(|id| Some(self.sim.node(id)?.get(KEY)?.version))
            .max()
    }

    /// Node `id`'s state for the newest update (`None` while it is down).
    pub fn infection(&self, id: NodeId, newest: Option<Version>) -> Option<Infection> {
        let node = self.sim.node(id)?;
        if self.sim.status(id) == Some(NodeStatus::Crashed) {
            return None;
        }
        let holds = newest.is_some() && node.get(KEY).map(|s| s.version) == newest;
        Some(if !holds {
            Infection::Susceptible
        } else if node.config().mode.is_anti_entropy() || node.is_hot(KEY) {
            Infection::Infective
        } else {
            Infection::Removed
        })
    }

    /// Counts of (susceptible, infective, removed) among up nodes.
    pub fn census(&self) -> (u32, u32, u32) {
        let newest = self.newest();
        let mut c = (0, 0, 0);
        for id in 0..self.sim.node_count() {
            match self.infection(id, newest) {
                Some(Infection::Susceptible) => c.0 += 1,
                Some(Infection::Infective) => c.1 += 1,
                Some(Infection::Removed) => c.2 += 1,
                None => {}
            }
        }
        c
    }

    /// Whether gossip of the newest update is over for good: rumor mongering with no node
    /// hot on it and no rumor in flight.
    fn rumor_is_over(&self) -> bool {
        let mode = self.sim.node_config().mode;
        !mode.is_anti_entropy()
            && self.newest().is_some()
            && (0..self.sim.node_count()).all(|id| self.sim.node(id).is_none_or(|n| !n.is_hot(KEY)))
            && self
                .sim
                .in_flight()
                .iter()
                .all(|m| m.kind != "rumor" && m.kind != "feedback")
            && self
                .sim
                .history()
                .iter()
                .all(|op| !matches!(op.outcome, crate::sim::history::Outcome::Pending))
    }

    fn write(&mut self, node: NodeId) -> Result<()> {
        let value = self.writes + 1;
        self.sim
            .client_request(0, node, Put { key: KEY, value }, WRITE_TIMEOUT)?;
        self.writes = value;
        Ok(())
    }

    /// A version held with two different values, if any: (version, the two values, nodes).
    pub fn conflicting_version(&self) -> Option<(Version, u64, u64, NodeId, NodeId)> {
        conflicting_version(
            (0..self.sim.node_count()).filter_map(|id| Some((id, self.sim.node(id)?.store()))),
        )
    }
}

/// A (key, version) that two of `stores` hold with different values, if any.
fn conflicting_version<'a>(
    stores: impl Iterator<Item = (NodeId, &'a BTreeMap<u64, Stored>)>,
) -> Option<(Version, u64, u64, NodeId, NodeId)> {
    let mut seen: BTreeMap<(u64, Version), (u64, NodeId)> = BTreeMap::new();
    for (id, store) in stores {
        for (&key, &Stored { version, value }) in store {
            match seen.get(&(key, version)) {
                Some(&(v, other)) if v != value => return Some((version, v, value, other, id)),
                Some(_) => {}
                None => {
                    seen.insert((key, version), (value, id));
                }
            }
        }
    }
    None
}

impl Sampled for GossipLab {
    type Totals = GossipTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("susceptible", "nodes"),
            ("infective", "nodes"),
            ("removed", "nodes"),
            ("messages", "per s"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> GossipTotals {
        GossipTotals {
            sent: self.sim.net_stats().sent,
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &GossipTotals) -> Vec<f64> {
        let (s, i, r) = self.census();
        let secs = interval.as_secs_f64();
        let rate = if secs > 0.0 {
            self.totals().sent.saturating_sub(since.sent) as f64 / secs
        } else {
            0.0
        };
        vec![f64::from(s), f64::from(i), f64::from(r), rate]
    }
}

impl ClusterLab for GossipLab {
    const ID: &'static str = "coordination.gossip";
    type Node = GossipNode;
    type Config = GossipLabConfig;
    type Action = GossipLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &GossipLabConfig) -> Result<Self> {
        let nodes = c.nodes.get();
        if c.origin >= nodes {
            return Err(DistlabError::field(
                "origin",
                format!("node {} does not exist (there are {nodes})", c.origin),
            ));
        }
        let config = GossipConfig {
            mode: c.mode,
            fanout: c.fanout.get(),
            period: c.period_ms.duration(),
            feedback: c.feedback,
            loss: c.loss,
            k: c.k.get(),
            stagger_start: true,
        };
        let mut sim = Sim::new(c.sim_config(nodes), config)?;
        c.load_faults(&mut sim)?;
        let mut lab = GossipLab { sim, writes: 0 };
        lab.write(c.origin)?;
        Ok(lab)
    }

    fn sim(&self) -> &Sim<GossipNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<GossipNode> {
        &mut self.sim
    }

    fn act(&mut self, action: &GossipLabAction) -> Result<()> {
        match action {
            GossipLabAction::Write { node } => self.write(*node),
        }
    }

    fn role(&self, id: NodeId) -> String {
        self.infection(id, self.newest())
            .map_or("down", Infection::name)
            .to_string()
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        if let Some(s) = n.get(KEY) {
            fields.insert("value".into(), json!(s.value));
            fields.insert(
                "version".into(),
                json!({"stampUs": s.version.stamp, "origin": s.version.origin}),
            );
        }
        if let Some(c) = n.hot().get(&KEY) {
            fields.insert("lossOfInterestCount".into(), json!(c));
        }
        fields.insert("keys".into(), json!(n.store().len()));
        fields.insert("gossip".into(), json!(n.stats()));
    }

    fn panels(&self) -> Vec<Panel> {
        let (s, i, r) = self.census();
        let st = self.sim.net_stats();
        let up = s + i + r;
        let row = |k: &str, v: Value| vec![json!(k), v];
        vec![Panel::Table {
            title: "epidemic of the newest update".into(),
            columns: ["", "value"].map(String::from).to_vec(),
            rows: vec![
                row("susceptible", json!(s)),
                row("infective", json!(i)),
                row("removed", json!(r)),
                row(
                    "residue (susceptible / up)",
                    json!(if up > 0 {
                        f64::from(s) / f64::from(up)
                    } else {
                        0.0
                    }),
                ),
                row("messages sent", json!(st.sent)),
                row(
                    "messages per up node",
                    json!(if up > 0 {
                        st.sent as f64 / f64::from(up)
                    } else {
                        0.0
                    }),
                ),
                row("writes", json!(self.writes)),
            ],
        }]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const ONE_VALUE: &str = "one version, one value";
        const REACHES: &str = "the newest update reaches every up node";
        let one = match self.conflicting_version() {
            Some((v, a, b, n1, n2)) => InvariantStatus::violated(
                ONE_VALUE,
                format!(
                    "version ({} µs, n{}) holds {a} at n{n1} and {b} at n{n2}",
                    v.stamp, v.origin
                ),
                vec![n1, n2],
            ),
            None => InvariantStatus::holds(ONE_VALUE, "every version carries one value"),
        };
        let reaches = if self.rumor_is_over() {
            let newest = self.newest();
            let left: Vec<NodeId> = (0..self.sim.node_count())
                .filter(|&id| self.infection(id, newest) == Some(Infection::Susceptible))
                .collect();
            if left.is_empty() {
                InvariantStatus::holds(REACHES, "every up node holds it; the rumor is over")
            } else {
                InvariantStatus::violated(
                    REACHES,
                    format!(
                        "every monger lost interest with {} up nodes never told (the \
                         residue); anti-entropy or a larger k would reach them",
                        left.len()
                    ),
                    left,
                )
            }
        } else {
            InvariantStatus::holds(REACHES, "still spreading")
        };
        vec![one, reaches]
    }

    fn example_actions() -> Vec<ClusterAction<GossipLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(GossipLabAction::Write { node: 1 }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn run(config: GossipLabConfig, until_ms: u64) -> Cluster<GossipLab> {
        let mut lab = Cluster::<GossipLab>::new(&config).unwrap();
        while lab.step_until(Time::from_millis(until_ms)) {}
        lab
    }

    #[test]
    fn anti_entropy_reaches_everyone() {
        for mode in [GossipMode::Push, GossipMode::Pull, GossipMode::PushPull] {
            let lab = run(
                GossipLabConfig {
                    mode,
                    ..GossipLabConfig::default()
                },
                5_000,
            );
            let (s, i, r) = lab.census();
            assert_eq!((s, i, r), (0, 100, 0), "{mode:?}");
            assert!(lab.invariants().iter().all(|i| i.ok), "{mode:?}");
        }
    }

    #[test]
    fn a_blind_rumor_with_k_1_dies_out_with_a_residue_the_invariant_names() {
        let lab = run(
            GossipLabConfig {
                feedback: false,
                k: Count::of(1),
                ..GossipLabConfig::default()
            },
            10_000,
        );
        let (s, i, _) = lab.census();
        assert_eq!(i, 0);
        assert!(s > 0);
        let inv = lab.invariants();
        assert!(inv[0].ok);
        assert!(!inv[1].ok);
        assert_eq!(inv[1].nodes.len(), s as usize);
    }

    #[test]
    fn a_partitioned_node_catches_up_under_anti_entropy_after_the_heal() {
        let mut lab = Cluster::<GossipLab>::new(&GossipLabConfig {
            mode: GossipMode::PushPull,
            nodes: Count::of(20),
            ..GossipLabConfig::default()
        })
        .unwrap();
        lab.act(&ClusterAction::Fault(Fault::Partition {
            groups: vec![vec![19]],
        }))
        .unwrap();
        while lab.step_until(Time::from_millis(3_000)) {}
        assert_eq!(lab.census().0, 1, "n19 is cut off");
        lab.act(&ClusterAction::Fault(Fault::Heal)).unwrap();
        while lab.step_until(Time::from_millis(6_000)) {}
        assert_eq!(lab.census(), (0, 20, 0));
    }

    #[test]
    fn two_values_under_one_version_are_caught() {
        let lab = run(
            GossipLabConfig {
                mode: GossipMode::Push,
                nodes: Count::of(4),
                ..GossipLabConfig::default()
            },
            2_000,
        );
        assert!(lab.invariants()[0].ok);
        let stores: Vec<BTreeMap<u64, Stored>> = (0..4)
            .map(|id| lab.sim().node(id).unwrap().store().clone())
            .collect();
        assert!(stores.iter().all(|s| s.len() == 1));
        // A writer that reused a stamp for another value, as a clock gone back would make
        // one without the per-node stamp floor.
        let mut forged = stores.clone();
        if let Some(s) = forged[3].get_mut(&KEY) {
            s.value += 1;
        }
        let found = conflicting_version(forged.iter().enumerate().map(|(i, s)| (i as NodeId, s)));
        assert_eq!(found.map(|f| (f.3, f.4)), Some((0, 3)));
        assert!(
            conflicting_version(stores.iter().enumerate().map(|(i, s)| (i as NodeId, s))).is_none()
        );
    }
}
