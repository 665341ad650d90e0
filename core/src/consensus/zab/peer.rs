//! The Zab peer: its durable and volatile state, the helpers every phase shares, and the
//! simulator's `Node` plumbing. The phases themselves are in [`super::election`],
//! [`super::discovery`], [`super::sync`] and [`super::broadcast`].
//!
//! One timer drives everything: a looking peer re-sends its notification; a follower
//! re-sends its last discovery or synchronisation message and gives up on a silent
//! leader; a leader sends its heartbeat (`Commit` of its last committed zxid), re-sends
//! proposals a follower has not acknowledged, and steps down when it has not heard from a
//! quorum — or has not reached broadcast — in time.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::consensus::raft::state_machine::{KvCommand, KvResponse};
use crate::consensus::vr::state_machine::KvService;
use crate::consensus::zab::messages::{Message, PeerState, Phase, Vote};
use crate::consensus::zab::storage::{self, Durable, LOG_FILE, Record};
use crate::consensus::zab::zxid::{Txn, Zxid, last_zxid};
use crate::sim::disk::Disk;
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The one timer.
pub const TICK: TimerId = 1;

/// Settings shared by every peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZabParams {
    /// Heartbeat and re-send period.
    pub tick: Duration,
    /// A follower that hears nothing from its leader for a time drawn from
    /// `[timeout_min, timeout_max]` goes back to election; a leader that has not heard
    /// from a quorum for `timeout_max`, or has not reached broadcast in twice that, too.
    pub timeout_min: Duration,
    pub timeout_max: Duration,
}

impl Default for ZabParams {
    fn default() -> Self {
        ZabParams {
            tick: Duration::from_millis(25),
            timeout_min: Duration::from_millis(150),
            timeout_max: Duration::from_millis(300),
        }
    }
}

/// A prospective or established leader's bookkeeping for its epoch (Zab.tla's
/// `cepochRecv`, `ackeRecv`, `ackldRecv` and the acknowledgements of its history).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderState {
    /// Follower → the accepted epoch in its `FollowerInfo` (the leader included).
    pub cepoch_recv: BTreeMap<NodeId, u64>,
    /// A quorum's `FollowerInfo` arrived and e' was chosen and sent.
    pub new_epoch_sent: bool,
    /// Follower → (current epoch, history) from its `AckEpoch`, until the initial
    /// history is chosen; only the keys matter after that.
    pub acke_recv: BTreeMap<NodeId, (u64, Vec<Txn>)>,
    /// A quorum's `AckEpoch` arrived: the initial history is chosen and `NewLeader` sent.
    pub new_leader_sent: bool,
    /// Followers whose `AckLd` arrived (the leader included).
    pub ackld_recv: BTreeSet<NodeId>,
    /// Follower → how many transactions of the leader's history it has acknowledged.
    pub acked: BTreeMap<NodeId, usize>,
    /// Follower → when the leader last heard from it in this epoch.
    pub heard: BTreeMap<NodeId, Time>,
    /// History index → when the leader proposed it, for the proposals of this epoch not
    /// yet acknowledged by every follower: the heartbeat re-sends only proposals at least
    /// a tick old, since a younger one's `Ack` is most likely on its way back.
    #[serde(skip)]
    pub proposed_at: BTreeMap<usize, Time>,
}

/// A Zab peer.
#[derive(Debug, Clone)]
pub struct ZabPeer {
    pub(super) id: NodeId,
    pub(super) params: ZabParams,
    // Durable (mirrored from the disk).
    pub(super) accepted_epoch: u64,
    pub(super) accepted_from: Option<NodeId>,
    pub(super) current_epoch: u64,
    pub(super) history: Vec<Txn>,
    // Volatile.
    pub(super) state: PeerState,
    pub(super) phase: Phase,
    /// The leader followed or led (itself when leading).
    pub(super) leader: Option<NodeId>,
    /// A follower took its leader's `NewLeader` (in this life): it is synchronised.
    pub(super) synced: bool,
    /// Transactions of `history` delivered (executed on `service`), in order.
    pub(super) committed: usize,
    pub(super) service: KvService,
    pub(super) waiting: BTreeMap<(u64, u64), (ClientId, RequestId)>,
    /// Election: this peer's round (FLE's logical clock), its vote and the votes of
    /// this round.
    pub(super) round: u64,
    pub(super) vote: Vote,
    pub(super) votes: BTreeMap<NodeId, Vote>,
    pub(super) lead: LeaderState,
    /// A follower gives up on its leader, a leader on reaching broadcast, at this time.
    pub(super) deadline: Time,
    /// Bumped whenever the history is cut or replaced, so the checker re-reads it.
    pub(super) history_version: u64,
    pub(super) elections: u64,
    pub(super) epochs_led: u64,
    pub(super) torn_tail: Option<usize>,
}

