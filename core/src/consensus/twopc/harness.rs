//! A two-phase commit cluster with a client issuing transactions, the atomicity invariant
//! checked after every event, and the blocking watched for: for tests, the soak and the lab.
//!
//! Atomicity is TLA+ TCommit's `TCConsistent` (Lamport & Gray, "Consensus on Transaction
//! Commit", 2006; tlaplus/Examples `TCommit.tla`): no resource manager is committed while
//! another is aborted — extended, as `TwoPhase.tla` is, to the coordinator's decision. The
//! checker keeps every outcome it has ever seen (a ghost record: a node that crashed still
//! did what it did), so a node that forgets an outcome and later takes the other one is
//! caught too.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::consensus::twopc::node::{
    COORDINATOR, TwoPcNode, TwoPcParams, TxId, TxRequest, TxState,
};
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::{NodeId, NodeStatus, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// An atomicity violation: a transaction committed at some nodes and aborted at others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AtomicityViolation {
    pub tx: TxId,
    pub committed: BTreeSet<NodeId>,
    pub aborted: BTreeSet<NodeId>,
    pub at: Time,
}

impl fmt::Display for AtomicityViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "atomicity: tx {:#x} committed at {:?} and aborted at {:?} (t = {} ms)",
            self.tx,
            self.committed,
            self.aborted,
            self.at.as_millis_f64()
        )
    }
}

/// Every outcome ever seen, per transaction, and the first violation of atomicity.
#[derive(Debug, Clone, Default)]
pub struct AtomicityChecker {
    outcomes: BTreeMap<TxId, (BTreeSet<NodeId>, BTreeSet<NodeId>)>,
    /// (boots, version) of each node when last read: a node that has not changed is skipped.
    seen: BTreeMap<NodeId, (u32, u64)>,
    /// (boots, changes read) of each node: within one boot only the transactions in its
    /// change journal since the last read are read again.
    read: BTreeMap<NodeId, (u32, usize)>,
    violation: Option<AtomicityViolation>,
}

impl AtomicityChecker {
    /// Records that `node` reached `commit` for `tx` at `at`; returns the violation if this
    /// makes one.
    pub fn record(&mut self, node: NodeId, tx: TxId, commit: bool, at: Time) {
        let (c, a) = self.outcomes.entry(tx).or_default();
        if commit {
            c.insert(node);
        } else {
            a.insert(node);
        }
        if self.violation.is_none() && !c.is_empty() && !a.is_empty() {
            self.violation = Some(AtomicityViolation {
                tx,
                committed: c.clone(),
                aborted: a.clone(),
                at,
            });
        }
    }

    /// Reads every node of `sim` that changed since the last call: within a boot, the
    /// transactions its change journal names; after a restart (or at first), all of them.
    pub fn observe(&mut self, sim: &Sim<TwoPcNode>) {
        for id in 0..sim.node_count() {
            let Some(n) = sim.node(id) else { continue };
            let boots = sim.boots(id);
            let stamp = (boots, n.version());
            if self.seen.get(&id) == Some(&stamp) {
                continue;
            }
            self.seen.insert(id, stamp);
            let changed: Vec<TxId> = match self.read.get(&id) {
                Some((b, from)) if *b == boots => n.changes_since(*from).to_vec(),
                _ if id == COORDINATOR => n.decisions().keys().copied().collect(),
                _ => n.txs().keys().copied().collect(),
            };
            self.read.insert(id, (boots, n.change_count()));
            let at = sim.now();
            for tx in changed {
                let outcome = if id == COORDINATOR {
                    n.decisions().get(&tx).copied()
                } else {
                    n.txs().get(&tx).and_then(|t| match t.state {
                        TxState::Committed => Some(true),
                        TxState::Aborted => Some(false),
                        TxState::Prepared => None,
                    })
                };
                if let Some(commit) = outcome {
                    self.record(id, tx, commit, at);
                }
            }
        }
    }

    pub fn violation(&self) -> Option<&AtomicityViolation> {
        self.violation.as_ref()
    }
    /// Transactions with at least one outcome, and how many committed (somewhere).
    pub fn counts(&self) -> (usize, usize) {
        let committed = self
            .outcomes
            .values()
            .filter(|(c, _)| !c.is_empty())
            .count();
        (self.outcomes.len(), committed)
    }
    pub fn outcomes(&self) -> &BTreeMap<TxId, (BTreeSet<NodeId>, BTreeSet<NodeId>)> {
        &self.outcomes
    }
}

