//! Recovery (Liskov & Cowling 2012, §4.3). A restarted replica has lost its log: it sets
//! status recovering, draws a fresh nonce and sends `Recovery` to all. A replica with
//! normal status answers with its view and the nonce, and the primary adds its log and
//! commit-number. With f + 1 answers carrying the nonce, one of them from the primary of
//! the latest view among them, the replica takes that primary's log, executes what is
//! committed (rebuilding the key-value store and the client table), and is a backup
//! with normal status again. Until then it takes no part: no `PrepareOk`, no view change.
//!
//! The nonce makes answers to an earlier recovery (delayed, duplicated) worthless to
//! this one. The durable view (see the module doc of [`super`]) makes answers from a view
//! older than one this replica took part in worthless too.

use crate::consensus::vr::messages::{LogState, Message, Status};
use crate::consensus::vr::replica::VrReplica;
use crate::consensus::vr::state_machine::KvService;
use crate::sim::node::{Ctx, NodeId};

impl VrReplica {
    pub(super) fn start_recovery(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.status = Status::Recovering;
        self.primary = false;
        self.nonce = ctx.rng().next_u64();
        self.responses.clear();
        ctx.state_change("recovering");
        let nonce = self.nonce;
        self.to_others(&Message::Recovery { nonce }, ctx);
    }

    pub(super) fn on_recovery(&mut self, from: NodeId, nonce: u64, ctx: &mut Ctx<'_, Self>) {
        if self.status != Status::Normal || from == self.id {
            return;
        }
        let state = self.is_primary().then(|| self.state());
        ctx.send(
            from,
            Message::RecoveryResponse {
                view: self.view,
                nonce,
                state,
            },
        );
    }

    pub(super) fn on_recovery_response(
        &mut self,
        from: NodeId,
        view: u64,
        nonce: u64,
        state: Option<LogState>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if self.status != Status::Recovering
            || nonce != self.nonce
            || view < self.voted
            || from == self.id
        {
            return;
        }
        if self.responses.get(&from).is_none_or(|(v, _)| view >= *v) {
            self.responses.insert(from, (view, state));
        }
        if self.responses.len() < Self::quorum(ctx) {
            return;
        }
        let Some(latest) = self.responses.values().map(|(v, _)| *v).max() else {
            return;
        };
        let primary = Self::primary_of(latest, ctx);
        let Some((_, Some(state))) = self
            .responses
            .get(&primary)
            .filter(|(v, _)| *v == latest)
            .cloned()
        else {
            return;
        };
        self.persist_view(latest, ctx);
        self.view = latest;
        self.status = Status::Normal;
        self.primary = false;
        self.last_normal = latest;
        self.log = state.log;
        self.log_epoch += 1;
        self.commit = 0;
        self.executed = 0;
        self.service = KvService::default();
        self.responses.clear();
        self.recoveries += 1;
        self.reset_deadline(ctx);
        ctx.state_change(format!("recovered into view {latest}"));
        self.commit_to(state.commit, ctx);
        let op = self.op_number();
        ctx.send(primary, Message::PrepareOk { view: latest, op });
    }
}

#[cfg(test)]
mod tests {
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};
    use crate::consensus::vr::manual::ManualCluster;
    use crate::consensus::vr::{Message, Status, VrParams};

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
    fn a_restarted_backup_recovers_the_log_from_the_primary_and_ignores_stale_nonces() {
        let mut c = ManualCluster::new(3, VrParams::default(), 4);
        c.request(0, put(1, "a"));
        c.deliver(|_| true);
        c.tick(0);
        c.deliver(|_| true);
        assert_eq!(c.node(2).unwrap().commit_number(), 1);
        c.crash(2).unwrap();
        c.restart(2).unwrap();
        let r = c.node(2).unwrap();
        assert_eq!(r.status(), Status::Recovering);
        assert!(r.log().is_empty(), "in memory: the log is gone");
        // An answer with another nonce (to some earlier recovery) changes nothing, even
        // from the primary and with a whole log.
        let stale = r.nonce().wrapping_add(1);
        for from in [0, 1] {
            let state = c.node(0).map(|p| crate::consensus::vr::LogState {
                log: p.log().to_vec(),
                commit: p.commit_number(),
            });
            let msg = Message::RecoveryResponse {
                view: 0,
                nonce: stale,
                state: if from == 0 { state } else { None },
            };
            c.inject(from, 2, msg);
        }
        let delivered = c.deliver(
            |q| matches!(q.msg, Message::RecoveryResponse { nonce, .. } if nonce == stale),
        );
        assert_eq!(delivered, 2);
        assert_eq!(c.node(2).unwrap().status(), Status::Recovering);
        // The real answers: f + 1 = 2, one from the primary of view 0.
        c.deliver(|_| true);
        let r = c.node(2).unwrap();
        assert_eq!((r.status(), r.view()), (Status::Normal, 0));
        assert_eq!(r.log(), &[put(1, "a")]);
        assert_eq!(r.executed(), 1, "the store and client table are rebuilt");
        assert!(c.violation().is_none());
    }
}
