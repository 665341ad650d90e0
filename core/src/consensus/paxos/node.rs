//! The Paxos node: acceptor, learner and proposer in one, replicating a key-value store
//! slot by slot.
//!
//! Acceptor (Lamport, "Paxos Made Simple", 2001, §2.2): it promises a ballot (phase 1b)
//! only if no higher one was promised, and accepts a value (phase 2b) only at a ballot at
//! least its promise; both are durable (append + fsync) before the answer leaves. One
//! promise covers every slot from the one named on, as in Multi-Paxos (§3).
//!
//! Proposer, in one of two modes:
//! - [`Mode::SingleDecree`]: every node proposes its clients' commands, each by a full
//!   instance of basic Paxos on the first slot it does not know chosen — phase 1, then
//!   phase 2: two round trips per command. Two proposers preempt each other: with fixed
//!   retry delays they can do so forever (the livelock of §2.4); randomised delays end it.
//! - [`Mode::MultiPaxos`]: a leader runs phase 1 once for every slot from its first
//!   unchosen one, re-proposes what acceptors had accepted (the highest ballot's value per
//!   slot, a no-op in a gap), then runs only phase 2 per command: one round trip. It sends
//!   heartbeats; a node that hears none for a randomised timeout runs phase 1 itself.
//!
//! Learners hear `Chosen` from the proposer that saw a majority accept, and apply the
//! chosen prefix to the store (raft's [`KvStore`], whose client sessions make retries
//! apply once).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hash;

use crate::consensus::raft::state_machine::{Applied, KvCommand, KvResponse, KvStore};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

const LOG: &str = "paxos.log";
/// Retries of phase 1 and (in Multi-Paxos) the leader's heartbeats and the followers'
/// election timeout.
pub const TIMEOUT: TimerId = 1;
/// The leader's heartbeat and resend tick.
pub const TICK: TimerId = 2;

/// A ballot number: rounds ordered first, the proposer's id breaking ties, so no two
/// proposers ever use the same ballot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

/// A slot's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Value {
    /// Fills a gap a new leader found.
    Noop,
    Command(KvCommand),
}

/// How proposers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    SingleDecree,
    MultiPaxos,
}

/// Settings shared by every node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaxosParams {
    pub mode: Mode,
    /// A proposer retries (after a rejection, or silence) after a delay drawn from
    /// `[retry_min, retry_max]` — or exactly `retry_min` when not randomised.
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub randomised: bool,
    /// The Multi-Paxos leader's heartbeat and resend period.
    pub heartbeat: Duration,
}

impl Default for PaxosParams {
    fn default() -> Self {
        PaxosParams {
            mode: Mode::MultiPaxos,
            retry_min: Duration::from_millis(150),
            retry_max: Duration::from_millis(300),
            randomised: true,
            heartbeat: Duration::from_millis(50),
        }
    }
}

/// What nodes say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// Phase 1a, for every slot from `slot` on.
    Prepare { ballot: Ballot, slot: u64 },
    /// Phase 1b: what the acceptor accepted from `slot` on, with the ballot of each.
    Promise {
        ballot: Ballot,
        slot: u64,
        accepted: Vec<(u64, Ballot, Value)>,
    },
    /// Phase 2a.
    Accept {
        ballot: Ballot,
        slot: u64,
        value: Value,
    },
    /// Phase 2b.
    Accepted { ballot: Ballot, slot: u64 },
    /// A rejection: the acceptor has promised `promised`.
    Nack { ballot: Ballot, promised: Ballot },
    /// A learner's news.
    Chosen { slot: u64, value: Value },
    /// The Multi-Paxos leader is alive; `chosen` is its first slot not known chosen.
    Heartbeat { ballot: Ballot, chosen: u64 },
    /// A learner behind the leader asks for chosen values from `from` on.
    Catchup { from: u64 },
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
enum Record {
    /// A proposer's round, durable before its `Prepare` leaves: a proposer that crashed
    /// after phase 1 and forgot its round would reuse its ballot with another value.
    Round {
        round: u64,
    },
    Promise {
        ballot: Ballot,
    },
    Accept {
        slot: u64,
        ballot: Ballot,
        value: Value,
    },
    Chosen {
        slot: u64,
        value: Value,
    },
}

