//! The view change (Castro & Liskov 1999, §4.4). A backup whose timer expires while it
//! waits for a request moves to view v + 1 and multicasts ⟨VIEW-CHANGE, v+1, n, C, P,
//! i⟩: its stable checkpoint n with the proof C, and P, a prepared certificate for every
//! request prepared above n. The primary of v + 1, with 2f + 1 valid VIEW-CHANGE
//! messages (its own included), multicasts ⟨NEW-VIEW, v+1, V, O⟩: V the messages, O a
//! pre-prepare in v + 1 for every sequence number between min-s (the newest stable
//! checkpoint in V) and max-s (the highest prepared one) — the request of the
//! certificate from the highest view, or the null request where there is none. Backups
//! check O against V by computing it themselves, then prepare O's requests in v + 1.
//!
//! Liveness rules from the paper: a replica that sees f + 1 VIEW-CHANGE messages for
//! views above its own joins the smallest of them, and a view change that does not
//! complete in time moves on to the next view with twice the timeout. A replica that
//! missed a NEW-VIEW gets it from any replica it sends an old view's message to.

use std::collections::{BTreeMap, BTreeSet};

use crate::consensus::pbft::messages::{
    Body, NewView, PrePrepare, Prepared, Request, Signed, ViewChange,
};
use crate::consensus::pbft::replica::{PbftReplica, Slot, Status, VIEW_TIMER};
use crate::sim::NodeId;
use crate::sim::node::Ctx;

impl PbftReplica {
    /// Moves to view `view`, status view-change, and multicasts this replica's VIEW-CHANGE.
    pub(super) fn start_view_change(&mut self, view: u64, ctx: &mut Ctx<'_, Self>) {
        if view <= self.view {
            return;
        }
        if !self.votes() {
            return;
        }
        self.view = view;
        self.status = Status::ViewChange;
        self.view_changes_started += 1;
        self.new_view = None;
        let vc = self.sign(ViewChange {
            new_view: view,
            stable_seq: self.stable,
            checkpoint_proof: self.stable_proof.clone(),
            prepared: self.prepared.values().cloned().collect(),
            replica: self.id,
        });
        self.view_changes
            .entry(view)
            .or_default()
            .insert(self.id, vc.clone());
        self.view_changes = self.view_changes.split_off(&view);
        ctx.state_change(format!("view change to {view}"));
        self.multicast(&Body::ViewChange(vc), ctx);
        ctx.set_timer(VIEW_TIMER, self.view_timeout());
        self.view_timer_on = true;
        self.try_new_view(ctx);
    }

    pub(super) fn retransmit_view_change(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.status != Status::ViewChange {
            return;
        }
        if let Some(mine) = self
            .view_changes
            .get(&self.view)
            .and_then(|by| by.get(&self.id))
        {
            self.multicast(&Body::ViewChange(mine.clone()), ctx);
        }
    }

    /// Whether a prepared certificate is well formed: a pre-prepare signed by its
    /// view's primary and 2f matching prepares signed by distinct backups.
    pub(super) fn certificate_ok(&self, cert: &Prepared, below_view: u64) -> bool {
        let pp = &cert.pre_prepare;
        let v = &pp.value;
        if !pp.valid(&self.keys)
            || pp.signer != self.primary_of(v.view)
            || v.digest != v.request.digest()
            || v.view >= below_view
        {
            return false;
        }
        let mut signers = BTreeSet::new();
        for p in &cert.prepares {
            let ok = p.valid(&self.keys)
                && p.signer == p.value.replica
                && p.signer != pp.signer
                && p.value.view == v.view
                && p.value.seq == v.seq
                && p.value.digest == v.digest;
            if !ok {
                return false;
            }
            signers.insert(p.signer);
        }
        signers.len() >= 2 * self.f()
    }

    /// Whether a VIEW-CHANGE's checkpoint proof and certificates are valid.
    pub(super) fn view_change_ok(&self, vc: &Signed<ViewChange>) -> bool {
        let v = &vc.value;
        vc.signer == v.replica
            && vc.valid(&self.keys)
            && self
                .checkpoint_proof_digest(v.stable_seq, &v.checkpoint_proof)
                .is_some()
            && v.prepared.iter().all(|c| {
                let seq = c.pre_prepare.value.seq;
                seq > v.stable_seq
                    && seq <= v.stable_seq + self.params.log_window
                    && self.certificate_ok(c, v.new_view)
            })
    }

    pub(super) fn on_view_change(
        &mut self,
        from: NodeId,
        vc: Signed<ViewChange>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let view = vc.value.new_view;
        if vc.value.replica != from || !self.view_change_ok(&vc) {
            return;
        }
        if view < self.view || (view == self.view && self.status == Status::Normal) {
            // An old view's message: the sender missed the NEW-VIEW.
            if let Some(nv) = &self.new_view {
                self.send(from, Body::NewView(nv.clone()), ctx);
            }
            return;
        }
        self.view_changes.entry(view).or_default().insert(from, vc);
        // f + 1 replicas ask for views above ours: join the smallest.
        let mut above: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (v, by) in self.view_changes.range(self.view + 1..) {
            for r in by.keys() {
                above.entry(*r).or_insert(*v);
            }
        }
        if above.len() > self.f() {
            let smallest = above.values().copied().min().unwrap_or(view);
            self.start_view_change(smallest, ctx);
        }
        self.try_new_view(ctx);
    }

