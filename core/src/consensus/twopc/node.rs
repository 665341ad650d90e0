//! The two-phase commit node: node 0 is the coordinator (the transaction manager), every
//! other node a participant (a resource manager) holding part of a key-value store.
//!
//! A transaction writes one key at every participant. Phase 1: the coordinator sends
//! `Prepare`; a participant that can commit locks the key, makes its prepared state
//! durable (append + fsync) and votes yes; one that cannot (the key is locked by another
//! transaction, or it decides to refuse) makes its abort durable and votes no. Phase 2:
//! the coordinator makes its decision durable, then sends it; participants apply it,
//! make it durable, release the lock and acknowledge. The coordinator aborts a
//! transaction whose votes do not all arrive within the vote timeout.
//!
//! Failures, after Bernstein, Hadzilacos & Goodman, *Concurrency Control and Recovery in
//! Database Systems* (1987), §7: a participant that voted yes is *uncertain* and may not
//! decide alone; it asks the coordinator again every decision timeout. With cooperative
//! termination on, it asks the other participants too: one that has decided tells it,
//! one that has not voted aborts on the spot (durably, so it can never vote yes later)
//! and tells it so. When the coordinator is down and every participant is uncertain,
//! nobody can decide: the participants are *blocked*, their locks held, until the
//! coordinator recovers. A recovered coordinator presumes abort for a transaction it has
//! no decision for (its ids carry the coordinator's boot epoch, so an older epoch's
//! undecided transaction can never still commit).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The coordinator's node id.
pub const COORDINATOR: NodeId = 0;
/// The log file on every node's disk.
const LOG: &str = "2pc.log";
/// The one timer every node keeps: resends and termination rounds.
const TICK: TimerId = 1;

/// A transaction id: the coordinator's boot epoch in the high 32 bits, a counter below.
pub type TxId = u64;

/// The epoch a transaction id was issued in.
pub fn epoch_of(tx: TxId) -> u32 {
    (tx >> 32) as u32
}

/// Settings shared by every node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TwoPcParams {
    /// How often the coordinator resends prepares and decisions, and participants check
    /// for transactions they are uncertain about.
    pub tick: Duration,
    /// The coordinator aborts a transaction whose votes are not all in after this.
    pub vote_timeout: Duration,
    /// A prepared participant asks for the decision after hearing nothing for this long.
    pub decision_timeout: Duration,
    /// Chance, in parts per million, that a participant refuses a transaction it could
    /// commit (a constraint it would violate, say).
    pub vote_no_ppm: u32,
    /// Uncertain participants ask each other too, not only the coordinator.
    pub cooperative_termination: bool,
}

impl Default for TwoPcParams {
    fn default() -> Self {
        TwoPcParams {
            tick: Duration::from_millis(50),
            vote_timeout: Duration::from_millis(300),
            decision_timeout: Duration::from_millis(200),
            vote_no_ppm: 50_000,
            cooperative_termination: true,
        }
    }
}

/// What nodes say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// Coordinator → participant: can you commit writing `value` at `key`?
    Prepare {
        tx: TxId,
        key: String,
        value: String,
    },
    /// Participant → coordinator.
    Vote { tx: TxId, yes: bool },
    /// The outcome: from the coordinator, or from a participant in cooperative termination.
    Decision { tx: TxId, commit: bool },
    /// Participant → coordinator: the decision is applied (stop resending it).
    Ack { tx: TxId },
    /// An uncertain participant asks for the outcome.
    DecisionRequest { tx: TxId },
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// A transaction a client asks for: write `value` at `key` on every participant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxRequest {
    pub key: String,
    pub value: String,
}

/// The coordinator's answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TxOutcome {
    pub tx: TxId,
    pub committed: bool,
}

/// What the log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
enum Record {
    /// The coordinator booted in this epoch.
    Epoch { epoch: u32 },
    /// The coordinator's decision.
    Decision { tx: TxId, commit: bool },
    /// A participant voted yes: it holds the lock on `key` until the outcome.
    Prepared {
        tx: TxId,
        key: String,
        value: String,
    },
    /// A participant's outcome (an abort may come without a prepare).
    Outcome { tx: TxId, commit: bool },
}

/// Where a participant stands on a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TxState {
    /// Voted yes; uncertain until the decision arrives.
    Prepared,
    Committed,
    Aborted,
}

