//! Labs of the simulator's own catalog ids (`sim.*`): the network, workloads and the
//! linearizability checker. They live outside `sim/` so that the simulator never depends
//! on the lab layer: the arrows run lab → sim only.

pub mod linearizability;
pub mod network;
pub mod workload;
