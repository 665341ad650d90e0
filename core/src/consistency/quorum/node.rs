//! A quorum-replicated register store's node: every node is a replica of the keys whose
//! preference list names it, and the coordinator of the client operations sent to it.
//!
//! The coordinator acts for the client that asked: the tag it writes carries that client
//! as the writer, so the client is the writer of the paper even though the simulator's
//! clients only send requests. Two modes share the replica and the messages:
//!
//! - **Plain** (Dynamo, DeCandia et al. 2007): a put tags the value with the
//!   coordinator's clock and the writer, sends it to all N home replicas and answers after
//!   W acks; a get asks all N, answers the newest of the first R answers, then repairs the
//!   stale ones among them (read repair). R + W > N makes every read quorum meet every
//!   write quorum, and still does not make the store linearizable.
//! - **ABD** (Attiya, Bar-Noy & Dolev 1995, the multi-writer variant of Lynch & Shvartsman
//!   1997): a put first queries R replicas for the highest tag and writes
//!   `(highest.ts + 1, writer)` to W; a get queries R, then writes the newest value back
//!   to W before it answers. With R + W > N (majorities, in the paper) every query meets
//!   every completed store, so the store is linearizable.
//!
//! Replicas keep `(tag, value)` per key on the simulated disk ([`crate::sim::records`]),
//! fsynced before they ack: a replica that forgets an acked store would let a later query
//! quorum miss it. `durable: false` turns that off, to show it.
//!
//! A client request may reach its coordinator twice (duplication). A put is executed
//! once: the coordinator fsyncs the request's id before it starts, so a copy arriving even
//! after a restart is ignored; executed twice, an ABD put would take a new, higher tag
//! and overwrite the writes that followed its first execution.
//!
//! Two additions from Dynamo, both off by default:
//!
//! - **Sloppy quorum with hinted handoff** (section 4.6): the preference list runs on past
//!   the N home replicas around the whole ring. A phase whose home replica has not
//!   answered by the first resend goes also to the next node of the list not yet asked, a
//!   stand-in, whose copy carries a hint naming the home replica it stands for. The
//!   stand-in keeps hinted copies apart from its own registers (they answer no query),
//!   durably, and offers them to the intended replica every `handoff` period; once that
//!   replica acks, the stand-in drops them. Writes stay available when home replicas are
//!   unreachable, and R + W > N no longer makes a read quorum meet the write's: a read of
//!   the home replicas misses a write held only by stand-ins.
//! - **Anti-entropy with Merkle trees** (section 4.7, [`super::merkle`]): every
//!   `period`, a node picks the next replica it shares keys with and sends the root of a
//!   Merkle tree over those shared keys; the two then send each other the children of the
//!   nodes that differ, a level at a time, down to the leaves, and finally the keys of the
//!   differing leaf ranges, each keeping the newer version. Replicas that missed writes
//!   (down, partitioned, lost messages) catch up without a read of every key.
//!
//! Cost per operation: plain, one round trip to N replicas; ABD, two. One fsync per store
//! at each replica that takes it, one per put at the coordinator. An anti-entropy round
//! between replicas in sync is one message of one hash.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use crate::consistency::quorum::merkle::{self, MerkleTree};
use crate::error::{DistlabError, Result};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::Duration;

/// The replica's record log.
const LOG: &str = "quorum.log";
/// The timer of the next anti-entropy round (client request ids never come near it).
const ANTI_ENTROPY_TIMER: u64 = u64::MAX;
/// The timer of the next offer of hinted copies to their intended replicas.
const HANDOFF_TIMER: u64 = u64::MAX - 1;
/// Anti-entropy rounds a node remembers, for the lab.
const KEPT_ROUNDS: usize = 8;

/// A value's version: compared by timestamp, then writer, then request, so two writers
/// with equal timestamps are ordered by writer id and no two puts share a tag.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// Plain: the coordinator's clock in µs; ABD: one more than the highest seen.
    pub ts: u64,
    /// The client whose put this is.
    pub writer: ClientId,
    /// The put's request id: unique, so a writer's two puts never share a tag.
    pub request: RequestId,
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.c{}", self.ts, self.writer)
    }
}

/// Which protocol the coordinators run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Mode {
    /// Dynamo-style: clock-tagged puts to W, reads from R with read repair.
    #[default]
    Plain,
    /// Attiya, Bar-Noy & Dolev: query before put, write back before a get answers.
    Abd,
}

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumParams {
    pub mode: Mode,
    /// Replicas per key.
    pub n: u32,
    /// Answers a query waits for.
    pub r: u32,
    /// Acks a store waits for.
    pub w: u32,
    /// Replicas fsync a store before they ack it.
    pub durable: bool,
    /// A phase resends to the replicas that have not answered after this long.
    pub resend: Duration,
    /// Resends before the coordinator drops the operation (the client gave up by then).
    pub resends: u32,
    /// Sloppy quorum: unanswered home replicas are stood in for by the next nodes of the
    /// ring, with hinted handoff. Off: strict quorums over the N home replicas.
    pub sloppy: bool,
    /// How often a stand-in offers its hinted copies to their intended replicas.
    pub handoff: Duration,
    /// Merkle-tree anti-entropy between replicas, if on.
    pub anti_entropy: Option<AntiEntropy>,
}

