//! A PBFT replica and the normal case (Castro & Liskov 1999, §4.2): the primary of view
//! v (`v mod n`) assigns a sequence number to a client request and multicasts a signed
//! PRE-PREPARE; a backup accepts it if it is in view v, within the watermarks, and it has
//! accepted no other PRE-PREPARE for (v, n), and multicasts PREPARE. `prepared(m, v, n,
//! i)` holds when replica i has the pre-prepare and 2f matching prepares from distinct
//! backups; the replica then multicasts COMMIT, and `committed-local(m, v, n, i)` holds
//! once it is prepared and has 2f + 1 matching commits. Committed requests execute in
//! sequence-number order and every replica replies to the client itself; the client
//! waits for f + 1 matching replies ([`super::harness`]).
//!
//! Timers: a backup waiting for a request to execute runs the view-change timer
//! (§4.4); every replica re-sends on a tick what a lost message would leave undone — its
//! votes for sequence numbers not yet executed, its newest checkpoint, its VIEW-CHANGE —
//! as the paper's retransmission does.
//!
//! **Crash and restart.** The paper's replicas keep their state; here a crash loses the
//! volatile state and the disk keeps one number per stable checkpoint. A restarted
//! replica has forgotten which requests it voted for, so it votes again only once its
//! stable checkpoint has passed every sequence number it could have voted for (its last
//! stable checkpoint on disk plus the window L); until then it catches up by state
//! transfer and stays silent. Until it has, it counts against f, as any faulty replica
//! does (the soak keeps Byzantine + down + recovering at most f).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use crate::consensus::pbft::auth::KeyRing;
use crate::consensus::pbft::byzantine::Behaviour;
use crate::consensus::pbft::messages::{
    Body, Checkpoint, Envelope, NewView, PrePrepare, Prepared, Request, Signed, ViewChange, Vote,
};
use crate::consensus::raft::state_machine::{KvCommand, KvResponse};
use crate::consensus::vr::client_table::Lookup;
use crate::consensus::vr::state_machine::KvService;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, Reply, TimerId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::sim::{ClientId, NodeId, RequestId};
use crate::time::{Duration, Time};

/// The retransmission tick.
pub const TICK: TimerId = 1;
/// The view-change timer.
pub const VIEW_TIMER: TimerId = 2;
pub(super) const STABLE_FILE: &str = "pbft.stable";

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PbftParams {
    /// The group's secret the key rings are derived from.
    pub key_secret: u64,
    /// K: a checkpoint every K sequence numbers.
    pub checkpoint_interval: u64,
    /// L: the high watermark is H = h + L (a multiple of K).
    pub log_window: u64,
    pub retransmit: Duration,
    /// The view-change timeout; doubled for each view change that does not complete.
    pub view_timeout: Duration,
    /// Replicas that lie, and how; the others are correct.
    pub byzantine: BTreeMap<NodeId, Behaviour>,
}

impl Default for PbftParams {
    fn default() -> Self {
        PbftParams {
            key_secret: 0x5eed_cafe,
            checkpoint_interval: 4,
            log_window: 8,
            retransmit: Duration::from_millis(60),
            view_timeout: Duration::from_millis(250),
            byzantine: BTreeMap::new(),
        }
    }
}

/// A replica's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Normal,
    ViewChange,
}

/// What the disk holds: the first boot's mark and each stable checkpoint's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
pub(super) enum Record {
    Boot,
    Stable { seq: u64 },
}

/// What a replica holds for one sequence number in its current view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Slot {
    pub pre_prepare: Option<Signed<PrePrepare>>,
    pub prepares: BTreeMap<NodeId, Signed<Vote>>,
    pub commits: BTreeMap<NodeId, Signed<Vote>>,
    pub committed: bool,
    /// When this replica last sent its own message for this number (pre-prepare,
    /// prepare or commit): the tick re-sends only what is at least a tick old, not a
    /// vote still in flight.
    pub sent_at: Option<Time>,
}

/// A request the replica has seen and not yet executed, and the client attempts that
/// wait for its reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Waiting {
    pub command: KvCommand,
    pub attempts: Vec<(ClientId, RequestId)>,
}

