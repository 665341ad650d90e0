//! The nodes of the service-registry cluster: the registry server, the service instances
//! that register and renew their lease, the clients (client-side discovery: each caches
//! the instance list and refreshes it every `client_refresh`), and the router that
//! server-side clients send their requests through (it caches the list the same way,
//! refreshed every `router_refresh`).
//!
//! Layout: node 0 is the registry, node 1 the router, then the instances, then the
//! client-side clients, then the server-side clients ([`Layout`]).
//!
//! Every node's state is volatile: Eureka's registry is an in-memory map too, rebuilt after
//! a restart from the instances' next renewals (a renewal the registry does not know is
//! answered "unknown" — Eureka's 404 — and the instance registers again).

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::ops::Range;

use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The registry server.
pub const REGISTRY: NodeId = 0;
/// The router of server-side discovery.
pub const ROUTER: NodeId = 1;
/// The first service instance.
pub const FIRST_INSTANCE: NodeId = 2;

/// The registry's eviction sweep.
const EVICT_TIMER: TimerId = 1;
/// An instance's next lease renewal.
const RENEW_TIMER: TimerId = 2;
/// A client's or the router's next fetch of the instance list.
const REFRESH_TIMER: TimerId = 3;
/// A client's next request.
const REQUEST_TIMER: TimerId = 4;

/// Routes remembered per deciding node, for the audit that reads them after each event
/// (one event routes at most one request, so a few are plenty).
const RECENT_ROUTES: usize = 8;

/// How a client finds an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Discovery {
    /// The client caches the registry's list and picks an instance itself.
    ClientSide,
    /// The client sends every request to the router, which picks from its own cache.
    ServerSide,
}

impl Discovery {
    pub fn label(self) -> &'static str {
        match self {
            Discovery::ClientSide => "client-side",
            Discovery::ServerSide => "server-side",
        }
    }
}

/// Which node does what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    pub instances: u32,
    pub client_side: u32,
    pub server_side: u32,
}

/// What a node is, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Registry,
    Router,
    Instance,
    Client(Discovery),
}

impl Layout {
    /// Every node: registry, router, instances, clients.
    pub fn nodes(&self) -> u32 {
        FIRST_INSTANCE + self.instances + self.client_side + self.server_side
    }

    pub fn instances(&self) -> Range<NodeId> {
        FIRST_INSTANCE..FIRST_INSTANCE + self.instances
    }

    pub fn client_side_clients(&self) -> Range<NodeId> {
        let first = FIRST_INSTANCE + self.instances;
        first..first + self.client_side
    }

    pub fn server_side_clients(&self) -> Range<NodeId> {
        let first = FIRST_INSTANCE + self.instances + self.client_side;
        first..first + self.server_side
    }

    pub fn kind(&self, id: NodeId) -> Kind {
        if id == REGISTRY {
            Kind::Registry
        } else if id == ROUTER {
            Kind::Router
        } else if self.instances().contains(&id) {
            Kind::Instance
        } else if self.client_side_clients().contains(&id) {
            Kind::Client(Discovery::ClientSide)
        } else {
            Kind::Client(Discovery::ServerSide)
        }
    }

