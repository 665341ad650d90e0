//! Named quorum schedules, each driven message by message on a hand-driven cluster
//! (`distlab_core::consistency::quorum::manual`), judged by the linearizability checker:
//! the new/old inversion (a read sees a partially applied write, a later read does not:
//! found for plain R + W > N quorums, impossible for ABD because a read writes back before
//! it answers), concurrent writers with equal timestamps ordered by writer id, and a
//! replica that must not forget a write it acked across a power loss.

use distlab_core::consistency::quorum::manual::{ManualCluster, Pending};
use distlab_core::consistency::quorum::node::Message;
use distlab_core::consistency::quorum::{Mode, QuorumParams, QuorumRequest};
use distlab_core::sim::linearizability::Verdict;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn params(mode: Mode, durable: bool) -> QuorumParams {
    QuorumParams {
        mode,
        n: 3,
        r: 2,
        w: 2,
        durable,
        ..QuorumParams::default()
    }
}

fn put(value: &str) -> QuorumRequest {
    QuorumRequest::Put {
        key: "k".into(),
        value: value.into(),
    }
}

fn get() -> QuorumRequest {
    QuorumRequest::Get { key: "k".into() }
}

fn query(p: &Pending) -> bool {
    matches!(p.msg, Message::Query { .. } | Message::QueryAck { .. })
}

fn store(p: &Pending) -> bool {
    matches!(p.msg, Message::Store { .. } | Message::StoreAck { .. })
}

/// Both ends of the message among `nodes`.
fn among(p: &Pending, nodes: &[u32]) -> bool {
    nodes.contains(&p.from) && nodes.contains(&p.to)
}

/// A put by client 0 through n0 whose stores reach n0 only: it never completes (W = 2),
/// and its client gives up. ABD's query phase goes to n0 and n1 first.
fn partial_put(c: &mut ManualCluster) {
    c.request(0, 0, put("new")).unwrap();
    c.deliver(|p| query(p) && among(p, &[0, 1]));
    c.deliver(|p| store(p) && among(p, &[0]));
    c.drop_where(|p| matches!(p.msg, Message::Store { .. }));
    assert!(c.answer(0).is_none());
}

#[distlab_tests::test]
fn plain_quorums_show_new_then_old() {
    let mut c = ManualCluster::new(3, params(Mode::Plain, true)).unwrap();
    partial_put(&mut c);
    // Read A through n0 hears n0 (new) and n1 (nothing): it answers the newest, and its
    // read repair of n1 is still on its way.
    let a = c.request(1, 0, get()).unwrap();
    c.deliver(|p| query(p) && among(p, &[0, 1]));
    assert_eq!(c.read_value(a).as_deref(), Some("new"));
    assert_eq!(c.answer(a).unwrap().repaired, vec![1]);
    // Read B, after A answered, through n2 hears n1 and n2: the old value.
    let b = c.request(2, 2, get()).unwrap();
    c.deliver(|p| query(p) && among(p, &[1, 2]));
    assert_eq!(c.read_value(b).as_deref(), Some(""));
    let verdict = c.check().unwrap();
    assert_eq!(verdict.verdict, Verdict::NotLinearizable, "{verdict:?}");
    // Once the repair lands, n1 holds the new value: eventually consistent, too late.
    c.deliver(|p| matches!(p.msg, Message::Store { request: None, .. }));
    assert_eq!(c.node(1).unwrap().store()["k"].1, "new");
}

#[distlab_tests::test]
fn abd_never_shows_new_then_old() {
    // Whichever two replicas take read A's write-back, and whichever two read B hears,
    // B sees the new value: A answered only after the write-back reached a quorum.
    for write_back in [[0, 1], [0, 2], [1, 2]] {
        for heard in [[0, 1], [0, 2], [1, 2]] {
            let mut c = ManualCluster::new(3, params(Mode::Abd, true)).unwrap();
            partial_put(&mut c);
            let a = c.request(1, 0, get()).unwrap();
            c.deliver(|p| query(p) && among(p, &[0, 1]));
            assert_eq!(c.read_value(a), None, "answered before its write-back");
            c.deliver(|p| {
                matches!(p.msg, Message::Store { .. }) && write_back.contains(&p.to)
                    || matches!(p.msg, Message::StoreAck { .. }) && write_back.contains(&p.from)
            });
            assert_eq!(c.read_value(a).as_deref(), Some("new"));
            let b = c.request(2, 2, get()).unwrap();
            c.deliver(|p| {
                matches!(p.msg, Message::Query { .. }) && heard.contains(&p.to)
                    || matches!(p.msg, Message::QueryAck { .. }) && heard.contains(&p.from)
            });
            c.deliver(store);
            assert_eq!(
                c.read_value(b).as_deref(),
                Some("new"),
                "write-back to {write_back:?}, read B heard {heard:?}"
            );
            let verdict = c.check().unwrap();
            assert_eq!(verdict.verdict, Verdict::Linearizable, "{verdict:?}");
        }
    }
}

