//! One seed of the quorum soak, as a pure function of the seed: 3 or 5 nodes, N = 3 or 5
//! replicas with R + W > N, one random nemesis script (crashes, pauses, partitions
//! including one-way ones, loss, duplication, reordering, clock skew) plus crashes
//! part-way through an event, run twice — ABD and plain — with the same clients, the same
//! faults and the same network draws. Both histories go to the linearizability checker:
//! ABD's must always pass, and the soak counts the seeds where plain R + W > N is caught
//! not linearizable (the test asserts it finds some). After the final repair every
//! operation either mode starts must be answered (liveness).
//!
//! Both runs have Merkle-tree anti-entropy on (Dynamo section 4.7), and on odd seeds the
//! plain run uses sloppy quorums with hinted handoff (section 4.6). Once the clients
//! have stopped, every node is up and the network is healed, every key's home replicas
//! must converge to one version and every hint must be handed off (convergence).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use crate::bounded::{Millis, Probability};
use crate::consistency::quorum::harness::{Harness, Workload};
use crate::consistency::quorum::node::{
    AntiEntropy, Mode, QuorumNode, QuorumParams, Tag, preference_list,
};
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::linearizability::{
    CheckResult, KvInput, KvModel, KvOutput, Model, Operation, PartitionOutcome, Verdict,
};
use crate::sim::soak::{SeedOutcome, Soak, SoakTotals};
use crate::sim::{Fault, FaultScript, NemesisConfig, NodeStatus, ScheduledFault, Sim, SimConfig};
use crate::time::{Duration, Time};

/// How hard each seed is pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    pub fault_ms: u64,
    /// Clients go on this long after the repair; what they start from `settle_ms / 4`
    /// after it (after the last crash armed before it fired and was restarted) must be
    /// answered.
    pub settle_ms: u64,
    /// The checker's step budget per history.
    pub check_steps: u64,
    /// After the clients stop and everything is healed, replicas must converge within
    /// this long.
    pub converge_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            fault_ms: 1_500,
            settle_ms: 1_000,
            check_steps: 2_000_000,
            converge_ms: 2_000,
        }
    }
}

/// What one mode did on a seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeReport {
    pub mode: Mode,
    pub events: u64,
    pub operations: usize,
    pub completed: usize,
    pub verdict: Verdict,
    pub check_steps: u64,
    /// Operations started after the repair settled that were not answered.
    pub unanswered_after_repair: usize,
    /// The operations that cannot go next, if the history is not linearizable.
    pub violation: Option<String>,
    /// Sloppy quorums with hinted handoff were on.
    pub sloppy: bool,
    /// How long the replicas took to converge after the heal, or what still differed
    /// when the time ran out.
    pub converged_after_ms: Option<u64>,
    pub divergence: Option<String>,
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u32,
    pub n: u32,
    pub r: u32,
    pub w: u32,
    pub faults: usize,
    pub abd: ModeReport,
    pub plain: ModeReport,
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

/// Totals over many seeds; merges by addition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakSummary {
    pub seeds: u64,
    pub events: u64,
    pub operations: u64,
    pub abd_not_linearizable: u64,
    pub undecided: u64,
    pub liveness_failures: u64,
    /// Runs whose replicas had not converged when the convergence time ran out.
    pub not_converged: u64,
    /// Runs with sloppy quorums (plain, odd seeds) and how many were not linearizable.
    pub sloppy_runs: u64,
    pub sloppy_not_linearizable: u64,
    /// Seeds whose plain history the checker caught not linearizable.
    pub plain_not_linearizable: u64,
    /// The lowest such seed.
    pub first_plain_violation: Option<u64>,
    pub failed_seeds: Vec<u64>,
}

