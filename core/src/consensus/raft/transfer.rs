//! Leadership transfer (thesis §3.10): the leader stops taking new commands, brings the
//! target's log up to date, then sends it TimeoutNow; the target starts an election at
//! once, and its RequestVote carries a flag that tells voters not to ignore it for having
//! heard from the current leader recently. If the transfer has not happened within an
//! election timeout, the leader gives up and serves again.
//!
//! Two details matter for lease reads and for clocks:
//! - Once TimeoutNow is out, the target may be elected at any moment — its flagged
//!   RequestVote overrides the followers' promise that a lease rests on — even after the
//!   leader has given up the transfer (a TimeoutNow can be slow to arrive, or its target
//!   slow to act). So from then on the leader serves no lease reads for the rest of its
//!   term; ReadIndex and log reads, which confirm leadership, stay safe.
//! - The time limit is a timer, set when the transfer starts: a timer counts time that
//!   passes, where comparing two clock readings would let a clock stepped back by X keep
//!   the leader refusing writes for X more.

use crate::consensus::raft::messages::Message;
use crate::consensus::raft::node::{RaftNode, Role, TRANSFER_TIMER};
use crate::consensus::raft::state_machine::KvResponse;
use crate::sim::node::{ClientId, Ctx, NodeId, Reply, RequestId};

/// A transfer under way at the leader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub to: NodeId,
    /// Whether TimeoutNow has gone out.
    pub sent: bool,
    /// The client that asked, answered when TimeoutNow is sent (or the transfer fails).
    pub client: ClientId,
    pub request: RequestId,
}

impl RaftNode {
    pub(super) fn on_transfer_request(
        &mut self,
        client: ClientId,
        request: RequestId,
        to: NodeId,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.role != Role::Leader {
            let reply = self.not_leader();
            self.replies.push((client, request, reply));
            return;
        }
        let fail = |why: String| Reply::Fail(why);
        if to == self.id {
            self.replies
                .push((client, request, Reply::Ok(KvResponse::Ok)));
            return;
        }
        if !self.membership.is_voter(to) {
            let r = fail(format!("node {to} is not a voter; it cannot lead"));
            self.replies.push((client, request, r));
            return;
        }
        if let Some(t) = &self.transfer {
            let r = fail(format!("a transfer to {} is already under way", t.to));
            self.replies.push((client, request, r));
            return;
        }
        self.transfer = Some(Transfer {
            to,
            sent: false,
            client,
            request,
        });
        ctx.set_timer(TRANSFER_TIMER, self.params.election_max);
        self.send_append(to);
        self.check_transfer();
    }

    /// Sends TimeoutNow once the target has the whole log.
    pub(super) fn check_transfer(&mut self) {
        let Some(t) = self.transfer.clone() else {
            return;
        };
        if self.role != Role::Leader {
            self.abandon_transfer("leadership lost during the transfer");
            return;
        }
        if t.sent {
            return;
        }
        let caught_up = self
            .progress
            .get(&t.to)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send(t.to, Message::TimeoutNow { term: self.term });
            self.sent_timeout_now = true;
            self.replies
                .push((t.client, t.request, Reply::Ok(KvResponse::Ok)));
            if let Some(t) = self.transfer.as_mut() {
                t.sent = true;
            }
        }
    }

    /// An election timeout has passed since the transfer began: give it up.
    pub(super) fn on_transfer_timer(&mut self) {
        if self.role == Role::Leader {
            self.abandon_transfer("the transfer timed out");
        }
    }

    pub(super) fn abandon_transfer(&mut self, why: &str) {
        if let Some(t) = self.transfer.take()
            && !t.sent
        {
            self.replies
                .push((t.client, t.request, Reply::Fail(why.to_string())));
        }
    }

    /// The target's side: campaign now, skipping pre-vote.
    pub(super) fn on_timeout_now(&mut self, from: NodeId, ctx: &mut Ctx<'_, Self>) {
        if self.role == Role::Leader || !self.may_campaign() {
            return;
        }
        ctx.log(format!("TimeoutNow from {from}: campaigning at once"));
        self.start_election(true, ctx);
    }
}
