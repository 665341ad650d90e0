//! Redlock (`coordination.redlock`; antirez's distlock description, Kleppmann's "How to
//! do distributed locking" and antirez's reply, 2016): the two schedules the exchange
//! argues about, scripted and named, and a soak.
//!
//! - (a) A client checks that its validity covers its next write, is paused (GC) past
//!   it, the other client takes the lock and writes, the paused one wakes and sends its
//!   write: two clients believed they held the lock at once. Fencing refuses the late
//!   write; without it the write lands after the newer holder's.
//! - (b) Client n1 reaches stores s0–s2 only, n2 stores s2–s4 only. While n1 holds the
//!   lock on s0–s2, s2's clock jumps ahead past the TTL: the key expires there early, n2
//!   gets s2–s4, a majority, and both believe they hold the lock.
//! - F soak: seeds with neither pauses nor clock jumps never break mutual exclusion;
//!   seeds with pauses, and seeds with clock jumps, must break it (the seed is printed).

use distlab_core::Duration;
use distlab_core::coordination::redlock::ClientPhase;
use distlab_core::coordination::redlock::lab::RedlockLab;
use distlab_core::coordination::redlock::soak::{Injected, SoakOptions, run_seed};
use distlab_core::lab::{Cluster, ClusterLab, Lab, Runner};
use distlab_core::sim::soak::Soak;
use distlab_tests::soak::{failure_lines, run_seeds, seed_count};
use serde_json::{Value, json};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

type RedlockRun = Runner<Cluster<RedlockLab>>;

fn phase(lab: &RedlockRun, id: u32) -> Option<ClientPhase> {
    Some(lab.model().lab().sim().node(id)?.client()?.phase)
}

/// Steps until `pred` holds of some client; returns that client.
fn until_a_client(lab: &mut RedlockRun, pred: impl Fn(ClientPhase) -> bool) -> u32 {
    for _ in 0..20_000 {
        lab.step_events(1).unwrap();
        let clients = lab.model().lab().redlock_config().client_ids();
        if let Some(id) = clients
            .into_iter()
            .find(|&id| phase(lab, id).is_some_and(&pred))
        {
            return id;
        }
    }
    panic!("no client reached the phase");
}

/// Schedule (a); returns the lab after it.
fn paused_holder_writes(fencing: bool) -> RedlockRun {
    let config = json!({"seed": 3, "fencing": fencing, "faults": {"faults": []}});
    let mut lab = RedlockRun::from_json(&config).unwrap();
    let holder = until_a_client(&mut lab, |p| {
        matches!(
            p,
            ClientPhase::Holding {
                preparing: true,
                ..
            }
        )
    });
    // The GC pause: far past the 300 ms TTL.
    lab.act(&json!({"type": "pause", "node": holder})).unwrap();
    lab.step(Duration::from_millis(1_500)).unwrap();
    lab.act(&json!({"type": "resume", "node": holder})).unwrap();
    lab.step(Duration::from_millis(500)).unwrap();
    lab
}

fn invariant_ok(lab: &RedlockRun, i: usize) -> bool {
    lab.view().invariants[i].ok
}

#[distlab_tests::test]
fn regression_a_client_paused_past_its_validity_then_writes() {
    for fencing in [false, true] {
        let run = paused_holder_writes(fencing);
        let lab = run.model().lab();
        let overlap = lab
            .mutual_exclusion()
            .first_overlap()
            .expect("two clients believed they held the lock");
        assert!(
            overlap.later.from > overlap.earlier.from,
            "the other client took the lock during the pause: {overlap}"
        );
        assert!(!invariant_ok(&run, 0));
        if fencing {
            assert_eq!(lab.late_writes(), 0, "{:?}", lab.first_late_write());
            assert!(lab.storage().unwrap().rejected >= 1, "the fence refused it");
            assert!(invariant_ok(&run, 1));
        } else {
            let (what, client) = lab.first_late_write().expect("the late write lands");
            assert_eq!(*client, overlap.earlier.client, "{what}");
            assert!(!invariant_ok(&run, 1));
        }
    }
}

