//! The VR replica (Liskov & Cowling 2012, §4.1 normal operation, §5.2 state transfer):
//! its state, the normal case, and the `Node` plumbing; the view change and recovery are
//! in [`super::view_change`] and [`super::recovery`].
//!
//! Normal case. The primary of view `v` is replica `v mod n`. It appends a client's
//! request to its log (op-number + 1) and sends `Prepare` to the backups; a backup accepts
//! a `Prepare` only in op-number order (a gap means it missed one: it asks the primary
//! for the rest by state transfer) and answers `PrepareOk`. The primary commits op `k`
//! once a majority including itself has it, executes ops in order, answers the client,
//! and tells the backups its commit-number in later `Prepare`s or in `Commit` messages
//! when idle, which are also the backups' sign of life from the primary.
//!
//! Retransmission (the paper leaves it to the implementation): the primary re-sends
//! `Prepare`s a backup has not acknowledged with every heartbeat; a normal primary that
//! hears a `StartViewChange` or `DoViewChange` for its own view (a replica that missed
//! its `StartView`) answers with `StartView`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::consensus::raft::state_machine::{KvCommand, KvResponse};
use crate::consensus::vr::client_table::Lookup;
use crate::consensus::vr::messages::{Entry, LogState, Message, Status};
use crate::consensus::vr::state_machine::KvService;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The one timer: the primary's heartbeat and re-sends, a backup's check on the primary,
/// a view change's and a recovery's re-sends.
pub const TICK: TimerId = 1;
/// The file holding the only durable state: the highest view the replica took part in.
pub(super) const VIEW_FILE: &str = "vr.view";

/// Settings shared by every replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VrParams {
    /// The primary's heartbeat (`Commit`) period, and every re-send period.
    pub heartbeat: Duration,
    /// A backup that hears nothing from the primary for a time drawn from
    /// `[timeout_min, timeout_max]` starts a view change; so does a view change that
    /// has not finished in that time.
    pub timeout_min: Duration,
    pub timeout_max: Duration,
}

impl Default for VrParams {
    fn default() -> Self {
        VrParams {
            heartbeat: Duration::from_millis(25),
            timeout_min: Duration::from_millis(150),
            timeout_max: Duration::from_millis(300),
        }
    }
}

/// What the disk holds (see the module doc of [`super`] for why anything at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
pub(super) enum Record {
    View { view: u64 },
}

/// A VR replica.
#[derive(Debug, Clone)]
pub struct VrReplica {
    pub(super) id: NodeId,
    pub(super) params: VrParams,
    pub(super) status: Status,
    pub(super) view: u64,
    /// The last view in which the status was normal.
    pub(super) last_normal: u64,
    pub(super) log: Vec<Entry>,
    pub(super) commit: u64,
    /// Ops up to this one are executed on `service`.
    pub(super) executed: u64,
    pub(super) service: KvService,
    /// Acting as the primary of `view` (set only with normal status).
    pub(super) primary: bool,
    /// The primary's: the highest op each backup acknowledged in this view.
    pub(super) acked: BTreeMap<NodeId, u64>,
    /// Clients waiting for a request: (client, request number) → the simulator's ids.
    pub(super) waiting: BTreeMap<(u64, u64), (ClientId, RequestId)>,
    /// View change: who sent `StartViewChange` for `view`; the new primary's
    /// `DoViewChange`s (log and last normal view); whether ours left.
    pub(super) svc: BTreeSet<NodeId>,
    pub(super) dvc: BTreeMap<NodeId, (LogState, u64)>,
    pub(super) dvc_sent: bool,
    /// Recovery: this attempt's nonce and the answers carrying it.
    pub(super) nonce: u64,
    pub(super) responses: BTreeMap<NodeId, (u64, Option<LogState>)>,
    /// Durable: the highest view this replica took part in.
    pub(super) voted: u64,
    /// A backup or a view change gives up on the current view at this time.
    pub(super) deadline: Time,
    /// Bumped whenever the log is replaced or cut rather than appended to, so the
    /// checker re-reads it whole.
    pub(super) log_epoch: u64,
    pub(super) view_changes: u64,
    pub(super) recoveries: u64,
    /// Set by `recover` when the disk was empty: the first boot, not a restart.
    pub(super) fresh: bool,
    pub(super) torn_tail: Option<usize>,
}