/// The last thing a node changed in its acceptor or learner state, so the checker can
/// look at that alone instead of every slot after every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Change {
    Promise,
    Vote { slot: u64 },
    Learn { slot: u64 },
}

/// What the proposer is doing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Role {
    Idle,
    /// Phase 1 for `slot` on (one slot in single-decree mode).
    Preparing {
        ballot: Ballot,
        slot: u64,
        promises: BTreeMap<NodeId, Vec<(u64, Ballot, Value)>>,
    },
    /// Phase 2 at `ballot`: a Multi-Paxos leader, or a single-decree proposer on one slot.
    Proposing {
        ballot: Ballot,
    },
}

/// A value the proposer has sent in phase 2, and who accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub value: Value,
    pub accepted_by: BTreeSet<NodeId>,
}

/// A Paxos node.
#[derive(Debug, Clone)]
pub struct PaxosNode {
    id: NodeId,
    params: PaxosParams,
    // ---- acceptor (durable) ----
    promised: Option<Ballot>,
    accepted: BTreeMap<u64, (Ballot, Value)>,
    // ---- learner ----
    chosen: BTreeMap<u64, Value>,
    /// Slots below this are applied to `kv`.
    applied: u64,
    kv: KvStore,
    // ---- proposer ----
    role: Role,
    /// The highest round seen anywhere, so a new ballot beats every one known.
    max_round: u64,
    proposals: BTreeMap<u64, Proposal>,
    next_slot: u64,
    /// Client commands not yet in a proposal.
    queue: VecDeque<KvCommand>,
    /// Clients waiting for a command: (session, seq) → (client, request).
    waiting: BTreeMap<(u64, u64), (ClientId, RequestId)>,
    /// The Multi-Paxos leader this node last heard from, and when.
    leader: Option<(Ballot, Time)>,
    /// Counters for the lab and the benchmark.
    phase1_rounds: u64,
    /// Bumped whenever the promise, a vote or a chosen slot changes, so an observer can
    /// skip a node that did not change; `last_change` says what changed last.
    changes: u64,
    last_change: Option<Change>,
    /// A proposer backing off does not start phase 1 before this time (its retry timer
    /// is set for it; the check also holds when a test fires the timer by hand).
    retry_at: Time,
    torn_tail: Option<usize>,
}

