//! The service-registry soak in the normal test run: each seed draws a cluster and its
//! timings and runs it twice (see `distlab_core::coordination::registry::soak`). Steady —
//! instances, clients and the router crash, restart, pause and resume with no partition
//! and no loss: no request may be routed to an instance dead for longer than
//! `TTL + sweep + refresh + 3 × max latency`, and the registry must sweep every expired
//! lease within one period. Partitioned — nodes cut off from the registry or isolated, the
//! registry crashing, loss on half the seeds: the bound is not promised, and the soak must
//! find routes past it (stale caches) and to evicted but alive instances.
//! `REGISTRY_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::coordination::registry::soak::{SoakOptions, run_seed};
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    5
} else {
    1_000
};

#[distlab_tests::test]
fn one_seed_routes_under_faults_within_the_bound() {
    let r = run_seed(0, &SoakOptions::default());
    assert!(r.failure.is_none(), "{r:?}");
    assert!(r.routes > 0 && r.faults > 0, "{r:?}");
}

#[distlab_tests::test]
fn the_bound_holds_without_partitions_and_partitions_leave_stale_routes() {
    let seeds: Vec<u64> = (0..seed_count("REGISTRY_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("registry soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(failures.is_empty(), "{}", lines.join("\n"));
    // The steady runs did route to dead instances (within the bound), and came near it.
    assert!(summary.to_dead > 0, "{summary}");
    // Partitions left stale caches routing past the bound, and evicted live instances.
    if seeds.len() >= 100 {
        assert!(
            summary.stale_past_bound > 0 && summary.to_evicted_alive > 0,
            "{summary}"
        );
        let seed = summary.first_stale_seed.expect("a seed with stale routes");
        eprintln!("first seed routing past the bound under partitions: {seed}");
        let r = run_seed(seed, &opts);
        assert!(r.stale_past_bound > 0, "{r:?}");
    }
}
