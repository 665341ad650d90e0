//! Lab `sim.disk`: the simulated disk ([`crate::sim::disk`]) under a writer that appends
//! checksummed records to a log and fsyncs every few writes. A crash drops what was not
//! fsynced and may tear the oldest unsynced write; recovery then reads the platter,
//! keeps the records whose checksum holds and cuts the torn tail, as a write-ahead log
//! does. The view shows the page cache (records synced and not), the platter, each
//! crash's losses, and two invariants: every record an fsync covered survives every
//! crash, and recovery never accepts a torn record.
//!
//! Failure model: "All File Systems Are Not Created Equal" (Pillai et al., OSDI 2014) —
//! unsynced data may be lost, the last write may land partially.
//!
//! A record is `[length: u32 LE][checksum: u32 LE][payload]`, the checksum the low half of
//! the payload's stable hash. When the log passes [`CHECKPOINT_BYTES`] at an fsync, the
//! writer checkpoints: it overwrites the `checkpoint` file with the next record number,
//! fsyncs, empties the log and fsyncs again, so the disk stays small however long the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hasher;

use crate::bounded::{Count, Probability};
use crate::error::{DistlabError, Result};
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, View};
use crate::rng::SimRng;
use crate::sim::disk::{Disk, DiskOp, DiskStats};
use crate::sim::trace::StableHasher;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
use crate::time::{Duration, Time};

/// The log file the writer appends to.
pub const LOG: &str = "log";
/// The file holding the number of the first record in the log.
pub const CHECKPOINT: &str = "checkpoint";
/// Log size past which the writer checkpoints at its next fsync.
pub const CHECKPOINT_BYTES: usize = 16 * 1024;
/// The largest payload a record may carry.
pub const MAX_RECORD_BYTES: u32 = 4_096;
/// Records shown in the page-cache strip.
const STRIP_RECORDS: usize = 40;
/// Crashes kept for the crash table.
const CRASHES_KEPT: usize = 32;
/// Events kept for the trace (its hash covers all).
const TRACE_EVENTS: usize = 256;
/// Bytes of a record's header: length and checksum.
const HEADER: usize = 8;

local_lab_config! {
    /// Configuration of the disk lab. The seed drives the writes' timing and how a crash
    /// tears a write.
    pub struct DiskLabConfig {
        /// When the writer appends a record.
        pub writes: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 20.0 },
        /// Payload bytes per record.
        pub record_bytes: Count<1, { MAX_RECORD_BYTES }> = Count::of(24),
        /// The writer fsyncs after this many appends (0: only when asked).
        pub fsync_every: Count<0, 1_000> = Count::of(4),
        /// Chance that a crash tears the oldest unsynced write (lands a prefix of it).
        pub torn_probability: Probability = Probability::of(0.5),
    }
}

/// What can be done to the writer and its disk. JSON: `{"type": "powerLoss"}`,
/// `{"type": "fsync"}`, `{"type": "write"}`, `{"type": "setFsyncEvery", "every": 1}`,
/// `{"type": "setWrites", "writes": {"type": "constant", "ratePerSec": 50}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum DiskLabAction {
    /// Append one record now.
    Write {},
    /// Make every write so far durable.
    Fsync {},
    /// The machine loses power: the page cache is gone, then the writer recovers. (Not
    /// `crash`, which names the simulator's node fault in the cluster labs.)
    PowerLoss {},
    /// Fsync after every `every` appends from now on (0: only when asked).
    SetFsyncEvery { every: Count<0, 1_000> },
    /// Appends follow `writes` from now on.
    SetWrites { writes: ArrivalProcess },
}

/// What one crash did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashReport {
    pub at: Time,
    /// Records appended but never fsynced: gone.
    pub lost_records: u64,
    /// Whether the oldest unsynced write landed partially.
    pub torn: bool,
    /// Bytes of torn tail recovery cut off the log.
    pub cut_bytes: usize,
    /// Records the writer found on the platter and goes on from.
    pub recovered: u64,
}

/// What recovery reads off a log: whole records, and where the valid part ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Payloads of the records whose length and checksum hold, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes of valid records; anything after is a torn tail.
    pub valid_len: usize,
}

