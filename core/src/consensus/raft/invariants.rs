//! Raft's safety properties (paper Figure 3), checked over a whole cluster after every
//! event:
//!
//! - **Election Safety**: at most one leader per term.
//! - **Leader Append-Only**: a leader never overwrites or deletes entries in its log.
//! - **Log Matching**: if two logs contain an entry with the same index and term, the
//!   logs are identical in all entries up through that index.
//! - **Leader Completeness**: an entry committed in a term is in the log of every leader
//!   of every later term.
//! - **State Machine Safety**: no two servers apply different entries at one index.
//!
//! The checker keeps history across observations (the properties are about all time,
//! not one instant), and works incrementally from the logs' prefix digests (see
//! [`super::log`]): a digest names a whole prefix, so each new entry costs one lookup and
//! an unchanged log costs one comparison. Over a soak that is what keeps checking after
//! every event affordable.
//!
//! "Committed in term T" is not directly observable, so the checker bounds it: a node
//! learns a commit index from a leader of its own current term (or is that leader), so
//! an entry first seen committed by a node in term B was committed in a term ≤ B, and
//! every leader of a term > B must hold it. The bound is sound (no false alarms) and,
//! since commit indexes spread within a heartbeat, tight in practice.

use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::consensus::raft::log::Log;
use crate::consensus::raft::messages::{LogIndex, Term};
use crate::consensus::raft::node::{RaftNode, Role};
use crate::sim::{NodeId, Sim};

/// One of Raft's safety properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Invariant {
    ElectionSafety,
    LeaderAppendOnly,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
}

impl Invariant {
    pub const ALL: [Invariant; 5] = [
        Invariant::ElectionSafety,
        Invariant::LeaderAppendOnly,
        Invariant::LogMatching,
        Invariant::LeaderCompleteness,
        Invariant::StateMachineSafety,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::ElectionSafety => "election safety",
            Invariant::LeaderAppendOnly => "leader append-only",
            Invariant::LogMatching => "log matching",
            Invariant::LeaderCompleteness => "leader completeness",
            Invariant::StateMachineSafety => "state machine safety",
        }
    }
}

/// A broken invariant: which, how, and the nodes involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
    pub nodes: Vec<NodeId>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} violated (nodes {:?}): {}",
            self.invariant.name(),
            self.nodes,
            self.detail
        )
    }
}

/// What the checker needs to see of one running node.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub log: &'a Log,
    pub commit: LogIndex,
    pub applied: LogIndex,
    /// The log's prefix digest at `applied` (kept by the node, since a snapshot may have
    /// compacted that entry away).
    pub applied_digest: u64,
}

impl<'a> Observation<'a> {
    pub fn of(node: &'a RaftNode) -> Self {
        Observation {
            id: node.id(),
            role: node.raft_role(),
            term: node.term(),
            log: node.log(),
            commit: node.commit_index(),
            applied: node.applied_index(),
            applied_digest: node.applied_digest(),
        }
    }
}

/// All of one node's observation that the per-node checks read. When a node shows what it
/// showed at its last check, they would find what they found then (the checker's history
/// only grows, and a conflict with another node is caught when that node shows it), so
/// only nodes that changed are checked again: an event changes one node or a few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shown {
    role: Role,
    term: Term,
    last: LogIndex,
    /// Names the whole log up to `last` (a prefix digest).
    last_digest: Option<u64>,
    base: LogIndex,
    commit: LogIndex,
    applied: LogIndex,
    applied_digest: u64,
}

impl Shown {
    fn of(o: &Observation<'_>) -> Self {
        let last = o.log.last_index();
        Shown {
            role: o.role,
            term: o.term,
            last,
            last_digest: o.log.digest_at(last),
            base: o.log.base_index(),
            commit: o.commit,
            applied: o.applied,
            applied_digest: o.applied_digest,
        }
    }
}

/// What the checker remembers about one node between observations.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// What the node showed at its last check that passed.
    shown: Option<Shown>,
    /// Leading in this term at the last observation, with (last index, its digest).
    leading: Option<(Term, LogIndex, u64)>,
    commit: LogIndex,
    applied: LogIndex,
}

/// Checks Raft's safety properties over a sequence of cluster observations.
#[derive(Debug, Clone, Default)]
pub struct InvariantChecker {
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) → prefix digest, over every log ever observed (Log Matching).
    prefixes: FxHashMap<(LogIndex, Term), (u64, NodeId)>,
    /// Committed index → (digest, node that first showed it).
    committed: FxHashMap<LogIndex, (u64, NodeId)>,
    /// For each bound term B, the highest index seen committed by a node in term B.
    committed_by_bound: BTreeMap<Term, LogIndex>,
    /// Applied index → (digest, node that first applied it).
    applied: FxHashMap<LogIndex, (u64, NodeId)>,
    seen: FxHashMap<NodeId, Seen>,
    observations: u64,
}

