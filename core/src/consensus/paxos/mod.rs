//! Paxos (catalog id `consensus.paxos`): single-decree Paxos as in Lamport, "Paxos Made
//! Simple" (2001), and Multi-Paxos with a stable leader (its §3), replicating raft's
//! key-value store with client sessions slot by slot, durable on the simulated disk; the
//! safety properties of tlaplus/Examples `Paxos.tla` checked after every event.
//!
//! - [`node`]: acceptor, learner and proposer (single-decree or Multi-Paxos).
//! - [`invariants`]: Inv1, one value per ballot, agreement and validity.
//! - [`harness`]: a cluster with closed-loop session clients and the checker.
//! - [`lab`]: the lab `consensus.paxos`, the duelling proposers' switch included.
//! - [`lessons`]: its lessons, the duel and the distinguished proposer.
//! - [`manual`]: a cluster driven by hand, message by message, for named schedules.
//! - [`soak`]: one seed of the fault soak, linearizability included.
//!
//! Cost per command: single-decree, two round trips (prepare/promise, accept/accepted)
//! to every node plus the chosen broadcast; Multi-Paxos with a stable leader, one round
//! trip. One fsync per promise and per vote at each acceptor.

pub mod harness;
pub mod invariants;
pub mod lab;
pub mod lessons;
pub mod manual;
pub mod node;
pub mod soak;

pub use invariants::{Checker, Invariant, Violation};
pub use node::{Ballot, Change, Message, Mode, PaxosNode, PaxosParams, Role, Value};
