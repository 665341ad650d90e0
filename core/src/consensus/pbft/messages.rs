//! What PBFT replicas say to each other (Castro & Liskov 1999, §4): the normal case's
//! PRE-PREPARE / PREPARE / COMMIT (§4.2), CHECKPOINT (§4.3), VIEW-CHANGE and NEW-VIEW
//! (§4.4), and a state-transfer pair (FETCH-STATE / STATE) for a replica that fell behind
//! the stable checkpoint. Every protocol message is [`Signed`] by its sender, and every
//! message travels in an [`Envelope`] with a link MAC (see [`super::auth`]).
//!
//! The PRE-PREPARE carries the request itself (the paper piggybacks it), so a new
//! primary can re-issue a prepared request from a VIEW-CHANGE's certificate.

use std::hash::Hash;

use crate::consensus::pbft::auth::{KeyRing, digest};
use crate::consensus::raft::state_machine::KvCommand;
use crate::consensus::vr::state_machine::KvService;
use crate::sim::NodeId;
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

/// What a sequence number is assigned to: a client's request, or the null request a new
/// primary puts in a gap (§4.4), which executes as a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    Op(KvCommand),
    Null,
}

impl Request {
    pub fn digest(&self) -> u64 {
        digest(self)
    }

    /// A short text for tables.
    pub fn text(&self) -> String {
        match self {
            Request::Op(c) => format!("c{}#{} {:?}", c.session, c.seq, c.op),
            Request::Null => "null".into(),
        }
    }
}

/// ⟨PRE-PREPARE, v, n, d⟩ with the request m.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrePrepare {
    pub view: u64,
    pub seq: u64,
    pub digest: u64,
    pub request: Request,
}

/// ⟨PREPARE, v, n, d, i⟩, and with the same fields ⟨COMMIT, v, n, d, i⟩.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub view: u64,
    pub seq: u64,
    pub digest: u64,
    pub replica: NodeId,
}

/// ⟨CHECKPOINT, n, d, i⟩: replica i's state after executing n has digest d.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    pub seq: u64,
    pub state_digest: u64,
    pub replica: NodeId,
}

/// A value and its signer's signature over its digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signed<T> {
    pub value: T,
    pub signer: NodeId,
    pub sig: u64,
}

impl<T: Hash> Signed<T> {
    pub fn new(keys: &KeyRing, value: T) -> Self {
        let sig = keys.sign(digest(&value));
        Signed {
            value,
            signer: keys.me(),
            sig,
        }
    }

    /// Whether the signature is the signer's.
    pub fn valid(&self, keys: &KeyRing) -> bool {
        keys.signature_ok(self.signer, digest(&self.value), self.sig)
    }
}

/// A prepared certificate (the paper's P set entry): a pre-prepare and 2f matching
/// prepares from distinct backups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prepared {
    pub pre_prepare: Signed<PrePrepare>,
    pub prepares: Vec<Signed<Vote>>,
}

/// ⟨VIEW-CHANGE, v+1, n, C, P, i⟩.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewChange {
    pub new_view: u64,
    /// The sequence number of the replica's stable checkpoint.
    pub stable_seq: u64,
    /// C: 2f + 1 signed checkpoints proving it (empty for the initial state, n = 0).
    pub checkpoint_proof: Vec<Signed<Checkpoint>>,
    /// P: a certificate per request prepared above `stable_seq`, in the highest view.
    pub prepared: Vec<Prepared>,
    pub replica: NodeId,
}

/// ⟨NEW-VIEW, v+1, V, O⟩.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewView {
    pub view: u64,
    /// V: 2f + 1 valid VIEW-CHANGE messages for `view`.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// O: the pre-prepares the new primary re-issues, null requests in the gaps.
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

/// A PBFT message body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    PrePrepare(Signed<PrePrepare>),
    Prepare(Signed<Vote>),
    Commit(Signed<Vote>),
    Checkpoint(Signed<Checkpoint>),
    ViewChange(Signed<ViewChange>),
    NewView(Signed<NewView>),
    /// A replica behind a stable checkpoint asks for the state at `seq` or later.
    FetchState {
        seq: u64,
    },
    /// The state after executing `seq`, with the certificate that makes it stable; the
    /// receiver checks the state's digest against the certificate.
    State {
        seq: u64,
        service: KvService,
        proof: Vec<Signed<Checkpoint>>,
    },
}

impl Body {
    /// The message's kind, as the space-time diagram names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::PrePrepare(_) => "prePrepare",
            Body::Prepare(_) => "prepare",
            Body::Commit(_) => "commit",
            Body::Checkpoint(_) => "checkpoint",
            Body::ViewChange(_) => "viewChange",
            Body::NewView(_) => "newView",
            Body::FetchState { .. } => "fetchState",
            Body::State { .. } => "state",
        }
    }
}

/// A message on the wire: the sender it claims, the body, and the link MAC. The network
/// does not authenticate senders (a Byzantine replica may claim any id); the MAC does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Envelope {
    pub sender: NodeId,
    pub body: Body,
    pub mac: u64,
}

impl Envelope {
    /// `body` from the owner of `keys` to `to`, with a correct MAC.
    pub fn seal(keys: &KeyRing, to: NodeId, body: Body) -> Self {
        let mac = keys.mac_to(to, digest(&body));
        Envelope {
            sender: keys.me(),
            body,
            mac,
        }
    }

    /// Whether the MAC is the one the claimed sender shares with the owner of `keys`.
    pub fn authentic(&self, keys: &KeyRing) -> bool {
        keys.mac_from_ok(self.sender, digest(&self.body), self.mac)
    }
}

impl Fingerprint for Envelope {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}
