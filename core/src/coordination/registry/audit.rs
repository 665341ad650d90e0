//! The route audit: after every event it reads the requests the deciding nodes (the
//! router and the client-side clients) just routed and judges each against the truth the
//! simulator knows — the target is up and listed (ok), not up (dead: crashed or paused),
//! or up but not listed by the registry (evicted while alive). The lab and the soak share
//! it, so that both check the same two invariants.
//!
//! **The staleness bound.** An instance dead since `d` sent its last renewal at or before
//! `d`; it reaches the registry by `d + L` (L: the largest one-way latency), so the lease
//! runs out by `d + L + TTL` and the next sweep evicts it by `d + L + TTL + E`. A decider
//! fetches every `R`: its first fetch to reach the registry after the eviction left at
//! most `R` after it and is answered within `2L`. So, with no partition, no loss, the
//! registry and the decider running throughout, no clock fault and no self-preservation,
//! no request is routed to an instance dead for longer than
//! `TTL + E + R + 3L` — `R` the client's refresh or the router's. Routes past the bound
//! are counted in any conditions; the invariant is judged only for instances that died
//! while those conditions held, and held since.
//!
//! **The registry's own rule.** Unless self-preservation held the last sweep back, the
//! registry lists no instance whose lease ran out more than one sweep period ago (judged
//! while the registry runs, its clock untouched).

use std::collections::VecDeque;

use crate::coordination::registry::node::{
    Discovery, DiscoveryNode, Layout, REGISTRY, RegistryConfig,
};
use crate::sim::network::MAX_LATENCY_MS;
use crate::sim::{LatencyModel, NetworkConfig, NodeId, NodeStatus, Sim};
use crate::time::{Duration, Time};

/// Routes of one discovery mode, by what they met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// To an instance up and listed by the registry.
    pub ok: u64,
    /// To an instance crashed or paused.
    pub to_dead: u64,
    /// Of those, to an instance dead for longer than the staleness bound.
    pub past_bound: u64,
    /// To an instance up but not listed (evicted while alive, or not registered yet).
    pub to_unlisted: u64,
}

impl RouteCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.to_dead + self.to_unlisted
    }
}

/// A breach of an invariant: what and whom.
pub type Breach = (String, Vec<NodeId>);

/// The largest one-way latency `network` can produce (reordering adds its delay).
pub fn max_latency(network: &NetworkConfig) -> Duration {
    let ms = match network.latency {
        LatencyModel::Constant { ms } => ms,
        LatencyModel::Uniform { max_ms, .. } => max_ms,
        _ => MAX_LATENCY_MS,
    };
    let reorder = if network.reorder.get() > 0.0 {
        network.reorder_delay_ms.get()
    } else {
        0.0
    };
    Duration(libm::ceil((ms.min(MAX_LATENCY_MS) + reorder) * 1_000.0) as u64)
}

/// The staleness bound for a decider that refreshes every `refresh`:
/// `TTL + E + refresh + 3L`.
pub fn staleness_bound(config: &RegistryConfig, refresh: Duration, latency: Duration) -> Duration {
    Duration(config.ttl.0 + config.evict_every.0 + refresh.0 + 3 * latency.0)
}

/// Reads routes after each event and checks the two invariants.
#[derive(Debug, Clone)]
pub struct RouteAudit {
    layout: Layout,
    ttl: Duration,
    evict_every: Duration,
    self_preservation: bool,
    network: NetworkConfig,
    /// The bound for a client-side client and for the router.
    pub client_bound: Duration,
    pub router_bound: Duration,
    /// Each node's status as last seen, when it went down (instances), when it last
    /// resumed from a pause.
    statuses: Vec<Option<NodeStatus>>,
    down_since: Vec<Option<Time>>,
    resumed_at: Vec<Time>,
    /// Since when the network, the registry and every clock have been as the bound needs.
    quiet_since: Option<Time>,
    /// A clock was ever skewed or drifted.
    clocks_touched: bool,
    /// Routes read so far from each decider since it last booted.
    seen_routes: Vec<u64>,
    pub client_side: RouteCounts,
    pub server_side: RouteCounts,
    /// The largest share of its bound that a judged route to a dead instance used
    /// (how long the instance had been dead over the decider's bound).
    pub closest_to_bound: f64,
    /// The first breach of each invariant.
    pub past_bound_breach: Option<Breach>,
    pub stale_listing_breach: Option<Breach>,
}

