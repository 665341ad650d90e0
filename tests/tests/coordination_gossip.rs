//! Gossip against the theory (check A of issue 16): rounds until a rumor one node starts
//! reaches all n nodes under push with fanout 1, measured over seeded trials with the
//! round-synchronous driver (`distlab_core::coordination::gossip::rounds`, which runs the
//! simulator's own `GossipNode`s without the event queue), against Pittel's
//! log₂ n + ln n + O(1) ("On spreading a rumor", SIAM J. Appl. Math. 47, 1987).
//!
//! The O(1) term is a bounded random variable, so the check is twofold: the measured mean
//! stays within [`OFFSET_TOLERANCE`] rounds of the leading terms at every n, and — where
//! the constant cancels — the growth of the mean from one n to the next is within
//! [`GROWTH_TOLERANCE`] of the theory's. A negative control shows the check can fail: push
//! with fanout 2 (which spreads faster, about log₃ n + ½ ln n) is measured and refused.
//!
//! `cargo test -p distlab-tests --release --test coordination_gossip -- --nocapture`
//! prints the table in BENCHMARKS.md.

use distlab_core::coordination::gossip::rounds::{disseminate, pittel_push_rounds};
use distlab_core::coordination::gossip::{GossipConfig, GossipMode, LossOfInterest};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Rounds the measured mean may sit from log₂ n + ln n: Pittel's O(1).
const OFFSET_TOLERANCE: f64 = 2.0;
/// Rounds by which the growth of the mean between two sizes may differ from the theory's.
const GROWTH_TOLERANCE: f64 = 1.0;
const MAX_ROUNDS: u32 = 1_000;

/// Sizes and trials per size: natively up to 10,000 nodes; a debug build in the browser
/// stops at 1,000 with fewer trials.
fn sizes() -> Vec<(u32, u64)> {
    if cfg!(target_arch = "wasm32") {
        vec![(10, 200), (100, 100), (1_000, 10)]
    } else {
        vec![(10, 2_000), (100, 1_000), (1_000, 400), (10_000, 100)]
    }
}

/// Mean, standard deviation, min and max of rounds to full dissemination, and mean
/// messages, over `trials` seeds; `None` if a trial never finished.
fn measure(n: u32, config: GossipConfig, trials: u64) -> Option<(f64, f64, u32, u32, f64)> {
    let mut rounds = Vec::new();
    let mut messages = 0u64;
    for seed in 0..trials {
        let d = disseminate(n, config, seed, MAX_ROUNDS).unwrap();
        rounds.push(d.rounds?);
        messages += d.messages;
    }
    let t = trials as f64;
    let mean = rounds.iter().map(|&r| f64::from(r)).sum::<f64>() / t;
    let var = rounds
        .iter()
        .map(|&r| (f64::from(r) - mean).powi(2))
        .sum::<f64>()
        / (t - 1.0).max(1.0);
    Some((
        mean,
        var.sqrt(),
        *rounds.iter().min()?,
        *rounds.iter().max()?,
        messages as f64 / t,
    ))
}

/// The check: each mean within the offset tolerance of Pittel's leading terms, and each
/// step in n grows the mean as the theory does. `means` are (n, measured mean), n rising.
fn check_against_pittel(means: &[(u32, f64)]) -> Result<(), String> {
    for &(n, mean) in means {
        let theory = pittel_push_rounds(n);
        if (mean - theory).abs() > OFFSET_TOLERANCE {
            return Err(format!(
                "n = {n}: mean {mean:.2} rounds is {:.2} from log2 n + ln n = {theory:.2}",
                mean - theory
            ));
        }
    }
    for w in means.windows(2) {
        let ((n1, m1), (n2, m2)) = (w[0], w[1]);
        let (measured, theory) = (m2 - m1, pittel_push_rounds(n2) - pittel_push_rounds(n1));
        if (measured - theory).abs() > GROWTH_TOLERANCE {
            return Err(format!(
                "n = {n1} → {n2}: the mean grew {measured:.2} rounds, the theory {theory:.2}"
            ));
        }
    }
    Ok(())
}

fn push(fanout: u32) -> GossipConfig {
    GossipConfig {
        mode: GossipMode::Push,
        fanout,
        ..GossipConfig::default()
    }
}

#[distlab_tests::test]
fn push_rounds_to_full_dissemination_follow_pittel() {
    let mut means = Vec::new();
    for (n, trials) in sizes() {
        let (mean, sd, lo, hi, msgs) = measure(n, push(1), trials).expect("push always finishes");
        println!(
            "push fanout 1 | n = {n:>6} | trials {trials:>5} | log2 n + ln n = {:>6.2} | mean \
             {mean:>6.2} ± {sd:.2} (min {lo}, max {hi}) | messages {msgs:.0}",
            pittel_push_rounds(n)
        );
        means.push((n, mean));
    }
    check_against_pittel(&means).unwrap();
}