/// Anti-entropy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AntiEntropy {
    /// Time between a node's rounds (each with the next replica it shares keys with).
    pub period: Duration,
    /// Levels of the Merkle tree below the root: `2^depth` key-hash ranges.
    pub depth: u32,
}

impl Default for AntiEntropy {
    fn default() -> Self {
        AntiEntropy {
            period: Duration::from_millis(200),
            depth: 3,
        }
    }
}

impl Default for QuorumParams {
    fn default() -> Self {
        QuorumParams {
            mode: Mode::Plain,
            n: 3,
            r: 2,
            w: 2,
            durable: true,
            resend: Duration::from_millis(100),
            resends: 20,
            sloppy: false,
            handoff: Duration::from_millis(200),
            anti_entropy: None,
        }
    }
}

impl QuorumParams {
    /// Checks N, R and W against each other and the cluster; ABD needs R + W > N.
    pub fn validate(&self, nodes: u32) -> Result<()> {
        if self.n == 0 || self.n > nodes {
            return Err(DistlabError::field(
                "n",
                format!("must be between 1 and the {nodes} nodes, got {}", self.n),
            ));
        }
        for (field, v) in [("r", self.r), ("w", self.w)] {
            if v == 0 || v > self.n {
                return Err(DistlabError::field(
                    field,
                    format!("must be between 1 and n = {}, got {v}", self.n),
                ));
            }
        }
        if let Some(ae) = self.anti_entropy {
            if ae.depth > merkle::MAX_DEPTH {
                return Err(DistlabError::field(
                    "tree_depth",
                    format!("must be at most {}, got {}", merkle::MAX_DEPTH, ae.depth),
                ));
            }
            if ae.period.0 == 0 {
                return Err(DistlabError::field(
                    "anti_entropy_ms",
                    "the period must be positive",
                ));
            }
        }
        if self.sloppy && self.handoff.0 == 0 {
            return Err(DistlabError::field(
                "handoff_ms",
                "the period must be positive",
            ));
        }
        if self.mode == Mode::Abd && self.r + self.w <= self.n {
            return Err(DistlabError::field(
                "r",
                format!(
                    "ABD needs r + w > n so that every query meets every store (r {} + w {} \
                     <= n {})",
                    self.r, self.w, self.n
                ),
            ));
        }
        Ok(())
    }
}

/// The home replicas of `key` among `nodes` nodes: N consecutive nodes from the key's
/// hash (a ring without virtual nodes).
pub fn preference_list(key: &str, n: u32, nodes: u32) -> Vec<NodeId> {
    let nodes = nodes.max(1);
    let mut h = StableHasher::default();
    key.hash(&mut h);
    let first = (h.finish() % u64::from(nodes)) as u32;
    (0..n.min(nodes)).map(|i| (first + i) % nodes).collect()
}

/// Whether `a` and `b` are both home replicas of `key`: the keys they compare trees over.
pub fn shared(key: &str, a: NodeId, b: NodeId, n: u32, nodes: u32) -> bool {
    let homes = preference_list(key, n, nodes);
    homes.contains(&a) && homes.contains(&b)
}

/// The nodes that share some key range with `id`: those fewer than N places from it
/// around the ring, either way.
pub fn range_peers(id: NodeId, n: u32, nodes: u32) -> Vec<NodeId> {
    (0..nodes)
        .filter(|&j| {
            j != id && {
                let d = (j + nodes - id) % nodes;
                d < n || nodes - d < n
            }
        })
        .collect()
}

