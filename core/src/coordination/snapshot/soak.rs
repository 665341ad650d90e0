//! One seed of the snapshot soak, as a pure function of the seed: 3 to 6 branches moving
//! money every few milliseconds over FIFO links of 1 to 30 ms, and 4 to 12 snapshots
//! started at random times by random branches during the first `fault_ms` (several run
//! at once). The seed's remainder mod 3 picks what else happens in that window: nothing;
//! pauses, per-link latency changes and clock skew (FIFO still holds, so every snapshot
//! must complete and conserve the money); or one crash and restart besides.
//!
//! Checked: every snapshot that completes while the bank has lost nothing records
//! exactly the initial total; without a crash no message is dropped and every snapshot
//! completes within a second of quiet after the window; with a crash, the snapshots the
//! crashed node was recording never complete (counted as blocked), and none shows a
//! wrong total.

use serde::Serialize;

use crate::bounded::{Count, Millis};
use crate::coordination::snapshot::lab::{SnapshotLab, SnapshotLabAction, SnapshotLabConfig};
use crate::lab::ClusterLab;
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, soak_summary};
use crate::sim::{Fault, FaultScript, LatencyModel, NetworkConfig, ScheduledFault};
use crate::time::Time;

/// What a seed injects, by `seed % 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Regime {
    Quiet,
    Slow,
    Crash,
}

impl Regime {
    pub fn of_seed(seed: u64) -> Regime {
        match seed % 3 {
            0 => Regime::Quiet,
            1 => Regime::Slow,
            _ => Regime::Crash,
        }
    }
}

/// The soak's options.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Snapshots start and faults happen during `[0, fault_ms)`; one quiet second follows.
    pub fault_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { fault_ms: 600 }
    }
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub regime: Regime,
    pub nodes: u32,
    pub events: u64,
    pub started: u64,
    pub completed: u64,
    pub conserved: u64,
    pub not_judged: u64,
    /// Snapshots that never completed (a crashed node's).
    pub blocked: u64,
    /// Coins recorded on channels over the complete snapshots: the channel states matter.
    pub coins_on_channels: u64,
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
            started: "snapshots started",
            completed: "snapshots complete",
            conserved: "conserving the coins",
            not_judged: "not judged after a crash",
            blocked: "blocked by a crash",
            coins_on_channels: "coins recorded on channels",
            crash_seeds: "crash seeds",
        }
        failures {
        }
    }
    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.started += r.started;
        self.completed += r.completed;
        self.conserved += r.conserved;
        self.not_judged += r.not_judged;
        self.blocked += r.blocked;
        self.coins_on_channels += r.coins_on_channels;
        self.crash_seeds += u64::from(r.regime == Regime::Crash);
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }
}

