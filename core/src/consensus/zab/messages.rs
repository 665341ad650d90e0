//! What Zab peers say to each other (Junqueira, Reed & Serafini, DSN 2011, Algorithms
//! 1–3, with the names of ZooKeeper's Zab.tla): the election's notifications, discovery's
//! `FollowerInfo` (CEPOCH) / `NewEpoch` / `AckEpoch`, synchronisation's `NewLeader` /
//! `AckLd` / `CommitLd`, and broadcast's `Propose` / `Ack` / `Commit`.

use serde::Serialize;
use std::hash::Hash;

use crate::consensus::zab::zxid::{Txn, Zxid};
use crate::sim::node::{Fingerprint, NodeId};
use crate::sim::trace::StableHasher;

/// Where a peer is: looking for a leader, or in one of the three phases under one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Election,
    Discovery,
    Synchronisation,
    Broadcast,
}

/// What a peer says about itself in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PeerState {
    Looking,
    Following,
    Leading,
}

/// A vote for `leader`, whose last history ends at `zxid` after `epoch` (its current
/// epoch) — what Fast Leader Election compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub leader: NodeId,
    pub epoch: u64,
    pub zxid: Zxid,
}

impl Vote {
    /// FLE's total order: current epoch, then last zxid, then id.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.epoch, self.zxid, self.leader) > (other.epoch, other.zxid, other.leader)
    }
}

/// A Zab message. `epoch` is always the sender's epoch for the leader it serves or
/// follows (the prospective epoch e' from `NewEpoch` on).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// Election: the sender's round, vote and state (a following or leading peer answers
    /// a looking one with its leader, so a latecomer can join it).
    Notification {
        round: u64,
        vote: Vote,
        state: PeerState,
    },
    /// Discovery, follower → prospective leader: its accepted epoch (CEPOCH).
    FollowerInfo { accepted_epoch: u64 },
    /// Discovery, leader → follower: the new epoch e'.
    NewEpoch { epoch: u64 },
    /// Discovery, follower → leader: it accepted e'; its current epoch and history.
    AckEpoch {
        epoch: u64,
        current_epoch: u64,
        history: Vec<Txn>,
    },
    /// Synchronisation, leader → follower: the initial history of e' (and whatever the
    /// leader has proposed since, for a follower that joins late).
    NewLeader { epoch: u64, history: Vec<Txn> },
    /// Synchronisation, follower → leader: it has the history up to `zxid`.
    AckLd { epoch: u64, zxid: Zxid },
    /// Synchronisation, leader → follower: deliver everything up to `zxid`, the leader's
    /// last committed zxid (Zab.tla's fix of issue 3), and start broadcast.
    CommitLd { epoch: u64, zxid: Zxid },
    /// Broadcast: a proposal.
    Propose { epoch: u64, txn: Txn },
    /// Broadcast: the follower has its history up to `zxid` on disk.
    Ack { epoch: u64, zxid: Zxid },
    /// Broadcast: deliver everything up to `zxid` (also the leader's heartbeat).
    Commit { epoch: u64, zxid: Zxid },
}

impl Message {
    /// The message's kind, as the space-time diagram names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Notification { .. } => "notification",
            Message::FollowerInfo { .. } => "followerInfo",
            Message::NewEpoch { .. } => "newEpoch",
            Message::AckEpoch { .. } => "ackEpoch",
            Message::NewLeader { .. } => "newLeader",
            Message::AckLd { .. } => "ackLd",
            Message::CommitLd { .. } => "commitLd",
            Message::Propose { .. } => "propose",
            Message::Ack { .. } => "ack",
            Message::Commit { .. } => "commit",
        }
    }
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}
