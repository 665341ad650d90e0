//! Raft's durable state on the simulated disk: current term, vote and log (paper
//! Figure 2, "Persistent state on all servers"), as one append-only write-ahead log of
//! checksummed records, in the manner of etcd's WAL.
//!
//! Record: `[length u32][crc32 u32][payload]`, little-endian; the CRC (IEEE 802.3) covers
//! the payload. Payloads are a hard state (term and vote) or an entry (index, term, data).
//! Replaying the records in order rebuilds the state: the last hard state wins, and an
//! entry at an index the log already has truncates the log there first (that is how a
//! follower's overwrite of a conflicting suffix is made durable without rewriting).
//!
//! The simulated disk loses unsynced writes on a crash and may tear the oldest one
//! (see [`crate::sim::disk`]). Every event's records go out as one append followed by
//! one fsync, before any message that depends on them, so only a record that nobody was
//! told about can be torn. Recovery reads records until the first one that is short or
//! fails its checksum, stops there, and the next write cuts the garbage off first.
//!
//! Cost: O(bytes) to encode and to recover.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::consensus::raft::log::Log;
use crate::consensus::raft::messages::{Entry, EntryData, LogIndex, Membership, Term};
use crate::consensus::raft::state_machine::{KvCommand, KvOp};
use crate::sim::NodeId;
use crate::sim::disk::{Disk, DiskOp};

/// The write-ahead log's file name on the node's disk.
pub const WAL_FILE: &str = "raft.wal";

const HEADER: usize = 8;
const REC_HARD_STATE: u8 = 1;
const REC_ENTRY: u8 = 2;

// ---- CRC-32 (IEEE), table built at compile time ----

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (the polynomial of Ethernet, zlib and PNG).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        // The index is masked to 0..=255, inside the 256-entry table.
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---- byte codec ----

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    pub fn ids(&mut self, ids: &BTreeSet<NodeId>) {
        self.u32(ids.len() as u32);
        for &id in ids {
            self.u32(id);
        }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields; every read is `None` past the end.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    pub fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    pub fn ids(&mut self) -> Option<BTreeSet<NodeId>> {
        let n = self.u32()?;
        // Each id takes 4 bytes: a count larger than what is left is corruption, not a
        // reason to allocate.
        if n as usize > self.bytes.len() / 4 {
            return None;
        }
        (0..n).map(|_| self.u32()).collect()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

pub fn encode_membership(w: &mut Writer, m: &Membership) {
    w.ids(&m.voters);
    w.ids(&m.learners);
}

pub fn decode_membership(r: &mut Reader<'_>) -> Option<Membership> {
    Some(Membership {
        voters: r.ids()?,
        learners: r.ids()?,
    })
}

pub fn encode_entry_data(w: &mut Writer, data: &EntryData) {
    match data {
        EntryData::Noop => w.u8(0),
        EntryData::Command(c) => {
            w.u8(1);
            w.u64(c.session);
            w.u64(c.seq);
            match &c.op {
                KvOp::Get { key } => {
                    w.u8(0);
                    w.str(key);
                }
                KvOp::Put { key, value } => {
                    w.u8(1);
                    w.str(key);
                    w.str(value);
                }
                KvOp::Delete { key } => {
                    w.u8(2);
                    w.str(key);
                }
                KvOp::Cas { key, expected, new } => {
                    w.u8(3);
                    w.str(key);
                    w.opt_str(expected.as_deref());
                    w.str(new);
                }
            }
        }
        EntryData::Membership(m) => {
            w.u8(2);
            encode_membership(w, m);
        }
    }
}

pub fn decode_entry_data(r: &mut Reader<'_>) -> Option<EntryData> {
    Some(match r.u8()? {
        0 => EntryData::Noop,
        1 => {
            let session = r.u64()?;
            let seq = r.u64()?;
            let op = match r.u8()? {
                0 => KvOp::Get { key: r.str()? },
                1 => KvOp::Put {
                    key: r.str()?,
                    value: r.str()?,
                },
                2 => KvOp::Delete { key: r.str()? },
                3 => KvOp::Cas {
                    key: r.str()?,
                    expected: r.opt_str()?,
                    new: r.str()?,
                },
                _ => return None,
            };
            EntryData::Command(KvCommand { session, seq, op })
        }
        2 => EntryData::Membership(decode_membership(r)?),
        _ => return None,
    })
}

/// Frames a payload as a record.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payloads of the intact records at the start of `bytes`, and the length of that
/// intact prefix. Stops at the first record that is short or fails its checksum.
pub fn read_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(rest) = bytes.get(at..) {
        let mut r = Reader::new(rest);
        let (Some(len), Some(crc)) = (r.u32(), r.u32()) else {
            break;
        };
        let start = at + HEADER;
        let Some(payload) = bytes.get(start..start.saturating_add(len as usize)) else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        out.push(payload);
        at = start + payload.len();
    }
    (out, at)
}

/// What recovery found on disk.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub log: Log,
    /// Length of the intact prefix of the WAL file.
    pub valid_len: usize,
    /// Bytes after it (a torn record), which the next write cuts off.
    pub garbage: usize,
    pub records: usize,
}

