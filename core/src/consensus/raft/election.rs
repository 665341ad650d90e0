//! Leader election (paper §5.2, Figure 2), with pre-vote (thesis §9.6) and check-quorum
//! (thesis §6.2), both switchable.
//!
//! - Election timeouts are drawn at random from [min, max) on the node's own — possibly
//!   drifting — clock, so that one node usually times out alone and wins before others
//!   start (§5.2).
//! - Pre-vote: a node whose timer fires first asks whether it *could* win, without
//!   raising its term; voters say yes only if its log is at least as up to date as theirs
//!   and they have not heard from a leader within the minimum election timeout. A node
//!   cut off by a partition therefore keeps its term, and cannot depose a healthy leader
//!   when it returns.
//! - Check-quorum: a leader that has not heard from a majority within an election
//!   timeout steps down; followers that heard from a leader within the minimum election
//!   timeout ignore RequestVote (thesis §4.2.3) — unless it comes from a leadership
//!   transfer.
//! - After a restart a node refuses votes and pre-votes for one minimum election timeout
//!   (again except a transfer's): it may have acknowledged a heartbeat round just before
//!   it went down, and a leader's lease counts on that acknowledgement as a promise not
//!   to vote for anyone else for that long (thesis §6.4.1; see [`super::reads`]). The
//!   time of that contact was volatile and is lost, so the node waits out the whole
//!   timeout on a timer, which a clock stepping back or forward does not stretch or
//!   shorten. A node whose disk still says term 0 never heard from a leader and starts
//!   at once.
//! - A new leader appends a no-op entry of its term, so that entries of earlier terms
//!   commit promptly (§5.4.2) and ReadIndex has a commit point in its term (thesis §6.4).

use crate::consensus::raft::messages::{Entry, EntryData, Message, VoteRequest, VoteResponse};
use crate::consensus::raft::node::{ELECTION_TIMER, HEARTBEAT_TIMER, RaftNode, Role};
use crate::sim::node::{Ctx, NodeId};
use crate::time::{Duration, Time};

