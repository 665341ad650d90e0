//! The clock laws on random message-passing runs: every event of N processes (local,
//! send, receive) stamped by a Lamport clock, a vector clock and an HLC, against the
//! happened-before relation computed independently (the transitive closure of program
//! order and send → receive).
//!
//! - happened-before ⇒ Lamport order and HLC order;
//! - happened-before ⇔ vector-clock "before" (vector clocks characterise causality);
//! - HLC: `l − pt ≤ ε` (the spread of the physical clocks), Theorem 2 (`c` ≤ the events
//!   in the causal past with the same `l`), and its corollary `c ≤ N·(ε + 1)` when each
//!   process's physical clock ticks between two of its events.

use proptest::prelude::*;

use crate::consistency::hlc::{Hlc, HlcTimestamp};
use crate::consistency::lamport::LamportClock;
use crate::consistency::vector_clock::{ClockOrder, VectorClock};
use crate::rng::SimRng;

struct Event {
    process: usize,
    /// Events it directly follows: the process's previous one, and the send it receives.
    after: Vec<usize>,
    lamport: u64,
    vc: VectorClock,
    hlc: HlcTimestamp,
    pt: u64,
}

struct Run {
    events: Vec<Event>,
    /// `hb[b]` holds every a with a → b.
    hb: Vec<Vec<bool>>,
    spread: u64,
    processes: usize,
}

fn run(seed: u64, processes: usize, steps: usize, spread: u64) -> Run {
    let mut rng = SimRng::new(seed);
    let skew: Vec<u64> = (0..processes).map(|_| rng.below(spread + 1)).collect();
    let mut lamport = vec![LamportClock::new(); processes];
    let mut vcs = vec![VectorClock::new(); processes];
    // The bound is the spread: no message is refused.
    let mut hlcs = vec![Hlc::new(spread); processes];
    let mut last: Vec<Option<usize>> = vec![None; processes];
    // In flight: (to, send event).
    let mut in_flight: Vec<(usize, usize)> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut now = 0u64;
    for _ in 0..steps {
        now += 1 + rng.below(2);
        let p = rng.below(processes as u64) as usize;
        let pt = now + skew[p];
        let mut after: Vec<usize> = last[p].into_iter().collect();
        let receive = !in_flight.is_empty() && rng.chance(0.4);
        let (l, h) = if receive {
            let i = rng.below(in_flight.len() as u64) as usize;
            let (to, send) = in_flight.swap_remove(i);
            // Deliver to its addressee, whoever was drawn.
            let p2 = to;
            let pt2 = now + skew[p2];
            after = last[p2].into_iter().collect();
            after.push(send);
            let s = &events[send];
            let (sl, sv, sh) = (s.lamport, s.vc.clone(), s.hlc);
            let l = lamport[p2].receive(sl).unwrap();
            vcs[p2].merge(&sv);
            vcs[p2].increment(p2 as u32).unwrap();
            let h = hlcs[p2].receive(sh, pt2).unwrap();
            events.push(Event {
                process: p2,
                after,
                lamport: l,
                vc: vcs[p2].clone(),
                hlc: h,
                pt: pt2,
            });
            last[p2] = Some(events.len() - 1);
            continue;
        } else {
            (lamport[p].tick().unwrap(), hlcs[p].tick(pt).unwrap())
        };
        vcs[p].increment(p as u32).unwrap();
        events.push(Event {
            process: p,
            after,
            lamport: l,
            vc: vcs[p].clone(),
            hlc: h,
            pt,
        });
        let e = events.len() - 1;
        last[p] = Some(e);
        if rng.chance(0.5) {
            let to = rng.below(processes as u64) as usize;
            in_flight.push((to, e));
        }
    }
    // Transitive closure in event order (every predecessor comes earlier).
    let n = events.len();
    let mut hb = vec![vec![false; n]; n];
    for b in 0..n {
        for &a in &events[b].after {
            let before_a = hb[a].clone();
            let row = &mut hb[b];
            row[a] = true;
            for (x, is) in before_a.into_iter().enumerate() {
                row[x] |= is;
            }
        }
    }
    Run {
        events,
        hb,
        spread,
        processes,
    }
}

fn check(r: &Run) -> Result<(), TestCaseError> {
    let n = r.events.len();
    for b in 0..n {
        let eb = &r.events[b];
        for a in 0..n {
            let ea = &r.events[a];
            if r.hb[b][a] {
                prop_assert!(ea.lamport < eb.lamport, "Lamport: {a} → {b}");
                prop_assert!(ea.hlc < eb.hlc, "HLC: {a} → {b}");
            }
            if a != b {
                prop_assert_eq!(
                    r.hb[b][a],
                    ea.vc.compare(&eb.vc) == ClockOrder::Before,
                    "vector clock of {} vs {}",
                    a,
                    b
                );
            }
        }
        prop_assert!(eb.hlc.l >= eb.pt && eb.hlc.l - eb.pt <= r.spread);
        let same_l = (0..n)
            .filter(|&a| r.hb[b][a] && r.events[a].hlc.l == eb.hlc.l)
            .count() as u64;
        prop_assert!(eb.hlc.c <= same_l, "Theorem 2 at event {}", b);
        prop_assert!(eb.hlc.c <= r.processes as u64 * (r.spread + 1));
        let _ = eb.process;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn clocks_respect_happened_before(
        seed in any::<u64>(),
        processes in 1usize..6,
        steps in 0usize..120,
        spread in 0u64..20,
    ) {
        check(&run(seed, processes, steps, spread))?;
    }
}
