//! Token-bucket decisions per second: `cargo bench -p distlab-tests --bench token_bucket`.
//! Criterion reports throughput in decisions (elements) per second.

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::ratelimit::{TokenBucket, TokenBucketConfig};
use distlab_core::time::Time;

const DECISIONS: u64 = 10_000;

fn bucket() -> TokenBucket {
    match TokenBucket::new(TokenBucketConfig::new(100.0, 1_000.0)) {
        Ok(b) => b,
        Err(e) => panic!("bench config is valid: {e}"),
    }
}

/// One request of cost 2 every `gap_us`, against 1 000 tokens/s: a 1 ms gap admits about half
/// (the denied half also computes retry_after), a 2 ms gap admits all, a 10 µs gap denies
/// nearly all after the initial burst.
fn run(b: &mut TokenBucket, gap_us: u64) -> u64 {
    let mut allowed = 0;
    for i in 0..DECISIONS {
        if let Ok(d) = b.try_acquire(Time(i * gap_us), black_box(2.0)) {
            allowed += u64::from(d.allowed);
        }
    }
    allowed
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_bucket");
    group.throughput(Throughput::Elements(DECISIONS));
    for (name, gap_us) in [
        ("all_admitted", 2_000),
        ("half_denied", 1_000),
        ("mostly_denied", 10),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_batched_ref(bucket, |b| run(b, gap_us), BatchSize::SmallInput)
        });
    }
    group.bench_function("peek", |bench| {
        let b = bucket();
        bench.iter(|| {
            let mut allowed = 0u64;
            for i in 0..DECISIONS {
                if let Ok(d) = b.peek(Time(i), black_box(2.0)) {
                    allowed += u64::from(d.allowed);
                }
            }
            allowed
        })
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
