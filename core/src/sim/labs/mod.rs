//! Labs for the simulator's own catalog ids: the network, workloads and the
//! linearizability checker.

pub mod linearizability;
pub mod network;
pub mod workload;
