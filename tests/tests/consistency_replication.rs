//! Named primary–replica schedules (see `distlab_core::consistency::replication`): the
//! old primary writing after it was partitioned away (accepted without fencing, refused
//! by epoch with it), async failover losing the unreplicated tail, and semi-sync losing
//! a write when its one acking replica crashes with the primary. Each is scripted fault by
//! fault on a quiet cluster with one hand-driven client, so the dangerous schedule happens
//! every time rather than on a lucky seed.

use distlab_core::Duration;
use distlab_core::consistency::replication::harness::{Harness, Workload};
use distlab_core::consistency::replication::{
    AckMode, ReplRequest, ReplicaNode, ReplicationParams, Role,
};
use distlab_core::sim::history::Outcome;
use distlab_core::sim::linearizability::Verdict;
use distlab_core::sim::{Fault, NodeId, SimConfig};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// A cluster with no client of its own: client 0 is driven by hand.
fn cluster(nodes: u32, ack: AckMode, fencing: bool) -> Harness {
    Harness::new(
        SimConfig {
            seed: 5,
            nodes,
            clients: 1,
            record_trace: false,
            ..SimConfig::default()
        },
        ReplicationParams {
            ack,
            fencing,
            ..ReplicationParams::default()
        },
        Workload {
            clients: 0,
            ..Workload::default()
        },
    )
    .unwrap()
}

fn run_for(h: &mut Harness, ms: u64) {
    let t = h.sim().now() + Duration::from_millis(ms);
    h.run_until_or(t, |_| false);
}

fn fault(h: &mut Harness, f: Fault) {
    h.sim_mut().apply_fault(&f).unwrap();
    h.observe();
}

/// Client 0 puts `key = value` at `node` and waits up to 300 ms; the outcome.
fn put(h: &mut Harness, node: NodeId, key: &str, value: &str) -> Outcome<u64> {
    let body = ReplRequest::Put {
        key: key.into(),
        value: value.into(),
    };
    call(h, node, body).0
}

/// Client 0 reads `key` at the newest primary; the value it answered.
fn get(h: &mut Harness, key: &str) -> Option<String> {
    let node = primaries(h).into_iter().max_by_key(|n| n.epoch())?.id();
    call(h, node, ReplRequest::Get { key: key.into() }).1
}

/// Client 0 asks `body` of `node` and waits up to 300 ms: the outcome (with the epoch
/// that answered) and a get's value.
fn call(h: &mut Harness, node: NodeId, body: ReplRequest) -> (Outcome<u64>, Option<String>) {
    let id = h
        .sim_mut()
        .client_request(0, node, body, Duration::from_millis(300))
        .unwrap() as usize;
    let done = |h: &Harness| !h.sim().history()[id].is_pending();
    let t = h.sim().now() + Duration::from_millis(400);
    h.run_until_or(t, done);
    let value = match &h.sim().history()[id].outcome {
        Outcome::Ok { value, .. } => value.value.clone(),
        _ => None,
    };
    let outcome = match &h.sim().history()[id].outcome {
        Outcome::Ok { value, at } => Outcome::Ok {
            value: value.epoch,
            at: *at,
        },
        Outcome::Pending => Outcome::Pending,
        Outcome::Timeout { at } => Outcome::Timeout { at: *at },
        Outcome::Fail { reason, at } => Outcome::Fail {
            reason: reason.clone(),
            at: *at,
        },
    };
    (outcome, value)
}

fn primaries(h: &Harness) -> Vec<&ReplicaNode> {
    (0..h.sim().node_count())
        .filter_map(|id| h.sim().node(id))
        .filter(|n| n.is_primary())
        .collect()
}

/// The newest primary's value of `key`, once everything it holds is committed.
fn settled_value(h: &mut Harness, key: &str) -> Option<String> {
    run_for(h, 500);
    let p = primaries(h).into_iter().max_by_key(|n| n.epoch())?;
    p.data().get(key).cloned()
}

fn kind(o: &Outcome<u64>) -> (&'static str, Option<u64>) {
    match o {
        Outcome::Ok { value, .. } => ("ok", Some(*value)),
        Outcome::Pending => ("pending", None),
        Outcome::Timeout { .. } => ("timeout", None),
        Outcome::Fail { .. } => ("fail", None),
    }
}