#[distlab_tests::test]
fn the_check_refuses_a_faster_epidemic() {
    // Fanout 2 at the larger sizes: a different law, which the check must catch.
    let means: Vec<(u32, f64)> = sizes()
        .into_iter()
        .filter(|&(n, _)| n >= 100)
        .map(|(n, trials)| (n, measure(n, push(2), trials.min(100)).unwrap().0))
        .collect();
    let e = check_against_pittel(&means).unwrap_err();
    println!("fanout 2 refused: {e}");
}

/// The other exchanges, for the table beside push: pull and push-pull (Karp et al.:
/// log₃ n + O(log log n) for push-pull), and rumor mongering's residue.
#[distlab_tests::test]
fn pull_and_push_pull_beat_push_and_rumors_leave_a_residue() {
    for (n, trials) in sizes() {
        let trials = trials.min(100);
        let (push_mean, ..) = measure(n, push(1), trials).unwrap();
        for mode in [GossipMode::Pull, GossipMode::PushPull] {
            let cfg = GossipConfig {
                mode,
                ..GossipConfig::default()
            };
            let (mean, sd, lo, hi, msgs) = measure(n, cfg, trials).unwrap();
            println!(
                "{mode:?} | n = {n:>6} | mean {mean:>6.2} ± {sd:.2} (min {lo}, max {hi}) | \
                 messages {msgs:.0}"
            );
            if n >= 100 {
                assert!(
                    mean < push_mean,
                    "{mode:?} at n = {n}: {mean} ≥ push {push_mean}"
                );
            }
        }
        // Rumor mongering, feedback + counter k: the fraction never told (Demers et al.
        // table 1: about 0.18 for k = 1, 0.037 for k = 2, 0.011 for k = 3, push).
        if n >= 1_000 {
            for (k, paper) in [(1u32, 0.18), (2, 0.037), (3, 0.011)] {
                let cfg = GossipConfig {
                    mode: GossipMode::Rumor,
                    feedback: true,
                    loss: LossOfInterest::Counter,
                    k,
                    ..GossipConfig::default()
                };
                let mut residue = 0.0;
                let mut traffic = 0.0;
                let runs = trials.min(20);
                for seed in 0..runs {
                    let d = disseminate(n, cfg, seed, MAX_ROUNDS).unwrap();
                    residue += f64::from(n - d.informed) / f64::from(n);
                    traffic += d.messages as f64 / f64::from(n);
                }
                let (residue, traffic) = (residue / runs as f64, traffic / runs as f64);
                println!(
                    "rumor feedback counter k = {k} | n = {n:>6} | residue {residue:.4} \
                     (paper {paper}) | messages per node {traffic:.2}"
                );
                assert!(
                    residue > paper / 3.0 && residue < paper * 3.0,
                    "k = {k}: residue {residue} vs the paper's {paper}"
                );
            }
        }
    }
}

/// The lab on the simulator's event engine at 1,000 and 10,000 nodes: simulated messages
/// per wall second, printed for BENCHMARKS.md (never asserted). Native only, and ignored
/// in the normal run: `cargo test -p distlab-tests --release --test coordination_gossip
/// -- --ignored --nocapture`.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore]
fn lab_messages_per_wall_second() {
    use distlab_core::bounded::Count;
    use distlab_core::coordination::gossip::lab::{GossipLab, GossipLabConfig};
    use distlab_core::lab::{Cluster, ClusterLab, LabModel};
    use distlab_core::time::Time;
    for (nodes, mode, sim_ms) in [
        (1_000, GossipMode::Push, 5_000u64),
        (1_000, GossipMode::PushPull, 5_000),
        (1_000, GossipMode::Rumor, 5_000),
        (10_000, GossipMode::Push, 1_000),
        (10_000, GossipMode::PushPull, 1_000),
    ] {
        let config = GossipLabConfig {
            nodes: Count::new("nodes", nodes).unwrap(),
            mode,
            ..GossipLabConfig::default()
        };
        let mut lab = Cluster::<GossipLab>::new(&config).unwrap();
        let start = std::time::Instant::now();
        while lab.step_until(Time::from_millis(sim_ms)) {}
        let wall = start.elapsed().as_secs_f64();
        let sent = lab.sim().net_stats().sent;
        println!(
            "gossip lab | {nodes:>6} nodes | {mode:>8?} | {sim_ms} ms simulated | {sent} \
             messages, {} events in {wall:.2} s wall | {:.0} messages per wall second",
            lab.steps(),
            sent as f64 / wall
        );
    }
}
