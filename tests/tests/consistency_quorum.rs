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