impl ZabPeer {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn accepted_epoch(&self) -> u64 {
        self.accepted_epoch
    }
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }
    pub fn history(&self) -> &[Txn] {
        &self.history
    }
    pub fn last_zxid(&self) -> Zxid {
        last_zxid(&self.history)
    }
    /// Delivered transactions: a prefix of the history.
    pub fn committed(&self) -> usize {
        self.committed
    }
    /// The zxid of the last delivered transaction.
    pub fn committed_zxid(&self) -> Zxid {
        last_zxid(self.history.get(..self.committed).unwrap_or_default())
    }
    pub fn state(&self) -> PeerState {
        self.state
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn service(&self) -> &KvService {
        &self.service
    }
    pub fn round(&self) -> u64 {
        self.round
    }
    pub fn vote(&self) -> Vote {
        self.vote
    }
    pub fn leader_state(&self) -> &LeaderState {
        &self.lead
    }
    pub fn history_version(&self) -> u64 {
        self.history_version
    }
    /// Elections this peer started.
    pub fn elections(&self) -> u64 {
        self.elections
    }
    /// Epochs this peer established as leader (reached synchronisation).
    pub fn epochs_led(&self) -> u64 {
        self.epochs_led
    }
    /// Leading an established epoch: in broadcast, accepting requests.
    pub fn is_serving_leader(&self) -> bool {
        self.state == PeerState::Leading && self.phase == Phase::Broadcast
    }

    /// A majority of the ensemble.
    pub(super) fn quorum(ctx: &Ctx<'_, Self>) -> usize {
        ctx.node_count() as usize / 2 + 1
    }

    pub(super) fn to_others(&self, msg: &Message, ctx: &mut Ctx<'_, Self>) {
        for to in 0..ctx.node_count() {
            if to != self.id {
                ctx.send(to, msg.clone());
            }
        }
    }

    /// Writes `records` and syncs them: the caller acts on them only afterwards.
    pub(super) fn persist(&mut self, records: &[Record], ctx: &mut Ctx<'_, Self>) {
        for op in storage::write(records) {
            ctx.disk(op);
        }
    }

    /// Takes `history` as this peer's, durably, with `current_epoch` after it if given.
    pub(super) fn replace_history(
        &mut self,
        history: Vec<Txn>,
        current_epoch: Option<u64>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let mut records = storage::replace_history(&self.history, &history);
        if let Some(epoch) = current_epoch {
            records.push(Record::CurrentEpoch { epoch });
            self.current_epoch = epoch;
        }
        let cut = records.iter().any(|r| matches!(r, Record::Truncate { .. }));
        self.persist(&records, ctx);
        self.history = history;
        if cut {
            self.history_version += 1;
        }
        self.committed = self.committed.min(self.history.len());
    }

    pub(super) fn reset_deadline(&mut self, ctx: &mut Ctx<'_, Self>) {
        let (lo, hi) = (
            self.params.timeout_min.0,
            self.params.timeout_max.0.max(self.params.timeout_min.0),
        );
        self.deadline = ctx.now() + Duration(ctx.rng().range_inclusive(lo, hi));
    }

    /// Delivers the history's first `upto` transactions (never past it, never back),
    /// answering the clients that wait here.
    pub(super) fn commit_to(&mut self, upto: usize, ctx: &mut Ctx<'_, Self>) {
        let upto = upto.min(self.history.len());
        while self.committed < upto {
            let Some(txn) = self.history.get(self.committed) else {
                break;
            };
            let reply = self.service.execute(&txn.cmd);
            let key = (txn.cmd.session, txn.cmd.seq);
            self.committed += 1;
            if let Some(reply) = reply
                && let Some((client, request)) = self.waiting.remove(&key)
            {
                ctx.reply(client, request, Reply::Ok(reply));
            }
        }
    }

    /// Delivers every transaction of the history up to `zxid` (a follower's history is
    /// a prefix of its leader's, so all of those are committed).
    pub(super) fn commit_through(&mut self, zxid: Zxid, ctx: &mut Ctx<'_, Self>) {
        let upto = self.history.partition_point(|t| t.zxid <= zxid);
        self.commit_to(upto, ctx);
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(TICK, self.params.tick);
        match self.state {
            PeerState::Looking => self.election_tick(ctx),
            PeerState::Following => self.follower_tick(ctx),
            PeerState::Leading => self.leader_tick(ctx),
        }
    }

    fn follower_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(leader) = self.leader else {
            self.start_election(ctx);
            return;
        };
        if ctx.now() >= self.deadline {
            ctx.state_change(format!("no word from leader n{leader}"));
            self.start_election(ctx);
            return;
        }
        match self.phase {
            Phase::Discovery => ctx.send(
                leader,
                Message::FollowerInfo {
                    accepted_epoch: self.accepted_epoch,
                },
            ),
            Phase::Synchronisation => self.resend_sync(leader, ctx),
            Phase::Election | Phase::Broadcast => {}
        }
    }
}

