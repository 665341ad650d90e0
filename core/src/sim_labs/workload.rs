//! Lab `sim.workload`: the workload generator on its own, so that what it promises can be
//! checked by eye and by invariant. Each arrival is one event. The view sets every figure
//! beside its theory: arrivals per interval against the configured mean rate, the observed
//! share of keys 0–19 (Zipf ranks 1–20) against `k^−s / H(n, s)` (or `1/n`), the mean and
//! variance of the gaps between arrivals, the read/write mix; and it judges the long-run
//! rate against a stated tolerance.
//!
//! Statistics have epochs: changing the arrival process restarts the arrival statistics
//! (count, rate, gaps) from that moment; changing the key distribution restarts the key
//! and read/write statistics; `resetStatistics` restarts both. The generator itself, the
//! trace hash and the charts are never reset.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::hash::Hasher;

use crate::error::Result;
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, Panel, Series, StripItem, View};
use crate::rng::SimRng;
use crate::sim::trace::StableHasher;
use crate::sim::workload::{
    ArrivalProcess, ArrivalTheory, KeyDistribution, OpKind, Operation, Workload, WorkloadConfig,
    within,
};
use crate::time::{Duration, Time};

/// Keys shown against their theoretical share: 0 to 19, the 20 hottest Zipf ranks.
pub const HEAD_KEYS: usize = 20;
/// Operations kept for the trace (the strip shows the newest [`STRIP_OPS`]).
pub const RECENT_OPS: usize = 256;
/// Operations in the strip.
pub const STRIP_OPS: usize = 30;
/// The rate is judged once this many arrivals are expected since the statistics restarted:
/// before that a count says too little about a rate.
pub const RATE_MIN_EXPECTED: f64 = 100.0;
/// Standard deviations of a Poisson count the observed count may stray from the expected
/// one. A false alarm at any one look has probability below 6·10^−7, and over a whole run,
/// which looks at a slowly drifting random walk, not many times that.
pub const RATE_SIGMAS: f64 = 5.0;

local_lab_config! {
    /// Configuration of the workload lab. JSON:
    /// `{"seed": 1, "workload": {"arrivals": {"type": "poisson", "ratePerSec": 200},
    ///   "keys": {"type": "zipf", "keys": 100, "s": 1.0}, "readFraction": 0.9},
    ///   "sampleMs": 100}`.
    pub struct WorkloadLabConfig {
        /// Arrivals, keys and the read/write mix.
        pub workload: WorkloadConfig = WorkloadConfig::default(),
    }
}

/// What can be done to a running workload. JSON: `{"type": "setArrivals", "arrivals":
/// {"type": "constant", "ratePerSec": 50}}`, `{"type": "setKeys", "keys": {"type":
/// "uniform", "keys": 10}}`, `{"type": "resetStatistics"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum WorkloadLabAction {
    /// Arrivals follow `arrivals` from now on (the pending arrival of the old process is
    /// dropped); the arrival statistics restart.
    SetArrivals { arrivals: ArrivalProcess },
    /// Keys follow `keys` from the next arrival on; the key and read/write statistics
    /// restart.
    SetKeys { keys: KeyDistribution },
    /// Every statistic restarts now; the generator goes on as it was.
    ResetStatistics,
}

/// Running mean and variance (Welford), in plain IEEE arithmetic so runs agree everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// The sample variance.
    fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| self.m2 / (self.n - 1) as f64)
    }
}

/// Arrival statistics since `since`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ArrivalStats {
    since: Time,
    arrivals: u64,
    /// Gaps between consecutive arrivals of this epoch, µs.
    gaps: Moments,
    last: Option<Time>,
}

impl ArrivalStats {
    fn new(since: Time) -> Self {
        ArrivalStats {
            since,
            arrivals: 0,
            gaps: Moments::default(),
            last: None,
        }
    }

    fn push(&mut self, at: Time) {
        self.arrivals += 1;
        if let Some(last) = self.last {
            self.gaps.push(at.saturating_since(last).0 as f64);
        }
        self.last = Some(at);
    }

    /// Arrivals per second between `since` and `at` (zero before any time has passed).
    fn rate_at(&self, at: Time) -> f64 {
        let secs = at.saturating_since(self.since).as_secs_f64();
        if secs > 0.0 {
            self.arrivals as f64 / secs
        } else {
            0.0
        }
    }
}

