//! Lab `sketch.hyperloglog`: Redis's HyperLogLog ([`super::hyperloglog`]) counting a
//! stream of elements, some of them repeats, beside the exact number of distinct ones.
//! The grid shows the registers (6 bits each), the bars their histogram — the estimator's
//! only input — and the table the encoding: sparse opcodes while the sketch is small,
//! then the 12 KiB dense array once a register passes 32 or the sparse string passes
//! `sparseMaxBytes`. The metrics chart the estimate against the truth and the relative
//! error against the standard error `1.04/√m`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::bounded::{Count, Probability};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::sketch::hyperloglog::{Encoding, HyperLogLog};
use crate::sketch::lab_support::{SketchTrace, check_key, grid, item_key};
use crate::time::{Duration, Time};

/// Characters of the sparse code shown.
const DECODE_CHARS: usize = 600;
/// How far from the truth the estimate may be, in standard errors, before the lab calls
/// it broken (a healthy sketch passes 6σ about once in 10^9 looks).
const SIGMAS: f64 = 6.0;

local_lab_config! {
    /// Configuration of the HyperLogLog lab.
    pub struct HyperLogLogLabConfig {
        /// When an element is added.
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant {
            rate_per_sec: 200.0,
        },
        /// `p`: `2^p` registers (Redis: 14).
        pub precision: Count<4, 18> = Count::of(14),
        /// Size at which the sparse encoding turns dense, header included (Redis's
        /// `hll-sparse-max-bytes`, 3000 by default; Redis advises at most about 16,000,
        /// past which sparse updates, linear in the size, cost more than they save).
        pub sparse_max_bytes: Count<0, 16_000> = Count::of(3_000),
        /// Chance that an arriving element is one already added.
        pub repeat_fraction: Probability = Probability::of(0.25),
    }
}

/// What can be done to the sketch. JSON: `{"type": "add", "element": "alice"}`,
/// `{"type": "addMany", "count": 10000}` (that many new distinct elements at once),
/// `{"type": "toDense"}`, `{"type": "clear"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HyperLogLogLabAction {
    Add {
        element: String,
    },
    AddMany {
        count: Count<1, 20_000>,
    },
    /// Convert to the dense encoding now (`PFDEBUG TODENSE`).
    ToDense {},
    Clear {},
}

/// The HyperLogLog lab.
#[derive(Debug, Clone)]
pub struct HyperLogLogLab {
    hll: HyperLogLog,
    rng: SimRng,
    repeat_fraction: f64,
    /// The workload's elements `item-0` up to this were added.
    next_item: u64,
    /// Distinct elements added by hand.
    user_elements: BTreeSet<String>,
    trace: SketchTrace,
}

impl HyperLogLogLab {
    pub fn sketch(&self) -> &HyperLogLog {
        &self.hll
    }

    /// The exact number of distinct elements added.
    pub fn truth(&self) -> u64 {
        self.next_item + self.user_elements.len() as u64
    }

    fn relative_error(&self) -> f64 {
        let t = self.truth();
        if t == 0 {
            0.0
        } else {
            self.hll.count() as f64 / t as f64 - 1.0
        }
    }

    fn add_new(&mut self, at: Moment) {
        let e = item_key(self.next_item);
        self.next_item += 1;
        let changed = self.hll.add(e.as_bytes());
        self.trace.note(at, "pfadd", &e, u64::from(changed));
    }

    fn histogram_bars(&self) -> Panel {
        let h = self.hll.histogram();
        let top = h.iter().rposition(|&n| n > 0).unwrap_or(0).max(1);
        Panel::Bars {
            title: "registers by value (the estimator reads only this)".into(),
            labels: (0..=top).map(|v| v.to_string()).collect(),
            series: vec![Series {
                name: "registers".into(),
                unit: "registers".into(),
                x: (0..=top).map(|v| v as f64).collect(),
                y: h[..=top].iter().map(|&n| f64::from(n)).collect(),
            }],
        }
    }

    fn encoding_table(&self) -> Panel {
        let h = &self.hll;
        let mut code = h.decode().unwrap_or_else(|| "(dense)".into());
        if code.len() > DECODE_CHARS {
            let cut = (0..=DECODE_CHARS)
                .rev()
                .find(|&i| code.is_char_boundary(i))
                .unwrap_or(0);
            code.truncate(cut);
            code.push_str(" …");
        }
        Panel::Table {
            title: "encoding (as Redis stores it)".into(),
            columns: ["encoding", "bytes with header", "sparse limit", "opcodes"]
                .map(String::from)
                .to_vec(),
            rows: vec![vec![
                json!(h.encoding()),
                json!(h.memory_bytes()),
                json!(h.sparse_max_bytes()),
                json!(code),
            ]],
        }
    }
}

impl Sampled for HyperLogLogLab {
    type Totals = ();