/// Reads records off `log` until one is incomplete or fails its checksum.
pub fn recover(log: &[u8]) -> Recovered {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = log.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let sum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = log.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if checksum(payload) != sum {
            break;
        }
        records.push(payload.to_vec());
        at += HEADER + len;
    }
    Recovered {
        records,
        valid_len: at,
    }
}

/// The arrival feed names its fields `arrivals.…`; here the process is `writes`.
fn as_writes(e: DistlabError) -> DistlabError {
    match e {
        DistlabError::InvalidField { field, problem } => {
            let rest = field.strip_prefix("arrivals").unwrap_or(&field);
            DistlabError::field(format!("writes{rest}"), problem)
        }
        other => other,
    }
}

fn checksum(payload: &[u8]) -> u32 {
    let mut h = StableHasher::default();
    h.write(payload);
    h.finish() as u32
}

/// Record `seq` with a payload of `bytes` bytes: its number, then filler.
fn encode(seq: u64, bytes: usize) -> Vec<u8> {
    let mut payload = format!("record {seq} ").into_bytes();
    payload.resize(bytes.max(1), b'.');
    payload.truncate(bytes.max(1));
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// One event of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceItem {
    step: u64,
    at_us: u64,
    op: &'static str,
    /// The record written, the records made durable, or the records recovered.
    seq: u64,
}

/// The disk lab.
#[derive(Debug, Clone)]
pub struct DiskLab {
    disk: Disk,
    feed: ArrivalFeed,
    /// How crashes tear writes.
    rng: SimRng,
    record_bytes: usize,
    fsync_every: u32,
    torn_probability: Probability,
    /// The number of the next record the writer appends.
    next_seq: u64,
    /// Records below this number were covered by an fsync: they must survive any crash.
    durable_seq: u64,
    /// The number of the log's first record (the checkpoint).
    base_seq: u64,
    appends_since_fsync: u32,
    crashes: VecDeque<CrashReport>,
    /// The first crash after which a record an fsync covered was missing.
    lost_durable: Option<String>,
    /// The first recovery that accepted a record not written as it reads.
    accepted_torn: Option<String>,
    hasher: StableHasher,
    /// Events noted in the trace so far (writes, fsyncs, checkpoints, crashes).
    noted: u64,
    trace: VecDeque<TraceItem>,
}

