//! The two-phase commit fault soak in the normal test run: thousands of seeds, each a
//! random cluster under a random nemesis plus coordinator crashes (see
//! `distlab_core::consensus::twopc::soak`), with atomicity checked after every event and
//! everything settling after the final repair. The soak must also *find* the blocking
//! two-phase commit is known for — the coordinator down while every live participant is
//! uncertain, locks held — and print the seed that shows it longest. `TWOPC_SOAK_SEEDS=n`
//! changes the number of seeds.

use distlab_core::consensus::twopc::soak::{SoakOptions, run_seed};
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs fewer, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    30
} else {
    15_000
};

/// Seeds that once failed, kept as regressions.
const FOUND: &[(u64, &str)] = &[
    (
        197,
        "atomicity: the coordinator crashed between a record's append and its fsync, the \
         torn tail stayed, and its next decision, appended after the garbage, was unreadable \
         at the next recovery: it presumed abort for a transaction it had committed (fixed: \
         recovery cuts a torn tail before appending)",
    ),
    (
        1071,
        "liveness: the same torn tail hid an epoch record, so a restarted coordinator reused \
         an epoch and never answered its participants' questions about its transactions",
    ),
    (1668, "liveness: as 1071"),
    (
        1697,
        "liveness: a participant asking about a decision hidden behind a torn tail",
    ),
];

/// The longest blocking the native soak finds (2,061 ms with participants uncertain and
/// their locks held while the coordinator was down): a browser runs too few seeds to come
/// upon one this long, so it checks this seed does it there too.
const LONGEST_BLOCKING_SEED: u64 = 12_329;

#[distlab_tests::test]
fn the_known_blocking_seed_blocks_for_seconds() {
    let r = run_seed(LONGEST_BLOCKING_SEED, &SoakOptions::default());
    assert!(r.failure.is_none(), "{:?}", r.failure);
    let lasted = r.blocking.map_or(0, |b| b.lasted.0);
    assert!(lasted >= 2_000_000, "blocked for only {lasted} µs");
}

#[distlab_tests::test]
fn seeds_that_once_failed_pass() {
    for (seed, what) in FOUND {
        let r = run_seed(*seed, &SoakOptions::default());
        assert!(
            r.failure.is_none(),
            "seed {seed} ({what}) fails again: {:?}",
            r.failure
        );
    }
}

#[distlab_tests::test]
fn thousands_of_seeds_stay_atomic_and_find_the_blocking() {
    let seeds: Vec<u64> = (0..seed_count("TWOPC_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("2pc soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.committed > summary.seeds, "{summary}");
    // The known failure, found: participants blocked for more than a few decision
    // timeouts (asking, unanswered) while the coordinator was down. The browser's few
    // seeds block too, but briefly (the_known_blocking_seed_blocks_for_seconds).
    let seed = summary.longest_blocking_seed.expect("no seed blocked");
    let found = if cfg!(target_arch = "wasm32") {
        100_000
    } else {
        500_000
    };
    assert!(
        summary.longest_blocking_us >= found,
        "the longest blocking (seed {seed}) lasted only {} µs",
        summary.longest_blocking_us
    );
    eprintln!(
        "2pc soak: the longest blocking is seed {seed}: {}",
        opts.replay_command(seed)
    );
}
