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
//! search stack holds indices. Parts are searched in interleaved rounds, so that a part
//! failing fast settles a bad history however hard its other parts are (Porcupine runs
//! parts on parallel goroutines). The rest is algorithmic, and is where the speed comes
//! from:
//!
//! - **Never-returned operations are optional, and dominated configurations are pruned.**
//!   Porcupine puts the return of a timed-out operation at infinity, so every
//!   configuration must eventually place it somewhere; here it may be left out ("it never
//!   took effect"), it is tried only after the operations that did return, and a
//!   configuration is skipped when one with the same state and a *subset* of its optional
//!   operations was explored (`memo.rs`: whatever the larger set can do, the smaller can
//!   by leaving the extras out). Without this every timed-out write that could be placed
//!   harmlessly (just before a later write overwrites it) doubles the search. Most of the
//!   gain on Jepsen's etcd histories, which are full of `:info` operations, comes from
//!   this, not from constant factors.
//! - **Independent keys are not interleaved** (`groups.rs`). A model may say which keys an
//!   operation touches ([`Model::footprint`]); operations on disjoint keys commute. Two
//!   reductions follow, and they make a whole key-value store (Porcupine's 50-client
//!   histories, checked without splitting by key) or a multi-register decidable:
//!   - a better *search order*, from partial-order reduction: each level tries only the
//!     candidates of the group (connected keys) of the operation with the earliest pending
//!     return, a persistent set (Godefroid 1996), so interleavings of other keys that only
//!     reorder independent work are never generated;
//!   - *pruning of equivalent states* by group: when a group's own projection of a
//!     configuration (its operations linearized, the state they alone reach) is found
//!     infeasible, every configuration holding it is skipped, however the other keys
//!     stand (locality, Herlihy & Wing 1990), and the search backjumps over the levels
//!     that only moved other keys (Prosser 1993). Without this a wrong guess on one key
//!     is undone only after every combination of the other keys' guesses made since has
//!     failed in turn: the search explores the product of the keys' alternatives.
//!
//!   Splitting by key up front ([`Model::partition`]) is still cheaper where it applies:
//!   the whole-store search re-walks the other keys' operations after each backjump.
//!
//! Cost: exponential in the worst case (the problem is NP-complete, Gibbons & Korach 1997),
//! bounded by the number of distinct configurations, which in practice grows with the
//! concurrency of the history, not its length; many timed-out operations pending at once on
//! one part whose effects are hard to rule out (appends, say) remain expensive, as they are
//! for Porcupine and Knossos. [`CheckOptions::max_steps`] bounds the work.
//!
//! - [`model`]: [`Operation`] and the [`Model`] trait.
//! - [`models`]: [`Register`], [`CasRegister`] (both with an initial value and a
//!   [`NilRead`] meaning), Knossos' [`MultiRegister`], [`KvModel`] (split by key) and
//!   [`KvStoreModel`] (whole).
//! - [`checker`]: [`check`], [`check_with`], [`CheckResult`]: a witness order, or the
//!   longest linearizable prefix and the operations that cannot go next.
//! - [`jepsen`]: parsers for Jepsen's etcd log and for EDN histories: registers,
//!   compare-and-set registers, multi-registers (Knossos' format) and key-value stores.
//! - [`edn`]: the EDN reader they use, whose errors name line and column.
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
