//! The soak of `cache.multilevel`: each seed runs the lab ([`super::lab`]) with 2–4
//! application nodes, a few hot keys and a random L1 TTL (50–300 ms). Half the seeds run
//! on a whole network; the other half lose up to 30 % of messages, duplicate 10 %, cut one
//! application node off the L2 for a while and crash and restart another. Every seed must
//! keep the bound the L1 TTL gives (no read behind by more than the TTL + the max
//! latency), and the whole-network seeds the tighter one (no more than the max latency).
//! `cargo xtask soak cache-multilevel` and tests/tests/cache_multilevel.rs run the same
//! [`run_seed`].

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::{Count, Millis, Probability};
use crate::cache::multilevel::lab::{MultilevelLab, MultilevelLabConfig};
use crate::lab::{Cluster, ClusterAction, ClusterLab, LabModel};
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::workload::ArrivalProcess;
use crate::sim::{Fault, NetworkConfig};
use crate::time::Time;

/// How a seed runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// How long the run takes requests, in ms.
    pub fault_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { fault_ms: 1_500 }
    }
}

/// What one seed did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub faulty: bool,
    pub reads: u64,
    pub stale_reads: u64,
    /// How far behind the furthest stale read was, and the bound, in ms.
    pub furthest_behind_ms: f64,
    pub bound_ms: f64,
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
    pub faulty_seeds: u64,
    pub reads: u64,
    pub stale_reads_faulty: u64,
    pub stale_reads_whole: u64,
    /// The largest (furthest behind) / (bound) over the faulty seeds, and its seed.
    pub closest_to_bound: f64,
    pub closest_seed: Option<u64>,
    pub failed_seeds: Vec<u64>,
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.reads += r.reads;
        if r.faulty {
            self.faulty_seeds += 1;
            self.stale_reads_faulty += r.stale_reads;
            let ratio = if r.bound_ms > 0.0 {
                r.furthest_behind_ms / r.bound_ms
            } else {
                0.0
            };
            if self.closest_seed.is_none() || ratio > self.closest_to_bound {
                self.closest_to_bound = ratio;
                self.closest_seed = Some(r.seed);
            }
        } else {
            self.stale_reads_whole += r.stale_reads;
        }
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.faulty_seeds += o.faulty_seeds;
        self.reads += o.reads;
        self.stale_reads_faulty += o.stale_reads_faulty;
        self.stale_reads_whole += o.stale_reads_whole;
        if o.closest_seed.is_some()
            && (self.closest_seed.is_none() || o.closest_to_bound > self.closest_to_bound)
        {
            self.closest_to_bound = o.closest_to_bound;
            self.closest_seed = o.closest_seed;
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
            "{} seeds ({} with faults), {} reads; stale reads: {} with faults, {} on a whole \
             network; furthest behind {:.2} of the bound (seed {}); {} failures",
            self.seeds,
            self.faulty_seeds,
            self.reads,
            self.stale_reads_faulty,
            self.stale_reads_whole,
            self.closest_to_bound,
            self.closest_seed.map_or("none".into(), |s| s.to_string()),
            self.failed_seeds.len()
        )
    }
}

impl Soak for SoakOptions {
    const ID: &'static str = "cache-multilevel";
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
    let mut rng = SimRng::derive(seed, 0x11e2);
    let e = |e: crate::error::DistlabError| e.to_string();
    let apps = 2 + rng.below(3) as u32;
    report.faulty = seed % 2 == 1;
    let network = if report.faulty {
        NetworkConfig {
            loss: Probability::saturating(0.3 * rng.next_f64()),
            duplicate: Probability::of(0.1),
            ..NetworkConfig::default()
        }
    } else {
        NetworkConfig::default()
    };
    let config = MultilevelLabConfig {
        seed,
        apps: Count::new("apps", apps).map_err(e)?,
        keys: Count::new("keys", 2 + rng.below(8) as u32).map_err(e)?,
        arrivals: ArrivalProcess::Poisson {
            rate_per_sec: 300.0,
        },
        write_probability: Probability::of(0.2),
        l1_ttl_ms: Millis::new("l1TtlMs", 50.0 + rng.below(251) as f64).map_err(e)?,
        network,
        ..Default::default()
    };
    let mut lab = Cluster::<MultilevelLab>::new(&config).map_err(e)?;
    let run = |lab: &mut Cluster<MultilevelLab>, ms: u64| {
        while lab.step_until(Time::from_millis(ms)) {}
    };
    let mut t = 0;
    if report.faulty {
        let l2 = apps;
        let cut = rng.below(u64::from(apps)) as u32;
        let crashed = (cut + 1) % apps;
        let fault = |lab: &mut Cluster<MultilevelLab>, f: Fault| {
            lab.act(&ClusterAction::Fault(f)).map_err(e)
        };
        t += 200 + rng.below(300);
        run(&mut lab, t);
        let others: Vec<u32> = (0..=l2).filter(|n| *n != cut).collect();
        fault(
            &mut lab,
            Fault::Partition {
                groups: vec![vec![cut], others],
            },
        )?;
        fault(&mut lab, Fault::Crash { node: crashed })?;
        t += 100 + rng.below(400);
        run(&mut lab, t);
        fault(&mut lab, Fault::Heal)?;
        fault(&mut lab, Fault::Restart { node: crashed })?;
    }
    run(&mut lab, opts.fault_ms.max(t));
    let l = lab.lab();
    let c = l.checker();
    report.reads = c.reads();
    report.stale_reads = c.stale_reads();
    report.furthest_behind_ms = c.oldest().map_or(0.0, |s| s.age.as_millis_f64());
    report.bound_ms = l.bound().as_millis_f64();
    if !report.faulty && l.lossy() {
        return Err("a whole-network seed saw loss".into());
    }
    match lab.invariants().into_iter().find(|i| !i.ok) {
        Some(i) => Err(format!("{}: {}", i.name, i.detail)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reports_what_it_did() {
        for seed in [1, 2] {
            let r = run_seed(seed, &SoakOptions::default());
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
}
