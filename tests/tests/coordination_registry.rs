//! Service registry (`coordination.registry`): Eureka-style TTL leases, client-side
//! discovery (each client caches the list) and server-side discovery (through a router
//! with its own cache), through the lab as the page drives it. Defaults: renew every
//! 300 ms, TTL 900 ms, sweep every 600 ms, clients refetch every 300 ms, the router every
//! 100 ms, 1–5 ms latency; n0 registry, n1 router, n2–n5 instances, n6–n7 client-side,
//! n8–n9 server-side clients.
//!
//! The dangerous schedules, by name:
//! - an instance cut off from the registry is evicted after its TTL while it still
//!   serves, and clients keep routing to it (alive, unlisted) until their next refresh;
//! - a crashed instance is routed to until TTL + sweep + refresh, and never past the
//!   bound while the network is whole;
//! - a client cut off from the registry routes to a dead instance from its cache for as
//!   long as the partition lasts, while server-side clients behind a fresh router do not;
//! - self-preservation keeps every lease when the registry is cut off from the
//!   instances, and — in a small cluster — keeps a crashed instance listed.

use distlab_core::Duration;
use distlab_core::coordination::registry::lab::RegistryLab;
use distlab_core::coordination::registry::node::Discovery;
use distlab_core::lab::{Cluster, ClusterLab, Lab, Runner};
use distlab_core::sim::node::Node;
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

type RegistryRun = Runner<Cluster<RegistryLab>>;

const TTL_MS: f64 = 900.0;
const HEARTBEAT_MS: f64 = 300.0;
const SWEEP_MS: f64 = 600.0;
const CLIENT_REFRESH_MS: f64 = 300.0;
const MAX_LATENCY_MS: f64 = 5.0;
const CLIENT_SIDE: [u32; 2] = [6, 7];

fn quiet_run(extra: serde_json::Value) -> RegistryRun {
    let mut config = json!({"faults": {"faults": []}});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    RegistryRun::from_json(&config).unwrap()
}

fn now_ms(lab: &RegistryRun) -> f64 {
    lab.model().lab().sim().now().as_millis_f64()
}

fn served(lab: &RegistryRun, instance: u32) -> u64 {
    lab.model()
        .lab()
        .sim()
        .node(instance)
        .and_then(|n| n.instance())
        .map_or(0, |i| i.served)
}

fn invariants_ok(lab: &RegistryRun) -> bool {
    lab.view().invariants.iter().all(|i| i.ok)
}

