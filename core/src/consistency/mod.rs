//! Consistency: logical clocks and the orders they give to events.
//!
//! - [`lamport`]: Lamport clocks (Lamport 1978).
//! - [`hlc`]: hybrid logical clocks (Kulkarni et al. 2014), exactly the paper's algorithm.
//! - [`vector_clock`]: vector clocks (Fidge 1988, Mattern 1989): compare as before / after /
//!   equal / concurrent, and merge. The multi-value register of [`crate::crdt`] versions its
//!   values with them.
//! - [`clock_lab`]: the labs of the three clocks, processes exchanging messages under
//!   clock skew and drift ([`clock_node`] is their process).
//! - [`id_gen`]: Snowflake ids, with a switch for what a backward clock step does.
//!   Its lab is [`id_gen_lab`].
//! - [`version_vector`]: dotted version vectors (Preguiça et al. 2010/2012) for a
//!   Dynamo-style store: siblings, and their reconciliation. Its lab is
//!   [`version_vector_lab`].
//! - [`quorum`]: N/R/W quorum replication, plain Dynamo and ABD (Attiya, Bar-Noy & Dolev
//!   1995), judged by the linearizability checker.
//! - [`replication`]: primary–replica replication, sync to async, failover with or without
//!   fencing by epochs.
//! - [`session`]: read your writes and monotonic reads over lagging replicas (Terry et al.
//!   1994), broken by routing anywhere, kept by sticky sessions or versioned reads.

pub mod clock_lab;
pub mod clock_node;
pub mod hlc;
pub mod id_gen;
pub mod id_gen_lab;
pub mod lamport;
pub mod quorum;
pub mod replication;
pub mod session;
pub mod vector_clock;
pub mod version_vector;
pub mod version_vector_lab;

#[cfg(test)]
mod laws;
