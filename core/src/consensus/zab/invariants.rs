//! Zab's safety properties (DSN 2011, §III-B), checked after every event against a ghost
//! record that survives crashes (what a peer delivered stays delivered):
//!
//! - **Agreement** (with Total order: "state-machine safety"): every peer delivers the
//!   same transaction at the same position, and within one life never takes a delivery
//!   back — so all delivered sequences are prefixes of one sequence.
//! - **PrimaryOrder**: a leader's proposals are delivered in zxid order without a gap —
//!   in that one sequence zxids increase, the first of an epoch is (e, 1) and the next of
//!   the same epoch is the next counter.
//! - **PrimaryIntegrity**: a leader of epoch e delivers every transaction of an earlier
//!   epoch that anybody ever delivers before it proposes its own: nothing of an earlier
//!   epoch is delivered after the point at which e's leader started proposing (a new
//!   leader never commits an older epoch's proposal it did not synchronise first).
//! - **Integrity**: a zxid names one transaction in every history it appears in, and a
//!   delivered transaction of epoch e was proposed in an established epoch e.
//! - **OneLeaderPerEpoch**: at most one peer leads each epoch past discovery (Zab.tla's
//!   `epochLeader` check).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::consensus::zab::messages::{PeerState, Phase};
use crate::consensus::zab::peer::ZabPeer;
use crate::consensus::zab::zxid::{Txn, Zxid};
use crate::sim::NodeId;
use crate::sim::manual::ClusterChecker;

/// Which property broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Invariant {
    Agreement,
    PrimaryOrder,
    PrimaryIntegrity,
    Integrity,
    OneLeaderPerEpoch,
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

/// What the checker reads from one peer.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub id: NodeId,
    /// Which life (the simulator's boot count).
    pub boots: u32,
    pub state: PeerState,
    pub phase: Phase,
    pub current_epoch: u64,
    pub history: &'a [Txn],
    pub committed: usize,
    pub history_version: u64,
}

