//! The `consensus.3pc` lab through its runner: transactions commit with the invariant
//! green; "crash the coordinator before PreCommit" leaves the participants deciding
//! without it; "partition after a PreCommit" splits the decision and turns the invariant
//! red; bad configs and actions name their field.

use distlab_core::Duration;
use distlab_core::consensus::threepc::COORDINATOR;
use distlab_core::consensus::threepc::lab::ThreePcLab;
use distlab_core::lab::{Cluster, Lab, Runner};
use serde_json::{Value, json};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn lab(config: Value) -> Runner<Cluster<ThreePcLab>> {
    Runner::from_json(&config).unwrap()
}

#[distlab_tests::test]
fn transactions_commit_and_the_invariant_holds() {
    let mut l = lab(json!({"voteNoProbability": 0.0, "keys": 64}));
    l.step(Duration::from_secs(3)).unwrap();
    let v = l.view();
    assert!(v.invariants[0].ok, "{:?}", v.invariants);
    let (all, committed) = l.model().harness().checker().counts();
    assert!(committed > 5 && all >= committed, "{all} {committed}");
    assert!(v.metrics.iter().any(|s| s.name == "committed"));
}

#[distlab_tests::test]
fn crashing_the_coordinator_before_precommit_does_not_block() {
    let mut l = lab(json!({"voteNoProbability": 0.0, "txIntervalMs": 100, "keys": 64}));
    l.step(Duration::from_millis(300)).unwrap();
    l.act(&json!({"type": "crashCoordinatorBeforePreCommit"}))
        .unwrap();
    l.step(Duration::from_secs(3)).unwrap();
    let h = l.model().harness();
    assert!(h.sim().node(COORDINATOR).is_none(), "crashed");
    assert!(
        h.live_participants_decided(),
        "participants decided without it"
    );
    let u = h.longest_undecided().unwrap();
    assert!(u.lasted < Duration::from_millis(2_500), "{u:?}");
    assert!(l.view().invariants[0].ok);
}

#[distlab_tests::test]
fn a_partition_after_precommit_splits_the_decision() {
    let mut l = lab(json!({"voteNoProbability": 0.0, "txIntervalMs": 100, "keys": 64}));
    l.step(Duration::from_millis(300)).unwrap();
    l.act(&json!({"type": "partitionAfterPreCommit"})).unwrap();
    l.step(Duration::from_secs(3)).unwrap();
    let v = l.view();
    assert!(!v.invariants[0].ok, "{:?}", v.invariants);
    let text = serde_json::to_string(&v.panels).unwrap();
    assert!(text.contains("SPLIT"), "{text}");
}

#[distlab_tests::test]
fn bad_configs_and_actions_name_the_field() {
    for (config, field) in [
        (json!({"participants": 0}), "config.participants"),
        (json!({"voteNoProbability": 2}), "config.voteNoProbability"),
        (json!({"decisionTimeoutMs": 0}), "config.decisionTimeoutMs"),
    ] {
        let e = Runner::<Cluster<ThreePcLab>>::from_json(&config)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&format!("`{field}")), "{config}: {e}");
    }
    let mut l = lab(Value::Null);
    let e = l
        .act(&json!({"type": "begin", "key": ""}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("key"), "{e}");
    let mut one = lab(json!({"participants": 1}));
    let e = one
        .act(&json!({"type": "partitionAfterPreCommit"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("two"), "{e}");
}