impl RouteAudit {
    pub fn new(config: &RegistryConfig, network: &NetworkConfig) -> RouteAudit {
        let latency = max_latency(network);
        let nodes = config.layout.nodes() as usize;
        RouteAudit {
            layout: config.layout,
            ttl: config.ttl,
            evict_every: config.evict_every,
            self_preservation: config.self_preservation_percent.is_some(),
            network: network.clone(),
            client_bound: staleness_bound(config, config.client_refresh, latency),
            router_bound: staleness_bound(config, config.router_refresh, latency),
            statuses: vec![None; nodes],
            down_since: vec![None; nodes],
            resumed_at: vec![Time::ZERO; nodes],
            quiet_since: None,
            clocks_touched: false,
            seen_routes: vec![0; nodes],
            client_side: RouteCounts::default(),
            server_side: RouteCounts::default(),
            closest_to_bound: 0.0,
            past_bound_breach: None,
            stale_listing_breach: None,
        }
    }

    /// Whether the staleness bound is promised at all with this configuration: no loss
    /// and no self-preservation.
    pub fn bound_applies(&self) -> bool {
        self.network.loss.get() == 0.0 && !self.self_preservation
    }

    pub fn counts(&self, discovery: Discovery) -> &RouteCounts {
        match discovery {
            Discovery::ClientSide => &self.client_side,
            Discovery::ServerSide => &self.server_side,
        }
    }

    pub fn bound(&self, discovery: Discovery) -> Duration {
        match discovery {
            Discovery::ClientSide => self.client_bound,
            Discovery::ServerSide => self.router_bound,
        }
    }

    /// Since when an instance has been down (`None`: up).
    pub fn down_since(&self, id: NodeId) -> Option<Time> {
        self.down_since.get(id as usize).copied().flatten()
    }

    /// Makes the bound shorter than the protocol can keep, to show that the invariant
    /// can fail.
    #[cfg(test)]
    pub(crate) fn tighten_bounds(&mut self, bound: Duration) {
        self.client_bound = bound;
        self.router_bound = bound;
    }

    /// Makes the registry's allowance shorter than a sweep, for the same reason.
    #[cfg(test)]
    pub(crate) fn tighten_sweep(&mut self) {
        self.evict_every = Duration::ZERO;
    }

    /// Reads the state after one event (or fault action).
    pub fn observe(&mut self, sim: &Sim<DiscoveryNode>) {
        let now = sim.now();
        self.track_statuses(sim, now);
        self.track_quiet(sim, now);
        for (id, discovery) in self.layout.deciders() {
            self.read_routes(sim, id, discovery, now);
        }
        self.check_listing(sim);
    }

    fn track_statuses(&mut self, sim: &Sim<DiscoveryNode>, now: Time) {
        for id in 0..sim.node_count().min(self.statuses.len() as u32) {
            let i = id as usize;
            let status = sim.status(id);
            let before = self.statuses[i];
            if status == before {
                continue;
            }
            if before == Some(NodeStatus::Paused) {
                self.resumed_at[i] = now;
            }
            self.down_since[i] = match status {
                Some(NodeStatus::Up) => None,
                _ => self.down_since[i].or(Some(now)),
            };
            self.statuses[i] = status;
        }
    }

