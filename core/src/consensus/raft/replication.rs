//! Log replication (paper §5.3, Figure 2): AppendEntries, fast backtracking and the
//! commit rule.
//!
//! - A leader keeps, per follower, the next index to send and the highest index known to
//!   match. While it searches for the match point it sends one probe at a time; once found
//!   it pipelines entries (at most `maxBatch` per message), as etcd's progress tracker
//!   does. Heartbeats carry the same consistency check, so a lost message is noticed.
//! - Fast backtracking (§5.3, last paragraphs): a follower that rejects says the term of
//!   its conflicting entry and the first index of that term, so the leader skips a whole
//!   term per round trip. Only the answer to the outstanding probe moves `next`:
//!   duplicated and reordered rejections are stale.
//! - Commitment by counting replicas only for entries of the leader's own term (§5.4.2,
//!   Figure 8), switchable to show why.

use crate::consensus::raft::messages::{
    AppendRequest, AppendResponse, EntryData, LogIndex, Message, SnapshotRequest,
};
use crate::consensus::raft::node::{HEARTBEAT_TIMER, RaftNode, Role};
use crate::consensus::raft::state_machine::Applied;
use crate::sim::node::{Ctx, NodeId, Reply};

impl RaftNode {
    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            self.send_append(p);
        }
    }

    pub(super) fn send_append(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        if pr.probing && pr.probe_sent {
            return;
        }
        let next = pr.next.clamp(1, self.log.last_index() + 1);
        let prev = next - 1;
        let Some(prev_term) = self.log.term_at(prev) else {
            // The entries this follower needs are compacted away: send the snapshot, and
            // wait for its answer (or the next heartbeat) as for a probe.
            if let Some(pr) = self.progress.get_mut(&to) {
                pr.probing = true;
                pr.probe_sent = true;
            }
            let req = SnapshotRequest {
                term: self.term,
                snapshot: self.snapshot.clone(),
            };
            self.send(to, Message::InstallSnapshot(req));
            return;
        };
        let entries = self.log.entries_from(next, self.params.max_batch).to_vec();
        let sent_up_to = prev + entries.len() as u64;
        if let Some(pr) = self.progress.get_mut(&to) {
            if pr.probing {
                pr.probe_sent = true;
            } else {
                pr.next = sent_up_to + 1;
            }
        }
        let msg = AppendRequest {
            term: self.term,
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: self.commit,
            read_round: self.rounds.current,
        };
        self.send(to, Message::Append(msg));
    }

    /// Advances the commit index to the highest index a majority of voters hold — if the
    /// entry there is of this leader's term (paper §5.4.2): counting replicas of an older
    /// entry is what Figure 8 shows to be unsafe.
    pub(super) fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut matched: Vec<LogIndex> = self
            .membership
            .voters
            .iter()
            .map(|&v| {
                if v == self.id {
                    self.log.last_index()
                } else {
                    self.progress.get(&v).map_or(0, |p| p.matched)
                }
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&n) = matched.get(self.membership.quorum() - 1) else {
            return;
        };
        if n <= self.commit {
            return;
        }
        let ok = self.log.term_at(n) == Some(self.term) || !self.params.current_term_commit_rule;
        if ok {
            self.commit = n;
        }
    }

    pub(super) fn apply_committed(&mut self) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let Some(entry) = self.log.entry(index) else {
                break;
            };
            let data = entry.data.clone();
            self.applied = index;
            self.applied_digest = self.log.digest_at(index).unwrap_or(self.applied_digest);
            if let EntryData::Command(cmd) = &*data {
                let applied = self.kv.apply(cmd);
                if let Some(w) = self.waiting.remove(&index)
                    && let Applied::Response(r) = applied
                {
                    self.replies.push((w.client, w.request, Reply::Ok(r)));
                }
            }
        }
    }

    pub(super) fn on_append(&mut self, from: NodeId, req: AppendRequest, ctx: &mut Ctx<'_, Self>) {
        if self.role == Role::Leader {
            // Two leaders in one term would break election safety; never answer it.
            ctx.log(format!(
                "ignored AppendEntries from {from}: I lead term {}",
                self.term
            ));
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from), ctx);
        }
        self.leader = Some(from);
        self.leader_contact = Some(ctx.now());
        self.arm_election_timer(ctx);
        let reply = self.accept_entries(&req);
        self.send(from, Message::AppendReply(reply));
    }

    /// The follower side of AppendEntries (paper Figure 2, receiver implementation).
    pub(super) fn accept_entries(&mut self, req: &AppendRequest) -> AppendResponse {
        let reject = |conflict_term, conflict_index| AppendResponse {
            term: req.term,
            success: false,
            index: req.prev_log_index,
            conflict_term,
            conflict_index,
            read_round: req.read_round,
        };
        // Entries at or below the snapshot base are committed, hence already here.
        let base = self.log.base_index();
        let (prev, prev_term, skip) = if req.prev_log_index < base {
            let skip = (base - req.prev_log_index) as usize;
            if skip > req.entries.len() {
                return AppendResponse {
                    term: req.term,
                    success: true,
                    index: base,
                    conflict_term: None,
                    conflict_index: 0,
                    read_round: req.read_round,
                };
            }
            (base, self.log.base_term(), skip)
        } else {
            (req.prev_log_index, req.prev_log_term, 0)
        };
        match self.log.term_at(prev) {
            None => return reject(None, self.log.last_index() + 1),
            Some(t) if t != prev_term && skip == 0 => {
                return reject(Some(t), self.log.first_index_of_term_at(prev));
            }
            _ => {}
        }
        let mut index = prev;
        let mut config_changed = false;
        for entry in req.entries.iter().skip(skip) {
            index += 1;
            match self.log.term_at(index) {
                Some(t) if t == entry.term => continue,
                Some(_) => {
                    config_changed |= self
                        .log
                        .iter()
                        .rev()
                        .take_while(|(i, _)| *i >= index)
                        .any(|(_, e)| matches!(*e.data, EntryData::Membership(_)));
                    self.log.truncate_from(index);
                }
                None => {}
            }
            config_changed |= matches!(*entry.data, EntryData::Membership(_));
            self.wal.entry(index, entry);
            self.log.push(entry.clone());
        }
        if config_changed {
            self.refresh_membership();
        }
        if req.leader_commit > self.commit {
            self.commit = req.leader_commit.min(index).max(self.commit);
            self.apply_committed();
        }
        AppendResponse {
            term: req.term,
            success: true,
            index,
            conflict_term: None,
            conflict_index: 0,
            read_round: req.read_round,
        }
    }

    pub(super) fn on_append_reply(&mut self, from: NodeId, resp: AppendResponse) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        // Any answer at this term confirms this leader for the round it echoes.
        pr.acked_round = pr.acked_round.max(resp.read_round);
        if resp.success {
            if resp.index > pr.matched {
                pr.matched = resp.index.min(last);
            }
            pr.next = pr.next.max(pr.matched + 1);
            pr.probing = false;
            pr.probe_sent = false;
            let more = pr.next <= last;
            self.maybe_commit();
            self.apply_committed();
            if more {
                self.send_append(from);
            }
            return;
        }
        // Only the answer to the outstanding probe, or the first rejection of a pipeline,
        // moves `next` (as etcd's `maybeDecrTo`): duplicated and reordered rejections
        // are stale, and acting on each would multiply messages.
        let current = if pr.probing {
            pr.probe_sent && resp.index + 1 == pr.next
        } else {
            resp.index >= pr.matched
        };
        if !current {
            return;
        }
        let hint = match resp.conflict_term {
            Some(t) => self
                .log
                .last_index_of_term(t)
                .map_or(resp.conflict_index, |i| i + 1),
            None => resp.conflict_index,
        };
        let next = hint.min(resp.index).max(pr.matched + 1).min(last + 1);
        let moved = next != pr.next || !pr.probing;
        pr.next = next;
        pr.probing = true;
        if moved {
            pr.probe_sent = false;
            self.send_append(from);
        }
        // Otherwise the follower rejected where it was already asked: it lost entries it
        // had acknowledged, which durable storage rules out; retry at the next heartbeat
        // rather than in a tight loop.
    }

    pub(super) fn on_heartbeat_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.role != Role::Leader {
            return;
        }
        for pr in self.progress.values_mut() {
            pr.probe_sent = false;
        }
        // Every heartbeat is a new round: it renews the lease.
        let confirmed = self.confirmed_round();
        self.rounds.prune_before(confirmed);
        self.rounds.start(ctx.now());
        self.broadcast_append();
        ctx.set_timer(HEARTBEAT_TIMER, self.params.heartbeat);
    }
}