impl VrReplica {
    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn view(&self) -> u64 {
        self.view
    }
    pub fn last_normal_view(&self) -> u64 {
        self.last_normal
    }
    pub fn log(&self) -> &[Entry] {
        &self.log
    }
    /// The op-number: the number of the last op in the log.
    pub fn op_number(&self) -> u64 {
        self.log.len() as u64
    }
    pub fn commit_number(&self) -> u64 {
        self.commit
    }
    pub fn executed(&self) -> u64 {
        self.executed
    }
    pub fn service(&self) -> &KvService {
        &self.service
    }
    /// Acting as primary: the primary of its view, with normal status.
    pub fn is_primary(&self) -> bool {
        self.primary && self.status == Status::Normal
    }
    pub fn voted_view(&self) -> u64 {
        self.voted
    }
    pub fn log_epoch(&self) -> u64 {
        self.log_epoch
    }
    pub fn view_changes(&self) -> u64 {
        self.view_changes
    }
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    pub(super) fn n(ctx: &Ctx<'_, Self>) -> u64 {
        u64::from(ctx.node_count().max(1))
    }
    /// A majority: f + 1 of 2f + 1 (and a majority of an even group too).
    pub(super) fn quorum(ctx: &Ctx<'_, Self>) -> usize {
        ctx.node_count() as usize / 2 + 1
    }
    pub(super) fn primary_of(view: u64, ctx: &Ctx<'_, Self>) -> NodeId {
        (view % Self::n(ctx)) as NodeId
    }
    pub(super) fn to_others(&self, msg: &Message, ctx: &mut Ctx<'_, Self>) {
        for to in 0..ctx.node_count() {
            if to != self.id {
                ctx.send(to, msg.clone());
            }
        }
    }
    pub(super) fn state(&self) -> LogState {
        LogState {
            log: self.log.clone(),
            commit: self.commit,
        }
    }

    /// Writes `view` to disk (and syncs it) before anything is sent in it.
    pub(super) fn persist_view(&mut self, view: u64, ctx: &mut Ctx<'_, Self>) {
        if view > self.voted || self.fresh {
            self.fresh = false;
            self.voted = self.voted.max(view);
            ctx.disk(records::append(VIEW_FILE, &Record::View { view }));
            ctx.disk(DiskOp::Fsync);
        }
    }

    pub(super) fn reset_deadline(&mut self, ctx: &mut Ctx<'_, Self>) {
        let (lo, hi) = (
            self.params.timeout_min.0,
            self.params.timeout_max.0.max(self.params.timeout_min.0),
        );
        self.deadline = ctx.now() + Duration(ctx.rng().range_inclusive(lo, hi));
    }

    /// Raises the commit-number to `commit` (never past the log) and executes.
    pub(super) fn commit_to(&mut self, commit: u64, ctx: &mut Ctx<'_, Self>) {
        let commit = commit.min(self.op_number());
        if commit > self.commit {
            self.commit = commit;
        }
        self.execute_committed(ctx);
    }

    /// Executes committed ops in order, answering the clients that wait here.
    pub(super) fn execute_committed(&mut self, ctx: &mut Ctx<'_, Self>) {
        while self.executed < self.commit {
            let Some(entry) = self.log.get(self.executed as usize) else {
                break;
            };
            let reply = self.service.execute(entry);
            let key = (entry.session, entry.seq);
            self.executed += 1;
            if let Some(reply) = reply
                && let Some((client, request)) = self.waiting.remove(&key)
            {
                ctx.reply(client, request, Reply::Ok(reply));
            }
        }
    }

