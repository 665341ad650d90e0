//! Phase 3, broadcast (DSN 2011, Algorithm 3; Zab.tla's `LeaderProcessRequest`,
//! `LeaderBroadcastPROPOSE`, `FollowerProcessPROPOSE`, `LeaderProcessACK`,
//! `FollowerProcessCOMMIT`).
//!
//! The leader of epoch e gives a client's command the next zxid (e, c), appends it to
//! its history on disk and sends `Propose`; a follower appends a proposal only if its
//! zxid directly follows its last one, syncs, and answers `Ack`. Once a quorum including
//! the leader has a transaction, the leader delivers it — and everything before it — and
//! sends `Commit`; followers deliver in zxid order.
//!
//! Fixes of Zab.tla's issues.md: `Propose` goes to every follower the leader has sent
//! `NewLeader` to (`ackeRecv`), not only those that acknowledged it (`ackldRecv`) — a
//! follower still synchronising would otherwise never receive a proposal committed in
//! the meantime (issue 1); `Commit` goes to those that acknowledged it, the rest learn
//! the commit point from `CommitLd`. A follower that receives a proposal it already has
//! (it came in `NewLeader` too) drops it (issue 2).
//!
//! Re-sends: the leader's heartbeat is `Commit` of its last committed zxid, which every
//! synchronised follower answers with `Ack` of its last zxid; the leader re-sends the
//! proposals after that to a follower behind it, those at least a tick old (a younger
//! one's `Ack` is most likely still on its way). A follower that sees a gap (a lost
//! proposal) drops the later one and says where it is.

use crate::consensus::raft::state_machine::KvCommand;
use crate::consensus::vr::client_table::Lookup;
use crate::consensus::zab::messages::{Message, PeerState, Phase};
use crate::consensus::zab::peer::ZabPeer;
use crate::consensus::zab::storage::Record;
use crate::consensus::zab::zxid::{Txn, Zxid, prefix_len};
use crate::sim::node::{ClientId, Ctx, NodeId, Reply, RequestId};

/// Proposals re-sent to one follower per heartbeat.
const RESEND_BATCH: usize = 8;

impl ZabPeer {
    pub(super) fn on_client_request(
        &mut self,
        cmd: KvCommand,
        who: (ClientId, RequestId),
        ctx: &mut Ctx<'_, Self>,
    ) {
        match self.service.table().lookup(cmd.session, cmd.seq) {
            Lookup::Executed(reply) => {
                ctx.reply(who.0, who.1, Reply::Ok(reply));
                return;
            }
            Lookup::Stale => {
                ctx.reply(who.0, who.1, Reply::Fail("an older request".into()));
                return;
            }
            Lookup::New => {}
        }
        self.waiting.insert((cmd.session, cmd.seq), who);
        let in_history = self
            .history
            .iter()
            .skip(self.committed)
            .any(|t| (t.cmd.session, t.cmd.seq) == (cmd.session, cmd.seq));
        if in_history {
            return;
        }
        let epoch = self.current_epoch;
        let last = self.last_zxid();
        let counter = if last.epoch == epoch {
            last.counter + 1
        } else {
            1
        };
        let txn = Txn {
            zxid: Zxid::new(epoch, counter),
            cmd,
        };
        self.persist(&[Record::Append { txn: txn.clone() }], ctx);
        self.history.push(txn.clone());
        self.lead
            .proposed_at
            .insert(self.history.len() - 1, ctx.now());
        // Issue 1: every follower sent NewLeader, synchronised or not.
        let msg = Message::Propose { epoch, txn };
        for &to in self.lead.acke_recv.keys() {
            if to != self.id {
                ctx.send(to, msg.clone());
            }
        }
        self.try_commit(ctx);
    }

    pub(super) fn on_propose(
        &mut self,
        from: NodeId,
        epoch: u64,
        txn: Txn,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.state != PeerState::Following
            || self.leader != Some(from)
            || !self.synced
            || epoch != self.current_epoch
        {
            return;
        }
        self.reset_deadline(ctx);
        if self.last_zxid().is_followed_by(txn.zxid) {
            self.persist(&[Record::Append { txn: txn.clone() }], ctx);
            let zxid = txn.zxid;
            self.history.push(txn);
            ctx.send(from, Message::Ack { epoch, zxid });
            return;
        }
        // Issue 2 (a copy of a proposal already in the history, from NewLeader or a
        // re-send) or a gap: nothing to append; say where this history ends.
        let have = prefix_len(&self.history, txn.zxid).is_some();
        if !have {
            ctx.log(format!("proposal {} after a gap: dropped", txn.zxid));
        }
        let zxid = self.last_zxid();
        ctx.send(from, Message::Ack { epoch, zxid });
    }

