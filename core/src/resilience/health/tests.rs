//! Health monitor tests: Kubernetes' probe rules and ASP.NET Core's aggregation one by
//! one, then a property over random check results.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn monitor(v: serde_json::Value) -> HealthMonitor {
    HealthMonitor::new(&from_value("config", &v).unwrap(), Time::ZERO).unwrap()
}

fn runs(actions: &[HealthAction]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            HealthAction::Run { check, .. } => Some(*check),
            _ => None,
        })
        .collect()
}

/// warm-up (startup), loop (liveness), db (critical readiness), cache (non-critical
/// readiness); period 100 ms, timeout 50 ms, thresholds 1.
fn service() -> HealthMonitor {
    let check = |name: &str, kind: &str, critical: bool| {
        json!({"name": name, "kind": kind, "critical": critical, "periodMs": 100,
               "timeoutMs": 50, "failureThreshold": 1})
    };
    monitor(json!({"checks": [
        check("warm-up", "startup", true),
        check("loop", "liveness", true),
        check("db", "readiness", true),
        check("cache", "readiness", false),
    ]}))
}

/// Runs what is due at `now`, answering each with `answer(check)`.
fn tick(m: &mut HealthMonitor, now: Time, answer: impl Fn(u32) -> Option<&'static str>) {
    for check in runs(&m.handle_timeout(now)) {
        m.on_result(now, check, answer(check)).unwrap();
    }
}

#[test]
fn startup_gates_the_other_checks_until_it_passes_then_never_runs_again() {
    let mut m = service();
    assert_eq!(runs(&m.handle_timeout(ms(0))), [0], "only startup runs");
    let r = m.report();
    assert!(!r.started);
    assert_eq!(
        (r.liveness, r.readiness),
        (HealthStatus::Healthy, HealthStatus::Unhealthy),
        "starting: alive, not ready"
    );
    assert!(r.checks[1].gated && r.checks[2].gated && !r.checks[0].gated);
    m.on_result(ms(10), 0, Some("still loading")).unwrap();
    assert!(m.handle_timeout(ms(50)).is_empty());
    assert_eq!(runs(&m.handle_timeout(ms(110))), [0]);
    m.on_result(ms(120), 0, None).unwrap();
    assert!(m.started());
    assert_eq!(runs(&m.handle_timeout(ms(120))), [1, 2, 3]);
    for c in 1..=3 {
        m.on_result(ms(125), c, None).unwrap();
    }
    assert_eq!(m.report().status, HealthStatus::Healthy);
    assert_eq!(
        runs(&m.handle_timeout(ms(1_000))),
        [1, 2, 3],
        "startup is done"
    );
    assert_eq!(m.report().checks[0].state, CheckState::Done);
}

#[test]
fn a_startup_check_that_keeps_failing_makes_liveness_unhealthy() {
    let mut m = service();
    tick(&mut m, ms(0), |_| Some("not yet"));
    let r = m.report();
    assert_eq!(r.liveness, HealthStatus::Unhealthy, "restart it");
    assert_eq!(r.status, HealthStatus::Unhealthy);
}

#[test]
fn critical_failures_make_unhealthy_and_non_critical_ones_degraded() {
    let mut m = service();
    tick(&mut m, ms(0), |_| None);
    tick(&mut m, ms(0), |_| None);
    assert_eq!(m.report().status, HealthStatus::Healthy);
    tick(&mut m, ms(100), |c| (c == 3).then_some("cache down"));
    let r = m.report();
    assert_eq!(
        (r.status, r.readiness, r.liveness),
        (
            HealthStatus::Degraded,
            HealthStatus::Degraded,
            HealthStatus::Healthy
        )
    );
    assert_eq!(r.checks[3].last_error.as_deref(), Some("cache down"));
    tick(&mut m, ms(200), |c| (c >= 2).then_some("down"));
    assert_eq!(m.report().readiness, HealthStatus::Unhealthy);
    tick(&mut m, ms(300), |c| (c == 1).then_some("stuck"));
    let r = m.report();
    assert_eq!(
        (r.liveness, r.readiness),
        (HealthStatus::Unhealthy, HealthStatus::Healthy)
    );
}

#[test]
fn a_check_slower_than_its_timeout_fails_whatever_it_says() {
    let mut m = service();
    tick(&mut m, ms(0), |_| None);
    m.handle_timeout(ms(0));
    // db answers "ok" 60 ms later: over its 50 ms timeout.
    m.on_result(ms(60), 2, None).unwrap();
    let r = m.report();
    assert_eq!(r.checks[2].state, CheckState::Failing);
    assert!(
        r.checks[2]
            .last_error
            .as_deref()
            .unwrap()
            .contains("timeout")
    );
    assert_eq!(r.checks[2].last_duration, Some(Duration::from_millis(60)));
    // loop never answers: at its deadline the run is cancelled and counts as failed.
    let a = m.handle_timeout(ms(50));
    assert!(a.contains(&HealthAction::Cancel { check: 1 }), "{a:?}");
    let r = m.report();
    assert_eq!(r.checks[1].last_error.as_deref(), Some("timed out"));
    assert_eq!(r.checks[1].last_duration, Some(Duration::from_millis(50)));
    // Its late answer is ignored.
    m.on_result(ms(70), 1, None).unwrap();
    assert_eq!(m.report().checks[1].state, CheckState::Failing);
}

