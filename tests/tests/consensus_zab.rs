//! Named Zab schedules, each driven message by message on a hand-driven ensemble
//! (`distlab_core::consensus::zab::manual`) with the safety checker — agreement, primary
//! order, primary integrity, integrity, one leader per epoch — after every handler:
//!
//! - the three defects the authors of ZooKeeper's Zab.tla found in the DSN 2011 paper's
//!   wording (zookeeper-specifications/protocol-spec/issues.md): `PROPOSE` sent only to
//!   the followers that acknowledged `NEWLEADER` (issue 1), a duplicate `PROPOSE` of a
//!   transaction that came in `NEWLEADER` (issue 2), and `COMMIT-LD` carrying the
//!   follower's `ACK-LD` zxid instead of the leader's last committed one (issue 3) — each
//!   replayed on the schedule of its figure, showing ours does not have it;
//! - a leader that crashes mid-synchronisation, after delivering its initial history
//!   and before any follower heard `COMMIT-LD`.
//!
//! Peers are A = n1, B = n2 (the leader: Fast Leader Election prefers the higher id) and
//! C = n0, which joins late.

use distlab_core::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
use distlab_core::consensus::zab::manual::{ManualCluster, Queued};
use distlab_core::consensus::zab::{Message, PeerState, Phase, ZabParams, Zxid};
use distlab_core::sim::node::Reply;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const A: u32 = 1;
const B: u32 = 2;
const C: u32 = 0;

fn put(client: u64, value: &str) -> KvCommand {
    KvCommand {
        session: client,
        seq: 1,
        op: KvOp::Put {
            key: "k".into(),
            value: value.into(),
        },
    }
}

fn zxids(c: &ManualCluster, id: u32) -> Vec<Zxid> {
    c.node(id)
        .map(|p| p.history().iter().map(|t| t.zxid).collect())
        .unwrap_or_default()
}

fn is_new_leader_to(q: &Queued, to: u32) -> bool {
    q.to == to && matches!(q.msg, Message::NewLeader { .. })
}

/// A and B establish epoch 1 while C is down (B leads), with `committed` values
/// delivered everywhere; then C restarts and runs discovery with B up to the point
/// where B's `NewLeader` to C is in flight, not yet delivered.
fn c_joins_late(seed: u64, committed: &[&str]) -> ManualCluster {
    let mut c = ManualCluster::new(3, ZabParams::default(), seed);
    c.crash(C).unwrap();
    c.drop_where(|q| q.from == C);
    c.settle(3);
    assert_eq!(c.serving_leader(), Some(B));
    assert_eq!(c.node(A).unwrap().leader(), Some(B));
    for (i, v) in committed.iter().enumerate() {
        let id = c.request(B, put(100 + i as u64, v));
        c.deliver(|_| true);
        assert!(c.replies().contains(&(0, id, Reply::Ok(KvResponse::Ok))));
    }
    c.restart(C).unwrap();
    c.deliver(|q| !is_new_leader_to(q, C));
    let p = c.node(C).unwrap();
    assert_eq!(
        (p.state(), p.phase(), p.accepted_epoch(), p.current_epoch()),
        (PeerState::Following, Phase::Synchronisation, 1, 0)
    );
    assert!(c.queue().iter().any(|q| is_new_leader_to(q, C)));
    let l = c.node(B).unwrap().leader_state();
    assert!(l.acke_recv.contains_key(&C) && !l.ackld_recv.contains(&C));
    c
}

