//! Raft under random faults: many seeds, each a nemesis script of crashes (some in the
//! middle of an event, between a write and its fsync), pauses, partitions (one-way too),
//! loss, duplication, reordering and clock skew and drift, with closed-loop clients.
//! After every event the safety invariants are checked; after the final repair, a leader
//! must be elected and every pending command must complete within a bounded number of
//! election timeouts. A failing seed prints the command that replays it.

use distlab_core::Time;
use distlab_core::consensus::raft::RaftConfig;
use distlab_core::consensus::raft::harness::{Harness, Workload};
use distlab_core::rng::SimRng;
use distlab_core::sim::{Fault, NemesisConfig, ScheduledFault, SimConfig};

#[derive(Debug, Default)]
struct SeedReport {
    events: u64,
    completed: usize,
    failure: Option<String>,
}

fn run_seed(seed: u64) -> SeedReport {
    let mut rng = SimRng::derive(seed, 99);
    let nodes = if rng.chance(0.5) { 3 } else { 5 };
    let fault_ms = 3_000.0;
    let sim_config = SimConfig {
        seed,
        nodes,
        clients: 3,
        record_trace: false,
        ..SimConfig::default()
    };
    let config = RaftConfig {
        pre_vote: rng.chance(0.7),
        check_quorum: rng.chance(0.7),
        ..RaftConfig::default()
    };
    let params = config.params(nodes).unwrap();
    let repair = Time::from_millis(fault_ms as u64);
    let workload = Workload {
        stop_at: repair,
        ..Workload::default()
    };
    let mut h = Harness::new(sim_config, params, workload, true).unwrap();
    let nemesis = NemesisConfig {
        intensity: 0.3 + 0.7 * rng.next_f64(),
        duration_ms: fault_ms,
        mean_episode_ms: 400.0,
        max_drift_ppm: 50_000,
        max_skew_ms: 200.0,
        ..NemesisConfig::default()
    };
    let mut script = nemesis.generate(nodes, &mut rng).unwrap();
    // More crashes part-way through an event than the nemesis makes, at every effect
    // position a Raft event has (timer, disk append, fsync, sends...): these are what
    // catch a reply sent before the write it depends on is durable.
    for _ in 0..rng.below(6) {
        let node = rng.below(nodes as u64) as u32;
        let at = rng.below(fault_ms as u64 * 1_000);
        let down = 20_000 + rng.below(300_000);
        script.faults.push(ScheduledFault {
            at_us: at,
            fault: Fault::CrashMidEvent {
                node,
                effects: rng.below(8) as u32,
            },
        });
        script.faults.push(ScheduledFault {
            at_us: (at + down).min(fault_ms as u64 * 1_000),
            fault: Fault::Restart { node },
        });
    }
    script.faults.sort_by_key(|f| f.at_us);
    h.sim_mut().load_script(&script).unwrap();
    // A protocol bug can make messages multiply; a budget turns that into a failure
    // instead of an exhausted machine.
    const MAX_EVENTS: u64 = 2_000_000;
    h.run_until_or(repair, |h| h.sim().steps() > MAX_EVENTS);
    let bound = Time::from_millis(fault_ms as u64 + 20 * 300);
    let mut report = SeedReport::default();
    if h.violation().is_none() {
        let live = h.run_until_or(bound, |h| {
            h.sim().steps() > MAX_EVENTS || (h.leader().is_some() && h.pending() == 0)
        }) && h.sim().steps() <= MAX_EVENTS;
        if !live {
            report.failure = Some(format!(
                "liveness: {} commands pending, leader {:?} at {}",
                h.pending(),
                h.leader(),
                h.sim().now()
            ));
        }
    }
    if let Some(v) = h.violation() {
        report.failure = Some(v.to_string());
    }
    report.events = h.sim().steps();
    report.completed = h.completed();
    report
}

#[test]
fn soak_smoke() {
    let seeds = 1000;
    let mut events = 0;
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for seed in 0..seeds {
        let r = run_seed(seed);
        events += r.events;
        if seed < 10 {
            eprintln!(
                "seed {seed}: {} events, {} completed",
                r.events, r.completed
            );
        }
        if let Some(f) = r.failure {
            failures.push(format!("seed {seed}: {f}"));
        }
    }
    eprintln!("{seeds} seeds, {events} events, {:?}", started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
