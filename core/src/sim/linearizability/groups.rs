//! Independent groups of operations, and what the search has learnt about each: the
//! basis of two reductions of the search for models whose operations touch keys
//! ([`Model::footprint`]), such as a key-value store or Knossos' multi-register checked
//! whole.
//!
//! Operations are grouped so that operations of different groups touch disjoint keys
//! (union-find over the footprints). Such operations commute, and accepting one never
//! depends on the other, so a group's *projection* of a configuration — the group's
//! operations linearized, and the state reached by applying just them, in path order,
//! from the initial state — is all that decides whether the group's operations can still
//! be placed. By locality (Herlihy & Wing 1990) a configuration can be completed only if
//! every group's projection can be, on the group's own sub-history.
//!
//! 1. **Persistent sets** (Godefroid, "Partial-Order Methods for the Verification of
//!    Concurrent Systems", LNCS 1032, 1996): each level tries only the candidates of the
//!    group of the operation with the earliest pending return, its *focus*. That loses no
//!    linearization. Say one exists from here, `s`, and let `x` be its first operation of
//!    the focus group (there is one: the earliest-returning operation is in it).
//!    Everything before `x` in `s` is of other groups, so commutes with `x`; and `x` may
//!    move to the front in real time too: it precedes the earliest-returning operation in
//!    `s` (or is it), so it was called before that return, and every operation it
//!    overtakes is pending, so returns no earlier. The moved sequence is a linearization
//!    starting with a candidate the level tries. For the same reason, when no candidate of
//!    the focus can go next, none of the others can.
//! 2. **Infeasible projections** (nogoods): when every candidate of a level fails because
//!    of the focus group alone (the model rejects it, or it leads to a projection already
//!    known infeasible), the focus group's projection there is infeasible: the level's
//!    candidates are exactly those of the group's own sub-history at that projection. It
//!    is recorded, any later configuration with that projection is skipped at once
//!    however the other groups stand, and the search jumps back to the last level that
//!    changed the projection, skipping the levels between, whose alternatives only
//!    reshuffle other groups (see `PartitionSearch::backtrack`).
//!
//! Without these, a history of many independent keys explores the product of the keys'
//! alternatives: a wrong guess on one key is undone only after every combination of the
//! other keys' guesses made since has failed in turn.

use std::hash::Hash;

use super::bitset::LinearizedSet;
use super::memo::VisitedSet;
use super::model::{Footprint, Model, Operation};

/// An operation's membership: in the required set or the optional set, at this index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Member {
    Required(u32),
    Optional(u32),
}

/// The groups of one part's operations and their projections on the search path.
pub(crate) struct Groups<S> {
    /// Per operation: its group, and its number among the group's required or optional
    /// operations.
    group: Vec<u32>,
    local: Vec<Member>,
    required: Vec<LinearizedSet>,
    optional: Vec<LinearizedSet>,
    /// Per group, its projected state after each of its operations on the path, the
    /// initial state first; `None` where the projection is unknown (see `push_unknown`).
    states: Vec<Vec<Option<S>>>,
    /// Per group, the projections known infeasible.
    infeasible: Vec<VisitedSet<S>>,
}

impl<S: Clone + Eq + Hash> Groups<S> {
    /// Groups `ops` (in call order, `members` their required / optional numbering);
    /// `None` if they form a single group, or some operation may touch everything.
    pub(crate) fn new<M: Model<State = S>>(
        model: &M,
        ops: &[&Operation<M::Input, M::Output>],
        members: &[Member],
    ) -> Option<Self> {
        let roots = independent_groups(model, ops)?;
        let mut dense: rustc_hash::FxHashMap<u32, u32> = rustc_hash::FxHashMap::default();
        let group: Vec<u32> = roots
            .iter()
            .map(|&root| {
                let next = dense.len() as u32;
                *dense.entry(root).or_insert(next)
            })
            .collect();
        let count = dense.len();
        let (mut required_counts, mut optional_counts) = (vec![0u32; count], vec![0u32; count]);
        let local = group
            .iter()
            .zip(members)
            .map(|(&g, member)| {
                let counts = match member {
                    Member::Required(_) => &mut required_counts,
                    Member::Optional(_) => &mut optional_counts,
                };
                let slot = counts.get_mut(g as usize);
                let index = slot.map_or(0, |c| {
                    *c += 1;
                    *c - 1
                });
                match member {
                    Member::Required(_) => Member::Required(index),
                    Member::Optional(_) => Member::Optional(index),
                }
            })
            .collect();
        Some(Groups {
            group,
            local,
            required: required_counts
                .iter()
                .map(|&c| LinearizedSet::new(c as usize))
                .collect(),
            optional: optional_counts
                .iter()
                .map(|&c| LinearizedSet::new(c as usize))
                .collect(),
            states: vec![vec![Some(model.init())]; count],
            infeasible: (0..count).map(|_| VisitedSet::new()).collect(),
        })
    }

