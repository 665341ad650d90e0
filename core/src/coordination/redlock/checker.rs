//! A mutual-exclusion checker over the history of who believes they hold a lock when.
//!
//! The driver reports, after every event, each client's belief: the token of the hold
//! it believes it has, or none. The checker turns that into holds — intervals of true
//! (simulated) time — and flags two that overlap: when a hold begins while another
//! client's is still open, two clients believe at once. A client paused inside its hold
//! still believes (it cannot know otherwise until it runs again), which is exactly the
//! case Kleppmann's "How to do distributed locking" (2016) is about. Intervals are
//! half-open: a hold that ends at the instant another begins does not overlap it.
//!
//! Each hold gets a number in the order holds began, so a write can be placed: a write
//! from hold `i` that lands after one from a later hold `j > i` was sent by a superseded
//! holder.

use std::collections::{BTreeMap, VecDeque};

use crate::sim::NodeId;
use crate::time::Time;

/// Holds kept for the view; the checker's verdicts cover them all.
pub const HOLDS_KEPT: usize = 256;

/// One client's hold: from when it believed it held the lock to when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Order in which the holds began, from 0.
    pub number: u64,
    pub client: NodeId,
    pub token: u64,
    pub from: Time,
    /// When it ended; `None` while it is open.
    pub to: Option<Time>,
}

/// Two clients believing at once: the hold that began, and the one open at that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlap {
    pub earlier: Hold,
    pub later: Hold,
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {} n{} took the lock (token {}) while n{} still believed it held it \
             (token {}, since {})",
            self.later.from,
            self.later.client,
            self.later.token,
            self.earlier.client,
            self.earlier.token,
            self.earlier.from
        )
    }
}

/// The checker's state.
#[derive(Debug, Clone, Default)]
pub struct MutualExclusion {
    /// Every client's open hold.
    open: BTreeMap<NodeId, Hold>,
    /// The newest holds, open or closed, oldest first.
    recent: VecDeque<Hold>,
    begun: u64,
    overlaps: u64,
    first: Option<Overlap>,
}

impl MutualExclusion {
    /// Records client `client`'s belief at `now`: the token it believes it holds, or none.
    /// A new token with no gap between is a new hold.
    pub fn observe(&mut self, now: Time, client: NodeId, believes: Option<u64>) {
        let current = self.open.get(&client).map(|h| h.token);
        if current == believes {
            return;
        }
        if current.is_some() {
            self.close(now, client);
        }
        if let Some(token) = believes {
            self.begin(now, client, token);
        }
    }

    fn close(&mut self, now: Time, client: NodeId) {
        if let Some(h) = self.open.remove(&client)
            && let Some(kept) = self.recent.iter_mut().rev().find(|k| k.number == h.number)
        {
            kept.to = Some(now);
        }
    }

    fn begin(&mut self, now: Time, client: NodeId, token: u64) {
        let hold = Hold {
            number: self.begun,
            client,
            token,
            from: now,
            to: None,
        };
        self.begun += 1;
        if let Some(other) = self.open.values().find(|h| h.client != client) {
            self.overlaps += 1;
            if self.first.is_none() {
                self.first = Some(Overlap {
                    earlier: *other,
                    later: hold,
                });
            }
        }
        self.open.insert(client, hold);
        if self.recent.len() >= HOLDS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(hold);
    }

    /// Holds begun so far.
    pub fn holds(&self) -> u64 {
        self.begun
    }

    /// Holds that began while another client's was open.
    pub fn overlaps(&self) -> u64 {
        self.overlaps
    }

    pub fn first_overlap(&self) -> Option<&Overlap> {
        self.first.as_ref()
    }

    /// The open hold of `client`, if it believes it holds the lock.
    pub fn open_hold(&self, client: NodeId) -> Option<&Hold> {
        self.open.get(&client)
    }

    /// The newest holds, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Hold> {
        self.recent.iter()
    }

    /// The newest hold of `client` with `token` among those kept: the one a write with
    /// that token came from.
    pub fn hold_of(&self, client: NodeId, token: u64) -> Option<&Hold> {
        self.recent
            .iter()
            .rev()
            .find(|h| h.client == client && h.token == token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_taken_one_after_another_do_not_overlap() {
        let mut m = MutualExclusion::default();
        m.observe(Time(10), 3, Some(1));
        m.observe(Time(20), 3, None);
        m.observe(Time(20), 4, Some(2));
        m.observe(Time(30), 4, Some(5));
        m.observe(Time(40), 4, None);
        assert_eq!(m.holds(), 3);
        assert_eq!(m.overlaps(), 0);
        assert!(m.first_overlap().is_none());
        let ends: Vec<_> = m.recent().map(|h| h.to).collect();
        assert_eq!(ends, vec![Some(Time(20)), Some(Time(30)), Some(Time(40))]);
        assert_eq!(m.hold_of(4, 5).map(|h| h.number), Some(2));
    }

    #[test]
    fn a_hold_begun_while_another_is_open_is_an_overlap() {
        let mut m = MutualExclusion::default();
        m.observe(Time(10), 3, Some(1));
        m.observe(Time(15), 3, Some(1));
        m.observe(Time(20), 4, Some(2));
        m.observe(Time(25), 3, None);
        assert_eq!(m.overlaps(), 1);
        let o = m.first_overlap().unwrap();
        assert_eq!((o.earlier.client, o.later.client), (3, 4));
        assert_eq!(o.earlier.from, Time(10));
        assert!(o.to_string().contains("n4 took the lock"), "{o}");
        assert!(m.open_hold(4).is_some() && m.open_hold(3).is_none());
    }
}
