//! Lab `coordination.registry`: a registry, service instances renewing their leases,
//! client-side clients that cache the instance list, and server-side clients whose
//! requests go through a router with a cache of its own — side by side in one cluster, so
//! that the same faults hit both kinds of discovery.
//!
//! The view shows each instance's truth (up, crashed, paused), the registry's view (listed
//! or not, the lease left), and what the router and every client-side client have cached;
//! and it counts the requests each kind of discovery routed: ok, to a dead instance (and
//! of those, dead for longer than the staleness bound), and to an instance alive but no
//! longer listed. `cutFromRegistry` cuts one node off from the registry only: an instance
//! cut off is evicted while it still serves; a client cut off keeps routing from its
//! stale cache, to dead instances too. The default fault script does both.
//!
//! Invariants (see [`super::audit`]): no request is routed to an instance dead for longer
//! than `TTL + eviction period + refresh + 3 × max latency` while there is no partition,
//! no loss and no clock fault; the registry lists no lease that ran out more than one
//! sweep ago (unless self-preservation holds the sweep back).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::registry::audit::{Breach, RouteAudit, RouteCounts, max_latency};
use crate::coordination::registry::node::{
    Discovery, DiscoveryNode, Kind, Layout, REGISTRY, ROUTER, RegistryConfig, Role,
};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::node::NodeId;
use crate::sim::{Fault, FaultScript, NodeStatus, ScheduledFault, Sim};
use crate::time::{Duration, Time};

const TRACE_TAIL: usize = 20_000;
/// The most instances or clients of each kind.
pub const MAX_GROUP: u32 = 64;

cluster_lab_config! {
    /// Configuration of the service-registry lab. The defaults are Eureka's ratios scaled
    /// down a hundredfold: renew every 30 s, expire after 90 s, sweep every 60 s, clients
    /// refetch every 30 s.
    pub struct RegistryLabConfig {
        /// Service instances (n2 onwards).
        pub instances: Count<1, { MAX_GROUP }> = Count::of(4),
        /// Clients that cache the list and pick an instance themselves.
        pub client_side_clients: Count<0, { MAX_GROUP }> = Count::of(2),
        /// Clients that send every request through the router (n1).
        pub server_side_clients: Count<0, { MAX_GROUP }> = Count::of(2),
        /// A lease's time to live after its last renewal (Eureka: 90 s).
        pub ttl_ms: Millis<1, 600_000> = Millis::of(900),
        /// Between an instance's renewals (Eureka: 30 s).
        pub heartbeat_ms: Millis<1, 600_000> = Millis::of(300),
        /// Between the registry's eviction sweeps (Eureka: 60 s).
        pub evict_every_ms: Millis<1, 600_000> = Millis::of(600),
        /// Between a client-side client's fetches of the list (Eureka: 30 s).
        pub client_refresh_ms: Millis<1, 600_000> = Millis::of(300),
        /// Between the router's fetches: one process near the registry can afford to ask
        /// often.
        pub router_refresh_ms: Millis<1, 600_000> = Millis::of(100),
        /// Between a client's requests.
        pub request_every_ms: Millis<1, 60_000> = Millis::of(50),
        /// Eureka's self-preservation: a sweep evicts nothing while renewals fall below
        /// `renewalPercentThreshold` of those expected.
        pub self_preservation: bool = false,
        /// Eureka's renewalPercentThreshold (85 %).
        pub renewal_percent_threshold: Count<1, 100> = Count::of(85),
    }
    defaults {
        faults: default_faults(),
    }
}

/// At 1.5 s instance n2 and client-side client n7 are cut off from the registry; at 3 s
/// instance n3 crashes; at 6 s the network heals; at 7 s n3 restarts.
fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    let mut faults = Vec::new();
    for node in [2, 7] {
        faults.extend(cut_from_registry(node).map(|f| at(1_500, f)));
    }
    faults.push(at(3_000, Fault::Crash { node: 3 }));
    faults.push(at(6_000, Fault::Heal));
    faults.push(at(7_000, Fault::Restart { node: 3 }));
    FaultScript { faults }
}

