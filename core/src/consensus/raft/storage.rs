//! Raft's durable state on the simulated disk: current term, vote, log (paper Figure 2,
//! "Persistent state on all servers") and the latest snapshot (§7), as an append-only
//! write-ahead log of checksummed records, in the manner of etcd's WAL.
//!
//! Record: `[length u32][crc32 u32][payload]`, little-endian; the CRC (IEEE 802.3) covers
//! the payload. A WAL file is
//! `header(gen) snapshot hard-state entry… seal(gen)` followed by appended records
//! (hard states and entries). Replaying the records in order rebuilds the state: the
//! last hard state wins, and an entry at an index the log already has truncates the log
//! there first (that is how a follower's overwrite of a conflicting suffix is made
//! durable without rewriting).
//!
//! The simulated disk loses unsynced writes on a crash and may tear the oldest one
//! (see [`crate::sim::disk`]). Every event's records go out as one append followed by
//! one fsync, before any message that depends on them, so only a record that nobody was
//! told about can be torn. Recovery reads records until the first one that is short or
//! fails its checksum, stops there, and the next write cuts the garbage off first.
//!
//! Compaction (taking or installing a snapshot) cannot append: it writes a whole new
//! file — snapshot, hard state, the entries after the snapshot — over the *other* of two
//! files, then fsyncs, and appends go there from then on. The file that was active is
//! not touched, so a crash that tears the new file leaves the old one whole. Recovery
//! takes the file with the highest generation whose header *and* seal are intact: the
//! seal is the last record of the rewrite, so a torn rewrite never counts.
//!
//! Cost: O(bytes) to encode and to recover; a compaction rewrites the snapshot and the
//! entries after it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::sync::Arc;

use crate::consensus::raft::log::Log;
use crate::consensus::raft::messages::{Entry, EntryData, LogIndex, Membership, Snapshot, Term};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse, KvStore, Session};
use crate::sim::NodeId;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

/// The two WAL files on the node's disk; one is active, the other receives the next
/// compaction.
pub const WAL_FILES: [&str; 2] = ["raft-wal-a", "raft-wal-b"];

const HEADER: usize = 8;
const REC_HARD_STATE: u8 = 1;
const REC_ENTRY: u8 = 2;
const REC_HEADER: u8 = 3;
const REC_SNAPSHOT: u8 = 4;
const REC_SEAL: u8 = 5;

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
    #[cfg(test)]
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

fn encode_response(w: &mut Writer, r: &KvResponse) {
    match r {
        KvResponse::Value { value } => {
            w.u8(0);
            w.opt_str(value.as_deref());
        }
        KvResponse::Ok => w.u8(1),
        KvResponse::CasFailed { current } => {
            w.u8(2);
            w.opt_str(current.as_deref());
        }
    }
}

fn decode_response(r: &mut Reader<'_>) -> Option<KvResponse> {
    Some(match r.u8()? {
        0 => KvResponse::Value {
            value: r.opt_str()?,
        },
        1 => KvResponse::Ok,
        2 => KvResponse::CasFailed {
            current: r.opt_str()?,
        },
        _ => return None,
    })
}

/// Encodes a snapshot (its metadata, configuration and state machine).
pub fn encode_snapshot(w: &mut Writer, s: &Snapshot) {
    w.u64(s.index);
    w.u64(s.term);
    w.u64(s.digest);
    encode_membership(w, &s.membership);
    w.u32(s.kv.data().len() as u32);
    for (k, v) in s.kv.data() {
        w.str(k);
        w.str(v);
    }
    w.u32(s.kv.sessions().len() as u32);
    for (id, session) in s.kv.sessions() {
        w.u64(*id);
        w.u64(session.last_seq);
        encode_response(w, &session.response);
        w.u64(session.executed);
    }
}

pub fn decode_snapshot(r: &mut Reader<'_>) -> Option<Snapshot> {
    let index = r.u64()?;
    let term = r.u64()?;
    let digest = r.u64()?;
    let membership = decode_membership(r)?;
    let mut data = BTreeMap::new();
    for _ in 0..r.u32()? {
        data.insert(r.str()?, r.str()?);
    }
    let mut sessions = BTreeMap::new();
    for _ in 0..r.u32()? {
        let id = r.u64()?;
        let last_seq = r.u64()?;
        let response = decode_response(r)?;
        let executed = r.u64()?;
        sessions.insert(
            id,
            Session {
                last_seq,
                response,
                executed,
            },
        );
    }
    Some(Snapshot {
        index,
        term,
        digest,
        membership,
        kv: KvStore::from_parts(data, sessions),
    })
}

