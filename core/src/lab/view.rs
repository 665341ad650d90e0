//! The view vocabulary: what a lab shows, as plain serde values that the page's generic
//! renderers understand (cluster, table, chart, grid, strip, timeline, ring). A lab fills it;
//! it never draws.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::sim::Endpoint;
use crate::sim::NodeId;

/// Everything a frame needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct View {
    pub lab: String,
    /// Simulated (or workload) time, µs.
    pub time_us: u64,
    /// Events processed so far: the coordinate of `seek`.
    pub step: u64,
    pub nodes: Vec<NodeView>,
    pub messages: Vec<MessageView>,
    pub partitions: PartitionView,
    pub panels: Vec<Panel>,
    pub metrics: Vec<Series>,
    pub invariants: Vec<InvariantStatus>,
    /// What nodes show at a glance, without a click (a badge, progress rings): only the
    /// nodes a lab has something to show for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub glances: Vec<NodeGlance>,
    /// What messages in flight carry (a short label, fields to inspect), by message id:
    /// only for labs that describe their messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub message_details: Vec<MessageDetail>,
    /// Which of `panels` (by position) is this lab's main picture, when its cluster is
    /// not the point (a history being checked): the page puts that panel on the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub stage_panel: Option<u32>,
}

/// What a node shows on the stage without a click: a short badge drawn on it (Raft: its
/// term; Paxos: its ballot) and progress rings around it (Raft: the election timer, the
/// leader's lease), innermost first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct NodeGlance {
    pub node: NodeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub badge: Option<String>,
    pub rings: Vec<ProgressRing>,
}

/// A ring around a node, filled clockwise from the top to `value` in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ProgressRing {
    /// What it measures ("election timer", "lease"): the renderer colours rings by name
    /// and lists them in the legend.
    pub name: String,
    pub value: f64,
}

impl ProgressRing {
    /// A ring named `name` at `value`, clamped to [0, 1] (a NaN is empty).
    pub fn new(name: &str, value: f64) -> Self {
        let value = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        };
        ProgressRing {
            name: name.to_string(),
            value,
        }
    }
}

/// What a message in flight carries, beyond its kind: a short label drawn beside it
/// and fields shown when it is clicked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct MessageDetail {
    /// The message's id (as in [`MessageView::id`]).
    pub id: u64,
    pub label: String,
    #[cfg_attr(feature = "tsify", tsify(type = "Record<string, unknown>"))]
    pub fields: BTreeMap<String, Value>,
}

/// One node (or one client, or one component of a local primitive).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct NodeView {
    pub id: NodeId,
    pub label: String,
    pub role: String,
    /// "up", "paused" or "crashed".
    pub status: String,
    /// Everything worth inspecting, in display order.
    #[cfg_attr(feature = "tsify", tsify(type = "Record<string, unknown>"))]
    pub fields: BTreeMap<String, Value>,
    /// Which of several clusters shown together the node belongs to (the scenario labs
    /// run one seed twice, side by side): the page lays out each group on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "tsify", tsify(optional))]
    pub group: Option<String>,
}

/// A message in flight, for animation along the link from → to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct MessageView {
    pub id: u64,
    pub from: Endpoint,
    pub to: Endpoint,
    pub kind: String,
    pub progress: f64,
}

/// Current network partitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PartitionView {
    /// Groups that cannot reach each other; empty when there is no two-way partition.
    pub groups: Vec<Vec<NodeId>>,
    /// Directed links cut one way, as (from, to).
    pub one_way: Vec<(NodeId, NodeId)>,
}

/// A named series of (x, y) points, columnar so a chart library can take it directly.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Series {
    pub name: String,
    pub unit: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// One cell of a grid panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Cell {
    pub value: f64,
    pub label: String,
}

/// One row of a log grid: one node's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LogRow {
    /// The node's label ("n2").
    pub label: String,
    /// The node's role, for the row's colour mark.
    pub role: String,
    /// The entries it holds within the grid's columns, by index.
    pub cells: Vec<LogCell>,
    /// Positions marked on the row: where its commit and applied indices are, its
    /// snapshot boundary, and (drawn on a follower's row) the leader's match and next
    /// index for it.
    pub markers: Vec<LogMarker>,
}

/// One entry of a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LogCell {
    pub index: u64,
    /// What colours the cell: entries with the same value share a colour (Raft: the
    /// entry's term).
    pub value: u64,
    /// Written in the cell (the term).
    pub label: String,
    /// Shown on hover and in the text alternative (the command).
    pub detail: String,
    /// Whether the entry is known committed on this node.
    pub committed: bool,
}

/// A marked position on a log row: after `index` (a commit index marks the boundary
/// after the last committed entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LogMarker {
    /// "commit", "applied", "snapshot", "match" or "next".
    pub kind: String,
    pub index: u64,
}

/// One item of a strip (a queue, a log, a window of requests).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct StripItem {
    pub label: String,
    /// A state name the renderer maps to a colour ("ok", "rejected", "pending"...).
    pub state: String,
}

