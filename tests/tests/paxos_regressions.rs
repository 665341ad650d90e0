//! Named Paxos schedules, each driven message by message on a hand-driven cluster
//! (`distlab_core::consensus::paxos::manual`) with the safety checker after every
//! handler: a proposer that crashes right after winning phase 1, and duelling proposers
//! — preempting each other for ever with fixed retries, stopped by randomised back-off
//! or by a stable Multi-Paxos leader (Lamport, "Paxos Made Simple", §2.4 and §3).

use distlab_core::Duration;
use distlab_core::consensus::paxos::manual::{ManualCluster, Queued};
use distlab_core::consensus::paxos::{Message, Mode, PaxosParams, Value};
use distlab_core::consensus::raft::state_machine::{KvCommand, KvOp};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn put(session: u64, value: &str) -> KvCommand {
    KvCommand {
        session,
        seq: 1,
        op: KvOp::Put {
            key: "k".into(),
            value: value.into(),
        },
    }
}

fn is_accept(q: &Queued) -> bool {
    matches!(q.msg, Message::Accept { .. })
}

/// Retries after half a round when fixed; drawn from half a round to one and a half when
/// randomised: the same mean, only the randomness differs.
fn single_decree(randomised: bool) -> PaxosParams {
    PaxosParams {
        mode: Mode::SingleDecree,
        randomised,
        retry_min: Duration(TICK.0 / 2),
        retry_max: Duration(3 * TICK.0 / 2),
        ..PaxosParams::default()
    }
}

/// The time between two rounds of the duel.
const TICK: Duration = Duration::from_millis(100);

/// Single-decree. Node 0 wins phase 1 at ballot b1 without its own acceptor hearing the
/// `Prepare`, gets its value `a` accepted by node 1 alone, and crashes. Node 2, with a
/// command `b` of its own, must find `a` in phase 1 (node 1 reports it) and choose `a`,
/// not `b`, in slot 0 — `a` may already be chosen for all node 2 knows — then `b` in
/// slot 1. When node 0 comes back its next ballot is above b1 although no acceptor of its
/// own ever promised b1: its round was durable before the `Prepare` left. Forgetting it,
/// node 0 would reuse b1 for another value, two values at one ballot.
#[distlab_tests::test]
fn a_proposer_that_crashes_after_phase_1_is_replaced_and_never_reuses_its_ballot() {
    let mut c = ManualCluster::new(3, single_decree(false), 1);
    let (a, b, third) = (put(1, "a"), put(2, "b"), put(3, "c"));
    c.request(0, a.clone());
    assert_eq!(c.drop_where(|q| q.from == 0 && q.to == 0), 1);
    c.deliver(|q| !is_accept(q));
    let n0 = c.node(0).unwrap();
    assert!(n0.is_proposing(), "phase 1 won: {:?}", n0.proposer());
    assert_eq!(n0.promised(), None, "its own acceptor never promised");
    let b1 = n0.ballot().unwrap();
    assert_eq!(c.deliver(|q| is_accept(q) && q.to == 1), 1);
    c.crash(0).unwrap();
    c.drop_where(|q| q.from == 0);

    c.request(2, b.clone());
    c.deliver_within(&[1, 2]);
    let chosen: Vec<Value> = c.checker().chosen().values().cloned().collect();
    assert_eq!(
        chosen,
        vec![Value::Command(a.clone()), Value::Command(b.clone())]
    );

    c.restart(0).unwrap();
    assert!(c.node(0).unwrap().max_round() >= b1.round);
    c.request(0, third.clone());
    let next = c.node(0).unwrap().ballot().unwrap();
    assert!(next > b1, "{next:?} after {b1:?}");
    // Node 0 is behind: its ballot loses to node 2's, it backs off and tries again.
    for _ in 0..10 {
        c.deliver_within(&[0, 1, 2]);
        if c.checker().chosen().len() == 3 {
            break;
        }
        c.advance(Duration(5 * TICK.0));
        c.timeout(0);
    }
    let chosen: Vec<Value> = c.checker().chosen().values().cloned().collect();
    assert_eq!(
        chosen,
        vec![Value::Command(a), Value::Command(b), Value::Command(third)]
    );
    for n in 0..3 {
        assert_eq!(c.node(n).unwrap().chosen().len(), 3, "node {n}");
    }
    assert!(c.violation().is_none(), "{:?}", c.violation());
}