/// What a replica holds for a key, as a Merkle tree leaf sees it.
fn content_hash(tag: &Tag, value: &str) -> u64 {
    let mut h = StableHasher::default();
    (tag, value).hash(&mut h);
    h.finish()
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum QuorumRequest {
    Get { key: String },
    Put { key: String, value: String },
}

impl QuorumRequest {
    pub fn key(&self) -> &str {
        match self {
            QuorumRequest::Get { key } | QuorumRequest::Put { key, .. } => key,
        }
    }
}

/// What a coordinator answers, with the replicas the operation touched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumResponse {
    /// A get's value ("" if the key was never written); `None` for a put.
    pub value: Option<String>,
    /// The tag read (get) or written (put).
    pub tag: Option<Tag>,
    /// The replicas whose query answers counted (empty for a plain put).
    pub queried: Vec<NodeId>,
    /// The replicas whose store acks counted (empty for a plain get).
    pub stored: Vec<NodeId>,
    /// The stale replicas a plain get repaired after answering.
    pub repaired: Vec<NodeId>,
    /// Sloppy quorum: the stand-ins that acked a hinted copy, each with the home replica
    /// it stood in for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hinted: Vec<(NodeId, NodeId)>,
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// What do you hold for `key`?
    Query { request: RequestId, key: String },
    QueryAck {
        request: RequestId,
        held: Option<(Tag, String)>,
    },
    /// Keep `value` if `tag` is newer than yours; ack if `request` is set (a read
    /// repair wants no ack).
    Store {
        request: Option<RequestId>,
        key: String,
        tag: Tag,
        value: String,
    },
    /// I hold `tag` or newer.
    StoreAck { request: RequestId },
    /// Sloppy quorum: keep `value` for `intended`, which did not answer, and hand it off.
    HintedStore {
        request: RequestId,
        key: String,
        tag: Tag,
        value: String,
        intended: NodeId,
    },
    /// Hinted copies meant for the receiver.
    Handoff { entries: Vec<(String, Tag, String)> },
    /// The receiver of a handoff holds these versions or newer: drop the hints.
    HandoffAck { entries: Vec<(String, Tag)> },
    /// Anti-entropy: my tree's hashes of these nodes of `level`, over the keys we share.
    Tree {
        session: Session,
        level: u32,
        hashes: Vec<(u32, u64)>,
    },
    /// Anti-entropy: the differing leaf ranges, and what I hold in them (all of it if
    /// `reply`, and then send me yours; only what is newer than yours otherwise).
    Ranges {
        session: Session,
        ranges: Vec<u32>,
        entries: Vec<(String, Tag, String)>,
        reply: bool,
    },
}

/// An anti-entropy round: who started it, and its number there.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub initiator: NodeId,
    pub number: u64,
}

/// One anti-entropy round as one of its two nodes saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRound {
    pub session: Session,
    pub peer: NodeId,
    /// Tree node hashes this node sent and received.
    pub hashes_sent: u64,
    pub hashes_received: u64,
    /// Deepest level compared (0: the roots).
    pub level: u32,
    /// The leaf ranges found differing.
    pub ranges: Vec<u32>,
    pub keys_sent: u64,
    pub keys_received: u64,
    /// Keys this node took because the peer's were newer.
    pub keys_applied: u64,
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// A durable record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
enum Record {
    /// A replica took `(tag, value)` for `key`.
    Stored {
        key: String,
        tag: Tag,
        value: String,
    },
    /// The coordinator started the put with this request id.
    Accepted { request: RequestId },
    /// A stand-in took a copy meant for `intended`.
    Hinted {
        intended: NodeId,
        key: String,
        tag: Tag,
        value: String,
    },
    /// `intended` acked the hinted copy of `key` at `tag` or newer.
    HintDropped {
        intended: NodeId,
        key: String,
        tag: Tag,
    },
}

/// Where a coordinator's operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Query,
    Store,
}

/// An operation a coordinator is running.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coordination {
    pub client: ClientId,
    pub request: QuorumRequest,
    pub phase: Phase,
    pub replicas: Vec<NodeId>,
    /// Query answers so far.
    pub answers: BTreeMap<NodeId, Option<(Tag, String)>>,
    /// What the store phase writes.
    pub storing: Option<(Tag, String)>,
    pub acks: BTreeSet<NodeId>,
    pub resends: u32,
    /// Sloppy quorum: stand-ins asked, each with the home replica it stands in for.
    pub stand_ins: BTreeMap<NodeId, NodeId>,
    /// Targets that already have a stand-in.
    pub replaced: BTreeSet<NodeId>,
}

/// Counters since the node's last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStats {
    pub gets: u64,
    pub puts: u64,
    /// Stores that made this replica's copy newer.
    pub applied: u64,
    /// Read-repair stores this coordinator sent.
    pub repairs_sent: u64,
    pub resends: u64,
    /// Operations dropped after every resend.
    pub dropped: u64,
    /// Client request copies ignored.
    pub duplicates: u64,
    /// Hinted copies this stand-in took, and handed off (acked by their replica).
    pub hints_taken: u64,
    pub hints_delivered: u64,
    /// Anti-entropy rounds this node started.
    pub sync_rounds: u64,
    /// Tree node hashes and keys this node sent in anti-entropy rounds.
    pub tree_hashes_sent: u64,
    pub sync_keys_sent: u64,
    /// Keys anti-entropy made newer here.
    pub sync_applied: u64,
}