impl<'a> Observed<'a> {
    pub fn of(p: &'a ZabPeer, boots: u32) -> Self {
        Observed {
            id: p.id(),
            boots,
            state: p.state(),
            phase: p.phase(),
            current_epoch: p.current_epoch(),
            history: p.history(),
            committed: p.committed(),
            history_version: p.history_version(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    boots: u32,
    version: u64,
    committed: usize,
    /// History length at the last look (only appended to since, if `version` is equal).
    len: usize,
}

/// The ghost record and the first violation.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// The one delivered sequence, and who delivered each position first.
    delivered: Vec<(Txn, NodeId)>,
    /// Zxid → the transaction it names, from every history seen.
    named: BTreeMap<Zxid, Txn>,
    /// Epoch → the peer seen leading it past discovery.
    leaders: BTreeMap<u64, NodeId>,
    /// Epoch → how many transactions its leader had delivered when it was first seen
    /// with a proposal of its own.
    proposing_from: BTreeMap<u64, usize>,
    progress: BTreeMap<NodeId, Progress>,
    violation: Option<Violation>,
}

impl Checker {
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    /// How many transactions are known delivered.
    pub fn delivered(&self) -> usize {
        self.delivered.len()
    }
    /// The zxid of the last known delivered transaction.
    pub fn last_delivered(&self) -> Zxid {
        self.delivered.last().map_or(Zxid::ZERO, |(t, _)| t.zxid)
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

    /// Checks one peer.
    pub fn observe_peer(&mut self, p: &Observed<'_>) {
        let last = self.progress.get(&p.id).copied();
        let same_life = last.is_some_and(|l| l.boots == p.boots);
        let unchanged = last.filter(|l| same_life && l.version == p.history_version);
        self.check_names(p, unchanged.map_or(0, |l| l.len.min(p.history.len())));
        self.check_leader(p);
        if let Some(l) = last
            && same_life
            && p.committed < l.committed
        {
            self.fail(
                Invariant::Agreement,
                vec![p.id],
                format!(
                    "delivered count went from {} down to {}",
                    l.committed, p.committed
                ),
            );
        }
        let from = unchanged.map_or(0, |l| l.committed.min(p.committed));
        for i in from..p.committed.min(p.history.len()) {
            if self.violation.is_some() {
                break;
            }
            let Some(txn) = p.history.get(i) else {
                break;
            };
            match self.delivered.get(i) {
                Some((t, first)) if t != txn => {
                    let detail = format!(
                        "position {}: n{first} delivered {} {:?}, n{} {} {:?}",
                        i + 1,
                        t.zxid,
                        t.cmd,
                        p.id,
                        txn.zxid,
                        txn.cmd
                    );
                    let nodes = vec![*first, p.id];
                    self.fail(Invariant::Agreement, nodes, detail);
                }
                Some(_) => {}
                None => self.deliver(i, txn, p.id),
            }
        }
        self.progress.insert(
            p.id,
            Progress {
                boots: p.boots,
                version: p.history_version,
                committed: p.committed,
                len: p.history.len(),
            },
        );
    }

    /// A zxid names one transaction everywhere.
    fn check_names(&mut self, p: &Observed<'_>, from: usize) {
        for txn in p.history.iter().skip(from) {
            match self.named.get(&txn.zxid) {
                Some(t) if t != txn => {
                    let detail = format!(
                        "zxid {} names {:?} and, at n{}, {:?}",
                        txn.zxid, t.cmd, p.id, txn.cmd
                    );
                    self.fail(Invariant::Integrity, vec![p.id], detail);
                    return;
                }
                Some(_) => {}
                None => {
                    self.named.insert(txn.zxid, txn.clone());
                }
            }
        }
    }

    fn check_leader(&mut self, p: &Observed<'_>) {
        if p.state != PeerState::Leading || p.phase == Phase::Discovery {
            return;
        }
        let e = p.current_epoch;
        let first = *self.leaders.entry(e).or_insert(p.id);
        if first != p.id {
            let detail = format!("n{first} and n{} both lead epoch {e}", p.id);
            self.fail(Invariant::OneLeaderPerEpoch, vec![first, p.id], detail);
        }
        let proposing = p.history.last().is_some_and(|t| t.zxid.epoch == e);
        if proposing && !self.proposing_from.contains_key(&e) {
            let base = p.committed;
            self.proposing_from.insert(e, base);
            let late = self
                .delivered
                .iter()
                .enumerate()
                .skip(base)
                .find(|(_, (t, _))| t.zxid.epoch < e);
            if let Some((i, (t, who))) = late {
                let detail = format!(
                    "n{} proposes in epoch {e} having delivered {base}, but {} of an older \
                     epoch was delivered at position {} (by n{who})",
                    p.id,
                    t.zxid,
                    i + 1
                );
                self.fail(Invariant::PrimaryIntegrity, vec![p.id, *who], detail);
            }
        }
    }

    /// Appends position `i` to the delivered sequence.
    fn deliver(&mut self, i: usize, txn: &Txn, by: NodeId) {
        let z = txn.zxid;
        let prev = i
            .checked_sub(1)
            .and_then(|j| self.delivered.get(j))
            .map_or(Zxid::ZERO, |(t, _)| t.zxid);
        if !prev.is_followed_by(z) {
            let detail = format!("n{by} delivered {z} right after {prev}");
            self.fail(Invariant::PrimaryOrder, vec![by], detail);
        }
        if !self.leaders.contains_key(&z.epoch) {
            let detail = format!(
                "n{by} delivered {z}: no leader established epoch {}",
                z.epoch
            );
            self.fail(Invariant::Integrity, vec![by], detail);
        }
        let newer = self
            .proposing_from
            .range(z.epoch + 1..)
            .find(|(_, base)| i >= **base)
            .map(|(e, base)| (*e, *base));
        if let Some((e, base)) = newer {
            let leader = self.leaders.get(&e).copied().unwrap_or(by);
            let detail = format!(
                "n{by} delivered {z} at position {}, after epoch {e}'s leader n{leader} \
                 proposed having delivered only {base}",
                i + 1
            );
            self.fail(Invariant::PrimaryIntegrity, vec![leader, by], detail);
        }
        self.delivered.push((txn.clone(), by));
    }
}

impl ClusterChecker<ZabPeer> for Checker {
    type Violation = Violation;
    fn observe_node(&mut self, _id: NodeId, boots: u32, node: &ZabPeer, _count: u32) {
        self.observe_peer(&Observed::of(node, boots));
    }
    fn violation(&self) -> Option<&Violation> {
        Checker::violation(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};

    fn txn(epoch: u64, counter: u64, value: &str) -> Txn {
        Txn {
            zxid: Zxid::new(epoch, counter),
            cmd: KvCommand {
                session: 1,
                seq: epoch * 100 + counter,
                op: KvOp::Put {
                    key: "k".into(),
                    value: value.into(),
                },
            },
        }
    }

    fn seen(id: NodeId, history: &[Txn], committed: usize) -> Observed<'_> {
        Observed {
            id,
            boots: 1,
            state: PeerState::Following,
            phase: Phase::Broadcast,
            current_epoch: 1,
            history,
            committed,
            history_version: 0,
        }
    }

    fn leading(id: NodeId, epoch: u64, history: &[Txn], committed: usize) -> Observed<'_> {
        Observed {
            state: PeerState::Leading,
            current_epoch: epoch,
            ..seen(id, history, committed)
        }
    }

    #[test]
    fn agreement_catches_two_transactions_delivered_at_one_position() {
        let a = vec![txn(1, 1, "a"), txn(1, 2, "b")];
        let b = vec![txn(1, 1, "a"), txn(1, 2, "c")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &a, 2));
        c.observe_peer(&seen(1, &b[..1], 1));
        assert!(c.violation().is_none());
        // Without the leader's view of (1, 2), n1's delivery of another value at
        // position 2 is caught by agreement (and integrity: (1, 2) names two values).
        let mut d = Checker::default();
        d.observe_peer(&leading(0, 1, &a, 2));
        d.observe_peer(&Observed {
            history_version: 1,
            ..seen(1, &b, 2)
        });
        assert!(matches!(
            d.violation().unwrap().invariant,
            Invariant::Agreement | Invariant::Integrity
        ));
        // A delivery taken back within one life.
        let mut e = Checker::default();
        e.observe_peer(&leading(0, 1, &a, 2));
        e.observe_peer(&leading(0, 1, &a, 1));
        assert_eq!(e.violation().unwrap().invariant, Invariant::Agreement);
        // Same position, different transaction, zxids never clashing in one history.
        let x = vec![txn(1, 1, "a")];
        let y = vec![txn(2, 1, "z")];
        let mut f = Checker::default();
        f.observe_peer(&leading(0, 1, &x, 1));
        f.observe_peer(&Observed {
            phase: Phase::Synchronisation,
            ..leading(1, 2, &[], 0)
        });
        f.observe_peer(&Observed {
            current_epoch: 2,
            ..seen(2, &y, 1)
        });
        assert_eq!(f.violation().unwrap().invariant, Invariant::Agreement);
    }

    #[test]
    fn primary_order_catches_a_skipped_or_reordered_proposal() {
        let gap = vec![txn(1, 1, "a"), txn(1, 3, "c")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &gap, 2));
        assert_eq!(c.violation().unwrap().invariant, Invariant::PrimaryOrder);
        let backwards = vec![txn(1, 2, "b"), txn(1, 1, "a")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &backwards, 1));
        assert_eq!(c.violation().unwrap().invariant, Invariant::PrimaryOrder);
        let fine = vec![txn(1, 1, "a"), txn(1, 2, "b"), txn(3, 1, "c")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &fine, 2));
        c.observe_peer(&leading(1, 3, &fine, 3));
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }

    #[test]
    fn primary_integrity_catches_an_old_proposal_committed_after_the_new_leader_proposed() {
        // Epoch 1's leader n0 proposes (1, 1) and (1, 2) and delivers (1, 1) only.
        let old = vec![txn(1, 1, "a"), txn(1, 2, "b")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &old, 1));
        // Epoch 2's leader n1 never synchronised (1, 2): it proposes (2, 1) right after
        // (1, 1), having delivered one transaction.
        let new = vec![txn(1, 1, "a"), txn(2, 1, "x")];
        c.observe_peer(&leading(1, 2, &new, 1));
        assert!(c.violation().is_none());
        // Then n2 delivers epoch 1's (1, 2) at position 2: too late.
        c.observe_peer(&seen(2, &old, 2));
        let v = c.violation().unwrap();
        assert_eq!(v.invariant, Invariant::PrimaryIntegrity, "{v}");
        assert_eq!(v.nodes, vec![1, 2]);
        // The other order: (1, 2) delivered first, then a leader proposes without it.
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &old, 2));
        c.observe_peer(&leading(1, 2, &new, 1));
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::PrimaryIntegrity
        );
    }

    #[test]
    fn integrity_catches_a_zxid_naming_two_transactions_and_an_unproposed_delivery() {
        let a = vec![txn(1, 1, "a")];
        let b = vec![txn(1, 1, "b")];
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 1, &a, 0));
        c.observe_peer(&seen(1, &b, 0));
        assert_eq!(c.violation().unwrap().invariant, Invariant::Integrity);
        // Delivered in an epoch nobody was seen to establish.
        let mut c = Checker::default();
        c.observe_peer(&seen(1, &a, 1));
        assert_eq!(c.violation().unwrap().invariant, Invariant::Integrity);
    }

    #[test]
    fn one_leader_per_epoch_catches_two_leaders_of_one_epoch() {
        let mut c = Checker::default();
        c.observe_peer(&leading(0, 4, &[], 0));
        // Still in discovery: not a leader of epoch 4 yet.
        c.observe_peer(&Observed {
            phase: Phase::Discovery,
            ..leading(1, 4, &[], 0)
        });
        assert!(c.violation().is_none());
        c.observe_peer(&Observed {
            phase: Phase::Synchronisation,
            ..leading(1, 4, &[], 0)
        });
        assert_eq!(
            c.violation().unwrap().invariant,
            Invariant::OneLeaderPerEpoch
        );
    }
}
