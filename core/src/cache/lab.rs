//! The eviction-policy lab: one request trace played through LRU, LFU and W-TinyLFU side by
//! side, each of the same capacity, with their hit ratios over time and what each keeps —
//! LRU's recency list, LFU's frequency buckets, W-TinyLFU's window, probation and protected
//! segments and its sketch's estimates of the hottest keys.
//!
//! One lab under three ids, each opening with its policy in front: `cache.lru`,
//! `cache.lfu`, `cache.tinylfu`. The trace: requests arrive as `arrivals` says, keys drawn
//! from `keys` (Zipf by default); with `scan.every` > 0, after every `every` requests a scan
//! of `length` keys never seen before passes through (a backup, a report reading every
//! row): LRU flushes its hot keys for them, LFU and W-TinyLFU do not. A request is a `get`;
//! a miss puts the key (a read-through cache).
//!
//! References: see each policy's module ([`super::lru`], [`super::lfu`],
//! [`super::tinylfu`]); the comparison follows Einziger, Friedman & Manes 2017, §5.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hasher;
use std::marker::PhantomData;

use super::tinylfu::Segment;
use super::{EvictionCause, EvictionPolicy, Evictions, Lfu, Lru, TinyLfu};
use crate::bounded::Count;
use crate::error::Result;
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, View};
use crate::rng::SimRng;
use crate::sim::NodeId;
use crate::sim::trace::StableHasher;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess, KeyDistribution, KeySampler, within};
use crate::time::{Duration, Time};

/// Largest capacity in the lab: three caches of this many entries stay small in a page.
pub const MAX_LAB_CAPACITY: u32 = 100_000;
/// Longest scan.
pub const MAX_SCAN_LENGTH: u32 = 1_000_000;
/// Entries of each list shown.
pub const SHOWN_ENTRIES: usize = 48;
/// Recent requests shown and kept in the trace.
pub const RECENT_REQUESTS: usize = 40;
/// Hottest keys whose sketch estimates are shown.
pub const SHOWN_HOT_KEYS: u64 = 16;
/// Points kept per series: six series.
pub const CACHE_SERIES_POINTS: usize = 300;

/// The policies the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Policy {
    Lru,
    Lfu,
    TinyLfu,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Lru, Policy::Lfu, Policy::TinyLfu];
}

/// Which lab id this is and which policy it shows first.
pub trait Front: Clone + Debug + 'static {
    const ID: &'static str;
    const FRONT: Policy;
}

macro_rules! front {
    ($name:ident, $id:literal, $front:expr) => {
        #[doc = concat!("The policy lab as `", $id, "`.")]
        #[derive(Debug, Clone)]
        pub struct $name;
        impl Front for $name {
            const ID: &'static str = $id;
            const FRONT: Policy = $front;
        }
    };
}

front!(LruFront, "cache.lru", Policy::Lru);
front!(LfuFront, "cache.lfu", Policy::Lfu);
front!(TinyLfuFront, "cache.tinylfu", Policy::TinyLfu);

/// Scans of never-repeated keys mixed into the trace. JSON: `{"every": 500, "length":
/// 200}`; `every: 0` turns scans off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ScanPollution {
    /// Requests between scans (0: no scans).
    pub every: Count<0, { MAX_SCAN_LENGTH }>,
    /// Keys per scan.
    pub length: Count<1, { MAX_SCAN_LENGTH }>,
}

impl ScanPollution {
    pub const OFF: ScanPollution = ScanPollution {
        every: Count::of(0),
        length: Count::of(1),
    };
}

local_lab_config! {
    /// Configuration of the policy lab. JSON: `{"seed": 1, "capacity": 50, "arrivals":
    /// {"type": "poisson", "ratePerSec": 200}, "keys": {"type": "zipf", "keys": 1000, "s":
    /// 1}, "scan": {"every": 0, "length": 1}, "sampleMs": 100}`.
    pub struct CacheLabConfig {
        /// Entries each cache holds at most.
        pub capacity: Count<1, { MAX_LAB_CAPACITY }> = Count::of(50),
        /// When requests arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 200.0 },
        /// Which keys requests ask for.
        pub keys: KeyDistribution = KeyDistribution::Zipf { keys: 1_000, s: 1.0 },
        /// Scans of new keys passing through.
        pub scan: ScanPollution = ScanPollution::OFF,
    }
}

