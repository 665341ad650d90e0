//! A three-phase commit cluster with a client issuing transactions, the atomicity
//! invariant checked after every event, and how long live participants stay undecided:
//! for tests, the soak and the lab.
//!
//! Atomicity is TLA+ TCommit's `TCConsistent`, checked by the two-phase commit's
//! [`AtomicityChecker`] (one checker, fed here from three-phase nodes): it keeps every
//! outcome ever seen, so a node that crashed still did what it did.
//!
//! Non-blocking is what three-phase commit adds, so it is measured: for every participant
//! that voted yes and stayed up since, how long it stays undecided. Under crash failures
//! alone the termination protocol bounds that; a node recovered from its disk undecided is
//! not counted (after a total failure it rightly waits for every node to be back).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::consensus::threepc::node::{
    COORDINATOR, Phase, ThreePcNode, ThreePcParams, TxId, TxRequest,
};
use crate::consensus::twopc::harness::{AtomicityChecker, AtomicityViolation};
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::{NodeId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// The client's workload, as the two-phase commit's.
pub use crate::consensus::twopc::harness::Workload;

/// A live participant undecided about a transaction since it voted on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Undecided {
    pub node: NodeId,
    pub tx: u64,
    pub since: Time,
    /// How long it lasted (so far, if it still does).
    pub lasted: Duration,
}

/// Ends a participant's undecided stretch at `now`, keeping it if it is the longest.
fn close_undecided(longest: &mut Option<Undecided>, key: (NodeId, u64), since: Time, now: Time) {
    let lasted = now.saturating_since(since);
    if longest.as_ref().is_none_or(|l| lasted > l.lasted) {
        *longest = Some(Undecided {
            node: key.0,
            tx: key.1,
            since,
            lasted,
        });
    }
}

/// A cluster with its workload and checkers.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<ThreePcNode>,
    workload: Workload,
    rng: SimRng,
    issued: u64,
    checker: AtomicityChecker,
    /// (boots, version, up) of each node when last read: a node that has not changed is
    /// skipped.
    seen: BTreeMap<NodeId, (u32, u64, bool)>,
    /// (boots, changes read) of each node: within one boot only the transactions in its
    /// change journal since the last read are read again.
    read: BTreeMap<NodeId, (u32, usize)>,
    /// (participant, tx) → since when it has been undecided, up all along.
    undecided: BTreeMap<(NodeId, u64), Time>,
    longest_undecided: Option<Undecided>,
}

/// The external-event tag of the next transaction.
const ARRIVAL: u64 = 1;

