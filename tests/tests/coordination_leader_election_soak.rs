//! The leader-election soak in the normal test run: each seed runs one random fault
//! schedule (crashes, restarts, pauses, a node cut off, message loss) against a lease
//! election with every clock drifting inside its stated bound, then against the bully
//! algorithm, and repairs everything (see
//! `distlab_core::coordination::leader_election::soak`). The lease must never have two
//! candidates holding a valid lease at once nor two leaders in a term, and both must agree
//! on one leader after the quiet spell. `LEADER_ELECTION_SOAK_SEEDS=n` changes the number
//! of seeds.

use distlab_core::coordination::leader_election::soak::{SoakOptions, run_seed};
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
fn one_seed_elects_under_faults_and_agrees_after_repair() {
    let r = run_seed(0, &SoakOptions::default());
    assert!(r.failure.is_none(), "{r:?}");
    assert!(r.terms >= 1, "{r:?}");
    assert!(
        r.faults > 0 && r.lease_messages > 0 && r.bully_messages > 0,
        "{r:?}"
    );
}

#[distlab_tests::test]
fn no_two_valid_leases_and_both_algorithms_converge() {
    let seeds: Vec<u64> = (0..seed_count("LEADER_ELECTION_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("leader-election soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(failures.is_empty(), "{}", lines.join("\n"));
    assert!(summary.terms >= summary.seeds, "{summary}");
}
