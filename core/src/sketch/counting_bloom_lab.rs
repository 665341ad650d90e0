//! Lab `sketch.counting-bloom`: a counting Bloom filter ([`super::counting_bloom`]) under
//! churn. Keys arrive from a workload; each event inserts a new key or, with probability
//! `deleteFraction` (always, once `liveItems` keys are present), deletes a random one
//! still present, so the filter holds a steady population. The grid shows the 4-bit
//! counters, the bars their histogram (a counter at 15 has saturated and stays there);
//! probes of keys never inserted measure the false-positive rate against the one the
//! counters predict, `(non-zero fraction)^k`. The invariant — no false negative for a
//! key inserted and not deleted — is checked on a random live key after every event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Probability};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::sketch::counting_bloom::{COUNTER_MAX, CountingBloom};
use crate::sketch::lab_support::{SketchTrace, check_key, grid, item_key, probe_key};
use crate::time::{Duration, Time};

/// The most counters the lab's filter may have.
pub const MAX_LAB_COUNTERS: u32 = 65_536;
/// The most keys the lab keeps present.
pub const MAX_LIVE_ITEMS: u32 = 100_000;
/// Keys never inserted queried after each event.
const PROBES_PER_EVENT: u64 = 8;

local_lab_config! {
    /// Configuration of the counting Bloom filter lab.
    pub struct CountingBloomLabConfig {
        /// When a key is inserted or deleted.
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant { rate_per_sec: 50.0 },
        /// 4-bit counters in the filter.
        pub counters: Count<1, { MAX_LAB_COUNTERS }> = Count::of(1_024),
        /// Counters each key probes (`k`).
        pub hashes: Count<1, 16> = Count::of(4),
        /// Keys present at most: at this many, every event deletes one.
        pub live_items: Count<1, { MAX_LIVE_ITEMS }> = Count::of(120),
        /// Chance that an event deletes a present key rather than inserting a new one.
        pub delete_fraction: Probability = Probability::of(0.3),
    }
}

/// What can be done to the filter. JSON: `{"type": "insert", "key": "alice"}`,
/// `{"type": "remove", "key": "alice"}`, `{"type": "query", "key": "bob"}`,
/// `{"type": "hammer", "key": "hot", "times": 20}` (insert one key many times: its
/// counters saturate), `{"type": "clear"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CountingBloomLabAction {
    Insert {
        key: String,
    },
    /// Delete a key (nothing happens if the filter says it is absent).
    Remove {
        key: String,
    },
    Query {
        key: String,
    },
    /// Insert `key` `times` times.
    Hammer {
        key: String,
        times: Count<1, 100>,
    },
    /// Empty the filter.
    Clear {},
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CountingBloomTotals {
    pub inserts: u64,
    pub removes: u64,
    pub probes: u64,
    pub false_positives: u64,
}

/// The counting Bloom filter lab.
#[derive(Debug, Clone)]
pub struct CountingBloomLab {
    filter: CountingBloom,
    rng: SimRng,
    live_items: usize,
    delete_fraction: f64,
    /// Workload keys present (their numbers), in no particular order.
    live: Vec<u64>,
    next_item: u64,
    next_probe: u64,
    totals: CountingBloomTotals,
    /// The latest query's key and answer.
    last_query: Option<(String, bool)>,
    false_negative: Option<String>,
    trace: SketchTrace,
}

impl CountingBloomLab {
    pub fn filter(&self) -> &CountingBloom {
        &self.filter
    }

    pub fn live(&self) -> usize {
        self.live.len()
    }

    fn check_a_live_key(&mut self, at: Moment) {
        if self.live.is_empty() || self.false_negative.is_some() {
            return;
        }
        let key = item_key(self.live[self.rng.below(self.live.len() as u64) as usize]);
        if !self.filter.contains(key.as_bytes()) {
            self.false_negative = Some(format!(
                "at {} the filter said {key}, inserted and not deleted, is absent",
                at.now
            ));
        }
    }

    fn histogram(&self) -> Panel {
        let mut counts = [0u64; COUNTER_MAX as usize + 1];
        for i in 0..self.filter.counters() {
            counts[self.filter.counter(i) as usize] += 1;
        }
        Panel::Bars {
            title: "counters by value (15: saturated, never decremented again)".into(),
            labels: (0..=COUNTER_MAX).map(|v| v.to_string()).collect(),
            series: vec![Series {
                name: "counters".into(),
                unit: "counters".into(),
                x: (0..=COUNTER_MAX).map(f64::from).collect(),
                y: counts.iter().map(|&c| c as f64).collect(),
            }],
        }
    }

    fn predicted_fpr(&self) -> f64 {
        let f = &self.filter;
        libm::pow(
            f.nonzero_counters() as f64 / f.counters() as f64,
            f64::from(f.hashes()),
        )
    }
}

impl Sampled for CountingBloomLab {
    type Totals = CountingBloomTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("keys present", "keys"),
            ("false positives measured", "fraction of probes"),
            ("predicted (non-zero fraction)^k", "fraction"),
            ("saturating increments", "total"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> CountingBloomTotals {
        self.totals
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &CountingBloomTotals) -> Vec<f64> {
        let probes = self.totals.probes.saturating_sub(since.probes);
        let fp = self
            .totals
            .false_positives
            .saturating_sub(since.false_positives);
        vec![
            self.filter.items() as f64,
            if probes == 0 {
                f64::NAN
            } else {
                fp as f64 / probes as f64
            },
            self.predicted_fpr(),
            self.filter.saturations() as f64,
        ]
    }
}

impl LocalLab for CountingBloomLab {
    const ID: &'static str = "sketch.counting-bloom";
    type Config = CountingBloomLabConfig;
    type Action = CountingBloomLabAction;

