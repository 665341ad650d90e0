//! ns per operation of our LRU against the `lru` crate, on the same operations in the same
//! run, and of W-TinyLFU: `cargo bench -p distlab-tests --bench cache`. Criterion reports
//! throughput in operations (elements) per second; ns per operation is its inverse.
//!
//! Cases (u64 keys and values, a cache of 10 000 entries, 10 000 operations per iteration):
//! - `get_hit`: `get` of keys the cache holds, uniformly drawn (every get promotes);
//! - `put_evict`: `put` of new keys into the full cache (every put evicts one);
//! - `zipf_trace`: a Zipf (s = 1) trace over 100 000 keys, a miss putting the key — the
//!   mix a real cache sees (about 72 % hits at this size).
//!
//! Hashers differ: ours `rustc_hash`'s Fx (fixed, for determinism), the `lru` crate's
//! hashbrown default (foldhash). Both are fast non-cryptographic hashes of a u64.

use std::hint::black_box;
use std::num::NonZeroUsize;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use distlab_core::cache::{Lru, TinyLfu};
use distlab_core::rng::SimRng;
use distlab_core::sim::workload::{KeyDistribution, KeySampler};

const CAPACITY: usize = 10_000;
const OPS: usize = 10_000;

fn keys(distribution: KeyDistribution, seed: u64) -> Vec<u64> {
    let sampler = match KeySampler::new(&distribution) {
        Ok(s) => s,
        Err(e) => panic!("bench distribution is valid: {e}"),
    };
    let mut rng = SimRng::new(seed);
    (0..OPS).map(|_| sampler.sample(&mut rng)).collect()
}

fn ours_lru() -> Lru<u64, u64> {
    match Lru::new(CAPACITY) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn ours_tinylfu() -> TinyLfu<u64, u64> {
    match TinyLfu::new(CAPACITY) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn theirs_lru() -> lru::LruCache<u64, u64> {
    lru::LruCache::new(NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN))
}

fn get_hit(c: &mut Criterion) {
    let hits = keys(
        KeyDistribution::Uniform {
            keys: CAPACITY as u64,
        },
        1,
    );
    let mut group = c.benchmark_group("cache/get_hit");
    group.throughput(Throughput::Elements(OPS as u64));
    let mut ours = ours_lru();
    let mut theirs = theirs_lru();
    let mut tiny = ours_tinylfu();
    for k in 0..CAPACITY as u64 {
        ours.put(k, k);
        theirs.put(k, k);
    }
    // W-TinyLFU keeps what it admits: read the keys it holds.
    for k in 0..CAPACITY as u64 {
        tiny.put(k, k);
    }
    let tiny_hits: Vec<u64> = hits
        .iter()
        .map(|&k| if tiny.peek(&k).is_some() { k } else { 0 })
        .collect();
    group.bench_function("ours_lru", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &hits {
                sum += ours.get(k).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    group.bench_function("lru_crate", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &hits {
                sum += theirs.get(k).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    group.bench_function("ours_tinylfu", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for k in &tiny_hits {
                sum += tiny.get(k).copied().unwrap_or(0);
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn put_evict(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache/put_evict");
    group.throughput(Throughput::Elements(OPS as u64));
    let mut ours = ours_lru();
    let mut next = 0u64;
    group.bench_function("ours_lru", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                black_box(ours.put(next, next));
                next += 1;
            }
        })
    });
    let mut theirs = theirs_lru();
    let mut next = 0u64;
    group.bench_function("lru_crate", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                black_box(theirs.push(next, next));
                next += 1;
            }
        })
    });
    let mut tiny = ours_tinylfu();
    let mut next = 0u64;
    group.bench_function("ours_tinylfu", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                black_box(tiny.put(next, next));
                next += 1;
            }
        })
    });
    group.finish();
}

fn zipf_trace(c: &mut Criterion) {
    let trace = keys(
        KeyDistribution::Zipf {
            keys: 100_000,
            s: 1.0,
        },
        2,
    );
    let mut group = c.benchmark_group("cache/zipf_trace");
    group.throughput(Throughput::Elements(OPS as u64));
    let mut ours = ours_lru();
    group.bench_function("ours_lru", |b| {
        b.iter(|| {
            for &k in &trace {
                if ours.get(&k).is_none() {
                    black_box(ours.put(k, k));
                }
            }
        })
    });
    let mut theirs = theirs_lru();
    group.bench_function("lru_crate", |b| {
        b.iter(|| {
            for &k in &trace {
                if theirs.get(&k).is_none() {
                    black_box(theirs.push(k, k));
                }
            }
        })
    });
    let mut tiny = ours_tinylfu();
    group.bench_function("ours_tinylfu", |b| {
        b.iter(|| {
            for &k in &trace {
                if tiny.get(&k).is_none() {
                    black_box(tiny.put(k, k));
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, get_hit, put_evict, zipf_trace);
criterion_main!(benches);