    pub(super) fn on_ack(&mut self, from: NodeId, epoch: u64, zxid: Zxid, ctx: &mut Ctx<'_, Self>) {
        if self.state != PeerState::Leading
            || from == self.id
            || !self.lead.new_leader_sent
            || epoch != self.current_epoch
            || !self.lead.acke_recv.contains_key(&from)
        {
            return;
        }
        self.lead.heard.insert(from, ctx.now());
        self.record_ack(from, zxid);
        self.try_commit(ctx);
    }

    /// The leader delivers what a quorum (itself included) has, and says so.
    pub(super) fn try_commit(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state != PeerState::Leading || self.phase != Phase::Broadcast {
            return;
        }
        let mut have: Vec<usize> = self
            .lead
            .acked
            .iter()
            .filter(|(f, _)| **f != self.id)
            .map(|(_, a)| *a)
            .collect();
        have.push(self.history.len());
        have.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&k) = have.get(Self::quorum(ctx) - 1) else {
            return;
        };
        if k <= self.committed {
            return;
        }
        self.commit_to(k, ctx);
        let epoch = self.current_epoch;
        let zxid = self.committed_zxid();
        for &to in &self.lead.ackld_recv {
            if to != self.id {
                ctx.send(to, Message::Commit { epoch, zxid });
            }
        }
    }

    pub(super) fn on_commit(
        &mut self,
        from: NodeId,
        epoch: u64,
        zxid: Zxid,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.state != PeerState::Following
            || self.leader != Some(from)
            || !self.synced
            || epoch != self.current_epoch
        {
            return;
        }
        self.reset_deadline(ctx);
        if self.phase != Phase::Broadcast {
            // CommitLd has not arrived: the re-sent AckLd will fetch it.
            return;
        }
        // A Commit that delivers something is the leader's answer to our Ack of that
        // proposal: it already heard from us. One that delivers nothing is the tick's
        // heartbeat, and the Ack back keeps us in the leader's quorum (ZooKeeper's
        // PING and its reply) and tells it what we have, for its re-sends.
        let before = self.committed;
        self.commit_through(zxid, ctx);
        if self.committed == before {
            let zxid = self.last_zxid();
            ctx.send(from, Message::Ack { epoch, zxid });
        }
    }

    pub(super) fn leader_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        if self.phase != Phase::Broadcast {
            if now >= self.deadline {
                ctx.state_change("no quorum in time: back to election");
                self.start_election(ctx);
            }
            return;
        }
        let since = now.0.saturating_sub(self.params.timeout_max.0);
        let alive = 1 + self
            .lead
            .heard
            .iter()
            .filter(|(f, at)| **f != self.id && at.0 >= since && self.lead.ackld_recv.contains(f))
            .count();
        if alive < Self::quorum(ctx) {
            ctx.state_change("lost the quorum: back to election");
            self.start_election(ctx);
            return;
        }
        let epoch = self.current_epoch;
        let zxid = self.committed_zxid();
        for &to in &self.lead.ackld_recv {
            if to != self.id {
                ctx.send(to, Message::Commit { epoch, zxid });
            }
        }
        let young = now.0.saturating_sub(self.params.tick.0);
        for (&to, &acked) in &self.lead.acked {
            if to == self.id {
                continue;
            }
            for (i, txn) in self
                .history
                .iter()
                .enumerate()
                .skip(acked)
                .take(RESEND_BATCH)
            {
                if self.lead.proposed_at.get(&i).is_some_and(|t| t.0 > young) {
                    break;
                }
                let txn = txn.clone();
                ctx.send(to, Message::Propose { epoch, txn });
            }
        }
        // Every follower has what lies below the smallest acknowledgement: its times are
        // no longer needed.
        if let Some(&floor) = self.lead.acked.values().min() {
            self.lead.proposed_at = self.lead.proposed_at.split_off(&floor);
        }
    }
}