    fn track_quiet(&mut self, sim: &Sim<DiscoveryNode>, now: Time) {
        let net = sim.network();
        if !self.clocks_touched {
            self.clocks_touched = (0..sim.node_count()).any(|id| {
                sim.clock(id)
                    .is_some_and(|c| c.skew_at(now) != 0 || c.drift_ppm() != 0)
            });
        }
        let quiet = self.bound_applies()
            && !self.clocks_touched
            && net.config() == &self.network
            && net.groups().is_empty()
            && net.one_way_cuts().is_empty()
            && !net.has_link_latency_overrides()
            && sim.status(REGISTRY) == Some(NodeStatus::Up);
        self.quiet_since = match (quiet, self.quiet_since) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
        };
    }

    fn read_routes(
        &mut self,
        sim: &Sim<DiscoveryNode>,
        decider: NodeId,
        discovery: Discovery,
        now: Time,
    ) {
        let Some(cache) = sim.node(decider).and_then(DiscoveryNode::cache) else {
            // Down: its counts start again when it boots.
            if sim.status(decider) == Some(NodeStatus::Crashed) {
                self.seen_routes[decider as usize] = 0;
            }
            return;
        };
        let seen = &mut self.seen_routes[decider as usize];
        if cache.routes < *seen {
            *seen = 0;
        }
        let new = (cache.routes - *seen) as usize;
        *seen = cache.routes;
        let targets: VecDeque<NodeId> = cache
            .recent
            .iter()
            .skip(cache.recent.len().saturating_sub(new))
            .copied()
            .collect();
        let registry = sim.node(REGISTRY).and_then(DiscoveryNode::registry);
        let bound = self.bound(discovery);
        for target in targets {
            let counts = match discovery {
                Discovery::ClientSide => &mut self.client_side,
                Discovery::ServerSide => &mut self.server_side,
            };
            let Some(died) = self.down_since.get(target as usize).copied().flatten() else {
                if registry.is_some_and(|r| !r.lists(target)) {
                    counts.to_unlisted += 1;
                } else {
                    counts.ok += 1;
                }
                continue;
            };
            counts.to_dead += 1;
            let dead_for = now.saturating_since(died);
            let judged = self.quiet_since.is_some_and(|q| q <= died)
                && self.resumed_at[decider as usize] <= died;
            if judged {
                let share = dead_for.0 as f64 / bound.0.max(1) as f64;
                self.closest_to_bound = self.closest_to_bound.max(share);
            }
            if dead_for > bound {
                counts.past_bound += 1;
                if judged && self.past_bound_breach.is_none() {
                    self.past_bound_breach = Some((
                        format!(
                            "at {now} n{decider} ({}) routed to n{target}, dead for {} ms, \
                             past the bound of {} ms",
                            discovery.label(),
                            dead_for.as_millis_f64(),
                            bound.as_millis_f64()
                        ),
                        vec![decider, target],
                    ));
                }
            }
        }
    }

    fn check_listing(&mut self, sim: &Sim<DiscoveryNode>) {
        if self.stale_listing_breach.is_some() || self.clocks_touched {
            return;
        }
        let (Some(registry), Some(clock)) = (
            sim.node(REGISTRY).and_then(DiscoveryNode::registry),
            sim.clock(REGISTRY),
        ) else {
            return;
        };
        if sim.status(REGISTRY) != Some(NodeStatus::Up) || registry.self_preserving {
            return;
        }
        let now = clock.local(sim.now());
        let resumed = clock.local(self.resumed_at[REGISTRY as usize]);
        for (&id, lease) in &registry.leases {
            let expired = lease.expires_at(self.ttl);
            // A registry paused past the expiry sweeps when it resumes: not judged.
            if resumed > expired {
                continue;
            }
            if now > expired.saturating_add(self.evict_every) {
                self.stale_listing_breach = Some((
                    format!(
                        "at {} the registry still lists n{id}, whose lease ran out at {expired} \
                         (its clock), more than one sweep ago",
                        sim.now()
                    ),
                    vec![REGISTRY, id],
                ));
                return;
            }
        }
    }
}