/// A PBFT replica.
#[derive(Debug, Clone)]
pub struct PbftReplica {
    pub(super) id: NodeId,
    pub(super) n: u32,
    pub(super) params: PbftParams,
    pub(super) keys: KeyRing,
    pub(super) behaviour: Behaviour,
    pub(super) view: u64,
    pub(super) status: Status,
    /// Sequence number → this view's pre-prepare and votes, for h < n ≤ H.
    pub(super) slots: BTreeMap<u64, Slot>,
    /// The P set: per sequence number above h, the certificate prepared in the highest view.
    pub(super) prepared: BTreeMap<u64, Prepared>,
    /// The primary's last assigned sequence number.
    pub(super) next_seq: u64,
    /// (client session, request number) → the request and who waits for it.
    pub(super) waiting: BTreeMap<(u64, u64), Waiting>,
    pub(super) last_executed: u64,
    pub(super) service: KvService,
    /// h, and the 2f + 1 checkpoints that make it stable.
    pub(super) stable: u64,
    pub(super) stable_proof: Vec<Signed<Checkpoint>>,
    /// Checkpoint messages received for sequence numbers above h.
    pub(super) checkpoints: BTreeMap<u64, BTreeMap<NodeId, Signed<Checkpoint>>>,
    /// This replica's state at each checkpoint at or above h (h's is kept for transfer).
    pub(super) snapshots: BTreeMap<u64, KvService>,
    /// VIEW-CHANGE messages received, by the view they ask for.
    pub(super) view_changes: BTreeMap<u64, BTreeMap<NodeId, Signed<ViewChange>>>,
    /// The NEW-VIEW that installed the current view (none for view 0).
    pub(super) new_view: Option<Signed<NewView>>,
    pub(super) view_timer_on: bool,
    /// View changes started in a row without reaching a new view (doubles the timeout).
    pub(super) failed_view_changes: u32,
    /// What this replica committed, by sequence number: read by the checker and the lab.
    pub(super) commit_record: BTreeMap<u64, Request>,
    /// A restarted replica votes again once `stable` reaches this.
    pub(super) amnesia_until: u64,
    /// (view, seq, digest) this liar has already vouched for ([`Behaviour::Equivocate`]).
    pub(super) vouched: BTreeSet<(u64, u64, u64)>,
    /// (sequence number, replica) → when this replica last answered that replica's
    /// re-sent vote for it with its own ([`Self::help_laggard`]).
    pub(super) helped: BTreeMap<(u64, NodeId), Time>,
    /// Replica → when this replica last sent it its state for a vote below h.
    pub(super) state_sent: BTreeMap<NodeId, Time>,
    pub(super) fresh: bool,
    pub(super) torn_tail: Option<usize>,
    pub(super) view_changes_started: u64,
    pub(super) forgeries_dropped: u64,
    pub(super) state_transfers: u64,
}

impl PbftReplica {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn f(&self) -> usize {
        (self.n.max(1) as usize - 1) / 3
    }
    pub fn view(&self) -> u64 {
        self.view
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }
    /// Turns this replica into a liar (or back): the lab's "make Byzantine".
    pub fn set_behaviour(&mut self, b: Behaviour) {
        self.behaviour = b;
    }
    pub fn primary_of(&self, view: u64) -> NodeId {
        (view % u64::from(self.n.max(1))) as NodeId
    }
    pub fn is_primary(&self) -> bool {
        self.primary_of(self.view) == self.id
    }
    pub fn last_executed(&self) -> u64 {
        self.last_executed
    }
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// The low watermark h (the stable checkpoint).
    pub fn low_watermark(&self) -> u64 {
        self.stable
    }
    /// The high watermark H = h + L.
    pub fn high_watermark(&self) -> u64 {
        self.stable + self.params.log_window
    }
    pub fn stable_proof(&self) -> &[Signed<Checkpoint>] {
        &self.stable_proof
    }
    pub fn slots(&self) -> &BTreeMap<u64, Slot> {
        &self.slots
    }
    pub fn prepared_certificates(&self) -> &BTreeMap<u64, Prepared> {
        &self.prepared
    }
    pub fn commit_record(&self) -> &BTreeMap<u64, Request> {
        &self.commit_record
    }
    pub fn service(&self) -> &KvService {
        &self.service
    }
    pub fn view_changes_started(&self) -> u64 {
        self.view_changes_started
    }
    pub fn forgeries_dropped(&self) -> u64 {
        self.forgeries_dropped
    }
    pub fn state_transfers(&self) -> u64 {
        self.state_transfers
    }
    /// Whether this replica restarted and may not vote yet.
    pub fn recovering(&self) -> bool {
        self.stable < self.amnesia_until
    }
    pub(super) fn quorum(&self) -> usize {
        2 * self.f() + 1
    }
    pub(super) fn in_window(&self, seq: u64) -> bool {
        seq > self.stable && seq <= self.high_watermark()
    }
    /// Whether this replica may vote (send pre-prepares, prepares, commits, view changes).
    pub(super) fn votes(&self) -> bool {
        !self.recovering()
    }