/// The two one-way cuts that part `node` from the registry and from nothing else.
pub fn cut_from_registry(node: NodeId) -> [Fault; 2] {
    [
        Fault::PartitionOneWay {
            from: vec![node],
            to: vec![REGISTRY],
        },
        Fault::PartitionOneWay {
            from: vec![REGISTRY],
            to: vec![node],
        },
    ]
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RegistryLabAction {
    /// Cut `node` off from the registry (both ways), and from no one else.
    CutFromRegistry { node: NodeId },
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryTotals {
    pub client_side: RouteCounts,
    pub server_side: RouteCounts,
}

/// The service-registry lab.
#[derive(Debug, Clone)]
pub struct RegistryLab {
    sim: Sim<DiscoveryNode>,
    config: RegistryConfig,
    audit: RouteAudit,
}

impl RegistryLab {
    pub fn layout(&self) -> Layout {
        self.config.layout
    }

    pub fn audit(&self) -> &RouteAudit {
        &self.audit
    }

    /// Routes so far by one kind of discovery.
    pub fn routes(&self, discovery: Discovery) -> RouteCounts {
        *self.audit.counts(discovery)
    }

    /// Whether the registry lists `instance` now (`None` while the registry is down).
    pub fn registry_lists(&self, instance: NodeId) -> Option<bool> {
        self.sim
            .node(REGISTRY)
            .and_then(DiscoveryNode::registry)
            .map(|r| r.lists(instance))
    }

    /// Whether `node`'s cache (the router's or a client-side client's) lists `instance`.
    pub fn cache_lists(&self, node: NodeId, instance: NodeId) -> Option<bool> {
        self.sim
            .node(node)
            .and_then(DiscoveryNode::cache)
            .map(|c| c.lists(instance))
    }

    fn status_label(&self, id: NodeId) -> &'static str {
        match self.sim.status(id) {
            Some(NodeStatus::Up) => "up",
            Some(NodeStatus::Paused) => "paused",
            Some(NodeStatus::Crashed) | None => "crashed",
        }
    }

    /// One row per instance: its truth, the registry's view, every decider's cache.
    fn views_panel(&self) -> Panel {
        let layout = self.config.layout;
        let registry = self.sim.node(REGISTRY).and_then(DiscoveryNode::registry);
        let registry_now = self.sim.clock(REGISTRY).map(|c| c.local(self.sim.now()));
        let mut columns = vec!["instance".to_string(), "truth".into(), "registry".into()];
        let deciders: Vec<(NodeId, Discovery)> = layout.deciders().collect();
        for (id, _) in &deciders {
            columns.push(if *id == ROUTER {
                "router n1".into()
            } else {
                format!("client n{id}")
            });
        }
        let rows = layout
            .instances()
            .map(|inst| {
                let registry_cell = match (registry, registry_now) {
                    (Some(r), Some(now)) => match r.leases.get(&inst) {
                        Some(l) => {
                            let left =
                                l.expires_at(self.config.ttl).0 as f64 / 1e3 - now.as_millis_f64();
                            if left >= 0.0 {
                                json!(format!("listed, {left:.0} ms left"))
                            } else {
                                json!(format!("listed, expired {:.0} ms ago", -left))
                            }
                        }
                        None => json!("not listed"),
                    },
                    _ => json!("registry down"),
                };
                let mut row = vec![
                    json!(format!("n{inst}")),
                    json!(self.status_label(inst)),
                    registry_cell,
                ];
                for (id, _) in &deciders {
                    row.push(match self.cache_lists(*id, inst) {
                        Some(true) => json!("listed"),
                        Some(false) => json!("—"),
                        None => json!("down"),
                    });
                }
                row
            })
            .collect();
        Panel::Table {
            title: "instances: truth, the registry's view, each cache".into(),
            columns,
            rows,
        }
    }

    fn routes_panel(&self) -> Panel {
        let rows = [Discovery::ClientSide, Discovery::ServerSide]
            .into_iter()
            .map(|d| {
                let c = self.audit.counts(d);
                vec![
                    json!(d.label()),
                    json!(c.ok),
                    json!(c.to_dead),
                    json!(c.past_bound),
                    json!(c.to_unlisted),
                    json!(self.audit.bound(d).as_millis_f64()),
                ]
            })
            .collect();
        Panel::Table {
            title: "routed requests by discovery".into(),
            columns: [
                "discovery",
                "ok",
                "to a dead instance",
                "dead past the bound",
                "to an evicted but alive instance",
                "bound (ms)",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

impl Sampled for RegistryLab {
    type Totals = RegistryTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("routed ok", "per interval"),
            ("client-side: to a dead instance", "per interval"),
            ("server-side: to a dead instance", "per interval"),
            ("client-side: to an evicted alive instance", "per interval"),
            ("server-side: to an evicted alive instance", "per interval"),
            ("instances listed", "instances"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> RegistryTotals {
        RegistryTotals {
            client_side: self.audit.client_side,
            server_side: self.audit.server_side,
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &RegistryTotals) -> Vec<f64> {
        let t = self.totals();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let listed = self
            .sim
            .node(REGISTRY)
            .and_then(DiscoveryNode::registry)
            .map_or(0, |r| r.leases.len());
        vec![
            d(
                t.client_side.ok + t.server_side.ok,
                since.client_side.ok + since.server_side.ok,
            ),
            d(t.client_side.to_dead, since.client_side.to_dead),
            d(t.server_side.to_dead, since.server_side.to_dead),
            d(t.client_side.to_unlisted, since.client_side.to_unlisted),
            d(t.server_side.to_unlisted, since.server_side.to_unlisted),
            listed as f64,
        ]
    }
}

impl ClusterLab for RegistryLab {
    const ID: &'static str = "coordination.registry";
    type Node = DiscoveryNode;
    type Config = RegistryLabConfig;
    type Action = RegistryLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &RegistryLabConfig) -> Result<Self> {
        let config = RegistryConfig {
            layout: Layout {
                instances: c.instances.get(),
                client_side: c.client_side_clients.get(),
                server_side: c.server_side_clients.get(),
            },
            ttl: c.ttl_ms.duration(),
            heartbeat: c.heartbeat_ms.duration(),
            evict_every: c.evict_every_ms.duration(),
            client_refresh: c.client_refresh_ms.duration(),
            router_refresh: c.router_refresh_ms.duration(),
            request_every: c.request_every_ms.duration(),
            self_preservation_percent: c
                .self_preservation
                .then(|| c.renewal_percent_threshold.get()),
        };
        let mut sim = Sim::new(c.sim_config(config.layout.nodes()), config)?;
        c.load_faults(&mut sim)?;
        let audit = RouteAudit::new(&config, sim.network().config());
        let mut lab = RegistryLab { sim, config, audit };
        lab.observe();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<DiscoveryNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<DiscoveryNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        self.audit.observe(&self.sim);
    }

    fn act(&mut self, action: &RegistryLabAction) -> Result<()> {
        match action {
            RegistryLabAction::CutFromRegistry { node } => {
                if *node == REGISTRY || *node >= self.sim.node_count() {
                    return Err(DistlabError::field(
                        "node",
                        format!(
                            "must be a node other than the registry (1 to {}), got {node}",
                            self.sim.node_count().saturating_sub(1)
                        ),
                    ));
                }
                for f in cut_from_registry(*node) {
                    self.sim.apply_fault(&f)?;
                }
                Ok(())
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        match n.role_state() {
            Role::Registry(r) => {
                fields.insert("listed".into(), json!(r.leases.keys().collect::<Vec<_>>()));
                fields.insert("selfPreserving".into(), json!(r.self_preserving));
                fields.insert("registrations".into(), json!(r.registrations));
                fields.insert("evictions".into(), json!(r.evictions));
            }
            Role::Instance(i) => {
                fields.insert("listedByRegistry".into(), json!(self.registry_lists(id)));
                fields.insert("served".into(), json!(i.served));
                fields.insert("renewals".into(), json!(i.renewals));
                fields.insert("registrations".into(), json!(i.registrations));
            }
            Role::Router(_) | Role::Client(_) => {
                if let Some(c) = n.client() {
                    fields.insert("calls".into(), json!(c.calls));
                    fields.insert("answered".into(), json!(c.answered));
                }
                if let Some(cache) = n.cache() {
                    let now = self.sim.clock(id).map(|k| k.local(self.sim.now()));
                    fields.insert("cached".into(), json!(cache.instances));
                    fields.insert(
                        "cacheAgeMs".into(),
                        json!(
                            cache
                                .fetched_at
                                .zip(now)
                                .map(|(f, t)| t.saturating_since(f).as_millis_f64())
                        ),
                    );
                    fields.insert("routed".into(), json!(cache.routes));
                    fields.insert("noInstance".into(), json!(cache.no_instance));
                }
            }
        }
        if let Kind::Client(d) = self.config.layout.kind(id) {
            fields.insert("discovery".into(), json!(d.label()));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let latency = max_latency(self.sim.network().config());
        vec![
            self.views_panel(),
            self.routes_panel(),
            Panel::Text {
                title: "the staleness bound".into(),
                body: format!(
                    "TTL {} + eviction period {} + refresh + 3 × max latency {} ms: {} ms for \
                     client-side clients (refresh {} ms), {} ms through the router (refresh \
                     {} ms). Promised with no partition, no loss, no clock fault and \
                     self-preservation off; past-bound routes are counted always.",
                    self.config.ttl.as_millis_f64(),
                    self.config.evict_every.as_millis_f64(),
                    latency.as_millis_f64(),
                    self.audit.client_bound.as_millis_f64(),
                    self.config.client_refresh.as_millis_f64(),
                    self.audit.router_bound.as_millis_f64(),
                    self.config.router_refresh.as_millis_f64(),
                ),
            },
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let status = |name: &str, breach: &Option<Breach>, ok: &str| match breach {
            Some((d, nodes)) => InvariantStatus::violated(name, d.clone(), nodes.clone()),
            None => InvariantStatus::holds(name, ok),
        };
        vec![
            status(
                "no route to an instance dead longer than TTL + eviction + refresh + 3 × latency",
                &self.audit.past_bound_breach,
                "judged for instances that died with no partition, loss or clock fault in force",
            ),
            status(
                "the registry lists no lease expired more than one sweep ago",
                &self.audit.stale_listing_breach,
                "unless self-preservation held the sweep back",
            ),
        ]
    }

    fn example_actions() -> Vec<ClusterAction<RegistryLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(RegistryLabAction::CutFromRegistry {
            node: 2,
        }));
        v.push(ClusterAction::Lab(RegistryLabAction::CutFromRegistry {
            node: 6,
        }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn lab(config: RegistryLabConfig) -> Cluster<RegistryLab> {
        Cluster::<RegistryLab>::new(&config).unwrap()
    }

    fn quiet() -> RegistryLabConfig {
        RegistryLabConfig {
            faults: FaultScript { faults: vec![] },
            ..RegistryLabConfig::default()
        }
    }

    fn run(l: &mut Cluster<RegistryLab>, ms: u64) {
        while l.step_until(Time::from_millis(ms)) {}
    }

    /// Steps a lab taken out of its runner (to plant a bad state), observing every event.
    fn run_lab(l: &mut RegistryLab, ms: u64) {
        while l.sim.step_until(Time::from_millis(ms)).is_some() {
            l.observe();
        }
    }

    #[test]
    fn the_default_run_shows_both_stale_kinds_and_keeps_the_invariants() {
        let mut l = lab(RegistryLabConfig::default());
        run(&mut l, 9_000);
        assert!(l.invariants().iter().all(|i| i.ok), "{:?}", l.invariants());
        let cs = l.lab().routes(Discovery::ClientSide);
        let ss = l.lab().routes(Discovery::ServerSide);
        // n7, cut off, routes to the crashed n3 until the heal: past the bound.
        assert!(cs.past_bound > 0, "{cs:?}");
        // The router is fresh: it stops routing to n3 within its bound.
        assert!(ss.to_dead > 0 && ss.past_bound == 0, "{ss:?}");
        // n2, cut off from the registry, was evicted while serving.
        assert!(cs.to_unlisted + ss.to_unlisted > 0, "{cs:?} {ss:?}");
        // After the heal and n3's restart everyone is listed again.
        for inst in l.lab().layout().instances() {
            assert_eq!(l.lab().registry_lists(inst), Some(true), "n{inst}");
        }
    }

    #[test]
    fn every_invariant_can_fail() {
        // A bound shorter than TTL + sweep + refresh: a crash is routed to past it.
        let mut l = lab(quiet());
        run(&mut l, 1_000);
        let mut bad = l.lab().clone();
        bad.audit.tighten_bounds(Duration::from_millis(1));
        bad.sim.apply_fault(&Fault::Crash { node: 3 }).unwrap();
        run_lab(&mut bad, 2_000);
        assert!(!bad.invariants()[0].ok, "{:?}", bad.invariants());
        assert!(bad.invariants()[1].ok);
        // A registry expected to evict at the instant a lease runs out: the sweep period
        // leaves an expired lease listed.
        let mut l = lab(quiet());
        run(&mut l, 1_000);
        let mut bad = l.lab().clone();
        bad.audit.tighten_sweep();
        bad.sim.apply_fault(&Fault::Crash { node: 4 }).unwrap();
        run_lab(&mut bad, 3_000);
        assert!(!bad.invariants()[1].ok, "{:?}", bad.invariants());
    }

    #[test]
    fn cut_from_registry_checks_its_node() {
        let mut l = lab(quiet());
        for node in [0, 99] {
            let e = l
                .act(&ClusterAction::Lab(RegistryLabAction::CutFromRegistry {
                    node,
                }))
                .unwrap_err();
            assert!(e.to_string().contains("node"), "{e}");
        }
        l.act(&ClusterAction::Lab(RegistryLabAction::CutFromRegistry {
            node: 2,
        }))
        .unwrap();
        assert_eq!(l.lab().sim().network().one_way_cuts().len(), 2);
    }
}
