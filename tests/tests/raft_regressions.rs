//! Named Raft regressions: scenarios from the paper and the thesis replayed exactly.

use distlab_core::consensus::raft::harness::{Harness, Workload};
use distlab_core::consensus::raft::manual::{ManualCluster, Queued};
use distlab_core::consensus::raft::{
    Invariant, KvCommand, KvOp, KvResponse, Message, RaftConfig, RaftRequest, ReadMode, Role,
};
use distlab_core::sim::history::Outcome;
use distlab_core::sim::{Fault, Reply, SimConfig};
use distlab_core::{Duration, Time};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

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
    c.request(0, RaftRequest::Kv(Box::new(put)));
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

#[distlab_tests::test]
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

#[distlab_tests::test]
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

#[distlab_tests::test]
fn disruptive_rejoin_without_pre_vote_deposes_the_leader() {
    for seed in 1..=5 {
        let r = disruptive_rejoin(false, seed);
        assert!(r.isolated_term > r.term + 3, "seed {seed}: {r:?}");
        assert!(!r.leader_kept_leading, "seed {seed}: {r:?}");
        assert!(r.term_after > r.isolated_term, "seed {seed}: {r:?}");
    }
}

#[distlab_tests::test]
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

/// A follower that was down while the others compacted their logs catches up through
/// InstallSnapshot (paper §7), and ends with the same state machine.
#[distlab_tests::test]
fn snapshot_install_to_a_lagging_follower() {
    let sim = SimConfig {
        seed: 11,
        nodes: 3,
        clients: 3,
        record_trace: false,
        ..SimConfig::default()
    };
    let config = RaftConfig {
        snapshot_entries: 20,
        ..RaftConfig::default()
    };
    let workload = Workload {
        stop_at: Time::from_millis(3_000),
        ..Workload::default()
    };
    let mut h = Harness::new(sim, config.params(3).unwrap(), workload, true).unwrap();
    h.run_until(Time::from_millis(500));
    let leader = h.leader().unwrap();
    let lagging = (leader + 1) % 3;
    h.sim_mut()
        .apply_fault(&Fault::Crash { node: lagging })
        .unwrap();
    h.run_until(Time::from_millis(2_500));
    let leader_base = h.sim().node(leader).unwrap().log().base_index();
    assert!(leader_base > 100, "leader compacted to {leader_base}");
    h.sim_mut()
        .apply_fault(&Fault::Restart { node: lagging })
        .unwrap();
    let behind = h.sim().node(lagging).unwrap().log().last_index();
    assert!(behind < leader_base, "{behind} vs {leader_base}");
    h.run_until(Time::from_millis(4_000));
    assert!(h.violation().is_none(), "{:?}", h.violation());
    let l = h.sim().node(leader).unwrap();
    let f = h.sim().node(lagging).unwrap();
    assert!(f.snapshot().index >= leader_base, "{}", f.snapshot().index);
    assert_eq!(f.applied_index(), l.applied_index());
    assert_eq!(f.kv(), l.kv());
    assert!(!f.kv().is_empty());
}

fn quiet_cluster(nodes: u32, seed: u64, config: RaftConfig, initial: u32) -> Harness {
    let sim = SimConfig {
        seed,
        nodes,
        clients: 2,
        record_trace: false,
        ..SimConfig::default()
    };
    let workload = Workload {
        clients: 0,
        ..Workload::default()
    };
    Harness::new(sim, config.params(initial).unwrap(), workload, true).unwrap()
}

/// Runs until request `id` is answered (or `until`), and returns its outcome.
fn outcome(h: &mut Harness, id: u64, until: Time) -> Outcome<KvResponse> {
    h.run_until_or(until, |h| !h.sim().history()[id as usize].is_pending());
    h.sim().history()[id as usize].outcome.clone()
}

fn put(session: u64, seq: u64, value: &str) -> RaftRequest {
    RaftRequest::Kv(Box::new(KvCommand {
        session,
        seq,
        op: KvOp::Put {
            key: "x".into(),
            value: value.into(),
        },
    }))
}

fn get(session: u64, seq: u64) -> RaftRequest {
    RaftRequest::Kv(Box::new(KvCommand {
        session,
        seq,
        op: KvOp::Get { key: "x".into() },
    }))
}