    /// Sends `body` to `to` in an authenticated envelope.
    pub(super) fn send(&self, to: NodeId, body: Body, ctx: &mut Ctx<'_, Self>) {
        if to != self.id {
            ctx.send(to, Envelope::seal(&self.keys, to, body));
        }
    }

    /// Sends `body` to every other replica.
    pub(super) fn multicast(&self, body: &Body, ctx: &mut Ctx<'_, Self>) {
        for to in 0..self.n {
            self.send(to, body.clone(), ctx);
        }
    }

    pub(super) fn sign<T: Hash>(&self, value: T) -> Signed<T> {
        Signed::new(&self.keys, value)
    }

    // ---- requests -------------------------------------------------------------------

    fn on_client_request(&mut self, req: ClientRequest<KvCommand>, ctx: &mut Ctx<'_, Self>) {
        let cmd = req.body;
        match self.service.table().lookup(cmd.session, cmd.seq) {
            Lookup::Executed(reply) => {
                self.reply(req.client, req.id, reply, ctx);
                return;
            }
            Lookup::Stale => return,
            Lookup::New => {}
        }
        let w = self
            .waiting
            .entry((cmd.session, cmd.seq))
            .or_insert_with(|| Waiting {
                command: cmd,
                attempts: Vec::new(),
            });
        if !w.attempts.contains(&(req.client, req.id)) {
            w.attempts.push((req.client, req.id));
        }
        if self.is_primary() {
            self.propose_waiting(ctx);
        } else {
            self.arm_view_timer(ctx);
        }
    }

    fn reply(
        &self,
        client: ClientId,
        request: RequestId,
        reply: KvResponse,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let reply = if self.behaviour.lies_to_clients() {
            KvResponse::Value {
                value: Some(format!("lie from n{}", self.id)),
            }
        } else {
            reply
        };
        ctx.reply(client, request, Reply::Ok(reply));
    }

    /// The primary assigns sequence numbers to waiting requests while the window allows.
    pub(super) fn propose_waiting(&mut self, ctx: &mut Ctx<'_, Self>) {
        if !self.is_primary() || self.status != Status::Normal || !self.votes() {
            return;
        }
        let assigned: BTreeSet<u64> = self
            .slots
            .values()
            .filter_map(|s| s.pre_prepare.as_ref())
            .map(|pp| pp.value.digest)
            .collect();
        let todo: Vec<KvCommand> = self
            .waiting
            .values()
            .map(|w| w.command.clone())
            .filter(|c| !assigned.contains(&Request::Op(c.clone()).digest()))
            .collect();
        for command in todo {
            if self.next_seq < self.stable {
                self.next_seq = self.stable;
            }
            if self.next_seq + 1 > self.high_watermark() {
                return;
            }
            self.next_seq += 1;
            let request = Request::Op(command);
            let pp = PrePrepare {
                view: self.view,
                seq: self.next_seq,
                digest: request.digest(),
                request,
            };
            self.issue_pre_prepare(pp, ctx);
        }
    }

    /// Records and multicasts the primary's pre-prepare (a liar may split it).
    pub(super) fn issue_pre_prepare(&mut self, pp: PrePrepare, ctx: &mut Ctx<'_, Self>) {
        let seq = pp.seq;
        let signed = self.sign(pp);
        let slot = self.slots.entry(seq).or_default();
        slot.pre_prepare = Some(signed.clone());
        slot.sent_at = Some(ctx.now());
        if self.behaviour.equivocates() {
            self.equivocate_pre_prepare(&signed, ctx);
        } else {
            self.multicast(&Body::PrePrepare(signed), ctx);
        }
    }

    // ---- normal case ----------------------------------------------------------------

