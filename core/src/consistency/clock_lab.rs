//! Labs `consistency.lamport`, `consistency.vector-clock` and `consistency.hlc`: N
//! processes exchange messages over the simulated network, each stamping its events with
//! one kind of logical clock ([`ClockKind`]) while their physical clocks are skewed (spread
//! evenly over ±`skewMs` from the start) and drift (`driftPpm`, alternately fast and slow)
//! — and every fault of the kit can step a clock, partition, lose or duplicate.
//!
//! The view shows each process's clock, the newest events on a time line (a lane per
//! process: the space-time diagram) and, for vector clocks, the happened-before relation
//! among the newest events as a table (→ before, ← after, ∥ concurrent). Invariants are
//! checked live on every event: happened-before ⇒ timestamp order (each event against its
//! direct predecessors — see [`crate::consistency::clock_node`]), and for the HLC
//! `l − pt ≤ ε`. The HLC's bound is a theorem only while physical clocks stay within ε of
//! each other and never step back: drift the clocks apart and the HLC refuses messages
//! (counted); step one back with a `clockSkew` fault and the bound is seen to fail.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

use crate::bounded::{Count, Millis, Probability};
use crate::consistency::clock_node::{
    ClockEvent, ClockKind, ClockNode, ClockNodeConfig, EventKind, EventRequest, HlcKind,
    LamportKind, VectorKind,
};
use crate::consistency::vector_clock::ClockOrder;
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel, TimelineBar};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The most processes a lab runs.
pub const MAX_PROCESSES: u32 = 32;
/// The largest ε an HLC lab accepts, ms.
pub const MAX_OFFSET_MS: u32 = 3_600_000;
/// The largest drift, parts per million.
pub const MAX_DRIFT_PPM: u32 = 100_000;
/// Events the time line shows (the newest).
const SHOWN_EVENTS: usize = 40;
/// Events the happened-before table relates (the newest).
const RELATED_EVENTS: usize = 8;
/// Trace events handed out (the newest).
pub const TRACE_TAIL: usize = 20_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The clocks lab as `consistency.lamport`.
pub type LamportLab = ClockLab<LamportKind>;
/// The clocks lab as `consistency.vector-clock`.
pub type VectorClockLab = ClockLab<VectorKind>;
/// The clocks lab as `consistency.hlc`.
pub type HlcLab = ClockLab<HlcKind>;

cluster_lab_config! {
    /// Configuration of a clocks lab.
    pub struct ClockLabConfig {
        /// Processes.
        pub processes: Count<2, { MAX_PROCESSES }> = Count::of(4),
        /// Time between two of a process's own events, on its clock.
        pub event_ms: Millis<1, 60_000> = Millis::of(300),
        /// Share of a process's own events that send a message to a random peer.
        pub send_probability: Probability = Probability::of(0.5),
        /// Physical clocks start spread evenly from −skewMs to +skewMs.
        pub skew_ms: Count<0, 60_000> = Count::of(100),
        /// Odd processes' clocks run fast, even ones slow, by this many parts per million.
        pub drift_ppm: Count<0, { MAX_DRIFT_PPM }> = Count::of(0),
        /// The HLC's ε: a message stamped further ahead of the receiver's physical clock
        /// is refused (unused by the other clocks).
        pub max_offset_ms: Count<0, { MAX_OFFSET_MS }> = Count::of(250),
    }
}

/// A clocks lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClockLabAction {
    /// A local event at `node` now.
    Local { node: NodeId },
    /// `from` sends a message to `to` now.
    Send { from: NodeId, to: NodeId },
}

/// An event as the lab keeps it: whose, when in true time, and the node's record.
#[derive(Debug, Clone)]
struct Seen<S> {
    node: NodeId,
    at: Time,
    event: ClockEvent<S>,
}

/// Running totals for the rate series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockTotals {
    events: u64,
}

/// Invariant tallies over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    events: u64,
    unordered: u64,
    /// The first event stamped out of order: (node, seq).
    first_unordered: Option<(NodeId, u64)>,
    over_bound: u64,
    first_over_bound: Option<(NodeId, u64, i64)>,
    max_divergence_ms: Option<i64>,
}

/// A clocks lab: processes with clocks of kind `K` on the simulator.
#[derive(Debug, Clone)]
pub struct ClockLab<K: ClockKind> {
    sim: Sim<ClockNode<K>>,
    max_offset_ms: u64,
    /// Per process, the newest event number taken in.
    taken: Vec<u64>,
    newest: VecDeque<Seen<K::Stamp>>,
    tally: Tally,
}

