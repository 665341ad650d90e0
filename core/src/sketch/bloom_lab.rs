//! Lab `sketch.bloom`: a Bloom filter ([`super::bloom`]) filling up. Keys arrive from a
//! workload (`item-0`, `item-1`, …); after each insertion the lab queries a few keys it
//! never inserted (`probe-…`) and counts the false positives, so the measured rate can be
//! drawn against the formula `(1 − e^(−kn/m))^k` as `n` grows. The bit grid lights up as
//! keys land; the last key's `k` positions are listed. The invariant — no false
//! negative — is checked on a random inserted key after every insertion.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::bounded::{Count, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::sketch::bloom::Bloom;
use crate::sketch::lab_support::{SketchTrace, check_key, grid, item_key, probe_key};
use crate::time::{Duration, Time};

/// The most keys the lab's filter may be sized for.
pub const MAX_LAB_ITEMS: u32 = 100_000;
/// Queries shown in the queries table.
const QUERIES_KEPT: usize = 16;
/// Keys inserted by hand remembered for the queries' truth column.
const USER_KEYS_KEPT: usize = 1_024;

local_lab_config! {
    /// Configuration of the Bloom filter lab.
    pub struct BloomLabConfig {
        /// When a key is inserted.
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant {
            rate_per_sec: 100.0,
        },
        /// Keys the filter is sized for (`n`).
        pub expected_items: Count<1, { MAX_LAB_ITEMS }> = Count::of(1_000),
        /// False-positive rate wanted at `expectedItems` keys (`p`, strictly between 0
        /// and 1).
        pub false_positive_rate: Probability = Probability::of(0.01),
        /// Keys never inserted that are queried after each insertion.
        pub probes_per_insert: Count<0, 100> = Count::of(20),
    }
}

/// What can be done to the filter. JSON: `{"type": "insert", "key": "alice"}`,
/// `{"type": "query", "key": "bob"}`, `{"type": "clear"}` (and the kit's `setArrivals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum BloomLabAction {
    /// Insert a key of your own.
    Insert { key: String },
    /// Ask whether a key may be present.
    Query { key: String },
    /// Empty the filter (the workload starts again from `item-0`).
    Clear {},
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BloomTotals {
    pub probes: u64,
    pub false_positives: u64,
}

/// One query, for the table.
#[derive(Debug, Clone, PartialEq)]
struct QueryRow {
    key: String,
    maybe: bool,
    /// Whether the key was inserted, as far as the lab knows.
    inserted: bool,
}

/// The Bloom filter lab.
#[derive(Debug, Clone)]
pub struct BloomLab {
    filter: Bloom,
    rng: SimRng,
    probes_per_insert: u32,
    /// The workload's next key number; `item-0` up to this were inserted since the clear.
    next_item: u64,
    next_probe: u64,
    totals: BloomTotals,
    user_keys: BTreeSet<String>,
    user_order: VecDeque<String>,
    queries: VecDeque<QueryRow>,
    last_positions: Vec<u64>,
    false_negative: Option<String>,
    trace: SketchTrace,
}

impl BloomLab {
    pub fn filter(&self) -> &Bloom {
        &self.filter
    }

    pub fn totals(&self) -> BloomTotals {
        self.totals
    }

    fn insert(&mut self, at: Moment, key: &str) {
        let fresh = self.filter.insert(key.as_bytes());
        self.last_positions = self.filter.positions(key.as_bytes()).collect();
        self.trace.note(at, "insert", key, u64::from(fresh));
    }

