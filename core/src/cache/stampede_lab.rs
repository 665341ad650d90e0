//! The stampede lab, under two ids: `cache.stampede` (the defences in front) and
//! `scenario.thundering-herd` (the herd in front, [`crate::scenario::thundering_herd`]).
//! One workload of requests for a few hot keys (one by default) is fed to three caches
//! side by side under one seed — no protection, [`Singleflight`] and [`XFetch`] — each in
//! front of its own backing store. A load takes `loadMs` on an idle store and
//! `loadMsPerConcurrent` more for every load already in flight, the way a database slows
//! under the herd. When a hot key expires, every request that misses it loads it without
//! protection — the loads pile up and each gets slower — while singleflight sends one
//! load and lets the others wait for it, and XFetch has one reader recompute the value a
//! little before it expires, so no one misses.
//!
//! Charts: backing-store loads per second and mean request latency of each; the
//! invariant: singleflight never has two loads of one key in flight.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;

use crate::bounded::{Count, Millis, Probability};
use crate::cache::stampede::{Join, Singleflight, XFetch, jittered_ttl};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler, per_second};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::sketch::lab_support::SketchTrace;
use crate::time::{Duration, Time};

/// The most hot keys the lab's workload spreads over.
pub const MAX_HOT_KEYS: u32 = 1_000;
/// The most requests one `burst` action sends.
pub const MAX_BURST: u32 = 10_000;

/// How a cache in the lab meets a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protection {
    /// Every caller that misses loads.
    None,
    /// One load per key in flight; the others wait for it.
    Singleflight,
    /// Probabilistic early recomputation before expiry.
    Xfetch,
}

/// Which id the lab is and which cache it shows first.
pub trait StampedeFront: Clone + Debug + 'static {
    const ID: &'static str;
    /// The caches in the order shown.
    const ORDER: [Protection; 3];
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        Vec::new()
    }
}

/// `cache.stampede`: the defences first.
#[derive(Debug, Clone)]
pub struct DefencesFront;

impl StampedeFront for DefencesFront {
    const ID: &'static str = "cache.stampede";
    const ORDER: [Protection; 3] = [
        Protection::Singleflight,
        Protection::Xfetch,
        Protection::None,
    ];
}

local_lab_config! {
    /// Configuration of the stampede lab.
    pub struct StampedeLabConfig {
        /// When a request arrives (to all three caches at once).
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 200.0 },
        /// Hot keys the requests spread over, uniformly.
        pub keys: Count<1, { MAX_HOT_KEYS }> = Count::of(1),
        /// How long a loaded value stays valid.
        pub ttl_ms: Millis<10, 600_000> = Millis::of(2_000),
        /// TTLs are cut by a random fraction of at most this (0: every key lives `ttlMs`).
        pub ttl_jitter: Probability = Probability::of(0.0),
        /// How long a load takes on an idle backing store.
        pub load_ms: Millis<1, 60_000> = Millis::of(100),
        /// How much longer a load takes for every load already in flight at its store.
        pub load_ms_per_concurrent: Millis<0, 10_000> = Millis::of(10),
        /// XFetch's β (> 0; 1 is the paper's optimum, larger recomputes earlier).
        pub beta: f64 = 1.0,
    }
}

/// What can be done to the caches. JSON: `{"type": "request", "key": 0}`,
/// `{"type": "burst", "count": 100}`, `{"type": "expireAll"}` (and the kit's
/// `setArrivals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum StampedeLabAction {
    /// One request for `key` now, to every cache.
    Request { key: u32 },
    /// `count` requests for key 0 now (1 to 10 000): a herd on demand.
    Burst { count: u32 },
    /// Every cached value expires now, in every cache.
    ExpireAll {},
}

/// A cached value: when it expires and how long its load took (XFetch's δ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    expiry: Time,
    delta: Duration,
}

/// A load in flight at a backing store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Load {
    key: u32,
    started: Time,
    /// When each caller waiting on it arrived (singleflight's come from its flight).
    callers: Vec<Time>,
}

/// Running totals of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneTotals {
    pub requests: u64,
    pub hits: u64,
    pub loads: u64,
    /// Loads XFetch started before expiry.
    pub early_loads: u64,
    /// Requests answered (a hit, or when the load they wait on ends).
    pub answered: u64,
    pub latency_us: u64,
    pub max_latency_us: u64,
    /// The most loads in flight at once.
    pub peak_in_flight: u64,
}

