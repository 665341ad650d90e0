//! Lab `resilience.circuit-breaker`: a workload calls a dependency through the breaker.
//! Actions break the dependency (failures, slowness) and let it recover; the view shows
//! the breaker's state over time, its window's contents, the trial calls of half-open and
//! every transition, with two invariants checked live: half-open never permits more than
//! its trial calls, and open lasts at least its wait.

use std::collections::{BTreeMap, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis, Probability};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, View};
use crate::resilience::circuit_breaker::{
    Admission, BreakerEvent, BreakerState, CallResult, CircuitBreaker, CircuitBreakerConfig,
    Permit, SlidingWindow, TransitionReason,
};
use crate::resilience::dependency::{DependencyConfig, LabTrace};
use crate::rng::SimRng;
use crate::sim::workload::{ArrivalProcess, within};
use crate::time::{Duration, Time};

/// Calls a burst action may make at once.
pub const MAX_BURST: u32 = 1_000;
/// Transitions and outcomes the view lists.
const RECENT: usize = 40;

fn lab_breaker() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        sliding_window_size: Count::of(20),
        minimum_number_of_calls: Count::of(10),
        permitted_number_of_calls_in_half_open_state: Count::of(5),
        wait_duration_in_open_state_ms: Millis::of(3_000),
        slow_call_duration_threshold_ms: Millis::of(500),
        slow_call_rate_threshold: 50.0,
        ..CircuitBreakerConfig::default()
    }
}

local_lab_config! {
    /// Configuration of the circuit-breaker lab. JSON: `{"breaker": {"slidingWindowSize":
    /// 20, "minimumNumberOfCalls": 10}, "arrivals": {"type": "poisson", "ratePerSec": 20},
    /// "dependency": {"failureRate": 0.05, "latencyMs": 50}}`.
    pub struct BreakerLabConfig {
        /// The breaker (Resilience4j's options; the lab's defaults are small enough to
        /// watch: a window of 20 calls, 10 to judge, 3 s open, 5 trial calls, calls
        /// over 500 ms slow).
        pub breaker: CircuitBreakerConfig = lab_breaker(),
        /// When calls arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 20.0 },
        /// The dependency's health at the start.
        pub dependency: DependencyConfig = DependencyConfig::default(),
    }
}

/// What can be done. JSON: `{"type": "setDependency", "dependency": {"failureRate": 1}}`,
/// `{"type": "burst", "count": 20}`, `{"type": "setArrivals", "arrivals": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum BreakerLabAction {
    /// The dependency's health from now on (an outage: `failureRate` 1; slowness:
    /// `slowRate`).
    SetDependency { dependency: DependencyConfig },
    /// `count` calls now.
    Burst { count: Count<1, { MAX_BURST }> },
}

/// A call in flight: its permit and how it will end.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    permit: Permit,
    result: CallResult,
}

/// The circuit-breaker lab.
#[derive(Debug, Clone)]
pub struct BreakerLab {
    breaker: CircuitBreaker,
    rng: SimRng,
    dependency: DependencyConfig,
    in_flight: BTreeMap<(Time, u64), InFlight>,
    seq: u64,
    /// Newest outcomes, as the strip shows them.
    outcomes: VecDeque<(u64, &'static str)>,
    transitions: VecDeque<BreakerEvent>,
    /// Trial calls permitted per half-open epoch (the newest epoch only matters).
    trials: (u64, u32),
    /// The first time open ended before its wait: (opened, left).
    early_exit: Option<(Time, Time)>,
    opened_at: Option<Time>,
    trace: LabTrace,
}

impl BreakerLab {
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    fn call(&mut self, at: Moment) {
        match self.breaker.try_acquire(at.now) {
            Admission::Permitted { permit } => {
                if self.breaker.state() == BreakerState::HalfOpen {
                    if self.trials.0 != permit.epoch {
                        self.trials = (permit.epoch, 0);
                    }
                    self.trials.1 += 1;
                }
                let outcome = self.dependency.call(&mut self.rng);
                let result = match outcome.error {
                    Some(kind) => CallResult::Failure { kind },
                    None => CallResult::Success,
                };
                let done = at.now.saturating_add(outcome.latency);
                self.in_flight
                    .insert((done, self.seq), InFlight { permit, result });
                self.seq += 1;
                self.trace
                    .push(at.step, at.now, "permitted", &[("permit", permit.id)]);
            }
            Admission::Rejected { .. } => {
                self.remember(u64::MAX, "rejected");
                self.trace.push(at.step, at.now, "rejected", &[]);
            }
        }
        self.collect_transitions();
    }

    fn remember(&mut self, id: u64, state: &'static str) {
        if self.outcomes.len() >= RECENT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((id, state));
    }

