//! The fault soak of `cache.distributed`: each seed runs the lab ([`super::lab`]) on a
//! random cluster (1–3 replicas, one to three nodes more than that), adds and removes
//! nodes six times while the application reads and writes, under message loss (up to
//! 30 %), duplication (10 %) and, in about a third of the seeds, a member crashed until
//! the end; then the network heals, the crashed node restarts, requests stop, and within
//! `settle_ms` the migration must settle — every live node on the newest ring with every
//! push acknowledged — with each key's newest value on every live node of its preference
//! list. The suite (tests/tests/cache_distributed.rs) and `cargo xtask soak cache` run
//! the same [`run_seed`].

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::{Count, Probability};
use crate::cache::distributed::lab::{
    DistributedCacheLab, DistributedCacheLabAction, DistributedCacheLabConfig,
};
use crate::lab::{Cluster, ClusterAction, ClusterLab, LabModel};
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::{Fault, NodeId};
use crate::time::Time;

/// How a seed runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Ring changes (add or remove a node) per seed.
    pub changes: u32,
    /// How long the faults go on after the last ring change before the repair, in ms.
    pub fault_ms: u64,
    /// How long after the repair the migration has to settle, in ms.
    pub settle_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            changes: 6,
            fault_ms: 500,
            settle_ms: 5_000,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u32,
    pub replicas: u32,
    /// Ring changes the lab made (a refused one is not counted).
    pub ring_changes: u64,
    pub crashed: Option<NodeId>,
    pub reads: u64,
    pub hinted_hits: u64,
    pub misses_while_migrating: u64,
    pub stale_hits: u64,
    /// Milliseconds from the repair until the migration settled.
    pub settled_after_ms: Option<u64>,
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

/// Totals over seeds; they add up across threads and shards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub ring_changes: u64,
    pub crashes: u64,
    pub reads: u64,
    pub hinted_hits: u64,
    pub misses_while_migrating: u64,
    pub stale_hits: u64,
    /// The longest time any seed took to settle after the repair, and that seed.
    pub slowest_settle_ms: u64,
    pub slowest_settle_seed: Option<u64>,
    pub failed_seeds: Vec<u64>,
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.ring_changes += r.ring_changes;
        self.crashes += u64::from(r.crashed.is_some());
        self.reads += r.reads;
        self.hinted_hits += r.hinted_hits;
        self.misses_while_migrating += r.misses_while_migrating;
        self.stale_hits += r.stale_hits;
        if let Some(ms) = r.settled_after_ms
            && (ms > self.slowest_settle_ms || self.slowest_settle_seed.is_none())
        {
            self.slowest_settle_ms = ms;
            self.slowest_settle_seed = Some(r.seed);
        }
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.ring_changes += o.ring_changes;
        self.crashes += o.crashes;
        self.reads += o.reads;
        self.hinted_hits += o.hinted_hits;
        self.misses_while_migrating += o.misses_while_migrating;
        self.stale_hits += o.stale_hits;
        if o.slowest_settle_seed.is_some()
            && (o.slowest_settle_ms > self.slowest_settle_ms || self.slowest_settle_seed.is_none())
        {
            self.slowest_settle_ms = o.slowest_settle_ms;
            self.slowest_settle_seed = o.slowest_settle_seed;
        }
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
            "{} seeds, {} ring changes, {} crashes, {} reads ({} hinted hits, {} misses while \
             migrating, {} stale hits), slowest settle {} ms (seed {}), {} failures",
            self.seeds,
            self.ring_changes,
            self.crashes,
            self.reads,
            self.hinted_hits,
            self.misses_while_migrating,
            self.stale_hits,
            self.slowest_settle_ms,
            self.slowest_settle_seed
                .map_or("none".into(), |s| s.to_string()),
            self.failed_seeds.len(),
        )
    }
}

impl Soak for SoakOptions {
    const ID: &'static str = "cache";
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

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    if let Err(e) = drive(seed, opts, &mut report) {
        report.failure = Some(e);
    }
    report
}

