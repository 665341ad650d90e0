//! The CRDT convergence soak (issue 17's F check): for each of the nine CRDTs, seeds each
//! running a random cluster (2–7 replicas, fanout, gossip period, update rate) under a
//! random fault schedule — partitions, loss, duplication, reordering, crashes and
//! restarts, pauses, clock skew — for two simulated seconds of client updates; then the
//! repair (heal, no loss, every replica restarted or resumed, updates stopped), and the
//! assertion that every replica has merged every other's state and all hold the same
//! state, within 40 gossip rounds. The lab's invariant (replicas that merged each
//! other's states are equal) is checked after every event of the run.
//!
//! `CRDT_SOAK_SEEDS=n` changes the number of seeds per CRDT; a failure prints its seed.

use distlab_core::bounded::{Count, Millis, Probability};
use distlab_core::crdt::lab::{
    CrdtLab, CrdtLabConfig, GCounterKind, GSetKind, LwwMapKind, LwwRegisterKind, MvRegisterKind,
    OrSetKind, PnCounterKind, RgaKind, TwoPSetKind,
};
use distlab_core::crdt::replica::CrdtKind;
use distlab_core::lab::{Cluster, ClusterAction, ClusterLab, LabModel};
use distlab_core::rng::SimRng;
use distlab_core::sim::workload::ArrivalProcess;
use distlab_core::sim::{Fault, NodeStatus};
use distlab_core::time::Time;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per CRDT: threads share them natively; a browser runs fewer.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    20
} else {
    3_000
};
/// Simulated time under faults and updates.
const FAULT_MS: u64 = 2_000;
/// Gossip rounds after the repair within which every replica must have converged.
const ROUNDS_TO_CONVERGE: u64 = 40;

fn random_fault(rng: &mut SimRng, n: u32) -> Fault {
    let node = rng.below(u64::from(n)) as u32;
    let p = |rng: &mut SimRng, max: f64| Probability::new("p", rng.next_f64() * max).unwrap();
    match rng.below(9) {
        0 | 1 => {
            let mut side: Vec<u32> = (0..n).filter(|_| rng.chance(0.5)).collect();
            if side.is_empty() {
                side.push(node);
            }
            Fault::Partition { groups: vec![side] }
        }
        2 => Fault::Heal,
        3 => Fault::SetLoss {
            probability: p(rng, 0.5),
        },
        4 => Fault::SetDuplicate {
            probability: p(rng, 0.5),
        },
        5 => Fault::SetReorder {
            probability: p(rng, 0.5),
        },
        6 => Fault::Crash { node },
        7 => Fault::Restart { node },
        _ => Fault::ClockSkew {
            node,
            skew_ms: rng.next_f64() * 400.0 - 200.0,
        },
    }
}

