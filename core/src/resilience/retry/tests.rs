//! Retry and retry-budget tests.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn backoff(v: serde_json::Value) -> Backoff {
    Backoff::new(&from_value::<BackoffConfig>("backoff", &v).unwrap()).unwrap()
}

fn delays(b: &Backoff, n: u32, seed: u64) -> Vec<u64> {
    let mut rng = SimRng::new(seed);
    let mut previous = None;
    (0..n)
        .map(|i| {
            let d = b.delay(i, previous, &mut rng);
            previous = Some(d);
            d.0
        })
        .collect()
}

#[test]
fn no_jitter_doubles_up_to_the_cap() {
    let b = backoff(json!({"initialBackoffMs": 100, "maxBackoffMs": 500, "jitter": "none"}));
    assert_eq!(
        delays(&b, 6, 1),
        [100_000, 200_000, 400_000, 500_000, 500_000, 500_000]
    );
    // A multiplier of 100 for 99 retries overflows f64 to infinity: still the cap.
    let b = backoff(json!({"initialBackoffMs": 1, "maxBackoffMs": 3600000,
        "backoffMultiplier": 100, "jitter": "none"}));
    assert_eq!(b.exponential(99), 3_600_000_000);
}

#[test]
fn each_jitter_keeps_its_shape() {
    let cfg = |j: &str| backoff(json!({"initialBackoffMs": 10, "maxBackoffMs": 1000, "jitter": j}));
    let full = delays(&cfg("full"), 2_000, 3);
    let equal = delays(&cfg("equal"), 2_000, 3);
    for (i, (f, e)) in full.iter().zip(&equal).enumerate() {
        let exp = cfg("none").exponential(i as u32);
        assert!(*f <= exp);
        assert!(*e >= exp - exp / 2 && *e <= exp, "{e} vs {exp}");
    }
    // Full jitter of a capped exponential averages half the cap.
    let late: Vec<u64> = full[20..].to_vec();
    let mean = late.iter().sum::<u64>() as f64 / late.len() as f64;
    assert!((mean - 500_000.0).abs() < 25_000.0, "{mean}");
    let dec = delays(&cfg("decorrelated"), 2_000, 3);
    let mut previous = 10_000;
    for d in dec {
        assert!(
            d >= 10_000 && d <= (previous * 3).min(1_000_000),
            "{d} after {previous}"
        );
        previous = d;
    }
}

#[test]
fn the_same_seed_draws_the_same_delays() {
    for j in Jitter::ALL {
        let b = backoff(json!({"jitter": j}));
        assert_eq!(delays(&b, 50, 9), delays(&b, 50, 9));
        if j != Jitter::None {
            assert_ne!(delays(&b, 50, 9), delays(&b, 50, 10), "{j:?}");
        }
    }
}

fn policy(v: serde_json::Value) -> RetryPolicy {
    RetryPolicy::new(&from_value::<RetryConfig>("config", &v).unwrap()).unwrap()
}

#[test]
fn a_call_retries_until_its_attempts_run_out() {
    let p =
        policy(json!({"maxAttempts": 3, "backoff": {"initialBackoffMs": 100, "jitter": "none"}}));
    let mut rng = SimRng::new(1);
    let mut s = RetryState::first_attempt();
    let d = p.on_failure(
        &mut s,
        Time::from_millis(5),
        ErrorKind::Unavailable,
        &mut rng,
        None,
    );
    assert_eq!(
        d,
        RetryDecision::Retry {
            attempt: 2,
            delay: Duration::from_millis(100),
            at: Time::from_millis(105)
        }
    );
    let d = p.on_failure(
        &mut s,
        Time::from_millis(200),
        ErrorKind::Timeout,
        &mut rng,
        None,
    );
    assert!(
        matches!(d, RetryDecision::Retry { attempt: 3, delay, .. } if delay == Duration::from_millis(200))
    );
    let d = p.on_failure(
        &mut s,
        Time::from_millis(500),
        ErrorKind::Timeout,
        &mut rng,
        None,
    );
    assert_eq!(
        d,
        RetryDecision::GiveUp {
            reason: GiveUpReason::AttemptsExhausted
        }
    );
    assert_eq!(s.attempts, 3);
}

#[test]
fn an_error_not_worth_retrying_ends_the_call() {
    let p = policy(json!({"retryOn": ["unavailable"]}));
    let mut s = RetryState::first_attempt();
    let d = p.on_failure(
        &mut s,
        Time::ZERO,
        ErrorKind::InvalidArgument,
        &mut SimRng::new(1),
        None,
    );
    assert_eq!(
        d,
        RetryDecision::GiveUp {
            reason: GiveUpReason::NotRetryable
        }
    );
    assert!(p.retries(ErrorKind::Unavailable) && !p.retries(ErrorKind::Timeout));
}

fn budget(max: u32, ratio: f64) -> RetryBudget {
    RetryBudget::new(&RetryBudgetConfig {
        max_tokens: Count::new("maxTokens", max).unwrap(),
        token_ratio: ratio,
    })
    .unwrap()
}

