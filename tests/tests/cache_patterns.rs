//! Cache patterns (`cache.patterns`) through the lab as the page drives it: cache-aside's
//! stale set on a scripted schedule and Facebook's leases preventing it on the same
//! schedule (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013, §3.2.1), every
//! pattern selectable in the config, and the soak: over many seeds cache-aside without
//! leases finds stale reads and with leases none (`distlab_core::cache::patterns::soak`;
//! `CACHE_PATTERNS_SEEDS=n` changes the number of seeds, a failing seed prints its replay
//! command, `cargo xtask soak cache-patterns --seed S`).

use distlab_core::Duration;
use distlab_core::cache::patterns::lab::PatternsLab;
use distlab_core::cache::patterns::soak::{SoakOptions, run_seed};
use distlab_core::lab::{Cluster, Lab, Runner};
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

type PatternsRun = Runner<Cluster<PatternsLab>>;

/// Seeds per run: threads share them natively; a browser runs a few, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    3
} else {
    1_000
};

fn run(extra: serde_json::Value) -> PatternsRun {
    let mut config = json!({});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    PatternsRun::from_json(&config).unwrap()
}

fn stale_reads(lab: &PatternsRun) -> u64 {
    lab.model().lab().checker().stale_reads()
}

/// Every hop 1 ms, the store 5 ms, a reader 30 ms slow to fill:
///  0 ms  reader misses (leased if leases are on), reads version 0 from the store at 3
/// 10 ms  writer: store ← version 1, then delete the cache entry (acknowledged at 19)
/// 40 ms  the reader's fill of version 0 reaches the cache
/// 50 ms  a read hits the cache: version 0 without leases, a stale read.
fn stale_set_schedule(leases: bool) -> PatternsRun {
    let mut lab = run(json!({
        "pattern": "cacheAside",
        "leases": leases,
        "fillDelayMs": 30,
        "network": {"latency": {"type": "constant", "ms": 1}},
    }));
    lab.act(&json!({"type": "stopRequests"})).unwrap();
    lab.act(&json!({"type": "read", "key": 0})).unwrap();
    lab.step(Duration::from_millis(10)).unwrap();
    lab.act(&json!({"type": "write", "key": 0})).unwrap();
    lab.step(Duration::from_millis(40)).unwrap();
    lab.act(&json!({"type": "read", "key": 0})).unwrap();
    lab.step(Duration::from_millis(50)).unwrap();
    lab
}

#[distlab_tests::test]
fn cache_aside_stale_set_after_a_concurrent_write_and_delete() {
    let lab = stale_set_schedule(false);
    assert_eq!(stale_reads(&lab), 1);
    let s = lab.model().lab().checker().last().unwrap();
    assert_eq!((s.returned, s.newest), (0, 1));
    // Stale since the write was acknowledged, and until the entry's TTL runs out.
    assert_eq!(s.age, Duration::from_millis(31));
    let view = lab.view();
    assert!(!view.invariants[0].ok, "{:?}", view.invariants);
}

#[distlab_tests::test]
fn leases_refuse_the_stale_fill_on_the_same_schedule() {
    let lab = stale_set_schedule(true);
    assert_eq!(stale_reads(&lab), 0);
    assert_eq!(lab.model().lab().counts().refused_fills, 1);
    assert!(lab.view().invariants.iter().all(|i| i.ok));
}

#[distlab_tests::test]
fn every_pattern_is_selectable_and_serves() {
    for pattern in [
        "cacheAside",
        "readThrough",
        "writeThrough",
        "writeBack",
        "refreshAhead",
    ] {
        let mut lab = run(json!({"pattern": pattern, "leases": true, "seed": 7}));
        lab.step(Duration::from_millis(2_000)).unwrap();
        let c = lab.model().lab().counts();
        assert!(c.hits > 0 && c.writes > 0, "{pattern}: {c:?}");
        // With leases and a whole network no pattern returns a stale read.
        assert_eq!(stale_reads(&lab), 0, "{pattern}");
        assert!(lab.view().invariants.iter().all(|i| i.ok), "{pattern}");
    }
}

#[distlab_tests::test]
fn without_leases_some_seeds_find_the_race_and_with_leases_none() {
    let seeds: Vec<u64> = (0..seed_count("CACHE_PATTERNS_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("cache-patterns soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert_eq!(summary.stale_with_leases, 0, "{summary}");
    if cfg!(not(target_arch = "wasm32")) {
        assert!(summary.seeds_finding_the_race > 0, "{summary}");
        // The small caches evicted while the race ran.
        assert!(summary.evictions > 0, "{summary}");
        let seed = summary.first_seed_finding_the_race.unwrap_or_default();
        let r = run_seed(seed, &opts);
        assert!(
            r.stale_without_leases > 0 && r.stale_with_leases == 0,
            "{r:?}"
        );
        eprintln!(
            "cache-patterns soak: seed {seed} finds the race without leases: {}",
            opts.replay_command(seed)
        );
    }
}
