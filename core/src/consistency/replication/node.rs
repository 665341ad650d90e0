//! A primary–replica node: the primary orders every client operation into a log and ships
//! it to the replicas; when to answer the client is the ack mode, and who may become
//! primary after a failure is the fencing switch.
//!
//! The log and the replication messages are Raft's (Ongaro & Ousterhout 2014, §5.3):
//! `Append` carries the previous entry's index and epoch, a replica refuses an append
//! that does not continue its log and cuts a conflicting suffix. Reads go through the log
//! too, so a read answers what the log said at its position.
//!
//! - **Ack modes** (Kleppmann, DDIA ch. 5, "Synchronous versus asynchronous
//!   replication"): async answers once the primary's own disk has the entry; semi-sync
//!   after one replica has it too; majority after a majority of the nodes; sync after
//!   every node. Only entries of the primary's own epoch are counted this way (Raft's
//!   commit rule, §5.4.2): the primary never answers for an older epoch's entry.
//! - **Failover with fencing**: a replica that hears nothing from the primary for its
//!   failover timeout becomes a candidate for the next epoch and needs the votes of a
//!   majority, each given only to a candidate whose log is at least as up to date
//!   (Raft §5.2, §5.4.1; the epoch is Viewstamped Replication's view number). Every
//!   append carries its epoch and a replica rejects a lower one, so a deposed primary
//!   cannot get another write acknowledged (DDIA ch. 8, "fencing tokens").
//! - **Failover without fencing**: a replica promotes itself on its timeout alone, and a
//!   replica follows whichever primary wrote to it last, whatever its epoch — the
//!   failover DDIA warns about: two primaries (split brain) and acknowledged writes lost
//!   when one overwrites the other. A primary steps down in both modes once it hears of a
//!   higher epoch (or the same epoch from a lower id), as deposed primaries do when the
//!   partition heals.
//!
//! Durable state, on the simulated disk through [`crate::sim::records`], fsynced before it
//! is acted on: the epoch and the vote, and each log entry (an entry at an index the log
//! already has replaces it and everything after). A torn tail is cut at recovery. The
//! role, the commit point and the applied state are volatile and rebuilt.
//!
//! Cost per operation: one log append and fsync at the primary and at each replica, one
//! message per replica (batched under load); the answer waits one round trip except in
//! async mode.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The node's record log.
const LOG: &str = "replication.log";
/// The primary's heartbeat (an append, empty if nothing is outstanding).
const HEARTBEAT_TIMER: u64 = 0;
/// A replica's or candidate's failure detector.
const FAILOVER_TIMER: u64 = 1;
/// Most entries one append carries.
const MAX_BATCH: usize = 64;

/// When the primary answers a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum AckMode {
    /// Once the primary's own disk has the entry.
    Async,
    /// Once one replica has it too.
    SemiSync,
    /// Once a majority of the nodes have it.
    #[default]
    Majority,
    /// Once every node has it.
    Sync,
}

