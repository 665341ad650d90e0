//! Paxos' safety properties, checked after every event over a ghost record of every vote
//! any acceptor ever cast (an acceptor that crashed still voted).
//!
//! After tlaplus/Examples `Paxos.tla` and `Voting.tla` (Lamport), per slot:
//! - **Inv1** (an acceptor's own consistency): every vote is at a ballot no higher than
//!   its promise (`maxVBal ≤ maxBal`).
//! - **OneValuePerBallot** (Paxos.tla's Inv3 on 2a messages): no two votes at the same
//!   ballot and slot are for different values.
//! - **Agreement** (Consistency): at most one value is chosen — voted by a majority at one
//!   ballot — per slot, and every learner's value for a slot is that one.
//! - **Validity** (Nontriviality): a learned value is a no-op or a command some client
//!   issued.
//!
//! Paxos.tla's other conjuncts — an acceptor's `maxVal` is one of its votes, a 1b message
//! reports a real vote at a ballot no higher than the sender's promise, a 2a message's
//! value is `ShowsSafeAt` a quorum — are about messages this checker does not keep; the
//! votes are read from the acceptors themselves, so what those conjuncts guarantee is
//! checked by their consequences, OneValuePerBallot and Agreement, on every vote ever
//! cast. A proposer that forgot its round (see the named regression of a proposer crashing
//! after phase 1) would send two 2a messages at one ballot: OneValuePerBallot catches it.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::consensus::paxos::node::{Ballot, Change, PaxosNode, Value};
use crate::consensus::raft::state_machine::KvCommand;
use crate::sim::NodeId;
use crate::sim::manual::ClusterChecker;

/// Which property broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Invariant {
    Inv1,
    OneValuePerBallot,
    Agreement,
    Validity,
}

/// A violation, with the slot and nodes involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub invariant: Invariant,
    pub slot: u64,
    pub nodes: Vec<NodeId>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} broken at slot {} (nodes {:?}): {}",
            self.invariant, self.slot, self.nodes, self.detail
        )
    }
}

/// The ghost record and the first violation.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// (slot, ballot) → the value voted and who voted it.
    votes: BTreeMap<(u64, Ballot), (Value, BTreeSet<NodeId>)>,
    /// Slot → the value chosen there.
    chosen: BTreeMap<u64, Value>,
    /// Slot → the first value a learner learned there.
    learned: BTreeMap<u64, (NodeId, Value)>,
    /// Commands clients issued, by (session, seq).
    issued: BTreeMap<(u64, u64), KvCommand>,
    /// (boots, changes) of each node when last read.
    seen: BTreeMap<NodeId, (u32, u64)>,
    violation: Option<Violation>,
}

impl Checker {
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    /// The values chosen so far, by slot.
    pub fn chosen(&self) -> &BTreeMap<u64, Value> {
        &self.chosen
    }

    fn fail(&mut self, invariant: Invariant, slot: u64, nodes: Vec<NodeId>, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                slot,
                nodes,
                detail,
            });
        }
    }

    /// A client issued `cmd` (for Validity).
    pub fn issued(&mut self, cmd: &KvCommand) {
        self.issued.insert((cmd.session, cmd.seq), cmd.clone());
    }

    /// `node` voted `value` at `ballot` in `slot`, having promised `promised`.
    pub fn vote(
        &mut self,
        node: NodeId,
        slot: u64,
        ballot: Ballot,
        value: &Value,
        promised: Option<Ballot>,
        majority: usize,
    ) {
        if promised.is_none_or(|p| ballot > p) {
            self.fail(
                Invariant::Inv1,
                slot,
                vec![node],
                format!("voted at {ballot:?} above its promise {promised:?}"),
            );
        }
        let entry = self
            .votes
            .entry((slot, ballot))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if entry.0 != *value {
            let nodes = entry.1.iter().copied().chain([node]).collect();
            let detail = format!("{:?} and {value:?} at ballot {ballot:?}", entry.0);
            self.fail(Invariant::OneValuePerBallot, slot, nodes, detail);
            return;
        }
        // A vote seen before changes nothing (a full re-read of a node sees them all).
        if !entry.1.insert(node) {
            return;
        }
        if entry.1.len() >= majority {
            let (v, voters) = (entry.0.clone(), entry.1.clone());
            match self.chosen.get(&slot) {
                Some(c) if *c != v => self.fail(
                    Invariant::Agreement,
                    slot,
                    voters.into_iter().collect(),
                    format!("{c:?} was chosen, then {v:?} by a majority at {ballot:?}"),
                ),
                Some(_) => {}
                None => {
                    if let Some((learner, l)) = self.learned.get(&slot)
                        && *l != v
                    {
                        let detail = format!("n{learner} learned {l:?}, then {v:?} was chosen");
                        self.fail(Invariant::Agreement, slot, vec![*learner], detail);
                    }
                    self.chosen.insert(slot, v);
                }
            }
        }
    }

    /// `node` learned `value` in `slot`.
    pub fn learned(&mut self, node: NodeId, slot: u64, value: &Value) {
        if let Value::Command(c) = value
            && self.issued.get(&(c.session, c.seq)) != Some(c)
        {
            self.fail(
                Invariant::Validity,
                slot,
                vec![node],
                format!("learned {c:?}, which no client issued"),
            );
        }
        match self.chosen.get(&slot) {
            Some(v) if v != value => self.fail(
                Invariant::Agreement,
                slot,
                vec![node],
                format!("learned {value:?} but {v:?} is chosen"),
            ),
            Some(_) => {}
            // The votes may not be seen yet (an acceptor that crashed right after voting
            // is read when it restarts): compare with what other learners learned, and
            // with the chosen value once its votes are in.
            None => match self.learned.get(&slot) {
                Some((other, l)) if l != value => {
                    let detail = format!("n{other} learned {l:?}, n{node} {value:?}");
                    self.fail(Invariant::Agreement, slot, vec![*other, node], detail);
                }
                Some(_) => {}
                None => {
                    self.learned.insert(slot, (node, value.clone()));
                }
            },
        }
    }

    /// Reads node `id` (booted `boots` times) if it changed since it was last read: only
    /// its last change when that is the one change since, everything it holds otherwise
    /// (after a restart, or when several changes happened in one event). Reading every
    /// slot after every event made a seed quadratic in its length.
    pub fn observe_node(&mut self, id: NodeId, boots: u32, n: &PaxosNode, majority: usize) {
        let stamp = (boots, n.changes());
        let last = self.seen.insert(id, stamp);
        if last == Some(stamp) {
            return;
        }
        let one_step = last == Some((boots, n.changes().wrapping_sub(1)));
        match (one_step, n.last_change()) {
            (true, Some(Change::Promise)) => {}
            (true, Some(Change::Vote { slot })) => {
                if let Some((ballot, value)) = n.accepted().get(&slot) {
                    self.vote(id, slot, *ballot, value, n.promised(), majority);
                }
            }
            (true, Some(Change::Learn { slot })) => {
                if let Some(value) = n.chosen().get(&slot) {
                    self.learned(id, slot, value);
                }
            }
            _ => {
                for (slot, (ballot, value)) in n.accepted() {
                    self.vote(id, *slot, *ballot, value, n.promised(), majority);
                }
                for (slot, value) in n.chosen() {
                    self.learned(id, *slot, value);
                }
            }
        }
    }
}