/// Nodes 0 and 1 each propose a command in single-decree Paxos. Each round one of them
/// (alternately) times out and runs phase 1 with a higher ballot, and then the other's
/// `Accept`s arrive — rejected, as the acceptors promised the newer ballot. The rejected
/// proposer's retry timer fires by the next round when its delay is fixed below one
/// round, so the duel repeats; with a random delay it sometimes has not, the other's `Accept`s
/// get through, and the duel ends. Returns the round in which a value was first chosen,
/// and the phase 1 rounds both ran.
fn duel(params: PaxosParams, seed: u64, rounds: u32) -> (Option<u32>, u64, ManualCluster) {
    let mut c = ManualCluster::new(3, params, seed);
    c.request(0, put(1, "a"));
    c.deliver(|q| !is_accept(q));
    for round in 0..rounds {
        let (mover, other) = if round % 2 == 0 { (1, 0) } else { (0, 1) };
        if round == 0 {
            c.request(1, put(2, "b"));
        } else {
            c.advance(TICK);
            c.timeout(mover);
        }
        c.deliver(|q| !is_accept(q));
        c.deliver(|q| is_accept(q) && q.from == other);
        c.deliver(|q| !is_accept(q));
        assert!(c.violation().is_none(), "{:?}", c.violation());
        if !c.checker().chosen().is_empty() {
            let p1 = (0..3).map(|n| c.node(n).unwrap().phase1_rounds()).sum();
            return (Some(round), p1, c);
        }
    }
    let p1 = (0..3).map(|n| c.node(n).unwrap().phase1_rounds()).sum();
    (None, p1, c)
}

#[distlab_tests::test]
fn duelling_proposers_livelock_with_fixed_retries() {
    let (chosen, phase1, c) = duel(single_decree(false), 1, 40);
    assert_eq!(chosen, None, "a value was chosen");
    assert!(phase1 >= 40, "only {phase1} phase 1 rounds");
    // Ballots keep climbing: every round preempted the one before.
    let top = (0..3).map(|n| c.node(n).unwrap().max_round()).max();
    assert!(top >= Some(40), "{top:?}");
}

#[distlab_tests::test]
fn randomised_back_off_ends_the_duel() {
    for seed in 0..20 {
        let (chosen, _, mut c) = duel(single_decree(true), seed, 40);
        let round = chosen.unwrap_or_else(|| panic!("seed {seed}: still duelling"));
        assert!(round < 20, "seed {seed}: round {round}");
        // The loser's command is chosen next, once its back-off ends.
        for _ in 0..20 {
            c.advance(TICK);
            c.timeout(0);
            c.timeout(1);
            c.deliver(|_| true);
        }
        assert_eq!(c.checker().chosen().len(), 2, "seed {seed}");
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }
}

/// Multi-Paxos: node 0 leads, its heartbeats reach node 1, and node 1's timer firing
/// every round does not start phase 1 — its leader is alive — so the leader's `Accept`s
/// get through in the first round, the duel never starts.
#[distlab_tests::test]
fn a_stable_leader_ends_the_duel() {
    let mut c = ManualCluster::new(
        3,
        PaxosParams {
            retry_min: Duration(3 * TICK.0),
            retry_max: Duration(6 * TICK.0),
            ..PaxosParams::default()
        },
        1,
    );
    c.timeout(0);
    c.deliver(|_| true);
    assert!(c.node(0).unwrap().is_proposing());
    c.request(0, put(1, "a"));
    for _ in 0..10 {
        c.advance(TICK);
        c.heartbeat(0);
        c.deliver(|q| !is_accept(q));
        c.timeout(1);
        c.deliver(|q| !is_accept(q));
        c.deliver(|_| true);
    }
    assert!(c.node(0).unwrap().is_proposing());
    assert_eq!(c.node(1).unwrap().phase1_rounds(), 0);
    assert_eq!(c.checker().chosen().len(), 1);
    for n in 0..3 {
        assert_eq!(c.node(n).unwrap().applied(), 1, "node {n}");
    }
    // Without the heartbeats node 1 takes over once its timeout passes.
    c.advance(Duration(4 * TICK.0));
    c.timeout(1);
    c.deliver(|_| true);
    assert!(c.node(1).unwrap().is_proposing());
    assert!(c.violation().is_none(), "{:?}", c.violation());
}
