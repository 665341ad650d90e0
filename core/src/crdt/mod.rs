//! Conflict-free replicated data types: replicas that take updates independently and
//! converge by merging, with no coordination. The catalogue and its specifications follow
//! Shapiro, Preguiça, Baquero & Zawirski 2011, "A comprehensive study of Convergent and
//! Commutative Replicated Data Types" (INRIA RR-7506); the text sequence is Roh, Jeon, Kim
//! & Lee 2011's Replicated Growable Array.
//!
//! Every type here is state-based (a CvRDT): [`Crdt::merge`] is the join of a
//! semilattice, so it is commutative, associative and idempotent, and replicas that have
//! merged each other's states hold equal states whatever the order and however often
//! states were delivered. Op delivery is the delta-state form of Almeida, Shoker &
//! Baquero 2018 ("Delta state replicated data types"): [`Crdt::update`] returns the
//! update's *delta*, a small state that another replica merges like any state — so ops
//! too may arrive in any order, duplicated, and still converge, which plain op-based CRDTs
//! need exactly-once causal delivery for.
//!
//! Memory is bounded against input from JS: a value holds at most [`MAX_ENTRIES`] entries
//! (counter slots, elements, tags and tombstones, RGA nodes); an update or merge that would
//! pass it, or overflow a counter, is an error and leaves the value unchanged.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;

use crate::error::{DistlabError, Result};

pub mod g_counter;
pub mod g_set;
pub mod lab;
pub mod lww_map;
pub mod lww_register;
pub mod mv_register;
pub mod or_set;
pub mod pn_counter;
pub mod replica;
pub mod rga;
pub mod two_p_set;

#[cfg(test)]
mod laws;

pub use g_counter::GCounter;
pub use g_set::GSet;
pub use lww_map::LwwMap;
pub use lww_register::LwwRegister;
pub use mv_register::MvRegister;
pub use or_set::OrSet;
pub use pn_counter::PnCounter;
pub use rga::Rga;
pub use two_p_set::TwoPSet;

/// A replica's id. Updates name the replica making them; two replicas must never share
/// an id (counters and tags would collide).
pub type ReplicaId = u32;

/// The most entries one CRDT value holds (see the module docs).
pub const MAX_ENTRIES: usize = 1 << 20;

/// What set and register elements may be: ordered (states are kept sorted, so equal
/// states are equal values and serialise the same), hashable, serialisable.
pub trait Element: Ord + Clone + Debug + Hash + Serialize + DeserializeOwned {}
impl<T: Ord + Clone + Debug + Hash + Serialize + DeserializeOwned> Element for T {}

/// A state-based CRDT with delta updates.
pub trait Crdt: Clone + Default + PartialEq + Debug + Hash + Serialize + DeserializeOwned {
    /// One update a client asks of a replica.
    type Update: Clone + Debug + PartialEq;
    /// What a reader sees.
    type Value: Clone + Debug + PartialEq + Serialize;

    /// Applies `update` at `replica`, whose clock reads `now_ms` (only the last-writer-wins
    /// types read it), and returns the update's delta: merging it into any replica has
    /// the update's effect there. On error the value is unchanged.
    fn update(&mut self, replica: ReplicaId, now_ms: u64, update: &Self::Update) -> Result<Self>;
    /// Joins `other` into this value. On error (the bounds, or states that contradict each
    /// other, which no two replicas of one object can produce) the value is unchanged.
    fn merge(&mut self, other: &Self) -> Result<()>;
    fn value(&self) -> Self::Value;
    /// Entries held, tombstones included: what [`MAX_ENTRIES`] bounds.
    fn entries(&self) -> usize;
}

/// Checks that `adding` more entries fit beside `held`.
pub(crate) fn check_room(what: &str, held: usize, adding: usize) -> Result<()> {
    if held.saturating_add(adding) > MAX_ENTRIES {
        return Err(DistlabError::InvalidState(format!(
            "{what} would hold {} entries, more than the {MAX_ENTRIES} allowed",
            held.saturating_add(adding)
        )));
    }
    Ok(())
}

/// A last-writer-wins timestamp: the writer's clock, then its replica id to break ties
/// between replicas whose clocks read the same.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stamp {
    pub time_ms: u64,
    pub replica: ReplicaId,
}
