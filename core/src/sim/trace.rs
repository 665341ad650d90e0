//! The trace (catalog id `sim.trace`): every send, delivery, drop, duplicate, timer,
//! crash, restart, pause, disk write and state change, stamped with its step and time.
//!
//! The trace hash is computed for every event even when events are not kept, with a
//! hasher whose output does not depend on the platform's word size, so the same run has
//! the same hash natively and in wasm.

use serde::Serialize;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::sim::node::{ClientId, Endpoint, NodeId, RequestId, TimerId};
use crate::time::Time;

/// Why a message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DropReason {
    Loss,
    Partition,
    NodeDown,
    NoSuchNode,
    /// A reply reached a client that had already given up.
    ClientGaveUp,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TraceKind {
    Send {
        from: Endpoint,
        to: Endpoint,
        msg: u64,
        kind: &'static str,
    },
    Deliver {
        from: Endpoint,
        to: Endpoint,
        msg: u64,
        kind: &'static str,
    },
    Drop {
        from: Endpoint,
        to: Endpoint,
        msg: u64,
        kind: &'static str,
        reason: DropReason,
    },
    Duplicate {
        from: Endpoint,
        to: Endpoint,
        msg: u64,
        kind: &'static str,
    },
    Timer {
        node: NodeId,
        timer: TimerId,
    },
    Crash {
        node: NodeId,
    },
    Restart {
        node: NodeId,
    },
    Pause {
        node: NodeId,
    },
    Resume {
        node: NodeId,
    },
    Persist {
        node: NodeId,
        op: &'static str,
        file: Option<&'static str>,
        bytes: usize,
    },
    StateChange {
        node: NodeId,
        what: String,
    },
    Log {
        node: NodeId,
        text: String,
    },
    Fault {
        what: String,
    },
    Invoke {
        client: ClientId,
        request: RequestId,
        node: NodeId,
    },
    ClientOk {
        client: ClientId,
        request: RequestId,
    },
    ClientFail {
        client: ClientId,
        request: RequestId,
    },
    ClientTimeout {
        client: ClientId,
        request: RequestId,
    },
    External {
        tag: u64,
    },
}

impl TraceKind {
    /// Every kind's `type`, in declaration order ([`TraceKind::index`]).
    pub const TYPES: &'static [&'static str] = &[
        "send",
        "deliver",
        "drop",
        "duplicate",
        "timer",
        "crash",
        "restart",
        "pause",
        "resume",
        "persist",
        "stateChange",
        "log",
        "fault",
        "invoke",
        "clientOk",
        "clientFail",
        "clientTimeout",
        "external",
    ];

    /// This kind's position in [`TraceKind::TYPES`].
    pub fn index(&self) -> usize {
        match self {
            TraceKind::Send { .. } => 0,
            TraceKind::Deliver { .. } => 1,
            TraceKind::Drop { .. } => 2,
            TraceKind::Duplicate { .. } => 3,
            TraceKind::Timer { .. } => 4,
            TraceKind::Crash { .. } => 5,
            TraceKind::Restart { .. } => 6,
            TraceKind::Pause { .. } => 7,
            TraceKind::Resume { .. } => 8,
            TraceKind::Persist { .. } => 9,
            TraceKind::StateChange { .. } => 10,
            TraceKind::Log { .. } => 11,
            TraceKind::Fault { .. } => 12,
            TraceKind::Invoke { .. } => 13,
            TraceKind::ClientOk { .. } => 14,
            TraceKind::ClientFail { .. } => 15,
            TraceKind::ClientTimeout { .. } => 16,
            TraceKind::External { .. } => 17,
        }
    }

    /// The nodes this event belongs to, for drawing a lane per node.
    pub fn nodes(&self) -> (Option<NodeId>, Option<NodeId>) {
        let node_of = |e: &Endpoint| match e {
            Endpoint::Node(n) => Some(*n),
            Endpoint::Client(_) => None,
        };
        match self {
            TraceKind::Send { from, to, .. }
            | TraceKind::Deliver { from, to, .. }
            | TraceKind::Drop { from, to, .. }
            | TraceKind::Duplicate { from, to, .. } => (node_of(from), node_of(to)),
            TraceKind::Timer { node, .. }
            | TraceKind::Crash { node }
            | TraceKind::Restart { node }
            | TraceKind::Pause { node }
            | TraceKind::Resume { node }
            | TraceKind::Persist { node, .. }
            | TraceKind::StateChange { node, .. }
            | TraceKind::Log { node, .. }
            | TraceKind::Invoke { node, .. } => (Some(*node), None),
            _ => (None, None),
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEvent {
    pub step: u64,
    pub time: Time,
    #[serde(flatten)]
    pub kind: TraceKind,
}

/// A 64-bit hasher that gives the same answer on 32- and 64-bit targets: word-sized
/// integers are widened to 64 bits before mixing. The mixing is FxHash's, finished with
/// a splitmix64 avalanche when read.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0x243f_6a88_85a3_08d3)
    }
}

