//! Lab `cache.distributed`: cache nodes ([`super::node`]) on a consistent-hash ring with a
//! replication factor, under the simulator's faults. An application (client 0) reads keys
//! from the node that owns them on the newest ring, fills a miss from the backing store
//! (cache-aside) and writes a new version through with `writeProbability`; the operator
//! (client 1) adds and removes nodes, which sends every node the new membership.
//!
//! The view draws the operator's ring, counts per ring change the keys whose preference
//! list changed and how long the migration took to settle, and counts the misses and
//! hinted reads during migrations. The invariant is the point of the migration: once it
//! has settled (every live node on the newest ring, every push acknowledged), each key's
//! newest value is on every live node of its N-node preference list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

use crate::balance::consistent_hash::HashRing;
use crate::bounded::{Count, Millis, Probability};
use crate::cache::distributed::node::{
    CacheNode, CacheNodeConfig, CacheRequest, CacheResponse, Membership, Versioned, build_ring,
    misplaced, preference, ring_name,
};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel, RingArc, RingPoint};
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
use crate::sim::{Fault, NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// The most cache nodes (members and spares) the lab runs.
pub const MAX_CACHE_NODES: u32 = 16;
/// The most replicas of a key.
pub const MAX_REPLICAS: u32 = 5;
/// The largest key space.
pub const MAX_KEYS: u32 = 10_000;
const TRACE_TAIL: usize = 20_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the operator waits for a node to take a membership before sending it again.
const MEMBERS_TIMEOUT: Duration = Duration::from_millis(500);
const APP: u32 = 0;
const OPERATOR: u32 = 1;
/// Points drawn on the ring at most.
const DRAWN_POINTS: usize = 1_024;
/// Ring changes kept for the table.
const CHANGES_KEPT: usize = 16;

cluster_lab_config! {
    /// Configuration of the distributed cache lab.
    pub struct DistributedCacheLabConfig {
        /// Cache nodes on the ring at the start.
        pub nodes: Count<1, { MAX_CACHE_NODES }> = Count::of(4),
        /// Nodes holding each key (its preference list).
        pub replicas: Count<1, { MAX_REPLICAS }> = Count::of(2),
        /// Points each node places on the ring.
        pub virtual_nodes: Count<1, 1_000> = Count::of(50),
        /// Distinct keys the application reads (uniformly).
        pub keys: Count<1, { MAX_KEYS }> = Count::of(200),
        /// Application requests.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 100.0 },
        /// Share of requests that write a new version through the cache.
        pub write_probability: Probability = Probability::of(0.1),
        /// How often a node re-sends unacknowledged pushes and gossips the membership.
        pub retry_ms: Millis<1, 10_000> = Millis::of(100),
        /// How long after a ring change a miss is retried at the previous owner.
        pub hint_window_ms: Millis<0, 60_000> = Millis::of(2_000),
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
pub enum DistributedCacheLabAction {
    /// Put a node on the ring (a spare if one is up, else a new node).
    AddNode {},
    /// Take `node` off the ring; its keys migrate to the new owners.
    RemoveNode {
        node: NodeId,
    },
    /// Read `key` now.
    Get {
        key: u32,
    },
    /// Write a new version of `key` now.
    Put {
        key: u32,
    },
    /// No more application requests (until `setArrivals`): migrations settle.
    StopRequests {},
    SetArrivals {
        arrivals: ArrivalProcess,
    },
}

/// One ring change and its migration.
#[derive(Debug, Clone, PartialEq)]
pub struct RingChangeRow {
    pub epoch: u64,
    pub what: String,
    /// Keys cached somewhere when it happened.
    pub keys: u64,
    /// Of those, keys whose preference list changed (what has to move).
    pub moved: u64,
    /// Of those, keys whose first owner changed (where reads now go).
    pub owner_changed: u64,
    pub at: Time,
    pub settled_at: Option<Time>,
    pub misses: u64,
    pub hinted_hits: u64,
}

/// What the application sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    pub gets: u64,
    pub hits: u64,
    pub hinted_hits: u64,
    pub misses: u64,
    pub misses_migrating: u64,
    /// Hits older than the backing store's version.
    pub stale_hits: u64,
    pub writes: u64,
    pub timeouts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Get {
        key: u32,
        node: NodeId,
    },
    /// The operator's membership of `epoch`, sent to `node`.
    Members {
        node: NodeId,
        epoch: u64,
    },
    Other,
}

/// The distributed cache lab.
#[derive(Debug, Clone)]
pub struct DistributedCacheLab {
    sim: Sim<CacheNode>,
    node_config: CacheNodeConfig,
    feed: ArrivalFeed,
    requests_on: bool,
    arrival_tag: u64,
    rng: SimRng,
    keys: u32,
    write_probability: f64,
    /// The backing store: every key's newest version (version 1 until written).
    db: BTreeMap<u32, Versioned>,
    /// The operator's membership and ring.
    membership: Membership,
    ring: HashRing,
    pending: BTreeMap<RequestId, Pending>,
    counts: ClientCounts,
    changes: VecDeque<RingChangeRow>,
}

impl DistributedCacheLab {
    pub fn counts(&self) -> ClientCounts {
        self.counts
    }

    pub fn changes(&self) -> &VecDeque<RingChangeRow> {
        &self.changes
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    fn db_entry(&self, key: u32) -> Versioned {
        self.db.get(&key).copied().unwrap_or(Versioned {
            version: 1,
            value: u64::from(key),
        })
    }

    fn owner(&self, key: u32) -> Option<NodeId> {
        preference(&self.ring, key, 1).first().copied()
    }

    fn schedule_arrival(&mut self) {
        self.arrival_tag += 1;
        if self.requests_on {
            self.sim
                .schedule_external(self.feed.next_at(), self.arrival_tag);
        }
    }

    fn get(&mut self, key: u32) -> Result<()> {
        let node = self
            .owner(key)
            .ok_or_else(|| DistlabError::InvalidState("the ring has no nodes".into()))?;
        let id = self
            .sim
            .client_request(APP, node, CacheRequest::Get { key }, CLIENT_TIMEOUT)?;
        self.pending.insert(id, Pending::Get { key, node });
        self.counts.gets += 1;
        Ok(())
    }

    fn put(&mut self, key: u32, entry: Versioned) -> Result<()> {
        let node = self
            .owner(key)
            .ok_or_else(|| DistlabError::InvalidState("the ring has no nodes".into()))?;
        let id =
            self.sim
                .client_request(APP, node, CacheRequest::Put { key, entry }, CLIENT_TIMEOUT)?;
        self.pending.insert(id, Pending::Other);
        Ok(())
    }

    /// A write: the backing store takes a new version, the cache gets it written through.
    fn write(&mut self, key: u32) -> Result<()> {
        let entry = Versioned {
            version: self.db_entry(key).version + 1,
            value: self.rng.next_u64() >> 16,
        };
        self.put(key, entry)?;
        self.db.insert(key, entry);
        self.counts.writes += 1;
        Ok(())
    }

    fn arrive(&mut self, tag: u64) {
        if tag != self.arrival_tag || !self.requests_on {
            return;
        }
        self.feed.take();
        let key = self.rng.below(u64::from(self.keys)) as u32;
        // Cannot fail: the clients and the ring's nodes exist, the timeout is valid.
        let _ = if self.rng.chance(self.write_probability) {
            self.write(key)
        } else {
            self.get(key)
        };
        self.schedule_arrival();
    }

    /// Whether the newest ring change is still migrating.
    fn migrating(&self) -> bool {
        self.changes.back().is_some_and(|c| c.settled_at.is_none())
    }

    /// Every live node on the operator's ring, with nothing left to push.
    pub fn settled(&self) -> bool {
        (0..self.sim.node_count()).all(|n| match self.sim.node(n) {
            Some(node) => {
                node.outbox_len() == 0
                    && node.syncing_len() == 0
                    && node.membership().epoch == self.membership.epoch
            }
            None => true,
        })
    }

    /// What keeps the live nodes from having settled, node by node (empty once settled).
    pub fn unsettled(&self) -> String {
        let mut parts = Vec::new();
        for n in 0..self.sim.node_count() {
            let Some(node) = self.sim.node(n) else {
                continue;
            };
            let epoch = node.membership().epoch;
            let outbox: Vec<String> = node
                .outbox()
                .take(4)
                .map(|(k, t, v)| format!("key {k} v{v} to n{t}"))
                .collect();
            let syncing: Vec<NodeId> = node.syncing().collect();
            if epoch != self.membership.epoch || !outbox.is_empty() || !syncing.is_empty() {
                parts.push(format!(
                    "n{n} (epoch {epoch} of {}, {} unacknowledged pushes {outbox:?}, awaiting \
                     sync from {syncing:?})",
                    self.membership.epoch,
                    node.outbox_len()
                ));
            }
        }
        parts.join("; ")
    }

    /// Keys cached on some live node.
    fn cached_keys(&self) -> Vec<u32> {
        let mut keys: Vec<u32> = self
            .live_stores()
            .into_iter()
            .flat_map(|(_, s)| s.keys().copied().collect::<Vec<_>>())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn live_stores(&self) -> Vec<(NodeId, &BTreeMap<u32, Versioned>)> {
        (0..self.sim.node_count())
            .filter_map(|n| self.sim.node(n).map(|node| (n, node.store())))
            .collect()
    }

    /// Sends `members` to every node as the next epoch, and records the change.
    fn change_members(&mut self, members: Vec<NodeId>, what: String) -> Result<()> {
        let ring = build_ring(&self.node_config, &members)
            .ok_or_else(|| DistlabError::InvalidState("cannot build the ring".into()))?;
        let replicas = self.node_config.replicas;
        let (mut moved, mut owner_changed) = (0, 0);
        let keys = self.cached_keys();
        for key in &keys {
            let (old, new) = (
                preference(&self.ring, *key, replicas),
                preference(&ring, *key, replicas),
            );
            let mut a = old.clone();
            let mut b = new.clone();
            a.sort_unstable();
            b.sort_unstable();
            moved += u64::from(a != b);
            owner_changed += u64::from(old.first() != new.first());
        }
        let membership = Membership {
            epoch: self.membership.epoch + 1,
            members,
            previous: self.membership.members.clone(),
        };
        for n in 0..self.sim.node_count() {
            self.send_members(n, &membership)?;
        }
        if self.changes.len() >= CHANGES_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(RingChangeRow {
            epoch: membership.epoch,
            what,
            keys: keys.len() as u64,
            moved,
            owner_changed,
            at: self.sim.now(),
            settled_at: None,
            misses: 0,
            hinted_hits: 0,
        });
        self.membership = membership;
        self.ring = ring;
        Ok(())
    }

    /// Sends the operator's membership to `node`; it is sent again until the node takes it
    /// or a newer one replaces it (see [`Self::collect_replies`]).
    fn send_members(&mut self, node: NodeId, membership: &Membership) -> Result<()> {
        let id = self.sim.client_request(
            OPERATOR,
            node,
            CacheRequest::SetMembers(membership.clone()),
            MEMBERS_TIMEOUT,
        )?;
        let epoch = membership.epoch;
        self.pending.insert(id, Pending::Members { node, epoch });
        Ok(())
    }

    fn add_node(&mut self) -> Result<()> {
        let spare = (0..self.sim.node_count())
            .find(|n| !self.membership.members.contains(n) && self.sim.node(*n).is_some());
        let id = match spare {
            Some(id) => id,
            None if self.sim.node_count() < MAX_CACHE_NODES => self.sim.add_node()?,
            None => {
                return Err(DistlabError::InvalidState(format!(
                    "no spare node is up and the lab runs at most {MAX_CACHE_NODES} nodes"
                )));
            }
        };
        let mut members = self.membership.members.clone();
        members.push(id);
        members.sort_unstable();
        self.change_members(members, format!("add n{id}"))
    }

    fn remove_node(&mut self, node: NodeId) -> Result<()> {
        if !self.membership.members.contains(&node) {
            return Err(DistlabError::field(
                "node",
                format!("n{node} is not on the ring"),
            ));
        }
        if self.membership.members.len() <= self.node_config.replicas as usize {
            return Err(DistlabError::InvalidState(format!(
                "removing n{node} would leave fewer nodes than the {} replicas",
                self.node_config.replicas
            )));
        }
        let members = self
            .membership
            .members
            .iter()
            .copied()
            .filter(|m| *m != node)
            .collect();
        self.change_members(members, format!("remove n{node}"))
    }

    /// Reads the outcomes of requests that ended. A membership the network lost is sent
    /// again: gossip spreads it from any node that has it, but if every copy of the
    /// newest change was lost no node has it, and without the operator trying again the
    /// ring would never change (found as soak seed 193).
    fn collect_replies(&mut self) {
        let ended: Vec<(RequestId, Pending)> = self
            .pending
            .iter()
            .filter(|(id, _)| {
                self.sim
                    .history()
                    .get(**id as usize)
                    .is_some_and(|op| !matches!(op.outcome, Outcome::Pending))
            })
            .map(|(id, p)| (*id, *p))
            .collect();
        for (id, what) in ended {
            self.pending.remove(&id);
            if let Pending::Members { node, epoch } = what {
                let taken = self.sim.history().get(id as usize).is_some_and(|op| {
                    matches!(op.outcome, Outcome::Ok { value: CacheResponse::Members { epoch: e }, .. } if e >= epoch)
                });
                if !taken && epoch == self.membership.epoch {
                    let membership = self.membership.clone();
                    // Cannot fail: the node and the operator exist, the timeout is valid.
                    let _ = self.send_members(node, &membership);
                }
                continue;
            }
            let Pending::Get { key, node } = what else {
                continue;
            };
            let outcome = self
                .sim
                .history()
                .get(id as usize)
                .map(|op| op.outcome.clone());
            let migrating = self.migrating();
            match outcome {
                Some(Outcome::Ok { value, .. }) => match value {
                    CacheResponse::Hit(e) | CacheResponse::HintedHit(e) => {
                        self.counts.hits += 1;
                        if matches!(value, CacheResponse::HintedHit(_)) {
                            self.counts.hinted_hits += 1;
                            if let Some(c) = self.changes.back_mut() {
                                c.hinted_hits += u64::from(migrating);
                            }
                        }
                        if e.version < self.db_entry(key).version {
                            self.counts.stale_hits += 1;
                        }
                    }
                    CacheResponse::Miss { .. } => {
                        self.counts.misses += 1;
                        if migrating {
                            self.counts.misses_migrating += 1;
                            if let Some(c) = self.changes.back_mut() {
                                c.misses += 1;
                            }
                        }
                        // Cache-aside: read the backing store, fill the node asked.
                        let entry = self.db_entry(key);
                        if let Ok(id) = self.sim.client_request(
                            APP,
                            node,
                            CacheRequest::Put { key, entry },
                            CLIENT_TIMEOUT,
                        ) {
                            self.pending.insert(id, Pending::Other);
                        }
                    }
                    _ => {}
                },
                _ => self.counts.timeouts += 1,
            }
        }
    }

    fn ring_panel(&self) -> Panel {
        let all: Vec<(u64, &str)> = self.ring.points().collect();
        let every = all.len().div_ceil(DRAWN_POINTS).max(1);
        let unit = |h: u64| h as f64 / 18_446_744_073_709_551_616.0;
        let mut points: Vec<RingPoint> = all
            .iter()
            .step_by(every)
            .map(|(p, owner)| RingPoint {
                position: unit(*p),
                label: owner.to_string(),
                owner: owner.to_string(),
                kind: "node".into(),
            })
            .collect();
        let arcs = if every == 1 {
            (0..all.len())
                .map(|i| RingArc {
                    start: unit(all[(i + all.len() - 1) % all.len()].0),
                    end: unit(all[i].0),
                    owner: all[i].1.to_string(),
                    label: all[i].1.to_string(),
                })
                .collect()
        } else {
            Vec::new()
        };
        for key in self.cached_keys().into_iter().take(48) {
            points.push(RingPoint {
                position: unit(self.ring.key_hash(&key.to_le_bytes())),
                label: format!("key {key}"),
                owner: self.owner(key).map(ring_name).unwrap_or_default(),
                kind: "key".into(),
            });
        }
        Panel::Ring {
            title: format!(
                "ring (epoch {}): {} nodes, {} points",
                self.membership.epoch,
                self.ring.len(),
                all.len()
            ),
            points,
            arcs,
        }
    }

    fn changes_table(&self) -> Panel {
        Panel::Table {
            title: "ring changes (latest first)".into(),
            columns: [
                "epoch",
                "change",
                "keys cached",
                "keys to move",
                "owner changed",
                "settled after ms",
                "misses while migrating",
                "hinted hits",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .changes
                .iter()
                .rev()
                .map(|c| {
                    vec![
                        json!(c.epoch),
                        json!(c.what),
                        json!(c.keys),
                        json!(c.moved),
                        json!(c.owner_changed),
                        c.settled_at
                            .map_or(json!("migrating"), |t| json!((t - c.at).as_millis_f64())),
                        json!(c.misses),
                        json!(c.hinted_hits),
                    ]
                })
                .collect(),
        }
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DistributedCacheTotals {
    gets: u64,
    hits: u64,
    misses_migrating: u64,
}

impl Sampled for DistributedCacheLab {
    type Totals = DistributedCacheTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("reads", "reads/s"),
            ("hit ratio", "fraction"),
            ("misses while migrating", "misses/s"),
            ("keys cached (copies)", "entries"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> DistributedCacheTotals {
        DistributedCacheTotals {
            gets: self.counts.gets,
            hits: self.counts.hits,
            misses_migrating: self.counts.misses_migrating,
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &DistributedCacheTotals) -> Vec<f64> {
        let now = self.totals();
        let gets = now.gets.saturating_sub(since.gets);
        let hits = now.hits.saturating_sub(since.hits);
        vec![
            per_second(gets, interval),
            // An interval without reads has no hit ratio; 0, not NaN, as the other cache
            // labs: the labs suite compares views with == and NaN != NaN.
            if gets == 0 {
                0.0
            } else {
                hits as f64 / gets as f64
            },
            per_second(
                now.misses_migrating.saturating_sub(since.misses_migrating),
                interval,
            ),
            self.live_stores()
                .iter()
                .map(|(_, s)| s.len())
                .sum::<usize>() as f64,
        ]
    }
}

impl ClusterLab for DistributedCacheLab {
    const ID: &'static str = "cache.distributed";
    type Node = CacheNode;
    type Config = DistributedCacheLabConfig;
    type Action = DistributedCacheLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &DistributedCacheLabConfig) -> Result<Self> {
        let nodes = c.nodes.get();
        if c.replicas.get() > nodes {
            return Err(DistlabError::field(
                "replicas",
                format!("must be at most the nodes ({nodes}), got {}", c.replicas),
            ));
        }
        let node_config = CacheNodeConfig {
            replicas: c.replicas.get(),
            virtual_nodes: c.virtual_nodes.get(),
            seed: c.seed,
            retry: c.retry_ms.duration(),
            hint_window: c.hint_window_ms.duration(),
        };
        let sim_config = SimConfig {
            clients: 2,
            ..c.sim_config(nodes)
        };
        let mut sim = Sim::new(sim_config, node_config)?;
        c.load_faults(&mut sim)?;
        let feed = ArrivalFeed::new(c.seed, &c.arrivals, Time::ZERO)?;
        let ring = HashRing::new(node_config.virtual_nodes, node_config.seed)?;
        let mut lab = DistributedCacheLab {
            sim,
            node_config,
            feed,
            requests_on: true,
            arrival_tag: 0,
            rng: SimRng::derive(c.seed, 0xd157),
            keys: c.keys.get(),
            write_probability: c.write_probability.get(),
            db: BTreeMap::new(),
            membership: Membership::default(),
            ring,
            pending: BTreeMap::new(),
            counts: ClientCounts::default(),
            changes: VecDeque::new(),
        };
        lab.change_members((0..nodes).collect(), format!("start with {nodes} nodes"))?;
        lab.schedule_arrival();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<CacheNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<CacheNode> {
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
        if self.migrating() && self.settled() {
            let now = self.sim.now();
            if let Some(c) = self.changes.back_mut() {
                c.settled_at = Some(now);
            }
        }
    }

    fn act(&mut self, action: &DistributedCacheLabAction) -> Result<()> {
        match action {
            DistributedCacheLabAction::AddNode {} => self.add_node()?,
            DistributedCacheLabAction::RemoveNode { node } => self.remove_node(*node)?,
            DistributedCacheLabAction::Get { key } => {
                check_key(*key, self.keys)?;
                self.get(*key)?;
            }
            DistributedCacheLabAction::Put { key } => {
                check_key(*key, self.keys)?;
                self.write(*key)?;
            }
            DistributedCacheLabAction::StopRequests {} => {
                self.requests_on = false;
                self.arrival_tag += 1;
            }
            DistributedCacheLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(arrivals, self.sim.now())?;
                self.requests_on = true;
                self.schedule_arrival();
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        if let Some(n) = self.sim.node(id) {
            let s = n.stats();
            fields.insert("member".into(), json!(n.is_member()));
            fields.insert("epoch".into(), json!(n.membership().epoch));
            fields.insert("keys".into(), json!(n.store().len()));
            fields.insert("unacknowledgedPushes".into(), json!(n.outbox_len()));
            fields.insert("awaitingSync".into(), json!(n.syncing_len()));
            fields.insert("migrating".into(), json!(n.migrating(self.sim.now())));
            fields.insert("gets".into(), json!(s.gets));
            fields.insert("hits".into(), json!(s.hits));
            fields.insert("hintedReads".into(), json!(s.hinted_reads));
            fields.insert("pushed".into(), json!(s.pushed));
            fields.insert("received".into(), json!(s.received));
            fields.insert("dropped".into(), json!(s.dropped));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let c = self.counts;
        vec![
            self.ring_panel(),
            self.changes_table(),
            Panel::Table {
                title: "application".into(),
                columns: [
                    "reads",
                    "hits",
                    "hinted hits",
                    "misses",
                    "misses while migrating",
                    "stale hits",
                    "writes",
                    "timeouts",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    json!(c.gets),
                    json!(c.hits),
                    json!(c.hinted_hits),
                    json!(c.misses),
                    json!(c.misses_migrating),
                    json!(c.stale_hits),
                    json!(c.writes),
                    json!(c.timeouts),
                ]],
            },
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        vec![placement(
            self.settled(),
            &self.live_stores(),
            &self.ring,
            self.node_config.replicas,
        )]
    }

    fn example_actions() -> Vec<ClusterAction<DistributedCacheLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.extend(
            [
                DistributedCacheLabAction::AddNode {},
                DistributedCacheLabAction::RemoveNode { node: 0 },
                DistributedCacheLabAction::Get { key: 1 },
                DistributedCacheLabAction::Put { key: 1 },
                DistributedCacheLabAction::StopRequests {},
                DistributedCacheLabAction::SetArrivals {
                    arrivals: ArrivalProcess::Poisson { rate_per_sec: 20.0 },
                },
            ]
            .map(ClusterAction::Lab),
        );
        v
    }
}

fn check_key(key: u32, keys: u32) -> Result<()> {
    if key >= keys {
        return Err(DistlabError::field(
            "key",
            format!("must be below the lab's keys ({keys}), got {key}"),
        ));
    }
    Ok(())
}

/// Once settled, every key's newest copy is on every live node of its preference list.
fn placement(
    settled: bool,
    live: &[(NodeId, &BTreeMap<u32, Versioned>)],
    ring: &HashRing,
    replicas: u32,
) -> InvariantStatus {
    const NAME: &str = "after migration settles, each key's newest value is on its N nodes";
    if !settled {
        return InvariantStatus::holds(NAME, "migrating: pushes not yet acknowledged");
    }
    let bad = misplaced(live, ring, replicas);
    match bad.first() {
        None => InvariantStatus::holds(NAME, "settled: every key on its preference list"),
        Some((key, node)) => {
            let mut nodes: Vec<NodeId> = bad.iter().map(|(_, n)| *n).collect();
            nodes.sort_unstable();
            nodes.dedup();
            InvariantStatus::violated(
                NAME,
                format!(
                    "settled, yet n{node} lacks the newest value of key {key} ({} misplaced)",
                    bad.len()
                ),
                nodes,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn run(lab: &mut Cluster<DistributedCacheLab>, until_ms: u64) {
        while lab.step_until(Time::from_millis(until_ms)) {}
    }

    fn act(lab: &mut Cluster<DistributedCacheLab>, a: DistributedCacheLabAction) {
        lab.act(&ClusterAction::Lab(a)).unwrap();
    }

    #[test]
    fn add_and_remove_migrate_and_settle() {
        let mut lab = Cluster::<DistributedCacheLab>::new(&DistributedCacheLabConfig {
            seed: 5,
            arrivals: ArrivalProcess::Poisson {
                rate_per_sec: 200.0,
            },
            ..Default::default()
        })
        .unwrap();
        run(&mut lab, 3_000);
        act(&mut lab, DistributedCacheLabAction::AddNode {});
        run(&mut lab, 4_000);
        act(&mut lab, DistributedCacheLabAction::RemoveNode { node: 1 });
        run(&mut lab, 5_000);
        act(&mut lab, DistributedCacheLabAction::StopRequests {});
        run(&mut lab, 8_000);
        let l = lab.lab();
        assert!(l.settled());
        assert!(lab.invariants()[0].ok, "{:?}", lab.invariants());
        let changes: Vec<_> = l.changes().iter().collect();
        assert_eq!(changes.len(), 3);
        for c in &changes[1..] {
            assert!(c.settled_at.is_some(), "{c:?}");
            // With 2 replicas on 4–5 nodes a change touches about 2/5 of the keys.
            let f = c.moved as f64 / c.keys as f64;
            assert!(f > 0.15 && f < 0.7, "{}: {f}", c.what);
        }
        let counts = l.counts();
        assert!(counts.hits > counts.misses, "{counts:?}");
        // Removed n1 holds nothing once its keys moved.
        assert_eq!(lab.lab().sim().node(1).map(|n| n.store().len()), Some(0));
    }

    #[test]
    fn migration_settles_under_loss_and_a_restart() {
        let mut lab = Cluster::<DistributedCacheLab>::new(&DistributedCacheLabConfig {
            seed: 9,
            replicas: Count::of(3),
            ..Default::default()
        })
        .unwrap();
        run(&mut lab, 2_000);
        for f in [
            Fault::SetLoss {
                probability: Probability::of(0.3),
            },
            Fault::Crash { node: 2 },
        ] {
            lab.act(&ClusterAction::Fault(f)).unwrap();
        }
        act(&mut lab, DistributedCacheLabAction::AddNode {});
        run(&mut lab, 3_000);
        lab.act(&ClusterAction::Fault(Fault::Restart { node: 2 }))
            .unwrap();
        act(&mut lab, DistributedCacheLabAction::StopRequests {});
        run(&mut lab, 4_000);
        lab.act(&ClusterAction::Fault(Fault::SetLoss {
            probability: Probability::of(0.0),
        }))
        .unwrap();
        run(&mut lab, 8_000);
        assert!(lab.lab().settled());
        assert!(lab.invariants()[0].ok, "{:?}", lab.invariants());
        // The restarted node got its keys back from the others.
        assert!(
            lab.lab()
                .sim()
                .node(2)
                .is_some_and(|n| !n.store().is_empty())
        );
    }

    #[test]
    fn misses_during_migration_are_retried_at_the_old_owner() {
        let mut lab = Cluster::<DistributedCacheLab>::new(&DistributedCacheLabConfig {
            seed: 2,
            replicas: Count::of(1),
            write_probability: Probability::of(0.0),
            arrivals: ArrivalProcess::Poisson {
                rate_per_sec: 400.0,
            },
            // Slow pushes: the new owner is asked before its keys arrive.
            retry_ms: Millis::of(2_000),
            ..Default::default()
        })
        .unwrap();
        run(&mut lab, 3_000);
        act(&mut lab, DistributedCacheLabAction::AddNode {});
        run(&mut lab, 3_500);
        let c = lab.lab().counts();
        assert!(c.hinted_hits > 0, "{c:?}");
    }

    /// Soak seed 193: every copy of the newest membership was lost, so no node had it,
    /// gossip had nothing to spread and the ring never changed. The operator now sends it
    /// again until each node has taken it.
    #[test]
    fn a_membership_change_lost_to_every_node_is_sent_again() {
        let mut lab = Cluster::<DistributedCacheLab>::new(&DistributedCacheLabConfig {
            seed: 3,
            nodes: Count::of(2),
            replicas: Count::of(1),
            ..Default::default()
        })
        .unwrap();
        run(&mut lab, 1_000);
        let loss = |p| Fault::SetLoss {
            probability: Probability::of(p),
        };
        lab.act(&ClusterAction::Fault(loss(1.0))).unwrap();
        act(&mut lab, DistributedCacheLabAction::AddNode {});
        run(&mut lab, 1_700);
        let epochs = |lab: &Cluster<DistributedCacheLab>| -> Vec<u64> {
            (0..3)
                .filter_map(|n| lab.lab().sim().node(n).map(|n| n.membership().epoch))
                .collect()
        };
        assert_eq!(epochs(&lab), vec![1, 1, 0]);
        lab.act(&ClusterAction::Fault(loss(0.0))).unwrap();
        act(&mut lab, DistributedCacheLabAction::StopRequests {});
        run(&mut lab, 4_000);
        assert_eq!(epochs(&lab), vec![2, 2, 2]);
        assert!(lab.lab().settled(), "{}", lab.lab().unsettled());
        assert!(lab.invariants()[0].ok, "{:?}", lab.invariants());
    }

    /// A sample of an interval without reads is 0, not a 0/0 NaN (which would make two
    /// equal views compare unequal in the labs suite).
    #[test]
    fn an_interval_without_reads_samples_no_nan() {
        let mut lab = Cluster::<DistributedCacheLab>::new(&DistributedCacheLabConfig {
            seed: 4,
            ..Default::default()
        })
        .unwrap();
        run(&mut lab, 1_000);
        let before = lab.lab().totals();
        assert!(before.gets > 0, "{before:?}");
        let busy = lab.lab().sample(
            Time::from_millis(1_000),
            Duration::from_millis(1_000),
            &DistributedCacheTotals::default(),
        );
        assert!(busy[0] > 0.0 && (0.0..=1.0).contains(&busy[1]), "{busy:?}");
        act(&mut lab, DistributedCacheLabAction::StopRequests {});
        run(&mut lab, 1_500);
        let quiet_from = lab.lab().totals();
        run(&mut lab, 2_500);
        assert_eq!(lab.lab().totals().gets, quiet_from.gets);
        let quiet = lab.lab().sample(
            Time::from_millis(2_500),
            Duration::from_millis(1_000),
            &quiet_from,
        );
        assert!(quiet.iter().all(|v| v.is_finite()), "{quiet:?}");
        assert_eq!(quiet[0], 0.0);
        assert_eq!(quiet[1], 0.0);
    }

    #[test]
    fn the_invariant_can_fail() {
        let config = CacheNodeConfig {
            replicas: 2,
            virtual_nodes: 10,
            seed: 1,
            retry: Duration::from_millis(100),
            hint_window: Duration::ZERO,
        };
        let ring = build_ring(&config, &[0, 1, 2]).unwrap();
        let pref = preference(&ring, 7, 2);
        let entry = Versioned {
            version: 3,
            value: 1,
        };
        let full: BTreeMap<u32, Versioned> = BTreeMap::from([(7, entry)]);
        let empty = BTreeMap::new();
        let old = BTreeMap::from([(
            7,
            Versioned {
                version: 2,
                value: 0,
            },
        )]);
        let good: Vec<(NodeId, &BTreeMap<u32, Versioned>)> = (0..3)
            .map(|n| (n, if pref.contains(&n) { &full } else { &empty }))
            .collect();
        assert!(placement(true, &good, &ring, 2).ok);
        let stale: Vec<(NodeId, &BTreeMap<u32, Versioned>)> = (0..3)
            .map(|n| {
                (
                    n,
                    if n == pref[0] {
                        &full
                    } else if n == pref[1] {
                        &old
                    } else {
                        &empty
                    },
                )
            })
            .collect();
        let status = placement(true, &stale, &ring, 2);
        assert!(!status.ok);
        assert_eq!(status.nodes, vec![pref[1]]);
        // While migrating it holds whatever the stores.
        assert!(placement(false, &stale, &ring, 2).ok);
    }
}