#[distlab_tests::test]
fn old_primary_writes_after_being_partitioned_accepted_without_fencing_rejected_with() {
    // Without fencing (async acks, as DDIA's failover pitfalls describe): the deposed
    // primary acknowledges the write, and the heal loses it.
    let mut h = cluster(3, AckMode::Async, false);
    run_for(&mut h, 100);
    let before = put(&mut h, 0, "k", "before");
    assert_eq!(kind(&before), ("ok", Some(1)));
    // Async answers before the replicas have it: give the append time to arrive.
    run_for(&mut h, 100);
    fault(
        &mut h,
        Fault::Partition {
            groups: vec![vec![0]],
        },
    );
    run_for(&mut h, 600);
    assert!(primaries(&h).iter().any(|n| n.id() != 0), "no failover");
    assert!(
        h.sim().node(0).unwrap().is_primary(),
        "node 0 stays primary"
    );
    let zombie = put(&mut h, 0, "k", "zombie");
    assert_eq!(kind(&zombie), ("ok", Some(1)), "accepted without fencing");
    fault(&mut h, Fault::Heal);
    run_for(&mut h, 300);
    assert!(h.watch().lost_count() >= 1, "{:?}", h.watch().lost_write);
    assert_ne!(settled_value(&mut h, "k").as_deref(), Some("zombie"));
    assert_eq!(primaries(&h).len(), 1, "the heal ends the split");
    // A read after the heal misses the acknowledged write: the checker rejects it.
    assert_eq!(get(&mut h, "k").as_deref(), Some("before"));
    assert_eq!(h.check(None).unwrap().verdict, Verdict::NotLinearizable);

    // With fencing (majority acks, epochs): the same write from the deposed primary is
    // refused by every replica on its epoch and never acknowledged.
    let mut h = cluster(3, AckMode::Majority, true);
    run_for(&mut h, 100);
    assert_eq!(kind(&put(&mut h, 0, "k", "before")), ("ok", Some(1)));
    fault(
        &mut h,
        Fault::Partition {
            groups: vec![vec![0]],
        },
    );
    run_for(&mut h, 600);
    let new_epoch = primaries(&h)
        .iter()
        .filter(|n| n.id() != 0)
        .map(|n| n.epoch())
        .max()
        .expect("no failover");
    assert!(new_epoch >= 2);
    // Its appends reach the replicas again; their answers do not reach it.
    fault(&mut h, Fault::Heal);
    fault(
        &mut h,
        Fault::PartitionOneWay {
            from: vec![1, 2],
            to: vec![0],
        },
    );
    assert!(h.sim().node(0).unwrap().is_primary());
    let zombie = put(&mut h, 0, "k", "zombie");
    assert_eq!(kind(&zombie), ("timeout", None), "never acknowledged");
    let fenced: u64 = (1..3)
        .filter_map(|id| h.sim().node(id))
        .map(|n| n.stats().fenced)
        .sum();
    assert!(fenced > 0, "the replicas refused the old epoch");
    fault(&mut h, Fault::Heal);
    assert_eq!(settled_value(&mut h, "k").as_deref(), Some("before"));
    assert_eq!(h.watch().lost_count(), 0);
    assert!(h.watch().two_primaries.is_none());
    assert_eq!(h.check(None).unwrap().verdict, Verdict::Linearizable);
}

