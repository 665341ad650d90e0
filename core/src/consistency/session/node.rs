//! The store the session lab reads and writes: one primary (node 0) ordering every write
//! into a log, shipping it to the replicas asynchronously — every `replicate_every`, the
//! entries each replica has not acknowledged — so a replica lags the primary by up to that
//! period plus the network's delay. Any node takes any request: a replica forwards a write
//! to the primary and answers once it has applied the write itself, and answers a read
//! from its own copy, at once or, when the client asks for a version it has not applied
//! yet (`at_least`), once it has (the paper's "wait" for a server that is not up to date).
//!
//! A write's version is its position in the primary's log, from 1: a node that has applied
//! `n` entries holds every write up to version `n`, which is what makes one number per
//! client enough to carry its session (Terry et al. 1994, §4: the read and write sets,
//! here summarised by the highest version, as their version-vector implementation does
//! per server). The log is durable (appended and fsynced before it is acknowledged), so a
//! restarted node never goes back.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use crate::consistency::session::checker::Version;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::sim::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::time::Duration;

/// The node every write is ordered by.
pub const PRIMARY: NodeId = 0;
/// The file the log is kept in.
pub const LOG: &str = "log";
const SHIP_TIMER: TimerId = 1;
/// Entries shipped to one replica at once.
const SHIP_BATCH: usize = 64;
/// Answers a node holds back for a version it has not applied; past this the oldest is
/// refused (a replica cut off from the primary would otherwise pile them up).
pub const MAX_PARKED: usize = 256;

/// The cluster's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionParams {
    /// How often the primary ships the replicas what they lack.
    pub replicate_every: Duration,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            replicate_every: Duration::from_millis(100),
        }
    }
}

/// One write in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    pub key: String,
    pub value: String,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionRequest {
    /// Read `key` from a copy holding at least version `at_least` (0: any copy).
    Get {
        key: String,
        at_least: Version,
    },
    Put {
        key: String,
        value: String,
    },
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionResponse {
    /// The value of the key (none if never written), the version that wrote it (0 if
    /// none) and how much of the log the answering node had applied.
    Read {
        value: Option<String>,
        version: Version,
        applied: Version,
    },
    /// The write is at `version`.
    Written { version: Version },
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A replica passes a client's write to the primary.
    Forward {
        request: RequestId,
        key: String,
        value: String,
    },
    /// The primary put the forwarded write at `version`.
    Forwarded {
        request: RequestId,
        version: Version,
    },
    /// Log entries following the first `after`.
    Append { after: Version, entries: Vec<Write> },
    /// The replica has applied the first `applied` entries.
    AppendAck { applied: Version },
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// An answer waiting for the node to apply `until`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Parked {
    pub client: ClientId,
    pub request: RequestId,
    pub until: Version,
    /// The key to read, or none for a forwarded write's answer.
    pub read: Option<String>,
}

/// What a node has done, for the view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStats {
    /// Reads that had to wait for the log to catch up.
    pub waited: u64,
    /// Answers refused because too many were waiting.
    pub refused: u64,
}

/// A primary or a replica.
#[derive(Debug, Clone)]
pub struct SessionNode {
    id: NodeId,
    params: SessionParams,
    log: Vec<Write>,
    /// Each key's value and the version that wrote it: derived from the log.
    data: BTreeMap<String, (String, Version)>,
    /// On the primary: how much of the log each replica has acknowledged.
    acked: BTreeMap<NodeId, Version>,
    /// On a replica: the clients whose forwarded writes await the primary's version.
    forwarded: BTreeMap<RequestId, ClientId>,
    parked: VecDeque<Parked>,
    torn_tail: Option<usize>,
    stats: SessionStats,
}

impl SessionNode {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn is_primary(&self) -> bool {
        self.id == PRIMARY
    }
    /// Entries applied: every write up to this version is here.
    pub fn applied(&self) -> Version {
        self.log.len() as Version
    }
    pub fn log(&self) -> &[Write] {
        &self.log
    }
    /// Each key's value and the version that wrote it.
    pub fn data(&self) -> &BTreeMap<String, (String, Version)> {
        &self.data
    }
    pub fn parked(&self) -> &VecDeque<Parked> {
        &self.parked
    }
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Appends `w` to the log, durably before anything acknowledges it.
    fn apply(&mut self, w: Write, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(LOG, &w));
        self.log.push(w.clone());
        self.data
            .insert(w.key, (w.value, self.log.len() as Version));
    }

    fn answer_read(&self, key: &str) -> SessionResponse {
        let (value, version) = match self.data.get(key) {
            Some((v, version)) => (Some(v.clone()), *version),
            None => (None, 0),
        };
        SessionResponse::Read {
            value,
            version,
            applied: self.applied(),
        }
    }

    fn answer(&self, p: &Parked, ctx: &mut Ctx<'_, Self>) {
        let response = match &p.read {
            Some(key) => self.answer_read(key),
            None => SessionResponse::Written { version: p.until },
        };
        ctx.reply(p.client, p.request, Reply::Ok(response));
    }

    /// Answers now if the log holds `p.until`, else holds the answer back.
    fn answer_or_park(&mut self, p: Parked, ctx: &mut Ctx<'_, Self>) {
        if p.until <= self.applied() {
            self.answer(&p, ctx);
            return;
        }
        if p.read.is_some() {
            self.stats.waited += 1;
        }
        if self.parked.len() >= MAX_PARKED
            && let Some(old) = self.parked.pop_front()
        {
            self.stats.refused += 1;
            ctx.reply(
                old.client,
                old.request,
                Reply::Fail(format!("n{} is too far behind", self.id)),
            );
        }
        self.parked.push_back(p);
    }

    /// Answers every held-back request the log now covers.
    fn release(&mut self, ctx: &mut Ctx<'_, Self>) {
        let applied = self.applied();
        let (ready, waiting): (Vec<Parked>, Vec<Parked>) =
            self.parked.drain(..).partition(|p| p.until <= applied);
        self.parked = waiting.into();
        for p in &ready {
            self.answer(p, ctx);
        }
    }

    fn ship(&self, ctx: &mut Ctx<'_, Self>) {
        for to in 0..ctx.node_count() {
            if to == self.id {
                continue;
            }
            let after = self
                .acked
                .get(&to)
                .copied()
                .unwrap_or(0)
                .min(self.applied());
            let from = after as usize;
            let entries = self
                .log
                .get(from..(from + SHIP_BATCH).min(self.log.len()))
                .unwrap_or_default()
                .to_vec();
            // Sent even when empty: the answer tells the primary where a restarted
            // replica is.
            ctx.send(to, Message::Append { after, entries });
        }
    }
}

