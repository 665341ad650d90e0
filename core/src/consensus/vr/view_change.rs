//! The view change (Liskov & Cowling 2012, §4.2). A replica that suspects the primary (or
//! hears of a later view) advances its view, sets status view-change and sends
//! `StartViewChange` to all; once it has `StartViewChange` for that view from f others it
//! sends `DoViewChange` — its log, its last normal view, its op- and commit-numbers — to
//! the new primary (`view mod n`). The new primary, with f + 1 `DoViewChange`s including
//! its own, takes the log of the one with the largest (last normal view, op-number), the
//! largest commit-number, sets status normal, executes what is committed and sends
//! `StartView`; a backup adopts that log and acknowledges the ops past the commit-number
//! with `PrepareOk`.
//!
//! A view change that does not finish in time moves on to the next view, as in the
//! paper: so a view change can start during another one (the named regression).

use crate::consensus::vr::messages::{LogState, Message, Status};
use crate::consensus::vr::replica::VrReplica;
use crate::sim::node::{Ctx, NodeId};

impl VrReplica {
    /// Moves to view-change status for `view` (the view is durable first: see the module
    /// doc of [`super`]) and tells everyone.
    pub(super) fn start_view_change(&mut self, view: u64, ctx: &mut Ctx<'_, Self>) {
        self.persist_view(view, ctx);
        self.view = view;
        self.status = Status::ViewChange;
        self.primary = false;
        self.svc.clear();
        self.dvc.clear();
        self.dvc_sent = false;
        self.acked.clear();
        self.view_changes += 1;
        self.reset_deadline(ctx);
        ctx.state_change(format!("view change to view {view}"));
        self.to_others(&Message::StartViewChange { view }, ctx);
        self.maybe_do_view_change(ctx);
    }

    /// Re-sends this replica's part of the view change under way, and asks the view's
    /// primary for its log in case the view already started without us.
    pub(super) fn resend_view_change(&mut self, ctx: &mut Ctx<'_, Self>) {
        let view = self.view;
        self.to_others(&Message::StartViewChange { view }, ctx);
        let primary = Self::primary_of(view, ctx);
        if primary != self.id {
            if self.dvc_sent {
                ctx.send(primary, self.do_view_change());
            }
            ctx.send(
                primary,
                Message::GetState {
                    view,
                    op: self.commit,
                },
            );
        }
    }

    fn do_view_change(&self) -> Message {
        Message::DoViewChange {
            view: self.view,
            state: self.state(),
            last_normal: self.last_normal,
        }
    }

    fn maybe_do_view_change(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.dvc_sent || self.svc.len() + 1 < Self::quorum(ctx) {
            return;
        }
        self.dvc_sent = true;
        let primary = Self::primary_of(self.view, ctx);
        if primary == self.id {
            let (state, last_normal) = (self.state(), self.last_normal);
            self.dvc.insert(self.id, (state, last_normal));
            self.maybe_start_view(ctx);
        } else {
            ctx.send(primary, self.do_view_change());
        }
    }

    /// A normal primary answers a replica still changing to its view with `StartView`.
    fn answer_with_start_view(&self, to: NodeId, view: u64, ctx: &mut Ctx<'_, Self>) {
        if self.is_primary() && view == self.view {
            ctx.send(
                to,
                Message::StartView {
                    view,
                    state: self.state(),
                },
            );
        }
    }

    pub(super) fn on_start_view_change(
        &mut self,
        from: NodeId,
        view: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status == Status::Recovering || view < self.view {
            return;
        }
        if view > self.view {
            self.start_view_change(view, ctx);
        }
        if self.status == Status::ViewChange {
            self.svc.insert(from);
            self.maybe_do_view_change(ctx);
        } else {
            self.answer_with_start_view(from, view, ctx);
        }
    }

    pub(super) fn on_do_view_change(
        &mut self,
        from: NodeId,
        view: u64,
        state: LogState,
        last_normal: u64,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status == Status::Recovering || view < self.view {
            return;
        }
        if view > self.view {
            self.start_view_change(view, ctx);
        }
        if self.status != Status::ViewChange {
            self.answer_with_start_view(from, view, ctx);
            return;
        }
        if Self::primary_of(view, ctx) != self.id {
            return;
        }
        self.dvc.insert(from, (state, last_normal));
        self.maybe_start_view(ctx);
    }

    /// The new primary, with f + 1 `DoViewChange`s including its own, starts the view.
    fn maybe_start_view(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.dvc.len() < Self::quorum(ctx) || !self.dvc.contains_key(&self.id) {
            return;
        }
        let dvc = std::mem::take(&mut self.dvc);
        let commit = dvc
            .values()
            .map(|(s, _)| s.commit)
            .max()
            .unwrap_or(0)
            .max(self.commit);
        let Some((best, _)) = dvc
            .into_values()
            .max_by_key(|(s, last_normal)| (*last_normal, s.log.len()))
        else {
            return;
        };
        let view = self.view;
        self.log = best.log;
        self.log_epoch += 1;
        self.status = Status::Normal;
        self.primary = true;
        self.last_normal = view;
        self.svc.clear();
        self.dvc_sent = false;
        self.acked.clear();
        ctx.state_change(format!("primary of view {view}"));
        self.commit_to(commit, ctx);
        let msg = Message::StartView {
            view,
            state: self.state(),
        };
        self.to_others(&msg, ctx);
    }

    pub(super) fn on_start_view(
        &mut self,
        from: NodeId,
        view: u64,
        state: LogState,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status == Status::Recovering
            || view < self.view
            || (view == self.view && self.status == Status::Normal)
            || from != Self::primary_of(view, ctx)
            || from == self.id
        {
            return;
        }
        // The new log holds every op committed anywhere, so cutting from the
        // commit-number here cuts only ops not committed.
        let keep = self.commit.min(state.log.len() as u64);
        let tail = state.log.get(keep as usize..).unwrap_or_default().to_vec();
        self.adopt(view, keep, &tail, state.commit, ctx);
    }
}

#[cfg(test)]
mod tests {
    use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
    use crate::consensus::vr::manual::ManualCluster;
    use crate::consensus::vr::{Status, VrParams};
    use crate::sim::node::Reply;
    use crate::time::Duration;

    fn put(client: u64, value: &str) -> KvCommand {
        KvCommand {
            session: client,
            seq: 1,
            op: KvOp::Put {
                key: "k".into(),
                value: value.into(),
            },
        }
    }

    #[test]
    fn the_new_primary_takes_the_largest_log_and_keeps_what_was_committed() {
        let mut c = ManualCluster::new(3, VrParams::default(), 3);
        // Op 1 commits with node 1's PrepareOk; node 2 never hears of it.
        c.request(0, put(1, "a"));
        c.deliver(|q| q.to != 2);
        c.drop_where(|_| true);
        c.crash(0).unwrap();
        c.advance(Duration::from_millis(400));
        // Node 2 suspects the primary first; node 1 (primary of view 1) has the op.
        c.tick(2);
        assert_eq!(c.node(2).unwrap().status(), Status::ViewChange);
        c.deliver(|_| true);
        let one = c.node(1).unwrap();
        assert!(one.is_primary() && one.view() == 1);
        assert_eq!(one.log(), &[put(1, "a")]);
        let two = c.node(2).unwrap();
        assert_eq!((two.status(), two.view()), (Status::Normal, 1));
        assert_eq!(two.log(), &[put(1, "a")]);
        let id = c.request(1, put(2, "b"));
        c.deliver(|_| true);
        assert!(c.replies().contains(&(0, id, Reply::Ok(KvResponse::Ok))));
        assert!(c.violation().is_none());
    }
}