/// What can be done by hand. JSON: `{"type": "request", "key": 3}` (get, put on a miss),
/// `{"type": "get", "key": 3}`, `{"type": "put", "key": 3}`, `{"type": "remove", "key":
/// 3}`, `{"type": "setWorkload", "keys": {...}, "scan": {...}}`, `{"type": "setArrivals",
/// "arrivals": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CacheLabAction {
    /// A request for `key`, as the trace makes them: a get, and a put on a miss.
    Request {
        key: u64,
    },
    /// Only a get (counted as a hit or a miss); nothing is put on a miss.
    Get {
        key: u64,
    },
    /// Only a put.
    Put {
        key: u64,
    },
    Remove {
        key: u64,
    },
    /// Keys and scans follow these from now on (each when given).
    SetWorkload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        keys: Option<KeyDistribution>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        scan: Option<ScanPollution>,
    },
    /// Arrivals follow `arrivals` from now on.
    SetArrivals {
        arrivals: ArrivalProcess,
    },
}

/// One of the three caches.
#[derive(Debug, Clone)]
enum AnyPolicy {
    Lru(Lru<u64, u64>),
    Lfu(Lfu<u64, u64>),
    TinyLfu(TinyLfu<u64, u64>),
}

impl AnyPolicy {
    fn cache(&self) -> &dyn EvictionPolicy<u64, u64> {
        match self {
            AnyPolicy::Lru(c) => c,
            AnyPolicy::Lfu(c) => c,
            AnyPolicy::TinyLfu(c) => c,
        }
    }
    fn cache_mut(&mut self) -> &mut dyn EvictionPolicy<u64, u64> {
        match self {
            AnyPolicy::Lru(c) => c,
            AnyPolicy::Lfu(c) => c,
            AnyPolicy::TinyLfu(c) => c,
        }
    }
}

/// A policy and what the lab counted of it.
#[derive(Debug, Clone)]
struct Run {
    policy: Policy,
    cache: AnyPolicy,
    hits: u64,
    misses: u64,
    evicted: u64,
    rejected: u64,
    /// Hit (true) or miss of the newest requests, oldest first.
    recent: VecDeque<(u64, bool)>,
}

impl Run {
    fn new(policy: Policy, capacity: usize) -> Result<Run> {
        let cache = match policy {
            Policy::Lru => AnyPolicy::Lru(Lru::new(capacity)?),
            Policy::Lfu => AnyPolicy::Lfu(Lfu::new(capacity)?),
            Policy::TinyLfu => AnyPolicy::TinyLfu(TinyLfu::new(capacity)?),
        };
        Ok(Run {
            policy,
            cache,
            hits: 0,
            misses: 0,
            evicted: 0,
            rejected: 0,
            recent: VecDeque::new(),
        })
    }

    fn count(&mut self, out: Evictions<u64, u64>) {
        self.evicted += out.count(EvictionCause::Capacity) as u64;
        self.rejected += out.count(EvictionCause::Rejected) as u64;
    }

    fn get(&mut self, key: u64) -> bool {
        let hit = self.cache.cache_mut().get(&key).is_some();
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        if self.recent.len() >= RECENT_REQUESTS {
            self.recent.pop_front();
        }
        self.recent.push_back((key, hit));
        hit
    }

    fn put(&mut self, key: u64) {
        let out = self.cache.cache_mut().put(key, key);
        self.count(out);
    }

    fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn name(p: Policy) -> &'static str {
    match p {
        Policy::Lru => "LRU",
        Policy::Lfu => "LFU",
        Policy::TinyLfu => "W-TinyLFU",
    }
}