impl SoakTotals for SoakSummary {
    type Report = SeedReport;

    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        for m in [&r.abd, &r.plain] {
            self.events += m.events;
            self.operations += m.operations as u64;
            if m.verdict == Verdict::Undecided {
                self.undecided += 1;
            }
            if m.unanswered_after_repair > 0 {
                self.liveness_failures += 1;
            }
            if m.divergence.is_some() {
                self.not_converged += 1;
            }
            if m.sloppy {
                self.sloppy_runs += 1;
                if m.verdict == Verdict::NotLinearizable {
                    self.sloppy_not_linearizable += 1;
                }
            }
        }
        if r.abd.verdict == Verdict::NotLinearizable {
            self.abd_not_linearizable += 1;
        }
        if r.plain.verdict == Verdict::NotLinearizable {
            self.plain_not_linearizable += 1;
            self.first_plain_violation = Some(
                self.first_plain_violation
                    .map_or(r.seed, |s: u64| s.min(r.seed)),
            );
        }
        if r.failure.is_some() {
            self.failed_seeds.push(r.seed);
        }
    }

    fn merge(&mut self, o: &Self) {
        self.seeds += o.seeds;
        self.events += o.events;
        self.operations += o.operations;
        self.abd_not_linearizable += o.abd_not_linearizable;
        self.undecided += o.undecided;
        self.liveness_failures += o.liveness_failures;
        self.not_converged += o.not_converged;
        self.sloppy_runs += o.sloppy_runs;
        self.sloppy_not_linearizable += o.sloppy_not_linearizable;
        self.plain_not_linearizable += o.plain_not_linearizable;
        self.first_plain_violation = match (self.first_plain_violation, o.first_plain_violation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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
            "{} seeds, {} events, {} operations; ABD: {} not linearizable; plain R+W>N: {} \
             seeds not linearizable (first: {}), with sloppy quorums {} of {} runs; {} \
             undecided, {} liveness failures, {} runs not converged, {} failed seeds",
            self.seeds,
            self.events,
            self.operations,
            self.abd_not_linearizable,
            self.plain_not_linearizable,
            self.first_plain_violation
                .map_or("none".to_string(), |s| s.to_string()),
            self.sloppy_not_linearizable,
            self.sloppy_runs,
            self.undecided,
            self.liveness_failures,
            self.not_converged,
            self.failed_seeds.len()
        )
    }
}

/// The operations a violation could not place next, in words.
pub fn describe_violation(result: &CheckResult, ops: &[Operation<KvInput, KvOutput>]) -> String {
    let Some(part) = result.violations().next() else {
        return String::new();
    };
    let PartitionOutcome::Violation {
        unplaceable, state, ..
    } = &part.outcome
    else {
        return String::new();
    };
    let what: Vec<String> = unplaceable
        .iter()
        .filter_map(|&i| ops.get(i))
        .map(|o| {
            format!(
                "c{} {} [{} µs, {}]",
                o.client,
                KvModel.describe(&o.input, &o.output),
                o.call,
                o.ret
                    .map_or("never returned".to_string(), |r| format!("{r} µs"))
            )
        })
        .collect();
    format!("with the key at {state}, none of: {}", what.join("; "))
}

/// What keeps the replicas from having converged, if anything: a key whose home
/// replicas hold different versions (or are down), or a hint not yet handed off.
pub fn divergence(sim: &Sim<QuorumNode>) -> Option<String> {
    let nodes = sim.node_count();
    let n = sim.node_config().n;
    let mut keys = BTreeSet::new();
    for id in 0..nodes {
        let node = sim.node(id)?;
        keys.extend(node.store().keys().cloned());
        if let Some((intended, held)) = node.hints().iter().find(|(_, h)| !h.is_empty()) {
            return Some(format!(
                "n{id} still holds {} hinted copies for n{intended}",
                held.len()
            ));
        }
    }
    for key in keys {
        let homes = preference_list(&key, n, nodes);
        let held: Vec<Option<Tag>> = homes
            .iter()
            .map(|&h| {
                sim.node(h)
                    .and_then(|r| r.store().get(&key).map(|(t, _)| *t))
            })
            .collect();
        if held.windows(2).any(|w| w[0] != w[1]) {
            let what: Vec<String> = homes
                .iter()
                .zip(&held)
                .map(|(h, t)| format!("n{h} {}", t.map_or("none".into(), |t| t.to_string())))
                .collect();
            return Some(format!("{key}: {}", what.join(", ")));
        }
    }
    None
}

