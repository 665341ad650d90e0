//! Every local rate limiter on the same workloads: each stays within its own bound, and the
//! sliding counter's error against the exact sliding log is measured (catalog check A for
//! `ratelimit.sliding-counter`) and printed (`-- --nocapture`); BENCHMARKS.md reports it.
//! Also the keyed limiter's memory per key at a million keys.

use distlab_core::Time;
use distlab_core::ratelimit::any_keyed::{AlgorithmConfig, AnyKeyedLimiter};
use distlab_core::ratelimit::fixed_window::{FixedWindow, FixedWindowConfig};
use distlab_core::ratelimit::gcra::{GcraConfig, GcraRule};
use distlab_core::ratelimit::keyed::KeyedLimiter;
use distlab_core::ratelimit::sliding_counter::{SlidingCounter, SlidingCounterConfig};
use distlab_core::ratelimit::sliding_log::{SlidingLog, SlidingLogConfig};
use distlab_core::ratelimit::token_bucket::TokenBucketRule;
use distlab_core::ratelimit::units::MAX_DECISION_TIME;
use distlab_core::ratelimit::{RateLimitDecision, TokenBucketConfig};
use distlab_core::sim::workload::ArrivalFeed;
use distlab_core::sim::workload::ArrivalProcess;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const LIMIT: f64 = 100.0;
const WINDOW_US: u64 = 1_000_000;

fn arrivals(process: ArrivalProcess, seed: u64, until_us: u64) -> Vec<u64> {
    let mut feed = ArrivalFeed::new(seed, &process, Time::ZERO).unwrap();
    let mut out = Vec::new();
    while feed.next_at().0 <= until_us {
        out.push(feed.take().0);
    }
    out
}

/// The most admissions in any window `(t − W, t]`.
fn max_in_any_window(admitted: &[u64]) -> usize {
    let mut start = 0;
    let mut best = 0;
    for (j, &t) in admitted.iter().enumerate() {
        while admitted[start] + WINDOW_US <= t {
            start += 1;
        }
        best = best.max(j + 1 - start);
    }
    best
}

fn run(times: &[u64], mut decide: impl FnMut(Time) -> RateLimitDecision) -> Vec<bool> {
    times.iter().map(|&t| decide(Time(t)).allowed).collect()
}

fn admitted_times(times: &[u64], decisions: &[bool]) -> Vec<u64> {
    times
        .iter()
        .zip(decisions)
        .filter(|(_, a)| **a)
        .map(|(t, _)| *t)
        .collect()
}

struct Comparison {
    requests: usize,
    /// The counter admitted where the exact count over the same admitted history (what a
    /// sliding log in its place would have seen) was already at the limit.
    wrongly_allowed: usize,
    /// The counter denied where the exact count had room.
    wrongly_limited: usize,
    counter_max_window: usize,
    log_max_window: usize,
    fixed_max_window: usize,
}

fn compare(process: ArrivalProcess, seed: u64) -> Comparison {
    let config = (LIMIT, WINDOW_US as f64 / 1e3);
    let times = arrivals(process, seed, 60 * WINDOW_US);
    let mut log = SlidingLog::new(SlidingLogConfig {
        limit: config.0,
        window_ms: config.1,
    })
    .unwrap();
    let mut counter = SlidingCounter::new(SlidingCounterConfig {
        limit: config.0,
        window_ms: config.1,
    })
    .unwrap();
    let mut fixed = FixedWindow::new(FixedWindowConfig {
        limit: config.0,
        window_ms: config.1,
    })
    .unwrap();
    let by_log = run(&times, |t| log.try_acquire(t, 1.0).unwrap());
    let by_fixed = run(&times, |t| fixed.try_acquire(t, 1.0).unwrap());
    let (mut wrongly_allowed, mut wrongly_limited) = (0, 0);
    let mut window: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let by_counter = run(&times, |t| {
        while window.front().is_some_and(|&s| s + WINDOW_US <= t.0) {
            window.pop_front();
        }
        let exact_allows = window.len() < LIMIT as usize;
        let d = counter.try_acquire(t, 1.0).unwrap();
        match (d.allowed, exact_allows) {
            (true, false) => wrongly_allowed += 1,
            (false, true) => wrongly_limited += 1,
            _ => {}
        }
        if d.allowed {
            window.push_back(t.0);
        }
        d
    });
    Comparison {
        requests: times.len(),
        wrongly_allowed,
        wrongly_limited,
        counter_max_window: max_in_any_window(&admitted_times(&times, &by_counter)),
        log_max_window: max_in_any_window(&admitted_times(&times, &by_log)),
        fixed_max_window: max_in_any_window(&admitted_times(&times, &by_fixed)),
    }
}

