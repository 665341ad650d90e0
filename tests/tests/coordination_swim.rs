//! The SWIM soak (check F of issue 16): every correct member is eventually marked alive by
//! all after partitions heal. Each seed draws a cluster of 3 to 16 members, Lifeguard on
//! or off, and ten seconds of random faults — partitions, heals, loss up to 30 %, pauses,
//! crashes and restarts — then heals everything (network whole, loss off, every member
//! resumed and restarted) and runs until every member holds every member alive at the
//! same time, failing if that has not happened within [`SETTLE`].
//!
//! `SWIM_SOAK_SEEDS=n` changes the number of seeds; a failing seed is printed with the
//! command that replays it.

use distlab_core::coordination::swim::{Status, SwimConfig, SwimNode};
use distlab_core::rng::SimRng;
use distlab_core::sim::{Fault, NetworkConfig, NodeId, NodeStatus, Sim, SimConfig};
use distlab_core::time::{Duration, Time};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const FAULTS_UNTIL: Time = Time::from_millis(10_000);
/// The longest the membership may take to settle after the last fault.
const SETTLE: Duration = Duration::from_secs(120);
/// Seeds per run natively (about 40 s in release on a loaded 2-core machine); a browser
/// runs a few.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    4
} else {
    10_000
};

/// Why a seed failed, or how long its membership took to settle.
fn run_seed(seed: u64) -> Result<Duration, String> {
    let mut rng = SimRng::derive(seed, 0x5717);
    let n = 3 + rng.below(14) as u32;
    let config = SwimConfig {
        lifeguard: rng.chance(0.5),
        probe_interval: Duration::from_millis(100),
        probe_timeout: Duration::from_millis(30),
        ..SwimConfig::default()
    };
    let mut sim: Sim<SwimNode> = Sim::new(
        SimConfig {
            seed,
            nodes: n,
            clients: 0,
            network: NetworkConfig::default(),
            record_trace: false,
            ..SimConfig::default()
        },
        (config, n),
    )
    .map_err(|e| e.to_string())?;
    let mut at = 0u64;
    let end = FAULTS_UNTIL.0;
    while at < end {
        at += 200_000 + rng.below(1_500_000);
        let node = rng.below(u64::from(n)) as NodeId;
        let fault = match rng.below(8) {
            0 | 1 => {
                let cut: Vec<NodeId> = (0..n).filter(|_| rng.chance(0.4)).collect();
                if cut.is_empty() || cut.len() == n as usize {
                    Fault::Heal
                } else {
                    Fault::Partition { groups: vec![cut] }
                }
            }
            2 => Fault::Heal,
            3 => Fault::SetLoss {
                probability: distlab_core::bounded::Probability::new(
                    "probability",
                    rng.below(30) as f64 / 100.0,
                )
                .map_err(|e| e.to_string())?,
            },
            4 => Fault::Pause { node },
            5 => Fault::Resume { node },
            6 => Fault::Crash { node },
            _ => Fault::Restart { node },
        };
        sim.schedule_fault(Time(at.min(end)), fault)
            .map_err(|e| e.to_string())?;
    }
    // Everything repaired at once: the network whole, no loss, every member up.
    sim.schedule_fault(FAULTS_UNTIL, Fault::Heal)
        .map_err(|e| e.to_string())?;
    sim.schedule_fault(
        FAULTS_UNTIL,
        Fault::SetLoss {
            probability: distlab_core::bounded::Probability::of(0.0),
        },
    )
    .map_err(|e| e.to_string())?;
    sim.run_until(FAULTS_UNTIL, |_, _| {});
    for id in 0..n {
        match sim.status(id) {
            Some(NodeStatus::Paused) => sim.apply_fault(&Fault::Resume { node: id }),
            Some(NodeStatus::Crashed) | None => sim.apply_fault(&Fault::Restart { node: id }),
            Some(NodeStatus::Up) => Ok(()),
        }
        .map_err(|e| e.to_string())?;
    }
    let mut t = FAULTS_UNTIL;
    while t < FAULTS_UNTIL + SETTLE {
        t += Duration::from_millis(100);
        sim.run_until(t, |_, _| {});
        if converged(&sim, n) {
            return Ok(t.saturating_since(FAULTS_UNTIL));
        }
    }
    let wrong: Vec<String> = (0..n)
        .flat_map(|o| (0..n).map(move |m| (o, m)))
        .filter_map(|(o, m)| {
            let (s, inc) = sim.node(o)?.view_of(m);
            (s != Status::Alive).then(|| format!("n{o} holds n{m} {} at {inc}", s.name()))
        })
        .take(6)
        .collect();
    Err(format!(
        "seed {seed}: {n} members, lifeguard {}: not all alive {} s after the heal: {}",
        config.lifeguard,
        SETTLE.as_secs_f64(),
        wrong.join("; ")
    ))
}

fn converged(sim: &Sim<SwimNode>, n: u32) -> bool {
    (0..n).all(|o| {
        sim.node(o)
            .is_some_and(|node| (0..n).all(|m| node.view_of(m).0 == Status::Alive))
    })
}

fn seeds() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(s) = std::env::var("SWIM_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    DEFAULT_SEEDS
}

#[distlab_tests::test]
fn every_correct_member_is_marked_alive_by_all_after_partitions_heal() {
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, 0);
    let count = seeds();
    for seed in 0..count {
        match run_seed(seed) {
            Ok(d) => {
                if d > slowest.0 {
                    slowest = (d, seed);
                }
            }
            Err(e) => failures.push(e),
        }
    }
    println!(
        "swim soak: {count} seeds, {} failed; slowest to settle: seed {} after {} ms",
        failures.len(),
        slowest.1,
        slowest.0.as_millis_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed; replay one with `SWIM_SOAK_SEEDS=<seed + 1> cargo test \
         -p distlab-tests --release --test coordination_swim`:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Known dangerous schedule, kept by name: a member paused past the suspicion timeout on
/// both sides of a partition, then everything heals at once.
#[distlab_tests::test]
fn a_paused_member_declared_dead_refutes_after_resuming() {
    let n = 6;
    let mut sim: Sim<SwimNode> = Sim::new(
        SimConfig {
            seed: 3,
            nodes: n,
            clients: 0,
            record_trace: false,
            ..SimConfig::default()
        },
        (SwimConfig::default(), n),
    )
    .unwrap();
    sim.run_until(Time::from_millis(2_000), |_, _| {});
    sim.apply_fault(&Fault::Pause { node: 4 }).unwrap();
    sim.run_until(Time::from_millis(40_000), |_, _| {});
    assert_eq!(sim.node(0).unwrap().view_of(4).0, Status::Dead);
    sim.apply_fault(&Fault::Resume { node: 4 }).unwrap();
    sim.run_until(Time::from_millis(90_000), |_, _| {});
    assert!(
        converged(&sim, n),
        "n4 did not refute its death: {:?}",
        (0..n)
            .map(|o| {
                let node = sim.node(o).unwrap();
                (
                    node.incarnation(),
                    node.stats(),
                    (0..n).map(|m| node.view_of(m)).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    );
    assert!(sim.node(4).unwrap().incarnation() > 0);
}