impl AckMode {
    /// Nodes, the primary included, that must hold an entry before it is answered.
    pub fn required(self, nodes: u32) -> u32 {
        let nodes = nodes.max(1);
        match self {
            AckMode::Async => 1,
            AckMode::SemiSync => 2.min(nodes),
            AckMode::Majority => nodes / 2 + 1,
            AckMode::Sync => nodes,
        }
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationParams {
    pub ack: AckMode,
    /// Promotion needs a majority's votes and replicas reject a lower epoch.
    pub fencing: bool,
    /// The primary sends an append at least this often.
    pub heartbeat: Duration,
    /// A replica that hears nothing from a primary for between this and twice this
    /// (drawn each time) starts a failover.
    pub failover_timeout: Duration,
}

impl Default for ReplicationParams {
    fn default() -> Self {
        ReplicationParams {
            ack: AckMode::Majority,
            fencing: true,
            heartbeat: Duration::from_millis(30),
            failover_timeout: Duration::from_millis(150),
        }
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum ReplRequest {
    Get { key: String },
    Put { key: String, value: String },
}

/// What the primary answers: a get's value, and where the operation sits in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplResponse {
    /// A get's value ("" if never written); `None` for a put.
    pub value: Option<String>,
    pub epoch: u64,
    pub index: u64,
    /// The primary that answered.
    pub primary: NodeId,
}

/// What a log entry does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// A new primary's first entry: committing it commits everything before it.
    Noop,
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The epoch of the primary that created it.
    pub epoch: u64,
    /// The client request it answers (none for a no-op).
    pub request: Option<(ClientId, RequestId)>,
    pub op: Op,
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Entries after `prev`, from the primary of `epoch`, which has committed `commit`.
    Append {
        epoch: u64,
        prev_index: u64,
        prev_epoch: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// The answer to an append of `epoch` (the receiver's own epoch if it refused).
    AppendAck {
        epoch: u64,
        result: AckResult,
    },
    /// A candidate for `epoch` asks for a vote (fencing only).
    Vote {
        epoch: u64,
        last_index: u64,
        last_epoch: u64,
    },
    VoteAck {
        epoch: u64,
        granted: bool,
    },
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AckResult {
    /// The replica holds the primary's log up to `matched`.
    Ok { matched: u64 },
    /// The log did not continue at the append's previous entry: resume after `matched`.
    Mismatch { matched: u64 },
    /// Not taken: the receiver is fenced at a higher epoch, or is a primary that wins.
    Refused,
}

/// A durable record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
enum Record {
    Epoch {
        epoch: u64,
        voted: Option<NodeId>,
    },
    /// The entry at `index` (from 1); the log keeps nothing after it.
    Entry {
        index: u64,
        entry: Entry,
    },
}

/// What a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Primary,
    Replica,
    Candidate,
}

/// What the primary knows of one replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The replica holds the primary's log up to here.
    pub matched: u64,
    /// The next index to send.
    pub next: u64,
    /// When (primary's clock) the replica last acknowledged an append, if it has.
    pub acked_at: Option<Time>,
}

/// Counters since the node's last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplStats {
    /// Appends refused because they came from a lower epoch (fencing).
    pub fenced: u64,
    /// Entries cut from this node's log by a primary's conflicting append.
    pub truncated: u64,
    pub promotions: u64,
    pub step_downs: u64,
    /// Client operations answered as primary.
    pub answered: u64,
    /// Client requests refused because this node is not the primary.
    pub redirected: u64,
}

/// A node: the primary, a replica, or a candidate.
#[derive(Debug, Clone)]
pub struct ReplicaNode {
    id: NodeId,
    params: ReplicationParams,
    epoch: u64,
    voted: Option<NodeId>,
    role: Role,
    /// The primary this node last took an append from.
    primary: Option<NodeId>,
    log: Vec<Entry>,
    /// Client requests in the log, so a duplicated request is not appended twice.
    requests: BTreeSet<RequestId>,
    /// Entries known committed, and applied to `data`.
    commit: u64,
    applied: u64,
    data: BTreeMap<String, String>,
    /// Primary: what each replica holds.
    progress: BTreeMap<NodeId, Progress>,
    votes: BTreeSet<NodeId>,
    /// When (own clock) this node last took an append from a primary.
    heard_at: Option<Time>,
    torn_tail: Option<usize>,
    stats: ReplStats,
}

impl ReplicaNode {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn role_kind(&self) -> Role {
        self.role
    }
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }
    pub fn primary(&self) -> Option<NodeId> {
        self.primary
    }
    pub fn log(&self) -> &[Entry] {
        &self.log
    }
    pub fn commit(&self) -> u64 {
        self.commit
    }
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    pub fn heard_at(&self) -> Option<Time> {
        self.heard_at
    }
    pub fn stats(&self) -> ReplStats {
        self.stats
    }
    pub fn params(&self) -> &ReplicationParams {
        &self.params
    }
    /// The entry at `index` (from 1).
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(1)
            .and_then(|i| self.log.get(usize::try_from(i).ok()?))
    }
    fn last(&self) -> (u64, u64) {
        (
            self.log.len() as u64,
            self.log.last().map_or(0, |e| e.epoch),
        )
    }

    fn persist_epoch(&self, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(
            LOG,
            &Record::Epoch {
                epoch: self.epoch,
                voted: self.voted,
            },
        ));
        ctx.disk(DiskOp::Fsync);
    }

    fn failover_timer(&self, ctx: &mut Ctx<'_, Self>) {
        let base = self.params.failover_timeout.0.max(1);
        let after = base + ctx.rng().below(base);
        ctx.set_timer(FAILOVER_TIMER, Duration(after));
    }

    /// Adopts `epoch` if it is higher (durably) and follows; a primary or candidate steps
    /// down.
    fn adopt(&mut self, epoch: u64, ctx: &mut Ctx<'_, Self>) {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.voted = None;
            self.persist_epoch(ctx);
        }
        if self.role != Role::Replica {
            if self.role == Role::Primary {
                self.stats.step_downs += 1;
                ctx.cancel_timer(HEARTBEAT_TIMER);
                ctx.state_change(format!("stepped down in epoch {}", self.epoch));
            }
            self.role = Role::Replica;
            self.progress.clear();
            self.votes.clear();
            self.failover_timer(ctx);
        }
    }

    /// Appends entries from `index` on, cutting whatever the log had there; durable once
    /// the caller's fsync follows.
    fn write_from(&mut self, index: u64, entries: &[Entry], ctx: &mut Ctx<'_, Self>) {
        let keep = index.saturating_sub(1) as usize;
        if keep < self.log.len() {
            self.stats.truncated += (self.log.len() - keep) as u64;
            for e in self.log.drain(keep..) {
                if let Some((_, r)) = e.request {
                    self.requests.remove(&r);
                }
            }
            if (keep as u64) < self.applied {
                // An applied entry was cut (only without fencing, or with too weak an
                // ack mode): rebuild the state from what is left.
                self.applied = 0;
                self.commit = keep as u64;
                self.data.clear();
                self.apply(None, ctx);
            }
            self.commit = self.commit.min(keep as u64);
        }
        for (k, entry) in entries.iter().enumerate() {
            ctx.disk(records::append(
                LOG,
                &Record::Entry {
                    index: index + k as u64,
                    entry: entry.clone(),
                },
            ));
            if let Some((_, r)) = entry.request {
                self.requests.insert(r);
            }
            self.log.push(entry.clone());
        }
    }

    /// Applies committed entries; the primary answers the clients of its own.
    fn apply(&mut self, answer_for: Option<u64>, ctx: &mut Ctx<'_, Self>) {
        while self.applied < self.commit {
            self.applied += 1;
            let Some(entry) = self.entry(self.applied).cloned() else {
                break;
            };
            let value = match &entry.op {
                Op::Noop => None,
                Op::Get { key } => Some(self.data.get(key).cloned().unwrap_or_default()),
                Op::Put { key, value } => {
                    self.data.insert(key.clone(), value.clone());
                    None
                }
            };
            if let (Some(epoch), Some((client, request))) = (answer_for, entry.request)
                && entry.epoch == epoch
            {
                self.stats.answered += 1;
                ctx.reply(
                    client,
                    request,
                    Reply::Ok(ReplResponse {
                        value,
                        epoch,
                        index: self.applied,
                        primary: self.id,
                    }),
                );
            }
        }
    }

    fn become_primary(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.role = Role::Primary;
        self.primary = Some(self.id);
        self.votes.clear();
        self.stats.promotions += 1;
        ctx.cancel_timer(FAILOVER_TIMER);
        ctx.state_change(format!("primary of epoch {}", self.epoch));
        let next = self.log.len() as u64 + 1;
        self.progress = (0..ctx.node_count())
            .filter(|&n| n != self.id)
            .map(|n| {
                (
                    n,
                    Progress {
                        matched: 0,
                        next,
                        acked_at: None,
                    },
                )
            })
            .collect();
        let noop = Entry {
            epoch: self.epoch,
            request: None,
            op: Op::Noop,
        };
        self.write_from(next, &[noop], ctx);
        ctx.disk(DiskOp::Fsync);
        self.advance_commit(ctx);
        self.heartbeat(ctx);
    }

    /// Sends every replica the entries it has not acknowledged (an empty append if none).
    fn heartbeat(&mut self, ctx: &mut Ctx<'_, Self>) {
        let replicas: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in replicas {
            if let Some(p) = self.progress.get_mut(&to) {
                p.next = p.matched + 1;
            }
            self.send_append(to, ctx);
        }
        ctx.set_timer(HEARTBEAT_TIMER, self.params.heartbeat);
    }

    fn send_append(&mut self, to: NodeId, ctx: &mut Ctx<'_, Self>) {
        let Some(p) = self.progress.get_mut(&to) else {
            return;
        };
        let len = self.log.len() as u64;
        let next = p.next.clamp(1, len + 1);
        let prev_index = next - 1;
        let prev_epoch = prev_index
            .checked_sub(1)
            .and_then(|i| self.log.get(i as usize))
            .map_or(0, |e| e.epoch);
        let from = prev_index as usize;
        let to_index = (from + MAX_BATCH).min(self.log.len());
        let entries = self.log.get(from..to_index).unwrap_or_default().to_vec();
        p.next = next + entries.len() as u64;
        ctx.send(
            to,
            Message::Append {
                epoch: self.epoch,
                prev_index,
                prev_epoch,
                entries,
                commit: self.commit,
            },
        );
    }

    /// Commits the newest entry of this epoch that enough nodes hold, and answers.
    fn advance_commit(&mut self, ctx: &mut Ctx<'_, Self>) {
        let required = self.params.ack.required(ctx.node_count()) as usize;
        let mut held: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        held.push(self.log.len() as u64);
        held.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = held.get(required.saturating_sub(1)) else {
            return;
        };
        if candidate > self.commit && self.entry(candidate).is_some_and(|e| e.epoch == self.epoch) {
            self.commit = candidate;
            self.apply(Some(self.epoch), ctx);
        }
    }

    fn on_append(
        &mut self,
        from: NodeId,
        epoch: u64,
        prev: (u64, u64),
        entries: Vec<Entry>,
        commit: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let stale = epoch < self.epoch;
        // Two primaries (only without fencing can they share an epoch): the higher epoch
        // wins, then the lower id.
        let wins = self.role == Role::Primary && (stale || (epoch == self.epoch && from > self.id));
        if (stale && self.params.fencing) || wins {
            if stale && self.params.fencing {
                self.stats.fenced += 1;
            }
            let epoch = self.epoch;
            ctx.send(
                from,
                Message::AppendAck {
                    epoch,
                    result: AckResult::Refused,
                },
            );
            return;
        }
        self.adopt(epoch, ctx);
        if self.primary != Some(from) {
            self.primary = Some(from);
            ctx.state_change(format!("follows n{from} (epoch {epoch})"));
        }
        self.heard_at = Some(ctx.now());
        self.failover_timer(ctx);
        let (prev_index, prev_epoch) = prev;
        let continues = prev_index == 0
            || self
                .entry(prev_index)
                .is_some_and(|e| e.epoch == prev_epoch);
        if !continues {
            let resume = prev_index.saturating_sub(1).min(self.log.len() as u64);
            ctx.send(
                from,
                Message::AppendAck {
                    epoch,
                    result: AckResult::Mismatch { matched: resume },
                },
            );
            return;
        }
        // Skip what the log already holds; write from the first difference.
        let mut first_new = entries.len();
        for (k, e) in entries.iter().enumerate() {
            if self.entry(prev_index + 1 + k as u64) != Some(e) {
                first_new = k;
                break;
            }
        }
        if let Some(rest) = entries.get(first_new..)
            && !rest.is_empty()
        {
            self.write_from(prev_index + 1 + first_new as u64, rest, ctx);
            ctx.disk(DiskOp::Fsync);
        }
        let matched = prev_index + entries.len() as u64;
        let known = commit.min(matched);
        if known > self.commit {
            self.commit = known;
            self.apply(None, ctx);
        }
        ctx.send(
            from,
            Message::AppendAck {
                epoch,
                result: AckResult::Ok { matched },
            },
        );
    }

    fn on_append_ack(
        &mut self,
        from: NodeId,
        epoch: u64,
        result: AckResult,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let refused_by_winner = result == AckResult::Refused
            && self.role == Role::Primary
            && epoch == self.epoch
            && from < self.id;
        if epoch > self.epoch || refused_by_winner {
            self.adopt(epoch, ctx);
            return;
        }
        if self.role != Role::Primary || epoch < self.epoch {
            return;
        }
        let now = ctx.now();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        match result {
            AckResult::Ok { matched } => {
                p.matched = p.matched.max(matched);
                p.next = p.next.max(p.matched + 1);
                p.acked_at = Some(now);
                self.advance_commit(ctx);
            }
            AckResult::Mismatch { matched } => {
                p.next = matched + 1;
                self.send_append(from, ctx);
            }
            AckResult::Refused => {}
        }
    }

    fn start_failover(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.epoch += 1;
        self.failover_timer(ctx);
        if !self.params.fencing {
            self.voted = Some(self.id);
            self.persist_epoch(ctx);
            self.become_primary(ctx);
            return;
        }
        self.role = Role::Candidate;
        self.voted = Some(self.id);
        self.votes = BTreeSet::from([self.id]);
        self.persist_epoch(ctx);
        ctx.state_change(format!("candidate for epoch {}", self.epoch));
        let (last_index, last_epoch) = self.last();
        for to in (0..ctx.node_count()).filter(|&n| n != self.id) {
            ctx.send(
                to,
                Message::Vote {
                    epoch: self.epoch,
                    last_index,
                    last_epoch,
                },
            );
        }
        if self.votes.len() as u32 > ctx.node_count() / 2 {
            self.become_primary(ctx);
        }
    }
}

