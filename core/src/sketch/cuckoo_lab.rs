//! Lab `sketch.cuckoo`: a cuckoo filter ([`super::cuckoo`]) filled until an insert first
//! runs out of kicks — the load factor at that moment is the figure of merit, about 95 %
//! with buckets of four — and then kept full: while the victim slot is taken each event
//! deletes a random present key, else it inserts a new one. The grid shows every slot's
//! fingerprint (0: empty) bucket by bucket; the table the latest insert's chain of
//! evictions. Probes of keys never inserted measure the false-positive rate; the
//! invariant — no false negative — is checked on a random present key after every event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::Count;
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::sketch::cuckoo::{BUCKET_SIZE, Cuckoo};
use crate::sketch::lab_support::{SketchTrace, check_key, grid, item_key, probe_key};
use crate::time::{Duration, Time};

/// The most keys the lab's filter holds.
pub const MAX_LAB_CAPACITY: u32 = 65_536;
const PROBES_PER_EVENT: u64 = 4;

local_lab_config! {
    /// Configuration of the cuckoo filter lab.
    pub struct CuckooLabConfig {
        /// When a key is inserted (or, once full, deleted).
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant {
            rate_per_sec: 100.0,
        },
        /// Keys the table is sized for (buckets of four, a power of two of them).
        pub capacity: Count<4, { MAX_LAB_CAPACITY }> = Count::of(256),
        /// Bits per fingerprint.
        pub fingerprint_bits: Count<4, 16> = Count::of(8),
        /// Evictions an insert may make before it gives up.
        pub max_kicks: Count<1, 10_000> = Count::of(500),
    }
}

/// What can be done to the filter. JSON: `{"type": "insert", "key": "alice"}`,
/// `{"type": "remove", "key": "alice"}`, `{"type": "query", "key": "bob"}`,
/// `{"type": "clear"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CuckooLabAction {
    Insert {
        key: String,
    },
    /// Delete a key you inserted (deleting one never inserted may remove another's entry).
    Remove {
        key: String,
    },
    Query {
        key: String,
    },
    Clear {},
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CuckooTotals {
    pub kicks: u64,
    pub probes: u64,
    pub false_positives: u64,
}

/// The cuckoo filter lab.
#[derive(Debug, Clone)]
pub struct CuckooLab {
    filter: Cuckoo,
    rng: SimRng,
    live: Vec<u64>,
    next_item: u64,
    next_probe: u64,
    totals: CuckooTotals,
    last_query: Option<(String, bool)>,
    false_negative: Option<String>,
    trace: SketchTrace,
    config: (u64, u32, u32, u64),
}

impl CuckooLab {
    pub fn filter(&self) -> &Cuckoo {
        &self.filter
    }

    fn kicks_table(&self) -> Panel {
        Panel::Table {
            title: format!(
                "latest insert's evictions ({} kicks): each fingerprint moves to its other \
                 bucket i ⊕ h(fp)",
                self.filter.last_kicks().len()
            ),
            columns: ["bucket", "slot", "fingerprint evicted", "moves to bucket"]
                .map(String::from)
                .to_vec(),
            rows: self
                .filter
                .last_kicks()
                .iter()
                .take(32)
                .map(|k| {
                    vec![
                        json!(k.bucket),
                        json!(k.slot),
                        json!(k.evicted),
                        json!(self.filter.alternate(k.bucket, k.evicted)),
                    ]
                })
                .collect(),
        }
    }
}

impl Sampled for CuckooLab {
    type Totals = CuckooTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("load factor", "fraction of slots"),
            ("kicks", "per interval"),
            ("false positives measured", "fraction of probes"),
            ("bound 2·4/2^f", "fraction"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> CuckooTotals {
        self.totals
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &CuckooTotals) -> Vec<f64> {
        let probes = self.totals.probes.saturating_sub(since.probes);
        let fp = self
            .totals
            .false_positives
            .saturating_sub(since.false_positives);
        vec![
            self.filter.load_factor(),
            self.totals.kicks.saturating_sub(since.kicks) as f64,
            if probes == 0 {
                f64::NAN
            } else {
                fp as f64 / probes as f64
            },
            2.0 * BUCKET_SIZE as f64 / f64::from(1u32 << self.filter.fingerprint_bits()),
        ]
    }
}

impl LocalLab for CuckooLab {
    const ID: &'static str = "sketch.cuckoo";
    type Config = CuckooLabConfig;
    type Action = CuckooLabAction;

    fn new(c: &CuckooLabConfig) -> Result<Self> {
        let config = (
            u64::from(c.capacity.get()),
            c.fingerprint_bits.get(),
            c.max_kicks.get(),
            c.seed,
        );
        Ok(CuckooLab {
            filter: Cuckoo::new(config.0, config.1, config.2, config.3)?,
            rng: SimRng::derive(c.seed, 2),
            live: Vec::new(),
            next_item: 0,
            next_probe: 0,
            totals: CuckooTotals::default(),
            last_query: None,
            false_negative: None,
            trace: SketchTrace::default(),
            config,
        })
    }