impl ClusterChecker<PaxosNode> for Checker {
    type Violation = Violation;
    fn observe_node(&mut self, id: NodeId, boots: u32, node: &PaxosNode, count: u32) {
        Checker::observe_node(self, id, boots, node, count as usize / 2 + 1);
    }
    fn violation(&self) -> Option<&Violation> {
        Checker::violation(self)
    }
    fn issued(&mut self, cmd: &KvCommand) {
        Checker::issued(self, cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::KvOp;

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }
    fn put(seq: u64) -> KvCommand {
        KvCommand {
            session: 1,
            seq,
            op: KvOp::Put {
                key: "k".into(),
                value: format!("v{seq}"),
            },
        }
    }

    #[test]
    fn each_invariant_can_fail() {
        let (one, two) = (Value::Command(put(1)), Value::Command(put(2)));
        // Agreement: two majorities at two ballots for two values in one slot.
        let mut c = Checker::default();
        c.issued(&put(1));
        c.issued(&put(2));
        for n in [0, 1] {
            c.vote(n, 0, b(1, 0), &one, Some(b(1, 0)), 2);
        }
        c.learned(0, 0, &one);
        assert!(c.violation().is_none());
        for n in [1, 2] {
            c.vote(n, 0, b(2, 1), &two, Some(b(2, 1)), 2);
        }
        assert_eq!(c.violation().unwrap().invariant, Invariant::Agreement);
        // OneValuePerBallot: one ballot, two values.
        let mut c = Checker::default();
        c.vote(0, 3, b(1, 0), &one, Some(b(1, 0)), 2);
        c.vote(1, 3, b(1, 0), &two, Some(b(1, 0)), 2);
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::OneValuePerBallot
        );
        // Inv1: a vote above the promise.
        let mut c = Checker::default();
        c.vote(0, 0, b(3, 1), &one, Some(b(2, 0)), 2);
        assert_eq!(c.violation().unwrap().invariant, Invariant::Inv1);
        // Validity: a command nobody issued, learned.
        let mut c = Checker::default();
        for n in [0, 1] {
            c.vote(n, 0, b(1, 0), &two, Some(b(1, 0)), 2);
        }
        c.learned(0, 0, &two);
        assert_eq!(c.violation().unwrap().invariant, Invariant::Validity);
        // Two learners, two values; and a learned value another majority then chooses over.
        let mut c = Checker::default();
        c.issued(&put(1));
        c.learned(0, 5, &Value::Noop);
        assert!(c.violation().is_none());
        c.learned(1, 5, &one);
        assert_eq!(c.violation().unwrap().invariant, Invariant::Agreement);
        let mut c = Checker::default();
        c.issued(&put(1));
        c.learned(0, 5, &Value::Noop);
        for n in [0, 1] {
            c.vote(n, 5, b(1, 0), &one, Some(b(1, 0)), 2);
        }
        assert_eq!(c.violation().unwrap().invariant, Invariant::Agreement);
    }
}
