//! Consistency: logical clocks and the orders they give to events.
//!
//! - [`vector_clock`]: vector clocks (Fidge 1988, Mattern 1989): compare as before / after /
//!   equal / concurrent, and merge. The multi-value register of [`crate::crdt`] versions its
//!   values with them.

pub mod vector_clock;
