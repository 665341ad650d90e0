//! `scenario.zombie-leader`: the same seed run twice, fencing off and on. The leader is
//! paused past its lease while it prepares a write, a new leader is elected and writes,
//! the old one wakes and writes: a lost update without fencing, refused with it.

use distlab_core::Duration;
use distlab_core::lab::{Lab, Runner};
use distlab_core::scenario::zombie_leader::{ZombieLab, ZombieLabConfig};
use serde_json::Value;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

#[distlab_tests::test]
fn without_fencing_the_zombie_write_lands_and_with_it_is_refused() {
    let mut lab = Runner::<ZombieLab>::new(ZombieLabConfig::default()).unwrap();
    lab.step(Duration::from_secs(4)).unwrap();
    let m = lab.model();
    let (zombie, at) = m.zombie(false).expect("a leader was paused");
    assert_eq!(
        m.zombie(true),
        Some((zombie, at)),
        "the same moment in both runs"
    );
    let (what, who) = m.run(false).first_stale().expect("the lost update");
    assert_eq!(*who, zombie, "{what}");
    assert!(m.run(true).first_stale().is_none());
    assert!(m.run(true).storage().unwrap().rejected >= 1);
    let v = lab.view();
    assert_eq!(v.nodes.len(), 8);
    let broken: Vec<_> = v.invariants.iter().filter(|i| !i.ok).collect();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].name.starts_with("fencing off"), "{broken:?}");
}

#[distlab_tests::test]
fn the_merged_trace_uses_the_lab_step_and_the_view_numbering() {
    let mut lab = Runner::<ZombieLab>::new(ZombieLabConfig::default()).unwrap();
    lab.step(Duration::from_millis(1_500)).unwrap();
    let t = lab.trace();
    let events = t["trace"].as_array().unwrap();
    assert!(events.len() > 100);
    let steps: Vec<u64> = events.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]));
    assert!(steps.last().copied().unwrap() <= lab.steps());
    let nodes: Vec<u64> = events
        .iter()
        .flat_map(|e| [&e["node"], &e["from"]["id"], &e["to"]["id"]])
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        nodes.iter().any(|&n| n >= 4),
        "the second run's nodes appear"
    );
}
