//! A service mesh on the simulator: clients → gateway → services with dependencies,
//! where any edge can be wrapped in a resilience [`Pipeline`] (this section's retry,
//! timeout, circuit breaker, bulkhead, hedging and fallback, composed by
//! [`crate::resilience::policy`]) and faults make a service slow, failing or down.
//!
//! The model follows the failure modes of Nygard's *Release It!* (2nd ed., ch. 4
//! "Stability Antipatterns": cascading failures, blocked threads, integration points)
//! and the AWS Builders' Library ("Timeouts, retries and backoff with jitter", "Using
//! load shedding to avoid overload"): each service has a worker pool and a bounded
//! queue; a worker is held for the whole of a request — while the request waits on its
//! dependencies too, which is how one slow dependency ties up every worker upstream; a
//! request arriving to a full pool and a full queue is turned away at once (`overloaded`).
//! A worker's own work takes a draw of the service's latency distribution (times the
//! slow-fault factor) and fails with its error rate.
//!
//! Layout: node 0 is the client, which sends requests at a Poisson rate to the gateway
//! (service 0, node 1); service `i` is node `i + 1`. Edge 0 is client → gateway, edge
//! `j + 1` is the config's `edges[j]`. Edges go from a lower service to a higher one, so
//! the graph has no cycle. A service calls all its dependencies in parallel
//! (`pick: all`), or one of them by weight (`pick: one`, a gateway routing by path).
//!
//! Sans-I/O as every cluster protocol here: [`node::MeshNode`] implements
//! [`crate::sim::Node`]; the caller side of an edge drives its [`Pipeline`] with the
//! node's clock and rng (`start`, `on_result`, `poll_timeout`/`handle_timeout`); a
//! fallback source is local to the caller and answers at once (a cached or static
//! answer). Faults reach a service as a control request from the lab's operator
//! (client 0), as a fault-injection admin API would; a crash is the simulator's.
//!
//! - [`node`]: the client, the services, the caller side of every edge.
//! - [`metrics`]: per edge and per service counters, a latency histogram.
//! - [`lab`]: the `resilience.mesh` lab.
//!
//! Cost: an event is O(strategies + open calls) on the edge it touches (the pipeline's
//! own cost) plus O(queue) for a cancel.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Probability};
use crate::error::{DistlabError, Result};
use crate::resilience::policy::{Pipeline, PolicyConfig};
use crate::sim::network::LatencyModel;
use crate::sim::node::NodeId;
use crate::sim::workload::within;

pub mod lab;
pub mod metrics;
pub mod node;
#[cfg(test)]
mod tests;

/// The most services in a mesh.
pub const MAX_SERVICES: u32 = 16;
/// The most edges between services.
pub const MAX_EDGES: usize = 64;
/// The most workers of one service.
pub const MAX_WORKERS: u32 = 1_000;
/// The longest queue of one service.
pub const MAX_QUEUE: u32 = 100_000;
/// The most calls open at once on one edge: past it the caller refuses new calls (and
/// counts them), so that a run without timeouts cannot grow without bound.
pub const MAX_OPEN_CALLS: usize = 20_000;
/// The most requests per second the client sends.
pub const MAX_RATE: u32 = 100_000;
/// The longest service name.
pub const MAX_NAME: usize = 32;

/// How a service chooses the dependencies one request calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Pick {
    /// Every dependency, in parallel; the request fails if any call fails.
    #[default]
    All,
    /// One dependency, drawn by the edges' weights (a gateway routing by path).
    One,
}

/// One service. JSON: `{"name": "orders", "workers": 8, "queue": 32, "latency":
/// {"type": "exponential", "minMs": 2, "meanMs": 5}, "errorRate": 0.01}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ServiceConfig {
    /// A label, at most 32 characters.
    pub name: String,
    /// Requests served at once.
    pub workers: Count<1, { MAX_WORKERS }>,
    /// Requests waiting for a worker; past it a request is turned away.
    pub queue: Count<0, { MAX_QUEUE }>,
    /// A worker's own work on one request.
    pub latency: LatencyModel,
    /// The share of requests its own work fails (`internal`).
    pub error_rate: Probability,
    pub pick: Pick,
    /// Whether a cancel from the caller drops the request (queued or in progress), as
    /// a gRPC server watching its context does; false: the request is served anyway,
    /// as a thread pool that never looks back does — work nobody waits for.
    pub honors_cancel: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            name: "service".into(),
            workers: Count::of(8),
            queue: Count::of(32),
            latency: LatencyModel::Exponential {
                min_ms: 2.0,
                mean_ms: 3.0,
            },
            error_rate: Probability::of(0.0),
            pick: Pick::All,
            honors_cancel: true,
        }
    }
}