/// The seed's lab config and its planned snapshots (time in ms, initiator).
pub fn seed_config(seed: u64, opts: &SoakOptions) -> (Regime, SnapshotLabConfig, Vec<(u64, u32)>) {
    let regime = Regime::of_seed(seed);
    let mut rng = SimRng::derive(seed, 0x5a4_5407);
    let nodes = rng.range_inclusive(3, 6) as u32;
    let window = opts.fault_ms.max(1);
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    let mut faults = Vec::new();
    if regime != Regime::Quiet {
        for _ in 0..rng.range_inclusive(1, 3) {
            let node = rng.below(nodes as u64) as u32;
            let start = rng.below(window);
            let end = (start + rng.range_inclusive(10, 200)).min(window);
            faults.push(at(start, Fault::Pause { node }));
            faults.push(at(end, Fault::Resume { node }));
        }
        for _ in 0..rng.range_inclusive(1, 4) {
            let from = rng.below(nodes as u64) as u32;
            let to = (from + 1 + rng.below(nodes as u64 - 1) as u32) % nodes;
            let ms = rng.range_inclusive(1, 60) as f64;
            faults.push(at(
                rng.below(window),
                Fault::SetLinkLatency {
                    from,
                    to,
                    latency: Some(LatencyModel::Constant { ms }),
                },
            ));
        }
        let node = rng.below(nodes as u64) as u32;
        let skew_ms = rng.range_inclusive(0, 400) as f64 - 200.0;
        faults.push(at(rng.below(window), Fault::ClockSkew { node, skew_ms }));
    }
    if regime == Regime::Crash {
        let node = rng.below(nodes as u64) as u32;
        let start = rng.below(window);
        faults.push(at(start, Fault::Crash { node }));
        faults.push(at(
            (start + rng.range_inclusive(20, 300)).min(window),
            Fault::Restart { node },
        ));
    }
    faults.sort_by_key(|f| f.at_us);
    let max_ms = rng.range_inclusive(2, 30) as f64;
    let config = SnapshotLabConfig {
        seed,
        nodes: Count::of(nodes),
        initial_balance: Count::of(rng.range_inclusive(20, 200) as u32),
        transfer_every_ms: Millis::of(rng.range_inclusive(2, 12) as u32),
        max_transfer: Count::of(rng.range_inclusive(1, 40) as u32),
        snapshot_every_ms: Millis::of(0),
        network: NetworkConfig {
            latency: LatencyModel::Uniform {
                min_ms: 1.0,
                max_ms,
            },
            ..NetworkConfig::default()
        },
        faults: FaultScript { faults },
        ..SnapshotLabConfig::default()
    };
    let mut snapshots: Vec<(u64, u32)> = (0..rng.range_inclusive(4, 12))
        .map(|_| (rng.below(window), rng.below(nodes as u64) as u32))
        .collect();
    snapshots.sort_unstable();
    (regime, config, snapshots)
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let (regime, config, planned) = seed_config(seed, opts);
    let mut report = SeedReport {
        seed,
        regime,
        nodes: config.nodes.get(),
        events: 0,
        started: 0,
        completed: 0,
        conserved: 0,
        not_judged: 0,
        blocked: 0,
        coins_on_channels: 0,
        failure: None,
    };
    let mut lab = match SnapshotLab::build(&config) {
        Ok(l) => l,
        Err(e) => {
            report.failure = Some(format!("cannot build the bank: {e}"));
            return report;
        }
    };
    for (ms, node) in planned {
        let t = Time::from_millis(ms);
        lab.run_until(t);
        lab.sim_mut().advance_clock(t);
        // A request to a crashed branch is dropped, like any message to it.
        if let Err(e) = lab.act(&SnapshotLabAction::StartSnapshot { node }) {
            report.failure = Some(format!("cannot start a snapshot at n{node}: {e}"));
            return report;
        }
    }
    lab.run_until(Time::from_millis(opts.fault_ms + 1_000));
    let (completed, conserved, wrong, not_judged) = lab.counts();
    report.events = lab.sim().steps();
    report.started = lab.snapshots().len() as u64;
    report.completed = completed;
    report.conserved = conserved;
    report.not_judged = not_judged;
    report.blocked = report.started.saturating_sub(completed);
    report.coins_on_channels = lab
        .snapshots()
        .values()
        .filter(|a| a.completed.is_some())
        .flat_map(|a| a.pieces.values())
        .map(|r| r.in_flight())
        .sum();
    report.failure = if wrong > 0 {
        lab.first_wrong()
            .map(|w| format!("a snapshot's total is wrong: {w}"))
    } else if regime != Regime::Crash {
        if let Some((at, why)) = lab.leak() {
            Some(format!(
                "without a crash the bank lost money at {:.1} ms: {why}",
                at.as_millis_f64()
            ))
        } else if report.blocked > 0 {
            Some(format!(
                "{} of {} snapshots never completed, with no crash",
                report.blocked, report.started
            ))
        } else if report.started == 0 {
            Some("no snapshot started".into())
        } else {
            None
        }
    } else {
        None
    };
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "snapshot";
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
    fn a_few_seeds_of_each_regime_pass_and_are_deterministic() {
        let opts = SoakOptions::default();
        for seed in 0..9 {
            let r = run_seed(seed, &opts);
            assert!(r.failure.is_none(), "seed {seed}: {:?}", r.failure);
            assert!(r.started > 0);
            if r.regime != Regime::Crash {
                assert_eq!(r.completed, r.started);
                assert_eq!(r.conserved, r.completed);
            }
            assert_eq!(r, run_seed(seed, &opts));
        }
    }
}