    /// Replaces the log from op `from` on with `entries` and joins `view` as a backup
    /// with normal status (`StartView`, `NewState` into a new view). The caller checked
    /// that ops up to `from` are committed here, so only uncommitted ops are cut.
    pub(super) fn adopt(
        &mut self,
        view: u64,
        from: u64,
        entries: &[Entry],
        commit: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        self.persist_view(view, ctx);
        if self.view != view || self.status != Status::Normal {
            ctx.state_change(format!("backup in view {view}"));
        }
        self.view = view;
        self.status = Status::Normal;
        self.primary = false;
        self.last_normal = view;
        self.log.truncate(from as usize);
        self.log.extend_from_slice(entries);
        self.log_epoch += 1;
        self.svc.clear();
        self.dvc.clear();
        self.dvc_sent = false;
        self.acked.clear();
        self.reset_deadline(ctx);
        self.commit_to(commit, ctx);
        let primary = Self::primary_of(view, ctx);
        let op = self.op_number();
        ctx.send(primary, Message::PrepareOk { view, op });
    }

    /// A message from the primary of a later view (or of this view while a view change
    /// is under way here): enter that view's change status and ask its primary for the
    /// log after what is committed here.
    pub(super) fn catch_up(&mut self, view: u64, ctx: &mut Ctx<'_, Self>) {
        if view > self.view {
            self.persist_view(view, ctx);
            self.view = view;
            self.status = Status::ViewChange;
            self.primary = false;
            self.svc.clear();
            self.dvc.clear();
            self.dvc_sent = false;
            self.reset_deadline(ctx);
            ctx.state_change(format!("heard of view {view}; fetching its log"));
        }
        let primary = Self::primary_of(view, ctx);
        ctx.send(
            primary,
            Message::GetState {
                view,
                op: self.commit,
            },
        );
    }