fn drive(seed: u64, opts: &SoakOptions, report: &mut SeedReport) -> Result<(), String> {
    let mut rng = SimRng::derive(seed, 77);
    let replicas = 1 + rng.below(3) as u32;
    let nodes = replicas + 1 + rng.below(3) as u32;
    (report.nodes, report.replicas) = (nodes, replicas);
    let e = |e: crate::error::DistlabError| e.to_string();
    let config = DistributedCacheLabConfig {
        seed,
        nodes: Count::new("nodes", nodes).map_err(e)?,
        replicas: Count::new("replicas", replicas).map_err(e)?,
        ..Default::default()
    };
    let mut lab = Cluster::<DistributedCacheLab>::new(&config).map_err(e)?;
    let run = |lab: &mut Cluster<DistributedCacheLab>, ms: u64| {
        while lab.step_until(Time::from_millis(ms)) {}
    };
    let fault = |lab: &mut Cluster<DistributedCacheLab>, f: Fault| {
        lab.act(&ClusterAction::Fault(f)).map_err(e)
    };
    let loss = Probability::saturating(0.3 * rng.next_f64());
    fault(&mut lab, Fault::SetLoss { probability: loss })?;
    fault(
        &mut lab,
        Fault::SetDuplicate {
            probability: Probability::of(0.1),
        },
    )?;
    let mut t = 0;
    for _ in 0..opts.changes {
        t += 200 + rng.below(600);
        run(&mut lab, t);
        let members = lab.lab().membership().members.clone();
        let pick = |rng: &mut SimRng| members[rng.below(members.len() as u64) as usize];
        let action = match rng.below(4) {
            0 | 1 => DistributedCacheLabAction::AddNode {},
            _ => DistributedCacheLabAction::RemoveNode {
                node: pick(&mut rng),
            },
        };
        // An action the lab refuses (too few nodes left, no room) leaves it unchanged.
        let _ = lab.act(&ClusterAction::Lab(action));
        if report.crashed.is_none() && rng.chance(0.3) {
            let node = pick(&mut rng);
            fault(&mut lab, Fault::Crash { node })?;
            report.crashed = Some(node);
        }
    }
    t += opts.fault_ms;
    run(&mut lab, t);
    fault(&mut lab, Fault::Heal)?;
    fault(
        &mut lab,
        Fault::SetLoss {
            probability: Probability::of(0.0),
        },
    )?;
    if let Some(node) = report.crashed {
        fault(&mut lab, Fault::Restart { node })?;
    }
    lab.act(&ClusterAction::Lab(
        DistributedCacheLabAction::StopRequests {},
    ))
    .map_err(e)?;
    let repaired = t;
    // Step in slices so the report says when it settled.
    while t < repaired + opts.settle_ms && report.settled_after_ms.is_none() {
        t += 10;
        run(&mut lab, t);
        if lab.lab().settled() {
            report.settled_after_ms = Some(t - repaired);
        }
    }
    let l = lab.lab();
    let c = l.counts();
    report.ring_changes = l.changes().back().map_or(0, |c| c.epoch - 1);
    report.reads = c.gets;
    report.hinted_hits = c.hinted_hits;
    report.misses_while_migrating = c.misses_migrating;
    report.stale_hits = c.stale_hits;
    if report.settled_after_ms.is_none() {
        return Err(format!(
            "liveness: did not settle {} ms after the repair: {}",
            opts.settle_ms,
            l.unsettled()
        ));
    }
    match l.invariants().into_iter().find(|i| !i.ok) {
        Some(i) => Err(i.detail),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reports_what_it_did_and_settles() {
        let r = run_seed(1, &SoakOptions::default());
        assert!(r.failure.is_none(), "{}", r.to_json());
        assert!(r.ring_changes > 0 && r.reads > 0, "{}", r.to_json());
        assert!(r.settled_after_ms.is_some());
        let mut total = SoakSummary::default();
        total.add(&r);
        let mut other = SoakSummary::default();
        other.merge(&total);
        assert_eq!(other, total);
        assert_eq!(SoakSummary::from_json(&total.to_json()).unwrap(), total);
    }
}
