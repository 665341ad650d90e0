//! A per-node simulated disk (catalog id `sim.disk`).
//!
//! Each file has two images: what reads see while the node runs (the page cache) and what
//! survives a crash (the platter). `fsync` copies the first to the second. A crash throws
//! the page cache away, so unsynced writes are lost — except that the oldest unsynced
//! write may be *torn*: a random prefix of it made it to the platter, as on real disks
//! without atomic sector writes. Recovery code must therefore checksum what it reads.
//! This follows the failure model of "All File Systems Are Not Created Equal"
//! (Pillai et al., OSDI 2014): unsynced data may be lost, the last write may be partial.

use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::rng::SimRng;
use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;

/// One write a node asked for; what [`Disk::apply`] executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiskOp {
    /// Append bytes at the end of the file.
    Append { file: &'static str, bytes: Vec<u8> },
    /// Replace the whole content of the file.
    Overwrite { file: &'static str, bytes: Vec<u8> },
    /// Cut the file to `len` bytes (no-op if it is shorter).
    Truncate { file: &'static str, len: usize },
    /// Make every earlier write to every file durable.
    Fsync,
}

impl DiskOp {
    pub fn file(&self) -> Option<&'static str> {
        match self {
            DiskOp::Append { file, .. }
            | DiskOp::Overwrite { file, .. }
            | DiskOp::Truncate { file, .. } => Some(file),
            DiskOp::Fsync => None,
        }
    }
    /// Bytes this operation writes (for the trace and statistics).
    pub fn len(&self) -> usize {
        match self {
            DiskOp::Append { bytes, .. } | DiskOp::Overwrite { bytes, .. } => bytes.len(),
            DiskOp::Truncate { .. } | DiskOp::Fsync => 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What a read sees now.
    cached: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes since the last fsync, oldest first; the first may tear on a crash.
    unsynced: Vec<DiskOp>,
}

/// Counters a lab can draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub lost_writes: u64,
}

/// A node's disk. Survives the node's crashes; only its synced content survives.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    files: BTreeMap<&'static str, SimFile>,
    stats: DiskStats,
}

impl Disk {
    pub fn new() -> Self {
        Disk::default()
    }

    /// Executes one operation.
    pub fn apply(&mut self, op: DiskOp) {
        match op {
            DiskOp::Fsync => {
                self.stats.fsyncs += 1;
                // The platter takes the writes since the last fsync, which make it what
                // the cache shows: the cost of the bytes written, not of the file (a log
                // that fsyncs after every append would copy itself every time).
                for f in self.files.values_mut() {
                    for op in f.unsynced.drain(..) {
                        match op {
                            DiskOp::Append { bytes, .. } => f.durable.extend_from_slice(&bytes),
                            DiskOp::Overwrite { bytes, .. } => f.durable = bytes,
                            DiskOp::Truncate { len, .. } => f.durable.truncate(len),
                            DiskOp::Fsync => {}
                        }
                    }
                    debug_assert_eq!(f.durable, f.cached);
                }
            }
            DiskOp::Append { file, ref bytes } => {
                self.count_write(bytes.len());
                let f = self.files.entry(file).or_default();
                f.cached.extend_from_slice(bytes);
                f.unsynced.push(op);
            }
            DiskOp::Overwrite { file, ref bytes } => {
                self.count_write(bytes.len());
                let f = self.files.entry(file).or_default();
                f.cached.clone_from(bytes);
                f.unsynced.push(op);
            }
            DiskOp::Truncate { file, len } => {
                self.count_write(0);
                let f = self.files.entry(file).or_default();
                f.cached.truncate(len);
                f.unsynced.push(op);
            }
        }
    }

    fn count_write(&mut self, len: usize) {
        self.stats.writes += 1;
        self.stats.bytes_written += len as u64;
    }

    /// The content a read sees now.
    pub fn read(&self, file: &str) -> &[u8] {
        self.files
            .get(file)
            .map(|f| f.cached.as_slice())
            .unwrap_or(&[])
    }

    /// Whether `file` has writes that a crash would lose.
    pub fn has_unsynced(&self, file: &str) -> bool {
        self.files.get(file).is_some_and(|f| !f.unsynced.is_empty())
    }

    /// Names of the files on the disk, in order.
    pub fn files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.files.keys().copied()
    }

    pub fn stats(&self) -> DiskStats {
        self.stats
    }

    /// The node crashed: unsynced writes are lost, and with probability `torn_probability`
    /// per file the oldest unsynced write lands partially.
    pub fn crash(&mut self, rng: &mut SimRng, torn_probability: f64) {
        self.stats.crashes += 1;
        let mut torn = 0;
        let mut lost = 0;
        for f in self.files.values_mut() {
            lost += f.unsynced.len() as u64;
            if let Some(first) = f.unsynced.first()
                && rng.chance(torn_probability)
                && tear(&mut f.durable, first, rng)
            {
                torn += 1;
            }
            f.unsynced.clear();
            f.cached.clone_from(&f.durable);
        }
        self.stats.torn_writes += torn;
        self.stats.lost_writes += lost;
    }
}

