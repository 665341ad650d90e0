//! Lab `resilience.policy`: calls go through a resilience pipeline whose strategies and
//! order the config chooses (Polly v8's `ResiliencePipeline`: the first listed is the
//! outermost) to a dependency whose failure rate and latency an action changes; fallback
//! sources answer after `fallbackLatencyMs`. The view shows the pipeline outermost
//! first with each strategy's state, and charts the attempts each call made on the
//! dependency, the outcomes over time (succeeded, fell back, failed at the dependency,
//! failed by a strategy: a timeout, an open breaker, a full bulkhead) and the breaker's
//! state; checked live that every call is accounted for and that none made more
//! attempts than the pipeline allows (the product of its retries' and hedges' maximum
//! attempts). Swap `retry` and `circuitBreaker` in the config under one seed to see
//! order matter.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis, Probability};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::resilience::ErrorKind;
use crate::resilience::circuit_breaker::{BreakerState, CircuitBreakerConfig};
use crate::resilience::dependency::{DependencyConfig, LabTrace, MAX_LATENCY_MS};
use crate::resilience::fallback::{FallbackConfig, FallbackLevel};
use crate::resilience::policy::{
    Outcome, Pipeline, PolicyAction, PolicyConfig, Strategy, StrategyConfig, Target,
};
use crate::resilience::retry::{BackoffConfig, Jitter, RetryConfig};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// The lab's pipeline: fallback, retry, circuit breaker, per-attempt timeout (Polly's
/// recommended order), sized so a lab run shows each at work.
fn lab_policy() -> PolicyConfig {
    PolicyConfig {
        strategies: vec![
            StrategyConfig::Fallback {
                config: FallbackConfig {
                    levels: vec![
                        FallbackLevel::new("live", Millis::of(0)),
                        FallbackLevel::new("cache", Millis::of(0)),
                    ],
                    ..FallbackConfig::default()
                },
            },
            StrategyConfig::Retry {
                policy: RetryConfig {
                    max_attempts: Count::of(3),
                    backoff: BackoffConfig {
                        initial_backoff_ms: Millis::of(50),
                        max_backoff_ms: Millis::of(500),
                        backoff_multiplier: 2.0,
                        jitter: Jitter::Full,
                    },
                    ..RetryConfig::default()
                },
                budget: None,
            },
            StrategyConfig::CircuitBreaker {
                config: CircuitBreakerConfig {
                    sliding_window_size: Count::of(20),
                    minimum_number_of_calls: Count::of(10),
                    wait_duration_in_open_state_ms: Millis::of(2_000),
                    permitted_number_of_calls_in_half_open_state: Count::of(3),
                    ..CircuitBreakerConfig::default()
                },
            },
            StrategyConfig::Timeout {
                timeout_ms: Millis::of(200),
            },
        ],
    }
}

local_lab_config! {
    /// Configuration of the policy lab. JSON: `{"policy": {"strategies": [{"type":
    /// "retry"}, {"type": "circuitBreaker"}, {"type": "timeout", "timeoutMs": 200}]},
    /// "dependency": {"failureRate": 0.05, "latencyMs": 50}, "fallbackLatencyMs": 5,
    /// "arrivals": {"type": "poisson", "ratePerSec": 50}}`.
    pub struct PolicyLabConfig {
        /// The strategies, outermost first.
        pub policy: PolicyConfig = lab_policy(),
        pub dependency: DependencyConfig = DependencyConfig::default(),
        /// How long a fallback source takes to answer (it always does).
        pub fallback_latency_ms: Millis<0, { MAX_LATENCY_MS }> = Millis::of(5),
        /// When calls arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 50.0 },
    }
}

/// What can be done. JSON: `{"type": "setDependency", "dependency": {"failureRate":
/// 1}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum PolicyLabAction {
    /// The dependency's health from now on.
    SetDependency { dependency: DependencyConfig },
}

