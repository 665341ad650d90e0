//! Byzantine replicas (Castro & Liskov 1999, §3: "faulty nodes may behave arbitrarily",
//! bounded only by what they cannot forge). A replica's behaviour is chosen in the
//! config, or changed at run time by the lab:
//!
//! - [`Behaviour::Silent`]: sends nothing, answers nobody (a crash the others cannot
//!   tell from slowness).
//! - [`Behaviour::Equivocate`]: as primary it sends conflicting pre-prepares for one
//!   sequence number — the request to the even-numbered backups, the null request to the
//!   odd ones; as any replica it vouches, with a PREPARE and a COMMIT, for every digest it
//!   sees at a sequence number, so each correct replica finds support for whatever it was
//!   told (conflicting prepares and commits); and it lies in its replies to clients. With
//!   f liars the 2f + 1 quorums still intersect in a correct replica, so correct replicas
//!   never commit different requests; with f + 1 they do.
//! - [`Behaviour::Forge`]: honest otherwise, but every tick sends COMMITs claiming to come
//!   from other replicas. It has no key of theirs, so the MACs (and signatures) fail and
//!   the receivers drop them (counted as forgeries dropped).
//!
//! Liars use only their own keys: all the model's lying goes through [`super::auth`]'s
//! key ring for the liar's own id.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::consensus::pbft::auth::{KeyRing, digest};
use crate::consensus::pbft::messages::{Body, Envelope, PrePrepare, Request, Signed, Vote};
use crate::consensus::pbft::replica::PbftReplica;
use crate::sim::NodeId;
use crate::sim::node::Ctx;

/// How a replica behaves.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Behaviour {
    #[default]
    Honest,
    Silent,
    Equivocate,
    Forge,
}

impl Behaviour {
    pub fn is_honest(self) -> bool {
        self == Behaviour::Honest
    }
    pub fn is_silent(self) -> bool {
        self == Behaviour::Silent
    }
    pub fn equivocates(self) -> bool {
        self == Behaviour::Equivocate
    }
    pub fn forges(self) -> bool {
        self == Behaviour::Forge
    }
    pub fn lies_to_clients(self) -> bool {
        self == Behaviour::Equivocate
    }
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Silent => "silent",
            Behaviour::Equivocate => "equivocate",
            Behaviour::Forge => "forge",
        }
    }
}

impl PbftReplica {
    /// Whether a signed body is signed by the sender it arrives from (a replica may only
    /// speak for itself; certificates inside are checked where they are used).
    pub(super) fn signature_from(&self, from: NodeId, body: &Body) -> bool {
        let keys = &self.keys;
        match body {
            Body::PrePrepare(s) => s.signer == from && s.valid(keys),
            Body::Prepare(s) | Body::Commit(s) => s.signer == from && s.valid(keys),
            Body::Checkpoint(s) => s.signer == from && s.valid(keys),
            Body::ViewChange(s) => s.signer == from && s.valid(keys),
            // Any replica may pass a NEW-VIEW on: it is the primary's, checked on use.
            Body::NewView(s) => s.valid(keys),
            Body::FetchState { .. } | Body::State { .. } => true,
        }
    }

    /// A message of an older view: its sender missed a NEW-VIEW, which any replica in
    /// the view can pass on (it is signed by the primary and carries its proof).
    pub(super) fn note_view(&mut self, from: NodeId, view: u64, ctx: &mut Ctx<'_, Self>) {
        if view < self.view
            && self.status == crate::consensus::pbft::replica::Status::Normal
            && let Some(nv) = &self.new_view
        {
            self.send(from, Body::NewView(nv.clone()), ctx);
        }
    }

    /// The equivocating primary's split: the request to even backups, null to odd ones.
    pub(super) fn equivocate_pre_prepare(
        &mut self,
        pp: &Signed<PrePrepare>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let null = Request::Null;
        let other = self.sign(PrePrepare {
            digest: null.digest(),
            request: null,
            ..pp.value.clone()
        });
        for to in 0..self.n {
            let body = if to % 2 == 0 {
                Body::PrePrepare(pp.clone())
            } else {
                Body::PrePrepare(other.clone())
            };
            self.send(to, body, ctx);
        }
    }

    /// A liar vouches for every digest it hears of at a sequence number.
    pub(super) fn vouch(&mut self, body: &Body, ctx: &mut Ctx<'_, Self>) {
        let (view, seq, d) = match body {
            Body::PrePrepare(s) => (s.value.view, s.value.seq, s.value.digest),
            Body::Prepare(s) | Body::Commit(s) => (s.value.view, s.value.seq, s.value.digest),
            _ => return,
        };
        if !self.vouched.insert((view, seq, d)) {
            return;
        }
        let vote = self.sign(Vote {
            view,
            seq,
            digest: d,
            replica: self.id,
        });
        if self.primary_of(view) != self.id {
            self.multicast(&Body::Prepare(vote.clone()), ctx);
        }
        self.multicast(&Body::Commit(vote), ctx);
    }

    /// A forger's attempt: COMMITs in other replicas' names, MAC'd and signed with the
    /// only keys it has, its own.
    pub(super) fn forge(&mut self, ctx: &mut Ctx<'_, Self>) {
        let seq = self.last_executed + 1;
        for victim in (0..self.n).filter(|&v| v != self.id) {
            let vote = Vote {
                view: self.view,
                seq,
                digest: digest(&("forged", seq)),
                replica: victim,
            };
            let signed = Signed {
                value: vote,
                signer: victim,
                sig: self.keys.sign(digest(&vote)),
            };
            let body = Body::Commit(signed);
            for to in (0..self.n).filter(|&t| t != self.id && t != victim) {
                ctx.send(to, forged_envelope(&self.keys, victim, to, body.clone()));
            }
        }
    }
}

/// An envelope claiming `claimed` as its sender, MAC'd with the forger's own pair key.
pub fn forged_envelope(keys: &KeyRing, claimed: NodeId, to: NodeId, body: Body) -> Envelope {
    let mut env = Envelope::seal(keys, to, body);
    env.sender = claimed;
    env
}
