//! Reads without log entries (thesis §6.4).
//!
//! **ReadIndex**: the leader (1) waits until it has committed an entry of its own term,
//! so its commit index covers everything committed before it; (2) notes that commit
//! index as the read index; (3) confirms it is still the leader by a round of heartbeats
//! acknowledged by a majority, started after (2); (4) waits until the read index is
//! applied; and answers from its state machine. Linearizable, at the cost of one round
//! trip and no disk write.
//!
//! Heartbeat rounds are numbered: every AppendEntries carries the leader's current round
//! and every answer (accepting or not, at the leader's term) echoes it, so one number per
//! follower says which rounds it has confirmed. A read waits for the round that started
//! when its read index was taken.
//!
//! **Lease** (thesis §6.4.1): a follower that acknowledges a round promises, in effect,
//! not to help elect anyone else for a minimum election timeout `E` on its clock — it
//! ignores vote and pre-vote requests that soon after hearing from its leader
//! (`leader_is_fresh`), and after a restart, having forgotten when it last heard, for `E`
//! from booting (`boot_quiet`). Any other leader needs one of a confirming majority, so a
//! round confirmed by a majority that started at leader-local time `t` means no other
//! leader exists before those promises run out, and until then the leader answers reads
//! from its state at once. The exception is a leadership transfer, whose RequestVote
//! overrides the promise: once this leader has sent TimeoutNow it serves no lease reads
//! for the rest of its term (see [`super::transfer`]).
//!
//! Precisely, lease reads are linearizable when
//! 1. every clock's rate stays within ρ = `leaseDriftBoundPpm` of true time, and
//! 2. no clock steps (a skew fault moves a reading at once).
//!
//! The lease lasts `L = E · (1 − ρ) / (1 + ρ)` on the leader's clock
//! ([`RaftParams::lease`](super::config::RaftParams::lease)): at most
//! `L / (1 − ρ) = E / (1 + ρ)` of true time on a clock running slow by ρ. A follower's
//! promise lasts at least `E / (1 + ρ)` of true time on a clock running fast by ρ, and
//! began no earlier (it heard the round after the round started); the quiet period after
//! a restart is a timer of `E`, which lasts as long. Nothing about the network is
//! assumed. With ρ = 0 a lease is the whole of `E` and needs every clock to run at one
//! rate. A leader whose clock runs slower than the bound, or steps back, keeps its lease
//! after the followers have moved on, and serves stale data: the lab lets you do both, to
//! show why the bound is there.

use std::collections::VecDeque;

use crate::consensus::raft::config::ReadMode;
use crate::consensus::raft::messages::LogIndex;
use crate::consensus::raft::node::{RaftNode, Role};
use crate::sim::node::{ClientId, Reply, RequestId};
use crate::time::Time;

/// The most heartbeat rounds a leader remembers the start time of. A leader cut off for
/// longer forgets the oldest, which only ever shortens its lease.
const MAX_ROUNDS: usize = 1_024;

/// A read waiting for its read index and its confirming round.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingRead {
    pub client: ClientId,
    pub request: RequestId,
    pub key: String,
    /// `None` until the leader has committed an entry of its term.
    pub read_index: Option<LogIndex>,
    /// The heartbeat round that must be confirmed (set with the read index).
    pub round: u64,
}

/// Heartbeat rounds and the local times they started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rounds {
    pub current: u64,
    started: VecDeque<(u64, Time)>,
}

impl Rounds {
    /// Starts a new round at local time `now`; returns its number.
    pub fn start(&mut self, now: Time) -> u64 {
        self.current += 1;
        if self.started.len() >= MAX_ROUNDS {
            self.started.pop_front();
        }
        self.started.push_back((self.current, now));
        self.current
    }

    /// When round `round` started, if remembered.
    pub fn started_at(&self, round: u64) -> Option<Time> {
        self.started
            .iter()
            .rev()
            .find(|(r, _)| *r == round)
            .map(|(_, t)| *t)
    }

