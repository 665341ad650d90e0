//! Leader election (catalog id `coordination.leader-election`).
//!
//! - [`bully`]: the bully algorithm (Garcia-Molina, "Elections in a Distributed Computing
//!   System", IEEE Trans. Computers C-31(1), 1982): the highest live id wins, at a cost of
//!   O(n²) messages when the lowest node notices the failure first.
//! - [`lease`]: a leader lease on a store (Chubby's master lease, Burrows 2006; Gray &
//!   Cheriton 1989 for the clock bound): compare-and-set claims, a term that grows with
//!   each grant, and a leader that steps down on its own clock. O(n) messages a takeover.

pub mod bully;
pub mod lab;
pub mod lease;
pub mod soak;
