//! Last-writer-wins register (Shapiro et al. 2011, §3.2.1, Specification 8): each write
//! carries a timestamp from its writer's clock; merge keeps the write with the larger
//! timestamp, ties broken by replica id (the paper's "unique timestamps" made concrete).
//! With skewed clocks the later write in real time can lose — silently: that is the
//! trade-off the type makes, and the clock-skew scenario shows.
//!
//! One replica writing twice at the same clock reading makes two writes with equal
//! stamps; the value itself breaks that last tie, so merge stays a total order's maximum
//! (commutative, associative, idempotent) whatever the clocks do.

use serde::{Deserialize, Serialize};

use crate::crdt::{Crdt, Element, ReplicaId, Stamp};
use crate::error::Result;

/// One write: its stamp and value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound = "T: Element")]
pub struct Write<T: Element> {
    pub stamp: Stamp,
    pub value: T,
}

/// A last-writer-wins register: `null` until written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound = "T: Element")]
pub struct LwwRegister<T: Element> {
    write: Option<Write<T>>,
}

impl<T: Element> Default for LwwRegister<T> {
    fn default() -> Self {
        LwwRegister { write: None }
    }
}

/// An lww-register's update: write `value` stamped with the replica's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LwwRegisterUpdate<T> {
    Set(T),
}

impl<T: Element> LwwRegister<T> {
    pub fn new() -> Self {
        LwwRegister::default()
    }

    /// Writes `value` at `replica` whose clock reads `now_ms`. Returns the delta (the
    /// write) — which loses, here and everywhere, if the register holds a later stamp.
    pub fn set(&mut self, replica: ReplicaId, now_ms: u64, value: T) -> LwwRegister<T> {
        let delta = LwwRegister {
            write: Some(Write {
                stamp: Stamp {
                    time_ms: now_ms,
                    replica,
                },
                value,
            }),
        };
        self.join(&delta);
        delta
    }

    /// The winning write, if any.
    pub fn write(&self) -> Option<&Write<T>> {
        self.write.as_ref()
    }

    fn join(&mut self, other: &LwwRegister<T>) {
        if other.write > self.write {
            self.write.clone_from(&other.write);
        }
    }
}

impl<T: Element> Crdt for LwwRegister<T> {
    type Update = LwwRegisterUpdate<T>;
    type Value = Option<T>;

    fn update(
        &mut self,
        replica: ReplicaId,
        now_ms: u64,
        update: &LwwRegisterUpdate<T>,
    ) -> Result<Self> {
        match update {
            LwwRegisterUpdate::Set(v) => Ok(self.set(replica, now_ms, v.clone())),
        }
    }

    fn merge(&mut self, other: &LwwRegister<T>) -> Result<()> {
        self.join(other);
        Ok(())
    }

    fn value(&self) -> Option<T> {
        self.write.as_ref().map(|w| w.value.clone())
    }

    fn entries(&self) -> usize {
        usize::from(self.write.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_stamp_wins_and_the_replica_breaks_ties() {
        let (mut a, mut b) = (LwwRegister::new(), LwwRegister::new());
        let w1 = a.set(0, 100, 1u32);
        let w2 = b.set(1, 100, 2);
        a.merge(&w2).unwrap();
        b.merge(&w1).unwrap();
        assert_eq!((a.value(), b.value()), (Some(2), Some(2)));
        // A replica whose clock is behind writes later in real time, and loses.
        let late = a.set(0, 90, 3);
        b.merge(&late).unwrap();
        assert_eq!(b.value(), Some(2));
    }
}
