//! Lab `resilience.retry`: the same calls, against the same struggling dependency, retried
//! eight ways side by side — each of Brooker's four jitters, without and with gRPC's retry
//! budget. The dependency is down for an outage, then recovers, but it can serve only so
//! many attempts per second: past that it sheds them (`overloaded`), and retries that
//! keep coming keep it overloaded. The view draws the delays each jitter gives one call
//! (one seed, the same draw for every kind), the attempts per interval each lane puts on
//! the dependency, and per lane: amplification (attempts per call), successes, calls
//! given up and retries throttled.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::resilience::ErrorKind;
use crate::resilience::dependency::{LabTrace, LoadMeter};
use crate::resilience::retry::{
    BackoffConfig, GiveUpReason, Jitter, RetryBudget, RetryBudgetConfig, RetryConfig,
    RetryDecision, RetryPolicy, RetryState,
};
use crate::rng::SimRng;
use crate::sim::workload::{ArrivalProcess, within};
use crate::time::{Duration, Time};

/// The most attempts per second a dependency may be given.
pub const MAX_CAPACITY: u32 = 1_000_000;
/// The longest outage, in ms: an hour.
pub const MAX_OUTAGE_MS: u32 = 3_600_000;
/// Retries the delay chart draws per jitter.
const DRAWN_RETRIES: u32 = 12;

fn lab_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: Count::of(5),
        backoff: BackoffConfig {
            initial_backoff_ms: Millis::of(100),
            max_backoff_ms: Millis::of(5_000),
            ..BackoffConfig::default()
        },
        ..RetryConfig::default()
    }
}

local_lab_config! {
    /// Configuration of the retry lab. JSON: `{"retry": {"maxAttempts": 5, "backoff":
    /// {"initialBackoffMs": 100, "maxBackoffMs": 5000}}, "budget": {"maxTokens": 10,
    /// "tokenRatio": 0.1}, "arrivals": {"type": "poisson", "ratePerSec": 50},
    /// "capacityPerSec": 80, "outageMs": 3000, "latencyMs": 20}`. The backoff's `jitter`
    /// is ignored: every lane uses its own.
    pub struct RetryLabConfig {
        pub retry: RetryConfig = lab_retry(),
        /// The budget of the four budgeted lanes (one per lane).
        pub budget: RetryBudgetConfig = RetryBudgetConfig::default(),
        /// When calls arrive (the same calls in every lane).
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 50.0 },
        /// Attempts per second the dependency serves; beyond that (over the last
        /// second) it sheds them.
        pub capacity_per_sec: Count<1, { MAX_CAPACITY }> = Count::of(80),
        /// The dependency is down from the start for this long.
        pub outage_ms: Millis<0, { MAX_OUTAGE_MS }> = Millis::of(3_000),
        /// How long an attempt takes to answer.
        pub latency_ms: Millis<0, 60_000> = Millis::of(20),
    }
}

/// What can be done. JSON: `{"type": "outage", "forMs": 2000}`, `{"type": "setCapacity",
/// "perSec": 200}`, `{"type": "setArrivals", "arrivals": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RetryLabAction {
    /// The dependency is down for `forMs` from now.
    Outage {
        for_ms: Millis<0, { MAX_OUTAGE_MS }>,
    },
    /// The dependency's capacity from now on.
    SetCapacity { per_sec: Count<1, { MAX_CAPACITY }> },
}

/// Counters of one lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct LaneStats {
    calls: u64,
    attempts: u64,
    succeeded: u64,
    exhausted: u64,
    throttled: u64,
    not_retryable: u64,
    shed: u64,
    max_delay_us: u64,
}

/// One way of retrying, with its own copy of the dependency's load.
#[derive(Debug, Clone)]
struct Lane {
    jitter: Jitter,
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    rng: SimRng,
    load: LoadMeter,
    stats: LaneStats,
    /// A retry the budget let through at or below half its tokens (never, if correct).
    budget_breach: Option<Time>,
}

impl Lane {
    fn name(&self) -> String {
        match self.budget {
            Some(_) => format!("{} + budget", self.jitter.name()),
            None => self.jitter.name().to_string(),
        }
    }
}

/// What is due next.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Lane `lane` makes an attempt of a call.
    Attempt { lane: usize, state: RetryState },
    /// An attempt's answer arrives.
    Answer {
        lane: usize,
        state: RetryState,
        error: Option<ErrorKind>,
    },
}