/// The invariants every run must keep: at most `capacity` entries, and one hit or miss
/// per get.
fn check_run(
    policy: Policy,
    len: usize,
    capacity: usize,
    counted: u64,
    gets: u64,
) -> Vec<InvariantStatus> {
    let n = name(policy);
    let size = format!("{n}: holds at most its capacity");
    let count = format!("{n}: every get is a hit or a miss");
    vec![
        if len <= capacity {
            InvariantStatus::holds(&size, format!("{len} of {capacity}"))
        } else {
            InvariantStatus::violated(&size, format!("{len} > {capacity}"), Vec::new())
        },
        if counted == gets {
            InvariantStatus::holds(&count, format!("{gets} gets"))
        } else {
            InvariantStatus::violated(
                &count,
                format!("{counted} hits and misses for {gets} gets"),
                Vec::new(),
            )
        },
    ]
}

/// The policy lab, under the id and with the front of `F`.
#[derive(Debug, Clone)]
pub struct CacheLab<F> {
    feed: ArrivalFeed,
    key_rng: SimRng,
    keys: KeyDistribution,
    key_sampler: KeySampler,
    scan: ScanPollution,
    /// Requests since the last scan ended, and keys left in the current scan.
    since_scan: u64,
    scan_left: u64,
    /// Scan keys count up from here, beyond every key `keys` draws.
    next_scan_key: u64,
    capacity: usize,
    /// Gets made, all policies alike.
    gets: u64,
    runs: Vec<Run>,
    hasher: StableHasher,
    _front: PhantomData<F>,
}

impl<F: Front> CacheLab<F> {
    fn next_key(&mut self) -> u64 {
        if self.scan_left > 0 {
            self.scan_left -= 1;
            let k = self.next_scan_key;
            self.next_scan_key = self.next_scan_key.saturating_add(1);
            return k;
        }
        let every = u64::from(self.scan.every.get());
        if every > 0 && self.since_scan >= every {
            self.since_scan = 0;
            self.scan_left = u64::from(self.scan.length.get());
            return self.next_key();
        }
        self.since_scan += 1;
        self.key_sampler.sample(&mut self.key_rng)
    }

    fn request(&mut self, key: u64, fill: bool) {
        self.gets += 1;
        self.hasher.write_u64(key);
        for run in &mut self.runs {
            let hit = run.get(key);
            self.hasher.write_u8(u8::from(hit));
            if !hit && fill {
                run.put(key);
            }
        }
    }

    fn front(&self) -> &Run {
        &self.runs[0]
    }