#[distlab_tests::test]
fn leader_transfer_hands_over_within_an_election_timeout() {
    for seed in 1..=5 {
        let mut h = quiet_cluster(5, seed, RaftConfig::default(), 5);
        h.run_until(Time::from_millis(1_000));
        let old = h.leader().unwrap();
        let term = h.sim().node(old).unwrap().term();
        let to = (old + 2) % 5;
        let id = h
            .admin(old, RaftRequest::TransferLeadership { to })
            .unwrap();
        let deadline = h.sim().now() + Duration::from_millis(300);
        let got = outcome(&mut h, id, deadline);
        assert!(matches!(got, Outcome::Ok { .. }), "seed {seed}: {got:?}");
        h.run_until(deadline);
        assert!(h.violation().is_none(), "{:?}", h.violation());
        assert_eq!(h.leader(), Some(to), "seed {seed}");
        assert_eq!(h.sim().node(to).unwrap().term(), term + 1, "seed {seed}");
    }
}

#[distlab_tests::test]
fn membership_add_promotes_a_caught_up_learner_and_remove_steps_the_leader_down() {
    // Five processes, three of them the initial voters.
    let mut h = quiet_cluster(5, 4, RaftConfig::default(), 3);
    h.run_until(Time::from_millis(1_000));
    let leader = h.leader().unwrap();
    for node in [3, 4] {
        let id = h.admin(leader, RaftRequest::AddNode { node }).unwrap();
        let until = h.sim().now() + Duration::from_secs(2);
        let got = outcome(&mut h, id, until);
        assert!(matches!(got, Outcome::Ok { .. }), "add {node}: {got:?}");
    }
    let m = h.sim().node(leader).unwrap().membership().clone();
    assert_eq!(m.voters.len(), 5);
    assert!(m.learners.is_empty());
    // The leader removes itself: it steps down once that commits, and the others go on.
    let id = h
        .admin(leader, RaftRequest::RemoveNode { node: leader })
        .unwrap();
    let until = h.sim().now() + Duration::from_secs(2);
    let got = outcome(&mut h, id, until);
    assert!(matches!(got, Outcome::Ok { .. }), "remove: {got:?}");
    h.run_until(h.sim().now() + Duration::from_secs(1));
    assert!(h.violation().is_none(), "{:?}", h.violation());
    let new = h.leader().unwrap();
    assert_ne!(new, leader);
    assert_eq!(h.sim().node(new).unwrap().membership().voters.len(), 4);
    assert!(!h.sim().node(leader).unwrap().is_leader());
}

#[distlab_tests::test]
fn leader_crash_during_a_membership_change_still_completes_it() {
    for seed in 1..=5 {
        let mut h = quiet_cluster(4, seed, RaftConfig::default(), 3);
        h.run_until(Time::from_millis(1_000));
        let leader = h.leader().unwrap();
        h.admin(leader, RaftRequest::AddNode { node: 3 }).unwrap();
        // Crash the leader as soon as node 3 is in its configuration, before the change
        // can have completed.
        h.run_until_or(Time::from_millis(2_000), |h| {
            h.sim()
                .node(leader)
                .is_some_and(|n| n.membership().contains(3))
        });
        h.sim_mut()
            .apply_fault(&Fault::Crash { node: leader })
            .unwrap();
        h.run_until(h.sim().now() + Duration::from_secs(2));
        h.sim_mut()
            .apply_fault(&Fault::Restart { node: leader })
            .unwrap();
        h.run_until(h.sim().now() + Duration::from_secs(1));
        assert!(h.violation().is_none(), "seed {seed}: {:?}", h.violation());
        let now = h.leader().unwrap();
        let m = h.sim().node(now).unwrap().membership().clone();
        // Either the learner entry reached a majority and a later leader promoted node 3,
        // or it was lost with the crashed leader and the old configuration stands.
        eprintln!("seed {seed}: voters after the crash {:?}", m.voters);
        assert!(m.learners.is_empty(), "seed {seed}: {m:?}");
        assert!(
            m.voters.len() == 4 || m.voters.len() == 3,
            "seed {seed}: {m:?}"
        );
        for id in 0..4 {
            let n = h.sim().node(id).unwrap();
            assert_eq!(n.membership(), &m, "seed {seed} node {id}");
        }
    }
}

