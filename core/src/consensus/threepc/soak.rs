//! One seed of the three-phase commit fault soak, as a pure function of the seed: 2 to 5
//! participants and a client issuing transactions on a few keys, under one of two fault
//! regimes the seed picks.
//!
//! - *Crashes only* (crashes, some part-way through an event between a write and its
//!   fsync, and restarts, of any node and of the coordinator on purpose): atomicity must
//!   hold after every event, and three-phase commit must not block — a participant that
//!   voted yes and stayed up decides within [`SoakOptions::decide_within_ms`], whoever
//!   crashed. After the final repair everything settles and the stores agree.
//! - *Everything* (the random nemesis: partitions including one-way ones, loss,
//!   duplication, reordering, pauses, clock skew and crashes, plus partitions that cut the
//!   participants in two): three-phase commit is known to split here — one side's backup
//!   coordinator commits while the other's aborts. A split is not a failure of the seed but
//!   the finding the soak in the test run must make; a seed that does not split must
//!   still settle with agreeing stores.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::{Millis, Probability};
use crate::consensus::threepc::harness::{Harness, Undecided, Workload};
use crate::consensus::threepc::node::{COORDINATOR, ThreePcParams};
use crate::consensus::twopc::harness::AtomicityViolation;
use crate::rng::SimRng;
use crate::sim::faults::FaultKinds;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::{Fault, NemesisConfig, NodeId, NodeStatus, ScheduledFault, SimConfig};
use crate::time::{Duration, Time};

/// How hard each seed is pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Faults happen during `[0, fault_ms)`; at `fault_ms` everything is repaired.
    pub fault_ms: u64,
    /// After the repair, everything must settle within this much simulated time.
    pub settle_ms: u64,
    /// Under crashes only, a participant up since it voted must decide within this.
    pub decide_within_ms: u64,
    /// A seed that processes more events than this fails.
    pub max_events: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            fault_ms: 3_000,
            settle_ms: 5_000,
            decide_within_ms: 3_000,
            max_events: 500_000,
        }
    }
}

/// Which faults a seed suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Regime {
    CrashesOnly,
    Everything,
}

