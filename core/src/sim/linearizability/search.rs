//! The search over one part of a history (Wing & Gong 1993, with Lowe's 2017
//! memoisation, as in Porcupine), written as a resumable state machine so the checker can
//! interleave the parts and stop as soon as one of them fails.
//!
//! Depth-first over the not-yet-linearized events: any operation whose call comes before
//! the earliest remaining return may go next; try each in call order, apply it to the
//! model, and go deeper; when none fits, undo the last choice and try the next candidate.
//! A configuration (set of operations linearized, model state) seen before, or dominated
//! by one seen before (see `memo.rs`), is not explored again. The search succeeds once
//! every operation that returned is linearized: operations that never returned are
//! optional, and are tried only after the required candidates at each step, so that the
//! configurations without them are explored first and dominate those with them, and
//! newest first (see [`Pass::Optional`]).

use super::bitset::LinearizedSet;
use super::entries::{EventList, NIL, NodeId};
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

/// An operation's membership: in the required set or the optional set, at this index.
#[derive(Debug, Clone, Copy)]
enum Member {
    Required(u32),
    Optional(u32),
}

/// Which candidates the scan of the pending calls is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Calls of operations that returned, oldest first, up to the first return.
    Required,
    /// Then calls of operations that never returned, newest first: one that took effect
    /// most likely did so soon after its call, while one pending for long most likely
    /// never took effect, and trying it first would explore every order of such stale
    /// operations before the one that matters.
    Optional,
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
    /// Optional operations not yet linearized.
    optional_left: usize,
    visited: VisitedSet<M::State>,
    /// The configuration the search is in.
    current: ConfigId,
    /// The calls linearized so far, each with the configuration before it.
    path: Vec<(NodeId, ConfigId)>,
    deepest: Option<DeadEnd>,
    /// The next event to look at, and which candidates the scan is after.
    node: NodeId,
    pass: Pass,
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
        let mut visited = VisitedSet::new();
        // The first insertion into an empty memo always succeeds and gets id 0.
        let initial = visited.insert(&required, &optional, model.init());
        let current = match initial {
            Insertion::New(id) => id,
            Insertion::Seen | Insertion::Full => 0,
        };
        let node = events.first();
        PartitionSearch {
            model,
            ops,
            members,
            events,
            required,
            optional,
            required_left: required_count as usize,
            optional_left: optional_count as usize,
            visited,
            current,
            path: Vec::new(),
            deepest: None,
            node,
            pass: Pass::Required,
            gave_up: initial == Insertion::Full,
        }
    }

    /// Searches for at most `max_steps` model steps. Returns the steps taken and, if the
    /// search finished, how.
    pub(crate) fn run(&mut self, max_steps: u64) -> (u64, Option<SearchEnd>) {
        let mut steps = 0;
        while self.required_left > 0 {
            if self.gave_up {
                return (steps, Some(SearchEnd::GaveUp));
            }
            if self.events.is_call(self.node) {
                let wanted = match self.pass {
                    Pass::Required => !self.events.is_call_without_return(self.node),
                    Pass::Optional => self.events.is_call_without_return(self.node),
                };
                if !wanted {
                    self.advance();
                    continue;
                }
                if steps == max_steps {
                    return (steps, None);
                }
                steps += 1;
                self.try_candidate();
            } else if self.pass == Pass::Required && self.optional_left > 0 {
                // Required candidates exhausted at the first return; now the optional
                // ones, walking back from there.
                self.pass = Pass::Optional;
                self.node = self.events.prev(self.node);
            } else if !self.backtrack() {
                return (steps, Some(self.violation()));
            }
        }
        let order = self.path.iter().map(|&(n, _)| self.events.op(n)).collect();
        (steps, Some(SearchEnd::Linearized(order)))
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
            (Some(&Member::Optional(i)), true) => {
                self.optional.insert(i);
                self.optional_left -= 1;
            }
            (Some(&Member::Optional(i)), false) => {
                self.optional.remove(i);
                self.optional_left += 1;
            }
            (None, _) => {}
        }
    }

    /// Tries to linearize the call at `self.node` next: descends if the model accepts it
    /// and the resulting configuration is new, otherwise moves on to the next candidate.
    #[inline]
    fn try_candidate(&mut self) {
        let op = self.events.op(self.node);
        let next_state = match (self.ops.get(op as usize), self.visited.state(self.current)) {
            (Some(operation), Some(state)) => {
                self.model.step(state, &operation.input, &operation.output)
            }
            _ => None,
        };
        if let Some(next_state) = next_state {
            self.toggle(op, true);
            match self
                .visited
                .insert(&self.required, &self.optional, next_state)
            {
                Insertion::New(next) => {
                    self.path.push((self.node, self.current));
                    self.current = next;
                    self.events.lift(self.node);
                    self.node = self.events.first();
                    self.pass = Pass::Required;
                    return;
                }
                Insertion::Seen => {}
                Insertion::Full => self.gave_up = true,
            }
            self.toggle(op, false);
        }
        self.advance();
    }

    /// Moves the scan to the next candidate position of the current pass.
    #[inline]
    fn advance(&mut self) {
        self.node = match self.pass {
            Pass::Required => self.events.next(self.node),
            Pass::Optional => self.events.prev(self.node),
        };
    }

    /// At a return (or the end of the list) with every candidate tried: that operation had
    /// to be linearized by now and no candidate could be, so this path is a dead end.
    /// Records it if it is the deepest yet and undoes the last choice; false if there is
    /// none left to undo.
    fn backtrack(&mut self) -> bool {
        if self
            .deepest
            .as_ref()
            .is_none_or(|d| self.path.len() > d.prefix.len())
        {
            self.deepest = Some(DeadEnd {
                prefix: self.path.iter().map(|&(n, _)| self.events.op(n)).collect(),
                unplaceable: self.pending_candidates(),
                config: self.current,
            });
        }
        let Some((call, before)) = self.path.pop() else {
            return false;
        };
        self.current = before;
        self.toggle(self.events.op(call), false);
        self.events.unlift(call);
        self.pass = if self.events.is_call_without_return(call) {
            Pass::Optional
        } else {
            Pass::Required
        };
        self.node = call;
        self.advance();
        true
    }

    /// The operations that could go next: the calls before the earliest remaining return.
    fn pending_candidates(&self) -> Vec<u32> {
        let mut candidates = Vec::new();
        let mut node = self.events.first();
        while node != NIL && self.events.is_call(node) {
            candidates.push(self.events.op(node));
            node = self.events.next(node);
        }
        candidates
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
