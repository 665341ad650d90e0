//! The sketches against their formulas, over seeded trials, next to reference crates:
//! `fastbloom` (Bloom), `cuckoofilter` (cuckoo), `hyperloglogplus` (HLL++). The normal
//! run checks sizes that take a second in release; `big_sweep_for_benchmarks` (ignored)
//! prints the tables in BENCHMARKS.md:
//! `cargo test --release -p distlab-tests --test sketch_accuracy -- --ignored --nocapture`.
#![cfg(not(target_arch = "wasm32"))]

use distlab_core::rng::SimRng;
use distlab_core::sketch::bloom::Bloom;
use distlab_core::sketch::count_min::CountMin;
use distlab_core::sketch::cuckoo::Cuckoo;
use distlab_core::sketch::hyperloglog::HyperLogLog;
use hyperloglogplus::{HyperLogLog as _, HyperLogLogPlus};
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

type Fixed = BuildHasherDefault<DefaultHasher>;

/// (measured FPR, formula) for our filter, and fastbloom's measured FPR, after `n` keys
/// and `probes` queries of keys never inserted.
fn bloom_trial(n: u64, p: f64, probes: u64, seed: u64) -> (f64, f64, f64) {
    let mut ours = Bloom::with_rate(n, p).unwrap();
    let mut theirs = fastbloom::BloomFilter::with_false_pos(p)
        .seed(&u128::from(seed))
        .expected_items(n as usize);
    for i in 0..n {
        let k = (seed << 40 | i).to_le_bytes();
        ours.insert(&k);
        theirs.insert(&k);
    }
    let (mut fp_ours, mut fp_theirs) = (0u64, 0u64);
    for i in 0..probes {
        let k = (seed << 40 | (1 << 39) | i).to_le_bytes();
        fp_ours += u64::from(ours.contains(&k));
        fp_theirs += u64::from(theirs.contains(&k));
    }
    (
        fp_ours as f64 / probes as f64,
        ours.expected_fpr(),
        fp_theirs as f64 / probes as f64,
    )
}

