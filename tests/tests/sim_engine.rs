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
use wasm_bindgen_test::wasm_bindgen_test_configure;

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

    #[distlab_tests::test]
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

    #[distlab_tests::test]
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

    #[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

/// A scripted node for the simulator's narrow windows: node 0 sends `0, 1, 2, ...` to
/// node 1 every 10 ms from 10 ms on; node 1 records what arrives, and the reading of its
/// own clock when its one-shot timer fires.
#[derive(Debug, Clone, Default)]
struct Sender {
    next: u64,
    received: Vec<u64>,
    armed_at_local: Option<Time>,
    fired_at_local: Option<Time>,
}

/// How many messages node 0 sends.
const SENT: u64 = 20;
/// Node 1's one-shot timer, armed by the client request.
const ONE_SHOT: u64 = 7;

/// A message: its number.
#[derive(Debug, Clone, Copy)]
struct Seq(u64);

impl distlab_core::sim::Fingerprint for Seq {
    fn fingerprint_into(&self, h: &mut distlab_core::sim::trace::StableHasher) {
        std::hash::Hasher::write_u64(h, self.0);
    }
}

impl distlab_core::sim::Fingerprint for Sender {
    fn fingerprint_into(&self, h: &mut distlab_core::sim::trace::StableHasher) {
        use std::hash::Hasher;
        h.write_u64(self.next);
        self.received.iter().for_each(|r| h.write_u64(*r));
    }
}

impl distlab_core::sim::Node for Sender {
    type Message = Seq;
    type Request = u64;
    type Response = ();
    type Config = ();

    fn recover(_: u32, _: &(), _: &distlab_core::sim::disk::Disk) -> Self {
        Sender::default()
    }
    fn on_start(&mut self, ctx: &mut distlab_core::sim::Ctx<'_, Self>) {
        if ctx.id() == 0 {
            ctx.set_timer(0, Duration::from_millis(10));
        }
    }
    fn on_message(&mut self, _: u32, msg: Seq, _: &mut distlab_core::sim::Ctx<'_, Self>) {
        self.received.push(msg.0);
    }
    fn on_timer(&mut self, timer: u64, ctx: &mut distlab_core::sim::Ctx<'_, Self>) {
        if timer == ONE_SHOT {
            self.fired_at_local = Some(ctx.now());
            return;
        }
        ctx.send(1, Seq(self.next));
        self.next += 1;
        if self.next < SENT {
            ctx.set_timer(0, Duration::from_millis(10));
        }
    }
    fn on_request(
        &mut self,
        request: distlab_core::sim::ClientRequest<u64>,
        ctx: &mut distlab_core::sim::Ctx<'_, Self>,
    ) {
        // Arms a one-shot timer of `request.body` ms on this node's clock.
        self.armed_at_local = Some(ctx.now());
        ctx.set_timer(ONE_SHOT, Duration::from_millis(request.body));
    }
}

fn constant_5ms() -> NetworkConfig {
    NetworkConfig {
        latency: LatencyModel::Constant { ms: 5.0 },
        ..NetworkConfig::default()
    }
}

fn sender_sim(network: NetworkConfig) -> Sim<Sender> {
    let config = SimConfig {
        seed: 3,
        nodes: 2,
        clients: 1,
        network,
        ..SimConfig::default()
    };
    Sim::new(config, ()).unwrap()
}

fn at(ms: u64, fault: Fault) -> distlab_core::sim::ScheduledFault {
    distlab_core::sim::ScheduledFault {
        at_us: ms * 1_000,
        fault,
    }
}

/// Issue 13 §7: a pause from 12 ms to 55 ms parks messages 0–3 (due at 15, 25, 35,
/// 45 ms); message 4 is due at exactly 55 ms, the resume instant. It must not overtake
/// them: a FIFO link stays FIFO across a pause.
#[distlab_tests::test]
fn a_resume_keeps_the_parked_inbox_ahead_of_what_is_due_at_that_instant() {
    let mut sim = sender_sim(constant_5ms());
    sim.load_script(&FaultScript {
        faults: vec![
            at(12, Fault::Pause { node: 1 }),
            at(55, Fault::Resume { node: 1 }),
        ],
    })
    .unwrap();
    sim.run_until(Time::from_millis(400), |_, _| {});
    let got = &sim.node(1).unwrap().received;
    assert_eq!(
        *got,
        (0..SENT).collect::<Vec<_>>(),
        "delivered out of order"
    );
}

/// Issue 13 §7: a 100 ms timer armed at 1 ms whose node's drift becomes −50 % at 11 ms
/// fires when the node's own clock has advanced 100 ms, not 55.
#[distlab_tests::test]
fn a_drift_change_never_fires_a_pending_timer_early_by_the_nodes_clock() {
    let mut sim = sender_sim(constant_5ms());
    sim.load_script(&FaultScript {
        faults: vec![at(
            11,
            Fault::ClockDrift {
                node: 1,
                ppm: -500_000,
            },
        )],
    })
    .unwrap();
    sim.run_until(Time::from_millis(1), |_, _| {});
    sim.client_request(0, 1, 100, Duration::from_secs(10))
        .unwrap();
    sim.run_until(Time::from_millis(1_000), |_, _| {});
    let n = sim.node(1).unwrap();
    let (armed, fired) = (
        n.armed_at_local.unwrap(),
        n.fired_at_local.expect("timer fired"),
    );
    let waited = fired.saturating_since(armed);
    assert!(
        waited >= Duration::from_millis(100),
        "fired after {waited:?} of its own clock"
    );
    // And not much later either: 10 ms at the old rate, the other 90 at half speed.
    assert!(
        waited <= Duration::from_millis(101),
        "fired after {waited:?}"
    );
}

/// Issue 13 §7: with a constant 5 ms and no reordering, a duplicate's copy arrives after
/// exactly 5 ms too: it draws its own latency from the model, nothing more.
#[distlab_tests::test]
fn a_duplicate_copy_takes_the_models_latency_and_no_more() {
    let network = NetworkConfig {
        duplicate: Probability::of(0.5),
        reorder_delay_ms: Millis::of(10),
        ..constant_5ms()
    };
    let mut sim = sender_sim(network);
    sim.run_until(Time::from_millis(400), |_, _| {});
    let received = &sim.node(1).unwrap().received;
    assert!(
        received.len() > SENT as usize,
        "no copies: {}",
        received.len()
    );
    let mut sends = std::collections::BTreeMap::new();
    let mut delays = Vec::new();
    for e in sim.trace().events() {
        match &e.kind {
            TraceKind::Send { msg, .. } => {
                sends.insert(*msg, e.time);
            }
            TraceKind::Deliver { msg, .. } => delays.push(e.time.saturating_since(sends[msg])),
            _ => {}
        }
    }
    assert!(delays.len() > SENT as usize);
    assert!(
        delays.iter().all(|d| *d == Duration::from_millis(5)),
        "{delays:?}"
    );
}
