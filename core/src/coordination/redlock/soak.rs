//! One seed of the Redlock soak, as a pure function of the seed: 2 to 4 clients, 3 or 5
//! lock stores, a TTL of 200 to 600 ms, up to 5 % message loss, and every clock drifting
//! by up to ±0.4 % (inside the 1 % drift factor, so drift alone must never break the
//! lock). The seed's remainder mod 4 picks what else happens: nothing; GC pauses of the
//! clients (half a TTL to two TTLs, about one a second each); forward clock jumps of the
//! stores (half a TTL to two TTLs, about one every 0.7 s each); or both.
//!
//! Checked after every event: the mutual-exclusion checker over who believes they hold
//! the lock ([`super::checker`]). A seed with neither pauses nor jumps fails if two
//! clients ever believe at once, and any seed fails if no client ever holds the lock.
//! With pauses or jumps an overlap is the known failure the soak in the test run must
//! find (Kleppmann 2016; antirez's reply): it is counted, with the first seed showing it,
//! not failed. Fencing is on: the late writes it refuses and those that pass it anyway
//! (the tokens are not a consensus counter) are counted too.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::bounded::{Count, Millis, Probability};
use crate::coordination::redlock::lab::{RedlockLab, RedlockLabConfig};
use crate::lab::ClusterLab;
use crate::rng::SimRng;
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::{Fault, FaultScript, NetworkConfig, ScheduledFault};
use crate::time::Time;

/// What a seed injects besides loss and drift, by `seed % 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Injected {
    Neither,
    Pauses,
    ClockJumps,
    Both,
}

impl Injected {
    pub const ALL: [Injected; 4] = [
        Injected::Neither,
        Injected::Pauses,
        Injected::ClockJumps,
        Injected::Both,
    ];

    pub fn of_seed(seed: u64) -> Injected {
        Injected::ALL
            .get((seed % 4) as usize)
            .copied()
            .unwrap_or(Injected::Neither)
    }

    fn index(self) -> usize {
        self as usize
    }

    fn pauses(self) -> bool {
        matches!(self, Injected::Pauses | Injected::Both)
    }

    fn jumps(self) -> bool {
        matches!(self, Injected::ClockJumps | Injected::Both)
    }
}

/// The soak's options.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Pauses and jumps happen during `[0, fault_ms)`; the run goes on one more second.
    pub fault_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { fault_ms: 4_000 }
    }
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub injected: Injected,
    pub clients: u32,
    pub stores: u32,
    pub ttl_ms: u64,
    pub faults: usize,
    pub events: u64,
    pub holds: u64,
    pub overlaps: u64,
    /// The first time two clients believed at once.
    pub first_overlap: Option<String>,
    /// Late writes (from a superseded hold) the fence refused, and those it let through.
    pub writes_fenced: u64,
    pub late_writes_landed: u64,
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

/// Totals over many seeds, per kind of injection (in [`Injected::ALL`]'s order); they
/// merge by addition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub events: u64,
    pub holds: u64,
    pub seeds_by_injection: [u64; 4],
    /// Seeds in which two clients believed at once.
    pub overlapping_seeds: [u64; 4],
    /// The smallest such seed.
    pub first_overlapping_seed: [Option<u64>; 4],
    pub writes_fenced: u64,
    pub late_writes_landed: u64,
    pub failed_seeds: Vec<u64>,
}

impl SoakSummary {
    /// Seeds with `injected` in which two clients believed at once, and the smallest one.
    pub fn overlaps(&self, injected: Injected) -> (u64, Option<u64>) {
        let i = injected.index();
        (
            self.overlapping_seeds.get(i).copied().unwrap_or(0),
            self.first_overlapping_seed.get(i).copied().flatten(),
        )
    }
}

fn min_seed(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.holds += r.holds;
        self.writes_fenced += r.writes_fenced;
        self.late_writes_landed += r.late_writes_landed;
        let i = r.injected.index();
        if let Some(n) = self.seeds_by_injection.get_mut(i) {
            *n += 1;
        }
        if r.overlaps > 0 {
            if let Some(n) = self.overlapping_seeds.get_mut(i) {
                *n += 1;
            }
            if let Some(first) = self.first_overlapping_seed.get_mut(i) {
                *first = min_seed(*first, Some(r.seed));
            }
        }
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.events += o.events;
        self.holds += o.holds;
        self.writes_fenced += o.writes_fenced;
        self.late_writes_landed += o.late_writes_landed;
        for i in 0..4 {
            if let (Some(a), Some(b)) = (
                self.seeds_by_injection.get_mut(i),
                o.seeds_by_injection.get(i),
            ) {
                *a += b;
            }
            if let (Some(a), Some(b)) = (
                self.overlapping_seeds.get_mut(i),
                o.overlapping_seeds.get(i),
            ) {
                *a += b;
            }
            if let (Some(a), Some(b)) = (
                self.first_overlapping_seed.get_mut(i),
                o.first_overlapping_seed.get(i),
            ) {
                *a = min_seed(*a, *b);
            }
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
            "{} seeds, {} events, {} holds, {} failures; two clients believing at once in",
            self.seeds,
            self.events,
            self.holds,
            self.failed_seeds.len()
        )?;
        for (i, injected) in Injected::ALL.iter().enumerate() {
            let (found, first) = self.overlaps(*injected);
            write!(
                f,
                "{} {found}/{} seeds with {injected:?} (first {})",
                if i == 0 { "" } else { "," },
                self.seeds_by_injection.get(i).copied().unwrap_or(0),
                first.map_or("none".into(), |s| s.to_string())
            )?;
        }
        write!(
            f,
            "; late writes fenced off {}, passed the fence {}",
            self.writes_fenced, self.late_writes_landed
        )
    }
}