/// Relative errors of ours (Ertl), of the raw estimator, and of hyperloglogplus (if
/// `peer`), over `trials` sketches of `n` distinct elements.
fn hll_errors(p: u8, n: u64, trials: u64, peer: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut ours, mut raw, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..trials {
        let mut h = HyperLogLog::with_sparse_max_bytes(p, 0).unwrap();
        let mut plus: HyperLogLogPlus<u64, Fixed> =
            HyperLogLogPlus::new(p, Fixed::default()).unwrap();
        let base = (t + 1) << 40;
        for i in 0..n {
            h.add(&(base | i).to_le_bytes());
            if peer {
                plus.insert(&(base | i));
            }
        }
        ours.push(h.count() as f64 / n as f64 - 1.0);
        raw.push(h.raw_count() / n as f64 - 1.0);
        if peer {
            theirs.push(plus.count() / n as f64 - 1.0);
        }
    }
    (ours, raw, theirs)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn rmse(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Share of (trial, key) point queries whose overestimate exceeds ε·N, for count-min of
/// `epsilon`, `delta` on Zipf-like streams of `n` items.
fn count_min_violations(epsilon: f64, delta: f64, n: u64, trials: u64, conservative: bool) -> f64 {
    let (mut bad, mut queries) = (0u64, 0u64);
    for t in 0..trials {
        let mut s = CountMin::with_error(epsilon, delta, conservative).unwrap();
        let mut truth: BTreeMap<u64, u64> = BTreeMap::new();
        let mut rng = SimRng::new(t);
        for _ in 0..n {
            let k = (1.0 / rng.next_f64_open0()) as u64 % 5_000 + t * 1_000_000;
            s.add(&k.to_le_bytes(), 1);
            *truth.entry(k).or_default() += 1;
        }
        let bound = epsilon * s.total() as f64;
        for (k, c) in &truth {
            let e = s.estimate(&k.to_le_bytes());
            assert!(e >= *c, "count-min underestimated");
            bad += u64::from((e - c) as f64 > bound);
            queries += 1;
        }
    }
    bad as f64 / queries as f64
}

/// Load factor at the first failed insert: ours, and cuckoofilter's (its `add` errs).
fn cuckoo_loads(capacity: u64, seed: u64) -> (f64, f64) {
    let mut ours = Cuckoo::new(capacity, 8, 500, seed).unwrap();
    let mut i = 0u64;
    while ours.first_failure_load().is_none() {
        ours.insert(&(seed << 40 | i).to_le_bytes());
        i += 1;
    }
    let mut theirs = cuckoofilter::CuckooFilter::<DefaultHasher>::with_capacity(capacity as usize);
    let mut i = 0u64;
    while theirs.add(&(seed << 40 | i)).is_ok() {
        i += 1;
    }
    (
        ours.first_failure_load().unwrap(),
        theirs.len() as f64 / capacity.next_power_of_two() as f64,
    )
}

#[test]
fn bloom_fpr_is_within_ten_percent_of_the_formula_at_a_million_keys() {
    for (p, seed) in [(0.01, 1), (0.001, 2)] {
        let (measured, formula, fastbloom) = bloom_trial(1_000_000, p, 2_000_000, seed);
        eprintln!("p {p}: ours {measured:.5}, formula {formula:.5}, fastbloom {fastbloom:.5}");
        assert!(
            (measured / formula - 1.0).abs() < 0.10,
            "{measured} vs {formula}"
        );
        assert!(
            measured < 1.2 * fastbloom,
            "ours {measured}, fastbloom {fastbloom}"
        );
    }
}

#[test]
fn hll_error_spread_matches_the_theory_and_small_range_beats_the_raw_estimator() {
    let p = 10;
    let theory = 1.04 / 32.0;
    for n in [1_000u64, 10_000, 100_000] {
        let (ours, _, theirs) = hll_errors(p, n, 100, n <= 10_000);
        let s = sd(&ours);
        eprintln!(
            "p {p} n {n}: sd {s:.4} (theory {theory:.4}), hll++ sd {:.4}",
            sd(&theirs)
        );
        // 100 trials estimate a standard deviation within about ±14 % (2σ).
        assert!(s < 1.15 * theory, "n {n}: {s}");
        assert!(
            mean(&ours).abs() < theory / 2.0,
            "n {n}: bias {}",
            mean(&ours)
        );
    }
    // At large n the spread is the asymptotic 1.04/√m itself, within 15 %.
    let (ours, _, _) = hll_errors(p, 200_000, 100, false);
    assert!((sd(&ours) / theory - 1.0).abs() < 0.15, "{}", sd(&ours));
    // Small range, Redis's p = 14: Ertl's estimate is nearly exact where the raw one is
    // far off.
    for n in [100u64, 1_000, 5_000] {
        let (ours, raw, _) = hll_errors(14, n, 20, false);
        eprintln!(
            "p 14 n {n}: rmse ours {:.5}, raw {:.5}",
            rmse(&ours),
            rmse(&raw)
        );
        assert!(rmse(&ours) * 10.0 < rmse(&raw), "n {n}");
    }
}

#[test]
fn count_min_bound_holds_in_at_least_one_minus_delta_of_queries() {
    for conservative in [false, true] {
        let share = count_min_violations(0.01, 0.05, 20_000, 30, conservative);
        eprintln!("conservative {conservative}: {share:.5} of queries beyond ε·N");
        assert!(share <= 0.05, "{share}");
    }
}

#[test]
fn cuckoo_load_at_first_failure_is_at_least_ninety_percent() {
    for seed in 0..10 {
        let (ours, theirs) = cuckoo_loads(1 << 16, seed);
        eprintln!("seed {seed}: ours {ours:.4}, cuckoofilter {theirs:.4}");
        assert!(ours >= 0.90, "seed {seed}: {ours}");
    }
}

#[test]
#[ignore = "minutes of work: the tables of BENCHMARKS.md"]
fn big_sweep_for_benchmarks() {
    println!("| p | trials | measured FPR (ours) | formula | within | fastbloom measured |");
    println!("|---|---|---|---|---|---|");
    for p in [0.1, 0.01, 0.001] {
        let trials: Vec<_> = (0..3)
            .map(|s| bloom_trial(1_000_000, p, 4_000_000, s + 10))
            .collect();
        let m = mean(&trials.iter().map(|t| t.0).collect::<Vec<_>>());
        let f = trials[0].1;
        let fb = mean(&trials.iter().map(|t| t.2).collect::<Vec<_>>());
        println!(
            "| {p} | 3 | {m:.5} | {f:.5} | {:+.2} % | {fb:.5} |",
            (m / f - 1.0) * 100.0
        );
        assert!((m / f - 1.0).abs() < 0.10);
    }
    println!();
    println!(
        "| p | n | trials | mean error | sd | 1.04/√m | sd / theory | raw estimator RMSE | hll++ sd |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in [10u8, 14, 16] {
        let theory = 1.04 / f64::from(1u32 << p).sqrt();
        for n in [10u64, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000] {
            let trials = match n {
                ..=100_000 => 100,
                1_000_000 => 50,
                _ => 16,
            };
            let peer = p == 14 && n <= 1_000_000;
            let (ours, raw, theirs) = hll_errors(p, n, trials, peer);
            println!(
                "| {p} | {n} | {trials} | {:+.5} | {:.5} | {theory:.5} | {:.2} | {:.5} | {} |",
                mean(&ours),
                sd(&ours),
                sd(&ours) / theory,
                rmse(&raw),
                if peer {
                    format!("{:.5}", sd(&theirs))
                } else {
                    "–".into()
                }
            );
        }
    }
    println!();
    println!("| ε | δ | trials | share beyond ε·N, plain | conservative |");
    println!("|---|---|---|---|---|");
    for (e, d) in [(0.01, 0.05), (0.001, 0.01)] {
        println!(
            "| {e} | {d} | 100 | {:.5} | {:.5} |",
            count_min_violations(e, d, 50_000, 100, false),
            count_min_violations(e, d, 50_000, 100, true)
        );
    }
    println!();
    println!(
        "| capacity | seeds | load at first failure (ours): min / mean | cuckoofilter: min / mean |"
    );
    println!("|---|---|---|---|");
    for cap in [1u64 << 12, 1 << 16, 1 << 20] {
        let loads: Vec<(f64, f64)> = (0..10).map(|s| cuckoo_loads(cap, s)).collect();
        let ours: Vec<f64> = loads.iter().map(|l| l.0).collect();
        let theirs: Vec<f64> = loads.iter().map(|l| l.1).collect();
        let min = |v: &[f64]| v.iter().copied().fold(1.0, f64::min);
        println!(
            "| {cap} | 10 | {:.4} / {:.4} | {:.4} / {:.4} |",
            min(&ours),
            mean(&ours),
            min(&theirs),
            mean(&theirs)
        );
    }
}