/// Counters the charts difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    started: u64,
    done: u64,
    succeeded: u64,
    fell_back: u64,
    failed_at_dependency: u64,
    failed_by_strategy: u64,
    /// Dependency attempts of the calls done.
    attempts_of_done: u64,
    /// Attempts sent to the dependency.
    sent: u64,
    /// Calls that made more attempts than the pipeline allows (never, if correct).
    over_bound: u64,
}

/// The policy lab.
#[derive(Debug, Clone)]
pub struct PolicyLab {
    pipeline: Pipeline,
    dependency: DependencyConfig,
    fallback_latency: Duration,
    rng: SimRng,
    /// Answers on their way: (when, seq) → (attempt, error).
    answers: BTreeMap<(Time, u64), (u64, Option<ErrorKind>)>,
    seq: u64,
    counts: Counts,
    /// Failures by the strategy that raised them, by layer.
    failed_by: Vec<u64>,
    bound: u64,
    trace: LabTrace,
}

impl PolicyLab {
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn apply(&mut self, at: Moment, actions: Vec<PolicyAction>) {
        for action in actions {
            match action {
                PolicyAction::Send {
                    attempt,
                    call,
                    target,
                } => {
                    let (latency, error, kind) = match target {
                        Target::Dependency => {
                            self.counts.sent += 1;
                            let o = self.dependency.call(&mut self.rng);
                            (o.latency, o.error, "send")
                        }
                        Target::Fallback { .. } => (self.fallback_latency, None, "fallback"),
                    };
                    self.answers
                        .insert((at.now.saturating_add(latency), self.seq), (attempt, error));
                    self.seq += 1;
                    self.trace.push(
                        at.step,
                        at.now,
                        kind,
                        &[("call", call), ("attempt", attempt)],
                    );
                }
                PolicyAction::Cancel { attempt } => {
                    self.trace
                        .push(at.step, at.now, "cancel", &[("attempt", attempt)]);
                }
                PolicyAction::Done {
                    call,
                    outcome,
                    attempts,
                    latency,
                } => {
                    let c = &mut self.counts;
                    c.done += 1;
                    c.attempts_of_done += u64::from(attempts);
                    if u64::from(attempts) > self.bound {
                        c.over_bound += 1;
                    }
                    let code = match outcome {
                        Outcome::Succeeded => {
                            c.succeeded += 1;
                            0
                        }
                        Outcome::FellBack { .. } => {
                            c.fell_back += 1;
                            1
                        }
                        Outcome::Failed { by: None, .. } => {
                            c.failed_at_dependency += 1;
                            2
                        }
                        Outcome::Failed {
                            by: Some(layer), ..
                        } => {
                            c.failed_by_strategy += 1;
                            if let Some(n) = self.failed_by.get_mut(layer as usize) {
                                *n += 1;
                            }
                            3
                        }
                    };
                    self.trace.push(
                        at.step,
                        at.now,
                        "done",
                        &[
                            ("call", call),
                            ("outcome", code),
                            ("attempts", attempts.into()),
                            ("latencyUs", latency.0),
                        ],
                    );
                }
            }
        }
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        self.pipeline.strategies().iter().find_map(|s| match s {
            Strategy::CircuitBreaker(b) => Some(b.state()),
            _ => None,
        })
    }
}

/// What the invariants look at.
#[derive(Debug, Clone, Copy)]
struct Observed {
    started: u64,
    done: u64,
    open: u64,
    over_bound: u64,
    bound: u64,
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
            o.started == o.done + o.open,
            "every call is accounted for",
            format!("{} started = {} done + {} open", o.started, o.done, o.open),
        ),
        check(
            o.over_bound == 0,
            "no call makes more attempts than the pipeline allows",
            format!(
                "{} calls over the bound of {} attempts",
                o.over_bound, o.bound
            ),
        ),
    ]
}