/// Key and read/write statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct MixStats {
    ops: u64,
    reads: u64,
    /// Hits on keys `0..HEAD_KEYS`.
    head: [u64; HEAD_KEYS],
}

impl MixStats {
    fn push(&mut self, op: &Operation) {
        self.ops += 1;
        self.reads += u64::from(op.kind == OpKind::Read);
        if let Some(h) = usize::try_from(op.key)
            .ok()
            .and_then(|k| self.head.get_mut(k))
        {
            *h += 1;
        }
    }

    fn share(&self, count: u64) -> Option<f64> {
        (self.ops > 0).then(|| count as f64 / self.ops as f64)
    }
}

/// The workload lab.
#[derive(Debug, Clone)]
pub struct WorkloadLab {
    rng: SimRng,
    workload: Workload,
    arrivals: ArrivalProcess,
    keys: KeyDistribution,
    theory: ArrivalTheory,
    /// Theoretical shares of keys `0..HEAD_KEYS` (fewer if there are fewer keys).
    head_theory: Vec<f64>,
    /// The next arrival, drawn ahead so that `step_until` knows when it is due; its key and
    /// kind are drawn when it happens, so a key change applies to it.
    next_at: Time,
    /// Arrivals so far.
    arrived: u64,
    last_arrival: Option<Time>,
    /// The first arrival found earlier than the one before it (or than the clock): the
    /// earlier bound and the offending time.
    went_backwards: Option<(Time, Time)>,
    hasher: StableHasher,
    recent: VecDeque<(u64, Operation)>,
    rate: ArrivalStats,
    mix: MixStats,
}

impl WorkloadLab {
    /// Everything about one arrival at `at`.
    /// (`clock` is the lab's clock).
    fn arrive(&mut self, at: Time, clock: Time, step: u64) {
        let bound = self.last_arrival.map_or(clock, |l| l.max(clock));
        if at < bound && self.went_backwards.is_none() {
            self.went_backwards = Some((bound, at));
        }
        let op = self.workload.op_at(at, &mut self.rng);
        self.hasher.write_u64(step);
        self.hasher.write_u64(op.at.0);
        self.hasher.write_u64(op.key);
        self.hasher.write_u8(op.kind as u8);
        if self.recent.len() >= RECENT_OPS {
            self.recent.pop_front();
        }
        self.recent.push_back((step, op));
        self.arrived += 1;
        self.rate.push(at);
        self.mix.push(&op);
        self.last_arrival = Some(at);
        self.next_at = self.workload.next_arrival(&mut self.rng);
    }

    fn invariants(&self, now: Time) -> Vec<InvariantStatus> {
        const MONOTONE: &str = "arrival times never go backwards";
        let monotone = match self.went_backwards {
            None => InvariantStatus::holds(
                MONOTONE,
                format!(
                    "each of {} arrivals was at or after the one before and the clock",
                    self.arrived
                ),
            ),
            Some((bound, at)) => InvariantStatus::violated(
                MONOTONE,
                format!("an arrival at {at} came after one (or the clock) at {bound}"),
                Vec::new(),
            ),
        };
        vec![
            monotone,
            judge_rate(
                self.rate.arrivals,
                now.saturating_since(self.rate.since),
                &self.theory,
            ),
        ]
    }