/// A participant's record of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantTx {
    pub key: Option<String>,
    pub value: Option<String>,
    pub state: TxState,
    /// When it last heard anything about it (for the decision timeout).
    pub heard_at: Time,
}

/// A transaction the coordinator is collecting votes for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTx {
    pub key: String,
    pub value: String,
    pub client: ClientId,
    pub request: RequestId,
    pub started: Time,
    /// Participants that voted yes.
    pub yes: BTreeSet<NodeId>,
}

/// A two-phase commit node (coordinator or participant by its id).
#[derive(Debug, Clone)]
pub struct TwoPcNode {
    id: NodeId,
    params: TwoPcParams,
    // ---- coordinator ----
    epoch: u32,
    next_tx: u32,
    active: BTreeMap<TxId, ActiveTx>,
    /// Durable: every decision made (mirror of the log).
    decisions: BTreeMap<TxId, bool>,
    /// Decisions some participant has not acknowledged yet.
    unacked: BTreeMap<TxId, BTreeSet<NodeId>>,
    /// When the coordinator last sent a transaction's prepares or decision: the tick
    /// re-sends only what is at least a tick old, not a message still in flight (whose
    /// answer, re-sent too, would come twice).
    sent_at: BTreeMap<TxId, Time>,
    // ---- participant ----
    /// Durable (mirror of the log): every transaction it voted on or aborted.
    txs: BTreeMap<TxId, ParticipantTx>,
    /// Key → the prepared transaction holding its lock.
    locks: BTreeMap<String, TxId>,
    /// The committed store.
    data: BTreeMap<String, String>,
    /// Bumped on every change of a decision or an outcome, so an observer can skip a
    /// node that did not change.
    version: u64,
    /// The transactions whose decision or state changed since boot, in order (one entry
    /// per change), so an observer reads only what changed instead of every
    /// transaction the node ever saw: rescanning those made each event's check grow
    /// with the run.
    changes: Vec<TxId>,
    /// The intact length of the log when recovery found a torn tail after it: cut at
    /// start, before anything is appended.
    torn_tail: Option<usize>,
}

impl TwoPcNode {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn is_coordinator(&self) -> bool {
        self.id == COORDINATOR
    }
    pub fn params(&self) -> &TwoPcParams {
        &self.params
    }
    /// The coordinator's boot epoch (0 on participants).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// Transactions the coordinator is collecting votes for.
    pub fn active(&self) -> &BTreeMap<TxId, ActiveTx> {
        &self.active
    }
    /// The coordinator's decisions.
    pub fn decisions(&self) -> &BTreeMap<TxId, bool> {
        &self.decisions
    }
    /// Decisions not acknowledged by every participant.
    pub fn unacked(&self) -> &BTreeMap<TxId, BTreeSet<NodeId>> {
        &self.unacked
    }
    /// A participant's transactions.
    pub fn txs(&self) -> &BTreeMap<TxId, ParticipantTx> {
        &self.txs
    }
    /// Locks held: key → prepared transaction.
    pub fn locks(&self) -> &BTreeMap<String, TxId> {
        &self.locks
    }
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The transactions changed since boot, in order, from the `from`-th change on.
    pub fn changes_since(&self, from: usize) -> &[TxId] {
        self.changes.get(from..).unwrap_or(&[])
    }
    /// How many changes since boot.
    pub fn change_count(&self) -> usize {
        self.changes.len()
    }

