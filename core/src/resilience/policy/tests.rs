//! Policy pipeline tests: each strategy in the pipeline, the order of retry and breaker
//! (and of timeout and retry) on one failure stream, config errors, and a property test
//! that every call ends once, within its attempt bound, leaving nothing behind.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
// proptest's prelude has a `Strategy` too.
use super::Strategy;
use crate::lab::json::from_value;
use crate::resilience::circuit_breaker::BreakerState;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn pipeline(strategies: Value) -> Pipeline {
    Pipeline::new(&from_value("config", &json!({ "strategies": strategies })).unwrap()).unwrap()
}

/// Retry: 3 attempts, 10 ms apart, on `unavailable` and `timeout`.
fn retry() -> Value {
    json!({"type": "retry", "policy": {"maxAttempts": 3, "backoff": {"initialBackoffMs": 10,
        "maxBackoffMs": 10, "backoffMultiplier": 1, "jitter": "none"},
        "retryOn": ["unavailable", "timeout"]}})
}

/// A breaker that judges the last 20 results once it has 10, opens at 50 % failures
/// for 500 ms, and probes with 3 trial calls.
fn breaker() -> Value {
    json!({"type": "circuitBreaker", "config": {"slidingWindowSize": 20,
        "minimumNumberOfCalls": 10, "waitDurationInOpenStateMs": 500,
        "permittedNumberOfCallsInHalfOpenState": 3}})
}

/// What a run saw.
#[derive(Debug, Default)]
struct Run {
    /// By call: its outcome and its attempts on the dependency.
    done: BTreeMap<u64, (Outcome, u32, Duration)>,
    /// When each attempt went to the dependency.
    sent: Vec<Time>,
    fallback_sent: Vec<(u32, u32)>,
    cancelled: u64,
    /// The breaker at layer `breaker_at` was seen open (sampled at each event).
    saw_open: bool,
}

/// Drives `p` with a call at each of `arrivals`; an attempt to the dependency sent at
/// `t` answers as `dependency(t, n)` says (n: the attempt's rank among all sent) and a
/// fallback source answers after 1 ms.
fn run(
    p: &mut Pipeline,
    arrivals: &[Time],
    mut dependency: impl FnMut(Time, u64) -> (Duration, Option<ErrorKind>),
) -> Run {
    let mut rng = SimRng::new(7);
    let mut r = Run::default();
    // (time, seq) → (attempt, error)
    let mut answers: BTreeMap<(Time, u64), (u64, Option<ErrorKind>)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut next_arrival = 0usize;
    let mut apply = |actions: Vec<PolicyAction>,
                     now: Time,
                     r: &mut Run,
                     answers: &mut BTreeMap<(Time, u64), (u64, Option<ErrorKind>)>,
                     seq: &mut u64| {
        for a in actions {
            match a {
                PolicyAction::Send {
                    attempt, target, ..
                } => {
                    let (latency, error) = match target {
                        Target::Dependency => {
                            r.sent.push(now);
                            dependency(now, r.sent.len() as u64 - 1)
                        }
                        Target::Fallback { strategy, level } => {
                            r.fallback_sent.push((strategy, level));
                            (Duration::from_millis(1), None)
                        }
                    };
                    answers.insert((now.saturating_add(latency), *seq), (attempt, error));
                    *seq += 1;
                }
                PolicyAction::Cancel { .. } => r.cancelled += 1,
                PolicyAction::Done {
                    call,
                    outcome,
                    attempts,
                    latency,
                } => {
                    assert!(
                        r.done.insert(call, (outcome, attempts, latency)).is_none(),
                        "call {call} done twice"
                    );
                }
            }
        }
    };
    for _ in 0..1_000_000 {
        let arrival = arrivals.get(next_arrival).copied();
        let answer = answers.keys().next().map(|k| k.0);
        let timer = p.poll_timeout();
        let Some(now) = [arrival, answer, timer].into_iter().flatten().min() else {
            break;
        };
        if arrival == Some(now) {
            next_arrival += 1;
            let (_, actions) = p.start(now, &mut rng);
            apply(actions, now, &mut r, &mut answers, &mut seq);
        } else if answer == Some(now) {
            let Some((_, (attempt, error))) = answers.pop_first() else {
                break;
            };
            let actions = p.on_result(now, attempt, error, &mut rng).unwrap();
            apply(actions, now, &mut r, &mut answers, &mut seq);
        } else {
            let actions = p.handle_timeout(now, &mut rng);
            apply(actions, now, &mut r, &mut answers, &mut seq);
        }
        r.saw_open |= p
            .strategies()
            .iter()
            .any(|s| matches!(s, Strategy::CircuitBreaker(b) if b.state() == BreakerState::Open));
    }
    r
}