/// One bar on a timeline (an operation from invocation to return).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(hashmap_as_object, missing_as_null))]
pub struct TimelineBar {
    pub lane: u32,
    pub start: f64,
    /// `None`: still open (or never returned).
    pub end: Option<f64>,
    pub label: String,
    pub state: String,
    /// Position in a witness order, if any.
    pub order: Option<u32>,
}

/// A point on a ring: a node (or one of its virtual nodes) or a key on a consistent-hash
/// ring (Karger et al., STOC 1997), a peer in a Chord-like id space.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RingPoint {
    /// Where on the ring, in [0, 1): a hash divided by the size of the hash space.
    pub position: f64,
    pub label: String,
    /// Who the point belongs to (a node's name, for its virtual nodes and the keys it
    /// owns): the renderer gives each owner one colour.
    pub owner: String,
    /// What the point is, as the renderer draws it: "node" (a dot on the circle) or
    /// anything else (a key: a tick inside the circle).
    pub kind: String,
}

/// A range of the ring, from `start` clockwise to `end` (both in [0, 1); it wraps past 0
/// when `end < start`, and covers the whole ring when they are equal).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RingArc {
    pub start: f64,
    pub end: f64,
    /// Whose range it is: coloured like that owner's points.
    pub owner: String,
    pub label: String,
}

/// A lab-specific picture built from generic parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Panel {
    Table {
        title: String,
        columns: Vec<String>,
        #[cfg_attr(feature = "tsify", tsify(type = "unknown[][]"))]
        rows: Vec<Vec<Value>>,
    },
    Chart {
        title: String,
        x_label: String,
        series: Vec<Series>,
    },
    Bars {
        title: String,
        labels: Vec<String>,
        series: Vec<Series>,
    },
    Grid {
        title: String,
        columns: u32,
        cells: Vec<Cell>,
    },
    Strip {
        title: String,
        items: Vec<StripItem>,
    },
    Timeline {
        title: String,
        lanes: Vec<String>,
        bars: Vec<TimelineBar>,
    },
    Text {
        title: String,
        body: String,
    },
    /// Replicated logs side by side: a row per node, a column per index from
    /// `first_index`, cells coloured by their value (a term), with markers (commit,
    /// applied, snapshot boundary, the leader's match and next index per follower).
    LogGrid {
        title: String,
        first_index: u64,
        columns: u32,
        rows: Vec<LogRow>,
    },
    /// Points on a circle by their position in [0, 1), with owned ranges as arcs.
    Ring {
        title: String,
        points: Vec<RingPoint>,
        arcs: Vec<RingArc>,
    },
}

/// Whether an invariant holds right now; on a violation, which nodes are involved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct InvariantStatus {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub nodes: Vec<NodeId>,
}

impl InvariantStatus {
    pub fn holds(name: &str, detail: impl Into<String>) -> Self {
        InvariantStatus {
            name: name.to_string(),
            ok: true,
            detail: detail.into(),
            nodes: Vec::new(),
        }
    }
    pub fn violated(name: &str, detail: impl Into<String>, nodes: Vec<NodeId>) -> Self {
        InvariantStatus {
            name: name.to_string(),
            ok: false,
            detail: detail.into(),
            nodes,
        }
    }
}

/// Which nodes' inspectable `fields` a view carries. A page animating a big cluster
/// shows one node's fields (the inspected one), and building every node's is most of the
/// cost of such a view (about 80 % for a 1,000-node `sim.network`): a lab may then build
/// only those. Every other part of the view is the same either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FieldsOf {
    /// Every node's fields.
    #[default]
    All,
    /// Only these nodes' fields; the others' are empty.
    Only(BTreeSet<NodeId>),
}

impl FieldsOf {
    /// Whether node `id`'s fields are wanted.
    pub fn wants(&self, id: NodeId) -> bool {
        match self {
            FieldsOf::All => true,
            FieldsOf::Only(ids) => ids.contains(&id),
        }
    }

    /// Empties the fields of the nodes not wanted (for a lab that built them all).
    pub fn strip(&self, view: &mut View) {
        if let FieldsOf::Only(_) = self {
            for node in &mut view.nodes {
                if !self.wants(node.id) {
                    node.fields.clear();
                }
            }
        }
    }
}

/// Metric series sampled every `interval` of lab time, keeping the newest `capacity`
/// points so a long run does not grow the view without bound.
///
/// Bringing it up to date is cheap after any gap: a lab's clock can jump far past its last
/// event (a quiet cluster, one `step(dt)` of years), and recording every sample due one
/// by one would take as long as the jump. Only the newest `capacity` samples survive
/// anyway, so when more are due the ones that would be evicted at once are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecorder {
    interval_us: u64,
    next_at: u64,
    capacity: usize,
    /// Sample times in µs, oldest first, shared by every series.
    times: VecDeque<u64>,
    names: Vec<(String, String)>,
    values: Vec<VecDeque<f64>>,
}