#[distlab_tests::test]
fn equal_timestamps_are_ordered_by_writer_id() {
    // Plain: two coordinators read the same clock instant; client 1's put arrives first
    // everywhere, then client 0's, which must lose to writer 1 at every replica.
    let mut c = ManualCluster::new(3, params(Mode::Plain, true)).unwrap();
    c.set_clock_offset(1, -1);
    let a = c.request(0, 0, put("from c0")).unwrap();
    let b = c.request(1, 1, put("from c1")).unwrap();
    c.deliver(|p| matches!(&p.msg, Message::Store { value, .. } if value == "from c1"));
    c.deliver(|_| true);
    let (ta, tb) = (
        c.answer(a).unwrap().tag.unwrap(),
        c.answer(b).unwrap().tag.unwrap(),
    );
    assert_eq!(ta.ts, tb.ts, "the two puts must carry equal timestamps");
    assert!(ta < tb);
    for id in 0..3 {
        assert_eq!(c.node(id).unwrap().store()["k"].1, "from c1", "n{id}");
    }
    let r = c.request(2, 2, get()).unwrap();
    c.deliver(|_| true);
    assert_eq!(c.read_value(r).as_deref(), Some("from c1"));
    assert_eq!(c.check().unwrap().verdict, Verdict::Linearizable);

    // ABD: both writers query before either stores, so both pick ts 1; writer 1 wins
    // however the stores interleave.
    let mut c = ManualCluster::new(3, params(Mode::Abd, true)).unwrap();
    let a = c.request(0, 0, put("from c0")).unwrap();
    let b = c.request(1, 1, put("from c1")).unwrap();
    c.deliver(query);
    c.deliver(|p| matches!(&p.msg, Message::Store { value, .. } if value == "from c1"));
    c.deliver(|_| true);
    let (ta, tb) = (
        c.answer(a).unwrap().tag.unwrap(),
        c.answer(b).unwrap().tag.unwrap(),
    );
    assert_eq!((ta.ts, tb.ts), (1, 1));
    for id in 0..3 {
        assert_eq!(c.node(id).unwrap().store()["k"].1, "from c1", "n{id}");
    }
    let r = c.request(2, 2, get()).unwrap();
    c.deliver(|_| true);
    assert_eq!(c.read_value(r).as_deref(), Some("from c1"));
    assert_eq!(c.check().unwrap().verdict, Verdict::Linearizable);
}

/// An ABD put acked by n0 and n1 only, both then losing power, then a read through n2
/// that hears n1 and n2: what it answers, and the checker's verdict.
fn read_after_power_loss(durable: bool) -> (Option<String>, Verdict) {
    let mut c = ManualCluster::new(3, params(Mode::Abd, durable)).unwrap();
    let w = c.request(0, 0, put("acked")).unwrap();
    c.deliver(|p| among(p, &[0, 1]));
    assert!(c.answer(w).is_some(), "the put must complete on n0 and n1");
    c.drop_where(|_| true);
    c.power_cycle(0);
    c.power_cycle(1);
    let r = c.request(1, 2, get()).unwrap();
    c.deliver(|p| query(p) && among(p, &[1, 2]));
    c.deliver(store);
    (c.read_value(r), c.check().unwrap().verdict)
}

#[distlab_tests::test]
fn an_acked_write_survives_power_loss_of_its_quorum() {
    assert_eq!(
        read_after_power_loss(true),
        (Some("acked".into()), Verdict::Linearizable)
    );
    // The test can fail: replicas that ack before their store is durable forget it, and
    // the checker catches the read of the old value.
    assert_eq!(
        read_after_power_loss(false),
        (Some(String::new()), Verdict::NotLinearizable)
    );
}

mod lab {
    use distlab_core::Duration;
    use distlab_core::consistency::quorum::lab::QuorumLab;
    use distlab_core::lab::{Cluster, Lab, Runner};
    use distlab_core::sim::history::Outcome;
    use distlab_core::sim::linearizability::Verdict;
    use serde_json::{Value, json};