fn every(step_ms: u64, until_ms: u64) -> Vec<Time> {
    (0..until_ms / step_ms).map(|i| ms(i * step_ms)).collect()
}

fn succeeded(r: &Run) -> usize {
    r.done
        .values()
        .filter(|(o, ..)| *o == Outcome::Succeeded)
        .count()
}

/// Transient failures a retry mends: with a call every 10 ms, each call's first attempt
/// (sent on a multiple of 10 ms) fails and its retry (15 ms later) succeeds. Half the
/// attempts fail; no call need fail.
fn transient(t: Time, _: u64) -> (Duration, Option<ErrorKind>) {
    let first = t.0.is_multiple_of(10_000);
    (
        Duration::from_millis(5),
        first.then_some(ErrorKind::Unavailable),
    )
}

/// The dependency is down from 1 s to 3 s, fine otherwise.
fn outage(t: Time, _: u64) -> (Duration, Option<ErrorKind>) {
    let down = (ms(1_000)..ms(3_000)).contains(&t);
    (
        Duration::from_millis(5),
        down.then_some(ErrorKind::Unavailable),
    )
}

#[test]
fn transient_failures_trip_a_breaker_inside_the_retry_but_not_one_outside_it() {
    let calls = every(10, 4_000);
    // Retry outside the breaker: the breaker sees every attempt, half fail: it opens,
    // and then refuses calls the retries would have mended.
    let mut outside = pipeline(json!([retry(), breaker()]));
    let o = run(&mut outside, &calls, transient);
    // Retry inside: one result per call reaches the breaker, and the retry mends every
    // call (the second attempt always succeeds): it never opens.
    let mut inside = pipeline(json!([breaker(), retry()]));
    let i = run(&mut inside, &calls, transient);
    assert_eq!(o.done.len(), calls.len());
    assert_eq!(i.done.len(), calls.len());
    assert!(o.saw_open, "outside: the breaker opened");
    assert!(!i.saw_open, "inside: it never did");
    assert_eq!(succeeded(&i), calls.len(), "inside: every call mended");
    assert!(
        succeeded(&o) < calls.len() * 9 / 10,
        "outside: the open breaker failed calls: {} of {}",
        succeeded(&o),
        calls.len()
    );
    let refused = o
        .done
        .values()
        .filter(|(out, ..)| matches!(out, Outcome::Failed { by: Some(1), .. }))
        .count();
    assert!(refused > 0, "failures raised by the breaker (layer 1)");
}

#[test]
fn in_an_outage_a_breaker_inside_the_retry_keeps_the_retries_off_the_dependency() {
    let calls = every(10, 4_000);
    let during = |r: &Run| {
        r.sent
            .iter()
            .filter(|t| (ms(1_000)..ms(3_000)).contains(*t))
            .count()
    };
    let mut outside = pipeline(json!([retry(), breaker()]));
    let o = run(&mut outside, &calls, outage);
    let mut inside = pipeline(json!([breaker(), retry()]));
    let i = run(&mut inside, &calls, outage);
    assert!(o.saw_open && i.saw_open, "both open in a 2 s outage");
    // 200 calls in the outage. Inside, each call the breaker lets through makes all 3
    // attempts; outside, the open breaker refuses retries as well as first attempts.
    let (do_, di) = (during(&o), during(&i));
    assert!(
        do_ * 2 < di,
        "attempts in the outage: outside {do_}, inside {di}"
    );
    // Both recover once the dependency is back.
    for r in [&o, &i] {
        let late: Vec<_> = r.done.range(370..).map(|(_, v)| v.0).collect();
        assert!(late.iter().all(|o| *o == Outcome::Succeeded), "{late:?}");
    }
}

