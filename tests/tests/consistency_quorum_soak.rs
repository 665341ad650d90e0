//! The quorum fault soak in the normal test run: each seed runs one random cluster (3 or
//! 5 nodes, N = 3 or 5, R + W > N) under one random nemesis plus crashes part-way through
//! an event, twice — ABD and plain Dynamo quorums — with the same clients and faults (see
//! `distlab_core::consistency::quorum::soak`). Every ABD history must be linearizable and
//! every operation started after the repair answered; the soak must also *find* plain
//! R + W > N histories that are not linearizable — the truth users get wrong — and print
//! the first seed that shows one. Anti-entropy is on in both runs (sloppy quorums with
//! hinted handoff in the plain run of odd seeds), and once the clients stop and the
//! network heals every replica must converge. `QUORUM_SOAK_SEEDS=n` changes the number of
//! seeds.

use distlab_core::consistency::quorum::soak::{SoakOptions, run_seed};
use distlab_core::sim::linearizability::Verdict;
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    4
} else {
    1_000
};

/// The lowest seed whose plain history the native soak catches not linearizable; a
/// browser runs too few seeds to be sure of one, so it checks this one there too.
const PLAIN_VIOLATION_SEED: u64 = 0;

#[distlab_tests::test]
fn the_known_seed_catches_plain_quorums_and_not_abd() {
    let r = run_seed(PLAIN_VIOLATION_SEED, &SoakOptions::default());
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.abd.verdict, Verdict::Linearizable, "{r:?}");
    assert_eq!(r.plain.verdict, Verdict::NotLinearizable, "{r:?}");
    assert!(r.r + r.w > r.n);
}

#[distlab_tests::test]
fn abd_is_always_linearizable_and_plain_quorums_are_caught() {
    let seeds: Vec<u64> = (0..seed_count("QUORUM_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("quorum soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert_eq!(summary.abd_not_linearizable, 0, "{}", lines.join("\n"));
    assert_eq!(summary.undecided, 0, "{}", lines.join("\n"));
    assert_eq!(summary.liveness_failures, 0, "{}", lines.join("\n"));
    // Anti-entropy (and hinted handoff on the sloppy runs) converge every replica once
    // the clients stop and everything is healed.
    assert_eq!(summary.not_converged, 0, "{}", lines.join("\n"));
    assert!(summary.sloppy_runs > 0, "{summary}");
    assert!(failures.is_empty(), "{}", lines.join("\n"));
    assert!(summary.operations > 50 * summary.seeds, "{summary}");
    let seed = summary
        .first_plain_violation
        .expect("no plain R + W > N history was caught not linearizable");
    eprintln!(
        "quorum soak: plain R + W > N caught on {} of {} seeds, first {seed}: {}",
        summary.plain_not_linearizable,
        summary.seeds,
        opts.replay_command(seed)
    );
}
