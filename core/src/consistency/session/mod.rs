//! Session guarantees (catalog id `consistency.session`), after Terry, Demers, Petersen,
//! Spreitzer, Theimer & Welch, "Session Guarantees for Weakly Consistent Replicated Data"
//! (PDIS 1994): over a store whose replicas lag its primary, a client whose operations
//! reach any replica can fail to read its own write (read your writes) or read a value
//! older than one it already read (monotonic reads). Two fixes: stick each session to one
//! node, or let the client carry the newest version it has seen and have a node that is
//! behind wait until it catches up (the paper's read and write sets; here one number, as
//! the store orders every write in one log).
//!
//! - [`checker`]: finds the reads that broke either guarantee in a client history, and
//!   the operations to blame.
//! - [`node`]: the primary and its asynchronously fed replicas.
//! - [`lab`]: the lab, clients routed any / sticky / versioned.
//!
//! The paper's other two guarantees (writes follow reads, monotonic writes) hold here by
//! construction — one primary orders every write as it arrives — and are not checked.

pub mod checker;
pub mod lab;
pub mod node;