impl Node for ZabPeer {
    type Message = Message;
    type Request = KvCommand;
    type Response = KvResponse;
    type Config = ZabParams;

    /// The accepted and current epochs and the history come back from the disk; a peer
    /// always starts looking for a leader, and delivers again from the first transaction
    /// once it has one (what it delivered is not durable; its state machine is rebuilt).
    fn recover(id: NodeId, params: &ZabParams, disk: &Disk) -> Self {
        let (
            Durable {
                accepted_epoch,
                accepted_from,
                current_epoch,
                history,
            },
            torn_tail,
        ) = storage::load(disk);
        let vote = Vote {
            leader: id,
            epoch: current_epoch,
            zxid: last_zxid(&history),
        };
        ZabPeer {
            id,
            params: params.clone(),
            accepted_epoch,
            accepted_from,
            current_epoch,
            history,
            state: PeerState::Looking,
            phase: Phase::Election,
            leader: None,
            synced: false,
            committed: 0,
            service: KvService::default(),
            waiting: BTreeMap::new(),
            round: 0,
            vote,
            votes: BTreeMap::new(),
            lead: LeaderState::default(),
            deadline: Time::ZERO,
            history_version: 0,
            elections: 0,
            epochs_led: 0,
            torn_tail,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG_FILE, len) {
                ctx.disk(op);
            }
        }
        self.start_election(ctx);
        ctx.set_timer(TICK, self.params.tick);
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Notification { round, vote, state } => {
                self.on_notification(from, round, vote, state, ctx)
            }
            Message::FollowerInfo { accepted_epoch } => {
                self.on_follower_info(from, accepted_epoch, ctx)
            }
            Message::NewEpoch { epoch } => self.on_new_epoch(from, epoch, ctx),
            Message::AckEpoch {
                epoch,
                current_epoch,
                history,
            } => self.on_ack_epoch(from, epoch, current_epoch, history, ctx),
            Message::NewLeader { epoch, history } => self.on_new_leader(from, epoch, history, ctx),
            Message::AckLd { epoch, zxid } => self.on_ack_ld(from, epoch, zxid, ctx),
            Message::CommitLd { epoch, zxid } => self.on_commit_ld(from, epoch, zxid, ctx),
            Message::Propose { epoch, txn } => self.on_propose(from, epoch, txn, ctx),
            Message::Ack { epoch, zxid } => self.on_ack(from, epoch, zxid, ctx),
            Message::Commit { epoch, zxid } => self.on_commit(from, epoch, zxid, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if timer == TICK {
            self.on_tick(ctx);
        }
    }

    fn on_request(&mut self, request: ClientRequest<KvCommand>, ctx: &mut Ctx<'_, Self>) {
        if !self.is_serving_leader() {
            let why = match (self.state, self.leader) {
                (PeerState::Following, Some(l)) => format!("not the leader; try {l}"),
                (PeerState::Leading, _) => "leader not yet in broadcast".to_string(),
                _ => "electing a leader".to_string(),
            };
            ctx.reply(request.client, request.id, Reply::Fail(why));
            return;
        }
        self.on_client_request(request.body, (request.client, request.id), ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        msg.kind()
    }

    fn role(&self) -> &'static str {
        match self.state {
            PeerState::Looking => "looking",
            PeerState::Following => "follower",
            PeerState::Leading => "leader",
        }
    }
}

