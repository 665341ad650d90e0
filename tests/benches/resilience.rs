//! Decision overhead per call of the resilience primitives: what wrapping a call costs
//! when the dependency is fine, and when the primitive says no. And the service mesh's
//! simulation throughput: client requests simulated per wall second, for the
//! `resilience.mesh` lab's default config (300 requests/s through five services, a
//! guarded edge, payments slowed twentyfold from 2 s) run for 3 simulated seconds.
//! `cargo bench -p distlab-tests --bench resilience -- --measurement-time 2 --warm-up-time 1`

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::Duration;
use distlab_core::Time;
use distlab_core::bounded::{Count, Millis};
use distlab_core::lab::{Cluster, Lab, Runner};
use distlab_core::resilience::ErrorKind;
use distlab_core::resilience::bulkhead::{Bulkhead, BulkheadConfig};
use distlab_core::resilience::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, SlidingWindowType,
};
use distlab_core::resilience::fallback::FallbackConfig;
use distlab_core::resilience::hedging::{HedgingConfig, HedgingDelay, HedgingPolicy};
use distlab_core::resilience::mesh::lab::MeshLab;
use distlab_core::resilience::policy::{Pipeline, PolicyAction, PolicyConfig, StrategyConfig};
use distlab_core::resilience::retry::{
    Jitter, RetryBudget, RetryBudgetConfig, RetryConfig, RetryPolicy, RetryState,
};
use distlab_core::rng::SimRng;

fn breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    for (name, kind) in [
        ("closed_count_window_100", SlidingWindowType::CountBased),
        ("closed_time_window_100s", SlidingWindowType::TimeBased),
    ] {
        let mut b = CircuitBreaker::new(CircuitBreakerConfig {
            sliding_window_type: kind,
            ..CircuitBreakerConfig::default()
        })
        .unwrap();
        let mut t = 0u64;
        // One call: a permit and its (successful) result.
        g.bench_function(name, |bench| {
            bench.iter(|| {
                t += 1_000;
                let now = Time(t);
                if let Some(p) = b.try_acquire(now).permit() {
                    b.on_success(now, p).unwrap();
                }
            })
        });
    }
    let mut b = CircuitBreaker::new(CircuitBreakerConfig {
        sliding_window_size: Count::of(10),
        minimum_number_of_calls: Count::of(10),
        ..CircuitBreakerConfig::default()
    })
    .unwrap();
    for _ in 0..10 {
        let p = b.try_acquire(Time::ZERO).permit().unwrap();
        b.on_error(Time::ZERO, p, ErrorKind::Unavailable).unwrap();
    }
    g.bench_function("open_rejects", |bench| {
        bench.iter(|| black_box(b.try_acquire(black_box(Time(1_000)))))
    });
    g.finish();
}

fn retry(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry");
    for jitter in Jitter::ALL {
        let mut config = RetryConfig {
            max_attempts: Count::of(100),
            ..RetryConfig::default()
        };
        config.backoff.jitter = jitter;
        let policy = RetryPolicy::new(&config).unwrap();
        let mut rng = SimRng::new(1);
        let mut state = RetryState::first_attempt();
        g.bench_function(format!("on_failure_{}", jitter.name()), |bench| {
            bench.iter(|| {
                if state.attempts >= 50 {
                    state = RetryState::first_attempt();
                }
                black_box(policy.on_failure(
                    &mut state,
                    Time::ZERO,
                    ErrorKind::Unavailable,
                    &mut rng,
                    None,
                ))
            })
        });
    }
    let policy = RetryPolicy::new(&RetryConfig::default()).unwrap();
    let mut rng = SimRng::new(1);
    let mut budget = RetryBudget::new(&RetryBudgetConfig::default()).unwrap();
    g.bench_function("on_failure_full_with_budget", |bench| {
        bench.iter(|| {
            let mut state = RetryState::first_attempt();
            let d = policy.on_failure(
                &mut state,
                Time::ZERO,
                ErrorKind::Unavailable,
                &mut rng,
                Some(&mut budget),
            );
            policy.on_success(Some(&mut budget));
            black_box(d)
        })
    });
    g.finish();
}