impl Harness {
    pub fn new(config: SimConfig, params: ThreePcParams, workload: Workload) -> Result<Self> {
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
            seen: BTreeMap::new(),
            read: BTreeMap::new(),
            undecided: BTreeMap::new(),
            longest_undecided: None,
        };
        h.observe();
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<ThreePcNode> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<ThreePcNode> {
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

    /// The longest a participant, up all along, stayed undecided after voting yes —
    /// including stretches still under way.
    pub fn longest_undecided(&self) -> Option<Undecided> {
        let now = self.sim.now();
        let open = self.undecided.iter().map(|((node, tx), since)| Undecided {
            node: *node,
            tx: *tx,
            since: *since,
            lasted: now.saturating_since(*since),
        });
        self.longest_undecided
            .iter()
            .cloned()
            .chain(open)
            .max_by_key(|u| u.lasted)
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

    /// Re-reads every node that changed (within a boot, the transactions its change
    /// journal names; after a restart, all): outcomes for atomicity, undecided stretches.
    pub fn observe(&mut self) {
        let now = self.sim.now();
        for id in 0..self.sim.node_count() {
            let node = self.sim.node(id);
            let stamp = (
                self.sim.boots(id),
                node.map_or(0, |n| n.version()),
                node.is_some(),
            );
            if self.seen.get(&id) == Some(&stamp) {
                continue;
            }
            self.seen.insert(id, stamp);
            let Some(n) = node else {
                // Down: its stretches end here.
                let open: Vec<_> = self
                    .undecided
                    .range((id, 0)..=(id, u64::MAX))
                    .map(|(k, s)| (*k, *s))
                    .collect();
                for (k, since) in open {
                    self.undecided.remove(&k);
                    close_undecided(&mut self.longest_undecided, k, since, now);
                }
                continue;
            };
            let boots = self.sim.boots(id);
            let changed: Vec<TxId> = match self.read.get(&id) {
                Some((b, from)) if *b == boots => n.changes_since(*from).to_vec(),
                _ if id == COORDINATOR => n.decisions().keys().copied().collect(),
                _ => n.txs().keys().copied().collect(),
            };
            self.read.insert(id, (boots, n.change_count()));
            if id == COORDINATOR {
                for tx in changed {
                    if let Some(commit) = n.decisions().get(&tx) {
                        self.checker.record(id, tx, *commit, now);
                    }
                }
                continue;
            }
            for tx in changed {
                let Some(t) = n.txs().get(&tx) else { continue };
                let key = (id, tx);
                match t.phase {
                    Phase::Committed => self.checker.record(id, tx, true, now),
                    Phase::Aborted => self.checker.record(id, tx, false, now),
                    Phase::Uncertain | Phase::PreCommitted => {
                        if t.steady {
                            self.undecided.entry(key).or_insert(now);
                        }
                        continue;
                    }
                }
                if let Some(since) = self.undecided.remove(&key) {
                    close_undecided(&mut self.longest_undecided, key, since, now);
                }
            }
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

    /// Whether everything is settled: every node up, nothing pending at the coordinator,
    /// no participant undecided or terminating.
    pub fn settled(&self) -> bool {
        (0..self.sim.node_count()).all(|id| {
            self.sim.node(id).is_some_and(|n| {
                n.active().is_empty()
                    && n.locks().is_empty()
                    && n.undecided().next().is_none()
                    && n.terminating().is_empty()
            })
        })
    }

    /// Whether every participant that is up has decided every transaction it voted on.
    pub fn live_participants_decided(&self) -> bool {
        (1..self.sim.node_count())
            .filter_map(|id| self.sim.node(id))
            .all(|n| n.undecided().next().is_none())
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
mod tests {
    use super::*;
    use crate::consensus::twopc::harness::tests::{journal_test_cluster, journal_test_fault};

    /// The harness reads a node's change journal, not every transaction: after crashes
    /// and restarts it still holds every outcome any node holds.
    #[test]
    fn reading_the_change_journal_misses_no_outcome() {
        for seed in 0..12 {
            let (config, workload) = journal_test_cluster(seed);
            let mut h = Harness::new(config, ThreePcParams::default(), workload).unwrap();
            let mut t = Time::ZERO;
            let mut read = 0;
            for round in 0..40u64 {
                if let Some(fault) = journal_test_fault(seed, round) {
                    h.sim_mut().apply_fault(&fault).unwrap();
                }
                t += Duration::from_millis(25);
                h.run_until_or(t, |_| false);
                let seen = h.checker().outcomes();
                for id in 0..h.sim().node_count() {
                    let Some(n) = h.sim().node(id) else { continue };
                    let held: Vec<(TxId, bool)> = if id == COORDINATOR {
                        n.decisions().iter().map(|(tx, c)| (*tx, *c)).collect()
                    } else {
                        n.txs()
                            .iter()
                            .filter_map(|(tx, p)| match p.phase {
                                Phase::Committed => Some((*tx, true)),
                                Phase::Aborted => Some((*tx, false)),
                                _ => None,
                            })
                            .collect()
                    };
                    for (tx, commit) in held {
                        let (c, a) = &seen[&tx];
                        assert!(
                            if commit { c } else { a }.contains(&id),
                            "seed {seed}: n{id}'s {commit} for {tx:#x} unseen"
                        );
                        read += 1;
                    }
                }
            }
            assert!(read > 100, "seed {seed}: {read}");
        }
    }
}