/// Issue 1 (issues.md, figure 1): B proposes (1, 2) after sending C `NewLeader(1,
/// <(1, 1)>)`, before C's `AckLd`. With proposals sent only to `ackldRecv`, C never
/// receives (1, 2), yet B's `Commit(1, 2)` reaches it once its `AckLd` is in — a commit
/// of a transaction C does not have. Here the proposal goes to C too (`ackeRecv`).
#[distlab_tests::test]
fn issue_1_a_proposal_reaches_a_follower_still_synchronising() {
    let mut c = c_joins_late(1, &["v1"]);
    c.request(B, put(7, "v2"));
    let to_c = c.queue().iter().any(|q| {
        q.to == C && matches!(&q.msg, Message::Propose { txn, .. } if txn.zxid == Zxid::new(1, 2))
    });
    assert!(
        to_c,
        "Propose (1, 2) must go to C, in ackeRecv but not ackldRecv"
    );
    // The figure's order: C takes NewLeader, then the proposal; B processes C's AckLd
    // before A's Ack, so C is in ackldRecv when (1, 2) commits and gets its Commit.
    c.deliver(|q| is_new_leader_to(q, C));
    c.deliver(|q| q.to == C && matches!(q.msg, Message::Propose { .. }));
    assert_eq!(zxids(&c, C), vec![Zxid::new(1, 1), Zxid::new(1, 2)]);
    c.deliver(|q| q.from == C && q.to == B);
    c.deliver(|_| true);
    c.settle(1);
    let p = c.node(C).unwrap();
    assert_eq!((p.phase(), p.committed()), (Phase::Broadcast, 2));
    assert_eq!(p.service().data().get("k").map(String::as_str), Some("v2"));
    assert!(c.violation().is_none(), "{:?}", c.violation());
}

/// Issue 2 (figure 2): C receives (1, 1) twice — inside a `NewLeader` and as a
/// `Propose`. A follower that takes only the next zxid must drop the copy, not append it
/// or treat it as an error. Also: the older, shorter `NewLeader` arriving last must not
/// cut what C acknowledged.
#[distlab_tests::test]
fn issue_2_a_duplicate_proposal_is_dropped() {
    let mut c = c_joins_late(2, &[]);
    // B proposes (1, 1) to A and C (C sent AckEpoch: it is in ackeRecv).
    c.request(B, put(7, "v1"));
    // C re-sends AckEpoch (its timer) and B answers with a NewLeader holding (1, 1).
    c.tick(C);
    c.deliver(|q| q.from == C && q.to == B && matches!(q.msg, Message::AckEpoch { .. }));
    let with_txn = |q: &Queued| {
        q.to == C && matches!(&q.msg, Message::NewLeader { history, .. } if !history.is_empty())
    };
    assert_eq!(c.deliver(with_txn), 1);
    assert_eq!(zxids(&c, C), vec![Zxid::new(1, 1)]);
    // Now the proposal of (1, 1), and a network duplicate of it.
    let dup = c
        .queue()
        .iter()
        .find(|q| q.to == C && matches!(q.msg, Message::Propose { .. }))
        .cloned()
        .unwrap();
    c.inject(dup.from, dup.to, dup.msg.clone());
    assert_eq!(
        c.deliver(|q| q.to == C && matches!(q.msg, Message::Propose { .. })),
        2
    );
    assert_eq!(zxids(&c, C), vec![Zxid::new(1, 1)], "not appended twice");
    // The first, empty NewLeader arrives last: C keeps (1, 1).
    assert_eq!(c.deliver(|q| is_new_leader_to(q, C)), 1);
    assert_eq!(zxids(&c, C), vec![Zxid::new(1, 1)]);
    c.deliver(|_| true);
    c.settle(1);
    assert_eq!(c.node(C).unwrap().committed(), 1);
    assert!(c.violation().is_none(), "{:?}", c.violation());
}

/// Issue 3 (figure 3): B commits (1, 2) with A's Ack while C's `AckLd(1, 1)` is still
/// on its way; `Commit(1, 2)` goes to `ackldRecv`, without C. If B then answered
/// `CommitLd(1, 1)` — the zxid of the AckLd — C would never learn that (1, 2) is
/// committed, and `Commit(1, 3)` would later reach it with (1, 2) undelivered. B answers
/// with its last committed zxid, (1, 2).
#[distlab_tests::test]
fn issue_3_commit_ld_carries_the_leaders_last_committed_zxid() {
    let mut c = c_joins_late(3, &["v1"]);
    c.deliver(|q| is_new_leader_to(q, C));
    let ack_ld = |q: &Queued| q.from == C && matches!(q.msg, Message::AckLd { .. });
    assert!(c.queue().iter().any(ack_ld));
    c.request(B, put(7, "v2"));
    // Everything but C's AckLd: A acks, B commits (1, 2) and tells A only.
    c.deliver(|q| !ack_ld(q));
    assert_eq!(c.node(B).unwrap().committed(), 2);
    assert_eq!(c.node(C).unwrap().committed(), 0);
    let only_a = c
        .queue()
        .iter()
        .all(|q| !(q.to == C && matches!(q.msg, Message::Commit { .. })));
    assert!(only_a, "C is not in ackldRecv yet");
    assert_eq!(
        c.deliver_once(|q| ack_ld(q)
            && matches!(q.msg, Message::AckLd { zxid, .. } if zxid == Zxid::new(1, 1))),
        1
    );
    let commit_ld = c.queue().iter().find_map(|q| match q.msg {
        Message::CommitLd { zxid, .. } if q.to == C => Some(zxid),
        _ => None,
    });
    assert_eq!(
        commit_ld,
        Some(Zxid::new(1, 2)),
        "the leader's last committed zxid"
    );
    c.deliver(|_| true);
    assert_eq!(c.node(C).unwrap().committed(), 2);
    c.request(B, put(8, "v3"));
    c.deliver(|_| true);
    c.settle(1);
    let p = c.node(C).unwrap();
    assert_eq!(p.committed(), 3);
    assert_eq!(p.service().data().get("k").map(String::as_str), Some("v3"));
    assert!(c.violation().is_none(), "{:?}", c.violation());
}