/// Whether a read at a leader cut off from the others, issued after the others elected
/// a new leader and acknowledged a newer write, returned the older value. The cut-off
/// leader's clock runs at half speed, so by its own clock its lease lasts twice as long.
fn stale_read_at_partitioned_leader(read_mode: ReadMode, seed: u64) -> Option<bool> {
    let config = RaftConfig {
        read_mode,
        election_timeout_min_ms: 150.0,
        election_timeout_max_ms: 200.0,
        ..RaftConfig::default()
    };
    let mut h = quiet_cluster(3, seed, config, 3);
    h.run_until(Time::from_millis(1_000));
    let old = h.leader()?;
    let w = h
        .sim_mut()
        .client_request(0, old, put(1, 1, "old"), Duration::from_secs(1));
    let got = outcome(&mut h, w.ok()?, Time::from_millis(2_000));
    assert!(matches!(got, Outcome::Ok { .. }), "{got:?}");
    h.sim_mut()
        .apply_fault(&Fault::ClockDrift {
            node: old,
            ppm: -500_000,
        })
        .unwrap();
    h.run_until(h.sim().now() + Duration::from_millis(120));
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![old]],
        })
        .unwrap();
    let cut = h.sim().now();
    h.run_until_or(cut + Duration::from_secs(2), |h| {
        h.leader_serving() && h.leader() != Some(old)
    });
    let new = h.leader().filter(|&l| l != old)?;
    let w = h
        .sim_mut()
        .client_request(0, new, put(1, 2, "new"), Duration::from_secs(1));
    let got = outcome(&mut h, w.ok()?, cut + Duration::from_secs(3));
    assert!(matches!(got, Outcome::Ok { .. }), "{got:?}");
    let r = h
        .sim_mut()
        .client_request(1, old, get(2, 1), Duration::from_millis(500));
    let got = outcome(&mut h, r.ok()?, cut + Duration::from_secs(4));
    assert!(h.violation().is_none(), "{:?}", h.violation());
    Some(match got {
        Outcome::Ok {
            value: KvResponse::Value { value },
            ..
        } => value.as_deref() == Some("old"),
        _ => false,
    })
}

#[distlab_tests::test]
fn a_read_in_a_partition_is_never_stale_with_read_index_and_can_be_with_leases_under_drift() {
    let mut stale_with_lease = 0;
    for seed in 1..=10 {
        assert_eq!(
            stale_read_at_partitioned_leader(ReadMode::ReadIndex, seed),
            Some(false),
            "seed {seed}: ReadIndex answered a stale read"
        );
        if stale_read_at_partitioned_leader(ReadMode::Lease, seed) == Some(true) {
            stale_with_lease += 1;
        }
    }
    eprintln!("stale lease reads in {stale_with_lease} of 10 seeds");
    assert!(stale_with_lease > 0, "lease reads were never stale");
}

// ---- Lease reads with synchronised clocks (issue 13 §1) ----
//
// Five nodes, `readMode: lease`, default timings (election timeout 150–300 ms, so a lease
// lasts 150 ms), no skew and no drift: each scenario below once returned a stale read, or
// refused writes, with perfect clocks.

fn lease_cluster(seed: u64) -> Harness {
    let config = RaftConfig {
        read_mode: ReadMode::Lease,
        ..RaftConfig::default()
    };
    quiet_cluster(5, seed, config, 5)
}

/// Sends `request` from `client` to `node` and runs until it is answered (or `until`).
fn ask(
    h: &mut Harness,
    client: u32,
    node: u32,
    request: RaftRequest,
    until: Time,
) -> Outcome<KvResponse> {
    let id = h
        .sim_mut()
        .client_request(client, node, request, Duration::from_millis(400))
        .unwrap();
    outcome(h, id, until)
}

/// Whether an outcome is a read of the value written before the scenario's new write.
fn read_old(o: &Outcome<KvResponse>) -> bool {
    matches!(o, Outcome::Ok { value: KvResponse::Value { value }, .. }
        if value.as_deref() == Some("old"))
}

/// What a lease scenario saw: when the newer write was acknowledged, and the read at the
/// old leader after it.
#[derive(Debug)]
struct LeaseRun {
    new_write_acked: Time,
    read: Outcome<KvResponse>,
}

