//! Practical Byzantine Fault Tolerance (catalog id `consensus.pbft`): Castro & Liskov,
//! "Practical Byzantine Fault Tolerance", OSDI 1999 — 3f + 1 replicas order client
//! requests through pre-prepare / prepare / commit, change views with prepared
//! certificates, and take checkpoints that move the watermarks and collect the log,
//! while up to f of them lie. The safety property checked after every event is
//! heidihoward/pbft-tlaplus's `SafetyInv` with a Byzantine set: no two correct replicas
//! commit different requests at one sequence number.
//!
//! - [`auth`]: digests, link MACs and signatures, modelled with keyed hashes.
//! - [`messages`]: the protocol's messages and their envelope.
//! - [`replica`]: the replica and the normal case (§4.2).
//! - [`checkpoint`]: checkpoints, watermarks, garbage collection, state transfer (§4.3).
//! - [`view_change`]: VIEW-CHANGE and NEW-VIEW (§4.4).
//! - [`byzantine`]: the lying behaviours.
//! - [`invariants`]: safety among correct replicas, and agreeing executed states.
//! - [`harness`]: a group with clients that wait for f + 1 matching replies.
//! - [`soak`]: one seed of the fault soak, linearizability included.
//! - [`lab`]: the lab `consensus.pbft`.
//! - [`lessons`]: the lab's guided lessons (an equivocating primary replaced; one liar
//!   too many).
//!
//! Where the model departs from the paper: requests are not signed by clients (the
//! liars never invent a client's request, only null requests); MACs and signatures are
//! keyed hashes (see [`auth`]); and a restarted replica, which has forgotten its votes,
//! stays silent until its stable checkpoint has passed everything it may have voted for
//! (see [`replica`]). Cost per request: O(n²) messages (prepares and commits from every
//! replica to every replica), against Paxos' and Raft's O(n).

pub mod auth;
pub mod byzantine;
pub mod checkpoint;
pub mod harness;
pub mod invariants;
pub mod lab;
pub mod lessons;
pub mod messages;
pub mod replica;
pub mod soak;
pub mod view_change;

pub use byzantine::Behaviour;
pub use invariants::{Checker, Invariant, Violation};
pub use messages::{Body, Envelope, Request};
pub use replica::{PbftParams, PbftReplica, Status};