    fn collect_transitions(&mut self) {
        for e in self.breaker.take_events() {
            if e.to == BreakerState::Open {
                self.opened_at = Some(e.at);
            }
            if e.from == BreakerState::Open
                && let Some(opened) = self.opened_at
                && e.at
                    <= opened.saturating_add(
                        self.breaker
                            .config()
                            .wait_duration_in_open_state_ms
                            .duration(),
                    )
                && self.early_exit.is_none()
            {
                self.early_exit = Some((opened, e.at));
            }
            if self.transitions.len() >= RECENT {
                self.transitions.pop_front();
            }
            self.transitions.push_back(e);
        }
    }

    fn window_strip(&self) -> Panel {
        let items = match self.breaker.window() {
            Some(SlidingWindow::Count { outcomes, .. }) => outcomes
                .iter()
                .map(|o| StripItem {
                    label: match (o.failure, o.slow) {
                        (true, true) => "slow failure",
                        (true, false) => "failure",
                        (false, true) => "slow",
                        (false, false) => "ok",
                    }
                    .into(),
                    state: if o.failure {
                        "rejected"
                    } else if o.slow {
                        "pending"
                    } else {
                        "ok"
                    }
                    .into(),
                })
                .collect(),
            Some(SlidingWindow::Time {
                buckets, newest, ..
            }) => {
                let len = buckets.len() as u64;
                (0..len)
                    .map(|k| {
                        let second = (newest + 1 + k) % len;
                        let b = buckets.get(second as usize).copied().unwrap_or_default();
                        StripItem {
                            label: format!(
                                "{} calls, {} failed, {} slow",
                                b.calls, b.failures, b.slow
                            ),
                            state: if b.calls == 0 {
                                "empty"
                            } else if b.failures * 2 >= b.calls {
                                "rejected"
                            } else {
                                "ok"
                            }
                            .into(),
                        }
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Panel::Strip {
            title: format!(
                "sliding window ({}; empty unless closed)",
                match self.breaker.config().sliding_window_type {
                    crate::resilience::circuit_breaker::SlidingWindowType::CountBased =>
                        "the last calls, oldest first",
                    crate::resilience::circuit_breaker::SlidingWindowType::TimeBased =>
                        "one bucket per second, oldest first",
                }
            ),
            items,
        }
    }

    fn transitions_table(&self) -> Panel {
        let rows = self
            .transitions
            .iter()
            .rev()
            .map(|e| {
                let why = match e.reason {
                    TransitionReason::ThresholdsExceeded {
                        failure_rate,
                        slow_call_rate,
                    } => format!("rates reached a threshold: {failure_rate:.0} % failed, {slow_call_rate:.0} % slow"),
                    TransitionReason::TrialsPassed {
                        failure_rate,
                        slow_call_rate,
                    } => format!("trials passed: {failure_rate:.0} % failed, {slow_call_rate:.0} % slow"),
                    TransitionReason::WaitElapsed => "the wait in open ended".into(),
                    TransitionReason::HalfOpenTimedOut => "half-open lasted its maximum".into(),
                };
                vec![
                    json!(e.at.as_millis_f64()),
                    json!(e.from.name()),
                    json!(e.to.name()),
                    json!(why),
                ]
            })
            .collect();
        Panel::Table {
            title: "transitions, newest first".into(),
            columns: vec!["ms".into(), "from".into(), "to".into(), "why".into()],
            rows,
        }
    }
}

impl Sampled for BreakerLab {
    /// Permitted and rejected so far.
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("state", "0 closed, 1 half-open, 2 open"),
            ("failure rate", "%"),
            ("slow-call rate", "%"),
            ("permitted", "per interval"),
            ("rejected", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (u64, u64) {
        let s = self.breaker.stats();
        (s.permitted, s.not_permitted)
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(u64, u64)) -> Vec<f64> {
        let c = self.breaker.counts();
        let (p, r) = self.totals();
        vec![
            match self.breaker.state() {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open => 2.0,
            },
            c.failure_rate(),
            c.slow_call_rate(),
            (p - since.0) as f64,
            (r - since.1) as f64,
        ]
    }
}

impl LocalLab for BreakerLab {
    const ID: &'static str = "resilience.circuit-breaker";
    type Config = BreakerLabConfig;
    type Action = BreakerLabAction;

    fn new(c: &BreakerLabConfig) -> Result<Self> {
        let breaker = CircuitBreaker::new(c.breaker.clone()).map_err(|e| within("breaker", e))?;
        Ok(BreakerLab {
            breaker,
            rng: SimRng::derive(c.seed, 1),
            dependency: c.dependency,
            in_flight: BTreeMap::new(),
            seq: 0,
            outcomes: VecDeque::new(),
            transitions: VecDeque::new(),
            trials: (u64::MAX, 0),
            early_exit: None,
            opened_at: None,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        let done = self.in_flight.keys().next().map(|(t, _)| *t);
        [done, self.breaker.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if let Some(entry) = self.in_flight.first_entry()
            && entry.key().0 <= due
        {
            let call = entry.remove();
            // Cannot fail: the permit came from this breaker and is reported once.
            let _ = self.breaker.on_result(at.now, call.permit, call.result);
            let failed = matches!(call.result, CallResult::Failure { .. });
            let slow = at.now.saturating_since(call.permit.acquired_at)
                > self
                    .breaker
                    .config()
                    .slow_call_duration_threshold_ms
                    .duration();
            let state = match (failed, slow) {
                (true, _) => "failed",
                (false, true) => "slow",
                (false, false) => "ok",
            };
            self.remember(call.permit.id, state);
            self.trace.push(
                at.step,
                at.now,
                state,
                &[("permit", call.permit.id), ("epoch", call.permit.epoch)],
            );
            self.collect_transitions();
        } else if self.breaker.poll_timeout().is_some_and(|t| t <= due) {
            self.breaker.handle_timeout(at.now);
            self.trace.push(at.step, at.now, "timer", &[]);
            self.collect_transitions();
        }
    }

    fn act(&mut self, at: Moment, action: &BreakerLabAction) -> Result<()> {
        match action {
            BreakerLabAction::SetDependency { dependency } => self.dependency = *dependency,
            BreakerLabAction::Burst { count } => {
                for _ in 0..count.get() {
                    self.call(at);
                }
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<(u64, u64)>) -> View {
        let b = &self.breaker;
        let c = b.counts();
        let s = b.stats();
        let mut fields = BTreeMap::new();
        fields.insert("state".into(), json!(b.state().name()));
        fields.insert("since ms".into(), json!(b.state_since().as_millis_f64()));
        fields.insert("epoch".into(), json!(b.epoch()));
        fields.insert("calls judged".into(), json!(c.calls));
        fields.insert("failure rate %".into(), json!(c.failure_rate()));
        fields.insert("slow-call rate %".into(), json!(c.slow_call_rate()));
        fields.insert("minimum calls".into(), json!(b.minimum_calls()));
        if let Some(until) = b.open_until() {
            fields.insert("probes after ms".into(), json!(until.as_millis_f64()));
        }
        if let Some((left, out)) = b.half_open_calls() {
            fields.insert("trials left".into(), json!(left));
            fields.insert("trials out".into(), json!(out));
        }
        fields.insert("stats".into(), json!(s));
        let mut dep = BTreeMap::new();
        dep.insert("health".into(), json!(self.dependency));
        dep.insert("calls in flight".into(), json!(self.in_flight.len()));
        let nodes = vec![
            NodeView {
                id: 0,
                label: "breaker".into(),
                role: b.state().name().into(),
                status: "up".into(),
                fields,
                group: None,
            },
            NodeView {
                id: 1,
                label: "dependency".into(),
                role: "dependency".into(),
                status: if self.dependency.failure_rate.get() >= 1.0 {
                    "crashed"
                } else {
                    "up"
                }
                .into(),
                fields: dep,
                group: None,
            },
        ];
        let series = samples.series();
        let state_chart = Panel::Chart {
            title: "state and rates over time".into(),
            x_label: "time (ms)".into(),
            series: series.iter().take(3).cloned().collect(),
        };
        let recent = Panel::Strip {
            title: "newest calls (rejected: refused by the breaker)".into(),
            items: self
                .outcomes
                .iter()
                .map(|(id, state)| StripItem {
                    label: if *id == u64::MAX {
                        "refused".into()
                    } else {
                        format!("#{id}")
                    },
                    state: match *state {
                        "failed" | "rejected" => "rejected",
                        "slow" => "pending",
                        _ => "ok",
                    }
                    .into(),
                })
                .collect(),
        };
        let permitted = b
            .config()
            .permitted_number_of_calls_in_half_open_state
            .get();
        let trials = if b.state() == BreakerState::HalfOpen && self.trials.0 == b.epoch() {
            self.trials.1
        } else {
            0
        };
        let half_open = if trials <= permitted {
            InvariantStatus::holds(
                "half-open permits at most its trial calls",
                format!("{trials} of {permitted} trial calls permitted"),
            )
        } else {
            InvariantStatus::violated(
                "half-open permits at most its trial calls",
                format!("{trials} trial calls permitted, {permitted} allowed"),
                vec![0],
            )
        };
        let wait = b.config().wait_duration_in_open_state_ms.get();
        let open = match self.early_exit {
            None => InvariantStatus::holds("open lasts its wait", format!("{wait} ms at least")),
            Some((opened, left)) => InvariantStatus::violated(
                "open lasts its wait",
                format!(
                    "opened at {} ms, left at {} ms",
                    opened.as_millis_f64(),
                    left.as_millis_f64()
                ),
                vec![0],
            ),
        };
        View {
            nodes,
            panels: vec![
                state_chart,
                self.window_strip(),
                recent,
                self.transitions_table(),
            ],
            invariants: vec![half_open, open],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<BreakerLabAction> {
        let dep = |failure: f64, slow: f64| BreakerLabAction::SetDependency {
            dependency: DependencyConfig {
                failure_rate: Probability::saturating(failure),
                slow_rate: Probability::saturating(slow),
                ..DependencyConfig::default()
            },
        };
        vec![
            dep(1.0, 0.0),
            dep(0.05, 0.0),
            dep(0.0, 0.8),
            dep(0.3, 0.0),
            BreakerLabAction::Burst {
                count: Count::of(20),
            },
        ]
    }
}

impl DrivenLab for BreakerLab {
    fn arrivals(c: &BreakerLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        self.call(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<BreakerLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn act(l: &mut Runner<Driven<BreakerLab>>, a: Value) {
        l.act(&a).unwrap();
    }

    #[test]
    fn an_outage_opens_the_breaker_and_recovery_closes_it() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(5)).unwrap();
        assert_eq!(l.model().breaker().state(), BreakerState::Closed);
        act(
            &mut l,
            json!({"type": "setDependency", "dependency": {"failureRate": 1}}),
        );
        l.step(Duration::from_secs(2)).unwrap();
        assert_eq!(l.model().breaker().state(), BreakerState::Open);
        // Still failing when it probes: back to open.
        l.step(Duration::from_secs(4)).unwrap();
        let s = l.model().breaker().stats();
        assert!(s.not_permitted > 50, "{s:?}");
        act(
            &mut l,
            json!({"type": "setDependency", "dependency": {"failureRate": 0}}),
        );
        l.step(Duration::from_secs(5)).unwrap();
        assert_eq!(l.model().breaker().state(), BreakerState::Closed);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let Panel::Table { rows, .. } = &v.panels[3] else {
            panic!()
        };
        let tos: Vec<&str> = rows.iter().rev().map(|r| r[2].as_str().unwrap()).collect();
        assert!(
            tos.starts_with(&["open", "halfOpen", "open", "halfOpen"])
                || tos.starts_with(&["open", "halfOpen", "closed"]),
            "{tos:?}"
        );
        assert_eq!(tos.last(), Some(&"closed"));
    }

    #[test]
    fn slowness_alone_opens_it() {
        let mut l = lab(json!({"dependency": {"failureRate": 0, "slowRate": 0.9}}));
        l.step(Duration::from_secs(10)).unwrap();
        let s = l.model().breaker().stats();
        assert!(
            s.transitions >= 1 && s.slow_calls > 0 && s.failures == 0,
            "{s:?}"
        );
    }

    #[test]
    fn both_invariants_can_fail() {
        use crate::lab::LabModel;
        let mut m = Driven::<BreakerLab>::new(&BreakerLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(500)) {}
        m.early_exit = Some((Time::ZERO, Time(1)));
        let v = m.view();
        assert!(
            v.invariants[0].ok && !v.invariants[1].ok,
            "{:?}",
            v.invariants
        );
        // A half-open breaker that (by hand) permitted more trials than allowed.
        let mut config = BreakerLabConfig::default();
        config.breaker.sliding_window_size = Count::of(2);
        config.breaker.minimum_number_of_calls = Count::of(2);
        config.breaker.wait_duration_in_open_state_ms = Millis::of(1);
        config.dependency.failure_rate = Probability::of(1.0);
        let mut m = Driven::<BreakerLab>::new(&config).unwrap();
        while m.breaker.state() != BreakerState::HalfOpen {
            assert!(m.step_until(Time::from_millis(60_000)));
        }
        m.trials = (m.breaker.epoch(), 6);
        let v = m.view();
        assert!(!v.invariants[0].ok, "{:?}", v.invariants);
    }

    #[test]
    fn bad_configs_and_actions_name_their_field() {
        let e = Runner::<Driven<BreakerLab>>::from_json(
            &json!({"breaker": {"failureRateThreshold": 0}}),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("breaker.failureRateThreshold"), "{e}");
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "burst", "count": 0}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("count"), "{e}");
    }
}