/// A disk's state is what survives a crash and what may still be lost or torn: per file
/// (by name, in order), the platter and the unsynced writes, oldest first. Two disks with
/// the same page cache differ if one has synced it and the other has not.
///
/// Left out: the page cache, which is always the platter with the unsynced writes replayed
/// on it (each write goes to both images, `fsync` copies the writes across, a crash copies
/// the platter back), so it is derived from what is hashed; and [`DiskStats`], the
/// simulator's tally of what happened to the disk, which nodes never read (they see a disk
/// only through [`Disk::read`] and friends) and which would make a crash that lost nothing
/// look like a change.
impl Fingerprint for Disk {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let Disk { files, stats: _ } = self;
        files.len().hash(h);
        for (name, file) in files {
            let SimFile {
                cached: _,
                durable,
                unsynced,
            } = file;
            name.hash(h);
            durable.hash(h);
            unsynced.hash(h);
        }
    }
}

/// Applies a random strict prefix of `op` to `durable`. Returns whether anything changed.
fn tear(durable: &mut Vec<u8>, op: &DiskOp, rng: &mut SimRng) -> bool {
    match op {
        DiskOp::Append { bytes, .. } if bytes.len() > 1 => {
            let keep = 1 + rng.below(bytes.len() as u64 - 1) as usize;
            durable.extend_from_slice(bytes.get(..keep).unwrap_or(&[]));
            true
        }
        DiskOp::Overwrite { bytes, .. } if bytes.len() > 1 => {
            // The head of the new content over the tail of the old one.
            let keep = 1 + rng.below(bytes.len() as u64 - 1) as usize;
            let head = bytes.get(..keep).unwrap_or(&[]);
            if durable.len() < keep {
                durable.resize(keep, 0);
            }
            durable.splice(..keep, head.iter().copied());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn synced_writes_survive_unsynced_do_not() {
        let mut rng = SimRng::new(1);
        let mut d = Disk::new();
        d.apply(DiskOp::Append {
            file: "log",
            bytes: b"abc".to_vec(),
        });
        d.apply(DiskOp::Fsync);
        d.apply(DiskOp::Append {
            file: "log",
            bytes: b"def".to_vec(),
        });
        assert_eq!(d.read("log"), b"abcdef");
        d.crash(&mut rng, 0.0);
        assert_eq!(d.read("log"), b"abc");
        assert_eq!(d.stats().lost_writes, 1);
    }

    #[test]
    fn a_torn_append_leaves_a_strict_prefix() {
        let mut rng = SimRng::new(2);
        let mut d = Disk::new();
        d.apply(DiskOp::Append {
            file: "log",
            bytes: b"head".to_vec(),
        });
        d.apply(DiskOp::Fsync);
        d.apply(DiskOp::Append {
            file: "log",
            bytes: b"0123456789".to_vec(),
        });
        d.apply(DiskOp::Append {
            file: "log",
            bytes: b"never".to_vec(),
        });
        d.crash(&mut rng, 1.0);
        let got = d.read("log").to_vec();
        assert!(got.starts_with(b"head"));
        let tail = &got[4..];
        assert!(!tail.is_empty() && tail.len() < 10 && b"0123456789".starts_with(tail));
        assert_eq!(d.stats().torn_writes, 1);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Append(Vec<u8>),
        Overwrite(Vec<u8>),
        Truncate(usize),
        Fsync,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Step::Append),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Step::Overwrite),
            (0usize..16).prop_map(Step::Truncate),
            Just(Step::Fsync),
        ]
    }

    #[test]
    fn fingerprint_is_the_durable_content_and_the_unsynced_writes() {
        let append = |bytes: &[u8]| DiskOp::Append {
            file: "log",
            bytes: bytes.to_vec(),
        };
        let mut synced = Disk::new();
        synced.apply(append(b"abc"));
        synced.apply(DiskOp::Fsync);
        // The same page cache, not synced: a crash would lose it.
        let mut unsynced = Disk::new();
        unsynced.apply(append(b"abc"));
        assert_eq!(synced.read("log"), unsynced.read("log"));
        assert_ne!(synced.fingerprint(), unsynced.fingerprint());
        // A different unsynced write, a different file.
        let mut more = synced.clone();
        more.apply(append(b"d"));
        let mut other = synced.clone();
        other.apply(append(b"e"));
        assert_ne!(more.fingerprint(), synced.fingerprint());
        assert_ne!(more.fingerprint(), other.fingerprint());
        let mut renamed = Disk::new();
        renamed.apply(DiskOp::Append {
            file: "wal",
            bytes: b"abc".to_vec(),
        });
        renamed.apply(DiskOp::Fsync);
        assert_ne!(renamed.fingerprint(), synced.fingerprint());
        // One write of "ab" and two of "a", "b" tear differently until synced, and are
        // the same disk after.
        let mut one = Disk::new();
        one.apply(append(b"ab"));
        let mut two = Disk::new();
        two.apply(append(b"a"));
        two.apply(append(b"b"));
        assert_ne!(one.fingerprint(), two.fingerprint());
        one.apply(DiskOp::Fsync);
        two.apply(DiskOp::Fsync);
        assert_eq!(one.fingerprint(), two.fingerprint());
        assert_ne!(one.stats(), two.stats());
        // A crash that loses nothing changes nothing but the statistics.
        let before = synced.fingerprint();
        synced.crash(&mut SimRng::new(3), 1.0);
        assert_eq!(synced.stats().crashes, 1);
        assert_eq!(synced.fingerprint(), before);
    }

    /// The page cache, which the fingerprint leaves out, is the platter with the unsynced
    /// writes replayed on it.
    fn cache_is_derived(d: &Disk) -> bool {
        d.files.values().all(|f| {
            let mut replayed = Disk::new();
            replayed.apply(DiskOp::Overwrite {
                file: "f",
                bytes: f.durable.clone(),
            });
            for op in &f.unsynced {
                replayed.apply(match op.clone() {
                    DiskOp::Append { bytes, .. } => DiskOp::Append { file: "f", bytes },
                    DiskOp::Overwrite { bytes, .. } => DiskOp::Overwrite { file: "f", bytes },
                    DiskOp::Truncate { len, .. } => DiskOp::Truncate { file: "f", len },
                    DiskOp::Fsync => DiskOp::Fsync,
                });
            }
            replayed.read("f") == f.cached.as_slice()
        })
    }

    proptest! {
        #[test]
        fn the_page_cache_is_derived_from_what_the_fingerprint_hashes(steps in proptest::collection::vec((step(), 0u8..3, proptest::bool::weighted(0.1)), 0..40), seed in any::<u64>()) {
            let mut d = Disk::new();
            let mut rng = SimRng::new(seed);
            let files = ["a", "b", "c"];
            for (s, f, crash) in steps {
                let file = files[f as usize];
                d.apply(match s {
                    Step::Append(bytes) => DiskOp::Append { file, bytes },
                    Step::Overwrite(bytes) => DiskOp::Overwrite { file, bytes },
                    Step::Truncate(len) => DiskOp::Truncate { file, len },
                    Step::Fsync => DiskOp::Fsync,
                });
                prop_assert!(cache_is_derived(&d));
                if crash {
                    d.crash(&mut rng, 0.5);
                    prop_assert!(cache_is_derived(&d));
                }
            }
        }

        /// After a crash without tearing, every file reads exactly what it held at its last
        /// fsync; with tearing, the synced content is still a prefix for append-only use.
        #[test]
        fn crash_keeps_exactly_the_synced_image(steps in proptest::collection::vec(step(), 0..40), seed in any::<u64>()) {
            let mut d = Disk::new();
            let mut model_synced: Vec<u8> = Vec::new();
            let mut model_cached: Vec<u8> = Vec::new();
            for s in steps {
                match s {
                    Step::Append(b) => { model_cached.extend_from_slice(&b); d.apply(DiskOp::Append { file: "f", bytes: b }); }
                    Step::Overwrite(b) => { model_cached = b.clone(); d.apply(DiskOp::Overwrite { file: "f", bytes: b }); }
                    Step::Truncate(n) => { model_cached.truncate(n); d.apply(DiskOp::Truncate { file: "f", len: n }); }
                    Step::Fsync => { model_synced = model_cached.clone(); d.apply(DiskOp::Fsync); }
                }
                prop_assert_eq!(d.read("f"), model_cached.as_slice());
            }
            d.crash(&mut SimRng::new(seed), 0.0);
            prop_assert_eq!(d.read("f"), model_synced.as_slice());
        }

        #[test]
        fn append_only_files_keep_their_synced_prefix_even_when_torn(chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..8), any::<bool>()), 0..30), seed in any::<u64>()) {
            let mut d = Disk::new();
            let mut synced = Vec::new();
            let mut all = Vec::new();
            for (b, sync) in chunks {
                all.extend_from_slice(&b);
                d.apply(DiskOp::Append { file: "wal", bytes: b });
                if sync { d.apply(DiskOp::Fsync); synced = all.clone(); }
            }
            d.crash(&mut SimRng::new(seed), 1.0);
            let got = d.read("wal");
            prop_assert!(got.starts_with(&synced));
            prop_assert!(all.starts_with(got));
        }
    }
}