/// A node: a replica and a coordinator.
#[derive(Debug, Clone)]
pub struct QuorumNode {
    id: NodeId,
    params: QuorumParams,
    /// The replica's registers: newest tag and its value per key.
    store: BTreeMap<String, (Tag, String)>,
    /// Requests this node has coordinated (puts: durably).
    seen: BTreeSet<RequestId>,
    running: BTreeMap<RequestId, Coordination>,
    torn_tail: Option<usize>,
    stats: QuorumStats,
    /// Hinted copies held as a stand-in, by intended replica.
    hints: BTreeMap<NodeId, BTreeMap<String, (Tag, String)>>,
    /// Recent anti-entropy rounds, oldest first.
    rounds: Vec<SyncRound>,
    /// Sloppy quorum: nodes that left a phase unanswered, and have sent nothing since —
    /// the coordinator's failure detector. New operations go to stand-ins for them at
    /// once.
    suspects: BTreeSet<NodeId>,
    /// Anti-entropy rounds started since boot: the next session number and peer.
    sync_turn: u64,
}

impl QuorumNode {
    pub fn store(&self) -> &BTreeMap<String, (Tag, String)> {
        &self.store
    }
    pub fn running(&self) -> &BTreeMap<RequestId, Coordination> {
        &self.running
    }
    pub fn stats(&self) -> QuorumStats {
        self.stats
    }
    pub fn params(&self) -> &QuorumParams {
        &self.params
    }
    /// Hinted copies held as a stand-in, by intended replica.
    pub fn hints(&self) -> &BTreeMap<NodeId, BTreeMap<String, (Tag, String)>> {
        &self.hints
    }
    /// Recent anti-entropy rounds, oldest first.
    pub fn rounds(&self) -> &[SyncRound] {
        &self.rounds
    }
    /// Nodes this coordinator currently suspects (sloppy quorum).
    pub fn suspects(&self) -> &BTreeSet<NodeId> {
        &self.suspects
    }

    /// The Merkle tree over the keys this node shares with `peer`, at `depth`.
    pub fn tree_with(&self, peer: NodeId, depth: u32, nodes: u32) -> Result<MerkleTree> {
        let n = self.params.n;
        let id = self.id;
        MerkleTree::build(
            depth,
            self.store
                .iter()
                .filter(|(k, _)| shared(k, id, peer, n, nodes))
                .map(|(k, (t, v))| (k.as_str(), content_hash(t, v))),
        )
    }

    fn start(&mut self, request: RequestId, ctx: &mut Ctx<'_, Self>) {
        let Some(op) = self.running.get(&request) else {
            return;
        };
        let msg = match (op.phase, &op.storing) {
            (Phase::Store, Some((tag, value))) => Message::Store {
                request: Some(request),
                key: op.request.key().to_string(),
                tag: *tag,
                value: value.clone(),
            },
            _ => Message::Query {
                request,
                key: op.request.key().to_string(),
            },
        };
        let answered: BTreeSet<NodeId> = match op.phase {
            Phase::Query => op.answers.keys().copied().collect(),
            Phase::Store => op.acks.clone(),
        };
        for &to in &op.replicas {
            if answered.contains(&to) {
                continue;
            }
            match (&msg, op.stand_ins.get(&to)) {
                (
                    Message::Store {
                        key, tag, value, ..
                    },
                    Some(&intended),
                ) => ctx.send(
                    to,
                    Message::HintedStore {
                        request,
                        key: key.clone(),
                        tag: *tag,
                        value: value.clone(),
                        intended,
                    },
                ),
                _ => ctx.send(to, msg.clone()),
            }
        }
        ctx.set_timer(request, self.params.resend);
    }

    /// Sloppy quorum: every target that has not answered this phase (`silent_only`) or
    /// that this node suspects, and has no stand-in yet, gets one: the next node of the
    /// key's whole-ring preference list not asked yet, standing in for the home replica
    /// it (or the target it replaces) was meant for. Silent targets become suspects.
    fn add_stand_ins(&mut self, request: RequestId, silent_only: bool, nodes: u32) {
        let n = self.params.n;
        let Some(op) = self.running.get_mut(&request) else {
            return;
        };
        let answered: BTreeSet<NodeId> = match op.phase {
            Phase::Query => op.answers.keys().copied().collect(),
            Phase::Store => op.acks.clone(),
        };
        let ring = preference_list(op.request.key(), nodes, nodes);
        let silent: Vec<NodeId> = op
            .replicas
            .iter()
            .copied()
            .filter(|t| !op.replaced.contains(t))
            .filter(|t| {
                if silent_only {
                    !answered.contains(t)
                } else {
                    self.suspects.contains(t)
                }
            })
            .collect();
        if silent_only {
            self.suspects.extend(silent.iter().copied());
        }
        for target in silent {
            let Some(&next) = ring
                .iter()
                .skip(n as usize)
                .find(|c| !op.replicas.contains(c))
            else {
                return;
            };
            let intended = op.stand_ins.get(&target).copied().unwrap_or(target);
            op.replaced.insert(target);
            op.replicas.push(next);
            op.stand_ins.insert(next, intended);
        }
    }