impl MetricsRecorder {
    /// Series named `(name, unit)`, sampled every `interval_us` (at least 1), keeping the
    /// newest `capacity` (at least 2) points each.
    pub fn new(interval_us: u64, capacity: usize, names: &[(&str, &str)]) -> Self {
        let interval_us = interval_us.max(1);
        MetricsRecorder {
            interval_us,
            next_at: interval_us,
            capacity: capacity.max(2),
            times: VecDeque::new(),
            names: names
                .iter()
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect(),
            values: vec![VecDeque::new(); names.len()],
        }
    }

    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// When the next sample is due, µs.
    pub fn due_at(&self) -> u64 {
        self.next_at
    }

    /// Records every sample due at or before `until_us`, in order, with the values
    /// `values(at)` returns (one per series). If more than `capacity` are due, `values` is
    /// called once for the first of them (so a caller's per-interval counters restart) and
    /// that sample is dropped with the others the newest `capacity` would evict. Sampling
    /// stops short of `u64::MAX`, where the next sample time would overflow.
    pub fn record_due(&mut self, until_us: u64, mut values: impl FnMut(u64) -> Vec<f64>) {
        let interval = self.interval_us;
        let until_us = until_us.min(u64::MAX - interval);
        if self.next_at > until_us {
            return;
        }
        let due = (until_us - self.next_at) / interval + 1;
        if due > self.capacity as u64 {
            let _ = values(self.next_at);
            self.next_at += (due - self.capacity as u64) * interval;
        }
        while self.next_at <= until_us {
            let at = self.next_at;
            let v = values(at);
            self.push(at, &v);
            self.next_at = at + interval;
        }
    }

    fn push(&mut self, at: u64, values: &[f64]) {
        if self.times.len() >= self.capacity {
            self.times.pop_front();
            self.values.iter_mut().for_each(|s| {
                s.pop_front();
            });
        }
        self.times.push_back(at);
        for (i, s) in self.values.iter_mut().enumerate() {
            s.push_back(values.get(i).copied().unwrap_or(f64::NAN));
        }
    }

    /// The series, with times (x) in ms of lab time.
    pub fn series(&self) -> Vec<Series> {
        let x: Vec<f64> = self.times.iter().map(|t| *t as f64 / 1_000.0).collect();
        self.names
            .iter()
            .zip(&self.values)
            .map(|((name, unit), y)| Series {
                name: name.clone(),
                unit: unit.clone(),
                x: x.clone(),
                y: y.iter().copied().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xs(m: &MetricsRecorder) -> Vec<f64> {
        m.series()[0].x.clone()
    }

    #[test]
    fn samples_every_interval_and_skips_ahead_after_a_jump() {
        let mut m = MetricsRecorder::new(10, 4, &[("n", "count")]);
        let mut calls = Vec::new();
        m.record_due(35, |at| {
            calls.push(at);
            vec![at as f64]
        });
        assert_eq!(calls, vec![10, 20, 30]);
        assert_eq!(xs(&m), vec![0.01, 0.02, 0.03]);
        assert_eq!(m.due_at(), 40);
        m.record_due(39, |_| unreachable!());
        // 10^12 samples due: one call for the first, then only the last four.
        calls.clear();
        m.record_due(10_000_000_000_005, |at| {
            calls.push(at);
            vec![at as f64]
        });
        assert_eq!(
            calls,
            vec![
                40,
                9_999_999_999_970,
                9_999_999_999_980,
                9_999_999_999_990,
                10_000_000_000_000
            ]
        );
        assert_eq!(
            m.series()[0].y,
            vec![
                9_999_999_999_970.0,
                9_999_999_999_980.0,
                9_999_999_999_990.0,
                10_000_000_000_000.0
            ]
        );
        assert_eq!(xs(&m)[3], 10_000_000_000.0);
        assert_eq!(m.due_at(), 10_000_000_000_010);
    }

    #[test]
    fn a_ring_panel_serialises_in_the_view_vocabulary() {
        let ring = Panel::Ring {
            title: "ring".into(),
            points: vec![RingPoint {
                position: 0.25,
                label: "a#0".into(),
                owner: "a".into(),
                kind: "node".into(),
            }],
            arcs: vec![RingArc {
                start: 0.75,
                end: 0.25,
                owner: "a".into(),
                label: "a".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&ring).unwrap(),
            serde_json::json!({
                "type": "ring",
                "title": "ring",
                "points": [{ "position": 0.25, "label": "a#0", "owner": "a", "kind": "node" }],
                "arcs": [{ "start": 0.75, "end": 0.25, "owner": "a", "label": "a" }],
            })
        );
    }

    #[test]
    fn stops_short_of_the_end_of_time() {
        let mut m = MetricsRecorder::new(1_000, 3, &[("n", "count")]);
        let mut calls = 0;
        m.record_due(u64::MAX, |_| {
            calls += 1;
            vec![0.0]
        });
        assert_eq!(calls, 4);
        m.record_due(u64::MAX, |_| unreachable!());
        assert!(m.due_at() > u64::MAX - 1_000);
    }
}
