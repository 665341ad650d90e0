//! Named two-phase commit schedules: the coordinator crashing after the participants
//! prepared (they block, locks held, until it recovers), cooperative termination ending
//! a transaction one participant never voted on, and the checker catching a broken
//! atomicity.

use distlab_core::consensus::twopc::harness::{Harness, Workload, blocked};
use distlab_core::consensus::twopc::{AtomicityChecker, COORDINATOR, TwoPcParams, TxState};
use distlab_core::sim::{Fault, NetworkConfig, SimConfig};
use distlab_core::{Duration, Time};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// A quiet cluster (no client arrivals, no faults) of a coordinator and `participants`.
fn cluster(participants: u32, cooperative: bool) -> Harness {
    Harness::new(
        SimConfig {
            seed: 11,
            nodes: participants + 1,
            network: NetworkConfig::default(),
            ..SimConfig::default()
        },
        TwoPcParams {
            vote_no_ppm: 0,
            cooperative_termination: cooperative,
            ..TwoPcParams::default()
        },
        Workload {
            stop_at: Time::ZERO,
            ..Workload::default()
        },
    )
    .unwrap()
}

fn state(h: &Harness, node: u32) -> Option<TxState> {
    let n = h.sim().node(node)?;
    n.txs().values().next().map(|t| t.state)
}

fn run_for(h: &mut Harness, d: Duration) {
    let t = h.sim().now() + d;
    h.run_until_or(t, |_| false);
}

/// The coordinator crashes once both participants have prepared and before their votes
/// are in: both stay uncertain with the key locked — cooperative termination cannot help,
/// since neither knows more than the other — until the coordinator restarts and, having
/// no decision for a transaction of its previous epoch, presumes abort.
#[distlab_tests::test]
fn coordinator_crash_after_prepare_blocks_participants_until_it_recovers() {
    let mut h = cluster(2, true);
    h.begin("k".into()).unwrap();
    let both_prepared = |h: &Harness| {
        state(h, 1) == Some(TxState::Prepared) && state(h, 2) == Some(TxState::Prepared)
    };
    assert!(h.run_until_or(Time::from_millis(100), both_prepared));
    h.sim_mut()
        .apply_fault(&Fault::Crash { node: COORDINATOR })
        .unwrap();
    run_for(&mut h, Duration::from_secs(2));
    for p in [1, 2] {
        let n = h.sim().node(p).unwrap();
        assert_eq!(state(&h, p), Some(TxState::Prepared), "n{p} decided alone");
        assert_eq!(n.locks().keys().collect::<Vec<_>>(), ["k"], "n{p}'s lock");
    }
    let (tx, holders) = blocked(h.sim()).expect("blocked");
    assert_eq!(holders.into_iter().collect::<Vec<_>>(), [1, 2]);
    let b = h.longest_blocking().unwrap();
    assert_eq!(b.tx, tx);
    assert!(b.lasted >= Duration::from_millis(1_900), "{b:?}");
    h.sim_mut()
        .apply_fault(&Fault::Restart { node: COORDINATOR })
        .unwrap();
    run_for(&mut h, Duration::from_secs(1));
    assert!(h.settled());
    for p in [1, 2] {
        assert_eq!(state(&h, p), Some(TxState::Aborted));
    }
    assert!(!h.sim().node(COORDINATOR).unwrap().decisions()[&tx]);
    assert!(h.violation().is_none());
}

/// Participant 3 is cut off before the prepare reaches it; participants 1 and 2 prepare
/// and the coordinator crashes. Once the cut heals, with cooperative termination 1 and 2
/// ask 3, which has not voted: it aborts on the spot (durably) and tells them, and all
/// three abort without the coordinator. Without it they wait for the coordinator.
#[distlab_tests::test]
fn cooperative_termination_ends_a_transaction_a_participant_never_voted_on() {
    for cooperative in [true, false] {
        let mut h = cluster(3, cooperative);
        h.sim_mut()
            .apply_fault(&Fault::Partition {
                groups: vec![vec![0, 1, 2], vec![3]],
            })
            .unwrap();
        h.begin("k".into()).unwrap();
        let prepared = |h: &Harness| {
            state(h, 1) == Some(TxState::Prepared) && state(h, 2) == Some(TxState::Prepared)
        };
        assert!(h.run_until_or(Time::from_millis(100), prepared));
        h.sim_mut()
            .apply_fault(&Fault::Crash { node: COORDINATOR })
            .unwrap();
        h.sim_mut().apply_fault(&Fault::Heal).unwrap();
        run_for(&mut h, Duration::from_secs(1));
        let states: Vec<_> = (1..4).map(|p| state(&h, p)).collect();
        if cooperative {
            assert_eq!(states, [Some(TxState::Aborted); 3]);
            assert!(h.sim().node(1).unwrap().locks().is_empty());
        } else {
            assert_eq!(
                states,
                [Some(TxState::Prepared), Some(TxState::Prepared), None]
            );
        }
        assert!(h.violation().is_none());
    }
}

/// All participants vote yes: the transaction commits everywhere, and the store holds it.
#[distlab_tests::test]
fn a_transaction_commits_at_every_participant() {
    let mut h = cluster(4, true);
    h.begin("k".into()).unwrap();
    assert!(
        h.run_until_or(Time::from_millis(1_000), |h| h.checker().counts().1 == 1
            && h.settled())
    );
    for p in 1..5 {
        assert_eq!(state(&h, p), Some(TxState::Committed));
        assert_eq!(h.sim().node(p).unwrap().data()["k"], "v1");
    }
    assert!(h.diverged_stores().is_empty());
}

/// TCConsistent broken by hand: the checker names the transaction and both sides.
#[distlab_tests::test]
fn the_atomicity_checker_catches_a_split_outcome() {
    let mut c = AtomicityChecker::default();
    c.record(0, 1, true, Time(1));
    c.record(1, 1, true, Time(2));
    assert!(c.violation().is_none());
    c.record(2, 1, false, Time(3));
    let v = c.violation().unwrap();
    assert_eq!((v.tx, v.at), (1, Time(3)));
    assert!(v.aborted.contains(&2) && v.committed.contains(&1));
}
