//! Leader election (`coordination.leader-election`): the bully algorithm (Garcia-Molina
//! 1982) and a lease on a store (Chubby's master lease, Burrows 2006; Gray & Cheriton
//! 1989 for the clock bound), through the lab as the page drives it.
//!
//! - Both algorithms elect, survive the default crash of n4 and keep their invariants.
//! - The cost: after the leader crashes, the bully burst against the lease's takeover.
//! - The known-dangerous schedule: a lease leader cut off from the store with its clock
//!   running slower than the margin allows still believes in its lease when the store
//!   has granted the next one — two valid leases, which the lab's invariant catches.

use distlab_core::Duration;
use distlab_core::coordination::leader_election::lab::ElectionLab;
use distlab_core::lab::{Cluster, Lab, Runner};
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

type ElectionRun = Runner<Cluster<ElectionLab>>;

fn invariants_ok(lab: &ElectionRun) -> bool {
    lab.view().invariants.iter().all(|i| i.ok)
}

#[distlab_tests::test]
fn both_algorithms_elect_and_survive_the_default_crash() {
    for algorithm in ["bully", "lease"] {
        let mut lab = ElectionRun::from_json(&json!({"algorithm": algorithm})).unwrap();
        lab.step(Duration::from_millis(4_000)).unwrap();
        assert!(
            invariants_ok(&lab),
            "{algorithm}: {:?}",
            lab.view().invariants
        );
        let l = lab.model().lab();
        assert!(l.leader().is_some(), "{algorithm}");
        assert!(l.leader_changes() >= 1, "{algorithm}");
        let view = lab.view();
        assert_eq!(view.panels.len(), 1, "{algorithm}");
    }
}

/// Election messages in the 600 ms before and the 600 ms after the leader of six
/// candidates crashes: the bully algorithm's elections, answers and coordinators, the
/// lease's claims and the store's answers to them (its steady polling included).
fn election_messages_around_a_leader_crash(algorithm: &str) -> (f64, f64) {
    let mut lab = ElectionRun::from_json(&json!({
        "algorithm": algorithm, "candidates": 6, "sampleMs": 600,
        "faults": {"faults": []}
    }))
    .unwrap();
    lab.step(Duration::from_millis(1_200)).unwrap();
    lab.act(&json!({"type": "crashLeader"})).unwrap();
    lab.step(Duration::from_millis(600)).unwrap();
    let view = lab.view();
    let series = view
        .metrics
        .iter()
        .find(|s| s.name == "election messages")
        .expect("the election messages series");
    let y = &series.y;
    assert!(y.len() >= 2, "{y:?}");
    (y[y.len() - 2], y[y.len() - 1])
}

/// The crash costs bully a burst of elections; the lease's claims go on as before.
#[distlab_tests::test]
fn a_crash_costs_bully_a_burst_and_the_lease_nothing_extra() {
    let (bully_before, bully_after) = election_messages_around_a_leader_crash("bully");
    let (lease_before, lease_after) = election_messages_around_a_leader_crash("lease");
    // Five survivors, the lowest noticing first would be 10 + 6 + 4 (see bully's tests);
    // they notice at about the same time, so at least one full round of elections.
    assert!(
        bully_after - bully_before >= 10.0,
        "bully {bully_before} → {bully_after}"
    );
    // The dead leader's own claims stop; no one else sends more (seen: 60 → 53).
    assert!(
        lease_after <= lease_before + 6.0,
        "lease {lease_before} → {lease_after}"
    );
}

#[distlab_tests::test]
fn a_slow_leader_clock_past_the_margin_gives_two_valid_leases() {
    let mut lab = ElectionRun::from_json(&json!({
        "algorithm": "lease", "seed": 4, "faults": {"faults": []}
    }))
    .unwrap();
    lab.step(Duration::from_millis(1_000)).unwrap();
    let leader = lab.model().lab().leader().unwrap();
    lab.act(&json!({"type": "clockDrift", "node": leader, "ppm": -400_000}))
        .unwrap();
    lab.act(&json!({"type": "isolateLeader"})).unwrap();
    lab.step(Duration::from_millis(1_500)).unwrap();
    let inv = lab.view().invariants;
    assert!(!inv[1].ok, "{inv:?}");
    assert!(inv[0].ok, "terms still differ: {inv:?}");
    // Inside the margin the same schedule is safe.
    let mut lab = ElectionRun::from_json(&json!({
        "algorithm": "lease", "seed": 4, "faults": {"faults": []}
    }))
    .unwrap();
    lab.step(Duration::from_millis(1_000)).unwrap();
    let leader = lab.model().lab().leader().unwrap();
    lab.act(&json!({"type": "clockDrift", "node": leader, "ppm": -50_000}))
        .unwrap();
    lab.act(&json!({"type": "isolateLeader"})).unwrap();
    lab.step(Duration::from_millis(1_500)).unwrap();
    assert!(invariants_ok(&lab), "{:?}", lab.view().invariants);
}
