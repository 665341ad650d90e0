//! Raft (catalog id `consensus.raft`): Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm" (USENIX ATC 2014), with the extensions of Ongaro's
//! PhD thesis "Consensus: Bridging Theory and Practice" (Stanford, 2014) — pre-vote
//! (§9.6), check-quorum (§6.2), client sessions (§6.3) — on the deterministic simulator.
//!
//! - [`config`]: settings and their validation.
//! - [`messages`]: RequestVote / PreVote, AppendEntries, entries, membership.
//! - [`log`]: the in-memory log with a snapshot base and prefix digests.
//! - [`storage`]: the write-ahead log on the simulated disk, checksummed, torn-write safe.
//! - [`state_machine`]: the key-value store with client sessions.
//! - [`manual`]: a cluster driven message by message, for replaying the paper's figures.
//! - [`election`]: elections, pre-vote and check-quorum.
//! - [`replication`]: AppendEntries, fast backtracking, the commit rule.
//! - [`snapshot`]: snapshots, compaction and InstallSnapshot.
//! - [`reads`]: ReadIndex and lease reads (thesis §6.4).
//! - [`transfer`]: leadership transfer with TimeoutNow (thesis §3.10).
//! - [`membership`]: single-server membership changes with learners (thesis §4).
//! - [`node`]: the [`Node`](crate::sim::Node) implementation.
//! - [`harness`]: a cluster with closed-loop clients, for tests, soaks and the lab.
//! - [`soak`]: one seed of the fault soak, as a pure function of the seed.
//! - [`lab`]: the `consensus.raft` lab.
//! - [`scenario`]: the `scenario.disruptive-rejoin` lab (pre-vote off and on, side by side).
//! - [`invariants`]: the paper's safety properties, checked after every event.

pub mod config;
pub mod election;
pub mod harness;
pub mod invariants;
pub mod lab;
pub mod log;
pub mod manual;
pub mod membership;
pub mod messages;
pub mod node;
pub mod reads;
pub mod replication;
pub mod scenario;
pub mod snapshot;
pub mod soak;
pub mod state_machine;
pub mod storage;
pub mod transfer;

pub use config::{RaftConfig, RaftParams, ReadMode};
pub use invariants::{Invariant, InvariantChecker, Observation, Violation};
pub use messages::{Entry, EntryData, LogIndex, Membership, Message, Term};
pub use node::{Progress, RaftNode, RaftRequest, Role};
pub use state_machine::{KvCommand, KvOp, KvResponse, KvStore};