/// gRFC A6's worked numbers: 10 tokens, 0.1 per success; retries stop once failures
/// bring the bucket to half (5), and one success above half lets them go again.
#[test]
fn the_budget_throttles_at_half_its_tokens_exactly() {
    let mut b = budget(10, 0.1);
    for _ in 0..4 {
        b.on_failure();
    }
    assert_eq!(b.tokens(), 6.0);
    assert!(b.allows_retry());
    b.on_failure();
    assert_eq!(b.tokens(), 5.0);
    assert!(!b.allows_retry(), "5 is not more than half of 10");
    b.on_success();
    assert_eq!(b.tokens(), 5.1);
    assert!(b.allows_retry());
    // Ten thousand successes: still exactly 10, no drift.
    for _ in 0..10_000 {
        b.on_success();
    }
    assert_eq!(b.tokens(), 10.0);
    for _ in 0..100 {
        b.on_failure();
    }
    assert_eq!(b.tokens(), 0.0);
    assert_eq!(
        b.stats(),
        BudgetStats {
            successes: 10_001,
            failures: 105,
            retries_allowed: 2,
            retries_throttled: 1
        }
    );
}

#[test]
fn a_policy_with_a_budget_stops_retrying_when_it_empties() {
    let p =
        policy(json!({"maxAttempts": 100, "backoff": {"initialBackoffMs": 1, "jitter": "none"}}));
    let mut b = budget(4, 1.0);
    let mut rng = SimRng::new(1);
    let mut s = RetryState::first_attempt();
    let mut decisions = Vec::new();
    loop {
        let d = p.on_failure(
            &mut s,
            Time::ZERO,
            ErrorKind::Unavailable,
            &mut rng,
            Some(&mut b),
        );
        decisions.push(d);
        if matches!(d, RetryDecision::GiveUp { .. }) {
            break;
        }
    }
    // 4 → 3 (retry) → 2 (not more than half: stop).
    assert_eq!(decisions.len(), 2);
    assert_eq!(
        decisions[1],
        RetryDecision::GiveUp {
            reason: GiveUpReason::BudgetExhausted
        }
    );
    p.on_success(Some(&mut b));
    assert_eq!(b.tokens(), 3.0);
}

#[test]
fn bad_configs_name_their_field() {
    let e = RetryPolicy::new(
        &from_value::<RetryConfig>(
            "config",
            &json!({"backoff": {"initialBackoffMs": 2000, "maxBackoffMs": 1000}}),
        )
        .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`backoff.initialBackoffMs`"), "{e}");
    for m in [0.5, f64::NAN, 101.0] {
        let c = BackoffConfig {
            backoff_multiplier: m,
            ..Default::default()
        };
        let e = Backoff::new(&c).unwrap_err().to_string();
        assert!(e.contains("`backoffMultiplier`"), "{e}");
    }
    for r in [0.0, 0.0009, -1.0, f64::INFINITY, 11.0] {
        let c = RetryBudgetConfig {
            max_tokens: Count::of(10),
            token_ratio: r,
        };
        let e = RetryBudget::new(&c).unwrap_err().to_string();
        assert!(e.contains("`tokenRatio`"), "{e}");
    }
    for (v, field) in [
        (json!({"maxAttempts": 0}), "config.maxAttempts"),
        (
            json!({"backoff": {"jitter": "wild"}}),
            "config.backoff.jitter",
        ),
        (
            json!({"backoff": {"maxBackoffMs": -1}}),
            "config.backoff.maxBackoffMs",
        ),
        (json!({"retryOn": ["sometimes"]}), "config.retryOn"),
    ] {
        let e = from_value::<RetryConfig>("config", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
}

proptest! {
    /// Every jittered delay lies in [0, cap], for any policy, retry number and seed.
    #[test]
    fn jittered_delays_stay_within_zero_and_the_cap(
        base in 0u32..5_000,
        cap in 0u32..100_000,
        multiplier in 1.0f64..100.0,
        jitter in prop::sample::select(Jitter::ALL.to_vec()),
        seed in any::<u64>(),
        retries in 1u32..100,
    ) {
        let base = base.min(cap);
        let b = Backoff::new(&BackoffConfig {
            initial_backoff_ms: Millis::new("b", f64::from(base)).unwrap(),
            max_backoff_ms: Millis::new("c", f64::from(cap)).unwrap(),
            backoff_multiplier: multiplier,
            jitter,
        }).unwrap();
        let cap_us = u64::from(cap) * 1_000;
        for d in delays(&b, retries, seed) {
            prop_assert!(d <= cap_us, "{d} > {cap_us}");
        }
    }

    /// The budget's level stays in [0, max] and retries go exactly while it is above half.
    #[test]
    fn the_budget_stays_in_bounds(ops in prop::collection::vec(any::<bool>(), 0..500),
                                  max in 1u32..50, ratio_milli in 1u32..5_000) {
        let ratio = (f64::from(ratio_milli) / 1_000.0).min(f64::from(max));
        let mut b = budget(max, ratio);
        for ok in ops {
            if ok { b.on_success() } else { b.on_failure() }
            prop_assert!(b.tokens() >= 0.0 && b.tokens() <= f64::from(max));
            prop_assert_eq!(b.allows_retry(), b.tokens() > f64::from(max) / 2.0);
        }
    }
}
