//! The zxid (Junqueira, Reed & Serafini, DSN 2011, §III): a transaction's identifier, the
//! pair (epoch, counter). The leader of epoch `e` numbers its proposals `(e, 1)`,
//! `(e, 2)`, ...; zxids order first by epoch, then by counter, which is the order every
//! process delivers in. A transaction is a client's command with its zxid.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::Hash;

use crate::consensus::raft::state_machine::KvCommand;

/// (epoch, counter); `Zxid::ZERO` stands for "nothing yet".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Zxid {
    pub epoch: u64,
    pub counter: u64,
}

impl Zxid {
    pub const ZERO: Zxid = Zxid {
        epoch: 0,
        counter: 0,
    };

    pub fn new(epoch: u64, counter: u64) -> Self {
        Zxid { epoch, counter }
    }

    /// Whether `next` may follow `self` directly in a history: the first proposal of a
    /// later epoch, or the next counter of the same epoch (Zab.tla's `IsNextZxid`).
    pub fn is_followed_by(self, next: Zxid) -> bool {
        if next.counter == 1 {
            self.epoch < next.epoch
        } else {
            next.counter > 1 && self.epoch == next.epoch && self.counter + 1 == next.counter
        }
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.epoch, self.counter)
    }
}

/// A transaction: a client's command and the zxid its leader gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    pub zxid: Zxid,
    pub cmd: KvCommand,
}

/// The zxid of a history's last transaction, `Zxid::ZERO` for an empty one.
pub fn last_zxid(history: &[Txn]) -> Zxid {
    history.last().map_or(Zxid::ZERO, |t| t.zxid)
}

/// The number of transactions of `history` up to and including `zxid` (histories are in
/// zxid order), or `None` if `zxid` is not in it. `Zxid::ZERO` is the empty prefix.
pub fn prefix_len(history: &[Txn], zxid: Zxid) -> Option<usize> {
    if zxid == Zxid::ZERO {
        return Some(0);
    }
    history
        .binary_search_by(|t| t.zxid.cmp(&zxid))
        .ok()
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_order_by_epoch_then_counter_and_follow_without_gaps() {
        assert!(Zxid::new(1, 9) < Zxid::new(2, 1));
        assert!(Zxid::new(2, 1) < Zxid::new(2, 2));
        assert!(Zxid::ZERO.is_followed_by(Zxid::new(1, 1)));
        assert!(Zxid::new(1, 4).is_followed_by(Zxid::new(3, 1)));
        assert!(Zxid::new(3, 1).is_followed_by(Zxid::new(3, 2)));
        assert!(!Zxid::new(3, 1).is_followed_by(Zxid::new(3, 3)), "a gap");
        assert!(!Zxid::new(3, 2).is_followed_by(Zxid::new(3, 2)), "a repeat");
        assert!(
            !Zxid::new(3, 2).is_followed_by(Zxid::new(2, 1)),
            "older epoch"
        );
        assert!(
            !Zxid::new(2, 5).is_followed_by(Zxid::new(3, 2)),
            "not first"
        );
    }
}