impl RaftNode {
    pub(super) fn arm_election_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
        let min = self.params.election_min.0;
        let max = self.params.election_max.0.max(min + 1);
        let timeout = Duration(ctx.rng().range_inclusive(min, max - 1));
        self.election_armed_at = ctx.now();
        self.election_timeout = timeout;
        ctx.set_timer(ELECTION_TIMER, timeout);
    }

    /// Whether this node refuses (pre-)votes that do not come from a leadership transfer:
    /// it heard from a leader so recently that an election now would only disrupt it
    /// (thesis §4.2.3, §9.6), or it restarted less than a minimum election timeout ago
    /// and may have (§6.4.1).
    pub(super) fn refuses_votes(&self, now: Time) -> bool {
        self.boot_quiet || self.leader_is_fresh(now)
    }

    /// Whether this node heard from a leader within the minimum election timeout.
    pub(super) fn leader_is_fresh(&self, now: Time) -> bool {
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some()
            && self
                .leader_contact
                .is_some_and(|t| now.saturating_since(t) < self.params.election_min)
    }

    pub(super) fn start_pre_vote(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        if self.membership.is_voter(self.id) {
            self.votes.insert(self.id);
        }
        ctx.state_change(format!("pre-candidate for term {}", self.term + 1));
        self.arm_election_timer(ctx);
        if self.votes.len() >= self.membership.quorum() {
            self.start_election(false, ctx);
            return;
        }
        let req = VoteRequest {
            term: self.term + 1,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
            transfer: false,
        };
        self.broadcast_vote(req);
    }

    pub(super) fn start_election(&mut self, transfer: bool, ctx: &mut Ctx<'_, Self>) {
        self.set_hard_state(self.term + 1, Some(self.id));
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        if self.membership.is_voter(self.id) {
            self.votes.insert(self.id);
        }
        ctx.state_change(format!("candidate in term {}", self.term));
        self.arm_election_timer(ctx);
        if self.votes.len() >= self.membership.quorum() {
            self.become_leader(ctx);
            return;
        }
        let req = VoteRequest {
            term: self.term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: false,
            transfer,
        };
        self.broadcast_vote(req);
    }

    pub(super) fn broadcast_vote(&mut self, req: VoteRequest) {
        let voters: Vec<NodeId> = self.membership.voters.iter().copied().collect();
        for v in voters {
            self.send(v, Message::Vote(req.clone()));
        }
    }

    pub(super) fn become_leader(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.sent_timeout_now = false;
        self.votes.clear();
        self.waiting.clear();
        ctx.state_change(format!("leader in term {}", self.term));
        // Progress first, so every follower's `next` is the no-op about to be appended.
        self.progress.clear();
        self.reconcile_progress();
        self.append_local(Entry::new(self.term, EntryData::Noop));
        self.rounds.start(ctx.now());
        self.broadcast_append();
        ctx.set_timer(HEARTBEAT_TIMER, self.params.heartbeat);
        // At a leader the election timer measures check-quorum periods.
        self.election_armed_at = ctx.now();
        self.election_timeout = self.params.election_max;
        ctx.set_timer(ELECTION_TIMER, self.params.election_max);
        self.maybe_commit();
        self.apply_committed();
    }

    pub(super) fn on_vote_request(
        &mut self,
        from: NodeId,
        req: VoteRequest,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        let up_to_date = self
            .log
            .is_up_to_date(req.last_log_index, req.last_log_term);
        if req.pre_vote {
            // A pre-vote changes nothing here; it only predicts a real vote.
            let granted = req.term > self.term && up_to_date && !self.refuses_votes(now);
            let term = if granted { req.term } else { self.term };
            let reply = VoteResponse {
                term,
                granted,
                pre_vote: true,
            };
            self.send(from, Message::VoteReply(reply));
            return;
        }
        // `req.term == self.term` here: a higher term has been adopted already.
        let free = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let granted = req.term == self.term && free && up_to_date;
        if granted {
            self.set_hard_state(self.term, Some(from));
            self.arm_election_timer(ctx);
        }
        let reply = VoteResponse {
            term: self.term,
            granted,
            pre_vote: false,
        };
        self.send(from, Message::VoteReply(reply));
    }

    pub(super) fn on_vote_reply(
        &mut self,
        from: NodeId,
        resp: VoteResponse,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if !resp.granted || !self.membership.is_voter(from) {
            return;
        }
        match self.role {
            Role::PreCandidate if resp.pre_vote && resp.term == self.term + 1 => {
                self.votes.insert(from);
                if self.votes.len() >= self.membership.quorum() {
                    self.start_election(false, ctx);
                }
            }
            Role::Candidate if !resp.pre_vote && resp.term == self.term => {
                self.votes.insert(from);
                if self.votes.len() >= self.membership.quorum() {
                    self.become_leader(ctx);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_election_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.role == Role::Leader {
            self.check_quorum(ctx);
            return;
        }
        if !self.may_campaign() {
            // Learners and removed servers never campaign.
            self.arm_election_timer(ctx);
            return;
        }
        if self.params.pre_vote {
            self.start_pre_vote(ctx);
        } else {
            self.start_election(false, ctx);
        }
    }

    /// Whether this node may start an election: it is a voter in its latest
    /// configuration — or was one until an entry not yet known committed removed it, for
    /// it may hold the entries the cluster needs to make progress (thesis §4.2.2: such a
    /// server campaigns, without counting its own vote).
    pub(super) fn may_campaign(&self) -> bool {
        if self.membership.is_voter(self.id) {
            return true;
        }
        self.config_index > self.commit
            && self.config_index > 0
            && self.membership_at(self.config_index - 1).is_voter(self.id)
    }

    pub(super) fn check_quorum(&mut self, ctx: &mut Ctx<'_, Self>) {
        let mut active = usize::from(self.membership.is_voter(self.id));
        for (p, pr) in self.progress.iter_mut() {
            if pr.active && self.membership.voters.contains(p) {
                active += 1;
            }
            pr.active = false;
        }
        if self.params.check_quorum && active < self.membership.quorum() {
            ctx.log(format!(
                "check-quorum: heard from {active} of {} voters, stepping down",
                self.membership.voters.len()
            ));
            self.become_follower(self.term, None, ctx);
            return;
        }
        self.election_armed_at = ctx.now();
        ctx.set_timer(ELECTION_TIMER, self.params.election_max);
    }
}
