//! Viewstamped Replication (catalog id `consensus.vr`): Liskov & Cowling, "Viewstamped
//! Replication Revisited", MIT-CSAIL-TR-2012-021 (2012) — normal operation, view
//! changes, recovery with nonces and the client table, replicating a key-value store;
//! safety checked after every event.
//!
//! - [`messages`]: the protocol's messages and a replica's status.
//! - [`client_table`] and [`state_machine`]: the client table and the key-value service.
//! - [`replica`]: the replica, normal operation and state transfer (§4.1, §5.2).
//! - [`view_change`]: the view change (§4.2).
//! - [`recovery`]: recovery of a restarted replica (§4.3).
//! - [`invariants`]: state-machine safety, the commit-number, one primary per view.
//! - [`harness`]: a group with closed-loop session clients and the checker.
//! - [`lessons`]: the lab's lesson, a view change and a recovery.
//! - [`manual`]: a group driven by hand, message by message, for named schedules.
//! - [`lab`]: the lab `consensus.vr`.
//! - [`soak`]: one seed of the fault soak, linearizability included.
//!
//! **Crash and restart.** VR keeps its state in memory: the paper replaces disk writes
//! by replication, and a crashed replica that restarts has lost its log, its view and its
//! commit-number. So here a crash loses everything a replica holds, and a restart runs
//! the paper's recovery protocol: the replica sets status recovering, sends `Recovery`
//! with a fresh nonce, and rejoins only with f + 1 answers carrying that nonce, one from
//! the primary of the latest view they name, whose log it takes. Like the paper, this
//! assumes no more than f replicas are crashed or recovering at once (with more, the
//! group waits: recovery needs f + 1 replicas with normal status).
//!
//! **Where this deviates: one durable number.** A replica writes (and syncs) the highest
//! view it has taken part in — before its first message in that view — and nothing
//! else; no log entry ever touches the disk. Two reasons. A restart must know it is a
//! restart, not a first boot (the paper takes that for granted); the first boot's record
//! tells it. And Vanlightly's analysis of VR Revisited's recovery ("VR Revisited — an
//! analysis with TLA+", 2022) notes that recovery is unsafe if a replica can forget a
//! view in which it voted (`StartViewChange` / `DoViewChange` / `PrepareOk`) and rejoin
//! an older one, acknowledging there what the newer view's quorum no longer counts on.
//! With the view on disk a recovering replica ignores any `RecoveryResponse` from a view
//! older than the one it voted in, so it can never vote twice in one view with two
//! different logs. The cost is one fsync per view change per replica, none per request.
//!
//! **State transfer** (§5.2) is asked of the primary only: a replica that missed a
//! `Prepare` sends `GetState` with its op-number and appends the primary's `NewState`;
//! a replica that hears of a later view cuts its log back to its commit-number and takes
//! the rest from that view's primary.
//!
//! Cost per request: one round trip from the primary to a majority (`Prepare`,
//! `PrepareOk`); no fsync. A view change moves whole logs (`DoViewChange`, `StartView`),
//! as in the paper without its log-suffix optimisation.

pub mod client_table;
pub mod harness;
pub mod invariants;
pub mod lab;
pub mod lessons;
pub mod manual;
pub mod messages;
pub mod recovery;
pub mod replica;
pub mod soak;
pub mod state_machine;
pub mod view_change;

pub use invariants::{Checker, Invariant, Violation};
pub use messages::{Entry, LogState, Message, Status};
pub use replica::{TICK, VrParams, VrReplica};
