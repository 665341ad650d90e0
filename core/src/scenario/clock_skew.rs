//! Scenario `scenario.clock-skew`: the same writes, under one seed, stamped three ways
//! side by side — by the replicas' **wall clocks** (the failure), by **hybrid logical
//! clocks** ([`crate::consistency::hlc`], Kulkarni et al. 2014) and by **Lamport clocks**
//! ([`crate::consistency::lamport`], Lamport 1978) (the fixes).
//!
//! Replicas of a last-writer-wins store have clocks spread evenly over ±`skewMs`. Each
//! arrival is a client write to a random replica and key; it reaches the other replicas
//! `replicationMs` later, and a replica keeps, per key, the version with the highest stamp
//! (ties broken by replica). A write stamped no higher than the version its own replica
//! already holds — a version the writer had therefore seen: the write is causally later —
//! is acknowledged and silently dropped. Wall clocks do that whenever the earlier version
//! came from a replica whose clock runs ahead by more than the time between them
//! (Kleppmann, DDIA ch. 8, "Timestamps for ordering events"); an HLC or Lamport clock
//! takes in the stamp of every version it receives, so its next stamp is above it.
//!
//! Every write also gets an id at its replica: a Snowflake id ([`crate::consistency::id_gen`],
//! trusting the clock: `naive`) in the wall-clock lane, `(l << 22) | c` of the HLC stamp, and
//! the Lamport counter. At `stepAtMs` replica 0's wall clock steps back by
//! `backwardStepMs` (an NTP correction); its Snowflake ids then go backwards (and its own
//! later writes lose to its earlier ones), while the HLC's `l` holds at its last value and
//! counts on in `c`.
//!
//! Metrics: writes lost by LWW and ids out of order (not above the replica's previous),
//! per lane. Invariants, the same two checks on every lane: each is expected to fail on the
//! wall clock and hold on the other two.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hasher;

use crate::bounded::{Count, Millis};
use crate::consistency::hlc::{Hlc, HlcTimestamp};
use crate::consistency::id_gen::{
    ClockPolicy, DISCORD_EPOCH_MS, Issued, Snowflake, SnowflakeConfig,
};
use crate::consistency::lamport::LamportClock;
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::rng::SimRng;
use crate::sim::trace::StableHasher;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// The most replicas.
pub const MAX_REPLICAS: u32 = 8;
/// The largest skew or step, ms.
pub const MAX_SKEW_MS: u32 = 3_600_000;
/// Where the wall clocks start: 2026-01-01T00:00:00Z, Unix ms (above any skew).
const CLOCK_START_MS: u64 = 1_767_225_600_000;
/// The HLC's ε: larger than any spread the config allows, so no message is refused.
const HLC_MAX_OFFSET_MS: u64 = 4 * MAX_SKEW_MS as u64;
/// Bits of an HLC id's counter.
const HLC_ID_COUNTER_BITS: u32 = 22;
/// Writes listed and traced (the newest).
const WRITES_SHOWN: usize = 16;
const TRACE_KEPT: usize = 2_000;

local_lab_config! {
    /// Configuration of the clock-skew scenario.
    pub struct ClockSkewLabConfig {
        /// When a client writes.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 50.0 },
        pub replicas: Count<2, { MAX_REPLICAS }> = Count::of(3),
        pub keys: Count<1, 16> = Count::of(2),
        /// The replicas' wall clocks are spread evenly from −skew to +skew.
        pub skew_ms: Count<0, { MAX_SKEW_MS }> = Count::of(200),
        /// How long a write takes to reach the other replicas.
        pub replication_ms: Millis<0, 60_000> = Millis::of(20),
        /// When replica 0's wall clock steps back, in lab time.
        pub step_at_ms: Millis<0, 3_600_000> = Millis::of(2_000),
        /// How far it steps back (0: never).
        pub backward_step_ms: Count<0, { MAX_SKEW_MS }> = Count::of(500),
    }
}

/// What can be done. JSON: `{"type": "write", "replica": 1, "key": "k0"}`,
/// `{"type": "stepClock", "replica": 0, "backMs": 300}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClockSkewLabAction {
    /// A write of `key` at `replica`, in every lane.
    Write { replica: u32, key: String },
    /// Steps `replica`'s wall clock back by `backMs` and forward by `forwardMs`.
    StepClock {
        replica: u32,
        back_ms: Option<Count<0, { MAX_SKEW_MS }>>,
        forward_ms: Option<Count<0, { MAX_SKEW_MS }>>,
    },
}

