//! Lab `resilience.health`: a service's startup, liveness and readiness checks run on
//! their periods against dependencies whose failure rate and latency actions change. The
//! view charts the aggregate status over time (overall, liveness, readiness), each check's
//! detail (state, last duration against its timeout, consecutive failures, why), and the
//! restarts a failing liveness (or a startup that never finishes) causes, as a kubelet
//! would; checked live that no check runs before startup has passed, that no run slower
//! than its timeout passes, and that each status is the worst of its failing checks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::resilience::dependency::{DependencyConfig, LabTrace};
use crate::resilience::health::{
    CheckConfig, CheckKind, CheckState, HealthAction, HealthConfig, HealthMonitor, HealthReport,
    HealthStatus,
};
use crate::rng::SimRng;
use crate::time::{Duration, Time};

/// The longest startup: ten minutes, in ms.
pub const MAX_STARTUP_MS: u32 = 600_000;

fn lab_checks() -> HealthConfig {
    let check =
        |name: &str, kind, critical, period: u32, timeout: u32, threshold: u32| CheckConfig {
            period_ms: Millis::of(period),
            timeout_ms: Millis::of(timeout),
            failure_threshold: Count::of(threshold),
            ..CheckConfig::new(name, kind, critical)
        };
    HealthConfig {
        checks: vec![
            check("warm-up", CheckKind::Startup, true, 500, 200, 20),
            check("event loop", CheckKind::Liveness, true, 1_000, 300, 3),
            check("database", CheckKind::Readiness, true, 500, 200, 2),
            check("cache", CheckKind::Readiness, false, 500, 200, 2),
        ],
    }
}

fn lab_dependencies() -> Vec<DependencyConfig> {
    let quick = DependencyConfig {
        failure_rate: Probability::NEVER,
        latency_ms: Millis::of(20),
        ..DependencyConfig::default()
    };
    vec![quick; 4]
}

local_lab_config! {
    /// Configuration of the health lab. JSON: `{"health": {"checks": [...]},
    /// "dependencies": [{"failureRate": 0, "latencyMs": 20}, ...], "startupMs": 3000,
    /// "restartOnLiveness": true}`.
    pub struct HealthLabConfig {
        pub health: HealthConfig = lab_checks(),
        /// How each check's run goes, in the checks' order (one per check).
        pub dependencies: Vec<DependencyConfig> = lab_dependencies(),
        /// How long the service takes to start: its startup checks fail until then.
        pub startup_ms: Millis<0, { MAX_STARTUP_MS }> = Millis::of(3_000),
        /// Restart the service when liveness turns unhealthy, as a kubelet does.
        pub restart_on_liveness: bool = true,
    }
}

/// What can be done. JSON: `{"type": "setDependency", "check": 2, "dependency":
/// {"failureRate": 1}}`, `{"type": "restart"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HealthLabAction {
    /// How check `check`'s runs go from now on.
    SetDependency {
        check: u32,
        dependency: DependencyConfig,
    },
    /// Restart the service now: startup runs again.
    Restart {},
}

fn level(s: HealthStatus) -> f64 {
    match s {
        HealthStatus::Healthy => 0.0,
        HealthStatus::Degraded => 1.0,
        HealthStatus::Unhealthy => 2.0,
    }
}

/// The health lab.
#[derive(Debug, Clone)]
pub struct HealthLab {
    monitor: HealthMonitor,
    dependencies: Vec<DependencyConfig>,
    startup: Duration,
    restart_on_liveness: bool,
    rng: SimRng,
    /// When the service last (re)started.
    up_since: Time,
    /// Answers on their way: (when, seq) → (check, generation, failed).
    answers: BTreeMap<(Time, u64), (u32, u64, bool)>,
    seq: u64,
    /// Bumped by a restart: answers from before it are dropped.
    generation: u64,
    restarts: u64,
    /// Runs of a check held back by startup (never, if correct).
    gated_runs: u64,
    /// Runs that took their whole timeout yet passed (never, if correct).
    late_passes: u64,
    trace: LabTrace,
}

