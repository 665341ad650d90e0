//! The distributed cache (`cache.distributed`) soak in the normal test run: each seed adds
//! and removes nodes while the application reads and writes, under message loss,
//! duplication and a crashed-and-restarted node; then the network heals, requests stop,
//! and the migration must settle with every key's newest value on its N preference-list
//! nodes (see `distlab_core::cache::distributed::soak`). A failing seed is printed with
//! its replay command (`cargo xtask soak cache --seed S`). `CACHE_DISTRIBUTED_SEEDS=n`
//! changes the number of seeds.

use distlab_core::cache::distributed::soak::{SoakOptions, run_seed};
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per run: threads share them natively; a browser runs a few, one after another.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") { 3 } else { 200 };

/// Seeds that once failed, kept as regressions. (The fixes changed the messages sent, so
/// a seed no longer replays the schedule that failed; the lab's scripted test
/// `a_membership_change_lost_to_every_node_is_sent_again` does.)
const FOUND: &[(u64, &str)] = &[(
    193,
    "liveness: every copy of the newest membership was lost and the operator never sent \
     it again, so no node moved to the new ring (fixed: re-sent until each node takes it)",
)];

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
fn migrations_settle_with_every_key_on_its_preference_list() {
    let seeds: Vec<u64> = (0..seed_count("CACHE_DISTRIBUTED_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("cache soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    // The runs did what the soak is for: ring changes, crashes and reads during
    // migrations, some answered by the previous owner.
    assert!(summary.ring_changes >= 3 * summary.seeds, "{summary}");
    assert!(summary.crashes > 0 && summary.hinted_hits > 0, "{summary}");
    eprintln!(
        "cache soak: slowest settle {} ms after the repair, seed {:?}: {}",
        summary.slowest_settle_ms,
        summary.slowest_settle_seed,
        summary
            .slowest_settle_seed
            .map(|s| opts.replay_command(s))
            .unwrap_or_default()
    );
}
