//! PBFT's safety, checked after every event against a ghost record among the correct
//! replicas (heidihoward/pbft-tlaplus, `SafetyInv` with a Byzantine set; Castro & Liskov
//! 1999, §4.5 "the algorithm ensures that non-faulty replicas agree on the sequence
//! numbers of requests that commit locally"):
//!
//! - **Safety**: no two correct replicas commit (committed-local) different requests at
//!   the same sequence number.
//! - **ExecutedStates**: correct replicas that have executed the same prefix of sequence
//!   numbers hold the same state (the same digest of store and client table).
//!
//! Replicas whose behaviour is not honest are the Byzantine set and are not checked. A
//! restarted replica is correct: it forgot, it does not lie.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::consensus::pbft::auth::digest;
use crate::consensus::pbft::messages::Request;
use crate::consensus::pbft::replica::PbftReplica;
use crate::sim::{NodeId, Sim};

/// Which property broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Invariant {
    Safety,
    ExecutedStates,
}

/// A violation, with where and who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub invariant: Invariant,
    pub nodes: Vec<NodeId>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} broken (nodes {:?}): {}",
            self.invariant, self.nodes, self.detail
        )
    }
}

/// What the checker reads from one correct replica.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub id: NodeId,
    pub boots: u32,
    /// The replica's stable checkpoint: what it committed at or below was checked before.
    pub stable: u64,
    pub commits: &'a BTreeMap<u64, Request>,
    pub last_executed: u64,
    pub state_digest: u64,
}

/// The ghost record and the first violation.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// Sequence number → the request a correct replica committed there, and who.
    committed: BTreeMap<u64, (Request, NodeId)>,
    /// Executed sequence number → the state digest a correct replica had there, and who.
    states: BTreeMap<u64, (u64, NodeId)>,
    /// Per replica: (incarnation, stable checkpoint at the last look).
    looked: BTreeMap<NodeId, (u32, u64)>,
    violation: Option<Violation>,
}

impl Checker {
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    /// The highest sequence number a correct replica committed.
    pub fn committed(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    fn fail(&mut self, invariant: Invariant, nodes: Vec<NodeId>, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                nodes,
                detail,
            });
        }
    }

    /// Reads every running correct replica.
    pub fn observe(&mut self, sim: &Sim<PbftReplica>) {
        for id in 0..sim.node_count() {
            if let Some(r) = sim.node(id)
                && r.behaviour().is_honest()
            {
                self.observe_replica(&Observed {
                    id,
                    boots: sim.boots(id),
                    stable: r.low_watermark(),
                    commits: r.commit_record(),
                    last_executed: r.last_executed(),
                    state_digest: digest(r.service()),
                });
            }
        }
    }

    /// Checks one correct replica against the ghost record.
    pub fn observe_replica(&mut self, o: &Observed<'_>) {
        // Commits at or below the stable checkpoint seen last time were checked then;
        // new ones only appear above it.
        let from = match self.looked.get(&o.id) {
            Some((boots, stable)) if *boots == o.boots => *stable,
            _ => 0,
        };
        self.looked.insert(o.id, (o.boots, o.stable));
        let mut broken = None;
        for (seq, req) in o.commits.range(from + 1..) {
            match self.committed.get(seq) {
                None => {
                    self.committed.insert(*seq, (req.clone(), o.id));
                }
                Some((other, by)) if other != req => {
                    broken = Some((
                        vec![*by, o.id],
                        format!(
                            "sequence number {seq}: n{by} committed {} but n{} committed {}",
                            other.text(),
                            o.id,
                            req.text()
                        ),
                    ));
                    break;
                }
                Some(_) => {}
            }
        }
        if let Some((nodes, detail)) = broken {
            self.fail(Invariant::Safety, nodes, detail);
        }
        match self.states.get(&o.last_executed) {
            None => {
                self.states.insert(o.last_executed, (o.state_digest, o.id));
            }
            Some((d, by)) if *d != o.state_digest => {
                let (by, at) = (*by, o.last_executed);
                self.fail(
                    Invariant::ExecutedStates,
                    vec![by, o.id],
                    format!(
                        "after executing {at}: n{by} and n{} hold different states",
                        o.id
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};

    fn put(v: &str) -> Request {
        Request::Op(KvCommand {
            session: 1,
            seq: 1,
            op: KvOp::Put {
                key: "k".into(),
                value: v.into(),
            },
        })
    }

    fn seen(id: NodeId, commits: &BTreeMap<u64, Request>, exec: u64, d: u64) -> Observed<'_> {
        Observed {
            id,
            boots: 1,
            stable: 0,
            commits,
            last_executed: exec,
            state_digest: d,
        }
    }

    #[test]
    fn two_correct_replicas_committing_different_requests_break_safety() {
        let a = BTreeMap::from([(1, put("a")), (2, Request::Null)]);
        let same = BTreeMap::from([(1, put("a"))]);
        let b = BTreeMap::from([(1, put("b"))]);
        let mut c = Checker::default();
        c.observe_replica(&seen(0, &a, 0, 7));
        c.observe_replica(&seen(1, &same, 0, 7));
        assert!(c.violation().is_none());
        assert_eq!(c.committed(), 2);
        c.observe_replica(&seen(2, &b, 0, 7));
        let v = c.violation().unwrap();
        assert_eq!(v.invariant, Invariant::Safety);
        assert_eq!(v.nodes, vec![0, 2]);
    }

    #[test]
    fn different_states_after_the_same_prefix_are_caught() {
        let none = BTreeMap::new();
        let mut c = Checker::default();
        c.observe_replica(&seen(0, &none, 4, 11));
        c.observe_replica(&seen(1, &none, 4, 11));
        c.observe_replica(&seen(2, &none, 5, 12));
        assert!(c.violation().is_none());
        c.observe_replica(&seen(3, &none, 4, 99));
        assert_eq!(c.violation().unwrap().invariant, Invariant::ExecutedStates);
    }
}
