//! Chandy–Lamport global snapshots (catalog id `coordination.snapshot`), after Chandy &
//! Lamport, "Distributed Snapshots: Determining Global States of Distributed Systems"
//! (ACM TOCS 3(1), 1985), over a money-transfer workload: every node is a bank branch
//! sending random amounts to the others, and a snapshot must account for every coin.
//!
//! The marker rule: a node that starts a snapshot, or receives its first marker of one,
//! records its balance and sends a marker on every outgoing channel before it sends
//! anything else; from then on it records what arrives on each incoming channel until
//! that channel's marker arrives. The channel on which the first marker came is recorded
//! empty. A snapshot is complete when every node has recorded its state and closed every
//! incoming channel; its total — recorded balances plus the amounts recorded on the
//! channels — is then the initial total, because the cut is consistent (§3 of the paper).
//! Markers carry a snapshot id (initiator, number), so several snapshots, started by any
//! nodes, run at once. Cost: n·(n−1) markers per snapshot.
//!
//! What the algorithm assumes, and what this module does about it:
//! - **FIFO channels.** A transfer that overtakes the marker sent before it is counted
//!   twice (in the sender's recorded balance and in the receiver's); one overtaken by a
//!   marker is lost from the cut. The simulator's links are FIFO unless reordering is on,
//!   so [`require_fifo`] refuses a network with reordering (and with loss or duplication,
//!   which break the reliable channels the paper also assumes), naming the field.
//! - **No failures.** A crashed node loses the snapshots it was recording: they never
//!   complete (it writes the snapshots it joined to its disk before sending a marker, and
//!   after a restart refuses to join them again, which would record a later state and make
//!   the cut inconsistent). A partition or a crash also drops messages: a dropped marker
//!   leaves its snapshot incomplete, a dropped transfer destroys money — the system
//!   itself then no longer holds the initial total, and the lab says so rather than judge
//!   later snapshots against it. Balances are durable, so a restarted branch keeps its
//!   money.
//!
//! Collecting the recorded pieces at the initiator is left to the observer (the lab reads
//! each node's record); the paper leaves it out of the algorithm too.

pub mod lab;
pub mod soak;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::error::{DistlabError, Result};
use crate::sim::NetworkConfig;
use crate::sim::disk::Disk;
use crate::sim::disk::DiskOp;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The node's durable log: its balance after every change, and the snapshots it joined.
const LOG: &str = "bank.log";
const TRANSFER_TIMER: TimerId = 1;
const SNAPSHOT_TIMER: TimerId = 2;
/// Snapshot records a node keeps; the oldest go first (the observer has read the
/// complete ones by then, and an evicted incomplete one just stays incomplete).
pub const KEPT_RECORDS: usize = 64;

/// Refuses a network on which Chandy–Lamport's channels would not be reliable and FIFO:
/// reordering (the one the algorithm is known for), loss and duplication.
pub fn require_fifo(network: &NetworkConfig, field: &str) -> Result<()> {
    let why = [
        (
            "reorder",
            network.reorder.get(),
            "Chandy–Lamport needs FIFO channels: a transfer that overtakes a marker is \
             counted twice (or lost from the cut); turn reordering off",
        ),
        (
            "loss",
            network.loss.get(),
            "Chandy–Lamport needs reliable channels: a lost marker blocks a snapshot and a \
             lost transfer destroys money; turn loss off",
        ),
        (
            "duplicate",
            network.duplicate.get(),
            "Chandy–Lamport needs reliable channels: a duplicated transfer makes money; \
             turn duplication off",
        ),
    ];
    for (name, p, problem) in why {
        if p > 0.0 {
            return Err(DistlabError::field(
                format!("{field}.{name}"),
                format!("{problem} (got {p})"),
            ));
        }
    }
    Ok(())
}

/// A snapshot's id: who started it and its number among the snapshots that node started.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotId {
    pub initiator: NodeId,
    pub number: u32,
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S{}.{}", self.initiator, self.number)
    }
}

/// Node-to-node messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BankMessage {
    Transfer { amount: u64 },
    Marker { snapshot: SnapshotId },
}

impl Fingerprint for BankMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// What a client (the lab) asks a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankRequest {
    StartSnapshot,
    Transfer { to: NodeId, amount: u64 },
}

/// A node's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankResponse {
    Started(SnapshotId),
    Sent,
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BankConfig {
    pub initial_balance: u64,
    /// Mean gap between a node's own transfers (exponential); `None`: only on request.
    pub transfer_every: Option<Duration>,
    /// A transfer moves 1 to this many coins (never more than the balance).
    pub max_transfer: u64,
    /// Mean gap between the snapshots a node starts by itself; `None`: only on request.
    pub snapshot_every: Option<Duration>,
}

/// What the node keeps on its disk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum BankRecord {
    Balance(u64),
    Joined(SnapshotId),
}

