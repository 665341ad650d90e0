//! Two-phase commit (catalog id `consensus.2pc`): Gray, "Notes on Data Base Operating
//! Systems" (1978), with the failure handling of Bernstein, Hadzilacos & Goodman,
//! *Concurrency Control and Recovery in Database Systems* (1987), §7 — durable prepared
//! state and decisions, presumed abort after a coordinator restart, cooperative
//! termination — and the invariant of TLA+ TCommit (Lamport & Gray, "Consensus on
//! Transaction Commit", 2006).
//!
//! - [`node`]: the coordinator and participants as simulator nodes, durable on its disk
//!   (a [`crate::sim::records`] log).
//! - [`harness`]: a cluster with a client, the atomicity checker, the blocking detector.
//! - [`soak`]: one seed of the fault soak, as a pure function of the seed.
//! - [`lab`]: the `consensus.2pc` lab.
//! - [`lessons`]: its lesson, the blocking and its end.
//!
//! Cost: one transaction is 4(n − 1) messages (prepare, vote, decision, ack) and one
//! fsync at each node.

pub mod harness;
pub mod lab;
pub mod lessons;
pub mod node;
pub mod soak;

pub use harness::{AtomicityChecker, AtomicityViolation, Blocking, Harness, Workload};
pub use node::{COORDINATOR, Message, TwoPcNode, TwoPcParams, TxId, TxOutcome, TxRequest, TxState};