#[test]
fn a_timeout_outside_the_retry_bounds_the_call_inside_it_each_attempt() {
    let slow = |_: Time, _: u64| (Duration::from_millis(200), None);
    let timeout = json!({"type": "timeout", "timeoutMs": 100});
    // Per attempt: three attempts each cut at 100 ms, 10 ms apart.
    let mut per_attempt = pipeline(json!([retry(), timeout.clone()]));
    let a = run(&mut per_attempt, &[ms(0)], slow);
    assert_eq!(
        a.done[&0],
        (
            Outcome::Failed {
                error: ErrorKind::Timeout,
                by: Some(1)
            },
            3,
            Duration::from_millis(320)
        )
    );
    assert_eq!(a.cancelled, 3);
    // Overall: the one attempt is cut at 100 ms with the retry's pending work.
    let mut overall = pipeline(json!([timeout, retry()]));
    let b = run(&mut overall, &[ms(0)], slow);
    assert_eq!(
        b.done[&0],
        (
            Outcome::Failed {
                error: ErrorKind::Timeout,
                by: Some(0)
            },
            1,
            Duration::from_millis(100)
        )
    );
    assert_eq!(b.cancelled, 1);
    assert_eq!(overall.attempts_in_flight(), 0);
}

#[test]
fn a_full_bulkhead_fails_fast_and_its_queue_waits() {
    let bulkhead = json!({"type": "bulkhead", "config": {"maxConcurrentCalls": 2,
        "maxQueue": 1, "maxWaitMs": 50}});
    let mut p = pipeline(json!([bulkhead]));
    let slow = |_: Time, _: u64| (Duration::from_millis(30), None);
    // Four at once: two run, one waits (and runs at 30 ms), one is refused.
    let r = run(&mut p, &[ms(0), ms(0), ms(0), ms(0)], slow);
    assert_eq!(r.sent, [ms(0), ms(0), ms(30)]);
    assert_eq!(
        r.done[&3].0,
        Outcome::Failed {
            error: ErrorKind::Overloaded,
            by: Some(0)
        }
    );
    assert_eq!(
        r.done[&2],
        (Outcome::Succeeded, 1, Duration::from_millis(60))
    );
    let Strategy::Bulkhead(b) = &p.strategies()[0] else {
        unreachable!()
    };
    assert_eq!((b.in_use(), b.queue_len()), (0, 0));
}

#[test]
fn hedging_in_the_pipeline_takes_the_first_success_and_cancels_the_rest() {
    let hedging = json!({"type": "hedging", "config": {"maxAttempts": 3,
        "delay": {"type": "fixed", "ms": 20}}});
    let mut p = pipeline(json!([hedging]));
    // The first attempt takes 100 ms, the hedge at 20 ms takes 10: it wins at 30 ms.
    let r = run(&mut p, &[ms(0)], |_, n| {
        (Duration::from_millis(if n == 0 { 100 } else { 10 }), None)
    });
    assert_eq!(r.sent, [ms(0), ms(20)]);
    assert_eq!(
        r.done[&0],
        (Outcome::Succeeded, 2, Duration::from_millis(30))
    );
    assert_eq!(r.cancelled, 1);
}

#[test]
fn a_fallback_outside_asks_its_other_levels_then_its_default() {
    let fallback = |levels: Value| json!({"type": "fallback", "config": {"levels": levels, "staticDefault": true}});
    let down = |_: Time, _: u64| (Duration::from_millis(5), Some(ErrorKind::Unavailable));
    // Level 0 is the inner pipeline (a retry of the dependency): it fails, level 1 (a
    // fallback source) answers.
    let mut p = pipeline(json!([
        fallback(json!([{"name": "live", "timeoutMs": 0}, {"name": "cache", "timeoutMs": 0}])),
        retry()
    ]));
    let r = run(&mut p, &[ms(0)], down);
    assert_eq!(
        r.done[&0].0,
        Outcome::FellBack {
            strategy: 0,
            level: Some(1)
        }
    );
    assert_eq!(
        r.done[&0].1, 3,
        "the retry's three attempts on the dependency"
    );
    assert_eq!(r.fallback_sent, [(0, 1)]);
    // One level only: the static default answers.
    let mut p = pipeline(json!([fallback(json!([{"name": "live", "timeoutMs": 0}]))]));
    let r = run(&mut p, &[ms(0)], down);
    assert_eq!(
        r.done[&0].0,
        Outcome::FellBack {
            strategy: 0,
            level: None
        }
    );
    // A level's timeout cancels the inner pipeline.
    let mut p = pipeline(json!([
        fallback(json!([{"name": "live", "timeoutMs": 50}])),
        retry()
    ]));
    let r = run(&mut p, &[ms(0)], |_, _| (Duration::from_millis(500), None));
    assert_eq!(r.done[&0].2, Duration::from_millis(50));
    assert_eq!(r.cancelled, 1);
}

