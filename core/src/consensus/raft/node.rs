//! A Raft node as a [`Node`] of the simulator: elections, log replication, commitment and
//! the key-value state machine, following Figure 2 of Ongaro & Ousterhout (2014) and
//! Ongaro's thesis (2014) for the parts the paper leaves out:
//!
//! - Randomized election timeouts (paper §5.2), on the node's own — possibly drifting —
//!   clock.
//! - Pre-vote (thesis §9.6, switchable): a node whose election timer fires first asks
//!   whether it *could* win, without raising its term; voters say yes only if its log is
//!   up to date and they have not heard from a leader within the minimum election
//!   timeout. A node cut off by a partition therefore keeps its term, and cannot depose
//!   a healthy leader when it returns.
//! - Check-quorum (thesis §6.2, switchable): a leader that has not heard from a majority
//!   within an election timeout steps down; followers that heard from a leader within
//!   the minimum election timeout ignore RequestVote (thesis §4.2.3).
//! - AppendEntries with fast backtracking (paper §5.3): a follower that rejects says the
//!   term of its conflicting entry and the first index of that term, so the leader skips
//!   a whole term per round trip instead of one entry.
//! - Commitment by counting replicas only for entries of the leader's own term (paper
//!   §5.4.2, Figure 8); a new leader appends a no-op so earlier entries commit promptly.
//! - Durable term, vote and log: every event's records are appended to the WAL and
//!   fsynced before any message or reply the event produces (see [`super::storage`]).
//!   Outgoing messages are therefore buffered and flushed at the end of each handler —
//!   the `Ready` / `advance` discipline of raft-rs, in one place.
//!
//! Clients: a node that is not the leader answers `Fail("not leader; try n")` (or
//! "leader unknown"), which is definite — it did nothing — and cheap; forwarding would
//! hide the leader from the page and add a hop whose loss leaves the outcome unknown.
//! A leader that loses leadership drops its waiting requests: their entries may still
//! commit under the next leader, so only a timeout ("unknown") is honest. Retries are
//! safe because commands carry a session and number ([`super::state_machine`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::consensus::raft::config::{RaftParams, ReadMode};
use crate::consensus::raft::log::Log;
use crate::consensus::raft::membership::ConfigWaiter;
use crate::consensus::raft::messages::{
    AppendRequest, AppendResponse, Entry, EntryData, LogIndex, Membership, Message, Snapshot,
    SnapshotRequest, SnapshotResponse, Term, VoteRequest, VoteResponse,
};
use crate::consensus::raft::reads::{PendingRead, Rounds};
use crate::consensus::raft::state_machine::{Applied, KvCommand, KvOp, KvResponse, KvStore};
use crate::consensus::raft::storage::{self, WalWriter};
use crate::consensus::raft::transfer::Transfer;
use crate::sim::disk::Disk;
use crate::sim::node::{ClientId, ClientRequest, Ctx, Node, NodeId, Reply, RequestId, TimerId};
use crate::time::{Duration, Time};

/// Fires when a follower has heard nothing for an election timeout; at a leader, it
/// marks the end of a check-quorum period.
pub const ELECTION_TIMER: TimerId = 0;
/// A leader's heartbeat.
pub const HEARTBEAT_TIMER: TimerId = 1;

/// What a node currently is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    /// Collecting pre-votes, term unchanged (thesis §9.6).
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// What a leader knows about one follower's log (paper Figure 2: nextIndex, matchIndex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub next: LogIndex,
    pub matched: LogIndex,
    /// Searching for where the follower's log matches: one AppendEntries at a time.
    /// Otherwise entries are pipelined and `next` advances as they are sent.
    pub probing: bool,
    /// A probe is outstanding; the next one waits for its answer or the next heartbeat.
    pub probe_sent: bool,
    /// Heard from since the start of the current check-quorum period.
    pub active: bool,
    /// The newest heartbeat round this follower has answered (see [`super::reads`]).
    pub acked_round: u64,
}