    /// The nodes that pick an instance (the client-side clients and the router), with the
    /// discovery they stand for.
    pub fn deciders(self) -> impl Iterator<Item = (NodeId, Discovery)> {
        std::iter::once((ROUTER, Discovery::ServerSide)).chain(
            self.client_side_clients()
                .map(|id| (id, Discovery::ClientSide)),
        )
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistryConfig {
    pub layout: Layout,
    /// How long a lease lasts after its last renewal, on the registry's clock (Eureka's
    /// lease expiration, 90 s; Consul's check TTL).
    pub ttl: Duration,
    /// Between an instance's renewals (Eureka's lease renewal interval, 30 s).
    pub heartbeat: Duration,
    /// Between the registry's eviction sweeps (Eureka's eviction interval, 60 s): an
    /// expired lease stays listed until the next sweep.
    pub evict_every: Duration,
    /// Between a client-side client's fetches of the list (Eureka's registry fetch
    /// interval, 30 s).
    pub client_refresh: Duration,
    /// Between the router's fetches.
    pub router_refresh: Duration,
    /// Between a client's requests.
    pub request_every: Duration,
    /// Eureka's self-preservation: a sweep evicts nothing when fewer renewals than this
    /// percentage of those expected since the previous sweep arrived. `None`: off.
    pub self_preservation_percent: Option<u32>,
}

/// Registry ↔ instance, registry ↔ client/router, and request messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegistryMessage {
    /// An instance asks to be listed.
    Register,
    Registered,
    /// An instance renews its lease.
    Renew,
    Renewed,
    /// The registry does not know the renewing instance (evicted, or the registry
    /// restarted): it must register again.
    Unknown,
    /// A client or the router asks for the list.
    Fetch {
        req: u64,
    },
    /// The listed instances, ascending.
    Instances {
        req: u64,
        instances: Vec<NodeId>,
    },
    /// A request for the service, on behalf of `client`.
    Call {
        call: u64,
        client: NodeId,
    },
    /// An instance served `call`.
    Served {
        call: u64,
        client: NodeId,
    },
}

impl Fingerprint for RegistryMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// One instance's lease, on the registry's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub registered_at: Time,
    pub last_renewal: Time,
}

impl Lease {
    /// When the lease runs out without another renewal.
    pub fn expires_at(&self, ttl: Duration) -> Time {
        self.last_renewal.saturating_add(ttl)
    }
}

/// The registry server's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RegistryServer {
    pub leases: BTreeMap<NodeId, Lease>,
    /// Renewals received since the previous sweep (for self-preservation).
    pub renewals_since_sweep: u64,
    /// Whether the last sweep held back evictions (self-preservation).
    pub self_preserving: bool,
    pub registrations: u64,
    pub evictions: u64,
}

impl RegistryServer {
    pub fn lists(&self, instance: NodeId) -> bool {
        self.leases.contains_key(&instance)
    }

    /// One eviction sweep at `now`: drops every lease that ran out, unless
    /// self-preservation holds them (fewer renewals arrived than `percent` of those the
    /// listed instances should have sent since the previous sweep).
    fn sweep(&mut self, now: Time, config: &RegistryConfig) -> Vec<NodeId> {
        let expected = self.leases.len() as u64 * config.evict_every.0 / config.heartbeat.0.max(1);
        let renewed = self.renewals_since_sweep;
        self.renewals_since_sweep = 0;
        self.self_preserving = config
            .self_preservation_percent
            .is_some_and(|p| renewed * 100 < expected * p as u64);
        if self.self_preserving {
            return Vec::new();
        }
        let expired: Vec<NodeId> = self
            .leases
            .iter()
            .filter(|(_, l)| now > l.expires_at(config.ttl))
            .map(|(&id, _)| id)
            .collect();
        for id in &expired {
            self.leases.remove(id);
        }
        self.evictions += expired.len() as u64;
        expired
    }
}

/// An instance's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InstanceState {
    /// Whether the registry last said it lists this instance.
    pub registered: bool,
    pub served: u64,
    pub renewals: u64,
    pub registrations: u64,
}

/// A cached instance list and the round-robin pick over it: what a client-side client
/// and the router keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DiscoveryCache {
    pub instances: Vec<NodeId>,
    /// When the cached answer arrived, on the node's clock (`None`: never).
    pub fetched_at: Option<Time>,
    /// Fetches sent; an answer to an older fetch than the newest answered is ignored.
    pub fetches: u64,
    pub newest_answer: u64,
    next_pick: u64,
    /// Requests routed, and the last few targets (newest last).
    pub routes: u64,
    pub recent: VecDeque<NodeId>,
    /// Requests that found the cache empty.
    pub no_instance: u64,
}

impl DiscoveryCache {
    fn fetch(&mut self, ctx_send: impl FnOnce(RegistryMessage)) {
        self.fetches += 1;
        ctx_send(RegistryMessage::Fetch { req: self.fetches });
    }

    fn answer(&mut self, req: u64, instances: Vec<NodeId>, now: Time) {
        if req > self.newest_answer {
            self.newest_answer = req;
            self.instances = instances;
            self.fetched_at = Some(now);
        }
    }

