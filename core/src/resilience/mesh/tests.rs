use serde_json::{Value, json};

use super::lab::{MeshLab, amplification_breach, deadline_breach, pool_breach};
use super::node::{Incoming, Job, MeshNode};
use super::*;
use crate::lab::{Cluster, ClusterLab, Lab, Runner};
use crate::resilience::policy::PolicyConfig;
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
        deadline: None,
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

/// Client → gateway → a → b with a client deadline of `timeout_ms`, b slowed 100-fold
/// at 300 ms.
fn slow_tail(timeout_ms: u32, edge_policy: Value) -> Value {
    chain(json!({
        "clientPolicy": {"strategies": [{"type": "timeout", "timeoutMs": timeout_ms}]},
        "edges": [{"from": 0, "to": 1, "policy": edge_policy}, {"from": 1, "to": 2}],
        "serviceFaults": [{"atMs": 300, "action": {"type": "slowService", "service": 2, "factor": 100}}],
    }))
}

#[test]
fn a_passed_deadline_frees_every_hop_downstream() {
    // The client gives up after 50 ms; b's work now takes ~300 ms. With the deadline
    // travelling, each hop drops the request at the deadline instead of holding a
    // worker until b answers.
    let lab = run(slow_tail(50, Value::Null), 1_500);
    let m = lab.model();
    for i in 0..3 {
        let s = m.service(i).unwrap().service().unwrap();
        assert!(
            s.stats.expired > 20,
            "service {i} expired {}",
            s.stats.expired
        );
        assert!(s.busy() <= 16, "service {i} busy {}", s.busy());
    }
    // a's calls to b end as cancelled, not as answers.
    let ab = m.edge(2).unwrap().stats();
    assert!(ab.cancelled > 20, "{ab:?}");
    assert!(deadline_breach(m.sim()).is_none());
    // A service that does not watch its context keeps doing the work nobody waits for.
    let mut deaf = slow_tail(50, Value::Null);
    deaf["services"][2]["honorsCancel"] = json!(false);
    let lab = run(deaf, 1_500);
    let b = lab.model().service(2).unwrap().service().unwrap();
    assert_eq!(b.stats.expired, 0);
    assert_eq!(b.busy(), 16, "b's workers stay tied up");
}

#[test]
fn an_edge_timeout_cuts_the_deadline_it_passes_on() {
    // The gateway's edge to a has a 20 ms timeout inside the client's 500 ms: a and b
    // get 20 ms, not 500.
    let policy = json!({"strategies": [{"type": "timeout", "timeoutMs": 20}]});
    let lab = run(slow_tail(500, policy), 1_000);
    let m = lab.model();
    let b = m.service(2).unwrap().service().unwrap();
    for j in b.jobs.values() {
        let d = j.request.deadline.expect("a deadline travels");
        let left = d.at().saturating_since(j.request.arrived);
        assert!(left <= Duration::from_millis(20), "{left:?}");
    }
    assert!(b.stats.expired > 20, "{:?}", b.stats);
    assert!(deadline_breach(m.sim()).is_none());
}

