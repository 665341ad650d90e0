//! What a committed command costs in messages between replicas, for each replicated
//! state machine on the same workload: 5 (and 3) nodes, 4 closed-loop clients pausing
//! 10 ms between commands (40 % reads, which every protocol here orders through its log),
//! no faults, the same simulated network. Each cluster elects for a second, then we count
//! over two simulated seconds the messages one node sent another (from the trace, by
//! kind), per client command answered.
//!
//! What each side computes: Raft batches every entry waiting at the leader into one
//! AppendEntries (up to 64) and carries the commit index on the next one; Multi-Paxos
//! runs phase 2 per slot (Accept to all, Accepted back) with a stable leader and tells the
//! learners with a Decide; single-decree mode runs both phases of a fresh Paxos instance
//! per command; VR's primary sends Prepare and gets PrepareOk per operation and tells the
//! backups the commit number with the next Prepare or a Commit; Zab's leader sends
//! PROPOSE, gets ACK and sends COMMIT per transaction; PBFT (at 4 and 7 replicas,
//! 3f + 1) has its primary send PRE-PREPARE, then every backup PREPARE to every replica
//! and every replica COMMIT to every replica, plus a CHECKPOINT from each to each every
//! K = 4 requests: O(n²) per command. Heartbeats are counted too (each
//! protocol's own period): they are part of the cost.
//!
//! Atomic commit is priced per transaction instead (a second test): one coordinator and
//! n − 1 participants, every participant in every transaction, a transaction every 10 ms,
//! no faults. 2PC's round trips are prepare → vote, then commit or abort → ack: 4(n − 1)
//! messages; 3PC (Skeen 1981) adds the pre-commit round (canCommit → vote, preCommit →
//! ack, doCommit → ack): 6(n − 1). The measured figure includes each protocol's resends.
//!
//! Run: `cargo test -p distlab-tests --release --test consensus_cost -- --nocapture`
//! (the table is in BENCHMARKS.md).

use distlab_core::Duration;
use distlab_core::Time;
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
use distlab_core::sim::node::{Endpoint, Node};
use distlab_core::sim::trace::TraceKind;
use distlab_core::sim::{Sim, SimConfig};
use std::collections::BTreeMap;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const CLIENTS: u32 = 4;
const PAUSE: Duration = Duration::from_millis(10);
const WARM_UP: Time = Time::from_millis(1_000);
const MEASURED: Time = Time::from_millis(3_000);

/// Replica-to-replica messages and answered commands over the measured window.
#[derive(Debug, Clone, PartialEq, Default)]
struct Cost {
    /// Sent from one node to another (a node's message to itself not counted).
    messages: u64,
    /// Sent by a node to itself through the network (Paxos's proposer to its own
    /// acceptor): reported, not counted.
    to_self: u64,
    commands: u64,
    /// Messages by kind, most first.
    kinds: BTreeMap<&'static str, u64>,
}

impl Cost {
    fn per_command(&self) -> f64 {
        self.messages as f64 / self.commands.max(1) as f64
    }

