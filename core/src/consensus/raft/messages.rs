//! What Raft nodes say to each other (Raft paper Figure 2; pre-vote from the thesis §9.6;
//! TimeoutNow from §3.10), and what a log entry holds.
//!
//! Entries share their payload behind an `Arc`, so replicating an entry to four followers
//! (and keeping it in five logs) copies a pointer, not the command.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::consensus::raft::log::EMPTY_DIGEST;
use crate::consensus::raft::state_machine::{KvCommand, KvStore};
use crate::sim::NodeId;

/// A Raft term: a logical clock that numbers elections.
pub type Term = u64;
/// The position of an entry in the log, from 1 (0 means "before the first entry").
pub type LogIndex = u64;

/// The cluster configuration: who votes and who only receives the log (thesis §4.2.1:
/// a new server joins as a non-voting learner until it has caught up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// Nodes `0..n`, all voters.
    pub fn initial(n: u32) -> Self {
        Membership {
            voters: (0..n).collect(),
            learners: BTreeSet::new(),
        }
    }
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
    /// Voters and learners, in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mut all: Vec<NodeId> = self.voters.union(&self.learners).copied().collect();
        all.sort_unstable();
        all.into_iter()
    }
    /// How many votes make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// What an entry asks the state machine to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryData {
    /// Appended by every new leader, so that entries of earlier terms commit (§5.4.2)
    /// and ReadIndex has a commit point of the leader's own term (thesis §6.4).
    Noop,
    Command(KvCommand),
    /// A new configuration, differing from the previous one by one server (thesis §4.1);
    /// it takes effect as soon as it is in a log, committed or not.
    Membership(Membership),
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub term: Term,
    pub data: Arc<EntryData>,
}

impl Entry {
    pub fn new(term: Term, data: EntryData) -> Self {
        Entry {
            term,
            data: Arc::new(data),
        }
    }
}

/// A snapshot (paper §7): the state machine after applying entries `1..=index`, and what
/// the log needs to go on after it (the last term, the configuration then in force).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub index: LogIndex,
    pub term: Term,
    /// The log's prefix digest at `index` (a ghost for the invariant checker).
    pub digest: u64,
    pub membership: Membership,
    pub kv: KvStore,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            index: 0,
            term: 0,
            digest: EMPTY_DIGEST,
            membership: Membership::default(),
            kv: KvStore::default(),
        }
    }
}

/// RequestVote, or its pre-vote twin that changes no state (thesis §9.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoteRequest {
    /// For a pre-vote: the term the candidate would campaign in (its term + 1).
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    pub pre_vote: bool,
    /// Sent after TimeoutNow: voters must not ignore it because they heard from a leader
    /// recently (thesis §3.10).
    pub transfer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoteResponse {
    /// The voter's term, or for a granted pre-vote the term it was asked about.
    pub term: Term,
    pub granted: bool,
    pub pre_vote: bool,
}

/// AppendEntries; with no entries it is a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppendRequest {
    pub term: Term,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
    /// Echoed in the response: the leader's ReadIndex round this message belongs to.
    pub read_round: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppendResponse {
    pub term: Term,
    pub success: bool,
    /// On success, the last index known to match the leader's log; on failure, the
    /// `prev_log_index` that did not match (so stale rejections can be recognised).
    pub index: LogIndex,
    /// Fast backtracking (paper §5.3, last paragraphs): the term of the follower's entry
    /// at `prev_log_index`, if it has one there...
    pub conflict_term: Option<Term>,
    /// ...and the first index the leader should try next: the first index of
    /// `conflict_term` in the follower's log, or the follower's last index + 1.
    pub conflict_index: LogIndex,
    pub read_round: u64,
}

/// InstallSnapshot (paper Figure 13), sent whole rather than in chunks: the simulated
/// network has no message size limit, and the page shows one message either way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotRequest {
    pub term: Term,
    pub snapshot: Arc<Snapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotResponse {
    pub term: Term,
    /// The index up to which the follower's log now matches the leader's.
    pub index: LogIndex,
}

/// A node-to-node message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Vote(VoteRequest),
    VoteReply(VoteResponse),
    Append(AppendRequest),
    AppendReply(AppendResponse),
    InstallSnapshot(SnapshotRequest),
    SnapshotReply(SnapshotResponse),
    /// Leader transfer (thesis §3.10): start an election now, ignoring leases.
    TimeoutNow {
        term: Term,
    },
}

impl Message {
    /// The sender's term, as every Raft message carries it.
    pub fn term(&self) -> Term {
        match self {
            Message::Vote(m) => m.term,
            Message::VoteReply(m) => m.term,
            Message::Append(m) => m.term,
            Message::AppendReply(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::SnapshotReply(m) => m.term,
            Message::TimeoutNow { term } => *term,
        }
    }

    /// The kind shown in traces and drawn in flight.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Vote(m) if m.pre_vote => "PreVote",
            Message::Vote(_) => "RequestVote",
            Message::VoteReply(m) if m.pre_vote => "PreVoteResponse",
            Message::VoteReply(_) => "RequestVoteResponse",
            Message::Append(m) if m.entries.is_empty() => "heartbeat",
            Message::Append(_) => "AppendEntries",
            Message::AppendReply(_) => "AppendEntriesResponse",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::SnapshotReply(_) => "InstallSnapshotResponse",
            Message::TimeoutNow { .. } => "TimeoutNow",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_majority_of_voters_only() {
        let mut m = Membership::initial(4);
        assert_eq!(m.quorum(), 3);
        m.learners.insert(7);
        assert_eq!(m.quorum(), 3);
        assert!(m.contains(7) && !m.is_voter(7));
        assert_eq!(m.members().collect::<Vec<_>>(), vec![0, 1, 2, 3, 7]);
    }
}