impl<K: ClockKind> ClockLab<K> {
    /// Events stamped out of happened-before order so far.
    pub fn unordered(&self) -> u64 {
        self.tally.unordered
    }
    /// HLC events with `l − pt > ε` so far.
    pub fn over_bound(&self) -> u64 {
        self.tally.over_bound
    }
    /// Events taken in so far.
    pub fn events(&self) -> u64 {
        self.tally.events
    }
    /// The largest `l − pt` seen (HLC).
    pub fn max_divergence_ms(&self) -> Option<i64> {
        self.tally.max_divergence_ms
    }
    /// Messages refused by the clocks of processes now up.
    pub fn refused(&self) -> u64 {
        (0..self.sim.node_count())
            .filter_map(|n| self.sim.node(n))
            .map(|p| p.stats().refused)
            .sum()
    }

    fn take_in(&mut self) {
        let now = self.sim.now();
        let n = self.sim.node_count();
        self.taken.resize(n as usize, 0);
        for id in 0..n {
            let Some(node) = self.sim.node(id) else {
                continue;
            };
            let taken = self.taken.get(id as usize).copied().unwrap_or(0);
            if node.events() <= taken {
                continue;
            }
            for e in node.recent().filter(|e| e.seq > taken) {
                let t = &mut self.tally;
                t.events += 1;
                if !e.ordered {
                    t.unordered += 1;
                    t.first_unordered.get_or_insert((id, e.seq));
                }
                if let Some(d) = e.divergence_ms {
                    t.max_divergence_ms = Some(t.max_divergence_ms.map_or(d, |m| m.max(d)));
                    if d > self.max_offset_ms as i64 {
                        t.over_bound += 1;
                        t.first_over_bound.get_or_insert((id, e.seq, d));
                    }
                }
                if self.newest.len() == SHOWN_EVENTS {
                    self.newest.pop_front();
                }
                self.newest.push_back(Seen {
                    node: id,
                    at: now,
                    event: e.clone(),
                });
            }
            if let Some(slot) = self.taken.get_mut(id as usize) {
                *slot = node.events();
            }
        }
    }

    fn timeline(&self) -> Panel {
        let lanes = (0..self.sim.node_count())
            .map(|n| format!("n{n}"))
            .collect();
        let bars = self
            .newest
            .iter()
            .map(|s| {
                let ms = s.at.as_millis_f64();
                TimelineBar {
                    lane: s.node,
                    start: ms,
                    end: Some(ms),
                    label: format!(
                        "#{} {} {}",
                        s.event.seq,
                        kind_text(s.event.kind),
                        stamp_text(&s.event.stamp)
                    ),
                    state: match (s.event.ordered, s.event.kind) {
                        (false, _) => "violated".into(),
                        (true, EventKind::Local) => "local".into(),
                        (true, EventKind::Send { .. }) => "send".into(),
                        (true, EventKind::Receive { .. }) => "receive".into(),
                    },
                    order: None,
                }
            })
            .collect();
        Panel::Timeline {
            title: "events (a lane per process; labels: number, kind, timestamp)".into(),
            lanes,
            bars,
        }
    }

    /// The happened-before relation among the newest events, as the vector clocks say.
    fn relation_table(&self) -> Option<Panel> {
        let last: Vec<&Seen<K::Stamp>> = self
            .newest
            .iter()
            .skip(self.newest.len().saturating_sub(RELATED_EVENTS))
            .collect();
        let name = |s: &Seen<K::Stamp>| format!("n{}#{}", s.node, s.event.seq);
        let mut rows = Vec::with_capacity(last.len());
        for a in &last {
            let mut row = vec![json!(name(a))];
            for b in &last {
                let cell = match K::relation(&a.event.stamp, &b.event.stamp)? {
                    ClockOrder::Before => "→",
                    ClockOrder::After => "←",
                    ClockOrder::Equal => "=",
                    ClockOrder::Concurrent => "∥",
                };
                row.push(json!(cell));
            }
            rows.push(row);
        }
        let mut columns = vec!["event".to_string()];
        columns.extend(last.iter().map(|s| name(s)));
        Some(Panel::Table {
            title: "happened-before among the newest events (row → column: row happened \
                    before; ∥ concurrent)"
                .into(),
            columns,
            rows,
        })
    }

