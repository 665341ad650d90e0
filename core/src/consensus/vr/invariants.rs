//! VR's safety properties, checked after every event against a ghost record that
//! survives crashes (a replica that crashed still committed what it committed):
//!
//! - **StateMachineSafety**: every replica that committed op-number `k` has the same
//!   request at `k` (the property Vanlightly's TLA+ specification of VR Revisited checks,
//!   and Raft's State Machine Safety).
//! - **CommitNumber**: within one incarnation of a replica the commit-number never goes
//!   down, and never points past the log. (A restarted replica starts again from 0 and
//!   recovers: in-memory VR forgets it, which is why recovery exists.)
//! - **OnePrimaryPerView**: at most one replica acts as primary — normal status, primary
//!   of its view — in any view, and that replica is `view mod n`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::consensus::vr::messages::{Entry, Status};
use crate::consensus::vr::replica::VrReplica;
use crate::sim::NodeId;
use crate::sim::manual::ClusterChecker;

/// Which property broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Invariant {
    StateMachineSafety,
    CommitNumber,
    OnePrimaryPerView,
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

/// What the checker reads from one replica.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub id: NodeId,
    /// Which incarnation (the simulator's boot count).
    pub boots: u32,
    pub view: u64,
    pub status: Status,
    pub acting_primary: bool,
    pub commit: u64,
    pub log: &'a [Entry],
    pub log_epoch: u64,
}

