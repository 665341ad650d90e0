//! The `cache.ttl` lab: keys with a time to live in a [`TtlCache`], read and written by a
//! workload, expired lazily (a read finds a key past its time) and actively (Redis's
//! sampling cycle, `hz` times a simulated second). It shows the expiry timeline — keys with
//! their TTLs, live or expired-but-still-held —, how many keys each mechanism removed, and
//! the memory expired keys hold until one of them finds them.
//!
//! With `activeExpiry` off only lazy expiry is left, and cold keys (rarely read under
//! Zipf) hold their memory forever: the reason Redis samples. Reference: Redis
//! `src/expire.c`, see [`super::ttl`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::Hasher;

use super::ttl::{ActiveExpiry, TtlCache};
use crate::bounded::{Count, Millis, Probability};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, TimelineBar, View};
use crate::rng::SimRng;
use crate::sim::trace::StableHasher;
use crate::sim::workload::{ArrivalProcess, KeyDistribution, KeySampler, within};
use crate::time::{Duration, Time};

/// Largest capacity in the lab.
pub const MAX_TTL_LAB_CAPACITY: u32 = 100_000;
/// Longest TTL: an hour.
pub const MAX_TTL_MS: u32 = 3_600_000;
/// Most expiry cycles per simulated second (Redis allows `hz` up to 500).
pub const MAX_HZ: u32 = 500;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: u32 = 1 << 20;
/// Keys shown on the timeline.
pub const SHOWN_KEYS: usize = 24;
/// Cycles kept for the strip and the trace.
pub const RECENT_CYCLES: usize = 30;

local_lab_config! {
    /// Configuration of the TTL lab. JSON: `{"seed": 1, "capacity": 1000, "arrivals":
    /// {"type": "poisson", "ratePerSec": 100}, "keys": {"type": "zipf", "keys": 500, "s":
    /// 1}, "writeProbability": 0.3, "ttlMs": 2000, "persistentProbability": 0.1, "hz": 10,
    /// "keysPerLoop": 20, "stalePercent": 25, "maxLoops": 16, "activeExpiry": true,
    /// "valueBytes": 100, "sampleMs": 100}`.
    pub struct TtlLabConfig {
        /// Entries held at most (least recently used evicted beyond).
        pub capacity: Count<1, { MAX_TTL_LAB_CAPACITY }> = Count::of(1_000),
        /// When requests arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 100.0 },
        /// Which keys requests touch.
        pub keys: KeyDistribution = KeyDistribution::Zipf { keys: 500, s: 1.0 },
        /// Share of requests that write (`SET key value EX ttl`); the rest read.
        pub write_probability: Probability = Probability::of(0.3),
        /// Time to live of a written key.
        pub ttl_ms: Millis<1, { MAX_TTL_MS }> = Millis::of(2_000),
        /// Share of writes without a TTL.
        pub persistent_probability: Probability = Probability::of(0.1),
        /// Active expiry cycles per second.
        pub hz: Count<1, { MAX_HZ }> = Count::of(10),
        /// Keys drawn per loop of a cycle.
        pub keys_per_loop: Count<1, 10_000> = Count::of(20),
        /// Loop again while more than this percentage of a draw had expired.
        pub stale_percent: Count<0, 100> = Count::of(25),
        /// Loops per cycle at most.
        pub max_loops: Count<1, 10_000> = Count::of(16),
        /// Whether cycles run at all (off: lazy expiry only).
        pub active_expiry: bool = true,
        /// Bytes a value takes, for the memory figures.
        pub value_bytes: Count<1, { MAX_VALUE_BYTES }> = Count::of(100),
    }
}