impl HealthLab {
    pub fn report(&self) -> HealthReport {
        self.monitor.report()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn restart(&mut self, at: Moment) {
        self.monitor.restart(at.now);
        self.up_since = at.now;
        self.generation += 1;
        self.restarts += 1;
        self.trace.push(at.step, at.now, "restart", &[]);
    }

    fn run_due(&mut self, at: Moment) {
        let started = self.monitor.started();
        for action in self.monitor.handle_timeout(at.now) {
            match action {
                HealthAction::Run { check, .. } => {
                    let kind = self.monitor.config(check).map(|c| c.kind);
                    if !started && kind != Some(CheckKind::Startup) {
                        self.gated_runs += 1;
                    }
                    let Some(d) = self.dependencies.get(check as usize) else {
                        continue;
                    };
                    let outcome = d.call(&mut self.rng);
                    let warming = kind == Some(CheckKind::Startup)
                        && at.now.saturating_since(self.up_since) < self.startup;
                    let failed = outcome.error.is_some() || warming;
                    self.answers.insert(
                        (at.now.saturating_add(outcome.latency), self.seq),
                        (check, self.generation, failed),
                    );
                    self.seq += 1;
                    self.trace
                        .push(at.step, at.now, "run", &[("check", check.into())]);
                }
                HealthAction::Cancel { check } => {
                    self.trace
                        .push(at.step, at.now, "timedOut", &[("check", check.into())]);
                }
            }
        }
    }

    fn answer(&mut self, at: Moment, check: u32, failed: bool) {
        let before = self.monitor.report();
        let Some(c) = before.checks.get(check as usize) else {
            return;
        };
        let running = c.running;
        let timeout = self
            .monitor
            .config(check)
            .map_or(Duration::ZERO, |c| c.timeout_ms.duration());
        // Cannot fail: the check exists and the description is short.
        let _ = self
            .monitor
            .on_result(at.now, check, failed.then_some("check failed"));
        let after = self.monitor.report();
        if running
            && let Some(c) = after.checks.get(check as usize)
            && c.last_duration.is_some_and(|d| d >= timeout)
            && c.last_error.is_none()
        {
            self.late_passes += 1;
        }
        self.trace.push(
            at.step,
            at.now,
            "answer",
            &[("check", check.into()), ("failed", u64::from(failed))],
        );
        self.after_change(at, before.liveness);
    }

    fn after_change(&mut self, at: Moment, liveness_before: HealthStatus) {
        let r = self.monitor.report();
        if self.restart_on_liveness
            && r.liveness == HealthStatus::Unhealthy
            && liveness_before != HealthStatus::Unhealthy
        {
            self.restart(at);
        }
    }
}

/// What the invariants look at.
#[derive(Debug, Clone)]
struct Observed {
    report: HealthReport,
    gated_runs: u64,
    late_passes: u64,
}

fn worst(r: &HealthReport, kind: CheckKind) -> HealthStatus {
    r.checks
        .iter()
        .filter(|c| c.kind == kind && c.state == CheckState::Failing)
        .map(|c| {
            if c.critical {
                HealthStatus::Unhealthy
            } else {
                HealthStatus::Degraded
            }
        })
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

fn judge(o: &Observed) -> Vec<InvariantStatus> {
    let check = |ok: bool, name: &str, detail: String| {
        if ok {
            InvariantStatus::holds(name, detail)
        } else {
            InvariantStatus::violated(name, detail, vec![0])
        }
    };
    let r = &o.report;
    let (live, ready) = if r.started {
        (
            worst(r, CheckKind::Liveness),
            worst(r, CheckKind::Readiness),
        )
    } else {
        (worst(r, CheckKind::Startup), HealthStatus::Unhealthy)
    };
    let consistent =
        r.liveness == live && r.readiness >= ready && r.status == r.liveness.max(r.readiness);
    vec![
        check(
            o.gated_runs == 0,
            "no check runs before startup has passed",
            format!("{} runs held back by startup", o.gated_runs),
        ),
        check(
            o.late_passes == 0,
            "no run slower than its timeout passes",
            format!("{} late runs passed", o.late_passes),
        ),
        check(
            consistent,
            "each status is the worst of its failing checks",
            format!(
                "liveness {} (checks say {}), readiness {} (at least {}), overall {}",
                r.liveness.name(),
                live.name(),
                r.readiness.name(),
                ready.name(),
                r.status.name()
            ),
        ),
    ]
}

impl Sampled for HealthLab {
    /// Restarts so far.
    type Totals = u64;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("overall", "0 healthy, 1 degraded, 2 unhealthy"),
            ("liveness", "0 healthy, 1 degraded, 2 unhealthy"),
            ("readiness", "0 healthy, 1 degraded, 2 unhealthy"),
            ("failing checks", "checks"),
            ("restarts", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> u64 {
        self.restarts
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &u64) -> Vec<f64> {
        let r = self.monitor.report();
        let failing = r
            .checks
            .iter()
            .filter(|c| c.state == CheckState::Failing)
            .count();
        vec![
            level(r.status),
            level(r.liveness),
            level(r.readiness),
            failing as f64,
            self.restarts.saturating_sub(*since) as f64,
        ]
    }
}

impl LocalLab for HealthLab {
    const ID: &'static str = "resilience.health";
    type Config = HealthLabConfig;
    type Action = HealthLabAction;

    fn new(c: &HealthLabConfig) -> Result<Self> {
        let monitor = HealthMonitor::new(&c.health, Time::ZERO)
            .map_err(|e| crate::sim::workload::within("health", e))?;
        if c.dependencies.len() != c.health.checks.len() {
            return Err(DistlabError::field(
                "dependencies",
                format!(
                    "must give one dependency per check ({}), got {}",
                    c.health.checks.len(),
                    c.dependencies.len()
                ),
            ));
        }
        Ok(HealthLab {
            monitor,
            dependencies: c.dependencies.clone(),
            startup: c.startup_ms.duration(),
            restart_on_liveness: c.restart_on_liveness,
            rng: SimRng::derive(c.seed, 1),
            up_since: Time::ZERO,
            answers: BTreeMap::new(),
            seq: 0,
            generation: 0,
            restarts: 0,
            gated_runs: 0,
            late_passes: 0,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        let answer = self.answers.keys().next().map(|(t, _)| *t);
        [answer, self.monitor.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if let Some(entry) = self.answers.first_entry()
            && entry.key().0 <= due
        {
            let (_, (check, generation, failed)) = entry.remove_entry();
            if generation == self.generation {
                self.answer(at, check, failed);
            }
        } else if self.monitor.poll_timeout().is_some_and(|t| t <= due) {
            let before = self.monitor.report().liveness;
            self.run_due(at);
            self.after_change(at, before);
        }
    }

    fn act(&mut self, at: Moment, action: &HealthLabAction) -> Result<()> {
        match action {
            HealthLabAction::SetDependency { check, dependency } => {
                let checks = self.dependencies.len();
                let slot = self.dependencies.get_mut(*check as usize).ok_or_else(|| {
                    DistlabError::field(
                        "check",
                        format!("must be below the number of checks ({checks}), got {check}"),
                    )
                })?;
                *slot = *dependency;
            }
            HealthLabAction::Restart {} => self.restart(at),
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<u64>) -> View {
        let r = self.monitor.report();
        let mut fields = BTreeMap::new();
        fields.insert("status".into(), json!(r.status.name()));
        fields.insert("liveness".into(), json!(r.liveness.name()));
        fields.insert("readiness".into(), json!(r.readiness.name()));
        fields.insert("started".into(), json!(r.started));
        fields.insert("restarts".into(), json!(self.restarts));
        fields.insert(
            "up for ms".into(),
            json!(at.now.saturating_since(self.up_since).as_millis_f64()),
        );
        let series = samples.series();
        let status = Panel::Chart {
            title: "status over time (0 healthy, 1 degraded, 2 unhealthy)".into(),
            x_label: "time (ms)".into(),
            series: series.iter().take(3).cloned().collect(),
        };
        let failing = Panel::Chart {
            title: "failing checks and restarts".into(),
            x_label: "time (ms)".into(),
            series: series.iter().skip(3).cloned().collect(),
        };
        let rows = r
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let cfg = self.monitor.config(i as u32);
                let state = if c.gated {
                    "held by startup".to_string()
                } else {
                    format!("{:?}", c.state).to_lowercase()
                };
                vec![
                    json!(c.name),
                    json!(format!("{:?}", c.kind).to_lowercase()),
                    json!(if c.critical {
                        "critical"
                    } else {
                        "non-critical"
                    }),
                    json!(state),
                    json!(c.last_duration.map(Duration::as_millis_f64)),
                    json!(cfg.map(|c| c.timeout_ms.get())),
                    json!(format!(
                        "{} / {}",
                        c.consecutive_failures,
                        cfg.map_or(0, |c| c.failure_threshold.get())
                    )),
                    json!(c.last_error),
                    json!(format!("{} / {}", c.failures, c.runs)),
                ]
            })
            .collect();
        let table = Panel::Table {
            title: "checks".into(),
            columns: [
                "check",
                "kind",
                "critical",
                "state",
                "last ms",
                "timeout ms",
                "failures in a row / threshold",
                "why",
                "failed / runs",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        };
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "service".into(),
                role: if r.started {
                    r.status.name()
                } else {
                    "starting"
                }
                .into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![status, table, failing],
            invariants: judge(&Observed {
                report: r,
                gated_runs: self.gated_runs,
                late_passes: self.late_passes,
            }),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<HealthLabAction> {
        let set = |check: u32, failure: f64, latency: u32| HealthLabAction::SetDependency {
            check,
            dependency: DependencyConfig {
                failure_rate: Probability::saturating(failure),
                latency_ms: Millis::new("latencyMs", f64::from(latency)).unwrap_or(Millis::of(20)),
                ..DependencyConfig::default()
            },
        };
        vec![
            set(3, 1.0, 20),
            set(2, 1.0, 20),
            set(1, 0.0, 600),
            set(2, 0.0, 20),
            HealthLabAction::Restart {},
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Local, Runner};

    fn lab(config: Value) -> Runner<Local<HealthLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn status(l: &Runner<Local<HealthLab>>) -> (HealthStatus, HealthStatus, HealthStatus) {
        let r = l.model().report();
        (r.status, r.liveness, r.readiness)
    }

    #[test]
    fn the_service_starts_then_degrades_then_goes_unhealthy_and_recovers() {
        use HealthStatus::*;
        let mut l = lab(Value::Null);
        l.step(Duration::from_millis(1_000)).unwrap();
        assert!(!l.model().report().started);
        assert_eq!(status(&l), (Unhealthy, Healthy, Unhealthy), "starting");
        l.step(Duration::from_secs(3)).unwrap();
        assert_eq!(status(&l), (Healthy, Healthy, Healthy));
        // The cache (non-critical) fails: degraded, still serving.
        l.act(&json!({"type": "setDependency", "check": 3, "dependency": {"failureRate": 1}}))
            .unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        assert_eq!(status(&l), (Degraded, Healthy, Degraded));
        // The database (critical) too: unhealthy, but alive.
        l.act(&json!({"type": "setDependency", "check": 2, "dependency": {"failureRate": 1}}))
            .unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        assert_eq!(status(&l), (Unhealthy, Healthy, Unhealthy));
        assert_eq!(l.model().restarts(), 0);
        for c in [2, 3] {
            l.act(&json!({"type": "setDependency", "check": c, "dependency": {"failureRate": 0}}))
                .unwrap();
        }
        l.step(Duration::from_secs(2)).unwrap();
        assert_eq!(status(&l), (Healthy, Healthy, Healthy));
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn a_slow_liveness_check_restarts_the_service() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(5)).unwrap();
        // The event loop answers in 300..900 ms, over its 300 ms timeout: it fails.
        l.act(&json!({"type": "setDependency", "check": 1, "dependency": {"failureRate": 0, "latencyMs": 600}}))
            .unwrap();
        l.step(Duration::from_secs(5)).unwrap();
        assert!(l.model().restarts() >= 1);
        // The restart forgot the check's state, not its counters.
        let r = l.model().report();
        assert!(r.checks[1].failures >= 3, "{:?}", r.checks[1]);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn a_startup_that_never_finishes_is_restarted() {
        let mut l = lab(json!({"startupMs": 600000}));
        l.step(Duration::from_secs(30)).unwrap();
        // 20 failures of a 500 ms period: a restart about every 10 s.
        let n = l.model().restarts();
        assert!((2..=3).contains(&n), "{n}");
        assert!(!l.model().report().started);
        let off = lab(json!({"startupMs": 600000, "restartOnLiveness": false}));
        assert_eq!(off.model().restarts(), 0);
    }

    #[test]
    fn every_invariant_can_fail() {
        let l = lab(Value::Null);
        let good = Observed {
            report: l.model().report(),
            gated_runs: 0,
            late_passes: 0,
        };
        assert!(judge(&good).iter().all(|i| i.ok));
        let oks = |o: &Observed| judge(o).iter().map(|i| i.ok).collect::<Vec<_>>();
        let gated = Observed {
            gated_runs: 1,
            ..good.clone()
        };
        assert_eq!(oks(&gated), [false, true, true]);
        let late = Observed {
            late_passes: 1,
            ..good.clone()
        };
        assert_eq!(oks(&late), [true, false, true]);
        let mut wrong = good.clone();
        wrong.report.readiness = HealthStatus::Healthy;
        assert_eq!(oks(&wrong), [true, true, false], "starting yet ready");
    }

    #[test]
    fn bad_configs_and_actions_name_their_field() {
        let e = Runner::<Local<HealthLab>>::from_json(&json!({"dependencies": []}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.dependencies"), "{e}");
        let e = Runner::<Local<HealthLab>>::from_json(&json!({"health": {"checks": []}}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.health.checks"), "{e}");
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "setDependency", "check": 4, "dependency": {}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("check"), "{e}");
    }
}
