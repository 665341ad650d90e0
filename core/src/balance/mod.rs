//! Load balancing: how requests or keys are spread over nodes. `balance.consistent-hash`
//! ([`consistent_hash`]) is the ring the distributed cache stands on.

pub mod consistent_hash;
pub mod consistent_hash_lab;

pub use consistent_hash::HashRing;