    fn act(&mut self, at: Moment, action: &CuckooLabAction) -> Result<()> {
        match action {
            CuckooLabAction::Insert { key } => {
                check_key(key)?;
                let stored = self.filter.insert(key.as_bytes());
                self.trace.note(at, "insert", key, u64::from(stored));
            }
            CuckooLabAction::Remove { key } => {
                check_key(key)?;
                let removed = self.filter.remove(key.as_bytes());
                self.trace.note(at, "remove", key, u64::from(removed));
            }
            CuckooLabAction::Query { key } => {
                check_key(key)?;
                let maybe = self.filter.contains(key.as_bytes());
                self.last_query = Some((key.clone(), maybe));
                self.trace.note(at, "query", key, u64::from(maybe));
            }
            CuckooLabAction::Clear {} => {
                let (c, f, k, s) = self.config;
                self.filter = Cuckoo::new(c, f, k, s)?;
                self.live.clear();
                self.trace.note(at, "clear", "", 0);
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<CuckooTotals>) -> View {
        const NAME: &str = "no false negatives for present keys";
        let f = &self.filter;
        let fields = BTreeMap::from([
            ("buckets".to_string(), json!(f.bucket_count())),
            ("slots".into(), json!(f.slots())),
            ("fingerprintBits".into(), json!(f.fingerprint_bits())),
            ("items".into(), json!(f.items())),
            ("loadFactor".into(), json!(f.load_factor())),
            ("loadAtFirstFailure".into(), json!(f.first_failure_load())),
            ("full (victim waiting)".into(), json!(f.victim())),
            ("memoryBytes".into(), json!(f.memory_bytes())),
            ("lastQuery".into(), json!(self.last_query)),
        ]);
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "cuckoo filter".into(),
                role: "sketch".into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![
                grid(
                    "fingerprints, four slots per bucket (0: empty)".into(),
                    f.slots(),
                    32,
                    |i| {
                        f64::from(
                            f.bucket(i / BUCKET_SIZE as u64)[(i % BUCKET_SIZE as u64) as usize],
                        )
                    },
                ),
                self.kicks_table(),
            ],
            invariants: vec![match &self.false_negative {
                Some(d) => InvariantStatus::violated(NAME, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    NAME,
                    format!(
                        "a random present key re-checked after each event ({} present)",
                        self.live.len()
                    ),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<CuckooLabAction> {
        vec![
            CuckooLabAction::Insert {
                key: "alice".into(),
            },
            CuckooLabAction::Remove {
                key: "alice".into(),
            },
            CuckooLabAction::Query { key: "bob".into() },
            CuckooLabAction::Clear {},
        ]
    }
}

impl DrivenLab for CuckooLab {
    fn arrivals(c: &CuckooLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        if self.filter.is_full() && !self.live.is_empty() {
            let i = self.rng.below(self.live.len() as u64) as usize;
            let key = item_key(self.live.swap_remove(i));
            let removed = self.filter.remove(key.as_bytes());
            self.trace.note(at, "remove", &key, u64::from(removed));
        } else {
            let key = item_key(self.next_item);
            if self.filter.insert(key.as_bytes()) {
                self.live.push(self.next_item);
                self.next_item += 1;
                self.totals.kicks += self.filter.last_kicks().len() as u64;
                self.trace
                    .note(at, "insert", &key, self.filter.last_kicks().len() as u64);
            }
        }
        for _ in 0..PROBES_PER_EVENT {
            let probe = probe_key(self.next_probe);
            self.next_probe += 1;
            self.totals.probes += 1;
            if self.filter.contains(probe.as_bytes()) {
                self.totals.false_positives += 1;
            }
        }
        if !self.live.is_empty() && self.false_negative.is_none() {
            let key = item_key(self.live[self.rng.below(self.live.len() as u64) as usize]);
            if !self.filter.contains(key.as_bytes()) {
                self.false_negative = Some(format!(
                    "at {} the filter said {key}, inserted and not deleted, is absent",
                    at.now
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, LabModel, Runner};

    #[test]
    fn fills_to_its_first_failure_then_stays_full_without_false_negatives() {
        let mut l: Runner<Driven<CuckooLab>> = Runner::from_json(&json!({
            "arrivals": {"type": "constant", "ratePerSec": 1000}, "capacity": 1024}))
        .unwrap();
        l.step(Duration::from_secs(3)).unwrap();
        let f = l.model().filter();
        let load = f.first_failure_load().unwrap();
        assert!(load >= 0.9, "{load}");
        assert!(f.load_factor() > 0.85);
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn a_lost_entry_is_flagged() {
        let mut m = Driven::<CuckooLab>::new(&CuckooLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(300)) {}
        m.filter = Cuckoo::new(256, 8, 500, 1).unwrap();
        while m.step_until(Time::from_millis(400)) {}
        assert!(!m.view().invariants[0].ok);
    }
}
