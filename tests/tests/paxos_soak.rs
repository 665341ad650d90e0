//! The Paxos fault soak in the normal test run: thousands of seeds, each 3 or 5 nodes in
//! Multi-Paxos or single-decree mode under a random nemesis plus crashes part-way through
//! an event (see `distlab_core::consensus::paxos::soak`), with Inv1, one value per ballot,
//! agreement and validity checked after every event, every command answered after the
//! final repair, and every client history checked for linearizability. A failing seed
//! prints the command that replays it. `PAXOS_SOAK_SEEDS=n` changes the number of seeds.

use distlab_core::consensus::paxos::soak::{
    SeedReport, SoakOptions, SoakSummary, replay_command, run_seed,
};
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

#[cfg(not(target_arch = "wasm32"))]
fn soak(seeds: u64, opts: &SoakOptions) -> (SoakSummary, Vec<SeedReport>) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(0);
    let summary = Mutex::new(SoakSummary::default());
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut local = SoakSummary::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds {
                        break;
                    }
                    let r = run_seed(seed, opts);
                    local.add(&r);
                    if r.failure.is_some() {
                        failures.lock().unwrap().push(r);
                    }
                }
                summary.lock().unwrap().merge(&local);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|r| r.seed);
    (summary.into_inner().unwrap(), failures)
}

#[cfg(target_arch = "wasm32")]
fn soak(seeds: u64, opts: &SoakOptions) -> (SoakSummary, Vec<SeedReport>) {
    let mut summary = SoakSummary::default();
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let r = run_seed(seed, opts);
        summary.add(&r);
        if r.failure.is_some() {
            failures.push(r);
        }
    }
    (summary, failures)
}

#[distlab_tests::test]
fn thousands_of_seeds_stay_safe_live_and_linearizable() {
    let seeds = std::env::var("PAXOS_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let opts = SoakOptions::default();
    let (summary, failures) = soak(seeds, &opts);
    eprintln!("paxos soak: {summary}");
    let lines: Vec<String> = failures
        .iter()
        .map(|r| {
            format!(
                "seed {} ({} nodes, {:?}): {} — replay: {}",
                r.seed,
                r.nodes,
                r.mode,
                r.failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
                replay_command(r.seed, &opts)
            )
        })
        .collect();
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds);
    assert!(summary.commands > 10 * seeds, "{summary}");
}
