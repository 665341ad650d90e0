//! The Viewstamped Replication fault soak in the normal test run: thousands of seeds,
//! each 3 or 5 replicas under a random nemesis (partitions including one-way ones, loss,
//! duplication, reordering, pauses, clock skew) plus crashes and restarts that recover by
//! the recovery protocol, at most f replicas down or recovering at once (see
//! `distlab_core::consensus::vr::soak`), with state-machine safety, the commit-number and
//! one primary per view checked after every event, every request answered after the
//! final repair, and every client history checked for linearizability. A failing seed
//! prints the command that replays it (`cargo xtask soak vr --seed S`).
//! `VR_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::vr::soak::SoakOptions;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs a few, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    8
} else {
    2_000
};

#[distlab_tests::test]
fn thousands_of_seeds_stay_safe_live_and_linearizable() {
    let seeds: Vec<u64> = (0..seed_count("VR_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("vr soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.commands > 10 * summary.seeds, "{summary}");
    // The faults must have happened: replicas crashed, recovered and changed views.
    assert!(summary.crashes > summary.seeds, "{summary}");
    assert!(summary.recoveries > summary.seeds / 2, "{summary}");
    assert!(summary.view_changes > summary.seeds, "{summary}");
}