/// What can be done by hand. JSON: `{"type": "get", "key": 3}`, `{"type": "put", "key": 3,
/// "ttlMs": 500}` (no `ttlMs`: no TTL), `{"type": "remove", "key": 3}`, `{"type":
/// "expireCycle"}`, `{"type": "setActiveExpiry", "on": false}`, `{"type": "setWorkload",
/// ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TtlLabAction {
    Get {
        key: u64,
    },
    Put {
        key: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        ttl_ms: Option<Millis<1, { MAX_TTL_MS }>>,
    },
    Remove {
        key: u64,
    },
    /// One active expiry cycle now.
    ExpireCycle {},
    /// Turns the periodic cycles on or off.
    SetActiveExpiry {
        on: bool,
    },
    /// Keys, the write share and the TTL from now on (each when given).
    SetWorkload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        keys: Option<KeyDistribution>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        write_probability: Option<Probability>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        ttl_ms: Option<Millis<1, { MAX_TTL_MS }>>,
    },
}

/// One active cycle as the strip shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct CycleRecord {
    at_ms: f64,
    loops: u32,
    sampled: u32,
    expired: usize,
}

/// The TTL lab.
#[derive(Debug, Clone)]
pub struct TtlLab {
    cache: TtlCache<u64, u64>,
    rng: SimRng,
    expiry_rng: SimRng,
    keys: KeyDistribution,
    key_sampler: KeySampler,
    write_probability: Probability,
    ttl: Duration,
    persistent_probability: Probability,
    cycle_every: Duration,
    next_cycle_at: Time,
    active: bool,
    value_bytes: u64,
    reads: u64,
    hits: u64,
    writes: u64,
    /// Reads that returned a key past its time: must stay 0.
    stale_reads: u64,
    cycles: Vec<CycleRecord>,
    hasher: StableHasher,
}

/// The invariant: no read returned an expired value.
fn check_stale(stale_reads: u64) -> InvariantStatus {
    let name = "no read returns an expired key";
    if stale_reads == 0 {
        InvariantStatus::holds(name, "every hit was within its TTL")
    } else {
        InvariantStatus::violated(name, format!("{stale_reads} stale reads"), vec![0])
    }
}

impl TtlLab {
    fn read(&mut self, now: Time, key: u64) {
        self.reads += 1;
        self.hasher.write_u64(key);
        let expires_at = self.cache.expires_at(&key).flatten();
        if self.cache.get(now, &key).is_some() {
            self.hits += 1;
            if expires_at.is_some_and(|t| now >= t) {
                self.stale_reads += 1;
            }
        }
    }

    fn write(&mut self, now: Time, key: u64, ttl: Option<Duration>) -> Result<()> {
        self.cache.put(now, key, key, ttl)?;
        self.writes += 1;
        self.hasher.write_u64(!key);
        Ok(())
    }

    fn cycle(&mut self, now: Time) {
        let c = self.cache.active_expire_cycle(now, &mut self.expiry_rng);
        self.hasher.write_u32(c.sampled);
        if self.cycles.len() >= RECENT_CYCLES {
            self.cycles.remove(0);
        }
        self.cycles.push(CycleRecord {
            at_ms: now.as_millis_f64(),
            loops: c.loops,
            sampled: c.sampled,
            expired: c.expired.len(),
        });
    }

    fn timeline(&self, now: Time) -> Panel {
        // The keys with a TTL nearest to expiring (or longest expired), up to SHOWN_KEYS.
        let mut with_ttl: Vec<(Time, u64)> = self
            .cache
            .iter()
            .filter_map(|(k, _, t)| t.map(|t| (t, *k)))
            .collect();
        // The soonest SHOWN_KEYS without sorting them all (a view is built every frame).
        if with_ttl.len() > SHOWN_KEYS {
            with_ttl.select_nth_unstable(SHOWN_KEYS);
            with_ttl.truncate(SHOWN_KEYS);
        }
        with_ttl.sort_unstable();
        let now_ms = now.as_millis_f64();
        let bars = with_ttl
            .iter()
            .enumerate()
            .map(|(lane, &(t, k))| {
                let at = t.as_millis_f64();
                let expired = now >= t;
                TimelineBar {
                    lane: lane as u32,
                    start: if expired { at } else { now_ms },
                    end: Some(if expired { now_ms } else { at }),
                    label: if expired {
                        format!("key {k}: expired, still held")
                    } else {
                        format!("key {k}: expires at {at:.0} ms")
                    },
                    state: if expired { "expired" } else { "live" }.into(),
                    order: None,
                }
            })
            .collect();
        Panel::Timeline {
            title: "keys with a TTL, soonest first: live until their bar ends; an expired key \
                    held in memory shows from its expiry to now"
                .into(),
            lanes: with_ttl.iter().map(|(_, k)| format!("key {k}")).collect(),
            bars,
        }
    }
}

