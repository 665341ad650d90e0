//! What the checker judges: operations with real-time intervals, and the sequential
//! specification (a [`Model`]) they must be explainable by.

use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hash;

use crate::error::{DistlabError, Result};

/// One client operation of a history: what was asked, what came back, and when.
///
/// The interval `[call, ret]` is closed: an operation returning at 20 is concurrent with one
/// called at 20 (clocks that return equal readings for distinct events must not turn
/// concurrent operations into ordered ones). Times are in any unit, only their order counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation<I, O> {
    /// The client (Jepsen: process) that issued the operation; only shown, never checked.
    pub client: u64,
    pub input: I,
    /// When the operation was invoked.
    pub call: u64,
    pub output: O,
    /// When its response arrived; `None` if it never did (timed out, Jepsen `:info`): the
    /// operation may then have taken effect at any point after its call, or never, and
    /// the checker may linearize it anywhere after its call or leave it out. Its `output`
    /// is usually [`super::Response::Unknown`].
    pub ret: Option<u64>,
}

impl<I, O> Operation<I, O> {
    /// The return time, with a missing return standing for "after everything".
    pub fn ret_or_infinity(&self) -> u64 {
        self.ret.unwrap_or(u64::MAX)
    }
}

/// What an operation reads or writes (see [`Model::footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footprint {
    /// Possibly the whole state: dependent on every other operation.
    Everything,
    /// Only these keys (any stable numbering, a hash of the key's name for instance: two
    /// keys sharing a number merely lose some independence).
    Keys(Vec<u64>),
}

/// A sequential specification: the states an object can be in and which (input, output)
/// pairs each state allows.
pub trait Model {
    /// A model state. The checker memoises (operations linearized, state) pairs, so states
    /// must hash and compare by value.
    type State: Clone + Eq + Hash + Debug;
    type Input: Clone + Debug;
    type Output: Clone + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// `None` if `output` is impossible for `input` in `state`; otherwise the next state.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Splits a history into independent sub-histories (for example one per key), each
    /// checked on its own from [`Model::init`]: a history is linearizable if and only if
    /// every part is (locality, Herlihy & Wing 1990), and the search is exponential in the
    /// size of a part, so this is the single most effective speed-up. Every index of `ops`
    /// must appear in exactly one part. The default keeps everything together.
    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }

    /// What an operation touches, for the search's partial-order reduction (see
    /// `search.rs`). Two operations whose footprints share no key must be independent:
    /// applied in either order from any state they are accepted or rejected alike and
    /// reach the same state (operations on different keys of a store). The default,
    /// [`Footprint::Everything`], claims no independence and is always sound.
    fn footprint(&self, _input: &Self::Input) -> Footprint {
        Footprint::Everything
    }

    /// A short human-readable form of one operation, for the page (`write(3)`).
    fn describe(&self, input: &Self::Input, output: &Self::Output) -> String {
        format!("{input:?} -> {output:?}")
    }

    /// A short human-readable form of a state, for the page.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The largest history the checker accepts: operation numbers are kept in `u32` so the
/// search's arrays stay compact, and each operation takes two list entries.
pub const MAX_OPERATIONS: usize = (u32::MAX / 4) as usize;

/// Checks that every operation returns no earlier than it was called and that the history
/// is not too large, naming the first offending operation.
pub fn validate_history<I, O>(ops: &[Operation<I, O>]) -> Result<()> {
    if ops.len() > MAX_OPERATIONS {
        return Err(DistlabError::field(
            "ops",
            format!(
                "{} operations is more than the {MAX_OPERATIONS} the checker accepts",
                ops.len()
            ),
        ));
    }
    for (index, op) in ops.iter().enumerate() {
        if let Some(ret) = op.ret
            && ret < op.call
        {
            return Err(DistlabError::field(
                format!("ops[{index}].ret"),
                format!("returns at {ret}, before its call at {}", op.call),
            ));
        }
    }
    Ok(())
}

/// Checks that `parts` (from [`Model::partition`]) mentions every operation of a history of
/// `len` operations exactly once.
pub(crate) fn validate_partition(parts: &[Vec<usize>], len: usize) -> Result<()> {
    let mut seen = vec![false; len];
    for (part_index, part) in parts.iter().enumerate() {
        for &op in part {
            match seen.get_mut(op) {
                None => {
                    return Err(DistlabError::field(
                        format!("partition[{part_index}]"),
                        format!("names operation {op}, but the history has {len}"),
                    ));
                }
                Some(true) => {
                    return Err(DistlabError::field(
                        format!("partition[{part_index}]"),
                        format!("names operation {op}, which is already in a part"),
                    ));
                }
                Some(flag) => *flag = true,
            }
        }
    }
    if let Some(missing) = seen.iter().position(|&s| !s) {
        return Err(DistlabError::field(
            "partition",
            format!("operation {missing} is in no part"),
        ));
    }
    Ok(())
}
