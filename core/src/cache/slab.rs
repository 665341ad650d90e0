//! The index-based doubly linked list every cache here keeps its orders in: entries live in
//! one `Vec` (a slab) and link to each other by `u32` index, so moving an entry to the front
//! is four index writes, there is no `Rc<RefCell<…>>` and no per-node allocation, and freed
//! slots are reused through a free chain. Several lists may share one slab (W-TinyLFU's
//! window, probation and protected segments; LFU's frequency buckets), so an entry moves
//! between them without being copied.
//!
//! This is the layout of the fast Rust caches (`quick_cache`, `moka`'s deques keep the
//! same idea with pointers): a list is only its head, tail and length ([`List`]).
//!
//! Every operation is O(1). No operation panics: an index that names no live slot is
//! ignored (callers only ever pass indices they got from [`Slab::insert`]).

/// "No slot": the end of a list, or a node that is in no list.
pub const NIL: u32 = u32::MAX;

/// The most slots a slab holds (indices are `u32`, and [`NIL`] is reserved).
pub const MAX_SLOTS: usize = (u32::MAX - 1) as usize;

/// Aligned to 32 bytes so that a node of up to 32 bytes (8-byte key and value, the
/// links) never straddles two cache lines: a hit then costs one line, not sometimes two.
#[derive(Debug, Clone)]
#[repr(align(32))]
struct Node<T> {
    /// `None` in a free slot.
    item: Option<T>,
    prev: u32,
    next: u32,
}

