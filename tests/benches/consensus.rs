//! Every replicated state machine and atomic commit protocol on the simulator, in one
//! criterion run next to Raft: simulated messages delivered, and commands committed
//! (transactions answered, for 2PC and 3PC), per wall-clock second.
//!
//! What each side computes: a cluster of 5 nodes (PBFT: 4 and 7, 3f + 1) with seed 1,
//! no faults, the trace off, each protocol's invariant checker after every event (as the
//! labs run), warmed up for a simulated second (elections, views, epochs settled) and
//! cloned, so every iteration plays the same half second of simulated time. Raft,
//! Multi-Paxos, VR, Zab and PBFT serve 4 closed-loop key-value clients with no pause
//! between commands (40 % reads, ordered through the log); 2PC and 3PC run a
//! transaction every millisecond on one of a thousand keys, every node but the
//! coordinator a participant. Messages per committed command are in
//! `tests/tests/consensus_cost.rs`.
//!
//! Run: `cargo bench -p distlab-tests --bench consensus`

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distlab_core::consensus::paxos::harness as paxos;
use distlab_core::consensus::paxos::{Mode, PaxosParams};
use distlab_core::consensus::pbft::PbftParams;
use distlab_core::consensus::pbft::harness as pbft;
use distlab_core::consensus::raft::RaftConfig;
use distlab_core::consensus::raft::harness as raft;
use distlab_core::consensus::threepc::harness as threepc;
use distlab_core::consensus::threepc::node::ThreePcParams;
use distlab_core::consensus::twopc::harness as twopc;
use distlab_core::consensus::twopc::node::TwoPcParams;
use distlab_core::consensus::vr::harness as vr;
use distlab_core::consensus::vr::replica::VrParams;
use distlab_core::consensus::zab::harness as zab;
use distlab_core::consensus::zab::peer::ZabParams;
use distlab_core::sim::history::Outcome;
use distlab_core::sim::node::Node;
use distlab_core::sim::{Sim, SimConfig};
use distlab_core::{Duration, Time};

const CLIENTS: u32 = 4;
const WARM_UP: Time = Time::from_millis(1_000);
const WINDOW: Duration = Duration::from_millis(500);

fn sim_config(nodes: u32) -> SimConfig {
    SimConfig {
        seed: 1,
        nodes,
        clients: CLIENTS,
        record_trace: false,
        ..SimConfig::default()
    }
}

/// Transactions answered (committed or aborted) so far.
fn answered<N: Node>(sim: &Sim<N>) -> usize {
    sim.history()
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok { .. } | Outcome::Fail { .. }))
        .count()
}

/// A warmed-up cluster and how to play the window on a clone of it.
struct Case<H> {
    name: String,
    base: H,
    /// Plays `WINDOW` from where the harness stands; returns (messages delivered,
    /// commands committed) during it.
    run: fn(&mut H) -> (u64, u64),
}

/// Plays the window on any harness with `sim()`, `run_until_or` and a completed count.
macro_rules! window {
    ($h:expr, $completed:expr) => {{
        let h = $h;
        let (m0, c0) = (h.sim().net_stats().delivered, $completed(&*h));
        let end = h.sim().now() + WINDOW;
        h.run_until_or(end, |_| false);
        assert!(h.violation().is_none(), "{:?}", h.violation());
        (
            h.sim().net_stats().delivered - m0,
            ($completed(&*h) - c0) as u64,
        )
    }};
}

fn bench_case<H: Clone>(c: &mut Criterion, case: Case<H>) {
    let (messages, commands) = (case.run)(&mut case.base.clone());
    eprintln!(
        "{}: {} simulated ms = {messages} messages delivered, {commands} commands committed",
        case.name,
        WINDOW.as_micros() / 1_000
    );
    for (what, elements) in [("messages", messages), ("commands", commands)] {
        let mut g = c.benchmark_group(format!("consensus_{what}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(elements));
        g.bench_with_input(
            BenchmarkId::from_parameter(&case.name),
            &case.base,
            |b, base| {
                b.iter_batched(
                    || base.clone(),
                    |mut h| (case.run)(&mut h),
                    BatchSize::LargeInput,
                )
            },
        );
        g.finish();
    }
}

fn raft_case() -> Case<raft::Harness> {
    let workload = raft::Workload {
        clients: CLIENTS,
        read_fraction: 0.4,
        cas_fraction: 0.0,
        think: Duration::ZERO,
        random_target: 0.0,
        ..raft::Workload::default()
    };
    let params = RaftConfig::default().params(5).expect("valid config");
    let mut base = raft::Harness::new(sim_config(5), params, workload, true).expect("cluster");
    base.run_until(WARM_UP);
    Case {
        name: "raft_5".into(),
        base,
        run: |h| {
            let (m0, c0) = (h.sim().net_stats().delivered, h.completed());
            let end = h.sim().now() + WINDOW;
            h.run_until(end);
            assert!(h.violation().is_none(), "{:?}", h.violation());
            (
                h.sim().net_stats().delivered - m0,
                (h.completed() - c0) as u64,
            )
        },
    }
}

/// A session-client cluster (Multi-Paxos, VR, Zab, PBFT: the same client loop).
macro_rules! session_case {
    ($module:ident, $name:expr, $nodes:expr, $params:expr) => {{
        let workload = $module::Workload {
            clients: CLIENTS,
            pause: Duration::ZERO,
            ..$module::Workload::default()
        };
        let mut base =
            $module::Harness::new(sim_config($nodes), $params, workload).expect("cluster");
        base.run_until_or(WARM_UP, |_| false);
        Case {
            name: $name.to_string(),
            base,
            run: |h| window!(h, |h: &$module::Harness| h.completed()),
        }
    }};
}

/// An atomic commit cluster: a transaction every millisecond on one of 1,000 keys.
macro_rules! commit_case {
    ($module:ident, $name:expr, $params:expr) => {{
        let workload = twopc::Workload {
            interval: Duration::from_millis(1),
            keys: 1_000,
            ..twopc::Workload::default()
        };
        let mut base = $module::Harness::new(sim_config(5), $params, workload).expect("cluster");
        base.run_until_or(WARM_UP, |_| false);
        Case {
            name: $name.to_string(),
            base,
            run: |h| window!(h, |h: &$module::Harness| answered(h.sim())),
        }
    }};
}

fn consensus(c: &mut Criterion) {
    bench_case(c, raft_case());
    let multi = PaxosParams {
        mode: Mode::MultiPaxos,
        ..PaxosParams::default()
    };
    bench_case(c, session_case!(paxos, "multi_paxos_5", 5, multi));
    bench_case(c, session_case!(vr, "vr_5", 5, VrParams::default()));
    bench_case(c, session_case!(zab, "zab_5", 5, ZabParams::default()));
    bench_case(c, session_case!(pbft, "pbft_4", 4, PbftParams::default()));
    bench_case(c, session_case!(pbft, "pbft_7", 7, PbftParams::default()));
    bench_case(c, commit_case!(twopc, "2pc_5", TwoPcParams::default()));
    bench_case(c, commit_case!(threepc, "3pc_5", ThreePcParams::default()));
}

criterion_group!(benches, consensus);
criterion_main!(benches);