/// How a lane stamps and numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LaneKind {
    WallClock,
    Hlc,
    Lamport,
}

impl LaneKind {
    pub const ALL: [LaneKind; 3] = [LaneKind::WallClock, LaneKind::Hlc, LaneKind::Lamport];

    pub fn name(self) -> &'static str {
        match self {
            LaneKind::WallClock => "wall clock",
            LaneKind::Hlc => "HLC",
            LaneKind::Lamport => "Lamport",
        }
    }
}

/// A version's stamp: (major, minor), then the replica that made it.
pub type Stamp = (u64, u64, u32);

/// One replica's clock in one lane.
#[derive(Debug, Clone)]
enum ReplicaClock {
    /// The per-ms sequence of the last wall-clock stamp, and the Snowflake generator.
    Wall {
        last: (u64, u64),
        ids: Snowflake,
    },
    Hlc(Hlc),
    Lamport(LamportClock),
}

/// One lane: every replica's clock, store and ids.
#[derive(Debug, Clone)]
struct Lane {
    kind: LaneKind,
    clocks: Vec<ReplicaClock>,
    /// Per replica, per key: the winning version's stamp and write number.
    stores: Vec<BTreeMap<String, (Stamp, u64)>>,
    /// Per replica, the last id given.
    last_ids: Vec<Option<u64>>,
    lost: u64,
    out_of_order: u64,
    first_lost: Option<String>,
    first_out_of_order: Option<(u32, String)>,
}

/// Running totals per lane, in [`LaneKind::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockSkewTotals {
    pub lost: [u64; 3],
    pub out_of_order: [u64; 3],
}

/// A write on its way to another replica, with its stamp in each lane.
#[derive(Debug, Clone, PartialEq)]
struct Delivery {
    at: Time,
    to: u32,
    key: String,
    write: u64,
    stamps: [Stamp; 3],
}

/// One write, for the table and the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteRow {
    step: u64,
    at_us: u64,
    write: u64,
    replica: u32,
    key: String,
    stamps: [Stamp; 3],
    ids: [Option<u64>; 3],
    /// Per lane, whether the write was dropped at its own replica.
    lost: [bool; 3],
}

/// The clock-skew scenario.
#[derive(Debug, Clone)]
pub struct ClockSkewLab {
    lanes: Vec<Lane>,
    /// Per replica, its wall clock's offset from lab time, ms.
    offsets: Vec<i64>,
    keys: u32,
    replication: Duration,
    step_at: Time,
    backward_step_ms: u32,
    stepped: bool,
    /// In order of arrival time (the delay is the same for every write).
    deliveries: VecDeque<Delivery>,
    rng: SimRng,
    next_write: u64,
    writes: VecDeque<WriteRow>,
    hasher: StableHasher,
    traced: u64,
}

impl ClockSkewLab {
    /// Writes lost and ids out of order, per lane in [`LaneKind::ALL`] order.
    pub fn tallies(&self) -> Vec<(LaneKind, u64, u64)> {
        self.lanes
            .iter()
            .map(|l| (l.kind, l.lost, l.out_of_order))
            .collect()
    }

    /// Replica `r`'s wall clock at lab time `now`, Unix ms.
    pub fn wall_ms(&self, r: u32, now: Time) -> u64 {
        let offset = self.offsets.get(r as usize).copied().unwrap_or(0);
        (CLOCK_START_MS as i64 + (now.0 / 1_000) as i64 + offset).max(0) as u64
    }

    fn check_replica(&self, r: u32) -> Result<()> {
        if (r as usize) < self.offsets.len() {
            Ok(())
        } else {
            Err(DistlabError::field(
                "replica",
                format!(
                    "replica {r} does not exist (there are {})",
                    self.offsets.len()
                ),
            ))
        }
    }