/// Slots of `T` addressed by `u32`, with a free chain through `next`.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    nodes: Vec<Node<T>>,
    free: u32,
    live: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            nodes: Vec::new(),
            free: NIL,
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `item` in a free slot (reused first) and returns its index, in no list; `None`
    /// when [`MAX_SLOTS`] are live.
    pub fn insert(&mut self, item: T) -> Option<u32> {
        let node = Node {
            item: Some(item),
            prev: NIL,
            next: NIL,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            let slot = self.nodes.get_mut(idx as usize)?;
            self.free = slot.next;
            *slot = node;
            idx
        } else {
            if self.nodes.len() >= MAX_SLOTS {
                return None;
            }
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.live += 1;
        Some(idx)
    }

    /// Frees slot `idx` and returns its item. The caller unlinks it from its list first.
    pub fn remove(&mut self, idx: u32) -> Option<T> {
        let node = self.nodes.get_mut(idx as usize)?;
        let item = node.item.take()?;
        node.prev = NIL;
        node.next = self.free;
        self.free = idx;
        self.live -= 1;
        Some(item)
    }

    #[inline]
    pub fn get(&self, idx: u32) -> Option<&T> {
        self.nodes.get(idx as usize).and_then(|n| n.item.as_ref())
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.nodes
            .get_mut(idx as usize)
            .and_then(|n| n.item.as_mut())
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots allocated, free or not (what the slab costs in memory).
    pub fn slots(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    fn next_of(&self, idx: u32) -> u32 {
        self.nodes.get(idx as usize).map_or(NIL, |n| n.next)
    }

    #[inline]
    fn prev_of(&self, idx: u32) -> u32 {
        self.nodes.get(idx as usize).map_or(NIL, |n| n.prev)
    }

    #[inline]
    fn set_next(&mut self, idx: u32, next: u32) {
        if let Some(n) = self.nodes.get_mut(idx as usize) {
            n.next = next;
        }
    }

    #[inline]
    fn set_prev(&mut self, idx: u32, prev: u32) {
        if let Some(n) = self.nodes.get_mut(idx as usize) {
            n.prev = prev;
        }
    }
}

/// One doubly linked list through a [`Slab`]: front is the most recent (or, for LFU's
/// bucket list, the lowest frequency), back the next to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List {
    head: u32,
    tail: u32,
    len: u32,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl List {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    pub fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Links `idx` (in no list) at the front.
    #[inline]
    pub fn push_front<T>(&mut self, slab: &mut Slab<T>, idx: u32) {
        slab.set_prev(idx, NIL);
        slab.set_next(idx, self.head);
        if self.head != NIL {
            slab.set_prev(self.head, idx);
        } else {
            self.tail = idx;
        }
        self.head = idx;
        self.len += 1;
    }

    /// Links `idx` (in no list) right after `anchor` (in this list).
    pub fn insert_after<T>(&mut self, slab: &mut Slab<T>, anchor: u32, idx: u32) {
        let next = slab.next_of(anchor);
        slab.set_prev(idx, anchor);
        slab.set_next(idx, next);
        slab.set_next(anchor, idx);
        if next != NIL {
            slab.set_prev(next, idx);
        } else {
            self.tail = idx;
        }
        self.len += 1;
    }

    /// Takes `idx` (in this list) out of it.
    #[inline]
    pub fn unlink<T>(&mut self, slab: &mut Slab<T>, idx: u32) {
        let (prev, next) = (slab.prev_of(idx), slab.next_of(idx));
        if prev != NIL {
            slab.set_next(prev, next);
        } else {
            self.head = next;
        }
        if next != NIL {
            slab.set_prev(next, prev);
        } else {
            self.tail = prev;
        }
        slab.set_prev(idx, NIL);
        slab.set_next(idx, NIL);
        self.len = self.len.saturating_sub(1);
    }

    /// Moves `idx` (in this list) to the front. The hot path of every cache hit, so it
    /// reads the node once and touches each neighbour once.
    #[inline]
    pub fn move_to_front<T>(&mut self, slab: &mut Slab<T>, idx: u32) {
        if self.head == idx {
            return;
        }
        let old_head = self.head;
        let Some(node) = slab.nodes.get_mut(idx as usize) else {
            return;
        };
        let (prev, next) = (node.prev, node.next);
        node.prev = NIL;
        node.next = old_head;
        // Not the head, so it has a predecessor.
        slab.set_next(prev, next);
        if next != NIL {
            slab.set_prev(next, prev);
        } else {
            self.tail = prev;
        }
        slab.set_prev(old_head, idx);
        self.head = idx;
    }

    /// The slot after `idx` towards the back.
    pub fn next<T>(&self, slab: &Slab<T>, idx: u32) -> Option<u32> {
        let n = slab.next_of(idx);
        (n != NIL).then_some(n)
    }

    /// Indices from front to back.
    pub fn iter<'a, T>(&self, slab: &'a Slab<T>) -> impl Iterator<Item = u32> + 'a {
        let mut at = self.head;
        let mut left = self.len;
        std::iter::from_fn(move || {
            if at == NIL || left == 0 {
                return None;
            }
            let here = at;
            at = slab.next_of(at);
            left -= 1;
            Some(here)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &List, slab: &Slab<u32>) -> Vec<u32> {
        list.iter(slab).map(|i| *slab.get(i).unwrap()).collect()
    }

    #[test]
    fn lists_share_a_slab_and_reuse_freed_slots() {
        let mut slab = Slab::default();
        let (mut a, mut b) = (List::default(), List::default());
        let ids: Vec<u32> = (0..4).map(|v| slab.insert(v).unwrap()).collect();
        for &i in &ids {
            a.push_front(&mut slab, i);
        }
        assert_eq!(items(&a, &slab), [3, 2, 1, 0]);
        a.move_to_front(&mut slab, ids[0]);
        assert_eq!(items(&a, &slab), [0, 3, 2, 1]);
        a.unlink(&mut slab, ids[2]);
        b.push_front(&mut slab, ids[2]);
        a.unlink(&mut slab, ids[1]);
        b.insert_after(&mut slab, ids[2], ids[1]);
        assert_eq!(items(&a, &slab), [0, 3]);
        assert_eq!(items(&b, &slab), [2, 1]);
        assert_eq!((a.back(), b.back()), (Some(ids[3]), Some(ids[1])));
        b.unlink(&mut slab, ids[1]);
        assert_eq!(slab.remove(ids[1]), Some(1));
        assert_eq!(slab.remove(ids[1]), None, "a freed slot frees once");
        assert_eq!(slab.insert(9), Some(ids[1]), "the freed slot is reused");
        assert_eq!(slab.len(), 4);
        assert_eq!(slab.slots(), 4);
    }

    #[test]
    fn bad_indices_are_ignored() {
        let mut slab: Slab<u32> = Slab::default();
        let mut l = List::default();
        assert_eq!(slab.remove(7), None);
        assert_eq!(slab.get(NIL), None);
        l.push_front(&mut slab, 5);
        l.unlink(&mut slab, 5);
        assert!(l.is_empty());
    }
}
