//! One seed of the PBFT fault soak, as a pure function of the seed: 4 or 7 replicas,
//! between 0 and f of them Byzantine (silent, equivocating or forging, chosen per seed),
//! a random nemesis script (pauses, partitions including one-way ones, loss, duplication,
//! reordering, clock skew) plus crashes — whole or part-way through an event — and
//! restarts, closed-loop clients that wait for f + 1 matching replies, the safety checker
//! among correct replicas after every event, liveness after the final repair, and the
//! clients' history checked for linearizability (raft's history conversion and the
//! checker in [`crate::sim::linearizability`]).
//!
//! The fault budget is the paper's: liars, crashed replicas and restarted replicas that
//! have not yet caught up (which forgot their votes) are at most f at once.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::consensus::kv_soak::{self, Schedule};
use crate::consensus::pbft::byzantine::Behaviour;
use crate::consensus::pbft::harness::Harness;
use crate::consensus::pbft::invariants::Violation;
use crate::consensus::pbft::replica::PbftParams;
use crate::consensus::raft::harness::LogicalOp;
use crate::consensus::vr::harness::Workload;
use crate::rng::SimRng;
use crate::sim::faults::FaultKinds;
use crate::sim::soak::{SeedOutcome, Soak, soak_summary};
use crate::sim::{Fault, NemesisConfig, NodeId, NodeStatus, SimConfig};
use crate::time::{Duration, Time};

/// How hard each seed is pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    pub fault_ms: u64,
    /// After the repair every command must be answered within this much simulated time.
    pub settle_ms: u64,
    pub max_events: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            fault_ms: 1_500,
            settle_ms: 8_000,
            max_events: 1_000_000,
        }
    }
}

/// Why a seed failed.
pub type SoakFailure = kv_soak::SoakFailure<Violation>;

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u32,
    pub byzantine: BTreeMap<NodeId, Behaviour>,
    pub faults: usize,
    pub events: u64,
    pub commands: usize,
    pub completed: usize,
    /// The highest sequence number a correct replica committed.
    pub committed: u64,
    pub crashes: u64,
    pub view_changes: u64,
    pub state_transfers: u64,
    pub forgeries_dropped: u64,
    pub failure: Option<SoakFailure>,
}

impl SeedOutcome for SeedReport {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn failure(&self) -> Option<String> {
        self.failure.as_ref().map(|f| f.to_string())
    }
}

soak_summary! {
    /// Totals over many seeds; merges by addition.
    pub struct SoakSummary for SeedReport {
        sum {
            byzantine_replicas: "Byzantine replicas",
            events: "events",
            commands: "commands",
            committed: "sequence numbers committed",
            crashes: "crashes",
            view_changes: "view changes",
            state_transfers: "state transfers",
            forgeries_dropped: "forgeries dropped",
        }
        failures {
            violations: "violations",
            liveness_failures: "liveness failures",
            linearizability_failures: "linearizability failures",
            other_failures: "other failures",
        }
    }
    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.byzantine_replicas += r.byzantine.len() as u64;
        self.events += r.events;
        self.commands += r.completed as u64;
        self.committed += r.committed;
        self.crashes += r.crashes;
        self.view_changes += r.view_changes;
        self.state_transfers += r.state_transfers;
        self.forgeries_dropped += r.forgeries_dropped;
        if let Some(f) = &r.failure {
            match f {
                SoakFailure::Invariant { .. } => self.violations += 1,
                SoakFailure::Liveness { .. } => self.liveness_failures += 1,
                SoakFailure::NotLinearizable { .. } => self.linearizability_failures += 1,
                SoakFailure::EventBudget { .. } => self.other_failures += 1,
            }
            self.failed_seeds.push(r.seed);
        }
    }
}

impl kv_soak::SoakCluster for Harness {
    type Violation = Violation;
    fn run_until_or(&mut self, t: Time, until: impl FnMut(&Self) -> bool) -> bool {
        Harness::run_until_or(self, t, until)
    }
    fn violation(&self) -> Option<&Violation> {
        Harness::violation(self)
    }
    fn events(&self) -> u64 {
        self.sim().steps()
    }
    fn pending(&self) -> usize {
        Harness::pending(self)
    }
    fn ops(&self) -> &[LogicalOp] {
        Harness::ops(self)
    }
}

/// Crashes and restarts within the budget: liars + crashed + recovering ≤ f.
struct Crasher {
    budget: usize,
    rate: f64,
    liars: Vec<NodeId>,
    down: BTreeMap<NodeId, Time>,
    crashes: u64,
}