    pub(super) fn on_pre_prepare(
        &mut self,
        from: NodeId,
        pp: Signed<PrePrepare>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let v = &pp.value;
        if from != self.primary_of(v.view) || v.digest != v.request.digest() {
            return;
        }
        if v.view != self.view || self.status != Status::Normal || !self.in_window(v.seq) {
            return;
        }
        if from == self.id {
            return;
        }
        let seq = v.seq;
        let slot = self.slots.entry(seq).or_default();
        match &slot.pre_prepare {
            Some(have) if have.value.digest != pp.value.digest => return,
            Some(_) => {}
            None => slot.pre_prepare = Some(pp.clone()),
        }
        let vote = Vote {
            view: pp.value.view,
            seq,
            digest: pp.value.digest,
            replica: self.id,
        };
        if self.votes() && !self.behaviour.is_silent() {
            let signed = self.sign(vote);
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.prepares.insert(self.id, signed.clone());
                slot.sent_at = Some(ctx.now());
            }
            self.multicast(&Body::Prepare(signed), ctx);
        }
        self.advance(seq, ctx);
    }

    pub(super) fn on_prepare(&mut self, from: NodeId, p: Signed<Vote>, ctx: &mut Ctx<'_, Self>) {
        let v = p.value;
        if v.replica != from || from == self.primary_of(v.view) {
            return;
        }
        if v.seq <= self.stable {
            self.answer_vote_below_h(from, ctx);
            return;
        }
        if v.view != self.view || self.status != Status::Normal || !self.in_window(v.seq) {
            return;
        }
        let slot = self.slots.entry(v.seq).or_default();
        let again = slot.prepares.get(&from) == Some(&p);
        slot.prepares.insert(from, p);
        if again {
            self.help_laggard(from, v.seq, ctx);
        }
        self.advance(v.seq, ctx);
    }

    pub(super) fn on_commit(&mut self, from: NodeId, c: Signed<Vote>, ctx: &mut Ctx<'_, Self>) {
        let v = c.value;
        if v.replica != from {
            return;
        }
        if v.seq <= self.stable {
            self.answer_vote_below_h(from, ctx);
            return;
        }
        if v.view != self.view || self.status != Status::Normal || !self.in_window(v.seq) {
            return;
        }
        let slot = self.slots.entry(v.seq).or_default();
        let again = slot.commits.get(&from) == Some(&c);
        slot.commits.insert(from, c);
        if again {
            self.help_laggard(from, v.seq, ctx);
        }
        self.advance(v.seq, ctx);
    }

    /// A vote received a second time means its sender is re-sending it: it has not
    /// executed `seq`. A replica re-sends its own votes only until it executes, so a
    /// replica that committed `seq` answers the laggard with its votes for it; otherwise
    /// a laggard that lost them waits for a checkpoint that may never come (the BFT
    /// library's status messages do this job: Castro's thesis, 2001, §5.2). At most
    /// once a retransmission period per replica and number: two replicas that both
    /// committed would otherwise answer each other's answers for ever.
    fn help_laggard(&mut self, from: NodeId, seq: u64, ctx: &mut Ctx<'_, Self>) {
        let Some(slot) = self.slots.get(&seq).filter(|s| s.committed) else {
            return;
        };
        let now = ctx.now();
        if self
            .helped
            .get(&(seq, from))
            .is_some_and(|at| now.saturating_since(*at) < self.params.retransmit)
        {
            return;
        }
        if let Some(p) = slot.prepares.get(&self.id) {
            self.send(from, Body::Prepare(p.clone()), ctx);
        }
        if let Some(c) = slot.commits.get(&self.id) {
            self.send(from, Body::Commit(c.clone()), ctx);
        }
        self.helped.insert((seq, from), now);
    }

    /// A vote for a number at or below h comes from a replica that has not executed it
    /// (or from one whose vote was in flight as the checkpoint became stable): it gets
    /// the stable state, at most once a retransmission period — a checkpoint makes a
    /// burst of in-flight votes stale at once, and one answer serves them all.
    fn answer_vote_below_h(&mut self, from: NodeId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        if self
            .state_sent
            .get(&from)
            .is_some_and(|at| now.saturating_since(*at) < self.params.retransmit)
        {
            return;
        }
        self.state_sent.insert(from, now);
        self.send_state(from, ctx);
    }

    /// The prepared certificate for `seq`, if `prepared(m, v, n, i)` holds: the
    /// pre-prepare and 2f prepares from distinct backups matching it.
    pub fn prepared_certificate(&self, seq: u64) -> Option<Prepared> {
        let slot = self.slots.get(&seq)?;
        let pp = slot.pre_prepare.as_ref()?;
        let primary = self.primary_of(pp.value.view);
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .values()
            .filter(|p| {
                p.value.view == pp.value.view
                    && p.value.digest == pp.value.digest
                    && p.value.replica != primary
            })
            .take(2 * self.f())
            .cloned()
            .collect();
        (prepares.len() >= 2 * self.f()).then(|| Prepared {
            pre_prepare: pp.clone(),
            prepares,
        })
    }

    /// `committed-local(m, v, n, i)`: prepared, and 2f + 1 matching commits.
    pub fn committed_local(&self, seq: u64) -> bool {
        let Some(slot) = self.slots.get(&seq) else {
            return false;
        };
        let Some(pp) = &slot.pre_prepare else {
            return false;
        };
        let commits = slot
            .commits
            .values()
            .filter(|c| c.value.view == pp.value.view && c.value.digest == pp.value.digest)
            .count();
        commits >= self.quorum() && self.prepared_certificate(seq).is_some()
    }

    /// Moves sequence number `seq` on: prepared → commit sent, committed → execute.
    pub(super) fn advance(&mut self, seq: u64, ctx: &mut Ctx<'_, Self>) {
        if let Some(cert) = self.prepared_certificate(seq) {
            let pp = cert.pre_prepare.value.clone();
            self.prepared.insert(seq, cert);
            let voted = self
                .slots
                .get(&seq)
                .is_some_and(|s| s.commits.contains_key(&self.id));
            if !voted && self.votes() && !self.behaviour.is_silent() {
                let vote = self.sign(Vote {
                    view: pp.view,
                    seq,
                    digest: pp.digest,
                    replica: self.id,
                });
                if let Some(slot) = self.slots.get_mut(&seq) {
                    slot.commits.insert(self.id, vote.clone());
                    slot.sent_at = Some(ctx.now());
                }
                self.multicast(&Body::Commit(vote), ctx);
            }
        }
        let newly = self.committed_local(seq) && self.slots.get(&seq).is_some_and(|s| !s.committed);
        if newly {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.committed = true;
                if let Some(pp) = &slot.pre_prepare {
                    self.commit_record.insert(seq, pp.value.request.clone());
                }
            }
            self.execute_committed(ctx);
        }
    }

    /// Executes committed requests in sequence-number order.
    pub(super) fn execute_committed(&mut self, ctx: &mut Ctx<'_, Self>) {
        let before = self.last_executed;
        loop {
            let next = self.last_executed + 1;
            let Some(slot) = self.slots.get(&next) else {
                break;
            };
            if !slot.committed {
                break;
            }
            let Some(pp) = slot.pre_prepare.clone() else {
                break;
            };
            self.last_executed = next;
            if let Request::Op(cmd) = &pp.value.request
                && let Some(reply) = self.service.execute(cmd)
            {
                self.answer(cmd, reply, ctx);
            }
            if next.is_multiple_of(self.params.checkpoint_interval) {
                self.take_checkpoint(next, ctx);
            }
        }
        if self.last_executed > before && self.view_timer_on {
            // Progress: the timer restarts for the requests still waiting (§4.4).
            ctx.cancel_timer(VIEW_TIMER);
            self.view_timer_on = false;
        }
        self.arm_view_timer(ctx);
    }

    /// Replies to every attempt waiting for `cmd` and forgets requests now executed.
    pub(super) fn answer(&mut self, cmd: &KvCommand, reply: KvResponse, ctx: &mut Ctx<'_, Self>) {
        if let Some(w) = self.waiting.remove(&(cmd.session, cmd.seq)) {
            for (client, request) in w.attempts {
                self.reply(client, request, reply.clone(), ctx);
            }
        }
        self.waiting
            .retain(|(session, seq), _| *session != cmd.session || *seq > cmd.seq);
    }

    /// Drops waiting requests the service has executed (after a state transfer).
    pub(super) fn forget_executed(&mut self, ctx: &mut Ctx<'_, Self>) {
        let done: Vec<((u64, u64), Option<KvResponse>)> = self
            .waiting
            .keys()
            .filter_map(|&(s, q)| match self.service.table().lookup(s, q) {
                Lookup::New => None,
                Lookup::Executed(r) => Some(((s, q), Some(r))),
                Lookup::Stale => Some(((s, q), None)),
            })
            .collect();
        for (key, reply) in done {
            if let Some(w) = self.waiting.remove(&key)
                && let Some(reply) = reply
            {
                for (client, request) in w.attempts {
                    self.reply(client, request, reply.clone(), ctx);
                }
            }
        }
        self.arm_view_timer(ctx);
    }

    /// A backup waiting for a request runs the view-change timer; it stops when nothing
    /// is waiting (§4.4).
    pub(super) fn arm_view_timer(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.status != Status::Normal || self.is_primary() {
            return;
        }
        if self.waiting.is_empty() {
            if self.view_timer_on {
                ctx.cancel_timer(VIEW_TIMER);
                self.view_timer_on = false;
            }
        } else if !self.view_timer_on {
            ctx.set_timer(VIEW_TIMER, self.view_timeout());
            self.view_timer_on = true;
        }
    }

    pub(super) fn view_timeout(&self) -> Duration {
        let shift = self.failed_view_changes.min(6);
        Duration::from_micros(self.params.view_timeout.as_micros() << shift)
    }

    /// Re-sends what a lost message would leave undone.
    fn retransmit(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.votes() && self.status == Status::Normal {
            let pending: Vec<u64> = self
                .slots
                .range(self.last_executed + 1..)
                .map(|(s, _)| *s)
                .collect();
            let now = ctx.now();
            for seq in pending {
                let Some(slot) = self.slots.get_mut(&seq) else {
                    continue;
                };
                if slot
                    .sent_at
                    .is_some_and(|at| now.saturating_since(at) < self.params.retransmit)
                {
                    continue;
                }
                slot.sent_at = Some(now);
                let slot = slot.clone();
                if self.is_primary()
                    && let Some(pp) = &slot.pre_prepare
                {
                    if self.behaviour.equivocates() {
                        self.equivocate_pre_prepare(pp, ctx);
                    } else {
                        self.multicast(&Body::PrePrepare(pp.clone()), ctx);
                    }
                }
                if let Some(p) = slot.prepares.get(&self.id) {
                    self.multicast(&Body::Prepare(p.clone()), ctx);
                }
                if let Some(c) = slot.commits.get(&self.id) {
                    self.multicast(&Body::Commit(c.clone()), ctx);
                }
            }
        }
        self.retransmit_checkpoint(ctx);
        self.retransmit_view_change(ctx);
        self.propose_waiting(ctx);
    }
}

