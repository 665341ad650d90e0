//! Coordination (catalog section `coordination`): the pieces a cluster uses to agree on
//! who is alive and who holds what — failure detectors, and (to come) fenced locks,
//! gossip and SWIM membership. Each primitive is sans-I/O: time comes in as `now`.

pub mod failure_detector;
pub mod gossip;
pub mod lock;
pub mod swim;