impl Sampled for TtlLab {
    /// Keys expired lazily and actively so far.
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("lazily expired", "keys per interval"),
            ("actively expired", "keys per interval"),
            ("expired but held", "keys"),
            ("keys with a TTL", "keys"),
            ("keys held", "keys"),
            ("held by expired keys", "bytes"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    fn totals(&self) -> (u64, u64) {
        let s = self.cache.stats();
        (s.lazily_expired, s.actively_expired)
    }

    fn sample(&self, at: Time, _interval: Duration, since: &(u64, u64)) -> Vec<f64> {
        let (lazy, active) = self.totals();
        let held = self.cache.expired_held(at) as u64;
        vec![
            (lazy - since.0) as f64,
            (active - since.1) as f64,
            held as f64,
            self.cache.volatile_len() as f64,
            self.cache.len() as f64,
            (held * self.value_bytes) as f64,
        ]
    }
}

impl LocalLab for TtlLab {
    const ID: &'static str = "cache.ttl";
    type Config = TtlLabConfig;
    type Action = TtlLabAction;

    fn new(c: &TtlLabConfig) -> Result<Self> {
        let expiry = ActiveExpiry {
            keys_per_loop: c.keys_per_loop.get(),
            stale_percent: c.stale_percent.get(),
            max_loops: c.max_loops.get(),
        };
        let cycle_every = Duration(1_000_000 / u64::from(c.hz.get()));
        Ok(TtlLab {
            cache: TtlCache::new(c.capacity.get() as usize, expiry)?,
            rng: SimRng::derive(c.seed, 1),
            expiry_rng: SimRng::derive(c.seed, 2),
            keys: c.keys,
            key_sampler: KeySampler::new(&c.keys).map_err(|e| within("keys", e))?,
            write_probability: c.write_probability,
            ttl: c.ttl_ms.duration(),
            persistent_probability: c.persistent_probability,
            cycle_every,
            next_cycle_at: Time::ZERO.saturating_add(cycle_every),
            active: c.active_expiry,
            value_bytes: u64::from(c.value_bytes.get()),
            reads: 0,
            hits: 0,
            writes: 0,
            stale_reads: 0,
            cycles: Vec::new(),
            hasher: StableHasher::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.active.then_some(self.next_cycle_at)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if self.active && due == self.next_cycle_at {
            self.cycle(at.now);
            self.next_cycle_at = self.next_cycle_at.saturating_add(self.cycle_every);
        }
    }

    fn act(&mut self, at: Moment, action: &TtlLabAction) -> Result<()> {
        match action {
            TtlLabAction::Get { key } => self.read(at.now, *key),
            TtlLabAction::Put { key, ttl_ms } => {
                self.write(at.now, *key, ttl_ms.map(|t| t.duration()))?
            }
            TtlLabAction::Remove { key } => {
                self.hasher.write_u64(key.rotate_left(32));
                self.cache.remove(key);
            }
            TtlLabAction::ExpireCycle {} => self.cycle(at.now),
            TtlLabAction::SetActiveExpiry { on } => {
                if *on && !self.active {
                    self.next_cycle_at = at.now.saturating_add(self.cycle_every);
                }
                self.active = *on;
            }
            TtlLabAction::SetWorkload {
                keys,
                write_probability,
                ttl_ms,
            } => {
                let sampler = keys
                    .map(|k| KeySampler::new(&k).map_err(|e| within("keys", e)))
                    .transpose()?;
                if let (Some(k), Some(s)) = (keys, sampler) {
                    self.keys = *k;
                    self.key_sampler = s;
                }
                if let Some(p) = write_probability {
                    self.write_probability = *p;
                }
                if let Some(t) = ttl_ms {
                    self.ttl = t.duration();
                }
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, _samples: &Sampler<(u64, u64)>) -> View {
        let s = self.cache.stats();
        let held = self.cache.expired_held(at.now);
        let mut fields = BTreeMap::new();
        fields.insert("keys".into(), json!(self.cache.len()));
        fields.insert("keysWithTtl".into(), json!(self.cache.volatile_len()));
        fields.insert("expiredButHeld".into(), json!(held));
        fields.insert(
            "bytesHeldByExpired".into(),
            json!(held as u64 * self.value_bytes),
        );
        fields.insert("lazilyExpired".into(), json!(s.lazily_expired));
        fields.insert("activelyExpired".into(), json!(s.actively_expired));
        fields.insert("evicted".into(), json!(s.evicted));
        fields.insert("reads".into(), json!(self.reads));
        fields.insert("hits".into(), json!(self.hits));
        fields.insert("writes".into(), json!(self.writes));
        fields.insert("activeExpiry".into(), json!(self.active));
        let panels = vec![
            self.timeline(at.now),
            Panel::Table {
                title: "how expired keys left".into(),
                columns: ["mechanism", "keys", "note"].map(String::from).to_vec(),
                rows: vec![
                    vec![
                        json!("lazy (on access)"),
                        json!(s.lazily_expired),
                        json!("a read or write found the key past its time"),
                    ],
                    vec![
                        json!("active (sampling)"),
                        json!(s.actively_expired),
                        json!(format!("{} cycles sampled {} keys", s.cycles, s.sampled)),
                    ],
                    vec![
                        json!("still held"),
                        json!(held),
                        json!(format!("{} bytes", held as u64 * self.value_bytes)),
                    ],
                    vec![
                        json!("evicted for room (LRU)"),
                        json!(s.evicted),
                        json!(format!("capacity {}", self.cache.capacity())),
                    ],
                ],
            },
            Panel::Strip {
                title: "the newest active cycles: expired of sampled (loops)".into(),
                items: self
                    .cycles
                    .iter()
                    .map(|c| StripItem {
                        label: format!("{}/{} ({})", c.expired, c.sampled, c.loops),
                        state: if c.loops > 1 { "repeated" } else { "one draw" }.into(),
                    })
                    .collect(),
            },
            Panel::Table {
                title: "workload".into(),
                columns: vec!["knob".into(), "value".into()],
                rows: vec![
                    vec![json!("keys"), json!(self.keys)],
                    vec![json!("write probability"), json!(self.write_probability)],
                    vec![json!("ttl ms"), json!(self.ttl.as_millis_f64())],
                    vec![json!("cycle sampling"), json!(self.cache.expiry())],
                ],
            },
        ];
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "TTL cache".into(),
                role: "cache".into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels,
            invariants: vec![check_stale(self.stale_reads)],
            ..View::default()
        }
    }

    fn trace(&self, at: Moment) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": at.step,
            "complete": self.cycles.len() < RECENT_CYCLES,
            "trace": self.cycles,
        })
    }

