//! One seed of the two-phase commit fault soak, as a pure function of the seed: 2 to 5
//! participants, cooperative termination on or off, a random nemesis script (crashes,
//! pauses, partitions including one-way ones, loss, duplication, reordering, clock skew)
//! plus crashes of the coordinator — some part-way through an event, between a write and
//! its fsync — with restarts, and a client issuing transactions on a few keys.
//!
//! Checked: atomicity after every event; after the final repair, that everything settles
//! (no vote pending, no participant uncertain, no lock held) and that every participant's
//! committed store is the same. Watched: the longest stretch during which the coordinator
//! was down and every live participant was uncertain about one transaction — the blocking
//! two-phase commit is known for, which the soak in the test run must find.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::consensus::twopc::harness::{AtomicityViolation, Blocking, Harness, Workload};
use crate::consensus::twopc::node::{COORDINATOR, TwoPcParams};
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::{Fault, NemesisConfig, NodeStatus, ScheduledFault, SimConfig};
use crate::time::{Duration, Time};

/// How hard each seed is pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Faults happen during `[0, fault_ms)`; at `fault_ms` everything is repaired.
    pub fault_ms: u64,
    /// After the repair, everything must settle within this much simulated time.
    pub settle_ms: u64,
    /// A seed that processes more events than this fails.
    pub max_events: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            fault_ms: 3_000,
            settle_ms: 5_000,
            max_events: 500_000,
        }
    }
}

/// Why a seed failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SoakFailure {
    Atomicity {
        violation: AtomicityViolation,
    },
    Liveness {
        detail: String,
    },
    /// Participants' committed stores differ after everything settled.
    Divergence {
        detail: String,
    },
    EventBudget {
        events: u64,
    },
}

impl fmt::Display for SoakFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoakFailure::Atomicity { violation } => write!(f, "{violation}"),
            SoakFailure::Liveness { detail } => write!(f, "liveness: {detail}"),
            SoakFailure::Divergence { detail } => write!(f, "divergence: {detail}"),
            SoakFailure::EventBudget { events } => write!(f, "more than {events} events"),
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u32,
    pub cooperative_termination: bool,
    pub faults: usize,
    pub events: u64,
    pub transactions: usize,
    pub committed: usize,
    pub crashes: u64,
    pub torn_writes: u64,
    /// The longest time participants were blocked with their locks held.
    pub blocking: Option<Blocking>,
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

/// Totals over many seeds; merges by addition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub events: u64,
    pub transactions: u64,
    pub committed: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub atomicity_violations: u64,
    pub liveness_failures: u64,
    pub other_failures: u64,
    /// Seeds in which participants were blocked, and the longest blocking (µs, seed).
    pub blocked_seeds: u64,
    pub longest_blocking_us: u64,
    pub longest_blocking_seed: Option<u64>,
    pub failed_seeds: Vec<u64>,
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.transactions += r.transactions as u64;
        self.committed += r.committed as u64;
        self.crashes += r.crashes;
        self.torn_writes += r.torn_writes;
        if let Some(b) = &r.blocking {
            self.blocked_seeds += 1;
            if b.lasted.0 > self.longest_blocking_us || self.longest_blocking_seed.is_none() {
                self.longest_blocking_us = b.lasted.0;
                self.longest_blocking_seed = Some(r.seed);
            }
        }
        if let Some(f) = &r.failure {
            match f {
                SoakFailure::Atomicity { .. } => self.atomicity_violations += 1,
                SoakFailure::Liveness { .. } => self.liveness_failures += 1,
                SoakFailure::Divergence { .. } | SoakFailure::EventBudget { .. } => {
                    self.other_failures += 1
                }
            }
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.events += o.events;
        self.transactions += o.transactions;
        self.committed += o.committed;
        self.crashes += o.crashes;
        self.torn_writes += o.torn_writes;
        self.atomicity_violations += o.atomicity_violations;
        self.liveness_failures += o.liveness_failures;
        self.other_failures += o.other_failures;
        self.blocked_seeds += o.blocked_seeds;
        if o.longest_blocking_seed.is_some()
            && (o.longest_blocking_us > self.longest_blocking_us
                || self.longest_blocking_seed.is_none())
        {
            self.longest_blocking_us = o.longest_blocking_us;
            self.longest_blocking_seed = o.longest_blocking_seed;
        }
        self.failed_seeds.extend_from_slice(&o.failed_seeds);
    }

    fn failures(&self) -> u64 {
        self.atomicity_violations + self.liveness_failures + self.other_failures
    }

    fn seeds(&self) -> u64 {
        self.seeds
    }

    fn failed_seeds(&self) -> &[u64] {
        &self.failed_seeds
    }
}