/// One node's part of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalRecord {
    pub id: SnapshotId,
    /// The balance recorded when the node joined.
    pub balance: u64,
    /// When it joined, on its own clock.
    pub joined_at: Time,
    /// Amounts recorded on each incoming channel, by sender; closed channels are in
    /// `closed`.
    pub channels: BTreeMap<NodeId, Vec<u64>>,
    pub closed: BTreeSet<NodeId>,
    /// Order of joining at this node, for eviction.
    pub order: u64,
}

impl LocalRecord {
    /// Every incoming channel has its marker.
    pub fn done(&self) -> bool {
        self.closed.len() == self.channels.len()
    }

    /// Coins recorded on the incoming channels.
    pub fn in_flight(&self) -> u64 {
        self.channels.values().flatten().sum()
    }
}

/// A bank branch taking part in snapshots.
#[derive(Debug, Clone)]
pub struct BankNode {
    id: NodeId,
    config: BankConfig,
    balance: u64,
    /// Per initiator, the newest snapshot number this node joined (durable): a marker of
    /// an older or equal one it holds no record of is ignored.
    joined_upto: BTreeMap<NodeId, u32>,
    records: BTreeMap<SnapshotId, LocalRecord>,
    joins: u64,
    /// Records completed since boot: the observer reads them when this moves.
    completed: u64,
    transfers_sent: u64,
    transfers_received: u64,
    /// Markers of snapshots joined before a crash (or evicted), ignored.
    markers_ignored: u64,
    torn_tail: Option<usize>,
}

impl Fingerprint for BankNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let BankNode {
            id,
            config,
            balance,
            joined_upto,
            records,
            joins,
            completed,
            transfers_sent,
            transfers_received,
            markers_ignored,
            torn_tail,
        } = self;
        (id, config, balance, joined_upto, records, joins, completed).hash(h);
        (
            transfers_sent,
            transfers_received,
            markers_ignored,
            torn_tail,
        )
            .hash(h);
    }
}

impl BankNode {
    pub fn balance(&self) -> u64 {
        self.balance
    }
    pub fn records(&self) -> &BTreeMap<SnapshotId, LocalRecord> {
        &self.records
    }
    pub fn completed(&self) -> u64 {
        self.completed
    }
    pub fn transfers_sent(&self) -> u64 {
        self.transfers_sent
    }
    pub fn transfers_received(&self) -> u64 {
        self.transfers_received
    }
    pub fn markers_ignored(&self) -> u64 {
        self.markers_ignored
    }

    /// The balance a node's disk holds, for an observer of a crashed node.
    pub fn durable_balance(config: &BankConfig, disk: &Disk) -> u64 {
        records::read::<BankRecord>(disk, LOG)
            .iter()
            .rev()
            .find_map(|r| match r {
                BankRecord::Balance(b) => Some(*b),
                BankRecord::Joined(_) => None,
            })
            .unwrap_or(config.initial_balance)
    }

    fn persist(&self, record: BankRecord, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(LOG, &record));
        ctx.disk(DiskOp::Fsync);
    }

    fn peers(&self, ctx: &Ctx<'_, Self>) -> Vec<NodeId> {
        (0..ctx.node_count()).filter(|&p| p != self.id).collect()
    }

    /// Records this node's state for `id` and sends its markers: the marker rule.
    fn join(&mut self, id: SnapshotId, ctx: &mut Ctx<'_, Self>) {
        // Durable before any marker leaves: a restart must not join `id` again.
        self.persist(BankRecord::Joined(id), ctx);
        self.joined_upto.insert(id.initiator, id.number);
        let channels = self
            .peers(ctx)
            .into_iter()
            .map(|p| (p, Vec::new()))
            .collect();
        self.joins += 1;
        self.records.insert(
            id,
            LocalRecord {
                id,
                balance: self.balance,
                joined_at: ctx.now(),
                channels,
                closed: BTreeSet::new(),
                order: self.joins,
            },
        );
        for p in self.peers(ctx) {
            ctx.send(p, BankMessage::Marker { snapshot: id });
        }
        ctx.state_change(format!("recorded balance {} for {id}", self.balance));
        if self.records.len() > KEPT_RECORDS
            && let Some(oldest) = self.records.values().min_by_key(|r| r.order).map(|r| r.id)
        {
            self.records.remove(&oldest);
        }
        self.check_done(id, ctx);
    }

    fn check_done(&mut self, id: SnapshotId, ctx: &mut Ctx<'_, Self>) {
        if self.records.get(&id).is_some_and(LocalRecord::done) {
            self.completed += 1;
            ctx.state_change(format!("{id}: every incoming channel recorded"));
        }
    }

    fn start_snapshot(&mut self, ctx: &mut Ctx<'_, Self>) -> SnapshotId {
        let number = self.joined_upto.get(&self.id).map_or(1, |n| n + 1);
        let id = SnapshotId {
            initiator: self.id,
            number,
        };
        self.join(id, ctx);
        id
    }

    fn on_marker(&mut self, from: NodeId, id: SnapshotId, ctx: &mut Ctx<'_, Self>) {
        if !self.records.contains_key(&id) {
            if self
                .joined_upto
                .get(&id.initiator)
                .is_some_and(|&n| n >= id.number)
            {
                self.markers_ignored += 1;
                return;
            }
            self.join(id, ctx);
        }
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        if r.channels.contains_key(&from) && r.closed.insert(from) {
            self.check_done(id, ctx);
        }
    }

    /// Sends `amount` to `to`: durable debit first, then the message.
    fn transfer(&mut self, to: NodeId, amount: u64, ctx: &mut Ctx<'_, Self>) {
        self.balance -= amount;
        self.persist(BankRecord::Balance(self.balance), ctx);
        self.transfers_sent += 1;
        ctx.send(to, BankMessage::Transfer { amount });
    }

    fn random_transfer(&mut self, ctx: &mut Ctx<'_, Self>) {
        let n = ctx.node_count() as u64;
        if self.balance == 0 || n < 2 {
            return;
        }
        let pick = ctx.rng().below(n - 1) as NodeId;
        let to = if pick >= self.id { pick + 1 } else { pick };
        let max = self.config.max_transfer.min(self.balance).max(1);
        let amount = ctx.rng().range_inclusive(1, max);
        self.transfer(to, amount, ctx);
    }

    fn arm(timer: TimerId, mean: Option<Duration>, ctx: &mut Ctx<'_, Self>) {
        if let Some(mean) = mean {
            let us = ctx.rng().exponential(mean.0 as f64);
            ctx.set_timer(timer, Duration(libm::round(us) as u64 + 1));
        }
    }
}