    fn side_by_side(&self) -> Panel {
        Panel::Table {
            title: "side by side (same trace, same capacity)".into(),
            columns: [
                "policy",
                "hits",
                "misses",
                "hit ratio",
                "entries",
                "evicted",
                "refused",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .runs
                .iter()
                .map(|r| {
                    vec![
                        json!(name(r.policy)),
                        json!(r.hits),
                        json!(r.misses),
                        json!(r.hit_ratio()),
                        json!(r.cache.cache().len()),
                        json!(r.evicted),
                        json!(r.rejected),
                    ]
                })
                .collect(),
        }
    }

    fn strip(title: String, keys: impl Iterator<Item = u64>, state: &str) -> Panel {
        Panel::Strip {
            title,
            items: keys
                .take(SHOWN_ENTRIES)
                .map(|k| StripItem {
                    label: k.to_string(),
                    state: state.into(),
                })
                .collect(),
        }
    }

    /// What `run` keeps, in its own terms.
    fn lists(&self, run: &Run) -> Vec<Panel> {
        match &run.cache {
            AnyPolicy::Lru(c) => vec![Self::strip(
                format!(
                    "LRU recency list, most recent first ({} of {})",
                    c.len().min(SHOWN_ENTRIES),
                    c.len()
                ),
                c.iter().map(|(k, _)| *k),
                "entry",
            )],
            AnyPolicy::Lfu(c) => {
                let mut rows: Vec<Vec<Value>> = Vec::new();
                let mut keys: Vec<(u64, Vec<u64>)> = Vec::new();
                for (k, _, count) in c.iter() {
                    match keys.last_mut() {
                        Some((n, ks)) if *n == count => ks.push(*k),
                        _ => keys.push((count, vec![*k])),
                    }
                }
                for (count, ks) in keys.iter().rev().take(SHOWN_ENTRIES) {
                    let shown: Vec<u64> = ks.iter().rev().take(12).copied().collect();
                    rows.push(vec![json!(count), json!(ks.len()), json!(shown)]);
                }
                vec![Panel::Table {
                    title: "LFU frequency buckets, highest count first (keys most recent \
                            first; the victim is the last key of the lowest count)"
                        .into(),
                    columns: ["count", "entries", "keys"].map(String::from).to_vec(),
                    rows,
                }]
            }
            AnyPolicy::TinyLfu(c) => {
                let s = c.sizes();
                let mut panels: Vec<Panel> = [
                    (Segment::Window, "window (LRU)", s.window),
                    (Segment::Probation, "probation", s.main - s.protected),
                    (Segment::Protected, "protected", s.protected),
                ]
                .into_iter()
                .map(|(seg, what, size)| {
                    let keys = c.keys_of(seg);
                    Self::strip(
                        format!(
                            "W-TinyLFU {what}: {} of {size}, most recent first",
                            keys.len()
                        ),
                        keys.into_iter().copied(),
                        what.split(' ').next().unwrap_or(what),
                    )
                })
                .collect();
                let hot = self.key_sampler.keys().min(SHOWN_HOT_KEYS);
                panels.push(Panel::Table {
                    title: format!(
                        "W-TinyLFU frequency sketch: the {hot} hottest keys (halved {} \
                         times; {} of {} increments until the next halving)",
                        c.sketch().resets(),
                        c.sketch().additions(),
                        c.sketch().sample_size()
                    ),
                    columns: ["key", "estimate", "segment"].map(String::from).to_vec(),
                    rows: (0..hot)
                        .map(|k| {
                            vec![
                                json!(k),
                                json!(c.frequency(&k)),
                                json!(c.segment(&k).map_or("—".into(), |s| json!(s))),
                            ]
                        })
                        .collect(),
                });
                panels
            }
        }
    }

    fn node(&self, id: NodeId, run: &Run) -> NodeView {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("hits".into(), json!(run.hits));
        fields.insert("misses".into(), json!(run.misses));
        fields.insert("hitRatio".into(), json!(run.hit_ratio()));
        fields.insert("entries".into(), json!(run.cache.cache().len()));
        fields.insert("capacity".into(), json!(self.capacity));
        fields.insert("evicted".into(), json!(run.evicted));
        if let AnyPolicy::TinyLfu(c) = &run.cache {
            let a = c.admission();
            fields.insert("admitted".into(), json!(a.admitted));
            fields.insert("refused".into(), json!(a.rejected));
        }
        NodeView {
            id,
            label: name(run.policy).into(),
            role: "cache".into(),
            status: "up".into(),
            fields,
            group: None,
        }
    }
}

impl<F: Front> Sampled for CacheLab<F> {
    /// Each run's hits and misses so far.
    type Totals = Vec<(u64, u64)>;

    fn series(&self) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = self
            .runs
            .iter()
            .map(|r| (name(r.policy).into(), "hit ratio per interval".into()))
            .collect();
        s.extend(
            self.runs
                .iter()
                .map(|r| (name(r.policy).into(), "hit ratio so far".into())),
        );
        s
    }

    fn totals(&self) -> Vec<(u64, u64)> {
        self.runs.iter().map(|r| (r.hits, r.misses)).collect()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &Vec<(u64, u64)>) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (h0, m0) = since.get(i).copied().unwrap_or_default();
                let (h, m) = (r.hits - h0, r.misses - m0);
                ratio(h, h + m)
            })
            .collect();
        v.extend(self.runs.iter().map(Run::hit_ratio));
        v
    }
}

impl<F: Front> LocalLab for CacheLab<F> {
    const ID: &'static str = F::ID;
    type Config = CacheLabConfig;
    type Action = CacheLabAction;
    const SERIES_POINTS: usize = CACHE_SERIES_POINTS;