impl PaxosNode {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn promised(&self) -> Option<Ballot> {
        self.promised
    }
    pub fn accepted(&self) -> &BTreeMap<u64, (Ballot, Value)> {
        &self.accepted
    }
    pub fn chosen(&self) -> &BTreeMap<u64, Value> {
        &self.chosen
    }
    pub fn applied(&self) -> u64 {
        self.applied
    }
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }
    pub fn proposer(&self) -> &Role {
        &self.role
    }
    pub fn proposals(&self) -> &BTreeMap<u64, Proposal> {
        &self.proposals
    }
    pub fn changes(&self) -> u64 {
        self.changes
    }
    /// What the last of [`changes`](Self::changes) was.
    pub fn last_change(&self) -> Option<Change> {
        self.last_change
    }
    /// The highest ballot round this node has seen.
    pub fn max_round(&self) -> u64 {
        self.max_round
    }
    /// The ballot it prepares or proposes with, if it does.
    pub fn ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Preparing { ballot, .. } | Role::Proposing { ballot } => Some(*ballot),
            Role::Idle => None,
        }
    }
    /// Phase 1 rounds this node has started.
    pub fn phase1_rounds(&self) -> u64 {
        self.phase1_rounds
    }
    /// Whether this node leads (Multi-Paxos) or is in phase 2 (single-decree).
    pub fn is_proposing(&self) -> bool {
        matches!(self.role, Role::Proposing { .. })
    }
    /// The first slot this node does not know chosen.
    pub fn first_unchosen(&self) -> u64 {
        let mut s = self.applied;
        while self.chosen.contains_key(&s) {
            s += 1;
        }
        s
    }

    fn majority(ctx: &Ctx<'_, Self>) -> usize {
        ctx.node_count() as usize / 2 + 1
    }

    fn broadcast(msg: &Message, ctx: &mut Ctx<'_, Self>) {
        for to in 0..ctx.node_count() {
            ctx.send(to, msg.clone());
        }
    }

    fn persist(record: &Record, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(LOG, record));
        ctx.disk(DiskOp::Fsync);
    }

    fn retry_delay(&self, ctx: &mut Ctx<'_, Self>) -> Duration {
        let (lo, hi) = (
            self.params.retry_min.0,
            self.params.retry_max.0.max(self.params.retry_min.0),
        );
        if self.params.randomised {
            Duration(ctx.rng().range_inclusive(lo, hi))
        } else {
            Duration(lo)
        }
    }

    fn new_ballot(&mut self, ctx: &mut Ctx<'_, Self>) -> Ballot {
        self.max_round += 1;
        Self::persist(
            &Record::Round {
                round: self.max_round,
            },
            ctx,
        );
        Ballot {
            round: self.max_round,
            node: self.id,
        }
    }

    /// Arms the retry timer: a fixed delay, or a random one when randomised.
    fn back_off(&mut self, ctx: &mut Ctx<'_, Self>) {
        let d = self.retry_delay(ctx);
        self.retry_at = ctx.now() + d;
        ctx.set_timer(TIMEOUT, d);
    }

    /// Starts phase 1 with a fresh ballot.
    fn start_phase1(&mut self, ctx: &mut Ctx<'_, Self>) {
        let ballot = self.new_ballot(ctx);
        let slot = self.first_unchosen();
        self.role = Role::Preparing {
            ballot,
            slot,
            promises: BTreeMap::new(),
        };
        self.proposals.clear();
        self.phase1_rounds += 1;
        ctx.state_change(format!(
            "phase 1 at ballot {}.{} from slot {slot}",
            ballot.round, ballot.node
        ));
        Self::broadcast(&Message::Prepare { ballot, slot }, ctx);
        self.back_off(ctx);
    }

    /// Gives up proposing (preempted) and backs off before trying again.
    fn stand_down(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.role = Role::Idle;
        self.proposals.clear();
        self.back_off(ctx);
    }

    fn propose(&mut self, ballot: Ballot, slot: u64, value: Value, ctx: &mut Ctx<'_, Self>) {
        self.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                accepted_by: BTreeSet::new(),
            },
        );
        Self::broadcast(
            &Message::Accept {
                ballot,
                slot,
                value,
            },
            ctx,
        );
    }

    /// Phase 1 succeeded: re-propose what may have been chosen, then our own commands.
    fn won_phase1(
        &mut self,
        ballot: Ballot,
        from: u64,
        promises: BTreeMap<NodeId, Vec<(u64, Ballot, Value)>>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let mut highest: BTreeMap<u64, (Ballot, Value)> = BTreeMap::new();
        for (slot, b, v) in promises.into_values().flatten() {
            if self.params.mode == Mode::SingleDecree && slot != from {
                continue;
            }
            if highest.get(&slot).is_none_or(|(hb, _)| b > *hb) {
                highest.insert(slot, (b, v));
            }
        }
        self.role = Role::Proposing { ballot };
        ctx.state_change(format!(
            "phase 1 won at ballot {}.{}",
            ballot.round, ballot.node
        ));
        match self.params.mode {
            Mode::SingleDecree => {
                let value = match highest.remove(&from) {
                    Some((_, v)) => v,
                    None => match self.queue.front() {
                        Some(c) => Value::Command(c.clone()),
                        None => Value::Noop,
                    },
                };
                self.next_slot = from + 1;
                self.propose(ballot, from, value, ctx);
                // Phase 2 gets a whole retry delay before phase 1 starts again.
                self.back_off(ctx);
            }
            Mode::MultiPaxos => {
                let last = highest.keys().next_back().copied().map_or(from, |s| s + 1);
                for slot in from..last {
                    if self.chosen.contains_key(&slot) {
                        continue;
                    }
                    let v = highest.remove(&slot).map_or(Value::Noop, |(_, v)| v);
                    self.propose(ballot, slot, v, ctx);
                }
                self.next_slot = last;
                self.drain_queue(ctx);
                ctx.set_timer(TICK, self.params.heartbeat);
            }
        }
    }

    /// A Multi-Paxos leader puts every queued command in a slot of its own.
    fn drain_queue(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Role::Proposing { ballot } = self.role else {
            return;
        };
        while let Some(cmd) = self.queue.pop_front() {
            let slot = self.next_slot.max(self.first_unchosen());
            self.next_slot = slot + 1;
            self.propose(ballot, slot, Value::Command(cmd), ctx);
        }
    }

    fn learn(&mut self, slot: u64, value: Value, ctx: &mut Ctx<'_, Self>) {
        if slot < self.applied || self.chosen.contains_key(&slot) {
            return;
        }
        ctx.disk(records::append(
            LOG,
            &Record::Chosen {
                slot,
                value: value.clone(),
            },
        ));
        self.chosen.insert(slot, value);
        self.changes += 1;
        self.last_change = Some(Change::Learn { slot });
        self.apply_chosen(ctx);
    }

    fn apply_chosen(&mut self, ctx: &mut Ctx<'_, Self>) {
        while let Some(v) = self.chosen.get(&self.applied) {
            if let Value::Command(cmd) = v {
                let result = self.kv.apply(cmd);
                let key = (cmd.session, cmd.seq);
                self.queue.retain(|q| (q.session, q.seq) != key);
                if let Some((client, request)) = self.waiting.remove(&key)
                    && let Applied::Response(r) = result
                {
                    ctx.reply(client, request, Reply::Ok(r));
                }
            }
            self.applied += 1;
        }
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: u64,
        accepted: Vec<(u64, Ballot, Value)>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let majority = Self::majority(ctx);
        let Role::Preparing {
            ballot: mine,
            slot: my_slot,
            promises,
        } = &mut self.role
        else {
            return;
        };
        if *mine != ballot || *my_slot != slot {
            return;
        }
        promises.insert(from, accepted);
        if promises.len() >= majority {
            let promises = std::mem::take(promises);
            self.won_phase1(ballot, slot, promises, ctx);
        }
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slot: u64, ctx: &mut Ctx<'_, Self>) {
        let majority = Self::majority(ctx);
        if self.role != (Role::Proposing { ballot }) {
            return;
        }
        let Some(p) = self.proposals.get_mut(&slot) else {
            return;
        };
        p.accepted_by.insert(from);
        if p.accepted_by.len() >= majority {
            let value = p.value.clone();
            self.proposals.remove(&slot);
            Self::broadcast(
                &Message::Chosen {
                    slot,
                    value: value.clone(),
                },
                ctx,
            );
            self.learn(slot, value, ctx);
            if self.params.mode == Mode::SingleDecree {
                // One instance done; the next command needs phase 1 again.
                self.role = Role::Idle;
                if !self.queue.is_empty() {
                    self.start_phase1(ctx);
                }
            }
        }
    }

    fn on_client_command(&mut self, cmd: KvCommand, ctx: &mut Ctx<'_, Self>) {
        if self
            .queue
            .iter()
            .any(|q| (q.session, q.seq) == (cmd.session, cmd.seq))
            || self
                .proposals
                .values()
                .any(|p| p.value == Value::Command(cmd.clone()))
        {
            return;
        }
        self.queue.push_back(cmd);
        match (self.params.mode, &self.role) {
            (Mode::MultiPaxos, Role::Proposing { .. }) => self.drain_queue(ctx),
            (Mode::SingleDecree, Role::Idle) if ctx.now() >= self.retry_at => {
                self.start_phase1(ctx)
            }
            _ => {}
        }
    }
}