/// The seed's cluster shape: nodes, and N, R, W with R + W > N.
fn shape(rng: &mut SimRng) -> (u32, u32, u32, u32) {
    let nodes = if rng.chance(0.5) { 3 } else { 5 };
    let n = if nodes == 5 && rng.chance(0.5) { 5 } else { 3 };
    // Majorities most often; the others lean reads or writes heavier, R + W > N always.
    let choices: &[(u32, u32)] = if n == 3 {
        &[(2, 2), (2, 2), (3, 1), (1, 3)]
    } else {
        &[(3, 3), (3, 3), (2, 4), (4, 2), (5, 1), (1, 5)]
    };
    let (r, w) = choices
        .get(rng.below(choices.len() as u64) as usize)
        .copied()
        .unwrap_or((n, n));
    (nodes, n, r, w)
}

fn script(rng: &mut SimRng, nodes: u32, opts: &SoakOptions) -> FaultScript {
    let repair = opts.fault_ms * 1_000;
    let nemesis = NemesisConfig {
        intensity: Probability::saturating(0.3 + 0.6 * rng.next_f64()),
        duration_ms: opts.fault_ms as f64,
        mean_episode_ms: Millis::of(200),
        max_skew_ms: 50.0,
        ..NemesisConfig::default()
    };
    let mut script = nemesis.generate(nodes, rng).unwrap_or_default();
    for _ in 0..rng.below(4) {
        let node = rng.below(u64::from(nodes)) as u32;
        let at = rng.below(repair);
        let back = (at + 20_000 + rng.below(300_000)).min(repair);
        script.faults.push(ScheduledFault {
            at_us: at,
            fault: Fault::CrashMidEvent {
                node,
                effects: rng.below(6) as u32,
            },
        });
        script.faults.push(ScheduledFault {
            at_us: back,
            fault: Fault::Restart { node },
        });
    }
    script.faults.sort_by_key(|f| f.at_us);
    script
}

/// Runs one mode on the seed's cluster and script.
fn run_mode(
    seed: u64,
    params: QuorumParams,
    nodes: u32,
    script: &FaultScript,
    opts: &SoakOptions,
) -> std::result::Result<ModeReport, String> {
    let mode = params.mode;
    let repair = Time::from_millis(opts.fault_ms);
    let end = repair + Duration::from_millis(opts.settle_ms);
    let workload = Workload {
        stop_at: end,
        ..Workload::default()
    };
    let config = SimConfig {
        seed,
        nodes,
        clients: workload.clients,
        record_trace: false,
        ..SimConfig::default()
    };
    let mut h = Harness::new(config, params, workload).map_err(|e| e.to_string())?;
    h.sim_mut().load_script(script).map_err(|e| e.to_string())?;
    h.run_until_or(repair, |_| false);
    // A crash part-way through an event waits for the node's next event, which may come
    // after its scheduled restart — after the repair: restart whatever is down every few
    // milliseconds, and start the liveness window only once the last such crash is over.
    let mut t = repair;
    let mut last_restart = repair;
    while t < end {
        for id in 0..h.sim().node_count() {
            if h.sim().status(id) == Some(NodeStatus::Crashed) {
                let _ = h.sim_mut().apply_fault(&Fault::Restart { node: id });
                last_restart = t;
            }
        }
        t = (t + Duration::from_millis(20)).min(end);
        h.run_until_or(t, |_| false);
    }
    // Past the end every client's last operation has answered or timed out.
    let drain = end + Duration::from_secs(2);
    h.run_until_or(drain, |h| h.sim().now() >= end && h.pending() == 0);
    let settled = last_restart + Duration::from_millis(opts.settle_ms / 4);
    let unanswered = h
        .sim()
        .history()
        .iter()
        .filter(|o| o.invoked >= settled && !matches!(o.outcome, Outcome::Ok { .. }))
        .count();
    // Convergence: the clients have stopped; heal what is left and give anti-entropy and
    // hinted handoff their time.
    let _ = h.sim_mut().apply_fault(&Fault::Heal);
    for id in 0..h.sim().node_count() {
        let wake = match h.sim().status(id) {
            Some(NodeStatus::Crashed) => Fault::Restart { node: id },
            Some(NodeStatus::Paused) => Fault::Resume { node: id },
            _ => continue,
        };
        let _ = h.sim_mut().apply_fault(&wake);
    }
    let healed = h.sim().now();
    let deadline = healed + Duration::from_millis(opts.converge_ms);
    let mut converged_after_ms = None;
    let mut left = divergence(h.sim());
    let mut t = healed;
    while left.is_some() && t < deadline {
        t = (t + Duration::from_millis(10)).min(deadline);
        h.run_until_or(t, |_| false);
        left = divergence(h.sim());
        if left.is_none() {
            converged_after_ms = Some(t.saturating_since(healed).as_millis_f64() as u64);
        }
    }
    if left.is_none() && converged_after_ms.is_none() {
        converged_after_ms = Some(0);
    }
    let result = h.check(Some(opts.check_steps)).map_err(|e| e.to_string())?;
    let violation = (result.verdict == Verdict::NotLinearizable)
        .then(|| describe_violation(&result, &h.history()));
    Ok(ModeReport {
        mode,
        events: h.sim().steps(),
        operations: h.sim().history().len(),
        completed: h.completed(),
        verdict: result.verdict,
        check_steps: result.steps,
        unanswered_after_repair: unanswered,
        violation,
        sloppy: h.sim().node_config().sloppy,
        converged_after_ms,
        divergence: left,
    })
}

