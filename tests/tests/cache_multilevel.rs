//! Multilevel cache (`cache.multilevel`) through the lab as the page drives it: an L1 per
//! application node, a shared L2, invalidations over the network. A lost invalidation
//! leaves a stale L1 entry, named here on a scripted schedule; the L1 TTL bounds how far
//! behind a read can be (TTL + max latency), and without loss, partitions or crashes no
//! read is behind by more than the max latency. The soak checks both bounds over many
//! seeds (`distlab_core::cache::multilevel::soak`; `CACHE_MULTILEVEL_SEEDS=n` changes the
//! number, a failing seed prints `cargo xtask soak cache-multilevel --seed S`).

use distlab_core::Duration;
use distlab_core::cache::multilevel::lab::MultilevelLab;
use distlab_core::cache::multilevel::soak::SoakOptions;
use distlab_core::lab::{Cluster, Lab, Runner};
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

type MultilevelRun = Runner<Cluster<MultilevelLab>>;

const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    3
} else {
    1_000
};

fn run(extra: serde_json::Value) -> MultilevelRun {
    let mut config = json!({});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    MultilevelRun::from_json(&config).unwrap()
}

/// Apps n0–n2, the L2 n3, every hop 1 ms, L1 TTL 500 ms:
///  0 ms  app 1 reads key 0: its L1 holds version 0 from 3 ms
/// 10 ms  the L2's messages to app 1 are cut; app 0 writes version 1 (acknowledged at
///        14 ms); the invalidation to app 1 is lost
/// 20 ms  app 1 reads key 0 from its L1: version 0, 6 ms behind
/// 600 ms the link is back and the L1 entry has expired: app 1 reads version 1.
#[distlab_tests::test]
fn a_lost_invalidation_leaves_a_stale_l1_until_its_ttl() {
    let mut lab = run(json!({"network": {"latency": {"type": "constant", "ms": 1}}}));
    lab.act(&json!({"type": "stopRequests"})).unwrap();
    lab.act(&json!({"type": "read", "node": 1, "key": 0}))
        .unwrap();
    lab.step(Duration::from_millis(10)).unwrap();
    lab.act(&json!({"type": "partitionOneWay", "from": [3], "to": [1]}))
        .unwrap();
    lab.act(&json!({"type": "write", "node": 0, "key": 0}))
        .unwrap();
    lab.step(Duration::from_millis(10)).unwrap();
    lab.act(&json!({"type": "read", "node": 1, "key": 0}))
        .unwrap();
    lab.step(Duration::from_millis(5)).unwrap();
    lab.act(&json!({"type": "heal"})).unwrap();
    let checker = lab.model().lab().checker().clone();
    assert_eq!(checker.stale_reads(), 1);
    let s = checker.last().unwrap();
    assert_eq!((s.returned, s.newest), (0, 1));
    assert_eq!(s.age, Duration::from_millis(6));
    lab.step(Duration::from_millis(575)).unwrap();
    lab.act(&json!({"type": "read", "node": 1, "key": 0}))
        .unwrap();
    lab.step(Duration::from_millis(10)).unwrap();
    let l = lab.model().lab();
    assert_eq!(l.checker().reads(), 3);
    assert_eq!(l.checker().stale_reads(), 1);
    // Within the TTL bound; not within the max latency, but a link was cut.
    assert!(lab.view().invariants.iter().all(|i| i.ok));
}

#[distlab_tests::test]
fn with_loss_no_read_is_behind_by_more_than_the_ttl_and_max_latency() {
    let mut lab = run(json!({
        "seed": 11,
        "l1TtlMs": 200,
        "keys": 4,
        "writeProbability": 0.2,
        "network": {"loss": 0.3},
    }));
    lab.step(Duration::from_millis(4_000)).unwrap();
    let l = lab.model().lab();
    let c = l.checker();
    assert!(c.stale_reads() > 0, "{}", c.stale_reads());
    let oldest = c.oldest().unwrap();
    assert!(oldest.age <= Duration::from_millis(205), "{oldest:?}");
    assert!(lab.view().invariants[0].ok);
}

#[distlab_tests::test]
fn on_a_whole_network_no_read_is_behind_by_more_than_the_max_latency() {
    let mut lab = run(json!({"seed": 12, "keys": 4, "writeProbability": 0.2}));
    lab.step(Duration::from_millis(4_000)).unwrap();
    let l = lab.model().lab();
    assert!(!l.lossy());
    let c = l.checker();
    assert!(c.oldest().is_none_or(|s| s.age <= Duration::from_millis(5)));
    assert!(lab.view().invariants.iter().all(|i| i.ok));
}

#[distlab_tests::test]
fn without_invalidations_only_the_ttl_ends_a_stale_entry() {
    let mut lab = run(json!({"seed": 12, "keys": 4, "writeProbability": 0.2, "invalidate": false}));
    lab.step(Duration::from_millis(4_000)).unwrap();
    let l = lab.model().lab();
    let oldest = l.checker().oldest().unwrap();
    // Far beyond the max latency (the second invariant fails), within the TTL bound.
    assert!(oldest.age > Duration::from_millis(100), "{oldest:?}");
    let inv = lab.view().invariants;
    assert!(inv[0].ok && !inv[1].ok, "{inv:?}");
}

#[distlab_tests::test]
fn the_staleness_bounds_hold_over_many_seeds() {
    let seeds: Vec<u64> = (0..seed_count("CACHE_MULTILEVEL_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("cache-multilevel soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    if cfg!(not(target_arch = "wasm32")) {
        // The faults did what they are for: lost invalidations left stale L1 entries.
        assert!(summary.stale_reads_faulty > 0, "{summary}");
    }
}
