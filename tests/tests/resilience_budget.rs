//! The retry budget against tower's on one request stream: how many of the retries the
//! callers want each lets through, when the dependency is healthy, down, and recovering.
//!
//! - Ours is gRPC retry throttling (gRFC A6): a bucket of `maxTokens` (10), a failed
//!   attempt takes 1, a success gives back `tokenRatio` (0.1), retries go only while more
//!   than half the tokens remain. It reacts to *failures*: in an outage it stops retries
//!   within a few failures.
//! - tower's `retry::budget::TpsBudget` (tower 0.5, its defaults: 10 s window, 10
//!   retries/s reserve, 20 % retries) deposits one unit per original request and withdraws
//!   `1 / 0.2 = 5` per retry over a sliding 10 s window, plus the reserve. It bounds
//!   retries to a *fraction of the request rate*, whatever the failures.
//!
//! Native only: tower is a native dev-dependency. Its clock is tokio's, paused and moved
//! to each request's simulated time, so the run is deterministic. Figures in
//! BENCHMARKS.md ("Resilience"): `cargo test --release -p distlab-tests --test
//! resilience_budget -- --nocapture`.
#![cfg(not(target_arch = "wasm32"))]

use distlab_core::Time;
use distlab_core::bounded::Count;
use distlab_core::resilience::retry::{RetryBudget, RetryBudgetConfig};
use distlab_core::rng::SimRng;
use tower::retry::budget::{Budget, TpsBudget};

/// Requests per second, attempts per request (the first included), phases of 20 s.
const RATE: u64 = 100;
const MAX_ATTEMPTS: usize = 3;
const PHASE_SECS: u64 = 20;
/// Failure probability of an attempt in each phase: healthy, down, recovering, recovered.
const PHASES: usize = 4;
const FAILURE: [f64; PHASES] = [0.01, 1.0, 0.1, 0.02];
const NAMES: [&str; PHASES] = ["healthy", "down", "recovering", "recovered"];

/// One request: when it arrives, its phase, and whether each of its attempts would fail.
struct Request {
    at: Time,
    phase: usize,
    fails: [bool; MAX_ATTEMPTS],
}

fn stream(seed: u64) -> Vec<Request> {
    let mut rng = SimRng::new(seed);
    let total = RATE * PHASE_SECS * PHASES as u64;
    (0..total)
        .map(|i| {
            let at = Time(i * 1_000_000 / RATE);
            let phase = (i / (RATE * PHASE_SECS)) as usize;
            let p = FAILURE[phase];
            Request {
                at,
                phase,
                fails: [rng.chance(p), rng.chance(p), rng.chance(p)],
            }
        })
        .collect()
}

/// Per phase: (retries wanted, retries admitted).
type Tally = [(u64, u64); PHASES];

fn ratio((wanted, admitted): (u64, u64)) -> f64 {
    if wanted == 0 {
        1.0
    } else {
        admitted as f64 / wanted as f64
    }
}

/// Retries are wanted after each failed attempt but the last; an admitted retry is an
/// attempt whose outcome the next `fails` entry gives. Both budgets see the same
/// outcomes, but a refused retry ends its request, so the two count different numbers
/// of retries wanted.
fn grpc(requests: &[Request]) -> Tally {
    let mut budget = RetryBudget::new(&RetryBudgetConfig {
        max_tokens: Count::of(10),
        token_ratio: 0.1,
    })
    .unwrap();
    let mut tally = [(0, 0); PHASES];
    for r in requests {
        for attempt in 0..MAX_ATTEMPTS {
            if !r.fails[attempt] {
                budget.on_success();
                break;
            }
            budget.on_failure();
            if attempt + 1 == MAX_ATTEMPTS {
                break;
            }
            tally[r.phase].0 += 1;
            if !budget.allows_retry() {
                break;
            }
            tally[r.phase].1 += 1;
        }
    }
    tally
}

fn tower(requests: &[Request]) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let budget = TpsBudget::default();
        let mut now = Time::ZERO;
        let mut tally = [(0, 0); PHASES];
        for r in requests {
            tokio::time::advance(std::time::Duration::from_micros(r.at.0 - now.0)).await;
            now = r.at;
            budget.deposit();
            for attempt in 0..MAX_ATTEMPTS - 1 {
                if !r.fails[attempt] {
                    break;
                }
                tally[r.phase].0 += 1;
                if !budget.withdraw() {
                    break;
                }
                tally[r.phase].1 += 1;
            }
        }
        tally
    })
}

#[test]
fn admitted_retry_ratios_of_the_two_budgets() {
    let requests = stream(19);
    let ours = grpc(&requests);
    let theirs = tower(&requests);
    println!(
        "phase (failures)   gRPC throttling: admitted / wanted   tower TpsBudget: admitted / wanted"
    );
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "{name:<10} ({:>3.0} %)   {:>6} / {:>5} = {:>5.1} %              {:>6} / {:>5} = {:>5.1} %",
            100.0 * FAILURE[i],
            ours[i].1,
            ours[i].0,
            100.0 * ratio(ours[i]),
            theirs[i].1,
            theirs[i].0,
            100.0 * ratio(theirs[i]),
        );
        assert!(ours[i].0 > 0 && theirs[i].0 > 0);
    }
    // Healthy: both let (nearly) every retry through.
    assert!(
        ratio(ours[0]) > 0.95 && ratio(theirs[0]) > 0.95,
        "{ours:?} {theirs:?}"
    );
    // Down: gRPC's bucket empties within a few failures and stays shut; tower's keeps
    // admitting its fraction of the request rate (20 %, plus its reserve at first).
    assert!(ratio(ours[1]) < 0.01, "{ours:?}");
    assert!((0.05..0.5).contains(&ratio(theirs[1])), "{theirs:?}");
    // Recovering at 10 % failures: with tokenRatio 0.1 the bucket gains 0.1 per success
    // and loses 1 per failure, so it refills only below 1 failure in 11 (9.1 %): it
    // hovers near half and admits some retries, fewer than tower.
    assert!(
        ratio(ours[2]) > 0.05 && ratio(ours[2]) < ratio(theirs[2]),
        "{ours:?} {theirs:?}"
    );
    // Recovered at 2 %: the bucket refills and retries flow again.
    assert!(ratio(ours[3]) > 0.9, "{ours:?}");
}
