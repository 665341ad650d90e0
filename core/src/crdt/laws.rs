//! The merge laws on random reachable states, and convergence under any delivery order
//! with duplication, for all nine CRDTs.
//!
//! Random states are what replicas can reach: three replicas take random updates (the
//! lab's own draws) and now and then merge another's state, so tags, tombstones,
//! siblings and RGA anchors are as real use makes them.

use proptest::prelude::*;

use crate::crdt::Crdt;
use crate::crdt::lab::{
    GCounterKind, GSetKind, LwwMapKind, LwwRegisterKind, MvRegisterKind, OrSetKind, PnCounterKind,
    RgaKind, TwoPSetKind,
};
use crate::crdt::replica::{CrdtKind, Draw};
use crate::rng::SimRng;

const REPLICAS: usize = 3;

/// Replica states after `steps` random updates and merges, and every delta made.
fn run<K: CrdtKind>(seed: u64, steps: usize) -> (Vec<K::State>, Vec<K::State>) {
    let mut rng = SimRng::new(seed);
    let mut states = vec![K::State::default(); REPLICAS];
    let mut deltas = Vec::new();
    for t in 0..steps {
        let r = rng.below(REPLICAS as u64) as usize;
        if rng.chance(0.2) {
            let from = states[rng.below(REPLICAS as u64) as usize].clone();
            states[r].merge(&from).unwrap();
        } else {
            let draw = Draw::random(&mut rng, 5, 0.35);
            let update = K::resolve(&states[r], &draw);
            // Clocks that collide often, so ties are exercised.
            let now_ms = (t as u64) / 3 + rng.below(3);
            if let Ok(d) = states[r].update(r as u32, now_ms, &update) {
                deltas.push(d);
            }
        }
    }
    (states, deltas)
}

fn merged<C: Crdt>(a: &C, b: &C) -> C {
    let mut m = a.clone();
    m.merge(b).unwrap();
    m
}

fn check_laws<K: CrdtKind>(seed: u64, steps: usize) -> Result<(), TestCaseError> {
    let (s, _) = run::<K>(seed, steps);
    let (a, b, c) = (&s[0], &s[1], &s[2]);
    prop_assert_eq!(merged(a, b), merged(b, a), "commutative");
    prop_assert_eq!(
        merged(&merged(a, b), c),
        merged(a, &merged(b, c)),
        "associative"
    );
    prop_assert_eq!(&merged(a, a), a, "idempotent");
    prop_assert_eq!(merged(a, b).value(), merged(b, a).value());
    // JSON round trip keeps the state (what the npm package hands out and takes back).
    let json = serde_json::to_value(a).unwrap();
    let back: K::State = serde_json::from_value(json).unwrap();
    prop_assert_eq!(&back, a);
    Ok(())
}

/// Every replica gets every delta, in its own random order with duplicates, and ends
/// equal to the merge of the replicas' own states.
fn check_convergence<K: CrdtKind>(seed: u64, steps: usize) -> Result<(), TestCaseError> {
    let (states, deltas) = run::<K>(seed, steps);
    let mut whole = K::State::default();
    for s in &states {
        whole.merge(s).unwrap();
    }
    let mut rng = SimRng::new(seed ^ 0x5eed);
    for _ in 0..REPLICAS {
        let mut inbox: Vec<&K::State> = deltas.iter().collect();
        for _ in 0..deltas.len() / 3 {
            let dup = inbox[rng.below(inbox.len() as u64) as usize];
            inbox.push(dup);
        }
        for i in (1..inbox.len()).rev() {
            inbox.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut replica = K::State::default();
        for d in inbox {
            replica.merge(d).unwrap();
        }
        prop_assert_eq!(&replica, &whole);
        prop_assert_eq!(replica.value(), whole.value());
    }
    Ok(())
}

macro_rules! laws {
    ($($name:ident: $kind:ty;)*) => {$(
        mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(64))]
                #[test]
                fn merge_is_commutative_associative_idempotent(seed in any::<u64>(), steps in 0usize..60) {
                    check_laws::<$kind>(seed, steps)?;
                }
                #[test]
                fn deltas_converge_in_any_order_with_duplicates(seed in any::<u64>(), steps in 0usize..60) {
                    check_convergence::<$kind>(seed, steps)?;
                }
            }
        }
    )*};
}

laws! {
    g_counter: GCounterKind;
    pn_counter: PnCounterKind;
    g_set: GSetKind;
    two_p_set: TwoPSetKind;
    or_set: OrSetKind;
    lww_register: LwwRegisterKind;
    mv_register: MvRegisterKind;
    lww_map: LwwMapKind;
    rga: RgaKind;
}