/// A restarted follower forgets it heard from the leader. Leader L's lease was last
/// confirmed by A and B; A crashes and restarts at once, on the side of C and D, which have
/// been cut off from L for longer than an election timeout. C or D asks A for its vote
/// right after A is back, while L's lease still runs.
fn restarted_follower_votes(seed: u64) -> (LeaseRun, Time, Time) {
    let mut h = lease_cluster(seed);
    h.run_until(Time::from_millis(1_000));
    let l = h.leader().expect("a leader after a quiet second");
    let got = ask(&mut h, 0, l, put(1, 1, "old"), Time::from_millis(2_000));
    assert!(matches!(got, Outcome::Ok { .. }), "seed {seed}: {got:?}");
    let [a, b, c, d] = [1, 2, 3, 4].map(|i| (l + i) % 5);
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![l, a, b], vec![c, d]],
        })
        .unwrap();
    h.run_until(h.sim().now() + Duration::from_millis(500));
    // Wait for the instant L has just renewed its lease (through A and B) and C's or D's
    // election timer is due within 15–60 ms: then crash A and restart it beside C and D.
    // No clock is skewed, so local times are simulated times.
    let found = h.run_until_or(h.sim().now() + Duration::from_secs(5), |h| {
        let sim = h.sim();
        let now = sim.now();
        let lease_left = sim
            .node(l)
            .and_then(|n| n.lease_until())
            .map_or(Duration::ZERO, |t| t.saturating_since(now));
        let timer_left = [c, d]
            .iter()
            .filter_map(|&n| sim.node(n))
            .map(|n| n.election_timer_due().saturating_since(now))
            .min()
            .unwrap_or(Duration::ZERO);
        lease_left >= Duration::from_millis(140)
            && (Duration::from_millis(15)..Duration::from_millis(60)).contains(&timer_left)
    });
    assert!(found, "seed {seed}: no instant to restart A at");
    let lease_until = h.sim().node(l).unwrap().lease_until().unwrap();
    h.sim_mut().apply_fault(&Fault::Crash { node: a }).unwrap();
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![l, b], vec![a, c, d]],
        })
        .unwrap();
    h.sim_mut()
        .apply_fault(&Fault::Restart { node: a })
        .unwrap();
    let restarted = h.sim().now();
    let elected = h.run_until_or(restarted + Duration::from_secs(2), |h| {
        h.leader_serving() && h.leader() != Some(l)
    });
    assert!(elected, "seed {seed}: C, D and A never elected a leader");
    let new = h.leader().unwrap();
    let got = ask(
        &mut h,
        0,
        new,
        put(1, 2, "new"),
        restarted + Duration::from_secs(3),
    );
    let Outcome::Ok { at: acked, .. } = got else {
        panic!("seed {seed}: the new leader did not take the write: {got:?}");
    };
    let read = ask(&mut h, 1, l, get(2, 1), restarted + Duration::from_secs(4));
    assert!(h.violation().is_none(), "seed {seed}: {:?}", h.violation());
    let run = LeaseRun {
        new_write_acked: acked,
        read,
    };
    (run, restarted, lease_until)
}

#[distlab_tests::test]
fn lease_read_is_not_stale_when_a_restarted_follower_is_asked_to_vote_at_once() {
    for seed in 1..=6 {
        let (run, restarted, lease_until) = restarted_follower_votes(seed);
        assert!(
            !read_old(&run.read),
            "seed {seed}: stale lease read after a newer write acknowledged at {:?} \
             (A restarted at {restarted:?}, L's lease ran to {lease_until:?}): {run:?}",
            run.new_write_acked
        );
        // A refused its vote for one minimum election timeout after booting, so the new
        // leader's write comes after L's lease has run out.
        assert!(
            run.new_write_acked >= restarted + Duration::from_millis(150),
            "seed {seed}: {run:?}, restarted at {restarted:?}"
        );
        assert!(run.new_write_acked > lease_until, "seed {seed}: {run:?}");
    }
}

