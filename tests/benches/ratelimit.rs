//! Decisions per second of every local rate limiter, and our GCRA against `governor`'s in
//! the same run: `cargo bench -p distlab-tests --bench ratelimit`. Criterion reports
//! throughput in decisions (elements) per second; ns per check is its inverse.
//!
//! Every limiter gets one request of cost 1 every `gap` µs against 1 000 per second (limit
//! or burst 100, windows of 100 ms), 10 000 decisions per iteration: a 2 ms gap admits all,
//! a 10 µs gap denies nearly all after the first burst (each denial computes its wait).
//! Governor is fed the same times through a clock that reads a plain `Cell` (its own fake
//! clock is an atomic, which would charge it for the test harness); its state is an atomic
//! compare-and-swap, the price of being shareable across threads, where ours takes `&mut`.
//! `ours` computes the whole decision (remaining, retry-after, reset-after); `ours_check`
//! answers yes or no, as governor's `check` does (its wait is computed only on request).

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::Time;
use distlab_core::ratelimit::fixed_window::{FixedWindow, FixedWindowConfig};
use distlab_core::ratelimit::gcra::{Gcra, GcraConfig, GcraRule};
use distlab_core::ratelimit::keyed::KeyedLimiter;
use distlab_core::ratelimit::leaky_bucket::{LeakyBucket, LeakyBucketConfig};
use distlab_core::ratelimit::sliding_counter::{SlidingCounter, SlidingCounterConfig};
use distlab_core::ratelimit::sliding_log::{SlidingLog, SlidingLogConfig};
use distlab_core::ratelimit::{RateLimitDecision, TokenBucket, TokenBucketConfig};
use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};
use std::cell::Cell;
use std::num::NonZeroU32;
use std::rc::Rc;

const DECISIONS: u64 = 10_000;
const GAPS: [(&str, u64); 2] = [("all_admitted", 2_000), ("mostly_denied", 10)];

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("bench config is valid: {e}"),
    }
}

fn drive(gap_us: u64, mut decide: impl FnMut(Time) -> Option<RateLimitDecision>) -> u64 {
    let mut allowed = 0;
    for i in 0..DECISIONS {
        if let Some(d) = decide(Time(i * gap_us)) {
            allowed += u64::from(d.allowed);
        }
    }
    allowed
}

fn bench_one<L>(
    c: &mut Criterion,
    name: &str,
    make: impl Fn() -> L + Copy,
    decide: impl Fn(&mut L, Time) -> Option<RateLimitDecision> + Copy,
) {
    let mut group = c.benchmark_group(format!("ratelimit/{name}"));
    group.throughput(Throughput::Elements(DECISIONS));
    for (case, gap) in GAPS {
        group.bench_function(case, |b| {
            b.iter_batched_ref(
                make,
                |l| drive(gap, |t| decide(l, t)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn algorithms(c: &mut Criterion) {
    let cost = || black_box(1.0);
    bench_one(
        c,
        "fixed_window",
        || {
            ok(FixedWindow::new(FixedWindowConfig {
                limit: 100.0,
                window_ms: 100.0,
            }))
        },
        |l, t| l.try_acquire(t, cost()).ok(),
    );
    bench_one(
        c,
        "sliding_log",
        || {
            ok(SlidingLog::new(SlidingLogConfig {
                limit: 100.0,
                window_ms: 100.0,
            }))
        },
        |l, t| l.try_acquire(t, cost()).ok(),
    );
    bench_one(
        c,
        "sliding_counter",
        || {
            ok(SlidingCounter::new(SlidingCounterConfig {
                limit: 100.0,
                window_ms: 100.0,
            }))
        },
        |l, t| l.try_acquire(t, cost()).ok(),
    );
    bench_one(
        c,
        "token_bucket",
        || ok(TokenBucket::new(TokenBucketConfig::new(100.0, 1_000.0))),
        |l, t| l.try_acquire(t, cost()).ok(),
    );
    bench_one(
        c,
        "gcra",
        || {
            ok(Gcra::new(GcraConfig {
                burst: 100.0,
                rate_per_sec: 1_000.0,
            }))
        },
        |l, t| l.try_acquire(t, cost()).ok(),
    );
    bench_one(
        c,
        "leaky_bucket",
        || {
            ok(LeakyBucket::new(LeakyBucketConfig {
                queue_size: 100.0,
                drain_per_sec: 1_000.0,
            }))
        },
        |l, t| l.try_enqueue(t, cost()).ok().map(|s| s.decision),
    );
    // 10 000 keys, each request to key (i · 7919) mod 10 000: every decision a hash lookup
    // and an LRU move in a table too big for L1.
    bench_one(
        c,
        "keyed_gcra_10k_keys",
        || {
            let rule = ok(GcraRule::new(GcraConfig {
                burst: 100.0,
                rate_per_sec: 1_000.0,
            }));
            let mut k = ok(KeyedLimiter::new(rule, 10_000));
            for key in 0..10_000u64 {
                let _ = k.try_acquire(key, Time(0), 1.0);
            }
            (k, 0u64)
        },
        |(k, i), t| {
            *i += 1;
            k.try_acquire((*i * 7_919) % 10_000, t, cost()).ok()
        },
    );
}

/// Governor's clock, read from a plain cell the driver sets.
#[derive(Clone, Default)]
struct CellClock(Rc<Cell<u64>>);

impl Clock for CellClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.get())
    }
}

fn gcra_against_governor(c: &mut Criterion) {
    let mut group = c.benchmark_group("gcra_vs_governor");
    group.throughput(Throughput::Elements(DECISIONS));
    for (case, gap) in GAPS {
        group.bench_function(format!("ours/{case}"), |b| {
            b.iter_batched_ref(
                || {
                    ok(Gcra::new(GcraConfig {
                        burst: 100.0,
                        rate_per_sec: 1_000.0,
                    }))
                },
                |g| drive(gap, |t| g.try_acquire(t, black_box(1.0)).ok()),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("ours_check/{case}"), |b| {
            b.iter_batched_ref(
                || {
                    ok(Gcra::new(GcraConfig {
                        burst: 100.0,
                        rate_per_sec: 1_000.0,
                    }))
                },
                |g| {
                    let mut allowed = 0u64;
                    for i in 0..DECISIONS {
                        allowed += u64::from(g.check(Time(i * gap), black_box(1.0)) == Ok(true));
                    }
                    allowed
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("governor/{case}"), |b| {
            b.iter_batched_ref(
                || {
                    let clock = CellClock::default();
                    let quota =
                        Quota::per_second(NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN))
                            .allow_burst(NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN));
                    (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
                },
                |(limiter, clock)| {
                    let mut allowed = 0u64;
                    for i in 0..DECISIONS {
                        clock.0.set(i * gap * 1_000);
                        allowed += u64::from(limiter.check().is_ok());
                    }
                    allowed
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, algorithms, gcra_against_governor);
criterion_main!(benches);