/// What recovery found on disk.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub term: Term,
    pub vote: Option<NodeId>,
    /// The latest snapshot (the empty one at index 0 on a fresh disk).
    pub snapshot: Arc<Snapshot>,
    pub log: Log,
    /// Which of [`WAL_FILES`] is active, its generation, and whether any file was valid.
    pub active: usize,
    pub generation: u64,
    pub found: bool,
    /// Length of the intact prefix of the active file, and the torn bytes after it,
    /// which the next write cuts off.
    pub valid_len: usize,
    pub garbage: usize,
    pub records: usize,
}

enum Record {
    Header(u64),
    Snapshot(Snapshot),
    HardState(Term, Option<NodeId>),
    Entry(LogIndex, Entry),
    Seal(u64),
}

fn decode_record(payload: &[u8]) -> Option<Record> {
    let mut r = Reader::new(payload);
    Some(match r.u8()? {
        REC_HEADER => Record::Header(r.u64()?),
        REC_SNAPSHOT => Record::Snapshot(decode_snapshot(&mut r)?),
        REC_HARD_STATE => {
            let term = r.u64()?;
            let has_vote = r.u8()?;
            let vote = r.u32()?;
            Record::HardState(term, (has_vote == 1).then_some(vote))
        }
        REC_ENTRY => {
            let index = r.u64()?;
            let term = r.u64()?;
            let data = decode_entry_data(&mut r)?;
            Record::Entry(
                index,
                Entry {
                    term,
                    data: Arc::new(data),
                },
            )
        }
        REC_SEAL => Record::Seal(r.u64()?),
        _ => return None,
    })
}

/// A file's generation, if its header and seal are intact.
fn sealed_generation(records: &[&[u8]]) -> Option<u64> {
    let Some(Record::Header(gen_)) = records.first().and_then(|p| decode_record(p)) else {
        return None;
    };
    records
        .iter()
        .any(|p| {
            p.first() == Some(&REC_SEAL)
                && matches!(decode_record(p), Some(Record::Seal(g)) if g == gen_)
        })
        .then_some(gen_)
}

/// Rebuilds term, vote, snapshot and log from the newer valid WAL file.
pub fn recover(disk: &Disk) -> Recovered {
    let mut best: Option<(u64, usize)> = None;
    for (i, file) in WAL_FILES.iter().enumerate() {
        let (records, _) = read_records(disk.read(file));
        if let Some(g) = sealed_generation(&records)
            && best.is_none_or(|(bg, _)| g > bg)
        {
            best = Some((g, i));
        }
    }
    let mut rec = Recovered::default();
    let Some((generation, active)) = best else {
        return rec;
    };
    let bytes = WAL_FILES.get(active).map_or(&[][..], |f| disk.read(f));
    let (records, valid_len) = read_records(bytes);
    rec.found = true;
    rec.active = active;
    rec.generation = generation;
    rec.valid_len = valid_len;
    rec.garbage = bytes.len() - valid_len;
    for payload in records {
        let Some(record) = decode_record(payload) else {
            // A record that checksums but does not parse can only come from a bug;
            // everything before it is still good.
            break;
        };
        match record {
            Record::Header(_) | Record::Seal(_) => {}
            Record::Snapshot(s) => {
                rec.log.reset_to(s.index, s.term, s.digest);
                rec.snapshot = Arc::new(s);
            }
            Record::HardState(term, vote) => {
                rec.term = term;
                rec.vote = vote;
            }
            Record::Entry(index, entry) => {
                if index <= rec.log.base_index() {
                    continue;
                }
                if index > rec.log.last_index() + 1 {
                    break;
                }
                rec.log.truncate_from(index);
                rec.log.push(entry);
            }
        }
        rec.records += 1;
    }
    rec
}

/// Records written during one event, waiting to be flushed before anything is sent.
#[derive(Debug, Clone, Default)]
pub struct WalWriter {
    active: usize,
    generation: u64,
    pending: Vec<u8>,
    /// A whole new file for the inactive slot (a compaction), written before `pending`.
    rewrite: Option<Vec<u8>>,
    /// Cut the active file to this length before the next append (garbage after a
    /// torn write).
    truncate_to: Option<usize>,
    scratch: Vec<u8>,
    /// Whether some file on disk is valid; if not, the first flush must rewrite.
    found: bool,
}

impl WalWriter {
    /// A writer continuing what recovery found.
    pub fn new(rec: &Recovered) -> Self {
        WalWriter {
            active: rec.active,
            generation: rec.generation,
            pending: Vec::new(),
            rewrite: None,
            truncate_to: (rec.garbage > 0).then_some(rec.valid_len),
            scratch: Vec::new(),
            found: rec.found,
        }
    }

    /// Whether the disk holds no valid file yet: the node must [`rewrite`](Self::rewrite)
    /// before anything else.
    pub fn needs_rewrite(&self) -> bool {
        !self.found && self.rewrite.is_none()
    }