impl LaneTotals {
    /// Mean latency of the answered requests in ms; zero before any is answered.
    pub fn mean_latency_ms(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.latency_us as f64 / self.answered as f64 / 1e3
        }
    }
}

/// One cache and its backing store.
#[derive(Debug, Clone)]
struct Lane {
    protection: Protection,
    entries: BTreeMap<u32, Entry>,
    flights: Singleflight<u32, Time>,
    /// By when it ends, then the order it started.
    loads: BTreeMap<(Time, u64), Load>,
    totals: LaneTotals,
    /// The first time singleflight had two loads of one key in flight.
    breach: Option<String>,
}

impl Lane {
    fn new(protection: Protection) -> Self {
        Lane {
            protection,
            entries: BTreeMap::new(),
            flights: Singleflight::new(),
            loads: BTreeMap::new(),
            totals: LaneTotals::default(),
            breach: None,
        }
    }

    fn name(&self) -> &'static str {
        match self.protection {
            Protection::None => "no protection",
            Protection::Singleflight => "singleflight",
            Protection::Xfetch => "XFetch",
        }
    }

    fn answer(&mut self, arrived: Time, now: Time) {
        let us = now.saturating_since(arrived).as_micros();
        self.totals.answered += 1;
        self.totals.latency_us += us;
        self.totals.max_latency_us = self.totals.max_latency_us.max(us);
    }
}

/// The stampede lab, shown as `F` says.
#[derive(Debug, Clone)]
pub struct StampedeLab<F: StampedeFront> {
    lanes: Vec<Lane>,
    xfetch: XFetch,
    rng: SimRng,
    keys: u32,
    ttl: Duration,
    ttl_jitter: f64,
    load: Duration,
    load_per_concurrent: Duration,
    next_load: u64,
    trace: SketchTrace,
    front: PhantomData<F>,
}

impl<F: StampedeFront> StampedeLab<F> {
    /// The totals of the cache with `protection`.
    pub fn totals_of(&self, protection: Protection) -> LaneTotals {
        self.lanes
            .iter()
            .find(|l| l.protection == protection)
            .map(|l| l.totals)
            .unwrap_or_default()
    }

    fn start_load(&mut self, lane: usize, key: u32, callers: Vec<Time>, at: Moment) {
        let (load, per) = (self.load, self.load_per_concurrent);
        let seq = self.next_load;
        self.next_load += 1;
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        if l.protection == Protection::Singleflight
            && l.breach.is_none()
            && l.loads.values().any(|x| x.key == key)
        {
            l.breach = Some(format!(
                "at {} singleflight started a second load of key {key}",
                at.now
            ));
        }
        let busy = l.loads.len() as u64;
        let takes = Duration::from_micros(load.as_micros() + per.as_micros() * busy);
        l.loads.insert(
            (at.now.saturating_add(takes), seq),
            Load {
                key,
                started: at.now,
                callers,
            },
        );
        l.totals.loads += 1;
        l.totals.peak_in_flight = l.totals.peak_in_flight.max(busy + 1);
        let name = l.name();
        self.trace.note(at, name, &format!("load {key}"), busy + 1);
    }

    /// One request for `key`, to every cache.
    fn request(&mut self, key: u32, at: Moment) {
        let now = at.now;
        for lane in 0..self.lanes.len() {
            let u = self.rng.next_f64_open0();
            let Some(l) = self.lanes.get_mut(lane) else {
                continue;
            };
            l.totals.requests += 1;
            let valid = l.entries.get(&key).copied().filter(|e| now < e.expiry);
            let load = match (l.protection, valid) {
                (Protection::Xfetch, Some(e)) => {
                    // u in (0, 1] by construction, so this cannot fail.
                    let early = self
                        .xfetch
                        .should_recompute(now, e.expiry, e.delta, u)
                        .unwrap_or(false);
                    l.totals.early_loads += u64::from(early);
                    early
                }
                (_, Some(_)) => false,
                (Protection::Singleflight, None) => {
                    matches!(l.flights.join(&key, now, now), Join::Load)
                }
                (_, None) => true,
            };
            if load {
                let callers = if l.protection == Protection::Singleflight {
                    Vec::new()
                } else {
                    vec![now]
                };
                self.start_load(lane, key, callers, at);
            } else if valid.is_some() {
                l.totals.hits += 1;
                l.answer(now, now);
            }
        }
    }

