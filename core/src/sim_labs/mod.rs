//! Labs of the simulator's own catalog ids (`sim.*`): the engine, the network, faults, the disk, the trace, workloads
//! and the linearizability checker. They live outside `sim/` so that the simulator never depends
//! on the lab layer: the arrows run lab → sim only.

pub mod disk;
pub mod engine;
pub mod faults;
pub mod linearizability;
pub mod network;
pub mod trace;
pub mod workload;
