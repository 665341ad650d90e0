//! The search over one part of a history (Wing & Gong 1993, with Lowe's 2017
//! memoisation, as in Porcupine), written as a resumable state machine so the checker can
//! interleave the parts and stop as soon as one of them fails.
//!
//! Depth-first over the not-yet-linearized events: any operation whose call comes before
//! the earliest remaining return may go next; try each (see `gather_candidates` for the
//! order), apply it to the model, and go deeper; when none fits, undo the last choice
//! and try the next candidate. A configuration (set of operations linearized, model state)
//! seen before, or dominated by one seen before (see `memo.rs`), is not explored again.
//! The search succeeds once every operation that returned is linearized: operations that
//! never returned are optional, and may be left out. When the model names the keys its
//! operations touch, a level tries only the candidates of one group of keys, and a group
//! found stuck makes the search jump back past the levels that did not touch it (see
//! `groups.rs`).
//!
//! Each level's candidates are gathered once, in trial order, on a stack shared by all
//! levels, so resuming a level after backtracking is an index, and a dead end's candidates
//! are at hand for the violation report.

use super::bitset::LinearizedSet;
use super::entries::{EventList, NodeId};
use super::groups::{Groups, Member};
use super::memo::{ConfigId, Insertion, VisitedSet};
use super::model::{Model, Operation};

/// How a part's search ended.
pub(crate) enum SearchEnd {
    /// A linearization: operation numbers within the part, in order. Optional operations
    /// missing from it never took effect.
    Linearized(Vec<u32>),
    /// None exists; the deepest dead end reached, and the model state there.
    Violation { deepest: DeadEnd, state: String },
    /// The search could not go on (its memo is full): nothing is known.
    GaveUp,
}

/// A point where no pending operation could be linearized next.
pub(crate) struct DeadEnd {
    /// Operation numbers within the part, in linearization order.
    pub(crate) prefix: Vec<u32>,
    /// The candidates that could not go next.
    pub(crate) unplaceable: Vec<u32>,
    config: ConfigId,
}

/// One level of the search path: the call linearized there and how to resume the level.
#[derive(Debug, Clone, Copy)]
struct Level {
    call: NodeId,
    /// The configuration before `call` was linearized.
    before: ConfigId,
    /// Where the level's candidates start in `PartitionSearch::candidates`, and the next
    /// one to try.
    first_candidate: usize,
    next_candidate: usize,
    /// The level's focus group and whether its failures so far are all its group's.
    focus: Option<u32>,
    pure: bool,
}

/// The search over one part, paused between calls to [`PartitionSearch::run`].
pub(crate) struct PartitionSearch<'h, M: Model> {
    model: &'h M,
    /// The part's operations, numbered by position here (which is call order).
    ops: Vec<&'h Operation<M::Input, M::Output>>,
    members: Vec<Member>,
    events: EventList,
    required: LinearizedSet,
    optional: LinearizedSet,
    /// Required operations not yet linearized: the search succeeds when none are left.
    required_left: usize,
    visited: VisitedSet<M::State>,
    /// The configuration the search is in.
    current: ConfigId,
    path: Vec<Level>,
    /// The candidates of every level on the path, back to back, each level's in the order
    /// they are tried.
    candidates: Vec<NodeId>,
    first_candidate: usize,
    next_candidate: usize,
    /// Scratch space for ordering a level's optional candidates.
    optional_candidates: Vec<NodeId>,
    /// The independent groups of operations and what is known about each (see
    /// `groups.rs`); `None` when all are one group.
    groups: Option<Groups<M::State>>,
    /// The current level's focus: the group of the operation with the earliest pending
    /// return, whose candidates alone the level tries.
    focus: Option<u32>,
    /// Whether every candidate of the current level tried so far failed because of its
    /// focus group alone: rejected by the model, or leading to a projection of the group
    /// known to be infeasible.
    pure: bool,
    deepest: Option<DeadEnd>,
    /// Set when the memo filled up: the search cannot go on soundly.
    gave_up: bool,
}

