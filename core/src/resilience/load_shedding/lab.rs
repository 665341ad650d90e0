//! Lab `resilience.load-shedding`: requests of several priorities reach a service through
//! a load shedder. The service works on `capacity` requests at full speed; past that they
//! share it, so latency grows with load, and far past it the service drops them. The
//! limiter (AIMD or Gradient2) learns the limit from the latencies and drops; the view
//! charts the limit against the capacity and what is in flight, the requests shed per
//! priority, and the latency; checked live that no request is admitted past the limit or
//! its priority's share, and that every admitted request is accounted for.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::resilience::dependency::LabTrace;
use crate::resilience::load_shedding::{
    Limit, LimitConfig, LoadShedder, LoadShedderConfig, MAX_LIMIT, ShedAdmission,
};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// The most a burst action sends at once.
pub const MAX_BURST: u32 = 10_000;
/// How long the service takes to drop a request it has no room for.
const DROP_LATENCY: Duration = Duration(1_000);

fn lab_shedder() -> LoadShedderConfig {
    LoadShedderConfig {
        limit: LimitConfig::Aimd {
            initial_limit: Count::of(10),
            min_limit: Count::of(1),
            max_limit: Count::of(500),
            backoff_ratio: 0.9,
            // 1.5 × the service's latency: AIMD then backs off where Gradient2's default
            // tolerance (1.5) would, so the two settle near the same limit.
            timeout_ms: Millis::of(30),
        },
        priorities: Count::of(3),
        headroom_per_priority: Probability::of(0.1),
    }
}

local_lab_config! {
    /// Configuration of the load-shedding lab. JSON: `{"shedder": {"limit": {"type":
    /// "aimd", ...}, "priorities": 3, "headroomPerPriority": 0.1}, "capacity": 40,
    /// "latencyMs": 20, "dropAbove": 160, "priorityWeights": [1, 2, 3], "arrivals":
    /// {"type": "poisson", "ratePerSec": 2500}}`.
    pub struct LoadSheddingLabConfig {
        pub shedder: LoadShedderConfig = lab_shedder(),
        /// Requests the service works on at once at full speed.
        pub capacity: Count<1, { MAX_LIMIT }> = Count::of(40),
        /// A request's latency at or below capacity (uniform between half and 1.5×);
        /// with `n` in the service above capacity it takes `n / capacity` times longer.
        pub latency_ms: Millis<1, 60_000> = Millis::of(20),
        /// The service drops requests that find this many already in it.
        pub drop_above: Count<1, { MAX_LIMIT }> = Count::of(160),
        /// The share of each priority among arrivals, most important first (one
        /// weight per priority).
        pub priority_weights: Vec<u32> = vec![1, 2, 3],
        /// When requests arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 2_500.0 },
    }
}

/// What can be done. JSON: `{"type": "setCapacity", "capacity": 20}`, `{"type":
/// "burst", "count": 200, "priority": 2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LoadSheddingLabAction {
    /// The service's capacity from now on (a node lost, or added).
    SetCapacity { capacity: Count<1, { MAX_LIMIT }> },
    /// `count` requests of `priority` now.
    Burst {
        count: Count<1, { MAX_BURST }>,
        priority: u32,
    },
}

/// The load-shedding lab.
#[derive(Debug, Clone)]
pub struct LoadSheddingLab {
    shedder: LoadShedder,
    rng: SimRng,
    capacity: u32,
    latency: Duration,
    drop_above: u32,
    weights: Vec<u32>,
    /// Requests in the service, by when they finish: (id, dropped).
    running: BTreeMap<(Time, u64), (u64, bool)>,
    seq: u64,
    admitted: u64,
    finished: u64,
    latency_total_us: u64,
    /// Admissions past the limit or a priority's share (never, if correct).
    over_admitted: u64,
    trace: LabTrace,
}

impl LoadSheddingLab {
    pub fn shedder(&self) -> &LoadShedder {
        &self.shedder
    }