    /// The primary's commit-number: the highest op a majority (itself included) has.
    fn try_commit(&mut self, ctx: &mut Ctx<'_, Self>) {
        let mut have: Vec<u64> = (0..ctx.node_count())
            .filter(|&i| i != self.id)
            .map(|i| self.acked.get(&i).copied().unwrap_or(0))
            .collect();
        have.push(self.op_number());
        have.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&k) = have.get(Self::quorum(ctx) - 1) {
            self.commit_to(k, ctx);
        }
    }

    fn on_request_as_primary(
        &mut self,
        cmd: KvCommand,
        who: (ClientId, RequestId),
        ctx: &mut Ctx<'_, Self>,
    ) {
        match self.service.table().lookup(cmd.session, cmd.seq) {
            Lookup::Executed(reply) => {
                ctx.reply(who.0, who.1, Reply::Ok(reply));
                return;
            }
            Lookup::Stale => {
                ctx.reply(who.0, who.1, Reply::Fail("an older request".into()));
                return;
            }
            Lookup::New => {}
        }
        self.waiting.insert((cmd.session, cmd.seq), who);
        let in_log = self
            .log
            .iter()
            .skip(self.commit as usize)
            .any(|e| (e.session, e.seq) == (cmd.session, cmd.seq));
        if in_log {
            return;
        }
        self.log.push(cmd.clone());
        let msg = Message::Prepare {
            view: self.view,
            op: self.op_number(),
            entry: cmd,
            commit: self.commit,
        };
        self.to_others(&msg, ctx);
        self.try_commit(ctx);
    }

    fn on_prepare(
        &mut self,
        from: NodeId,
        view: u64,
        op: u64,
        entry: Entry,
        commit: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status == Status::Recovering || view < self.view {
            return;
        }
        if view > self.view || self.status != Status::Normal {
            self.catch_up(view, ctx);
            return;
        }
        if self.primary || from != Self::primary_of(view, ctx) {
            return;
        }
        self.reset_deadline(ctx);
        let len = self.op_number();
        if op == len + 1 {
            self.log.push(entry);
        } else if op > len + 1 {
            ctx.send(from, Message::GetState { view, op: len });
            return;
        }
        let op = self.op_number();
        ctx.send(from, Message::PrepareOk { view, op });
        self.commit_to(commit, ctx);
    }

    fn on_commit(&mut self, from: NodeId, view: u64, commit: u64, ctx: &mut Ctx<'_, Self>) {
        if self.status == Status::Recovering || view < self.view {
            return;
        }
        if view > self.view || self.status != Status::Normal {
            self.catch_up(view, ctx);
            return;
        }
        if self.primary || from != Self::primary_of(view, ctx) {
            return;
        }
        self.reset_deadline(ctx);
        if commit > self.op_number() {
            let op = self.op_number();
            ctx.send(from, Message::GetState { view, op });
        }
        self.commit_to(commit, ctx);
    }

    fn on_get_state(&mut self, from: NodeId, view: u64, op: u64, ctx: &mut Ctx<'_, Self>) {
        if !self.is_primary() || view != self.view {
            return;
        }
        let op = op.min(self.op_number());
        let entries = self.log.get(op as usize..).unwrap_or_default().to_vec();
        ctx.send(
            from,
            Message::NewState {
                view,
                op,
                entries,
                commit: self.commit,
            },
        );
    }

    fn on_new_state(
        &mut self,
        from: NodeId,
        view: u64,
        op: u64,
        entries: Vec<Entry>,
        commit: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status == Status::Recovering
            || view < self.view
            || from != Self::primary_of(view, ctx)
            || from == self.id
        {
            return;
        }
        if view == self.view && self.status == Status::Normal {
            // Same view: this log is a prefix of the primary's; only ever extend it (an
            // old, reordered answer must not cut ops already acknowledged).
            let len = self.op_number();
            let end = op + entries.len() as u64;
            if op <= len && end > len {
                let skip = (len - op) as usize;
                self.log
                    .extend_from_slice(entries.get(skip..).unwrap_or_default());
            }
            self.reset_deadline(ctx);
            let op = self.op_number();
            ctx.send(from, Message::PrepareOk { view, op });
            self.commit_to(commit, ctx);
        } else if op <= self.commit {
            self.adopt(view, op, &entries, commit, ctx);
        } else {
            ctx.send(
                from,
                Message::GetState {
                    view,
                    op: self.commit,
                },
            );
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(TICK, self.params.heartbeat);
        match self.status {
            Status::Normal if self.primary => {
                let view = self.view;
                self.to_others(
                    &Message::Commit {
                        view,
                        commit: self.commit,
                    },
                    ctx,
                );
                for to in 0..ctx.node_count() {
                    if to == self.id {
                        continue;
                    }
                    let from = self.acked.get(&to).copied().unwrap_or(0).max(self.commit);
                    let upto = self.op_number().min(from + 8);
                    for op in from + 1..=upto {
                        if let Some(entry) = self.log.get(op as usize - 1) {
                            let msg = Message::Prepare {
                                view,
                                op,
                                entry: entry.clone(),
                                commit: self.commit,
                            };
                            ctx.send(to, msg);
                        }
                    }
                }
            }
            Status::Normal => {
                if ctx.now() >= self.deadline {
                    ctx.state_change(format!("no word from primary of view {}", self.view));
                    self.start_view_change(self.view + 1, ctx);
                }
            }
            Status::ViewChange => {
                if ctx.now() >= self.deadline {
                    self.start_view_change(self.view + 1, ctx);
                } else {
                    self.resend_view_change(ctx);
                }
            }
            Status::Recovering => {
                let nonce = self.nonce;
                self.to_others(&Message::Recovery { nonce }, ctx);
            }
        }
    }
}

impl Node for VrReplica {
    type Message = Message;
    type Request = KvCommand;
    type Response = KvResponse;
    type Config = VrParams;