    fn lab(config: Value) -> Runner<Cluster<QuorumLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[distlab_tests::test]
    fn abd_stays_linearizable_and_operations_show_their_replicas() {
        let mut l = lab(json!({"mode": "abd", "nodes": 5, "n": 3, "r": 2, "w": 2}));
        l.act(&json!({"type": "put", "node": 4, "key": "k0", "value": "mine"}))
            .unwrap();
        l.step(Duration::from_millis(1_500)).unwrap();
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let h = l.model().lab().harness();
        assert!(h.completed() > 30);
        assert_eq!(l.model().lab().verdict(), Verdict::Linearizable);
        let mine = h
            .sim()
            .history()
            .iter()
            .find(|o| o.client == 3)
            .expect("the put of the action");
        let Outcome::Ok { value, .. } = &mine.outcome else {
            panic!("{mine:?}");
        };
        assert_eq!((value.queried.len(), value.stored.len()), (2, 2));
        let text = serde_json::to_string(&v.panels).unwrap();
        assert!(text.contains("queried") && text.contains("'v"), "{text}");
    }

    #[distlab_tests::test]
    fn plain_quorums_with_a_skewed_coordinator_are_caught() {
        // n0's clock runs 200 ms behind: a put it coordinates soon after another put to
        // the same key carries an older timestamp, is acked and then lost to the earlier
        // value (last writer wins by clock). The checker catches a later read; ABD, whose
        // tags come from the replicas, not from clocks, does not care.
        let skew = json!({"faults": [
            {"atUs": 0, "fault": {"type": "clockSkew", "node": 0, "skewMs": -200.0}}
        ]});
        for (mode, caught) in [("plain", true), ("abd", false)] {
            let mut config = json!({"mode": mode, "nodes": 3, "clients": 3, "keys": 1});
            config["faults"] = skew.clone();
            let mut l = lab(config);
            l.step(Duration::from_millis(2_000)).unwrap();
            let verdict = l.model().lab().verdict();
            assert_eq!(
                verdict == Verdict::NotLinearizable,
                caught,
                "{mode}: {verdict:?}"
            );
            assert_eq!(l.view().invariants.iter().all(|i| i.ok), !caught);
        }
    }
}

/// Dynamo's sloppy quorum with hinted handoff (section 4.6) and Merkle-tree anti-entropy
/// (section 4.7), on the simulator: a hint reaches its replica once it is back, a replica
/// that missed writes while down is repaired by anti-entropy, and after a partition heals
/// every replica converges.
mod dynamo {
    use distlab_core::consistency::quorum::harness::{Harness, Workload};
    use distlab_core::consistency::quorum::node::preference_list;
    use distlab_core::consistency::quorum::soak::divergence;
    use distlab_core::consistency::quorum::{
        AntiEntropy, QuorumParams, QuorumRequest, QuorumResponse,
    };
    use distlab_core::sim::history::Outcome;
    use distlab_core::sim::{Fault, SimConfig};
    use distlab_core::{Duration, Time};

    fn cluster(nodes: u32, params: QuorumParams, workload: Workload) -> Harness {
        let config = SimConfig {
            nodes,
            clients: 1,
            seed: 7,
            ..SimConfig::default()
        };
        Harness::new(config, params, workload).unwrap()
    }

    fn idle() -> Workload {
        Workload {
            clients: 0,
            ..Workload::default()
        }
    }

    fn run_for(h: &mut Harness, ms: u64) {
        let t = h.sim().now() + Duration::from_millis(ms);
        h.run_until_or(t, |_| false);
    }

    fn fault(h: &mut Harness, f: Fault) {
        h.sim_mut().apply_fault(&f).unwrap();
    }

    /// Client 0 writes `value` to `key` through `node`, and the cluster runs 500 ms.
    fn put(h: &mut Harness, node: u32, key: &str, value: &str) -> Option<QuorumResponse> {
        let body = QuorumRequest::Put {
            key: key.into(),
            value: value.into(),
        };
        let id = h
            .sim_mut()
            .client_request(0, node, body, Duration::from_millis(400))
            .unwrap();
        run_for(h, 500);
        match &h.sim().history()[id as usize].outcome {
            Outcome::Ok { value, .. } => Some(value.clone()),
            _ => None,
        }
    }

    fn anti_entropy() -> Option<AntiEntropy> {
        Some(AntiEntropy {
            period: Duration::from_millis(100),
            depth: 3,
        })
    }