    fn priority(&mut self) -> u32 {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        let mut pick = self.rng.below(total.max(1));
        for (p, w) in self.weights.iter().enumerate() {
            if pick < u64::from(*w) {
                return p as u32;
            }
            pick -= u64::from(*w);
        }
        0
    }

    fn arrive(&mut self, at: Moment, priority: u32) -> Result<()> {
        let before = self.shedder.inflight();
        let allowed = self.shedder.allowed(priority);
        let limit = self.shedder.limit();
        match self.shedder.try_acquire(at.now, priority)? {
            ShedAdmission::Admitted { id } => {
                if before >= allowed || before >= limit {
                    self.over_admitted += 1;
                }
                self.admitted += 1;
                let n = self.running.len() as u32 + 1;
                let (took, dropped) = if n > self.drop_above {
                    (DROP_LATENCY, true)
                } else {
                    let base = self.latency.0 / 2 + self.rng.range_inclusive(0, self.latency.0);
                    let slowdown = f64::from(n.max(self.capacity)) / f64::from(self.capacity);
                    (Duration((base as f64 * slowdown) as u64), false)
                };
                self.running
                    .insert((at.now.saturating_add(took), self.seq), (id, dropped));
                self.seq += 1;
                self.trace.push(
                    at.step,
                    at.now,
                    "admitted",
                    &[("id", id), ("priority", priority.into())],
                );
            }
            ShedAdmission::Shed { .. } => {
                self.trace
                    .push(at.step, at.now, "shed", &[("priority", priority.into())]);
            }
        }
        Ok(())
    }

    fn observed(&self) -> Observed {
        let s = self.shedder.stats();
        Observed {
            admitted: self.admitted,
            finished: s.iter().map(|p| p.succeeded + p.dropped).sum(),
            inflight: u64::from(self.shedder.inflight()),
            over_admitted: self.over_admitted,
        }
    }
}

/// What the invariants look at.
#[derive(Debug, Clone, Copy)]
struct Observed {
    admitted: u64,
    finished: u64,
    inflight: u64,
    over_admitted: u64,
}

fn judge(o: Observed) -> Vec<InvariantStatus> {
    let check = |ok: bool, name: &str, detail: String| {
        if ok {
            InvariantStatus::holds(name, detail)
        } else {
            InvariantStatus::violated(name, detail, vec![0])
        }
    };
    vec![
        check(
            o.over_admitted == 0,
            "no request is admitted past the limit or its priority's share",
            format!("{} admitted past it", o.over_admitted),
        ),
        check(
            o.admitted == o.finished + o.inflight,
            "every admitted request is accounted for",
            format!(
                "{} admitted = {} finished + {} in flight",
                o.admitted, o.finished, o.inflight
            ),
        ),
    ]
}

impl Sampled for LoadSheddingLab {
    /// Shed per priority, then dropped, finished and their latency sum (µs).
    type Totals = Vec<u64>;

    fn series(&self) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = vec![
            ("limit".into(), "requests".into()),
            ("in flight".into(), "requests".into()),
            ("capacity".into(), "requests".into()),
        ];
        for p in 0..self.shedder.priorities() {
            s.push((format!("shed, priority {p}"), "per interval".into()));
        }
        s.push(("dropped by the service".into(), "per interval".into()));
        s.push(("mean latency".into(), "ms".into()));
        s
    }

    fn totals(&self) -> Vec<u64> {
        let s = self.shedder.stats();
        let mut t: Vec<u64> = s.iter().map(|p| p.shed).collect();
        t.push(s.iter().map(|p| p.dropped).sum());
        t.push(self.finished);
        t.push(self.latency_total_us);
        t
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &Vec<u64>) -> Vec<f64> {
        let now = self.totals();
        let d: Vec<u64> = now
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(since.get(i).copied().unwrap_or(0)))
            .collect();
        let mut out = vec![
            f64::from(self.shedder.limit()),
            f64::from(self.shedder.inflight()),
            f64::from(self.capacity),
        ];
        let k = d.len().saturating_sub(2);
        out.extend(d.iter().take(k).map(|n| *n as f64));
        let finished = d.get(k).copied().unwrap_or(0);
        let latency = d.get(k + 1).copied().unwrap_or(0);
        out.push(if finished == 0 {
            0.0
        } else {
            latency as f64 / finished as f64 / 1_000.0
        });
        out
    }
}

