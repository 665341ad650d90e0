//! One seed of the service-registry soak, as a pure function of the seed. Each seed draws
//! a cluster (2–6 instances, 1–3 client-side clients, 1–2 server-side clients) and its
//! timings (heartbeat, TTL of 2–4 heartbeats, sweep, refreshes, 1–20 ms latency), then
//! runs it twice with [`RouteAudit`] reading every event:
//!
//! 1. **Steady**: instances, clients and the router crash, restart, pause and resume at
//!    random for `fault_ms`, with no partition and no loss; then everything is repaired
//!    and left quiet. Checked: no route to an instance dead past the staleness bound
//!    `TTL + sweep + refresh + 3 × max latency`, and the registry's sweep rule.
//! 2. **Partitioned**: the same plus nodes cut off from the registry or isolated, the
//!    registry itself crashing or pausing, and on half the seeds up to 5 % loss. The
//!    bound is not promised here: routes past it are counted (the soak test requires it
//!    finds some), and the invariants are still checked where they are judged (the sweep
//!    rule always; the bound for instances that died after the network healed).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::Probability;
use crate::coordination::registry::audit::RouteAudit;
use crate::coordination::registry::lab::cut_from_registry;
use crate::coordination::registry::node::{DiscoveryNode, Layout, REGISTRY, RegistryConfig};
use crate::rng::SimRng;
use crate::sim::{Fault, LatencyModel, NetworkConfig, NodeId, NodeStatus, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The soak's options.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Faults happen during `[0, fault_ms)`; then the cluster is repaired and left quiet.
    pub fault_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { fault_ms: 3_000 }
    }
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub events: u64,
    pub faults: usize,
    /// Steady run: requests routed, and routed to a dead instance (all within the bound).
    pub routes: u64,
    pub to_dead: u64,
    /// Steady run: the largest share of its bound a judged route to a dead instance used.
    pub tightest: f64,
    /// Partitioned run: routes to an instance dead past the bound, and to an instance
    /// alive but evicted.
    pub stale_past_bound: u64,
    pub to_evicted_alive: u64,
    pub failure: Option<String>,
}

impl crate::sim::soak::SeedOutcome for SeedReport {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

/// Totals over many seeds; they merge by addition (and min / max).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub events: u64,
    pub routes: u64,
    pub to_dead: u64,
    pub tightest: f64,
    pub stale_past_bound: u64,
    pub to_evicted_alive: u64,
    /// The lowest seed whose partitioned run routed past the bound.
    pub first_stale_seed: Option<u64>,
    pub failed_seeds: Vec<u64>,
}

fn min_seed(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl crate::sim::soak::SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.routes += r.routes;
        self.to_dead += r.to_dead;
        self.tightest = self.tightest.max(r.tightest);
        self.stale_past_bound += r.stale_past_bound;
        self.to_evicted_alive += r.to_evicted_alive;
        if r.stale_past_bound > 0 {
            self.first_stale_seed = min_seed(self.first_stale_seed, Some(r.seed));
        }
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.events += o.events;
        self.routes += o.routes;
        self.to_dead += o.to_dead;
        self.tightest = self.tightest.max(o.tightest);
        self.stale_past_bound += o.stale_past_bound;
        self.to_evicted_alive += o.to_evicted_alive;
        self.first_stale_seed = min_seed(self.first_stale_seed, o.first_stale_seed);
        self.failed_seeds.extend_from_slice(&o.failed_seeds);
    }

    fn seeds(&self) -> u64 {
        self.seeds
    }

    fn failures(&self) -> u64 {
        self.failed_seeds.len() as u64
    }

    fn failed_seeds(&self) -> &[u64] {
        &self.failed_seeds
    }
}

impl fmt::Display for SoakSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds, {} events, {} failures; steady: {} routes, {} to a dead instance, \
             the closest route came to {:.0} % of its bound; partitioned: {} routes past the bound \
             (first seed {:?}), {} to an evicted but alive instance",
            self.seeds,
            self.events,
            self.failed_seeds.len(),
            self.routes,
            self.to_dead,
            self.tightest * 100.0,
            self.stale_past_bound,
            self.first_stale_seed,
            self.to_evicted_alive
        )
    }
}

