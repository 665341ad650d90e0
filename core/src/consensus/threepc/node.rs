//! The three-phase commit node: node 0 is the coordinator, every other node a participant
//! holding part of a key-value store, as in the two-phase commit beside it.
//!
//! A transaction writes one key at every participant. Phase 1: the coordinator sends
//! `CanCommit`; a participant that can commit locks the key, makes its *uncertain* state
//! durable and votes yes; one that cannot makes its abort durable and votes no. Phase 2:
//! with every vote yes, the coordinator sends `PreCommit`; a participant makes its
//! *pre-committed* state durable and acknowledges. Phase 3: with every acknowledgement —
//! or once the acknowledgement timeout passes, since a participant that has not answered
//! voted yes and has crashed (Skeen 1981) — the coordinator makes commit durable and sends
//! `DoCommit`. A missing vote or a no vote aborts.
//!
//! The point of the extra phase: no participant is ever committed while another live one
//! is uncertain, so when the coordinator falls silent the participants can decide alone.
//! Each undecided participant waits `decision_timeout` plus a stagger by its rank (the
//! lowest live id goes first, which is the election); the backup coordinator polls every
//! node's state (Skeen & Stonebraker 1983) and decides: any aborted → abort; any committed
//! → commit; any pre-committed → pre-commit the uncertain ones, then commit; all uncertain
//! → abort. A participant that has no record of the transaction aborts it on the spot,
//! durably, so it can never vote yes later.
//!
//! The rule "all uncertain → abort" is only sound if some node answering has been up since
//! it voted: such a node was reachable by whoever committed, so it would be pre-committed.
//! A node recovered from its disk is not *steady* — it may have slept through a commit —
//! so a poll answered only by recovered nodes decides nothing unless every node answered
//! (the total-failure case of Skeen 1981, where recovery waits for everyone). A restarted
//! coordinator never presumes abort, as a two-phase one may: the participants may have
//! committed without it. Its transaction ids carry its boot epoch, so ids never repeat.
//!
//! Under a partition none of this holds: each side polls only itself, and one side may
//! commit while the other aborts.

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
const LOG: &str = "3pc.log";
/// The one timer every node keeps: resends, timeouts and termination rounds.
const TICK: TimerId = 1;

/// A transaction id: the coordinator's boot epoch in the high 32 bits, a counter below.
pub type TxId = u64;

/// Settings shared by every node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThreePcParams {
    /// How often nodes resend and check their timeouts.
    pub tick: Duration,
    /// The coordinator aborts a transaction whose votes are not all in after this.
    pub vote_timeout: Duration,
    /// The coordinator commits this long after sending `PreCommit` even if some
    /// participant has not acknowledged it.
    pub ack_timeout: Duration,
    /// An undecided participant that heard nothing about a transaction for this long (plus
    /// its rank's stagger) runs the termination protocol. Longer than the coordinator's
    /// two timeouts together (and a tick each), so that under crash failures it only fires
    /// once the coordinator is gone or has finished.
    pub decision_timeout: Duration,
    /// Participant `p` waits `(p − 1) × backup_stagger` more than participant 1.
    pub backup_stagger: Duration,
    /// How long a backup coordinator waits for state reports, and then for the
    /// acknowledgements of its `PreCommit`s.
    pub poll_window: Duration,
    /// Chance, in parts per million, that a participant refuses a transaction it could
    /// commit.
    pub vote_no_ppm: u32,
}

impl Default for ThreePcParams {
    fn default() -> Self {
        ThreePcParams {
            tick: Duration::from_millis(50),
            vote_timeout: Duration::from_millis(300),
            ack_timeout: Duration::from_millis(300),
            decision_timeout: Duration::from_millis(1_000),
            backup_stagger: Duration::from_millis(150),
            poll_window: Duration::from_millis(150),
            vote_no_ppm: 50_000,
        }
    }
}

/// Where a participant stands on a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Voted yes; may still abort.
    Uncertain,
    /// Knows every participant voted yes; may still abort only if a backup coordinator
    /// finds nobody else pre-committed (it was then unreachable or down).
    PreCommitted,
    Committed,
    Aborted,
}

impl Phase {
    pub fn decided(self) -> bool {
        matches!(self, Phase::Committed | Phase::Aborted)
    }
}

