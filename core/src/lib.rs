//! distlab-core: every distlab primitive as a deterministic, sans-I/O state machine, the
//! discrete-event simulator the cluster protocols run on, the checkers that judge their
//! histories, and the labs the page and notebooks drive.
//!
//! Time and randomness are inputs ([`time::Time`], [`rng::SimRng`]); outputs are values.
//! Nothing here touches a clock, a file, a socket or the OS: `core/clippy.toml` forbids it.

pub(crate) mod alloc;
pub mod bounded;
pub mod error;
pub mod rng;
pub mod time;

pub use error::{DistlabError, Result};
pub use time::{Duration, Time};

pub mod balance;
pub mod cache;
pub mod consensus;
pub mod consistency;
pub mod coordination;
pub mod crdt;
pub mod lab;
pub mod ratelimit;
pub mod registry;
pub mod resilience;
pub mod scenario;
pub mod sim;
pub mod sim_labs;
pub mod sketch;
pub mod soaks;

pub use registry::{catalog, create_lab};
