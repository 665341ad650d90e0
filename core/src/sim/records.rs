//! A checksummed record log on the simulated disk: each record is framed as
//! `[length u32][checksum u64][payload]`, so that recovery keeps every intact record and
//! stops at a torn or missing tail (the failure model of [`crate::sim::disk`]). The payload
//! is a record value as JSON: the simulator's disk is about durability, not about bytes.
//!
//! A record is durable only once an fsync follows it; the protocols that keep one (2PC,
//! the lock service) append, fsync, then act on what they wrote (send a vote, a
//! decision, a grant).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hash::Hasher;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;

const HEADER: usize = 4 + 8;

fn checksum(payload: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(payload);
    h.finish()
}

/// The operation appending `record` to `file` (not yet durable: fsync after it).
pub fn append<R: Serialize>(file: &'static str, record: &R) -> DiskOp {
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&checksum(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    DiskOp::Append { file, bytes }
}

/// The intact records at the start of `file`, oldest first, and the length of that
/// intact prefix when the file is longer (a torn tail). Stops at the first record that is
/// short, fails its checksum or does not parse: what follows a torn write is lost.
///
/// A node that finds a torn tail must cut it ([`cut_torn_tail`]) before it appends again:
/// records appended after the garbage would be unreadable at the next recovery — a
/// decision or an epoch silently lost after its fsync (the two-phase commit soak found
/// exactly that).
pub fn read_with_tail<R: DeserializeOwned>(disk: &Disk, file: &str) -> (Vec<R>, Option<usize>) {
    let (records, intact) = read_prefix(disk, file);
    let tail = (intact < disk.read(file).len()).then_some(intact);
    (records, tail)
}

/// The operations cutting `file` back to its intact prefix of `len` bytes, durably.
pub fn cut_torn_tail(file: &'static str, len: usize) -> [DiskOp; 2] {
    [DiskOp::Truncate { file, len }, DiskOp::Fsync]
}

/// The intact records at the start of `file` (see [`read_with_tail`]).
pub fn read<R: DeserializeOwned>(disk: &Disk, file: &str) -> Vec<R> {
    read_prefix(disk, file).0
}

fn read_prefix<R: DeserializeOwned>(disk: &Disk, file: &str) -> (Vec<R>, usize) {
    let bytes = disk.read(file);
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let mut len = [0u8; 4];
        let mut sum = [0u8; 8];
        len.copy_from_slice(&header[..4]);
        sum.copy_from_slice(&header[4..]);
        let start = at + HEADER;
        let Some(payload) =
            bytes.get(start..start.saturating_add(u32::from_le_bytes(len) as usize))
        else {
            break;
        };
        if checksum(payload) != u64::from_le_bytes(sum) {
            break;
        }
        let Ok(record) = serde_json::from_slice(payload) else {
            break;
        };
        out.push(record);
        at = start + payload.len();
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn records_survive_an_fsync_and_a_torn_tail_is_cut() {
        let mut disk = Disk::new();
        disk.apply(append("log", &(1u64, "one")));
        disk.apply(append("log", &(2u64, "two")));
        disk.apply(DiskOp::Fsync);
        disk.apply(append("log", &(3u64, "three")));
        assert_eq!(read::<(u64, String)>(&disk, "log").len(), 3);
        // Always tear: the unsynced third record is cut whatever prefix landed.
        let mut rng = SimRng::new(5);
        disk.crash(&mut rng, 1.0);
        let back: Vec<(u64, String)> = read(&disk, "log");
        assert_eq!(back, vec![(1, "one".into()), (2, "two".into())]);
        // The torn tail is reported and, once cut, an appended record is readable.
        let (_, tail) = read_with_tail::<(u64, String)>(&disk, "log");
        if let Some(len) = tail {
            for op in cut_torn_tail("log", len) {
                disk.apply(op);
            }
        }
        disk.apply(append("log", &(4u64, "four")));
        assert_eq!(read::<(u64, String)>(&disk, "log").len(), 3);
        // A flipped byte fails the checksum: that record and everything after are gone.
        let mut clean = Disk::new();
        clean.apply(append("log", &(1u64, "one")));
        clean.apply(append("log", &(2u64, "two")));
        let mut bytes = clean.read("log").to_vec();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x55;
        let mut bad = Disk::new();
        bad.apply(DiskOp::Overwrite { file: "log", bytes });
        assert_eq!(read::<(u64, String)>(&bad, "log").len(), 1);
    }
}
