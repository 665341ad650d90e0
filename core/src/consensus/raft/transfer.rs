//! Leadership transfer (thesis §3.10): the leader stops taking new commands, brings the
//! target's log up to date, then sends it TimeoutNow; the target starts an election at
//! once, and its RequestVote carries a flag that tells voters not to ignore it for having
//! heard from the current leader recently. If the transfer has not happened within an
//! election timeout, the leader gives up and serves again.

use crate::consensus::raft::messages::Message;
use crate::consensus::raft::node::{RaftNode, Role};
use crate::consensus::raft::state_machine::KvResponse;
use crate::sim::node::{ClientId, Ctx, NodeId, Reply, RequestId};
use crate::time::Time;

/// A transfer under way at the leader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub to: NodeId,
    /// Leader-local time it began; it is abandoned an election timeout later.
    pub started: Time,
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
        now: Time,
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
            started: now,
            sent: false,
            client,
            request,
        });
        self.send_append(to);
        self.check_transfer(now);
    }

    /// Sends TimeoutNow once the target has the whole log; abandons the transfer after
    /// an election timeout.
    pub(super) fn check_transfer(&mut self, now: Time) {
        let Some(t) = self.transfer.clone() else {
            return;
        };
        if self.role != Role::Leader {
            self.abandon_transfer("leadership lost during the transfer");
            return;
        }
        if now.saturating_since(t.started) >= self.params.election_max {
            self.abandon_transfer("the transfer timed out");
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
            self.replies
                .push((t.client, t.request, Reply::Ok(KvResponse::Ok)));
            if let Some(t) = self.transfer.as_mut() {
                t.sent = true;
            }
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