impl<'a> Observed<'a> {
    pub fn of(r: &'a VrReplica, boots: u32) -> Self {
        Observed {
            id: r.id(),
            boots,
            view: r.view(),
            status: r.status(),
            acting_primary: r.is_primary(),
            commit: r.commit_number(),
            log: r.log(),
            log_epoch: r.log_epoch(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    boots: u32,
    log_epoch: u64,
    commit: u64,
}

/// The ghost record and the first violation.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// Op-number → the request committed there, and who committed it first.
    committed: BTreeMap<u64, (Entry, NodeId)>,
    /// View → the replica seen acting as its primary.
    primaries: BTreeMap<u64, NodeId>,
    progress: BTreeMap<NodeId, Progress>,
    violation: Option<Violation>,
}

impl Checker {
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    /// The highest op-number known committed.
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

    /// Checks one replica of a group of `n`.
    pub fn observe_replica(&mut self, r: &Observed<'_>, n: u32) {
        let last = self.progress.get(&r.id).copied();
        let same_life = last.is_some_and(|p| p.boots == r.boots);
        if let Some(p) = last
            && same_life
            && r.commit < p.commit
        {
            self.fail(
                Invariant::CommitNumber,
                vec![r.id],
                format!("commit-number went from {} down to {}", p.commit, r.commit),
            );
        }
        if r.commit > r.log.len() as u64 {
            self.fail(
                Invariant::CommitNumber,
                vec![r.id],
                format!("commit-number {} past op-number {}", r.commit, r.log.len()),
            );
            return;
        }
        // Only ops committed since the last look, unless the log was replaced.
        let from = match last {
            Some(p) if same_life && p.log_epoch == r.log_epoch => p.commit,
            _ => 0,
        };
        for op in from + 1..=r.commit {
            let Some(entry) = r.log.get(op as usize - 1) else {
                break;
            };
            match self.committed.get(&op) {
                Some((e, first)) if e != entry => {
                    let detail = format!("op {op}: n{first} committed {e:?}, n{} {entry:?}", r.id);
                    let nodes = vec![*first, r.id];
                    self.fail(Invariant::StateMachineSafety, nodes, detail);
                    return;
                }
                Some(_) => {}
                None => {
                    self.committed.insert(op, (entry.clone(), r.id));
                }
            }
        }
        self.progress.insert(
            r.id,
            Progress {
                boots: r.boots,
                log_epoch: r.log_epoch,
                commit: r.commit,
            },
        );
        if r.acting_primary && r.status == Status::Normal {
            if r.view % u64::from(n.max(1)) != u64::from(r.id) {
                self.fail(
                    Invariant::OnePrimaryPerView,
                    vec![r.id],
                    format!("n{} acts as primary of view {}, not its own", r.id, r.view),
                );
            }
            let first = *self.primaries.entry(r.view).or_insert(r.id);
            if first != r.id {
                self.fail(
                    Invariant::OnePrimaryPerView,
                    vec![first, r.id],
                    format!(
                        "n{first} and n{} both act as primary of view {}",
                        r.id, r.view
                    ),
                );
            }
        }
    }
}

impl ClusterChecker<VrReplica> for Checker {
    type Violation = Violation;
    fn observe_node(&mut self, _id: NodeId, boots: u32, node: &VrReplica, count: u32) {
        self.observe_replica(&Observed::of(node, boots), count);
    }
    fn violation(&self) -> Option<&Violation> {
        Checker::violation(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};

    fn put(seq: u64) -> Entry {
        KvCommand {
            session: 1,
            seq,
            op: KvOp::Put {
                key: "k".into(),
                value: format!("v{seq}"),
            },
        }
    }

    fn seen(id: NodeId, commit: u64, log: &[Entry]) -> Observed<'_> {
        Observed {
            id,
            boots: 1,
            view: 0,
            status: Status::Normal,
            acting_primary: false,
            commit,
            log,
            log_epoch: 0,
        }
    }

    #[test]
    fn state_machine_safety_catches_two_requests_committed_at_one_op_number() {
        let (a, b) = (vec![put(1), put(2)], vec![put(1), put(3)]);
        let mut c = Checker::default();
        c.observe_replica(&seen(0, 2, &a), 3);
        c.observe_replica(&seen(1, 1, &b), 3);
        assert!(c.violation().is_none(), "op 2 of n1 is not committed");
        c.observe_replica(&seen(1, 2, &b), 3);
        let v = c.violation().unwrap();
        assert_eq!(v.invariant, Invariant::StateMachineSafety);
        assert_eq!(v.nodes, vec![0, 1]);
        // A replaced log is read again from op 1.
        let mut c = Checker::default();
        c.observe_replica(&seen(0, 2, &a), 3);
        c.observe_replica(&seen(1, 2, &a), 3);
        let rewritten = vec![put(9), put(2)];
        c.observe_replica(
            &Observed {
                log_epoch: 1,
                ..seen(1, 2, &rewritten)
            },
            3,
        );
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::StateMachineSafety
        );
    }

    #[test]
    fn commit_number_must_not_go_down_within_one_life_or_pass_the_log() {
        let log = vec![put(1), put(2)];
        let mut c = Checker::default();
        c.observe_replica(&seen(0, 2, &log), 3);
        // A restart starts again from 0: allowed.
        c.observe_replica(
            &Observed {
                boots: 2,
                ..seen(0, 0, &[])
            },
            3,
        );
        assert!(c.violation().is_none());
        c.observe_replica(
            &Observed {
                boots: 2,
                ..seen(0, 2, &log)
            },
            3,
        );
        c.observe_replica(
            &Observed {
                boots: 2,
                ..seen(0, 1, &log)
            },
            3,
        );
        assert_eq!(c.violation().unwrap().invariant, Invariant::CommitNumber);
        let mut c = Checker::default();
        c.observe_replica(&seen(0, 3, &log), 3);
        assert_eq!(c.violation().unwrap().invariant, Invariant::CommitNumber);
    }

    #[test]
    fn one_primary_per_view_catches_a_second_primary_and_a_wrong_one() {
        let mut c = Checker::default();
        let acting = |id, view| Observed {
            acting_primary: true,
            view,
            ..seen(id, 0, &[])
        };
        c.observe_replica(&acting(1, 4), 3);
        c.observe_replica(&acting(1, 4), 3);
        // A replica that is not acting (status view-change) does not count.
        c.observe_replica(
            &Observed {
                status: Status::ViewChange,
                ..acting(2, 5)
            },
            3,
        );
        assert!(c.violation().is_none());
        c.observe_replica(&acting(0, 4), 3);
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::OnePrimaryPerView
        );
        let mut c = Checker::default();
        c.observe_replica(&acting(0, 1), 3);
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::OnePrimaryPerView
        );
    }
}
