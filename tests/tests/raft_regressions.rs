//! Named Raft regressions: scenarios from the paper and the thesis replayed exactly.

use distlab_core::consensus::raft::harness::{Harness, Workload};
use distlab_core::consensus::raft::manual::{ManualCluster, Queued};
use distlab_core::consensus::raft::{
    Invariant, KvCommand, KvOp, Message, RaftConfig, RaftRequest, Role,
};
use distlab_core::sim::{Fault, Reply, SimConfig};
use distlab_core::{Duration, Time};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn votes_only(group: &'static [u32]) -> impl FnMut(&Queued) -> bool {
    move |q| {
        group.contains(&q.from)
            && group.contains(&q.to)
            && matches!(q.msg, Message::Vote(_) | Message::VoteReply(_))
    }
}

/// Raft paper Figure 8 with five servers S1..S5 (ids 0..4), with its terms shifted by one
/// (our first leader is elected in term 1):
/// (a) S1 leads term 1 and replicates entry 2 to S2 only;
/// (b) S1 crashes; S5 is elected in term 2 by S3, S4 and itself and appends a different
///     entry 2; it crashes before replicating it;
/// (c) S1 restarts, is elected in term 3, and replicates its entry 2 (of term 1) to S3
///     and S4 — a majority holds it, but nothing of term 3 is replicated yet;
/// (d) S1 crashes; S5 restarts and, its last entry being of a later term, is elected by
///     S2, S3 and S4 in term 4, and overwrites entry 2 everywhere.
/// Committing entry 2 in (c) by counting replicas would lose it in (d).
/// Returns the cluster and whether S1 applied entry 2 (committed it) in (c).
fn figure_8(current_term_commit_rule: bool) -> (ManualCluster, bool) {
    let config = RaftConfig {
        max_batch: 1,
        current_term_commit_rule,
        ..RaftConfig::default()
    };
    let mut c = ManualCluster::new(5, config.params(5).unwrap(), 8);
    let all = [0, 1, 2, 3, 4];
    // S1 becomes leader of term 1; everyone gets its no-op (entry 1) and commits it.
    c.timeout(0);
    c.deliver_within(&all);
    c.heartbeat(0);
    c.deliver_within(&all);
    assert_eq!(c.node(0).unwrap().raft_role(), Role::Leader);
    assert!(all.iter().all(|&n| c.node(n).unwrap().commit_index() == 1));

    // (a) Entry 2 reaches S2 only.
    let put = KvCommand {
        session: 1,
        seq: 1,
        op: KvOp::Put {
            key: "x".into(),
            value: "a".into(),
        },
    };
    c.request(0, RaftRequest::Kv(put));
    c.deliver_within(&[0, 1]);
    c.drop_where(|_| true);

    // (b) S1 crashes; S5 wins term 2 with S3 and S4, appends its no-op as entry 2, crashes.
    c.crash(0).unwrap();
    c.advance(Duration::from_secs(1));
    c.timeout(4);
    c.deliver(votes_only(&[2, 3, 4]));
    let s5 = c.node(4).unwrap();
    assert_eq!((s5.raft_role(), s5.term()), (Role::Leader, 2));
    assert_eq!(s5.log().term_at(2), Some(2));
    c.crash(4).unwrap();
    c.drop_where(|_| true);

    // (c) S1 restarts and wins term 3 with S2 and S3 (the first try only teaches it that
    // term 2 exists), then replicates entry 2 — and nothing after it — to S3 and S4.
    c.restart(0).unwrap();
    c.advance(Duration::from_secs(1));
    c.timeout(0);
    c.deliver(votes_only(&[0, 1, 2]));
    c.timeout(0);
    c.deliver(votes_only(&[0, 1, 2]));
    let s1 = c.node(0).unwrap();
    assert_eq!((s1.raft_role(), s1.term()), (Role::Leader, 3));
    // The first AppendEntries each gets probes at entry 3, which they lack entry 2 for,
    // so they refuse it; the second carries entry 2 alone (one entry per message); the
    // third would carry entry 3 and is lost.
    let mut probed = std::collections::BTreeSet::new();
    c.deliver(|q| {
        [0, 2, 3].contains(&q.from)
            && [0, 2, 3].contains(&q.to)
            && match &q.msg {
                Message::Append(a) if a.prev_log_index == 2 => probed.insert(q.to),
                _ => true,
            }
    });
    c.drop_where(|_| true);
    for n in [0, 1, 2, 3] {
        assert_eq!(c.node(n).unwrap().log().term_at(2), Some(1), "S{}", n + 1);
    }

    let s1_applied = c.node(0).unwrap().kv().get("x").is_some();

    // (d) S1 crashes; S5 restarts and is elected in term 4 by S2, S3, S4.
    c.crash(0).unwrap();
    c.restart(4).unwrap();
    c.advance(Duration::from_secs(1));
    c.timeout(4);
    c.deliver(votes_only(&[1, 2, 3, 4]));
    c.timeout(4);
    c.deliver(votes_only(&[1, 2, 3, 4]));
    c.heartbeat(4);
    c.deliver_within(&[1, 2, 3, 4]);
    c.heartbeat(4);
    c.deliver_within(&[1, 2, 3, 4]);
    (c, s1_applied)
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn figure_8_with_the_current_term_rule_loses_nothing_acknowledged() {
    let (c, s1_applied) = figure_8(true);
    assert!(c.violation().is_none(), "{:?}", c.violation());
    assert!(!s1_applied);
    let s5 = c.node(4).unwrap();
    assert_eq!((s5.raft_role(), s5.term()), (Role::Leader, 4));
    // Entry 2 of term 1 was never committed, so overwriting it lost nothing: the client
    // never heard "ok" for it.
    assert!(
        c.replies()
            .iter()
            .all(|(_, _, r)| !matches!(r, Reply::Ok(_)))
    );
    for n in 1..5 {
        let node = c.node(n).unwrap();
        assert_eq!(node.log().term_at(2), Some(2), "S{}", n + 1);
        assert_eq!(node.commit_index(), 3, "S{}", n + 1);
        assert!(node.kv().get("x").is_none());
    }
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn figure_8_without_the_current_term_rule_loses_a_committed_entry() {
    let (c, s1_applied) = figure_8(false);
    // S1 committed and applied the put in (c)...
    assert!(s1_applied);
    // ...and the checker sees the new leader lacks an entry committed in an earlier term.
    let v = c
        .violation()
        .expect("the unsafe commit rule must be caught");
    assert_eq!(v.invariant, Invariant::LeaderCompleteness, "{v}");
}

/// What happened to a healthy leader when a follower cut off for two seconds returned.
#[derive(Debug)]
struct Rejoin {
    leader: u32,
    term: u64,
    isolated_term: u64,
    leader_after: Option<u32>,
    term_after: u64,
    leader_kept_leading: bool,
}

/// Thesis §9.6 / the `scenario.disruptive-rejoin` lab: five nodes, one follower
/// partitioned away for two seconds (several election timeouts), then healed.
fn disruptive_rejoin(pre_vote: bool, seed: u64) -> Rejoin {
    let sim = SimConfig {
        seed,
        nodes: 5,
        clients: 3,
        record_trace: false,
        ..SimConfig::default()
    };
    let config = RaftConfig {
        pre_vote,
        ..RaftConfig::default()
    };
    let mut h = Harness::new(sim, config.params(5).unwrap(), Workload::default(), true).unwrap();
    h.run_until(Time::from_millis(1_000));
    let leader = h.leader().expect("a leader after a quiet second");
    let term = h.sim().node(leader).unwrap().term();
    let isolated = (leader + 1) % 5;
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![isolated]],
        })
        .unwrap();
    h.run_until(Time::from_millis(3_000));
    let isolated_term = h.sim().node(isolated).unwrap().term();
    h.sim_mut().apply_fault(&Fault::Heal).unwrap();
    let mut kept = true;
    h.run_until_or(Time::from_millis(4_000), |h| {
        let n = h.sim().node(leader).unwrap();
        kept &= n.raft_role() == Role::Leader && n.term() == term;
        false
    });
    assert!(h.violation().is_none(), "{:?}", h.violation());
    let leader_after = h.leader();
    let term_after = leader_after.map_or(0, |l| h.sim().node(l).unwrap().term());
    Rejoin {
        leader,
        term,
        isolated_term,
        leader_after,
        term_after,
        leader_kept_leading: kept,
    }
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn disruptive_rejoin_without_pre_vote_deposes_the_leader() {
    for seed in 1..=5 {
        let r = disruptive_rejoin(false, seed);
        assert!(r.isolated_term > r.term + 3, "seed {seed}: {r:?}");
        assert!(!r.leader_kept_leading, "seed {seed}: {r:?}");
        assert!(r.term_after > r.isolated_term, "seed {seed}: {r:?}");
    }
}

#[test]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
fn disruptive_rejoin_with_pre_vote_leaves_the_leader_alone() {
    for seed in 1..=5 {
        let r = disruptive_rejoin(true, seed);
        assert_eq!(r.isolated_term, r.term, "seed {seed}: {r:?}");
        assert!(r.leader_kept_leading, "seed {seed}: {r:?}");
        assert_eq!(
            (r.leader_after, r.term_after),
            (Some(r.leader), r.term),
            "seed {seed}"
        );
    }
}