    #[distlab_tests::test]
    fn a_hint_is_delivered_after_the_intended_replica_recovers() {
        // W = N = 3 with one home replica down: a strict quorum cannot take the write; a
        // sloppy one gives the down replica's copy to the next node of the ring.
        let homes = preference_list("k", 3, 5);
        let ring = preference_list("k", 5, 5);
        let (down, stand_in) = (homes[2], ring[3]);
        let params = |sloppy| QuorumParams {
            n: 3,
            r: 1,
            w: 3,
            sloppy,
            ..QuorumParams::default()
        };
        let mut strict = cluster(5, params(false), idle());
        fault(&mut strict, Fault::Crash { node: down });
        assert_eq!(
            put(&mut strict, homes[0], "k", "v"),
            None,
            "strict: W = 3 of 2"
        );

        let mut h = cluster(5, params(true), idle());
        fault(&mut h, Fault::Crash { node: down });
        let answer = put(&mut h, homes[0], "k", "v").expect("sloppy: the write succeeds");
        assert_eq!(answer.hinted, vec![(stand_in, down)]);
        let held = |h: &Harness| {
            h.sim()
                .node(stand_in)
                .unwrap()
                .hints()
                .get(&down)
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
        };
        assert_eq!(held(&h), Some(vec!["k".to_string()]));
        // The stand-in keeps the copy apart from its own registers, and keeps it while
        // the replica is down, however many handoffs fail.
        run_for(&mut h, 2_000);
        assert_eq!(held(&h), Some(vec!["k".to_string()]));
        assert!(h.sim().node(stand_in).unwrap().store().get("k").is_none());
        fault(&mut h, Fault::Restart { node: down });
        run_for(&mut h, 1_000);
        assert_eq!(h.sim().node(down).unwrap().store()["k"].1, "v");
        assert_eq!(
            held(&h),
            None,
            "the stand-in drops the hint once handed off"
        );
        assert_eq!(h.sim().node(stand_in).unwrap().stats().hints_delivered, 1);
        assert_eq!(divergence(h.sim()), None);
    }

    /// Three replicas, n2 down while ten keys are written, then back for `ms`: what
    /// still differs.
    fn missed_writes(anti_entropy: Option<AntiEntropy>, ms: u64) -> (Harness, Option<String>) {
        let params = QuorumParams {
            n: 3,
            r: 2,
            w: 2,
            anti_entropy,
            ..QuorumParams::default()
        };
        let mut h = cluster(3, params, idle());
        fault(&mut h, Fault::Crash { node: 2 });
        for k in 0..10 {
            assert!(put(&mut h, k % 2, &format!("k{k}"), &format!("v{k}")).is_some());
        }
        fault(&mut h, Fault::Restart { node: 2 });
        assert!(h.sim().node(2).unwrap().store().is_empty());
        run_for(&mut h, ms);
        let left = divergence(h.sim());
        (h, left)
    }

    #[distlab_tests::test]
    fn anti_entropy_repairs_a_replica_that_missed_writes_while_down() {
        let (h, left) = missed_writes(anti_entropy(), 2_000);
        assert_eq!(left, None);
        let n2 = h.sim().node(2).unwrap();
        assert_eq!(n2.store(), h.sim().node(0).unwrap().store());
        assert_eq!(n2.store().len(), 10);
        assert_eq!(n2.stats().sync_applied, 10);
        // The keys came in anti-entropy rounds, not as hints or repairs.
        let sent: u64 = (0..2)
            .map(|id| h.sim().node(id).unwrap().stats().sync_keys_sent)
            .sum();
        assert!(sent >= 10, "{sent}");
        // Without anti-entropy (and without reads to repair it) n2 stays behind.
        let (h, left) = missed_writes(None, 2_000);
        assert!(left.is_some());
        assert!(h.sim().node(2).unwrap().store().is_empty());
    }

    /// Five nodes partitioned {0, 1} | {2, 3, 4} for 1.5 s under put-heavy clients, then
    /// healed and left 3 s after the clients stop: what still differs, and hints taken.
    fn after_partition(sloppy: bool, anti_entropy: Option<AntiEntropy>) -> (Option<String>, u64) {
        let params = QuorumParams {
            n: 3,
            r: 2,
            w: 2,
            sloppy,
            anti_entropy,
            ..QuorumParams::default()
        };
        let workload = Workload {
            clients: 3,
            keys: 8,
            get_share: 0.0,
            ..Workload::default()
        };
        let mut h = cluster(5, params, workload);
        fault(
            &mut h,
            Fault::Partition {
                groups: vec![vec![0, 1], vec![2, 3, 4]],
            },
        );
        h.run_until_or(Time::from_millis(1_500), |_| false);
        fault(&mut h, Fault::Heal);
        h.stop_clients();
        run_for(&mut h, 3_000);
        let hints = (0..5)
            .map(|id| h.sim().node(id).unwrap().stats().hints_taken)
            .sum();
        (divergence(h.sim()), hints)
    }

