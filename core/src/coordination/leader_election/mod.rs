//! Leader election (catalog id `coordination.leader-election`).
//!
//! - [`bully`]: the bully algorithm (Garcia-Molina, "Elections in a Distributed Computing
//!   System", IEEE Trans. Computers C-31(1), 1982): the highest live id wins, at a cost of
//!   O(n²) messages when the lowest node notices the failure first.
//!
//! Not here yet: the lease-based election on a store, its lab and its soak (see the
//! issue's `coordination.leader-election`).

pub mod bully;