    /// The O set: what the new primary must re-issue in `view`, from the view changes V.
    pub fn compute_o(&self, view: u64, vcs: &[Signed<ViewChange>]) -> (u64, Vec<PrePrepare>) {
        let min_s = vcs.iter().map(|v| v.value.stable_seq).max().unwrap_or(0);
        let mut best: BTreeMap<u64, &Prepared> = BTreeMap::new();
        for vc in vcs {
            for cert in &vc.value.prepared {
                let seq = cert.pre_prepare.value.seq;
                if seq <= min_s {
                    continue;
                }
                let newer = best
                    .get(&seq)
                    .is_none_or(|b| b.pre_prepare.value.view < cert.pre_prepare.value.view);
                if newer {
                    best.insert(seq, cert);
                }
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(min_s);
        let o = (min_s + 1..=max_s)
            .map(|seq| {
                let request = best
                    .get(&seq)
                    .map_or(Request::Null, |c| c.pre_prepare.value.request.clone());
                PrePrepare {
                    view,
                    seq,
                    digest: request.digest(),
                    request,
                }
            })
            .collect();
        (min_s, o)
    }

    /// The new primary, with 2f + 1 view changes for its view, sends NEW-VIEW.
    fn try_new_view(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.status != Status::ViewChange
            || self.primary_of(self.view) != self.id
            || !self.votes()
        {
            return;
        }
        let Some(by) = self.view_changes.get(&self.view) else {
            return;
        };
        if by.len() < self.quorum() || !by.contains_key(&self.id) {
            return;
        }
        let vcs: Vec<Signed<ViewChange>> = by.values().take(self.quorum()).cloned().collect();
        let (_, o) = self.compute_o(self.view, &vcs);
        let pre_prepares: Vec<Signed<PrePrepare>> = o.into_iter().map(|pp| self.sign(pp)).collect();
        let nv = self.sign(NewView {
            view: self.view,
            view_changes: vcs,
            pre_prepares,
        });
        self.multicast(&Body::NewView(nv.clone()), ctx);
        self.enter_view(nv, ctx);
    }

    pub(super) fn on_new_view(
        &mut self,
        _from: NodeId,
        nv: Signed<NewView>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let view = nv.value.view;
        let primary = self.primary_of(view);
        if nv.signer != primary || !nv.valid(&self.keys) {
            return;
        }
        if view < self.view || (view == self.view && self.status == Status::Normal) {
            return;
        }
        let vcs = &nv.value.view_changes;
        let signers: BTreeSet<NodeId> = vcs.iter().map(|v| v.signer).collect();
        let valid = signers.len() >= self.quorum()
            && vcs
                .iter()
                .all(|v| v.value.new_view == view && self.view_change_ok(v));
        if !valid {
            return;
        }
        let (_, o) = self.compute_o(view, vcs);
        let issued: Vec<&PrePrepare> = nv.value.pre_prepares.iter().map(|p| &p.value).collect();
        let signed_ok = nv
            .value
            .pre_prepares
            .iter()
            .all(|p| p.signer == primary && p.valid(&self.keys));
        if !signed_ok || issued != o.iter().collect::<Vec<_>>() {
            return;
        }
        self.enter_view(nv, ctx);
    }

    /// Installs the view of `nv`: its checkpoint, O's pre-prepares, and prepares for them.
    fn enter_view(&mut self, nv: Signed<NewView>, ctx: &mut Ctx<'_, Self>) {
        let view = nv.value.view;
        let newest = nv
            .value
            .view_changes
            .iter()
            .max_by_key(|v| v.value.stable_seq)
            .map(|v| (v.value.stable_seq, v.value.checkpoint_proof.clone()));
        if let Some((seq, proof)) = newest
            && seq > self.stable
        {
            self.adopt_stable(seq, proof, ctx);
        }
        self.view = view;
        self.status = Status::Normal;
        self.failed_view_changes = 0;
        self.slots = BTreeMap::new();
        self.view_changes = self.view_changes.split_off(&(view + 1));
        self.next_seq = self.stable;
        ctx.cancel_timer(VIEW_TIMER);
        self.view_timer_on = false;
        ctx.state_change(format!("view {view}"));
        let pps = nv.value.pre_prepares.clone();
        self.new_view = Some(nv);
        for pp in pps {
            let seq = pp.value.seq;
            self.next_seq = self.next_seq.max(seq);
            if !self.in_window(seq) {
                continue;
            }
            if self.is_primary() {
                self.slots.insert(
                    seq,
                    Slot {
                        pre_prepare: Some(pp),
                        sent_at: Some(ctx.now()),
                        ..Slot::default()
                    },
                );
            } else {
                let from = pp.signer;
                self.on_pre_prepare(from, pp, ctx);
            }
        }
        self.arm_view_timer(ctx);
        self.propose_waiting(ctx);
    }
}
