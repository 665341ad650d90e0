use serde_json::{Value, json};

use super::lab::{MeshLab, amplification_breach, pool_breach};
use super::node::{Incoming, Job, MeshNode};
use super::*;
use crate::lab::{Cluster, ClusterLab, Lab, Runner};
use crate::sim::Node;
use crate::sim::disk::Disk;
use crate::time::{Duration, Time};

fn run(config: Value, ms: u64) -> Runner<Cluster<MeshLab>> {
    let mut lab = Runner::<Cluster<MeshLab>>::from_json(&config).unwrap();
    lab.step(Duration::from_millis(ms)).unwrap();
    lab
}

/// A mesh with no scheduled fault: client → gateway → a → b.
fn chain(extra: Value) -> Value {
    let mut c = json!({
        "services": [
            {"name": "gateway", "workers": 32, "queue": 64},
            {"name": "a", "workers": 16, "queue": 32},
            {"name": "b", "workers": 16, "queue": 32},
        ],
        "edges": [{"from": 0, "to": 1}, {"from": 1, "to": 2}],
        "serviceFaults": [],
        "requestsPerSec": 200,
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

#[test]
fn a_healthy_mesh_answers_every_request_once() {
    let lab = run(chain(json!({})), 3_000);
    let m = lab.model();
    let e = m.end_to_end().unwrap();
    assert!(e.calls > 450 && e.calls < 750, "{}", e.calls);
    assert!(e.succeeded + 5 >= e.calls, "{e:?}");
    assert_eq!(e.failed, 0);
    assert_eq!(e.attempts, e.calls, "no policy retries on the client edge");
    // Every hop's work adds up: three services' own latency at least.
    let p50 = e.latency.quantile(0.5).unwrap();
    assert!(p50 > Duration::from_millis(5), "{p50:?}");
    for i in 0..3 {
        let s = m.service(i).unwrap().service().unwrap();
        assert!(s.stats.received >= e.succeeded, "service {i}");
        assert_eq!(s.stats.rejected, 0);
    }
    assert!(pool_breach(m.sim()).is_none());
    assert!(amplification_breach(m.sim()).is_none());
    assert!(lab.view().invariants.iter().all(|i| i.ok));
}

#[test]
fn same_seed_same_trace_and_another_seed_another() {
    let hash = |seed: u64| {
        let lab = run(chain(json!({"seed": seed})), 1_000);
        lab.trace()["hash"].clone()
    };
    assert_eq!(hash(3), hash(3));
    assert_ne!(hash(3), hash(4));
}

#[test]
fn a_slow_service_without_timeouts_ties_up_every_worker_upstream() {
    // b slows 100-fold: a's workers wait on b, the gateway's wait on a.
    let lab = run(
        chain(json!({
            "clientPolicy": null,
            "serviceFaults": [{"atMs": 500, "action": {"type": "slowService", "service": 2, "factor": 100}}],
        })),
        2_000,
    );
    let m = lab.model();
    let a = m.service(1).unwrap().service().unwrap();
    let gw = m.service(0).unwrap().service().unwrap();
    assert_eq!(a.busy() as u32, a.workers, "a's pool is full");
    assert_eq!(gw.busy() as u32, gw.workers, "the gateway's pool is full");
    assert!(gw.stats.rejected > 0, "{:?}", gw.stats);
    assert!(m.end_to_end().unwrap().failed > 0);
}

#[test]
fn a_retry_policy_multiplies_the_attempts_on_a_failing_service_within_its_bound() {
    let retry = json!({"strategies": [{"type": "retry", "policy": {
        "maxAttempts": 4, "backoff": {"initialBackoffMs": 0, "maxBackoffMs": 0, "jitter": "none"},
        "retryOn": ["internal"]}}]});
    let lab = run(
        chain(json!({
            "edges": [{"from": 0, "to": 1}, {"from": 1, "to": 2, "policy": retry}],
            "serviceFaults": [{"atMs": 0, "action": {"type": "failService", "service": 2, "errorRate": 1.0}}],
        })),
        1_000,
    );
    let m = lab.model();
    let edge = m.edge(2).unwrap();
    let s = edge.stats();
    assert!(s.calls > 50);
    // Every call is tried 4 times (the fault lands within a few ms).
    assert!(
        s.attempts >= 4 * s.calls - 16,
        "{} for {}",
        s.attempts,
        s.calls
    );
    assert!(edge.check_amplification().is_ok());
    assert!(m.end_to_end().unwrap().success_rate() < 0.1);
}

#[test]
fn a_crashed_service_fails_calls_through_the_client_timeout_and_a_breaker_fails_fast() {
    let guarded = serde_json::to_value(lab::guarded_policy(50)).unwrap();
    let cfg = chain(json!({
        "edges": [{"from": 0, "to": 1}, {"from": 1, "to": 2, "policy": guarded}],
        "clientPolicy": {"strategies": [{"type": "timeout", "timeoutMs": 300}]},
        "faults": {"faults": [{"atUs": 500_000, "fault": {"type": "crash", "node": 3}}]},
    }));
    let lab = run(cfg, 3_000);
    let m = lab.model();
    let edge = m.edge(2).unwrap();
    assert_eq!(
        edge.breaker_state(),
        Some(crate::resilience::circuit_breaker::BreakerState::Open)
    );
    let e = m.end_to_end().unwrap();
    assert!(e.failed > 100, "{e:?}");
    // With the breaker open the gateway answers fast: its workers are not held.
    let gw = m.service(0).unwrap().service().unwrap();
    assert!(gw.busy() < 8, "{}", gw.busy());
}

#[test]
fn the_worker_pool_invariant_can_fail() {
    let mesh = Mesh::new(&[ServiceConfig::default()], &[], None, 10).unwrap();
    let mut node = MeshNode::recover(GATEWAY, &mesh, &Disk::new());
    let s = node.service_mut().unwrap();
    assert!(s.check_pool().is_ok());
    let request = Incoming {
        from: CLIENT,
        edge: 0,
        attempt: 0,
        arrived: Time(0),
    };
    let job = Job {
        request,
        waiting: 0,
        failed: None,
        working: true,
    };
    for id in 0..=u64::from(s.workers) {
        s.jobs.insert(id, job);
    }
    let e = s.check_pool().unwrap_err();
    assert!(e.contains("9 jobs on 8 workers"), "{e}");
    s.jobs.clear();
    for _ in 0..=s.queue_bound {
        s.queue.push_back(request);
    }
    s.jobs.extend((0..u64::from(s.workers)).map(|id| (id, job)));
    assert!(s.check_pool().unwrap_err().contains("queued, bound"));
    s.jobs.clear();
    s.queue.truncate(1);
    assert!(s.check_pool().unwrap_err().contains("workers are free"));
}

#[test]
fn the_amplification_invariant_can_fail() {
    let mesh = Mesh::new(
        &[ServiceConfig::default(), ServiceConfig::default()],
        &[EdgeConfig {
            from: 0,
            to: 1,
            weight: Count::of(1),
            policy: Some(lab::guarded_policy(100)),
        }],
        None,
        10,
    )
    .unwrap();
    let mut node = MeshNode::recover(GATEWAY, &mesh, &Disk::new());
    let stats = node.edge_stats_mut(1).unwrap();
    stats.calls = 10;
    stats.attempts = 30;
    assert!(node.caller(1).unwrap().check_amplification().is_ok());
    node.edge_stats_mut(1).unwrap().attempts = 31;
    let e = node.caller(1).unwrap().check_amplification().unwrap_err();
    assert!(
        e.contains("31 attempts for 10 calls, at most 3 each"),
        "{e}"
    );
}

#[test]
fn bad_configs_and_actions_name_their_field() {
    let err = |c: Value| {
        Runner::<Cluster<MeshLab>>::from_json(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err(chain(json!({"edges": [{"from": 1, "to": 0}]})));
    assert!(e.contains("edges[0].to"), "{e}");
    let e = err(chain(json!({"edges": [{"from": 5, "to": 6}]})));
    assert!(e.contains("edges[0].from"), "{e}");
    let e = err(chain(
        json!({"edges": [{"from": 0, "to": 1, "policy": {"strategies": []}}]}),
    ));
    assert!(e.contains("edges[0].policy.strategies"), "{e}");
    let e = err(chain(json!({"services": []})));
    assert!(e.contains("services"), "{e}");
    let e = err(chain(json!({"services": [{"workers": 0}]})));
    assert!(e.contains("services[0].workers"), "{e}");
    let e = err(chain(
        json!({"services": [{"latency": {"type": "constant", "ms": -1}}]}),
    ));
    assert!(e.contains("services[0].latency.ms"), "{e}");
    let e = err(chain(
        json!({"serviceFaults": [{"atMs": 1, "action": {"type": "healService", "service": 9}}]}),
    ));
    assert!(e.contains("serviceFaults[0].action.service"), "{e}");
    let mut lab = run(chain(json!({})), 10);
    let e = lab
        .act(&json!({"type": "slowService", "service": 7, "factor": 2}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("service"), "{e}");
    let e = lab
        .act(&json!({"type": "slowService", "service": 1, "factor": 0}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("factor"), "{e}");
    lab.act(&json!({"type": "slowService", "service": 1, "factor": 5}))
        .unwrap();
}

#[test]
fn the_default_lab_runs_through_its_fault_and_recovers() {
    let lab = run(json!({}), 8_000);
    let v = lab.view();
    assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    let e = lab.model().end_to_end().unwrap();
    assert!(e.succeeded > 1_500, "{e:?}");
    assert!(e.failed > 0, "payments' slowdown shows: {e:?}");
    assert_eq!(v.panels.len(), 2);
}
