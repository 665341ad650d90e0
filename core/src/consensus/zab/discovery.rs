//! Phase 1, discovery (DSN 2011, Algorithm 1; Zab.tla's `LeaderProcessCEPOCH`,
//! `FollowerProcessNEWEPOCH`, `LeaderProcessACKEPOCH`).
//!
//! A follower sends its accepted epoch f.p (`FollowerInfo`, CEPOCH) to its prospective
//! leader. Once a quorum including itself has, the leader picks e' = max f.p + 1, makes
//! it its own accepted epoch and sends `NewEpoch(e')`. A follower accepts e' if it is
//! above its accepted epoch (or is the same e' from the same leader, a re-send), writes
//! it to disk and answers `AckEpoch` with its current epoch f.a and history; an older e'
//! sends it back to election. Once a quorum including itself has answered, the leader
//! takes as initial history the history of the answer with the highest (f.a, last zxid)
//! — the most recent state of the quorum, so it holds everything any earlier epoch
//! committed — makes it its own with current epoch e', and starts synchronisation.
//!
//! A follower that arrives after a quorum (a latecomer, a restarted one) is answered at
//! once: `NewEpoch(e')` to its `FollowerInfo`, `NewLeader` with the leader's whole
//! history to its `AckEpoch` (Zab.tla, case 2 of each action).

use crate::consensus::zab::messages::{Message, PeerState, Phase};
use crate::consensus::zab::peer::{LeaderState, ZabPeer};
use crate::consensus::zab::storage::Record;
use crate::consensus::zab::zxid::{Txn, last_zxid};
use crate::sim::node::{Ctx, NodeId};
use crate::time::Duration;

impl ZabPeer {
    /// Election ended: follow `leader`, starting discovery.
    pub(super) fn follow(&mut self, leader: NodeId, ctx: &mut Ctx<'_, Self>) {
        self.state = PeerState::Following;
        self.phase = Phase::Discovery;
        self.leader = Some(leader);
        self.synced = false;
        self.vote.leader = leader;
        self.lead = LeaderState::default();
        self.reset_deadline(ctx);
        ctx.state_change(format!("following n{leader}: discovery"));
        ctx.send(
            leader,
            Message::FollowerInfo {
                accepted_epoch: self.accepted_epoch,
            },
        );
    }

    /// Election ended with this peer as the prospective leader.
    pub(super) fn start_leading(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.state = PeerState::Leading;
        self.phase = Phase::Discovery;
        self.leader = Some(self.id);
        self.vote.leader = self.id;
        self.lead = LeaderState::default();
        self.lead.cepoch_recv.insert(self.id, self.accepted_epoch);
        // The time to reach broadcast: twice a follower's longest wait.
        self.deadline = ctx.now() + Duration(self.params.timeout_max.0.saturating_mul(2));
        ctx.state_change("prospective leader: discovery");
        self.try_new_epoch(ctx);
    }

    fn leads(&self) -> bool {
        self.state == PeerState::Leading
    }

    pub(super) fn on_follower_info(
        &mut self,
        from: NodeId,
        accepted_epoch: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if from == self.id {
            return;
        }
        if !self.leads() {
            // Not leading (it followed someone else, or is still looking): say so, and
            // the follower goes back to election instead of waiting for its timeout.
            ctx.send(from, self.notification());
            return;
        }
        self.lead.heard.insert(from, ctx.now());
        self.lead.cepoch_recv.insert(from, accepted_epoch);
        if self.lead.new_epoch_sent {
            let epoch = self.accepted_epoch;
            ctx.send(from, Message::NewEpoch { epoch });
        } else {
            self.try_new_epoch(ctx);
        }
    }

