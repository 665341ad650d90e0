//! Lab `resilience.mesh`: the service mesh of [`super`] — a client, a gateway and
//! services with dependencies — where the config attaches a resilience pipeline to any
//! edge and actions (or a schedule) make a service slow or failing; the kit's `crash`
//! takes one down.
//!
//! The view: a table of edges (calls, success rate, p50 / p99 / p99.9, attempts per call,
//! calls open, breaker state) and one of services (workers busy, queue, load, turned
//! away, fault); the charts: end-to-end successes, failures and p99 per interval,
//! attempts reaching the services per client request (the amplification), every
//! service's load, queue and busy workers, and how many breakers are open.
//!
//! Invariants: no worker pool admits more jobs than it has workers or queues past its
//! bound (or queues while a worker is free); no edge sends more attempts than its calls
//! times its policy's most attempts per call.
//!
//! Counters live in the nodes: a crash restarts a service's (and, for the calls it
//! makes, its edges') from zero, as a real process's metrics would.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::ClusterLab;
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::resilience::ErrorKind;
use crate::resilience::circuit_breaker::{BreakerState, CircuitBreakerConfig};
use crate::resilience::mesh::metrics::{EdgeStats, LatencyHistogram, Percentiles};
use crate::resilience::mesh::node::{Control, EdgeCaller, MeshNode};
use crate::resilience::mesh::{EdgeConfig, MAX_RATE, Mesh, Pick, ServiceConfig, service_node};
use crate::resilience::policy::{PolicyConfig, StrategyConfig};
use crate::resilience::retry::{BackoffConfig, Jitter, RetryBudgetConfig, RetryConfig};
use crate::sim::network::LatencyModel;
use crate::sim::node::NodeId;
use crate::sim::{Sim, Stepped};
use crate::time::{Duration, Time};

const TRACE_TAIL: usize = 20_000;
/// The most scheduled service faults.
pub const MAX_SCHEDULED: usize = 64;

/// A fault on a service, as an action or scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum MeshLabAction {
    /// Service `service`'s work takes `factor` times as long.
    SlowService {
        service: u32,
        factor: Count<1, 1_000>,
    },
    /// Service `service`'s work fails with probability `errorRate`.
    #[serde(rename_all = "camelCase")]
    FailService {
        service: u32,
        error_rate: Probability,
    },
    /// Service `service` back to its configuration.
    HealService { service: u32 },
}

impl MeshLabAction {
    fn service(&self) -> u32 {
        match self {
            MeshLabAction::SlowService { service, .. }
            | MeshLabAction::FailService { service, .. }
            | MeshLabAction::HealService { service } => *service,
        }
    }

    fn control(&self) -> Control {
        match self {
            MeshLabAction::SlowService { factor, .. } => Control::Slow {
                factor: factor.get(),
            },
            MeshLabAction::FailService { error_rate, .. } => Control::Fail {
                error_rate: error_rate.get(),
            },
            MeshLabAction::HealService { .. } => Control::Heal,
        }
    }
}

/// A service fault at a time. JSON: `{"atMs": 2000, "action": {"type": "slowService",
/// "service": 2, "factor": 20}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ScheduledServiceFault {
    pub at_ms: Millis<0, 3_600_000>,
    pub action: MeshLabAction,
}

fn service(name: &str, workers: u32, queue: u32, mean_ms: f64, pick: Pick) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        workers: Count::new("workers", workers).unwrap_or(Count::of(1)),
        queue: Count::new("queue", queue).unwrap_or(Count::of(0)),
        latency: LatencyModel::Exponential {
            min_ms: 1.0,
            mean_ms,
        },
        error_rate: Probability::of(0.0),
        pick,
        honors_cancel: true,
    }
}