/// The retry lab.
#[derive(Debug, Clone)]
pub struct RetryLab {
    lanes: Vec<Lane>,
    queue: BTreeMap<(Time, u64), Due>,
    seq: u64,
    capacity: u64,
    down_until: Time,
    latency: Duration,
    /// One call's delays per jitter, drawn once from the seed.
    drawn: Vec<Series>,
    cap: Duration,
    trace: LabTrace,
}

impl RetryLab {
    /// Per lane: its name and (calls, attempts, succeeded, given up).
    pub fn lane_totals(&self) -> Vec<(String, [u64; 4])> {
        self.lanes
            .iter()
            .map(|l| {
                let s = l.stats;
                (
                    l.name(),
                    [
                        s.calls,
                        s.attempts,
                        s.succeeded,
                        s.exhausted + s.throttled + s.not_retryable,
                    ],
                )
            })
            .collect()
    }

    fn push(&mut self, at: Time, due: Due) {
        self.queue.insert((at, self.seq), due);
        self.seq += 1;
    }

    fn attempt(&mut self, now: Time, step: u64, lane: usize, state: RetryState) {
        let (down, capacity, latency) = (now < self.down_until, self.capacity, self.latency);
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        l.stats.attempts += 1;
        let load = l.load.attempt(now);
        let error = if down {
            Some(ErrorKind::Unavailable)
        } else if load > capacity {
            l.stats.shed += 1;
            Some(ErrorKind::Overloaded)
        } else {
            None
        };
        self.trace.push(
            step,
            now,
            "attempt",
            &[
                ("lane", lane as u64),
                ("attempt", u64::from(state.attempts)),
                ("failed", u64::from(error.is_some())),
            ],
        );
        self.push(
            now.saturating_add(latency),
            Due::Answer { lane, state, error },
        );
    }

    fn answer(&mut self, now: Time, lane: usize, mut state: RetryState, error: Option<ErrorKind>) {
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        let Some(kind) = error else {
            l.policy.on_success(l.budget.as_mut());
            l.stats.succeeded += 1;
            return;
        };
        let decision = l
            .policy
            .on_failure(&mut state, now, kind, &mut l.rng, l.budget.as_mut());
        match decision {
            RetryDecision::Retry { delay, at, .. } => {
                l.stats.max_delay_us = l.stats.max_delay_us.max(delay.0);
                if let Some(b) = &l.budget
                    && b.tokens() * 2.0 <= b.max_tokens()
                    && l.budget_breach.is_none()
                {
                    l.budget_breach = Some(now);
                }
                self.push(at, Due::Attempt { lane, state });
            }
            RetryDecision::GiveUp { reason } => match reason {
                GiveUpReason::AttemptsExhausted => l.stats.exhausted += 1,
                GiveUpReason::BudgetExhausted => l.stats.throttled += 1,
                GiveUpReason::NotRetryable => l.stats.not_retryable += 1,
            },
        }
    }
}

fn drawn_delays(seed: u64, backoff: &BackoffConfig) -> Result<Vec<Series>> {
    Jitter::ALL
        .iter()
        .map(|&jitter| {
            let b = crate::resilience::retry::Backoff::new(&BackoffConfig { jitter, ..*backoff })?;
            let mut rng = SimRng::derive(seed, 99);
            let mut previous = None;
            let y = (0..DRAWN_RETRIES)
                .map(|n| {
                    let d = b.delay(n, previous, &mut rng);
                    previous = Some(d);
                    d.as_millis_f64()
                })
                .collect();
            Ok(Series {
                name: jitter.name().into(),
                unit: "ms".into(),
                x: (1..=DRAWN_RETRIES).map(f64::from).collect(),
                y,
            })
        })
        .collect()
}

impl Sampled for RetryLab {
    /// Attempts so far, per lane.
    type Totals = Vec<u64>;

    fn series(&self) -> Vec<(String, String)> {
        self.lanes
            .iter()
            .map(|l| {
                (
                    format!("attempts: {}", l.name()),
                    "per interval".to_string(),
                )
            })
            .collect()
    }

    fn totals(&self) -> Vec<u64> {
        self.lanes.iter().map(|l| l.stats.attempts).collect()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &Vec<u64>) -> Vec<f64> {
        self.lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.stats.attempts - since.get(i).copied().unwrap_or(0)) as f64)
            .collect()
    }
}

impl LocalLab for RetryLab {
    const ID: &'static str = "resilience.retry";
    type Config = RetryLabConfig;
    type Action = RetryLabAction;

