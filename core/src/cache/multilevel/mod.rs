//! `cache.multilevel`: an L1 cache in every application node and a shared L2 node, with
//! invalidation messages over the simulated network ([`node`]); lost or delayed
//! invalidations leave stale values in L1s, which the lab ([`lab`]) counts, and the L1's
//! TTL bounds how stale a read can be. [`soak`] checks the bound over many seeds.

pub mod lab;
pub mod node;
pub mod soak;
