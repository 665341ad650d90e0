//! What VR replicas say to each other (Liskov & Cowling 2012, §4, Figures 2–4): the
//! normal-case `Prepare` / `PrepareOk` / `Commit`, the view change's `StartViewChange` /
//! `DoViewChange` / `StartView`, recovery's `Recovery` / `RecoveryResponse`, and state
//! transfer's `GetState` / `NewState` (§5.2). Op-numbers start at 1: op `k` is
//! `log[k - 1]`, and a log's op-number is its length.

use serde::Serialize;
use std::hash::Hash;

use crate::consensus::raft::state_machine::KvCommand;
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

/// One log entry: the client's request (client id = `session`, request number = `seq`).
pub type Entry = KvCommand;

/// A replica's status (the paper's `status` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Normal,
    ViewChange,
    Recovering,
}

/// A primary's or a new primary's copy of the log, with the numbers that go with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogState {
    pub log: Vec<Entry>,
    pub commit: u64,
}

/// A VR message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    /// The primary assigned op-number `op` to `entry`; `commit` is its commit-number.
    Prepare {
        view: u64,
        op: u64,
        entry: Entry,
        commit: u64,
    },
    /// The backup has every op up to `op` of the primary's log in `view`.
    PrepareOk {
        view: u64,
        op: u64,
    },
    /// The primary's commit-number, sent when it has no `Prepare` to send (a heartbeat).
    Commit {
        view: u64,
        commit: u64,
    },
    StartViewChange {
        view: u64,
    },
    /// To the new primary: this replica's log, the last view in which its status was
    /// normal, and its commit-number.
    DoViewChange {
        view: u64,
        state: LogState,
        last_normal: u64,
    },
    /// The new primary's log: every replica adopts it.
    StartView {
        view: u64,
        state: LogState,
    },
    /// A recovering replica's question; the nonce ties the answers to this recovery.
    Recovery {
        nonce: u64,
    },
    /// An answer from a replica with normal status; only the primary sends its log.
    RecoveryResponse {
        view: u64,
        nonce: u64,
        state: Option<LogState>,
    },
    /// A replica behind in `view` asks the primary for its log after op `op`.
    GetState {
        view: u64,
        op: u64,
    },
    /// The primary's log after op `op` (the entries), and its commit-number.
    NewState {
        view: u64,
        op: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
}

impl Message {
    /// The message's kind, as the space-time diagram names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::PrepareOk { .. } => "prepareOk",
            Message::Commit { .. } => "commit",
            Message::StartViewChange { .. } => "startViewChange",
            Message::DoViewChange { .. } => "doViewChange",
            Message::StartView { .. } => "startView",
            Message::Recovery { .. } => "recovery",
            Message::RecoveryResponse { .. } => "recoveryResponse",
            Message::GetState { .. } => "getState",
            Message::NewState { .. } => "newState",
        }
    }
}

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}