    /// With a quorum's accepted epochs, picks e' and sends `NewEpoch`.
    fn try_new_epoch(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.lead.new_epoch_sent || self.lead.cepoch_recv.len() < Self::quorum(ctx) {
            return;
        }
        let epoch = self.lead.cepoch_recv.values().max().copied().unwrap_or(0) + 1;
        self.persist(
            &[Record::AcceptedEpoch {
                epoch,
                leader: self.id,
            }],
            ctx,
        );
        self.accepted_epoch = epoch;
        self.accepted_from = Some(self.id);
        self.lead.new_epoch_sent = true;
        ctx.state_change(format!("new epoch {epoch}"));
        for &to in self.lead.cepoch_recv.keys() {
            if to != self.id {
                ctx.send(to, Message::NewEpoch { epoch });
            }
        }
        // The leader's own AckEpoch.
        let own = (self.current_epoch, self.history.clone());
        self.lead.acke_recv.insert(self.id, own);
        self.try_new_leader(ctx);
    }

    pub(super) fn on_new_epoch(&mut self, from: NodeId, epoch: u64, ctx: &mut Ctx<'_, Self>) {
        if self.state != PeerState::Following || self.leader != Some(from) {
            return;
        }
        let resend = epoch == self.accepted_epoch && self.accepted_from == Some(from);
        match self.phase {
            Phase::Discovery if epoch > self.accepted_epoch || resend => {
                if !resend {
                    self.persist(
                        &[Record::AcceptedEpoch {
                            epoch,
                            leader: from,
                        }],
                        ctx,
                    );
                    self.accepted_epoch = epoch;
                    self.accepted_from = Some(from);
                }
                self.phase = Phase::Synchronisation;
                self.reset_deadline(ctx);
                ctx.state_change(format!("accepted epoch {epoch}: synchronisation"));
                self.send_ack_epoch(from, ctx);
            }
            Phase::Discovery => {
                ctx.state_change(format!(
                    "new epoch {epoch} is not above accepted epoch {}",
                    self.accepted_epoch
                ));
                self.start_election(ctx);
            }
            Phase::Synchronisation if resend && !self.synced => {
                self.send_ack_epoch(from, ctx);
            }
            _ => {}
        }
    }

    pub(super) fn send_ack_epoch(&self, to: NodeId, ctx: &mut Ctx<'_, Self>) {
        ctx.send(
            to,
            Message::AckEpoch {
                epoch: self.accepted_epoch,
                current_epoch: self.current_epoch,
                history: self.history.clone(),
            },
        );
    }

    pub(super) fn on_ack_epoch(
        &mut self,
        from: NodeId,
        epoch: u64,
        current_epoch: u64,
        history: Vec<Txn>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if !self.leads()
            || from == self.id
            || !self.lead.new_epoch_sent
            || epoch != self.accepted_epoch
        {
            return;
        }
        self.lead.heard.insert(from, ctx.now());
        if self.lead.new_leader_sent {
            self.lead
                .acke_recv
                .insert(from, (current_epoch, Vec::new()));
            let epoch = self.current_epoch;
            ctx.send(
                from,
                Message::NewLeader {
                    epoch,
                    history: self.history.clone(),
                },
            );
        } else {
            self.lead.acke_recv.insert(from, (current_epoch, history));
            self.try_new_leader(ctx);
        }
    }

    /// With a quorum's `AckEpoch`: the initial history, current epoch e', and
    /// `NewLeader` to every follower that acknowledged e'.
    fn try_new_leader(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.lead.new_leader_sent || self.lead.acke_recv.len() < Self::quorum(ctx) {
            return;
        }
        let initial = self
            .lead
            .acke_recv
            .values()
            .max_by_key(|(epoch, h)| (*epoch, last_zxid(h)))
            .map(|(_, h)| h.clone())
            .unwrap_or_default();
        let epoch = self.accepted_epoch;
        self.replace_history(initial, Some(epoch), ctx);
        for (_, h) in self.lead.acke_recv.values_mut() {
            h.clear();
        }
        self.lead.new_leader_sent = true;
        self.phase = Phase::Synchronisation;
        self.epochs_led += 1;
        ctx.state_change(format!(
            "leader of epoch {epoch}: synchronisation, initial history to {}",
            self.last_zxid()
        ));
        let msg = Message::NewLeader {
            epoch,
            history: self.history.clone(),
        };
        for &to in self.lead.acke_recv.keys() {
            if to != self.id {
                ctx.send(to, msg.clone());
            }
        }
        self.lead.ackld_recv.insert(self.id);
        self.try_establish(ctx);
    }
}