    /// Picks the next cached instance, round robin, and remembers the route.
    fn pick(&mut self) -> Option<NodeId> {
        if self.instances.is_empty() {
            self.no_instance += 1;
            return None;
        }
        let target = self.instances[(self.next_pick % self.instances.len() as u64) as usize];
        self.next_pick += 1;
        self.routes += 1;
        if self.recent.len() == RECENT_ROUTES {
            self.recent.pop_front();
        }
        self.recent.push_back(target);
        Some(target)
    }

    pub fn lists(&self, instance: NodeId) -> bool {
        self.instances.contains(&instance)
    }
}

/// A client's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientState {
    pub discovery: Discovery,
    /// The client's own cache (client-side discovery only).
    pub cache: Option<DiscoveryCache>,
    pub calls: u64,
    pub answered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Registry(RegistryServer),
    Router(DiscoveryCache),
    Instance(InstanceState),
    Client(ClientState),
}

/// A node of the registry cluster.
#[derive(Debug, Clone)]
pub struct DiscoveryNode {
    id: NodeId,
    config: RegistryConfig,
    role: Role,
}

impl Fingerprint for DiscoveryNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let DiscoveryNode { id, config, role } = self;
        (id, config, role).hash(h);
    }
}

impl DiscoveryNode {
    pub fn role_state(&self) -> &Role {
        &self.role
    }

    pub fn registry(&self) -> Option<&RegistryServer> {
        match &self.role {
            Role::Registry(r) => Some(r),
            _ => None,
        }
    }

    pub fn instance(&self) -> Option<&InstanceState> {
        match &self.role {
            Role::Instance(i) => Some(i),
            _ => None,
        }
    }

    pub fn client(&self) -> Option<&ClientState> {
        match &self.role {
            Role::Client(c) => Some(c),
            _ => None,
        }
    }

    /// The instance list this node picks from: the router's, or a client-side client's.
    pub fn cache(&self) -> Option<&DiscoveryCache> {
        match &self.role {
            Role::Router(c) => Some(c),
            Role::Client(c) => c.cache.as_ref(),
            _ => None,
        }
    }

    fn cache_mut(&mut self) -> Option<&mut DiscoveryCache> {
        match &mut self.role {
            Role::Router(c) => Some(c),
            Role::Client(c) => c.cache.as_mut(),
            _ => None,
        }
    }

    fn refresh_period(&self) -> Duration {
        match self.role {
            Role::Router(_) => self.config.router_refresh,
            _ => self.config.client_refresh,
        }
    }

    fn fetch(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(cache) = self.cache_mut() {
            cache.fetch(|m| ctx.send(REGISTRY, m));
        }
    }
}

/// A first timer somewhere in `(0, period]`, so that nodes started together do not act in
/// lockstep.
fn jittered(ctx: &mut Ctx<'_, DiscoveryNode>, period: Duration) -> Duration {
    Duration(1 + ctx.rng().below(period.0.max(1)))
}

impl Node for DiscoveryNode {
    type Message = RegistryMessage;
    type Request = ();
    type Response = ();
    type Config = RegistryConfig;