#[test]
fn deadlines_never_grow_across_hops_under_random_policies_and_faults() {
    let seeds: u64 = 24;
    let policies = [
        Value::Null,
        json!({"strategies": [{"type": "timeout", "timeoutMs": 15}]}),
        serde_json::to_value(lab::guarded_policy(30)).unwrap(),
        json!({"strategies": [{"type": "timeout", "timeoutMs": 200},
            {"type": "hedging", "config": {"maxAttempts": 2, "delay": {"type": "fixed", "ms": 5}}}]}),
    ];
    let mut checked = 0;
    for seed in 0..seeds {
        let p = |k: u64| policies[((seed / 4u64.pow(k as u32)) % 4) as usize].clone();
        let mut config = slow_tail(40 + 20 * (seed % 5) as u32, p(0));
        config["edges"][1]["policy"] = p(1);
        config["seed"] = json!(seed);
        let mut lab =
            <MeshLab as ClusterLab>::new(&serde_json::from_value(config).unwrap()).unwrap();
        for step in 1..=60 {
            let until = Time::ZERO.saturating_add(Duration::from_millis(25 * step));
            while ClusterLab::step(&mut lab, until) {}
            if let Some((n, why)) = deadline_breach(lab.sim()) {
                panic!("seed {seed} at {step}: node {n}: {why}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, seeds * 60);
}

#[test]
fn the_deadline_invariant_can_fail() {
    let config = slow_tail(200, Value::Null);
    let mut lab = <MeshLab as ClusterLab>::new(&serde_json::from_value(config).unwrap()).unwrap();
    while ClusterLab::step(&mut lab, Time(600_000)) {}
    assert!(deadline_breach(lab.sim()).is_none());
    // b holds requests (it is slow); give one a later deadline than a had left.
    let b = service_node(2);
    let node = lab.sim_mut().node_mut(b).unwrap();
    let s = node.service_mut().unwrap();
    let job = s.jobs.values_mut().next().expect("b is busy");
    let d = job.request.deadline.unwrap();
    job.request.deadline = Some(crate::resilience::timeout::Deadline(
        d.at().saturating_add(Duration(1)),
    ));
    let (n, why) = deadline_breach(lab.sim()).unwrap();
    assert_eq!(n, b);
    assert!(why.contains("a → b"), "{why}");
    // Dropping the deadline altogether is growing it too.
    let s = lab.sim_mut().node_mut(b).unwrap().service_mut().unwrap();
    s.jobs.values_mut().next().unwrap().request.deadline = None;
    assert!(deadline_breach(lab.sim()).unwrap().1.contains("none"));
}

#[test]
fn set_edge_policy_attaches_replaces_and_removes_a_pipeline_at_run_time() {
    // b fails half its calls; a → b (edge 2) starts plain: one attempt per call.
    let mut lab = run(
        chain(json!({"services": [
            {"name": "gateway", "workers": 32, "queue": 64},
            {"name": "a", "workers": 16, "queue": 32},
            {"name": "b", "workers": 16, "queue": 32, "errorRate": 0.5},
        ]})),
        500,
    );
    let ab = |lab: &Runner<Cluster<MeshLab>>| lab.model().edge(2).unwrap().stats().clone();
    let before = ab(&lab);
    assert_eq!(before.attempts, before.calls);
    let retry = json!({"strategies": [{"type": "retry", "policy": {"maxAttempts": 3,
        "backoff": {"initialBackoffMs": 1, "maxBackoffMs": 1, "backoffMultiplier": 1,
        "jitter": "none"}, "retryOn": ["internal"]}}]});
    lab.act(&json!({"type": "setEdgePolicy", "edge": 2, "policy": retry}))
        .unwrap();
    lab.step(Duration::from_millis(1_000)).unwrap();
    let with_retry = ab(&lab);
    let calls = with_retry.calls - before.calls;
    let attempts = with_retry.attempts - before.attempts;
    // Retrying a 50 % failure up to 3 times: about 1.75 attempts per call.
    assert!(
        attempts * 10 > calls * 15,
        "{attempts} attempts for {calls} calls"
    );
    assert_eq!(
        lab.model().mesh().edges()[2].policy.as_ref(),
        serde_json::from_value::<PolicyConfig>(retry.clone())
            .ok()
            .as_ref()
    );
    assert!(lab.view().invariants.iter().all(|i| i.ok));
    // Removed: plain calls again, and the amplification bound holds across the change.
    lab.act(&json!({"type": "setEdgePolicy", "edge": 2, "policy": null}))
        .unwrap();
    lab.step(Duration::from_millis(1_000)).unwrap();
    let plain = ab(&lab);
    assert_eq!(
        plain.attempts - with_retry.attempts,
        plain.calls - with_retry.calls
    );
    assert!(lab.model().edge(2).unwrap().max_attempts_per_call() == 1);
    assert!(lab.view().invariants.iter().all(|i| i.ok));
    // A restarted caller keeps the policy the lab set, not the config's.
    lab.act(&json!({"type": "setEdgePolicy", "edge": 2, "policy": retry}))
        .unwrap();
    lab.step(Duration::from_millis(100)).unwrap();
    lab.act(&json!({"type": "crash", "node": 2})).unwrap();
    lab.step(Duration::from_millis(100)).unwrap();
    lab.act(&json!({"type": "restart", "node": 2})).unwrap();
    lab.step(Duration::from_millis(100)).unwrap();
    assert_eq!(lab.model().edge(2).unwrap().max_attempts_per_call(), 3);
}

#[test]
fn replacing_a_policy_cancels_the_calls_open_on_the_edge() {
    // b is slow: a's calls to b are open when the policy changes.
    let mut lab = run(slow_tail(1_000, Value::Null), 600);
    let open = lab.model().edge(2).unwrap().open_calls();
    assert!(open > 5, "{open}");
    let policy = json!({"strategies": [{"type": "timeout", "timeoutMs": 50}]});
    lab.act(&json!({"type": "setEdgePolicy", "edge": 2, "policy": policy}))
        .unwrap();
    lab.step(Duration::from_millis(20)).unwrap();
    let m = lab.model();
    let ab = m.edge(2).unwrap();
    // The control arrives after the network's latency: the calls still open then.
    assert!(
        ab.stats().cancelled > 5,
        "{open} open before: {:?}",
        ab.stats()
    );
    assert!(m.service(2).unwrap().service().unwrap().stats.cancelled > 0);
    assert!(lab.view().invariants.iter().all(|i| i.ok));
}

#[test]
fn a_bad_set_edge_policy_names_its_field_and_changes_nothing() {
    let mut lab = run(chain(json!({})), 10);
    let e = lab
        .act(&json!({"type": "setEdgePolicy", "edge": 9, "policy": null}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("edge"), "{e}");
    let e = lab
        .act(&json!({"type": "setEdgePolicy", "edge": 1, "policy": {"strategies": []}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy.strategies"), "{e}");
    let e = lab
        .act(&json!({"type": "setEdgePolicy", "edge": 1,
            "policy": {"strategies": [{"type": "timeout", "timeoutMs": 0}]}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy.strategies[0].timeoutMs"), "{e}");
    assert_eq!(lab.model().mesh().edges()[1].policy, None);
    let e = Runner::<Cluster<MeshLab>>::from_json(&chain(json!({"serviceFaults": [
        {"atMs": 1, "action": {"type": "setEdgePolicy", "edge": 7}}]})))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("serviceFaults[0].action.edge"), "{e}");
}

#[test]
fn a_cancel_travels_through_a_pipeline_edge_downstream() {
    // gateway → a plain, a → b through a retry + timeout pipeline; the client gives
    // up after 30 ms while b takes ~300 ms. The client's timeout cancels the gateway's
    // attempt; a's job goes when its deadline passes, and with it the pipeline's call
    // to b: b drops the work.
    let policy = json!({"strategies": [{"type": "retry"}, {"type": "timeout", "timeoutMs": 500}]});
    let mut config = slow_tail(30, Value::Null);
    config["edges"][1]["policy"] = policy;
    let lab = run(config, 1_500);
    let m = lab.model();
    let ab = m.edge(2).unwrap();
    assert!(ab.stats().cancelled > 20, "{:?}", ab.stats());
    let b = m.service(2).unwrap().service().unwrap();
    assert!(
        b.stats.cancelled + b.stats.expired > 20,
        "b dropped the work: {:?}",
        b.stats
    );
    assert!(
        b.busy() < 16,
        "b's workers are not all tied up: {}",
        b.busy()
    );
}