impl Node for PbftReplica {
    type Message = Envelope;
    type Request = KvCommand;
    type Response = KvResponse;
    type Config = PbftParams;

    fn recover(id: NodeId, params: &PbftParams, disk: &Disk) -> Self {
        let (records, tail) = records::read_with_tail::<Record>(disk, STABLE_FILE);
        let fresh = records.is_empty();
        let last_stable = records
            .iter()
            .filter_map(|r| match r {
                Record::Stable { seq } => Some(*seq),
                Record::Boot => None,
            })
            .max()
            .unwrap_or(0);
        PbftReplica {
            id,
            n: 0,
            params: params.clone(),
            keys: KeyRing::new(params.key_secret, id),
            behaviour: params.byzantine.get(&id).copied().unwrap_or_default(),
            view: 0,
            status: Status::Normal,
            slots: BTreeMap::new(),
            prepared: BTreeMap::new(),
            next_seq: 0,
            waiting: BTreeMap::new(),
            last_executed: 0,
            service: KvService::default(),
            stable: 0,
            stable_proof: Vec::new(),
            checkpoints: BTreeMap::new(),
            snapshots: BTreeMap::from([(0, KvService::default())]),
            view_changes: BTreeMap::new(),
            new_view: None,
            view_timer_on: false,
            failed_view_changes: 0,
            commit_record: BTreeMap::new(),
            amnesia_until: if fresh {
                0
            } else {
                last_stable + params.log_window
            },
            vouched: BTreeSet::new(),
            helped: BTreeMap::new(),
            state_sent: BTreeMap::new(),
            fresh,
            torn_tail: tail,
            view_changes_started: 0,
            forgeries_dropped: 0,
            state_transfers: 0,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.n = ctx.node_count();
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(STABLE_FILE, len) {
                ctx.disk(op);
            }
        }
        if self.fresh {
            // The first boot marks the disk, so a restart knows it forgot its votes.
            ctx.disk(records::append(STABLE_FILE, &Record::Boot));
            ctx.disk(DiskOp::Fsync);
        } else {
            ctx.state_change(format!(
                "restarted: silent until a stable checkpoint at {}",
                self.amnesia_until
            ));
            self.ask_for_state(self.last_executed + 1, ctx);
        }
        ctx.set_timer(TICK, self.params.retransmit);
    }

