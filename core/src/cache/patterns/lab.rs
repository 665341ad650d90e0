//! Lab `cache.patterns`: one application (client 0) before a cache node and a backing
//! store node ([`super::node`]), with the pattern chosen in the config. Requests arrive
//! as a process; each read or write is a chain of requests over the simulated network, so
//! concurrent ones interleave as they would for real. Every write carries the next version
//! of its key; a [`StaleReadChecker`] judges every read against the writes acknowledged
//! before it began.
//!
//! The point of the lab is cache-aside's stale set (Nishtala et al., NSDI 2013, §3.2.1):
//! a reader misses, reads the old value from the store, a write updates the store and
//! deletes the cache entry, and the reader then puts the old value in the cache, where it
//! stays until its TTL runs out. `fillDelayMs` (how long the application takes between
//! reading the store and filling the cache) widens the window; `leases` closes it.
//!
//! The cache holds at most `capacity` entries and evicts the least recently used clean
//! one (the view counts evictions); write-back's dirty entries are never evicted, so a
//! read of a key written but not yet flushed still finds the write.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::cache::patterns::node::{
    CACHE, Pattern, PatternNode, PatternNodeConfig, PatternRequest, PatternResponse, STORE,
    Versioned, entry_for,
};
use crate::cache::staleness::StaleReadChecker;
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
use crate::sim::{Fault, NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// The largest key space.
pub const MAX_KEYS: u32 = 10_000;
const TRACE_TAIL: usize = 20_000;
const APP: u32 = 0;
/// Tries of one step of a write before the application gives up on it.
const WRITE_TRIES: u32 = 8;
/// External events at or above this tag are delayed fills (the op id below it).
const FILL_TAG: u64 = 1 << 63;

cluster_lab_config! {
    /// Configuration of the cache patterns lab.
    pub struct PatternsLabConfig {
        /// cacheAside, readThrough, writeThrough, writeBack or refreshAhead.
        pub pattern: Pattern = Pattern::CacheAside,
        /// Facebook's leases: a delete voids the lease a miss handed out, and a fill
        /// holding a void lease is refused (so is a load a delete or write overtook).
        pub leases: bool = false,
        /// Distinct keys, read and written uniformly.
        pub keys: Count<1, { MAX_KEYS }> = Count::of(20),
        /// Application requests.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 100.0 },
        /// Share of requests that write.
        pub write_probability: Probability = Probability::of(0.2),
        /// How long a cached entry lives.
        pub ttl_ms: Millis<1, 600_000> = Millis::of(2_000),
        /// The most entries the cache holds; past it the least recently used clean entry
        /// is evicted (write-back's dirty ones stay until flushed).
        pub capacity: Count<1, 10_000> = Count::of(64),
        /// How long the store takes to answer, on top of the network.
        pub store_latency_ms: Millis<0, 10_000> = Millis::of(5),
        /// Cache-aside: how long the application takes between reading the store and
        /// filling the cache (a slow reader widens the stale-set window).
        pub fill_delay_ms: Millis<0, 10_000> = Millis::of(0),
        /// How often the cache retries loads and saves and flushes dirty entries.
        pub tick_ms: Millis<1, 10_000> = Millis::of(50),
        /// Write-back: the most dirty entries (a write past it waits for a flush); below
        /// `capacity`, so a full cache always has a clean entry to evict.
        pub max_dirty: Count<1, 10_000> = Count::of(8),
        /// Refresh-ahead: a hit on an entry older than this reloads it.
        pub refresh_after_ms: Millis<0, 600_000> = Millis::of(1_500),
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
pub enum PatternsLabAction {
    /// Read `key` now.
    Read {
        key: u32,
    },
    /// Write a new version of `key` now.
    Write {
        key: u32,
    },
    /// No more arrivals (until `setArrivals`).
    StopRequests {},
    SetArrivals {
        arrivals: ArrivalProcess,
    },
}

/// Where an application operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Cache-aside: looking the key up in the cache.
    Lookup,
    /// Cache-aside: reading the store after a miss.
    StoreRead { lease: Option<u64> },
    /// Cache-aside: filling the cache (after the read was answered).
    Fill {
        entry: Versioned,
        lease: Option<u64>,
    },
    /// Reading through the cache.
    CacheGet,
    /// Writing the store (cache-aside, read-through, refresh-ahead).
    StoreUpdate,
    /// Deleting the cache entry after the store write.
    Delete,
    /// Writing through the cache (write-through, write-back).
    CacheWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op {
    key: u32,
    /// The entry a write writes.
    write: Option<Versioned>,
    began: Time,
    step: Step,
    tries: u32,
}

/// What the application saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PatternCounts {
    pub reads: u64,
    pub hits: u64,
    pub misses: u64,
    pub writes: u64,
    pub read_timeouts: u64,
    /// Writes given up after [`WRITE_TRIES`] tries of one step.
    pub failed_writes: u64,
    /// Cache-aside fills refused for a void lease.
    pub refused_fills: u64,
    pub read_latency_sum_ms: f64,
    pub read_latency_max_ms: f64,
    pub write_latency_sum_ms: f64,
    pub write_latency_max_ms: f64,
    /// Write-back: acknowledged writes the store did not have when the cache crashed.
    pub lost_writes: u64,
    pub cache_crashes: u64,
    /// The most dirty entries seen at once.
    pub max_dirty_seen: u64,
}

/// The cache patterns lab.
#[derive(Debug, Clone)]
pub struct PatternsLab {
    sim: Sim<PatternNode>,
    node_config: PatternNodeConfig,
    feed: ArrivalFeed,
    requests_on: bool,
    arrival_tag: u64,
    rng: SimRng,
    keys: u32,
    write_probability: f64,
    fill_delay: Duration,
    timeout: Duration,
    /// The newest version issued per key.
    versions: BTreeMap<u32, u64>,
    ops: BTreeMap<u64, Op>,
    next_op: u64,
    pending: BTreeMap<RequestId, u64>,
    checker: StaleReadChecker,
    counts: PatternCounts,
    /// Whether the cache was up at the last look, and its boots then.
    cache_seen: (bool, u32),
}

impl PatternsLab {
    pub fn counts(&self) -> PatternCounts {
        self.counts
    }

    pub fn checker(&self) -> &StaleReadChecker {
        &self.checker
    }

    pub fn pattern(&self) -> Pattern {
        self.node_config.pattern
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
        if self.rng.chance(self.write_probability) {
            self.write(key);
        } else {
            self.read(key);
        }
        self.schedule_arrival();
    }

    fn begin(&mut self, key: u32, write: Option<Versioned>, step: Step) {
        self.next_op += 1;
        let op = Op {
            key,
            write,
            began: self.sim.now(),
            step,
            tries: 0,
        };
        self.ops.insert(self.next_op, op);
        self.send(self.next_op);
    }

    fn read(&mut self, key: u32) {
        self.counts.reads += 1;
        let step = if self.node_config.pattern.loads() {
            Step::CacheGet
        } else {
            Step::Lookup
        };
        self.begin(key, None, step);
    }

    fn write(&mut self, key: u32) {
        self.counts.writes += 1;
        let version = self.versions.entry(key).or_insert(0);
        *version += 1;
        let entry = entry_for(key, *version);
        let step = if self.node_config.pattern.writes_through_cache() {
            Step::CacheWrite
        } else {
            Step::StoreUpdate
        };
        self.begin(key, Some(entry), step);
    }

    /// Sends the request of op `id`'s step.
    fn send(&mut self, id: u64) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.tries += 1;
        let key = op.key;
        let write = op.write.unwrap_or(Versioned {
            version: 0,
            value: 0,
        });
        let (node, body) = match op.step {
            Step::Lookup | Step::CacheGet => (CACHE, PatternRequest::Get { key }),
            Step::StoreRead { .. } => (STORE, PatternRequest::Read { key }),
            Step::Fill { entry, lease } => (CACHE, PatternRequest::Set { key, entry, lease }),
            Step::StoreUpdate => (STORE, PatternRequest::Update { key, entry: write }),
            Step::Delete => (CACHE, PatternRequest::Delete { key }),
            Step::CacheWrite => (CACHE, PatternRequest::Write { key, entry: write }),
        };
        // Cannot fail: the client and both nodes exist and the timeout is valid.
        match self.sim.client_request(APP, node, body, self.timeout) {
            Ok(request) => {
                self.pending.insert(request, id);
            }
            Err(_) => {
                self.ops.remove(&id);
            }
        }
    }

    fn finish_read(&mut self, op: Op, entry: Versioned, hit: bool) {
        let now = self.sim.now();
        if hit {
            self.counts.hits += 1;
        } else {
            self.counts.misses += 1;
        }
        let ms = (now - op.began).as_millis_f64();
        self.counts.read_latency_sum_ms += ms;
        self.counts.read_latency_max_ms = self.counts.read_latency_max_ms.max(ms);
        self.checker.read(op.key, op.began, entry.version);
    }

    fn finish_write(&mut self, op: Op) {
        let now = self.sim.now();
        let ms = (now - op.began).as_millis_f64();
        self.counts.write_latency_sum_ms += ms;
        self.counts.write_latency_max_ms = self.counts.write_latency_max_ms.max(ms);
        if let Some(w) = op.write {
            self.checker.write_acked(op.key, w.version, now);
        }
    }

    /// Moves op `id` to `step` and sends it.
    fn advance(&mut self, id: u64, step: Step) {
        if let Some(op) = self.ops.get_mut(&id) {
            op.step = step;
            op.tries = 0;
        }
        self.send(id);
    }

    fn on_answer(&mut self, id: u64, answer: Option<PatternResponse>) {
        let Some(op) = self.ops.get(&id).copied() else {
            return;
        };
        let Some(answer) = answer else {
            // Lost, refused or timed out: a write tries its step again (every step is
            // idempotent), a read gives up, a fill is dropped.
            match op.step {
                Step::StoreUpdate | Step::Delete | Step::CacheWrite if op.tries < WRITE_TRIES => {
                    self.send(id)
                }
                Step::StoreUpdate | Step::Delete | Step::CacheWrite => {
                    self.counts.failed_writes += 1;
                    self.ops.remove(&id);
                }
                Step::Fill { .. } => {
                    self.ops.remove(&id);
                }
                _ => {
                    self.counts.read_timeouts += 1;
                    self.ops.remove(&id);
                }
            }
            return;
        };
        match (op.step, answer) {
            (Step::Lookup | Step::CacheGet, PatternResponse::Hit(e)) => {
                self.ops.remove(&id);
                self.finish_read(op, e, true);
            }
            (Step::CacheGet, PatternResponse::Loaded(e)) => {
                self.ops.remove(&id);
                self.finish_read(op, e, false);
            }
            (Step::Lookup, PatternResponse::Miss { lease }) => {
                self.advance(id, Step::StoreRead { lease });
            }
            (Step::StoreRead { lease }, PatternResponse::Value(entry)) => {
                self.finish_read(op, entry, false);
                let fill = Step::Fill { entry, lease };
                if self.fill_delay == Duration::ZERO {
                    self.advance(id, fill);
                } else if let Some(o) = self.ops.get_mut(&id) {
                    o.step = fill;
                    let at = self.sim.now() + self.fill_delay;
                    self.sim.schedule_external(at, FILL_TAG | id);
                }
            }
            (Step::Fill { .. }, PatternResponse::Set { stored }) => {
                self.counts.refused_fills += u64::from(!stored);
                self.ops.remove(&id);
            }
            (Step::StoreUpdate, PatternResponse::Updated) => self.advance(id, Step::Delete),
            (Step::Delete, PatternResponse::Deleted)
            | (Step::CacheWrite, PatternResponse::Written) => {
                self.ops.remove(&id);
                self.finish_write(op);
            }
            _ => {
                self.ops.remove(&id);
            }
        }
    }

    fn collect_replies(&mut self) {
        let ended: Vec<(RequestId, u64)> = self
            .pending
            .iter()
            .filter(|(r, _)| {
                self.sim
                    .history()
                    .get(**r as usize)
                    .is_some_and(|op| !matches!(op.outcome, Outcome::Pending))
            })
            .map(|(r, id)| (*r, *id))
            .collect();
        for (request, id) in ended {
            self.pending.remove(&request);
            let answer = match self.sim.history().get(request as usize).map(|o| &o.outcome) {
                Some(Outcome::Ok { value, .. }) => Some(value.clone()),
                _ => None,
            };
            self.on_answer(id, answer);
        }
    }

    /// Notices a crash of the cache: with write-back, the acknowledged writes the store
    /// does not hold are lost (a flush in flight may still land).
    fn watch_cache(&mut self) {
        let up = self.sim.node(CACHE).is_some();
        let boots = self.sim.boots(CACHE);
        let (was_up, was_boots) = self.cache_seen;
        if was_up && (!up || boots != was_boots) {
            self.counts.cache_crashes += 1;
            if self.node_config.pattern == Pattern::WriteBack {
                self.counts.lost_writes += self.unstored_writes();
            }
        }
        self.cache_seen = (up, boots);
        let dirty = self.sim.node(CACHE).map_or(0, |n| n.dirty()) as u64;
        self.counts.max_dirty_seen = self.counts.max_dirty_seen.max(dirty);
    }

    /// Keys whose newest acknowledged write the store does not have.
    fn unstored_writes(&self) -> u64 {
        let now = self.sim.now();
        let Some(store) = self.sim.node(STORE) else {
            return 0;
        };
        self.versions
            .keys()
            .filter(|k| {
                let acked = self.checker.newest_acked(**k, now);
                store.stored(**k).is_some_and(|s| s.version < acked)
            })
            .count() as u64
    }

    fn mean(sum: f64, n: u64) -> f64 {
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    fn completed_writes(&self) -> u64 {
        self.counts
            .writes
            .saturating_sub(self.counts.failed_writes)
            .saturating_sub(self.ops.values().filter(|o| o.write.is_some()).count() as u64)
    }

    fn completed_reads(&self) -> u64 {
        self.counts.hits + self.counts.misses
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PatternTotals {
    reads: u64,
    hits: u64,
    store_ops: u64,
    stale: u64,
    read_latency_sum_ms: f64,
}

impl Sampled for PatternsLab {
    type Totals = PatternTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("reads", "reads/s"),
            ("hit ratio", "fraction"),
            ("store load", "requests/s"),
            ("stale reads", "reads/s"),
            ("read latency", "ms"),
            ("dirty entries", "entries"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> PatternTotals {
        let store = self
            .sim
            .node(STORE)
            .map_or(0, |n| n.stats().store_reads + n.stats().store_writes);
        PatternTotals {
            reads: self.completed_reads(),
            hits: self.counts.hits,
            store_ops: store,
            stale: self.checker.stale_reads(),
            read_latency_sum_ms: self.counts.read_latency_sum_ms,
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &PatternTotals) -> Vec<f64> {
        let now = self.totals();
        let reads = now.reads.saturating_sub(since.reads);
        let hits = now.hits.saturating_sub(since.hits);
        vec![
            per_second(reads, interval),
            if reads == 0 {
                0.0
            } else {
                hits as f64 / reads as f64
            },
            per_second(now.store_ops.saturating_sub(since.store_ops), interval),
            per_second(now.stale.saturating_sub(since.stale), interval),
            if reads == 0 {
                0.0
            } else {
                (now.read_latency_sum_ms - since.read_latency_sum_ms) / reads as f64
            },
            self.sim.node(CACHE).map_or(0, |n| n.dirty()) as f64,
        ]
    }
}

impl ClusterLab for PatternsLab {
    const ID: &'static str = "cache.patterns";
    type Node = PatternNode;
    type Config = PatternsLabConfig;
    type Action = PatternsLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &PatternsLabConfig) -> Result<Self> {
        if c.pattern == Pattern::WriteBack && c.max_dirty.get() >= c.capacity.get() {
            return Err(DistlabError::field(
                "maxDirty",
                format!(
                    "must be below the capacity ({}) with write-back, so a full cache has a \
                     clean entry to evict; got {}",
                    c.capacity, c.max_dirty
                ),
            ));
        }
        let node_config = PatternNodeConfig {
            pattern: c.pattern,
            leases: c.leases,
            ttl: c.ttl_ms.duration(),
            capacity: c.capacity.get(),
            store_latency: c.store_latency_ms.duration(),
            tick: c.tick_ms.duration(),
            max_dirty: c.max_dirty.get(),
            refresh_after: c.refresh_after_ms.duration(),
        };
        let sim_config = SimConfig {
            clients: 1,
            ..c.sim_config(2)
        };
        let mut sim = Sim::new(sim_config, node_config)?;
        c.load_faults(&mut sim)?;
        let feed = ArrivalFeed::new(c.seed, &c.arrivals, Time::ZERO)?;
        // Long enough for a store answer over a slow network; a lost request ends then.
        let timeout =
            Duration::from_millis(1_000) + node_config.store_latency + node_config.store_latency;
        let mut lab = PatternsLab {
            sim,
            node_config,
            feed,
            requests_on: true,
            arrival_tag: 0,
            rng: SimRng::derive(c.seed, 0xca5e),
            keys: c.keys.get(),
            write_probability: c.write_probability.get(),
            fill_delay: c.fill_delay_ms.duration(),
            timeout,
            versions: BTreeMap::new(),
            ops: BTreeMap::new(),
            next_op: 0,
            pending: BTreeMap::new(),
            checker: StaleReadChecker::default(),
            counts: PatternCounts::default(),
            cache_seen: (true, 1),
        };
        lab.cache_seen = (true, lab.sim.boots(CACHE));
        lab.schedule_arrival();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<PatternNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<PatternNode> {
        &mut self.sim
    }

    fn step(&mut self, until: Time) -> bool {
        match self.sim.step_until(until) {
            Some(Stepped::External(tag)) if tag >= FILL_TAG => {
                self.send(tag & !FILL_TAG);
                true
            }
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
        self.watch_cache();
    }

    fn act(&mut self, action: &PatternsLabAction) -> Result<()> {
        match action {
            PatternsLabAction::Read { key } => {
                check_key(*key, self.keys)?;
                self.read(*key);
            }
            PatternsLabAction::Write { key } => {
                check_key(*key, self.keys)?;
                self.write(*key);
            }
            PatternsLabAction::StopRequests {} => {
                self.requests_on = false;
                self.arrival_tag += 1;
            }
            PatternsLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(arrivals, self.sim.now())?;
                self.requests_on = true;
                self.schedule_arrival();
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        let s = n.stats();
        if n.is_cache() {
            let (leases, loads, writes) = n.in_flight();
            fields.insert("pattern".into(), json!(self.node_config.pattern.name()));
            fields.insert("entries".into(), json!(n.cached()));
            fields.insert("capacity".into(), json!(self.node_config.capacity));
            fields.insert("evictions".into(), json!(s.evictions));
            fields.insert("dirty".into(), json!(n.dirty()));
            fields.insert("leases".into(), json!(leases));
            fields.insert("loadsInFlight".into(), json!(loads));
            fields.insert("writesWaiting".into(), json!(writes));
            fields.insert("gets".into(), json!(s.gets));
            fields.insert("hits".into(), json!(s.hits));
            fields.insert("loads".into(), json!(s.loads));
            fields.insert("refreshes".into(), json!(s.refreshes));
            fields.insert("fills".into(), json!(s.fills));
            fields.insert("refusedFills".into(), json!(s.refused_fills));
            fields.insert("saves".into(), json!(s.saves));
            fields.insert("blockedWrites".into(), json!(s.blocked_writes));
        } else {
            fields.insert("keysWritten".into(), json!(n.stored_keys()));
            fields.insert("reads".into(), json!(s.store_reads));
            fields.insert("writes".into(), json!(s.store_writes));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let c = self.counts;
        let reads = self.completed_reads();
        let stale = self.checker.oldest();
        vec![
            Panel::Table {
                title: format!(
                    "application ({}{})",
                    self.node_config.pattern.name(),
                    if self.node_config.leases {
                        ", leases"
                    } else {
                        ""
                    }
                ),
                columns: [
                    "reads",
                    "hit ratio",
                    "stale reads",
                    "furthest behind ms",
                    "mean read ms",
                    "max read ms",
                    "writes",
                    "mean write ms",
                    "max write ms",
                    "read timeouts",
                    "failed writes",
                    "refused fills",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    json!(reads),
                    json!(if reads == 0 {
                        0.0
                    } else {
                        c.hits as f64 / reads as f64
                    }),
                    json!(self.checker.stale_reads()),
                    json!(stale.map_or(0.0, |s| s.age.as_millis_f64())),
                    json!(Self::mean(c.read_latency_sum_ms, reads)),
                    json!(c.read_latency_max_ms),
                    json!(c.writes),
                    json!(Self::mean(c.write_latency_sum_ms, self.completed_writes())),
                    json!(c.write_latency_max_ms),
                    json!(c.read_timeouts),
                    json!(c.failed_writes),
                    json!(c.refused_fills),
                ]],
            },
            Panel::Table {
                title: "cache and store".into(),
                columns: [
                    "cached",
                    "capacity",
                    "evictions",
                    "dirty",
                    "most dirty",
                    "cache crashes",
                    "writes lost in a crash",
                    "store reads",
                    "store writes",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    json!(self.sim.node(CACHE).map_or(0, |n| n.cached())),
                    json!(self.node_config.capacity),
                    json!(self.sim.node(CACHE).map_or(0, |n| n.stats().evictions)),
                    json!(self.sim.node(CACHE).map_or(0, |n| n.dirty())),
                    json!(c.max_dirty_seen),
                    json!(c.cache_crashes),
                    json!(c.lost_writes),
                    json!(self.sim.node(STORE).map_or(0, |n| n.stats().store_reads)),
                    json!(self.sim.node(STORE).map_or(0, |n| n.stats().store_writes)),
                ]],
            },
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        vec![
            no_stale_reads(&self.checker),
            dirty_bounded(self.counts.max_dirty_seen, self.node_config.max_dirty),
        ]
    }

    fn example_actions() -> Vec<ClusterAction<PatternsLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.extend(
            [
                PatternsLabAction::Read { key: 1 },
                PatternsLabAction::Write { key: 1 },
                PatternsLabAction::StopRequests {},
                PatternsLabAction::SetArrivals {
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

/// No read returned a value older than a write acknowledged before it began.
pub fn no_stale_reads(checker: &StaleReadChecker) -> InvariantStatus {
    const NAME: &str = "no read returns a value older than a write acknowledged before it";
    match checker.last() {
        None => InvariantStatus::holds(NAME, format!("{} reads, none stale", checker.reads())),
        Some(s) => InvariantStatus::violated(
            NAME,
            format!(
                "{} stale reads; the last: key {} read version {} at {} ms, version {} \
                 acknowledged {} ms before",
                checker.stale_reads(),
                s.key,
                s.returned,
                s.began.as_millis_f64(),
                s.newest,
                s.age.as_millis_f64()
            ),
            vec![CACHE],
        ),
    }
}

/// Write-back never holds more dirty entries than its bound.
fn dirty_bounded(max_seen: u64, bound: u32) -> InvariantStatus {
    const NAME: &str = "dirty entries never exceed maxDirty";
    if max_seen <= u64::from(bound) {
        InvariantStatus::holds(NAME, format!("at most {max_seen} of {bound}"))
    } else {
        InvariantStatus::violated(
            NAME,
            format!("{max_seen} dirty, bound {bound}"),
            vec![CACHE],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};
    use crate::sim::LatencyModel;
    use crate::sim::NetworkConfig;

    fn run(lab: &mut Cluster<PatternsLab>, until_ms: u64) {
        while lab.step_until(Time::from_millis(until_ms)) {}
        lab.advance_clock(Time::from_millis(until_ms));
    }

    fn act(lab: &mut Cluster<PatternsLab>, a: PatternsLabAction) {
        lab.act(&ClusterAction::Lab(a)).unwrap();
    }

    /// Every hop 1 ms, the store 5 ms, a reader that takes 30 ms to fill the cache.
    fn scripted(leases: bool) -> Cluster<PatternsLab> {
        let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            leases,
            fill_delay_ms: Millis::of(30),
            network: NetworkConfig {
                latency: LatencyModel::Constant { ms: 1.0 },
                ..NetworkConfig::default()
            },
            ..Default::default()
        })
        .unwrap();
        act(&mut lab, PatternsLabAction::StopRequests {});
        lab
    }

    /// The stale set of cache-aside, on a scripted schedule:
    ///  0 ms  reader: get key 0 → miss (answered at 2)
    ///  2 ms  reader: reads the store: version 0 (answered at 9), fills at 9 + 30
    /// 10 ms  writer: store ← version 1 (acknowledged at 17), delete key 0 (done at 19)
    /// 40 ms  the reader's set of version 0 reaches the cache
    /// 50 ms  a read: without leases, version 0 from the cache — stale until the TTL.
    fn race(leases: bool) -> Cluster<PatternsLab> {
        let mut lab = scripted(leases);
        act(&mut lab, PatternsLabAction::Read { key: 0 });
        run(&mut lab, 10);
        act(&mut lab, PatternsLabAction::Write { key: 0 });
        run(&mut lab, 50);
        act(&mut lab, PatternsLabAction::Read { key: 0 });
        run(&mut lab, 100);
        lab
    }

    #[test]
    fn cache_aside_fills_a_stale_value_after_a_concurrent_write() {
        let lab = race(false);
        let l = lab.lab();
        assert_eq!(l.checker().reads(), 2);
        assert_eq!(l.checker().stale_reads(), 1, "{:?}", l.counts());
        let s = l.checker().last().unwrap();
        assert_eq!((s.key, s.returned, s.newest), (0, 0, 1));
        // Behind since the write's delete was acknowledged at 19 ms.
        assert_eq!(s.age, Duration::from_millis(31));
        assert_eq!(l.counts().hits, 1);
        assert_eq!(
            l.sim()
                .node(CACHE)
                .and_then(|n| n.cached_entry(0))
                .map(|e| e.0.version),
            Some(0)
        );
        assert!(!lab.invariants()[0].ok);
    }

    #[test]
    fn leases_refuse_the_stale_fill_in_the_same_schedule() {
        let lab = race(true);
        let l = lab.lab();
        assert_eq!(l.checker().reads(), 2);
        assert_eq!(l.checker().stale_reads(), 0, "{:?}", l.counts());
        // The first reader's fill was refused: its lease died with the writer's delete.
        assert_eq!(l.counts().refused_fills, 1);
        assert_eq!(l.counts().misses, 2);
        assert!(lab.invariants()[0].ok);
    }

    /// The same race inside read-through's own load: the store's answers to the cache
    /// take 30 ms (a slow link), so the writer's delete lands while the load is in flight.
    ///  0 ms  reader A: get → load sent at 1, read at the store at 2 (version 0), its
    ///        answer leaves at 42 and lands at 72
    ///  3 ms  writer: store ← version 1 at 4, acknowledged at 45, delete done at 47
    /// 60 ms  reader B: a miss. Without leases it joins A's load and gets version 0,
    ///        which is then cached; with leases the delete detached that load, so B
    ///        starts its own and gets version 1, and A's answer does not fill.
    fn read_through_race(leases: bool) -> Cluster<PatternsLab> {
        let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            pattern: Pattern::ReadThrough,
            leases,
            store_latency_ms: Millis::of(40),
            network: NetworkConfig {
                latency: LatencyModel::Constant { ms: 1.0 },
                ..NetworkConfig::default()
            },
            ..Default::default()
        })
        .unwrap();
        act(&mut lab, PatternsLabAction::StopRequests {});
        lab.act(&ClusterAction::Fault(Fault::SetLinkLatency {
            from: STORE,
            to: CACHE,
            latency: Some(LatencyModel::Constant { ms: 30.0 }),
        }))
        .unwrap();
        act(&mut lab, PatternsLabAction::Read { key: 0 });
        run(&mut lab, 3);
        act(&mut lab, PatternsLabAction::Write { key: 0 });
        run(&mut lab, 60);
        act(&mut lab, PatternsLabAction::Read { key: 0 });
        run(&mut lab, 200);
        act(&mut lab, PatternsLabAction::Read { key: 0 });
        run(&mut lab, 300);
        lab
    }

    #[test]
    fn read_through_loads_overtaken_by_a_delete_fill_stale_without_leases() {
        let without = read_through_race(false);
        let l = without.lab();
        assert_eq!(l.checker().reads(), 3);
        // B joined the old load, and the next read hit its stale fill.
        assert_eq!(l.checker().stale_reads(), 2, "{:?}", l.counts());
        let with = read_through_race(true);
        let l = with.lab();
        assert_eq!(l.checker().reads(), 3);
        assert_eq!(l.checker().stale_reads(), 0, "{:?}", l.counts());
        assert_eq!(
            with.lab()
                .sim()
                .node(CACHE)
                .map(|n| n.stats().refused_fills),
            Some(1)
        );
    }

    #[test]
    fn every_pattern_serves_reads_and_writes() {
        for pattern in Pattern::ALL {
            let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
                pattern,
                seed: 4,
                ..Default::default()
            })
            .unwrap();
            run(&mut lab, 5_000);
            let l = lab.lab();
            let c = l.counts();
            let ratio = c.hits as f64 / (c.hits + c.misses) as f64;
            assert!(c.reads > 300 && c.writes > 50, "{pattern:?} {c:?}");
            assert!(ratio > 0.3, "{pattern:?} {c:?}");
            assert_eq!(c.failed_writes, 0, "{pattern:?}");
            assert!(c.max_dirty_seen <= 8, "{pattern:?}");
            if pattern != Pattern::WriteBack {
                assert_eq!(c.max_dirty_seen, 0, "{pattern:?}");
            }
        }
    }

    #[test]
    fn write_back_bounds_dirty_entries_and_counts_what_a_crash_loses() {
        let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            pattern: Pattern::WriteBack,
            write_probability: Probability::of(0.8),
            tick_ms: Millis::of(500),
            max_dirty: Count::of(4),
            arrivals: ArrivalProcess::Poisson {
                rate_per_sec: 300.0,
            },
            ..Default::default()
        })
        .unwrap();
        // Between two flushes (every 500 ms), so none is in flight at the crash.
        run(&mut lab, 2_250);
        let c = lab.lab().counts();
        assert_eq!(c.max_dirty_seen, 4, "{c:?}");
        assert!(lab.invariants()[1].ok);
        lab.act(&ClusterAction::Fault(Fault::Crash { node: CACHE }))
            .unwrap();
        act(&mut lab, PatternsLabAction::StopRequests {});
        run(&mut lab, 2_300);
        let c = lab.lab().counts();
        assert_eq!(c.cache_crashes, 1);
        assert!(c.lost_writes > 0 && c.lost_writes <= 4, "{c:?}");
        lab.act(&ClusterAction::Fault(Fault::Restart { node: CACHE }))
            .unwrap();
        let stale_before = lab.lab().checker().stale_reads();
        for key in 0..20 {
            act(&mut lab, PatternsLabAction::Read { key });
        }
        run(&mut lab, 2_500);
        // Each lost write is read back older than acknowledged, from the store.
        let stale = lab.lab().checker().stale_reads() - stale_before;
        assert_eq!(stale, c.lost_writes, "{c:?}");
    }

    /// Every hop 1 ms; `steps` one after another, 50 ms apart.
    fn sequential(config: PatternsLabConfig, steps: &[PatternsLabAction]) -> Cluster<PatternsLab> {
        let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            network: NetworkConfig {
                latency: LatencyModel::Constant { ms: 1.0 },
                ..NetworkConfig::default()
            },
            ..config
        })
        .unwrap();
        act(&mut lab, PatternsLabAction::StopRequests {});
        for (i, a) in steps.iter().enumerate() {
            act(&mut lab, a.clone());
            run(&mut lab, 50 * (i as u64 + 1));
        }
        lab
    }

    fn cached_version(lab: &Cluster<PatternsLab>, key: u32) -> Option<u64> {
        lab.lab()
            .sim()
            .node(CACHE)
            .and_then(|n| n.cached_entry(key))
            .map(|e| e.0.version)
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_entry() {
        use PatternsLabAction::Read;
        let lab = sequential(
            PatternsLabConfig {
                pattern: Pattern::ReadThrough,
                capacity: Count::of(3),
                ..Default::default()
            },
            // 0 is read again before 3 arrives, so 1 is the least recently used.
            &[
                Read { key: 0 },
                Read { key: 1 },
                Read { key: 2 },
                Read { key: 0 },
                Read { key: 3 },
            ],
        );
        let node = lab.lab().sim().node(CACHE).unwrap();
        assert_eq!(node.cached(), 3);
        assert_eq!(node.stats().evictions, 1);
        assert_eq!(cached_version(&lab, 1), None);
        for key in [0, 2, 3] {
            assert_eq!(cached_version(&lab, key), Some(0), "key {key}");
        }
        assert_eq!(lab.lab().counts().hits, 1);
        let fields = &lab.view().nodes[CACHE as usize].fields;
        assert_eq!(fields.get("evictions"), Some(&json!(1)));
    }

    /// Write-back's two dirty entries are the least recently used when three reads fill
    /// the cache past its capacity of 4; the clean ones go instead, and the dirty values
    /// are still read back (plain LRU would have evicted them, and the next read would
    /// have loaded version 0 from the store: a stale read).
    #[test]
    fn write_back_evicts_clean_entries_before_dirty_ones() {
        use PatternsLabAction::{Read, Write};
        let lab = sequential(
            PatternsLabConfig {
                pattern: Pattern::WriteBack,
                capacity: Count::of(4),
                max_dirty: Count::of(2),
                // No flush during the test: the two writes stay dirty.
                tick_ms: Millis::of(10_000),
                ..Default::default()
            },
            &[
                Write { key: 0 },
                Write { key: 1 },
                Read { key: 2 },
                Read { key: 3 },
                Read { key: 4 },
                Read { key: 5 },
                Read { key: 6 },
                Read { key: 0 },
                Read { key: 1 },
            ],
        );
        let node = lab.lab().sim().node(CACHE).unwrap();
        assert_eq!(node.dirty(), 2);
        assert_eq!(node.cached(), 4);
        assert_eq!(node.stats().evictions, 3);
        assert_eq!(
            lab.lab()
                .sim()
                .node(STORE)
                .and_then(|s| s.stored(0))
                .map(|e| e.version),
            Some(0)
        );
        assert_eq!(lab.lab().checker().reads(), 7);
        assert_eq!(lab.lab().checker().stale_reads(), 0);
        assert_eq!(
            (cached_version(&lab, 0), cached_version(&lab, 1)),
            (Some(1), Some(1))
        );
        assert!(lab.invariants().iter().all(|i| i.ok));
    }

    #[test]
    fn capacity_is_checked() {
        let e =
            crate::lab::json::from_value::<PatternsLabConfig>("config", &json!({"capacity": 0}))
                .unwrap_err()
                .to_string();
        assert!(e.contains("config.capacity`"), "{e}");
        let e = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            pattern: Pattern::WriteBack,
            capacity: Count::of(8),
            max_dirty: Count::of(8),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("`maxDirty`"), "{e}");
    }

    #[test]
    fn the_invariants_can_fail() {
        let mut c = StaleReadChecker::default();
        c.write_acked(3, 2, Time::from_millis(5));
        assert!(no_stale_reads(&c).ok);
        c.read(3, Time::from_millis(6), 1);
        assert!(!no_stale_reads(&c).ok);
        assert!(dirty_bounded(3, 3).ok);
        assert!(!dirty_bounded(4, 3).ok);
    }
}