    fn answer(&mut self, request: RequestId, ctx: &mut Ctx<'_, Self>) {
        let Some(op) = self.running.remove(&request) else {
            return;
        };
        ctx.cancel_timer(request);
        let newest = op
            .answers
            .values()
            .flatten()
            .max_by_key(|(t, _)| *t)
            .cloned();
        let mut response = QuorumResponse {
            value: None,
            tag: op.storing.as_ref().map(|(t, _)| *t),
            queried: op.answers.keys().copied().collect(),
            stored: op.acks.iter().copied().collect(),
            repaired: Vec::new(),
            hinted: op
                .acks
                .iter()
                .filter_map(|a| Some((*a, *op.stand_ins.get(a)?)))
                .collect(),
        };
        if let QuorumRequest::Get { key } = &op.request {
            response.value = Some(newest.as_ref().map(|(_, v)| v.clone()).unwrap_or_default());
            response.tag = newest.as_ref().map(|(t, _)| *t);
            if let (Mode::Plain, Some((tag, value))) = (self.params.mode, &newest) {
                for (&replica, held) in &op.answers {
                    // A stand-in keeps hinted copies only, never a register of its own.
                    if op.stand_ins.contains_key(&replica) {
                        continue;
                    }
                    if held.as_ref().is_none_or(|(t, _)| t < tag) {
                        ctx.send(
                            replica,
                            Message::Store {
                                request: None,
                                key: key.clone(),
                                tag: *tag,
                                value: value.clone(),
                            },
                        );
                        response.repaired.push(replica);
                        self.stats.repairs_sent += 1;
                    }
                }
            }
        }
        ctx.reply(op.client, request, Reply::Ok(response));
    }

    /// The query quorum answered: a plain get answers; ABD moves to its store phase.
    fn queried(&mut self, request: RequestId, ctx: &mut Ctx<'_, Self>) {
        let mode = self.params.mode;
        let Some(op) = self.running.get_mut(&request) else {
            return;
        };
        let newest = op
            .answers
            .values()
            .flatten()
            .max_by_key(|(t, _)| *t)
            .cloned();
        let storing = match (&op.request, mode) {
            (QuorumRequest::Get { .. }, Mode::Plain) => None,
            // Nothing held anywhere in the quorum: no store completed, nothing to write
            // back.
            (QuorumRequest::Get { .. }, Mode::Abd) => newest,
            (QuorumRequest::Put { value, .. }, _) => Some((
                Tag {
                    ts: newest.map_or(0, |(t, _)| t.ts) + 1,
                    writer: op.client,
                    request,
                },
                value.clone(),
            )),
        };
        match storing {
            None => self.answer(request, ctx),
            Some(s) => {
                op.storing = Some(s);
                op.phase = Phase::Store;
                op.resends = 0;
                self.start(request, ctx);
            }
        }
    }

    /// Keeps `(tag, value)` for `key` if it is newer than the copy held; true if it was.
    fn take(&mut self, key: String, tag: Tag, value: String, ctx: &mut Ctx<'_, Self>) -> bool {
        if self.store.get(&key).is_some_and(|(t, _)| *t >= tag) {
            return false;
        }
        if self.params.durable {
            ctx.disk(records::append(
                LOG,
                &Record::Stored {
                    key: key.clone(),
                    tag,
                    value: value.clone(),
                },
            ));
            ctx.disk(DiskOp::Fsync);
        }
        self.stats.applied += 1;
        self.store.insert(key, (tag, value));
        true
    }

    /// A stand-in keeps a copy meant for `intended`, durably, until it is handed off.
    fn take_hint(
        &mut self,
        intended: NodeId,
        key: String,
        tag: Tag,
        value: String,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let held = self.hints.entry(intended).or_default();
        if held.get(&key).is_some_and(|(t, _)| *t >= tag) {
            return;
        }
        if self.params.durable {
            ctx.disk(records::append(
                LOG,
                &Record::Hinted {
                    intended,
                    key: key.clone(),
                    tag,
                    value: value.clone(),
                },
            ));
            ctx.disk(DiskOp::Fsync);
        }
        self.stats.hints_taken += 1;
        held.insert(key, (tag, value));
    }