/// Why a seed failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SoakFailure {
    /// A split under crashes alone, which three-phase commit must never allow.
    Atomicity {
        violation: AtomicityViolation,
    },
    /// Under crashes alone, a live participant stayed undecided too long.
    Blocked {
        undecided: Undecided,
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
            SoakFailure::Atomicity { violation } => write!(f, "under crashes only, {violation}"),
            SoakFailure::Blocked { undecided: u } => write!(
                f,
                "blocked under crashes only: n{} undecided about tx {:#x} for {:.0} ms from \
                 t = {:.0} ms",
                u.node,
                u.tx,
                u.lasted.as_millis_f64(),
                u.since.as_millis_f64()
            ),
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
    pub regime: Regime,
    pub faults: usize,
    pub events: u64,
    pub transactions: usize,
    pub committed: usize,
    pub crashes: u64,
    pub torn_writes: u64,
    /// The longest a participant up since its vote stayed undecided.
    pub longest_undecided: Option<Undecided>,
    /// Under everything: the split decision found (the known failure, not the seed's).
    pub split: Option<AtomicityViolation>,
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
    pub crash_only_seeds: u64,
    pub events: u64,
    pub transactions: u64,
    pub committed: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub atomicity_violations: u64,
    pub blocked: u64,
    pub liveness_failures: u64,
    pub other_failures: u64,
    /// Under crashes only: the longest a live participant stayed undecided (µs, seed).
    pub longest_undecided_us: u64,
    pub longest_undecided_seed: Option<u64>,
    /// Seeds under everything whose two sides decided differently, and the lowest.
    pub split_seeds: u64,
    pub first_split_seed: Option<u64>,
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
        if r.regime == Regime::CrashesOnly {
            self.crash_only_seeds += 1;
            if let Some(u) = &r.longest_undecided
                && (u.lasted.0 > self.longest_undecided_us || self.longest_undecided_seed.is_none())
            {
                self.longest_undecided_us = u.lasted.0;
                self.longest_undecided_seed = Some(r.seed);
            }
        }
        if r.split.is_some() {
            self.split_seeds += 1;
            self.first_split_seed = Some(self.first_split_seed.map_or(r.seed, |s| s.min(r.seed)));
        }
        if let Some(f) = &r.failure {
            match f {
                SoakFailure::Atomicity { .. } => self.atomicity_violations += 1,
                SoakFailure::Blocked { .. } => self.blocked += 1,
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
        self.crash_only_seeds += o.crash_only_seeds;
        self.events += o.events;
        self.transactions += o.transactions;
        self.committed += o.committed;
        self.crashes += o.crashes;
        self.torn_writes += o.torn_writes;
        self.atomicity_violations += o.atomicity_violations;
        self.blocked += o.blocked;
        self.liveness_failures += o.liveness_failures;
        self.other_failures += o.other_failures;
        if o.longest_undecided_seed.is_some()
            && (o.longest_undecided_us > self.longest_undecided_us
                || self.longest_undecided_seed.is_none())
        {
            self.longest_undecided_us = o.longest_undecided_us;
            self.longest_undecided_seed = o.longest_undecided_seed;
        }
        self.split_seeds += o.split_seeds;
        self.first_split_seed = match (self.first_split_seed, o.first_split_seed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.failed_seeds.extend_from_slice(&o.failed_seeds);
    }

    fn failures(&self) -> u64 {
        self.atomicity_violations + self.blocked + self.liveness_failures + self.other_failures
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
            "{} seeds ({} crashes only), {} events, {} transactions ({} committed), {} crashes \
             ({} torn writes), {} atomicity violations and {} blockings under crashes only \
             (longest undecided {:.0} ms, seed {}), {} liveness failures, {} other failures; \
             split decisions found under partitions in {} seeds (first: {})",
            self.seeds,
            self.crash_only_seeds,
            self.events,
            self.transactions,
            self.committed,
            self.crashes,
            self.torn_writes,
            self.atomicity_violations,
            self.blocked,
            self.longest_undecided_us as f64 / 1e3,
            self.longest_undecided_seed
                .map_or("none".into(), |s| s.to_string()),
            self.liveness_failures,
            self.other_failures,
            self.split_seeds,
            self.first_split_seed
                .map_or("none".into(), |s| s.to_string()),
        )
    }
}

/// Partitions that cut the participants in two (the coordinator on one side), at random
/// moments: the schedules that split three-phase commit.
fn splitting_partitions(
    nodes: u32,
    repair: Time,
    rng: &mut SimRng,
    faults: &mut Vec<ScheduledFault>,
) {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(repair.0);
        let back = (at + 200_000 + rng.below(1_300_000)).min(repair.0);
        let mut side: Vec<NodeId> = vec![COORDINATOR];
        side.extend((1..nodes).filter(|_| rng.chance(0.5)));
        if side.len() == 1 {
            side.push(1);
        }
        if side.len() == nodes as usize {
            side.pop();
        }
        faults.push(ScheduledFault {
            at_us: at,
            fault: Fault::Partition { groups: vec![side] },
        });
        faults.push(ScheduledFault {
            at_us: back,
            fault: Fault::Heal,
        });
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 99);
    let nodes = 3 + rng.below(4) as u32;
    let regime = if rng.chance(0.5) {
        Regime::CrashesOnly
    } else {
        Regime::Everything
    };
    let params = ThreePcParams {
        vote_no_ppm: [0, 20_000, 100_000][rng.below(3) as usize % 3],
        ..ThreePcParams::default()
    };
    let mut report = SeedReport {
        seed,
        nodes,
        regime,
        faults: 0,
        events: 0,
        transactions: 0,
        committed: 0,
        crashes: 0,
        torn_writes: 0,
        longest_undecided: None,
        split: None,
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
    let kinds = match regime {
        Regime::CrashesOnly => FaultKinds {
            crash: true,
            pause: false,
            partition: false,
            one_way: false,
            loss: false,
            duplicate: false,
            reorder: false,
            clock: false,
        },
        Regime::Everything => FaultKinds::default(),
    };
    let nemesis = NemesisConfig {
        intensity: Probability::saturating(0.2 + 0.6 * rng.next_f64()),
        duration_ms: opts.fault_ms as f64,
        mean_episode_ms: Millis::of(300),
        max_skew_ms: 100.0,
        kinds,
        ..NemesisConfig::default()
    };
    let mut script = nemesis.generate(nodes, &mut rng).unwrap_or_default();
    // The coordinator's crashes, some part-way through an event (between sending
    // PreCommit to one participant and the next, say), each with a restart.
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
    if regime == Regime::Everything {
        splitting_partitions(nodes, repair, &mut rng, &mut script.faults);
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
    report.longest_undecided = h.longest_undecided();
    for id in 0..h.sim().node_count() {
        if let Some(d) = h.sim().disk(id) {
            report.crashes += d.stats().crashes;
            report.torn_writes += d.stats().torn_writes;
        }
    }
    if let Some(v) = h.violation() {
        match regime {
            Regime::CrashesOnly => {
                report.failure = Some(SoakFailure::Atomicity {
                    violation: v.clone(),
                })
            }
            Regime::Everything => report.split = Some(v.clone()),
        }
        return report;
    }
    if h.sim().steps() > max_events {
        report.failure = Some(SoakFailure::EventBudget { events: max_events });
    } else if regime == Regime::CrashesOnly
        && let Some(u) = report
            .longest_undecided
            .as_ref()
            .filter(|u| u.lasted > Duration::from_millis(opts.decide_within_ms))
    {
        report.failure = Some(SoakFailure::Blocked {
            undecided: u.clone(),
        });
    } else if !settled {
        let states: Vec<String> = (0..h.sim().node_count())
            .map(|id| match h.sim().node(id) {
                Some(n) => format!(
                    "n{id}: {} active, undecided {:?}, terminating {:?}",
                    n.active().len(),
                    n.undecided().collect::<Vec<_>>(),
                    n.terminating().keys().collect::<Vec<_>>(),
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
    const ID: &'static str = "3pc";
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