/// gateway (routes each request to orders or catalog) → orders → payments + inventory.
pub fn default_services() -> Vec<ServiceConfig> {
    vec![
        service("gateway", 64, 128, 1.0, Pick::One),
        service("orders", 16, 32, 3.0, Pick::All),
        service("payments", 8, 16, 5.0, Pick::All),
        service("inventory", 8, 16, 3.0, Pick::All),
        service("catalog", 8, 16, 3.0, Pick::All),
    ]
}

/// A retry with exponential backoff and full jitter within a gRPC retry budget, a
/// circuit breaker and a per-attempt timeout, outermost first (Polly's recommended
/// order).
pub fn guarded_policy(timeout_ms: u32) -> PolicyConfig {
    PolicyConfig {
        strategies: vec![
            StrategyConfig::Retry {
                policy: RetryConfig {
                    max_attempts: Count::of(3),
                    backoff: BackoffConfig {
                        initial_backoff_ms: Millis::of(20),
                        max_backoff_ms: Millis::of(500),
                        backoff_multiplier: 2.0,
                        jitter: Jitter::Full,
                    },
                    retry_on: vec![
                        ErrorKind::Unavailable,
                        ErrorKind::Timeout,
                        ErrorKind::Overloaded,
                    ],
                },
                budget: Some(RetryBudgetConfig::default()),
            },
            StrategyConfig::CircuitBreaker {
                config: fast_breaker(),
            },
            StrategyConfig::Timeout {
                timeout_ms: Millis::of(timeout_ms.max(1)),
            },
        ],
    }
}

/// A breaker scaled to a lab's seconds: a window of 20 calls, open for 1 s.
pub fn fast_breaker() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        sliding_window_size: Count::of(20),
        minimum_number_of_calls: Count::of(10),
        permitted_number_of_calls_in_half_open_state: Count::of(3),
        wait_duration_in_open_state_ms: Millis::of(1_000),
        ..CircuitBreakerConfig::default()
    }
}

/// A client-side timeout of `ms`.
pub fn timeout_policy(ms: u32) -> PolicyConfig {
    PolicyConfig {
        strategies: vec![StrategyConfig::Timeout {
            timeout_ms: Millis::of(ms.max(1)),
        }],
    }
}

fn edge(from: u32, to: u32, policy: Option<PolicyConfig>) -> EdgeConfig {
    EdgeConfig {
        from,
        to,
        weight: Count::of(1),
        policy,
    }
}

pub fn default_edges() -> Vec<EdgeConfig> {
    vec![
        edge(0, 1, Some(guarded_policy(200))),
        edge(0, 4, None),
        edge(1, 2, None),
        edge(1, 3, None),
    ]
}

/// Payments (service 2) slows twentyfold at 2 s and recovers at 5 s.
fn default_service_faults() -> Vec<ScheduledServiceFault> {
    vec![
        ScheduledServiceFault {
            at_ms: Millis::of(2_000),
            action: MeshLabAction::SlowService {
                service: 2,
                factor: Count::of(20),
            },
        },
        ScheduledServiceFault {
            at_ms: Millis::of(5_000),
            action: MeshLabAction::HealService { service: 2 },
        },
    ]
}

cluster_lab_config! {
    /// Configuration of the service-mesh lab.
    pub struct MeshLabConfig {
        /// Service 0 is the gateway the client calls.
        pub services: Vec<ServiceConfig> = default_services(),
        /// Dependencies, each from a lower service to a higher one, with its policy.
        pub edges: Vec<EdgeConfig> = default_edges(),
        /// The client's pipeline around its calls to the gateway (none: it waits).
        pub client_policy: Option<PolicyConfig> = Some(timeout_policy(1_000)),
        /// The client's requests per second (Poisson arrivals).
        pub requests_per_sec: Count<0, { MAX_RATE }> = Count::of(300),
        /// Service faults at set times.
        pub service_faults: Vec<ScheduledServiceFault> = default_service_faults(),
    }
}