    /// Offers every hinted copy to its intended replica; they stay until it acks.
    fn hand_off(&mut self, ctx: &mut Ctx<'_, Self>) {
        for (&intended, held) in &self.hints {
            if held.is_empty() {
                continue;
            }
            let entries = held
                .iter()
                .map(|(k, (t, v))| (k.clone(), *t, v.clone()))
                .collect();
            ctx.send(intended, Message::Handoff { entries });
        }
        ctx.set_timer(HANDOFF_TIMER, self.params.handoff);
    }

    fn handed_off(&mut self, from: NodeId, entries: Vec<(String, Tag)>, ctx: &mut Ctx<'_, Self>) {
        let Some(held) = self.hints.get_mut(&from) else {
            return;
        };
        for (key, tag) in entries {
            if held.get(&key).is_some_and(|(t, _)| *t <= tag) {
                held.remove(&key);
                self.stats.hints_delivered += 1;
                ctx.disk(records::append(
                    LOG,
                    &Record::HintDropped {
                        intended: from,
                        key,
                        tag,
                    },
                ));
            }
        }
        if held.is_empty() {
            self.hints.remove(&from);
        }
    }

    /// The round of `session` with `peer`, started here if new (the oldest forgotten).
    fn round(&mut self, session: Session, peer: NodeId) -> &mut SyncRound {
        if let Some(i) = self.rounds.iter().position(|r| r.session == session) {
            return &mut self.rounds[i];
        }
        if self.rounds.len() >= KEPT_ROUNDS {
            self.rounds.remove(0);
        }
        self.rounds.push(SyncRound {
            session,
            peer,
            hashes_sent: 0,
            hashes_received: 0,
            level: 0,
            ranges: Vec::new(),
            keys_sent: 0,
            keys_received: 0,
            keys_applied: 0,
        });
        let last = self.rounds.len() - 1;
        &mut self.rounds[last]
    }

    /// Starts an anti-entropy round with the next replica this node shares keys with:
    /// sends the root of the tree over the shared keys.
    fn start_round(&mut self, ae: AntiEntropy, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(ANTI_ENTROPY_TIMER, ae.period);
        let nodes = ctx.node_count();
        let peers = range_peers(self.id, self.params.n, nodes);
        if peers.is_empty() {
            return;
        }
        let peer = peers[(self.sync_turn % peers.len() as u64) as usize];
        let session = Session {
            initiator: self.id,
            number: self.sync_turn,
        };
        self.sync_turn += 1;
        let Ok(tree) = self.tree_with(peer, ae.depth, nodes) else {
            return;
        };
        self.stats.sync_rounds += 1;
        self.send_tree(session, peer, 0, vec![(0, tree.root())], ctx);
    }

    fn send_tree(
        &mut self,
        session: Session,
        peer: NodeId,
        level: u32,
        hashes: Vec<(u32, u64)>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let sent = hashes.len() as u64;
        self.stats.tree_hashes_sent += sent;
        let round = self.round(session, peer);
        round.hashes_sent += sent;
        round.level = round.level.max(level);
        ctx.send(
            peer,
            Message::Tree {
                session,
                level,
                hashes,
            },
        );
    }

    /// The peer's hashes of some nodes of `level`: where they differ from this node's
    /// tree, the children go back (the peer compares them); at the leaves, the keys of
    /// the differing ranges go, and the peer answers with its own.
    fn on_tree(
        &mut self,
        from: NodeId,
        session: Session,
        level: u32,
        hashes: Vec<(u32, u64)>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let Some(ae) = self.params.anti_entropy else {
            return;
        };
        let nodes = ctx.node_count();
        let received = hashes.len() as u64;
        let round = self.round(session, from);
        round.hashes_received += received;
        round.level = round.level.max(level);
        let Ok(tree) = self.tree_with(from, ae.depth, nodes) else {
            return;
        };
        let differing = tree.differing(level, &hashes);
        if differing.is_empty() {
            return;
        }
        if level < ae.depth {
            let children = tree.children_hashes(level, &differing);
            self.send_tree(session, from, level + 1, children, ctx);
            return;
        }
        let entries = self.entries_in(from, &differing, ae.depth, nodes);
        let round = self.round(session, from);
        round.ranges = differing.clone();
        round.keys_sent += entries.len() as u64;
        self.stats.sync_keys_sent += entries.len() as u64;
        ctx.send(
            from,
            Message::Ranges {
                session,
                ranges: differing,
                entries,
                reply: true,
            },
        );
    }

    /// What this node holds, among the keys shared with `peer`, in the leaf `ranges`.
    fn entries_in(
        &self,
        peer: NodeId,
        ranges: &[u32],
        depth: u32,
        nodes: u32,
    ) -> Vec<(String, Tag, String)> {
        let n = self.params.n;
        self.store
            .iter()
            .filter(|(k, _)| {
                shared(k, self.id, peer, n, nodes)
                    && ranges.contains(&merkle::leaf_of(merkle::key_hash(k), depth))
            })
            .map(|(k, (t, v))| (k.clone(), *t, v.clone()))
            .collect()
    }