    fn was_inserted(&self, key: &str) -> bool {
        self.user_keys.contains(key)
            || key
                .strip_prefix("item-")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < self.next_item && key == item_key(n))
    }

    fn check_no_false_negative(&mut self, at: Moment) {
        if self.next_item == 0 || self.false_negative.is_some() {
            return;
        }
        let key = item_key(self.rng.below(self.next_item));
        if !self.filter.contains(key.as_bytes()) {
            self.false_negative = Some(format!(
                "at {} the filter said {key}, inserted earlier, is absent",
                at.now
            ));
        }
    }

    fn fields(&self) -> BTreeMap<String, Value> {
        let f = &self.filter;
        BTreeMap::from([
            ("bits (m)".to_string(), json!(f.bits())),
            ("hashes (k)".into(), json!(f.hashes())),
            ("inserted (n)".into(), json!(f.inserted())),
            ("bitsSet".into(), json!(f.set_bits())),
            ("formulaFpr".into(), json!(f.expected_fpr())),
            ("probes".into(), json!(self.totals.probes)),
            ("falsePositives".into(), json!(self.totals.false_positives)),
            ("memoryBytes".into(), json!(f.memory_bytes())),
            ("lastKeyPositions".into(), json!(self.last_positions)),
        ])
    }

    fn queries_table(&self) -> Panel {
        Panel::Table {
            title: "queries (latest first; a false positive says maybe for a key never \
                    inserted)"
                .into(),
            columns: ["key", "filter says", "inserted", "outcome"]
                .map(String::from)
                .to_vec(),
            rows: self
                .queries
                .iter()
                .rev()
                .map(|q| {
                    let outcome = match (q.maybe, q.inserted) {
                        (true, true) => "true positive",
                        (true, false) => "false positive",
                        (false, false) => "true negative",
                        (false, true) => "FALSE NEGATIVE",
                    };
                    vec![
                        json!(q.key),
                        json!(if q.maybe { "maybe" } else { "no" }),
                        json!(q.inserted),
                        json!(outcome),
                    ]
                })
                .collect(),
        }
    }

    /// Measured against formula, with the items inserted at each sample as x.
    fn fpr_curve(samples: &Sampler<BloomTotals>) -> Panel {
        let series = samples.series();
        let x = series.get(2).map(|s| s.y.clone()).unwrap_or_default();
        let pick = |i: usize, name: &str| Series {
            name: name.into(),
            unit: "fraction".into(),
            x: x.clone(),
            y: series.get(i).map(|s| s.y.clone()).unwrap_or_default(),
        };
        Panel::Chart {
            title: "false-positive rate against keys inserted".into(),
            x_label: "keys inserted (n)".into(),
            series: vec![
                pick(0, "measured (probes in the interval)"),
                pick(1, "formula (1 − e^(−kn/m))^k"),
            ],
        }
    }
}

impl Sampled for BloomLab {
    type Totals = BloomTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("false positives measured", "fraction of probes"),
            ("formula (1 − e^(−kn/m))^k", "fraction"),
            ("keys inserted", "keys"),
            ("bits set", "fraction"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> BloomTotals {
        self.totals
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &BloomTotals) -> Vec<f64> {
        let probes = self.totals.probes.saturating_sub(since.probes);
        let fp = self
            .totals
            .false_positives
            .saturating_sub(since.false_positives);
        vec![
            if probes == 0 {
                f64::NAN
            } else {
                fp as f64 / probes as f64
            },
            self.filter.expected_fpr(),
            self.filter.inserted() as f64,
            self.filter.set_bits() as f64 / self.filter.bits() as f64,
        ]
    }
}

impl LocalLab for BloomLab {
    const ID: &'static str = "sketch.bloom";
    type Config = BloomLabConfig;
    type Action = BloomLabAction;

    fn new(c: &BloomLabConfig) -> Result<Self> {
        let p = c.false_positive_rate.get();
        if p <= 0.0 || p >= 1.0 {
            return Err(DistlabError::field(
                "falsePositiveRate",
                format!("must be greater than 0 and less than 1, got {p}"),
            ));
        }
        Ok(BloomLab {
            filter: Bloom::with_rate(u64::from(c.expected_items.get()), p)?,
            rng: SimRng::derive(c.seed, 2),
            probes_per_insert: c.probes_per_insert.get(),
            next_item: 0,
            next_probe: 0,
            totals: BloomTotals::default(),
            user_keys: BTreeSet::new(),
            user_order: VecDeque::new(),
            queries: VecDeque::new(),
            last_positions: Vec::new(),
            false_negative: None,
            trace: SketchTrace::default(),
        })
    }

