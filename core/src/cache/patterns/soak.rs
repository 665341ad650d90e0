//! The soak of `cache.patterns`: each seed runs cache-aside twice on the same schedule —
//! without leases and with them — on a few hot keys, with a random application fill
//! delay, store latency, message loss (up to 5 %) and duplication, in about a third of
//! the seeds a crash and restart of the cache, and in half of them a cache too small for
//! the keys (2 to 9 entries), so evictions interleave with the race. The leased run must never return a stale
//! read (Nishtala et al., NSDI 2013, §3.2.1); the run without leases is there to show the
//! race is real, and the suite asserts that some seeds find it. `cargo xtask soak
//! cache-patterns` and tests/tests/cache_patterns.rs run the same [`run_seed`].

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::{Count, Millis, Probability};
use crate::cache::patterns::lab::{PatternsLab, PatternsLabConfig};
use crate::cache::patterns::node::{CACHE, Pattern};
use crate::lab::{Cluster, ClusterAction, ClusterLab, LabModel};
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::workload::ArrivalProcess;
use crate::sim::{Fault, NetworkConfig};
use crate::time::Time;

/// How a seed runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// How long each run takes requests, in ms.
    pub fault_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { fault_ms: 1_000 }
    }
}

/// What one seed did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub reads: u64,
    pub stale_without_leases: u64,
    pub stale_with_leases: u64,
    pub refused_fills: u64,
    /// Entries the leased run's cache evicted for room.
    pub evictions: u64,
    pub cache_crashed: bool,
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

/// Totals over seeds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub reads: u64,
    pub stale_without_leases: u64,
    /// Seeds whose run without leases returned a stale read, and the first of them.
    pub seeds_finding_the_race: u64,
    pub first_seed_finding_the_race: Option<u64>,
    pub stale_with_leases: u64,
    pub refused_fills: u64,
    #[serde(default)]
    pub evictions: u64,
    pub cache_crashes: u64,
    pub failed_seeds: Vec<u64>,
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.reads += r.reads;
        self.stale_without_leases += r.stale_without_leases;
        if r.stale_without_leases > 0 {
            self.seeds_finding_the_race += 1;
            if self.first_seed_finding_the_race.is_none_or(|s| r.seed < s) {
                self.first_seed_finding_the_race = Some(r.seed);
            }
        }
        self.stale_with_leases += r.stale_with_leases;
        self.refused_fills += r.refused_fills;
        self.evictions += r.evictions;
        self.cache_crashes += u64::from(r.cache_crashed);
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.reads += o.reads;
        self.stale_without_leases += o.stale_without_leases;
        self.seeds_finding_the_race += o.seeds_finding_the_race;
        if let Some(s) = o.first_seed_finding_the_race
            && self.first_seed_finding_the_race.is_none_or(|m| s < m)
        {
            self.first_seed_finding_the_race = Some(s);
        }
        self.stale_with_leases += o.stale_with_leases;
        self.refused_fills += o.refused_fills;
        self.evictions += o.evictions;
        self.cache_crashes += o.cache_crashes;
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
            "{} seeds, {} reads per variant; without leases {} stale reads in {} seeds (first \
             seed {}); with leases {} stale reads, {} fills refused, {} evictions; {} cache \
             crashes; {} failures",
            self.seeds,
            self.reads,
            self.stale_without_leases,
            self.seeds_finding_the_race,
            self.first_seed_finding_the_race
                .map_or("none".into(), |s| s.to_string()),
            self.stale_with_leases,
            self.refused_fills,
            self.evictions,
            self.cache_crashes,
            self.failed_seeds.len()
        )
    }
}

impl Soak for SoakOptions {
    const ID: &'static str = "cache-patterns";
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
    let mut rng = SimRng::derive(seed, 0xca5e);
    let e = |e: crate::error::DistlabError| e.to_string();
    let config = PatternsLabConfig {
        seed,
        pattern: Pattern::CacheAside,
        keys: Count::new("keys", 2 + rng.below(6) as u32).map_err(e)?,
        arrivals: ArrivalProcess::Poisson {
            rate_per_sec: 300.0,
        },
        write_probability: Probability::of(0.3),
        fill_delay_ms: Millis::new("fillDelayMs", rng.below(20) as f64).map_err(e)?,
        store_latency_ms: Millis::new("storeLatencyMs", 1.0 + rng.below(10) as f64).map_err(e)?,
        network: NetworkConfig {
            loss: Probability::saturating(0.05 * rng.next_f64()),
            duplicate: Probability::of(0.05),
            ..NetworkConfig::default()
        },
        ..Default::default()
    };
    let crash_at = rng.chance(0.3).then(|| rng.below(opts.fault_ms));
    report.cache_crashed = crash_at.is_some();
    let capacity = if rng.chance(0.5) {
        Count::new("capacity", 2 + rng.below(8) as u32).map_err(e)?
    } else {
        config.capacity
    };
    let run = |leases: bool| -> Result<Cluster<PatternsLab>, String> {
        let mut lab = Cluster::<PatternsLab>::new(&PatternsLabConfig {
            leases,
            capacity,
            ..config.clone()
        })
        .map_err(e)?;
        let step = |lab: &mut Cluster<PatternsLab>, ms: u64| {
            while lab.step_until(Time::from_millis(ms)) {}
        };
        if let Some(at) = crash_at {
            step(&mut lab, at);
            lab.act(&ClusterAction::Fault(Fault::Crash { node: CACHE }))
                .map_err(e)?;
            step(&mut lab, at + 50);
            lab.act(&ClusterAction::Fault(Fault::Restart { node: CACHE }))
                .map_err(e)?;
        }
        step(&mut lab, opts.fault_ms);
        Ok(lab)
    };
    let without = run(false)?;
    let with = run(true)?;
    report.reads = with.lab().checker().reads();
    report.stale_without_leases = without.lab().checker().stale_reads();
    report.stale_with_leases = with.lab().checker().stale_reads();
    report.refused_fills = with.lab().counts().refused_fills;
    report.evictions = with
        .lab()
        .sim()
        .node(CACHE)
        .map_or(0, |n| n.stats().evictions);
    match with.invariants().into_iter().find(|i| !i.ok) {
        Some(i) => Err(format!("with leases: {}", i.detail)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reports_what_it_did() {
        let r = run_seed(1, &SoakOptions::default());
        assert!(r.failure.is_none(), "{}", r.to_json());
        assert!(r.reads > 100, "{}", r.to_json());
        let mut total = SoakSummary::default();
        total.add(&r);
        let mut other = SoakSummary::default();
        other.merge(&total);
        assert_eq!(other, total);
        assert_eq!(SoakSummary::from_json(&total.to_json()).unwrap(), total);
    }
}