/// Participants blocked: the coordinator down, a transaction every live participant is
/// uncertain about, locks held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocking {
    pub tx: TxId,
    /// The participants holding its lock.
    pub holders: BTreeSet<NodeId>,
    pub since: Time,
    /// How long it lasted (so far, if it still does).
    pub lasted: Duration,
}

/// Whether `sim` is blocked now: the coordinator down, and a transaction that some live
/// participant is uncertain about and that no live participant can decide (each is
/// uncertain too, and none has an outcome) — cooperative termination cannot help.
pub fn blocked(sim: &Sim<TwoPcNode>) -> Option<(TxId, BTreeSet<NodeId>)> {
    if sim.status(COORDINATOR) != Some(NodeStatus::Crashed) {
        return None;
    }
    let live: Vec<&TwoPcNode> = (1..sim.node_count())
        .filter_map(|id| sim.node(id))
        .collect();
    let first = live.first()?;
    'tx: for tx in first.uncertain() {
        let mut holders = BTreeSet::new();
        for n in &live {
            match n.txs().get(&tx).map(|t| t.state) {
                Some(crate::consensus::twopc::node::TxState::Prepared) => {
                    holders.insert(n.id());
                }
                _ => continue 'tx,
            }
        }
        return Some((tx, holders));
    }
    None
}

/// The client's workload: a transaction every `interval` on average (exponential gaps),
/// on one of `keys` keys, until `stop_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub interval: Duration,
    pub keys: u32,
    pub stop_at: Time,
    /// The client gives up on an answer after this.
    pub timeout: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            interval: Duration::from_millis(40),
            keys: 3,
            stop_at: Time::MAX,
            timeout: Duration::from_secs(2),
        }
    }
}

/// A cluster with its workload and checkers.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<TwoPcNode>,
    workload: Workload,
    rng: SimRng,
    issued: u64,
    checker: AtomicityChecker,
    /// The blocking under way, if any, and the longest seen.
    blocking: Option<Blocking>,
    longest_blocking: Option<Blocking>,
}

/// The external-event tag of the next transaction.
const ARRIVAL: u64 = 1;

impl Harness {
    pub fn new(config: SimConfig, params: TwoPcParams, workload: Workload) -> Result<Self> {
        let seed = config.seed;
        let mut sim = Sim::new(
            SimConfig {
                clients: config.clients.max(1),
                ..config
            },
            params,
        )?;
        let mut rng = SimRng::derive(seed, 7);
        let first = Time(rng.exponential(workload.interval.0 as f64) as u64);
        if first < workload.stop_at {
            sim.schedule_external(first, ARRIVAL);
        }
        let mut h = Harness {
            sim,
            workload,
            rng,
            issued: 0,
            checker: AtomicityChecker::default(),
            blocking: None,
            longest_blocking: None,
        };
        h.observe();
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<TwoPcNode> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<TwoPcNode> {
        &mut self.sim
    }
    pub fn checker(&self) -> &AtomicityChecker {
        &self.checker
    }
    pub fn violation(&self) -> Option<&AtomicityViolation> {
        self.checker.violation()
    }
    /// Transactions the client has asked for.
    pub fn issued(&self) -> u64 {
        self.issued
    }
    /// The longest blocking seen, with how long it lasted.
    pub fn longest_blocking(&self) -> Option<&Blocking> {
        self.longest_blocking.as_ref()
    }
    /// The blocking under way.
    pub fn blocking(&self) -> Option<&Blocking> {
        self.blocking.as_ref()
    }

    /// Asks the coordinator for a transaction now.
    pub fn begin(&mut self, key: String) -> Result<()> {
        self.issued += 1;
        let value = format!("v{}", self.issued);
        let timeout = self.workload.timeout;
        self.sim
            .client_request(0, COORDINATOR, TxRequest { key, value }, timeout)?;
        Ok(())
    }

    fn arrival(&mut self) {
        let key = format!("k{}", self.rng.below(u64::from(self.workload.keys.max(1))));
        let _ = self.begin(key);
        let gap = self.rng.exponential(self.workload.interval.0 as f64) as u64;
        let next = self.sim.now() + Duration(gap.max(1));
        if next < self.workload.stop_at {
            self.sim.schedule_external(next, ARRIVAL);
        }
    }

    /// Re-reads the nodes: atomicity, and the blocking.
    pub fn observe(&mut self) {
        self.checker.observe(&self.sim);
        let now = self.sim.now();
        match (blocked(&self.sim), &mut self.blocking) {
            (Some((tx, holders)), Some(b)) if b.tx == tx => {
                b.lasted = now.saturating_since(b.since);
                b.holders = holders;
            }
            (Some((tx, holders)), _) => {
                self.blocking = Some(Blocking {
                    tx,
                    holders,
                    since: now,
                    lasted: Duration::ZERO,
                });
            }
            (None, _) => self.blocking = None,
        }
        if let Some(b) = &self.blocking
            && self
                .longest_blocking
                .as_ref()
                .is_none_or(|l| b.lasted > l.lasted)
        {
            self.longest_blocking = Some(b.clone());
        }
    }

    /// Processes one event due by `until`; false if none is.
    pub fn step(&mut self, until: Time) -> bool {
        match self.sim.step_until(until) {
            None => false,
            Some(Stepped::External(ARRIVAL)) => {
                self.arrival();
                self.observe();
                true
            }
            Some(_) => {
                self.observe();
                true
            }
        }
    }

    /// Runs until `t` or until `stop` says so; returns whether it stopped early.
    pub fn run_until_or(&mut self, t: Time, mut stop: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if stop(self) {
                return true;
            }
            if !self.step(t) {
                break;
            }
        }
        self.sim.advance_clock(t);
        self.observe();
        stop(self)
    }