/// Every field: settings, the durable state, role and phase, delivery and the service,
/// waiting clients, the election, the leader's bookkeeping, the deadline, the counters
/// (observers read them) and the torn tail still to cut.
impl Fingerprint for ZabPeer {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let ZabPeer {
            id,
            params,
            accepted_epoch,
            accepted_from,
            current_epoch,
            history,
            state,
            phase,
            leader,
            synced,
            committed,
            service,
            waiting,
            round,
            vote,
            votes,
            lead,
            deadline,
            history_version,
            elections,
            epochs_led,
            torn_tail,
        } = self;
        id.hash(h);
        params.hash(h);
        accepted_epoch.hash(h);
        accepted_from.hash(h);
        current_epoch.hash(h);
        history.hash(h);
        state.hash(h);
        phase.hash(h);
        leader.hash(h);
        synced.hash(h);
        committed.hash(h);
        service.hash(h);
        waiting.hash(h);
        round.hash(h);
        vote.hash(h);
        votes.hash(h);
        lead.hash(h);
        deadline.hash(h);
        history_version.hash(h);
        elections.hash(h);
        epochs_led.hash(h);
        torn_tail.hash(h);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::KvOp;
    use crate::consensus::zab::manual::ManualCluster;

    pub(crate) fn put(client: u64, request: u64, value: &str) -> KvCommand {
        KvCommand {
            session: client,
            seq: request,
            op: KvOp::Put {
                key: "k".into(),
                value: value.into(),
            },
        }
    }

    #[test]
    fn an_ensemble_elects_establishes_an_epoch_and_commits_in_zxid_order() {
        let mut c = ManualCluster::new(3, ZabParams::default(), 1);
        c.deliver(|_| true);
        c.settle(3);
        let l = c.serving_leader().expect("a leader in broadcast");
        let p = c.node(l).unwrap();
        assert_eq!((p.accepted_epoch(), p.current_epoch()), (1, 1));
        let followers: Vec<NodeId> = (0..3).filter(|&f| f != l).collect();
        for &f in &followers {
            let p = c.node(f).unwrap();
            assert_eq!(
                (p.state(), p.phase(), p.leader(), p.current_epoch()),
                (PeerState::Following, Phase::Broadcast, Some(l), 1)
            );
        }
        let a = c.request(l, put(7, 1, "a"));
        let b = c.request(l, put(8, 1, "b"));
        c.deliver(|_| true);
        for id in [a, b] {
            assert!(c.replies().contains(&(0, id, Reply::Ok(KvResponse::Ok))));
        }
        let f = followers[0];
        let zxids: Vec<Zxid> = c
            .node(f)
            .unwrap()
            .history()
            .iter()
            .map(|t| t.zxid)
            .collect();
        assert_eq!(zxids, vec![Zxid::new(1, 1), Zxid::new(1, 2)]);
        // Followers learn the last commit from the next heartbeat.
        c.tick(l);
        c.deliver(|_| true);
        assert_eq!(c.node(f).unwrap().committed(), 2);
        // A follower sends the client to the leader; a retry is answered from the table.
        let elsewhere = c.request(f, put(9, 1, "c"));
        let hint = c
            .replies()
            .iter()
            .find(|r| r.1 == elsewhere)
            .map(|r| r.2.clone());
        assert_eq!(hint, Some(Reply::Fail(format!("not the leader; try {l}"))));
        let again = c.request(l, put(7, 1, "a"));
        assert!(c.replies().contains(&(0, again, Reply::Ok(KvResponse::Ok))));
        assert_eq!(c.node(l).unwrap().history().len(), 2);
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }

    #[test]
    fn durable_state_survives_a_restart_and_the_peer_rejoins_its_epoch() {
        let mut c = ManualCluster::new(3, ZabParams::default(), 1);
        c.deliver(|_| true);
        c.settle(3);
        let l = c.serving_leader().expect("a leader in broadcast");
        // Everyone in broadcast: no peer still a prospective leader from the election
        // (without FLE's finalize wait one may stay so until its deadline).
        for id in 0..3 {
            assert_eq!(c.node(id).unwrap().phase(), Phase::Broadcast, "n{id}");
        }
        let f = (l + 1) % 3;
        c.request(l, put(1, 1, "a"));
        c.deliver(|_| true);
        c.crash(f).unwrap();
        c.restart(f).unwrap();
        let p = c.node(f).unwrap();
        assert_eq!((p.accepted_epoch(), p.current_epoch()), (1, 1));
        assert_eq!(p.history().len(), 1);
        assert_eq!((p.state(), p.committed()), (PeerState::Looking, 0));
        // Its notification is answered by the leader ("leading"): it rejoins epoch 1.
        c.settle(3);
        let p = c.node(f).unwrap();
        assert_eq!(
            (p.phase(), p.leader(), p.committed()),
            (Phase::Broadcast, Some(l), 1)
        );
        assert_eq!(p.service().data().get("k").map(String::as_str), Some("a"));
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }
}
