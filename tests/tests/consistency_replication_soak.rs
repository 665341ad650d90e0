//! The replication fault soak in the normal test run: each seed runs one random cluster
//! (3 or 5 nodes, majority or sync acks) under one random nemesis plus crashes part-way
//! through an event, twice — fencing on and off — with the same clients and faults (see
//! `distlab_core::consistency::replication::soak`). With fencing no acknowledged write may
//! be lost, no epoch may have two primaries, and every history must be linearizable;
//! without fencing the soak must *find* split brain — a lost acknowledged write, two
//! primaries in one epoch, or a history the checker rejects — and print the first seed
//! that shows it. `REPLICATION_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consistency::replication::soak::{SoakOptions, run_seed};
use distlab_core::sim::linearizability::Verdict;
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    3
} else {
    1_000
};

/// The lowest seed whose unfenced run the native soak catches in split brain; a browser
/// runs too few seeds to be sure of one, so it checks this one there too.
const SPLIT_BRAIN_SEED: u64 = 0;

#[distlab_tests::test]
fn the_known_seed_shows_split_brain_only_without_fencing() {
    let r = run_seed(SPLIT_BRAIN_SEED, &SoakOptions::default());
    assert!(r.failure.is_none(), "{:?}", r.failure);
    let fenced = r.fenced.as_ref().unwrap();
    assert_eq!(fenced.verdict, Verdict::Linearizable, "{r:?}");
    assert_eq!(fenced.lost_writes, 0, "{r:?}");
    assert!(r.unfenced.as_ref().unwrap().split_brain(), "{r:?}");
}

#[distlab_tests::test]
fn fencing_loses_no_acknowledged_write_and_its_absence_is_caught() {
    let seeds: Vec<u64> = (0..seed_count("REPLICATION_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("replication soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    eprintln!("{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert_eq!(summary.fenced_lost_writes, 0, "{}", lines.join("\n"));
    assert_eq!(summary.fenced_not_linearizable, 0, "{}", lines.join("\n"));
    assert_eq!(summary.undecided, 0, "{}", lines.join("\n"));
    assert!(failures.is_empty(), "{}", lines.join("\n"));
    assert!(summary.acked_writes > 20 * summary.seeds, "{summary}");
    let seed = summary
        .first_split_brain
        .expect("no run without fencing showed split brain");
    eprintln!(
        "replication soak: split brain without fencing on {} of {} seeds, first {seed}: {}",
        summary.unfenced_split_brain,
        summary.seeds,
        opts.replay_command(seed)
    );
}