    fn new(c: &CountingBloomLabConfig) -> Result<Self> {
        Ok(CountingBloomLab {
            filter: CountingBloom::new(u64::from(c.counters.get()), c.hashes.get())?,
            rng: SimRng::derive(c.seed, 2),
            live_items: c.live_items.get() as usize,
            delete_fraction: c.delete_fraction.get(),
            live: Vec::new(),
            next_item: 0,
            next_probe: 0,
            totals: CountingBloomTotals::default(),
            last_query: None,
            false_negative: None,
            trace: SketchTrace::default(),
        })
    }

    fn act(&mut self, at: Moment, action: &CountingBloomLabAction) -> Result<()> {
        match action {
            CountingBloomLabAction::Insert { key } => {
                check_key(key)?;
                self.filter.insert(key.as_bytes());
                self.trace.note(at, "insert", key, 1);
            }
            CountingBloomLabAction::Remove { key } => {
                check_key(key)?;
                let removed = self.filter.remove(key.as_bytes());
                self.trace.note(at, "remove", key, u64::from(removed));
            }
            CountingBloomLabAction::Query { key } => {
                check_key(key)?;
                let maybe = self.filter.contains(key.as_bytes());
                self.last_query = Some((key.clone(), maybe));
                self.trace.note(at, "query", key, u64::from(maybe));
            }
            CountingBloomLabAction::Hammer { key, times } => {
                check_key(key)?;
                for _ in 0..times.get() {
                    self.filter.insert(key.as_bytes());
                }
                self.trace.note(at, "hammer", key, u64::from(times.get()));
            }
            CountingBloomLabAction::Clear {} => {
                self.filter = CountingBloom::new(self.filter.counters(), self.filter.hashes())?;
                self.live.clear();
                self.trace.note(at, "clear", "", 0);
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<CountingBloomTotals>) -> View {
        const NAME: &str = "no false negatives for present keys";
        let f = &self.filter;
        let fields = BTreeMap::from([
            ("counters (m)".to_string(), json!(f.counters())),
            ("hashes (k)".into(), json!(f.hashes())),
            ("keysPresent".into(), json!(f.items())),
            ("nonZeroCounters".into(), json!(f.nonzero_counters())),
            ("saturations".into(), json!(f.saturations())),
            ("predictedFpr".into(), json!(self.predicted_fpr())),
            ("memoryBytes".into(), json!(f.memory_bytes())),
            ("lastQuery".into(), json!(self.last_query)),
        ]);
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "counting bloom filter".into(),
                role: "sketch".into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![
                grid("4-bit counters".into(), f.counters(), 64, |i| {
                    f64::from(f.counter(i))
                }),
                self.histogram(),
            ],
            invariants: vec![match &self.false_negative {
                Some(d) => InvariantStatus::violated(NAME, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    NAME,
                    format!(
                        "a random present key re-checked after each of {} inserts and {} deletes",
                        self.totals.inserts, self.totals.removes
                    ),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<CountingBloomLabAction> {
        vec![
            CountingBloomLabAction::Insert {
                key: "alice".into(),
            },
            CountingBloomLabAction::Remove {
                key: "alice".into(),
            },
            CountingBloomLabAction::Query { key: "bob".into() },
            CountingBloomLabAction::Hammer {
                key: "hot".into(),
                times: Count::of(20),
            },
            CountingBloomLabAction::Clear {},
        ]
    }
}

impl DrivenLab for CountingBloomLab {
    fn arrivals(c: &CountingBloomLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let delete = !self.live.is_empty()
            && (self.live.len() >= self.live_items || self.rng.chance(self.delete_fraction));
        if delete {
            let i = self.rng.below(self.live.len() as u64) as usize;
            let key = item_key(self.live.swap_remove(i));
            let removed = self.filter.remove(key.as_bytes());
            self.totals.removes += 1;
            self.trace.note(at, "remove", &key, u64::from(removed));
        } else {
            let key = item_key(self.next_item);
            self.live.push(self.next_item);
            self.next_item += 1;
            self.filter.insert(key.as_bytes());
            self.totals.inserts += 1;
            self.trace.note(at, "insert", &key, 1);
        }
        for _ in 0..PROBES_PER_EVENT {
            let probe = probe_key(self.next_probe);
            self.next_probe += 1;
            self.totals.probes += 1;
            if self.filter.contains(probe.as_bytes()) {
                self.totals.false_positives += 1;
            }
        }
        self.check_a_live_key(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, Lab, LabModel, Runner};

    #[test]
    fn churn_holds_a_steady_population_without_false_negatives() {
        let mut l: Runner<Driven<CountingBloomLab>> = Runner::from_json(
            &json!({"arrivals": {"type": "constant", "ratePerSec": 1000}, "liveItems": 100}),
        )
        .unwrap();
        l.step(Duration::from_secs(5)).unwrap();
        let m = l.model();
        assert!(m.live() <= 100 && m.live() > 50, "{}", m.live());
        assert_eq!(m.filter().items(), m.live() as u64);
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn hammering_saturates_and_the_invariant_can_fail() {
        let mut m = Driven::<CountingBloomLab>::new(&CountingBloomLabConfig::default()).unwrap();
        m.act(&DrivenAction::Lab(CountingBloomLabAction::Hammer {
            key: "hot".into(),
            times: Count::of(20),
        }))
        .unwrap();
        assert!(m.filter().saturations() >= 5);
        while m.step_until(Time::from_millis(300)) {}
        // Counters lost under the filter's feet: a present key reads absent.
        m.filter = CountingBloom::new(1_024, 4).unwrap();
        while m.step_until(Time::from_millis(400)) {}
        assert!(!m.view().invariants[0].ok);
    }
}