    fn write(&mut self, at: Moment, replica: u32, key: &str) {
        let pt = self.wall_ms(replica, at.now);
        let write = self.next_write;
        self.next_write += 1;
        let mut row = WriteRow {
            step: at.step,
            at_us: at.now.0,
            write,
            replica,
            key: key.to_string(),
            stamps: [(0, 0, replica); 3],
            ids: [None; 3],
            lost: [false; 3],
        };
        let slots = row
            .stamps
            .iter_mut()
            .zip(row.ids.iter_mut())
            .zip(row.lost.iter_mut());
        for (lane, ((stamp_slot, id_slot), lost_slot)) in self.lanes.iter_mut().zip(slots) {
            let Some((stamp, id)) = lane.stamp(replica, pt) else {
                continue;
            };
            *stamp_slot = stamp;
            *id_slot = id;
            if let Some(id) = id {
                lane.take_id(replica, id, write);
            }
            let Some(store) = lane.stores.get_mut(replica as usize) else {
                continue;
            };
            match store.get(key) {
                Some(&(current, seen)) if stamp <= current => {
                    // The writer's replica held `seen`: this write is causally later, and
                    // last-writer-wins drops it.
                    *lost_slot = true;
                    lane.lost += 1;
                    lane.first_lost.get_or_insert_with(|| {
                        format!(
                            "w{write} at r{replica} stamped {stamp:?}, not above w{seen} \
                             ({current:?}) which r{replica} already held"
                        )
                    });
                }
                _ => {
                    store.insert(key.to_string(), (stamp, write));
                }
            }
        }
        let arrive = at.now + self.replication;
        for to in 0..self.offsets.len() as u32 {
            if to != replica {
                self.deliveries.push_back(Delivery {
                    at: arrive,
                    to,
                    key: key.to_string(),
                    write,
                    stamps: row.stamps,
                });
            }
        }
        self.note(row);
    }

    fn deliver(&mut self, now: Time, d: Delivery) {
        let pt = self.wall_ms(d.to, now);
        for (lane, &stamp) in self.lanes.iter_mut().zip(&d.stamps) {
            lane.receive(d.to, stamp, pt);
            if let Some(store) = lane.stores.get_mut(d.to as usize)
                && store
                    .get(&d.key)
                    .is_none_or(|(current, _)| stamp > *current)
            {
                store.insert(d.key.clone(), (stamp, d.write));
            }
        }
    }

    fn note(&mut self, row: WriteRow) {
        self.hasher.write_u64(row.step);
        self.hasher.write_u64(row.at_us);
        self.hasher.write_u64(row.write);
        for (s, id) in row.stamps.iter().zip(row.ids) {
            self.hasher.write_u64(s.0);
            self.hasher.write_u64(s.1);
            self.hasher.write_u64(id.unwrap_or(0));
        }
        self.traced += 1;
        if self.writes.len() == TRACE_KEPT {
            self.writes.pop_front();
        }
        self.writes.push_back(row);
    }