impl Fingerprint for SessionNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let SessionNode {
            id,
            params,
            log,
            data: _, // derived from the log
            acked,
            forwarded,
            parked,
            torn_tail,
            stats,
        } = self;
        id.hash(h);
        params.hash(h);
        log.hash(h);
        acked.hash(h);
        forwarded.hash(h);
        parked.hash(h);
        torn_tail.hash(h);
        stats.hash(h);
    }
}

impl Node for SessionNode {
    type Message = Message;
    type Request = SessionRequest;
    type Response = SessionResponse;
    type Config = SessionParams;

    fn recover(id: NodeId, params: &SessionParams, disk: &Disk) -> Self {
        let (log, torn_tail) = records::read_with_tail::<Write>(disk, LOG);
        let mut data = BTreeMap::new();
        for (i, w) in log.iter().enumerate() {
            data.insert(w.key.clone(), (w.value.clone(), i as Version + 1));
        }
        SessionNode {
            id,
            params: *params,
            log,
            data,
            acked: BTreeMap::new(),
            forwarded: BTreeMap::new(),
            parked: VecDeque::new(),
            torn_tail,
            stats: SessionStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        // Records appended after a torn tail would be unreadable at the next recovery.
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        if self.is_primary() {
            ctx.set_timer(SHIP_TIMER, self.params.replicate_every);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Forward {
                request,
                key,
                value,
            } => {
                if !self.is_primary() {
                    return;
                }
                self.apply(Write { key, value }, ctx);
                ctx.disk(DiskOp::Fsync);
                let version = self.applied();
                ctx.send(from, Message::Forwarded { request, version });
            }
            Message::Forwarded { request, version } => {
                if let Some(client) = self.forwarded.remove(&request) {
                    let p = Parked {
                        client,
                        request,
                        until: version,
                        read: None,
                    };
                    self.answer_or_park(p, ctx);
                }
            }
            Message::Append { after, entries } => {
                if self.is_primary() {
                    return;
                }
                let applied = self.applied();
                if after <= applied {
                    let skip = (applied - after) as usize;
                    let fresh: Vec<Write> = entries.into_iter().skip(skip).collect();
                    if !fresh.is_empty() {
                        for w in fresh {
                            self.apply(w, ctx);
                        }
                        ctx.disk(DiskOp::Fsync);
                        self.release(ctx);
                    }
                }
                ctx.send(
                    from,
                    Message::AppendAck {
                        applied: self.applied(),
                    },
                );
            }
            Message::AppendAck { applied } => {
                if self.is_primary() {
                    self.acked.insert(from, applied);
                }
            }
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if timer == SHIP_TIMER && self.is_primary() {
            self.ship(ctx);
            ctx.set_timer(SHIP_TIMER, self.params.replicate_every);
        }
    }

    fn on_request(&mut self, r: ClientRequest<SessionRequest>, ctx: &mut Ctx<'_, Self>) {
        match r.body {
            SessionRequest::Get { key, at_least } => {
                let p = Parked {
                    client: r.client,
                    request: r.id,
                    until: at_least,
                    read: Some(key),
                };
                self.answer_or_park(p, ctx);
            }
            SessionRequest::Put { key, value } => {
                if self.is_primary() {
                    self.apply(Write { key, value }, ctx);
                    ctx.disk(DiskOp::Fsync);
                    let version = self.applied();
                    ctx.reply(
                        r.client,
                        r.id,
                        Reply::Ok(SessionResponse::Written { version }),
                    );
                } else {
                    self.forwarded.insert(r.id, r.client);
                    ctx.send(
                        PRIMARY,
                        Message::Forward {
                            request: r.id,
                            key,
                            value,
                        },
                    );
                }
            }
        }
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Forward { .. } => "forward",
            Message::Forwarded { .. } => "forwarded",
            Message::Append { .. } => "append",
            Message::AppendAck { .. } => "appendAck",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_primary() {
            "primary"
        } else {
            "replica"
        }
    }
}