#[distlab_tests::test]
fn an_instance_cut_off_from_the_registry_is_evicted_while_it_serves() {
    // Requests every 5 ms, so that some reach n2 in the short spell between its eviction
    // and the caches' next fetches.
    let mut lab = quiet_run(json!({"requestEveryMs": 5}));
    lab.step(Duration::from_millis(1_000)).unwrap();
    lab.act(&json!({"type": "cutFromRegistry", "node": 2}))
        .unwrap();
    let cut_at = now_ms(&lab);
    // Step 2 ms at a time: when the registry drops n2, and when each cache does.
    let mut evicted_at = None;
    let mut dropped_at = [None; 2];
    while now_ms(&lab) < 4_000.0 {
        lab.step(Duration::from_millis(2)).unwrap();
        let l = lab.model().lab();
        let t = now_ms(&lab);
        if evicted_at.is_none() && l.registry_lists(2) == Some(false) {
            evicted_at = Some(t);
        }
        for (i, c) in CLIENT_SIDE.into_iter().enumerate() {
            if evicted_at.is_some() && dropped_at[i].is_none() && l.cache_lists(c, 2) == Some(false)
            {
                dropped_at[i] = Some(t);
            }
        }
    }
    let evicted_at = evicted_at.expect("n2 evicted");
    // Its last renewal left at most one heartbeat before the cut; the lease then ran for
    // the TTL and the next sweep dropped it.
    assert!(
        evicted_at > cut_at + TTL_MS - HEARTBEAT_MS,
        "evicted at {evicted_at}"
    );
    assert!(
        evicted_at <= cut_at + TTL_MS + SWEEP_MS + MAX_LATENCY_MS + 2.0,
        "evicted at {evicted_at}"
    );
    // The caches kept it until their next fetch, one refresh (and a round trip) later.
    let dropped: Vec<f64> = dropped_at
        .iter()
        .map(|d| d.expect("every client-side cache drops n2"))
        .collect();
    for d in &dropped {
        assert!(
            *d <= evicted_at + CLIENT_REFRESH_MS + 2.0 * MAX_LATENCY_MS + 2.0,
            "dropped n2 at {d}, evicted at {evicted_at}"
        );
    }
    assert!(
        dropped.iter().any(|d| *d > evicted_at),
        "{dropped:?} {evicted_at}"
    );
    // Alive and unlisted: requests reached it between the eviction and the refreshes,
    // and it served them.
    let l = lab.model().lab();
    let unlisted =
        l.routes(Discovery::ClientSide).to_unlisted + l.routes(Discovery::ServerSide).to_unlisted;
    assert!(unlisted > 0);
    assert_eq!(l.sim().node(2).map(|n| n.role()), Some("instance"));
    // Once every cache dropped it nobody sends it anything: a healthy instance idles.
    let idle = served(&lab, 2);
    lab.step(Duration::from_millis(1_000)).unwrap();
    assert_eq!(served(&lab, 2), idle);
    assert!(invariants_ok(&lab), "{:?}", lab.view().invariants);
    // After the heal it renews, hears "unknown", registers again and is routed to.
    lab.act(&json!({"type": "heal"})).unwrap();
    lab.step(Duration::from_millis(1_000)).unwrap();
    assert_eq!(lab.model().lab().registry_lists(2), Some(true));
    assert!(served(&lab, 2) > idle);
}

#[distlab_tests::test]
fn a_crashed_instance_is_routed_to_until_ttl_sweep_and_refresh() {
    let mut lab = quiet_run(json!({}));
    lab.step(Duration::from_millis(1_000)).unwrap();
    lab.act(&json!({"type": "crash", "node": 3})).unwrap();
    let crashed_at = now_ms(&lab);
    let mut last_dead_route = [None; 2];
    let mut evicted_at = None;
    let modes = [Discovery::ClientSide, Discovery::ServerSide];
    let mut seen = [0; 2];
    while now_ms(&lab) < 5_000.0 {
        lab.step(Duration::from_millis(2)).unwrap();
        let l = lab.model().lab();
        if evicted_at.is_none() && l.registry_lists(3) == Some(false) {
            evicted_at = Some(now_ms(&lab));
        }
        for (i, m) in modes.into_iter().enumerate() {
            let dead = l.routes(m).to_dead;
            if dead > seen[i] {
                seen[i] = dead;
                last_dead_route[i] = Some(now_ms(&lab));
            }
        }
    }
    let evicted_at = evicted_at.expect("n3 evicted");
    // The lease ran its TTL from a renewal at most one heartbeat before the crash.
    assert!(
        evicted_at - crashed_at > TTL_MS - HEARTBEAT_MS,
        "{evicted_at}"
    );
    let audit = lab.model().lab().audit();
    for (i, (m, refresh)) in modes
        .into_iter()
        .zip([CLIENT_REFRESH_MS, 100.0])
        .enumerate()
    {
        let last = last_dead_route[i].expect("routed to the dead instance");
        // Until the eviction reached the cache: one refresh and a round trip after it.
        assert!(
            last <= evicted_at + refresh + 2.0 * MAX_LATENCY_MS + 2.0,
            "{m:?}: last at {last}, evicted at {evicted_at}"
        );
        // Never past the bound.
        assert!(
            last - crashed_at <= audit.bound(m).as_millis_f64(),
            "{m:?}: {last}"
        );
        assert_eq!(lab.model().lab().routes(m).past_bound, 0, "{m:?}");
    }
    assert!(invariants_ok(&lab), "{:?}", lab.view().invariants);
}