/// Rebuilds term, vote and log from the WAL.
pub fn recover(disk: &Disk) -> Recovered {
    let bytes = disk.read(WAL_FILE);
    let (records, valid_len) = read_records(bytes);
    let mut rec = Recovered {
        valid_len,
        garbage: bytes.len() - valid_len,
        ..Recovered::default()
    };
    for payload in records {
        if !apply_record(&mut rec, payload) {
            // A record that checksums but does not parse (or skips an index) can only
            // come from a bug; everything before it is still good.
            break;
        }
        rec.records += 1;
    }
    rec
}

fn apply_record(rec: &mut Recovered, payload: &[u8]) -> bool {
    let mut r = Reader::new(payload);
    match r.u8() {
        Some(REC_HARD_STATE) => {
            let (Some(term), Some(has_vote), Some(vote)) = (r.u64(), r.u8(), r.u32()) else {
                return false;
            };
            rec.term = term;
            rec.vote = (has_vote == 1).then_some(vote);
            true
        }
        Some(REC_ENTRY) => {
            let (Some(index), Some(term), Some(data)) =
                (r.u64(), r.u64(), decode_entry_data(&mut r))
            else {
                return false;
            };
            if index <= rec.log.base_index() || index > rec.log.last_index() + 1 {
                return false;
            }
            rec.log.truncate_from(index);
            rec.log.push(Entry {
                term,
                data: Arc::new(data),
            });
            true
        }
        _ => false,
    }
}

/// Records written during one event, waiting to be flushed before anything is sent.
#[derive(Debug, Clone, Default)]
pub struct WalWriter {
    pending: Vec<u8>,
    /// Cut the file to this length before the next append (garbage after a torn write).
    truncate_to: Option<usize>,
    scratch: Vec<u8>,
}

impl WalWriter {
    /// A writer for a file whose intact prefix is `valid_len` of `file_len` bytes.
    pub fn new(valid_len: usize, file_len: usize) -> Self {
        WalWriter {
            pending: Vec::new(),
            truncate_to: (file_len > valid_len).then_some(valid_len),
            scratch: Vec::new(),
        }
    }

    pub fn hard_state(&mut self, term: Term, vote: Option<NodeId>) {
        let mut w = Writer::default();
        w.u8(REC_HARD_STATE);
        w.u64(term);
        w.u8(vote.is_some() as u8);
        w.u32(vote.unwrap_or(0));
        frame(&mut self.pending, &w.into_bytes());
    }