fn empty(mode: Mode) -> ModeReport {
    ModeReport {
        mode,
        events: 0,
        operations: 0,
        completed: 0,
        verdict: Verdict::Undecided,
        check_steps: 0,
        unanswered_after_repair: 0,
        violation: None,
        sloppy: false,
        converged_after_ms: None,
        divergence: None,
    }
}

/// Runs one seed: the same cluster, clients and faults under ABD, then plain.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 101);
    let (nodes, n, r, w) = shape(&mut rng);
    let script = script(&mut rng, nodes, opts);
    let mut report = SeedReport {
        seed,
        nodes,
        n,
        r,
        w,
        faults: script.faults.len(),
        abd: empty(Mode::Abd),
        plain: empty(Mode::Plain),
        failure: None,
    };
    let mut failures = Vec::new();
    for mode in [Mode::Abd, Mode::Plain] {
        let params = QuorumParams {
            mode,
            n,
            r,
            w,
            sloppy: mode == Mode::Plain && seed % 2 == 1,
            anti_entropy: Some(AntiEntropy {
                period: Duration::from_millis(100),
                depth: 3,
            }),
            ..QuorumParams::default()
        };
        match run_mode(seed, params, nodes, &script, opts) {
            Ok(m) => {
                if m.unanswered_after_repair > 0 {
                    failures.push(format!(
                        "{mode:?}: {} operations started after the repair were not answered",
                        m.unanswered_after_repair
                    ));
                }
                if let Some(d) = &m.divergence {
                    failures.push(format!(
                        "{mode:?}: replicas not converged {} ms after the heal: {d}",
                        opts.converge_ms
                    ));
                }
                if m.verdict == Verdict::Undecided {
                    failures.push(format!("{mode:?}: the checker ran out of steps"));
                }
                if mode == Mode::Abd && m.verdict == Verdict::NotLinearizable {
                    failures.push(format!(
                        "ABD not linearizable: {}",
                        m.violation.clone().unwrap_or_default()
                    ));
                }
                match mode {
                    Mode::Abd => report.abd = m,
                    Mode::Plain => report.plain = m,
                }
            }
            Err(e) => failures.push(format!("{mode:?}: cannot run: {e}")),
        }
    }
    if !failures.is_empty() {
        report.failure = Some(failures.join("; "));
    }
    report
}

impl Soak for SoakOptions {
    const ID: &'static str = "quorum";
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
    fn seeds_are_deterministic_and_abd_passes() {
        let opts = SoakOptions::default();
        for seed in 0..6 {
            let r = run_seed(seed, &opts);
            assert!(r.failure.is_none(), "seed {seed}: {r:?}");
            assert!(r.abd.completed > 20, "seed {seed}: {r:?}");
            assert!(r.r + r.w > r.n);
        }
        assert_eq!(run_seed(3, &opts), run_seed(3, &opts));
    }
}