impl StableHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.mix(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    fn write_isize(&mut self, i: isize) {
        self.mix(i as i64 as u64);
    }
}

/// Events per sealed chunk of the recorded trace.
const CHUNK: usize = 4096;

/// The trace of one simulation: a running hash of every event and, when recording, the
/// newest events themselves (at least `limit` of them once that many happened; older
/// ones are let go a chunk at a time, while the hash and the count go on).
///
/// Events are numbered from 0 in the order they happened, whether kept or not, so a reader
/// can ask for what came after the last event it saw. Kept events live in sealed, shared
/// chunks, so cloning a simulation (which the lab runner does for every snapshot) copies at
/// most one chunk of events, not the whole history.
#[derive(Debug, Clone)]
pub struct Trace {
    hasher: StableHasher,
    count: u64,
    sealed: VecDeque<Arc<[TraceEvent]>>,
    tail: Vec<TraceEvent>,
    /// The number of the oldest kept event.
    first: u64,
    record: bool,
    limit: usize,
}

impl Trace {
    pub fn new(record: bool, limit: usize) -> Self {
        Trace {
            hasher: StableHasher::default(),
            count: 0,
            sealed: VecDeque::new(),
            tail: Vec::new(),
            first: 0,
            record: record && limit > 0,
            limit,
        }
    }

    #[inline]
    pub fn push(&mut self, step: u64, time: Time, kind: TraceKind) {
        self.hasher.write_u64(step);
        self.hasher.write_u64(time.0);
        kind.hash(&mut self.hasher);
        self.count += 1;
        if !self.record {
            self.first = self.count;
            return;
        }
        self.tail.push(TraceEvent { step, time, kind });
        if self.tail.len() == CHUNK {
            self.sealed
                .push_back(Arc::from(std::mem::take(&mut self.tail)));
            // Let the oldest chunk go once the others hold the limit without it.
            if (self.sealed.len() - 1) * CHUNK >= self.limit {
                self.sealed.pop_front();
                self.first += CHUNK as u64;
            }
        }
    }

