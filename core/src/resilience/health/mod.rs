//! Health checks: a service runs liveness, readiness and startup checks on a period, each
//! with a timeout, and aggregates them to healthy / degraded / unhealthy with per-check
//! detail (status, last duration, consecutive failures, why).
//!
//! References:
//! - Kubernetes container probes (`livenessProbe`, `readinessProbe`, `startupProbe`, with
//!   `periodSeconds`, `timeoutSeconds`, `failureThreshold` and `successThreshold`): a probe
//!   slower than its timeout has failed; a probe's result flips only after
//!   `failureThreshold` consecutive failures (or `successThreshold` successes); while a
//!   startup probe has not succeeded, liveness and readiness probes are not run, and once
//!   it has, it is never run again; readiness starts out failing, liveness passing.
//! - ASP.NET Core health checks (`HealthCheckService`, `HealthReport`): each check has a
//!   `failureStatus` — here `critical: true` reports `unhealthy`, `critical: false`
//!   `degraded` —, the report's status is the worst of its entries, and each entry says
//!   its status, duration and description.
//!
//! Aggregation, per kind: a failing critical check makes the kind unhealthy, a failing
//! non-critical one degraded. While starting, readiness is unhealthy ("starting") and
//! liveness healthy (a starting service is not killed for being slow to start) unless a
//! startup check has reached its failure threshold — then liveness is unhealthy (Kubernetes
//! restarts the container). The overall status is the worse of liveness and readiness.
//!
//! Sans-I/O: [`HealthMonitor::handle_timeout`] returns the checks to run now; the caller
//! runs each and reports with [`HealthMonitor::on_result`]; [`HealthMonitor::
//! poll_timeout`] says when to call again. Cost: O(checks) per call.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis};
use crate::error::{DistlabError, Result};
use crate::time::{Duration, Time};

pub mod lab;
#[cfg(test)]
mod tests;

/// The most checks a monitor may run.
pub const MAX_CHECKS: usize = 32;
/// The longest period or timeout: an hour, in ms.
pub const MAX_CHECK_MS: u32 = 3_600_000;
/// The highest failure or success threshold.
pub const MAX_THRESHOLD: u32 = 100;
/// The longest check name or failure description, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// What a check is for (the Kubernetes probe it stands for).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CheckKind {
    /// Is the process alive (or stuck)? Failing: restart it.
    Liveness,
    /// Can it serve traffic now? Failing: take it out of the load balancer.
    Readiness,
    /// Has it finished starting? Until it has, the others wait.
    Startup,
}

/// One check. JSON: `{"name": "database", "kind": "readiness", "critical": true,
/// "periodMs": 1000, "timeoutMs": 200, "failureThreshold": 3, "successThreshold": 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct CheckConfig {
    pub name: String,
    pub kind: CheckKind,
    /// Failing makes its kind unhealthy (`true`) or only degraded (`false`).
    #[serde(default = "yes")]
    pub critical: bool,
    /// How often it runs (Kubernetes' `periodSeconds`, default 10 s).
    #[serde(default = "ten_seconds")]
    pub period_ms: Millis<1, { MAX_CHECK_MS }>,
    /// A run slower than this has failed (`timeoutSeconds`, default 1 s).
    #[serde(default = "one_second")]
    pub timeout_ms: Millis<1, { MAX_CHECK_MS }>,
    /// Consecutive failures before the check fails (`failureThreshold`, default 3).
    #[serde(default = "three")]
    pub failure_threshold: Count<1, { MAX_THRESHOLD }>,
    /// Consecutive successes before a failing check passes again (default 1).
    #[serde(default = "one")]
    pub success_threshold: Count<1, { MAX_THRESHOLD }>,
}