    fn breakdown(&self) -> String {
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        kinds
            .iter()
            .map(|(k, n)| format!("{k} {:.2}", **n as f64 / self.commands.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts the node-to-node sends in `[WARM_UP, MEASURED)` from the trace.
fn count_sends<N: Node>(sim: &Sim<N>, commands: u64) -> Cost {
    assert!(sim.trace().is_complete(), "the trace kept every event");
    let mut cost = Cost {
        commands,
        ..Cost::default()
    };
    for e in sim.trace().events() {
        if e.time < WARM_UP || e.time >= MEASURED {
            continue;
        }
        if let TraceKind::Send {
            from: Endpoint::Node(from),
            to: Endpoint::Node(to),
            kind,
            ..
        } = e.kind
        {
            if from == to {
                cost.to_self += 1;
            } else {
                cost.messages += 1;
                *cost.kinds.entry(kind).or_default() += 1;
            }
        }
    }
    cost
}

fn sim_config(nodes: u32) -> SimConfig {
    SimConfig {
        seed: 1,
        nodes,
        clients: CLIENTS,
        record_trace: true,
        trace_limit: 10_000_000,
        ..SimConfig::default()
    }
}

/// Runs to `WARM_UP`, then to `MEASURED`, and returns what the window cost.
fn measure<H, N: Node>(
    h: &mut H,
    sim: impl Fn(&H) -> &Sim<N>,
    completed: impl Fn(&H) -> usize,
    mut run_to: impl FnMut(&mut H, Time),
) -> Cost {
    run_to(h, WARM_UP);
    let c0 = completed(h);
    run_to(h, MEASURED);
    count_sends(sim(h), (completed(h) - c0) as u64)
}

fn raft_cost(nodes: u32) -> Cost {
    let workload = raft::Workload {
        clients: CLIENTS,
        read_fraction: 0.4,
        cas_fraction: 0.0,
        think: PAUSE,
        retry_backoff: PAUSE,
        random_target: 0.0,
        ..raft::Workload::default()
    };
    let params = RaftConfig::default().params(nodes).expect("valid config");
    let mut h = raft::Harness::new(sim_config(nodes), params, workload, true).expect("cluster");
    let cost = measure(
        &mut h,
        |h| h.sim(),
        |h| h.completed(),
        |h, t| h.run_until(t),
    );
    assert!(h.violation().is_none(), "raft: {:?}", h.violation());
    cost
}

/// The cost on one of the session-client harnesses (Paxos, VR, Zab: the same client
/// loop and the same methods, one module each).
macro_rules! session_cost {
    ($module:ident, $nodes:expr, $params:expr) => {{
        let workload = $module::Workload {
            clients: CLIENTS,
            pause: PAUSE,
            ..$module::Workload::default()
        };
        let mut h = $module::Harness::new(sim_config($nodes), $params, workload).expect("cluster");
        let cost = measure(
            &mut h,
            |h| h.sim(),
            |h| h.completed(),
            |h, t| {
                h.run_until_or(t, |_| false);
            },
        );
        assert!(
            h.violation().is_none(),
            "{}: {:?}",
            stringify!($module),
            h.violation()
        );
        cost
    }};
}

fn paxos_cost(nodes: u32, mode: Mode) -> Cost {
    let params = PaxosParams {
        mode,
        ..PaxosParams::default()
    };
    session_cost!(paxos, nodes, params)
}

fn vr_cost(nodes: u32) -> Cost {
    session_cost!(vr, nodes, VrParams::default())
}

fn zab_cost(nodes: u32) -> Cost {
    session_cost!(zab, nodes, ZabParams::default())
}

#[distlab_tests::test]
fn messages_per_committed_command() {
    // A browser runs the three-node half: the five-node one is the same code, longer.
    let sizes: &[u32] = if cfg!(target_arch = "wasm32") {
        &[3]
    } else {
        &[3, 5]
    };
    for &nodes in sizes {
        let rows = [
            ("Raft", raft_cost(nodes)),
            ("Multi-Paxos", paxos_cost(nodes, Mode::MultiPaxos)),
            (
                "Paxos, one instance per command",
                paxos_cost(nodes, Mode::SingleDecree),
            ),
            ("VR", vr_cost(nodes)),
            ("Zab", zab_cost(nodes)),
        ];
        let followers = u64::from(nodes - 1);
        for (name, cost) in &rows {
            eprintln!(
                "{nodes} nodes | {name} | {} commands | {} messages ({} to itself) | {:.2} per \
                 command | {}",
                cost.commands,
                cost.messages,
                cost.to_self,
                cost.per_command(),
                cost.breakdown()
            );
        }
        // Without a stable leader every node that a client asks runs its own instance:
        // proposers duel, lose their ballots to each other and back off (150–300 ms,
        // randomised), and the commit rate collapses. That is what Multi-Paxos is for.
        let (multi, single) = (&rows[1].1, &rows[2].1);
        assert!(
            multi.commands >= 3 * single.commands,
            "{nodes} nodes: Multi-Paxos {multi:?}, one instance per command {single:?}"
        );
        for (name, cost) in rows
            .iter()
            .filter(|(name, _)| !name.starts_with("Paxos, one"))
        {
            // Every protocol with a leader commits steadily once elected: with 4 clients
            // pausing 10 ms, at least one command per client every 50 ms of the 2 s.
            assert!(cost.commands >= 160, "{nodes} nodes, {name}: {cost:?}");
            // No command commits without the leader hearing from a majority: at least
            // one message out and one back per majority member for each batch. Raft
            // batches, so its floor is per batch; the others order one command a round.
            if *name != "Raft" {
                let majority_others = u64::from(nodes / 2);
                assert!(
                    cost.messages >= 2 * majority_others * cost.commands,
                    "{nodes} nodes, {name}: {cost:?}"
                );
                // And each sends the round to every follower, not more than a few
                // rounds' worth (re-sends and heartbeats included).
                assert!(
                    cost.messages <= 8 * followers * cost.commands,
                    "{nodes} nodes, {name}: {cost:?}"
                );
            }
        }
    }
}

fn pbft_cost(nodes: u32) -> Cost {
    session_cost!(pbft, nodes, PbftParams::default())
}

#[distlab_tests::test]
fn pbft_messages_per_committed_command() {
    let sizes: &[u32] = if cfg!(target_arch = "wasm32") {
        &[4]
    } else {
        &[4, 7]
    };
    for &nodes in sizes {
        let cost = pbft_cost(nodes);
        eprintln!(
            "{nodes} nodes | PBFT | {} commands | {} messages ({} to itself) | {:.2} per \
             command | {}",
            cost.commands,
            cost.messages,
            cost.to_self,
            cost.per_command(),
            cost.breakdown()
        );
        assert!(cost.commands >= 160, "{nodes} nodes, PBFT: {cost:?}");
        // Quadratic: every backup's PREPARE and every replica's COMMIT reach every
        // other replica for each command, (n - 1)² + n (n - 1) at least.
        let n = u64::from(nodes);
        assert!(
            cost.messages >= ((n - 1) * (n - 1) + n * (n - 1)) * cost.commands,
            "{nodes} nodes, PBFT: {cost:?}"
        );
    }
}

/// Transactions answered (committed or aborted) in the window, and what they cost.
fn transaction_cost<N: Node>(sim: &Sim<N>) -> Cost {
    let answered = sim
        .history()
        .iter()
        .filter(|op| match op.outcome {
            Outcome::Ok { at, .. } | Outcome::Fail { at, .. } => at >= WARM_UP && at < MEASURED,
            Outcome::Pending | Outcome::Timeout { .. } => false,
        })
        .count();
    count_sends(sim, answered as u64)
}

/// A transaction every 10 ms on one of a thousand keys: few meet a key still locked by
/// the one before, so what is counted is the protocol, not lock conflicts (each
/// participant still refuses 5 % of transactions, the default, and those abort).
fn commit_workload() -> twopc::Workload {
    twopc::Workload {
        interval: PAUSE,
        keys: 1_000,
        ..twopc::Workload::default()
    }
}

fn twopc_cost(nodes: u32) -> Cost {
    let mut h = twopc::Harness::new(sim_config(nodes), TwoPcParams::default(), commit_workload())
        .expect("cluster");
    h.run_until_or(MEASURED, |_| false);
    assert!(h.violation().is_none(), "2pc: {:?}", h.violation());
    transaction_cost(h.sim())
}

fn threepc_cost(nodes: u32) -> Cost {
    let mut h = threepc::Harness::new(
        sim_config(nodes),
        ThreePcParams::default(),
        commit_workload(),
    )
    .expect("cluster");
    h.run_until_or(MEASURED, |_| false);
    assert!(h.violation().is_none(), "3pc: {:?}", h.violation());
    transaction_cost(h.sim())
}

#[distlab_tests::test]
fn messages_per_transaction_two_vs_three_phase() {
    for nodes in [3u32, 5] {
        let participants = u64::from(nodes - 1);
        let two = twopc_cost(nodes);
        let three = threepc_cost(nodes);
        for (name, cost, rounds) in [("2PC", &two, 2u64), ("3PC", &three, 3)] {
            eprintln!(
                "{nodes} nodes | {name} | {} transactions | {} messages | {:.2} per \
                 transaction ({} × (n − 1) = {}) | {}",
                cost.commands,
                cost.messages,
                cost.per_command(),
                2 * rounds,
                2 * rounds * participants,
                cost.breakdown()
            );
            // A transaction every 10 ms for two seconds, no faults: most are answered.
            assert!(cost.commands >= 100, "{nodes} nodes, {name}: {cost:?}");
            // Every round is a message to each participant and one back: no fewer for
            // any transaction that reached a decision, and resends stay a small part.
            let floor = 2 * rounds * participants;
            assert!(
                cost.per_command() >= (floor - participants) as f64,
                "{nodes} nodes, {name}: {cost:?}"
            );
            assert!(
                cost.per_command() <= 1.5 * floor as f64,
                "{nodes} nodes, {name}: {cost:?}"
            );
        }
        // The pre-commit round costs 2(n − 1) more per transaction.
        assert!(
            three.per_command() > two.per_command() + participants as f64,
            "{nodes} nodes: 2PC {two:?}, 3PC {three:?}"
        );
    }
}