/// A node's answer to a backup coordinator's poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReportedState {
    /// The coordinator, no longer working on the transaction and with no decision for it:
    /// it will never decide it.
    Unknown,
    Uncertain,
    PreCommitted,
    Committed,
    Aborted,
}

impl From<Phase> for ReportedState {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Uncertain => ReportedState::Uncertain,
            Phase::PreCommitted => ReportedState::PreCommitted,
            Phase::Committed => ReportedState::Committed,
            Phase::Aborted => ReportedState::Aborted,
        }
    }
}

/// What nodes say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// Coordinator → participant: can you commit writing `value` at `key`?
    CanCommit {
        tx: TxId,
        key: String,
        value: String,
    },
    /// Participant → coordinator.
    Vote { tx: TxId, yes: bool },
    /// Coordinator or backup → participant: everyone voted yes.
    PreCommit { tx: TxId },
    /// Participant → whoever sent the `PreCommit`.
    PreCommitAck { tx: TxId },
    /// The outcome (`DoCommit` or abort): from the coordinator or a backup coordinator.
    Decision { tx: TxId, commit: bool },
    /// Participant → coordinator: the decision is applied (stop resending it).
    DecisionAck { tx: TxId },
    /// Backup coordinator → every other node: what is your state?
    StateRequest { tx: TxId },
    /// The answer; `steady` says the node has been up since it voted.
    StateReport {
        tx: TxId,
        state: ReportedState,
        steady: bool,
    },
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
    Uncertain {
        tx: TxId,
        key: String,
        value: String,
    },
    /// A participant was pre-committed.
    PreCommitted { tx: TxId },
    /// A participant's outcome (an abort may come without a vote).
    Outcome { tx: TxId, commit: bool },
}

/// A participant's record of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantTx {
    pub key: Option<String>,
    pub value: Option<String>,
    pub phase: Phase,
    /// When it last heard from a coordinator about it (for the decision timeout).
    pub heard_at: Time,
    /// Up since it voted on it (false once recovered from the disk).
    pub steady: bool,
}

/// A transaction the coordinator is working on.
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
    /// Once every vote is yes: when `PreCommit` went out, and who acknowledged it.
    pub precommit: Option<(Time, BTreeSet<NodeId>)>,
}

/// A termination protocol this participant runs as backup coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    pub started: Time,
    /// Reports received (its own included): state, and whether the node is steady.
    pub reports: BTreeMap<NodeId, (ReportedState, bool)>,
    /// Once it found a pre-committed node: when its `PreCommit`s went out, and who has
    /// not acknowledged them yet.
    pub precommitting: Option<(Time, BTreeSet<NodeId>)>,
}

/// A three-phase commit node (coordinator or participant by its id).
#[derive(Debug, Clone)]
pub struct ThreePcNode {
    id: NodeId,
    params: ThreePcParams,
    // ---- coordinator ----
    epoch: u32,
    next_tx: u32,
    active: BTreeMap<TxId, ActiveTx>,
    /// Durable: every decision made (mirror of the log).
    decisions: BTreeMap<TxId, bool>,
    /// Decisions some participant has not acknowledged yet.
    unacked: BTreeMap<TxId, BTreeSet<NodeId>>,
    /// When the coordinator last sent a transaction's CanCommit, PreCommit or decision:
    /// the tick re-sends only what is at least a tick old, not a message still in
    /// flight (whose answer, re-sent too, would come twice).
    sent_at: BTreeMap<TxId, Time>,
    // ---- participant ----
    /// Durable (mirror of the log, but for `heard_at` and `steady`).
    txs: BTreeMap<TxId, ParticipantTx>,
    /// Key → the undecided transaction holding its lock.
    locks: BTreeMap<String, TxId>,
    /// The committed store.
    data: BTreeMap<String, String>,
    /// Termination protocols this node runs as backup coordinator.
    terminating: BTreeMap<TxId, Termination>,
    /// Bumped on every change of a phase or a decision, so an observer can skip a node
    /// that did not change.
    version: u64,
    /// The transactions whose decision or phase changed since boot, in order (one entry
    /// per change), so an observer reads only what changed instead of every
    /// transaction the node ever saw: rescanning those made each event's check grow
    /// with the run.
    changes: Vec<TxId>,
    /// The intact length of the log when recovery found a torn tail after it: cut at
    /// start, before anything is appended.
    torn_tail: Option<usize>,
}