    fn statistics_table(&self, now: Time) -> Panel {
        let elapsed = now.saturating_since(self.rate.since);
        let expected = self.theory.rate_per_sec * elapsed.as_secs_f64();
        let ms = |us: Option<f64>| json!(us.map(|v| v / 1e3));
        let ms2 = |us2: Option<f64>| json!(us2.map(|v| v / 1e6));
        let head0 = self.head_theory.first().copied();
        let rows = vec![
            vec![
                json!("arrivals"),
                json!(self.rate.arrivals),
                json!(expected),
            ],
            vec![
                json!("rate /s"),
                json!(self.rate.rate_at(now)),
                json!(self.theory.rate_per_sec),
            ],
            vec![
                json!("mean gap ms"),
                ms(self.rate.gaps.mean()),
                ms(Some(self.theory.mean_gap_us)),
            ],
            vec![
                json!("gap variance ms²"),
                ms2(self.rate.gaps.variance()),
                ms2(self.theory.gap_variance_us2),
            ],
            vec![
                json!("share of the hottest key (0)"),
                json!(self.mix.share(self.mix.head[0])),
                json!(head0),
            ],
            vec![
                json!("read fraction"),
                json!(self.mix.share(self.mix.reads)),
                json!(self.workload.read_fraction()),
            ],
            vec![
                json!("operations (keys, mix)"),
                json!(self.mix.ops),
                json!(null),
            ],
        ];
        Panel::Table {
            title: format!(
                "statistics (arrivals since {:.3} s, keys since the last change)",
                self.rate.since.as_secs_f64()
            ),
            columns: ["statistic", "observed", "expected"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn keys_bars(&self) -> Panel {
        let shown = self.head_theory.len();
        let x: Vec<f64> = (0..shown).map(|k| k as f64).collect();
        let observed = self
            .mix
            .head
            .iter()
            .take(shown)
            .map(|&c| self.mix.share(c).unwrap_or(0.0))
            .collect();
        let title = match self.keys {
            KeyDistribution::Zipf { keys, s } => format!(
                "share of keys 0–{} (Zipf rank k+1, s = {s}, {keys} keys)",
                shown.saturating_sub(1)
            ),
            KeyDistribution::Uniform { keys } => format!(
                "share of keys 0–{} (uniform over {keys} keys)",
                shown.saturating_sub(1)
            ),
        };
        Panel::Bars {
            title,
            labels: (0..shown).map(|k| format!("k{k}")).collect(),
            series: vec![
                Series {
                    name: "observed".into(),
                    unit: "share".into(),
                    x: x.clone(),
                    y: observed,
                },
                Series {
                    name: "theory".into(),
                    unit: "share".into(),
                    x,
                    y: self.head_theory.clone(),
                },
            ],
        }
    }

    fn recent_strip(&self) -> Panel {
        let skip = self.recent.len().saturating_sub(STRIP_OPS);
        Panel::Strip {
            title: format!("last {STRIP_OPS} operations (key, read/write)"),
            items: self
                .recent
                .iter()
                .skip(skip)
                .map(|(_, op)| StripItem {
                    label: format!("k{}", op.key),
                    state: kind_name(op.kind).into(),
                })
                .collect(),
        }
    }
}

fn kind_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Read => "read",
        OpKind::Write => "write",
    }
}

/// Whether `arrivals` in `elapsed` fit the process's long-run rate. The tolerance is
/// `RATE_SIGMAS · √(rate·t + c) + c + 1`, `c` being [`ArrivalTheory::arrivals_per_cycle`]:
/// five standard deviations of a Poisson count (the widest spread of the four processes:
/// on/off is Poisson within its on time, the others are deterministic), plus how far a
/// periodic process's count can lead or lag `rate · t` within one cycle, plus one for
/// rounding to the microsecond. Judged once `rate · t ≥ RATE_MIN_EXPECTED`.
fn judge_rate(arrivals: u64, elapsed: Duration, theory: &ArrivalTheory) -> InvariantStatus {
    const NAME: &str = "observed rate within tolerance of the configured rate";
    let expected = theory.rate_per_sec * elapsed.as_secs_f64();
    if expected < RATE_MIN_EXPECTED {
        return InvariantStatus::holds(
            NAME,
            format!(
                "not judged yet: {expected:.1} of {RATE_MIN_EXPECTED} expected arrivals so far"
            ),
        );
    }
    let cycle = theory.arrivals_per_cycle;
    let tolerance = RATE_SIGMAS * libm::sqrt(expected + cycle) + cycle + 1.0;
    let off = arrivals as f64 - expected;
    let detail = format!(
        "{arrivals} arrivals in {:.3} s, expected {expected:.1} ± {tolerance:.1} \
         ({RATE_SIGMAS} σ of a Poisson count, plus {cycle} for the phase of a cycle, plus 1): \
         {:.2}/s against {:.2}/s",
        elapsed.as_secs_f64(),
        arrivals as f64 / elapsed.as_secs_f64(),
        theory.rate_per_sec
    );
    if off.abs() <= tolerance {
        InvariantStatus::holds(NAME, detail)
    } else {
        InvariantStatus::violated(NAME, detail, Vec::new())
    }
}

impl Sampled for WorkloadLab {
    type Totals = u64;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("arrivals", "per interval"),
            ("expected arrivals", "per interval"),
            ("observed rate", "/s"),
            ("configured rate", "/s"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> u64 {
        self.arrived
    }

    fn sample(&self, at: Time, interval: Duration, since: &u64) -> Vec<f64> {
        vec![
            (self.arrived - since) as f64,
            self.theory.rate_per_sec * interval.as_secs_f64(),
            self.rate.rate_at(at),
            self.theory.rate_per_sec,
        ]
    }
}

impl LocalLab for WorkloadLab {
    const ID: &'static str = "sim.workload";
    type Config = WorkloadLabConfig;
    type Action = WorkloadLabAction;