    /// The load ending first, if any: (lane, its key in the lane's loads).
    fn next_load_end(&self) -> Option<(usize, (Time, u64))> {
        self.lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.loads.keys().next().map(|k| (i, *k)))
            .min_by_key(|(_, k)| *k)
    }

    fn finish_load(&mut self, lane: usize, id: (Time, u64), at: Moment) {
        let u = self.rng.next_f64();
        let ttl = jittered_ttl(self.ttl, self.ttl_jitter, u).unwrap_or(self.ttl);
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        let Some(load) = l.loads.remove(&id) else {
            return;
        };
        let now = at.now;
        l.entries.insert(
            load.key,
            Entry {
                expiry: now.saturating_add(ttl),
                delta: now.saturating_since(load.started),
            },
        );
        let mut callers = load.callers;
        if l.protection == Protection::Singleflight {
            callers.extend(l.flights.finish(&load.key).unwrap_or_default());
        }
        for arrived in &callers {
            l.answer(*arrived, now);
        }
        let name = l.name();
        self.trace.note(
            at,
            name,
            &format!("loaded {}", load.key),
            callers.len() as u64,
        );
    }

    fn lane_fields(&self, l: &Lane, now: Time) -> BTreeMap<String, Value> {
        let t = l.totals;
        let mean = t.mean_latency_ms();
        let mut f = BTreeMap::from([
            ("requests".to_string(), json!(t.requests)),
            ("hits".into(), json!(t.hits)),
            ("backingLoads".into(), json!(t.loads)),
            ("loadsInFlight".into(), json!(l.loads.len())),
            ("peakLoadsInFlight".into(), json!(t.peak_in_flight)),
            ("meanLatencyMs".into(), json!(mean)),
            ("maxLatencyMs".into(), json!(t.max_latency_us as f64 / 1e3)),
        ]);
        if let Some(e) = l.entries.get(&0) {
            f.insert(
                "key0ExpiresInMs".into(),
                json!(e.expiry.saturating_since(now).as_millis_f64()),
            );
            if l.protection == Protection::Xfetch {
                f.insert(
                    "key0RecomputeProbability".into(),
                    json!(self.xfetch.recompute_probability(now, e.expiry, e.delta)),
                );
                f.insert("key0DeltaMs".into(), json!(e.delta.as_millis_f64()));
            }
        }
        match l.protection {
            Protection::Singleflight => {
                f.insert("coalesced".into(), json!(l.flights.coalesced()));
                f.insert("waitingOnKey0".into(), json!(l.flights.callers(&0)));
            }
            Protection::Xfetch => {
                f.insert("earlyRecomputes".into(), json!(t.early_loads));
                f.insert("beta".into(), json!(self.xfetch.beta()));
            }
            Protection::None => {}
        }
        f
    }

    fn chart(samples: &Sampler<Vec<LaneTotals>>, title: &str, offset: usize) -> Panel {
        let all = samples.series();
        Panel::Chart {
            title: title.into(),
            x_label: "time (ms)".into(),
            series: all
                .into_iter()
                .skip(offset)
                .step_by(3)
                .take(3)
                .collect::<Vec<Series>>(),
        }
    }

    fn table(&self) -> Panel {
        Panel::Table {
            title: "side by side".into(),
            columns: [
                "cache",
                "requests",
                "hits",
                "backing loads",
                "peak loads in flight",
                "mean latency ms",
                "max latency ms",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .lanes
                .iter()
                .map(|l| {
                    let t = l.totals;
                    vec![
                        json!(l.name()),
                        json!(t.requests),
                        json!(t.hits),
                        json!(t.loads),
                        json!(t.peak_in_flight),
                        json!(t.mean_latency_ms()),
                        json!(t.max_latency_us as f64 / 1e3),
                    ]
                })
                .collect(),
        }
    }
}

impl<F: StampedeFront> Sampled for StampedeLab<F> {
    /// Each lane's totals, in the lanes' order.
    type Totals = Vec<LaneTotals>;