    /// A hash of every event so far; equal traces have equal hashes on every platform.
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// Number of events so far (kept or not); also the number the next event will get.
    pub fn len(&self) -> u64 {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The number of the oldest event kept (`len()` when none is).
    pub fn first_kept(&self) -> u64 {
        self.first
    }

    /// Number of events kept.
    pub fn kept(&self) -> usize {
        (self.count - self.first) as usize
    }

    /// The kept events in order, oldest first.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &TraceEvent> + '_ {
        self.sealed
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.tail.iter())
    }

    /// The kept events numbered `from` or later.
    pub fn events_from(&self, from: u64) -> impl Iterator<Item = &TraceEvent> + '_ {
        let skip = from.saturating_sub(self.first).min(self.count - self.first) as usize;
        self.sealed
            .iter()
            .skip(skip / CHUNK)
            .flat_map(|c| c.iter())
            .chain(self.tail.iter())
            .skip(skip % CHUNK)
    }

    /// Whether every event was kept.
    pub fn is_complete(&self) -> bool {
        self.first == 0
    }

    /// The whole kept trace as JSON (see [`Trace::json_from`]).
    pub fn to_json(&self) -> serde_json::Value {
        self.json_from(0, usize::MAX)
    }

    /// The kept events numbered `from` or later, at most the newest `max` of them, as JSON:
    /// `{ "hash": "…", "events": n, "first": k, "complete": bool, "trace": [...] }` where
    /// `events` counts every event so far, `first` is the number of the first one listed,
    /// and `complete` says the list starts at the very first event.
    pub fn json_from(&self, from: u64, max: usize) -> serde_json::Value {
        let from = from
            .max(self.first)
            .max(self.count.saturating_sub(max as u64))
            .min(self.count);
        let events: Vec<serde_json::Value> = self
            .events_from(from)
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        serde_json::json!({
            "hash": format!("{:016x}", self.hash()),
            "events": self.count,
            "first": from,
            "complete": from == 0,
            "trace": events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field_and_order() {
        let a = TraceKind::Timer { node: 1, timer: 2 };
        let b = TraceKind::Timer { node: 2, timer: 1 };
        let mut t1 = Trace::new(false, 0);
        let mut t2 = Trace::new(false, 0);
        t1.push(0, Time(5), a.clone());
        t1.push(1, Time(6), b.clone());
        t2.push(0, Time(5), b);
        t2.push(1, Time(6), a);
        assert_ne!(t1.hash(), t2.hash());
        assert_eq!(t1.len(), 2);
        assert_eq!(t1.events().count(), 0);
    }

    #[test]
    fn chunked_events_read_back_in_order() {
        let mut t = Trace::new(true, 10_000);
        for i in 0..9_000u64 {
            t.push(i, Time(i), TraceKind::External { tag: i });
        }
        assert_eq!(t.kept(), 9_000);
        assert!(t.is_complete());
        assert!(t.events().map(|e| e.step).eq(0..9_000));
        assert!(t.events_from(5_000).map(|e| e.step).eq(5_000..9_000));
        assert_eq!(t.events_from(9_000).count(), 0);
        assert_eq!(t.events_from(u64::MAX).count(), 0);
        let copy = t.clone();
        assert!(copy.events().eq(t.events()));
    }

    #[test]
    fn past_the_limit_the_newest_events_are_kept_and_keep_their_numbers() {
        let mut t = Trace::new(true, 2 * CHUNK);
        let n = 10 * CHUNK as u64 + 17;
        for i in 0..n {
            t.push(i, Time(i), TraceKind::External { tag: i });
        }
        assert_eq!(t.len(), n);
        assert!(!t.is_complete());
        assert!(
            t.kept() >= 2 * CHUNK && t.kept() < 4 * CHUNK,
            "{}",
            t.kept()
        );
        assert_eq!(t.first_kept() + t.kept() as u64, n);
        // Every kept event is numbered by its step here.
        assert!(t.events().map(|e| e.step).eq(t.first_kept()..n));
        assert!(t.events_from(n - 5).map(|e| e.step).eq(n - 5..n));
        assert!(t.events_from(0).map(|e| e.step).eq(t.first_kept()..n));
        let j = t.json_from(n - 3, usize::MAX);
        assert_eq!(j["first"], n - 3);
        assert_eq!(j["events"], n);
        assert_eq!(j["complete"], false);
        assert_eq!(j["trace"].as_array().unwrap().len(), 3);
        let newest = t.json_from(0, 10);
        assert_eq!(newest["first"], n - 10);
        assert_eq!(newest["trace"][0]["step"], n - 10);
        assert_eq!(t.json_from(n + 5, 10)["trace"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn without_recording_nothing_is_kept_but_everything_is_counted() {
        let mut t = Trace::new(false, 100);
        for i in 0..10u64 {
            t.push(i, Time(i), TraceKind::External { tag: i });
        }
        assert_eq!((t.len(), t.kept(), t.first_kept()), (10, 0, 10));
        assert_eq!(
            t.json_from(0, usize::MAX)["trace"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn hasher_is_word_size_independent() {
        let mut a = StableHasher::default();
        a.write_usize(7);
        let mut b = StableHasher::default();
        b.write_u64(7);
        assert_eq!(a.finish(), b.finish());
    }
}