    fn on_message(&mut self, _from: NodeId, env: Envelope, ctx: &mut Ctx<'_, Self>) {
        if self.behaviour.is_silent() {
            return;
        }
        // The network's `from` is not trusted: the envelope's MAC authenticates the
        // sender it claims.
        if !env.authentic(&self.keys) {
            self.forgeries_dropped += 1;
            return;
        }
        let from = env.sender;
        if !self.signature_from(from, &env.body) {
            self.forgeries_dropped += 1;
            return;
        }
        if self.behaviour.equivocates() {
            self.vouch(&env.body, ctx);
        }
        match env.body {
            Body::PrePrepare(pp) => {
                self.note_view(from, pp.value.view, ctx);
                self.on_pre_prepare(from, pp, ctx)
            }
            Body::Prepare(p) => {
                self.note_view(from, p.value.view, ctx);
                self.on_prepare(from, p, ctx)
            }
            Body::Commit(c) => {
                self.note_view(from, c.value.view, ctx);
                self.on_commit(from, c, ctx)
            }
            Body::Checkpoint(c) => self.on_checkpoint(from, c, ctx),
            Body::ViewChange(vc) => self.on_view_change(from, vc, ctx),
            Body::NewView(nv) => self.on_new_view(from, nv, ctx),
            Body::FetchState { seq } => self.on_fetch_state(from, seq, ctx),
            Body::State {
                seq,
                service,
                proof,
            } => self.on_state(seq, service, proof, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if self.behaviour.is_silent() {
            if timer == TICK {
                ctx.set_timer(TICK, self.params.retransmit);
            }
            return;
        }
        match timer {
            TICK => {
                self.retransmit(ctx);
                if self.behaviour.forges() {
                    self.forge(ctx);
                }
                ctx.set_timer(TICK, self.params.retransmit);
            }
            VIEW_TIMER => {
                self.view_timer_on = false;
                if self.status == Status::ViewChange {
                    self.failed_view_changes += 1;
                    self.start_view_change(self.view + 1, ctx);
                } else if !self.waiting.is_empty() && !self.is_primary() {
                    self.start_view_change(self.view + 1, ctx);
                }
            }
            _ => {}
        }
    }

    fn on_request(&mut self, req: ClientRequest<KvCommand>, ctx: &mut Ctx<'_, Self>) {
        if self.behaviour.is_silent() {
            return;
        }
        self.on_client_request(req, ctx);
    }

    fn message_kind(msg: &Envelope) -> &'static str {
        msg.body.kind()
    }

    fn role(&self) -> &'static str {
        if !self.behaviour.is_honest() {
            "byzantine"
        } else if self.recovering() {
            "recovering"
        } else if self.status == Status::ViewChange {
            "view-change"
        } else if self.is_primary() {
            "primary"
        } else {
            "backup"
        }
    }
}