#[distlab_tests::test]
fn async_failover_loses_the_unreplicated_tail() {
    // Fencing on does not save async acks: the primary answers before any replica has the
    // entry, crashes, and the new primary never had it.
    let mut h = cluster(3, AckMode::Async, true);
    run_for(&mut h, 100);
    assert_eq!(kind(&put(&mut h, 0, "k", "replicated")), ("ok", Some(1)));
    run_for(&mut h, 100);
    fault(
        &mut h,
        Fault::PartitionOneWay {
            from: vec![0],
            to: vec![1, 2],
        },
    );
    assert_eq!(kind(&put(&mut h, 0, "k", "tail")), ("ok", Some(1)));
    fault(&mut h, Fault::Crash { node: 0 });
    fault(&mut h, Fault::Heal);
    run_for(&mut h, 600);
    let p = primaries(&h);
    assert_eq!(p.len(), 1);
    assert!(p[0].epoch() >= 2 && p[0].id() != 0);
    assert_eq!(h.watch().lost_count(), 1, "{:?}", h.watch().lost_write);
    // The old primary comes back as a replica and its unreplicated tail is cut.
    fault(&mut h, Fault::Restart { node: 0 });
    run_for(&mut h, 300);
    let old = h.sim().node(0).unwrap();
    assert_eq!(old.role_kind(), Role::Replica);
    assert!(old.stats().truncated >= 1, "{:?}", old.stats());
    assert_eq!(settled_value(&mut h, "k").as_deref(), Some("replicated"));
    assert_eq!(get(&mut h, "k").as_deref(), Some("replicated"));
    assert_eq!(h.check(None).unwrap().verdict, Verdict::NotLinearizable);

    // Majority acks on the same schedule: the write is not acknowledged, nothing is lost.
    let mut h = cluster(3, AckMode::Majority, true);
    run_for(&mut h, 100);
    assert_eq!(kind(&put(&mut h, 0, "k", "replicated")), ("ok", Some(1)));
    fault(
        &mut h,
        Fault::PartitionOneWay {
            from: vec![0],
            to: vec![1, 2],
        },
    );
    assert_eq!(kind(&put(&mut h, 0, "k", "tail")), ("timeout", None));
    fault(&mut h, Fault::Crash { node: 0 });
    fault(&mut h, Fault::Heal);
    run_for(&mut h, 600);
    assert_eq!(h.watch().lost_count(), 0);
    assert_eq!(get(&mut h, "k").as_deref(), Some("replicated"));
    assert_eq!(h.check(None).unwrap().verdict, Verdict::Linearizable);
}

#[distlab_tests::test]
fn semi_sync_with_the_one_acking_replica_crashing() {
    // Five nodes; only replica 1 hears the primary, so it alone acks the semi-sync write.
    // The primary and replica 1 crash; nodes 2-4 elect a primary (a majority of five)
    // that never had the write.
    let mut h = cluster(5, AckMode::SemiSync, true);
    run_for(&mut h, 100);
    assert_eq!(kind(&put(&mut h, 0, "k", "old")), ("ok", Some(1)));
    run_for(&mut h, 100);
    fault(
        &mut h,
        Fault::PartitionOneWay {
            from: vec![0],
            to: vec![2, 3, 4],
        },
    );
    assert_eq!(kind(&put(&mut h, 0, "k", "semi")), ("ok", Some(1)));
    assert_eq!(
        h.sim().node(1).unwrap().log().len(),
        3,
        "replica 1 acked it"
    );
    fault(&mut h, Fault::Crash { node: 0 });
    fault(&mut h, Fault::Crash { node: 1 });
    fault(&mut h, Fault::Heal);
    run_for(&mut h, 800);
    let p = primaries(&h);
    assert_eq!(p.len(), 1);
    assert!(p[0].id() >= 2);
    assert_eq!(h.watch().lost_count(), 1, "{:?}", h.watch().lost_write);
    // Replica 1 comes back: the new primary's log overwrites its copy of the write.
    fault(&mut h, Fault::Restart { node: 1 });
    run_for(&mut h, 300);
    assert!(h.sim().node(1).unwrap().stats().truncated >= 1);
    assert_eq!(settled_value(&mut h, "k").as_deref(), Some("old"));

    // With majority acks (three of five) the write could not have been acknowledged.
    let mut h = cluster(5, AckMode::Majority, true);
    run_for(&mut h, 100);
    assert_eq!(kind(&put(&mut h, 0, "k", "old")), ("ok", Some(1)));
    fault(
        &mut h,
        Fault::PartitionOneWay {
            from: vec![0],
            to: vec![2, 3, 4],
        },
    );
    assert_eq!(kind(&put(&mut h, 0, "k", "semi")), ("timeout", None));
    fault(&mut h, Fault::Crash { node: 0 });
    fault(&mut h, Fault::Crash { node: 1 });
    fault(&mut h, Fault::Heal);
    run_for(&mut h, 800);
    assert_eq!(h.watch().lost_count(), 0);
    assert_eq!(h.check(None).unwrap().verdict, Verdict::Linearizable);
}
