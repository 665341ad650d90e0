//! A Raft server as a [`Node`] of the simulator (Ongaro & Ousterhout 2014, Figure 2; the
//! thesis for what the paper leaves out): its state, the term rules every message obeys,
//! client requests, and the discipline that makes it crash-safe. The protocol itself is
//! spread over sibling modules, one concern each: [`super::election`],
//! [`super::replication`], [`super::snapshot`], [`super::reads`], [`super::transfer`],
//! [`super::membership`].
//!
//! Durability: every event's records (term, vote, entries, snapshots) are appended to the
//! WAL and fsynced before any message or reply the event produces (see
//! [`super::storage`]). Outgoing messages are therefore buffered and flushed at the end of
//! each handler — the `Ready` / `advance` discipline of raft-rs, in one place — so a crash
//! part-way through an event can lose only what nobody was told.
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
    AppendResponse, Entry, EntryData, LogIndex, Membership, Message, Snapshot, SnapshotResponse,
    Term, VoteResponse,
};
use crate::consensus::raft::reads::{PendingRead, Rounds};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse, KvStore};
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
/// Ends the quiet period after a restart, during which a node refuses votes (see
/// [`super::election`]).
pub const BOOT_QUIET_TIMER: TimerId = 2;
/// Ends a leadership transfer that has not happened in time (see [`super::transfer`]).
pub const TRANSFER_TIMER: TimerId = 3;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Waiting {
    pub(super) client: ClientId,
    pub(super) request: RequestId,
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
    /// Restarted less than a minimum election timeout ago: it may have confirmed a
    /// leader's lease just before it went down, and has forgotten when, so it refuses
    /// votes until [`BOOT_QUIET_TIMER`] fires.
    pub(super) boot_quiet: bool,
    pub(super) rounds: Rounds,
    pub(super) pending_reads: Vec<PendingRead>,
    pub(super) transfer: Option<Transfer>,
    /// This leader sent TimeoutNow in its term: the target may be elected at once,
    /// whatever lease this leader holds, so it serves no more lease reads in this term.
    pub(super) sent_timeout_now: bool,
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

    /// The local time the election timer is due (at a leader: the end of the current
    /// check-quorum period).
    pub fn election_timer_due(&self) -> Time {
        self.election_armed_at + self.election_timeout
    }

    pub(super) fn set_hard_state(&mut self, term: Term, vote: Option<NodeId>) {
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
    pub(super) fn refresh_membership(&mut self) {
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
    pub(super) fn membership_at(&self, index: LogIndex) -> Membership {
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

    /// Makes this event's records durable, then lets its messages and replies out.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.role == Role::Leader {
            let now = ctx.now();
            self.serve_reads(now);
            self.check_transfer();
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
        self.sent_timeout_now = false;
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
            ctx.cancel_timer(TRANSFER_TIMER);
        }
        if was != Role::Follower {
            ctx.state_change(format!("follower in term {}", self.term));
            self.arm_election_timer(ctx);
        }
    }

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
                    if sticky && !r.transfer && self.refuses_votes(ctx.now()) {
                        // Heard from a leader within the minimum election timeout (or
                        // may have, before a restart): this candidate is probably cut off
                        // from it; ignore (thesis §4.2.3).
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
            boot_quiet: false,
            rounds: Rounds::default(),
            pending_reads: Vec::new(),
            transfer: None,
            sent_timeout_now: false,
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
        if self.term > 0 {
            // Before it went down this node may have acknowledged a heartbeat round that
            // a leader's lease rests on, promising no vote for a minimum election timeout;
            // it no longer knows when. Term 0 on disk means it never heard from a leader
            // (it persists a new term before answering), so a first boot skips this.
            // Set before the election timer: at an equal instant it fires first.
            self.boot_quiet = true;
            ctx.set_timer(BOOT_QUIET_TIMER, self.params.election_min);
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
            BOOT_QUIET_TIMER => self.boot_quiet = false,
            TRANSFER_TIMER => self.on_transfer_timer(),
            _ => {}
        }
        self.flush(ctx);
    }

    fn on_request(&mut self, request: ClientRequest<RaftRequest>, ctx: &mut Ctx<'_, Self>) {
        match request.body {
            RaftRequest::Kv(cmd) => self.on_kv(request.client, request.id, *cmd, ctx.now()),
            RaftRequest::TransferLeadership { to } => {
                self.on_transfer_request(request.client, request.id, to, ctx)
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
