//! Named PBFT schedules (Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI
//! 1999) on a group with clients and the safety checker among correct replicas after
//! every event: a primary that equivocates is voted out by a view change and the group
//! goes on (issue 15's named regression); f + 1 equivocating liars make two correct
//! replicas commit different requests at one sequence number, and f of them cannot; a
//! forger's messages are detected and dropped.

use distlab_core::Time;
use distlab_core::consensus::pbft::auth::KeyRing;
use distlab_core::consensus::pbft::byzantine::forged_envelope;
use distlab_core::consensus::pbft::harness::Harness;
use distlab_core::consensus::pbft::messages::{Body, Envelope, Signed, Vote};
use distlab_core::consensus::pbft::{Behaviour, Invariant, PbftParams};
use distlab_core::consensus::vr::harness::Workload;
use distlab_core::sim::{NodeId, SimConfig};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn group(seed: u64, nodes: u32, liars: &[(NodeId, Behaviour)]) -> Harness {
    let params = PbftParams {
        byzantine: liars.iter().copied().collect(),
        ..PbftParams::default()
    };
    let config = SimConfig {
        seed,
        nodes,
        clients: 3,
        record_trace: false,
        ..SimConfig::default()
    };
    Harness::new(config, params, Workload::default()).unwrap()
}

fn correct_views(h: &Harness) -> Vec<u64> {
    (0..h.sim().node_count())
        .filter_map(|i| h.sim().node(i))
        .filter(|r| r.behaviour().is_honest())
        .map(|r| r.view())
        .collect()
}

/// The primary of view 0 sends the client's request to the even backups and the null
/// request to the odd ones under one sequence number. Neither half reaches 2f matching
/// prepares for the request, the backups' timers expire while they wait for it, and
/// they move to view 1, whose honest primary orders it: no correct replica commits two
/// things at one number, and the clients' requests go on being answered.
#[distlab_tests::test]
fn pbft_primary_equivocation_triggers_a_view_change() {
    for nodes in [4, 7] {
        let mut h = group(3, nodes, &[(0, Behaviour::Equivocate)]);
        h.run_until_or(Time::from_millis(1_000), |_| false);
        let early = h.completed();
        h.run_until_or(Time::from_millis(3_000), |_| false);
        assert!(h.violation().is_none(), "n={nodes}: {:?}", h.violation());
        let views = correct_views(&h);
        assert!(views.iter().all(|v| *v >= 1), "n={nodes}: {views:?}");
        assert!(h.completed() > early + 5, "n={nodes}: {}", h.completed());
    }
}

/// Two liars of four (three of seven), the primary among them: the primary splits the
/// backups, the other liars vouch for both halves with prepares and commits, and each
/// half reaches its 2f + 1 commits. With one liar fewer the same seed stays safe. At
/// four replicas every seed 0–29 breaks; at seven, where each half needs both of its
/// correct replicas and all three liars before a view timer runs out, about a third do
/// (seed 2 among them): f + 1 liars can break safety, not must.
#[distlab_tests::test]
fn f_plus_one_liars_break_safety_and_f_do_not() {
    for (nodes, ids) in [(4u32, vec![0, 1]), (7, vec![0, 1, 2])] {
        let liars: Vec<(NodeId, Behaviour)> =
            ids.iter().map(|&l| (l, Behaviour::Equivocate)).collect();
        let mut h = group(2, nodes, &liars);
        h.run_until_or(Time::from_millis(3_000), |_| false);
        let v = h.violation().expect("f + 1 liars must break safety");
        assert_eq!(v.invariant, Invariant::Safety, "{v}");
        let mut h = group(2, nodes, &liars[..liars.len() - 1]);
        h.run_until_or(Time::from_millis(3_000), |_| false);
        assert!(h.violation().is_none(), "n={nodes}: {:?}", h.violation());
    }
}