    pub fn entry(&mut self, index: LogIndex, entry: &Entry) {
        let mut w = Writer {
            buf: std::mem::take(&mut self.scratch),
        };
        w.buf.clear();
        w.u8(REC_ENTRY);
        w.u64(index);
        w.u64(entry.term);
        encode_entry_data(&mut w, &entry.data);
        frame(&mut self.pending, &w.buf);
        self.scratch = w.into_bytes();
    }

    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The disk operations that make everything recorded durable: (truncate,) append,
    /// fsync — in that order, so a crash part-way loses only what nobody was told.
    pub fn flush(&mut self, mut emit: impl FnMut(DiskOp)) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(len) = self.truncate_to.take() {
            emit(DiskOp::Truncate {
                file: WAL_FILE,
                len,
            });
        }
        emit(DiskOp::Append {
            file: WAL_FILE,
            bytes: std::mem::take(&mut self.pending),
        });
        emit(DiskOp::Fsync);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    fn put(i: u64) -> Entry {
        Entry::new(
            i,
            EntryData::Command(KvCommand {
                session: 7,
                seq: i,
                op: KvOp::Cas {
                    key: format!("k{i}"),
                    expected: i.is_multiple_of(2).then(|| "e".to_string()),
                    new: "v".into(),
                },
            }),
        )
    }

    fn write(disk: &mut Disk, w: &mut WalWriter) {
        w.flush(|op| disk.apply(op));
    }

    #[test]
    fn round_trip_with_overwritten_suffix() {
        let mut disk = Disk::new();
        let mut w = WalWriter::new(0, 0);
        w.hard_state(3, Some(1));
        for i in 1..=4 {
            w.entry(i, &put(i));
        }
        write(&mut disk, &mut w);
        // A follower overwrites entries 3.. with a new leader's entries.
        w.hard_state(5, None);
        w.entry(3, &Entry::new(5, EntryData::Noop));
        w.entry(
            4,
            &Entry::new(5, EntryData::Membership(Membership::initial(3))),
        );
        write(&mut disk, &mut w);
        let r = recover(&disk);
        assert_eq!((r.term, r.vote), (5, None));
        assert_eq!(r.log.last_index(), 4);
        assert_eq!(r.log.term_at(2), Some(2));
        assert_eq!(r.log.entry(2), Some(&put(2)));
        assert_eq!(r.log.term_at(3), Some(5));
        assert_eq!(r.garbage, 0);
    }

    #[test]
    fn a_torn_record_ends_recovery_and_is_cut_off_by_the_next_write() {
        for seed in 0..50 {
            let mut disk = Disk::new();
            let mut w = WalWriter::new(0, 0);
            w.hard_state(1, Some(0));
            w.entry(1, &put(1));
            write(&mut disk, &mut w);
            // Appended but not synced, then a crash tears it.
            w.entry(2, &put(2));
            w.flush(|op| {
                if !matches!(op, DiskOp::Fsync) {
                    disk.apply(op)
                }
            });
            disk.crash(&mut SimRng::new(seed), 1.0);
            let r = recover(&disk);
            assert_eq!(r.log.last_index(), 1, "seed {seed}");
            assert_eq!(r.term, 1);
            assert!(r.garbage > 0, "seed {seed}");
            let mut w = WalWriter::new(r.valid_len, disk.read(WAL_FILE).len());
            w.entry(2, &put(9));
            write(&mut disk, &mut w);
            let r = recover(&disk);
            assert_eq!(r.log.entry(2), Some(&put(9)));
            assert_eq!(r.garbage, 0);
        }
    }

    #[test]
    fn garbage_never_panics_and_yields_a_prefix() {
        let mut rng = SimRng::new(5);
        for _ in 0..2_000 {
            let len = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let (recs, valid) = read_records(&bytes);
            assert!(valid <= bytes.len());
            for p in recs {
                let _ = decode_entry_data(&mut Reader::new(p));
            }
            let _ = decode_membership(&mut Reader::new(&bytes));
        }
    }
}