impl ThreePcNode {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn is_coordinator(&self) -> bool {
        self.id == COORDINATOR
    }
    pub fn params(&self) -> &ThreePcParams {
        &self.params
    }
    /// The coordinator's boot epoch (0 on participants).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// Transactions the coordinator is working on.
    pub fn active(&self) -> &BTreeMap<TxId, ActiveTx> {
        &self.active
    }
    /// The coordinator's decisions.
    pub fn decisions(&self) -> &BTreeMap<TxId, bool> {
        &self.decisions
    }
    pub fn unacked(&self) -> &BTreeMap<TxId, BTreeSet<NodeId>> {
        &self.unacked
    }
    /// A participant's transactions.
    pub fn txs(&self) -> &BTreeMap<TxId, ParticipantTx> {
        &self.txs
    }
    /// Locks held: key → undecided transaction.
    pub fn locks(&self) -> &BTreeMap<String, TxId> {
        &self.locks
    }
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
    /// Termination protocols it runs as backup coordinator.
    pub fn terminating(&self) -> &BTreeMap<TxId, Termination> {
        &self.terminating
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

    /// Notes a change of `tx`'s decision, phase or termination round.
    fn touch(&mut self, tx: TxId) {
        self.version += 1;
        self.changes.push(tx);
    }
    /// Transactions this participant has voted yes on and not decided.
    pub fn undecided(&self) -> impl Iterator<Item = (TxId, Phase)> + '_ {
        self.txs
            .iter()
            .filter(|(_, t)| !t.phase.decided())
            .map(|(tx, t)| (*tx, t.phase))
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

    fn send_precommits(tx: TxId, a: &ActiveTx, ctx: &mut Ctx<'_, Self>) {
        let acked = a.precommit.as_ref().map(|(_, acked)| acked);
        for p in Self::participants(ctx) {
            if acked.is_some_and(|acked| !acked.contains(&p)) {
                ctx.send(p, Message::PreCommit { tx });
            }
        }
    }

    fn coordinator_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let participants = ctx.node_count().saturating_sub(1) as usize;
        match msg {
            Message::Vote { tx, yes } => {
                let Some(a) = self.active.get_mut(&tx) else {
                    if let Some(commit) = self.decisions.get(&tx).copied() {
                        ctx.send(from, Message::Decision { tx, commit });
                    }
                    return;
                };
                if !yes {
                    if a.precommit.is_none() {
                        self.decide(tx, false, ctx);
                    }
                    return;
                }
                a.yes.insert(from);
                if a.precommit.is_none() && a.yes.len() >= participants {
                    a.precommit = Some((now, BTreeSet::new()));
                    // `touch` by hand: `a` borrows `active`.
                    self.version += 1;
                    self.changes.push(tx);
                    ctx.state_change(format!("pre-commit tx {tx:#x}"));
                    Self::send_precommits(tx, a, ctx);
                    self.sent_at.insert(tx, now);
                }
            }
            Message::PreCommitAck { tx } => {
                let Some((_, acked)) = self.active.get_mut(&tx).and_then(|a| a.precommit.as_mut())
                else {
                    return;
                };
                acked.insert(from);
                if acked.len() >= participants {
                    self.decide(tx, true, ctx);
                }
            }
            Message::DecisionAck { tx } => {
                if let Some(waiting) = self.unacked.get_mut(&tx) {
                    waiting.remove(&from);
                    if waiting.is_empty() {
                        self.unacked.remove(&tx);
                        self.sent_at.remove(&tx);
                    }
                }
            }
            Message::StateRequest { tx } => {
                // Still working on it: it may yet decide, so it does not answer.
                if self.active.contains_key(&tx) {
                    return;
                }
                let state = match self.decisions.get(&tx) {
                    Some(true) => ReportedState::Committed,
                    Some(false) => ReportedState::Aborted,
                    None => ReportedState::Unknown,
                };
                ctx.send(
                    from,
                    Message::StateReport {
                        tx,
                        state,
                        steady: false,
                    },
                );
            }
            Message::CanCommit { .. }
            | Message::PreCommit { .. }
            | Message::Decision { .. }
            | Message::StateReport { .. } => {}
        }
    }

