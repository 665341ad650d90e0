//! What a simulated node is: a state machine that reacts to start, messages, timers and
//! client requests by writing effects into a buffer the driver executes.
//!
//! This is the sans-I/O shape of stateright's `Actor` and raft-rs's `Ready`: the node
//! never sends, sleeps or writes; it says what it wants done. The same node runs in the
//! simulator, in a test, in the browser, and could run on real sockets.
//!
//! Durable state lives only on the node's [`Disk`](crate::sim::disk::Disk); everything in
//! the node value itself is volatile and is lost on a crash. A restart builds a fresh
//! node with [`Node::recover`] from what the disk kept.
//!
//! Nodes and their messages are also [`Fingerprint`]s: they feed themselves into a
//! [`StableHasher`], so that a model checker can recognise a state it has already seen.

use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hasher;

use crate::rng::SimRng;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// Index of a node in the cluster, from 0.
#[cfg_attr(feature = "tsify", tsify::declare)]
pub type NodeId = u32;
/// Index of a client, from 0.
#[cfg_attr(feature = "tsify", tsify::declare)]
pub type ClientId = u32;
/// A timer name chosen by the node; setting it again replaces the pending one.
pub type TimerId = u64;
/// A client request, unique within a simulation.
pub type RequestId = u64;

/// Either end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Endpoint {
    Node(NodeId),
    Client(ClientId),
}

impl Endpoint {
    /// A dense number for hashing and link bookkeeping.
    pub(crate) fn code(self) -> u64 {
        match self {
            Endpoint::Node(n) => n as u64,
            Endpoint::Client(c) => (1 << 32) | c as u64,
        }
    }
}

/// A client's request as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRequest<R> {
    pub client: ClientId,
    pub id: RequestId,
    pub body: R,
}

/// A node's answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum Reply<R> {
    /// The request took effect and this is its result.
    Ok(R),
    /// The request definitely did not take effect (e.g. "not the leader").
    Fail(String),
}

/// One thing a node asked the driver to do.
#[derive(Debug, Clone)]
pub enum Effect<M, R> {
    Send {
        to: NodeId,
        msg: M,
    },
    SetTimer {
        timer: TimerId,
        after: Duration,
    },
    CancelTimer {
        timer: TimerId,
    },
    Reply {
        client: ClientId,
        request: RequestId,
        reply: Reply<R>,
    },
    Disk(DiskOp),
    StateChange(String),
    Log(String),
}

/// A value that feeds itself into a [`StableHasher`], so that equal states give equal
/// 64-bit fingerprints, natively and in wasm alike.
///
/// This is what a bounded model checker keeps of every state it has visited, to recognise
/// one it reaches again by another path: stateright's checkers likewise store a 64-bit
/// hash of each state, not the state. Two different states share a fingerprint only by a
/// collision (about n²/2⁶⁵ over n states), which a checker accepts as stateright does.
///
/// What goes in, for every implementation:
/// - Everything the value's future behaviour depends on, and every counter a protocol
///   keeps even if only its view reads it: an invariant may read it too, and merging two
///   states that differ in what a property looks at would let the checker skip a
///   violation. Left out, and said so where: what is *derived* from fields already hashed
///   (a cache, a digest of hashed data), what is never read (a scratch buffer), and the
///   tallies the simulator keeps *about* a value rather than in it (a disk's write
///   counts), which no node can see.
/// - Fields are walked explicitly, by destructuring the struct, so that a field added later
///   does not compile until it is put in or explicitly left out. Plain data below that
///   level may `#[derive(Hash)]` and be fed with [`std::hash::Hash::hash`]: the hasher
///   widens `usize` and `isize` (lengths, enum discriminants) to 64 bits, so the result is
///   the same on 32- and 64-bit targets.
/// - Nothing that depends on where or when the program runs: no `HashMap` iteration order
///   (iterate a `BTreeMap`, or sort), no pointer, an `f64` by its `to_bits()`.
///
/// The fingerprints rest on the standard library's `Hash` for strings and slices, as the
/// trace hash does; the golden values in `tests/tests/golden.rs` would show a change.
pub trait Fingerprint {
    /// Feeds the value into `h`.
    fn fingerprint_into(&self, h: &mut StableHasher);