    fn new(c: &WorkloadLabConfig) -> Result<Self> {
        let mut workload =
            Workload::new(&c.workload, Time::ZERO).map_err(|e| within("workload", e))?;
        let head_theory = c
            .workload
            .keys
            .head_probabilities(HEAD_KEYS)
            .map_err(|e| within("workload.keys", e))?;
        let mut rng = SimRng::new(c.seed);
        let next_at = workload.next_arrival(&mut rng);
        Ok(WorkloadLab {
            rng,
            theory: workload.arrivals().theory(),
            workload,
            arrivals: c.workload.arrivals,
            keys: c.workload.keys,
            head_theory,
            next_at,
            arrived: 0,
            last_arrival: None,
            went_backwards: None,
            hasher: StableHasher::default(),
            recent: VecDeque::new(),
            rate: ArrivalStats::new(Time::ZERO),
            mix: MixStats::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        Some(self.next_at)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        // `at.now` is the clock moved up to `due`: an arrival before it is one before the
        // clock as it was.
        self.arrive(due, at.now, at.step);
    }

    fn act(&mut self, at: Moment, action: &WorkloadLabAction) -> Result<()> {
        match action {
            WorkloadLabAction::SetArrivals { arrivals } => {
                let mut workload = self.workload.clone();
                workload.set_arrivals(arrivals, at.now)?;
                self.workload = workload;
                self.arrivals = *arrivals;
                self.theory = self.workload.arrivals().theory();
                self.next_at = self.workload.next_arrival(&mut self.rng);
                self.rate = ArrivalStats::new(at.now);
            }
            WorkloadLabAction::SetKeys { keys } => {
                let head_theory = keys
                    .head_probabilities(HEAD_KEYS)
                    .map_err(|e| within("keys", e))?;
                self.workload.set_keys(keys)?;
                self.keys = *keys;
                self.head_theory = head_theory;
                self.mix = MixStats::default();
            }
            WorkloadLabAction::ResetStatistics => {
                self.rate = ArrivalStats::new(at.now);
                self.mix = MixStats::default();
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<u64>) -> View {
        let series = samples.series();
        let chart = Panel::Chart {
            title: format!(
                "arrivals per {} ms against the configured mean",
                samples.interval().as_millis_f64()
            ),
            x_label: "time (ms)".into(),
            series: series.iter().take(2).cloned().collect(),
        };
        let process = Panel::Table {
            title: "workload".into(),
            columns: vec!["knob".into(), "value".into()],
            rows: vec![
                vec![json!("arrivals"), json!(self.arrivals)],
                vec![json!("keys"), json!(self.keys)],
                vec![json!("readFraction"), json!(self.workload.read_fraction())],
                vec![json!("next arrival µs"), json!(self.next_at)],
            ],
        };
        View {
            panels: vec![
                chart,
                self.keys_bars(),
                self.statistics_table(at.now),
                self.recent_strip(),
                process,
            ],
            invariants: self.invariants(at.now),
            ..View::default()
        }
    }

    /// `{hash, events, complete, trace}`: a stable hash of every arrival so far (step, time,
    /// key, kind) and the newest [`RECENT_OPS`] of them.
    fn trace(&self, _at: Moment) -> Value {
        let trace: Vec<Value> = self
            .recent
            .iter()
            .map(|(step, op)| {
                json!({"step": step, "at": op.at, "key": op.key, "kind": kind_name(op.kind)})
            })
            .collect();
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.arrived,
            "complete": self.arrived <= self.recent.len() as u64,
            "trace": trace,
        })
    }

    fn example_actions() -> Vec<WorkloadLabAction> {
        use ArrivalProcess::*;
        let arrivals = |arrivals| WorkloadLabAction::SetArrivals { arrivals };
        vec![
            arrivals(Constant {
                rate_per_sec: 100.0,
            }),
            arrivals(Poisson {
                rate_per_sec: 500.0,
            }),
            arrivals(OnOff {
                rate_per_sec: 1_000.0,
                on_ms: 50.0,
                off_ms: 150.0,
            }),
            arrivals(WindowBoundaryBurst {
                window_ms: 1_000.0,
                burst: 50,
                spacing_ms: 0.1,
                every_windows: 2,
            }),
            WorkloadLabAction::SetKeys {
                keys: KeyDistribution::Uniform { keys: 20 },
            },
            WorkloadLabAction::SetKeys {
                keys: KeyDistribution::Zipf {
                    keys: 1_000,
                    s: 1.2,
                },
            },
            WorkloadLabAction::ResetStatistics,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DistlabError;
    use crate::lab::sampling::SERIES_POINTS;
    use crate::lab::{Lab, LabModel, Local, Runner};
    use serde_json::json;

    fn lab(config: Value) -> Runner<Local<WorkloadLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn invariant(v: &View, prefix: &str) -> InvariantStatus {
        v.invariants
            .iter()
            .find(|i| i.name.starts_with(prefix))
            .cloned()
            .unwrap()
    }

    fn field_of(e: DistlabError) -> String {
        match e {
            DistlabError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn default_run_matches_theory() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(100)).unwrap();
        let m = l.model();
        // 200/s for 100 s.
        assert!(
            (l.steps() as f64 / 20_000.0 - 1.0).abs() < 0.04,
            "{}",
            l.steps()
        );
        assert!(l.view().invariants.iter().all(|i| i.ok), "{:?}", l.view());
        let p0 = m.head_theory[0];
        // H(100, 1) = 5.187…, so key 0 has 19.3 %.
        assert!((p0 - 1.0 / 5.187_377_517_639_621).abs() < 1e-12);
        let share = m.mix.share(m.mix.head[0]).unwrap();
        assert!((share - p0).abs() < 0.015, "{share} vs {p0}");
        let reads = m.mix.share(m.mix.reads).unwrap();
        assert!((reads - 0.9).abs() < 0.01, "{reads}");
        let mean_gap = m.rate.gaps.mean().unwrap();
        assert!((mean_gap / 5_000.0 - 1.0).abs() < 0.03, "{mean_gap}");
        let var = m.rate.gaps.variance().unwrap();
        assert!((var / 25e6 - 1.0).abs() < 0.06, "{var}");
        // The chart: 100 ms intervals, 20 expected in each.
        let v = l.view();
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!("{:?}", v.panels[0]);
        };
        assert_eq!(series[0].x.len(), 600);
        assert!(series[1].y.iter().all(|&y| (y - 20.0).abs() < 1e-9));
        let total: f64 = series[0].y.iter().sum();
        assert!((total / 12_000.0 - 1.0).abs() < 0.05, "{total}");
    }

    #[test]
    fn the_lab_draws_exactly_what_the_workload_generator_draws() {
        let mut l = lab(json!({"seed": 9}));
        l.step_events(500).unwrap();
        let config = WorkloadConfig::default();
        let mut w = Workload::new(&config, Time::ZERO).unwrap();
        let mut rng = SimRng::new(9);
        let ops: Vec<Operation> = (0..500).map(|_| w.next_op(&mut rng)).collect();
        let recent: Vec<Operation> = l.model().recent.iter().map(|(_, op)| *op).collect();
        assert_eq!(recent, ops[500 - RECENT_OPS..]);
        assert_eq!(l.now(), ops[499].at);
    }

    #[test]
    fn set_arrivals_restarts_the_arrival_statistics() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(2)).unwrap();
        l.act(&json!({"type": "setArrivals",
                      "arrivals": {"type": "constant", "ratePerSec": 1000}}))
            .unwrap();
        let keys_before = l.model().mix.ops;
        assert_eq!(l.model().rate.arrivals, 0);
        assert_eq!(l.model().rate.since, Time::from_millis(2_000));
        // Constant spacing starts now: exactly one arrival per ms, the first at once.
        l.step(Duration::from_micros(999_999)).unwrap();
        assert_eq!(l.model().rate.arrivals, 1_000);
        assert_eq!(l.model().rate.gaps.mean(), Some(1_000.0));
        assert_eq!(l.model().rate.gaps.variance(), Some(0.0));
        // Keys were not restarted.
        assert_eq!(l.model().mix.ops, keys_before + 1_000);
        l.act(&json!({"type": "setKeys", "keys": {"type": "uniform", "keys": 4}}))
            .unwrap();
        assert_eq!(l.model().mix, MixStats::default());
        assert_eq!(l.model().head_theory, vec![0.25; 4]);
        l.step(Duration::from_secs(1)).unwrap();
        assert!(
            l.model()
                .recent
                .iter()
                .rev()
                .take(1_000)
                .all(|(_, op)| op.key < 4)
        );
        l.act(&json!({"type": "resetStatistics"})).unwrap();
        assert_eq!(l.model().mix.ops, 0);
        assert_eq!(l.model().rate.arrivals, 0);
    }

    #[test]
    fn the_rate_invariant_judges_with_its_stated_tolerance() {
        let poisson = Arrivals200::theory();
        // 100 s at 200/s: 20 000 ± 5·√20 000 + 1 ≈ 20 000 ± 708.
        let ok = judge_rate(20_700, Duration::from_secs(100), &poisson);
        assert!(ok.ok, "{}", ok.detail);
        let bad = judge_rate(20_710, Duration::from_secs(100), &poisson);
        assert!(!bad.ok, "{}", bad.detail);
        let low = judge_rate(19_290, Duration::from_secs(100), &poisson);
        assert!(!low.ok);
        // Not judged before 100 expected arrivals, however far off.
        assert!(judge_rate(0, Duration::from_millis(499), &poisson).ok);
        assert!(!judge_rate(0, Duration::from_millis(500), &poisson).ok);
        // A periodic process gets its cycle as slack: 20 per burst cycle here.
        let burst = crate::sim::workload::Arrivals::new(
            &ArrivalProcess::WindowBoundaryBurst {
                window_ms: 1_000.0,
                burst: 10,
                spacing_ms: 0.0,
                every_windows: 2,
            },
            Time::ZERO,
        )
        .unwrap()
        .theory();
        assert_eq!(burst.arrivals_per_cycle, 20.0);
        assert!(judge_rate(120, Duration::from_secs(10), &burst).ok);
    }

    struct Arrivals200;
    impl Arrivals200 {
        fn theory() -> ArrivalTheory {
            crate::sim::workload::Arrivals::new(
                &ArrivalProcess::Poisson {
                    rate_per_sec: 200.0,
                },
                Time::ZERO,
            )
            .unwrap()
            .theory()
        }
    }

    #[test]
    fn the_rate_invariant_holds_for_every_process_over_many_seeds() {
        for (i, action) in WorkloadLab::example_actions()
            .into_iter()
            .take(4)
            .enumerate()
        {
            for seed in 0..10 {
                let mut l = lab(json!({"seed": seed}));
                l.act(&serde_json::to_value(&action).unwrap()).unwrap();
                for _ in 0..20 {
                    l.step(Duration::from_millis(1_537)).unwrap();
                    let v = l.view();
                    assert!(
                        v.invariants.iter().all(|i| i.ok),
                        "{i} {seed}: {:?}",
                        v.invariants
                    );
                }
            }
        }
    }

    #[test]
    fn going_backwards_is_caught() {
        let mut l = Local::<WorkloadLab>::new(&WorkloadLabConfig::default()).unwrap();
        l.arrive(Time(500), Time::ZERO, 0);
        l.arrive(Time(400), Time::ZERO, 1);
        let v = l.view();
        let i = invariant(&v, "arrival times");
        assert!(!i.ok && i.detail.contains("0.400 ms"), "{}", i.detail);
        // A clock moved past a pending arrival counts too.
        let mut l = Local::<WorkloadLab>::new(&WorkloadLabConfig::default()).unwrap();
        l.advance_clock(Time(1_000));
        let now = l.now();
        l.arrive(Time(999), now, 0);
        assert!(!invariant(&l.view(), "arrival times").ok);
    }

    #[test]
    fn a_long_quiet_stretch_is_cheap_and_memory_stays_bounded() {
        let mut l = lab(
            json!({"workload": {"arrivals": {"type": "poisson", "ratePerSec": 1e-6}},
                               "sampleMs": 1}),
        );
        // 10^15 µs at one sample per ms: 10^12 samples due, 600 kept.
        l.step(Duration(1_000_000_000_000_000)).unwrap();
        assert_eq!(l.now(), Time(1_000_000_000_000_000));
        let v = l.view();
        assert!(v.metrics.iter().all(|s| s.x.len() == SERIES_POINTS));
        assert_eq!(
            v.metrics[0].x.last().copied(),
            Some(1_000_000_000_000.0),
            "the newest sample is at the new clock"
        );
        let mut busy =
            lab(json!({"workload": {"arrivals": {"type": "poisson", "ratePerSec": 1e6}}}));
        // One call runs at most MAX_EVENTS_PER_CALL events; a second of 10^6 arrivals
        // takes several.
        let end = Time::from_millis(1_000);
        while busy.now() < end {
            busy.step(end.saturating_since(busy.now())).unwrap();
        }
        assert!(busy.steps() > 990_000);
        let m = busy.model();
        assert_eq!(m.recent.len(), RECENT_OPS);
        assert!(
            busy.view()
                .metrics
                .iter()
                .all(|s| s.x.len() <= SERIES_POINTS)
        );
        assert_eq!(busy.trace()["trace"].as_array().unwrap().len(), RECENT_OPS);
        assert_eq!(busy.trace()["complete"], json!(false));
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        let config_cases = [
            (
                json!({"workload": {"arrivals": {"type": "poisson", "ratePerSec": -1}}}),
                "workload.arrivals.ratePerSec",
            ),
            (
                json!({"workload": {"keys": {"type": "zipf", "keys": 10, "s": -1}}}),
                "workload.keys.s",
            ),
            (
                json!({"workload": {"readFraction": 2}}),
                "workload.readFraction",
            ),
            (json!({"sampleMs": 0}), "sampleMs"),
            (json!({"sampleMs": 1e300}), "sampleMs"),
        ];
        // Bounds the field types carry are checked as the config is read; the rest
        // when the lab is built. Either way the error names the field.
        for (config, field) in config_cases {
            let e = match crate::lab::json::from_value::<WorkloadLabConfig>("config", &config) {
                Ok(config) => Local::<WorkloadLab>::new(&config).err().unwrap(),
                Err(e) => e,
            };
            assert_eq!(field_of(e).trim_start_matches("config."), field);
        }
        let e = Runner::<Local<WorkloadLab>>::from_json(&json!({"sampleMs": "x"}))
            .err()
            .unwrap();
        assert_eq!(field_of(e), "config.sampleMs");
        let mut l = lab(Value::Null);
        l.step_events(10).unwrap();
        let before = serde_json::to_value(l.view()).unwrap();
        let action_cases = [
            (
                json!({"type": "setArrivals", "arrivals": {"type": "constant", "ratePerSec": 0}}),
                "action.arrivals.ratePerSec",
            ),
            (
                json!({"type": "setKeys", "keys": {"type": "zipf", "keys": 0, "s": 1}}),
                "action.keys.keys",
            ),
            (
                json!({"type": "setKeys", "keys": {"type": "zipf", "keys": 5, "s": 1e9}}),
                "action.keys.s",
            ),
            (json!({"type": "setKeys"}), "action"),
            (json!({"type": "resetStatistic"}), "action.type"),
        ];
        for (action, field) in action_cases {
            let e = l.act(&action).unwrap_err();
            assert_eq!(field_of(e), field);
        }
        assert_eq!(serde_json::to_value(l.view()).unwrap(), before);
    }

    #[test]
    fn schemas_and_examples_round_trip() {
        let l = lab(Value::Null);
        let schema = l.config_schema().to_string();
        assert!(schema.contains("readFraction") && schema.contains("windowBoundaryBurst"));
        assert!(l.action_schema().to_string().contains("resetStatistics"));
        assert_eq!(
            l.config(),
            json!({"seed": 1, "sampleMs": 100.0, "workload": {
                "arrivals": {"type": "poisson", "ratePerSec": 200.0},
                "keys": {"type": "zipf", "keys": 100, "s": 1.0},
                "readFraction": 0.9}})
        );
        for a in l.example_actions().as_array().unwrap() {
            lab(Value::Null).act(a).unwrap();
        }
    }
}