    fn series(&self) -> Vec<(String, String)> {
        let mut s = Vec::new();
        for (what, unit) in [
            ("backing loads", "loads/s"),
            ("mean latency", "ms"),
            ("loads in flight", "loads"),
        ] {
            for l in &self.lanes {
                s.push((format!("{what}: {}", l.name()), unit.to_string()));
            }
        }
        s
    }

    fn totals(&self) -> Vec<LaneTotals> {
        self.lanes.iter().map(|l| l.totals).collect()
    }

    fn sample(&self, _at: Time, interval: Duration, since: &Vec<LaneTotals>) -> Vec<f64> {
        let zero = LaneTotals::default();
        let before = |i: usize| since.get(i).copied().unwrap_or(zero);
        let loads = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| per_second(l.totals.loads.saturating_sub(before(i).loads), interval));
        let latency = self.lanes.iter().enumerate().map(|(i, l)| {
            let n = l.totals.answered.saturating_sub(before(i).answered);
            let us = l.totals.latency_us.saturating_sub(before(i).latency_us);
            // Zero when nothing was answered in the interval, as every lab's
            // per-interval series do: NaN would not survive a replay check (NaN ≠ NaN).
            if n == 0 {
                0.0
            } else {
                us as f64 / n as f64 / 1e3
            }
        });
        let in_flight = self.lanes.iter().map(|l| l.loads.len() as f64);
        loads.chain(latency).chain(in_flight).collect()
    }
}

impl<F: StampedeFront> LocalLab for StampedeLab<F> {
    const ID: &'static str = F::ID;
    type Config = StampedeLabConfig;
    type Action = StampedeLabAction;

