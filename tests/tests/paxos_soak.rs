//! The Paxos fault soak in the normal test run: thousands of seeds, each 3 or 5 nodes in
//! Multi-Paxos or single-decree mode under a random nemesis plus crashes part-way through
//! an event (see `distlab_core::consensus::paxos::soak`), with Inv1, one value per ballot,
//! agreement and validity checked after every event, every command answered after the
//! final repair, and every client history checked for linearizability. A failing seed
//! prints the command that replays it. `PAXOS_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::paxos::soak::SoakOptions;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively (4,000 take about a minute in release on
/// two busy cores); a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    10
} else {
    4_000
};

#[distlab_tests::test]
fn thousands_of_seeds_stay_safe_live_and_linearizable() {
    let seeds: Vec<u64> = (0..seed_count("PAXOS_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("paxos soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.commands > 10 * summary.seeds, "{summary}");
}
