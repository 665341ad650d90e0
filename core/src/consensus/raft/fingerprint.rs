//! What identifies a Raft server's state and a Raft message, for a model checker that must
//! recognise a state it has already reached (see [`Fingerprint`]).
//!
//! A server's fingerprint is every field of [`RaftNode`], durable mirror and volatile state
//! alike: the settings (one value per cluster, but part of what the node does), term, vote,
//! the log (see [`Log`](super::log::Log)'s fingerprint for its digests) and the latest
//! snapshot *by content* (its `Arc` is shared with the InstallSnapshot messages that carry
//! it, and a pointer is not state), the role, the leader's view of its followers, waiting
//! requests and reads, a transfer under way and whether TimeoutNow went out this term,
//! the election timer's arming time and length (they decide when it campaigns), whether
//! it is still in its quiet period after a restart, the WAL writer (see its fingerprint for the scratch
//! buffer it leaves out), and the outbox and replies, which are empty between events but
//! hashed all the same. The ghost digests (`applied_digest`, the snapshot's and the log
//! base's) are in too: the invariant checker reads them.

use std::hash::Hash;

use crate::consensus::raft::messages::Message;
use crate::consensus::raft::node::RaftNode;
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

impl Fingerprint for Message {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

impl Fingerprint for RaftNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let RaftNode {
            id,
            params,
            term,
            vote,
            log,
            snapshot,
            role,
            leader,
            commit,
            applied,
            applied_digest,
            kv,
            membership,
            votes,
            progress,
            waiting,
            election_armed_at,
            election_timeout,
            leader_contact,
            boot_quiet,
            rounds,
            pending_reads,
            transfer,
            sent_timeout_now,
            config_waiters,
            config_index,
            wal,
            outbox,
            replies,
            recovered_garbage,
        } = self;
        id.hash(h);
        params.hash(h);
        term.hash(h);
        vote.hash(h);
        log.fingerprint_into(h);
        snapshot.hash(h);
        role.hash(h);
        leader.hash(h);
        commit.hash(h);
        applied.hash(h);
        applied_digest.hash(h);
        kv.hash(h);
        membership.hash(h);
        votes.hash(h);
        progress.hash(h);
        waiting.hash(h);
        election_armed_at.hash(h);
        election_timeout.hash(h);
        leader_contact.hash(h);
        boot_quiet.hash(h);
        rounds.hash(h);
        pending_reads.hash(h);
        transfer.hash(h);
        sent_timeout_now.hash(h);
        config_waiters.hash(h);
        config_index.hash(h);
        wal.fingerprint_into(h);
        outbox.hash(h);
        replies.hash(h);
        recovered_garbage.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::consensus::raft::config::{RaftConfig, RaftParams};
    use crate::consensus::raft::manual::ManualCluster;
    use crate::consensus::raft::messages::{AppendRequest, Entry, EntryData, VoteRequest};
    use crate::consensus::raft::node::{RaftRequest, Role};
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};
    use crate::rng::SimRng;
    use crate::sim::disk::{Disk, DiskOp};
    use crate::sim::node::{Ctx, Effect, Node, NodeId};
    use crate::sim::{Fault, Sim, SimConfig};
    use crate::time::Time;

    fn params() -> RaftParams {
        RaftConfig::default().params(3).unwrap()
    }

    fn put(seq: u64, key: &str, value: &str) -> KvCommand {
        KvCommand {
            session: 1,
            seq,
            op: KvOp::Put {
                key: key.into(),
                value: value.into(),
            },
        }
    }

    /// A node and its disk together, as the simulator fingerprints them (less the clock).
    fn state(node: &RaftNode, disk: &Disk) -> u64 {
        let mut h = StableHasher::default();
        node.fingerprint_into(&mut h);
        disk.fingerprint_into(&mut h);
        std::hash::Hasher::finish(&h)
    }

    /// Runs one handler of follower 1 at 3 ms, with a random stream seeded afresh, and
    /// executes its disk writes.
    fn handle(
        node: &mut RaftNode,
        disk: &mut Disk,
        f: impl FnOnce(&mut RaftNode, &mut Ctx<'_, RaftNode>),
    ) {
        let mut rng = SimRng::new(5);
        let mut effects = Vec::new();
        let mut ctx = Ctx::new(1, Time::from_millis(3), 3, &mut rng, &mut effects);
        f(node, &mut ctx);
        for e in effects {
            if let Effect::Disk(op) = e {
                disk.apply(op);
            }
        }
    }

    fn state_of(c: &ManualCluster, id: NodeId) -> u64 {
        state(c.node(id).unwrap(), c.disk(id).unwrap())
    }

    /// Node 0 leads a three-node cluster and has sent AppendEntries with one put to both
    /// followers; nothing has been delivered since.
    fn leader_with_a_put_in_flight() -> ManualCluster {
        let mut c = ManualCluster::new(3, params(), 11);
        c.timeout(0);
        c.deliver(|_| true);
        assert!(c.node(0).unwrap().is_leader());
        c.request(0, RaftRequest::Kv(Box::new(put(1, "k", "v"))));
        assert_eq!(c.queue().len(), 2);
        c
    }

    #[test]
    fn answers_in_either_order_bring_the_leader_to_one_state() {
        let c = leader_with_a_put_in_flight();
        let mut a = c.clone();
        let mut b = c.clone();
        for follower in [1, 2] {
            a.deliver(|q| q.to == follower);
            a.deliver(|q| q.to == 0);
        }
        for follower in [2, 1] {
            b.deliver(|q| q.to == follower);
            b.deliver(|q| q.to == 0);
        }
        assert!(a.violation().is_none() && b.violation().is_none());
        let (la, lb) = (a.node(0).unwrap(), b.node(0).unwrap());
        assert_eq!(la.commit_index(), 2);
        assert_eq!(la.commit_index(), lb.commit_index());
        assert_eq!(state_of(&a, 0), state_of(&b, 0));
        assert_ne!(state_of(&a, 0), state_of(&c, 0), "the put committed");
        // The followers hold the same log, but drew their election timeouts from the one
        // random stream in the other order: a difference that decides when they campaign.
        let (fa, fb) = (a.node(1).unwrap(), b.node(1).unwrap());
        assert_eq!(fa.log().last_index(), fb.log().last_index());
        assert_ne!(fa.election_timeout, fb.election_timeout);
        assert_ne!(state_of(&a, 1), state_of(&b, 1));
    }

    #[test]
    fn entries_in_one_message_or_two_make_the_same_follower() {
        // Same entries, same time, same random draws: one AppendEntries or two give the
        // same log, and the same WAL once synced (one append of two records, or two).
        let entries: Vec<Entry> = (1..=2)
            .map(|i| Entry::new(1, EntryData::Command(put(i, "k", &i.to_string()))))
            .collect();
        let append = |prev: u64, entries: &[Entry]| {
            Message::Append(AppendRequest {
                term: 1,
                prev_log_index: prev,
                prev_log_term: if prev == 0 { 0 } else { 1 },
                entries: entries.to_vec(),
                leader_commit: 0,
                read_round: 0,
            })
        };
        let run = |messages: Vec<Message>| {
            let mut disk = Disk::new();
            let mut node = RaftNode::recover(1, &params(), &disk);
            handle(&mut node, &mut disk, |n, ctx| n.on_start(ctx));
            for m in messages {
                handle(&mut node, &mut disk, |n, ctx| n.on_message(0, m, ctx));
            }
            (node, disk)
        };
        let (one, one_disk) = run(vec![append(0, &entries)]);
        let (two, two_disk) = run(vec![append(0, &entries[..1]), append(1, &entries[1..])]);
        assert_eq!(one.log().last_index(), 2);
        assert_eq!(one_disk.stats().writes + 1, two_disk.stats().writes);
        assert_eq!(state(&one, &one_disk), state(&two, &two_disk));
        // Delivered again, the whole message changes nothing but what was sent back.
        let (dup, dup_disk) = run(vec![append(0, &entries), append(0, &entries)]);
        assert_eq!(state(&dup, &dup_disk), state(&one, &one_disk));
    }

    #[test]
    fn a_crash_that_lost_nothing_recovers_the_same_node() {
        let mut c = leader_with_a_put_in_flight();
        c.deliver(|_| true);
        for id in 0..3 {
            let disk = c.disk(id).unwrap().clone();
            assert!(!disk.has_unsynced("raft-wal-a") && !disk.has_unsynced("raft-wal-b"));
            let before = RaftNode::recover(id, &params(), &disk);
            let mut crashed = disk.clone();
            crashed.crash(&mut SimRng::new(9), 1.0);
            let after = RaftNode::recover(id, &params(), &crashed);
            assert!(!Arc::ptr_eq(&before.snapshot, &after.snapshot));
            assert_eq!(state(&before, &disk), state(&after, &crashed));
            // The running node knew more than its disk: the commit index is volatile.
            assert_ne!(before.fingerprint(), c.node(id).unwrap().fingerprint());
        }
    }

    #[test]
    fn every_change_of_state_changes_the_fingerprint() {
        let mut c = leader_with_a_put_in_flight();
        c.deliver(|_| true);
        let node = c.node(0).unwrap().clone();
        let disk = c.disk(0).unwrap().clone();
        assert_eq!(state(&node.clone(), &disk.clone()), state(&node, &disk));
        let change = |f: &dyn Fn(&mut RaftNode)| {
            let mut n = node.clone();
            f(&mut n);
            n.fingerprint()
        };
        let mut seen = vec![node.fingerprint()];
        seen.push(change(&|n| {
            n.append_local(Entry::new(n.term, EntryData::Noop));
        }));
        seen.push(change(&|n| n.term += 1));
        seen.push(change(&|n| n.vote = Some(2)));
        seen.push(change(&|n| n.vote = None));
        seen.push(change(&|n| n.role = Role::Follower));
        seen.push(change(&|n| n.commit -= 1));
        seen.push(change(&|n| n.leader = None));
        seen.push(change(&|n| {
            n.votes.insert(9);
        }));
        seen.push(change(&|n| {
            n.progress.get_mut(&1).unwrap().matched -= 1;
        }));
        seen.push(change(&|n| n.election_timeout.0 += 1));
        seen.push(change(&|n| n.election_armed_at.0 += 1));
        seen.push(change(&|n| n.applied_digest ^= 1));
        seen.push(change(&|n| n.params.pre_vote = false));
        seen.push(change(&|n| n.wal.hard_state(7, Some(1))));
        seen.push(change(&|n| n.rounds.current += 1));
        let distinct: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(distinct.len(), seen.len(), "{seen:x?}");

        // The same content written but not yet synced is another disk.
        let mut unsynced = disk.clone();
        let file = disk.files().next().unwrap();
        unsynced.apply(DiskOp::Append {
            file,
            bytes: vec![1, 2, 3],
        });
        let mut other = disk.clone();
        other.apply(DiskOp::Append {
            file,
            bytes: vec![1, 2, 4],
        });
        let mut synced = unsynced.clone();
        synced.apply(DiskOp::Fsync);
        let disks: BTreeSet<u64> = [&disk, &unsynced, &other, &synced]
            .iter()
            .map(|d| state(&node, d))
            .collect();
        assert_eq!(disks.len(), 4);
    }

    #[test]
    fn messages_differ_by_every_field_and_by_their_ends() {
        let vote = VoteRequest {
            term: 2,
            last_log_index: 5,
            last_log_term: 1,
            pre_vote: false,
            transfer: false,
        };
        let m = Message::Vote(vote.clone());
        let variants = [
            Message::Vote(VoteRequest {
                term: 3,
                ..vote.clone()
            }),
            Message::Vote(VoteRequest {
                last_log_index: 6,
                ..vote.clone()
            }),
            Message::Vote(VoteRequest {
                pre_vote: true,
                ..vote.clone()
            }),
            Message::Vote(VoteRequest {
                transfer: true,
                ..vote.clone()
            }),
            Message::TimeoutNow { term: 2 },
        ];
        assert_eq!(m.clone().fingerprint(), m.fingerprint());
        for v in &variants {
            assert_ne!(v.fingerprint(), m.fingerprint(), "{v:?}");
        }
        let between = Sim::<RaftNode>::message_fingerprint;
        assert_eq!(between(0, 1, &m), between(0, 1, &m.clone()));
        assert_ne!(between(0, 1, &m), between(1, 0, &m));
        assert_ne!(between(0, 1, &m), between(0, 2, &m));
    }

    fn sim(seed: u64) -> Sim<RaftNode> {
        let config = SimConfig {
            seed,
            nodes: 3,
            clients: 0,
            record_trace: false,
            ..SimConfig::default()
        };
        Sim::new(config, params()).unwrap()
    }

    #[test]
    fn a_run_stepped_by_events_or_by_time_reaches_the_same_states() {
        let until = Time::from_millis(1_500);
        let mut by_events = sim(21);
        while by_events.step_until(until).is_some() {}
        let mut by_time = sim(21);
        for ms in (0..=1_500).step_by(100) {
            by_time.run_until(Time::from_millis(ms), |_, _| {});
        }
        assert_ne!(by_events.now(), by_time.now());
        assert_eq!(by_events.steps(), by_time.steps());
        for id in 0..3 {
            assert_eq!(by_events.node_fingerprint(id), by_time.node_fingerprint(id));
        }
        // Another seed is another history.
        let mut other = sim(22);
        other.run_until(until, |_, _| {});
        assert!((0..3).any(|id| other.node_fingerprint(id) != by_time.node_fingerprint(id)));
        assert_eq!(by_time.node_fingerprint(3), None);
    }

    #[test]
    fn status_and_clock_are_part_of_a_nodes_state() {
        let mut s = sim(23);
        s.run_until(Time::from_millis(1_000), |_, _| {});
        let up = s.node_fingerprint(1).unwrap();
        let mut paused = s.clone();
        paused.apply_fault(&Fault::Pause { node: 1 }).unwrap();
        let mut crashed = s.clone();
        crashed.apply_fault(&Fault::Crash { node: 1 }).unwrap();
        let mut skewed = s.clone();
        skewed
            .apply_fault(&Fault::ClockSkew {
                node: 1,
                skew_ms: 5.0,
            })
            .unwrap();
        let all: BTreeSet<u64> = [&paused, &crashed, &skewed]
            .iter()
            .map(|s| s.node_fingerprint(1).unwrap())
            .chain([up])
            .collect();
        assert_eq!(all.len(), 4);
        // Other nodes are untouched.
        assert_eq!(crashed.node_fingerprint(0), s.node_fingerprint(0));
    }
}