/// A dependency: service `from` calls service `to` (`from < to`), through `policy` if
/// one is given. JSON: `{"from": 0, "to": 1, "policy": {"strategies": [...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct EdgeConfig {
    pub from: u32,
    pub to: u32,
    /// The edge's share when its caller picks one dependency.
    #[serde(default = "one")]
    pub weight: Count<1, 1_000>,
    /// The resilience pipeline around every call on the edge; none: a plain call that
    /// waits as long as it takes.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
}

fn one() -> Count<1, 1_000> {
    Count::of(1)
}

/// One edge as the nodes use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    pub weight: u32,
    pub policy: Option<PolicyConfig>,
}

/// The mesh every node is built from: services, edges (edge 0 is client → gateway) and
/// the client's rate. Built only by [`Mesh::new`], which checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    services: Vec<ServiceConfig>,
    edges: Vec<Edge>,
    requests_per_sec: u32,
}

/// The node of the client.
pub const CLIENT: NodeId = 0;
/// The node of the gateway (service 0).
pub const GATEWAY: NodeId = 1;

/// The node of service `i`.
pub fn service_node(i: u32) -> NodeId {
    i + 1
}

impl Mesh {
    /// Errors name the field: `services`, `services[i].name` / `.latency.*`,
    /// `edges[j].from` / `.to` / `.policy.*`, `clientPolicy.*`.
    pub fn new(
        services: &[ServiceConfig],
        edges: &[EdgeConfig],
        client_policy: Option<&PolicyConfig>,
        requests_per_sec: u32,
    ) -> Result<Self> {
        let n = services.len() as u32;
        if n == 0 || n > MAX_SERVICES {
            return Err(DistlabError::field(
                "services",
                format!("must hold 1 to {MAX_SERVICES} services, got {n}"),
            ));
        }
        for (i, s) in services.iter().enumerate() {
            if s.name.chars().count() > MAX_NAME {
                return Err(DistlabError::field(
                    format!("services[{i}].name"),
                    format!("at most {MAX_NAME} characters"),
                ));
            }
            s.latency.validate(&format!("services[{i}].latency"))?;
        }
        if edges.len() > MAX_EDGES {
            return Err(DistlabError::field(
                "edges",
                format!("at most {MAX_EDGES} edges, got {}", edges.len()),
            ));
        }
        if requests_per_sec > MAX_RATE {
            return Err(DistlabError::field(
                "requestsPerSec",
                format!("at most {MAX_RATE}"),
            ));
        }
        let check_policy = |field: &str, p: Option<&PolicyConfig>| -> Result<()> {
            match p {
                Some(p) => Pipeline::new(p).map(|_| ()).map_err(|e| within(field, e)),
                None => Ok(()),
            }
        };
        check_policy("clientPolicy", client_policy)?;
        let mut all = vec![Edge {
            from: CLIENT,
            to: GATEWAY,
            weight: 1,
            policy: client_policy.cloned(),
        }];
        for (j, e) in edges.iter().enumerate() {
            if e.from >= n {
                return Err(DistlabError::field(
                    format!("edges[{j}].from"),
                    format!("no service {} (there are {n})", e.from),
                ));
            }
            if e.to >= n || e.to <= e.from {
                return Err(DistlabError::field(
                    format!("edges[{j}].to"),
                    format!(
                        "must name a service after `from` ({}) and below {n}, got {}",
                        e.from, e.to
                    ),
                ));
            }
            if edges[..j].iter().any(|o| o.from == e.from && o.to == e.to) {
                return Err(DistlabError::field(
                    format!("edges[{j}].to"),
                    "the same edge is given twice",
                ));
            }
            check_policy(&format!("edges[{j}].policy"), e.policy.as_ref())?;
            all.push(Edge {
                from: service_node(e.from),
                to: service_node(e.to),
                weight: e.weight.get(),
                policy: e.policy.clone(),
            });
        }
        Ok(Mesh {
            services: services.to_vec(),
            edges: all,
            requests_per_sec,
        })
    }

    pub fn services(&self) -> &[ServiceConfig] {
        &self.services
    }

    /// Every edge; edge 0 is client → gateway.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub fn requests_per_sec(&self) -> u32 {
        self.requests_per_sec
    }

    /// Nodes in the simulation: the client and every service.
    pub fn nodes(&self) -> u32 {
        self.services.len() as u32 + 1
    }

    /// The service that node `id` runs, if it runs one.
    pub fn service_of(&self, id: NodeId) -> Option<&ServiceConfig> {
        id.checked_sub(1)
            .and_then(|i| self.services.get(i as usize))
    }

    /// A label for edge `e`: "client → gateway".
    pub fn edge_label(&self, e: usize) -> String {
        let name = |n: NodeId| {
            self.service_of(n)
                .map_or_else(|| "client".to_string(), |s| s.name.clone())
        };
        self.edges.get(e).map_or_else(String::new, |e| {
            format!("{} → {}", name(e.from), name(e.to))
        })
    }
}