impl DiskLab {
    /// The disk, for tests.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn crashes(&self) -> impl Iterator<Item = &CrashReport> {
        self.crashes.iter()
    }

    fn note(&mut self, at: Moment, op: &'static str, seq: u64) {
        self.hasher.write_u64(at.step);
        self.hasher.write_u64(at.now.0);
        self.hasher.write(op.as_bytes());
        self.hasher.write_u64(seq);
        self.noted += 1;
        if self.trace.len() >= TRACE_EVENTS {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceItem {
            step: at.step,
            at_us: at.now.0,
            op,
            seq,
        });
    }

    fn append(&mut self, at: Moment) {
        let seq = self.next_seq;
        self.disk.apply(DiskOp::Append {
            file: LOG,
            bytes: encode(seq, self.record_bytes),
        });
        self.next_seq += 1;
        self.appends_since_fsync += 1;
        self.note(at, "write", seq);
        if self.fsync_every > 0 && self.appends_since_fsync >= self.fsync_every {
            self.fsync(at);
        }
    }

    fn fsync(&mut self, at: Moment) {
        self.disk.apply(DiskOp::Fsync);
        self.durable_seq = self.next_seq;
        self.appends_since_fsync = 0;
        self.note(at, "fsync", self.next_seq);
        if self.disk.read(LOG).len() >= CHECKPOINT_BYTES {
            self.disk.apply(DiskOp::Overwrite {
                file: CHECKPOINT,
                bytes: self.next_seq.to_le_bytes().to_vec(),
            });
            self.disk.apply(DiskOp::Fsync);
            self.disk.apply(DiskOp::Truncate { file: LOG, len: 0 });
            self.disk.apply(DiskOp::Fsync);
            self.base_seq = self.next_seq;
            self.note(at, "checkpoint", self.next_seq);
        }
    }

    /// Power loss, then the writer's recovery from what the platter holds.
    fn crash(&mut self, at: Moment) {
        let before = self.disk.stats();
        self.disk.crash(&mut self.rng, self.torn_probability.get());
        let after = self.disk.stats();
        let base = match self.disk.read(CHECKPOINT) {
            [a, b, c, d, e, f, g, h] => u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]),
            _ => 0,
        };
        let log = self.disk.read(LOG);
        let found = recover(log);
        let cut_bytes = log.len() - found.valid_len;
        if cut_bytes > 0 {
            self.disk.apply(DiskOp::Truncate {
                file: LOG,
                len: found.valid_len,
            });
            self.disk.apply(DiskOp::Fsync);
        }
        let recovered = base + found.records.len() as u64;
        if self.accepted_torn.is_none()
            && let Some(i) = (0..found.records.len())
                .find(|&i| encode(base + i as u64, self.record_bytes)[HEADER..] != found.records[i])
        {
            self.accepted_torn = Some(format!(
                "recovery at {} accepted record {} as something it was not written as",
                at.now,
                base + i as u64
            ));
        }
        if recovered < self.durable_seq && self.lost_durable.is_none() {
            self.lost_durable = Some(format!(
                "after the crash at {} only records below {recovered} were found, but an fsync \
                 had covered every record below {}",
                at.now, self.durable_seq
            ));
        }
        let report = CrashReport {
            at: at.now,
            lost_records: self.next_seq.saturating_sub(recovered),
            torn: after.torn_writes > before.torn_writes,
            cut_bytes,
            recovered,
        };
        if self.crashes.len() >= CRASHES_KEPT {
            self.crashes.pop_front();
        }
        self.crashes.push_back(report);
        self.base_seq = base;
        self.next_seq = recovered;
        self.durable_seq = recovered;
        self.appends_since_fsync = 0;
        self.note(at, "crash", recovered);
    }

    /// The newest records of the page cache, synced (ok) or not (pending).
    fn cache_strip(&self) -> Panel {
        let from = self
            .next_seq
            .saturating_sub(STRIP_RECORDS as u64)
            .max(self.base_seq);
        Panel::Strip {
            title: format!(
                "page cache: records {from} to {} (green: fsynced, amber: not yet)",
                self.next_seq.saturating_sub(1)
            ),
            items: (from..self.next_seq)
                .map(|seq| StripItem {
                    label: format!("record {seq}"),
                    state: if seq < self.durable_seq {
                        "ok"
                    } else {
                        "pending"
                    }
                    .into(),
                })
                .collect(),
        }
    }

    fn files_table(&self) -> Panel {
        let rows = self
            .disk
            .files()
            .map(|f| {
                vec![
                    json!(f),
                    json!(self.disk.read(f).len()),
                    json!(self.disk.has_unsynced(f)),
                ]
            })
            .collect();
        Panel::Table {
            title: "files (bytes a read sees now)".into(),
            columns: ["file", "bytes", "unsynced writes"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn crashes_table(&self) -> Panel {
        let rows = self
            .crashes
            .iter()
            .rev()
            .map(|c| {
                vec![
                    json!(c.at.as_millis_f64()),
                    json!(c.lost_records),
                    json!(c.torn),
                    json!(c.cut_bytes),
                    json!(c.recovered),
                ]
            })
            .collect();
        Panel::Table {
            title: "crashes (latest first)".into(),
            columns: [
                "at ms",
                "records lost",
                "last write torn",
                "torn bytes cut",
                "records recovered",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn fields(&self) -> BTreeMap<String, Value> {
        let mut f = BTreeMap::new();
        f.insert("nextRecord".into(), json!(self.next_seq));
        f.insert("fsyncedBelow".into(), json!(self.durable_seq));
        f.insert("checkpoint".into(), json!(self.base_seq));
        f.insert("appendsSinceFsync".into(), json!(self.appends_since_fsync));
        f.insert("fsyncEvery".into(), json!(self.fsync_every));
        f.insert("logBytes".into(), json!(self.disk.read(LOG).len()));
        f.insert("disk".into(), json!(self.disk.stats()));
        f
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const DURABLE: &str = "every fsynced record survives a crash";
        const TORN: &str = "recovery never accepts a torn record";
        let crashes = self.disk.stats().crashes;
        vec![
            match &self.lost_durable {
                Some(d) => InvariantStatus::violated(DURABLE, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    DURABLE,
                    format!("checked after each of {crashes} crashes"),
                ),
            },
            match &self.accepted_torn {
                Some(d) => InvariantStatus::violated(TORN, d.clone(), vec![0]),
                None => InvariantStatus::holds(
                    TORN,
                    format!(
                        "every record recovery kept reads as written ({} torn writes cut)",
                        self.disk.stats().torn_writes
                    ),
                ),
            },
        ]
    }
}

impl Sampled for DiskLab {
    type Totals = DiskStats;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("writes", "per interval"),
            ("fsyncs", "per interval"),
            ("records not yet fsynced", "records"),
            ("writes lost to crashes", "writes"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> DiskStats {
        self.disk.stats()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &DiskStats) -> Vec<f64> {
        let s = self.disk.stats();
        vec![
            (s.writes - since.writes) as f64,
            (s.fsyncs - since.fsyncs) as f64,
            (self.next_seq - self.durable_seq) as f64,
            s.lost_writes as f64,
        ]
    }
}

impl LocalLab for DiskLab {
    const ID: &'static str = "sim.disk";
    type Config = DiskLabConfig;
    type Action = DiskLabAction;

    fn new(c: &DiskLabConfig) -> Result<Self> {
        Ok(DiskLab {
            disk: Disk::new(),
            feed: ArrivalFeed::new(c.seed, &c.writes, Time::ZERO).map_err(as_writes)?,
            rng: SimRng::derive(c.seed, 2),
            record_bytes: c.record_bytes.get() as usize,
            fsync_every: c.fsync_every.get(),
            torn_probability: c.torn_probability,
            next_seq: 0,
            durable_seq: 0,
            base_seq: 0,
            appends_since_fsync: 0,
            crashes: VecDeque::new(),
            lost_durable: None,
            accepted_torn: None,
            hasher: StableHasher::default(),
            noted: 0,
            trace: VecDeque::new(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        Some(self.feed.next_at())
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        self.feed.take();
        self.append(at);
    }

    fn act(&mut self, at: Moment, action: &DiskLabAction) -> Result<()> {
        match action {
            DiskLabAction::Write {} => self.append(at),
            DiskLabAction::Fsync {} => self.fsync(at),
            DiskLabAction::PowerLoss {} => self.crash(at),
            DiskLabAction::SetFsyncEvery { every } => {
                self.fsync_every = every.get();
            }
            DiskLabAction::SetWrites { writes } => {
                self.feed.set_process(writes, at.now).map_err(as_writes)?;
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<DiskStats>) -> View {
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "writer".into(),
                role: "writer".into(),
                status: "up".into(),
                fields: self.fields(),
                group: None,
            }],
            panels: vec![self.cache_strip(), self.files_table(), self.crashes_table()],
            invariants: self.invariants(),
            ..View::default()
        }
    }

    /// `{hash, events, complete, trace}`: a stable hash of every write, fsync, checkpoint
    /// and crash, and the newest of them.
    fn trace(&self, _at: Moment) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.noted,
            "complete": self.noted <= self.trace.len() as u64,
            "trace": serde_json::to_value(&self.trace).unwrap_or(Value::Null),
        })
    }

    fn example_actions() -> Vec<DiskLabAction> {
        vec![
            DiskLabAction::PowerLoss {},
            DiskLabAction::Write {},
            DiskLabAction::Fsync {},
            DiskLabAction::SetFsyncEvery {
                every: Count::of(0),
            },
            DiskLabAction::SetFsyncEvery {
                every: Count::of(1),
            },
            DiskLabAction::SetWrites {
                writes: ArrivalProcess::Constant {
                    rate_per_sec: 100.0,
                },
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, LabModel, Local, Runner};

    fn lab(config: Value) -> Runner<Local<DiskLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn all_hold(v: &View) -> bool {
        v.invariants.iter().all(|i| i.ok)
    }

    #[test]
    fn recovery_keeps_whole_records_and_cuts_a_torn_tail() {
        let mut log: Vec<u8> = (0..3).flat_map(|s| encode(s, 10)).collect();
        let whole = log.len();
        assert_eq!(recover(&log).records.len(), 3);
        assert_eq!(recover(&log).valid_len, whole);
        let fourth = encode(3, 10);
        log.extend_from_slice(&fourth[..fourth.len() - 1]);
        let r = recover(&log);
        assert_eq!((r.records.len(), r.valid_len), (3, whole));
        // A flipped payload byte fails the checksum: recovery stops before it.
        let mut bad = log.clone();
        bad[HEADER + 2] ^= 1;
        assert_eq!(recover(&bad).records.len(), 0);
        assert_eq!(recover(&[]).valid_len, 0);
    }

    #[test]
    fn crashes_lose_exactly_the_unsynced_records_and_never_a_synced_one() {
        for seed in 0..40 {
            for every in [0, 1, 3] {
                let mut l = lab(json!({"seed": seed, "fsyncEvery": every,
                                        "tornProbability": 1.0}));
                for round in 0..8 {
                    l.step(Duration::from_millis(170 + 37 * round)).unwrap();
                    let (next, durable) = (l.model().next_seq, l.model().durable_seq);
                    l.act(&json!({"type": "powerLoss"})).unwrap();
                    let c = *l.model().crashes().last().unwrap();
                    assert_eq!(c.recovered, durable, "seed {seed} every {every}");
                    assert_eq!(c.lost_records, next - durable);
                    if every == 1 {
                        assert_eq!(c.lost_records, 0);
                    }
                }
                assert!(
                    all_hold(&l.view()),
                    "seed {seed}: {:?}",
                    l.view().invariants
                );
            }
        }
    }

    #[test]
    fn a_torn_write_is_cut_by_recovery() {
        let mut l = lab(json!({"fsyncEvery": 0, "tornProbability": 1.0, "recordBytes": 64}));
        l.step(Duration::from_millis(500)).unwrap();
        assert!(l.model().next_seq > 1);
        l.act(&json!({"type": "powerLoss"})).unwrap();
        let c = *l.model().crashes().last().unwrap();
        assert!(c.torn && c.cut_bytes > 0, "{c:?}");
        assert_eq!(c.recovered, 0);
        assert_eq!(l.model().disk().read(LOG), b"");
        assert!(all_hold(&l.view()));
    }

    #[test]
    fn checkpoints_keep_the_disk_small() {
        let mut l = lab(json!({"writes": {"type": "constant", "ratePerSec": 1000},
                                "fsyncEvery": 1}));
        l.step(Duration::from_secs(20)).unwrap();
        let m = l.model();
        assert!(m.next_seq > 19_000);
        assert!(m.base_seq > 0);
        assert!(m.disk().read(LOG).len() < CHECKPOINT_BYTES + HEADER + 24);
        l.act(&json!({"type": "powerLoss"})).unwrap();
        let c = *l.model().crashes().last().unwrap();
        assert_eq!(c.recovered, c.recovered.max(l.model().durable_seq));
        assert_eq!(c.lost_records, 0);
        assert!(all_hold(&l.view()));
    }

    #[test]
    fn both_invariants_can_fail() {
        // A writer that believed a record durable when it was not.
        let mut m = Local::<DiskLab>::new(&DiskLabConfig {
            fsync_every: Count::of(0),
            ..DiskLabConfig::default()
        })
        .unwrap();
        while m.step_until(Time::from_millis(300)) {}
        m.durable_seq = m.next_seq;
        m.act(&DiskLabAction::PowerLoss {}).unwrap();
        let v = m.view();
        assert!(!v.invariants[0].ok, "{:?}", v.invariants);
        // A record whose checksum holds but that is not the one written there.
        let mut m = Local::<DiskLab>::new(&DiskLabConfig::default()).unwrap();
        m.disk.apply(DiskOp::Append {
            file: LOG,
            bytes: encode(7, 24),
        });
        m.disk.apply(DiskOp::Fsync);
        m.act(&DiskLabAction::PowerLoss {}).unwrap();
        let v = m.view();
        assert!(!v.invariants[1].ok, "{:?}", v.invariants);
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"recordBytes": 0}), "config.recordBytes"),
            (json!({"fsyncEvery": 5000}), "config.fsyncEvery"),
            (json!({"tornProbability": 2}), "config.tornProbability"),
            (json!({"sampleMs": 0}), "config.sampleMs"),
            (
                json!({"writes": {"type": "poisson", "ratePerSec": -1}}),
                "config.writes.ratePerSec",
            ),
        ] {
            let e = Runner::<Local<DiskLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
        }
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "setFsyncEvery", "every": 5000}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`action.every`"), "{e}");
    }
}