impl<'h, M: Model> PartitionSearch<'h, M> {
    /// Prepares the search over `ops`, which must be in call order.
    pub(crate) fn new(model: &'h M, ops: Vec<&'h Operation<M::Input, M::Output>>) -> Self {
        let intervals: Vec<(u64, Option<u64>)> = ops.iter().map(|op| (op.call, op.ret)).collect();
        let events = EventList::new(&intervals);
        let (mut required_count, mut optional_count) = (0u32, 0u32);
        let members: Vec<Member> = ops
            .iter()
            .map(|op| {
                if op.ret.is_some() {
                    required_count += 1;
                    Member::Required(required_count - 1)
                } else {
                    optional_count += 1;
                    Member::Optional(optional_count - 1)
                }
            })
            .collect();
        let required = LinearizedSet::new(required_count as usize);
        let optional = LinearizedSet::new(optional_count as usize);
        let groups = Groups::new(model, &ops, &members);
        let mut visited = VisitedSet::new();
        // The first insertion into an empty memo always succeeds and gets id 0.
        let initial = visited.insert(&required, &optional, model.init());
        let current = match initial {
            Insertion::New(id) => id,
            Insertion::Seen | Insertion::Full => 0,
        };
        let mut search = PartitionSearch {
            model,
            ops,
            members,
            events,
            required,
            optional,
            required_left: required_count as usize,
            visited,
            current,
            path: Vec::new(),
            candidates: Vec::new(),
            first_candidate: 0,
            next_candidate: 0,
            optional_candidates: Vec::new(),
            groups,
            focus: None,
            pure: true,
            deepest: None,
            gave_up: initial == Insertion::Full,
        };
        search.gather_candidates();
        search
    }

    /// Searches for at most `max_steps` model steps. Returns the steps taken and, if the
    /// search finished, how.
    pub(crate) fn run(&mut self, max_steps: u64) -> (u64, Option<SearchEnd>) {
        let mut steps = 0;
        while self.required_left > 0 {
            if self.gave_up {
                return (steps, Some(SearchEnd::GaveUp));
            }
            if let Some(&node) = self.candidates.get(self.next_candidate) {
                if steps == max_steps {
                    return (steps, None);
                }
                steps += 1;
                self.next_candidate += 1;
                self.try_candidate(node);
            } else if !self.backtrack() {
                return (steps, Some(self.violation()));
            }
        }
        let order = self.path.iter().map(|l| self.events.op(l.call)).collect();
        (steps, Some(SearchEnd::Linearized(order)))
    }

    /// Pushes the current level's candidates, the calls before the first remaining
    /// return (only those of the focus group, the first return's, when there are groups),
    /// in the order they are to be tried: required operations first, by call time
    /// as in Porcupine, so that the configurations without optional operations are
    /// explored first and dominate those with them; then optional operations newest first,
    /// since one that took effect most likely did so soon after its call, while one
    /// pending for long most likely never did.
    fn gather_candidates(&mut self) {
        self.first_candidate = self.candidates.len();
        self.next_candidate = self.first_candidate;
        self.optional_candidates.clear();
        let mut first_return = self.events.first();
        while self.events.is_call(first_return) {
            first_return = self.events.next(first_return);
        }
        let focus = self
            .groups
            .as_ref()
            .and_then(|g| g.group_of(self.events.op(first_return)));
        self.focus = focus;
        self.pure = true;
        let mut node = self.events.first();
        while node != first_return {
            let op = self.events.op(node);
            let in_focus = match (&self.groups, focus) {
                (Some(groups), Some(focus)) => groups.group_of(op) == Some(focus),
                _ => true,
            };
            let op = op as usize;
            if in_focus {
                match self.members.get(op) {
                    Some(Member::Optional(_)) => self.optional_candidates.push(node),
                    _ => self.candidates.push(node),
                }
            }
            node = self.events.next(node);
        }
        self.candidates
            .extend(self.optional_candidates.iter().rev().copied());
    }

    /// Adds or removes an operation from the linearized sets.
    #[inline]
    fn toggle(&mut self, op: u32, linearized: bool) {
        match (self.members.get(op as usize), linearized) {
            (Some(&Member::Required(i)), true) => {
                self.required.insert(i);
                self.required_left -= 1;
            }
            (Some(&Member::Required(i)), false) => {
                self.required.remove(i);
                self.required_left += 1;
            }
            (Some(&Member::Optional(i)), true) => self.optional.insert(i),
            (Some(&Member::Optional(i)), false) => self.optional.remove(i),
            (None, _) => {}
        }
    }

