//! Quorum replication (catalog id `consistency.quorum`): a register per key on N replicas
//! with configurable R and W, in two modes that the linearizability checker judges side
//! by side. Plain Dynamo-style quorums (DeCandia et al., "Dynamo", SOSP 2007: coordinator
//! clock tags, read repair) are not linearizable even with R + W > N; ABD (Attiya,
//! Bar-Noy & Dolev, "Sharing memory robustly in message-passing systems", JACM 1995; the
//! multi-writer variant of Lynch & Shvartsman 1997) is, because a read writes back what it
//! returns before returning and a write first learns the highest tag.
//!
//! - [`node`]: the replica and coordinator, durable on the simulated disk.
//! - [`harness`]: a cluster with closed-loop clients, and its history for the checker.
//! - [`lab`]: the lab `consistency.quorum`.
//! - [`manual`]: a cluster driven by hand, message by message, for named schedules.
//! - [`soak`]: one seed of the fault soak, both modes on the same faults, then
//!   convergence after the heal by anti-entropy.
//! - [`merkle`]: the Merkle tree over a replica's key ranges that anti-entropy compares.
//!
//! Also from Dynamo, each switchable and off by default: sloppy quorums with hinted
//! handoff (section 4.6: writes stay available while home replicas are unreachable, at
//! the price of R + W > N no longer making quorums meet, which the checker shows), and
//! Merkle-tree anti-entropy between replicas (section 4.7: replicas that missed writes
//! catch up, and all converge after a heal).
//!
//! Cost per operation: plain, one round trip to the N replicas; ABD, two.

pub mod harness;
pub mod lab;
pub mod manual;
pub mod merkle;
pub mod node;
pub mod soak;

pub use node::{AntiEntropy, Mode, QuorumNode, QuorumParams, QuorumRequest, QuorumResponse, Tag};
