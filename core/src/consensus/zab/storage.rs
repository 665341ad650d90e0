//! A peer's durable state (DSN 2011, Table I: f.p "acceptedEpoch", f.a "currentEpoch",
//! h_f "history") as a record log on the simulated disk ([`crate::sim::records`]): every
//! change is a record, fsynced before the peer acts on it (answers `NewEpoch`,
//! acknowledges a history or a proposal). Recovery replays the intact records and cuts a
//! torn tail before appending again.
//!
//! The accepted epoch is stored with the leader it was accepted from: a peer accepts a
//! given e' from one leader only, even across a restart, so two prospective leaders that
//! happen to pick the same e' cannot both gather a quorum of `AckEpoch`.

use serde::{Deserialize, Serialize};

use crate::consensus::zab::zxid::Txn;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::NodeId;
use crate::sim::records;

/// The file holding every record.
pub const LOG_FILE: &str = "zab.log";

/// One change to the durable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "camelCase")]
pub enum Record {
    AcceptedEpoch {
        epoch: u64,
        leader: NodeId,
    },
    CurrentEpoch {
        epoch: u64,
    },
    /// The history keeps its first `len` transactions.
    Truncate {
        len: usize,
    },
    Append {
        txn: Txn,
    },
}

/// What the records add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Durable {
    pub accepted_epoch: u64,
    /// The leader `accepted_epoch` was accepted from.
    pub accepted_from: Option<NodeId>,
    pub current_epoch: u64,
    pub history: Vec<Txn>,
}

impl Durable {
    /// Replays `records` in order.
    pub fn replay(records: &[Record]) -> Self {
        let mut d = Durable::default();
        for r in records {
            d.apply(r);
        }
        d
    }

    fn apply(&mut self, r: &Record) {
        match r {
            Record::AcceptedEpoch { epoch, leader } => {
                self.accepted_epoch = *epoch;
                self.accepted_from = Some(*leader);
            }
            Record::CurrentEpoch { epoch } => self.current_epoch = *epoch,
            Record::Truncate { len } => self.history.truncate(*len),
            Record::Append { txn } => self.history.push(txn.clone()),
        }
    }
}

/// The durable state on `disk`, and the length of its intact prefix if a torn tail
/// follows it.
pub fn load(disk: &Disk) -> (Durable, Option<usize>) {
    let (records, tail) = records::read_with_tail::<Record>(disk, LOG_FILE);
    (Durable::replay(&records), tail)
}

/// The operations writing `records` durably (append each, then one fsync).
pub fn write(records: &[Record]) -> Vec<DiskOp> {
    let mut ops: Vec<DiskOp> = records
        .iter()
        .map(|r| records::append(LOG_FILE, r))
        .collect();
    ops.push(DiskOp::Fsync);
    ops
}

/// The records turning `old` into `new`: cut back to their common prefix, then append
/// the rest (a follower taking the leader's history in `NewLeader`).
pub fn replace_history(old: &[Txn], new: &[Txn]) -> Vec<Record> {
    let common = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let mut out = Vec::new();
    if common < old.len() {
        out.push(Record::Truncate { len: common });
    }
    out.extend(
        new.iter()
            .skip(common)
            .map(|t| Record::Append { txn: t.clone() }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::{KvCommand, KvOp};
    use crate::consensus::zab::zxid::Zxid;
    use crate::rng::SimRng;

    fn txn(epoch: u64, counter: u64) -> Txn {
        Txn {
            zxid: Zxid::new(epoch, counter),
            cmd: KvCommand {
                session: 1,
                seq: counter,
                op: KvOp::Get { key: "k".into() },
            },
        }
    }

    #[test]
    fn synced_state_survives_a_crash_and_unsynced_does_not() {
        let mut disk = Disk::new();
        let first = [
            Record::AcceptedEpoch {
                epoch: 2,
                leader: 1,
            },
            Record::CurrentEpoch { epoch: 2 },
            Record::Append { txn: txn(1, 1) },
            Record::Append { txn: txn(2, 1) },
        ];
        for op in write(&first) {
            disk.apply(op);
        }
        let old = vec![txn(1, 1), txn(2, 1)];
        let new = vec![txn(1, 1), txn(3, 1)];
        let swap = replace_history(&old, &new);
        assert_eq!(
            swap,
            vec![
                Record::Truncate { len: 1 },
                Record::Append { txn: txn(3, 1) }
            ]
        );
        for op in write(&swap) {
            disk.apply(op);
        }
        disk.apply(records::append(
            LOG_FILE,
            &Record::CurrentEpoch { epoch: 9 },
        ));
        disk.crash(&mut SimRng::new(3), 1.0);
        let (d, tail) = load(&disk);
        assert_eq!(d.accepted_epoch, 2);
        assert_eq!(d.accepted_from, Some(1));
        assert_eq!(d.current_epoch, 2, "the unsynced epoch 9 is gone");
        assert_eq!(d.history, new);
        if let Some(len) = tail {
            assert!(len <= disk.read(LOG_FILE).len());
        }
    }
}
