//! Named three-phase commit schedules: the coordinator crashing after its PreCommit reached
//! only some participants (the termination protocol commits), crashing before any
//! PreCommit (it aborts, without waiting for the coordinator as two-phase commit must),
//! and a partition between a pre-committed participant and uncertain ones (the two sides
//! decide differently: atomicity violated, and the checker sees it on the event it
//! happens).

use distlab_core::consensus::threepc::harness::{Harness, Workload};
use distlab_core::consensus::threepc::{COORDINATOR, Phase, ThreePcParams};
use distlab_core::sim::{Fault, NetworkConfig, NodeId, SimConfig};
use distlab_core::{Duration, Time};
use std::collections::BTreeSet;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// A quiet cluster (no client arrivals, no faults) of a coordinator and three participants.
fn cluster() -> Harness {
    Harness::new(
        SimConfig {
            seed: 11,
            nodes: 4,
            network: NetworkConfig::default(),
            ..SimConfig::default()
        },
        ThreePcParams {
            vote_no_ppm: 0,
            ..ThreePcParams::default()
        },
        Workload {
            stop_at: Time::ZERO,
            ..Workload::default()
        },
    )
    .unwrap()
}

fn phase(h: &Harness, node: NodeId) -> Option<Phase> {
    let n = h.sim().node(node)?;
    n.txs().values().next().map(|t| t.phase)
}

fn phases(h: &Harness) -> Vec<Option<Phase>> {
    (1..4).map(|p| phase(h, p)).collect()
}

fn run_for(h: &mut Harness, d: Duration) {
    let t = h.sim().now() + d;
    h.run_until_or(t, |_| false);
}

/// Begins one transaction and runs until every participant has voted yes on it.
fn all_voted(h: &mut Harness) {
    h.begin("k".into()).unwrap();
    let voted = |h: &Harness| (1..4).all(|p| phase(h, p) == Some(Phase::Uncertain));
    assert!(
        h.run_until_or(Time::from_millis(100), voted),
        "{:?}",
        phases(h)
    );
}

/// The coordinator's PreCommit reaches participants 1 and 2 but not 3 (the link to it is
/// cut), and the coordinator crashes before it commits. Participant 1, lowest in rank,
/// becomes backup coordinator, finds pre-committed nodes, pre-commits 3 and commits: all
/// three commit while the coordinator is still down.
#[distlab_tests::test]
fn coordinator_crash_after_precommit_to_some_participants_commits() {
    let mut h = cluster();
    all_voted(&mut h);
    h.sim_mut()
        .apply_fault(&Fault::PartitionOneWay {
            from: vec![COORDINATOR],
            to: vec![3],
        })
        .unwrap();
    let some_precommitted = |h: &Harness| {
        phase(h, 1) == Some(Phase::PreCommitted) && phase(h, 2) == Some(Phase::PreCommitted)
    };
    assert!(h.run_until_or(Time::from_millis(200), some_precommitted));
    assert_eq!(phase(&h, 3), Some(Phase::Uncertain));
    h.sim_mut()
        .apply_fault(&Fault::Crash { node: COORDINATOR })
        .unwrap();
    h.sim_mut().apply_fault(&Fault::Heal).unwrap();
    let crashed_at = h.sim().now();
    let decided = |h: &Harness| phases(h) == [Some(Phase::Committed); 3];
    assert!(
        h.run_until_or(crashed_at + Duration::from_secs(3), decided),
        "{:?}",
        phases(&h)
    );
    assert!(h.sim().node(COORDINATOR).is_none(), "decided without it");
    for p in 1..4 {
        let n = h.sim().node(p).unwrap();
        assert_eq!(n.data()["k"], "v1", "n{p}");
        assert!(n.locks().is_empty(), "n{p}");
    }
    assert!(h.violation().is_none());
}

