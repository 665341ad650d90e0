//! Primary–replica replication (catalog id `consistency.replication`): one primary orders
//! every client operation into a log and ships it to the replicas, answering in one of four
//! ack modes (async, semi-sync, majority, sync); a failure detector on the replicas fails
//! over to a new primary in a new epoch, with fencing or without.
//!
//! It follows Kleppmann, *Designing Data-Intensive Applications* (2017), ch. 5 "Leaders
//! and Followers" — synchronous, semi-synchronous and asynchronous followers, replication
//! lag, and the failover pitfalls (an async primary's unreplicated tail is lost; two nodes
//! believing they are the primary, split brain) — and for fencing the epoch of Raft
//! (Ongaro & Ousterhout, USENIX ATC 2014: terms, votes for an up-to-date log, the commit
//! rule for the current term) and Viewstamped Replication (Oki & Liskov 1988; the view
//! number): promotion needs a majority's votes, every append carries the epoch, and a
//! replica rejects a lower one.
//!
//! - [`node`]: the node (primary, replica, candidate), durable on the simulated disk.
//! - [`harness`]: a cluster with closed-loop clients, the invariants checked after every
//!   event, and the history for the linearizability checker.
//! - [`soak`]: one seed of the fault soak, fencing on and off on the same faults.
//! - [`lab`]: the lab `consistency.replication`.
//!
//! Cost per operation: one append and fsync at the primary and at every replica it
//! reaches; the answer waits for 0 (async), 1 (semi-sync), a majority or all replicas.

pub mod harness;
pub mod lab;
pub mod node;
pub mod soak;

pub use node::{AckMode, ReplRequest, ReplResponse, ReplicaNode, ReplicationParams, Role};
