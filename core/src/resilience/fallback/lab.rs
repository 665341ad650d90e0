//! Lab `resilience.fallback`: calls go down a fallback chain (personalised → popular →
//! static default), each level a dependency of its own whose failure rate and latency an
//! action changes, each with its own timeout. The view charts which level served the
//! calls over time, the newest calls coloured by who answered, and per level how often it
//! was asked, answered, failed and timed out; checked live that every call is accounted
//! for and that each was served by the first level that answered in time.

use std::collections::{BTreeMap, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Millis, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, View};
use crate::resilience::ErrorKind;
use crate::resilience::dependency::{DependencyConfig, LabTrace};
use crate::resilience::fallback::{
    FallbackAction, FallbackCall, FallbackChain, FallbackConfig, LevelOutcome, Served,
};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// Finished calls the strip shows.
const SHOWN_CALLS: usize = 60;

fn lab_levels() -> Vec<DependencyConfig> {
    vec![
        // Personalised: a model server, slow and sometimes failing.
        DependencyConfig {
            failure_rate: Probability::of(0.1),
            latency_ms: Millis::of(80),
            slow_rate: Probability::of(0.1),
            slow_latency_ms: Millis::of(1_000),
        },
        // Popular: a precomputed list, fast and nearly always there.
        DependencyConfig {
            failure_rate: Probability::of(0.02),
            latency_ms: Millis::of(10),
            slow_rate: Probability::NEVER,
            slow_latency_ms: Millis::of(1_000),
        },
    ]
}

local_lab_config! {
    /// Configuration of the fallback lab. JSON: `{"chain": {"levels": [{"name":
    /// "personalised", "timeoutMs": 200}, {"name": "popular", "timeoutMs": 50}],
    /// "staticDefault": true}, "dependencies": [{"failureRate": 0.1, "latencyMs": 80},
    /// {"failureRate": 0.02, "latencyMs": 10}], "arrivals": {"type": "poisson",
    /// "ratePerSec": 50}}`.
    pub struct FallbackLabConfig {
        pub chain: FallbackConfig = FallbackConfig::default(),
        /// Each level's dependency, in the chain's order (one per level).
        pub dependencies: Vec<DependencyConfig> = lab_levels(),
        /// When calls arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 50.0 },
    }
}

/// What can be done. JSON: `{"type": "setDependency", "level": 0, "dependency":
/// {"failureRate": 1}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum FallbackLabAction {
    /// Level `level`'s dependency from now on (0: the best level).
    SetDependency {
        level: u32,
        dependency: DependencyConfig,
    },
}

#[derive(Debug, Clone, Copy)]
enum Due {
    /// Level `level` answers call `call`.
    Answer {
        call: u64,
        level: u32,
        error: Option<ErrorKind>,
    },
    /// Call `call`'s current level may have run out of time.
    Deadline { call: u64 },
}

/// The fallback lab.
#[derive(Debug, Clone)]
pub struct FallbackLab {
    chain: FallbackChain,
    dependencies: Vec<DependencyConfig>,
    rng: SimRng,
    calls: BTreeMap<u64, FallbackCall>,
    queue: BTreeMap<(Time, u64), Due>,
    seq: u64,
    next_call: u64,
    /// The newest finished calls: who served them.
    recent: VecDeque<(u64, Served)>,
    latency_total_us: u64,
    /// Calls served by a level while a level before it had not failed (never, if correct).
    misserved: u64,
    trace: LabTrace,
}

impl FallbackLab {
    pub fn chain(&self) -> &FallbackChain {
        &self.chain
    }

    fn schedule(&mut self, at: Time, due: Due) {
        self.queue.insert((at, self.seq), due);
        self.seq += 1;
    }

