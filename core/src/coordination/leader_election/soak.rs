//! One seed of the leader-election soak, as a pure function of the seed. The same random
//! fault schedule — crashes and restarts, pauses, partitions that cut one node off, up to
//! 5 % message loss — runs against both algorithms for `fault_ms`, then everything is
//! repaired (heal, restart, resume, no loss) and the cluster is left quiet.
//!
//! Lease ([`super::lease`]), 2 to 6 candidates and the store, a lease of 150 to 600 ms,
//! every clock drifting by up to ±4 % — inside the stated bound (no two clocks more than
//! the 10 % `driftMarginPpm` apart, no clock stepped). Checked after every event: never
//! two candidates holding a valid lease on their own clocks at once, and never two
//! leaders in one term; after the quiet spell every live candidate follows one leader.
//!
//! Bully ([`super::bully`]), 3 to 7 nodes: after the quiet spell every live node follows
//! the highest live id (the algorithm promises nothing while the network misbehaves).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::bounded::Probability;
use crate::coordination::leader_election::bully::{self, BullyConfig, BullyNode};
use crate::coordination::leader_election::lease::{
    self, FIRST_CANDIDATE, LeaseElectionConfig, LeaseNode, STORE,
};
use crate::rng::SimRng;
use crate::sim::node::Node;
use crate::sim::soak::{SeedOutcome, Soak, soak_summary};
use crate::sim::{Fault, NetworkConfig, NodeId, NodeStatus, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The drift margin the lease runs with, and the largest drift a clock is given (half of
/// it, so that two clocks differ by less than the margin).
pub const DRIFT_MARGIN_PPM: u64 = 100_000;
const MAX_DRIFT_PPM: u64 = 40_000;

const BULLY: BullyConfig = BullyConfig {
    heartbeat: Duration::from_millis(50),
    leader_timeout: Duration::from_millis(200),
    answer_timeout: Duration::from_millis(30),
    coordinator_timeout: Duration::from_millis(100),
};

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
    pub candidates: u32,
    pub lease_ms: u64,
    pub faults: usize,
    pub events: u64,
    /// Terms the store granted.
    pub terms: u64,
    /// Messages each run sent.
    pub lease_messages: u64,
    pub bully_messages: u64,
    pub failure: Option<String>,
}

impl SeedOutcome for SeedReport {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }
}

soak_summary! {
    /// Totals over many seeds; they merge by addition.
    pub struct SoakSummary for SeedReport {
        sum {
            events: "events",
            terms: "terms granted",
            lease_messages: "lease messages",
            bully_messages: "bully messages",
        }
        failures {
        }
    }
    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.terms += r.terms;
        self.lease_messages += r.lease_messages;
        self.bully_messages += r.bully_messages;
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }
}

/// A random fault schedule over `nodes` nodes, faults at `[0, fault_ms)`, sorted by time.
/// `pausable` says which nodes may be paused.
fn schedule(
    rng: &mut SimRng,
    nodes: u32,
    fault_ms: u64,
    pausable: impl Fn(NodeId) -> bool,
) -> Vec<(u64, Fault)> {
    let mut faults = Vec::new();
    let mut t = 0;
    loop {
        t += rng.range_inclusive(20, 300);
        if t >= fault_ms {
            break;
        }
        let node = rng.below(nodes as u64) as NodeId;
        let fault = match rng.below(6) {
            0 => Fault::Crash { node },
            1 => Fault::Restart { node },
            2 if pausable(node) => Fault::Pause { node },
            3 => Fault::Resume { node },
            4 => Fault::Partition {
                groups: vec![vec![node]],
            },
            _ => Fault::Heal,
        };
        faults.push((t, fault));
    }
    faults
}