fn yes() -> bool {
    true
}
fn ten_seconds() -> Millis<1, { MAX_CHECK_MS }> {
    Millis::of(10_000)
}
fn one_second() -> Millis<1, { MAX_CHECK_MS }> {
    Millis::of(1_000)
}
fn three() -> Count<1, { MAX_THRESHOLD }> {
    Count::of(3)
}
fn one() -> Count<1, { MAX_THRESHOLD }> {
    Count::of(1)
}

impl CheckConfig {
    /// A check with Kubernetes' defaults.
    pub fn new(name: &str, kind: CheckKind, critical: bool) -> Self {
        CheckConfig {
            name: name.to_string(),
            kind,
            critical,
            period_ms: ten_seconds(),
            timeout_ms: one_second(),
            failure_threshold: three(),
            success_threshold: one(),
        }
    }
}

/// The checks. JSON: `{"checks": [{"name": "warm-up", "kind": "startup"}, ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HealthConfig {
    pub checks: Vec<CheckConfig>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            checks: vec![
                CheckConfig::new("warm-up", CheckKind::Startup, true),
                CheckConfig::new("event loop", CheckKind::Liveness, true),
                CheckConfig::new("database", CheckKind::Readiness, true),
                CheckConfig::new("cache", CheckKind::Readiness, false),
            ],
        }
    }
}

/// An aggregate status, best first (ASP.NET Core's `HealthStatus`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    pub fn name(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// Where one check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CheckState {
    /// Not run yet (or held back by startup).
    Unknown,
    Passing,
    /// Failed `failureThreshold` times in a row.
    Failing,
    /// A startup check that passed: never run again.
    Done,
}

/// One check's entry in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct CheckReport {
    pub name: String,
    pub kind: CheckKind,
    pub critical: bool,
    pub state: CheckState,
    /// Whether startup holds it back.
    pub gated: bool,
    /// Whether a run is in flight.
    pub running: bool,
    /// How long the last finished run took (µs), cut at the timeout if it timed out.
    #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
    pub last_duration: Option<Duration>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    pub runs: u64,
    pub failures: u64,
}

/// The aggregate: per kind, overall, and every check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HealthReport {
    pub status: HealthStatus,
    pub liveness: HealthStatus,
    pub readiness: HealthStatus,
    /// Whether every startup check has passed.
    pub started: bool,
    pub checks: Vec<CheckReport>,
}

/// A run the caller must make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HealthAction {
    /// Run check `check`, reporting by `deadline` (µs) or it fails.
    Run {
        check: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        deadline: Time,
    },
    /// Check `check` ran out of time: cancel the run; it counts as failed.
    Cancel { check: u32 },
}

#[derive(Debug, Clone, PartialEq)]
struct Check {
    config: CheckConfig,
    period: Duration,
    timeout: Duration,
    state: CheckState,
    /// When it next runs.
    next_run: Time,
    /// When the run in flight started.
    running_since: Option<Time>,
    last_duration: Option<Duration>,
    consecutive_failures: u32,
    consecutive_successes: u32,
    last_error: Option<String>,
    runs: u64,
    failures: u64,
}

/// The monitor of one service's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthMonitor {
    checks: Vec<Check>,
}

impl HealthMonitor {
    /// Every check runs first at `now`. Errors name the field: `checks` empty or longer
    /// than [`MAX_CHECKS`], `checks[i].name` empty, too long or repeated.
    pub fn new(c: &HealthConfig, now: Time) -> Result<Self> {
        if c.checks.is_empty() || c.checks.len() > MAX_CHECKS {
            return Err(DistlabError::field(
                "checks",
                format!("must have 1 to {MAX_CHECKS} checks, got {}", c.checks.len()),
            ));
        }
        for (i, check) in c.checks.iter().enumerate() {
            let field = format!("checks[{i}].name");
            if check.name.is_empty() || check.name.len() > MAX_NAME_LEN {
                return Err(DistlabError::field(
                    field,
                    format!(
                        "must be 1 to {MAX_NAME_LEN} bytes, got {}",
                        check.name.len()
                    ),
                ));
            }
            if c.checks[..i].iter().any(|o| o.name == check.name) {
                return Err(DistlabError::field(
                    field,
                    format!("`{}` names two checks", check.name),
                ));
            }
        }
        let mut m = HealthMonitor {
            checks: c
                .checks
                .iter()
                .map(|config| Check {
                    config: config.clone(),
                    period: config.period_ms.duration(),
                    timeout: config.timeout_ms.duration(),
                    state: CheckState::Unknown,
                    next_run: now,
                    running_since: None,
                    last_duration: None,
                    consecutive_failures: 0,
                    consecutive_successes: 0,
                    last_error: None,
                    runs: 0,
                    failures: 0,
                })
                .collect(),
        };
        m.restart(now);
        Ok(m)
    }