    fn apply(&mut self, at: Moment, call: u64, actions: Vec<FallbackAction>) {
        for action in actions {
            match action {
                FallbackAction::Ask { level, deadline } => {
                    let outcome = self
                        .dependencies
                        .get(level as usize)
                        .map(|d| d.call(&mut self.rng));
                    if let Some(o) = outcome {
                        let error = o.error;
                        self.schedule(
                            at.now.saturating_add(o.latency),
                            Due::Answer { call, level, error },
                        );
                    }
                    if let Some(d) = deadline {
                        self.schedule(d, Due::Deadline { call });
                    }
                    self.trace.push(
                        at.step,
                        at.now,
                        "ask",
                        &[("call", call), ("level", level.into())],
                    );
                }
                FallbackAction::Cancel { level } => self.trace.push(
                    at.step,
                    at.now,
                    "timedOut",
                    &[("call", call), ("level", level.into())],
                ),
                FallbackAction::Done { served, latency } => {
                    if let Some(c) = self.calls.remove(&call)
                        && let Served::Level { level } = served
                        && !fell_through(&c, level)
                    {
                        self.misserved += 1;
                    }
                    self.latency_total_us = self.latency_total_us.saturating_add(latency.0);
                    if self.recent.len() >= SHOWN_CALLS {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((call, served));
                    let level = match served {
                        Served::Level { level } => u64::from(level),
                        Served::StaticDefault => u64::from(self.chain.levels()),
                        Served::Failed { .. } => u64::MAX,
                    };
                    self.trace.push(
                        at.step,
                        at.now,
                        "served",
                        &[("call", call), ("level", level), ("latencyUs", latency.0)],
                    );
                }
            }
        }
    }

    fn served_name(&self, served: Served) -> String {
        match served {
            Served::Level { level } => self.chain.name(level).unwrap_or("?").to_string(),
            Served::StaticDefault => "static default".into(),
            Served::Failed { .. } => "failed".into(),
        }
    }

    fn observed(&self) -> Observed {
        let s = self.chain.stats();
        Observed {
            calls: s.calls,
            ended: s.levels.iter().map(|l| l.served).sum::<u64>() + s.static_default + s.failed,
            open: self.calls.len() as u64,
            misserved: self.misserved,
        }
    }
}

/// Whether every level before `level` failed or timed out in `call`.
fn fell_through(call: &FallbackCall, level: u32) -> bool {
    let before = call.outcomes().get(..level as usize).unwrap_or(&[]);
    before.len() == level as usize
        && before
            .iter()
            .all(|o| matches!(o, LevelOutcome::Failed { .. } | LevelOutcome::TimedOut))
}

/// What the invariants look at.
#[derive(Debug, Clone, Copy)]
struct Observed {
    calls: u64,
    ended: u64,
    open: u64,
    misserved: u64,
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
            o.calls == o.ended + o.open,
            "every call is accounted for",
            format!("{} calls = {} ended + {} open", o.calls, o.ended, o.open),
        ),
        check(
            o.misserved == 0,
            "each call is served by the first level that answered in time",
            format!("{} calls served out of order", o.misserved),
        ),
    ]
}

impl Sampled for FallbackLab {
    /// Calls served by each level, then by the static default, failed, and the sum of
    /// their latencies in µs.
    type Totals = Vec<u64>;

    fn series(&self) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = (0..self.chain.levels())
            .map(|l| {
                (
                    format!("served by {}", self.chain.name(l).unwrap_or("?")),
                    "calls per interval".into(),
                )
            })
            .collect();
        s.push(("static default".into(), "calls per interval".into()));
        s.push(("failed".into(), "calls per interval".into()));
        s.push(("mean latency".into(), "ms".into()));
        s
    }

    fn totals(&self) -> Vec<u64> {
        let s = self.chain.stats();
        let mut t: Vec<u64> = s.levels.iter().map(|l| l.served).collect();
        t.push(s.static_default);
        t.push(s.failed);
        t.push(self.latency_total_us);
        t
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &Vec<u64>) -> Vec<f64> {
        let now = self.totals();
        let delta: Vec<u64> = now
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(since.get(i).copied().unwrap_or(0)))
            .collect();
        let (counts, latency) = delta.split_at(delta.len().saturating_sub(1));
        let ended: u64 = counts.iter().sum();
        let mut out: Vec<f64> = counts.iter().map(|n| *n as f64).collect();
        let latency = latency.first().copied().unwrap_or(0) as f64;
        out.push(if ended == 0 {
            0.0
        } else {
            latency / ended as f64 / 1_000.0
        });
        out
    }
}

impl LocalLab for FallbackLab {
    const ID: &'static str = "resilience.fallback";
    type Config = FallbackLabConfig;
    type Action = FallbackLabAction;

