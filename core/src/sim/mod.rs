//! The discrete-event simulator every cluster protocol runs on, and the tools that judge
//! what it produced: workloads that drive it and the linearizability checker.

pub mod linearizability;
pub mod workload;