    /// In-memory VR: nothing but the highest view comes back from the disk. An empty disk
    /// is a first boot (normal status in view 0); anything else is a restart, which
    /// recovers by the recovery protocol.
    fn recover(id: NodeId, params: &VrParams, disk: &Disk) -> Self {
        let (records, tail) = records::read_with_tail::<Record>(disk, VIEW_FILE);
        let voted = records
            .iter()
            .map(|Record::View { view }| *view)
            .max()
            .unwrap_or(0);
        let fresh = records.is_empty();
        VrReplica {
            id,
            params: params.clone(),
            status: if fresh {
                Status::Normal
            } else {
                Status::Recovering
            },
            view: voted,
            last_normal: 0,
            log: Vec::new(),
            commit: 0,
            executed: 0,
            service: KvService::default(),
            primary: false,
            acked: BTreeMap::new(),
            waiting: BTreeMap::new(),
            svc: BTreeSet::new(),
            dvc: BTreeMap::new(),
            dvc_sent: false,
            nonce: 0,
            responses: BTreeMap::new(),
            voted,
            deadline: Time::ZERO,
            log_epoch: 0,
            view_changes: 0,
            recoveries: 0,
            fresh,
            torn_tail: tail,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(VIEW_FILE, len) {
                ctx.disk(op);
            }
        }
        if self.fresh {
            // The first boot's record marks the disk, so a restart knows to recover.
            self.persist_view(0, ctx);
            self.primary = Self::primary_of(0, ctx) == self.id;
            self.reset_deadline(ctx);
        } else {
            self.start_recovery(ctx);
        }
        ctx.set_timer(TICK, self.params.heartbeat);
    }

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut Ctx<'_, Self>) {
        match msg {
            Message::Prepare {
                view,
                op,
                entry,
                commit,
            } => self.on_prepare(from, view, op, entry, commit, ctx),
            Message::PrepareOk { view, op } => {
                if self.is_primary() && view == self.view {
                    let op = op.min(self.op_number());
                    let a = self.acked.entry(from).or_insert(0);
                    *a = (*a).max(op);
                    self.try_commit(ctx);
                }
            }
            Message::Commit { view, commit } => self.on_commit(from, view, commit, ctx),
            Message::StartViewChange { view } => self.on_start_view_change(from, view, ctx),
            Message::DoViewChange {
                view,
                state,
                last_normal,
            } => self.on_do_view_change(from, view, state, last_normal, ctx),
            Message::StartView { view, state } => self.on_start_view(from, view, state, ctx),
            Message::Recovery { nonce } => self.on_recovery(from, nonce, ctx),
            Message::RecoveryResponse { view, nonce, state } => {
                self.on_recovery_response(from, view, nonce, state, ctx)
            }
            Message::GetState { view, op } => self.on_get_state(from, view, op, ctx),
            Message::NewState {
                view,
                op,
                entries,
                commit,
            } => self.on_new_state(from, view, op, entries, commit, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if timer == TICK {
            self.on_tick(ctx);
        }
    }

    fn on_request(&mut self, request: ClientRequest<KvCommand>, ctx: &mut Ctx<'_, Self>) {
        if !self.is_primary() {
            let primary = Self::primary_of(self.view, ctx);
            let why = match self.status {
                Status::Recovering => "recovering".to_string(),
                Status::ViewChange => format!("view change to {}; try {primary}", self.view),
                Status::Normal => format!("not the primary; try {primary}"),
            };
            ctx.reply(request.client, request.id, Reply::Fail(why));
            return;
        }
        self.on_request_as_primary(request.body, (request.client, request.id), ctx);
    }

    fn message_kind(msg: &Message) -> &'static str {
        msg.kind()
    }

    fn role(&self) -> &'static str {
        match self.status {
            Status::Normal if self.primary => "primary",
            Status::Normal => "backup",
            Status::ViewChange => "view-change",
            Status::Recovering => "recovering",
        }
    }
}

