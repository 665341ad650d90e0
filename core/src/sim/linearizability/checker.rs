//! The checker's entry points and results: split the history into parts, search each
//! (see `search.rs`), interleaving them, and report a witness or a violation per part.
//! Deciding linearizability is NP-complete (Gibbons & Korach 1997), so callers facing
//! untrusted histories bound the work with [`CheckOptions::max_steps`].

use serde::{Deserialize, Serialize};

use super::model::{Model, Operation, validate_history, validate_partition};
use super::search::{PartitionSearch, SearchEnd};
use crate::error::{DistlabError, Result};

/// The overall judgement of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Every part has a linearization.
    Linearizable,
    /// Some part has none.
    NotLinearizable,
    /// No part is known to fail, but the step budget ran out before all were decided.
    Undecided,
}

/// What the checker found in one independent part of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PartitionOutcome {
    /// A witness: the part's operations, as indices into the history, in an order that
    /// respects real time and that the model accepts. Operations that never returned may
    /// be left out of it, in `omitted`: the witness has them never take effect.
    Linearizable {
        order: Vec<usize>,
        omitted: Vec<usize>,
    },
    /// No linearization exists. `prefix` is the longest linearizable prefix the search
    /// reached (indices into the history, in linearization order); `unplaceable` are the
    /// operations that were candidates to go next after it (pending, and called before the
    /// earliest pending return), none of which any extension could place; `state` describes
    /// the model state after `prefix`.
    Violation {
        prefix: Vec<usize>,
        unplaceable: Vec<usize>,
        state: String,
    },
    /// The search stopped before deciding this part: the step budget ran out, or another
    /// part's violation had already settled the verdict.
    Undecided,
}

/// The result for one part of the history (see [`Model::partition`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionResult {
    /// The part's operations, as indices into the history, in call order.
    pub ops: Vec<usize>,
    pub outcome: PartitionOutcome,
}

/// The result of checking a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// True exactly when `verdict` is [`Verdict::Linearizable`].
    pub linearizable: bool,
    pub verdict: Verdict,
    /// One entry per part, in the order [`Model::partition`] returned them.
    pub partitions: Vec<PartitionResult>,
    /// Model steps the search took in all, a measure of how hard the history was.
    pub steps: u64,
}

impl CheckResult {
    /// The parts that have no linearization.
    pub fn violations(&self) -> impl Iterator<Item = &PartitionResult> {
        self.partitions
            .iter()
            .filter(|p| matches!(p.outcome, PartitionOutcome::Violation { .. }))
    }
}

/// How much work [`check_with`] may do and how much it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckOptions {
    /// Give up after this many model steps in all (`None`: never), leaving the parts not
    /// yet decided as [`PartitionOutcome::Undecided`]. The search is exponential in the
    /// worst case, so anything checking untrusted histories (the page) should set it.
    pub max_steps: Option<u64>,
    /// Decide every part even after one is found not linearizable. Off by default: one
    /// violation settles the verdict, and the other parts of a bad history can be far
    /// harder to decide than the one that fails first.
    pub check_every_part: bool,
}

/// Steps a part may take before the checker turns to the next one, in the first round;
/// each round doubles it. Parts are interleaved so that one part that is hard to decide
/// does not hide another that fails quickly (Porcupine gets the same effect by checking
/// parts on parallel goroutines); doubling keeps the switching overhead logarithmic and
/// lets easy parts finish, and free their memo, in the first round.
const FIRST_ROUND_STEPS: u64 = 1 << 14;

/// Checks whether `ops` is linearizable with respect to `model`, searching as long as it
/// takes and stopping at the first part found not linearizable. Errors if an operation
/// returns before its call or the model's partition is malformed.
pub fn check<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>]) -> Result<CheckResult> {
    check_with(model, ops, &CheckOptions::default())
}

