//! The Chandy–Lamport snapshot soak in the normal test run: thousands of seeds, each a
//! bank of 3 to 6 branches moving money while snapshots start at random branches, some
//! under pauses, link latency changes and clock skew, some with a crash (see
//! `distlab_core::coordination::snapshot::soak`). Every complete snapshot must add up to
//! the money the bank started with; without a crash every snapshot completes; with one,
//! the crashed branch's snapshots stay incomplete rather than wrong.
//! `SNAPSHOT_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::coordination::snapshot::soak::SoakOptions;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    12
} else {
    3_000
};

#[distlab_tests::test]
fn every_complete_snapshot_conserves_the_money() {
    let seeds: Vec<u64> = (0..seed_count("SNAPSHOT_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("snapshot soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    // Judged snapshots, with coins caught on the channels: the check had work to do.
    assert!(summary.conserved > 2 * summary.seeds, "{summary}");
    assert!(summary.coins_on_channels > 0, "{summary}");
    // Crash seeds ran and some crash did block a snapshot.
    assert!(summary.crash_seeds > 0, "{summary}");
    if !cfg!(target_arch = "wasm32") {
        assert!(summary.blocked > 0, "{summary}");
    }
}
