//! Hedging tests: gRFC A6's rules one by one, then properties over random answers.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;
use crate::resilience::retry::RetryBudgetConfig;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn policy(v: serde_json::Value) -> HedgingPolicy {
    HedgingPolicy::new(&from_value("config", &v).unwrap()).unwrap()
}

fn sends(actions: &[HedgeAction]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            HedgeAction::Send { attempt } => Some(*attempt),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hedge_goes_after_each_delay_up_to_max_attempts() {
    let mut p = policy(json!({"maxAttempts": 3, "delay": {"type": "fixed", "ms": 100}}));
    let (mut call, actions) = p.start(ms(0), None);
    assert_eq!(actions, [HedgeAction::Send { attempt: 0 }]);
    assert_eq!(call.poll_timeout(), Some(ms(100)));
    assert!(call.handle_timeout(ms(99), &mut p, None).is_empty());
    assert_eq!(sends(&call.handle_timeout(ms(100), &mut p, None)), [1]);
    assert_eq!(call.poll_timeout(), Some(ms(200)));
    assert_eq!(sends(&call.handle_timeout(ms(200), &mut p, None)), [2]);
    assert_eq!(call.poll_timeout(), None, "three sent: no more");
    assert!(call.handle_timeout(ms(10_000), &mut p, None).is_empty());
    assert_eq!(p.stats().hedges, 2);
}

#[test]
fn a_zero_delay_sends_every_attempt_at_once() {
    let mut p = policy(json!({"maxAttempts": 4, "delay": {"type": "fixed", "ms": 0}}));
    let (call, actions) = p.start(ms(5), None);
    assert_eq!(sends(&actions), [0, 1, 2, 3]);
    assert_eq!(call.poll_timeout(), None);
}

#[test]
fn one_attempt_is_hedging_off() {
    let mut p = policy(json!({"maxAttempts": 1}));
    let (mut call, actions) = p.start(ms(0), None);
    assert_eq!(sends(&actions), [0]);
    assert_eq!(call.poll_timeout(), None);
    let done = call.on_result(ms(900), 0, Some(ErrorKind::Unavailable), &mut p, None);
    assert_eq!(
        done,
        [HedgeAction::Done {
            attempt: 0,
            error: Some(ErrorKind::Unavailable),
            attempts: 1
        }]
    );
}

#[test]
fn the_first_success_wins_and_cancels_the_rest() {
    let mut p = policy(json!({"maxAttempts": 3, "delay": {"type": "fixed", "ms": 10}}));
    let (mut call, _) = p.start(ms(0), None);
    call.handle_timeout(ms(10), &mut p, None);
    call.handle_timeout(ms(20), &mut p, None);
    let actions = call.on_result(ms(25), 1, None, &mut p, None);
    assert_eq!(
        actions,
        [
            HedgeAction::Cancel { attempt: 0 },
            HedgeAction::Cancel { attempt: 2 },
            HedgeAction::Done {
                attempt: 1,
                error: None,
                attempts: 3
            }
        ]
    );
    assert!(call.is_done());
    // The losers' answers, arriving later, change nothing.
    assert!(call.on_result(ms(30), 0, None, &mut p, None).is_empty());
    assert!(
        call.on_result(ms(30), 2, Some(ErrorKind::Internal), &mut p, None)
            .is_empty()
    );
    let s = p.stats();
    assert_eq!(
        (s.succeeded, s.failed, s.won_by_hedge, s.cancelled),
        (1, 0, 1, 2)
    );
}

#[test]
fn a_non_fatal_error_sends_the_next_attempt_at_once() {
    let mut p = policy(
        json!({"maxAttempts": 3, "delay": {"type": "fixed", "ms": 100},
        "nonFatal": ["unavailable"]}),
    );
    let (mut call, _) = p.start(ms(0), None);
    let actions = call.on_result(ms(30), 0, Some(ErrorKind::Unavailable), &mut p, None);
    assert_eq!(sends(&actions), [1], "not at 100 ms: at once");
    assert_eq!(
        call.poll_timeout(),
        Some(ms(130)),
        "the delay restarts from the hedge"
    );
}

#[test]
fn a_fatal_error_ends_the_call_and_cancels_the_rest() {
    let mut p = policy(
        json!({"maxAttempts": 3, "delay": {"type": "fixed", "ms": 10},
        "nonFatal": ["unavailable"]}),
    );
    let (mut call, _) = p.start(ms(0), None);
    call.handle_timeout(ms(10), &mut p, None);
    let actions = call.on_result(ms(12), 1, Some(ErrorKind::InvalidArgument), &mut p, None);
    assert_eq!(
        actions,
        [
            HedgeAction::Cancel { attempt: 0 },
            HedgeAction::Done {
                attempt: 1,
                error: Some(ErrorKind::InvalidArgument),
                attempts: 2
            }
        ]
    );
    assert_eq!(call.poll_timeout(), None, "no hedge after the end");
}

#[test]
fn when_every_attempt_fails_the_call_fails_with_the_last_error_and_no_retry() {
    let mut p = policy(
        json!({"maxAttempts": 2, "delay": {"type": "fixed", "ms": 50},
        "nonFatal": ["unavailable", "overloaded"]}),
    );
    let (mut call, _) = p.start(ms(0), None);
    call.handle_timeout(ms(50), &mut p, None);
    assert!(
        call.on_result(ms(60), 0, Some(ErrorKind::Unavailable), &mut p, None)
            .is_empty(),
        "attempt 1 is still in flight"
    );
    let done = call.on_result(ms(70), 1, Some(ErrorKind::Overloaded), &mut p, None);
    assert_eq!(
        done,
        [HedgeAction::Done {
            attempt: 1,
            error: Some(ErrorKind::Overloaded),
            attempts: 2
        }]
    );
}

#[test]
fn the_budget_holds_hedges_back_at_half_its_tokens() {
    let mut budget = RetryBudget::new(&RetryBudgetConfig {
        max_tokens: Count::of(4),
        token_ratio: 1.0,
    })
    .unwrap();
    let mut p = policy(
        json!({"maxAttempts": 5, "delay": {"type": "fixed", "ms": 10},
        "nonFatal": ["unavailable"]}),
    );
    // Two non-fatal failures take the budget from 4 to 2 tokens: half, so no hedge.
    let (mut call, _) = p.start(ms(0), Some(&mut budget));
    let a = call.on_result(
        ms(1),
        0,
        Some(ErrorKind::Unavailable),
        &mut p,
        Some(&mut budget),
    );
    assert_eq!(sends(&a), [1]);
    let a = call.on_result(
        ms(2),
        1,
        Some(ErrorKind::Unavailable),
        &mut p,
        Some(&mut budget),
    );
    assert_eq!(budget.tokens(), 2.0);
    assert!(matches!(
        a.as_slice(),
        [HedgeAction::Done {
            error: Some(ErrorKind::Unavailable),
            attempts: 2,
            ..
        }]
    ));
    assert_eq!(p.stats().throttled, 1);
    // A success gives a token back: above half again, hedges go.
    let (mut call, _) = p.start(ms(10), Some(&mut budget));
    call.on_result(ms(11), 0, None, &mut p, Some(&mut budget));
    assert_eq!(budget.tokens(), 3.0);
    let (mut call, _) = p.start(ms(20), Some(&mut budget));
    assert_eq!(
        sends(&call.handle_timeout(ms(30), &mut p, Some(&mut budget))),
        [1]
    );
}

#[test]
fn cancel_ends_a_call_once() {
    let mut p = policy(json!({"maxAttempts": 2, "delay": {"type": "fixed", "ms": 10}}));
    let (mut call, _) = p.start(ms(0), None);
    call.handle_timeout(ms(10), &mut p, None);
    let a = call.cancel(&mut p);
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(call.cancel(&mut p).is_empty());
    assert!(call.on_result(ms(20), 0, None, &mut p, None).is_empty());
    assert_eq!(p.stats().failed, 1);
}

#[test]
fn a_percentile_delay_falls_back_until_it_has_samples_then_follows_them() {
    let mut p = policy(json!({"delay": {"type": "percentile", "quantile": 0.95,
        "window": 100, "minSamples": 10, "fallbackMs": 70}}));
    assert_eq!(p.delay(), Duration::from_millis(70));
    for i in 1..=100u64 {
        let (mut call, _) = p.start(ms(i * 1_000), None);
        call.on_result(ms(i * 1_000 + i), 0, None, &mut p, None);
        if i < 10 {
            assert_eq!(p.delay(), Duration::from_millis(70), "{i} samples");
        }
    }
    assert_eq!(p.delay(), Duration::from_millis(95), "p95 of 1..=100 ms");
    // The window slides: 100 more at 500 ms push the old ones out.
    for i in 0..100u64 {
        let (mut call, _) = p.start(ms(200_000 + i * 1_000), None);
        call.on_result(ms(200_000 + i * 1_000 + 500), 0, None, &mut p, None);
    }
    assert_eq!(p.delay(), Duration::from_millis(500));
}

#[test]
fn bad_configs_name_their_field() {
    for (v, field) in [
        (json!({"maxAttempts": 6}), "maxAttempts"),
        (json!({"maxAttempts": 0}), "maxAttempts"),
        (
            json!({"delay": {"type": "percentile", "quantile": 0.9, "window": 10,
                "minSamples": 11, "fallbackMs": 5}}),
            "delay.minSamples",
        ),
        (
            json!({"delay": {"type": "percentile", "quantile": 0, "window": 10,
                "minSamples": 1, "fallbackMs": 5}}),
            "delay.quantile",
        ),
        (json!({"delay": {"type": "fixed", "ms": -1}}), "ms"),
        (json!({"nonFatal": ["teapot"]}), "nonFatal"),
    ] {
        let e = from_value::<HedgingConfig>("config", &v)
            .and_then(|c| HedgingPolicy::new(&c))
            .err()
            .unwrap_or_else(|| panic!("{v} was accepted"))
            .to_string();
        assert!(e.contains(field), "{v}: {e}");
    }
}

fn reference_quantile(values: &[u64], q: f64) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

proptest! {
    #[test]
    fn the_window_quantile_is_the_nearest_rank_of_its_newest_values(
        values in prop::collection::vec(0u64..1_000, 1..300),
        capacity in 1usize..64,
        q in 0.01f64..=1.0,
    ) {
        let mut w = LatencyWindow::new(capacity);
        for v in &values {
            w.push(Duration(*v));
        }
        let newest = &values[values.len().saturating_sub(capacity)..];
        prop_assert_eq!(w.len(), newest.len());
        prop_assert_eq!(w.quantile(q), Some(Duration(reference_quantile(newest, q))));
    }

    /// Whatever the answers and their order: never more than maxAttempts sent, never an
    /// attempt sent twice, exactly one Done, nothing after it, and every attempt in
    /// flight at the end was cancelled.
    #[test]
    fn a_call_ends_once_within_its_attempts(
        max_attempts in 1u32..=5,
        delay in 0u64..50,
        answers in prop::collection::vec((0u32..5, 0u64..40, 0usize..4), 0..30),
    ) {
        let mut p = policy(json!({"maxAttempts": max_attempts,
            "delay": {"type": "fixed", "ms": delay}, "nonFatal": ["unavailable"]}));
        let mut budget = RetryBudget::new(&RetryBudgetConfig::default()).unwrap();
        let mut now = ms(0);
        let (mut call, mut all) = p.start(now, Some(&mut budget));
        let kinds = [None, Some(ErrorKind::Unavailable), Some(ErrorKind::Unavailable),
            Some(ErrorKind::Internal)];
        for (attempt, after, kind) in answers {
            now = now.saturating_add(Duration::from_millis(after));
            all.extend(call.handle_timeout(now, &mut p, Some(&mut budget)));
            all.extend(call.on_result(now, attempt, kinds[kind], &mut p, Some(&mut budget)));
        }
        let sent = sends(&all);
        prop_assert!(sent.len() as u32 <= max_attempts);
        prop_assert_eq!(sent.clone(), (0..sent.len() as u32).collect::<Vec<_>>());
        let done = all.iter().position(|a| matches!(a, HedgeAction::Done { .. }));
        if let Some(i) = done {
            prop_assert_eq!(i, all.len() - 1, "nothing after Done: {:?}", all);
            prop_assert!(call.is_done());
            prop_assert_eq!(call.poll_timeout(), None);
        } else {
            prop_assert!(!call.is_done());
        }
    }
}