    fn example_actions() -> Vec<TtlLabAction> {
        vec![
            TtlLabAction::Put {
                key: 1,
                ttl_ms: Some(Millis::of(300)),
            },
            TtlLabAction::Get { key: 1 },
            TtlLabAction::Remove { key: 1 },
            TtlLabAction::ExpireCycle {},
            TtlLabAction::SetActiveExpiry { on: false },
            TtlLabAction::SetActiveExpiry { on: true },
            TtlLabAction::SetWorkload {
                keys: Some(KeyDistribution::Uniform { keys: 2_000 }),
                write_probability: Some(Probability::of(0.8)),
                ttl_ms: Some(Millis::of(500)),
            },
        ]
    }
}

impl DrivenLab for TtlLab {
    fn arrivals(c: &TtlLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let key = self.key_sampler.sample(&mut self.rng);
        if self.rng.chance(self.write_probability.get()) {
            let ttl = (!self.rng.chance(self.persistent_probability.get())).then_some(self.ttl);
            // The TTL is positive by its type, so the put cannot fail.
            let _ = self.write(at.now, key, ttl);
        } else {
            self.read(at.now, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<TtlLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn field(l: &Runner<Driven<TtlLab>>, f: &str) -> u64 {
        l.view().nodes[0].fields[f].as_u64().unwrap()
    }

    #[test]
    fn active_expiry_frees_what_lazy_expiry_leaves_behind() {
        let config = |on: bool| {
            json!({"activeExpiry": on, "ttlMs": 500, "writeProbability": 0.5,
                   "keys": {"type": "zipf", "keys": 2000, "s": 1}})
        };
        let mut lazy = lab(config(false));
        let mut active = lab(config(true));
        lazy.step(Duration::from_secs(20)).unwrap();
        active.step(Duration::from_secs(20)).unwrap();
        assert_eq!(field(&lazy, "activelyExpired"), 0);
        assert!(field(&active, "activelyExpired") > 100);
        let (l, a) = (
            field(&lazy, "expiredButHeld"),
            field(&active, "expiredButHeld"),
        );
        assert!(l > 4 * a.max(1), "lazy only holds {l}, with sampling {a}");
        // Sampling keeps the expired share near Redis's 25 % target or below.
        assert!(a * 100 <= field(&active, "keysWithTtl") * 35);
        for l in [&lazy, &active] {
            assert!(l.view().invariants.iter().all(|i| i.ok));
        }
    }

    #[test]
    fn a_key_read_after_its_ttl_is_gone_and_counted_lazy() {
        let mut l = lab(
            json!({"activeExpiry": false, "arrivals": {"type": "poisson", "ratePerSec": 1e-6}}),
        );
        l.act(&json!({"type": "put", "key": 7, "ttlMs": 100}))
            .unwrap();
        l.step(Duration::from_millis(50)).unwrap();
        l.act(&json!({"type": "get", "key": 7})).unwrap();
        assert_eq!(field(&l, "hits"), 1);
        l.step(Duration::from_millis(60)).unwrap();
        assert_eq!(field(&l, "expiredButHeld"), 1);
        l.act(&json!({"type": "get", "key": 7})).unwrap();
        assert_eq!((field(&l, "hits"), field(&l, "lazilyExpired")), (1, 1));
        assert_eq!(field(&l, "keys"), 0);
    }

    #[test]
    fn the_invariant_can_fail() {
        assert!(!check_stale(1).ok);
        assert!(check_stale(0).ok);
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"capacity": 0}), "config.capacity"),
            (json!({"hz": 0}), "config.hz"),
            (json!({"ttlMs": 0}), "config.ttlMs"),
            (json!({"stalePercent": 101}), "config.stalePercent"),
            (
                json!({"keys": {"type": "zipf", "keys": 0, "s": 1}}),
                "config.keys.keys",
            ),
        ] {
            let e = Runner::<Driven<TtlLab>>::from_json(&config).err().unwrap();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{config}: {e}"
            );
        }
        let mut l = lab(Value::Null);
        l.step_events(20).unwrap();
        let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
        for (action, field) in [
            (json!({"type": "put", "key": 1, "ttlMs": 0}), "action.ttlMs"),
            (
                json!({"type": "setWorkload", "keys": {"type": "uniform", "keys": 0}}),
                "action.keys.keys",
            ),
        ] {
            let e = l.act(&action).unwrap_err();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{action}: {e}"
            );
        }
        assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
    }
}