    #[distlab_tests::test]
    fn after_heal_and_anti_entropy_all_replicas_converge() {
        let (left, hints) = after_partition(true, anti_entropy());
        assert_eq!(left, None);
        assert!(
            hints > 0,
            "the partition must have sent writes to stand-ins"
        );
        let (left, _) = after_partition(false, anti_entropy());
        assert_eq!(left, None);
        // Without anti-entropy the replicas cut off by the partition stay behind.
        let (left, _) = after_partition(false, None);
        assert!(left.is_some());
    }
}

/// The lab with Dynamo's additions: availability and the checker's verdict with sloppy
/// quorums vs strict ones under a partition, and the Merkle trees of a pair side by side.
mod dynamo_lab {
    use distlab_core::Duration;
    use distlab_core::consistency::quorum::lab::QuorumLab;
    use distlab_core::lab::view::Panel;
    use distlab_core::lab::{Cluster, Lab, Runner};
    use distlab_core::sim::history::Outcome;
    use distlab_core::sim::linearizability::Verdict;
    use serde_json::{Value, json};

    fn lab(config: Value) -> Runner<Cluster<QuorumLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn timed_out(l: &Runner<Cluster<QuorumLab>>) -> usize {
        l.model()
            .lab()
            .harness()
            .sim()
            .history()
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Timeout { .. }))
            .count()
    }

    #[distlab_tests::test]
    fn sloppy_quorums_stay_available_and_the_checker_catches_them() {
        // ABD over a partition {0, 1} | {2, 3, 4}: strict quorums time out on the
        // minority side and stay linearizable; sloppy ones answer from stand-ins there,
        // and a read on the other side misses writes held only by stand-ins.
        let partition = json!({"faults": [
            {"atUs": 0, "fault": {"type": "partition", "groups": [[0, 1], [2, 3, 4]]}}
        ]});
        let mut outcome = Vec::new();
        for sloppy in [false, true] {
            let mut l = lab(json!({
                "mode": "abd", "nodes": 5, "n": 3, "r": 2, "w": 2, "keys": 4, "clients": 4,
                "sloppy": sloppy, "faults": partition,
            }));
            l.step(Duration::from_millis(3_000)).unwrap();
            outcome.push((timed_out(&l), l.model().lab().verdict()));
        }
        let (strict, sloppy) = (outcome[0], outcome[1]);
        assert_eq!(strict.1, Verdict::Linearizable, "{outcome:?}");
        assert_eq!(sloppy.1, Verdict::NotLinearizable, "{outcome:?}");
        assert!(sloppy.0 * 2 < strict.0, "{outcome:?}");
    }

    fn lit(panels: &[Panel]) -> (usize, usize) {
        let mut trees = 0;
        let mut differing = 0;
        for p in panels {
            if let Panel::Grid { title, cells, .. } = p
                && title.contains("Merkle tree")
            {
                trees += 1;
                differing += cells.iter().filter(|c| c.value == 2.0).count();
            }
        }
        (trees, differing)
    }

    #[distlab_tests::test]
    fn merkle_trees_of_a_pair_show_the_differing_ranges() {
        // n2 is cut off while the clients write: the trees of n1 and n2 differ; after the
        // heal, with the clients stopped, anti-entropy brings them back together.
        let mut l = lab(json!({
            "nodes": 3, "keys": 8, "getShare": 0.0, "antiEntropy": true, "antiEntropyMs": 100,
            "treeDepth": 4,
            "faults": {"faults": [
                {"atUs": 0, "fault": {"type": "partition", "groups": [[0, 1], [2]]}},
                {"atUs": 1_000_000, "fault": {"type": "heal"}}
            ]},
        }));
        l.act(&json!({"type": "inspect", "a": 1, "b": 2})).unwrap();
        l.step(Duration::from_millis(900)).unwrap();
        let (trees, differing) = lit(&l.view().panels);
        assert_eq!(trees, 2);
        assert!(differing > 0);
        l.act(&json!({"type": "stopClients"})).unwrap();
        l.step(Duration::from_millis(2_000)).unwrap();
        let v = l.view();
        assert_eq!(lit(&v.panels), (2, 0));
        let text = serde_json::to_string(&v.panels).unwrap();
        assert!(text.contains("anti-entropy rounds"), "{text}");
        let e = l
            .act(&json!({"type": "inspect", "a": 1, "b": 7}))
            .unwrap_err();
        assert!(e.to_string().contains('b'), "{e}");
    }
}