    fn act(&mut self, at: Moment, action: &BloomLabAction) -> Result<()> {
        match action {
            BloomLabAction::Insert { key } => {
                check_key(key)?;
                self.insert(at, key);
                if self.user_keys.insert(key.clone()) {
                    self.user_order.push_back(key.clone());
                    if self.user_order.len() > USER_KEYS_KEPT
                        && let Some(old) = self.user_order.pop_front()
                    {
                        self.user_keys.remove(&old);
                    }
                }
            }
            BloomLabAction::Query { key } => {
                check_key(key)?;
                let maybe = self.filter.contains(key.as_bytes());
                let inserted = self.was_inserted(key);
                if inserted && !maybe && self.false_negative.is_none() {
                    self.false_negative = Some(format!(
                        "at {} the filter said {key}, inserted earlier, is absent",
                        at.now
                    ));
                }
                if self.queries.len() >= QUERIES_KEPT {
                    self.queries.pop_front();
                }
                self.queries.push_back(QueryRow {
                    key: key.clone(),
                    maybe,
                    inserted,
                });
                self.trace.note(at, "query", key, u64::from(maybe));
            }
            BloomLabAction::Clear {} => {
                self.filter.clear();
                self.next_item = 0;
                self.user_keys.clear();
                self.user_order.clear();
                self.last_positions.clear();
                self.trace.note(at, "clear", "", 0);
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<BloomTotals>) -> View {
        const NAME: &str = "no false negatives";
        let f = &self.filter;
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "bloom filter".into(),
                role: "sketch".into(),
                status: "up".into(),
                fields: self.fields(),
                group: None,
            }],
            panels: vec![
                grid(
                    format!("bits: {} of {} set", f.set_bits(), f.bits()),
                    f.bits(),
                    64,
                    |i| f64::from(u8::from(f.bit(i))),
                ),
                Self::fpr_curve(samples),
                self.queries_table(),
            ],
            invariants: vec![match &self.false_negative {
                Some(d) => InvariantStatus::violated(NAME, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    NAME,
                    format!(
                        "a random inserted key re-checked after each of {} insertions",
                        self.next_item
                    ),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<BloomLabAction> {
        vec![
            BloomLabAction::Insert {
                key: "alice".into(),
            },
            BloomLabAction::Query {
                key: "alice".into(),
            },
            BloomLabAction::Query { key: "bob".into() },
            BloomLabAction::Clear {},
        ]
    }
}

impl DrivenLab for BloomLab {
    fn arrivals(c: &BloomLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let key = item_key(self.next_item);
        self.next_item += 1;
        self.insert(at, &key);
        for _ in 0..self.probes_per_insert {
            let probe = probe_key(self.next_probe);
            self.next_probe += 1;
            self.totals.probes += 1;
            if self.filter.contains(probe.as_bytes()) {
                self.totals.false_positives += 1;
            }
        }
        self.check_no_false_negative(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, Lab, LabModel, Runner};

    fn lab(config: Value) -> Runner<Driven<BloomLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn measured_rate_follows_the_formula_as_the_filter_fills() {
        let mut l = lab(json!({"expectedItems": 2000, "probesPerInsert": 50,
                                "arrivals": {"type": "constant", "ratePerSec": 1000}}));
        l.step(Duration::from_millis(1_999)).unwrap();
        let m = l.model();
        assert_eq!(m.filter().inserted(), 2000);
        let measured = m.totals().false_positives as f64 / m.totals().probes as f64;
        // Averaged over the fill, the rate is below the final formula's but of its order.
        let at_end = m.filter().expected_fpr();
        assert!(
            measured > at_end / 10.0 && measured < at_end,
            "{measured} vs {at_end}"
        );
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn queries_say_maybe_for_inserted_keys_and_the_invariant_can_fail() {
        let mut l = lab(Value::Null);
        l.act(&json!({"type": "insert", "key": "alice"})).unwrap();
        l.act(&json!({"type": "query", "key": "alice"})).unwrap();
        assert!(l.model().queries.back().unwrap().maybe);
        let e = l.act(&json!({"type": "query", "key": ""})).unwrap_err();
        assert!(e.to_string().contains("`action.key`"), "{e}");
        // A filter that lost its bits answers "no" for an inserted key: the invariant
        // says so.
        l.step(Duration::from_millis(500)).unwrap();
        let mut m = Driven::<BloomLab>::new(&BloomLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(200)) {}
        m.filter.clear();
        m.act(&DrivenAction::Lab(BloomLabAction::Query {
            key: "item-3".into(),
        }))
        .unwrap();
        assert!(!m.view().invariants[0].ok);
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"falsePositiveRate": 0}), "config.falsePositiveRate"),
            (json!({"falsePositiveRate": 1}), "config.falsePositiveRate"),
            (json!({"expectedItems": 0}), "config.expectedItems"),
            (json!({"probesPerInsert": 101}), "config.probesPerInsert"),
        ] {
            let e = Runner::<Driven<BloomLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
        }
    }
}