    /// The value's fingerprint on its own.
    fn fingerprint(&self) -> u64 {
        let mut h = StableHasher::default();
        self.fingerprint_into(&mut h);
        h.finish()
    }
}

/// A cluster protocol's node.
///
/// Every protocol, those here and each one added from now on, implements [`Fingerprint`]
/// for its node (the volatile state, every field of it) and for its messages, so that a
/// model checker can explore it; the simulator adds what it keeps for the node, its disk
/// and its clock (see [`Sim::node_fingerprint`](crate::sim::Sim::node_fingerprint)).
pub trait Node: Clone + Debug + Fingerprint {
    /// Node-to-node messages.
    type Message: Clone + Debug + Fingerprint;
    /// What clients ask.
    type Request: Clone + Debug;
    /// What nodes answer.
    type Response: Clone + Debug;
    /// What every node is built from (cluster-wide settings), kept by the simulator.
    type Config: Clone + Debug;

    /// Builds the node from its durable state: an empty disk at first boot, what the disk
    /// kept after a crash. Must not fail: a node that finds garbage (a torn write) on disk
    /// recovers what it can, as real systems do.
    fn recover(id: NodeId, config: &Self::Config, disk: &Disk) -> Self;

    /// Called once after every boot and restart.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>);
    fn on_message(&mut self, from: NodeId, msg: Self::Message, ctx: &mut Ctx<'_, Self>);
    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>);
    fn on_request(&mut self, request: ClientRequest<Self::Request>, ctx: &mut Ctx<'_, Self>);

    /// A short name for a message's kind, for the trace and for drawing.
    fn message_kind(_msg: &Self::Message) -> &'static str {
        "message"
    }
    /// The node's role for drawing (leader, follower, ...).
    fn role(&self) -> &'static str {
        "node"
    }
}

/// What a node sees and writes while it handles one event.
pub struct Ctx<'a, N: Node> {
    pub(crate) id: NodeId,
    pub(crate) local_now: Time,
    pub(crate) node_count: u32,
    pub(crate) rng: &'a mut SimRng,
    pub(crate) effects: &'a mut Vec<Effect<N::Message, N::Response>>,
}

impl<'a, N: Node> Ctx<'a, N> {
    /// A context for driving a node outside the simulator (tests, a future runtime).
    pub fn new(
        id: NodeId,
        local_now: Time,
        node_count: u32,
        rng: &'a mut SimRng,
        effects: &'a mut Vec<Effect<N::Message, N::Response>>,
    ) -> Self {
        Ctx {
            id,
            local_now,
            node_count,
            rng,
            effects,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    /// The node's own clock: simulated time seen through its skew and drift.
    pub fn now(&self) -> Time {
        self.local_now
    }
    /// Number of node slots in the cluster (crashed nodes included).
    pub fn node_count(&self) -> u32 {
        self.node_count
    }
    /// Deterministic randomness (election timeouts, peer choice...).
    pub fn rng(&mut self) -> &mut SimRng {
        self.rng
    }
    pub fn send(&mut self, to: NodeId, msg: N::Message) {
        self.effects.push(Effect::Send { to, msg });
    }
    /// Sets (or resets) `timer` to fire after `after` on the node's own clock.
    pub fn set_timer(&mut self, timer: TimerId, after: Duration) {
        self.effects.push(Effect::SetTimer { timer, after });
    }
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.effects.push(Effect::CancelTimer { timer });
    }
    pub fn reply(&mut self, client: ClientId, request: RequestId, reply: Reply<N::Response>) {
        self.effects.push(Effect::Reply {
            client,
            request,
            reply,
        });
    }
    pub fn disk(&mut self, op: DiskOp) {
        self.effects.push(Effect::Disk(op));
    }
    /// Records a change of state worth seeing in the trace ("became leader in term 3").
    pub fn state_change(&mut self, what: impl Into<String>) {
        self.effects.push(Effect::StateChange(what.into()));
    }
    pub fn log(&mut self, text: impl Into<String>) {
        self.effects.push(Effect::Log(text.into()));
    }
}
