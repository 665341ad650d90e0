//! Bloom insert / query against `fastbloom`, HyperLogLog add / count against
//! `hyperloglogplus`, in one run: `cargo bench -p distlab-tests --bench sketch`.
//! Criterion reports throughput in elements per second; ns per operation is its inverse.
//!
//! Both Bloom filters are sized for 10^6 keys at 1 % (9.6 Mbit, 7 hashes), filled with
//! 10^6 keys, then timed on 10^4 inserts of new keys and 10^4 queries of keys never
//! inserted. Keys are u64: ours hashes their 8 little-endian bytes with MurmurHash64A,
//! fastbloom the value with its default hasher. Both HyperLogLogs have p = 14 and hold
//! 10^5 elements (ours dense, as Redis turns past ~2,000; hll++ likewise past its sparse
//! limit); `add` times 10^4 new elements, `count` one estimate.

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::sketch::bloom::Bloom;
use distlab_core::sketch::hyperloglog::HyperLogLog;
use hyperloglogplus::{HyperLogLog as _, HyperLogLogPlus};
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

const FILLED: u64 = 1_000_000;
const OPS: u64 = 10_000;

type Fixed = BuildHasherDefault<DefaultHasher>;

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("bench config is valid: {e:?}"),
    }
}

fn bloom(c: &mut Criterion) {
    let mut ours = ok(Bloom::with_rate(FILLED, 0.01));
    let mut theirs = fastbloom::BloomFilter::with_false_pos(0.01).expected_items(FILLED as usize);
    for k in 0..FILLED {
        ours.insert(&k.to_le_bytes());
        theirs.insert(&k);
    }
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(OPS));
    g.bench_function("insert/ours", |b| {
        b.iter_batched_ref(
            || ours.clone(),
            |f| {
                for k in FILLED..FILLED + OPS {
                    black_box(f.insert(&k.to_le_bytes()));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("insert/fastbloom", |b| {
        b.iter_batched_ref(
            || theirs.clone(),
            |f| {
                for k in FILLED..FILLED + OPS {
                    black_box(f.insert(&k));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("query/ours", |b| {
        b.iter(|| {
            (FILLED * 2..FILLED * 2 + OPS)
                .filter(|k| ours.contains(&k.to_le_bytes()))
                .count()
        })
    });
    g.bench_function("query/fastbloom", |b| {
        b.iter(|| {
            (FILLED * 2..FILLED * 2 + OPS)
                .filter(|k| theirs.contains(k))
                .count()
        })
    });
    g.finish();
}

fn hyperloglog(c: &mut Criterion) {
    const HELD: u64 = 100_000;
    let mut ours = HyperLogLog::redis();
    let mut theirs: HyperLogLogPlus<u64, Fixed> = ok(HyperLogLogPlus::new(14, Fixed::default()));
    for k in 0..HELD {
        ours.add(&k.to_le_bytes());
        theirs.insert(&k);
    }
    let mut g = c.benchmark_group("hyperloglog");
    g.throughput(Throughput::Elements(OPS));
    g.bench_function("add/ours", |b| {
        b.iter_batched_ref(
            || ours.clone(),
            |h| {
                for k in HELD..HELD + OPS {
                    black_box(h.add(&k.to_le_bytes()));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("add/hyperloglogplus", |b| {
        b.iter_batched_ref(
            || theirs.clone(),
            |h| {
                for k in HELD..HELD + OPS {
                    h.insert(&k);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("count/ours", |b| b.iter(|| black_box(&ours).count()));
    // hll++ caches nothing between counts of an unchanged sketch only if it holds no
    // pending inserts; clone per batch so each count sees the same state.
    g.bench_function("count/hyperloglogplus", |b| {
        b.iter_batched_ref(|| theirs.clone(), |h| h.count(), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bloom, hyperloglog);
criterion_main!(benches);