    /// Forgets rounds older than `round` (confirmed rounds only matter through the
    /// newest one).
    pub fn prune_before(&mut self, round: u64) {
        while self.started.front().is_some_and(|(r, _)| *r < round) {
            self.started.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.started.clear();
    }
}

impl RaftNode {
    /// The newest heartbeat round a majority of voters has confirmed.
    pub(super) fn confirmed_round(&self) -> u64 {
        let mut acked: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|v| {
                if *v == self.id {
                    self.rounds.current
                } else {
                    self.progress.get(v).map_or(0, |p| p.acked_round)
                }
            })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        acked
            .get(self.membership.quorum().saturating_sub(1))
            .copied()
            .unwrap_or(0)
    }

    /// Whether this leader has committed an entry of its own term (thesis §6.4 step 1).
    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term_at(self.commit) == Some(self.term)
    }

    /// Until when (leader-local time) no other leader can exist, by the lease argument;
    /// `None` when this node holds no lease (not leader, or it sent TimeoutNow this term).
    pub fn lease_until(&self) -> Option<Time> {
        if self.role != Role::Leader || self.sent_timeout_now {
            return None;
        }
        let round = self.confirmed_round();
        self.rounds
            .started_at(round)
            .map(|t| t + self.params.lease())
    }

    /// A read of `key` arriving at the leader, in ReadIndex or Lease mode.
    pub(super) fn on_read(&mut self, client: ClientId, request: RequestId, key: String, now: Time) {
        if self.params.read_mode == ReadMode::Lease
            && self.committed_in_term()
            && self.lease_until().is_some_and(|t| now < t)
        {
            let r = self.kv.read(&key);
            self.replies.push((client, request, Reply::Ok(r)));
            return;
        }
        let mut read = PendingRead {
            client,
            request,
            key,
            read_index: None,
            round: 0,
        };
        if self.committed_in_term() {
            read.read_index = Some(self.commit);
            read.round = self.rounds.start(now);
            self.broadcast_append();
        }
        self.pending_reads.push(read);
        self.serve_reads(now);
    }

    /// Answers every read whose index is known, confirmed and applied; gives reads that
    /// waited for the term's first commit their index and round.
    pub(super) fn serve_reads(&mut self, now: Time) {
        if self.role != Role::Leader || self.pending_reads.is_empty() {
            return;
        }
        if self.committed_in_term() && self.pending_reads.iter().any(|r| r.read_index.is_none()) {
            let round = self.rounds.start(now);
            let commit = self.commit;
            for r in self
                .pending_reads
                .iter_mut()
                .filter(|r| r.read_index.is_none())
            {
                r.read_index = Some(commit);
                r.round = round;
            }
            self.broadcast_append();
        }
        let confirmed = self.confirmed_round();
        let applied = self.applied;
        let mut still = Vec::new();
        for r in std::mem::take(&mut self.pending_reads) {
            match r.read_index {
                Some(index) if r.round <= confirmed && index <= applied => {
                    let value = self.kv.read(&r.key);
                    self.replies.push((r.client, r.request, Reply::Ok(value)));
                }
                _ => still.push(r),
            }
        }
        self.pending_reads = still;
    }

    /// Reads still waiting when leadership is lost: they took no effect, so "not leader"
    /// is a definite answer.
    pub(super) fn fail_reads(&mut self) {
        for r in std::mem::take(&mut self.pending_reads) {
            let reply = Reply::Fail("not leader; leadership lost before the read".into());
            self.replies.push((r.client, r.request, reply));
        }
        self.rounds.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_remember_start_times_and_prune() {
        let mut r = Rounds::default();
        assert_eq!(r.start(Time(10)), 1);
        assert_eq!(r.start(Time(20)), 2);
        assert_eq!(r.start(Time(30)), 3);
        assert_eq!(r.started_at(2), Some(Time(20)));
        r.prune_before(3);
        assert_eq!(r.started_at(2), None);
        assert_eq!(r.started_at(3), Some(Time(30)));
        for i in 0..2_000 {
            r.start(Time(100 + i));
        }
        assert!(r.started_at(3).is_none());
        assert_eq!(r.current, 2_003);
    }
}
