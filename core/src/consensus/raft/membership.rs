//! Single-server membership changes (thesis §4.1–4.3).
//!
//! A configuration that differs from the previous one by one voter has majorities that
//! overlap with the previous one's, so no two leaders can be elected by disjoint
//! majorities while the change is under way; each new configuration takes effect as soon
//! as it is in a server's log. Two rules keep that true:
//!
//! - one change at a time: a leader appends a configuration only once the previous one
//!   is committed;
//! - a leader appends a configuration only after it has committed an entry of its own
//!   term — the fix (raft-dev, 2015) for the case where a configuration appended by a
//!   deposed leader and one appended by its successor are both one server away from a
//!   common ancestor but not from each other.
//!
//! A new server joins as a learner (thesis §4.2.1): it receives the log but neither votes
//! nor counts for commitment. Whichever node leads promotes a learner to voter once it
//! holds everything committed, so a change survives a leader crash half-way. A leader
//! that removes itself keeps leading until the removal commits, not counting itself,
//! then steps down (thesis §4.2.2).

use crate::consensus::raft::messages::{Entry, EntryData, LogIndex, Membership};
use crate::consensus::raft::node::{Progress, RaftNode, Role};
use crate::consensus::raft::state_machine::KvResponse;
use crate::sim::node::{ClientId, Ctx, NodeId, Reply, RequestId};

/// A client waiting for a membership change to commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigWaiter {
    pub client: ClientId,
    pub request: RequestId,
    pub node: NodeId,
    /// Waiting for `node` to be a voter (add) or gone (remove).
    pub add: bool,
}

impl RaftNode {
    /// Whether this leader may append a configuration now.
    pub(super) fn config_change_allowed(&self) -> bool {
        self.role == Role::Leader && self.config_index <= self.commit && self.committed_in_term()
    }

    /// A request to add (as a learner, promoted once caught up) or remove `node`.
    pub(super) fn on_membership_request(
        &mut self,
        client: ClientId,
        request: RequestId,
        node: NodeId,
        add: bool,
    ) {
        if self.role != Role::Leader {
            let reply = self.not_leader();
            self.replies.push((client, request, reply));
            return;
        }
        let waiter = ConfigWaiter {
            client,
            request,
            node,
            add,
        };
        let done = if add {
            self.membership.is_voter(node)
        } else {
            !self.membership.contains(node)
        };
        if done && self.config_index <= self.commit {
            self.replies
                .push((client, request, Reply::Ok(KvResponse::Ok)));
            return;
        }
        if add && self.membership.learners.contains(&node) {
            // Already joining: wait for its promotion.
            self.config_waiters.push(waiter);
            return;
        }
        if !self.config_change_allowed() {
            let r = Reply::Fail("a configuration change is under way; retry".into());
            self.replies.push((client, request, r));
            return;
        }
        let mut next = self.membership.clone();
        if add {
            next.learners.insert(node);
        } else {
            next.voters.remove(&node);
            next.learners.remove(&node);
            if next.voters.is_empty() {
                let r = Reply::Fail("cannot remove the last voter".into());
                self.replies.push((client, request, r));
                return;
            }
        }
        self.append_config(next);
        self.config_waiters.push(waiter);
    }

    fn append_config(&mut self, next: Membership) -> LogIndex {
        let index = self.append_local(Entry::new(self.term, EntryData::Membership(next)));
        self.broadcast_append();
        index
    }

    /// Keeps a leader's progress table in step with the configuration in force.
    pub(super) fn reconcile_progress(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let members: Vec<NodeId> = self
            .membership
            .members()
            .filter(|&p| p != self.id)
            .collect();
        self.progress.retain(|p, _| members.contains(p));
        let next = self.log.last_index() + 1;
        for p in members {
            self.progress.entry(p).or_insert(Progress {
                next,
                matched: 0,
                probing: true,
                probe_sent: false,
                active: true,
                acked_round: 0,
            });
        }
    }

    /// The leader's per-event duties for membership: promote a caught-up learner,
    /// answer changes that committed, step down once its own removal commits.
    pub(super) fn membership_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.role != Role::Leader {
            return;
        }
        let committed = self.config_index <= self.commit;
        if committed && !self.config_waiters.is_empty() {
            let m = self.membership.clone();
            let (done, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.config_waiters)
                .into_iter()
                .partition(|w| {
                    if w.add {
                        m.is_voter(w.node)
                    } else {
                        !m.contains(w.node)
                    }
                });
            self.config_waiters = wait;
            for w in done {
                self.replies
                    .push((w.client, w.request, Reply::Ok(KvResponse::Ok)));
            }
        }
        if committed && !self.membership.is_voter(self.id) {
            ctx.state_change(format!(
                "removed from the configuration: stepping down in term {}",
                self.term
            ));
            self.become_follower(self.term, None, ctx);
            return;
        }
        if !self.config_change_allowed() {
            return;
        }
        let commit = self.commit;
        let ready = self
            .membership
            .learners
            .iter()
            .copied()
            .find(|l| self.progress.get(l).is_some_and(|p| p.matched >= commit));
        if let Some(learner) = ready {
            let mut next = self.membership.clone();
            next.learners.remove(&learner);
            next.voters.insert(learner);
            ctx.state_change(format!("promoting learner {learner} to voter"));
            self.append_config(next);
        }
    }

    /// Changes that will not complete under this node: their clients learn nothing
    /// definite (the entry may still commit), so they are dropped and time out.
    pub(super) fn drop_config_waiters(&mut self) {
        self.config_waiters.clear();
    }
}
