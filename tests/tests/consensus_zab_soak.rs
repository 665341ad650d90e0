//! The Zab fault soak in the normal test run: thousands of seeds, each 3 or 5 peers under
//! a random nemesis (crashes and restarts, some part-way through an event with torn
//! writes, partitions including one-way ones, loss, duplication, reordering, pauses,
//! clock skew; see `distlab_core::consensus::zab::soak`), with agreement, primary order,
//! primary integrity, integrity and one leader per epoch checked after every event,
//! every request answered after the final repair, and every client history checked for
//! linearizability. A failing seed prints the command that replays it
//! (`cargo xtask soak zab --seed S`). `ZAB_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::zab::soak::SoakOptions;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs a few, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    8
} else {
    1_000
};

#[distlab_tests::test]
fn thousands_of_seeds_stay_safe_live_and_linearizable() {
    let seeds: Vec<u64> = (0..seed_count("ZAB_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("zab soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.commands > 10 * summary.seeds, "{summary}");
    // The faults must have happened: peers crashed, tore writes and changed epochs. A
    // crash tears a write in about one seed in twenty-five (37–48 in 1,000), so only a
    // long run is sure to see one; the browser's 8 seeds usually do not.
    assert!(summary.crashes > summary.seeds, "{summary}");
    assert!(summary.epochs > summary.seeds, "{summary}");
    if seeds.len() >= 200 {
        assert!(summary.torn_writes > 0, "{summary}");
    }
}