    fn clocks_table(&self) -> Panel {
        let rows = (0..self.sim.node_count())
            .map(|n| match (self.sim.node(n), self.sim.clock(n)) {
                (Some(p), Some(c)) => vec![
                    json!(format!("n{n}")),
                    json!(stamp_text(&K::current(p.clock()))),
                    json!(c.skew_at(self.sim.now()) as f64 / 1_000.0),
                    json!(p.events()),
                    json!(p.stats().refused),
                ],
                _ => vec![json!(format!("n{n}")), json!("(crashed)")],
            })
            .collect();
        Panel::Table {
            title: "clocks".into(),
            columns: ["process", "clock", "skew ms", "events", "refused"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

fn kind_text(k: EventKind) -> String {
    match k {
        EventKind::Local => "local".into(),
        EventKind::Send { to } => format!("send→n{to}"),
        EventKind::Receive { from, send } => format!("recv n{from}#{send}"),
    }
}

fn stamp_text<S: Serialize>(s: &S) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Happened-before ⇒ timestamp order, from the tally.
fn order_invariant(t: &Tally) -> InvariantStatus {
    const NAME: &str = "happened-before ⇒ timestamp order";
    match t.first_unordered {
        None => InvariantStatus::holds(
            NAME,
            format!(
                "{} events, each stamped above the process's previous event and above the \
                 send it receives",
                t.events
            ),
        ),
        Some((node, seq)) => InvariantStatus::violated(
            NAME,
            format!(
                "{} of {} events stamped at or below a predecessor; first: n{node}#{seq}",
                t.unordered, t.events
            ),
            vec![node],
        ),
    }
}

/// `l − pt ≤ ε`, from the tally.
fn bound_invariant(t: &Tally, max_offset_ms: u64) -> InvariantStatus {
    const NAME: &str = "HLC: l − pt ≤ ε";
    let max = t
        .max_divergence_ms
        .map_or("none yet".to_string(), |d| format!("{d} ms"));
    match t.first_over_bound {
        None => InvariantStatus::holds(
            NAME,
            format!("largest l − pt so far: {max}; ε = {max_offset_ms} ms"),
        ),
        Some((node, seq, d)) => InvariantStatus::violated(
            NAME,
            format!(
                "{} events with l − pt above ε = {max_offset_ms} ms (a physical clock stepped \
                 back, outside the theorem's assumptions); first: n{node}#{seq} at {d} ms; \
                 largest {max}",
                t.over_bound
            ),
            vec![node],
        ),
    }
}

impl<K: ClockKind> Sampled for ClockLab<K> {
    type Totals = ClockTotals;

    fn series(&self) -> Vec<(String, String)> {
        let mut s = vec![("events".to_string(), "events/s".to_string())];
        if K::PHYSICAL {
            s.push(("largest l − pt".into(), "ms".into()));
        }
        s
    }

    fn totals(&self) -> ClockTotals {
        ClockTotals {
            events: self.tally.events,
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &ClockTotals) -> Vec<f64> {
        let mut v = vec![per_second(self.tally.events - since.events, interval)];
        if K::PHYSICAL {
            v.push(self.tally.max_divergence_ms.unwrap_or(0) as f64);
        }
        v
    }
}

impl<K: ClockKind> ClusterLab for ClockLab<K> {
    const ID: &'static str = K::ID;
    type Node = ClockNode<K>;
    type Config = ClockLabConfig;
    type Action = ClockLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &ClockLabConfig) -> Result<Self> {
        let n = c.processes.get();
        let sim_config = SimConfig {
            clients: 1,
            ..c.sim_config(n)
        };
        let node = ClockNodeConfig {
            event: c.event_ms.duration(),
            send_per_mille: (c.send_probability.get() * 1_000.0) as u32,
            max_offset_ms: u64::from(c.max_offset_ms.get()),
        };
        let mut sim = Sim::new(sim_config, node)?;
        let skew = f64::from(c.skew_ms.get());
        let drift = i64::from(c.drift_ppm.get());
        for id in 0..n {
            // Evenly from −skew to +skew: the spread is exactly 2·skew.
            let skew_ms = -skew + 2.0 * skew * f64::from(id) / f64::from(n - 1);
            sim.apply_fault(&Fault::ClockSkew { node: id, skew_ms })?;
            if drift != 0 {
                let ppm = if id % 2 == 1 { drift } else { -drift };
                sim.apply_fault(&Fault::ClockDrift { node: id, ppm })?;
            }
        }
        c.load_faults(&mut sim)?;
        Ok(ClockLab {
            sim,
            max_offset_ms: u64::from(c.max_offset_ms.get()),
            taken: vec![0; n as usize],
            newest: VecDeque::new(),
            tally: Tally::default(),
        })
    }

    fn sim(&self) -> &Sim<ClockNode<K>> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<ClockNode<K>> {
        &mut self.sim
    }

    fn observe(&mut self) {
        self.take_in();
    }

    fn act(&mut self, action: &ClockLabAction) -> Result<()> {
        let (node, body) = match *action {
            ClockLabAction::Local { node } => (node, EventRequest::Local),
            ClockLabAction::Send { from, to } => (from, EventRequest::Send { to }),
        };
        self.sim.client_request(0, node, body, CLIENT_TIMEOUT)?;
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        if let Some(p) = self.sim.node(id) {
            fields.insert(
                "clock".into(),
                serde_json::to_value(K::current(p.clock())).unwrap_or(Value::Null),
            );
            fields.insert("events".into(), json!(p.events()));
            fields.insert("refused".into(), json!(p.stats().refused));
            if let Some(last) = p.recent().last()
                && let Some(d) = last.divergence_ms
            {
                fields.insert("lMinusPtMs".into(), json!(d));
            }
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let mut v = vec![self.clocks_table(), self.timeline()];
        v.extend(self.relation_table());
        v
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let mut v = vec![order_invariant(&self.tally)];
        if K::PHYSICAL {
            v.push(bound_invariant(&self.tally, self.max_offset_ms));
        }
        v
    }

    fn example_actions() -> Vec<ClusterAction<ClockLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(ClockLabAction::Local { node: 0 }));
        v.push(ClusterAction::Lab(ClockLabAction::Send { from: 0, to: 1 }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn run<K: ClockKind>(config: ClockLabConfig, faults: &[Fault]) -> Cluster<ClockLab<K>> {
        let mut lab = Cluster::<ClockLab<K>>::new(&config).unwrap();
        for (i, f) in faults.iter().enumerate() {
            while lab.step_until(Time::from_millis(2_000 * (i as u64 + 1))) {}
            lab.act(&ClusterAction::Fault(f.clone())).unwrap();
        }
        while lab.step_until(Time::from_millis(2_000 * (faults.len() as u64 + 1))) {}
        lab
    }

    fn rough() -> Vec<Fault> {
        vec![
            Fault::SetDuplicate {
                probability: Probability::of(0.3),
            },
            Fault::Crash { node: 2 },
            Fault::Restart { node: 2 },
            Fault::ClockSkew {
                node: 1,
                skew_ms: 40.0,
            },
        ]
    }

    #[test]
    fn every_clock_keeps_happened_before_through_crashes_and_skew() {
        fn check<K: ClockKind>() {
            let lab = run::<K>(ClockLabConfig::default(), &rough());
            assert!(lab.events() > 100, "{}: {}", K::ID, lab.events());
            assert_eq!(lab.unordered(), 0, "{}", K::ID);
            assert!(lab.invariants().iter().all(|i| i.ok), "{}", K::ID);
            assert_eq!(lab.refused(), 0, "{}", K::ID);
        }
        check::<LamportKind>();
        check::<VectorKind>();
        check::<HlcKind>();
    }

    #[test]
    fn hlc_stays_within_epsilon_and_refuses_past_it() {
        // Spread 200 ms within ε = 250: every l − pt ≤ 250, and some message lifts a
        // receiver's l above its physical clock.
        let lab = run::<HlcKind>(ClockLabConfig::default(), &[]);
        let d = lab.max_divergence_ms().unwrap();
        assert!(d > 0 && d <= 250, "{d}");
        assert_eq!(lab.refused(), 0);
        // ε below the spread: messages from the fastest clock are refused, and the bound
        // still holds on every event that happened.
        let tight = ClockLabConfig {
            max_offset_ms: Count::of(50),
            ..ClockLabConfig::default()
        };
        let lab = run::<HlcKind>(tight, &[]);
        assert!(lab.refused() > 0);
        assert_eq!(lab.over_bound(), 0);
        assert!(lab.max_divergence_ms().unwrap() <= 50);
    }

    #[test]
    fn a_clock_stepped_back_breaks_the_hlc_bound_not_its_order() {
        // n3's clock starts 100 ms ahead; stepping it to 900 ms behind leaves its l about
        // 1 s above its physical clock: the bound's assumption fails and the view says so,
        // while timestamps still respect happened-before.
        let step = Fault::ClockSkew {
            node: 3,
            skew_ms: -900.0,
        };
        let lab = run::<HlcKind>(ClockLabConfig::default(), &[step]);
        assert!(lab.over_bound() > 0);
        assert_eq!(lab.unordered(), 0);
        let inv = lab.invariants();
        assert!(!inv[1].ok && inv[0].ok, "{inv:?}");
    }

    #[test]
    fn vector_clocks_show_concurrent_events() {
        let lab = run::<VectorKind>(ClockLabConfig::default(), &[]);
        let panels = lab.panels();
        let Some(Panel::Table { rows, .. }) = panels.get(2) else {
            panic!("no relation table");
        };
        assert_eq!(rows.len(), RELATED_EVENTS);
        let cells: Vec<&str> = rows.iter().flatten().filter_map(|v| v.as_str()).collect();
        assert!(cells.contains(&"∥") && cells.contains(&"→") && cells.contains(&"←"));
        // The Lamport lab cannot tell: no table.
        let lab = run::<LamportKind>(ClockLabConfig::default(), &[]);
        assert_eq!(lab.panels().len(), 2);
    }
}
