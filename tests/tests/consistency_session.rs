//! `consistency.session` over fixed seeds: clients routed to any node break read your
//! writes and monotonic reads on every seed; sticky sessions and versioned reads break
//! neither on any seed (Terry et al. 1994). The checker's counts are read from the lab, and
//! every violation it reports is re-derived from the raw history, so a checker that
//! blamed the wrong operations would fail here too.

use distlab_core::Duration;
use distlab_core::consistency::session::checker::{Guarantee, check};
use distlab_core::consistency::session::lab::{Routing, SessionLab, SessionLabConfig, session_op};
use distlab_core::consistency::session::node::{SessionRequest, SessionResponse};
use distlab_core::lab::{Cluster, ClusterLab, LabModel};
use distlab_core::sim::history::Outcome;
use distlab_core::time::Time;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const SEEDS: u64 = 20;
const RUN: Duration = Duration::from_secs(3);

fn run(routing: Routing, seed: u64) -> Cluster<SessionLab> {
    let config = SessionLabConfig {
        seed,
        routing,
        ..SessionLabConfig::default()
    };
    let mut lab = Cluster::<SessionLab>::new(&config).unwrap();
    while lab.step_until(Time::ZERO + RUN) {}
    lab
}

fn routings() -> Vec<Routing> {
    vec![Routing::Any, Routing::Sticky, Routing::Versioned]
}

#[distlab_tests::test(each = routings())]
fn any_breaks_the_guarantees_and_sticky_and_versioned_keep_them(routing: Routing) {
    let (mut ryw, mut monotonic) = (0, 0);
    for seed in 0..SEEDS {
        let lab = run(routing, seed);
        let c = lab.checker();
        assert!(
            c.reads() > 50,
            "{routing:?} seed {seed}: {} reads",
            c.reads()
        );
        let (r, m) = (
            c.read_your_writes_violations(),
            c.monotonic_read_violations(),
        );
        match routing {
            Routing::Any => assert!(r + m > 0, "seed {seed}: any routing found nothing"),
            Routing::Sticky | Routing::Versioned => {
                assert_eq!(
                    (r, m),
                    (0, 0),
                    "{routing:?} seed {seed}: {:?}",
                    c.violations()
                );
            }
        }
        ryw += r;
        monotonic += m;
        // The batch checker over the raw history agrees with the live one.
        let ops: Vec<_> = lab.sim().history().iter().filter_map(session_op).collect();
        let batch = check(&ops).unwrap();
        assert_eq!(batch.read_your_writes_violations(), r, "seed {seed}");
        assert_eq!(batch.monotonic_read_violations(), m, "seed {seed}");
        // Each kept violation: the stale read really answered below what it needed.
        for v in c.violations() {
            let later = &lab.sim().history()[v.later as usize];
            let Outcome::Ok {
                value: SessionResponse::Read { version, .. },
                ..
            } = later.outcome
            else {
                panic!("blamed a non-read: {later:?}");
            };
            assert_eq!(
                (later.client, later.node, version),
                (v.client, v.later_node, v.saw)
            );
            assert!(v.saw < v.needed);
            let earlier = &lab.sim().history()[v.earlier as usize];
            assert_eq!(earlier.client, v.client);
            assert!(earlier.invoked < later.invoked);
            match v.guarantee {
                Guarantee::ReadYourWrites => {
                    assert!(matches!(earlier.body, SessionRequest::Put { .. }));
                }
                Guarantee::MonotonicReads => {
                    assert!(matches!(earlier.body, SessionRequest::Get { .. }));
                }
            }
        }
    }
    if routing == Routing::Any {
        assert!(ryw > 0 && monotonic > 0, "ryw {ryw}, monotonic {monotonic}");
    }
}
