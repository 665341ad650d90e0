//! Linearizability checking: does a concurrent history of operations, each with a call and
//! a return time, have a single sequential order that respects real time and that a
//! sequential specification (a [`Model`]) accepts?
//!
//! The search is Wing & Gong's ("Testing and verifying concurrent objects", J. Parallel
//! Distrib. Comput. 17, 1993): depth-first over which pending operation to linearize next.
//! Lowe's memoisation ("Testing for linearizability", Concurrency Computat.: Pract. Exper.
//! 29, 2017) skips a (set of linearized operations, model state) configuration already
//! explored. Histories are split into independent parts first (per key for a key-value
//! store; linearizability is local, Herlihy & Wing 1990). The design follows Porcupine
//! (Athalye, <https://github.com/anishathalye/porcupine>): events in a doubly linked list
//! that is unlinked and relinked while searching, a bitset of linearized operations, and
//! a cache of configurations.
//!
//! Where this departs from Porcupine: the list lives in an index arena; the bitset carries
//! an incremental Zobrist hash and is stored trimmed; the memo keeps every state, so the
//! search stack holds indices. An operation that never returned is *optional* (Porcupine
//! puts its return at infinity, which is equivalent when the model accepts its unknown
//! output anywhere): the search may leave it out, tries it only after the operations that
//! did return, and skips a configuration when one with the same state and fewer optional
//! operations was explored, which keeps timed-out writes from doubling the search each.
//! Parts are searched in interleaved rounds, so that a part failing fast settles a bad
//! history however hard its other parts are (Porcupine runs parts on parallel goroutines).
//!
//! Cost: exponential in the worst case (the problem is NP-complete, Gibbons & Korach 1997),
//! bounded by the number of distinct configurations, which in practice grows with the
//! concurrency of the history, not its length; many timed-out operations pending at once on
//! one part whose effects are hard to rule out (appends, say) remain expensive, as they are
//! for Porcupine and Knossos. [`CheckOptions::max_steps`] bounds the work.
//!
//! - [`model`]: [`Operation`] and the [`Model`] trait.
//! - [`models`]: [`Register`], [`CasRegister`], [`KvModel`].
//! - [`checker`]: [`check`], [`check_with`], [`CheckResult`]: a witness order, or the
//!   longest linearizable prefix and the operations that cannot go next.
//! - [`jepsen`]: parsers for Jepsen's etcd log and EDN key-value histories.
//! - [`generate`]: random histories that are linearizable by construction.

mod bitset;
pub mod checker;
pub mod edn;
mod entries;
pub mod generate;
mod groups;
pub mod jepsen;
mod memo;
pub mod model;
pub mod models;
mod search;

pub use checker::{
    CheckOptions, CheckResult, PartitionOutcome, PartitionResult, Verdict, check, check_with,
    replay,
};
pub use model::{Footprint, MAX_OPERATIONS, Model, Operation, validate_history};
pub use models::{
    CasRegister, CasRegisterInput, KvInput, KvMap, KvModel, KvOutput, KvStoreModel, MicroOp,
    MultiRegister, MultiRegisterOutput, NilRead, Register, RegisterInput, RegisterOutput,
    Registers, Response,
};

#[cfg(test)]
mod knossos_tests;
#[cfg(test)]
mod tests;