    fn coordinator_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let mut expired: Vec<(TxId, bool)> = Vec::new();
        for (tx, a) in &self.active {
            match &a.precommit {
                None if now.saturating_since(a.started) >= self.params.vote_timeout => {
                    expired.push((*tx, false));
                }
                // Whoever has not acknowledged voted yes and has crashed: commit anyway.
                Some((sent, _)) if now.saturating_since(*sent) >= self.params.ack_timeout => {
                    expired.push((*tx, true));
                }
                _ => {}
            }
        }
        for (tx, commit) in expired {
            self.decide(tx, commit, ctx);
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
            if a.precommit.is_some() {
                Self::send_precommits(*tx, a, ctx);
                continue;
            }
            for p in Self::participants(ctx) {
                if !a.yes.contains(&p) {
                    ctx.send(
                        p,
                        Message::CanCommit {
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
            phase: Phase::Aborted,
            heard_at: now,
            steady: true,
        });
        t.phase = if commit {
            Phase::Committed
        } else {
            Phase::Aborted
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
        self.terminating.remove(&tx);
        self.touch(tx);
        ctx.state_change(format!(
            "{} tx {tx:#x}",
            if commit { "committed" } else { "aborted" }
        ));
    }

    /// Moves an uncertain transaction to pre-committed, durably.
    fn precommit(&mut self, tx: TxId, ctx: &mut Ctx<'_, Self>) {
        let Some(t) = self.txs.get_mut(&tx) else {
            return;
        };
        if t.phase != Phase::Uncertain {
            return;
        }
        Self::persist(&Record::PreCommitted { tx }, ctx);
        t.phase = Phase::PreCommitted;
        self.touch(tx);
        ctx.state_change(format!("pre-committed tx {tx:#x}"));
    }

    fn heard(&mut self, tx: TxId, now: Time) {
        if let Some(t) = self.txs.get_mut(&tx) {
            t.heard_at = now;
        }
    }

    fn can_commit(
        &mut self,
        from: NodeId,
        tx: TxId,
        key: String,
        value: String,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        let yes = match self.txs.get_mut(&tx) {
            Some(t) => {
                t.heard_at = now;
                t.phase != Phase::Aborted
            }
            None => {
                let locked = self.locks.contains_key(&key);
                let refuse = ctx.rng().below(1_000_000) < u64::from(self.params.vote_no_ppm);
                if locked || refuse {
                    self.conclude(tx, false, ctx);
                    false
                } else {
                    Self::persist(
                        &Record::Uncertain {
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
                            phase: Phase::Uncertain,
                            heard_at: now,
                            steady: true,
                        },
                    );
                    self.touch(tx);
                    true
                }
            }
        };
        ctx.send(from, Message::Vote { tx, yes });
    }

    fn participant_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        match msg {
            Message::CanCommit { tx, key, value } => self.can_commit(from, tx, key, value, ctx),
            Message::PreCommit { tx } => {
                self.heard(tx, now);
                match self.txs.get(&tx).map(|t| t.phase) {
                    Some(Phase::Uncertain) => {
                        self.precommit(tx, ctx);
                        ctx.send(from, Message::PreCommitAck { tx });
                    }
                    Some(Phase::PreCommitted | Phase::Committed) => {
                        ctx.send(from, Message::PreCommitAck { tx });
                    }
                    // Aborted already (a backup on another side of a partition decided):
                    // say so; the sender's rules will not change its mind.
                    Some(Phase::Aborted) => ctx.send(from, Message::Decision { tx, commit: false }),
                    None => {}
                }
            }
            Message::Decision { tx, commit } => {
                match self.txs.get(&tx).map(|t| t.phase) {
                    // A contrary decision after one is taken is the split the checker
                    // reports; the node keeps its first.
                    Some(p) if p.decided() => {}
                    _ => self.conclude(tx, commit, ctx),
                }
                if from == COORDINATOR {
                    ctx.send(COORDINATOR, Message::DecisionAck { tx });
                }
            }
            Message::StateRequest { tx } => {
                if !self.txs.contains_key(&tx) {
                    // Never voted: abort now, durably, so that a CanCommit arriving later
                    // is refused.
                    self.conclude(tx, false, ctx);
                }
                self.heard(tx, now);
                // A lower-ranked backup is at work: leave it to it.
                if from < self.id {
                    self.terminating.remove(&tx);
                }
                if let Some(t) = self.txs.get(&tx) {
                    ctx.send(
                        from,
                        Message::StateReport {
                            tx,
                            state: t.phase.into(),
                            steady: t.steady,
                        },
                    );
                }
            }
            Message::StateReport { tx, state, steady } => {
                let count = ctx.node_count() as usize;
                let Some(term) = self.terminating.get_mut(&tx) else {
                    return;
                };
                if term.precommitting.is_some() {
                    return;
                }
                term.reports.insert(from, (state, steady));
                if term.reports.len() >= count {
                    self.evaluate(tx, ctx);
                }
            }
            Message::PreCommitAck { tx } => {
                let Some((_, waiting)) = self
                    .terminating
                    .get_mut(&tx)
                    .and_then(|t| t.precommitting.as_mut())
                else {
                    return;
                };
                waiting.remove(&from);
                if waiting.is_empty() {
                    self.finish(tx, true, ctx);
                }
            }
            Message::Vote { .. } | Message::DecisionAck { .. } => {}
        }
    }

    /// Becomes backup coordinator for `tx`: polls every other node.
    fn start_termination(&mut self, tx: TxId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(t) = self.txs.get_mut(&tx) else {
            return;
        };
        t.heard_at = now;
        let mine = (ReportedState::from(t.phase), t.steady);
        self.terminating.insert(
            tx,
            Termination {
                started: now,
                reports: BTreeMap::from([(self.id, mine)]),
                precommitting: None,
            },
        );
        self.touch(tx);
        ctx.state_change(format!("backup coordinator for tx {tx:#x}: polling"));
        for n in 0..ctx.node_count() {
            if n != self.id {
                ctx.send(n, Message::StateRequest { tx });
            }
        }
    }

    /// Applies the termination rules to the reports in.
    fn evaluate(&mut self, tx: TxId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let count = ctx.node_count() as usize;
        let (Some(t), Some(term)) = (self.txs.get(&tx), self.terminating.get_mut(&tx)) else {
            return;
        };
        term.reports.insert(self.id, (t.phase.into(), t.steady));
        let any = |s: ReportedState| term.reports.values().any(|(r, _)| *r == s);
        if any(ReportedState::Aborted) {
            self.finish(tx, false, ctx);
        } else if any(ReportedState::Committed) {
            self.finish(tx, true, ctx);
        } else if !term.reports.values().any(|(_, steady)| *steady) && term.reports.len() < count {
            // Only recovered nodes answered: any of them may have slept through a commit
            // or an abort. Try again later.
            self.terminating.remove(&tx);
            self.heard(tx, now);
            self.touch(tx);
            ctx.state_change(format!(
                "tx {tx:#x}: no steady node answered the poll; waiting"
            ));
        } else if any(ReportedState::PreCommitted) {
            let uncertain: BTreeSet<NodeId> = term
                .reports
                .iter()
                .filter(|(n, (r, _))| **n != self.id && *r == ReportedState::Uncertain)
                .map(|(n, _)| *n)
                .collect();
            term.precommitting = Some((now, uncertain.clone()));
            self.precommit(tx, ctx);
            if uncertain.is_empty() {
                self.finish(tx, true, ctx);
            } else {
                for n in uncertain {
                    ctx.send(n, Message::PreCommit { tx });
                }
            }
        } else {
            self.finish(tx, false, ctx);
        }
    }

    /// The backup coordinator's decision: durable here, then told to every participant.
    fn finish(&mut self, tx: TxId, commit: bool, ctx: &mut Ctx<'_, Self>) {
        self.terminating.remove(&tx);
        if !self.txs.get(&tx).is_some_and(|t| t.phase.decided()) {
            self.conclude(tx, commit, ctx);
        }
        let commit = self
            .txs
            .get(&tx)
            .map_or(commit, |t| t.phase == Phase::Committed);
        let me = self.id;
        for p in Self::participants(ctx).filter(|p| *p != me) {
            ctx.send(p, Message::Decision { tx, commit });
        }
    }

    fn participant_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let wait = self.params.decision_timeout
            + Duration(self.params.backup_stagger.0 * u64::from(self.id.saturating_sub(1)));
        let window = self.params.poll_window;
        let starting: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(tx, t)| {
                !t.phase.decided()
                    && !self.terminating.contains_key(tx)
                    && now.saturating_since(t.heard_at) >= wait
            })
            .map(|(tx, _)| *tx)
            .collect();
        let mut due: Vec<(TxId, bool)> = Vec::new();
        for (tx, term) in &self.terminating {
            match &term.precommitting {
                None if now.saturating_since(term.started) >= window => due.push((*tx, false)),
                // Whoever has not acknowledged answered the poll uncertain and has crashed
                // since: it will learn the outcome when it polls in turn.
                Some((sent, _)) if now.saturating_since(*sent) >= window => due.push((*tx, true)),
                _ => {}
            }
        }
        for (tx, precommitting) in due {
            if precommitting {
                self.finish(tx, true, ctx);
            } else {
                self.evaluate(tx, ctx);
            }
        }
        for tx in starting {
            self.start_termination(tx, ctx);
        }
    }
}