    fn series(&self) -> Vec<(String, String)> {
        [
            ("estimate (PFCOUNT)", "elements"),
            ("true distinct count", "elements"),
            ("relative error", "fraction"),
            ("standard error 1.04/√m", "fraction"),
            ("bytes stored", "bytes"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) {}

    fn sample(&self, _at: Time, _interval: Duration, _since: &()) -> Vec<f64> {
        vec![
            self.hll.count() as f64,
            self.truth() as f64,
            self.relative_error(),
            self.hll.standard_error(),
            self.hll.memory_bytes() as f64,
        ]
    }
}

impl LocalLab for HyperLogLogLab {
    const ID: &'static str = "sketch.hyperloglog";
    type Config = HyperLogLogLabConfig;
    type Action = HyperLogLogLabAction;

    fn new(c: &HyperLogLogLabConfig) -> Result<Self> {
        Ok(HyperLogLogLab {
            hll: HyperLogLog::with_sparse_max_bytes(
                c.precision.get() as u8,
                c.sparse_max_bytes.get() as usize,
            )?,
            rng: SimRng::derive(c.seed, 2),
            repeat_fraction: c.repeat_fraction.get(),
            next_item: 0,
            user_elements: BTreeSet::new(),
            trace: SketchTrace::default(),
        })
    }

    fn act(&mut self, at: Moment, action: &HyperLogLogLabAction) -> Result<()> {
        match action {
            HyperLogLogLabAction::Add { element } => {
                check_key(element).map_err(|_| {
                    crate::error::DistlabError::field(
                        "element",
                        format!("must be 1 to 256 bytes, got {}", element.len()),
                    )
                })?;
                let changed = self.hll.add(element.as_bytes());
                let workloads = element
                    .strip_prefix("item-")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n < self.next_item && *element == item_key(n));
                if !workloads {
                    self.user_elements.insert(element.clone());
                }
                self.trace.note(at, "pfadd", element, u64::from(changed));
            }
            HyperLogLogLabAction::AddMany { count } => {
                for _ in 0..count.get() {
                    self.add_new(at);
                }
            }
            HyperLogLogLabAction::ToDense {} => {
                let was_sparse = self.hll.to_dense();
                self.trace.note(at, "todense", "", u64::from(was_sparse));
            }
            HyperLogLogLabAction::Clear {} => {
                self.hll = HyperLogLog::with_sparse_max_bytes(
                    self.hll.precision(),
                    self.hll.sparse_max_bytes(),
                )?;
                self.next_item = 0;
                self.user_elements.clear();
                self.trace.note(at, "clear", "", 0);
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<()>) -> View {
        const NAME: &str = "estimate within 6 standard errors of the truth";
        let h = &self.hll;
        let registers = h.register_values();
        let (estimate, truth) = (h.count(), self.truth());
        let fields = BTreeMap::from([
            ("precision (p)".to_string(), json!(h.precision())),
            ("registers (m)".into(), json!(h.registers())),
            ("estimate".into(), json!(estimate)),
            ("trueDistinct".into(), json!(truth)),
            ("relativeError".into(), json!(self.relative_error())),
            ("standardError".into(), json!(h.standard_error())),
            ("rawEstimate".into(), json!(h.raw_count())),
            ("encoding".into(), json!(h.encoding())),
            ("bytes".into(), json!(h.memory_bytes())),
        ]);
        let band = SIGMAS * h.standard_error() * truth as f64;
        let off = (estimate as f64 - truth as f64).abs();
        let invariant = if off <= band.max(SIGMAS) {
            InvariantStatus::holds(
                NAME,
                format!("{estimate} estimated for {truth} distinct (off by {off})"),
            )
        } else {
            InvariantStatus::violated(
                NAME,
                format!(
                    "{estimate} estimated for {truth} distinct: off by {off}, more than {band:.0}"
                ),
                vec![0],
            )
        };
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "hyperloglog".into(),
                role: "sketch".into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![
                grid(
                    format!(
                        "registers ({} encoding)",
                        match h.encoding() {
                            Encoding::Dense => "dense",
                            Encoding::Sparse => "sparse",
                        }
                    ),
                    registers.len() as u64,
                    128,
                    |i| f64::from(registers[i as usize]),
                ),
                self.histogram_bars(),
                self.encoding_table(),
            ],
            invariants: vec![invariant],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<HyperLogLogLabAction> {
        vec![
            HyperLogLogLabAction::Add {
                element: "alice".into(),
            },
            HyperLogLogLabAction::AddMany {
                count: Count::of(5_000),
            },
            HyperLogLogLabAction::ToDense {},
            HyperLogLogLabAction::Clear {},
        ]
    }
}

impl DrivenLab for HyperLogLogLab {
    fn arrivals(c: &HyperLogLogLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        if self.next_item > 0 && self.rng.chance(self.repeat_fraction) {
            let e = item_key(self.rng.below(self.next_item));
            let changed = self.hll.add(e.as_bytes());
            self.trace.note(at, "pfadd", &e, u64::from(changed));
        } else {
            self.add_new(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, Lab, LabModel, Runner};

    #[test]
    fn the_estimate_follows_the_truth_and_the_sketch_turns_dense() {
        let mut l: Runner<Driven<HyperLogLogLab>> = Runner::from_json(&json!({
            "arrivals": {"type": "constant", "ratePerSec": 1000}}))
        .unwrap();
        l.step(Duration::from_millis(999)).unwrap();
        assert_eq!(l.model().sketch().encoding(), Encoding::Sparse);
        let truth = l.model().truth();
        assert!(truth > 600 && truth < 900, "{truth}");
        l.act(&json!({"type": "addMany", "count": 20000})).unwrap();
        let m = l.model();
        assert_eq!(m.sketch().encoding(), Encoding::Dense);
        assert!(m.relative_error().abs() < 4.0 * m.sketch().standard_error());
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn an_estimate_far_from_the_truth_is_flagged() {
        let mut m = Driven::<HyperLogLogLab>::new(&HyperLogLogLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(500)) {}
        assert!(m.view().invariants[0].ok);
        // Elements counted by the sketch behind the truth's back.
        for i in 0..10_000 {
            m.hll.add(format!("ghost-{i}").as_bytes());
        }
        assert!(!m.view().invariants[0].ok);
        let e = m
            .act(&DrivenAction::Lab(HyperLogLogLabAction::Add {
                element: String::new(),
            }))
            .unwrap_err();
        assert!(e.to_string().contains("`element`"), "{e}");
    }
}