impl Node for BankNode {
    type Message = BankMessage;
    type Request = BankRequest;
    type Response = BankResponse;
    type Config = BankConfig;

    fn recover(id: NodeId, config: &BankConfig, disk: &Disk) -> Self {
        let (log, torn_tail) = records::read_with_tail::<BankRecord>(disk, LOG);
        let mut balance = config.initial_balance;
        let mut joined_upto = BTreeMap::new();
        for r in log {
            match r {
                BankRecord::Balance(b) => balance = b,
                BankRecord::Joined(s) => {
                    let n = joined_upto.entry(s.initiator).or_insert(0);
                    *n = (*n).max(s.number);
                }
            }
        }
        BankNode {
            id,
            config: *config,
            balance,
            joined_upto,
            records: BTreeMap::new(),
            joins: 0,
            completed: 0,
            transfers_sent: 0,
            transfers_received: 0,
            markers_ignored: 0,
            torn_tail,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        Self::arm(TRANSFER_TIMER, self.config.transfer_every, ctx);
        Self::arm(SNAPSHOT_TIMER, self.config.snapshot_every, ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: BankMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            BankMessage::Transfer { amount } => {
                self.balance += amount;
                self.persist(BankRecord::Balance(self.balance), ctx);
                self.transfers_received += 1;
                for r in self.records.values_mut() {
                    if !r.closed.contains(&from)
                        && let Some(c) = r.channels.get_mut(&from)
                    {
                        c.push(amount);
                    }
                }
            }
            BankMessage::Marker { snapshot } => self.on_marker(from, snapshot, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match timer {
            TRANSFER_TIMER => {
                self.random_transfer(ctx);
                Self::arm(TRANSFER_TIMER, self.config.transfer_every, ctx);
            }
            SNAPSHOT_TIMER => {
                self.start_snapshot(ctx);
                Self::arm(SNAPSHOT_TIMER, self.config.snapshot_every, ctx);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, request: ClientRequest<BankRequest>, ctx: &mut Ctx<'_, Self>) {
        let reply = match request.body {
            BankRequest::StartSnapshot => {
                Reply::Ok(BankResponse::Started(self.start_snapshot(ctx)))
            }
            BankRequest::Transfer { to, amount } => {
                if to == self.id || to >= ctx.node_count() {
                    Reply::Fail(format!("n{to} is not another node"))
                } else if amount == 0 || amount > self.balance {
                    Reply::Fail(format!(
                        "cannot send {amount} with a balance of {}",
                        self.balance
                    ))
                } else {
                    self.transfer(to, amount, ctx);
                    Reply::Ok(BankResponse::Sent)
                }
            }
        };
        ctx.reply(request.client, request.id, reply);
    }

    fn message_kind(msg: &BankMessage) -> &'static str {
        match msg {
            BankMessage::Transfer { .. } => "transfer",
            BankMessage::Marker { .. } => "marker",
        }
    }

    fn role(&self) -> &'static str {
        if self.records.values().any(|r| !r.done()) {
            "recording"
        } else {
            "branch"
        }
    }
}

/// The total a complete snapshot recorded: balances plus amounts on the channels.
pub fn recorded_total<'a>(pieces: impl IntoIterator<Item = &'a LocalRecord>) -> u64 {
    pieces.into_iter().map(|r| r.balance + r.in_flight()).sum()
}

#[cfg(test)]
mod tests;