    fn new(c: &CacheLabConfig) -> Result<Self> {
        let capacity = c.capacity.get() as usize;
        let mut policies = Policy::ALL.to_vec();
        policies.retain(|&p| p != F::FRONT);
        policies.insert(0, F::FRONT);
        let runs = policies
            .into_iter()
            .map(|p| Run::new(p, capacity))
            .collect::<Result<Vec<_>>>()?;
        let key_sampler = KeySampler::new(&c.keys).map_err(|e| within("keys", e))?;
        Ok(CacheLab {
            feed: ArrivalFeed::new(c.seed, &c.arrivals, Time::ZERO)?,
            key_rng: SimRng::derive(c.seed, 1),
            keys: c.keys,
            next_scan_key: key_sampler.keys(),
            key_sampler,
            scan: c.scan,
            since_scan: 0,
            scan_left: 0,
            capacity,
            gets: 0,
            runs,
            hasher: StableHasher::default(),
            _front: PhantomData,
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        Some(self.feed.next_at())
    }

    fn on_event(&mut self, _due: Time, _at: Moment) {
        self.feed.take();
        let key = self.next_key();
        self.request(key, true);
    }

    fn act(&mut self, at: Moment, action: &CacheLabAction) -> Result<()> {
        match action {
            CacheLabAction::Request { key } => self.request(*key, true),
            CacheLabAction::Get { key } => self.request(*key, false),
            CacheLabAction::Put { key } => {
                self.hasher.write_u64(!*key);
                for run in &mut self.runs {
                    run.put(*key);
                }
            }
            CacheLabAction::Remove { key } => {
                self.hasher.write_u64(key.rotate_left(32));
                for run in &mut self.runs {
                    run.cache.cache_mut().remove(key);
                }
            }
            CacheLabAction::SetWorkload { keys, scan } => {
                if let Some(keys) = keys {
                    let sampler = KeySampler::new(keys).map_err(|e| within("keys", e))?;
                    // Scan keys stay beyond every key the new distribution draws.
                    self.next_scan_key = self.next_scan_key.max(sampler.keys());
                    self.key_sampler = sampler;
                    self.keys = *keys;
                }
                if let Some(scan) = scan {
                    self.scan = *scan;
                    self.since_scan = 0;
                    self.scan_left = 0;
                }
            }
            CacheLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(arrivals, at.now)?;
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<Vec<(u64, u64)>>) -> View {
        let front = self.front();
        let mut panels = vec![self.side_by_side()];
        panels.push(Panel::Strip {
            title: format!("{}: the newest requests (hit or miss)", name(front.policy)),
            items: front
                .recent
                .iter()
                .map(|&(k, hit)| StripItem {
                    label: k.to_string(),
                    state: if hit { "hit" } else { "miss" }.into(),
                })
                .collect(),
        });
        for run in &self.runs {
            panels.extend(self.lists(run));
        }
        panels.push(Panel::Table {
            title: "workload".into(),
            columns: vec!["knob".into(), "value".into()],
            rows: vec![
                vec![json!("arrivals"), json!(self.feed.process())],
                vec![json!("keys"), json!(self.keys)],
                vec![json!("scan"), json!(self.scan)],
                vec![json!("capacity"), json!(self.capacity)],
            ],
        });
        let invariants = self
            .runs
            .iter()
            .flat_map(|r| {
                check_run(
                    r.policy,
                    r.cache.cache().len(),
                    self.capacity,
                    r.hits + r.misses,
                    self.gets,
                )
            })
            .collect();
        View {
            nodes: self
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| self.node(i as NodeId, r))
                .collect(),
            panels,
            invariants,
            ..View::default()
        }
    }

    fn trace(&self, at: Moment) -> Value {
        let recent: Vec<Value> = self
            .front()
            .recent
            .iter()
            .map(|&(k, hit)| json!({"key": k, "hit": hit}))
            .collect();
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": at.step,
            "complete": self.gets as usize <= RECENT_REQUESTS,
            "trace": recent,
        })
    }

    fn example_actions() -> Vec<CacheLabAction> {
        vec![
            CacheLabAction::Request { key: 0 },
            CacheLabAction::Get { key: 7 },
            CacheLabAction::Put { key: 123_456 },
            CacheLabAction::Remove { key: 0 },
            CacheLabAction::SetWorkload {
                keys: None,
                scan: Some(ScanPollution {
                    every: Count::of(200),
                    length: Count::of(100),
                }),
            },
            CacheLabAction::SetWorkload {
                keys: Some(KeyDistribution::Zipf { keys: 200, s: 1.2 }),
                scan: Some(ScanPollution::OFF),
            },
            CacheLabAction::SetArrivals {
                arrivals: ArrivalProcess::Constant {
                    rate_per_sec: 500.0,
                },
            },
        ]
    }
}

