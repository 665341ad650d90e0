//! Coordination (catalog section `coordination`): the pieces a cluster uses to agree on
//! who is alive and who holds what. Each primitive is sans-I/O: time comes in as `now`.
//!
//! - [`failure_detector`]: fixed-timeout heartbeats and the phi-accrual detector.
//! - [`lock`]: a lease lock with fencing tokens (Kleppmann 2016).
//! - [`redlock`]: Redlock over N independent stores, and where it fails.
//! - [`gossip`]: anti-entropy and rumor mongering (Demers et al. 1987).
//! - [`leader_election`]: the bully algorithm (Garcia-Molina 1982) and its message cost.
//! - [`swim`]: SWIM membership (Das, Gupta & Motivala 2002) with Lifeguard's refinements.
//! - [`snapshot`]: Chandy–Lamport global snapshots (1985) over a money-transfer workload.
//! - [`registry`]: a service registry with TTL leases (Eureka's semantics), client-side
//!   and server-side discovery, and the stale routes a partition leaves.

pub mod failure_detector;
pub mod gossip;
pub mod leader_election;
pub mod lock;
pub mod redlock;
pub mod registry;
pub mod snapshot;
pub mod swim;