impl LocalLab for LoadSheddingLab {
    const ID: &'static str = "resilience.load-shedding";
    type Config = LoadSheddingLabConfig;
    type Action = LoadSheddingLabAction;

    fn new(c: &LoadSheddingLabConfig) -> Result<Self> {
        let shedder =
            LoadShedder::new(&c.shedder).map_err(|e| crate::sim::workload::within("shedder", e))?;
        let p = c.shedder.priorities.get() as usize;
        if c.priority_weights.len() != p || c.priority_weights.iter().all(|w| *w == 0) {
            return Err(DistlabError::field(
                "priorityWeights",
                format!(
                    "must give one weight per priority ({p}), not all 0, got {:?}",
                    c.priority_weights
                ),
            ));
        }
        if c.priority_weights.iter().any(|w| *w > 1_000_000) {
            return Err(DistlabError::field(
                "priorityWeights",
                "each weight must be at most 1000000",
            ));
        }
        Ok(LoadSheddingLab {
            shedder,
            rng: SimRng::derive(c.seed, 1),
            capacity: c.capacity.get(),
            latency: c.latency_ms.duration(),
            drop_above: c.drop_above.get(),
            weights: c.priority_weights.clone(),
            running: BTreeMap::new(),
            seq: 0,
            admitted: 0,
            finished: 0,
            latency_total_us: 0,
            over_admitted: 0,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.running.keys().next().map(|(t, _)| *t)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        let Some(entry) = self.running.first_entry() else {
            return;
        };
        if entry.key().0 > due {
            return;
        }
        let ((_, _), (id, dropped)) = entry.remove_entry();
        // Cannot fail: `id` is in flight.
        let _ = if dropped {
            self.shedder.on_dropped(at.now, id)
        } else {
            self.shedder.on_success(at.now, id)
        };
        self.finished += 1;
        self.trace.push(
            at.step,
            at.now,
            if dropped { "dropped" } else { "done" },
            &[("id", id), ("limit", self.shedder.limit().into())],
        );
    }

    fn act(&mut self, at: Moment, action: &LoadSheddingLabAction) -> Result<()> {
        match action {
            LoadSheddingLabAction::SetCapacity { capacity } => self.capacity = capacity.get(),
            LoadSheddingLabAction::Burst { count, priority } => {
                if *priority >= self.shedder.priorities() {
                    return Err(DistlabError::field(
                        "priority",
                        format!(
                            "must be below {}, got {priority}",
                            self.shedder.priorities()
                        ),
                    ));
                }
                for _ in 0..count.get() {
                    self.arrive(at, *priority)?;
                }
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<Vec<u64>>) -> View {
        let s = self.shedder.stats();
        let mut fields = BTreeMap::new();
        fields.insert("limit".into(), json!(self.shedder.limit()));
        fields.insert("in flight".into(), json!(self.shedder.inflight()));
        fields.insert("capacity".into(), json!(self.capacity));
        let algorithm = match self.shedder.limiter() {
            Limit::Aimd(_) => "AIMD".to_string(),
            Limit::Gradient2(g) => {
                fields.insert("long rtt ms".into(), json!(g.long_rtt() / 1_000.0));
                fields.insert("short rtt ms".into(), json!(g.short_rtt() / 1_000.0));
                "Gradient2".to_string()
            }
        };
        fields.insert("algorithm".into(), json!(algorithm));
        let series = samples.series();
        let p = self.shedder.priorities() as usize;
        let limit = Panel::Chart {
            title: "limit, in flight and the service's capacity".into(),
            x_label: "time (ms)".into(),
            series: series.iter().take(3).cloned().collect(),
        };
        let shed = Panel::Chart {
            title: "shed per priority (0 most important) and dropped".into(),
            x_label: "time (ms)".into(),
            series: series.iter().skip(3).take(p + 1).cloned().collect(),
        };
        let latency = Panel::Chart {
            title: "mean latency".into(),
            x_label: "time (ms)".into(),
            series: series.iter().skip(4 + p).cloned().collect(),
        };
        let table = Panel::Table {
            title: "per priority".into(),
            columns: [
                "priority",
                "share of the limit",
                "admitted",
                "shed",
                "shed %",
                "succeeded",
                "dropped",
            ]
            .map(String::from)
            .to_vec(),
            rows: s
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let arrived = st.admitted + st.shed;
                    let pct = if arrived == 0 {
                        0.0
                    } else {
                        st.shed as f64 * 100.0 / arrived as f64
                    };
                    vec![
                        json!(i),
                        json!(self.shedder.allowed(i as u32)),
                        json!(st.admitted),
                        json!(st.shed),
                        json!(pct),
                        json!(st.succeeded),
                        json!(st.dropped),
                    ]
                })
                .collect(),
        };
        View {
            nodes: vec![NodeView {
                id: 0,
                label: format!("{algorithm} limiter"),
                role: if self.shedder.inflight() >= self.shedder.limit() {
                    "shedding"
                } else {
                    "admitting"
                }
                .into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![limit, shed, table, latency],
            invariants: judge(self.observed()),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<LoadSheddingLabAction> {
        vec![
            LoadSheddingLabAction::SetCapacity {
                capacity: Count::of(10),
            },
            LoadSheddingLabAction::Burst {
                count: Count::of(300),
                priority: 2,
            },
            LoadSheddingLabAction::SetCapacity {
                capacity: Count::of(80),
            },
        ]
    }
}

impl DrivenLab for LoadSheddingLab {
    fn arrivals(c: &LoadSheddingLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let p = self.priority();
        // Cannot fail: the priority is drawn among the shedder's.
        let _ = self.arrive(at, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<LoadSheddingLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn shed_share(l: &Runner<Driven<LoadSheddingLab>>) -> Vec<f64> {
        l.model()
            .shedder()
            .stats()
            .iter()
            .map(|p| p.shed as f64 / (p.shed + p.admitted).max(1) as f64)
            .collect()
    }

    /// The mean of the newest `n` samples of the limit.
    fn mean_limit(l: &Runner<Driven<LoadSheddingLab>>, n: usize) -> f64 {
        let v = l.view();
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!("the first panel charts the limit")
        };
        let y = &series[0].y;
        let newest = &y[y.len().saturating_sub(n)..];
        newest.iter().sum::<f64>() / newest.len().max(1) as f64
    }

    fn gradient2(window_ms: u32, window_size: u32) -> Value {
        json!({"shedder": {"limit": {"type": "gradient2", "initialLimit": 10,
            "minLimit": 1, "maxLimit": 500, "smoothing": 0.2, "queueSize": 4,
            "longWindow": 600, "rttTolerance": 1.5, "windowMs": window_ms,
            "windowSize": window_size}}})
    }

    /// Overloaded (2,500 requests/s offered, the service does 2,000/s at capacity 40):
    /// the lab sheds, lowest priority first, and the limit settles near the capacity.
    fn assert_sheds_and_settles(config: Value, band: std::ops::RangeInclusive<f64>) {
        let mut l = lab(config);
        l.step(Duration::from_secs(10)).unwrap();
        let shares = shed_share(&l);
        assert!(shares[2] > 0.05, "overloaded, so it sheds: {shares:?}");
        assert!(shares[0] < shares[1] && shares[1] < shares[2], "{shares:?}");
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        // The last 5 s (the sampler keeps one point per 100 ms).
        let mean = mean_limit(&l, 50);
        assert!(band.contains(&mean), "limit {mean} outside {band:?}");
    }

    #[test]
    fn overloaded_aimd_sheds_the_lowest_priority_first_near_the_capacity() {
        // AIMD backs off where a request's rtt passes the 30 ms timeout: with latency
        // uniform in [10, 30] ms × limit/40, a little past the capacity (40). It saws:
        // every sample that times out backs off, so a burst of them cuts it deeply.
        assert_sheds_and_settles(Value::Null, 15.0..=70.0);
    }

    #[test]
    fn overloaded_windowed_gradient2_sheds_the_lowest_priority_first_near_the_capacity() {
        // Gradient2 lets latency reach rttTolerance × longRtt: with the lower priorities
        // capped at 80-90 % of the limit that is near 75 here (twice the capacity), and it
        // drifts up slowly as longRtt learns the queueing latency.
        assert_sheds_and_settles(gradient2(100, 10), 40.0..=100.0);
        let l = lab(gradient2(100, 10));
        assert_eq!(l.view().nodes[0].label, "Gradient2 limiter");
    }

    fn dropped(l: &Runner<Driven<LoadSheddingLab>>) -> u64 {
        l.model().shedder().stats().iter().map(|p| p.dropped).sum()
    }

    /// The largest limit sampled.
    fn max_limit(l: &Runner<Driven<LoadSheddingLab>>) -> f64 {
        let v = l.view();
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!("the first panel charts the limit")
        };
        series[0].y.iter().copied().fold(0.0, f64::max)
    }

    /// What the sample window changes: updated on every request, Gradient2's long rtt
    /// averages the last few hundred requests (a fraction of a second here) and keeps up
    /// with the queueing latency, so the limit swings far past the capacity, up to where
    /// the service itself drops requests. It still sheds (the suspected "never sheds"
    /// was wrong for this service), but lets the service drop. Windowed, the limit stays
    /// below the drop point and the service drops nothing.
    #[test]
    fn gradient2_per_request_overshoots_to_the_drop_point_and_windowed_does_not() {
        let mut every = lab(gradient2(1, 1));
        every.step(Duration::from_secs(10)).unwrap();
        let mut windowed = lab(gradient2(100, 10));
        windowed.step(Duration::from_secs(10)).unwrap();
        assert!(dropped(&every) > 100, "per request: {}", dropped(&every));
        assert!(max_limit(&every) > 150.0, "{}", max_limit(&every));
        assert_eq!(dropped(&windowed), 0);
        assert!(max_limit(&windowed) < 120.0, "{}", max_limit(&windowed));
    }

    #[test]
    fn the_limit_follows_the_capacity_down() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(10)).unwrap();
        let before = mean_limit(&l, 50);
        l.act(&json!({"type": "setCapacity", "capacity": 10}))
            .unwrap();
        l.step(Duration::from_secs(10)).unwrap();
        let after = mean_limit(&l, 50);
        assert!(after * 2.0 < before, "{before} → {after}");
    }

    #[test]
    fn both_invariants_can_fail() {
        let good = Observed {
            admitted: 10,
            finished: 7,
            inflight: 3,
            over_admitted: 0,
        };
        assert!(judge(good).iter().all(|i| i.ok));
        let oks = |o| judge(o).iter().map(|i| i.ok).collect::<Vec<_>>();
        assert_eq!(
            oks(Observed {
                over_admitted: 1,
                ..good
            }),
            [false, true]
        );
        assert_eq!(
            oks(Observed {
                finished: 6,
                ..good
            }),
            [true, false]
        );
    }

    #[test]
    fn bad_configs_and_actions_name_their_field() {
        let e = Runner::<Driven<LoadSheddingLab>>::from_json(&json!({"priorityWeights": [1]}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.priorityWeights"), "{e}");
        let e = Runner::<Driven<LoadSheddingLab>>::from_json(
            &json!({"shedder": {"headroomPerPriority": 0.6}}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("config.shedder.headroomPerPriority"), "{e}");
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "burst", "count": 5, "priority": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("priority"), "{e}");
    }
}