/// Like [`check`], with a step budget and the choice to decide every part.
pub fn check_with<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Result<CheckResult> {
    validate_history(ops)?;
    let mut parts = model.partition(ops);
    validate_partition(&parts, ops.len())?;
    for members in &mut parts {
        members.sort_by_key(|&i| (ops.get(i).map_or(0, |op| op.call), i));
    }
    let mut budget = options.max_steps.unwrap_or(u64::MAX);
    let mut outcomes: Vec<Option<PartitionOutcome>> = vec![None; parts.len()];
    let mut searches: Vec<Option<PartitionSearch<'_, M>>> = Vec::new();
    searches.resize_with(parts.len(), || None);
    let mut round_steps = FIRST_ROUND_STEPS;
    loop {
        let mut settled = false;
        let mut unfinished = false;
        for (index, members) in parts.iter().enumerate() {
            let (Some(outcome @ None), Some(slot)) =
                (outcomes.get_mut(index), searches.get_mut(index))
            else {
                continue;
            };
            let search = slot.get_or_insert_with(|| {
                PartitionSearch::new(model, members.iter().filter_map(|&i| ops.get(i)).collect())
            });
            let (steps, end) = search.run(round_steps.min(budget));
            budget -= steps;
            let Some(end) = end else {
                unfinished = true;
                continue;
            };
            *slot = None;
            let decided = to_outcome(end, members);
            settled =
                matches!(decided, PartitionOutcome::Violation { .. }) && !options.check_every_part;
            *outcome = Some(decided);
            if settled {
                break;
            }
        }
        if settled || !unfinished || budget == 0 {
            break;
        }
        round_steps = round_steps.saturating_mul(2);
    }
    let partitions: Vec<PartitionResult> = parts
        .into_iter()
        .zip(outcomes)
        .map(|(members, outcome)| PartitionResult {
            ops: members,
            outcome: outcome.unwrap_or(PartitionOutcome::Undecided),
        })
        .collect();
    let failed = partitions
        .iter()
        .any(|p| matches!(p.outcome, PartitionOutcome::Violation { .. }));
    let undecided = partitions
        .iter()
        .any(|p| matches!(p.outcome, PartitionOutcome::Undecided));
    let verdict = if failed {
        Verdict::NotLinearizable
    } else if undecided {
        Verdict::Undecided
    } else {
        Verdict::Linearizable
    };
    Ok(CheckResult {
        linearizable: verdict == Verdict::Linearizable,
        verdict,
        partitions,
        steps: options.max_steps.unwrap_or(u64::MAX) - budget,
    })
}

/// Translates a part's search result from operation numbers within the part to indices
/// into the history.
fn to_outcome(end: SearchEnd, members: &[usize]) -> PartitionOutcome {
    let to_history = |local: Vec<u32>| -> Vec<usize> {
        local
            .into_iter()
            .filter_map(|op| members.get(op as usize).copied())
            .collect()
    };
    match end {
        SearchEnd::Linearized(order) => {
            let mut placed = vec![false; members.len()];
            for &op in &order {
                if let Some(flag) = placed.get_mut(op as usize) {
                    *flag = true;
                }
            }
            let omitted = members
                .iter()
                .zip(placed)
                .filter(|&(_, placed)| !placed)
                .map(|(&index, _)| index)
                .collect();
            PartitionOutcome::Linearizable {
                order: to_history(order),
                omitted,
            }
        }
        SearchEnd::Violation { deepest, state } => PartitionOutcome::Violation {
            prefix: to_history(deepest.prefix),
            unplaceable: to_history(deepest.unplaceable),
            state,
        },
        SearchEnd::GaveUp => PartitionOutcome::Undecided,
    }
}

/// Replays `order` (indices into `ops`) as a sequential run and returns the final state:
/// an independent check of a witness or a reported prefix. Errors, naming the position in
/// `order`, if an index is out of range, an operation returned before an earlier one in the
/// order was called (real time violated), or the model rejects an operation.
pub fn replay<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    order: &[usize],
) -> Result<M::State> {
    let mut state = model.init();
    let mut latest_call: Option<(usize, u64)> = None;
    for (position, &index) in order.iter().enumerate() {
        let field = || format!("order[{position}]");
        let op = ops.get(index).ok_or_else(|| {
            DistlabError::field(field(), format!("no operation {index} in the history"))
        })?;
        if let Some((earlier, call)) = latest_call
            && op.ret_or_infinity() < call
        {
            return Err(DistlabError::field(
                field(),
                format!(
                    "operation {index} returned at {} before operation {earlier}, placed \
                     earlier, was called at {call}",
                    op.ret_or_infinity()
                ),
            ));
        }
        if latest_call.is_none_or(|(_, call)| op.call > call) {
            latest_call = Some((index, op.call));
        }
        state = model.step(&state, &op.input, &op.output).ok_or_else(|| {
            DistlabError::field(
                field(),
                format!(
                    "the model rejects operation {index}, {}, in state {}",
                    model.describe(&op.input, &op.output),
                    model.describe_state(&state)
                ),
            )
        })?;
    }
    Ok(state)
}
