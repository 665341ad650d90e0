//! The three-phase commit fault soak in the normal test run: thousands of seeds, each a
//! random cluster under crashes only or under every fault (see
//! `distlab_core::consensus::threepc::soak`). Under crashes only, atomicity holds after
//! every event and no participant that stayed up is left undecided: three-phase commit
//! does not block. Under partitions the soak must *find* the split decision three-phase
//! commit is known for — one side commits, the other aborts — and print the seed, so the
//! page can open it. `THREEPC_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::threepc::soak::{Regime, SoakOptions, run_seed};
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    20
} else {
    10_000
};

/// The lowest seed whose two sides decide differently (a browser runs too few seeds to be
/// sure to come upon one, so it runs this one besides them).
const KNOWN_SPLIT_SEED: u64 = 58;

#[distlab_tests::test]
fn the_known_split_seed_splits_the_decision() {
    let r = run_seed(KNOWN_SPLIT_SEED, &SoakOptions::default());
    assert_eq!(r.regime, Regime::Everything);
    assert!(r.failure.is_none(), "{:?}", r.failure);
    let split = r.split.expect("no split");
    assert!(!split.committed.is_empty() && !split.aborted.is_empty());
}

#[distlab_tests::test]
fn thousands_of_seeds_never_block_under_crashes_and_split_under_partitions() {
    let mut seeds: Vec<u64> = (0..seed_count("THREEPC_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    // About 1 % of seeds split: the few a browser runs would seldom include one.
    if !seeds.contains(&KNOWN_SPLIT_SEED) {
        seeds.push(KNOWN_SPLIT_SEED);
    }
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("3pc soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.committed > summary.seeds, "{summary}");
    assert!(summary.crash_only_seeds > 0, "{summary}");
    // Under crashes only, every undecided stretch ended within the bound (else a seed
    // failed above); that it was measured at all shows the check could fail.
    assert!(summary.longest_undecided_seed.is_some(), "{summary}");
    // The known failure, found.
    let seed = summary
        .first_split_seed
        .expect("no seed split the decision");
    eprintln!(
        "3pc soak: {} seeds split the decision under partitions; the first is seed {seed}: {}",
        summary.split_seeds,
        opts.replay_command(seed)
    );
}