    /// The active file's name.
    pub fn active_file(&self) -> &'static str {
        WAL_FILES.get(self.active).copied().unwrap_or(WAL_FILES[0])
    }

    pub fn hard_state(&mut self, term: Term, vote: Option<NodeId>) {
        encode_hard_state(&mut self.pending, term, vote);
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

    /// Replaces everything durable by `snapshot`, the hard state and `entries` (those
    /// after the snapshot), in a new file; records written earlier in this event are
    /// superseded, later ones follow it.
    pub fn rewrite<'e>(
        &mut self,
        snapshot: &Snapshot,
        term: Term,
        vote: Option<NodeId>,
        entries: impl Iterator<Item = (LogIndex, &'e Entry)>,
    ) {
        self.generation += 1;
        let mut file = Vec::new();
        let mut w = Writer::default();
        w.u8(REC_HEADER);
        w.u64(self.generation);
        frame(&mut file, &w.into_bytes());
        let mut w = Writer::default();
        w.u8(REC_SNAPSHOT);
        encode_snapshot(&mut w, snapshot);
        frame(&mut file, &w.into_bytes());
        encode_hard_state(&mut file, term, vote);
        self.pending.clear();
        for (index, e) in entries {
            self.entry(index, e);
        }
        file.append(&mut self.pending);
        let mut w = Writer::default();
        w.u8(REC_SEAL);
        w.u64(self.generation);
        frame(&mut file, &w.into_bytes());
        self.rewrite = Some(file);
    }

    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty() || self.rewrite.is_some()
    }

    /// The disk operations that make everything recorded durable — (overwrite the other
    /// file,) (truncate,) append, fsync, in that order — so a crash part-way loses only
    /// what nobody was told.
    pub fn flush(&mut self, mut emit: impl FnMut(DiskOp)) {
        if !self.is_dirty() {
            return;
        }
        if let Some(file) = self.rewrite.take() {
            self.active = (self.active + 1) % WAL_FILES.len();
            self.truncate_to = None;
            self.found = true;
            emit(DiskOp::Overwrite {
                file: self.active_file(),
                bytes: file,
            });
        }
        if !self.pending.is_empty() {
            if let Some(len) = self.truncate_to.take() {
                emit(DiskOp::Truncate {
                    file: self.active_file(),
                    len,
                });
            }
            emit(DiskOp::Append {
                file: self.active_file(),
                bytes: std::mem::take(&mut self.pending),
            });
        }
        emit(DiskOp::Fsync);
    }
}

/// Everything but `scratch`, a buffer kept only to reuse its allocation: it is cleared
/// before every use, so what it holds between events is never read.
impl Fingerprint for WalWriter {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let WalWriter {
            active,
            generation,
            pending,
            rewrite,
            truncate_to,
            scratch: _,
            found,
        } = self;
        active.hash(h);
        generation.hash(h);
        pending.hash(h);
        rewrite.hash(h);
        truncate_to.hash(h);
        found.hash(h);
    }
}