fn state_code(s: Option<BreakerState>) -> f64 {
    match s {
        None | Some(BreakerState::Closed) => 0.0,
        Some(BreakerState::HalfOpen) => 1.0,
        Some(BreakerState::Open) => 2.0,
    }
}

impl Sampled for PolicyLab {
    /// Calls done, succeeded, fell back, failed at the dependency, failed by a strategy,
    /// their attempts, attempts sent.
    type Totals = [u64; 7];

    fn series(&self) -> Vec<(String, String)> {
        [
            ("attempts per call", "attempts"),
            ("attempts on the dependency", "per interval"),
            ("succeeded", "per interval"),
            ("fell back", "per interval"),
            ("failed at the dependency", "per interval"),
            ("failed by a strategy", "per interval"),
            ("breaker (0 closed, 1 half-open, 2 open)", "state"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec()
    }

    fn totals(&self) -> [u64; 7] {
        let c = self.counts;
        [
            c.done,
            c.succeeded,
            c.fell_back,
            c.failed_at_dependency,
            c.failed_by_strategy,
            c.attempts_of_done,
            c.sent,
        ]
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &[u64; 7]) -> Vec<f64> {
        let now = self.totals();
        let d: Vec<u64> = now
            .iter()
            .zip(since)
            .map(|(n, s)| n.saturating_sub(*s))
            .collect();
        let get = |i: usize| d.get(i).copied().unwrap_or(0);
        let per_call = if get(0) == 0 {
            0.0
        } else {
            get(5) as f64 / get(0) as f64
        };
        vec![
            per_call,
            get(6) as f64,
            get(1) as f64,
            get(2) as f64,
            get(3) as f64,
            get(4) as f64,
            state_code(self.breaker_state()),
        ]
    }
}

impl LocalLab for PolicyLab {
    const ID: &'static str = "resilience.policy";
    type Config = PolicyLabConfig;
    type Action = PolicyLabAction;

    fn new(c: &PolicyLabConfig) -> Result<Self> {
        let pipeline =
            Pipeline::new(&c.policy).map_err(|e| crate::sim::workload::within("policy", e))?;
        let bound = pipeline.max_attempts_per_call();
        Ok(PolicyLab {
            failed_by: vec![0; pipeline.strategies().len()],
            pipeline,
            dependency: c.dependency,
            fallback_latency: c.fallback_latency_ms.duration(),
            rng: SimRng::derive(c.seed, 1),
            answers: BTreeMap::new(),
            seq: 0,
            counts: Counts::default(),
            bound,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        let answer = self.answers.keys().next().map(|(t, _)| *t);
        [answer, self.pipeline.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        let answer_due = self
            .answers
            .keys()
            .next()
            .is_some_and(|(t, _)| *t <= at.now);
        if answer_due {
            let Some((_, (attempt, error))) = self.answers.pop_first() else {
                return;
            };
            // Cannot fail: the attempt was sent by this pipeline.
            let actions = self
                .pipeline
                .on_result(at.now, attempt, error, &mut self.rng)
                .unwrap_or_default();
            self.apply(at, actions);
        } else {
            let actions = self.pipeline.handle_timeout(at.now, &mut self.rng);
            self.apply(at, actions);
        }
    }

    fn act(&mut self, _at: Moment, action: &PolicyLabAction) -> Result<()> {
        match action {
            PolicyLabAction::SetDependency { dependency } => self.dependency = *dependency,
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<[u64; 7]>) -> View {
        let series = samples.series();
        let mut nodes = Vec::new();
        for (i, s) in self.pipeline.strategies().iter().enumerate() {
            let mut fields = BTreeMap::new();
            let failed = self.failed_by.get(i).copied().unwrap_or(0);
            fields.insert("calls failed here".into(), json!(failed));
            let (name, role) = match s {
                Strategy::Timeout(d) => {
                    fields.insert("timeout ms".into(), json!(d.0 as f64 / 1_000.0));
                    ("timeout", "timing".to_string())
                }
                Strategy::Retry { policy, budget } => {
                    fields.insert("max attempts".into(), json!(policy.max_attempts()));
                    if let Some(b) = budget {
                        fields.insert("budget tokens".into(), json!(b.tokens()));
                    }
                    ("retry", "retrying".to_string())
                }
                Strategy::CircuitBreaker(b) => {
                    let c = b.counts();
                    fields.insert("failure rate %".into(), json!(c.failure_rate()));
                    fields.insert("calls refused".into(), json!(b.stats().not_permitted));
                    ("circuit breaker", b.state().name().to_string())
                }
                Strategy::Bulkhead(b) => {
                    fields.insert("in use".into(), json!(b.in_use()));
                    fields.insert("queue".into(), json!(b.queue_len()));
                    ("bulkhead", format!("{}/{}", b.in_use(), b.limit()))
                }
                Strategy::Hedging(h) => {
                    fields.insert("hedges".into(), json!(h.stats().hedges));
                    ("hedging", "hedging".to_string())
                }
                Strategy::Fallback(f) => {
                    let st = f.stats();
                    fields.insert("static default".into(), json!(st.static_default));
                    ("fallback", "falling back".to_string())
                }
            };
            nodes.push(NodeView {
                id: i as u32,
                label: format!("{i}: {name}"),
                role,
                status: "up".into(),
                fields,
                group: None,
            });
        }
        let mut dep = BTreeMap::new();
        dep.insert(
            "failure rate".into(),
            json!(self.dependency.failure_rate.get()),
        );
        dep.insert("latency ms".into(), json!(self.dependency.latency_ms.get()));
        dep.insert(
            "in flight".into(),
            json!(self.pipeline.attempts_in_flight()),
        );
        nodes.push(NodeView {
            id: nodes.len() as u32,
            label: "dependency".into(),
            role: "serving".into(),
            status: if self.dependency.failure_rate.get() >= 1.0 {
                "down".into()
            } else {
                "up".into()
            },
            fields: dep,
            group: None,
        });
        let c = self.counts;
        let panels = vec![
            Panel::Chart {
                title: "attempts on the dependency: per call, and in all".into(),
                x_label: "time (ms)".into(),
                series: series.iter().take(2).cloned().collect(),
            },
            Panel::Chart {
                title: "outcomes".into(),
                x_label: "time (ms)".into(),
                series: series.iter().skip(2).take(4).cloned().collect(),
            },
            Panel::Chart {
                title: "circuit breaker".into(),
                x_label: "time (ms)".into(),
                series: series.iter().skip(6).cloned().collect(),
            },
            Panel::Table {
                title: "calls".into(),
                columns: [
                    "started",
                    "succeeded",
                    "fell back",
                    "failed at the dependency",
                    "failed by a strategy",
                    "attempts per call",
                ]
                .map(String::from)
                .to_vec(),
                rows: vec![vec![
                    json!(c.started),
                    json!(c.succeeded),
                    json!(c.fell_back),
                    json!(c.failed_at_dependency),
                    json!(c.failed_by_strategy),
                    json!(if c.done == 0 {
                        0.0
                    } else {
                        c.attempts_of_done as f64 / c.done as f64
                    }),
                ]],
            },
        ];
        View {
            nodes,
            panels,
            invariants: judge(Observed {
                started: c.started,
                done: c.done,
                open: self.pipeline.open_calls() as u64,
                over_bound: c.over_bound,
                bound: self.bound,
            }),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<PolicyLabAction> {
        vec![
            PolicyLabAction::SetDependency {
                dependency: DependencyConfig {
                    failure_rate: Probability::of(1.0),
                    ..DependencyConfig::default()
                },
            },
            PolicyLabAction::SetDependency {
                dependency: DependencyConfig::default(),
            },
        ]
    }
}

impl DrivenLab for PolicyLab {
    fn arrivals(c: &PolicyLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        self.counts.started += 1;
        let (call, actions) = self.pipeline.start(at.now, &mut self.rng);
        self.trace.push(at.step, at.now, "call", &[("call", call)]);
        self.apply(at, actions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<PolicyLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn strategies(order: &[&str]) -> Value {
        let s: Vec<Value> = order
            .iter()
            .map(|t| match *t {
                "retry" => json!({"type": "retry", "policy": {"maxAttempts": 3,
                    "backoff": {"initialBackoffMs": 20, "maxBackoffMs": 20,
                    "backoffMultiplier": 1, "jitter": "none"}}}),
                "circuitBreaker" => json!({"type": "circuitBreaker", "config": {
                    "slidingWindowSize": 20, "minimumNumberOfCalls": 10,
                    "waitDurationInOpenStateMs": 1000,
                    "permittedNumberOfCallsInHalfOpenState": 3}}),
                other => json!({ "type": other }),
            })
            .collect();
        json!({ "strategies": s })
    }

    /// Two healthy seconds, then four of outage; the attempts sent in the outage.
    fn run_outage(order: &[&str]) -> (Runner<Driven<PolicyLab>>, u64) {
        let mut l = lab(json!({"policy": strategies(order),
            "dependency": {"failureRate": 0.0, "latencyMs": 20}}));
        l.step(Duration::from_secs(2)).unwrap();
        let before = l.model().counts.sent;
        l.act(
            &json!({"type": "setDependency", "dependency": {"failureRate": 1.0,
            "latencyMs": 20}}),
        )
        .unwrap();
        l.step(Duration::from_secs(4)).unwrap();
        let sent = l.model().counts.sent - before;
        (l, sent)
    }

    #[test]
    fn in_an_outage_retry_outside_the_breaker_sends_fewer_attempts() {
        let (outside, o) = run_outage(&["retry", "circuitBreaker"]);
        let (inside, i) = run_outage(&["circuitBreaker", "retry"]);
        assert!(o * 2 < i, "attempts in the outage: outside {o}, inside {i}");
        for l in [&outside, &inside] {
            let v = l.view();
            assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
            assert!(
                l.model().counts.failed_by_strategy > 0,
                "the breaker refused calls"
            );
        }
        // The view names the strategies outermost first.
        assert_eq!(outside.view().nodes[0].label, "0: retry");
        assert_eq!(inside.view().nodes[0].label, "0: circuit breaker");
    }

    #[test]
    fn the_default_lab_falls_back_when_the_dependency_is_down() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(2)).unwrap();
        assert!(l.model().counts.succeeded > 50);
        l.act(&json!({"type": "setDependency", "dependency": {"failureRate": 1.0}}))
            .unwrap();
        let before = l.model().counts;
        l.step(Duration::from_secs(4)).unwrap();
        let after = l.model().counts;
        assert!(after.fell_back - before.fell_back > 100, "{after:?}");
        assert_eq!(after.failed_at_dependency + after.failed_by_strategy, 0);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn both_invariants_can_fail() {
        let good = Observed {
            started: 10,
            done: 8,
            open: 2,
            over_bound: 0,
            bound: 3,
        };
        let oks = |o| judge(o).iter().map(|i| i.ok).collect::<Vec<_>>();
        assert_eq!(oks(good), [true, true]);
        assert_eq!(oks(Observed { done: 7, ..good }), [false, true]);
        assert_eq!(
            oks(Observed {
                over_bound: 1,
                ..good
            }),
            [true, false]
        );
    }

    #[test]
    fn bad_configs_name_their_field() {
        let e = Runner::<Driven<PolicyLab>>::from_json(&json!({"policy": {"strategies": []}}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.policy.strategies"), "{e}");
        let e = Runner::<Driven<PolicyLab>>::from_json(&json!({"policy": {"strategies": [
            {"type": "hedging", "config": {"maxAttempts": 9}}]}}))
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("config.policy.strategies[0].config.maxAttempts"),
            "{e}"
        );
    }
}