/// Every participant voted yes, and the coordinator crashes before the last vote reaches
/// it: nobody is pre-committed. Where two-phase commit blocks, the termination protocol
/// finds every participant uncertain and aborts — within the decision timeout and the
/// poll, the coordinator still down. When it comes back it has nothing to add.
#[distlab_tests::test]
fn coordinator_crash_before_any_precommit_aborts() {
    let mut h = cluster();
    all_voted(&mut h);
    h.sim_mut()
        .apply_fault(&Fault::Crash { node: COORDINATOR })
        .unwrap();
    let crashed_at = h.sim().now();
    let decided = |h: &Harness| phases(h) == [Some(Phase::Aborted); 3];
    assert!(
        h.run_until_or(crashed_at + Duration::from_secs(3), decided),
        "{:?}",
        phases(&h)
    );
    assert!(h.sim().node(COORDINATOR).is_none());
    let u = h.longest_undecided().unwrap();
    assert!(u.lasted < Duration::from_millis(2_000), "{u:?}");
    h.sim_mut()
        .apply_fault(&Fault::Restart { node: COORDINATOR })
        .unwrap();
    run_for(&mut h, Duration::from_secs(1));
    assert!(h.settled());
    assert_eq!(phases(&h), [Some(Phase::Aborted); 3]);
    assert!(h.violation().is_none());
}

/// The PreCommit reaches participant 1 only, and then a partition puts the coordinator and
/// participant 1 on one side, 2 and 3 on the other. The coordinator's acknowledgement
/// timeout passes and it commits (a silent participant voted yes); on the other side
/// participant 2 becomes backup coordinator, finds 2 and 3 uncertain — both up all along,
/// so nobody can have committed, it believes — and aborts. The checker, run after every
/// event, sees the split on the very event that makes it.
#[distlab_tests::test]
fn partition_between_precommitted_and_uncertain_splits_the_decision() {
    let mut h = cluster();
    all_voted(&mut h);
    h.sim_mut()
        .apply_fault(&Fault::PartitionOneWay {
            from: vec![COORDINATOR],
            to: vec![2, 3],
        })
        .unwrap();
    let one_precommitted = |h: &Harness| phase(h, 1) == Some(Phase::PreCommitted);
    assert!(h.run_until_or(Time::from_millis(200), one_precommitted));
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![COORDINATOR, 1]],
        })
        .unwrap();
    // Event by event: the checker flags the split exactly when the nodes first show one.
    let deadline = h.sim().now() + Duration::from_secs(4);
    let mut split_seen = false;
    while h.step(deadline) {
        let sim = h.sim();
        let coordinator = sim
            .node(COORDINATOR)
            .and_then(|c| c.decisions().values().next().copied());
        let mut outcomes: BTreeSet<bool> = coordinator.into_iter().collect();
        for p in 1..4 {
            match phase(&h, p) {
                Some(Phase::Committed) => outcomes.insert(true),
                Some(Phase::Aborted) => outcomes.insert(false),
                _ => false,
            };
        }
        split_seen = outcomes.len() == 2;
        assert_eq!(
            h.violation().is_some(),
            split_seen,
            "checker and nodes disagree at t = {:?}",
            h.sim().now()
        );
        if split_seen && phases(&h).iter().all(|p| p.is_some_and(Phase::decided)) {
            break;
        }
    }
    assert!(split_seen, "{:?}", phases(&h));
    assert_eq!(
        phases(&h),
        [
            Some(Phase::Committed),
            Some(Phase::Aborted),
            Some(Phase::Aborted)
        ]
    );
    let v = h.violation().unwrap();
    assert!(
        v.committed.contains(&COORDINATOR) && v.committed.contains(&1),
        "{v}"
    );
    // Seen at its first moment: the backup, participant 2, aborting itself.
    assert_eq!(v.aborted, BTreeSet::from([2]), "{v}");
}

/// All participants vote yes: the transaction commits everywhere in three phases.
#[distlab_tests::test]
fn a_transaction_commits_at_every_participant() {
    let mut h = cluster();
    h.begin("k".into()).unwrap();
    assert!(
        h.run_until_or(Time::from_millis(1_000), |h| h.checker().counts().1 == 1
            && h.settled())
    );
    assert_eq!(phases(&h), [Some(Phase::Committed); 3]);
    assert!(h.diverged_stores().is_empty());
    // Six messages per participant (CanCommit, vote, PreCommit, ack, DoCommit, ack), and
    // the client's request and its reply.
    assert_eq!(h.sim().net_stats().sent, 3 * 6 + 2);
}
