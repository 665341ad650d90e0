//! Golden trace hashes: fixed scenarios whose trace hash is asserted equal to a constant
//! (and, for Raft, the state fingerprints a model checker keeps).
//! This suite runs natively (`cargo test`) and compiled to wasm in headless Chrome
//! (`wasm-pack test --headless --chrome tests`), so both asserting the same constant
//! proves the simulator agrees bit for bit on both targets: same seed, same random draws
//! (ChaCha), same float maths (`libm` for the latency tails), same event order.
//!
//! A changed constant means the simulation changed: if that was intended (a new event
//! kind, a different draw order), update the constant in the same commit and say why.

use distlab_core::consensus::raft::harness::{Harness, Workload};
use distlab_core::consensus::raft::messages::AppendRequest;
use distlab_core::consensus::raft::{
    Entry, EntryData, KvCommand, KvOp, Message, RaftConfig, RaftNode,
};
use distlab_core::create_lab;
use distlab_core::sim::{Fault, Sim, SimConfig};
use distlab_core::{Duration, Time};
use serde_json::{Value, json};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// `sim.network`: seven nodes over a log-normal network with loss, duplication and
/// reordering, a fault script (partition, crash mid-event, clock skew and drift, a
/// Pareto latency tail, pause, one-way partition, heal, restart), client requests between
/// steps, run to a fixed step.
fn network_scenario() -> (String, u64, Value) {
    let ms = |t: u64| t * 1_000;
    let config = json!({
        "seed": 20_240_607u64,
        "nodes": 7,
        "fanout": 3,
        "intervalMs": 20.0,
        "sampleMs": 50.0,
        "network": {
            "latency": { "type": "logNormal", "medianMs": 4.0, "sigma": 0.8 },
            "loss": 0.05,
            "duplicate": 0.05,
            "reorder": 0.1,
            "reorderDelayMs": 15.0
        },
        "faults": { "faults": [
            { "atUs": ms(300), "fault": { "type": "partition", "groups": [[0, 1, 2], [3, 4, 5, 6]] } },
            { "atUs": ms(450), "fault": { "type": "crash", "node": 2 } },
            { "atUs": ms(600), "fault": { "type": "clockSkew", "node": 4, "skewMs": 35.5 } },
            { "atUs": ms(700), "fault": { "type": "setLatency", "latency": { "type": "pareto", "scaleMs": 2.0, "shape": 1.5 } } },
            { "atUs": ms(800), "fault": { "type": "heal" } },
            { "atUs": ms(900), "fault": { "type": "restart", "node": 2 } },
            { "atUs": ms(1_000), "fault": { "type": "clockDrift", "node": 5, "ppm": 20_000 } },
            { "atUs": ms(1_100), "fault": { "type": "pause", "node": 6 } },
            { "atUs": ms(1_250), "fault": { "type": "resume", "node": 6 } },
            { "atUs": ms(1_300), "fault": { "type": "crashMidEvent", "node": 3, "effects": 1 } },
            { "atUs": ms(1_500), "fault": { "type": "restart", "node": 3 } },
            { "atUs": ms(1_600), "fault": { "type": "partitionOneWay", "from": [0], "to": [1, 2] } },
            { "atUs": ms(1_800), "fault": { "type": "setLatency", "latency": { "type": "exponential", "minMs": 1.0, "meanMs": 3.0 } } }
        ] }
    });
    let mut lab = create_lab("sim.network", &config).unwrap();
    for (i, node) in [0u32, 3, 5, 2, 6, 1].into_iter().enumerate() {
        lab.step(Duration::from_millis(170 + 40 * i as u64))
            .unwrap();
        lab.act(&json!({ "type": "clientRequest", "node": node, "timeoutMs": 150.0 }))
            .unwrap();
        lab.step_events(97).unwrap();
    }
    // Run to a fixed step (not a time), past the end of the fault script.
    let target = 12_000;
    lab.step_events(target - lab.steps()).unwrap();
    assert_eq!(lab.steps(), target);
    let trace = lab.trace();
    let view = serde_json::to_value(lab.view()).unwrap();
    (
        trace["hash"].as_str().unwrap().to_string(),
        trace["events"].as_u64().unwrap(),
        view["timeUs"].clone(),
    )
}

