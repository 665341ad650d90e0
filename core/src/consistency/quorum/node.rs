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
//! Cost per operation: plain, one round trip to N replicas; ABD, two. One fsync per store
//! at each replica that takes it, one per put at the coordinator.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use crate::error::{DistlabError, Result};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::Duration;

/// The replica's record log.
const LOG: &str = "quorum.log";

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
            if !answered.contains(&to) {
                ctx.send(to, msg.clone());
            }
        }
        ctx.set_timer(request, self.params.resend);
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
        };
        if let QuorumRequest::Get { key } = &op.request {
            response.value = Some(newest.as_ref().map(|(_, v)| v.clone()).unwrap_or_default());
            response.tag = newest.as_ref().map(|(t, _)| *t);
            if let (Mode::Plain, Some((tag, value))) = (self.params.mode, &newest) {
                for (&replica, held) in &op.answers {
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

    fn take(&mut self, key: String, tag: Tag, value: String, ctx: &mut Ctx<'_, Self>) {
        if self.store.get(&key).is_some_and(|(t, _)| *t >= tag) {
            return;
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
        } = self;
        id.hash(h);
        (params.mode, params.n, params.r, params.w, params.durable).hash(h);
        (params.resend.0, params.resends).hash(h);
        store.hash(h);
        seen.hash(h);
        running.hash(h);
        torn_tail.hash(h);
        stats.hash(h);
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
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
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
        self.start(req.id, ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Query { .. } => "query",
            Message::QueryAck { .. } => "query-ack",
            Message::Store { request: None, .. } => "repair",
            Message::Store { .. } => "store",
            Message::StoreAck { .. } => "store-ack",
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