    pub(crate) fn group_of(&self, op: u32) -> Option<u32> {
        self.group.get(op as usize).copied()
    }

    /// The projection of `op`'s group after `op` (given as `operation`), if known and
    /// the model accepts it there.
    pub(crate) fn after<M: Model<State = S>>(
        &self,
        model: &M,
        op: u32,
        operation: Option<&&Operation<M::Input, M::Output>>,
    ) -> Option<S> {
        let g = self.group_of(op)?;
        let state = self.states.get(g as usize)?.last()?.as_ref()?;
        let operation = operation?;
        model.step(state, &operation.input, &operation.output)
    }

    fn toggle(&mut self, op: u32, linearized: bool) {
        let Some(g) = self.group_of(op) else {
            return;
        };
        let (set, index) = match self.local.get(op as usize) {
            Some(&Member::Required(i)) => (self.required.get_mut(g as usize), i),
            Some(&Member::Optional(i)) => (self.optional.get_mut(g as usize), i),
            None => return,
        };
        if let Some(set) = set {
            if linearized {
                set.insert(index);
            } else {
                set.remove(index);
            }
        }
    }

    /// Whether linearizing `op` next, reaching `projection`, gives its group a projection
    /// known infeasible.
    pub(crate) fn is_infeasible_with(&mut self, op: u32, projection: &S) -> bool {
        let Some(g) = self.group_of(op) else {
            return false;
        };
        self.toggle(op, true);
        let known = match (
            self.infeasible.get(g as usize),
            self.required.get(g as usize),
            self.optional.get(g as usize),
        ) {
            (Some(infeasible), Some(required), Some(optional)) => {
                infeasible.covers(required, optional, projection)
            }
            _ => false,
        };
        self.toggle(op, false);
        known
    }

    /// `op` is linearized, its group's projection now `projection`.
    pub(crate) fn push(&mut self, op: u32, projection: S) {
        self.toggle(op, true);
        if let Some(states) = self
            .group_of(op)
            .and_then(|g| self.states.get_mut(g as usize))
        {
            states.push(Some(projection));
        }
    }

    /// `op` is linearized, and its group's projection is unknown: the model accepted it
    /// in the whole state but not in the projection. Nothing is recorded for the group
    /// until `op` is undone.
    pub(crate) fn push_unknown(&mut self, op: u32) {
        self.toggle(op, true);
        if let Some(states) = self
            .group_of(op)
            .and_then(|g| self.states.get_mut(g as usize))
        {
            states.push(None);
        }
    }

    /// Undoes the latest `push` of `op`.
    pub(crate) fn pop(&mut self, op: u32) {
        self.toggle(op, false);
        if let Some(states) = self
            .group_of(op)
            .and_then(|g| self.states.get_mut(g as usize))
        {
            states.pop();
        }
    }

    /// Records `group`'s current projection as infeasible; false if the projection is
    /// unknown, and nothing can be said.
    pub(crate) fn mark_infeasible(&mut self, group: u32) -> bool {
        let g = group as usize;
        let state = self.states.get(g).and_then(|s| s.last()).cloned().flatten();
        if let (Some(state), Some(infeasible), Some(required), Some(optional)) = (
            state,
            self.infeasible.get_mut(g),
            self.required.get(g),
            self.optional.get(g),
        ) {
            // A full table only forgets a nogood: the search stays sound.
            let _ = infeasible.insert(required, optional, state);
            return true;
        }
        false
    }
}

/// Groups the operations so that operations of different groups touch disjoint keys
/// (union-find over [`Model::footprint`]): per operation, the smallest operation number
/// of its group. `None` if there is a single group.
fn independent_groups<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
) -> Option<Vec<u32>> {
    let mut parent: Vec<u32> = (0..ops.len() as u32).collect();
    fn root(parent: &mut [u32], mut op: u32) -> u32 {
        while let Some(&up) = parent.get(op as usize) {
            if up == op {
                break;
            }
            // Path halving.
            let grand = parent.get(up as usize).copied().unwrap_or(up);
            if let Some(slot) = parent.get_mut(op as usize) {
                *slot = grand;
            }
            op = grand;
        }
        op
    }
    let mut owner: rustc_hash::FxHashMap<u64, u32> = rustc_hash::FxHashMap::default();
    for (index, op) in ops.iter().enumerate() {
        let Footprint::Keys(keys) = model.footprint(&op.input) else {
            return None;
        };
        for key in keys {
            let first = *owner.entry(key).or_insert(index as u32);
            let (a, b) = (root(&mut parent, first), root(&mut parent, index as u32));
            if a != b
                && let Some(slot) = parent.get_mut(a.max(b) as usize)
            {
                *slot = a.min(b);
            }
        }
    }
    let groups: Vec<u32> = (0..ops.len() as u32)
        .map(|op| root(&mut parent, op))
        .collect();
    let first = groups.first().copied();
    if groups.iter().all(|&g| Some(g) == first) {
        return None;
    }
    Some(groups)
}