impl Node for ThreePcNode {
    type Message = Message;
    type Request = TxRequest;
    type Response = TxOutcome;
    type Config = ThreePcParams;

    fn recover(id: NodeId, params: &ThreePcParams, disk: &Disk) -> Self {
        let mut n = ThreePcNode {
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
            terminating: BTreeMap::new(),
            version: 0,
            changes: Vec::new(),
            torn_tail: None,
        };
        let (log, torn_tail) = records::read_with_tail::<Record>(disk, LOG);
        n.torn_tail = torn_tail;
        let blank = ParticipantTx {
            key: None,
            value: None,
            phase: Phase::Aborted,
            heard_at: Time::ZERO,
            steady: false,
        };
        for r in log {
            match r {
                Record::Epoch { epoch } => n.epoch = n.epoch.max(epoch),
                Record::Decision { tx, commit } => {
                    n.decisions.entry(tx).or_insert(commit);
                }
                Record::Uncertain { tx, key, value } => {
                    n.locks.insert(key.clone(), tx);
                    n.txs.insert(
                        tx,
                        ParticipantTx {
                            key: Some(key),
                            value: Some(value),
                            phase: Phase::Uncertain,
                            ..blank.clone()
                        },
                    );
                }
                Record::PreCommitted { tx } => {
                    if let Some(t) = n.txs.get_mut(&tx)
                        && t.phase == Phase::Uncertain
                    {
                        t.phase = Phase::PreCommitted;
                    }
                }
                Record::Outcome { tx, commit } => {
                    let t = n.txs.entry(tx).or_insert(blank.clone());
                    t.phase = if commit {
                        Phase::Committed
                    } else {
                        Phase::Aborted
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
            // Recovered undecided transactions go to termination at the node's turn, a
            // whole decision timeout from now: the coordinator may still be working on
            // them, and under crash failures it finishes within that (seed 302 of the
            // soak: a participant that polled at once aborted while the coordinator,
            // collecting the last votes, went on to commit).
            let now = ctx.now();
            for t in self.txs.values_mut() {
                t.heard_at = now;
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
                Message::CanCommit {
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
                precommit: None,
            },
        );
        self.sent_at.insert(tx, ctx.now());
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::CanCommit { .. } => "canCommit",
            Message::Vote { yes: true, .. } => "voteYes",
            Message::Vote { yes: false, .. } => "voteNo",
            Message::PreCommit { .. } => "preCommit",
            Message::PreCommitAck { .. } => "preCommitAck",
            Message::Decision { commit: true, .. } => "doCommit",
            Message::Decision { commit: false, .. } => "abort",
            Message::DecisionAck { .. } => "decisionAck",
            Message::StateRequest { .. } => "stateRequest",
            Message::StateReport { .. } => "stateReport",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_coordinator() {
            "coordinator"
        } else if !self.terminating.is_empty() {
            "backup coordinator"
        } else if self.undecided().any(|(_, p)| p == Phase::PreCommitted) {
            "pre-committed"
        } else if self.undecided().next().is_some() {
            "uncertain"
        } else {
            "participant"
        }
    }
}

/// Every field: the settings, the coordinator's epoch, counter, transactions, decisions
/// and resend set and times, the participant's transactions, locks, store and termination rounds,
/// the version counter and change journal (an observer reads them), and the torn tail still to cut.
impl Fingerprint for ThreePcNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let ThreePcNode {
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
            terminating,
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
        terminating.hash(h);
        version.hash(h);
        changes.hash(h);
        torn_tail.hash(h);
    }
}
