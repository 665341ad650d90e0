//! Phase 0, leader election, in the style of ZooKeeper's Fast Leader Election (the DSN
//! 2011 paper leaves the oracle open; Zab's safety does not depend on whom it picks —
//! discovery takes the most recent history of a quorum whoever leads).
//!
//! What is built: a looking peer starts a new round (FLE's logical clock), votes for
//! itself with (current epoch, last zxid, id) and sends its vote to everyone, again on
//! every tick while it looks. A notification of a later round moves it to that round;
//! within a round it adopts any vote that beats its own — higher current epoch, then
//! higher last zxid, then higher id — and sends it on. Once a quorum of the round's votes
//! (its own included) name the same peer, it leads (if that is itself) or follows.
//! A peer that already follows or leads answers a looking one with its leader; a looking
//! peer that hears "leading" from the leader itself joins it, so a restarted peer or one
//! back from a partition rejoins an established epoch without a new election. Not built:
//! FLE's finalize wait and its quorum check of out-of-election answers; instead a peer
//! that receives `FollowerInfo` while not leading answers with its notification, and the
//! follower that chose it elects again.

use crate::consensus::zab::messages::{Message, PeerState, Phase, Vote};
use crate::consensus::zab::peer::{LeaderState, ZabPeer};
use crate::sim::node::{Ctx, NodeId};

impl ZabPeer {
    fn own_vote(&self) -> Vote {
        Vote {
            leader: self.id,
            epoch: self.current_epoch,
            zxid: self.last_zxid(),
        }
    }

    pub(super) fn notification(&self) -> Message {
        Message::Notification {
            round: self.round,
            vote: self.vote,
            state: self.state,
        }
    }

    /// Back to phase 0: forget the leader (or the leadership) and look for one.
    pub(super) fn start_election(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.state = PeerState::Looking;
        self.phase = Phase::Election;
        self.leader = None;
        self.synced = false;
        self.lead = LeaderState::default();
        self.waiting.clear();
        self.round += 1;
        self.elections += 1;
        self.vote = self.own_vote();
        self.votes.clear();
        self.votes.insert(self.id, self.vote);
        self.reset_deadline(ctx);
        ctx.state_change(format!("looking, round {}", self.round));
        self.to_others(&self.notification(), ctx);
        self.check_votes(ctx);
    }

    pub(super) fn election_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.to_others(&self.notification(), ctx);
    }

    pub(super) fn on_notification(
        &mut self,
        from: NodeId,
        round: u64,
        vote: Vote,
        state: PeerState,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.state == PeerState::Following
            && self.phase == Phase::Discovery
            && self.leader == Some(from)
            && state != PeerState::Leading
        {
            // The peer this one chose does not lead (FLE's finalize wait would have
            // avoided the choice): elect again.
            ctx.state_change(format!("n{from} does not lead"));
            self.start_election(ctx);
            return;
        }
        if self.state != PeerState::Looking {
            // Tell a looking peer whom this one serves.
            if state == PeerState::Looking {
                ctx.send(from, self.notification());
            }
            return;
        }
        match state {
            PeerState::Looking => {
                if round > self.round {
                    self.round = round;
                    self.votes.clear();
                    let own = self.own_vote();
                    self.vote = if vote.beats(&own) { vote } else { own };
                    self.votes.insert(self.id, self.vote);
                    self.to_others(&self.notification(), ctx);
                } else if round < self.round {
                    ctx.send(from, self.notification());
                    return;
                } else if vote.beats(&self.vote) {
                    self.vote = vote;
                    self.votes.insert(self.id, vote);
                    self.to_others(&self.notification(), ctx);
                }
                self.votes.insert(from, vote);
                self.check_votes(ctx);
            }
            PeerState::Leading if vote.leader == from && from != self.id => {
                self.follow(from, ctx);
            }
            PeerState::Leading | PeerState::Following => {}
        }
    }

    /// A quorum of this round's votes for one peer ends the election.
    fn check_votes(&mut self, ctx: &mut Ctx<'_, Self>) {
        let agree = self
            .votes
            .values()
            .filter(|v| v.leader == self.vote.leader)
            .count();
        if agree < Self::quorum(ctx) {
            return;
        }
        let leader = self.vote.leader;
        if leader == self.id {
            self.start_leading(ctx);
        } else {
            self.follow(leader, ctx);
        }
    }
}