/// Schedule (b): n1 reaches s0–s2 (nodes 3–5), n2 reaches s2–s4 (nodes 5–7).
fn clock_jump_on_a_store(fencing: bool) -> RedlockRun {
    let cut = |from: Value, to: Value| json!({"atUs": 0, "fault": {"type": "partitionOneWay", "from": from, "to": to}});
    let faults = vec![
        cut(json!([1]), json!([6, 7])),
        cut(json!([6, 7]), json!([1])),
        cut(json!([2]), json!([3, 4])),
        cut(json!([3, 4]), json!([2])),
    ];
    let config = json!({"seed": 5, "fencing": fencing, "faults": {"faults": faults}});
    let mut lab = RedlockRun::from_json(&config).unwrap();
    // Let them take turns a while, then catch n1 just after it took the lock.
    lab.step(Duration::from_millis(1_000)).unwrap();
    let fresh = |p: Option<ClientPhase>| {
        matches!(
            p,
            Some(ClientPhase::Holding {
                writes_left: 3,
                preparing: false,
                ..
            })
        )
    };
    let mut steps = 0;
    while !fresh(phase(&lab, 1)) {
        lab.step_events(1).unwrap();
        steps += 1;
        assert!(steps < 20_000, "n1 never took the lock");
    }
    let s2 = 5;
    lab.act(&json!({"type": "jumpClock", "node": s2, "ms": 400}))
        .unwrap();
    lab.step(Duration::from_millis(600)).unwrap();
    lab
}

#[distlab_tests::test]
fn regression_a_store_clock_jump_expires_a_key_early() {
    for fencing in [false, true] {
        let run = clock_jump_on_a_store(fencing);
        let lab = run.model().lab();
        let overlap = lab
            .mutual_exclusion()
            .first_overlap()
            .expect("two clients believed they held the lock");
        assert_eq!((overlap.earlier.client, overlap.later.client), (1, 2));
        assert!(!invariant_ok(&run, 0));
        if fencing {
            assert_eq!(lab.late_writes(), 0, "{:?}", lab.first_late_write());
            assert!(lab.storage().unwrap().rejected >= 1, "the fence refused it");
        } else {
            let (what, client) = lab.first_late_write().expect("n1's late write lands");
            assert_eq!(*client, 1, "{what}");
        }
    }
}

/// Seeds per run (`REDLOCK_SOAK_SEEDS` changes it): about a minute natively on two
/// loaded cores (53 s in the optimised test profile); a browser runs a few.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    8
} else {
    20_000
};

#[distlab_tests::test]
fn soak_finds_overlaps_under_pauses_and_clock_jumps_and_none_without() {
    let seeds: Vec<u64> = (0..seed_count("REDLOCK_SOAK_SEEDS", DEFAULT_SEEDS)).collect();
    let opts = SoakOptions::default();
    let (summary, failures) = run_seeds(&opts, &seeds);
    eprintln!("redlock soak: {summary}");
    let lines = failure_lines(&opts, &failures);
    assert!(lines.is_empty(), "{}", lines.join("\n"));
    assert_eq!(summary.seeds, seeds.len() as u64);
    assert!(summary.holds > summary.seeds * 5, "{summary}");
    assert_eq!(summary.overlaps(Injected::Neither).0, 0, "{summary}");
    for injected in [Injected::Pauses, Injected::ClockJumps] {
        let (found, first) = summary.overlaps(injected);
        let seed = first.unwrap_or_else(|| panic!("no overlap found with {injected:?}"));
        assert!(found > 0);
        eprintln!(
            "redlock soak: with {injected:?}, two clients believed at once in {found} seeds; \
             the first: {}",
            opts.replay_command(seed)
        );
        let r = run_seed(seed, &opts);
        assert!(r.first_overlap.is_some(), "seed {seed} replays its overlap");
    }
}