#[distlab_tests::test]
fn a_client_cut_off_from_the_registry_routes_to_a_dead_instance_from_its_cache() {
    let mut lab = quiet_run(json!({}));
    lab.step(Duration::from_millis(1_000)).unwrap();
    // n6 (client-side) and n8 (server-side) lose the registry; n3 dies.
    for node in [6, 8] {
        lab.act(&json!({"type": "cutFromRegistry", "node": node}))
            .unwrap();
    }
    lab.act(&json!({"type": "crash", "node": 3})).unwrap();
    lab.step(Duration::from_millis(4_000)).unwrap();
    let l = lab.model().lab();
    assert_eq!(l.cache_lists(6, 3), Some(true), "n6's cache is frozen");
    assert_eq!(l.cache_lists(7, 3), Some(false), "n7 refreshed");
    assert!(l.routes(Discovery::ClientSide).past_bound > 0);
    // n8 never asked the registry: the router did, and it is not cut off.
    assert_eq!(l.routes(Discovery::ServerSide).past_bound, 0);
    // Not a breach of the bound: it is promised only with the network whole.
    assert!(invariants_ok(&lab), "{:?}", lab.view().invariants);
    // After the heal n6 refetches and stops within one refresh.
    lab.act(&json!({"type": "heal"})).unwrap();
    lab.step(Duration::from_millis(400)).unwrap();
    let stale = lab.model().lab().routes(Discovery::ClientSide).past_bound;
    lab.step(Duration::from_millis(1_000)).unwrap();
    assert_eq!(
        lab.model().lab().routes(Discovery::ClientSide).past_bound,
        stale
    );
}

#[distlab_tests::test]
fn self_preservation_keeps_every_lease_when_the_registry_is_cut_off() {
    let listed = |self_preservation: bool| {
        let mut lab = quiet_run(json!({"selfPreservation": self_preservation}));
        lab.step(Duration::from_millis(1_000)).unwrap();
        lab.act(&json!({"type": "partition", "groups": [[0]]}))
            .unwrap();
        lab.step(Duration::from_millis(3_000)).unwrap();
        let l = lab.model().lab();
        let registry = l.sim().node(0).and_then(|n| n.registry()).unwrap();
        (registry.leases.len(), registry.self_preserving)
    };
    assert_eq!(listed(false), (0, false));
    assert_eq!(listed(true), (4, true));
}

#[distlab_tests::test]
fn self_preservation_in_a_small_cluster_keeps_a_crashed_instance_listed() {
    // One of two instances gone is half the renewals expected, under Eureka's 85 %: the
    // registry stops evicting, and clients route to the dead instance indefinitely.
    let mut lab = quiet_run(json!({"selfPreservation": true, "instances": 2}));
    lab.step(Duration::from_millis(1_000)).unwrap();
    lab.act(&json!({"type": "crash", "node": 3})).unwrap();
    lab.step(Duration::from_millis(5_000)).unwrap();
    let l = lab.model().lab();
    assert_eq!(l.registry_lists(3), Some(true));
    for m in [Discovery::ClientSide, Discovery::ServerSide] {
        assert!(l.routes(m).past_bound > 0, "{m:?}");
    }
    // The bound is not promised with self-preservation on, so nothing is breached.
    assert!(invariants_ok(&lab), "{:?}", lab.view().invariants);
    // With twenty instances one crash is 95 %: the sweep evicts it.
    let mut lab = quiet_run(json!({"selfPreservation": true, "instances": 20}));
    lab.step(Duration::from_millis(1_000)).unwrap();
    lab.act(&json!({"type": "crash", "node": 3})).unwrap();
    lab.step(Duration::from_millis(3_000)).unwrap();
    assert_eq!(lab.model().lab().registry_lists(3), Some(false));
}

#[distlab_tests::test]
fn the_view_shows_truth_registry_and_caches() {
    let mut lab = RegistryRun::from_json(&json!({})).unwrap();
    lab.step(Duration::from_millis(4_000)).unwrap();
    let view = lab.view();
    assert_eq!(view.panels.len(), 3);
    let text = serde_json::to_string(&view).unwrap();
    for needle in [
        "not listed",
        "crashed",
        "router n1",
        "client n7",
        "to an evicted but alive instance",
        "cacheAgeMs",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    assert_eq!(view.invariants.len(), 2);
}