impl Node for PaxosNode {
    type Message = Message;
    type Request = KvCommand;
    type Response = KvResponse;
    type Config = PaxosParams;

    fn recover(id: NodeId, params: &PaxosParams, disk: &Disk) -> Self {
        let mut n = PaxosNode {
            id,
            params: params.clone(),
            promised: None,
            accepted: BTreeMap::new(),
            chosen: BTreeMap::new(),
            applied: 0,
            kv: KvStore::new(),
            role: Role::Idle,
            max_round: 0,
            proposals: BTreeMap::new(),
            next_slot: 0,
            queue: VecDeque::new(),
            waiting: BTreeMap::new(),
            leader: None,
            phase1_rounds: 0,
            changes: 0,
            last_change: None,
            retry_at: Time::ZERO,
            torn_tail: None,
        };
        let (log, tail) = records::read_with_tail::<Record>(disk, LOG);
        n.torn_tail = tail;
        for r in log {
            match r {
                Record::Round { round } => n.max_round = n.max_round.max(round),
                Record::Promise { ballot } => {
                    n.promised = n.promised.max(Some(ballot));
                    n.max_round = n.max_round.max(ballot.round);
                }
                Record::Accept {
                    slot,
                    ballot,
                    value,
                } => {
                    // Accepting at a ballot is promising it too.
                    n.promised = n.promised.max(Some(ballot));
                    n.accepted.insert(slot, (ballot, value));
                    n.max_round = n.max_round.max(ballot.round);
                }
                Record::Chosen { slot, value } => {
                    n.chosen.insert(slot, value);
                }
            }
        }
        while let Some(v) = n.chosen.get(&n.applied) {
            if let Value::Command(cmd) = v {
                n.kv.apply(cmd);
            }
            n.applied += 1;
        }
        n
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        let d = self.retry_delay(ctx);
        ctx.set_timer(TIMEOUT, d);
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Prepare { ballot, slot } => {
                self.max_round = self.max_round.max(ballot.round);
                if self.promised.is_none_or(|p| ballot >= p) {
                    if self.promised != Some(ballot) {
                        Self::persist(&Record::Promise { ballot }, ctx);
                        self.promised = Some(ballot);
                        self.changes += 1;
                        self.last_change = Some(Change::Promise);
                    }
                    let accepted = self
                        .accepted
                        .range(slot..)
                        .map(|(s, (b, v))| (*s, *b, v.clone()))
                        .collect();
                    ctx.send(
                        from,
                        Message::Promise {
                            ballot,
                            slot,
                            accepted,
                        },
                    );
                } else if let Some(promised) = self.promised {
                    ctx.send(from, Message::Nack { ballot, promised });
                }
            }
            Message::Promise {
                ballot,
                slot,
                accepted,
            } => self.on_promise(from, ballot, slot, accepted, ctx),
            Message::Accept {
                ballot,
                slot,
                value,
            } => {
                self.max_round = self.max_round.max(ballot.round);
                if self.promised.is_none_or(|p| ballot >= p) {
                    if self.accepted.get(&slot) != Some(&(ballot, value.clone())) {
                        Self::persist(
                            &Record::Accept {
                                slot,
                                ballot,
                                value: value.clone(),
                            },
                            ctx,
                        );
                        self.promised = Some(ballot);
                        self.accepted.insert(slot, (ballot, value));
                        self.changes += 1;
                        self.last_change = Some(Change::Vote { slot });
                    }
                    if self.params.mode == Mode::MultiPaxos && ballot.node != self.id {
                        self.leader = Some((ballot, ctx.now()));
                    }
                    ctx.send(from, Message::Accepted { ballot, slot });
                } else if let Some(promised) = self.promised {
                    ctx.send(from, Message::Nack { ballot, promised });
                }
            }
            Message::Accepted { ballot, slot } => self.on_accepted(from, ballot, slot, ctx),
            Message::Nack { ballot, promised } => {
                self.max_round = self.max_round.max(promised.round);
                let mine = match &self.role {
                    Role::Preparing { ballot: b, .. } | Role::Proposing { ballot: b } => Some(*b),
                    Role::Idle => None,
                };
                if mine == Some(ballot) {
                    ctx.state_change(format!(
                        "preempted by ballot {}.{}",
                        promised.round, promised.node
                    ));
                    self.stand_down(ctx);
                }
            }
            Message::Chosen { slot, value } => self.learn(slot, value, ctx),
            Message::Heartbeat { ballot, chosen } => {
                self.max_round = self.max_round.max(ballot.round);
                if self.promised.is_none_or(|p| ballot >= p) {
                    if ballot.node != self.id {
                        self.leader = Some((ballot, ctx.now()));
                        if matches!(self.role, Role::Preparing { .. } | Role::Proposing { .. }) {
                            self.role = Role::Idle;
                            self.proposals.clear();
                        }
                    }
                    if self.first_unchosen() < chosen {
                        ctx.send(
                            from,
                            Message::Catchup {
                                from: self.first_unchosen(),
                            },
                        );
                    }
                } else if let Some(promised) = self.promised {
                    ctx.send(from, Message::Nack { ballot, promised });
                }
            }
            Message::Catchup { from: slot } => {
                for (s, v) in self.chosen.range(slot..).take(64) {
                    ctx.send(
                        from,
                        Message::Chosen {
                            slot: *s,
                            value: v.clone(),
                        },
                    );
                }
            }
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match (timer, self.params.mode) {
            (TICK, Mode::MultiPaxos) => {
                let Role::Proposing { ballot } = self.role else {
                    return;
                };
                let chosen = self.first_unchosen();
                Self::broadcast(&Message::Heartbeat { ballot, chosen }, ctx);
                let resend: Vec<(u64, Value)> = self
                    .proposals
                    .iter()
                    .map(|(s, p)| (*s, p.value.clone()))
                    .collect();
                for (slot, value) in resend {
                    Self::broadcast(
                        &Message::Accept {
                            ballot,
                            slot,
                            value,
                        },
                        ctx,
                    );
                }
                ctx.set_timer(TICK, self.params.heartbeat);
            }
            (TIMEOUT, Mode::MultiPaxos) => {
                let heard = self
                    .leader
                    .is_some_and(|(_, at)| ctx.now().saturating_since(at) < self.params.retry_min);
                if !self.is_proposing() && !heard {
                    self.start_phase1(ctx);
                } else {
                    let d = self.retry_delay(ctx);
                    ctx.set_timer(TIMEOUT, d);
                }
            }
            // Silence or a rejection: try again with a higher ballot while a command of
            // ours waits (it leaves the queue only once applied).
            (TIMEOUT, Mode::SingleDecree) if !self.queue.is_empty() => {
                if ctx.now() >= self.retry_at {
                    self.start_phase1(ctx);
                } else {
                    ctx.set_timer(TIMEOUT, self.retry_at.saturating_since(ctx.now()));
                }
            }
            _ => {}
        }
    }