    /// The service restarted at `now`: every check forgets what it knew and startup
    /// runs again. Runs in flight are dropped (their answers will be ignored).
    pub fn restart(&mut self, now: Time) {
        for c in &mut self.checks {
            c.state = CheckState::Unknown;
            c.next_run = now;
            c.running_since = None;
            c.consecutive_failures = 0;
            c.consecutive_successes = 0;
            c.last_error = None;
        }
    }

    pub fn len(&self) -> usize {
        self.checks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Check `check`'s configuration.
    pub fn config(&self, check: u32) -> Option<&CheckConfig> {
        self.checks.get(check as usize).map(|c| &c.config)
    }

    /// Whether every startup check has passed.
    pub fn started(&self) -> bool {
        self.checks
            .iter()
            .filter(|c| c.config.kind == CheckKind::Startup)
            .all(|c| c.state == CheckState::Done)
    }

    fn gated(&self, c: &Check, started: bool) -> bool {
        !started && c.config.kind != CheckKind::Startup
    }

    /// Whether check `check` would run: not done, not held back by startup.
    fn active(&self, c: &Check, started: bool) -> bool {
        c.state != CheckState::Done && !self.gated(c, started)
    }

    /// When to call [`HealthMonitor::handle_timeout`] next: the next run due or the next
    /// run in flight timing out.
    pub fn poll_timeout(&self) -> Option<Time> {
        let started = self.started();
        self.checks
            .iter()
            .filter(|c| self.active(c, started))
            .map(|c| match c.running_since {
                Some(since) => since.saturating_add(c.timeout),
                None => c.next_run,
            })
            .min()
    }

    /// At `now`: runs in flight past their timeout fail (`Cancel`), then the checks due
    /// start (`Run`), startup ones only until they pass, the others only once startup has.
    pub fn handle_timeout(&mut self, now: Time) -> Vec<HealthAction> {
        let mut actions = Vec::new();
        for i in 0..self.checks.len() {
            let Some(c) = self.checks.get(i) else {
                continue;
            };
            if let Some(since) = c.running_since
                && now >= since.saturating_add(c.timeout)
            {
                let timeout = c.timeout;
                self.record(i, now, Some(timeout), Some("timed out".into()));
                actions.push(HealthAction::Cancel { check: i as u32 });
            }
        }
        let started = self.started();
        for i in 0..self.checks.len() {
            let active = self.checks.get(i).is_some_and(|c| self.active(c, started));
            let Some(c) = self.checks.get_mut(i) else {
                continue;
            };
            if active && c.running_since.is_none() && c.next_run <= now {
                c.running_since = Some(now);
                c.runs += 1;
                actions.push(HealthAction::Run {
                    check: i as u32,
                    deadline: now.saturating_add(c.timeout),
                });
            }
        }
        actions
    }

    /// Check `check`'s run answered at `now`: passed (`error` `None`) or failed with a
    /// description. A run that took its whole timeout or more has failed whatever it said
    /// (the same instant [`HealthMonitor::handle_timeout`] would cancel it).
    /// An answer with no run in flight (cancelled, or from before a restart) is ignored.
    /// Error: no check `check`, or a description longer than [`MAX_NAME_LEN`].
    pub fn on_result(&mut self, now: Time, check: u32, error: Option<&str>) -> Result<()> {
        let Some(c) = self.checks.get(check as usize) else {
            return Err(DistlabError::field(
                "check",
                format!("no check {check}: there are {}", self.checks.len()),
            ));
        };
        if let Some(e) = error
            && e.len() > MAX_NAME_LEN
        {
            return Err(DistlabError::field(
                "error",
                format!("must be at most {MAX_NAME_LEN} bytes, got {}", e.len()),
            ));
        }
        let Some(since) = c.running_since else {
            return Ok(());
        };
        let took = now.saturating_since(since);
        let error = if took >= c.timeout {
            Some(format!(
                "took {:.0} ms, over its timeout",
                took.as_millis_f64()
            ))
        } else {
            error.map(str::to_string)
        };
        self.record(check as usize, now, Some(took), error);
        Ok(())
    }

    fn record(&mut self, i: usize, now: Time, took: Option<Duration>, error: Option<String>) {
        let Some(c) = self.checks.get_mut(i) else {
            return;
        };
        c.running_since = None;
        c.last_duration = took;
        c.next_run = now.saturating_add(c.period);
        match error {
            None => {
                c.consecutive_failures = 0;
                c.consecutive_successes = c.consecutive_successes.saturating_add(1);
                c.last_error = None;
                let enough = c.consecutive_successes >= c.config.success_threshold.get();
                if c.config.kind == CheckKind::Startup {
                    c.state = CheckState::Done;
                } else if c.state != CheckState::Failing || enough {
                    c.state = CheckState::Passing;
                }
            }
            Some(e) => {
                c.failures += 1;
                c.consecutive_successes = 0;
                c.consecutive_failures = c.consecutive_failures.saturating_add(1);
                c.last_error = Some(e);
                if c.consecutive_failures >= c.config.failure_threshold.get() {
                    c.state = CheckState::Failing;
                }
            }
        }
    }

    /// The status one kind's checks add up to: a failing critical check makes it
    /// unhealthy, a failing non-critical one degraded.
    fn kind_status(&self, kind: CheckKind) -> HealthStatus {
        self.checks
            .iter()
            .filter(|c| c.config.kind == kind && c.state == CheckState::Failing)
            .map(|c| {
                if c.config.critical {
                    HealthStatus::Unhealthy
                } else {
                    HealthStatus::Degraded
                }
            })
            .max()
            .unwrap_or(HealthStatus::Healthy)
    }

    /// The aggregate now.
    pub fn report(&self) -> HealthReport {
        let started = self.started();
        let (liveness, readiness) = if started {
            let readiness = self.kind_status(CheckKind::Readiness).max(
                // Readiness starts out failing: a critical readiness check that has not
                // passed yet keeps the service out of rotation.
                if self.checks.iter().any(|c| {
                    c.config.kind == CheckKind::Readiness
                        && c.config.critical
                        && c.state == CheckState::Unknown
                }) {
                    HealthStatus::Unhealthy
                } else {
                    HealthStatus::Healthy
                },
            );
            (self.kind_status(CheckKind::Liveness), readiness)
        } else {
            (
                self.kind_status(CheckKind::Startup),
                HealthStatus::Unhealthy,
            )
        };
        HealthReport {
            status: liveness.max(readiness),
            liveness,
            readiness,
            started,
            checks: self
                .checks
                .iter()
                .map(|c| CheckReport {
                    name: c.config.name.clone(),
                    kind: c.config.kind,
                    critical: c.config.critical,
                    state: c.state,
                    gated: self.gated(c, started),
                    running: c.running_since.is_some(),
                    last_duration: c.last_duration,
                    consecutive_failures: c.consecutive_failures,
                    consecutive_successes: c.consecutive_successes,
                    last_error: c.last_error.clone(),
                    runs: c.runs,
                    failures: c.failures,
                })
                .collect(),
        }
    }
}