    fn new(c: &StampedeLabConfig) -> Result<Self> {
        Ok(StampedeLab {
            lanes: F::ORDER.into_iter().map(Lane::new).collect(),
            xfetch: XFetch::new(c.beta)?,
            rng: SimRng::derive(c.seed, 0x57a3),
            keys: c.keys.get(),
            ttl: c.ttl_ms.duration(),
            ttl_jitter: c.ttl_jitter.get(),
            load: c.load_ms.duration(),
            load_per_concurrent: c.load_ms_per_concurrent.duration(),
            next_load: 0,
            trace: SketchTrace::default(),
            front: PhantomData,
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.next_load_end().map(|(_, (t, _))| t)
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        if let Some((lane, id)) = self.next_load_end() {
            self.finish_load(lane, id, at);
        }
    }

    fn act(&mut self, at: Moment, action: &StampedeLabAction) -> Result<()> {
        match action {
            StampedeLabAction::Request { key } => {
                if *key >= self.keys {
                    return Err(DistlabError::field(
                        "key",
                        format!("must be below the lab's keys ({}), got {key}", self.keys),
                    ));
                }
                self.request(*key, at);
            }
            StampedeLabAction::Burst { count } => {
                if *count == 0 || *count > MAX_BURST {
                    return Err(DistlabError::field(
                        "count",
                        format!("must be between 1 and {MAX_BURST}, got {count}"),
                    ));
                }
                for _ in 0..*count {
                    self.request(0, at);
                }
            }
            StampedeLabAction::ExpireAll {} => {
                for l in &mut self.lanes {
                    for e in l.entries.values_mut() {
                        e.expiry = e.expiry.min(at.now);
                    }
                }
                self.trace.note(at, "all", "expire", 0);
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<Vec<LaneTotals>>) -> View {
        const NAME: &str = "singleflight: at most one backing load of a key in flight";
        let breach = self.lanes.iter().find_map(|l| l.breach.clone());
        let sf = self
            .lanes
            .iter()
            .position(|l| l.protection == Protection::Singleflight)
            .unwrap_or(0) as u32;
        View {
            nodes: self
                .lanes
                .iter()
                .enumerate()
                .map(|(i, l)| NodeView {
                    id: i as u32,
                    label: l.name().into(),
                    role: "cache".into(),
                    status: "up".into(),
                    fields: self.lane_fields(l, at.now),
                    group: None,
                })
                .collect(),
            panels: vec![
                Self::chart(samples, "backing-store loads per second", 0),
                Self::chart(samples, "mean request latency (ms)", 3),
                self.table(),
            ],
            invariants: vec![match breach {
                Some(d) => InvariantStatus::violated(NAME, d, vec![sf]),
                None => InvariantStatus::holds(
                    NAME,
                    format!(
                        "{} loads, {} callers coalesced",
                        self.totals_of(Protection::Singleflight).loads,
                        self.lanes
                            .iter()
                            .map(|l| l.flights.coalesced())
                            .sum::<u64>()
                    ),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<StampedeLabAction> {
        vec![
            StampedeLabAction::Request { key: 0 },
            StampedeLabAction::Burst { count: 100 },
            StampedeLabAction::ExpireAll {},
        ]
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        F::lessons()
    }
}

impl<F: StampedeFront> DrivenLab for StampedeLab<F> {
    fn arrivals(c: &StampedeLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let key = self.rng.below(u64::from(self.keys)) as u32;
        self.request(key, at);
    }
}

/// `cache.stampede`.
pub type StampedeDefencesLab = StampedeLab<DefencesFront>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, LabModel};

    fn run(config: StampedeLabConfig, secs: u64) -> Driven<StampedeDefencesLab> {
        let mut lab = Driven::<StampedeDefencesLab>::new(&config).unwrap();
        while lab.step_until(Time::from_millis(secs * 1_000)) {}
        lab
    }

    /// However many callers miss at once, singleflight sends one load per key per expiry:
    /// over 20 s of a 2 s TTL at most one fill and ten refills per key.
    #[test]
    fn singleflight_loads_once_per_key_per_expiry() {
        for keys in [1, 3] {
            let lab = run(
                StampedeLabConfig {
                    keys: Count::of(keys),
                    arrivals: ArrivalProcess::Poisson {
                        rate_per_sec: 1_000.0,
                    },
                    ..Default::default()
                },
                20,
            );
            let sf = lab.totals_of(Protection::Singleflight);
            assert!(sf.loads <= u64::from(keys) * 11, "{sf:?}");
            assert!(sf.loads >= u64::from(keys) * 9, "{sf:?}");
            assert!(sf.peak_in_flight <= u64::from(keys), "{sf:?}");
            let none = lab.totals_of(Protection::None);
            assert!(none.loads > 10 * sf.loads, "{none:?} vs {sf:?}");
            assert!(lab.view().invariants.iter().all(|i| i.ok));
        }
    }

    #[test]
    fn the_invariant_can_fail() {
        let mut lab = run(StampedeLabConfig::default(), 1);
        let at = Moment {
            now: Time::from_millis(1_000),
            step: 0,
        };
        lab.start_load(0, 0, Vec::new(), at);
        lab.start_load(0, 0, Vec::new(), at);
        let inv = &lab.view().invariants[0];
        assert!(!inv.ok, "{inv:?}");
        assert_eq!(inv.nodes, vec![0]);
    }

    #[test]
    fn bad_configs_and_actions_name_their_field() {
        for (bad, field) in [
            (json!({"beta": 0.0}), "beta"),
            (json!({"beta": -1.0}), "beta"),
            (json!({"keys": 0}), "keys"),
            (json!({"ttlJitter": 1.5}), "ttlJitter"),
        ] {
            let e = crate::create_lab("cache.stampede", &bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(field), "{bad}: {e}");
        }
        let mut lab = Driven::<StampedeDefencesLab>::new(&StampedeLabConfig::default()).unwrap();
        for (a, field) in [
            (StampedeLabAction::Request { key: 1 }, "key"),
            (StampedeLabAction::Burst { count: 0 }, "count"),
        ] {
            let e = lab.act(&DrivenAction::Lab(a)).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    /// A burst on an empty cache: one load with singleflight, one per request without.
    #[test]
    fn a_burst_on_a_cold_key_is_one_load_with_singleflight() {
        let mut lab = Driven::<StampedeDefencesLab>::new(&StampedeLabConfig {
            arrivals: ArrivalProcess::Constant {
                rate_per_sec: 0.001,
            },
            ..Default::default()
        })
        .unwrap();
        // The constant process's first arrival is at time zero.
        while lab.step_until(Time::ZERO) {}
        lab.act(&DrivenAction::Lab(StampedeLabAction::ExpireAll {}))
            .unwrap();
        let before = lab.totals_of(Protection::None).loads;
        lab.act(&DrivenAction::Lab(StampedeLabAction::Burst { count: 50 }))
            .unwrap();
        assert_eq!(lab.totals_of(Protection::None).loads - before, 50);
        assert!(lab.totals_of(Protection::Singleflight).loads <= 1);
    }
}