#[distlab_tests::test]
fn sliding_counter_error_against_the_sliding_log() {
    use ArrivalProcess::*;
    let workloads = [
        ("Poisson 0.5× the limit", Poisson { rate_per_sec: 50.0 }),
        (
            "Poisson 1× the limit",
            Poisson {
                rate_per_sec: 100.0,
            },
        ),
        (
            "Poisson 2× the limit",
            Poisson {
                rate_per_sec: 200.0,
            },
        ),
        (
            "Poisson 10× the limit",
            Poisson {
                rate_per_sec: 1_000.0,
            },
        ),
        (
            "on/off bursts, 1 000/s for 200 ms of each second",
            OnOff {
                rate_per_sec: 1_000.0,
                on_ms: 200.0,
                off_ms: 800.0,
            },
        ),
        (
            "window-boundary bursts of 100",
            WindowBoundaryBurst {
                window_ms: 1_000.0,
                burst: 100,
                spacing_ms: 0.0,
                every_windows: 2,
            },
        ),
    ];
    println!(
        "| workload | requests | counter wrongly allowed | counter wrongly limited | max in a 1 s window: log / counter / fixed |"
    );
    for (name, process) in workloads {
        let mut total = Comparison {
            requests: 0,
            wrongly_allowed: 0,
            wrongly_limited: 0,
            counter_max_window: 0,
            log_max_window: 0,
            fixed_max_window: 0,
        };
        for seed in 1..=5 {
            let c = compare(process, seed);
            total.requests += c.requests;
            total.wrongly_allowed += c.wrongly_allowed;
            total.wrongly_limited += c.wrongly_limited;
            total.counter_max_window = total.counter_max_window.max(c.counter_max_window);
            total.log_max_window = total.log_max_window.max(c.log_max_window);
            total.fixed_max_window = total.fixed_max_window.max(c.fixed_max_window);
        }
        println!(
            "| {name} | {} | {:.3} % | {:.3} % | {} / {} / {} |",
            total.requests,
            100.0 * total.wrongly_allowed as f64 / total.requests as f64,
            100.0 * total.wrongly_limited as f64 / total.requests as f64,
            total.log_max_window,
            total.counter_max_window,
            total.fixed_max_window
        );
        // The log is exact; the counter's sound bound is 2 × the limit; so is the fixed
        // window's, which the boundary bursts reach.
        assert!(total.log_max_window <= LIMIT as usize, "{name}");
        assert!(total.counter_max_window <= 2 * LIMIT as usize, "{name}");
        assert!(total.fixed_max_window <= 2 * LIMIT as usize, "{name}");
        if matches!(process, WindowBoundaryBurst { .. }) {
            assert_eq!(total.fixed_max_window, 2 * LIMIT as usize);
            assert!(total.counter_max_window < 2 * LIMIT as usize);
        }
    }
}

/// Memory per key at a million keys (a hundred thousand in the browser, to keep the debug
/// build within the page's time limit).
#[distlab_tests::test]
fn keyed_memory_per_key() {
    let keys: u64 = if cfg!(target_arch = "wasm32") {
        100_000
    } else {
        1_000_000
    };
    let gcra = GcraRule::new(GcraConfig {
        burst: 10.0,
        rate_per_sec: 5.0,
    })
    .unwrap();
    let mut k = KeyedLimiter::new(gcra, keys).unwrap();
    for key in 0..keys {
        assert!(k.try_acquire(key, Time(key), 1.0).unwrap().allowed);
    }
    let m = k.memory();
    println!("GCRA, {keys} u64 keys: {m:?}");
    assert_eq!(m.keys, keys);
    assert_eq!(m.state_bytes, 16);
    // Slab slot 32 B (the slab never more than a chunk ahead of the keys), the index at
    // most 10 B per key (4-byte buckets at a load of at least 2/5).
    assert!(m.bytes_per_key <= 32.0 + 10.0 + 1.0, "{m:?}");
    assert!(m.bytes_per_key_excluding_keys <= 64.0, "{m:?}");

    let bucket = TokenBucketRule::new(TokenBucketConfig::new(10.0, 5.0)).unwrap();
    let mut k = KeyedLimiter::new(bucket, keys).unwrap();
    for key in 0..keys {
        assert!(k.try_acquire(key, Time(key), 1.0).unwrap().allowed);
    }
    let m = k.memory();
    println!("token bucket, {keys} u64 keys: {m:?}");
    assert_eq!(m.keys, keys);
    // The exact bucket keeps a start, a clock and one signed offset per key.
    assert_eq!(m.state_bytes, 32);
    assert!(m.bytes_per_key_excluding_keys <= 64.0, "{m:?}");
}

/// Issue 13: near the end of `Time` waits saturated and a denial could carry a wait of 0
/// (`Retry-After: 0`). Every algorithm decides up to [`MAX_DECISION_TIME`], where a
/// denial still waits, and refuses any later time, naming `now`, without changing a thing.
#[distlab_tests::test]
fn near_the_end_of_time_a_denial_always_waits() {
    let configs: Vec<AlgorithmConfig> = serde_json::from_str(
        r#"[
            {"algorithm": "fixedWindow", "config": {"limit": 1, "windowMs": 1000}},
            {"algorithm": "slidingLog", "config": {"limit": 1, "windowMs": 1000}},
            {"algorithm": "slidingCounter", "config": {"limit": 1, "windowMs": 1000}},
            {"algorithm": "tokenBucket", "config": {"capacity": 1, "refillPerSec": 1}},
            {"algorithm": "gcra", "config": {"burst": 1, "ratePerSec": 1}},
            {"algorithm": "leakyBucket", "config": {"queueSize": 1, "drainPerSec": 1}}
        ]"#,
    )
    .unwrap();
    let last = MAX_DECISION_TIME;
    for config in configs {
        let mut k = AnyKeyedLimiter::<u64>::new(&config, 10).unwrap();
        assert!(k.try_acquire(1, last, 1.0).unwrap().allowed, "{config:?}");
        let d = k.try_acquire(1, last, 1.0).unwrap();
        assert!(!d.allowed && d.retry_after.0 > 0, "{config:?}: {d:?}");
        for now in [Time(last.0 + 1), Time(u64::MAX)] {
            let e = k.try_acquire(1, now, 1.0).unwrap_err();
            assert!(e.to_string().contains("`now`"), "{config:?}: {e}");
            let e = k.try_acquire(2, now, 1.0).unwrap_err();
            assert!(e.to_string().contains("`now`"), "{config:?}: {e}");
        }
        assert_eq!(k.len(), 1, "{config:?}: a refused call created a key");
        let again = k.try_acquire(1, last, 1.0).unwrap();
        assert_eq!(again, d, "{config:?}: a refused call changed the state");
    }
}