#[distlab_tests::test]
fn sim_network_golden_trace_hash() {
    let (hash, events, time_us) = network_scenario();
    assert_eq!(
        (hash.as_str(), events, time_us),
        ("706abc149094cc11", 21_302, json!(12_351_128)),
        "the sim.network golden scenario changed"
    );
}

/// Raft (the core's cluster harness: five nodes, closed-loop key-value clients, torn
/// writes, invariants checked after every event): the leader is partitioned away, a
/// follower crashes and restarts, then everything heals.
fn raft_scenario() -> (u64, u64, usize) {
    let sim = SimConfig {
        seed: 7_777,
        nodes: 5,
        clients: 3,
        record_trace: false,
        ..SimConfig::default()
    };
    let params = RaftConfig::default().params(5).unwrap();
    let workload = Workload {
        stop_at: Time::from_millis(3_500),
        ..Workload::default()
    };
    let mut h = Harness::new(sim, params, workload, true).unwrap();
    h.run_until(Time::from_millis(800));
    let leader = h.leader().expect("a leader after 800 ms");
    let faults = [
        Fault::Partition {
            groups: vec![vec![leader]],
        },
        Fault::Crash {
            node: (leader + 2) % 5,
        },
    ];
    for f in &faults {
        h.sim_mut().apply_fault(f).unwrap();
    }
    h.run_until(Time::from_millis(2_000));
    h.sim_mut()
        .apply_fault(&Fault::Restart {
            node: (leader + 2) % 5,
        })
        .unwrap();
    h.sim_mut().apply_fault(&Fault::Heal).unwrap();
    h.run_until(Time::from_millis(4_000));
    assert!(h.violation().is_none(), "{:?}", h.violation());
    (h.sim().trace().hash(), h.sim().trace().len(), h.completed())
}

#[distlab_tests::test]
fn raft_golden_trace_hash() {
    let (hash, events, completed) = raft_scenario();
    assert_eq!(
        (format!("{hash:016x}"), events, completed),
        ("37b79576846898d8".to_string(), 12_266, 336),
        "the Raft golden scenario changed"
    );
}

/// `consensus.raft` driven as the page drives it: five nodes with pre-vote and
/// check-quorum, three closed-loop clients, a lossy log-normal network; between steps the
/// lab's own actions (a one-off put and compare-and-swap, a leadership transfer, a
/// snapshot, adding a node, removing one) and faults (partition, crash mid-event, clock
/// drift, heal, restart), run to a fixed step.
fn raft_lab_scenario() -> (String, u64, Value) {
    let config = json!({
        "seed": 4_242u64,
        "nodes": 5,
        "workload": { "clients": 3, "keys": 4, "readFraction": 0.3, "casFraction": 0.2 },
        "network": {
            "latency": { "type": "logNormal", "medianMs": 3.0, "sigma": 0.5 },
            "loss": 0.02,
            "duplicate": 0.02
        },
        "sampleMs": 100.0
    });
    let mut lab = create_lab("consensus.raft", &config).unwrap();
    let actions = [
        json!({ "type": "clientRequest", "request": { "op": "put", "key": "golden", "value": "1" } }),
        json!({ "type": "partition", "groups": [[0, 1], [2, 3, 4]] }),
        json!({ "type": "clockDrift", "node": 3, "ppm": 50_000 }),
        json!({ "type": "heal" }),
        json!({ "type": "transferLeadership", "to": 2 }),
        json!({ "type": "crashMidEvent", "node": 1, "effects": 1 }),
        json!({ "type": "snapshot", "node": 4 }),
        json!({ "type": "restart", "node": 1 }),
        json!({ "type": "addNode" }),
        json!({ "type": "clientRequest", "request": { "op": "cas", "key": "golden", "expected": "1", "new": "2" } }),
        json!({ "type": "removeNode", "node": 0 }),
    ];
    for (i, action) in actions.iter().enumerate() {
        lab.step(Duration::from_millis(300 + 25 * i as u64))
            .unwrap();
        lab.act(action).unwrap();
        lab.step_events(211).unwrap();
    }
    let target = 30_000;
    lab.step_events(target - lab.steps()).unwrap();
    assert_eq!(lab.steps(), target);
    let trace = lab.trace();
    let view = serde_json::to_value(lab.view()).unwrap();
    let broken: Vec<&Value> = view["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ok"] != json!(true))
        .collect();
    assert!(broken.is_empty(), "{broken:?}");
    (
        trace["hash"].as_str().unwrap().to_string(),
        trace["events"].as_u64().unwrap(),
        view["timeUs"].clone(),
    )
}

