//! The simulator's laws: determinism, the network model, faults, clients.

use distlab_core::bounded::{Millis, Probability};
use distlab_core::rng::SimRng;
use distlab_core::sim::history::Outcome;
use distlab_core::sim::pingpong::{PingConfig, PingNode};
use distlab_core::sim::trace::{DropReason, TraceKind};
use distlab_core::sim::{
    Endpoint, Fault, FaultScript, LatencyModel, NemesisConfig, NetworkConfig, NodeStatus, Sim,
    SimConfig,
};
use distlab_core::{Duration, Time};
use proptest::prelude::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn ping_sim(seed: u64, nodes: u32, network: NetworkConfig) -> Sim<PingNode> {
    let config = SimConfig {
        seed,
        nodes,
        clients: 2,
        network,
        ..SimConfig::default()
    };
    Sim::new(
        config,
        PingConfig {
            interval: Duration::from_millis(10),
            fanout: 8,
        },
    )
    .unwrap()
}

fn jittery() -> NetworkConfig {
    NetworkConfig {
        latency: LatencyModel::Uniform {
            min_ms: 1.0,
            max_ms: 30.0,
        },
        ..NetworkConfig::default()
    }
}

fn run_with_script(seed: u64, script: &FaultScript, until_ms: u64) -> Sim<PingNode> {
    let mut sim = ping_sim(seed, 5, jittery());
    sim.load_script(script).unwrap();
    sim.run_until(Time::from_millis(until_ms), |_, _| {});
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
    fn same_seed_and_script_give_the_same_trace(seed in any::<u64>(), nemesis_seed in any::<u64>()) {
        let nemesis = NemesisConfig { intensity: Probability::of(1.0), duration_ms: 2_000.0, mean_episode_ms: Millis::of(200), ..NemesisConfig::default() };
        let script = nemesis.generate(5, &mut SimRng::new(nemesis_seed)).unwrap();
        let a = run_with_script(seed, &script, 3_000);
        let b = run_with_script(seed, &script, 3_000);
        prop_assert_eq!(a.trace().hash(), b.trace().hash());
        prop_assert!(a.trace().events().eq(b.trace().events()));
        let c = run_with_script(seed.wrapping_add(1), &script, 3_000);
        prop_assert_ne!(a.trace().hash(), c.trace().hash());
    }

    #[test]

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
    fn a_partitioned_link_delivers_nothing_and_a_healed_one_delivers(seed in any::<u64>(), cut in 0u32..5) {
        let mut sim = ping_sim(seed, 5, jittery());
        sim.run_until(Time::from_millis(100), |_, _| {});
        let start = sim.trace().len();
        sim.apply_fault(&Fault::Partition { groups: vec![vec![cut]] }).unwrap();
        sim.run_until(Time::from_millis(600), |_, _| {});
        let crossing = |e: &TraceKind| match e {
            TraceKind::Deliver { from: Endpoint::Node(a), to: Endpoint::Node(b), .. } => (*a == cut) != (*b == cut),
            _ => false,
        };
        for e in sim.trace().events_from(start) {
            prop_assert!(!crossing(&e.kind), "delivered across the partition: {:?}", e);
        }
        sim.apply_fault(&Fault::Heal).unwrap();
        let healed = sim.trace().len();
        sim.run_until(Time::from_millis(1_200), |_, _| {});
        let delivered_across = sim.trace().events_from(healed).filter(|e| crossing(&e.kind)).count();
        prop_assert!(delivered_across > 0);
    }

    #[test]

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
    fn duplication_and_reordering_happen_only_when_enabled(seed in any::<u64>(), dup in 0.05f64..0.5, reorder in 0.05f64..0.5) {
        let quiet = ping_sim(seed, 4, jittery());
        let mut sim = quiet.clone();
        sim.run_until(Time::from_millis(3_000), |_, _| {});
        for n in 0..4 {
            let t = sim.node(n).unwrap().totals();
            prop_assert_eq!(t.duplicates, 0);
            prop_assert_eq!(t.late, 0);
        }
        let noisy = NetworkConfig { duplicate: Probability::saturating(dup), reorder: Probability::saturating(reorder), reorder_delay_ms: Millis::of(50), ..jittery() };
        let mut sim = ping_sim(seed, 4, noisy);
        sim.run_until(Time::from_millis(3_000), |_, _| {});
        let (d, l) = (0..4).map(|n| sim.node(n).unwrap().totals()).fold((0, 0), |(d, l), t| (d + t.duplicates, l + t.late));
        prop_assert!(d > 0 && l > 0, "duplicates {d}, late {l}");
    }
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn loss_drops_about_the_configured_fraction() {
    let mut sim = ping_sim(
        3,
        4,
        NetworkConfig {
            loss: Probability::of(0.2),
            ..jittery()
        },
    );
    sim.run_until(Time::from_millis(20_000), |_, _| {});
    let (mut sent, mut lost) = (0u64, 0u64);
    for e in sim.trace().events() {
        match &e.kind {
            TraceKind::Send { .. } => sent += 1,
            TraceKind::Drop {
                reason: DropReason::Loss,
                ..
            } => lost += 1,
            _ => {}
        }
    }
    let f = lost as f64 / sent as f64;
    assert!((f - 0.2).abs() < 0.02, "lost {f}");
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn crash_loses_volatile_state_and_restart_reads_the_disk() {
    let mut sim = ping_sim(1, 3, jittery());
    sim.run_until(Time::from_millis(200), |_, _| {});
    assert!(sim.node(1).unwrap().totals().pongs_received > 0);
    sim.apply_fault(&Fault::Crash { node: 1 }).unwrap();
    assert_eq!(sim.status(1), Some(NodeStatus::Crashed));
    sim.run_until(Time::from_millis(400), |_, _| {});
    let dropped_at_down_node = sim.trace().events().any(|e| {
        matches!(
            e.kind,
            TraceKind::Drop {
                reason: DropReason::NodeDown,
                to: Endpoint::Node(1),
                ..
            }
        )
    });
    assert!(dropped_at_down_node);
    sim.apply_fault(&Fault::Restart { node: 1 }).unwrap();
    let n = sim.node(1).unwrap();
    assert_eq!(n.boots(), 2, "boot counter survives through the disk");
    assert_eq!(n.totals().pongs_received, 0, "volatile counters are gone");
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn a_crash_between_write_and_fsync_loses_the_write() {
    let config = SimConfig {
        nodes: 3,
        torn_write_probability: 0.0,
        ..SimConfig::default()
    };
    let mut sim: Sim<PingNode> = Sim::new(
        config,
        PingConfig {
            interval: Duration::from_millis(10),
            fanout: 8,
        },
    )
    .unwrap();
    sim.apply_fault(&Fault::Crash { node: 2 }).unwrap();
    // on_start writes the boot counter (effect 0) then fsyncs (effect 1): crash in between.
    sim.apply_fault(&Fault::CrashMidEvent {
        node: 2,
        effects: 1,
    })
    .unwrap();
    sim.apply_fault(&Fault::Restart { node: 2 }).unwrap();
    assert_eq!(sim.status(2), Some(NodeStatus::Crashed));
    sim.apply_fault(&Fault::Restart { node: 2 }).unwrap();
    // The second boot's counter write was never synced, so the third boot counts 2, not 3.
    assert_eq!(sim.node(2).unwrap().boots(), 2);
    assert_eq!(sim.disk(2).unwrap().stats().lost_writes, 1);
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn a_paused_node_handles_nothing_until_resumed() {
    let mut sim = ping_sim(2, 3, jittery());
    sim.run_until(Time::from_millis(100), |_, _| {});
    sim.apply_fault(&Fault::Pause { node: 0 }).unwrap();
    let before = sim.node(0).unwrap().totals();
    sim.run_until(Time::from_millis(500), |_, _| {});
    assert_eq!(sim.node(0).unwrap().totals(), before);
    assert!(sim.parked(0) > 0);
    sim.apply_fault(&Fault::Resume { node: 0 }).unwrap();
    sim.run_until(Time::from_millis(501), |_, _| {});
    assert!(sim.node(0).unwrap().totals().pings_received > before.pings_received);
    assert_eq!(sim.parked(0), 0);
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn clock_drift_changes_the_timer_rate() {
    let mut fast = ping_sim(5, 2, jittery());
    fast.apply_fault(&Fault::ClockDrift {
        node: 0,
        ppm: 500_000,
    })
    .unwrap();
    fast.run_until(Time::from_millis(3_000), |_, _| {});
    let n0 = fast.node(0).unwrap().totals().pings_sent;
    let n1 = fast.node(1).unwrap().totals().pings_sent;
    // Node 0's clock runs 1.5x fast, so its 10 ms timer fires every 6.67 ms of true time.
    assert!((n0 as f64 / n1 as f64 - 1.5).abs() < 0.05, "{n0} vs {n1}");
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn clients_record_ok_and_timeout() {
    let mut sim = ping_sim(1, 3, jittery());
    sim.run_until(Time::from_millis(50), |_, _| {});
    let ok = sim
        .client_request(0, 1, (), Duration::from_millis(500))
        .unwrap();
    sim.apply_fault(&Fault::Crash { node: 2 }).unwrap();
    let lost = sim
        .client_request(1, 2, (), Duration::from_millis(500))
        .unwrap();
    sim.run_until(Time::from_millis(1_000), |_, _| {});
    assert!(matches!(sim.history()[ok as usize].outcome, Outcome::Ok { value, .. } if value > 0));
    assert!(
        matches!(sim.history()[lost as usize].outcome, Outcome::Timeout { at } if at == Time::from_millis(550))
    );
    assert!(
        sim.client_request(9, 0, (), Duration::from_millis(1))
            .unwrap_err()
            .to_string()
            .contains("client")
    );
    assert!(
        sim.client_request(0, 9, (), Duration::from_millis(1))
            .unwrap_err()
            .to_string()
            .contains("node")
    );
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn in_flight_messages_report_progress() {
    let mut sim = ping_sim(
        1,
        3,
        NetworkConfig {
            latency: LatencyModel::Constant { ms: 10.0 },
            ..NetworkConfig::default()
        },
    );
    sim.run_until(Time::from_millis(15), |_, _| {});
    let flying = sim.in_flight();
    assert!(!flying.is_empty());
    for m in &flying {
        assert!((0.0..=1.0).contains(&m.progress));
        assert!(
            (m.progress - 0.5).abs() < 1e-9,
            "sent at 10 ms, arrives at 20 ms: {m:?}"
        );
    }
}