impl Fingerprint for PbftReplica {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let PbftReplica {
            id,
            n,
            params,
            keys,
            behaviour,
            view,
            status,
            slots,
            prepared,
            next_seq,
            waiting,
            last_executed,
            service,
            stable,
            stable_proof,
            checkpoints,
            snapshots,
            view_changes,
            new_view,
            view_timer_on,
            failed_view_changes,
            commit_record,
            amnesia_until,
            vouched,
            helped,
            state_sent,
            fresh,
            torn_tail,
            view_changes_started,
            forgeries_dropped,
            state_transfers,
        } = self;
        id.hash(h);
        n.hash(h);
        params.hash(h);
        keys.hash(h);
        behaviour.hash(h);
        view.hash(h);
        status.hash(h);
        slots.hash(h);
        prepared.hash(h);
        next_seq.hash(h);
        waiting.hash(h);
        last_executed.hash(h);
        service.hash(h);
        stable.hash(h);
        stable_proof.hash(h);
        checkpoints.hash(h);
        snapshots.hash(h);
        view_changes.hash(h);
        new_view.hash(h);
        view_timer_on.hash(h);
        failed_view_changes.hash(h);
        commit_record.hash(h);
        amnesia_until.hash(h);
        vouched.hash(h);
        helped.hash(h);
        state_sent.hash(h);
        fresh.hash(h);
        torn_tail.hash(h);
        view_changes_started.hash(h);
        forgeries_dropped.hash(h);
        state_transfers.hash(h);
        h.write_u8(0);
    }
}
