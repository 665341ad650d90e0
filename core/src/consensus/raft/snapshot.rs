//! Snapshots and log compaction (paper §7, Figure 13): a node snapshots its state machine
//! once enough entries are applied past its last snapshot (or when asked), and a leader
//! sends its snapshot to a follower that needs entries it has compacted away. Both rewrite
//! the durable state (see [`super::storage`]) before anything depending on it is sent.

use std::sync::Arc;

use crate::consensus::raft::messages::{Message, Snapshot, SnapshotRequest, SnapshotResponse};
use crate::consensus::raft::node::{RaftNode, Role};
use crate::sim::node::{Ctx, NodeId};

impl RaftNode {
    /// Snapshots everything applied and drops those entries from the log.
    pub(super) fn take_snapshot(&mut self, ctx: &mut Ctx<'_, Self>) {
        let index = self.applied;
        if index <= self.log.base_index() {
            return;
        }
        let (Some(term), Some(digest)) = (self.log.term_at(index), self.log.digest_at(index))
        else {
            return;
        };
        let snapshot = Snapshot {
            index,
            term,
            digest,
            membership: self.membership_at(index),
            kv: self.kv.clone(),
        };
        self.snapshot = Arc::new(snapshot);
        self.log.compact_to(index);
        self.persist_all();
        ctx.state_change(format!("snapshot at {index}, log compacted"));
    }

    /// Rewrites the durable state from scratch: snapshot, hard state, remaining entries.
    pub(super) fn persist_all(&mut self) {
        self.wal
            .rewrite(&self.snapshot, self.term, self.vote, self.log.iter());
    }

    pub(super) fn maybe_snapshot(&mut self, ctx: &mut Ctx<'_, Self>) {
        let every = self.params.snapshot_entries;
        if every > 0 && self.applied >= self.log.base_index() + every {
            self.take_snapshot(ctx);
        }
    }

    /// A follower installs the leader's snapshot (paper Figure 13).
    pub(super) fn on_install_snapshot(
        &mut self,
        from: NodeId,
        req: SnapshotRequest,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.role == Role::Leader {
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from), ctx);
        }
        self.leader = Some(from);
        self.leader_contact = Some(ctx.now());
        self.arm_election_timer(ctx);
        let snap = req.snapshot;
        let index = if snap.index <= self.commit {
            // Already have all of it, committed.
            self.commit
        } else {
            if self.log.term_at(snap.index) == Some(snap.term) {
                // The log goes on past it: keep what follows (Figure 13, step 6).
                self.log.compact_to(snap.index);
            } else {
                self.log.reset_to(snap.index, snap.term, snap.digest);
            }
            self.kv = snap.kv.clone();
            self.commit = snap.index;
            self.applied = snap.index;
            self.applied_digest = snap.digest;
            self.snapshot = snap;
            self.waiting.clear();
            self.refresh_membership();
            self.persist_all();
            ctx.state_change(format!("installed snapshot at {}", self.snapshot.index));
            self.snapshot.index
        };
        let reply = SnapshotResponse {
            term: self.term,
            index,
        };
        self.send(from, Message::SnapshotReply(reply));
    }

    pub(super) fn on_snapshot_reply(&mut self, from: NodeId, resp: SnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        pr.matched = pr.matched.max(resp.index.min(last));
        pr.next = pr.matched + 1;
        pr.probing = true;
        pr.probe_sent = false;
        self.maybe_commit();
        self.apply_committed();
        self.send_append(from);
    }
}
