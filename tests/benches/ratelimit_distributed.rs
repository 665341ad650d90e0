//! The simulated store's script executions per second, beside the token bucket's own
//! decisions: `cargo bench -p distlab-tests --bench ratelimit_distributed`. Criterion reports
//! throughput in decisions (elements) per second. Each decision is one whole script run
//! against the Redis-subset store (HMGET + HSET + PEXPIRE, or ZREMRANGEBYSCORE + ZCARD +
//! ZADD + PEXPIRE), as the store node runs it for one `EVALSHA`.

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::ratelimit::distributed::scripts::{self, SlidingWindowArgs, TokenBucketArgs};
use distlab_core::ratelimit::distributed::store::RedisStore;
use distlab_core::time::Time;

const DECISIONS: u64 = 10_000;

fn token_bucket(store: &mut RedisStore, gap_us: u64) -> u64 {
    let mut granted = 0;
    for i in 0..DECISIONS {
        let now = i * gap_us;
        let args = TokenBucketArgs {
            capacity: 100,
            rate_per_sec: 1_000,
            now_us: now,
            wanted: black_box(2),
            partial: false,
        };
        if let Ok(r) = scripts::token_bucket(store, Time(now), "bucket", &args) {
            granted += r.granted;
        }
    }
    granted
}

fn sliding_window(store: &mut RedisStore, gap_us: u64) -> u64 {
    let mut admitted = 0;
    for i in 0..DECISIONS {
        let now = i * gap_us;
        let args = SlidingWindowArgs {
            limit: 100,
            window_us: 100_000,
            now_us: now,
            request: format!("r{i}"),
        };
        if let Ok(r) = scripts::sliding_window(store, Time(now), "log", &args) {
            admitted += u64::from(r.admitted);
        }
    }
    admitted
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit_distributed_store");
    group.throughput(Throughput::Elements(DECISIONS));
    // Same shapes as the token_bucket bench: 2 ms gaps admit all, 1 ms half, 10 µs almost none.
    for (name, gap_us) in [
        ("token_bucket_all_admitted", 2_000),
        ("token_bucket_half_denied", 1_000),
        ("token_bucket_mostly_denied", 10),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_batched_ref(
                RedisStore::new,
                |s| token_bucket(s, gap_us),
                BatchSize::SmallInput,
            )
        });
    }
    // 100 per 100 ms: a 1 ms gap admits all and keeps ~100 entries; 100 µs admits a tenth.
    for (name, gap_us) in [
        ("sliding_window_all_admitted", 1_000),
        ("sliding_window_mostly_denied", 100),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_batched_ref(
                RedisStore::new,
                |s| sliding_window(s, gap_us),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
