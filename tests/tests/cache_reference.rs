//! The caches against references: our LRU against the `lru` crate on random operation
//! sequences (the same evictions, the same order; its `get` promotes and `peek` does not,
//! as ours), and every policy's hit ratio on Zipf and scan-polluted traces, W-TinyLFU's
//! beside `moka`'s (TinyLFU without the window, evicting in batches: ratios compared, not
//! operations).
//!
//! Print the hit-ratio table (the one in BENCHMARKS.md):
//! `cargo test -p distlab-tests --release --test cache_reference -- --nocapture hit_ratios`.
#![cfg(not(target_arch = "wasm32"))]

use std::num::NonZeroUsize;

use distlab_core::cache::{EvictionCause, EvictionPolicy, Lfu, Lru, TinyLfu};
use distlab_core::rng::SimRng;
use distlab_core::sim::workload::{KeyDistribution, KeySampler};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Get(u16),
    Peek(u16),
    Put(u16, u32),
    Remove(u16),
}

fn op(keys: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..keys).prop_map(Op::Get),
        1 => (0..keys).prop_map(Op::Peek),
        3 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (0..keys).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Same answers, same evictions in the same order, same contents in the same order.
    #[test]
    fn lru_agrees_with_the_lru_crate(
        cap in 1usize..20,
        ops in proptest::collection::vec(op(40), 1..500),
    ) {
        let mut ours = Lru::new(cap).unwrap();
        let mut theirs = lru::LruCache::new(NonZeroUsize::new(cap).unwrap());
        for op in ops {
            match op {
                Op::Get(k) => prop_assert_eq!(ours.get(&k), theirs.get(&k)),
                Op::Peek(k) => prop_assert_eq!(ours.peek(&k), theirs.peek(&k)),
                Op::Remove(k) => prop_assert_eq!(ours.remove(&k), theirs.pop(&k)),
                Op::Put(k, v) => {
                    // `push` returns the evicted entry, or the old value under the same key.
                    let theirs_out = theirs.push(k, v);
                    let ours_out: Vec<_> = ours.put(k, v).into_iter().collect();
                    prop_assert!(ours_out.len() <= 1);
                    let ours_out = ours_out.into_iter().next();
                    match (&ours_out, &theirs_out) {
                        (Some(e), Some((tk, tv))) => {
                            prop_assert_eq!((e.key, e.value), (*tk, *tv));
                            let same_key = e.cause == EvictionCause::Replaced;
                            prop_assert_eq!(same_key, *tk == k);
                        }
                        (None, None) => {}
                        _ => prop_assert!(false, "{:?} vs {:?}", ours_out, theirs_out),
                    }
                }
            }
            let ours_keys: Vec<u16> = ours.iter().map(|(k, _)| *k).collect();
            let theirs_keys: Vec<u16> = theirs.iter().map(|(k, _)| *k).collect();
            prop_assert_eq!(ours_keys, theirs_keys);
        }
    }
}

/// Keys in the traces.
const KEYS: u64 = 10_000;
/// Requests per trace.
const REQUESTS: usize = 300_000;
/// Cache sizes, as a share of the keys.
const SIZES: [f64; 3] = [0.01, 0.05, 0.10];

/// A named request trace.
struct Trace {
    name: String,
    keys: Vec<u64>,
}

fn zipf(s: f64, seed: u64) -> Trace {
    let sampler = KeySampler::new(&KeyDistribution::Zipf { keys: KEYS, s }).unwrap();
    let mut rng = SimRng::new(seed);
    Trace {
        name: format!("Zipf s = {s}"),
        keys: (0..REQUESTS).map(|_| sampler.sample(&mut rng)).collect(),
    }
}

/// Zipf (s = 1) traffic with a scan of never-repeated keys, 2.5 times the largest cache,
/// after every 5 000 requests: a third of the requests are one-hit wonders arriving in
/// runs, the pollution LRU cannot resist (a backup or a report reading every row).
fn scan_polluted(seed: u64) -> Trace {
    let sampler = KeySampler::new(&KeyDistribution::Zipf { keys: KEYS, s: 1.0 }).unwrap();
    let mut rng = SimRng::new(seed);
    let scan = (KEYS as f64 * SIZES[2]) as u64;
    let mut next_scan_key = KEYS;
    let mut keys = Vec::with_capacity(REQUESTS);
    while keys.len() < REQUESTS {
        for _ in 0..5_000 {
            keys.push(sampler.sample(&mut rng));
        }
        for _ in 0..scan * 25 / 10 {
            keys.push(next_scan_key);
            next_scan_key += 1;
        }
    }
    keys.truncate(REQUESTS);
    Trace {
        name: "Zipf s = 1 + scans".into(),
        keys,
    }
}

/// Hits over requests: a miss puts the key.
fn hit_ratio(cache: &mut dyn EvictionPolicy<u64, u64>, trace: &[u64]) -> f64 {
    let mut hits = 0usize;
    for &k in trace {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.put(k, k);
        }
    }
    hits as f64 / trace.len() as f64
}

fn moka_hit_ratio(capacity: usize, trace: &[u64]) -> f64 {
    let cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(capacity as u64);
    let mut hits = 0usize;
    for &k in trace {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, k);
            // Moka applies reads, writes and evictions in batches; running them now makes
            // its capacity hold at every request, so the ratio is not flattered by a cache
            // briefly over size.
            cache.run_pending_tasks();
        }
    }
    hits as f64 / trace.len() as f64
}

struct Row {
    trace: String,
    size: f64,
    lru: f64,
    lfu: f64,
    tinylfu: f64,
    moka: f64,
}

fn ratios(trace: &Trace) -> Vec<Row> {
    SIZES
        .iter()
        .map(|&size| {
            let cap = (KEYS as f64 * size) as usize;
            Row {
                trace: trace.name.clone(),
                size,
                lru: hit_ratio(&mut Lru::new(cap).unwrap(), &trace.keys),
                lfu: hit_ratio(&mut Lfu::new(cap).unwrap(), &trace.keys),
                tinylfu: hit_ratio(&mut TinyLfu::new(cap).unwrap(), &trace.keys),
                moka: moka_hit_ratio(cap, &trace.keys),
            }
        })
        .collect()
}

#[test]
fn hit_ratios() {
    let traces = [zipf(0.8, 1), zipf(1.0, 2), zipf(1.2, 3), scan_polluted(4)];
    let rows: Vec<Row> = traces.iter().flat_map(ratios).collect();
    println!("{KEYS} keys, {REQUESTS} requests per trace; hit ratio in % (a miss puts the key)\n");
    println!("| trace | cache size | LRU | LFU | W-TinyLFU | moka |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} % ({}) | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.trace,
            r.size * 100.0,
            (KEYS as f64 * r.size) as usize,
            r.lru * 100.0,
            r.lfu * 100.0,
            r.tinylfu * 100.0,
            r.moka * 100.0
        );
    }
    for r in &rows {
        let at = format!("{} at {:.0} %", r.trace, r.size * 100.0);
        assert!(
            r.tinylfu >= r.lru,
            "{at}: W-TinyLFU {} < LRU {}",
            r.tinylfu,
            r.lru
        );
        assert!(
            r.tinylfu >= r.lfu,
            "{at}: W-TinyLFU {} < LFU {}",
            r.tinylfu,
            r.lfu
        );
        // Same admission idea: within a few points of each other.
        assert!(
            (r.tinylfu - r.moka).abs() < 0.05,
            "{at}: W-TinyLFU {} vs moka {}",
            r.tinylfu,
            r.moka
        );
    }
}