    fn new(c: &FallbackLabConfig) -> Result<Self> {
        let chain =
            FallbackChain::new(&c.chain).map_err(|e| crate::sim::workload::within("chain", e))?;
        if c.dependencies.len() != c.chain.levels.len() {
            return Err(DistlabError::field(
                "dependencies",
                format!(
                    "must give one dependency per level ({}), got {}",
                    c.chain.levels.len(),
                    c.dependencies.len()
                ),
            ));
        }
        Ok(FallbackLab {
            chain,
            dependencies: c.dependencies.clone(),
            rng: SimRng::derive(c.seed, 1),
            calls: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            next_call: 0,
            recent: VecDeque::new(),
            latency_total_us: 0,
            misserved: 0,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.queue.keys().next().map(|(t, _)| *t)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        let Some(entry) = self.queue.first_entry() else {
            return;
        };
        if entry.key().0 > due {
            return;
        }
        let (_, event) = entry.remove_entry();
        let (call, actions) = match event {
            Due::Answer { call, level, error } => {
                let actions = match self.calls.get_mut(&call) {
                    Some(c) => c.on_result(at.now, level, error, &mut self.chain),
                    None => Vec::new(),
                };
                (call, actions)
            }
            Due::Deadline { call } => {
                let actions = match self.calls.get_mut(&call) {
                    Some(c) => c.handle_timeout(at.now, &mut self.chain),
                    None => Vec::new(),
                };
                (call, actions)
            }
        };
        self.apply(at, call, actions);
    }

    fn act(&mut self, _at: Moment, action: &FallbackLabAction) -> Result<()> {
        match action {
            FallbackLabAction::SetDependency { level, dependency } => {
                let levels = self.dependencies.len();
                let slot = self.dependencies.get_mut(*level as usize).ok_or_else(|| {
                    DistlabError::field(
                        "level",
                        format!("must be below the number of levels ({levels}), got {level}"),
                    )
                })?;
                *slot = *dependency;
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<Vec<u64>>) -> View {
        let s = self.chain.stats();
        let mut fields = BTreeMap::new();
        fields.insert("levels".into(), json!(self.chain.levels()));
        fields.insert(
            "static default".into(),
            json!(self.chain.has_static_default()),
        );
        fields.insert("calls".into(), json!(s.calls));
        fields.insert("open calls".into(), json!(self.calls.len()));
        let series = samples.series();
        let levels = self.chain.levels() as usize;
        let served = Panel::Chart {
            title: "calls served by each level over time".into(),
            x_label: "time (ms)".into(),
            series: series.iter().take(levels + 2).cloned().collect(),
        };
        let latency = Panel::Chart {
            title: "mean call latency".into(),
            x_label: "time (ms)".into(),
            series: series.iter().skip(levels + 2).cloned().collect(),
        };
        let recent = Panel::Strip {
            title: "newest calls, by who served them".into(),
            items: self
                .recent
                .iter()
                .map(|(call, served)| {
                    let name = self.served_name(*served);
                    StripItem {
                        label: format!("#{call} {name}"),
                        state: name,
                    }
                })
                .collect(),
        };
        let mut rows: Vec<Vec<Value>> = s
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let d = self.dependencies.get(i).copied().unwrap_or_default();
                let timeout = self
                    .chain
                    .timeout(i as u32)
                    .map_or(0.0, Duration::as_millis_f64);
                vec![
                    json!(self.chain.name(i as u32)),
                    json!(l.asked),
                    json!(l.served),
                    json!(l.failed),
                    json!(l.timed_out),
                    json!(format!(
                        "{:.0} % fail, ~{} ms",
                        d.failure_rate.get() * 100.0,
                        d.latency_ms
                    )),
                    json!(if timeout > 0.0 {
                        format!("{timeout} ms")
                    } else {
                        "none".into()
                    }),
                ]
            })
            .collect();
        rows.push(vec![
            json!("static default"),
            json!(s.static_default),
            json!(s.static_default),
            json!(0),
            json!(0),
            json!(if self.chain.has_static_default() {
                "always answers"
            } else {
                "off"
            }),
            json!("-"),
        ]);
        rows.push(vec![
            json!("failed"),
            json!("-"),
            json!(s.failed),
            json!("-"),
            json!("-"),
            json!("-"),
            json!("-"),
        ]);
        let table = Panel::Table {
            title: "levels, best first".into(),
            columns: [
                "level",
                "asked",
                "served",
                "failed",
                "timed out",
                "dependency",
                "timeout",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        };
        let role = match self.recent.back() {
            Some((_, Served::Level { level: 0 })) | None => "serving the best level",
            Some((_, Served::Failed { .. })) => "failing",
            Some(_) => "degraded",
        };
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "fallback chain".into(),
                role: role.into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![served, recent, table, latency],
            invariants: judge(self.observed()),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<FallbackLabAction> {
        let set = |level: u32, failure: f64, latency: u32| FallbackLabAction::SetDependency {
            level,
            dependency: DependencyConfig {
                failure_rate: Probability::saturating(failure),
                latency_ms: Millis::new("latencyMs", f64::from(latency)).unwrap_or(Millis::of(50)),
                ..DependencyConfig::default()
            },
        };
        vec![
            set(0, 1.0, 80),
            set(1, 0.5, 10),
            set(0, 0.0, 500),
            set(0, 0.1, 80),
        ]
    }
}

impl DrivenLab for FallbackLab {
    fn arrivals(c: &FallbackLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let id = self.next_call;
        self.next_call += 1;
        let (call, ask) = self.chain.start(at.now);
        self.calls.insert(id, call);
        self.apply(at, id, vec![ask]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<FallbackLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn served(l: &Runner<Driven<FallbackLab>>) -> (Vec<u64>, u64, u64) {
        let s = l.model().chain().stats();
        (
            s.levels.iter().map(|l| l.served).collect(),
            s.static_default,
            s.failed,
        )
    }

    #[test]
    fn a_failing_level_shifts_the_calls_down_the_chain_and_back() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(10)).unwrap();
        let (healthy, _, failed) = served(&l);
        assert!(healthy[0] > 3 * healthy[1], "{healthy:?}");
        assert_eq!(failed, 0, "the static default always answers");
        l.act(&json!({"type": "setDependency", "level": 0, "dependency": {"failureRate": 1}}))
            .unwrap();
        l.step(Duration::from_secs(10)).unwrap();
        let (down, statics, _) = served(&l);
        assert!(down[0] - healthy[0] < 20, "{down:?}");
        assert!(down[1] - healthy[1] > 300, "popular serves now: {down:?}");
        // Both down: the static default answers everything.
        l.act(&json!({"type": "setDependency", "level": 1, "dependency": {"failureRate": 1}}))
            .unwrap();
        l.step(Duration::from_secs(5)).unwrap();
        let (_, all_down, failed) = served(&l);
        assert!(all_down - statics > 150, "{all_down}");
        assert_eq!(failed, 0);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        assert_eq!(v.nodes[0].role, "degraded");
    }

    #[test]
    fn a_slow_level_costs_at_most_its_timeout() {
        let mut l = lab(json!({"dependencies": [
            {"failureRate": 0, "latencyMs": 2000},
            {"failureRate": 0, "latencyMs": 10}
        ]}));
        l.step(Duration::from_secs(5)).unwrap();
        let s = l.model().chain().stats().clone();
        assert_eq!(s.levels[0].served, 0);
        assert!(s.levels[0].timed_out > 100);
        // Every call took the 200 ms timeout plus popular's 5..15 ms.
        let mean = l.model().latency_total_us as f64 / s.levels[1].served as f64;
        assert!((205_000.0..=215_000.0).contains(&mean), "{mean}");
    }

    #[test]
    fn both_invariants_can_fail() {
        let good = Observed {
            calls: 10,
            ended: 8,
            open: 2,
            misserved: 0,
        };
        assert!(judge(good).iter().all(|i| i.ok));
        let lost = judge(Observed { ended: 7, ..good });
        assert_eq!(lost.iter().map(|i| i.ok).collect::<Vec<_>>(), [false, true]);
        let out_of_order = judge(Observed {
            misserved: 1,
            ..good
        });
        assert_eq!(
            out_of_order.iter().map(|i| i.ok).collect::<Vec<_>>(),
            [true, false]
        );
        // The lab's own check catches a call served past a level that had not failed.
        let mut chain = FallbackChain::new(&FallbackConfig::default()).unwrap();
        let (call, _) = chain.start(Time::ZERO);
        assert!(!fell_through(&call, 1), "level 0 is still pending");
        assert!(fell_through(&call, 0));
    }

    #[test]
    fn bad_configs_and_actions_name_their_field() {
        let e = Runner::<Driven<FallbackLab>>::from_json(&json!({"dependencies": [{}]}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.dependencies"), "{e}");
        let e = Runner::<Driven<FallbackLab>>::from_json(
            &json!({"chain": {"levels": [{"name": "a"}, {"name": "a"}]}}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("config.chain.levels[1].name"), "{e}");
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "setDependency", "level": 2, "dependency": {}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("level"), "{e}");
    }
}