/// The seed's config: the cluster, the network, and the fault script.
pub fn seed_config(seed: u64, opts: &SoakOptions) -> (Injected, RedlockLabConfig) {
    let injected = Injected::of_seed(seed);
    let mut rng = SimRng::derive(seed, 0x7ed1_0c4b);
    let clients = 2 + rng.below(3) as u32;
    let stores = if rng.chance(0.5) { 3 } else { 5 };
    let ttl_ms = 200 + rng.below(401);
    let loss = rng.below(6) as f64 / 100.0;
    let mut faults = Vec::new();
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    let first_store = 1 + clients;
    for node in 1..first_store + stores {
        let ppm = rng.below(8_001) as i64 - 4_000;
        faults.push(at(0, Fault::ClockDrift { node, ppm }));
    }
    if injected.pauses() {
        for node in 1..first_store {
            let mut t = rng.exponential(1_000.0) as u64;
            while t < opts.fault_ms {
                let pause = ttl_ms / 2 + rng.below(ttl_ms * 3 / 2);
                faults.push(at(t, Fault::Pause { node }));
                faults.push(at(t + pause, Fault::Resume { node }));
                t += pause + rng.exponential(1_000.0) as u64;
            }
        }
    }
    if injected.jumps() {
        for node in first_store..first_store + stores {
            let mut ahead_ms = 0;
            let mut t = rng.exponential(700.0) as u64;
            while t < opts.fault_ms {
                ahead_ms += ttl_ms / 2 + rng.below(ttl_ms * 3 / 2);
                faults.push(at(
                    t,
                    Fault::ClockSkew {
                        node,
                        skew_ms: ahead_ms as f64,
                    },
                ));
                t += rng.exponential(700.0) as u64;
            }
        }
    }
    faults.sort_by_key(|f| f.at_us);
    let config = RedlockLabConfig {
        seed,
        clients: Count::of(clients),
        stores: Count::of(stores),
        ttl_ms: Millis::of(ttl_ms as u32),
        prepare_ms: Millis::of(5 + rng.below(26) as u32),
        network: NetworkConfig {
            loss: Probability::of(loss),
            ..NetworkConfig::default()
        },
        faults: FaultScript { faults },
        ..RedlockLabConfig::default()
    };
    (injected, config)
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let (injected, config) = seed_config(seed, opts);
    let mut report = SeedReport {
        seed,
        injected,
        clients: config.clients.get(),
        stores: config.stores.get(),
        ttl_ms: config.ttl_ms.duration().0 / 1_000,
        faults: config.faults.faults.len(),
        events: 0,
        holds: 0,
        overlaps: 0,
        first_overlap: None,
        writes_fenced: 0,
        late_writes_landed: 0,
        failure: None,
    };
    let mut lab = match RedlockLab::build(&config, false) {
        Ok(l) => l,
        Err(e) => {
            report.failure = Some(format!("cannot build the cluster: {e}"));
            return report;
        }
    };
    let end = Time::from_millis(opts.fault_ms + 1_000);
    while let Some(next) = lab.sim().next_event_time() {
        if next > end {
            break;
        }
        if lab.step(next) {
            lab.observe();
        }
    }
    let m = lab.mutual_exclusion();
    report.events = lab.sim().steps();
    report.holds = m.holds();
    report.overlaps = m.overlaps();
    report.first_overlap = m.first_overlap().map(|o| o.to_string());
    report.writes_fenced = lab.storage().map_or(0, |s| s.rejected);
    report.late_writes_landed = lab.late_writes();
    report.failure = if report.holds == 0 {
        Some("no client ever held the lock".into())
    } else if injected == Injected::Neither {
        report
            .first_overlap
            .as_ref()
            .map(|o| format!("mutual exclusion broken with neither pauses nor clock jumps: {o}"))
    } else {
        None
    };
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "redlock";
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