/// Every field: settings, status, view numbers, log and commit, the executed prefix and
/// the service, the primary's acknowledgements and waiting clients, the view change's
/// and recovery's collected messages, the durable view, the deadline, the counters
/// (observers read them), the first-boot flag and the torn tail still to cut.
impl Fingerprint for VrReplica {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let VrReplica {
            id,
            params,
            status,
            view,
            last_normal,
            log,
            commit,
            executed,
            service,
            primary,
            acked,
            waiting,
            svc,
            dvc,
            dvc_sent,
            nonce,
            responses,
            voted,
            deadline,
            log_epoch,
            view_changes,
            recoveries,
            fresh,
            torn_tail,
        } = self;
        id.hash(h);
        params.hash(h);
        status.hash(h);
        view.hash(h);
        last_normal.hash(h);
        log.hash(h);
        commit.hash(h);
        executed.hash(h);
        service.hash(h);
        primary.hash(h);
        acked.hash(h);
        waiting.hash(h);
        svc.hash(h);
        dvc.hash(h);
        dvc_sent.hash(h);
        nonce.hash(h);
        responses.hash(h);
        voted.hash(h);
        deadline.hash(h);
        log_epoch.hash(h);
        view_changes.hash(h);
        recoveries.hash(h);
        fresh.hash(h);
        torn_tail.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::KvOp;
    use crate::consensus::vr::manual::ManualCluster;

    pub(crate) fn put(client: u64, request: u64, value: &str) -> Entry {
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
    fn a_request_commits_on_a_majority_and_a_duplicate_is_answered_from_the_table() {
        let mut c = ManualCluster::new(3, VrParams::default(), 1);
        assert!(c.node(0).unwrap().is_primary());
        // Node 2 hears nothing: node 1's PrepareOk and the primary make a majority.
        let id = c.request(0, put(7, 1, "a"));
        c.deliver(|q| q.to != 2 && q.from != 2);
        assert!(c.replies().contains(&(0, id, Reply::Ok(KvResponse::Ok))));
        assert_eq!(c.node(0).unwrap().commit_number(), 1);
        assert_eq!(
            c.node(1).unwrap().commit_number(),
            0,
            "hears it with the next message"
        );
        c.tick(0);
        c.deliver(|q| q.to != 2 && q.from != 2);
        assert_eq!(c.node(1).unwrap().commit_number(), 1);
        // Node 2 catches up from the heartbeat and the re-sent Prepare.
        c.tick(0);
        c.deliver(|_| true);
        assert_eq!(c.node(2).unwrap().log(), &[put(7, 1, "a")]);
        assert_eq!(c.node(2).unwrap().commit_number(), 1);
        // The same request again: the client table answers, nothing is appended.
        let again = c.request(0, put(7, 1, "a"));
        assert!(c.replies().contains(&(0, again, Reply::Ok(KvResponse::Ok))));
        assert_eq!(c.node(0).unwrap().op_number(), 1);
        // A backup sends the client to the primary.
        let elsewhere = c.request(1, put(7, 2, "b"));
        let hint = c
            .replies()
            .iter()
            .find(|r| r.1 == elsewhere)
            .map(|r| r.2.clone());
        assert_eq!(hint, Some(Reply::Fail("not the primary; try 0".into())));
        assert!(c.violation().is_none());
    }

    #[test]
    fn a_backup_that_missed_a_prepare_fetches_the_rest_by_state_transfer() {
        let mut c = ManualCluster::new(3, VrParams::default(), 2);
        c.request(0, put(1, 1, "a"));
        assert_eq!(c.drop_where(|q| q.to == 2), 1);
        c.request(0, put(2, 1, "b"));
        // Op 2 arrives with a gap before it: node 2 asks the primary (GetState).
        c.deliver(|_| true);
        let two = c.node(2).unwrap();
        assert_eq!(two.log(), &[put(1, 1, "a"), put(2, 1, "b")]);
        assert!(c.violation().is_none());
    }
}