impl Fingerprint for ReplicaNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let ReplicaNode {
            id,
            params,
            epoch,
            voted,
            role,
            primary,
            log,
            requests,
            commit,
            applied,
            data,
            progress,
            votes,
            heard_at,
            torn_tail,
            stats,
        } = self;
        id.hash(h);
        (params.ack, params.fencing, params.heartbeat.0).hash(h);
        params.failover_timeout.0.hash(h);
        (epoch, voted, role, primary).hash(h);
        (log, requests, commit, applied, data).hash(h);
        (progress, votes, heard_at, torn_tail, stats).hash(h);
    }
}

impl Node for ReplicaNode {
    type Message = Message;
    type Request = ReplRequest;
    type Response = ReplResponse;
    type Config = ReplicationParams;

    fn recover(id: NodeId, params: &ReplicationParams, disk: &Disk) -> Self {
        let (records, torn_tail) = records::read_with_tail::<Record>(disk, LOG);
        let mut node = ReplicaNode {
            id,
            params: params.clone(),
            // Epoch 1's primary is node 0 by construction: nobody votes for it.
            epoch: 1,
            voted: None,
            role: Role::Replica,
            primary: Some(0),
            log: Vec::new(),
            requests: BTreeSet::new(),
            commit: 0,
            applied: 0,
            data: BTreeMap::new(),
            progress: BTreeMap::new(),
            votes: BTreeSet::new(),
            heard_at: None,
            torn_tail,
            stats: ReplStats::default(),
        };
        let first_boot = records.is_empty();
        for record in records {
            match record {
                Record::Epoch { epoch, voted } => {
                    node.epoch = epoch;
                    node.voted = voted;
                }
                Record::Entry { index, entry } => {
                    node.log.truncate(index.saturating_sub(1) as usize);
                    node.log.push(entry);
                }
            }
        }
        if node.epoch > 1 {
            node.primary = None;
        }
        node.requests = node
            .log
            .iter()
            .filter_map(|e| e.request.map(|(_, r)| r))
            .collect();
        // A node that has written nothing durable is at its first boot: node 0 starts as
        // epoch 1's primary. A restart of a node that wrote something is a replica.
        if first_boot && id == 0 {
            node.role = Role::Primary;
        }
        node
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        // Records appended after a torn tail would be unreadable at the next recovery.
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        if self.role == Role::Primary {
            self.voted = Some(self.id);
            self.persist_epoch(ctx);
            self.become_primary(ctx);
        } else {
            self.failover_timer(ctx);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Append {
                epoch,
                prev_index,
                prev_epoch,
                entries,
                commit,
            } => self.on_append(from, epoch, (prev_index, prev_epoch), entries, commit, ctx),
            Message::AppendAck { epoch, result } => {
                self.on_append_ack(from, epoch, result, ctx);
            }
            Message::Vote {
                epoch,
                last_index,
                last_epoch,
            } => {
                if epoch > self.epoch {
                    self.adopt(epoch, ctx);
                    self.primary = None;
                }
                let up_to_date = (last_epoch, last_index) >= {
                    let (i, e) = self.last();
                    (e, i)
                };
                let granted = self.params.fencing
                    && epoch == self.epoch
                    && self.voted.is_none_or(|v| v == from)
                    && up_to_date;
                if granted && self.voted.is_none() {
                    self.voted = Some(from);
                    self.persist_epoch(ctx);
                    self.failover_timer(ctx);
                }
                ctx.send(
                    from,
                    Message::VoteAck {
                        epoch: self.epoch,
                        granted,
                    },
                );
            }
            Message::VoteAck { epoch, granted } => {
                if epoch > self.epoch {
                    self.adopt(epoch, ctx);
                    return;
                }
                if self.role != Role::Candidate || epoch != self.epoch || !granted {
                    return;
                }
                self.votes.insert(from);
                if self.votes.len() as u32 > ctx.node_count() / 2 {
                    self.become_primary(ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, timer: u64, ctx: &mut Ctx<'_, Self>) {
        match (timer, self.role) {
            (HEARTBEAT_TIMER, Role::Primary) => self.heartbeat(ctx),
            (FAILOVER_TIMER, Role::Replica | Role::Candidate) => self.start_failover(ctx),
            _ => {}
        }
    }

    fn on_request(&mut self, req: ClientRequest<ReplRequest>, ctx: &mut Ctx<'_, Self>) {
        if self.role != Role::Primary {
            self.stats.redirected += 1;
            let hint = self
                .primary
                .map_or("unknown".to_string(), |p| format!("n{p}"));
            ctx.reply(
                req.client,
                req.id,
                Reply::Fail(format!(
                    "not the primary (epoch {}, primary {hint})",
                    self.epoch
                )),
            );
            return;
        }
        if self.requests.contains(&req.id) {
            return;
        }
        let op = match req.body {
            ReplRequest::Get { key } => Op::Get { key },
            ReplRequest::Put { key, value } => Op::Put { key, value },
        };
        let entry = Entry {
            epoch: self.epoch,
            request: Some((req.client, req.id)),
            op,
        };
        let index = self.log.len() as u64 + 1;
        self.write_from(index, &[entry], ctx);
        ctx.disk(DiskOp::Fsync);
        // Replicas that are caught up get the entry now; the others at the heartbeat.
        let replicas: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| p.next == index)
            .map(|(&n, _)| n)
            .collect();
        for to in replicas {
            self.send_append(to, ctx);
        }
        self.advance_commit(ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Append { entries, .. } if entries.is_empty() => "heartbeat",
            Message::Append { .. } => "append",
            Message::AppendAck {
                result: AckResult::Ok { .. },
                ..
            } => "append-ack",
            Message::AppendAck {
                result: AckResult::Mismatch { .. },
                ..
            } => "append-mismatch",
            Message::AppendAck { .. } => "append-refused",
            Message::Vote { .. } => "vote",
            Message::VoteAck { .. } => "vote-ack",
        }
    }

    fn role(&self) -> &'static str {
        match self.role {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Candidate => "candidate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::replication::harness::{Harness, Workload};
    use crate::rng::SimRng;
    use crate::sim::linearizability::Verdict;
    use crate::sim::node::Effect;
    use crate::sim::{Fault, SimConfig};

    fn cluster(seed: u64, nodes: u32, ack: AckMode, fencing: bool) -> Harness {
        Harness::new(
            SimConfig {
                seed,
                nodes,
                record_trace: false,
                ..SimConfig::default()
            },
            ReplicationParams {
                ack,
                fencing,
                ..ReplicationParams::default()
            },
            Workload::default(),
        )
        .unwrap()
    }

    #[test]
    fn ack_modes_count_the_primary_and_the_replicas() {
        assert_eq!(AckMode::Async.required(5), 1);
        assert_eq!(AckMode::SemiSync.required(5), 2);
        assert_eq!(AckMode::SemiSync.required(1), 1);
        assert_eq!(AckMode::Majority.required(5), 3);
        assert_eq!(AckMode::Majority.required(4), 3);
        assert_eq!(AckMode::Sync.required(5), 5);
    }

    #[test]
    fn every_mode_replicates_the_log_and_is_linearizable_without_faults() {
        for ack in [
            AckMode::Async,
            AckMode::SemiSync,
            AckMode::Majority,
            AckMode::Sync,
        ] {
            let mut h = cluster(4, 3, ack, true);
            h.run_until_or(Time::from_millis(500), |_| false);
            h.stop_clients();
            h.run_until_or(Time::from_millis(800), |_| false);
            assert!(h.completed() > 30, "{ack:?}: {}", h.completed());
            assert_eq!(h.check(None).unwrap().verdict, Verdict::Linearizable);
            let primary = h.sim().node(0).unwrap();
            assert!(primary.is_primary());
            for id in 1..3 {
                let r = h.sim().node(id).unwrap();
                assert_eq!(r.log(), primary.log(), "{ack:?}: n{id}");
                assert_eq!(r.commit(), primary.commit(), "{ack:?}: n{id}");
                assert_eq!(r.data(), primary.data(), "{ack:?}: n{id}");
                let p = primary.progress()[&id];
                assert_eq!(
                    p.matched,
                    primary.log().len() as u64,
                    "{ack:?}: lag of n{id}"
                );
            }
        }
    }

    #[test]
    fn a_crashed_primary_is_replaced_in_a_new_epoch_and_no_write_is_lost() {
        for fencing in [true, false] {
            let mut h = cluster(7, 3, AckMode::Majority, fencing);
            h.run_until_or(Time::from_millis(300), |_| false);
            let before = h.watch().acked().len();
            h.sim_mut().apply_fault(&Fault::Crash { node: 0 }).unwrap();
            h.run_until_or(Time::from_millis(1_000), |_| false);
            let primaries: Vec<&ReplicaNode> = (1..3)
                .filter_map(|id| h.sim().node(id))
                .filter(|n| n.is_primary())
                .collect();
            assert_eq!(primaries.len(), 1, "fencing {fencing}");
            assert!(primaries[0].epoch() >= 2);
            assert!(h.watch().acked().len() > before + 10, "fencing {fencing}");
            assert_eq!(h.watch().lost_count(), 0, "fencing {fencing}");
            // The old primary comes back as a replica and catches up.
            h.sim_mut()
                .apply_fault(&Fault::Restart { node: 0 })
                .unwrap();
            h.run_until_or(Time::from_millis(1_400), |_| false);
            let old = h.sim().node(0).unwrap();
            assert_eq!(old.role_kind(), Role::Replica);
            assert_eq!(old.epoch(), primaries_epoch(&h));
            assert_eq!(h.check(None).unwrap().verdict, Verdict::Linearizable);
        }
    }

    fn primaries_epoch(h: &Harness) -> u64 {
        (0..3)
            .filter_map(|id| h.sim().node(id))
            .filter(|n| n.is_primary())
            .map(ReplicaNode::epoch)
            .max()
            .unwrap()
    }

    fn drive(
        node: &mut ReplicaNode,
        f: impl FnOnce(&mut ReplicaNode, &mut Ctx<'_, ReplicaNode>),
    ) -> Vec<Effect<Message, ReplResponse>> {
        let mut rng = SimRng::new(1);
        let mut effects = Vec::new();
        let mut ctx = Ctx::new(node.id, Time::ZERO, 3, &mut rng, &mut effects);
        f(node, &mut ctx);
        effects
    }

    fn appended(epoch: u64) -> Message {
        Message::Append {
            epoch,
            prev_index: 0,
            prev_epoch: 0,
            entries: vec![Entry {
                epoch,
                request: Some((0, 9)),
                op: Op::Put {
                    key: "k".into(),
                    value: "old".into(),
                },
            }],
            commit: 0,
        }
    }

    #[test]
    fn a_fenced_replica_refuses_a_lower_epoch_and_an_unfenced_one_follows_it() {
        for fencing in [true, false] {
            let params = ReplicationParams {
                fencing,
                ..ReplicationParams::default()
            };
            let mut n = ReplicaNode::recover(2, &params, &Disk::new());
            n.epoch = 3;
            let effects = drive(&mut n, |n, ctx| n.on_message(0, appended(2), ctx));
            let answer = effects.iter().find_map(|e| match e {
                Effect::Send {
                    msg: Message::AppendAck { epoch, result },
                    ..
                } => Some((*epoch, *result)),
                _ => None,
            });
            if fencing {
                assert_eq!(answer, Some((3, AckResult::Refused)));
                assert!(n.log().is_empty());
                assert_eq!(n.stats().fenced, 1);
            } else {
                assert_eq!(answer, Some((2, AckResult::Ok { matched: 1 })));
                assert_eq!(n.log().len(), 1);
                assert_eq!(n.primary(), Some(0));
            }
        }
    }

    #[test]
    fn recovery_keeps_the_epoch_and_log_and_cuts_a_torn_tail() {
        let params = ReplicationParams::default();
        let mut disk = Disk::new();
        let mut n = ReplicaNode::recover(1, &params, &disk);
        let effects = drive(&mut n, |n, ctx| {
            n.on_message(0, appended(1), ctx);
            n.on_message(
                2,
                Message::Vote {
                    epoch: 4,
                    last_index: 1,
                    last_epoch: 1,
                },
                ctx,
            );
        });
        for e in effects {
            if let Effect::Disk(op) = e {
                disk.apply(op);
            }
        }
        // An unsynced, torn record after the synced ones.
        disk.apply(DiskOp::Append {
            file: LOG,
            bytes: vec![200, 0, 0, 0, 1, 2, 3],
        });
        let back = ReplicaNode::recover(1, &params, &disk);
        assert_eq!(back.epoch(), 4);
        assert_eq!(back.voted, Some(2));
        assert_eq!(back.log(), n.log());
        assert_eq!(back.role_kind(), Role::Replica);
        let mut back = back;
        let effects = drive(&mut back, |n, ctx| n.on_start(ctx));
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Disk(DiskOp::Truncate { .. })))
        );
    }

    #[test]
    fn an_unfenced_partitioned_primary_loses_acknowledged_writes() {
        // Node 0 keeps answering (async) on its side; the other side promotes itself and,
        // after the heal, its log overwrites node 0's.
        let mut h = Harness::new(
            SimConfig {
                seed: 11,
                nodes: 3,
                record_trace: false,
                ..SimConfig::default()
            },
            ReplicationParams {
                ack: AckMode::Async,
                fencing: false,
                ..ReplicationParams::default()
            },
            // One key, mostly read: a read after the heal shows what was lost.
            Workload {
                keys: 1,
                get_share: 0.6,
                ..Workload::default()
            },
        )
        .unwrap();
        h.run_until_or(Time::from_millis(200), |_| false);
        h.sim_mut()
            .apply_fault(&Fault::Partition {
                groups: vec![vec![0], vec![1, 2]],
            })
            .unwrap();
        h.run_until_or(Time::from_millis(900), |_| false);
        h.sim_mut().apply_fault(&Fault::Heal).unwrap();
        h.run_until_or(Time::from_millis(1_400), |_| false);
        assert!(h.watch().lost_count() > 0, "{:?}", h.watch().lost_write);
    }
}