    /// Notes a change of `tx`'s decision or state.
    fn touch(&mut self, tx: TxId) {
        self.version += 1;
        self.changes.push(tx);
    }
    /// Transactions this participant is uncertain about.
    pub fn uncertain(&self) -> impl Iterator<Item = TxId> + '_ {
        self.txs
            .iter()
            .filter(|(_, t)| t.state == TxState::Prepared)
            .map(|(tx, _)| *tx)
    }

    fn participants(ctx: &Ctx<'_, Self>) -> impl Iterator<Item = NodeId> + use<> {
        1..ctx.node_count()
    }

    /// Appends `record` and fsyncs it: what follows in this event's effects happens only
    /// once it is durable.
    fn persist(record: &Record, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(LOG, record));
        ctx.disk(DiskOp::Fsync);
    }

    // ---- coordinator ----

    fn decide(&mut self, tx: TxId, commit: bool, ctx: &mut Ctx<'_, Self>) {
        if self.decisions.contains_key(&tx) {
            return;
        }
        Self::persist(&Record::Decision { tx, commit }, ctx);
        self.decisions.insert(tx, commit);
        self.touch(tx);
        ctx.state_change(format!(
            "decided {} for tx {tx:#x}",
            if commit { "commit" } else { "abort" }
        ));
        let everyone: BTreeSet<NodeId> = Self::participants(ctx).collect();
        for p in &everyone {
            ctx.send(*p, Message::Decision { tx, commit });
        }
        self.unacked.insert(tx, everyone);
        self.sent_at.insert(tx, ctx.now());
        if let Some(a) = self.active.remove(&tx) {
            ctx.reply(
                a.client,
                a.request,
                Reply::Ok(TxOutcome {
                    tx,
                    committed: commit,
                }),
            );
        }
    }

    /// The outcome of `tx` as the coordinator knows it, presuming abort for a transaction
    /// of an earlier epoch it has no decision for (decides it now, durably).
    fn outcome_for(&mut self, tx: TxId, ctx: &mut Ctx<'_, Self>) -> Option<bool> {
        if let Some(c) = self.decisions.get(&tx) {
            return Some(*c);
        }
        if epoch_of(tx) < self.epoch && !self.active.contains_key(&tx) {
            self.decide(tx, false, ctx);
            // Nobody else needs telling: the asker is told below.
            self.unacked.remove(&tx);
            self.sent_at.remove(&tx);
            return Some(false);
        }
        None
    }

    fn coordinator_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Vote { tx, yes } => {
                if let Some(a) = self.active.get_mut(&tx) {
                    if !yes {
                        self.decide(tx, false, ctx);
                        return;
                    }
                    a.yes.insert(from);
                    if a.yes.len() as u32 + 1 >= ctx.node_count() {
                        self.decide(tx, true, ctx);
                    }
                } else if yes && let Some(commit) = self.outcome_for(tx, ctx) {
                    ctx.send(from, Message::Decision { tx, commit });
                }
            }
            Message::Ack { tx } => {
                if let Some(waiting) = self.unacked.get_mut(&tx) {
                    waiting.remove(&from);
                    if waiting.is_empty() {
                        self.unacked.remove(&tx);
                        self.sent_at.remove(&tx);
                    }
                }
            }
            Message::DecisionRequest { tx } => {
                if let Some(commit) = self.outcome_for(tx, ctx) {
                    ctx.send(from, Message::Decision { tx, commit });
                }
            }
            Message::Prepare { .. } | Message::Decision { .. } => {}
        }
    }

    fn coordinator_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let expired: Vec<TxId> = self
            .active
            .iter()
            .filter(|(_, a)| now.saturating_since(a.started) >= self.params.vote_timeout)
            .map(|(tx, _)| *tx)
            .collect();
        for tx in expired {
            self.decide(tx, false, ctx);
        }
        let tick = self.params.tick;
        let sent_at = &mut self.sent_at;
        let mut due = |tx: TxId| match sent_at.get(&tx) {
            Some(at) if now.saturating_since(*at) < tick => false,
            _ => {
                sent_at.insert(tx, now);
                true
            }
        };
        for (tx, a) in &self.active {
            if !due(*tx) {
                continue;
            }
            for p in Self::participants(ctx) {
                if !a.yes.contains(&p) {
                    ctx.send(
                        p,
                        Message::Prepare {
                            tx: *tx,
                            key: a.key.clone(),
                            value: a.value.clone(),
                        },
                    );
                }
            }
        }
        for (tx, waiting) in &self.unacked {
            if !due(*tx) {
                continue;
            }
            let commit = self.decisions.get(tx).copied().unwrap_or(false);
            for p in waiting {
                ctx.send(*p, Message::Decision { tx: *tx, commit });
            }
        }
    }

    // ---- participant ----

    /// Records an outcome durably, applies it and releases the lock.
    fn conclude(&mut self, tx: TxId, commit: bool, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        Self::persist(&Record::Outcome { tx, commit }, ctx);
        let t = self.txs.entry(tx).or_insert(ParticipantTx {
            key: None,
            value: None,
            state: TxState::Aborted,
            heard_at: now,
        });
        t.state = if commit {
            TxState::Committed
        } else {
            TxState::Aborted
        };
        t.heard_at = now;
        if let Some(key) = &t.key {
            if commit && let Some(value) = &t.value {
                self.data.insert(key.clone(), value.clone());
            }
            if self.locks.get(key) == Some(&tx) {
                self.locks.remove(key);
            }
        }
        self.touch(tx);
        ctx.state_change(format!(
            "{} tx {tx:#x}",
            if commit { "committed" } else { "aborted" }
        ));
    }

    fn participant_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        match msg {
            Message::Prepare { tx, key, value } => {
                let yes = match self.txs.get_mut(&tx) {
                    Some(t) => {
                        t.heard_at = now;
                        t.state != TxState::Aborted
                    }
                    None => {
                        let locked = self.locks.contains_key(&key);
                        let refuse =
                            ctx.rng().below(1_000_000) < u64::from(self.params.vote_no_ppm);
                        if locked || refuse {
                            self.conclude(tx, false, ctx);
                            false
                        } else {
                            Self::persist(
                                &Record::Prepared {
                                    tx,
                                    key: key.clone(),
                                    value: value.clone(),
                                },
                                ctx,
                            );
                            self.locks.insert(key.clone(), tx);
                            self.txs.insert(
                                tx,
                                ParticipantTx {
                                    key: Some(key),
                                    value: Some(value),
                                    state: TxState::Prepared,
                                    heard_at: now,
                                },
                            );
                            self.touch(tx);
                            true
                        }
                    }
                };
                ctx.send(from, Message::Vote { tx, yes });
            }
            Message::Decision { tx, commit } => {
                match self.txs.get(&tx).map(|t| t.state) {
                    Some(TxState::Prepared) => self.conclude(tx, commit, ctx),
                    // No record: it never voted yes (an abort), or the protocol is broken
                    // (a commit), which the atomicity checker will see.
                    None => self.conclude(tx, commit, ctx),
                    // Already decided: keep it (a contrary decision is a protocol bug the
                    // checker reports).
                    Some(_) => {}
                }
                if from == COORDINATOR {
                    ctx.send(COORDINATOR, Message::Ack { tx });
                }
            }
            Message::DecisionRequest { tx } => match self.txs.get(&tx).map(|t| t.state) {
                Some(TxState::Committed) => ctx.send(from, Message::Decision { tx, commit: true }),
                Some(TxState::Aborted) => ctx.send(from, Message::Decision { tx, commit: false }),
                // Uncertain too: cannot help.
                Some(TxState::Prepared) => {}
                // Has not voted: abort now, durably, so that a prepare arriving later is
                // refused; the asker may then abort as well.
                None => {
                    self.conclude(tx, false, ctx);
                    ctx.send(from, Message::Decision { tx, commit: false });
                }
            },
            Message::Vote { .. } | Message::Ack { .. } => {}
        }
    }

    fn participant_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let timeout = self.params.decision_timeout;
        let cooperative = self.params.cooperative_termination;
        let me = self.id;
        let asking: Vec<TxId> = self
            .txs
            .iter_mut()
            .filter(|(_, t)| {
                t.state == TxState::Prepared && now.saturating_since(t.heard_at) >= timeout
            })
            .map(|(tx, t)| {
                t.heard_at = now;
                *tx
            })
            .collect();
        for tx in asking {
            ctx.send(COORDINATOR, Message::DecisionRequest { tx });
            if cooperative {
                for p in Self::participants(ctx).filter(|p| *p != me) {
                    ctx.send(p, Message::DecisionRequest { tx });
                }
            }
        }
    }
}

