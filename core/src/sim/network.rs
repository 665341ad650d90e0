//! The network model (catalog id `sim.network`): latency distributions, per-link
//! overrides, loss, duplication, reordering, one-way and two-way partitions.
//!
//! Links are FIFO by default, like a TCP connection: a message never overtakes an earlier
//! one on the same directed link, whatever latency it drew. Reordering and duplication
//! happen only when their probabilities are set. Long-tailed latency follows the usual
//! log-normal and Pareto shapes used to model datacenter RPC tails (Dean & Barroso,
//! "The Tail at Scale", 2013).

use rustc_hash::{FxHashMap, FxHashSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::bounded::{Millis, Probability};
use crate::error::{DistlabError, Result, check_range};
use crate::rng::SimRng;
use crate::sim::node::NodeId;
use crate::time::Duration;

/// The longest one-way latency any model may produce: 60 s. Heavy tails are cut here so
/// that one unlucky draw cannot stall a run for hours of simulated time.
pub const MAX_LATENCY_MS: f64 = 60_000.0;

/// A one-way latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LatencyModel {
    /// Always the same.
    Constant {
        #[serde(rename = "ms")]
        ms: f64,
    },
    /// Uniform between `minMs` and `maxMs`.
    #[serde(rename_all = "camelCase")]
    Uniform { min_ms: f64, max_ms: f64 },
    /// `minMs` plus an exponential with mean `meanMs`.
    #[serde(rename_all = "camelCase")]
    Exponential { min_ms: f64, mean_ms: f64 },
    /// Log-normal with the given median and shape σ: a long tail.
    #[serde(rename_all = "camelCase")]
    LogNormal { median_ms: f64, sigma: f64 },
    /// Pareto with scale (the minimum) and shape α: a heavier tail the smaller α is.
    #[serde(rename_all = "camelCase")]
    Pareto { scale_ms: f64, shape: f64 },
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel::Uniform {
            min_ms: 1.0,
            max_ms: 5.0,
        }
    }
}

impl LatencyModel {
    /// Checks every parameter, naming it (prefixed by `field`) if it is wrong.
    pub fn validate(&self, field: &str) -> Result<()> {
        let f = |name: &str| format!("{field}.{name}");
        match *self {
            LatencyModel::Constant { ms } => {
                check_range(&f("ms"), ms, 0.0, MAX_LATENCY_MS)?;
            }
            LatencyModel::Uniform { min_ms, max_ms } => {
                check_range(&f("minMs"), min_ms, 0.0, MAX_LATENCY_MS)?;
                check_range(&f("maxMs"), max_ms, 0.0, MAX_LATENCY_MS)?;
                if max_ms < min_ms {
                    return Err(DistlabError::field(
                        f("maxMs"),
                        format!("must be at least minMs ({min_ms}), got {max_ms}"),
                    ));
                }
            }
            LatencyModel::Exponential { min_ms, mean_ms } => {
                check_range(&f("minMs"), min_ms, 0.0, MAX_LATENCY_MS)?;
                check_range(&f("meanMs"), mean_ms, 0.0, MAX_LATENCY_MS)?;
            }
            LatencyModel::LogNormal { median_ms, sigma } => {
                check_range(&f("medianMs"), median_ms, 0.001, MAX_LATENCY_MS)?;
                check_range(&f("sigma"), sigma, 0.0, 5.0)?;
            }
            LatencyModel::Pareto { scale_ms, shape } => {
                check_range(&f("scaleMs"), scale_ms, 0.001, MAX_LATENCY_MS)?;
                check_range(&f("shape"), shape, 0.1, 100.0)?;
            }
        }
        Ok(())
    }

    /// Draws one latency. Constant latency draws nothing from `rng`.
    pub fn sample(&self, rng: &mut SimRng) -> Duration {
        let ms = match *self {
            LatencyModel::Constant { ms } => ms,
            LatencyModel::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * rng.next_f64(),
            LatencyModel::Exponential { min_ms, mean_ms } => min_ms + rng.exponential(mean_ms),
            LatencyModel::LogNormal { median_ms, sigma } => {
                median_ms * libm::exp(sigma * rng.standard_normal())
            }
            LatencyModel::Pareto { scale_ms, shape } => {
                scale_ms / libm::pow(rng.next_f64_open0(), 1.0 / shape)
            }
        };
        Duration(libm::round(ms.clamp(0.0, MAX_LATENCY_MS) * 1_000.0) as u64)
    }

    /// The mean of the distribution (before the cut at [`MAX_LATENCY_MS`]), for labels.
    pub fn mean_ms(&self) -> f64 {
        match *self {
            LatencyModel::Constant { ms } => ms,
            LatencyModel::Uniform { min_ms, max_ms } => (min_ms + max_ms) / 2.0,
            LatencyModel::Exponential { min_ms, mean_ms } => min_ms + mean_ms,
            LatencyModel::LogNormal { median_ms, sigma } => {
                median_ms * libm::exp(sigma * sigma / 2.0)
            }
            LatencyModel::Pareto { scale_ms, shape } if shape > 1.0 => {
                scale_ms * shape / (shape - 1.0)
            }
            LatencyModel::Pareto { .. } => f64::INFINITY,
        }
    }
}