/// A random fault schedule over the cluster, faults at `[0, fault_ms)`, sorted by time.
/// Steady: crashes, restarts, pauses and resumes of every node but the registry.
/// Partitioned: the registry too, and partitions.
fn schedule(
    rng: &mut SimRng,
    layout: Layout,
    fault_ms: u64,
    partitions: bool,
) -> Vec<(u64, Fault)> {
    let nodes = layout.nodes() as u64;
    let mut faults = Vec::new();
    let mut t = 0;
    loop {
        t += rng.range_inclusive(20, 300);
        if t >= fault_ms {
            break;
        }
        let node = if partitions {
            rng.below(nodes) as NodeId
        } else {
            1 + rng.below(nodes - 1) as NodeId
        };
        let kinds = if partitions { 8 } else { 4 };
        match rng.below(kinds) {
            0 => faults.push((t, Fault::Crash { node })),
            1 => faults.push((t, Fault::Restart { node })),
            2 => faults.push((t, Fault::Pause { node })),
            3 => faults.push((t, Fault::Resume { node })),
            4 | 5 if node != REGISTRY => {
                faults.extend(cut_from_registry(node).map(|f| (t, f)));
            }
            6 => faults.push((
                t,
                Fault::Partition {
                    groups: vec![vec![node]],
                },
            )),
            _ => faults.push((t, Fault::Heal)),
        }
    }
    faults
}

/// Schedules `faults`, runs to `fault_ms` observing every event, repairs everything, and
/// runs `quiet_ms` more.
fn run(
    sim: &mut Sim<DiscoveryNode>,
    audit: &mut RouteAudit,
    faults: &[(u64, Fault)],
    fault_ms: u64,
    quiet_ms: u64,
) -> Result<(), String> {
    for (t, f) in faults {
        sim.schedule_fault(Time::from_millis(*t), f.clone())
            .map_err(|e| e.to_string())?;
    }
    let go = |sim: &mut Sim<DiscoveryNode>, audit: &mut RouteAudit, end: Time| {
        audit.observe(sim);
        while sim.step_until(end).is_some() {
            audit.observe(sim);
        }
        sim.advance_clock(end);
    };
    go(sim, audit, Time::from_millis(fault_ms));
    let mut repairs = vec![
        Fault::Heal,
        Fault::SetLoss {
            probability: Probability::of(0.0),
        },
    ];
    for id in 0..sim.node_count() {
        match sim.status(id) {
            Some(NodeStatus::Paused) => repairs.push(Fault::Resume { node: id }),
            Some(NodeStatus::Crashed) => repairs.push(Fault::Restart { node: id }),
            _ => {}
        }
    }
    for f in &repairs {
        sim.apply_fault(f).map_err(|e| e.to_string())?;
    }
    go(sim, audit, Time::from_millis(fault_ms + quiet_ms));
    Ok(())
}

