//! Phase 2, synchronisation (DSN 2011, Algorithm 2; Zab.tla's
//! `FollowerProcessNEWLEADER`, `LeaderProcessACKLD`, `FollowerProcessCOMMITLD`).
//!
//! A follower that accepted e' takes the leader's `NewLeader(e', history)` as its own,
//! writes it with current epoch e' and syncs, then answers `AckLd` with its last zxid.
//! Once a quorum including the leader has, the leader delivers its whole initial history,
//! enters broadcast and sends `CommitLd` to those followers; each delivers up to the
//! zxid it names and enters broadcast too.
//!
//! Two of the defects Zab.tla's authors found in the paper's wording
//! (zookeeper-specifications/protocol-spec/issues.md) live here, fixed as they fixed them:
//! a follower that acknowledges the new leader late is answered with `CommitLd` carrying
//! the leader's *last committed* zxid — not the zxid of its `AckLd` (issue 3) — so it
//! delivers what was committed while it synchronised; and a follower that is sent both
//! `NewLeader` and the `Propose` of a transaction already in it ignores the second copy
//! (issue 2, in [`super::broadcast`]).
//!
//! Re-sends (the paper assumes FIFO channels that never lose; the simulator's do): a
//! follower re-sends `AckEpoch` until `NewLeader` arrives and `AckLd` until `CommitLd`
//! does, and the leader answers each again. Every `NewLeader` of one epoch carries a
//! prefix of the leader's history, so a follower that already took one only ever extends
//! its history with another — a late, shorter copy cannot cut what it acknowledged.

use crate::consensus::zab::messages::{Message, PeerState, Phase};
use crate::consensus::zab::peer::ZabPeer;
use crate::consensus::zab::zxid::{Txn, Zxid, prefix_len};
use crate::sim::node::{Ctx, NodeId};

impl ZabPeer {
    fn follows(&self, leader: NodeId) -> bool {
        self.state == PeerState::Following && self.leader == Some(leader)
    }

    pub(super) fn on_new_leader(
        &mut self,
        from: NodeId,
        epoch: u64,
        history: Vec<Txn>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if !self.follows(from)
            || self.phase == Phase::Discovery
            || epoch != self.accepted_epoch
            || self.accepted_from != Some(from)
        {
            return;
        }
        self.reset_deadline(ctx);
        if self.current_epoch != epoch {
            self.replace_history(history, Some(epoch), ctx);
            ctx.state_change(format!("took the history of epoch {epoch}"));
        } else if history.len() > self.history.len() {
            // The same epoch again (a re-send, or after a restart), longer: ours is a
            // prefix of it. A shorter copy is an old one and changes nothing.
            self.replace_history(history, None, ctx);
        }
        self.synced = true;
        let zxid = self.last_zxid();
        ctx.send(from, Message::AckLd { epoch, zxid });
    }

    pub(super) fn on_ack_ld(
        &mut self,
        from: NodeId,
        epoch: u64,
        zxid: Zxid,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.state != PeerState::Leading
            || from == self.id
            || !self.lead.new_leader_sent
            || epoch != self.current_epoch
            || !self.lead.acke_recv.contains_key(&from)
        {
            return;
        }
        self.lead.heard.insert(from, ctx.now());
        self.lead.ackld_recv.insert(from);
        self.record_ack(from, zxid);
        if self.phase == Phase::Broadcast {
            // Issue 3: the leader's last committed zxid, not the one acknowledged.
            let zxid = self.committed_zxid();
            ctx.send(from, Message::CommitLd { epoch, zxid });
            self.try_commit(ctx);
        } else {
            self.try_establish(ctx);
        }
    }

    /// Notes that `from` has the leader's history up to `zxid`.
    pub(super) fn record_ack(&mut self, from: NodeId, zxid: Zxid) {
        if let Some(len) = prefix_len(&self.history, zxid) {
            let a = self.lead.acked.entry(from).or_insert(0);
            *a = (*a).max(len);
        }
    }

    /// With a quorum's `AckLd`: deliver the initial history, broadcast.
    pub(super) fn try_establish(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.phase != Phase::Synchronisation || self.lead.ackld_recv.len() < Self::quorum(ctx) {
            return;
        }
        self.commit_to(self.history.len(), ctx);
        self.phase = Phase::Broadcast;
        let epoch = self.current_epoch;
        // Heard from the quorum just now: the step-down clock starts here.
        let now = ctx.now();
        for f in self.lead.ackld_recv.clone() {
            self.lead.heard.insert(f, now);
        }
        ctx.state_change(format!("epoch {epoch} established: broadcast"));
        let zxid = self.committed_zxid();
        for &to in &self.lead.ackld_recv {
            if to != self.id {
                ctx.send(to, Message::CommitLd { epoch, zxid });
            }
        }
    }

    pub(super) fn on_commit_ld(
        &mut self,
        from: NodeId,
        epoch: u64,
        zxid: Zxid,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if !self.follows(from) || !self.synced || epoch != self.current_epoch {
            return;
        }
        self.reset_deadline(ctx);
        self.commit_through(zxid, ctx);
        if self.phase != Phase::Broadcast {
            self.phase = Phase::Broadcast;
            ctx.state_change(format!("epoch {epoch}: broadcast"));
        }
    }

    /// A follower in synchronisation re-sends what its leader has not answered yet.
    pub(super) fn resend_sync(&self, leader: NodeId, ctx: &mut Ctx<'_, Self>) {
        if self.synced {
            let epoch = self.current_epoch;
            let zxid = self.last_zxid();
            ctx.send(leader, Message::AckLd { epoch, zxid });
        } else {
            self.send_ack_epoch(leader, ctx);
        }
    }
}
