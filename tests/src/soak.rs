//! The seed loop every protocol's soak shares — the suites in `tests/tests/` and the
//! `soak` binary run seeds through it: on every thread natively, one after another in a
//! browser page (which has one thread). The protocol side is
//! [`distlab_core::sim::soak`].

use distlab_core::sim::soak::{SeedOutcome, Soak, SoakTotals};
use std::sync::atomic::{AtomicU64, Ordering};

/// What one seed of soak `S` reports.
pub type Report<S> = <<S as Soak>::Summary as SoakTotals>::Report;

/// Threads a native soak uses: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `seeds` on every core; returns the totals and the failing reports, by seed.
pub fn run_seeds<S: Soak>(soak: &S, seeds: &[u64]) -> (S::Summary, Vec<Report<S>>) {
    run_seeds_with(soak, seeds, threads(), &AtomicU64::new(0))
}

/// Runs `seeds` on `threads` threads, counting each finished seed in `done` (for a
/// progress line); returns the totals and the failing reports, by seed.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_seeds_with<S: Soak>(
    soak: &S,
    seeds: &[u64],
    threads: usize,
    done: &AtomicU64,
) -> (S::Summary, Vec<Report<S>>) {
    use std::sync::Mutex;
    let next = AtomicU64::new(0);
    let summary = Mutex::new(S::Summary::default());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut local = S::Summary::default();
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed) as usize) {
                    let r = soak.run_seed(seed);
                    local.add(&r);
                    if r.failure().is_some()
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(r);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut s) = summary.lock() {
                    s.merge(&local);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|r| r.seed());
    (summary.into_inner().unwrap_or_default(), failures)
}

/// Runs `seeds` one after another: a browser page has one thread.
#[cfg(target_arch = "wasm32")]
pub fn run_seeds_with<S: Soak>(
    soak: &S,
    seeds: &[u64],
    _threads: usize,
    done: &AtomicU64,
) -> (S::Summary, Vec<Report<S>>) {
    let mut summary = S::Summary::default();
    let mut failures = Vec::new();
    for &seed in seeds {
        let r = soak.run_seed(seed);
        summary.add(&r);
        if r.failure().is_some() {
            failures.push(r);
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    (summary, failures)
}

/// One line per failing report: its seed, why it failed, and the command that replays it.
pub fn failure_lines<S: Soak>(soak: &S, failures: &[Report<S>]) -> Vec<String> {
    failures
        .iter()
        .map(|r| {
            format!(
                "seed {}: {}\n  replay: {}",
                r.seed(),
                r.failure().unwrap_or_default(),
                soak.replay_command(r.seed())
            )
        })
        .collect()
}

/// The seed count of a suite's soak: `default`, or the environment variable `var`.
pub fn seed_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