    fn on_ranges(
        &mut self,
        from: NodeId,
        session: Session,
        ranges: Vec<u32>,
        entries: Vec<(String, Tag, String)>,
        reply: bool,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let Some(ae) = self.params.anti_entropy else {
            return;
        };
        let nodes = ctx.node_count();
        // What the peer lacks or holds older: computed before taking its entries.
        let back: Vec<(String, Tag, String)> = if reply {
            self.entries_in(from, &ranges, ae.depth, nodes)
                .into_iter()
                .filter(|(k, t, _)| !entries.iter().any(|(k2, t2, _)| k2 == k && t2 >= t))
                .collect()
        } else {
            Vec::new()
        };
        let received = entries.len() as u64;
        let mut applied = 0;
        for (key, tag, value) in entries {
            // Only keys this pair shares: a peer's copy of another range is not ours.
            if shared(&key, self.id, from, self.params.n, nodes) && self.take(key, tag, value, ctx)
            {
                applied += 1;
            }
        }
        self.stats.sync_applied += applied;
        let sent = back.len() as u64;
        let round = self.round(session, from);
        round.ranges = ranges.clone();
        round.keys_received += received;
        round.keys_applied += applied;
        round.keys_sent += sent;
        if reply {
            self.stats.sync_keys_sent += sent;
            ctx.send(
                from,
                Message::Ranges {
                    session,
                    ranges,
                    entries: back,
                    reply: false,
                },
            );
        }
    }
}

impl Fingerprint for QuorumNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let QuorumNode {
            id,
            params,
            store,
            seen,
            running,
            torn_tail,
            stats,
            hints,
            rounds,
            suspects,
            sync_turn,
        } = self;
        id.hash(h);
        (params.mode, params.n, params.r, params.w, params.durable).hash(h);
        (params.resend.0, params.resends).hash(h);
        store.hash(h);
        seen.hash(h);
        running.hash(h);
        torn_tail.hash(h);
        stats.hash(h);
        // Hashed only when in use, so that configurations without them keep the
        // fingerprints they had.
        if params.sloppy || params.anti_entropy.is_some() {
            (params.sloppy, params.handoff.0, params.anti_entropy).hash(h);
            (hints, rounds, suspects, sync_turn).hash(h);
        }
    }
}

impl Node for QuorumNode {
    type Message = Message;
    type Request = QuorumRequest;
    type Response = QuorumResponse;
    type Config = QuorumParams;

