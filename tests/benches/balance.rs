//! Ring lookup: ns per key → node, ours against the `hashring` crate and a `BTreeMap`
//! ring, in one run: `cargo bench -p distlab-tests --bench balance`. Criterion reports
//! throughput in lookups per second; ns per lookup is its inverse.
//!
//! All three hold the same shape: 10 nodes × V virtual nodes (V = 100 and 1,000), and
//! are timed on the same 10^4 u64 keys.
//! - ours (`HashRing::lookup`): MurmurHash64A + SplitMix64 of the key's 8 bytes, then a
//!   binary search over a sorted `Vec<u64>` of points with a parallel owner array;
//!   returns the node's `&str`.
//! - `hashring` 0.3: SipHash-1-3 (std's `DefaultHasher`) of the key, then a binary search
//!   over a sorted `Vec` of (hash, virtual node) pairs; its virtual nodes are
//!   `(name, index)` values we add ourselves, as its documentation shows; returns the
//!   `&(String, u32)`.
//! - `BTreeMap<u64, u32>`: our hash, then `range(h..).next()` (wrapping to the first):
//!   what a ring built on a tree walks per lookup.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use distlab_core::balance::consistent_hash::{HashRing, ring_hash};
use std::collections::BTreeMap;

const NODES: u32 = 10;
const KEYS: u64 = 10_000;
const SEED: u64 = 1;

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("bench config is valid: {e:?}"),
    }
}

fn lookup(c: &mut Criterion) {
    let keys: Vec<[u8; 8]> = (0..KEYS).map(|k| (k * 0x9e37_79b9).to_le_bytes()).collect();
    let mut g = c.benchmark_group("ring_lookup");
    g.throughput(Throughput::Elements(KEYS));
    for vnodes in [100u32, 1_000] {
        let mut ours = ok(HashRing::new(vnodes, SEED));
        let mut theirs: hashring::HashRing<(String, u32)> = hashring::HashRing::new();
        for n in 0..NODES {
            let name = format!("node-{n}");
            ok(ours.add_node(&name, 1));
            for v in 0..vnodes {
                theirs.add((name.clone(), v));
            }
        }
        let tree: BTreeMap<u64, u32> = ours
            .points()
            .map(|(p, name)| (p, name.trim_start_matches("node-").parse().unwrap_or(0)))
            .collect();
        g.bench_function(format!("ours/{vnodes}"), |b| {
            b.iter(|| {
                for k in &keys {
                    black_box(ours.lookup(black_box(k)));
                }
            })
        });
        g.bench_function(format!("hashring/{vnodes}"), |b| {
            b.iter(|| {
                for k in &keys {
                    black_box(theirs.get(black_box(k)));
                }
            })
        });
        g.bench_function(format!("btreemap/{vnodes}"), |b| {
            b.iter(|| {
                for k in &keys {
                    let h = ring_hash(SEED, black_box(k));
                    black_box(tree.range(h..).next().or_else(|| tree.iter().next()));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