impl Crasher {
    fn act(&mut self, h: &mut Harness, rng: &mut SimRng, allow_crash: bool) {
        let now = h.sim().now();
        let due: Vec<NodeId> = self
            .down
            .iter()
            .filter(|(n, at)| **at <= now && h.sim().status(**n) == Some(NodeStatus::Crashed))
            .map(|(n, _)| *n)
            .collect();
        for node in due {
            self.down.remove(&node);
            let _ = h.sim_mut().apply_fault(&Fault::Restart { node });
        }
        if !allow_crash || self.budget == 0 || !rng.chance(self.rate) {
            return;
        }
        let nodes = h.sim().node_count();
        let recovering = (0..nodes)
            .filter(|&i| h.sim().node(i).is_some_and(|r| r.recovering()))
            .count();
        if self.down.len() + recovering >= self.budget {
            return;
        }
        let node = rng.below(u64::from(nodes)) as NodeId;
        let up = h.sim().status(node) == Some(NodeStatus::Up);
        if self.liars.contains(&node) || self.down.contains_key(&node) || !up {
            return;
        }
        let fault = if rng.chance(0.5) {
            Fault::Crash { node }
        } else {
            Fault::CrashMidEvent {
                node,
                effects: rng.below(6) as u32,
            }
        };
        if h.sim_mut().apply_fault(&fault).is_ok() {
            self.crashes += 1;
            let back = now + Duration::from_millis(20 + rng.below(400));
            self.down.insert(node, back);
        }
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 98);
    let nodes: u32 = if rng.chance(0.6) { 4 } else { 7 };
    let f = (nodes as usize - 1) / 3;
    let liars_count = rng.below(f as u64 + 1) as usize;
    let mut byzantine = BTreeMap::new();
    while byzantine.len() < liars_count {
        let id = rng.below(u64::from(nodes)) as NodeId;
        let b = match rng.below(3) {
            0 => Behaviour::Silent,
            1 => Behaviour::Equivocate,
            _ => Behaviour::Forge,
        };
        byzantine.insert(id, b);
    }
    let mut report = SeedReport {
        seed,
        nodes,
        byzantine: byzantine.clone(),
        faults: 0,
        events: 0,
        commands: 0,
        completed: 0,
        committed: 0,
        crashes: 0,
        view_changes: 0,
        state_transfers: 0,
        forgeries_dropped: 0,
        failure: None,
    };
    let repair = Time::from_millis(opts.fault_ms);
    let workload = Workload {
        stop_at: repair,
        ..Workload::default()
    };
    let config = SimConfig {
        seed,
        nodes,
        clients: workload.clients,
        record_trace: false,
        ..SimConfig::default()
    };
    let params = PbftParams {
        key_secret: seed ^ 0x9e37_79b9,
        byzantine: byzantine.clone(),
        ..PbftParams::default()
    };
    let mut h = match Harness::new(config, params, workload) {
        Ok(h) => h,
        Err(e) => {
            report.failure = Some(SoakFailure::Liveness {
                detail: format!("cannot build the group: {e}"),
            });
            return report;
        }
    };
    let nemesis = NemesisConfig {
        intensity: crate::bounded::Probability::saturating(0.2 + 0.6 * rng.next_f64()),
        duration_ms: opts.fault_ms as f64,
        mean_episode_ms: crate::bounded::Millis::of(300),
        max_skew_ms: 100.0,
        kinds: FaultKinds {
            crash: false,
            ..FaultKinds::default()
        },
        ..NemesisConfig::default()
    };
    let script = nemesis.generate(nodes, &mut rng).unwrap_or_default();
    report.faults = script.faults.len();
    if let Err(e) = h.sim_mut().load_script(&script) {
        report.failure = Some(SoakFailure::Liveness {
            detail: format!("bad script: {e}"),
        });
        return report;
    }
    let mut crasher = Crasher {
        budget: f - liars_count,
        rate: 0.01 + 0.05 * rng.next_f64(),
        liars: byzantine.keys().copied().collect(),
        down: BTreeMap::new(),
        crashes: 0,
    };
    let schedule = Schedule {
        repair,
        settle: Duration::from_millis(opts.settle_ms),
        max_events: opts.max_events,
        slice: Some(Duration::from_millis(20)),
    };
    let live = kv_soak::play(&mut h, &schedule, |h, allowed| {
        crasher.act(h, &mut rng, allowed)
    });
    report.events = h.sim().steps();
    report.commands = h.ops().len();
    report.completed = h.completed();
    report.committed = h.checker().committed();
    report.crashes = crasher.crashes;
    for id in 0..h.sim().node_count() {
        if let Some(r) = h.sim().node(id) {
            report.view_changes += r.view_changes_started();
            report.state_transfers += r.state_transfers();
            report.forgeries_dropped += r.forgeries_dropped();
        }
    }
    report.failure = kv_soak::judge(&h, &schedule, live, || {
        kv_soak::progress("executed", &h.applied())
    });
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "pbft";
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
    fn seeds_are_deterministic_and_pass() {
        let opts = SoakOptions::default();
        let mut liars = 0;
        let mut crashes = 0;
        for seed in 0..12 {
            let r = run_seed(seed, &opts);
            assert!(r.failure.is_none(), "seed {seed}: {r:?}");
            assert!(r.completed > 5, "seed {seed}: {r:?}");
            liars += r.byzantine.len();
            crashes += r.crashes;
        }
        assert!(liars > 0 && crashes > 0, "{liars} liars, {crashes} crashes");
        assert_eq!(run_seed(3, &opts), run_seed(3, &opts));
    }
}