/// `cache.lru`.
pub type LruLab = CacheLab<LruFront>;
/// `cache.lfu`.
pub type LfuLab = CacheLab<LfuFront>;
/// `cache.tinylfu`.
pub type TinyLfuLab = CacheLab<TinyLfuFront>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Local, Runner};

    fn lab<F: Front>(config: Value) -> Runner<Local<CacheLab<F>>> {
        Runner::from_json(&config).unwrap()
    }

    fn ratios(v: &View) -> Vec<(String, f64)> {
        let Panel::Table { rows, .. } = &v.panels[0] else {
            panic!("the side-by-side table comes first")
        };
        rows.iter()
            .map(|r| (r[0].as_str().unwrap().to_string(), r[3].as_f64().unwrap()))
            .collect()
    }

    #[test]
    fn every_front_opens_with_its_policy() {
        fn check<F: Front>(label: &str) {
            let mut l = lab::<F>(Value::Null);
            l.step(Duration::from_secs(2)).unwrap();
            let v = l.view();
            assert_eq!(v.nodes.len(), 3);
            assert_eq!(v.nodes[0].label, label);
            assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
            assert!(!v.metrics.is_empty());
        }
        check::<LruFront>("LRU");
        check::<LfuFront>("LFU");
        check::<TinyLfuFront>("W-TinyLFU");
    }

    #[test]
    fn scans_flush_lru_but_not_tinylfu() {
        let mut l = lab::<TinyLfuFront>(json!({
            "capacity": 100,
            "arrivals": {"type": "constant", "ratePerSec": 1000},
            "scan": {"every": 300, "length": 200},
        }));
        l.step(Duration::from_secs(30)).unwrap();
        let r = ratios(&l.view());
        let get = |n: &str| r.iter().find(|x| x.0 == n).unwrap().1;
        assert!(get("W-TinyLFU") > get("LRU") + 0.05, "{r:?}");
        assert!(get("LFU") > get("LRU"), "{r:?}");
    }

    #[test]
    fn hand_actions_reach_every_policy() {
        let mut l = lab::<LruFront>(json!({"arrivals": {"type": "poisson", "ratePerSec": 1e-6}}));
        l.act(&json!({"type": "get", "key": 5})).unwrap();
        l.act(&json!({"type": "request", "key": 5})).unwrap();
        l.act(&json!({"type": "request", "key": 5})).unwrap();
        let v = l.view();
        for n in &v.nodes {
            assert_eq!(
                (n.fields["hits"].clone(), n.fields["misses"].clone()),
                (json!(1), json!(2))
            );
        }
        l.act(&json!({"type": "remove", "key": 5})).unwrap();
        l.act(&json!({"type": "put", "key": 9})).unwrap();
        let v = l.view();
        assert!(v.nodes.iter().all(|n| n.fields["entries"] == json!(1)));
    }

    #[test]
    fn both_invariants_can_fail() {
        let bad = check_run(Policy::Lfu, 11, 10, 5, 6);
        assert!(bad.iter().all(|i| !i.ok), "{bad:?}");
        assert!(check_run(Policy::Lfu, 10, 10, 6, 6).iter().all(|i| i.ok));
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"capacity": 0}), "config.capacity"),
            (
                json!({"keys": {"type": "zipf", "keys": 0, "s": 1}}),
                "config.keys.keys",
            ),
            (
                json!({"scan": {"every": 1, "length": 0}}),
                "config.scan.length",
            ),
            (
                json!({"arrivals": {"type": "poisson", "ratePerSec": -1}}),
                "config.arrivals.ratePerSec",
            ),
        ] {
            let e = Runner::<Local<LruLab>>::from_json(&config).err().unwrap();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{config}: {e}"
            );
        }
        let mut l = lab::<LruFront>(Value::Null);
        l.step_events(5).unwrap();
        let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
        let e = l
            .act(&json!({"type": "setWorkload", "keys": {"type": "uniform", "keys": 0}}))
            .unwrap_err();
        assert!(e.to_string().contains("`action.keys.keys`"), "{e}");
        assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
    }
}