impl Node for TwoPcNode {
    type Message = Message;
    type Request = TxRequest;
    type Response = TxOutcome;
    type Config = TwoPcParams;

    fn recover(id: NodeId, params: &TwoPcParams, disk: &Disk) -> Self {
        let mut n = TwoPcNode {
            id,
            params: params.clone(),
            epoch: 0,
            next_tx: 0,
            active: BTreeMap::new(),
            decisions: BTreeMap::new(),
            unacked: BTreeMap::new(),
            sent_at: BTreeMap::new(),
            txs: BTreeMap::new(),
            locks: BTreeMap::new(),
            data: BTreeMap::new(),
            version: 0,
            changes: Vec::new(),
            torn_tail: None,
        };
        let (log, torn_tail) = records::read_with_tail::<Record>(disk, LOG);
        n.torn_tail = torn_tail;
        for r in log {
            match r {
                Record::Epoch { epoch } => n.epoch = n.epoch.max(epoch),
                Record::Decision { tx, commit } => {
                    n.decisions.entry(tx).or_insert(commit);
                }
                Record::Prepared { tx, key, value } => {
                    n.locks.insert(key.clone(), tx);
                    n.txs.insert(
                        tx,
                        ParticipantTx {
                            key: Some(key),
                            value: Some(value),
                            state: TxState::Prepared,
                            heard_at: Time::ZERO,
                        },
                    );
                }
                Record::Outcome { tx, commit } => {
                    let t = n.txs.entry(tx).or_insert(ParticipantTx {
                        key: None,
                        value: None,
                        state: TxState::Aborted,
                        heard_at: Time::ZERO,
                    });
                    t.state = if commit {
                        TxState::Committed
                    } else {
                        TxState::Aborted
                    };
                    if let Some(key) = &t.key {
                        if commit && let Some(value) = &t.value {
                            n.data.insert(key.clone(), value.clone());
                        }
                        if n.locks.get(key) == Some(&tx) {
                            n.locks.remove(key);
                        }
                    }
                }
            }
        }
        n
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        if self.is_coordinator() {
            // A new epoch, durable before any transaction of it is begun: ids never repeat.
            self.epoch += 1;
            Self::persist(&Record::Epoch { epoch: self.epoch }, ctx);
        } else {
            // Recovered uncertain transactions are asked about at the first tick.
            let now = ctx.now();
            let timeout = self.params.decision_timeout;
            for t in self.txs.values_mut() {
                t.heard_at = Time(now.0.saturating_sub(timeout.0));
            }
        }
        ctx.set_timer(TICK, self.params.tick);
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        if self.is_coordinator() {
            self.coordinator_message(from, msg, ctx);
        } else {
            self.participant_message(from, msg, ctx);
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if timer != TICK {
            return;
        }
        if self.is_coordinator() {
            self.coordinator_tick(ctx);
        } else {
            self.participant_tick(ctx);
        }
        ctx.set_timer(TICK, self.params.tick);
    }

    fn on_request(&mut self, request: ClientRequest<TxRequest>, ctx: &mut Ctx<'_, Self>) {
        if !self.is_coordinator() {
            ctx.reply(
                request.client,
                request.id,
                Reply::Fail(format!("node {} is not the coordinator", self.id)),
            );
            return;
        }
        if ctx.node_count() < 2 {
            ctx.reply(
                request.client,
                request.id,
                Reply::Fail("no participants".into()),
            );
            return;
        }
        let tx = (u64::from(self.epoch) << 32) | u64::from(self.next_tx);
        self.next_tx = self.next_tx.wrapping_add(1);
        let TxRequest { key, value } = request.body;
        for p in Self::participants(ctx) {
            ctx.send(
                p,
                Message::Prepare {
                    tx,
                    key: key.clone(),
                    value: value.clone(),
                },
            );
        }
        self.active.insert(
            tx,
            ActiveTx {
                key,
                value,
                client: request.client,
                request: request.id,
                started: ctx.now(),
                yes: BTreeSet::new(),
            },
        );
        self.sent_at.insert(tx, ctx.now());
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Prepare { .. } => "prepare",
            Message::Vote { yes: true, .. } => "voteYes",
            Message::Vote { yes: false, .. } => "voteNo",
            Message::Decision { commit: true, .. } => "commit",
            Message::Decision { commit: false, .. } => "abort",
            Message::Ack { .. } => "ack",
            Message::DecisionRequest { .. } => "decisionRequest",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_coordinator() {
            "coordinator"
        } else if !self.locks.is_empty() {
            "uncertain"
        } else {
            "participant"
        }
    }
}

/// Every field: the settings, the coordinator's epoch, counter, votes, decisions and
/// resend set and times, the participant's transactions, locks and store, the version counter
/// and change journal (an observer reads them), and the torn tail still to cut.
impl Fingerprint for TwoPcNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let TwoPcNode {
            id,
            params,
            epoch,
            next_tx,
            active,
            decisions,
            unacked,
            sent_at,
            txs,
            locks,
            data,
            version,
            changes,
            torn_tail,
        } = self;
        id.hash(h);
        params.hash(h);
        epoch.hash(h);
        next_tx.hash(h);
        active.hash(h);
        decisions.hash(h);
        unacked.hash(h);
        sent_at.hash(h);
        txs.hash(h);
        locks.hash(h);
        data.hash(h);
        version.hash(h);
        changes.hash(h);
        torn_tail.hash(h);
    }
}