#[distlab_tests::test]
fn raft_lab_golden_trace_hash() {
    let (hash, events, time_us) = raft_lab_scenario();
    assert_eq!(
        (hash.as_str(), events, time_us),
        ("2aece4bf5865f253", 78_390, json!(48_750_146)),
        "the consensus.raft golden scenario changed"
    );
}

/// State fingerprints, what a model checker keeps of each state it visits
/// (`Sim::node_fingerprint`, `Sim::message_fingerprint`): node 0 of a three-node Raft
/// cluster with two closed-loop clients, crashed (torn writes possible) and restarted on
/// the way, after a fixed number of events; and one AppendEntries carrying a command.
/// The trace hash beside them tells a changed run from a changed fingerprint.
fn raft_fingerprint_scenario() -> (u64, u64, u64) {
    let sim = SimConfig {
        seed: 9_090,
        nodes: 3,
        clients: 2,
        record_trace: false,
        ..SimConfig::default()
    };
    let params = RaftConfig::default().params(3).unwrap();
    let workload = Workload {
        clients: 2,
        ..Workload::default()
    };
    let mut h = Harness::new(sim, params, workload, true).unwrap();
    let run_to = |h: &mut Harness, step: u64| {
        while h.sim().steps() < step {
            assert!(h.step_until(Time::MAX));
        }
    };
    run_to(&mut h, 1_500);
    h.sim_mut().apply_fault(&Fault::Crash { node: 0 }).unwrap();
    run_to(&mut h, 2_000);
    h.sim_mut()
        .apply_fault(&Fault::Restart { node: 0 })
        .unwrap();
    run_to(&mut h, 4_000);
    assert!(h.violation().is_none(), "{:?}", h.violation());
    assert_eq!(h.sim().steps(), 4_000);
    let node = h.sim().node_fingerprint(0).unwrap();
    let put = KvCommand {
        session: 3,
        seq: 14,
        op: KvOp::Cas {
            key: "clé".into(),
            expected: None,
            new: "valeur".into(),
        },
    };
    let append = Message::Append(AppendRequest {
        term: 4,
        prev_log_index: 17,
        prev_log_term: 3,
        entries: vec![
            Entry::new(4, EntryData::Noop),
            Entry::new(4, EntryData::Command(put)),
        ],
        leader_commit: 17,
        read_round: 9,
    });
    let message = Sim::<RaftNode>::message_fingerprint(2, 0, &append);
    (h.sim().trace().hash(), node, message)
}

#[distlab_tests::test]
fn raft_golden_fingerprints() {
    let (trace, node, message) = raft_fingerprint_scenario();
    assert_eq!(
        (
            format!("{trace:016x}"),
            format!("{node:016x}"),
            format!("{message:016x}")
        ),
        (
            "aa8fc788a4d7e984".to_string(),
            "6216bd4562dc4e27".to_string(),
            "cc936b1e6a358825".to_string()
        ),
        "the Raft fingerprint scenario changed"
    );
}