    fn new(c: &RetryLabConfig) -> Result<Self> {
        let mut lanes = Vec::new();
        for (i, budgeted) in [false, true].into_iter().enumerate() {
            for (j, jitter) in Jitter::ALL.into_iter().enumerate() {
                let mut retry = c.retry.clone();
                retry.backoff.jitter = jitter;
                let policy = RetryPolicy::new(&retry).map_err(|e| within("retry", e))?;
                let budget = if budgeted {
                    Some(RetryBudget::new(&c.budget).map_err(|e| within("budget", e))?)
                } else {
                    None
                };
                lanes.push(Lane {
                    jitter,
                    policy,
                    budget,
                    rng: SimRng::derive(c.seed, 10 + (i * 4 + j) as u64),
                    load: LoadMeter::new(),
                    stats: LaneStats::default(),
                    budget_breach: None,
                });
            }
        }
        Ok(RetryLab {
            lanes,
            queue: BTreeMap::new(),
            seq: 0,
            capacity: u64::from(c.capacity_per_sec.get()),
            down_until: Time::ZERO.saturating_add(c.outage_ms.duration()),
            latency: c.latency_ms.duration(),
            drawn: drawn_delays(c.seed, &c.retry.backoff)
                .map_err(|e| within("retry.backoff", e))?,
            cap: c.retry.backoff.max_backoff_ms.duration(),
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.queue.keys().next().map(|(t, _)| *t)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if let Some(entry) = self.queue.first_entry()
            && entry.key().0 <= due
        {
            match entry.remove() {
                Due::Attempt { lane, state } => self.attempt(at.now, at.step, lane, state),
                Due::Answer { lane, state, error } => self.answer(at.now, lane, state, error),
            }
        }
    }

    fn act(&mut self, at: Moment, action: &RetryLabAction) -> Result<()> {
        match action {
            RetryLabAction::Outage { for_ms } => {
                self.down_until = at.now.saturating_add(for_ms.duration())
            }
            RetryLabAction::SetCapacity { per_sec } => self.capacity = u64::from(per_sec.get()),
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<Vec<u64>>) -> View {
        let nodes = vec![NodeView {
            id: 0,
            label: "dependency".into(),
            role: if at.now < self.down_until {
                "down"
            } else {
                "up"
            }
            .into(),
            status: if at.now < self.down_until {
                "crashed"
            } else {
                "up"
            }
            .into(),
            fields: BTreeMap::from([
                ("capacity per s".to_string(), json!(self.capacity)),
                (
                    "down until ms".to_string(),
                    json!(self.down_until.as_millis_f64()),
                ),
                (
                    "attempt latency ms".to_string(),
                    json!(self.latency.as_millis_f64()),
                ),
            ]),
            group: None,
        }];
        let delays = Panel::Chart {
            title: "one call's delays by jitter (ms), retry 1 to 12".into(),
            x_label: "retry".into(),
            series: self.drawn.clone(),
        };
        let load = Panel::Chart {
            title: "attempts on the dependency per interval, by lane".into(),
            x_label: "time (ms)".into(),
            series: samples.series(),
        };
        let rows = self
            .lanes
            .iter()
            .map(|l| {
                let s = l.stats;
                let amplification = if s.calls == 0 {
                    0.0
                } else {
                    s.attempts as f64 / s.calls as f64
                };
                vec![
                    json!(l.name()),
                    json!(s.calls),
                    json!(s.attempts),
                    json!((amplification * 100.0).round() / 100.0),
                    json!(s.succeeded),
                    json!(s.shed),
                    json!(s.exhausted),
                    json!(s.throttled),
                    json!(l.budget.as_ref().map(|b| b.tokens())),
                ]
            })
            .collect();
        let table = Panel::Table {
            title: "per lane".into(),
            columns: [
                "lane",
                "calls",
                "attempts",
                "attempts per call",
                "succeeded",
                "shed",
                "gave up: attempts",
                "gave up: budget",
                "tokens",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        };
        let max_delay = self
            .lanes
            .iter()
            .map(|l| l.stats.max_delay_us)
            .max()
            .unwrap_or(0);
        let within_cap = if max_delay <= self.cap.0 {
            InvariantStatus::holds(
                "every delay within [0, cap]",
                format!("longest {} ms", max_delay as f64 / 1_000.0),
            )
        } else {
            InvariantStatus::violated(
                "every delay within [0, cap]",
                format!("{} µs over the cap {} µs", max_delay, self.cap.0),
                vec![],
            )
        };
        let breach = self
            .lanes
            .iter()
            .find_map(|l| l.budget_breach.map(|t| (l.name(), t)));
        let budget = match breach {
            None => InvariantStatus::holds(
                "the budget retries only above half its tokens",
                "never below",
            ),
            Some((lane, t)) => InvariantStatus::violated(
                "the budget retries only above half its tokens",
                format!(
                    "{lane} retried at {} ms at or below half",
                    t.as_millis_f64()
                ),
                vec![],
            ),
        };
        View {
            nodes,
            panels: vec![delays, load, table],
            invariants: vec![within_cap, budget],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<RetryLabAction> {
        vec![
            RetryLabAction::Outage {
                for_ms: Millis::of(2_000),
            },
            RetryLabAction::SetCapacity {
                per_sec: Count::of(200),
            },
            RetryLabAction::SetCapacity {
                per_sec: Count::of(40),
            },
        ]
    }
}

impl DrivenLab for RetryLab {
    fn arrivals(c: &RetryLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        for lane in 0..self.lanes.len() {
            if let Some(l) = self.lanes.get_mut(lane) {
                l.stats.calls += 1;
            }
            self.attempt(at.now, at.step, lane, RetryState::first_attempt());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, LabModel, Runner};

    fn lab(config: Value) -> Runner<Driven<RetryLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn totals(l: &Runner<Driven<RetryLab>>) -> BTreeMap<String, [u64; 4]> {
        l.model().lane_totals().into_iter().collect()
    }

    #[test]
    fn the_budget_cuts_the_load_of_an_outage_to_about_the_first_attempts() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(3)).unwrap();
        let t = totals(&l);
        for j in Jitter::ALL {
            let plain = t[j.name()];
            let budgeted = t[&format!("{} + budget", j.name())];
            assert_eq!(plain[0], budgeted[0], "the same calls");
            // Without a budget an outage multiplies the load by up to maxAttempts.
            assert!(plain[1] as f64 > 3.0 * plain[0] as f64, "{j:?}: {plain:?}");
            assert!(
                (budgeted[1] as f64) < 1.2 * budgeted[0] as f64,
                "{j:?}: {budgeted:?}"
            );
        }
        assert!(l.view().invariants.iter().all(|i| i.ok));
    }

    /// After the outage, with room for the first attempts but not for five of each, the
    /// budgeted lanes recover while a lane without a budget can stay in a retry storm:
    /// its retries alone keep the dependency over capacity (here decorrelated jitter,
    /// whose short early delays bunch the retries).
    #[test]
    fn after_the_outage_the_budgeted_lanes_recover_and_refill() {
        let mut l = lab(json!({"capacityPerSec": 200}));
        l.step(Duration::from_secs(20)).unwrap();
        let t = totals(&l);
        for j in Jitter::ALL {
            let [calls, _, succeeded, _] = t[&format!("{} + budget", j.name())];
            assert!(succeeded as f64 > 0.8 * calls as f64, "{j:?}: {t:?}");
            assert!(succeeded >= t[j.name()][2], "{j:?}: {t:?}");
        }
        let [calls, attempts, succeeded, _] = t["decorrelated"];
        assert!(
            succeeded * 10 < calls && attempts > 4 * calls,
            "the storm: {t:?}"
        );
        let v = l.view();
        let Panel::Table { rows, .. } = &v.panels[2] else {
            panic!()
        };
        assert_eq!(rows[4][8], json!(10.0), "full again: {:?}", rows[4]);
    }

    #[test]
    fn the_drawn_delays_follow_each_jitter() {
        let l = lab(Value::Null);
        let v = l.view();
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!()
        };
        let none = &series[0].y;
        assert_eq!(&none[..4], &[100.0, 200.0, 400.0, 800.0]);
        assert_eq!(none[11], 5_000.0, "capped");
        for s in series {
            assert!(s.y.iter().all(|d| (0.0..=5_000.0).contains(d)), "{s:?}");
        }
        assert_ne!(series[1].y, series[2].y);
    }

    #[test]
    fn both_invariants_can_fail() {
        let mut m = Driven::<RetryLab>::new(&RetryLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(500)) {}
        m.lanes[1].stats.max_delay_us = 5_000_001;
        m.lanes[5].budget_breach = Some(Time(7));
        let v = m.view();
        assert!(v.invariants.iter().all(|i| !i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn bad_configs_name_their_field() {
        for (v, field) in [
            (
                json!({"retry": {"backoff": {"initialBackoffMs": 40000}}}),
                "retry.backoff.initialBackoffMs",
            ),
            (json!({"budget": {"tokenRatio": 0}}), "budget.tokenRatio"),
            (json!({"capacityPerSec": 0}), "config.capacityPerSec"),
        ] {
            let e = Runner::<Driven<RetryLab>>::from_json(&v)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