/// A late TimeoutNow. The target T is cut off, so the transfer waits; T comes back 220 ms
/// into it and catches up, and TimeoutNow goes out. T is slow to handle it (paused): the
/// others meanwhile confirm a heartbeat round that L started after sending TimeoutNow.
/// Then nothing reaches L any more; T campaigns with the transfer flag, which voters obey
/// however recently they heard from L, wins and commits a write. L gives up the transfer 300 ms
/// after it began, and is asked a read.
fn late_timeout_now(seed: u64) -> LeaseRun {
    let mut h = lease_cluster(seed);
    h.run_until(Time::from_millis(1_000));
    let l = h.leader().expect("a leader after a quiet second");
    let t = (l + 1) % 5;
    let got = ask(&mut h, 0, l, put(1, 1, "old"), Time::from_millis(2_000));
    assert!(matches!(got, Outcome::Ok { .. }), "seed {seed}: {got:?}");
    h.sim_mut()
        .apply_fault(&Fault::Partition {
            groups: vec![vec![t]],
        })
        .unwrap();
    // An entry T lacks, so the transfer must wait for it to catch up.
    let until = h.sim().now() + Duration::from_secs(1);
    let got = ask(&mut h, 0, l, put(1, 2, "old"), until);
    assert!(matches!(got, Outcome::Ok { .. }), "seed {seed}: {got:?}");
    let started = h.sim().now();
    h.admin(l, RaftRequest::TransferLeadership { to: t })
        .unwrap();
    h.run_until(started + Duration::from_millis(220));
    h.sim_mut().apply_fault(&Fault::Heal).unwrap();
    let sent = h.run_until_or(started + Duration::from_millis(300), |h| {
        h.sim().in_flight().iter().any(|m| m.kind == "TimeoutNow")
    });
    assert!(
        sent,
        "seed {seed}: no TimeoutNow within 300 ms of the transfer"
    );
    let sent_at = h.sim().now();
    h.sim_mut().apply_fault(&Fault::Pause { node: t }).unwrap();
    // A heartbeat round started after TimeoutNow went out, confirmed by the others.
    h.run_until(sent_at + Duration::from_millis(70));
    // From now on nothing reaches L (what L sends still goes out: T gets its TimeoutNow).
    let others: Vec<u32> = (0..5).filter(|&n| n != l).collect();
    h.sim_mut()
        .apply_fault(&Fault::PartitionOneWay {
            from: others,
            to: vec![l],
        })
        .unwrap();
    h.sim_mut().apply_fault(&Fault::Resume { node: t }).unwrap();
    let elected = h.run_until_or(h.sim().now() + Duration::from_secs(1), |h| {
        h.leader() == Some(t) && h.leader_serving()
    });
    assert!(elected, "seed {seed}: the target never took over");
    let until = h.sim().now() + Duration::from_secs(1);
    let got = ask(&mut h, 0, t, put(1, 3, "new"), until);
    let Outcome::Ok { at: acked, .. } = got else {
        panic!("seed {seed}: the target did not take the write: {got:?}");
    };
    // Past the transfer's timeout, so L no longer refuses clients as "transferring".
    h.run_until(acked.max(started + Duration::from_millis(310)));
    let until = h.sim().now() + Duration::from_secs(1);
    let read = ask(&mut h, 1, l, get(2, 1), until);
    assert!(h.violation().is_none(), "seed {seed}: {:?}", h.violation());
    LeaseRun {
        new_write_acked: acked,
        read,
    }
}

#[distlab_tests::test]
fn lease_read_is_not_stale_after_a_late_timeout_now() {
    for seed in 1..=6 {
        let run = late_timeout_now(seed);
        assert!(
            !read_old(&run.read),
            "seed {seed}: the old leader served a stale read from its lease: {run:?}"
        );
    }
}

/// The leader's clock steps back by a second while a transfer to a cut-off target waits:
/// the transfer still gives up one maximum election timeout (300 ms) after it began, by
/// the time that passed, and the leader takes writes again.
#[distlab_tests::test]
fn a_clock_step_back_during_a_transfer_does_not_stretch_its_timeout() {
    for seed in 1..=4 {
        let mut h = lease_cluster(seed);
        h.run_until(Time::from_millis(3_000));
        let l = h.leader().expect("a leader");
        let t = (l + 1) % 5;
        h.sim_mut()
            .apply_fault(&Fault::Partition {
                groups: vec![vec![t]],
            })
            .unwrap();
        let got = ask(&mut h, 0, l, put(1, 1, "a"), Time::from_millis(4_000));
        assert!(matches!(got, Outcome::Ok { .. }), "seed {seed}: {got:?}");
        let started = h.sim().now();
        let transfer = h
            .admin(l, RaftRequest::TransferLeadership { to: t })
            .unwrap();
        h.run_until(started + Duration::from_millis(100));
        h.sim_mut()
            .apply_fault(&Fault::ClockSkew {
                node: l,
                skew_ms: -1_000.0,
            })
            .unwrap();
        let gave_up = outcome(&mut h, transfer, started + Duration::from_secs(2));
        let Outcome::Fail { reason, at } = &gave_up else {
            panic!("seed {seed}: the transfer to a cut-off node did not fail: {gave_up:?}");
        };
        assert!(reason.contains("timed out"), "seed {seed}: {reason}");
        assert!(
            *at <= started + Duration::from_millis(320),
            "seed {seed}: the transfer gave up {:?} after it began",
            at.saturating_since(started)
        );
        h.run_until(started + Duration::from_millis(330));
        let got = ask(
            &mut h,
            0,
            l,
            put(1, 2, "b"),
            started + Duration::from_secs(1),
        );
        assert!(
            matches!(got, Outcome::Ok { .. }),
            "seed {seed}: the leader still refuses writes 330 ms into the transfer: {got:?}"
        );
        assert_eq!(h.leader(), Some(l), "seed {seed}");
        assert!(h.violation().is_none(), "seed {seed}: {:?}", h.violation());
    }
}