/// The knobs of the network that apply to every link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct NetworkConfig {
    pub latency: LatencyModel,
    /// Probability that a message is lost.
    pub loss: Probability,
    /// Probability that a message is delivered twice. The copy draws its own latency
    /// from the same model and no more (with a constant latency it arrives with the
    /// original's delay); it is not held to FIFO order, so with a varying latency it may
    /// arrive after later messages. That is duplication, not reordering.
    pub duplicate: Probability,
    /// Probability that a message leaves the link's FIFO order, delayed by up to
    /// `reorderDelayMs` more, so that later messages may overtake it.
    pub reorder: Probability,
    pub reorder_delay_ms: Millis<0, 60_000>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency: LatencyModel::default(),
            loss: Probability::NEVER,
            duplicate: Probability::NEVER,
            reorder: Probability::NEVER,
            reorder_delay_ms: Millis::of(10),
        }
    }
}

impl NetworkConfig {
    /// Checks what the field types cannot: the latency model's parameters.
    pub fn validate(&self, field: &str) -> Result<()> {
        self.latency.validate(&format!("{field}.latency"))
    }
}

/// What the network decided for one message at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Deliver after `delay`, and a second copy after `duplicate` if set.
    Deliver {
        delay: Duration,
        duplicate: Option<Duration>,
    },
    Lost,
    Partitioned,
}

/// The network's state: configuration, partitions, and the FIFO bookkeeping per link.
#[derive(Debug, Clone)]
pub struct Network {
    config: NetworkConfig,
    link_latency: BTreeMap<(NodeId, NodeId), LatencyModel>,
    /// Partition group of each node: messages between different groups are dropped.
    group: Vec<u32>,
    /// The group of nodes a partition did not name (and of nodes added during it).
    rest_group: u32,
    /// Directed links cut by a one-way partition.
    one_way: FxHashSet<(NodeId, NodeId)>,
    /// Earliest time the next in-order message on a directed link may arrive, as a delay
    /// floor relative to the absolute clock (µs).
    fifo_floor: FxHashMap<(u64, u64), u64>,
}

impl Network {
    pub fn new(config: NetworkConfig, nodes: usize) -> Result<Self> {
        config.validate("network")?;
        Ok(Network {
            config,
            link_latency: BTreeMap::new(),
            group: vec![0; nodes],
            rest_group: 0,
            one_way: FxHashSet::default(),
            fifo_floor: FxHashMap::default(),
        })
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: NetworkConfig) -> Result<()> {
        config.validate("network")?;
        self.config = config;
        Ok(())
    }

    pub(crate) fn add_node(&mut self) {
        self.group.push(self.rest_group);
    }

    /// Overrides the latency of the directed link `from → to`; `None` removes the override.
    pub fn set_link_latency(
        &mut self,
        from: NodeId,
        to: NodeId,
        model: Option<LatencyModel>,
    ) -> Result<()> {
        self.check_node("from", from)?;
        self.check_node("to", to)?;
        match model {
            Some(m) => {
                m.validate("latency")?;
                self.link_latency.insert((from, to), m);
            }
            None => {
                self.link_latency.remove(&(from, to));
            }
        }
        Ok(())
    }

    /// Whether any directed link has a latency of its own (set by `SetLinkLatency`).
    pub fn has_link_latency_overrides(&self) -> bool {
        !self.link_latency.is_empty()
    }

    fn check_node(&self, field: &str, node: NodeId) -> Result<()> {
        if (node as usize) < self.group.len() {
            Ok(())
        } else {
            Err(DistlabError::field(
                field,
                format!(
                    "node {node} does not exist (the cluster has {} nodes)",
                    self.group.len()
                ),
            ))
        }
    }