    fn recover(id: NodeId, params: &QuorumParams, disk: &Disk) -> Self {
        let (log, torn_tail) = records::read_with_tail::<Record>(disk, LOG);
        let mut node = QuorumNode {
            id,
            params: params.clone(),
            store: BTreeMap::new(),
            seen: BTreeSet::new(),
            running: BTreeMap::new(),
            torn_tail,
            stats: QuorumStats::default(),
            hints: BTreeMap::new(),
            rounds: Vec::new(),
            suspects: BTreeSet::new(),
            sync_turn: 0,
        };
        for record in log {
            match record {
                Record::Stored { key, tag, value } => {
                    if node.store.get(&key).is_none_or(|(t, _)| *t < tag) {
                        node.store.insert(key, (tag, value));
                    }
                }
                Record::Accepted { request } => {
                    node.seen.insert(request);
                }
                Record::Hinted {
                    intended,
                    key,
                    tag,
                    value,
                } => {
                    let held = node.hints.entry(intended).or_default();
                    if held.get(&key).is_none_or(|(t, _)| *t < tag) {
                        held.insert(key, (tag, value));
                    }
                }
                Record::HintDropped { intended, key, tag } => {
                    if let Some(held) = node.hints.get_mut(&intended) {
                        if held.get(&key).is_some_and(|(t, _)| *t <= tag) {
                            held.remove(&key);
                        }
                        if held.is_empty() {
                            node.hints.remove(&intended);
                        }
                    }
                }
            }
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
        // The first round waits a share of the period that depends on the node, so that
        // the nodes' rounds do not all start at once.
        if let Some(ae) = self.params.anti_entropy {
            let nodes = u64::from(ctx.node_count().max(1));
            let first = ae
                .period
                .0
                .saturating_add(ae.period.0.saturating_mul(u64::from(self.id)) / nodes);
            ctx.set_timer(ANTI_ENTROPY_TIMER, Duration(first));
        }
        if self.params.sloppy {
            ctx.set_timer(HANDOFF_TIMER, self.params.handoff);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        self.suspects.remove(&from);
        match msg {
            Message::Query { request, key } => {
                let held = self.store.get(&key).cloned();
                ctx.send(from, Message::QueryAck { request, held });
            }
            Message::QueryAck { request, held } => {
                let r = self.params.r as usize;
                let Some(op) = self.running.get_mut(&request) else {
                    return;
                };
                if op.phase != Phase::Query || !op.replicas.contains(&from) {
                    return;
                }
                op.answers.insert(from, held);
                if op.answers.len() == r {
                    self.queried(request, ctx);
                }
            }
            Message::Store {
                request,
                key,
                tag,
                value,
            } => {
                self.take(key, tag, value, ctx);
                if let Some(request) = request {
                    ctx.send(from, Message::StoreAck { request });
                }
            }
            Message::HintedStore {
                request,
                key,
                tag,
                value,
                intended,
            } => {
                if intended == self.id {
                    self.take(key, tag, value, ctx);
                } else {
                    self.take_hint(intended, key, tag, value, ctx);
                }
                ctx.send(from, Message::StoreAck { request });
            }
            Message::Handoff { entries } => {
                let acked = entries.iter().map(|(k, t, _)| (k.clone(), *t)).collect();
                for (key, tag, value) in entries {
                    self.take(key, tag, value, ctx);
                }
                ctx.send(from, Message::HandoffAck { entries: acked });
            }
            Message::HandoffAck { entries } => self.handed_off(from, entries, ctx),
            Message::Tree {
                session,
                level,
                hashes,
            } => self.on_tree(from, session, level, hashes, ctx),
            Message::Ranges {
                session,
                ranges,
                entries,
                reply,
            } => self.on_ranges(from, session, ranges, entries, reply, ctx),
            Message::StoreAck { request } => {
                let w = self.params.w as usize;
                let Some(op) = self.running.get_mut(&request) else {
                    return;
                };
                if op.phase != Phase::Store || !op.replicas.contains(&from) {
                    return;
                }
                op.acks.insert(from);
                if op.acks.len() == w {
                    self.answer(request, ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, request: u64, ctx: &mut Ctx<'_, Self>) {
        match (request, self.params.anti_entropy) {
            (ANTI_ENTROPY_TIMER, Some(ae)) => return self.start_round(ae, ctx),
            (HANDOFF_TIMER, _) if self.params.sloppy => return self.hand_off(ctx),
            _ => {}
        }
        let limit = self.params.resends;
        let Some(op) = self.running.get_mut(&request) else {
            return;
        };
        if op.resends >= limit {
            self.running.remove(&request);
            self.stats.dropped += 1;
            return;
        }
        op.resends += 1;
        self.stats.resends += 1;
        if self.params.sloppy {
            self.add_stand_ins(request, true, ctx.node_count());
        }
        self.start(request, ctx);
    }

    fn on_request(&mut self, req: ClientRequest<QuorumRequest>, ctx: &mut Ctx<'_, Self>) {
        if !self.seen.insert(req.id) {
            self.stats.duplicates += 1;
            return;
        }
        let replicas = preference_list(req.body.key(), self.params.n, ctx.node_count());
        let mut op = Coordination {
            client: req.client,
            request: req.body,
            phase: Phase::Query,
            replicas,
            answers: BTreeMap::new(),
            storing: None,
            acks: BTreeSet::new(),
            resends: 0,
            stand_ins: BTreeMap::new(),
            replaced: BTreeSet::new(),
        };
        match &op.request {
            QuorumRequest::Get { .. } => self.stats.gets += 1,
            QuorumRequest::Put { value, .. } => {
                self.stats.puts += 1;
                ctx.disk(records::append(LOG, &Record::Accepted { request: req.id }));
                ctx.disk(DiskOp::Fsync);
                if self.params.mode == Mode::Plain {
                    op.phase = Phase::Store;
                    op.storing = Some((
                        Tag {
                            ts: ctx.now().0,
                            writer: req.client,
                            request: req.id,
                        },
                        value.clone(),
                    ));
                }
            }
        }
        self.running.insert(req.id, op);
        if self.params.sloppy {
            self.add_stand_ins(req.id, false, ctx.node_count());
        }
        self.start(req.id, ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Query { .. } => "query",
            Message::QueryAck { .. } => "query-ack",
            Message::Store { request: None, .. } => "repair",
            Message::Store { .. } => "store",
            Message::StoreAck { .. } => "store-ack",
            Message::HintedStore { .. } => "hinted-store",
            Message::Handoff { .. } => "handoff",
            Message::HandoffAck { .. } => "handoff-ack",
            Message::Tree { .. } => "merkle-tree",
            Message::Ranges { .. } => "merkle-ranges",
        }
    }

    fn role(&self) -> &'static str {
        if self.running.is_empty() {
            "replica"
        } else {
            "coordinator"
        }
    }
}
