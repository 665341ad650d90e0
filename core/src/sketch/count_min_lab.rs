//! Lab `sketch.count-min`: two count-min sketches ([`super::count_min`]) of one shape fed
//! the same skewed stream — one with conservative update, one without — beside the exact
//! counts. Each arrival adds one occurrence of a key drawn from a key distribution (Zipf
//! by default). The grid is the conservative sketch's `d × w` matrix; the table compares
//! the heaviest keys' true counts with both estimates and the `ε·N` bound. After every
//! addition the key's estimate is checked: never below the truth (the invariant), and
//! within `ε·N` — which the theory promises for at least a `1 − δ` share of queries.

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
use crate::sim::workload::{ArrivalProcess, KeyDistribution, KeySampler, within};
use crate::sketch::count_min::CountMin;
use crate::sketch::lab_support::{SketchTrace, check_key};
use crate::time::{Duration, Time};

/// The widest sketch the lab shows (its matrix is a grid of `depth × width` cells).
pub const MAX_LAB_WIDTH: u32 = 256;
/// Heaviest keys in the table.
const TOP_KEYS: usize = 10;

local_lab_config! {
    /// Configuration of the count-min lab.
    pub struct CountMinLabConfig {
        /// When a key occurs.
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant {
            rate_per_sec: 200.0,
        },
        /// Which key occurs.
        pub keys: KeyDistribution = KeyDistribution::Zipf {
            keys: 1_000,
            s: 1.0,
        },
        /// Counters per row (`w`; `ε = e/w`).
        pub width: Count<1, { MAX_LAB_WIDTH }> = Count::of(64),
        /// Rows (`d`; `δ = e^−d`).
        pub depth: Count<1, 16> = Count::of(4),
    }
}

/// What can be done to the sketches. JSON: `{"type": "add", "key": "7", "count": 50}`,
/// `{"type": "query", "key": "7"}`, `{"type": "setKeys", "keys": {"type": "uniform",
/// "keys": 100}}`, `{"type": "clear"}`. The workload's keys are the numbers `0`, `1`, …
/// written in decimal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CountMinLabAction {
    /// Add `count` occurrences of `key`.
    Add {
        key: String,
        count: Count<1, 1_000_000>,
    },
    /// Estimate `key`'s count with both sketches.
    Query { key: String },
    /// Keys follow `keys` from now on.
    SetKeys { keys: KeyDistribution },
    /// Empty both sketches and the exact counts.
    Clear {},
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CountMinTotals {
    /// Point queries checked (one per addition).
    pub checked: u64,
    /// Of those, within `ε·N`, with and without conservative update.
    pub within_conservative: u64,
    pub within_plain: u64,
}

/// The count-min lab.
#[derive(Debug, Clone)]
pub struct CountMinLab {
    conservative: CountMin,
    plain: CountMin,
    exact: BTreeMap<String, u64>,
    keys: KeySampler,
    rng: SimRng,
    totals: CountMinTotals,
    last_query: Option<(String, u64, u64, u64)>,
    underestimate: Option<String>,
    trace: SketchTrace,
}

impl CountMinLab {
    pub fn sketches(&self) -> (&CountMin, &CountMin) {
        (&self.conservative, &self.plain)
    }

    pub fn totals(&self) -> CountMinTotals {
        self.totals
    }

    fn bound(&self) -> f64 {
        self.plain.epsilon() * self.plain.total() as f64
    }

    fn add(&mut self, at: Moment, key: &str, count: u64) {
        self.conservative.add(key.as_bytes(), count);
        self.plain.add(key.as_bytes(), count);
        let truth = self.exact.entry(key.to_string()).or_insert(0);
        *truth += count;
        let truth = *truth;
        let (c, p) = (
            self.conservative.estimate(key.as_bytes()),
            self.plain.estimate(key.as_bytes()),
        );
        if (c < truth || p < truth) && self.underestimate.is_none() {
            self.underestimate = Some(format!(
                "at {} key {key} counted {truth} was estimated {c} (conservative) and {p} \
                 (plain)",
                at.now
            ));
        }
        let bound = self.bound();
        self.totals.checked += 1;
        self.totals.within_conservative += u64::from((c - truth.min(c)) as f64 <= bound);
        self.totals.within_plain += u64::from((p - truth.min(p)) as f64 <= bound);
        self.trace.note(at, "add", key, c);
    }

    fn top_table(&self) -> Panel {
        let mut top: Vec<(&String, &u64)> = self.exact.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        top.truncate(TOP_KEYS);
        let bound = self.bound();
        Panel::Table {
            title: format!("heaviest keys: exact count against both estimates (ε·N = {bound:.1})"),
            columns: ["key", "exact", "conservative", "plain", "plain error ≤ ε·N"]
                .map(String::from)
                .to_vec(),
            rows: top
                .into_iter()
                .map(|(k, t)| {
                    let p = self.plain.estimate(k.as_bytes());
                    vec![
                        json!(k),
                        json!(t),
                        json!(self.conservative.estimate(k.as_bytes())),
                        json!(p),
                        json!((p - t) as f64 <= bound),
                    ]
                })
                .collect(),
        }
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        f64::NAN
    } else {
        part as f64 / whole as f64
    }
}

impl Sampled for CountMinLab {
    type Totals = CountMinTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("queries within ε·N (conservative)", "fraction, interval"),
            ("queries within ε·N (plain)", "fraction, interval"),
            ("promised: 1 − δ", "fraction"),
            ("ε·N", "count"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> CountMinTotals {
        self.totals
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &CountMinTotals) -> Vec<f64> {
        let checked = self.totals.checked.saturating_sub(since.checked);
        vec![
            share(
                self.totals
                    .within_conservative
                    .saturating_sub(since.within_conservative),
                checked,
            ),
            share(
                self.totals.within_plain.saturating_sub(since.within_plain),
                checked,
            ),
            1.0 - self.plain.delta(),
            self.bound(),
        ]
    }
}

impl LocalLab for CountMinLab {
    const ID: &'static str = "sketch.count-min";
    type Config = CountMinLabConfig;
    type Action = CountMinLabAction;

