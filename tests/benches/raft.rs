//! Raft on the simulator: a 5-node cluster under closed-loop client load with no faults
//! (simulated messages processed, and commands committed, per wall-clock second), the
//! same with the invariant checker on after every event, and the fault soak (seeds per
//! second, each with its nemesis, invariants, liveness and linearizability checks), and
//! the page's biggest Raft scene: the `consensus.raft` lab at 51 nodes (simulated seconds
//! per wall second, the invariant checker on as on the page).
//! Every case starts from a cloned, already-elected cluster, so iterations are equal.
//!
//! Run: `cargo bench -p distlab-tests --bench raft`

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distlab_core::Duration;
use distlab_core::Time;
use distlab_core::consensus::raft::RaftConfig;
use distlab_core::consensus::raft::harness::{Harness, Workload};
use distlab_core::consensus::raft::lab::RaftLab;
use distlab_core::consensus::raft::soak::{SoakOptions, run_seed};
use distlab_core::lab::{Cluster, Lab, Runner};
use distlab_core::sim::SimConfig;

const EVENTS: u64 = 200_000;

/// Five nodes, `clients` clients sending back to back, warmed up for a second.
fn loaded_cluster(clients: u32, check_invariants: bool) -> Harness {
    let sim = SimConfig {
        seed: 1,
        nodes: 5,
        clients,
        record_trace: false,
        ..SimConfig::default()
    };
    let workload = Workload {
        clients,
        think: Duration::ZERO,
        random_target: 0.0,
        ..Workload::default()
    };
    let params = RaftConfig::default().params(5).expect("valid config");
    let mut h = Harness::new(sim, params, workload, check_invariants).expect("valid cluster");
    h.run_until(Time::from_millis(1_000));
    h
}

/// Runs `EVENTS` events; returns (messages delivered, entries committed) during them.
fn run(h: &mut Harness) -> (u64, u64) {
    let commit = |h: &Harness| {
        (0..5)
            .filter_map(|id| h.sim().node(id))
            .map(|n| n.commit_index())
            .max()
            .unwrap_or(0)
    };
    let (m0, c0) = (h.sim().net_stats().delivered, commit(h));
    for _ in 0..EVENTS {
        h.step_until(Time::MAX);
    }
    (h.sim().net_stats().delivered - m0, commit(h) - c0)
}

fn cluster_under_load(c: &mut Criterion) {
    for check in [false, true] {
        let name = if check {
            "raft_5_nodes_checked"
        } else {
            "raft_5_nodes"
        };
        for clients in [4u32, 32] {
            let base = loaded_cluster(clients, check);
            let (messages, commits) = run(&mut base.clone());
            eprintln!(
                "{name}, {clients} clients: {EVENTS} events = {messages} messages delivered, \
                 {commits} entries committed"
            );
            let mut g = c.benchmark_group(format!("{name}_messages"));
            g.sample_size(10);
            g.throughput(Throughput::Elements(messages));
            g.bench_with_input(BenchmarkId::new("clients", clients), &base, |b, base| {
                b.iter_batched(|| base.clone(), |mut h| run(&mut h), BatchSize::LargeInput)
            });
            g.finish();
            let mut g = c.benchmark_group(format!("{name}_commits"));
            g.sample_size(10);
            g.throughput(Throughput::Elements(commits));
            g.bench_with_input(BenchmarkId::new("clients", clients), &base, |b, base| {
                b.iter_batched(|| base.clone(), |mut h| run(&mut h), BatchSize::LargeInput)
            });
            g.finish();
        }
    }
}

fn soak_seeds(c: &mut Criterion) {
    const SEEDS: u64 = 20;
    let opts = SoakOptions::default();
    let mut g = c.benchmark_group("raft_soak");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SEEDS));
    g.bench_function("seeds_one_thread", |b| {
        b.iter(|| (0..SEEDS).map(|s| run_seed(s, &opts).events).sum::<u64>())
    });
    g.finish();
}

/// The e2e's big Raft scene: 51 nodes, 32 clients thinking 5 ms, 5 % loss and duplication,
/// one simulated second per iteration (the page wants at least one per wall second).
fn lab_51_nodes(c: &mut Criterion) {
    let config = serde_json::json!({
        "nodes": 51,
        "workload": {"clients": 32, "thinkMs": 5},
        "network": {"loss": 0.05, "duplicate": 0.05},
    });
    let mut base = Runner::<Cluster<RaftLab>>::from_json(&config).expect("valid config");
    base.step(Duration::from_secs(2)).expect("steps");
    let mut g = c.benchmark_group("raft_lab_51_nodes");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("simulated_seconds", |b| {
        b.iter_batched(
            || base.clone(),
            |mut lab| lab.step(Duration::from_secs(1)).expect("steps"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, cluster_under_load, soak_seeds, lab_51_nodes);
criterion_main!(benches);