impl fmt::Display for SoakSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds, {} events, {} transactions ({} committed), {} crashes ({} torn writes), \
             {} atomicity violations, {} liveness failures, {} other failures, blocking in {} \
             seeds (longest {:.0} ms, seed {})",
            self.seeds,
            self.events,
            self.transactions,
            self.committed,
            self.crashes,
            self.torn_writes,
            self.atomicity_violations,
            self.liveness_failures,
            self.other_failures,
            self.blocked_seeds,
            self.longest_blocking_us as f64 / 1e3,
            self.longest_blocking_seed
                .map_or("none".into(), |s| s.to_string()),
        )
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 99);
    let nodes = 3 + rng.below(4) as u32;
    let params = TwoPcParams {
        cooperative_termination: rng.chance(0.7),
        vote_no_ppm: [0, 20_000, 100_000][rng.below(3) as usize % 3],
        ..TwoPcParams::default()
    };
    let mut report = SeedReport {
        seed,
        nodes,
        cooperative_termination: params.cooperative_termination,
        faults: 0,
        events: 0,
        transactions: 0,
        committed: 0,
        crashes: 0,
        torn_writes: 0,
        blocking: None,
        failure: None,
    };
    let repair = Time::from_millis(opts.fault_ms);
    let workload = Workload {
        stop_at: repair,
        ..Workload::default()
    };
    let sim_config = SimConfig {
        seed,
        nodes,
        clients: 1,
        record_trace: false,
        ..SimConfig::default()
    };
    let mut h = match Harness::new(sim_config, params, workload) {
        Ok(h) => h,
        Err(e) => {
            report.failure = Some(SoakFailure::Liveness {
                detail: format!("cannot build the cluster: {e}"),
            });
            return report;
        }
    };
    let nemesis = NemesisConfig {
        intensity: crate::bounded::Probability::saturating(0.2 + 0.6 * rng.next_f64()),
        duration_ms: opts.fault_ms as f64,
        mean_episode_ms: crate::bounded::Millis::of(300),
        max_skew_ms: 100.0,
        ..NemesisConfig::default()
    };
    let mut script = nemesis.generate(nodes, &mut rng).unwrap_or_default();
    // The coordinator's crashes, some part-way through an event (after its decision's
    // append but before its fsync, or between the fsync and the sends), each with a
    // restart after a while: the schedules that block participants.
    for _ in 0..rng.below(4) {
        let at = rng.below(repair.0);
        let back = (at + 100_000 + rng.below(800_000)).min(repair.0);
        let fault = if rng.chance(0.5) {
            Fault::Crash { node: COORDINATOR }
        } else {
            Fault::CrashMidEvent {
                node: COORDINATOR,
                effects: rng.below(6) as u32,
            }
        };
        script.faults.push(ScheduledFault { at_us: at, fault });
        script.faults.push(ScheduledFault {
            at_us: back,
            fault: Fault::Restart { node: COORDINATOR },
        });
    }
    script.faults.sort_by_key(|f| f.at_us);
    report.faults = script.faults.len();
    if let Err(e) = h.sim_mut().load_script(&script) {
        report.failure = Some(SoakFailure::Liveness {
            detail: format!("bad script: {e}"),
        });
        return report;
    }
    let max_events = opts.max_events;
    h.run_until_or(repair, |h| {
        h.sim().steps() > max_events || h.violation().is_some()
    });
    let bound = repair + Duration::from_millis(opts.settle_ms);
    let mut t = repair;
    let mut settled = false;
    while !settled && t < bound && h.violation().is_none() && h.sim().steps() <= max_events {
        // A crash scheduled part-way through an event fires at the node's next event,
        // which may come after the repair: restart whatever is still down.
        for id in 0..h.sim().node_count() {
            if h.sim().status(id) == Some(NodeStatus::Crashed) {
                let _ = h.sim_mut().apply_fault(&Fault::Restart { node: id });
            }
        }
        t = (t + Duration::from_millis(100)).min(bound);
        settled = h.run_until_or(t, |h| {
            h.sim().steps() > max_events || h.violation().is_some() || h.settled()
        }) && h.settled();
    }
    report.events = h.sim().steps();
    report.transactions = h.issued() as usize;
    report.committed = h.checker().counts().1;
    report.blocking = h.longest_blocking().cloned();
    for id in 0..h.sim().node_count() {
        if let Some(d) = h.sim().disk(id) {
            report.crashes += d.stats().crashes;
            report.torn_writes += d.stats().torn_writes;
        }
    }
    if let Some(v) = h.violation() {
        report.failure = Some(SoakFailure::Atomicity {
            violation: v.clone(),
        });
    } else if h.sim().steps() > max_events {
        report.failure = Some(SoakFailure::EventBudget { events: max_events });
    } else if !settled {
        let states: Vec<String> = (0..h.sim().node_count())
            .map(|id| match h.sim().node(id) {
                Some(n) => format!(
                    "n{id}: {} active, {} uncertain, locks {:?}",
                    n.active().len(),
                    n.uncertain().count(),
                    n.locks()
                ),
                None => format!("n{id}: down"),
            })
            .collect();
        report.failure = Some(SoakFailure::Liveness {
            detail: format!(
                "not settled {} ms after the repair: {}",
                opts.settle_ms,
                states.join("; ")
            ),
        });
    } else {
        let diverged = h.diverged_stores();
        if !diverged.is_empty() {
            report.failure = Some(SoakFailure::Divergence {
                detail: format!("participants {diverged:?} differ from participant 1"),
            });
        }
    }
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "2pc";
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
    fn a_seed_is_deterministic_and_passes() {
        let opts = SoakOptions::default();
        let a = run_seed(4, &opts);
        assert_eq!(a, run_seed(4, &opts));
        assert!(a.failure.is_none(), "{a:?}");
        assert!(a.committed > 5 && a.transactions > 20, "{a:?}");
    }
}