/// One seed of `K`: `Err` says what went wrong.
fn run_seed<K: CrdtKind>(seed: u64) -> Result<(), String> {
    let mut rng = SimRng::derive(seed, 0x50a6);
    let replicas = 2 + rng.below(6) as u32;
    let gossip_ms = 20 + rng.below(200) as u32;
    let config = CrdtLabConfig {
        seed,
        replicas: Count::new("replicas", replicas).unwrap(),
        gossip_ms: Millis::new("gossipMs", f64::from(gossip_ms)).unwrap(),
        fanout: Count::new("fanout", 1 + rng.below(3) as u32).unwrap(),
        arrivals: ArrivalProcess::Poisson {
            rate_per_sec: 5.0 + rng.next_f64() * 60.0,
        },
        keys: Count::new("keys", 1 + rng.below(12) as u32).unwrap(),
        ..CrdtLabConfig::default()
    };
    let mut lab = Cluster::<CrdtLab<K>>::new(&config).map_err(|e| e.to_string())?;
    let check = |lab: &Cluster<CrdtLab<K>>| -> Result<(), String> {
        match lab.invariants().into_iter().find(|i| !i.ok) {
            Some(i) => Err(format!("at {:?}: {}: {}", lab.now(), i.name, i.detail)),
            None => Ok(()),
        }
    };
    let faults = rng.below(8);
    let mut at = 0;
    for _ in 0..faults {
        at += rng.below(FAULT_MS / (faults + 1));
        while lab.step_until(Time::from_millis(at)) {
            check(&lab)?;
        }
        // A fault that does not apply (restarting a live node) is skipped.
        let _ = lab.act(&ClusterAction::Fault(random_fault(&mut rng, replicas)));
    }
    while lab.step_until(Time::from_millis(FAULT_MS)) {
        check(&lab)?;
    }
    // The repair.
    let mut repair = vec![
        Fault::Heal,
        Fault::SetLoss {
            probability: Probability::NEVER,
        },
    ];
    for node in 0..replicas {
        match lab.sim().status(node) {
            Some(NodeStatus::Crashed) => repair.push(Fault::Restart { node }),
            Some(NodeStatus::Paused) => repair.push(Fault::Resume { node }),
            _ => {}
        }
    }
    for f in repair {
        lab.act(&ClusterAction::Fault(f))
            .map_err(|e| e.to_string())?;
    }
    lab.act(&ClusterAction::Lab(
        distlab_core::crdt::lab::CrdtLabAction::StopUpdates {},
    ))
    .map_err(|e| e.to_string())?;
    let deadline = FAULT_MS + ROUNDS_TO_CONVERGE * u64::from(gossip_ms) + 2_000;
    while !lab.all_merged() && lab.step_until(Time::from_millis(deadline)) {
        check(&lab)?;
    }
    if !lab.all_merged() {
        return Err(format!(
            "{replicas} replicas not all merged {deadline} ms in"
        ));
    }
    if !lab.replicas_agree() {
        return Err("all merged, yet the replicas differ".into());
    }
    Ok(())
}

/// Runs seeds `0..seeds` of `K` (on every core natively); returns the failures.
fn soak<K: CrdtKind>(seeds: u64) -> Vec<(u64, String)> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicU64, Ordering};
        let next = AtomicU64::new(0);
        let failures = Mutex::new(Vec::new());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= seeds {
                            break;
                        }
                        if let Err(e) = run_seed::<K>(seed) {
                            failures.lock().unwrap().push((seed, e));
                        }
                    }
                });
            }
        });
        let mut f = failures.into_inner().unwrap();
        f.sort();
        f
    }
    #[cfg(target_arch = "wasm32")]
    {
        (0..seeds)
            .filter_map(|seed| run_seed::<K>(seed).err().map(|e| (seed, e)))
            .collect()
    }
}

fn soak_one<K: CrdtKind>() {
    let seeds = std::env::var("CRDT_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let failures = soak::<K>(seeds);
    let lines: Vec<String> = failures
        .iter()
        .take(10)
        .map(|(seed, e)| format!("{} seed {seed}: {e}", K::ID))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        lines.join("\n")
    );
}

#[distlab_tests::test]
fn g_counter_replicas_converge_after_heal() {
    soak_one::<GCounterKind>();
}

#[distlab_tests::test]
fn pn_counter_replicas_converge_after_heal() {
    soak_one::<PnCounterKind>();
}

#[distlab_tests::test]
fn g_set_replicas_converge_after_heal() {
    soak_one::<GSetKind>();
}

#[distlab_tests::test]
fn two_p_set_replicas_converge_after_heal() {
    soak_one::<TwoPSetKind>();
}

#[distlab_tests::test]
fn or_set_replicas_converge_after_heal() {
    soak_one::<OrSetKind>();
}

#[distlab_tests::test]
fn lww_register_replicas_converge_after_heal() {
    soak_one::<LwwRegisterKind>();
}

#[distlab_tests::test]
fn mv_register_replicas_converge_after_heal() {
    soak_one::<MvRegisterKind>();
}

#[distlab_tests::test]
fn lww_map_replicas_converge_after_heal() {
    soak_one::<LwwMapKind>();
}

#[distlab_tests::test]
fn rga_replicas_converge_after_heal() {
    soak_one::<RgaKind>();
}