    /// Tries to linearize the call `node` next: descends if the model accepts it and the
    /// resulting configuration is new.
    #[inline]
    fn try_candidate(&mut self, node: NodeId) {
        let op = self.events.op(node);
        let next_state = match (self.ops.get(op as usize), self.visited.state(self.current)) {
            (Some(operation), Some(state)) => {
                self.model.step(state, &operation.input, &operation.output)
            }
            _ => None,
        };
        let Some(next_state) = next_state else {
            return;
        };
        // The group's own projection after `op`: if it is known infeasible, so is the
        // configuration, whatever the other groups hold.
        let projection = match &mut self.groups {
            Some(groups) => match groups.after(self.model, op, self.ops.get(op as usize)) {
                Some(projection) if groups.is_infeasible_with(op, &projection) => return,
                Some(projection) => Some(projection),
                // The model rejects in the projection what it accepted in the whole
                // state: its footprints overstate independence. Nothing is pure then.
                None => {
                    self.pure = false;
                    None
                }
            },
            None => None,
        };
        self.toggle(op, true);
        match self
            .visited
            .insert(&self.required, &self.optional, next_state)
        {
            Insertion::New(next) => {
                self.path.push(Level {
                    call: node,
                    before: self.current,
                    first_candidate: self.first_candidate,
                    next_candidate: self.next_candidate,
                    focus: self.focus,
                    pure: self.pure,
                });
                if let (Some(groups), Some(projection)) = (&mut self.groups, projection) {
                    groups.push(op, projection);
                } else if let Some(groups) = &mut self.groups {
                    groups.push_unknown(op);
                }
                self.current = next;
                self.events.lift(node);
                self.gather_candidates();
            }
            Insertion::Seen => {
                // Explored before without success, for reasons this level cannot name.
                self.pure = false;
                self.toggle(op, false);
            }
            Insertion::Full => {
                self.toggle(op, false);
                self.gave_up = true;
            }
        }
    }

    /// With every candidate of the level tried, this path is a dead end. Records it if it
    /// is the deepest yet and undoes the last choice; false if there is none left to undo.
    ///
    /// If every failure of the level was its focus group's own, the group's projection
    /// here is infeasible: it is recorded, and the search jumps back past every level
    /// that did not change that projection (they linearized other groups' operations,
    /// and any configuration with this projection fails, by locality), to the last level
    /// that linearized an operation of the group, whose candidate then failed for the
    /// same group's reason (conflict-directed backjumping, Prosser 1993).
    fn backtrack(&mut self) -> bool {
        if self
            .deepest
            .as_ref()
            .is_none_or(|d| self.path.len() > d.prefix.len())
        {
            // Every call before the first return, not only the group the level tried:
            // none of them can go next either (see `groups.rs`).
            let mut unplaceable = Vec::new();
            let mut node = self.events.first();
            while self.events.is_call(node) {
                unplaceable.push(self.events.op(node));
                node = self.events.next(node);
            }
            unplaceable.sort_unstable();
            self.deepest = Some(DeadEnd {
                prefix: self.path.iter().map(|l| self.events.op(l.call)).collect(),
                unplaceable,
                config: self.current,
            });
        }
        let jump_to = match (&mut self.groups, self.focus, self.pure) {
            (Some(groups), Some(focus), true) => groups.mark_infeasible(focus).then_some(focus),
            _ => None,
        };
        loop {
            self.candidates.truncate(self.first_candidate);
            let Some(level) = self.path.pop() else {
                return false;
            };
            self.current = level.before;
            self.first_candidate = level.first_candidate;
            self.next_candidate = level.next_candidate;
            self.focus = level.focus;
            self.pure = level.pure;
            let op = self.events.op(level.call);
            self.toggle(op, false);
            self.events.unlift(level.call);
            let group = match &mut self.groups {
                Some(groups) => {
                    groups.pop(op);
                    groups.group_of(op)
                }
                None => None,
            };
            match jump_to {
                // A plain backtrack: the child failed for reasons the level cannot name.
                None => {
                    self.pure = false;
                    return true;
                }
                // The level that changed the infeasible projection: its candidate failed
                // for its own group's reason, so it stays as pure as it was.
                Some(focus) if group == Some(focus) => return true,
                Some(_) => {}
            }
        }
    }

    fn violation(&mut self) -> SearchEnd {
        let Some(deepest) = self.deepest.take() else {
            return SearchEnd::GaveUp;
        };
        let state = self
            .visited
            .state(deepest.config)
            .map(|s| self.model.describe_state(s))
            .unwrap_or_default();
        SearchEnd::Violation { deepest, state }
    }
}