    fn writes_table(&self) -> Panel {
        let rows = self
            .writes
            .iter()
            .rev()
            .take(WRITES_SHOWN)
            .map(|w| {
                let mut row = vec![
                    json!(format!("w{}", w.write)),
                    json!(format!("r{}", w.replica)),
                    json!(w.key),
                ];
                for (s, lost) in w.stamps.iter().zip(w.lost) {
                    row.push(json!(format!(
                        "{}.{}{}",
                        s.0,
                        s.1,
                        if lost { " LOST" } else { "" }
                    )));
                }
                row.push(json!(w.ids[0]));
                row.push(json!(w.ids[1]));
                row
            })
            .collect();
        Panel::Table {
            title: "writes, newest first (stamps per lane; LOST: dropped by last-writer-wins \
                    at its own replica)"
                .into(),
            columns: [
                "write",
                "replica",
                "key",
                "wall-clock stamp",
                "HLC stamp",
                "Lamport stamp",
                "Snowflake id",
                "HLC id",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

impl Lane {
    fn new(kind: LaneKind, replicas: u32) -> Result<Self> {
        let clocks = (0..replicas)
            .map(|r| {
                Ok(match kind {
                    LaneKind::WallClock => ReplicaClock::Wall {
                        last: (0, 0),
                        ids: Snowflake::new(SnowflakeConfig {
                            epoch_ms: DISCORD_EPOCH_MS,
                            node_id: r as u16,
                            on_clock_backwards: ClockPolicy::Naive,
                        })?,
                    },
                    LaneKind::Hlc => ReplicaClock::Hlc(Hlc::new(HLC_MAX_OFFSET_MS)),
                    LaneKind::Lamport => ReplicaClock::Lamport(LamportClock::new()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Lane {
            kind,
            clocks,
            stores: vec![BTreeMap::new(); replicas as usize],
            last_ids: vec![None; replicas as usize],
            lost: 0,
            out_of_order: 0,
            first_lost: None,
            first_out_of_order: None,
        })
    }

    /// The stamp and id of a write at `replica`, whose wall clock reads `pt`.
    fn stamp(&mut self, replica: u32, pt: u64) -> Option<(Stamp, Option<u64>)> {
        match self.clocks.get_mut(replica as usize)? {
            ReplicaClock::Wall { last, ids } => {
                let seq = if last.0 == pt { last.1 + 1 } else { 0 };
                *last = (pt, seq);
                let id = match ids.next_id(pt) {
                    Ok(Issued::Id(id)) => Some(id),
                    _ => None,
                };
                Some(((pt, seq, replica), id))
            }
            ReplicaClock::Hlc(h) => {
                let t = h.tick(pt).ok()?;
                Some(((t.l, t.c, replica), Some(hlc_id(t))))
            }
            ReplicaClock::Lamport(c) => {
                let t = c.tick().ok()?;
                Some(((t, 0, replica), Some(t)))
            }
        }
    }

    /// Takes in the stamp of a version `replica` receives.
    fn receive(&mut self, replica: u32, s: Stamp, pt: u64) {
        match self.clocks.get_mut(replica as usize) {
            Some(ReplicaClock::Hlc(h)) => {
                let _ = h.receive(HlcTimestamp { l: s.0, c: s.1 }, pt);
            }
            Some(ReplicaClock::Lamport(c)) => {
                let _ = c.receive(s.0);
            }
            Some(ReplicaClock::Wall { .. }) | None => {}
        }
    }

    fn take_id(&mut self, replica: u32, id: u64, write: u64) {
        let Some(last) = self.last_ids.get_mut(replica as usize) else {
            return;
        };
        if let Some(prev) = *last
            && id <= prev
        {
            self.out_of_order += 1;
            self.first_out_of_order.get_or_insert_with(|| {
                (
                    replica,
                    format!("w{write} at r{replica} got id {id}, not above the previous {prev}"),
                )
            });
        }
        *last = Some(id);
    }
}

/// An HLC stamp as one 64-bit id: `l` above, `c` in the low bits (a counter past them
/// would wrap into `l`, so it saturates: it would take 4 million events in one ms).
fn hlc_id(t: HlcTimestamp) -> u64 {
    let l = t.l.saturating_sub(DISCORD_EPOCH_MS);
    (l << HLC_ID_COUNTER_BITS) | t.c.min((1 << HLC_ID_COUNTER_BITS) - 1)
}

impl Sampled for ClockSkewLab {
    type Totals = ClockSkewTotals;

    fn series(&self) -> Vec<(String, String)> {
        let mut s = Vec::new();
        for k in LaneKind::ALL {
            s.push((format!("writes lost by LWW ({})", k.name()), "total".into()));
        }
        for k in LaneKind::ALL {
            s.push((format!("ids out of order ({})", k.name()), "total".into()));
        }
        s
    }

    fn totals(&self) -> ClockSkewTotals {
        let mut t = ClockSkewTotals::default();
        for ((l, lost), out_of_order) in self.lanes.iter().zip(&mut t.lost).zip(&mut t.out_of_order)
        {
            *lost = l.lost;
            *out_of_order = l.out_of_order;
        }
        t
    }

    fn sample(&self, _at: Time, _interval: Duration, _since: &ClockSkewTotals) -> Vec<f64> {
        let t = self.totals();
        t.lost
            .iter()
            .chain(t.out_of_order.iter())
            .map(|&n| n as f64)
            .collect()
    }
}

impl LocalLab for ClockSkewLab {
    const ID: &'static str = "scenario.clock-skew";
    type Config = ClockSkewLabConfig;
    type Action = ClockSkewLabAction;

    fn new(c: &ClockSkewLabConfig) -> Result<Self> {
        let n = c.replicas.get();
        let skew = i64::from(c.skew_ms.get());
        // Evenly from −skew to +skew: the spread is exactly 2·skew.
        let offsets = (0..n)
            .map(|r| -skew + 2 * skew * i64::from(r) / i64::from(n - 1))
            .collect();
        Ok(ClockSkewLab {
            lanes: LaneKind::ALL
                .into_iter()
                .map(|k| Lane::new(k, n))
                .collect::<Result<Vec<_>>>()?,
            offsets,
            keys: c.keys.get(),
            replication: c.replication_ms.duration(),
            step_at: Time(c.step_at_ms.as_micros()),
            backward_step_ms: c.backward_step_ms.get(),
            stepped: false,
            deliveries: VecDeque::new(),
            rng: SimRng::derive(c.seed, 43),
            next_write: 0,
            writes: VecDeque::new(),
            hasher: StableHasher::default(),
            traced: 0,
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        let step = (!self.stepped && self.backward_step_ms > 0).then_some(self.step_at);
        match (self.deliveries.front().map(|d| d.at), step) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if !self.stepped && self.backward_step_ms > 0 && due >= self.step_at {
            self.stepped = true;
            if let Some(o) = self.offsets.get_mut(0) {
                *o -= i64::from(self.backward_step_ms);
            }
            return;
        }
        while let Some(d) = self.deliveries.front() {
            if d.at > due {
                break;
            }
            if let Some(d) = self.deliveries.pop_front() {
                self.deliver(at.now, d);
            }
        }
    }

    fn act(&mut self, at: Moment, action: &ClockSkewLabAction) -> Result<()> {
        match action {
            ClockSkewLabAction::Write { replica, key } => {
                self.check_replica(*replica)?;
                if key.is_empty() || key.len() > 64 {
                    return Err(DistlabError::field("key", "must be 1 to 64 bytes"));
                }
                self.write(at, *replica, key);
            }
            ClockSkewLabAction::StepClock {
                replica,
                back_ms,
                forward_ms,
            } => {
                self.check_replica(*replica)?;
                if let Some(o) = self.offsets.get_mut(*replica as usize) {
                    *o = *o - i64::from(back_ms.map_or(0, |c| c.get()))
                        + i64::from(forward_ms.map_or(0, |c| c.get()));
                }
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, _samples: &Sampler<ClockSkewTotals>) -> View {
        let n = self.offsets.len() as u32;
        let mut nodes = Vec::new();
        for (li, lane) in self.lanes.iter().enumerate() {
            for r in 0..n {
                let clock = match lane.clocks.get(r as usize) {
                    Some(ReplicaClock::Wall { last, .. }) => json!(last),
                    Some(ReplicaClock::Hlc(h)) => json!(h.last()),
                    Some(ReplicaClock::Lamport(c)) => json!(c.time()),
                    None => Value::Null,
                };
                nodes.push(NodeView {
                    id: li as u32 * n + r,
                    label: format!("{} r{r}", lane.kind.name()),
                    role: "replica".into(),
                    status: "up".into(),
                    fields: BTreeMap::from([
                        (
                            "wallClockMs".to_string(),
                            json!(self.wall_ms(r, at.now).saturating_sub(CLOCK_START_MS)),
                        ),
                        ("clock".into(), clock),
                        (
                            "store".into(),
                            json!(lane.stores.get(r as usize).map(|s| {
                                s.iter()
                                    .map(|(k, (st, w))| (k.clone(), format!("w{w} @ {st:?}")))
                                    .collect::<BTreeMap<_, _>>()
                            })),
                        ),
                        (
                            "lastId".into(),
                            json!(lane.last_ids.get(r as usize).copied().flatten()),
                        ),
                    ]),
                    group: Some(lane.kind.name().into()),
                });
            }
        }
        let summary = self
            .lanes
            .iter()
            .map(|l| vec![json!(l.kind.name()), json!(l.lost), json!(l.out_of_order)])
            .collect();
        let mut invariants = Vec::new();
        for l in &self.lanes {
            let name = format!("{}: LWW keeps every causally later write", l.kind.name());
            invariants.push(match &l.first_lost {
                Some(d) => InvariantStatus::violated(
                    &name,
                    format!("{} writes lost; first: {d}", l.lost),
                    Vec::new(),
                ),
                None => InvariantStatus::holds(&name, "no write stamped below one it follows"),
            });
            let name = format!("{}: each replica's ids increase", l.kind.name());
            invariants.push(match &l.first_out_of_order {
                Some((r, d)) => InvariantStatus::violated(
                    &name,
                    format!("{} ids out of order; first: {d}", l.out_of_order),
                    vec![l_index(l.kind) * n + r],
                ),
                None => InvariantStatus::holds(&name, "every id above the replica's previous"),
            });
        }
        View {
            nodes,
            panels: vec![
                Panel::Table {
                    title: "side by side: the same writes, three clocks".into(),
                    columns: ["clock", "writes lost by LWW", "ids out of order"]
                        .map(String::from)
                        .to_vec(),
                    rows: summary,
                },
                Panel::Text {
                    title: "wall clocks".into(),
                    body: format!(
                        "replica offsets from true time (ms): {:?}; replica 0's step back of \
                         {} ms {}.",
                        self.offsets,
                        self.backward_step_ms,
                        if self.stepped {
                            "has happened"
                        } else {
                            "is scheduled"
                        }
                    ),
                },
                self.writes_table(),
            ],
            invariants,
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.traced,
            "complete": self.traced <= self.writes.len() as u64,
            "trace": serde_json::to_value(&self.writes).unwrap_or(Value::Null),
        })
    }

    fn example_actions() -> Vec<ClockSkewLabAction> {
        vec![
            ClockSkewLabAction::Write {
                replica: 0,
                key: "k0".into(),
            },
            ClockSkewLabAction::StepClock {
                replica: 1,
                back_ms: Some(Count::of(300)),
                forward_ms: None,
            },
        ]
    }
}

fn l_index(k: LaneKind) -> u32 {
    match k {
        LaneKind::WallClock => 0,
        LaneKind::Hlc => 1,
        LaneKind::Lamport => 2,
    }
}

impl DrivenLab for ClockSkewLab {
    fn arrivals(c: &ClockSkewLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let replica = self.rng.below(self.offsets.len() as u64) as u32;
        let key = format!("k{}", self.rng.below(u64::from(self.keys)));
        self.write(at, replica, &key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, LabModel, Runner};

    #[test]
    fn wall_clocks_lose_writes_and_reorder_ids_while_hlc_and_lamport_do_not() {
        for seed in 0..20 {
            let config = ClockSkewLabConfig {
                seed,
                ..ClockSkewLabConfig::default()
            };
            let mut lab = Driven::<ClockSkewLab>::new(&config).unwrap();
            while lab.step_until(Time::from_millis(4_000)) {}
            let t = lab.tallies();
            assert_eq!(t[0].0, LaneKind::WallClock);
            assert!(t[0].1 > 0 && t[0].2 > 0, "seed {seed}: {t:?}");
            for (kind, lost, out_of_order) in &t[1..] {
                assert_eq!((*lost, *out_of_order), (0, 0), "seed {seed}: {kind:?}");
            }
            let inv = lab.view().invariants;
            let broken: Vec<&str> = inv
                .iter()
                .filter(|i| !i.ok)
                .map(|i| i.name.as_str())
                .collect();
            assert_eq!(broken.len(), 2, "seed {seed}: {broken:?}");
            assert!(broken.iter().all(|n| n.starts_with("wall clock")));
        }
    }

    #[test]
    fn without_skew_or_step_the_wall_clock_keeps_causal_order() {
        // The failure is the skew's and the step's: with neither, even the wall clock
        // (ms, then a per-ms sequence) loses nothing, since replication takes 20 ms.
        let mut l = Runner::<Driven<ClockSkewLab>>::from_json(&json!({
            "skewMs": 0, "backwardStepMs": 0
        }))
        .unwrap();
        l.step(Duration::from_secs(3)).unwrap();
        assert!(l.view().invariants.iter().all(|i| i.ok));
        assert!(l.model().tallies().iter().all(|t| t.1 == 0 && t.2 == 0));
    }

    #[test]
    fn a_write_after_a_fast_replicas_version_is_dropped_by_wall_clock_lww() {
        // r2 runs 200 ms ahead of r0: r0 writes k 50 ms after r2's write reached it.
        let mut l = Runner::<Driven<ClockSkewLab>>::from_json(&json!({
            "arrivals": {"type": "constant", "ratePerSec": 0.001}, "backwardStepMs": 0
        }))
        .unwrap();
        l.act(&json!({"type": "write", "replica": 2, "key": "k"}))
            .unwrap();
        l.step(Duration::from_millis(50)).unwrap();
        l.act(&json!({"type": "write", "replica": 0, "key": "k"}))
            .unwrap();
        let t = l.model().tallies();
        assert_eq!(t.iter().map(|t| t.1).collect::<Vec<_>>(), vec![1, 0, 0]);
        let e = l
            .act(&json!({"type": "write", "replica": 3, "key": "k"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("replica"), "{e}");
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"replicas": 1}), "config.replicas"),
            (json!({"skewMs": -1}), "config.skewMs"),
            (json!({"replicationMs": 70000}), "config.replicationMs"),
        ] {
            let e = Runner::<Driven<ClockSkewLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