/// A client request to a Raft cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RaftRequest {
    /// A key-value command (boxed: the simulator moves requests through its event queue
    /// by value, and a command is larger than any other message).
    Kv(Box<KvCommand>),
    /// Take a snapshot of everything applied now and compact the log (answered by any
    /// node, for itself).
    Snapshot,
    /// Hand leadership to `to` (thesis §3.10); asked of the leader.
    TransferLeadership {
        to: NodeId,
    },
    /// Add `node`: as a learner, promoted to voter once caught up (thesis §4.2.1).
    AddNode {
        node: NodeId,
    },
    RemoveNode {
        node: NodeId,
    },
}

/// A request a leader will answer once its entry is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Waiting {
    client: ClientId,
    request: RequestId,
}

/// One Raft server.
#[derive(Debug, Clone)]
pub struct RaftNode {
    pub(super) id: NodeId,
    pub(super) params: RaftParams,
    // Durable (mirrored by the WAL).
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) log: Log,
    /// The latest snapshot, durable and in memory (a leader sends it to followers that
    /// need entries it has compacted away).
    pub(super) snapshot: Arc<Snapshot>,
    // Volatile.
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) commit: LogIndex,
    pub(super) applied: LogIndex,
    pub(super) applied_digest: u64,
    pub(super) kv: KvStore,
    pub(super) membership: Membership,
    pub(super) votes: BTreeSet<NodeId>,
    pub(super) progress: BTreeMap<NodeId, Progress>,
    pub(super) waiting: BTreeMap<LogIndex, Waiting>,
    /// Local time the election timer was last armed, and for how long.
    pub(super) election_armed_at: Time,
    pub(super) election_timeout: Duration,
    /// Local time this node last heard from a leader of its term.
    pub(super) leader_contact: Option<Time>,
    pub(super) rounds: Rounds,
    pub(super) pending_reads: Vec<PendingRead>,
    pub(super) transfer: Option<Transfer>,
    pub(super) config_waiters: Vec<ConfigWaiter>,
    /// Index of the newest configuration entry (0 if none since the initial one).
    pub(super) config_index: LogIndex,
    pub(super) wal: WalWriter,
    pub(super) outbox: Vec<(NodeId, Message)>,
    pub(super) replies: Vec<(ClientId, RequestId, Reply<KvResponse>)>,
    /// Torn bytes found at the end of the WAL by the last recovery.
    pub(super) recovered_garbage: usize,
}

impl RaftNode {
    // ---- observation (the view, the invariant checker, tests) ----

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn params(&self) -> &RaftParams {
        &self.params
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        self.vote
    }
    pub fn log(&self) -> &Log {
        &self.log
    }
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
    pub fn raft_role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// The leader this node believes in, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    /// The log's prefix digest at the applied index (see [`Log::digest_at`]).
    pub fn applied_digest(&self) -> u64 {
        self.applied_digest
    }
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The leader's view of each follower (empty unless leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    /// Requests waiting for their entry to apply.
    pub fn waiting_requests(&self) -> usize {
        self.waiting.len()
    }
    pub fn recovered_garbage(&self) -> usize {
        self.recovered_garbage
    }
    /// How far the election timer has run, in [0, 1], at local time `now`.
    pub fn election_progress(&self, now: Time) -> f64 {
        if self.election_timeout == Duration::ZERO {
            return 0.0;
        }
        let run = now.saturating_since(self.election_armed_at).0 as f64;
        (run / self.election_timeout.0 as f64).clamp(0.0, 1.0)
    }

    // ---- durable state ----

    fn set_hard_state(&mut self, term: Term, vote: Option<NodeId>) {
        if (term, vote) != (self.term, self.vote) {
            self.term = term;
            self.vote = vote;
            self.wal.hard_state(term, vote);
        }
    }

    pub(super) fn append_local(&mut self, entry: Entry) -> LogIndex {
        let index = self.log.last_index() + 1;
        self.wal.entry(index, &entry);
        let is_config = matches!(*entry.data, EntryData::Membership(_));
        self.log.push(entry);
        if is_config {
            self.refresh_membership();
        }
        index
    }