    fn on_request(&mut self, request: ClientRequest<KvCommand>, ctx: &mut Ctx<'_, Self>) {
        let cmd = request.body;
        if let Some(r) = self.kv.cached(cmd.session, cmd.seq) {
            ctx.reply(request.client, request.id, Reply::Ok(r.clone()));
            return;
        }
        if self.params.mode == Mode::MultiPaxos && !self.is_proposing() {
            let hint = self
                .leader
                .map_or(String::new(), |(b, _)| format!("; try {}", b.node));
            ctx.reply(
                request.client,
                request.id,
                Reply::Fail(format!("not the leader{hint}")),
            );
            return;
        }
        self.waiting
            .insert((cmd.session, cmd.seq), (request.client, request.id));
        self.on_client_command(cmd, ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        match msg {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Nack { .. } => "nack",
            Message::Chosen { .. } => "chosen",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Catchup { .. } => "catchup",
        }
    }

    fn role(&self) -> &'static str {
        match (&self.role, self.params.mode) {
            (Role::Idle, _) => "acceptor",
            (Role::Preparing { .. }, _) => "preparing",
            (Role::Proposing { .. }, Mode::MultiPaxos) => "leader",
            (Role::Proposing { .. }, Mode::SingleDecree) => "proposing",
        }
    }
}

/// Every field: settings, the acceptor's promise and votes, the learner's chosen slots,
/// applied prefix and store, the proposer's role, round, proposals, queue and waiting
/// clients, the leader last heard, the phase-1 and change counters and the last change
/// (observers read them), the back-off deadline and the torn tail still to cut.
impl Fingerprint for PaxosNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let PaxosNode {
            id,
            params,
            promised,
            accepted,
            chosen,
            applied,
            kv,
            role,
            max_round,
            proposals,
            next_slot,
            queue,
            waiting,
            leader,
            phase1_rounds,
            changes,
            last_change,
            retry_at,
            torn_tail,
        } = self;
        id.hash(h);
        params.hash(h);
        promised.hash(h);
        accepted.hash(h);
        chosen.hash(h);
        applied.hash(h);
        kv.hash(h);
        role.hash(h);
        max_round.hash(h);
        proposals.hash(h);
        next_slot.hash(h);
        queue.hash(h);
        waiting.hash(h);
        leader.hash(h);
        phase1_rounds.hash(h);
        changes.hash(h);
        last_change.hash(h);
        retry_at.hash(h);
        torn_tail.hash(h);
    }
}