/// Running totals for the charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshTotals {
    pub ok: u64,
    pub failed: u64,
    pub requests: u64,
    pub latency: LatencyHistogram,
    /// Attempts each service received.
    pub received: Vec<u64>,
}

/// The service-mesh lab.
#[derive(Debug, Clone)]
pub struct MeshLab {
    sim: Sim<MeshNode>,
    service_faults: Vec<ScheduledServiceFault>,
}

impl MeshLab {
    pub fn mesh(&self) -> &Mesh {
        self.sim.node_config()
    }

    /// The caller's side of edge `e` (0 is client → gateway), while its caller is up.
    pub fn edge(&self, e: u32) -> Option<&EdgeCaller> {
        let from = self.mesh().edges().get(e as usize)?.from;
        self.sim.node(from)?.caller(e)
    }

    /// End to end: the client's calls to the gateway.
    pub fn end_to_end(&self) -> Option<&EdgeStats> {
        self.edge(0).map(EdgeCaller::stats)
    }

    /// Service `i`'s node, while it is up.
    pub fn service(&self, i: u32) -> Option<&MeshNode> {
        self.sim.node(service_node(i))
    }

    /// Sends `action`'s control to its service now (it arrives after the network's
    /// latency, as from an operator's admin client).
    fn send_control(&mut self, action: &MeshLabAction) -> Result<()> {
        let i = action.service();
        let n = self.mesh().services().len() as u32;
        if i >= n {
            return Err(DistlabError::field(
                "service",
                format!("no service {i} (there are {n})"),
            ));
        }
        self.sim
            .client_request(0, service_node(i), action.control(), Duration::from_secs(1))?;
        Ok(())
    }

    fn service_count(&self) -> u32 {
        self.mesh().services().len() as u32
    }

    fn policy_label(p: Option<&PolicyConfig>) -> String {
        p.map_or_else(
            || "plain call".into(),
            |p| {
                p.strategies
                    .iter()
                    .map(StrategyConfig::name)
                    .collect::<Vec<_>>()
                    .join(" → ")
            },
        )
    }

