//! The breaker's unit and property tests, and the named dangerous schedules.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn config(v: serde_json::Value) -> CircuitBreakerConfig {
    from_value("config", &v).unwrap()
}

fn breaker(v: serde_json::Value) -> CircuitBreaker {
    CircuitBreaker::new(config(v)).unwrap()
}

/// A breaker with a count window of 10, judging from 5 calls, 1 s open, 3 trial calls.
fn small() -> CircuitBreaker {
    breaker(json!({
        "slidingWindowSize": 10, "minimumNumberOfCalls": 5,
        "waitDurationInOpenStateMs": 1000, "permittedNumberOfCallsInHalfOpenState": 3,
        "slowCallDurationThresholdMs": 100, "slowCallRateThreshold": 50
    }))
}

fn call(b: &mut CircuitBreaker, at: Time, took: u64, fail: bool) -> Option<Permit> {
    let permit = b.try_acquire(at).permit()?;
    let end = at.saturating_add(Duration::from_millis(took));
    let result = if fail {
        CallResult::Failure {
            kind: ErrorKind::Unavailable,
        }
    } else {
        CallResult::Success
    };
    b.on_result(end, permit, result).unwrap();
    Some(permit)
}

fn open(b: &mut CircuitBreaker, at: Time) {
    for _ in 0..5 {
        call(b, at, 0, true).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn the_defaults_are_resilience4js() {
    let c = CircuitBreakerConfig::default();
    assert_eq!(c.failure_rate_threshold, 50.0);
    assert_eq!(c.slow_call_rate_threshold, 100.0);
    assert_eq!(c.slow_call_duration_threshold_ms.get(), 60_000.0);
    assert_eq!(c.sliding_window_type, SlidingWindowType::CountBased);
    assert_eq!(c.sliding_window_size.get(), 100);
    assert_eq!(c.minimum_number_of_calls.get(), 100);
    assert_eq!(c.permitted_number_of_calls_in_half_open_state.get(), 10);
    assert_eq!(c.wait_duration_in_open_state_ms.get(), 60_000.0);
    assert_eq!(c.max_wait_duration_in_half_open_state_ms.get(), 0.0);
    assert!(!c.automatic_transition_from_open_to_half_open_enabled);
    // Parsed from an empty object, too.
    assert_eq!(config(json!({})), c);
}

#[test]
fn closed_opens_when_the_failure_rate_reaches_the_threshold() {
    let mut b = small();
    // Below the minimum number of calls, even 100 % failures do not count.
    for _ in 0..4 {
        call(&mut b, ms(0), 0, true);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // 4 failures, then 4 successes: 50 % of 8 reaches the threshold at the fifth call?
    // No: the fifth call is a success, 4/5 = 80 % ≥ 50 %, so it opens right there.
    call(&mut b, ms(0), 0, false);
    assert_eq!(b.state(), BreakerState::Open);
    let events = b.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].reason,
        TransitionReason::ThresholdsExceeded {
            failure_rate: 80.0,
            slow_call_rate: 0.0
        }
    );
}

#[test]
fn the_threshold_is_reached_at_equality_and_not_below() {
    let mut b = small();
    for fail in [false, false, false, true, true] {
        call(&mut b, ms(0), 0, fail);
    }
    assert_eq!(b.state(), BreakerState::Closed, "40 %");
    call(&mut b, ms(0), 0, true);
    assert_eq!(b.state(), BreakerState::Open, "3 of 6 is exactly 50 %");
}

#[test]
fn a_count_window_forgets_its_oldest_call() {
    let mut b = small();
    for fail in [
        true, true, true, true, false, false, false, false, false, false,
    ] {
        call(&mut b, ms(0), 0, fail);
        if b.state() == BreakerState::Open {
            break;
        }
    }
    // The first 4 failures opened it at the fifth call (80 %): build it again with
    // successes first so the failures arrive into a long window.
    let mut b = small();
    for _ in 0..10 {
        call(&mut b, ms(0), 0, false);
    }
    for i in 0..4 {
        call(&mut b, ms(0), 0, true);
        assert_eq!(b.state(), BreakerState::Closed, "{} of 10", i + 1);
    }
    call(&mut b, ms(0), 0, true);
    assert_eq!(b.state(), BreakerState::Open, "5 of the last 10");
}

#[test]
fn the_minimum_is_capped_by_a_count_windows_size_but_not_a_time_windows() {
    let b = breaker(json!({"slidingWindowSize": 10, "minimumNumberOfCalls": 50}));
    assert_eq!(b.minimum_calls(), 10);
    let b = breaker(json!({"slidingWindowSize": 10, "minimumNumberOfCalls": 50,
        "slidingWindowType": "timeBased"}));
    assert_eq!(b.minimum_calls(), 50);
}

#[test]
fn a_call_is_slow_only_when_longer_than_the_threshold() {
    let mut b = small();
    for _ in 0..5 {
        call(&mut b, ms(0), 100, false);
    }
    assert_eq!(b.state(), BreakerState::Closed, "100 ms is not over 100 ms");
    assert_eq!(b.counts().slow, 0);
    let p = b.try_acquire(ms(100)).permit().unwrap();
    b.on_success(Time(200_001), p).unwrap();
    assert_eq!(b.counts().slow, 1);
    for i in 0..4 {
        call(&mut b, ms(1_000 * (i + 1)), 101, false);
    }
    assert_eq!(b.state(), BreakerState::Open, "5 slow of 10");
}

#[test]
fn open_refuses_and_says_when_it_will_probe() {
    let mut b = small();
    open(&mut b, ms(10));
    match b.try_acquire(ms(500)) {
        Admission::Rejected { state, retry_after } => {
            assert_eq!(state, BreakerState::Open);
            // Probing is allowed strictly after 10 + 1000 ms.
            assert_eq!(retry_after, Some(Duration(510_001)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.stats().not_permitted, 1);
}

#[test]
fn open_holds_for_its_whole_wait_and_leaves_just_after() {
    let mut b = small();
    open(&mut b, ms(0));
    assert!(
        b.try_acquire(ms(1_000)).permit().is_none(),
        "at the wait's end"
    );
    assert_eq!(b.state(), BreakerState::Open);
    assert!(b.try_acquire(Time(1_000_001)).permit().is_some());
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

/// A dangerous schedule: the caller's clock stops (a paused VM, a test clock never
/// advanced). The breaker must not drift out of open on calls alone.
#[test]
fn clock_not_moving_during_open_keeps_it_open() {
    let mut b = small();
    open(&mut b, ms(5));
    for _ in 0..10_000 {
        assert!(b.try_acquire(ms(5)).permit().is_none());
        b.handle_timeout(ms(5));
    }
    assert_eq!(b.state(), BreakerState::Open);
    // A clock that goes backwards is taken as standing still.
    assert!(b.try_acquire(ms(0)).permit().is_none());
    assert_eq!(b.stats().not_permitted, 10_001);
}

#[test]
fn half_open_permits_exactly_its_trials_then_closes_on_success() {
    let mut b = small();
    open(&mut b, ms(0));
    let t = ms(2_000);
    let permits: Vec<Permit> = (0..3).map(|_| b.try_acquire(t).permit().unwrap()).collect();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.try_acquire(t).permit().is_none(), "a fourth trial");
    assert_eq!(b.half_open_calls(), Some((0, 3)));
    for p in &permits[..2] {
        b.on_success(t, *p).unwrap();
    }
    assert_eq!(b.state(), BreakerState::HalfOpen, "one trial still out");
    b.on_success(t, permits[2]).unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.counts(), WindowCounts::default(), "a fresh window");
}

#[test]
fn half_open_reopens_when_the_trials_fail() {
    let mut b = small();
    open(&mut b, ms(0));
    let t = ms(2_000);
    let ps: Vec<Permit> = (0..3).map(|_| b.try_acquire(t).permit().unwrap()).collect();
    b.on_success(t, ps[0]).unwrap();
    b.on_error(t, ps[1], ErrorKind::Timeout).unwrap();
    b.on_error(t, ps[2], ErrorKind::Timeout).unwrap();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.open_until(), Some(ms(3_000)), "a new full wait");
}

/// A dangerous schedule: calls permitted while closed are still running when the breaker
/// opens and then half-opens; they finish during half-open, after the trials started, and
/// the trials themselves finish in reverse order. Only the trials decide the probe.
#[test]
fn half_open_with_concurrent_calls_finishing_out_of_order() {
    let mut b = small();
    let slow_closed: Vec<Permit> = (0..3)
        .map(|_| b.try_acquire(ms(0)).permit().unwrap())
        .collect();
    open(&mut b, ms(1));
    let t = ms(1_500);
    let trials: Vec<Permit> = (0..3).map(|_| b.try_acquire(t).permit().unwrap()).collect();
    // The calls from closed fail now, during half-open: stale, so not trials.
    for p in &slow_closed {
        b.on_error(t, *p, ErrorKind::Timeout).unwrap();
    }
    assert_eq!(b.stats().stale_results, 3);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.counts().calls, 0);
    // Still no fourth trial, though three results came in.
    assert!(b.try_acquire(t).permit().is_none());
    for p in trials.iter().rev() {
        b.on_success(t, *p).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let reasons: Vec<BreakerState> = b.take_events().iter().map(|e| e.to).collect();
    assert_eq!(
        reasons,
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
}

/// A dangerous schedule: a burst of slow calls at a time window's bucket boundary. The
/// window covers whole seconds; when the clock enters a new second the oldest second's
/// bucket leaves at once, so one more slow call can flip the verdict.
#[test]
fn a_burst_of_slow_calls_at_the_window_boundary() {
    let mut b = breaker(json!({
        "slidingWindowType": "timeBased", "slidingWindowSize": 10,
        "minimumNumberOfCalls": 10, "slowCallRateThreshold": 60,
        "slowCallDurationThresholdMs": 100
    }));
    for _ in 0..10 {
        call(&mut b, ms(100), 0, false);
    }
    // Ten slow calls that finish in the window's last microsecond: 10 of 20 are slow.
    let burst: Vec<Permit> = (0..10)
        .map(|_| b.try_acquire(Time(9_000_000)).permit().unwrap())
        .collect();
    for p in burst {
        b.on_success(Time(9_999_999), p).unwrap();
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.counts().calls, 20);
    // One more slow call in second 10: second 0 (the fast calls) leaves the window.
    let p = b.try_acquire(Time(9_999_999)).permit().unwrap();
    b.on_success(Time(10_100_000), p).unwrap();
    assert_eq!(b.state(), BreakerState::Open, "{:?}", b.counts());
    let events = b.take_events();
    assert_eq!(
        events[0].reason,
        TransitionReason::ThresholdsExceeded {
            failure_rate: 0.0,
            slow_call_rate: 100.0
        }
    );
}

#[test]
fn a_time_window_empties_after_a_quiet_spell() {
    let mut b = breaker(json!({
        "slidingWindowType": "timeBased", "slidingWindowSize": 3,
        "minimumNumberOfCalls": 4
    }));
    for s in 0..3 {
        call(&mut b, ms(s * 1_000), 0, s == 0);
    }
    assert_eq!(b.counts().calls, 3);
    call(&mut b, ms(3_000), 0, false);
    assert_eq!(
        b.counts(),
        WindowCounts {
            calls: 3,
            failures: 0,
            slow: 0
        }
    );
    // Years later: one call, alone in the window.
    call(&mut b, Time(u64::MAX / 2), 0, true);
    assert_eq!(
        b.counts(),
        WindowCounts {
            calls: 1,
            failures: 1,
            slow: 0
        }
    );
}

#[test]
fn ignored_errors_count_for_nothing_and_free_a_trial() {
    let mut b = breaker(json!({
        "slidingWindowSize": 4, "minimumNumberOfCalls": 2,
        "permittedNumberOfCallsInHalfOpenState": 1, "waitDurationInOpenStateMs": 1,
        "ignoredErrors": ["notFound"]
    }));
    for _ in 0..5 {
        let p = b.try_acquire(ms(0)).permit().unwrap();
        b.on_error(ms(0), p, ErrorKind::NotFound).unwrap();
    }
    assert_eq!(b.counts().calls, 0);
    assert_eq!(b.stats().ignored, 5);
    call(&mut b, ms(0), 0, true);
    call(&mut b, ms(0), 0, true);
    assert_eq!(b.state(), BreakerState::Open);
    let p = b.try_acquire(ms(5)).permit().unwrap();
    assert!(b.try_acquire(ms(5)).permit().is_none());
    b.on_error(ms(5), p, ErrorKind::NotFound).unwrap();
    assert_eq!(b.half_open_calls(), Some((1, 0)), "the trial slot is back");
    assert_eq!(b.stats().released, 0);
}

#[test]
fn a_permit_reported_twice_or_never_issued_is_an_error() {
    let mut b = small();
    open(&mut b, ms(0));
    let p = b.try_acquire(ms(2_000)).permit().unwrap();
    b.on_error(ms(2_000), p, ErrorKind::Internal).unwrap();
    let e = b.on_success(ms(2_000), p).unwrap_err().to_string();
    assert!(e.contains("`permit`") && e.contains("already"), "{e}");
    let forged = Permit {
        id: 999,
        epoch: 0,
        acquired_at: ms(0),
    };
    let e = b.on_success(ms(2_000), forged).unwrap_err().to_string();
    assert!(e.contains("not issued"), "{e}");
    let e = b.release(forged).unwrap_err().to_string();
    assert!(e.contains("not issued"), "{e}");
}

#[test]
fn a_released_trial_can_be_taken_again() {
    let mut b = small();
    open(&mut b, ms(0));
    let ps: Vec<Permit> = (0..3)
        .map(|_| b.try_acquire(ms(2_000)).permit().unwrap())
        .collect();
    b.release(ps[0]).unwrap();
    assert!(b.release(ps[0]).is_err());
    assert!(b.try_acquire(ms(2_000)).permit().is_some());
    assert!(b.try_acquire(ms(2_000)).permit().is_none());
}

#[test]
fn half_open_that_lasts_too_long_reopens() {
    let mut b = breaker(json!({
        "slidingWindowSize": 2, "minimumNumberOfCalls": 2,
        "waitDurationInOpenStateMs": 100, "maxWaitDurationInHalfOpenStateMs": 50
    }));
    call(&mut b, ms(0), 0, true);
    call(&mut b, ms(0), 0, true);
    let _stuck = b.try_acquire(ms(101)).permit().unwrap();
    assert_eq!(b.poll_timeout(), Some(ms(151)));
    b.handle_timeout(ms(150));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.handle_timeout(ms(151));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.take_events().last().unwrap().reason,
        TransitionReason::HalfOpenTimedOut
    );
}

#[test]
fn the_automatic_transition_needs_only_the_timer() {
    let mut b = breaker(json!({
        "slidingWindowSize": 2, "minimumNumberOfCalls": 2,
        "waitDurationInOpenStateMs": 100,
        "automaticTransitionFromOpenToHalfOpenEnabled": true
    }));
    call(&mut b, ms(0), 0, true);
    call(&mut b, ms(0), 0, true);
    assert_eq!(b.poll_timeout(), Some(Time(100_001)));
    b.handle_timeout(ms(100));
    assert_eq!(b.state(), BreakerState::Open);
    b.handle_timeout(Time(100_001));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // Without the option the timer does nothing and polls nothing.
    let mut b = breaker(json!({"slidingWindowSize": 2, "minimumNumberOfCalls": 2,
        "waitDurationInOpenStateMs": 100}));
    call(&mut b, ms(0), 0, true);
    call(&mut b, ms(0), 0, true);
    assert_eq!(b.poll_timeout(), None);
    b.handle_timeout(ms(500));
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn unread_events_are_bounded() {
    let mut b = breaker(json!({
        "slidingWindowSize": 1, "minimumNumberOfCalls": 1,
        "permittedNumberOfCallsInHalfOpenState": 1, "waitDurationInOpenStateMs": 1
    }));
    let mut t = 0;
    for _ in 0..MAX_PENDING_EVENTS {
        call(&mut b, Time(t), 0, true);
        t += 2_000;
    }
    assert_eq!(b.stats().transitions as usize, 2 * MAX_PENDING_EVENTS - 1);
    assert_eq!(b.take_events().len(), MAX_PENDING_EVENTS);
    assert_eq!(b.stats().dropped_events as usize, MAX_PENDING_EVENTS - 1);
}

#[test]
fn bad_configs_name_their_field() {
    for (v, field) in [
        (json!({"failureRateThreshold": 0}), "failureRateThreshold"),
        (
            json!({"failureRateThreshold": 100.5}),
            "failureRateThreshold",
        ),
        (
            json!({"slowCallRateThreshold": -1}),
            "slowCallRateThreshold",
        ),
    ] {
        let e = CircuitBreaker::new(config(v)).unwrap_err().to_string();
        assert!(e.contains(&format!("`{field}`")), "{e}");
    }
    let c = CircuitBreakerConfig {
        failure_rate_threshold: f64::NAN,
        ..Default::default()
    };
    assert!(CircuitBreaker::new(c).is_err());
    for (v, field) in [
        (json!({"slidingWindowSize": 0}), "config.slidingWindowSize"),
        (
            json!({"minimumNumberOfCalls": 10001}),
            "config.minimumNumberOfCalls",
        ),
        (
            json!({"waitDurationInOpenStateMs": 0}),
            "config.waitDurationInOpenStateMs",
        ),
        (
            json!({"permittedNumberOfCallsInHalfOpenState": 0}),
            "config.permittedNumberOfCallsInHalfOpenState",
        ),
        (
            json!({"slidingWindowType": "sessionBased"}),
            "config.slidingWindowType",
        ),
        (json!({"ignoredErrors": ["teapot"]}), "config.ignoredErrors"),
        (json!({"bogus": 1}), "config.bogus"),
    ] {
        let e = from_value::<CircuitBreakerConfig>("config", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
}

/// What a random schedule does next.
#[derive(Debug, Clone)]
enum Op {
    /// Move the clock forward by this many ms (0: it stays).
    Advance(u64),
    Acquire,
    /// Report the outstanding call at this index (mod their number): failed?, how long.
    Report(usize, bool, u64),
    Release(usize),
    Timer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => prop_oneof![Just(0u64), 0..50u64, 900..1_200u64].prop_map(Op::Advance),
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), any::<bool>(), 0..200u64).prop_map(|(i, f, d)| Op::Report(i, f, d)),
        1 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::Timer),
    ]
}

proptest! {
    /// Over random schedules (concurrent calls finishing in any order, a clock that often
    /// stands still, timers): no half-open state ever permits more than its trials, and
    /// the breaker never leaves open before its wait has passed.
    #[test]
    fn half_open_never_overadmits_and_open_never_ends_early(
        ops in prop::collection::vec(op(), 1..400),
        time_based in any::<bool>(),
        automatic in any::<bool>(),
    ) {
        let mut b = breaker(json!({
            "slidingWindowType": if time_based { "timeBased" } else { "countBased" },
            "slidingWindowSize": 4, "minimumNumberOfCalls": 3,
            "permittedNumberOfCallsInHalfOpenState": 2, "waitDurationInOpenStateMs": 1000,
            "slowCallDurationThresholdMs": 100, "slowCallRateThreshold": 50,
            "automaticTransitionFromOpenToHalfOpenEnabled": automatic
        }));
        let mut now = Time::ZERO;
        let mut outstanding: Vec<Permit> = Vec::new();
        let mut opened_at = None;
        // Trial calls admitted (and not given back) per half-open epoch.
        let mut trials: std::collections::BTreeMap<u64, u32> = Default::default();
        for op in ops {
            match op {
                Op::Advance(d) => now = now.saturating_add(Duration::from_millis(d)),
                Op::Acquire => {
                    if let Some(p) = b.try_acquire(now).permit() {
                        outstanding.push(p);
                        if b.state() == BreakerState::HalfOpen {
                            *trials.entry(p.epoch).or_default() += 1;
                        }
                    }
                }
                Op::Report(i, failed, took) if !outstanding.is_empty() => {
                    let p = outstanding.remove(i % outstanding.len());
                    let end = now.max(p.acquired_at).saturating_add(Duration::from_millis(took));
                    now = end;
                    let result = if failed {
                        CallResult::Failure { kind: ErrorKind::Internal }
                    } else {
                        CallResult::Success
                    };
                    b.on_result(end, p, result).unwrap();
                }
                Op::Release(i) if !outstanding.is_empty() => {
                    let p = outstanding.remove(i % outstanding.len());
                    b.release(p).unwrap();
                    if b.state() == BreakerState::HalfOpen
                        && p.epoch == b.epoch()
                        && let Some(n) = trials.get_mut(&p.epoch)
                    {
                        *n -= 1;
                    }
                }
                Op::Timer => b.handle_timeout(now),
                _ => {}
            }
            for e in b.take_events() {
                if e.to == BreakerState::Open {
                    opened_at = Some(e.at);
                }
                if e.from == BreakerState::Open {
                    let since = opened_at.unwrap();
                    prop_assert!(e.at > since.saturating_add(Duration::from_millis(1_000)),
                        "left open at {:?}, opened at {since:?}", e.at);
                }
            }
            prop_assert!(trials.values().all(|n| *n <= 2), "{trials:?}");
            if let Some((left, out)) = b.half_open_calls() {
                prop_assert!(left as usize + out <= 2);
            }
        }
    }
}