fn encode_hard_state(out: &mut Vec<u8>, term: Term, vote: Option<NodeId>) {
    let mut w = Writer::default();
    w.u8(REC_HARD_STATE);
    w.u64(term);
    w.u8(vote.is_some() as u8);
    w.u32(vote.unwrap_or(0));
    frame(out, &w.into_bytes());
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

    /// A fresh disk with its first (empty) file laid down, as a booting node does.
    fn fresh() -> (Disk, WalWriter) {
        let mut disk = Disk::new();
        let rec = recover(&disk);
        assert!(!rec.found);
        let mut w = WalWriter::new(&rec);
        assert!(w.needs_rewrite());
        w.rewrite(&Snapshot::default(), 0, None, std::iter::empty());
        write(&mut disk, &mut w);
        (disk, w)
    }

    #[test]
    fn round_trip_with_overwritten_suffix() {
        let (mut disk, mut w) = fresh();
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
            let (mut disk, mut w) = fresh();
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
            let mut w = WalWriter::new(&r);
            w.entry(2, &put(9));
            write(&mut disk, &mut w);
            let r = recover(&disk);
            assert_eq!(r.log.entry(2), Some(&put(9)));
            assert_eq!(r.garbage, 0);
        }
    }

    fn snapshot_at(index: LogIndex) -> Snapshot {
        let mut kv = KvStore::new();
        kv.apply(&KvCommand {
            session: 4,
            seq: 2,
            op: KvOp::Put {
                key: "k".into(),
                value: format!("at {index}"),
            },
        });
        Snapshot {
            index,
            term: 2,
            digest: 77,
            membership: Membership::initial(5),
            kv,
        }
    }

    #[test]
    fn compaction_writes_the_other_file_and_survives_a_torn_rewrite() {
        for seed in 0..100 {
            let (mut disk, mut w) = fresh();
            w.hard_state(2, Some(1));
            for i in 1..=6 {
                w.entry(i, &put(i));
            }
            write(&mut disk, &mut w);
            // Compact to 4, keeping 5 and 6; then append 7.
            let entries = [(5, put(5)), (6, put(6))];
            w.rewrite(
                &snapshot_at(4),
                2,
                Some(1),
                entries.iter().map(|(i, e)| (*i, e)),
            );
            w.entry(7, &put(7));
            let mut ops = Vec::new();
            w.flush(|op| ops.push(op));
            assert!(matches!(ops.first(), Some(DiskOp::Overwrite { .. })));
            assert_eq!(ops.last(), Some(&DiskOp::Fsync));
            // Crash before the fsync: the rewrite may tear; the old file must win.
            let mut torn = disk.clone();
            for op in ops.iter().take(ops.len() - 1) {
                torn.apply(op.clone());
            }
            torn.crash(&mut SimRng::new(seed), 1.0);
            let r = recover(&torn);
            assert_eq!(
                (r.snapshot.index, r.log.last_index()),
                (0, 6),
                "seed {seed}"
            );
            // After the fsync the new file wins, snapshot and all.
            for op in ops {
                disk.apply(op);
            }
            disk.crash(&mut SimRng::new(seed), 1.0);
            let r = recover(&disk);
            assert_eq!(*r.snapshot, snapshot_at(4));
            assert_eq!((r.log.base_index(), r.log.base_term()), (4, 2));
            assert_eq!(r.log.last_index(), 7);
            assert_eq!(r.log.entry(5), Some(&put(5)));
            assert_eq!((r.term, r.vote), (2, Some(1)));
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

    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zé0-9 ]{0,6}").unwrap()
    }

    fn op() -> impl Strategy<Value = KvOp> {
        prop_oneof![
            text().prop_map(|key| KvOp::Get { key }),
            (text(), text()).prop_map(|(key, value)| KvOp::Put { key, value }),
            text().prop_map(|key| KvOp::Delete { key }),
            (text(), proptest::option::of(text()), text())
                .prop_map(|(key, expected, new)| KvOp::Cas { key, expected, new }),
        ]
    }

    fn data() -> impl Strategy<Value = EntryData> {
        prop_oneof![
            Just(EntryData::Noop),
            (any::<u64>(), any::<u64>(), op())
                .prop_map(|(session, seq, op)| EntryData::Command(KvCommand { session, seq, op })),
            (
                proptest::collection::btree_set(0u32..64, 0..6),
                proptest::collection::btree_set(0u32..64, 0..3)
            )
                .prop_map(|(voters, learners)| EntryData::Membership(Membership {
                    voters,
                    learners
                })),
        ]
    }

    proptest! {
        /// Every entry survives encoding, and any strict prefix of its encoding is
        /// refused rather than misread.
        #[test]
        fn entry_data_round_trips(d in data()) {
            let mut w = Writer::default();
            encode_entry_data(&mut w, &d);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(decode_entry_data(&mut r), Some(d));
            prop_assert!(r.is_empty());
            for cut in 0..bytes.len() {
                let short = bytes.get(..cut).unwrap_or_default();
                let got = decode_entry_data(&mut Reader::new(short));
                prop_assert!(got.is_none(), "a prefix of {} bytes decoded", cut);
            }
        }

        /// Whatever was written and synced is recovered, whatever torn tail a crash
        /// leaves after it, and nothing that was not written.
        #[test]
        fn synced_records_survive_any_crash(
            entries in proptest::collection::vec(data(), 1..12),
            synced in 0usize..12,
            seed in any::<u64>(),
        ) {
            let (mut disk, mut w) = fresh();
            let synced = synced.min(entries.len());
            for (i, d) in entries.iter().enumerate() {
                w.entry(i as u64 + 1, &Entry::new(1, d.clone()));
                if i + 1 == synced {
                    write(&mut disk, &mut w);
                }
            }
            w.flush(|op| if !matches!(op, DiskOp::Fsync) { disk.apply(op) });
            disk.crash(&mut SimRng::new(seed), 0.5);
            // A torn write may still have carried some whole records: what comes back is
            // everything synced, then possibly some of what followed, in order.
            let r = recover(&disk);
            let got = r.log.last_index() as usize;
            prop_assert!(got >= synced && got <= entries.len(), "{} of {}", got, synced);
            for (i, d) in entries.iter().take(got).enumerate() {
                prop_assert_eq!(r.log.entry(i as u64 + 1).map(|e| &*e.data), Some(d));
            }
        }
    }
}
