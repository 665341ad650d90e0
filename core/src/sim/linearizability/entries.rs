//! The history as a doubly linked list of call and return events in time order, stored in
//! an index arena. Linearizing an operation unlinks its call and return in O(1) and
//! backtracking relinks them in O(1) (Knuth's dancing links), so the search always sees the
//! not-yet-linearized part of the history without copying it.
//!
//! An operation that never returned has a call but no return event: nothing has to wait
//! for it, and it may stay unlinearized for ever (it never took effect).

/// Index of a node in the arena. Node 0 is the head sentinel.
pub(crate) type NodeId = u32;

/// "No node": the end of the list.
pub(crate) const NIL: NodeId = u32::MAX;

/// The `ret_node` of a call that has no return event.
const NO_RETURN: NodeId = u32::MAX - 1;

const HEAD: NodeId = 0;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: NodeId,
    next: NodeId,
    /// The operation this event belongs to (its number within the partition).
    op: u32,
    /// For a call, the node of its return, or `NO_RETURN`; `NIL` for a return.
    ret_node: NodeId,
}

/// The events of one partition, oldest first.
pub(crate) struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    /// Builds the list for operations `0..intervals.len()`, operation `i` spanning the
    /// closed interval `intervals[i] = (call, ret)` (`ret` `None` if it never returned).
    /// Events are ordered by time, calls before returns at equal times (closed intervals
    /// overlap when they touch), and by operation number otherwise, so the order is fully
    /// determined.
    pub(crate) fn new(intervals: &[(u64, Option<u64>)]) -> Self {
        // (time, 0 for call / 1 for return, op)
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(intervals.len() * 2);
        for (op, &(call, ret)) in intervals.iter().enumerate() {
            events.push((call, 0, op as u32));
            if let Some(ret) = ret {
                events.push((ret, 1, op as u32));
            }
        }
        events.sort_unstable();
        let count = events.len() as u32;
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node {
            prev: NIL,
            next: if count == 0 { NIL } else { 1 },
            op: u32::MAX,
            ret_node: NIL,
        });
        // Where each operation's return landed, to link calls to returns.
        let mut ret_position = vec![NO_RETURN; intervals.len()];
        for (position, &(_, kind, op)) in events.iter().enumerate() {
            if kind == 1
                && let Some(slot) = ret_position.get_mut(op as usize)
            {
                *slot = position as u32 + 1;
            }
        }
        for (position, &(_, kind, op)) in events.iter().enumerate() {
            let id = position as u32 + 1;
            nodes.push(Node {
                prev: id - 1,
                next: if id == count { NIL } else { id + 1 },
                op,
                ret_node: if kind == 0 {
                    ret_position.get(op as usize).copied().unwrap_or(NO_RETURN)
                } else {
                    NIL
                },
            });
        }
        EventList { nodes }
    }

    /// The first event still in the list, `NIL` when all are linearized.
    #[inline]
    pub(crate) fn first(&self) -> NodeId {
        self.next(HEAD)
    }

    #[inline]
    pub(crate) fn next(&self, node: NodeId) -> NodeId {
        self.nodes.get(node as usize).map_or(NIL, |n| n.next)
    }

    #[inline]
    pub(crate) fn op(&self, node: NodeId) -> u32 {
        self.nodes.get(node as usize).map_or(u32::MAX, |n| n.op)
    }

    /// Whether `node` is a call event (and so a candidate to linearize next).
    #[inline]
    pub(crate) fn is_call(&self, node: NodeId) -> bool {
        self.nodes
            .get(node as usize)
            .is_some_and(|n| n.ret_node != NIL)
    }

    /// Removes a call and its return from the list.
    #[inline]
    pub(crate) fn lift(&mut self, call: NodeId) {
        let ret = self.nodes.get(call as usize).map_or(NIL, |n| n.ret_node);
        self.unlink(call);
        self.unlink(ret);
    }

    /// Puts back a call and its return removed by the latest [`EventList::lift`] still in
    /// effect (lifts and unlifts must nest like a stack).
    #[inline]
    pub(crate) fn unlift(&mut self, call: NodeId) {
        let ret = self.nodes.get(call as usize).map_or(NIL, |n| n.ret_node);
        self.relink(ret);
        self.relink(call);
    }

    #[inline]
    fn unlink(&mut self, node: NodeId) {
        let Some(&Node { prev, next, .. }) = self.nodes.get(node as usize) else {
            return;
        };
        if let Some(p) = self.nodes.get_mut(prev as usize) {
            p.next = next;
        }
        if let Some(n) = self.nodes.get_mut(next as usize) {
            n.prev = prev;
        }
    }

    #[inline]
    fn relink(&mut self, node: NodeId) {
        let Some(&Node { prev, next, .. }) = self.nodes.get(node as usize) else {
            return;
        };
        if let Some(p) = self.nodes.get_mut(prev as usize) {
            p.next = node;
        }
        if let Some(n) = self.nodes.get_mut(next as usize) {
            n.prev = node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EventList) -> Vec<(u32, bool)> {
        let mut out = Vec::new();
        let mut node = list.first();
        while node != NIL {
            out.push((list.op(node), list.is_call(node)));
            node = list.next(node);
        }
        out
    }

    #[test]
    fn orders_events_with_calls_first_at_equal_times() {
        let list = EventList::new(&[(0, Some(10)), (10, Some(20)), (5, None)]);
        assert_eq!(
            walk(&list),
            vec![(0, true), (2, true), (1, true), (0, false), (1, false)]
        );
    }

    #[test]
    fn lift_and_unlift_nest() {
        let mut list = EventList::new(&[(0, Some(10)), (1, Some(5)), (2, Some(3)), (4, None)]);
        let before = walk(&list);
        let first = list.first();
        list.lift(first);
        assert_eq!(
            walk(&list),
            vec![(1, true), (2, true), (2, false), (3, true), (1, false)]
        );
        let second = list.first();
        list.lift(second);
        assert_eq!(walk(&list), vec![(2, true), (2, false), (3, true)]);
        let third = list.next(list.next(list.first()));
        list.lift(third);
        assert_eq!(walk(&list), vec![(2, true), (2, false)]);
        list.unlift(third);
        list.unlift(second);
        list.unlift(first);
        assert_eq!(walk(&list), before);
    }
}