#[test]
fn bad_configs_name_their_field() {
    let err = |v: Value| match from_value::<PolicyConfig>("config", &v) {
        Ok(c) => Pipeline::new(&c).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    let e = err(json!({"strategies": []}));
    assert!(e.contains("strategies"), "{e}");
    let e = err(
        json!({"strategies": [{"type": "retry"}, {"type": "circuitBreaker",
        "config": {"failureRateThreshold": 0}}]}),
    );
    assert!(
        e.contains("strategies[1].config.failureRateThreshold"),
        "{e}"
    );
    let e = err(
        json!({"strategies": [{"type": "retry", "policy": {"backoff":
        {"backoffMultiplier": 0.5}}}]}),
    );
    assert!(e.contains("strategies[0].policy.backoff"), "{e}");
    let e = err(json!({"strategies": [{"type": "timeout", "timeoutMs": 0}]}));
    assert!(e.contains("timeoutMs"), "{e}");
    let e = err(json!({"strategies": [{"type": "fallback", "config": {"levels": []}}]}));
    assert!(e.contains("strategies[0].config.levels"), "{e}");
    let mut p = pipeline(json!([retry()]));
    let mut rng = SimRng::new(1);
    let e = p
        .on_result(ms(0), 99, None, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("attempt"), "{e}");
}

fn strategy(kind: u8) -> Value {
    match kind % 6 {
        0 => json!({"type": "timeout", "timeoutMs": 40}),
        1 => retry(),
        2 => breaker(),
        3 => json!({"type": "bulkhead", "config": {"maxConcurrentCalls": 3, "maxQueue": 2,
            "maxWaitMs": 20}}),
        4 => json!({"type": "hedging", "config": {"maxAttempts": 2,
            "delay": {"type": "fixed", "ms": 15}}}),
        _ => json!({"type": "fallback", "config": {"levels": [{"name": "a", "timeoutMs": 60},
            {"name": "b", "timeoutMs": 0}], "staticDefault": false}}),
    }
}

proptest! {
    /// Any order of strategies, any stream: every call ends exactly once, within the
    /// pipeline's attempt bound, and nothing is left running, holding a slot or waiting.
    #[test]
    fn every_call_ends_once_within_its_attempt_bound_and_leaves_nothing_behind(
        kinds in proptest::collection::vec(0u8..6, 1..5),
        stream in proptest::collection::vec((0u64..80, 0u8..4), 1..64),
        gaps in proptest::collection::vec(0u64..30, 1..40),
    ) {
        let mut p = pipeline(Value::Array(kinds.iter().map(|k| strategy(*k)).collect()));
        let bound = p.max_attempts_per_call();
        let mut t = 0;
        let arrivals: Vec<Time> = gaps.iter().map(|g| { t += g; ms(t) }).collect();
        let r = run(&mut p, &arrivals, |_, n| {
            let (latency, e) = stream[(n as usize) % stream.len()];
            let error = match e {
                0 | 1 => None,
                2 => Some(ErrorKind::Unavailable),
                _ => Some(ErrorKind::Internal),
            };
            (Duration::from_millis(latency), error)
        });
        prop_assert_eq!(r.done.len(), arrivals.len());
        for (call, (_, attempts, _)) in &r.done {
            prop_assert!(u64::from(*attempts) <= bound, "call {} made {} > {}", call, attempts, bound);
        }
        prop_assert_eq!(p.open_calls(), 0);
        prop_assert_eq!(p.attempts_in_flight(), 0);
        prop_assert!(p.nodes.is_empty(), "{:?}", p.nodes);
        for s in p.strategies() {
            if let Strategy::Bulkhead(b) = s {
                prop_assert_eq!((b.in_use(), b.queue_len()), (0, 0));
            }
        }
        let s = p.stats();
        prop_assert_eq!(s.succeeded + s.fell_back + s.failed, arrivals.len() as u64);
    }
}

#[test]
fn cancelling_a_call_cancels_its_attempts_and_frees_its_slot_for_a_waiter() {
    // One slot, one waiter: call 0 holds the slot, call 1 waits for it.
    let mut p = pipeline(json!([
        retry(),
        breaker(),
        {"type": "bulkhead", "config": {"maxConcurrentCalls": 1, "maxQueue": 1, "maxWaitMs": 1000}},
        {"type": "timeout", "timeoutMs": 100},
    ]));
    let mut rng = SimRng::new(1);
    let (c0, a0) = p.start(ms(0), &mut rng);
    let sent0 = match a0.as_slice() {
        [PolicyAction::Send { attempt, .. }] => *attempt,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.attempt_deadline(sent0), Some(Deadline(ms(100))));
    assert_eq!(p.call_of(sent0), Some(c0));
    let (c1, a1) = p.start(ms(1), &mut rng);
    assert!(a1.is_empty(), "call 1 waits: {a1:?}");
    // The caller gives up on call 0 at 5 ms: its attempt is cancelled, no `Done`, and
    // the waiter takes the slot and sends.
    let out = p.cancel_call(ms(5), c0, &mut rng);
    assert!(
        out.contains(&PolicyAction::Cancel { attempt: sent0 }),
        "{out:?}"
    );
    assert!(!out.iter().any(|a| matches!(a, PolicyAction::Done { .. })));
    let sent1 = out
        .iter()
        .find_map(|a| match a {
            PolicyAction::Send { attempt, call, .. } if *call == c1 => Some(*attempt),
            _ => None,
        })
        .expect("the waiter sends once the slot is free");
    // Its deadline is its own timeout from when it was admitted.
    assert_eq!(p.attempt_deadline(sent1), Some(Deadline(ms(105))));
    assert_eq!(p.open_calls(), 1);
    let s = p.stats();
    assert_eq!((s.calls_cancelled, s.cancelled), (1, 1));
    // A late answer to the cancelled attempt is ignored; cancelling again does nothing.
    assert!(
        p.on_result(ms(6), sent0, None, &mut rng)
            .unwrap()
            .is_empty()
    );
    assert!(p.cancel_call(ms(6), c0, &mut rng).is_empty());
    assert_eq!(p.attempt_deadline(sent0), None);
    // The breaker's window saw nothing of the cancelled call.
    let out = p.on_result(ms(7), sent1, None, &mut rng).unwrap();
    assert!(matches!(
        out.as_slice(),
        [PolicyAction::Done {
            outcome: Outcome::Succeeded,
            ..
        }]
    ));
    assert_eq!(p.open_calls(), 0);
    assert_eq!(p.attempts_in_flight(), 0);
}

#[test]
fn cancelling_a_hedged_call_cancels_every_hedge_in_flight() {
    let mut p = pipeline(json!([
        {"type": "hedging", "config": {"maxAttempts": 3, "delay": {"type": "fixed", "ms": 10}}},
    ]));
    let mut rng = SimRng::new(1);
    let (call, _) = p.start(ms(0), &mut rng);
    let _ = p.handle_timeout(ms(10), &mut rng);
    let _ = p.handle_timeout(ms(20), &mut rng);
    assert_eq!(p.attempts_in_flight(), 3);
    let out = p.cancel_call(ms(25), call, &mut rng);
    let cancelled = out
        .iter()
        .filter(|a| matches!(a, PolicyAction::Cancel { .. }))
        .count();
    assert_eq!(cancelled, 3, "{out:?}");
    assert_eq!((p.attempts_in_flight(), p.open_calls()), (0, 0));
    assert_eq!(p.poll_timeout(), None);
}
