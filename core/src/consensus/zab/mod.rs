//! Zab, ZooKeeper's atomic broadcast (catalog id `consensus.zab`): Junqueira, Reed &
//! Serafini, "Zab: High-performance broadcast for primary-backup systems", DSN 2011,
//! checked against ZooKeeper's TLA+ specification of the protocol
//! (zookeeper-specifications/protocol-spec/Zab.tla) and the three defects its authors
//! found in the paper's wording (protocol-spec/issues.md), fixed here as they fixed them.
//!
//! - [`zxid`]: zxids (epoch, counter) and transactions.
//! - [`messages`]: the messages of the four phases, phases and votes.
//! - [`storage`]: accepted epoch, current epoch and history on the simulated disk.
//! - [`peer`]: the peer, its shared helpers and the `Node` plumbing.
//! - [`election`]: phase 0, a Fast-Leader-Election-style vote on (epoch, zxid, id).
//! - [`discovery`]: phase 1, `FollowerInfo` / `NewEpoch` / `AckEpoch`.
//! - [`sync`]: phase 2, `NewLeader` / `AckLd` / `CommitLd`.
//! - [`broadcast`]: phase 3, `Propose` / `Ack` / `Commit` in zxid order.
//! - [`invariants`]: agreement, primary order, primary integrity, integrity, one
//!   leader per epoch — checked after every event.
//! - [`harness`]: an ensemble with closed-loop session clients and the checker.
//! - [`manual`]: an ensemble driven by hand, message by message, for named schedules.
//! - [`lab`]: the lab `consensus.zab`.
//! - [`lessons`]: its lesson, a leader crash and a new epoch.
//! - [`soak`]: one seed of the fault soak, linearizability included.
//!
//! The replicated service is VR's key-value store behind its client table
//! ([`crate::consensus::vr::state_machine::KvService`]): a command retried with the same
//! session and number takes effect once, so clients may retry through a new leader.
//!
//! Cost per request: one `Propose` / `Ack` round trip from the leader to a quorum, one
//! fsync at the leader and at each follower before it acknowledges. A new epoch costs
//! three round trips (discovery and synchronisation) and moves whole histories
//! (`AckEpoch`, `NewLeader`), as in the paper.

pub mod broadcast;
pub mod discovery;
pub mod election;
pub mod harness;
pub mod invariants;
pub mod lab;
pub mod lessons;
pub mod manual;
pub mod messages;
pub mod peer;
pub mod soak;
pub mod storage;
pub mod sync;
pub mod zxid;

pub use invariants::{Checker, Invariant, Violation};
pub use messages::{Message, PeerState, Phase, Vote};
pub use peer::{TICK, ZabParams, ZabPeer};
pub use zxid::{Txn, Zxid};
