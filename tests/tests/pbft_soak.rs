//! The PBFT fault soak in the normal test run: a thousand seeds, each 4 or 7 replicas
//! with 0 to f of them Byzantine (silent, equivocating or forging) under a random
//! nemesis (partitions including one-way ones, loss, duplication, reordering, pauses,
//! clock skew) plus crashes and restarts, liars + crashed + recovering at most f at once
//! (see `distlab_core::consensus::pbft::soak`), with safety among correct replicas
//! checked after every event, every request answered (f + 1 matching replies) after the
//! final repair, and every client history checked for linearizability. A failing seed
//! prints the command that replays it (`cargo xtask soak pbft --seed S`).
//! `PBFT_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::pbft::soak::SoakOptions;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs a few, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    6
} else {
    1_000
};

#[distlab_tests::test]
fn a_thousand_seeds_with_up_to_f_liars_stay_safe_live_and_linearizable() {
    let seeds: Vec<u64> = (0..seed_count("PBFT_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("pbft soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.commands > 5 * summary.seeds, "{summary}");
    // The faults must have happened: liars lied, replicas crashed, views changed.
    assert!(summary.byzantine_replicas > summary.seeds / 3, "{summary}");
    assert!(summary.crashes > 0, "{summary}");
    assert!(summary.view_changes > summary.seeds / 4, "{summary}");
}