#[test]
fn thresholds_need_consecutive_results() {
    let mut m = monitor(json!({"checks": [{"name": "db", "kind": "readiness",
        "periodMs": 10, "timeoutMs": 5, "failureThreshold": 3, "successThreshold": 2}]}));
    let mut at = 0;
    let mut step = |m: &mut HealthMonitor, fail: bool| {
        tick(m, ms(at), |_| fail.then_some("x"));
        at += 10;
        m.report().checks[0].state
    };
    assert_eq!(step(&mut m, false), CheckState::Passing);
    assert_eq!(step(&mut m, true), CheckState::Passing);
    assert_eq!(step(&mut m, true), CheckState::Passing);
    assert_eq!(
        step(&mut m, false),
        CheckState::Passing,
        "the run of failures broke"
    );
    for _ in 0..2 {
        step(&mut m, true);
    }
    assert_eq!(step(&mut m, true), CheckState::Failing, "three in a row");
    assert_eq!(
        step(&mut m, false),
        CheckState::Failing,
        "one success is not enough"
    );
    assert_eq!(step(&mut m, false), CheckState::Passing);
}

#[test]
fn readiness_starts_out_failing_until_its_critical_checks_pass() {
    let mut m = monitor(json!({"checks": [{"name": "db", "kind": "readiness"}]}));
    assert_eq!(m.report().readiness, HealthStatus::Unhealthy);
    tick(&mut m, ms(0), |_| None);
    assert_eq!(m.report().readiness, HealthStatus::Healthy);
    // A restart forgets.
    m.restart(ms(5));
    assert_eq!(m.report().readiness, HealthStatus::Unhealthy);
}

#[test]
fn bad_configs_and_arguments_name_their_field() {
    let err = |v: serde_json::Value| match from_value::<HealthConfig>("config", &v) {
        Ok(c) => HealthMonitor::new(&c, Time::ZERO).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err(json!({"checks": []})).contains("checks"));
    let e = err(
        json!({"checks": [{"name": "a", "kind": "liveness"}, {"name": "a", "kind": "startup"}]}),
    );
    assert!(e.contains("checks[1].name"), "{e}");
    let e = err(json!({"checks": [{"name": "a", "kind": "liveness", "timeoutMs": 0}]}));
    assert!(e.contains("timeoutMs"), "{e}");
    let e = err(json!({"checks": [{"name": "a", "kind": "sometimes"}]}));
    assert!(e.contains("kind") || e.contains("sometimes"), "{e}");
    let mut m = service();
    assert!(
        m.on_result(ms(0), 9, None)
            .unwrap_err()
            .to_string()
            .contains("check")
    );
    let long = "x".repeat(65);
    assert!(
        m.on_result(ms(0), 0, Some(&long))
            .unwrap_err()
            .to_string()
            .contains("error")
    );
}

proptest! {
    /// Over random results, the status is always the worst of the failing checks by their
    /// criticality, no gated check ever runs, and a run never passes past its timeout.
    #[test]
    fn the_status_is_the_worst_failing_check(
        results in proptest::collection::vec((0u64..80, any::<bool>()), 1..200),
        critical in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let check = |name: &str, kind: &str, critical: bool| {
            json!({"name": name, "kind": kind, "critical": critical, "periodMs": 100,
                   "timeoutMs": 50, "failureThreshold": 2})
        };
        let mut m = monitor(json!({"checks": [
            check("s", "startup", critical[0]),
            check("l", "liveness", critical[1]),
            check("r1", "readiness", critical[2]),
            check("r2", "readiness", critical[3]),
        ]}));
        let mut now = Time::ZERO;
        let mut results = results.into_iter();
        while let Some(at) = m.poll_timeout() {
            now = now.max(at);
            let started = m.started();
            let actions = m.handle_timeout(now);
            for a in actions {
                let HealthAction::Run { check, deadline } = a else { continue };
                prop_assert!(started || check == 0, "check {check} ran before startup");
                prop_assert_eq!(deadline, now.saturating_add(Duration::from_millis(50)));
                let Some((took, ok)) = results.next() else { return Ok(()) };
                let at = now.saturating_add(Duration::from_millis(took));
                if took < 50 || !ok {
                    m.on_result(at, check, (!ok).then_some("no"))?;
                } else {
                    m.on_result(at, check, None)?;
                    let r = m.report();
                    let c = &r.checks[check as usize];
                    prop_assert!(took < 50 || c.last_error.is_some(), "passed after {took} ms");
                }
            }
            let r = m.report();
            let worst = |kind: CheckKind| {
                r.checks.iter().filter(|c| c.kind == kind && c.state == CheckState::Failing)
                    .map(|c| if c.critical { HealthStatus::Unhealthy } else { HealthStatus::Degraded })
                    .max().unwrap_or(HealthStatus::Healthy)
            };
            if r.started {
                prop_assert_eq!(r.liveness, worst(CheckKind::Liveness));
                prop_assert!(r.readiness >= worst(CheckKind::Readiness));
            } else {
                prop_assert_eq!(r.readiness, HealthStatus::Unhealthy);
                prop_assert_eq!(r.liveness, worst(CheckKind::Startup));
            }
            prop_assert_eq!(r.status, r.liveness.max(r.readiness));
        }
    }
}