    fn edges_panel(&self) -> Panel {
        let rows = self
            .mesh()
            .edges()
            .iter()
            .enumerate()
            .map(|(k, e)| {
                let label = self.mesh().edge_label(k);
                let policy = Self::policy_label(e.policy.as_ref());
                match self.edge(k as u32) {
                    Some(c) => {
                        let s = c.stats();
                        let p = Percentiles::of(&s.latency);
                        let per_call = if s.done() == 0 {
                            Value::Null
                        } else {
                            json!(s.attempts as f64 / s.calls.max(1) as f64)
                        };
                        vec![
                            json!(label),
                            json!(policy),
                            json!(s.calls),
                            json!(s.success_rate()),
                            json!(p.p50_ms),
                            json!(p.p99_ms),
                            json!(p.p999_ms),
                            per_call,
                            json!(c.open_calls()),
                            json!(c.breaker_state().map(BreakerState::name)),
                        ]
                    }
                    None => vec![json!(label), json!(policy), json!("caller down")],
                }
            })
            .collect();
        Panel::Table {
            title: "edges".into(),
            columns: [
                "edge",
                "policy",
                "calls",
                "success rate",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "attempts per call",
                "open",
                "breaker",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn services_panel(&self) -> Panel {
        let rows = (0..self.service_count())
            .map(|i| {
                let name = self.mesh().services()[i as usize].name.clone();
                match self.service(i).and_then(MeshNode::service) {
                    Some(s) => vec![
                        json!(name),
                        json!(format!("{}/{}", s.busy(), s.workers)),
                        json!(format!("{}/{}", s.queue.len(), s.queue_bound)),
                        json!(s.stats.received),
                        json!(s.stats.rejected),
                        json!(s.stats.ok),
                        json!(s.stats.errors),
                        json!(s.stats.cancelled),
                        json!(fault_label(s.fault)),
                    ],
                    None => vec![json!(name), json!("down")],
                }
            })
            .collect();
        Panel::Table {
            title: "services".into(),
            columns: [
                "service",
                "busy",
                "queue",
                "received",
                "turned away",
                "ok",
                "errors",
                "cancelled",
                "fault",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

fn fault_label(f: crate::resilience::mesh::node::ServiceFault) -> String {
    let mut parts = Vec::new();
    if f.latency_factor > 1 {
        parts.push(format!("{}× slower", f.latency_factor));
    }
    if let Some(r) = f.error_rate {
        parts.push(format!("fails {:.0} %", r * 100.0));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

impl Sampled for MeshLab {
    type Totals = MeshTotals;

    fn series(&self) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = [
            ("end to end ok", "per interval"),
            ("end to end failed", "per interval"),
            ("end to end p99", "ms"),
            ("attempts reaching services per request", "attempts"),
            ("breakers open", "edges"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec();
        for c in self.mesh().services() {
            s.push((format!("load on {}", c.name), "per interval".into()));
            s.push((format!("queue of {}", c.name), "requests".into()));
            s.push((format!("busy workers of {}", c.name), "workers".into()));
        }
        s
    }

    fn totals(&self) -> MeshTotals {
        let e = self.end_to_end();
        MeshTotals {
            ok: e.map_or(0, |e| e.succeeded),
            failed: e.map_or(0, |e| e.failed),
            requests: e.map_or(0, |e| e.calls),
            latency: e.map(|e| e.latency.clone()).unwrap_or_default(),
            received: (0..self.service_count())
                .map(|i| {
                    self.service(i)
                        .and_then(MeshNode::service)
                        .map_or(0, |s| s.stats.received)
                })
                .collect(),
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &MeshTotals) -> Vec<f64> {
        let t = self.totals();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let p99 = t
            .latency
            .since(&since.latency)
            .quantile(0.99)
            .map_or(0.0, |d| d.0 as f64 / 1e3);
        let received: Vec<f64> = t
            .received
            .iter()
            .enumerate()
            .map(|(i, r)| d(*r, since.received.get(i).copied().unwrap_or(0)))
            .collect();
        let requests = d(t.requests, since.requests);
        let amplification = if requests > 0.0 {
            received.iter().sum::<f64>() / requests
        } else {
            0.0
        };
        let open = (0..self.mesh().edges().len() as u32)
            .filter(|e| {
                self.edge(*e)
                    .and_then(EdgeCaller::breaker_state)
                    .is_some_and(|s| s != BreakerState::Closed)
            })
            .count();
        let mut v = vec![
            d(t.ok, since.ok),
            d(t.failed, since.failed),
            p99,
            amplification,
            open as f64,
        ];
        for (i, r) in received.into_iter().enumerate() {
            let s = self.service(i as u32).and_then(MeshNode::service);
            v.push(r);
            v.push(s.map_or(0.0, |s| s.queue.len() as f64));
            v.push(s.map_or(0.0, |s| s.busy() as f64));
        }
        v
    }
}

/// Whether every worker pool is within its bounds: the first breach.
pub fn pool_breach(sim: &Sim<MeshNode>) -> Option<(NodeId, String)> {
    (0..sim.node_count()).find_map(|id| {
        let s = sim.node(id)?.service()?;
        s.check_pool().err().map(|e| (id, e))
    })
}

/// Whether every edge stayed within its policy's most attempts per call: the first
/// breach.
pub fn amplification_breach(sim: &Sim<MeshNode>) -> Option<(NodeId, String)> {
    let mesh = sim.node_config();
    mesh.edges().iter().enumerate().find_map(|(k, e)| {
        let c = sim.node(e.from)?.caller(k as u32)?;
        c.check_amplification()
            .err()
            .map(|why| (e.from, format!("{}: {why}", mesh.edge_label(k))))
    })
}

fn status(name: &str, breach: Option<(NodeId, String)>) -> InvariantStatus {
    match breach {
        None => InvariantStatus::holds(name, "holds"),
        Some((n, why)) => InvariantStatus::violated(name, why, vec![n]),
    }
}

impl ClusterLab for MeshLab {
    const ID: &'static str = "resilience.mesh";
    type Node = MeshNode;
    type Config = MeshLabConfig;
    type Action = MeshLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &MeshLabConfig) -> Result<Self> {
        let mesh = Mesh::new(
            &c.services,
            &c.edges,
            c.client_policy.as_ref(),
            c.requests_per_sec.get(),
        )?;
        if c.service_faults.len() > MAX_SCHEDULED {
            return Err(DistlabError::field(
                "serviceFaults",
                format!("at most {MAX_SCHEDULED}"),
            ));
        }
        for (k, f) in c.service_faults.iter().enumerate() {
            if f.action.service() >= c.services.len() as u32 {
                return Err(DistlabError::field(
                    format!("serviceFaults[{k}].action.service"),
                    format!("no service {}", f.action.service()),
                ));
            }
        }
        let mut sim = Sim::new(c.sim_config(mesh.nodes()), mesh)?;
        c.load_faults(&mut sim)?;
        for (k, f) in c.service_faults.iter().enumerate() {
            sim.schedule_external(Time(f.at_ms.as_micros()), k as u64);
        }
        Ok(MeshLab {
            sim,
            service_faults: c.service_faults.clone(),
        })
    }

    fn sim(&self) -> &Sim<MeshNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<MeshNode> {
        &mut self.sim
    }

    fn step(&mut self, until: Time) -> bool {
        let Some(stepped) = self.sim.step_until(until) else {
            return false;
        };
        if let Stepped::External(k) = stepped
            && let Some(f) = self.service_faults.get(k as usize).cloned()
        {
            // Checked when the lab was built: the service exists.
            let _ = self.send_control(&f.action);
        }
        true
    }

    fn act(&mut self, action: &MeshLabAction) -> Result<()> {
        self.send_control(action)
    }

    fn label(&self, id: NodeId) -> String {
        self.mesh()
            .service_of(id)
            .map_or_else(|| "client".into(), |s| s.name.clone())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(node) = self.sim.node(id) else {
            return;
        };
        if let Some(s) = node.service() {
            fields.insert("workersBusy".into(), json!(s.busy()));
            fields.insert("workers".into(), json!(s.workers));
            fields.insert("queued".into(), json!(s.queue.len()));
            fields.insert("queueBound".into(), json!(s.queue_bound));
            fields.insert("fault".into(), json!(fault_label(s.fault)));
            fields.insert("stats".into(), json!(s.stats));
        } else {
            fields.insert(
                "requestsPerSec".into(),
                json!(self.mesh().requests_per_sec()),
            );
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.edges_panel(), self.services_panel()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        vec![
            status("no worker pool over-admits", pool_breach(&self.sim)),
            status(
                "no call sends more attempts than its policy allows",
                amplification_breach(&self.sim),
            ),
        ]
    }

    fn example_actions() -> Vec<crate::lab::cluster::ClusterAction<MeshLabAction>> {
        use crate::lab::cluster::ClusterAction;
        use crate::sim::Fault;
        vec![
            ClusterAction::Lab(MeshLabAction::SlowService {
                service: 2,
                factor: Count::of(20),
            }),
            ClusterAction::Lab(MeshLabAction::FailService {
                service: 3,
                error_rate: Probability::of(0.5),
            }),
            ClusterAction::Lab(MeshLabAction::HealService { service: 2 }),
            ClusterAction::Fault(Fault::Crash { node: 3 }),
            ClusterAction::Fault(Fault::Restart { node: 3 }),
            ClusterAction::Fault(Fault::Partition {
                groups: vec![vec![0, 1]],
            }),
            ClusterAction::Fault(Fault::Heal),
        ]
    }
}