fn breaches(audit: &RouteAudit) -> Option<String> {
    audit
        .past_bound_breach
        .as_ref()
        .or(audit.stale_listing_breach.as_ref())
        .map(|(what, _)| what.clone())
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 0x5e41_57e7);
    let layout = Layout {
        instances: 2 + rng.below(5) as u32,
        client_side: 1 + rng.below(3) as u32,
        server_side: 1 + rng.below(2) as u32,
    };
    let heartbeat = rng.range_inclusive(50, 200);
    let client_refresh = rng.range_inclusive(50, 300);
    let config = RegistryConfig {
        layout,
        ttl: Duration::from_millis(heartbeat * rng.range_inclusive(2, 4)),
        heartbeat: Duration::from_millis(heartbeat),
        evict_every: Duration::from_millis(rng.range_inclusive(50, 300)),
        client_refresh: Duration::from_millis(client_refresh),
        router_refresh: Duration::from_millis(rng.range_inclusive(20, client_refresh)),
        request_every: Duration::from_millis(rng.range_inclusive(10, 40)),
        self_preservation_percent: None,
    };
    let network = NetworkConfig {
        latency: LatencyModel::Uniform {
            min_ms: 1.0,
            max_ms: rng.range_inclusive(1, 20) as f64,
        },
        ..NetworkConfig::default()
    };
    let mut report = SeedReport {
        seed,
        events: 0,
        faults: 0,
        routes: 0,
        to_dead: 0,
        tightest: 0.0,
        stale_past_bound: 0,
        to_evicted_alive: 0,
        failure: None,
    };
    let sim_config = |network: &NetworkConfig| SimConfig {
        seed,
        nodes: layout.nodes(),
        network: network.clone(),
        record_trace: false,
        ..SimConfig::default()
    };
    // Long enough for the slowest bound to pass after the repair, and then some.
    let quiet = |audit: &RouteAudit| {
        audit.client_bound.max(audit.router_bound).0 / 1_000 + config.heartbeat.0 / 1_000 + 200
    };

    // Steady: no partition, no loss.
    let faults = schedule(&mut rng, layout, opts.fault_ms, false);
    report.faults += faults.len();
    let mut sim = match Sim::<DiscoveryNode>::new(sim_config(&network), config) {
        Ok(s) => s,
        Err(e) => {
            report.failure = Some(format!("cannot build the cluster: {e}"));
            return report;
        }
    };
    let mut audit = RouteAudit::new(&config, &network);
    let quiet_ms = quiet(&audit);
    if let Err(e) = run(&mut sim, &mut audit, &faults, opts.fault_ms, quiet_ms) {
        report.failure = Some(format!("steady: {e}"));
        return report;
    }
    report.events += sim.steps();
    let (cs, ss) = (audit.client_side, audit.server_side);
    report.routes = cs.total() + ss.total();
    report.to_dead = cs.to_dead + ss.to_dead;
    report.tightest = audit.closest_to_bound;
    if let Some(b) = breaches(&audit) {
        report.failure = Some(format!("steady: {b}"));
        return report;
    }

    // Partitioned: the bound is not promised; stale routes are counted.
    let lossy = rng.chance(0.5);
    let network = NetworkConfig {
        loss: Probability::of(if lossy {
            rng.below(6) as f64 / 100.0
        } else {
            0.0
        }),
        ..network
    };
    let faults = schedule(&mut rng, layout, opts.fault_ms, true);
    report.faults += faults.len();
    let mut sim = match Sim::<DiscoveryNode>::new(sim_config(&network), config) {
        Ok(s) => s,
        Err(e) => {
            report.failure = Some(format!("cannot build the cluster: {e}"));
            return report;
        }
    };
    let mut audit = RouteAudit::new(&config, &network);
    if let Err(e) = run(&mut sim, &mut audit, &faults, opts.fault_ms, quiet_ms) {
        report.failure = Some(format!("partitioned: {e}"));
        return report;
    }
    report.events += sim.steps();
    let (cs, ss) = (audit.client_side, audit.server_side);
    report.stale_past_bound = cs.past_bound + ss.past_bound;
    report.to_evicted_alive = cs.to_unlisted + ss.to_unlisted;
    if let Some(b) = breaches(&audit) {
        report.failure = Some(format!("partitioned: {b}"));
    }
    report
}

impl crate::sim::soak::Soak for SoakOptions {
    const ID: &'static str = "registry";
    type Summary = SoakSummary;

    fn run_seed(&self, seed: u64) -> SeedReport {
        run_seed(seed, self)
    }

    fn fault_ms(&self) -> u64 {
        self.fault_ms
    }

    fn set_fault_ms(&mut self, ms: u64) {
        self.fault_ms = ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_routes_to_the_dead_within_the_bound_and_is_deterministic() {
        let opts = SoakOptions::default();
        let r = run_seed(1, &opts);
        assert!(r.failure.is_none(), "{r:?}");
        assert!(r.routes > 0 && r.faults > 0, "{r:?}");
        assert_eq!(r, run_seed(1, &opts));
    }
}