/// Schedules `faults`, runs to `fault_ms` calling `check` after every event, repairs
/// everything, and runs `quiet_ms` more with the checks.
fn run<N: Node>(
    sim: &mut Sim<N>,
    faults: &[(u64, Fault)],
    fault_ms: u64,
    quiet_ms: u64,
    mut check: impl FnMut(&Sim<N>) -> Result<(), String>,
) -> Result<(), String> {
    for (t, f) in faults {
        sim.schedule_fault(Time::from_millis(*t), f.clone())
            .map_err(|e| e.to_string())?;
    }
    let mut go = |sim: &mut Sim<N>, end: Time| -> Result<(), String> {
        check(sim)?;
        while sim.step_until(end).is_some() {
            check(sim)?;
        }
        sim.advance_clock(end);
        Ok(())
    };
    go(sim, Time::from_millis(fault_ms))?;
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
    go(sim, Time::from_millis(fault_ms + quiet_ms))
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 0x1ead_e1ec);
    let candidates = 2 + rng.below(5) as u32;
    let lease_ms = 150 + rng.below(451);
    let loss = rng.below(6) as f64 / 100.0;
    let lease_nodes = FIRST_CANDIDATE + candidates;
    let faults = schedule(&mut rng, lease_nodes, opts.fault_ms, |_| true);
    let mut report = SeedReport {
        seed,
        candidates,
        lease_ms,
        faults: faults.len(),
        events: 0,
        terms: 0,
        lease_messages: 0,
        bully_messages: 0,
        failure: None,
    };
    let network = NetworkConfig {
        loss: Probability::of(loss),
        ..NetworkConfig::default()
    };
    let config = LeaseElectionConfig {
        lease: Duration::from_millis(lease_ms),
        renew: Duration::from_millis(lease_ms / 3),
        poll: Duration::from_millis(lease_ms / 3),
        drift_margin_ppm: DRIFT_MARGIN_PPM,
    };
    let sim_config = |nodes| SimConfig {
        seed,
        nodes,
        network: network.clone(),
        record_trace: false,
        ..SimConfig::default()
    };
    let mut sim = match Sim::<LeaseNode>::new(sim_config(lease_nodes), config) {
        Ok(s) => s,
        Err(e) => {
            report.failure = Some(format!("cannot build the lease cluster: {e}"));
            return report;
        }
    };
    for node in 0..lease_nodes {
        let ppm = rng.below(2 * MAX_DRIFT_PPM + 1) as i64 - MAX_DRIFT_PPM as i64;
        if let Err(e) = sim.apply_fault(&Fault::ClockDrift { node, ppm }) {
            report.failure = Some(e.to_string());
            return report;
        }
    }
    let mut leader_of_term: BTreeMap<u64, NodeId> = BTreeMap::new();
    let quiet_ms = 6 * lease_ms;
    let outcome = run(&mut sim, &faults, opts.fault_ms, quiet_ms, |sim| {
        let valid = lease::valid_leaders(sim);
        if valid.len() > 1 {
            return Err(format!(
                "at {} two valid leases at once: {valid:?} (node, term)",
                sim.now()
            ));
        }
        for id in FIRST_CANDIDATE..sim.node_count() {
            if let Some((term, _)) = sim.node(id).and_then(LeaseNode::leading) {
                let first = *leader_of_term.entry(term).or_insert(id);
                if first != id {
                    return Err(format!("n{first} and n{id} both led in term {term}"));
                }
            }
        }
        Ok(())
    })
    .and_then(|()| {
        lease::agreement(&sim)
            .map(|_| ())
            .map_err(|e| format!("lease: no agreement after the quiet spell: {e}"))
    });
    report.events += sim.steps();
    report.terms = sim
        .node(STORE)
        .and_then(LeaseNode::store)
        .map_or(0, |s| s.last_token);
    report.lease_messages = sim.net_stats().sent;
    if let Err(e) = outcome {
        report.failure = Some(format!("lease: {e}"));
        return report;
    }

    let bully_nodes = 3 + rng.below(5) as u32;
    let faults = schedule(&mut rng, bully_nodes, opts.fault_ms, |_| true);
    let mut sim = match Sim::<BullyNode>::new(sim_config(bully_nodes), BULLY) {
        Ok(s) => s,
        Err(e) => {
            report.failure = Some(format!("cannot build the bully cluster: {e}"));
            return report;
        }
    };
    let outcome = run(&mut sim, &faults, opts.fault_ms, 1_500, |_| Ok(())).and_then(|()| {
        bully::agreement(&sim)
            .map(|_| ())
            .map_err(|e| format!("bully: no agreement after the quiet spell: {e}"))
    });
    report.events += sim.steps();
    report.faults += faults.len();
    report.bully_messages = sim.net_stats().sent;
    report.failure = outcome.err();
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "leader-election";
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
