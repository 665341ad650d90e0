//! The view vocabulary: what a lab shows, as plain serde values that the page's generic
//! renderers understand (cluster, table, chart, grid, strip, timeline). A lab fills it;
//! it never draws.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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

/// A lab-specific picture built from generic parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
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

/// Metric series sampled at a fixed interval of simulated time, keeping the latest
/// `capacity` points so a long run does not grow the view without bound.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecorder {
    interval_us: u64,
    next_at: u64,
    capacity: usize,
    series: Vec<Series>,
}

impl MetricsRecorder {
    pub fn new(interval_us: u64, capacity: usize, names: &[(&str, &str)]) -> Self {
        MetricsRecorder {
            interval_us: interval_us.max(1),
            next_at: interval_us.max(1),
            capacity: capacity.max(2),
            series: names
                .iter()
                .map(|(n, u)| Series {
                    name: n.to_string(),
                    unit: u.to_string(),
                    ..Series::default()
                })
                .collect(),
        }
    }

    /// Whether a sample is due at `now_us` (call [`record`](Self::record) if so).
    pub fn due(&self, now_us: u64) -> bool {
        now_us >= self.next_at
    }

    /// The time of the sample that is due.
    pub fn due_at(&self) -> u64 {
        self.next_at
    }

    /// Records one value per series (in the order given to `new`) at the due time.
    pub fn record(&mut self, values: &[f64]) {
        let x = self.next_at as f64 / 1_000.0;
        for (s, v) in self.series.iter_mut().zip(values) {
            if s.x.len() >= self.capacity {
                s.x.remove(0);
                s.y.remove(0);
            }
            s.x.push(x);
            s.y.push(*v);
        }
        self.next_at += self.interval_us;
    }

    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }
}