    /// Whether everything is settled: every node up, no vote pending at the coordinator,
    /// no participant uncertain.
    pub fn settled(&self) -> bool {
        (0..self.sim.node_count()).all(|id| {
            self.sim.node(id).is_some_and(|n| {
                n.active().is_empty() && n.locks().is_empty() && n.uncertain().next().is_none()
            })
        })
    }

    /// Participants whose committed store differs from participant 1's.
    pub fn diverged_stores(&self) -> Vec<NodeId> {
        let first = self.sim.node(1).map(|n| n.data().clone());
        (2..self.sim.node_count())
            .filter(|id| self.sim.node(*id).map(|n| n.data().clone()) != first)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The journal tests' cluster: 4 nodes, a transaction every 5 ms on 3 keys.
    pub(crate) fn journal_test_cluster(seed: u64) -> (SimConfig, Workload) {
        let config = SimConfig {
            seed,
            nodes: 4,
            clients: 1,
            record_trace: false,
            ..SimConfig::default()
        };
        let workload = Workload {
            interval: Duration::from_millis(5),
            ..Workload::default()
        };
        (config, workload)
    }

    /// Round `round` of the journal tests' schedule: a participant crashes and restarts,
    /// then the coordinator, every 20 rounds.
    pub(crate) fn journal_test_fault(seed: u64, round: u64) -> Option<crate::sim::Fault> {
        use crate::sim::Fault;
        let node = match round % 20 {
            4 | 7 => 1 + (seed % 3) as NodeId,
            12 | 15 => COORDINATOR,
            _ => return None,
        };
        Some(match round % 20 {
            4 | 12 => Fault::Crash { node },
            _ => Fault::Restart { node },
        })
    }

    /// The checker reads a node's change journal, not every transaction: after crashes
    /// and restarts (of participants and of the coordinator) it still holds every
    /// outcome any node holds, checked against a full read at every step.
    #[test]
    fn reading_the_change_journal_misses_no_outcome() {
        for seed in 0..12 {
            let (config, workload) = journal_test_cluster(seed);
            let mut h = Harness::new(config, TwoPcParams::default(), workload).unwrap();
            let mut t = Time::ZERO;
            let mut read = 0;
            for round in 0..40u64 {
                if let Some(fault) = journal_test_fault(seed, round) {
                    h.sim_mut().apply_fault(&fault).unwrap();
                }
                t += Duration::from_millis(25);
                h.run_until_or(t, |_| false);
                let mut full = AtomicityChecker::default();
                full.observe(h.sim());
                for (tx, (c, a)) in full.outcomes() {
                    let (seen_c, seen_a) = &h.checker().outcomes()[tx];
                    assert!(
                        c.is_subset(seen_c) && a.is_subset(seen_a),
                        "seed {seed}, tx {tx:#x}: {c:?}/{a:?} vs {seen_c:?}/{seen_a:?}"
                    );
                    read += 1;
                }
            }
            assert!(read > 100, "seed {seed}: {read}");
        }
    }

    #[test]
    fn the_checker_sees_a_commit_beside_an_abort() {
        let mut c = AtomicityChecker::default();
        c.record(1, 7, true, Time(5));
        c.record(2, 7, true, Time(6));
        c.record(0, 7, true, Time(6));
        c.record(1, 8, false, Time(7));
        assert!(c.violation().is_none());
        c.record(3, 7, false, Time(9));
        let v = c.violation().unwrap();
        assert_eq!(v.tx, 7);
        assert_eq!(v.aborted, BTreeSet::from([3]));
        assert_eq!(v.committed, BTreeSet::from([0, 1, 2]));
        assert!(v.to_string().contains("atomicity"));
    }
}