fn bulkhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulkhead");
    let mut b = Bulkhead::new(BulkheadConfig::default());
    let mut id = 0u64;
    g.bench_function("enter_and_release", |bench| {
        bench.iter(|| {
            id += 1;
            let (entry, _) = b.try_enter(Time::ZERO, id).unwrap();
            b.release(Time::ZERO, id).unwrap();
            black_box(entry)
        })
    });
    let mut full = Bulkhead::new(BulkheadConfig::default());
    for i in 0..25 {
        full.try_enter(Time::ZERO, i).unwrap();
    }
    g.bench_function("full_rejects", |bench| {
        bench.iter(|| black_box(full.try_enter(Time::ZERO, black_box(1_000)).unwrap()))
    });
    g.finish();
}

fn hedging(c: &mut Criterion) {
    let mut g = c.benchmark_group("hedging");
    for (name, delay) in [
        (
            "fixed",
            HedgingDelay::Fixed {
                ms: Millis::of(100),
            },
        ),
        ("p95_of_1000", HedgingDelay::P95),
    ] {
        let mut policy = HedgingPolicy::new(&HedgingConfig {
            delay,
            ..HedgingConfig::default()
        })
        .unwrap();
        let mut t = 0u64;
        let mut rng = SimRng::new(5);
        // One call that hedges once: start, the delay passes, the hedge goes out, the
        // first attempt answers (its latency enters the p95 window) and the hedge is
        // cancelled. The latencies vary so the window's sorted insert does real work.
        g.bench_function(format!("call_with_one_hedge_{name}"), |bench| {
            bench.iter(|| {
                t += 1_000_000;
                let start = Time(t);
                let (mut call, a) = policy.start(start, None);
                let at = call.poll_timeout().unwrap();
                let b = call.handle_timeout(at, &mut policy, None);
                let done = Time(at.0 + rng.below(50_000));
                let c = call.on_result(done, 0, None, &mut policy, None);
                black_box((a, b, c))
            })
        });
    }
    g.finish();
}

/// A successful call through a pipeline: `start` (every strategy opens its part of the
/// call and the attempt goes out), then the attempt's answer (every strategy records it
/// on the way back and the call is done).
fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    let five = vec![
        StrategyConfig::Fallback {
            config: FallbackConfig::default(),
        },
        StrategyConfig::Retry {
            policy: RetryConfig::default(),
            budget: Some(RetryBudgetConfig::default()),
        },
        StrategyConfig::CircuitBreaker {
            config: CircuitBreakerConfig::default(),
        },
        StrategyConfig::Bulkhead {
            config: BulkheadConfig::default(),
        },
        StrategyConfig::Timeout {
            timeout_ms: Millis::of(1_000),
        },
    ];
    let one = vec![StrategyConfig::Timeout {
        timeout_ms: Millis::of(1_000),
    }];
    for (name, strategies) in [("timeout_only", one), ("five_policies", five)] {
        let mut p = Pipeline::new(&PolicyConfig { strategies }).unwrap();
        let mut rng = SimRng::new(9);
        let mut t = 0u64;
        g.bench_function(format!("successful_call_{name}"), |bench| {
            bench.iter(|| {
                t += 10_000;
                let (_, actions) = p.start(Time(t), &mut rng);
                let attempt = actions
                    .iter()
                    .find_map(|a| match a {
                        PolicyAction::Send { attempt, .. } => Some(*attempt),
                        _ => None,
                    })
                    .unwrap();
                let done = p
                    .on_result(Time(t + 2_000), attempt, None, &mut rng)
                    .unwrap();
                assert!(matches!(done.last(), Some(PolicyAction::Done { .. })));
                black_box(done)
            })
        });
    }
    g.finish();
}

/// The mesh lab's default config for 3 simulated seconds from a fresh start (building
/// the lab is outside the measure); throughput in client requests, counted once on the
/// same seed (the run is deterministic).
fn mesh(c: &mut Criterion) {
    let config = serde_json::json!({});
    let fresh = || Runner::<Cluster<MeshLab>>::from_json(&config).expect("valid config");
    let mut probe = fresh();
    probe.step(Duration::from_secs(3)).expect("steps");
    let requests = probe.model().end_to_end().map_or(0, |e| e.calls);
    let mut g = c.benchmark_group("mesh");
    g.sample_size(10);
    g.throughput(Throughput::Elements(requests));
    g.bench_function("default_lab_3s_requests", |b| {
        b.iter_batched(
            fresh,
            |mut lab| lab.step(Duration::from_secs(3)).expect("steps"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, breaker, retry, bulkhead, hedging, pipeline, mesh);
criterion_main!(benches);
