//! Raft (catalog id `consensus.raft`): Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm" (USENIX ATC 2014), with the extensions of Ongaro's
//! PhD thesis "Consensus: Bridging Theory and Practice" (Stanford, 2014) — leadership
//! transfer (§3.10), membership changes (§4), check-quorum (§6.2), client sessions
//! (§6.3), ReadIndex and lease reads (§6.4), pre-vote (§9.6) — on the deterministic
//! simulator, with every durable write going through its crash- and tear-prone disk.
//!
//! The server, one concern per module:
//! - [`node`]: state, the term rules, clients, and the persist-before-send discipline.
//! - [`election`]: elections, pre-vote and check-quorum.
//! - [`replication`]: AppendEntries, fast backtracking, the commit rule (Figure 8).
//! - [`snapshot`]: snapshots, compaction and InstallSnapshot.
//! - [`reads`]: ReadIndex and lease reads.
//! - [`transfer`]: leadership transfer with TimeoutNow.
//! - [`membership`]: single-server membership changes with learners.
//! - [`log`]: the in-memory log with a snapshot base and prefix digests.
//! - [`storage`]: the write-ahead log on the simulated disk, checksummed, torn-write safe.
//! - [`state_machine`]: the key-value store with client sessions.
//! - [`messages`], [`config`]: what nodes say, and the settings.
//! - [`fingerprint`]: what identifies a server's state and a message, for model checking.
//!
//! Checking and driving it:
//! - [`invariants`]: the paper's safety properties, checked after every event.
//! - [`harness`]: a cluster with closed-loop clients, for tests, soaks and labs.
//! - [`manual`]: a cluster driven message by message, for replaying the paper's figures.
//! - [`soak`]: one seed of the fault soak, as a pure function of the seed.
//! - [`lab`], [`scenario`]: the `consensus.raft` and `scenario.disruptive-rejoin` labs;
//!   [`glance`]: what their views show without a click (terms, timers, the log grid).
//!
//! Cost per event: O(entries carried + voters) at a node, plus one disk append and fsync
//! when durable state changed; a snapshot rewrites the state machine and the entries
//! after it.

pub mod config;
mod election;
mod fingerprint;
pub mod glance;
pub mod harness;
pub mod invariants;
pub mod lab;
pub mod lessons;
mod log;
pub mod manual;
mod membership;
pub mod messages;
pub mod node;
mod reads;
mod replication;
mod snapshot;
pub mod soak;
pub mod state_machine;
mod storage;
mod transfer;

pub use config::{RaftConfig, RaftParams, ReadMode};
pub use invariants::{Invariant, InvariantChecker, Observation, Violation};
pub use messages::{Entry, EntryData, LogIndex, Membership, Message, Term};
pub use node::{Progress, RaftNode, RaftRequest, Role};
pub use state_machine::{KvCommand, KvOp, KvResponse, KvStore};