    /// The configuration in force: the newest one in the log, committed or not (thesis
    /// §4.1), else the snapshot's, else the initial one.
    fn refresh_membership(&mut self) {
        self.membership = self.membership_at(self.log.last_index());
        self.config_index = self
            .log
            .iter()
            .rev()
            .find(|(_, e)| matches!(*e.data, EntryData::Membership(_)))
            .map_or(self.snapshot.index, |(i, _)| i);
        self.reconcile_progress();
    }

    /// The configuration in force after entry `index`.
    fn membership_at(&self, index: LogIndex) -> Membership {
        let latest = self
            .log
            .iter()
            .rev()
            .skip_while(|(i, _)| *i > index)
            .find_map(|(_, e)| match &*e.data {
                EntryData::Membership(m) => Some(m.clone()),
                _ => None,
            });
        match latest {
            Some(m) => m,
            None if self.snapshot.index > 0 => self.snapshot.membership.clone(),
            None => Membership::initial(self.params.initial_members),
        }
    }

    // ---- snapshots (paper §7) ----

    /// Snapshots everything applied and drops those entries from the log.
    fn take_snapshot(&mut self, ctx: &mut Ctx<'_, Self>) {
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
    fn persist_all(&mut self) {
        self.wal
            .rewrite(&self.snapshot, self.term, self.vote, self.log.iter());
    }

    fn maybe_snapshot(&mut self, ctx: &mut Ctx<'_, Self>) {
        let every = self.params.snapshot_entries;
        if every > 0 && self.applied >= self.log.base_index() + every {
            self.take_snapshot(ctx);
        }
    }

    /// A follower installs the leader's snapshot (paper Figure 13).
    fn on_install_snapshot(&mut self, from: NodeId, req: SnapshotRequest, ctx: &mut Ctx<'_, Self>) {
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

    fn on_snapshot_reply(&mut self, from: NodeId, resp: SnapshotResponse) {
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

    // ---- effects ----

    /// Makes this event's records durable, then lets its messages and replies out.
    fn flush(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.role == Role::Leader {
            let now = ctx.now();
            self.serve_reads(now);
            self.check_transfer(now);
            self.membership_tick(ctx);
        }
        self.maybe_snapshot(ctx);
        self.wal.flush(|op| ctx.disk(op));
        for (to, msg) in self.outbox.drain(..) {
            ctx.send(to, msg);
        }
        for (client, request, reply) in self.replies.drain(..) {
            ctx.reply(client, request, reply);
        }
    }

    pub(super) fn send(&mut self, to: NodeId, msg: Message) {
        if to != self.id {
            self.outbox.push((to, msg));
        }
    }

    fn arm_election_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
        let min = self.params.election_min.0;
        let max = self.params.election_max.0.max(min + 1);
        let timeout = Duration(ctx.rng().range_inclusive(min, max - 1));
        self.election_armed_at = ctx.now();
        self.election_timeout = timeout;
        ctx.set_timer(ELECTION_TIMER, timeout);
    }

    /// Whether this node heard from a leader so recently that an election now would
    /// only disrupt it (thesis §4.2.3, §9.6).
    fn leader_is_fresh(&self, now: Time) -> bool {
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some()
            && self
                .leader_contact
                .is_some_and(|t| now.saturating_since(t) < self.params.election_min)
    }

    // ---- roles ----

    pub(super) fn become_follower(
        &mut self,
        term: Term,
        leader: Option<NodeId>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let was = self.role;
        if term > self.term {
            self.set_hard_state(term, None);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        // Entries of waiting requests may still commit under the next leader: only the
        // client's timeout can say "unknown".
        self.waiting.clear();
        self.drop_config_waiters();
        self.fail_reads();
        self.abandon_transfer("leadership lost during the transfer");
        if was == Role::Leader {
            ctx.cancel_timer(HEARTBEAT_TIMER);
        }
        if was != Role::Follower {
            ctx.state_change(format!("follower in term {}", self.term));
            self.arm_election_timer(ctx);
        }
    }

    fn start_pre_vote(&mut self, ctx: &mut Ctx<'_, Self>) {
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

    fn broadcast_vote(&mut self, req: VoteRequest) {
        let voters: Vec<NodeId> = self.membership.voters.iter().copied().collect();
        for v in voters {
            self.send(v, Message::Vote(req.clone()));
        }
    }

    fn become_leader(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
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

    // ---- replication ----

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
    fn maybe_commit(&mut self) {
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

    fn apply_committed(&mut self) {
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

    // ---- message handlers ----

    fn on_vote_request(&mut self, from: NodeId, req: VoteRequest, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let up_to_date = self
            .log
            .is_up_to_date(req.last_log_index, req.last_log_term);
        if req.pre_vote {
            // A pre-vote changes nothing here; it only predicts a real vote.
            let granted = req.term > self.term && up_to_date && !self.leader_is_fresh(now);
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

    fn on_vote_reply(&mut self, from: NodeId, resp: VoteResponse, ctx: &mut Ctx<'_, Self>) {
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

    fn on_append(&mut self, from: NodeId, req: AppendRequest, ctx: &mut Ctx<'_, Self>) {
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
    fn accept_entries(&mut self, req: &AppendRequest) -> AppendResponse {
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

    fn on_append_reply(&mut self, from: NodeId, resp: AppendResponse) {
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

    // ---- timers ----

    fn on_election_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
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

    fn check_quorum(&mut self, ctx: &mut Ctx<'_, Self>) {
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

    fn on_heartbeat_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
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

    // ---- clients ----

    pub(super) fn not_leader(&self) -> Reply<KvResponse> {
        Reply::Fail(match self.leader {
            Some(l) if l != self.id => format!("not leader; try {l}"),
            _ => "not leader; leader unknown".to_string(),
        })
    }

    fn on_kv(&mut self, client: ClientId, request: RequestId, cmd: KvCommand, now: Time) {
        if self.role != Role::Leader {
            let reply = self.not_leader();
            self.replies.push((client, request, reply));
            return;
        }
        if let Some(t) = &self.transfer {
            // Thesis §3.10: no new commands while leadership moves; point at the target.
            let reply = Reply::Fail(format!("not leader; transferring, try {}", t.to));
            self.replies.push((client, request, reply));
            return;
        }
        if self.params.read_mode != ReadMode::Log
            && let KvOp::Get { key } = cmd.op
        {
            self.on_read(client, request, key, now);
            return;
        }
        if let Some(r) = self.kv.cached(cmd.session, cmd.seq) {
            // A retry of a command already applied: answer from the session.
            self.replies.push((client, request, Reply::Ok(r.clone())));
            return;
        }
        let index = self.append_local(Entry::new(self.term, EntryData::Command(cmd)));
        self.waiting.insert(index, Waiting { client, request });
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            if self.progress.get(&p).is_some_and(|pr| !pr.probing) {
                self.send_append(p);
            }
        }
        self.maybe_commit();
        self.apply_committed();
    }

    /// Dispatches a message after the term rules every Raft message obeys (Figure 2,
    /// "Rules for Servers": a higher term makes any server a follower), with the
    /// exceptions pre-vote and check-quorum need.
    fn handle(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        let term = msg.term();
        if term > self.term {
            match &msg {
                // A pre-vote request or a granted pre-vote does not change terms.
                Message::Vote(r) if r.pre_vote => {}
                Message::VoteReply(r) if r.pre_vote && r.granted => {}
                Message::Vote(r) => {
                    let sticky =
                        self.params.check_quorum || self.params.read_mode == ReadMode::Lease;
                    if sticky && !r.transfer && self.leader_is_fresh(ctx.now()) {
                        // Heard from a leader within the minimum election timeout: this
                        // candidate is probably cut off from it; ignore (thesis §4.2.3).
                        return;
                    }
                    self.become_follower(term, None, ctx);
                }
                Message::Append(_) | Message::InstallSnapshot(_) => {
                    self.become_follower(term, Some(from), ctx)
                }
                _ => self.become_follower(term, None, ctx),
            }
        } else if term < self.term {
            match msg {
                Message::Vote(r) => {
                    let reply = VoteResponse {
                        term: self.term,
                        granted: false,
                        pre_vote: r.pre_vote,
                    };
                    self.send(from, Message::VoteReply(reply));
                }
                // Tell a stale leader about the newer term so it steps down. This is also
                // how a node that raised its term in isolation deposes the leader when it
                // comes back — the disruption pre-vote prevents.
                Message::Append(r) => {
                    let reply = AppendResponse {
                        term: self.term,
                        success: false,
                        index: r.prev_log_index,
                        conflict_term: None,
                        conflict_index: 0,
                        read_round: r.read_round,
                    };
                    self.send(from, Message::AppendReply(reply));
                }
                Message::InstallSnapshot(_) => {
                    let reply = SnapshotResponse {
                        term: self.term,
                        index: 0,
                    };
                    self.send(from, Message::SnapshotReply(reply));
                }
                _ => {}
            }
            return;
        }
        match msg {
            Message::Vote(r) => self.on_vote_request(from, r, ctx),
            Message::VoteReply(r) => self.on_vote_reply(from, r, ctx),
            Message::Append(r) => self.on_append(from, r, ctx),
            Message::AppendReply(r) => self.on_append_reply(from, r),
            Message::InstallSnapshot(r) => self.on_install_snapshot(from, r, ctx),
            Message::SnapshotReply(r) => self.on_snapshot_reply(from, r),
            Message::TimeoutNow { .. } => self.on_timeout_now(from, ctx),
        }
    }
}

impl Node for RaftNode {
    type Message = Message;
    type Request = RaftRequest;
    type Response = KvResponse;
    type Config = RaftParams;

    fn recover(id: NodeId, params: &RaftParams, disk: &Disk) -> Self {
        let rec = storage::recover(disk);
        let wal = WalWriter::new(&rec);
        let mut node = RaftNode {
            id,
            params: params.clone(),
            term: rec.term,
            vote: rec.vote,
            commit: rec.snapshot.index,
            applied: rec.snapshot.index,
            applied_digest: rec.snapshot.digest,
            kv: rec.snapshot.kv.clone(),
            snapshot: rec.snapshot,
            log: rec.log,
            role: Role::Follower,
            leader: None,
            membership: Membership::initial(params.initial_members),
            votes: BTreeSet::new(),
            progress: BTreeMap::new(),
            waiting: BTreeMap::new(),
            election_armed_at: Time::ZERO,
            election_timeout: Duration::ZERO,
            leader_contact: None,
            rounds: Rounds::default(),
            pending_reads: Vec::new(),
            transfer: None,
            config_waiters: Vec::new(),
            config_index: 0,
            wal,
            outbox: Vec::new(),
            replies: Vec::new(),
            recovered_garbage: rec.garbage,
        };
        node.refresh_membership();
        node
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.recovered_garbage > 0 {
            ctx.log(format!(
                "recovery: {} torn bytes at the end of the WAL ignored",
                self.recovered_garbage
            ));
        }
        if self.wal.needs_rewrite() {
            // A fresh (or never successfully written) disk: lay down the first file.
            self.persist_all();
        }
        self.arm_election_timer(ctx);
        self.flush(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        self.handle(from, msg, ctx);
        self.flush(ctx);
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match timer {
            ELECTION_TIMER => self.on_election_timer(ctx),
            HEARTBEAT_TIMER => self.on_heartbeat_timer(ctx),
            _ => {}
        }
        self.flush(ctx);
    }

    fn on_request(&mut self, request: ClientRequest<RaftRequest>, ctx: &mut Ctx<'_, Self>) {
        match request.body {
            RaftRequest::Kv(cmd) => self.on_kv(request.client, request.id, *cmd, ctx.now()),
            RaftRequest::TransferLeadership { to } => {
                self.on_transfer_request(request.client, request.id, to, ctx.now())
            }
            RaftRequest::AddNode { node } => {
                self.on_membership_request(request.client, request.id, node, true)
            }
            RaftRequest::RemoveNode { node } => {
                self.on_membership_request(request.client, request.id, node, false)
            }
            RaftRequest::Snapshot => {
                self.take_snapshot(ctx);
                let reply = Reply::Ok(KvResponse::Ok);
                self.replies.push((request.client, request.id, reply));
            }
        }
        self.flush(ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        msg.kind()
    }

    fn role(&self) -> &'static str {
        self.role.name()
    }
}