/// The leader of epoch 2 crashes mid-synchronisation: it took a quorum's AckLd and
/// delivered its initial history — including (1, 2), which epoch 1 never committed —
/// but nobody heard its CommitLd. The next leader must start from a history holding
/// (1, 2): the follower that took epoch 2's NewLeader has current epoch 2, which beats
/// the longer history of the old leader (current epoch 1, with (1, 3) that no quorum
/// ever had), so (1, 2) survives and (1, 3) is cut.
#[distlab_tests::test]
fn a_leader_crashing_mid_synchronisation_loses_nothing_it_delivered() {
    let mut c = ManualCluster::new(3, ZabParams::default(), 4);
    c.deliver(|_| true);
    c.settle(3);
    for id in 0..3 {
        assert_eq!(c.node(id).unwrap().phase(), Phase::Broadcast, "n{id}");
    }
    assert_eq!(c.serving_leader(), Some(2));
    // (1, 1) everywhere; (1, 2) reaches n0 only; (1, 3) stays at the leader.
    c.request(2, put(1, "v1"));
    c.deliver(|_| true);
    c.request(2, put(2, "v2"));
    c.deliver(|q| q.to == 0 && matches!(q.msg, Message::Propose { .. }));
    c.drop_where(|_| true);
    c.request(2, put(3, "v3"));
    c.drop_where(|_| true);
    c.crash(2).unwrap();
    assert_eq!(zxids(&c, 0), vec![Zxid::new(1, 1), Zxid::new(1, 2)]);
    assert_eq!(zxids(&c, 1), vec![Zxid::new(1, 1)]);
    // n0 (last zxid (1, 2)) wins the election for epoch 2 and synchronises n1.
    c.advance(distlab_core::Duration::from_millis(400));
    c.tick(0);
    c.tick(1);
    c.deliver(|q| !matches!(q.msg, Message::CommitLd { .. }));
    let l = c.node(0).unwrap();
    assert_eq!((l.state(), l.current_epoch()), (PeerState::Leading, 2));
    assert_eq!(l.committed(), 2, "delivered (1, 2) on the quorum's AckLd");
    let f = c.node(1).unwrap();
    assert_eq!((f.current_epoch(), f.phase()), (2, Phase::Synchronisation));
    assert_eq!(zxids(&c, 1), vec![Zxid::new(1, 1), Zxid::new(1, 2)]);
    // The crash: CommitLd never leaves.
    c.crash(0).unwrap();
    c.drop_where(|_| true);
    c.restart(2).unwrap();
    c.advance(distlab_core::Duration::from_millis(400));
    c.tick(1);
    c.deliver(|_| true);
    c.settle(3);
    let l = c.serving_leader().expect("epoch 3 established");
    assert_eq!(c.node(l).unwrap().current_epoch(), 3);
    for id in [1, 2] {
        assert_eq!(
            zxids(&c, id),
            vec![Zxid::new(1, 1), Zxid::new(1, 2)],
            "n{id}: (1, 2) kept, (1, 3) cut"
        );
        assert_eq!(c.node(id).unwrap().committed(), 2);
    }
    assert!(c.violation().is_none(), "{:?}", c.violation());
}