    fn new(c: &CountMinLabConfig) -> Result<Self> {
        let (w, d) = (u64::from(c.width.get()), c.depth.get());
        Ok(CountMinLab {
            conservative: CountMin::new(w, d, true)?,
            plain: CountMin::new(w, d, false)?,
            exact: BTreeMap::new(),
            keys: KeySampler::new(&c.keys).map_err(|e| within("keys", e))?,
            rng: SimRng::derive(c.seed, 2),
            totals: CountMinTotals::default(),
            last_query: None,
            underestimate: None,
            trace: SketchTrace::default(),
        })
    }

    fn act(&mut self, at: Moment, action: &CountMinLabAction) -> Result<()> {
        match action {
            CountMinLabAction::Add { key, count } => {
                check_key(key)?;
                self.add(at, key, u64::from(count.get()));
            }
            CountMinLabAction::Query { key } => {
                check_key(key)?;
                let c = self.conservative.estimate(key.as_bytes());
                let p = self.plain.estimate(key.as_bytes());
                let t = self.exact.get(key).copied().unwrap_or(0);
                self.last_query = Some((key.clone(), t, c, p));
                self.trace.note(at, "query", key, c);
            }
            CountMinLabAction::SetKeys { keys } => {
                self.keys = KeySampler::new(keys).map_err(|e| within("keys", e))?;
            }
            CountMinLabAction::Clear {} => {
                let (w, d) = (self.plain.width(), self.plain.depth());
                self.conservative = CountMin::new(w, d, true)?;
                self.plain = CountMin::new(w, d, false)?;
                self.exact.clear();
                self.trace.note(at, "clear", "", 0);
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<CountMinTotals>) -> View {
        const NAME: &str = "estimates never below the exact count";
        let cu = &self.conservative;
        let t = self.totals;
        let fields = BTreeMap::from([
            ("width (w)".to_string(), json!(cu.width())),
            ("depth (d)".into(), json!(cu.depth())),
            ("epsilon".into(), json!(cu.epsilon())),
            ("delta".into(), json!(cu.delta())),
            ("total (N)".into(), json!(cu.total())),
            ("distinctKeys".into(), json!(self.exact.len())),
            (
                "withinBoundConservative".into(),
                json!(share(t.within_conservative, t.checked)),
            ),
            (
                "withinBoundPlain".into(),
                json!(share(t.within_plain, t.checked)),
            ),
            ("memoryBytesPerSketch".into(), json!(cu.memory_bytes())),
            (
                "lastQuery [key, exact, conservative, plain]".into(),
                json!(self.last_query),
            ),
        ]);
        let width = cu.width();
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "count-min".into(),
                role: "sketch".into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![
                Panel::Grid {
                    title: format!(
                        "conservative-update counters: {} rows × {width}",
                        cu.depth()
                    ),
                    columns: width as u32,
                    cells: (0..cu.depth())
                        .flat_map(|r| {
                            (0..width).map(move |c| crate::lab::view::Cell {
                                value: cu.cell(r, c) as f64,
                                label: format!("row {r}, column {c}: {}", cu.cell(r, c)),
                            })
                        })
                        .collect(),
                },
                self.top_table(),
            ],
            invariants: vec![match &self.underestimate {
                Some(d) => InvariantStatus::violated(NAME, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    NAME,
                    format!("checked after each of {} additions", t.checked),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<CountMinLabAction> {
        vec![
            CountMinLabAction::Add {
                key: "7".into(),
                count: Count::of(50),
            },
            CountMinLabAction::Query { key: "7".into() },
            CountMinLabAction::SetKeys {
                keys: KeyDistribution::Uniform { keys: 100 },
            },
            CountMinLabAction::Clear {},
        ]
    }
}

impl DrivenLab for CountMinLab {
    fn arrivals(c: &CountMinLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let key = self.keys.sample(&mut self.rng).to_string();
        self.add(at, &key, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, Lab, LabModel, Runner};

    #[test]
    fn the_bound_holds_for_most_queries_and_conservative_is_tighter() {
        let mut l: Runner<Driven<CountMinLab>> = Runner::from_json(&json!({
            "arrivals": {"type": "constant", "ratePerSec": 2000}, "width": 32, "depth": 3}))
        .unwrap();
        l.step(Duration::from_micros(4_999_500)).unwrap();
        let t = l.model().totals();
        assert_eq!(t.checked, 10_000);
        let delta = l.model().sketches().1.delta();
        assert!(share(t.within_plain, t.checked) >= 1.0 - delta, "{t:?}");
        assert!(t.within_conservative >= t.within_plain, "{t:?}");
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn an_underestimate_would_be_caught() {
        let mut m = Driven::<CountMinLab>::new(&CountMinLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(200)) {}
        assert!(m.view().invariants[0].ok);
        // A sketch that lost its counters.
        m.conservative = CountMin::new(64, 4, true).unwrap();
        m.act(&DrivenAction::Lab(CountMinLabAction::Add {
            key: "0".into(),
            count: Count::of(1),
        }))
        .unwrap();
        assert!(!m.view().invariants[0].ok);
        let e = Runner::<Driven<CountMinLab>>::from_json(
            &json!({"keys": {"type": "uniform", "keys": 0}}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("`config.keys.keys`"), "{e}");
    }
}