/// A forger claims another replica's identity: the receiver checks the MAC under the key
/// it shares with the claimed sender and rejects it; a real envelope passes.
#[distlab_tests::test]
fn a_forged_message_is_rejected() {
    let secret = PbftParams::default().key_secret;
    let (honest, forger, receiver) = (KeyRing::new(secret, 0), KeyRing::new(secret, 3), 1);
    let vote = Vote {
        view: 0,
        seq: 1,
        digest: 42,
        replica: 0,
    };
    let real = Envelope::seal(&honest, receiver, Body::Commit(Signed::new(&honest, vote)));
    let fake = forged_envelope(
        &forger,
        0,
        receiver,
        Body::Commit(Signed::new(&honest, vote)),
    );
    let keys = KeyRing::new(secret, receiver);
    assert!(real.authentic(&keys));
    assert!(!fake.authentic(&keys));
    // A signature made with the forger's key does not pass as replica 0's.
    let mut signed = Signed::new(&forger, vote);
    signed.signer = 0;
    assert!(!signed.valid(&keys));
    // In a running group: every forgery dropped, nothing broken, requests answered.
    let mut h = group(5, 4, &[(3, Behaviour::Forge)]);
    h.run_until_or(Time::from_millis(1_000), |_| false);
    assert!(h.violation().is_none(), "{:?}", h.violation());
    let dropped: u64 = (0..3)
        .filter_map(|i| h.sim().node(i))
        .map(|r| r.forgeries_dropped())
        .sum();
    assert!(dropped > 10, "{dropped}");
    assert!(h.completed() > 10, "{}", h.completed());
}

/// A replica re-sends its own votes for a sequence number only until it executes it. If
/// the last replica to commit lost nothing but the others lost its COMMIT, it has
/// executed (and stopped re-sending) while they cannot: no later checkpoint will come
/// to rescue them once the clients stop, and no view change either (the primary runs no
/// view timer, the executed replica waits for nothing). The soak found this (seed 702);
/// the replica that executed now answers a re-sent vote with its own.
#[distlab_tests::test]
fn a_replica_that_lost_the_last_commit_catches_up_from_one_that_executed() {
    use distlab_core::sim::Fault;
    let params = PbftParams {
        byzantine: [(2, Behaviour::Silent)].into_iter().collect(),
        ..PbftParams::default()
    };
    let config = SimConfig {
        seed: 11,
        nodes: 4,
        clients: 1,
        record_trace: false,
        ..SimConfig::default()
    };
    let workload = Workload {
        clients: 1,
        ..Workload::default()
    };
    let mut h = Harness::new(config, params, workload).unwrap();
    let end = Time::from_millis(1_000);
    while h.ops().is_empty() && h.step_until(end) {}
    h.stop_clients();
    // Until n3 has voted COMMIT for 1 and both others hold its PREPARE for it.
    let has = |h: &Harness, node: NodeId, voter: NodeId, commit: bool| {
        h.sim().node(node).is_some_and(|r| {
            r.slots().get(&1).is_some_and(|s| {
                if commit {
                    s.commits.contains_key(&voter)
                } else {
                    s.prepares.contains_key(&voter)
                }
            })
        })
    };
    while !(has(&h, 3, 3, true) && has(&h, 0, 3, false) && has(&h, 1, 3, false)) {
        assert!(h.step_until(end), "n3 never voted");
    }
    h.sim_mut()
        .apply_fault(&Fault::PartitionOneWay {
            from: vec![3],
            to: vec![0, 1],
        })
        .unwrap();
    let cut_at = h.sim().now();
    h.run_until_or(cut_at + distlab_core::Duration::from_millis(300), |_| false);
    let executed = |h: &Harness| -> Vec<u64> {
        [0, 1, 3]
            .iter()
            .map(|&i| h.sim().node(i).map_or(0, |r| r.last_executed()))
            .collect()
    };
    assert_eq!(
        executed(&h),
        vec![0, 0, 1],
        "the cut must cost n0 and n1 the commit"
    );
    h.sim_mut().apply_fault(&Fault::Heal).unwrap();
    let healed = h.sim().now();
    h.run_until_or(healed + distlab_core::Duration::from_millis(2_000), |_| {
        false
    });
    assert!(h.violation().is_none(), "{:?}", h.violation());
    // n0, the primary, runs no view timer: only n3's answer gets it going again, and
    // with n0 and n3 the client has its f + 1 matching replies. (n1's view timer ran
    // out during the cut: it waits in a view change of its own, as the paper allows.)
    let n1 = h.sim().node(1).map(|r| (r.last_executed(), r.status()));
    assert_eq!(executed(&h)[0], 1, "n1: {n1:?}");
    assert_eq!(h.completed(), 1, "n1: {n1:?}");
}
