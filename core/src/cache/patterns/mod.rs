//! `cache.patterns`: cache-aside, read-through, write-through, write-back and
//! refresh-ahead against a backing store with latency, on the simulator ([`node`]), and
//! cache-aside's stale set with its fix, Facebook's leases (Nishtala et al., "Scaling
//! Memcache at Facebook", NSDI 2013, §3.2.1). [`lab`] is the lab, [`soak`] its soak.

pub mod lab;
pub mod node;
pub mod soak;
