//! The discrete-event simulator every cluster protocol runs on (engine, network, faults,
//! clocks, disk, trace, client histories), and the tools that judge and drive it:
//! workloads and the linearizability checker.

pub mod clock;
pub mod disk;
pub mod engine;
pub mod faults;
pub mod history;
pub mod linearizability;
pub mod manual;
pub mod network;
pub mod node;
pub mod pingpong;
pub mod records;
pub mod soak;
pub mod trace;
pub mod workload;

pub use engine::{InFlight, NetStats, NodeStatus, Queued, Sim, SimConfig, Stepped};
pub use faults::{Fault, FaultScript, NemesisConfig, ScheduledFault};
pub use network::{LatencyModel, NetworkConfig};
pub use node::{
    ClientId, ClientRequest, Ctx, Effect, Endpoint, Fingerprint, Node, NodeId, Reply, RequestId,
    TimerId,
};
