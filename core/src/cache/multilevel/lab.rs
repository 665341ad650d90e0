//! Lab `cache.multilevel`: application nodes with an L1 each and a shared L2
//! ([`super::node`]). Users (client 0) read and write random keys at random application
//! nodes; the L2 invalidates the other L1s on every write. Every fault of the simulator is
//! an action: lose invalidations, cut an application node off the L2, crash one.
//!
//! The [`StaleReadChecker`] counts reads older than a write acknowledged before they
//! began, and how far behind each was. The bound the lab checks follows from the L1 TTL:
//! an L1 entry is filled from the L2 at most the network's max latency after the L2 read
//! it, every write after that read is acknowledged after it, and the entry is dropped
//! `l1Ttl` after its fill, so no read is behind by more than `l1Ttl` + max latency.
//! Without loss, partitions or crashes every invalidation lands within the max latency,
//! so none is behind by more than that.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::cache::multilevel::node::{
    LevelNode, LevelRequest, LevelResponse, MultilevelNodeConfig,
};
use crate::cache::patterns::node::entry_for;
use crate::cache::staleness::StaleReadChecker;
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::network::MAX_LATENCY_MS;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
use crate::sim::{Fault, LatencyModel, NetworkConfig, NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// The most application nodes.
pub const MAX_APPS: u32 = 16;
/// The largest key space.
pub const MAX_KEYS: u32 = 10_000;
const TRACE_TAIL: usize = 20_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const USERS: u32 = 0;

cluster_lab_config! {
    /// Configuration of the multilevel cache lab.
    pub struct MultilevelLabConfig {
        /// Application nodes, each with an L1 (the L2 is the node after them).
        pub apps: Count<1, { MAX_APPS }> = Count::of(3),
        /// Distinct keys, read and written uniformly.
        pub keys: Count<1, { MAX_KEYS }> = Count::of(20),
        /// User requests, each at a random application node.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 200.0 },
        /// Share of requests that write.
        pub write_probability: Probability = Probability::of(0.1),
        /// How long an L1 entry lives: the cap on staleness when invalidations are lost.
        pub l1_ttl_ms: Millis<1, 600_000> = Millis::of(500),
        /// Whether the L2 sends invalidations (off: only the TTL ends a stale L1 entry).
        pub invalidate: bool = true,
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum MultilevelLabAction {
    /// Read `key` at application node `node` now.
    Read {
        node: NodeId,
        key: u32,
    },
    /// Write a new version of `key` at application node `node` now.
    Write {
        node: NodeId,
        key: u32,
    },
    /// No more user requests (until `setArrivals`).
    StopRequests {},
    SetArrivals {
        arrivals: ArrivalProcess,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    key: u32,
    write: Option<u64>,
    began: Time,
}

/// What the users saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCounts {
    pub reads: u64,
    pub l1_hits: u64,
    pub l2_reads: u64,
    pub writes: u64,
    pub acked_writes: u64,
    pub timeouts: u64,
}

/// The multilevel cache lab.
#[derive(Debug, Clone)]
pub struct MultilevelLab {
    sim: Sim<LevelNode>,
    apps: u32,
    l1_ttl: Duration,
    feed: ArrivalFeed,
    requests_on: bool,
    arrival_tag: u64,
    rng: SimRng,
    keys: u32,
    write_probability: f64,
    versions: BTreeMap<u32, u64>,
    pending: BTreeMap<RequestId, Pending>,
    checker: StaleReadChecker,
    counts: LevelCounts,
    /// The largest max latency the network has had.
    max_latency: Duration,
    /// Whether a message has been lost, a link cut or an application node crashed.
    lossy: bool,
}

/// The longest one-way delay `network` can give a message (a heavy-tailed model's cut).
pub fn max_latency(network: &NetworkConfig, overrides: bool) -> Duration {
    let ms = match network.latency {
        _ if overrides => MAX_LATENCY_MS,
        LatencyModel::Constant { ms } => ms,
        LatencyModel::Uniform { max_ms, .. } => max_ms,
        _ => MAX_LATENCY_MS,
    };
    let reorder = if network.reorder.get() > 0.0 {
        network.reorder_delay_ms.get()
    } else {
        0.0
    };
    Duration::from_micros(libm::ceil((ms + reorder) * 1_000.0) as u64)
}

impl MultilevelLab {
    pub fn counts(&self) -> LevelCounts {
        self.counts
    }

    pub fn checker(&self) -> &StaleReadChecker {
        &self.checker
    }

    /// The staleness bound: L1 TTL + the largest max latency so far.
    pub fn bound(&self) -> Duration {
        self.l1_ttl + self.max_latency
    }

    pub fn max_latency(&self) -> Duration {
        self.max_latency
    }

    /// Whether loss, a partition or an application node's crash has happened.
    pub fn lossy(&self) -> bool {
        self.lossy
    }

    fn schedule_arrival(&mut self) {
        self.arrival_tag += 1;
        if self.requests_on {
            self.sim
                .schedule_external(self.feed.next_at(), self.arrival_tag);
        }
    }

    fn arrive(&mut self, tag: u64) {
        if tag != self.arrival_tag || !self.requests_on {
            return;
        }
        self.feed.take();
        let key = self.rng.below(u64::from(self.keys)) as u32;
        let node = self.rng.below(u64::from(self.apps)) as NodeId;
        let _ = if self.rng.chance(self.write_probability) {
            self.write(node, key)
        } else {
            self.read(node, key)
        };
        self.schedule_arrival();
    }

    fn read(&mut self, node: NodeId, key: u32) -> Result<()> {
        let id = self
            .sim
            .client_request(USERS, node, LevelRequest::Get { key }, CLIENT_TIMEOUT)?;
        self.counts.reads += 1;
        let began = self.sim.now();
        self.pending.insert(
            id,
            Pending {
                key,
                write: None,
                began,
            },
        );
        Ok(())
    }

    fn write(&mut self, node: NodeId, key: u32) -> Result<()> {
        let version = self.versions.get(&key).copied().unwrap_or(0) + 1;
        let entry = entry_for(key, version);
        let id = self.sim.client_request(
            USERS,
            node,
            LevelRequest::Put { key, entry },
            CLIENT_TIMEOUT,
        )?;
        self.versions.insert(key, version);
        self.counts.writes += 1;
        let began = self.sim.now();
        self.pending.insert(
            id,
            Pending {
                key,
                write: Some(version),
                began,
            },
        );
        Ok(())
    }

    fn collect_replies(&mut self) {
        let ended: Vec<(RequestId, Pending)> = self
            .pending
            .iter()
            .filter(|(r, _)| {
                self.sim
                    .history()
                    .get(**r as usize)
                    .is_some_and(|op| !matches!(op.outcome, Outcome::Pending))
            })
            .map(|(r, p)| (*r, *p))
            .collect();
        for (request, p) in ended {
            self.pending.remove(&request);
            let outcome = self
                .sim
                .history()
                .get(request as usize)
                .map(|o| o.outcome.clone());
            match outcome {
                Some(Outcome::Ok { value, at }) => match (value, p.write) {
                    (LevelResponse::L1Hit(e), None) => {
                        self.counts.l1_hits += 1;
                        self.checker.read(p.key, p.began, e.version);
                    }
                    (LevelResponse::L2(e), None) => {
                        self.counts.l2_reads += 1;
                        self.checker.read(p.key, p.began, e.version);
                    }
                    (LevelResponse::Written, Some(v)) => {
                        self.counts.acked_writes += 1;
                        self.checker.write_acked(p.key, v, at);
                    }
                    _ => {}
                },
                _ => self.counts.timeouts += 1,
            }
        }
    }

    /// Notes the network's max latency and whether anything could lose an invalidation.
    fn watch_network(&mut self) {
        let net = self.sim.network();
        let m = max_latency(net.config(), net.has_link_latency_overrides());
        self.max_latency = self.max_latency.max(m);
        if self.lossy {
            return;
        }
        let l2 = self.apps;
        let cut = (0..self.apps).any(|a| !net.connected(l2, a) || !net.connected(a, l2));
        let crashed = (0..self.apps).any(|a| self.sim.node(a).is_none() || self.sim.boots(a) > 1);
        self.lossy = net.config().loss.get() > 0.0 || cut || crashed;
    }

    fn hit_ratio(&self) -> f64 {
        let done = self.counts.l1_hits + self.counts.l2_reads;
        if done == 0 {
            0.0
        } else {
            self.counts.l1_hits as f64 / done as f64
        }
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelTotals {
    reads: u64,
    l1_hits: u64,
    stale: u64,
}

impl Sampled for MultilevelLab {
    type Totals = LevelTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("reads", "reads/s"),
            ("L1 hit ratio", "fraction"),
            ("stale reads", "reads/s"),
            ("furthest behind", "ms"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> LevelTotals {
        LevelTotals {
            reads: self.counts.l1_hits + self.counts.l2_reads,
            l1_hits: self.counts.l1_hits,
            stale: self.checker.stale_reads(),
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &LevelTotals) -> Vec<f64> {
        let now = self.totals();
        let reads = now.reads.saturating_sub(since.reads);
        vec![
            per_second(reads, interval),
            if reads == 0 {
                0.0
            } else {
                now.l1_hits.saturating_sub(since.l1_hits) as f64 / reads as f64
            },
            per_second(now.stale.saturating_sub(since.stale), interval),
            self.checker.oldest().map_or(0.0, |s| s.age.as_millis_f64()),
        ]
    }
}

impl ClusterLab for MultilevelLab {
    const ID: &'static str = "cache.multilevel";
    type Node = LevelNode;
    type Config = MultilevelLabConfig;
    type Action = MultilevelLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &MultilevelLabConfig) -> Result<Self> {
        let apps = c.apps.get();
        let node_config = MultilevelNodeConfig {
            apps,
            l1_ttl: c.l1_ttl_ms.duration(),
            invalidate: c.invalidate,
        };
        let sim_config = SimConfig {
            clients: 1,
            ..c.sim_config(apps + 1)
        };
        let mut sim = Sim::new(sim_config, node_config)?;
        c.load_faults(&mut sim)?;
        let feed = ArrivalFeed::new(c.seed, &c.arrivals, Time::ZERO)?;
        let mut lab = MultilevelLab {
            sim,
            apps,
            l1_ttl: node_config.l1_ttl,
            feed,
            requests_on: true,
            arrival_tag: 0,
            rng: SimRng::derive(c.seed, 0x11e2),
            keys: c.keys.get(),
            write_probability: c.write_probability.get(),
            versions: BTreeMap::new(),
            pending: BTreeMap::new(),
            checker: StaleReadChecker::default(),
            counts: LevelCounts::default(),
            max_latency: Duration::ZERO,
            lossy: false,
        };
        lab.watch_network();
        lab.schedule_arrival();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<LevelNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<LevelNode> {
        &mut self.sim
    }

    fn step(&mut self, until: Time) -> bool {
        match self.sim.step_until(until) {
            Some(Stepped::External(tag)) => {
                self.arrive(tag);
                true
            }
            Some(Stepped::Event) => true,
            None => false,
        }
    }

    fn observe(&mut self) {
        self.collect_replies();
        self.watch_network();
    }

    fn act(&mut self, action: &MultilevelLabAction) -> Result<()> {
        match action {
            MultilevelLabAction::Read { node, key } => {
                self.check(*node, *key)?;
                self.read(*node, *key)?;
            }
            MultilevelLabAction::Write { node, key } => {
                self.check(*node, *key)?;
                self.write(*node, *key)?;
            }
            MultilevelLabAction::StopRequests {} => {
                self.requests_on = false;
                self.arrival_tag += 1;
            }
            MultilevelLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(arrivals, self.sim.now())?;
                self.requests_on = true;
                self.schedule_arrival();
            }
        }
        Ok(())
    }

    fn label(&self, id: NodeId) -> String {
        if id == self.apps {
            "L2".into()
        } else {
            format!("app {id}")
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        let s = n.stats();
        fields.insert("cached".into(), json!(n.cached()));
        if n.is_l2() {
            fields.insert("writes".into(), json!(s.writes));
            fields.insert("invalidationsSent".into(), json!(s.invalidations_sent));
        } else {
            fields.insert("gets".into(), json!(s.gets));
            fields.insert("l1Hits".into(), json!(s.l1_hits));
            fields.insert("fetches".into(), json!(s.fetches));
            fields.insert("invalidations".into(), json!(s.invalidations));
            fields.insert("invalidated".into(), json!(s.invalidated));
            fields.insert("refusedFills".into(), json!(s.refused_fills));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let c = self.counts;
        let oldest = self.checker.oldest();
        let rows = (0..self.apps)
            .map(|a| {
                let n = self.sim.node(a);
                let s = n.map(|n| n.stats()).unwrap_or_default();
                vec![
                    json!(format!("app {a}")),
                    json!(n.map_or(0, |n| n.cached())),
                    json!(s.gets),
                    json!(s.l1_hits),
                    json!(s.invalidations),
                    json!(s.invalidated),
                    json!(s.refused_fills),
                ]
            })
            .collect();
        vec![
            Panel::Table {
                title: "users".into(),
                columns: [
                    "reads",
                    "L1 hit ratio",
                    "stale reads",
                    "furthest behind ms",
                    "bound ms (L1 TTL + max latency)",
                    "writes acknowledged",
                    "timeouts",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    json!(c.reads),
                    json!(self.hit_ratio()),
                    json!(self.checker.stale_reads()),
                    json!(oldest.map_or(0.0, |s| s.age.as_millis_f64())),
                    json!(self.bound().as_millis_f64()),
                    json!(c.acked_writes),
                    json!(c.timeouts),
                ]],
            },
            Panel::Table {
                title: "L1 caches".into(),
                columns: [
                    "node",
                    "entries",
                    "gets",
                    "L1 hits",
                    "invalidations",
                    "entries invalidated",
                    "fills refused",
                ]
                .map(String::from)
                .to_vec(),
                rows,
            },
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        vec![
            staleness_within(
                "no read is behind by more than the L1 TTL + max latency",
                &self.checker,
                self.bound(),
            ),
            if self.lossy {
                InvariantStatus::holds(
                    "without loss, partitions or crashes, none by more than the max latency",
                    "not checked: messages were lost, cut or a node crashed",
                )
            } else {
                staleness_within(
                    "without loss, partitions or crashes, none by more than the max latency",
                    &self.checker,
                    self.max_latency,
                )
            },
        ]
    }

    fn example_actions() -> Vec<ClusterAction<MultilevelLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.extend(
            [
                MultilevelLabAction::Read { node: 0, key: 1 },
                MultilevelLabAction::Write { node: 1, key: 1 },
                MultilevelLabAction::StopRequests {},
                MultilevelLabAction::SetArrivals {
                    arrivals: ArrivalProcess::Poisson { rate_per_sec: 20.0 },
                },
            ]
            .map(ClusterAction::Lab),
        );
        v
    }
}

impl MultilevelLab {
    fn check(&self, node: NodeId, key: u32) -> Result<()> {
        if node >= self.apps {
            return Err(DistlabError::field(
                "node",
                format!(
                    "must be an application node (below {}), got {node}",
                    self.apps
                ),
            ));
        }
        if key >= self.keys {
            return Err(DistlabError::field(
                "key",
                format!("must be below the lab's keys ({}), got {key}", self.keys),
            ));
        }
        Ok(())
    }
}

/// No stale read is further behind than `bound`.
pub fn staleness_within(
    name: &str,
    checker: &StaleReadChecker,
    bound: Duration,
) -> InvariantStatus {
    match checker.oldest() {
        Some(s) if s.age > bound => InvariantStatus::violated(
            name,
            format!(
                "key {} read version {} at {} ms, {} ms after version {} was acknowledged \
                 (bound {} ms)",
                s.key,
                s.returned,
                s.began.as_millis_f64(),
                s.age.as_millis_f64(),
                s.newest,
                bound.as_millis_f64()
            ),
            Vec::new(),
        ),
        oldest => InvariantStatus::holds(
            name,
            format!(
                "{} stale reads of {}, furthest behind {} ms (bound {} ms)",
                checker.stale_reads(),
                checker.reads(),
                oldest.map_or(0.0, |s| s.age.as_millis_f64()),
                bound.as_millis_f64()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    #[test]
    fn the_bounds_can_fail() {
        let mut c = StaleReadChecker::default();
        c.write_acked(1, 1, Time::from_millis(10));
        let name = "bound";
        assert!(staleness_within(name, &c, Duration::from_millis(5)).ok);
        c.read(1, Time::from_millis(13), 0);
        assert!(staleness_within(name, &c, Duration::from_millis(5)).ok);
        c.read(1, Time::from_millis(16), 0);
        let s = staleness_within(name, &c, Duration::from_millis(5));
        assert!(!s.ok, "{s:?}");
    }

    #[test]
    fn max_latency_follows_the_network() {
        let mut n = NetworkConfig::default();
        assert_eq!(max_latency(&n, false), Duration::from_millis(5));
        n.reorder = Probability::of(0.1);
        assert_eq!(max_latency(&n, false), Duration::from_millis(15));
        assert_eq!(max_latency(&n, true).as_millis_f64(), MAX_LATENCY_MS + 10.0);
    }

    #[test]
    fn a_crashed_app_node_comes_back_with_an_empty_l1() {
        let mut lab = Cluster::<MultilevelLab>::new(&MultilevelLabConfig {
            seed: 3,
            ..Default::default()
        })
        .unwrap();
        while lab.step_until(Time::from_millis(1_000)) {}
        assert!(lab.lab().sim().node(0).is_some_and(|n| n.cached() > 0));
        lab.act(&ClusterAction::Fault(Fault::Crash { node: 0 }))
            .unwrap();
        lab.act(&ClusterAction::Fault(Fault::Restart { node: 0 }))
            .unwrap();
        assert_eq!(lab.lab().sim().node(0).map(|n| n.cached()), Some(0));
        assert!(lab.lab().lossy());
        while lab.step_until(Time::from_millis(2_000)) {}
        assert!(lab.invariants()[0].ok, "{:?}", lab.invariants());
    }
}
