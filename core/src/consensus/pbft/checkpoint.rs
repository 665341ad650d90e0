//! Checkpoints, watermarks, garbage collection and state transfer (Castro & Liskov 1999,
//! §4.3). After executing a sequence number that is a multiple of K a replica multicasts
//! ⟨CHECKPOINT, n, d, i⟩ with the digest of its state; 2f + 1 matching ones from distinct
//! replicas are a proof that the checkpoint is stable. The replica then discards every
//! pre-prepare, prepare, commit and checkpoint at or below n, and moves its watermarks:
//! h = n, H = h + L. A replica whose stable checkpoint is ahead of what it executed (it
//! was partitioned, or restarted) fetches the state from a replica that signed the proof
//! and checks it against the proof's digest, so a liar cannot hand it a false state.

use std::collections::BTreeMap;

use crate::consensus::pbft::auth::digest;
use crate::consensus::pbft::messages::{Body, Checkpoint, Signed};
use crate::consensus::pbft::replica::{PbftReplica, Record, STABLE_FILE};
use crate::consensus::vr::state_machine::KvService;
use crate::sim::NodeId;
use crate::sim::disk::DiskOp;
use crate::sim::node::Ctx;
use crate::sim::records;

impl PbftReplica {
    /// Records the state after executing `seq` and multicasts this replica's CHECKPOINT.
    pub(super) fn take_checkpoint(&mut self, seq: u64, ctx: &mut Ctx<'_, Self>) {
        let state_digest = digest(&self.service);
        self.snapshots.insert(seq, self.service.clone());
        let mine = self.sign(Checkpoint {
            seq,
            state_digest,
            replica: self.id,
        });
        self.checkpoints
            .entry(seq)
            .or_default()
            .insert(self.id, mine.clone());
        self.multicast(&Body::Checkpoint(mine), ctx);
        self.try_stable(seq, ctx);
    }

    /// Re-sends this replica's newest checkpoint above h, so a lost one does not keep
    /// the checkpoint from becoming stable.
    pub(super) fn retransmit_checkpoint(&mut self, ctx: &mut Ctx<'_, Self>) {
        let newest = self
            .checkpoints
            .iter()
            .rev()
            .find_map(|(_, by)| by.get(&self.id).cloned());
        if let Some(mine) = newest {
            self.multicast(&Body::Checkpoint(mine), ctx);
        }
        if self.last_executed < self.stable {
            self.ask_for_state(self.stable, ctx);
        } else if self.recovering() {
            self.ask_for_state(self.last_executed + 1, ctx);
        }
    }

    pub(super) fn on_checkpoint(
        &mut self,
        from: NodeId,
        c: Signed<Checkpoint>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if c.value.replica != from {
            return;
        }
        let seq = c.value.seq;
        if seq <= self.stable {
            // The sender is behind this replica's stable checkpoint.
            if seq < self.stable {
                self.send_state(from, ctx);
            }
            return;
        }
        self.checkpoints.entry(seq).or_default().insert(from, c);
        self.try_stable(seq, ctx);
    }

    /// Makes the checkpoint at `seq` stable once 2f + 1 replicas agree on its digest.
    fn try_stable(&mut self, seq: u64, ctx: &mut Ctx<'_, Self>) {
        if seq <= self.stable {
            return;
        }
        let Some(by) = self.checkpoints.get(&seq) else {
            return;
        };
        let mut tally: BTreeMap<u64, Vec<Signed<Checkpoint>>> = BTreeMap::new();
        for c in by.values() {
            tally
                .entry(c.value.state_digest)
                .or_default()
                .push(c.clone());
        }
        let q = self.quorum();
        let Some(proof) = tally.into_values().find(|v| v.len() >= q) else {
            return;
        };
        let proof: Vec<Signed<Checkpoint>> = proof.into_iter().take(q).collect();
        self.adopt_stable(seq, proof, ctx);
    }

    /// Whether `proof` is 2f + 1 valid checkpoints from distinct replicas for `seq` with
    /// one digest; that digest.
    pub(super) fn checkpoint_proof_digest(
        &self,
        seq: u64,
        proof: &[Signed<Checkpoint>],
    ) -> Option<u64> {
        if seq == 0 {
            return Some(digest(&KvService::default()));
        }
        let first = proof.first()?;
        let d = first.value.state_digest;
        let mut signers = std::collections::BTreeSet::new();
        for c in proof {
            if !c.valid(&self.keys)
                || c.value.seq != seq
                || c.value.state_digest != d
                || c.value.replica != c.signer
            {
                return None;
            }
            signers.insert(c.signer);
        }
        (signers.len() >= self.quorum()).then_some(d)
    }

    /// Moves h to `seq` (proved by `proof`), garbage-collects below it, and fetches the
    /// state if this replica has not executed that far.
    pub(super) fn adopt_stable(
        &mut self,
        seq: u64,
        proof: Vec<Signed<Checkpoint>>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if seq <= self.stable {
            return;
        }
        // The disk first: a crash after this event must know h moved (see the replica).
        ctx.disk(records::append(STABLE_FILE, &Record::Stable { seq }));
        ctx.disk(DiskOp::Fsync);
        self.stable = seq;
        self.stable_proof = proof;
        self.slots = self.slots.split_off(&(seq + 1));
        self.prepared = self.prepared.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
        self.snapshots = self.snapshots.split_off(&seq);
        self.helped = self.helped.split_off(&(seq + 1, 0));
        if self.last_executed < seq {
            self.ask_for_state(seq, ctx);
        }
        if self.next_seq < seq {
            self.next_seq = seq;
        }
        ctx.state_change(format!("stable checkpoint {seq}"));
        self.propose_waiting(ctx);
    }

    /// Asks the replicas for the state at `seq` or later.
    pub(super) fn ask_for_state(&self, seq: u64, ctx: &mut Ctx<'_, Self>) {
        self.multicast(&Body::FetchState { seq }, ctx);
    }

    /// Sends the state at h, with its proof, to a replica that is behind it.
    pub(super) fn send_state(&self, to: NodeId, ctx: &mut Ctx<'_, Self>) {
        if self.stable > 0
            && self.last_executed >= self.stable
            && let Some(service) = self.snapshots.get(&self.stable)
        {
            let body = Body::State {
                seq: self.stable,
                service: service.clone(),
                proof: self.stable_proof.clone(),
            };
            self.send(to, body, ctx);
        }
    }

    pub(super) fn on_fetch_state(&mut self, from: NodeId, seq: u64, ctx: &mut Ctx<'_, Self>) {
        if self.stable >= seq {
            self.send_state(from, ctx);
        }
        // A lagging replica also needs the view it missed.
        if let Some(nv) = &self.new_view {
            self.send(from, Body::NewView(nv.clone()), ctx);
        }
    }

    pub(super) fn on_state(
        &mut self,
        seq: u64,
        service: KvService,
        proof: Vec<Signed<Checkpoint>>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        if seq <= self.last_executed {
            return;
        }
        let Some(d) = self.checkpoint_proof_digest(seq, &proof) else {
            return;
        };
        if d != digest(&service) {
            return;
        }
        self.service = service.clone();
        self.last_executed = seq;
        self.snapshots.insert(seq, service);
        self.state_transfers += 1;
        ctx.state_change(format!("state transfer to {seq}"));
        if seq > self.stable {
            self.adopt_stable(seq, proof, ctx);
        }
        self.forget_executed(ctx);
        self.execute_committed(ctx);
    }
}