impl InvariantChecker {
    pub fn new() -> Self {
        InvariantChecker::default()
    }

    /// Observations made so far.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Checks every running node of a simulation; crashed nodes are forgotten (their
    /// volatile state is gone; their durable log shows up again when they restart).
    pub fn check_sim(&mut self, sim: &Sim<RaftNode>) -> Result<(), Violation> {
        let mut obs = Vec::with_capacity(sim.node_count() as usize);
        for id in 0..sim.node_count() {
            match sim.node(id) {
                Some(n) => obs.push(Observation::of(n)),
                None => self.forget(id),
            }
        }
        self.check(&obs)
    }

    /// A node crashed: what it showed while running no longer constrains what it shows
    /// after a restart (except through the global history, which stays).
    pub fn forget(&mut self, id: NodeId) {
        self.seen.remove(&id);
    }

    /// Checks one observation of the cluster (every running node at one instant).
    pub fn check(&mut self, nodes: &[Observation<'_>]) -> Result<(), Violation> {
        self.observations += 1;
        for o in nodes {
            let shown = Shown::of(o);
            if self.seen.get(&o.id).is_some_and(|s| s.shown == Some(shown)) {
                continue;
            }
            self.election_safety(o)?;
            self.leader_append_only(o)?;
            self.log_matching(o)?;
            self.record_commits(o)?;
            self.state_machine_safety(o)?;
            self.seen.entry(o.id).or_default().shown = Some(shown);
        }
        // Every leader, changed or not: another node's commit can reveal what a leader
        // lacks.
        for o in nodes {
            self.leader_completeness(o)?;
        }
        Ok(())
    }

    fn election_safety(&mut self, o: &Observation<'_>) -> Result<(), Violation> {
        if o.role != Role::Leader {
            return Ok(());
        }
        let first = *self.leaders.entry(o.term).or_insert(o.id);
        if first != o.id {
            return Err(Violation {
                invariant: Invariant::ElectionSafety,
                detail: format!("nodes {first} and {} both led term {}", o.id, o.term),
                nodes: vec![first, o.id],
            });
        }
        Ok(())
    }

    fn leader_append_only(&mut self, o: &Observation<'_>) -> Result<(), Violation> {
        let seen = self.seen.entry(o.id).or_default();
        let now_leading = (o.role == Role::Leader).then(|| {
            let last = o.log.last_index();
            (o.term, last, o.log.digest_at(last).unwrap_or(0))
        });
        if let (Some((term, last, digest)), Some((now_term, _, _))) = (seen.leading, now_leading)
            && term == now_term
        {
            let still = if last < o.log.base_index() {
                // Compacted past it: only what the base says can be compared.
                true
            } else {
                o.log.digest_at(last) == Some(digest)
            };
            if !still {
                return Err(Violation {
                    invariant: Invariant::LeaderAppendOnly,
                    detail: format!(
                        "leader {} of term {term} had {last} entries and changed or removed \
                         some (its log now ends at {})",
                        o.id,
                        o.log.last_index()
                    ),
                    nodes: vec![o.id],
                });
            }
        }
        seen.leading = now_leading;
        Ok(())
    }

    fn log_matching(&mut self, o: &Observation<'_>) -> Result<(), Violation> {
        let log = o.log;
        // Walk down from the newest entry until a prefix already known to be consistent.
        let mut index = log.last_index();
        while let (Some(term), Some(digest)) = (log.term_at(index), log.digest_at(index)) {
            if index == 0 {
                break;
            }
            match self.prefixes.get(&(index, term)) {
                Some(&(d, _)) if d == digest => break,
                Some(&(_, other)) => {
                    return Err(Violation {
                        invariant: Invariant::LogMatching,
                        detail: format!(
                            "nodes {other} and {} both hold an entry at index {index} of \
                             term {term}, but their logs differ up to it",
                            o.id
                        ),
                        nodes: vec![other, o.id],
                    });
                }
                None => {
                    self.prefixes.insert((index, term), (digest, o.id));
                }
            }
            if index == log.base_index() {
                break;
            }
            index -= 1;
        }
        Ok(())
    }

    fn record_commits(&mut self, o: &Observation<'_>) -> Result<(), Violation> {
        let seen = self.seen.entry(o.id).or_default();
        let prev = seen.commit;
        seen.commit = o.commit;
        let top = self.committed_by_bound.entry(o.term).or_insert(0);
        *top = (*top).max(o.commit);
        // Newly committed indexes still held (the base stands for what a snapshot took).
        let from = (prev + 1).max(o.log.base_index()).max(1);
        for index in from..=o.commit {
            let Some(digest) = o.log.digest_at(index) else {
                continue;
            };
            match self.committed.get(&index) {
                Some(&(d, other)) if d != digest => {
                    return Err(Violation {
                        invariant: Invariant::StateMachineSafety,
                        detail: format!(
                            "nodes {other} and {} committed different entries at index {index}",
                            o.id
                        ),
                        nodes: vec![other, o.id],
                    });
                }
                Some(_) => {}
                None => {
                    self.committed.insert(index, (digest, o.id));
                }
            }
        }
        Ok(())
    }

    fn state_machine_safety(&mut self, o: &Observation<'_>) -> Result<(), Violation> {
        let seen = self.seen.entry(o.id).or_default();
        let prev = seen.applied;
        seen.applied = o.applied;
        if o.applied == 0 || o.applied == prev {
            return Ok(());
        }
        let mut check = |index: LogIndex, digest: u64| -> Result<(), Violation> {
            match self.applied.get(&index) {
                Some(&(d, other)) if d != digest => Err(Violation {
                    invariant: Invariant::StateMachineSafety,
                    detail: format!(
                        "nodes {other} and {} applied different entries at index {index}",
                        o.id
                    ),
                    nodes: vec![other, o.id],
                }),
                Some(_) => Ok(()),
                None => {
                    self.applied.insert(index, (digest, o.id));
                    Ok(())
                }
            }
        };
        // Every newly applied index the log still holds, then the applied index itself
        // (whose digest the node keeps even when a snapshot took the entry).
        let from = (prev + 1).max(o.log.first_index());
        for index in from..o.applied {
            if let Some(d) = o.log.digest_at(index) {
                check(index, d)?;
            }
        }
        check(o.applied, o.applied_digest)
    }

    fn leader_completeness(&self, o: &Observation<'_>) -> Result<(), Violation> {
        if o.role != Role::Leader {
            return Ok(());
        }
        // The newest entry known committed in a term before this leader's.
        let Some(m) = self
            .committed_by_bound
            .range(..o.term)
            .map(|(_, &i)| i)
            .max()
            .filter(|&m| m > 0)
        else {
            return Ok(());
        };
        let Some(&(want, committer)) = self.committed.get(&m) else {
            return Ok(());
        };
        let missing = |detail: String| Violation {
            invariant: Invariant::LeaderCompleteness,
            detail,
            nodes: vec![committer, o.id],
        };
        if m > o.log.last_index() {
            return Err(missing(format!(
                "leader {} of term {} ends its log at {}, but entry {m} was committed in an \
                 earlier term",
                o.id,
                o.term,
                o.log.last_index()
            )));
        }
        if m >= o.log.base_index() && o.log.digest_at(m) != Some(want) {
            return Err(missing(format!(
                "leader {} of term {} holds a different entry {m} (or prefix) than the one \
                 committed in an earlier term",
                o.id, o.term
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::messages::{Entry, EntryData};
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};

    fn entry(term: Term, tag: u64) -> Entry {
        Entry::new(
            term,
            EntryData::Command(KvCommand {
                session: tag,
                seq: 1,
                op: KvOp::Delete { key: "k".into() },
            }),
        )
    }

    fn log(entries: &[(Term, u64)]) -> Log {
        let mut l = Log::new();
        for &(t, tag) in entries {
            l.push(entry(t, tag));
        }
        l
    }

    fn obs(id: NodeId, role: Role, term: Term, log: &Log, commit: LogIndex) -> Observation<'_> {
        Observation {
            id,
            role,
            term,
            log,
            commit,
            applied: commit,
            applied_digest: log.digest_at(commit).unwrap_or(0),
        }
    }

    fn broken(result: Result<(), Violation>) -> Invariant {
        result
            .expect_err("the checker should have caught it")
            .invariant
    }

    #[test]
    fn a_healthy_history_passes() {
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (1, 2), (2, 3)]);
        let b = log(&[(1, 1), (1, 2)]);
        c.check(&[
            obs(0, Role::Leader, 2, &a, 2),
            obs(1, Role::Follower, 2, &b, 2),
        ])
        .unwrap();
        let b2 = log(&[(1, 1), (1, 2), (2, 3)]);
        c.check(&[
            obs(0, Role::Leader, 2, &a, 3),
            obs(1, Role::Follower, 2, &b2, 3),
        ])
        .unwrap();
        // A new leader of a later term holding everything committed is fine.
        c.check(&[obs(1, Role::Leader, 3, &b2, 3)]).unwrap();
    }

    #[test]
    fn two_leaders_in_one_term_break_election_safety() {
        let mut c = InvariantChecker::new();
        let l = log(&[(1, 1)]);
        c.check(&[obs(0, Role::Leader, 1, &l, 0)]).unwrap();
        // Even at a later instant: the property is about the whole history.
        let got = c.check(&[obs(1, Role::Leader, 1, &l, 0)]);
        assert_eq!(broken(got), Invariant::ElectionSafety);
    }

    #[test]
    fn a_leader_rewriting_its_log_breaks_append_only() {
        let mut c = InvariantChecker::new();
        let before = log(&[(1, 1), (2, 2)]);
        c.check(&[obs(0, Role::Leader, 2, &before, 0)]).unwrap();
        let after = log(&[(1, 1)]);
        let got = c.check(&[obs(0, Role::Leader, 2, &after, 0)]);
        assert_eq!(broken(got), Invariant::LeaderAppendOnly);
    }

    #[test]
    fn same_index_and_term_with_different_prefixes_break_log_matching() {
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (1, 2)]);
        let b = log(&[(1, 1), (1, 99)]);
        let got = c.check(&[
            obs(0, Role::Follower, 1, &a, 0),
            obs(1, Role::Follower, 1, &b, 0),
        ]);
        assert_eq!(broken(got), Invariant::LogMatching);
        // Differing earlier entries under an equal last (index, term) are caught too.
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (2, 2)]);
        let b = log(&[(1, 7), (2, 2)]);
        let got = c.check(&[
            obs(0, Role::Follower, 2, &a, 0),
            obs(1, Role::Follower, 2, &b, 0),
        ]);
        assert_eq!(broken(got), Invariant::LogMatching);
    }

    #[test]
    fn a_later_leader_missing_a_committed_entry_breaks_leader_completeness() {
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (2, 2)]);
        c.check(&[obs(0, Role::Leader, 2, &a, 2)]).unwrap();
        let b = log(&[(1, 1)]);
        let got = c.check(&[obs(1, Role::Leader, 3, &b, 1)]);
        assert_eq!(broken(got), Invariant::LeaderCompleteness);
        // A stale leader of an *earlier* term may lack it: that is allowed.
        let mut c = InvariantChecker::new();
        c.check(&[obs(0, Role::Follower, 5, &a, 2)]).unwrap();
        c.check(&[obs(1, Role::Leader, 4, &b, 1)]).unwrap();
    }

    #[test]
    fn unchanged_nodes_are_skipped_but_still_caught() {
        // A leader of term 3 that lacks entry 2, checked while nobody has shown it
        // committed: fine then. A follower of term 2 then shows entry 2 committed: the
        // leader, unchanged since its last check, now breaks Leader Completeness.
        let mut c = InvariantChecker::new();
        let short = log(&[(1, 1)]);
        let long = log(&[(1, 1), (2, 2)]);
        let leader = obs(0, Role::Leader, 3, &short, 1);
        c.check(&[leader, obs(1, Role::Follower, 2, &long, 1)])
            .unwrap();
        c.check(&[leader, obs(1, Role::Follower, 2, &long, 1)])
            .unwrap();
        let got = c.check(&[leader, obs(1, Role::Follower, 2, &long, 2)]);
        assert_eq!(broken(got), Invariant::LeaderCompleteness);
        // Log Matching: a node unchanged since it was checked, then another showing a
        // different prefix under the same (index, term).
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (1, 2)]);
        let b = log(&[(1, 3), (1, 2)]);
        let first = obs(0, Role::Follower, 1, &a, 0);
        c.check(&[first]).unwrap();
        c.check(&[first]).unwrap();
        let got = c.check(&[first, obs(1, Role::Follower, 1, &b, 0)]);
        assert_eq!(broken(got), Invariant::LogMatching);
    }

    #[test]
    fn different_entries_applied_at_one_index_break_state_machine_safety() {
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1)]);
        let b = log(&[(2, 2)]);
        c.check(&[obs(0, Role::Follower, 2, &a, 1)]).unwrap();
        let got = c.check(&[obs(1, Role::Follower, 2, &b, 1)]);
        assert_eq!(broken(got), Invariant::StateMachineSafety);
    }

    #[test]
    fn a_restarted_node_is_checked_afresh_against_history() {
        let mut c = InvariantChecker::new();
        let a = log(&[(1, 1), (1, 2)]);
        c.check(&[obs(0, Role::Leader, 1, &a, 2)]).unwrap();
        c.forget(0);
        // After a restart its commit index starts again from zero.
        c.check(&[obs(0, Role::Follower, 1, &a, 0)]).unwrap();
        c.check(&[obs(0, Role::Follower, 1, &a, 2)]).unwrap();
        assert_eq!(c.observations(), 3);
    }
}