    /// Splits the nodes into groups that cannot talk to each other. Nodes not named form
    /// one more group together. Replaces any earlier two-way partition.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) -> Result<()> {
        let mut seen = vec![false; self.group.len()];
        for g in groups {
            for &n in g {
                self.check_node("groups", n)?;
                let slot = seen.get_mut(n as usize).ok_or_else(|| {
                    DistlabError::field("groups", format!("node {n} does not exist"))
                })?;
                if *slot {
                    return Err(DistlabError::field(
                        "groups",
                        format!("node {n} appears in more than one group"),
                    ));
                }
                *slot = true;
            }
        }
        let rest = groups.len() as u32 + 1;
        self.rest_group = rest;
        self.group.iter_mut().for_each(|g| *g = rest);
        for (i, g) in groups.iter().enumerate() {
            for &n in g {
                if let Some(slot) = self.group.get_mut(n as usize) {
                    *slot = i as u32 + 1;
                }
            }
        }
        Ok(())
    }

    /// Cuts every directed link from a node in `from` to a node in `to`.
    pub fn partition_one_way(&mut self, from: &[NodeId], to: &[NodeId]) -> Result<()> {
        for &a in from {
            self.check_node("from", a)?;
        }
        for &b in to {
            self.check_node("to", b)?;
        }
        for &a in from {
            for &b in to {
                if a != b {
                    self.one_way.insert((a, b));
                }
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.rest_group = 0;
        self.group.iter_mut().for_each(|g| *g = 0);
        self.one_way.clear();
    }

    /// Whether `from` can currently reach `to`.
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        if from == to {
            return true;
        }
        let same_group = self.group.get(from as usize) == self.group.get(to as usize);
        same_group && (self.one_way.is_empty() || !self.one_way.contains(&(from, to)))
    }

    /// Two-way partition groups for drawing (empty when healed), each sorted.
    pub fn groups(&self) -> Vec<Vec<NodeId>> {
        let mut by_group: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
        for (n, g) in self.group.iter().enumerate() {
            by_group.entry(*g).or_default().push(n as NodeId);
        }
        if by_group.len() <= 1 {
            return Vec::new();
        }
        by_group.into_values().collect()
    }

    /// Directed links cut by one-way partitions, sorted.
    pub fn one_way_cuts(&self) -> Vec<(NodeId, NodeId)> {
        let mut v: Vec<_> = self.one_way.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Decides the fate of a message sent at `now_us` on the directed link `link`
    /// (endpoints encoded by the engine; `nodes` is `Some` for node-to-node links, which
    /// partitions and per-link latencies apply to).
    pub(crate) fn route(
        &mut self,
        rng: &mut SimRng,
        now_us: u64,
        link: (u64, u64),
        nodes: Option<(NodeId, NodeId)>,
    ) -> Fate {
        if let Some((a, b)) = nodes
            && !self.connected(a, b)
        {
            return Fate::Partitioned;
        }
        if rng.chance(self.config.loss.get()) {
            return Fate::Lost;
        }
        let model = match nodes {
            Some(pair) if !self.link_latency.is_empty() => {
                self.link_latency.get(&pair).unwrap_or(&self.config.latency)
            }
            _ => &self.config.latency,
        };
        let mut delay = model.sample(rng);
        // The copy is a packet of its own: it draws its own latency from the link's model
        // and is not held to the link's FIFO order (with a varying latency it may land
        // after later messages — duplication, not reordering; with a constant one it lands
        // with the same delay as the original).
        let duplicate = rng
            .chance(self.config.duplicate.get())
            .then(|| model.sample(rng));
        if rng.chance(self.config.reorder.get()) {
            // Out of FIFO order: it neither waits for earlier messages nor holds back later ones.
            delay = delay + self.extra_reorder_delay(rng);
        } else {
            let arrival = now_us.saturating_add(delay.0);
            let floor = self.fifo_floor.entry(link).or_insert(0);
            let arrival = arrival.max(*floor);
            *floor = arrival;
            delay = Duration(arrival - now_us);
        }
        Fate::Deliver { delay, duplicate }
    }

    fn extra_reorder_delay(&self, rng: &mut SimRng) -> Duration {
        let max_us = (self.config.reorder_delay_ms.get() * 1_000.0) as u64;
        Duration(rng.below(max_us.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_validate_their_fields() {
        let bad = LatencyModel::Uniform {
            min_ms: 5.0,
            max_ms: 1.0,
        };
        let e = bad.validate("latency").unwrap_err().to_string();
        assert!(e.contains("latency.maxMs"), "{e}");
        let nan = LatencyModel::Constant { ms: f64::NAN };
        assert!(nan.validate("l").is_err());
        // The bound is the field's type's; naming the field is the lab layer's job
        // (lab::json), which sim/ does not import: the path is checked here.
        let e =
            serde_path_to_error::deserialize::<_, NetworkConfig>(&serde_json::json!({"loss": 1.5}))
                .unwrap_err();
        assert_eq!(e.path().to_string(), "loss");
    }

    #[test]
    fn samples_stay_in_bounds_and_heavy_tails_are_cut() {
        let mut rng = SimRng::new(9);
        let u = LatencyModel::Uniform {
            min_ms: 2.0,
            max_ms: 4.0,
        };
        let p = LatencyModel::Pareto {
            scale_ms: 1.0,
            shape: 0.2,
        };
        for _ in 0..10_000 {
            let d = u.sample(&mut rng).0;
            assert!((2_000..=4_000).contains(&d));
            assert!(p.sample(&mut rng).0 <= (MAX_LATENCY_MS * 1_000.0) as u64);
        }
    }

    #[test]
    fn partition_groups_and_rest() {
        let mut n = Network::new(NetworkConfig::default(), 5).unwrap();
        n.partition(&[vec![0, 1]]).unwrap();
        assert!(n.connected(0, 1));
        assert!(!n.connected(0, 2));
        assert!(n.connected(2, 4));
        assert_eq!(n.groups(), vec![vec![0, 1], vec![2, 3, 4]]);
        assert!(n.partition(&[vec![0], vec![0]]).is_err());
        assert!(n.partition(&[vec![7]]).is_err());
        n.heal();
        assert!(n.groups().is_empty());
        n.partition_one_way(&[0], &[1, 2]).unwrap();
        assert!(!n.connected(0, 1) && n.connected(1, 0));
    }
}