    fn recover(id: NodeId, config: &RegistryConfig, _disk: &Disk) -> Self {
        let role = match config.layout.kind(id) {
            Kind::Registry => Role::Registry(RegistryServer::default()),
            Kind::Router => Role::Router(DiscoveryCache::default()),
            Kind::Instance => Role::Instance(InstanceState::default()),
            Kind::Client(discovery) => Role::Client(ClientState {
                discovery,
                cache: (discovery == Discovery::ClientSide).then(DiscoveryCache::default),
                calls: 0,
                answered: 0,
            }),
        };
        DiscoveryNode {
            id,
            config: *config,
            role,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        let c = self.config;
        match &mut self.role {
            Role::Registry(_) => ctx.set_timer(EVICT_TIMER, c.evict_every),
            Role::Instance(i) => {
                i.registrations += 1;
                ctx.send(REGISTRY, RegistryMessage::Register);
                let first = jittered(ctx, c.heartbeat);
                ctx.set_timer(RENEW_TIMER, first);
            }
            Role::Router(_) | Role::Client(_) => {
                // Fetch at once, then every refresh period; a client starts requesting
                // at a random moment of its first period.
                self.fetch(ctx);
                if self.cache().is_some() {
                    ctx.set_timer(REFRESH_TIMER, self.refresh_period());
                }
                if matches!(self.role, Role::Client(_)) {
                    let first = jittered(ctx, c.request_every);
                    ctx.set_timer(REQUEST_TIMER, first);
                }
            }
        }
    }

    fn on_message(&mut self, from: NodeId, msg: RegistryMessage, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let id = self.id;
        match (&mut self.role, msg) {
            (Role::Registry(r), RegistryMessage::Register) => {
                if !self.config.layout.instances().contains(&from) {
                    return;
                }
                r.registrations += 1;
                let registered_at = r.leases.get(&from).map_or(now, |l| l.registered_at);
                r.leases.insert(
                    from,
                    Lease {
                        registered_at,
                        last_renewal: now,
                    },
                );
                ctx.send(from, RegistryMessage::Registered);
            }
            (Role::Registry(r), RegistryMessage::Renew) => match r.leases.get_mut(&from) {
                Some(lease) => {
                    lease.last_renewal = now;
                    r.renewals_since_sweep += 1;
                    ctx.send(from, RegistryMessage::Renewed);
                }
                None => ctx.send(from, RegistryMessage::Unknown),
            },
            (Role::Registry(r), RegistryMessage::Fetch { req }) => {
                let instances = r.leases.keys().copied().collect();
                ctx.send(from, RegistryMessage::Instances { req, instances });
            }
            (Role::Instance(i), RegistryMessage::Registered | RegistryMessage::Renewed) => {
                i.registered = true;
            }
            (Role::Instance(i), RegistryMessage::Unknown) => {
                i.registered = false;
                i.registrations += 1;
                ctx.send(REGISTRY, RegistryMessage::Register);
            }
            (Role::Instance(i), RegistryMessage::Call { call, client }) => {
                i.served += 1;
                ctx.send(from, RegistryMessage::Served { call, client });
            }
            (Role::Router(cache), RegistryMessage::Instances { req, instances }) => {
                cache.answer(req, instances, now);
            }
            (Role::Router(cache), RegistryMessage::Call { call, client }) => {
                if let Some(target) = cache.pick() {
                    ctx.send(target, RegistryMessage::Call { call, client });
                }
            }
            (Role::Router(_), RegistryMessage::Served { call, client }) => {
                ctx.send(client, RegistryMessage::Served { call, client });
            }
            (Role::Client(c), RegistryMessage::Instances { req, instances }) => {
                if let Some(cache) = &mut c.cache {
                    cache.answer(req, instances, now);
                }
            }
            (Role::Client(c), RegistryMessage::Served { client, .. }) if client == id => {
                c.answered += 1;
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let c = self.config;
        let now = ctx.now();
        let id = self.id;
        match (&mut self.role, timer) {
            (Role::Registry(r), EVICT_TIMER) => {
                let evicted = r.sweep(now, &c);
                if !evicted.is_empty() {
                    ctx.state_change(format!("evicted {evicted:?}"));
                }
                ctx.set_timer(EVICT_TIMER, c.evict_every);
            }
            (Role::Instance(i), RENEW_TIMER) => {
                i.renewals += 1;
                ctx.send(REGISTRY, RegistryMessage::Renew);
                ctx.set_timer(RENEW_TIMER, c.heartbeat);
            }
            (Role::Router(_) | Role::Client(_), REFRESH_TIMER) => {
                self.fetch(ctx);
                ctx.set_timer(REFRESH_TIMER, self.refresh_period());
            }
            (Role::Client(client), REQUEST_TIMER) => {
                client.calls += 1;
                let call = client.calls;
                let to = match &mut client.cache {
                    Some(cache) => cache.pick(),
                    None => Some(ROUTER),
                };
                if let Some(to) = to {
                    ctx.send(to, RegistryMessage::Call { call, client: id });
                }
                ctx.set_timer(REQUEST_TIMER, c.request_every);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, _request: ClientRequest<()>, _ctx: &mut Ctx<'_, Self>) {}

    fn message_kind(msg: &RegistryMessage) -> &'static str {
        match msg {
            RegistryMessage::Register => "register",
            RegistryMessage::Registered => "registered",
            RegistryMessage::Renew => "renew",
            RegistryMessage::Renewed => "renewed",
            RegistryMessage::Unknown => "unknown",
            RegistryMessage::Fetch { .. } => "fetch",
            RegistryMessage::Instances { .. } => "instances",
            RegistryMessage::Call { .. } => "call",
            RegistryMessage::Served { .. } => "served",
        }
    }

    fn role(&self) -> &'static str {
        match &self.role {
            Role::Registry(_) => "registry",
            Role::Router(_) => "router",
            Role::Instance(_) => "instance",
            Role::Client(c) => match c.discovery {
                Discovery::ClientSide => "client-side client",
                Discovery::ServerSide => "server-side client",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(self_preservation_percent: Option<u32>) -> RegistryConfig {
        RegistryConfig {
            layout: Layout {
                instances: 4,
                client_side: 1,
                server_side: 1,
            },
            ttl: Duration::from_millis(900),
            heartbeat: Duration::from_millis(300),
            evict_every: Duration::from_millis(600),
            client_refresh: Duration::from_millis(300),
            router_refresh: Duration::from_millis(100),
            request_every: Duration::from_millis(100),
            self_preservation_percent,
        }
    }

    fn lease(ms: u64) -> Lease {
        Lease {
            registered_at: Time::ZERO,
            last_renewal: Time::from_millis(ms),
        }
    }

    #[test]
    fn layout_names_every_node() {
        let l = config(None).layout;
        assert_eq!(l.nodes(), 8);
        assert_eq!(l.kind(0), Kind::Registry);
        assert_eq!(l.kind(1), Kind::Router);
        assert_eq!(l.kind(5), Kind::Instance);
        assert_eq!(l.kind(6), Kind::Client(Discovery::ClientSide));
        assert_eq!(l.kind(7), Kind::Client(Discovery::ServerSide));
        let deciders: Vec<_> = l.deciders().collect();
        assert_eq!(
            deciders,
            vec![(1, Discovery::ServerSide), (6, Discovery::ClientSide)]
        );
    }

    #[test]
    fn a_sweep_evicts_only_leases_past_their_ttl() {
        let c = config(None);
        let mut r = RegistryServer::default();
        r.leases.insert(2, lease(0));
        r.leases.insert(3, lease(500));
        // 2 expired at 900 ms, 3 expires at 1400 ms.
        assert_eq!(r.sweep(Time::from_millis(900), &c), Vec::<NodeId>::new());
        assert_eq!(r.sweep(Time::from_millis(1_000), &c), vec![2]);
        assert!(r.lists(3) && !r.lists(2));
        assert_eq!(r.evictions, 1);
    }

    #[test]
    fn self_preservation_holds_evictions_when_renewals_drop() {
        let c = config(Some(85));
        let mut r = RegistryServer::default();
        for id in 2..6 {
            r.leases.insert(id, lease(0));
        }
        // Four instances renewing every 300 ms should send 8 renewals per 600 ms sweep;
        // 6 arrived (75 %): the expired leases stay.
        r.renewals_since_sweep = 6;
        assert!(r.sweep(Time::from_millis(1_000), &c).is_empty());
        assert!(r.self_preserving);
        // 7 of 8 is 87.5 %: the sweep evicts again.
        r.renewals_since_sweep = 7;
        assert_eq!(r.sweep(Time::from_millis(1_600), &c).len(), 4);
        assert!(!r.self_preserving);
    }

    #[test]
    fn the_cache_ignores_an_older_answer_and_picks_round_robin() {
        let mut cache = DiscoveryCache::default();
        assert_eq!(cache.pick(), None);
        assert_eq!(cache.no_instance, 1);
        cache.answer(2, vec![2, 3], Time::from_millis(5));
        cache.answer(1, vec![4], Time::from_millis(6));
        assert_eq!(cache.instances, vec![2, 3]);
        let picks: Vec<_> = (0..3).filter_map(|_| cache.pick()).collect();
        assert_eq!(picks, vec![2, 3, 2]);
        assert_eq!(cache.routes, 3);
        for _ in 0..20 {
            cache.pick();
        }
        assert_eq!(cache.recent.len(), RECENT_ROUTES);
    }
}
